//! Virtual block devices: `disk = [...]` at `xl create`, `xl
//! block-attach`, `block-detach` and `block-list`, and the removal of a
//! domain's disks when it is destroyed.
//!
//! A disk is a frontend directory `/local/domain/<domid>/device/vbd/<devid>`
//! and a backend directory in dom0, written with their permissions in one
//! transaction as libxl's `device_disk_add` writes them ([`entries`]). The
//! backend is chosen by `backendtype`:
//!
//! - `phy`: Linux's in-kernel xen-blkback (`backend/vbd`); an image file
//!   gets a loop device first and `physical-device` is written with the
//!   rest, which is what blkback waits for ([`loopdev`]; Xen's `block`
//!   hotplug script);
//! - anything else (the default): xenish-blkback (`backend/qdisk`,
//!   `params = raw:<path>`), started if it is not running.
//!
//! Attaching waits (≤ 40 s, libxl's hotplug limit) for the backend to reach InitWait,
//! or for it to report `hotplug-status = error`. Detaching asks the
//! backend to close (`online = 0`, `state = 5`), waits ≤ 10 s for state 6,
//! then removes both directories and the loop device; `xl destroy` skips
//! the wait (the domain is dead). Semantics: X:`tools/libs/light/libxl_disk.c`,
//! `libxl_device.c` (`libxl__device_generic_add`,
//! `libxl__initiate_device_generic_remove`), `tools/xl/xl_block.c`.

pub mod diskspec;
mod entries;
mod loopdev;

use std::io;
use std::time::{Duration, Instant};

use diskspec::{BackendType, DiskSpec, Format};
use pv_drivers::blkif::vdev;

use super::{getopt, Ctx, Status, FAIL, OK, USAGE};
use crate::builder::xs_tree;
use crate::xs_client::{TxId, XsClient};

/// How long detaching waits for the backend to close (as libxl).
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long attaching waits for the backend to reach InitWait: libxl waits 10 s for InitWait
/// (`LIBXL_INIT_TIMEOUT`) and 40 s for a hotplug script
/// (`LIBXL_HOTPLUG_TIMEOUT`). xenish's backends are user-space daemons,
/// and on a loaded emulated machine xenish-netback once took more than
/// 10 s to answer a new vif (CI, 2026-12-07, on Xen 4.17); blkback is
/// built the same way: attaching allows the hotplug limit.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(40);
/// xenish-blkback's pid file.
const DAEMON_PID_FILE: &str = "/run/xenish-blkback.pid";
/// xenish-blkback's program name.
const DAEMON: &str = "xenish-blkback";

/// The backend kind a disk goes to.
fn kind_of(spec: &DiskSpec) -> Result<&'static str, String> {
    match spec.backendtype {
        Some(BackendType::Phy) => Ok("vbd"),
        None | Some(BackendType::Qdisk) => Ok("qdisk"),
        Some(BackendType::Tap) => Err("backendtype tap is not supported".into()),
        Some(BackendType::Standalone) => Err("backendtype standalone is not supported".into()),
    }
}

/// Whether the daemon runs (its pid file names a live xenish-blkback).
fn daemon_running() -> bool {
    let Ok(pid) = std::fs::read_to_string(DAEMON_PID_FILE) else { return false };
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.trim())).unwrap_or_default();
    comm.trim() == DAEMON
}

/// Starts xenish-blkback unless it runs (it daemonizes once ready).
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

/// Attaches every `disk = [...]` entry to a domain being created; on a
/// failure, the disks already attached are removed again (with their
/// loop devices) before the domain is.
pub fn attach_all(ctx: &mut Ctx, domid: u16, disks: &[String]) -> io::Result<()> {
    for text in disks {
        let attached = diskspec::parse(text).map_err(|e| e.to_string()).and_then(|spec| attach(ctx, domid, &spec));
        if let Err(e) = attached {
            remove_all(&mut ctx.xs, domid);
            return Err(io::Error::other(e));
        }
    }
    Ok(())
}

