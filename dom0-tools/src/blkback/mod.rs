//! xenish-blkback: the block backend daemon of the control domain. It
//! serves every vbd whose backend directory is under
//! `/local/domain/0/backend/qdisk` (libxl's `backendtype=qdisk`, the
//! default for image files in xenish's `xl`) from raw image files and
//! block devices, speaking blkif to any frontend — Linux's xen-blkfront or
//! guest-rt's — through gntdev, evtchn and XenStore.
//!
//! It offers everything `pv-drivers`' backend implements: persistent
//! grants, indirect descriptors (256 segments), rings of up to 16 pages,
//! up to `--max-queues` queues (4 by default), `feature-flush-cache`
//! (`fdatasync`), `feature-discard` (holes punched in image files), and
//! read-only disks. Each queue is served by its own thread; the main
//! thread watches XenStore and runs each device's handshake
//! ([`device::Vbd`]). Frontends are not trusted: a bad request gets an
//! error response, a broken ring closes the device, and a device whose
//! directory or frontend goes away is torn down with every grant unmapped.
//!
//! Options: `-F`/`--foreground`, `--pid-file=FILE`, `--log=FILE`
//! (default `/var/log/xen/xenish-blkback.log`), `--max-queues=N`,
//! `--kind=NAME` (the backend directory's kind, default `qdisk`).
//! Semantics: QEMU's `hw/xen/xen-bus.c` (device discovery), Linux's
//! `drivers/block/xen-blkback/` (what is offered and how it behaves).

pub mod device;
pub mod disk;
pub mod grants;
pub mod store;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::Arc;

use dom0_tools::xs_client::{TxId, XsClient};
use guest_abi::XenError;
use xendev::Gntdev;

use device::{Limits, Vbd};

/// The backend kind served by default.
pub const DEFAULT_KIND: &str = "qdisk";
/// Where the log goes when the daemon is in the background.
pub const DEFAULT_LOG: &str = "/var/log/xen/xenish-blkback.log";
/// How often devices are checked for broken rings without an event.
const CHECK_MS: i32 = 1000;
const USAGE: &str =
    "Usage: xenish-blkback [-F|--foreground] [--pid-file=FILE] [--log=FILE] [--max-queues=N] [--kind=NAME]";

/// Parsed options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Stay in the foreground, logging to stderr.
    pub foreground: bool,
    /// Where to write the PID.
    pub pid_file: Option<String>,
    /// The log file (background only).
    pub log: String,
    /// `multi-queue-max-queues`.
    pub max_queues: u32,
    /// The backend kind to serve.
    pub kind: String,
}

