//! Writable page tables (Xen's "ptwr"): a PV kernel writes an entry of one
//! of its own L1 page tables, which it can map only read-only, with an
//! ordinary instruction. The write faults; the hypervisor decodes the
//! instruction, works out the new entry and the instruction's other
//! effects (registers, flags), validates the entry and performs it, and
//! steps over the instruction. Linux relies on this for its PTE writes
//! (`set_pte`'s `mov`, `ptep_get_and_clear`'s `xchg`, the locked `and`/`btr`
//! of `ptep_set_wrprotect` and `ptep_test_and_clear_young`).
//!
//! This module is the decoding and the arithmetic, portable and
//! host-tested ([`decode`], [`apply`]), and the fault path that finds the
//! entry and performs it ([`emulate_fault`]): the instructions that write memory in the forms kernels use
//! for PTEs (`mov`, `xchg`, `cmpxchg`, `and`/`or`/`xor`, `bts`/`btr`/`btc`,
//! with `lock`, operand-size, segment and REX prefixes). The address comes
//! from the fault (`cr2`), not from the decoded operand, so only the
//! operand's length matters here. Anything else is not emulated and the
//! fault goes to the guest, as Xen does for writes it cannot emulate.

use guest_abi::xen::VMASST_TYPE_WRITABLE_PAGETABLES;

use crate::domain::Domain;
use crate::guest_access::PTE_ADDR_MASK;
use crate::mm::pagetable::{self, PTE_P, PTE_RW};
use crate::mm::pt_validate::{find_l1, MapRights, Mmu};
use crate::mm::Mfn;
use crate::regs::TrapFrame;

/// What a decoded instruction does to its memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `mov`: the operand becomes the source.
    Mov,
    /// `xchg`: swaps the operand and a register.
    Xchg,
    /// `cmpxchg`: if the operand equals the accumulator, it becomes the
    /// source, else the accumulator gets the operand.
    Cmpxchg,
    /// `and` with the source.
    And,
    /// `or` with the source.
    Or,
    /// `xor` with the source.
    Xor,
    /// `bts`: sets the source-numbered bit, old value in CF.
    Bts,
    /// `btr`: clears it.
    Btr,
    /// `btc`: complements it.
    Btc,
}

/// Where the value written comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A general register (index 0..16 in `rax, rcx, rdx, rbx, rsp, rbp,
    /// rsi, rdi, r8..r15` order); for byte operands without REX, 4..8 are
    /// `ah, ch, dh, bh`.
    Reg(u8),
    /// An immediate, already sign-extended to 64 bits.
    Imm(u64),
}

/// A decoded memory-writing instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// The operation.
    pub op: Op,
    /// Its source operand.
    pub src: Src,
    /// Operand width in bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Instruction length in bytes.
    pub len: usize,
    /// A REX prefix was present (changes which byte registers 4..8 are).
    pub rex: bool,
}

