//! The FIFO event-channel ABI: one 32-bit event word per port in pages the
//! guest gives (the event array), and per vCPU a control block with 16
//! priority queues the hypervisor links raised events onto.
//!
//! Semantics: Xen 4.17 `xen/common/event_fifo.c`, guest side Linux's
//! `drivers/xen/events/events_fifo.c`. An event word holds PENDING (31),
//! MASKED (30), LINKED (29), BUSY (28) and a 17-bit LINK to the next port
//! of its queue. Raising a port sets PENDING; if the port is not masked
//! and not yet linked, the hypervisor sets LINKED, links it after the
//! queue's tail (a compare-and-exchange of the tail's LINK that only
//! succeeds while the tail is still LINKED; BUSY keeps the guest from
//! unmasking the tail meanwhile) or, if the queue was empty, writes it to
//! the queue's HEAD in the control block, then sets the queue's bit in
//! the control block's READY word and the vCPU's upcall flag. The guest
//! consumes a queue from HEAD, clearing LINKED as it goes.
//!
//! The queue tails are the hypervisor's; everything else is the guest's
//! memory, reached only through atomic operations on words inside the
//! pages whose references [`super::fifo_control`] holds. A guest that
//! writes nonsense into its words loses its own events, nothing more: the
//! hypervisor never follows a guest-written link.

use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::SeqCst;

use super::two_level::mark_events_pending;
use guest_abi::event_channel as abi;

use super::Port;
use crate::mm::shared_word::u32_at;
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};

/// `EVTCHN_FIFO_PRIORITY_DEFAULT`
pub const PRIORITY_DEFAULT: u8 = abi::EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
/// `EVTCHN_FIFO_PRIORITY_MIN`: the lowest priority (the highest number).
pub const PRIORITY_MIN: u8 = abi::EVTCHN_FIFO_PRIORITY_MIN as u8;
/// `EVTCHN_FIFO_MAX_QUEUES`
pub const MAX_QUEUES: usize = abi::EVTCHN_FIFO_MAX_QUEUES as usize;
/// `EVTCHN_FIFO_LINK_BITS`
pub const LINK_BITS: u8 = abi::EVTCHN_FIFO_LINK_BITS as u8;
/// Event words per event-array page.
pub const WORDS_PER_PAGE: u32 = (PAGE_SIZE / 4) as u32;
/// Most event-array pages: enough for `EVTCHN_FIFO_NR_CHANNELS` ports.
pub const MAX_ARRAY_PAGES: usize = (super::NR_PORTS_FIFO / WORDS_PER_PAGE) as usize;
/// Bytes of `struct evtchn_fifo_control_block`.
pub const CONTROL_BLOCK_SIZE: usize = core::mem::size_of::<abi::EvtchnFifoControlBlock>();

/// `EVTCHN_FIFO_PENDING`, as a bit mask of an event word.
pub const PENDING: u32 = 1 << abi::EVTCHN_FIFO_PENDING;
/// `EVTCHN_FIFO_MASKED`
pub const MASKED: u32 = 1 << abi::EVTCHN_FIFO_MASKED;
/// `EVTCHN_FIFO_LINKED`
pub const LINKED: u32 = 1 << abi::EVTCHN_FIFO_LINKED;
/// `EVTCHN_FIFO_BUSY`
pub const BUSY: u32 = 1 << abi::EVTCHN_FIFO_BUSY;
/// `EVTCHN_FIFO_LINK_MASK`
pub const LINK_MASK: u32 = abi::EVTCHN_FIFO_LINK_MASK;

/// Offset of `ready` in the control block.
const READY: usize = 0;
/// Offset of `head[0]` in the control block.
const HEAD: usize = 8;

/// A queue: a vCPU and a priority (Xen's `evtchn_fifo_lastq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueId {
    /// The vCPU whose control block holds the queue.
    pub vcpu: u32,
    /// Its priority.
    pub priority: u8,
}

