//! Host tests of grant tables version 2 (status frames, sub-page and
//! transitive grants, version switches) and of the operations added with
//! it: unmap_and_replace, swap_grant_ref, transfer and cache_flush.

use super::super::tests::{test_domain, World, BUF_VA};
use super::tests::{map, map_op, op, translate, unmap, MAP_VA, NR, PEER, PERMIT, READING, RO, WRITING};
use super::*;
use crate::gnttab::tests::{full_page, grant, grant_v2, sub_page, transitive};
use crate::guest_access::Access;
use crate::mm::pagetable;
use crate::mm::pt_validate::find_l1;
use zerocopy::FromZeros;

extern crate std;
use std::vec::Vec;

const SUB: u16 = GTF_SUB_PAGE as u16;
const TRANS: u16 = GTF_TRANSITIVE as u16;
/// A third domain: owns frames 24..28 (shared_info 28).
const THIRD: DomId = 2;

/// The caller (dom0), the peer (dom1) and a third domain (dom2), every
/// table on `version` with one frame.
fn world3(version: u32) -> World {
    let mut w = World::new(false);
    w.grow(32);
    w.pool.0.extend((29..32).map(Mfn));
    let mut peer = test_domain(PEER, false, 10..14, None, Mfn(15));
    let mut third = test_domain(THIRD, false, 24..28, None, Mfn(28));
    for d in [&mut w.dom, &mut peer.domain, &mut third.domain] {
        d.gnttab.set_version(version, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        d.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
    }
    w.add_peer(peer);
    w.add_peer(third);
    w
}

fn status(w: &mut World, peer: usize, gref: u32) -> u16 {
    let d = &w.peers[peer];
    d.gnttab.status_flags(&mut w.mem, gref)
}

fn set_version(w: &mut World, version: u32) -> (i64, u32) {
    let (rc, out) = op(w, GNTTABOP_SET_VERSION, &[GnttabSetVersion { version }]);
    (rc, out[0].version)
}

fn status_frames(w: &mut World, dom: DomId, nr_frames: u32) -> (i64, i16, Vec<u8>) {
    let mut g = GnttabGetStatusFrames::new_zeroed();
    (g.dom, g.nr_frames, g.frame_list) = (dom, nr_frames, guest_abi::GuestHandle::new(BUF_VA + 0x200));
    let (rc, out) = op(w, GNTTABOP_GET_STATUS_FRAMES, &[g]);
    (rc, out[0].status, w.peek(BUF_VA + 0x200, 8 * nr_frames as usize))
}

#[test]
fn versions_and_status_frames_through_the_hypercall() {
    let mut w = World::new(false);
    assert_eq!(status_frames(&mut w, DOMID_SELF, 1).1, GNTST_GENERAL_ERROR, "none on version 1");
    assert_eq!(status_frames(&mut w, DOMID_SELF, 0).1, GNTST_OKAY);
    assert_eq!(set_version(&mut w, 2), (0, 2));
    let mut s = GnttabSetupTable::new_zeroed();
    (s.dom, s.nr_frames, s.frame_list) = (DOMID_SELF, 2, guest_abi::GuestHandle::new(BUF_VA + 0x100));
    assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_OKAY);
    assert_eq!((w.dom.gnttab.frames.len(), w.dom.gnttab.status.len()), (2, 1));
    let (rc, st, list) = status_frames(&mut w, DOMID_SELF, 1);
    assert_eq!((rc, st), (0, GNTST_OKAY));
    let status = w.dom.gnttab.status[0];
    assert_eq!(list, status.0.to_le_bytes());
    assert!(w.dom.may_map(&w.ft, status), "the guest maps its status frames");
    assert_eq!(status_frames(&mut w, DOMID_SELF, 2).1, GNTST_GENERAL_ERROR, "only one");
    assert_eq!(status_frames(&mut w, 7, 0).1, GNTST_BAD_DOMAIN);
    let g = GnttabGetVersion { dom: DOMID_SELF, pad: 0, version: 0 };
    assert_eq!(op(&mut w, GNTTABOP_GET_VERSION, &[g]).1[0].version, 2);
    assert_eq!(set_version(&mut w, 3), (-22, 2), "the version it has is written back");
    assert_eq!(set_version(&mut w, 1), (0, 1));
    assert!(w.dom.gnttab.status.is_empty());
    w.dom.gnttab.max_version = 1;
    assert_eq!(set_version(&mut w, 2), (-38, 1), "a domain created for version 1 only");
}

