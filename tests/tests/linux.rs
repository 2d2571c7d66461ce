//! Debian's stock Linux 6.1 (unmodified, from `linux-image-amd64`) as dom0:
//! it boots through all of its initialisation on xenish and ends where it
//! ends on Xen 4.17 in the same QEMU configuration (that boot pair is
//! `fifo.rs`'s, which also reads the event ABI from its log); with a busybox
//! initramfs its userspace runs, forking, faulting, piping, sleeping and
//! calling the kernel, reads the CMOS clock (which dom0 reaches through
//! the hypervisor, as on Xen), reports the same as on Xen, and powers
//! off. The same
//! kernel and initramfs also run as a boot-time domU beside a dom0, with
//! the console on its ring. (Xen 4.17 on x86 cannot start domUs at boot, so
//! that run is held to what the kernel's userspace sees as dom0.)
//!
//! The sort pipeline found a real bug: with AVX enabled in XCR0, glibc's
//! string functions in user processes used YMM state that Linux (saving
//! user state with FXSAVE, as it sees no OSXSAVE) never switched, and sort
//! segfaulted now and then.

use std::time::Duration;

use tests::linux::{self, Hypervisor, DONE};
use tests::{Boot, Exit};

/// What init does: deterministic facts and work that exercises the PV MMU
/// (fork, exec, copy-on-write), system calls, events and time.
const SCRIPT: &str = r#"export PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
echo "linux-initramfs: userspace is up"
echo "linux-initramfs: kernel $(busybox uname -s -r -m)"
echo "linux-initramfs: hypervisor $(busybox cat /sys/hypervisor/type)"
i=0; while [ $i -lt 100 ]; do busybox true; i=$((i+1)); done
echo "linux-initramfs: $i processes ran"
echo "linux-initramfs: a pipe says $(echo paravirtual | busybox tr a-z A-Z)"
echo "linux-initramfs: $(busybox seq 1 20000 | busybox sort -rn | busybox head -n 1) numbers sorted"
s=$(busybox cat /sys/class/rtc/rtc0/since_epoch 2>/dev/null)
[ "${s:-0}" -gt 1600000000 ] && echo "linux-initramfs: the CMOS clock reads a date after 2020"
busybox sleep 1
echo "linux-initramfs: slept"
echo "linux-initramfs: done"
busybox poweroff -f
"#;

const EXPECTED: &[&str] = &[
    "linux-initramfs: userspace is up",
    "linux-initramfs: kernel Linux 6.1.0-",
    "linux-initramfs: hypervisor xen",
    "linux-initramfs: 100 processes ran",
    "linux-initramfs: a pipe says PARAVIRTUAL",
    "linux-initramfs: 20000 numbers sorted",
    "linux-initramfs: slept",
    DONE,
];

/// What dom0's userspace says when it read the CMOS clock, which it
/// reaches through the hypervisor (Xen's `rtc_guest_read`); Xen's dom0
/// says it too (the lines are compared).
const RTC_LINE: &str = "linux-initramfs: the CMOS clock reads a date after 2020";

fn limit() -> Duration {
    Duration::from_secs(600)
}

/// The userspace run on xenish with XPTI forced on (QEMU's CPU says AMD,
/// where it is off by default): Linux's processes, page-table updates and
/// system calls on per-CPU root tables that lack the hypervisor's direct
/// map; it powers off. Booted beside the same kernel and initramfs on Xen
/// 4.17 (one QEMU per core), whose userspace must have seen the same.
#[test]
fn debian_linux_userspace_runs_with_xpti_on_xenish_sees_the_same_as_on_xen_and_powers_off() {
    let initrd = linux::initramfs("userspace-compare", SCRIPT).unwrap_or_else(|e| panic!("{e}"));
    let on_xenish = || {
        let cmdline = format!("{} xpti=on", linux::DOM0_MEM);
        let out = with_linux_and_initrd(Boot::new(), &cmdline, initrd.clone());
        out.expect_line("XPTI (64-bit PV only): Dom0 enabled, DomU enabled");
        for line in EXPECTED {
            out.expect_line(line);
        }
        // dom0 only: a domU has no CMOS (all ones), on Xen as here.
        out.expect_line(RTC_LINE);
        out.expect_line("xenish:   d0 (dom0): poweroff").expect_exit(Exit::DebugExit(0));
        linux::userspace_lines(&out.serial)
    };
    let on_xen = || {
        let out = linux::boot(Hypervisor::Xen, Some(&initrd), Some(DONE), limit()).unwrap_or_else(|e| panic!("{e}"));
        let lines = linux::userspace_lines(&out.serial);
        assert_eq!(lines.last().map(String::as_str), Some(DONE), "Xen did not finish\n{out}");
        lines
    };
    let (xenish, xen) = both(on_xenish, on_xen);
    assert_eq!(xenish, xen, "what Linux's userspace saw differs");
}

/// Runs `a` and `b` at once and returns both results; a panic in either
/// fails the test after both have ended.
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = s.spawn(b);
        (a.join(), b.join())
    });
    match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
    }
}

/// Boots xenish with `cmdline`, the modules `boot` already has, then
/// Debian's kernel and a busybox initramfs (named `name`) running SCRIPT.
fn with_linux_and_initramfs(boot: Boot, cmdline: &str, name: &str) -> tests::Outcome {
    let initrd = linux::initramfs(name, SCRIPT).unwrap_or_else(|e| panic!("{e}"));
    with_linux_and_initrd(boot, cmdline, initrd)
}

/// [`with_linux_and_initramfs`] with an initramfs already made.
fn with_linux_and_initrd(boot: Boot, cmdline: &str, initrd: std::path::PathBuf) -> tests::Outcome {
    let kernel = tests::debian::linux().unwrap_or_else(|e| panic!("{e}"));
    boot.cpu(linux::CPU)
        .memory_mib(linux::QEMU_MEMORY_MIB)
        .cmdline(cmdline)
        .module(kernel, linux::KERNEL_CMDLINE)
        .module(initrd, "")
        .timeout(limit())
        .try_run()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn debian_linux_runs_as_a_boot_time_domu_with_its_console_on_the_ring() {
    let cmdline = "domain=ctl,module=1,privileged domain=linux,module=2,initrd=3,mem=256";
    let out = with_linux_and_initramfs(Boot::new().guest("hello", "hello"), cmdline, "userspace-domu");
    for line in EXPECTED {
        out.expect_line(&format!("(d1) {line}"));
    }
    out.expect_line("(d0) Hello from a xenish PV guest")
        .expect_line("xenish:   d1 (linux): poweroff")
        .expect_no("xenish: d1 crashed")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn two_unmodified_linux_kernels_run_side_by_side_as_boot_time_domains() {
    // XPTI for the domU only: the CPU switches between a domain on its
    // root table and one on its own L4s.
    let cmdline =
        "domain=dom0,module=1,initrd=2,mem=384,privileged domain=domU,module=1,initrd=2,mem=256 xpti=dom0=0,domu=1";
    let out = with_linux_and_initramfs(Boot::new(), cmdline, "userspace-pair");
    out.expect_line("XPTI (64-bit PV only): Dom0 disabled, DomU enabled");
    for line in EXPECTED {
        out.expect_line(&format!("(d0) {line}")).expect_line(&format!("(d1) {line}"));
    }
    out.expect_line("xenish:   d0 (dom0): poweroff")
        .expect_line("xenish:   d1 (domU): poweroff")
        .expect_no("crashed")
        .expect_exit(Exit::DebugExit(0));
}