/// One vCPU's FIFO state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FifoVcpu {
    /// Its control block: the frame (holding a writable type reference)
    /// and the byte offset; `None` until its `init_control`.
    pub control_block: Option<(Mfn, usize)>,
    /// The last port linked on each queue (0: the queue may be empty).
    pub tails: [u32; MAX_QUEUES],
}

/// A domain's FIFO state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fifo {
    /// The event-array pages, in port order (each holding a writable type
    /// reference).
    pub array: Vec<Mfn>,
    /// Per vCPU.
    pub vcpus: Vec<FifoVcpu>,
}

impl Fifo {
    /// The state of a domain with `nr_vcpus` vCPUs that just switched: no
    /// control block, no event-array page.
    pub fn new(nr_vcpus: usize) -> Self {
        Fifo { array: Vec::new(), vcpus: alloc::vec![FifoVcpu::default(); nr_vcpus] }
    }

    /// Ports the event array covers.
    #[cfg(test)]
    pub fn nr_ports(&self) -> u32 {
        self.array.len() as u32 * WORDS_PER_PAGE
    }

    /// Where `port`'s event word is: `None` beyond the event array.
    fn word_at(&self, port: u32) -> Option<(Mfn, usize)> {
        let page = self.array.get((port / WORDS_PER_PAGE) as usize)?;
        Some((*page, (port % WORDS_PER_PAGE) as usize * 4))
    }

    fn word<'m>(&self, mem: &'m mut dyn MachineMemory, port: u32) -> Option<&'m AtomicU32> {
        let (page, off) = self.word_at(port)?;
        u32_at(mem, page, off)
    }

    /// Every frame the state holds a reference to: control blocks, then
    /// event-array pages.
    pub fn frames(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.vcpus.iter().filter_map(|v| v.control_block.map(|(m, _)| m)).chain(self.array.iter().copied())
    }

    fn tail_mut(&mut self, q: QueueId) -> Option<&mut u32> {
        self.vcpus.get_mut(q.vcpu as usize)?.tails.get_mut(usize::from(q.priority))
    }

    /// Whether `port` is pending (`evtchn_fifo_is_pending`).
    pub fn is_pending(&self, mem: &mut dyn MachineMemory, port: u32) -> bool {
        self.word(mem, port).is_some_and(|w| w.load(SeqCst) & PENDING != 0)
    }

    /// Whether `port` is masked; a port without an event word is
    /// (`evtchn_fifo_is_masked`).
    #[cfg(test)]
    pub fn is_masked(&self, mem: &mut dyn MachineMemory, port: u32) -> bool {
        self.word(mem, port).is_none_or(|w| w.load(SeqCst) & MASKED != 0)
    }

    /// Whether a closed `port` is still linked on a queue, so that it may
    /// not be reused yet (`evtchn_fifo_is_busy`).
    pub fn is_busy(&self, mem: &mut dyn MachineMemory, port: u32) -> bool {
        self.word(mem, port).is_some_and(|w| w.load(SeqCst) & LINKED != 0)
    }

    /// Clears PENDING, leaving the word linked: the guest unlinks it and
    /// skips it (`evtchn_fifo_clear_pending`).
    pub fn clear_pending(&self, mem: &mut dyn MachineMemory, port: u32) {
        if let Some(w) = self.word(mem, port) {
            w.fetch_and(!PENDING, SeqCst);
        }
    }
}

/// Tries to set the LINK of the word `w` (last read as `*seen`) to `link`,
/// only while it is LINKED (`try_set_link`): `Some(true)` if linked,
/// `Some(false)` if it is no longer linked (the guest consumed the queue's
/// tail, so the queue is empty), `None` if the word changed meanwhile
/// (`*seen` then holds its new value).
fn try_set_link(w: &AtomicU32, seen: &mut u32, link: u32) -> Option<bool> {
    if *seen & LINKED == 0 {
        return Some(false);
    }
    let new = (*seen & !(BUSY | LINK_MASK)) | link;
    match w.compare_exchange(*seen, new, SeqCst, SeqCst) {
        Ok(_) => Some(true),
        Err(now) => {
            *seen = now;
            None
        }
    }
}

