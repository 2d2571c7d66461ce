//! The FIFO event-channel ABI, as a guest sees it: refused and accepted
//! control blocks, the switch from the 2-level ABI with a pending event
//! carried over, thousands of ports over several event-array pages,
//! priorities, masking, polling, a VIRQ, a closed port that is still
//! linked, a guest that corrupts its own words, the array's limit, and
//! `EVTCHNOP_reset` back to the 2-level ABI. The upcall consumes the
//! queues as Linux does (`drivers/xen/events/events_fifo.c`). Every result
//! is printed as a `fifo: ` line, so that the run on xenish and the run on
//! Xen 4.17 can be compared line by line.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::fmt::Debug;
    use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

    use guest_abi::event_channel::{
        EVTCHN_FIFO_BUSY, EVTCHN_FIFO_LINKED, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MASKED, EVTCHN_FIFO_PENDING,
    };
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF, VIRQ_TIMER};
    use guest_abi::XenError;
    use guest_rt::{events, println};

    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
    const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
    const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
    const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;
    const LINK: u32 = EVTCHN_FIFO_LINK_MASK;
    /// Event-array pages this guest gives; ports it binds.
    const PAGES: usize = 3;
    const MANY: usize = 2500;

    #[repr(C, align(4096))]
    struct Page([u32; 1024]);
    static mut CONTROL: Page = Page([0; 1024]);
    static mut ARRAY: [Page; PAGES] = [const { Page([0; 1024]) }; PAGES];
    static mut SPARE: Page = Page([0; 1024]);

    /// Ports in the order the upcall found them.
    static LOG: [AtomicU32; 4096] = [const { AtomicU32::new(0) }; 4096];
    static LOGGED: AtomicU32 = AtomicU32::new(0);
    /// Where each queue goes on (Linux's per-CPU `q->head`).
    static HEADS: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];

    fn va<T>(p: *const T) -> u64 {
        p as u64
    }

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    /// Word `i` (4 bytes each) of `page`, shared with the hypervisor.
    fn shared(page: *const Page, i: usize) -> &'static AtomicU32 {
        // SAFETY: `i` < 1024 for every caller; the pages are statics of
        // this kernel, and the hypervisor updates them atomically too.
        unsafe { &*(core::ptr::addr_of!((*page).0).cast::<AtomicU32>().add(i)) }
    }

    /// Event-array page `i` (< PAGES).
    fn array_page(i: usize) -> *const Page {
        core::ptr::addr_of!(ARRAY).cast::<Page>().wrapping_add(i.min(PAGES - 1))
    }

    /// The event word of `port`, if the event array covers it.
    fn word(port: u32) -> Option<&'static AtomicU32> {
        let page = (port / 1024) as usize;
        (page < PAGES).then(|| shared(array_page(page), (port % 1024) as usize))
    }

    fn ready() -> &'static AtomicU32 {
        shared(core::ptr::addr_of!(CONTROL), 0)
    }

    fn head(q: usize) -> &'static AtomicU32 {
        shared(core::ptr::addr_of!(CONTROL), 2 + q)
    }

    /// Unlinks `port` (clears LINKED and LINK); returns the link.
    fn clear_linked(port: u32) -> u32 {
        let Some(w) = word(port) else { return 0 };
        let mut old = w.load(SeqCst);
        while let Err(now) = w.compare_exchange(old, old & !(LINKED | LINK), SeqCst, SeqCst) {
            old = now;
        }
        old & LINK
    }

    /// One event off queue `q`, as Linux's `consume_one_event`.
    fn consume_one(q: usize, ready: &mut u32) {
        let mut port = HEADS[q].load(SeqCst);
        if port == 0 {
            port = head(q).load(SeqCst);
        }
        let next = clear_linked(port);
        if next == 0 {
            *ready &= !(1 << q);
        }
        if let Some(w) = word(port) {
            let v = w.load(SeqCst);
            if v & PENDING != 0 && v & MASKED == 0 {
                w.fetch_and(!PENDING, SeqCst);
                let n = LOGGED.fetch_add(1, SeqCst) as usize;
                if let Some(slot) = LOG.get(n) {
                    slot.store(port, SeqCst);
                }
                events::fire(port);
            }
        }
        HEADS[q].store(next, SeqCst);
    }

    /// The upcall on the FIFO ABI: highest priority (lowest queue) first.
    fn handler() {
        let mut ready = ready().swap(0, SeqCst);
        while ready != 0 {
            consume_one(ready.trailing_zeros() as usize, &mut ready);
            ready |= self::ready().swap(0, SeqCst);
        }
    }

    fn logged() -> impl Iterator<Item = u32> {
        (0..LOGGED.load(SeqCst) as usize).filter_map(|i| LOG.get(i).map(|p| p.load(SeqCst)))
    }

    fn clear_log() {
        LOGGED.store(0, SeqCst);
    }

    fn fail(what: &str) -> ! {
        println!("fifo: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn report<T: Debug>(what: &str, r: Result<T, XenError>) {
        println!("fifo: {what}: {r:?}");
    }

    fn init(gfn: u64, offset: u32, vcpu: u32) -> Result<u8, XenError> {
        // SAFETY: the control block pages are this test's, used for nothing else.
        unsafe { hypercall::evtchn_init_control(gfn, offset, vcpu) }
    }

    fn expand(gfn: u64) -> Result<(), XenError> {
        // SAFETY: the array pages are this test's, used for nothing else.
        unsafe { hypercall::evtchn_expand_array(gfn) }
    }

    fn ipi() -> u32 {
        hypercall::evtchn_bind_ipi(0).unwrap_or_else(|_| fail("bind_ipi"))
    }

    fn send(port: u32) {
        if hypercall::evtchn_send(port).is_err() {
            fail("send");
        }
    }

    /// Sends `ports` with event delivery masked, then unmasks it: one
    /// upcall finds them all queued.
    fn send_batch(ports: impl Iterator<Item = u32>) {
        events::mask_events();
        for p in ports {
            send(p);
        }
        events::unmask_events();
    }

    fn two_level_phase(si: &StartInfo, own_l4: u64) -> u32 {
        let a = ipi();
        report("2-level: set_priority", hypercall::evtchn_set_priority(a, 0));
        let spare = mfn_of(si, va(core::ptr::addr_of!(SPARE)));
        report("2-level: expand_array before init_control", expand(spare));
        // A 2-level event still pending at the switch (events masked).
        send(a);
        println!("fifo: port {a} pending on the 2-level ABI: {}", events::is_pending(a));
        let cb = mfn_of(si, va(core::ptr::addr_of!(CONTROL)));
        report("init_control on vCPU 1", init(cb, 0, 1));
        report("init_control at a misaligned offset", init(cb, 4, 0));
        report("init_control crossing the page's end", init(cb, 4096 - 64, 0));
        report("init_control on its own L4 page table", init(own_l4, 0, 0));
        report("init_control on a frame beyond memory", init(1 << 40, 0, 0));
        report("still 2-level after those: set_priority", hypercall::evtchn_set_priority(a, 0));
        a
    }

    fn switch(si: &StartInfo, own_l4: u64, carried: u32) {
        let cb = mfn_of(si, va(core::ptr::addr_of!(CONTROL)));
        report("init_control: link_bits", init(cb, 0, 0));
        events::set_handler(handler);
        report("init_control again for vCPU 0", init(cb, 8, 0));
        report("expand_array with a page table", expand(own_l4));
        let first = mfn_of(si, va(array_page(0)));
        report("expand_array, page 0", expand(first));
        events::unmask_events();
        let got = events::take(carried);
        println!("fifo: the 2-level event on port {carried} arrived after the switch: {got}");
        clear_log();
    }

    fn many_ports(si: &StartInfo, carried: u32) -> [u32; MANY] {
        let mut ports = [0u32; MANY];
        for p in ports.iter_mut() {
            *p = ipi();
        }
        for page in 1..PAGES {
            report("expand_array, next page", expand(mfn_of(si, va(array_page(page)))));
        }
        let (first, last) = (ports[0], ports[MANY - 1]);
        println!("fifo: {MANY} ports bound, {first}..={last}, after port {carried}");
        send_batch(ports.iter().copied());
        let in_order = logged().eq(ports.iter().copied());
        let all = ports.iter().all(|&p| events::take(p));
        println!("fifo: {MANY} events over {PAGES} pages: each delivered once, in order sent: {}", in_order && all);
        clear_log();
        ports
    }

    fn priorities(ports: &[u32; MANY]) {
        let prios = [7u32, 3, 3, 0, 15, 7, 0, 3];
        for (p, prio) in ports.iter().zip(prios) {
            report("set_priority", hypercall::evtchn_set_priority(*p, prio));
        }
        send_batch(ports.iter().take(prios.len()).copied());
        let mut order = [0usize; 8];
        for (slot, port) in order.iter_mut().zip(logged()) {
            *slot = ports.iter().position(|&p| p == port).unwrap_or(99);
        }
        println!("fifo: priorities {prios:?} sent in order, delivered as {order:?}");
        clear_log();
        for p in ports.iter().take(prios.len()) {
            events::take(*p);
        }
        report("set_priority 16", hypercall::evtchn_set_priority(ports[0], 16));
        report("set_priority of port 0", hypercall::evtchn_set_priority(0, 3));
        report("set_priority of a port never bound", hypercall::evtchn_set_priority(100_000, 3));
    }

    fn masking(m: u32) {
        let w = word(m).unwrap_or_else(|| fail("no word"));
        w.fetch_or(MASKED, SeqCst);
        send(m);
        let v = w.load(SeqCst);
        println!(
            "fifo: a masked port: pending {}, linked {}, delivered {}",
            v & PENDING != 0,
            v & LINKED != 0,
            events::take(m)
        );
        events::mask_events();
        report("poll of the masked, pending port", hypercall::sched_poll(&[m], 0));
        events::unmask_events();
        report("unmask", hypercall::evtchn_unmask(m));
        println!("fifo: delivered by the unmask: {}", events::take(m));
        events::mask_events();
        let deadline = events::system_time_ns() + 2_000_000;
        report("poll of a quiet port until a deadline", hypercall::sched_poll(&[m], deadline));
        println!("fifo: the poll waited for its deadline: {}", events::system_time_ns() >= deadline);
        events::unmask_events();
    }

    fn timer() {
        let t = hypercall::evtchn_bind_virq(VIRQ_TIMER, 0).unwrap_or_else(|_| fail("bind VIRQ_TIMER"));
        let _ = hypercall::set_timer_op(events::system_time_ns() + 5_000_000);
        events::wait_for(t);
        println!("fifo: VIRQ_TIMER arrived through its queue: {}", logged().any(|p| p == t));
        clear_log();
        let _ = hypercall::evtchn_close(t);
    }

    fn closed_but_linked() {
        let x = ipi();
        events::mask_events();
        send(x);
        let _ = hypercall::evtchn_close(x);
        let linked = word(x).is_some_and(|w| w.load(SeqCst) == LINKED);
        let y = ipi();
        println!("fifo: a closed port still linked (word {linked}) is not reused: {}", y != x);
        events::unmask_events();
        let _ = hypercall::evtchn_close(y);
        let z = ipi();
        println!("fifo: once the guest unlinked it, it is reused: {}", z == x);
        println!("fifo: a closed port's event is not delivered: {}", logged().all(|p| p != x));
        clear_log();
        let _ = hypercall::evtchn_close(z);
    }

    fn corrupted(ports: &[u32; MANY]) {
        let (y1, y2, y3) = (ports[10], ports[11], ports[12]);
        events::mask_events();
        send(y1);
        // The guest breaks its own queue: the tail unlinked, its link garbage.
        if let Some(w) = word(y1) {
            w.store(PENDING | BUSY | LINK, SeqCst);
        }
        send(y2);
        send(y3);
        events::unmask_events();
        let mut seen = [false; 3];
        for (s, p) in seen.iter_mut().zip([y1, y2, y3]) {
            *s = events::take(p);
        }
        println!("fifo: a corrupted tail word: delivered {seen:?}");
        clear_log();
    }

    fn array_limit(si: &StartInfo) {
        let spare = mfn_of(si, va(core::ptr::addr_of!(SPARE)));
        let mut added = 0;
        let last = loop {
            match expand(spare) {
                Ok(()) => added += 1,
                Err(e) => break e,
            }
            if added > 200 {
                fail("the event array has no limit");
            }
        };
        println!("fifo: expand_array: {added} more pages, then {last:?}");
    }

    fn reset(si: &StartInfo, carried: u32) {
        report("EVTCHNOP_reset", hypercall::evtchn_reset(DOMID_SELF));
        events::clear_handler();
        // Nothing cleared the 2-level bit of the event carried over at the
        // switch: back on the 2-level ABI, the guest starts afresh.
        println!("fifo: after reset, port {carried}'s old 2-level bit is set: {}", events::is_pending(carried));
        events::clear_two_level();
        let p = ipi();
        report("after reset: set_priority", hypercall::evtchn_set_priority(p, 0));
        let spare = mfn_of(si, va(core::ptr::addr_of!(SPARE)));
        report("after reset: expand_array", expand(spare));
        send(p);
        events::wait_for(p);
        println!("fifo: after reset, port {p} works on the 2-level ABI");
        let cb = mfn_of(si, va(core::ptr::addr_of!(CONTROL)));
        report("after reset: init_control again", init(cb, 0, 0));
        report("and set_priority works again", hypercall::evtchn_set_priority(p, 2));
        report("EVTCHNOP_reset again", hypercall::evtchn_reset(DOMID_SELF));
    }

    fn main(si: &'static StartInfo) -> ! {
        if events::init(si).is_err() {
            fail("event setup");
        }
        let own_l4 = mfn_of(si, si.pt_base);
        println!("fifo: start");
        let carried = two_level_phase(si, own_l4);
        switch(si, own_l4, carried);
        let ports = many_ports(si, carried);
        priorities(&ports);
        masking(ports[20]);
        timer();
        closed_but_linked();
        corrupted(&ports);
        array_limit(si);
        reset(si, carried);
        println!("fifo: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
