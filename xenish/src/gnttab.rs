//! Grant tables, version 1: a domain's shared table of grant entries (it
//! writes them, the hypervisor reads them), the hypervisor's record of
//! which of a domain's grants are in use (the active entries) and of the
//! mappings a domain holds of others' grants (its maptrack), and the entry
//! protocol that keeps a granting domain from pulling a page out from under
//! a mapper.
//!
//! Semantics: Xen 4.17 `xen/common/grant_table.c`. An entry
//! `{flags, domid, frame}` grants `frame` to `domid` when its type is
//! `GTF_permit_access`. While a grant is in use the hypervisor keeps
//! `GTF_reading` set (and `GTF_writing` while a writable use exists), so the
//! granter's revoke (a compare-and-exchange of the flags to 0) fails until
//! the last use ends. The frame of an active grant is fixed at its first
//! use. Failures are Xen's per-operation `GNTST_*` status codes.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use guest_abi::grant_table::{
    GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR, GTF_PERMIT_ACCESS, GTF_READING,
    GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING,
};

use crate::domain::{DomId, Domain};
use crate::mm::frame_table::{FrameTable, Owner};
use crate::mm::{FramePool, MachineMemory, Mfn, PAGE_SIZE};

/// A `GNTST_*` status code.
pub type GntStatus = i16;

/// Entries of a v1 table per frame (8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = (PAGE_SIZE / 8) as u32;
/// Most table frames a domain may have (Xen's default `max_grant_frames`).
pub const MAX_FRAMES: u32 = 64;
/// Most mappings one domain may hold at once (its maptrack's size).
pub const MAX_MAPTRACK: usize = 1 << 16;

/// A grant entry as read from the granter's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `GTF_*` flags.
    pub flags: u16,
    /// The domain the frame is granted to.
    pub domid: DomId,
    /// The granted frame (a machine frame for a PV granter).
    pub frame: u32,
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

/// A grant of this domain's in use by its grantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// The domain using it.
    pub user: DomId,
    /// The frame, fixed at the first use.
    pub mfn: Mfn,
    /// Read-only uses (mappings of either kind, copies in progress).
    pub readers: u32,
    /// Writable uses.
    pub writers: u32,
}

/// A domain's grant table and the mappings it holds of others' grants.
#[derive(Clone, Debug, Default)]
pub struct GrantTable {
    /// The table's frames (hypervisor-allocated, shared with the domain).
    pub frames: Vec<Mfn>,
    /// Mappings this domain holds, indexed by handle (`None` = free).
    pub maptrack: Vec<Option<Mapping>>,
    /// This domain's grants in use, by reference.
    pub active: BTreeMap<u32, Active>,
}

impl GrantTable {
    /// An empty table (no frames until `setup_table`).
    pub const fn new() -> Self {
        GrantTable { frames: Vec::new(), maptrack: Vec::new(), active: BTreeMap::new() }
    }

    /// Grant entries the table holds.
    pub fn nr_entries(&self) -> u32 {
        self.frames.len() as u32 * ENTRIES_PER_FRAME
    }

    /// Grows the table to `nr_frames` frames taken (zeroed) from `pool`
    /// and recorded in `ft` as the hypervisor's (shared with the domain);
    /// `GNTST_general_error` beyond [`MAX_FRAMES`] or when memory runs out
    /// (the table is then left as it was).
    pub fn grow(
        &mut self,
        nr_frames: u32,
        mem: &mut dyn MachineMemory,
        pool: &mut dyn FramePool,
        ft: &mut FrameTable,
    ) -> Result<(), GntStatus> {
        if nr_frames > MAX_FRAMES {
            return Err(GNTST_GENERAL_ERROR);
        }
        let old = self.frames.len();
        while self.frames.len() < nr_frames as usize {
            let frame = pool.alloc().filter(|&m| mem.frame(m).is_some() && ft.set_owner(m, Owner::Xen).is_ok());
            match frame.and_then(|m| Some((m, mem.frame_mut(m)?))) {
                Some((mfn, bytes)) => {
                    bytes.fill(0);
                    self.frames.push(mfn);
                }
                None => {
                    for mfn in self.frames.drain(old..).chain(frame) {
                        let _ = ft.set_owner(mfn, Owner::Free);
                        pool.free(mfn);
                    }
                    return Err(GNTST_GENERAL_ERROR);
                }
            }
        }
        Ok(())
    }

    /// Where entry `gref` lives: its frame and byte offset.
    fn locate(&self, gref: u32) -> Result<(Mfn, usize), GntStatus> {
        let frame = self.frames.get((gref / ENTRIES_PER_FRAME) as usize).ok_or(GNTST_BAD_GNTREF)?;
        Ok((*frame, (gref % ENTRIES_PER_FRAME) as usize * 8))
    }

