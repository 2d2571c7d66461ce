//! `XENMEM_exchange`: a domain trades frames it owns for as many new ones,
//! of another extent order and below an address limit if it asks — how a
//! PV kernel gets machine-contiguous memory a device can reach (Linux's
//! `xen_create_contiguous_region`, for swiotlb-xen).
//!
//! Semantics and errnos: Xen 4.17 `xen/common/memory.c` `memory_exchange`
//! with x86's `steal_page`. The work goes in *chunks*: the larger of the
//! two extent orders, so that a chunk is one whole extent on one side and
//! several on the other. A chunk is done whole or not at all:
//! - its input frames must each be the domain's, with nothing referring to
//!   them (no mapping, page type, pin, grant, vcpu_info, console ring):
//!   Xen's `steal_page` needs the frame's only reference to be its
//!   allocation, else `-EINVAL`;
//! - its output extents are `2^out.extent_order` machine-contiguous,
//!   naturally aligned frames, below `2^address_bits` bytes if
//!   `out.mem_flags` says so; none is `-ENOMEM`.
//!
//! Then the input frames go back to the pool (scrubbed, their M2P entries
//! invalid, the TLB flushed, as `decrease_reservation` does) and, for each
//! output extent, the guest's gpfn is read from `out.extent_start`, the M2P
//! says `mfn + k -> gpfn + k`, and the extent's first MFN is written back
//! in its place (PV: the guest updates its own p2m and mappings). The
//! domain owns as many frames as before, so `max_pages` is not in play.
//! `nr_exchanged` counts input extents done; a failed chunk leaves its
//! frames as they were, `nr_exchanged` at the chunks done before it, and
//! returns the errno. A long exchange is continued with `nr_exchanged`
//! saved in the guest's argument.

use alloc::vec::Vec;

use guest_abi::errno::XenError;
use guest_abi::memory::{MemoryExchange, MemoryReservation, XENMEMF_EXACT_NODE_REQUEST, XENMEM_EXCHANGE};
use zerocopy::IntoBytes;

use super::memory_op::{max_order, read, write, BATCH};
use super::xsm::{self, Action};
use super::{Ctx, Outcome, TlbFlush};
use crate::domain::DomId;
use crate::guest_access::is_guest_addr;
use crate::mm::frame_table::Owner;
use crate::mm::{Mfn, Pfn, PAGE_SHIFT};

/// `NUMA_NO_NODE` as `XENMEMF_get_node` decodes "no node given".
const NO_NODE: u32 = 0xff;
/// Xen's `MAX_NUMNODES` (`CONFIG_NR_NUMA_NODES`, 64 by default).
const MAX_NUMNODES: u32 = 64;
/// Offset of `nr_exchanged` in `struct xen_memory_exchange`.
const NR_EXCHANGED_OFFSET: u64 = 2 * core::mem::size_of::<MemoryReservation>() as u64;

/// `XENMEM_exchange(arg)`.
pub fn exchange(ctx: &mut Ctx, arg: u64) -> Outcome {
    let Ok(exch) = read::<MemoryExchange>(ctx, arg) else { return Outcome::Return(XenError::Efault.to_ret()) };
    let mut ex = Exchange { arg, exch, in_chunk_order: 0, out_chunk_order: 0 };
    match ex.run(ctx) {
        Step::Continue => Outcome::Continue([u64::from(XENMEM_EXCHANGE), arg, 0, 0, 0]),
        Step::Return(r) => Outcome::Return(r.map_or_else(XenError::to_ret, |()| 0)),
    }
}

/// How a run ends.
enum Step {
    /// Preempted: `nr_exchanged` is saved, the call goes on later.
    Continue,
    /// Finished or failed.
    Return(Result<(), XenError>),
}

/// One exchange in progress.
struct Exchange {
    arg: u64,
    exch: MemoryExchange,
    /// log2 of the input extents per chunk.
    in_chunk_order: u32,
    /// log2 of the output extents per chunk.
    out_chunk_order: u32,
}

