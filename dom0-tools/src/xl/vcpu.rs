//! `xl vcpu-pin` and the CPU maps `xl vcpu-list` prints: which physical
//! CPUs a vCPU may run on (hard affinity, which the scheduler enforces)
//! and prefers (soft affinity), set and shown with Xen's syntax.
//!
//! Semantics: Xen 4.17 `tools/xl/xl_vcpu.c` (`main_vcpupin`,
//! `print_vcpuinfo`), `tools/xl/xl_parse.c` (`parse_cpurange`,
//! `update_cpumap_range`, `parse_range`), `tools/xl/xl_utils.c`
//! (`print_bitmap`) and `tools/libs/light/libxl_sched.c`
//! (`libxl_set_vcpuaffinity`, `_all`, `_force`).

use guest_abi::domctl::{XEN_VCPUAFFINITY_FORCE, XEN_VCPUAFFINITY_HARD, XEN_VCPUAFFINITY_SOFT};

use super::{getopt, help, Ctx, Status, FAIL, OK, USAGE};

/// A CPU bitmap as libxl allocates one for `nr_cpus` CPUs: bit n in
/// byte n / 8, whole bytes.
pub fn cpu_bitmap(nr_cpus: u32) -> Vec<u8> {
    vec![0; (nr_cpus as usize).div_ceil(8).max(1)]
}

/// libxl's `libxl_bitmap_set`/`reset`: bits past the map are ignored.
fn set_bit(map: &mut [u8], bit: u64, on: bool) {
    let Some(byte) = usize::try_from(bit / 8).ok().and_then(|i| map.get_mut(i)) else { return };
    let mask = 1u8 << (bit % 8);
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
}

/// xl's `parse_range`: `A` or `A-B` (B ≥ A), decimal, nothing after.
fn parse_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let num =
        |t: &str| if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) { t.parse::<u64>().ok() } else { None };
    let a = num(a)?;
    let b = match b {
        Some(b) => num(b)?,
        None => a,
    };
    (b >= a).then_some((a, b))
}

/// xl's `parse_cpurange`: a comma-separated list of `all`, CPUs `N`,
/// ranges `A-B`, whole NUMA nodes `node:N`/`nodes:A-B` (every CPU is on
/// node 0), each of them but `all` prefixed with `^` to take CPUs out,
/// applied in order to `map`. Prints xl's message for a bad element.
pub fn parse_cpurange(s: &str, map: &mut [u8]) -> Result<(), ()> {
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (is_not, rest) = match part.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, part),
        };
        let (is_nodes, rest) = match rest.strip_prefix("node:").or_else(|| rest.strip_prefix("nodes:")) {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest == "all" {
            if is_not {
                eprintln!("Can't combine \"^\" and \"all\".");
                return Err(());
            }
            map.fill(0xff);
            continue;
        }
        let Some((a, b)) = parse_range(rest) else {
            eprintln!("Invalid pcpu range: {rest}.");
            return Err(());
        };
        if is_nodes {
            // One node (0), holding every CPU.
            if a > 0 {
                eprintln!("Invalid pcpu range: {rest}.");
                return Err(());
            }
            map.fill(if is_not { 0 } else { 0xff });
            continue;
        }
        // Bits past the map change nothing (libxl_bitmap_set): stop there.
        for cpu in a..=b.min(map.len() as u64 * 8) {
            set_bit(map, cpu, !is_not);
        }
    }
    Ok(())
}

/// xl's `print_bitmap` of the first `maplen` bits: `all` when every one
/// is set, `none` when none is, otherwise ranges such as `0,2-3`.
pub fn print_bitmap(map: &[u8], maplen: u32) -> String {
    let bit = |i: u32| map.get((i / 8) as usize).is_some_and(|b| b & (1 << (i % 8)) != 0);
    let mut out = String::new();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    let mut start = None;
    for i in 0..maplen {
        match (bit(i), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        if s == 0 && runs.is_empty() {
            return "all".into();
        }
        runs.push((s, maplen - 1));
    }
    if runs.is_empty() {
        return "none".into();
    }
    for (n, (a, b)) in runs.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&a.to_string());
        if b > a {
            out.push_str(&format!("-{b}"));
        }
    }
    out
}

