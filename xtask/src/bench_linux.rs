//! The Linux-level rows of `cargo xtask bench`: Debian's Linux as dom0
//! with `xenish-linuxbench` as its `/init`, on xenish, on Xen 4.17 as
//! configured by default and on Xen 4.17 with its speculative-execution
//! mitigations off, in the same QEMU (`-cpu max,-smap`, 1 GiB, one CPU).
//!
//! The measuring program reads QEMU's virtual clock (`CLOCK_MONOTONIC`;
//! `CLOCK_BOOTTIME` for the boot row): nanoseconds in wall-clock mode,
//! instructions under `-icount shift=0` (one per nanosecond).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::dom0::{self, OwnDaemons, AUTORUN_DONE};
use tests::Boot;

/// The rows, in the order the program prints them, with what one
/// operation is.
pub const ROWS: &[(&str, &str)] = &[
    ("boot_to_init", "kernel start to /init"),
    ("fork_exit", "fork + exit + wait, x1000"),
    ("fork_exec", "fork + exec + exit + wait, x200"),
    ("pipe_roundtrip", "1-byte pipe write + read, one process, x10000"),
    ("ctxsw_pingpong", "1-byte pipe ping-pong, two processes, x10000"),
    ("touch_unmap_64m", "mmap, touch every page, munmap 64 MiB"),
];

/// The Xen 4.17 command line options that turn its speculative-execution
/// mitigations off (`spec-ctrl=no` also sets XPTI and PV L1TF shadowing
/// off where not given; eager FPU switching stays on, which every boot of
/// Xen here needs under QEMU: see `tests::debian::XEN_CMDLINE`).
pub const XEN_NO_MITIGATIONS: &str = "spec-ctrl=no,eager-fpu xpti=no pv-l1tf=no";

/// What xenish does against speculative execution: XPTI as `xpti=` says
/// (its boot log has the line), none of Xen's other entry/exit mitigations
/// (IBPB, RSB overwrite, VERW, `MSR_SPEC_CTRL` switching, BHB clearing,
/// retpolines).
pub const XENISH_MITIGATIONS: &str =
    "XPTI as xpti= says (off by default here: QEMU's CPU says AMD, as on Xen); no IBPB, RSB overwrite, VERW, MSR_SPEC_CTRL, BHB clearing";

/// One boot's rows: nanoseconds (or instructions) per operation.
pub type Run = BTreeMap<String, u64>;

/// Reads the program's `linuxbench: ROW ns=TOTAL n=N` lines into per-
/// operation values (rounded down).
pub fn parse(serial: &str) -> Run {
    let mut run = Run::new();
    for line in serial.lines() {
        let Some(rest) = line.split("linuxbench: ").nth(1) else { continue };
        let mut words = rest.split_whitespace();
        let Some(row) = words.next().filter(|r| ROWS.iter().any(|(k, _)| k == r)) else { continue };
        let (mut ns, mut n) = (None, None);
        for kv in words {
            match kv.split_once('=') {
                Some(("ns", v)) => ns = v.parse::<u64>().ok(),
                Some(("n", v)) => n = v.parse::<u64>().ok().filter(|&n| n > 0),
                _ => {}
            }
        }
        if let (Some(ns), Some(n)) = (ns, n) {
            run.insert(row.to_string(), ns / n);
        }
    }
    run
}

/// The operation count (`n=`) the program printed for `row`.
pub fn operations(serial: &str, row: &str) -> Option<u64> {
    serial.lines().filter_map(|l| l.split("linuxbench: ").nth(1)).find_map(|rest| {
        let mut words = rest.split_whitespace();
        (words.next() == Some(row)).then_some(())?;
        words.find_map(|kv| kv.strip_prefix("n=")).and_then(|v| v.parse().ok())
    })
}

