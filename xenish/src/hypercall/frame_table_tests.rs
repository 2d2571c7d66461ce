//! Host tests of the frame table through the hypercalls a guest uses:
//! hierarchies built from scratch, linked with `mmu_update`, pinned,
//! switched to and torn down, and the refusals that must leave every count
//! as it was.

extern crate std;
use std::vec::Vec;

use guest_abi::arch_x86::GuestHandle;
use guest_abi::memory::{MemoryExchange, XENMEM_EXCHANGE};
use guest_abi::xen::{
    DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_MMUEXT_OP, HYPERVISOR_MMU_UPDATE, MMUEXT_CLEAR_PAGE,
    MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_SET_LDT, MMUEXT_UNPIN_TABLE, MMU_PT_UPDATE_PRESERVE_AD,
};
use zerocopy::{FromZeros, IntoBytes};

use super::tests::{World, BUF_VA};
use crate::guest_access::{Access, GuestMemory};
use crate::mm::frame_table::PageType;
use crate::mm::Mfn;

const EINVAL: i64 = -22;
const EBUSY: i64 = -16;
const SELF: u64 = DOMID_SELF as u64;
/// Where requests go: the last page of the buffer (frame 7).
const REQ_VA: u64 = BUF_VA + 0x3000;

fn mmu_update(w: &mut World, reqs: &[(u64, u64)]) -> i64 {
    let bytes: Vec<u8> =
        reqs.iter().flat_map(|&(ptr, val)| ptr.to_le_bytes().into_iter().chain(val.to_le_bytes())).collect();
    w.poke(REQ_VA, &bytes);
    w.call_ret(u64::from(HYPERVISOR_MMU_UPDATE), [REQ_VA, reqs.len() as u64, 0, SELF, 0])
}

fn ext(w: &mut World, cmd: u32, arg1: u64) -> i64 {
    ext2(w, cmd, arg1, 0)
}

fn ext2(w: &mut World, cmd: u32, arg1: u64, arg2: u64) -> i64 {
    let mut b = [0u8; 24];
    b[0..4].copy_from_slice(&cmd.to_le_bytes());
    b[8..16].copy_from_slice(&arg1.to_le_bytes());
    b[16..24].copy_from_slice(&arg2.to_le_bytes());
    w.poke(REQ_VA, &b);
    w.call_ret(u64::from(HYPERVISOR_MMUEXT_OP), [REQ_VA, 1, 0, SELF, 0])
}

/// `XENMEM_exchange` of frame `mfn` for one new frame at gpfn 0x40.
fn exchange(w: &mut World, mfn: u64) -> i64 {
    let mut e = MemoryExchange::new_zeroed();
    (e.in_.extent_start, e.in_.nr_extents, e.in_.domid) = (GuestHandle::new(REQ_VA + 0x100), 1, DOMID_SELF);
    (e.out_.extent_start, e.out_.nr_extents, e.out_.domid) = (GuestHandle::new(REQ_VA + 0x108), 1, DOMID_SELF);
    w.poke(REQ_VA, e.as_bytes());
    w.poke(REQ_VA + 0x100, &[mfn.to_le_bytes(), 0x40u64.to_le_bytes()].concat());
    w.call_ret(u64::from(HYPERVISOR_MEMORY_OP), [u64::from(XENMEM_EXCHANGE), REQ_VA, 0, 0, 0])
}

/// Gives the domain `n` more (zeroed) frames from the pool.
fn grab(w: &mut World, n: usize) -> Vec<Mfn> {
    let frames: Vec<Mfn> = (0..n).map(|_| w.pool.0.pop().unwrap()).collect();
    for &m in &frames {
        w.give(0, m);
    }
    frames
}

/// Machine address of entry `slot` of frame `table`.
fn ma(table: Mfn, slot: u64) -> u64 {
    table.addr() + slot * 8
}

fn idx(shift: u32) -> u64 {
    (BUF_VA >> shift) & 511
}

fn info(w: &World, m: Mfn) -> (u32, u32, PageType, bool) {
    let p = w.ft.info(m).unwrap();
    (p.count(), p.type_count(), p.page_type(), p.pinned())
}

