//! Host tests of preemptible page-table work: deep hierarchies pinned,
//! linked and unpinned through several continuations (the frame-table
//! audit runs after every call, [`World::call`]), compared with an
//! uninterrupted run; failures and abandoned requests part-way.

extern crate std;
use std::vec::Vec;

use guest_abi::xen::{
    DOMID_SELF, HYPERVISOR_MMUEXT_OP, HYPERVISOR_MMU_UPDATE, MMUEXT_CLEAR_PAGE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE,
};

use super::tests::{World, BUF_VA};
use super::Outcome;
use crate::domain::DomId;
use crate::mm::frame_table::{PageInfo, PageType};
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::Mfn;

const SELF: u64 = DOMID_SELF as u64;
/// Where requests go: the last page of the caller's buffer (frame 7).
const REQ_VA: u64 = BUF_VA + 0x3000;
/// The read-only data frame every deep L1 maps (the caller's frame 9).
const DATA_RO: u64 = 9;

/// A hierarchy of tables not yet validated: an L4 over `l3s` L3s, each
/// over `l2s` L2s, each over `l1s` L1s; each L1 maps a data frame of
/// its owner read-only and one writable.
pub(crate) struct Deep {
    pub l4: Mfn,
    pub tables: Vec<Mfn>,
    pub l1s: Vec<Mfn>,
}

/// Builds a [`Deep`] hierarchy for domain `id` of `w` (the caller or a
/// peer) in new frames past the machine's end; its L1s map `ro` read-only
/// and `rw` writable (frames of `id`).
pub(crate) fn deep(w: &mut World, id: DomId, (l3s, l2s, l1s): (u64, u64, u64), ro: Mfn, rw: Mfn) -> Deep {
    let n = 1 + l3s + l3s * l2s + l3s * l2s * l1s;
    let first = w.ft.nr_frames();
    w.grow((first + n) as usize);
    let frames: Vec<Mfn> = (first..first + n).map(Mfn).collect();
    let d = core::iter::once(&mut w.dom).chain(w.peers.iter_mut()).find(|d| d.id == id).unwrap();
    d.max_pages += n;
    for &m in &frames {
        w.give(id, m);
    }
    let mut next = frames.iter().copied();
    let l4 = next.next().unwrap();
    let mut all_l1s = Vec::new();
    for i in 0..l3s {
        let l3 = next.next().unwrap();
        w.mem.set_entry(l4.0, i, l3.addr() | 0x67);
        for j in 0..l2s {
            let l2 = next.next().unwrap();
            w.mem.set_entry(l3.0, j, l2.addr() | 0x67);
            for k in 0..l1s {
                let l1 = next.next().unwrap();
                w.mem.set_entry(l2.0, k, l1.addr() | 0x67);
                w.mem.set_entry(l1.0, 0, ro.addr() | 0x25);
                w.mem.set_entry(l1.0, 1, rw.addr() | 0x67);
                all_l1s.push(l1);
            }
        }
    }
    Deep { l4, tables: frames, l1s: all_l1s }
}

/// Issues one request of `mmuext_op` (or `mmu_update`) and re-issues its
/// continuations as the guest's rewound `syscall` would, up to `max`
/// calls: the last result (`None` if still continued) and the calls made.
fn drive(w: &mut World, nr: u32, request: &[u8], max: usize) -> (Option<i64>, usize) {
    w.poke(REQ_VA, request);
    let mut args = [REQ_VA, 1, 0, SELF, 0];
    for calls in 1..=max {
        match w.call(u64::from(nr), args) {
            Outcome::Return(v) => return (Some(v), calls),
            Outcome::Continue(next) => {
                let second_form = next[0] == 0 && next[1] == 1 << 31;
                assert!(next[0] == REQ_VA || second_form, "the preempted request is re-executed, not skipped");
                args = next;
            }
        }
    }
    (None, max)
}

fn op(cmd: u32, mfn: Mfn) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..4].copy_from_slice(&cmd.to_le_bytes());
    b[8..16].copy_from_slice(&mfn.0.to_le_bytes());
    b
}

fn update(ptr: u64, val: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&ptr.to_le_bytes());
    b[8..16].copy_from_slice(&val.to_le_bytes());
    b
}

fn ext(w: &mut World, cmd: u32, mfn: Mfn) -> i64 {
    w.poke(REQ_VA, &op(cmd, mfn));
    w.call_ret(u64::from(HYPERVISOR_MMUEXT_OP), [REQ_VA, 1, 0, SELF, 0])
}

fn mmu_update(w: &mut World, ptr: u64, val: u64) -> i64 {
    w.poke(REQ_VA, &update(ptr, val));
    w.call_ret(u64::from(HYPERVISOR_MMU_UPDATE), [REQ_VA, 1, 0, SELF, 0])
}

/// Every frame's record.
fn records(w: &World) -> Vec<PageInfo> {
    w.ft.iter().map(|(_, p)| *p).collect()
}

/// Every frame's bytes but the request page's.
fn memory(w: &World) -> Vec<[u8; 4096]> {
    let mut m = w.mem.0.clone();
    m[7] = [0; 4096];
    m
}

/// The shape used below: 2 L3s × 2 L2s × 70 L1s, 287 tables, about
/// 4.5 budgets' worth.
const SHAPE: (u64, u64, u64) = (2, 2, 70);

fn deep_world() -> (World, Deep) {
    let mut w = World::new(false);
    let d = deep(&mut w, 0, SHAPE, Mfn(DATA_RO), Mfn(6));
    w.audit();
    (w, d)
}

/// The uninterrupted run: the same pin by the MMU directly, without a
/// budget.
fn pinned_at_once() -> World {
    let (mut w, d) = deep_world();
    let rights = MapRights::of(&w.dom);
    Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(d.l4, 4, &rights).unwrap();
    w.audit();
    w
}

