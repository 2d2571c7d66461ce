//! Xen 4.17's own toolstack in dom0, on xenish and on Xen 4.17 in the same
//! QEMU: Debian's `xen-utils-4.17` (`xl`, libxl, libxc, C xenstored or
//! oxenstored, `xen-init-dom0`, xenconsoled) with its library closure
//! (`tests::xen_tools`), in the dom0 image without this repository's
//! daemons. The script brings the toolstack up as Debian's init scripts
//! do, then runs `xl info`, `xl list`, `xl create` of the `idler` test
//! guest (its console line read back through xenconsoled's log),
//! `xl vcpu-list`, `xl sched-credit` (Xen is booted with `sched=credit`,
//! the scheduler xenish reports), `xl dmesg`, `xl pause`/`unpause` and
//! `xl destroy`. What it prints with `check: ` is compared line for line.
//!
//! Values that legitimately differ are normalised in the script, each
//! for a stated reason (see [`NORMALISE_INFO`]): times, memory figures,
//! the hypervisors' build identities and command lines, the CPU frequency
//! each calibrated, and the capabilities xenish does not have (32-bit PV,
//! shadow paging, grant tables v2).

use std::time::Duration;

use tests::compare::{self, Scenario};
use tests::dom0::OwnDaemons;

/// `xl info` lines whose values differ for stated reasons, with the value
/// replaced by `*`:
/// - `cpu_mhz`: each hypervisor calibrates the TSC against the PIT itself;
/// - `virt_caps`, `xen_caps`: xenish has no shadow paging, no grant table
///   v2 and no 32-bit PV (`xen-3.0-x86_32p`), which Xen's build has;
/// - `total_memory`, `free_memory`: each keeps its own (differently sized)
///   image, heap and frame table;
/// - `xen_extra`, `xen_version`, `xen_changeset`, `cc_*`, `build_id`: the
///   build's identity;
/// - `xen_commandline`: Xen's needs its serial console options;
/// - `host`: the same, but not worth relying on.
const NORMALISE_INFO: &[&str] = &[
    "cpu_mhz",
    "virt_caps",
    "xen_caps",
    "total_memory",
    "free_memory",
    "xen_extra",
    "xen_version",
    "xen_changeset",
    "xen_commandline",
    "cc_compiler",
    "cc_compile_by",
    "cc_compile_domain",
    "cc_compile_date",
    "build_id",
];

/// The script: `$STORE` is `xenstored` or `oxenstored`.
const SCRIPT: &str = r#"
c() { echo "check: $*"; }
# Each line of standard input as a check, blanks collapsed; $2 drops a
# column (`xl list` and `xl vcpu-list` lose Time(s), the CPU time so far,
# which differs from run to run).
cw() { awk -v p="$1" -v drop="${2:-0}" '{ if (drop) $drop = ""; $1 = $1; print "check: " p ": " $0 }'; }
export PATH=/usr/lib/xen-4.17/bin:$PATH
mkdir -p /run/xenstored /run/xen /var/lib/xen /var/lib/xenstored /var/log/xen/console /var/lock
# As Debian's launch-xenstore and xencommons do.
$STORE --pid-file /run/xen/xenstored.pid; c "$STORE: exit $?"
for i in $(seq 30); do [ -S /run/xenstored/socket ] && break; sleep 1; done
xen-init-dom0; c "xen-init-dom0: exit $?"
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest; c "xenconsoled: exit $?"
c "dom0: $(xenstore-read /local/domain/0/name) pool: $(xenstore-read /local/pool/0/name)"

# xl info, with the values that differ for stated reasons normalised.
xl info > /tmp/info; c "info: exit $?"
sed -E "s/^($NORMALISE) *:.*/\1: */; s/ +: /: /" /tmp/info | sed 's/^/check: info: /'
xl list | cw list 6

cat > /etc/xen/idler.cfg <<'EOF'
name = "idler"
kernel = "/root/idler"
memory = 16
extra = "from xl"
EOF
xl create /etc/xen/idler.cfg; c "create: exit $?"
sleep 2
xl list | cw list 6
c "console: $(cat /var/log/xen/console/guest-idler.log | tr -d '\r')"
c "tty: $(xenstore-read /local/domain/1/console/tty | cut -c1-9)"
xl vcpu-list | cw vcpu-list 6
xl sched-credit | cw sched-credit
xl sched-credit -d idler -w 512 -c 50; c "sched-credit set: exit $?"
xl sched-credit -d idler | cw "sched-credit idler"
xl sched-credit -s | cw "sched-credit -s"
xl dmesg > /tmp/dmesg; c "dmesg: exit $?, $([ -s /tmp/dmesg ] && echo some || echo no) output"
xl pause idler; c "pause: exit $?"
xl list idler | cw paused 6
xl unpause idler; c "unpause: exit $?"
xl list idler | cw unpaused 6
xl destroy idler; c "destroy: exit $?"
xl list | cw "after destroy" 6
"#;

