//! Typed wrappers for the rest of the 64-bit PV hypercalls and sub-ops.

use zerocopy::{FromZeros, IntoBytes};

use super::{hypercall1, hypercall2, hypercall3, hypercall4, result};
use crate::errno::XenError;
use crate::grant_table as gt;
use crate::memory as mem;
use crate::physdev as pd;
use crate::sched;
use crate::vcpu;
use crate::version;
use crate::xen;

// ---- xen_version -------------------------------------------------------

fn version_into(cmd: u32, buf: &mut [u8]) -> Result<(), XenError> {
    // SAFETY: `buf` is at least as large as what `cmd` writes (callers pass
    // the exact xen_version struct or string size).
    result(unsafe { hypercall2(xen::HYPERVISOR_XEN_VERSION, cmd.into(), buf.as_mut_ptr() as u64) }).map(drop)
}

/// `XENVER_extraversion` (16 bytes, NUL-terminated).
pub fn xen_extraversion() -> Result<[u8; 16], XenError> {
    let mut b = [0u8; 16];
    version_into(version::XENVER_EXTRAVERSION, &mut b)?;
    Ok(b)
}

/// `XENVER_compile_info`.
pub fn xen_compile_info() -> Result<version::CompileInfo, XenError> {
    let mut ci = version::CompileInfo::new_zeroed();
    version_into(version::XENVER_COMPILE_INFO, ci.as_mut_bytes())?;
    Ok(ci)
}

/// `XENVER_capabilities` (1024 bytes).
pub fn xen_capabilities() -> Result<[u8; 1024], XenError> {
    let mut b = [0u8; 1024];
    version_into(version::XENVER_CAPABILITIES, &mut b)?;
    Ok(b)
}

/// `XENVER_changeset` (64 bytes).
pub fn xen_changeset() -> Result<[u8; 64], XenError> {
    let mut b = [0u8; 64];
    version_into(version::XENVER_CHANGESET, &mut b)?;
    Ok(b)
}

/// `XENVER_platform_parameters`: the start of the hypervisor hole.
pub fn xen_platform_parameters() -> Result<u64, XenError> {
    let mut p = version::PlatformParameters::new_zeroed();
    version_into(version::XENVER_PLATFORM_PARAMETERS, p.as_mut_bytes())?;
    Ok(p.virt_start)
}

/// `XENVER_pagesize`.
pub fn xen_pagesize() -> Result<u64, XenError> {
    // SAFETY: no argument.
    result(unsafe { hypercall2(xen::HYPERVISOR_XEN_VERSION, version::XENVER_PAGESIZE.into(), 0) })
}

/// `XENVER_guest_handle`: the domain's handle (UUID).
pub fn xen_guest_handle() -> Result<[u8; 16], XenError> {
    let mut b = [0u8; 16];
    version_into(version::XENVER_GUEST_HANDLE, &mut b)?;
    Ok(b)
}

// ---- sched_op ----------------------------------------------------------

/// `SCHEDOP_poll`: block until one of `ports` is pending or `timeout_ns`
/// (system time; 0 = none).
pub fn sched_poll(ports: &[u32], timeout_ns: u64) -> Result<(), XenError> {
    let mut p = sched::SchedPoll::new_zeroed();
    p.ports = ports.as_ptr() as u64;
    p.nr_ports = ports.len() as u32;
    p.timeout = timeout_ns;
    // SAFETY: `p` and the port list are valid during the call.
    result(unsafe { hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_POLL.into(), p.as_bytes().as_ptr() as u64) })
        .map(drop)
}

/// `SCHEDOP_remote_shutdown` (privileged).
pub fn sched_remote_shutdown(domid: u16, reason: u32) -> Result<(), XenError> {
    let mut r = sched::SchedRemoteShutdown::new_zeroed();
    r.domain_id = domid;
    r.reason = reason;
    // SAFETY: `r` is valid for the call.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_REMOTE_SHUTDOWN.into(), r.as_bytes().as_ptr() as u64)
    })
    .map(drop)
}