/// Whether the `count` elements of 8 bytes from `first` of a guest array at
/// `base` lie in guest space (Xen's `guest_handle_subrange_okay`).
fn range_ok(base: u64, first: u64, last_incl: u64) -> bool {
    let Some(count) = last_incl.checked_sub(first).and_then(|n| n.checked_add(1)) else { return true };
    let start = first.checked_mul(8).and_then(|o| base.checked_add(o));
    let end = count.checked_mul(8).and_then(|n| start?.checked_add(n - 1));
    matches!((start, end), (Some(s), Some(e)) if is_guest_addr(s) && is_guest_addr(e))
}

/// Xen's `propagate_node`: a node given must exist (privileged callers) or
/// may not be insisted on (others); xenish has one node and ignores it.
fn node_ok(mem_flags: u32, privileged: bool) -> bool {
    let node = ((mem_flags >> 8).wrapping_sub(1)) & 0xff;
    if node == NO_NODE {
        return true;
    }
    if privileged {
        node < MAX_NUMNODES
    } else {
        mem_flags & XENMEMF_EXACT_NODE_REQUEST == 0
    }
}

/// The first frame an allocation limited to `address_bits` may not use
/// (`XENMEMF_address_bits`; 0 is no limit).
fn frame_limit(address_bits: u32) -> Mfn {
    match address_bits {
        0 => Mfn(u64::MAX),
        b if b >= 64 + PAGE_SHIFT => Mfn(u64::MAX),
        b => Mfn(1u64 << b.saturating_sub(PAGE_SHIFT)),
    }
}

impl Exchange {
    fn run(&mut self, ctx: &mut Ctx) -> Step {
        let (i, o) = (self.exch.in_, self.exch.out_);
        if i.extent_order.max(o.extent_order) > max_order(ctx) {
            return self.finish(ctx, Err(XenError::Eperm));
        }
        let fits = |r: &MemoryReservation| (!0u64 >> r.extent_order) >= r.nr_extents;
        if self.exch.nr_exchanged > i.nr_extents
            || i.domid != o.domid
            || !fits(&i)
            || !fits(&o)
            || i.nr_extents << i.extent_order != o.nr_extents << o.extent_order
        {
            return self.finish(ctx, Err(XenError::Einval));
        }
        if self.exch.nr_exchanged == i.nr_extents {
            return Step::Return(Ok(()));
        }
        let done = self.exch.nr_exchanged;
        let out_first = if i.extent_order <= o.extent_order {
            self.in_chunk_order = o.extent_order - i.extent_order;
            done >> self.in_chunk_order
        } else {
            self.out_chunk_order = i.extent_order - o.extent_order;
            done << self.out_chunk_order
        };
        if !range_ok(i.extent_start.addr(), done, i.nr_extents.wrapping_sub(1))
            || !range_ok(o.extent_start.addr(), out_first, o.nr_extents.wrapping_sub(1))
        {
            return self.finish(ctx, Err(XenError::Efault));
        }
        if !node_ok(o.mem_flags, ctx.is_privileged()) {
            return self.finish(ctx, Err(XenError::Einval));
        }
        let id = match xsm::target(ctx.domain, &mut ctx.peers, i.domid, Action::Target) {
            Ok(d) => d.id,
            Err(e) => return self.finish(ctx, Err(e)),
        };
        let end = frame_limit(o.mem_flags & 0xff);
        let first_chunk = done >> self.in_chunk_order;
        let chunk_pages = 1u64 << (self.in_chunk_order + i.extent_order);
        for chunk in first_chunk..i.nr_extents >> self.in_chunk_order {
            if chunk != first_chunk && (chunk - first_chunk) * chunk_pages >= BATCH {
                self.exch.nr_exchanged = chunk << self.in_chunk_order;
                return match self.save(ctx) {
                    Ok(()) => Step::Continue,
                    Err(e) => Step::Return(Err(e)),
                };
            }
            if let Err(e) = self.chunk(ctx, id, chunk, end) {
                self.exch.nr_exchanged = chunk << self.in_chunk_order;
                return self.finish(ctx, Err(e));
            }
        }
        self.exch.nr_exchanged = i.nr_extents;
        self.finish(ctx, Ok(()))
    }