/// Attaches one disk; its devid.
pub fn attach(ctx: &mut Ctx, domid: u16, spec: &DiskSpec) -> Result<u32, String> {
    let name = spec.vdev.clone().unwrap_or_default();
    let devid =
        vdev::devid_of(&name).ok_or_else(|| format!("Invalid or unsupported virtual disk identifier {name}"))?;
    if spec.backend.as_deref().is_some_and(|b| b != "0" && b != "Domain-0") {
        return Err("only dom0 can be a disk backend".into());
    }
    let kind = kind_of(spec)?;
    let format = spec.format.unwrap_or(Format::Raw);
    let target = spec.target.clone().unwrap_or_default();
    if format != Format::Raw || target.is_empty() {
        return Err(format!("disk {name}: format {} is not supported (raw images and devices only)", format.name()));
    }
    let front = entries::frontend_dir(domid, devid);
    if ctx.xs.read(TxId::NONE, &format!("{front}/backend")).is_ok() {
        return Err(format!("disk {name} is already attached to domain {domid}"));
    }
    let blockdev = if kind == "vbd" {
        Some(loopdev::block_device_for(&target, spec.readwrite).map_err(|e| format!("disk {name}: {target}: {e}"))?)
    } else {
        ensure_daemon()?;
        None
    };
    let disk = entries::Disk { domid, devid, kind, spec, target: &target, blockdev: blockdev.as_ref() };
    let back = disk.backend_dir();
    let written = xs_tree::transaction(&mut ctx.xs, |xs, tx| entries::write(xs, tx, &disk))
        .map_err(|e| format!("disk {name}: xenstore: {e}"));
    let waited = written.and_then(|()| wait_for_backend(&mut ctx.xs, &back, &name));
    if let Err(e) = waited {
        remove(&mut ctx.xs, domid, devid, false);
        return Err(e);
    }
    Ok(devid)
}