/// `SCHEDOP_shutdown_code`: the reason reported at the next shutdown.
pub fn sched_shutdown_code(reason: u32) -> Result<(), XenError> {
    let arg = sched::SchedShutdown { reason };
    // SAFETY: `arg` is valid for the call.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_SHUTDOWN_CODE.into(), arg.as_bytes().as_ptr() as u64)
    })
    .map(drop)
}

/// `SCHEDOP_watchdog`: arm watchdog `id` (0 = new) for `timeout_s`.
pub fn sched_watchdog(id: u32, timeout_s: u32) -> Result<u64, XenError> {
    let w = sched::SchedWatchdog { id, timeout: timeout_s };
    // SAFETY: `w` is valid for the call.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_WATCHDOG.into(), w.as_bytes().as_ptr() as u64)
    })
}

// ---- vcpu_op -----------------------------------------------------------

fn vcpu_op(cmd: u32, vcpu_id: u32, arg: u64) -> Result<u64, XenError> {
    // SAFETY: callers pass a pointer valid for `cmd`'s argument, or 0.
    result(unsafe { hypercall3(xen::HYPERVISOR_VCPU_OP, cmd.into(), vcpu_id.into(), arg) })
}

/// `VCPUOP_up`.
pub fn vcpu_up(vcpu_id: u32) -> Result<(), XenError> {
    vcpu_op(vcpu::VCPUOP_UP, vcpu_id, 0).map(drop)
}

/// `VCPUOP_down`.
pub fn vcpu_down(vcpu_id: u32) -> Result<(), XenError> {
    vcpu_op(vcpu::VCPUOP_DOWN, vcpu_id, 0).map(drop)
}

/// `VCPUOP_is_up`.
pub fn vcpu_is_up(vcpu_id: u32) -> Result<bool, XenError> {
    vcpu_op(vcpu::VCPUOP_IS_UP, vcpu_id, 0).map(|r| r != 0)
}

/// `VCPUOP_get_runstate_info`.
pub fn vcpu_runstate_info(vcpu_id: u32) -> Result<vcpu::VcpuRunstateInfo, XenError> {
    let mut info = vcpu::VcpuRunstateInfo::new_zeroed();
    vcpu_op(vcpu::VCPUOP_GET_RUNSTATE_INFO, vcpu_id, info.as_mut_bytes().as_mut_ptr() as u64)?;
    Ok(info)
}

/// `VCPUOP_register_runstate_memory_area`: keep `area` (a guest virtual
/// address of a `vcpu_runstate_info`) updated.
pub fn vcpu_register_runstate_area(vcpu_id: u32, area: u64) -> Result<(), XenError> {
    let arg = vcpu::VcpuRegisterRunstateMemoryArea { addr: area };
    vcpu_op(vcpu::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, vcpu_id, arg.as_bytes().as_ptr() as u64).map(drop)
}

/// `VCPUOP_set_periodic_timer`.
pub fn vcpu_set_periodic_timer(vcpu_id: u32, period_ns: u64) -> Result<(), XenError> {
    let arg = vcpu::VcpuSetPeriodicTimer { period_ns };
    vcpu_op(vcpu::VCPUOP_SET_PERIODIC_TIMER, vcpu_id, arg.as_bytes().as_ptr() as u64).map(drop)
}

/// `VCPUOP_stop_periodic_timer`.
pub fn vcpu_stop_periodic_timer(vcpu_id: u32) -> Result<(), XenError> {
    vcpu_op(vcpu::VCPUOP_STOP_PERIODIC_TIMER, vcpu_id, 0).map(drop)
}

/// `VCPUOP_set_singleshot_timer` at system time `timeout_abs_ns`.
pub fn vcpu_set_singleshot_timer(vcpu_id: u32, timeout_abs_ns: u64, flags: u32) -> Result<(), XenError> {
    let mut arg = vcpu::VcpuSetSingleshotTimer::new_zeroed();
    arg.timeout_abs_ns = timeout_abs_ns;
    arg.flags = flags;
    vcpu_op(vcpu::VCPUOP_SET_SINGLESHOT_TIMER, vcpu_id, arg.as_bytes().as_ptr() as u64).map(drop)
}

