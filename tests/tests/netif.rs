//! The split network driver, end to end, on xenish and on Xen 4.17 in
//! the same QEMU (which has no NIC: every packet stays inside, on dom0's
//! bridge `xenbr0` and link-local addresses).
//!
//! Frontends: Debian's Linux (`xen-netfront`, as a domU with a busybox
//! initramfs) and guest-rt's frontend (the `netguest` test guest, which
//! answers ARP and ping). Backends: xenish-netback (the default for
//! `vif=[...]`) and Linux's in-kernel `xen-netback` in dom0
//! (`backendtype=kernel`). What the scripts print with `check: ` is
//! compared between the two hypervisors; `info: ` lines carry what
//! differs run to run (timings, throughput).

use std::time::Duration;

use tests::compare::{self, Scenario};

/// The kernel modules a Linux domU loads from its initramfs (with their
/// dependencies).
const DOMU_MODULES: &[&str] = &["xen-netfront"];

/// The Linux domU's init. Every line it prints starts with `domU: `.
/// Its command line says `netip=` (its address on eth0), `netpeer=` (a
/// guest to ping, or none), `netport=` (dom0 listens there for what the
/// guest sends, and serves on the next port what it receives) and
/// `netmib=` (MiB the guest sends; it receives what dom0 serves).
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "domU: insmod $m failed"; done
say() { echo "domU: $*"; }
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
ip=$(arg netip); peer=$(arg netpeer); port=$(arg netport); mib=$(arg netmib)
for i in $(seq 100); do [ -d /sys/class/net/eth0 ] && break; sleep 0.1; done
ip addr add $ip/16 dev eth0 && ip link set eth0 up && say "eth0 up"
# TCP sizes each GSO frame to about 1 ms at its pacing rate, 2 segments at
# least: on an emulated CPU that is ~3 KiB, and every frame costs a trip
# through both kernels and the backend. 44 segments: up to 64 KiB frames.
sysctl -w net.ipv4.tcp_min_tso_segs=44 >/dev/null
ping -c 3 -W 10 169.254.0.1 >/dev/null && say "ping dom0: ok" || say "ping dom0: failed"
if [ -n "$peer" ]; then
    for i in $(seq 120); do ping -c 1 -W 1 $peer >/dev/null && break; sleep 1; done
    ping -c 3 -W 5 $peer >/dev/null && say "ping $peer: ok" || say "ping $peer: failed"
fi
if [ -n "$port" ]; then
    dd if=/dev/urandom of=/tmp/data bs=1M count=$mib 2>/dev/null
    t0=$(date +%s)
    # busybox nc copies in ~1 KiB system calls; dd behind it, 1 MiB.
    nc 169.254.0.1 $port -e dd if=/tmp/data bs=1M 2>/dev/null
    t1=$(date +%s)
    say "sent md5 $(md5sum < /tmp/data | cut -d' ' -f1) in $((t1 - t0)) s"
    rm /tmp/data
    nc 169.254.0.1 $((port + 1)) -e dd of=/tmp/got bs=1M 2>/dev/null
    t2=$(date +%s)
    say "received $(wc -c < /tmp/got) bytes, md5 $(md5sum < /tmp/got | cut -d' ' -f1) in $((t2 - t1)) s"
    rm /tmp/got
