//! `set_debugreg` and `get_debugreg`: a PV vCPU's debug registers as Xen
//! 4.17 keeps them (`xen/arch/x86/pv/misc-hypercalls.c`,
//! `x86emul_read_dr`), and the DR6 a #DB leaves for the guest to read
//! (`do_debug`). DR4 and DR5 are DR6 and DR7, as the guest's CR4.DE is
//! clear. Breakpoints are not armed in the hardware yet: a DR7 that
//! enables one is refused with `-EOPNOTSUPP` rather than accepted and
//! never honoured.

use guest_abi::errno::XenError;

use super::{Ctx, HcResult, Outcome};
use crate::guest_access::is_guest_addr;

/// DR6 with nothing to report (`X86_DR6_DEFAULT`): its reserved bits set.
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// DR7 with nothing enabled (`X86_DR7_DEFAULT`): bit 10 set.
pub const DR7_DEFAULT: u64 = 0x400;
/// A vCPU's debug registers at creation (`arch_vcpu_regs_init`),
/// indexed as `vcpu_guest_context.debugreg`.
pub const RESET: [u64; 8] = [0, 0, 0, 0, 0, 0, DR6_DEFAULT, DR7_DEFAULT];

/// DR6 bit 12, reserved as zero.
const DR6_RESERVED_ZERO: u64 = 1 << 12;
/// DR7 bits 11, 12, 14, 15, reserved as zero.
const DR7_RESERVED_ZERO: u64 = 0xd800;
/// DR7.GD (general detect), which a guest may not set.
const DR7_GENERAL_DETECT: u64 = 1 << 13;
/// DR7's local and global enables.
const DR7_ACTIVE: u64 = 0xff;

/// The guest's DR6 after a #DB whose hardware DR6 was `hw`: the status
/// bits it reports are merged in (Xen 4.17's `do_debug`: bits that differ
/// from the default in `hw` are taken, those equal to it are kept).
pub fn merge_dr6(guest: u64, hw: u64) -> u64 {
    (guest | (hw & !DR6_DEFAULT)) & (hw | !DR6_DEFAULT)
}

/// Writes debug register `reg` of `regs`, with Xen's checks.
pub fn set(regs: &mut [u64; 8], reg: u64, value: u64) -> HcResult {
    let slot = match reg {
        0..=3 => {
            if !is_guest_addr(value) {
                return Err(XenError::Eperm);
            }
            reg as usize
        }
        4 | 6 => {
            if value >> 32 != 0 {
                return Err(XenError::Einval);
            }
            regs[6] = (value & !DR6_RESERVED_ZERO) | DR6_DEFAULT;
            return Ok(0);
        }
        5 | 7 => {
            if value >> 32 != 0 {
                return Err(XenError::Einval);
            }
            let value = (value & !DR7_RESERVED_ZERO) | DR7_DEFAULT;
            if value & DR7_GENERAL_DETECT != 0 {
                return Err(XenError::Eperm);
            }
            if value & DR7_ACTIVE != 0 {
                return Err(XenError::Eopnotsupp);
            }
            regs[7] = value;
            return Ok(0);
        }
        _ => return Err(XenError::Enodev),
    };
    if let Some(r) = regs.get_mut(slot) {
        *r = value;
    }
    Ok(0)
}

/// Reads debug register `reg` of `regs`.
pub fn get(regs: &[u64; 8], reg: u64) -> HcResult {
    let slot = match reg {
        0..=3 | 6 | 7 => reg as usize,
        4 => 6,
        5 => 7,
        _ => return Err(XenError::Enodev),
    };
    Ok(regs.get(slot).copied().unwrap_or(0) as i64)
}

/// `HYPERVISOR_set_debugreg(reg, value)`.
pub fn set_debugreg(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [reg, value, ..] = args;
    match ctx.domain.vcpus.get_mut(ctx.vcpu) {
        Some(v) => set(&mut v.debugreg, u64::from(reg as i32 as u32), value).into(),
        None => HcResult::Err(XenError::Einval).into(),
    }
}

/// `HYPERVISOR_get_debugreg(reg)`.
pub fn get_debugreg(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    match ctx.domain.vcpus.get(ctx.vcpu) {
        Some(v) => get(&v.debugreg, u64::from(args[0] as i32 as u32)).into(),
        None => HcResult::Err(XenError::Einval).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::World;
    use super::*;
    use guest_abi::xen::{HYPERVISOR_GET_DEBUGREG, HYPERVISOR_SET_DEBUGREG};

    #[test]
    fn dr6_keeps_sticky_status_and_takes_new_bits() {
        // A single step (BS) on a clean DR6, then a breakpoint 0 hit.
        let after_step = merge_dr6(DR6_DEFAULT, DR6_DEFAULT | 0x4000);
        assert_eq!(after_step, 0xffff_4ff0);
        assert_eq!(merge_dr6(after_step, DR6_DEFAULT | 1), 0xffff_4ff1);
    }

    #[test]
    fn writes_are_checked_and_sanitised_as_xen_does() {
        let mut r = RESET;
        assert_eq!(set(&mut r, 6, 0), Ok(0));
        assert_eq!(r[6], DR6_DEFAULT, "reserved bits forced to 1");
        assert_eq!(set(&mut r, 6, 1 << 32), Err(XenError::Einval));
        assert_eq!(set(&mut r, 7, 0), Ok(0));
        assert_eq!(r[7], DR7_DEFAULT);
        assert_eq!(set(&mut r, 7, DR7_GENERAL_DETECT), Err(XenError::Eperm));
        assert_eq!(set(&mut r, 7, 1), Err(XenError::Eopnotsupp), "breakpoints are not armed yet");
        assert_eq!(set(&mut r, 0, 0x40_0000), Ok(0));
        assert_eq!(set(&mut r, 1, 0xffff_8000_0000_1000), Err(XenError::Eperm), "the hypervisor's hole");
        assert_eq!(set(&mut r, 8, 0), Err(XenError::Enodev));
        assert_eq!((get(&r, 0), get(&r, 4), get(&r, 5)), (Ok(0x40_0000), Ok(DR6_DEFAULT as i64), Ok(0x400)));
        assert_eq!(get(&r, 9), Err(XenError::Enodev));
    }

    #[test]
    fn the_hypercalls_reach_the_vcpus_registers() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(HYPERVISOR_SET_DEBUGREG as u64, [2, 0x1234, 0, 0, 0]), 0);
        assert_eq!(w.call_ret(HYPERVISOR_GET_DEBUGREG as u64, [2, 0, 0, 0, 0]), 0x1234);
        assert_eq!(w.call_ret(HYPERVISOR_GET_DEBUGREG as u64, [6, 0, 0, 0, 0]), DR6_DEFAULT as i64);
    }
}