/// `xl vcpu-list`'s lines for dom0 without the CPU and state columns
/// when dom0 has a vCPU on each of several CPUs: which of its vCPUs runs
/// `xl` and which one idles, on which CPU, is timing on either hypervisor
/// (xenish once had vCPU 1 running on CPU 0 where Xen had vCPU 0). On one
/// CPU the lines stay whole.
fn any_cpu_for_dom0_vcpus(lines: Vec<String>) -> Vec<String> {
    if tests::qemu::default_smp() < 2 {
        return lines;
    }
    lines
        .into_iter()
        .map(|l| match l.strip_prefix("check: vcpu-list: Domain-0 ") {
            Some(rest) => {
                let mut f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() > 3 {
                    f[2] = "*";
                    f[3] = "*";
                }
                format!("check: vcpu-list: Domain-0 {}", f.join(" "))
            }
            None => l,
        })
        .collect()
}

/// Runs the script with `store` on both hypervisors at once; checks the
/// lines every run must print, and that both printed the same.
fn same_on_both(store: &str) {
    let files = tests::xen_tools::files().unwrap_or_else(|e| panic!("{e}"));
    let idler = std::fs::read(tests::images().guest("idler")).unwrap_or_else(|e| panic!("idler: {e}"));
    let mut extra: Vec<(&str, u32, Vec<u8>)> = files.iter().map(|(p, m, d)| (p.as_str(), *m, d.clone())).collect();
    extra.push(("root/idler", 0o644, idler));
    let normalise = NORMALISE_INFO.join("|");
    let script = format!("STORE={store}\nNORMALISE='{normalise}'\n{SCRIPT}");
    let mut scenario = Scenario::new(&format!("xen-toolstack-{store}"), &script, &extra);
    scenario.daemons = OwnDaemons::Skip;
    // The scheduler xenish reports, so the scheduler commands compare.
    scenario.xen_args = "sched=credit";
    scenario.limit = Duration::from_secs(300);
    let (xenish, xen) = scenario.both();
    // What xenish still refuses, for whoever looks (`--nocapture`).
    for refusal in xenish.serial.lines().filter(|l| l.contains("is not implemented")) {
        eprintln!("{store} on xenish: {refusal}");
    }
    let (a, b) = (compare::lines(&xenish, "check: "), compare::lines(&xen, "check: "));
    let (a, b) = (any_cpu_for_dom0_vcpus(a), any_cpu_for_dom0_vcpus(b));
    let expected = [
        format!("check: {store}: exit 0"),
        "check: xen-init-dom0: exit 0".into(),
        "check: xenconsoled: exit 0".into(),
        "check: dom0: Domain-0 pool: Pool-0".into(),
        "check: info: exit 0".into(),
        "check: info: xen_scheduler: credit".into(),
        "check: create: exit 0".into(),
        "check: list: idler 1 16 1 -b----".into(),
        "check: console: idler: hello from the PV console (from xl)".into(),
        "check: sched-credit set: exit 0".into(),
        "check: sched-credit idler: idler 1 512 50".into(),
        "check: dmesg: exit 0, some output".into(),
        "check: paused: idler 1 16 1 -bp---".into(),
        "check: destroy: exit 0".into(),
    ];
    let missing: Vec<String> = [("xenish", &a), ("Xen", &b)]
        .iter()
        .flat_map(|(hv, lines)| expected.iter().filter(|e| !lines.contains(e)).map(move |e| format!("{hv}: {e}")))
        .collect();
    assert!(
        missing.is_empty() && a == b,
        "missing: {missing:#?}\n--- xenish's checks ---\n{}\n--- Xen's checks ---\n{}\n--- xenish ---\n{xenish}\n--- Xen ---\n{xen}",
        a.join("\n"),
        b.join("\n")
    );
}

#[test]
fn xens_toolstack_with_c_xenstored_runs_on_xenish_as_on_xen() {
    same_on_both("xenstored");
}

#[test]
fn xens_toolstack_with_oxenstored_runs_on_xenish_as_on_xen() {
    same_on_both("oxenstored");
}
