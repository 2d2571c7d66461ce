//! Going to the background, the pid file, and telling the parent that
//! the daemon is ready.
//!
//! Semantics: X:`tools/xenstore/xenstored_posix.c` `daemonize`,
//! `finish_daemonize`, `write_pidfile` (Xen 4.17), with one change: the
//! parent waits, over a pipe, until the child has its socket and rings
//! ready (or failed), and exits with the child's verdict. A caller like
//! `xenstored --pid-file F && xenstore-write ...` therefore never races
//! the daemon's start, and a failed start is a non-zero exit status.
//! Device mappings are made only after the fork (gntdev and privcmd
//! mappings are not inherited by children).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The child's end of the readiness pipe.
pub struct Ready(Option<File>);

impl Ready {
    /// No parent waits (`--no-fork`).
    pub fn none() -> Ready {
        Ready(None)
    }

    /// Tells the parent the daemon serves requests now.
    pub fn ok(&mut self) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(b"R");
        }
    }

    /// Tells the parent why the daemon could not start.
    pub fn fail(&mut self, why: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(why.as_bytes());
        }
    }
}

fn os_err<T>(what: &str) -> io::Result<T> {
    let e = io::Error::last_os_error();
    Err(io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// Forks into the background. Returns in the daemon only; the original
/// process waits for [`Ready`] and exits with 0 or 1.
pub fn daemonize() -> io::Result<Ready> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return os_err("pipe");
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here; the child only continues
    // ordinary Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return os_err("fork");
    }
    if pid > 0 {
        drop(wr);
        let mut verdict = Vec::new();
        let _ = File::from(rd).read_to_end(&mut verdict);
        // Reap the intermediate process (it exits right after its fork).
        // SAFETY: waitpid on our own child, with a null status pointer.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        if verdict.as_slice() == b"R" {
            // SAFETY: `_exit` ends the parent without running destructors
            // that belong to the daemon's resources.
            unsafe { libc::_exit(0) }
        }
        let why = String::from_utf8_lossy(&verdict);
        let why = if why.is_empty() { "the daemon exited during start-up" } else { &why };
        eprintln!("xenstored: {why}");
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    drop(rd);
    // SAFETY: a plain system call without memory arguments.
    if unsafe { libc::setsid() } < 0 {
        return os_err("setsid");
    }
    // Let the session leader exit so that the daemon cannot regain a tty.
    // SAFETY: still single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return os_err("fork");
    }
    if pid > 0 {
        // SAFETY: the intermediate process ends at once.
        unsafe { libc::_exit(0) }
    }
    std::env::set_current_dir("/")?;
    Ok(Ready(Some(File::from(wr))))
}

/// `finish_daemonize`: stdin, stdout and stderr become `/dev/null`.
pub fn detach_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which stay open.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return os_err("dup2");
        }
    }
    Ok(())
}

/// `write_pidfile`: creates `path`, locks it and writes the pid. The file
/// stays open (and locked) for the daemon's life.
pub fn write_pidfile(path: &Path) -> io::Result<File> {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    // SAFETY: lockf on a descriptor we own, no memory arguments.
    if unsafe { libc::lockf(f.as_raw_fd(), libc::F_TLOCK, 0) } != 0 {
        return os_err(&format!("{} is locked by another xenstored", path.display()));
    }
    f.set_len(0)?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}
