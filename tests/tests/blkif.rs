//! The split block driver, end to end, on xenish and on Xen 4.17 in the
//! same QEMU: the interoperability matrix of blkif frontends and backends,
//! a filesystem that survives its domain's destruction, hostile
//! frontends, and `xl block-attach`/`-detach`/`-list`.
//!
//! Frontends: Debian's Linux (`xen-blkfront`, as a domU with a busybox
//! initramfs) and the `blkfront` test guest (guest-rt's frontend).
//! Backends: xenish-blkback (the default for `disk=[...]`) and Linux's
//! in-kernel `xen-blkback` in dom0 (`backendtype=phy`, over a loop
//! device). Each cell writes a random pattern through the frontend, reads
//! it back, and dom0 compares the image's checksum with the one the guest
//! computed. What the scripts print with `check: ` is compared between
//! the two hypervisors; `info: ` lines carry what differs run to run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::initramfs::Cpio;
use tests::linux::{Hypervisor, CPU};
use tests::{Boot, Outcome};

/// QEMU memory and dom0's share.
const QEMU_MEMORY_MIB: u32 = 1024;
const DOM0_MEM: &str = "dom0_mem=512M";

/// The kernel modules a Linux domU loads from its initramfs (with their
/// dependencies): the block frontend and ext4 (which mounts ext2).
const DOMU_MODULES: &[&str] = &["xen-blkfront", "ext4"];

/// `lib/modules/<version>` of Debian's kernel.
fn modules_root() -> PathBuf {
    let vmlinuz = tests::debian::linux().unwrap_or_else(|e| panic!("{e}"));
    let name = vmlinuz.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let version = name.strip_prefix("vmlinuz-").unwrap_or_else(|| panic!("{name}"));
    vmlinuz.parent().and_then(Path::parent).unwrap_or_else(|| panic!("{name}")).join("lib/modules").join(version)
}

