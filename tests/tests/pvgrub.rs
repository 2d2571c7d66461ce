//! PV-GRUB as a domU, on xenish and on Xen 4.17 in the same QEMU: `xl
//! create` with Debian's ready-made PV-GRUB 2 image
//! (`grub-xen-host`'s `/usr/lib/grub-xen/grub-x86_64-xen.bin`) as the
//! kernel and a disk image holding Debian's kernel, a busybox initramfs
//! and `/boot/grub/grub.cfg`. GRUB's embedded config searches the Xen
//! disks for that `grub.cfg`, loads the guest's own kernel and initramfs
//! from the disk and re-executes into them inside the same domain; the
//! initramfs's `/init` prints a marker and powers the domain off.
//!
//! The disk is an ext2 image made on the host with e2fsprogs' `mke2fs -d`
//! (no root, no loop device; dom0's ext4 cannot mount it without a crc32c
//! module the image does not carry) and handed to dom0 as a file. What
//! dom0's script prints with `check: ` is compared between the two
//! hypervisors; `info: ` lines carry what differs run to run.

use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::initramfs::Cpio;
use tests::linux::{Hypervisor, CPU};
use tests::{Boot, Outcome};

/// QEMU memory and dom0's share.
const QEMU_MEMORY_MIB: u32 = 1024;
const DOM0_MEM: &str = "dom0_mem=512M";

/// Debian's PV-GRUB 2 images and where the 64-bit PV one is in the package.
const GRUB_PACKAGE: &str = "grub-xen-host";
const GRUB_IMAGE: &str = "usr/lib/grub-xen/grub-x86_64-xen.bin";

/// What the guest's own `/init` prints: proof that the kernel GRUB loaded
/// from the disk runs, with the initramfs GRUB loaded beside it.
const MARKER: &str = "pvgrub-guest: the disk's own kernel runs";

/// The guest's `/init` (its initramfs, on the disk).
const GUEST_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "pvgrub-guest: the disk's own kernel runs"
echo "pvgrub-guest: cmdline $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"#;

/// The disk's `/boot/grub/grub.cfg`.
const GRUB_CFG: &str = r#"set timeout=0
set default=0
menuentry 'Debian GNU/Linux, from its own disk' {
    echo 'pvgrub-cfg: loading the disk kernel'
    linux /boot/vmlinuz console=hvc0 quiet pvgrub=yes
    echo 'pvgrub-cfg: loading the disk initramfs'
    initrd /boot/initrd
}
"#;

/// Helpers the dom0 script starts with.
const PRELUDE: &str = r#"
c() { echo "check: $*"; }
info() { echo "info: $*"; }
log=/var/log/xen/console/guest-pvgrub.log
# Waits up to $1 seconds for $2 in the guest's console log.
wait_console() { for i in $(seq $1); do grep -q "$2" $log 2>/dev/null && return 0; sleep 1; done; return 1; }
"#;

/// The dom0 script: make the disk, boot PV-GRUB from it, read the
/// guest's console.
const SCRIPT: &str = r#"
cp /root/disk.img /tmp/disk.img; c "disk: $(wc -c < /tmp/disk.img) bytes"
cat > /etc/xen/pvgrub.cfg <<'EOF'
name = "pvgrub"
kernel = "/root/grub-x86_64-xen.bin"
memory = 256
disk = [ 'vdev=xvda, target=/tmp/disk.img' ]
EOF
xl create /etc/xen/pvgrub.cfg; c "create: exit $?"
if wait_console 300 "pvgrub-guest: the disk's own kernel runs"; then c "the guest's own kernel ran"; else c "the guest's own kernel did not run"; fi
grep -q "GRUB" $log && c "GRUB ran"
grep -o "pvgrub-cfg: .*" $log | tr -d '\r' | sed 's/^/check: /'
grep -o "pvgrub-guest: .*" $log | tr -d '\r' | sed 's/^/check: /'
for i in $(seq 30); do xl list pvgrub >/dev/null 2>&1 || break; sleep 1; done
xl list pvgrub >/dev/null 2>&1 && c "the guest is still there" || c "the guest powered off and is gone"
tail -c 4000 $log | tr -d '\r' | sed 's/^/info: console: /'
tail -8 /var/log/xen/xenish-blkback.log 2>/dev/null | sed 's/^/info: blkback: /'
"#;

