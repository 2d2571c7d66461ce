//! The FIFO event-channel ABI on xenish and on Debian's Xen 4.17 in the
//! same QEMU: the `fifo` test guest (control blocks good and hostile, the
//! switch from 2-level, thousands of ports over several event-array
//! pages, priorities, masking, polling, a VIRQ, busy ports, corrupted
//! words, the array's limit, reset) must see exactly the same on both; and
//! Debian's Linux picks the FIFO ABI on both, as its boot log says, and
//! ends at the same panic when it finds no root (and picks FIFO as a domU
//! on xenish, beside a dom0; Xen 4.17 starts no domU at boot).

use std::time::Duration;

use tests::linux::{self, Hypervisor};
use tests::{debian, images, Boot, Exit, Outcome};

/// The guest's report, without the console prefix.
fn fifo_lines(serial: &str) -> Vec<String> {
    serial.lines().filter_map(|l| l.find("fifo: ").map(|at| l[at..].trim_end().to_string())).collect()
}

fn on_xen(guest: &str, string: &str) -> Outcome {
    let xen = debian::xen().unwrap_or_else(|e| panic!("{e}"));
    Boot::with_hypervisor(xen)
        .cpu("max,-smap")
        .cmdline(&format!("{} {}", debian::XEN_CMDLINE, debian::XEN_TEST_DOM0_MEM))
        .module(images().guest(guest), string)
        .until("Hardware Dom0 ")
        .timeout(Duration::from_secs(180))
        .run()
}

#[test]
fn the_fifo_guest_sees_the_same_on_xenish_and_xen() {
    let xenish = Boot::new().guest("fifo", "fifo").timeout(Duration::from_secs(180)).run();
    xenish.expect_no("FAILED").expect_exit(Exit::DebugExit(0));
    let a = fifo_lines(&xenish.serial);
    assert_eq!(a.last().map(String::as_str), Some("fifo: done"), "xenish did not finish\n{xenish}");
    for line in [
        "fifo: 2-level: set_priority: Err(Enosys)",
        "fifo: init_control on its own L4 page table: Err(Einval)",
        "fifo: init_control: link_bits: Ok(17)",
        "fifo: the 2-level event on port 1 arrived after the switch: true",
        "fifo: 2500 events over 3 pages: each delivered once, in order sent: true",
        "fifo: priorities [7, 3, 3, 0, 15, 7, 0, 3] sent in order, delivered as [3, 6, 1, 2, 7, 0, 5, 4]",
        "fifo: a masked port: pending true, linked false, delivered false",
        "fifo: delivered by the unmask: true",
        "fifo: VIRQ_TIMER arrived through its queue: true",
        "fifo: a closed port still linked (word true) is not reused: true",
        "fifo: expand_array: 125 more pages, then Enospc",
        "fifo: after reset: set_priority: Err(Enosys)",
    ] {
        assert!(a.iter().any(|l| l == line), "xenish: no line {line:?}\n{xenish}");
    }
    let on_xen = on_xen("fifo", "fifo");
    let b = fifo_lines(&on_xen.serial);
    println!("{}", b.join("\n"));
    assert_eq!(a, b, "the FIFO ABI differs between xenish and Xen 4.17\n{on_xen}");
}

/// Linux's line when it takes the FIFO ABI (`xen_evtchn_fifo_init`).
const FIFO_ABI: &str = "xen:events: Using FIFO-based ABI";
/// Where a kernel with no root and no initramfs stops.
const NO_ROOT: &str = "VFS: Unable to mount root fs";

/// Debian's kernel as dom0 with its boot messages on the console, until
/// it finds no root file system.
fn linux_boot_log(hv: Hypervisor) -> Outcome {
    let kernel = debian::linux().unwrap_or_else(|e| panic!("{e}"));
    let (image, cmdline) = match hv {
        Hypervisor::Xenish => {
            (images().hypervisor.clone(), format!("{} {}", linux::DOM0_MEM, tests::qemu::XENISH_TEST_OPTIONS))
        }
        Hypervisor::Xen => {
            (debian::xen().unwrap_or_else(|e| panic!("{e}")), format!("{} {}", debian::XEN_CMDLINE, linux::DOM0_MEM))
        }
    };
    Boot::with_hypervisor(image)
        .cpu(linux::CPU)
        .memory_mib(linux::QEMU_MEMORY_MIB)
        .cmdline(&cmdline)
        .module(kernel, "console=hvc0 loglevel=7")
        .until(NO_ROOT)
        .timeout(Duration::from_secs(600))
        .run()
}

/// The kernel's last words, without the timestamp and console prefix.
fn panic_line(serial: &str) -> Option<String> {
    serial.lines().find_map(|l| l.find("Kernel panic - not syncing: ").map(|at| l[at..].trim_end().to_string()))
}

/// Also `linux.rs`'s proof that Debian's kernel goes through all of its
/// initialisation on xenish and ends where it ends on Xen 4.17 (the same
/// boot, so one pair serves both): the same panic, at its root mount.
/// Both boots at once, one QEMU per core.
#[test]
fn debian_linux_uses_the_fifo_abi_and_ends_at_its_root_mount_on_xenish_as_on_xen() {
    let (xenish, xen) = std::thread::scope(|s| {
        let xenish = s.spawn(|| linux_boot_log(Hypervisor::Xenish));
        let xen = s.spawn(|| linux_boot_log(Hypervisor::Xen));
        (xenish.join(), xen.join())
    });
    let (xenish, xen) = (xenish.expect("the xenish boot failed"), xen.expect("the Xen boot failed"));
    xenish.expect_line(FIFO_ABI).expect_line(NO_ROOT).expect_no("xenish: d0 crashed");
    xen.expect_line(FIFO_ABI).expect_line(NO_ROOT);
    let (a, b) = (panic_line(&xenish.serial), panic_line(&xen.serial));
    assert_eq!(a, b, "Linux ends differently on xenish and on Xen\n{xenish}\n{xen}");
    assert!(a.is_some_and(|l| l.contains(NO_ROOT)), "{xenish}");
}

#[test]
fn debian_linux_as_a_domu_uses_the_fifo_abi_too() {
    let kernel = debian::linux().unwrap_or_else(|e| panic!("{e}"));
    let out = Boot::new()
        .cpu(linux::CPU)
        .memory_mib(linux::QEMU_MEMORY_MIB)
        .cmdline("domain=ctl,module=1,privileged domain=linux,module=2,mem=256")
        .guest("hello", "hello")
        .module(kernel, "console=hvc0 loglevel=7")
        .until(NO_ROOT)
        .timeout(Duration::from_secs(600))
        .run();
    out.expect_no("xenish: d1 crashed");
    let domu = |needle: &str| out.serial.lines().any(|l| l.starts_with("(d1) ") && l.contains(needle));
    assert!(domu(NO_ROOT) && domu(FIFO_ABI), "the domU's log lacks {FIFO_ABI:?}\n{out}");
}
