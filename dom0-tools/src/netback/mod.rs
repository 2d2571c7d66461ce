//! xenish-netback: the network backend daemon of the control domain. It
//! serves every vif whose backend directory is under
//! `/local/domain/0/backend/qnic` (what xenish's `xl` writes for
//! `vif=[...]` entries with the default `backendtype=xenish`), speaking
//! netif to any frontend — Linux's xen-netfront or guest-rt's — through
//! gntdev (grant copy only), evtchn and XenStore, and connecting each to
//! a TAP device `vif<domid>.<devid>` on its bridge.
//!
//! It offers everything `pv-drivers`' backend implements: RX by grant
//! copy, scatter-gather, partial checksums (IPv4 and IPv6), TSO over
//! IPv4 and IPv6 (passed to and from the TAP as `virtio_net_hdr`s), split
//! event channels and up to `--max-queues` queues (a multi-queue TAP, one
//! descriptor per queue). Each queue is served by its own thread; the
//! main thread watches XenStore and runs each vif's handshake
//! ([`vif::Vif`]). Frontends are not trusted: a malformed packet is
//! answered with an error, counted and logged, a broken ring closes the
//! vif, and a vif whose directory or frontend goes away is torn down.
//!
//! Options: `-F`/`--foreground`, `--pid-file=FILE`, `--log=FILE`
//! (default `/var/log/xen/xenish-netback.log`), `--max-queues=N`,
//! `--kind=NAME` (the backend directory's kind, default `qnic`).
//! Semantics: Linux's `drivers/net/xen-netback/` (what is offered and
//! how it behaves), QEMU's `hw/xen/xen-bus.c` (device discovery).

pub mod daemon;
pub mod grants;
#[path = "../blkback/store.rs"]
pub mod store;
pub mod tap;
pub mod vif;
pub mod vnet;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use dom0_tools::xs_client::{TxId, XsClient};
use guest_abi::XenError;
use xendev::Gntdev;

use vif::{Limits, Vif};

/// The program's name.
pub const PROGRAM: &str = "xenish-netback";
/// The backend kind served by default.
pub const DEFAULT_KIND: &str = "qnic";
/// Where the log goes when the daemon is in the background.
pub const DEFAULT_LOG: &str = "/var/log/xen/xenish-netback.log";
/// How often vifs are checked for broken rings without an event.
const CHECK_MS: i32 = 1000;
/// Checks without an event between two full passes over XenStore (a
/// fallback: every change that matters fires a watch).
const FULL_PASS_EVERY: u32 = 10;
const USAGE: &str =
    "Usage: xenish-netback [-F|--foreground] [--pid-file=FILE] [--log=FILE] [--max-queues=N] [--kind=NAME]";

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
                o.max_queues = value()?.parse().ok().filter(|n| (1..=16).contains(n)).ok_or("bad --max-queues")?;
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
    eprintln!("[{}.{:03}] {PROGRAM}: {line}", t.as_secs(), t.subsec_millis());
}

/// The daemon.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut ready = None;
    if !opts.foreground {
        match daemon::daemonize(PROGRAM, &opts.log) {
            Ok(w) => ready = Some(w),
            Err(e) => {
                eprintln!("{PROGRAM}: cannot daemonize: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut tell = |msg: &str| {
        if let Some(mut w) = ready.take() {
            let _ = w.write_all(msg.as_bytes());
        }
    };
    let _pid_file = match opts.pid_file.as_deref().map(daemon::lock_pid_file) {
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

/// Opens XenStore, gntdev and the TUN device, and watches the backend
/// directory.
fn setup(opts: &Options) -> Result<(XsClient, Arc<Gntdev>), String> {
    let mut xs = XsClient::open().map_err(|e| format!("cannot connect to xenstore: {e}"))?;
    let gntdev = Gntdev::open().map_err(|e| format!("cannot open /dev/xen/gntdev: {e}"))?;
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err("no /dev/net/tun (modprobe tun)".into());
    }
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

/// The main loop: on every XenStore event, take on new vifs and step
/// every vif; each second check the queues (and every
/// [`FULL_PASS_EVERY`] seconds without an event, step anyway). A quiet
/// second costs no XenStore request: dom0's CPU goes to the traffic.
fn serve(xs: &mut XsClient, gntdev: &Arc<Gntdev>, opts: &Options) {
    let home = "/local/domain/0";
    let base = format!("{home}/backend/{}", opts.kind);
    let limits = Limits { max_queues: opts.max_queues };
    let mut vifs: BTreeMap<String, Vif> = BTreeMap::new();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut quiet = 0u32;
    loop {
        if !quiet.is_multiple_of(FULL_PASS_EVERY) {
            vifs.values_mut().for_each(|vif| vif.check(xs));
            match xs.read_watch_timeout(CHECK_MS) {
                Ok(Some(_)) => quiet = 0,
                Ok(None) => quiet += 1,
                Err(e) if e.is(XenError::Enoent) => quiet = 0,
                Err(e) => {
                    log(&format!("xenstore connection lost: {e}"));
                    vifs.values_mut().for_each(Vif::teardown);
                    return;
                }
            }
            continue;
        }
        let dirs = device_dirs(xs, &base);
        refused.retain(|d| dirs.contains(d));
        for dir in &dirs {
            if vifs.contains_key(dir) || refused.contains(dir) {
                continue;
            }
            match Vif::open(xs, home, dir, limits) {
                Ok(Some(vif)) => {
                    let _ = xs.watch(&format!("{}/state", vif.frontend_dir()), dir);
                    vifs.insert(dir.clone(), vif);
                }
                Ok(None) => {}
                Err(e) => {
                    log(&e);
                    refused.insert(dir.clone());
                }
            }
        }
        vifs.retain(|dir, vif| {
            vif.check(xs);
            let keep = vif.step(xs, gntdev);
            if !keep {
                let _ = xs.unwatch(&format!("{}/state", vif.frontend_dir()), dir);
            }
            keep
        });
        match xs.read_watch_timeout(CHECK_MS) {
            Ok(Some(_)) => {
                while let Ok(Some(_)) = xs.read_watch_timeout(0) {}
                quiet = 0;
            }
            Ok(None) => quiet = 1,
            Err(e) if e.is(XenError::Enoent) => {}
            Err(e) => {
                log(&format!("xenstore connection lost: {e}"));
                for vif in vifs.values_mut() {
                    vif.teardown();
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
        let o = parse_options(&v(&["-F", "--max-queues=2", "--pid-file", "/run/n.pid", "--kind=vif2"]));
        let o = o.unwrap_or_else(|e| panic!("{e}"));
        assert!(o.foreground);
        assert_eq!((o.max_queues, o.pid_file.as_deref(), o.kind.as_str()), (2, Some("/run/n.pid"), "vif2"));
        assert_eq!(parse_options(&[]).map(|o| (o.max_queues, o.kind)), Ok((4, "qnic".into())));
        assert!(parse_options(&v(&["--max-queues=0"])).is_err());
        assert!(parse_options(&v(&["--kind=a/b"])).is_err());
        assert!(parse_options(&v(&["-x"])).is_err());
    }
}
