//! `xl console DOMAIN`: attach the terminal to a domain's PV console
//! through the pty xenconsoled serves, until Ctrl-] or the domain goes.
//!
//! The pty is named by `/local/domain/N/console/tty` (waited for up to
//! 5 s, as `xenconsole` does); both ends are put in raw mode and bytes
//! are copied both ways; `0x1d` (Ctrl-]) typed on the terminal detaches.
//! Semantics: Xen 4.17 `tools/console/client/main.c`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use super::{getopt, Ctx, Status, FAIL, OK, USAGE};
use crate::xs_client::TxId;

/// The escape character: Ctrl-].
pub const ESCAPE: u8 = 0x1d;
/// How long to wait for xenconsoled's pty.
const TTY_TIMEOUT: Duration = Duration::from_secs(5);

/// Terminal settings, restored on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: libc::termios,
}

impl<'a> RawMode<'a> {
    /// Puts `fd` in raw mode if it is a terminal.
    fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        let mut t = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: tcgetattr fills the termios it is given, for a live fd.
        if unsafe { libc::tcgetattr(fd.as_raw_fd(), t.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { t.assume_init() };
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct in place; tcsetattr reads it.
        unsafe {
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &raw);
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        // SAFETY: restores settings read from the same, still open, fd.
        unsafe { libc::tcsetattr(self.fd.as_raw_fd(), libc::TCSANOW, &self.saved) };
    }
}

/// The console's pty path, once xenconsoled has written it.
fn tty_path(ctx: &mut Ctx, domid: u16) -> Option<String> {
    let path = format!("/local/domain/{domid}/console/tty");
    let start = Instant::now();
    while start.elapsed() < TTY_TIMEOUT {
        if let Ok(v) = ctx.xs.read(TxId::NONE, &path) {
            if !v.is_empty() {
                return String::from_utf8(v).ok();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits until `a` or `b` is readable (or hung up); (a ready, b ready).
fn poll2(a: BorrowedFd, b: BorrowedFd) -> std::io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd { fd: a.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: b.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: two initialised pollfds for fds that outlive the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ready = |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    Ok((ready(&fds[0]), ready(&fds[1])))
}

/// Proxies the terminal and the domain's console until Ctrl-] or EOF.
pub fn attach(ctx: &mut Ctx, domid: u16) -> Status {
    let Some(path) = tty_path(ctx, domid) else {
        eprintln!("xenconsole: Could not read tty from store: No such file or directory");
        return FAIL;
    };
    let pty = match OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xenconsole: Could not open tty `{path}': {e}");
            return FAIL;
        }
    };
    let _pty_raw = RawMode::enter(pty.as_fd());
    let stdin = std::io::stdin();
    let _term_raw = RawMode::enter(stdin.as_fd());
    proxy(&pty, stdin.as_fd())
}

fn proxy(pty: &File, input: BorrowedFd) -> Status {
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    let mut input_open = true;
    loop {
        let Ok((from_user, from_domain)) = poll2(if input_open { input } else { pty.as_fd() }, pty.as_fd()) else {
            return FAIL;
        };
        if from_domain {
            match (&*pty).read(&mut buf) {
                Ok(0) | Err(_) => return OK,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if from_user && input_open {
            // SAFETY: reads into our buffer from a borrowed, open fd.
            let n = unsafe { libc::read(input.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { return FAIL };
            if n == 0 {
                input_open = false;
                continue;
            }
            let data = &buf[..n];
            let (send, detach) = match data.iter().position(|&b| b == ESCAPE) {
                Some(at) => (&data[..at], true),
                None => (data, false),
            };
            let _ = (&*pty).write_all(send);
            if detach {
                return OK;
            }
        }
    }
}

/// `xl console [-t pv|serial] [-n N] DOMAIN`.
pub fn main(args: &[String]) -> Status {
    let (opts, operands) = match getopt("console", args, "tn", "tn", &[("type", 't'), ("num", 'n')]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    for (o, v) in &opts {
        let v = v.as_deref().unwrap_or("");
        if (*o == 't' && v != "pv" && v != "serial") || (*o == 'n' && v != "0") {
            eprintln!("xl console: only console 0 of type pv is served");
            return FAIL;
        }
    }
    let [dom] = operands.as_slice() else {
        super::help("console");
        return USAGE;
    };
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    match ctx.find_domain(dom) {
        Ok(id) => attach(&mut ctx, id),
        Err(s) => s,
    }
}
