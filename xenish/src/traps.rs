//! Guest exceptions: emulate what a PV kernel may not do natively (Xen's
//! forced-emulation CPUID, reading %cr3, writing the segment-base MSRs),
//! bounce the rest to the guest's own handler with Xen's frame, or crash
//! the guest when it has none. Also the `iret` hypercall, the way back from
//! such a bounce.

use alloc::format;
use alloc::string::String;

use guest_abi::arch_x86 as abi_x86;

use crate::cpuid;
use crate::domain::{Callback, Domain, TrapHandler};
use crate::guest_access::PTE_ADDR_MASK;
use crate::guest_access::{is_canonical, GuestMemory};
use crate::mm::frame_table::FrameTable;
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{MachineMemory, PAGE_SIZE};
use crate::ptwr;
use crate::regs::TrapFrame;

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
}

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;

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
    let Some((l4, kernel_mode)) = dom.vcpus.get(vcpu).map(|v| (v.current_l4(), v.kernel_mode)) else {
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

/// Emulates the privileged instructions a PV kernel executes: returns `None`
/// if the instruction is not one of them.
fn emulate_privileged(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    insn: &[u8],
    (mem, ft, now_ns): (&mut dyn MachineMemory, &mut FrameTable, u64),
    cpu: &mut dyn CpuOps,
) -> Option<TrapDecision> {
    if let Some(done) = emulate_port_io(dom, vcpu, frame, insn, (&mut *mem, now_ns), cpu) {
        return Some(done);
    }
    let (rex, body) = match insn {
        [r @ 0x40..=0x4f, rest @ ..] => (*r, rest),
        _ => (0, insn),
    };
    let cr0 = |dom: &Domain| -> Option<u64> {
        // PE MP ET NE WP AM PG, and TS as the guest set it.
        Some(0x8005_0033 | if dom.vcpus.get(vcpu)?.fpu_ts { CR0_TS } else { 0 })
    };
    match body {
        // mov %crN, %reg
        [0x0f, 0x20, modrm, ..] if modrm >> 6 == 3 => {
            let cr = (modrm >> 3) & 7 | if rex & 4 != 0 { 8 } else { 0 };
            let reg = modrm & 7 | if rex & 1 != 0 { 8 } else { 0 };
            let value = match cr {
                0 => cr0(dom)?,
                2 => cr2_slot(dom, vcpu, mem).map(|b| u64::from_le_bytes(*b))?,
                3 => dom.vcpus.get(vcpu)?.kernel_l4.addr(),
                4 => GUEST_CR4,
                _ => return None,
            };
            *frame.gpr_mut(reg) = value;
            frame.rip = frame.rip.wrapping_add(3 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // mov %reg, %crN (Xen's pv_emul_write_cr): CR0 may change only TS,
        // CR2 is the guest's own, CR3 is a new kernel base pointer (as
        // MMUEXT_NEW_BASEPTR), CR4 writes are accepted and the guest keeps
        // seeing the CR4 Xen gives it.
        [0x0f, 0x22, modrm, ..] if modrm >> 6 == 3 => {
            let cr = (modrm >> 3) & 7 | if rex & 4 != 0 { 8 } else { 0 };
            let value = *frame.gpr_mut(modrm & 7 | if rex & 1 != 0 { 8 } else { 0 });
            match cr {
                0 if (value ^ cr0(dom)?) & !CR0_TS == 0 => {
                    let ts = value & CR0_TS != 0;
                    dom.vcpus.get_mut(vcpu)?.fpu_ts = ts;
                    cpu.set_ts(ts);
                }
                2 => cr2_slot(dom, vcpu, mem)?.copy_from_slice(&value.to_le_bytes()),
                3 => {
                    let new = crate::mm::Mfn((value & PTE_ADDR_MASK) >> 12);
                    let rights = MapRights::of(dom);
                    let mut mmu = Mmu { ft, mem };
                    mmu.get_page_and_type(new, &rights, PageType::L4).ok()?;
                    let old = core::mem::replace(&mut dom.vcpus.get_mut(vcpu)?.kernel_l4, new);
                    mmu.put_page_and_type(old);
                }
                4 => {}
                _ => return None,
            }
            frame.rip = frame.rip.wrapping_add(3 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // cli / sti with I/O privilege: Xen makes them no-ops ("fast and
        // loose": a later popf could not be trapped), else #GP.
        [0xfa | 0xfb, ..] => {
            let v = dom.vcpus.get(vcpu)?;
            let architectural = dom.vm_assist & (1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
            if v.iopl == 0 && !architectural {
                return None;
            }
            frame.rip = frame.rip.wrapping_add(1 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // clts: the virtual TS is cleared, as fpu_taskswitch(0) does.
        [0x0f, 0x06, ..] => {
            dom.vcpus.get_mut(vcpu)?.fpu_ts = false;
            cpu.set_ts(false);
            frame.rip = frame.rip.wrapping_add(2 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // wbinvd / invd: a cache flush for a domain allowed one (Xen's
        // cache_flush_permitted: the privileged domain here), else ignored.
        [0x0f, 0x08 | 0x09, ..] => {
            if crate::hypercall::xsm::privileged(dom).is_ok() {
                cpu.wbinvd();
            }
            frame.rip = frame.rip.wrapping_add(2 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // wrmsr / rdmsr of the machine-check MSRs: Xen's vMCE, with no
        // error ever reported.
        [0x0f, op @ (0x30 | 0x32), ..] if vmce_read(frame.rcx as u32).is_some() => {
            if *op == 0x32 {
                let value = vmce_read(frame.rcx as u32).unwrap_or(0);
                frame.rax = value & 0xffff_ffff;
                frame.rdx = value >> 32;
            }
            frame.rip = frame.rip.wrapping_add(2 + u64::from(rex != 0));
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

/// Ports the hypervisor itself drives; no guest may touch them: the PICs,
/// the PIT and speaker gate, CMOS, QEMU's debug-exit port, COM1.
pub fn port_reserved(port: u16) -> bool {
    matches!(port, 0x20..=0x21 | 0x40..=0x43 | 0x61 | 0x70..=0x71 | 0xa0..=0xa1 | 0xf4 | 0x3f8..=0x3ff)
}

/// The port and width (bytes) of an `in`/`out` instruction, `None` for any
/// other instruction.
fn port_access(frame: &TrapFrame, insn: &[u8]) -> Option<(u16, u32)> {
    let (opsize16, body) = match insn {
        [0x66, rest @ ..] => (true, rest),
        _ => (false, insn),
    };
    let op = *body.first()?;
    let size = match (op & 1, opsize16) {
        (0, _) => 1,
        (_, true) => 2,
        _ => 4,
    };
    match op {
        0xe4..=0xe7 => Some((u16::from(*body.get(1)?), size)),
        0xec..=0xef => Some((frame.rdx as u16, size)),
        _ => None,
    }
}

/// Whether vCPU `vcpu` may access `bytes` ports from `port` (Xen's
/// `guest_io_okay`): its virtual IOPL covers the mode it runs in (the
/// kernel counts as ring 1, or ring 0 with `VMASST_TYPE_architectural_iopl`;
/// user mode needs IOPL 3), or the ports are below its I/O bitmap's limit
/// and their bits in the bitmap (`PHYSDEVOP_set_iobitmap`, read through
/// the kernel's page tables) are clear. A bitmap byte that cannot be read
/// forbids its ports, as in Xen.
fn io_okay(dom: &Domain, vcpu: usize, port: u16, bytes: u32, mem: &mut dyn MachineMemory) -> bool {
    let Some(v) = dom.vcpus.get(vcpu) else { return false };
    let architectural = dom.vm_assist & (1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
    let cpl = match (v.kernel_mode, architectural) {
        (false, _) => 3,
        (true, true) => 0,
        (true, false) => 1,
    };
    if v.iopl >= cpl {
        return true;
    }
    let (bitmap, limit) = v.iobitmap;
    if u32::from(port) + bytes > limit {
        return false;
    }
    let g = GuestMemory::new(mem, v.kernel_l4);
    let at = bitmap.wrapping_add(u64::from(port >> 3));
    let mut b = [0xffu8; 2];
    for (i, byte) in b.iter_mut().enumerate() {
        let mut one = [0u8];
        match g.copy_from(at.wrapping_add(i as u64), &mut one) {
            Ok(()) => *byte = one[0],
            Err(_) => break,
        }
    }
    let wanted = ((1u32 << bytes) - 1) << (port & 7);
    u32::from(u16::from_le_bytes(b)) & wanted == 0
}

/// `in`/`out` from a guest allowed the ports by its virtual IOPL
/// (`PHYSDEVOP_set_iopl`) or I/O bitmap ([`io_okay`]), as Xen's
/// `guest_io_read`/`guest_io_write` treat it: a privileged domain's is
/// performed on its behalf, except on the ports the hypervisor owns; an
/// unprivileged domain has no ports, so it reads all ones, its writes are
/// dropped, and only the PCI address latch (0xcf8) keeps what it wrote.
/// Without that permission it is the #GP it was.
fn emulate_port_io(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    insn: &[u8],
    (mem, now_ns): (&mut dyn MachineMemory, u64),
    cpu: &mut dyn CpuOps,
) -> Option<TrapDecision> {
    let (port, size) = port_access(frame, insn)?;
    if !io_okay(dom, vcpu, port, size, mem) {
        return None;
    }
    if crate::hypercall::xsm::privileged(dom).is_err() {
        return emulate_absent_ports(dom, frame, insn);
    }
    let (opsize16, body) = match insn {
        [0x66, rest @ ..] => (true, rest),
        _ => (false, insn),
    };
    let (op, imm) = (*body.first()?, body.get(1).copied());
    let wide = op & 1 == 1;
    let size: u8 = if !wide {
        1
    } else if opsize16 {
        2
    } else {
        4
    };
    let (port, len) = match op {
        0xe4..=0xe7 => (u16::from(imm?), 2),
        0xec..=0xef => (frame.rdx as u16, 1),
        _ => return None,
    };
    let ports = (0..u16::from(size)).map(|i| port.wrapping_add(i));
    let direct = ports.clone().all(|p| !port_reserved(p));
    let mask = if size == 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 };
    if matches!(op, 0xe4 | 0xe5 | 0xec | 0xed) {
        let v = if direct {
            cpu.port_in(port, size)
        } else {
            // Byte by byte, as Xen's guest_io_read: the virtual PIT channel
            // 2, all ones from the hypervisor's own ports, the rest real.
            ports.clone().enumerate().fold(0u32, |v, (i, p)| {
                let byte = match p {
                    0x42 | 0x43 | 0x61 => dom.pit.read(p, now_ns),
                    _ if port_reserved(p) => 0xff,
                    _ => cpu.port_in(p, 1) as u8,
                };
                v | u32::from(byte) << (8 * i)
            })
        } & mask;
        frame.rax = if size == 4 { u64::from(v) } else { (frame.rax & !u64::from(mask)) | u64::from(v) };
    } else if direct {
        cpu.port_out(port, size, frame.rax as u32 & mask);
    } else {
        for (i, p) in ports.enumerate() {
            let byte = (frame.rax >> (8 * i)) as u8;
            match p {
                0x42 | 0x43 | 0x61 => dom.pit.write(p, byte, now_ns),
                // Writes to the hypervisor's own ports are dropped.
                _ if port_reserved(p) => {}
                _ => cpu.port_out(p, 1, u32::from(byte)),
            }
        }
    }
    frame.rip = frame.rip.wrapping_add(len + u64::from(opsize16));
    Some(TrapDecision::Resume)
}

/// Port I/O of an unprivileged domain with a virtual IOPL: no port is its
/// own, so reads give all ones and writes vanish, but for a 4-byte access
/// to the PCI address port 0xcf8, which Xen latches per domain (so a probe
/// reads back what it wrote, then finds no device at 0xcfc).
fn emulate_absent_ports(dom: &mut Domain, frame: &mut TrapFrame, insn: &[u8]) -> Option<TrapDecision> {
    let (opsize16, body) = match insn {
        [0x66, rest @ ..] => (true, rest),
        _ => (false, insn),
    };
    let op = *body.first()?;
    let size: u32 = match (op & 1, opsize16) {
        (0, _) => 1,
        (_, true) => 2,
        _ => 4,
    };
    let (port, len) = match op {
        0xe4..=0xe7 => (u16::from(*body.get(1)?), 2),
        0xec..=0xef => (frame.rdx as u16, 1),
        _ => return None,
    };
    let latch = port == 0xcf8 && size == 4;
    if matches!(op, 0xe4 | 0xe5 | 0xec | 0xed) {
        let mask = if size == 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 };
        let v = if latch { dom.pci_cf8 } else { mask };
        frame.rax = if size == 4 { u64::from(v) } else { (frame.rax & !u64::from(mask)) | u64::from(v) };
    } else if latch {
        dom.pci_cf8 = frame.rax as u32;
    }
    frame.rip = frame.rip.wrapping_add(len + u64::from(opsize16));
    Some(TrapDecision::Resume)
}

/// Machine-check banks a guest sees (Xen's `GUEST_MC_BANK_NUM`).
const GUEST_MC_BANKS: u32 = 2;

/// What a guest reads from machine-check MSR `msr` (Xen's vMCE with no
/// error injected): `MCG_CAP` says two banks and nothing more, status
/// registers are clear, a bank's `CTL` is all ones; writes are accepted and
/// change nothing. `None` for any other MSR.
fn vmce_read(msr: u32) -> Option<u64> {
    const MCG_CAP: u32 = 0x179;
    const MCG_STATUS: u32 = 0x17a;
    const MC0_CTL: u32 = 0x400;
    match msr {
        MCG_CAP => Some(u64::from(GUEST_MC_BANKS)),
        MCG_STATUS => Some(0),
        _ if (MC0_CTL..MC0_CTL + 4 * GUEST_MC_BANKS).contains(&msr) => {
            Some(if (msr - MC0_CTL).is_multiple_of(4) { u64::MAX } else { 0 })
        }
        _ => None,
    }
}

/// CR0.TS.
const CR0_TS: u64 = 1 << 3;
/// The CR4 a PV guest kernel reads: PAE PSE PGE OSFXSR OSXMMEXCPT.
const GUEST_CR4: u64 = 0x6f0;

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

/// Where and how a bounce enters the guest kernel.
struct Bounce {
    /// Handler address.
    target: u64,
    /// Error code to push, if the event has one.
    error_code: Option<u64>,
    /// Mask events (set `evtchn_upcall_mask`) on entry.
    mask_events: bool,
    /// For the failsafe callback: the `ds, es, fs, gs` selectors to report.
    segments: Option<[u16; 4]>,
}

/// Builds Xen's bounce frame on the guest kernel stack and enters `b.target`
/// in guest kernel mode:
/// `rcx, r11, [ds, es, fs, gs], [error_code], rip, cs | saved_upcall_mask << 32,
/// rflags, rsp, ss` (the selectors only for the failsafe callback).
/// From user mode the vCPU first switches to kernel mode and the kernel
/// stack (`stack_switch`); a kernel-mode frame has its CS RPL cleared, which
/// is how the guest tells the two apart.
fn create_bounce_frame(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    b: Bounce,
    mem: &mut dyn MachineMemory,
) -> Result<(), String> {
    let Some(v) = dom.vcpus.get(vcpu) else { return Err(String::from("no such vCPU")) };
    let from_kernel = v.kernel_mode;
    let (stack, l4) = (if from_kernel { frame.rsp } else { v.kernel_sp }, v.kernel_l4);
    let saved_mask = upcall_mask(dom, vcpu, mem, None);
    let cs = if from_kernel { frame.cs & !3 } else { frame.cs | 3 } | (u64::from(saved_mask) << 32);
    let rflags = (frame.rflags & !EFLAGS_IF) | if saved_mask == 0 { EFLAGS_IF } else { 0 };

    if b.target == 0 {
        // Xen's create_bounce_frame crashes the domain for a null callback.
        return Err(String::from("no callback registered"));
    }
    let mut words = [0u64; 12];
    let mut n = 0;
    let mut push = |w: u64| {
        words[n] = w;
        n += 1;
    };
    push(frame.rcx);
    push(frame.r11);
    for sel in b.segments.into_iter().flatten() {
        push(u64::from(sel));
    }
    if let Some(e) = b.error_code {
        push(e);
    }
    for w in [frame.rip, cs, rflags, frame.rsp, frame.ss] {
        push(w);
    }
    let sp = (stack & !15).wrapping_sub(8 * n as u64);
    let mut bytes = [0u8; 96];
    for (i, w) in words[..n].iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    // The frame must not touch the hypervisor hole (nor wrap into it).
    let end = sp.wrapping_add(8 * n as u64);
    if !crate::guest_access::is_guest_addr(sp) || !crate::guest_access::is_guest_addr(end.wrapping_sub(1)) || end < sp {
        return Err(format!("bounce frame at {sp:#x} outside guest memory"));
    }
    let mut g = GuestMemory::new(mem, l4);
    if g.copy_to(sp, &bytes[..n * 8]).is_err() {
        let walk: alloc::vec::Vec<String> = g.walk(sp).iter().map(|e| format!("{e:#x}")).collect();
        let user_l4 = v.user_l4.map_or(0, |m| m.0);
        return Err(format!(
            "the guest kernel stack at {sp:#x} is not writable (from {} mode, cs {:#x}; kernel L4 {:#x}, user L4 \
             {user_l4:#x}; walk {})",
            if from_kernel { "kernel" } else { "user" },
            frame.cs,
            l4.0,
            walk.join(" ")
        ));
    }
    if b.mask_events {
        upcall_mask(dom, vcpu, mem, Some(true));
    }
    if let Some(v) = dom.vcpus.get_mut(vcpu) {
        v.kernel_mode = true;
    }
    frame.rsp = sp;
    frame.rip = b.target;
    frame.cs = FLAT_KERNEL_CS;
    frame.ss = FLAT_KERNEL_SS;
    // As Xen's create_bounce_frame: TF, NT, RF, VM and AC are cleared (as
    // a trap through an IDT gate would), DF is left as it was: a handler
    // clears it itself (only the syscall bounce clears it, see there).
    frame.rflags =
        (frame.rflags & !(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF | EFLAGS_VM | EFLAGS_AC | EFLAGS_IOPL)) | EFLAGS_IF;
    Ok(())
}

/// Delivers exception `vector` to the guest's trap-table handler.
fn bounce(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    vector: u64,
    error_code: u64,
    cr2: u64,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    // Built only when the guest is crashed: bounces are a hot path.
    let error = frame.error_code;
    let crash = |why: &str| {
        let cr2 = if vector == 14 { format!(", cr2 {cr2:#x}") } else { String::new() };
        TrapDecision::Crash(format!("unhandled {} (vector {vector}, error {error:#x}{cr2}){why}", vector_name(vector)))
    };
    let Some(v) = dom.vcpus.get(vcpu) else { return crash("") };
    let handler: TrapHandler = v.traps.get(vector as usize).copied().unwrap_or_default();
    if handler.address == 0 {
        return crash(": no trap handler registered");
    }
    let is_soft = error_code == SOFTWARE_INTERRUPT;
    let has_error = !is_soft && matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
    let mut error_code = error_code;
    if vector == 14 {
        // Xen reports the fault address in vcpu_info.arch.cr2, and sets the
        // error code's user bit by the guest's mode, not the CPU's ring
        // (the guest kernel runs in ring 3 too): pv_inject_event.
        if let Some(slot) = cr2_slot(dom, vcpu, mem) {
            slot.copy_from_slice(&cr2.to_le_bytes());
        }
        error_code = (error_code & !PFEC_USER) | if v.kernel_mode { 0 } else { PFEC_USER };
    }
    let b = Bounce {
        target: handler.address,
        error_code: has_error.then_some(error_code),
        mask_events: handler.flags & TI_DISABLE_EVENTS != 0,
        segments: None,
    };
    match create_bounce_frame(dom, vcpu, frame, b, mem) {
        Ok(()) => TrapDecision::Resume,
        Err(why) => crash(&format!(": {why}")),
    }
}

/// What a return to the guest delivers, in Xen's order: a pending NMI, then
/// a pending event upcall (on top of the NMI handler's frame if that left
/// events unmasked).
pub fn deliver_pending(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let nmi = deliver_nmi(dom, vcpu, frame, mem)?;
    Ok(deliver_upcall(dom, vcpu, frame, mem)? || nmi)
}

/// Delivers a pending NMI (`VCPUOP_send_nmi`) to the guest's NMI handler,
/// trap-table vector 2 (`CALLBACKTYPE_nmi` sets it too), unless one is
/// still being handled: Xen's `process_nmi`, run on every return to a
/// guest before event upcalls. NMIs stay masked until the handler's
/// `iret`; with no handler the NMI is dropped. Returns whether one was
/// delivered.
pub fn deliver_nmi(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let Some(v) = dom.vcpus.get_mut(vcpu) else { return Ok(false) };
    if !v.nmi_pending || v.nmi_masked {
        return Ok(false);
    }
    v.nmi_pending = false;
    let handler = v.traps.get(2).copied().unwrap_or_default();
    if handler.address == 0 {
        return Ok(false);
    }
    v.nmi_masked = true;
    let mask_events = handler.flags & TI_DISABLE_EVENTS != 0;
    create_bounce_frame(
        dom,
        vcpu,
        frame,
        Bounce { target: handler.address, error_code: None, mask_events, segments: None },
        mem,
    )?;
    Ok(true)
}

/// Delivers a pending event upcall: if `evtchn_upcall_pending` is set and
/// events are not masked, bounce to the event callback with events masked
/// (Xen's `test_all_events`, run on every return to a guest). Returns whether
/// an upcall was delivered.
pub fn deliver_upcall(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let Some(callback) = dom.vcpus.get(vcpu).map(|v| v.callbacks.event.address) else { return Ok(false) };
    let (info, off) = dom.vcpu_info(vcpu);
    let pending = match mem.frame(info).and_then(|f| f.get(off..off + 2)) {
        Some(&[pending, mask]) => pending != 0 && mask == 0,
        _ => false,
    };
    if !pending || callback == 0 {
        return Ok(false);
    }
    create_bounce_frame(
        dom,
        vcpu,
        frame,
        Bounce { target: callback, error_code: None, mask_events: true, segments: None },
        mem,
    )?;
    Ok(true)
}

/// Enters the guest's failsafe callback (`CALLBACKTYPE_failsafe`) with
/// Xen's failsafe frame `rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss`
/// on the guest kernel stack: what Xen does when reloading the guest's data
/// selectors fails (`load_segments`) and when the return to the guest
/// itself faults (`failsafe_callback` in entry.S). `segments` are the
/// selectors to report; `why` says what failed, for the crash report when
/// the guest registered no failsafe callback or the frame cannot be written.
/// Events are masked on entry if the callback was registered with
/// `CALLBACKF_mask_events` (`VGCF_failsafe_disables_events`).
pub fn failsafe(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    segments: [u16; 4],
    why: &str,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let Some(cb) = dom.vcpus.get(vcpu).map(|v| v.callbacks.failsafe) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    if cb.address == 0 {
        return TrapDecision::Crash(format!("{why}, and no failsafe callback is registered"));
    }
    let b = Bounce { target: cb.address, error_code: None, mask_events: cb.mask_events, segments: Some(segments) };
    match create_bounce_frame(dom, vcpu, frame, b, mem) {
        Ok(()) => TrapDecision::Resume,
        Err(e) => TrapDecision::Crash(format!("{why}, and the failsafe callback cannot be entered: {e}")),
    }
}

/// On a switch to vCPU `vcpu`, whose saved state is in `frame`: the data
/// selectors it had (`ds, es, fs, gs`) are loaded again, and any that no
/// longer loads (its GDT entry changed meanwhile) is loaded as null and
/// reported to the guest's failsafe callback, as Xen's `load_segments` does.
pub fn reload_segments(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let Some(v) = dom.vcpus.get(vcpu) else { return TrapDecision::Resume };
    let s = v.segments;
    let selectors = [s.ds, s.es, s.fs, s.gs];
    let gdt = |i: usize| crate::descriptors::gdt_entry(&v.gdt_frames, &*mem, i);
    let ldt = |i: usize| crate::descriptors::ldt_entry(&v.ldt_frames, v.ldt_ents, &*mem, i);
    if selectors.iter().all(|&sel| crate::descriptors::selector_loadable(sel, &gdt, &ldt)) {
        return TrapDecision::Resume;
    }
    failsafe(dom, vcpu, frame, selectors, "reloading a data segment selector failed", mem)
}

/// A `syscall` from guest user mode, or from 32-bit code (whose frame says
/// [`FLAT_USER_CS32`]): enter the kernel's syscall callback, the
/// `CALLBACKTYPE_syscall32` one for 32-bit code, as Xen's
/// `switch_to_kernel` does (events masked as the 64-bit callback asked, in
/// both cases). With no such callback registered, the guest gets `#UD` at
/// the instruction, as on Xen.
pub fn syscall_from_user(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let compat = frame.cs == FLAT_USER_CS32;
    let Some(cb) = dom.vcpus.get(vcpu).map(|v| Callback {
        address: if compat { v.callbacks.syscall32.address } else { v.callbacks.syscall.address },
        mask_events: v.callbacks.syscall.mask_events,
    }) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    if cb.address == 0 {
        frame.rip = frame.rcx.wrapping_sub(2);
        frame.rflags = frame.r11;
        return bounce(dom, vcpu, frame, 6, 0, 0, mem);
    }
    // The CPU put the return rip and rflags in rcx and r11.
    frame.rip = frame.rcx;
    frame.rflags = frame.r11;
    let b = Bounce { target: cb.address, error_code: None, mask_events: cb.mask_events, segments: None };
    match create_bounce_frame(dom, vcpu, frame, b, mem) {
        Ok(()) => {
            // Xen's switch_to_kernel clears DF for the system call entry.
            frame.rflags &= !EFLAGS_DF;
            TrapDecision::Resume
        }
        Err(why) => TrapDecision::Crash(format!("syscall bounce failed: {why}")),
    }
}

/// The `iret` hypercall: restore the context saved in the `iret_context` at
/// the guest's stack pointer (`rax, r11, rcx, flags, rip, cs, rflags, rsp, ss`).
/// A CS with RPL 3 returns to guest user mode (which needs a user page
/// table); RPL 0 stays in the kernel. CS and SS are loaded with RPL 3, as
/// Xen's `do_iret` forces, so a 64-bit PV guest may return to 32-bit code
/// (compatibility mode: Xen's `FLAT_RING3_CS32`, or a 32-bit code segment
/// of its own GDT or LDT).
///
/// Where the CPU's return to the guest would fault (a selector that does
/// not load, a non-canonical `rip`, a `rip` past a 32-bit segment's limit:
/// [`crate::descriptors::iret_target_ok`]), the guest's failsafe callback
/// is entered instead, as in Xen, with the data selectors it is running
/// with (`selectors`: `ds, es, fs, gs`).
pub fn iret(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
    selectors: [u16; 4],
) -> TrapDecision {
    const VGCF_IN_SYSCALL: u64 = 1 << 8;
    let Some(v) = dom.vcpus.get(vcpu) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    let mut raw = [0u8; 72];
    if GuestMemory::new(mem, v.kernel_l4).copy_from(frame.rsp, &mut raw).is_err() {
        return TrapDecision::Crash(format!("iret: unreadable frame at {:#x}", frame.rsp));
    }
    let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let [rax, r11, rcx, flags, rip, cs, rflags, rsp, ss] = core::array::from_fn(w);
    let to_user = cs & 3 == 3;
    if to_user && v.user_l4.is_none() {
        return TrapDecision::Crash(String::from("iret: switching to user mode with no user page tables"));
    }
    if !is_canonical(rsp) {
        // Xen's iretq would load it, and the guest's next stack access
        // would fault with no stack to bounce that fault to.
        return TrapDecision::Crash(format!("iret: non-canonical rsp {rsp:#x}"));
    }
    frame.rax = rax;
    if flags & VGCF_IN_SYSCALL == 0 {
        frame.r11 = r11;
        frame.rcx = rcx;
    }
    frame.rip = rip;
    frame.rsp = rsp;
    let (cs, ss) = (cs as u16 | 3, ss as u16 | 3);
    (frame.cs, frame.ss) = (u64::from(cs), u64::from(ss));
    let loads = {
        let gdt = |i: usize| crate::descriptors::gdt_entry(&v.gdt_frames, &*mem, i);
        let ldt = |i: usize| crate::descriptors::ldt_entry(&v.ldt_frames, v.ldt_ents, &*mem, i);
        crate::descriptors::iret_target_ok(cs, ss, rip, &gdt, &ldt)
    };
    frame.rflags = (rflags & !(EFLAGS_IOPL | EFLAGS_VM | EFLAGS_NT)) | EFLAGS_IF;
    let architectural_iopl = dom.vm_assist & (1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
    if let Some(v) = dom.vcpus.get_mut(vcpu) {
        v.kernel_mode = !to_user;
        // Xen's async_exception_cleanup: an NMI handler's iret unmasks NMIs.
        v.nmi_masked = false;
        // With architectural IOPL the virtual IOPL is what the iret loads.
        if architectural_iopl {
            v.iopl = ((rflags & EFLAGS_IOPL) >> 12) as u8;
        }
    }
    upcall_mask(dom, vcpu, mem, Some(rflags & EFLAGS_IF == 0));
    if !loads {
        let why = if is_canonical(rip) {
            format!("iret to {cs:#x}:{rip:#x} (ss {ss:#x}) faults")
        } else {
            format!("iret to a non-canonical rip {rip:#x}")
        };
        return failsafe(dom, vcpu, frame, selectors, &why, mem);
    }
    TrapDecision::Resume
}

/// After a hypercall changed the calling vCPU's descriptor tables
/// (`update_descriptor`, `set_gdt`, `MMUEXT_SET_LDT`): whether the frame
/// it returns to still loads. A code or stack segment of its own that it
/// changed or dropped would make the CPU's return fault; Xen's `iretq`
/// then enters the guest's failsafe callback, and so does this.
pub fn recheck_return(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
    selectors: [u16; 4],
) -> TrapDecision {
    let Some(v) = dom.vcpus.get(vcpu) else { return TrapDecision::Resume };
    let loads = {
        let gdt = |i: usize| crate::descriptors::gdt_entry(&v.gdt_frames, &*mem, i);
        let ldt = |i: usize| crate::descriptors::ldt_entry(&v.ldt_frames, v.ldt_ents, &*mem, i);
        crate::descriptors::iret_target_ok(frame.cs as u16, frame.ss as u16, frame.rip, &gdt, &ldt)
    };
    if loads {
        return TrapDecision::Resume;
    }
    let why = format!(
        "the return to {:#x}:{:#x} (ss {:#x}) faults after its descriptors changed",
        frame.cs, frame.rip, frame.ss
    );
    failsafe(dom, vcpu, frame, selectors, &why, mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::Access;
    use crate::hypercall::tests::{World, BUF_VA};
    use crate::mm::Mfn;
    extern crate std;

    #[derive(Default)]
    struct FakeCpu {
        bases: [u64; 3],
        ts: Option<bool>,
        wbinvds: u32,
        outs: std::vec::Vec<(u16, u8, u32)>,
    }

    impl CpuOps for FakeCpu {
        fn port_in(&mut self, port: u16, _size: u8) -> u32 {
            u32::from(port) ^ 0xffff
        }
        fn port_out(&mut self, port: u16, size: u8, value: u32) {
            self.outs.push((port, size, value));
        }
        fn clts(&mut self) {}
        fn set_ts(&mut self, set: bool) {
            self.ts = Some(set);
        }
        fn wbinvd(&mut self) {
            self.wbinvds += 1;
        }
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
            [leaf, 0, 0, 0]
        }
        fn write_segment_base(&mut self, msr: u32, value: u64) {
            self.bases[(msr - MSR_FS_BASE) as usize] = value;
        }
        fn read_segment_base(&self, msr: u32) -> u64 {
            self.bases[(msr - MSR_FS_BASE) as usize]
        }
    }

    /// A guest frame with code at BUF_VA and the stack top at BUF_VA + 0x3000.
    fn setup(code: &[u8]) -> (World, TrapFrame) {
        let mut w = World::new(false);
        w.poke(BUF_VA, code);
        let frame = TrapFrame {
            rip: BUF_VA,
            cs: FLAT_KERNEL_CS,
            rflags: 0x202,
            rsp: BUF_VA + 0x3008,
            ss: FLAT_KERNEL_SS,
            rcx: 0x1111,
            r11: 0x2222,
            ..TrapFrame::default()
        };
        (w, frame)
    }

    fn run(w: &mut World, frame: &mut TrapFrame, vector: u64, error: u64) -> TrapDecision {
        frame.vector = vector;
        frame.error_code = error;
        let mut cpu = FakeCpu::default();
        handle(&mut w.dom, 0, frame, (0xdead_0000, 0), (&mut w.mem, &mut w.ft), &mut cpu)
    }

    #[test]
    fn forced_emulation_cpuid_reports_xen() {
        let (mut w, mut f) = setup(&FEP_CPUID);
        f.rax = 0x4000_0000;
        assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Resume));
        assert_eq!(f.rip, BUF_VA + 7);
        assert_eq!((f.rbx, f.rcx, f.rdx), (0x566e_6558, 0x6558_4d4d, 0x4d4d_566e));
    }

    #[test]
    fn reads_cr3_and_writes_segment_bases() {
        let (mut w, mut f) = setup(&[0x41, 0x0f, 0x20, 0xd9]); // mov %cr3, %r9
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
        assert_eq!((f.r9, f.rip), (0, BUF_VA + 4)); // kernel L4 is frame 0 in the test world
        let (mut w, mut f) = setup(&[0x0f, 0x30]); // wrmsr
        f.rcx = u64::from(MSR_GS_BASE);
        f.rdx = 0xffff_ffff;
        f.rax = 0x8304_4000;
        let mut cpu = FakeCpu::default();
        f.vector = 13;
        assert!(matches!(
            handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu),
            TrapDecision::Resume
        ));
        assert_eq!(cpu.bases[1], 0xffff_ffff_8304_4000);
        // A non-canonical base is not emulated: with no handler, the guest dies.
        let (mut w, mut f) = setup(&[0x0f, 0x30]);
        f.rcx = u64::from(MSR_FS_BASE);
        f.rdx = 0x8000;
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Crash(_)));
    }

    #[test]
    fn control_registers_clts_and_cache_flushes() {
        let step = |code: &[u8], prepare: &dyn Fn(&mut World, &mut TrapFrame)| {
            let (mut w, mut f) = setup(code);
            prepare(&mut w, &mut f);
            let mut cpu = FakeCpu::default();
            f.vector = 13;
            let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
            (w, f, cpu, d)
        };
        // mov %rax, %cr0 setting TS only; then clts.
        let (w, f, cpu, d) = step(&[0x0f, 0x22, 0xc0], &|_, f| f.rax = 0x8005_003b);
        assert!(matches!(d, TrapDecision::Resume));
        assert_eq!((w.dom.vcpus[0].fpu_ts, cpu.ts, f.rip), (true, Some(true), BUF_VA + 3));
        let (w, _, cpu, _) = step(&[0x0f, 0x06], &|w, _| w.dom.vcpus[0].fpu_ts = true);
        assert_eq!((w.dom.vcpus[0].fpu_ts, cpu.ts), (false, Some(false)));
        // Changing any other CR0 bit is not emulated (a #GP, here a crash).
        let (_, _, _, d) = step(&[0x0f, 0x22, 0xc0], &|_, f| f.rax = 0x8005_0032);
        assert!(matches!(d, TrapDecision::Crash(_)), "clearing PE");
        // CR2 round trip through vcpu_info.arch.cr2; CR4 writes accepted.
        let (w, _, _, _) = step(&[0x0f, 0x22, 0xd1], &|_, f| f.rcx = 0x1234_5000);
        assert_eq!(&w.mem.0[8][0x10..0x18], &0x1234_5000u64.to_le_bytes());
        let (_, f, _, _) = step(&[0x0f, 0x20, 0xd2], &|w, _| w.mem.0[8][0x10..0x18].copy_from_slice(&[7; 8]));
        assert_eq!(f.rdx, 0x0707_0707_0707_0707);
        let (_, f, _, d) = step(&[0x0f, 0x22, 0xe0], &|_, f| f.rax = 0);
        assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 3);
        let (_, f, _, _) = step(&[0x0f, 0x20, 0xe0], &|_, _| {});
        assert_eq!(f.rax, GUEST_CR4);
        // mov %rax, %cr3: a new kernel L4, validated as NEW_BASEPTR does.
        let (w, f, _, d) = step(&[0x0f, 0x22, 0xd8], &|w, f| {
            w.mem.0[9] = w.mem.0[0];
            f.rax = 9 << 12;
        });
        assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 3);
        assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(9));
        assert_eq!(w.ft.page_type(Mfn(9)), crate::mm::frame_table::PageType::L4);
        let (w, _, _, d) = step(&[0x0f, 0x22, 0xd8], &|_, f| f.rax = 5 << 12);
        assert!(matches!(d, TrapDecision::Crash(_)), "a data frame is no L4: #GP");
        assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(0));
        // wbinvd: performed for the privileged domain, ignored for others.
        let (_, f, cpu, _) = step(&[0x0f, 0x09], &|_, _| {});
        assert_eq!((cpu.wbinvds, f.rip), (0, BUF_VA + 2));
        let (_, _, cpu, _) = step(&[0x0f, 0x09], &|w, _| w.dom.privileged = true);
        assert_eq!(cpu.wbinvds, 1);
        // Machine-check MSRs (vMCE): two banks, nothing to report.
        let (_, f, _, _) = step(&[0x0f, 0x32], &|_, f| f.rcx = 0x179);
        assert_eq!((f.rax, f.rdx, f.rip), (2, 0, BUF_VA + 2));
        let (_, f, _, _) = step(&[0x0f, 0x32], &|_, f| f.rcx = 0x404);
        assert_eq!((f.rax, f.rdx), (u64::from(u32::MAX), u64::from(u32::MAX)), "MC1_CTL: all ones");
        let (_, f, _, d) = step(&[0x0f, 0x30], &|_, f| f.rcx = 0x17a);
        assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 2, "MCG_STATUS writes accepted");
        let (_, _, _, d) = step(&[0x0f, 0x32], &|_, f| f.rcx = 0x408);
        assert!(matches!(d, TrapDecision::Crash(_)), "no third bank");
        // cli/sti: no-ops with I/O privilege, #GP without.
        let (_, f, _, d) = step(&[0xfa], &|w, _| w.dom.vcpus[0].iopl = 1);
        assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 1 && f.rflags & 0x200 != 0);
        let (_, _, _, d) = step(&[0xfb], &|_, _| {});
        assert!(matches!(d, TrapDecision::Crash(_)), "sti without I/O privilege");
        // hlt is not emulated for PV (Xen's priv-op filter): #GP.
        let (_, _, _, d) = step(&[0xf4], &|_, _| {});
        assert!(matches!(d, TrapDecision::Crash(_)));
    }

    #[test]
    fn port_io_needs_privilege_and_iopl_and_spares_xenish_ports() {
        // in al, dx with dx = 0x3c4 (VGA sequencer)
        let (mut w, mut f) = setup(&[0xec]);
        f.rdx = 0x3c4;
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Crash(_)), "no I/O privilege: #GP");
        let (mut w, mut f) = setup(&[0xec]);
        w.dom.privileged = true;
        w.dom.vcpus[0].iopl = 1;
        f.rdx = 0x3c4;
        f.rax = 0x1234_5600;
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
        assert_eq!((f.rax, f.rip), (0x1234_5600 | (0x3c4 ^ 0xffff) & 0xff, BUF_VA + 1));
        // The hypervisor's own ports, as Xen's guest_io_read/write do for
        // ports dom0 may not touch: writes dropped, reads all ones. Here
        // out %al, $0xf4 (QEMU's debug exit) and in $0x20 (the PIC).
        for (code, what) in [(&[0xe6u8, 0xf4][..], "debug exit"), (&[0xe4, 0x20], "PIC")] {
            let (mut w, mut f) = setup(code);
            w.dom.privileged = true;
            w.dom.vcpus[0].iopl = 1;
            f.vector = 13;
            let mut cpu = FakeCpu::default();
            assert!(matches!(
                handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu),
                TrapDecision::Resume
            ));
            assert!(cpu.outs.is_empty(), "{what}: nothing reaches the hardware");
            assert_eq!((f.rax & 0xff, f.rip), (if code[0] == 0xe4 { 0xff } else { 0 }, BUF_VA + 2), "{what}");
        }
        // Port 0x61 and PIT channel 2 are the domain's virtual PIT.
        let (mut w, mut f) = setup(&[0xe6, 0x61]); // out %al, $0x61: gate on
        w.dom.privileged = true;
        w.dom.vcpus[0].iopl = 1;
        f.rax = 1;
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
        assert_eq!(w.dom.pit.read(0x61, 0) & 1, 1);
        // 16-bit in %dx, %ax
        let (mut w, mut f) = setup(&[0x66, 0xed]);
        w.dom.privileged = true;
        w.dom.vcpus[0].iopl = 3;
        f.rdx = 0x1f0;
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
        assert_eq!((f.rax & 0xffff, f.rip), (u64::from(0x1f0u16 ^ 0xffff), BUF_VA + 2));
    }

    #[test]
    fn an_unprivileged_domain_with_iopl_sees_no_ports() {
        let io = |code: &[u8], prep: &dyn Fn(&mut TrapFrame)| {
            let (mut w, mut f) = setup(code);
            w.dom.vcpus[0].iopl = 1;
            prep(&mut f);
            let mut cpu = FakeCpu::default();
            let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
            assert!(matches!(d, TrapDecision::Resume));
            assert!(cpu.outs.is_empty(), "nothing reaches the hardware");
            (w, f)
        };
        let (_, f) = io(&[0xec], &|f| (f.rdx, f.rax, f.vector) = (0x3c4, 0x1234_5600, 13));
        assert_eq!((f.rax, f.rip), (0x1234_56ff, BUF_VA + 1), "in al: all ones");
        let (w, f) = io(&[0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcf8, 0x8000_c068, 13));
        assert_eq!((w.dom.pci_cf8, f.rip), (0x8000_c068, BUF_VA + 1), "out eax to 0xcf8: latched");
        let (_, f) = io(&[0xed], &|f| (f.rdx, f.vector) = (0xcfc, 13));
        assert_eq!(f.rax, 0xffff_ffff, "no device behind 0xcfc");
        let (_, f) = io(&[0xe6, 0xf4], &|f| f.vector = 13);
        assert_eq!(f.rip, BUF_VA + 2, "a write is dropped");
    }

    #[test]
    fn the_io_bitmap_grants_ports_iopl_does_not() {
        // in al, dx (0x3c4) through a bitmap at BUF_VA + 0x1000 covering
        // 0x400 ports, all allowed but those whose bits are set.
        let (mut w, mut f) = setup(&[0xec]);
        w.dom.privileged = true;
        w.dom.vcpus[0].iobitmap = (BUF_VA + 0x1000, 0x400);
        f.rdx = 0x3c4;
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume), "a clear bit: allowed");
        assert_eq!(f.rip, BUF_VA + 1);
        let bits = |w: &mut World, byte: u64, value: u8| w.poke(BUF_VA + 0x1000 + byte, &[value]);
        let ok = |w: &mut World, port: u16, bytes: u32| io_okay(&w.dom, 0, port, bytes, &mut w.mem);
        bits(&mut w, 0x78, 1 << 4);
        assert!(!ok(&mut w, 0x3c4, 1), "its bit set");
        assert!(ok(&mut w, 0x3c5, 1) && ok(&mut w, 0x3c0, 4), "the neighbours' bits are clear");
        assert!(!ok(&mut w, 0x3c2, 4), "a wide access needs every port's bit clear");
        bits(&mut w, 0x79, 1);
        assert!(!ok(&mut w, 0x3c6, 4), "across a byte boundary");
        assert!(ok(&mut w, 0x3ff, 1) && !ok(&mut w, 0x3ff, 2) && !ok(&mut w, 0x400, 1), "the limit");
        w.dom.vcpus[0].iobitmap = (BUF_VA + 0x3fff, 0x400);
        assert!(ok(&mut w, 0, 1) && !ok(&mut w, 8, 1), "an unreadable byte forbids its ports");
        w.dom.vcpus[0].iobitmap = (0x10, 0x400);
        assert!(!ok(&mut w, 0, 1), "an unmapped bitmap forbids all");
        // The virtual IOPL: the kernel needs 1 (0 with architectural IOPL),
        // user mode 3.
        w.dom.vcpus[0].iobitmap = (0, 0);
        w.dom.vcpus[0].iopl = 1;
        assert!(ok(&mut w, 0x3c4, 1));
        w.dom.vcpus[0].kernel_mode = false;
        assert!(!ok(&mut w, 0x3c4, 1), "IOPL 1 does not cover user mode");
        w.dom.vcpus[0].iopl = 3;
        assert!(ok(&mut w, 0x3c4, 1));
        (w.dom.vcpus[0].kernel_mode, w.dom.vcpus[0].iopl) = (true, 0);
        assert!(!ok(&mut w, 0x3c4, 1));
        w.dom.vm_assist |= 1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL;
        assert!(ok(&mut w, 0x3c4, 1), "architectural IOPL: the kernel is ring 0");
    }

    /// The test world with its L1 (frame 3) also mapped read-only at
    /// BUF_VA + 0x2000, writable page tables on, and the code `code` at
    /// BUF_VA; returns the address of the L1 entry that maps BUF_VA + 0x3000.
    fn ptwr_world(code: &[u8]) -> (World, TrapFrame, u64) {
        let (mut w, f) = setup(code);
        let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
        assert_eq!(w.call_ret(uvm, [BUF_VA + 0x2000, (3 << 12) | 0x25, 0, 0, 0]), 0);
        w.dom.vm_assist = 1 << guest_abi::xen::VMASST_TYPE_WRITABLE_PAGETABLES;
        let slot = ((BUF_VA + 0x3000) >> 12) & 511;
        (w, f, BUF_VA + 0x2000 + slot * 8)
    }

    fn ptwr_fault(w: &mut World, f: &mut TrapFrame, cr2: u64) -> TrapDecision {
        f.vector = 14;
        f.error_code = 7; // present, write, user (the guest kernel's ring 3)
        let mut cpu = FakeCpu::default();
        let d = handle(&mut w.dom, 0, f, (cr2, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        w.audit();
        d
    }

    #[test]
    fn writes_to_read_only_page_tables_are_emulated() {
        // mov %rcx,(%rdi): map frame 9 at BUF_VA + 0x3000.
        let (mut w, mut f, pte_va) = ptwr_world(&[0x48, 0x89, 0x0f]);
        (f.rcx, f.rdi) = ((9 << 12) | 0x63, pte_va);
        assert!(matches!(ptwr_fault(&mut w, &mut f, pte_va), TrapDecision::Resume));
        assert_eq!(f.rip, BUF_VA + 3, "stepped over the mov");
        assert_eq!(GuestMemory::new(&mut w.mem, Mfn(0)).translate(BUF_VA + 0x3000, Access::Write), Ok(0x9000));
        // lock btrq $1,(%rdi): clear RW; CF reports it was set.
        let (mut w2, mut f2, pte_va) = ptwr_world(&[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x01]);
        f2.rdi = pte_va;
        assert!(matches!(ptwr_fault(&mut w2, &mut f2, pte_va), TrapDecision::Resume));
        assert_eq!(f2.rflags & 1, 1);
        assert_eq!(GuestMemory::new(&mut w2.mem, Mfn(0)).translate(BUF_VA + 0x3000, Access::Write).ok(), None);
    }

    #[test]
    fn page_table_writes_are_validated_like_mmu_update() {
        let (mut w, mut f, pte_va) = ptwr_world(&[0x48, 0x89, 0x0f]);
        let before = w.mem.0[3];
        for (pte, what) in [((2u64 << 12) | 0x63, "a page table writable"), ((99 << 12) | 0x63, "a frame not its own")]
        {
            let mut g = f;
            (g.rcx, g.rdi) = (pte, pte_va);
            assert!(matches!(ptwr_fault(&mut w, &mut g, pte_va), TrapDecision::Crash(_)), "{what}: a #PF to the guest");
            assert_eq!(w.mem.0[3], before, "{what}: the table is unchanged");
        }
        w.dom.vm_assist = 0;
        (f.rcx, f.rdi) = ((9 << 12) | 0x63, pte_va);
        assert!(
            matches!(ptwr_fault(&mut w, &mut f, pte_va), TrapDecision::Crash(_)),
            "not without writable_pagetables"
        );
        assert_eq!(w.mem.0[3], before);
    }

    #[test]
    fn no_handler_crashes_with_a_report() {
        let (mut w, mut f) = setup(&[0x0f, 0x0b]);
        match run(&mut w, &mut f, 6, 0) {
            TrapDecision::Crash(why) => assert!(why.contains("#UD"), "{why}"),
            TrapDecision::Resume => panic!("must crash"),
        }
    }

    #[test]
    fn bounce_builds_xens_frame() {
        let (mut w, mut f) = setup(&[0; 4]);
        w.dom.vcpus[0].traps[14] = TrapHandler { cs: 0xe033, flags: TI_DISABLE_EVENTS, address: 0xffff_ffff_8000_5000 };
        // Events unmasked before the fault.
        w.mem.0[8][1] = 0;
        assert!(matches!(run(&mut w, &mut f, 14, 0x6), TrapDecision::Resume));
        let sp = (BUF_VA + 0x3008) & !15;
        assert_eq!(f.rsp, sp - 8 * 8);
        assert_eq!((f.rip, f.cs, f.ss), (0xffff_ffff_8000_5000, 0xe033, 0xe02b));
        let words: std::vec::Vec<u64> =
            w.peek(f.rsp, 64).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        // The user bit is cleared: the fault came from guest kernel mode.
        assert_eq!(words, [0x1111, 0x2222, 0x2, BUF_VA, 0xe030, 0x202, BUF_VA + 0x3008, 0xe02b]);
        assert_eq!(w.mem.0[8][1], 1, "TI_DISABLE_EVENTS masks events");
        assert_eq!(&w.mem.0[8][0x10..0x18], &0xdead_0000u64.to_le_bytes(), "cr2 in vcpu_info");
    }

    #[test]
    fn a_bounce_keeps_df_and_a_system_call_clears_it() {
        let (mut w, mut f) = setup(&[0x0f, 0x0b]);
        w.dom.vcpus[0].traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
        f.rflags |= EFLAGS_DF | EFLAGS_AC;
        assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Resume));
        assert_eq!(f.rflags & (EFLAGS_DF | EFLAGS_AC), EFLAGS_DF, "as Xen: DF stays, AC goes");
        let (mut w, mut f) = setup(&[0; 4]);
        let v = &mut w.dom.vcpus[0];
        v.kernel_mode = false;
        v.user_l4 = Some(crate::mm::Mfn(0));
        v.kernel_sp = BUF_VA + 0x2000;
        v.callbacks.syscall = crate::domain::Callback { address: 0x9000, mask_events: false };
        f.r11 = 0x202 | EFLAGS_DF;
        assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert_eq!(f.rflags & EFLAGS_DF, 0);
    }

    #[test]
    fn saved_mask_goes_into_cs_and_if() {
        let (mut w, mut f) = setup(&[0xcd, 0x80]); // int $0x80
        w.dom.vcpus[0].traps[0x80] = TrapHandler { cs: 0xe033, flags: 3, address: 0x7000 };
        w.mem.0[8][1] = 1; // masked
        assert!(matches!(run(&mut w, &mut f, 13, 0x402), TrapDecision::Resume));
        let words: std::vec::Vec<u64> =
            w.peek(f.rsp, 56).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        // No error code for a software interrupt; rip is after the int.
        assert_eq!(words, [0x1111, 0x2222, BUF_VA + 2, 0xe030 | 1 << 32, 0x002, BUF_VA + 0x3008, 0xe02b]);
    }

    #[test]
    fn int_through_a_gate_the_caller_may_not_use_is_a_gp_naming_it() {
        // DPL 0: not for the guest kernel either; with no #GP handler, a crash.
        let (mut w, mut f) = setup(&[0xcd, 0x80]);
        w.dom.vcpus[0].traps[0x80] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Crash(_)));
        // With a #GP handler: #GP with error 0x80 << 3 | 2 at the int,
        // whatever error code the CPU (QEMU) reported.
        let (mut w, mut f) = setup(&[0xcd, 0x80]);
        w.dom.vcpus[0].traps[0x80] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
        w.dom.vcpus[0].traps[13] = TrapHandler { cs: 0xe033, flags: 0, address: 0x6000 };
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
        assert_eq!(f.rip, 0x6000);
        let words: std::vec::Vec<u64> =
            w.peek(f.rsp, 24).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, [0x1111, 0x2222, 0x402]);
        assert_eq!(w.peek(f.rsp + 24, 8), BUF_VA.to_le_bytes(), "rip at the int");
        // DPL 1 is enough from guest kernel mode (Xen's permit_softint).
        let (mut w, mut f) = setup(&[0xcd, 0x81]);
        w.dom.vcpus[0].traps[0x81] = TrapHandler { cs: 0xe033, flags: 1, address: 0x7000 };
        assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
        assert_eq!(f.rip, 0x7000);
        assert_eq!(w.peek(f.rsp + 16, 8), (BUF_VA + 2).to_le_bytes(), "rip after the int");
    }

    #[test]
    fn softint_permission_follows_the_callers_mode() {
        assert!(permit_softint(1, true) && permit_softint(3, true) && !permit_softint(0, true));
        assert!(permit_softint(3, false) && !permit_softint(2, false));
    }

    fn words_at(w: &mut World, va: u64, n: usize) -> std::vec::Vec<u64> {
        w.peek(va, n * 8).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn an_iret_to_a_non_canonical_rip_enters_the_failsafe_callback() {
        let (mut w, mut f) = setup(&[0; 4]);
        let ctx: [u64; 9] = [0x42, 0x33, 0x44, 0, 0x8000_0000_0000_0000, 0xe030, 0x246, BUF_VA + 0x2008, 0xe02b];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.rsp = BUF_VA + 0x1000;
        w.poke(f.rsp, &bytes);
        let d = iret(&mut w.dom, 0, &mut f, &mut w.mem, [0xe02b, 0, 0x1b, 0]);
        assert!(matches!(&d, TrapDecision::Crash(why) if why.contains("no failsafe callback")), "{d:?}");

        let (mut w, mut f) = setup(&[0; 4]);
        w.dom.vcpus[0].callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: true };
        f.rsp = BUF_VA + 0x1000;
        w.poke(f.rsp, &bytes);
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0xe02b, 0, 0x1b, 0]), TrapDecision::Resume));
        assert_eq!((f.rip, f.cs, f.ss, f.rsp), (0x5000, 0xe033, 0xe02b, BUF_VA + 0x2000 - 88));
        // rcx, r11, ds, es, fs, gs, rip, cs (kernel: RPL 0; IF was set, so
        // the saved mask is 0), rflags, rsp, ss.
        let words = words_at(&mut w, f.rsp, 11);
        assert_eq!(
            words,
            [0x44, 0x33, 0xe02b, 0, 0x1b, 0, 0x8000_0000_0000_0000, 0xe030, 0x246, BUF_VA + 0x2008, 0xe02b]
        );
        assert_eq!(w.mem.0[8][1], 1, "CALLBACKF_mask_events masks events");
        assert_eq!(f.rax, 0x42);
    }

    #[test]
    fn a_selector_that_no_longer_loads_enters_the_failsafe_callback() {
        let (mut w, mut f) = setup(&[0; 4]);
        w.dom.vcpus[0].segments.ds = 0xe02b;
        w.dom.vcpus[0].segments.fs = 0x0b; // GDT entry 1: the vCPU has no GDT frames
        assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Crash(_)));
        let (mut w, mut f) = setup(&[0; 4]);
        w.dom.vcpus[0].segments.ds = 0xe02b;
        w.dom.vcpus[0].callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: false };
        assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert_eq!(f.rip, BUF_VA, "flat and null selectors load");
        w.dom.vcpus[0].segments.fs = 0x0b;
        assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert_eq!(f.rip, 0x5000);
        let words = words_at(&mut w, f.rsp, 11);
        assert_eq!(words, [0x1111, 0x2222, 0xe02b, 0, 0x0b, 0, BUF_VA, 0xe030, 0x202, BUF_VA + 0x3008, 0xe02b]);
        assert_eq!(w.mem.0[8][1], 0, "events stay as they were without CALLBACKF_mask_events");
        // From user mode: the frame goes on the kernel stack, cs keeps RPL 3.
        let (mut w, mut f) = setup(&[0; 4]);
        let v = &mut w.dom.vcpus[0];
        v.kernel_mode = false;
        v.user_l4 = Some(crate::mm::Mfn(0));
        v.kernel_sp = BUF_VA + 0x2000;
        v.segments.gs = 0x0f; // an LDT selector: there is no LDT
        v.callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: false };
        f.rsp = 0x7fff_0000;
        assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert!(w.dom.vcpus[0].kernel_mode);
        assert_eq!(f.rsp, BUF_VA + 0x2000 - 88);
        assert_eq!(words_at(&mut w, f.rsp + 40, 3), [0x0f, BUF_VA, 0xe033]);
    }

    #[test]
    fn an_emulated_instruction_under_single_step_raises_debug() {
        let (mut w, mut f) = setup(&FEP_CPUID);
        w.dom.vcpus[0].traps[1] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
        f.rflags |= 0x100;
        assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Resume));
        assert_eq!(f.rip, 0x7000);
        assert_eq!(w.peek(f.rsp + 16, 8), (BUF_VA + 7).to_le_bytes(), "the #DB is after the cpuid");
        assert_eq!(w.dom.vcpus[0].debugreg[6], 0xffff_4ff0, "DR6.BS");
    }

    #[test]
    fn a_debug_trap_leaves_its_status_in_the_guests_dr6() {
        let (mut w, mut f) = setup(&[0x90]);
        w.dom.vcpus[0].traps[1] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
        f.rflags |= 0x100; // TF: a single step
        let mut cpu = FakeCpu::default();
        f.vector = 1;
        let d = handle(&mut w.dom, 0, &mut f, (0xffff_4ff0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        assert!(matches!(d, TrapDecision::Resume));
        assert_eq!(w.dom.vcpus[0].debugreg[6], 0xffff_4ff0);
        assert_eq!(f.rflags & 0x100, 0, "the handler runs without TF");
        assert_eq!(w.peek(f.rsp + 32, 8), (0x302u64).to_le_bytes(), "the saved rflags keep it");
    }

    #[test]
    fn unwritable_stack_crashes() {
        let (mut w, mut f) = setup(&[0; 4]);
        w.dom.vcpus[0].traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
        f.rsp = 0x1000; // unmapped
        assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Crash(_)));
    }

    #[test]
    fn iret_restores_the_context() {
        let (mut w, mut f) = setup(&[0; 4]);
        let ctx: [u64; 9] = [0x42, 0x33, 0x44, 0, 0xffff_ffff_8000_9000, 0xe030, 0x246, BUF_VA + 0x2000, 0xe02b];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.rsp = BUF_VA + 0x1000;
        w.poke(f.rsp, &bytes);
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Resume));
        assert_eq!((f.rax, f.r11, f.rcx, f.rip, f.rsp), (0x42, 0x33, 0x44, 0xffff_ffff_8000_9000, BUF_VA + 0x2000));
        assert_eq!(w.mem.0[8][1], 0, "IF set in rflags unmasks events");
        // VGCF_in_syscall keeps rcx/r11; a non-canonical rip crashes.
        let mut ctx2 = ctx;
        ctx2[3] = 1 << 8;
        ctx2[6] = 0x046;
        let bytes: std::vec::Vec<u8> = ctx2.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.rsp = BUF_VA + 0x1000;
        f.rcx = 7;
        w.poke(f.rsp, &bytes);
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Resume));
        assert_eq!(f.rcx, 7);
        assert_eq!(w.mem.0[8][1], 1);
        // With VMASST_TYPE_architectural_iopl the iret sets the virtual IOPL.
        ctx2[6] = 0x2046;
        let bytes: std::vec::Vec<u8> = ctx2.iter().flat_map(|v| v.to_le_bytes()).collect();
        (f.rsp, w.dom.vcpus[0].iopl) = (BUF_VA + 0x1000, 0);
        w.poke(f.rsp, &bytes);
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Resume));
        assert_eq!((w.dom.vcpus[0].iopl, f.rflags & EFLAGS_IOPL), (0, 0), "not without the assist");
        w.dom.vm_assist |= 1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL;
        f.rsp = BUF_VA + 0x1000;
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Resume));
        assert_eq!((w.dom.vcpus[0].iopl, f.rflags & EFLAGS_IOPL), (2, 0), "virtual, never the real IOPL");
        ctx2[4] = 0x0000_8000_0000_0000;
        let bytes: std::vec::Vec<u8> = ctx2.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.rsp = BUF_VA + 0x1000;
        w.poke(f.rsp, &bytes);
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Crash(_)));
        f.rsp = 0x10;
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Crash(_)));
    }

    #[test]
    fn an_iret_returns_to_32_bit_code_and_one_the_cpu_would_refuse_enters_the_failsafe_callback() {
        let (mut w, _) = setup(&[0; 4]);
        w.dom.vcpus[0].user_l4 = Some(crate::mm::Mfn(0));
        w.dom.vcpus[0].kernel_sp = BUF_VA + 0x3000;
        w.dom.vcpus[0].callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: false };
        let iret_to = |w: &mut World, cs: u64, rip: u64, ss: u64| {
            let ctx: [u64; 9] = [0, 0, 0, 0, rip, cs | 0xab << 32, 0x202, BUF_VA + 0x2000, ss];
            let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.dom.vcpus[0].kernel_mode = true;
            let mut f = TrapFrame { rsp: BUF_VA + 0x1000, ..TrapFrame::default() };
            w.poke(f.rsp, &bytes);
            let d = iret(&mut w.dom, 0, &mut f, &mut w.mem, [0xe02b, 0, 0, 0]);
            assert!(matches!(d, TrapDecision::Resume), "{d:?}");
            f
        };
        let f = iret_to(&mut w, 0xe023, 0x40_0000, 0xe02b);
        assert_eq!((f.cs, f.ss, f.rip), (0xe023, 0xe02b, 0x40_0000), "compatibility mode, the upper CS bits dropped");
        assert!(!w.dom.vcpus[0].kernel_mode, "RPL 3: user mode");
        let f = iret_to(&mut w, 0xe020, 0xffff_ffff, 0xe028);
        assert_eq!((f.cs, f.ss), (0xe023, 0xe02b), "RPL 0 stays in the kernel, loaded with RPL 3");
        assert!(w.dom.vcpus[0].kernel_mode);
        for (cs, rip, ss, what) in [
            (0xe023, 0x1_0000_0000, 0xe02b, "past 4 GiB in 32-bit code"),
            (0x0010, 0x40_0000, 0xe02b, "a GDT entry the guest does not have"),
            (0xe033, 0x40_0000, 0, "a null stack selector"),
            (0xe008, 0x40_0000, 0xe02b, "the hypervisor's code selector"),
        ] {
            let f = iret_to(&mut w, cs, rip, ss);
            assert_eq!(f.rip, 0x5000, "{what}: the failsafe callback");
            let frame = words_at(&mut w, f.rsp, 11);
            // (The selector's RPL says the mode, as in every bounce frame.)
            assert_eq!(
                (frame[6], frame[7] & 0xfffc, frame[10]),
                (rip, cs & !3, ss | 3),
                "{what}: what failed, reported"
            );
        }
    }

    #[test]
    fn iret_to_user_needs_a_user_table_and_switches_mode() {
        let (mut w, mut f) = setup(&[0; 4]);
        let ctx: [u64; 9] = [0, 0, 0, 0, 0x40_0000, 0xe033, 0x202, 0x7fff_0000, 0xe02b];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.rsp = BUF_VA + 0x1000;
        w.poke(f.rsp, &bytes);
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Crash(_)));
        assert!(w.dom.vcpus[0].kernel_mode);
        w.dom.vcpus[0].user_l4 = Some(crate::mm::Mfn(0));
        f.rsp = BUF_VA + 0x1000;
        assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, [0; 4]), TrapDecision::Resume));
        assert!(!w.dom.vcpus[0].kernel_mode);
        assert_eq!((f.rip, f.rsp, f.cs), (0x40_0000, 0x7fff_0000, 0xe033));
    }

    #[test]
    fn user_syscall_bounces_to_the_kernel_stack() {
        let (mut w, mut f) = setup(&[0; 4]);
        let v = &mut w.dom.vcpus[0];
        v.kernel_mode = false;
        v.user_l4 = Some(crate::mm::Mfn(0));
        v.kernel_sp = BUF_VA + 0x2000;
        v.callbacks.syscall = crate::domain::Callback { address: 0x9000, mask_events: true };
        w.mem.0[8][1] = 0;
        f.rcx = 0x40_1002; // return rip
        f.r11 = 0x246; // user rflags
        f.rsp = 0x7fff_0000;
        assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert!(w.dom.vcpus[0].kernel_mode);
        assert_eq!((f.rip, f.rsp), (0x9000, BUF_VA + 0x2000 - 56));
        let words: std::vec::Vec<u64> =
            w.peek(f.rsp, 56).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, [0x40_1002, 0x246, 0x40_1002, 0xe033, 0x246, 0x7fff_0000, 0xe02b]);
        assert_eq!(w.mem.0[8][1], 1, "mask_events");
    }

    #[test]
    fn a_syscall_from_32_bit_code_enters_the_syscall32_callback_with_the_syscall_callbacks_mask() {
        let (mut w, mut f) = setup(&[0; 4]);
        let v = &mut w.dom.vcpus[0];
        (v.kernel_mode, v.user_l4, v.kernel_sp) = (false, Some(crate::mm::Mfn(0)), BUF_VA + 0x2000);
        v.callbacks.syscall = crate::domain::Callback { address: 0x9000, mask_events: false };
        v.callbacks.syscall32 = crate::domain::Callback { address: 0xa000, mask_events: true };
        v.traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x6000 };
        w.mem.0[8][1] = 0;
        (f.cs, f.rcx, f.r11, f.rsp) = (FLAT_USER_CS32, 0x40_1002, 0x246, 0x7fff_0000);
        assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert_eq!(f.rip, 0xa000, "the syscall32 callback");
        assert_eq!(words_at(&mut w, f.rsp + 24, 1), [0xe023], "the frame says FLAT_USER_CS32");
        assert_eq!(w.mem.0[8][1], 0, "events left as the 64-bit callback asked, as in Xen");
        // With no syscall32 callback, #UD at the instruction (no fallback
        // to the 64-bit one).
        w.dom.vcpus[0].callbacks.syscall32.address = 0;
        w.dom.vcpus[0].kernel_mode = true;
        (f.cs, f.rcx, f.rsp) = (FLAT_USER_CS32, 0x40_1002, BUF_VA + 0x1000);
        assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert_eq!((f.rip, words_at(&mut w, f.rsp + 16, 1)[0]), (0x6000, 0x40_1000), "#UD");
    }

    #[test]
    fn upcalls_are_delivered_only_when_pending_and_unmasked() {
        let (mut w, mut f) = setup(&[0; 4]);
        w.dom.vcpus[0].callbacks.event = crate::domain::Callback { address: 0x8000, mask_events: true };
        w.mem.0[8][0] = 1; // pending
        w.mem.0[8][1] = 1; // masked
        assert_eq!(deliver_upcall(&mut w.dom, 0, &mut f, &mut w.mem), Ok(false));
        w.mem.0[8][1] = 0;
        assert_eq!(deliver_upcall(&mut w.dom, 0, &mut f, &mut w.mem), Ok(true));
        assert_eq!(f.rip, 0x8000);
        assert_eq!(w.mem.0[8][1], 1, "delivery masks events");
        let words: std::vec::Vec<u64> =
            w.peek(f.rsp, 56).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        // No error code; IF set in the saved rflags (events were unmasked).
        assert_eq!(words, [0x1111, 0x2222, BUF_VA, 0xe030, 0x202, BUF_VA + 0x3008, 0xe02b]);
        // Already masked now: nothing more until the guest unmasks.
        assert_eq!(deliver_upcall(&mut w.dom, 0, &mut f, &mut w.mem), Ok(false));
    }

    #[test]
    fn user_syscall_without_callback_is_ud() {
        let (mut w, mut f) = setup(&[0; 4]);
        let v = &mut w.dom.vcpus[0];
        v.kernel_mode = false;
        v.user_l4 = Some(crate::mm::Mfn(0));
        v.kernel_sp = BUF_VA + 0x2000;
        v.traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x6000 };
        f.rcx = 0x40_1002;
        assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
        assert_eq!(f.rip, 0x6000);
        let rip_slot = w.peek(f.rsp + 16, 8);
        assert_eq!(rip_slot, 0x40_1000u64.to_le_bytes());
    }
}
