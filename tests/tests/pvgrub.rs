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
//!
//! A second test starts PV-GRUB as dom0, which it is not made for, and
//! checks that xenish fails it where and as Xen does (the start_info and
//! the I/O mapping rights it relies on are Xen's).

use std::time::Duration;

use tests::compare::{self, Scenario};
use tests::initramfs::Cpio;
use tests::linux::CPU;
use tests::Boot;

/// Debian's PV-GRUB 2 images and where the 64-bit PV one is in the package.
const GRUB_PACKAGE: &str = "grub-xen-host";
const GRUB_IMAGE: &str = "usr/lib/grub-xen/grub-x86_64-xen.bin";

/// PV-GRUB's image, from Debian's package.
fn grub_image() -> std::path::PathBuf {
    let (root, _) = tests::debian::unpacked(GRUB_PACKAGE).unwrap_or_else(|e| panic!("{e}"));
    root.join(GRUB_IMAGE)
}

/// What the guest's own `/init` prints: proof that the kernel GRUB loaded
/// from the disk runs, with the initramfs GRUB loaded beside it.
const MARKER: &str = "pvgrub-guest: the disk's own kernel runs";

/// The guest's `/init` (its initramfs, on the disk): prints [`MARKER`]
/// and its command line, and powers off.
fn guest_init() -> String {
    format!(
        "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\necho \"{MARKER}\"\n\
         echo \"pvgrub-guest: cmdline $(/bin/busybox cat /proc/cmdline)\"\n/bin/busybox poweroff -f\n"
    )
}

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

/// The dom0 script: boot PV-GRUB from the disk twice, once served by
/// xenish-blkback (xl's default) and once by Linux's in-kernel blkback
/// (`backendtype=phy`, over a loop device), and read each guest's
/// console. `$MARKER` is set before it.
const SCRIPT: &str = r#"
c() { echo "check: $*"; }
info() { echo "info: $*"; }
# Waits up to $2 seconds for $3 in domain $1's console log.
wait_console() { for i in $(seq $2); do grep -q "$3" /var/log/xen/console/guest-$1.log 2>/dev/null && return 0; sleep 1; done; return 1; }
# Boots PV-GRUB as domain $1 with disk options $2; reports what it saw.
pvgrub() {
    name=$1 log=/var/log/xen/console/guest-$1.log
    cp /root/disk.img /tmp/$name.img
    cat > /etc/xen/$name.cfg <<EOF
name = "$name"
kernel = "/root/grub-x86_64-xen.bin"
memory = 128
disk = [ 'vdev=xvda, $2target=/tmp/$name.img' ]
EOF
    xl create /etc/xen/$name.cfg; c "$name: create: exit $?"
    if wait_console $name 300 "$MARKER"; then c "$name: the disk's own kernel ran"; else c "$name: the disk's own kernel did not run"; fi
    # The log is complete once the domain is gone (its ring drained).
    for i in $(seq 60); do xl list $name >/dev/null 2>&1 || break; sleep 1; done
    xl list $name >/dev/null 2>&1 && c "$name: the guest is still there" || c "$name: the guest powered off and is gone"
    sleep 1
    grep -q "Welcome to GRUB!" $log && c "$name: GRUB ran"
    grep -o "Reading ([^)]*)/boot/grub/grub.cfg" $log | sed "s/^/check: $name: /"
    grep -o "pvgrub-cfg: .*" $log | tr -d '\r' | sed "s/^/check: $name: /"
    grep -o "pvgrub-guest: .*" $log | tr -d '\r' | sed "s/^/check: $name: /"
    tail -c 3000 $log | tr -d '\r' | sed "s/^/info: $name: console: /"
}
pvgrub blkback ""
pvgrub phy "backendtype=phy, "
losetup -a | sed 's/^/info: loop: /'
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
        .file("init", 0o755, guest_init().as_bytes())
        .finish()
}

/// The disk's size: Debian's kernel, the initramfs and room to spare.
const DISK_MIB: u64 = 24;

