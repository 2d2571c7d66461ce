//! Guests with several vCPUs on two physical CPUs, on xenish and on Xen
//! 4.17 in the same QEMU (`-smp 2`): Debian's Linux as dom0 with
//! `dom0_max_vcpus=2` brings its second vCPU up through `VCPUOP_initialise`
//! and `VCPUOP_up`, `nproc` says 2, a process pinned to each CPU with
//! `taskset` runs there to completion, and a multi-process fork/pipe/sort
//! stress (IPIs, PV spinlocks' `SCHEDOP_poll`, remote TLB flushes) gives
//! the right answers; two CPU-bound loops, one per vCPU, run on both
//! physical CPUs at once (as `xl vcpu-list` shows the hypervisor's view)
//! and both vCPUs make progress (dom0's `/proc/stat`); then the pinned
//! and stress parts again inside a Linux domU made by `xl create` with
//! `vcpus = 2`. What the scripts print with `check: ` is compared line
//! for line between the two hypervisors.

use std::time::Duration;

use tests::compare::{self, Scenario};

/// The parallel workload, for dom0 and the domU alike, printing `check:`
/// lines with prefix `$1`: the CPU count, one process pinned to each CPU
/// (which reports the CPU it ran on and finishes a fixed loop), and four
/// fork/pipe/sort pipelines in parallel whose results are known. Each
/// pipeline starts about 30 processes (20 of them by xargs); a fork and
/// exec costs ~0.1 s of emulated CPU, so more only lengthen the test.
const WORKLOAD: &str = r#"
work() {
    p=$1
    echo "check: $p: nproc $(nproc), online $(cat /sys/devices/system/cpu/online)"
    for cpu in 0 1; do
        taskset -c $cpu sh -c 'i=0; while [ $i -lt 10000 ]; do i=$((i+1)); done
            echo "ran on cpu $(cut -d" " -f39 /proc/self/stat), counted to $i"' > /tmp/pin$cpu &
    done
    wait
    for cpu in 0 1; do echo "check: $p: pinned to $cpu: $(cat /tmp/pin$cpu)"; done
    for j in 1 2 3 4; do
        (seq 1 5000 | sort -r | sort -n | md5sum | cut -c1-8; seq 1 5000 | xargs -n 250 echo | wc -l) > /tmp/sort$j &
    done
    wait
    for j in 1 2 3 4; do echo "check: $p: pipeline $j: $(cat /tmp/sort$j | tr '\n' ' ')"; done
}
"#;

/// The domU's init: devtmpfs (a shell's background jobs open `/dev/null`),
/// the workload in a shell of its own, then a last line dom0 waits for.
fn domu_init() -> String {
    format!(
        r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /tmp
/bin/busybox --install -s
# Linux runs /sbin/poweroff when the toolstack asks for a shutdown.
rm -f /sbin/poweroff
printf '#!/bin/sh\n/bin/busybox poweroff -f\n' > /sbin/poweroff
chmod 755 /sbin/poweroff
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
cat > /work.sh <<'END'
{WORKLOAD}
work domU
END
sh /work.sh 2>&1
echo "domU: workload done"
while true; do sleep 5; done
"#
    )
}

/// dom0's script: the workload in dom0, its vCPUs as xl sees them, then a
/// domU with two vCPUs doing the same.
const DOM0_SCRIPT: &str = r#"
c() { echo "check: $*"; }
# Where the time goes: seconds since dom0 booted, per phase.
t() { echo "info: t=$(cut -d' ' -f1 /proc/uptime) $*"; }
t "script starts"
work dom0
t "dom0 workload done"
# Two CPU-bound loops, one pinned to each vCPU: from the hypervisor's side
# (xl vcpu-list's CPU and State columns) both physical CPUs run a dom0
# vCPU at once at least once in a few looks; from dom0's, each vCPU's
# user time in /proc/stat grows by more than a few ticks.
ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $4 }' /proc/stat; }
u0=$(ticks 0); u1=$(ticks 1)
for cpu in 0 1; do
    taskset -c $cpu sh -c 'i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done' &
