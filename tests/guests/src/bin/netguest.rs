//! A domU with network interfaces through guest-rt's netif frontend, for
//! the network driver tests: started by `xl create` with `vif = [...]`,
//! it connects to every vif in `device/vif`, takes its address from the
//! `ip` the toolstack wrote in the backend directory, and from then on
//! answers ARP requests for it and ICMP echo requests to it, forever
//! (dom0 destroys it).
//!
//! Lines start with `netguest: ` and go to both consoles: each vif once
//! connected (`netguest: vif N: up, ip A`), then its first ARP and echo
//! requests answered.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[path = "../net.rs"]
mod net;

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;

    use alloc::format;
    use alloc::vec::Vec;

    use guest_abi::sched::SHUTDOWN_CRASH;
    use guest_abi::xen::StartInfo;
    use guest_rt::netfront::{wait_any, NetDevice};
    use guest_rt::pv_drivers::netif::front::NetfrontConfig;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{StorePort, TxId, XenStore};
    use guest_rt::{events, gnttab, heap, tee};

    use super::net::{classify, parse_ip, Ip, Request, ShowIp};

    /// The heap: rings and page pools come from here.
    static mut HEAP: [u8; 4 << 20] = [0; 4 << 20];
    /// How long a connection may take.
    const TIMEOUT_NS: u64 = 60_000_000_000;
    /// Requests of each kind reported per vif.
    const REPORTED: u32 = 3;

    /// A connected vif and what it has answered.
    struct Vif {
        devid: u32,
        dev: NetDevice,
        ip: Ip,
        arps: u32,
        echoes: u32,
    }

    fn fail(what: &str) -> ! {
        say!("netguest: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn connect(si: &'static StartInfo, xs: &mut XenStore<StorePort>, devid: u32) -> Option<Vif> {
        let cfg = NetfrontConfig { tx_buffers: 32, rx_buffers: 64, ..NetfrontConfig::default() };
        let dev = match NetDevice::connect(si, xs, devid, cfg, TIMEOUT_NS) {
            Ok(d) => d,
            Err(e) => {
                say!("netguest: vif {devid}: {e}");
                return None;
            }
        };
        let ip = xs.read(TxId::NONE, &format!("{}/ip", dev.backend_dir())).ok().and_then(parse_ip);
        let Some(ip) = ip else {
            say!("netguest: vif {devid}: no ip in {}", dev.backend_dir());
            return None;
        };
        say!("netguest: vif {devid}: up, ip {}", ShowIp(ip));
        Some(Vif { devid, dev, ip, arps: 0, echoes: 0 })
    }

    /// Answers what came on `v`.
    fn serve(v: &mut Vif) {
        let mut frames = Vec::new();
        if let Err(e) = v.dev.receive(&mut frames) {
            say!("netguest: vif {}: {e}", v.devid);
            return;
        }
        let mac = v.dev.mac();
        for f in frames {
            match classify(&f.data, mac, v.ip) {
                Request::Arp(from_mac, from_ip) => {
                    let _ = v.dev.send(&super::net::arp(2, mac, v.ip, from_mac, from_ip));
                    v.arps += 1;
                    if v.arps <= REPORTED {
                        say!("netguest: vif {}: answered ARP from {}", v.devid, ShowIp(from_ip));
                    }
                }
                Request::Echo(from, reply) => {
                    let _ = v.dev.send(&reply);
                    v.echoes += 1;
                    if v.echoes <= REPORTED {
                        say!("netguest: vif {}: answered ping from {}", v.devid, ShowIp(from));
                    }
                }
                Request::ArpReply(..) | Request::Other => {}
            }
        }
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("netguest: start");
        // SAFETY: HEAP is used only here, handed to the heap once.
        heap::init(unsafe { &mut *core::ptr::addr_of_mut!(HEAP) });
        if let Err(e) = events::init(si) {
            fail(&format!("event setup failed: {e}"));
        }
        if let Err(e) = gnttab::init() {
            fail(&format!("grant table setup failed: {e}"));
        }
        let mut xs = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => fail(&format!("cannot open XenStore: {e}")),
        };
        let mut devids: Vec<u32> = match xs.directory(TxId::NONE, "device/vif") {
            Ok(names) => names.filter_map(|n| core::str::from_utf8(n).ok()?.parse().ok()).collect(),
            Err(e) => fail(&format!("no vifs: {e}")),
        };
        devids.sort_unstable();
        let mut vifs: Vec<Vif> = devids.into_iter().filter_map(|d| connect(si, &mut xs, d)).collect();
        let ports: Vec<u32> = vifs.iter_mut().flat_map(|v| v.dev.ports()).collect();
        say!("netguest: serving {} vif(s)", vifs.len());
        loop {
            for v in vifs.iter_mut() {
                serve(v);
            }
            let mut more = false;
            for v in vifs.iter_mut() {
                more |= v.dev.rearm().unwrap_or(false);
            }
            if !more {
                wait_any(&ports, events::system_time_ns().saturating_add(1_000_000_000));
            }
        }
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
