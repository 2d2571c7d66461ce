//! Host tests of `grant_table_op` (version 1, and the operations every
//! version shares).

use super::super::tests::{test_domain, World, BUF_VA};
use super::map::PTE_AVAIL;
use super::*;
use crate::gnttab::tests::grant;
use crate::gnttab::MAX_FRAMES;
use crate::guest_access::{Access, GuestMemory, PTE_ADDR_MASK};
use crate::hypercall::TlbFlush;
use crate::mm::pagetable::{self, PTE_NX, PTE_P, PTE_RW, PTE_US};
use crate::mm::pt_validate::find_l1;
use guest_abi::xen::HYPERVISOR_GRANT_TABLE_OP;
use zerocopy::FromZeros;

extern crate std;
use std::vec::Vec;

pub(super) const NR: u64 = HYPERVISOR_GRANT_TABLE_OP as u64;
pub(super) const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;
pub(super) const RO: u16 = GTF_READONLY as u16;
pub(super) const READING: u16 = GTF_READING as u16;
pub(super) const WRITING: u16 = GTF_WRITING as u16;
/// Where the caller maps grants: the slot of its frame 7.
pub(super) const MAP_VA: u64 = BUF_VA + 0x3000;
/// The peer (domain 1) owns frames 10..14; its table is frame 16.
pub(super) const PEER: DomId = 1;

pub(super) fn world() -> World {
    let mut w = World::new(false);
    let mut peer = test_domain(PEER, false, 10..14, None, Mfn(15));
    peer.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
    w.add_peer(peer);
    w
}

pub(super) fn op<T: FromBytes + IntoBytes + Immutable>(w: &mut World, cmd: u32, ops: &[T]) -> (i64, Vec<T>) {
    let bytes: Vec<u8> = ops.iter().flat_map(|o| o.as_bytes().to_vec()).collect();
    w.poke(BUF_VA, &bytes);
    let ret = w.call_ret(NR, [u64::from(cmd), BUF_VA, ops.len() as u64, 0, 0]);
    let back = w.peek(BUF_VA, bytes.len());
    (ret, back.chunks(core::mem::size_of::<T>()).map(|c| T::read_from_bytes(c).unwrap()).collect())
}

pub(super) fn map_op(gref: u32, dom: DomId, flags: u32) -> GnttabMapGrantRef {
    let mut m = GnttabMapGrantRef::new_zeroed();
    (m.host_addr, m.flags, m.ref_, m.dom) = (MAP_VA, flags, gref, dom);
    m
}

pub(super) fn map(w: &mut World, gref: u32, dom: DomId, flags: u32) -> GnttabMapGrantRef {
    let (ret, out) = op(w, GNTTABOP_MAP_GRANT_REF, &[map_op(gref, dom, flags)]);
    assert_eq!(ret, 0);
    out[0]
}

pub(super) fn unmap(w: &mut World, handle: u32, host_addr: u64) -> i16 {
    let mut u = GnttabUnmapGrantRef::new_zeroed();
    (u.host_addr, u.handle) = (host_addr, handle);
    let (ret, out) = op(w, GNTTABOP_UNMAP_GRANT_REF, &[u]);
    assert_eq!(ret, 0);
    out[0].status
}

pub(super) fn peer_flags(w: &World, gref: u32) -> u16 {
    w.peers[0].gnttab.entry(&w.mem, gref).unwrap().flags
}

pub(super) fn translate(w: &mut World, va: u64, access: Access) -> Option<u64> {
    GuestMemory::new(&mut w.mem, Mfn(0)).translate(va, access).ok()
}

