//! `cargo xtask qos`: CPU shares you can see. Boots the dom0 image on
//! xenish (one CPU, QEMU TCG) with four busy Debian Linux domUs — weights
//! 512 and 256, one capped at 10% of the CPU, and one that misbehaves by
//! forking and exec'ing in a loop (a PV guest's process churn is a flood
//! of page-table hypercalls: `mmu_update`, `mmuext_op` pins, TLB
//! flushes) — samples every domain's share of the CPU every
//! [`SAMPLE_SECS`] s from the hypervisor's run-state accounting (`xl top
//! -b`), and writes a Markdown table and an SVG plot of the shares over
//! time against their targets to `target/qos/`.
//!
//! Targets: the busy domUs split the CPU by weight, a cap is a ceiling;
//! with A 512, B 256, C 256 capped at 10 and D 256: C gets 10%, and the
//! other 90% go 2:1:1 to A, B and D (45, 22.5, 22.5). dom0's own small
//! use comes out of everyone's share.

use std::fmt::Write as _;
use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::Boot;

/// Seconds between two samples.
const SAMPLE_SECS: u32 = 2;
/// Samples taken (the first has no previous one and is left out).
const SAMPLES: u32 = 30;

/// One domU of the scenario.
struct Guest {
    name: &'static str,
    weight: u16,
    cap: u16,
    /// What its init does besides reporting.
    work: &'static str,
    /// Its target share of the CPU, percent.
    target: f64,
}

const GUESTS: &[Guest] = &[
    Guest { name: "a-w512", weight: 512, cap: 0, work: "spin", target: 45.0 },
    Guest { name: "b-w256", weight: 256, cap: 0, work: "spin", target: 22.5 },
    Guest { name: "c-cap10", weight: 256, cap: 10, work: "spin", target: 10.0 },
    Guest { name: "d-forker", weight: 256, cap: 0, work: "fork", target: 22.5 },
];

/// The domUs' init: proc and devtmpfs, then either a CPU-bound shell
/// loop or a fork/exec storm (`/bin/true` over and over).
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /dev
/bin/busybox --install -s
mount -t proc proc /proc
mount -t devtmpfs dev /dev
case "$(cat /proc/cmdline)" in
*work=fork*) (while :; do /bin/busybox true; done) & ;;
*) (while :; do :; done) & ;;
esac
echo "qos: working"
while true; do sleep 60; done
"#;

/// dom0's script: create the guests, wait until each works, sample.
fn script() -> String {
    let mut s = String::from(
        r#"
wait_for() { for i in $(seq 400); do grep -q "$2" /var/log/xen/console/guest-$1.log 2>/dev/null && return 0; sleep 1; done; return 1; }
"#,
    );
    for g in GUESTS {
        let _ = write!(
            s,
            r#"
cat > /etc/xen/{name}.cfg <<'EOF'
name = "{name}"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet work={work}"
memory = 128
cpu_weight = {weight}
cap = {cap}
EOF
xl create -q /etc/xen/{name}.cfg || echo "qos-error: xl create {name} failed"
"#,
            name = g.name,
            work = g.work,
            weight = g.weight,
            cap = g.cap
        );
    }
    for g in GUESTS {
        let _ = writeln!(s, "wait_for {} 'qos: working' || echo 'qos-error: {} did not start'", g.name, g.name);
    }
    let _ = write!(
        s,
        r#"
sleep 4
xl sched-credit | sed 's/^/qos-sched: /'
xl top -b -d {SAMPLE_SECS} -i {n} | sed 's/^/qos-top: /'
"#,
        n = SAMPLES + 1
    );
    s
}

/// Each domain's CPU(%) samples, in order, from the `qos-top:` lines
/// (`xl top -b` rows: NAME STATE CPU(sec) CPU(%) ...); the first sample of
/// each, which has no previous one, is left out.
pub fn parse(serial: &str) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for line in serial.lines() {
        let Some(rest) = line.split("qos-top: ").nth(1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(name), Some(pct)) = (f.first(), f.get(3).and_then(|p| p.parse::<f64>().ok())) else { continue };
        if *name == "NAME" {
            continue;
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(pct),
            None => out.push((name.to_string(), Vec::new())),
        }
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// What a guest should get once dom0 has taken `dom0` percent: its cap,
/// or its weight's part of what the capped guests and dom0 leave.
fn expected(g: &Guest, dom0: f64) -> f64 {
    if g.cap != 0 {
        return f64::from(g.cap);
    }
    let caps: f64 = GUESTS.iter().map(|g| f64::from(g.cap)).sum();
    let weights: f64 = GUESTS.iter().filter(|g| g.cap == 0).map(|g| f64::from(g.weight)).sum();
    (100.0 - dom0 - caps) * f64::from(g.weight) / weights
}

/// The Markdown table.
pub fn table(series: &[(String, Vec<f64>)]) -> String {
    let dom0 = series.iter().find(|(n, _)| n == "Domain-0").map_or(0.0, |(_, v)| mean(v));
    let mut md = String::from(
        "| domain | weight | cap | target % | after dom0's use % | mean % | min % | max % |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, v) in series {
        let g = GUESTS.iter().find(|g| g.name == name);
        let (w, c, t) = match g {
            Some(g) => (g.weight.to_string(), g.cap.to_string(), format!("{:.1} | {:.1}", g.target, expected(g, dom0))),
            None => ("256".into(), "0".into(), "- | -".into()),
        };
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        let min = if min.is_finite() { min } else { 0.0 };
        let _ = writeln!(md, "| {name} | {w} | {c} | {t} | {:.1} | {min:.1} | {max:.1} |", mean(v));
    }
    md
}

/// Colours for the series (dom0 grey).
const COLOURS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// A hand-written SVG: each domain's share per sample (solid) and its
/// target once dom0's measured use is taken out (dashed), 0–100%
/// against time.
pub fn svg(series: &[(String, Vec<f64>)]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 380.0, 50.0, 150.0, 20.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let n = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0).max(2);
    let dom0 = series.iter().find(|(n, _)| n == "Domain-0").map_or(0.0, |(_, v)| mean(v));
    let x = |i: usize| left + pw * i as f64 / (n - 1) as f64;
    let y = |pct: f64| top + ph * (1.0 - pct.clamp(0.0, 100.0) / 100.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for pct in (0..=100).step_by(20) {
        let yy = y(f64::from(pct));
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{pct}%</text>",
            left + pw,
            left - 6.0,
            yy + 4.0
        );
    }
    let secs = (n - 1) as u32 * SAMPLE_SECS;
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s, {SAMPLE_SECS} s samples; 0 to {secs})</text>\n\
         <text x=\"{left}\" y=\"12\">share of the CPU per domain (xl top -b: the hypervisor's run-state accounting); dashed: target after dom0's use</text>",
        left + pw / 2.0,
        h - 10.0
    );
    for (k, (name, v)) in series.iter().enumerate() {
        let colour =
            if name == "Domain-0" { "#888" } else { COLOURS.get(k % COLOURS.len()).copied().unwrap_or("#000") };
        let points: Vec<String> = v.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(*p))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        if let Some(g) = GUESTS.iter().find(|g| g.name == name) {
            let yy = y(expected(g, dom0));
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"{colour}\" \
                 stroke-dasharray=\"6 4\"/>",
                left + pw
            );
        }
        let ly = top + 18.0 * k as f64 + 10.0;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 36.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Runs the scenario and writes `target/qos/{results.md,shares.svg,serial.log}`.
