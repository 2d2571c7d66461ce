//! Console lines written to both of a domU's consoles: its console ring
//! (read by xenconsoled, shown by `xl console`) and the hypervisor's
//! console (`console_io`, which Xen 4.17 release builds and xenish refuse
//! a domU, and debug Xen builds and xenish booted with `console_io=all`
//! print).
//!
//! Each line is formatted into a fixed buffer first (longer lines are cut
//! at a character boundary before [`LINE_MAX`] bytes) so that each sink receives it in one piece.
//! Without [`init`], or for a domain without a console ring, lines go
//! through [`crate::console`] alone, which then uses `console_io`.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use guest_abi::hypercall;
use guest_abi::xen::{SifFlags, StartInfo};

/// Longest line, newline included, passed on whole.
pub const LINE_MAX: usize = 512;

static BOTH: AtomicBool = AtomicBool::new(false);

/// Writes lines to both consoles if the domain has a console ring (the
/// condition [`crate::console`] uses to pick the ring).
pub fn init(si: &StartInfo) {
    let (mfn, port) = si.console_domu();
    let domu = !SifFlags::from_bits_truncate(si.flags).contains(SifFlags::INITDOMAIN);
    BOTH.store(domu && mfn != 0 && port != 0, Ordering::SeqCst);
}

struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE_MAX - 1 - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `args` and a newline as one line (see the module doc).
pub fn line(args: fmt::Arguments) {
    let mut line = Line { buf: [0; LINE_MAX], len: 0 };
    let _ = line.write_fmt(args);
    line.buf[line.len] = b'\n';
    // Only whole `str` characters were copied in, so this is UTF-8.
    let text = core::str::from_utf8(&line.buf[..=line.len]).unwrap_or("\n");
    let _ = crate::console::Console.write_str(text);
    if BOTH.load(Ordering::SeqCst) {
        let _ = hypercall::console_write(text.as_bytes());
    }
}

/// Prints a formatted line on both consoles (see [`tee`](crate::tee)).
#[macro_export]
macro_rules! tee_println {
    ($($arg:tt)*) => {
        $crate::tee::line(format_args!($($arg)*))
    };
}
