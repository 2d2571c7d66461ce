//! Running in the background: fork once the parent can be told whether
//! start-up worked, and one daemon per pid file (a lock on it), so that
//! two `xl` processes starting it at once leave one running.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Forks; the parent waits until the child reports it is ready (`R`)
/// or why not, and exits with that verdict. Returns the child's end of
/// the pipe. The child's output goes to `log_path`.
pub fn daemonize(program: &str, log_path: &str) -> std::io::Result<File> {
    let mut fds = [0i32; 2];
    // SAFETY: an array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open and ours alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded here; the child continues ordinary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        drop(wr);
        let mut verdict = String::new();
        let _ = File::from(rd).read_to_string(&mut verdict);
        if verdict == "R" {
            std::process::exit(0);
        }
        eprintln!("{program}: {}", if verdict.is_empty() { "exited during start-up" } else { &verdict });
        std::process::exit(1);
    }
    drop(rd);
    // SAFETY: a plain system call.
    unsafe { libc::setsid() };
    if let Some(dir) = std::path::Path::new(log_path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let log = OpenOptions::new().create(true).append(true).open(log_path)?;
    let null = File::open("/dev/null")?;
    // SAFETY: dup2 onto the standard descriptors, which stay open.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    std::env::set_current_dir("/")?;
    Ok(File::from(wr))
}

/// Locks and writes the pid file; `None` if another daemon holds it.
pub fn lock_pid_file(path: &str) -> Result<Option<File>, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: lockf on a descriptor we own, no memory arguments.
    if unsafe { libc::lockf(f.as_raw_fd(), libc::F_TLOCK, 0) } != 0 {
        return Ok(None);
    }
    let _ = f.set_len(0);
    writeln!(f, "{}", std::process::id()).map_err(|e| format!("{path}: {e}"))?;
    Ok(Some(f))
}