/// Xen's boot report of its speculative-execution mitigations: the lines
/// from `Speculative mitigation facilities:` to the PV L1TF line, without
/// the `(XEN)` prefix and hardware-only detail.
pub fn xen_mitigations(serial: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in serial.lines() {
        let text = line.split("(XEN) ").nth(1).unwrap_or(line).trim_end();
        if text.starts_with("Speculative mitigation facilities") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        let t = text.trim_start();
        let wanted = ["Xen settings", "Support for", "XPTI", "PV L1TF", "Xen BTI", "Other"];
        if wanted.iter().any(|w| t.starts_with(w)) {
            out.push(t.to_string());
        }
        if t.starts_with("PV L1TF") {
            break;
        }
    }
    out
}

/// The initramfs: the measuring program as `/init`, nothing else.
pub fn initramfs(tools: &Path) -> Result<PathBuf, String> {
    tests::linuxbench::initramfs(tools, "linuxbench")
}

/// One hypervisor configuration the rows run on.
pub struct Side {
    /// The column's name.
    pub name: &'static str,
    /// The hypervisor image.
    pub image: PathBuf,
    /// Its command line.
    pub cmdline: String,
}

/// The three configurations: xenish, Xen 4.17 as configured by default,
/// Xen 4.17 with [`XEN_NO_MITIGATIONS`].
pub fn sides(xenish: &Path, xen: &Path, dom0_mem: &str) -> [Side; 3] {
    [
        Side { name: "xenish", image: xenish.to_path_buf(), cmdline: dom0_mem.to_string() },
        Side {
            name: "Xen 4.17",
            image: xen.to_path_buf(),
            cmdline: format!("{} {dom0_mem}", tests::debian::XEN_CMDLINE),
        },
        Side {
            name: "Xen 4.17, mitigations off",
            image: xen.to_path_buf(),
            cmdline: format!("{} {XEN_NO_MITIGATIONS} {dom0_mem}", tests::debian::XEN_CMDLINE),
        },
    ]
}

/// The QEMU options of `--deterministic`: one instruction per virtual
/// nanosecond, idle time warped over.
pub const ICOUNT: &[&str] = &["-icount", "shift=0,align=off,sleep=off", "-rtc", "clock=vm"];

/// What the program prints last.
pub const DONE: &str = "linuxbench: done";

/// Boots Debian's kernel with `initrd` on `side`; `divide` scales the
/// operation counts down (1 for the benchmark).
pub fn boot(side: &Side, initrd: &Path, deterministic: bool, divide: u32) -> Result<tests::Outcome, String> {
    let kernel = tests::debian::linux()?;
    let mut b = Boot::with_hypervisor(side.image.clone())
        .cpu(tests::linux::CPU)
        .memory_mib(tests::linux::QEMU_MEMORY_MIB)
        .cmdline(&side.cmdline)
        .module(kernel, &format!("{} LINUXBENCH_DIVIDE={divide}", tests::linux::KERNEL_CMDLINE))
        .module(initrd.to_path_buf(), "")
        .until(DONE)
        .timeout(Duration::from_secs(1200));
    if deterministic {
        b = b.qemu_extra(ICOUNT);
    }
    let out = b.try_run()?;
    if !out.serial.contains(DONE) {
        return Err(format!("linuxbench did not finish on {} ({:?})\n{}", side.name, out.exit, out.serial));
    }
    Ok(out)
}

/// QEMU's memory for the domU rows: dom0's 512 MiB, the domU's, Xen's.
const DOMU_QEMU_MEMORY_MIB: u32 = 1280;

