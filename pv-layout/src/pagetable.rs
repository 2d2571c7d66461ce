//! The initial page tables of a PV domain: which frames are tables, of
//! which level, and what every entry holds.
//!
//! The page-table segment is ordered L4, L3s, L2s, L1s (Linux frees the
//! first three frames only if they are exactly L4, L3 and L2:
//! `mmu_pv.c check_pt_base`). With `INIT_P2M`, the p2m list's own L3, L2
//! and L1 tables follow it outside the initial mapping and hang off the
//! same L4. Entries hold MFNs: the caller says which MFN backs each pfn.
//! An L1 entry that maps a frame of the page-table segment is read-only,
//! so that the tables can be pinned (Xen refuses a page table with a
//! writable mapping).
//!
//! Semantics: Xen 4.17 `tools/libs/guest/xg_dom_x86.c`
//! (`setup_pgtables_x86_64`, `get_pg_prot`), `xen/include/public/xen.h`
//! (the hypervisor hole of 64-bit PV guests).

use crate::layout::{Layout, LayoutError, TableCounts, PAGE_SIZE};

/// First address of the hypervisor's hole in a 64-bit PV guest's space.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the hypervisor's hole (exclusive).
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// `_PAGE_RW`.
const PTE_RW: u64 = 0x2;

/// Entry flags the builder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtProt {
    /// L1 entries (RW is cleared for page-table frames).
    pub l1: u64,
    /// L2, L3 and L4 entries.
    pub upper: u64,
}

impl PtProt {
    /// libxc's: L1 `P|RW|A` (0x23), upper levels `P|RW|A|D|US` (0x67);
    /// Xen adds `_PAGE_USER` to 64-bit PV L1 entries itself
    /// (`adjust_guest_l1e`).
    pub const LIBXC: PtProt = PtProt { l1: 0x23, upper: 0x67 };
}

/// One mapping the tables describe: `pages` pfns from `first_pfn` at
/// `va`, with tables taken in order (L3s, L2s, L1s) from `table_pfn`.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    va: u64,
    first_pfn: u64,
    pages: u64,
    counts: TableCounts,
    table_pfn: u64,
}

impl Mapping {
    fn l2_base(&self) -> u64 {
        self.table_pfn + self.counts.l3
    }

    fn l1_base(&self) -> u64 {
        self.l2_base() + self.counts.l2
    }

    /// The tables of this mapping, in segment order, with their levels.
    fn tables(self) -> impl Iterator<Item = (u64, u8)> {
        let l3 = (0..self.counts.l3).map(move |i| (self.table_pfn + i, 3));
        let l2 = (0..self.counts.l2).map(move |i| (self.l2_base() + i, 2));
        let l1 = (0..self.counts.l1).map(move |i| (self.l1_base() + i, 1));
        l3.chain(l2).chain(l1)
    }
}

/// The initial mapping and, with `INIT_P2M`, the p2m's.
fn mappings(l: &Layout) -> (Mapping, Option<Mapping>) {
    let initial =
        Mapping { va: l.virt_base, first_pfn: 0, pages: l.mapped_pages, counts: l.pt, table_pfn: l.pt_pfn + 1 };
    let p2m = match (l.p2m_base, l.p2m_tables) {
        (Some(va), Some((table_pfn, counts))) => {
            Some(Mapping { va, first_pfn: l.p2m.0, pages: l.p2m.1, counts, table_pfn })
        }
        _ => None,
    };
    (initial, p2m)
}

/// Every page-table frame of the layout with its level (4..=1): the L4,
/// the initial mapping's L3s, L2s and L1s, then the p2m mapping's.
pub fn tables(l: &Layout) -> impl Iterator<Item = (u64, u8)> {
    let (initial, p2m) = mappings(l);
    core::iter::once((l.pt_pfn, 4)).chain(initial.tables()).chain(p2m.into_iter().flat_map(Mapping::tables))
}

/// Whether `va` is canonical.
fn canonical(va: u64) -> bool {
    ((va as i64) << 16 >> 16) as u64 == va
}

/// Whether `[start, end)` is non-empty, canonical, in one half, and
/// outside the hypervisor hole.
fn range_ok(start: u64, end: u64) -> bool {
    let Some(last) = end.checked_sub(1).filter(|&l| l >= start) else { return false };
    canonical(start)
        && canonical(last)
        && (start >> 63) == (last >> 63)
        && (end <= HYPERVISOR_VIRT_START || start >= HYPERVISOR_VIRT_END)
}

