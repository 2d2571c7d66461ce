//! `fpu_taskswitch`: the guest's virtual CR0.TS, for lazy FPU switching.

use super::{Ctx, Outcome};

/// `HYPERVISOR_fpu_taskswitch(set)`: set or clear the virtual TS; while
/// set, the guest's next FPU instruction raises #NM in the guest.
pub fn fpu_taskswitch(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let set = args[0] as i32 != 0;
    if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
        v.fpu_ts = set;
    }
    ctx.platform.set_fpu_ts(set);
    Outcome::Return(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::World;
    use guest_abi::xen::HYPERVISOR_FPU_TASKSWITCH;

    #[test]
    fn sets_and_clears_the_virtual_ts() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(HYPERVISOR_FPU_TASKSWITCH as u64, [1, 0, 0, 0, 0]), 0);
        assert!(w.dom.vcpus[0].fpu_ts);
        assert_eq!(w.plat.ts, Some(true));
        assert_eq!(w.call_ret(HYPERVISOR_FPU_TASKSWITCH as u64, [1 << 32, 0, 0, 0, 0]), 0); // int argument
        assert!(!w.dom.vcpus[0].fpu_ts);
        assert_eq!(w.plat.ts, Some(false));
    }
}
