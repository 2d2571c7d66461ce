//! `GNTTABOP_map_grant_ref`, `GNTTABOP_unmap_grant_ref` and
//! `GNTTABOP_unmap_and_replace`: host (page-table) and device mappings of
//! another domain's grant.
//!
//! Semantics and status codes: Xen 4.17 `map_grant_ref`, `unmap_common`,
//! `unmap_common_complete` (xen/common/grant_table.c) and
//! `create_grant_pv_mapping` / `replace_grant_pv_mapping`
//! (xen/arch/x86/pv/grant_table.c), checked in Xen's order. A mapping's
//! PTE is marked `_PAGE_GNTTAB` and holds nothing of its own: the grant
//! holds the frame's references, one per use (host, device), writable
//! ones with a writable type reference, so the frame cannot become one of
//! the granter's page tables while mapped.

use guest_abi::errno::XenError;
use guest_abi::grant_table::*;

use super::{domain_mut, Ctx};
use crate::domain::DomId;
use crate::gnttab::active::{pin_for_map, pin_inc};
use crate::gnttab::{GntStatus, Mapping};
use crate::guest_access::{is_guest_addr, PTE_ADDR_MASK};
use crate::hypercall::TlbFlush;
use crate::mm::frame_table::{Owner, PageType};
use crate::mm::pagetable::{self, PTE_A, PTE_D, PTE_NX, PTE_P, PTE_RW, PTE_US};
use crate::mm::pt_validate::{find_l1, PTE_GNTTAB};
use crate::mm::{Mfn, PAGE_SIZE};

/// GNTTABOP_map_grant_ref, one operation.
pub(super) fn map_one(ctx: &mut Ctx, op: &mut GnttabMapGrantRef) {
    op.status = match map_grant(ctx, op) {
        Ok(handle) => {
            op.handle = handle;
            GNTST_OKAY
        }
        Err(status) => status,
    };
}

/// The uses a mapping's flags ask for: (device, host).
fn uses(flags: u32) -> [(bool, bool); 2] {
    [(true, flags & GNTMAP_DEVICE_MAP != 0), (false, flags & GNTMAP_HOST_MAP != 0)]
}

fn map_grant(ctx: &mut Ctx, op: &mut GnttabMapGrantRef) -> Result<u32, GntStatus> {
    let host = op.flags & GNTMAP_HOST_MAP != 0;
    let device = op.flags & GNTMAP_DEVICE_MAP != 0;
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let by_pte = op.flags & GNTMAP_CONTAINS_PTE != 0;
    if !host && !device {
        return Err(GNTST_BAD_GNTREF);
    }
    let (me, dom, gref) = (ctx.domain.id, op.dom, op.ref_);
    domain_mut(ctx.domain, &mut ctx.peers, dom).ok_or(GNTST_BAD_DOMAIN)?;
    if !ctx.domain.gnttab.can_track() {
        return Err(GNTST_NO_SPACE);
    }
    let mut mfn = Mfn(0);
    let mut pinned = 0;
    for (dev, wanted) in uses(op.flags) {
        if !wanted {
            continue;
        }
        let granter = domain_mut(ctx.domain, &mut ctx.peers, dom).ok_or(GNTST_BAD_DOMAIN)?;
        let r = pin_for_map(granter, ctx.mem, ctx.ft, gref, me, pin_inc(dev, readonly));
        match r {
            Ok(m) => {
                mfn = m;
                pinned |= pin_inc(dev, readonly);
            }
            Err(status) => {
                super::unpin_chain(ctx, dom, gref, pinned);
                return Err(status);
            }
        }
    }
    let flags = op.flags;
    let undo = |ctx: &mut Ctx, held: u32| {
        for _ in 0..held {
            drop_frame(ctx, mfn, readonly);
        }
        for (dev, wanted) in uses(flags) {
            if wanted {
                super::unpin_chain(ctx, dom, gref, pin_inc(dev, readonly));
            }
        }
    };
    let nr_uses = u32::from(host) + u32::from(device);
    for held in 0..nr_uses {
        if hold_frame(ctx, dom, mfn, readonly).is_err() {
            undo(ctx, held);
            return Err(GNTST_GENERAL_ERROR);
        }
    }
    let slot = if host {
        let installed = host_slot(ctx, op.host_addr, by_pte)
            .and_then(|slot| install_pte(ctx, slot, mfn, grant_pte_flags(op.flags)).map(|()| slot));
        match installed {
            Ok(slot) => Some(slot),
            Err(status) => {
                undo(ctx, nr_uses);
                return Err(status);
            }
        }
    } else {
        None
    };
    let mapping = Mapping { granter: dom, gref, mfn, host, device, readonly, by_pte };
    match ctx.domain.gnttab.track(mapping) {
        Ok(handle) => {
            op.dev_bus_addr = mfn.addr();
            Ok(handle)
        }
        Err(status) => {
            if let Some(slot) = slot {
                let _ = remove_pte(ctx, slot, mfn, readonly, 0);
            }
            undo(ctx, nr_uses);
            Err(status)
        }
    }
}

