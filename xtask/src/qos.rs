//! `cargo xtask qos`: CPU shares you can see. Boots the dom0 image on
//! xenish (one CPU, QEMU TCG) with five busy domUs — Debian Linux ones
//! with weights 512 and 256, one capped at 10% of the CPU, one that
//! misbehaves by forking and exec'ing in a loop (a PV guest's process
//! churn is a flood of page-table hypercalls: `mmu_update`, `mmuext_op`
//! pins, TLB flushes), and the `flood` test guest, which never stops
//! calling the hypervisor (event-channel sends to itself, grant copies and
//! maps, ballooning, multicalls) — and measures every domain's share of
//! the CPU two ways:
//! - from the hypervisor's run-state accounting (`xl top -b`), every
//!   [`SAMPLE_SECS`] s;
//! - from the guests' own progress counters: each domU counts the work it
//!   does (loop iterations, forks, flood rounds) and reports the count on
//!   its console every second. dom0 first lets each run alone for
//!   [`CALIBRATE_SECS`] s (the others paused) to learn its rate with the
//!   CPU to itself (its rate alone over its run-state share then); a
//!   guest's progress share is its rate over that full-speed rate.
//!
//! Guest time counts executed instructions (QEMU `-icount`), so a loaded
//! host skews neither. It writes a Markdown table and an SVG plot of both
//! over time against the targets to `target/qos/`.
//!
//! Targets: the busy domUs split the CPU by weight, a cap is a ceiling;
//! with A 512, B 256, C 256 capped at 10, D 256 and E 256: C gets 10%, and
//! the other 90% go 2:1:1:1 to A, B, D and E (36, 18, 18, 18). dom0's own
//! small use comes out of everyone's share.

use std::fmt::Write as _;
use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::Boot;

/// Seconds between two samples.
const SAMPLE_SECS: u32 = 2;
/// Samples taken (the first has no previous one and is left out).
const SAMPLES: u32 = 30;
/// Seconds each domU runs alone to learn its full-speed rate.
const CALIBRATE_SECS: u32 = 4;

/// Guest time counts executed instructions (4 ns each), not the host's
/// clock: on a loaded host QEMU is descheduled now and then, and with the
/// host's clock that time would count as run time of whichever vCPU was
/// on the CPU although it made no progress (the run-state shares average
/// it out; the progress counters would not).
const ICOUNT: [&str; 4] = ["-icount", "shift=2,align=off,sleep=off", "-rtc", "clock=vm"];

/// One domU of the scenario.
struct Guest {
    name: &'static str,
    weight: u16,
    cap: u16,
    /// What it does: `spin`, `fork` (Linux domUs) or `flood` (the test guest).
    work: &'static str,
    /// Its target share of the CPU, percent.
    target: f64,
}

const GUESTS: &[Guest] = &[
    Guest { name: "a-w512", weight: 512, cap: 0, work: "spin", target: 36.0 },
    Guest { name: "b-w256", weight: 256, cap: 0, work: "spin", target: 18.0 },
    Guest { name: "c-cap10", weight: 256, cap: 10, work: "spin", target: 10.0 },
    Guest { name: "d-forker", weight: 256, cap: 0, work: "fork", target: 18.0 },
    Guest { name: "e-flood", weight: 256, cap: 0, work: "flood", target: 18.0 },
];

/// The Linux domUs' init: proc and devtmpfs, then either a CPU-bound shell
/// loop or a fork/exec storm (`/bin/true` over and over), each counting
/// its work into `/work` (every 250 iterations; every fork); the
/// foreground reports `qos-work: UPTIME COUNT` every second with the
/// shell's own `read` (no fork).
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /dev
/bin/busybox --install -s
mount -t proc proc /proc
mount -t devtmpfs dev /dev
case "$(cat /proc/cmdline)" in
*work=fork*) (n=0; while :; do /bin/busybox true; n=$((n + 1)); echo $n > /work; done) & ;;
*) (n=0; while :; do n=$((n + 1)); [ $((n % 250)) = 0 ] && echo $n > /work; done) & ;;
esac
echo "qos: working"
while true; do
    read -r up _ < /proc/uptime
    n=
    read -r n < /work
    [ -n "$n" ] && echo "qos-work: $up $n"
    sleep 1
done
"#;

