//! Guest exceptions: emulate what a PV kernel may not do natively (Xen's
//! forced-emulation CPUID, reading %cr3, writing the segment-base MSRs),
//! bounce the rest to the guest's own handler with Xen's frame, or crash
//! the guest when it has none. Also the `iret` hypercall, the way back from
//! such a bounce.
//!
//! Split along Xen's lines: this module dispatches an exception and holds
//! what the parts share; [`bounce`] builds bounce frames (Xen's
//! `create_bounce_frame` and its callers), [`emul_priv_op`] emulates
//! privileged instructions (X:`xen/arch/x86/pv/emul-priv-op.c`),
//! [`emul_io`] port I/O (the `guest_io_*` part of that file), and [`iret`]
//! the return (X:`xen/arch/x86/pv/iret.c`).

mod bounce;
mod emul_io;
mod emul_priv_op;
mod iret;

use alloc::format;
use alloc::string::String;

use guest_abi::arch_x86 as abi_x86;

use crate::cpuid;
use crate::domain::{Callback, Domain, TrapHandler, Vcpu};
use crate::guest_access::PTE_ADDR_MASK;
use crate::guest_access::{is_canonical, GuestMemory};
use crate::mm::frame_table::FrameTable;
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{MachineMemory, PAGE_SIZE};
use crate::ptwr;
use crate::regs::TrapFrame;

pub use bounce::{
    deliver_nmi, deliver_pending, deliver_upcall, deliver_upcall_fast, failsafe, page_fault_fast, reload_segments,
    syscall_from_user, syscall_from_user_fast,
};
pub use emul_io::port_reserved;
pub use emul_priv_op::{segment_base_msr_fast, CR4_FSGSBASE, MSR_FS_BASE, MSR_GS_BASE, MSR_SHADOW_GS_BASE};
pub use iret::{iret, iret_fast, recheck_return};

use bounce::bounce;
use emul_io::emulate_port_io;
use emul_priv_op::emulate_privileged;

/// Xen's forced-emulation prefix followed by `cpuid`: `ud2; .ascii "xen"; cpuid`.
pub const FEP_CPUID: [u8; 7] = [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2];

/// The guest kernel's flat code selector (`FLAT_KERNEL_CS64`), as a frame
/// holds it.
pub const FLAT_KERNEL_CS: u64 = abi_x86::FLAT_KERNEL_CS as u64;
/// Xen's flat 32-bit user code selector (`FLAT_USER_CS32`): what the frame
/// of a `syscall` from 32-bit code says.
pub const FLAT_USER_CS32: u64 = abi_x86::FLAT_USER_CS32 as u64;
/// The guest kernel's flat stack selector (`FLAT_KERNEL_SS64`).
pub const FLAT_KERNEL_SS: u64 = abi_x86::FLAT_KERNEL_SS as u64;

const EFLAGS_TF: u64 = 1 << 8;
const EFLAGS_IF: u64 = 1 << 9;
const EFLAGS_DF: u64 = 1 << 10;
const EFLAGS_IOPL: u64 = 3 << 12;
const EFLAGS_NT: u64 = 1 << 14;
const EFLAGS_RF: u64 = 1 << 16;
const EFLAGS_VM: u64 = 1 << 17;
const EFLAGS_AC: u64 = 1 << 18;

/// `trap_info.flags` bit: mask events while the handler runs.
const TI_DISABLE_EVENTS: u8 = abi_x86::TI_IF;

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
    /// Reads `size` (1, 2 or 4) bytes from I/O port `port`.
    fn port_in(&mut self, port: u16, size: u8) -> u32;
    /// Writes `size` bytes to I/O port `port`.
    fn port_out(&mut self, port: u16, size: u8, value: u32);
    /// Clears CR0.TS (the guest's FPU becomes usable again).
    fn clts(&mut self);
    /// Sets or clears CR0.TS for the running vCPU (its virtual TS).
    fn set_ts(&mut self, set: bool);
    /// Writes back and invalidates the caches.
    fn wbinvd(&mut self);
    /// Native CPUID.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// Writes an emulated segment-base MSR (FS, GS, shadow GS), already
    /// checked canonical.
    fn write_segment_base(&mut self, msr: u32, value: u64);
    /// Reads a segment-base MSR.
    fn read_segment_base(&self, msr: u32) -> u64;
    /// Sets or clears CR4.FSGSBASE for the running vCPU (its guest
    /// kernel's choice: `Vcpu::cr4_fsgsbase`).
    fn set_fsgsbase(&mut self, on: bool);
}

