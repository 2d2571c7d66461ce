//! One domain's console: its ring (grant 0, else a foreign map of
//! `console/ring-ref`), its own event channel, a pty for `xl console`, the
//! log file; served by one thread until the domain goes.
//!
//! Semantics: Xen 4.17 `tools/console/daemon/io.c` (`domain_create_ring`:
//! `xengnttab_map_grant_ref(GNTTAB_RESERVED_CONSOLE)` falling back to
//! `xc_map_foreign_range(ring-ref)`, one `xenevtchn` handle per domain,
//! `domain_create_tty`: `openpty` + `cfmakeraw`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use xendev::{Evtchn, Gntdev, Mapping, Privcmd};

use super::ring;

/// `GNTTAB_RESERVED_CONSOLE`.
const CONSOLE_GREF: u32 = 0;
/// How often a console thread looks at its stop flag, in ms.
const TICK_MS: i32 = 200;

/// Where a domain's console lives, as the store says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleInfo {
    /// The domain.
    pub domid: u16,
    /// Its name (for the log file).
    pub name: String,
    /// `console/ring-ref`: the ring's MFN.
    pub ring_ref: u64,
    /// `console/port`: the guest's end of the event channel.
    pub port: u32,
}

/// A served console: the thread and how to stop it.
pub struct Console {
    /// What it serves.
    pub info: ConsoleInfo,
    /// The pty's slave path (written to `console/tty`).
    pub tty: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Kept open so the master does not see hang-ups between clients.
    _slave: OwnedFd,
}

impl Console {
    /// Maps the ring, binds the channel, opens the pty and starts serving.
    pub fn start(info: ConsoleInfo, log: Option<File>) -> Result<Console, String> {
        let ring = map_ring(&info)?;
        let evtchn = Evtchn::open().map_err(|e| e.to_string())?;
        let local = evtchn.bind_interdomain(info.domid, info.port).map_err(|e| e.to_string())?;
        let (master, slave, tty) = open_pty()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("console-{}", info.domid))
            .spawn(move || serve(&ring, &evtchn, local, master, log, &flag))
            .map_err(|e| e.to_string())?;
        Ok(Console { info, tty, stop, thread: Some(thread), _slave: slave })
    }

    /// Stops serving (after a last drain) and releases everything.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Grant ref 0, else a foreign map of the ring's MFN.
fn map_ring(info: &ConsoleInfo) -> Result<Mapping, String> {
    let by_grant = Gntdev::open().and_then(|g| g.map_grant(info.domid, CONSOLE_GREF, true));
    match by_grant {
        Ok(m) => Ok(m),
        Err(grant_err) => Privcmd::open()
            .and_then(|p| p.map_foreign(info.domid, &[info.ring_ref], true))
            .map_err(|e| format!("cannot map the ring: grant 0: {grant_err}; ring-ref {:#x}: {e}", info.ring_ref)),
    }
}

/// A raw pty: (master, slave, slave's path).
fn open_pty() -> Result<(File, OwnedFd, String), String> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds; the name, termios and winsize
    // pointers are NULL, which it allows.
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if r != 0 {
        return Err(format!("openpty: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: openpty succeeded: both fds are fresh and ours.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut t = std::mem::MaybeUninit::<libc::termios>::zeroed();
    // SAFETY: termios calls on the live slave fd with a struct they fill
    // (tcgetattr) or read (tcsetattr); fcntl on the live master fd.
    unsafe {
        if libc::tcgetattr(slave.as_raw_fd(), t.as_mut_ptr()) == 0 {
            let mut raw = t.assume_init();
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &raw);
        }
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most `name.len()` bytes into `name`.
    if unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) } != 0 {
        return Err("ptsname_r failed".into());
    }
    let bytes: Vec<u8> = name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok((master, slave, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Waits for the channel or the pty (or the tick).
fn wait(evtchn: &Evtchn, pty: &File) {
    let mut fds = [
        libc::pollfd { fd: evtchn.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: pty.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: two initialised pollfds for fds alive across the call.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, TICK_MS) };
}

/// The console thread: guest output to the log and the pty, pty input to
/// the guest, until `stop`.
fn serve(ring: &Mapping, evtchn: &Evtchn, port: u32, mut pty: File, mut log: Option<File>, stop: &AtomicBool) {
    let mut pending_in: Vec<u8> = Vec::new();
    let mut ports = [0u32; 16];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if let Ok(n) = evtchn.pending(&mut ports) {
            for p in ports.iter().take(n) {
                let _ = evtchn.unmask(*p);
            }
        }
        if let Some(out) = ring::drain_out(ring) {
            if !out.is_empty() {
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&out);
                }
                // A pty nobody reads fills up: what does not fit is dropped.
                let _ = pty.write(&out);
                let _ = evtchn.notify(port);
            }
        }
        let mut buf = [0u8; 1024];
        if let Ok(n) = pty.read(&mut buf) {
            pending_in.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        if !pending_in.is_empty() {
            let sent = ring::fill_in(ring, &pending_in);
            if sent > 0 {
                pending_in.drain(..sent);
                let _ = evtchn.notify(port);
            }
        }
        if stopping {
            return;
        }
        wait(evtchn, &pty);
    }
}
