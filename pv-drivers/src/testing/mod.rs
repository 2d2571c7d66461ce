//! A fake platform for host tests: XenStore as a map, a frontend domain
//! whose pages and grant table live in this process, a backend that maps
//! and copies those grants, event channels as counters, a disk in
//! memory. Both ends of a driver run against it in one address space.
//!
//! The fake enforces what Xen does where the tests depend on it: a grant
//! is usable only by the domain it names and only as its flags allow; a
//! grant cannot be ended while mapped; a map of several grants must be
//! of contiguous pages (the frontend allocates rings that way).

mod disk;
mod store;

pub use disk::MemDisk;
pub use store::FakeStore;

use std::boxed::Box;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::format;
use std::rc::Rc;
use std::vec::Vec;

use guest_abi::io::ring::{RingPage, SharedRing};

use crate::blkif::back::{CopySpan, GrantAccess, GrantError, MappedPage};
use crate::blkif::front::{FrontendPlatform, PlatformError, RingArea, SharedPage};

/// The backend's domain.
pub const BACKEND: u16 = 0;
/// The frontend's domain.
pub const FRONTEND: u16 = 5;

/// A grant table entry.
#[derive(Clone, Copy, Debug)]
struct Grant {
    frame: u64,
    domid: u16,
    readonly: bool,
    maps: u32,
}

/// The shared state: the frontend's frames, its grant table, ports.
#[derive(Default)]
pub struct Xen {
    /// Frame number → address of the page.
    frames: Vec<*mut u8>,
    grants: BTreeMap<u32, Grant>,
    next_gref: u32,
    next_port: u32,
    /// Notifications sent, per port.
    pub notifies: BTreeMap<u32, u32>,
    /// Ports closed.
    pub closed_ports: Vec<u32>,
    /// Grant copies done (one per span).
    pub copies: u64,
}

/// A handle to the fake hypervisor.
pub type FakeXen = Rc<RefCell<Xen>>;

/// A fresh fake hypervisor.
pub fn xen() -> FakeXen {
    Rc::new(RefCell::new(Xen { next_gref: 8, next_port: 10, ..Xen::default() }))
}

/// `n` contiguous zeroed pages that live as long as the process.
fn leak_pages(n: usize) -> *mut u8 {
    let pages: Box<[RingPage]> = (0..n).map(|_| RingPage::new()).collect();
    Box::leak(pages).as_mut_ptr().cast()
}

fn copy(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: callers pass ranges inside leaked pages or live slices,
    // checked against the page size; the fake is single-threaded.
    unsafe { core::ptr::copy(src, dst, n) }
}

impl Xen {
    fn add_frames(&mut self, base: *mut u8, n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| {
                // SAFETY: `i < n` pages of the allocation at `base`.
                self.frames.push(unsafe { base.add(i * 4096) });
                (self.frames.len() - 1) as u64
            })
            .collect()
    }

    /// Grants currently mapped by the backend.
    pub fn mapped_grants(&self) -> u32 {
        self.grants.values().map(|g| g.maps).sum()
    }

    /// Writes a `u32` into frame `frame` at `offset` (a peer scribbling
    /// on shared memory).
    pub fn poke_u32(&self, frame: u64, offset: usize, value: u32) {
        let page = self.frames[frame as usize];
        assert!(offset + 4 <= 4096);
        // SAFETY: inside a leaked page (checked).
        copy(value.to_ne_bytes().as_ptr(), unsafe { page.add(offset) }, 4);
    }

    /// Grants in the table.
    pub fn live_grants(&self) -> usize {
        self.grants.len()
    }

    /// The page behind `granter`'s `gref` for the backend, if the grant
    /// allows `write`.
    fn page(&self, granter: u16, gref: u32, write: bool) -> Result<*mut u8, GrantError> {
        if granter != FRONTEND {
            return Err(GrantError(format!("GNTST_bad_domain {granter}")));
        }
        let g = self.grants.get(&gref).ok_or_else(|| GrantError(format!("GNTST_bad_gntref {gref}")))?;
        if g.domid != BACKEND {
            return Err(GrantError(format!("GNTST_permission_denied {gref}")));
        }
        if write && g.readonly {
            return Err(GrantError(format!("GNTST_permission_denied (read-only) {gref}")));
        }
        self.frames.get(g.frame as usize).copied().ok_or_else(|| GrantError(format!("GNTST_general_error {gref}")))
    }
}

/// The frontend domain's platform.
pub struct FakeFront {
    /// The hypervisor.
    pub xen: FakeXen,
}

/// A frontend page.
pub struct FakePage {
    frame: u64,
    ptr: *mut u8,
}

impl SharedPage for FakePage {
    fn frame(&self) -> u64 {
        self.frame
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= 4096);
        // SAFETY: inside the page (checked).
        copy(unsafe { self.ptr.add(offset) }, buf.as_mut_ptr(), buf.len());
    }
    fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= 4096);
        // SAFETY: inside the page (checked).
        copy(data.as_ptr(), unsafe { self.ptr.add(offset) }, data.len());
    }
}

impl FrontendPlatform for FakeFront {
    type Page = FakePage;

    fn alloc_page(&mut self) -> Result<FakePage, PlatformError> {
        let ptr = leak_pages(1);
        let frame = self.xen.borrow_mut().add_frames(ptr, 1)[0];
        Ok(FakePage { frame, ptr })
    }