#[test]
fn a_hierarchy_built_from_scratch_is_pinned_switched_to_and_torn_down() {
    let mut w = World::new(false);
    let start = w.counts();
    let new = grab(&mut w, 5);
    let (l4, l3, l2, l1, spare) = (new[0], new[1], new[2], new[3], new[4]);
    let after_grab = w.counts();
    assert_eq!(start, after_grab, "taking frames changes no count");

    // Bottom up, as Linux does: pin the L1, fill it, then each level.
    assert_eq!(ext(&mut w, MMUEXT_PIN_L1_TABLE, l1.0), 0);
    let maps: Vec<(u64, u64)> = (0..4).map(|i| (ma(l1, idx(12) + i), ((4 + i) << 12) | 0x63)).collect();
    assert_eq!(mmu_update(&mut w, &maps), 0);
    assert_eq!(info(&w, Mfn(4)), (2, 2, PageType::Writable, false), "mapped writable by both L1s");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L2_TABLE, l2.0), 0);
    assert_eq!(mmu_update(&mut w, &[(ma(l2, idx(21)), l1.addr() | 0x63)]), 0);
    assert_eq!(info(&w, l1), (2, 2, PageType::L1, true), "pinned and linked");
    // The L3 is linked unpinned: linking validates it (lazy validation).
    // Not a page table yet: a plain write, as Xen does.
    assert_eq!(mmu_update(&mut w, &[(ma(l3, idx(30)), l2.addr() | 0x63)]), 0, "filled as plain memory");
    assert_eq!(info(&w, l3).2, PageType::None, "still no page table");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, l4.0), 0);
    assert_eq!(mmu_update(&mut w, &[(ma(l4, idx(39)), l3.addr() | 0x63)]), 0);
    assert_eq!(info(&w, l3), (1, 1, PageType::L3, false), "validated through the link");
    w.audit();
    assert_eq!(info(&w, l2), (2, 2, PageType::L2, true));

    // Switch to it; guest pointers now resolve through it.
    assert_eq!(ext(&mut w, MMUEXT_NEW_BASEPTR, l4.0), 0);
    assert_eq!(w.dom.vcpus[0].kernel_l4, l4);
    assert_eq!(info(&w, l4), (2, 2, PageType::L4, true), "pin and CR3");
    assert_eq!(info(&w, Mfn(0)), (1, 1, PageType::L4, true), "the old L4 keeps its pin");
    let g = GuestMemory::new(&mut w.mem, l4);
    assert_eq!(g.translate(BUF_VA + 0x1234, Access::Write), Ok(0x5234));
    assert_eq!(w.mem.0[l4.0 as usize][256 * 8..257 * 8], w.ft.xen_l4_slots[0].to_le_bytes(), "Xen slots");

    // A second L1, linked with PRESERVE_AD and never pinned.
    let pad = u64::from(MMU_PT_UPDATE_PRESERVE_AD);
    assert_eq!(mmu_update(&mut w, &[(ma(l2, idx(21) + 1) | pad, spare.addr() | 0x63)]), 0);
    assert_eq!(info(&w, spare), (1, 1, PageType::L1, false));
    w.audit();

    // Refusals on the new hierarchy change nothing.
    let counts = w.counts();
    for (what, req, errno) in [
        ("its L1 mapped writable", (ma(l1, 100), l1.addr() | 0x63), EBUSY),
        ("its L4 mapped writable", (ma(l1, 100), l4.addr() | 0x63), EBUSY),
        ("an L4 hypervisor slot", (ma(l4, 271), l3.addr() | 0x63), EINVAL),
        ("an L4 hypervisor slot cleared", (ma(l4, 256), 0), EINVAL),
        ("L2 PSE", (ma(l2, 7), (9 << 12) | 0xe3), EINVAL),
        ("a writable linear L2 entry", (ma(l2, 8), l2.addr() | 0x63), EINVAL),
        ("a writable linear L4 entry", (ma(l4, 8), l4.addr() | 0x63), EINVAL),
        ("an L2 naming an L3", (ma(l2, 8), l3.addr() | 0x61), EINVAL),
        ("an L3 naming an L1", (ma(l3, 8), l1.addr() | 0x63), EINVAL),
    ] {
        assert_eq!(mmu_update(&mut w, &[req]), errno, "{what}");
        assert_eq!(w.counts(), counts, "{what}");
    }
    for (what, cmd, mfn) in [
        ("an L1 pinned as an L2", MMUEXT_PIN_L2_TABLE, l1),
        ("a linked L3 pinned as an L1", MMUEXT_PIN_L1_TABLE, l3),
        ("an unpinned table unpinned", MMUEXT_UNPIN_TABLE, l3),
        ("a page table cleared", MMUEXT_CLEAR_PAGE, l2),
        ("an L1 as a base pointer", MMUEXT_NEW_USER_BASEPTR, spare),
    ] {
        assert_eq!(ext(&mut w, cmd, mfn.0), EINVAL, "{what}");
        assert_eq!(w.counts(), counts, "{what}");
    }
    w.audit();

    // Tear down: back to the builder's L4, unpin, unlink; every count
    // returns to where it was.
    assert_eq!(mmu_update(&mut w, &[(ma(l2, idx(21) + 1), 0)]), 0);
    assert_eq!(ext(&mut w, MMUEXT_NEW_BASEPTR, 0), 0);
    assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(0));
    for t in [l1, l4, l2] {
        assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, t.0), 0);
    }
    assert_eq!(w.counts(), start, "every count back to where it was");
    w.audit();
    for m in new {
        assert_eq!(info(&w, m), (0, 0, PageType::None, false));
    }
}