/// Decodes the instruction at the start of `insn`, if it is one this
/// module emulates with a memory destination.
pub fn decode(insn: &[u8]) -> Option<Write> {
    let mut i = 0;
    let mut opsize16 = false;
    loop {
        match *insn.get(i)? {
            0x66 => opsize16 = true,
            // lock; cs, ss, ds, es, fs, gs overrides.
            0xf0 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 => {}
            _ => break,
        }
        i += 1;
    }
    let (mut rex, mut rex_w, mut rex_r) = (false, false, false);
    if let b @ 0x40..=0x4f = *insn.get(i)? {
        (rex, rex_w, rex_r) = (true, b & 8 != 0, b & 4 != 0);
        i += 1;
    }
    let wide = if rex_w {
        8
    } else if opsize16 {
        2
    } else {
        4
    };
    let opcode = *insn.get(i)?;
    i += 1;
    let two_byte = opcode == 0x0f;
    let opcode2 = if two_byte {
        i += 1;
        *insn.get(i - 1)?
    } else {
        0
    };
    let modrm = *insn.get(i)?;
    let modrm_len = modrm_length(insn.get(i..)?)?;
    i += modrm_len;
    let reg = (modrm >> 3) & 7 | if rex_r { 8 } else { 0 };
    let ext = (modrm >> 3) & 7;
    let imm = |i: usize, bytes: usize| -> Option<u64> {
        let b = insn.get(i..i + bytes)?;
        Some(match bytes {
            1 => b[0] as i8 as i64 as u64,
            2 => i16::from_le_bytes([b[0], b[1]]) as i64 as u64,
            _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64 as u64,
        })
    };
    let imm_len = if wide == 2 { 2 } else { 4 };
    let with = |op, src, width, len| Some(Write { op, src, width, len, rex });
    let alu = |e: u8| match e {
        1 => Some(Op::Or),
        4 => Some(Op::And),
        6 => Some(Op::Xor),
        _ => None,
    };
    match (two_byte, opcode) {
        (false, 0x88) => with(Op::Mov, Src::Reg(reg), 1, i),
        (false, 0x89) => with(Op::Mov, Src::Reg(reg), wide, i),
        (false, 0xc6) if ext == 0 => with(Op::Mov, Src::Imm(imm(i, 1)?), 1, i + 1),
        (false, 0xc7) if ext == 0 => with(Op::Mov, Src::Imm(imm(i, imm_len)?), wide, i + imm_len),
        (false, 0x86) => with(Op::Xchg, Src::Reg(reg), 1, i),
        (false, 0x87) => with(Op::Xchg, Src::Reg(reg), wide, i),
        (false, 0x08) => with(Op::Or, Src::Reg(reg), 1, i),
        (false, 0x09) => with(Op::Or, Src::Reg(reg), wide, i),
        (false, 0x20) => with(Op::And, Src::Reg(reg), 1, i),
        (false, 0x21) => with(Op::And, Src::Reg(reg), wide, i),
        (false, 0x30) => with(Op::Xor, Src::Reg(reg), 1, i),
        (false, 0x31) => with(Op::Xor, Src::Reg(reg), wide, i),
        (false, 0x80) => with(alu(ext)?, Src::Imm(imm(i, 1)?), 1, i + 1),
        (false, 0x81) => with(alu(ext)?, Src::Imm(imm(i, imm_len)?), wide, i + imm_len),
        (false, 0x83) => with(alu(ext)?, Src::Imm(imm(i, 1)?), wide, i + 1),
        (true, _) => match opcode2 {
            0xb0 => with(Op::Cmpxchg, Src::Reg(reg), 1, i),
            0xb1 => with(Op::Cmpxchg, Src::Reg(reg), wide, i),
            0xab => with(Op::Bts, Src::Reg(reg), wide, i),
            0xb3 => with(Op::Btr, Src::Reg(reg), wide, i),
            0xbb => with(Op::Btc, Src::Reg(reg), wide, i),
            0xba => {
                let op = match ext {
                    5 => Op::Bts,
                    6 => Op::Btr,
                    7 => Op::Btc,
                    _ => return None,
                };
                with(op, Src::Imm(u64::from(*insn.get(i)?)), wide, i + 1)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Bytes of a ModRM byte with its SIB and displacement, for a memory
/// operand (`None` for a register operand, which writes no memory).
fn modrm_length(bytes: &[u8]) -> Option<usize> {
    let modrm = *bytes.first()?;
    let (md, rm) = (modrm >> 6, modrm & 7);
    let mut len = 1;
    if md == 3 {
        return None;
    }
    if rm == 4 {
        let sib = *bytes.get(1)?;
        len += 1;
        if md == 0 && sib & 7 == 5 {
            len += 4;
        }
    }
    len += match (md, rm) {
        (0, 5) => 4, // RIP-relative
        (1, _) => 1,
        (2, _) => 4,
        _ => 0,
    };
    Some(len)
}

/// rflags bits the emulated instructions set.
const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;

/// What performing a decoded write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effect {
    /// The page-table entry after the write (to validate before it counts).
    pub new_pte: u64,
    /// A register the instruction writes, and its new value.
    pub reg: Option<(u8, u64)>,
    /// rflags bits to replace (mask) and their new values.
    pub flags: Option<(u64, u64)>,
}

/// The value of register `index` as a `width`-byte source operand.
fn reg_value(frame: &mut TrapFrame, index: u8, width: u8, rex: bool) -> u64 {
    if width == 1 && !rex && (4..8).contains(&index) {
        return (*frame.gpr_mut(index - 4) >> 8) & 0xff;
    }
    *frame.gpr_mut(index) & mask(width)
}

/// The register `index` after writing `value` as a `width`-byte result:
/// 32-bit writes zero the upper half, 8- and 16-bit ones keep the rest.
fn reg_result(frame: &mut TrapFrame, index: u8, width: u8, rex: bool, value: u64) -> (u8, u64) {
    if width == 1 && !rex && (4..8).contains(&index) {
        let r = index - 4;
        let old = *frame.gpr_mut(r);
        return (r, (old & !0xff00) | ((value & 0xff) << 8));
    }
    let old = *frame.gpr_mut(index);
    let v = match width {
        1 | 2 => (old & !mask(width)) | (value & mask(width)),
        _ => value & mask(width),
    };
    (index, v)
}

fn mask(width: u8) -> u64 {
    match width {
        8 => u64::MAX,
        w => (1u64 << (u32::from(w) * 8)) - 1,
    }
}

fn sign(width: u8) -> u64 {
    1u64 << (u32::from(width) * 8 - 1)
}

/// ZF, SF and PF of a `width`-byte result.
fn result_flags(v: u64, width: u8) -> u64 {
    let mut f = 0;
    if v & mask(width) == 0 {
        f |= ZF;
    }
    if v & sign(width) != 0 {
        f |= SF;
    }
    if (v as u8).count_ones().is_multiple_of(2) {
        f |= PF;
    }
    f
}

/// The flags of `a - b` (a `cmp`) on `width` bytes.
fn cmp_flags(a: u64, b: u64, width: u8) -> u64 {
    let m = mask(width);
    let (a, b) = (a & m, b & m);
    let r = a.wrapping_sub(b) & m;
    let mut f = result_flags(r, width);
    if a < b {
        f |= CF;
    }
    if (a ^ b) & (a ^ r) & sign(width) != 0 {
        f |= OF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    f
}

/// Performs `w` on the byte range `offset..offset + width` of `old_pte`
/// (the entry the fault hit, `offset` being `cr2 & 7`) with the registers
/// in `frame`, which it only reads. `None` if the operand does not lie
/// within that entry.
pub fn apply(w: &Write, old_pte: u64, offset: usize, frame: &mut TrapFrame) -> Option<Effect> {
    let width = w.width;
    if offset + usize::from(width) > 8 {
        return None;
    }
    let shift = offset as u32 * 8;
    let m = mask(width);
    let dst = (old_pte >> shift) & m;
    let src = match w.src {
        Src::Reg(r) => reg_value(frame, r, width, w.rex),
        Src::Imm(v) => v & m,
    };
    let logic = CF | PF | ZF | SF | OF;
    let (value, reg, flags) = match w.op {
        Op::Mov => (src, None, None),
        Op::Xchg => match w.src {
            Src::Reg(r) => (src, Some(reg_result(frame, r, width, w.rex, dst)), None),
            Src::Imm(_) => return None,
        },
        Op::Cmpxchg => {
            let acc = frame.rax & m;
            let flags = Some((logic | AF, cmp_flags(acc, dst, width)));
            if acc == dst {
                (src, None, flags)
            } else {
                (dst, Some(reg_result(frame, 0, width, false, dst)), flags)
            }
        }
        Op::And => (dst & src, None, Some((logic, result_flags(dst & src, width)))),
        Op::Or => (dst | src, None, Some((logic, result_flags(dst | src, width)))),
        Op::Xor => (dst ^ src, None, Some((logic, result_flags(dst ^ src, width)))),
        Op::Bts | Op::Btr | Op::Btc => {
            let bit = 1u64 << (src % (u64::from(width) * 8));
            let cf = if dst & bit != 0 { CF } else { 0 };
            let v = match w.op {
                Op::Bts => dst | bit,
                Op::Btr => dst & !bit,
                _ => dst ^ bit,
            };
            (v, None, Some((CF, cf)))
        }
    };
    let new_pte = (old_pte & !(m << shift)) | ((value & m) << shift);
    Some(Effect { new_pte, reg, flags })
}

/// The fault-time half: if `dom`'s vCPU `vcpu` faulted writing `cr2`
/// (present, write, not reserved: `error`) through a read-only mapping of
/// one of its own L1 page tables, with writable page tables enabled,
/// performs the instruction `insn` on the entry it wrote (validated as
/// `mmu_update` validates it) and steps over it. Returns whether it did;
/// anything else is the guest's page fault.
#[allow(clippy::too_many_arguments)]
pub fn emulate_fault(
    dom: &Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    cr2: u64,
    error: u64,
    insn: &[u8],
    mmu: &mut Mmu,
) -> bool {
    const PF_PRESENT: u64 = 1;
    const PF_WRITE: u64 = 2;
    const PF_RSVD: u64 = 8;
    let assisted = dom.vm_assist & (1 << VMASST_TYPE_WRITABLE_PAGETABLES) != 0;
    if !assisted || error & (PF_PRESENT | PF_WRITE | PF_RSVD) != PF_PRESENT | PF_WRITE {
        return false;
    }
    let Some(v) = dom.vcpus.get(vcpu).filter(|v| v.kernel_mode()) else { return false };
    // The mapping the write went through: read-only, of an own L1 table.
    let Some((map_l1, map_slot)) = find_l1(mmu.ft, mmu.mem, dom.id, v.current_l4(), cr2) else { return false };
    let Ok(mapping) = pagetable::entry(mmu.mem, map_l1, map_slot) else { return false };
    let table = Mfn::containing(mapping & PTE_ADDR_MASK);
    if mapping & (PTE_P | PTE_RW) != PTE_P || !mmu.ft.is_page_table_of(table, dom.id, Some(1)) {
        return false;
    }
    let Some(w) = decode(insn) else { return false };
    let (slot, offset) = (((cr2 & 0xfff) >> 3) as usize, (cr2 & 7) as usize);
    if offset % usize::from(w.width) != 0 {
        return false; // Xen emulates only naturally aligned writes
    }
    let Ok(old) = pagetable::entry(mmu.mem, table, slot) else { return false };
    // `apply` only reads the registers (the effect is applied below, once
    // the entry is written): no copy of the frame.
    let Some(effect) = apply(&w, old, offset, frame) else { return false };
    if effect.new_pte != old {
        let rights = MapRights::of(dom);
        if mmu.mod_entry(table, 1, slot, effect.new_pte, false, &rights, &rights).is_err() {
            return false;
        }
    }
    if let Some((reg, value)) = effect.reg {
        *frame.gpr_mut(reg) = value;
    }
    if let Some((mask, value)) = effect.flags {
        frame.rflags = (frame.rflags & !mask) | (value & mask);
    }
    frame.rip = frame.rip.wrapping_add(w.len as u64);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> TrapFrame {
        TrapFrame {
            rax: 0x1111,
            rcx: 0xaaaa_0000_0000_0067,
            rdx: 5,
            rbx: 0xff00,
            rflags: 0x202,
            ..TrapFrame::default()
        }
    }

    #[test]
    fn decodes_the_forms_kernels_use_for_ptes() {
        let cases: [(&[u8], Op, Src, u8, usize); 12] = [
            (&[0x48, 0x89, 0x0f], Op::Mov, Src::Reg(1), 8, 3), // mov %rcx,(%rdi)
            (&[0x4c, 0x89, 0x04, 0xc7], Op::Mov, Src::Reg(8), 8, 4), // mov %r8,(%rdi,%rax,8)
            (&[0x48, 0x89, 0x4f, 0x08], Op::Mov, Src::Reg(1), 8, 4), // mov %rcx,0x8(%rdi)
            (&[0x89, 0x8f, 0, 1, 0, 0], Op::Mov, Src::Reg(1), 4, 6), // mov %ecx,0x100(%rdi)
            (&[0x48, 0xc7, 0x07, 0, 0, 0, 0], Op::Mov, Src::Imm(0), 8, 7), // movq $0,(%rdi)
            (&[0x48, 0x87, 0x07], Op::Xchg, Src::Reg(0), 8, 3), // xchg %rax,(%rdi)
            (&[0xf0, 0x48, 0x0f, 0xb1, 0x17], Op::Cmpxchg, Src::Reg(2), 8, 5), // lock cmpxchg %rdx,(%rdi)
            (&[0xf0, 0x80, 0x27, 0xfd], Op::And, Src::Imm(0xffff_ffff_ffff_fffd), 1, 4), // lock andb $0xfd,(%rdi)
            (&[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x05], Op::Btr, Src::Imm(5), 8, 6), // lock btrq $5,(%rdi)
            (&[0xf0, 0x48, 0x83, 0x0f, 0x20], Op::Or, Src::Imm(0x20), 8, 5), // lock orq $0x20,(%rdi)
            (&[0x48, 0x89, 0x05, 1, 2, 3, 4], Op::Mov, Src::Reg(0), 8, 7), // mov %rax,rel32(%rip)
            (&[0x65, 0x48, 0x89, 0x04, 0x25, 1, 2, 3, 4], Op::Mov, Src::Reg(0), 8, 9), // mov %rax,%gs:abs32
        ];
        for (bytes, op, src, width, len) in cases {
            let w = decode(bytes).unwrap_or_else(|| panic!("{bytes:x?} not decoded"));
            assert_eq!((w.op, w.src, w.width, w.len), (op, src, width, len), "{bytes:x?}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_emulate() {
        for bytes in [
            &[0x48, 0x89, 0xc8][..], // mov %rcx,%rax: no memory operand
            &[0x48, 0x8b, 0x07],     // mov (%rdi),%rax: a read
            &[0xf3, 0x48, 0xab],     // rep stos
            &[0x48, 0x89],           // truncated
            &[0x48, 0xc7, 0x07, 0],  // truncated immediate
            &[0x0f, 0xba, 0x27, 1],  // bt (no write)
            &[0x80, 0x07, 1],        // add: not a PTE form
            &[],
        ] {
            assert_eq!(decode(bytes), None, "{bytes:x?}");
        }
    }

    #[test]
    fn mov_and_xchg() {
        let mut f = frame();
        let mov = decode(&[0x48, 0x89, 0x0f]).unwrap();
        let e = apply(&mov, 0x1234_5067, 0, &mut f).unwrap();
        assert_eq!(e, Effect { new_pte: 0xaaaa_0000_0000_0067, reg: None, flags: None });
        let xchg = decode(&[0x48, 0x87, 0x07]).unwrap();
        let e = apply(&xchg, 0x1234_5067, 0, &mut f).unwrap();
        assert_eq!((e.new_pte, e.reg), (0x1111, Some((0, 0x1234_5067))));
        let half = decode(&[0x89, 0x0f]).unwrap(); // mov %ecx,(%rdi): the low half
        assert_eq!(apply(&half, 0xdead_beef_0000_0000, 0, &mut f).unwrap().new_pte, 0xdead_beef_0000_0067);
        assert_eq!(apply(&half, 0x1111_1111_2222_2222, 4, &mut f).unwrap().new_pte, 0x0000_0067_2222_2222);
        assert_eq!(apply(&mov, 0, 4, &mut f), None, "straddles the next entry");
        assert_eq!(f, frame(), "apply only reads the registers (emulate_fault passes the live frame)");
    }

    #[test]
    fn cmpxchg_succeeds_or_loads_the_accumulator() {
        let mut f = frame();
        let w = decode(&[0xf0, 0x48, 0x0f, 0xb1, 0x17]).unwrap();
        let e = apply(&w, 0x1111, 0, &mut f).unwrap();
        assert_eq!((e.new_pte, e.reg), (5, None));
        assert_eq!(e.flags.map(|(_, v)| v & ZF), Some(ZF));
        let e = apply(&w, 0x2222, 0, &mut f).unwrap();
        assert_eq!((e.new_pte, e.reg), (0x2222, Some((0, 0x2222))), "unchanged; rax = the entry");
        assert_eq!(e.flags.map(|(_, v)| v & (ZF | CF)), Some(CF), "0x1111 - 0x2222 borrows");
        assert_eq!(f, frame(), "the registers are the caller's to change");
    }

    #[test]
    fn logic_and_bit_operations() {
        let mut f = frame();
        let and = decode(&[0xf0, 0x80, 0x27, 0xfd]).unwrap(); // clear RW in the low byte
        let e = apply(&and, 0x8000_0000_1234_5067, 0, &mut f).unwrap();
        assert_eq!(e.new_pte, 0x8000_0000_1234_5065);
        let btr = decode(&[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x05]).unwrap(); // clear Accessed
        let e = apply(&btr, 0x1234_5067, 0, &mut f).unwrap();
        assert_eq!((e.new_pte, e.flags), (0x1234_5047, Some((CF, CF))), "CF = the old bit");
        let e = apply(&btr, 0x1234_5047, 0, &mut f).unwrap();
        assert_eq!((e.new_pte, e.flags), (0x1234_5047, Some((CF, 0))));
        let or = decode(&[0xf0, 0x48, 0x83, 0x0f, 0x20]).unwrap();
        let e = apply(&or, 0x47, 0, &mut f).unwrap();
        assert_eq!(e.new_pte, 0x67);
        assert_eq!(e.flags.map(|(_, v)| v & (ZF | SF | CF | OF)), Some(0));
        let movb = decode(&[0x88, 0x3f]).unwrap(); // mov %bh,(%rdi): bh = 0xff
        assert_eq!(apply(&movb, 0x1234_5067, 1, &mut f).unwrap().new_pte, 0x1234_ff67);
    }
}
