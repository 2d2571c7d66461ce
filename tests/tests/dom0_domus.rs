//! The control domain serving domUs: test guests started with `xl create`
//! in the Linux dom0 use XenStore over their own rings, misbehave on them,
//! and share a page and an event channel with dom0, on xenish and on Xen
//! 4.17 in the same QEMU. What dom0's scripts print with `check: ` is
//! compared line for line.
//!
//! - `xsguest` reads and writes its own part of the store, is refused
//!   dom0's nodes (an unprivileged connection, where permissions say so),
//!   sees a watch fire when dom0 writes, commits and aborts transactions.
//! - `xshostile` floods requests and then writes garbage ring indices and
//!   an oversized header: xenstored cuts it off and keeps serving dom0 and
//!   a well-behaved `xsguest` started after it.
//! - `granter` grants dom0 a page with a pattern and offers an event
//!   channel: `xen-devcheck --peer` maps the page through gntdev and trades
//!   100 notifications with it.
//! - `demo`, the ready-made guest of `cargo xtask run`
//!   (`/etc/xen/demo.cfg`: Debian's kernel with a busybox shell, a disk
//!   and a network interface dom0 pings), starts
//!   from its config and reaches its shell.
//!
//! Before the guests, dom0 drives machine devices of its own, in the same
//! boots (a boot pair is what the suite's time goes to). Two are on legacy
//! INTx (`vectors=0`: no MSI-X, so each interrupt is an IO-APIC line the
//! hypervisor routes to dom0 as a PIRQ event):
//! - a virtio-blk disk: dom0 mounts the ext4 filesystem on it, writes a
//!   64 MiB file, remounts and reads it back: its MD5 sum must be the one
//!   the host computed for the pattern written; dom0 counts the disk's
//!   interrupts on its `xen-pirq` line in `/proc/interrupts`; the host then
//!   reads the file out of the disk image (e2fsprogs' `debugfs`), so the
//!   data really reached the disk;
//! - a virtio-net NIC on QEMU's user network with `restrict=on` (nothing
//!   reaches the host's network): dom0 brings `eth0` up, resolves and pings
//!   QEMU's gateway (10.0.2.2, which slirp answers itself), and the NIC's
//!   `xen-pirq` line counts more interrupts than before.
//!
//! Two more use MSI-X (virtio's default: the hypervisor programs each
//! table entry and delivers the vector as a PIRQ event), and an e1000
//! NIC uses INTx (on i440fx its line is shared with the first disk's,
//! which is idle then):
//! - a second virtio-blk disk, raw: dom0 writes a pattern, drops its page
//!   cache and reads it back, its `xen-pirq -msi-x` lines count, and the
//!   host finds the pattern in the image;
//! - a second virtio-net NIC and the e1000, each on a restricted user
//!   network of its own, ping their gateways; their lines count more
//!   interrupts than before;
//! - an NVMe disk (MSI-X, its table inside BAR 0 next to the doorbells;
//!   the driver maps, unmaps and maps its vectors again while probing):
//!   written and read back as the raw virtio disk.
//!
//! At the end dom0's `/init` runs `poweroff -f` on a machine without
//! QEMU's debug-exit device: Linux hands the ACPI S5 values to the
//! hypervisor (`XENPF_enter_acpi_sleep`), which writes them to the FADT's
//! PM1 control block, and QEMU powers off (status 0).
//!
//! The 64 MiB are written as one MiB of a pattern over and over (`cat` of
//! a file in tmpfs: cheaper under software emulation than generating it
//! all) and summed once, after the remount, with busybox's `md5sum`
//! (several times faster than its `sha256sum` there); the host knows the
//! sum to expect.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::compare::{self, Scenario};
use tests::dom0;
use tests::linux::Hypervisor;
use tests::Outcome;

