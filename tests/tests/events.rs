//! Events and time as a guest sees them: VIRQ_TIMER through the event
//! channel, upcalls, the iret hypercall, the pvclock, and blocking.

use tests::{Boot, Exit};

#[test]
fn timers_fire_no_earlier_than_asked_and_within_a_bound() {
    let out = Boot::new().guest("timer", "timer").run();
    out.expect_line("(d0) timer: VIRQ_TIMER on port 1")
        .expect_line("(d0) timer: 10 timers fired, 0 early, max lateness ")
        .expect_line("(d0) timer: 10 upcalls")
        .expect_exit(Exit::DebugExit(0));
    // Lateness is bounded (generously: software emulation is slow).
    let late_us: u64 = out
        .serial
        .split("max lateness ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(late_us < 50_000, "a timer was {late_us} us late\n{out}");
}

#[test]
fn fpu_state_survives_switches_between_domains() {
    for cpu in ["max", "qemu64"] {
        let out = Boot::new()
            .cpu(cpu)
            .cmdline("domain=a,module=1 domain=b,module=2")
            .guest("fpu", "fpu a")
            .guest("fpu", "fpu bbbbbb")
            .run();
        out.expect_line("(d0) fpu: xmm state survived 2000 switches")
            .expect_line("(d1) fpu: xmm state survived 2000 switches")
            .expect_exit(Exit::DebugExit(0));
    }
}

#[test]
fn every_exception_arrives_with_xens_frame() {
    let out = Boot::new().guest("traps", "traps").run();
    for name in [
        "#DE",
        "#DB",
        "#DB after an emulated cpuid",
        "#BP",
        "int $4 (#OF)",
        "into (#UD)",
        "int $5 (#GP)",
        "#UD",
        "#UD with DF set",
        "#GP",
        "#GP (non-canonical FS base)",
        "#UD (rdfsbase, CR4.FSGSBASE clear)",
        "#UD (rdfsbase, CR4.FSGSBASE cleared)",
        "#PF",
        "int $0x80",
        "#NP",
        "#SS",
        "#GP (empty descriptor)",
        "#MF",
        "#NM",
    ] {
        out.expect_line(&format!("(d0) traps: {name}: vector"));
    }
    out.expect_line("(d0) traps: #PF address 0x1000 -> ok")
        .expect_line("(d0) traps: FS and shadow GS bases by rdmsr/wrmsr -> ok")
        .expect_line("(d0) traps: CR4.FSGSBASE is the kernel's -> ok")
        .expect_line("(d0) traps: #PF: vector 14 error 0x0 ")
        // The architectural error code (QEMU's own would be 0x52).
        .expect_line("(d0) traps: int $5 (#GP): vector 13 error 0x2a ")
        .expect_line("(d0) traps: #DB DR6 Ok(ffff4ff0) -> ok")
        // What QEMU 7.2's software emulation does instead of raising the
        // exception Xen on hardware would deliver (see the guest): a
        // non-canonical stack access is #GP, icebp is #UD, alignment is
        // never checked, SIMD errors only set their MXCSR flag.
        .expect_line("(d0) traps: non-canonical stack access (QEMU: #GP): vector 13 error 0x0")
        .expect_line("(d0) traps: icebp (QEMU: #UD): vector 6 error 0x0")
        .expect_line("(d0) traps: #AC: not raised with EFLAGS.AC set (this CPU does not check alignment: QEMU TCG)")
        .expect_line("(d0) traps: #XM: not raised, MXCSR.ZE set (QEMU TCG raises no SIMD exceptions)")
        .expect_line("(d0) traps: all vectors delivered with Xen's frames")
        .expect_no("WRONG")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn a_data_selector_that_no_longer_loads_enters_the_failsafe_callback() {
    // Two domains on one CPU (`smp_guests=0`: with a CPU each, a yield
    // finds nothing else to run and never switches), so that each is
    // switched away from and back to.
    let out = Boot::new()
        .cmdline("smp_guests=0 domain=a,module=1 domain=b,module=2")
        .guest("traps", "traps failsafe-reload")
        .guest("traps", "traps failsafe-reload")
        .run();
    out.expect_line("(d0) traps: failsafe on reloading %ds -> ok")
        .expect_line("(d1) traps: failsafe on reloading %ds -> ok")
        .expect_no("WRONG")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn an_iret_that_cannot_return_enters_the_failsafe_callback_or_crashes_its_guest() {
    let out = Boot::new()
        .cmdline("domain=iret,module=1 domain=none,module=2 domain=bystander,module=3")
        .guest("traps", "traps failsafe-iret")
        .guest("traps", "traps failsafe-none")
        .guest("hello", "hello")
        .run();
    out.expect_line("(d0) traps: failsafe on an iret to a non-canonical rip -> ok")
        .expect_line(
            "xenish: d1 crashed: iret to a non-canonical rip 0x8000000000000000, and no failsafe callback is registered",
        )
        .expect_line("(d2) Hello from a xenish PV guest")
        .expect_line("xenish:   d0 (iret): poweroff")
        .expect_line("xenish:   d1 (none): crash")
        .expect_line("xenish:   d2 (bystander): poweroff")
        .expect_no("WRONG")
        .expect_no("traps: survived an iret")
        .expect_exit(Exit::DebugExit(1));
}

#[test]
fn masked_events_wait_and_a_user_process_is_preempted_by_timers() {
    // With XPTI forced on (QEMU's CPU says AMD, where it is off by
    // default): every entry and exit switches page tables, and each
    // user/kernel toggle copies the guest slots into the CPU's root table.
    let out = Boot::new().cmdline("xpti=on").guest("usermode", "usermode").run();
    out.expect_line("XPTI (64-bit PV only): Dom0 enabled, DomU enabled");
    for line in tests::answers::usermode_answers(tests::qemu::default_smp()) {
        out.expect_line(&format!("(d0) {line}"));
    }
    out.expect_line("(d0) usermode: ok: a masked port stays pending, no upcall")
        .expect_line("(d0) usermode: ok: unmasking delivers the pending event")
        .expect_line("(d0) usermode: ok: with the vCPU masked nothing is delivered")
        .expect_line("(d0) usermode: ok: clearing the vCPU mask delivers it")
        .expect_line("(d0) usermode: user process made 3000 system calls, 0 wrong answers")
        .expect_line("(d0) usermode: ok: timer events interrupted the user process")
        .expect_line("(d0) usermode: done")
        .expect_no("FAILED")
        .expect_exit(Exit::DebugExit(0));
}

/// A guest kernel's page fault whose bounce frame cannot be written (its
/// stack on a read-only or an unmapped page) crashes that guest as it
/// always did: the fast path's direct write through the loaded tables
/// faults in the hypervisor, is fixed up (`arch::x86_64::guest_copy`),
/// and the walk and the slow path decide. Without the fixup the first
/// such fault halts the hypervisor.
#[test]
fn a_bounce_onto_a_read_only_or_unmapped_kernel_stack_crashes_only_its_guest() {
    let out = Boot::new()
        .cmdline("domain=ro,module=1 domain=unmapped,module=2 domain=bystander,module=3")
        .guest("usermode", "usermode bad-stack-ro")
        .guest("usermode", "usermode bad-stack-unmapped")
        .guest("hello", "hello")
        .run();
    out.expect_line("(d0) usermode: ok: a #PF handler registered")
        .expect_line("(d0) usermode: a page fault with the stack on a read-only page")
        .expect_line("(d1) usermode: a page fault with the stack on an unmapped page at 0x3000")
        .expect_line("(d2) Hello from a xenish PV guest")
        .expect_line("xenish: d0 crashed: unhandled #PF (vector 14, error 0x4, cr2 0x1000): the guest kernel stack at")
        .expect_line("xenish: d1 crashed: unhandled #PF (vector 14, error 0x4, cr2 0x1000): the guest kernel stack at 0x2fc0 is not writable")
        .expect_line("xenish:   d0 (ro): crash")
        .expect_line("xenish:   d1 (unmapped): crash")
        .expect_line("xenish:   d2 (bystander): poweroff")
        .expect_no("hypervisor fault")
        .expect_exit(Exit::DebugExit(1));
}

#[test]
fn a_malformed_iret_or_trap_table_crashes_only_its_guest() {
    let out = Boot::new()
        .cmdline("domain=iret,module=1 domain=trap,module=2 domain=bystander,module=3")
        .guest("usermode", "usermode bad-iret")
        .guest("usermode", "usermode bad-trap")
        .guest("hello", "hello")
        .run();
    out.expect_line("(d0) usermode: iret with an unreadable frame")
        .expect_line("(d1) usermode: ok: a non-canonical handler is refused: EINVAL")
        .expect_line("(d1) usermode: ok: a trap table with an unmapped #UD handler")
        .expect_line("(d1) usermode: ud2")
        .expect_line("(d2) Hello from a xenish PV guest")
        .expect_line("xenish: d0 crashed: iret: unreadable frame at 0x1000")
        .expect_line("xenish: d1 crashed: ")
        .expect_line("xenish:   d0 (iret): crash")
        .expect_line("xenish:   d1 (trap): crash")
        .expect_line("xenish:   d2 (bystander): poweroff")
        .expect_exit(Exit::DebugExit(1));
}
