//! A hostile guest's random grant operations against a peer's and its own
//! table, both versions, with the entries rewritten at random in between:
//! nothing may panic and every frame count stays exact (the world audits
//! after each hypercall); at the end, once every handle is unmapped, no
//! grant is left in use.

use super::super::tests::{test_domain, World, BUF_VA};
use super::tests::{MAP_VA, NR, PEER};
use super::*;
use zerocopy::FromZeros;

extern crate std;
use std::vec::Vec;

/// xorshift64: deterministic, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn call<T: IntoBytes + Immutable>(w: &mut World, cmd: u32, arg: &T) -> i64 {
    w.poke(BUF_VA, arg.as_bytes());
    w.call_ret(NR, [u64::from(cmd), BUF_VA, 1, 0, 0])
}

/// Rewrites entry `gref` (0..20) of the caller's or the peer's table in
/// the table's version: mostly a plausible grant to the caller of a frame
/// of the granter's, sometimes anything.
fn scribble(w: &mut World, own: bool, rng: &mut Rng) {
    let d = if own { &w.dom } else { &w.peers[0] };
    let gref = rng.below(20) as u32;
    let Ok((frame, off)) = d.gnttab.header_at(gref) else { return };
    let v2 = d.gnttab.version == 2;
    let pick = |rng: &mut Rng, common: u64, rare: u64| if rng.below(4) == 0 { rare } else { common };
    let flags = match rng.below(8) {
        0 => rng.next() as u16,
        1 => 1 | 4,
        2 => 1 | 0x100,
        3 => 3,
        4 => 2,
        _ => 1,
    };
    let other_dom = [PEER, 5][rng.below(2) as usize];
    let domid = pick(rng, 0, u64::from(other_dom)) as u16;
    let mine = if own { 6 + rng.below(2) } else { 10 + rng.below(2) };
    let (any, which) = (rng.next(), rng.below(4) as usize);
    let target = pick(rng, mine, [2, 6, 10, any][which]);
    let b = &mut w.mem.0[frame.0 as usize][off..off + if v2 { 16 } else { 8 }];
    b[0..2].copy_from_slice(&flags.to_le_bytes());
    b[2..4].copy_from_slice(&domid.to_le_bytes());
    if v2 {
        // Sub-page offset/length or transitive domain, then the frame (or
        // a transitive grant's reference).
        let (o, l) = (rng.below(4096) as u16, rng.below(4096) as u16);
        let (first, last) = (rng.below(2) as usize, rng.below(2) as usize);
        let gref = rng.below(20);
        b[4..6].copy_from_slice(&[o, PEER][first].to_le_bytes());
        b[6..8].copy_from_slice(&l.to_le_bytes());
        b[8..16].copy_from_slice(&[target, gref][last].to_le_bytes());
    } else {
        b[4..8].copy_from_slice(&(target as u32).to_le_bytes());
    }
}

