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

/// [`drive`] for a request that is re-issued until it returns: its result
/// and the page tables each call walked (none may walk much more than a
/// batch's budget: one table past it, plus the one each level of a
/// resumed hierarchy resumes in).
fn drive_bounded(w: &mut World, nr: u32, request: &[u8]) -> (i64, Vec<u64>) {
    w.poke(REQ_VA, request);
    let mut args = [REQ_VA, 1, 0, SELF, 0];
    let mut walks = Vec::new();
    loop {
        let before = w.ft.tables_walked();
        let outcome = w.call(u64::from(nr), args);
        let walked = w.ft.tables_walked() - before;
        assert!(walked <= super::mmu::TABLE_BUDGET + 4, "one call walked {walked} tables");
        walks.push(walked);
        assert!(walks.len() < 1000, "no end");
        match outcome {
            Outcome::Return(v) => return (v, walks),
            Outcome::Continue(next) => args = next,
        }
    }
}

#[test]
fn a_failure_deep_down_is_undone_in_bounded_steps_with_xens_second_continuation_form() {
    let (mut w, d) = deep_world();
    let last = *d.l1s.last().unwrap();
    w.mem.set_entry(last.0, 7, (20 << 12) | 0x25);
    let before = records(&w);
    let (ret, walks) = drive_bounded(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_PIN_L4_TABLE, d.l4));
    assert_eq!(ret, -16);
    // 287 tables validated, then as many released: at least 9 calls.
    assert!(walks.len() >= 9, "{walks:?}");
    assert_eq!(records(&w), before, "every count, type and flag as before");
    assert_eq!(w.dom.vcpus[0].old_guest_table, None);
}

#[test]
fn a_failure_stops_the_done_count_and_returns_its_errno_after_the_release() {
    let (mut w, d) = deep_world();
    let last = *d.l1s.last().unwrap();
    w.mem.set_entry(last.0, 7, (20 << 12) | 0x25);
    let before = records(&w);
    // Resume the pin to the failure, then look at the second form.
    let done_va = BUF_VA + 0x3ff8;
    w.poke(REQ_VA, &op(MMUEXT_PIN_L4_TABLE, d.l4));
    let mut args = [REQ_VA, 1, done_va, SELF, 0];
    let mut forms = Vec::new();
    let ret = loop {
        match w.call(u64::from(HYPERVISOR_MMUEXT_OP), args) {
            Outcome::Return(v) => break v,
            Outcome::Continue(next) => {
                forms.push(next[0] == 0);
                args = next;
            }
        }
    };
    assert_eq!(ret, -16);
    let first_second_form = forms.iter().position(|&f| f).expect("a second-form continuation");
    assert!(forms[first_second_form..].iter().all(|&f| f), "once failed, only the release goes on: {forms:?}");
    assert!(forms.len() - first_second_form >= 2, "the release itself was preempted: {forms:?}");
    assert_eq!(args[3] as u32 as i32, -16, "the errno travels in foreigndom");
    assert_eq!(u32::from_le_bytes(w.peek(done_va, 4).try_into().unwrap()), 0, "nothing done");
    assert_eq!(records(&w), before);
}

/// The deep world with its L4 pinned at once.
fn deep_pinned() -> (World, Deep) {
    let (mut w, d) = deep_world();
    let rights = MapRights::of(&w.dom);
    Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(d.l4, 4, &rights).unwrap();
    w.audit();
    (w, d)
}

#[test]
fn unlinking_a_deep_subtree_with_mmu_update_releases_it_in_bounded_steps() {
    let (mut w, d) = deep_pinned();
    let (mut once, d2) = deep_pinned();
    // The L4's entry 0 holds the first L3's only type reference: removing
    // it devalidates 143 tables.
    let (ret, walks) = drive_bounded(&mut w, HYPERVISOR_MMU_UPDATE, &update(d.l4.addr(), 0));
    assert_eq!(ret, 0);
    assert!(walks.len() >= 3, "{walks:?}");
    let rights = MapRights::of(&once.dom);
    let mut mmu = Mmu { ft: &mut once.ft, mem: &mut once.mem };
    assert_eq!(mmu.mod_entry(d2.l4, 4, 0, 0, false, &rights, &rights), Ok(true));
    once.audit();
    assert_eq!(records(&w), records(&once), "the same counts as one uninterrupted run");
    assert!(memory(&w) == memory(&once));
    assert_eq!(w.ft.page_type(d.tables[1]), PageType::None, "the L3 is untyped");
}

