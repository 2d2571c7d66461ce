//! `xl top`: Xen's `xl top` runs `xentop`; this is xentop's batch mode
//! (`-b`), which prints every `-d` seconds, `-i` times, one row per
//! domain with its state, CPU time and the share of one CPU it used
//! since the previous sample (`CPU(%)`), its memory and limit and its
//! vCPUs. The share comes from the hypervisor's run-state accounting
//! (`getdomaininfo`'s `cpu_time`, the sum of its vCPUs' running time)
//! divided by the time between two samples on dom0's clock, which is
//! the hypervisor's system time — what `cargo xtask qos` and the QoS
//! test read.
//!
//! Semantics: Xen 4.17 `tools/xentop/xentop.c` (`print_state`,
//! `get_cpu_pct`, the batch loop). Where it differs: no interactive
//! (curses) mode, and only xentop's CPU, memory and vCPU columns (no
//! network, block or security columns).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xendev::DomainInfo;

use super::{getopt, Ctx, Status, FAIL, OK, USAGE};

/// The header of each batch iteration.
pub const TOP_HEADER: &str = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS";

/// xentop's `print_state`: dying, shut down, blocked, paused, crashed,
/// running.
fn state(info: &DomainInfo) -> String {
    let flag = |on: bool, c: char| if on { c } else { '-' };
    [
        flag(info.dying(), 'd'),
        flag(info.shutdown(), 's'),
        flag(info.blocked(), 'b'),
        flag(info.paused(), 'p'),
        flag(info.crashed(), 'c'),
        flag(info.running(), 'r'),
    ]
    .iter()
    .collect()
}

/// The share of one CPU `info` used since `prev` (its CPU time then),
/// over `elapsed`, in percent; 0 without a previous sample.
pub fn cpu_pct(info: &DomainInfo, prev: Option<u64>, elapsed: Duration) -> f64 {
    match prev {
        Some(p) if !elapsed.is_zero() => info.cpu_time.saturating_sub(p) as f64 * 100.0 / elapsed.as_nanos() as f64,
        _ => 0.0,
    }
}

/// One row of xentop's batch output.
pub fn top_row(name: &str, info: &DomainInfo, pct: f64, total_kb: u64) -> String {
    let mem_kb = info.tot_pages * 4;
    let of_total = |kb: u64| if total_kb == 0 { 0.0 } else { kb as f64 * 100.0 / total_kb as f64 };
    let max_kb = info.max_pages.saturating_mul(4);
    let (max, max_pct) = if info.max_pages >= u64::from(u32::MAX) {
        ("no limit".to_string(), "n/a".to_string())
    } else {
        (max_kb.to_string(), format!("{:.1}", of_total(max_kb)))
    };
    format!(
        "{:>10} {:>6} {:>10} {:>6.1} {:>10} {:>6.1} {:>10} {:>9} {:>5}",
        name,
        state(info),
        info.cpu_time / 1_000_000_000,
        pct,
        mem_kb,
        of_total(mem_kb),
        max,
        max_pct,
        info.nr_online_vcpus
    )
}

/// `xl top -b [-d DELAY] [-i ITERATIONS]`.
pub fn main(args: &[String]) -> Status {
    let long = [("batch", 'b'), ("delay", 'd'), ("iterations", 'i')];
    let (opts, operands) = match getopt("top", args, "bdi", "di", &long) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let get = |c: char| opts.iter().rev().find(|o| o.0 == c).and_then(|o| o.1.clone());
    if !operands.is_empty() || !opts.iter().any(|o| o.0 == 'b') {
        eprintln!("xl top: only the batch mode (-b) is available");
        super::help("top");
        return USAGE;
    }
    let delay = match get('d').map(|d| d.parse::<f64>()) {
        None => 3.0,
        Some(Ok(d)) if d > 0.0 && d < 86_400.0 => d,
        Some(_) => {
            eprintln!("xl top: bad delay");
            return USAGE;
        }
    };
    let iterations = match get('i').map(|i| i.parse::<u64>()) {
        None => u64::MAX,
        Some(Ok(i)) => i,
        Some(Err(_)) => {
            eprintln!("xl top: bad number of iterations");
            return USAGE;
        }
    };
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    let total_kb = ctx.xc.privcmd().physinfo().map_or(0, |p| p.total_pages * 4);
    let mut prev: BTreeMap<u16, u64> = BTreeMap::new();
    let mut prev_at: Option<Instant> = None;
    for i in 0..iterations {
        if i > 0 {
            std::thread::sleep(Duration::from_secs_f64(delay));
        }
        let infos = match ctx.xc.list_domains() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("xl top: cannot list the domains: {e}");
                return FAIL;
            }
        };
        let now = Instant::now();
        let elapsed = prev_at.map_or(Duration::ZERO, |p| now - p);
        println!("{TOP_HEADER}");
        for info in &infos {
            let name = ctx.name_of(info.domid).unwrap_or_default();
            println!("{}", top_row(&name, info, cpu_pct(info, prev.get(&info.domid).copied(), elapsed), total_kb));
        }
        prev = infos.iter().map(|i| (i.domid, i.cpu_time)).collect();
        prev_at = Some(now);
    }
    OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(cpu_time: u64, flags: u32) -> DomainInfo {
        DomainInfo {
            domid: 2,
            flags,
            tot_pages: 32768,
            max_pages: 33024,
            shared_info_frame: 0,
            cpu_time,
            nr_online_vcpus: 1,
            max_vcpu_id: 0,
            ssidref: 0,
            handle: [0; 16],
            cpupool: 0,
        }
    }

    #[test]
    fn the_share_is_cpu_time_over_elapsed_time() {
        let i = info(3_500_000_000, 0);
        assert_eq!(cpu_pct(&i, Some(3_000_000_000), Duration::from_secs(2)), 25.0);
        assert_eq!(cpu_pct(&i, None, Duration::from_secs(2)), 0.0);
        assert_eq!(cpu_pct(&i, Some(0), Duration::ZERO), 0.0);
        // A clock that went backwards for the domain counts as nothing.
        assert_eq!(cpu_pct(&i, Some(4_000_000_000), Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn rows_line_up_under_the_header() {
        let row = top_row("heavy", &info(61_900_000_000, 0), 66.666, 1 << 20);
        assert_eq!(row.len(), TOP_HEADER.len(), "{row}");
        assert!(row.starts_with("     heavy "), "{row}");
        assert!(row.contains("    61   66.7     131072   12.5     132096      12.6     1"), "{row}");
        let mut unlimited = info(0, 0);
        unlimited.max_pages = u64::from(u32::MAX);
        assert!(top_row("d", &unlimited, 0.0, 1 << 20).contains("  no limit       n/a"));
    }
}
