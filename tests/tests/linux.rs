//! Debian's stock Linux 6.1 (unmodified, from `linux-image-amd64`) as dom0:
//! it boots through all of its initialisation on xenish, and ends where it
//! ends on Xen 4.17 in the same QEMU configuration.

use std::time::Duration;

use tests::linux::{self, Hypervisor};

/// Where a kernel with no root and no initramfs stops, on any hypervisor.
const NO_ROOT: &str = "VFS: Unable to mount root fs";

fn limit() -> Duration {
    Duration::from_secs(600)
}

/// The kernel's last words, without the timestamp and console prefix.
fn panic_line(serial: &str) -> Option<String> {
    serial.lines().find_map(|l| l.find("Kernel panic - not syncing: ").map(|at| l[at..].trim_end().to_string()))
}

#[test]
fn debian_linux_boots_to_its_root_mount_on_xenish_as_on_xen() {
    let on = |hv| {
        let out = linux::boot(hv, None, Some(NO_ROOT), limit()).unwrap_or_else(|e| panic!("{e}"));
        out.expect_line(NO_ROOT);
        (panic_line(&out.serial), out)
    };
    let (xenish, out) = on(Hypervisor::Xenish);
    out.expect_no("xenish: d0 crashed");
    let (xen, _) = on(Hypervisor::Xen);
    assert_eq!(xenish, xen, "Linux ends differently on xenish and on Xen");
    assert!(xenish.is_some_and(|l| l.contains(NO_ROOT)));
}
