//! Host tests of validation, devalidation and entry updates.

extern crate std;
use std::vec::Vec;

use super::*;
use crate::guest_access::tests::FakeMemory;
use crate::mm::frame_table::tests::table;
use crate::mm::frame_table::{PageInfo, PageList};
use crate::mm::PAGE_SIZE;

const NR: usize = 16;
const ME: MapRights<'static> =
    MapRights { id: 0, privileged: false, shared_info: Mfn(15), grant_frames: &[], status_frames: &[] };

/// Frames 0..12 belong to domain 0, 12..14 to domain 1; 0→1→2→3 is an
/// L4→L3→L2→L1 hierarchy whose L1 maps 4 and 5 writable, 6 read-only.
fn world() -> (FrameTable, FakeMemory) {
    let mut ft = table(NR);
    let (mut d0, mut d1) = (PageList::default(), PageList::default());
    for m in 0..12 {
        ft.assign_page(Mfn(m), 0, &mut d0).unwrap();
    }
    for m in 12..14 {
        ft.assign_page(Mfn(m), 1, &mut d1).unwrap();
    }
    ft.xen_l4_slots = [0xdead_0007; 16];
    let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; NR]);
    mem.set_entry(0, 0, (1 << 12) | 0x67);
    mem.set_entry(1, 0, (2 << 12) | 0x67);
    mem.set_entry(2, 0, (3 << 12) | 0x67);
    mem.set_entry(3, 0, (4 << 12) | 0x23);
    mem.set_entry(3, 1, (5 << 12) | 0x23);
    mem.set_entry(3, 2, (6 << 12) | 0x21);
    (ft, mem)
}

fn snapshot(ft: &FrameTable) -> Vec<PageInfo> {
    ft.iter().map(|(_, p)| *p).collect()
}

fn entry(mem: &FakeMemory, table: usize, slot: usize) -> u64 {
    u64::from_le_bytes(mem.0[table][slot * 8..slot * 8 + 8].try_into().unwrap())
}

fn counts(ft: &FrameTable, m: u64) -> (u32, u32, PageType) {
    let p = ft.info(Mfn(m)).unwrap();
    (p.count(), p.type_count(), p.page_type())
}

#[test]
fn pinning_validates_the_hierarchy_and_unpinning_releases_it() {
    let (mut ft, mut mem) = world();
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.pin(Mfn(0), 4, &ME).unwrap();
    assert_eq!(counts(mmu.ft, 0), (1, 1, PageType::L4));
    assert_eq!(counts(mmu.ft, 1), (1, 1, PageType::L3));
    assert_eq!(counts(mmu.ft, 2), (1, 1, PageType::L2));
    assert_eq!(counts(mmu.ft, 3), (1, 1, PageType::L1));
    assert_eq!(counts(mmu.ft, 4), (1, 1, PageType::Writable));
    assert_eq!(counts(mmu.ft, 6), (1, 0, PageType::None), "read-only: a reference, no type");
    assert!(mmu.ft.info(Mfn(0)).unwrap().pinned());
    assert_eq!(mmu.pin(Mfn(0), 4, &ME), Err(XenError::Einval), "pinned twice");
    assert_eq!(counts(mmu.ft, 0), (1, 1, PageType::L4), "the failed pin took nothing");
    assert_eq!(entry(&mem, 0, 256), 0xdead_0007, "the hypervisor slots are filled");
    assert_eq!(entry(&mem, 3, 2), (6 << 12) | 0x25, "accepted entries get _PAGE_USER");
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.unpin(Mfn(0), 0).unwrap();
    assert_eq!(mmu.unpin(Mfn(0), 0), Err(XenError::Einval), "unpinned twice");
    assert_eq!(snapshot(&ft), before, "every count back to zero");
}

#[test]
fn a_failed_validation_leaves_every_count_as_before() {
    let (mut ft, mut mem) = world();
    mem.set_entry(3, 7, (2 << 12) | 0x23); // the L1 maps the L2 writable
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    assert_eq!(mmu.pin(Mfn(0), 4, &ME), Err(XenError::Ebusy));
    assert_eq!(snapshot(&ft), before);
    // Read-only it is fine.
    mem.set_entry(3, 7, (2 << 12) | 0x21);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.pin(Mfn(0), 4, &ME).unwrap();
    mmu.unpin(Mfn(0), 0).unwrap();
    assert_eq!(snapshot(&ft), before);
}

