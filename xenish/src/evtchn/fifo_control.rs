//! Setting the FIFO ABI up and taking it down: `EVTCHNOP_init_control`
//! (a vCPU's control block; the first one switches the domain from the
//! 2-level ABI), `EVTCHNOP_expand_array` (one more event-array page) and
//! the return to the 2-level ABI on `EVTCHNOP_reset` or teardown.
//!
//! Semantics and errnos: Xen 4.17 `evtchn_fifo_init_control`,
//! `evtchn_fifo_expand_array`, `map_guest_page` and `setup_ports`
//! (xen/common/event_fifo.c). A control block or array page must be a
//! frame of the domain's RAM that can take a writable type reference (not
//! one of its page tables or descriptor pages): the reference is held
//! while the page is in use, so the guest can neither give the page back
//! nor make it a page table meanwhile. Anything else is `-EINVAL`.

use alloc::boxed::Box;

use super::fifo::{self, Fifo, CONTROL_BLOCK_SIZE, MAX_ARRAY_PAGES, WORDS_PER_PAGE};
use super::{two_level, EvtchnError, NR_PORTS_2L};
use crate::domain::Domain;
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{Mfn, PAGE_SIZE};

/// Xen's `map_guest_page`: a reference and a writable type reference on
/// frame `gfn` of `d` (a PV domain's gfn is the mfn).
fn get_guest_page(d: &Domain, mmu: &mut Mmu, gfn: u64) -> Result<Mfn, EvtchnError> {
    let mfn = Mfn(gfn);
    mmu.get_page_and_type(mfn, &MapRights::of(d), PageType::Writable).map_err(|_| EvtchnError::Invalid)?;
    Ok(mfn)
}

/// `EVTCHNOP_init_control`: vCPU `vcpu`'s control block at byte `offset`
/// (8-aligned, the whole block inside the page) of frame `gfn`. The first
/// one switches the domain to the FIFO ABI, carrying over what was
/// pending on the 2-level ABI; a failed first one leaves the domain on
/// the 2-level ABI. A second control block for a vCPU is `-EINVAL`.
pub fn init_control(d: &mut Domain, mmu: &mut Mmu, gfn: u64, offset: u32, vcpu: u32) -> Result<(), EvtchnError> {
    if (vcpu as usize) >= d.vcpus.len() {
        return Err(EvtchnError::NoVcpu);
    }
    let offset = offset as usize;
    if offset > PAGE_SIZE - CONTROL_BLOCK_SIZE || !offset.is_multiple_of(8) {
        return Err(EvtchnError::Invalid);
    }
    if d.evtchn.fifo.as_ref().and_then(|f| f.vcpus.get(vcpu as usize)).is_some_and(|v| v.control_block.is_some()) {
        return Err(EvtchnError::Invalid);
    }
    let mfn = get_guest_page(d, mmu, gfn)?;
    let switching = d.evtchn.fifo.is_none();
    let mut fifo = d.evtchn.fifo.take().unwrap_or_else(|| Box::new(Fifo::new(d.vcpus.len())));
    match fifo.vcpus.get_mut(vcpu as usize) {
        Some(v) => v.control_block = Some((mfn, offset)),
        None => {
            // A vCPU the FIFO state was not made for: refuse, as for any
            // vCPU that does not exist.
            mmu.put_page_and_type(mfn);
            d.evtchn.fifo = (!switching).then_some(fifo);
            return Err(EvtchnError::NoVcpu);
        }
    }
    d.evtchn.fifo = Some(fifo);
    if switching {
        setup_ports(d, mmu);
    }
    Ok(())
}

/// Xen's `setup_ports`: every port that exists keeps what was pending on
/// the 2-level ABI (raised once its event word has a page) and gets the
/// default priority.
fn setup_ports(d: &mut Domain, mmu: &mut Mmu) {
    let shared_info = d.shared_info;
    let nr = d.evtchn.ports.len().min(NR_PORTS_2L as usize);
    for port in 1..nr {
        let pending = two_level::is_pending(mmu.mem, shared_info, port as u32);
        if let Some(p) = d.evtchn.ports.get_mut(port) {
            p.deferred |= pending;
            p.priority = fifo::PRIORITY_DEFAULT;
        }
    }
}