#[test]
fn setup_table_query_size_and_versions() {
    let mut w = world();
    let mut s = GnttabSetupTable::new_zeroed();
    (s.dom, s.nr_frames, s.frame_list) = (DOMID_SELF, 2, guest_abi::GuestHandle::new(BUF_VA + 0x100));
    let (ret, out) = op(&mut w, GNTTABOP_SETUP_TABLE, &[s]);
    assert_eq!((ret, out[0].status), (0, GNTST_OKAY));
    let frames = w.peek(BUF_VA + 0x100, 16);
    assert_eq!(frames, [17u64.to_le_bytes(), 18u64.to_le_bytes()].concat(), "the table's frames, in order");
    assert!(w.dom.may_map(&w.ft, Mfn(18)) && !w.owns(0, 18), "mappable, not counted as the domain's RAM");
    s.nr_frames = MAX_FRAMES + 1;
    assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_GENERAL_ERROR);
    s.dom = PEER;
    s.nr_frames = 1;
    assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_PERMISSION_DENIED, "another's table");
    s.dom = DOMID_SELF;
    s.frame_list = guest_abi::GuestHandle::new(0x10);
    assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_BAD_VIRT_ADDR);
    assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s, s]).0, -22, "setup_table takes one struct");

    let mut q = GnttabQuerySize::new_zeroed();
    q.dom = DOMID_SELF;
    let (ret, out) = op(&mut w, GNTTABOP_QUERY_SIZE, &[q]);
    assert_eq!((ret, out[0].nr_frames, out[0].max_nr_frames, out[0].status), (0, 2, MAX_FRAMES, GNTST_OKAY));

    let v = |version| GnttabSetVersion { version };
    let version = |(ret, out): (i64, Vec<GnttabSetVersion>)| (ret, out[0].version);
    assert_eq!(version(op(&mut w, GNTTABOP_SET_VERSION, &[v(1)])), (0, 1));
    assert_eq!(op(&mut w, GNTTABOP_SET_VERSION, &[v(3)]).0, -22);
    let g = GnttabGetVersion { dom: DOMID_SELF, pad: 0, version: 0 };
    assert_eq!(op(&mut w, GNTTABOP_GET_VERSION, &[g]).1[0].version, 1);
    assert_eq!(op(&mut w, GNTTABOP_GET_VERSION, &[GnttabGetVersion { dom: PEER, ..g }]).0, -1);
    assert_eq!(op(&mut w, GNTTABOP_GET_VERSION, &[GnttabGetVersion { dom: 9, ..g }]).0, -3);
    assert_eq!(w.call_ret(NR, [GNTTABOP_DUMP_TABLE.into(), BUF_VA, 1, 0, 0]), -38, "dump_table: not in 4.17");
    assert_eq!(w.call_ret(NR, [GNTTABOP_COPY.into(), BUF_VA, u64::from(u32::MAX), 0, 0]), -22, "negative count");
    assert_eq!(w.call_ret(NR, [GNTTABOP_COPY.into(), 0x10, 1, 0, 0]), -14, "bad pointer");
}

#[test]
fn a_map_by_pte_machine_address_writes_that_entry_as_xen_does() {
    let mut w = world();
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let Some((l1, slot)) = find_l1(&w.ft, &w.mem, 0, Mfn(0), MAP_VA) else { panic!("no L1 for MAP_VA") };
    let pte_maddr = l1.addr() + slot as u64 * 8;
    // What gntdev's user op asks for in a PV dom0.
    let flags = GNTMAP_HOST_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE | (1 << GNTMAP_GUEST_AVAIL0_BIT);
    let by_pte = |addr| GnttabMapGrantRef { host_addr: addr, ..map_op(3, PEER, flags) };
    for (addr, why) in [(pte_maddr + 4, "misaligned"), (0xa000, "not an L1 of the caller's"), (u64::MAX, "nowhere")] {
        assert_eq!(op(&mut w, GNTTABOP_MAP_GRANT_REF, &[by_pte(addr)]).1[0].status, GNTST_GENERAL_ERROR, "{why}");
    }
    assert_eq!(peer_flags(&w, 3), PERMIT, "refused maps leave the grant unused");
    let (ret, out) = op(&mut w, GNTTABOP_MAP_GRANT_REF, &[by_pte(pte_maddr)]);
    assert_eq!((ret, out[0].status), (0, GNTST_OKAY));
    let pte = pagetable::entry(&w.mem, l1, slot).unwrap();
    assert_eq!(pte & PTE_ADDR_MASK, 0xa000, "the granted frame");
    assert_eq!(pte & (PTE_P | PTE_RW | PTE_US | PTE_NX), PTE_P | PTE_RW | PTE_US | PTE_NX);
    assert_eq!(pte & PTE_AVAIL, 1 << 9, "guest_avail0 is the PTE's bit 9 (Linux's _PAGE_SPECIAL)");
    assert_eq!(translate(&mut w, MAP_VA, Access::Write), Some(0xa000));
    assert_eq!(peer_flags(&w, 3), PERMIT | READING | WRITING);
    // The unmap names the entry the same way; a VA there is not it.
    assert_eq!(unmap(&mut w, out[0].handle, MAP_VA), GNTST_GENERAL_ERROR);
    assert_eq!(unmap(&mut w, out[0].handle, pte_maddr), GNTST_OKAY);
    assert_eq!(pagetable::entry(&w.mem, l1, slot).unwrap(), 0, "Xen clears the entry");
    assert_eq!(peer_flags(&w, 3), PERMIT);
}