fi
dmesg | grep -i "segfault\|general protection\|traps:" | sed 's/^/domU: dmesg: /'
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
# The value after "$2" in domain $1's console (the last one).
said() { sed -n "s/.*$2 \([0-9a-f]*\).*/\1/p" /var/log/xen/console/guest-$1.log | tail -1; }
# Waits up to 60 s until the shell test $1 holds; says how long it took.
# A backend releases a vif after xl has returned (xenish-netback deletes
# the TAP once xl has removed the backend's directory, as Linux's netback
# unregisters its vif after it reports Closed): how soon is timing, and
# on two CPUs the next command can come first.
within() { for i in $(seq 0 60); do eval "$1" && { info "$2 after ${i}s"; return 0; }; sleep 1; done; return 1; }
# libxl leaves the kinds' empty directories, nothing below them.
no_backend_left() {
    left=$(xenstore-ls -f /local/domain/0/backend 2>/dev/null | grep '^/local/domain/0/backend/[^/]*/')
    [ -z "$left" ] && c "no backend left" || echo "$left" | sed 's/^/check: left: /'
}
# A Linux domU named $1 with vif spec $2 and kernel arguments $3.
linux() {
    cat > /etc/xen/$1.cfg <<EOF
name = "$1"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet $3"
memory = 224
vif = [ '$2' ]
EOF
    xl create /etc/xen/$1.cfg; c "create $1: exit $?"
}
# What went wrong: guest consoles, the daemon's log, the backends.
dump() {
    for f in /var/log/xen/console/guest-*.log; do sed "s|^|info: $(basename $f): |" $f; done
    sed 's/^/info: netback: /' /var/log/xen/xenish-netback.log
    xenstore-ls -f /local/domain/0/backend | sed 's/^/info: /'
    dmesg | tail -30 | sed 's/^/info: dmesg: /'
}
# Both listeners of a guest's transfers on ports $1 (to /tmp/rx-$1.bin)
# and $1+1 (sending file $2), copying in 1 MiB system calls (dd).
listen() {
    nc -l -p $1 -e dd of=/tmp/rx-$1.bin bs=1M 2>/dev/null &
    nc -l -p $(($1 + 1)) -e dd if=$2 bs=1M 2>/dev/null &
}
# A Rust test guest $1 (the kernel /root/$1) named $2 with vifs $3.
rust() {
    cat > /etc/xen/$2.cfg <<EOF
name = "$2"
kernel = "/root/$1"
memory = 32
vif = [ $3 ]
EOF
    xl create /etc/xen/$2.cfg; c "create $2: exit $?"
}
same() { [ -n "$2" ] && [ "$2" = "$3" ] && c "$1: checksums match" || c "$1: checksums differ: $2 vs $3"; }
"#;

/// The whole matrix in one boot per hypervisor (boots are where the time
/// goes): two Linux domUs, one on each backend, ping dom0 and each other
/// and transfer data both ways; the Rust test guest answers ping on a
/// vif of each backend; a hostile guest attacks xenish-netback while the
/// others use it; a vif is hot-plugged into a running guest, listed and
/// unplugged; nothing is left behind.
const SCRIPT: &str = r#"
dd if=/dev/urandom of=/tmp/tx.bin bs=1M count=16 2>/dev/null
head -c 4194304 /tmp/tx.bin > /tmp/tx4.bin
tx=$(md5sum < /tmp/tx.bin | cut -d' ' -f1)
# As in the guests: GSO frames of up to 64 KiB, not ~3 KiB.
sysctl -w net.ipv4.tcp_min_tso_segs=44 >/dev/null || c "cannot set tcp_min_tso_segs"
listen 5001 /tmp/tx.bin
listen 5011 /tmp/tx4.bin
linux linux-a 'mac=00:16:3e:00:00:11,ip=169.254.0.11' "netip=169.254.0.11 netpeer=169.254.0.12 netport=5001 netmib=64"
pidof xenish-netback >/dev/null && c "xenish-netback runs"
linux linux-b 'mac=00:16:3e:00:00:12,ip=169.254.0.12,backendtype=kernel' "netip=169.254.0.12 netpeer=169.254.0.11 netport=5011 netmib=4"
rust netguest netguest "'mac=00:16:3e:00:00:21,ip=169.254.0.21,backendtype=kernel', 'mac=00:16:3e:00:00:22,ip=169.254.0.22'"
t "guests created"

# guest-rt's frontend against both backends.
wait_console "netguest: serving" 300 netguest || { c "netguest did not come up"; dump; }
grep -o "netguest: \(vif [01]: up.*\|serving.*\)" /var/log/xen/console/guest-netguest.log | sed 's/^/check: /'
grep -q "netguest: serving 2 vif" /var/log/xen/console/guest-netguest.log || sed 's/^/info: netguest console: /' /var/log/xen/console/guest-netguest.log
ping -c 3 -W 10 169.254.0.21 >/dev/null && c "dom0 pings netguest through Linux netback" || c "dom0 cannot ping netguest through Linux netback"
ping -c 3 -W 10 169.254.0.22 >/dev/null && c "dom0 pings netguest through xenish-netback" || c "dom0 cannot ping netguest through xenish-netback"

