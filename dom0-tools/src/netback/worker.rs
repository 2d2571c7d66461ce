//! [`Worker`]: the thread that serves one queue of a connected vif.
//!
//! It owns the queue's two ring mappings, its event channel(s) and a
//! descriptor of the TAP queue. Each round it moves the frontend's
//! packets to the TAP ([`NetbackQueue::tx_service`], a `virtio_net_hdr`
//! written in the headroom before each frame), then frames read from
//! the TAP to the frontend ([`NetbackQueue::rx_service`]) as far as its
//! posted buffers go, and sleeps in `poll` on the event channel, the TAP
//! (unless it is waiting for buffers, when the frames stay read and the
//! TAP's own queue holds the rest) and a wake pipe. Each delivered port
//! is unmasked before the rings are served again, so no event is lost;
//! a frontend without `feature-rx-notify` is polled every 10 ms while
//! buffers are awaited. [`Worker::stop`] sets the stop flag, wakes it,
//! and joins it: when it returns, the rings and ports are released.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use guest_abi::io::ring::SharedRing;
use pv_drivers::netif::back::{NetbackQueue, QueueStats, RxFrame, TxBatch, TxDrops};
use pv_drivers::netif::keys::Features;
use xendev::{Evtchn, Mapping};

use super::grants::GntdevCopy;
use super::tap::{read_frame, write_frame};
use super::{log, vnet};

/// Packets taken from the TX ring per batch.
const TX_BATCH: usize = 64;
/// Frames read from the TAP per batch.
const RX_BATCH: usize = 64;
/// The largest read from the TAP: a 64 KiB super-packet, its Ethernet
/// header and the vnet header.
const MAX_READ: usize = 65536 + 64 + vnet::LEN;
/// Bytes of frames held for the frontend.
const RX_BUFFER: usize = 16 * MAX_READ;
/// Dropped packets logged per queue (then only counted).
const LOGGED_DROPS: u64 = 20;
/// How often a frontend that does not notify is polled for buffers.
const RX_POLL_MS: i32 = 10;

/// What a worker needs; everything is released when it ends.
pub struct WorkerSetup {
    /// For the logs: `vif<fe>.<devid>/q<i>`.
    pub name: String,
    /// The TX ring, mapped read-write.
    pub tx_ring: Mapping,
    /// The RX ring, mapped read-write.
    pub rx_ring: Mapping,
    /// The event channel device with the queue's port(s) bound.
    pub evtchn: Evtchn,
    /// The local port for TX.
    pub tx_port: u32,
    /// The local port for RX (the TX one without split channels).
    pub rx_port: u32,
    /// The frontend domain.
    pub frontend: u16,
    /// The offloads both ends share.
    pub features: Features,
    /// The frontend notifies when it posts RX buffers.
    pub rx_notify: bool,
    /// The TAP queue's descriptor.
    pub tap: File,
    /// Grant copies.
    pub copier: GntdevCopy,
}

/// What a worker moved, when it ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerStats {
    /// The queue's counters.
    pub queue: QueueStats,
    /// Frames the TAP refused.
    pub tap_refused: u64,
    /// Frames read from the TAP with a header netif cannot carry.
    pub bad_vnet: u64,
}

/// A running queue.
pub struct Worker {
    stop: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
    wake: File,
    handle: JoinHandle<WorkerStats>,
}