#[test]
fn a_version_switch_with_grants_in_use_is_refused() {
    let mut w = world3(1);
    grant(&w.peers[0], &mut w.mem, 9, PERMIT, 0, 10);
    let m = map(&mut w, 9, PEER, GNTMAP_HOST_MAP);
    assert_eq!(m.status, GNTST_OKAY);
    let peer_set = |w: &mut World, version| w.peers[0].gnttab.set_version(version, &mut w.mem, &mut w.pool, &mut w.ft);
    assert_eq!(peer_set(&mut w, 2), Err(XenError::Ebusy), "the peer's entry 9 is mapped by dom0");
    assert_eq!(w.peers[0].gnttab.version, 1);
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
    assert_eq!(peer_set(&mut w, 2), Ok(()));
}

#[test]
fn version_2_maps_copy_and_keep_their_flags_in_the_status_word() {
    let mut w = world3(2);
    grant_v2(&w.peers[0], &mut w.mem, 3, PERMIT, 0, full_page(10));
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
    assert_eq!(m.status, GNTST_OKAY);
    assert_eq!(translate(&mut w, MAP_VA, Access::Write), Some(0xa000));
    assert_eq!(status(&mut w, 0, 3), READING | WRITING);
    assert_eq!(w.peers[0].gnttab.entry(&w.mem, 3).map(|e| e.flags), Ok(PERMIT));
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
    assert_eq!(status(&mut w, 0, 3), 0);
    // A sub-page grant: copied within its bytes only, never mapped.
    grant_v2(&w.peers[0], &mut w.mem, 4, PERMIT | SUB | RO, 0, sub_page(100, 10, 11));
    w.mem.0[11][100..110].copy_from_slice(b"0123456789");
    assert_eq!(map(&mut w, 4, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY).status, GNTST_GENERAL_ERROR);
    let copy = |src_off, len| {
        let mut c = GnttabCopy::new_zeroed();
        c.source = GnttabCopyPtr::from_gref(4, PEER, src_off);
        c.dest = GnttabCopyPtr::from_gmfn(6, DOMID_SELF, 0);
        (c.len, c.flags) = (len, GNTCOPY_SOURCE_GREF as u16);
        c
    };
    assert_eq!(op(&mut w, GNTTABOP_COPY, &[copy(102, 8)]).1[0].status, GNTST_OKAY);
    assert_eq!(&w.mem.0[6][..8], b"23456789");
    for (off, len) in [(99, 2), (105, 6), (4095, 2)] {
        let want = if off + len > 4096 { GNTST_BAD_COPY_ARG } else { GNTST_GENERAL_ERROR };
        assert_eq!(op(&mut w, GNTTABOP_COPY, &[copy(off, len)]).1[0].status, want, "{off}+{len}");
    }
    assert_eq!(status(&mut w, 0, 4), 0, "nothing left in use");
    assert!(w.peers[0].gnttab.active.is_empty());
}

/// A copy from `gref` of `dom` to the caller's frame 6.
fn copy_from(w: &mut World, dom: DomId, gref: u32, len: u16) -> i16 {
    let mut c = GnttabCopy::new_zeroed();
    c.source = GnttabCopyPtr::from_gref(gref, dom, 0);
    c.dest = GnttabCopyPtr::from_gmfn(6, DOMID_SELF, 0);
    (c.len, c.flags) = (len, GNTCOPY_SOURCE_GREF as u16);
    op(w, GNTTABOP_COPY, &[c]).1[0].status
}

