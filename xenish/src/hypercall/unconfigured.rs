//! Hypercalls Xen 4.17 has, answered as Debian's build answers them with
//! the feature off (its defaults), rather than as unknown numbers:
//! - `xsm_op`: no security module loaded (Xen's dummy XSM answers every
//!   `xsm_op` `-ENOSYS`; libxl asks whether FLASK enforces);
//! - `xenpmu_op`: the virtual PMU is off (Xen's default `vpmu=0`), so
//!   every operation is `-EOPNOTSUPP` (Linux's PV PMU driver then stays
//!   off).

use guest_abi::errno::XenError;

use super::{Ctx, Outcome};

/// `HYPERVISOR_xsm_op(op)`.
pub fn xsm_op(_ctx: &mut Ctx, _args: [u64; 5]) -> Outcome {
    Outcome::Return(XenError::Enosys.to_ret())
}

/// `HYPERVISOR_xenpmu_op(op, arg)`.
pub fn xenpmu_op(_ctx: &mut Ctx, _args: [u64; 5]) -> Outcome {
    Outcome::Return(XenError::Eopnotsupp.to_ret())
}

#[cfg(test)]
mod tests {
    use super::super::tests::World;
    use guest_abi::xen::{HYPERVISOR_XENPMU_OP, HYPERVISOR_XSM_OP};

    #[test]
    fn answered_as_xen_with_the_features_off() {
        let mut w = World::new(true);
        assert_eq!(w.call_ret(u64::from(HYPERVISOR_XSM_OP), [0; 5]), -38);
        assert_eq!(w.call_ret(u64::from(HYPERVISOR_XENPMU_OP), [0; 5]), -95);
    }
}
