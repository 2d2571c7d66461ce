//! Grant tables, version 1: a domain's shared table of grant entries (it
//! writes them, the hypervisor reads them), the hypervisor's record of
//! which grants other domains have mapped, and the entry protocol that
//! keeps a granting domain from pulling a page out from under a mapper.
//!
//! Semantics: Xen 4.17 `xen/common/grant_table.c`: an entry
//! `{flags, domid, frame}` grants `frame` to `domid` when its type is
//! `GTF_permit_access`; while a mapping exists the hypervisor keeps
//! `GTF_reading` (and `GTF_writing` for a writable one) set, so the granter's
//! revoke (a cmpxchg of the flags to 0) fails until the last unmap.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::domain::DomId;
use crate::mm::{MachineMemory, Mfn};

/// Entries of a v1 table per frame.
pub const ENTRIES_PER_FRAME: u32 = 512;
/// Most table frames a domain may have (Xen's default `max_grant_frames`).
pub const MAX_FRAMES: u32 = 64;

/// `GTF_permit_access`
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_type_mask`
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`
pub const GTF_WRITING: u16 = 1 << 4;

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

/// One mapping a domain made of another domain's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: DomId,
    /// The grant reference.
    pub gref: u32,
    /// Where it is mapped in the mapper's address space.
    pub host_addr: u64,
    /// The mapped frame.
    pub mfn: Mfn,
    /// Mapped read-only.
    pub readonly: bool,
}

/// A domain's grant table and the mappings it holds of others' grants.
#[derive(Clone, Debug)]
pub struct GrantTable {
    /// The table's frames (hypervisor-allocated, shared with the domain).
    pub frames: Vec<Mfn>,
    /// Mappings this domain holds, indexed by handle (`None` = free).
    pub maptrack: Vec<Option<Mapping>>,
    /// Per own grant reference: (read-only mappings, writable mappings).
    pub active: BTreeMap<u32, (u32, u32)>,
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
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

    fn locate(&self, gref: u32) -> Option<(Mfn, usize)> {
        let frame = *self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        Some((frame, (gref % ENTRIES_PER_FRAME) as usize * 8))
    }

    /// Reads entry `gref`.
    pub fn entry(&self, mem: &dyn MachineMemory, gref: u32) -> Option<Entry> {
        let (frame, off) = self.locate(gref)?;
        let b = mem.frame(frame)?.get(off..off + 8)?;
        Some(Entry {
            flags: u16::from_le_bytes([b[0], b[1]]),
            domid: u16::from_le_bytes([b[2], b[3]]),
            frame: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    /// Sets or clears flag bits of entry `gref` (the in-use flags).
    pub fn update_flags(&self, mem: &mut dyn MachineMemory, gref: u32, set: u16, clear: u16) {
        if let Some((frame, off)) = self.locate(gref) {
            if let Some(b) = mem.frame_mut(frame).and_then(|f| f.get_mut(off..off + 2)) {
                let flags = (u16::from_le_bytes([b[0], b[1]]) | set) & !clear;
                b.copy_from_slice(&flags.to_le_bytes());
            }
        }
    }

    /// Records a mapping; returns its handle.
    pub fn track(&mut self, m: Mapping) -> u32 {
        match self.maptrack.iter().position(Option::is_none) {
            Some(i) => {
                self.maptrack[i] = Some(m);
                i as u32
            }
            None => {
                self.maptrack.push(Some(m));
                self.maptrack.len() as u32 - 1
            }
        }
    }

    /// Counts a new mapping of own reference `gref`; returns the flags the
    /// entry must now carry.
    pub fn pin(&mut self, gref: u32, readonly: bool) -> u16 {
        let a = self.active.entry(gref).or_insert((0, 0));
        if readonly {
            a.0 += 1;
        } else {
            a.1 += 1;
        }
        GTF_READING | if a.1 > 0 { GTF_WRITING } else { 0 }
    }

    /// Drops a mapping of own reference `gref`; returns the in-use flags to
    /// clear (none while other mappings remain).
    pub fn unpin(&mut self, gref: u32, readonly: bool) -> u16 {
        let Some(a) = self.active.get_mut(&gref) else { return 0 };
        if readonly {
            a.0 = a.0.saturating_sub(1);
        } else {
            a.1 = a.1.saturating_sub(1);
        }
        let (r, w) = *a;
        if r + w == 0 {
            self.active.remove(&gref);
            GTF_READING | GTF_WRITING
        } else if w == 0 {
            GTF_WRITING
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_counts_drive_the_in_use_flags() {
        let mut t = GrantTable::new();
        assert_eq!(t.pin(5, true), GTF_READING);
        assert_eq!(t.pin(5, false), GTF_READING | GTF_WRITING);
        assert_eq!(t.unpin(5, false), GTF_WRITING, "a reader remains");
        assert_eq!(t.unpin(5, true), GTF_READING | GTF_WRITING);
        assert_eq!(t.unpin(5, true), 0, "unpinning what is not pinned changes nothing");
        let h0 = t.track(Mapping { granter: 0, gref: 1, host_addr: 0, mfn: Mfn(1), readonly: true });
        let h1 = t.track(Mapping { granter: 0, gref: 2, host_addr: 0, mfn: Mfn(1), readonly: true });
        t.maptrack[h0 as usize] = None;
        assert_eq!((h0, h1), (0, 1));
        assert_eq!(t.track(Mapping { granter: 0, gref: 3, host_addr: 0, mfn: Mfn(1), readonly: true }), 0);
    }
}