/// Exception mnemonics, for crash reports.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF(9)", "#TS", "#NP", "#SS", "#GP", "#PF",
        "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX",
        "#31",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

/// Handles exception `frame.vector` raised by `dom`'s vCPU `vcpu`. `cr2` is
/// the fault's extra state: CR2 for a #PF, the hardware DR6 for a #DB.
pub fn handle(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    (cr2, now_ns): (u64, u64),
    (mem, ft): (&mut dyn MachineMemory, &mut FrameTable),
    cpu: &mut dyn CpuOps,
) -> TrapDecision {
    let Some((l4, kernel_mode)) = dom.vcpus.get(vcpu).map(|v| (v.current_l4(), v.kernel_mode())) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    // Only #UD (forced emulation) and #GP (privileged instructions, int $N)
    // look at the instruction.
    let mut insn = [0u8; 16];
    // #PF too when it may be a write to a read-only page table (ptwr).
    let ptwr = frame.vector == 14 && frame.error_code & 3 == 3;
    let insn_len = if matches!(frame.vector, 6 | 13) || ptwr {
        fetch(&GuestMemory::new(mem, l4), frame.rip, &mut insn)
    } else {
        0
    };
    let insn = &insn[..insn_len];

    match frame.vector {
        1 => {
            // As Xen's do_debug: the status goes where get_debugreg(6) reads it.
            if let Some(v) = dom.vcpus.get_mut(vcpu) {
                v.debugreg[6] = crate::hypercall::debugreg::merge_dr6(v.debugreg[6], cr2);
            }
        }
        6 if insn.starts_with(&FEP_CPUID) => {
            let [a, b, c, d] = cpuid::pv_cpuid(frame.rax as u32, frame.rcx as u32, &|l, s| cpu.cpuid(l, s));
            [frame.rax, frame.rbx, frame.rcx, frame.rdx] = [a.into(), b.into(), c.into(), d.into()];
            frame.rip = frame.rip.wrapping_add(FEP_CPUID.len() as u64);
            return retire(dom, vcpu, frame, mem);
        }
        7 => {
            // #NM: the guest's virtual CR0.TS was set (fpu_taskswitch). As in
            // Xen, clear it, make the FPU usable, and give the guest its #NM.
            cpu.clts();
            let Some(v) = dom.vcpus.get_mut(vcpu) else { return TrapDecision::Crash(String::from("no such vCPU")) };
            if !core::mem::replace(&mut v.fpu_ts, false) {
                return TrapDecision::Resume; // TS was stale: just retry
            }
        }
        14 if ptwr => {
            let mut mmu = Mmu { ft, mem: &mut *mem };
            if ptwr::emulate_fault(dom, vcpu, frame, cr2, frame.error_code, insn, &mut mmu) {
                return retire(dom, vcpu, frame, mem);
            }
            if crate::msi::drop_ro_write(dom, vcpu, frame, cr2, insn, ft, mem) {
                return retire(dom, vcpu, frame, mem);
            }
        }
        13 if kernel_mode => {
            if let Some(done) = emulate_privileged(dom, vcpu, frame, insn, (mem, ft, now_ns), cpu) {
                return match done {
                    TrapDecision::Resume => retire(dom, vcpu, frame, mem),
                    crash => crash,
                };
            }
        }
        _ => {}
    }
    if let Some(n) = software_interrupt(frame, insn) {
        return soft_interrupt(dom, vcpu, frame, n, kernel_mode, mem);
    }
    bounce(dom, vcpu, frame, frame.vector, frame.error_code, cr2, mem)
}

