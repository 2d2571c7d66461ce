//! Wrappers for `memory_op` (`memory.h`).

use zerocopy::{FromZeros, IntoBytes};

use super::{arg, hypercall2, result, struct_op};
use crate::arch_x86::GuestHandle;
use crate::errno::XenError;
use crate::memory::{self as m, *};
use crate::xen::{DOMID_SELF, HYPERVISOR_MEMORY_OP};

/// `memory_op(cmd, arg)` with a plain (read-only or value) argument.
///
/// # Safety
/// `arg` must be what `cmd` takes, and its effect must not break memory
/// Rust code relies on.
unsafe fn memory_op(cmd: u32, arg: u64) -> Result<u64, XenError> {
    // SAFETY: forwarded contract.
    result(unsafe { hypercall2(HYPERVISOR_MEMORY_OP, cmd.into(), arg) })
}

fn reservation_arg(extents: &mut [u64], order: u32, mem_flags: u32) -> MemoryReservation {
    let mut r = MemoryReservation::new_zeroed();
    r.extent_start = GuestHandle::from_mut_ptr(extents.as_mut_ptr());
    r.nr_extents = extents.len() as u64;
    r.extent_order = order;
    r.mem_flags = mem_flags;
    r.domid = DOMID_SELF;
    r
}

/// `XENMEM_increase_reservation`: allocates extents of `2^order` frames;
/// their MFNs are written to `extents`. Returns the extents done.
pub fn increase_reservation(extents: &mut [u64], order: u32, mem_flags: u32) -> Result<u64, XenError> {
    let r = reservation_arg(extents, order, mem_flags);
    // SAFETY: the op only writes `extents` (new frames are not mapped).
    unsafe { memory_op(m::XENMEM_INCREASE_RESERVATION, arg(&r)) }
}

/// `XENMEM_decrease_reservation` of the frames (GMFNs) in `extents`:
/// extents done.
///
/// # Safety
/// The frames leave the domain: nothing may map or reference them.
pub unsafe fn decrease_reservation(extents: &mut [u64], order: u32) -> Result<u64, XenError> {
    let r = reservation_arg(extents, order, 0);
    // SAFETY: forwarded contract.
    unsafe { memory_op(m::XENMEM_DECREASE_RESERVATION, arg(&r)) }
}

/// `XENMEM_populate_physmap` of the pfns in `extents` (for PV, the new
/// MFNs are written back): extents done.
pub fn populate_physmap(extents: &mut [u64], order: u32, mem_flags: u32) -> Result<u64, XenError> {
    let r = reservation_arg(extents, order, mem_flags);
    // SAFETY: the op only writes `extents` (a PV guest maps frames itself).
    unsafe { memory_op(m::XENMEM_POPULATE_PHYSMAP, arg(&r)) }
}

/// `XENMEM_populate_physmap` for domain `domid` (a privileged domain
/// building another): extents of `2^order` frames at the pfns in
/// `extents`; for a PV domain the new MFNs are written back. Extents done.
pub fn populate_physmap_for(domid: u16, extents: &mut [u64], order: u32) -> Result<u64, XenError> {
    let mut r = reservation_arg(extents, order, 0);
    r.domid = domid;
    // SAFETY: the op only writes `extents`; the frames are the other domain's.
    unsafe { memory_op(m::XENMEM_POPULATE_PHYSMAP, arg(&r)) }
}

/// `XENMEM_exchange`: trades the frames of `exchange.in_` for new ones;
/// updates `nr_exchanged`.
///
/// # Safety
/// The input frames leave the domain: nothing may map or reference them;
/// both handles must point to arrays valid during the call.
pub unsafe fn memory_exchange(exchange: &mut MemoryExchange) -> Result<(), XenError> {
    // SAFETY: forwarded contract; `exchange` is valid for the call.
    unsafe { memory_op(m::XENMEM_EXCHANGE, exchange.as_mut_bytes().as_mut_ptr() as u64) }.map(drop)
}

/// `XENMEM_maximum_ram_page`: the highest machine frame with RAM.
pub fn maximum_ram_page() -> Result<u64, XenError> {
    // SAFETY: no argument.
    unsafe { memory_op(m::XENMEM_MAXIMUM_RAM_PAGE, 0) }
}

fn domain_query(cmd: u32, domid: u16) -> Result<u64, XenError> {
    let d = MemoryDomain { domid };
    // SAFETY: a query reading `d`.
    unsafe { memory_op(cmd, arg(&d)) }
}

/// `XENMEM_current_reservation` of `domid`, in pages.
pub fn current_reservation(domid: u16) -> Result<u64, XenError> {
    domain_query(m::XENMEM_CURRENT_RESERVATION, domid)
}

/// `XENMEM_maximum_reservation` of `domid`, in pages.
pub fn maximum_reservation(domid: u16) -> Result<u64, XenError> {
    domain_query(m::XENMEM_MAXIMUM_RESERVATION, domid)
}

/// `XENMEM_current_reservation` (or `maximum_` with `maximum`) of this
/// domain, in pages.
pub fn reservation(maximum: bool) -> Result<u64, XenError> {
    if maximum {
        maximum_reservation(DOMID_SELF)
    } else {
        current_reservation(DOMID_SELF)
    }
}

/// `XENMEM_maximum_gpfn` of this domain.
pub fn maximum_gpfn() -> Result<u64, XenError> {
    domain_query(m::XENMEM_MAXIMUM_GPFN, DOMID_SELF)
}

