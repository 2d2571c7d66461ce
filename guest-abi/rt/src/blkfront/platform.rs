//! [`GuestPlatform`]: what pv-drivers' frontend needs, from a guest-rt
//! kernel — pages from the heap (inside the kernel image, so their
//! frames are in the p2m list), grants from [`crate::gnttab`], event
//! channels by hypercall.

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::format;
use alloc::vec::Vec;

use guest_abi::hypercall;
use guest_abi::io::ring::SharedRing;
use guest_abi::xen::StartInfo;
use pv_drivers::blkif::front::{FrontendPlatform, PlatformError, RingArea, SharedPage};

use crate::gnttab;

/// Where the builder maps pfn 0 (guest-rt's `VIRT_BASE` note).
const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Bytes in a page.
const PAGE: usize = 4096;

/// A heap page shared with the backend; freed on drop.
pub struct GuestPage {
    ptr: *mut u8,
    frame: u64,
}

impl SharedPage for GuestPage {
    fn frame(&self) -> u64 {
        self.frame
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let n = buf.len().min(PAGE.saturating_sub(offset));
        // SAFETY: `offset..offset+n` lies in the page, which this value
        // owns until drop; the backend may write it concurrently, which
        // only changes bytes (no Rust reference into the page exists).
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.add(offset), buf.as_mut_ptr(), n) }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let n = data.len().min(PAGE.saturating_sub(offset));
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(offset), n) }
    }
}

impl Drop for GuestPage {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_page` with this layout.
        unsafe { dealloc(self.ptr, page_layout(1)) }
    }
}

fn page_layout(pages: usize) -> Layout {
    // A page-aligned size that fits: cannot fail for the small counts used.
    Layout::from_size_align(pages * PAGE, PAGE).unwrap_or(Layout::new::<u8>())
}

/// A ring area handed out, to give back by its first frame.
struct RingAlloc {
    first_frame: u64,
    ptr: *mut u8,
    pages: usize,
}

/// The kernel's platform for frontends.
pub struct GuestPlatform {
    si: &'static StartInfo,
    rings: Vec<RingAlloc>,
}

impl GuestPlatform {
    /// Needs [`gnttab::init`] and [`crate::events::init`] first.
    pub fn new(si: &'static StartInfo) -> Self {
        GuestPlatform { si, rings: Vec::new() }
    }

    /// The machine frame behind one of the kernel's pages (its p2m entry).
    fn mfn_of(&self, va: u64) -> Result<u64, PlatformError> {
        let pfn = va.wrapping_sub(VIRT_BASE) >> 12;
        if va < VIRT_BASE || pfn >= self.si.nr_pages {
            return Err(PlatformError(format!("{va:#x} is not in the kernel's mapping")));
        }
        // SAFETY: the builder maps the p2m list at `mfn_list` with one u64
        // per page of the domain; pfn < nr_pages.
        Ok(unsafe { ((self.si.mfn_list + pfn * 8) as *const u64).read_volatile() })
    }

    fn alloc(&mut self, pages: usize) -> Result<*mut u8, PlatformError> {
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc_zeroed(page_layout(pages)) };
        if ptr.is_null() {
            return Err(PlatformError(format!("out of heap for {pages} page(s)")));
        }
        Ok(ptr)
    }

    /// Where the ring whose first frame is `frame` is mapped (for tests
    /// that scribble on their own ring).
    pub fn ring_address(&self, frame: u64) -> Option<*mut u8> {
        self.rings.iter().find(|r| r.first_frame == frame).map(|r| r.ptr)
    }
}

impl FrontendPlatform for GuestPlatform {
    type Page = GuestPage;

    fn alloc_page(&mut self) -> Result<GuestPage, PlatformError> {
        let ptr = self.alloc(1)?;
        match self.mfn_of(ptr as u64) {
            Ok(frame) => Ok(GuestPage { ptr, frame }),
            Err(e) => {
                // SAFETY: just allocated with this layout.
                unsafe { dealloc(ptr, page_layout(1)) };
                Err(e)
            }
        }
    }

    fn alloc_ring(&mut self, order: u32) -> Result<RingArea, PlatformError> {
        let pages = 1usize << order.min(4);
        let ptr = self.alloc(pages)?;
        let frames = (0..pages).map(|i| self.mfn_of(ptr as u64 + (i * PAGE) as u64)).collect::<Result<Vec<_>, _>>();
        let frames = match frames {
            Ok(f) => f,
            Err(e) => {
                // SAFETY: just allocated with this layout.
                unsafe { dealloc(ptr, page_layout(pages)) };
                return Err(e);
            }
        };
        self.rings.push(RingAlloc { first_frame: frames[0], ptr, pages });
        // SAFETY: `pages` (a power of two) page-aligned pages from the heap,
        // kept until `free_ring`, which the frontend calls only once the
        // queue using this view is gone.
        let shared = unsafe { SharedRing::from_raw(ptr, pages) };
        Ok(RingArea { shared, frames })
    }

    fn free_ring(&mut self, frames: &[u64]) {
        let Some(first) = frames.first() else { return };
        if let Some(i) = self.rings.iter().position(|r| r.first_frame == *first) {
            let r = self.rings.swap_remove(i);
            // SAFETY: allocated by `alloc_ring` with this layout; its view
            // is gone (contract of `free_ring`).
            unsafe { dealloc(r.ptr, page_layout(r.pages)) };
        }
    }

    fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Result<u32, PlatformError> {
        gnttab::grant(domid, frame, readonly).map_err(|e| PlatformError(format!("grant: {e:?}")))
    }

    fn end_grant(&mut self, gref: u32) -> Result<(), PlatformError> {
        gnttab::end(gref).map_err(|e| PlatformError(format!("end grant {gref}: {e:?}")))
    }

    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, PlatformError> {
        let port = hypercall::evtchn_alloc_unbound(remote).map_err(|e| PlatformError(format!("alloc_unbound: {e}")))?;
        let _ = hypercall::evtchn_unmask(port);
        Ok(port)
    }

    fn close_port(&mut self, port: u32) {
        let _ = hypercall::evtchn_close(port);
    }

    fn notify(&mut self, port: u32) {
        let _ = hypercall::evtchn_send(port);
    }
}
