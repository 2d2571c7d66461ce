//! The hypervisor console: `printk!` for the hypervisor's own messages and
//! per-domain guest output, prefixed `(dN) ` at the start of each line as Xen
//! does. The arch layer installs the byte sink (the serial port); host tests
//! run without one.

use core::fmt::{self, Write};

use spin::Mutex;

/// Where console bytes go.
pub type Sink = fn(&[u8]);

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Installs the output sink (the serial line on hardware).
pub fn set_sink(sink: Sink) {
    *SINK.lock() = Some(sink);
}

/// Writes raw bytes to the console, translating `\n` to `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    let sink = *SINK.lock();
    if let Some(sink) = sink {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            if let Some(body) = chunk.strip_suffix(b"\n") {
                sink(body);
                sink(b"\r\n");
            } else {
                sink(chunk);
            }
        }
    }
}

struct ConsoleWriter;

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Formats to the console; used by [`printk!`].
pub fn print_fmt(args: fmt::Arguments) {
    let _ = ConsoleWriter.write_fmt(args);
}

/// Prints a line of hypervisor output on the console.
#[macro_export]
macro_rules! printk {
    ($($arg:tt)*) => {
        $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Longest line a guest console buffers before it is flushed anyway.
pub const LINE_MAX: usize = 256;

/// A guest's console stream: output is buffered per line and written as
/// whole lines prefixed `(dN) `, so the lines of different domains do not
/// interleave; bytes that would garble the serial line are dropped.
#[derive(Clone, Debug)]
pub struct GuestConsole {
    domid: u16,
    line: [u8; LINE_MAX],
    len: usize,
}

impl GuestConsole {
    /// The console of domain `domid`.
    pub const fn new(domid: u16) -> Self {
        GuestConsole { domid, line: [0; LINE_MAX], len: 0 }
    }

    fn flush_line(&mut self, out: &mut dyn FnMut(&[u8])) {
        let mut prefix = PrefixBuf::default();
        let _ = write!(prefix, "(d{}) ", self.domid);
        out(prefix.as_bytes());
        out(&self.line[..self.len]);
        out(b"\n");
        self.len = 0;
    }

    /// Writes guest bytes; complete lines (or full buffers) go to `out`.
    pub fn write(&mut self, bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
        for &b in bytes {
            match b {
                b'\n' => self.flush_line(out),
                // Printable ASCII, tab, and UTF-8 bytes pass; other control
                // characters (escape sequences, \r) are dropped.
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    if self.len == LINE_MAX {
                        self.flush_line(out);
                    }
                    self.line[self.len] = b;
                    self.len += 1;
                }
                _ => {}
            }
        }
    }

    /// Writes out a partial line (when the domain goes away).
    pub fn flush(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.len > 0 {
            self.flush_line(out);
        }
    }
}

#[derive(Default)]
struct PrefixBuf {
    buf: [u8; 16],
    len: usize,
}

impl PrefixBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for PrefixBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn prefixes_whole_lines_and_filters_controls() {
        let mut c = GuestConsole::new(3);
        let mut out = Vec::new();
        c.write(b"hello\r\nwor", &mut |b| out.extend_from_slice(b));
        c.write(b"ld\n\x1b[2J!", &mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"(d3) hello\n(d3) world\n");
        c.flush(&mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"(d3) hello\n(d3) world\n(d3) [2J!\n");
        let long = [b'x'; LINE_MAX + 1];
        out.clear();
        c.write(&long, &mut |b| out.extend_from_slice(b));
        assert_eq!(out.len(), 5 + LINE_MAX + 1, "a full buffer is flushed as a line");
    }
}
