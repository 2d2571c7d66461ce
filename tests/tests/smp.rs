//! SMP bring-up: xenish finds every CPU in the MADT, starts the application
//! processors (INIT-SIPI-SIPI, the real-mode trampoline, per-CPU tables and
//! stacks), reports each, checks that IPIs reach them (event-check round
//! trips and TLB shootdowns, each AP halted in between), runs guests on
//! every CPU (or on CPU 0 alone with `smp_guests=0`), and runs a guest to
//! its power-off. `nosmp` and `maxcpus=` hold the count down as in Xen.

use tests::{Boot, Exit, Outcome};

/// Boots the `hello` guest on `cpus` virtual CPUs with `cmdline`.
fn boot(cpus: u32, cmdline: &str, accel: &str) -> Outcome {
    Boot::new().smp(cpus).accel(accel).cmdline(cmdline).guest("hello", "hello").run()
}

/// The guest ran and the machine powered off cleanly.
fn guest_ran(out: &Outcome) {
    out.expect_line("(d0) Hello from a xenish PV guest")
        .expect_line("xenish: d0 shut down: poweroff")
        .expect_no("xenish: PANIC")
        .expect_no("hypervisor fault")
        .expect_exit(Exit::DebugExit(0));
}

/// Prints how often waiters for the system lock halted, if they did:
/// how often depends on the host (emulated CPUs on fewer host cores), so
/// it is for the log only.
fn report_dozes(out: &Outcome) {
    if let Some(line) = out.serial.lines().find(|l| l.contains("waiting for the system lock")) {
        eprintln!("info: {}", line.trim_end());
    }
}

/// CPUs 0..online are each reported online with APIC IDs 0.. (QEMU numbers
/// them so), and the summary says so.
fn online(out: &Outcome, online: u32) {
    for line in out.serial.lines().filter(|l| l.contains("CPU") || l.contains("ACPI")) {
        eprintln!("  {}", line.trim_end());
    }
    for n in 0..online {
        out.expect_line(&format!("xenish: CPU {n} (APIC id {n}) online"));
    }
    out.expect_no(&format!("xenish: CPU {online} (APIC id"));
    out.expect_line(&format!("xenish: {online} CPUs online"));
}

/// The boot-time IPI check reached every AP: each answered every
/// event-check ping (an AP halts whenever it has nothing to do, so then
/// only the IPI can wake it) and
/// carried out every TLB shootdown, singly and all at once.
fn ipis_work(out: &Outcome, online: u32) {
    for line in out.serial.lines().filter(|l| l.contains("IPI check")) {
        eprintln!("  {}", line.trim_end());
    }
    for n in 1..online {
        let line = out
            .serial
            .lines()
            .find(|l| l.contains(&format!("xenish: IPI check, CPU {n}: ")))
            .unwrap_or_else(|| panic!("no IPI check of CPU {n}"));
        assert!(
            line.contains(" 100/100 event-check round trips") && line.contains(" 100/100 TLB shootdowns"),
            "{line}"
        );
    }
    out.expect_line(&format!("xenish: IPI check, all {online} CPUs: {0}/{0} remote flushes", 100 * (online - 1)));
    out.expect_no("no answer after");
}

#[test]
fn one_cpu() {
    let out = boot(1, "", "tcg");
    out.expect_line("xenish: ACPI: RSDP revision").expect_line("MADT: 1 CPU(s), 1 IO-APIC(s)");
    online(&out, 1);
    out.expect_no("not brought up").expect_no("IPI check");
    guest_ran(&out);
}

/// With `smp_guests=0` the APs come up but guests stay on CPU 0.
#[test]
fn two_cpus() {
    let out = boot(2, "smp_guests=0", "tcg");
    out.expect_line("MADT: 2 CPU(s)");
    online(&out, 2);
    ipis_work(&out, 2);
    out.expect_no("not brought up").expect_no("xenish: smp_guests:");
    guest_ran(&out);
}

/// Guests run on every CPU by default.
#[test]
fn four_cpus() {
    let out = boot(4, "", "tcg");
    out.expect_line("MADT: 4 CPU(s)");
    online(&out, 4);
    ipis_work(&out, 4);
    out.expect_no("not brought up").expect_line("xenish: smp_guests: vCPUs run on 4 CPUs (under the system lock)");
    guest_ran(&out);
    report_dozes(&out);
}

#[test]
fn four_cpus_on_one_host_thread() {
    let out = boot(4, "", "tcg,thread=single");
    online(&out, 4);
    ipis_work(&out, 4);
    out.expect_no("not brought up");
    guest_ran(&out);
}

#[test]
fn nosmp_keeps_one() {
    let out = boot(4, "nosmp", "tcg");
    online(&out, 1);
    for id in 1..4 {
        out.expect_line(&format!("xenish: CPU with APIC id {id} not brought up: nosmp"));
    }
    guest_ran(&out);
}

#[test]
fn maxcpus_keeps_two() {
    let out = boot(4, "maxcpus=2", "tcg");
    online(&out, 2);
    ipis_work(&out, 2);
    out.expect_line("xenish: CPU with APIC id 2 not brought up: maxcpus=2")
        .expect_line("xenish: CPU with APIC id 3 not brought up: maxcpus=2");
    guest_ran(&out);
}

/// vCPUs run on every CPU under the big lock (`smp_guests`, the
/// default). Two domains ping-pong 10000 events on two CPUs, each blocking
/// between events: every event is answered (a wake-up lost between one
/// CPU deciding to idle and saving the vCPU it ran would halt both CPUs
/// with a vCPU runnable), and the power-off report counts the vCPUs each
/// CPU put on itself. Which CPU runs them is timing: the waker usually
/// blocks and takes the woken vCPU before the kicked idle CPU arrives, so
/// the test asks only that vCPUs ran; that both CPUs run vCPUs at once is
/// the vcpus test's (dom0's two vCPUs busy on two CPUs).
#[test]
fn smp_guests_runs_two_domains_on_two_cpus() {
    let out = Boot::new()
        .smp(2)
        .cmdline("domain=ping,module=1 domain=pong,module=2")
        .guest("pingpong", "ping peer=1 rounds=10000")
        .guest("pingpong", "pong peer=0 port=1 rounds=10000")
        .run();
    out.expect_line("xenish: smp_guests: vCPUs run on 2 CPUs (under the system lock)")
        .expect_line("(d0) ping: 10000 events answered, spurious: false")
        .expect_line("(d1) pong: 10000 round trips, spurious: false")
        .expect_no("xenish: PANIC")
        .expect_no("hypervisor fault")
        .expect_exit(Exit::DebugExit(0));
    let line = out.serial.lines().find(|l| l.contains("vCPUs put on each CPU:")).unwrap_or_default();
    let counts: Vec<u64> =
        line.split("CPU ").skip(1).filter_map(|s| s.split_whitespace().nth(1)?.parse().ok()).collect();
    assert_eq!(counts.len(), 2, "{line}");
    assert!(counts.iter().sum::<u64>() > 0, "vCPUs were put on CPUs: {line}");
    report_dozes(&out);
}