/// `EVTCHNOP_expand_array`: frame `gfn` becomes the next event-array page
/// (`-EOPNOTSUPP` before `init_control`, `-ENOSPC` once the array covers
/// every FIFO port). Events raised on its ports before are raised now.
pub fn expand_array(d: &mut Domain, mmu: &mut Mmu, gfn: u64) -> Result<(), EvtchnError> {
    let slot = d.evtchn.fifo.as_ref().ok_or(EvtchnError::NotSupported)?.array.len();
    if slot >= MAX_ARRAY_PAGES {
        return Err(EvtchnError::NoSpace);
    }
    let mfn = get_guest_page(d, mmu, gfn)?;
    let Some(fifo) = d.evtchn.fifo.as_mut() else {
        mmu.put_page_and_type(mfn);
        return Err(EvtchnError::NotSupported);
    };
    if fifo.array.try_reserve(1).is_err() {
        mmu.put_page_and_type(mfn);
        return Err(EvtchnError::NoMemory);
    }
    fifo.array.push(mfn);
    let first = slot as u32 * WORDS_PER_PAGE;
    for port in first..first + WORDS_PER_PAGE {
        let Some(p) = d.evtchn.port(port).copied() else { break };
        if p.deferred {
            if let Some(p) = d.evtchn.ports.get_mut(port as usize) {
                p.deferred = false;
            }
            super::port_ops::raise_on(d, mmu.mem, port, p.notify_vcpu);
        }
    }
    Ok(())
}

