//! Guest exceptions: emulate what a PV kernel may not do natively (Xen's
//! forced-emulation CPUID, reading %cr3, writing the segment-base MSRs),
//! bounce the rest to the guest's own handler with Xen's frame, or crash
//! the guest when it has none. Also the `iret` hypercall, the way back from
//! such a bounce.

use alloc::string::String;
use alloc::format;

use crate::cpuid;
use crate::domain::{Domain, TrapHandler};
use crate::guest_access::{is_canonical, GuestMemory};
use crate::mm::{MachineMemory, PAGE_SIZE};
use crate::regs::TrapFrame;

/// Xen's forced-emulation prefix followed by `cpuid`: `ud2; .ascii "xen"; cpuid`.
pub const FEP_CPUID: [u8; 7] = [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2];

/// The guest kernel's flat code selector (`FLAT_KERNEL_CS64`).
pub const FLAT_KERNEL_CS: u64 = 0xe033;
/// The guest kernel's flat stack selector (`FLAT_KERNEL_SS64`).
pub const FLAT_KERNEL_SS: u64 = 0xe02b;

const EFLAGS_TF: u64 = 1 << 8;
const EFLAGS_IF: u64 = 1 << 9;
const EFLAGS_DF: u64 = 1 << 10;
const EFLAGS_IOPL: u64 = 3 << 12;
const EFLAGS_NT: u64 = 1 << 14;
const EFLAGS_RF: u64 = 1 << 16;
const EFLAGS_VM: u64 = 1 << 17;
const EFLAGS_AC: u64 = 1 << 18;

/// `trap_info.flags` bit: mask events while the handler runs.
const TI_DISABLE_EVENTS: u8 = 1 << 2;

/// What to do with the guest after a trap.
#[derive(Debug)]
pub enum TrapDecision {
    /// Continue the guest with the (possibly updated) frame.
    Resume,
    /// Crash the domain for this reason.
    Crash(String),
}

/// Machine services the trap emulation needs.
pub trait CpuOps {
    /// Native CPUID.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// Writes an emulated segment-base MSR (FS, GS, shadow GS), already
    /// checked canonical.
    fn write_segment_base(&mut self, msr: u32, value: u64);
    /// Reads a segment-base MSR.
    fn read_segment_base(&self, msr: u32) -> u64;
}

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;

/// Exception mnemonics, for crash reports.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF(9)", "#TS", "#NP", "#SS", "#GP", "#PF",
        "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC",
        "#SX", "#31",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

/// Handles exception `frame.vector` raised by `dom`'s vCPU `vcpu`.
pub fn handle(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    cr2: u64,
    mem: &mut dyn MachineMemory,
    cpu: &mut dyn CpuOps,
) -> TrapDecision {
    let Some(l4) = dom.vcpus.get(vcpu).map(|v| v.kernel_l4) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    let mut insn = [0u8; 16];
    let insn_len = fetch(&GuestMemory::new(mem, l4), frame.rip, &mut insn);
    let insn = &insn[..insn_len];

    match frame.vector {
        6 if insn.starts_with(&FEP_CPUID) => {
            let [a, b, c, d] = cpuid::pv_cpuid(frame.rax as u32, frame.rcx as u32, &|l, s| cpu.cpuid(l, s));
            [frame.rax, frame.rbx, frame.rcx, frame.rdx] = [a.into(), b.into(), c.into(), d.into()];
            frame.rip = frame.rip.wrapping_add(FEP_CPUID.len() as u64);
            return TrapDecision::Resume;
        }
        13 => {
            if let Some(done) = emulate_privileged(dom, vcpu, frame, insn, cpu) {
                return done;
            }
        }
        _ => {}
    }
    let (vector, error_code) = software_interrupt(frame, insn).unwrap_or((frame.vector, frame.error_code));
    bounce(dom, vcpu, frame, vector, error_code, cr2, mem)
}

/// Reads up to 16 instruction bytes at `rip`, stopping at the first
/// unreadable byte; returns how many were read.
fn fetch(g: &GuestMemory, rip: u64, buf: &mut [u8; 16]) -> usize {
    let first = (PAGE_SIZE as u64 - (rip % PAGE_SIZE as u64)).min(16) as usize;
    if g.copy_from(rip, &mut buf[..first]).is_err() {
        return 0;
    }
    if first < 16 && g.copy_from(rip.wrapping_add(first as u64), &mut buf[first..]).is_ok() {
        return 16;
    }
    first
}

