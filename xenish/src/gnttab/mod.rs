//! Grant tables: a domain's shared table of grant entries (it writes them,
//! the hypervisor reads them), in version 1 or 2; with version 2 the
//! status frames where the hypervisor keeps each entry's in-use flags; the
//! hypervisor's record of which grants are in use (the active entries,
//! [`active`]) and of the mappings a domain holds of others' grants (its
//! maptrack).
//!
//! Semantics: Xen 4.17 `xen/common/grant_table.c`. A v1 entry is
//! `{flags, domid, frame}` (8 bytes); a v2 entry (16 bytes) is a header
//! `{flags, domid}` and a full-page frame, a sub-page `{offset, length,
//! frame}` or a transitive `{domid, gref}` (another domain's grant passed
//! on), with its `GTF_reading`/`GTF_writing` in a separate 16-bit status
//! word ([`entry`]). While a grant is in use those flags stay set, so the
//! granter's revoke fails until the last use ends. Switching versions
//! ([`version`]) is allowed only while no entry past the 8 reserved ones
//! is in use. Failures are Xen's per-operation `GNTST_*` status codes.
//!
//! Limits are Xen's, per domain: at most `max_grant_frames` table frames
//! (default and ceiling 64) and `max_maptrack_frames` maptrack frames of
//! 256 handles (default and ceiling 1024), both set by `createdomain`;
//! at most 128 uses of each kind of an active entry ([`active`]). Every
//! hypervisor allocation made here is bounded by them and fallible: a
//! full maptrack, or a heap that cannot grow it, is `GNTST_no_space`.

pub mod active;
pub mod entry;
pub mod version;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use guest_abi::grant_table::{GNTST_GENERAL_ERROR, GNTST_NO_SPACE};

use crate::domain::DomId;
use crate::mm::frame_table::{FrameTable, Owner};
use crate::mm::{FramePool, MachineMemory, Mfn, PAGE_SIZE};
use guest_abi::errno::XenError;

pub use active::Active;

/// A `GNTST_*` status code.
pub type GntStatus = i16;

/// Most table frames a domain may have (Xen's default and ceiling
/// `max_grant_frames`, `gnttab_max_frames`).
pub const MAX_FRAMES: u32 = 64;
/// Most maptrack frames a domain may have (Xen's default and ceiling
/// `max_maptrack_frames`, `gnttab_max_maptrack_frames`).
pub const MAX_MAPTRACK_FRAMES: u32 = 1024;
/// Maptrack handles per maptrack frame (Xen's 16-byte `grant_mapping`).
pub const HANDLES_PER_MAPTRACK_FRAME: usize = PAGE_SIZE / 16;
/// Most mappings one domain may hold at once by default: 1024 maptrack
/// frames of 256 handles.
pub const MAX_MAPTRACK: usize = MAX_MAPTRACK_FRAMES as usize * HANDLES_PER_MAPTRACK_FRAME;
/// Entries 0..8 are the toolstack's (console, XenStore): they may stay in
/// use across a version switch (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const NR_RESERVED: u32 = guest_abi::grant_table::GNTTAB_NR_RESERVED_ENTRIES;
/// v1 entries per frame (8 bytes each).
pub const V1_PER_FRAME: u32 = (PAGE_SIZE / 8) as u32;
/// v2 entries per frame (16 bytes each).
pub const V2_PER_FRAME: u32 = (PAGE_SIZE / 16) as u32;
/// Status words per status frame (2 bytes each).
pub const STATUS_PER_FRAME: u32 = (PAGE_SIZE / 2) as u32;

/// Status frames a v2 table of `nr_frames` frames needs
/// (`grant_to_status_frames`).
pub const fn status_frames_for(nr_frames: u32) -> u32 {
    (nr_frames * V2_PER_FRAME).div_ceil(STATUS_PER_FRAME)
}