t "netguest checked"
# A hostile frontend on xenish-netback, while the others use it.
rust nethostile nethostile "'mac=00:16:3e:00:00:31,ip=169.254.0.31'"
wait_console "nethostile: done" 300 nethostile || { c "nethostile did not finish"; dump; }
grep -o "nethostile: .*" /var/log/xen/console/guest-nethostile.log | grep -v start | sed 's/^/check: /'
sleep 2
pidof xenish-netback >/dev/null && c "xenish-netback survived the hostile guest"
grep -o "vif[0-9]*.0/q0: disconnected: .*dropped from the frontend: .*" /var/log/xen/xenish-netback.log \
    | grep -o "dropped from the frontend: [0-9]* ([^)]*)" | sed 's/^/check: hostile vif: /'
ping -c 3 -W 10 169.254.0.22 >/dev/null && c "dom0 still pings netguest through xenish-netback"

t "hostile checked"
# Linux's netfront against both backends.
wait_console "domU: done" 600 linux-a || { c "linux-a did not finish"; dump; }
wait_console "domU: done" 600 linux-b || { c "linux-b did not finish"; dump; }
for g in linux-a linux-b; do
    grep "domU:" /var/log/xen/console/guest-$g.log | sed "s/^/info: $g: /"
    grep -o "domU: \(eth0 up\|ping .*\)" /var/log/xen/console/guest-$g.log | sed "s/^/check: $g: /"
done
same "Linux netfront -> xenish-netback, 64 MiB" "$(said linux-a 'sent md5')" "$(md5sum < /tmp/rx-5001.bin | cut -d' ' -f1)"
same "xenish-netback -> Linux netfront, 16 MiB" "$(said linux-a ', md5')" "$tx"
same "Linux netfront -> Linux netback, 4 MiB" "$(said linux-b 'sent md5')" "$(md5sum < /tmp/rx-5011.bin | cut -d' ' -f1)"
same "Linux netback -> Linux netfront, 4 MiB" "$(said linux-b ', md5')" "$(md5sum < /tmp/tx4.bin | cut -d' ' -f1)"
for ip in 11 12 21 22; do
    ping -c 2 -W 10 169.254.0.$ip >/dev/null && c "dom0 pings 169.254.0.$ip" || c "dom0 cannot ping 169.254.0.$ip"
done

t "linux checked"
# Hot-plug: a second vif into linux-a, listed, unplugged.
a=$(xl domid linux-a)
xl network-attach linux-a mac=00:16:3e:00:01:11 ip=169.254.1.11; c "network-attach: exit $?"
for i in $(seq 60); do [ "$(xenstore-read /local/domain/0/backend/qnic/$a/1/state 2>/dev/null)" = 4 ] && break; sleep 1; done
xl network-list linux-a | sed 's/^/info: /'
xl network-list linux-a | awk 'NR > 1 { print $1, $2, $3, $5 }' | sed 's/^/check: network-list linux-a: /'
xl network-list linux-b | awk 'NR > 1 { print $1, $2, $3, $5 }' | sed 's/^/check: network-list linux-b: /'
[ -e /sys/class/net/vif$a.1/brport ] && c "the new TAP is a port of xenbr0"
xl network-detach linux-a 00:16:3e:00:01:11; c "network-detach by mac: exit $?"
within "[ ! -e /sys/class/net/vif$a.1 ]" "vif$a.1 went" && c "its TAP is gone" || c "vif$a.1 is still there"
xl network-list linux-a | awk 'NR > 1 { print $1 }' | tr '\n' ' ' | sed 's/^/check: after network-detach: /'; echo
xl network-detach linux-a 7; c "network-detach of a missing vif: exit $?"