#[test]
fn a_transitive_grant_is_followed_once_and_loops_are_refused() {
    let mut w = world3(2);
    // dom2 grants its frame 25 to dom1; dom1 passes it on to dom0.
    w.mem.0[25][..5].copy_from_slice(b"third");
    grant_v2(&w.peers[1], &mut w.mem, 1, PERMIT | SUB, PEER, sub_page(0, 5, 25));
    grant_v2(&w.peers[0], &mut w.mem, 2, TRANS, 0, transitive(THIRD, 1));
    assert_eq!(copy_from(&mut w, PEER, 2, 5), GNTST_OKAY);
    assert_eq!(&w.mem.0[6][..5], b"third");
    assert_eq!(copy_from(&mut w, PEER, 2, 6), GNTST_GENERAL_ERROR, "beyond the inner sub-page");
    assert_eq!((status(&mut w, 0, 2), status(&mut w, 1, 1)), (0, 0), "both released");
    assert!(w.peers[0].gnttab.active.is_empty() && w.peers[1].gnttab.active.is_empty());
    assert_eq!(map(&mut w, 2, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY).status, GNTST_GENERAL_ERROR, "never mapped");
    // A chain of two, a grant naming its own granter, an absent domain,
    // an inner grant not made to the transitive granter.
    grant_v2(&w.peers[1], &mut w.mem, 3, TRANS, PEER, transitive(0, 1));
    grant_v2(&w.peers[0], &mut w.mem, 4, TRANS, 0, transitive(THIRD, 3));
    grant_v2(&w.peers[0], &mut w.mem, 5, TRANS, 0, transitive(PEER, 2));
    grant_v2(&w.peers[0], &mut w.mem, 6, TRANS, 0, transitive(9, 1));
    grant_v2(&w.peers[1], &mut w.mem, 7, PERMIT, 0, full_page(25));
    grant_v2(&w.peers[0], &mut w.mem, 8, TRANS, 0, transitive(THIRD, 7));
    for (gref, what) in
        [(4, "transitive twice"), (5, "to its own granter"), (6, "no such domain"), (8, "inner grant is dom0's")]
    {
        assert_eq!(copy_from(&mut w, PEER, gref, 4), GNTST_GENERAL_ERROR, "{what}");
        assert_eq!(status(&mut w, 0, gref), 0, "{what}: status cleared");
    }
    assert!(w.peers.iter().all(|d| d.gnttab.active.is_empty()));
    assert_eq!((status(&mut w, 1, 3), status(&mut w, 1, 7)), (0, 0));
}

#[test]
fn unmap_and_replace_moves_another_mapping_into_the_grants_place() {
    let mut w = world3(1);
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
    assert_eq!(m.status, GNTST_OKAY);
    let replace = |w: &mut World, host_addr, new_addr, handle| {
        let r = GnttabUnmapAndReplace { host_addr, new_addr, handle, status: 0, _pad0: [0; 2] };
        let (rc, out) = op(w, GNTTABOP_UNMAP_AND_REPLACE, &[r]);
        assert_eq!(rc, 0);
        out[0].status
    };
    let other = BUF_VA + 0x2000; // maps the caller's frame 6
    assert_eq!(replace(&mut w, MAP_VA, other, 77), GNTST_BAD_HANDLE);
    assert_eq!(replace(&mut w, MAP_VA, other, m.handle), GNTST_OKAY);
    assert_eq!(translate(&mut w, MAP_VA, Access::Write), Some(0x6000), "frame 6's entry moved here");
    assert_eq!(translate(&mut w, other, Access::Read), None, "and is gone from there");
    assert_eq!(w.peers[0].gnttab.entry(&w.mem, 3).map(|e| e.flags), Ok(PERMIT), "the grant is free again");
    // Without a new address it is a plain unmap.
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
    assert_eq!(m.status, GNTST_OKAY);
    assert_eq!(replace(&mut w, MAP_VA, 0, m.handle), GNTST_OKAY);
    assert_eq!(translate(&mut w, MAP_VA, Access::Read), None);
    // By PTE address, replacing is not supported.
    let Some((l1, slot)) = find_l1(&w.ft, &w.mem, 0, Mfn(0), BUF_VA + 0x1000) else { panic!("no L1") };
    let pte = l1.addr() + slot as u64 * 8;
    let by_pte = GnttabMapGrantRef { host_addr: pte, ..map_op(3, PEER, GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE) };
    let (_, out) = op(&mut w, GNTTABOP_MAP_GRANT_REF, &[by_pte]);
    assert_eq!(out[0].status, GNTST_OKAY);
    assert_eq!(replace(&mut w, pte, MAP_VA, out[0].handle), GNTST_GENERAL_ERROR);
    assert_eq!(replace(&mut w, pte, 0, out[0].handle), GNTST_OKAY);
    assert_eq!(pagetable::entry(&w.mem, l1, slot), Ok(0));
}