#[test]
fn refused_hierarchies() {
    let cases: [(u64, u64, u64, XenError, &str); 6] = [
        (0, 1, 0x67, XenError::Einval, "an L4 naming itself (linear)"),
        (1, 1, (1 << 12) | 0x67, XenError::Einval, "an L3 naming itself"),
        (2, 1, (9 << 12) | 0xe7, XenError::Einval, "L2 PSE"),
        (1, 2, (9 << 12) | 0x167, XenError::Einval, "L3 GLOBAL"),
        (2, 3, (12 << 12) | 0x67, XenError::Einval, "an L1 of another domain"),
        (3, 9, (12 << 12) | 0x21, XenError::Ebusy, "mapping another domain's frame"),
    ];
    for (table, slot, pte, err, what) in cases {
        let (mut ft, mut mem) = world();
        mem.set_entry(table, slot, pte);
        let before = snapshot(&ft);
        let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
        assert_eq!(mmu.pin(Mfn(0), 4, &ME), Err(err), "{what}");
        assert_eq!(snapshot(&ft), before, "{what}");
    }
    let (mut ft, mut mem) = world();
    mem.set_entry(3, 9, (40 << 12) | 0x21);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    assert_eq!(mmu.pin(Mfn(3), 1, &ME), Err(XenError::Eperm), "not RAM");
}

#[test]
fn entry_updates_move_references() {
    let (mut ft, mut mem) = world();
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.pin(Mfn(0), 4, &ME).unwrap();
    let before = snapshot(mmu.ft);
    // Remap slot 0 from frame 4 (RW) to 7 (RW).
    assert_eq!(mmu.mod_entry(Mfn(3), 1, 0, (7 << 12) | 0x23, false, &ME, &ME), Ok(true));
    assert_eq!(counts(mmu.ft, 4), (0, 0, PageType::None));
    assert_eq!(counts(mmu.ft, 7), (1, 1, PageType::Writable));
    // A new L1 in frame 8, linked at L2 slot 1: validated on the way.
    assert_eq!(mmu.mod_entry(Mfn(2), 2, 1, (8 << 12) | 0x67, false, &ME, &ME), Ok(true));
    assert_eq!(counts(mmu.ft, 8), (1, 1, PageType::L1));
    assert_eq!(
        mmu.mod_entry(Mfn(3), 1, 5, (8 << 12) | 0x23, false, &ME, &ME),
        Err(XenError::Ebusy),
        "a page table writable"
    );
    assert_eq!(mmu.mod_entry(Mfn(3), 1, 5, (8 << 12) | 0x21, false, &ME, &ME), Ok(true), "read-only is fine");
    assert_eq!(counts(mmu.ft, 8), (2, 1, PageType::L1));
    assert_eq!(mmu.mod_entry(Mfn(0), 4, 256, 0, false, &ME, &ME), Err(XenError::Einval), "hypervisor slot");
    assert_eq!(mmu.mod_entry(Mfn(0), 4, 271, 0, false, &ME, &ME), Err(XenError::Einval), "hypervisor slot");
    // Undo everything.
    mmu.mod_entry(Mfn(3), 1, 5, 0, false, &ME, &ME).unwrap();
    mmu.mod_entry(Mfn(2), 2, 1, 0, false, &ME, &ME).unwrap();
    mmu.mod_entry(Mfn(3), 1, 0, (4 << 12) | 0x23, false, &ME, &ME).unwrap();
    assert_eq!(snapshot(mmu.ft), before);
}

#[test]
fn io_memory_is_the_privileged_domains_to_map() {
    // RAM up to frame 0x110, all of it free; frame 0x200 is not RAM at all.
    let mut ft = table(0x110);
    let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
    let dom0 = MapRights { privileged: true, ..ME };
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    let (mmio, bios, ram) = ((0x200 << 12) | 0x33, (0xf0 << 12) | 0x21, (0x105 << 12) | 0x21); // MMIO with PCD
    assert_eq!(mmu.get_page_from_l1e(mmio, &ME, &ME), Err(XenError::Einval), "cache attributes need I/O rights");
    assert_eq!(mmu.get_page_from_l1e((0x200 << 12) | 0x23, &ME, &ME), Err(XenError::Eperm), "MMIO");
    assert_eq!(mmu.get_page_from_l1e(bios, &ME, &ME), Err(XenError::Ebusy), "the BIOS area");
    assert_eq!(mmu.get_page_from_l1e(mmio, &dom0, &dom0), Ok(()), "MMIO for the privileged domain");
    assert_eq!(mmu.get_page_from_l1e(bios, &dom0, &dom0), Ok(()), "the first MiB: legacy I/O");
    assert_eq!(mmu.get_page_from_l1e(ram, &dom0, &dom0), Err(XenError::Ebusy), "free RAM above it: no");
    mmu.put_page_from_l1e(mmio);
    mmu.put_page_from_l1e(bios);
    assert_eq!(snapshot(&ft), before, "I/O mappings hold no references");
}