/// strtol's view of a vCPU operand: its leading (signed) decimal number,
/// or `None` when it starts with none.
fn leading_number(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(digits.len());
    let n: i64 = digits.get(..end).filter(|d| !d.is_empty())?.parse().unwrap_or(i64::MAX);
    Some(if neg { -n } else { n })
}

/// The CPUs the hypervisor reports (`physinfo`'s `max_cpu_id + 1`,
/// libxl's `libxl_get_max_cpus`).
pub fn max_cpus(ctx: &Ctx) -> Option<u32> {
    ctx.xc.privcmd().physinfo().ok().map(|p| p.max_cpu_id + 1)
}

/// libxl's error line for a refused affinity change, then xl's.
fn report_refusal(domid: u16, e: &std::io::Error) {
    let why = xendev::errno(e).map_or_else(
        || e.to_string(),
        |n| {
            let s = std::io::Error::from_raw_os_error(n).to_string();
            s.split(" (os error").next().unwrap_or_default().to_string()
        },
    );
    eprintln!("libxl: error: libxl_sched.c:62:libxl_set_vcpuaffinity: Domain {domid}:Setting vcpu affinity: {why}");
}

/// `xl vcpu-pin [-f] [-i] <Domain> <VCPU|all> <Hard affinity|-|all>
/// [<Soft affinity|-|all>]`.
pub fn vcpu_pin(args: &[String]) -> Status {
    let long = [("force", 'f'), ("ignore-global-affinity-masks", 'i')];
    let (opts, ops) = match getopt("vcpu-pin", args, "fi", "", &long) {
        Ok(x) => x,
        Err(s) => return s,
    };
    if ops.len() < 3 {
        eprintln!("'xl vcpu-pin' requires at least 3 arguments.\n");
        help("vcpu-pin");
        return USAGE;
    }
    let force = opts.iter().any(|o| o.0 == 'f');
    let ignore_masks = opts.iter().any(|o| o.0 == 'i');
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    let domid = match ctx.find_domain(&ops[0]) {
        Ok(id) => id,
        Err(s) => return s,
    };
    let (vcpu, hard_str, soft_str) = (&ops[1], &ops[2], ops.get(3));
    let vcpuid = match leading_number(vcpu) {
        Some(n) if n >= 0 => Some(n),
        _ if vcpu != "all" => {
            eprintln!("Error: Invalid argument {vcpu} as VCPU.");
            return FAIL;
        }
        _ if force => {
            eprintln!("Error: --force and 'all' as VCPU not allowed.");
            return FAIL;
        }
        _ => None,
    };
    let Some(nr_cpus) = max_cpus(&ctx) else {
        eprintln!("libxl_cpu_bitmap_alloc failed.");
        return FAIL;
    };
    let mut hard = (hard_str != "-").then(|| cpu_bitmap(nr_cpus));
    if let Some(map) = hard.as_mut() {
        if parse_cpurange(hard_str, map).is_err() {
            return FAIL;
        }
    }
    let mut soft = soft_str.filter(|s| *s != "-").map(|_| cpu_bitmap(nr_cpus));
    if let (Some(map), Some(s)) = (soft.as_mut(), soft_str) {
        if parse_cpurange(s, map).is_err() {
            return FAIL;
        }
    }
    // xl.conf's global masks are all CPUs here: only an empty hard
    // affinity is caught (apply_global_affinity_masks).
    if !ignore_masks && hard.as_ref().is_some_and(|m| m.iter().all(|&b| b == 0)) {
        eprintln!("vcpu hard affinity map is empty");
        return FAIL;
    }
    let mut flags = 0;
    if hard.is_some() {
        flags |= XEN_VCPUAFFINITY_HARD;
    }
    if soft.is_some() {
        flags |= XEN_VCPUAFFINITY_SOFT;
    }
    if force {
        // libxl_set_vcpuaffinity_force: also drops the guest's own
        // override (Xen's XEN_VCPUAFFINITY_FORCE).
        flags |= XEN_VCPUAFFINITY_FORCE;
    }
    if flags & (XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT) == 0 {
        // libxl refuses a call with neither map (ERROR_INVAL).
        match vcpuid {
            Some(v) => eprintln!("Could not set affinity for vcpu `{v}'."),
            None => eprintln!("Could not set affinity."),
        }
        return if vcpuid.is_some() { FAIL } else { OK };
    }
    let set = |ctx: &Ctx, v: u32| -> bool {
        let (mut h, mut s) = (hard.clone().unwrap_or_default(), soft.clone().unwrap_or_default());
        match ctx.xc.vcpu_affinity(domid, v, flags, true, &mut h, &mut s) {
            Ok(()) => true,
            Err(e) => {
                report_refusal(domid, &e);
                false
            }
        }
    };
    match vcpuid {
        Some(v) => {
            if u32::try_from(v).is_ok_and(|v| set(&ctx, v)) {
                OK
            } else {
                eprintln!("Could not set affinity for vcpu `{v}'.");
                FAIL
            }
        }
        None => {
            // libxl_set_vcpuaffinity_all: every vCPU, going on past a
            // failure; xl reports it and still succeeds.
            let max = match ctx.xc.domain_info(domid) {
                Ok(Some(i)) => i.max_vcpu_id,
                _ => {
                    eprintln!("libxl_list_vcpu failed.");
                    return FAIL;
                }
            };
            let mut ok = true;
            for v in 0..=max.min(4095) {
                ok &= set(&ctx, v);
            }
            if !ok {
                eprintln!("Could not set affinity.");
            }
            OK
        }
    }
}

