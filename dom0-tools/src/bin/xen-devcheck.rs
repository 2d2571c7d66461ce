//! `xen-devcheck`: a self-test of Linux's Xen device files, run in dom0.
//!
//! Exercises every `xendev` binding through the real device and prints one
//! deterministic line per check, `devcheck: <area>: <check>: <result>`,
//! then `devcheck: all N checks passed` (exit 0) or names the failures
//! (exit 1). The lines carry no addresses, frame numbers, port numbers or
//! timings, so the output on xenish and on Xen 4.17 must be identical; a
//! failure line adds the failing operation and errno.
//!
//! Areas (`--only AREA`, repeatable): `privcmd`, `evtchn`, `gnt`, `xenbus`,
//! `xenstore`. With `--peer DOMID`, also the checks against a domU running
//! the `granter` test guest: map the page it granted and read its pattern,
//! bind its event channel and trade notifications.

use std::mem::offset_of;
use std::process::exit;
use std::time::{SystemTime, UNIX_EPOCH};

use guest_abi::arch_x86::ArchSharedInfo;
use guest_abi::xen::SharedInfo;
use xendev::{CopyDest, CopySource, Evtchn, Gntalloc, Gntdev, GrantAddr, GrantCopySegment, Mapping, Privcmd};

const USAGE: &str = "Usage: xen-devcheck [--only privcmd|evtchn|gnt|xenbus|xenstore]... [--peer DOMID] [--help]

Exercises /dev/xen/{privcmd,evtchn,gntdev,gntalloc,xenbus_backend},
/proc/xen/xsd_{port,kva} and xenstored, and prints one 'devcheck:' line per
check; exits 0 if all pass, 1 otherwise, 2 on a usage error. With --peer,
also maps the page domain DOMID (the granter test guest) granted and trades
event-channel notifications with it (only those checks unless --only names
areas too).";

/// A domain ID that cannot exist: the last one below `DOMID_FIRST_RESERVED`.
const NO_SUCH_DOMID: u16 = guest_abi::xen::DOMID_FIRST_RESERVED - 1;
/// Events sent each way in the event channel loopback.
const EVENTS: usize = 100;
/// gntdev map/unmap cycles.
const MAP_CYCLES: u32 = 50;
/// How long one event may take to arrive.
const EVENT_TIMEOUT_MS: i32 = 2000;

/// The results so far.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    /// Runs one check and prints its line.
    fn check(&mut self, name: &str, result: Result<String, String>) {
        match result {
            Ok(text) => {
                println!("devcheck: {name}: {text}");
                self.passed += 1;
            }
            Err(why) => {
                println!("devcheck: {name}: FAILED: {why}");
                self.failed.push(name.to_string());
            }
        }
    }

    /// Records `names` as failed because their area could not start.
    fn not_run(&mut self, names: &[&str], why: &str) {
        for name in names {
            self.check(name, Err(format!("not run: {why}")));
        }
    }
}

fn ok_if(cond: bool, ok: &str, why: impl FnOnce() -> String) -> Result<String, String> {
    if cond {
        Ok(ok.to_string())
    } else {
        Err(why())
    }
}

fn e(err: std::io::Error) -> String {
    err.to_string()
}

// ------------------------------------------------------------------ privcmd

/// Reads `shared_info` fields at a consistent `wc_version` (even, unchanged).
fn read_wallclock(m: &Mapping) -> Result<u64, String> {
    for _ in 0..1000 {
        let v1 = m.read_u32(offset_of!(SharedInfo, wc_version));
        let lo = m.read_u32(offset_of!(SharedInfo, wc_sec));
        let hi = m.read_u32(offset_of!(SharedInfo, wc_sec_hi));
        let v2 = m.read_u32(offset_of!(SharedInfo, wc_version));
        if v1 == v2 && v1.is_multiple_of(2) {
            return Ok(u64::from(lo) | (u64::from(hi) << 32));
        }
    }
    Err("wc_version never settled".into())
}

/// Seconds since boot (`CLOCK_BOOTTIME`).
fn uptime_secs() -> Result<u64, String> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Err(format!("clock_gettime(CLOCK_BOOTTIME): {}", std::io::Error::last_os_error()));
    }
    u64::try_from(ts.tv_sec).map_err(|_| "negative uptime".into())
}