/// Links `link` after the tail word `w` (`evtchn_fifo_set_link`). The
/// guest may only set or clear MASKED, clear PENDING or unlink a linked
/// word; marking the word BUSY stops its unmasking, so the exchange is
/// retried at most four times. Returns whether the link was made.
fn set_link(w: &AtomicU32, link: u32) -> bool {
    let mut seen = w.load(SeqCst);
    if let Some(linked) = try_set_link(w, &mut seen, link) {
        return linked;
    }
    w.fetch_or(BUSY, SeqCst);
    seen = w.load(SeqCst);
    for _ in 0..4 {
        if let Some(linked) = try_set_link(w, &mut seen, link) {
            if !linked {
                w.fetch_and(!BUSY, SeqCst);
            }
            return linked;
        }
    }
    // The guest keeps changing the word: give up, as Xen does, and let
    // it lose the event it is racing.
    w.fetch_and(!BUSY, SeqCst);
    true
}

/// Raises `port` on `vcpu`, whose vcpu_info is at `info`
/// (`evtchn_fifo_set_pending`). A port beyond the event array is marked
/// [`Port::deferred`] and raised once its page is added; without a control
/// block the event stays pending and unlinked. Returns whether the vCPU's
/// upcall became pending.
pub fn set_pending(
    fifo: &mut Fifo,
    ports: &mut [Port],
    mem: &mut dyn MachineMemory,
    port: u32,
    vcpu: u32,
    info: (Mfn, usize),
) -> bool {
    let Some(p) = ports.get_mut(port as usize) else { return false };
    let Some(w) = fifo.word(mem, port) else {
        p.deferred = true;
        return false;
    };
    w.fetch_or(PENDING, SeqCst);
    let Some(control_block) = fifo.vcpus.get(vcpu as usize).and_then(|v| v.control_block) else {
        // The guest must not unmask before its control block exists.
        return false;
    };
    let q = QueueId { vcpu, priority: p.priority };
    let mut linked = true;
    let masked = w.load(SeqCst) & MASKED != 0;
    if !masked && w.fetch_or(LINKED, SeqCst) & LINKED == 0 {
        // If the port was the tail of the queue it was last on, that queue
        // is empty now: forget the tail so nothing is linked after it.
        let old_q = p.last_queue;
        if let Some(tail) = fifo.tail_mut(old_q).filter(|t| **t == port) {
            *tail = 0;
        }
        p.last_queue = q;
        let tail = fifo.tail_mut(q).map_or(0, |t| *t);
        linked = tail != 0 && fifo.word(mem, tail).is_some_and(|tw| set_link(tw, port));
        if !linked {
            let (cb, off) = control_block;
            if let Some(head) = u32_at(mem, cb, off + HEAD + 4 * usize::from(q.priority)) {
                head.store(port, SeqCst);
            }
        }
        if let Some(t) = fifo.tail_mut(q) {
            *t = port;
        }
    }
    if linked {
        return false;
    }
    let bit = 1u32 << q.priority;
    let (cb, off) = control_block;
    let newly_ready = u32_at(mem, cb, off + READY).is_some_and(|r| r.fetch_or(bit, SeqCst) & bit == 0);
    newly_ready && mark_events_pending(mem, info)
}

