//! Several domains from xenish's command line: isolation, event channels
//! between them, the domU console ring, and CPU shares.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tests::{Boot, Exit, Outcome};

/// Boots that measure CPU shares need the host's CPUs to themselves (under
/// software emulation a second QEMU delays their timer interrupts): they
/// take this lock exclusively, the other boots of this file share it, and
/// they boot [`Boot::exclusive`] (no other test process's QEMU beside them
/// either: `cargo xtask test` runs two side by side).
static HOST_CPUS: RwLock<()> = RwLock::new(());

fn alone() -> RwLockWriteGuard<'static, ()> {
    HOST_CPUS.write().unwrap_or_else(|p| p.into_inner())
}

fn shared() -> RwLockReadGuard<'static, ()> {
    HOST_CPUS.read().unwrap_or_else(|p| p.into_inner())
}

fn field(out: &Outcome, domain: &str, key: &str) -> u64 {
    out.serial
        .lines()
        .find(|l| l.starts_with(domain) && l.contains(key))
        .and_then(|l| l.split(key).nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} from {domain}\n{out}"))
}

#[test]
fn two_domains_ping_pong_ten_thousand_times() {
    let _cpus = shared();
    let out = Boot::new()
        .cmdline("domain=ping,module=1 domain=pong,module=2")
        .guest("pingpong", "ping peer=1 rounds=10000")
        .guest("pingpong", "pong peer=0 port=1 rounds=10000")
        .run();
    out.expect_line("(d0) ping: offered port 1 to d1")
        .expect_line("(d1) pong: bound d0 port 1 as port 2")
        .expect_line("(d0) ping: 10000 events answered, spurious: false")
        .expect_line("(d1) pong: 10000 round trips, spurious: false")
        .expect_line("xenish:   d1 (pong): poweroff")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn a_bad_declaration_stops_only_that_domain() {
    let _cpus = shared();
    let out = Boot::new()
        .cmdline("domain=one,module=1 domain=two,module=9 domain=three,module=1,weight=0 domain=four,module=1")
        .guest("hello", "hello")
        .run();
    out.expect_line("xenish: d1 (two): there is no module 9; not started")
        .expect_line("xenish: d2: domain=three,module=1,weight=0: bad value '0' for weight; not started")
        .expect_line("(d0) Hello from a xenish PV guest")
        .expect_line("(d3) Hello from a xenish PV guest")
        .expect_line("xenish:   d3 (four): poweroff")
        .expect_exit(Exit::DebugExit(0));
}

/// One single-vCPU domain of weight 512 against enough of weight 256 to
/// keep every CPU busy with the heavy one below a whole CPU: on one CPU one
/// light domain (2/3 : 1/3), on N CPUs 2N-2 of them (the heavy one gets
/// 2N/(2+2N-2) = 1 CPU, each light one half of that). A single vCPU cannot
/// use more than one CPU, so with fewer light domains the weights would
/// not be what divides the CPUs.
#[test]
fn weights_share_the_cpu_two_to_one() {
    let _cpus = alone();
    let lights = (2 * tests::qemu::default_smp() as usize).saturating_sub(2).max(1);
    let mut cmdline = String::from("domain=heavy,module=1,weight=512");
    let mut boot = Boot::new().guest("spin", "spin from_ms=500 to_ms=3500");
    for n in 0..lights {
        cmdline += &format!(" domain=light{n},module={},weight=256", n + 2);
        boot = boot.guest("spin", "spin from_ms=500 to_ms=3500");
    }
    let out = boot.cmdline(&cmdline).exclusive().run();
    out.expect_exit(Exit::DebugExit(0));
    let heavy = field(&out, "(d0) spin:", "count=");
    for n in 1..=lights {
        let light = field(&out, &format!("(d{n}) spin:"), "count=");
        let ratio = heavy as f64 / light as f64;
        assert!((ratio - 2.0).abs() <= 0.2, "progress ratio against d{n} {ratio:.3}, want 2 ± 10%\n{out}");
    }
}

#[test]
fn a_capped_domain_stays_under_its_cap() {
    let _cpus = alone();
    let out = Boot::new()
        .cmdline("domain=capped,module=1,cap=25")
        .guest("spin", "spin from_ms=500 to_ms=2500")
        .exclusive()
        .run();
    out.expect_exit(Exit::DebugExit(0));
    let share = field(&out, "(d0) spin:", "share=");
    assert!(share <= 270, "a domain capped at 25% got {share}/1000 of the CPU\n{out}");
    assert!(share >= 100, "a domain capped at 25% got only {share}/1000 of the CPU\n{out}");
}

#[test]
fn grants_map_copy_revoke_and_refuse_attacks() {
    let _cpus = shared();
    let out = Boot::new()
        .cmdline("domain=granter,module=1 domain=mapper,module=2")
        .guest("grants", "granter peer=1")
        .guest("grants", "mapper peer=0 port=1")
        .run();
    out.expect_line("(d0) grants: granter: port 1 offered to d1")
        .expect_line("(d1) grants: ok: binding a port offered to another domain: EINVAL")
        .expect_line("(d1) grants: ok: the granter's data reads through the mapping")
        .expect_line("(d1) grants: ok: grant copy from the peer")
        .expect_line("(d1) grants: ok: mapping a grant meant for another domain")
        .expect_line("(d1) grants: ok: mapping a read-only grant writable")
        .expect_line("(d1) grants: ok: an out-of-range reference")
        .expect_line("(d1) grants: ok: a copy across a page boundary")
        .expect_line("(d0) grants: ok: the mapper's write is in the granted page")
        .expect_line("(d0) grants: ok: the mapper's grant copy arrived")
        .expect_line("(d0) grants: ok: revoking while mapped is refused")
        .expect_line("(d1) grants: ok: unmapping twice: bad handle")
        .expect_line("(d0) grants: ok: revoking after unmap succeeds")
        .expect_line("(d1) grants: ok: mapping after revocation")
        .expect_line("(d0) grants: granter done")
        .expect_line("(d1) grants: mapper done")
        .expect_no("FAILED")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn the_control_domain_caps_another_at_run_time() {
    let _cpus = alone();
    let out = Boot::new()
        .cmdline("domain=ctl,module=1,privileged domain=capped,module=2")
        .guest("schedctl", "schedctl target=1 weight=128 cap=25")
        .guest("spin", "spin from_ms=500 to_ms=2500")
        .exclusive()
        .run();
    out.expect_line("(d0) schedctl: d1 weight=256 cap=0 -> weight=128 cap=25")
        .expect_line("(d0) schedctl: another interface version: Some(Eacces)")
        .expect_line("(d0) schedctl: an absent domain: Some(Esrch)")
        .expect_exit(Exit::DebugExit(0));
    let share = field(&out, "(d1) spin:", "share=");
    assert!(share <= 270, "a domain capped at 25% at run time got {share}/1000 of the CPU\n{out}");
    assert!(share >= 100, "a domain capped at 25% at run time got only {share}/1000 of the CPU\n{out}");
}

#[test]
fn a_domain_cannot_grow_past_its_memory_size_but_can_give_back_and_regrow() {
    let _cpus = shared();
    let out = Boot::new().cmdline("domain=small,module=1,mem=64").guest("memqos", "memqos").run();
    out.expect_line("(d0) memqos: nr_pages=16384 current=16384 max=16384")
        .expect_line("(d0) memqos: increase_reservation gave Ok(0), populate_physmap gave Ok(0), current=Ok(16384)")
        .expect_line("(d0) memqos: decrease_reservation gave back Ok(2), a mapped frame Ok(0), current=Ok(16382)")
        .expect_line("(d0) memqos: increase_reservation gave Ok(2), current=Ok(16384)")
        .expect_line("xenish:   d0 (small): poweroff")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn destroying_a_domain_with_a_live_peer_leaves_the_peer_running_and_every_frame_accounted_for() {
    let _cpus = shared();
    let out = Boot::new()
        .cmdline("domain=ctl,module=1,privileged domain=granter,module=2")
        .guest("lifecycle", "lifecycle peer=1 port=2")
        .guest("grants", "granter peer=0")
        .run();
    out.expect_line("(d1) grants: granter: port 2 offered to d0")
        .expect_line("(d0) lifecycle: ok: the peer's grant is mapped and reads its page")
        .expect_line("(d0) lifecycle: ok: destroydomain of the running peer")
        .expect_line("xenish: d1: torn down")
        .expect_line("(d0) lifecycle: ok: VIRQ_DOM_EXC tells this domain")
        .expect_line("(d0) lifecycle: ok: all its frames but the mapped one are free")
        .expect_line("(d0) lifecycle: ok: it is a dying domain holding exactly the mapped frame")
        .expect_line("(d0) lifecycle: ok: the mapping still reads its page")
        .expect_line("(d0) lifecycle: ok: this end of the channel is unbound now")
        .expect_line("(d0) lifecycle: ok: a send on it is dropped, not refused")
        .expect_line("(d0) lifecycle: ok: the last frame came back at the unmap")
        .expect_line("xenish: d1: dead, every frame returned")
        .expect_line("(d0) lifecycle: ok: the domain is gone")
        .expect_line("(d0) lifecycle: done")
        .expect_no("FAILED")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn a_domain_created_and_destroyed_100_times_leaves_the_free_count_unchanged() {
    let _cpus = shared();
    let out = Boot::new().guest("lifecycle", "lifecycle cycles=100").run();
    out.expect_line("(d0) lifecycle: 50 domains created and destroyed, free pages unchanged")
        .expect_line("(d0) lifecycle: domains d1..d100: free pages unchanged")
        .expect_line("(d0) lifecycle: the domain list holds d0 alone again")
        .expect_line("(d0) lifecycle: done")
        .expect_no("FAILED")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn the_toolstack_builds_runs_and_destroys_domains_at_run_time() {
    let _cpus = shared();
    let out = Boot::new().guest("lifecycle", "lifecycle build=10").run();
    out.expect_line("(d1) built at run time, running, powering off")
        .expect_line("xenish: d1 shut down: poweroff")
        .expect_line("(d0) lifecycle: built d1, it ran and powered off, destroyed (1 of 10)")
        .expect_line("(d10) built at run time, running, powering off")
        .expect_line("(d0) lifecycle: built d10, it ran and powered off, destroyed (10 of 10)")
        .expect_line("(d0) lifecycle: done")
        .expect_no("FAILED")
        .expect_exit(Exit::DebugExit(0));
}

/// What the lifecycle guest reported, without the console prefix.
fn lifecycle_lines(serial: &str) -> Vec<String> {
    serial.lines().filter_map(|l| l.find("lifecycle: ").map(|at| l[at..].trim_end().to_string())).collect()
}

#[test]
fn the_toolstack_guest_sees_the_same_lifecycle_on_xenish_and_xen() {
    let _cpus = shared();
    let args = "lifecycle cycles=100 build=10";
    let xenish = Boot::new().guest("lifecycle", args).run();
    xenish.expect_exit(Exit::DebugExit(0));
    let xen = tests::debian::xen().unwrap_or_else(|e| panic!("{e}"));
    let on_xen = Boot::with_hypervisor(xen)
        .cpu("max,-smap")
        .cmdline(&format!("{} {}", tests::debian::XEN_CMDLINE, tests::debian::XEN_TEST_DOM0_MEM))
        .module(tests::images::images().guest("lifecycle"), args)
        .until("Hardware Dom0 ")
        .timeout(std::time::Duration::from_secs(300))
        .run();
    let (a, b) = (lifecycle_lines(&xenish.serial), lifecycle_lines(&on_xen.serial));
    assert_eq!(a.last().map(String::as_str), Some("lifecycle: done"), "xenish did not finish\n{xenish}");
    assert_eq!(a, b, "the lifecycle differs between xenish and Xen 4.17\n{on_xen}");
}

#[test]
fn an_unprivileged_domain_is_refused_every_toolstack_operation() {
    let _cpus = shared();
    let out = Boot::new()
        .cmdline("domain=ctl,module=1,privileged domain=attacker,module=2")
        .guest("spin", "spin from_ms=0 to_ms=300")
        .guest("lifecycle", "lifecycle attack")
        .run();
    for what in [
        "createdomain: EPERM",
        "destroying dom0: EPERM",
        "pausing dom0: EPERM",
        "raising dom0's max_mem: EPERM",
        "max_vcpus of dom0: EPERM",
        "setvcpucontext of dom0: EPERM",
        "getdomaininfo: EPERM",
        "physinfo: EPERM",
        "getdomaininfolist: EPERM",
        "a port in dom0: EPERM",
        "memory for dom0: none given",
    ] {
        out.expect_line(&format!("(d1) lifecycle: ok: {what}"));
    }
    out.expect_line("(d1) lifecycle: done")
        .expect_line("(d0) spin: count=")
        .expect_no("FAILED")
        .expect_exit(Exit::DebugExit(0));
}
