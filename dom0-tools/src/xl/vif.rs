//! Virtual network interfaces: `vif = [...]` at `xl create`, `xl
//! network-attach`, `network-detach` and `network-list`, and the
//! removal of a domain's vifs when it is destroyed.
//!
//! A vif is a frontend directory `/local/domain/<domid>/device/vif/<devid>`
//! and a backend directory in dom0, written with their permissions in
//! one transaction as libxl writes them ([`entries`]). The backend is
//! chosen by the VIFSPEC's `backendtype` ([`vifspec`]):
//!
//! - `xenish` (the default): xenish-netback (`backend/qnic`), started if
//!   it is not running; it makes the TAP `vif<domid>.<devid>`, bridges
//!   it and writes `hotplug-status`;
//! - `kernel`: Linux's in-kernel xen-netback (`backend/vif`); there are
//!   no hotplug scripts in dom0, so xl does what `vif-bridge online`
//!   does once netback has made `vif<domid>.<devid>` (it does at
//!   InitWait): add it to the bridge, bring it up, write
//!   `hotplug-status=connected`, which netback waits for.
//!
//! Attaching waits (≤ 40 s, libxl's hotplug limit) for the backend to reach InitWait
//! and be bridged, or to report `hotplug-status = error`. Detaching asks
//! the backend to close (`online = 0`, `state = 5`), waits ≤ 10 s for
//! state 6, then removes both directories; `xl destroy` skips the wait.
//! Semantics: X:`tools/libs/light/libxl_nic.c`, `libxl_device.c`,
//! `tools/xl/xl_nic.c`, `tools/hotplug/Linux/vif-bridge`.

pub mod entries;
pub mod vifspec;

use std::io;
use std::time::{Duration, Instant};

use pv_drivers::netif::keys::Mac;
use vifspec::{BackendType, VifSpec};

use super::{getopt, Ctx, Status, FAIL, OK, USAGE};
use crate::builder::xs_tree;
use crate::xs_client::{TxId, XsClient};

/// How long detaching waits for the backend to close (as libxl).
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long attaching waits for the backend to reach InitWait (and, for
/// Linux's netback, to make its interface): libxl waits 10 s for InitWait
/// (`LIBXL_INIT_TIMEOUT`) and 40 s for a hotplug script
/// (`LIBXL_HOTPLUG_TIMEOUT`). xenish's backends are user-space daemons,
/// and on a loaded emulated machine xenish-netback once took more than
/// 10 s to answer a new vif while serving another's bulk transfer (CI,
/// 2026-12-07, on Xen 4.17): attaching allows the hotplug limit.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(40);
/// xenish-netback's pid file.
const DAEMON_PID_FILE: &str = "/run/xenish-netback.pid";
/// xenish-netback's program name.
const DAEMON: &str = "xenish-netback";

/// Whether the daemon runs (its pid file names a live xenish-netback).
fn daemon_running() -> bool {
    let Ok(pid) = std::fs::read_to_string(DAEMON_PID_FILE) else { return false };
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.trim())).unwrap_or_default();
    comm.trim() == DAEMON
}