/// MiB dom0 writes to its virtio disk (issue #19's 64).
const DATA_MIB: u32 = 64;
/// Size of dom0's virtio disk image: the data and ext4's metadata and
/// journal.
const DISK_MIB: u32 = 96;
/// The line (`yes`'s, with its newline) that makes up the MiB dom0
/// writes `DATA_MIB` times.
const DATA_PATTERN: &str = "xenish-dom0-disk\n";
/// Size of dom0's raw MSI-X disk, and the MiB of it dom0 writes.
const MSIX_DISK_MIB: u32 = 8;
const MSIX_DATA_MIB: u32 = 4;
/// The line dom0 writes over and over on its MSI-X disk.
const MSIX_PATTERN: &str = "xenish-msix-disk\n";

/// Runs `script` on both hypervisors (in parallel) with the test guests
/// `guests` in `/root`, and returns the `check: ` lines after checking
/// they agree, with the serial logs. The guest name `demo` stands for the
/// demo guest of `cargo xtask run` (`/etc/xen/demo.cfg`). `qemu_extra`
/// gives each boot its devices.
fn same_on_both(
    name: &str,
    script: &str,
    guests: &[&str],
    qemu_extra: Vec<(Hypervisor, Vec<String>)>,
) -> (Vec<String>, Outcome, Outcome) {
    let mut extra: Vec<(String, u32, Vec<u8>)> = guests
        .iter()
        .filter(|g| **g != "demo")
        .map(|g| {
            let path = tests::images().guest(g);
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (format!("root/{g}"), 0o644, data)
        })
        .collect();
    if guests.contains(&"demo") {
        extra.extend(dom0::demo_files().unwrap_or_else(|e| panic!("{e}")));
    }
    let extra: Vec<(&str, u32, Vec<u8>)> = extra.iter().map(|(p, m, d)| (p.as_str(), *m, d.clone())).collect();
    let mut scenario = Scenario::new(name, script, &extra);
    scenario.xen_args = "sched=credit";
    scenario.limit = Duration::from_secs(1500);
    scenario.qemu_extra = qemu_extra;
    scenario.power_off = true;
    let (xenish, xen) = scenario.both();
    compare::assert_same(&xenish, &xen, &[]);
    (compare::lines(&xenish, "check: "), xenish, xen)
}

/// A fresh ext4 image for one boot's virtio disk, made on the host
/// (`mkfs.ext4`).
fn disk(hv: Hypervisor) -> PathBuf {
    let dir = tests::images::target_dir().join("dom0dev");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(format!("disk-{hv:?}.img").to_lowercase());
    let _ = std::fs::remove_file(&path);
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "dom0disk"])
        .arg(&path)
        .arg(format!("{DISK_MIB}M"))
        .status()
        .unwrap_or_else(|e| panic!("mkfs.ext4 (e2fsprogs) is needed: {e}"));
    assert!(status.success(), "mkfs.ext4 {} failed", path.display());
    path
}

