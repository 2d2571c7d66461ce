//! A misbehaving domU for the QoS scenarios: it never stops calling the
//! hypervisor. Started by `xl create` in dom0 (it reads its domid from
//! XenStore), it loops over rounds of:
//! - event channels: 32 sends on a loopback interdomain channel to
//!   itself, each delivered as an upcall (and so an `iret` hypercall);
//! - grants: a `GNTTABOP_copy` batch of 8 whole pages out of a page it
//!   granted to itself, and 32 device maps of that grant then their unmaps;
//! - ballooning: 2048 frames (8 MiB) taken with `increase_reservation` in
//!   order-9 extents and given back, then populated page by page with
//!   `populate_physmap` at the pfns it gave up at start and given back
//!   again (each call continued after 2 MiB, as Xen's preemption checks);
//! - a multicall of 8 sends, a grant copy and an order-9 extent taken and
//!   given back.
//!
//! Every answer is checked (a wrong one is a `flood: FAILED` line and a
//! crash). Every `report_ms` (default 2000) of system time it prints its
//! progress counters for the interval on its console: `flood: t=MS
//! rounds=N calls=N upcalls=N running_ms=N own_code=P/1000`, where `running_ms` is the
//! hypervisor's run-state accounting of the interval (`running`) and
//! `own_code` the part of that running time it spent outside hypercalls by
//! its own clock (the interval less the time inside its calls, an upper
//! bound: it also holds any time the domain was descheduled between two
//! calls). Its hypercalls are then at least `1000 - own_code` permille of
//! its running time: what it costs the hypervisor is charged to it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::arch_x86::GuestHandle;
    use guest_abi::event_channel::{EvtchnSend, EVTCHNOP_SEND};
    use guest_abi::grant_table::{
        GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabUnmapGrantRef, GNTCOPY_SOURCE_GREF, GNTMAP_DEVICE_MAP,
        GNTST_OKAY, GNTTABOP_COPY,
    };
    use guest_abi::hypercall;
    use guest_abi::memory::{
        MemoryReservation, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP,
    };
    use guest_abi::sched::SHUTDOWN_CRASH;
    use guest_abi::vcpu::RUNSTATE_RUNNING;
    use guest_abi::xen::{
        MulticallEntry, StartInfo, DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP,
        HYPERVISOR_MEMORY_OP,
    };
    use guest_rt::xenstore::{TxId, XenStore};
    use guest_rt::{events, gnttab, println};
    use zerocopy::FromZeros;

    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// Frames the domain balloons: given back at start (the top of its
    /// memory, which it never maps), then taken and given back each round.
    const BALLOON: usize = 2048;
    /// Frames of an order-9 extent.
    const EXTENT: usize = 512;
    /// Sends on the loopback channel per round.
    const SENDS: u32 = 32;
    /// Device maps of the grant per round.
    const MAPS: usize = 32;
    /// Pages per grant copy batch.
    const COPIES: usize = 8;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// The page granted to itself (the copies' source).
    static mut SOURCE: Page = Page([0; 4096]);
    /// The copies' destination.
    static mut DEST: Page = Page([0; 4096]);
    /// The balloon's pfns (given back at start).
    static mut PFNS: [u64; BALLOON] = [0; BALLOON];
    /// The list a reservation command reads and writes.
    static mut LIST: [u64; BALLOON] = [0; BALLOON];

    fn fail(what: core::fmt::Arguments) -> ! {
        println!("flood: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn now() -> u64 {
        events::system_time_ns()
    }

    fn mfn_of(si: &StartInfo, pfn: u64) -> u64 {
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    fn va_mfn(si: &StartInfo, va: u64) -> u64 {
        mfn_of(si, (va - VIRT_BASE) >> 12)
    }

    fn list() -> &'static mut [u64; BALLOON] {
        // SAFETY: single-threaded kernel; one user at a time.
        unsafe { &mut *core::ptr::addr_of_mut!(LIST) }
    }

    fn pfns() -> &'static mut [u64; BALLOON] {
        // SAFETY: as list().
        unsafe { &mut *core::ptr::addr_of_mut!(PFNS) }
    }

    fn reservation(n: usize, order: u32) -> MemoryReservation {
        let mut r = MemoryReservation::new_zeroed();
        (r.extent_start, r.nr_extents, r.extent_order, r.domid) =
            (GuestHandle::from_mut_ptr(list().as_mut_ptr()), n as u64, order, DOMID_SELF);
        r
    }

    /// The hypercalls made and the time spent inside them.
    struct Meter {
        calls: u64,
        inside_ns: u64,
    }

    impl Meter {
        /// Runs one hypercall (or one multicall), timed.
        fn call<T>(&mut self, f: impl FnOnce() -> T) -> T {
            let t0 = now();
            let r = f();
            self.inside_ns += now().saturating_sub(t0);
            self.calls += 1;
            r
        }
    }

    /// A reservation command over `LIST`: extents done.
    fn memop(m: &mut Meter, cmd: u32, n: usize, order: u32) -> i64 {
        let mut r = reservation(n, order);
        // SAFETY: the list is this kernel's; the frames named in a decrease
        // are mapped nowhere (the balloon's).
        m.call(|| unsafe { hypercall::hypercall2(HYPERVISOR_MEMORY_OP, cmd.into(), core::ptr::addr_of_mut!(r) as u64) })
    }

    fn expect(what: &str, got: i64, want: usize) {
        if got != want as i64 {
            fail(format_args!("{what}: {got}, want {want}"));
        }
    }

    fn domid(si: &StartInfo) -> u16 {
        let mut xs = XenStore::open(si).unwrap_or_else(|e| fail(format_args!("XenStore: {e}")));
        let v = xs.read(TxId::NONE, "domid").unwrap_or_else(|e| fail(format_args!("reading domid: {e}")));
        core::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fail(format_args!("domid {v:?}")))
    }

    fn copy_op(gref: u32, domid: u16, dest: u64) -> GnttabCopy {
        let mut op = GnttabCopy::new_zeroed();
        op.source = GnttabCopyPtr::from_gref(gref, domid, 0);
        op.dest = GnttabCopyPtr::from_gmfn(dest, DOMID_SELF, 0);
        (op.len, op.flags) = (4096, GNTCOPY_SOURCE_GREF as u16);
        op
    }

    fn entry(op: u32, args: [u64; 6]) -> MulticallEntry {
        let mut e = MulticallEntry::new_zeroed();
        (e.op, e.args) = (op.into(), args);
        e
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let report_ns = arg(cmdline, "report_ms").unwrap_or(2000) * 1_000_000;
        if let Err(e) = events::init(si) {
            fail(format_args!("cannot map shared_info: {e:?}"));
        }
        let me = domid(si);
        // The loopback channel: `a` unbound for itself, `b` bound to it.
        let a = hypercall::evtchn_alloc_unbound(me).unwrap_or_else(|e| fail(format_args!("alloc_unbound: {e:?}")));
        let b =
            hypercall::evtchn_bind_interdomain(me, a).unwrap_or_else(|e| fail(format_args!("bind_interdomain: {e:?}")));
        events::unmask_events();
        if let Err(e) = gnttab::init() {
            fail(format_args!("grant table: {e:?}"));
        }
        // SAFETY: single-threaded kernel, before the grant exists.
        unsafe { (*core::ptr::addr_of_mut!(SOURCE)).0.fill(0xa5) };
        let source = va_mfn(si, core::ptr::addr_of!(SOURCE) as u64);
        let dest = va_mfn(si, core::ptr::addr_of!(DEST) as u64);
        let gref = gnttab::grant(me, source, false).unwrap_or_else(|e| fail(format_args!("granting: {e:?}")));
        // The balloon: the top BALLOON frames, which nothing maps.
        let first = si.nr_pages.checked_sub(BALLOON as u64).unwrap_or_else(|| fail(format_args!("too small")));
        for i in 0..BALLOON {
            pfns()[i] = first + i as u64;
            list()[i] = mfn_of(si, first + i as u64);
        }
        let mut m = Meter { calls: 0, inside_ns: 0 };
        expect("giving the balloon back", memop(&mut m, XENMEM_DECREASE_RESERVATION, BALLOON, 0), BALLOON);
        println!("flood: d{me}: loopback ports {a}/{b}, grant {gref}, balloon of {BALLOON} frames: flooding");

        let mut send = EvtchnSend { port: b };
        let mut copies = [copy_op(gref, me, dest); COPIES];
        let mut mc_copy = [copy_op(gref, me, dest)];
        let (mut rounds, mut upcalls_seen) = (0u64, events::upcalls());
        let (mut t_last, mut run_last) = (now(), running());
        let mut m_last = (0u64, 0u64);
        loop {
            // Event channels: each send comes back as an upcall.
            for _ in 0..SENDS {
                if let Err(e) = m.call(|| hypercall::evtchn_send(b)) {
                    fail(format_args!("send: {e:?}"));
                }
                if !events::take(a) {
                    fail(format_args!("a send on port {b} did not fire port {a}"));
                }
            }
            // Grants: copies out of its own grant, device maps and unmaps.
            // SAFETY: the destination is only written by the hypervisor.
            if let Err(e) = m.call(|| unsafe { hypercall::gnttab_copy(&mut copies) }) {
                fail(format_args!("GNTTABOP_copy: {e:?}"));
            }
            if let Some(op) = copies.iter().find(|op| op.status != GNTST_OKAY) {
                fail(format_args!("grant copy: status {}", op.status));
            }
            let mut maps = [GnttabMapGrantRef::new_zeroed(); MAPS];
            for op in maps.iter_mut() {
                (op.flags, op.ref_, op.dom) = (GNTMAP_DEVICE_MAP, gref, me);
            }
            // SAFETY: device mappings only: no page-table change.
            if let Err(e) = m.call(|| unsafe { hypercall::gnttab_map(&mut maps) }) {
                fail(format_args!("GNTTABOP_map_grant_ref: {e:?}"));
            }
            let mut unmaps = [GnttabUnmapGrantRef::new_zeroed(); MAPS];
            for (u, op) in unmaps.iter_mut().zip(&maps) {
                if op.status != GNTST_OKAY {
                    fail(format_args!("map of grant {gref}: status {}", op.status));
                }
                (u.handle, u.dev_bus_addr) = (op.handle, source << 12);
            }
            // SAFETY: as above.
            if let Err(e) = m.call(|| unsafe { hypercall::gnttab_unmap(&mut unmaps) }) {
                fail(format_args!("GNTTABOP_unmap_grant_ref: {e:?}"));
            }
            if let Some(op) = unmaps.iter().find(|op| op.status != GNTST_OKAY) {
                fail(format_args!("unmap: status {}", op.status));
            }
            // Ballooning: order-9 extents up and down, then page by page.
            let extents = BALLOON / EXTENT;
            expect("increase_reservation", memop(&mut m, XENMEM_INCREASE_RESERVATION, extents, 9), extents);
            expect("decrease_reservation", memop(&mut m, XENMEM_DECREASE_RESERVATION, extents, 9), extents);
            list().copy_from_slice(pfns());
            expect("populate_physmap", memop(&mut m, XENMEM_POPULATE_PHYSMAP, BALLOON, 0), BALLOON);
            expect("decrease_reservation", memop(&mut m, XENMEM_DECREASE_RESERVATION, BALLOON, 0), BALLOON);
            // A multicall of all three kinds.
            let mut grow = reservation(1, 9);
            let mut shrink = reservation(1, 9);
            let send_ptr = core::ptr::addr_of_mut!(send) as u64;
            let s = entry(HYPERVISOR_EVENT_CHANNEL_OP, [EVTCHNOP_SEND.into(), send_ptr, 0, 0, 0, 0]);
            let mut batch = [
                s,
                s,
                s,
                s,
                s,
                s,
                s,
                s,
                entry(HYPERVISOR_GRANT_TABLE_OP, [GNTTABOP_COPY.into(), mc_copy.as_mut_ptr() as u64, 1, 0, 0, 0]),
                entry(
                    HYPERVISOR_MEMORY_OP,
                    [XENMEM_INCREASE_RESERVATION.into(), core::ptr::addr_of_mut!(grow) as u64, 0, 0, 0, 0],
                ),
                entry(
                    HYPERVISOR_MEMORY_OP,
                    [XENMEM_DECREASE_RESERVATION.into(), core::ptr::addr_of_mut!(shrink) as u64, 0, 0, 0, 0],
                ),
            ];
            // SAFETY: every pointer is this kernel's and lives across the
            // call; the extent is the balloon's, mapped nowhere.
            if let Err(e) = m.call(|| unsafe { hypercall::multicall(&mut batch) }) {
                fail(format_args!("multicall: {e:?}"));
            }
            let results = batch.map(|e| e.result as i64);
            if results != [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1] || mc_copy[0].status != GNTST_OKAY {
                fail(format_args!("multicall results {results:?}, copy status {}", mc_copy[0].status));
            }
            if !events::take(a) {
                fail(format_args!("the multicall's sends did not fire port {a}"));
            }
            rounds += 1;
            let t = now();
            if t.saturating_sub(t_last) >= report_ns {
                let run = running();
                let (calls, inside) = (m.calls - m_last.0, m.inside_ns - m_last.1);
                let ran = run.saturating_sub(run_last);
                let own = (t - t_last).saturating_sub(inside);
                // SAFETY: the destination page holds what the copies wrote.
                let copied = unsafe { (*core::ptr::addr_of!(DEST)).0.iter().all(|&x| x == 0xa5) };
                if !copied {
                    fail(format_args!("the grant copies did not fill the destination page"));
                }
                println!(
                    "flood: t={} rounds={rounds} calls={calls} upcalls={} running_ms={} own_code={}/1000",
                    t / 1_000_000,
                    events::upcalls() - upcalls_seen,
                    ran / 1_000_000,
                    own * 1000 / ran.max(1),
                );
                (t_last, run_last, m_last, upcalls_seen) = (t, run, (m.calls, m.inside_ns), events::upcalls());
                rounds = 0;
            }
        }
    }

    /// vCPU 0's running time so far (ns), from the hypervisor's accounting.
    fn running() -> u64 {
        match hypercall::vcpu_runstate_info(0) {
            Ok(rs) => rs.time[RUNSTATE_RUNNING as usize],
            Err(e) => fail(format_args!("VCPUOP_get_runstate_info: {e:?}")),
        }
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
