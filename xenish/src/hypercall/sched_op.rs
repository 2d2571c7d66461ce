//! `sched_op`: yield, shutdown and the shutdown code.

use guest_abi::errno::XenError;
use guest_abi::sched::{
    SchedPoll, SchedShutdown, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD,
};

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
                v.note_exit_work();
            }
            Ok(0)
        }
        SCHEDOP_BLOCK => {
            // Enable event delivery, then block; the scheduler lets the
            // vCPU go on at once if an upcall is already pending.
            let vcpu = ctx.vcpu;
            let (info, offset) = ctx.domain.vcpu_info(vcpu);
            if let Some(mask) = ctx.mem.frame_mut(info).and_then(|f| f.get_mut(offset + 1)) {
                *mask = 0;
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(vcpu) {
                v.blocked = true;
                v.note_exit_work();
            }
            Ok(0)
        }
        SCHEDOP_POLL => poll(ctx, arg),
        SCHEDOP_SHUTDOWN => {
            let req: SchedShutdown = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            let reason = ShutdownReason::from_code(req.reason);
            if reason == ShutdownReason::Reboot && ctx.domain.id == 0 && ctx.is_privileged() {
                // Xen's hwdom_shutdown: the machine restarts.
                crate::acpi::request_restart();
            }
            ctx.domain.shutdown(reason);
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

/// Most ports one `SCHEDOP_poll` may wait for (Xen's limit).
const MAX_POLL_PORTS: u32 = 128;

/// `SCHEDOP_poll`: returns at once if a port is pending or an event can
/// be delivered, else sleeps until a port is pending (masked or not), an
/// event can be delivered, or the timeout passes. Does not unmask events.
/// The ports are looked at in order, as Xen's `do_poll` does: a port not
/// in use is `-EINVAL` (`evtchn_port_poll`), unless one before it is
/// pending already. Pending is judged through the domain's ABI.
fn poll(ctx: &mut Ctx, arg: u64) -> HcResult {
    let req: SchedPoll = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if req.nr_ports > MAX_POLL_PORTS {
        return Err(XenError::Einval);
    }
    // An event the vCPU can take now ends the poll at once, as in Xen's
    // do_poll (local_events_need_delivery); one arriving later wakes it
    // as a polled port does (System's timer check).
    if crate::system::upcall_deliverable(ctx.domain.vcpu_info(ctx.vcpu), ctx.mem) {
        return Ok(0);
    }
    let mut ports = alloc::vec::Vec::with_capacity(req.nr_ports as usize);
    for i in 0..u64::from(req.nr_ports) {
        let addr = req.ports.element_addr(i).ok_or(XenError::Efault)?;
        let port: u32 = ctx.guest().read(addr).map_err(|_| XenError::Efault)?;
        if !ctx.domain.evtchn.port(port).is_some_and(|p| p.binding.is_usable()) {
            return Err(XenError::Einval);
        }
        if crate::evtchn::port_is_pending(ctx.domain, ctx.mem, port) {
            return Ok(0);
        }
        ports.push(port);
    }
    let deadline = (req.timeout != 0).then_some(req.timeout);
    if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
        v.poll = Some((ports, deadline));
        v.note_exit_work();
    }
    Ok(0)
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
    fn poll_returns_at_once_or_sleeps_on_its_ports() {
        let mut w = World::new(false);
        let port = w.dom.evtchn.allocate(&mut w.mem, crate::evtchn::Binding::Ipi, 0).unwrap();
        let poll = |ports: u64, n: u32, timeout: u64| {
            let mut b = [0u8; 24];
            b[0..8].copy_from_slice(&ports.to_le_bytes());
            b[8..12].copy_from_slice(&n.to_le_bytes());
            b[16..24].copy_from_slice(&timeout.to_le_bytes());
            b
        };
        w.poke(BUF_VA + 64, &port.to_le_bytes());
        w.poke(BUF_VA, &poll(BUF_VA + 64, 1, 5_000_000));
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].poll, Some((vec![port], Some(5_000_000))));
        w.dom.vcpus[0].poll = None;
        crate::evtchn::port_set_pending(&mut w.dom, &mut w.mem, port);
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].poll, None, "already pending: no sleep");
        // The event made an upcall deliverable: even a bad port list
        // returns at once (Xen looks at local_events_need_delivery first).
        w.poke(BUF_VA + 64, &77u32.to_le_bytes());
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), 0, "an event to take");
        w.mem.0[8][1] = 1;
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), -22, "masked: the ports are read");
        w.mem.0[8][0..2].copy_from_slice(&[0, 0]);
        w.poke(BUF_VA, &poll(BUF_VA + 64, 129, 0));
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), -22);
        w.poke(BUF_VA + 64, &77u32.to_le_bytes());
        w.poke(BUF_VA, &poll(BUF_VA + 64, 1, 0));
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), -22, "bad port");
        w.poke(BUF_VA, &poll(0x10, 1, 0));
        assert_eq!(w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0]), -14);
    }

    #[test]
    fn poll_follows_xens_order_and_the_fifo_abi() {
        use crate::evtchn::{fifo_control, Binding};
        use crate::mm::pt_validate::Mmu;
        let mut w = World::new(false);
        let a = w.dom.evtchn.allocate(&mut w.mem, Binding::Ipi, 0).unwrap();
        let b = w.dom.evtchn.allocate(&mut w.mem, Binding::Ipi, 0).unwrap();
        w.dom.evtchn.free(b).unwrap();
        let poll = |w: &mut World, ports: &[u32]| {
            let list: alloc::vec::Vec<u8> = ports.iter().flat_map(|p| p.to_le_bytes()).collect();
            w.poke(BUF_VA + 64, &list);
            let mut req = [0u8; 24];
            req[0..8].copy_from_slice(&(BUF_VA + 64).to_le_bytes());
            req[8..12].copy_from_slice(&(ports.len() as u32).to_le_bytes());
            w.poke(BUF_VA, &req);
            w.dom.vcpus[0].poll = None;
            w.call_ret(NR, [SCHEDOP_POLL as u64, BUF_VA, 0, 0, 0])
        };
        assert_eq!(poll(&mut w, &[a, b]), -22, "a closed port: EINVAL");
        assert_eq!(poll(&mut w, &[0]), -22, "the reserved port");
        let mut mmu = Mmu { ft: &mut w.ft, mem: &mut w.mem };
        fifo_control::init_control(&mut w.dom, &mut mmu, 5, 0, 0).unwrap();
        fifo_control::expand_array(&mut w.dom, &mut mmu, 6).unwrap();
        w.mem.0[6][a as usize * 4 + 3] = 0x40; // masked
        crate::evtchn::port_set_pending(&mut w.dom, &mut w.mem, a);
        assert_eq!(poll(&mut w, &[a, b]), 0, "pending (masked) on FIFO: returns before the closed one");
        assert_eq!(w.dom.vcpus[0].poll, None);
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