done
both=no
for look in 1 2 3 4 5 6 7 8 9 10; do
    r=$(xl vcpu-list Domain-0 | awk '$5 ~ /^r/ { print $4 }' | sort -u | tr '
' ' ')
    [ "$r" = "0 1 " ] && both=yes
    echo "info: look $look: dom0 vCPUs running on CPUs: $r"
    [ $both = yes ] && break
done
wait
c "dom0 vCPUs ran on both physical CPUs at once: $both"
t "parallel loops done"
d0=$(( $(ticks 0) - u0 )); d1=$(( $(ticks 1) - u1 ))
echo "info: busy ticks: cpu0 $d0, cpu1 $d1"
[ $d0 -gt 10 ] && [ $d1 -gt 10 ] && c "both dom0 vCPUs made progress"
# Hard affinity: vCPU 1 pinned to CPU 1 runs there (vcpu-list's CPU and
# Affinity columns), then back to every CPU.
xl vcpu-pin Domain-0 1 1; c "vcpu-pin 1 1: exit $?"
taskset -c 1 sh -c 'i=0; while [ $i -lt 5000 ]; do i=$((i+1)); done'
c "vcpu 1 pinned: $(xl vcpu-list Domain-0 | awk '$3 == 1 { print "cpu", $4, "affinity", $7, $8, $9 }')"
xl vcpu-pin Domain-0 1 all; c "vcpu-pin 1 all: exit $?"
c "vcpu 1 unpinned: $(xl vcpu-list Domain-0 | awk '$3 == 1 { print "affinity", $7, $8, $9 }')"
xl vcpu-pin Domain-0 1 2; c "vcpu-pin 1 2: exit $?"
c "dom0 vcpu-list: $(xl vcpu-list Domain-0 | tail -n +2 | wc -l) vCPUs"
cat > /etc/xen/smp.cfg <<'EOF'
name = "smp"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet"
memory = 160
vcpus = 2
on_poweroff = "destroy"
EOF
xl create /etc/xen/smp.cfg; c "create: exit $?"
t "domU created"
for i in $(seq 400); do
    grep -q "domU: workload done" /var/log/xen/console/guest-smp.log 2>/dev/null && break
    sleep 1
done
t "domU workload done"
tr -d '\r' < /var/log/xen/console/guest-smp.log | grep '^check: ' | sed 's/^check: /check: console: /'
c "domU: $(xl list smp | tail -1 | awk '{ print $1, $4 }') vCPUs"
c "domU vcpu-list: $(xl vcpu-list smp | tail -n +2 | wc -l) vCPUs"
xl shutdown -w smp; c "shutdown -w: exit $?"
# shutdown -w returns once the domain has shut down, as Xen's xl does;
# its monitor destroys it a moment later.
for i in $(seq 60); do xl list smp >/dev/null 2>&1 || break; sleep 1; done
xl list smp >/dev/null 2>&1 || c "smp is gone"
t "domU gone"
"#;

#[test]
fn linux_with_two_vcpus_on_two_cpus_as_dom0_and_as_a_domu_on_xenish_as_on_xen() {
    let kernel = tests::debian::linux().unwrap_or_else(|e| panic!("{e}"));
    let kernel = std::fs::read(kernel).unwrap_or_else(|e| panic!("{e}"));
    let initrd = tests::linux::initramfs("vcpus-domu", &domu_init()).unwrap_or_else(|e| panic!("{e}"));
    let initrd = std::fs::read(initrd).unwrap_or_else(|e| panic!("{e}"));
    let extra = [("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, initrd)];
    let script = format!("{WORKLOAD}{DOM0_SCRIPT}");
    let mut scenario = Scenario::new("vcpus", &script, &extra);
    scenario.xen_args = "sched=credit";
    scenario.common_args = "dom0_max_vcpus=2";
    scenario.smp = Some(2);
    scenario.limit = Duration::from_secs(900);
    let (xenish, xen) = scenario.both();
    let sorted = "check: {p}: pipeline {j}: a5a208cd 20";
    let mut expected: Vec<String> = Vec::new();
    for (p, prefix) in [("dom0", "check: "), ("domU", "check: console: ")] {
        let p_line = |s: &str| format!("{prefix}{}", s.replace("{p}", p).trim_start_matches("check: "));
        expected.push(p_line("check: {p}: nproc 2, online 0-1"));
        for cpu in 0..2 {
            expected.push(p_line(&format!("check: {{p}}: pinned to {cpu}: ran on cpu {cpu}, counted to 10000")));
        }
        for j in 1..=4 {
            expected.push(p_line(&sorted.replace("{j}", &j.to_string())));
        }
    }
    for l in [
        "check: dom0 vCPUs ran on both physical CPUs at once: yes",
        "check: both dom0 vCPUs made progress",
        "check: vcpu-pin 1 1: exit 0",
        "check: vcpu 1 pinned: cpu 1 affinity 1 / all",
        "check: vcpu-pin 1 all: exit 0",
        "check: vcpu 1 unpinned: affinity all / all",
        "check: vcpu-pin 1 2: exit 1",
        "check: dom0 vcpu-list: 2 vCPUs",
        "check: create: exit 0",
        "check: domU: smp 2 vCPUs",
        "check: domU vcpu-list: 2 vCPUs",
        "check: shutdown -w: exit 0",
        "check: smp is gone",
    ] {
        expected.push(l.into());
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    compare::expect_all(&xenish, &expected);
    compare::expect_all(&xen, &expected);
    compare::assert_same(&xenish, &xen, &[]);
    xenish.expect_no("xenish: d1 crashed");
}
