//! XPTI (`xpti=`): with it on, a guest runs on page tables that map none
//! of the hypervisor's direct map, seen from outside through QEMU's
//! monitor (`info mem` walks the page tables CPU 0 has loaded while the
//! guest spins); with it off the direct map is there. That guests which
//! enter the hypervisor often still work with it on is shown by boots of
//! other files that force it on (`events.rs`: user/kernel toggles, traps,
//! upcalls; `linux.rs`: Debian's kernel as dom0).

use std::time::Duration;

use tests::qemu::{Boot, Exit, Outcome};

/// Start of the hypervisor's direct map (L4 slot 262) and the end of the
/// hypervisor hole.
const DIRECTMAP: (u64, u64) = (0xffff_8300_0000_0000, 0xffff_8800_0000_0000);
/// The hypervisor's image (L4 slot 261).
const IMAGE: (u64, u64) = (0xffff_82d0_8000_0000, 0xffff_82d1_0000_0000);
/// Where the test guests' kernels run (Xen's default virt_base region).
const GUEST_KERNEL: (u64, u64) = (0xffff_ffff_8000_0000, u64::MAX);

/// Bytes an `info mem` answer maps inside `[lo, hi)`.
fn mapped_in(info_mem: &str, (lo, hi): (u64, u64)) -> u64 {
    info_mem
        .lines()
        .filter_map(|l| {
            // "ffff830000000000-ffff830020000000 0000000020000000 -rw"
            let (range, _) = l.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
        })
        .map(|(a, b)| b.min(hi).saturating_sub(a.max(lo)))
        .sum()
}

fn spin_with(xpti: &str, cpus: u32) -> Outcome {
    let out = Boot::new()
        .smp(cpus)
        .cmdline(&format!("dom0_mem=64M {xpti}"))
        .guest("spin", "spin from_ms=0 to_ms=4000")
        .monitor_probe("spin: spinning", "info mem", 8, Duration::from_millis(250))
        .run();
    out.expect_line("spin: count=").expect_exit(Exit::DebugExit(0));
    assert_eq!(out.monitor.len(), 8, "{out}");
    out
}

/// Samples taken while the guest ran: its kernel is mapped.
fn guest_samples(out: &Outcome) -> Vec<&String> {
    out.monitor.iter().filter(|m| mapped_in(m, GUEST_KERNEL) > 0).collect()
}

#[test]
fn guest_runs_without_the_direct_map_with_xpti_on_and_with_it_off() {
    // Two CPUs: the AP gets its root table too (its descriptor tables live
    // in the direct map, mapped page by page in its root alone); the guest
    // runs on CPU 0, which the monitor's `info mem` shows.
    let on = spin_with("xpti=on", 2);
    on.expect_line("XPTI (64-bit PV only): Dom0 enabled, DomU enabled")
        .expect_line("xenish: 2 CPUs online")
        .expect_line("XPTI: root page tables for 2 CPU(s)");
    // Most samples catch the guest spinning; the hypervisor's own runs
    // (timer ticks) are on its full tables and may show the direct map.
    let isolated: Vec<&String> = guest_samples(&on).into_iter().filter(|m| mapped_in(m, DIRECTMAP) == 0).collect();
    assert!(isolated.len() >= 4, "too few samples on the root table:\n{:#?}\n{on}", on.monitor);
    for m in &isolated {
        // Of the image only the entry text, the IDT, the CPU's tables and
        // its stack block: well under a MiB (the image is megabytes).
        let image = mapped_in(m, IMAGE);
        assert!(image > 0 && image < 1 << 20, "image bytes mapped: {image:#x}\n{m}");
    }

    let off = spin_with("xpti=off", 1);
    off.expect_line("XPTI (64-bit PV only): Dom0 disabled, DomU disabled").expect_no("XPTI: root page tables");
    let samples = guest_samples(&off);
    assert!(samples.len() >= 4, "too few samples of the guest:\n{:#?}\n{off}", off.monitor);
    for m in samples {
        assert!(mapped_in(m, DIRECTMAP) >= 64 << 20, "the direct map should be mapped:\n{m}");
    }
}
