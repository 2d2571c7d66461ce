//! `physdev_op`: the virtual I/O privilege level. Interrupt routing and PCI
//! operations come with device passthrough, which xenish does not offer;
//! they answer `-ENOSYS` and are named in the log once.

use guest_abi::errno::XenError;
use guest_abi::physdev::PHYSDEVOP_SET_IOPL;

use super::{Ctx, HcResult, Outcome};

/// `HYPERVISOR_physdev_op(cmd, arg)`.
pub fn physdev_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    serve(ctx, cmd as u32, arg).into()
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    match cmd {
        PHYSDEVOP_SET_IOPL => {
            let iopl: u32 = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            if iopl > 3 {
                return Err(XenError::Einval);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
                v.iopl = iopl as u8;
            }
            Ok(0)
        }
        cmd => Err(super::refusals::not_implemented(
            ctx.domain.id,
            guest_abi::xen::HYPERVISOR_PHYSDEV_OP,
            Some(cmd.into()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::HYPERVISOR_PHYSDEV_OP;

    #[test]
    fn set_iopl_validates_and_records() {
        let mut w = World::new(true);
        let nr = HYPERVISOR_PHYSDEV_OP as u64;
        w.poke(BUF_VA, &1u32.to_le_bytes());
        assert_eq!(w.call_ret(nr, [PHYSDEVOP_SET_IOPL as u64, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].iopl, 1);
        w.poke(BUF_VA, &4u32.to_le_bytes());
        assert_eq!(w.call_ret(nr, [PHYSDEVOP_SET_IOPL as u64, BUF_VA, 0, 0, 0]), -22);
        assert_eq!(w.call_ret(nr, [PHYSDEVOP_SET_IOPL as u64, 0x10, 0, 0, 0]), -14);
        assert_eq!(w.call_ret(nr, [99, BUF_VA, 0, 0, 0]), -38);
    }
}
