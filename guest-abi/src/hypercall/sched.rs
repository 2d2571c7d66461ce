//! Wrappers for `sched_op` (`sched.h`).

use zerocopy::FromZeros;

use super::{arg, hypercall2, result};
use crate::arch_x86::GuestHandle;
use crate::errno::XenError;
use crate::sched::{self as s, SchedPinOverride, SchedPoll, SchedRemoteShutdown, SchedShutdown, SchedWatchdog};
use crate::xen::HYPERVISOR_SCHED_OP;

/// `SCHEDOP_yield`.
pub fn sched_yield() -> Result<(), XenError> {
    // SAFETY: no argument.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_YIELD.into(), 0) }).map(drop)
}

/// `SCHEDOP_block`: enables events and waits for one.
pub fn sched_block() -> Result<(), XenError> {
    // SAFETY: no argument.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_BLOCK.into(), 0) }).map(drop)
}

/// `SCHEDOP_shutdown` with a `SHUTDOWN_*` reason (returns only for
/// `SHUTDOWN_suspend`, or on error).
pub fn sched_shutdown(reason: u32) -> Result<(), XenError> {
    let a = SchedShutdown { reason };
    // SAFETY: `a` is valid for the call.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_SHUTDOWN.into(), arg(&a)) }).map(drop)
}

/// `SCHEDOP_poll`: blocks until one of `ports` is pending or system time
/// `timeout_ns` (0: none).
pub fn sched_poll(ports: &[u32], timeout_ns: u64) -> Result<(), XenError> {
    let mut p = SchedPoll::new_zeroed();
    p.ports = GuestHandle::from_ptr(ports.as_ptr());
    p.nr_ports = ports.len() as u32;
    p.timeout = timeout_ns;
    // SAFETY: `p` and the port list are valid during the call.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_POLL.into(), arg(&p)) }).map(drop)
}

/// `SCHEDOP_remote_shutdown` of `domid` (privileged).
pub fn sched_remote_shutdown(domid: u16, reason: u32) -> Result<(), XenError> {
    let mut r = SchedRemoteShutdown::new_zeroed();
    r.domain_id = domid;
    r.reason = reason;
    // SAFETY: `r` is valid for the call.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_REMOTE_SHUTDOWN.into(), arg(&r)) }).map(drop)
}

/// `SCHEDOP_shutdown_code`: the reason reported if the domain dies later.
pub fn sched_shutdown_code(reason: u32) -> Result<(), XenError> {
    let a = SchedShutdown { reason };
    // SAFETY: `a` is valid for the call.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_SHUTDOWN_CODE.into(), arg(&a)) }).map(drop)
}

/// `SCHEDOP_watchdog`: arms watchdog `id` (0: a new one, whose id is
/// returned) for `timeout_s` seconds (0 destroys it).
pub fn sched_watchdog(id: u32, timeout_s: u32) -> Result<u64, XenError> {
    let w = SchedWatchdog { id, timeout: timeout_s };
    // SAFETY: `w` is valid for the call.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_WATCHDOG.into(), arg(&w)) })
}

/// `SCHEDOP_pin_override`: temporarily pins the vCPU to `pcpu` (-1 ends
/// it; hardware domain only).
pub fn sched_pin_override(pcpu: i32) -> Result<(), XenError> {
    let p = SchedPinOverride { pcpu };
    // SAFETY: `p` is valid for the call.
    result(unsafe { hypercall2(HYPERVISOR_SCHED_OP, s::SCHEDOP_PIN_OVERRIDE.into(), arg(&p)) }).map(drop)
}
