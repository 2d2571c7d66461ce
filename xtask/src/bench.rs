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
pub const OPS: &[&str] = &[
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
pub type Run = BTreeMap<String, Option<u64>>;

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

/// One boot of the bench kernel: its rows and the serial log.
pub fn boot(
    hypervisor: &Path,
    cmdline: &str,
    bench: &Path,
    cpu: &str,
    deterministic: bool,
) -> Result<(Run, String), String> {
    let mut b = Boot::with_hypervisor(hypervisor.to_path_buf())
        .cpu(cpu)
        .cmdline(cmdline)
        .module(bench.to_path_buf(), "bench")
        .until("bench: done")
        .timeout(Duration::from_secs(600));
    if deterministic {
        b = b.qemu_extra(crate::bench_linux::ICOUNT);
    }
    let out = b.run();
    if !out.serial.contains("bench: done") {
        return Err(format!("the bench kernel did not finish ({:?})\n{}", out.exit, out.serial));
    }
    let _ = matches!(out.exit, Exit::Marker);
    Ok((parse(&out.serial), out.serial))
}

pub fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// The groups of rows `--only` can pick, in the order they run.
pub const SECTIONS: &[&str] = &["hypercalls", "xpti", "scaling", "linux", "linux_domu", "toolstack", "drivers"];

/// Runs the benchmark and prints and writes the table: the sections in
/// `only`, or all of them if it is empty; with `compare`, then prints the
/// change against that earlier `results.json`.
pub fn run(
    runs: &Option<usize>,
    deterministic: bool,
    only: &[String],
    compare: Option<&Path>,
) -> Result<ExitCode, String> {
    let want = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    // Read the earlier results first: a wrong path should not cost a run.
    let earlier = match compare {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("--compare {}: {e}", path.display()))?),
        None => None,
    };
    tests::tools::ensure()?;
    let images = tests::images::build(&workspace_root().join("target"))?;
    let xen = tests::debian::xen()?;
    let mut md = String::new();
    let mut json = String::from("{\n");
    let _ = writeln!(json, "  \"deterministic\": {deterministic},");
    let mut mitigations = BTreeMap::new();
    if want("hypercalls") {
        mitigations.extend(hypercalls(&images, &xen, runs, deterministic, &mut md, &mut json)?);
    }
    if want("xpti") {
        let runs = runs.unwrap_or(if deterministic { 1 } else { 3 }).max(1);
        crate::bench_xpti::run(&images, runs, deterministic, &mut md, &mut json)?;
    }
    if want("scaling") {
        if deterministic {
            eprintln!(
                "xtask bench: the scaling rows are wall-clock throughput only (under -icount QEMU runs one vCPU at a time): skipped"
            );
        } else {
            crate::bench_scaling::run(&images, &xen, runs.unwrap_or(3).max(1), &mut md, &mut json)?;
        }
    }
    let linux_guests: Vec<crate::bench_linux::Guest> =
        [("linux", crate::bench_linux::Guest::Dom0), ("linux_domu", crate::bench_linux::Guest::DomU)]
            .into_iter()
            .filter(|(section, _)| want(section))
            .map(|(_, g)| g)
            .collect();
    let tools = if !linux_guests.is_empty() || (!deterministic && (want("toolstack") || want("drivers"))) {
        Some(crate::build_tools()?)
    } else {
        None
    };
    if let (false, Some(tools)) = (linux_guests.is_empty(), &tools) {
        let sides = crate::bench_linux::sides(&images.hypervisor, &xen, tests::linux::DOM0_MEM);
        let runs = runs.unwrap_or(if deterministic { 1 } else { 3 }).max(1);
        let m = crate::bench_linux::run(&sides, tools, runs, deterministic, &linux_guests, &mut md, &mut json)?;
        for (side, lines) in m {
            mitigations.entry(side).or_insert(lines);
        }
    }
    if deterministic && (want("toolstack") || want("drivers")) {
        eprintln!(
            "xtask bench: the toolstack and driver rows run in wall-clock mode only (a Linux dom0 with domUs under -icount is too slow)"
        );
    } else if let Some(tools) = &tools {
        if want("toolstack") {
            md.push_str(&crate::bench_dom0::run(images.hypervisor.clone(), xen.clone(), images.guest("xsguest"))?);
        }
        if want("drivers") {
            let (rows, items) = crate::bench_drivers::run(images.hypervisor.clone(), xen.clone(), tools)?;
            md.push_str(&rows);
            let _ = write!(json, "  \"drivers\": [\n{items}  ],\n");
        }
    }
    if !mitigations.is_empty() {
        let (text, items) = mitigation_report(&mitigations);
        print!("{text}");
        md.push_str(&text.replace("\n  ", "\n- "));
        let _ = write!(json, "  \"mitigations\": {{\n{items}  }},\n");
    }
    let _ = writeln!(
        json,
        "  \"sections\": [{}]\n}}",
        SECTIONS.iter().filter(|s| want(s)).map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
    );
    if let Some(earlier) = &earlier {
        let text = crate::bench_compare::report(earlier, &json);
        print!("{text}");
        md.push_str(&text);
    }
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("results.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("results.md"), md).map_err(|e| e.to_string())?;
    eprintln!("xtask bench: wrote {}/results.{{json,md}}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// What each side had active against speculative execution: xenish's
/// statement and Xen's own boot report, as text and as JSON members.
fn mitigation_report(xen: &BTreeMap<&'static str, Vec<String>>) -> (String, String) {
    let mut text = String::from("\nSpeculative-execution mitigations active:\n");
    let _ = writeln!(text, "  xenish: {}", crate::bench_linux::XENISH_MITIGATIONS);
    let mut items = format!("    \"xenish\": [\"{}\"]", crate::bench_linux::XENISH_MITIGATIONS);
    for (side, lines) in xen {
        let shown = if lines.is_empty() { "(no report found in the boot log)".to_string() } else { lines.join("; ") };
        let _ = writeln!(text, "  {side}: {shown}");
        let quoted: Vec<String> =
            lines.iter().map(|l| format!("\"{}\"", l.replace('\\', "\\\\").replace('"', "'"))).collect();
        let _ = write!(items, ",\n    \"{side}\": [{}]", quoted.join(", "));
    }
    items.push('\n');
    (text, items)
}

/// The benchmark kernel's rows (TSC cycles per operation, instructions
/// with `--deterministic`): `runs` boots per configuration (xenish, Xen
/// 4.17, Xen 4.17 with its mitigations off), alternating. Returns Xen's
/// mitigation report per Xen configuration.
fn hypercalls(
    images: &tests::Images,
    xen: &Path,
    runs: &Option<usize>,
    deterministic: bool,
    md: &mut String,
    json: &mut String,
) -> Result<BTreeMap<&'static str, Vec<String>>, String> {
    let bench = images.guest("bench");
    let runs = runs.unwrap_or(if deterministic { 1 } else { 3 }).max(1);
    // Xen 4.17's PV guests need SMAP hidden under software emulation; both
    // hypervisors get the same CPU model.
    let cpu = "max,-smap";
    let sides = crate::bench_linux::sides(&images.hypervisor, xen, "dom0_mem=64M");
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); sides.len()];
    let mut mitigations = BTreeMap::new();
    for i in 0..runs {
        for (s, side) in sides.iter().enumerate() {
            eprintln!(
                "xtask bench: PV rows, run {}/{runs}: {}{}",
                i + 1,
                side.name,
                if deterministic { " (-icount)" } else { "" }
            );
            let (run, serial) = boot(&side.image, &side.cmdline, &bench, cpu, deterministic)?;
            if s > 0 {
                mitigations.insert(side.name, crate::bench_linux::xen_mitigations(&serial));
            }
            results[s].push(run);
        }
    }
    let pick = |runs: &[Run], op: &str| -> Option<u64> {
        let vals: Vec<u64> = runs.iter().filter_map(|r| r.get(op).copied().flatten()).collect();
        (vals.len() == runs.len()).then(|| median(vals)).flatten()
    };
    let unit = if deterministic { "instructions" } else { "TSC cycles" };
    let _ = write!(
        md,
        "| PV operation ({unit}, median) | xenish | {} | {} | xenish / Xen | xenish / Xen, mitigations off |\n\
         |---|---:|---:|---:|---:|---:|\n",
        sides[1].name, sides[2].name
    );
    let _ = writeln!(
        json,
        "  \"unit\": \"{unit} (median of per-boot medians)\",\n  \"runs\": {runs},\n  \"operations\": ["
    );
    println!(
        "{:<26} {:>12} {:>12} {:>12} {:>7} {:>7}   ({unit}; last: Xen with mitigations off)",
        "operation", "xenish", "Xen 4.17", "Xen, no mit.", "ratio", "ratio"
    );
    for (n, op) in OPS.iter().enumerate() {
        let v: Vec<Option<u64>> = results.iter().map(|r| pick(r, op)).collect();
        let show = |v: Option<u64>| v.map_or("missing".to_string(), |c| c.to_string());
        let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
            _ => "-".to_string(),
        };
        let (r1, r2) = (ratio(v[0], v[1]), ratio(v[0], v[2]));
        println!("{op:<26} {:>12} {:>12} {:>12} {r1:>7} {r2:>7}", show(v[0]), show(v[1]), show(v[2]));
        let _ = writeln!(md, "| {op} | {} | {} | {} | {r1} | {r2} |", show(v[0]), show(v[1]), show(v[2]));
        let num = |v: Option<u64>| v.map_or("null".to_string(), |c| c.to_string());
        let sep = if n + 1 == OPS.len() { "" } else { "," };
        let _ = writeln!(
            json,
            "    {{ \"op\": \"{op}\", \"xenish\": {}, \"xen\": {}, \"xen_nomit\": {} }}{sep}",
            num(v[0]),
            num(v[1]),
            num(v[2])
        );
    }
    json.push_str("  ],\n");
    Ok(mitigations)
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