/// `XENMEM_machphys_mfn_list`: the frames of the M2P into `mfns`; how
/// many were written.
pub fn machphys_mfn_list(mfns: &mut [u64]) -> Result<u32, XenError> {
    let mut l = MachphysMfnList::new_zeroed();
    l.max_extents = mfns.len() as u32;
    l.extent_start = GuestHandle::from_mut_ptr(mfns.as_mut_ptr());
    struct_op(HYPERVISOR_MEMORY_OP, m::XENMEM_MACHPHYS_MFN_LIST, &mut l)?;
    Ok(l.nr_extents)
}

/// `XENMEM_machphys_mapping`: where the read-only M2P is.
pub fn machphys_mapping() -> Result<MachphysMapping, XenError> {
    let mut mm = MachphysMapping::new_zeroed();
    struct_op(HYPERVISOR_MEMORY_OP, m::XENMEM_MACHPHYS_MAPPING, &mut mm)?;
    Ok(mm)
}

/// `XENMEM_memory_map` (or `machine_memory_map` with `machine`, dom0
/// only) into `entries` (E820 entries of 20 bytes): how many.
pub fn memory_map(entries: &mut [u8], machine: bool) -> Result<u32, XenError> {
    let mut mm = MemoryMap::new_zeroed();
    mm.nr_entries = (entries.len() / 20) as u32;
    mm.buffer = GuestHandle::from_mut_ptr(entries.as_mut_ptr());
    let cmd = if machine { m::XENMEM_MACHINE_MEMORY_MAP } else { m::XENMEM_MEMORY_MAP };
    struct_op(HYPERVISOR_MEMORY_OP, cmd, &mut mm)?;
    Ok(mm.nr_entries)
}

/// `XENMEM_add_to_physmap`: maps frame `idx` of `space`
/// (`XENMAPSPACE_*`) at `gpfn` of this domain.
///
/// # Safety
/// Whatever was at `gpfn` is replaced: nothing may reference it.
pub unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), XenError> {
    let mut a = AddToPhysmap::new_zeroed();
    a.domid = DOMID_SELF;
    a.space = space;
    a.idx = idx;
    a.gpfn = gpfn;
    // SAFETY: forwarded contract.
    unsafe { memory_op(m::XENMEM_ADD_TO_PHYSMAP, arg(&a)) }.map(drop)
}

/// `XENMEM_add_to_physmap_batch`.
///
/// # Safety
/// As for [`add_to_physmap`], for every gpfn; the handles must point to
/// arrays of `size` entries valid during the call.
pub unsafe fn add_to_physmap_batch(batch: &mut AddToPhysmapBatch) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { memory_op(m::XENMEM_ADD_TO_PHYSMAP_BATCH, batch.as_mut_bytes().as_mut_ptr() as u64) }.map(drop)
}

/// `XENMEM_remove_from_physmap` of `gpfn` of this domain.
///
/// # Safety
/// Nothing may reference the frame at `gpfn`.
pub unsafe fn remove_from_physmap(gpfn: u64) -> Result<(), XenError> {
    let mut r = RemoveFromPhysmap::new_zeroed();
    r.domid = DOMID_SELF;
    r.gpfn = gpfn;
    // SAFETY: forwarded contract.
    unsafe { memory_op(m::XENMEM_REMOVE_FROM_PHYSMAP, arg(&r)) }.map(drop)
}

/// `XENMEM_get_pod_target` of `domid`.
pub fn get_pod_target(domid: u16) -> Result<PodTarget, XenError> {
    let mut t = PodTarget::new_zeroed();
    t.domid = domid;
    struct_op(HYPERVISOR_MEMORY_OP, m::XENMEM_GET_POD_TARGET, &mut t)?;
    Ok(t)
}

/// `XENMEM_set_pod_target` of `domid` to `target_pages`.
pub fn set_pod_target(domid: u16, target_pages: u64) -> Result<PodTarget, XenError> {
    let mut t = PodTarget::new_zeroed();
    t.domid = domid;
    t.target_pages = target_pages;
    struct_op(HYPERVISOR_MEMORY_OP, m::XENMEM_SET_POD_TARGET, &mut t)?;
    Ok(t)
}

/// `XENMEM_acquire_resource`: maps a resource's frames (e.g. another
/// domain's grant table).
///
/// # Safety
/// For a PV caller the frames listed in `frame_list` are written back; the
/// handle must point to `nr_frames` entries valid during the call.
pub unsafe fn acquire_resource(res: &mut MemAcquireResource) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { memory_op(m::XENMEM_ACQUIRE_RESOURCE, res.as_mut_bytes().as_mut_ptr() as u64) }.map(drop)
}

/// `XENMEM_get_vnumainfo` of this domain into the three arrays; the
/// topology's counts are in the returned struct.
pub fn get_vnumainfo(
    vdistance: &mut [u32],
    vcpu_to_vnode: &mut [u32],
    vmemrange: &mut [Vmemrange],
    nr_vnodes: u32,
) -> Result<VnumaTopologyInfo, XenError> {
    if vdistance.len() < (nr_vnodes as usize).pow(2) || vmemrange.len() < nr_vnodes as usize {
        return Err(XenError::Einval);
    }
    let mut t = VnumaTopologyInfo::new_zeroed();
    t.domid = DOMID_SELF;
    t.nr_vnodes = nr_vnodes;
    t.nr_vcpus = vcpu_to_vnode.len() as u32;
    t.nr_vmemranges = vmemrange.len() as u32;
    t.vdistance = GuestHandle::from_mut_ptr(vdistance.as_mut_ptr());
    t.vcpu_to_vnode = GuestHandle::from_mut_ptr(vcpu_to_vnode.as_mut_ptr());
    t.vmemrange = GuestHandle::from_mut_ptr(vmemrange.as_mut_ptr());
    struct_op(HYPERVISOR_MEMORY_OP, m::XENMEM_GET_VNUMAINFO, &mut t)?;
    Ok(t)
}