/// A zeroed raw image for one boot's MSI-X disk.
fn raw_disk(hv: Hypervisor, name: &str) -> PathBuf {
    let dir = tests::images::target_dir().join("dom0dev");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(format!("{name}-{hv:?}.img").to_lowercase());
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.set_len(u64::from(MSIX_DISK_MIB) << 20).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// Whether the raw image at `image` starts with the MiB of
/// [`MSIX_PATTERN`] dom0 wrote.
fn raw_disk_holds_the_pattern(image: &Path) -> bool {
    let data = std::fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let len = (MSIX_DATA_MIB as usize) << 20;
    let expected = MSIX_PATTERN.as_bytes();
    data.len() >= len && data[..len].iter().zip(expected.iter().cycle()).all(|(a, b)| a == b)
}

/// The MD5 sum (`md5sum`'s hex digits) of what `sh -c script` prints.
fn md5_of(script: &str, arg: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{script} | md5sum"))
        .arg("sh")
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("sh -c {script:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// The MD5 sum of what dom0 writes to its virtio disk: the MiB that
/// [`DATA_PATTERN`] repeated fills, `DATA_MIB` times.
fn data_md5() -> String {
    let mib: Vec<u8> = DATA_PATTERN.bytes().cycle().take(1 << 20).collect();
    let dir = tests::images::target_dir().join("dom0dev");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join("data-mib");
    std::fs::write(&path, &mib).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    md5_of(&format!("for i in $(seq {DATA_MIB}); do cat \"$1\"; done"), &path)
}

/// The MD5 sum of `/data` in the ext4 image at `image`, read on the host.
fn md5_in_image(image: &Path) -> String {
    md5_of("debugfs -R 'cat /data' \"$1\" 2>/dev/null", image)
}

/// QEMU devices for dom0 on `hv`: its own disk image on a virtio-blk
/// device and a virtio-net NIC on a restricted user network, both on
/// legacy INTx (PCI slots 2 and 3); a raw disk on virtio-blk and a second
/// virtio-net NIC with MSI-X (slots 4, 5); an e1000 NIC (slot 6); an NVMe
/// disk (slot 7). Each NIC has a restricted user network of its own
/// (10.0.2/3/4.0/24).
fn devices(image: &Path, raw: &Path, nvme: &Path) -> Vec<String> {
    [
        "-drive",
        &format!("file={},if=none,id=disk0,format=raw,cache=unsafe", image.display()),
        "-device",
        "virtio-blk-pci,drive=disk0,vectors=0,addr=0x2",
        "-netdev",
        "user,id=net0,restrict=on",
        "-device",
        "virtio-net-pci,netdev=net0,vectors=0,addr=0x3",
        "-drive",
        &format!("file={},if=none,id=disk1,format=raw,cache=unsafe", raw.display()),
        "-device",
        "virtio-blk-pci,drive=disk1,addr=0x4",
        "-netdev",
        "user,id=net1,restrict=on,net=10.0.3.0/24",
        "-device",
        "virtio-net-pci,netdev=net1,addr=0x5",
        "-netdev",
        "user,id=net2,restrict=on,net=10.0.4.0/24",
        "-device",
        "e1000,netdev=net2,addr=0x6",
        "-drive",
        &format!("file={},if=none,id=disk2,format=raw,cache=unsafe", nvme.display()),
        "-device",
        "nvme,drive=disk2,serial=xenish,addr=0x7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Shell helpers the scripts share: `c` prints a check line; `start NAME
/// [EXTRA]` writes an xl.cfg for the test guest NAME and creates it;
/// `wait_key PATH SECS` waits for a XenStore node; `console NAME` prints the
/// guest's console log (from xenconsoled) as check lines; `info` prints
/// what may differ run to run, `t` a phase stamp (seconds since boot).
const HELPERS: &str = r#"
c() { echo "check: $*"; }
info() { echo "info: $*"; }
t() { echo "info: t=$(cut -d' ' -f1 /proc/uptime) $*"; }
start() {
    cat > /etc/xen/$1.cfg <<EOF
name = "$1"
kernel = "/root/$1"
memory = 32
extra = "$2"
EOF
    xl create /etc/xen/$1.cfg >/tmp/create-$1.log 2>&1 || { c "xl create $1 failed"; cat /tmp/create-$1.log; }
}
wait_key() {
    i=0
    while [ $i -lt $(( $2 * 2 )) ]; do
        xenstore-exists "$1" && return 0
        sleep 0.5; i=$((i+1))
    done
    c "timed out waiting for $1"; return 1
}
wait_gone() {
    i=0
    while [ $i -lt $(( $2 * 2 )) ]; do
        xl domid "$1" >/dev/null 2>&1 || return 0
        sleep 0.5; i=$((i+1))
    done
    c "$1 is still there"; return 1
}
console() { sed 's/\r$//; s/^/check: /' /var/log/xen/console/guest-$1.log; }
"#;

/// dom0's own devices: the virtio disk, then the virtio NIC.
/// `irq_line DEV` prints the `/proc/interrupts` line of virtio device DEV
/// (`virtio0`, ...); `irq_sum LINE` its count over all CPUs; `irq_kind
/// LINE` the controller and trigger columns and the names.
const DEVICES: &str = r#"
irq_line() { grep -E " $1(,|$)" /proc/interrupts | head -1; }
irq_sum() { echo "$1" | awk '{ s = 0; for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k; print s }'; }
irq_kind() { echo "$1" | awk '{ for (k = 2; k <= NF; k++) if ($k !~ /^[0-9]+$/) { print $k, $(k + 1); exit } }'; }
t "devices start"
# The disk.
c "disk: $(cat /sys/block/vda/size 2>/dev/null || echo none) sectors, driver $(basename "$(readlink /sys/block/vda/device/driver)")"
mkdir -p /mnt
yes "$DATA_LINE" | head -c 1048576 > /tmp/mib
mount -t ext4 /dev/vda /mnt; c "mount: exit $?"
i=0; while [ $i -lt $DATA_MIB ]; do cat /tmp/mib; i=$((i+1)); done > /mnt/data; c "write: exit $?"
rm /tmp/mib
umount /mnt; c "umount: exit $?"
t "disk written"
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 /dev/vda /mnt; c "remount: exit $?"
read=$(md5sum /mnt/data | cut -d' ' -f1)
c "data: $(stat -c %s /mnt/data) bytes, $([ "$read" = "$DATA_MD5" ] && echo as written || echo DIFFERENT) after the remount"
echo "md5: $read"
umount /mnt; c "final umount: exit $?"
blk=$(basename "$(readlink /sys/block/vda/device)")
line=$(irq_line $blk)
info "disk: $line"
c "disk interrupts: $([ "$(irq_sum "$line")" -gt 0 ] && echo some || echo none), on $(irq_kind "$line")"
t "disk checked"
# The NIC, on QEMU's restricted user network (the gateway 10.0.2.2 is
# slirp itself).
c "eth0: driver $(basename "$(readlink /sys/class/net/eth0/device/driver)")"
nic=$(basename "$(readlink /sys/class/net/eth0/device)")
before=$(irq_sum "$(irq_line $nic)")
ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up; c "eth0 up: exit $?"
ping -c 3 -W 10 10.0.2.2 > /tmp/ping 2>&1; c "ping 10.0.2.2: exit $?"
info "ping: $(grep -o '[0-9]* packets transmitted.*' /tmp/ping)"
c "gateway: $(ip neigh show dev eth0 | grep '^10\.0\.2\.2 ' | grep -o 'lladdr [0-9a-f:]*')"
info "eth0: $(cat /sys/class/net/eth0/statistics/rx_packets) packets in, $(cat /sys/class/net/eth0/statistics/tx_packets) out"
line=$(irq_line $nic)
info "nic: $line (before the ping: $before)"
after=$(irq_sum "$line")
c "nic interrupts: $([ "${after:-0}" -gt "${before:-0}" ] && echo more than before || echo no more than before), on $(irq_kind "$line")"
ip link set eth0 down
t "nic checked"
# MSI-X: virtio's per-queue vectors, named virtioN-config, virtioN-req.0, ...
msix_lines() { grep -E " $1-[a-z]" /proc/interrupts; }
msix_sum() { msix_lines $1 | awk '{ for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k } END { print s + 0 }'; }
nic_if() { basename "$(ls -d /sys/bus/pci/devices/0000:00:$1.0/virtio*/net/* /sys/bus/pci/devices/0000:00:$1.0/net/* 2>/dev/null | head -1)"; }
c "msi-x disk: $(cat /sys/block/vdb/size 2>/dev/null || echo none) sectors, driver $(basename "$(readlink /sys/block/vdb/device/driver)")"
blk=$(basename "$(readlink /sys/block/vdb/device)")
yes xenish-msix-disk | head -c $((MSIX_DATA_MIB * 1048576)) > /tmp/pattern
dd if=/tmp/pattern of=/dev/vdb bs=65536 2>/dev/null && sync; c "msi-x disk write: exit $?"
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vdb of=/tmp/back bs=65536 count=$((MSIX_DATA_MIB * 16)) 2>/dev/null; c "msi-x disk read: exit $?"
c "msi-x disk data: $(cmp -s /tmp/pattern /tmp/back && echo the same || echo DIFFERENT)"
rm -f /tmp/pattern /tmp/back
info "msi-x disk: $(msix_lines $blk | tr -s ' ' | tr '\n' ';')"
c "msi-x disk vectors: $(msix_lines $blk | wc -l), interrupts: $([ "$(msix_sum $blk)" -gt 0 ] && echo some || echo none), on $(irq_kind "$(msix_lines $blk | head -1)")"
t "msi-x disk checked"
i=$(nic_if 05)
nic=$(basename "$(readlink /sys/class/net/$i/device)")
c "msi-x nic: driver $(basename "$(readlink /sys/class/net/$i/device/driver)")"
before=$(msix_sum $nic)
ip addr add 10.0.3.15/24 dev $i && ip link set $i up; c "msi-x nic up: exit $?"
ping -c 3 -W 10 10.0.3.2 > /tmp/ping 2>&1; c "ping 10.0.3.2: exit $?"
info "msi-x nic: $(msix_lines $nic | tr -s ' ' | tr '\n' ';') (before the ping: $before)"
c "msi-x nic interrupts: $([ "$(msix_sum $nic)" -gt "${before:-0}" ] && echo more than before || echo no more than before), on $(irq_kind "$(msix_lines $nic | head -1)")"
ip link set $i down
i=$(nic_if 06)
c "e1000: driver $(basename "$(readlink /sys/class/net/$i/device/driver)")"
ip addr add 10.0.4.15/24 dev $i && ip link set $i up; c "e1000 up: exit $?"
ping -c 3 -W 10 10.0.4.2 > /tmp/ping 2>&1; c "ping 10.0.4.2: exit $?"
line=$(irq_line $i)
info "e1000: $line"
c "e1000 interrupts: $([ "$(irq_sum "$line")" -gt 0 ] && echo some || echo none), on $(irq_kind "$line")"
before=$(irq_sum "$line")
ping -c 3 -W 10 10.0.4.2 > /tmp/ping 2>&1; c "ping 10.0.4.2 again: exit $?"
c "e1000 interrupts: $([ "$(irq_sum "$(irq_line $i)")" -gt "${before:-0}" ] && echo more than before || echo no more than before)"
ip link set $i down
t "msi-x nic and e1000 checked"
c "nvme: $(cat /sys/block/nvme0n1/size 2>/dev/null || echo none) sectors, driver $(basename "$(readlink /sys/block/nvme0n1/device/device/driver)")"
yes xenish-msix-disk | head -c $((MSIX_DATA_MIB * 1048576)) > /tmp/pattern
dd if=/tmp/pattern of=/dev/nvme0n1 bs=65536 2>/dev/null && sync; c "nvme write: exit $?"
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/nvme0n1 of=/tmp/back bs=65536 count=$((MSIX_DATA_MIB * 16)) 2>/dev/null; c "nvme read: exit $?"
c "nvme data: $(cmp -s /tmp/pattern /tmp/back && echo the same || echo DIFFERENT)"
rm -f /tmp/pattern /tmp/back
nvme_lines() { grep -E " nvme0q[0-9]+$" /proc/interrupts; }
info "nvme: $(nvme_lines | tr -s ' ' | tr '\n' ';')"
c "nvme vectors: $(nvme_lines | wc -l), interrupts: $([ "$(nvme_lines | awk '{ for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k } END { print s + 0 }')" -gt 0 ] && echo some || echo none), on $(irq_kind "$(nvme_lines | head -1)")"
t "nvme checked"
"#;

/// `xsguest`: its own store, dom0's refused, a watch dom0 fires, transactions.
const XSGUEST: &str = r#"
start xsguest
d=$(xl domid xsguest)
c "xsguest is domain $d"
wait_key /local/domain/$d/data/waiting 300 && xenstore-write /local/domain/$d/data/watched "from dom0"
# It writes data/done and powers off at once (its nodes go with it):
# wait for the domain to be gone, not for the node.
wait_gone xsguest 300
console xsguest
c "its nodes are gone with it: $(xenstore-exists /local/domain/$d || echo yes)"
"#;

/// `xshostile`, then a well-behaved `xsguest` after it.
const XSHOSTILE: &str = r#"
start xshostile
wait_gone xshostile 300
console xshostile
pidof xenstored >/dev/null && c "xenstored survived"
c "dom0 is still served: $(xenstore-read /local/domain/0/name)"
rm -f /var/log/xen/console/guest-xsguest.log
start xsguest
d=$(xl domid xsguest)
wait_key /local/domain/$d/data/waiting 300 && xenstore-write /local/domain/$d/data/watched "after the attack"
# It writes data/done and powers off at once (its nodes go with it):
# wait for the domain to be gone, not for the node.
wait_gone xsguest 300
console xsguest | grep -E "done|watched changed" | sed 's/^check: /check: again: /'
"#;

/// `granter` with `xen-devcheck --peer`.
const GRANTER: &str = r#"
start granter
d=$(xl domid granter)
xen-devcheck --peer $d | sed 's/^/check: /'
wait_gone granter 300
console granter
"#;

/// The demo guest of `cargo xtask run`.
const DEMO: &str = r#"
xl create /etc/xen/demo.cfg; c "xl create demo.cfg: exit $?"
i=0
while [ $i -lt 400 ]; do
    grep -q "demo: eth0 is" /var/log/xen/console/guest-demo.log 2>/dev/null && break
    sleep 1; i=$((i+1))
done
grep -o "demo: Debian's Linux [^,]*, a domU on xen" /var/log/xen/console/guest-demo.log | sed 's/^/check: /'
grep -o "demo: /dev/xvda is a [0-9]* MiB disk\|demo: eth0 is [0-9.]* on dom0's bridge xenbr0" \
    /var/log/xen/console/guest-demo.log | sed 's/^/check: /'
ping -c 3 -W 10 169.254.0.5 >/dev/null && c "dom0 pings the demo guest" || c "dom0 cannot ping the demo guest"
c "listed as $(xl list demo | tail -1 | tr -s ' ' | cut -d' ' -f1-4)"
xl destroy demo; c "xl destroy: exit $?"
"#;

/// Every scenario in one boot per hypervisor (boots are what the suite's
/// time goes to), one after the other in dom0.
#[test]
fn dom0_serves_xenstore_grants_and_events_to_domus_on_xenish_as_on_xen() {
    let disks = [(Hypervisor::Xenish, disk(Hypervisor::Xenish)), (Hypervisor::Xen, disk(Hypervisor::Xen))];
    let raw = [raw_disk(Hypervisor::Xenish, "msix"), raw_disk(Hypervisor::Xen, "msix")];
    let nvme = [raw_disk(Hypervisor::Xenish, "nvme"), raw_disk(Hypervisor::Xen, "nvme")];
    let qemu_extra = disks
        .iter()
        .zip(raw.iter().zip(&nvme))
        .map(|((hv, image), (raw, nvme))| (*hv, devices(image, raw, nvme)))
        .collect();
    let data_md5 = data_md5();
    let script = format!(
        "DATA_MIB={DATA_MIB}\nDATA_LINE={}\nDATA_MD5={data_md5}\nMSIX_DATA_MIB={MSIX_DATA_MIB}\n{HELPERS}{DEVICES}{XSGUEST}{XSHOSTILE}{GRANTER}{DEMO}",
        DATA_PATTERN.trim_end()
    );
    let (lines, xenish, xen) = same_on_both("domus", &script, &["xsguest", "xshostile", "granter", "demo"], qemu_extra);
    let bytes = u64::from(DATA_MIB) << 20;
    for expected in [
        // dom0's virtio disk and NIC
        &format!("check: disk: {} sectors, driver virtio_blk", DISK_MIB * 2048),
        "check: mount: exit 0",
        "check: write: exit 0",
        "check: umount: exit 0",
        "check: remount: exit 0",
        &format!("check: data: {bytes} bytes, as written after the remount"),
        "check: final umount: exit 0",
        "check: disk interrupts: some, on xen-pirq -ioapic-level",
        "check: eth0: driver virtio_net",
        "check: eth0 up: exit 0",
        "check: ping 10.0.2.2: exit 0",
        "check: gateway: lladdr 52:55:0a:00:02:02",
        "check: nic interrupts: more than before, on xen-pirq -ioapic-level",
        // the MSI-X disk and NIC, the e1000
        &format!("check: msi-x disk: {} sectors, driver virtio_blk", MSIX_DISK_MIB * 2048),
        "check: msi-x disk write: exit 0",
        "check: msi-x disk read: exit 0",
        "check: msi-x disk data: the same",
        // Linux takes a vector per CPU (virtio-blk's queues, QEMU has one
        // per emulated CPU; NVMe's I/O queues) besides the config/admin one.
        &format!("check: msi-x disk vectors: {}, interrupts: some, on xen-pirq -msi-x", 1 + tests::qemu::default_smp()),
        "check: msi-x nic: driver virtio_net",
        "check: msi-x nic up: exit 0",
        "check: ping 10.0.3.2: exit 0",
        "check: msi-x nic interrupts: more than before, on xen-pirq -msi-x",
        "check: e1000: driver e1000",
        "check: e1000 up: exit 0",
        "check: ping 10.0.4.2: exit 0",
        "check: e1000 interrupts: some, on xen-pirq -ioapic-level",
        "check: ping 10.0.4.2 again: exit 0",
        "check: e1000 interrupts: more than before",
        &format!("check: nvme: {} sectors, driver nvme", MSIX_DISK_MIB * 2048),
        "check: nvme write: exit 0",
        "check: nvme read: exit 0",
        "check: nvme data: the same",
        &format!("check: nvme vectors: {}, interrupts: some, on xen-pirq -msi-x", 1 + tests::qemu::default_smp()),
        // xsguest
        "check: xsguest: write data/test: OK",
        "check: xsguest: write /local/domain/0/name: EACCES",
        "check: xsguest: data/watched changed: from dom0",
        "check: xsguest: transaction committed",
        "check: xsguest: done, 0 failures",
        "check: its nodes are gone with it: yes",
        // xshostile
        "check: xshostile: after the index jump: the daemon stopped reading the ring",
        "check: xenstored survived",
        "check: dom0 is still served: Domain-0",
        "check: again: xsguest: data/watched changed: after the attack",
        "check: again: xsguest: done, 0 failures",
        // granter
        "check: devcheck: peer: gntdev map: the guest's page mapped read-only, its pattern read back",
        "check: devcheck: peer: notifications: 100/100 notifications answered by the guest",
        "check: granter: 100 notifications",
        // demo
        "check: xl create demo.cfg: exit 0",
        "check: demo: /dev/xvda is a 64 MiB disk",
        "check: demo: eth0 is 169.254.0.5 on dom0's bridge xenbr0",
        "check: dom0 pings the demo guest",
        "check: listed as demo 5 256 1",
        "check: xl destroy: exit 0",
    ] {
        let expected: &str = expected;
        assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in\n{}", lines.join("\n"));
    }
    assert!(
        lines.iter().any(|l| l.starts_with("check: demo: Debian's Linux 6.") && l.ends_with(", a domU on xen")),
        "the demo guest's banner:\n{}",
        lines.join("\n")
    );
    // dom0's `poweroff -f` at the end, without a debug-exit device: Linux
    // asks for ACPI S5 (`XENPF_enter_acpi_sleep`) and the hypervisor writes
    // its values to the PM1 control block, so QEMU powers off (status 0).
    for (hv, out) in [("xenish", &xenish), ("Xen", &xen)] {
        assert_eq!(out.exit, tests::qemu::Exit::Qemu(0), "{hv}: dom0's power-off did not turn the machine off\n{out}");
    }
    for ((hv, _), (raw, nvme)) in disks.iter().zip(raw.iter().zip(&nvme)) {
        assert!(raw_disk_holds_the_pattern(raw), "{hv:?}: the MSI-X disk's image does not hold what dom0 wrote");
        assert!(raw_disk_holds_the_pattern(nvme), "{hv:?}: the NVMe disk's image does not hold what dom0 wrote");
    }
    for ((hv, image), out) in disks.iter().zip([&xenish, &xen]) {
        let in_dom0 = compare::lines(out, "md5: ");
        assert_eq!(in_dom0, [format!("md5: {data_md5}")], "{hv:?}: what dom0 read is not what it wrote");
        assert_eq!(md5_in_image(image), data_md5, "{hv:?}: the disk image does not hold what dom0 wrote");
    }
}
