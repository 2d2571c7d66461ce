//! The benchmark kernel: times PV operations in TSC cycles (median and
//! 99th percentile after a warm-up) and prints one machine-readable line
//! per operation, `bench: <op> median=<c> p99=<c> n=<n>`, or
//! `bench: <op> missing <reason>` when the hypervisor refuses it, then
//! `bench: done`. It runs as dom0 on xenish and on Xen 4.17 alike.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::{asm, global_asm};
    use core::sync::atomic::{AtomicU64, Ordering};

    use guest_abi::hypercall::{self, hypercall3, hypercall4};
    use guest_abi::sched::SHUTDOWN_POWEROFF;
    use guest_abi::xen::{
        StartInfo, DOMID_SELF, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_MMUEXT_OP, HYPERVISOR_MMU_UPDATE,
    };
    use guest_abi::XenError;
    use guest_rt::traps::{self, TrapFrame};
    use guest_rt::{events, println};

    const N: usize = 1000;
    const WARMUP: usize = 100;
    const M2P: u64 = 0xffff_8000_0000_0000;
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    static mut SCRATCH: Page = Page([0; 4096]);
    static mut COPY_SRC: Page = Page([0x5a; 4096]);
    static mut COPY_DST: Page = Page([0; 4096]);
    static mut SAMPLES: [u64; N] = [0; N];
    static mut USER_STACK: Page = Page([0; 4096]);
    static mut KERNEL_STACK: [Page; 4] = [const { Page([0; 4096]) }; 4];

    fn rdtsc() -> u64 {
        // SAFETY: rdtsc is allowed in guest kernel and user mode.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn samples() -> &'static mut [u64; N] {
        // SAFETY: the benchmark runs on one vCPU, one measurement at a time.
        unsafe { &mut *core::ptr::addr_of_mut!(SAMPLES) }
    }

    fn report(name: &str) {
        let s = samples();
        s.sort_unstable();
        println!("bench: {name} median={} p99={} n={N}", s[N / 2], s[N * 99 / 100]);
    }

    /// Times `op` N times after a warm-up; `op` returns false to give up.
    fn measure(name: &str, mut op: impl FnMut() -> Result<(), XenError>) {
        for _ in 0..WARMUP {
            if let Err(e) = op() {
                println!("bench: {name} missing {e:?}");
                return;
            }
        }
        for i in 0..N {
            let t0 = rdtsc();
            let r = op();
            samples()[i] = rdtsc().wrapping_sub(t0);
            if let Err(e) = r {
                println!("bench: {name} missing {e:?}");
                return;
            }
        }
        report(name);
    }

    fn read_cr3() -> u64 {
        let v: u64;
        // SAFETY: a PV kernel's read of %cr3 is emulated by the hypervisor.
        unsafe { asm!("mov {}, cr3", out(reg) v) };
        v
    }

    /// The machine address of the L1 entry mapping `va`, found by walking
    /// the initial page tables through their read-only mapping.
    fn l1e_address(va: u64) -> Option<(u64, u64)> {
        let mut table_mfn = read_cr3() >> 12;
        for shift in [39u32, 30, 21, 12] {
            // SAFETY: the M2P is mapped read-only for PV guests; the initial
            // page tables are mapped (read-only) at VIRT_BASE + pfn pages.
            let pfn = unsafe { ((M2P + table_mfn * 8) as *const u64).read_volatile() };
            let entry_va = VIRT_BASE + pfn * 4096 + ((va >> shift) & 511) * 8;
            // SAFETY: as above.
            let entry = unsafe { (entry_va as *const u64).read_volatile() };
            if shift == 12 {
                return Some(((table_mfn << 12) + ((va >> 12) & 511) * 8, entry));
            }
            if entry & 1 == 0 || entry & 0x80 != 0 {
                return None;
            }
            table_mfn = (entry & 0x000f_ffff_ffff_f000) >> 12;
        }
        None
    }

    fn result(ret: i64) -> Result<(), XenError> {
        XenError::from_ret(ret).map(drop)
    }

    static SKIP: AtomicU64 = AtomicU64::new(0);

    fn pf_hook(f: &mut TrapFrame) -> bool {
        f.rip += SKIP.load(Ordering::Relaxed);
        f.vector == 14
    }

    fn main(si: &'static StartInfo) -> ! {
        if events::init(si).and_then(|_| traps::install(pf_hook)).is_err() {
            println!("bench: setup failed");
            guest_rt::shutdown(SHUTDOWN_POWEROFF);
        }
        events::unmask_events();
        println!("bench: start");

        measure("null_hypercall", || hypercall::xen_version().map(drop));

        let va = core::ptr::addr_of!(SCRATCH) as u64;
        match l1e_address(va) {
            Some((ma, pte)) => {
                let req = [ma, pte]; // mmu_update {ptr | MMU_NORMAL_PT_UPDATE, val}
                measure("mmu_update_1pte", || {
                    let mut done = 0u32;
                    // SAFETY: one valid request and a done counter.
                    result(unsafe {
                        hypercall4(
                            HYPERVISOR_MMU_UPDATE,
                            req.as_ptr() as u64,
                            1,
                            core::ptr::addr_of_mut!(done) as u64,
                            u64::from(DOMID_SELF),
                        )
                    })
                });
                measure("update_va_mapping_invlpg", || hypercall::update_va_mapping(va, pte, 2));
            }
            None => {
                println!("bench: mmu_update_1pte missing no-l1");
                println!("bench: update_va_mapping_invlpg missing no-l1");
            }
        }

        match hypercall::evtchn_alloc_unbound(DOMID_SELF)
            .and_then(|a| Ok((a, hypercall::evtchn_bind_interdomain(DOMID_SELF, a)?)))
        {
            Ok((a, b)) => {
                while events::take(b) {}
                measure("evtchn_roundtrip", || {
                    hypercall::evtchn_send(a)?;
                    while !events::take(b) {
                        core::hint::spin_loop();
                    }
                    Ok(())
                });
            }
            Err(e) => println!("bench: evtchn_roundtrip missing {e:?}"),
        }

        let src_mfn = l1e_address(core::ptr::addr_of!(COPY_SRC) as u64).map(|(_, p)| (p & 0x000f_ffff_ffff_f000) >> 12);
        let dst_mfn = l1e_address(core::ptr::addr_of!(COPY_DST) as u64).map(|(_, p)| (p & 0x000f_ffff_ffff_f000) >> 12);
        if let (Some(s), Some(d)) = (src_mfn, dst_mfn) {
            // struct gnttab_copy: source {gmfn, domid, offset}, dest {...}, len, flags, status.
            let mut op = [0u8; 40];
            op[0..8].copy_from_slice(&s.to_le_bytes());
            op[8..10].copy_from_slice(&DOMID_SELF.to_le_bytes());
            op[16..24].copy_from_slice(&d.to_le_bytes());
            op[24..26].copy_from_slice(&DOMID_SELF.to_le_bytes());
            op[32..34].copy_from_slice(&4096u16.to_le_bytes());
            measure("grant_copy_4k", || {
                // SAFETY: one gnttab_copy, valid during the call.
                result(unsafe { hypercall3(HYPERVISOR_GRANT_TABLE_OP, 5, op.as_mut_ptr() as u64, 1) })?;
                match i16::from_le_bytes([op[36], op[37]]) {
                    0 => Ok(()),
                    _ => Err(XenError::Einval),
                }
            });
        }

        measure("memcpy_4k", || {
            // SAFETY: two distinct static pages.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    core::ptr::addr_of!(COPY_SRC.0) as *const u8,
                    core::ptr::addr_of_mut!(COPY_DST.0) as *mut u8,
                    4096,
                );
            }
            core::hint::black_box(());
            Ok(())
        });

        SKIP.store(2, Ordering::Relaxed);
        measure("pagefault_bounce", || {
            // SAFETY: reads the unmapped address 0x1000; the #PF handler steps over it.
            unsafe { asm!("mov al, byte ptr [rsi]", in("rsi") 0x1000u64, out("al") _) };
            Ok(())
        });

        syscall_roundtrip()
    }

    /// Enters guest user mode (same page tables, as XTF does) and times
    /// `syscall` → kernel callback → `iret` round trips from there.
    fn syscall_roundtrip() -> ! {
        let l4 = read_cr3() >> 12;
        let mut op = [0u8; 24]; // struct mmuext_op {cmd, pad, arg1 = mfn, arg2}
        op[0..4].copy_from_slice(&15u32.to_le_bytes()); // MMUEXT_NEW_USER_BASEPTR
        op[8..16].copy_from_slice(&l4.to_le_bytes());
        let mut done = 0u32;
        // SAFETY: one valid mmuext_op and a done counter.
        let rc = unsafe {
            hypercall4(
                HYPERVISOR_MMUEXT_OP,
                op.as_ptr() as u64,
                1,
                core::ptr::addr_of_mut!(done) as u64,
                u64::from(DOMID_SELF),
            )
        };
        let kstack = core::ptr::addr_of!(KERNEL_STACK) as u64 + 4 * 4096;
        let ready = result(rc)
            .and_then(|_| hypercall::register_callback(2, 1, syscall_entry as *const () as u64)) // CALLBACKTYPE_syscall, mask events
            .and_then(|_| hypercall::stack_switch(0xe02b, kstack));
        if let Err(e) = ready {
            println!("bench: syscall_roundtrip missing {e:?}");
            finish()
        }
        let ustack = core::ptr::addr_of!(USER_STACK) as u64 + 4096;
        // The iret frame: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss.
        let frame: [u64; 9] = [0, 0, 0, 0, user_main as *const () as u64, 0xe033, 0x202, ustack, 0xe02b];
        // SAFETY: iret to guest user mode; control comes back through the
        // syscall callback, which ends in `user_done`.
        unsafe {
            asm!("mov rsp, {f}", "mov eax, 23", "syscall", f = in(reg) frame.as_ptr(), options(noreturn));
        }
    }

    extern "C" {
        fn syscall_entry();
    }

    global_asm!(
        r#"
        .section .text
        .globl syscall_entry
    syscall_entry:
        pop %rcx
        pop %r11
        cmp $0xdead, %rax
        je 1f
        pushq $0x100                /* VGCF_in_syscall */
        jmp hypercall_page + 23 * 32
    1:  and $-16, %rsp
        call {done}
        "#,
        done = sym user_done,
        options(att_syntax)
    );

    /// Runs in guest user mode.
    extern "C" fn user_main() -> ! {
        for i in 0..N + WARMUP {
            let t0 = rdtsc();
            // SAFETY: a system call to the guest kernel, which returns here.
            unsafe { asm!("syscall", inout("rax") 1u64 => _, out("rcx") _, out("r11") _) };
            let t = rdtsc().wrapping_sub(t0);
            if i >= WARMUP {
                samples()[i - WARMUP] = t;
            }
        }
        // SAFETY: the marker makes the callback stay in the kernel.
        unsafe { asm!("syscall", in("rax") 0xdeadu64, options(noreturn)) };
    }

    extern "C" fn user_done() -> ! {
        report("syscall_roundtrip");
        finish()
    }

    fn finish() -> ! {
        println!("bench: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
