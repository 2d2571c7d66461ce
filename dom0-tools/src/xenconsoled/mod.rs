//! xenconsoled: the console backend for every domU — drains each console
//! ring into a per-domain log and a pty that `xl console` attaches to,
//! and feeds what is typed there back to the guest.
//!
//! It watches `@introduceDomain` and `@releaseDomain`, and on each event
//! rescans the domain list (`getdomaininfolist`): a new domain whose
//! `console/type` is `xenconsoled` gets a [`console::Console`] and its
//! `console/tty`; a dying or vanished one is stopped and unmapped at once
//! (a mapping left behind would keep its memory). Options follow Xen's:
//! `-i/--interactive` (stay in the foreground), `--pid-file=FILE`,
//! `--log=none|guest|hv|all`, `--log-dir=DIR`. Unlike Xen, guest logging is
//! on by default (`/var/log/xen/console/guest-NAME.log`).
//! Semantics: Xen 4.17 `tools/console/daemon/main.c`, `io.c`.

pub mod console;
pub mod ring;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::process::ExitCode;

use console::{Console, ConsoleInfo};
use dom0_tools::xs_client::{TxId, XsClient};
use xendev::Privcmd;

/// Parsed options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Stay in the foreground.
    pub interactive: bool,
    /// Where to write the PID.
    pub pid_file: Option<String>,
    /// Log guest consoles.
    pub log_guest: bool,
    /// Where the logs go.
    pub log_dir: String,
}

/// Parses xenconsoled's command line (without argv[0]).
pub fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options { interactive: false, pid_file: None, log_guest: true, log_dir: "/var/log/xen/console".into() };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or(format!("{key} needs a value"));
        match key {
            "-i" | "--interactive" => o.interactive = true,
            "--pid-file" | "-p" => o.pid_file = Some(value()?),
            "--log" => {
                o.log_guest = match value()?.as_str() {
                    "none" | "hv" => false,
                    "guest" | "all" => true,
                    v => return Err(format!("--log: unknown value {v}")),
                }
            }
            "--log-dir" => o.log_dir = value()?,
            "-v" | "--verbose" | "-o" | "--overflow-data=discard" | "--timestamp" | "-t" => {}
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn read(xs: &mut XsClient, path: &str) -> Option<String> {
    xs.read(TxId::NONE, path).ok().and_then(|v| String::from_utf8(v).ok())
}

/// The console of `domid` as the store describes it, if xenconsoled is
/// its backend and the ring is there.
fn console_info(xs: &mut XsClient, domid: u16) -> Option<ConsoleInfo> {
    let dom = format!("/local/domain/{domid}");
    if read(xs, &format!("{dom}/console/type")).as_deref() != Some("xenconsoled") {
        return None;
    }
    Some(ConsoleInfo {
        domid,
        name: read(xs, &format!("{dom}/name")).unwrap_or_else(|| domid.to_string()),
        ring_ref: read(xs, &format!("{dom}/console/ring-ref"))?.parse().ok()?,
        port: read(xs, &format!("{dom}/console/port"))?.parse().ok()?,
    })
}

/// The daemon's state: the consoles it serves.
struct Daemon {
    opts: Options,
    xs: XsClient,
    privcmd: Privcmd,
    consoles: BTreeMap<u16, Console>,
}

impl Daemon {
    /// Brings the served set in line with the live domains.
    fn rescan(&mut self) {
        let Ok(domains) = self.privcmd.list_domains() else { return };
        let live: BTreeMap<u16, bool> = domains.iter().map(|d| (d.domid, d.dying())).collect();
        let gone: Vec<u16> =
            self.consoles.keys().copied().filter(|id| live.get(id).is_none_or(|&dying| dying)).collect();
        for id in gone {
            if let Some(c) = self.consoles.remove(&id) {
                c.stop();
            }
        }
        for (&id, &dying) in &live {
            if id == 0 || dying || self.consoles.contains_key(&id) {
                continue;
            }
            let Some(info) = console_info(&mut self.xs, id) else { continue };
            let log = self.log_file(&info.name);
            match Console::start(info, log) {
                Ok(c) => {
                    let path = format!("/local/domain/{id}/console/tty");
                    if let Err(e) = self.xs.write(TxId::NONE, &path, c.tty.as_bytes()) {
                        eprintln!("xenconsoled: domain {id}: cannot write {path}: {e}");
                    }
                    self.consoles.insert(id, c);
                }
                Err(e) => eprintln!("xenconsoled: domain {id}: {e}"),
            }
        }
    }

    fn log_file(&self, name: &str) -> Option<File> {
        if !self.opts.log_guest {
            return None;
        }
        let _ = std::fs::create_dir_all(&self.opts.log_dir);
        OpenOptions::new().create(true).append(true).open(format!("{}/guest-{name}.log", self.opts.log_dir)).ok()
    }
}

/// Starts the daemon copy of this process in the background.
fn daemonize(args: &[String]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    std::process::Command::new(exe)
        .arg("--interactive")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// xenconsoled's main.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("xenconsoled: {e}");
            }
            eprintln!(
                "Usage: xenconsoled [-h] [-V] [-v] [-i] [--log=none|guest|hv|all] [--log-dir=DIR] [--pid-file=PATH]"
            );
            return ExitCode::FAILURE;
        }
    };
    if !opts.interactive {
        return match daemonize(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xenconsoled: cannot start: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(p) = &opts.pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("xenconsoled: {p}: {e}");
        }
    }
    let (xs, privcmd) = match (XsClient::open(), Privcmd::open()) {
        (Ok(x), Ok(p)) => (x, p),
        (Err(e), _) => {
            eprintln!("xenconsoled: cannot connect to xenstore: {e}");
            return ExitCode::FAILURE;
        }
        (_, Err(e)) => {
            eprintln!("xenconsoled: cannot open privcmd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut d = Daemon { opts, xs, privcmd, consoles: BTreeMap::new() };
    for (path, token) in [("@introduceDomain", "introduce"), ("@releaseDomain", "release")] {
        if let Err(e) = d.xs.watch(path, token) {
            eprintln!("xenconsoled: cannot watch {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let _ = d.xs.write(TxId::NONE, "/tool/xenconsoled/domid", b"0");
    loop {
        d.rescan();
        if let Err(e) = d.xs.read_watch() {
            eprintln!("xenconsoled: xenstore: {e}");
            return ExitCode::FAILURE;
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
    fn options_as_xen_s() {
        let o = parse_options(&v(&["--pid-file", "/run/x.pid", "-i", "--log=none"])).unwrap();
        assert_eq!((o.interactive, o.pid_file.as_deref(), o.log_guest), (true, Some("/run/x.pid"), false));
        let o = parse_options(&v(&["--pid-file=/p", "--log-dir=/l"])).unwrap();
        assert_eq!((o.pid_file.as_deref(), o.log_dir.as_str(), o.log_guest), (Some("/p"), "/l", true));
        assert!(parse_options(&v(&["--bogus"])).is_err());
        assert!(parse_options(&v(&["--log=loud"])).is_err());
        assert!(parse_options(&v(&["--pid-file"])).is_err());
    }
}