#[test]
fn in_use_frames_cannot_be_pinned_or_retyped() {
    let mut w = World::new(false);
    let counts = w.counts();
    // Frame 6 is mapped writable (BUF_VA + 0x2000).
    assert_eq!(ext(&mut w, MMUEXT_PIN_L1_TABLE, 6), EINVAL, "a frame with a writable mapping");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, 6), EINVAL);
    assert_eq!(ext(&mut w, MMUEXT_NEW_BASEPTR, 6), EINVAL);
    // Frame 3 is the L1 in use.
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, 3), EINVAL, "in use but not pinned");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L2_TABLE, 3), EINVAL, "retyped while in use");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L3_TABLE, 2), EINVAL, "retyped while in use");
    assert_eq!(ext(&mut w, MMUEXT_CLEAR_PAGE, 3), EINVAL, "made writable while in use");
    assert_eq!(w.counts(), counts);
    // Once unmapped, frame 6 may become a page table.
    let l1 = 3 * 4096 + idx(12) * 8 + 2 * 8;
    assert_eq!(mmu_update(&mut w, &[(l1, 0)]), 0);
    assert_eq!(ext(&mut w, MMUEXT_PIN_L1_TABLE, 6), 0);
    assert_eq!(mmu_update(&mut w, &[(l1, (6 << 12) | 0x63)]), EBUSY, "and then not be mapped writable");
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, 6), 0);
    assert_eq!(mmu_update(&mut w, &[(l1, (6 << 12) | 0x67)]), 0);
    assert_eq!(w.counts(), counts);
}

#[test]
fn the_builders_l4_can_be_unpinned_and_replaced() {
    // Linux unpins pt_base, then switches to its own L4: the builder's
    // hierarchy is devalidated once nothing references it.
    let mut w = World::new(false);
    let start = w.counts();
    let new = grab(&mut w, 1);
    w.mem.0[new[0].0 as usize] = w.mem.0[0];
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, 0), 0);
    assert_eq!(info(&w, Mfn(0)), (1, 1, PageType::L4, false), "CR3 still holds it");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, new[0].0), 0);
    assert_eq!(ext(&mut w, MMUEXT_NEW_BASEPTR, new[0].0), 0);
    assert_eq!(info(&w, Mfn(0)), (0, 0, PageType::None, false), "devalidated");
    assert_eq!(info(&w, Mfn(1)), (1, 1, PageType::L3, false), "still linked from the new L4");
    w.audit();
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, 0), 0);
    assert_eq!(ext(&mut w, MMUEXT_NEW_BASEPTR, 0), 0);
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, new[0].0), 0);
    assert_eq!(w.counts(), start);
}

