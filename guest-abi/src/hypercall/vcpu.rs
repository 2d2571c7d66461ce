//! Wrappers for `vcpu_op` (`vcpu.h`).

use zerocopy::{FromZeros, IntoBytes};

use super::{arg, hypercall3, result};
use crate::arch_x86::VcpuGuestContext;
use crate::errno::XenError;
use crate::vcpu::{self as v, *};
use crate::xen::HYPERVISOR_VCPU_OP;

/// `vcpu_op(cmd, vcpu_id, arg)`.
///
/// # Safety
/// `arg` must be 0 or point to what `cmd` takes, valid during the call,
/// and the effect must not break memory Rust code relies on.
unsafe fn vcpu_op(cmd: u32, vcpu_id: u32, arg: u64) -> Result<u64, XenError> {
    // SAFETY: forwarded contract.
    result(unsafe { hypercall3(HYPERVISOR_VCPU_OP, cmd.into(), vcpu_id.into(), arg) })
}

/// `VCPUOP_initialise`: the initial state of a vCPU that is not up yet.
///
/// # Safety
/// The context's stack, page tables, entry point and callbacks must be
/// ready for the vCPU to run on.
pub unsafe fn vcpu_initialise(vcpu_id: u32, ctx: &VcpuGuestContext) -> Result<(), XenError> {
    // SAFETY: forwarded contract; `ctx` is valid during the call.
    unsafe { vcpu_op(v::VCPUOP_INITIALISE, vcpu_id, ctx.as_bytes().as_ptr() as u64) }.map(drop)
}

/// `VCPUOP_up`.
///
/// # Safety
/// The vCPU starts running the context given to [`vcpu_initialise`].
pub unsafe fn vcpu_up(vcpu_id: u32) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    unsafe { vcpu_op(v::VCPUOP_UP, vcpu_id, 0) }.map(drop)
}

/// `VCPUOP_down`.
pub fn vcpu_down(vcpu_id: u32) -> Result<(), XenError> {
    // SAFETY: stopping a vCPU affects no memory.
    unsafe { vcpu_op(v::VCPUOP_DOWN, vcpu_id, 0) }.map(drop)
}

/// `VCPUOP_is_up`.
pub fn vcpu_is_up(vcpu_id: u32) -> Result<bool, XenError> {
    // SAFETY: a query without argument.
    unsafe { vcpu_op(v::VCPUOP_IS_UP, vcpu_id, 0) }.map(|r| r != 0)
}

/// `VCPUOP_get_runstate_info`.
pub fn vcpu_runstate_info(vcpu_id: u32) -> Result<VcpuRunstateInfo, XenError> {
    let mut info = VcpuRunstateInfo::new_zeroed();
    // SAFETY: the op writes `info` only.
    unsafe { vcpu_op(v::VCPUOP_GET_RUNSTATE_INFO, vcpu_id, info.as_mut_bytes().as_mut_ptr() as u64) }?;
    Ok(info)
}

/// `VCPUOP_register_runstate_memory_area`: the hypervisor keeps the
/// `vcpu_runstate_info` at guest virtual address `area` updated.
///
/// # Safety
/// `area` must stay mapped and reserved for the hypervisor's writes.
pub unsafe fn vcpu_register_runstate_area(vcpu_id: u32, area: u64) -> Result<(), XenError> {
    let a = VcpuRegisterRunstateMemoryArea { addr: area };
    // SAFETY: forwarded contract.
    unsafe { vcpu_op(v::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, vcpu_id, arg(&a)) }.map(drop)
}

/// `VCPUOP_set_periodic_timer`: `VIRQ_TIMER` every `period_ns`.
pub fn vcpu_set_periodic_timer(vcpu_id: u32, period_ns: u64) -> Result<(), XenError> {
    let a = VcpuSetPeriodicTimer { period_ns };
    // SAFETY: the op reads `a` only.
    unsafe { vcpu_op(v::VCPUOP_SET_PERIODIC_TIMER, vcpu_id, arg(&a)) }.map(drop)
}

/// `VCPUOP_stop_periodic_timer`.
pub fn vcpu_stop_periodic_timer(vcpu_id: u32) -> Result<(), XenError> {
    // SAFETY: no argument.
    unsafe { vcpu_op(v::VCPUOP_STOP_PERIODIC_TIMER, vcpu_id, 0) }.map(drop)
}

/// `VCPUOP_set_singleshot_timer` at system time `timeout_abs_ns` (flags:
/// `VCPU_SSHOTTMR_future` fails with `-ETIME` if it is already past).
pub fn vcpu_set_singleshot_timer(vcpu_id: u32, timeout_abs_ns: u64, flags: u32) -> Result<(), XenError> {
    let mut a = VcpuSetSingleshotTimer::new_zeroed();
    a.timeout_abs_ns = timeout_abs_ns;
    a.flags = flags;
    // SAFETY: the op reads `a` only.
    unsafe { vcpu_op(v::VCPUOP_SET_SINGLESHOT_TIMER, vcpu_id, arg(&a)) }.map(drop)
}

/// `VCPUOP_stop_singleshot_timer`.
pub fn vcpu_stop_singleshot_timer(vcpu_id: u32) -> Result<(), XenError> {
    // SAFETY: no argument.
    unsafe { vcpu_op(v::VCPUOP_STOP_SINGLESHOT_TIMER, vcpu_id, 0) }.map(drop)
}

/// `VCPUOP_register_vcpu_info`: moves the vCPU's `vcpu_info` to `offset`
/// in frame `mfn`.
///
/// # Safety
/// That memory must stay mapped and reserved for the `vcpu_info`.
pub unsafe fn vcpu_register_vcpu_info(vcpu_id: u32, mfn: u64, offset: u32) -> Result<(), XenError> {
    let a = VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 };
    // SAFETY: forwarded contract.
    unsafe { vcpu_op(v::VCPUOP_REGISTER_VCPU_INFO, vcpu_id, arg(&a)) }.map(drop)
}

/// `VCPUOP_send_nmi` to `vcpu_id`.
pub fn vcpu_send_nmi(vcpu_id: u32) -> Result<(), XenError> {
    // SAFETY: no argument; the NMI goes to the registered NMI callback.
    unsafe { vcpu_op(v::VCPUOP_SEND_NMI, vcpu_id, 0) }.map(drop)
}

/// `VCPUOP_get_physid`: the physical CPU id (dom0 only).
pub fn vcpu_get_physid(vcpu_id: u32) -> Result<u64, XenError> {
    let mut p = VcpuGetPhysid { phys_id: 0 };
    // SAFETY: the op writes `p` only.
    unsafe { vcpu_op(v::VCPUOP_GET_PHYSID, vcpu_id, p.as_mut_bytes().as_mut_ptr() as u64) }?;
    Ok(p.phys_id)
}

/// `VCPUOP_register_vcpu_time_memory_area`: the hypervisor mirrors the
/// `vcpu_time_info` at guest virtual address `area`.
///
/// # Safety
/// `area` must stay mapped and reserved for the hypervisor's writes.
pub unsafe fn vcpu_register_time_area(vcpu_id: u32, area: u64) -> Result<(), XenError> {
    let a = VcpuRegisterTimeMemoryArea { addr: area };
    // SAFETY: forwarded contract.
    unsafe { vcpu_op(v::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, vcpu_id, arg(&a)) }.map(drop)
}
