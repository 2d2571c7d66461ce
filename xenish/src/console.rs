//! The hypervisor console: `printk!` for the hypervisor's own messages and
//! per-domain guest output, prefixed `(dN) ` at the start of each line as Xen
//! does. The arch layer installs the byte sink (the serial port); host tests
//! run without one. The hypervisor's own messages are also kept in a ring
//! ([`ConsoleRing`], Xen's `conring`) that the toolstack reads with
//! `XEN_SYSCTL_readconsole` (`xl dmesg`).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use crate::console_rate::TokenBucket;

/// Where console bytes go.
pub type Sink = fn(&[u8]);

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Installs the output sink (the serial line on hardware).
pub fn set_sink(sink: Sink) {
    *SINK.lock() = Some(sink);
}

/// Serializes whole pieces of output (a `printk!` line, a guest's line)
/// across CPUs, so that lines printed at once do not mix.
static OUTPUT: Mutex<()> = Mutex::new(());

/// Tries this many times for [`OUTPUT`] before printing without it: a CPU
/// that died or was interrupted (an NMI, a fault in the hypervisor) while
/// printing must not silence or hang every other CPU's console.
const OUTPUT_TRIES: u32 = 1 << 22;

/// Runs `emit` holding [`OUTPUT`], or without it once [`OUTPUT_TRIES`]
/// attempts failed (mixed output beats a hang).
fn with_output<R>(emit: impl FnOnce() -> R) -> R {
    for _ in 0..OUTPUT_TRIES {
        if let Some(_held) = OUTPUT.try_lock() {
            return emit();
        }
        core::hint::spin_loop();
    }
    emit()
}

/// Writes raw bytes to the console, translating `\n` to `\r\n`; one
/// call's bytes are not mixed with another CPU's output.
pub fn write_bytes(bytes: &[u8]) {
    with_output(|| sink_bytes(bytes));
}

/// [`write_bytes`] without taking [`OUTPUT`] (the caller holds it).
fn sink_bytes(bytes: &[u8]) {
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

/// Emits hypervisor output: into the console ring and to the sink, as one
/// piece.
fn emit_hypervisor(bytes: &[u8]) {
    with_output(|| {
        RING.lock().put(bytes);
        sink_bytes(bytes);
    });
}

/// Bytes of a `printk!` formatted before they are emitted as one piece
/// (a longer line is emitted in pieces of this size).
const PRINTK_BUF: usize = 256;

/// Collects a `printk!`'s formatted pieces, emitting whenever it fills.
struct ConsoleWriter {
    buf: [u8; PRINTK_BUF],
    len: usize,
}

impl ConsoleWriter {
    fn flush(&mut self) {
        if self.len > 0 {
            emit_hypervisor(self.buf.get(..self.len).unwrap_or(&[]));
            self.len = 0;
        }
    }
}

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            if self.len == PRINTK_BUF {
                self.flush();
            }
            let room = PRINTK_BUF - self.len;
            let (now, later) = rest.split_at(rest.len().min(room));
            if let Some(dst) = self.buf.get_mut(self.len..self.len + now.len()) {
                dst.copy_from_slice(now);
            }
            self.len += now.len();
            rest = later;
        }
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
    let mut w = ConsoleWriter { buf: [0; PRINTK_BUF], len: 0 };
    let _ = w.write_fmt(args);
    w.flush();
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

/// Whether domains other than the control domain may write to the
/// hypervisor console with `console_io` (`console_io=all`).
static DOMU_WRITES: AtomicBool = AtomicBool::new(false);

/// Lets every domain write to the hypervisor console with `console_io`,
/// as a Xen built with `CONFIG_VERBOSE_DEBUG` does (xenish's
/// `console_io=all`; release builds of Xen 4.17 refuse domUs).
pub fn allow_domu_writes() {
    DOMU_WRITES.store(true, Ordering::Relaxed);
}

/// Whether [`allow_domu_writes`] was called.
pub fn domu_writes_allowed() -> bool {
    DOMU_WRITES.load(Ordering::Relaxed)
}

