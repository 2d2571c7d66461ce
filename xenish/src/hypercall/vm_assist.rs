//! `vm_assist`: turn on or off the hypervisor assists a PV kernel asks for.

use guest_abi::errno::XenError;
use guest_abi::xen::{
    VMASST_CMD_DISABLE, VMASST_CMD_ENABLE, VMASST_TYPE_4GB_SEGMENTS, VMASST_TYPE_4GB_SEGMENTS_NOTIFY,
    VMASST_TYPE_ARCHITECTURAL_IOPL, VMASST_TYPE_M2P_STRICT, VMASST_TYPE_PAE_EXTENDED_CR3,
    VMASST_TYPE_RUNSTATE_UPDATE_FLAG, VMASST_TYPE_WRITABLE_PAGETABLES,
};

use super::{Ctx, HcResult, Outcome};

/// The assists a 64-bit PV domain may enable (Xen's `PV64_VM_ASSIST_MASK`).
pub const PV64_VM_ASSIST_MASK: u64 = (1 << VMASST_TYPE_4GB_SEGMENTS)
    | (1 << VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | (1 << VMASST_TYPE_WRITABLE_PAGETABLES)
    | (1 << VMASST_TYPE_PAE_EXTENDED_CR3)
    | (1 << VMASST_TYPE_ARCHITECTURAL_IOPL)
    | (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | (1 << VMASST_TYPE_M2P_STRICT);

/// `HYPERVISOR_vm_assist(cmd, type)`.
pub fn vm_assist(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, typ, ..] = args;
    serve(ctx, cmd as u32, typ as u32).into()
}

fn serve(ctx: &mut Ctx, cmd: u32, typ: u32) -> HcResult {
    if typ >= 64 || PV64_VM_ASSIST_MASK & (1 << typ) == 0 {
        return Err(XenError::Einval);
    }
    match cmd {
        VMASST_CMD_ENABLE => ctx.domain.vm_assist |= 1 << typ,
        VMASST_CMD_DISABLE => ctx.domain.vm_assist &= !(1 << typ),
        _ => return Err(XenError::Enosys),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::World;
    use super::*;
    use guest_abi::xen::HYPERVISOR_VM_ASSIST;

    const NR: u64 = HYPERVISOR_VM_ASSIST as u64;

    #[test]
    fn enable_disable_and_validation() {
        let mut w = World::new(false);
        let on = VMASST_CMD_ENABLE as u64;
        assert_eq!(w.call_ret(NR, [on, VMASST_TYPE_WRITABLE_PAGETABLES as u64, 0, 0, 0]), 0);
        assert_eq!(w.call_ret(NR, [on, VMASST_TYPE_M2P_STRICT as u64, 0, 0, 0]), 0);
        assert_eq!(w.dom.vm_assist, (1 << 2) | (1 << 32));
        assert_eq!(w.call_ret(NR, [VMASST_CMD_DISABLE as u64, 2, 0, 0, 0]), 0);
        assert_eq!(w.dom.vm_assist, 1 << 32);
        assert_eq!(w.call_ret(NR, [on, 6, 0, 0, 0]), -22); // not a PV64 assist
        assert_eq!(w.call_ret(NR, [on, 64, 0, 0, 0]), -22);
        assert_eq!(w.call_ret(NR, [9, 2, 0, 0, 0]), -38);
        assert_eq!(w.dom.vm_assist, 1 << 32);
    }
}