/// Checks that the initial mapping and the p2m mapping are guest
/// addresses and that the p2m mapping uses L4 slots of its own.
pub fn check_addresses(l: &Layout) -> Result<(), LayoutError> {
    let end = l.mapped_pages.checked_mul(PAGE_SIZE).and_then(|b| l.virt_base.checked_add(b));
    let end = end.filter(|&end| range_ok(l.virt_base, end)).ok_or(LayoutError::BadAddress)?;
    let (initial, p2m) = mappings(l);
    if let Some(p) = p2m {
        let p_end = p.pages.checked_mul(PAGE_SIZE).and_then(|b| p.va.checked_add(b)).ok_or(LayoutError::BadAddress)?;
        if !range_ok(p.va, p_end) {
            return Err(LayoutError::BadAddress);
        }
        let slots = |start: u64, end: u64| (start >> 39)..=((end - 1) >> 39);
        let (a, b) = (slots(initial.va, end), slots(p.va, p_end));
        if a.start() <= b.end() && b.start() <= a.end() {
            return Err(LayoutError::BadAddress);
        }
    }
    Ok(())
}

/// One page-table entry to write: slot `slot` of the table in pfn
/// `table_pfn` gets `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtEntry {
    /// The table's pfn.
    pub table_pfn: u64,
    /// The slot, 0..512.
    pub slot: u64,
    /// The entry: an MFN and flags.
    pub value: u64,
}

