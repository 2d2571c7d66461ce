//! `set_timer_op`: the vCPU's single-shot timer, in system time.
//!
//! Semantics: Xen's `do_set_timer_op`: 0 cancels; a deadline in the past,
//! negative, or more than 2^50 ns ahead (a wrapped Linux jiffy computation)
//! fires at once; otherwise the timer fires at the deadline.

use super::{Ctx, Outcome};

/// `HYPERVISOR_set_timer_op(timeout_ns)`.
pub fn set_timer_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let timeout = args[0] as i64;
    let now = ctx.now_ns;
    let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) else { return Outcome::Return(0) };
    v.singleshot_ns = if timeout == 0 {
        None
    } else {
        let offset = timeout.wrapping_sub(now as i64);
        if timeout < 0 || (offset > 0 && (offset >> 50) != 0) {
            Some(now)
        } else {
            Some(timeout as u64)
        }
    };
    Outcome::Return(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::World;
    use guest_abi::xen::HYPERVISOR_SET_TIMER_OP;

    const NR: u64 = HYPERVISOR_SET_TIMER_OP as u64;

    #[test]
    fn arms_cancels_and_fires_absurd_deadlines_now() {
        let mut w = World::new(false);
        let now = w.now_ns;
        assert_eq!(w.call_ret(NR, [now + 5_000, 0, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].singleshot_ns, Some(now + 5_000));
        assert_eq!(w.call_ret(NR, [0, 0, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].singleshot_ns, None);
        assert_eq!(w.call_ret(NR, [u64::MAX - 5, 0, 0, 0, 0]), 0); // negative
        assert_eq!(w.dom.vcpus[0].singleshot_ns, Some(now));
        assert_eq!(w.call_ret(NR, [now + (1 << 51), 0, 0, 0, 0]), 0); // > 2^50 ns ahead
        assert_eq!(w.dom.vcpus[0].singleshot_ns, Some(now));
        assert_eq!(w.call_ret(NR, [now - 10, 0, 0, 0, 0]), 0); // past: due now
        assert_eq!(w.dom.vcpus[0].singleshot_ns, Some(now - 10));
    }
}
