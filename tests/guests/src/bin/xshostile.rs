//! A hostile domU for the control-domain tests of xenstored: started by
//! `xl create`, it first floods its ring with WRITE requests without
//! reading the replies, then breaks the ring protocol, and reports what
//! the daemon did. A well-behaved daemon (Xen 4.17's C xenstored) stops
//! reading a domain's requests while 20 of its replies are outstanding
//! (`quota_req_outstanding`), answers everything once the replies are
//! read, and stops serving a ring whose indices are inconsistent
//! (`XENSTORE_ERROR_RINGIDX`) or whose message claims more than 4096
//! payload bytes (`XENSTORE_ERROR_PROTO`) — without harm to itself or to
//! other domains, which is for dom0's side of the test to check.
//!
//! Command line: `attack=index` (only the index jump), `attack=len` (only
//! the oversized header), anything else both, in that order. Every line
//! starts with `xshostile: ` and goes to both consoles; the domain powers
//! off at the end whatever happened.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::io::xs_wire::{XENSTORE_SERVER_FEATURE_ERROR, XS_ERROR, XS_READ, XS_WATCH_EVENT, XS_WRITE};
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{wire, EventPort, StorePort, TxId, XenStore, XsError};
    use guest_rt::{events, tee};

    type Xs = XenStore<StorePort>;

    const MS: u64 = 1_000_000;
    /// WRITE requests in the flood.
    const FLOOD: u32 = 200;
    /// No room in the ring for this long: the daemon stopped reading.
    const STALL_NS: u64 = 2_000 * MS;
    /// How long replies to the flood are collected.
    const DRAIN_NS: u64 = 5_000 * MS;
    /// How long the daemon gets to react to an attack.
    const SETTLE_NS: u64 = 1_000 * MS;
    /// How long a probe waits for its reply.
    const PROBE_NS: u64 = 3_000 * MS;
    /// Distinct error names counted in the flood's replies.
    const ERROR_KINDS: usize = 4;

    /// Waits, serving nothing, until `ns` from now.
    fn pause(xs: &mut Xs, ns: u64) {
        let deadline = events::system_time_ns() + ns;
        while events::system_time_ns() < deadline {
            xs.port().wait(deadline);
        }
    }

    /// The decimal digits of `n`, in `buf`.
    fn decimal(n: u32, buf: &mut [u8; 10]) -> &[u8] {
        let mut i = buf.len();
        let mut n = n;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return &buf[i..];
            }
        }
    }

    /// Sends the flood without reading; returns how many requests went in.
    fn send_flood(xs: &mut Xs) -> u32 {
        let mut sent = 0;
        let mut last_progress = events::system_time_ns();
        while sent < FLOOD {
            let mut digits = [0; 10];
            let value = decimal(sent, &mut digits);
            match xs.send_if_room(XS_WRITE, TxId::NONE, &[b"data/flood\0", value]) {
                Ok(Some(_)) => {
                    sent += 1;
                    last_progress = events::system_time_ns();
                }
                Ok(None) => {
                    let now = events::system_time_ns();
                    if now - last_progress >= STALL_NS {
                        break;
                    }
                    xs.port().wait(now + 100 * MS);
                }
                Err(e) => {
                    say!("xshostile: flood: send failed: {e}");
                    break;
                }
            }
        }
        sent
    }

    fn flood(xs: &mut Xs) {
        say!("xshostile: flooding {FLOOD} WRITE requests without reading replies");
        let sent = send_flood(xs);
        if sent == FLOOD {
            say!("xshostile: flood: all {FLOOD} requests went into the ring");
        } else {
            let unread = xs.ring().req_prod().wrapping_sub(xs.ring().req_cons());
            say!("xshostile: flood: ring full for 2 s after {sent} requests, {unread} bytes unread");
        }
        let deadline = events::system_time_ns() + DRAIN_NS;
        let (mut replies, mut ok, mut other) = (0u32, 0u32, 0u32);
        let mut errors: [Option<(XsError, u32)>; ERROR_KINDS] = [None; ERROR_KINDS];
        while replies < sent {
            let hdr = match xs.recv(deadline) {
                Ok(hdr) => hdr,
                Err(XsError::Timeout) => break,
                Err(e) => {
                    say!("xshostile: flood: receive failed: {e}");
                    break;
                }
            };
            match hdr.type_ {
                XS_WATCH_EVENT => continue,
                XS_WRITE => ok += 1,
                XS_ERROR => {
                    let e = XsError::from_error_reply(xs.last_payload());
                    match errors.iter_mut().find(|slot| slot.is_none_or(|(seen, _)| seen == e)) {
                        Some(slot) => *slot = Some((e, slot.map_or(1, |(_, n)| n + 1))),
                        None => other += 1,
                    }
                }
                _ => other += 1,
            }
            replies += 1;
        }
        say!("xshostile: flood: {replies} replies: {ok} OK, {} errors", replies - ok);
        for (e, n) in errors.iter().flatten() {
            say!("xshostile: flood: {n} x {e}");
        }
        if other > 0 {
            say!("xshostile: flood: {other} other replies");
        }
        if replies < sent {
            say!("xshostile: flood: {} requests unanswered after 5 s", sent - replies);
        }
        match xs.read(TxId::NONE, "domid") {
            Ok(_) => say!("xshostile: still served after the flood"),
            Err(e) => say!("xshostile: not served after the flood: {e}"),
        }
    }

    /// Sends an honest request and reports whether it is read and answered.
    fn probe(xs: &mut Xs, attack: &str) {
        let cons = xs.ring().req_cons();
        xs.set_timeout_ns(PROBE_NS);
        match xs.request(XS_READ, TxId::NONE, &[b"domid\0"]) {
            Ok(_) => say!("xshostile: after the {attack}: still served"),
            Err(XsError::Timeout) => say!("xshostile: after the {attack}: no reply in 3 s"),
            Err(e) => say!("xshostile: after the {attack}: {e}"),
        }
        let reads = if xs.ring().req_cons() == cons { "stopped reading" } else { "still reads" };
        say!("xshostile: after the {attack}: the daemon {reads} the ring");
        // Xen 4.17's xenstored sets `error` without offering the feature.
        let ring = xs.ring();
        let offered = if ring.server_features() & XENSTORE_SERVER_FEATURE_ERROR != 0 { "" } else { "not " };
        say!("xshostile: after the {attack}: ring error field {}, error feature {offered}offered", ring.error());
    }

    /// Publishes `req_prod = req_cons + 5000`, then puts the old value back
    /// so that the probe can be written.
    fn index_jump(xs: &mut Xs) {
        let (cons, prod) = (xs.ring().req_cons(), xs.ring().req_prod());
        xs.ring().set_req_prod(cons.wrapping_add(5000));
        xs.port().notify();
        say!("xshostile: req_prod set to req_cons + 5000");
        pause(xs, SETTLE_NS);
        xs.ring().set_req_prod(prod);
        probe(xs, "index jump");
    }

    /// Sends a header that claims `len = 0xffffffff`.
    fn huge_len(xs: &mut Xs) {
        let header = wire::header(XS_WRITE, 0xdead, 0, 0xffff_ffff);
        match xs.send_raw(&header) {
            Ok(n) if n == header.len() => say!("xshostile: sent a header with len 0xffffffff"),
            Ok(n) => say!("xshostile: only {n} bytes of the header with len 0xffffffff fit"),
            Err(e) => say!("xshostile: cannot send the header with len 0xffffffff: {e}"),
        }
        pause(xs, SETTLE_NS);
        probe(xs, "oversized header");
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("xshostile: start");
        if let Err(e) = events::init(si) {
            say!("xshostile: event setup failed: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let mut xs = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => {
                say!("xshostile: cannot open XenStore: {e}");
                guest_rt::shutdown(SHUTDOWN_CRASH)
            }
        };
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let attack = cmdline.split(' ').find_map(|kv| kv.strip_prefix("attack=")).unwrap_or("both");
        flood(&mut xs);
        if attack != "len" {
            index_jump(&mut xs);
        }
        if attack != "index" {
            huge_len(&mut xs);
        }
        say!("xshostile: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