/// One mapping a domain holds of another domain's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: DomId,
    /// The grant reference.
    pub gref: u32,
    /// The mapped frame.
    pub mfn: Mfn,
    /// A host (page-table) mapping still to be undone.
    pub host: bool,
    /// A device (bus-address) mapping still to be undone.
    pub device: bool,
    /// Mapped read-only.
    pub readonly: bool,
    /// The host mapping was made by PTE machine address
    /// (`GNTMAP_contains_pte`), so its unmap names the PTE the same way.
    pub by_pte: bool,
}

/// A domain's grant table and the mappings it holds of others' grants.
#[derive(Clone, Debug)]
pub struct GrantTable {
    /// The table's version, 1 or 2 (`GNTTABOP_set_version`).
    pub version: u8,
    /// The highest version the domain may switch to (`createdomain`'s
    /// `grant_opts`; 2 for boot-time domains, as Xen gives dom0).
    pub max_version: u8,
    /// The table's frames (hypervisor-allocated, shared with the domain).
    pub frames: Vec<Mfn>,
    /// Version 2's status frames (hypervisor-allocated, shared with the
    /// domain); none on version 1.
    pub status: Vec<Mfn>,
    /// Mappings this domain holds, indexed by handle (`None` = free).
    pub maptrack: Vec<Option<Mapping>>,
    /// This domain's grants in use, by reference.
    pub active: BTreeMap<u32, Active>,
    /// Every maptrack slot below this is in use: where the search for a
    /// free handle starts.
    free_hint: usize,
    /// The most table frames the domain may have (`max_grant_frames`).
    max_frames: u32,
    /// The most mappings the domain may hold at once
    /// (`max_maptrack_frames` × 256).
    max_maptrack: usize,
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
}

impl GrantTable {
    /// An empty version-1 table (no frames until `setup_table`).
    pub const fn new() -> Self {
        GrantTable {
            version: 1,
            max_version: 2,
            frames: Vec::new(),
            status: Vec::new(),
            maptrack: Vec::new(),
            active: BTreeMap::new(),
            free_hint: 0,
            max_frames: MAX_FRAMES,
            max_maptrack: MAX_MAPTRACK,
        }
    }

    /// Sets the domain's limits from `createdomain`'s `max_grant_frames`
    /// and `max_maptrack_frames`, a negative one meaning Xen's default
    /// (`grant_table_init`); `-EINVAL` for a table size outside
    /// `1..=64` or more than 1024 maptrack frames.
    pub fn set_limits(&mut self, max_grant_frames: i32, max_maptrack_frames: i32) -> Result<(), XenError> {
        let frames = u32::try_from(max_grant_frames).unwrap_or(MAX_FRAMES);
        let maptrack = u32::try_from(max_maptrack_frames).unwrap_or(MAX_MAPTRACK_FRAMES);
        if !(1..=MAX_FRAMES).contains(&frames) || maptrack > MAX_MAPTRACK_FRAMES {
            return Err(XenError::Einval);
        }
        self.max_frames = frames;
        self.max_maptrack = maptrack as usize * HANDLES_PER_MAPTRACK_FRAME;
        Ok(())
    }

    /// The most table frames the domain may have (`max_grant_frames`).
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// Entries per table frame in the current version.
    pub fn per_frame(&self) -> u32 {
        if self.version == 2 {
            V2_PER_FRAME
        } else {
            V1_PER_FRAME
        }
    }

    /// Grant entries the table holds (`nr_grant_entries`).
    pub fn nr_entries(&self) -> u32 {
        self.frames.len() as u32 * self.per_frame()
    }

    /// Every hypervisor frame of the table the domain may map: its table
    /// frames, then its status frames.
    pub fn shared_frames(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.frames.iter().chain(self.status.iter()).copied()
    }

