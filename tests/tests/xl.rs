//! `xl` in the control domain, on xenish and on Xen 4.17 in the same
//! QEMU: domains built by the userspace builder from an xl.cfg, listed,
//! paused, their PV console served by xenconsoled, destroyed; 5
//! create/destroy cycles that leave free memory and the XenStore tree as
//! they were; bad input refused with one line and no residue; the
//! `on_*` actions; Debian's Linux as a domU with a busybox initramfs.
//! All of it runs in one dom0 boot per hypervisor, one part after the
//! other (each part leaves no domain behind).
//!
//! The domUs: `tiny`, a PV kernel made here (no hypercall page: it writes
//! a line to its console ring, notifies, then sleeps in `SCHEDOP_poll`, or
//! reboots/powers off/crashes if its command line starts with r/p/c);
//! the `hello` test guest; Debian's kernel. What the scripts print with
//! `check: ` is compared line for line between the two hypervisors.

use std::time::Duration;

use tests::compare::{self, Scenario};

/// `tiny`'s code, loaded at 0x1000 (virtual = physical, VIRT_BASE 0);
/// `rsi` holds start_info, whose console page follows two pages later
/// (libxc's layout: start_info, xenstore, console).
///
/// ```text
/// mov rbx, rsi ; lea r12, [rsi+0x2000]           the console ring
/// lea rsi, [rip+msg] ; mov ecx, [rip+msglen]
/// lea rdi, [r12+1024] ; rep movsb                out[]
/// mov eax, [rip+msglen] ; mov [r12+3084], eax    out_prod
/// mov eax, [rbx+0x50] ; mov [rip+port], eax      console.domU.evtchn
/// event_channel_op(EVTCHNOP_send, &port)
/// cmd_line[0]: 'r' reboot, 'p' poweroff, 'c' crash (SCHEDOP_shutdown),
/// else loop { sched_op(SCHEDOP_poll, {no ports, no timeout}) }
/// ```
const TINY_CODE: &[u8] = &[
    0x48, 0x89, 0xf3, 0x4c, 0x8d, 0xa6, 0x00, 0x20, 0x00, 0x00, 0x48, 0x8d, 0x35, 0xc3, 0x00, 0x00, 0x00, 0x8b, 0x0d,
    0xb9, 0x00, 0x00, 0x00, 0x49, 0x8d, 0xbc, 0x24, 0x00, 0x04, 0x00, 0x00, 0xf3, 0xa4, 0x8b, 0x05, 0xa9, 0x00, 0x00,
    0x00, 0x41, 0x89, 0x84, 0x24, 0x0c, 0x0c, 0x00, 0x00, 0x8b, 0x43, 0x50, 0x89, 0x05, 0x90, 0x00, 0x00, 0x00, 0xbf,
    0x04, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x84, 0x00, 0x00, 0x00, 0xb8, 0x20, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f,
    0xb6, 0x83, 0x80, 0x00, 0x00, 0x00, 0x3c, 0x72, 0x74, 0x29, 0x3c, 0x70, 0x74, 0x31, 0x3c, 0x63, 0x74, 0x15, 0xbf,
    0x03, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x46, 0x00, 0x00, 0x00, 0xb8, 0x1d, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb,
    0xeb, 0xc7, 0x05, 0x4f, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0xeb, 0x16, 0xc7, 0x05, 0x43, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0xeb, 0x0a, 0xc7, 0x05, 0x37, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xbf, 0x02, 0x00,
    0x00, 0x00, 0x48, 0x8d, 0x35, 0x2b, 0x00, 0x00, 0x00, 0xb8, 0x1d, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b, 0x66,
    0x0f, 0x1f, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
    0x00, 0x00, 0x00, 0x74, 0x69, 0x6e, 0x79, 0x3a, 0x20, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x66, 0x72, 0x6f, 0x6d,
    0x20, 0x74, 0x68, 0x65, 0x20, 0x50, 0x56, 0x20, 0x63, 0x6f, 0x6e, 0x73, 0x6f, 0x6c, 0x65, 0x0a,
];

