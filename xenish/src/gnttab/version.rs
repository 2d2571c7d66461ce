//! Switching a grant table between version 1 and version 2
//! (`GNTTABOP_set_version`).
//!
//! Semantics and errnos: Xen 4.17 `gnttab_set_version`,
//! `gnttab_populate_status_frames` and `gnttab_unpopulate_status_frames`
//! (xen/common/grant_table.c). A switch is refused (`-EBUSY`) while any
//! entry past the 8 reserved ones is in use; the reserved entries are
//! converted (a v2 entry a v1 one cannot hold is `-ERANGE`), every other
//! entry is cleared. Version 2 gets status frames for the table's frames;
//! going back frees them, which needs the guest to have unmapped them
//! (`-EBUSY` otherwise). Version 2 on a domain created with version 1 as
//! its maximum is `-ENOSYS`, as if `set_version` did not exist.

use alloc::vec::Vec;

use guest_abi::errno::XenError;
use guest_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_TRANSITIVE, GTF_TYPE_MASK};

use super::entry::{READING, WRITING};
use super::{alloc_frames, status_frames_for, GrantTable, NR_RESERVED};
use crate::mm::frame_table::{FrameTable, Owner};
use crate::mm::{FramePool, MachineMemory, Mfn};

/// A reserved entry in version 1's form, kept across the switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Reserved {
    flags: u16,
    domid: u16,
    frame: u64,
}

impl GrantTable {
    /// `GNTTABOP_set_version`: makes the table version `version` (see the
    /// module documentation). On failure the table is as it was.
    pub fn set_version(
        &mut self,
        version: u32,
        mem: &mut dyn MachineMemory,
        pool: &mut dyn FramePool,
        ft: &mut FrameTable,
    ) -> Result<(), XenError> {
        let version = match version {
            1 => 1u8,
            2 => 2,
            _ => return Err(XenError::Einval),
        };
        if version == 2 && self.max_version < 2 {
            return Err(XenError::Enosys);
        }
        if version == self.version {
            return Ok(());
        }
        if self.active.keys().any(|&gref| gref >= NR_RESERVED) {
            return Err(XenError::Ebusy);
        }
        let reserved = self.reserved_entries(mem)?;
        if version == 2 {
            let want = status_frames_for(self.frames.len() as u32) as usize;
            let old = self.status.len();
            if !alloc_frames(&mut self.status, want, mem, pool, ft) {
                for mfn in self.status.drain(old..) {
                    super::free_frame(mfn, pool, ft);
                }
                return Err(XenError::Enomem);
            }
        } else {
            self.free_status_frames(mem, pool, ft)?;
        }
        for &mfn in &self.frames {
            if let Some(bytes) = mem.frame_mut(mfn) {
                bytes.fill(0);
            }
        }
        self.version = version;
        self.restore_reserved(mem, &reserved);
        Ok(())
    }

    /// The reserved entries in version 1's form (what a switch keeps);
    /// `-ERANGE` for a v2 one version 1 cannot represent.
    fn reserved_entries(&self, mem: &mut dyn MachineMemory) -> Result<Vec<Reserved>, XenError> {
        let mut out = Vec::new();
        for gref in 0..NR_RESERVED.min(self.nr_entries()) {
            let Ok(e) = self.entry(mem, gref) else { break };
            let kind = u32::from(e.flags) & GTF_TYPE_MASK;
            let r = if self.version == 1 {
                Reserved { flags: e.flags, domid: e.domid, frame: e.map_frame() }
            } else {
                let frame = e.map_frame();
                if kind == GTF_TRANSITIVE || (kind == GTF_PERMIT_ACCESS && frame >> 32 != 0) {
                    return Err(XenError::Erange);
                }
                if kind == GTF_PERMIT_ACCESS {
                    let flags = e.flags | self.status_flags(mem, gref);
                    Reserved { flags, domid: e.domid, frame }
                } else {
                    // Anything else does not survive the switch (Xen:
                    // "bad flags ... when switching version").
                    Reserved::default()
                }
            };
            out.push(r);
        }
        Ok(out)
    }

    /// Writes the kept reserved entries in the (new) version's form.
    fn restore_reserved(&self, mem: &mut dyn MachineMemory, reserved: &[Reserved]) {
        for (gref, r) in (0u32..).zip(reserved) {
            let Ok((frame, off)) = self.header_at(gref) else { break };
            let in_use = r.flags & (READING | WRITING);
            let header = if self.version == 2 { r.flags & !(READING | WRITING) } else { r.flags };
            if let Some(b) = mem.frame_mut(frame) {
                b[off..off + 2].copy_from_slice(&header.to_le_bytes());
                b[off + 2..off + 4].copy_from_slice(&r.domid.to_le_bytes());
                if self.version == 2 {
                    b[off + 8..off + 16].copy_from_slice(&r.frame.to_le_bytes());
                } else {
                    b[off + 4..off + 8].copy_from_slice(&(r.frame as u32).to_le_bytes());
                }
            }
            if self.version == 2 {
                if let Ok((sf, soff)) = self.status_at(gref) {
                    if let Some(b) = mem.frame_mut(sf) {
                        b[soff..soff + 2].copy_from_slice(&in_use.to_le_bytes());
                    }
                }
            }
        }
    }