/// `VCPUOP_stop_singleshot_timer`.
pub fn vcpu_stop_singleshot_timer(vcpu_id: u32) -> Result<(), XenError> {
    vcpu_op(vcpu::VCPUOP_STOP_SINGLESHOT_TIMER, vcpu_id, 0).map(drop)
}

/// `VCPUOP_register_vcpu_info`: move vcpu_info to `offset` in frame `mfn`.
pub fn vcpu_register_vcpu_info(vcpu_id: u32, mfn: u64, offset: u32) -> Result<(), XenError> {
    let mut arg = vcpu::VcpuRegisterVcpuInfo::new_zeroed();
    arg.mfn = mfn;
    arg.offset = offset;
    vcpu_op(vcpu::VCPUOP_REGISTER_VCPU_INFO, vcpu_id, arg.as_bytes().as_ptr() as u64).map(drop)
}

/// `VCPUOP_send_nmi`.
pub fn vcpu_send_nmi(vcpu_id: u32) -> Result<(), XenError> {
    vcpu_op(vcpu::VCPUOP_SEND_NMI, vcpu_id, 0).map(drop)
}

/// `VCPUOP_register_vcpu_time_memory_area`: mirror vcpu_time_info at `area`.
pub fn vcpu_register_time_area(vcpu_id: u32, area: u64) -> Result<(), XenError> {
    let arg = vcpu::VcpuRegisterTimeMemoryArea { addr: area };
    vcpu_op(vcpu::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, vcpu_id, arg.as_bytes().as_ptr() as u64).map(drop)
}

// ---- memory_op ---------------------------------------------------------

fn memory_op(cmd: u32, arg: u64) -> Result<u64, XenError> {
    // SAFETY: callers pass a pointer valid for `cmd`'s argument.
    result(unsafe { hypercall2(xen::HYPERVISOR_MEMORY_OP, cmd.into(), arg) })
}

fn reservation_op(cmd: u32, extents: &mut [u64], order: u32) -> Result<u64, XenError> {
    let mut r = mem::XenMemoryReservation::new_zeroed();
    r.extent_start = extents.as_mut_ptr() as u64;
    r.nr_extents = extents.len() as u64;
    r.extent_order = order;
    r.domid = xen::DOMID_SELF;
    memory_op(cmd, r.as_bytes().as_ptr() as u64)
}

/// `XENMEM_increase_reservation`: extents done; MFNs written to `extents`.
pub fn increase_reservation(extents: &mut [u64], order: u32) -> Result<u64, XenError> {
    reservation_op(mem::XENMEM_INCREASE_RESERVATION, extents, order)
}

/// `XENMEM_decrease_reservation` of the frames in `extents`: extents done.
pub fn decrease_reservation(extents: &mut [u64], order: u32) -> Result<u64, XenError> {
    reservation_op(mem::XENMEM_DECREASE_RESERVATION, extents, order)
}

/// `XENMEM_populate_physmap` of the pfns in `extents` (MFNs written back).
pub fn populate_physmap(extents: &mut [u64], order: u32) -> Result<u64, XenError> {
    reservation_op(mem::XENMEM_POPULATE_PHYSMAP, extents, order)
}

/// `XENMEM_maximum_ram_page`.
pub fn maximum_ram_page() -> Result<u64, XenError> {
    memory_op(mem::XENMEM_MAXIMUM_RAM_PAGE, 0)
}

/// `XENMEM_maximum_gpfn` of this domain.
pub fn maximum_gpfn() -> Result<u64, XenError> {
    let dom: u16 = xen::DOMID_SELF;
    memory_op(mem::XENMEM_MAXIMUM_GPFN, core::ptr::addr_of!(dom) as u64)
}

/// `XENMEM_machphys_mapping`: where the read-only M2P is.
pub fn machphys_mapping() -> Result<mem::XenMachphysMapping, XenError> {
    let mut m = mem::XenMachphysMapping::new_zeroed();
    memory_op(mem::XENMEM_MACHPHYS_MAPPING, m.as_mut_bytes().as_mut_ptr() as u64)?;
    Ok(m)
}

