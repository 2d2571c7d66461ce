//! The toolstack rows of `cargo xtask bench`: from Debian's Linux as dom0
//! with the dom0 image, on xenish and on Xen 4.17 in the same QEMU, the
//! time from `xl create` to the guest's first console line (read by
//! xenconsoled into its log), median of [`ROUNDS`] creates per boot.
//! Wall-clock under emulation, measured in dom0 with `/proc/uptime`
//! (10 ms resolution).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tests::dom0::{self, AUTORUN_DONE};
use tests::Boot;

/// Creates measured per boot.
const ROUNDS: usize = 5;

/// The script: `xsguest` prints `xsguest: start` to its console ring
/// first thing; it is destroyed after each measurement.
fn script() -> String {
    format!(
        r#"
printf 'name = "xsguest"\nkernel = "/root/xsguest"\nmemory = 32\n' > /etc/xen/bench.cfg
ms() {{ awk '{{ printf "%d", $1 * 1000 }}' /proc/uptime; }}
i=0
while [ $i -lt {ROUNDS} ]; do
    rm -f /var/log/xen/console/guest-xsguest.log
    t0=$(ms)
    xl create -q /etc/xen/bench.cfg || echo "benchdom0: xl create failed"
    n=0
    until grep -q "xsguest: start" /var/log/xen/console/guest-xsguest.log 2>/dev/null || [ $n -ge 6000 ]; do
        usleep 10000; n=$((n+1))
    done
    echo "benchdom0: xl_create_to_first_console_line $(( $(ms) - t0 ))"
    xl destroy xsguest
    i=$((i+1))
done
"#
    )
}

/// The medians (ms) one boot measured, from its `benchdom0:` lines.
fn parse(serial: &str) -> Vec<u64> {
    serial
        .lines()
        .filter_map(|l| l.split("benchdom0: xl_create_to_first_console_line ").nth(1))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// One boot of the dom0 image on `hypervisor`; the median time, if the
/// script measured any.
fn measure(name: &str, hypervisor: PathBuf, cmdline: &str, guest: &[u8]) -> Result<Option<u64>, String> {
    let extra = [("root/xsguest", 0o644, guest.to_vec())];
    let image = dom0::image(name, Some(&script()), &extra)?;
    let out = Boot::with_hypervisor(hypervisor)
        .cpu(tests::linux::CPU)
        .memory_mib(1024)
        .cmdline(cmdline)
        .module(image.kernel, dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(AUTORUN_DONE)
        .timeout(Duration::from_secs(900))
        .try_run()?;
    Ok(median(parse(&out.serial)))
}

/// Measures both hypervisors and returns the table rows (Markdown) after
/// printing them; `None` cells are shown as missing.
pub fn run(xenish: PathBuf, xen: PathBuf, guest: PathBuf) -> Result<String, String> {
    let guest = std::fs::read(&guest).map_err(|e| format!("{}: {e}", guest.display()))?;
    eprintln!("xtask bench: dom0 with xl on xenish");
    let a = measure("bench-xenish", xenish, "dom0_mem=512M", &guest)?;
    eprintln!("xtask bench: dom0 with xl on Xen 4.17");
    let b = measure("bench-xen", xen, &format!("{} dom0_mem=512M", tests::debian::XEN_CMDLINE), &guest)?;
    let show = |v: Option<u64>| v.map_or("missing".to_string(), |c| c.to_string());
    let ratio = match (a, b) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "-".to_string(),
    };
    let op = "xl_create_to_first_console_line";
    println!("\n{:<34} {:>10} {:>10} {:>8}   (ms, median of {ROUNDS})", "toolstack", "xenish", "Xen 4.17", "ratio");
    println!("{op:<34} {:>10} {:>10} {ratio:>8}", show(a), show(b));
    let mut md =
        String::from("\n| toolstack (ms, wall-clock) | xenish | Xen 4.17 | xenish / Xen |\n|---|---:|---:|---:|\n");
    let _ = writeln!(md, "| {op} | {} | {} | {ratio} |", show(a), show(b));
    Ok(md)
}

#[cfg(test)]
mod tests_ {
    use super::*;

    #[test]
    fn reads_the_measurements() {
        let serial =
            "(d0) benchdom0: xl_create_to_first_console_line 420\nbenchdom0: xl_create_to_first_console_line x\n\
                      benchdom0: xl_create_to_first_console_line 380\n";
        assert_eq!(parse(serial), vec![420, 380]);
        assert_eq!(median(parse(serial)), Some(420));
        assert!(script().contains("xl create -q /etc/xen/bench.cfg"));
    }
}
