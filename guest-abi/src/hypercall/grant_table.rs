//! Wrappers for `grant_table_op` (`grant_table.h`). Batched ops report a
//! status per op (`GNTST_*`, see [`GntStatus`](crate::grant_table::GntStatus))
//! in addition to the hypercall's result.

use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::{hypercall3, result};
use crate::arch_x86::GuestHandle;
use crate::errno::XenError;
use crate::grant_table::{self as gt, *};
use crate::xen::{DOMID_SELF, HYPERVISOR_GRANT_TABLE_OP};

/// `grant_table_op(cmd, ops, count)`.
///
/// # Safety
/// `cmd` must take `T`, and its effect must not break memory Rust code
/// relies on.
unsafe fn grant_op<T: IntoBytes + FromBytes>(cmd: u32, ops: &mut [T]) -> Result<(), XenError> {
    // SAFETY: `ops` is valid for reading and writing during the call; the
    // caller vouches for `cmd` and its effect.
    result(unsafe { hypercall3(HYPERVISOR_GRANT_TABLE_OP, cmd.into(), ops.as_mut_ptr() as u64, ops.len() as u64) })
        .map(drop)
}

/// `GNTTABOP_setup_table`: `frames.len()` frames of this domain's grant
/// table, their MFNs written to `frames`; the op (with its status).
pub fn gnttab_setup_table(frames: &mut [u64]) -> Result<GnttabSetupTable, XenError> {
    let mut op = GnttabSetupTable::new_zeroed();
    op.dom = DOMID_SELF;
    op.nr_frames = frames.len() as u32;
    op.frame_list = GuestHandle::from_mut_ptr(frames.as_mut_ptr());
    // SAFETY: the op only writes `frames`.
    unsafe { grant_op(gt::GNTTABOP_SETUP_TABLE, core::slice::from_mut(&mut op)) }?;
    Ok(op)
}

/// `GNTTABOP_dump_table` of `dom` (to the hypervisor console).
pub fn gnttab_dump_table(dom: u16) -> Result<GnttabDumpTable, XenError> {
    let mut op = GnttabDumpTable { dom, status: 0 };
    // SAFETY: the op only logs.
    unsafe { grant_op(gt::GNTTABOP_DUMP_TABLE, core::slice::from_mut(&mut op)) }?;
    Ok(op)
}

/// `GNTTABOP_map_grant_ref` for a batch (statuses and handles in the ops).
///
/// # Safety
/// With `GNTMAP_host_map`, each op maps a foreign frame at `host_addr`
/// (or through the PTE it names): nothing Rust code references may be
/// there.
pub unsafe fn gnttab_map(ops: &mut [GnttabMapGrantRef]) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { grant_op(gt::GNTTABOP_MAP_GRANT_REF, ops) }
}

/// `GNTTABOP_unmap_grant_ref` for a batch.
///
/// # Safety
/// Nothing may still reference the mappings being removed.
pub unsafe fn gnttab_unmap(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { grant_op(gt::GNTTABOP_UNMAP_GRANT_REF, ops) }
}

/// `GNTTABOP_unmap_and_replace` for a batch.
///
/// # Safety
/// As for [`gnttab_unmap`], and `new_addr`'s mapping moves.
pub unsafe fn gnttab_unmap_and_replace(ops: &mut [GnttabUnmapAndReplace]) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { grant_op(gt::GNTTABOP_UNMAP_AND_REPLACE, ops) }
}

/// `GNTTABOP_transfer` for a batch.
///
/// # Safety
/// Each op gives frame `mfn` away: nothing may reference it any more.
pub unsafe fn gnttab_transfer(ops: &mut [GnttabTransfer]) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { grant_op(gt::GNTTABOP_TRANSFER, ops) }
}

/// `GNTTABOP_copy` for a batch (statuses in the ops). Destinations given
/// by frame (not grant) are this domain's memory, written behind Rust's
/// back: use frames that nothing else references.
///
/// # Safety
/// Every local destination frame must be free of live Rust references.
pub unsafe fn gnttab_copy(ops: &mut [GnttabCopy]) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { grant_op(gt::GNTTABOP_COPY, ops) }
}

/// `GNTTABOP_query_size` of this domain.
pub fn gnttab_query_size() -> Result<GnttabQuerySize, XenError> {
    let mut op = GnttabQuerySize::new_zeroed();
    op.dom = DOMID_SELF;
    // SAFETY: the op only writes itself.
    unsafe { grant_op(gt::GNTTABOP_QUERY_SIZE, core::slice::from_mut(&mut op)) }?;
    Ok(op)
}

/// `GNTTABOP_set_version` (1 or 2).
pub fn gnttab_set_version(version: u32) -> Result<(), XenError> {
    let mut op = GnttabSetVersion { version };
    // SAFETY: the op only changes the table's format.
    unsafe { grant_op(gt::GNTTABOP_SET_VERSION, core::slice::from_mut(&mut op)) }
}

/// `GNTTABOP_get_version` of this domain.
pub fn gnttab_get_version() -> Result<u32, XenError> {
    let mut op = GnttabGetVersion::new_zeroed();
    op.dom = DOMID_SELF;
    // SAFETY: the op only writes itself.
    unsafe { grant_op(gt::GNTTABOP_GET_VERSION, core::slice::from_mut(&mut op)) }?;
    Ok(op.version)
}

/// `GNTTABOP_get_status_frames` (v2): the status frames' addresses into
/// `frames`; the op (with its status).
pub fn gnttab_get_status_frames(frames: &mut [u64]) -> Result<GnttabGetStatusFrames, XenError> {
    let mut op = GnttabGetStatusFrames::new_zeroed();
    op.dom = DOMID_SELF;
    op.nr_frames = frames.len() as u32;
    op.frame_list = GuestHandle::from_mut_ptr(frames.as_mut_ptr());
    // SAFETY: the op only writes `frames`.
    unsafe { grant_op(gt::GNTTABOP_GET_STATUS_FRAMES, core::slice::from_mut(&mut op)) }?;
    Ok(op)
}

/// `GNTTABOP_swap_grant_ref`: swaps two of this domain's entries; the
/// op's status.
pub fn gnttab_swap_grant_ref(ref_a: u32, ref_b: u32) -> Result<i16, XenError> {
    let mut op = GnttabSwapGrantRef::new_zeroed();
    op.ref_a = ref_a;
    op.ref_b = ref_b;
    // SAFETY: the op only rewrites this domain's grant entries.
    unsafe { grant_op(gt::GNTTABOP_SWAP_GRANT_REF, core::slice::from_mut(&mut op)) }?;
    Ok(op.status)
}

/// `GNTTABOP_cache_flush` for a batch.
pub fn gnttab_cache_flush(ops: &mut [GnttabCacheFlush]) -> Result<(), XenError> {
    // SAFETY: cache maintenance changes no memory contents.
    unsafe { grant_op(gt::GNTTABOP_CACHE_FLUSH, ops) }
}
