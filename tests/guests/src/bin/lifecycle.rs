//! The toolstack's view of the domain lifecycle, as a privileged domain.
//! Command line: `lifecycle [peer=D port=P] cycles=N`.
//! - With `peer`, domain D runs the `grants granter` guest (granting its
//!   page as gref 8 and offering port P to d0): this domain binds the
//!   port, maps the grant, then destroys D while it runs and checks what a
//!   live peer must see: it keeps running, its port is unbound, the
//!   mapping still reads D's page, D is a dying domain holding exactly
//!   that frame, and unmapping it returns the last frame, after which D is
//!   gone and the free-frame count has grown by all D had.
//! - Then it creates N domains one after another, gives each memory and an
//!   event channel, destroys it, and checks that the free-frame count
//!   (`XEN_SYSCTL_physinfo`) is back where it started every time.
//!
//! Every destruction must raise `VIRQ_DOM_EXC`, which it binds first.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::domctl::{XenDomctlCreatedomain, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED};
    use guest_abi::event_channel::{EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND};
    use guest_abi::grant_table::*;
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF, VIRQ_DOM_EXC};
    use guest_abi::XenError;
    use guest_rt::{events, println};
    use zerocopy::FromZeros;

    /// The peer's read-write grant (the `grants` guest's GREF_RW).
    const GREF: u32 = 8;
    /// Memory given to each created domain, in pages.
    const PAGES: usize = 16;

    /// The port bound to `VIRQ_DOM_EXC` (set in `main`).
    static DOM_EXC: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

    /// Whether `VIRQ_DOM_EXC` fired since the last look.
    fn dom_exc_fired() -> bool {
        let _ = hypercall::sched_yield();
        events::take(DOM_EXC.load(core::sync::atomic::Ordering::Relaxed))
    }

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// Where the peer's grant is mapped.
    static mut WINDOW: Page = Page([0; 4096]);

    fn arg(cmdline: &str, key: &str) -> Option<u32> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn fail(what: &str) -> ! {
        println!("lifecycle: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn check(ok: bool, what: &str) {
        if !ok {
            fail(what);
        }
        println!("lifecycle: ok: {what}");
    }

    fn free_pages() -> u64 {
        match hypercall::physinfo() {
            Ok(info) => info.free_pages,
            Err(_) => fail("sysctl physinfo"),
        }
    }

    fn window() -> u64 {
        core::ptr::addr_of!(WINDOW) as u64
    }

    fn reads_hello() -> bool {
        let mut b = [0u8; 13];
        for (i, x) in b.iter_mut().enumerate() {
            // SAFETY: WINDOW is mapped (the grant, or this domain's own page).
            *x = unsafe { ((window() + i as u64) as *const u8).read_volatile() };
        }
        &b == b"hello from d0"
    }

    fn port_status(port: u32) -> u32 {
        hypercall::evtchn_status(DOMID_SELF, port).map_or(u32::MAX, |s| s.status)
    }

    /// Maps, destroys, unmaps: what a live peer of a destroyed domain sees.
    fn destroy_with_a_live_peer(peer: u16, remote: u32) {
        let port = loop {
            match hypercall::evtchn_bind_interdomain(peer, remote) {
                Ok(p) => break p,
                Err(XenError::Einval) => {
                    let _ = hypercall::sched_yield();
                }
                Err(_) => fail("bind_interdomain"),
            }
        };
        let mut op = [GnttabMapGrantRef::new_zeroed()];
        (op[0].host_addr, op[0].flags, op[0].ref_, op[0].dom) = (window(), GNTMAP_HOST_MAP, GREF, peer);
        // SAFETY: WINDOW is only used through raw pointers.
        let mapped = unsafe { hypercall::gnttab_map(&mut op) }.is_ok() && op[0].status == GNTST_OKAY;
        check(mapped && reads_hello(), "the peer's grant is mapped and reads its page");
        check(port_status(port) == EVTCHNSTAT_INTERDOMAIN, "the channel to the peer is connected");
        let Ok(info) = hypercall::domain_getinfo(peer) else { fail("getdomaininfo of the peer") };
        let before = free_pages();
        let _ = dom_exc_fired();
        check(hypercall::domain_destroy(peer).is_ok(), "destroydomain of the running peer");
        check(dom_exc_fired(), "VIRQ_DOM_EXC tells this domain");
        let after = free_pages();
        println!(
            "lifecycle: d{peer} had {} pages; {} frames came back at once, one stays mapped here",
            info.tot_pages,
            after.wrapping_sub(before)
        );
        check(after + 1 >= before + info.tot_pages, "all its frames but the mapped one are free");
        let zombie = hypercall::domain_getinfo(peer);
        let dying = zombie.is_ok_and(|i| i.domain == peer && i.flags & XEN_DOMINF_DYING != 0 && i.tot_pages == 1);
        check(dying, "it is a dying domain holding exactly the mapped frame");
        check(reads_hello(), "the mapping still reads its page");
        check(port_status(port) == EVTCHNSTAT_UNBOUND, "this end of the channel is unbound now");
        check(hypercall::evtchn_send(port).is_ok(), "a send on it is dropped, not refused");
        let mut un = [GnttabUnmapGrantRef::new_zeroed()];
        (un[0].host_addr, un[0].handle) = (window(), op[0].handle);
        // SAFETY: nothing uses WINDOW after this.
        let unmapped = unsafe { hypercall::gnttab_unmap(&mut un) }.is_ok() && un[0].status == GNTST_OKAY;
        check(unmapped, "unmap_grant_ref");
        check(free_pages() == after + 1, "the last frame came back at the unmap");
        let gone = !matches!(hypercall::domain_getinfo(peer), Ok(i) if i.domain == peer);
        check(gone, "the domain is gone");
        let _ = hypercall::evtchn_close(port);
        println!("lifecycle: d{peer} destroyed with a live peer; every frame accounted for");
    }

    /// One create, build-a-little, destroy cycle; the new domain's ID.
    fn cycle() -> u16 {
        let mut config = XenDomctlCreatedomain::new_zeroed();
        (config.max_vcpus, config.grant_opts, config.max_grant_frames, config.max_maptrack_frames) = (1, 1, -1, -1);
        let Ok(id) = hypercall::domain_create(0, config) else { fail("createdomain") };
        if hypercall::domain_max_mem(id, (PAGES as u64) * 4).is_err() {
            fail("max_mem");
        }
        let mut pfns = [0u64; PAGES];
        for (i, p) in pfns.iter_mut().enumerate() {
            *p = i as u64;
        }
        if hypercall::populate_physmap_for(id, &mut pfns, 0) != Ok(PAGES as u64) {
            fail("populate_physmap for the new domain");
        }
        let mut one = [0u64];
        if hypercall::populate_physmap_for(id, &mut one, 0) != Ok(0) {
            fail("the new domain grew past max_mem");
        }
        let Ok(remote) = hypercall::evtchn_alloc_unbound_in(id, 0) else { fail("alloc_unbound in the new domain") };
        let Ok(port) = hypercall::evtchn_bind_interdomain(id, remote) else { fail("bind to the new domain") };
        match hypercall::domain_getinfo(id) {
            Ok(i) if i.domain == id && i.tot_pages == PAGES as u64 && i.flags & XEN_DOMINF_PAUSED != 0 => {}
            _ => fail("getdomaininfo of the new domain"),
        }
        if hypercall::domain_destroy(id).is_err() {
            fail("destroydomain");
        }
        if !dom_exc_fired() {
            fail("no VIRQ_DOM_EXC for the destroyed domain");
        }
        if port_status(port) != EVTCHNSTAT_UNBOUND || hypercall::evtchn_close(port).is_err() {
            fail("the channel to the destroyed domain");
        }
        if matches!(hypercall::domain_getinfo(id), Ok(i) if i.domain == id) {
            fail("the destroyed domain is still listed");
        }
        id
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        if events::init(si).is_err() {
            fail("event setup");
        }
        match hypercall::evtchn_bind_virq(VIRQ_DOM_EXC, 0) {
            Ok(port) => DOM_EXC.store(port, core::sync::atomic::Ordering::Relaxed),
            Err(_) => fail("bind VIRQ_DOM_EXC"),
        }
        // Upcalls on: an event becomes a "fired" flag the handler records.
        events::unmask_events();
        if let Some(peer) = arg(cmdline, "peer") {
            destroy_with_a_live_peer(peer as u16, arg(cmdline, "port").unwrap_or(1));
        }
        let cycles = arg(cmdline, "cycles").unwrap_or(0);
        let start = free_pages();
        let (mut first, mut last) = (0, 0);
        for n in 1..=cycles {
            last = cycle();
            if n == 1 {
                first = last;
            }
            let free = free_pages();
            if free != start {
                println!("lifecycle: FAILED: after cycle {n} {free} pages are free, {start} before");
                guest_rt::shutdown(SHUTDOWN_CRASH);
            }
            if n % 25 == 0 {
                println!("lifecycle: {n} domains created and destroyed, {free} pages free");
            }
        }
        if cycles > 0 {
            println!("lifecycle: domains d{first}..d{last}: free pages unchanged at {start}");
        }
        println!("lifecycle: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