    /// Writes `nr_exchanged` back and ends with `r` (`-EFAULT` if the
    /// write fails).
    fn finish(&self, ctx: &mut Ctx, r: Result<(), XenError>) -> Step {
        Step::Return(self.save(ctx).and(r))
    }

    fn save(&self, ctx: &mut Ctx) -> Result<(), XenError> {
        let va = self.arg.checked_add(NR_EXCHANGED_OFFSET).ok_or(XenError::Efault)?;
        write(ctx, va, self.exch.nr_exchanged.as_bytes())
    }

    /// Exchanges chunk `chunk` of domain `id`'s frames, output below `end`.
    fn chunk(&self, ctx: &mut Ctx, id: DomId, chunk: u64, end: Mfn) -> Result<(), XenError> {
        let (i, o) = (self.exch.in_, self.exch.out_);
        let stolen = self.stealable(ctx, id, chunk)?;
        let d = xsm::target(ctx.domain, &mut ctx.peers, i.domid, Action::Target)?;
        let count = 1u64 << o.extent_order;
        let mut extents: Vec<Mfn> = Vec::new();
        for _ in 0..1u64 << self.out_chunk_order {
            let got = match (count, end.0) {
                (1, u64::MAX) => ctx.frames.alloc(),
                _ => ctx.frames.alloc_contiguous_below(count, count, end),
            };
            // Every output frame must be one the frame table can give the
            // domain (free, covered), so that the trade below cannot fail.
            let assignable = |ft: &crate::mm::frame_table::FrameTable, first: Mfn| {
                (0..count).all(|k| ft.owner(Mfn(first.0 + k)) == Some(Owner::Free))
            };
            let usable = got.filter(|&first| assignable(ctx.ft, first));
            let Some(first) = usable else {
                for &e in extents.iter().chain(got.iter()) {
                    (0..count).for_each(|k| ctx.frames.free(Mfn(e.0 + k)));
                }
                return Err(XenError::Enomem);
            };
            extents.push(first);
        }
        // Beyond this point the chunk cannot fail: the input frames go
        // (each checked by `stealable`: the domain's, unreferenced).
        for &mfn in &stolen {
            let _ = ctx.ft.release_page(mfn, id, &mut d.page_list);
            ctx.m2p.set(ctx.mem, mfn, None);
            if let Some(bytes) = ctx.mem.frame_mut(mfn) {
                bytes.fill(0);
            }
            ctx.frames.free(mfn);
        }
        // The guest may have unmapped them without a flush.
        ctx.tlb.add(TlbFlush::All, d.dirty_cpus);
        for &first in &extents {
            for k in 0..count {
                let mfn = Mfn(first.0 + k);
                if let Some(bytes) = ctx.mem.frame_mut(mfn) {
                    bytes.fill(0);
                }
                ctx.m2p.set(ctx.mem, mfn, None);
                // Checked above: free and covered by the frame table.
                let _ = ctx.ft.assign_page(mfn, id, &mut d.page_list);
            }
        }
        // Each extent's gpfn in, its MFN out; a slot the guest cannot be
        // read or written fails the chunk, though its frames stay traded
        // (Xen's behaviour: the output extents are the domain's by now).
        let mut r = Ok(());
        for (j, &first) in extents.iter().enumerate() {
            let idx = (chunk << self.out_chunk_order) + j as u64;
            let Some(slot) = o.extent_start.element_addr(idx) else {
                r = Err(XenError::Efault);
                continue;
            };
            let Ok(gpfn) = read::<u64>(ctx, slot) else {
                r = Err(XenError::Efault);
                continue;
            };
            for k in 0..count {
                ctx.m2p.set(ctx.mem, Mfn(first.0 + k), Some(Pfn(gpfn.wrapping_add(k))));
            }
            if write(ctx, slot, &first.0).is_err() {
                r = Err(XenError::Efault);
            }
        }
        r
    }

