//! Two domains sharing memory through grant tables, and the attacks on it.
//! Command line: `grants granter peer=D` sets up its table, grants a page
//! to domain D (and one read-only), offers an event channel and then
//! follows D's steps; `grants mapper peer=D port=P` binds that channel (D's port P), maps the
//! grant, writes through it, copies both ways, tries what must be refused,
//! and unmaps. At each step each side prints what it saw; a wrong result
//! crashes the domain that saw it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{fence, AtomicU16, Ordering};

    use guest_abi::grant_table::*;
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF};
    use guest_abi::XenError;
    use guest_rt::{events, println};
    use zerocopy::FromZeros;

    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// The shared, read-write grant; the read-only one; one for nobody here.
    const GREF_RW: u32 = 8;
    const GREF_RO: u32 = 9;
    const GREF_OTHER: u32 = 10;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// granter: where its grant table is mapped; mapper: where the grant is.
    static mut WINDOW: Page = Page([0; 4096]);
    /// granter: the page granted read-write; mapper: a page of its own.
    static mut SHARED: Page = Page([0; 4096]);
    /// granter: the page granted read-only.
    static mut READ_ONLY: Page = Page([0; 4096]);

    fn arg(cmdline: &str, key: &str) -> Option<u32> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn fail(what: &str) -> ! {
        println!("grants: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn check(ok: bool, what: &str) {
        if !ok {
            fail(what);
        }
        println!("grants: ok: {what}");
    }

    fn page_va(p: *const Page) -> u64 {
        p as u64
    }

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    fn read(va: u64, len: usize) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().take(len).enumerate() {
            // SAFETY: `va..va+len` is a mapped page of this test.
            *b = unsafe { ((va + i as u64) as *const u8).read_volatile() };
        }
        out
    }

    fn write(va: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: `va..` is a mapped, writable page of this test.
            unsafe { ((va + i as u64) as *mut u8).write_volatile(*b) };
        }
    }

    fn same(va: u64, text: &[u8]) -> bool {
        read(va, text.len())[..text.len()] == *text
    }

    /// The flags word of entry `gref` of the table mapped at WINDOW.
    fn flags(gref: u32) -> &'static AtomicU16 {
        // SAFETY: the table frame is mapped at WINDOW and entry flags are
        // 2-byte aligned; the hypervisor updates them atomically too.
        unsafe { &*((page_va(core::ptr::addr_of!(WINDOW)) + u64::from(gref) * 8) as *const AtomicU16) }
    }

    /// Writes entry `gref`: frame and domain first, then the flags.
    fn grant(gref: u32, domid: u16, frame: u64, gtf: u16) {
        let entry = page_va(core::ptr::addr_of!(WINDOW)) + u64::from(gref) * 8;
        write(entry + 2, &domid.to_le_bytes());
        write(entry + 4, &(frame as u32).to_le_bytes());
        fence(Ordering::Release);
        flags(gref).store(gtf, Ordering::Release);
    }

    /// Ends the grant as a granter does: flags to 0, unless in use.
    fn revoke(gref: u32) -> bool {
        let f = flags(gref);
        let old = f.load(Ordering::Acquire);
        old & (GTF_READING | GTF_WRITING) as u16 == 0
            && f.compare_exchange(old, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn granter(si: &StartInfo, peer: u16) -> ! {
        let mut frames = [0u64; 1];
        let setup = hypercall::gnttab_setup_table(&mut frames);
        check(setup.is_ok_and(|op| op.status == GNTST_OKAY), "setup_table gives a frame");
        let window = page_va(core::ptr::addr_of!(WINDOW));
        check(hypercall::update_va_mapping(window, (frames[0] << 12) | 0x67, 2).is_ok(), "the table maps writable");
        let shared = page_va(core::ptr::addr_of!(SHARED));
        let read_only = page_va(core::ptr::addr_of!(READ_ONLY));
        write(shared, b"hello from d0");
        write(read_only + 100, b"read-only data");
        grant(GREF_RW, peer, mfn_of(si, shared), GTF_PERMIT_ACCESS as u16);
        grant(GREF_RO, peer, mfn_of(si, read_only), (GTF_PERMIT_ACCESS | GTF_READONLY) as u16);
        grant(GREF_OTHER, peer + 1, mfn_of(si, shared), GTF_PERMIT_ACCESS as u16);
        let Ok(port) = hypercall::evtchn_alloc_unbound(peer) else { fail("alloc_unbound") };
        check(hypercall::evtchn_alloc_unbound(peer + 1).is_ok(), "a port offered to another domain");
        println!("grants: granter: port {port} offered to d{peer}");

        events::wait_for(port); // the mapper has mapped, written and copied
        check(same(shared, b"hello from d1"), "the mapper's write is in the granted page");
        check(same(shared + 100, b"read-only data"), "the mapper's grant copy arrived");
        check(flags(GREF_RW).load(Ordering::Acquire) & (GTF_READING | GTF_WRITING) as u16 != 0, "in use while mapped");
        check(!revoke(GREF_RW), "revoking while mapped is refused");
        let _ = hypercall::evtchn_send(port);

        events::wait_for(port); // unmapped
        check(flags(GREF_RW).load(Ordering::Acquire) == GTF_PERMIT_ACCESS as u16, "no longer in use after unmap");
        check(revoke(GREF_RW), "revoking after unmap succeeds");
        let _ = hypercall::evtchn_send(port);

        events::wait_for(port); // the mapper is done
        check(flags(GREF_RO).load(Ordering::Acquire) == (GTF_PERMIT_ACCESS | GTF_READONLY) as u16, "r/o grant idle");
        println!("grants: granter done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn map_op(gref: u32, dom: u16, flags: u32) -> GnttabMapGrantRef {
        let mut op = GnttabMapGrantRef::new_zeroed();
        (op.host_addr, op.flags, op.ref_, op.dom) = (page_va(core::ptr::addr_of!(WINDOW)), flags, gref, dom);
        op
    }

    fn map(gref: u32, dom: u16, flags: u32) -> GnttabMapGrantRef {
        let mut op = [map_op(gref, dom, flags)];
        // SAFETY: WINDOW is only read and written through raw pointers.
        if unsafe { hypercall::gnttab_map(&mut op) }.is_err() {
            fail("map_grant_ref hypercall");
        }
        op[0]
    }

    fn unmap(handle: u32) -> i16 {
        let mut op = [GnttabUnmapGrantRef::new_zeroed()];
        (op[0].host_addr, op[0].handle) = (page_va(core::ptr::addr_of!(WINDOW)), handle);
        // SAFETY: nothing references WINDOW after this.
        if unsafe { hypercall::gnttab_unmap(&mut op) }.is_err() {
            fail("unmap_grant_ref hypercall");
        }
        op[0].status
    }

    fn copy(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u32) -> i16 {
        let mut op = [GnttabCopy::new_zeroed()];
        (op[0].source.u, op[0].source.domid, op[0].source.offset) = src;
        (op[0].dest.u, op[0].dest.domid, op[0].dest.offset) = dst;
        (op[0].len, op[0].flags) = (len, flags as u16);
        // SAFETY: the local destination, SHARED, is only used through raw pointers.
        if unsafe { hypercall::gnttab_copy(&mut op) }.is_err() {
            fail("grant copy hypercall");
        }
        op[0].status
    }

    fn mapper(si: &StartInfo, peer: u16, remote: u32) -> ! {
        let port = loop {
            match hypercall::evtchn_bind_interdomain(peer, remote) {
                Ok(p) => break p,
                Err(XenError::Einval) => {
                    let _ = hypercall::sched_yield();
                }
                Err(_) => fail("bind_interdomain"),
            }
        };
        events::wait_for(port);
        let not_ours = hypercall::evtchn_bind_interdomain(peer, remote + 1);
        check(not_ours == Err(XenError::Einval), "binding a port offered to another domain: EINVAL");

        let m = map(GREF_RW, peer, GNTMAP_HOST_MAP);
        check(m.status == GNTST_OKAY, "map_grant_ref of the shared page");
        let window = page_va(core::ptr::addr_of!(WINDOW));
        check(same(window, b"hello from d0"), "the granter's data reads through the mapping");
        write(window, b"hello from d1");

        let own = page_va(core::ptr::addr_of!(SHARED));
        let own_mfn = mfn_of(si, own);
        let status = copy((GREF_RO.into(), peer, 100), (own_mfn, DOMID_SELF, 0), 14, GNTCOPY_SOURCE_GREF);
        check(status == GNTST_OKAY && same(own, b"read-only data"), "grant copy from the peer");
        let status = copy((own_mfn, DOMID_SELF, 0), (GREF_RW.into(), peer, 100), 14, GNTCOPY_DEST_GREF);
        check(status == GNTST_OKAY, "grant copy to the peer");

        let attacks: [(GnttabMapGrantRef, i16, &str); 4] = [
            (
                map_op(GREF_OTHER, peer, GNTMAP_HOST_MAP),
                GNTST_GENERAL_ERROR,
                "mapping a grant meant for another domain",
            ),
            (map_op(GREF_RO, peer, GNTMAP_HOST_MAP), GNTST_GENERAL_ERROR, "mapping a read-only grant writable"),
            (map_op(100_000, peer, GNTMAP_HOST_MAP), GNTST_BAD_GNTREF, "an out-of-range reference"),
            (map_op(GREF_RW, 99, GNTMAP_HOST_MAP), GNTST_BAD_DOMAIN, "a granter that does not exist"),
        ];
        for (op, want, what) in attacks {
            let mut op = [op];
            // SAFETY: refused maps change nothing.
            let ok = unsafe { hypercall::gnttab_map(&mut op) }.is_ok() && op[0].status == want;
            check(ok, what);
        }
        let status = copy((own_mfn, DOMID_SELF, 4000), (GREF_RW.into(), peer, 0), 200, GNTCOPY_DEST_GREF);
        check(status == GNTST_BAD_COPY_ARG, "a copy across a page boundary");
        let status =
            copy((GREF_RO.into(), peer, 0), (GREF_RO.into(), peer, 0), 8, GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF);
        check(status == GNTST_GENERAL_ERROR, "a copy into a read-only grant");
        let _ = hypercall::evtchn_send(port);

        events::wait_for(port); // the granter tried to revoke
        check(unmap(m.handle) == GNTST_OKAY, "unmap_grant_ref");
        check(unmap(m.handle) == GNTST_BAD_HANDLE, "unmapping twice: bad handle");
        let _ = hypercall::evtchn_send(port);

        events::wait_for(port); // revoked
        check(map(GREF_RW, peer, GNTMAP_HOST_MAP).status == GNTST_GENERAL_ERROR, "mapping after revocation");
        let _ = hypercall::evtchn_send(port);
        println!("grants: mapper done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let peer = arg(cmdline, "peer").unwrap_or(0) as u16;
        if events::init(si).is_err() {
            fail("event setup");
        }
        if cmdline.starts_with("granter") {
            granter(si, peer)
        } else {
            mapper(si, peer, arg(cmdline, "port").unwrap_or(1))
        }
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