/// The shared_info check. Why these facts hold on both hypervisors: dom0's
/// Linux writes `arch.max_pfn` and `arch.pfn_to_mfn_frame_list_list` into
/// its own shared_info at boot (`xen_setup_mfn_list_list`), and the
/// hypervisor puts its boot wallclock in `wc_sec`, from which dom0's
/// kernel set its clock: so `time() - uptime` is `wc_sec` plus the moment
/// dom0 started (0..600 s under emulation). Neither holds for a wrong frame.
/// (`vcpu_info[0].time` is not used: Linux moves vcpu_info out of
/// shared_info, so that copy is stale.) The frame's owner is named
/// `DOMID_SELF`: Xen's `get_pg_owner` refuses a domain that names itself
/// by its own ID as the foreign owner of an `mmu_update`.
fn check_shared_info(p: &Privcmd) -> Result<String, String> {
    let dom0 = p.getdomaininfo(0).map_err(e)?.ok_or("getdomaininfo(0): no dom0")?;
    let m = p.map_foreign(guest_abi::xen::DOMID_SELF, &[dom0.shared_info_frame], false).map_err(e)?;
    let arch = offset_of!(SharedInfo, arch);
    let max_pfn = m.read_u64(arch + offset_of!(ArchSharedInfo, max_pfn));
    let p2m_root = m.read_u64(arch + offset_of!(ArchSharedInfo, pfn_to_mfn_frame_list_list));
    if max_pfn == 0 || p2m_root == 0 {
        return Err(format!("arch.max_pfn {max_pfn:#x}, pfn_to_mfn_frame_list_list {p2m_root:#x}: not set by dom0"));
    }
    let wc_sec = read_wallclock(&m)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|err| err.to_string())?.as_secs();
    let booted = now.saturating_sub(uptime_secs()?);
    let lead = i128::from(booted) - i128::from(wc_sec);
    ok_if(
        (-5..=600).contains(&lead),
        "dom0's shared_info mapped read-only: max_pfn and p2m root set, wallclock matches dom0's boot time",
        || format!("wc_sec {wc_sec} but dom0 booted at {booted} (time() - uptime)"),
    )
}

fn privcmd_checks(r: &mut Report) {
    const NAMES: [&str; 7] = [
        "privcmd: xen_version",
        "privcmd: capabilities",
        "privcmd: physinfo",
        "privcmd: getdomaininfo(0)",
        "privcmd: getdomaininfo(32751)",
        "privcmd: list_domains",
        "privcmd: map_foreign",
    ];
    let p = match Privcmd::open() {
        Ok(p) => p,
        Err(err) => return r.not_run(&NAMES, &err.to_string()),
    };
    r.check(NAMES[0], p.xen_version().map(|(major, minor)| format!("xen_version {major}.{minor}")).map_err(e));
    r.check(
        NAMES[1],
        p.xen_capabilities().map_err(e).and_then(|caps| {
            ok_if(caps.split_whitespace().any(|c| c == "xen-3.0-x86_64"), "contain xen-3.0-x86_64", || {
                format!("{caps:?} lacks xen-3.0-x86_64")
            })
        }),
    );
    r.check(
        NAMES[2],
        p.physinfo().map_err(e).and_then(|pi| {
            let good = pi.nr_cpus > 0 && pi.total_pages > 0 && pi.free_pages <= pi.total_pages;
            ok_if(good, "nr_cpus > 0, 0 < total_pages, free_pages <= total_pages", || {
                format!("nr_cpus {} total_pages {} free_pages {}", pi.nr_cpus, pi.total_pages, pi.free_pages)
            })
        }),
    );
    let dom0 = p.getdomaininfo(0);
    r.check(
        NAMES[3],
        match &dom0 {
            Ok(Some(d)) => ok_if(
                d.domid == 0
                    && !d.hvm_guest()
                    && !d.dying()
                    && !d.shutdown()
                    && d.nr_online_vcpus > 0
                    && d.tot_pages > 0,
                "dom0: PV, not dying or shut down, vCPUs online, pages owned",
                || format!("{d:?}"),
            ),
            Ok(None) => Err("no domain 0".into()),
            Err(err) => Err(err.to_string()),
        },
    );
    r.check(
        NAMES[4],
        match p.getdomaininfo(NO_SUCH_DOMID) {
            Ok(None) => Ok("no such domain: none".into()),
            Ok(Some(d)) => Err(format!("got domain {}", d.domid)),
            Err(err) => Err(err.to_string()),
        },
    );
    r.check(
        NAMES[5],
        p.list_domains().map_err(e).and_then(|list| {
            let ascending = list.windows(2).all(|w| w[0].domid < w[1].domid);
            let listed = list.iter().find(|d| d.domid == 0);
            let same = match (listed, &dom0) {
                (Some(l), Ok(Some(d))) => l.shared_info_frame == d.shared_info_frame && l.handle == d.handle,
                _ => false,
            };
            ok_if(ascending && same, "ids ascending, dom0 listed as getdomaininfo(0) reports it", || {
                format!("ascending {ascending}, dom0 listed {}, matching {same}", listed.is_some())
            })
        }),
    );
    r.check(NAMES[6], check_shared_info(&p));
}