    /// The input frames of chunk `chunk`, each one that `steal_page` would
    /// take from domain `id`: its own, and referenced by nothing; sorted.
    fn stealable(&self, ctx: &mut Ctx, id: DomId, chunk: u64) -> Result<Vec<Mfn>, XenError> {
        let i = self.exch.in_;
        let mut frames: Vec<Mfn> = Vec::new();
        for j in 0..1u64 << self.in_chunk_order {
            let idx = (chunk << self.in_chunk_order) + j;
            let slot = i.extent_start.element_addr(idx).ok_or(XenError::Efault)?;
            let gmfn: u64 = read(ctx, slot)?;
            for k in 0..1u64 << i.extent_order {
                let mfn = Mfn(gmfn.checked_add(k).ok_or(XenError::Einval)?);
                if ctx.mem.frame(mfn).is_none() || ctx.ft.info(mfn).is_none() {
                    return Err(XenError::Einval);
                }
                let d = xsm::target(ctx.domain, &mut ctx.peers, i.domid, Action::Target)?;
                let held = d.shared_info == mfn || d.console_ring.is_some_and(|(ring, _)| ring == mfn);
                let own = ctx.ft.is_owned_by(mfn, id);
                let free = ctx.ft.info(mfn).is_some_and(|p| p.count() == 0 && p.type_count() == 0);
                if held || !own || !free {
                    return Err(XenError::Einval);
                }
                frames.push(mfn);
            }
        }
        // A frame listed twice: the second steal finds it gone.
        frames.sort_unstable();
        if frames.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(XenError::Einval);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA, M2P};
    use super::*;
    use guest_abi::arch_x86::GuestHandle;
    use guest_abi::memory::XENMEM_EXCHANGE;
    use guest_abi::xen::{DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_UPDATE_VA_MAPPING};
    use zerocopy::{FromBytes, FromZeros};

    extern crate std;
    use std::vec;

    const NR: u64 = HYPERVISOR_MEMORY_OP as u64;
    const EXCHANGE: u64 = XENMEM_EXCHANGE as u64;
    /// Where the tests put the input and output lists.
    const IN_LIST: u64 = BUF_VA + 0x800;
    const OUT_LIST: u64 = BUF_VA + 0xc00;

    fn reservation(list: u64, nr_extents: u64, order: u32, mem_flags: u32) -> MemoryReservation {
        let mut r = MemoryReservation::new_zeroed();
        (r.extent_start, r.nr_extents, r.extent_order, r.mem_flags) =
            (GuestHandle::new(list), nr_extents, order, mem_flags);
        r.domid = DOMID_SELF;
        r
    }

    /// An exchange of `ins` (MFNs, extents of `in_order`) for extents of
    /// `out_order` at the gpfns `outs`, below `2^bits` bytes.
    fn exchange(ins: &[u64], in_order: u32, outs: &[u64], out_order: u32, bits: u32) -> MemoryExchange {
        let mut e = MemoryExchange::new_zeroed();
        e.in_ = reservation(IN_LIST, ins.len() as u64, in_order, 0);
        e.out_ = reservation(OUT_LIST, outs.len() as u64, out_order, bits);
        e
    }

    fn words(v: &[u64]) -> vec::Vec<u8> {
        v.iter().flat_map(|m| m.to_le_bytes()).collect()
    }

    /// Runs the exchange with its lists in place; returns the result and
    /// what the guest reads back: `nr_exchanged` and the output list.
    fn run(w: &mut World, e: MemoryExchange, ins: &[u64], outs: &[u64]) -> (i64, u64, vec::Vec<u64>) {
        w.poke(IN_LIST, &words(ins));
        w.poke(OUT_LIST, &words(outs));
        w.poke(BUF_VA, e.as_bytes());
        let ret = w.call_ret(NR, [EXCHANGE, BUF_VA, 0, 0, 0]);
        let back = MemoryExchange::read_from_bytes(&w.peek(BUF_VA, 72)).unwrap();
        let list =
            w.peek(OUT_LIST, outs.len() * 8).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        (ret, back.nr_exchanged, list)
    }

