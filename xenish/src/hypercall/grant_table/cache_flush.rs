//! `GNTTABOP_cache_flush`: cache maintenance on a frame the caller owns or
//! has a grant mapped of, as Xen 4.17 answers it on x86.
//!
//! Semantics and errnos: Xen 4.17 `gnttab_cache_flush`, `cache_flush` and
//! `grant_map_exists` (xen/common/grant_table.c) with x86's cache helpers
//! (`asm/flushtlb.h`): a bad offset, length or op (`GNTTAB_CACHE_SOURCE_GREF`
//! included) is `-EINVAL`; an empty op does nothing (`-EILSEQ` if a
//! continuation's reference came with it); a frame beyond memory is
//! `-EINVAL`, one nobody owns `-EPERM`; another domain's frame needs a
//! grant of it in use by the caller (`-EINVAL` otherwise). On x86 cleaning
//! (with or without invalidating) succeeds and invalidating alone is
//! `-EOPNOTSUPP`. xenish's memory is coherent for every device it has, so
//! the cleaning itself is nothing to do. Errors end the batch.

use guest_abi::errno::XenError;
use guest_abi::grant_table::{GnttabCacheFlush, GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_INVAL};

use super::{domain_mut, read, Ctx, BATCH};
use crate::hypercall::{HcResult, Outcome};
use crate::mm::frame_table::Owner;
use crate::mm::{Mfn, PAGE_SIZE};

/// `GNTTABOP_cache_flush` on `count` ops at `uop`; `cur_ref` is where a
/// continued search for a grant starts (the command's upper bits).
pub(super) fn cache_flush(ctx: &mut Ctx, uop: u64, count: u32, cur_ref: u32) -> Outcome {
    let size = core::mem::size_of::<GnttabCacheFlush>() as u64;
    for i in 0..count {
        let va = uop.wrapping_add(u64::from(i) * size);
        if i == BATCH {
            let cmd = guest_abi::grant_table::GNTTABOP_CACHE_FLUSH;
            return Outcome::Continue([u64::from(cmd), va, u64::from(count - i), 0, 0]);
        }
        let op: GnttabCacheFlush = match read(ctx, va) {
            Ok(op) => op,
            Err(e) => return Outcome::Return(e.to_ret()),
        };
        let start = if i == 0 { cur_ref } else { 0 };
        if let Err(e) = flush_one(ctx, &op, start) {
            return Outcome::Return(e.to_ret());
        }
    }
    Outcome::Return(0)
}

fn flush_one(ctx: &mut Ctx, op: &GnttabCacheFlush, cur_ref: u32) -> HcResult {
    let (offset, length) = (usize::from(op.offset), usize::from(op.length));
    if offset >= PAGE_SIZE || offset + length > PAGE_SIZE || op.op & !(GNTTAB_CACHE_INVAL | GNTTAB_CACHE_CLEAN) != 0 {
        return Err(XenError::Einval);
    }
    if length == 0 || op.op == 0 {
        return if cur_ref == 0 { Ok(0) } else { Err(XenError::Eilseq) };
    }
    let mfn = Mfn::containing(op.a);
    let owner = match ctx.ft.info(mfn).map(|p| p.owner()) {
        None => return Err(XenError::Einval),
        Some(Owner::Domain(id)) => id,
        Some(_) => return Err(XenError::Eperm),
    };
    let me = ctx.domain.id;
    if owner != me {
        let d = domain_mut(ctx.domain, &mut ctx.peers, owner).ok_or(XenError::Eperm)?;
        let mapped = d.gnttab.active.range(cur_ref..).any(|(_, a)| a.user == me && a.mfn == mfn);
        if !mapped {
            return Err(XenError::Einval);
        }
    }
    if op.op == GNTTAB_CACHE_INVAL {
        // x86 has no invalidate-only (`invalidate_dcache_va_range`).
        return Err(XenError::Eopnotsupp);
    }
    Ok(0)
}
