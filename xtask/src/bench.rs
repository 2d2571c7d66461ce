//! `cargo xtask bench`: the benchmark kernel on xenish and on Xen 4.17, in
//! the same QEMU configuration, alternating, with a table of medians and
//! ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tests::images::workspace_root;
use tests::{Boot, Exit};

/// The operations the bench kernel measures, in its order.
const OPS: &[&str] = &[
    "null_hypercall",
    "mmu_update_1pte",
    "update_va_mapping_invlpg",
    "evtchn_roundtrip",
    "grant_copy_4k",
    "memcpy_4k",
    "pagefault_bounce",
    "syscall_roundtrip",
];

/// One hypervisor's result for one operation in one boot.
type Run = BTreeMap<String, Option<u64>>;

/// Parses the bench kernel's `bench: <op> median=<c> ...` lines.
fn parse(serial: &str) -> Run {
    let mut run = Run::new();
    for line in serial.lines() {
        let Some(rest) = line.split("bench: ").nth(1) else { continue };
        let mut words = rest.split_whitespace();
        let (Some(op), Some(what)) = (words.next(), words.next()) else { continue };
        if !OPS.contains(&op) {
            continue;
        }
        let median = what.strip_prefix("median=").and_then(|m| m.parse().ok());
        run.insert(op.to_string(), median);
    }
    run
}

fn boot(hypervisor: &Path, cmdline: &str, bench: &Path, cpu: &str, deterministic: bool) -> Result<Run, String> {
    let mut b = Boot::with_hypervisor(hypervisor.to_path_buf())
        .cpu(cpu)
        .cmdline(cmdline)
        .module(bench.to_path_buf(), "bench")
        .until("bench: done")
        .timeout(Duration::from_secs(600));
    if deterministic {
        b = b.qemu_extra(&["-icount", "shift=0,align=off,sleep=off", "-rtc", "clock=vm"]);
    }
    let out = b.run();
    if !out.serial.contains("bench: done") {
        return Err(format!("the bench kernel did not finish ({:?})\n{}", out.exit, out.serial));
    }
    let _ = matches!(out.exit, Exit::Marker);
    Ok(parse(&out.serial))
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// The groups of rows `--only` can pick, in the order they run.
pub const SECTIONS: &[&str] = &["hypercalls", "toolstack", "drivers"];

/// Runs the benchmark and prints and writes the table: the sections in
/// `only`, or all of them if it is empty.
pub fn run(runs: &Option<usize>, deterministic: bool, only: &[String]) -> Result<ExitCode, String> {
    let want = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    tests::tools::ensure()?;
    let images = tests::images::build(&workspace_root().join("target"))?;
    let xen = tests::debian::xen()?;
    let mut md = String::new();
    let mut json = String::from("{\n");
    if want("hypercalls") {
        hypercalls(&images, &xen, runs, deterministic, &mut md, &mut json)?;
    }
    if deterministic && (want("toolstack") || want("drivers")) {
        eprintln!(
            "xtask bench: the toolstack and driver rows run in wall-clock mode only (a Linux dom0 under -icount is too slow)"
        );
    } else if want("toolstack") || want("drivers") {
        let tools = crate::build_tools()?;
        if want("toolstack") {
            md.push_str(&crate::bench_dom0::run(images.hypervisor.clone(), xen.clone(), images.guest("xsguest"))?);
        }
        if want("drivers") {
            let (rows, items) = crate::bench_drivers::run(images.hypervisor.clone(), xen.clone(), &tools)?;
            md.push_str(&rows);
            let _ = write!(json, "  \"drivers\": [\n{items}  ],\n");
        }
    }
    let _ = writeln!(
        json,
        "  \"sections\": [{}]\n}}",
        SECTIONS.iter().filter(|s| want(s)).map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
    );
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("results.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("results.md"), md).map_err(|e| e.to_string())?;
    eprintln!("xtask bench: wrote {}/results.{{json,md}}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The benchmark kernel's rows (TSC cycles per operation): `runs` boots
/// per hypervisor, alternating.
fn hypercalls(
    images: &tests::Images,
    xen: &Path,
    runs: &Option<usize>,
    deterministic: bool,
    md: &mut String,
    json: &mut String,
) -> Result<(), String> {
    let bench = images.guest("bench");
    let runs = runs.unwrap_or(if deterministic { 1 } else { 3 }).max(1);
    // Xen 4.17's PV guests need SMAP hidden under software emulation; both
    // hypervisors get the same CPU model.
    let cpu = "max,-smap";
    let (mut ours, mut theirs): (Vec<Run>, Vec<Run>) = (Vec::new(), Vec::new());
    for i in 0..runs {
        eprintln!(
            "xtask bench: run {}/{}: xenish{}",
            2 * i + 1,
            2 * runs,
            if deterministic { " (-icount)" } else { "" }
        );
        ours.push(boot(&images.hypervisor, "dom0_mem=64M", &bench, cpu, deterministic)?);
        eprintln!("xtask bench: run {}/{}: Xen 4.17", 2 * i + 2, 2 * runs);
        theirs.push(boot(xen, &format!("{} dom0_mem=64M", tests::debian::XEN_CMDLINE), &bench, cpu, deterministic)?);
    }
    let pick = |runs: &[Run], op: &str| -> Option<u64> {
        let vals: Vec<u64> = runs.iter().filter_map(|r| r.get(op).copied().flatten()).collect();
        (vals.len() == runs.len()).then(|| median(vals)).flatten()
    };
    md.push_str(
        "| operation | xenish median (cycles) | Xen 4.17 median (cycles) | xenish / Xen |\n|---|---:|---:|---:|\n",
    );
    json.push_str("  \"unit\": \"TSC cycles (median of per-boot medians)\",\n");
    let _ = writeln!(json, "  \"deterministic\": {deterministic},\n  \"runs\": {runs},\n  \"operations\": [");
    println!("{:<26} {:>14} {:>14} {:>8}", "operation", "xenish", "Xen 4.17", "ratio");
    for (n, op) in OPS.iter().enumerate() {
        let (a, b) = (pick(&ours, op), pick(&theirs, op));
        let show = |v: Option<u64>| v.map_or("missing".to_string(), |c| c.to_string());
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
            _ => "-".to_string(),
        };
        println!("{:<26} {:>14} {:>14} {:>8}", op, show(a), show(b), ratio);
        let _ = writeln!(md, "| {op} | {} | {} | {ratio} |", show(a), show(b));
        let num = |v: Option<u64>| v.map_or("null".to_string(), |c| c.to_string());
        let sep = if n + 1 == OPS.len() { "" } else { "," };
        let _ = writeln!(json, "    {{ \"op\": \"{op}\", \"xenish\": {}, \"xen\": {} }}{sep}", num(a), num(b));
    }
    json.push_str("  ],\n");
    Ok(())
}

#[cfg(test)]
mod tests_ {
    use super::*;

    #[test]
    fn parses_both_consoles() {
        let run = parse("(d0) bench: null_hypercall median=1970 p99=2066 n=1000\nbench: mmu_update_1pte missing Enosys\nbench: bogus median=1\n");
        assert_eq!(run.get("null_hypercall"), Some(&Some(1970)));
        assert_eq!(run.get("mmu_update_1pte"), Some(&None));
        assert_eq!(run.len(), 2);
    }
}