/// Parses the command line (without argv[0]).
pub fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        foreground: false,
        pid_file: None,
        log: DEFAULT_LOG.into(),
        max_queues: 4,
        kind: DEFAULT_KIND.into(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or(format!("{key} needs a value"));
        match key {
            "-F" | "--foreground" => o.foreground = true,
            "--pid-file" => o.pid_file = Some(value()?),
            "--log" => o.log = value()?,
            "--kind" => o.kind = value()?,
            "--max-queues" => {
                o.max_queues = value()?.parse().ok().filter(|n| (1..=64).contains(n)).ok_or("bad --max-queues")?;
            }
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.kind.is_empty() || o.kind.contains('/') {
        return Err("bad --kind".into());
    }
    Ok(o)
}

/// A log line (stderr: the terminal, or the log file in the background).
pub fn log(line: &str) {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    eprintln!("[{}.{:03}] xenish-blkback: {line}", t.as_secs(), t.subsec_millis());
}

/// Forks; the parent waits until the child reports it is ready (or why
/// not) and exits with that verdict. Returns the child's end of the pipe.
fn daemonize(log_path: &str) -> std::io::Result<File> {
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
        eprintln!("xenish-blkback: {}", if verdict.is_empty() { "exited during start-up" } else { &verdict });
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

/// The daemon.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xenish-blkback: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut ready = None;
    if !opts.foreground {
        match daemonize(&opts.log) {
            Ok(w) => ready = Some(w),
            Err(e) => {
                eprintln!("xenish-blkback: cannot daemonize: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut tell = |msg: &str| {
        if let Some(mut w) = ready.take() {
            let _ = w.write_all(msg.as_bytes());
        }
    };
    // One daemon: the pid file's lock says whether another one runs (two
    // xl processes may start it at once).
    let _pid_file = match opts.pid_file.as_deref().map(lock_pid_file) {
        Some(Ok(Some(f))) => Some(f),
        Some(Ok(None)) => {
            tell("R");
            return ExitCode::SUCCESS;
        }
        Some(Err(e)) => {
            tell(&e);
            return ExitCode::FAILURE;
        }
        None => None,
    };
    let (mut xs, gntdev) = match setup(&opts) {
        Ok(x) => x,
        Err(e) => {
            log(&e);
            tell(&e);
            return ExitCode::FAILURE;
        }
    };
    log(&format!("serving /local/domain/0/backend/{}, up to {} queues", opts.kind, opts.max_queues));
    tell("R");
    serve(&mut xs, &gntdev, &opts);
    ExitCode::FAILURE
}

/// Locks and writes the pid file; `None` if another daemon holds it.
fn lock_pid_file(path: &str) -> Result<Option<File>, String> {
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

/// Opens XenStore and gntdev and watches the backend directory.
fn setup(opts: &Options) -> Result<(XsClient, Arc<Gntdev>), String> {
    let mut xs = XsClient::open().map_err(|e| format!("cannot connect to xenstore: {e}"))?;
    let gntdev = Gntdev::open().map_err(|e| format!("cannot open /dev/xen/gntdev: {e}"))?;
    xs.watch(&format!("/local/domain/0/backend/{}", opts.kind), "backend")
        .map_err(|e| format!("cannot watch the backend directory: {e}"))?;
    Ok((xs, Arc::new(gntdev)))
}

/// The backend directories under `base`: `base/<frontend>/<devid>`.
fn device_dirs(xs: &mut XsClient, base: &str) -> Vec<String> {
    let mut out = Vec::new();
    for fe in xs.directory(TxId::NONE, base).unwrap_or_default() {
        for devid in xs.directory(TxId::NONE, &format!("{base}/{fe}")).unwrap_or_default() {
            out.push(format!("{base}/{fe}/{devid}"));
        }
    }
    out
}

/// The main loop: on every XenStore event (or each second), take on new
/// devices, step every device, check the queues.
fn serve(xs: &mut XsClient, gntdev: &Arc<Gntdev>, opts: &Options) {
    let home = "/local/domain/0";
    let base = format!("{home}/backend/{}", opts.kind);
    let limits = Limits { max_queues: opts.max_queues };
    let mut devices: BTreeMap<String, Vbd> = BTreeMap::new();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    loop {
        let dirs = device_dirs(xs, &base);
        refused.retain(|d| dirs.contains(d));
        for dir in &dirs {
            if devices.contains_key(dir) || refused.contains(dir) {
                continue;
            }
            match Vbd::open(xs, home, dir, limits) {
                Ok(Some(vbd)) => {
                    let _ = xs.watch(&format!("{}/state", vbd.frontend_dir()), dir);
                    devices.insert(dir.clone(), vbd);
                }
                Ok(None) => {}
                Err(e) => {
                    log(&e);
                    refused.insert(dir.clone());
                }
            }
        }
        devices.retain(|dir, vbd| {
            vbd.check(xs);
            let keep = vbd.step(xs, gntdev);
            if !keep {
                let _ = xs.unwatch(&format!("{}/state", vbd.frontend_dir()), dir);
            }
            keep
        });
        match xs.read_watch_timeout(CHECK_MS) {
            Ok(_) => while let Ok(Some(_)) = xs.read_watch_timeout(0) {},
            Err(e) if e.is(XenError::Enoent) => {}
            Err(e) => {
                log(&format!("xenstore connection lost: {e}"));
                for vbd in devices.values_mut() {
                    vbd.teardown();
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_as_documented() {
        let o = parse_options(&v(&["-F", "--max-queues=2", "--pid-file", "/run/b.pid", "--kind=vbd3"]));
        let o = o.unwrap_or_else(|e| panic!("{e}"));
        assert!(o.foreground);
        assert_eq!((o.max_queues, o.pid_file.as_deref(), o.kind.as_str()), (2, Some("/run/b.pid"), "vbd3"));
        assert_eq!(parse_options(&[]).map(|o| (o.max_queues, o.kind)), Ok((4, "qdisk".into())));
        assert!(parse_options(&v(&["--max-queues=0"])).is_err());
        assert!(parse_options(&v(&["--kind=a/b"])).is_err());
        assert!(parse_options(&v(&["--pid-file"])).is_err());
        assert!(parse_options(&v(&["-x"])).is_err());
    }
}