t "hotplug checked"
for g in linux-a linux-b netguest; do xl destroy $g; c "destroy $g: exit $?"; done
pidof xenish-netback >/dev/null && c "xenish-netback survived"
within '[ -z "$(ls /sys/class/net | grep "^vif")" ]' "every vif went" && c "no vif interface left" || ls /sys/class/net | sed 's/^/check: left: /'
no_backend_left
tail -30 /var/log/xen/xenish-netback.log | sed 's/^/info: netback: /'
# dom0's own processes that crashed (a corrupted heap in busybox shows
# up as a broken script, not as a netif failure).
dmesg | grep -i "segfault\|traps:" | sed 's/^/info: dom0 crash: /'
"#;

/// Debian's kernel, the Linux domU's initramfs and the Rust test
/// guests, as dom0 files.
fn guest_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    let kernel = std::fs::read(tests::debian::linux().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
    let initrd = compare::domu_initramfs(DOMU_MODULES, DOMU_INIT).unwrap_or_else(|e| panic!("{e}"));
    let mut files = vec![("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, initrd)];
    for (path, guest) in [("root/netguest", "netguest"), ("root/nethostile", "nethostile")] {
        let file = tests::images().guest(guest);
        files.push((path, 0o644, std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))));
    }
    files
}

/// Runs `script` on both hypervisors at once; checks `expected` on each
/// and that both printed the same `check: ` lines.
fn same_on_both(name: &str, script: &str, extra: &[(&str, u32, Vec<u8>)], expected: &[&str]) {
    let mut scenario = Scenario::new(&format!("netif-{name}"), &format!("{PRELUDE}{script}"), extra);
    scenario.memory_mib = 1280;
    scenario.limit = Duration::from_secs(900);
    let (xenish, xen) = scenario.both();
    for out in [&xenish, &xen] {
        println!("{}", compare::lines(out, "info: ").join("\n"));
    }
    compare::expect_all(&xenish, expected);
    compare::expect_all(&xen, expected);
    compare::assert_same(&xenish, &xen, &[]);
}

#[test]
fn netif_frontends_and_backends_interoperate_on_xenish_as_on_xen() {
    same_on_both(
        "matrix",
        SCRIPT,
        &guest_files(),
        &[
            "check: create linux-a: exit 0",
            "check: xenish-netback runs",
            "check: create linux-b: exit 0",
            "check: create netguest: exit 0",
            "check: netguest: vif 0: up, ip 169.254.0.21",
            "check: netguest: vif 1: up, ip 169.254.0.22",
            "check: dom0 pings netguest through Linux netback",
            "check: dom0 pings netguest through xenish-netback",
            "check: nethostile: 37 slots sent, 37 answered: 34 errors, 2 okay, 1 null",
            "check: nethostile: accepted ids [1, 40]",
            "check: nethostile: dom0 still answers its ARP requests",
            "check: nethostile: the backend closed the vif after the producer index jump",
            "check: xenish-netback survived the hostile guest",
            "check: hostile vif: dropped from the frontend: 8 (cross-page 1, too-many-slots 1, size-mismatch 1, runt 1, \
             bad-extra 1, bad-gso 0, bad-grant 2, bad-headers 1)",
            "check: dom0 still pings netguest through xenish-netback",
            "check: linux-a: domU: ping dom0: ok",
            "check: linux-a: domU: ping 169.254.0.12: ok",
            "check: linux-b: domU: ping dom0: ok",
            "check: linux-b: domU: ping 169.254.0.11: ok",
            "check: Linux netfront -> xenish-netback, 64 MiB: checksums match",
            "check: xenish-netback -> Linux netfront, 16 MiB: checksums match",
            "check: Linux netfront -> Linux netback, 4 MiB: checksums match",
            "check: Linux netback -> Linux netfront, 4 MiB: checksums match",
            "check: dom0 pings 169.254.0.11",
            "check: dom0 pings 169.254.0.12",
            "check: dom0 pings 169.254.0.21",
            "check: dom0 pings 169.254.0.22",
            "check: network-attach: exit 0",
            "check: the new TAP is a port of xenbr0",
            "check: network-detach by mac: exit 0",
            "check: its TAP is gone",
            "check: after network-detach: 0",
            "check: network-detach of a missing vif: exit 1",
            "check: xenish-netback survived",
            "check: no backend left",
            "check: no vif interface left",
        ],
    );
}