// ------------------------------------------------------------------- evtchn

/// Waits for one event on `ev`, which must be `port`; unmasks it.
fn receive(ev: &Evtchn, port: u32) -> Result<(), String> {
    let mut buf = [0u32; 8];
    let n = ev.wait(&mut buf, EVENT_TIMEOUT_MS).map_err(e)?;
    for &got in &buf[..n] {
        ev.unmask(got).map_err(e)?;
    }
    match &buf[..n] {
        [] => Err("no event within the timeout".into()),
        [got] if *got == port => Ok(()),
        other => Err(format!("{} events, expected one on the bound port", other.len())),
    }
}

/// Drains (and unmasks) whatever is pending, waiting `ms` for stragglers:
/// Xen marks the binding side pending once at bind time.
fn drain(ev: &Evtchn, ms: i32) -> Result<(), String> {
    let mut buf = [0u32; 64];
    loop {
        let n = ev.wait(&mut buf, ms).map_err(e)?;
        if n == 0 {
            return Ok(());
        }
        for &port in &buf[..n] {
            ev.unmask(port).map_err(e)?;
        }
    }
}

/// Sends `EVENTS` events from `from_port` on `from` to `to_port` on `to`.
fn ping(from: &Evtchn, from_port: u32, to: &Evtchn, to_port: u32) -> Result<String, String> {
    let mut received = 0;
    let mut first_err = None;
    for _ in 0..EVENTS {
        from.notify(from_port).map_err(e)?;
        match receive(to, to_port) {
            Ok(()) => received += 1,
            Err(why) => {
                first_err.get_or_insert(why);
            }
        }
    }
    match first_err {
        None => Ok(format!("{received}/{EVENTS} events received")),
        Some(why) => Err(format!("{received}/{EVENTS} events received; first miss: {why}")),
    }
}

fn evtchn_checks(r: &mut Report) {
    const NAMES: [&str; 4] = [
        "evtchn: loopback bind",
        "evtchn: notify unbound->interdomain end",
        "evtchn: notify interdomain->unbound end",
        "evtchn: unbind",
    ];
    let (a, b) = match (Evtchn::open(), Evtchn::open()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(err), _) | (_, Err(err)) => return r.not_run(&NAMES, &err.to_string()),
    };
    let bound = a.bind_unbound(0).and_then(|pa| b.bind_interdomain(0, pa).map(|pb| (pa, pb))).map_err(e);
    let (pa, pb) = match bound {
        Ok(ports) => ports,
        Err(why) => {
            r.check(NAMES[0], Err(why));
            return r.not_run(&NAMES[1..], "no loopback channel");
        }
    };
    // Xen marks the binding end pending once at bind time: drain that.
    r.check(
        NAMES[0],
        drain(&b, 200).and_then(|()| drain(&a, 0)).map(|()| "bind_unbound(0) + bind_interdomain(0, port): ok".into()),
    );
    r.check(NAMES[1], ping(&a, pa, &b, pb));
    r.check(NAMES[2], ping(&b, pb, &a, pa));
    let unbound = a.unbind(pa).and_then(|()| b.unbind(pb)).map_err(e).and_then(|()| match a.notify(pa) {
        Err(err) if xendev::errno(&err) == Some(libc::ENOTCONN) => Ok(()),
        Err(err) => Err(format!("notify after unbind: {err}")),
        Ok(()) => Err("notify after unbind succeeded".into()),
    });
    r.check(NAMES[3], unbound.map(|()| "both ends unbound, notify then fails with ENOTCONN".into()));
}