/// dom0's script: create the guests, wait until each works, let each run
/// alone for [`CALIBRATE_SECS`] s, then sample all together; each
/// window's progress reports are copied from the guests' console logs.
fn script() -> String {
    let mut s = String::from(
        r#"
log() { echo /var/log/xen/console/guest-$1.log; }
wait_for() { for i in $(seq 400); do grep -q "$2" $(log $1) 2>/dev/null && return 0; sleep 1; done; return 1; }
lines() { wc -l < $(log $1); }
# The progress reports in a guest's log after line $2, tagged $3.
reports() { tail -n +$(($2 + 1)) $(log $1) | tr -d '\r' | grep -E 'qos-work: |flood: t=' | sed "s/^/$3: $1 /"; }
"#,
    );
    for g in GUESTS {
        let kernel = if g.work == "flood" {
            "kernel = \"/root/flood\"\nextra = \"report_ms=1000\"\nmemory = 32".to_string()
        } else {
            format!(
                "kernel = \"/root/vmlinuz\"\nramdisk = \"/root/domu.cpio\"\nextra = \"console=hvc0 quiet work={}\"\nmemory = 128",
                g.work
            )
        };
        let _ = write!(
            s,
            "\ncat > /etc/xen/{name}.cfg <<'EOF'\nname = \"{name}\"\n{kernel}\ncpu_weight = {weight}\ncap = {cap}\nEOF\n\
             xl create -q /etc/xen/{name}.cfg || echo \"qos-error: xl create {name} failed\"\n",
            name = g.name,
            weight = g.weight,
            cap = g.cap
        );
    }
    for g in GUESTS {
        let ready = if g.work == "flood" { "flood: d.*flooding" } else { "qos: working" };
        let _ = writeln!(s, "wait_for {} '{ready}' || echo 'qos-error: {} did not start'", g.name, g.name);
    }
    let names: Vec<&str> = GUESTS.iter().map(|g| g.name).collect();
    let _ = write!(
        s,
        r#"
sleep 4
xl sched-credit | sed 's/^/qos-sched: /'
# Each alone (its cap held), to learn its full-speed rate.
for g in {names}; do
    for o in {names}; do [ $o = $g ] || xl pause $o; done
    sleep 1
    n0=$(lines $g)
    xl top -b -d {cal} -i 2 | sed "s/^/qos-cal-top-$g: /"
    reports $g $n0 qos-cal
    for o in {names}; do [ $o = $g ] || xl unpause $o; done
done
sleep 2
for g in {names}; do n0=$(lines $g); echo "$g $n0" >> /tmp/n0; done
xl top -b -d {SAMPLE_SECS} -i {n} | sed 's/^/qos-top: /'
while read g n0; do reports $g $n0 qos-prog; done < /tmp/n0
"#,
        names = names.join(" "),
        cal = CALIBRATE_SECS,
        n = SAMPLES + 1
    );
    s
}

