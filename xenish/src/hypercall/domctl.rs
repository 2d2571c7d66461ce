//! `domctl`: the toolstack's domain-control operations, for a privileged
//! domain. xenish serves `XEN_DOMCTL_scheduler_op` with the credit
//! scheduler's interface (weight and cap, which are exactly its own
//! parameters); the other commands answer `-ENOSYS` until the toolstack
//! needs them.
//!
//! Semantics and errnos: Xen 4.17 `xen/common/domctl.c` (`do_domctl`:
//! interface version, then the domain, then the caller's privilege),
//! `xen/common/sched/core.c` (`sched_adjust`) and `sched/credit.c`
//! (`csched_dom_cntl`: a weight of 0 and a cap of 0xffff leave the value as
//! it is).

use guest_abi::domctl::*;
use guest_abi::errno::XenError;

use super::{Ctx, HcResult, Outcome};
use crate::sched::{SchedParams, Scheduler};

/// A `putinfo` cap that leaves the cap as it is.
const CAP_UNCHANGED: u16 = 0xffff;

/// `HYPERVISOR_domctl(op)`.
pub fn domctl(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    serve(ctx, args[0]).into()
}

fn serve(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut op: XenDomctl = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(XenError::Eacces);
    }
    let index = ctx.peers.index_of(op.domain, ctx.domain.id).ok_or(XenError::Esrch)?;
    if !ctx.domain.privileged {
        return Err(XenError::Eperm);
    }
    match op.cmd {
        XEN_DOMCTL_SCHEDULER_OP => {
            let mut s = op.scheduler_op();
            scheduler_op(ctx.sched, index, &mut s)?;
            op.set_scheduler_op(s);
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        _ => Err(XenError::Enosys),
    }
}

/// Gets or sets the credit parameters of the domain at `index`.
fn scheduler_op(sched: &mut Scheduler, index: usize, op: &mut XenDomctlSchedulerOp) -> Result<(), XenError> {
    if op.sched_id != XEN_SCHEDULER_CREDIT {
        return Err(XenError::Einval);
    }
    let current = sched.params(index).ok_or(XenError::Esrch)?;
    match op.cmd {
        XEN_DOMCTL_SCHEDOP_GETINFO => {
            op.set_credit(XenDomctlSchedCredit { weight: current.weight, cap: current.cap });
            Ok(())
        }
        XEN_DOMCTL_SCHEDOP_PUTINFO => {
            let asked = op.credit();
            let weight = if asked.weight != 0 { asked.weight } else { current.weight };
            let cap = if asked.cap != CAP_UNCHANGED { asked.cap } else { current.cap };
            sched.set_params(index, SchedParams { weight, cap });
            Ok(())
        }
        // Per-vCPU parameters are not the credit scheduler's.
        _ => Err(XenError::Einval),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA};
    use super::*;
    use crate::sched::VcpuRef;
    use guest_abi::xen::HYPERVISOR_DOMCTL;
    use zerocopy::FromBytes;

    const NR: u64 = HYPERVISOR_DOMCTL as u64;

    fn world() -> World {
        let mut w = World::new(true);
        w.peers.push(test_domain(4, false, 10..14, None, crate::mm::Mfn(15)));
        w.sched.add(VcpuRef { domain: 1, vcpu: 0 }, SchedParams { weight: 512, cap: 0 });
        w
    }

    fn credit(w: &mut World, domain: u16, cmd: u32, weight: u16, cap: u16) -> (i64, XenDomctlSchedCredit) {
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, domain);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, u: [0; 2] };
        s.set_credit(XenDomctlSchedCredit { weight, cap });
        op.set_scheduler_op(s);
        call(w, op)
    }

    fn call(w: &mut World, op: XenDomctl) -> (i64, XenDomctlSchedCredit) {
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&op));
        let ret = w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]);
        let back = XenDomctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenDomctl>())).unwrap();
        (ret, back.scheduler_op().credit())
    }

    #[test]
    fn gets_and_sets_credit_parameters() {
        let mut w = world();
        let (ret, c) = credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0);
        assert_eq!((ret, c.weight, c.cap), (0, 512, 0));
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 128, 25).0, 0);
        assert_eq!(w.sched.params(1), Some(SchedParams { weight: 128, cap: 25 }));
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 0, 50).0, 0, "weight 0 keeps the weight");
        assert_eq!(w.sched.params(1), Some(SchedParams { weight: 128, cap: 50 }));
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 300, 0xffff).0, 0, "cap 0xffff keeps the cap");
        assert_eq!(w.sched.params(1), Some(SchedParams { weight: 300, cap: 50 }));
        assert_eq!(credit(&mut w, 0, XEN_DOMCTL_SCHEDOP_PUTINFO, 1000, 0).0, 0, "its own parameters");
        assert_eq!(w.sched.params(0), Some(SchedParams { weight: 1000, cap: 0 }));
    }

    #[test]
    fn refuses_with_xens_errnos_and_changes_nothing() {
        let mut w = world();
        let before = (w.sched.params(0), w.sched.params(1));
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 4);
        op.interface_version = 0x14;
        assert_eq!(call(&mut w, op).0, -13, "another interface version: EACCES");
        assert_eq!(credit(&mut w, 9, XEN_DOMCTL_SCHEDOP_PUTINFO, 1, 1).0, -3, "no such domain: ESRCH");
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTVCPUINFO, 1, 1).0, -22, "per-vCPU: EINVAL");
        assert_eq!(credit(&mut w, 4, 99, 1, 1).0, -22, "unknown sub-op: EINVAL");
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 4);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_RTDS, cmd: XEN_DOMCTL_SCHEDOP_PUTINFO, u: [0; 2] };
        s.set_credit(XenDomctlSchedCredit { weight: 1, cap: 1 });
        op.set_scheduler_op(s);
        assert_eq!(call(&mut w, op).0, -22, "another scheduler: EINVAL");
        assert_eq!(call(&mut w, XenDomctl::new(XEN_DOMCTL_PAUSEDOMAIN, 4)).0, -38, "not served yet: ENOSYS");
        assert_eq!(w.call_ret(NR, [0x10, 0, 0, 0, 0]), -14, "bad pointer: EFAULT");
        w.dom.privileged = false;
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 1, 1).0, -1, "unprivileged: EPERM");
        assert_eq!((w.sched.params(0), w.sched.params(1)), before);
    }

    #[test]
    fn index_of_counts_around_the_caller() {
        let mut doms = [
            test_domain(7, false, 0..0, None, crate::mm::Mfn(0)),
            test_domain(2, false, 0..0, None, crate::mm::Mfn(0)),
            test_domain(5, false, 0..0, None, crate::mm::Mfn(0)),
        ];
        let Some((_, peers)) = super::super::Peers::split(&mut doms, 1) else { panic!("split") };
        assert_eq!([7, 2, 5, 9].map(|id| peers.index_of(id, 2)), [Some(0), Some(1), Some(2), None]);
    }
}
