//! A hostile unprivileged domain: one class of attack on the hypervisor's
//! time per window, each as hard as the ABI lets a domU push it, while a
//! `neighbour` domain measures the CPU share it keeps.
//!
//! Command line: `hostile from_ms=A window_ms=W gap_ms=G domid=D
//! classes=base,multicall,pin,maptrack:MS,memop,console`. Each class runs
//! in a window of `W` ms (or `MS`), the first from system time `A`, each
//! after the previous one and a gap of `G` ms: the neighbour's windows. In
//! the gap after a window the domain reports what it did and what the
//! hypervisor answered. The classes:
//! - `base`: spins (the reference window: two CPU-bound domains).
//! - `multicall`: multicalls whose every entry hits its batch budget and is
//!   continued (1024 `mmu_update`s, 600 `mmuext_op`s, a
//!   `console_io` write of 320 bytes, 1024 frames of `increase_reservation` then their
//!   `decrease_reservation`), each entry's result checked, and a nested
//!   multicall (`-EINVAL`).
//! - `pin`: builds an L4 → L3 → L2 → L1 tree of every frame it does not
//!   map (all untyped), then pins and unpins the L4 in a loop (each pin
//!   validates the whole tree); pinning it twice is `-EINVAL`.
//! - `maptrack`: grants a page to itself in many entries and maps it
//!   again and again (device mappings, read-only and writable): 128 uses
//!   of a kind per entry, then `GNTST_general_error`; a full maptrack is
//!   `GNTST_no_space`; then unmaps it all (twice is `GNTST_bad_handle`).
//! - `memop`: increase/decrease_reservation and populate_physmap at order
//!   9 (a domU's largest) in a loop; order 10 gets no extent, nor does a
//!   reservation past `max_pages`.
//! - `console`: `console_io` writes of 16,000 bytes in a loop (the rate limit
//!   drops what is over); a read is `-EPERM`, a bad buffer `-EFAULT`.
//!
//! Each report line starts `hostile: CLASS:`; a wrong answer from the
//! hypervisor is a `FAILED` line and a crash.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::arch_x86::GuestHandle;
    use guest_abi::grant_table::{
        GnttabMapGrantRef, GnttabUnmapGrantRef, GNTMAP_DEVICE_MAP, GNTMAP_READONLY, GNTST_BAD_HANDLE,
        GNTST_GENERAL_ERROR, GNTST_NO_SPACE, GNTST_OKAY,
    };
    use guest_abi::hypercall;
    use guest_abi::memory::{
        MemoryReservation, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP,
    };
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{
        MmuUpdate, MmuextOp, MulticallEntry, StartInfo, CONSOLEIO_READ, CONSOLEIO_WRITE, DOMID_SELF,
        HYPERVISOR_CONSOLE_IO, HYPERVISOR_MEMORY_OP, HYPERVISOR_MMUEXT_OP, HYPERVISOR_MMU_UPDATE, HYPERVISOR_MULTICALL,
        MMUEXT_CLEAR_PAGE, MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE,
    };
    use guest_abi::XenError;
    use guest_rt::{events, gnttab, println};
    use zerocopy::FromZeros;

    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// A page-table entry to a lower table: P | RW | A | D.
    const TABLE_ENTRY: u64 = 0x63;
    /// Frames kept back (given to the hypervisor) so that reservations
    /// have room to grow: two order-9 extents.
    const HEADROOM: usize = 1024;
    /// The largest order a domU may ask for (Xen's `CONFIG_DOMU_MAX_ORDER`).
    const MAX_ORDER: u32 = 9;
    /// Grant entries the maptrack flood maps (each 256 times): more handles
    /// than a domain's maptrack holds (1024 frames of 256 handles).
    const FLOOD_GRANTS: usize = 1100;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// The page the maptrack flood grants to itself.
    static mut GRANTED: Page = Page([0; 4096]);
    /// A plain page `mmu_update`s write to.
    static mut SCRATCH: Page = Page([0; 4096]);
    /// 16 KiB of console text (lines of 80).
    static mut TEXT: [u8; 16384] = [b'.'; 16384];
    /// Handles of the maptrack flood (more than a maptrack can hold).
    static mut HANDLES: [u32; FLOOD_GRANTS * 256] = [0; FLOOD_GRANTS * 256];
    /// Frames of the page-table tree (every frame the domain does not map).
    static mut POOL: [u64; 65536] = [0; 65536];
    /// The headroom's extents (MFNs while the domain holds them).
    static mut EXTENTS: [u64; HEADROOM] = [0; HEADROOM];

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn fail(what: core::fmt::Arguments) -> ! {
        println!("hostile: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
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

    fn pool() -> &'static mut [u64; 65536] {
        // SAFETY: single-threaded kernel; one user at a time.
        unsafe { &mut *core::ptr::addr_of_mut!(POOL) }
    }

    fn extents() -> &'static mut [u64; HEADROOM] {
        // SAFETY: as pool().
        unsafe { &mut *core::ptr::addr_of_mut!(EXTENTS) }
    }

    fn handles() -> &'static mut [u32; FLOOD_GRANTS * 256] {
        // SAFETY: as pool().
        unsafe { &mut *core::ptr::addr_of_mut!(HANDLES) }
    }

    fn reservation(list: *mut u64, n: u64, order: u32) -> MemoryReservation {
        let mut r = MemoryReservation::new_zeroed();
        (r.extent_start, r.nr_extents, r.extent_order, r.domid) =
            (GuestHandle::from_mut_ptr(list), n, order, DOMID_SELF);
        r
    }

    /// A raw `memory_op` reservation command: extents done or an error.
    fn memop(cmd: u32, list: *mut u64, n: u64, order: u32) -> i64 {
        let mut r = reservation(list, n, order);
        // SAFETY: the list is this kernel's, valid for `n` entries; the
        // frames named in a decrease are mapped nowhere.
        unsafe { hypercall::hypercall2(HYPERVISOR_MEMORY_OP, cmd.into(), core::ptr::addr_of_mut!(r) as u64) }
    }

    fn mmuext(ops: &[MmuextOp]) -> Result<u32, XenError> {
        // SAFETY: the operations touch only this domain's unmapped frames.
        unsafe { hypercall::mmuext_op(ops, DOMID_SELF) }
    }

    fn mmu(reqs: &[MmuUpdate]) -> Result<u32, XenError> {
        // SAFETY: the updates write this domain's unmapped or plain frames.
        unsafe { hypercall::mmu_update(reqs, DOMID_SELF) }
    }

    /// Runs `f` until `end`; how many times it ran.
    fn until(end: u64, mut f: impl FnMut()) -> u64 {
        let mut n = 0;
        while now() < end {
            f();
            n += 1;
        }
        n
    }

    struct Ctx {
        si: &'static StartInfo,
        domid: u16,
        /// Frames of the pool (not mapped by this domain).
        nr_pool: usize,
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let ms = 1_000_000;
        let from = arg(cmdline, "from_ms").unwrap_or(1000) * ms;
        let window = arg(cmdline, "window_ms").unwrap_or(2000) * ms;
        let gap = arg(cmdline, "gap_ms").unwrap_or(300) * ms;
        let domid = arg(cmdline, "domid").unwrap_or(0) as u16;
        let classes = cmdline.split(' ').find_map(|kv| kv.strip_prefix("classes=")).unwrap_or("base");
        if let Err(e) = events::init(si) {
            fail(format_args!("cannot map shared_info: {e:?}"));
        }
        // SAFETY: single-threaded kernel, before any use of TEXT.
        let text = unsafe { &mut *core::ptr::addr_of_mut!(TEXT) };
        for (i, b) in text.iter_mut().enumerate() {
            *b = if i % 80 == 79 { b'\n' } else { b'.' };
        }
        // The builder maps up to a 4 MiB boundary at least 512 KiB past the
        // boot stack, which follows the page tables; every pfn beyond is
        // mapped nowhere.
        let pt_end = (si.pt_base - VIRT_BASE) / 4096 + si.nr_pt_frames + 1 + 128;
        let mapped = pt_end.div_ceil(1024) * 1024;
        let free = si.nr_pages.saturating_sub(mapped) as usize;
        if free < HEADROOM + 64 || free - HEADROOM > pool().len() {
            fail(format_args!("{free} unmapped frames: want {}..{}", HEADROOM + 64, pool().len() + HEADROOM));
        }
        // The headroom goes back to the hypervisor first.
        for (i, e) in extents().iter_mut().enumerate() {
            *e = mfn_of(si, mapped + i as u64);
        }
        let given = memop(XENMEM_DECREASE_RESERVATION, extents().as_mut_ptr(), HEADROOM as u64, 0);
        if given != HEADROOM as i64 {
            fail(format_args!("giving back {HEADROOM} unmapped frames: {given}"));
        }
        let nr_pool = free - HEADROOM;
        for (i, p) in pool()[..nr_pool].iter_mut().enumerate() {
            *p = mfn_of(si, mapped + (HEADROOM + i) as u64);
        }
        println!(
            "hostile: d{domid}: {nr_pool} frames for page tables, {HEADROOM} frames of headroom, classes {classes}"
        );
        let ctx = Ctx { si, domid, nr_pool };
        let mut start = from;
        for spec in classes.split(',') {
            let (class, length) = match spec.split_once(':') {
                Some((name, ms)) => (name, ms.parse::<u64>().map_or(window, |ms| ms * 1_000_000)),
                None => (spec, window),
            };
            while now() < start {
                core::hint::spin_loop();
            }
            let end = start + length;
            start = end + gap;
            match class {
                "base" => {
                    let n = until(end, core::hint::spin_loop);
                    println!("hostile: base: spun {n} times");
                }
                "multicall" => multicalls(&ctx, end),
                "pin" => deep_pin(&ctx, end),
                "maptrack" => maptrack_flood(&ctx, end),
                "memop" => memop_storm(end),
                "console" => console_flood(end),
                other => fail(format_args!("unknown class {other}")),
            }
        }
        // Let the console rate limit refill before the last line.
        let settle = now() + 500 * ms;
        while now() < settle {
            core::hint::spin_loop();
        }
        println!("hostile: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn entry(op: u32, args: [u64; 6]) -> MulticallEntry {
        let mut e = MulticallEntry::new_zeroed();
        (e.op, e.args) = (op.into(), args);
        e
    }

    /// Multicalls of continuing calls until `end`.
    fn multicalls(ctx: &Ctx, end: u64) {
        const WRITES: usize = 1024;
        const FLUSHES: usize = 600;
        let scratch = va_mfn(ctx.si, core::ptr::addr_of!(SCRATCH) as u64);
        let mut writes = [MmuUpdate { ptr: 0, val: 0 }; WRITES];
        for (i, w) in writes.iter_mut().enumerate() {
            // MMU_NORMAL_PT_UPDATE of a plain frame: an ordinary write.
            *w = MmuUpdate { ptr: (scratch << 12) + (i as u64 % 512) * 8, val: i as u64 };
        }
        let flushes = [MmuextOp::new(MMUEXT_TLB_FLUSH_LOCAL, 0, 0); FLUSHES];
        let text = core::ptr::addr_of!(TEXT) as u64;
        let list = extents().as_mut_ptr();
        let mut grow = reservation(list, HEADROOM as u64, 0);
        let mut shrink = reservation(list, HEADROOM as u64, 0);
        let mut nested = [entry(HYPERVISOR_MULTICALL, [0; 6])];
        let (mut calls, mut entries) = (0u64, 0u64);
        while now() < end {
            let (mut mmu_done, mut ext_done) = (0u32, 0u32);
            let mut batch = [
                entry(
                    HYPERVISOR_MMU_UPDATE,
                    [
                        writes.as_ptr() as u64,
                        WRITES as u64,
                        core::ptr::addr_of_mut!(mmu_done) as u64,
                        DOMID_SELF.into(),
                        0,
                        0,
                    ],
                ),
                entry(
                    HYPERVISOR_MMUEXT_OP,
                    [
                        flushes.as_ptr() as u64,
                        FLUSHES as u64,
                        core::ptr::addr_of_mut!(ext_done) as u64,
                        DOMID_SELF.into(),
                        0,
                        0,
                    ],
                ),
                entry(HYPERVISOR_CONSOLE_IO, [CONSOLEIO_WRITE.into(), 320, text, 0, 0, 0]),
                entry(
                    HYPERVISOR_MEMORY_OP,
                    [XENMEM_INCREASE_RESERVATION.into(), core::ptr::addr_of_mut!(grow) as u64, 0, 0, 0, 0],
                ),
                entry(
                    HYPERVISOR_MEMORY_OP,
                    [XENMEM_DECREASE_RESERVATION.into(), core::ptr::addr_of_mut!(shrink) as u64, 0, 0, 0, 0],
                ),
                entry(HYPERVISOR_MULTICALL, [nested.as_mut_ptr() as u64, 1, 0, 0, 0, 0]),
            ];
            // SAFETY: every entry's pointers are this kernel's and live
            // across the call; the memory_op frames are mapped nowhere.
            if let Err(e) = unsafe { hypercall::multicall(&mut batch) } {
                fail(format_args!("multicall: {e:?}"));
            }
            let results = batch.map(|e| e.result as i64);
            let want = [0, 0, 0, HEADROOM as i64, HEADROOM as i64, XenError::Einval.to_ret()];
            if results != want || mmu_done as usize != WRITES || ext_done as usize != FLUSHES {
                fail(format_args!(
                    "multicall results {results:?} (want {want:?}), mmu_update done {mmu_done}, mmuext_op done {ext_done}"
                ));
            }
            calls += 1;
            entries += batch.len() as u64;
        }
        println!(
            "hostile: multicall: {calls} multicalls of {entries} continuing entries, every result right (nested: {:?})",
            XenError::Einval
        );
    }

    /// Pins and unpins an L4 over every frame this domain does not map.
    fn deep_pin(ctx: &Ctx, end: u64) {
        let frames = &pool()[..ctx.nr_pool];
        // One L4, enough L3s for the L2s, enough L2s for the L1s.
        let rest = frames.len() - 1;
        let l2s = rest.div_ceil(513);
        let l3s = l2s.div_ceil(512);
        let l1s = rest - l2s - l3s;
        if l3s > 256 {
            fail(format_args!("{l3s} L3s do not fit in the guest half of an L4"));
        }
        let (l4, rest) = frames.split_first().unwrap_or_else(|| fail(format_args!("no frames")));
        let (l3, rest) = rest.split_at(l3s);
        let (l2, l1) = rest.split_at(l2s);
        let t0 = now();
        // Cleared by the hypervisor, then linked with plain writes (the
        // frames are no page tables yet).
        for chunk in frames.chunks(256) {
            let mut ops = [MmuextOp::new(MMUEXT_CLEAR_PAGE, 0, 0); 256];
            for (op, &mfn) in ops.iter_mut().zip(chunk) {
                *op = MmuextOp::new(MMUEXT_CLEAR_PAGE, mfn, 0);
            }
            if let Err(e) = mmuext(&ops[..chunk.len()]) {
                fail(format_args!("clearing the tree's frames: {e:?}"));
            }
        }
        let link = |parent: &[u64], children: &[u64]| {
            for (c, chunk) in children.chunks(512).enumerate() {
                let mut reqs = [MmuUpdate { ptr: 0, val: 0 }; 512];
                for (i, (req, &child)) in reqs.iter_mut().zip(chunk).enumerate() {
                    *req = MmuUpdate { ptr: (parent[c] << 12) + i as u64 * 8, val: (child << 12) | TABLE_ENTRY };
                }
                if let Err(e) = mmu(&reqs[..chunk.len()]) {
                    fail(format_args!("linking the tree: {e:?}"));
                }
            }
        };
        link(l2, l1);
        link(l3, l2);
        let mut reqs = [MmuUpdate { ptr: 0, val: 0 }; 256];
        for (i, (req, &child)) in reqs.iter_mut().zip(l3).enumerate() {
            *req = MmuUpdate { ptr: (l4 << 12) + i as u64 * 8, val: (child << 12) | TABLE_ENTRY };
        }
        if let Err(e) = mmu(&reqs[..l3s]) {
            fail(format_args!("linking the L4: {e:?}"));
        }
        let built = now() - t0;
        let (mut pins, mut longest) = (0u64, 0u64);
        let mut twice = Ok(0);
        while now() < end {
            let t = now();
            if let Err(e) = mmuext(&[MmuextOp::new(MMUEXT_PIN_L4_TABLE, *l4, 0)]) {
                fail(format_args!("pinning the deep L4: {e:?}"));
            }
            longest = longest.max(now() - t);
            if pins == 0 {
                twice = mmuext(&[MmuextOp::new(MMUEXT_PIN_L4_TABLE, *l4, 0)]);
            }
            let t = now();
            if let Err(e) = mmuext(&[MmuextOp::new(MMUEXT_UNPIN_TABLE, *l4, 0)]) {
                fail(format_args!("unpinning the deep L4: {e:?}"));
            }
            longest = longest.max(now() - t);
            pins += 1;
        }
        if pins > 0 && twice != Err(XenError::Einval) {
            fail(format_args!("pinning the pinned L4 gave {twice:?}"));
        }
        println!(
            "hostile: pin: 1 L4, {l3s} L3s, {l2s} L2s, {l1s} L1s (built in {} ms); pinned and unpinned {pins} times, longest call {} ms, pinned twice: {twice:?}",
            built / 1_000_000,
            longest / 1_000_000,
        );
    }

    fn map_op(domid: u16, gref: u32, readonly: bool) -> GnttabMapGrantRef {
        let mut op = GnttabMapGrantRef::new_zeroed();
        op.flags = GNTMAP_DEVICE_MAP | if readonly { GNTMAP_READONLY } else { 0 };
        (op.ref_, op.dom) = (gref, domid);
        op
    }

    /// Maps one page granted to itself until the maptrack is full, then
    /// unmaps everything; until `end`.
    fn maptrack_flood(ctx: &Ctx, end: u64) {
        if let Err(e) = gnttab::init() {
            fail(format_args!("grant table: {e:?}"));
        }
        let page = va_mfn(ctx.si, core::ptr::addr_of!(GRANTED) as u64);
        let mut grefs = [0u32; FLOOD_GRANTS];
        for g in grefs.iter_mut() {
            *g = gnttab::grant(ctx.domid, page, false).unwrap_or_else(|e| fail(format_args!("granting: {e:?}")));
        }
        let (mut maps, mut over_use, mut full, mut rounds, mut most) = (0u64, 0u64, 0u64, 0u64, 0usize);
        let mut bad_handle = 0i16;
        'rounds: while now() < end {
            let mut held = 0usize;
            'fill: for &gref in &grefs {
                for readonly in [false, true] {
                    // 128 uses of a kind are allowed; the 129th is refused.
                    let mut ops = [map_op(ctx.domid, gref, readonly); 129];
                    // SAFETY: device mappings only: no page table changes.
                    if let Err(e) = unsafe { hypercall::gnttab_map(&mut ops) } {
                        fail(format_args!("GNTTABOP_map_grant_ref: {e:?}"));
                    }
                    for (i, op) in ops.iter().enumerate() {
                        match op.status {
                            GNTST_OKAY => {
                                handles()[held] = op.handle;
                                held += 1;
                                maps += 1;
                            }
                            GNTST_GENERAL_ERROR if i == 128 => over_use += 1,
                            GNTST_NO_SPACE => {
                                full += 1;
                                break 'fill;
                            }
                            s => fail(format_args!("map {i} of gref {gref}: status {s}")),
                        }
                    }
                    if now() >= end {
                        break 'fill;
                    }
                }
            }
            most = most.max(held);
            let dev_bus_addr = page << 12;
            for chunk in handles()[..held].chunks(64) {
                let mut ops = [GnttabUnmapGrantRef::new_zeroed(); 64];
                for (op, &h) in ops.iter_mut().zip(chunk) {
                    (op.handle, op.dev_bus_addr) = (h, dev_bus_addr);
                }
                // SAFETY: device mappings only.
                if let Err(e) = unsafe { hypercall::gnttab_unmap(&mut ops[..chunk.len()]) } {
                    fail(format_args!("GNTTABOP_unmap_grant_ref: {e:?}"));
                }
                if let Some(op) = ops[..chunk.len()].iter().find(|op| op.status != GNTST_OKAY) {
                    fail(format_args!("unmapping handle {}: status {}", op.handle, op.status));
                }
            }
            if rounds == 0 && held > 0 {
                let mut again = [GnttabUnmapGrantRef::new_zeroed()];
                (again[0].handle, again[0].dev_bus_addr) = (handles()[0], dev_bus_addr);
                // SAFETY: as above.
                let _ = unsafe { hypercall::gnttab_unmap(&mut again) };
                bad_handle = again[0].status;
                if bad_handle != GNTST_BAD_HANDLE {
                    fail(format_args!("unmapping a handle twice: status {bad_handle}"));
                }
            }
            rounds += 1;
            if held == 0 {
                break 'rounds;
            }
        }
        for &g in &grefs {
            if let Err(e) = gnttab::end(g) {
                fail(format_args!("ending grant {g}: {e:?}"));
            }
        }
        println!(
            "hostile: maptrack: {maps} maps in {rounds} rounds, at most {most} handles held; 129th use of a kind: GNTST_general_error x{over_use}; full maptrack: GNTST_no_space x{full}; unmapped twice: GNTST_bad_handle ({bad_handle})"
        );
    }

    /// Reservations at the largest order until `end`.
    fn memop_storm(end: u64) {
        let list = extents().as_mut_ptr();
        let per = 1u64 << MAX_ORDER;
        let extents_room = HEADROOM as u64 / per;
        let mut frames = 0u64;
        let mut rounds = 0u64;
        // Beyond the limits: one order too many, more than max_pages.
        let too_big = memop(XENMEM_INCREASE_RESERVATION, list, 1, MAX_ORDER + 1);
        let past_max = memop(XENMEM_INCREASE_RESERVATION, list, extents_room + 1, MAX_ORDER);
        if too_big != 0 || past_max != extents_room as i64 {
            fail(format_args!(
                "order {}: {too_big} extents; {} extents of headroom {extents_room}: {past_max}",
                MAX_ORDER + 1,
                extents_room + 1
            ));
        }
        if memop(XENMEM_DECREASE_RESERVATION, list, extents_room, MAX_ORDER) != extents_room as i64 {
            fail(format_args!("giving the extents back"));
        }
        while now() < end {
            for cmd in [XENMEM_INCREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP] {
                if cmd == XENMEM_POPULATE_PHYSMAP {
                    // populate_physmap takes pfns (past the end of memory
                    // here) and hands back the MFNs.
                    for i in 0..extents_room as usize {
                        extents()[i] = 0x10_0000 + i as u64 * per;
                    }
                }
                let got = memop(cmd, list, extents_room, MAX_ORDER);
                if got != extents_room as i64 {
                    fail(format_args!("memory_op {cmd} of {extents_room} order-{MAX_ORDER} extents: {got}"));
                }
                let back = memop(XENMEM_DECREASE_RESERVATION, list, extents_room, MAX_ORDER);
                if back != extents_room as i64 {
                    fail(format_args!("decrease_reservation of {extents_room} order-{MAX_ORDER} extents: {back}"));
                }
                frames += 2 * extents_room * per;
            }
            rounds += 1;
        }
        println!(
            "hostile: memop: {rounds} rounds, {} MiB allocated and freed in order-{MAX_ORDER} extents; order {} gets 0 extents, {} extents past max_pages get {past_max}",
            frames / 256,
            MAX_ORDER + 1,
            extents_room + 1
        );
    }

    fn console_call(cmd: u32, count: u64, buf: u64) -> i64 {
        // SAFETY: a write only reads `buf`; a refused read writes nothing.
        unsafe { hypercall::hypercall3(HYPERVISOR_CONSOLE_IO, cmd.into(), count, buf) }
    }

    /// `console_io` writes of 16,000 bytes until `end`.
    fn console_flood(end: u64) {
        let text = core::ptr::addr_of!(TEXT) as u64;
        let read = console_call(CONSOLEIO_READ, 16, text);
        let bad = console_call(CONSOLEIO_WRITE, 16, 0xffff_8300_0000_0000);
        let mut calls = 0u64;
        while now() < end {
            let r = console_call(CONSOLEIO_WRITE, 16000, text);
            if r != 0 {
                fail(format_args!("a console write of 16,000 bytes: {r}"));
            }
            calls += 1;
        }
        let want = (XenError::Eperm.to_ret(), XenError::Efault.to_ret());
        if (read, bad) != want {
            fail(format_args!("console read {read}, bad buffer {bad}: want {want:?}"));
        }
        // The flood emptied this domain's console budget: wait for room.
        let settle = now() + 300_000_000;
        while now() < settle {
            core::hint::spin_loop();
        }
        println!(
            "hostile: console: {calls} writes of 16,000 bytes; read: {:?}, bad buffer: {:?}",
            XenError::Eperm,
            XenError::Efault
        );
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