#[test]
fn an_update_batch_goes_on_after_the_release_it_parked() {
    let (mut w, d) = deep_pinned();
    let before_second = w.mem.0[9];
    // Two requests: unlink the deep L3 (a long release), then a plain write.
    let mut reqs = update(d.l4.addr(), 0).to_vec();
    reqs.extend_from_slice(&update(9 * 4096 + 8, 0x1234));
    let (ret, walks) = {
        w.poke(REQ_VA, &reqs);
        let mut args = [REQ_VA, 2, BUF_VA + 0x3ff8, SELF, 0];
        let mut walks = 0;
        loop {
            walks += 1;
            match w.call(u64::from(HYPERVISOR_MMU_UPDATE), args) {
                Outcome::Return(v) => break (v, walks),
                Outcome::Continue(next) => {
                    assert!(next[0] == REQ_VA || next[0] == REQ_VA + 16, "{next:?}");
                    args = next;
                }
            }
        }
    };
    assert_eq!(ret, 0);
    assert!(walks >= 3);
    assert_eq!(u32::from_le_bytes(w.peek(BUF_VA + 0x3ff8, 4).try_into().unwrap()), 2, "both done");
    assert_ne!(w.mem.0[9], before_second);
    assert_eq!(&w.mem.0[9][8..16], &0x1234u64.to_le_bytes());
}

/// A deep hierarchy whose L4 also maps the caller's buffer (so that
/// guest pointers resolve through it as the vCPU's kernel table): its
/// first L3 moves to slot 5, slot 0 takes the world's L3 (frame 1).
fn deep_base(w: &mut World) -> Deep {
    let d = deep(w, 0, SHAPE, Mfn(DATA_RO), Mfn(6));
    w.mem.set_entry(d.l4.0, 5, d.tables[1].addr() | 0x67);
    w.mem.set_entry(d.l4.0, 0, (1 << 12) | 0x67);
    w.audit();
    d
}

#[test]
fn new_baseptr_validates_and_releases_deep_tables_in_bounded_steps() {
    use guest_abi::xen::MMUEXT_NEW_BASEPTR;
    let mut w = World::new(false);
    let d = deep_base(&mut w);
    let initial = records(&w);
    let (ret, walks) = drive_bounded(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_NEW_BASEPTR, d.l4));
    assert_eq!(ret, 0);
    assert!(walks.len() >= 4, "{walks:?}");
    assert_eq!(w.dom.vcpus[0].kernel_l4, d.l4);
    // The uninterrupted run.
    let mut once = World::new(false);
    let d2 = deep_base(&mut once);
    let rights = MapRights::of(&once.dom);
    let mut mmu = Mmu { ft: &mut once.ft, mem: &mut once.mem };
    mmu.get_page_and_type(d2.l4, &rights, PageType::L4).unwrap();
    mmu.put_page_and_type(Mfn(0));
    once.dom.vcpus[0].kernel_l4 = d2.l4;
    once.audit();
    assert_eq!(records(&w), records(&once));
    assert!(memory(&w) == memory(&once));
    // Back to frame 0: the deep L4 loses its only type reference.
    let (ret, walks) = drive_bounded(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_NEW_BASEPTR, Mfn(0)));
    assert_eq!(ret, 0);
    assert!(walks.len() >= 4, "the old table's release was preempted: {walks:?}");
    assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(0));
    assert_eq!(w.dom.vcpus[0].old_guest_table, None);
    assert_eq!(records(&w), initial, "every deep table untyped again");
}

#[test]
fn new_user_baseptr_validates_and_releases_deep_tables_in_bounded_steps() {
    use guest_abi::xen::MMUEXT_NEW_USER_BASEPTR;
    let mut w = World::new(false);
    let d = deep_base(&mut w);
    let initial = records(&w);
    let (ret, walks) = drive_bounded(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_NEW_USER_BASEPTR, d.l4));
    assert_eq!((ret, w.dom.vcpus[0].user_l4), (0, Some(d.l4)));
    assert!(walks.len() >= 4, "{walks:?}");
    let (ret, walks) = drive_bounded(&mut w, HYPERVISOR_MMUEXT_OP, &op(MMUEXT_NEW_USER_BASEPTR, Mfn(0)));
    assert_eq!((ret, w.dom.vcpus[0].user_l4), (0, None));
    assert!(walks.len() >= 4, "{walks:?}");
    assert_eq!(records(&w), initial);
}

