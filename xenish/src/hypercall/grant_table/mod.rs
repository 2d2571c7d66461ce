//! `grant_table_op`: the GNTTABOP_* commands, for grant tables version 1
//! and 2.
//!
//! Semantics and status codes: Xen 4.17 `xen/common/grant_table.c` and
//! `xen/arch/x86/pv/grant_table.c`. The hypercall returns 0 (or an errno
//! for a bad pointer or argument) and each operation of a batch reports its
//! own `GNTST_*` status. Batches are preemptible: after [`BATCH`]
//! operations the hypercall is continued with the rest, as Xen does. This
//! module serves the table-level commands (setup, size, versions, status
//! frames); mapping ([`map`]), copying ([`copy`]), transfer ([`transfer`]),
//! swapping ([`swap`]) and cache maintenance ([`cache_flush`]) have their
//! own.

mod cache_flush;
mod copy;
mod map;
mod swap;
mod transfer;

use guest_abi::errno::XenError;
use guest_abi::grant_table::*;
use guest_abi::xen::DOMID_SELF;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::xsm::Action;
use super::{Ctx, HcResult, Outcome, Peers};
use crate::domain::{DomId, Domain};
use crate::gnttab::{self, GntStatus};
use crate::mm::Mfn;

/// Operations of a batch served before the hypercall is continued.
const BATCH: u32 = 64;

/// The low bits of `cmd` name the command; the rest is a continuation's
/// argument, which only `cache_flush` has (`GNTTABOP_CMD_MASK`).
const CMD_MASK: u32 = (1 << 12) - 1;

/// `HYPERVISOR_grant_table_op(cmd, uop, count)`.
pub fn grant_table_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, uop, count, ..] = args;
    let (cmd, count) = (cmd as u32, count as u32);
    if (count as i32) < 0 {
        return Outcome::Return(XenError::Einval.to_ret());
    }
    let (op, opaque) = (cmd & CMD_MASK, cmd & !CMD_MASK);
    if op != GNTTABOP_CACHE_FLUSH && opaque != 0 {
        return Outcome::Return(XenError::Einval.to_ret());
    }
    match op {
        GNTTABOP_MAP_GRANT_REF => batch(ctx, op, uop, count, map::map_one),
        GNTTABOP_UNMAP_GRANT_REF => batch(ctx, op, uop, count, map::unmap_one),
        GNTTABOP_UNMAP_AND_REPLACE => batch(ctx, op, uop, count, map::unmap_and_replace_one),
        GNTTABOP_COPY => batch(ctx, op, uop, count, copy::copy_one),
        GNTTABOP_TRANSFER => batch(ctx, op, uop, count, transfer::transfer_one),
        GNTTABOP_SWAP_GRANT_REF => batch(ctx, op, uop, count, swap::swap_one),
        GNTTABOP_CACHE_FLUSH => cache_flush::cache_flush(ctx, uop, count, opaque >> 12),
        _ if count != 1 && is_single(op) => Outcome::Return(XenError::Einval.to_ret()),
        GNTTABOP_SETUP_TABLE => setup_table(ctx, uop).into(),
        GNTTABOP_QUERY_SIZE => query_size(ctx, uop).into(),
        GNTTABOP_SET_VERSION => set_version(ctx, uop).into(),
        GNTTABOP_GET_VERSION => get_version(ctx, uop).into(),
        GNTTABOP_GET_STATUS_FRAMES => get_status_frames(ctx, uop).into(),
        _ => Outcome::Return(XenError::Enosys.to_ret()),
    }
}

/// Commands that take exactly one argument struct.
fn is_single(cmd: u32) -> bool {
    matches!(cmd, GNTTABOP_SETUP_TABLE | GNTTABOP_QUERY_SIZE | GNTTABOP_GET_STATUS_FRAMES)
}

fn read<T: FromBytes + IntoBytes>(ctx: &mut Ctx, va: u64) -> Result<T, XenError> {
    ctx.guest().read(va).map_err(|_| XenError::Efault)
}

fn write<T: IntoBytes + Immutable>(ctx: &mut Ctx, va: u64, value: &T) -> Result<(), XenError> {
    ctx.guest().write(va, value).map_err(|_| XenError::Efault)
}

/// Runs `one` on each struct of a batch: copy in, serve, copy out; after
/// [`BATCH`] of them the rest is a continuation.
fn batch<T: FromBytes + IntoBytes + Immutable>(
    ctx: &mut Ctx,
    cmd: u32,
    uop: u64,
    count: u32,
    one: fn(&mut Ctx, &mut T),
) -> Outcome {
    let size = core::mem::size_of::<T>() as u64;
    for i in 0..count {
        let va = uop.wrapping_add(u64::from(i) * size);
        if i == BATCH {
            return Outcome::Continue([u64::from(cmd), va, u64::from(count - i), 0, 0]);
        }
        let mut op: T = match read(ctx, va) {
            Ok(op) => op,
            Err(e) => return Outcome::Return(e.to_ret()),
        };
        one(ctx, &mut op);
        if let Err(e) = write(ctx, va, &op) {
            return Outcome::Return(e.to_ret());
        }
    }
    Outcome::Return(0)
}

