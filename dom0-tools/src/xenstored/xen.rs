//! The hypervisor side: event channels, ring mappings, domain queries.
//!
//! Semantics: X:`tools/xenstore/xenstored_domain.c` `domain_init`,
//! `dom0_init`, `map_interface`, `new_domain`, `destroy_domain`,
//! `handle_event` (Xen 4.17). dom0's ring is the page of
//! `/proc/xen/xsd_kva` with a loopback `bind_interdomain(0, xsd_port)`;
//! other domains' rings are mapped through gntdev (grant ref
//! `GNTTAB_RESERVED_XENSTORE`) or, if that fails, by MFN through privcmd,
//! as oxenstored does. `VIRQ_DOM_EXC` makes the store check every domain.
//! Every port is unmasked after its event is handled.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use guest_abi::grant_table::GNTTAB_RESERVED_XENSTORE;
use guest_abi::xen::VIRQ_DOM_EXC;
use guest_abi::XenError;
use xendev::{Evtchn, Gntdev, Privcmd};
use xenstore::{ring, DomainState, Platform};

use super::log;
use super::ring_page::RingPage;

/// A domain's ring: its page and the local end of its event channel.
pub struct DomainRing {
    /// The shared page.
    pub page: RingPage,
    /// The local port (0 after a failed rebind: no notifications).
    port: Cell<u32>,
}

/// The open device files and the mapped rings.
pub struct XenBackend {
    privcmd: Privcmd,
    gntdev: Gntdev,
    evtchn: Evtchn,
    virq_port: u32,
    rings: BTreeMap<u16, Rc<DomainRing>>,
}

/// The `XenError` for a device error (Linux and Xen share these numbers).
fn xen_error(e: &io::Error) -> XenError {
    xendev::errno(e).and_then(XenError::from_errno).unwrap_or(XenError::Eio)
}

/// `io::Error` with what was being done.
fn context(what: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl XenBackend {
    /// `domain_init`: opens privcmd, gntdev and evtchn, binds
    /// `VIRQ_DOM_EXC`.
    pub fn open() -> io::Result<XenBackend> {
        let privcmd = Privcmd::open().map_err(context("Failed to open connection to hypervisor"))?;
        let gntdev = Gntdev::open().map_err(context("Failed to open connection to gnttab"))?;
        let evtchn = Evtchn::open().map_err(context("Failed to open evtchn device"))?;
        let virq_port =
            evtchn.bind_virq(VIRQ_DOM_EXC).map_err(context("Failed to bind to domain exception virq port"))?;
        Ok(XenBackend { privcmd, gntdev, evtchn, virq_port, rings: BTreeMap::new() })
    }

    /// `dom0_init`: maps the kernel's ring and binds its port; the ring
    /// belongs to `domid` (dom0, `--master-domid`).
    pub fn init_dom0(&mut self, domid: u16, port_override: Option<u32>) -> io::Result<()> {
        let port = match port_override {
            Some(p) => p,
            None => xendev::xsd_port().map_err(context("Failed to initialize dom0 port"))?,
        };
        let mapping = xendev::xsd_kva().map_err(context("Failed to map dom0's ring (xsd_kva)"))?;
        let page = RingPage::new(mapping).ok_or_else(|| io::Error::other("dom0's ring mapping is too small"))?;
        let local = self.evtchn.bind_interdomain(domid, port).map_err(context("Failed to bind dom0's port"))?;
        ring::set_connected(&page);
        self.rings.insert(domid, Rc::new(DomainRing { page, port: Cell::new(local) }));
        self.notify(domid);
        Ok(())
    }

    /// The event channel device, for `poll`.
    pub fn fd(&self) -> RawFd {
        self.evtchn.as_raw_fd()
    }

    /// The rings, for the event loop.
    pub fn rings(&self) -> Vec<(u16, Rc<DomainRing>)> {
        self.rings.iter().map(|(&d, r)| (d, Rc::clone(r))).collect()
    }

    /// Kicks `domid`'s side of its ring.
    pub fn notify(&self, domid: u16) {
        let Some(r) = self.rings.get(&domid) else { return };
        let port = r.port.get();
        if port != 0 {
            if let Err(e) = self.evtchn.notify(port) {
                log::error(&format!("notify dom{domid} port {port}: {e}"));
            }
        }
    }

    /// `handle_event`: reads the pending ports and unmasks them; returns
    /// whether `VIRQ_DOM_EXC` was among them.
    pub fn take_events(&self) -> bool {
        let mut dom_exc = false;
        let mut buf = [0u32; 64];
        loop {
            let n = match self.evtchn.pending(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    log::error(&format!("Failed to read from event fd: {e}"));
                    break;
                }
            };
            for &port in buf.iter().take(n) {
                dom_exc |= port == self.virq_port;
                if let Err(e) = self.evtchn.unmask(port) {
                    log::error(&format!("Failed to write to event fd (unmask {port}): {e}"));
                }
            }
            if n < buf.len() {
                break;
            }
        }
        dom_exc
    }

    /// `map_interface`, with oxenstored's MFN mapping as the fallback.
    fn map_ring(&self, domid: u16, mfn: u64) -> Result<RingPage, XenError> {
        let mapping = match self.gntdev.map_grant(domid, GNTTAB_RESERVED_XENSTORE, true) {
            Ok(m) => m,
            Err(grant_err) if mfn != 0 => {
                log::info(&format!("dom{domid}: grant map failed ({grant_err}), mapping mfn {mfn:#x}"));
                self.privcmd.map_foreign(domid, &[mfn], true).map_err(|e| {
                    log::error(&format!("dom{domid}: cannot map its ring: {grant_err}; {e}"));
                    xen_error(&e)
                })?
            }
            Err(e) => {
                log::error(&format!("dom{domid}: cannot map its ring: {e}"));
                return Err(xen_error(&e));
            }
        };
        RingPage::new(mapping).ok_or(XenError::Einval)
    }
}

