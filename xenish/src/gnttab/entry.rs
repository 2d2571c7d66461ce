//! Grant entries as the granter wrote them, in either version, and the
//! in-use flags the hypervisor keeps in them (version 1: the entry's own
//! flags; version 2: the entry's status word in a status frame).
//!
//! Semantics: Xen 4.17 `shared_entry_header`, `_set_status_v1`,
//! `_set_status_v2` and `gnttab_clear_flags` (xen/common/grant_table.c).
//! The guest may rewrite an entry at any moment: the header
//! `{flags, domid}` is read and updated as one 32-bit word with
//! compare-and-exchange (version 1) or re-read after the status is set
//! (version 2), and the status flags change with atomic operations only.

use core::sync::atomic::Ordering::SeqCst;

use guest_abi::grant_table::{
    GNTST_BAD_GNTREF, GNTST_GENERAL_ERROR, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_SUB_PAGE, GTF_TRANSITIVE,
    GTF_TYPE_MASK, GTF_WRITING,
};

use super::{GntStatus, GrantTable, STATUS_PER_FRAME};
use crate::domain::DomId;
use crate::mm::shared_word::{u16_at, u32_at};
use crate::mm::{MachineMemory, Mfn};

const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;
const TRANSITIVE: u16 = GTF_TRANSITIVE as u16;
const TYPE_MASK: u16 = GTF_TYPE_MASK as u16;
const READONLY: u16 = GTF_READONLY as u16;
const SUB_PAGE: u16 = GTF_SUB_PAGE as u16;
/// `GTF_reading`
pub const READING: u16 = GTF_READING as u16;
/// `GTF_writing`
pub const WRITING: u16 = GTF_WRITING as u16;

/// What an entry grants, after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A whole frame (a v1 entry's `frame`, a v2 entry's `full_page`).
    Frame(u64),
    /// Part of a frame (v2 with `GTF_sub_page`).
    SubPage {
        /// First byte.
        offset: u16,
        /// Bytes.
        length: u16,
        /// The frame.
        frame: u64,
    },
    /// Another domain's grant, passed on (v2 `GTF_transitive`).
    Transitive {
        /// The domain whose grant it is.
        domid: DomId,
        /// Its reference there.
        gref: u32,
    },
}

/// An entry as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `GTF_*` flags (on version 2 without the status flags).
    pub flags: u16,
    /// The domain granted access.
    pub domid: DomId,
    /// What is granted.
    pub body: Body,
}

