//! Grant tables version 2 and the newer grant operations, as a privileged
//! domain sees them: status frames, version switches (refused while a
//! grant is in use or a status frame is mapped; reserved entries kept),
//! full-page, sub-page and transitive grants, unmap_and_replace,
//! swap_grant_ref, the pin limit, cache_flush, and, with a helper domain
//! it builds (which switches itself to version 2 and powers off), a
//! successful transitive copy through the helper's table, refused loops,
//! and a page transfer. Every result is printed as a `gntv2: ` line, so
//! that the run on xenish and the run on Xen 4.17 can be compared.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU16, AtomicU64, Ordering::SeqCst};

    use guest_abi::arch_x86::{VcpuGuestContext, VGCF_IN_KERNEL, VGCF_ONLINE};
    use guest_abi::domctl::XenDomctlCreatedomain;
    use guest_abi::grant_table::*;
    use guest_abi::hypercall::{self, hypercall3};
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF, HYPERVISOR_GRANT_TABLE_OP, VIRQ_DOM_EXC};
    use guest_rt::{events, println};
    use zerocopy::{FromZeros, IntoBytes};

    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    const RW: u64 = 0x67;
    const RO: u64 = 0x25;
    const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;
    const SUB: u16 = GTF_SUB_PAGE as u16;
    const TRANS: u16 = GTF_TRANSITIVE as u16;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// This domain's grant table frame, then the helper's, and their
    /// status frames; the granted page, a copy target, where grants are
    /// mapped, a page whose mapping moves, a page given away, scratch.
    static mut TABLE: Page = Page([0; 4096]);
    static mut STATUS: Page = Page([0; 4096]);
    static mut HTABLE: Page = Page([0; 4096]);
    static mut HSTATUS: Page = Page([0; 4096]);
    static mut DATA: Page = Page([0; 4096]);
    static mut TARGET: Page = Page([0; 4096]);
    static mut WINDOW: Page = Page([0; 4096]);
    static mut OTHER: Page = Page([0; 4096]);
    static mut GIFT: Page = Page([0; 4096]);
    static mut SCRATCH: Page = Page([0; 4096]);

    /// The p2m list's address (from start_info).
    static MFN_LIST: AtomicU64 = AtomicU64::new(0);

    fn va(p: *const Page) -> u64 {
        p as u64
    }

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn(page: *const Page) -> u64 {
        let pfn = (va(page) - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((MFN_LIST.load(SeqCst) + pfn * 8) as *const u64).read_volatile() }
    }

    fn fail(what: &str) -> ! {
        println!("gntv2: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn show<T: core::fmt::Debug>(what: &str, v: T) {
        println!("gntv2: {what}: {v:?}");
    }

    /// Maps frame `frame` (of domain `dom`, or this one's) at `page`.
    fn remap(page: *const Page, frame: u64, flags: u64, dom: Option<u16>) -> Result<(), guest_abi::XenError> {
        let pte = (frame << 12) | flags;
        match dom {
            // SAFETY: the pages involved are only used through raw pointers.
            Some(d) => unsafe { hypercall::update_va_mapping_otherdomain(va(page), pte, 2, d) },
            None => hypercall::update_va_mapping(va(page), pte, 2),
        }
    }

    /// Maps `page`'s own frame back.
    fn restore(page: *const Page) {
        if remap(page, mfn(page), RW, None).is_err() {
            fail("restoring a page's own mapping");
        }
    }

    fn byte_at(page: *const Page, off: usize) -> *mut u8 {
        (va(page) + off as u64) as *mut u8
    }

    fn write(page: *const Page, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: inside a mapped, writable page of this test.
            unsafe { byte_at(page, off + i).write_volatile(*b) };
        }
    }

    fn read(page: *const Page, off: usize, len: usize) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().take(len).enumerate() {
            // SAFETY: inside a mapped page of this test.
            *b = unsafe { byte_at(page, off + i).read_volatile() };
        }
        out
    }

    /// `grant_table_op(cmd, ops)`, raw.
    fn op<T: IntoBytes>(cmd: u32, ops: &mut [T]) -> i64 {
        // SAFETY: every op here names pages of this test or none.
        unsafe { hypercall3(HYPERVISOR_GRANT_TABLE_OP, cmd.into(), ops.as_mut_ptr() as u64, ops.len() as u64) }
    }

    /// Writes a v2 entry at `table` (the 12 bytes after the header as given),
    /// header last.
    fn entry_v2(table: *const Page, gref: u32, flags: u16, domid: u16, body: [u8; 12]) {
        let at = gref as usize * 16;
        write(table, at + 4, &body);
        write(table, at + 2, &domid.to_le_bytes());
        // SAFETY: 2-aligned, inside the table page.
        unsafe { &*(byte_at(table, at) as *const AtomicU16) }.store(flags, SeqCst);
    }

    fn full(frame: u64) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&frame.to_le_bytes());
        b
    }

    fn sub(off: u16, len: u16, frame: u64) -> [u8; 12] {
        let mut b = full(frame);
        b[0..2].copy_from_slice(&off.to_le_bytes());
        b[2..4].copy_from_slice(&len.to_le_bytes());
        b
    }

    fn trans(domid: u16, gref: u32) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..2].copy_from_slice(&domid.to_le_bytes());
        b[4..8].copy_from_slice(&gref.to_le_bytes());
        b
    }

    fn status_word(status: *const Page, gref: u32) -> u16 {
        let r = read(status, gref as usize * 2, 2);
        u16::from_le_bytes([r[0], r[1]])
    }

    fn flags_of(table: *const Page, gref: u32, v2: bool) -> u16 {
        let r = read(table, gref as usize * if v2 { 16 } else { 8 }, 2);
        u16::from_le_bytes([r[0], r[1]])
    }

    fn setup_table(dom: u16) -> (i16, u64) {
        let mut frame = 0u64;
        let mut s = GnttabSetupTable::new_zeroed();
        (s.dom, s.nr_frames) = (dom, 1);
        s.frame_list = guest_abi::GuestHandle::from_mut_ptr(&mut frame);
        let rc = op(GNTTABOP_SETUP_TABLE, core::slice::from_mut(&mut s));
        (if rc < 0 { rc as i16 } else { s.status }, frame)
    }

    fn status_frames(dom: u16, nr: u32) -> (i64, i16, u64) {
        let mut frame = 0u64;
        let mut s = GnttabGetStatusFrames::new_zeroed();
        (s.dom, s.nr_frames) = (dom, nr);
        s.frame_list = guest_abi::GuestHandle::from_mut_ptr(&mut frame);
        let rc = op(GNTTABOP_GET_STATUS_FRAMES, core::slice::from_mut(&mut s));
        (rc, s.status, frame)
    }

    fn get_version(dom: u16) -> (i64, u32) {
        let mut g = GnttabGetVersion { dom, pad: 0, version: 0 };
        let rc = op(GNTTABOP_GET_VERSION, core::slice::from_mut(&mut g));
        (rc, g.version)
    }

    fn set_version(version: u32) -> (i64, u32) {
        let mut s = GnttabSetVersion { version };
        let rc = op(GNTTABOP_SET_VERSION, core::slice::from_mut(&mut s));
        (rc, s.version)
    }

    fn map(gref: u32, dom: u16, flags: u32, at: *const Page) -> GnttabMapGrantRef {
        let mut m = GnttabMapGrantRef::new_zeroed();
        (m.host_addr, m.flags, m.ref_, m.dom) = (va(at), flags, gref, dom);
        if op(GNTTABOP_MAP_GRANT_REF, core::slice::from_mut(&mut m)) != 0 {
            fail("map_grant_ref hypercall");
        }
        m
    }

    fn unmap(handle: u32, at: u64, dev_bus_addr: u64) -> i16 {
        let mut u = GnttabUnmapGrantRef::new_zeroed();
        (u.host_addr, u.dev_bus_addr, u.handle) = (at, dev_bus_addr, handle);
        if op(GNTTABOP_UNMAP_GRANT_REF, core::slice::from_mut(&mut u)) != 0 {
            fail("unmap_grant_ref hypercall");
        }
        u.status
    }

    fn copy(src: GnttabCopyPtr, dst: GnttabCopyPtr, len: u16, flags: u32) -> i16 {
        let mut c = GnttabCopy::new_zeroed();
        (c.source, c.dest, c.len, c.flags) = (src, dst, len, flags as u16);
        if op(GNTTABOP_COPY, core::slice::from_mut(&mut c)) != 0 {
            fail("copy hypercall");
        }
        c.status
    }

    /// A copy from `dom`'s grant `gref` at `off` into TARGET.
    fn copy_in(dom: u16, gref: u32, off: u16, len: u16) -> i16 {
        let dst = GnttabCopyPtr::from_gmfn(mfn(core::ptr::addr_of!(TARGET)), DOMID_SELF, 0);
        copy(GnttabCopyPtr::from_gref(gref, dom, off), dst, len, GNTCOPY_SOURCE_GREF)
    }

    fn swap(a: u32, b: u32) -> i16 {
        hypercall::gnttab_swap_grant_ref(a, b).unwrap_or_else(|_| fail("swap hypercall"))
    }

    fn flush(addr: u64, offset: u16, length: u16, what: u32) -> i64 {
        let mut f = GnttabCacheFlush { a: addr, offset, length, op: what };
        op(GNTTABOP_CACHE_FLUSH, core::slice::from_mut(&mut f))
    }

    /// Part A: this domain's own table.
    fn own_table() {
        let table = core::ptr::addr_of!(TABLE);
        let status = core::ptr::addr_of!(STATUS);
        let (data, window, other) =
            (core::ptr::addr_of!(DATA), core::ptr::addr_of!(WINDOW), core::ptr::addr_of!(OTHER));
        show("version at start", get_version(DOMID_SELF));
        show("status frames on version 1", status_frames(DOMID_SELF, 1).1);
        let (st, frame) = setup_table(DOMID_SELF);
        show("setup_table", st);
        show("set_version 3", set_version(3));
        show("set_version 2", set_version(2));
        show("get_version", get_version(DOMID_SELF));
        let (rc, st, sframe) = status_frames(DOMID_SELF, 1);
        show("get_status_frames 1", (rc, st));
        show("get_status_frames 2", status_frames(DOMID_SELF, 2).1);
        show("map the table", remap(table, frame, RW, None));
        show("map the status frame", remap(status, sframe, RO, None));
        write(data, 0, b"version two grants, a page of them");
        write(other, 0, b"the other page");
        entry_v2(table, 1, PERMIT, 0, full(mfn(data)));
        entry_v2(table, 9, PERMIT, 0, full(mfn(data)));
        let m = map(9, 0, GNTMAP_HOST_MAP, window);
        show("map own full-page grant", m.status);
        println!("gntv2: reads through it: {}", read(window, 0, 18)[..18] == *b"version two grants");
        println!("gntv2: status word {:#x}, header {:#x}", status_word(status, 9), flags_of(table, 9, true));
        show("set_version 1 while mapped", set_version(1));
        show("swap while mapped", swap(9, 10));
        show("swap beyond the table", swap(10, 256));
        let mut r = GnttabUnmapAndReplace {
            host_addr: va(window),
            new_addr: va(other),
            handle: m.handle,
            ..FromZeros::new_zeroed()
        };
        show("unmap_and_replace", (op(GNTTABOP_UNMAP_AND_REPLACE, core::slice::from_mut(&mut r)), r.status));
        println!("gntv2: the window now shows the other page: {}", read(window, 0, 14)[..14] == *b"the other page");
        println!("gntv2: status word after: {:#x}", status_word(status, 9));
        show("unmap_and_replace again", {
            let rc = op(GNTTABOP_UNMAP_AND_REPLACE, core::slice::from_mut(&mut r));
            (rc, r.status)
        });
        restore(window);
        restore(other);
        // Sub-page: copied within its bytes, never mapped.
        entry_v2(table, 11, PERMIT | SUB, 0, sub(8, 10, mfn(data)));
        show("map a sub-page grant", map(11, 0, GNTMAP_HOST_MAP | GNTMAP_READONLY, window).status);
        show("copy inside the sub-page", copy_in(0, 11, 8, 10));
        println!("gntv2: copied {:?}", core::str::from_utf8(&read(core::ptr::addr_of!(TARGET), 0, 10)[..10]));
        show("copy before the sub-page", copy_in(0, 11, 7, 4));
        show("copy past the sub-page", copy_in(0, 11, 10, 10));
        show("copy across the page's end", copy_in(0, 11, 4090, 10));
        // Transitive grants of one's own: refused.
        entry_v2(table, 12, TRANS, 0, trans(0, 9));
        entry_v2(table, 13, TRANS, 0, trans(999, 9));
        show("transitive to itself", copy_in(0, 12, 0, 4));
        show("transitive to no domain", copy_in(0, 13, 0, 4));
        show("map a transitive grant", map(12, 0, GNTMAP_HOST_MAP | GNTMAP_READONLY, window).status);
        println!("gntv2: status words left {:#x} {:#x}", status_word(status, 12), status_word(status, 13));
        // Swapping idle entries, with their status.
        entry_v2(table, 10, PERMIT, 0, full(mfn(core::ptr::addr_of!(TARGET))));
        show("swap 9 and 10", swap(9, 10));
        let r9 = read(table, 9 * 16 + 8, 8);
        let r10 = read(table, 10 * 16 + 8, 8);
        let frame_of = |r: [u8; 32]| u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]);
        println!("gntv2: swapped: {}", frame_of(r9) == mfn(core::ptr::addr_of!(TARGET)) && frame_of(r10) == mfn(data));
        pin_limit();
        show("cache_flush clean", flush(mfn(data) << 12, 0, 64, GNTTAB_CACHE_CLEAN));
        show("cache_flush invalidate", flush(mfn(data) << 12, 0, 64, GNTTAB_CACHE_INVAL));
        show("cache_flush bad offset", flush(mfn(data) << 12, 4096, 0, GNTTAB_CACHE_CLEAN));
        show("cache_flush by reference", flush(9, 0, 64, GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_SOURCE_GREF));
        show("cache_flush beyond memory", flush(1 << 52, 0, 64, GNTTAB_CACHE_CLEAN));
        show("cache_flush nothing", flush(mfn(data) << 12, 0, 0, GNTTAB_CACHE_CLEAN));
        // Back to version 1: not with a transitive reserved entry, not while
        // the status frame is mapped; reserved entries come along.
        entry_v2(table, 2, TRANS, 0, trans(1, 1));
        show("set_version 1 with a transitive reserved entry", set_version(1));
        entry_v2(table, 2, 0, 0, [0; 12]);
        show("set_version 1 with the status frame mapped", set_version(1));
        restore(status);
        show("set_version 1", set_version(1));
        let e1 = read(table, 8, 8);
        let (flags, dom, fr) = (
            u16::from_le_bytes([e1[0], e1[1]]),
            u16::from_le_bytes([e1[2], e1[3]]),
            u32::from_le_bytes([e1[4], e1[5], e1[6], e1[7]]),
        );
        println!("gntv2: reserved entry 1 kept: {}", flags == PERMIT && dom == 0 && u64::from(fr) == mfn(data));
        println!("gntv2: entry 9 cleared: {}", read(table, 72, 8)[..8] == [0; 8]);
        show("status frames on version 1 again", status_frames(DOMID_SELF, 1).1);
        show("set_version 2 again", set_version(2));
        let (_, _, sframe) = status_frames(DOMID_SELF, 1);
        show("map the new status frame", remap(status, sframe, RO, None));
    }

    /// 128 uses of one kind per entry, then Xen refuses.
    fn pin_limit() {
        let mut handles = [0u32; 200];
        let mut n = 0;
        let bus = loop {
            let m = map(10, 0, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, core::ptr::null());
            if m.status != GNTST_OKAY {
                break m.status;
            }
            if let Some(h) = handles.get_mut(n) {
                *h = m.handle;
            }
            n += 1;
            if n >= handles.len() {
                fail("no limit to an entry's uses");
            }
        };
        println!("gntv2: device mappings of one entry: {n}, then {bus}");
        let addr = mfn(core::ptr::addr_of!(DATA)) << 12;
        let undone = handles.iter().take(n).filter(|&&h| unmap(h, 0, addr) == GNTST_OKAY).count();
        println!("gntv2: unmapped {undone}");
    }

    /// The helper domain's code: `grant_table_op(set_version, {2})`, then
    /// `sched_op(shutdown, {poweroff})`.
    fn helper_code() -> [u8; 64] {
        let code: [&[u8]; 12] = [
            &[0xc7, 0x44, 0x24, 0xf8, 2, 0, 0, 0], // mov dword [rsp-8], 2
            &[0xbf, 8, 0, 0, 0],                   // mov edi, GNTTABOP_set_version
            &[0x48, 0x8d, 0x74, 0x24, 0xf8],       // lea rsi, [rsp-8]
            &[0xba, 1, 0, 0, 0],                   // mov edx, 1
            &[0xb8, 20, 0, 0, 0],                  // mov eax, __HYPERVISOR_grant_table_op
            &[0x0f, 0x05],                         // syscall
            &[0xc7, 0x44, 0x24, 0xf0, 0, 0, 0, 0], // mov dword [rsp-16], SHUTDOWN_poweroff
            &[0xbf, 2, 0, 0, 0],                   // mov edi, SCHEDOP_shutdown
            &[0x48, 0x8d, 0x74, 0x24, 0xf0],       // lea rsi, [rsp-16]
            &[0xb8, 29, 0, 0, 0],                  // mov eax, __HYPERVISOR_sched_op
            &[0x0f, 0x05],                         // syscall
            &[0x0f, 0x0b],                         // ud2
        ];
        let mut c = [0u8; 64];
        let mut n = 0;
        for bytes in code {
            c[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        }
        c
    }

    /// Writes frame `frame` of domain `id` through SCRATCH.
    fn write_foreign(id: u16, frame: u64, fill: impl FnOnce(&mut [u8; 4096])) {
        let scratch = core::ptr::addr_of!(SCRATCH);
        if remap(scratch, frame, RW, Some(id)).is_err() {
            fail("mapping a frame of the helper");
        }
        // SAFETY: the frame is mapped writable at SCRATCH until restored.
        fill(unsafe { &mut *(va(scratch) as *mut [u8; 4096]) });
        restore(scratch);
    }

    /// Builds the helper domain, which switches its table to version 2 and
    /// powers off; returns its ID and its table frame.
    fn build_helper(dom_exc: u32) -> (u16, u64) {
        const CODE_VA: u64 = 0x40_0000;
        let mut config = XenDomctlCreatedomain::new_zeroed();
        (config.max_vcpus, config.grant_opts, config.max_grant_frames, config.max_maptrack_frames) = (1, 2, -1, -1);
        config.max_evtchn_port = 1023;
        let Ok(id) = hypercall::domain_create(0, config) else { fail("createdomain") };
        let mut mfns = [0u64, 1, 2, 3, 4, 5];
        if hypercall::domain_max_mem(id, 64 * 4).is_err() || hypercall::populate_physmap_for(id, &mut mfns, 0) != Ok(6)
        {
            fail("memory for the helper");
        }
        let [l4, l3, l2, l1, code, stack] = mfns;
        let set = |p: &mut [u8; 4096], slot: usize, v: u64| p[slot * 8..slot * 8 + 8].copy_from_slice(&v.to_le_bytes());
        write_foreign(id, l4, |p| set(p, 0, (l3 << 12) | RW));
        write_foreign(id, l3, |p| set(p, 0, (l2 << 12) | RW));
        write_foreign(id, l2, |p| set(p, ((CODE_VA >> 21) & 511) as usize, (l1 << 12) | RW));
        write_foreign(id, l1, |p| {
            set(p, 0, (code << 12) | RO);
            set(p, 1, (stack << 12) | RW);
        });
        let text = helper_code();
        write_foreign(id, code, |p| p[..text.len()].copy_from_slice(&text));
        let (st, table) = setup_table(id);
        show("setup_table of the helper", st);
        let mut g = VcpuGuestContext::new_zeroed();
        g.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
        (g.user_regs.rip, g.user_regs.rsp) = (CODE_VA, CODE_VA + 0x2000);
        (g.user_regs.cs, g.user_regs.ss, g.user_regs.rflags) = (0xe033, 0xe02b, 0x200);
        (g.kernel_ss, g.kernel_sp, g.ctrlreg[3]) = (0xe02b, CODE_VA + 0x2000, l4 << 12);
        if hypercall::domain_max_vcpus(id, 1).is_err() || hypercall::domain_set_vcpu_context(id, 0, &g).is_err() {
            fail("the helper's vCPU");
        }
        let _ = events::take(dom_exc);
        if hypercall::domain_unpause(id).is_err() {
            fail("unpausedomain");
        }
        events::wait_for(dom_exc);
        (id, table)
    }

    /// Part B: a transitive grant through the helper's table, and a transfer.
    fn with_helper() {
        let Ok(dom_exc) = hypercall::evtchn_bind_virq(VIRQ_DOM_EXC, 0) else { fail("bind VIRQ_DOM_EXC") };
        let (id, frame) = build_helper(dom_exc);
        show("the helper's version", get_version(id));
        let (rc, st, sframe) = status_frames(id, 1);
        show("the helper's status frames", (rc, st));
        let (htable, hstatus) = (core::ptr::addr_of!(HTABLE), core::ptr::addr_of!(HSTATUS));
        show("map the helper's table", remap(htable, frame, RW, Some(id)));
        show("map the helper's status frame", remap(hstatus, sframe, RO, Some(id)));
        let (table, data) = (core::ptr::addr_of!(TABLE), core::ptr::addr_of!(DATA));
        // This domain grants a sub-page to the helper, which passes it back.
        entry_v2(table, 20, PERMIT | SUB, id, sub(8, 10, mfn(data)));
        entry_v2(htable, 10, TRANS, 0, trans(0, 20));
        write(core::ptr::addr_of!(TARGET), 0, &[0; 16]);
        show("transitive copy", copy_in(id, 10, 8, 10));
        println!("gntv2: copied {:?}", core::str::from_utf8(&read(core::ptr::addr_of!(TARGET), 0, 10)[..10]));
        show("transitive copy beyond the inner sub-page", copy_in(id, 10, 8, 11));
        println!(
            "gntv2: status words after: {:#x} {:#x}",
            status_word(hstatus, 10),
            status_word(core::ptr::addr_of!(STATUS), 20)
        );
        show(
            "map the transitive grant",
            map(10, id, GNTMAP_HOST_MAP | GNTMAP_READONLY, core::ptr::addr_of!(WINDOW)).status,
        );
        entry_v2(table, 21, TRANS, id, trans(id, 10));
        entry_v2(htable, 11, TRANS, 0, trans(0, 21));
        entry_v2(htable, 12, TRANS, 0, trans(id, 10));
        entry_v2(htable, 13, TRANS, 0, trans(0, 9));
        show("transitive twice", copy_in(id, 11, 0, 4));
        show("transitive to its own granter", copy_in(id, 12, 0, 4));
        show("transitive to a grant not made to the helper", copy_in(id, 13, 0, 4));
        // A transfer of a page to the helper.
        let gift = core::ptr::addr_of!(GIFT);
        let gift_mfn = mfn(gift);
        entry_v2(htable, 14, GTF_ACCEPT_TRANSFER as u16, 0, full(100));
        let before = hypercall::domain_getinfo(id).map_or(0, |i| i.tot_pages);
        let transfer = |frame: u64, gref: u32| {
            let mut t = GnttabTransfer::new_zeroed();
            (t.mfn, t.domid, t.ref_) = (frame, id, gref);
            let rc = op(GNTTABOP_TRANSFER, core::slice::from_mut(&mut t));
            (rc, t.status)
        };
        show("transfer of a mapped page", transfer(gift_mfn, 14));
        show("unmap it", hypercall::update_va_mapping(va(gift), 0, 2));
        show("transfer", transfer(gift_mfn, 14));
        let after = hypercall::domain_getinfo(id).map_or(0, |i| i.tot_pages);
        let e = read(htable, 14 * 16, 16);
        let frame = u64::from_le_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]);
        println!(
            "gntv2: transferred: flags {:#x}, the entry names the page: {}, the helper has one more page: {}",
            u16::from_le_bytes([e[0], e[1]]),
            frame == gift_mfn,
            after == before + 1
        );
        show("transfer it again", transfer(gift_mfn, 14));
        restore(htable);
        restore(hstatus);
        show("destroy the helper", hypercall::domain_destroy(id));
    }

    fn main(si: &'static StartInfo) -> ! {
        MFN_LIST.store(si.mfn_list, SeqCst);
        if events::init(si).is_err() {
            fail("event setup");
        }
        println!("gntv2: start");
        own_table();
        with_helper();
        println!("gntv2: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