/// The domain `id` names: the caller (`me`) or one of its peers.
fn domain_mut<'b>(me: &'b mut Domain, peers: &'b mut Peers, id: DomId) -> Option<&'b mut Domain> {
    if id == me.id {
        Some(me)
    } else {
        peers.get_mut(id)
    }
}

fn setup_table(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabSetupTable = read(ctx, uop)?;
    op.status = match setup_frames(ctx, &op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
    write(ctx, uop, &op)?;
    Ok(0)
}

/// Grows the table to `op.nr_frames` (with its status frames on version
/// 2) and writes its frames to `frame_list`.
fn setup_frames(ctx: &mut Ctx, op: &GnttabSetupTable) -> Result<(), GntStatus> {
    if op.nr_frames > named_table(ctx, op.dom)?.max_frames() {
        return Err(GNTST_GENERAL_ERROR);
    }
    let id = if op.dom == DOMID_SELF { ctx.domain.id } else { op.dom };
    let owner = domain_mut(ctx.domain, &mut ctx.peers, id).ok_or(GNTST_BAD_DOMAIN)?;
    owner.gnttab.grow(op.nr_frames, ctx.mem, ctx.frames, ctx.ft)?;
    let frames: alloc::vec::Vec<Mfn> = owner.gnttab.frames.iter().take(op.nr_frames as usize).copied().collect();
    write_frames(ctx, op.frame_list, &frames)
}

/// Writes `frames` to the guest's list (`GNTST_bad_virt_addr` if it
/// cannot).
fn write_frames(ctx: &mut Ctx, list: guest_abi::GuestHandle<u64>, frames: &[Mfn]) -> Result<(), GntStatus> {
    for (i, mfn) in frames.iter().enumerate() {
        let va = list.element_addr(i as u64).ok_or(GNTST_BAD_VIRT_ADDR)?;
        write(ctx, va, &mfn.0).map_err(|_| GNTST_BAD_VIRT_ADDR)?;
    }
    Ok(())
}

fn query_size(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabQuerySize = read(ctx, uop)?;
    let table = named_table(ctx, op.dom).map(|t| (t.frames.len() as u32, t.max_frames()));
    (op.nr_frames, op.max_nr_frames, op.status) = match table {
        Ok((nr_frames, max_frames)) => (nr_frames, max_frames, GNTST_OKAY),
        Err(status) => (op.nr_frames, op.max_nr_frames, status),
    };
    write(ctx, uop, &op)?;
    Ok(0)
}

/// `GNTTABOP_set_version` of the caller's own table; the version it has
/// afterwards is written back whatever the result.
fn set_version(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabSetVersion = read(ctx, uop)?;
    let result = ctx.domain.gnttab.set_version(op.version, ctx.mem, ctx.frames, ctx.ft);
    op.version = u32::from(ctx.domain.gnttab.version);
    write(ctx, uop, &op)?;
    result.map(|()| 0)
}

fn get_version(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabGetVersion = read(ctx, uop)?;
    let version = ctx.target(op.dom, Action::Target)?.gnttab.version;
    op.version = u32::from(version);
    write(ctx, uop, &op)?;
    Ok(0)
}

/// `GNTTABOP_get_status_frames`: the table's first `nr_frames` status
/// frames (none on version 1: asking for any is `GNTST_general_error`).
fn get_status_frames(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabGetStatusFrames = read(ctx, uop)?;
    op.status = match status_frames(ctx, &op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
    write(ctx, uop, &op)?;
    Ok(0)
}

fn status_frames(ctx: &mut Ctx, op: &GnttabGetStatusFrames) -> Result<(), GntStatus> {
    let frames = named_table(ctx, op.dom)?.status_frames().to_vec();
    if op.nr_frames as usize > frames.len() {
        return Err(GNTST_GENERAL_ERROR);
    }
    write_frames(ctx, op.frame_list, frames.get(..op.nr_frames as usize).unwrap_or(&[]))
}

/// The grant table a `dom` argument names, in Xen's order: a domain that
/// does not exist is `GNTST_bad_domain`, another domain's table without
/// privilege `GNTST_permission_denied`.
fn named_table<'c>(ctx: &'c mut Ctx, dom: DomId) -> Result<&'c mut gnttab::GrantTable, GntStatus> {
    match ctx.target(dom, Action::Target) {
        Ok(d) => Ok(&mut d.gnttab),
        Err(XenError::Eperm) => Err(GNTST_PERMISSION_DENIED),
        Err(_) => Err(GNTST_BAD_DOMAIN),
    }
}

/// Releases what a use of `granter`'s grant `gref` held in its active
/// entry, and (for a transitive grant) the grant it passed on.
fn unpin_chain(ctx: &mut Ctx, granter: DomId, gref: u32, dec: u32) {
    let Some(g) = domain_mut(ctx.domain, &mut ctx.peers, granter) else { return };
    let Some(before) = gnttab::active::unpin(g, ctx.mem, gref, dec) else { return };
    if let Some((td, tgref)) = before.trans {
        if let Some(t) = domain_mut(ctx.domain, &mut ctx.peers, td) {
            gnttab::active::unpin(t, ctx.mem, tgref, dec);
        }
    }
}

#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
