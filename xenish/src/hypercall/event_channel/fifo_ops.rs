//! The FIFO ABI's commands: `EVTCHNOP_init_control`,
//! `EVTCHNOP_expand_array` and `EVTCHNOP_set_priority`.
//!
//! Semantics and errnos: Xen 4.17 `do_event_channel_op`,
//! `evtchn_fifo_init_control`, `evtchn_fifo_expand_array` and
//! `evtchn_set_priority`; the decisions are [`crate::evtchn::fifo_control`]'s
//! and [`crate::evtchn::EvtchnTable::set_priority`]'s. `init_control`
//! reports `link_bits` (17) back only when it succeeds, as Xen does.

use guest_abi::event_channel::{EvtchnExpandArray, EvtchnInitControl, EvtchnSetPriority};

use super::{read, write};
use crate::evtchn::fifo::LINK_BITS;
use crate::evtchn::fifo_control;
use crate::hypercall::{Ctx, HcResult};
use crate::mm::pt_validate::Mmu;

/// `EVTCHNOP_init_control`.
pub(super) fn init_control(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut a: EvtchnInitControl = read(ctx, arg)?;
    a.link_bits = LINK_BITS;
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    fifo_control::init_control(ctx.domain, &mut mmu, a.control_gfn, a.offset, a.vcpu)?;
    write(ctx, arg, &a)?;
    Ok(0)
}

/// `EVTCHNOP_expand_array`.
pub(super) fn expand_array(ctx: &mut Ctx, arg: u64) -> HcResult {
    let a: EvtchnExpandArray = read(ctx, arg)?;
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    fifo_control::expand_array(ctx.domain, &mut mmu, a.array_gfn)?;
    Ok(0)
}

