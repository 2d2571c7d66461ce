//! What the XenStore client needs from the kernel it runs in: the event
//! channel beside the ring ([`EventPort`]) and the ring page's mapping.
//!
//! In a guest-rt kernel these are the domain's store port
//! (`start_info.store_evtchn`, kicked with `EVTCHNOP_send`, waited for
//! with [`crate::poll::wait_port`]) and the page `start_info.store_mfn`,
//! found in the p2m and used through the builder's initial mapping of
//! its pfn (Linux's `mfn_to_virt`), or mapped into a window page when the
//! initial mapping does not reach it. Host tests plug a fake daemon in
//! through [`EventPort`] instead.

use guest_abi::hypercall;
use guest_abi::xen::{StartInfo, UVMF_INVLPG};

use crate::{events, poll};

/// How the client signals the daemon and waits for it.
pub trait EventPort {
    /// Tells the daemon the ring changed (`notify_remote_via_evtchn`).
    fn notify(&mut self);
    /// Returns when the daemon may have changed the ring, or at system
    /// time `deadline_ns`, whichever is first (early returns are fine).
    fn wait(&mut self, deadline_ns: u64);
    /// The current system time in ns.
    fn now_ns(&mut self) -> u64;
}

/// The domain's XenStore event channel. Needs [`events::init`] first.
pub struct StorePort {
    port: u32,
}

impl StorePort {
    /// Uses local port `port` (normally `start_info.store_evtchn`) and
    /// makes sure it is not masked.
    pub fn new(port: u32) -> StorePort {
        let _ = hypercall::evtchn_unmask(port);
        StorePort { port }
    }

    /// The local port.
    pub fn port(&self) -> u32 {
        self.port
    }
}

impl EventPort for StorePort {
    fn notify(&mut self) {
        let _ = hypercall::evtchn_send(self.port);
    }

    fn wait(&mut self, deadline_ns: u64) {
        poll::wait_port(self.port, deadline_ns);
    }

    fn now_ns(&mut self) -> u64 {
        events::system_time_ns()
    }
}

/// guest-rt kernels see pfn N at this base + N pages (the VIRT_BASE note).
const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// `_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY`.
const PTE_RW: u64 = 0x67;
/// Padding Xen's start_info contract promises after the bootstrap tables
/// and stack: the initial mapping reaches at least this far past them.
const MAPPED_PAST_TABLES: u64 = 512 * 1024;

#[repr(C, align(4096))]
struct Page([u8; 4096]);
/// Where the ring is mapped when the initial mapping does not cover it.
static mut WINDOW: Page = Page([0; 4096]);

/// The pfn whose p2m entry is `mfn`.
fn pfn_of(si: &StartInfo, mfn: u64) -> Option<u64> {
    (0..si.nr_pages).find(|&pfn| {
        // SAFETY: the builder maps the p2m list (`mfn_list`) with one u64
        // entry per page of the domain, `nr_pages` of them.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() == mfn }
    })
}

/// A virtual address at which the XenStore ring page is mapped writable.
pub fn store_page(si: &StartInfo) -> Option<*mut u8> {
    let mfn = si.store_mfn;
    let pfn = pfn_of(si, mfn)?;
    let va = VIRT_BASE + pfn * 4096;
    let mapped_end = si.pt_base.saturating_add(si.nr_pt_frames.saturating_mul(4096)).saturating_add(MAPPED_PAST_TABLES);
    if va < mapped_end {
        return Some(va as *mut u8);
    }
    let window = core::ptr::addr_of_mut!(WINDOW) as *mut u8;
    hypercall::update_va_mapping(window as u64, (mfn << 12) | PTE_RW, u64::from(UVMF_INVLPG)).ok()?;
    Some(window)
}