/// `tiny` as an ELF64 PV kernel: one PT_LOAD (paddr 0x1000) and a
/// PT_NOTE with GUEST_OS, LOADER, XEN_VERSION, VIRT_BASE 0, ENTRY.
fn tiny_kernel() -> Vec<u8> {
    let mut notes = Vec::new();
    let mut note = |typ: u32, desc: &[u8]| {
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        notes.extend_from_slice(&typ.to_le_bytes());
        notes.extend_from_slice(b"Xen\0");
        notes.extend_from_slice(desc);
        notes.resize(notes.len().next_multiple_of(4), 0);
    };
    note(6, b"tiny\0"); // GUEST_OS
    note(8, b"generic\0"); // LOADER
    note(5, b"xen-3.0\0"); // XEN_VERSION
    note(3, &0u64.to_le_bytes()); // VIRT_BASE
    note(4, &0u64.to_le_bytes()); // PADDR_OFFSET
    note(1, &0x1000u64.to_le_bytes()); // ENTRY
    let notes_off = 64 + 2 * 56;
    let code_off = 0x1000usize;
    let mut f = vec![0u8; 64];
    f[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
    f[16] = 2; // ET_EXEC
    f[18] = 62; // EM_X86_64
    f[20] = 1;
    f[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52] = 64;
    f[54] = 56;
    f[56] = 2;
    let ph = |typ: u32, flags: u32, off: usize, addr: u64, size: usize| {
        let mut p = vec![0u8; 56];
        p[0..4].copy_from_slice(&typ.to_le_bytes());
        p[4..8].copy_from_slice(&flags.to_le_bytes());
        p[8..16].copy_from_slice(&(off as u64).to_le_bytes());
        p[16..24].copy_from_slice(&addr.to_le_bytes());
        p[24..32].copy_from_slice(&addr.to_le_bytes());
        p[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        p[40..48].copy_from_slice(&(size as u64).to_le_bytes());
        p
    };
    f.extend(ph(1, 7, code_off, 0x1000, TINY_CODE.len()));
    f.extend(ph(4, 4, notes_off, 0, notes.len()));
    f.extend_from_slice(&notes);
    f.resize(code_off, 0);
    f.extend_from_slice(TINY_CODE);
    f
}

/// Helpers every script starts with.
const PRELUDE: &str = r#"
c() { echo "check: $*"; }
# xl list without the Time(s) column, which differs run to run.
xlist() { xl list "$@" | awk '{ printf "%s %s %s %s %s\n", $1, $2, $3, $4, $5 }'; }
free_mem() { xl info free_memory | sed 's/.*: //'; }
tree() { xenstore-ls -f / | grep -v '^/tool/' | sort; }
# Waits up to a minute for a condition (the machine may be loaded).
until_true() { for i in $(seq 60); do eval "$1" && return 0; sleep 1; done; return 1; }
# Where the time goes: seconds since dom0 booted, per phase.
t() { echo "info: t=$(cut -d' ' -f1 /proc/uptime) $*"; }
t "script starts"
"#;

/// The tiny guest's script: create, list, console, pause, destroy,
/// cycles, the on_* actions, bad input.
const TINY_SCRIPT: &str = r#"
cat > /etc/xen/tiny.cfg <<'EOF'
# The tiny test kernel.
name = "tiny"
kernel = "/root/tiny"
memory = 16
EOF
free0=$(free_mem)
xl create /etc/xen/tiny.cfg; c "create: exit $?"
sleep 2
xlist | sed 's/^/check: list: /'
c "domid: $(xl domid tiny), domname: $(xl domname 1)"
c "console: $(cat /var/log/xen/console/guest-tiny.log)"
c "tty: $(xenstore-read /local/domain/1/console/tty | cut -c1-9)"
c "store: name=$(xenstore-read /local/domain/1/name) target=$(xenstore-read /local/domain/1/memory/target) type=$(xenstore-read /libxl/1/type)"
xl pause tiny; c "pause: exit $?"
xlist tiny | sed 's/^/check: paused: /'
xl unpause tiny; c "unpause: exit $?"
(sleep 2; printf '\035') | xl console tiny > /tmp/con; c "console client: exit $?"
c "console client read: $(head -1 /tmp/con | tr -d '\r')"
xl rename tiny tiny2; c "rename: exit $?, now $(xl domname 1)"
xl mem-max tiny2 24; c "mem-max: exit $?, static-max $(xenstore-read /local/domain/1/memory/static-max)"
xl mem-set tiny2 12m; c "mem-set: exit $?, target $(xenstore-read /local/domain/1/memory/target)"
xl mem-set tiny2 64 2>/dev/null; c "mem-set above static-max: exit $?"
xl rename tiny2 tiny
c "list -l: $(xl list -l | grep -c '"name": "tiny"')"
xl uptime | head -1 | sed 's/^/check: uptime: /'
xl frobnicate 2>/dev/null; c "unknown command: exit $?"
xl list -z >/dev/null 2>&1; c "bad option: exit $?"
xl destroy nosuch 2>&1 | sed 's/^/check: destroy nosuch: /'
xl destroy tiny; c "destroy: exit $?"
# Xen frees a destroyed domain once its last mappings go (xenconsoled's
# ring, dropped when it sees @releaseDomain): give it a moment.
sleep 1
xlist | sed 's/^/check: after destroy: /'
# The first domain leaves libxl's empty parents (/vm, /libxl, dom0's
# backend/console), as on Xen; from here on the tree must not change.
t "tiny checked"
tree > /tmp/tree0
n=0
# Five cycles: a leak of memory or XenStore entries shows after one; each
# cycle costs seconds of emulated CPU (20 made a third of the Xen boot).
for i in $(seq 5); do
    xl create -q /etc/xen/tiny.cfg "name=\"t$i\"" && xl destroy "t$i" && n=$((n+1))
done
c "cycles: $n of 5"
sleep 1
[ "$(free_mem)" = "$free0" ] && c "free memory unchanged after the cycles" || c "free memory $free0 -> $(free_mem)"
tree > /tmp/tree1
cmp -s /tmp/tree0 /tmp/tree1 && c "xenstore tree unchanged" || { c "xenstore tree changed"; diff /tmp/tree0 /tmp/tree1 | head -20; }

t "cycles done"
# on_crash=preserve keeps the crashed domain, on_poweroff=destroy removes it.
xl create -q /etc/xen/tiny.cfg 'name="crasher"' 'extra="c"' 'on_crash="preserve"'
until_true 'xlist crasher | grep -q "sc-$"'
xlist crasher | sed 's/^/check: preserved: /'
xl destroy crasher
xl create -q /etc/xen/tiny.cfg 'name="leaver"' 'extra="p"'
until_true '! xl list leaver >/dev/null 2>&1' && c "powered-off domain destroyed by its monitor"
# on_reboot=restart: the monitor builds it again from the (edited) file.
cp /etc/xen/tiny.cfg /etc/xen/boot.cfg
echo 'name = "rebooter"' >> /etc/xen/boot.cfg
echo 'extra = "r"' >> /etc/xen/boot.cfg
xl create -q -p /etc/xen/boot.cfg
sed -i 's/^extra.*//' /etc/xen/boot.cfg
old=$(xl domid rebooter)
xl unpause rebooter
for i in $(seq 60); do
    new=$(xl domid rebooter 2>/dev/null)
    [ -n "$new" ] && [ "$new" != "$old" ] && break
    sleep 1
done
[ -n "$new" ] && [ "$new" != "$old" ] && c "rebooted domain came back" || c "reboot: $old -> $new"
xl destroy rebooter

t "on_* actions checked"
# xl create -c attaches to the new domain's console.
(sleep 3; printf '\035') | xl create -q -c /etc/xen/tiny.cfg 'name="attached"' > /tmp/out 2>&1
c "create -c: exit $?, $(grep -c 'tiny: hello from the PV console' /tmp/out) console line"
xl destroy attached

t "create -c checked"
# Bad input: one line, non-zero exit, nothing left behind.
bad() {
    what=$1; shift
    xl create -q "$@" 2>/tmp/err; rc=$?
    c "bad $what: exit $rc, $(wc -l < /tmp/err) line(s)"
    sed "s/^/check: bad $what: /" /tmp/err
}
printf 'name = "s"\nkernel = "/root/tiny"\nmemory 16\n' > /etc/xen/syntax.cfg
bad syntax /etc/xen/syntax.cfg
printf 'name = "u"\nkernel = "/root/tiny"\nmemroy = 16\n' > /etc/xen/unknown.cfg
bad unknown-key /etc/xen/unknown.cfg
bad missing-kernel /etc/xen/tiny.cfg 'kernel="/root/nothing"'
head -c 3000 /dev/urandom > /root/garbage
bad garbage-kernel /etc/xen/tiny.cfg 'kernel="/root/garbage"'
head -c 300 /root/tiny > /root/truncated
bad truncated-kernel /etc/xen/tiny.cfg 'kernel="/root/truncated"'
bad too-much-memory /etc/xen/tiny.cfg 'memory=100000'
xlist | sed 's/^/check: at the end: /'
[ "$(free_mem)" = "$free0" ] && c "free memory unchanged at the end" || c "free memory $free0 -> $(free_mem)"
tree > /tmp/tree2
cmp -s /tmp/tree0 /tmp/tree2 && c "xenstore tree unchanged at the end" || { c "xenstore tree changed at the end"; diff /tmp/tree0 /tmp/tree2 | head -20; }
t "bad input checked"
"#;

/// The whole run: the tiny guest's part, then `hello`'s, then Linux's,
/// in one dom0 boot on each hypervisor; both must print every expected
/// line, and the same `check: ` lines except those starting with one of
/// the `differ` prefixes (numbers or texts that differ between the two).
#[test]
fn xl_manages_tiny_hello_and_linux_domus_on_xenish_as_on_xen() {
    let kernel = tests::debian::linux().unwrap_or_else(|e| panic!("{e}"));
    let kernel = std::fs::read(kernel).unwrap_or_else(|e| panic!("{e}"));
    let initrd = tests::linux::initramfs("xl-domu", DOMU_INIT).unwrap_or_else(|e| panic!("{e}"));
    let initrd = std::fs::read(initrd).unwrap_or_else(|e| panic!("{e}"));
    let hello = std::fs::read(tests::images().guest("hello")).unwrap_or_else(|e| panic!("{e}"));
    let extra = [
        ("root/tiny", 0o644, tiny_kernel()),
        ("root/hello", 0o644, hello),
        ("root/vmlinuz", 0o644, kernel),
        ("root/domu.cpio", 0o644, initrd),
    ];
    let script = format!("{PRELUDE}{TINY_SCRIPT}{HELLO_SCRIPT}{LINUX_SCRIPT}");
    let mut scenario = Scenario::new("xl", &script, &extra);
    scenario.xen_args = "sched=credit";
    scenario.limit = Duration::from_secs(600);
    let (xenish, xen) = scenario.both();
    let expected: Vec<&str> = TINY_EXPECTED.iter().chain(HELLO_EXPECTED).chain(LINUX_EXPECTED).copied().collect();
    compare::expect_all(&xenish, &expected);
    compare::expect_all(&xen, &expected);
    // The free memory xl reports differs between the two.
    let differ = ["check: bad too-much-memory: xl:"];
    compare::assert_same(&xenish, &xen, &differ);
}

/// What the tiny guest's part prints on both hypervisors.
const TINY_EXPECTED: &[&str] = &[
        "check: create: exit 0",
        "check: list: Name ID Mem VCPUs State",
        "check: list: tiny 1 16 1 -b----",
        "check: domid: 1, domname: tiny",
        "check: console: tiny: hello from the PV console",
        "check: tty: /dev/pts/",
        "check: store: name=tiny target=16384 type=pv",
        "check: paused: tiny 1 16 1 -bp---",
        "check: console client: exit 0",
        "check: console client read: tiny: hello from the PV console",
        "check: rename: exit 0, now tiny2",
        "check: mem-max: exit 0, static-max 24576",
        "check: mem-set: exit 0, target 12288",
        "check: mem-set above static-max: exit 1",
        "check: list -l: 1",
        "check: uptime: Name                                ID Uptime",
        "check: unknown command: exit 2",
        "check: bad option: exit 2",
        "check: destroy nosuch: nosuch is an invalid domain identifier (rc=-6)",
        "check: destroy: exit 0",
        "check: cycles: 5 of 5",
        "check: free memory unchanged after the cycles",
        "check: xenstore tree unchanged",
        "check: preserved: crasher 7 16 1 ---sc-",
        "check: powered-off domain destroyed by its monitor",
        "check: rebooted domain came back",
        "check: create -c: exit 0, 1 console line",
        "check: bad syntax: exit 1, 1 line(s)",
        "check: bad syntax: /etc/xen/syntax.cfg:3:8: config parsing error near `16': syntax error, unexpected NUMBER, expecting '=' or '+='",
        "check: bad unknown-key: exit 1, 1 line(s)",
        "check: bad unknown-key: /etc/xen/unknown.cfg:3: unknown configuration key \"memroy\"",
        "check: bad missing-kernel: exit 1, 1 line(s)",
        "check: bad garbage-kernel: exit 1, 1 line(s)",
        "check: bad truncated-kernel: exit 1, 1 line(s)",
        "check: bad too-much-memory: exit 1, 1 line(s)",
        "check: free memory unchanged at the end",
        "check: xenstore tree unchanged at the end",
    ];

/// What `hello`'s part prints on both hypervisors.
const HELLO_EXPECTED: &[&str] = &[
    "check: hello: create: exit 0",
    "check: hello: ran, powered off and was destroyed",
    "check: hello: monitor: reason code 0; action destroy",
];

/// What Linux's part prints on both hypervisors.
const LINUX_EXPECTED: &[&str] = &[
    "check: scheduler: credit",
    "check: create: exit 0",
    "check: console: domU: userspace up",
    "check: list: Name ID Mem VCPUs State",
    "check: list: linux # 128 1 (running)",
    "check: paused: linux # 128 1 (paused)",
    "check: unpause: exit 0",
    "check: console client: exit 0",
    "check: sched-credit set: exit 0",
    "check: sched: Name                                ID Weight  Cap",
    "check: sched: linux # 512   50",
    "check: shutdown -w: exit 0",
    "check: linux is gone",
    "check: free memory unchanged",
];

/// The domU's init: busybox, a `/sbin/poweroff` that powers off (Linux
/// runs it when the toolstack asks for a shutdown), one line on hvc0.
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc
/bin/busybox --install -s
rm -f /sbin/poweroff
printf '#!/bin/sh\n/bin/busybox poweroff -f\n' > /sbin/poweroff
chmod 755 /sbin/poweroff
mount -t proc proc /proc
echo "domU: userspace up, $(cat /proc/meminfo | head -1 | tr -s ' ')"
while true; do sleep 5; done
"#;

/// Debian's Linux as a domU: create from an xl.cfg, its userspace line
/// through xenconsoled, list, pause/unpause, sched-credit, shutdown -w.
const LINUX_SCRIPT: &str = r#"
cat > /etc/xen/linux.cfg <<'EOF'
name = "linux"
type = "pv"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet"
memory = 128
vcpus = 1
on_poweroff = "destroy"
EOF
free0=$(free_mem)
c "scheduler: $(xl info xen_scheduler | sed 's/.*: //')"
xl create /etc/xen/linux.cfg; c "create: exit $?"
t "linux created"
for i in $(seq 150); do
    grep -q "domU: userspace up" /var/log/xen/console/guest-linux.log 2>/dev/null && break
    sleep 1
done
c "console: $(grep -o 'domU: userspace up' /var/log/xen/console/guest-linux.log)"
t "linux up"
# The domid depends on how many domains the parts before created.
xlist linux | sed 's/^linux [0-9]* /linux # /; s/^/check: list: /; s/ [rb-]\{6\}$/ (running)/'
xl pause linux; xlist linux | sed 's/^linux [0-9]* /linux # /; s/^/check: paused: /; s/ -[rb-]p---$/ (paused)/'
xl unpause linux; c "unpause: exit $?"
# xl console attaches to the pty xenconsoled serves; Ctrl-] detaches.
(sleep 3; printf '\035') | xl console linux > /tmp/con; c "console client: exit $?"
xl sched-credit -d linux -w 512 -c 50; c "sched-credit set: exit $?"
xl sched-credit -d linux | sed 's/^linux  *[0-9]*  */linux # /; s/^/check: sched: /'
xl shutdown -w linux; c "shutdown -w: exit $?"
# shutdown -w returns once the domain has shut down, as Xen's xl does;
# its monitor destroys it a moment later.
for i in $(seq 60); do xl list linux >/dev/null 2>&1 || break; sleep 1; done
xl list linux >/dev/null 2>&1 || c "linux is gone"
sleep 1
[ "$(free_mem)" = "$free0" ] && c "free memory unchanged" || c "free memory $free0 -> $(free_mem)"
t "linux checked"
"#;

/// The `hello` test guest (guest-rt, with a HYPERCALL_PAGE note): built
/// by xl, it runs and powers off, and its monitor destroys it. libxc
/// fills a kernel's HYPERCALL_PAGE with `XEN_DOMCTL_hypercall_init` (22),
/// which xenish serves too.
const HELLO_SCRIPT: &str = r#"
printf 'name = "hello"\nkernel = "/root/hello"\nmemory = 16\nextra = "from xl"\n' > /etc/xen/hello.cfg
xl create /etc/xen/hello.cfg 2>/tmp/err; c "hello: create: exit $?"
sed 's/^/check: hello: create said: /' /tmp/err
until_true '! xl list hello >/dev/null 2>&1' && c "hello: ran, powered off and was destroyed"
grep -o 'reason code 0; action destroy' /var/log/xen/xl-hello.log | sed 's/^/check: hello: monitor: /'
t "hello checked"
"#;