/// Starts xenish-netback unless it runs (it daemonizes once ready).
fn ensure_daemon() -> Result<(), String> {
    if daemon_running() {
        return Ok(());
    }
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(DAEMON)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| DAEMON.into());
    let out = std::process::Command::new(&exe)
        .args(["--pid-file", DAEMON_PID_FILE])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("{DAEMON} did not start: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// Attaches every `vif = [...]` entry to a domain being created (devids
/// are the list's indexes unless `devid=` says otherwise); on a failure,
/// the vifs already attached are removed again before the domain is.
pub fn attach_all(ctx: &mut Ctx, domid: u16, vifs: &[String]) -> io::Result<()> {
    for (i, text) in vifs.iter().enumerate() {
        let attached = vifspec::parse(text).and_then(|spec| {
            for item in &spec.unrecognized {
                eprintln!("unrecognized argument `{item}'");
            }
            attach(ctx, domid, spec.devid.unwrap_or(i as u32), &spec)
        });
        if let Err(e) = attached {
            remove_all(&mut ctx.xs, domid);
            return Err(io::Error::other(e));
        }
    }
    Ok(())
}

/// Attaches one vif as `devid`.
pub fn attach(ctx: &mut Ctx, domid: u16, devid: u32, spec: &VifSpec) -> Result<(), String> {
    if spec.backend.as_deref().is_some_and(|b| b != "0" && b != "Domain-0") {
        return Err("only dom0 can be a network backend".into());
    }
    let front = entries::frontend_dir(domid, devid);
    if ctx.xs.read(TxId::NONE, &format!("{front}/backend")).is_ok() {
        return Err(format!("vif {devid} is already attached to domain {domid}"));
    }
    if spec.backendtype == BackendType::Xenish {
        ensure_daemon()?;
    }
    let nic = entries::Nic { domid, devid, spec, mac: spec.mac.unwrap_or_else(vifspec::random_mac) };
    let back = nic.backend_dir();
    let written = xs_tree::transaction(&mut ctx.xs, |xs, tx| entries::write(xs, tx, &nic))
        .map_err(|e| format!("vif {devid}: xenstore: {e}"));
    let waited = written.and_then(|()| wait_for_backend(&mut ctx.xs, &back, devid));
    let bridged = waited.and_then(|()| match spec.backendtype {
        BackendType::Kernel => kernel_hotplug(&mut ctx.xs, &back, domid, devid, nic.bridge()),
        BackendType::Xenish => Ok(()),
    });
    if let Err(e) = bridged {
        remove(&mut ctx.xs, domid, devid, false);
        return Err(e);
    }
    Ok(())
}

/// `dir/key`'s value.
fn read(xs: &mut XsClient, dir: &str, key: &str) -> Option<String> {
    xs.read(TxId::NONE, &format!("{dir}/{key}")).ok().map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Waits for the backend at `back` to reach InitWait (or beyond), or to
/// report a hotplug error.
fn wait_for_backend(xs: &mut XsClient, back: &str, devid: u32) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < ATTACH_TIMEOUT {
        if read(xs, back, "hotplug-status").as_deref() == Some("error") {
            let why = read(xs, back, "hotplug-error").unwrap_or_default();
            return Err(format!("vif {devid}: the backend failed: {why}"));
        }
        if read(xs, back, "state").and_then(|s| s.trim().parse::<u32>().ok()).is_some_and(|s| (2..=4).contains(&s)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("vif {devid}: the backend {back} did not answer within {} s", ATTACH_TIMEOUT.as_secs()))
}

/// `vif-bridge online` for Linux's netback: once `vif<domid>.<devid>`
/// exists, it joins `bridge` and comes up, and `hotplug-status` says so.
fn kernel_hotplug(xs: &mut XsClient, back: &str, domid: u16, devid: u32, bridge: &str) -> Result<(), String> {
    let name = format!("vif{domid}.{devid}");
    let start = Instant::now();
    while dom0_tools::netdev::if_index(&name).is_none() {
        if start.elapsed() > ATTACH_TIMEOUT {
            return Err(format!("vif {devid}: netback made no interface {name}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Err(e) = dom0_tools::netdev::bridge_up(&name, bridge) {
        let why = format!("{name}: {e}");
        let _ = xs.write(TxId::NONE, &format!("{back}/hotplug-error"), why.as_bytes());
        let _ = xs.write(TxId::NONE, &format!("{back}/hotplug-status"), b"error");
        return Err(format!("vif {devid}: {why}"));
    }
    xs.write(TxId::NONE, &format!("{back}/hotplug-status"), b"connected").map_err(|e| format!("vif {devid}: {e}"))
}

/// Removes vif `devid` of `domid`: if `graceful`, asks the backend to
/// close and waits for it; then removes the directories. Best effort.
pub fn remove(xs: &mut XsClient, domid: u16, devid: u32, graceful: bool) {
    let front = entries::frontend_dir(domid, devid);
    let Some(back) = read(xs, &front, "backend") else { return };
    if !back.starts_with("/local/domain/0/backend/") {
        return;
    }
    if graceful && read(xs, &back, "state").as_deref() != Some("6") {
        let _ = xs_tree::transaction(xs, |xs, tx| {
            xs.write(tx, &format!("{back}/online"), b"0")?;
            xs.write(tx, &format!("{back}/state"), b"5")
        });
        let start = Instant::now();
        while start.elapsed() < BACKEND_TIMEOUT && read(xs, &back, "state").is_some_and(|s| s != "6") {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = xs_tree::transaction(xs, |xs, tx| {
        for p in [front.clone(), back.clone(), format!("/libxl/{domid}/device/vif/{devid}")] {
            match xs.rm(tx, &p) {
                Err(e) if !e.is(guest_abi::XenError::Enoent) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    });
}

/// The devids of a domain's vifs.
fn devids(xs: &mut XsClient, domid: u16) -> Vec<u32> {
    let dir = format!("/local/domain/{domid}/device/vif");
    let mut ids: Vec<u32> =
        xs.directory(TxId::NONE, &dir).unwrap_or_default().iter().filter_map(|d| d.parse().ok()).collect();
    ids.sort_unstable();
    ids
}

/// Removes every vif of a domain being destroyed (no waiting).
pub fn remove_all(xs: &mut XsClient, domid: u16) {
    for devid in devids(xs, domid) {
        remove(xs, domid, devid, false);
    }
}

/// `xl network-attach <Domain> <nic-spec-component(s)>...`.
pub fn network_attach(args: &[String]) -> Status {
    let [dom, parts @ ..] = args else {
        super::help("network-attach");
        return USAGE;
    };
    let spec = match vifspec::parse(&parts.join(",")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return FAIL;
        }
    };
    for item in &spec.unrecognized {
        eprintln!("unrecognized argument `{item}'");
    }
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let Ok(domid) = ctx.find_domain(dom) else { return FAIL };
    let devid = spec.devid.unwrap_or_else(|| devids(&mut ctx.xs, domid).last().map_or(0, |d| d + 1));
    match attach(&mut ctx, domid, devid, &spec) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("libxl: error: {e}");
            eprintln!("libxl_device_nic_add failed.");
            FAIL
        }
    }
}

/// `xl network-detach <Domain> <DevId|mac>`.
pub fn network_detach(args: &[String]) -> Status {
    let (_, operands) = match getopt("network-detach", args, "", "", &[]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let [dom, which] = operands.as_slice() else {
        super::help("network-detach");
        return USAGE;
    };
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let Ok(domid) = ctx.find_domain(dom) else { return FAIL };
    let ids = devids(&mut ctx.xs, domid);
    let found = if which.contains(':') {
        let mac = Mac::parse(which);
        ids.into_iter().find(|&d| {
            let m = read(&mut ctx.xs, &entries::frontend_dir(domid, d), "mac").and_then(|m| Mac::parse(&m));
            mac.is_some() && m == mac
        })
    } else {
        which.parse::<u32>().ok().filter(|d| ids.contains(d))
    };
    let Some(devid) = found else {
        eprintln!("Unknown device {which}.");
        return FAIL;
    };
    remove(&mut ctx.xs, domid, devid, true);
    OK
}

/// `xl network-list <Domain(s)>`: one line per vif, as xl prints it.
pub fn network_list(args: &[String]) -> Status {
    if args.is_empty() {
        super::help("network-list");
        return USAGE;
    }
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    println!(
        "{:<3} {:<2} {:<17} {:<6} {:<5} {:<6} {:>5}/{:<5} {:<30}",
        "Idx", "BE", "Mac Addr.", "handle", "state", "evt-ch", "tx-", "rx-ring-ref", "BE-path"
    );
    let mut status = OK;
    for dom in args {
        let Ok(domid) = ctx.find_domain(dom) else {
            status = FAIL;
            continue;
        };
        for devid in devids(&mut ctx.xs, domid) {
            let front = entries::frontend_dir(domid, devid);
            let mut get = |key: &str| read(&mut ctx.xs, &front, key);
            let num = |v: Option<String>| v.and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(-1);
            let backend = get("backend").unwrap_or_default();
            let be = num(get("backend-id"));
            let mac = get("mac").and_then(|m| Mac::parse(&m)).unwrap_or_default();
            let (state, evtch) = (num(get("state")), num(get("event-channel")));
            let (tx, rx) = (num(get("tx-ring-ref")), num(get("rx-ring-ref")));
            println!("{devid:<3} {be:<2} {mac}{devid:>6} {state:>5} {evtch:>6} {tx:>5}/{rx:<11} {backend:<30}");
        }
    }
    status
}