/// A pipe's (read, write) ends.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is an array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits until one of `fds` (negative entries ignored) is readable, or
/// `timeout_ms` (negative: forever); `EINTR` retried. Says which were
/// readable (all of them if `poll` failed, so that nothing is missed).
fn poll<const N: usize>(fds: [RawFd; N], timeout_ms: i32) -> [bool; N] {
    let mut p = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
    loop {
        // SAFETY: `p` holds `N` valid pollfds for the duration of the call.
        let n = unsafe { libc::poll(p.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return p.map(|q| q.fd >= 0 && q.revents != 0);
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return [true; N];
        }
    }
}

impl Worker {
    /// Starts serving.
    pub fn spawn(setup: WorkerSetup) -> std::io::Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(AtomicBool::new(false));
        let (wake_rd, wake_wr) = pipe()?;
        let (s, b) = (stop.clone(), broken.clone());
        let handle = std::thread::Builder::new().name(setup.name.clone()).spawn(move || run(setup, &s, &b, wake_rd))?;
        Ok(Worker { stop, broken, wake: File::from(wake_wr), handle })
    }

    /// Whether the frontend broke a ring (the worker has ended).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Stops the worker and waits until it has released everything.
    pub fn stop(mut self) -> WorkerStats {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.write_all(b"s");
        self.handle.join().unwrap_or_default()
    }
}

/// Logs the drops counted since `last` (up to the limit).
fn log_drops(name: &str, now: &TxDrops, last: &mut TxDrops, logged: &mut u64) {
    if now == last {
        return;
    }
    let pairs = [
        ("a slot crossing its page", now.cross_page, last.cross_page),
        ("more slots than netif allows", now.too_many_slots, last.too_many_slots),
        ("slot sizes that do not add up", now.size_mismatch, last.size_mismatch),
        ("a runt", now.runt, last.runt),
        ("a bad extra-info slot", now.bad_extra, last.bad_extra),
        ("a bad GSO descriptor", now.bad_gso, last.bad_gso),
        ("a grant that does not copy", now.bad_grant, last.bad_grant),
        ("headers that do not parse", now.bad_headers, last.bad_headers),
    ];
    for (what, n, before) in pairs {
        for _ in before..n {
            if *logged < LOGGED_DROPS {
                log(&format!("{name}: dropped a packet from the frontend: {what}"));
            }
            *logged += 1;
        }
    }
    *last = *now;
}

