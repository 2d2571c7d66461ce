//! A hypercall fuzzer on the real hypervisor: an unprivileged domain that
//! issues seeded random hypercalls of every number the hypercall page has
//! (0..128), with random and boundary arguments, for a bounded time.
//!
//! Command line: `hcfuzz seed=S from_ms=A ms=T peer=P domid=D`. From system
//! time `A` for `T` ms it draws from its own xorshift generator (seeded by
//! `S`, so a run is reproducible up to where the time runs out):
//! - any number with arguments mixing boundary values (0, -1, `u32::MAX`,
//!   bit 63, `MMU_UPDATE_PREEMPTED`), domain IDs (`DOMID_SELF`, the peer,
//!   absent ones), hypervisor and non-canonical addresses, random frames
//!   anywhere in RAM (the neighbour's and the hypervisor's among them), its
//!   own spare frames, and pointers into its scratch buffer, which is
//!   filled with the same mix;
//! - structured calls: `mmu_update`, `mmuext_op` and `update_va_mapping`
//!   on its spare frames and a victim page, grants (to itself and the
//!   peer: map, unmap, replace, copy, transfer, swap, set_version), event
//!   channels (every `EVTCHNOP`, FIFO included), `memory_op` reservations
//!   and queries at every order, `vcpu_op`, `sched_op`, callbacks, trap
//!   tables, descriptors, debug registers, and multicalls of all of these
//!   with entries that continue (long `mmu_update` lists, large
//!   reservations, console writes) and a nested one.
//!
//! Every number but `iret` is issued, raw or structured. What it never
//! asks for is what would end or break itself rather than test the
//! hypervisor: its own shutdown, `iret`, taking its vCPU down,
//! moving its `vcpu_info`, arming a debug register, switching to another
//! page table, or pointing the hypervisor at its own code, stack or
//! tables (every pointer it passes is into its scratch buffer, a spare
//! frame or the victim page). After every 256 calls it checks a canary
//! region the hypervisor was never pointed at. At the end it reports the
//! seed, the number of calls, how many succeeded, how many failed with
//! which errno, and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall::{self, hypercall5};
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF};
    use guest_rt::{events, gnttab};

    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// Scratch memory every pointer argument points into.
    const BUF_BYTES: usize = 128 * 1024;
    /// Structures are placed in the first part; what a call writes past
    /// them (bounded by the domain's size) still lands in the buffer.
    const BUF_USED: usize = 32 * 1024;
    const CANARY_WORDS: usize = 8192;
    /// Spare frames (mapped nowhere) the structured calls play with.
    const SPARES: usize = 256;

    #[repr(C, align(4096))]
    struct Buf([u8; BUF_BYTES]);
    static mut BUF: Buf = Buf([0; BUF_BYTES]);
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// The page whose mapping `update_va_mapping` and grant maps replace;
    /// never read or written by this kernel.
    static mut VICTIM: Page = Page([0; 4096]);
    /// A second one, for `unmap_and_replace`'s `new_addr`.
    static mut VICTIM2: Page = Page([0; 4096]);
    /// Memory the hypervisor is never pointed at.
    static mut CANARY: [u64; CANARY_WORDS] = [0; CANARY_WORDS];
    /// Multicall entries (8 words each).
    static mut MC: [[u64; 8]; 16] = [[0; 8]; 16];

    struct Fuzz {
        state: u64,
        domid: u16,
        peer: u16,
        spares: [u64; SPARES],
        nr_spares: usize,
        grefs: [u32; 16],
        max_mfn: u64,
        nr_pages: u64,
        mfn_list: u64,
        console_port: u64,
        /// Return values: succeeded, and failures by errno (1..=127).
        ok: u64,
        errs: [u64; 128],
        other: u64,
    }

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split(' ').find_map(|kv| {
            let v = kv.strip_prefix(key)?.strip_prefix('=')?;
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
    }

    /// Writes a line with `console_io` (not the console ring, whose event
    /// channel the fuzzing may have closed).
    fn say(args: core::fmt::Arguments) {
        struct W;
        impl core::fmt::Write for W {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let _ = hypercall::console_write(s.as_bytes());
                Ok(())
            }
        }
        let _ = core::fmt::write(&mut W, args);
        let _ = hypercall::console_write(b"\n");
    }

    fn fail(what: core::fmt::Arguments) -> ! {
        say(format_args!("hcfuzz: FAILED: {what}"));
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn buf() -> u64 {
        core::ptr::addr_of!(BUF) as u64
    }

    fn poke(off: usize, v: u64) {
        if off + 8 <= BUF_BYTES {
            // SAFETY: inside BUF; single-threaded kernel; the hypervisor
            // writes BUF only during hypercalls.
            unsafe { (core::ptr::addr_of_mut!(BUF.0) as *mut u8).add(off).cast::<u64>().write_unaligned(v) };
        }
    }

    fn canary(i: usize) -> u64 {
        (i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93) ^ 0xc0ff_ee00
    }

    impl Fuzz {
        fn next(&mut self) -> u64 {
            // xorshift64*
            let mut x = self.state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.state = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            if n == 0 {
                0
            } else {
                self.next() % n
            }
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        /// Whether `mfn` is one of this domain's frames other than the
        /// spares (its image, stack, tables): never a target of a write.
        fn ours(&self, mfn: u64) -> bool {
            if mfn >= self.max_mfn || self.spares[..self.nr_spares].contains(&mfn) {
                return false;
            }
            // SAFETY: the M2P is mapped read-only for PV guests up to the
            // largest RAM frame; the p2m list covers pfns below nr_pages.
            let pfn = unsafe { ((0xffff_8000_0000_0000u64 + mfn * 8) as *const u64).read_volatile() };
            if pfn >= self.nr_pages {
                return false;
            }
            // SAFETY: as above.
            let back = unsafe { ((self.mfn_list + pfn * 8) as *const u64).read_volatile() };
            back == mfn
        }

        /// A frame a call may write: a spare, or one not this domain's.
        fn target(&mut self) -> u64 {
            if self.chance(80) {
                return self.spare();
            }
            let m = self.mfn();
            if self.ours(m) {
                self.spare()
            } else {
                m
            }
        }

        /// An address with no page of this domain behind it.
        fn bad_va(&mut self) -> u64 {
            match self.below(4) {
                0 => [0, 0x1000, 0x0000_7fff_ffff_f000][self.below(3) as usize],
                1 => [0xffff_8300_0000_0000, 0xffff_82d0_8000_0000, 0xffff_8000_0000_0000][self.below(3) as usize],
                2 => 0x8000_0000_0000_0000 | (self.next() >> 8),
                _ => self.next() & 0x0000_7fff_ffff_f000,
            }
        }

        fn spare(&mut self) -> u64 {
            let i = self.below(self.nr_spares as u64) as usize;
            self.spares.get(i).copied().unwrap_or(0)
        }

        /// A frame number: a spare, anywhere in RAM, or a boundary value.
        fn mfn(&mut self) -> u64 {
            match self.below(6) {
                0..=2 => self.spare(),
                3 => self.below(self.max_mfn + 2),
                4 => [0, 1, u64::MAX >> 12, 1 << 40, u32::MAX as u64][self.below(5) as usize],
                _ => self.next() >> 12,
            }
        }

        /// A pointer into the scratch buffer (8-aligned, mostly).
        fn ptr(&mut self) -> u64 {
            let off = self.below(BUF_USED as u64);
            buf() + if self.chance(90) { off & !7 } else { off }
        }

        fn domid(&mut self) -> u64 {
            let d = [DOMID_SELF, self.domid, self.peer, 0x7ff1, 0x7ff2, 0x7ff4, 0x7fff, 77, 0xffff];
            u64::from(d[self.below(d.len() as u64) as usize])
        }

        /// A value from the mix of the module doc.
        fn val(&mut self) -> u64 {
            match self.below(16) {
                0 => 0,
                1 => 1,
                2 => u64::MAX,
                3 => u32::MAX as u64,
                4 => 1 << 63,
                5 => 1 << 31, // MMU_UPDATE_PREEMPTED in a count
                6 => self.domid(),
                7 => self.below(64),
                8 => self.next() as u32 as u64,
                9 => self.ptr(),
                10 => [0xffff_8300_0000_0000, 0xffff_82d0_8000_0000, 0xffff_8000_0000_0000][self.below(3) as usize],
                11 => 0x8000_0000_0000_0000 | (self.next() >> 8),
                12 => self.mfn(),
                13 => (self.mfn() << 12) | (self.next() & 0xfff),
                14 => self.below(4096),
                _ => self.next(),
            }
        }

        /// Fills `words` words of the buffer at `off` with the mix.
        fn fill(&mut self, off: usize, words: usize) {
            for i in 0..words {
                let v = self.val();
                poke(off + i * 8, v);
            }
        }

        fn record(&mut self, r: i64) {
            if r >= 0 {
                self.ok += 1;
            } else if let Some(e) = self.errs.get_mut(r.unsigned_abs() as usize) {
                *e += 1;
            } else {
                self.other += 1;
            }
        }

        /// One generated call: (number, arguments); `nested` is false for
        /// the entries of a multicall.
        fn gen(&mut self, top: bool) -> (u32, [u64; 5]) {
            match self.below(if top { 15 } else { 13 }) {
                0..=2 => self.raw(),
                3 => self.mmu(),
                4 => self.mmuext(),
                5 => self.uvm(),
                6 => self.grants(),
                7 => self.evtchn(),
                8 => self.memory(),
                9 => self.vcpu_sched(top),
                10 => self.cpu_state(),
                11 => self.long_call(),
                12 => (18, [0, self.below(200), self.ptr(), 0, 0]), // console_io write
                13 => self.multicall(),
                _ => self.raw(),
            }
        }

        /// Any number whose arguments cannot reach this kernel's own
        /// state (see the module doc); pointers only into the buffer.
        fn raw(&mut self) -> (u32, [u64; 5]) {
            const NEVER: &[u32] = &[0, 1, 3, 4, 5, 6, 8, 13, 14, 19, 20, 22, 23, 24, 25, 26, 29, 30];
            let nr = loop {
                let nr = self.below(128) as u32;
                if !NEVER.contains(&nr) {
                    break nr;
                }
            };
            let off = self.below(BUF_USED as u64) as usize & !7;
            self.fill(off, 16);
            let mut a = [0; 5];
            for x in a.iter_mut() {
                *x = self.val();
            }
            if self.chance(60) {
                a[0] = self.below(48); // a plausible sub-op
            }
            if self.chance(70) {
                a[1] = buf() + off as u64;
            }
            // Frames the hypervisor would write on its own later (a FIFO
            // control block or event array, a PIRQ EOI bitmap): spares.
            let registers_a_frame = match nr {
                32 => matches!(a[0], 11 | 12),
                33 => matches!(a[0], 17 | 28),
                16 => {
                    let cmd = self.below(16);
                    poke(off, cmd);
                    matches!(cmd, 11 | 12)
                }
                _ => false,
            };
            if registers_a_frame {
                let spare = self.spare();
                for w in 0..4 {
                    poke(off + w * 8, if nr == 16 && w == 0 { a[0] } else { spare });
                }
                if nr == 16 {
                    poke(off, [11, 12][self.below(2) as usize]);
                }
                a[1] = buf() + off as u64;
            }
            (nr, a)
        }

        /// `mmu_update` on spare frames (and random ones), a short list.
        fn mmu(&mut self) -> (u32, [u64; 5]) {
            let n = self.below(8) + 1;
            let off = self.below(BUF_USED as u64 / 2) as usize & !7;
            for i in 0..n as usize {
                let target = self.target();
                let mut kind = self.below(4);
                if kind == 1 && !self.chance(50) {
                    kind = 0;
                }
                let ptr = (target << 12) | (self.below(512) << 3) | kind;
                let val = match self.below(4) {
                    0 => (self.spare() << 12) | [0x61, 0x63, 0x67, 0x25][self.below(4) as usize],
                    1 => (self.mfn() << 12) | (self.next() & 0xfff),
                    2 => 0,
                    _ => self.val(),
                };
                poke(off + i * 16, ptr);
                poke(off + i * 16 + 8, val);
            }
            let count = if self.chance(10) { n | (1 << 31) } else { n };
            let foreign = if self.chance(85) { u64::from(DOMID_SELF) } else { self.domid() };
            (1, [buf() + off as u64, count, if self.chance(80) { self.ptr() } else { 0 }, foreign, 0])
        }

        /// `mmuext_op`: every command but `NEW_BASEPTR`; the frames a
        /// command clears or copies into are spares (or not this domain's).
        fn mmuext(&mut self) -> (u32, [u64; 5]) {
            let n = self.below(4) + 1;
            let off = self.below(BUF_USED as u64 / 2) as usize & !7;
            for i in 0..n as usize {
                let cmd = loop {
                    let c = self.below(22);
                    if c != 5 {
                        break c;
                    }
                };
                let arg1 = match cmd {
                    7 | 9 | 11 | 13 => self.val(), // linear addresses
                    16 | 17 => self.target(),      // cleared, copied into
                    _ if self.chance(85) => self.spare(),
                    _ => self.mfn(),
                };
                let arg2 = match cmd {
                    17 => self.mfn(),       // copy source: anything
                    8 | 9 => self.ptr(),    // vcpumask
                    13 => self.below(9000), // LDT entries
                    _ => self.val(),
                };
                poke(off + i * 24, cmd);
                poke(off + i * 24 + 8, arg1);
                poke(off + i * 24 + 16, arg2);
            }
            let foreign = if self.chance(85) { u64::from(DOMID_SELF) } else { self.domid() };
            (26, [buf() + off as u64, n, if self.chance(80) { self.ptr() } else { 0 }, foreign, 0])
        }

        /// `update_va_mapping` of the victim page (or an address with no
        /// page table of this domain), `_otherdomain` too.
        fn uvm(&mut self) -> (u32, [u64; 5]) {
            let va = match self.below(4) {
                0 | 1 => core::ptr::addr_of!(VICTIM) as u64,
                _ => self.bad_va(),
            };
            let pte = match self.below(3) {
                0 => (self.spare() << 12) | [0x61, 0x63, 0x67, 0x65, 0x8000_0000_0000_0063][self.below(5) as usize],
                1 => (self.mfn() << 12) | (self.next() & 0xfff) | if self.chance(50) { 1 << 63 } else { 0 },
                _ => self.val(),
            };
            let flags = match self.below(3) {
                0 => self.below(8),
                1 => self.ptr() | self.below(4),
                _ => self.val(),
            };
            if self.chance(20) {
                (22, [va, pte, flags, self.domid(), 0])
            } else {
                (14, [va, pte, flags, 0, 0])
            }
        }

        /// `grant_table_op`, structured: the addresses it maps at or
        /// replaces are the victim pages; copies write only spares or
        /// frames not this domain's.
        fn grants(&mut self) -> (u32, [u64; 5]) {
            let cmd = self.below(14);
            let off = self.below(BUF_USED as u64 / 2) as usize & !7;
            let victim = core::ptr::addr_of!(VICTIM) as u64;
            let gref =
                if self.chance(60) { u64::from(self.grefs[self.below(16) as usize]) } else { self.val() & 0xffff_ffff };
            let count = self.below(4) + 1;
            let stride = match cmd {
                0 => 32,
                1 | 4 | 7 => 24,
                5 => 40,
                _ => 64,
            };
            for i in 0..count as usize {
                let at = off + i * stride;
                match cmd {
                    0 => {
                        // map: host_addr, flags, ref, dom
                        let host = match self.below(10) {
                            0..=6 => victim,
                            7 => (self.spare() << 12) | (self.below(512) << 3), // a PTE's address
                            _ => self.bad_va(),
                        };
                        poke(at, host);
                        poke(at + 8, (self.below(32)) | (gref << 32));
                        poke(at + 16, self.domid() | ((self.next() & 0xffff_0000) << 16));
                    }
                    1 | 7 => {
                        // unmap / unmap_and_replace: host_addr, dev_bus_addr|new_addr, handle
                        let host = if self.chance(70) { victim } else { self.bad_va() };
                        poke(at, host);
                        let second = if cmd == 7 { core::ptr::addr_of!(VICTIM2) as u64 } else { self.val() };
                        let second = if self.chance(80) { second } else { self.bad_va() };
                        poke(at + 8, second);
                        poke(at + 16, self.below(64) | if self.chance(10) { self.next() << 32 } else { 0 });
                    }
                    5 => {
                        // copy: source {ref|gmfn, domid, offset}, dest {...}, len, flags
                        // flags: GNTCOPY_source_gref 1, GNTCOPY_dest_gref 2;
                        // a destination by frame is a spare or not this
                        // domain's.
                        let flags = self.below(4);
                        let src = if flags & 1 != 0 { gref } else { self.mfn() };
                        let dst = if flags & 2 != 0 { gref } else { self.target() };
                        poke(at, src);
                        poke(at + 8, self.domid() | (self.below(4200) << 16));
                        poke(at + 16, dst);
                        poke(at + 24, self.domid() | (self.below(4200) << 16));
                        poke(at + 32, self.below(4200) | (flags << 16));
                    }
                    4 => {
                        // transfer: mfn, domid, ref
                        poke(at, self.mfn());
                        poke(at + 8, self.domid() | (gref << 32));
                    }
                    _ => self.fill(at, 8),
                }
            }
            if cmd == 2 {
                // setup_table: dom, nr_frames, status, frame_list
                poke(off, self.domid() | (self.below(70) << 32));
                poke(off + 8, buf() + BUF_USED as u64 / 2);
            }
            // Huge counts only where an op read from the buffer's garbage
            // cannot write (a copy or a map past the ops built here could
            // name this kernel's frames or addresses).
            let n = if matches!(cmd, 3 | 6 | 8 | 10 | 13) && self.chance(20) { self.val() } else { count };
            (20, [cmd | if self.chance(5) { self.next() << 12 } else { 0 }, buf() + off as u64, n, 0, 0])
        }

        /// `event_channel_op`, every command; never closing or moving the
        /// console's port, never resetting itself (that would close it).
        fn evtchn(&mut self) -> (u32, [u64; 5]) {
            let cmd = self.below(15);
            let off = self.below(BUF_USED as u64 / 2) as usize & !7;
            let mut port = if self.chance(70) { self.below(64) } else { self.val() & 0xffff_ffff };
            if port == self.console_port && matches!(cmd, 3 | 8) {
                port += 1;
            }
            let (w0, w1) = match cmd {
                0 => (self.domid() | (port << 32), 0),                        // bind_interdomain
                1 => (self.below(40) | (self.below(3) << 32), 0),             // bind_virq
                2 => ((self.val() & 0xffff_ffff) | (self.below(2) << 32), 0), // bind_pirq
                3 | 4 | 9 => (port, 0),                                       // close, send, unmask
                5 => (self.domid() | (port << 32), 0),                        // status
                6 => (self.domid() | (self.domid() << 16), 0),                // alloc_unbound
                7 => (self.below(3), 0),                                      // bind_ipi
                8 => (port | (self.below(3) << 32), 0),                       // bind_vcpu
                10 => (if self.chance(80) { u64::from(self.peer) } else { 0x7ff4 }, 0), // reset
                11 => (self.spare(), self.below(4200) | (self.below(3) << 32)), // init_control
                12 => (self.spare(), 0),                                      // expand_array
                13 => (port | (self.below(20) << 32), 0),                     // set_priority
                _ => (self.val(), self.val()),
            };
            poke(off, w0);
            poke(off + 8, w1);
            poke(off + 16, self.val());
            (32, [cmd, buf() + off as u64, 0, 0, 0])
        }

        /// `memory_op` reservations (orders up to 12) and queries.
        fn memory(&mut self) -> (u32, [u64; 5]) {
            let off = self.below(BUF_USED as u64 / 2) as usize & !7;
            let list = buf() + BUF_USED as u64 / 2;
            let cmd = match self.below(8) {
                0 => 0,  // increase_reservation
                1 => 1,  // decrease_reservation
                2 => 6,  // populate_physmap
                3 => 11, // exchange
                _ => self.below(32),
            };
            let n = if self.chance(80) { self.below(8) + 1 } else { self.val() };
            for i in 0..8 {
                let v = if cmd == 1 { self.spare() } else { self.below(1 << 20) };
                poke(BUF_USED / 2 + i * 8, v);
            }
            poke(off, list);
            poke(off + 8, n);
            poke(off + 16, self.below(13) | (self.below(40) << 8) << 32);
            poke(off + 24, if self.chance(80) { u64::from(DOMID_SELF) } else { self.domid() });
            if cmd == 11 {
                // exchange: in (4 words), out (4 words), nr_exchanged
                poke(off + 32, list + 64);
                poke(off + 40, n);
                poke(off + 48, self.below(13) | (self.below(40) << 40));
                poke(off + 56, u64::from(DOMID_SELF));
                poke(off + 64, if self.chance(80) { 0 } else { self.val() });
            }
            let c = if self.chance(10) { cmd | (self.below(16) << 6) } else { cmd };
            (12, [c, buf() + off as u64, 0, 0, 0])
        }

        /// `vcpu_op` and `sched_op` that leave this vCPU up and running;
        /// `top` is false inside a multicall, where no poll is made.
        fn vcpu_sched(&mut self, top: bool) -> (u32, [u64; 5]) {
            if self.chance(50) {
                // Not initialise's own vCPU, down, register_vcpu_info with
                // a frame of its own, send_nmi.
                let op = [1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13][self.below(11) as usize];
                let vcpu = if self.chance(30) && op != 10 {
                    self.val() & 0xffff_ffff
                } else if self.chance(50) {
                    0
                } else {
                    1
                };
                let arg = match op {
                    5 | 13 => {
                        // an area in the buffer, or an address that is not
                        poke(0x100, if self.chance(50) { self.ptr() } else { self.val() | (1 << 63) });
                        buf() + 0x100
                    }
                    _ => self.ptr(),
                };
                let vcpu = if op == 1 && vcpu == 0 { 1 } else { vcpu };
                if op == 10 {
                    // register_vcpu_info: a frame that is not this domain's
                    poke(0x200, self.below(self.max_mfn) | (1 << 40));
                    poke(0x208, self.below(8192));
                    return (24, [op, 1, buf() + 0x200, 0, 0]);
                }
                self.fill(arg.wrapping_sub(buf()) as usize, 4);
                (24, [op, vcpu, arg, 0, 0])
            } else {
                let off = self.below(BUF_USED as u64 / 2) as usize & !7;
                let op = [0, 3, 4, 6, 7, 8][self.below(6) as usize];
                // A poll only outside multicalls: the entries of one
                // multicall share the buffer, so a later entry (or an
                // earlier one's output) may overwrite the poll's timeout,
                // and a poll on no port with no timeout in reach waits for
                // ever, on Xen as on xenish.
                let op = if op == 3 && !top { 0 } else { op };
                match op {
                    3 => {
                        // poll: ports list, nr, timeout (1 ms from now)
                        poke(off, buf() + off as u64 + 32);
                        poke(off + 8, self.below(4));
                        poke(off + 16, events::system_time_ns() + 1_000_000);
                        poke(off + 32, self.below(64));
                    }
                    4 => {
                        // remote_shutdown of the peer: refused
                        poke(off, u64::from(self.peer) | (self.below(6) << 32));
                    }
                    6 => {
                        // watchdog: only ever disarmed (an ID, timeout 0;
                        // ID 0 would arm a new one)
                        poke(off, 1 + self.below(3));
                    }
                    _ => self.fill(off, 4),
                }
                (29, [op, buf() + off as u64, 0, 0, 0])
            }
        }

        /// Trap tables (entries that clear), callbacks at addresses that
        /// are refused, descriptors and GDTs of spare frames, debug
        /// registers that arm nothing, the FPU's TS flag set and cleared.
        fn cpu_state(&mut self) -> (u32, [u64; 5]) {
            let off = self.below(BUF_USED as u64 / 2) as usize & !7;
            match self.below(7) {
                0 => {
                    // vector, flags, cs, address (this kernel never faults)
                    let n = self.below(4) as usize;
                    for i in 0..n {
                        poke(off + i * 16, self.below(300) | (self.val() << 8 & 0xffff_ff00));
                        let address = self.bad_va();
                        poke(off + i * 16 + 8, address);
                    }
                    poke(off + n * 16, 0);
                    poke(off + n * 16 + 8, 0);
                    (0, [buf() + off as u64, 0, 0, 0, 0])
                }
                1 => {
                    // register or unregister any type but the event and
                    // failsafe callbacks, at an address that is not code
                    poke(off, (2 + self.below(8)) | (self.below(4) << 16));
                    let address = self.bad_va();
                    poke(off + 8, address);
                    (30, [self.below(3), buf() + off as u64, 0, 0, 0])
                }
                2 => (2, [buf() + off as u64, self.below(20), 0, 0, 0]).map_frames(self, off),
                3 => (10, [(self.spare() << 12) | (self.below(512) << 3), self.next(), 0, 0, 0]),
                4 => {
                    // not DR7 nor DR5, its alias: nothing is armed
                    let reg = [0, 1, 2, 3, 4, 6, 8, 9][self.below(8) as usize];
                    (8, [reg, self.val(), 0, 0, 0])
                }
                5 if self.chance(25) => (9, [self.below(10), 0, 0, 0, 0]),
                5 if self.chance(33) => {
                    // stack_switch: the kernel stack for returns from user
                    // mode, which this kernel never enters
                    (3, [self.val(), self.val(), 0, 0, 0])
                }
                5 if self.chance(50) => {
                    // set_callbacks (event, failsafe, syscall) at
                    // addresses that are not code: events stay masked and
                    // no segment reload fails here
                    let (a, b, c) = (self.bad_va(), self.bad_va(), self.bad_va());
                    (4, [a, b, c, 0, 0])
                }
                5 if self.chance(50) => {
                    // sched_op_compat: yield only (its shutdown would end us)
                    (6, [0, self.val(), 0, 0, 0])
                }
                5 if self.chance(50) => {
                    // physdev_op_compat: any command but those that register
                    // a frame for the hypervisor to write
                    let cmd = loop {
                        let c = self.below(40);
                        if c != 17 && c != 28 {
                            break c;
                        }
                    };
                    poke(off, cmd);
                    self.fill(off + 8, 6);
                    (19, [buf() + off as u64, 0, 0, 0, 0])
                }
                5 => {
                    // FS base, user and kernel GS base (none used here)
                    (25, [[0, 1, 2, 4, 5][self.below(5) as usize], self.val(), 0, 0, 0])
                }
                _ => {
                    // set then clear TS: nothing here uses the FPU
                    let r = unsafe_call(5, [1, 0, 0, 0, 0]);
                    self.record(r);
                    (5, [0, 0, 0, 0, 0])
                }
            }
        }

        /// A call that continues: a long `mmu_update` list on spares, a
        /// large reservation, a long console write, `set_trap_table` of
        /// many clearing entries.
        fn long_call(&mut self) -> (u32, [u64; 5]) {
            match self.below(4) {
                0 => {
                    let n = 520 + self.below(600) as usize;
                    for i in 0..n {
                        let ptr = (self.spare() << 12) | (self.below(512) << 3);
                        poke(i * 16, ptr);
                        poke(i * 16 + 8, self.next() & !1);
                    }
                    (1, [buf(), n as u64, 0, u64::from(DOMID_SELF), 0])
                }
                1 => {
                    let off = BUF_USED / 2;
                    poke(off, buf());
                    poke(off + 8, 600 + self.below(2000));
                    poke(off + 16, 0);
                    poke(off + 24, u64::from(DOMID_SELF));
                    (12, [if self.chance(50) { 0 } else { 6 }, buf() + off as u64, 0, 0, 0])
                }
                2 => (18, [0, 200 + self.below(1000), buf(), 0, 0]),
                _ => {
                    for i in 0..100 {
                        poke(i * 16, self.below(256) | (0xe033 << 16));
                        let address = self.bad_va() | 1;
                        poke(i * 16 + 8, address);
                    }
                    poke(1600, 0);
                    poke(1608, 0);
                    (0, [buf(), 0, 0, 0, 0])
                }
            }
        }

        /// A multicall of up to 16 generated calls, now and then a nested
        /// one.
        fn multicall(&mut self) -> (u32, [u64; 5]) {
            let n = self.below(16) + 1;
            let mut entries = [[0u64; 8]; 16];
            for e in entries.iter_mut().take(n as usize) {
                let (nr, a) = if self.chance(5) { (13, [buf(), 1, 0, 0, 0]) } else { self.gen(false) };
                e[0] = u64::from(nr);
                e[2..7].copy_from_slice(&a);
            }
            // SAFETY: single-threaded kernel; MC is used only here.
            unsafe { *core::ptr::addr_of_mut!(MC) = entries };
            (13, [core::ptr::addr_of!(MC) as u64, n, 0, 0, 0])
        }
    }

    trait MapFrames {
        fn map_frames(self, f: &mut Fuzz, off: usize) -> Self;
    }

    impl MapFrames for (u32, [u64; 5]) {
        /// `set_gdt`'s frame list: spares, or not this domain's frames.
        fn map_frames(self, f: &mut Fuzz, off: usize) -> Self {
            for i in 0..16 {
                let v = if f.chance(80) { f.spare() } else { f.mfn() };
                poke(off + i * 8, v);
            }
            (self.0, [self.1[0], f.below(8192 * 2), 0, 0, 0])
        }
    }

    fn unsafe_call(nr: u32, a: [u64; 5]) -> i64 {
        // SAFETY: every generator keeps its pointers inside the scratch
        // buffer, the victim pages or frames this kernel does not map, and
        // leaves out what would change this kernel's own execution (see
        // the module doc).
        unsafe { hypercall5(nr, a[0], a[1], a[2], a[3], a[4]) }
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let seed = arg(cmdline, "seed").unwrap_or(0x5eed);
        let ms = 1_000_000;
        let from = arg(cmdline, "from_ms").unwrap_or(2000) * ms;
        let length = arg(cmdline, "ms").unwrap_or(10_000) * ms;
        if let Err(e) = events::init(si) {
            fail(format_args!("cannot map shared_info: {e:?}"));
        }
        let mut f = Fuzz {
            state: seed | 1,
            domid: arg(cmdline, "domid").unwrap_or(0) as u16,
            peer: arg(cmdline, "peer").unwrap_or(1) as u16,
            spares: [0; SPARES],
            nr_spares: 0,
            grefs: [0; 16],
            max_mfn: hypercall::maximum_ram_page().unwrap_or(1 << 18),
            nr_pages: si.nr_pages,
            mfn_list: si.mfn_list,
            console_port: u64::from(si.console_domu().1),
            ok: 0,
            errs: [0; 128],
            other: 0,
        };
        // Spare frames: the domain's last pfns, far past the initial mapping.
        let pt_end = (si.pt_base - VIRT_BASE) / 4096 + si.nr_pt_frames + 1 + 128;
        let mapped = pt_end.div_ceil(1024) * 1024;
        let spares = (si.nr_pages.saturating_sub(mapped) as usize).min(SPARES);
        for i in 0..spares {
            // SAFETY: the builder's p2m list covers every pfn.
            f.spares[i] = unsafe { ((si.mfn_list + (si.nr_pages - 1 - i as u64) * 8) as *const u64).read_volatile() };
        }
        f.nr_spares = spares;
        if spares < 16 {
            fail(format_args!("only {spares} spare frames"));
        }
        // Grants to itself and to the peer, of spare frames.
        if let Err(e) = gnttab::init() {
            fail(format_args!("grant table: {e:?}"));
        }
        for i in 0..16 {
            let to = if i % 2 == 0 { f.domid } else { f.peer };
            let frame = f.spares[i];
            f.grefs[i] = gnttab::grant(to, frame, i % 4 == 1).unwrap_or(0);
        }
        for i in 0..CANARY_WORDS {
            // SAFETY: single-threaded kernel; `i` is in bounds.
            unsafe { (core::ptr::addr_of_mut!(CANARY) as *mut u64).add(i).write_volatile(canary(i)) };
        }
        say(format_args!(
            "hcfuzz: seed {seed:#x}, {spares} spare frames, max mfn {:#x}, fuzzing for {} ms",
            f.max_mfn,
            length / ms
        ));
        while events::system_time_ns() < from {
            core::hint::spin_loop();
        }
        let end = from + length;
        let mut calls = 0u64;
        // The longest call as this domain saw it (including time it was
        // not scheduled), and what it was.
        let (mut longest, mut longest_call) = (0u64, (0u32, [0u64; 5]));
        while events::system_time_ns() < end {
            let (nr, a) = f.gen(true);
            let t = events::system_time_ns();
            let r = unsafe_call(nr, a);
            let took = events::system_time_ns().saturating_sub(t);
            if took > longest {
                (longest, longest_call) = (took, (nr, a));
            }
            f.record(r);
            calls += 1;
            if calls.is_multiple_of(256) {
                for i in 0..CANARY_WORDS {
                    // SAFETY: as above.
                    let v = unsafe { (core::ptr::addr_of!(CANARY) as *const u64).add(i).read_volatile() };
                    if v != canary(i) {
                        fail(format_args!("after call {calls} (hypercall {nr}, {a:x?}) canary word {i} reads {v:#x}"));
                    }
                }
            }
        }
        // Let the console rate limit refill before reporting.
        let settle = events::system_time_ns() + 1_000 * ms;
        while events::system_time_ns() < settle {
            core::hint::spin_loop();
        }
        // A fresh line: the fuzzing wrote partial ones.
        say(format_args!("\nhcfuzz: seed {seed:#x}: {calls} calls, {} returned >= 0, canary intact", f.ok));
        say(format_args!(
            "hcfuzz: longest call {} ms: hypercall {} {:x?}",
            longest / ms,
            longest_call.0,
            longest_call.1
        ));
        let mut line = [0u8; 200];
        let mut len = 0;
        for (e, &n) in f.errs.iter().enumerate().filter(|(_, &n)| n > 0) {
            let mut w = Cursor { buf: &mut line, len: &mut len };
            let _ = core::fmt::write(&mut w, format_args!(" -{e}:{n}"));
        }
        let errs = core::str::from_utf8(&line[..len]).unwrap_or("");
        say(format_args!("hcfuzz: errnos (-errno:count):{errs}; others: {}", f.other));
        say(format_args!("hcfuzz: done"));
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    struct Cursor<'a> {
        buf: &'a mut [u8; 200],
        len: &'a mut usize,
    }

    impl core::fmt::Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = (*self.len + s.len()).min(self.buf.len());
            let n = end - *self.len;
            self.buf[*self.len..end].copy_from_slice(&s.as_bytes()[..n]);
            *self.len = end;
            Ok(())
        }
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
