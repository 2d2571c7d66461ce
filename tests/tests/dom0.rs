//! The control domain: Debian's stock Linux as dom0 with the dom0 image
//! (busybox, Xen's kernel modules, our toolstack), on xenish and on Xen
//! 4.17 in the same QEMU. The modules load, xenfs mounts, our xenstored
//! starts and dom0's kernel connects to it, the XenStore tools work, and
//! every device binding (privcmd, evtchn, gntdev, gntalloc,
//! xenbus_backend) is exercised through its device file by
//! `xen-devcheck`. What the scripts print is compared line for line
//! between the two hypervisors.

use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::linux::{Hypervisor, CPU};
use tests::{Boot, Outcome};

/// QEMU memory and dom0's share, as for `cargo xtask run`.
const QEMU_MEMORY_MIB: u32 = 1024;
const DOM0_MEM: &str = "dom0_mem=512M";

/// Boots the dom0 image named `name` with `script` as its autorun on `hv`,
/// until the script is done.
fn boot(hv: Hypervisor, name: &str, script: &str) -> Outcome {
    let image = dom0::image(name, Some(script), &[]).unwrap_or_else(|e| panic!("{e}"));
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
        .timeout(Duration::from_secs(600))
        .try_run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.serial.contains(AUTORUN_DONE), "dom0's script did not finish on {hv:?}\n{out}");
    out
}

/// The lines a script printed with `prefix`, from the prefix on.
fn lines(out: &Outcome, prefix: &str) -> Vec<String> {
    out.serial.lines().filter_map(|l| l.find(prefix).map(|at| l[at..].trim_end().to_string())).collect()
}

/// Runs `script` on both hypervisors and returns what each printed with
/// `prefix`, after checking they agree.
fn same_on_both(name: &str, script: &str, prefix: &str) -> Vec<String> {
    let (xenish, xen) = std::thread::scope(|s| {
        let a = s.spawn(|| boot(Hypervisor::Xenish, &format!("{name}-xenish"), script));
        let b = s.spawn(|| boot(Hypervisor::Xen, &format!("{name}-xen"), script));
        (a.join().unwrap_or_else(|_| panic!("xenish boot")), b.join().unwrap_or_else(|_| panic!("xen boot")))
    });
    xenish.expect_no("xenish: d0 crashed").expect_no("xenish: PANIC");
    let (a, b) = (lines(&xenish, prefix), lines(&xen, prefix));
    assert_eq!(a, b, "xenish and Xen 4.17 differ\n--- xenish ---\n{xenish}\n--- xen ---\n{xen}");
    a
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
    let lines = same_on_both("control", &script, "check: ");
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
}