/// The guest's disk: an ext2 filesystem (no partition table, as a
/// `vdev=xvda` file usually is) holding `/boot/vmlinuz`, `/boot/initrd`
/// and `/boot/grub/grub.cfg`, made with `mke2fs -d` from a staging tree
/// (the harness installs e2fsprogs with the other host tools).
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
    let out = std::process::Command::new(
        tests::tools::mke2fs().unwrap_or_else(|| panic!("mke2fs is missing: apt-get install e2fsprogs")),
    )
    .args(["-q", "-F", "-t", "ext2", "-L", "pvgrub", "-d"])
    .arg(&stage)
    .arg(&image)
    .arg(format!("{DISK_MIB}M"))
    .output()
    .unwrap_or_else(|e| panic!("mke2fs: {e}"));
    assert!(out.status.success(), "mke2fs -d {} failed: {}", stage.display(), String::from_utf8_lossy(&out.stderr));
    std::fs::read(&image).unwrap_or_else(|e| panic!("{}: {e}", image.display()))
}

/// dom0's extra files: PV-GRUB and the guest's disk.
fn dom0_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    let grub = std::fs::read(grub_image()).unwrap_or_else(|e| panic!("{GRUB_PACKAGE}: {GRUB_IMAGE}: {e}"));
    vec![("root/grub-x86_64-xen.bin", 0o644, grub), ("root/disk.img", 0o644, disk_image())]
}

#[test]
fn pv_grub_boots_the_guests_own_kernel_from_its_disk_on_xenish_as_on_xen() {
    let extra = dom0_files();
    let mut scenario = Scenario::new("pvgrub", &format!("MARKER=\"{MARKER}\"\n{SCRIPT}"), &extra);
    scenario.limit = Duration::from_secs(900);
    let (xenish, xen) = scenario.both();
    let mut expected = Vec::new();
    for name in ["blkback", "phy"] {
        expected.extend([
            format!("check: {name}: create: exit 0"),
            format!("check: {name}: the disk's own kernel ran"),
            format!("check: {name}: GRUB ran"),
            format!("check: {name}: Reading (xen/xvda)/boot/grub/grub.cfg"),
            format!("check: {name}: pvgrub-cfg: loading the disk kernel"),
            format!("check: {name}: pvgrub-cfg: loading the disk initramfs"),
            format!("check: {name}: {MARKER}"),
            format!("check: {name}: pvgrub-guest: cmdline console=hvc0 quiet pvgrub=yes"),
            format!("check: {name}: the guest powered off and is gone"),
        ]);
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    compare::expect_all(&xen, &expected);
    compare::expect_all(&xenish, &expected);
    compare::assert_same(&xenish, &xen, &[]);
}

/// PV-GRUB started as dom0 (256 MiB), where it does not belong: on Xen
/// it reads `start_info.console.dom0` (the VGA console info Xen's dom0
/// builder always describes: offset 0x490, size 0x28) as a domU's console
/// mfn, maps frame 0x28_0000_0490 in the page tables it builds, Xen
/// refuses to pin them (the frame is beyond the machine's address width),
/// and GRUB, still on its initial mapping, faults copying start_info to
/// the top of its memory. xenish must fail the same way at the same
/// place, not run on.
#[test]
fn pv_grub_as_dom0_faults_where_it_does_on_xen() {
    let grub = grub_image();
    let (xenish, xen) = std::thread::scope(|s| {
        let xenish = s.spawn(|| {
            Boot::with_hypervisor(tests::images().hypervisor.clone())
                .cpu(CPU)
                .cmdline("dom0_mem=256M")
                .module(grub.clone(), "")
                .timeout(Duration::from_secs(120))
                .try_run()
                .unwrap_or_else(|e| panic!("{e}"))
        });
        let xen = s.spawn(|| {
            Boot::with_hypervisor(tests::debian::xen().unwrap_or_else(|e| panic!("{e}")))
                .cpu(CPU)
                .cmdline(&format!("{} dom0_mem=256M", tests::debian::XEN_CMDLINE))
                .module(grub.clone(), "")
                .until("Hardware Dom0 crashed")
                .timeout(Duration::from_secs(120))
                .try_run()
                .unwrap_or_else(|e| panic!("{e}"))
        });
        (xenish.join(), xen.join())
    });
    let (xenish, xen) = (xenish.expect("the xenish boot failed"), xen.expect("the Xen boot failed"));
    xen.expect_line("d0v0 Unhandled: vec 14, #PF[0002]")
        .expect_line("Pagetable walk from 000000000ff7bfff:")
        .expect_line("RIP:    e033:[<00000000000090fe>]");
    xenish
        .expect_line("xenish: d0 crashed: unhandled #PF (vector 14, error 0x6, cr2 0xff7bfff)")
        .expect_line("at rip 0x90fe ")
        .expect_no("xenish: PANIC");
}