#[test]
fn a_read_only_map_is_unmapped_only_as_read_only() {
    let mut w = world();
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
    let Some((l1, slot)) = find_l1(&w.ft, &w.mem, 0, Mfn(0), MAP_VA) else { panic!("no L1") };
    let pte = pagetable::entry(&w.mem, l1, slot).unwrap();
    assert_eq!(pte & PTE_RW, 0);
    // The guest cannot make the entry writable (it is a grant entry,
    // refused by mmu_update), so a writable one here is not this map's.
    pagetable::set_entry(&mut w.mem, l1, slot, pte | PTE_RW).unwrap();
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_GENERAL_ERROR);
    pagetable::set_entry(&mut w.mem, l1, slot, pte).unwrap();
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
}

#[test]
fn map_write_unmap_revoke() {
    let mut w = world();
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
    assert_eq!((m.status, m.handle, m.dev_bus_addr), (GNTST_OKAY, 0, 0xa000));
    assert_eq!(w.tlb, TlbFlush::All);
    assert_eq!(translate(&mut w, MAP_VA, Access::Write), Some(0xa000));
    assert_eq!(peer_flags(&w, 3), PERMIT | READING | WRITING, "the granter cannot revoke now");
    w.poke(MAP_VA + 8, b"granted");
    assert_eq!(&w.mem.0[10][8..15], b"granted");

    assert_eq!(unmap(&mut w, m.handle, MAP_VA + 0x1000), GNTST_GENERAL_ERROR, "not where it is mapped");
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
    assert_eq!(translate(&mut w, MAP_VA, Access::Read), None);
    assert_eq!(peer_flags(&w, 3), PERMIT, "revocable again");
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_BAD_HANDLE, "unmapped twice");
    assert!(w.peers[0].gnttab.active.is_empty() && w.dom.gnttab.maptrack.iter().all(Option::is_none));

    grant(&w.peers[0], &mut w.mem, 3, 0, 0, 10);
    assert_eq!(map(&mut w, 3, PEER, GNTMAP_HOST_MAP).status, GNTST_GENERAL_ERROR, "after revocation");
}