/// After an instruction the hypervisor emulated: with EFLAGS.TF set, the
/// single-step #DB the instruction would have raised, with DR6.BS, as Xen
/// does when its emulator retires an instruction under single step.
fn retire(dom: &mut Domain, vcpu: usize, frame: &mut TrapFrame, mem: &mut dyn MachineMemory) -> TrapDecision {
    use crate::hypercall::debugreg::{merge_dr6, DR6_DEFAULT};
    const DR6_BS: u64 = 1 << 14;
    if frame.rflags & EFLAGS_TF == 0 {
        return TrapDecision::Resume;
    }
    if let Some(v) = dom.vcpus.get_mut(vcpu) {
        v.debugreg[6] = merge_dr6(v.debugreg[6], DR6_DEFAULT | DR6_BS);
    }
    bounce(dom, vcpu, frame, 1, 0, 0, mem)
}

/// Xen's `permit_softint`: an `int $N` the IDT refused reaches the guest's
/// handler when the guest's own gate allows the caller: from guest kernel
/// mode a DPL of at least 1 (the 32-bit PV kernel's ring), from guest user
/// mode DPL 3.
pub fn permit_softint(dpl: u8, kernel_mode: bool) -> bool {
    dpl >= if kernel_mode { 1 } else { 3 }
}

/// `int $n` through a hypervisor gate of DPL 0: the guest's handler for
/// `n` if its gate permits the caller (no error code, `rip` after the
/// instruction), else the `#GP` the hardware raised, with the error code
/// naming the IDT entry (`n << 3 | 2`) and `rip` at the instruction.
fn soft_interrupt(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    n: u8,
    kernel_mode: bool,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let dpl =
        dom.vcpus.get(vcpu).and_then(|v| v.traps.get(usize::from(n))).map_or(0, |t| t.flags & abi_x86::TI_DPL_MASK);
    if permit_softint(dpl, kernel_mode) {
        frame.rip = frame.rip.wrapping_add(2);
        bounce(dom, vcpu, frame, u64::from(n), SOFTWARE_INTERRUPT, 0, mem)
    } else {
        bounce(dom, vcpu, frame, 13, (u64::from(n) << 3) | 2, 0, mem)
    }
}

/// The page-fault error code's user-mode bit (`PFEC_user_mode`).
const PFEC_USER: u64 = 1 << 2;

/// The `error_code` [`bounce`] takes for a software interrupt (no error
/// code is pushed).
const SOFTWARE_INTERRUPT: u64 = u64::MAX;

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
/// guest meant (decoded, as QEMU's error code is unreliable).
fn software_interrupt(frame: &TrapFrame, insn: &[u8]) -> Option<u8> {
    match insn {
        [0xcd, n, ..] if frame.vector == 13 => Some(*n),
        _ => None,
    }
}

/// vCPU `vcpu`'s `vcpu_info.arch.cr2`.
fn cr2_slot<'m>(dom: &Domain, vcpu: usize, mem: &'m mut dyn MachineMemory) -> Option<&'m mut [u8; 8]> {
    let (info, base) = dom.vcpu_info(vcpu);
    let off = base + 0x10;
    mem.frame_mut(info)?.get_mut(off..off + 8)?.try_into().ok()
}

/// Reads or writes vCPU `vcpu`'s upcall mask (`evtchn_upcall_mask`, byte 1
/// of its `vcpu_info`).
fn upcall_mask(dom: &Domain, vcpu: usize, mem: &mut dyn MachineMemory, set: Option<bool>) -> u8 {
    let (info, base) = dom.vcpu_info(vcpu);
    match mem.frame_mut(info).and_then(|f| f.get_mut(base + 1)) {
        Some(byte) => {
            if let Some(v) = set {
                *byte = v as u8;
            }
            *byte
        }
        None => 1,
    }
}

#[cfg(test)]
mod tests;