#[test]
fn io_memory_ends_at_the_address_width_and_spares_the_msi_window() {
    let mut ft = table(0x110);
    ft.io_frames_end = 1 << (40 - 12); // a 40-bit machine
    let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
    let dom0 = MapRights { privileged: true, ..ME };
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    let rw = |mfn: u64| (mfn << 12) | 0x67;
    assert_eq!(mmu.get_page_from_l1e(rw(0xfec00), &dom0, &dom0), Ok(()), "an IO-APIC page");
    assert_eq!(mmu.get_page_from_l1e(rw(0xfedff), &dom0, &dom0), Ok(()), "below the MSI window");
    assert_eq!(mmu.get_page_from_l1e(rw(0xfee00), &dom0, &dom0), Err(XenError::Eperm), "the local APIC");
    assert_eq!(mmu.get_page_from_l1e(rw(0xfeeff), &dom0, &dom0), Err(XenError::Eperm), "the MSI window's end");
    assert_eq!(mmu.get_page_from_l1e(rw(0xfef00), &dom0, &dom0), Ok(()), "past the MSI window");
    assert_eq!(mmu.get_page_from_l1e(rw((1 << 28) - 1), &dom0, &dom0), Ok(()), "the last frame a bus decodes");
    assert_eq!(mmu.get_page_from_l1e(rw(1 << 28), &dom0, &dom0), Err(XenError::Eperm), "past the address width");
    // PV-GRUB started as dom0 on Xen reads `console.dom0` (offset 0x490,
    // size 0x28) as a console mfn and maps it: refused, as on Xen.
    assert_eq!(mmu.get_page_from_l1e(rw(0x28_0000_0490), &dom0, &dom0), Err(XenError::Eperm), "PV-GRUB's console");
    assert_eq!(mmu.get_page_from_l1e(rw(1 << 28), &ME, &ME), Err(XenError::Eperm), "nor for a domU");
    for mfn in [0xfec00, 0xfedff, 0xfef00, (1 << 28) - 1] {
        mmu.put_page_from_l1e(rw(mfn));
    }
    assert_eq!(snapshot(&ft), before, "I/O mappings hold no references");
}

#[test]
fn msix_tables_in_use_are_mapped_read_only() {
    crate::irq::tests::install_qemu_with_pci();
    let irq = crate::irq::with(|r| {
        r.pci_add(0x10);
        r.map_msi(0x10, 0, 0xfebf_1000)
    });
    assert!(matches!(irq, Some(Ok(_))));
    let (mut ft, mut mem) = world();
    ft.io_frames_end = 1 << 28;
    let dom0 = MapRights { privileged: true, ..ME };
    // Already in the L1 when it is validated: made read-only.
    mem.set_entry(3, 8, (0xfebf1 << 12) | 0x23);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.pin(Mfn(0), 4, &dom0).unwrap();
    assert_eq!(pagetable::entry(&*mmu.mem, Mfn(3), 8).unwrap() & PTE_RW, 0, "the table's frame: read-only");
    // Updated later: read-only, as Xen forces it; other device memory stays writable.
    assert_eq!(mmu.mod_entry(Mfn(3), 1, 9, (0xfebf1 << 12) | 0x23, false, &dom0, &dom0), Ok(true));
    assert_eq!(mmu.mod_entry(Mfn(3), 1, 10, (0xfebf2 << 12) | 0x23, false, &dom0, &dom0), Ok(true));
    assert_eq!(pagetable::entry(&*mmu.mem, Mfn(3), 9).unwrap() & (PTE_RW | PTE_P), PTE_P);
    assert_eq!(pagetable::entry(&*mmu.mem, Mfn(3), 10).unwrap() & PTE_RW, PTE_RW);
    // Once the entry is unmapped, the table may be mapped writable again.
    crate::irq::with(|r| r.unmap(irq.and_then(Result::ok).unwrap_or_default()));
    assert_eq!(mmu.mod_entry(Mfn(3), 1, 11, (0xfebf1 << 12) | 0x23, false, &dom0, &dom0), Ok(true));
    assert_eq!(pagetable::entry(&*mmu.mem, Mfn(3), 11).unwrap() & PTE_RW, PTE_RW);
}

