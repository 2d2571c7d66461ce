//! Active grant entries: a domain's grants in use, with Xen's pin counts
//! (host and device uses, read-only and writable, 8 bits each), and what
//! starting and ending a use does to the entry's status flags.
//!
//! Semantics: Xen 4.17 `struct active_grant_entry`, the pinning half of
//! `map_grant_ref` and of `acquire_grant_for_copy` for a grant that is not
//! transitive, and `unmap_common_complete` / `release_grant_for_copy`
//! (xen/common/grant_table.c). A grant in use serves only the domain
//! using it, keeps the frame it had at its first use, and takes at most
//! 128 uses of each kind: a use of a kind whose count already has its top
//! bit set is refused with `GNTST_general_error` ("risk of counter
//! overflow"; Xen's `GNTPIN_incr2oflow_mask`, which looks only at the
//! kinds being counted). A sub-page or transitive grant in use is never
//! mapped.

use guest_abi::grant_table::{GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR};

use super::entry::{READING, WRITING};
use super::GntStatus;
use crate::domain::{DomId, Domain};
use crate::mm::frame_table::FrameTable;
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};

/// One writable host (page-table or copy) use (`GNTPIN_hstw_inc`).
pub const HOST_W: u32 = 1;
/// One read-only host use (`GNTPIN_hstr_inc`).
pub const HOST_R: u32 = 1 << 8;
/// One writable device use (`GNTPIN_devw_inc`).
pub const DEV_W: u32 = 1 << 16;
/// One read-only device use (`GNTPIN_devr_inc`).
pub const DEV_R: u32 = 1 << 24;
/// The writable uses' counts.
const WRITE_MASK: u32 = 0x00ff_00ff;
/// Most uses of one kind (Xen's 8-bit counters, refused from bit 7 on).
pub const MAX_PINS_PER_KIND: u32 = 128;

/// The bits that, set in a pin count, refuse the uses `inc` counts: the
/// top bit of each counted kind (`GNTPIN_incr2oflow_mask`).
fn overflow_mask(inc: u32) -> u32 {
    (inc & (HOST_W | HOST_R | DEV_W | DEV_R)) << 7
}

/// The pin count of one use: a device or host (or copy) use, read-only or
/// writable.
pub fn pin_inc(device: bool, readonly: bool) -> u32 {
    match (device, readonly) {
        (true, true) => DEV_R,
        (true, false) => DEV_W,
        (false, true) => HOST_R,
        (false, false) => HOST_W,
    }
}

/// A grant of this domain's in use by its grantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// The domain using it.
    pub user: DomId,
    /// The frame, fixed at the first use.
    pub mfn: Mfn,
    /// Uses by kind (`HOST_W`, `HOST_R`, `DEV_W`, `DEV_R` counts).
    pub pin: u32,
    /// First byte usable (a sub-page grant's offset; 0 otherwise).
    pub start: u16,
    /// Bytes usable (a sub-page grant's length; a page otherwise).
    pub length: u16,
    /// A sub-page or transitive grant: never mapped.
    pub sub_page: bool,
    /// For a transitive grant, the grant it passes on (a domain and its
    /// reference), itself in use while this one is.
    pub trans: Option<(DomId, u32)>,
}

impl Active {
    /// An entry about to take its first use.
    pub fn new(user: DomId, mfn: Mfn) -> Self {
        Active { user, mfn, pin: 0, start: 0, length: PAGE_SIZE as u16, sub_page: false, trans: None }
    }

    /// Whether it has writable uses.
    pub fn has_writers(&self) -> bool {
        self.pin & WRITE_MASK != 0
    }

    /// Whether `user` may take the uses `inc` counts ([`pin_inc`]): it is
    /// the user, and none of those kinds has reached
    /// [`MAX_PINS_PER_KIND`].
    pub fn admits(&self, user: DomId, inc: u32) -> bool {
        self.user == user && self.pin & overflow_mask(inc) == 0
    }
}

/// The status flags to clear when a use of an entry (with the pin count
/// `pin` left) ends or fails: `GTF_writing` once no writable use is left
/// (after a writable one), `GTF_reading` once no use is.
pub fn flags_to_clear(pin: u32, readonly: bool) -> u16 {
    let mut clear = 0;
    if !readonly && pin & WRITE_MASK == 0 {
        clear |= WRITING;
    }
    if pin == 0 {
        clear |= READING;
    }
    clear
}