#[test]
fn a_deep_pin_through_preemptions_ends_as_an_uninterrupted_run() {
    let (mut w, d) = deep_world();
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4), 100);
    assert_eq!(ret, Some(0));
    assert!(calls >= 4, "287 tables at 64 a call: {calls} calls");
    let once = pinned_at_once();
    assert_eq!(records(&w), records(&once), "the same counts, types and flags");
    assert!(memory(&w) == memory(&once), "the same entries (_PAGE_USER, the hypervisor slots)");
    let p = w.ft.info(d.l4).unwrap();
    assert!(p.pinned() && p.validated() && p.partial().is_none());
    for &t in &d.tables {
        assert!(w.ft.info(t).is_some_and(|p| p.validated() && p.type_count() == 1), "frame {}", t.0);
    }
}

#[test]
fn a_partial_table_is_no_one_elses_and_resumes_when_asked_again() {
    let (mut w, d) = deep_world();
    let before = w.counts();
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4), 1);
    assert_eq!((ret, calls), (None, 1), "preempted once, then abandoned");
    let p = *w.ft.info(d.l4).unwrap();
    let partial = p.partial().expect("the L4 is partially validated");
    assert!(partial.child && !partial.devalidating, "down in its first L3: {partial:?}");
    assert_eq!((p.page_type(), p.type_count(), p.pinned(), p.validated()), (PageType::L4, 1, false, false));
    // What Xen forbids on a partial table: another type, a writable
    // mapping, a plain write, an unpin.
    assert_eq!(ext(&mut w, MMUEXT_PIN_L3_TABLE, d.l4), -22, "pinned as another level");
    assert_eq!(ext(&mut w, MMUEXT_UNPIN_TABLE, d.l4), -22, "not pinned");
    assert_eq!(ext(&mut w, MMUEXT_CLEAR_PAGE, d.l4), -22, "made writable");
    assert_eq!(mmu_update(&mut w, d.l4.addr() + 8 * 100, 0x1234), -22, "written as plain memory");
    let l1e = 3 * 4096 + ((BUF_VA >> 12) & 511) * 8 + 16; // maps frame 6 today
    assert_eq!(mmu_update(&mut w, l1e, d.l4.addr() | 0x67), -16, "mapped writable");
    assert_eq!(mmu_update(&mut w, l1e, d.tables[2].addr() | 0x67), -16, "a partial L2 below it, mapped writable");
    // The same request again picks it up where it stopped.
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4), 100);
    assert_eq!(ret, Some(0));
    assert!(calls >= 3, "{calls} more calls");
    let once = pinned_at_once();
    assert_eq!(records(&w), records(&once));
    assert_eq!(drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_UNPIN_TABLE, d.l4), 100).0, Some(0));
    assert_eq!(w.counts(), before, "every count back to zero");
}

#[test]
fn a_failure_deep_down_leaves_every_count_as_before() {
    let (mut w, d) = deep_world();
    // The last L1 maps a free frame: found after several preemptions.
    let last = *d.l1s.last().unwrap();
    w.mem.set_entry(last.0, 7, (20 << 12) | 0x25);
    let before = records(&w);
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4), 100);
    assert_eq!(ret, Some(-16), "EBUSY, as Xen's get_page_from_l1e");
    assert!(calls >= 4, "{calls} calls");
    assert_eq!(records(&w), before, "every count, type and flag as before");
}

#[test]
fn a_deep_unpin_through_preemptions_releases_everything() {
    let (mut w, d) = deep_world();
    let before = w.counts();
    let (ret, _) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4), 100);
    assert_eq!(ret, Some(0));
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_UNPIN_TABLE, d.l4), 1);
    assert_eq!((ret, calls), (None, 1));
    let p = *w.ft.info(d.l4).unwrap();
    assert!(p.pinned() && p.partial().is_some_and(|q| q.devalidating), "still pinned, partially devalidated");
    assert_eq!(ext(&mut w, MMUEXT_PIN_L4_TABLE, d.l4), -22, "no pin meanwhile");
    assert_eq!(ext(&mut w, MMUEXT_CLEAR_PAGE, d.l4), -22, "nor writable");
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_UNPIN_TABLE, d.l4), 100);
    assert_eq!(ret, Some(0));
    assert!(calls >= 3, "{calls} more calls");
    assert_eq!(w.counts(), before, "every count back to zero");
    for &t in &d.tables {
        assert_eq!(w.ft.info(t).copied().map(|p| (p.page_type(), p.partial())), Some((PageType::None, None)));
    }
}

#[test]
fn linking_a_deep_subtree_with_mmu_update_is_preemptible() {
    let (mut w, d) = deep_world();
    let (mut once, d2) = deep_world();
    // Unlink the first L3 from its L4, pin the L4 (small now), and link
    // the subtree again with one mmu_update.
    let l3 = d.tables[1];
    for (w, d) in [(&mut w, &d), (&mut once, &d2)] {
        w.mem.set_entry(d.l4.0, 0, 0);
        assert_eq!(drive(w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4), 100).0, Some(0));
    }
    let (ret, calls) = drive(&mut w, HYPERVISOR_MMU_UPDATE, &update(d.l4.addr(), l3.addr() | 0x67), 100);
    assert_eq!(ret, Some(0));
    assert!(calls >= 2, "{calls} calls");
    let rights = MapRights::of(&once.dom);
    let mut mmu = Mmu { ft: &mut once.ft, mem: &mut once.mem };
    assert_eq!(mmu.mod_entry(d2.l4, 4, 0, l3.addr() | 0x67, false, &rights, &rights), Ok(true));
    once.audit();
    assert_eq!(records(&w), records(&once));
    assert!(memory(&w) == memory(&once));
}