/// Boots the dom0 image on `side`; dom0 creates the benchmark domU
/// (Debian's Linux with the program as `/init`, counts divided by
/// `divide`) and copies its lines to the serial line. Returns the boot and
/// the domU's lines (as the program printed them).
pub fn boot_domu(
    side: &Side,
    files: &[(&str, u32, Vec<u8>)],
    deterministic: bool,
    divide: u32,
) -> Result<(tests::Outcome, String), String> {
    let script = tests::linuxbench::domu_script(divide, None);
    let image = dom0::image_with("linuxbench-domu", Some(&script), files, OwnDaemons::Start)?;
    let mut b = Boot::with_hypervisor(side.image.clone())
        .cpu(tests::linux::CPU)
        .memory_mib(DOMU_QEMU_MEMORY_MIB)
        .cmdline(&side.cmdline)
        .module(image.kernel, dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(AUTORUN_DONE)
        .timeout(Duration::from_secs(1800));
    if deterministic {
        b = b.qemu_extra(ICOUNT);
    }
    let out = b.try_run()?;
    let (domu, _) = tests::linuxbench::split_domu(&out.serial);
    if !domu.contains(DONE) {
        return Err(format!("linuxbench did not finish in the domU on {} ({:?})\n{}", side.name, out.exit, out.serial));
    }
    Ok((out, domu))
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Where the program runs: as dom0's `/init`, or as a domU's `/init`
/// (created by the toolstack from the dom0 image).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// Debian's Linux as dom0.
    Dom0,
    /// Debian's Linux as a domU, dom0 running the toolstack.
    DomU,
}

impl Guest {
    /// The table's first column and the JSON section.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Guest::Dom0 => ("Linux dom0", "linux"),
            Guest::DomU => ("Linux domU", "linux_domu"),
        }
    }
}

/// Runs the rows `runs` times per configuration (alternating), for each
/// of `guests`, prints the tables and appends them to `md` and `json`;
/// returns Xen's mitigation report per Xen configuration.
pub fn run(
    sides: &[Side; 3],
    tools: &Path,
    runs: usize,
    deterministic: bool,
    guests: &[Guest],
    md: &mut String,
    json: &mut String,
) -> Result<BTreeMap<&'static str, Vec<String>>, String> {
    let mut mitigations = BTreeMap::new();
    for &guest in guests {
        let initrd = if guest == Guest::Dom0 { Some(initramfs(tools)?) } else { None };
        let files = if guest == Guest::DomU { tests::linuxbench::domu_files(tools, false)? } else { Vec::new() };
        let mut results: Vec<Vec<Run>> = vec![Vec::new(); sides.len()];
        // `XENISH_COMPARE=xenish`, as for the comparison tests: xenish's
        // column only (Xen's show as missing), for trying a change.
        let xenish_only = std::env::var("XENISH_COMPARE").is_ok_and(|v| v == "xenish");
        for i in 0..runs {
            for (s, side) in sides.iter().enumerate().take(if xenish_only { 1 } else { sides.len() }) {
                eprintln!(
                    "xtask bench: {} rows, run {}/{runs}: {}{}",
                    guest.names().0,
                    i + 1,
                    side.name,
                    if deterministic { " (-icount)" } else { "" }
                );
                let (out, lines) = match &initrd {
                    Some(initrd) => {
                        let out = boot(side, initrd, deterministic, 1)?;
                        let lines = out.serial.clone();
                        (out, lines)
                    }
                    None => boot_domu(side, &files, deterministic, 1)?,
                };
                if s > 0 {
                    mitigations.insert(side.name, xen_mitigations(&out.serial));
                }
                results[s].push(parse(&lines));
            }
        }
        table(sides, guest, &results, deterministic, md, json);
    }
    Ok(mitigations)
}

