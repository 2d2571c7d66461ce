//! `GNTTABOP_copy`: copies between frames named by grant reference (a
//! whole page, a version-2 sub-page, or a transitive grant passed on by
//! another domain) or, for the caller's own memory, by frame number.
//!
//! Semantics and status codes: Xen 4.17 `gnttab_copy_one`,
//! `gnttab_copy_claim_buf`, `gnttab_copy_buf`, `acquire_grant_for_copy`
//! and `release_grant_for_copy` (xen/common/grant_table.c), in Xen's
//! order: the domains, the source, the destination, then the bounds. A
//! transitive grant is followed one step only: the grant it names must
//! not be transitive itself, nor be the granter's own (no loops), and is
//! in use, by the transitive granter, while the copy runs.

use guest_abi::grant_table::*;
use guest_abi::xen::DOMID_SELF;

use super::{domain_mut, Ctx};
use crate::domain::DomId;
use crate::gnttab::active::{flags_to_clear, Active, HOST_R, HOST_W};
use crate::gnttab::entry::Body;
use crate::gnttab::GntStatus;
use crate::mm::frame_table::PageType;
use crate::mm::{Mfn, PAGE_SIZE};

/// GNTTABOP_copy, one operation.
pub(super) fn copy_one(ctx: &mut Ctx, op: &mut GnttabCopy) {
    op.status = match copy(ctx, op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

/// One side of a copy, resolved: the frame, the bytes of it the grant
/// covers, and for a grant what to release afterwards.
struct Buf {
    mfn: Mfn,
    start: usize,
    length: usize,
    grant: Option<(DomId, u32)>,
}

fn copy(ctx: &mut Ctx, op: &GnttabCopy) -> Result<(), GntStatus> {
    let src_gref = u32::from(op.flags) & GNTCOPY_SOURCE_GREF != 0;
    let dst_gref = u32::from(op.flags) & GNTCOPY_DEST_GREF != 0;
    for (ptr, is_gref) in [(&op.source, src_gref), (&op.dest, dst_gref)] {
        if !is_gref && ptr.domid != DOMID_SELF {
            return Err(GNTST_PERMISSION_DENIED);
        }
        resolve(ctx, ptr.domid)?;
    }
    let src = claim(ctx, &op.source, src_gref, true)?;
    let dst = match claim(ctx, &op.dest, dst_gref, false) {
        Ok(d) => d,
        Err(status) => {
            release(ctx, &src, true);
            return Err(status);
        }
    };
    let copied = copy_bytes(ctx, op, &src, &dst);
    release(ctx, &dst, false);
    release(ctx, &src, true);
    copied
}

/// The domain a copy side names (`GNTST_bad_domain` if none).
fn resolve(ctx: &mut Ctx, domid: DomId) -> Result<DomId, GntStatus> {
    let id = if domid == DOMID_SELF { ctx.domain.id } else { domid };
    domain_mut(ctx.domain, &mut ctx.peers, id).map(|d| d.id).ok_or(GNTST_BAD_DOMAIN)
}

/// Xen's `gnttab_copy_buf`: the bounds, then the bytes.
fn copy_bytes(ctx: &mut Ctx, op: &GnttabCopy, src: &Buf, dst: &Buf) -> Result<(), GntStatus> {
    let len = usize::from(op.len);
    let (src_off, dst_off) = (usize::from(op.source.offset), usize::from(op.dest.offset));
    if src_off + len > PAGE_SIZE || dst_off + len > PAGE_SIZE {
        return Err(GNTST_BAD_COPY_ARG);
    }
    let inside = |off: usize, b: &Buf| off >= b.start && off + len <= b.start + b.length;
    if !inside(src_off, src) || !inside(dst_off, dst) {
        return Err(GNTST_GENERAL_ERROR);
    }
    if ctx.mem.copy_bytes(src.mfn, src_off, dst.mfn, dst_off, len) {
        Ok(())
    } else {
        Err(GNTST_GENERAL_ERROR)
    }
}

/// Resolves one side of a copy (`gnttab_copy_claim_buf`): a grant made to
/// the caller, or (for DOMID_SELF only) one of the caller's own frames. A
/// destination must take a writable type (not a page table).
fn claim(ctx: &mut Ctx, ptr: &GnttabCopyPtr, is_gref: bool, readonly: bool) -> Result<Buf, GntStatus> {
    let buf = if is_gref {
        let me = ctx.domain.id;
        let granter = resolve(ctx, ptr.domid)?;
        let gref = ptr.gref();
        let (mfn, start, length) = acquire(ctx, granter, gref, me, readonly, true)?;
        Buf { mfn, start: usize::from(start), length: usize::from(length), grant: Some((granter, gref)) }
    } else {
        let mfn = Mfn(ptr.u);
        if !ctx.ft.is_owned_by(mfn, ctx.domain.id) {
            return Err(GNTST_BAD_PAGE);
        }
        Buf { mfn, start: 0, length: PAGE_SIZE, grant: None }
    };
    if !readonly && !takes_writable_type(ctx, buf.mfn) {
        release(ctx, &buf, readonly);
        return Err(GNTST_GENERAL_ERROR);
    }
    Ok(buf)
}

/// Whether `get_page_type(PGT_writable_page)` would succeed on `mfn`.
fn takes_writable_type(ctx: &Ctx, mfn: Mfn) -> bool {
    ctx.ft.info(mfn).is_some_and(|p| p.type_count() == 0 || p.page_type() == PageType::Writable)
}

fn release(ctx: &mut Ctx, buf: &Buf, readonly: bool) {
    if let Some((granter, gref)) = buf.grant {
        super::unpin_chain(ctx, granter, gref, if readonly { HOST_R } else { HOST_W });
    }
}

/// Xen's `acquire_grant_for_copy`: starts a copy's use by `user` of
/// `granter`'s grant `gref`; returns the frame and the bytes of it the
/// grant covers. A transitive grant (followed only when `transitive`)
/// takes a use of the grant it names, by the granter.
fn acquire(
    ctx: &mut Ctx,
    granter: DomId,
    gref: u32,
    user: DomId,
    readonly: bool,
    transitive: bool,
) -> Result<(Mfn, u16, u16), GntStatus> {
    let inc = if readonly { HOST_R } else { HOST_W };
    let g = domain_mut(ctx.domain, &mut ctx.peers, granter).ok_or(GNTST_BAD_DOMAIN)?;
    if g.is_destroyed() {
        return Err(GNTST_BAD_DOMAIN);
    }
    let gt = &g.gnttab;
    if gref >= gt.nr_entries() {
        return Err(GNTST_BAD_GNTREF);
    }
    let act = gt.active.get(&gref).copied();
    if act.is_some_and(|a| !a.admits(user, inc)) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let entry = gt.entry(ctx.mem, gref)?;
    let needs_status = act.is_none_or(|a| !readonly && !a.has_writers());
    let fail = |ctx: &mut Ctx, clear: u16, status: GntStatus| {
        if let Some(g) = domain_mut(ctx.domain, &mut ctx.peers, granter) {
            g.gnttab.clear_status(ctx.mem, gref, clear);
        }
        Err(status)
    };
    let clear_now = flags_to_clear(act.map_or(0, |a| a.pin), readonly);
    let first = match entry.body {
        Body::Transitive { domid: td, gref: tgref } if gt.version == 2 => {
            if needs_status {
                gt.set_status(ctx.mem, gref, user, act.is_some(), readonly, false)?;
            }
            let exists = td != granter && domain_mut(ctx.domain, &mut ctx.peers, td).is_some();
            if !transitive || !exists {
                // Not followed twice; never to the granter itself; only
                // to a domain that exists.
                return fail(ctx, clear_now, GNTST_GENERAL_ERROR);
            }
            match acquire(ctx, td, tgref, granter, readonly, false) {
                Ok((mfn, start, length)) => {
                    Active { mfn, start, length, sub_page: true, trans: Some((td, tgref)), ..Active::new(user, mfn) }
                }
                Err(status) => {
                    // Xen's fixup_status_for_copy_pin: the flags no use left
                    // needs, whatever this one asked for.
                    return fail(ctx, flags_to_clear(act.map_or(0, |a| a.pin), false), status);
                }
            }
        }
        _ if needs_status => {
            gt.set_status(ctx.mem, gref, user, act.is_some(), readonly, false)?;
            let (frame, start, length, sub_page) = match entry.body {
                Body::SubPage { offset, length, frame } => (frame, offset, length, true),
                _ => (entry.map_frame(), 0, PAGE_SIZE as u16, false),
            };
            let mfn = Mfn(frame);
            if !ctx.ft.is_owned_by(mfn, granter) {
                return fail(ctx, clear_now, GNTST_BAD_PAGE);
            }
            Active { start, length, sub_page, ..Active::new(user, mfn) }
        }
        _ => {
            let a = act.unwrap_or(Active::new(user, Mfn(u64::MAX)));
            if !ctx.ft.is_owned_by(a.mfn, granter) {
                return fail(ctx, clear_now, GNTST_BAD_DOMAIN);
            }
            a
        }
    };
    let g = domain_mut(ctx.domain, &mut ctx.peers, granter).ok_or(GNTST_BAD_DOMAIN)?;
    let a = g.gnttab.active.entry(gref).or_insert(first);
    a.pin = a.pin.wrapping_add(inc);
    Ok((a.mfn, a.start, a.length))
}
