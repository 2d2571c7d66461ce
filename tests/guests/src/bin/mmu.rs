//! The PV MMU's frame table as a guest sees it: builds a fresh 4-level
//! address space (a copy of its current L4's slots plus a new L3→L2→L1
//! chain in the lower half), links it with `mmu_update`, pins it, switches
//! to it with `NEW_BASEPTR` and runs there; then tries what Xen refuses,
//! each with its errno, checking after each that its memory still works;
//! then switches back and tears the new tables down, and shows their
//! frames are plain writable memory again. Last, it trades two frames for
//! one machine-contiguous extent below 4 GiB (`XENMEM_exchange`, as Linux's
//! swiotlb-xen does) and checks what it got. A wrong result crashes it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;

    use guest_abi::arch_x86::GuestHandle;
    use guest_abi::hypercall;
    use guest_abi::memory::{MemoryExchange, MemoryReservation};
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{
        MmuUpdate, MmuextOp, StartInfo, DOMID_SELF, MMUEXT_CLEAR_PAGE, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE,
        MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE, UVMF_INVLPG,
    };
    use guest_abi::XenError;
    use guest_rt::println;
    use zerocopy::FromZeros;

    const M2P: u64 = 0xffff_8000_0000_0000;
    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// Where the new address space maps DATA a second time (L4 slot 1).
    const ALIAS_VA: u64 = 0x80_0000_0000;
    /// P | RW | A | D; P | A (read-only).
    const RW: u64 = 0x63;
    const RO: u64 = 0x21;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// The new L4, L3, L2 and L1.
    static mut TABLES: [Page; 4] = [const { Page([0; 4096]) }; 4];
    /// A data page mapped at its kernel address and at ALIAS_VA.
    static mut DATA: Page = Page([0; 4096]);
    /// A page mapped writable (never a page table).
    static mut SCRATCH: Page = Page([0; 4096]);

    fn fail(what: &str) -> ! {
        println!("mmu: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn check(ok: bool, what: &str) {
        if !ok {
            fail(what);
        }
        println!("mmu: ok: {what}");
    }

    fn read_cr3() -> u64 {
        let v: u64;
        // SAFETY: a PV kernel's read of %cr3 is emulated by the hypervisor.
        unsafe { asm!("mov {}, cr3", out(reg) v) };
        v
    }

    fn table_va(i: usize) -> u64 {
        // SAFETY: only the address is taken.
        unsafe { core::ptr::addr_of!(TABLES[i]) as u64 }
    }

    fn data_va() -> u64 {
        core::ptr::addr_of!(DATA) as u64
    }

    fn scratch_va() -> u64 {
        core::ptr::addr_of!(SCRATCH) as u64
    }

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    /// The kernel address of a frame of the initial mapping (through the M2P).
    fn kva_of_mfn(mfn: u64) -> u64 {
        // SAFETY: the M2P is mapped read-only for PV guests.
        let pfn = unsafe { ((M2P + mfn * 8) as *const u64).read_volatile() };
        VIRT_BASE + pfn * 4096
    }

    fn peek(va: u64) -> u64 {
        // SAFETY: `va` is a mapped, 8-aligned address of this test.
        unsafe { (va as *const u64).read_volatile() }
    }

    fn poke(va: u64, v: u64) {
        // SAFETY: `va` is a mapped, writable, 8-aligned address of this test.
        unsafe { (va as *mut u64).write_volatile(v) }
    }

    fn mmu_update(ptr: u64, val: u64) -> Result<(), XenError> {
        // SAFETY: the updates touch only this test's own pages and tables.
        unsafe { hypercall::mmu_update(&[MmuUpdate { ptr, val }], DOMID_SELF) }.map(drop)
    }

    fn ext(cmd: u32, mfn: u64) -> Result<(), XenError> {
        // SAFETY: as in mmu_update.
        unsafe { hypercall::mmuext_op(&[MmuextOp::new(cmd, mfn, 0)], DOMID_SELF) }.map(drop)
    }

    fn remap(va: u64, pte: u64) -> Result<(), XenError> {
        hypercall::update_va_mapping(va, pte, u64::from(UVMF_INVLPG))
    }

    /// The data page reads back through both mappings (or just one before
    /// the alias exists).
    fn memory_works(alias: bool, what: &str) {
        static mut STAMP: u64 = 0x1000;
        // SAFETY: single-threaded test kernel.
        let stamp = unsafe {
            STAMP += 1;
            STAMP
        };
        poke(data_va() + 8, stamp);
        let ok = peek(data_va() + 8) == stamp && (!alias || peek(ALIAS_VA + 8) == stamp);
        poke(scratch_va(), stamp);
        if !(ok && peek(scratch_va()) == stamp) {
            fail(what);
        }
    }

    fn refused(r: Result<(), XenError>, want: XenError, what: &str, alias: bool) {
        if r != Err(want) {
            println!("mmu: {what}: got {r:?}, wanted {want:?}");
            fail(what);
        }
        memory_works(alias, what);
        println!("mmu: ok: refused: {what}: {want:?}");
    }

    fn main(si: &'static StartInfo) -> ! {
        let old_l4 = read_cr3() >> 12;
        let [l4, l3, l2, l1] = [0, 1, 2, 3].map(|i| mfn_of(si, table_va(i)));
        let data = mfn_of(si, data_va());
        println!("mmu: start: cr3 {old_l4:#x}, new tables {l4:#x} {l3:#x} {l2:#x} {l1:#x}");

        // While the pages are still ours to write: the new L4 is a copy of
        // the current one (the hypervisor slots it refills itself), the
        // new L1 maps DATA.
        for i in 0..512u64 {
            poke(table_va(0) + i * 8, peek(kva_of_mfn(old_l4) + i * 8));
        }
        poke(table_va(3), (data << 12) | RW);
        // Page tables may have no writable mapping: make them read-only.
        for i in 0..4 {
            check(remap(table_va(i), (mfn_of(si, table_va(i)) << 12) | RO).is_ok(), "a table page made read-only");
        }

        // Link bottom-up with mmu_update; the L1 is validated through the
        // link (it is never pinned).
        check(ext(MMUEXT_PIN_L2_TABLE, l2).is_ok(), "pin the empty L2");
        check(mmu_update(l2 << 12, (l1 << 12) | RW).is_ok(), "link the L1 into the L2 (validates it)");
        check(ext(MMUEXT_PIN_L3_TABLE, l3).is_ok(), "pin the empty L3");
        check(mmu_update(l3 << 12, (l2 << 12) | RW).is_ok(), "link the L2 into the L3");
        check(ext(MMUEXT_PIN_L4_TABLE, l4).is_ok(), "pin the new L4 (a copy of the current one)");
        check(mmu_update((l4 << 12) + 8, (l3 << 12) | RW).is_ok(), "link the L3 into L4 slot 1");
        check(ext(MMUEXT_NEW_BASEPTR, l4).is_ok(), "switch to the new L4");
        check(read_cr3() >> 12 == l4, "cr3 is the new L4");
        poke(ALIAS_VA, 0x600d_cafe);
        check(peek(data_va()) == 0x600d_cafe, "running on the new L4: a write through the new mapping is seen");
        memory_works(true, "memory after the switch");

        // What Xen refuses.
        let scratch = mfn_of(si, scratch_va());
        // Frame 0x200 holds the hypervisor's image (the first MiB would be
        // legacy I/O, which a privileged domain may map, as on Xen).
        refused(remap(scratch_va(), (0x200 << 12) | RW), XenError::Ebusy, "mapping a frame not owned", true);
        refused(remap(scratch_va(), (l1 << 12) | RW), XenError::Ebusy, "mapping an own L1 writable", true);
        refused(remap(scratch_va(), (l4 << 12) | RW), XenError::Ebusy, "mapping the running L4 writable", true);
        refused(mmu_update((l4 << 12) + 256 * 8, 0), XenError::Einval, "clearing an L4 hypervisor slot", true);
        refused(
            mmu_update((l4 << 12) + 260 * 8, (l3 << 12) | RW),
            XenError::Einval,
            "writing an L4 hypervisor slot",
            true,
        );
        refused(ext(MMUEXT_PIN_L1_TABLE, scratch), XenError::Einval, "pinning a frame mapped writable", true);
        refused(ext(MMUEXT_UNPIN_TABLE, l1), XenError::Einval, "unpinning a linked, unpinned L1", true);
        refused(ext(MMUEXT_PIN_L2_TABLE, l1), XenError::Einval, "retyping an L1 in use as an L2", true);
        refused(ext(MMUEXT_CLEAR_PAGE, l2), XenError::Einval, "clearing an L2 in use", true);
        refused(ext(MMUEXT_PIN_L4_TABLE, l4), XenError::Einval, "pinning a pinned L4", true);
        refused(mmu_update((l2 << 12) + 8, (data << 12) | 0xe3), XenError::Einval, "an L2 superpage (PSE)", true);
        refused(mmu_update((l4 << 12) + 16, (l4 << 12) | RW), XenError::Einval, "a writable linear L4 entry", true);
        refused(mmu_update((l2 << 12) + 8, (l3 << 12) | RO), XenError::Einval, "an L2 naming an L3", true);

        // A read-only recursive slot (Xen's pv-linear-pt): the running L4
        // reads as a page at the address whose every index is that slot.
        check(mmu_update((l4 << 12) + 16, (l4 << 12) | RO).is_ok(), "a read-only recursive L4 slot");
        let recursive = (2u64 << 39) | (2 << 30) | (2 << 21) | (2 << 12);
        check(peek(recursive + 16) >> 12 & 0xff_ffff_ffff == l4, "the L4 reads through its recursive slot");
        refused(remap(recursive, (data << 12) | RW), XenError::Einval, "remapping through the recursive slot", true);
        check(mmu_update((l4 << 12) + 16, 0).is_ok(), "the recursive slot removed");
        // A frame that is no page table takes mmu_update as a plain write
        // (Xen's default case); one of another domain's (here the
        // hypervisor's image) does not.
        check(mmu_update((scratch << 12) + 8, 0x1234_5000).is_ok(), "mmu_update to plain memory writes it");
        check(peek(scratch_va() + 8) == 0x1234_5000, "and the value is there");
        refused(mmu_update(0x200 << 12, 0), XenError::Einval, "an entry of a frame not its own", true);

        // Back to the builder's tables; tear the new ones down.
        check(ext(MMUEXT_NEW_BASEPTR, old_l4).is_ok(), "switch back to the builder's L4");
        check(read_cr3() >> 12 == old_l4, "cr3 is the builder's L4 again");
        for (mfn, what) in [(l4, "unpin the new L4"), (l3, "unpin the L3"), (l2, "unpin the L2")] {
            check(ext(MMUEXT_UNPIN_TABLE, mfn).is_ok(), what);
        }
        for i in 0..4 {
            let ok = remap(table_va(i), (mfn_of(si, table_va(i)) << 12) | RW).is_ok();
            check(ok, "a former table page maps writable again (its counts are back to zero)");
        }
        poke(table_va(3), 0);
        memory_works(false, "memory after the teardown");
        check(ext(MMUEXT_UNPIN_TABLE, old_l4).is_ok(), "unpin the builder's L4 (Linux does)");
        check(ext(MMUEXT_PIN_L4_TABLE, old_l4).is_ok(), "and pin it again");
        exchange(si);
        println!("mmu: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn reservation(list: &mut [u64], order: u32, mem_flags: u32) -> MemoryReservation {
        let mut r = MemoryReservation::new_zeroed();
        (r.extent_start, r.nr_extents) = (GuestHandle::from_mut_ptr(list.as_mut_ptr()), list.len() as u64);
        (r.extent_order, r.mem_flags, r.domid) = (order, mem_flags, DOMID_SELF);
        r
    }

    /// `XENMEM_exchange` of the frames `ins` (order 0) for one order-1
    /// extent at `out[0]` (a gpfn; the MFN comes back in its place), below
    /// `2^bits` bytes; the result and `nr_exchanged`.
    fn trade(ins: &mut [u64], out: &mut [u64; 1], bits: u32) -> (Result<(), XenError>, u64) {
        let mut e = MemoryExchange::new_zeroed();
        (e.in_, e.out_) = (reservation(ins, 0, 0), reservation(out, 1, bits));
        // SAFETY: the input frames are mapped nowhere and nothing refers
        // to them; both lists live across the call.
        let r = unsafe { hypercall::memory_exchange(&mut e) };
        (r, e.nr_exchanged)
    }

    /// Trades the domain's last two frames (beyond the initial mapping) for
    /// a contiguous extent below 4 GiB at the same pfns, as Linux's
    /// `xen_create_contiguous_region` does, and checks the result.
    fn exchange(si: &StartInfo) {
        let (scratch, data) = (mfn_of(si, scratch_va()), mfn_of(si, data_va()));
        let pfn = si.nr_pages - 2;
        let p2m = |i: u64| si.mfn_list + (pfn + i) * 8;
        let old = [peek(p2m(0)), peek(p2m(1))];
        let before = hypercall::current_reservation(DOMID_SELF);
        let (r, done) = trade(&mut [old[0], data], &mut [pfn], 32);
        if (r, done) != (Err(XenError::Einval), 0) {
            fail("exchanging a mapped frame");
        }
        memory_works(false, "memory after a refused exchange");
        println!("mmu: ok: refused: exchanging a mapped frame: Einval");
        let mut out = [pfn];
        let (r, done) = trade(&mut old.clone(), &mut out, 32);
        check(r.is_ok() && done == 2, "exchange two frames for one contiguous extent below 4 GiB");
        let mfn = out[0];
        // SAFETY: the M2P is mapped read-only for PV guests.
        let m2p = |m: u64| unsafe { ((M2P + m * 8) as *const u64).read_volatile() };
        let placed = mfn.is_multiple_of(2) && mfn + 2 <= 1 << 20 && m2p(mfn) == pfn && m2p(mfn + 1) == pfn + 1;
        check(placed, "the extent is aligned, below 4 GiB, in the M2P at its pfns");
        poke(p2m(0), mfn);
        poke(p2m(1), mfn + 1);
        check(hypercall::current_reservation(DOMID_SELF) == before, "the reservation is the same");
        for m in [mfn, mfn + 1] {
            check(remap(scratch_va(), (m << 12) | RW).is_ok(), "a new frame maps writable");
            poke(scratch_va() + 16, 0x5ca1_ab1e ^ m);
        }
        check(remap(scratch_va(), (mfn << 12) | RW).is_ok(), "the first again");
        check(peek(scratch_va() + 16) == 0x5ca1_ab1e ^ mfn, "each frame holds what was written to it");
        check(remap(scratch_va(), (scratch << 12) | RW).is_ok(), "the scratch page mapped back");
        // SAFETY: the old frames are no longer this domain's: refused.
        let given = unsafe { hypercall::decrease_reservation(&mut old.clone(), 0) };
        check(given == Ok(0), "the old frames are no longer its own (decrease_reservation finds none)");
        memory_works(false, "memory after the exchange");
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