impl Platform for XenBackend {
    fn domain_state(&self, domid: u16) -> DomainState {
        match self.privcmd.getdomaininfo(domid) {
            Ok(None) => DomainState::Absent,
            Ok(Some(info)) if info.dying() => DomainState::Dying,
            Ok(Some(info)) if info.shutdown() || info.crashed() => DomainState::Shutdown,
            Ok(Some(_)) => DomainState::Running,
            Err(e) => {
                // A failed query must not destroy a live domain.
                log::error(&format!("getdomaininfo dom{domid}: {e}"));
                DomainState::Running
            }
        }
    }

    fn map_domain(&mut self, domid: u16, mfn: u64, port: u32) -> Result<(), XenError> {
        let page = self.map_ring(domid, mfn)?;
        let local = self.evtchn.bind_interdomain(domid, port).map_err(|e| {
            log::error(&format!("dom{domid}: bind_interdomain({port}): {e}"));
            xen_error(&e)
        })?;
        ring::set_connected(&page);
        self.rings.insert(domid, Rc::new(DomainRing { page, port: Cell::new(local) }));
        self.notify(domid);
        log::info(&format!("dom{domid} introduced: remote port {port}, local port {local}"));
        Ok(())
    }

    fn rebind_domain(&mut self, domid: u16, port: u32) {
        let Some(r) = self.rings.get(&domid) else { return };
        let old = r.port.replace(0);
        if old != 0 {
            let _ = self.evtchn.unbind(old);
        }
        match self.evtchn.bind_interdomain(domid, port) {
            Ok(local) => r.port.set(local),
            Err(e) => log::error(&format!("dom{domid}: rebind to port {port}: {e}")),
        }
    }

    fn reset_ring(&mut self, domid: u16) {
        if let Some(r) = self.rings.get(&domid) {
            ring::reset(&r.page);
        }
    }

    fn unmap_domain(&mut self, domid: u16) {
        if let Some(r) = self.rings.remove(&domid) {
            let port = r.port.replace(0);
            if port != 0 {
                if let Err(e) = self.evtchn.unbind(port) {
                    log::error(&format!("> Unbinding port {port} failed! ({e})"));
                }
            }
            log::info(&format!("dom{domid} released"));
        }
    }

    fn log(&mut self, msg: &str) {
        log::info(msg);
    }
}

/// The platform without a hypervisor (`--no-domain-init`): only dom0
/// exists and nothing can be introduced.
pub struct NoXen {
    /// dom0's id.
    pub dom0: u16,
}

impl Platform for NoXen {
    fn domain_state(&self, domid: u16) -> DomainState {
        if domid == self.dom0 {
            DomainState::Running
        } else {
            DomainState::Absent
        }
    }

    fn map_domain(&mut self, _domid: u16, _mfn: u64, _port: u32) -> Result<(), XenError> {
        Err(XenError::Enosys)
    }

    fn rebind_domain(&mut self, _domid: u16, _port: u32) {}

    fn reset_ring(&mut self, _domid: u16) {}

    fn unmap_domain(&mut self, _domid: u16) {}

    fn log(&mut self, msg: &str) {
        log::info(msg);
    }
}
