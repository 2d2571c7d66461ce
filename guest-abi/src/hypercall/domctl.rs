//! Wrappers for `domctl` (`domctl.h`) and `sysctl` (`sysctl.h`): domain
//! and system control, for a privileged domain.

use super::{arg_mut, hypercall1, result};
use crate::domctl::*;
use crate::errno::XenError;
use crate::sysctl::{
    XenSysctl, XenSysctlGetdomaininfolist, XenSysctlPhysinfo, XEN_SYSCTL_GETDOMAININFOLIST, XEN_SYSCTL_PHYSINFO,
};
use crate::xen::{HYPERVISOR_DOMCTL, HYPERVISOR_SYSCTL};

/// `HYPERVISOR_domctl(op)`: the operation's OUT fields land in `op`.
pub fn domctl(op: &mut XenDomctl) -> Result<(), XenError> {
    // SAFETY: `op` is valid for reading and writing during the call; the
    // operations that write guest memory elsewhere take their own handles.
    result(unsafe { hypercall1(HYPERVISOR_DOMCTL, arg_mut(op)) }).map(drop)
}

fn credit_op(domid: u16, cmd: u32, credit: XenDomctlSchedCredit) -> Result<XenDomctlSchedCredit, XenError> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, domid);
    let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, u: [0; 2] };
    s.set_credit(credit);
    op.set_scheduler_op(s);
    domctl(&mut op)?;
    Ok(op.scheduler_op().credit())
}

/// `XEN_DOMCTL_SCHEDOP_getinfo` of the credit scheduler: `domid`'s weight
/// and cap.
pub fn sched_credit_get(domid: u16) -> Result<XenDomctlSchedCredit, XenError> {
    credit_op(domid, XEN_DOMCTL_SCHEDOP_GETINFO, XenDomctlSchedCredit { weight: 0, cap: 0 })
}

/// `XEN_DOMCTL_SCHEDOP_putinfo` of the credit scheduler: sets `domid`'s
/// weight (0 keeps it) and cap (0xffff keeps it).
pub fn sched_credit_set(domid: u16, weight: u16, cap: u16) -> Result<(), XenError> {
    credit_op(domid, XEN_DOMCTL_SCHEDOP_PUTINFO, XenDomctlSchedCredit { weight, cap }).map(drop)
}

/// `XEN_DOMCTL_createdomain` with `config`: the new domain's ID (`domid`
/// 0 lets the hypervisor choose it). The domain starts paused, without
/// memory, until the toolstack builds and unpauses it.
pub fn domain_create(domid: u16, config: XenDomctlCreatedomain) -> Result<u16, XenError> {
    let mut op = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, domid);
    op.set_createdomain(config);
    domctl(&mut op)?;
    Ok(op.domain)
}

/// `XEN_DOMCTL_destroydomain`: tears `domid` down; its frames return to
/// the hypervisor once nobody maps them.
pub fn domain_destroy(domid: u16) -> Result<(), XenError> {
    domctl(&mut XenDomctl::new(XEN_DOMCTL_DESTROYDOMAIN, domid))
}

/// `XEN_DOMCTL_pausedomain`: one more toolstack pause of `domid`.
pub fn domain_pause(domid: u16) -> Result<(), XenError> {
    domctl(&mut XenDomctl::new(XEN_DOMCTL_PAUSEDOMAIN, domid))
}

/// `XEN_DOMCTL_unpausedomain`: drops one toolstack pause of `domid`.
pub fn domain_unpause(domid: u16) -> Result<(), XenError> {
    domctl(&mut XenDomctl::new(XEN_DOMCTL_UNPAUSEDOMAIN, domid))
}

/// `XEN_DOMCTL_getdomaininfo`: the first domain whose ID is `domid` or
/// more.
pub fn domain_getinfo(domid: u16) -> Result<XenDomctlGetdomaininfo, XenError> {
    let mut op = XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, domid);
    domctl(&mut op)?;
    Ok(op.getdomaininfo())
}

/// `XEN_DOMCTL_max_mem`: `domid` may own at most `max_kib` KiB.
pub fn domain_max_mem(domid: u16, max_kib: u64) -> Result<(), XenError> {
    let mut op = XenDomctl::new(XEN_DOMCTL_MAX_MEM, domid);
    op.set_max_mem(XenDomctlMaxMem { max_memkb: max_kib });
    domctl(&mut op)
}

/// `XEN_DOMCTL_max_vcpus`: creates `domid`'s `max` vCPUs (the number
/// given at `createdomain`), down until given a context.
pub fn domain_max_vcpus(domid: u16, max: u32) -> Result<(), XenError> {
    let mut op = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, domid);
    op.set_max_vcpus(XenDomctlMaxVcpus { max });
    domctl(&mut op)
}

/// `XEN_DOMCTL_setvcpucontext`: vCPU `vcpu` of `domid` starts from
/// `context` once the domain is unpaused.
pub fn domain_set_vcpu_context(
    domid: u16,
    vcpu: u32,
    context: &crate::arch_x86::VcpuGuestContext,
) -> Result<(), XenError> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SETVCPUCONTEXT, domid);
    let ctxt = crate::arch_x86::GuestHandle::from_ptr(context);
    op.set_vcpucontext(XenDomctlVcpucontext { vcpu, _pad0: [0; 4], ctxt });
    domctl(&mut op)
}

/// `HYPERVISOR_sysctl(op)`: the operation's OUT fields land in `op`.
pub fn sysctl(op: &mut XenSysctl) -> Result<(), XenError> {
    // SAFETY: `op` is valid for reading and writing during the call.
    result(unsafe { hypercall1(HYPERVISOR_SYSCTL, arg_mut(op)) }).map(drop)
}

/// `XEN_SYSCTL_physinfo`: the machine's CPUs and memory.
pub fn physinfo() -> Result<XenSysctlPhysinfo, XenError> {
    let mut op = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
    sysctl(&mut op)?;
    Ok(op.physinfo())
}

/// `XEN_SYSCTL_getdomaininfolist`: fills `infos` with the domains whose IDs
/// are `first` or more, in ID order; returns how many it wrote.
pub fn domain_list(first: u16, infos: &mut [XenDomctlGetdomaininfo]) -> Result<u32, XenError> {
    let mut op = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
    let list = XenSysctlGetdomaininfolist {
        first_domain: first,
        _pad0: [0; 2],
        max_domains: infos.len().min(u32::MAX as usize) as u32,
        buffer: crate::arch_x86::GuestHandle::from_mut_ptr(infos.as_mut_ptr()),
        num_domains: 0,
        _pad1: [0; 4],
    };
    op.set_getdomaininfolist(list);
    sysctl(&mut op)?;
    Ok(op.getdomaininfolist().num_domains)
}