#[test]
fn unmap_and_replace_that_fails_drops_the_stolen_entrys_references() {
    // Found by the fuzzer: the entry taken from `new_addr` leaked its
    // reference and writable type when the grant's own entry did not match.
    let mut w = world3(1);
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
    assert_eq!(m.status, GNTST_OKAY);
    let (stolen, not_the_grant) = (BUF_VA + 0x2000, BUF_VA + 0x1000);
    let before = w.ft.info(Mfn(6)).map(|p| (p.count(), p.type_count()));
    let r = GnttabUnmapAndReplace {
        host_addr: not_the_grant,
        new_addr: stolen,
        handle: m.handle,
        status: 0,
        _pad0: [0; 2],
    };
    // The world audits every frame's counts after the call.
    let (rc, out) = op(&mut w, GNTTABOP_UNMAP_AND_REPLACE, &[r]);
    assert_eq!((rc, out[0].status), (0, GNTST_GENERAL_ERROR));
    assert_eq!(translate(&mut w, stolen, Access::Read), None, "the stolen entry is gone, as on Xen");
    let after = w.ft.info(Mfn(6)).map(|p| (p.count(), p.type_count()));
    assert_eq!(after, before.map(|(c, t)| (c - 1, t - 1)), "and so are its references");
    assert_eq!(translate(&mut w, MAP_VA, Access::Write).map(|a| a >> 12), Some(10), "the grant stays mapped");
}

#[test]
fn swap_exchanges_idle_entries_with_their_status() {
    for version in [1, 2] {
        let mut w = world3(version);
        let swap = |w: &mut World, a, b| {
            let (rc, out) =
                op(w, GNTTABOP_SWAP_GRANT_REF, &[GnttabSwapGrantRef { ref_a: a, ref_b: b, ..FromZeros::new_zeroed() }]);
            assert_eq!(rc, 0);
            out[0].status
        };
        if version == 1 {
            grant(&w.dom, &mut w.mem, 1, PERMIT, 5, 6);
            grant(&w.dom, &mut w.mem, 2, PERMIT | RO, 7, 8);
        } else {
            grant_v2(&w.dom, &mut w.mem, 1, PERMIT, 5, full_page(6));
            grant_v2(&w.dom, &mut w.mem, 2, PERMIT | RO, 7, full_page(8));
        }
        assert_eq!(swap(&mut w, 1, 2), GNTST_OKAY);
        let e = w.dom.gnttab.entry(&w.mem, 1).unwrap();
        assert_eq!((e.flags, e.domid, e.map_frame()), (PERMIT | RO, 7, 8), "version {version}");
        assert_eq!(swap(&mut w, 1, 1), GNTST_OKAY);
        assert_eq!(swap(&mut w, 1, 4096), GNTST_BAD_GNTREF);
        assert_eq!(swap(&mut w, u32::MAX, 1), GNTST_BAD_GNTREF);
        // In use by the peer: EAGAIN.
        if version == 1 {
            grant(&w.dom, &mut w.mem, 3, PERMIT, PEER, 6);
        } else {
            grant_v2(&w.dom, &mut w.mem, 3, PERMIT, PEER, full_page(6));
        }
        crate::gnttab::active::pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 3, PEER, crate::gnttab::active::DEV_R)
            .unwrap();
        assert_eq!(swap(&mut w, 3, 1), GNTST_EAGAIN);
        assert_eq!(swap(&mut w, 1, 3), GNTST_EAGAIN);
        crate::gnttab::active::unpin(&mut w.dom, &mut w.mem, 3, crate::gnttab::active::DEV_R);
    }
}

