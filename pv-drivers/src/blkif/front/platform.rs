//! [`FrontendPlatform`]: what a frontend needs from the kernel it runs in.
//!
//! In a guest-rt kernel: pages from a static pool, grants written into
//! the domain's grant table, `EVTCHNOP_alloc_unbound`/`send`/`close`. In
//! host tests: the fake platform, whose grants the fake backend maps.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::io::ring::SharedRing;

/// A failed platform operation, with what the platform said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformError(pub String);

/// A page of the frontend's memory that can be granted; returned to the
/// platform on drop.
pub trait SharedPage {
    /// Its frame (what a grant names: an MFN for a PV guest).
    fn frame(&self) -> u64;
    /// Copies `buf.len()` bytes at `offset` out of the page.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` into the page at `offset`.
    fn write(&self, offset: usize, data: &[u8]);
}

/// Contiguous zeroed pages for a ring: the view to use and each page's
/// frame, in order.
pub struct RingArea {
    /// The ring's memory.
    pub shared: SharedRing<'static>,
    /// The frames, in order (one grant each).
    pub frames: Vec<u64>,
}

/// Memory, grants and event channels for a frontend.
pub trait FrontendPlatform {
    /// A data page.
    type Page: SharedPage;
    /// A zeroed page for data.
    fn alloc_page(&mut self) -> Result<Self::Page, PlatformError>;
    /// `2^order` contiguous zeroed pages for a ring.
    fn alloc_ring(&mut self, order: u32) -> Result<RingArea, PlatformError>;
    /// Gives the ring area back (its grants already ended).
    fn free_ring(&mut self, frames: &[u64]);
    /// Grants `domid` access to `frame`; the grant reference.
    fn grant(&mut self, domid: u16, frame: u64, readonly: bool) -> Result<u32, PlatformError>;
    /// Ends a grant; fails while the grantee still maps it (the entry
    /// is then left as it is, and leaked).
    fn end_grant(&mut self, gref: u32) -> Result<(), PlatformError>;
    /// A new unbound port that `remote` may bind.
    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, PlatformError>;
    /// Closes a port.
    fn close_port(&mut self, port: u32);
    /// Sends an event on `port`.
    fn notify(&mut self, port: u32);
}
