//! Block devices for guest-rt kernels: pv-drivers' blkif frontend over
//! the kernel's XenStore client, grant table, heap and event channels.
//!
//! [`BlockDevice::connect`] runs the xenbus handshake for
//! `device/vbd/<devid>` (waiting on a watch of the backend's `state`),
//! then offers the engine's queues: [`BlockDevice::submit`] several
//! requests, [`BlockDevice::kick`] once, [`BlockDevice::wait`] for their
//! completions — or [`BlockDevice::run`] one request synchronously.
//! [`BlockDevice::close`] closes the connection and ends every grant.
//!
//! Needs [`crate::events::init`], [`crate::gnttab::init`] and a heap
//! ([`crate::heap::init`]): pool pages and rings come from the heap.

mod platform;
mod store;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::xen::StartInfo;
use pv_drivers::blkif::front::{
    BlkfrontDevice, Completion, DiskInfo, FrontConfig, FrontQueue, FrontendAction, Io, SubmitError,
};

pub use platform::{GuestPage, GuestPlatform};
pub use store::GuestStore;

use crate::xenstore::{EventPort, XenStore};
use crate::{events, poll};

/// The watch token for the backend's state.
const TOKEN: &str = "blkfront";

/// A connected vbd.
pub struct BlockDevice {
    dev: BlkfrontDevice<GuestPlatform>,
    platform: GuestPlatform,
    info: DiskInfo,
}

/// Steps `dev` until `done` says so, waiting on watch events in between.
fn drive<P: EventPort>(
    dev: &mut BlkfrontDevice<GuestPlatform>,
    platform: &mut GuestPlatform,
    xs: &mut XenStore<P>,
    deadline_ns: u64,
    mut done: impl FnMut(&FrontendAction, &BlkfrontDevice<GuestPlatform>) -> Option<Result<(), String>>,
) -> Result<(), String> {
    loop {
        let action = dev.step(&mut GuestStore(xs), platform).map_err(|e| format!("{e}"))?;
        if let Some(r) = done(&action, dev) {
            return r;
        }
        if events::system_time_ns() >= deadline_ns {
            return Err(String::from("timed out waiting for the backend"));
        }
        // Any event may change things; steps read the current states.
        let _ = xs.next_watch_event(deadline_ns);
    }
}

impl BlockDevice {
    /// Connects to `device/vbd/<devid>` within `timeout_ns`.
    pub fn connect<P: EventPort>(
        si: &'static StartInfo,
        xs: &mut XenStore<P>,
        devid: u32,
        cfg: FrontConfig,
        timeout_ns: u64,
    ) -> Result<BlockDevice, String> {
        let dir = format!("device/vbd/{devid}");
        let mut dev = BlkfrontDevice::new(&mut GuestStore(xs), &dir, cfg).map_err(|e| format!("{e}"))?;
        let mut platform = GuestPlatform::new(si);
        let watched = format!("{}/state", dev.backend_dir());
        xs.watch(&watched, TOKEN).map_err(|e| format!("watch {watched}: {e}"))?;
        let mut info = None;
        let deadline = events::system_time_ns().saturating_add(timeout_ns);
        let r = drive(&mut dev, &mut platform, xs, deadline, |a, _| match a {
            FrontendAction::Connected(i) => {
                info = Some(*i);
                Some(Ok(()))
            }
            FrontendAction::Failed(why) => Some(Err(why.clone())),
            FrontendAction::Closed => Some(Err(String::from("the backend closed"))),
            FrontendAction::Idle => None,
        });
        let _ = xs.unwatch(&watched, TOKEN);
        r?;
        let info = info.ok_or_else(|| String::from("no disk information"))?;
        Ok(BlockDevice { dev, platform, info })
    }

    /// The disk.
    pub fn info(&self) -> DiskInfo {
        self.info
    }

    /// Queues in use.
    pub fn queues(&mut self) -> usize {
        self.dev.queues().len()
    }

    /// Queue `q`, for callers that drive it themselves.
    pub fn queue(&mut self, q: usize) -> Option<&mut FrontQueue<GuestPage>> {
        self.dev.queues().get_mut(q)
    }

    /// The kernel platform (grants, rings).
    pub fn platform(&mut self) -> &mut GuestPlatform {
        &mut self.platform
    }

    /// Queues `io` on queue `q` (published by [`BlockDevice::kick`]).
    pub fn submit(&mut self, q: usize, tag: u64, io: Io<'_>) -> Result<(), SubmitError> {
        self.dev.queues().get_mut(q).ok_or(SubmitError::Broken)?.submit(tag, io)
    }

    /// Publishes queue `q`'s requests (notifying if the backend asked).
    pub fn kick(&mut self, q: usize) {
        let (queues, platform) = (self.dev.queues(), &mut self.platform);
        if let Some(queue) = queues.get_mut(q) {
            queue.kick(platform);
        }
    }

    /// Takes queue `q`'s completions into `out`, waiting until there is
    /// at least one or system time reaches `deadline_ns`; how many.
    pub fn wait(&mut self, q: usize, out: &mut Vec<Completion>, deadline_ns: u64) -> Result<usize, String> {
        loop {
            let queue = self.dev.queues().get_mut(q).ok_or_else(|| String::from("no such queue"))?;
            let n = queue.complete(out).map_err(|e| format!("{e}"))?;
            if n > 0 || queue.in_flight() == 0 {
                return Ok(n);
            }
            let port = queue.port();
            if !poll::wait_port(port, deadline_ns) {
                return Err(String::from("timed out waiting for responses"));
            }
        }
    }

    /// Runs one request on queue 0 and returns its completion.
    pub fn run(&mut self, io: Io<'_>, timeout_ns: u64) -> Result<Completion, String> {
        self.submit(0, u64::MAX, io).map_err(|e| format!("submit: {e:?}"))?;
        self.kick(0);
        let deadline = events::system_time_ns().saturating_add(timeout_ns);
        let mut out = Vec::new();
        while out.is_empty() {
            self.wait(0, &mut out, deadline)?;
        }
        out.pop().ok_or_else(|| String::from("no completion"))
    }

    /// Closes the connection within `timeout_ns`; the grants the backend
    /// still held (leaked).
    pub fn close<P: EventPort>(mut self, xs: &mut XenStore<P>, timeout_ns: u64) -> Result<usize, String> {
        self.dev.close(&mut GuestStore(xs)).map_err(|e| format!("{e}"))?;
        let watched = format!("{}/state", self.dev.backend_dir());
        let _ = xs.watch(&watched, TOKEN);
        let deadline = events::system_time_ns().saturating_add(timeout_ns);
        let r = drive(&mut self.dev, &mut self.platform, xs, deadline, |_, dev| dev.is_closed().then_some(Ok(())));
        let _ = xs.unwatch(&watched, TOKEN);
        r.map(|()| self.dev.leaked_grants())
    }
}
