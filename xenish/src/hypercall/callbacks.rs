//! Callback registration (`callback_op`, `set_callbacks`) and
//! `stack_switch`: where the guest kernel wants events, failsafe bounces and
//! system calls delivered, and on which stack. As in Xen, the NMI callback
//! is the trap table's vector 2 (`register_guest_nmi_callback`): it is
//! entered with events masked, and `set_trap_table` may set it too.

use guest_abi::callback::{
    CALLBACKF_MASK_EVENTS, CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE,
    CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CALLBACKTYPE_SYSCALL32, CALLBACKTYPE_SYSENTER,
};
use guest_abi::errno::XenError;

use super::{Ctx, HcResult, Outcome};
use crate::domain::{Callback, TrapHandler, Vcpu};
use crate::guest_access::is_canonical;

/// The NMI's vector in the trap table.
const TRAP_NMI: usize = 2;
/// `trap_info.flags` bit 2: events masked on entry (Xen's `TI_SET_IF`).
const TI_DISABLE_EVENTS: u8 = guest_abi::arch_x86::TI_IF;

/// Records a callback as Xen's `register_guest_callback` does.
fn register(v: &mut Vcpu, typ: u16, flags: u16, address: u64) -> HcResult {
    if !is_canonical(address) {
        return Err(XenError::Einval);
    }
    let cb = Callback { address, mask_events: u32::from(flags) & CALLBACKF_MASK_EVENTS != 0 };
    let callbacks = &mut v.callbacks;
    let slot = match u32::from(typ) {
        CALLBACKTYPE_EVENT => &mut callbacks.event,
        CALLBACKTYPE_FAILSAFE => &mut callbacks.failsafe,
        CALLBACKTYPE_SYSCALL => &mut callbacks.syscall,
        CALLBACKTYPE_SYSCALL32 => &mut callbacks.syscall32,
        CALLBACKTYPE_SYSENTER => &mut callbacks.sysenter,
        CALLBACKTYPE_NMI => {
            let nmi = TrapHandler { cs: crate::traps::FLAT_KERNEL_CS as u16, flags: TI_DISABLE_EVENTS, address };
            if let Some(t) = v.traps.get_mut(TRAP_NMI) {
                *t = nmi;
            }
            return Ok(0);
        }
        _ => return Err(XenError::Enosys),
    };
    *slot = cb;
    Ok(0)
}

/// `HYPERVISOR_callback_op(cmd, arg)`.
pub fn callback_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    let vcpu = ctx.vcpu;
    let result = match cmd as u32 {
        CALLBACKOP_REGISTER => {
            // struct callback_register { u16 type; u16 flags; u64 address; }
            let mut raw = [0u8; 16];
            match ctx.guest().copy_from(arg, &mut raw) {
                Err(_) => Err(XenError::Efault),
                Ok(()) => {
                    let typ = u16::from_le_bytes([raw[0], raw[1]]);
                    let flags = u16::from_le_bytes([raw[2], raw[3]]);
                    let address = u64::from_le_bytes(raw[8..16].try_into().unwrap_or([0; 8]));
                    match ctx.domain.vcpus.get_mut(vcpu) {
                        Some(v) => register(v, typ, flags, address),
                        None => Err(XenError::Einval),
                    }
                }
            }
        }
        CALLBACKOP_UNREGISTER => {
            // struct callback_unregister { u16 type; u16 _unused; }
            let mut raw = [0u8; 4];
            match ctx.guest().copy_from(arg, &mut raw) {
                Err(_) => Err(XenError::Efault),
                Ok(()) => match (u32::from(u16::from_le_bytes([raw[0], raw[1]])), ctx.domain.vcpus.get_mut(vcpu)) {
                    // Only the NMI callback can be unregistered, as in Xen.
                    (CALLBACKTYPE_NMI, Some(v)) => {
                        if let Some(t) = v.traps.get_mut(TRAP_NMI) {
                            *t = TrapHandler::default();
                        }
                        Ok(0)
                    }
                    _ => Err(XenError::Einval),
                },
            }
        }
        _ => Err(XenError::Enosys),
    };
    result.into()
}

/// `HYPERVISOR_set_callbacks(event, failsafe, syscall)`: the older
/// interface; like Xen, it ignores per-callback errors and returns 0.
pub fn set_callbacks(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [event, failsafe, syscall, ..] = args;
    if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
        let _ = register(v, CALLBACKTYPE_EVENT as u16, 0, event);
        let _ = register(v, CALLBACKTYPE_FAILSAFE as u16, 0, failsafe);
        let _ = register(v, CALLBACKTYPE_SYSCALL as u16, 0, syscall);
    }
    Outcome::Return(0)
}

