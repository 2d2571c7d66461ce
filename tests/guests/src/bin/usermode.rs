//! Guest kernel and user mode, events and broken contexts. Command line:
//! - `usermode`: checks that masked events (per port and per vCPU) stay
//!   pending and arrive on unmask, then runs a user-mode process that makes
//!   system calls while a periodic timer keeps interrupting it, and checks
//!   every call came back with the kernel's answer.
//! - `usermode bad-iret`: an `iret` hypercall whose frame is unreadable.
//! - `usermode bad-trap`: a trap table whose #UD handler is not canonical
//!   (refused), then one whose #UD handler is unmapped, then a #UD.
//!
//! The last two must crash this domain and no other.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::{asm, global_asm};
    use core::sync::atomic::{AtomicU64, Ordering};

    use guest_abi::arch_x86::TrapInfo;
    use guest_abi::hypercall::{self, hypercall4};
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF, HYPERVISOR_MMUEXT_OP, VIRQ_TIMER};
    use guest_rt::{events, println};

    /// System calls the user process makes.
    const CALLS: u64 = 3000;
    /// System calls answered by the kernel (its answer is the new count).
    static ANSWERED: AtomicU64 = AtomicU64::new(0);
    /// Upcalls when the user process started.
    static UPCALLS_AT_START: AtomicU64 = AtomicU64::new(0);
    /// Wrong answers the user process saw.
    static WRONG: AtomicU64 = AtomicU64::new(0);

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    static mut USER_STACK: [Page; 2] = [const { Page([0; 4096]) }; 2];
    static mut KERNEL_STACK: [Page; 4] = [const { Page([0; 4096]) }; 4];

    fn fail(what: &str) -> ! {
        println!("usermode: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn check(ok: bool, what: &str) {
        if !ok {
            fail(what);
        }
        println!("usermode: ok: {what}");
    }

    /// Masked events stay pending; unmasking delivers them.
    fn masked_events() {
        let Ok(a) = hypercall::evtchn_alloc_unbound(DOMID_SELF) else { fail("alloc_unbound") };
        let Ok(b) = hypercall::evtchn_bind_interdomain(DOMID_SELF, a) else { fail("bind_interdomain") };
        events::unmask_events();
        let _ = hypercall::xen_version(); // deliver the bind's own event
        while events::take(b) {}

        events::mask_port(b);
        let before = events::upcalls();
        check(hypercall::evtchn_send(a).is_ok(), "send to a masked port");
        let _ = hypercall::xen_version();
        check(events::upcalls() == before && events::is_pending(b), "a masked port stays pending, no upcall");
        check(hypercall::evtchn_unmask(b).is_ok(), "EVTCHNOP_unmask");
        check(events::take(b) && events::upcalls() == before + 1, "unmasking delivers the pending event");

        events::mask_events();
        let before = events::upcalls();
        let _ = hypercall::evtchn_send(a);
        let _ = hypercall::xen_version();
        check(events::upcalls() == before && events::is_pending(b), "with the vCPU masked nothing is delivered");
        events::unmask_events();
        check(events::take(b) && events::upcalls() == before + 1, "clearing the vCPU mask delivers it");
    }

    fn mmuext_new_user_baseptr(mfn: u64) -> i64 {
        let mut op = [0u8; 24]; // struct mmuext_op {cmd, pad, arg1 = mfn, arg2}
        op[0..4].copy_from_slice(&15u32.to_le_bytes()); // MMUEXT_NEW_USER_BASEPTR
        op[8..16].copy_from_slice(&mfn.to_le_bytes());
        let mut done = 0u32;
        // SAFETY: one valid mmuext_op and a done counter.
        unsafe {
            hypercall4(
                HYPERVISOR_MMUEXT_OP,
                op.as_ptr() as u64,
                1,
                core::ptr::addr_of_mut!(done) as u64,
                u64::from(DOMID_SELF),
            )
        }
    }

    fn read_cr3() -> u64 {
        let v: u64;
        // SAFETY: xenish emulates the read of %cr3.
        unsafe { asm!("mov {}, cr3", out(reg) v) };
        v
    }

    /// Enters user mode (the same page tables, as XTF does) at `user_main`.
    fn user_process() -> ! {
        let Ok(port) = hypercall::evtchn_bind_virq(VIRQ_TIMER, 0) else { fail("bind VIRQ_TIMER") };
        if hypercall::vcpu_set_periodic_timer(0, 1_000_000).is_err() {
            fail("periodic timer");
        }
        let _ = port;
        let kstack = core::ptr::addr_of!(KERNEL_STACK) as u64 + 4 * 4096;
        let ready = mmuext_new_user_baseptr(read_cr3() >> 12) == 0
            && hypercall::register_callback(2, 1, syscall_entry as *const () as u64).is_ok() // syscall, mask events
            && hypercall::stack_switch(0xe02b, kstack).is_ok();
        if !ready {
            fail("entering user mode");
        }
        UPCALLS_AT_START.store(events::upcalls(), Ordering::SeqCst);
        let ustack = core::ptr::addr_of!(USER_STACK) as u64 + 2 * 4096;
        // The iret frame: rax, r11, rcx, flags, rip, cs, rflags (IF), rsp, ss.
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

    // The kernel's system call entry: counts the call, answers with the new
    // count in rax and returns to user mode; 0xdead ends the test.
    global_asm!(
        r#"
        .section .text
        .globl syscall_entry
    syscall_entry:
        pop %rcx
        pop %r11
        cmp $0xdead, %rax
        je 1f
        lock incq {answered}(%rip)
        mov {answered}(%rip), %rax
        pushq $0x100                /* VGCF_in_syscall */
        jmp hypercall_page + 23 * 32
    1:  and $-16, %rsp
        call {done}
        "#,
        answered = sym ANSWERED,
        done = sym user_done,
        options(att_syntax)
    );

    /// Runs in guest user mode: system calls with some work in between.
    extern "C" fn user_main() -> ! {
        for i in 1..=CALLS {
            let answer: u64;
            // SAFETY: a system call to the guest kernel, which returns here.
            unsafe { asm!("syscall", inout("rax") 1u64 => answer, out("rcx") _, out("r11") _) };
            if answer != i {
                WRONG.fetch_add(1, Ordering::Relaxed);
            }
            for _ in 0..2000 {
                core::hint::spin_loop();
            }
        }
        // SAFETY: the marker makes the callback stay in the kernel.
        unsafe { asm!("syscall", in("rax") 0xdeadu64, options(noreturn)) };
    }

    extern "C" fn user_done() -> ! {
        let upcalls = events::upcalls() - UPCALLS_AT_START.load(Ordering::SeqCst);
        let (answered, wrong) = (ANSWERED.load(Ordering::SeqCst), WRONG.load(Ordering::SeqCst));
        println!("usermode: user process made {answered} system calls, {wrong} wrong answers");
        check(answered == CALLS && wrong == 0, "every system call returned to user mode with its answer");
        check(upcalls > 0, "timer events interrupted the user process");
        println!("usermode: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn bad_iret() -> ! {
        println!("usermode: iret with an unreadable frame");
        // SAFETY: the hypervisor reads the frame at rsp = 0x1000, which is
        // unmapped, and must crash this domain.
        unsafe { asm!("mov rsp, 0x1000", "mov eax, 23", "syscall", options(noreturn)) }
    }

    fn bad_trap() -> ! {
        let entry = |vector, address| TrapInfo { vector, flags: 0, cs: 0xe033, _pad0: [0; 4], address };
        let end = entry(0, 0);
        let refused = hypercall::set_trap_table(&[entry(6, 0x8000_0000_0000_0000), end]);
        check(refused == Err(guest_abi::XenError::Einval), "a non-canonical handler is refused: EINVAL");
        // A #UD handler in unmapped memory, and no #PF handler.
        check(hypercall::set_trap_table(&[entry(6, 0x2000), end]).is_ok(), "a trap table with an unmapped #UD handler");
        println!("usermode: ud2");
        // SAFETY: raises #UD on purpose; the handler cannot even be fetched.
        unsafe { asm!("ud2", options(noreturn)) }
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        if events::init(si).is_err() {
            fail("event setup");
        }
        if cmdline.contains("bad-iret") {
            bad_iret()
        }
        if cmdline.contains("bad-trap") {
            bad_trap()
        }
        masked_events();
        user_process()
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