/// A sparse hierarchy: the L4 (frame 0) links L3 1 at slot 511 and slot 0
/// (to frame 7, a second L3); L3 1 links L2 2 at slot 300; L2 2 links
/// L1 3 at slots 0 and 511 (twice: a second type reference) and L1 8 at
/// slot 17; L3 7 links nothing. The L1s map frames at their first, last
/// and scattered slots, writable and read-only.
fn sparse_world() -> (FrameTable, FakeMemory) {
    let (ft, mut mem) = world();
    for f in [0, 1, 2, 3] {
        mem.0[f] = [0; PAGE_SIZE];
    }
    mem.set_entry(0, 0, (7 << 12) | 0x67);
    mem.set_entry(0, 511, (1 << 12) | 0x67);
    mem.set_entry(1, 300, (2 << 12) | 0x67);
    mem.set_entry(2, 0, (3 << 12) | 0x67);
    mem.set_entry(2, 17, (8 << 12) | 0x67);
    mem.set_entry(2, 511, (3 << 12) | 0x67);
    for (slot, pte) in [(0, (4 << 12) | 0x23), (255, (5 << 12) | 0x21), (511, (4 << 12) | 0x23)] {
        mem.set_entry(3, slot, pte);
    }
    mem.set_entry(8, 511, (6 << 12) | 0x23);
    (ft, mem)
}

#[test]
fn sparse_tables_validate_in_one_pass_and_release_everything() {
    let (mut ft, mut mem) = sparse_world();
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.pin(Mfn(0), 4, &ME).unwrap();
    assert_eq!(counts(mmu.ft, 3), (2, 2, PageType::L1), "linked twice");
    assert_eq!(counts(mmu.ft, 4), (2, 2, PageType::Writable), "mapped writable twice");
    assert_eq!(counts(mmu.ft, 5), (1, 0, PageType::None));
    assert_eq!(counts(mmu.ft, 6), (1, 1, PageType::Writable), "the last slot of the second L1");
    assert_eq!(counts(mmu.ft, 7), (1, 1, PageType::L3), "an empty L3");
    for (table, slot) in [(0, 0), (0, 511), (1, 300), (2, 0), (2, 17), (2, 511), (3, 0), (3, 255), (3, 511), (8, 511)] {
        assert_eq!(entry(&mem, table, slot) & PTE_US, PTE_US, "_PAGE_USER in {table}/{slot}");
    }
    assert_eq!(entry(&mem, 3, 1), 0, "absent entries stay as they are");
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.unpin(Mfn(0), 0).unwrap();
    assert_eq!(snapshot(&ft), before);
}

#[test]
fn an_l1_failing_after_many_entries_releases_them_all() {
    let (mut ft, mut mem) = sparse_world();
    mem.set_entry(3, 400, (12 << 12) | 0x21); // another domain's frame
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    assert_eq!(mmu.pin(Mfn(3), 1, &ME), Err(XenError::Ebusy));
    assert_eq!(snapshot(&ft), before);
    assert_eq!(entry(&mem, 3, 400), (12 << 12) | 0x21, "the refused entry as it was");
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    assert_eq!(mmu.pin(Mfn(0), 4, &ME), Err(XenError::Ebusy), "found from the top");
    assert_eq!(snapshot(&ft), before);
}

#[test]
fn a_preempted_sparse_pin_and_unpin_end_as_an_unpreempted_one() {
    let (mut ft, mut mem) = sparse_world();
    let before = snapshot(&ft);
    let mut mmu = Mmu { ft: &mut ft, mem: &mut mem };
    mmu.pin(Mfn(0), 4, &ME).unwrap();
    let pinned = snapshot(mmu.ft);
    let tables = mem.0[..9].to_vec();
    mmu_unpin_all(&mut ft, &mut mem);
    assert_eq!(snapshot(&ft), before);
    // Again with a budget of one table per step: every step makes progress
    // (at least one entry; with the budget spent, one entry per step).
    let (mut ft, mut mem) = sparse_world();
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 5000, "no progress");
        ft.set_preempt_at(ft.tables_walked().wrapping_add(1));
        match (Mmu { ft: &mut ft, mem: &mut mem }).pin_preemptible(Mfn(0), 4, &ME) {
            Ok(()) => break,
            Err(XenError::Erestart) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(steps > 1, "the budget stopped it");
    assert_eq!(snapshot(&ft), pinned);
    assert!(mem.0[..9] == tables[..], "the same entries written");
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 5000, "no progress");
        ft.set_preempt_at(ft.tables_walked().wrapping_add(1));
        match (Mmu { ft: &mut ft, mem: &mut mem }).unpin_preemptible(Mfn(0), 0) {
            Ok(()) => break,
            Err(XenError::Erestart) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(steps > 1, "the budget stopped it");
    assert_eq!(snapshot(&ft), before);
}

fn mmu_unpin_all(ft: &mut FrameTable, mem: &mut FakeMemory) {
    Mmu { ft, mem }.unpin(Mfn(0), 0).unwrap();
}
