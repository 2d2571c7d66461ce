//! `set_trap_table`: install the guest's virtual IDT.

use guest_abi::errno::XenError;

use super::{Ctx, Outcome};
use crate::domain::TrapHandler;
use crate::guest_access::is_canonical;

/// Entries processed per invocation before the call is continued.
const BATCH: u64 = 64;
/// Size of a `trap_info` entry: vector u8, flags u8, cs u16, pad, address u64.
const TRAP_INFO_SIZE: u64 = core::mem::size_of::<guest_abi::arch_x86::TrapInfo>() as u64;

/// `HYPERVISOR_set_trap_table(traps)`: entries up to one whose address is 0.
pub fn set_trap_table(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let mut ptr = args[0];
    let vcpu = ctx.vcpu;
    if ptr == 0 {
        if let Some(v) = ctx.domain.vcpus.get_mut(vcpu) {
            v.traps = [TrapHandler::default(); 256];
        }
        return Outcome::Return(0);
    }
    for _ in 0..BATCH {
        let mut raw = [0u8; TRAP_INFO_SIZE as usize];
        if ctx.guest().copy_from(ptr, &mut raw).is_err() {
            return Outcome::Return(XenError::Efault.to_ret());
        }
        let address = u64::from_le_bytes([raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]]);
        if address == 0 {
            return Outcome::Return(0);
        }
        if !is_canonical(address) {
            return Outcome::Return(XenError::Einval.to_ret());
        }
        let (vector, flags, cs) = (raw[0], raw[1], u16::from_le_bytes([raw[2], raw[3]]));
        if let Some(v) = ctx.domain.vcpus.get_mut(vcpu) {
            // A null or ring-0 selector means the flat kernel code segment.
            let cs = if cs & !3 == 0 { guest_abi::arch_x86::FLAT_KERNEL_CS } else { cs | 3 };
            v.traps[usize::from(vector)] = TrapHandler { cs, flags, address };
        }
        ptr = ptr.wrapping_add(TRAP_INFO_SIZE);
    }
    Outcome::Continue([ptr, args[1], args[2], args[3], args[4]])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::super::Outcome;
    use guest_abi::xen::HYPERVISOR_SET_TRAP_TABLE;

    const NR: u64 = HYPERVISOR_SET_TRAP_TABLE as u64;

    fn entry(vector: u8, flags: u8, address: u64) -> [u8; 16] {
        let mut e = [0u8; 16];
        e[0] = vector;
        e[1] = flags;
        e[2..4].copy_from_slice(&0xe033u16.to_le_bytes());
        e[8..].copy_from_slice(&address.to_le_bytes());
        e
    }

    #[test]
    fn installs_until_sentinel() {
        let mut w = World::new(false);
        w.poke(BUF_VA, &entry(6, 0, 0xffff_ffff_8000_1000));
        w.poke(BUF_VA + 16, &entry(0x80, 3, 0xffff_ffff_8000_2000));
        w.poke(BUF_VA + 32, &entry(0, 0, 0));
        assert_eq!(w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]), 0);
        let t = &w.dom.vcpus[0].traps;
        assert_eq!(t[6].address, 0xffff_ffff_8000_1000);
        assert_eq!((t[0x80].flags, t[0x80].cs), (3, 0xe033));
        assert_eq!(w.call_ret(NR, [0, 0, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].traps[6].address, 0);
    }

    #[test]
    fn rejects_bad_input_and_continues_long_tables() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(NR, [0x1000, 0, 0, 0, 0]), -14);
        w.poke(BUF_VA, &entry(6, 0, 0x0000_8000_0000_0000));
        assert_eq!(w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]), -22);
        for i in 0..70u64 {
            w.poke(BUF_VA + i * 16, &entry(i as u8, 0, 0x1000 + i));
        }
        assert_eq!(w.call(NR, [BUF_VA, 0, 0, 0, 0]), Outcome::Continue([BUF_VA + 64 * 16, 0, 0, 0, 0]));
    }
}