/// Starts a mapping by `user` of `granter`'s grant `gref` (the pinning
/// half of Xen's `map_grant_ref`), counting `inc` ([`pin_inc`]); returns
/// the frame. The frame must be the granter's (`GNTST_bad_page`); the
/// references a mapping holds on it are the caller's to take.
pub fn pin_for_map(
    granter: &mut Domain,
    mem: &mut dyn MachineMemory,
    ft: &FrameTable,
    gref: u32,
    user: DomId,
    inc: u32,
) -> Result<Mfn, GntStatus> {
    if granter.is_destroyed() {
        // Xen: a dying domain's grants can no longer be used.
        return Err(GNTST_BAD_DOMAIN);
    }
    let readonly = inc & (HOST_W | DEV_W) == 0;
    let gt = &granter.gnttab;
    if gref >= gt.nr_entries() {
        return Err(GNTST_BAD_GNTREF);
    }
    let act = gt.active.get(&gref).copied();
    if act.is_some_and(|a| !a.admits(user, inc) || a.sub_page) {
        return Err(GNTST_GENERAL_ERROR);
    }
    if act.is_none_or(|a| !readonly && !a.has_writers()) {
        gt.set_status(mem, gref, user, act.is_some(), readonly, true)?;
    }
    let mfn = match act {
        Some(a) => a.mfn,
        None => {
            let mfn = Mfn(gt.entry(mem, gref).map_or(u64::MAX, |e| e.map_frame()));
            if !ft.is_owned_by(mfn, granter.id) {
                gt.clear_status(mem, gref, flags_to_clear(0, readonly));
                return Err(GNTST_BAD_PAGE);
            }
            mfn
        }
    };
    let a = granter.gnttab.active.entry(gref).or_insert(Active::new(user, mfn));
    a.pin = a.pin.wrapping_add(inc);
    Ok(a.mfn)
}