/// Waits for the backend at `back` to reach InitWait (or beyond), or to
/// report a hotplug error.
fn wait_for_backend(xs: &mut XsClient, back: &str, name: &str) -> Result<(), String> {
    let start = Instant::now();
    let read = |xs: &mut XsClient, key: &str| {
        xs.read(TxId::NONE, &format!("{back}/{key}")).ok().map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    while start.elapsed() < ATTACH_TIMEOUT {
        if read(xs, "hotplug-status").as_deref() == Some("error") {
            let why = read(xs, "hotplug-error").unwrap_or_default();
            return Err(format!("disk {name}: the backend failed: {why}"));
        }
        if read(xs, "state").and_then(|s| s.trim().parse::<u32>().ok()).is_some_and(|s| (2..=4).contains(&s)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("disk {name}: the backend {back} did not answer within {} s", ATTACH_TIMEOUT.as_secs()))
}

/// Removes disk `devid` of `domid`: unless `force`, asks the backend to
/// close and waits for it; then removes the directories and the loop
/// device. Best effort: every step is tried.
pub fn remove(xs: &mut XsClient, domid: u16, devid: u32, graceful: bool) {
    let front = entries::frontend_dir(domid, devid);
    let Ok(back) = xs.read(TxId::NONE, &format!("{front}/backend")) else { return };
    let back = String::from_utf8_lossy(&back).into_owned();
    if !back.starts_with("/local/domain/0/backend/") {
        return;
    }
    let read = |xs: &mut XsClient, key: &str| {
        xs.read(TxId::NONE, &format!("{back}/{key}")).ok().map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    if graceful && read(xs, "state").as_deref() != Some("6") {
        let _ = xs_tree::transaction(xs, |xs, tx| {
            xs.write(tx, &format!("{back}/online"), b"0")?;
            xs.write(tx, &format!("{back}/state"), b"5")
        });
        let start = Instant::now();
        while start.elapsed() < BACKEND_TIMEOUT && read(xs, "state").is_some_and(|s| s != "6") {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let loop_dev = read(xs, "physical-device-path").filter(|p| p.starts_with("/dev/loop"));
    let params = read(xs, "params");
    let _ = xs_tree::transaction(xs, |xs, tx| {
        for p in [front.clone(), back.clone(), format!("/libxl/{domid}/device/vbd/{devid}")] {
            match xs.rm(tx, &p) {
                Err(e) if !e.is(guest_abi::XenError::Enoent) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    });
    if let Some(dev) = loop_dev.filter(|d| params.as_deref() != Some(d.as_str())) {
        let _ = loopdev::detach(&dev);
    }
}

/// The devids of a domain's disks.
fn devids(xs: &mut XsClient, domid: u16) -> Vec<u32> {
    let dir = format!("/local/domain/{domid}/device/vbd");
    let mut ids: Vec<u32> =
        xs.directory(TxId::NONE, &dir).unwrap_or_default().iter().filter_map(|d| d.parse().ok()).collect();
    ids.sort_unstable();
    ids
}

/// Removes every disk of a domain being destroyed (no waiting).
pub fn remove_all(xs: &mut XsClient, domid: u16) {
    for devid in devids(xs, domid) {
        remove(xs, domid, devid, false);
    }
}

/// `xl block-attach <Domain> <disk-spec-component(s)>...`.
pub fn block_attach(args: &[String]) -> Status {
    let [dom, parts @ ..] = args else {
        super::help("block-attach");
        return USAGE;
    };
    if parts.is_empty() {
        super::help("block-attach");
        return USAGE;
    }
    let spec = match diskspec::parse(&parts.join(",")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return FAIL;
        }
    };
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let Ok(domid) = ctx.find_domain(dom) else { return FAIL };
    match attach(&mut ctx, domid, &spec) {
        Ok(_) => OK,
        Err(e) => {
            eprintln!("libxl: error: {e}");
            FAIL
        }
    }
}

/// `xl block-detach [-f] <Domain> <DevId>`.
pub fn block_detach(args: &[String]) -> Status {
    let (opts, operands) = match getopt("block-detach", args, "f", "", &[("force", 'f')]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let [dom, dev] = operands.as_slice() else {
        super::help("block-detach");
        return USAGE;
    };
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let Ok(domid) = ctx.find_domain(dom) else { return FAIL };
    let devid = vdev::devid_of(dev).filter(|id| devids(&mut ctx.xs, domid).contains(id));
    let Some(devid) = devid else {
        eprintln!("Error: Device {dev} not connected.");
        return FAIL;
    };
    remove(&mut ctx.xs, domid, devid, opts.is_empty());
    OK
}

/// `xl block-list <Domain(s)>`: one line per disk, as xl prints it.
pub fn block_list(args: &[String]) -> Status {
    if args.is_empty() {
        super::help("block-list");
        return USAGE;
    }
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    println!(
        "{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}",
        "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path"
    );
    let mut status = OK;
    for dom in args {
        let Ok(domid) = ctx.find_domain(dom) else {
            status = FAIL;
            continue;
        };
        for devid in devids(&mut ctx.xs, domid) {
            let front = entries::frontend_dir(domid, devid);
            let mut read = |key: &str| {
                ctx.xs
                    .read(TxId::NONE, &format!("{front}/{key}"))
                    .ok()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            };
            let num = |v: Option<String>| v.and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(-1);
            let backend = read("backend").unwrap_or_default();
            let be = num(read("backend-id"));
            let (state, evtch, rref) = (num(read("state")), num(read("event-channel")), num(read("ring-ref")));
            println!("{devid:<5} {be:<3} {domid:<6} {state:<5} {evtch:<6} {rref:<8} {backend:<30}");
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_kind_follows_backendtype() {
        let spec = |t: &str| diskspec::parse(&format!("vdev=xvda,{t}target=/x")).unwrap_or_default();
        assert_eq!(kind_of(&spec("")), Ok("qdisk"));
        assert_eq!(kind_of(&spec("backendtype=qdisk,")), Ok("qdisk"));
        assert_eq!(kind_of(&spec("backendtype=phy,")), Ok("vbd"));
        assert!(kind_of(&spec("backendtype=tap,")).is_err());
    }
}