/// Prints one guest's table (medians of the runs) and appends it to `md`
/// and `json`.
fn table(
    sides: &[Side; 3],
    guest: Guest,
    results: &[Vec<Run>],
    deterministic: bool,
    md: &mut String,
    json: &mut String,
) {
    let pick = |runs: &[Run], row: &str| -> Option<u64> {
        let vals: Vec<u64> = runs.iter().filter_map(|r| r.get(row).copied()).collect();
        (vals.len() == runs.len()).then(|| median(vals)).flatten()
    };
    let unit = if deterministic { "instructions" } else { "ns" };
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "-".to_string(),
    };
    let show = |v: Option<u64>| v.map_or("missing".to_string(), |c| c.to_string());
    let (label, section) = guest.names();
    let _ = write!(
        md,
        "\n| {label} ({unit} per operation) | xenish | {} | {} | xenish / Xen | xenish / Xen, mitigations off |\n\
         |---|---:|---:|---:|---:|---:|\n",
        sides[1].name, sides[2].name
    );
    println!(
        "\n{label:<18} {:>14} {:>14} {:>14} {:>7} {:>7}   ({unit} per operation; last: Xen with mitigations off)",
        "xenish", "Xen 4.17", "Xen, no mit.", "ratio", "ratio"
    );
    let _ = writeln!(json, "  \"{section}\": [");
    for (n, (row, what)) in ROWS.iter().enumerate() {
        let v: Vec<Option<u64>> = results.iter().map(|r| pick(r, row)).collect();
        let (r1, r2) = (ratio(v[0], v[1]), ratio(v[0], v[2]));
        println!("{row:<18} {:>14} {:>14} {:>14} {r1:>7} {r2:>7}", show(v[0]), show(v[1]), show(v[2]));
        let _ = writeln!(md, "| {row} ({what}) | {} | {} | {} | {r1} | {r2} |", show(v[0]), show(v[1]), show(v[2]));
        let num = |v: Option<u64>| v.map_or("null".to_string(), |c| c.to_string());
        let sep = if n + 1 == ROWS.len() { "" } else { "," };
        let _ = writeln!(
            json,
            "    {{ \"row\": \"{row}\", \"xenish\": {}, \"xen\": {}, \"xen_nomit\": {} }}{sep}",
            num(v[0]),
            num(v[1]),
            num(v[2])
        );
    }
    json.push_str("  ],\n");
}

#[cfg(test)]
mod tests_ {
    use super::*;

    #[test]
    fn reads_rows_per_operation() {
        let run = parse(
            "linuxbench: start\nlinuxbench: boot_to_init ns=1500000 n=1\n[  1.0] x linuxbench: fork_exit ns=2000000 n=1000\n\
             linuxbench: fork_exec ns=12 n=0\nlinuxbench: bogus ns=1 n=1\nlinuxbench: pipe_roundtrip ns=x n=1\n",
        );
        assert_eq!(run.get("boot_to_init"), Some(&1_500_000));
        assert_eq!(run.get("fork_exit"), Some(&2000));
        assert_eq!(run.len(), 2);
    }

    #[test]
    fn reads_a_rows_operation_count() {
        let serial = "(d0) linuxbench: fork_exit ns=2000000 n=1000\nlinuxbench: fork_exec ns=5 n=x\n";
        assert_eq!(operations(serial, "fork_exit"), Some(1000));
        assert_eq!(operations(serial, "fork_exec"), None);
        assert_eq!(operations(serial, "pipe_roundtrip"), None);
    }

    #[test]
    fn reads_xens_mitigation_report() {
        let serial = "(XEN) Speculative mitigation facilities:\n(XEN)   Hardware hints: IBRS_ALL\n\
            (XEN)   Xen settings: BTI-Thunk JMP, SPEC_CTRL: No, Other: IBPB-ctxt\n\
            (XEN)   Support for PV VMs: EAGER_FPU\n(XEN)   XPTI (64-bit PV only): Dom0 disabled, DomU disabled\n\
            (XEN)   PV L1TF shadowing: Dom0 disabled, DomU disabled\n(XEN) Using scheduler: credit2\n";
        let m = xen_mitigations(serial);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("Xen settings: BTI-Thunk JMP"));
        assert!(m[3].starts_with("PV L1TF shadowing"));
    }

    #[test]
    fn xen_without_mitigations_keeps_eager_fpu() {
        let s = sides(Path::new("x"), Path::new("y"), "dom0_mem=512M");
        assert!(s[2].cmdline.contains("spec-ctrl=no,eager-fpu") && s[2].cmdline.ends_with("dom0_mem=512M"));
        assert!(!s[1].cmdline.contains("spec-ctrl=no"));
    }
}