/// Ends a use (`dec`, as counted by [`pin_inc`]) of `granter`'s grant
/// `gref`, clearing the status flags the uses left no longer need; returns
/// the entry as it was, or `None` if it was not in use.
pub fn unpin(granter: &mut Domain, mem: &mut dyn MachineMemory, gref: u32, dec: u32) -> Option<Active> {
    let readonly = dec & (HOST_W | DEV_W) == 0;
    let gt = &mut granter.gnttab;
    let a = gt.active.get_mut(&gref)?;
    let before = *a;
    a.pin = a.pin.saturating_sub(dec);
    let pin = a.pin;
    if pin == 0 {
        gt.active.remove(&gref);
    }
    // A destroyed granter's table frames are gone: only the count matters.
    let clear = flags_to_clear(pin, readonly);
    if clear != 0 && !granter.is_destroyed() {
        granter.gnttab.clear_status(mem, gref, clear);
    }
    Some(before)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{full_page, grant, grant_v2, sub_page};
    use super::*;
    use crate::hypercall::tests::World;
    use guest_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READONLY, GTF_SUB_PAGE};

    const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;
    const RO: u16 = GTF_READONLY as u16;

    fn world(version: u8) -> World {
        let mut w = World::new(false);
        w.dom.gnttab.version = version;
        w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        w
    }

    fn flags(w: &mut World, gref: u32) -> u16 {
        w.dom.gnttab.status_flags(&mut w.mem, gref)
    }

    #[test]
    fn in_use_flags_follow_the_uses() {
        let mut w = world(1);
        grant(&w.dom, &mut w.mem, 5, PERMIT, 7, 6);
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 5, 7, HOST_R), Ok(Mfn(6)));
        assert_eq!(flags(&mut w, 5), READING);
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 5, 7, DEV_W), Ok(Mfn(6)));
        assert_eq!(flags(&mut w, 5), READING | WRITING);
        unpin(&mut w.dom, &mut w.mem, 5, DEV_W);
        assert_eq!(flags(&mut w, 5), READING, "a reader remains");
        unpin(&mut w.dom, &mut w.mem, 5, HOST_R);
        assert_eq!(flags(&mut w, 5), 0);
        assert!(w.dom.gnttab.active.is_empty());
        assert_eq!(unpin(&mut w.dom, &mut w.mem, 5, HOST_R), None, "releasing what is not in use is nothing");
    }

    #[test]
    fn refuses_what_xen_refuses_and_leaves_the_entry_alone() {
        let mut w = world(1);
        grant(&w.dom, &mut w.mem, 1, PERMIT, 7, 6);
        grant(&w.dom, &mut w.mem, 2, PERMIT | RO, 7, 6);
        grant(&w.dom, &mut w.mem, 3, PERMIT, 7, 99);
        grant(&w.dom, &mut w.mem, 5, 0, 7, 6);
        let cases: [(u32, DomId, u32, GntStatus, &str); 6] = [
            (1, 8, HOST_R, GNTST_GENERAL_ERROR, "granted to another domain"),
            (2, 7, HOST_W, GNTST_GENERAL_ERROR, "writable use of a read-only grant"),
            (3, 7, HOST_R, GNTST_BAD_PAGE, "frame not the granter's"),
            (5, 7, HOST_R, GNTST_GENERAL_ERROR, "revoked entry"),
            (512, 7, HOST_R, GNTST_BAD_GNTREF, "beyond the table"),
            (u32::MAX, 7, HOST_R, GNTST_BAD_GNTREF, "far beyond the table"),
        ];
        for (gref, user, inc, want, what) in cases {
            let before = w.dom.gnttab.entry(&w.mem, gref).ok();
            assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, gref, user, inc), Err(want), "{what}");
            assert_eq!(w.dom.gnttab.entry(&w.mem, gref).ok(), before, "{what}: entry untouched");
        }
        assert!(w.dom.gnttab.active.is_empty());
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 2, 7, HOST_R), Ok(Mfn(6)), "a read-only grant read");
        assert_eq!(
            pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 2, 8, HOST_R),
            Err(GNTST_GENERAL_ERROR),
            "in use by another"
        );
    }

    #[test]
    fn an_active_grant_keeps_its_frame_and_each_kind_stops_at_128() {
        let mut w = world(1);
        grant(&w.dom, &mut w.mem, 1, PERMIT, 7, 6);
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 1, 7, HOST_R), Ok(Mfn(6)));
        grant(&w.dom, &mut w.mem, 1, PERMIT | READING, 7, 5);
        for _ in 1..MAX_PINS_PER_KIND {
            assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 1, 7, HOST_R), Ok(Mfn(6)));
        }
        let full = w.dom.gnttab.active.get(&1).copied();
        assert_eq!(full.map(|a| a.pin), Some(128 * HOST_R));
        assert_eq!(
            pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 1, 7, HOST_R),
            Err(GNTST_GENERAL_ERROR),
            "129th host read"
        );
        assert_eq!(w.dom.gnttab.active.get(&1).copied(), full, "a refusal changes no count");
        // Xen 4.17 looks only at the kinds a use counts (GNTPIN_incr2oflow_mask).
        for inc in [DEV_R, HOST_W, DEV_W] {
            assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 1, 7, inc), Ok(Mfn(6)), "{inc:#x}: another kind");
        }
        unpin(&mut w.dom, &mut w.mem, 1, HOST_R);
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 1, 7, HOST_R), Ok(Mfn(6)), "room again");
    }

    #[test]
    fn version_2_maps_full_pages_only() {
        let mut w = world(2);
        grant_v2(&w.dom, &mut w.mem, 1, PERMIT, 7, full_page(6));
        grant_v2(&w.dom, &mut w.mem, 2, PERMIT | GTF_SUB_PAGE as u16, 7, sub_page(0, 64, 6));
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 1, 7, HOST_W), Ok(Mfn(6)));
        assert_eq!(flags(&mut w, 1), READING | WRITING);
        assert_eq!(w.dom.gnttab.entry(&w.mem, 1).map(|e| e.flags), Ok(PERMIT), "the header stays the granter's");
        assert_eq!(pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 2, 7, HOST_R), Err(GNTST_GENERAL_ERROR));
        unpin(&mut w.dom, &mut w.mem, 1, HOST_W);
        assert_eq!(flags(&mut w, 1), 0);
    }
}
