//! Wrappers for `domctl` (`domctl.h`): domain control, for a privileged
//! domain.

use super::{arg_mut, hypercall1, result};
use crate::domctl::{
    XenDomctl, XenDomctlSchedCredit, XenDomctlSchedulerOp, XEN_DOMCTL_SCHEDOP_GETINFO, XEN_DOMCTL_SCHEDOP_PUTINFO,
    XEN_DOMCTL_SCHEDULER_OP, XEN_SCHEDULER_CREDIT,
};
use crate::errno::XenError;
use crate::xen::HYPERVISOR_DOMCTL;

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
