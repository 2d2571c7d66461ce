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
//! - With `build=M`, it then builds M domains as a toolstack does and runs
//!   them: memory, page tables and a few instructions of code written
//!   through foreign mappings, `setvcpucontext`, `unpausedomain`; each one
//!   prints a line and powers itself off, and this domain destroys it once
//!   `VIRQ_DOM_EXC` says it shut down. The free-frame count must come back
//!   to what it was after the first of them: the first domain that runs on
//!   a CPU may leave the hypervisor with state it keeps for that CPU (Xen
//!   4.17 on two CPUs kept one page after the first build, likely per-CPU
//!   state such as a timer heap that grows once), so a leak shows from the
//!   second build on.
//!
//! Every destruction must raise `VIRQ_DOM_EXC`, which it binds first.
//!
//! `lifecycle attack` runs as an unprivileged domain instead: every
//! toolstack operation, on itself or on dom0, must be refused with
//! `-EPERM` (and a foreign `populate_physmap` must do nothing).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::domctl::{XenDomctlCreatedomain, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED, XEN_DOMINF_SHUTDOWN};
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

    /// The free-frame count once it reaches `want`, or what it is after a
    /// while: Xen frees a destroyed domain's last hypervisor frames after
    /// an RCU grace period, xenish at once.
    /// The free-page count once it is `want`, or after 10 s of system time.
    /// Xen gives some of a destroyed domain's frames back after an RCU grace
    /// period, so how many yields that takes depends on the machine's load.
    fn free_pages_settled(want: u64) -> u64 {
        let deadline = events::system_time_ns().saturating_add(10_000_000_000);
        loop {
            let free = free_pages();
            if free == want || events::system_time_ns() > deadline {
                return free;
            }
            let _ = hypercall::sched_yield();
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
        config.max_evtchn_port = 1023; // libxl's default
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

    /// Where foreign frames are mapped while they are written.
    static mut SCRATCH: Page = Page([0; 4096]);

    /// The built domain's layout: pfn 0..4 its L4, L3, L2 and L1, pfn 4 its
    /// code (at `CODE_VA`), pfn 5 its stack page.
    const CODE_VA: u64 = 0x40_0000;
    const PT_FLAGS: u64 = 0x67; // present, writable, user, accessed, dirty
    const CODE_FLAGS: u64 = 0x25; // present, user, accessed: read-only
    const MSG: &[u8] = b"built at run time, running, powering off\n";

    /// The domain's code: `console_io(write, MSG)`, then
    /// `sched_op(shutdown, {poweroff})`, then `ud2`.
    fn kernel_code() -> [u8; 128] {
        const REASON_AT: usize = 64;
        const MSG_AT: usize = 72;
        let mut c = [0u8; 128];
        let len = (MSG.len() as u32).to_le_bytes();
        // lea's displacement counts from the next instruction (at 14, 33).
        let to_msg = (MSG_AT as i32 - 14).to_le_bytes();
        let to_reason = (REASON_AT as i32 - 33).to_le_bytes();
        let code: [&[u8]; 10] = [
            &[0x31, 0xff],                                                   // 0: xor edi, edi (CONSOLEIO_write)
            &[0xbe, len[0], len[1], len[2], len[3]],                         // 2: mov esi, len
            &[0x48, 0x8d, 0x15, to_msg[0], to_msg[1], to_msg[2], to_msg[3]], // 7: lea rdx, [rip + msg]
            &[0xb8, 18, 0, 0, 0],                                            // 14: mov eax, __HYPERVISOR_console_io
            &[0x0f, 0x05],                                                   // 19: syscall
            &[0xbf, 2, 0, 0, 0],                                             // 21: mov edi, SCHEDOP_shutdown
            &[0x48, 0x8d, 0x35, to_reason[0], to_reason[1], to_reason[2], to_reason[3]], // 26: lea rsi, [rip + reason]
            &[0xb8, 29, 0, 0, 0],                                            // 33: mov eax, __HYPERVISOR_sched_op
            &[0x0f, 0x05],                                                   // 38: syscall
            &[0x0f, 0x0b],                                                   // 40: ud2
        ];
        let mut n = 0;
        for bytes in code {
            c[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        }
        c[REASON_AT..REASON_AT + 4].copy_from_slice(&0u32.to_le_bytes()); // SHUTDOWN_poweroff
        c[MSG_AT..MSG_AT + MSG.len()].copy_from_slice(MSG);
        c
    }

    /// Maps frame `mfn` of domain `id` at SCRATCH, lets `fill` write it,
    /// and unmaps it again.
    fn write_foreign(id: u16, mfn: u64, fill: impl FnOnce(&mut [u8; 4096])) {
        let va = core::ptr::addr_of!(SCRATCH) as u64;
        // SAFETY: SCRATCH is only used through this function, which maps
        // the frame over it and restores the page's own frame after.
        if unsafe { hypercall::update_va_mapping_otherdomain(va, (mfn << 12) | 0x67, 2, id) }.is_err() {
            fail("mapping a frame of the new domain");
        }
        // SAFETY: the frame is mapped writable at `va` until remapped below.
        fill(unsafe { &mut *(va as *mut [u8; 4096]) });
        let own_mfn = SCRATCH_MFN.load(core::sync::atomic::Ordering::Relaxed);
        if hypercall::update_va_mapping(va, (own_mfn << 12) | 0x67, 2).is_err() {
            fail("restoring the scratch page");
        }
    }

    /// SCRATCH's own frame, mapped back after each foreign write.
    static SCRATCH_MFN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    /// Builds, runs and destroys one domain; returns its ID.
    fn build_and_run() -> u16 {
        use guest_abi::arch_x86::{VcpuGuestContext, VGCF_IN_KERNEL, VGCF_ONLINE};
        let mut config = XenDomctlCreatedomain::new_zeroed();
        (config.max_vcpus, config.grant_opts, config.max_grant_frames, config.max_maptrack_frames) = (1, 1, -1, -1);
        config.max_evtchn_port = 1023; // libxl's default
        let Ok(id) = hypercall::domain_create(0, config) else { fail("createdomain") };
        let mut mfns = [0u64, 1, 2, 3, 4, 5];
        if hypercall::domain_max_mem(id, 6 * 4).is_err() || hypercall::populate_physmap_for(id, &mut mfns, 0) != Ok(6) {
            fail("memory for the domain to build");
        }
        let [l4, l3, l2, l1, code, stack] = mfns;
        let entry = |page: &mut [u8; 4096], slot: usize, value: u64| {
            page[slot * 8..slot * 8 + 8].copy_from_slice(&value.to_le_bytes());
        };
        write_foreign(id, l4, |p| entry(p, 0, (l3 << 12) | PT_FLAGS));
        write_foreign(id, l3, |p| entry(p, 0, (l2 << 12) | PT_FLAGS));
        write_foreign(id, l2, |p| entry(p, ((CODE_VA >> 21) & 511) as usize, (l1 << 12) | PT_FLAGS));
        write_foreign(id, l1, |p| {
            entry(p, 0, (code << 12) | CODE_FLAGS);
            entry(p, 1, (stack << 12) | PT_FLAGS);
        });
        let text = kernel_code();
        write_foreign(id, code, |p| p[..text.len()].copy_from_slice(&text));
        let mut g = VcpuGuestContext::new_zeroed();
        g.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
        (g.user_regs.rip, g.user_regs.rsp) = (CODE_VA, CODE_VA + 0x2000);
        (g.user_regs.cs, g.user_regs.ss, g.user_regs.rflags) = (0xe033, 0xe02b, 0x200);
        (g.kernel_ss, g.kernel_sp, g.ctrlreg[3]) = (0xe02b, CODE_VA + 0x2000, l4 << 12);
        if hypercall::domain_max_vcpus(id, 1).is_err() {
            fail("max_vcpus");
        }
        if let Err(e) = hypercall::domain_set_vcpu_context(id, 0, &g) {
            println!("lifecycle: setvcpucontext: {e}");
            fail("setvcpucontext");
        }
        let _ = dom_exc_fired();
        if hypercall::domain_unpause(id).is_err() {
            fail("unpausedomain");
        }
        // It runs, prints and powers off; the toolstack hears of it.
        events::wait_for(DOM_EXC.load(core::sync::atomic::Ordering::Relaxed));
        match hypercall::domain_getinfo(id) {
            Ok(i) if i.domain == id && i.flags & XEN_DOMINF_SHUTDOWN != 0 && i.flags >> 16 & 0xff == 0 => {}
            _ => fail("the built domain did not power off"),
        }
        if hypercall::domain_destroy(id).is_err() {
            fail("destroydomain of the built domain");
        }
        id
    }

    /// As an unprivileged domain: the toolstack's operations are refused.
    fn attack() -> ! {
        use guest_abi::arch_x86::VcpuGuestContext;
        let eperm = |r: Result<(), XenError>, what: &str| check(r == Err(XenError::Eperm), what);
        let mut config = XenDomctlCreatedomain::new_zeroed();
        (config.max_vcpus, config.grant_opts, config.max_grant_frames, config.max_maptrack_frames) = (1, 1, -1, -1);
        eperm(hypercall::domain_create(0, config).map(drop), "createdomain: EPERM");
        eperm(hypercall::domain_destroy(0), "destroying dom0: EPERM");
        eperm(hypercall::domain_pause(0), "pausing dom0: EPERM");
        eperm(hypercall::domain_max_mem(0, 1 << 30), "raising dom0's max_mem: EPERM");
        eperm(hypercall::domain_max_vcpus(0, 1), "max_vcpus of dom0: EPERM");
        let g = VcpuGuestContext::new_zeroed();
        eperm(hypercall::domain_set_vcpu_context(0, 0, &g), "setvcpucontext of dom0: EPERM");
        eperm(hypercall::domain_getinfo(0).map(drop), "getdomaininfo: EPERM");
        eperm(hypercall::physinfo().map(drop), "physinfo: EPERM");
        let mut infos = [guest_abi::domctl::XenDomctlGetdomaininfo::new_zeroed(); 2];
        eperm(hypercall::domain_list(0, &mut infos).map(drop), "getdomaininfolist: EPERM");
        eperm(hypercall::evtchn_alloc_unbound_in(0, DOMID_SELF).map(drop), "a port in dom0: EPERM");
        let mut pfns = [0u64; 2];
        check(hypercall::populate_physmap_for(0, &mut pfns, 0) == Ok(0), "memory for dom0: none given");
        println!("lifecycle: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn main(si: &'static StartInfo) -> ! {
        let scratch_pfn = (core::ptr::addr_of!(SCRATCH) as u64 - 0xffff_ffff_8000_0000) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        let scratch_mfn = unsafe { ((si.mfn_list + scratch_pfn * 8) as *const u64).read_volatile() };
        SCRATCH_MFN.store(scratch_mfn, core::sync::atomic::Ordering::Relaxed);
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        if events::init(si).is_err() {
            fail("event setup");
        }
        if cmdline.starts_with("lifecycle attack") {
            attack();
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
            let free = free_pages_settled(start);
            if free != start {
                println!("lifecycle: FAILED: after cycle {n} {free} pages are free, {start} before");
                guest_rt::shutdown(SHUTDOWN_CRASH);
            }
            if n % 25 == 0 {
                println!("lifecycle: {n} domains created and destroyed, free pages unchanged");
            }
        }
        if cycles > 0 {
            println!("lifecycle: domains d{first}..d{last}: free pages unchanged");
            let mut infos = [guest_abi::domctl::XenDomctlGetdomaininfo::new_zeroed(); 4];
            match hypercall::domain_list(0, &mut infos) {
                Ok(1) if infos[0].domain == 0 => println!("lifecycle: the domain list holds d0 alone again"),
                Ok(n) => fail(if n == 0 { "an empty domain list" } else { "destroyed domains still listed" }),
                Err(_) => fail("sysctl getdomaininfolist"),
            }
        }
        let builds = arg(cmdline, "build").unwrap_or(0);
        let mut start = free_pages();
        for n in 1..=builds {
            let id = build_and_run();
            let free = free_pages_settled(start);
            if n == 1 {
                start = free;
            } else if free != start {
                println!(
                    "lifecycle: FAILED: after building and destroying d{id} {free} pages are free, {start} before"
                );
                guest_rt::shutdown(SHUTDOWN_CRASH);
            }
            println!("lifecycle: built d{id}, it ran and powered off, destroyed ({n} of {builds})");
        }
        println!("lifecycle: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
