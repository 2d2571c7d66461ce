//! The traps and usermode guests on Debian's Xen 4.17 in the same QEMU:
//! the exception frames, error codes, failsafe behaviour, system calls and
//! upcalls xenish's own system tests expect are checked against what Xen
//! does. Where Xen's result differs
//! only because of QEMU (an error code Xen passes on from the CPU, an
//! iretq QEMU lets through), the test says so.

use std::time::Duration;

use tests::{debian, images, Boot, Outcome};

/// Boots test guest `guest` (module string `string`) as dom0 on Xen 4.17
/// until dom0 shuts down.
fn on_xen(guest: &str, string: &str) -> Outcome {
    let xen = debian::xen().unwrap_or_else(|e| panic!("{e}"));
    Boot::with_hypervisor(xen)
        .cpu("max,-smap")
        .cmdline(&format!("{} {}", debian::XEN_CMDLINE, debian::XEN_TEST_DOM0_MEM))
        .module(images().guest(guest), string)
        .until("Hardware Dom0 ")
        .timeout(Duration::from_secs(120))
        .run()
}

#[test]
fn every_exception_arrives_on_xen_as_the_traps_guest_expects() {
    let out = on_xen("traps", "traps");
    for name in [
        "#DE",
        "#DB",
        "#DB after an emulated cpuid",
        "icebp (QEMU: #UD)",
        "#BP",
        "int $4 (#OF)",
        "into (#UD)",
        "#UD",
        "#UD with DF set",
        "#GP",
        "#GP (non-canonical FS base)",
        "#UD (rdfsbase, CR4.FSGSBASE clear)",
        "#UD (rdfsbase, CR4.FSGSBASE cleared)",
        "int $0x80",
        "#NP",
        "#SS",
        "#GP (empty descriptor)",
        "non-canonical stack access (QEMU: #GP)",
        "#MF",
        "#NM",
    ] {
        out.expect_line(&format!("traps: {name}: vector"));
    }
    out.expect_line("traps: #PF: vector 14 error 0x0 ")
        .expect_line("traps: #PF address 0x1000 -> ok")
        .expect_line("traps: FS and shadow GS bases by rdmsr/wrmsr -> ok")
        .expect_line("traps: CR4.FSGSBASE is the kernel's -> ok")
        .expect_line("traps: #DB DR6 Ok(ffff4ff0) -> ok")
        // Xen hands on QEMU's error code for the refused int $5 (5*16+2).
        .expect_line("traps: int $5 (#GP): vector 13 error 0x52 ")
        .expect_line("traps: #AC: not raised with EFLAGS.AC set")
        .expect_line("traps: #XM: not raised, MXCSR.ZE set")
        .expect_line("traps: all vectors delivered with Xen's frames")
        .expect_no("WRONG");
}

#[test]
fn an_iret_to_a_non_canonical_rip_on_xen_under_qemu_faults_in_the_guest() {
    // On hardware the iretq faults and Xen enters the failsafe callback
    // (what xenish does); QEMU's iretq loads the rip unchecked, so under
    // QEMU the guest takes #GP at that rip instead.
    let out = on_xen("traps", "traps failsafe-iret");
    out.expect_line("traps: the iret returned to 0x8000000000000000 and faulted there: #GP, no failsafe")
        .expect_line("traps: the iret to a non-canonical rip was survived")
        .expect_no("WRONG");
}

#[test]
fn system_calls_iret_and_upcalls_on_xen_as_the_usermode_guest_expects() {
    let out = on_xen("usermode", "usermode");
    for line in tests::answers::usermode_answers(tests::qemu::default_smp()) {
        out.expect_line(&line);
    }
    out.expect_line("usermode: ok: a masked port stays pending, no upcall")
        .expect_line("usermode: ok: unmasking delivers the pending event")
        .expect_line("usermode: ok: with the vCPU masked nothing is delivered")
        .expect_line("usermode: ok: clearing the vCPU mask delivers it")
        .expect_line("usermode: user process made 3000 system calls, 0 wrong answers")
        .expect_line("usermode: ok: timer events interrupted the user process")
        .expect_line("usermode: done")
        .expect_no("FAILED");
}
