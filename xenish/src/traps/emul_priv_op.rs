//! Privileged-instruction emulation for PV kernels, which run outside
//! ring 0: control-register reads and writes, `clts`, `wbinvd`/`invd`,
//! the segment-base and machine-check MSRs, as Xen's
//! X:`xen/arch/x86/pv/emul-priv-op.c` does them.

use super::*;

/// The FS base MSR.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// The active GS base MSR (guest kernel mode: the kernel's).
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// The inactive GS base MSR, exchanged by `swapgs` (guest kernel mode:
/// the user's).
pub const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;

/// Emulates the privileged instructions a PV kernel executes: returns `None`
/// if the instruction is not one of them.
pub(super) fn emulate_privileged(
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
                4 => GUEST_CR4 | if dom.vcpus.get(vcpu)?.cr4_fsgsbase { CR4_FSGSBASE } else { 0 },
                _ => return None,
            };
            *frame.gpr_mut(reg) = value;
            frame.rip = frame.rip.wrapping_add(3 + u64::from(rex != 0));
            Some(TrapDecision::Resume)
        }
        // mov %reg, %crN (Xen's pv_emul_write_cr): CR0 may change only TS,
        // CR2 is the guest's own, CR3 is a new kernel base pointer (as
        // MMUEXT_NEW_BASEPTR), CR4 writes are accepted, and of the CR4 the
        // guest sees only FSGSBASE follows them.
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
                // Of CR4 only FSGSBASE is the guest's, where its CPUID
                // offers it (Xen's pv_fixup_guest_cr4); the rest is Xen's.
                4 => {
                    let on = value & CR4_FSGSBASE != 0 && fsgsbase_offered(cpu);
                    dom.vcpus.get_mut(vcpu)?.cr4_fsgsbase = on;
                    cpu.set_fsgsbase(on);
                }
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
/// The CR4 a PV guest kernel reads: PAE PSE PGE OSFXSR OSXMMEXCPT (and
/// [`CR4_FSGSBASE`] once it set that).
pub(super) const GUEST_CR4: u64 = 0x6f0;

/// CR4.FSGSBASE.
pub const CR4_FSGSBASE: u64 = 1 << 16;

/// Whether the guest's CPUID offers FSGSBASE (leaf 7, ebx bit 0: the
/// host's, within the PV policy), so that its kernel may set CR4.FSGSBASE.
fn fsgsbase_offered(cpu: &dyn CpuOps) -> bool {
    crate::cpuid::pv_cpuid(7, 0, &|leaf, sub| cpu.cpuid(leaf, sub))[1] & 1 != 0
}

/// `rdmsr` (`0f 32`) and `wrmsr` (`0f 30`) of the segment-base MSRs, the
/// one privileged instruction Linux executes on every context switch
/// (`save_fsgs` reads the inactive GS base with `rdmsr` when FSGSBASE is
/// on; a PV kernel cannot `swapgs`): what [`emulate_privileged`] does for
/// them, for the fast path ([`crate::system::System::fast_privileged_op`]),
/// which has checked that the vCPU is in guest kernel mode and not single
/// stepping. `insn` is the instruction's first two bytes; any other
/// instruction (a prefix too), MSR or a non-canonical base is refused with
/// nothing changed, and the slow path decides.
pub fn segment_base_msr_fast(frame: &mut TrapFrame, insn: [u8; 2], cpu: &mut dyn CpuOps) -> bool {
    let msr = frame.rcx as u32;
    if !matches!(msr, MSR_FS_BASE | MSR_GS_BASE | MSR_SHADOW_GS_BASE) {
        return false;
    }
    match insn {
        [0x0f, 0x30] => {
            let value = (frame.rdx << 32) | (frame.rax & 0xffff_ffff);
            if !is_canonical(value) {
                return false;
            }
            cpu.write_segment_base(msr, value);
        }
        [0x0f, 0x32] => {
            let value = cpu.read_segment_base(msr);
            frame.rax = value & 0xffff_ffff;
            frame.rdx = value >> 32;
        }
        _ => return false,
    }
    frame.rip = frame.rip.wrapping_add(2);
    true
}
