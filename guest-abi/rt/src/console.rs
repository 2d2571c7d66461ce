//! Console output through `console_io(CONSOLEIO_write)`.

use core::fmt::{self, Write};

/// A `fmt::Write` sink for the hypervisor console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        guest_abi::hypercall::console_write(s.as_bytes()).map_err(|_| fmt::Error)
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
