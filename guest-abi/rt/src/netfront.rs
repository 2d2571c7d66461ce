//! Network interfaces for guest-rt kernels: pv-drivers' netif frontend
//! over the kernel's XenStore client, grant table, heap and event
//! channels (the same [`GuestPlatform`] and [`GuestStore`] the block
//! frontend uses).
//!
//! [`NetDevice::connect`] runs the xenbus handshake for
//! `device/vif/<devid>` (waiting on a watch of the backend's `state`)
//! until both ends are Connected. Then [`NetDevice::send`] queues and
//! publishes an Ethernet frame and [`NetDevice::receive`] takes what
//! came; [`wait_any`] sleeps until one of several ports fires (every
//! device's [`NetDevice::ports`]), and [`NetDevice::rearm`] asks for
//! the next notifications before sleeping, closing the race with a
//! backend that answered meanwhile.
//!
//! Needs [`crate::events::init`], [`crate::gnttab::init`] and a heap
//! ([`crate::heap::init`]): pool pages and rings come from the heap.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::hypercall;
use guest_abi::xen::StartInfo;
use pv_drivers::netif::front::{FrontendAction, NetfrontConfig, NetfrontDevice, NetfrontQueue, Received, SendError};
use pv_drivers::netif::keys::Mac;

use crate::blkfront::{GuestPage, GuestPlatform, GuestStore};
use crate::events;
use crate::xenstore::{EventPort, XenStore};

/// The watch token for the backend's state.
const TOKEN: &str = "netfront";

/// A connected vif.
pub struct NetDevice {
    dev: NetfrontDevice<GuestPlatform>,
    platform: GuestPlatform,
}

impl NetDevice {
    /// Connects to `device/vif/<devid>` within `timeout_ns`.
    pub fn connect<P: EventPort>(
        si: &'static StartInfo,
        xs: &mut XenStore<P>,
        devid: u32,
        cfg: NetfrontConfig,
        timeout_ns: u64,
    ) -> Result<NetDevice, String> {
        let dir = format!("device/vif/{devid}");
        let mut dev = NetfrontDevice::new(&mut GuestStore(xs), &dir, cfg).map_err(|e| format!("{e}"))?;
        let mut platform = GuestPlatform::new(si);
        let watched = format!("{}/state", dev.backend_dir());
        xs.watch(&watched, TOKEN).map_err(|e| format!("watch {watched}: {e}"))?;
        let deadline = events::system_time_ns().saturating_add(timeout_ns);
        let r = loop {
            match dev.step(&mut GuestStore(xs), &mut platform) {
                Ok(FrontendAction::Connected) => break Ok(()),
                Ok(FrontendAction::Failed(why)) => break Err(why),
                Ok(FrontendAction::Closed) => break Err(String::from("the backend closed")),
                Ok(FrontendAction::Idle) => {}
                Err(e) => break Err(format!("{e}")),
            }
            if events::system_time_ns() >= deadline {
                break Err(String::from("timed out waiting for the backend"));
            }
            // Any event may change things; steps read the current states.
            let _ = xs.next_watch_event(deadline);
        };
        let _ = xs.unwatch(&watched, TOKEN);
        r?;
        Ok(NetDevice { dev, platform })
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> Mac {
        self.dev.mac()
    }

    /// The backend's directory (where the toolstack's `ip` key is).
    pub fn backend_dir(&self) -> &str {
        self.dev.backend_dir()
    }

    /// Every port of every queue (to wait on).
    pub fn ports(&mut self) -> Vec<u32> {
        let mut p = Vec::new();
        for q in self.dev.queues().iter() {
            let (tx, rx) = q.ports();
            p.push(tx);
            if rx != tx {
                p.push(rx);
            }
        }
        p
    }

    /// Queues `frame` on queue 0 and publishes it; frees answered pages
    /// first if none is free.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let (queues, platform) = (self.dev.queues(), &mut self.platform);
        let q = queues.first_mut().ok_or(SendError::Broken)?;
        let sent = match q.send(frame) {
            Err(SendError::Full) => {
                q.reap_tx().map_err(|_| SendError::Broken)?;
                q.send(frame)
            }
            r => r,
        };
        q.flush(platform);
        sent
    }

    /// Takes every queue's TX responses and received frames (appended to
    /// `out`); how many frames.
    pub fn receive(&mut self, out: &mut Vec<Received>) -> Result<usize, String> {
        let (queues, platform) = (self.dev.queues(), &mut self.platform);
        let mut n = 0;
        for q in queues.iter_mut() {
            q.reap_tx().map_err(|e| format!("{e}"))?;
            n += q.receive(platform, out).map_err(|e| format!("{e}"))?;
        }
        Ok(n)
    }

    /// Asks for a notification on the next responses of every queue;
    /// true if some are already there (do not sleep).
    pub fn rearm(&mut self) -> Result<bool, String> {
        let mut more = false;
        for q in self.dev.queues().iter_mut() {
            more |= q.final_check().map_err(|e| format!("{e}"))?;
        }
        Ok(more)
    }

    /// Queue `q` and the platform, for callers that drive it themselves
    /// (tests of backends use its raw requests).
    pub fn queue(&mut self, q: usize) -> Option<(&mut NetfrontQueue<GuestPage>, &mut GuestPlatform)> {
        let (queues, platform) = (self.dev.queues(), &mut self.platform);
        queues.get_mut(q).map(|q| (q, platform))
    }
}

/// Waits until one of `ports` fires or system time reaches
/// `deadline_ns`; returns whether one fired (taking every fired flag).
/// Event delivery is masked between the check and `SCHEDOP_poll`, so a
/// port cannot fire unseen in between (as [`crate::poll::wait_port`]).
pub fn wait_any(ports: &[u32], deadline_ns: u64) -> bool {
    loop {
        let mut fired = false;
        for &p in ports {
            fired |= events::take(p);
        }
        if fired {
            return true;
        }
        if events::system_time_ns() >= deadline_ns {
            return false;
        }
        events::mask_events();
        let pending = ports.iter().any(|&p| events::is_pending(p));
        if !pending && hypercall::sched_poll(ports, deadline_ns).is_err() {
            let _ = hypercall::sched_yield();
        }
        events::unmask_events();
    }
}
