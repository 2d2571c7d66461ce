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
//!   (`/etc/xen/demo.cfg`: Debian's kernel with a busybox shell), starts
//!   from its config and reaches its shell.

use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::linux::{Hypervisor, CPU};
use tests::{Boot, Outcome};

/// QEMU memory and dom0's share, as for `cargo xtask run`.
const QEMU_MEMORY_MIB: u32 = 1024;
const DOM0_MEM: &str = "dom0_mem=512M";

/// Boots the dom0 image `name` with `script` and the test guests `guests`
/// in `/root` on `hv`, until the script is done. The guest name `demo`
/// stands for the demo guest of `cargo xtask run` (`/etc/xen/demo.cfg`).
fn boot(hv: Hypervisor, name: &str, script: &str, guests: &[&str]) -> Outcome {
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
    let image = dom0::image(name, Some(script), &extra).unwrap_or_else(|e| panic!("{e}"));
    let (hypervisor, cmdline) = match hv {
        Hypervisor::Xenish => {
            (tests::images().hypervisor.clone(), format!("{DOM0_MEM} {}", tests::qemu::XENISH_TEST_OPTIONS))
        }
        Hypervisor::Xen => (
            tests::debian::xen().unwrap_or_else(|e| panic!("{e}")),
            format!("console=com1 com1=115200,8n1 sched=credit {DOM0_MEM}"),
        ),
    };
    let out = Boot::with_hypervisor(hypervisor)
        .cpu(CPU)
        .memory_mib(QEMU_MEMORY_MIB)
        .cmdline(&cmdline)
        .module(image.kernel, dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(AUTORUN_DONE)
        .timeout(Duration::from_secs(1500))
        .try_run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.serial.contains(AUTORUN_DONE), "dom0's script did not finish on {hv:?}\n{out}");
    out
}

/// The `check: ` lines of a boot.
fn checks(out: &Outcome) -> Vec<String> {
    out.serial.lines().filter_map(|l| l.find("check: ").map(|at| l[at..].trim_end().to_string())).collect()
}

/// Runs `script` on both hypervisors (in parallel) and returns the
/// `check: ` lines after checking they agree.
fn same_on_both(name: &str, script: &str, guests: &[&str]) -> Vec<String> {
    let (xenish, xen) = std::thread::scope(|s| {
        let a = s.spawn(|| boot(Hypervisor::Xenish, &format!("{name}-xenish"), script, guests));
        let b = s.spawn(|| boot(Hypervisor::Xen, &format!("{name}-xen"), script, guests));
        (a.join().unwrap_or_else(|_| panic!("xenish boot")), b.join().unwrap_or_else(|_| panic!("xen boot")))
    });
    xenish.expect_no("xenish: PANIC").expect_no("xenish: d0 crashed");
    let (a, b) = (checks(&xenish), checks(&xen));
    assert_eq!(a, b, "xenish and Xen 4.17 differ\n--- xenish ---\n{xenish}\n--- xen ---\n{xen}");
    a
}

/// Shell helpers the scripts share: `c` prints a check line; `start NAME
/// [EXTRA]` writes an xl.cfg for the test guest NAME and creates it;
/// `wait_key PATH SECS` waits for a XenStore node; `console NAME` prints the
/// guest's console log (from xenconsoled) as check lines.
const HELPERS: &str = r#"
c() { echo "check: $*"; }
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
    grep -q "poweroff' ends this guest" /var/log/xen/console/guest-demo.log 2>/dev/null && break
    sleep 1; i=$((i+1))
done
grep -o "demo: Debian's Linux [^,]*, a domU on xen" /var/log/xen/console/guest-demo.log | sed 's/^/check: /'
c "listed as $(xl list demo | tail -1 | tr -s ' ' | cut -d' ' -f1-4)"
xl destroy demo; c "xl destroy: exit $?"
"#;

/// Every scenario in one boot per hypervisor (boots are what the suite's
/// time goes to), one after the other in dom0.
#[test]
fn dom0_serves_xenstore_grants_and_events_to_domus_on_xenish_as_on_xen() {
    let script = format!("{HELPERS}{XSGUEST}{XSHOSTILE}{GRANTER}{DEMO}");
    let lines = same_on_both("domus", &script, &["xsguest", "xshostile", "granter", "demo"]);
    for expected in [
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
        "check: listed as demo 5 256 1",
        "check: xl destroy: exit 0",
    ] {
        assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in\n{}", lines.join("\n"));
    }
    assert!(
        lines.iter().any(|l| l.starts_with("check: demo: Debian's Linux 6.") && l.ends_with(", a domU on xen")),
        "the demo guest's banner:\n{}",
        lines.join("\n")
    );
}