    /// Unmaps frame 7 (at BUF_VA + 0x3000): with 9, two frames of the
    /// caller's nothing refers to.
    fn world() -> World {
        let mut w = World::new(false);
        let uvm = HYPERVISOR_UPDATE_VA_MAPPING as u64;
        assert_eq!(w.call_ret(uvm, [BUF_VA + 0x3000, 0, 0, 0, 0]), 0);
        w.mem.0[7][1] = 0x77;
        w.mem.0[9][2] = 0x99;
        M2P.set(&mut w.mem, Mfn(7), Some(Pfn(0x07)));
        M2P.set(&mut w.mem, Mfn(9), Some(Pfn(0x09)));
        w
    }

    #[test]
    fn two_frames_for_one_contiguous_extent_below_an_address() {
        let mut w = world();
        let owned = w.dom.tot_pages();
        let e = exchange(&[9, 7], 0, &[0x40], 1, 17);
        assert_eq!(run(&mut w, e, &[9, 7], &[0x40]), (0, 2, vec![16]), "the new extent's MFN in the gpfn's place");
        assert!(w.owns(0, 16) && w.owns(0, 17));
        assert!(!w.owns(0, 7) && !w.owns(0, 9));
        assert_eq!(w.dom.tot_pages(), owned, "as many frames as before");
        assert_eq!((w.ft.owner(Mfn(16)), w.ft.owner(Mfn(9))), (Some(Owner::Domain(0)), Some(Owner::Free)));
        assert_eq!([16, 17].map(|m| M2P.get(&w.mem, Mfn(m))), [Some(Pfn(0x40)), Some(Pfn(0x41))]);
        assert_eq!([7, 9].map(|m| M2P.get(&w.mem, Mfn(m))), [None, None]);
        assert_eq!((w.mem.0[7][1], w.mem.0[9][2]), (0, 0), "given back scrubbed");
        assert!(w.pool.0.contains(&Mfn(7)) && w.pool.0.contains(&Mfn(9)));
        assert_eq!(w.tlb, TlbFlush::All);

        // And back: the order-1 extent for two single frames.
        w.mem.0[16][0] = 0xaa;
        let e = exchange(&[16], 1, &[0x50, 0x60], 0, 0);
        let (ret, done, mfns) = run(&mut w, e, &[16], &[0x50, 0x60]);
        assert_eq!((ret, done), (0, 1));
        for (mfn, gpfn) in mfns.iter().zip([0x50, 0x60]) {
            assert!(w.owns(0, *mfn));
            assert_eq!(M2P.get(&w.mem, Mfn(*mfn)), Some(Pfn(gpfn)));
            assert!(w.mem.0[*mfn as usize].iter().all(|&b| b == 0), "no one's old data");
        }
        assert!(!w.owns(0, 16) && !w.owns(0, 17));
        assert_eq!(w.dom.tot_pages(), owned);
    }

