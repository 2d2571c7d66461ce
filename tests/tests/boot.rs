//! The walking skeleton, end to end: GRUB boots xenish, xenish builds dom0
//! from a PV kernel, runs it in ring 3, serves its hypercalls, and powers
//! off with a status that says how the domains ended.

use tests::{Boot, Exit};

fn hello_on(cpu: &str) {
    let out = Boot::new().cpu(cpu).cmdline("dom0_mem=64M").guest("hello", "hello greeting=yes").run();
    out.expect_line("xenish 0.1.0")
        .expect_line("xenish: memory map:")
        .expect_line("xenish: module 1:")
        .expect_line("(d0) Hello from a xenish PV guest")
        .expect_line("(d0) magic=xen-3.0-x86_64")
        .expect_line("(d0) running on Xen ABI 4.17")
        .expect_line("(d0) cmdline: hello greeting=yes")
        .expect_line("xenish: d0 shut down: poweroff")
        .expect_no("xenish: PANIC")
        .expect_no("hypervisor fault")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn hello_boots_and_powers_off_on_cpu_max() {
    hello_on("max");
}

#[test]
fn hello_boots_and_powers_off_on_qemu64() {
    hello_on("qemu64");
}

#[test]
fn crashing_guest_is_reported() {
    let out = Boot::new().guest("crash", "crash").run();
    out.expect_line("(d0) crash: about to execute ud2")
        .expect_line("xenish: d0 crashed: unhandled #UD")
        .expect_line("xenish:   d0 (dom0): crash")
        .expect_no("survived")
        .expect_no("xenish: PANIC")
        .expect_no("hypervisor fault")
        .expect_exit(Exit::DebugExit(1));
}

#[test]
fn unknown_hypercall_returns_enosys() {
    let out = Boot::new().guest("enosys", "enosys").run();
    out.expect_line("(d0) enosys: hypercall 63 returned -38")
        .expect_line("(d0) enosys: still running")
        .expect_line("xenish: d0 shut down: poweroff")
        .expect_no("xenish: PANIC")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn dom0_mem_sizes_dom0() {
    let out = Boot::new().cmdline("dom0_mem=64M").guest("hello", "hello").run();
    out.expect_line(" nr_pages=16384 ").expect_exit(Exit::DebugExit(0));
    let out = Boot::new().cmdline("dom0_mem=lots").guest("hello", "hello").run();
    out.expect_line("xenish: bad dom0_mem").expect_no("(d0)").expect_exit(Exit::DebugExit(0));
}

#[test]
fn no_modules_is_reported_and_powers_off() {
    let out = Boot::new().run();
    out.expect_line("xenish: no modules")
        .expect_line("xenish: all domains have shut down")
        .expect_exit(Exit::DebugExit(0));
}
