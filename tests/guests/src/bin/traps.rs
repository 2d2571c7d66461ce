//! Exceptions as a PV guest sees them: installs a trap table, raises
//! #DE, #BP, #UD, #GP, #PF, `int $0x80`, #MF and #NM, and checks that each
//! arrives at its handler with the right vector, error code and frame
//! (and, for #PF, the fault address in vcpu_info.arch.cr2). #XM is left
//! out: QEMU's software emulation never raises it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;
    use core::sync::atomic::{AtomicU64, Ordering};

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

    fn hook(f: &mut TrapFrame) -> bool {
        if f.vector == 16 {
            // SAFETY: clears the pending x87 exception so the next x87
            // instruction does not raise it again.
            unsafe { asm!("fnclex") };
        }
        VECTOR.store(f.vector, Ordering::SeqCst);
        ERROR.store(f.error_code, Ordering::SeqCst);
        RIP.store(f.rip, Ordering::SeqCst);
        CS.store(f.cs, Ordering::SeqCst);
        f.rip += SKIP.load(Ordering::SeqCst);
        true
    }

    fn expect(name: &str, vector: u64, error: u64, at: u64) -> bool {
        let (v, e, rip, cs) = (
            VECTOR.swap(u64::MAX, Ordering::SeqCst),
            ERROR.load(Ordering::SeqCst),
            RIP.load(Ordering::SeqCst),
            CS.load(Ordering::SeqCst),
        );
        // A kernel-mode frame has CS RPL 0; events were masked (bit 32).
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

    fn main(si: &'static StartInfo) -> ! {
        if let Err(e) = events::init(si).and_then(|_| traps::install(hook)) {
            println!("traps: setup failed: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let mut all = true;
        let at = raise!(2, "xor ecx, ecx\n3: div ecx", out("eax") _, out("edx") _, out("ecx") _);
        all &= expect("#DE", 0, 0, at + 2);
        let at = raise!(0, "int3");
        all &= expect("#BP", 3, 0, at + 1);
        let at = raise!(2, "ud2");
        all &= expect("#UD", 6, 0, at);
        let at = raise!(2, "wrmsr", in("ecx") 0x1234, in("eax") 0, in("edx") 0);
        all &= expect("#GP", 13, 0, at);
        let at = raise!(2, "mov al, byte ptr [rsi]", in("rsi") 0x1000u64, out("al") _);
        all &= expect("#PF", 14, 4, at);
        // SAFETY: vcpu_info[0].arch.cr2 in the mapped shared_info page.
        let cr2 = events::vcpu0_cr2();
        println!("traps: #PF address {cr2:#x} -> {}", if cr2 == 0x1000 { "ok" } else { "WRONG" });
        all &= cr2 == 0x1000;
        let at = raise!(0, "int 0x80");
        all &= expect("int $0x80", 0x80, 0, at + 2);
        // x87 divide by zero with the exception unmasked: #MF at the fwait.
        let cw: u16 = 0x37b;
        // SAFETY: loads a control word and computes 1/0 on the x87 stack.
        unsafe { asm!("fninit", "fldcw [{cw}]", "fld1", "fldz", "fdivp st(1), st", cw = in(reg) &cw) };
        let at = raise!(1, "fwait");
        all &= expect("#MF", 16, 0, at);
        // SAFETY: resets the x87 unit to its defaults.
        unsafe { asm!("fninit") };
        let _ = hypercall::fpu_taskswitch(true);
        let at = raise!(0, "movq xmm0, rax", in("rax") 7u64, out("xmm0") _);
        all &= expect("#NM", 7, 0, at);
        if all {
            println!("traps: all vectors delivered with Xen's frames");
            guest_rt::shutdown(SHUTDOWN_POWEROFF)
        }
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