/// The guest's initramfs: busybox and the `/init` above.
fn guest_initramfs() -> Vec<u8> {
    let busybox = std::fs::read(tests::debian::busybox().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
    Cpio::new()
        .dir("bin")
        .file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .dir("proc")
        .dir("dev")
        .file("init", 0o755, GUEST_INIT.as_bytes())
        .finish()
}

/// The disk's size: Debian's kernel, the initramfs and room to spare.
const DISK_MIB: u64 = 24;

/// e2fsprogs' `mke2fs`: the host's, else Debian's package unpacked
/// (its libraries are the host's, which every Debian system has).
fn mke2fs() -> std::path::PathBuf {
    let host = ["/usr/sbin/mke2fs", "/sbin/mke2fs"].iter().map(std::path::PathBuf::from).find(|p| p.is_file());
    host.unwrap_or_else(|| {
        let (root, _) = tests::debian::unpacked("e2fsprogs").unwrap_or_else(|e| panic!("{e}"));
        root.join("sbin/mke2fs")
    })
}

/// The guest's disk: an ext2 filesystem (no partition table, as a
/// `vdev=xvda` file usually is) holding `/boot/vmlinuz`, `/boot/initrd`
/// and `/boot/grub/grub.cfg`, made with `mke2fs -d` from a staging tree.
fn disk_image() -> Vec<u8> {
    let dir = tests::images::target_dir().join("debian").join("pvgrub-disk");
    let stage = dir.join("root");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(stage.join("boot/grub")).unwrap_or_else(|e| panic!("{}: {e}", stage.display()));
    let kernel = tests::debian::linux().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&kernel, stage.join("boot/vmlinuz")).unwrap_or_else(|e| panic!("{}: {e}", kernel.display()));
    let files = [("boot/initrd", guest_initramfs()), ("boot/grub/grub.cfg", GRUB_CFG.as_bytes().to_vec())];
    for (path, data) in files {
        std::fs::write(stage.join(path), data).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let image = dir.join("disk.img");
    let status = std::process::Command::new(mke2fs())
        .args(["-q", "-F", "-t", "ext2", "-L", "pvgrub", "-d"])
        .arg(&stage)
        .arg(&image)
        .arg(format!("{DISK_MIB}M"))
        .status();
    assert!(status.is_ok_and(|s| s.success()), "mke2fs -d {} failed", stage.display());
    std::fs::read(&image).unwrap_or_else(|e| panic!("{}: {e}", image.display()))
}

/// dom0's extra files: PV-GRUB and the guest's disk.
fn dom0_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    let (root, _) = tests::debian::unpacked(GRUB_PACKAGE).unwrap_or_else(|e| panic!("{e}"));
    let grub = std::fs::read(root.join(GRUB_IMAGE)).unwrap_or_else(|e| panic!("{GRUB_PACKAGE}: {GRUB_IMAGE}: {e}"));
    vec![("root/grub-x86_64-xen.bin", 0o644, grub), ("root/disk.img", 0o644, disk_image())]
}

/// Boots the dom0 image `name` with the script on `hv`.
fn boot(hv: Hypervisor, name: &str, extra: &[(&str, u32, Vec<u8>)], limit: Duration) -> Outcome {
    let image = dom0::image(name, Some(&format!("{PRELUDE}{SCRIPT}")), extra).unwrap_or_else(|e| panic!("{e}"));
    let (hypervisor, cmdline) = match hv {
        Hypervisor::Xenish => (tests::images().hypervisor.clone(), DOM0_MEM.to_string()),
        Hypervisor::Xen => {
            (tests::debian::xen().unwrap_or_else(|e| panic!("{e}")), format!("console=com1 com1=115200,8n1 {DOM0_MEM}"))
        }
    };
    let out = Boot::with_hypervisor(hypervisor)
        .cpu(CPU)
        .memory_mib(QEMU_MEMORY_MIB)
        .cmdline(&cmdline)
        .module(image.kernel, dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(AUTORUN_DONE)
        .timeout(limit)
        .try_run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.serial.contains(AUTORUN_DONE), "dom0's script did not finish on {hv:?}\n{out}");
    out
}

/// The lines a script printed with `prefix`, from the prefix on.
fn lines(out: &Outcome, prefix: &str) -> Vec<String> {
    out.serial.lines().filter_map(|l| l.find(prefix).map(|at| l[at..].trim_end().to_string())).collect()
}

/// Asserts every `expected` line is among the `check: ` lines.
fn expect_all(out: &Outcome, expected: &[&str]) {
    let got = lines(out, "check: ");
    for e in expected {
        assert!(got.iter().any(|l| l == e), "missing {e:?} in\n{}\n--- serial ---\n{out}", got.join("\n"));
    }
}

#[test]
fn pv_grub_boots_the_guests_own_kernel_from_its_disk_on_xenish_as_on_xen() {
    let extra = dom0_files();
    let run = |hv: Hypervisor| {
        let image = format!("pvgrub-{hv:?}").to_lowercase();
        boot(hv, &image, &extra, Duration::from_secs(900))
    };
    let (xenish, xen) = std::thread::scope(|s| {
        let xenish = s.spawn(|| run(Hypervisor::Xenish));
        let xen = s.spawn(|| run(Hypervisor::Xen));
        (xenish.join(), xen.join())
    });
    let (xenish, xen) = (xenish.expect("the xenish boot failed"), xen.expect("the Xen boot failed"));
    eprintln!("--- xenish ---\n{xenish}\n--- xen ---\n{xen}");
    xenish.expect_no("xenish: d0 crashed").expect_no("xenish: PANIC");
    let expected = [
        "check: disk: 25165824 bytes",
        "check: create: exit 0",
        "check: the guest's own kernel ran",
        "check: GRUB ran",
        "check: pvgrub-cfg: loading the disk kernel",
        "check: pvgrub-cfg: loading the disk initramfs",
        "check: pvgrub-guest: the disk's own kernel runs",
        "check: the guest powered off and is gone",
    ];
    expect_all(&xen, &expected);
    expect_all(&xenish, &expected);
    let (a, b) = (lines(&xenish, "check: "), lines(&xen, "check: "));
    assert_eq!(a, b, "xenish and Xen 4.17 differ\n--- xenish ---\n{xenish}\n--- xen ---\n{xen}");
}
