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
    for name in ["#DE", "#BP", "#UD", "#GP", "#PF", "int $0x80", "#NM"] {
        out.expect_line(&format!("(d0) traps: {name}: vector"));
    }
    out.expect_line("(d0) traps: #PF address 0x1000 -> ok")
        .expect_line("(d0) traps: all vectors delivered with Xen's frames")
        .expect_no("WRONG")
        .expect_exit(Exit::DebugExit(0));
}