    /// Gives the status frames back (`gnttab_unpopulate_status_frames`):
    /// `-EBUSY`, and nothing freed, while the guest still maps one.
    fn free_status_frames(
        &mut self,
        mem: &mut dyn MachineMemory,
        pool: &mut dyn FramePool,
        ft: &mut FrameTable,
    ) -> Result<(), XenError> {
        if self.status.iter().any(|&m| ft.info(m).is_some_and(|p| p.count() != 0)) {
            return Err(XenError::Ebusy);
        }
        for mfn in self.status.drain(..) {
            if let Some(bytes) = mem.frame_mut(mfn) {
                bytes.fill(0);
            }
            if ft.set_owner(mfn, Owner::Free).is_ok() {
                pool.free(mfn);
            }
        }
        Ok(())
    }

    /// Status frames the table holds (none on version 1).
    pub fn status_frames(&self) -> &[Mfn] {
        &self.status
    }
}

#[cfg(test)]
mod tests {
    use super::super::active::{pin_for_map, HOST_R};
    use super::super::tests::{full_page, grant, grant_v2, transitive};
    use super::*;
    use crate::hypercall::tests::World;

    const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;

    fn world() -> World {
        let mut w = World::new(false);
        w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        w
    }

    fn set(w: &mut World, version: u32) -> Result<(), XenError> {
        w.dom.gnttab.set_version(version, &mut w.mem, &mut w.pool, &mut w.ft)
    }

    #[test]
    fn reserved_entries_survive_both_ways_and_the_rest_is_cleared() {
        let mut w = world();
        grant(&w.dom, &mut w.mem, 1, PERMIT | READING, 7, 6); // xenstore, in use
        grant(&w.dom, &mut w.mem, 9, PERMIT, 7, 6);
        assert_eq!(set(&mut w, 3), Err(XenError::Einval));
        assert_eq!(set(&mut w, 1), Ok(()), "already 1");
        assert_eq!(set(&mut w, 2), Ok(()));
        assert_eq!(w.dom.gnttab.status.len(), 1);
        let e = w.dom.gnttab.entry(&w.mem, 1).unwrap();
        assert_eq!((e.flags, e.domid, e.map_frame()), (PERMIT, 7, 6));
        assert_eq!(w.dom.gnttab.status_flags(&mut w.mem, 1), READING, "in use, now in the status word");
        assert_eq!(w.dom.gnttab.entry(&w.mem, 9).unwrap().flags, 0, "cleared");
        assert_eq!(set(&mut w, 1), Ok(()));
        assert!(w.dom.gnttab.status.is_empty(), "status frames given back");
        let e = w.dom.gnttab.entry(&w.mem, 1).unwrap();
        assert_eq!((e.flags, e.domid, e.map_frame()), (PERMIT | READING, 7, 6));
        w.audit_ownership();
    }

    #[test]
    fn what_xen_refuses() {
        let mut w = world();
        grant(&w.dom, &mut w.mem, 9, PERMIT, 0, 6);
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 9, 0, HOST_R), Ok(Mfn(6)));
        assert_eq!(set(&mut w, 2), Err(XenError::Ebusy), "entry 9 in use");
        assert_eq!(w.dom.gnttab.version, 1);
        w.dom.gnttab.active.clear();
        w.dom.gnttab.max_version = 1;
        assert_eq!(set(&mut w, 2), Err(XenError::Enosys));
        w.dom.gnttab.max_version = 2;
        assert_eq!(set(&mut w, 2), Ok(()));
        grant_v2(&w.dom, &mut w.mem, 2, GTF_TRANSITIVE as u16, 0, transitive(1, 1));
        assert_eq!(set(&mut w, 1), Err(XenError::Erange), "a transitive reserved entry");
        grant_v2(&w.dom, &mut w.mem, 2, PERMIT, 0, full_page(1 << 32));
        assert_eq!(set(&mut w, 1), Err(XenError::Erange), "a frame beyond 32 bits");
        grant_v2(&w.dom, &mut w.mem, 2, 0, 0, [0; 12]);
        // The guest maps its status frame: it cannot be given back.
        let status = w.dom.gnttab.status[0];
        w.ft.get_page(status, Owner::Xen).unwrap();
        assert_eq!(set(&mut w, 1), Err(XenError::Ebusy));
        assert_eq!((w.dom.gnttab.version, w.dom.gnttab.status.len()), (2, 1), "as it was");
        w.ft.put_page(status);
        assert_eq!(set(&mut w, 1), Ok(()));
    }
}