/// A `#GP` from `int $N` whose gate the hardware refused: the vector the
/// guest meant (decoded, as QEMU's error code is unreliable) and no error code.
fn software_interrupt(frame: &mut TrapFrame, insn: &[u8]) -> Option<(u64, u64)> {
    if frame.vector == 13 {
        if let [0xcd, n, ..] = insn {
            frame.rip = frame.rip.wrapping_add(2);
            return Some((u64::from(*n), u64::MAX));
        }
    }
    None
}

/// Emulates the privileged instructions a PV kernel executes: returns `None`
/// if the instruction is not one of them.
fn emulate_privileged(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    insn: &[u8],
    cpu: &mut dyn CpuOps,
) -> Option<TrapDecision> {
    let (rex, body) = match insn {
        [r @ 0x40..=0x4f, rest @ ..] => (*r, rest),
        _ => (0, insn),
    };
    match body {
        // mov %crN, %reg
        [0x0f, 0x20, modrm, ..] if modrm >> 6 == 3 => {
            let cr = (modrm >> 3) & 7 | if rex & 4 != 0 { 8 } else { 0 };
            let reg = modrm & 7 | if rex & 1 != 0 { 8 } else { 0 };
            let value = match cr {
                0 => 0x8005_003b, // PE MP ET NE WP AM PG, TS clear
                3 => dom.vcpus.get(vcpu)?.kernel_l4.addr(),
                4 => 0x6f0, // PAE PSE PGE OSFXSR OSXMMEXCPT
                _ => return None,
            };
            *gpr(frame, reg) = value;
            frame.rip = frame.rip.wrapping_add(3 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // wrmsr / rdmsr
        [0x0f, op @ (0x30 | 0x32), ..] => {
            let msr = frame.rcx as u32;
            if !matches!(msr, MSR_FS_BASE | MSR_GS_BASE | MSR_SHADOW_GS_BASE) {
                return None;
            }
            if *op == 0x30 {
                let value = (frame.rdx << 32) | (frame.rax & 0xffff_ffff);
                if !is_canonical(value) {
                    return None;
                }
                cpu.write_segment_base(msr, value);
            } else {
                let value = cpu.read_segment_base(msr);
                frame.rax = value & 0xffff_ffff;
                frame.rdx = value >> 32;
            }
            frame.rip = frame.rip.wrapping_add(2 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        _ => None,
    }
}

fn gpr(frame: &mut TrapFrame, index: u8) -> &mut u64 {
    match index {
        0 => &mut frame.rax,
        1 => &mut frame.rcx,
        2 => &mut frame.rdx,
        3 => &mut frame.rbx,
        4 => &mut frame.rsp,
        5 => &mut frame.rbp,
        6 => &mut frame.rsi,
        7 => &mut frame.rdi,
        8 => &mut frame.r8,
        9 => &mut frame.r9,
        10 => &mut frame.r10,
        11 => &mut frame.r11,
        12 => &mut frame.r12,
        13 => &mut frame.r13,
        14 => &mut frame.r14,
        _ => &mut frame.r15,
    }
}

/// Offset of `vcpu_info[v].evtchn_upcall_mask` in shared_info.
fn upcall_mask_offset(vcpu: usize) -> usize {
    vcpu * 64 + 1
}

/// Reads or writes vCPU `vcpu`'s upcall mask in the shared_info page.
fn upcall_mask(dom: &Domain, vcpu: usize, mem: &mut dyn MachineMemory, set: Option<bool>) -> u8 {
    let off = upcall_mask_offset(vcpu);
    match mem.frame_mut(dom.shared_info).and_then(|f| f.get_mut(off)) {
        Some(byte) => {
            if let Some(v) = set {
                *byte = v as u8;
            }
            *byte
        }
        None => 1,
    }
}

/// Delivers exception `vector` to the guest's trap-table handler, building
/// Xen's bounce frame on the guest kernel stack:
/// `rcx, r11, [error_code], rip, cs | saved_upcall_mask << 32, rflags, rsp, ss`.
fn bounce(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    vector: u64,
    error_code: u64,
    cr2: u64,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let crash = |what: &str| {
        TrapDecision::Crash(format!(
            "unhandled {} (vector {vector}, error {:#x}{}){what}",
            vector_name(vector),
            frame.error_code,
            if vector == 14 { format!(", cr2 {cr2:#x}") } else { String::new() }
        ))
    };
    let Some(v) = dom.vcpus.get(vcpu) else { return crash("") };
    let handler: TrapHandler = v.traps.get(vector as usize).copied().unwrap_or_default();
    if handler.address == 0 {
        return crash(": no trap handler registered");
    }
    // Software interrupts need a gate the guest made reachable (DPL 3).
    let is_soft = error_code == u64::MAX;
    if is_soft && handler.flags & 3 != 3 {
        return crash(": software interrupt through a DPL 0 gate");
    }
    let has_error = !is_soft && matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);

    let saved_mask = upcall_mask(dom, vcpu, mem, None);
    if vector == 14 {
        // Xen reports the fault address in vcpu_info.arch.cr2.
        if let Some(f) = mem.frame_mut(dom.shared_info) {
            let off = vcpu * 64 + 0x10;
            if let Some(slot) = f.get_mut(off..off + 8) {
                slot.copy_from_slice(&cr2.to_le_bytes());
            }
        }
    }
    let cs = (frame.cs & !3) | (u64::from(saved_mask) << 32);
    let rflags = (frame.rflags & !EFLAGS_IF) | if saved_mask == 0 { EFLAGS_IF } else { 0 };
    let mut words = [0u64; 8];
    let mut n = 0;
    for w in [frame.rcx, frame.r11] {
        words[n] = w;
        n += 1;
    }
    if has_error {
        words[n] = error_code;
        n += 1;
    }
    for w in [frame.rip, cs, rflags, frame.rsp, frame.ss] {
        words[n] = w;
        n += 1;
    }
    let sp = (frame.rsp & !15).wrapping_sub(8 * n as u64);
    let mut bytes = [0u8; 64];
    for (i, w) in words[..n].iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    if !crate::guest_access::is_guest_addr(sp) || GuestMemory::new(mem, v.kernel_l4).copy_to(sp, &bytes[..n * 8]).is_err() {
        return crash(": the guest kernel stack is not writable");
    }
    if handler.flags & TI_DISABLE_EVENTS != 0 {
        upcall_mask(dom, vcpu, mem, Some(true));
    }
    frame.rsp = sp;
    frame.rip = handler.address;
    frame.cs = FLAT_KERNEL_CS;
    frame.ss = FLAT_KERNEL_SS;
    frame.rflags = (frame.rflags & !(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF | EFLAGS_VM | EFLAGS_AC | EFLAGS_DF | EFLAGS_IOPL)) | EFLAGS_IF;
    TrapDecision::Resume
}

/// The `iret` hypercall: restore the context saved in the `iret_context` at
/// the guest's stack pointer (`rax, r11, rcx, flags, rip, cs, rflags, rsp, ss`).
pub fn iret(dom: &mut Domain, vcpu: usize, frame: &mut TrapFrame, mem: &mut dyn MachineMemory) -> TrapDecision {
    const VGCF_IN_SYSCALL: u64 = 1 << 8;
    let Some(l4) = dom.vcpus.get(vcpu).map(|v| v.kernel_l4) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    let mut raw = [0u8; 72];
    if GuestMemory::new(mem, l4).copy_from(frame.rsp, &mut raw).is_err() {
        return TrapDecision::Crash(format!("iret: unreadable frame at {:#x}", frame.rsp));
    }
    let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let [rax, r11, rcx, flags, rip, cs, rflags, rsp, ss] = core::array::from_fn(w);
    if cs & 3 != 3 {
        // Kernel-mode return; user mode needs the kernel/user split (CPU issue).
    } else if cs != FLAT_KERNEL_CS {
        return TrapDecision::Crash(format!("iret: to user mode (cs {cs:#x}) is not supported yet"));
    }
    if !is_canonical(rip) || !is_canonical(rsp) {
        return TrapDecision::Crash(format!("iret: non-canonical rip {rip:#x} or rsp {rsp:#x}"));
    }
    frame.rax = rax;
    if flags & VGCF_IN_SYSCALL == 0 {
        frame.r11 = r11;
        frame.rcx = rcx;
    }
    frame.rip = rip;
    frame.cs = FLAT_KERNEL_CS;
    let _ = ss;
    frame.ss = FLAT_KERNEL_SS;
    frame.rsp = rsp;
    frame.rflags = (rflags & !(EFLAGS_IOPL | EFLAGS_VM | EFLAGS_NT)) | EFLAGS_IF;
    upcall_mask(dom, vcpu, mem, Some(rflags & EFLAGS_IF == 0));
    TrapDecision::Resume
}