    #[test]
    fn refusals_leave_everything_as_it_was() {
        let mut w = world();
        w.add_peer(test_domain(4, false, 10..12, None, Mfn(15)));
        let (eperm, einval, efault) = (-1, -22, -14);
        let mut cases: vec::Vec<(MemoryExchange, &[u64], i64, &str)> = vec::Vec::new();
        let e = |ins: &[u64], io, outs: &[u64], oo, bits| exchange(ins, io, outs, oo, bits);
        cases.push((e(&[9, 7], 0, &[0x40], 0, 0), &[9, 7], einval, "two pages in, one out"));
        let mut other = e(&[9], 0, &[0x40], 0, 0);
        other.out_.domid = 4;
        cases.push((other, &[9], einval, "in and out for different domains"));
        let mut past = e(&[9], 0, &[0x40], 0, 0);
        past.nr_exchanged = 2;
        cases.push((past, &[9], einval, "more done than asked"));
        cases.push((e(&[9], 10, &[0x40], 10, 0), &[9], eperm, "order 10 for a domU"));
        for (mfn, what) in [
            (4u64, "a frame it maps"),
            (12, "a frame it does not own"),
            (8, "its shared_info"),
            (2, "one of its page tables"),
            (0, "its L4, in use"),
            (1 << 40, "no such frame"),
        ] {
            cases.push((e(&[mfn], 0, &[0x40], 0, 0), std::boxed::Box::leak(std::boxed::Box::new([mfn])), einval, what));
        }
        cases.push((e(&[9, 9], 0, &[0x40], 1, 0), &[9, 9], einval, "the same frame twice"));
        cases.push((e(&[u64::MAX], 1, &[0x40], 1, 0), &[u64::MAX], einval, "an extent past the last frame"));
        cases.push((e(&[9, 7], 0, &[0x40], 1, 16), &[9, 7], -12, "nothing free below 64 KiB: ENOMEM"));
        let mut exact = e(&[9], 0, &[0x40], 0, 0);
        exact.out_.mem_flags = (2 << 8) | XENMEMF_EXACT_NODE_REQUEST;
        cases.push((exact, &[9], einval, "a domU insisting on a node"));
        let mut hole = e(&[9], 0, &[0x40], 0, 0);
        hole.in_.extent_start = GuestHandle::new(0xffff_8000_0000_0000);
        cases.push((hole, &[9], efault, "a list in the hypervisor's hole"));
        let mut unmapped = e(&[9], 0, &[0x40], 0, 0);
        unmapped.in_.extent_start = GuestHandle::new(0x10);
        cases.push((unmapped, &[9], efault, "an unmapped list"));
        let mut foreign = e(&[10], 0, &[0x40], 0, 0);
        (foreign.in_.domid, foreign.out_.domid) = (4, 4);
        cases.push((foreign, &[10], eperm, "another domain's, unprivileged"));
        (foreign.in_.domid, foreign.out_.domid) = (9, 9);
        cases.push((foreign, &[10], -3, "no such domain"));

        for (e, ins, errno, what) in cases {
            let owned = |w: &World| w.ft.pages(&w.dom.page_list).collect::<vec::Vec<_>>();
            let (mine, pool, counts, frames) = (owned(&w), w.pool.0.clone(), w.counts(), w.mem.0.clone());
            let (ret, done, _) = run(&mut w, e, ins, &[0x40]);
            assert_eq!((ret, done), (errno, e.nr_exchanged), "{what}");
            assert_eq!((owned(&w), &w.pool.0, w.counts()), (mine, &pool, counts), "{what}");
            for f in [0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 16, 17] {
                assert!(w.mem.0[f] == frames[f], "{what}: frame {f} changed");
            }
        }
        w.poke(BUF_VA, exchange(&[9], 0, &[0x40], 0, 0).as_bytes());
        assert_eq!(w.call_ret(NR, [EXCHANGE | 1 << 6, BUF_VA, 0, 0, 0]), einval, "a start extent");
        assert_eq!(w.call_ret(NR, [EXCHANGE, 0x10, 0, 0, 0]), efault, "an unreadable argument");
        w.dom.privileged = true;
        let (ret, ..) = run(&mut w, exchange(&[9], 10, &[0x40], 10, 0), &[9], &[0x40]);
        assert_eq!(ret, einval, "order 10 is fine for dom0, but 9 is no order-10 extent of its own");
    }

