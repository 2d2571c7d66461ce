//! [`GrantAccess`]: how a backend reaches a frontend's pages, and the
//! persistent-grant cache.
//!
//! Two ways, as Linux's backends and QEMU use them: a grant copy
//! (`GNTTABOP_copy`: the hypervisor copies between a granted page and
//! local memory, and the grant is released before the copy returns) and
//! a grant map (the page stays mapped until the [`MappedPage`] drops).
//! Without persistent grants every access is a copy, so nothing is left
//! mapped when the response goes out (blkfront checks). With them
//! (`feature-persistent` on both ends), pages are mapped on first use
//! and kept, up to [`MAX_PERSISTENT_GRANTS`] per ring (Linux blkback's
//! `max_persistent_grants`); beyond the cap, or when a grant cannot be
//! mapped writable, the copy path serves the segment.

use alloc::collections::BTreeMap;
use alloc::string::String;

/// Persistent grants kept per ring (Linux blkback's default).
pub const MAX_PERSISTENT_GRANTS: usize = 1056;

/// A grant operation the hypervisor refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantError(pub String);

/// A frontend page mapped into the backend; unmapped on drop.
pub trait MappedPage {
    /// Copies `buf.len()` bytes at `offset` out of the page.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` into the page at `offset`.
    fn write(&self, offset: usize, data: &[u8]);
}

/// One piece of a grant copy: `len` bytes at `offset` in grant `gref`,
/// and at `at` in the local buffer. `offset + len` stays within the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopySpan {
    /// The frontend's grant reference.
    pub gref: u32,
    /// Offset in the granted page.
    pub offset: u16,
    /// Bytes.
    pub len: u16,
    /// Offset in the local buffer.
    pub at: usize,
}

/// Access to another domain's granted pages.
pub trait GrantAccess {
    /// A mapped page.
    type Page: MappedPage;
    /// Maps `domid`'s grant `gref` (one page), writable or not.
    fn map(&mut self, domid: u16, gref: u32, writable: bool) -> Result<Self::Page, GrantError>;
    /// Copies each span from `domid`'s grants into `buf`; fails if any
    /// span fails (some may have been copied).
    fn copy_from_guest(&mut self, domid: u16, spans: &[CopySpan], buf: &mut [u8]) -> Result<(), GrantError>;
    /// Copies each span from `buf` into `domid`'s grants.
    fn copy_to_guest(&mut self, domid: u16, spans: &[CopySpan], buf: &[u8]) -> Result<(), GrantError>;
}

/// The persistent grants of one ring: mapped writable on first use,
/// kept until the ring disconnects (drop).
pub struct PersistentGrants<P> {
    pages: BTreeMap<u32, P>,
    limit: usize,
    /// Maps made so far (reuses are the other lookups).
    pub maps: u64,
    /// Lookups served by a page already mapped.
    pub reuses: u64,
}

impl<P: MappedPage> PersistentGrants<P> {
    /// An empty cache of at most `limit` pages.
    pub fn new(limit: usize) -> Self {
        PersistentGrants { pages: BTreeMap::new(), limit, maps: 0, reuses: 0 }
    }

    /// Pages currently mapped.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether none is mapped.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The page of `gref`, mapping it if there is room; `None` if it is
    /// not mapped and cannot be (full, or the grant refuses a writable
    /// map): the caller copies instead.
    pub fn get<G: GrantAccess<Page = P>>(&mut self, grants: &mut G, domid: u16, gref: u32) -> Option<&P> {
        if self.pages.contains_key(&gref) {
            self.reuses += 1;
        } else {
            if self.pages.len() >= self.limit {
                return None;
            }
            let page = grants.map(domid, gref, true).ok()?;
            self.maps += 1;
            self.pages.insert(gref, page);
        }
        self.pages.get(&gref)
    }
}
