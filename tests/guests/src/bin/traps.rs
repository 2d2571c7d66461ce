//! Exceptions as a PV guest sees them. With no argument (`traps`) it
//! installs a trap table and raises every vector a 64-bit PV guest can
//! cause: #DE, #DB (single step), #BP, `int $4`, `into` and `bound` (#UD
//! in 64-bit mode), `int $5` through a DPL 0 gate (#GP naming the IDT
//! entry, as Xen does), #UD, #NM, #NP and #SS (a not-present descriptor of
//! its own GDT), #GP, #PF, #MF, #AC, #XM and `int $0x80`, and checks that
//! each arrives at its handler with Xen's frame, vector, error code and
//! rip (for #PF the address in vcpu_info.arch.cr2, for #DB the DR6 the
//! debugreg hypercall shows). Where QEMU's software emulation never raises
//! a vector (#AC, #XM, #SS from a non-canonical stack access, #DB from
//! icebp) the guest checks what the CPU did instead and says so.
//!
//! `traps failsafe-reload`: loads %ds from its own GDT, then clears that
//! descriptor and yields until the hypervisor, switching back to it, fails
//! to reload %ds and enters the failsafe callback; checks the frame.
//! `traps failsafe-iret`: an `iret` hypercall to a non-canonical rip, which
//! Xen turns into a failsafe callback; checks the frame and recovers.
//! `traps failsafe-none`: the same without a failsafe callback (the
//! hypervisor crashes the domain).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::{asm, global_asm};
    use core::sync::atomic::{AtomicU64, Ordering};

    use guest_abi::callback::CALLBACKTYPE_FAILSAFE;
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::traps::{self, TrapFrame};
    use guest_rt::{events, println};

    static VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
    static ERROR: AtomicU64 = AtomicU64::new(0);
    static RIP: AtomicU64 = AtomicU64::new(0);
    static CS: AtomicU64 = AtomicU64::new(0);
    /// Bytes to step over the faulting instruction.
    static SKIP: AtomicU64 = AtomicU64::new(0);

    /// The address of the `icebp` being tested, if any.
    static ICEBP_AT: AtomicU64 = AtomicU64::new(0);

    /// EFLAGS.TF, EFLAGS.AC.
    const TF: u64 = 1 << 8;
    const AC: u64 = 1 << 18;

    /// The saved rflags of the last exception.
    static RFLAGS: AtomicU64 = AtomicU64::new(0);

    fn hook(f: &mut TrapFrame) -> bool {
        RFLAGS.store(f.rflags, Ordering::SeqCst);
        if f.vector == 16 {
            // SAFETY: clears the pending x87 exception so the next x87
            // instruction does not raise it again.
            unsafe { asm!("fnclex") };
        }
        VECTOR.store(f.vector, Ordering::SeqCst);
        ERROR.store(f.error_code, Ordering::SeqCst);
        RIP.store(f.rip, Ordering::SeqCst);
        CS.store(f.cs, Ordering::SeqCst);
        let resume = RESUME.load(Ordering::SeqCst);
        if f.vector == 13 && resume != 0 && f.rip >> 47 != 0 && f.rip >> 47 != 0x1_ffff {
            // The iret to a non-canonical rip went through and faulted
            // there: QEMU's iretq does not check the rip (hardware does,
            // and Xen then enters the failsafe callback instead).
            GP_AT_NONCANONICAL.store(f.rip, Ordering::SeqCst);
            f.rip = RESUME.swap(0, Ordering::SeqCst);
            return true;
        }
        f.rip += SKIP.load(Ordering::SeqCst);
        if f.vector == 6 && f.rip == ICEBP_AT.load(Ordering::SeqCst) {
            // QEMU's #UD for icebp, at the instruction: step over it.
            f.rip += 1;
        }
        // Stop single-stepping and alignment checking where they began.
        f.rflags &= !(TF | AC);
        true
    }

    fn expect(name: &str, vector: u64, error: u64, at: u64) -> bool {
        let (v, e, rip, cs) = (
            VECTOR.swap(u64::MAX, Ordering::SeqCst),
            ERROR.load(Ordering::SeqCst),
            RIP.load(Ordering::SeqCst),
            CS.load(Ordering::SeqCst),
        );
        // A kernel-mode frame has CS RPL 0.
        let ok = v == vector && e == error && rip == at && cs & 0xffff == 0xe030;
        println!(
            "traps: {name}: vector {v} error {e:#x} rip {rip:#x} cs {cs:#x} -> {}",
            if ok { "ok" } else { "WRONG" }
        );
        ok
    }

    /// Runs the instruction(s) with SKIP set; returns the address of the
    /// first one.
    macro_rules! raise {
        ($skip:expr, $asm:literal $($rest:tt)*) => {{
            SKIP.store($skip, Ordering::SeqCst);
            let at: u64;
            // SAFETY: each sequence raises one exception the hook resumes from.
            unsafe { asm!(concat!("lea {at}, [rip + 2f]\n2: ", $asm), at = out(reg) at $($rest)*) };
            at
        }};
    }

    /// A page of this kernel's own GDT (entries 0..512).
    #[repr(C, align(4096))]
    struct GdtPage([u64; 512]);
    static mut GDT: GdtPage = GdtPage([0; 512]);

    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

    /// Flat 32-bit data segment, DPL 3, present / not present.
    const DATA: u64 = 0x00cf_f200_0000_ffff;
    const DATA_NOT_PRESENT: u64 = DATA & !(1 << 47);
    /// Selectors of GDT entries 1 and 2 (RPL 3).
    const SEL_DATA: u16 = 0x0b;
    const SEL_NOT_PRESENT: u16 = 0x13;

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    /// Installs the GDT page with entry 1 a data segment and entry 2 one
    /// not present; returns the machine address of entry 1. As on Xen, a
    /// descriptor page may have no writable mapping: it is mapped
    /// read-only first, and changed later only with update_descriptor.
    fn install_gdt(si: &StartInfo) -> Result<u64, guest_abi::XenError> {
        let va = core::ptr::addr_of!(GDT) as u64;
        let mfn = mfn_of(si, va);
        // SAFETY: the descriptors are written before the page becomes a
        // descriptor table; from then on nothing writes it through this
        // mapping, which is made read-only (P|A|NX-free, as the builder's).
        unsafe {
            (*core::ptr::addr_of_mut!(GDT)).0[1] = DATA;
            (*core::ptr::addr_of_mut!(GDT)).0[2] = DATA_NOT_PRESENT;
            hypercall::update_va_mapping(va, (mfn << 12) | 0x21, u64::from(guest_abi::xen::UVMF_INVLPG))?;
            hypercall::set_gdt(&[mfn], 512)?;
        }
        Ok((mfn << 12) + 8)
    }

    fn selectors() -> [u16; 4] {
        let (ds, es, fs, gs): (u16, u16, u16, u16);
        // SAFETY: reads the selector registers.
        unsafe {
            asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs",
                out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs, options(nomem, nostack, preserves_flags));
        }
        [ds, es, fs, gs]
    }

    /// The FS and shadow GS bases through `rdmsr`/`wrmsr`, which the
    /// hypervisor emulates for the guest kernel (Linux reads the inactive
    /// GS base this way on every context switch): each written, read back
    /// and restored without an exception reaching the guest; a
    /// non-canonical base is refused with #GP.
    fn segment_bases() -> bool {
        let rd = |msr: u32| -> u64 {
            let (lo, hi): (u32, u32);
            // SAFETY: a segment-base MSR, emulated for the PV kernel.
            unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi) };
            u64::from(hi) << 32 | u64::from(lo)
        };
        let wr = |msr: u32, v: u64| {
            // SAFETY: as above; this kernel keeps nothing in FS or in the
            // inactive GS base while the test runs, and restores both.
            unsafe { asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32) };
        };
        SKIP.store(2, Ordering::SeqCst);
        VECTOR.store(u64::MAX, Ordering::SeqCst);
        let mut ok = true;
        for msr in [0xc000_0100u32, 0xc000_0102] {
            let old = rd(msr);
            let value = 0x0000_7f12_3456_7000 | u64::from(msr & 0xf);
            wr(msr, value);
            ok &= rd(msr) == value;
            wr(msr, old);
            ok &= rd(msr) == old;
        }
        ok &= VECTOR.swap(u64::MAX, Ordering::SeqCst) == u64::MAX;
        println!("traps: FS and shadow GS bases by rdmsr/wrmsr -> {}", if ok { "ok" } else { "WRONG" });
        let at = raise!(2, "wrmsr", in("ecx") 0xc000_0100u32, in("eax") 0, in("edx") 0x8000u32);
        ok & expect("#GP (non-canonical FS base)", 13, 0, at)
    }

    /// CR4.FSGSBASE is the kernel's own (Xen's `pv_make_cr4`, XSA-293):
    /// clear until it sets it, so `rdfsbase` raises #UD; once set (where
    /// CPUID offers FSGSBASE) it reads back and `rdfsbase` reads the FS
    /// base; cleared again, #UD again. Where CPUID does not offer it, the
    /// bit stays clear.
    fn fsgsbase() -> bool {
        const FSGSBASE: u64 = 1 << 16;
        let cr4 = || -> u64 {
            let v: u64;
            // SAFETY: emulated for the PV kernel; no side effects.
            unsafe { asm!("mov {}, cr4", out(reg) v) };
            v
        };
        let set_cr4 = |v: u64| {
            // SAFETY: emulated for the PV kernel: only FSGSBASE is its own.
            unsafe { asm!("mov cr4, {}", in(reg) v) };
        };
        let offered = core::arch::x86_64::__cpuid_count(7, 0).ebx & 1 != 0;
        let mut ok = cr4() & FSGSBASE == 0;
        let at = raise!(5, "rdfsbase rax", out("rax") _);
        ok &= expect("#UD (rdfsbase, CR4.FSGSBASE clear)", 6, 0, at);
        set_cr4(cr4() | FSGSBASE);
        ok &= (cr4() & FSGSBASE != 0) == offered;
        if offered {
            VECTOR.store(u64::MAX, Ordering::SeqCst);
            let (base, (lo, hi)): (u64, (u32, u32));
            // SAFETY: CR4.FSGSBASE is set: rdfsbase reads the FS base;
            // rdmsr of it is emulated.
            unsafe {
                asm!("rdfsbase {}", out(reg) base);
                asm!("rdmsr", in("ecx") 0xc000_0100u32, out("eax") lo, out("edx") hi);
            }
            ok &= VECTOR.load(Ordering::SeqCst) == u64::MAX && base == u64::from(hi) << 32 | u64::from(lo);
        }
        set_cr4(cr4() & !FSGSBASE);
        ok &= cr4() & FSGSBASE == 0;
        let at = raise!(5, "rdfsbase rax", out("rax") _);
        ok &= expect("#UD (rdfsbase, CR4.FSGSBASE cleared)", 6, 0, at);
        println!("traps: CR4.FSGSBASE is the kernel's -> {}", if ok { "ok" } else { "WRONG" });
        ok
    }

    fn vectors(si: &StartInfo) -> bool {
        let mut all = true;
        let at = raise!(2, "xor ecx, ecx\n3: div ecx", out("eax") _, out("edx") _, out("ecx") _);
        all &= expect("#DE", 0, 0, at + 2);

        // #DB: single step. popfq sets TF; the trap follows the next
        // instruction, with DR6.BS (bit 14) as the debugreg hypercall shows.
        let _ = hypercall::set_debugreg(6, 0xffff_0ff0);
        SKIP.store(0, Ordering::SeqCst);
        let after: u64;
        // SAFETY: sets TF for one instruction; the hook clears it again.
        unsafe {
            asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "3:", "lea {a}, [rip + 3b]", a = out(reg) after)
        };
        all &= expect("#DB", 1, 0, after);
        let dr6 = hypercall::get_debugreg(6);
        let ok = matches!(dr6, Ok(v) if v & 0x4000 != 0);
        println!("traps: #DB DR6 {dr6:x?} -> {}", if ok { "ok" } else { "WRONG" });
        all &= ok;
        let _ = hypercall::set_debugreg(6, 0xffff_0ff0);
        // Single-stepping an instruction the hypervisor emulates (Xen's
        // forced-emulation cpuid): the #DB follows it, as on Xen.
        let after: u64;
        // SAFETY: as above; cpuid changes only its four registers.
        unsafe {
            asm!("mov {b}, rbx", "pushfq", "or qword ptr [rsp], 0x100", "popfq", "ud2", ".ascii \"xen\"", "cpuid",
                "3:", "lea {a}, [rip + 3b]", "mov rbx, {b}", a = out(reg) after, b = out(reg) _,
                inout("eax") 0 => _, out("ecx") _, out("edx") _)
        };
        all &= expect("#DB after an emulated cpuid", 1, 0, after);
        let _ = hypercall::set_debugreg(6, 0xffff_0ff0);
        // icebp (int1): #DB after it on hardware, as Xen delivers it. QEMU
        // 7.2's translator is built without its icebp support and raises
        // #UD at the instruction (a handler resuming there loops forever).
        SKIP.store(0, Ordering::SeqCst);
        let at: u64;
        // SAFETY: icebp raises #DB (or QEMU's #UD), which the hook resumes from.
        unsafe {
            asm!("lea {at}, [rip + 2f]", "mov [{p}], {at}", "2: .byte 0xf1", at = out(reg) at,
                p = in(reg) ICEBP_AT.as_ptr())
        };
        ICEBP_AT.store(0, Ordering::SeqCst);
        if VECTOR.load(Ordering::SeqCst) == 6 {
            all &= expect("icebp (QEMU: #UD)", 6, 0, at);
        } else {
            all &= expect("icebp (#DB)", 1, 0, at + 1);
        }

        let at = raise!(0, "int3");
        all &= expect("#BP", 3, 0, at + 1);
        // int $4 goes through Xen's DPL 3 #OF gate: a trap, rip after it.
        let at = raise!(0, "int 4");
        all &= expect("int $4 (#OF)", 4, 0, at + 2);
        // into and bound do not exist in 64-bit mode.
        let at = raise!(1, ".byte 0xce");
        all &= expect("into (#UD)", 6, 0, at);
        // int $5: the guest's gate has DPL 0, so as in Xen the guest gets
        // #GP with the IDT entry in the error code, at the instruction.
        // (Xen passes on the CPU's error code, and QEMU 7.2 reports n*16+2
        // for 64-bit gates; xenish decodes the int and gives the CPU's
        // architectural n*8+2. Either is accepted here; the system tests
        // pin which one each hypervisor gives.)
        let at = raise!(2, "int 5");
        let qemu = ERROR.load(Ordering::SeqCst) == (5 << 4) | 2;
        all &= expect("int $5 (#GP)", 13, if qemu { (5 << 4) | 2 } else { (5 << 3) | 2 }, at);
        let at = raise!(2, "ud2");
        all &= expect("#UD", 6, 0, at);
        // DF set at the fault: the frame has it (and, as on Xen, the
        // handler is entered with it too; guest-rt's stubs clear it).
        let at = raise!(2, "std\nud2\ncld");
        let df = RFLAGS.load(Ordering::SeqCst) & (1 << 10) != 0;
        all &= expect("#UD with DF set", 6, 0, at + 1) && df;
        let at = raise!(2, "wrmsr", in("ecx") 0x1234, in("eax") 0, in("edx") 0);
        all &= expect("#GP", 13, 0, at);
        all &= segment_bases();
        all &= fsgsbase();
        // The guest kernel's fault: Xen clears the user bit (ring 3 is its
        // kernel mode), so the error code says "kernel read, not present".
        let at = raise!(2, "mov al, byte ptr [rsi]", in("rsi") 0x1000u64, out("al") _);
        all &= expect("#PF", 14, 0, at);
        let cr2 = events::vcpu0_cr2();
        println!("traps: #PF address {cr2:#x} -> {}", if cr2 == 0x1000 { "ok" } else { "WRONG" });
        all &= cr2 == 0x1000;
        let at = raise!(0, "int 0x80");
        all &= expect("int $0x80", 0x80, 0, at + 2);

        // Segment faults through this kernel's own GDT.
        match install_gdt(si) {
            Ok(_) => {
                let at = raise!(2, "mov ds, eax", in("eax") u32::from(SEL_NOT_PRESENT));
                all &= expect("#NP", 11, u64::from(SEL_NOT_PRESENT & !3), at);
                let at = raise!(2, "mov ss, eax", in("eax") u32::from(SEL_NOT_PRESENT));
                all &= expect("#SS", 12, u64::from(SEL_NOT_PRESENT & !3), at);
                let at = raise!(2, "mov es, eax", in("eax") 0x1bu32);
                all &= expect("#GP (empty descriptor)", 13, 0x18, at);
            }
            Err(e) => {
                println!("traps: set_gdt failed: {e} -> WRONG");
                all = false;
            }
        }
        // A non-canonical stack access is #SS(0) on hardware; QEMU 7.2's
        // software MMU raises #GP(0) for every non-canonical address.
        // (rsp + 2^63 is non-canonical; rsp as the base makes it an SS access.)
        let at = raise!(4, "mov rax, qword ptr [rsp + rcx]", in("rcx") 0x8000_0000_0000_0000u64, out("rax") _);
        let v = VECTOR.load(Ordering::SeqCst);
        let name = if v == 12 { "non-canonical stack access (#SS)" } else { "non-canonical stack access (QEMU: #GP)" };
        all &= expect(name, if v == 12 { 12 } else { 13 }, 0, at);

        // x87 divide by zero with the exception unmasked: #MF at the fwait.
        let cw: u16 = 0x37b;
        // SAFETY: loads a control word and computes 1/0 on the x87 stack.
        unsafe { asm!("fninit", "fldcw [{cw}]", "fld1", "fldz", "fdivp st(1), st", cw = in(reg) &cw) };
        let at = raise!(1, "fwait");
        all &= expect("#MF", 16, 0, at);
        // SAFETY: resets the x87 unit to its defaults.
        unsafe { asm!("fninit") };

        // #AC: Xen runs with CR0.AM set, so ring 3 with EFLAGS.AC set gets
        // #AC(0) for a misaligned access. QEMU's TCG does not check
        // alignment at all: then the load simply happens.
        SKIP.store(4, Ordering::SeqCst);
        let (at, flags): (u64, u64);
        // SAFETY: sets AC around one misaligned load from this stack; the
        // hook (or the popfq after) clears it.
        unsafe {
            asm!("pushfq", "or dword ptr [rsp], 0x40000", "popfq", "pushfq", "pop {f}", "lea {at}, [rip + 3f]",
                "3: mov eax, dword ptr [rsp + 1]", "pushfq", "and dword ptr [rsp], ~0x40000", "popfq",
                at = out(reg) at, f = out(reg) flags, out("eax") _)
        };
        if VECTOR.load(Ordering::SeqCst) == u64::MAX && flags & AC != 0 {
            println!("traps: #AC: not raised with EFLAGS.AC set (this CPU does not check alignment: QEMU TCG)");
        } else {
            all &= expect("#AC", 17, 0, at);
        }

        // #XM: divss by zero with MXCSR.ZM clear. QEMU's TCG only sets the
        // MXCSR flag; then ZE (bit 2) shows the CPU saw the error.
        let (unmasked, default, mut after): (u32, u32, u32) = (0x1f80 & !(1 << 9), 0x1f80, 0);
        SKIP.store(4, Ordering::SeqCst);
        let at: u64;
        // SAFETY: changes MXCSR and two xmm registers, restoring MXCSR after.
        unsafe {
            asm!("ldmxcsr [{u}]", "xorps xmm1, xmm1", "mov {t:e}, 0x3f800000", "movd xmm0, {t:e}",
                "lea {at}, [rip + 3f]", "3: divss xmm0, xmm1", "stmxcsr [{a}]", "ldmxcsr [{d}]",
                u = in(reg) &unmasked, d = in(reg) &default, a = in(reg) &mut after, t = out(reg) _,
                at = out(reg) at, out("xmm0") _, out("xmm1") _)
        };
        let (v, e, rip) = (VECTOR.load(Ordering::SeqCst), ERROR.load(Ordering::SeqCst), RIP.load(Ordering::SeqCst));
        if v == u64::MAX && after & 4 != 0 {
            println!("traps: #XM: not raised, MXCSR.ZE set (QEMU TCG raises no SIMD exceptions)");
        } else {
            println!("traps: #XM: vector {v} error {e:#x} rip {rip:#x} (at {at:#x})");
            all &= expect("#XM", 19, 0, at);
        }

        let _ = hypercall::fpu_taskswitch(true);
        let at = raise!(0, "movq xmm0, rax", in("rax") 7u64, out("xmm0") _);
        all &= expect("#NM", 7, 0, at);
        all
    }

    // The failsafe callback: Xen's frame is `rcx, r11, ds, es, fs, gs, rip,
    // cs, rflags, rsp, ss`. Saves the live registers, lets the Rust hook
    // look at (and redirect) the frame, then returns as Linux's
    // xen_failsafe_callback does: rcx/r11 restored, the selectors dropped,
    // and the rest handed to the iret hypercall.
    global_asm!(
        r#"
        .section .text
        .globl failsafe_entry
    failsafe_entry:
        push %rax
        push %rdx
        push %rsi
        push %rdi
        push %r8
        push %r9
        push %r10
        push %rbp
        lea 64(%rsp), %rdi
        mov %rsp, %rbp
        and $-16, %rsp
        call {hook}
        mov %rbp, %rsp
        pop %rbp
        pop %r10
        pop %r9
        pop %r8
        pop %rdi
        pop %rsi
        pop %rdx
        pop %rax
        pop %rcx
        pop %r11
        add $32, %rsp
        pushq $0
        jmp hypercall_page + 23 * 32
        "#,
        hook = sym failsafe_hook,
        options(att_syntax)
    );

    extern "C" {
        fn failsafe_entry();
    }

    /// The last failsafe frame and how many arrived.
    static FAILSAFE: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
    static FAILSAFES: AtomicU64 = AtomicU64::new(0);
    /// If non-zero, where the failsafe callback resumes the guest.
    static RESUME: AtomicU64 = AtomicU64::new(0);
    /// A #GP taken at a non-canonical rip the iret returned to.
    static GP_AT_NONCANONICAL: AtomicU64 = AtomicU64::new(0);

    extern "C" fn failsafe_hook(frame: &mut [u64; 11]) {
        for (slot, &w) in FAILSAFE.iter().zip(frame.iter()) {
            slot.store(w, Ordering::SeqCst);
        }
        FAILSAFES.fetch_add(1, Ordering::SeqCst);
        let resume = RESUME.swap(0, Ordering::SeqCst);
        if resume != 0 {
            frame[6] = resume;
        }
    }

    fn failsafe_frame() -> [u64; 11] {
        core::array::from_fn(|i| FAILSAFE[i].load(Ordering::SeqCst))
    }

    fn register_failsafe() -> bool {
        let ok =
            hypercall::register_callback(CALLBACKTYPE_FAILSAFE as u16, 0, failsafe_entry as *const () as u64).is_ok();
        if !ok {
            println!("traps: registering the failsafe callback failed -> WRONG");
        }
        ok
    }

    /// %ds from its own GDT, the descriptor cleared, then yields until
    /// the hypervisor reloads %ds on a switch back and fails.
    fn failsafe_reload(si: &StartInfo) -> bool {
        if !register_failsafe() {
            return false;
        }
        let Ok(ma) = install_gdt(si) else {
            println!("traps: set_gdt failed -> WRONG");
            return false;
        };
        // SAFETY: a flat data selector of this kernel's GDT; es stays null.
        unsafe { asm!("mov ds, {s:x}", "mov es, {z:x}", s = in(reg) SEL_DATA, z = in(reg) 0u16) };
        // SAFETY: the machine address of entry 1 of this kernel's GDT.
        if unsafe { hypercall::update_descriptor(ma, 0) }.is_err() {
            println!("traps: update_descriptor failed -> WRONG");
            return false;
        }
        let before = selectors();
        let mut yields = 0;
        while FAILSAFES.load(Ordering::SeqCst) == 0 && yields < 10_000 {
            let _ = hypercall::sched_yield();
            yields += 1;
        }
        let f = failsafe_frame();
        let after = selectors();
        println!(
            "traps: failsafe after {yields} yields: rcx {:#x} r11 {:#x} ds {:#x} es {:#x} fs {:#x} gs {:#x} rip {:#x} \
             cs {:#x} rflags {:#x} rsp {:#x} ss {:#x}; ds was {:#x}, is {:#x}",
            f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], before[0], after[0]
        );
        let ok = FAILSAFES.load(Ordering::SeqCst) == 1
            && f[2..6] == [u64::from(SEL_DATA), 0, u64::from(before[2]), u64::from(before[3])]
            && f[7] & 0xffff == 0xe030
            && f[10] == 0xe02b
            && after[0] == 0;
        println!("traps: failsafe on reloading %ds -> {}", if ok { "ok" } else { "WRONG" });
        ok
    }

    /// An iret hypercall to a non-canonical rip; the failsafe callback
    /// (or, under QEMU on Xen, the #GP handler) resumes at a recovery
    /// point. Returns the stack pointer the recovery point was entered with.
    fn iret_to_noncanonical() -> u64 {
        let rsp: u64;
        // SAFETY: builds an iret_context below the current stack pointer
        // (the red zone is off) and returns through the failsafe callback
        // to label 4, where the stack pointer is restored.
        unsafe {
            asm!(
                "lea rax, [rip + 4f]",
                "mov [{r}], rax",
                "mov r12, rsp",
                "lea rax, [rsp - 512]",
                "and rax, -16",
                "push 0xe02b", // ss
                "push rax",    // rsp
                "pushfq",      // rflags
                "push 0xe030", // cs: kernel mode
                "mov rax, 0x8000000000000000",
                "push rax",    // rip
                "push 0",      // flags
                "push 0x4444", // rcx
                "push 0x1111", // r11
                "push 0x2222", // rax
                "mov eax, 23",
                "syscall",
                "ud2",
                "4:",
                "mov {s}, rsp",
                "mov rsp, r12",
                r = in(reg) RESUME.as_ptr(), s = out(reg) rsp,
                out("rax") _, out("rcx") _, out("r11") _, out("r12") _,
            );
        }
        rsp
    }

    fn failsafe_iret() -> bool {
        if !register_failsafe() {
            return false;
        }
        // SAFETY: a flat data selector, to see it reported.
        unsafe { asm!("mov ds, {s:x}", s = in(reg) 0xe02bu16) };
        let rsp = iret_to_noncanonical();
        let gp = GP_AT_NONCANONICAL.load(Ordering::SeqCst);
        if gp != 0 {
            println!("traps: the iret returned to {gp:#x} and faulted there: #GP, no failsafe (QEMU's iretq)");
            return FAILSAFES.load(Ordering::SeqCst) == 0;
        }
        let f = failsafe_frame();
        println!(
            "traps: failsafe frame: rcx {:#x} r11 {:#x} ds {:#x} es {:#x} fs {:#x} gs {:#x} rip {:#x} cs {:#x} \
             rflags {:#x} rsp {:#x} ss {:#x}",
            f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]
        );
        let ok = FAILSAFES.load(Ordering::SeqCst) == 1
            && f[0] == 0x4444
            && f[1] == 0x1111
            && f[2] == 0xe02b
            && f[6] == 0x8000_0000_0000_0000
            && f[7] & 0xffff == 0xe030
            && f[10] == 0xe02b
            && f[9] == rsp;
        println!("traps: failsafe on an iret to a non-canonical rip -> {}", if ok { "ok" } else { "WRONG" });
        ok
    }

    fn main(si: &'static StartInfo) -> ! {
        if let Err(e) = events::init(si).and_then(|_| traps::install(hook)) {
            println!("traps: setup failed: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let mode = cmdline.split(' ').nth(1).unwrap_or("");
        let (ok, done) = match mode {
            "failsafe-reload" => (failsafe_reload(si), "traps: failsafe callback seen on reload"),
            "failsafe-iret" => (failsafe_iret(), "traps: the iret to a non-canonical rip was survived"),
            "failsafe-none" => {
                let _ = iret_to_noncanonical();
                (false, "traps: survived an iret to a non-canonical rip without a failsafe callback")
            }
            _ => (vectors(si), "traps: all vectors delivered with Xen's frames"),
        };
        if ok {
            println!("{done}");
            guest_rt::shutdown(SHUTDOWN_POWEROFF)
        }
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