#[test]
fn a_parked_release_abandoned_leaks_nothing_when_the_domain_dies() {
    // The peer unlinks its deep subtree with a tiny budget, and dies
    // before its vCPU finishes the put.
    let mut w = super::tests::World::new(true);
    let peer = super::tests::test_domain(1, false, 10..15, Some(Mfn(10)), Mfn(15));
    w.add_peer(peer);
    let d = deep(&mut w, 1, (2, 2, 30), Mfn(12), Mfn(14));
    let rights = MapRights::of(&w.peers[0]);
    Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(d.l4, 4, &rights).unwrap();
    let walked = w.ft.tables_walked();
    w.ft.set_preempt_at(walked + 10);
    let mut mmu = Mmu { ft: &mut w.ft, mem: &mut w.mem };
    assert_eq!(mmu.mod_entry_preemptible(d.l4, 4, 0, 0, false, &rights, &rights), Ok(true));
    let parked = w.ft.parked.take().expect("the L3's release was parked");
    assert_eq!(parked, d.tables[1]);
    w.peers[0].vcpus[0].old_guest_table = Some(parked);
    w.audit();
    let frames: Vec<Mfn> = w.ft.pages(&w.peers[0].page_list).collect();
    w.peers[0].state = crate::domain::DomainState::Dying(None);
    let dom = core::mem::replace(&mut w.dom, super::tests::test_domain(99, false, 0..0, None, Mfn(u64::MAX)).domain);
    let mut domains = std::vec![dom, w.peers.remove(0)];
    let mut res =
        crate::lifecycle::Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: super::tests::M2P };
    assert!(crate::lifecycle::destroy(&mut domains, 1, &mut res), "dead");
    crate::lifecycle::scrub(&mut res, u64::MAX);
    w.peers.insert(0, domains.remove(1));
    w.dom = domains.remove(0);
    for m in frames {
        assert_eq!(w.ft.info(m).copied(), Some(PageInfo::default()), "frame {} free and clean", m.0);
    }
}

#[test]
fn a_failed_pin_in_a_multicall_returns_its_errno_after_the_release_and_the_next_entry_runs() {
    use guest_abi::version::XENVER_PAGESIZE;
    use guest_abi::xen::{HYPERVISOR_MULTICALL, HYPERVISOR_XEN_VERSION};
    let (mut w, d) = deep_world();
    let last = *d.l1s.last().unwrap();
    w.mem.set_entry(last.0, 7, (20 << 12) | 0x25);
    let before = records(&w);
    w.poke(REQ_VA, &op(MMUEXT_PIN_L4_TABLE, d.l4));
    let entry = |nr: u32, args: [u64; 6]| {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&u64::from(nr).to_le_bytes());
        for (k, a) in args.iter().enumerate() {
            b[16 + 8 * k..24 + 8 * k].copy_from_slice(&a.to_le_bytes());
        }
        b
    };
    w.poke(BUF_VA, &entry(HYPERVISOR_MMUEXT_OP, [REQ_VA, 1, 0, SELF, 0, 0]));
    w.poke(BUF_VA + 64, &entry(HYPERVISOR_XEN_VERSION, [u64::from(XENVER_PAGESIZE), 0, 0, 0, 0, 0]));
    let mut args = [BUF_VA, 2, 0, 0, 0];
    let mut calls = 0;
    let ret = loop {
        calls += 1;
        assert!(calls < 1000);
        match w.call(u64::from(HYPERVISOR_MULTICALL), args) {
            Outcome::Return(v) => break v,
            Outcome::Continue(next) => args = next,
        }
    };
    assert_eq!(ret, 0);
    assert!(calls >= 9, "validated and released in steps: {calls} calls");
    let result = |w: &mut World, k: u64| i64::from_le_bytes(w.peek(BUF_VA + 64 * k + 8, 8).try_into().unwrap());
    assert_eq!((result(&mut w, 0), result(&mut w, 1)), (-16, 4096));
    assert_eq!(records(&w), before);
}