// ---------------------------------------------------------------------- gnt

/// The test pattern: a different word at each offset, varied by `seed`.
fn pattern(seed: u32) -> Vec<u8> {
    (0..1024u32).flat_map(|i| (i.wrapping_mul(0x0101_0101) ^ seed).to_ne_bytes()).collect()
}

fn page(m: &Mapping) -> Vec<u8> {
    let mut buf = vec![0u8; xendev::PAGE_SIZE];
    m.read_bytes(0, &mut buf);
    buf
}

fn gnt_checks(r: &mut Report) {
    const NAMES: [&str; 5] =
        ["gnt: gntalloc", "gnt: gntdev map", "gnt: gntdev write", "gnt: grant copy", "gnt: map/unmap cycles"];
    let (alloc_dev, dev) = match (Gntalloc::open(), Gntdev::open()) {
        (Ok(a), Ok(d)) => (a, d),
        (Err(err), _) | (_, Err(err)) => return r.not_run(&NAMES, &err.to_string()),
    };
    let grant = match alloc_dev.alloc(0, 1, true) {
        Ok(g) => g,
        Err(err) => {
            r.check(NAMES[0], Err(err.to_string()));
            return r.not_run(&NAMES[1..], "no grant");
        }
    };
    let gref = grant.grefs().first().copied().unwrap_or(0);
    let first = pattern(0xa5a5_a5a5);
    grant.mapping().write_bytes(0, &first);
    r.check(
        NAMES[0],
        ok_if(
            grant.grefs().len() == 1 && page(grant.mapping()) == first,
            "1 writable grant to dom0, pattern written",
            || format!("{} grants, pattern read back {}", grant.grefs().len(), page(grant.mapping()) == first),
        ),
    );
    let mapped = dev.map_grant(0, gref, true).map_err(e);
    r.check(
        NAMES[1],
        mapped.as_ref().map_err(Clone::clone).and_then(|m| {
            ok_if(page(m) == first, "grant mapped, pattern read back", || "the mapping reads differently".into())
        }),
    );
    let second = pattern(0x5a5a_0ff0);
    r.check(
        NAMES[2],
        mapped.as_ref().map_err(|_| "not run: no mapping".to_string()).and_then(|m| {
            m.write_bytes(0, &second);
            ok_if(page(grant.mapping()) == second, "write through gntdev seen through gntalloc", || {
                "gntalloc's page does not show the write".into()
            })
        }),
    );
    r.check(NAMES[3], check_grant_copy(&dev, gref, &page(grant.mapping())));
    drop(mapped);
    r.check(NAMES[4], map_cycles(&dev, gref, grant.mapping()));
}

/// Copies the whole granted page, then a 100-byte slice at offset 1000,
/// into local buffers, comparing with `want`.
fn check_grant_copy(dev: &Gntdev, gref: u32, want: &[u8]) -> Result<String, String> {
    let mut whole = vec![0u8; xendev::PAGE_SIZE];
    let mut part = [0u8; 100];
    let src = |offset| CopySource::Grant(GrantAddr { domid: 0, gref, offset });
    let mut segs = [
        GrantCopySegment::new(src(0), CopyDest::Local(&mut whole), xendev::PAGE_SIZE as u16),
        GrantCopySegment::new(src(1000), CopyDest::Local(&mut part), 100),
    ];
    dev.grant_copy(&mut segs).map_err(e)?;
    ok_if(whole == want && part[..] == want[1000..1100], "page and a 100-byte slice copied, contents match", || {
        "copied bytes differ from the page".into()
    })
}

/// Maps and unmaps the grant `MAP_CYCLES` times, checking each mapping
/// sees a fresh value and writes back through it.
fn map_cycles(dev: &Gntdev, gref: u32, local: &Mapping) -> Result<String, String> {
    for i in 0..MAP_CYCLES {
        local.write_u32(0, i);
        let m = dev.map_grant(0, gref, true).map_err(|err| format!("cycle {i}: {err}"))?;
        if m.read_u32(0) != i {
            return Err(format!("cycle {i}: mapping reads a stale value"));
        }
        m.write_u32(4, !i);
        drop(m);
        if local.read_u32(4) != !i {
            return Err(format!("cycle {i}: write through the mapping lost"));
        }
    }
    Ok(format!("{MAP_CYCLES} map/unmap cycles ok"))
}

