//! `cargo xtask bench --only xpti`: what XPTI costs. The benchmark kernel
//! on xenish with `xpti=off` and with `xpti=on`, alternating, in the same
//! QEMU configuration as the hypercall rows; a table of medians and the
//! on/off ratio per operation. (QEMU's CPU says AMD, where xenish, as Xen,
//! leaves XPTI off by default: the hypercall rows' xenish column is the
//! `off` one here.)

use std::fmt::Write as _;

use crate::bench::{boot, median, Run, OPS};

/// The two configurations: (column, command line).
const SIDES: [(&str, &str); 2] = [("xpti=off", "dom0_mem=64M xpti=off"), ("xpti=on", "dom0_mem=64M xpti=on")];

/// Runs the rows and appends them to `md` and `json` (as `"xpti": [...]`).
pub fn run(
    images: &tests::Images,
    runs: usize,
    deterministic: bool,
    md: &mut String,
    json: &mut String,
) -> Result<(), String> {
    let bench = images.guest("bench");
    let mut results: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for i in 0..runs {
        for (s, (name, cmdline)) in SIDES.iter().enumerate() {
            eprintln!("xtask bench: XPTI rows, run {}/{runs}: xenish {name}", i + 1);
            let (run, serial) = boot(&images.hypervisor, cmdline, &bench, "max,-smap", deterministic)?;
            let want = if s == 0 { "Dom0 disabled, DomU disabled" } else { "Dom0 enabled, DomU enabled" };
            if !serial.contains(want) {
                return Err(format!("xenish {name}: the boot log does not say '{want}'"));
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
        "\n| PV operation ({unit}, median) | xenish xpti=off | xenish xpti=on | on / off |\n|---|---:|---:|---:|\n"
    );
    println!("\n{:<26} {:>12} {:>12} {:>7}   ({unit}; XPTI's cost)", "operation", "xpti=off", "xpti=on", "on/off");
    let mut items = Vec::new();
    for op in OPS {
        let (off, on) = (pick(&results[0], op), pick(&results[1], op));
        let show = |v: Option<u64>| v.map_or("missing".to_string(), |c| c.to_string());
        let ratio = match (on, off) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
            _ => "-".to_string(),
        };
        println!("{op:<26} {:>12} {:>12} {ratio:>7}", show(off), show(on));
        let _ = writeln!(md, "| {op} | {} | {} | {ratio} |", show(off), show(on));
        let num = |v: Option<u64>| v.map_or("null".to_string(), |c| c.to_string());
        items.push(format!("    {{ \"op\": \"{op}\", \"xpti_off\": {}, \"xpti_on\": {} }}", num(off), num(on)));
    }
    let _ = write!(json, "  \"xpti\": [\n{}\n  ],\n", items.join(",\n"));
    Ok(())
}
