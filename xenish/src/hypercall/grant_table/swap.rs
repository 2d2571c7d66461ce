//! `GNTTABOP_swap_grant_ref`: exchanges two entries of the caller's own
//! table (with their status words on version 2).
//!
//! Semantics and status codes: Xen 4.17 `swap_grant_ref`
//! (xen/common/grant_table.c): either reference beyond the table is
//! `GNTST_bad_gntref`, either in use `GNTST_eagain`; swapping a reference
//! with itself does nothing.

use guest_abi::grant_table::{GnttabSwapGrantRef, GNTST_BAD_GNTREF, GNTST_EAGAIN, GNTST_OKAY};

use super::Ctx;
use crate::gnttab::GntStatus;
use crate::mm::MachineMemory;

/// GNTTABOP_swap_grant_ref, one operation.
pub(super) fn swap_one(ctx: &mut Ctx, op: &mut GnttabSwapGrantRef) {
    op.status = match swap(ctx, op.ref_a, op.ref_b) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

fn swap(ctx: &mut Ctx, a: u32, b: u32) -> Result<(), GntStatus> {
    let gt = &ctx.domain.gnttab;
    let ea = gt.header_at(a).map_err(|_| GNTST_BAD_GNTREF)?;
    let eb = gt.header_at(b).map_err(|_| GNTST_BAD_GNTREF)?;
    if a == b {
        return Ok(());
    }
    if gt.active.contains_key(&a) || gt.active.contains_key(&b) {
        return Err(GNTST_EAGAIN);
    }
    let size = if gt.version == 2 { 16 } else { 8 };
    exchange(ctx.mem, ea, eb, size);
    if gt.version == 2 {
        if let (Ok(sa), Ok(sb)) = (gt.status_at(a), gt.status_at(b)) {
            exchange(ctx.mem, sa, sb, 2);
        }
    }
    Ok(())
}

/// Exchanges `size` bytes at two places of guest-shared frames.
fn exchange(
    mem: &mut dyn MachineMemory,
    (fa, oa): (crate::mm::Mfn, usize),
    (fb, ob): (crate::mm::Mfn, usize),
    size: usize,
) {
    let mut x = [0u8; 16];
    let mut y = [0u8; 16];
    let (Some(xa), Some(yb)) = (x.get_mut(..size), y.get_mut(..size)) else { return };
    let read = |mem: &dyn MachineMemory, f, o: usize, out: &mut [u8]| {
        mem.frame(f).and_then(|p| p.get(o..o + out.len())).map(|s| out.copy_from_slice(s)).is_some()
    };
    if !read(mem, fa, oa, xa) || !read(mem, fb, ob, yb) {
        return;
    }
    if let Some(p) = mem.frame_mut(fa).and_then(|p| p.get_mut(oa..oa + size)) {
        p.copy_from_slice(yb);
    }
    if let Some(p) = mem.frame_mut(fb).and_then(|p| p.get_mut(ob..ob + size)) {
        p.copy_from_slice(xa);
    }
}