/// What one use (host or device mapping) of a granted frame holds: a
/// reference through the granter's ownership and, when writable, a
/// writable type reference (Xen's `map_grant_ref`: `get_page` /
/// `get_page_type(PGT_writable_page)`).
fn hold_frame(ctx: &mut Ctx, granter: DomId, mfn: Mfn, readonly: bool) -> Result<(), XenError> {
    ctx.ft.get_page(mfn, Owner::Domain(granter))?;
    if !readonly {
        if let Err(e) = ctx.ft.get_type(mfn, PageType::Writable) {
            ctx.ft.put_page(mfn);
            return Err(e);
        }
    }
    Ok(())
}

/// Releases what [`hold_frame`] took.
fn drop_frame(ctx: &mut Ctx, mfn: Mfn, readonly: bool) {
    if !readonly {
        ctx.mmu().put_type(mfn);
    }
    ctx.ft.put_page(mfn);
}

/// The L1 slot mapping `va` in the caller's current address space.
fn l1_slot(ctx: &Ctx, va: u64) -> Result<(Mfn, usize), GntStatus> {
    if !is_guest_addr(va) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let l4 = ctx.domain.vcpus.get(ctx.vcpu).map(|v| v.current_l4()).ok_or(GNTST_GENERAL_ERROR)?;
    find_l1(ctx.ft, ctx.mem, ctx.domain.id, l4, va).ok_or(GNTST_GENERAL_ERROR)
}

/// The L1 slot a host mapping names: by virtual address, or with
/// `GNTMAP_contains_pte` by the machine address of the entry itself, which
/// must be 8-byte aligned and inside one of the caller's own L1 tables
/// (Xen's `create_grant_pv_mapping` / `replace_grant_pv_mapping`; gntdev
/// in a PV dom0 maps user pages this way).
fn host_slot(ctx: &Ctx, addr: u64, by_pte: bool) -> Result<(Mfn, usize), GntStatus> {
    if !by_pte {
        return l1_slot(ctx, addr);
    }
    if !addr.is_multiple_of(8) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let table = Mfn::containing(addr);
    if !ctx.ft.is_page_table_of(table, ctx.domain.id, Some(1)) {
        return Err(GNTST_GENERAL_ERROR);
    }
    Ok((table, ((addr as usize) % PAGE_SIZE) / 8))
}

/// The PTE flags of a grant mapping (Xen's `grant_to_pte_flags` with the
/// 64-bit PV guest's `_PAGE_USER`): present, accessed, dirty, no-execute,
/// writable unless read-only, and the three `GNTMAP_guest_avail` bits as
/// the PTE's available bits 9–11 (Linux keeps `_PAGE_SPECIAL` there).
fn grant_pte_flags(flags: u32) -> u64 {
    let avail = (u64::from(flags >> GNTMAP_GUEST_AVAIL0_BIT) << 9) & PTE_AVAIL;
    let rw = if flags & GNTMAP_READONLY != 0 { 0 } else { PTE_RW };
    PTE_P | PTE_US | PTE_A | PTE_D | PTE_NX | PTE_GNTTAB | rw | avail
}

/// The PTE's software-available bits 9–11.
pub(super) const PTE_AVAIL: u64 = 0xe00;

/// Maps `mfn` at L1 `slot` with `flags`, as Xen's `create_grant_pv_mapping`
/// does: the PTE there is replaced by one for the granted frame, marked
/// `_PAGE_GNTTAB` (the grant holds its references), and the old entry's
/// references are released; an old grant entry there is refused.
fn install_pte(ctx: &mut Ctx, (l1, slot): (Mfn, usize), mfn: Mfn, flags: u64) -> Result<(), GntStatus> {
    let old = pagetable::entry(ctx.mem, l1, slot).map_err(|_| GNTST_GENERAL_ERROR)?;
    if old & PTE_P != 0 && old & PTE_GNTTAB != 0 {
        return Err(GNTST_GENERAL_ERROR);
    }
    pagetable::set_entry(ctx.mem, l1, slot, mfn.addr() | flags).map_err(|_| GNTST_GENERAL_ERROR)?;
    ctx.mmu().put_page_from_l1e(old);
    ctx.flush_dirty(TlbFlush::All);
    Ok(())
}