// ------------------------------------------------------------------- xenbus

fn xenbus_checks(r: &mut Report) {
    const NAMES: [&str; 2] = ["xenbus: xenbus_backend evtchn", "xenbus: store page"];
    if !std::path::Path::new("/dev/xen/xenbus_backend").exists() {
        println!("devcheck: xenbus: /dev/xen/xenbus_backend absent on this kernel: skipped");
        return;
    }
    let backend = match xendev::XenbusBackend::open() {
        Ok(b) => b,
        Err(err) => return r.not_run(&NAMES, &err.to_string()),
    };
    r.check(
        NAMES[0],
        backend.evtchn().and_then(|port| xendev::xsd_port().map(|xsd| (port, xsd))).map_err(e).and_then(
            |(port, xsd)| {
                ok_if(port == xsd, "store port equals xsd_port", || {
                    "xenbus_backend's port differs from xsd_port".into()
                })
            },
        ),
    );
    r.check(
        NAMES[1],
        backend.map().and_then(|m| xendev::xsd_kva().map(|k| (m, k))).map_err(e).and_then(|(m, k)| {
            // The ring is live: compare a few times until one snapshot agrees.
            let same = (0..20).any(|_| {
                let equal = page(&m) == page(&k);
                if !equal {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                equal
            });
            ok_if(same, "xenbus_backend and xsd_kva map the same page", || "the two mappings differ".into())
        }),
    );
}

// ----------------------------------------------------------------- xenstore

/// Where the XenStore checks work.
const XS_DIR: &str = "/devcheck";

/// Two connections run transactions on the same node: the first commit
/// wins, the second gets `EAGAIN` (what libxl retries on), and the node
/// holds the winner's value.
fn check_transactions() -> Result<String, String> {
    use dom0_tools::xs_client::{TxId, XsClient};
    use guest_abi::errno::XenError;
    let xe = |e: dom0_tools::xs_client::XsError| e.to_string();
    let (mut a, mut b) = (XsClient::open().map_err(xe)?, XsClient::open().map_err(xe)?);
    let node = format!("{XS_DIR}/tx");
    a.write(TxId::NONE, &node, b"0").map_err(xe)?;
    let (ta, tb) = (a.transaction_start().map_err(xe)?, b.transaction_start().map_err(xe)?);
    a.read(ta, &node).map_err(xe)?;
    b.read(tb, &node).map_err(xe)?;
    a.write(ta, &node, b"a").map_err(xe)?;
    b.write(tb, &node, b"b").map_err(xe)?;
    let seen_inside = b.read(tb, &node).map_err(xe)?;
    a.transaction_commit(ta).map_err(|e| format!("first commit: {e}"))?;
    let second = b.transaction_commit(tb);
    let value = a.read(TxId::NONE, &node).map_err(xe)?;
    let _ = a.rm(TxId::NONE, XS_DIR);
    match second {
        Err(err) if err.is(XenError::Eagain) && value == b"a" && seen_inside == b"b" => {
            Ok("two conflicting transactions: the first commits, the second gets EAGAIN".into())
        }
        Err(err) => Err(format!("second commit: {err}, node {:?}", String::from_utf8_lossy(&value))),
        Ok(()) => Err(format!("both commits succeeded, node {:?}", String::from_utf8_lossy(&value))),
    }
}

/// A watch set on one connection fires for a write made on another, with
/// its token, and not for a write elsewhere.
fn check_watch_across_connections() -> Result<String, String> {
    use dom0_tools::xs_client::{TxId, XsClient};
    let xe = |e: dom0_tools::xs_client::XsError| e.to_string();
    let (mut w, mut x) = (XsClient::open().map_err(xe)?, XsClient::open().map_err(xe)?);
    let node = format!("{XS_DIR}/watched");
    w.watch(&node, "devcheck-token").map_err(xe)?;
    let first = w.read_watch_timeout(EVENT_TIMEOUT_MS).map_err(xe)?;
    x.write(TxId::NONE, &format!("{XS_DIR}/elsewhere"), b"1").map_err(xe)?;
    x.write(TxId::NONE, &format!("{node}/child"), b"1").map_err(xe)?;
    let second = w.read_watch_timeout(EVENT_TIMEOUT_MS).map_err(xe)?;
    let _ = x.rm(TxId::NONE, XS_DIR);
    let desc = |ev: &Option<dom0_tools::xs_client::WatchEvent>| match ev {
        Some(ev) => format!("{} {}", ev.path, ev.token),
        None => "none".into(),
    };
    let (first, second) = (desc(&first), desc(&second));
    ok_if(
        first == format!("{node} devcheck-token") && second == format!("{node}/child devcheck-token"),
        "a watch fires on registration and for a write below it from another connection",
        || format!("events: {first:?} then {second:?}"),
    )
}

fn xenstore_checks(r: &mut Report) {
    r.check("xenstore: transactions", check_transactions());
    r.check("xenstore: watches", check_watch_across_connections());
}

// --------------------------------------------------------------------- peer

/// The `granter` guest's pattern: byte `i` is `(i * 7) ^ 0x5a`.
fn granter_pattern() -> Vec<u8> {
    (0..xendev::PAGE_SIZE).map(|i| ((i * 7) ^ 0x5a) as u8).collect()
}

/// Waits (up to `secs`) for the peer to publish `data/gref` and
/// `data/port`, and returns them.
fn peer_grant(domid: u16, secs: u32) -> Result<(u32, u32), String> {
    use dom0_tools::xs_client::{TxId, XsClient};
    let mut xs = XsClient::open().map_err(|e| e.to_string())?;
    let base = format!("/local/domain/{domid}/data");
    let number = |xs: &mut XsClient, key: &str| -> Option<u32> {
        let v = xs.read(TxId::NONE, &format!("{base}/{key}")).ok()?;
        std::str::from_utf8(&v).ok()?.trim().parse().ok()
    };
    for _ in 0..secs * 10 {
        if let (Some(gref), Some(port)) = (number(&mut xs, "gref"), number(&mut xs, "port")) {
            return Ok((gref, port));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!("{base}/gref and port did not appear within {secs} s"))
}

fn peer_checks(r: &mut Report, domid: u16) {
    const NAMES: [&str; 3] = ["peer: published", "peer: gntdev map", "peer: notifications"];
    let (gref, port) = match peer_grant(domid, 120) {
        Ok(found) => found,
        Err(why) => return r.not_run(&NAMES, &why),
    };
    r.check(NAMES[0], Ok("the guest published a grant reference and an event channel".into()));
    let mapped = Gntdev::open().and_then(|dev| dev.map_grant(domid, gref, false)).map_err(e);
    r.check(
        NAMES[1],
        mapped.and_then(|m| {
            let got = page(&m);
            ok_if(got == granter_pattern(), "the guest's page mapped read-only, its pattern read back", || {
                let at = got.iter().zip(granter_pattern()).position(|(a, b)| *a != b).unwrap_or(0);
                format!("pattern differs from byte {at}")
            })
        }),
    );
    let ev = match Evtchn::open() {
        Ok(ev) => ev,
        Err(err) => return r.check(NAMES[2], Err(e(err))),
    };
    let local = match ev.bind_interdomain(domid, port) {
        Ok(local) => local,
        Err(err) => return r.check(NAMES[2], Err(format!("bind_interdomain: {err}"))),
    };
    // The bind itself leaves our end pending once, as in Xen.
    let _ = drain(&ev, 200);
    let mut answered = 0;
    let mut first_err = None;
    for _ in 0..EVENTS {
        if let Err(err) = ev.notify(local) {
            first_err.get_or_insert(format!("notify: {err}"));
            break;
        }
        match ev.wait(&mut [0u32; 8], 10_000) {
            Ok(0) => {
                first_err.get_or_insert("no answer within 10 s".to_string());
                break;
            }
            Ok(_) => {
                let _ = ev.unmask(local);
                answered += 1;
            }
            Err(err) => {
                first_err.get_or_insert(err.to_string());
                break;
            }
        }
    }
    let _ = ev.unbind(local);
    r.check(
        NAMES[2],
        match first_err {
            None => Ok(format!("{answered}/{EVENTS} notifications answered by the guest")),
            Some(why) => Err(format!("{answered}/{EVENTS} answered; {why}")),
        },
    );
}

// --------------------------------------------------------------------- main

/// An area's checks.
type Area = fn(&mut Report);

/// The areas, in run order.
const AREAS: [(&str, Area); 5] = [
    ("privcmd", privcmd_checks),
    ("evtchn", evtchn_checks),
    ("gnt", gnt_checks),
    ("xenbus", xenbus_checks),
    ("xenstore", xenstore_checks),
];

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    /// Areas named with `--only` (none: all, unless `--peer` is given).
    only: Vec<&'static str>,
    /// The granter guest's domain, with `--peer`.
    peer: Option<u16>,
}

/// Parses the arguments, or `Err(exit status)`.
fn parse_args(args: &[String]) -> Result<Args, i32> {
    let mut out = Args::default();
    let mut i = 0;
    let usage = |why: String| {
        eprintln!("xen-devcheck: {why}\n{USAGE}");
        Err(2)
    };
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        if matches!(flag, "-h" | "--help") {
            println!("{USAGE}");
            return Err(0);
        }
        if !matches!(flag, "--only" | "--peer") {
            return usage(format!("unknown argument {arg:?}"));
        }
        let value = match inline.or_else(|| args.get(i).map(String::as_str)) {
            Some(v) => {
                if inline.is_none() {
                    i += 1;
                }
                v
            }
            None => return usage(format!("{flag} needs a value")),
        };
        if flag == "--peer" {
            match value.parse::<u16>() {
                Ok(d) if d > 0 && d < guest_abi::xen::DOMID_FIRST_RESERVED => out.peer = Some(d),
                _ => return usage(format!("--peer needs a domain ID of a domU, not {value:?}")),
            }
            continue;
        }
        match AREAS.iter().find(|(name, _)| *name == value) {
            Some((name, _)) => out.only.push(*name),
            None => return usage(format!("unknown area {value:?}")),
        }
    }
    Ok(out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(args) => args,
        Err(status) => exit(status),
    };
    let mut report = Report::default();
    let all = args.only.is_empty() && args.peer.is_none();
    for (name, run) in AREAS {
        if all || args.only.contains(&name) {
            run(&mut report);
        }
    }
    if let Some(domid) = args.peer {
        peer_checks(&mut report, domid);
    }
    let total = report.passed + report.failed.len();
    if report.failed.is_empty() {
        println!("devcheck: all {total} checks passed");
        exit(0);
    }
    println!("devcheck: {} of {total} checks failed: {}", report.failed.len(), report.failed.join(", "));
    exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_selects_areas_and_bad_arguments_exit_2() {
        let only = |areas: Vec<&'static str>| Ok(Args { only: areas, peer: None });
        assert_eq!(parse_args(&strings(&[])), only(vec![]));
        assert_eq!(parse_args(&strings(&["--only", "gnt", "--only=xenbus"])), only(vec!["gnt", "xenbus"]));
        assert_eq!(parse_args(&strings(&["--peer", "3"])), Ok(Args { only: vec![], peer: Some(3) }));
        assert_eq!(parse_args(&strings(&["--peer=0"])), Err(2), "dom0 is no peer");
        assert_eq!(parse_args(&strings(&["--peer", "x"])), Err(2));
        assert_eq!(parse_args(&strings(&["--only", "bogus"])), Err(2));
        assert_eq!(parse_args(&strings(&["--only"])), Err(2));
        assert_eq!(parse_args(&strings(&["-x"])), Err(2));
    }

    #[test]
    fn patterns_differ_per_seed_and_per_word() {
        let a = pattern(1);
        assert_eq!(a.len(), xendev::PAGE_SIZE);
        assert_ne!(a, pattern(2));
        assert_ne!(a[0..4], a[4..8]);
    }

    #[test]
    fn the_report_counts_and_names_failures() {
        let mut r = Report::default();
        r.check("a: one", Ok("ok".into()));
        r.not_run(&["b: two", "b: three"], "open failed");
        assert_eq!((r.passed, r.failed.clone()), (1, vec!["b: two".to_string(), "b: three".to_string()]));
    }

    #[test]
    fn the_impossible_domid_is_below_the_reserved_range() {
        assert_eq!(NO_SUCH_DOMID, 32751);
    }
}