/// `HYPERVISOR_stack_switch(ss, sp)`: the kernel stack for bounces from
/// user mode. 64-bit PV ignores `ss` (FLAT_KERNEL_SS is always used).
pub fn stack_switch(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
        v.set_kernel_sp(args[1]);
    }
    Outcome::Return(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::{HYPERVISOR_CALLBACK_OP, HYPERVISOR_SET_CALLBACKS, HYPERVISOR_STACK_SWITCH};

    fn reg(typ: u32, flags: u32, address: u64) -> [u8; 16] {
        let mut r = [0u8; 16];
        r[0..2].copy_from_slice(&(typ as u16).to_le_bytes());
        r[2..4].copy_from_slice(&(flags as u16).to_le_bytes());
        r[8..].copy_from_slice(&address.to_le_bytes());
        r
    }

    #[test]
    fn registers_every_64bit_pv_callback() {
        let mut w = World::new(false);
        let nr = HYPERVISOR_CALLBACK_OP as u64;
        for (typ, addr) in [
            (CALLBACKTYPE_EVENT, 0x1000),
            (CALLBACKTYPE_FAILSAFE, 0x2000),
            (CALLBACKTYPE_SYSCALL, 0x3000),
            (CALLBACKTYPE_SYSCALL32, 0x4000),
            (CALLBACKTYPE_SYSENTER, 0x5000),
            (CALLBACKTYPE_NMI, 0x6000),
        ] {
            w.poke(BUF_VA, &reg(typ, CALLBACKF_MASK_EVENTS, addr));
            assert_eq!(w.call_ret(nr, [CALLBACKOP_REGISTER as u64, BUF_VA, 0, 0, 0]), 0, "type {typ}");
        }
        let cb = w.dom.vcpus[0].callbacks;
        assert_eq!((cb.event.address, cb.event.mask_events), (0x1000, true));
        assert_eq!(cb.sysenter.address, 0x5000);
        let nmi = w.dom.vcpus[0].traps[TRAP_NMI];
        assert_eq!((nmi.address, nmi.flags, nmi.cs), (0x6000, TI_DISABLE_EVENTS, 0xe033), "trap 2, events masked");
        // Unknown type, non-canonical address, bad pointer, unknown command.
        w.poke(BUF_VA, &reg(6, 0, 0x1000));
        assert_eq!(w.call_ret(nr, [CALLBACKOP_REGISTER as u64, BUF_VA, 0, 0, 0]), -38);
        w.poke(BUF_VA, &reg(CALLBACKTYPE_EVENT, 0, 0x0000_8000_0000_0000));
        assert_eq!(w.call_ret(nr, [CALLBACKOP_REGISTER as u64, BUF_VA, 0, 0, 0]), -22);
        assert_eq!(w.dom.vcpus[0].callbacks.event.address, 0x1000);
        assert_eq!(w.call_ret(nr, [CALLBACKOP_REGISTER as u64, 0x10, 0, 0, 0]), -14);
        assert_eq!(w.call_ret(nr, [9, BUF_VA, 0, 0, 0]), -38);
    }

    #[test]
    fn only_nmi_unregisters() {
        let mut w = World::new(false);
        let nr = HYPERVISOR_CALLBACK_OP as u64;
        w.dom.vcpus[0].traps[TRAP_NMI].address = 0x6000;
        w.poke(BUF_VA, &CALLBACKTYPE_EVENT.to_le_bytes());
        assert_eq!(w.call_ret(nr, [CALLBACKOP_UNREGISTER as u64, BUF_VA, 0, 0, 0]), -22);
        w.poke(BUF_VA, &CALLBACKTYPE_NMI.to_le_bytes());
        assert_eq!(w.call_ret(nr, [CALLBACKOP_UNREGISTER as u64, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].traps[TRAP_NMI], TrapHandler::default());
    }

    #[test]
    fn set_callbacks_and_stack_switch() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(HYPERVISOR_SET_CALLBACKS as u64, [0x1000, 0x2000, 0x3000, 0, 0]), 0);
        let cb = w.dom.vcpus[0].callbacks;
        assert_eq!((cb.event.address, cb.failsafe.address, cb.syscall.address), (0x1000, 0x2000, 0x3000));
        assert_eq!(w.call_ret(HYPERVISOR_STACK_SWITCH as u64, [0xe02b, 0xffff_ffff_8100_0000, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].kernel_sp(), 0xffff_ffff_8100_0000);
    }
}