/// vCPU `vcpu`'s hard and soft affinity as `xl vcpu-list` prints them
/// (`print_bitmap` of `nr_cpus` bits each, joined by ` / `).
pub fn affinity_column(ctx: &Ctx, domid: u16, vcpu: u32, nr_cpus: u32) -> std::io::Result<String> {
    let (mut hard, mut soft) = (cpu_bitmap(nr_cpus), cpu_bitmap(nr_cpus));
    ctx.xc.vcpu_affinity(domid, vcpu, XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT, false, &mut hard, &mut soft)?;
    Ok(format!("{} / {}", print_bitmap(&hard, nr_cpus), print_bitmap(&soft, nr_cpus)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str, nr_cpus: u32) -> Option<Vec<u8>> {
        let mut m = cpu_bitmap(nr_cpus);
        parse_cpurange(s, &mut m).ok().map(|()| m)
    }

    #[test]
    fn cpu_ranges_parse_as_xl_parses_them() {
        assert_eq!(parsed("1", 4), Some(vec![0b10]));
        assert_eq!(parsed("0-2,^1", 4), Some(vec![0b101]));
        assert_eq!(parsed("all", 4), Some(vec![0xff]));
        assert_eq!(parsed("all,^0", 4), Some(vec![0xfe]));
        assert_eq!(parsed("nodes:0", 2), Some(vec![0xff]));
        // Past the map's bytes: ignored, as libxl_bitmap_set does.
        assert_eq!(parsed("3,9", 2), Some(vec![0b1000]));
        for bad in ["^all", "2-1", "x", "1-", "-", "1a", "node:1"] {
            assert_eq!(parsed(bad, 4), None, "{bad}");
        }
    }

    #[test]
    fn bitmaps_print_as_xl_prints_them() {
        assert_eq!(print_bitmap(&[0b11], 2), "all");
        assert_eq!(print_bitmap(&[0xff], 2), "all");
        assert_eq!(print_bitmap(&[0b10], 2), "1");
        assert_eq!(print_bitmap(&[0b01], 2), "0");
        assert_eq!(print_bitmap(&[0], 2), "none");
        assert_eq!(print_bitmap(&[0b1101_1010], 8), "1,3-4,6-7");
        assert_eq!(print_bitmap(&[0b1110], 4), "1-3");
        assert_eq!(print_bitmap(&[0b0111], 4), "0-2");
    }

    #[test]
    fn vcpu_operands_read_as_strtol_reads_them() {
        assert_eq!(leading_number("1"), Some(1));
        assert_eq!(leading_number("2x"), Some(2));
        assert_eq!(leading_number("-1"), Some(-1));
        assert_eq!(leading_number("all"), None);
    }
}