#[test]
fn random_operation_sequences_keep_every_count_exact() {
    // Deterministic pseudo-random walks over entry writes, pins, unpins,
    // base pointers, page clears, LDTs and exchanges on a small machine: whatever is
    // accepted or refused, the audit after every call (World::call) must
    // hold, and nothing may panic.
    for mut seed in [0x2545_f491_4f6c_dd1du64, 0x9e37_79b9_7f4a_7c15, 0xdead_beef_1234_5678, 7] {
        let mut w = World::new(false);
        grab(&mut w, 6);
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let flags = [0u64, 0x21, 0x23, 0x63, 0x67, 0xe3, 0x163, 0x33];
        // The entries through which the requests at REQ_VA are read.
        let path = [(0, idx(39)), (1, idx(30)), (2, idx(21)), (3, idx(12) + 3)];
        for _ in 0..3000 {
            let (table, target) = (next(24), next(24));
            let slot = match next(4) {
                0 => 256 + next(16),
                1 => idx(12) + next(4),
                _ => next(8),
            };
            match next(10) {
                0..=3 if !path.contains(&(table, slot)) => {
                    let val = (target << 12) | flags[next(flags.len() as u64) as usize];
                    mmu_update(&mut w, &[(ma(Mfn(table), slot), val)]);
                }
                4 => {
                    ext(&mut w, MMUEXT_PIN_L1_TABLE + next(4) as u32, target);
                }
                5 => {
                    ext(&mut w, MMUEXT_UNPIN_TABLE, target);
                }
                6 => {
                    ext(&mut w, MMUEXT_NEW_USER_BASEPTR, if next(2) == 0 { 0 } else { target });
                }
                7 => {
                    ext(&mut w, MMUEXT_CLEAR_PAGE, target);
                }
                8 => {
                    let base = (BUF_VA & !0x1f_ffff) + (next(4) << 12) + if next(2) == 0 { 0x4000 } else { 0 };
                    ext2(&mut w, MMUEXT_SET_LDT, base, next(3) * 700);
                }
                _ => {
                    exchange(&mut w, target);
                }
            }
            assert!(GuestMemory::new(&mut w.mem, Mfn(0)).translate(REQ_VA, Access::Write).is_ok());
        }
    }
}

#[test]
fn read_only_linear_page_tables_one_level_deep() {
    // Xen 4.17's pv-linear-pt: a read-only entry may name its own table
    // (a recursive mapping, holding nothing) or another validated table of
    // the same level (holding a reference and a type reference).
    let mut w = World::new(false);
    let start = w.counts();
    let new = grab(&mut w, 1)[0];
    w.mem.0[new.0 as usize] = w.mem.0[0];
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, new.0), 0);
    let pinned = w.counts();

    // A recursive slot in the builder's L4: the L4 reads as a page.
    assert_eq!(mmu_update(&mut w, &[(ma(Mfn(0), 2), 0x21)]), 0, "L4 slot 2 names frame 0 itself");
    assert_eq!(w.counts(), pinned, "a self-reference holds nothing");
    let rec = (2u64 << 39) | (2 << 30) | (2 << 21) | (2 << 12);
    assert_eq!(GuestMemory::new(&mut w.mem, Mfn(0)).translate(rec, Access::Read), Ok(0));
    assert!(GuestMemory::new(&mut w.mem, Mfn(0)).translate(rec, Access::Write).is_err(), "read-only");

    // The new L4 names the builder's L4 read-only: a linear use of it.
    assert_eq!(mmu_update(&mut w, &[(ma(new, 3), 0x21)]), 0);
    assert_eq!(info(&w, Mfn(0)).0, 3, "a reference more on frame 0");
    assert_eq!((w.ft.info(new).unwrap().linear(), w.ft.info(Mfn(0)).unwrap().linear()), (1, -1));
    // One level only: frame 0 is named linearly, so it may not hold a
    // linear entry to another table, nor may `new` be named by one.
    assert_eq!(mmu_update(&mut w, &[(ma(Mfn(0), 3), new.addr() | 0x21)]), EINVAL);
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, 0), 0, "unpinning frame 0 keeps it: CR3 and the linear entry");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, 0), 0);
    assert_eq!(mmu_update(&mut w, &[(ma(new, 3), 0)]), 0);
    assert_eq!(mmu_update(&mut w, &[(ma(Mfn(0), 2), 0)]), 0);
    assert_eq!(w.counts(), pinned);
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, new.0), 0);
    assert_eq!(w.counts(), start);
}
