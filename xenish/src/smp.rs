//! Which CPUs to start, and where their real-mode trampoline goes: the
//! decisions of bring-up, kept apart from the machine code that carries
//! them out (`arch::x86_64::smpboot`) so they are host-tested.

use alloc::vec::Vec;

/// Why a CPU the MADT lists is not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `nosmp` or `maxcpus=` asked for fewer CPUs.
    Limit,
    /// Past the CPUs xenish has room for.
    TooMany,
}

/// The CPUs to bring up: `apic_ids[n]` is CPU `n`'s APIC ID, CPU 0 the
/// boot CPU; the rest of the MADT's CPUs, with the reason each is left
/// out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuPlan {
    /// APIC IDs by CPU number.
    pub apic_ids: Vec<u32>,
    /// CPUs not started: APIC ID and why.
    pub skipped: Vec<(u32, Skip)>,
}

/// Plans bring-up: the boot CPU (`bsp_apic`) is CPU 0, whether or not the
/// MADT lists it; then the MADT's other CPUs in table order (Xen's order),
/// up to `limit` CPUs in all (`None`: no limit) and `max` (the CPUs the
/// hypervisor has stacks for).
pub fn plan(madt_ids: &[u32], bsp_apic: u32, limit: Option<usize>, max: usize) -> CpuPlan {
    let mut out = CpuPlan { apic_ids: alloc::vec![bsp_apic], skipped: Vec::new() };
    let limit = limit.unwrap_or(usize::MAX).max(1);
    for &id in madt_ids.iter().filter(|&&id| id != bsp_apic) {
        if out.apic_ids.contains(&id) {
            continue;
        }
        if out.apic_ids.len() >= limit {
            out.skipped.push((id, Skip::Limit));
        } else if out.apic_ids.len() >= max {
            out.skipped.push((id, Skip::TooMany));
        } else {
            out.apic_ids.push(id);
        }
    }
    out
}

/// Bytes of the trampoline page.
const PAGE: u64 = 4096;
/// The end of conventional memory: the trampoline stays below it.
const LOW_MEMORY_END: u64 = 0xa0000;

/// Picks the page for the APs' real-mode trampoline, as Xen's
/// `trampoline_bios_setup` does: the highest 4 KiB page below the EBDA
/// (`ebda`, 0 if unknown) and the end of conventional memory that lies in
/// one usable memory-map region (`ram`: `(base, end)` of usable regions),
/// above the BIOS data area and off every range in `avoid` (`(start,
/// end)`). A STARTUP IPI names a page below 1 MiB by its number, so this
/// is where the APs can start at all.
pub fn trampoline_page(ram: &[(u64, u64)], ebda: u64, avoid: &[(u64, u64)]) -> Option<u64> {
    let top = if ebda > 0x1000 { ebda.min(LOW_MEMORY_END) } else { LOW_MEMORY_END };
    let mut page = (top & !(PAGE - 1)).checked_sub(PAGE)?;
    while page >= 0x1000 {
        let end = page + PAGE;
        let in_ram = ram.iter().any(|&(b, e)| b <= page && end <= e);
        let clear = avoid.iter().all(|&(s, e)| e <= page || s >= end);
        if in_ram && clear {
            return Some(page);
        }
        page -= PAGE;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_cpu_comes_first_and_limits_hold() {
        let ids = [0, 1, 2, 3];
        assert_eq!(plan(&ids, 0, None, 32).apic_ids, [0, 1, 2, 3]);
        let two = plan(&ids, 0, Some(2), 32);
        assert_eq!(two.apic_ids, [0, 1]);
        assert_eq!(two.skipped, [(2, Skip::Limit), (3, Skip::Limit)]);
        let one = plan(&ids, 0, Some(1), 32);
        assert_eq!(one.apic_ids, [0]);
        assert_eq!(one.skipped.len(), 3);
        // The boot CPU is not first in the table, or not in it at all.
        assert_eq!(plan(&[4, 5, 6], 5, None, 32).apic_ids, [5, 4, 6]);
        assert_eq!(plan(&[4, 6], 5, None, 32).apic_ids, [5, 4, 6]);
        // No MADT: the boot CPU alone.
        assert_eq!(plan(&[], 7, None, 32), CpuPlan { apic_ids: vec![7], skipped: vec![] });
        // A limit of 0 is taken as 1: the boot CPU always runs.
        assert_eq!(plan(&ids, 0, Some(0), 32).apic_ids, [0]);
        // Room for two.
        let full = plan(&ids, 0, None, 2);
        assert_eq!(full.apic_ids, [0, 1]);
        assert_eq!(full.skipped, [(2, Skip::TooMany), (3, Skip::TooMany)]);
        // Duplicates (the MADT parser removes them too) count once.
        assert_eq!(plan(&[0, 1, 1, 0], 0, None, 32).apic_ids, [0, 1]);
    }

    #[test]
    fn the_trampoline_goes_high_in_conventional_memory() {
        let qemu = [(0, 0x9fc00), (0x10_0000, 0x1fe0_0000)];
        assert_eq!(trampoline_page(&qemu, 0x9fc00, &[]), Some(0x9e000));
        assert_eq!(trampoline_page(&qemu, 0, &[]), Some(0x9e000), "the usable region ends first");
        assert_eq!(trampoline_page(&[(0, 0xa0000)], 0, &[]), Some(0x9f000));
        assert_eq!(trampoline_page(&qemu, 0x8_0000, &[]), Some(0x7f000), "below the EBDA");
        assert_eq!(trampoline_page(&qemu, 0x9fc00, &[(0x9d800, 0x9e800)]), Some(0x9c000), "off the boot info");
        assert_eq!(trampoline_page(&[(0x10_0000, 0x2000_0000)], 0, &[]), None, "no low RAM");
        assert_eq!(trampoline_page(&[(0, 0x1000)], 0, &[]), None, "not in the BIOS data page");
        assert_eq!(trampoline_page(&[], 0, &[]), None);
    }
}
