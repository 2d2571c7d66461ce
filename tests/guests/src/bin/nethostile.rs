//! A hostile netif frontend, for the network driver tests: it connects
//! to `device/vif/0` like any frontend, then sends, through its own TX
//! ring, requests a backend must refuse — a slot crossing its page, a
//! runt, slot sizes that do not add up, a grant that does not exist, a
//! grant made out to another domain, an extra-info slot of unknown
//! type, a checksum request on a frame with no L4 header, a chain of
//! more slots than netif allows — between well-formed ARP requests to
//! dom0. It counts how each slot was answered, checks that dom0 still
//! answers ARP, then publishes a producer index 1000 slots ahead and
//! waits for the backend to close the vif.
//!
//! Lines start with `nethostile: ` and go to both consoles; the last is
//! `nethostile: done`, then it powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[path = "../net.rs"]
mod net;

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;

    use alloc::format;
    use alloc::vec::Vec;

    use guest_abi::io::netif::{
        NetifTxRequest, NetifTxResponse, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK,
        NETTXF_EXTRA_INFO, NETTXF_MORE_DATA,
    };
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::netfront::{wait_any, NetDevice};
    use guest_rt::pv_drivers::blkif::front::{FrontendPlatform, SharedPage};
    use guest_rt::pv_drivers::netif::front::NetfrontConfig;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{StorePort, TxId, XenStore};
    use guest_rt::{events, gnttab, heap, tee};

    use super::net::{arp, classify, parse_ip, Request};

    /// The heap: rings and page pools come from here.
    static mut HEAP: [u8; 2 << 20] = [0; 2 << 20];
    /// How long a connection, or an answer, may take.
    const TIMEOUT_NS: u64 = 60_000_000_000;
    /// dom0's address on the bridge.
    const DOM0_IP: [u8; 4] = [169, 254, 0, 1];
    /// A domain that is not the backend (the grant is made out to it).
    const STRANGER: u16 = 0x7ff0;

    fn fail(what: &str) -> ! {
        say!("nethostile: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn req(id: u16, gref: u32, offset: u16, size: u16, flags: u32) -> NetifTxRequest {
        NetifTxRequest { gref, offset, flags: flags as u16, id, size }
    }

    /// Sends `reqs` raw and collects one response per slot (or until the
    /// deadline).
    fn exchange(dev: &mut NetDevice, reqs: &[NetifTxRequest]) -> Vec<NetifTxResponse> {
        let ports = dev.ports();
        let Some((q, platform)) = dev.queue(0) else { fail("no queue") };
        q.raw_push_tx(platform, reqs);
        let mut rsp = Vec::new();
        let deadline = events::system_time_ns().saturating_add(TIMEOUT_NS);
        while rsp.len() < reqs.len() {
            if let Err(e) = q.raw_take_tx(&mut rsp) {
                fail(&format!("{e}"));
            }
            if rsp.len() >= reqs.len() || q.final_check().unwrap_or(true) {
                continue;
            }
            if !wait_any(&ports, deadline) {
                break;
            }
        }
        rsp
    }

    /// Waits for dom0's ARP reply to us.
    fn arp_answered(dev: &mut NetDevice, ip: [u8; 4]) -> bool {
        let ports = dev.ports();
        let mac = dev.mac();
        let deadline = events::system_time_ns().saturating_add(TIMEOUT_NS);
        loop {
            let mut frames = Vec::new();
            if dev.receive(&mut frames).is_err() {
                return false;
            }
            if frames
                .iter()
                .any(|f| matches!(classify(&f.data, mac, ip), Request::ArpReply(_, from) if from == DOM0_IP))
            {
                return true;
            }
            if !dev.rearm().unwrap_or(true) && !wait_any(&ports, deadline) {
                return false;
            }
        }
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("nethostile: start");
        // SAFETY: HEAP is used only here, handed to the heap once.
        heap::init(unsafe { &mut *core::ptr::addr_of_mut!(HEAP) });
        if let Err(e) = events::init(si) {
            fail(&format!("event setup failed: {e}"));
        }
        if let Err(e) = gnttab::init() {
            fail(&format!("grant table setup failed: {e}"));
        }
        let mut xs: XenStore<StorePort> = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => fail(&format!("cannot open XenStore: {e}")),
        };
        let cfg = NetfrontConfig { tx_buffers: 4, rx_buffers: 32, ..NetfrontConfig::default() };
        let mut dev = match NetDevice::connect(si, &mut xs, 0, cfg, TIMEOUT_NS) {
            Ok(d) => d,
            Err(e) => fail(&format!("vif 0: {e}")),
        };
        let backend = dev.backend_dir().into();
        let backend: alloc::string::String = backend;
        let Some(ip) = xs.read(TxId::NONE, &format!("{backend}/ip")).ok().and_then(parse_ip) else {
            fail("no ip for vif 0")
        };
        say!("nethostile: vif 0 up");
        let mac = dev.mac();
        let who_has = arp(1, mac, ip, guest_rt::pv_drivers::netif::keys::Mac::BROADCAST, DOM0_IP);
        let mut not_l4 = who_has.clone();
        not_l4.resize(60, 0);
        let Some((q, platform)) = dev.queue(0) else { fail("no queue") };
        let (good, frame) = match q.raw_tx_page(0) {
            Some((g, page)) => {
                page.write(0, &who_has);
                (g, page.frame())
            }
            None => fail("no TX page"),
        };
        let other = match q.raw_tx_page(1) {
            Some((g, page)) => {
                page.write(0, &not_l4);
                g
            }
            None => fail("no TX page"),
        };
        let foreign = platform.grant(STRANGER, frame, true).unwrap_or_else(|e| fail(&format!("grant: {e:?}")));
        let len = who_has.len() as u16;
        let mut reqs = alloc::vec![
            req(1, good, 0, len, 0),                // well-formed
            req(2, good, 4000, 200, 0),             // crosses its page
            req(3, good, 0, 10, 0),                 // a runt
            req(4, good, 0, len, NETTXF_MORE_DATA), // later slots larger than the packet
            req(5, good, 0, 200, 0),
            req(6, 0x00ff_fff0, 0, len, 0),          // no such grant
            req(7, foreign, 0, len, 0),              // a grant to someone else
            req(8, good, 0, len, NETTXF_EXTRA_INFO), // an extra of unknown type
            NetifTxRequest { gref: 0x0000_0009, offset: 0, flags: 0, id: 0, size: 0 },
            req(9, other, 0, 60, NETTXF_CSUM_BLANK), // a checksum of no L4 header
            req(10, good, 0, 60000, NETTXF_MORE_DATA), // more slots than netif allows
        ];
        for i in 0..25u16 {
            reqs.push(req(11 + i, good, 0, 100, if i < 24 { NETTXF_MORE_DATA } else { 0 }));
        }
        reqs.push(req(40, good, 0, len, 0)); // well-formed again
        let rsp = exchange(&mut dev, &reqs);
        let count = |s: i16| rsp.iter().filter(|r| r.status == s).count();
        say!(
            "nethostile: {} slots sent, {} answered: {} errors, {} okay, {} null",
            reqs.len(),
            rsp.len(),
            count(NETIF_RSP_ERROR),
            count(NETIF_RSP_OKAY),
            count(NETIF_RSP_NULL)
        );
        let okay: Vec<u16> = rsp.iter().filter(|r| r.status == NETIF_RSP_OKAY).map(|r| r.id).collect();
        say!("nethostile: accepted ids {okay:?}");
        if arp_answered(&mut dev, ip) {
            say!("nethostile: dom0 still answers its ARP requests");
        } else {
            say!("nethostile: no ARP reply from dom0");
        }
        // Break the ring: a producer index 1000 requests ahead.
        let watched = format!("{backend}/state");
        let _ = xs.watch(&watched, "nethostile");
        let Some((q, platform)) = dev.queue(0) else { fail("no queue") };
        let (tx_frame, _) = q.ring_frames();
        let (tx_port, _) = q.ports();
        match platform.ring_address(tx_frame) {
            Some(ring) => {
                // SAFETY: `ring` is this guest's own TX ring page, mapped for
                // the kernel's lifetime; req_prod is its first 4-aligned u32.
                unsafe {
                    let prod = (ring as *mut u32).read_volatile();
                    (ring as *mut u32).write_volatile(prod.wrapping_add(1000));
                }
            }
            None => fail("no TX ring"),
        }
        platform.notify(tx_port);
        let deadline = events::system_time_ns().saturating_add(TIMEOUT_NS);
        let mut state = 0;
        while state < 5 {
            state = xs
                .read(TxId::NONE, &watched)
                .ok()
                .and_then(|v| core::str::from_utf8(v).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if state >= 5 || xs.next_watch_event(deadline).is_err() {
                break;
            }
        }
        if state >= 5 {
            say!("nethostile: the backend closed the vif after the producer index jump");
        } else {
            say!("nethostile: the backend is still at state {state}");
        }
        say!("nethostile: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