impl Entry {
    /// The frame a mapping of the entry maps: a v1 `frame`, a v2
    /// `full_page.frame` (Xen reads it whatever the entry's type).
    pub fn map_frame(&self) -> u64 {
        match self.body {
            Body::Frame(f) | Body::SubPage { frame: f, .. } => f,
            Body::Transitive { gref, .. } => u64::from(gref),
        }
    }
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl GrantTable {
    /// Where entry `gref`'s header is: its frame and byte offset;
    /// `GNTST_bad_gntref` beyond the table.
    pub fn header_at(&self, gref: u32) -> Result<(Mfn, usize), GntStatus> {
        let per = self.per_frame();
        let frame = self.frames.get((gref / per) as usize).ok_or(GNTST_BAD_GNTREF)?;
        Ok((*frame, (gref % per) as usize * if self.version == 2 { 16 } else { 8 }))
    }

    /// Where entry `gref`'s `GTF_reading`/`GTF_writing` live: the v1
    /// header's flags, or the v2 status word.
    pub fn status_at(&self, gref: u32) -> Result<(Mfn, usize), GntStatus> {
        if self.version != 2 {
            return self.header_at(gref);
        }
        self.header_at(gref)?;
        let frame = self.status.get((gref / STATUS_PER_FRAME) as usize).ok_or(GNTST_GENERAL_ERROR)?;
        Ok((*frame, (gref % STATUS_PER_FRAME) as usize * 2))
    }

    /// Reads entry `gref` in the table's version.
    pub fn entry(&self, mem: &dyn MachineMemory, gref: u32) -> Result<Entry, GntStatus> {
        let (frame, off) = self.header_at(gref)?;
        let size = if self.version == 2 { 16 } else { 8 };
        let b = mem.frame(frame).and_then(|f| f.get(off..off + size)).ok_or(GNTST_GENERAL_ERROR)?;
        let (flags, domid) = (le16(&b[0..]), le16(&b[2..]));
        let body = match (self.version, flags & TYPE_MASK) {
            (2, TRANSITIVE) => Body::Transitive { domid: le16(&b[4..]), gref: le32(&b[8..]) },
            (2, _) if flags & SUB_PAGE != 0 => {
                Body::SubPage { offset: le16(&b[4..]), length: le16(&b[6..]), frame: frame_at(b, 8) }
            }
            (2, _) => Body::Frame(frame_at(b, 8)),
            _ => Body::Frame(u64::from(le32(&b[4..]))),
        };
        Ok(Entry { flags, domid, body })
    }

    /// Entry `gref`'s in-use flags (0 where there is no such entry).
    pub fn status_flags(&self, mem: &mut dyn MachineMemory, gref: u32) -> u16 {
        let Ok((frame, off)) = self.status_at(gref) else { return 0 };
        u16_at(mem, frame, off).map_or(0, |w| w.load(SeqCst)) & (READING | WRITING)
    }

    /// Atomically clears `bits` of entry `gref`'s status (Xen's
    /// `gnttab_clear_flags`).
    pub fn clear_status(&self, mem: &mut dyn MachineMemory, gref: u32, bits: u16) {
        if let Ok((frame, off)) = self.status_at(gref) {
            if let Some(w) = u16_at(mem, frame, off) {
                w.fetch_and(!bits, SeqCst);
            }
        }
    }

    /// Xen's `_set_status`: checks that entry `gref` grants access to
    /// `user` (writable access unless `readonly`; for a mapping
    /// (`mapflag`) neither a sub-page nor a transitive grant) and marks it
    /// in use. An entry already in use (`pinned`) is not checked again
    /// for its type and domain.
    pub fn set_status(
        &self,
        mem: &mut dyn MachineMemory,
        gref: u32,
        user: DomId,
        pinned: bool,
        readonly: bool,
        mapflag: bool,
    ) -> Result<(), GntStatus> {
        let mask = TYPE_MASK | if mapflag { SUB_PAGE } else { 0 };
        if self.version == 2 {
            return self.set_status_v2(mem, gref, user, pinned, readonly, mask, mapflag);
        }
        let (frame, off) = self.header_at(gref)?;
        let word = u32_at(mem, frame, off).ok_or(GNTST_GENERAL_ERROR)?;
        let mut seen = word.load(SeqCst);
        // The guest may race us (changing GTF_readonly, say): a few tries,
        // then the entry counts as unstable.
        for _ in 0..5 {
            let (flags, domid) = (seen as u16, (seen >> 16) as u16);
            if !pinned && (flags & mask != PERMIT || domid != user) {
                return Err(GNTST_GENERAL_ERROR);
            }
            if !readonly && flags & READONLY != 0 {
                return Err(GNTST_GENERAL_ERROR);
            }
            let new = flags | READING | if readonly { 0 } else { WRITING };
            match word.compare_exchange(seen, (seen & 0xffff_0000) | u32::from(new), SeqCst, SeqCst) {
                Ok(_) => return Ok(()),
                Err(now) => seen = now,
            }
        }
        Err(GNTST_GENERAL_ERROR)
    }

    #[allow(clippy::too_many_arguments)]
    fn set_status_v2(
        &self,
        mem: &mut dyn MachineMemory,
        gref: u32,
        user: DomId,
        pinned: bool,
        readonly: bool,
        mask: u16,
        mapflag: bool,
    ) -> Result<(), GntStatus> {
        let (frame, off) = self.header_at(gref)?;
        let header = |mem: &mut dyn MachineMemory| u32_at(mem, frame, off).map(|w| w.load(SeqCst));
        let seen = header(mem).ok_or(GNTST_GENERAL_ERROR)?;
        let acceptable = |raw: u32| {
            let (flags, domid) = (raw as u16, (raw >> 16) as u16);
            let kind = flags & mask;
            (kind == PERMIT || (!mapflag && kind == TRANSITIVE)) && domid == user
        };
        if !pinned && !acceptable(seen) {
            return Err(GNTST_GENERAL_ERROR);
        }
        if !readonly && seen as u16 & READONLY != 0 {
            return Err(GNTST_GENERAL_ERROR);
        }
        let (sframe, soff) = self.status_at(gref)?;
        let status = u16_at(mem, sframe, soff).ok_or(GNTST_GENERAL_ERROR)?;
        status.fetch_or(READING | if readonly { 0 } else { WRITING }, SeqCst);
        // The guest may have changed the entry meanwhile: look again now
        // that it can see the status.
        let now = header(mem).unwrap_or(0);
        let readonly_now = now as u16 & READONLY != 0;
        if !pinned && (!acceptable(now) || (!readonly && readonly_now)) {
            self.clear_status(mem, gref, READING | WRITING);
            return Err(GNTST_GENERAL_ERROR);
        }
        if pinned && readonly_now {
            self.clear_status(mem, gref, WRITING);
            return Err(GNTST_GENERAL_ERROR);
        }
        Ok(())
    }
}

/// The little-endian u64 at `at` of `b`.
fn frame_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{full_page, grant, grant_v2, sub_page, transitive};
    use super::*;
    use crate::hypercall::tests::World;