/// The modules `wanted` and their dependencies, dependencies first.
fn module_files(wanted: &[&str]) -> Vec<(String, Vec<u8>)> {
    let root = modules_root();
    let mut by_name = std::collections::BTreeMap::new();
    let mut stack = vec![root.join("kernel")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
                by_name.insert(stem.replace('-', "_"), path);
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    fn visit(name: &str, by_name: &std::collections::BTreeMap<String, PathBuf>, order: &mut Vec<String>) {
        let name = name.replace('-', "_");
        if order.contains(&name) {
            return;
        }
        let path = by_name.get(&name).unwrap_or_else(|| panic!("module {name} not found"));
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for dep in dom0::modinfo_depends(&data).unwrap_or_default() {
            visit(&dep, by_name, order);
        }
        order.push(name);
    }
    for w in wanted {
        visit(w, &by_name, &mut order);
    }
    order
        .iter()
        .map(|n| {
            let data = std::fs::read(&by_name[n]).unwrap_or_else(|e| panic!("{n}: {e}"));
            (format!("{n}.ko"), data)
        })
        .collect()
}

/// The Linux domU's initramfs: busybox, the modules, and an `/init` that
/// loads them and runs the test named by `blktest=` on its command line.
fn linux_domu_initramfs() -> Vec<u8> {
    let busybox = std::fs::read(tests::debian::busybox().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
    let modules = module_files(DOMU_MODULES);
    let order: String = modules.iter().map(|(n, _)| format!("{n}\n")).collect();
    let mut cpio = Cpio::new()
        .dir("bin")
        .file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .dir("proc")
        .dir("sys")
        .dir("dev")
        .dir("mnt")
        .dir("modules")
        .file("modules/order", 0o644, order.as_bytes())
        .file("init", 0o755, format!("#!/bin/busybox sh\n{DOMU_INIT}").as_bytes());
    for (name, data) in &modules {
        cpio = cpio.file(&format!("modules/{name}"), 0o644, data);
    }
    cpio.finish()
}

/// The Linux domU's init. Every line it prints starts with `domU: `.
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "domU: insmod $m failed"; done
say() { echo "domU: $*"; }
wait_dev() { for i in $(seq 200); do [ -b /dev/$1 ] && return 0; sleep 0.1; done; say "$1 did not appear"; return 1; }
fresh_md5() { echo 3 > /proc/sys/vm/drop_caches; md5sum < /dev/$1 | cut -d' ' -f1; }
test=$(sed -n 's/.*blktest=\([a-z]*\).*/\1/p' /proc/cmdline)
say "running $test"
case "$test" in
matrix)
    for d in xvda xvdb; do
        wait_dev $d || continue
        sectors=$(cat /sys/block/$d/size)
        say "$d: $sectors sectors, ro=$(cat /sys/block/$d/ro)"
        dd if=/dev/urandom of=/dev/$d bs=1M count=$((sectors / 2048)) oflag=direct 2>/dev/null || say "$d: write failed"
        say "$d: md5 $(fresh_md5 $d)"
    done
    wait_dev xvdc && {
        say "xvdc: $(cat /sys/block/xvdc/size) sectors, ro=$(cat /sys/block/xvdc/ro)"
        dd if=/dev/zero of=/dev/xvdc bs=4096 count=1 oflag=direct 2>/dev/null && say "xvdc: write accepted" || say "xvdc: write refused"
        say "xvdc: md5 $(fresh_md5 xvdc)"
    }
    ;;
esac
say "done"
while true; do sleep 10; done
"#;

/// Helpers every dom0 script starts with.
const PRELUDE: &str = r#"
c() { echo "check: $*"; }
info() { echo "info: $*"; }
# Waits up to $2 seconds for $1 in domain $3's console log.
wait_console() { for i in $(seq $2); do grep -q "$1" /var/log/xen/console/guest-$3.log 2>/dev/null && return 0; sleep 1; done; return 1; }
# A guest's `...: DEV: md5 X` value, from domain $1's console log.
domu_md5() { sed -n "s/.* $2: md5 \([0-9a-f]*\).*/\1/p" /var/log/xen/console/guest-$1.log | tail -1; }
# libxl leaves the kinds' empty directories, nothing below them.
no_backend_left() {
    left=$(xenstore-ls -f /local/domain/0/backend 2>/dev/null | grep '^/local/domain/0/backend/[^/]*/')
    [ -z "$left" ] && c "no backend left" || echo "$left" | sed 's/^/check: left: /'
}
same_md5() {
    a=$(domu_md5 $1 $2); b=$(md5sum < $3 | cut -d' ' -f1)
    [ -n "$a" ] && [ "$a" = "$b" ] && c "$4: checksums match" || c "$4: checksums differ: guest $a, dom0 $b"
}
"#;

/// Linux's blkfront against both backends, and a read-only disk.
const LINUX_MATRIX: &str = r#"
for d in a b c; do dd if=/dev/zero of=/tmp/$d.img bs=1M count=8 2>/dev/null; done
echo "read-only contents" | dd of=/tmp/c.img conv=notrunc 2>/dev/null
cat > /etc/xen/linux.cfg <<'EOF'
name = "linux"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet blktest=matrix"
memory = 128
disk = [ 'vdev=xvda, target=/tmp/a.img',
         'vdev=xvdb, backendtype=phy, target=/tmp/b.img',
         'vdev=xvdc, access=ro, target=/tmp/c.img' ]
EOF
xl create /etc/xen/linux.cfg; c "create: exit $?"
pidof xenish-blkback >/dev/null && c "xenish-blkback runs"
xl block-list linux | sed 's/^/info: /'
wait_console "domU: done" 300 linux || c "the domU did not finish"
grep "domU:" /var/log/xen/console/guest-linux.log | sed 's/^/info: /'
grep -o "domU: xvd[abc]: [0-9]* sectors, ro=[01]" /var/log/xen/console/guest-linux.log | sed 's/^/check: /'
grep -o "domU: xvdc: write [a-z]*" /var/log/xen/console/guest-linux.log | sed 's/^/check: /'
same_md5 linux xvda /tmp/a.img "Linux blkfront <-> xenish-blkback"
same_md5 linux xvdb /tmp/b.img "Linux blkfront <-> Linux blkback"
same_md5 linux xvdc /tmp/c.img "read-only disk"
xl destroy linux; c "destroy: exit $?"
sleep 1
losetup -a | sed 's/^/info: loop: /'
no_backend_left
tail -20 /var/log/xen/xenish-blkback.log | sed 's/^/info: blkback: /'
"#;

/// guest-rt's blkfront against both backends, and a read-only disk.
const RUST_MATRIX: &str = r#"
for d in d e f; do dd if=/dev/zero of=/tmp/$d.img bs=1M count=8 2>/dev/null; done
echo "read-only contents" | dd of=/tmp/f.img conv=notrunc 2>/dev/null
cat > /etc/xen/rust.cfg <<'EOF'
name = "rust"
kernel = "/root/blkfront"
memory = 32
disk = [ 'vdev=xvda, target=/tmp/d.img',
         'vdev=xvdb, backendtype=phy, target=/tmp/e.img',
         'vdev=xvdc, access=ro, target=/tmp/f.img' ]
EOF
xl create /etc/xen/rust.cfg; c "create: exit $?"
wait_console "blkfront: done" 300 rust || c "the guest did not finish"
grep "blkfront: " /var/log/xen/console/guest-rust.log | grep -v ": md5 " | sed 's/.*blkfront: /check: blkfront: /'
same_md5 rust xvda /tmp/d.img "guest-rt blkfront <-> xenish-blkback"
same_md5 rust xvdb /tmp/e.img "guest-rt blkfront <-> Linux blkback"
same_md5 rust xvdc /tmp/f.img "guest-rt blkfront, read-only disk"
sleep 2
xl list rust >/dev/null 2>&1 || c "the guest powered off and is gone"
no_backend_left
tail -12 /var/log/xen/xenish-blkback.log | sed 's/^/info: blkback: /'
"#;

/// Boots the dom0 image `name` with `script` and `extra` files on `hv`,
/// with `disk` as a virtio disk if given.
fn boot(hv: Hypervisor, name: &str, script: &str, extra: &[(&str, u32, Vec<u8>)], limit: Duration) -> Outcome {
    let image = dom0::image(name, Some(&format!("{PRELUDE}{script}")), extra).unwrap_or_else(|e| panic!("{e}"));
    let (hypervisor, cmdline) = match hv {
        Hypervisor::Xenish => {
            (tests::images().hypervisor.clone(), format!("{DOM0_MEM} {}", tests::qemu::XENISH_TEST_OPTIONS))
        }
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

/// Debian's kernel and the Linux domU's initramfs, as dom0 files.
fn linux_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    let kernel = std::fs::read(tests::debian::linux().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
    vec![("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, linux_domu_initramfs())]
}

/// Runs `script` on both hypervisors at once; checks `expected` on each
/// and that both printed the same `check: ` lines.
fn same_on_both(name: &str, script: &str, extra: &[(&str, u32, Vec<u8>)], expected: &[&str]) {
    let run = |hv: Hypervisor| {
        let image = format!("blkif-{name}-{hv:?}").to_lowercase();
        boot(hv, &image, script, extra, Duration::from_secs(600))
    };
    let (xenish, xen) = std::thread::scope(|s| {
        let xenish = s.spawn(|| run(Hypervisor::Xenish));
        let xen = s.spawn(|| run(Hypervisor::Xen));
        (xenish.join(), xen.join())
    });
    let (xenish, xen) = (xenish.expect("the xenish boot failed"), xen.expect("the Xen boot failed"));
    xenish.expect_no("xenish: d0 crashed").expect_no("xenish: PANIC");
    expect_all(&xenish, expected);
    expect_all(&xen, expected);
    let (a, b) = (lines(&xenish, "check: "), lines(&xen, "check: "));
    assert_eq!(a, b, "xenish and Xen 4.17 differ\n--- xenish ---\n{xenish}\n--- xen ---\n{xen}");
}

#[test]
fn linux_blkfront_works_with_both_backends_on_xenish_as_on_xen() {
    same_on_both(
        "linux",
        LINUX_MATRIX,
        &linux_files(),
        &[
            "check: create: exit 0",
            "check: xenish-blkback runs",
            "check: domU: xvda: 16384 sectors, ro=0",
            "check: domU: xvdb: 16384 sectors, ro=0",
            "check: domU: xvdc: 16384 sectors, ro=1",
            "check: domU: xvdc: write refused",
            "check: Linux blkfront <-> xenish-blkback: checksums match",
            "check: Linux blkfront <-> Linux blkback: checksums match",
            "check: read-only disk: checksums match",
            "check: destroy: exit 0",
            "check: no backend left",
        ],
    );
}

#[test]
fn guest_rt_blkfront_works_with_both_backends_on_xenish_as_on_xen() {
    let guest = std::fs::read(tests::images().guest("blkfront")).unwrap_or_else(|e| panic!("{e}"));
    same_on_both(
        "rust",
        RUST_MATRIX,
        &[("root/blkfront", 0o644, guest)],
        &[
            "check: create: exit 0",
            "check: blkfront: xvda: 16384 sectors of 512 bytes, read-only 0, flush 1, discard 1",
            "check: blkfront: xvda: persistent grants 1, 64 segments per request, 2 queue(s), 4 ring page(s)",
            "check: blkfront: xvda: discard zeroes the range",
            "check: blkfront: xvda: wrote 16384 sectors, 0 errors, flush ok",
            "check: blkfront: xvda: read back 16384 sectors, 0 differ",
            "check: blkfront: xvda: closed, every grant ended",
            "check: blkfront: xvdb: wrote 16384 sectors, 0 errors, flush ok",
            "check: blkfront: xvdb: read back 16384 sectors, 0 differ",
            "check: blkfront: xvdb: closed, every grant ended",
            "check: blkfront: xvdc: write refused by the backend",
            "check: blkfront: done, 0 failures",
            "check: guest-rt blkfront <-> xenish-blkback: checksums match",
            "check: guest-rt blkfront <-> Linux blkback: checksums match",
            "check: guest-rt blkfront, read-only disk: checksums match",
            "check: the guest powered off and is gone",
            "check: no backend left",
        ],
    );
}
