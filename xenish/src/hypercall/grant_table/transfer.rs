//! `GNTTABOP_transfer`: the caller gives one of its pages to another
//! domain, which accepted a transfer in one of its grant entries.
//!
//! Semantics and status codes: Xen 4.17 `gnttab_transfer`,
//! `gnttab_prepare_for_transfer` and `steal_page`, as for a PV caller and
//! recipient (no P2M; the M2P names the recipient's pfn). The page must be
//! the caller's and referenced by nothing (not mapped, not a page table,
//! not a page the hypervisor holds): else `GNTST_bad_page` and it stays.
//! Once taken, it is the recipient's only if the recipient exists, is
//! not dying, has room below its `max_pages` and offers the entry (exactly
//! `GTF_accept_transfer`, for the caller); otherwise it is lost to both, as
//! on Xen, and freed. On success the entry gets the page's frame and
//! `GTF_transfer_completed`.

use core::sync::atomic::Ordering::SeqCst;

use guest_abi::grant_table::*;

use super::{domain_mut, Ctx};
use crate::domain::{DomId, Domain};
use crate::gnttab::GntStatus;
use crate::hypercall::TlbFlush;
use crate::mm::shared_word::{u16_at, u32_at};
use crate::mm::{Mfn, Pfn};

/// GNTTABOP_transfer, one operation.
pub(super) fn transfer_one(ctx: &mut Ctx, op: &mut GnttabTransfer) {
    op.status = match transfer(ctx, op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

fn transfer(ctx: &mut Ctx, op: &GnttabTransfer) -> Result<(), GntStatus> {
    let mfn = Mfn(op.mfn);
    steal(ctx, mfn)?;
    let me = ctx.domain.id;
    let given = match domain_mut(ctx.domain, &mut ctx.peers, op.domid) {
        None => Err(GNTST_BAD_DOMAIN),
        Some(e) if e.is_destroyed() || e.tot_pages() >= e.max_pages => Err(GNTST_GENERAL_ERROR),
        Some(e) => accept(e, ctx.mem, ctx.ft, ctx.m2p, me, op.ref_, mfn),
    };
    if given.is_err() {
        ctx.m2p.set(ctx.mem, mfn, None);
        if let Some(bytes) = ctx.mem.frame_mut(mfn) {
            bytes.fill(0);
        }
        ctx.frames.free(mfn);
    }
    given
}

/// Xen's `steal_page`: the caller's page leaves it, if nothing refers to
/// it (and it is not a frame the hypervisor uses for it).
fn steal(ctx: &mut Ctx, mfn: Mfn) -> Result<(), GntStatus> {
    let d = &mut *ctx.domain;
    let held = d.console_ring.is_some_and(|(ring, _)| ring == mfn);
    let referenced = ctx.ft.info(mfn).is_none_or(|p| p.count() != 0 || p.type_count() != 0);
    if held || referenced || ctx.ft.release_page(mfn, d.id, &mut d.page_list).is_err() {
        return Err(GNTST_BAD_PAGE);
    }
    // It may have been unmapped without a flush.
    ctx.flush_dirty(TlbFlush::All);
    Ok(())
}

/// The recipient's side: commits entry `gref` (which must offer exactly
/// a transfer from `from`), takes the page, and completes the entry.
fn accept(
    e: &mut Domain,
    mem: &mut dyn crate::mm::MachineMemory,
    ft: &mut crate::mm::frame_table::FrameTable,
    m2p: crate::mm::m2p::M2p,
    from: DomId,
    gref: u32,
    mfn: Mfn,
) -> Result<(), GntStatus> {
    let gt = &e.gnttab;
    let (frame, off) = gt.header_at(gref).map_err(|_| GNTST_GENERAL_ERROR)?;
    let header = u32_at(mem, frame, off).ok_or(GNTST_GENERAL_ERROR)?;
    let offered = (u32::from(from) << 16) | GTF_ACCEPT_TRANSFER;
    let committed = offered | GTF_TRANSFER_COMMITTED;
    // The guest may race us: a few tries, then the entry is unstable.
    let ok = (0..5).any(|_| header.compare_exchange(offered, committed, SeqCst, SeqCst).is_ok());
    if !ok {
        return Err(GNTST_GENERAL_ERROR);
    }
    ft.assign_page(mfn, e.id, &mut e.page_list).map_err(|_| GNTST_GENERAL_ERROR)?;
    let version2 = gt.version == 2;
    let entry = gt.entry(mem, gref).map_err(|_| GNTST_GENERAL_ERROR)?;
    m2p.set(mem, mfn, Some(Pfn(entry.map_frame())));
    if let Some(b) = mem.frame_mut(frame) {
        if version2 {
            b[off + 8..off + 16].copy_from_slice(&mfn.0.to_le_bytes());
        } else {
            b[off + 4..off + 8].copy_from_slice(&(mfn.0 as u32).to_le_bytes());
        }
    }
    if let Some(flags) = u16_at(mem, frame, off) {
        flags.fetch_or(GTF_TRANSFER_COMPLETED as u16, SeqCst);
    }
    Ok(())
}