/// Each domain's CPU(%) samples, in order, from the lines tagged `tag`
/// (`xl top -b` rows: NAME STATE CPU(sec) CPU(%) ...); the first sample of
/// each, which has no previous one, is left out.
fn top_series(serial: &str, tag: &str) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for line in serial.lines() {
        let Some(rest) = line.split(tag).nth(1) else { continue };
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

/// Each domain's run-state samples from the `qos-top:` lines.
pub fn parse(serial: &str) -> Vec<(String, Vec<f64>)> {
    top_series(serial, "qos-top: ")
}

/// A guest's progress reports tagged `tag` (`TAG: NAME qos-work: UPTIME
/// COUNT` from a Linux domU, `TAG: NAME flood: t=MS rounds=N ...` from the
/// flood guest, whose rounds are per report): (seconds, cumulative count)
/// by the guest's own clock.
fn reports(serial: &str, tag: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{tag}: {name} ");
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut total = 0.0;
    for line in serial.lines() {
        let Some(rest) = line.split(&prefix).nth(1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let point = match f.first() {
            Some(&"qos-work:") => f.get(1).and_then(|t| t.parse().ok()).zip(f.get(2).and_then(|n| n.parse().ok())),
            Some(&"flood:") => {
                let field = |k: &str| f.iter().find_map(|x| x.strip_prefix(k)).and_then(|v| v.parse::<f64>().ok());
                field("t=").zip(field("rounds=")).map(|(t, r)| {
                    total += r;
                    (t / 1000.0, total)
                })
            }
            _ => None,
        };
        if let Some(p) = point {
            out.push(p);
        }
    }
    out
}

/// Work per second between consecutive reports.
fn rates(points: &[(f64, f64)]) -> Vec<f64> {
    points.windows(2).filter(|w| w[1].0 > w[0].0).map(|w| (w[1].1 - w[0].1) / (w[1].0 - w[0].0)).collect()
}

/// Work per second over the whole of `points`.
fn overall_rate(points: &[(f64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    (last.0 > first.0).then(|| (last.1 - first.1) / (last.0 - first.0))
}

/// A guest's progress: its full-speed rate (its rate alone over its
/// run-state share then) and its progress share per report interval of
/// the sampling window, percent.
#[derive(Debug, PartialEq)]
pub struct Progress {
    name: String,
    /// Work per second with the whole CPU.
    full: f64,
    /// Work per second in the sampling window, overall.
    rate: f64,
    /// Progress share per report interval.
    shares: Vec<f64>,
}

/// Every guest's [`Progress`] that the log has the reports for.
pub fn progress(serial: &str) -> Vec<Progress> {
    let mut out = Vec::new();
    for g in GUESTS {
        // Its run-state share alone: its own row of its calibration's sample.
        let cal = top_series(serial, &format!("qos-cal-top-{}: ", g.name));
        let alone = cal.iter().find(|(n, _)| n == g.name).and_then(|(_, v)| v.first()).copied();
        let Some(alone_rate) = overall_rate(&reports(serial, "qos-cal", g.name)) else { continue };
        let Some(alone) = alone.filter(|a| *a > 0.0) else { continue };
        let full = alone_rate * 100.0 / alone;
        let points = reports(serial, "qos-prog", g.name);
        let Some(rate) = overall_rate(&points) else { continue };
        if full <= 0.0 {
            continue;
        }
        let shares = rates(&points).iter().map(|r| 100.0 * r / full).collect();
        out.push(Progress { name: g.name.to_string(), full, rate, shares });
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

/// The Markdown table: run-state shares and, where the guest reported
/// them, progress.
pub fn table(series: &[(String, Vec<f64>)], progress: &[Progress]) -> String {
    let dom0 = series.iter().find(|(n, _)| n == "Domain-0").map_or(0.0, |(_, v)| mean(v));
    let mut md = String::from(
        "| domain | work | weight | cap | target % | after dom0's use % | run-state mean % | min % | max % | \
         work/s alone (full CPU) | work/s | progress share % |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, v) in series {
        let g = GUESTS.iter().find(|g| g.name == name);
        let (work, w, c, t) = match g {
            Some(g) => {
                (g.work, g.weight.to_string(), g.cap.to_string(), format!("{:.1} | {:.1}", g.target, expected(g, dom0)))
            }
            None => ("-", "256".into(), "0".into(), "- | -".into()),
        };
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        let min = if min.is_finite() { min } else { 0.0 };
        let p = match progress.iter().find(|p| &p.name == name) {
            Some(p) => format!("{:.0} | {:.0} | {:.1}", p.full, p.rate, 100.0 * p.rate / p.full),
            None => "- | - | -".into(),
        };
        let _ = writeln!(md, "| {name} | {work} | {w} | {c} | {t} | {:.1} | {min:.1} | {max:.1} | {p} |", mean(v));
    }
    md
}

/// Colours for the series (dom0 grey).
const COLOURS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// A hand-written SVG: each domain's run-state share per sample (solid),
/// its progress share per report (dotted, thin) and its target once
/// dom0's measured use is taken out (dashed), 0–100% against time.
pub fn svg(series: &[(String, Vec<f64>)], progress: &[Progress]) -> String {
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
         <text x=\"{left}\" y=\"12\">share of the CPU: solid run-state (xl top -b), dotted the guest's own progress, \
         dashed target after dom0's use</text>",
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
        if let Some(p) = progress.iter().find(|p| &p.name == name).filter(|p| p.shares.len() > 1) {
            // Report intervals spread over the same span of time.
            let m = p.shares.len() - 1;
            let points: Vec<String> = p
                .shares
                .iter()
                .enumerate()
                .map(|(i, q)| format!("{:.1},{:.1}", left + pw * i as f64 / m as f64, y(*q)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1\" stroke-dasharray=\"1 2\" points=\"{}\"/>",
                points.join(" ")
            );
        }
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
pub fn run(hypervisor: std::path::PathBuf, flood: std::path::PathBuf) -> Result<std::process::ExitCode, String> {
    let kernel = tests::debian::linux()?;
    let kernel = std::fs::read(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let initrd = tests::linux::initramfs("qos-xtask-domu", DOMU_INIT)?;
    let initrd = std::fs::read(&initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let flood = std::fs::read(&flood).map_err(|e| format!("{}: {e}", flood.display()))?;
    let extra = [("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, initrd), ("root/flood", 0o644, flood)];
    let image = dom0::image("xtask-qos", Some(&script()), &extra)?;
    eprintln!(
        "xtask qos: booting dom0 and {} domUs on xenish; each alone for {CALIBRATE_SECS} s, then {SAMPLES} samples of {SAMPLE_SECS} s",
        GUESTS.len()
    );
    let out = Boot::with_hypervisor(hypervisor)
        .cpu(tests::linux::CPU)
        .memory_mib(2048)
        .smp(1)
        .cmdline("dom0_mem=512M")
        .qemu_extra(&ICOUNT)
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
    let progress = progress(serial);
    let md = table(&series, &progress);
    let sched: String =
        serial.lines().filter_map(|l| l.split("qos-sched: ").nth(1)).map(|l| format!("    {l}\n")).collect();
    let doc = format!(
        "# xenish QoS run\n\nOne CPU (QEMU TCG), {SAMPLES} samples of {SAMPLE_SECS} s from `xl top -b`; progress \
         from the guests' own counters, each guest's full-speed rate from {CALIBRATE_SECS} s alone.\n\n{md}\n\
         `xl sched-credit` at the start:\n\n{sched}"
    );
    std::fs::write(dir.join("results.md"), &doc).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("shares.svg"), svg(&series, &progress)).map_err(|e| e.to_string())?;
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
        let md = table(&s, &[]);
        assert!(md.contains("| a-w512 | spin | 512 | 0 | 36.0 | 34.6 | 64.3 | 64.3 | 64.3 | - | - | - |"), "{md}");
        let svg = svg(&s, &[]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(script().contains("cpu_weight = 512") && script().contains("cap = 10"));
        assert!(script().contains("kernel = \"/root/flood\""));
    }

    /// Calibration: a-w512 alone ran at 1000/s on 97% of the CPU, so
    /// 1030.9/s is the whole CPU; e-flood did 40 rounds/s on 80%.
    const PROGRESS: &str = "(d0) qos-cal-top-a-w512:       NAME  STATE   CPU(sec) CPU(%)     MEM(k)\n\
        (d0) qos-cal-top-a-w512:     a-w512 ------         40    0.0     131072\n\
        (d0) qos-cal-top-a-w512:    e-flood ------         40    0.0     131072\n\
        (d0) qos-cal-top-a-w512:       NAME  STATE   CPU(sec) CPU(%)     MEM(k)\n\
        (d0) qos-cal-top-a-w512:     a-w512 ------         44   97.0     131072\n\
        (d0) qos-cal-top-a-w512:    e-flood ------         40    0.0     131072\n\
        (d0) qos-cal: a-w512 qos-work: 10.00 1000\n\
        (d0) qos-cal: a-w512 qos-work: 12.00 3000\n\
        (d0) qos-cal-top-e-flood:       NAME  STATE   CPU(sec) CPU(%)     MEM(k)\n\
        (d0) qos-cal-top-e-flood:     a-w512 ------         40    0.0     131072\n\
        (d0) qos-cal-top-e-flood:    e-flood ------         40    0.0     131072\n\
        (d0) qos-cal-top-e-flood:       NAME  STATE   CPU(sec) CPU(%)     MEM(k)\n\
        (d0) qos-cal-top-e-flood:     a-w512 ------         44    0.0     131072\n\
        (d0) qos-cal-top-e-flood:    e-flood ------         40   80.0     131072\n\
        (d0) qos-cal: e-flood flood: t=1000 rounds=40 calls=1 upcalls=1 running_ms=800 own_code=1/1000\n\
        (d0) qos-cal: e-flood flood: t=2000 rounds=40 calls=1 upcalls=1 running_ms=800 own_code=1/1000\n\
        (d0) qos-prog: a-w512 qos-work: 20.00 10000\n\
        (d0) qos-prog: a-w512 qos-work: 21.00 10400\n\
        (d0) qos-prog: a-w512 qos-work: 22.00 10600\n\
        (d0) qos-prog: e-flood flood: t=5000 rounds=9 calls=1 upcalls=1 running_ms=100 own_code=1/1000\n\
        (d0) qos-prog: e-flood flood: t=6000 rounds=10 calls=1 upcalls=1 running_ms=100 own_code=1/1000\n";

    #[test]
    fn progress_shares_are_rates_over_the_full_speed_rate() {
        let p = progress(PROGRESS);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!((p[0].full - 1000.0 * 100.0 / 97.0).abs() < 1e-6, "{p:?}");
        assert_eq!(p[0].rate, 300.0);
        assert!((p[0].shares[0] - 38.8).abs() < 0.01 && (p[0].shares[1] - 19.4).abs() < 0.01, "{p:?}");
        // The flood guest's rounds are per report: 40/s alone on 80%.
        assert_eq!((p[1].full, p[1].rate, p[1].shares.clone()), (50.0, 10.0, vec![20.0]));
        let s = vec![("a-w512".to_string(), vec![30.0])];
        assert!(table(&s, &p).contains("| 1031 | 300 | 29.1 |"), "{}", table(&s, &p));
        assert_eq!(svg(&s, &p).matches("<polyline").count(), 2);
    }
}