    /// Reads entry `gref`; `GNTST_bad_gntref` beyond the table.
    pub fn entry(&self, mem: &dyn MachineMemory, gref: u32) -> Result<Entry, GntStatus> {
        let (frame, off) = self.locate(gref)?;
        let b = mem.frame(frame).and_then(|f| f.get(off..off + 8)).ok_or(GNTST_GENERAL_ERROR)?;
        Ok(Entry {
            flags: u16::from_le_bytes([b[0], b[1]]),
            domid: u16::from_le_bytes([b[2], b[3]]),
            frame: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    /// Sets, then clears, flag bits of entry `gref` (the in-use flags).
    fn update_flags(&self, mem: &mut dyn MachineMemory, gref: u32, set: u16, clear: u16) {
        let Ok((frame, off)) = self.locate(gref) else { return };
        if let Some(b) = mem.frame_mut(frame).and_then(|f| f.get_mut(off..off + 2)) {
            let flags = (u16::from_le_bytes([b[0], b[1]]) | set) & !clear;
            b.copy_from_slice(&flags.to_le_bytes());
        }
    }

    /// Xen's `_set_status_v1`: checks that entry `gref` grants access to
    /// `user` (writable access unless `readonly`) and marks it in use.
    fn set_status(
        &self,
        mem: &mut dyn MachineMemory,
        gref: u32,
        user: DomId,
        readonly: bool,
    ) -> Result<Entry, GntStatus> {
        let e = self.entry(mem, gref)?;
        let mut mask = GTF_TYPE_MASK as u16;
        if !readonly {
            mask |= GTF_READONLY as u16;
        }
        if e.flags & mask != GTF_PERMIT_ACCESS as u16 || e.domid != user {
            return Err(GNTST_GENERAL_ERROR);
        }
        let set = GTF_READING as u16 | if readonly { 0 } else { GTF_WRITING as u16 };
        self.update_flags(mem, gref, set, 0);
        Ok(e)
    }

    /// Records a mapping; returns its handle, or `GNTST_no_device_space`
    /// when the maptrack is full.
    pub fn track(&mut self, m: Mapping) -> Result<u32, GntStatus> {
        if let Some(i) = self.maptrack.iter().position(Option::is_none) {
            self.maptrack[i] = Some(m);
            return Ok(i as u32);
        }
        if self.maptrack.len() >= MAX_MAPTRACK {
            return Err(guest_abi::grant_table::GNTST_NO_DEVICE_SPACE);
        }
        self.maptrack.push(Some(m));
        Ok(self.maptrack.len() as u32 - 1)
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
        }
    }
}

/// Starts a use by `user` of `granter`'s grant `gref` (a mapping or a copy):
/// checks the entry, pins it, and returns the granted frame. Xen's rules: a
/// grant in use serves only the domain using it; a writable use re-checks
/// the entry for `GTF_readonly`; the frame must be the granter's and, for
/// writing, not one of its page tables.
pub fn acquire(
    granter: &mut Domain,
    mem: &mut dyn MachineMemory,
    ft: &FrameTable,
    gref: u32,
    user: DomId,
    readonly: bool,
) -> Result<Mfn, GntStatus> {
    if granter.is_destroyed() {
        // Xen: a dying domain's grants can no longer be used.
        return Err(GNTST_BAD_DOMAIN);
    }
    let gt = &granter.gnttab;
    let active = gt.active.get(&gref).copied();
    if let Some(a) = active {
        if a.user != user {
            return Err(GNTST_GENERAL_ERROR);
        }
    }
    let need_check = active.is_none_or(|a| !readonly && a.writers == 0);
    let mfn = match active {
        Some(a) => {
            if need_check {
                gt.set_status(mem, gref, user, readonly)?;
            }
            a.mfn
        }
        None => {
            let e = gt.set_status(mem, gref, user, readonly)?;
            let mfn = Mfn(u64::from(e.frame));
            let owned = ft.is_owned_by(mfn, granter.id);
            let usable = owned && (readonly || !ft.is_page_table(mfn));
            if !usable {
                let clear = GTF_READING as u16 | GTF_WRITING as u16;
                granter.gnttab.update_flags(mem, gref, 0, clear);
                return Err(if owned { GNTST_GENERAL_ERROR } else { GNTST_BAD_PAGE });
            }
            mfn
        }
    };
    let a = granter.gnttab.active.entry(gref).or_insert(Active { user, mfn, readers: 0, writers: 0 });
    if readonly {
        a.readers = a.readers.saturating_add(1);
    } else {
        a.writers = a.writers.saturating_add(1);
    }
    Ok(mfn)
}

/// Ends a use of `granter`'s grant `gref` started by [`acquire`], clearing
/// `GTF_writing` when the last writable use ends and `GTF_reading` when
/// the last use does.
pub fn release(granter: &mut Domain, mem: &mut dyn MachineMemory, gref: u32, readonly: bool) {
    let gt = &mut granter.gnttab;
    let Some(a) = gt.active.get_mut(&gref) else { return };
    if readonly {
        a.readers = a.readers.saturating_sub(1);
    } else {
        a.writers = a.writers.saturating_sub(1);
    }
    let (readers, writers) = (a.readers, a.writers);
    let mut clear = 0;
    if writers == 0 && !readonly {
        clear |= GTF_WRITING as u16;
    }
    if readers + writers == 0 {
        clear |= GTF_READING as u16;
        gt.active.remove(&gref);
    }
    // A destroyed granter's table frames are gone: only the count matters.
    if clear != 0 && !granter.is_destroyed() {
        granter.gnttab.update_flags(mem, gref, 0, clear);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hypercall::tests::{FakePool, World};

    /// Writes entry `gref` of `d`'s table.
    pub(crate) fn grant(d: &Domain, mem: &mut dyn MachineMemory, gref: u32, flags: u16, domid: DomId, frame: u32) {
        let (f, off) = d.gnttab.locate(gref).unwrap();
        let b = &mut mem.frame_mut(f).unwrap()[off..off + 8];
        b[0..2].copy_from_slice(&flags.to_le_bytes());
        b[2..4].copy_from_slice(&domid.to_le_bytes());
        b[4..8].copy_from_slice(&frame.to_le_bytes());
    }

    fn world_with_table() -> World {
        let mut w = World::new(false);
        w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        w
    }

    const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;
    const RO: u16 = GTF_READONLY as u16;
    const READING: u16 = GTF_READING as u16;
    const WRITING: u16 = GTF_WRITING as u16;

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
    }

    #[test]
    fn in_use_flags_follow_the_uses() {
        let mut w = world_with_table();
        grant(&w.dom, &mut w.mem, 5, PERMIT, 7, 6);
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 5, 7, true), Ok(Mfn(6)));
        assert_eq!(w.dom.gnttab.entry(&w.mem, 5).unwrap().flags, PERMIT | READING);
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 5, 7, false), Ok(Mfn(6)));
        assert_eq!(w.dom.gnttab.entry(&w.mem, 5).unwrap().flags, PERMIT | READING | WRITING);
        release(&mut w.dom, &mut w.mem, 5, false);
        assert_eq!(w.dom.gnttab.entry(&w.mem, 5).unwrap().flags, PERMIT | READING, "a reader remains");
        release(&mut w.dom, &mut w.mem, 5, true);
        assert_eq!(w.dom.gnttab.entry(&w.mem, 5).unwrap().flags, PERMIT);
        assert!(w.dom.gnttab.active.is_empty());
        release(&mut w.dom, &mut w.mem, 5, true);
        assert_eq!(w.dom.gnttab.entry(&w.mem, 5).unwrap().flags, PERMIT, "releasing what is not in use is nothing");
    }

    #[test]
    fn refuses_what_xen_refuses_and_leaves_the_entry_alone() {
        let mut w = world_with_table();
        grant(&w.dom, &mut w.mem, 1, PERMIT, 7, 6);
        grant(&w.dom, &mut w.mem, 2, PERMIT | RO, 7, 6);
        grant(&w.dom, &mut w.mem, 3, PERMIT, 7, 99);
        grant(&w.dom, &mut w.mem, 4, PERMIT, 7, 2);
        grant(&w.dom, &mut w.mem, 5, 0, 7, 6);
        let cases: [(u32, DomId, bool, GntStatus, &str); 7] = [
            (1, 8, true, GNTST_GENERAL_ERROR, "granted to another domain"),
            (2, 7, false, GNTST_GENERAL_ERROR, "writable use of a read-only grant"),
            (3, 7, true, GNTST_BAD_PAGE, "frame not the granter's"),
            (4, 7, false, GNTST_GENERAL_ERROR, "writable use of the granter's page table"),
            (5, 7, true, GNTST_GENERAL_ERROR, "revoked entry"),
            (512, 7, true, GNTST_BAD_GNTREF, "beyond the table"),
            (u32::MAX, 7, true, GNTST_BAD_GNTREF, "far beyond the table"),
        ];
        for (gref, user, ro, want, what) in cases {
            let before = w.dom.gnttab.entry(&w.mem, gref).ok();
            assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, gref, user, ro), Err(want), "{what}");
            assert_eq!(w.dom.gnttab.entry(&w.mem, gref).ok(), before, "{what}: entry untouched");
        }
        assert!(w.dom.gnttab.active.is_empty());
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 2, 7, true), Ok(Mfn(6)), "a read-only grant read");
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 4, 7, true), Ok(Mfn(2)), "a page table may be read");
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 2, 8, true), Err(GNTST_GENERAL_ERROR), "in use by another");
    }

    #[test]
    fn an_active_grant_keeps_its_frame() {
        let mut w = world_with_table();
        grant(&w.dom, &mut w.mem, 1, PERMIT, 7, 6);
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 1, 7, true), Ok(Mfn(6)));
        grant(&w.dom, &mut w.mem, 1, PERMIT | READING, 7, 5);
        assert_eq!(acquire(&mut w.dom, &mut w.mem, &w.ft, 1, 7, true), Ok(Mfn(6)));
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
        t.untrack(99);
        assert_eq!(t.mapping(99), None);
    }
}