/// A guest's console stream: output is buffered per line and written as
/// whole lines prefixed `(dN) `, so the lines of different domains do not
/// interleave; bytes that would garble the serial line are dropped. A
/// rate-limited stream (every domain's but the control domain's) spends
/// a [`TokenBucket`] on each line it writes, prefix included; a line the
/// bucket cannot pay for is dropped and counted, and the count is
/// reported before the next line that gets through.
#[derive(Clone, Debug)]
pub struct GuestConsole {
    domid: u16,
    line: [u8; LINE_MAX],
    len: usize,
    bucket: Option<TokenBucket>,
    suppressed: u64,
    corrupt_ring_reported: bool,
}

impl GuestConsole {
    /// The console of domain `domid`, never rate-limited (the control
    /// domain's: Xen prints its `console_io` writes as they come).
    pub const fn unlimited(domid: u16) -> Self {
        GuestConsole { domid, line: [0; LINE_MAX], len: 0, bucket: None, suppressed: 0, corrupt_ring_reported: false }
    }

    /// The console of domain `domid`, held to [`TokenBucket::console`].
    pub const fn rate_limited(domid: u16) -> Self {
        GuestConsole { bucket: Some(TokenBucket::console()), ..Self::unlimited(domid) }
    }

    /// Bytes of output dropped since the last report.
    #[cfg(test)]
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Whether a corrupt console ring is to be reported now: true the
    /// first time only, so a guest cannot flood the log with it.
    pub fn report_corrupt_ring(&mut self) -> bool {
        !core::mem::replace(&mut self.corrupt_ring_reported, true)
    }

    fn flush_line(&mut self, now_ns: Option<u64>, out: &mut dyn FnMut(&[u8])) {
        let mut prefix = PrefixBuf::default();
        let _ = write!(prefix, "(d{}) ", self.domid);
        let cost = (prefix.len + self.len + 1) as u64;
        if let (Some(bucket), Some(now_ns)) = (self.bucket.as_mut(), now_ns) {
            if !bucket.take(now_ns, cost) {
                self.suppressed = self.suppressed.saturating_add(cost);
                self.len = 0;
                return;
            }
        }
        self.report_suppressed(out);
        // One piece, so that no other CPU's output lands inside the line.
        let mut whole = [0u8; PREFIX_MAX + LINE_MAX + 1];
        let mut n = 0;
        for part in [prefix.as_bytes(), self.line.get(..self.len).unwrap_or(&[]), b"\n"] {
            if let Some(dst) = whole.get_mut(n..n + part.len()) {
                dst.copy_from_slice(part);
                n += part.len();
            }
        }
        out(whole.get(..n).unwrap_or(&[]));
        self.len = 0;
    }

    fn report_suppressed(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.suppressed == 0 {
            return;
        }
        let mut note = NoteBuf::default();
        let _ = writeln!(note, "xenish: d{}: {} bytes of console output suppressed", self.domid, self.suppressed);
        out(note.as_bytes());
        self.suppressed = 0;
    }