/// `XENMEM_memory_map` into `entries` (20-byte E820 entries): how many.
pub fn memory_map(entries: &mut [u8]) -> Result<u32, XenError> {
    let mut m = mem::XenMemoryMap::new_zeroed();
    m.nr_entries = (entries.len() / 20) as u32;
    m.buffer = entries.as_mut_ptr() as u64;
    memory_op(mem::XENMEM_MEMORY_MAP, m.as_mut_bytes().as_mut_ptr() as u64)?;
    Ok(m.nr_entries)
}

/// `XENMEM_add_to_physmap`: map `space`'s frame `idx` at `gpfn`.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), XenError> {
    let mut a = mem::XenAddToPhysmap::new_zeroed();
    a.domid = xen::DOMID_SELF;
    a.space = space;
    a.idx = idx;
    a.gpfn = gpfn;
    memory_op(mem::XENMEM_ADD_TO_PHYSMAP, a.as_bytes().as_ptr() as u64).map(drop)
}

// ---- grant_table_op ----------------------------------------------------

fn grant_op<T: IntoBytes>(cmd: u32, ops: &mut [T]) -> Result<(), XenError> {
    // SAFETY: `ops` is an array of the structs `cmd` takes, valid for
    // reading and writing during the call.
    result(unsafe { hypercall3(xen::HYPERVISOR_GRANT_TABLE_OP, cmd.into(), ops.as_mut_ptr() as u64, ops.len() as u64) })
        .map(drop)
}

/// `GNTTABOP_setup_table`: `frames.len()` frames; fills their MFNs. The
/// per-op status is in the returned struct.
pub fn gnttab_setup_table(frames: &mut [u64]) -> Result<gt::GnttabSetupTable, XenError> {
    let mut op = gt::GnttabSetupTable::new_zeroed();
    op.dom = xen::DOMID_SELF;
    op.nr_frames = frames.len() as u32;
    op.frame_list = frames.as_mut_ptr() as u64;
    grant_op(gt::GNTTABOP_SETUP_TABLE, core::slice::from_mut(&mut op))?;
    Ok(op)
}

/// `GNTTABOP_query_size`.
pub fn gnttab_query_size() -> Result<gt::GnttabQuerySize, XenError> {
    let mut op = gt::GnttabQuerySize::new_zeroed();
    op.dom = xen::DOMID_SELF;
    grant_op(gt::GNTTABOP_QUERY_SIZE, core::slice::from_mut(&mut op))?;
    Ok(op)
}

/// `GNTTABOP_set_version`.
pub fn gnttab_set_version(version: u32) -> Result<(), XenError> {
    let mut op = gt::GnttabSetVersion { version };
    grant_op(gt::GNTTABOP_SET_VERSION, core::slice::from_mut(&mut op))
}

/// `GNTTABOP_get_version` of this domain.
pub fn gnttab_get_version() -> Result<u32, XenError> {
    let mut op = gt::GnttabGetVersion::new_zeroed();
    op.dom = xen::DOMID_SELF;
    grant_op(gt::GNTTABOP_GET_VERSION, core::slice::from_mut(&mut op))?;
    Ok(op.version)
}

/// `GNTTABOP_map_grant_ref` for a batch (statuses in the structs).
pub fn gnttab_map(ops: &mut [gt::GnttabMapGrantRef]) -> Result<(), XenError> {
    grant_op(gt::GNTTABOP_MAP_GRANT_REF, ops)
}

/// `GNTTABOP_unmap_grant_ref` for a batch.
pub fn gnttab_unmap(ops: &mut [gt::GnttabUnmapGrantRef]) -> Result<(), XenError> {
    grant_op(gt::GNTTABOP_UNMAP_GRANT_REF, ops)
}

/// `GNTTABOP_copy` for a batch.
pub fn gnttab_copy(ops: &mut [gt::GnttabCopy]) -> Result<(), XenError> {
    grant_op(gt::GNTTABOP_COPY, ops)
}

// ---- physdev_op --------------------------------------------------------