    /// Grows the table to `nr_frames` frames (and, on version 2, its status
    /// frames to match), taken zeroed from `pool` and recorded in `ft` as
    /// the hypervisor's, shared with the domain (`gnttab_grow_table`);
    /// `GNTST_general_error` beyond the domain's `max_grant_frames` or
    /// when memory runs out,
    /// the table then left as it was.
    pub fn grow(
        &mut self,
        nr_frames: u32,
        mem: &mut dyn MachineMemory,
        pool: &mut dyn FramePool,
        ft: &mut FrameTable,
    ) -> Result<(), GntStatus> {
        if nr_frames > self.max_frames {
            return Err(GNTST_GENERAL_ERROR);
        }
        let (old_frames, old_status) = (self.frames.len(), self.status.len());
        let want_status = if self.version == 2 { status_frames_for(nr_frames) as usize } else { 0 };
        let grown = alloc_frames(&mut self.frames, nr_frames as usize, mem, pool, ft)
            && alloc_frames(&mut self.status, want_status, mem, pool, ft);
        if !grown {
            for mfn in self.frames.drain(old_frames..).chain(self.status.drain(old_status..)) {
                free_frame(mfn, pool, ft);
            }
            return Err(GNTST_GENERAL_ERROR);
        }
        Ok(())
    }

    /// Records a mapping in the lowest free slot; returns its handle, or
    /// `GNTST_no_space` when the maptrack is full or cannot grow (Xen
    /// 4.17's `map_grant_ref`: "Failed to obtain maptrack handle").
    pub fn track(&mut self, m: Mapping) -> Result<u32, GntStatus> {
        let start = self.free_hint.min(self.maptrack.len());
        let free = self.maptrack.iter().skip(start).position(Option::is_none).map(|i| i + start);
        let handle = match free {
            Some(i) => i,
            None if self.maptrack.len() < self.max_maptrack && self.reserve_handle() => {
                self.maptrack.push(None);
                self.maptrack.len() - 1
            }
            None => return Err(GNTST_NO_SPACE),
        };
        let slot = self.maptrack.get_mut(handle).ok_or(GNTST_NO_SPACE)?;
        *slot = Some(m);
        self.free_hint = handle + 1;
        Ok(handle as u32)
    }

    /// Room for one more handle, never past the domain's limit; false if
    /// the heap cannot give it. The maptrack is one vector, so it grows
    /// geometrically (by what it holds, at least a maptrack frame's worth
    /// of handles): growing it by a fixed step would copy it on every step,
    /// a cost per mapping that rises with the mappings held (Xen adds
    /// maptrack frames one by one, but never moves them).
    fn reserve_handle(&mut self) -> bool {
        let len = self.maptrack.len();
        if len < self.maptrack.capacity() {
            return true;
        }
        let want = len.max(HANDLES_PER_MAPTRACK_FRAME).min(self.max_maptrack.saturating_sub(len)).max(1);
        self.maptrack.try_reserve_exact(want).is_ok()
    }

    /// Whether another mapping can be recorded (Xen takes the handle before
    /// looking at the grant).
    pub fn can_track(&self) -> bool {
        self.maptrack.len() < self.max_maptrack || self.maptrack.iter().skip(self.free_hint).any(Option::is_none)
    }

    /// The mapping with `handle`, if there is one.
    pub fn mapping(&self, handle: u32) -> Option<&Mapping> {
        self.maptrack.get(handle as usize)?.as_ref()
    }

    /// The mapping with `handle`, for changing it.
    pub fn mapping_mut(&mut self, handle: u32) -> Option<&mut Mapping> {
        self.maptrack.get_mut(handle as usize)?.as_mut()
    }

    /// Frees a handle.
    pub fn untrack(&mut self, handle: u32) {
        if let Some(slot) = self.maptrack.get_mut(handle as usize) {
            *slot = None;
            self.free_hint = self.free_hint.min(handle as usize);
        }
    }
}