    /// Writes guest bytes at system time `now_ns`; complete lines (or full
    /// buffers) go to `out` as the domain's rate allows.
    pub fn write(&mut self, now_ns: u64, bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
        for &b in bytes {
            match b {
                b'\n' => self.flush_line(Some(now_ns), out),
                // Printable ASCII, tab, and UTF-8 bytes pass; other control
                // characters (escape sequences, \r) are dropped.
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    if self.len == LINE_MAX {
                        self.flush_line(Some(now_ns), out);
                    }
                    if let Some(slot) = self.line.get_mut(self.len) {
                        *slot = b;
                        self.len += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Writes out a partial line and what was suppressed (when the domain
    /// goes away); one line at most, so not rate-limited.
    pub fn flush(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.len > 0 {
            self.flush_line(None, out);
        }
        self.report_suppressed(out);
    }
}

/// A fixed buffer for one short hypervisor note.
struct NoteBuf {
    buf: [u8; 96],
    len: usize,
}

impl Default for NoteBuf {
    fn default() -> Self {
        NoteBuf { buf: [0; 96], len: 0 }
    }
}

impl NoteBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for NoteBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Longest `(dN) ` prefix (domain IDs have at most five digits).
const PREFIX_MAX: usize = 16;

#[derive(Default)]
struct PrefixBuf {
    buf: [u8; PREFIX_MAX],
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

    /// Everything the sink got while [`printk_lines_from_two_cpus_do_not_mix`]
    /// ran.
    static CAPTURED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

    fn capture(bytes: &[u8]) {
        CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
    }

    #[test]
    fn printk_lines_from_two_cpus_do_not_mix() {
        let _quiet = crate::hypercall::tests::CONSOLE_RING.lock().unwrap_or_else(|e| e.into_inner());
        set_sink(capture);
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let cpus: Vec<_> = ['\u{1}', '\u{2}']
            .into_iter()
            .map(|mark| {
                let start = start.clone();
                std::thread::spawn(move || {
                    let piece: std::string::String = core::iter::repeat_n(mark, 20).collect();
                    start.wait();
                    for _ in 0..10_000 {
                        crate::printk!("{}{}{}", piece, piece, piece);
                    }
                })
            })
            .collect();
        for cpu in cpus {
            cpu.join().expect("the printing thread");
        }
        *SINK.lock() = None;
        let out = core::mem::take(&mut *CAPTURED.lock().unwrap_or_else(|e| e.into_inner()));
        // The sink gets `\r\n` line ends.
        let marked: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| l.iter().any(|&b| b == 1 || b == 2))
            .collect();
        assert_eq!(marked.len(), 20_000, "every line arrived once");
        for line in marked {
            let whole = line == [1; 60].as_slice() || line == [2; 60].as_slice();
            assert!(whole, "a mixed line: {line:?}");
        }
    }

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
        let mut c = GuestConsole::unlimited(3);
        let mut out = Vec::new();
        c.write(0, b"hello\r\nwor", &mut |b| out.extend_from_slice(b));
        c.write(0, b"ld\n\x1b[2J!", &mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"(d3) hello\n(d3) world\n");
        c.flush(&mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"(d3) hello\n(d3) world\n(d3) [2J!\n");
        let long = [b'x'; LINE_MAX + 1];
        out.clear();
        c.write(0, &long, &mut |b| out.extend_from_slice(b));
        assert_eq!(out.len(), 5 + LINE_MAX + 1, "a full buffer is flushed as a line");
    }

    #[test]
    fn a_rate_limited_console_drops_and_counts_what_the_bucket_cannot_pay() {
        use crate::console_rate::BURST_BYTES;
        let mut c = GuestConsole::rate_limited(7);
        let mut out = Vec::new();
        let line = [b'y'; 99];
        let mut flood = line.to_vec();
        flood.push(b'\n');
        // (d7) + 99 + \n = 105 bytes a line; the burst pays for 624 of them.
        let per_line = 105u64;
        for _ in 0..1000 {
            c.write(0, &flood, &mut |b| out.extend_from_slice(b));
        }
        let paid = BURST_BYTES / per_line;
        assert_eq!(out.len() as u64, paid * per_line, "the burst, in whole lines");
        assert_eq!(c.suppressed(), (1000 - paid) * per_line);
        out.clear();
        // One second later a second's worth of bytes is available again;
        // the first line that gets through says what was lost.
        c.write(1_000_000_000, b"back\n", &mut |b| out.extend_from_slice(b));
        let text = std::string::String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            std::format!("xenish: d7: {} bytes of console output suppressed\n(d7) back\n", (1000 - paid) * per_line)
        );
        assert_eq!(c.suppressed(), 0);
        let mut dom0 = GuestConsole::unlimited(0);
        out.clear();
        for _ in 0..1000 {
            dom0.write(0, &flood, &mut |b| out.extend_from_slice(b));
        }
        assert_eq!(out.len(), 1000 * 105, "the control domain is not limited");
    }

    #[test]
    fn a_corrupt_ring_is_reported_once() {
        let mut c = GuestConsole::rate_limited(1);
        assert!(c.report_corrupt_ring());
        assert!(!c.report_corrupt_ring());
        assert!(!c.report_corrupt_ring());
    }
}
