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

use tests::compare::{self, Scenario};
use tests::dom0;
use tests::linux::CPU;

/// The kernel modules a Linux domU loads from its initramfs (with their
/// dependencies): the block frontend, and ext4 (which mounts ext2) with
/// the crc32c it asks the crypto API for (a soft dependency).
const DOMU_MODULES: &[&str] = &["xen-blkfront", "crc32c_generic", "ext4"];

/// The Linux domU's init. Every line it prints starts with `domU: `.
/// It writes a random pattern over `xvda` and `xvdb` and prints their
/// MD5s, tries to write the read-only `xvdc`, waits for `xvde` to be
/// hot-plugged and unplugged, then makes an ext2 filesystem on `xvdd`,
/// writes files, syncs, prints their MD5s, and keeps reading until it is
/// destroyed.
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "domU: insmod $m failed"; done
say() { echo "domU: $*"; }
# Where the domU's time goes (dom0 prints its log as info at the end).
say "t=$(cut -d' ' -f1 /proc/uptime) userspace up"
wait_dev() { for i in $(seq 200); do [ -b /dev/$1 ] && return 0; sleep 0.1; done; say "$1 did not appear"; return 1; }
fresh_md5() { echo 3 > /proc/sys/vm/drop_caches; md5sum < /dev/$1 | cut -d' ' -f1; }
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
say "t=$(cut -d' ' -f1 /proc/uptime) matrix written"
say "matrix done"
for i in $(seq 600); do [ -b /dev/xvde ] && break; sleep 0.2; done
[ -b /dev/xvde ] && say "xvde appeared: $(cat /sys/block/xvde/size) sectors, ro=$(cat /sys/block/xvde/ro)" && say "xvde: md5 $(fresh_md5 xvde)"
for i in $(seq 600); do [ -b /dev/xvde ] || break; sleep 0.2; done
[ -b /dev/xvde ] || say "xvde is gone"
wait_dev xvdd && {
    mke2fs -q /dev/xvdd && mount -t ext2 /dev/xvdd /mnt && say "fs: ext2 mounted" || { say "fs: mount failed"; while true; do sleep 10; done; }
    mkdir -p /mnt/dir
    for i in 1 2 3 4 5 6 7 8; do
        dd if=/dev/urandom of=/mnt/dir/f$i bs=4096 count=$((i * 9)) 2>/dev/null
    done
    echo "synced before the end" > /mnt/hello
    sync
    for f in /mnt/hello /mnt/dir/f*; do say "fs: sum ${f#/mnt} $(md5sum < $f | cut -d' ' -f1)"; done
    say "fs: synced"
    # Reads in flight while dom0 destroys the domain.
    while true; do echo 3 > /proc/sys/vm/drop_caches; cat /mnt/dir/* > /dev/null; done
}
say "done"
while true; do sleep 10; done
"#;

/// Helpers every dom0 script starts with.
const PRELUDE: &str = r#"
c() { echo "check: $*"; }
info() { echo "info: $*"; }
# Where the time goes: seconds since dom0 booted, per phase.
t() { echo "info: t=$(cut -d' ' -f1 /proc/uptime) $*"; }
t "script starts"
# Waits up to $2 seconds for $1 in domain $3's console log.
wait_console() { for i in $(seq $2); do grep -q "$1" /var/log/xen/console/guest-$3.log 2>/dev/null && return 0; sleep 1; done; return 1; }
# A check that reads a log runs again if it printed nothing: busybox
# crashed now and then in dom0 on Xen 4.17 under QEMU's TCG while domUs
# ran (lazy FPU switching, see tests::debian::XEN_CMDLINE).
again() { for i in 1 2 3; do out=$(eval "$1") && [ -n "$out" ] && { echo "$out"; return 0; }; done; return 1; }
# Waits up to 60 s until the shell test $1 holds; says how long it took.
# Releasing what a dead domain's backends mapped takes time, and how much
# is timing: Xen 4.17 on two CPUs under TCG once took 11 s for
# xenish-blkback to unmap a disk's 312 persistent grants after a destroy.
within() { for i in $(seq 0 60); do eval "$1" && { info "$2 after ${i}s"; return 0; }; sleep 1; done; return 1; }
# Domain $1's console log.
log_of() { echo /var/log/xen/console/guest-$1.log; }
# A guest's `...: DEV: md5 X` value, from domain $1's console log.
domu_md5() { again "sed -n 's/.* $2: md5 \\([0-9a-f]*\\).*/\\1/p' $(log_of $1) | tail -1"; }
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

/// Linux's blkfront against both backends and a read-only disk; disks
/// attached, listed and detached while it runs; an ext2 filesystem on a
/// block device (the virtio disk `/dev/vda`) served by xenish-blkback,
/// synced, then the domain destroyed with reads in flight.
const LINUX_SCRIPT: &str = r#"
for d in a b c e; do dd if=/dev/zero of=/tmp/$d.img bs=1M count=4 2>/dev/null; done
echo "read-only contents" | dd of=/tmp/c.img conv=notrunc 2>/dev/null
echo "hot-plugged" | dd of=/tmp/e.img conv=notrunc 2>/dev/null
# The filesystem's disk is a block device: a loop device over an image.
dd if=/dev/zero of=/tmp/fs.img bs=1M count=16 2>/dev/null
fsdev=$(losetup -f) && losetup $fsdev /tmp/fs.img || c "no loop device for the filesystem"
cat > /etc/xen/linux.cfg <<EOF
name = "linux"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet"
memory = 128
disk = [ 'vdev=xvda, target=/tmp/a.img',
         'vdev=xvdb, backendtype=phy, target=/tmp/b.img',
         'vdev=xvdc, access=ro, target=/tmp/c.img',
         'vdev=xvdd, target=$fsdev' ]
EOF
xl create /etc/xen/linux.cfg; c "create: exit $?"
t "linux created"
pidof xenish-blkback >/dev/null && c "xenish-blkback runs"
wait_console "domU: matrix done" 300 linux || c "the domU did not finish the matrix"
again "grep -o 'domU: xvd[abc]: [0-9]* sectors, ro=[01]' $(log_of linux) | sed 's/^/check: /'"
again "grep -o 'domU: xvdc: write [a-z]*' $(log_of linux) | sed 's/^/check: /'"
same_md5 linux xvda /tmp/a.img "Linux blkfront <-> xenish-blkback"
same_md5 linux xvdb /tmp/b.img "Linux blkfront <-> Linux blkback"
same_md5 linux xvdc /tmp/c.img "Linux blkfront, read-only disk"

t "matrix checked"
# Hot-plug a disk into the running guest, list, unplug.
xl block-attach linux 'vdev=xvde, access=ro, target=/tmp/e.img'; c "block-attach: exit $?"
wait_console "domU: xvde: md5" 60 linux && c "the guest saw xvde appear"
same_md5 linux xvde /tmp/e.img "hot-plugged disk"
xl block-list linux | sed 's/^/info: /'
again "xl block-list linux | awk 'NR > 1 { print \$1, \$2, \$4, \$7 }'" | sed 's/^/check: block-list: /'
xl block-attach linux 'vdev=xvde, target=/tmp/e.img' 2>/dev/null || c "attaching xvde twice fails"
xl block-detach linux xvde; c "block-detach: exit $?"
wait_console "domU: xvde is gone" 60 linux && c "the guest saw xvde go"
again "xl block-list linux | awk 'NR > 1 { print \$1 }' | tr '\\n' ' '" | sed 's/^/check: after block-detach: /'; echo
xl block-detach linux xvdz; c "block-detach of a missing disk: exit $?"

t "hotplug checked"
# A filesystem, synced, then the domain destroyed without a shutdown.
wait_console "domU: fs: synced" 300 linux || c "the domU did not sync its filesystem"
again "grep -o 'domU: fs: ext2 mounted' $(log_of linux) | sed 's/^/check: /'"
sleep 2
t "fs synced"
xl destroy linux; c "destroy without shutdown: exit $?"
# A mapping left behind would keep the dead domain around (dying), and
# the disk open, for ever.
within '[ "$(xl list | wc -l)" = 2 ]' "the destroyed domain went" && c "no domain left behind" || xl list | sed 's/^/check: left: /'
pidof xenish-blkback >/dev/null && c "xenish-blkback survived"
no_backend_left
# A busy loop device is cleared once its last user closes it.
losetup -d $fsdev
within '[ -z "$(losetup -a)" ]' "the loop device went" && c "no loop device left" || losetup -a | sed 's/^/check: loop: /'
# Debian's e2fsck and debugfs (e2fsprogs, with their libraries) check
# what the destroyed guest left.
e2fs() { prog=$1; shift; /opt/e2fs/ld-linux-x86-64.so.2 --library-path /opt/e2fs /opt/e2fs/$prog "$@"; }
e2fs e2fsck -fn /tmp/fs.img > /tmp/fsck 2>&1; c "e2fsck -fn: exit $?"
sed 's/^/info: fsck: /' /tmp/fsck
n=0; bad=0
for f in $(sed -n 's/.*domU: fs: sum \([^ ]*\) .*/\1/p' /var/log/xen/console/guest-linux.log); do
    want=$(again "sed -n 's|.*domU: fs: sum $f \\([0-9a-f]*\\).*|\\1|p' $(log_of linux) | tail -1")
    got=$(again "e2fs debugfs -R 'cat $f' /tmp/fs.img 2>/dev/null | md5sum | cut -d' ' -f1")
    n=$((n + 1)); [ "$want" = "$got" ] || { bad=$((bad + 1)); info "fs: $f: $got, the guest had $want"; }
done
c "fs: $n synced files, $bad differ"
t "fs checked"
tail -30 /var/log/xen/xenish-blkback.log | sed 's/^/info: blkback: /'
grep "domU:" /var/log/xen/console/guest-linux.log | sed 's/^/info: /'
dmesg | grep -i "segfault\|traps:" | sed 's/^/info: dmesg: /'
"#;

/// guest-rt's blkfront against both backends and a read-only disk,
/// while a hostile guest attacks the same daemon with its own disks.
const RUST_SCRIPT: &str = r#"
for d in d e f; do dd if=/dev/zero of=/tmp/$d.img bs=1M count=4 2>/dev/null; done
echo "read-only contents" | dd of=/tmp/f.img conv=notrunc 2>/dev/null
dd if=/dev/urandom of=/tmp/h.img bs=1M count=4 2>/dev/null
dd if=/dev/urandom of=/tmp/hro.img bs=1M count=4 2>/dev/null
# Past sector 0 (tail -c reads in large blocks; dd bs=512 made 8191 reads;
# an empty output would be no proof).
h_rest=$(tail -c +513 /tmp/h.img | md5sum)
hro=$(md5sum < /tmp/hro.img)
cat > /etc/xen/rust.cfg <<'EOF'
name = "rust"
kernel = "/root/blkfront"
memory = 32
disk = [ 'vdev=xvda, target=/tmp/d.img',
         'vdev=xvdb, backendtype=phy, target=/tmp/e.img',
         'vdev=xvdc, access=ro, target=/tmp/f.img' ]
EOF
cat > /etc/xen/hostile.cfg <<'EOF'
name = "hostile"
kernel = "/root/blkhostile"
memory = 32
disk = [ 'vdev=xvda, target=/tmp/h.img', 'vdev=xvdb, access=ro, target=/tmp/hro.img' ]
EOF
xl create /etc/xen/rust.cfg; c "create rust: exit $?"
xl create /etc/xen/hostile.cfg; c "create hostile: exit $?"
t "guests created"
wait_console "blkhostile: done" 300 hostile || c "the hostile guest did not finish"
t "hostile done"
wait_console "blkfront: done" 300 rust || c "the guest did not finish"
t "blkfront done"
again "grep 'blkhostile: ' $(log_of hostile) | sed 's/.*blkhostile: /check: blkhostile: /'"
again "grep 'blkfront: ' $(log_of rust) | grep -v ': md5 ' | sed 's/.*blkfront: /check: blkfront: /'"
same_md5 rust xvda /tmp/d.img "guest-rt blkfront <-> xenish-blkback"
same_md5 rust xvdb /tmp/e.img "guest-rt blkfront <-> Linux blkback"
same_md5 rust xvdc /tmp/f.img "guest-rt blkfront, read-only disk"
[ "$h_rest" != "$(md5sum < /dev/null)" ] && [ "$(tail -c +513 /tmp/h.img | md5sum)" = "$h_rest" ] && c "the hostile guest's disk is intact past sector 0"
[ "$(md5sum < /tmp/hro.img)" = "$hro" ] && c "the hostile guest's read-only disk is intact"
pidof xenish-blkback >/dev/null && c "xenish-blkback survived"
grep -q "answered -1" /var/log/xen/xenish-blkback.log && c "refused requests were logged"
grep -q "broke the ring protocol\|more requests than the ring holds" /var/log/xen/xenish-blkback.log && c "the broken ring was logged"
within '! xl list rust >/dev/null 2>&1' "rust went" && c "rust powered off and is gone"
within '! xl list hostile >/dev/null 2>&1' "hostile went" && c "hostile powered off and is gone"
within '[ "$(xl list | wc -l)" = 2 ]' "every domU went" && c "no domain left behind" || xl list | sed 's/^/check: left: /'
no_backend_left
tail -40 /var/log/xen/xenish-blkback.log | sed 's/^/info: blkback: /'
dmesg | grep -i "segfault\|traps:" | sed 's/^/info: dmesg: /'
"#;

/// Debian's e2fsck and debugfs with the libraries they need, under
/// `/opt/e2fs` in dom0 (run through the dynamic loader there): the
/// packages fetched with `apt-get download`, nothing installed.
fn e2fsprogs_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    let files: [(&str, &str, &'static str); 10] = [
        ("e2fsprogs", "sbin/e2fsck", "opt/e2fs/e2fsck"),
        ("e2fsprogs", "sbin/debugfs", "opt/e2fs/debugfs"),
        ("libext2fs2", "lib/x86_64-linux-gnu/libext2fs.so.2", "opt/e2fs/libext2fs.so.2"),
        ("libext2fs2", "lib/x86_64-linux-gnu/libe2p.so.2", "opt/e2fs/libe2p.so.2"),
        ("libcom-err2", "lib/x86_64-linux-gnu/libcom_err.so.2", "opt/e2fs/libcom_err.so.2"),
        ("libss2", "lib/x86_64-linux-gnu/libss.so.2", "opt/e2fs/libss.so.2"),
        ("libblkid1", "usr/lib/x86_64-linux-gnu/libblkid.so.1", "opt/e2fs/libblkid.so.1"),
        ("libuuid1", "usr/lib/x86_64-linux-gnu/libuuid.so.1", "opt/e2fs/libuuid.so.1"),
        ("libc6", "lib/x86_64-linux-gnu/libc.so.6", "opt/e2fs/libc.so.6"),
        ("libc6", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "opt/e2fs/ld-linux-x86-64.so.2"),
    ];
    let mut out = vec![("opt", dom0::DIR | 0o755, Vec::new()), ("opt/e2fs", dom0::DIR | 0o755, Vec::new())];
    for (package, path, dest) in files {
        let (root, _) = tests::debian::unpacked(package).unwrap_or_else(|e| panic!("{e}"));
        let data = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{package}: {path}: {e}"));
        out.push((dest, 0o755, data));
    }
    out
}

/// Debian's kernel and the Linux domU's initramfs, as dom0 files.
fn linux_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    let kernel = std::fs::read(tests::debian::linux().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
    let initrd = compare::domu_initramfs(DOMU_MODULES, DOMU_INIT).unwrap_or_else(|e| panic!("{e}"));
    vec![("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, initrd)]
}

/// Runs `script` on both hypervisors at once; checks `expected` on each
/// and that both printed the same `check: ` lines.
fn same_on_both(name: &str, script: &str, extra: &[(&str, u32, Vec<u8>)], expected: &[&str]) {
    let mut scenario = Scenario::new(&format!("blkif-{name}"), &format!("{PRELUDE}{script}"), extra);
    scenario.cpu = format!("{CPU},-fsgsbase");
    scenario.limit = std::time::Duration::from_secs(900);
    let (xenish, xen) = scenario.both();
    compare::expect_all(&xenish, expected);
    compare::expect_all(&xen, expected);
    compare::assert_same(&xenish, &xen, &[]);
}

/// One dom0 boot per hypervisor serves both scenarios, one after the
/// other (a dom0 boot is most of a scenario's time under TCG): Linux's
/// blkfront first, then guest-rt's beside the hostile guest.
#[test]
fn linux_and_guest_rt_blkfronts_with_both_backends_hotplug_a_filesystem_that_survives_destroy_and_a_hostile_guest() {
    let guest = |name: &str| std::fs::read(tests::images().guest(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut extra = linux_files();
    extra.extend(e2fsprogs_files());
    extra.push(("root/blkfront", 0o644, guest("blkfront")));
    extra.push(("root/blkhostile", 0o644, guest("blkhostile")));
    same_on_both(
        "all",
        &format!("{LINUX_SCRIPT}{RUST_SCRIPT}"),
        &extra,
        &[
            "check: create: exit 0",
            "check: xenish-blkback runs",
            "check: domU: xvda: 8192 sectors, ro=0",
            "check: domU: xvdb: 8192 sectors, ro=0",
            "check: domU: xvdc: 8192 sectors, ro=1",
            "check: domU: xvdc: write refused",
            "check: Linux blkfront <-> xenish-blkback: checksums match",
            "check: Linux blkfront <-> Linux blkback: checksums match",
            "check: Linux blkfront, read-only disk: checksums match",
            "check: block-attach: exit 0",
            "check: the guest saw xvde appear",
            "check: hot-plugged disk: checksums match",
            "check: block-list: 51712 0 4 /local/domain/0/backend/qdisk/1/51712",
            "check: block-list: 51728 0 4 /local/domain/0/backend/vbd/1/51728",
            "check: block-list: 51744 0 4 /local/domain/0/backend/qdisk/1/51744",
            "check: block-list: 51760 0 4 /local/domain/0/backend/qdisk/1/51760",
            "check: block-list: 51776 0 4 /local/domain/0/backend/qdisk/1/51776",
            "check: attaching xvde twice fails",
            "check: block-detach: exit 0",
            "check: the guest saw xvde go",
            "check: after block-detach: 51712 51728 51744 51760",
            "check: block-detach of a missing disk: exit 1",
            "check: destroy without shutdown: exit 0",
            "check: no domain left behind",
            "check: xenish-blkback survived",
            "check: no backend left",
            "check: no loop device left",
            "check: domU: fs: ext2 mounted",
            "check: e2fsck -fn: exit 0",
            "check: fs: 9 synced files, 0 differ",
            "check: create rust: exit 0",
            "check: create hostile: exit 0",
            "check: blkfront: xvda: 8192 sectors of 512 bytes, read-only 0, flush 1, discard 1",
            "check: blkfront: xvda: persistent grants 1, 64 segments per request, 2 queue(s), 4 ring page(s)",
            "check: blkfront: xvda: discard zeroes the range",
            "check: blkfront: xvda: wrote 8192 sectors, 0 errors, flush ok",
            "check: blkfront: xvda: read back 8192 sectors, 0 differ",
            "check: blkfront: xvda: closed, every grant ended",
            "check: blkfront: xvdb: wrote 8192 sectors, 0 errors, flush ok",
            "check: blkfront: xvdb: read back 8192 sectors, 0 differ",
            "check: blkfront: xvdb: closed, every grant ended",
            "check: blkfront: xvdc: write refused by the backend",
            "check: blkfront: done, 0 failures",
            "check: guest-rt blkfront <-> xenish-blkback: checksums match",
            "check: guest-rt blkfront <-> Linux blkback: checksums match",
            "check: guest-rt blkfront, read-only disk: checksums match",
            "check: blkhostile: bad grant reference: ERROR",
            "check: blkhostile: grant for another domain: ERROR",
            "check: blkhostile: segment past its page: ERROR",
            "check: blkhostile: sectors past the end: ERROR",
            "check: blkhostile: unknown operation: EOPNOTSUPP",
            "check: blkhostile: write to the read-only disk: ERROR",
            "check: blkhostile: a valid write after all that: OKAY",
            "check: blkhostile: ring index jump: the backend closed the device",
            "check: blkhostile: done, 0 unexpected answers",
            "check: the hostile guest's disk is intact past sector 0",
            "check: the hostile guest's read-only disk is intact",
            "check: xenish-blkback survived",
            "check: refused requests were logged",
            "check: the broken ring was logged",
            "check: rust powered off and is gone",
            "check: hostile powered off and is gone",
            "check: no domain left behind",
            "check: no backend left",
        ],
    );
}