    fn world(version: u8) -> World {
        let mut w = World::new(false);
        w.dom.gnttab.version = version;
        w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        w
    }

    #[test]
    fn entries_of_both_versions_are_read_as_written() {
        let mut w = world(1);
        grant(&w.dom, &mut w.mem, 511, PERMIT | READONLY, 7, 0xabcd);
        let e = w.dom.gnttab.entry(&w.mem, 511).unwrap();
        assert_eq!((e.flags, e.domid, e.body), (PERMIT | READONLY, 7, Body::Frame(0xabcd)));
        assert_eq!(w.dom.gnttab.entry(&w.mem, 512), Err(GNTST_BAD_GNTREF));
        let mut w = world(2);
        grant_v2(&w.dom, &mut w.mem, 1, PERMIT, 7, full_page(1 << 40));
        grant_v2(&w.dom, &mut w.mem, 2, PERMIT | SUB_PAGE, 7, sub_page(16, 100, 6));
        grant_v2(&w.dom, &mut w.mem, 255, TRANSITIVE, 7, transitive(3, 9));
        let body = |w: &World, g| w.dom.gnttab.entry(&w.mem, g).unwrap().body;
        assert_eq!(body(&w, 1), Body::Frame(1 << 40));
        assert_eq!(body(&w, 2), Body::SubPage { offset: 16, length: 100, frame: 6 });
        assert_eq!(body(&w, 255), Body::Transitive { domid: 3, gref: 9 });
        assert_eq!(w.dom.gnttab.entry(&w.mem, 256), Err(GNTST_BAD_GNTREF), "256 v2 entries per frame");
        assert_eq!(w.dom.gnttab.status_at(255), Ok((w.dom.gnttab.status[0], 510)));
    }

    #[test]
    fn version_2_status_is_apart_from_the_entry() {
        let mut w = world(2);
        grant_v2(&w.dom, &mut w.mem, 4, PERMIT, 7, full_page(6));
        assert_eq!(w.dom.gnttab.set_status(&mut w.mem, 4, 7, false, false, true), Ok(()));
        assert_eq!(w.dom.gnttab.status_flags(&mut w.mem, 4), READING | WRITING);
        assert_eq!(w.dom.gnttab.entry(&w.mem, 4).unwrap().flags, PERMIT, "the header is the granter's");
        w.dom.gnttab.clear_status(&mut w.mem, 4, WRITING);
        assert_eq!(w.dom.gnttab.status_flags(&mut w.mem, 4), READING);
        grant_v2(&w.dom, &mut w.mem, 5, PERMIT | SUB_PAGE, 7, sub_page(0, 8, 6));
        grant_v2(&w.dom, &mut w.mem, 6, TRANSITIVE, 7, transitive(1, 2));
        for (gref, map, want, what) in [
            (5, true, Err(GNTST_GENERAL_ERROR), "a sub-page grant is not mapped"),
            (5, false, Ok(()), "but copied"),
            (6, true, Err(GNTST_GENERAL_ERROR), "a transitive grant is not mapped"),
            (6, false, Ok(()), "but copied"),
        ] {
            assert_eq!(w.dom.gnttab.set_status(&mut w.mem, gref, 7, false, true, map), want, "{what}");
            w.dom.gnttab.clear_status(&mut w.mem, gref, READING | WRITING);
        }
        assert_eq!(w.dom.gnttab.status_flags(&mut w.mem, 5), 0, "refused: left clear");
    }

    #[test]
    fn version_1_checks_type_domain_and_readonly_unless_pinned() {
        let mut w = world(1);
        grant(&w.dom, &mut w.mem, 3, PERMIT | READONLY, 7, 6);
        let gt = &w.dom.gnttab;
        assert_eq!(gt.set_status(&mut w.mem, 3, 8, false, true, true), Err(GNTST_GENERAL_ERROR), "other domain");
        assert_eq!(gt.set_status(&mut w.mem, 3, 7, false, false, true), Err(GNTST_GENERAL_ERROR), "r/o");
        assert_eq!(gt.set_status(&mut w.mem, 3, 7, false, true, true), Ok(()));
        assert_eq!(gt.status_flags(&mut w.mem, 3), READING);
        grant(&w.dom, &mut w.mem, 3, READING, 9, 6);
        let gt = &w.dom.gnttab;
        assert_eq!(gt.set_status(&mut w.mem, 3, 7, true, true, true), Ok(()), "in use: not checked again");
    }
}
