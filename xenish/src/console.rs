//! The hypervisor console: `printk!` for the hypervisor's own messages and
//! per-domain guest output, prefixed `(dN) ` at the start of each line as Xen
//! does. The arch layer installs the byte sink (the serial port); host tests
//! run without one. The hypervisor's own messages are also kept in a ring
//! ([`ConsoleRing`], Xen's `conring`) that the toolstack reads with
//! `XEN_SYSCTL_readconsole` (`xl dmesg`).

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
        RING.lock().put(s.as_bytes());
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Bytes the console ring keeps (Xen's default `conring_size`).
pub const CONRING_SIZE: usize = 16384;

/// The hypervisor's console ring: the last [`CONRING_SIZE`] bytes it
/// printed, with Xen's free-running producer and consumer indices (the
/// consumer moves when a reader clears what it read, or when the producer
/// overwrites unread bytes).
pub struct ConsoleRing {
    buf: [u8; CONRING_SIZE],
    prod: u32,
    cons: u32,
}

impl ConsoleRing {
    /// An empty ring.
    pub const fn new() -> Self {
        ConsoleRing { buf: [0; CONRING_SIZE], prod: 0, cons: 0 }
    }

    /// Appends `bytes`, overwriting the oldest ones when full.
    pub fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.prod as usize % CONRING_SIZE) {
                *slot = b;
            }
            self.prod = self.prod.wrapping_add(1);
        }
        if self.prod.wrapping_sub(self.cons) > CONRING_SIZE as u32 {
            self.cons = self.prod.wrapping_sub(CONRING_SIZE as u32);
        }
    }

    /// Up to `max` bytes from the consumer index, or from `index` if
    /// `incremental` and it lies between consumer and producer (Xen's
    /// `read_console_ring`); returns them and the index after them.
    pub fn read(&self, incremental: bool, index: u32, max: usize) -> (alloc::vec::Vec<u8>, u32) {
        let (mut c, p) = (self.cons, self.prod);
        let within = if c <= p { c < index && index <= p } else { c < index || index <= p };
        if incremental && within {
            c = index;
        }
        let mut out = alloc::vec::Vec::new();
        while c != p && out.len() < max {
            out.push(self.buf.get(c as usize % CONRING_SIZE).copied().unwrap_or(0));
            c = c.wrapping_add(1);
        }
        (out, c)
    }

    /// Consumes everything up to `index` (what a clearing reader read).
    pub fn clear_to(&mut self, index: u32) {
        let p = self.prod;
        self.cons =
            if p.wrapping_sub(index) > CONRING_SIZE as u32 { p.wrapping_sub(CONRING_SIZE as u32) } else { index };
    }
}

impl Default for ConsoleRing {
    fn default() -> Self {
        Self::new()
    }
}

/// The hypervisor's console ring.
pub static RING: Mutex<ConsoleRing> = Mutex::new(ConsoleRing::new());

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
    fn the_ring_keeps_the_last_bytes_and_reads_as_xen_does() {
        let mut r = ConsoleRing::new();
        r.put(b"hello ");
        r.put(b"world");
        let (all, end) = r.read(false, 0, 100);
        assert_eq!((all.as_slice(), end), (&b"hello world"[..], 11));
        assert_eq!(r.read(false, 0, 5).0, b"hello", "at most max");
        assert_eq!(r.read(true, 6, 100).0, b"world", "from an index within the ring");
        assert_eq!(r.read(true, 50, 100).0, b"hello world", "an index outside: from the consumer");
        r.clear_to(6);
        assert_eq!(r.read(false, 0, 100).0, b"world", "cleared up to what was read");
        let big = std::vec![b'x'; CONRING_SIZE + 10];
        r.put(&big);
        let (rest, end) = r.read(false, 0, usize::MAX);
        assert_eq!((rest.len(), end), (CONRING_SIZE, 11 + CONRING_SIZE as u32 + 10), "overwritten: the last ring-full");
    }

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