/// `EVTCHNOP_set_priority`.
pub(super) fn set_priority(ctx: &mut Ctx, arg: u64) -> HcResult {
    let a: EvtchnSetPriority = read(ctx, arg)?;
    ctx.domain.evtchn.set_priority(a.port, a.priority)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{World, BUF_VA};
    use crate::evtchn::fifo::{self, LINKED, LINK_MASK, PENDING};
    use crate::mm::Mfn;
    use guest_abi::event_channel::*;
    use guest_abi::xen::HYPERVISOR_EVENT_CHANNEL_OP;
    use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

    const NR: u64 = HYPERVISOR_EVENT_CHANNEL_OP as u64;

    fn op<T: IntoBytes + Immutable + FromBytes>(w: &mut World, cmd: u32, arg: &T) -> (i64, T) {
        w.poke(BUF_VA, arg.as_bytes());
        let rc = w.call_ret(NR, [u64::from(cmd), BUF_VA, 0, 0, 0]);
        let out = T::read_from_bytes(&w.peek(BUF_VA, size_of::<T>())).unwrap_or_else(|_| panic!("read back"));
        (rc, out)
    }

    fn init(w: &mut World, gfn: u64, offset: u32, vcpu: u32) -> (i64, u8) {
        let mut a = EvtchnInitControl::new_zeroed();
        (a.control_gfn, a.offset, a.vcpu) = (gfn, offset, vcpu);
        let (rc, out) = op(w, EVTCHNOP_INIT_CONTROL, &a);
        (rc, out.link_bits)
    }

    fn expand(w: &mut World, gfn: u64) -> i64 {
        op(w, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: gfn }).0
    }

    fn priority(w: &mut World, port: u32, priority: u32) -> i64 {
        op(w, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port, priority }).0
    }

    fn ipi(w: &mut World) -> u32 {
        let (rc, out) = op(w, EVTCHNOP_BIND_IPI, &EvtchnBindIpi { vcpu: 0, port: 0 });
        assert_eq!(rc, 0);
        out.port
    }

    fn word(w: &World, port: u32) -> u32 {
        u32::from_le_bytes(w.mem.0[6][port as usize * 4..][..4].try_into().unwrap_or([0; 4]))
    }

    /// Frame 5 holds the control block at 0, frame 6 the event array:
    /// two of the caller's writable buffers (frame 4 holds the arguments).
    fn fifo_world() -> World {
        let mut w = World::new(false);
        assert_eq!(init(&mut w, 5, 0, 0), (0, 17), "link_bits reported");
        assert_eq!(expand(&mut w, 6), 0);
        w
    }

    #[test]
    fn the_errnos_of_xen_4_17() {
        let mut w = World::new(false);
        let p = ipi(&mut w);
        assert_eq!(priority(&mut w, p, 3), -38, "2-level: set_priority is ENOSYS");
        assert_eq!(priority(&mut w, 5000, 3), -22, "an invalid port comes first");
        assert_eq!(expand(&mut w, 6), -95, "expand before init_control: EOPNOTSUPP");
        assert_eq!(init(&mut w, 5, 0, 1).0, -2, "no vCPU 1: ENOENT");
        assert_eq!(init(&mut w, 5, 12, 0).0, -22, "misaligned offset");
        assert_eq!(init(&mut w, 0, 0, 0).0, -22, "a page table");
        assert_eq!(init(&mut w, 13, 0, 0).0, -22, "not its frame");
        assert_eq!(init(&mut w, 5, 0, 0).0, 0);
        assert_eq!(init(&mut w, 5, 0, 0).0, -22, "again for the same vCPU");
        assert_eq!(priority(&mut w, p, 16), -22);
        assert_eq!(priority(&mut w, 0, 3), -13, "the reserved port: EACCES");
        assert_eq!(priority(&mut w, p, 0), 0);
        assert_eq!(w.call_ret(NR, [u64::from(EVTCHNOP_INIT_CONTROL), 0x10, 0, 0, 0]), -14);
    }

    #[test]
    fn sends_are_queued_by_priority_and_unmask_links_a_pending_port() {
        let mut w = fifo_world();
        let (a, b, c) = (ipi(&mut w), ipi(&mut w), ipi(&mut w));
        assert_eq!(priority(&mut w, c, 1), 0);
        for port in [a, b, c] {
            assert_eq!(op(&mut w, EVTCHNOP_SEND, &EvtchnSend { port }).0, 0);
        }
        let cb = &w.mem.0[5];
        let ready = u32::from_le_bytes(cb[0..4].try_into().unwrap_or([0; 4]));
        let head = |q: usize| u32::from_le_bytes(cb[8 + 4 * q..12 + 4 * q].try_into().unwrap_or([0; 4]));
        assert_eq!((ready, head(7), head(1)), (1 << 7 | 1 << 1, a, c));
        assert_eq!(word(&w, a), PENDING | LINKED | b);
        assert_eq!(w.mem.0[8][0], 1, "the upcall is pending in vcpu_info");
        // A masked, pending port is linked by the unmask.
        let d = ipi(&mut w);
        w.mem.0[6][d as usize * 4 + 3] = (fifo::MASKED >> 24) as u8;
        assert_eq!(op(&mut w, EVTCHNOP_SEND, &EvtchnSend { port: d }).0, 0);
        assert_eq!(word(&w, d), fifo::MASKED | PENDING);
        assert_eq!(op(&mut w, EVTCHNOP_UNMASK, &EvtchnUnmask { port: d }).0, 0);
        assert_eq!(word(&w, d), PENDING | LINKED);
        assert_eq!(word(&w, b) & LINK_MASK, d, "after b on queue 7");
        assert_eq!(op(&mut w, EVTCHNOP_UNMASK, &EvtchnUnmask { port: 5000 }).0, -22);
    }

    #[test]
    fn a_closed_port_is_not_reused_while_it_is_still_linked() {
        let mut w = fifo_world();
        let a = ipi(&mut w);
        assert_eq!(op(&mut w, EVTCHNOP_SEND, &EvtchnSend { port: a }).0, 0);
        assert_eq!(op(&mut w, EVTCHNOP_CLOSE, &EvtchnClose { port: a }).0, 0);
        assert_eq!(word(&w, a), LINKED, "closing clears PENDING, the link is the guest's to undo");
        let b = ipi(&mut w);
        assert_ne!(b, a, "busy");
        w.mem.0[6][a as usize * 4 + 3] = 0; // the guest consumed it
        assert_eq!(op(&mut w, EVTCHNOP_CLOSE, &EvtchnClose { port: b }).0, 0);
        assert_eq!(ipi(&mut w), a, "free again");
    }

    #[test]
    fn reset_returns_to_2_level_and_releases_the_pages() {
        let mut w = World::new(false);
        let counts = w.counts();
        assert_eq!(init(&mut w, 5, 0, 0).0, 0);
        assert_eq!(expand(&mut w, 6), 0);
        let p = ipi(&mut w);
        assert_eq!(p, 1);
        assert_ne!(w.counts(), counts);
        let (rc, _) = op(&mut w, EVTCHNOP_RESET, &EvtchnReset { dom: guest_abi::xen::DOMID_SELF });
        assert_eq!(rc, 0);
        assert!(w.dom.evtchn.fifo().is_none());
        assert_eq!(w.counts(), counts, "control block and array page released");
        assert_eq!(w.dom.evtchn.port(p).map(|x| x.binding), Some(crate::evtchn::Binding::Free));
        assert_eq!(priority(&mut w, p, 3), -38, "2-level again");
        assert_eq!(init(&mut w, 5, 0, 0).0, 0, "and FIFO again");
        assert_eq!(w.dom.evtchn.fifo().map(|f| f.frames().collect::<alloc::vec::Vec<_>>()), Some(alloc::vec![Mfn(5)]));
    }
}
