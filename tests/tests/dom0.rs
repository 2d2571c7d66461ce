//! The control domain: Debian's stock Linux as dom0 with the dom0 image
//! (busybox, Xen's kernel modules, our toolstack), on xenish and on Xen
//! 4.17 in the same QEMU. The modules load, xenfs mounts, our xenstored
//! starts and dom0's kernel connects to it, the XenStore tools work, and
//! every device binding (privcmd, evtchn, gntdev, gntalloc,
//! xenbus_backend) is exercised through its device file by
//! `xen-devcheck`. What the scripts print is compared line for line
//! between the two hypervisors.
//!
//! At the end dom0's `/init` runs `reboot -f` on a machine without QEMU's
//! debug-exit device: the hypervisor resets the machine as Xen's
//! `machine_restart` does (QEMU's i440fx has an ACPI 1.0 FADT without a
//! reset register, so both pulse the keyboard controller's reset line),
//! and QEMU, under `-no-reboot`, exits on the reset.

use tests::compare::{self, Scenario};
use tests::qemu::Exit;
use tests::Outcome;

/// Runs `script` on both hypervisors, ending with dom0's reboot, and
/// returns what each printed with `check: `, after checking they agree,
/// with both boots.
fn same_on_both(name: &str, script: &str) -> (Vec<String>, Outcome, Outcome) {
    let mut scenario = Scenario::new(name, script, &[]);
    scenario.reboot = true;
    let (xenish, xen) = scenario.both();
    compare::assert_same(&xenish, &xen, &[]);
    (compare::lines(&xenish, "check: "), xenish, xen)
}

/// The XenStore script: dom0's entries, the CLI tools on the socket and
/// through the kernel's ring, a watch, permissions.
const XENSTORE_SCRIPT: &str = r#"
c() { echo "check: $*"; }
for m in xen_evtchn xen_gntdev xen_gntalloc xen_privcmd xenfs xen_blkback xen_netback; do
    grep -q "^$m " /proc/modules && c "module $m loaded"
done
c "xenfs $(cat /proc/xen/capabilities)"
pidof xenstored >/dev/null && c "xenstored runs"
c "dom0 is $(xenstore-read /local/domain/0/name) with domid $(xenstore-read /local/domain/0/domid)"
c "through the kernel's ring: $(XENSTORED_PATH=/dev/xen/xenbus xenstore-read /local/domain/0/name)"
xenstore-write /test/a 1 /test/b/c "two words" /test/b/d ""
xenstore-ls /test | sed 's/^/check: ls: /'
xenstore-list /test | sed 's/^/check: list: /'
xenstore-read /test/b/c | sed 's/^/check: read: /'
xenstore-exists /test/a && c "a exists"
xenstore-rm /test/a
xenstore-exists /test/a || c "a is gone"
xenstore-read /test/a 2>/dev/null || c "reading a fails with status $?"
xenstore-chmod /test/b n0 r5
xenstore-ls -p /test | sed 's/^/check: perms: /'
# An owner that is no domain would be ENOENT, as in C xenstored.
xenstore-chmod -r /test/b n0 w0
xenstore-ls -p /test | sed 's/^/check: perms -r: /'
xenstore-watch -n 2 /test/w > /tmp/watch &
sleep 1
xenstore-write /test/w/x fired
wait
sed 's/^/check: watch: /' /tmp/watch
xenstore-rm /test
xenstore-exists /test || c "test tree removed"
"#;

/// Both parts in one boot per hypervisor (boots are what the test suite's
/// time goes to): the XenStore script, then `xen-devcheck`.
#[test]
fn xenstored_its_tools_and_every_device_binding_work_in_dom0_on_xenish_as_on_xen() {
    let script = format!(
        "{XENSTORE_SCRIPT}\nxen-devcheck > /tmp/devcheck; st=$?\nsed 's/^/check: /' /tmp/devcheck\necho \"check: devcheck: exit status $st\"\n"
    );
    let (lines, xenish, xen) = same_on_both("control", &script);
    for expected in [
        "check: module xen_gntdev loaded",
        "check: xenfs control_d",
        "check: xenstored runs",
        "check: dom0 is Domain-0 with domid 0",
        "check: through the kernel's ring: Domain-0",
        "check: read: two words",
        "check: a is gone",
        "check: test tree removed",
        "check: devcheck: xenstore: transactions: two conflicting transactions: the first commits, the second gets EAGAIN",
    ] {
        assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in\n{}", lines.join("\n"));
    }
    assert!(lines.iter().any(|l| l.starts_with("check: watch: /test/w")), "the watch fired:\n{}", lines.join("\n"));
    let devcheck: Vec<&String> = lines.iter().filter(|l| l.starts_with("check: devcheck: ")).collect();
    assert!(devcheck.iter().any(|l| l.contains("checks passed")), "{}", lines.join("\n"));
    assert!(!devcheck.iter().any(|l| l.contains("FAILED")), "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l == "check: devcheck: exit status 0"), "{}", lines.join("\n"));
    // dom0's `reboot -f` (SCHEDOP_shutdown, reason reboot) resets the
    // machine: QEMU's SHUTDOWN event says `guest-reset` and no triple
    // fault was logged (a hang would time out, a power-off would say
    // `guest-shutdown`; Xen falls back to a triple fault when the keyboard
    // controller does not reset). xenish logs each attempt before making
    // it: the FADT has no reset register here, and the keyboard
    // controller's reset line is the one that worked (0xcf9 was never
    // tried).
    for (hv, out) in [("xenish", &xenish), ("Xen", &xen)] {
        assert_eq!(out.exit, Exit::Reset, "{hv}: dom0's reboot did not reset the machine\n{out}");
    }
    let resets: Vec<String> = compare::lines(&xenish, "xenish: resetting through ");
    assert_eq!(
        resets,
        ["xenish: resetting through the keyboard controller (0xfe to port 0x64)"],
        "xenish's reset attempts\n{xenish}"
    );
    xenish.expect_line("xenish: the control domain rebooted: resetting the machine");
    xen.expect_line("Hardware Dom0 shutdown: rebooting machine");
}