fn physdev_op(cmd: u32, arg: u64) -> Result<(), XenError> {
    // SAFETY: callers pass a pointer valid for `cmd`'s argument.
    result(unsafe { hypercall2(xen::HYPERVISOR_PHYSDEV_OP, cmd.into(), arg) }).map(drop)
}

/// `PHYSDEVOP_set_iopl`.
pub fn physdev_set_iopl(iopl: u32) -> Result<(), XenError> {
    let arg = pd::PhysdevSetIopl { iopl };
    physdev_op(pd::PHYSDEVOP_SET_IOPL, arg.as_bytes().as_ptr() as u64)
}

/// `PHYSDEVOP_eoi` for `irq`.
pub fn physdev_eoi(irq: u32) -> Result<(), XenError> {
    let arg = pd::PhysdevEoi { irq };
    physdev_op(pd::PHYSDEVOP_EOI, arg.as_bytes().as_ptr() as u64)
}

// ---- descriptors, FPU, debug registers, segments ------------------------

/// `set_gdt(frames, entries)`: the guest's GDT in the given frames.
pub fn set_gdt(frames: &[u64], entries: u32) -> Result<(), XenError> {
    // SAFETY: the frame list is valid during the call.
    result(unsafe { hypercall2(xen::HYPERVISOR_SET_GDT, frames.as_ptr() as u64, entries.into()) }).map(drop)
}

/// `update_descriptor(ma, desc)`: write one descriptor at machine address `ma`.
pub fn update_descriptor(ma: u64, desc: u64) -> Result<(), XenError> {
    // SAFETY: plain values; the hypervisor validates them.
    result(unsafe { hypercall2(xen::HYPERVISOR_UPDATE_DESCRIPTOR, ma, desc) }).map(drop)
}

/// `fpu_taskswitch(set)`: set (1) or clear (0) the virtual CR0.TS.
pub fn fpu_taskswitch(set: bool) -> Result<(), XenError> {
    // SAFETY: plain value.
    result(unsafe { hypercall1(xen::HYPERVISOR_FPU_TASKSWITCH, u64::from(set)) }).map(drop)
}

/// `set_debugreg(reg, value)`.
pub fn set_debugreg(reg: u32, value: u64) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall2(xen::HYPERVISOR_SET_DEBUGREG, reg.into(), value) }).map(drop)
}

/// `get_debugreg(reg)`.
pub fn get_debugreg(reg: u32) -> Result<u64, XenError> {
    // SAFETY: plain value.
    result(unsafe { hypercall1(xen::HYPERVISOR_GET_DEBUGREG, reg.into()) })
}

/// `set_segment_base(which, base)` (`SEGBASE_*`).
pub fn set_segment_base(which: u32, base: u64) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall2(xen::HYPERVISOR_SET_SEGMENT_BASE, which.into(), base) }).map(drop)
}

/// `update_va_mapping_otherdomain(va, pte, flags, domid)`.
pub fn update_va_mapping_otherdomain(va: u64, pte: u64, flags: u64, domid: u16) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall4(xen::HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN, va, pte, flags, domid.into()) }).map(drop)
}

/// `vm_assist(VMASST_CMD_disable, type)`.
pub fn vm_assist_disable(typ: u32) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall2(xen::HYPERVISOR_VM_ASSIST, xen::VMASST_CMD_DISABLE.into(), typ.into()) }).map(drop)
}

/// `callback_op(CALLBACKOP_unregister)` (the NMI callback only, as on Xen).
pub fn unregister_callback(typ: u16) -> Result<(), XenError> {
    let mut arg = crate::callback::CallbackUnregister::new_zeroed();
    arg.type_ = typ;
    // SAFETY: `arg` is valid for the call.
    result(unsafe {
        hypercall2(
            xen::HYPERVISOR_CALLBACK_OP,
            crate::callback::CALLBACKOP_UNREGISTER.into(),
            arg.as_bytes().as_ptr() as u64,
        )
    })
    .map(drop)
}

/// `set_callbacks(event, failsafe, syscall)` (the older interface).
pub fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall3(xen::HYPERVISOR_SET_CALLBACKS, event, failsafe, syscall) }).map(drop)
}
