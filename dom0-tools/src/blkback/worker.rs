//! [`Worker`]: the thread that serves one queue of a connected vbd.
//!
//! It owns the queue's ring mapping and event channel. It serves the
//! ring ([`BlkbackQueue::service`]), notifies the frontend when the ring
//! protocol asks, and sleeps in `poll` on the event channel and on a wake
//! pipe; each delivered port is unmasked (written back) before the ring
//! is served again, so no event is lost. [`Worker::stop`] sets the stop
//! flag, wakes it, and joins it: when it returns, the persistent grants,
//! the ring and the port are released (the frontend may end its grants).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use guest_abi::io::ring::SharedRing;
use pv_drivers::blkif::back::{BlkbackQueue, QueueConfig, QueueError, QueueStats};
use xendev::{Evtchn, Mapping};

use super::disk::FileDisk;
use super::grants::GntdevGrants;
use super::log;

/// Requests served between two looks at the stop flag.
const BUDGET: u32 = 1024;
/// Refused requests logged per queue (then only counted).
const LOGGED_ERRORS: u32 = 20;

/// What a worker needs; everything is released when it ends.
pub struct WorkerSetup {
    /// For the logs: `<frontend>/<devid>/q<i>`.
    pub name: String,
    /// The ring, mapped read-write.
    pub ring: Mapping,
    /// Its pages (a power of two).
    pub nr_pages: usize,
    /// The event channel device with the queue's port bound.
    pub evtchn: Evtchn,
    /// The local port.
    pub port: u32,
    /// How to serve.
    pub cfg: QueueConfig,
    /// Grant access.
    pub grants: GntdevGrants,
    /// The disk.
    pub disk: Arc<FileDisk>,
}

/// A running queue.
pub struct Worker {
    stop: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
    wake: File,
    handle: JoinHandle<QueueStats>,
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

/// Waits until `a` or `b` is readable (`EINTR` retried).
fn poll2(a: RawFd, b: RawFd) {
    let mut fds = [
        libc::pollfd { fd: a, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: b, events: libc::POLLIN, revents: 0 },
    ];
    loop {
        // SAFETY: two valid pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
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

    /// Whether the frontend broke the ring (the worker has ended).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Stops the worker and waits until it has released everything.
    pub fn stop(mut self) -> QueueStats {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.write_all(b"s");
        self.handle.join().unwrap_or_default()
    }
}

fn run(setup: WorkerSetup, stop: &AtomicBool, broken: &AtomicBool, wake: OwnedFd) -> QueueStats {
    let WorkerSetup { name, ring, nr_pages, evtchn, port, cfg, mut grants, disk } = setup;
    if !nr_pages.is_power_of_two() || ring.len() != nr_pages * xendev::PAGE_SIZE {
        log(&format!("{name}: bad ring mapping"));
        broken.store(true, Ordering::Release);
        return QueueStats::default();
    }
    // SAFETY: `ring` is a fresh page-aligned mmap of `nr_pages` pages
    // (checked above), mapped until it drops at the end of this function,
    // after `queue` (dropped explicitly first); this thread touches it only
    // through this SharedRing.
    let shared = unsafe { SharedRing::from_raw(ring.as_ptr(), nr_pages) };
    let mut queue = BlkbackQueue::new(shared, cfg);
    let mut logged = 0;
    let mut ports = [0u32; 64];
    while !stop.load(Ordering::Acquire) {
        match queue.service(&mut grants, &*disk, BUDGET) {
            Ok(s) => {
                if s.notify {
                    if let Err(e) = evtchn.notify(port) {
                        log(&format!("{name}: {e}"));
                    }
                }
                if let Some(r) = queue.take_last_error() {
                    if logged < LOGGED_ERRORS {
                        logged += 1;
                        log(&format!("{name}: request {} (op {}) answered {}: {:?}", r.id, r.echo, r.status, r.why));
                    }
                }
                if s.more {
                    continue;
                }
            }
            Err(QueueError::RingOverflow) => {
                log(&format!("{name}: the frontend published more requests than the ring holds; closing"));
                broken.store(true, Ordering::Release);
                break;
            }
        }
        poll2(evtchn.as_raw_fd(), wake.as_raw_fd());
        match evtchn.pending(&mut ports) {
            Ok(n) => {
                for &p in ports.iter().take(n) {
                    let _ = evtchn.unmask(p);
                }
            }
            Err(e) => log(&format!("{name}: {e}")),
        }
    }
    let stats = queue.stats();
    drop(queue);
    drop(ring);
    drop(evtchn);
    stats
}
