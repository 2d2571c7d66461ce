//! Console output through `console_io(CONSOLEIO_write)`.

use core::fmt::{self, Write};

use guest_abi::xen::{CONSOLEIO_WRITE, HYPERVISOR_CONSOLE_IO};

use crate::hypercall::hypercall;

/// Writes bytes to the hypervisor console; returns the hypercall's result.
pub fn write_bytes(bytes: &[u8]) -> i64 {
    // SAFETY: the buffer is valid for `len` bytes during the call.
    unsafe {
        hypercall(
            HYPERVISOR_CONSOLE_IO,
            CONSOLEIO_WRITE as u64,
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    }
}

/// A `fmt::Write` sink for the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if write_bytes(s.as_bytes()) < 0 {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// Prints formatted text on the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
    }};
}

/// Prints formatted text and a newline on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        $crate::print!("{}\n", format_args!($($arg)*));
    }};
}