#[test]
fn a_frame_mapped_writable_by_a_grant_cannot_become_a_page_table() {
    use crate::mm::pt_validate::{MapRights, Mmu};
    let mut w = world();
    // The grant replaces the mapping at MAP_VA; start without one.
    let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
    assert_eq!(w.call_ret(uvm, [MAP_VA, 0, 0, 0, 0]), 0);
    let start = w.counts();
    grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
    let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
    assert_eq!(m.status, GNTST_OKAY);
    let pin = |w: &mut World| {
        let peer = MapRights::of(&w.peers[0]);
        Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(Mfn(10), 1, &peer)
    };
    w.audit();
    assert_eq!(pin(&mut w), Err(XenError::Einval), "mapped writable by the grantee");
    assert_eq!(w.call_ret(uvm, [MAP_VA, 0, 0, 0, 0]), -22, "a grant PTE is not the MMU's to replace");
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
    assert_eq!(w.counts(), start, "the grant's references are gone");
    assert_eq!(pin(&mut w), Ok(()));
    assert_eq!(map(&mut w, 3, PEER, GNTMAP_HOST_MAP).status, GNTST_GENERAL_ERROR, "now a page table");
    let ro = map(&mut w, 3, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
    assert_eq!(ro.status, GNTST_OKAY, "read-only is fine");
    assert_eq!(unmap(&mut w, ro.handle, MAP_VA), GNTST_OKAY);
}

#[test]
fn read_only_mappings_and_device_mappings() {
    let mut w = world();
    grant(&w.peers[0], &mut w.mem, 4, PERMIT | RO, 0, 11);
    assert_eq!(map(&mut w, 4, PEER, GNTMAP_HOST_MAP).status, GNTST_GENERAL_ERROR, "writable map of a r/o grant");
    assert_eq!(peer_flags(&w, 4), PERMIT | RO, "left as it was");
    let m = map(&mut w, 4, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
    assert_eq!(m.status, GNTST_OKAY);
    assert_eq!(translate(&mut w, MAP_VA, Access::Read), Some(0xb000));
    assert_eq!(translate(&mut w, MAP_VA, Access::Write), None);
    assert_eq!(peer_flags(&w, 4), PERMIT | RO | READING);

    let d = map(&mut w, 4, PEER, GNTMAP_DEVICE_MAP | GNTMAP_READONLY);
    assert_eq!((d.status, d.handle, d.dev_bus_addr), (GNTST_OKAY, 1, 0xb000));
    assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
    assert_eq!(peer_flags(&w, 4), PERMIT | RO | READING, "the device mapping still reads it");
    let mut u = GnttabUnmapGrantRef::new_zeroed();
    (u.dev_bus_addr, u.handle) = (0xb000, d.handle);
    assert_eq!(op(&mut w, GNTTABOP_UNMAP_GRANT_REF, &[u]).1[0].status, GNTST_OKAY);
    assert_eq!(peer_flags(&w, 4), PERMIT | RO);
}

#[test]
fn hostile_maps_are_refused_and_change_nothing() {
    let mut w = world();
    grant(&w.peers[0], &mut w.mem, 1, PERMIT, 2, 10); // for domain 2
    grant(&w.peers[0], &mut w.mem, 2, PERMIT, 0, 99); // a frame the peer does not own
    grant(&w.peers[0], &mut w.mem, 5, PERMIT, 0, 10);
    let pte_before = w.mem.0[3];
    let cases: [(GnttabMapGrantRef, GntStatus, &str); 8] = [
        (map_op(1, PEER, GNTMAP_HOST_MAP), GNTST_GENERAL_ERROR, "a grant meant for another domain"),
        (map_op(2, PEER, GNTMAP_HOST_MAP), GNTST_BAD_PAGE, "a frame the granter does not own"),
        (map_op(512, PEER, GNTMAP_HOST_MAP), GNTST_BAD_GNTREF, "reference beyond the table"),
        (map_op(u32::MAX, PEER, GNTMAP_HOST_MAP), GNTST_BAD_GNTREF, "reference far beyond the table"),
        (map_op(5, 9, GNTMAP_HOST_MAP), GNTST_BAD_DOMAIN, "no such domain"),
        (map_op(5, DOMID_SELF, GNTMAP_HOST_MAP), GNTST_BAD_DOMAIN, "DOMID_SELF names no granter"),
        (map_op(5, PEER, 0), GNTST_BAD_GNTREF, "neither host nor device map"),
        (map_op(5, PEER, GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE), GNTST_GENERAL_ERROR, "PTE addresses"),
    ];
    for (m, want, what) in cases {
        let (ret, out) = op(&mut w, GNTTABOP_MAP_GRANT_REF, &[m]);
        assert_eq!((ret, out[0].status), (0, want), "{what}");
    }
    let mut m = map_op(5, PEER, GNTMAP_HOST_MAP);
    for (va, what) in [(0xffff_8000_0000_0000, "hypervisor hole"), (0x1234_5000, "no L1 there")] {
        m.host_addr = va;
        assert_eq!(op(&mut w, GNTTABOP_MAP_GRANT_REF, &[m]).1[0].status, GNTST_GENERAL_ERROR, "{what}");
    }
    assert_eq!(w.mem.0[3], pte_before, "no PTE changed");
    assert!(w.peers[0].gnttab.active.is_empty(), "no grant left in use");
    assert_eq!(peer_flags(&w, 5), PERMIT);
    assert!(w.dom.gnttab.maptrack.iter().all(Option::is_none));
    assert_eq!(unmap(&mut w, 7, MAP_VA), GNTST_BAD_HANDLE);

    // A mapped grant's frame is still not the mapper's to map elsewhere.
    let ok = map(&mut w, 5, PEER, GNTMAP_HOST_MAP);
    assert_eq!(ok.status, GNTST_OKAY);
    let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
    assert_eq!(w.call_ret(uvm, [BUF_VA + 0x2000, 0xa000 | 0x67, 0, 0, 0]), -16);
}

pub(super) fn copy_op(src: (u64, DomId, u16), dst: (u64, DomId, u16), len: u16, flags: u32) -> GnttabCopy {
    let mut c = GnttabCopy::new_zeroed();
    (c.source.u, c.source.domid, c.source.offset) = src;
    (c.dest.u, c.dest.domid, c.dest.offset) = dst;
    (c.len, c.flags) = (len, flags as u16);
    c
}

#[test]
fn copies_in_both_directions_and_refuses_bad_ones() {
    let mut w = world();
    grant(&w.peers[0], &mut w.mem, 6, PERMIT, 0, 12);
    grant(&w.peers[0], &mut w.mem, 7, PERMIT | RO, 0, 13);
    w.mem.0[5][..4].copy_from_slice(b"mine");
    w.mem.0[13][100..106].copy_from_slice(b"theirs");
    let to_peer = copy_op((5, DOMID_SELF, 0), (6, PEER, 16), 4, GNTCOPY_DEST_GREF);
    let from_peer = copy_op((7, PEER, 100), (6, DOMID_SELF, 8), 6, GNTCOPY_SOURCE_GREF);
    let (ret, out) = op(&mut w, GNTTABOP_COPY, &[to_peer, from_peer]);
    assert_eq!((ret, out[0].status, out[1].status), (0, GNTST_OKAY, GNTST_OKAY));
    assert_eq!(&w.mem.0[12][16..20], b"mine");
    assert_eq!(&w.mem.0[6][8..14], b"theirs");
    assert_eq!((peer_flags(&w, 6), peer_flags(&w, 7)), (PERMIT, PERMIT | RO), "in use only during the copy");

    let page = copy_op((5, DOMID_SELF, 0), (6, DOMID_SELF, 0), 4096, 0);
    assert_eq!(op(&mut w, GNTTABOP_COPY, &[page]).1[0].status, GNTST_OKAY, "a whole page");
    let before = (w.mem.0[6], w.mem.0[12]);
    let cases: [(GnttabCopy, GntStatus, &str); 8] = [
        (copy_op((5, DOMID_SELF, 4000), (6, DOMID_SELF, 0), 100, 0), GNTST_BAD_COPY_ARG, "source crosses a page"),
        (copy_op((5, DOMID_SELF, 0), (6, DOMID_SELF, 4095), 2, 0), GNTST_BAD_COPY_ARG, "dest crosses a page"),
        (copy_op((5, 0, 0), (6, DOMID_SELF, 0), 4, 0), GNTST_PERMISSION_DENIED, "frames only as DOMID_SELF"),
        (copy_op((12, DOMID_SELF, 0), (6, DOMID_SELF, 0), 4, 0), GNTST_BAD_PAGE, "someone else's frame"),
        (copy_op((5, DOMID_SELF, 0), (2, DOMID_SELF, 0), 4, 0), GNTST_GENERAL_ERROR, "into an own page table"),
        (copy_op((5, DOMID_SELF, 0), (7, PEER, 0), 4, GNTCOPY_DEST_GREF), GNTST_GENERAL_ERROR, "into r/o grant"),
        (copy_op((600, PEER, 0), (6, DOMID_SELF, 0), 4, GNTCOPY_SOURCE_GREF), GNTST_BAD_GNTREF, "bad ref"),
        (copy_op((6, 9, 0), (6, DOMID_SELF, 0), 4, GNTCOPY_SOURCE_GREF), GNTST_BAD_DOMAIN, "no such domain"),
    ];
    for (c, want, what) in cases {
        assert_eq!(op(&mut w, GNTTABOP_COPY, &[c]).1[0].status, want, "{what}");
    }
    assert_eq!((w.mem.0[6], w.mem.0[12]), before, "no refused copy wrote anything");
    assert!(w.peers[0].gnttab.active.is_empty());
}

#[test]
fn long_batches_are_continued() {
    let mut w = world();
    let ops = std::vec![map_op(1, 9, GNTMAP_HOST_MAP); BATCH as usize + 3];
    let bytes: Vec<u8> = ops.iter().flat_map(|o| o.as_bytes().to_vec()).collect();
    w.poke(BUF_VA, &bytes);
    let size = core::mem::size_of::<GnttabMapGrantRef>() as u64;
    let next = BUF_VA + u64::from(BATCH) * size;
    let cmd = u64::from(GNTTABOP_MAP_GRANT_REF);
    assert_eq!(w.call(NR, [cmd, BUF_VA, ops.len() as u64, 0, 0]), Outcome::Continue([cmd, next, 3, 0, 0]));
    assert_eq!(w.call(NR, [cmd, next, 3, 0, 0]), Outcome::Return(0));
    let back = w.peek(BUF_VA, bytes.len());
    assert!(back.chunks(size as usize).all(|c| GnttabMapGrantRef::read_from_bytes(c).unwrap().status == -2));
}

/// Maps the caller's own grant `gref` device-only and read-only `n`
/// times, 16 operations a call; the status of each map, in order.
fn self_map_flood(w: &mut World, gref: u32, n: usize) -> Vec<i16> {
    let one = map_op(gref, 0, GNTMAP_DEVICE_MAP | GNTMAP_READONLY);
    let mut statuses = Vec::new();
    while statuses.len() < n {
        let batch = (n - statuses.len()).min(16);
        let (ret, out) = op(w, GNTTABOP_MAP_GRANT_REF, &std::vec![one; batch]);
        assert_eq!(ret, 0);
        statuses.extend(out.iter().map(|m| m.status));
    }
    statuses
}

/// Unmaps every mapping the caller holds (device-only ones, by bus
/// address).
fn unmap_all(w: &mut World) {
    let held: Vec<(u32, u64)> = w
        .dom
        .gnttab
        .maptrack
        .iter()
        .enumerate()
        .filter_map(|(h, m)| Some((h as u32, m.as_ref()?.mfn.addr())))
        .collect();
    for (handle, dev_bus_addr) in held {
        let u = GnttabUnmapGrantRef { handle, dev_bus_addr, ..GnttabUnmapGrantRef::new_zeroed() };
        let (ret, out) = op(w, GNTTABOP_UNMAP_GRANT_REF, &[u]);
        assert_eq!((ret, out[0].status), (0, GNTST_OKAY), "handle {handle}");
    }
}

#[test]
fn a_domain_mapping_its_own_grant_4096_times_gets_xens_pin_limit() {
    let mut w = world();
    w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
    grant(&w.dom, &mut w.mem, 5, PERMIT | RO, 0, 9);
    let statuses = self_map_flood(&mut w, 5, 4096);
    // Xen 4.17 map_grant_ref: "risk of counter overflow" once a kind's
    // 8-bit pin count reaches 128 (GNTPIN_incr2oflow_mask).
    assert!(statuses[..128].iter().all(|&s| s == GNTST_OKAY));
    assert!(statuses[128..].iter().all(|&s| s == GNTST_GENERAL_ERROR));
    assert_eq!(w.dom.gnttab.maptrack.iter().flatten().count(), 128, "refused maps hold no handle");
    assert_eq!(w.dom.gnttab.active.get(&5).map(|a| a.pin), Some(128 << 24), "128 device reads");
    assert_eq!(w.ft.info(Mfn(9)).map(|p| p.count()), Some(128), "one frame reference per mapping");
    w.audit();
    // Another kind of use is still counted on its own: a host read.
    let (ret, out) = op(&mut w, GNTTABOP_MAP_GRANT_REF, &[map_op(5, 0, GNTMAP_HOST_MAP | GNTMAP_READONLY)]);
    assert_eq!((ret, out[0].status), (0, GNTST_OKAY));
    assert_eq!(unmap(&mut w, out[0].handle, MAP_VA), GNTST_OKAY);
    unmap_all(&mut w);
    assert!(w.dom.gnttab.active.is_empty());
    assert_eq!(w.dom.gnttab.entry(&w.mem, 5).unwrap().flags, PERMIT | RO, "GTF_reading cleared");
    w.audit();
}

#[test]
fn a_full_maptrack_is_gntst_no_space_and_changes_nothing() {
    let mut w = world();
    // One maptrack frame: 256 handles (createdomain's max_maptrack_frames).
    w.dom.gnttab.set_limits(-1, 1).unwrap();
    w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
    for gref in [5, 6, 7] {
        grant(&w.dom, &mut w.mem, gref, PERMIT | RO, 0, 9);
    }
    assert!(self_map_flood(&mut w, 5, 128).iter().all(|&s| s == GNTST_OKAY));
    assert!(self_map_flood(&mut w, 6, 128).iter().all(|&s| s == GNTST_OKAY));
    let counts = w.counts();
    // Xen 4.17 map_grant_ref: "Failed to obtain maptrack handle".
    assert!(self_map_flood(&mut w, 7, 64).iter().all(|&s| s == GNTST_NO_SPACE));
    assert_eq!(w.counts(), counts, "no frame count moved");
    assert!(!w.dom.gnttab.active.contains_key(&7), "the grant was not looked at");
    assert_eq!(w.dom.gnttab.entry(&w.mem, 7).unwrap().flags, PERMIT | RO);
    assert_eq!(w.dom.gnttab.maptrack.len(), 256, "the maptrack grew to its limit, no further");
    w.audit();
    unmap_all(&mut w);
    assert!(self_map_flood(&mut w, 7, 1) == [GNTST_OKAY], "handles come back");
    w.audit();
}

#[test]
fn createdomain_limits_bound_the_table_and_the_maptrack() {
    let mut t = crate::gnttab::GrantTable::new();
    assert_eq!(t.max_frames(), MAX_FRAMES, "the default");
    assert_eq!(t.set_limits(4, 0), Ok(()));
    assert_eq!(t.max_frames(), 4);
    assert!(!t.can_track(), "no maptrack frames: no mappings");
    for (frames, maptrack) in [(0, 1), (65, 1), (1, 1025)] {
        assert_eq!(t.set_limits(frames, maptrack), Err(XenError::Einval), "{frames} {maptrack}");
    }
    let mut w = world();
    w.dom.gnttab.set_limits(2, -1).unwrap();
    let mut s = GnttabSetupTable::new_zeroed();
    (s.dom, s.nr_frames, s.frame_list) = (DOMID_SELF, 3, guest_abi::GuestHandle::new(BUF_VA + 0x100));
    assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_GENERAL_ERROR, "past max_grant_frames");
    let q = GnttabQuerySize { dom: DOMID_SELF, ..GnttabQuerySize::new_zeroed() };
    assert_eq!(op(&mut w, GNTTABOP_QUERY_SIZE, &[q]).1[0].max_nr_frames, 2);
}