pub fn run(hypervisor: std::path::PathBuf) -> Result<std::process::ExitCode, String> {
    let kernel = tests::debian::linux()?;
    let kernel = std::fs::read(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let initrd = tests::linux::initramfs("qos-xtask-domu", DOMU_INIT)?;
    let initrd = std::fs::read(&initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let extra = [("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, initrd)];
    let image = dom0::image("xtask-qos", Some(&script()), &extra)?;
    eprintln!(
        "xtask qos: booting dom0 and {} Linux domUs on xenish; {SAMPLES} samples of {SAMPLE_SECS} s",
        GUESTS.len()
    );
    let out = Boot::with_hypervisor(hypervisor)
        .cpu(tests::linux::CPU)
        .memory_mib(2048)
        .smp(1)
        .cmdline("dom0_mem=512M")
        .module(image.kernel, dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(AUTORUN_DONE)
        .timeout(Duration::from_secs(1800))
        .try_run()?;
    let dir = tests::images::target_dir().join("qos");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::write(dir.join("serial.log"), &out.serial);
    render(&out.serial)
}

/// Writes the table and the plot from a scenario's serial log (`cargo
/// xtask qos --log FILE` redraws them from a saved one).
pub fn render(serial: &str) -> Result<std::process::ExitCode, String> {
    let dir = tests::images::target_dir().join("qos");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for l in serial.lines().filter(|l| l.contains("qos-error:")) {
        eprintln!("xtask qos: {l}");
    }
    let series = parse(serial);
    if series.iter().all(|(_, v)| v.is_empty()) {
        return Err(format!("no samples in the serial log ({})", dir.join("serial.log").display()));
    }
    let md = table(&series);
    let sched: String =
        serial.lines().filter_map(|l| l.split("qos-sched: ").nth(1)).map(|l| format!("    {l}\n")).collect();
    let doc = format!(
        "# xenish QoS run\n\nOne CPU (QEMU TCG), {SAMPLES} samples of {SAMPLE_SECS} s from `xl top -b`.\n\n{md}\n\
         `xl sched-credit` at the start:\n\n{sched}"
    );
    std::fs::write(dir.join("results.md"), &doc).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("shares.svg"), svg(&series)).map_err(|e| e.to_string())?;
    println!("{md}");
    eprintln!("xtask qos: wrote {} and {}", dir.join("results.md").display(), dir.join("shares.svg").display());
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests_ {
    use super::*;

    const SERIAL: &str = "(d0) qos-top:       NAME  STATE   CPU(sec) CPU(%)     MEM(k)\n\
        (d0) qos-top:   Domain-0 -----r         44    0.0     524288\n\
        (d0) qos-top:     a-w512 ------         40    0.0     131072\n\
        (d0) qos-top:       NAME  STATE   CPU(sec) CPU(%)     MEM(k)\n\
        (d0) qos-top:   Domain-0 -----r         44    3.6     524288\n\
        (d0) qos-top:     a-w512 ------         41   64.3     131072\n\
        (d0) qos-top:     a-w512 ------         41   6x.3     131072\n";

    #[test]
    fn samples_are_read_per_domain_without_the_first() {
        let s = parse(SERIAL);
        assert_eq!(s, vec![("Domain-0".to_string(), vec![3.6]), ("a-w512".to_string(), vec![64.3])]);
        let md = table(&s);
        assert!(md.contains("| a-w512 | 512 | 0 | 45.0 | 43.2 | 64.3 | 64.3 | 64.3 |"), "{md}");
        let svg = svg(&s);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(script().contains("cpu_weight = 512") && script().contains("cap = 10"));
    }
}