/// `EVTCHNOP_unmask` on the FIFO ABI (`evtchn_fifo_unmask`): clears
/// MASKED and, if the port is pending, raises it again so it is linked.
pub fn unmask(
    fifo: &mut Fifo,
    ports: &mut [Port],
    mem: &mut dyn MachineMemory,
    port: u32,
    vcpu: u32,
    info: (Mfn, usize),
) -> bool {
    let Some(w) = fifo.word(mem, port) else { return false };
    w.fetch_and(!MASKED, SeqCst);
    fifo.is_pending(mem, port) && set_pending(fifo, ports, mem, port, vcpu, info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::evtchn::{Binding, Port};
    use crate::guest_access::tests::FakeMemory;
    extern crate std;
    use std::vec::Vec;

    /// Frame 0: vcpu_info (upcall byte at 0); 1: control block at 64;
    /// 2 and 3: event-array pages.
    pub(crate) fn setup(pages: usize) -> (Fifo, Vec<Port>, FakeMemory) {
        let mut fifo = Fifo::new(2);
        fifo.vcpus[0].control_block = Some((Mfn(1), 64));
        fifo.array = (0..pages as u64).map(|i| Mfn(2 + i)).collect();
        let mut ports = std::vec![Port::new(Binding::Ipi, 0); 2 * WORDS_PER_PAGE as usize];
        ports[0].binding = Binding::Reserved;
        (fifo, ports, FakeMemory(std::vec![[0u8; PAGE_SIZE]; 4]))
    }

    pub(crate) fn word(mem: &FakeMemory, port: u32) -> u32 {
        let page = &mem.0[2 + (port / WORDS_PER_PAGE) as usize];
        let at = (port % WORDS_PER_PAGE) as usize * 4;
        u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
    }

    fn set_word(mem: &mut FakeMemory, port: u32, v: u32) {
        let at = (port % WORDS_PER_PAGE) as usize * 4;
        mem.0[2 + (port / WORDS_PER_PAGE) as usize][at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn cb(mem: &FakeMemory, off: usize) -> u32 {
        let page = &mem.0[1];
        u32::from_le_bytes([page[64 + off], page[65 + off], page[66 + off], page[67 + off]])
    }

    fn head(mem: &FakeMemory, priority: usize) -> u32 {
        cb(mem, HEAD + 4 * priority)
    }

    const INFO: (Mfn, usize) = (Mfn(0), 0);

    /// Consumes queue `priority` as Linux does: from HEAD (or the link
    /// left by the last one), clearing LINKED and LINK; returns the ports.
    pub(crate) fn consume(mem: &mut FakeMemory, priority: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut port = head(mem, priority);
        while port != 0 {
            let w = word(mem, port);
            set_word(mem, port, w & !(LINKED | LINK_MASK));
            out.push(port);
            port = w & LINK_MASK;
        }
        out
    }

    #[test]
    fn events_queue_in_order_and_the_first_raises_the_upcall() {
        let (mut fifo, mut ports, mut mem) = setup(1);
        assert!(set_pending(&mut fifo, &mut ports, &mut mem, 5, 0, INFO));
        assert_eq!(word(&mem, 5), PENDING | LINKED);
        assert_eq!((head(&mem, 7), cb(&mem, READY)), (5, 1 << 7), "default priority 7");
        assert_eq!(mem.0[0][0], 1, "upcall pending");
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, 9, 0, INFO), "queued behind 5");
        assert_eq!(word(&mem, 5) & LINK_MASK, 9);
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, 5, 0, INFO), "already linked");
        assert_eq!(consume(&mut mem, 7), [5, 9]);
        assert_eq!(fifo.vcpus[0].tails[7], 9, "the tail is only forgotten when relinked");
        // The queue is empty (9 unlinked): the next event is its new head.
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, 11, 0, INFO), "ready already set");
        assert_eq!((head(&mem, 7), word(&mem, 9) & LINK_MASK), (11, 0));
    }

    #[test]
    fn priorities_pick_the_queue_and_moving_queues_resets_the_old_tail() {
        let (mut fifo, mut ports, mut mem) = setup(1);
        ports[3].priority = 0;
        set_pending(&mut fifo, &mut ports, &mut mem, 3, 0, INFO);
        set_pending(&mut fifo, &mut ports, &mut mem, 4, 0, INFO);
        assert_eq!((head(&mem, 0), head(&mem, 7), cb(&mem, READY)), (3, 4, 1 | 1 << 7));
        assert_eq!(consume(&mut mem, 0), [3]);
        ports[3].priority = 15;
        set_pending(&mut fifo, &mut ports, &mut mem, 3, 0, INFO);
        assert_eq!((head(&mem, 15), fifo.vcpus[0].tails[0]), (3, 0), "the old queue's tail is forgotten");
        assert_eq!(ports[3].last_queue, QueueId { vcpu: 0, priority: 15 });
    }

    #[test]
    fn masked_ports_stay_pending_until_unmasked() {
        let (mut fifo, mut ports, mut mem) = setup(1);
        set_word(&mut mem, 6, MASKED);
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, 6, 0, INFO));
        assert_eq!((word(&mem, 6), cb(&mem, READY)), (MASKED | PENDING, 0));
        assert!(fifo.is_pending(&mut mem, 6) && fifo.is_masked(&mut mem, 6));
        assert!(unmask(&mut fifo, &mut ports, &mut mem, 6, 0, INFO));
        assert_eq!((word(&mem, 6), head(&mem, 7)), (PENDING | LINKED, 6));
        fifo.clear_pending(&mut mem, 6);
        assert_eq!(word(&mem, 6), LINKED, "clearing leaves the link to the guest");
        assert!(fifo.is_busy(&mut mem, 6));
        set_word(&mut mem, 7, MASKED);
        assert!(!unmask(&mut fifo, &mut ports, &mut mem, 7, 0, INFO), "not pending: just unmasked");
        assert_eq!(word(&mem, 7), 0);
    }

    #[test]
    fn ports_beyond_the_array_are_deferred_and_vcpus_without_a_block_get_no_link() {
        let (mut fifo, mut ports, mut mem) = setup(1);
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, WORDS_PER_PAGE + 1, 0, INFO));
        assert!(ports[WORDS_PER_PAGE as usize + 1].deferred);
        assert!(fifo.is_masked(&mut mem, WORDS_PER_PAGE + 1), "no word: masked");
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, 8, 1, INFO), "vCPU 1 has no control block");
        assert_eq!((word(&mem, 8), cb(&mem, READY)), (PENDING, 0));
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, 8, 7, INFO), "no such vCPU");
        assert!(!set_pending(&mut fifo, &mut ports, &mut mem, u32::MAX, 0, INFO), "no such port");
    }

    #[test]
    fn the_link_is_only_set_while_the_tail_is_linked() {
        let w = AtomicU32::new(LINKED | PENDING | 12);
        assert!(set_link(&w, 40));
        assert_eq!(w.load(SeqCst), LINKED | PENDING | 40);
        let unlinked = AtomicU32::new(PENDING | BUSY);
        assert!(!set_link(&unlinked, 40), "the guest consumed it: the queue is empty");
        assert_eq!(unlinked.load(SeqCst), PENDING | BUSY, "nothing written");
        let mut seen = LINKED;
        let changed = AtomicU32::new(LINKED | MASKED);
        assert_eq!(try_set_link(&changed, &mut seen, 3), None);
        assert_eq!(seen, LINKED | MASKED, "the new value is handed back for the retry");
    }

    #[test]
    fn a_guest_that_corrupts_its_words_only_loses_its_own_events() {
        let (mut fifo, mut ports, mut mem) = setup(2);
        for port in 1..2 * WORDS_PER_PAGE {
            let garbage = port.wrapping_mul(0x9e37_79b9);
            set_word(&mut mem, port, garbage);
        }
        mem.0[1][64..64 + CONTROL_BLOCK_SIZE].fill(0xff);
        for port in 1..2 * WORDS_PER_PAGE {
            set_pending(&mut fifo, &mut ports, &mut mem, port, 0, INFO);
            unmask(&mut fifo, &mut ports, &mut mem, port, 0, INFO);
        }
        assert!(fifo.vcpus[0].tails.iter().all(|&t| t < 2 * WORDS_PER_PAGE), "tails are always real ports");
    }
}
