//! `sched_op`: yield, shutdown and the shutdown code.

use guest_abi::errno::XenError;
use guest_abi::sched::{SchedShutdown, SCHEDOP_BLOCK, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD};

use super::{Ctx, HcResult, Outcome};
use crate::domain::ShutdownReason;

/// `HYPERVISOR_sched_op(cmd, arg)`.
pub fn sched_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    serve(ctx, cmd as u32, arg).into()
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    match cmd {
        SCHEDOP_YIELD => {
            if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
                v.yielded = true;
            }
            Ok(0)
        }
        SCHEDOP_BLOCK => {
            // Enable event delivery, then block; the scheduler lets the
            // vCPU go on at once if an upcall is already pending.
            let vcpu = ctx.vcpu;
            if let Some(mask) = ctx.mem.frame_mut(ctx.domain.shared_info).and_then(|f| f.get_mut(vcpu * 64 + 1)) {
                *mask = 0;
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(vcpu) {
                v.blocked = true;
            }
            Ok(0)
        }
        SCHEDOP_SHUTDOWN => {
            let req: SchedShutdown = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            ctx.domain.shutdown(ShutdownReason::from_code(req.reason));
            Ok(0)
        }
        SCHEDOP_SHUTDOWN_CODE => {
            let req: SchedShutdown = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            ctx.domain.shutdown_code = Some(req.reason as u8);
            Ok(0)
        }
        _ => Err(XenError::Enosys),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use crate::domain::DomainState;
    use guest_abi::xen::HYPERVISOR_SCHED_OP;

    const NR: u64 = HYPERVISOR_SCHED_OP as u64;

    #[test]
    fn every_shutdown_reason_is_recorded() {
        for (code, reason) in [
            (0, ShutdownReason::Poweroff),
            (1, ShutdownReason::Reboot),
            (2, ShutdownReason::Suspend),
            (3, ShutdownReason::Crash),
            (4, ShutdownReason::Watchdog),
            (5, ShutdownReason::SoftReset),
            (0x1ff, ShutdownReason::Other(0xff)),
        ] {
            let mut w = World::new(false);
            w.poke(BUF_VA, &(code as u32).to_le_bytes());
            assert_eq!(w.call_ret(NR, [SCHEDOP_SHUTDOWN as u64, BUF_VA, 0, 0, 0]), 0);
            assert_eq!(w.dom.state, DomainState::Shutdown(reason));
        }
    }

    #[test]
    fn block_unmasks_events_and_marks_the_vcpu() {
        let mut w = World::new(false);
        w.mem.0[8][1] = 1;
        assert_eq!(w.call_ret(NR, [SCHEDOP_BLOCK as u64, 0, 0, 0, 0]), 0);
        assert_eq!(w.mem.0[8][1], 0);
        assert!(w.dom.vcpus[0].blocked);
    }

    #[test]
    fn yield_code_and_errors() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(NR, [SCHEDOP_YIELD as u64, 0, 0, 0, 0]), 0);
        assert_eq!(w.call_ret(NR, [SCHEDOP_SHUTDOWN as u64, 0x10, 0, 0, 0]), -14);
        assert_eq!(w.dom.state, DomainState::Running);
        w.poke(BUF_VA, &3u32.to_le_bytes());
        assert_eq!(w.call_ret(NR, [SCHEDOP_SHUTDOWN_CODE as u64, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(w.dom.shutdown_code, Some(3));
        assert_eq!(w.dom.state, DomainState::Running);
        assert_eq!(w.call_ret(NR, [77, 0, 0, 0, 0]), -38);
    }
}