#[test]
fn transfer_gives_an_unreferenced_page_to_a_domain_that_accepts_it() {
    let mut w = world3(1);
    let transfer = |w: &mut World, mfn: u64, domid: DomId, gref: u32| {
        let mut t = GnttabTransfer::new_zeroed();
        (t.mfn, t.domid, t.ref_) = (mfn, domid, gref);
        let (rc, out) = op(w, GNTTABOP_TRANSFER, &[t]);
        assert_eq!(rc, 0);
        out[0].status
    };
    let accept = GTF_ACCEPT_TRANSFER as u16;
    grant(&w.peers[0], &mut w.mem, 5, accept, 0, 77);
    assert_eq!(transfer(&mut w, 4, PEER, 5), GNTST_BAD_PAGE, "frame 4 is mapped");
    assert_eq!(transfer(&mut w, 12, PEER, 5), GNTST_BAD_PAGE, "not the caller's");
    assert_eq!(transfer(&mut w, 1 << 40, PEER, 5), GNTST_BAD_PAGE, "beyond memory");
    assert!(w.owns(0, 4));
    let before = w.dom.tot_pages();
    assert_eq!(transfer(&mut w, 9, PEER, 5), GNTST_OKAY);
    assert!(w.owns(PEER, 9) && w.dom.tot_pages() == before - 1);
    let e = w.peers[0].gnttab.entry(&w.mem, 5).unwrap();
    let done = accept | GTF_TRANSFER_COMMITTED as u16 | GTF_TRANSFER_COMPLETED as u16;
    assert_eq!((e.flags, e.map_frame()), (done, 9), "the entry names the new frame");
    assert_eq!(super::super::tests::M2P.get(&w.mem, Mfn(9)), Some(crate::mm::Pfn(77)));
    // An entry that does not accept: the page is lost to both and freed.
    grant(&w.peers[0], &mut w.mem, 6, PERMIT, 0, 78);
    let pool = w.pool.0.len();
    assert_eq!(transfer(&mut w, 9, PEER, 6), GNTST_BAD_PAGE, "no longer the caller's");
    w.give(0, Mfn(16));
    w.pool.0.retain(|&m| m != Mfn(16));
    assert_eq!(transfer(&mut w, 16, PEER, 6), GNTST_GENERAL_ERROR);
    assert_eq!(transfer(&mut w, 9, 7, 6), GNTST_BAD_PAGE);
    assert!(!w.owns(0, 16) && !w.owns(PEER, 16));
    assert_eq!(w.pool.0.len(), pool, "freed");
    w.give(0, Mfn(17));
    w.pool.0.retain(|&m| m != Mfn(17));
    assert_eq!(transfer(&mut w, 17, 7, 6), GNTST_BAD_DOMAIN);
    assert!(w.pool.0.contains(&Mfn(17)));
}

#[test]
fn cache_flush_answers_as_xen_on_x86() {
    let mut w = world3(1);
    let flush = |w: &mut World, cmd: u32, a: u64, offset: u16, length: u16, opn: u32| {
        let f = GnttabCacheFlush { a, offset, length, op: opn };
        w.poke(BUF_VA, f.as_bytes());
        w.call_ret(NR, [u64::from(cmd), BUF_VA, 1, 0, 0])
    };
    let cmd = GNTTABOP_CACHE_FLUSH;
    let (clean, inval) = (GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_INVAL);
    assert_eq!(flush(&mut w, cmd, 0x6000, 0, 64, clean), 0, "its own frame");
    assert_eq!(flush(&mut w, cmd, 0x6000, 0, 64, clean | inval), 0);
    assert_eq!(flush(&mut w, cmd, 0x6000, 0, 64, inval), -95, "no invalidate-only on x86");
    assert_eq!(flush(&mut w, cmd, 0x6000, 4096, 0, clean), -22);
    assert_eq!(flush(&mut w, cmd, 0x6000, 4000, 100, clean), -22);
    assert_eq!(flush(&mut w, cmd, 0x6000, 0, 64, clean | GNTTAB_CACHE_SOURCE_GREF), -22);
    assert_eq!(flush(&mut w, cmd, 0x6000, 0, 0, clean), 0, "nothing to do");
    assert_eq!(flush(&mut w, cmd | (5 << 12), 0x6000, 0, 0, clean), -84, "nothing to do, with a reference");
    assert_eq!(flush(&mut w, GNTTABOP_COPY | (5 << 12), 0, 0, 0, 0), -22, "continuation bits on another op");
    assert_eq!(flush(&mut w, cmd, 1 << 52, 0, 64, clean), -22, "beyond memory");
    assert_eq!(flush(&mut w, cmd, 0x8000, 0, 64, clean), -1, "shared_info: nobody's");
    assert_eq!(flush(&mut w, cmd, 0xa000, 0, 64, clean), -22, "the peer's, not granted");
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
    assert_eq!(flush(&mut w, cmd, 0xa000, 0, 64, clean), 0, "the peer's, mapped");
    assert_eq!(flush(&mut w, cmd | (4 << 12), 0xa000, 0, 64, clean), -22, "searched from ref 4 on");
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
}