#[test]
fn random_operations_and_rewritten_entries_keep_every_count_exact() {
    for seed in [7u64, 0x1234_5678_9abc_def1] {
        let mut w = World::new(false);
        let mut peer = test_domain(PEER, false, 10..14, None, Mfn(15));
        peer.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        w.add_peer(peer);
        w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        let mut rng = Rng(seed);
        let mut handles: Vec<u32> = Vec::new();
        for _ in 0..2000 {
            let dom = [PEER, PEER, 0, 9][rng.below(4) as usize];
            let gref = rng.below(20) as u32;
            match rng.below(10) {
                0 | 1 => {
                    let flags = [GNTMAP_HOST_MAP, GNTMAP_HOST_MAP | GNTMAP_READONLY, GNTMAP_DEVICE_MAP, 3]
                        [rng.below(4) as usize];
                    let mut m = GnttabMapGrantRef::new_zeroed();
                    (m.host_addr, m.flags, m.ref_, m.dom) = (MAP_VA, flags, gref, dom);
                    w.poke(BUF_VA, m.as_bytes());
                    w.call_ret(NR, [u64::from(GNTTABOP_MAP_GRANT_REF), BUF_VA, 1, 0, 0]);
                    let bytes = w.peek(BUF_VA, size_of::<GnttabMapGrantRef>());
                    if let Ok(back) = GnttabMapGrantRef::read_from_bytes(&bytes) {
                        if back.status == GNTST_OKAY {
                            handles.push(back.handle);
                        }
                    }
                }
                2 => {
                    let handle = handles.get(rng.below(handles.len() as u64 + 1) as usize).copied().unwrap_or(77);
                    let mut u = GnttabUnmapGrantRef::new_zeroed();
                    (u.host_addr, u.dev_bus_addr, u.handle) = (MAP_VA, rng.below(2) * 0xa000, handle);
                    call(&mut w, GNTTABOP_UNMAP_GRANT_REF, &u);
                }
                3 => {
                    let mut c = GnttabCopy::new_zeroed();
                    c.source = GnttabCopyPtr::from_gref(gref, dom, rng.below(200) as u16);
                    c.dest = GnttabCopyPtr::from_gmfn(6, DOMID_SELF, rng.below(4096) as u16);
                    (c.len, c.flags) = (rng.below(100) as u16, GNTCOPY_SOURCE_GREF as u16);
                    call(&mut w, GNTTABOP_COPY, &c);
                }
                4 => {
                    let s = GnttabSwapGrantRef { ref_a: gref, ref_b: rng.below(20) as u32, ..FromZeros::new_zeroed() };
                    call(&mut w, GNTTABOP_SWAP_GRANT_REF, &s);
                }
                5 if rng.below(4) == 0 => {
                    call(&mut w, GNTTABOP_SET_VERSION, &GnttabSetVersion { version: 1 + rng.below(2) as u32 });
                }
                6 => {
                    let handle = handles.get(rng.below(handles.len() as u64 + 1) as usize).copied().unwrap_or(77);
                    let r = GnttabUnmapAndReplace {
                        host_addr: MAP_VA,
                        new_addr: [0, BUF_VA + 0x2000][rng.below(2) as usize],
                        handle,
                        ..FromZeros::new_zeroed()
                    };
                    call(&mut w, GNTTABOP_UNMAP_AND_REPLACE, &r);
                    // Put frame 6 back where it was, if it moved.
                    let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
                    w.call_ret(uvm, [BUF_VA + 0x2000, (6 << 12) | 0x67, 0, 0, 0]);
                }
                7 if rng.below(8) == 0 => {
                    let mut t = GnttabTransfer::new_zeroed();
                    (t.mfn, t.domid, t.ref_) = (9, PEER, gref);
                    call(&mut w, GNTTABOP_TRANSFER, &t);
                }
                _ => scribble(&mut w, rng.below(2) == 0, &mut rng),
            }
        }
        for handle in core::mem::take(&mut handles) {
            let mut u = GnttabUnmapGrantRef::new_zeroed();
            (u.host_addr, u.handle) = (MAP_VA, handle);
            if let Some(m) = w.dom.gnttab.mapping(handle).copied() {
                u.dev_bus_addr = if m.device { m.mfn.addr() } else { 0 };
                if m.by_pte || !m.host {
                    u.host_addr = 0;
                }
            }
            call(&mut w, GNTTABOP_UNMAP_GRANT_REF, &u);
        }
        // A host mapping whose PTE was moved away cannot be unmapped by
        // address any more (as on Xen): those stay until the mapper dies.
        let left = w.dom.gnttab.maptrack.iter().flatten().count();
        let active: usize = core::iter::once(&w.dom).chain(w.peers.iter()).map(|d| d.gnttab.active.len()).sum();
        assert!(active <= left, "seed {seed}: {active} grants in use for {left} mappings");
    }
}