/// Calls `put` with every entry of the initial page tables (each once),
/// with MFNs from `mfn_of(pfn)`; `None` from it, or a layout whose
/// addresses [`check_addresses`] refuses, is an error. Slots the caller
/// owns (e.g. the hypervisor's L4 slots 256..272) are not touched.
pub fn for_each_entry(
    l: &Layout,
    prot: PtProt,
    mfn_of: impl Fn(u64) -> Option<u64>,
    mut put: impl FnMut(PtEntry),
) -> Result<(), LayoutError> {
    check_addresses(l)?;
    let mfn = |pfn: u64| mfn_of(pfn).ok_or(LayoutError::BadLayout);
    let (initial, p2m) = mappings(l);
    for m in core::iter::once(initial).chain(p2m) {
        // L1 entries: one per page.
        for i in 0..m.pages {
            let (pfn, va) = (m.first_pfn + i, m.va + i * PAGE_SIZE);
            let flags = if l.is_pt_pfn(pfn) { prot.l1 & !PTE_RW } else { prot.l1 };
            let table_pfn = m.l1_base() + ((va >> 21) - (m.va >> 21));
            put(PtEntry { table_pfn, slot: (va >> 12) & 511, value: (mfn(pfn)? << 12) | flags });
        }
        // Upper levels: one entry per table of the level below.
        let levels = [(m.l1_base(), m.counts.l1, 21u32, m.l2_base()), (m.l2_base(), m.counts.l2, 30, m.table_pfn)];
        for (below_base, below_count, shift, table_base) in levels {
            for j in 0..below_count {
                let va = ((m.va >> shift) + j) << shift;
                let table_pfn = table_base + ((va >> (shift + 9)) - (m.va >> (shift + 9)));
                let value = (mfn(below_base + j)? << 12) | prot.upper;
                put(PtEntry { table_pfn, slot: (va >> shift) & 511, value });
            }
        }
        for k in 0..m.counts.l3 {
            let va = ((m.va >> 39) + k) << 39;
            let value = (mfn(m.table_pfn + k)? << 12) | prot.upper;
            put(PtEntry { table_pfn: l.pt_pfn, slot: (va >> 39) & 511, value });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{compute, LayoutInput};
    use std::collections::BTreeMap;
    use std::vec::Vec;

    fn linux_domu() -> Layout {
        compute(&LayoutInput {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kstart: 0xffff_ffff_8100_0000,
            virt_kend: 0xffff_ffff_84a0_0000,
            nr_pages: 0x20000,
            initrd_len: Some(20 << 20),
            initrd_unmapped: true,
            p2m_base: Some(0x80_0000_0000),
            store: true,
            console: true,
        })
        .unwrap()
    }

    /// A fake machine: mfn = pfn + 0x10_0000.
    fn mfn(pfn: u64) -> Option<u64> {
        Some(pfn + 0x10_0000)
    }

    /// The tables as written: (table pfn, slot) → value.
    fn write_all(l: &Layout) -> BTreeMap<(u64, u64), u64> {
        let mut out = BTreeMap::new();
        for_each_entry(l, PtProt::LIBXC, mfn, |e| {
            assert!(out.insert((e.table_pfn, e.slot), e.value).is_none(), "{e:?} written twice");
        })
        .unwrap();
        out
    }

    /// Walks the written tables like the MMU: the pfn `va` maps and the
    /// L1 flags.
    fn walk(t: &BTreeMap<(u64, u64), u64>, l4_pfn: u64, va: u64) -> Option<(u64, u64)> {
        let mut table = l4_pfn;
        for shift in [39u32, 30, 21] {
            let e = *t.get(&(table, (va >> shift) & 511))?;
            assert_eq!(e & 0xfff, 0x67);
            table = (e >> 12) - 0x10_0000;
        }
        let e = *t.get(&(table, (va >> 12) & 511))?;
        Some(((e >> 12) - 0x10_0000, e & 0xfff))
    }

    #[test]
    fn tables_come_in_segment_order_l4_l3_l2_l1_then_the_p2m_s() {
        let l = linux_domu();
        let t: Vec<_> = tables(&l).collect();
        assert_eq!(t.len(), 41 + 3);
        assert_eq!(&t[..3], &[(0x4a03, 4), (0x4a04, 3), (0x4a05, 2)]);
        assert!(t[3..41].iter().all(|&(_, lvl)| lvl == 1));
        assert_eq!(t[40], (0x4a2b, 1));
        let (first, _) = l.p2m_segment();
        let p2m_tables = first + 256;
        assert_eq!(&t[41..], &[(p2m_tables, 3), (p2m_tables + 1, 2), (p2m_tables + 2, 1)]);
    }

    #[test]
    fn every_mapped_pfn_is_reachable_and_tables_are_read_only() {
        let l = linux_domu();
        let t = write_all(&l);
        for pfn in [0, 0x1000, 0x4a00, 0x4a02, 0x4a2c, l.mapped_pages - 1] {
            assert_eq!(walk(&t, l.pt_pfn, l.va(pfn)), Some((pfn, 0x23)), "pfn {pfn:#x}");
        }
        for pfn in l.pt_pfn..l.pt_pfn + l.nr_pt_frames() {
            assert_eq!(walk(&t, l.pt_pfn, l.va(pfn)), Some((pfn, 0x21)), "table {pfn:#x} mapped read-only");
        }
        assert_eq!(walk(&t, l.pt_pfn, l.va(l.mapped_pages)), None, "the mapping ends there");
        // 38 L1s of 512 entries, one L2 with 38, an L3 with 1, L4 slot 511.
        let l1_entries = t.keys().filter(|(tbl, _)| (0x4a06..0x4a2c).contains(tbl)).count() as u64;
        assert_eq!(l1_entries, l.mapped_pages);
        assert_eq!(t.get(&(0x4a03, 511)), Some(&((0x4a04 + 0x10_0000) << 12 | 0x67)));
    }

    #[test]
    fn the_p2m_is_mapped_at_init_p2m_through_its_own_tables() {
        let l = linux_domu();
        let t = write_all(&l);
        let (p2m_pfn, p2m_pages) = l.p2m;
        for i in [0, 1, p2m_pages - 1] {
            assert_eq!(walk(&t, l.pt_pfn, 0x80_0000_0000 + i * PAGE_SIZE), Some((p2m_pfn + i, 0x23)));
        }
        assert!(t.contains_key(&(l.pt_pfn, 1)), "L4 slot 1");
    }

    #[test]
    fn hypervisor_slots_and_bad_addresses_are_refused() {
        let mut l = linux_domu();
        assert!(t_untouched(&l, 256..272));
        l.virt_base = HYPERVISOR_VIRT_START;
        assert_eq!(check_addresses(&l), Err(LayoutError::BadAddress));
        let mut l = linux_domu();
        l.p2m_base = Some(0xffff_ffff_0000_0000);
        assert_eq!(check_addresses(&l), Err(LayoutError::BadAddress), "shares the kernel's L4 slot");
        let mut l = linux_domu();
        l.virt_base = 0x0000_8000_0000_0000 - PAGE_SIZE;
        assert_eq!(check_addresses(&l), Err(LayoutError::BadAddress), "non-canonical end");
        let l = linux_domu();
        let none = for_each_entry(&l, PtProt::LIBXC, |pfn| (pfn < 100).then_some(pfn), |_| {});
        assert_eq!(none, Err(LayoutError::BadLayout), "a pfn without a frame");
    }

    fn t_untouched(l: &Layout, slots: core::ops::Range<u64>) -> bool {
        !write_all(l).keys().any(|&(tbl, slot)| tbl == l.pt_pfn && slots.contains(&slot))
    }

    #[test]
    fn a_mapping_at_zero_uses_slot_zero() {
        let l = compute(&LayoutInput {
            virt_base: 0,
            virt_kstart: 0,
            virt_kend: 0x5_2000,
            nr_pages: 8192,
            initrd_len: None,
            initrd_unmapped: false,
            p2m_base: None,
            store: true,
            console: true,
        })
        .unwrap();
        let t = write_all(&l);
        assert_eq!(t.len() as u64, 1 + 1 + 2 + l.mapped_pages, "L4→L3, L3→L2, 2 L2 entries, the L1 entries");
        assert_eq!(walk(&t, l.pt_pfn, l.va(l.stack_pfn)), Some((l.stack_pfn, 0x23)));
        assert_eq!(walk(&t, l.pt_pfn, l.va(l.pt_pfn)), Some((l.pt_pfn, 0x21)));
    }
}