    fn alloc_ring(&mut self, order: u32) -> Result<RingArea, PlatformError> {
        let n = 1usize << order;
        let base = leak_pages(n);
        let frames = self.xen.borrow_mut().add_frames(base, n);
        // SAFETY: `n` contiguous page-aligned pages, leaked (live forever);
        // the other view of them is the backend's, as in a real ring.
        let shared = unsafe { SharedRing::from_raw(base, n) };
        Ok(RingArea { shared, frames })
    }

    fn free_ring(&mut self, _frames: &[u64]) {}

    fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Result<u32, PlatformError> {
        let mut x = self.xen.borrow_mut();
        let gref = x.next_gref;
        x.next_gref += 1;
        x.grants.insert(gref, Grant { frame, domid, readonly, maps: 0 });
        Ok(gref)
    }

    fn end_grant(&mut self, gref: u32) -> Result<(), PlatformError> {
        let mut x = self.xen.borrow_mut();
        match x.grants.get(&gref) {
            Some(g) if g.maps > 0 => Err(PlatformError(format!("grant {gref} still mapped"))),
            Some(_) => {
                x.grants.remove(&gref);
                Ok(())
            }
            None => Err(PlatformError(format!("no grant {gref}"))),
        }
    }

    fn alloc_unbound(&mut self, _remote: u16) -> Result<u32, PlatformError> {
        let mut x = self.xen.borrow_mut();
        x.next_port += 1;
        Ok(x.next_port)
    }

    fn close_port(&mut self, port: u32) {
        self.xen.borrow_mut().closed_ports.push(port);
    }

    fn notify(&mut self, port: u32) {
        *self.xen.borrow_mut().notifies.entry(port).or_default() += 1;
    }
}

/// The backend domain's grant access.
pub struct FakeBack {
    /// The hypervisor.
    pub xen: FakeXen,
}

/// A mapped grant; unmapped on drop.
pub struct FakeMapped {
    xen: FakeXen,
    gref: u32,
    ptr: *mut u8,
    writable: bool,
}

impl MappedPage for FakeMapped {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= 4096);
        // SAFETY: inside the mapped page (checked).
        copy(unsafe { self.ptr.add(offset) }, buf.as_mut_ptr(), buf.len());
    }
    fn write(&self, offset: usize, data: &[u8]) {
        assert!(self.writable && offset + data.len() <= 4096);
        // SAFETY: inside the mapped page (checked).
        copy(data.as_ptr(), unsafe { self.ptr.add(offset) }, data.len());
    }
}

impl Drop for FakeMapped {
    fn drop(&mut self) {
        if let Some(g) = self.xen.borrow_mut().grants.get_mut(&self.gref) {
            g.maps -= 1;
        }
    }
}

impl FakeBack {
    /// Maps a ring of `refs` (contiguous pages) read-write, as gntdev
    /// would map `ring-ref`s.
    pub fn map_ring(&self, domid: u16, refs: &[u32]) -> Result<SharedRing<'static>, GrantError> {
        let x = self.xen.borrow();
        let mut base = None;
        for (i, &r) in refs.iter().enumerate() {
            let p = x.page(domid, r, true)?;
            match base {
                None => base = Some(p),
                // SAFETY: pointer arithmetic only, compared not dereferenced.
                Some(b) if unsafe { b.add(i * 4096) } == p => {}
                Some(_) => return Err(GrantError("ring pages not contiguous".into())),
            }
        }
        let base = base.ok_or_else(|| GrantError("no ring refs".into()))?;
        if !refs.len().is_power_of_two() {
            return Err(GrantError("ring pages not a power of two".into()));
        }
        // SAFETY: `refs.len()` contiguous leaked pages (checked above).
        Ok(unsafe { SharedRing::from_raw(base, refs.len()) })
    }
}

impl GrantAccess for FakeBack {
    type Page = FakeMapped;

    fn map(&mut self, domid: u16, gref: u32, writable: bool) -> Result<FakeMapped, GrantError> {
        let ptr = self.xen.borrow().page(domid, gref, writable)?;
        if let Some(g) = self.xen.borrow_mut().grants.get_mut(&gref) {
            g.maps += 1;
        }
        Ok(FakeMapped { xen: self.xen.clone(), gref, ptr, writable })
    }

    fn copy_from_guest(&mut self, domid: u16, spans: &[CopySpan], buf: &mut [u8]) -> Result<(), GrantError> {
        for s in spans {
            let src = self.xen.borrow().page(domid, s.gref, false)?;
            let (off, len) = (usize::from(s.offset), usize::from(s.len));
            assert!(off + len <= 4096, "span crosses its page");
            let dst = buf.get_mut(s.at..s.at + len).ok_or_else(|| GrantError("span outside buffer".into()))?;
            // SAFETY: inside the page (asserted).
            copy(unsafe { src.add(off) }, dst.as_mut_ptr(), len);
            self.xen.borrow_mut().copies += 1;
        }
        Ok(())
    }

    fn copy_to_guest(&mut self, domid: u16, spans: &[CopySpan], buf: &[u8]) -> Result<(), GrantError> {
        for s in spans {
            let dst = self.xen.borrow().page(domid, s.gref, true)?;
            let (off, len) = (usize::from(s.offset), usize::from(s.len));
            assert!(off + len <= 4096, "span crosses its page");
            let src = buf.get(s.at..s.at + len).ok_or_else(|| GrantError("span outside buffer".into()))?;
            // SAFETY: inside the page (asserted).
            copy(src.as_ptr(), unsafe { dst.add(off) }, len);
            self.xen.borrow_mut().copies += 1;
        }
        Ok(())
    }
}
