//! Debian's stock Linux as a PV guest: its kernel with a busybox initramfs
//! whose `/init` runs a script, booted on xenish or on Xen 4.17 in the same
//! QEMU configuration, so what its userspace prints can be compared.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::initramfs::Cpio;
use crate::{debian, images, Boot, Outcome};

/// The QEMU CPU model: SMAP hidden, because QEMU 7.2's software emulation
/// does IRETQ's stack reads as supervisor accesses, which SMAP faults on a
/// PV kernel's (user-accessible) stack, under Xen and xenish alike. Seen as
/// `#PF error 0x1, cr2 = rsp` at Linux's `iretq` in `sync_core`.
pub const CPU: &str = "max,-smap";
/// QEMU memory: a 512 MiB dom0 plus room for the hypervisor and, on
/// xenish, the unwrapped kernel.
pub const QEMU_MEMORY_MIB: u32 = 1024;
/// dom0's size on either hypervisor.
pub const DOM0_MEM: &str = "dom0_mem=512M";
/// The kernel's command line: the PV console, and not the boot chatter.
pub const KERNEL_CMDLINE: &str = "console=hvc0 quiet";
/// What the init script prints last, before it powers off.
pub const DONE: &str = "linux-initramfs: done";

/// An initramfs with Debian's busybox as `/bin/busybox` and `script` as
/// `/init` (run by busybox's sh), written under target/debian.
pub fn initramfs(name: &str, script: &str) -> Result<PathBuf, String> {
    let busybox = std::fs::read(debian::busybox()?).map_err(|e| format!("busybox: {e}"))?;
    let init = format!("#!/bin/busybox sh\n{script}");
    let cpio = Cpio::new()
        .dir("bin")
        .file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .dir("proc")
        .dir("sys")
        .dir("dev")
        .file("init", 0o755, init.as_bytes())
        .finish();
    let path = images::target_dir().join("debian").join(format!("{name}.cpio"));
    images::write_atomic(&path, &cpio)?;
    Ok(path)
}

/// Which hypervisor a boot runs Linux on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    /// This repository's.
    Xenish,
    /// Debian's Xen 4.17.
    Xen,
}

/// Boots Debian's kernel as dom0 with `initrd` (if any) on `hv`; with
/// `until` QEMU is stopped once that text appears, else the boot runs until
/// the machine powers off (or the time limit).
pub fn boot(hv: Hypervisor, initrd: Option<&Path>, until: Option<&str>, timeout: Duration) -> Result<Outcome, String> {
    let kernel = debian::linux()?;
    let (image, cmdline) = match hv {
        Hypervisor::Xenish => {
            (images::images().hypervisor.clone(), format!("{DOM0_MEM} {}", crate::qemu::XENISH_TEST_OPTIONS))
        }
        Hypervisor::Xen => (debian::xen()?, format!("{} {DOM0_MEM}", debian::XEN_CMDLINE)),
    };
    let mut boot = Boot::with_hypervisor(image)
        .cpu(CPU)
        .memory_mib(QEMU_MEMORY_MIB)
        .cmdline(&cmdline)
        .module(kernel, KERNEL_CMDLINE)
        .timeout(timeout);
    if let Some(initrd) = initrd {
        boot = boot.module(initrd.to_path_buf(), "");
    }
    if let Some(marker) = until {
        boot = boot.until(marker);
    }
    boot.try_run()
}

/// The lines the init script printed (`linux-initramfs: ...`), without
/// whatever the hypervisor's console put before them.
pub fn userspace_lines(serial: &str) -> Vec<String> {
    serial.lines().filter_map(|l| l.find("linux-initramfs: ").map(|at| l[at..].trim_end().to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userspace_lines_drop_console_prefixes() {
        let serial = "(d0) linux-initramfs: a\r\n(XEN) noise\nlinux-initramfs: b\n[ 1.0] linux-initramfs: done\n";
        assert_eq!(userspace_lines(serial), ["linux-initramfs: a", "linux-initramfs: b", "linux-initramfs: done"]);
    }
}