/// Appends zeroed frames from `pool` to `list` until it holds `len`, each
/// recorded as the hypervisor's; false (with what was added still on the
/// list, for the caller to give back) if memory ran out.
fn alloc_frames(
    list: &mut Vec<Mfn>,
    len: usize,
    mem: &mut dyn MachineMemory,
    pool: &mut dyn FramePool,
    ft: &mut FrameTable,
) -> bool {
    while list.len() < len {
        if list.try_reserve(1).is_err() {
            return false;
        }
        let Some(mfn) = pool.alloc() else { return false };
        match mem.frame_mut(mfn) {
            Some(bytes) if ft.set_owner(mfn, Owner::Xen).is_ok() => {
                bytes.fill(0);
                list.push(mfn);
            }
            _ => {
                pool.free(mfn);
                return false;
            }
        }
    }
    true
}

/// Returns a table frame nobody refers to to the pool.
fn free_frame(mfn: Mfn, pool: &mut dyn FramePool, ft: &mut FrameTable) {
    if ft.set_owner(mfn, Owner::Free).is_ok() {
        pool.free(mfn);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::Domain;
    use crate::hypercall::tests::{FakePool, World};

    /// Writes v1 entry `gref` of `d`'s table.
    pub(crate) fn grant(d: &Domain, mem: &mut dyn MachineMemory, gref: u32, flags: u16, domid: DomId, frame: u32) {
        let (f, off) = d.gnttab.header_at(gref).unwrap();
        let b = &mut mem.frame_mut(f).unwrap()[off..off + 8];
        b[0..2].copy_from_slice(&flags.to_le_bytes());
        b[2..4].copy_from_slice(&domid.to_le_bytes());
        b[4..8].copy_from_slice(&frame.to_le_bytes());
    }

    /// Writes v2 entry `gref` of `d`'s table: the header and the 12 bytes
    /// after it (full page: `[0; 4]` then the frame; sub-page: offset,
    /// length, frame; transitive: domid, 0, gref).
    pub(crate) fn grant_v2(
        d: &Domain,
        mem: &mut dyn MachineMemory,
        gref: u32,
        flags: u16,
        domid: DomId,
        body: [u8; 12],
    ) {
        let (f, off) = d.gnttab.header_at(gref).unwrap();
        let b = &mut mem.frame_mut(f).unwrap()[off..off + 16];
        b[0..2].copy_from_slice(&flags.to_le_bytes());
        b[2..4].copy_from_slice(&domid.to_le_bytes());
        b[4..16].copy_from_slice(&body);
    }

    /// The body of a v2 full-page grant of `frame`.
    pub(crate) fn full_page(frame: u64) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[4..12].copy_from_slice(&frame.to_le_bytes());
        b
    }

    /// The body of a v2 sub-page grant.
    pub(crate) fn sub_page(offset: u16, length: u16, frame: u64) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..2].copy_from_slice(&offset.to_le_bytes());
        b[2..4].copy_from_slice(&length.to_le_bytes());
        b[4..12].copy_from_slice(&frame.to_le_bytes());
        b
    }

    /// The body of a v2 transitive grant of `domid`'s `gref`.
    pub(crate) fn transitive(domid: DomId, gref: u32) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..2].copy_from_slice(&domid.to_le_bytes());
        b[4..8].copy_from_slice(&gref.to_le_bytes());
        b
    }

    #[test]
    fn grow_takes_zeroed_frames_up_to_the_limit() {
        let mut w = World::new(false);
        w.mem.0[16][0] = 0xff;
        assert_eq!(w.dom.gnttab.grow(2, &mut w.mem, &mut w.pool, &mut w.ft), Ok(()));
        assert_eq!(w.dom.gnttab.frames, [Mfn(16), Mfn(17)]);
        assert_eq!(w.mem.0[16][0], 0, "zeroed");
        assert_eq!(w.dom.gnttab.nr_entries(), 1024);
        assert_eq!(w.dom.gnttab.grow(MAX_FRAMES + 1, &mut w.mem, &mut w.pool, &mut w.ft), Err(GNTST_GENERAL_ERROR));
        let mut empty = FakePool(alloc::vec![]);
        assert_eq!(w.dom.gnttab.grow(3, &mut w.mem, &mut empty, &mut w.ft), Err(GNTST_GENERAL_ERROR));
        assert_eq!(w.dom.gnttab.frames.len(), 2, "a failed grow changes nothing");
        let mut one = FakePool(alloc::vec![Mfn(23)]);
        assert_eq!(w.dom.gnttab.grow(4, &mut w.mem, &mut one, &mut w.ft), Err(GNTST_GENERAL_ERROR));
        assert_eq!(one.0, [Mfn(23)], "frames of a failed grow go back");
        w.audit_ownership();
    }

    #[test]
    fn a_version_2_table_grows_its_status_frames_with_it() {
        let mut w = World::new(false);
        w.dom.gnttab.version = 2;
        assert_eq!(w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft), Ok(()));
        assert_eq!((w.dom.gnttab.frames.len(), w.dom.gnttab.status.len(), w.dom.gnttab.nr_entries()), (1, 1, 256));
        assert_eq!(w.dom.gnttab.grow(8, &mut w.mem, &mut w.pool, &mut w.ft), Err(GNTST_GENERAL_ERROR), "out of frames");
        assert_eq!((w.dom.gnttab.frames.len(), w.dom.gnttab.status.len()), (1, 1), "rolled back");
        assert_eq!(w.dom.gnttab.grow(7, &mut w.mem, &mut w.pool, &mut w.ft), Ok(()));
        assert_eq!(w.dom.gnttab.status.len(), 1, "8 table frames per status frame");
        assert_eq!((status_frames_for(8), status_frames_for(9), status_frames_for(MAX_FRAMES)), (1, 2, 8));
        w.audit_ownership();
    }

    #[test]
    fn handles_are_reused_and_bounded() {
        let mut t = GrantTable::new();
        let m = Mapping { granter: 0, gref: 1, mfn: Mfn(1), host: true, device: false, readonly: true, by_pte: false };
        assert_eq!(t.track(m), Ok(0));
        assert_eq!(t.track(m), Ok(1));
        t.untrack(0);
        assert_eq!(t.mapping(0), None);
        assert_eq!(t.track(m), Ok(0));
        assert_eq!(t.track(m), Ok(2));
        t.untrack(1);
        t.untrack(0);
        assert_eq!((t.track(m), t.track(m), t.track(m)), (Ok(0), Ok(1), Ok(3)), "the lowest free first");
        t.untrack(99);
        assert_eq!(t.mapping(99), None);
        assert!(t.can_track());
        t.maptrack.clear(); // as a dying domain's mappings end
        assert_eq!(t.track(m), Ok(0));
    }

    /// A guest that maps one grant again and again up to its maptrack
    /// limit (the hostile system test's flood) must not make each mapping
    /// cost more the more it holds: the maptrack is moved (copied whole)
    /// only a logarithmic number of times, never grows past the limit, and
    /// the mapping past it is `GNTST_no_space`. Growing by one maptrack
    /// frame at a time moved it 1024 times (about 3 GB copied with
    /// interrupts off); under QEMU a flood then managed 114,000 maps in 8 s
    /// instead of 524,000.
    #[test]
    fn filling_the_maptrack_moves_it_a_logarithmic_number_of_times() {
        let mut t = GrantTable::new();
        let m = Mapping { granter: 0, gref: 8, mfn: Mfn(1), host: false, device: true, readonly: false, by_pte: false };
        let (mut moves, mut capacity) = (0, t.maptrack.capacity());
        for handle in 0..MAX_MAPTRACK {
            assert_eq!(t.track(m), Ok(handle as u32));
            if t.maptrack.capacity() != capacity {
                (moves, capacity) = (moves + 1, t.maptrack.capacity());
            }
        }
        assert!(moves <= 12, "the maptrack was reallocated {moves} times on the way to {MAX_MAPTRACK} handles");
        assert_eq!(t.maptrack.capacity(), MAX_MAPTRACK, "no room beyond the limit");
        assert_eq!(t.track(m), Err(GNTST_NO_SPACE));
        assert!(!t.can_track());
        t.untrack(7);
        assert_eq!(t.track(m), Ok(7), "a freed handle is found again");
    }
}