fn run(setup: WorkerSetup, stop: &AtomicBool, broken: &AtomicBool, wake: OwnedFd) -> WorkerStats {
    let WorkerSetup {
        name,
        tx_ring,
        rx_ring,
        evtchn,
        tx_port,
        rx_port,
        frontend,
        features,
        rx_notify,
        tap,
        mut copier,
    } = setup;
    let mut stats = WorkerStats::default();
    if tx_ring.len() != xendev::PAGE_SIZE || rx_ring.len() != xendev::PAGE_SIZE {
        log(&format!("{name}: bad ring mapping"));
        broken.store(true, Ordering::Release);
        return stats;
    }
    // SAFETY: each ring is a fresh page-aligned mmap of one page (checked
    // above), mapped until its Mapping drops at the end of this function,
    // after `queue` (dropped explicitly first); this thread touches the
    // pages only through these views.
    let (tx, rx) = unsafe { (SharedRing::from_raw(tx_ring.as_ptr(), 1), SharedRing::from_raw(rx_ring.as_ptr(), 1)) };
    let mut queue = NetbackQueue::new(tx, rx, frontend, features);
    let mut batch = TxBatch::default();
    let mut rx_buf = vec![0u8; RX_BUFFER];
    let mut rx_frames: Vec<RxFrame> = Vec::new();
    let mut fill = 0usize;
    let (mut last_drops, mut logged) = (TxDrops::default(), 0u64);
    let mut ports = [0u32; 64];
    // Whether the TAP may hold frames: it polled readable, or frames
    // were just written to it (dom0's answers to them, an ARP reply or
    // an echo reply, are queued at once). A read that would only say
    // EAGAIN is a system call saved per wake-up.
    let mut tap_ready = true;
    let notify = |port: u32| {
        if let Err(e) = evtchn.notify(port) {
            log(&format!("{name}: {e}"));
        }
    };
    'serve: while !stop.load(Ordering::Acquire) {
        // Guest to dom0.
        loop {
            let s = match queue.tx_service(&mut copier, &mut batch, vnet::LEN, TX_BATCH) {
                Ok(s) => s,
                Err(e) => {
                    log(&format!("{name}: {e}; closing"));
                    broken.store(true, Ordering::Release);
                    break 'serve;
                }
            };
            tap_ready |= !batch.frames.is_empty();
            for f in &batch.frames {
                let hdr = vnet::encode(batch.frame(f), f.offload);
                let Some(out) = batch.buf.get_mut(f.start - vnet::LEN..f.start + f.len) else { continue };
                out[..vnet::LEN].copy_from_slice(&hdr);
                match write_frame(&tap, out) {
                    Ok(true) => {}
                    Ok(false) => stats.tap_refused += 1,
                    Err(e) => {
                        stats.tap_refused += 1;
                        log(&format!("{name}: writing to the TAP: {e}"));
                    }
                }
            }
            if s.notify {
                notify(tx_port);
            }
            if !s.more {
                break;
            }
        }
        log_drops(&name, &queue.stats().tx_drops, &mut last_drops, &mut logged);
        // dom0 to guest.
        let mut waiting = false;
        loop {
            while tap_ready && rx_frames.len() < RX_BATCH && fill + MAX_READ <= rx_buf.len() {
                match read_frame(&tap, &mut rx_buf[fill..fill + MAX_READ]) {
                    Ok(Some(n)) if n > vnet::LEN => {
                        let mut h = [0u8; vnet::LEN];
                        h.copy_from_slice(&rx_buf[fill..fill + vnet::LEN]);
                        match vnet::decode(&h) {
                            Some(offload) => {
                                rx_frames.push(RxFrame { start: fill + vnet::LEN, len: n - vnet::LEN, offload });
                                fill += n;
                            }
                            None => stats.bad_vnet += 1,
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => tap_ready = false,
                    Err(e) => {
                        log(&format!("{name}: reading the TAP: {e}"));
                        break;
                    }
                }
            }
            if rx_frames.is_empty() {
                fill = 0;
                break;
            }
            let s = match queue.rx_service(&mut copier, &mut rx_buf[..fill], &rx_frames) {
                Ok(s) => s,
                Err(e) => {
                    log(&format!("{name}: {e}; closing"));
                    broken.store(true, Ordering::Release);
                    break 'serve;
                }
            };
            if s.notify {
                notify(rx_port);
            }
            rx_frames.drain(..s.taken.min(rx_frames.len()));
            match rx_frames.first() {
                None => fill = 0,
                Some(f) => {
                    let base = f.start - vnet::LEN;
                    rx_buf.copy_within(base..fill, 0);
                    fill -= base;
                    rx_frames.iter_mut().for_each(|f| f.start -= base);
                }
            }
            if s.waiting {
                match queue.rx_arm() {
                    Ok(true) => continue,
                    Ok(false) => {
                        waiting = true;
                        break;
                    }
                    Err(e) => {
                        log(&format!("{name}: {e}; closing"));
                        broken.store(true, Ordering::Release);
                        break 'serve;
                    }
                }
            }
        }
        let tap_fd = if waiting { -1 } else { tap.as_raw_fd() };
        let timeout = if waiting && !rx_notify { RX_POLL_MS } else { -1 };
        let [event, readable, _] = poll([evtchn.as_raw_fd(), tap_fd, wake.as_raw_fd()], timeout);
        tap_ready |= readable;
        if !event {
            continue;
        }
        match evtchn.pending(&mut ports) {
            Ok(n) => {
                for &p in ports.iter().take(n) {
                    let _ = evtchn.unmask(p);
                }
            }
            Err(e) => log(&format!("{name}: {e}")),
        }
    }
    log_drops(&name, &queue.stats().tx_drops, &mut last_drops, &mut logged);
    stats.queue = queue.stats();
    drop(queue);
    drop(tx_ring);
    drop(rx_ring);
    drop(evtchn);
    stats
}