/// Unmaps the grant of `mfn` at L1 `slot`, refusing if the PTE there is
/// not a grant entry for that frame with the mapping's write permission,
/// and puts `new` there (0, or the entry `unmap_and_replace` moved; Xen's
/// `replace_grant_pv_mapping`).
fn remove_pte(ctx: &mut Ctx, (l1, slot): (Mfn, usize), mfn: Mfn, readonly: bool, new: u64) -> Result<(), GntStatus> {
    let old = pagetable::entry(ctx.mem, l1, slot).map_err(|_| GNTST_GENERAL_ERROR)?;
    let frame_matches = Mfn::containing(old & PTE_ADDR_MASK) == mfn;
    let rw_matches = (old & PTE_RW == 0) == readonly;
    if old & PTE_P == 0 || old & PTE_GNTTAB == 0 || !frame_matches || !rw_matches {
        return Err(GNTST_GENERAL_ERROR);
    }
    pagetable::set_entry(ctx.mem, l1, slot, new).map_err(|_| GNTST_GENERAL_ERROR)?;
    ctx.flush_dirty(TlbFlush::All);
    Ok(())
}

/// GNTTABOP_unmap_grant_ref, one operation.
pub(super) fn unmap_one(ctx: &mut Ctx, op: &mut GnttabUnmapGrantRef) {
    op.status = match unmap_grant(ctx, op.handle, op.host_addr, op.dev_bus_addr, 0) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

/// GNTTABOP_unmap_and_replace, one operation: the host mapping at
/// `host_addr` is replaced by the entry mapping `new_addr`, which is
/// cleared (or, with `new_addr` 0, simply removed).
pub(super) fn unmap_and_replace_one(ctx: &mut Ctx, op: &mut GnttabUnmapAndReplace) {
    op.status = match unmap_grant(ctx, op.handle, op.host_addr, 0, op.new_addr) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

/// Xen's `unmap_common` and `unmap_common_complete`.
fn unmap_grant(ctx: &mut Ctx, handle: u32, host_addr: u64, dev_bus_addr: u64, new_addr: u64) -> Result<(), GntStatus> {
    let m = *ctx.domain.gnttab.mapping(handle).ok_or(GNTST_BAD_HANDLE)?;
    if dev_bus_addr != 0 && dev_bus_addr != m.mfn.addr() {
        return Err(GNTST_GENERAL_ERROR);
    }
    let undo_host = host_addr != 0 && m.host;
    let undo_device = dev_bus_addr != 0 && m.device;
    if undo_host {
        if new_addr != 0 && m.by_pte {
            // Replacing is not supported for PTE addresses.
            return Err(GNTST_GENERAL_ERROR);
        }
        let new = if new_addr != 0 { take_pte(ctx, new_addr)? } else { 0 };
        let removed =
            host_slot(ctx, host_addr, m.by_pte).and_then(|slot| remove_pte(ctx, slot, m.mfn, m.readonly, new));
        if let Err(status) = removed {
            // The stolen entry is gone from `new_addr` either way; as in
            // Xen's `replace_grant_pv_mapping`, its references are still
            // ours to drop when it does not take the grant's place.
            ctx.mmu().put_page_from_l1e(new);
            return Err(status);
        }
    }
    let (host, device) = (m.host && !undo_host, m.device && !undo_device);
    if host || device {
        if let Some(left) = ctx.domain.gnttab.mapping_mut(handle) {
            (left.host, left.device) = (host, device);
        }
    } else {
        ctx.domain.gnttab.untrack(handle);
    }
    for (dev, undone) in [(true, undo_device), (false, undo_host)] {
        if undone {
            drop_frame(ctx, m.mfn, m.readonly);
            super::unpin_chain(ctx, m.granter, m.gref, pin_inc(dev, m.readonly));
        }
    }
    Ok(())
}

/// Takes the PTE mapping `va` away (what `unmap_and_replace` moves): the
/// entry, its references going with it, and the slot cleared.
fn take_pte(ctx: &mut Ctx, va: u64) -> Result<u64, GntStatus> {
    let (l1, slot) = l1_slot(ctx, va)?;
    let pte = pagetable::entry(ctx.mem, l1, slot).map_err(|_| GNTST_GENERAL_ERROR)?;
    pagetable::set_entry(ctx.mem, l1, slot, 0).map_err(|_| GNTST_GENERAL_ERROR)?;
    ctx.flush_dirty(TlbFlush::All);
    Ok(pte)
}