    #[test]
    fn a_failed_chunk_stops_the_count_after_those_done() {
        let mut w = world();
        let (ret, done, mfns) = run(&mut w, exchange(&[9, 4], 0, &[0x40, 0x41], 0, 0), &[9, 4], &[0x40, 0x41]);
        assert_eq!((ret, done), (-22, 1), "frame 4 is mapped");
        assert!(!w.owns(0, 9) && w.owns(0, 4));
        assert!(w.owns(0, mfns[0]));
        assert_eq!(mfns[1], 0x41, "the failed extent's slot is left alone");
        assert_eq!(w.dom.tot_pages(), 9);
        // The guest fixes the list and goes on from nr_exchanged.
        let mut e = exchange(&[9, 7], 0, &[0x40, 0x41], 0, 0);
        e.nr_exchanged = 1;
        let (ret, done, mfns2) = run(&mut w, e, &[9, 7], &[mfns[0], 0x41]);
        assert_eq!((ret, done), (0, 2));
        assert_eq!(mfns2[0], mfns[0], "the done extent is not redone");
        assert!(!w.owns(0, 7) && w.owns(0, mfns2[1]));
        assert_eq!(M2P.get(&w.mem, Mfn(mfns2[1])), Some(Pfn(0x41)));
        e.nr_exchanged = 2;
        assert_eq!(run(&mut w, e, &[9, 7], &[0, 0]), (0, 2, vec![0, 0]), "nothing left to do");
    }

    #[test]
    fn a_long_exchange_is_continued() {
        let mut w = World::new(false);
        let n = BATCH + 3;
        let total = 100 + 2 * n as usize;
        w.grow(total);
        for m in 100..100 + n {
            w.give(0, Mfn(m));
        }
        w.dom.max_pages = 9 + n;
        w.pool.0 = (100 + n..100 + 2 * n).map(Mfn).collect();
        let ins: vec::Vec<u64> = (100..100 + n).collect();
        // Lists of 515 entries: in the test buffer, clear of the argument.
        let (in_va, out_va) = (BUF_VA + 0x100, BUF_VA + 0x2000);
        let mut e = exchange(&[], 0, &[], 0, 0);
        e.in_ = reservation(in_va, n, 0, 0);
        e.out_ = reservation(out_va, n, 0, 0);
        w.poke(in_va, &words(&ins));
        w.poke(out_va, &words(&(0..n).collect::<vec::Vec<u64>>()));
        w.poke(BUF_VA, e.as_bytes());
        assert_eq!(w.call(NR, [EXCHANGE, BUF_VA, 0, 0, 0]), Outcome::Continue([EXCHANGE, BUF_VA, 0, 0, 0]));
        let saved = MemoryExchange::read_from_bytes(&w.peek(BUF_VA, 72)).unwrap();
        assert_eq!(saved.nr_exchanged, BATCH, "progress saved in the guest's argument");
        assert_eq!(w.call_ret(NR, [EXCHANGE, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(MemoryExchange::read_from_bytes(&w.peek(BUF_VA, 72)).unwrap().nr_exchanged, n);
        assert_eq!(w.dom.tot_pages(), 9 + n);
        let outs = w.peek(out_va, n as usize * 8);
        let mut mfns: vec::Vec<u64> = outs.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        for (k, &mfn) in mfns.iter().enumerate() {
            assert!(w.owns(0, mfn), "extent {k}");
            if mfn < M2P.entries {
                // (the test M2P covers the first 512 frames only)
                assert_eq!(M2P.get(&w.mem, Mfn(mfn)), Some(Pfn(k as u64)));
            }
        }
        mfns.sort_unstable();
        mfns.dedup();
        assert_eq!(mfns.len(), n as usize, "every extent its own frame");
    }

    #[test]
    fn address_limits_and_nodes() {
        assert_eq!(frame_limit(0), Mfn(u64::MAX));
        assert_eq!(frame_limit(32), Mfn(1 << 20), "4 GiB");
        assert_eq!(frame_limit(12), Mfn(1));
        assert_eq!(frame_limit(255), Mfn(u64::MAX));
        assert!(node_ok(0, false) && node_ok(2 << 8, false), "a hint is ignored");
        assert!(!node_ok((2 << 8) | XENMEMF_EXACT_NODE_REQUEST, false));
        assert!(node_ok((2 << 8) | XENMEMF_EXACT_NODE_REQUEST, true));
        assert!(!node_ok(65 << 8, true), "node 64 does not exist");
        assert!(range_ok(0x1000, 0, u64::MAX), "an empty range");
        assert!(!range_ok(0x7fff_ffff_f000, 0, 0x1000), "runs into non-canonical space");
    }
}