/// Takes the domain back to the 2-level ABI (`evtchn_fifo_destroy`):
/// the control blocks and event-array pages are released.
pub fn destroy(d: &mut Domain, mmu: &mut Mmu) {
    if let Some(fifo) = d.evtchn.fifo.take() {
        for mfn in fifo.frames() {
            mmu.put_page_and_type(mfn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evtchn::{port_set_pending, Binding};
    use crate::hypercall::tests::World;
    use crate::mm::frame_table::PageType;

    // The test world: frames 0..4 are the caller's page tables, 4..8 its
    // buffers (writable data), 8 its shared_info, 10.. not its own.

    fn init(w: &mut World, gfn: u64, offset: u32, vcpu: u32) -> Result<(), EvtchnError> {
        let mut m = Mmu { ft: &mut w.ft, mem: &mut w.mem };
        init_control(&mut w.dom, &mut m, gfn, offset, vcpu)
    }

    fn expand(w: &mut World, gfn: u64) -> Result<(), EvtchnError> {
        let mut m = Mmu { ft: &mut w.ft, mem: &mut w.mem };
        expand_array(&mut w.dom, &mut m, gfn)
    }

    #[test]
    fn hostile_control_blocks_are_refused_and_leave_the_2_level_abi() {
        let mut w = World::new(false);
        let counts = w.counts();
        let cases: [(u64, u32, u32, EvtchnError, &str); 9] = [
            (4, 0, 1, EvtchnError::NoVcpu, "no such vCPU"),
            (4, 4, 0, EvtchnError::Invalid, "offset not 8-aligned"),
            (4, 4096 - 64, 0, EvtchnError::Invalid, "block crosses the page's end"),
            (4, u32::MAX, 0, EvtchnError::Invalid, "offset far beyond"),
            (0, 0, 0, EvtchnError::Invalid, "its own L4 page table"),
            (2, 0, 0, EvtchnError::Invalid, "one of its L2 tables"),
            (8, 0, 0, EvtchnError::Invalid, "shared_info (not its RAM)"),
            (12, 0, 0, EvtchnError::Invalid, "another domain's frame"),
            (u64::MAX, 0, 0, EvtchnError::Invalid, "no such frame"),
        ];
        for (gfn, offset, vcpu, want, what) in cases {
            assert_eq!(init(&mut w, gfn, offset, vcpu), Err(want), "{what}");
            assert!(w.dom.evtchn.fifo().is_none(), "{what}: still 2-level");
        }
        assert_eq!(w.counts(), counts, "no reference left behind");
        assert_eq!(expand(&mut w, 5), Err(EvtchnError::NotSupported), "expand before init_control");
    }

    #[test]
    fn the_switch_holds_its_pages_and_carries_pending_events_over() {
        let mut w = World::new(false);
        let a = w.dom.evtchn.allocate(&mut w.mem, Binding::Ipi, 0).unwrap();
        let b = w.dom.evtchn.allocate(&mut w.mem, Binding::Ipi, 0).unwrap();
        assert!(port_set_pending(&mut w.dom, &mut w.mem, b));
        assert_eq!(init(&mut w, 4, 4096 - 72, 0), Ok(()));
        assert_eq!(w.ft.page_type(Mfn(4)), PageType::Writable);
        assert_eq!(init(&mut w, 5, 0, 0), Err(EvtchnError::Invalid), "a second block for vCPU 0");
        assert_eq!(w.dom.evtchn.limit(), crate::evtchn::NR_PORTS_FIFO);
        let p = w.dom.evtchn.port(b).copied().unwrap();
        assert!(p.deferred && !w.dom.evtchn.port(a).unwrap().deferred, "b was pending on 2-level");
        assert!(!port_set_pending(&mut w.dom, &mut w.mem, a), "no event array yet: deferred");
        assert_eq!(expand(&mut w, 5), Ok(()));
        assert_eq!(expand(&mut w, 6), Ok(()));
        let fifo = w.dom.evtchn.fifo().unwrap();
        assert_eq!((fifo.array.as_slice(), fifo.nr_ports()), (&[Mfn(5), Mfn(6)][..], 2048));
        let word = |w: &World, port: u32| u32::from_le_bytes(w.mem.0[5][port as usize * 4..][..4].try_into().unwrap());
        assert_eq!(word(&w, a) & !fifo::LINK_MASK, fifo::PENDING | fifo::LINKED, "raised when the page came");
        assert_eq!(word(&w, b) & fifo::LINK_MASK, 0);
        assert_eq!(word(&w, a) & fifo::LINK_MASK, b, "b queued behind a");
        assert!(!w.dom.evtchn.port(a).unwrap().deferred);
        assert_eq!(w.mem.0[4][4096 - 72..4096 - 72 + 4], [1 << 7, 0, 0, 0], "queue 7 ready");
        // A page table cannot become an array page; an array page cannot
        // become a page table while it is one.
        assert_eq!(expand(&mut w, 1), Err(EvtchnError::Invalid));
        let rights = MapRights::of(&w.dom);
        assert!(Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(Mfn(5), 1, &rights).is_err());
        w.audit();
        let mut m = Mmu { ft: &mut w.ft, mem: &mut w.mem };
        destroy(&mut w.dom, &mut m);
        assert!(w.dom.evtchn.fifo().is_none());
        assert_eq!(w.dom.evtchn.limit(), NR_PORTS_2L);
        w.audit();
    }

    #[test]
    fn the_array_stops_at_the_fifo_abis_limit() {
        let mut w = World::new(false);
        assert_eq!(init(&mut w, 4, 0, 0), Ok(()));
        for _ in 0..MAX_ARRAY_PAGES {
            assert_eq!(expand(&mut w, 5), Ok(()), "the same page again only hurts the guest");
        }
        assert_eq!(expand(&mut w, 5), Err(EvtchnError::NoSpace));
        assert_eq!(w.dom.evtchn.fifo().map(Fifo::nr_ports), Some(crate::evtchn::NR_PORTS_FIFO));
        w.audit();
    }
}
