//! The SMP scaling benchmark's control domain (`cargo xtask bench --only
//! scaling`): builds small PV domains that each run, for a fixed time, a
//! loop of null hypercalls and then a loop of event-channel round trips,
//! and reports their throughput. It runs as dom0 on xenish and on Xen 4.17
//! alike.
//!
//! Command line: `scaling runs=1@0,1@1,2 ms=2000 [first=0] [pin=1]`. For
//! each entry N or N@F of `runs` (in order) it builds N domains, pins
//! domain i's vCPU to CPU F + i (F: `first` unless given) modulo the CPUs
//! `physinfo` reports (`XEN_DOMCTL_setvcpuaffinity`, hard affinity; not
//! with `pin=0`),
//! starts them together and waits, blocked, until they powered off. Each
//! domain runs the same few hundred bytes of code (`scaling_domu_*` below,
//! copied into it by this builder, with its page tables, data page and
//! stack; its shared_info mapped at `SHARED_VA`):
//! - registers an event callback and binds an interdomain loopback port
//!   pair to itself (the port this builder allocated in it);
//! - waits for the start time (system time from its pvclock, so that the
//!   domains need not share a TSC offset: Xen may emulate a domU's TSC);
//! - calls `xen_version(XENVER_version)` until `ms` milliseconds passed,
//!   counting, then sends on one end and waits for the upcall on the other
//!   (the handler clears the bits and returns with `HYPERVISOR_iret`, as
//!   the benchmark kernel's `evtchn_roundtrip` row does) for `ms` more;
//! - writes its counts and the times it actually started and stopped each
//!   loop into its data page and powers off.
//!
//! It prints `scaling: run domains=N first=F cpus=C`, one line per domain
//! `scaling: dI cpu=P pinned=yes|no null_hypercall=OPS/NS evtchn_roundtrip=OPS/NS late_ns=L`,
//! the totals `scaling: result domains=N first=F null_hypercall=R evtchn_roundtrip=R`
//! (the domains' operations together per second of system time, from the
//! loop's start time to the last domain's end of it), and
//! `scaling: done`; `scaling: FAILED ...` on any error. Domains that have
//! not finished 30 s after their end time are reported (how far each got,
//! the hypervisor's flags and CPU time for it), destroyed, and the run's
//! result is `scaling: result domains=N first=F stuck`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use guest_abi::arch_x86::{GuestHandle, VcpuGuestContext, VGCF_IN_KERNEL, VGCF_ONLINE};
    use guest_abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT};
    use guest_abi::domctl::{
        XenDomctl, XenDomctlCreatedomain, XenDomctlVcpuaffinity, XEN_DOMCTL_SETVCPUAFFINITY, XEN_DOMINF_SHUTDOWN,
        XEN_VCPUAFFINITY_HARD,
    };
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF, VIRQ_DOM_EXC, VIRQ_TIMER};
    use guest_rt::{events, println};
    use zerocopy::FromZeros;

    /// At most this many domains per run.
    const MAX_DOMAINS: usize = 8;

    /// The built domain's virtual layout: code, data, stack, shared_info,
    /// one page each from `CODE_VA` (L1 slots 0..4 of one L1 table).
    const CODE_VA: u64 = 0x40_0000;
    const DATA_VA: u64 = CODE_VA + 0x1000;
    const STACK_VA: u64 = CODE_VA + 0x2000;
    const SHARED_VA: u64 = CODE_VA + 0x3000;
    /// Its frames: pfn 0..4 the L4, L3, L2 and L1 tables, then code, data,
    /// stack.
    const PAGES: usize = 7;
    const PT_FLAGS: u64 = 0x67; // present, writable, user, accessed, dirty
    const CODE_FLAGS: u64 = 0x25; // present, user, accessed: read-only

    // The data page (`DATA_VA`), shared by this builder and the domain's
    // code below: byte offsets.
    /// IN: system time (ns) to start the hypercall loop at.
    const D_START: usize = 0x00;
    /// IN: system time to switch to the event-channel loop at.
    const D_MID: usize = 0x08;
    /// IN: system time to stop at.
    const D_END: usize = 0x10;
    /// OUT: null hypercalls made, and the system times of the first and
    /// the end of the loop.
    const D_NULL: usize = 0x18;
    const D_NULL_T0: usize = 0x20;
    const D_NULL_T1: usize = 0x28;
    /// OUT: event-channel round trips, and the loop's times.
    const D_EVT: usize = 0x30;
    const D_EVT_T0: usize = 0x38;
    const D_EVT_T1: usize = 0x40;
    /// OUT: 1 set up, 2 hypercall loop done, 3 both loops done; on an
    /// error `0x100 | step` with the hypercall's return in `D_ERROR`.
    const D_STATE: usize = 0x48;
    const D_ERROR: usize = 0x50;
    /// The upcall handler sets this byte; the loop clears it.
    const D_FIRED: usize = 0x58;
    /// `struct evtchn_bind_interdomain` {remote_dom, remote_port, OUT local_port}.
    const D_BIND: usize = 0x80;
    /// `struct evtchn_send` {port}: the unbound end this builder allocated.
    const D_SEND: usize = 0x90;
    /// `struct callback_register` {type, flags, address}.
    const D_CALLBACK: usize = 0xa0;
    /// `struct sched_shutdown` {reason}.
    const D_SHUTDOWN: usize = 0xb0;

    extern "C" {
        static scaling_domu_start: u8;
        static scaling_domu_upcall: u8;
        static scaling_domu_end: u8;
    }

    // The built domains' code. It runs in the domain's kernel mode, makes
    // hypercalls with `syscall` (a PV kernel may: the hypercall page does
    // the same), addresses its data page and shared_info absolutely, and
    // jumps only within itself, so its bytes run wherever they are copied.
    // shared_info: vcpu_info[0] at 0 (upcall_pending 0, upcall_mask 1,
    // pending_sel 8, the time record at 0x20: version, tsc_timestamp +8,
    // system_time +0x10, tsc_to_system_mul +0x18, tsc_shift +0x1c), then
    // evtchn_pending at 0x800.
    core::arch::global_asm!(
        r#"
        .section .text.scaling_domu, "ax"
        .globl scaling_domu_start
        .globl scaling_domu_upcall
        .globl scaling_domu_end
    scaling_domu_start:
        mov ${stack_top}, %rsp
        /* VCPUOP_stop_periodic_timer: no ticks (nothing is bound to VIRQ_TIMER). */
        mov ${vcpuop_stop_periodic_timer}, %edi
        xor %esi, %esi
        xor %edx, %edx
        mov ${vcpu_op}, %eax
        syscall
        /* CALLBACKOP_register the event callback (the data page has it). */
        xor %edi, %edi
        mov ${data}+{d_callback}, %esi
        mov ${callback_op}, %eax
        syscall
        mov $0x101, %ecx
        test %rax, %rax
        jnz 90f
        movb $0, {shared}+1                 /* evtchn_upcall_mask */
        /* EVTCHNOP_bind_interdomain to our own unbound port. */
        mov ${evtchnop_bind_interdomain}, %edi
        mov ${data}+{d_bind}, %esi
        mov ${event_channel_op}, %eax
        syscall
        mov $0x102, %ecx
        test %rax, %rax
        jnz 90f
        movq $1, {data}+{d_state}
    2:  call 80f
        cmp {data}+{d_start}, %rax
        jb 2b
        mov %rax, {data}+{d_null_t0}
        mov {data}+{d_mid}, %r13
        xor %r12d, %r12d
        /* The null hypercall, xen_version(XENVER_version, NULL); the clock is read every 64. */
    3:  mov ${xen_version}, %eax
        xor %edi, %edi
        xor %esi, %esi
        syscall
        inc %r12
        test $63, %r12d
        jnz 3b
        call 80f
        cmp %r13, %rax
        jb 3b
        mov %r12, {data}+{d_null}
        mov %rax, {data}+{d_null_t1}
        mov %rax, {data}+{d_evt_t0}
        movq $2, {data}+{d_state}
        mov {data}+{d_end}, %r13
        xor %r12d, %r12d
        /* Event-channel round trips: EVTCHNOP_send, the upcall on the way back. */
    4:  mov ${evtchnop_send}, %edi
        mov ${data}+{d_send}, %esi
        mov ${event_channel_op}, %eax
        syscall
        mov $0x103, %ecx
        test %rax, %rax
        jnz 90f
    5:  cmpb $0, {data}+{d_fired}
        jne 6f
        pause
        jmp 5b
    6:  movb $0, {data}+{d_fired}
        inc %r12
        test $63, %r12d
        jnz 4b
        call 80f
        cmp %r13, %rax
        jb 4b
        mov %r12, {data}+{d_evt}
        mov %rax, {data}+{d_evt_t1}
        movq $3, {data}+{d_state}
        jmp 91f
    90: mov %rax, {data}+{d_error}
        mov %rcx, {data}+{d_state}
    91: mov ${schedop_shutdown}, %edi
        mov ${data}+{d_shutdown}, %esi
        mov ${sched_op}, %eax
        syscall
        ud2

        /* %rax = system time (ns) from vcpu_info[0]'s time record; clobbers %rcx, %rdx, %r8. */
    80: mov {shared}+0x20, %r8d
        test $1, %r8d
        jnz 80b
        lfence
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        sub {shared}+0x28, %rax
        movsbl {shared}+0x3c, %ecx
        test %ecx, %ecx
        js 81f
        shl %cl, %rax
        jmp 82f
    81: neg %ecx
        shr %cl, %rax
    82: mov {shared}+0x38, %edx
        mul %rdx
        shrd $32, %rdx, %rax
        add {shared}+0x30, %rax
        lfence
        cmp {shared}+0x20, %r8d
        jne 80b
        ret

        /* The event callback: Xen's frame (rcx, r11, rip, cs, rflags, rsp, ss). */
    scaling_domu_upcall:
        pop %rcx
        pop %r11
        push %rax
        movb $0, {shared}                   /* evtchn_upcall_pending */
        xor %eax, %eax
        xchg %rax, {shared}+8               /* evtchn_pending_sel */
        mov {data}+{d_bind}+8, %eax         /* our bound port */
        lock btr %rax, {shared}+0x800       /* its evtchn_pending bit */
        movb $1, {data}+{d_fired}
        pop %rax
        /* HYPERVISOR_iret's frame: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss. */
        pushq $0
        push %rcx
        push %r11
        push %rax
        mov ${iret}, %eax
        syscall
        ud2
    scaling_domu_end:
        .text
        "#,
        stack_top = const STACK_VA + 0x1000,
        data = const DATA_VA,
        shared = const SHARED_VA,
        d_start = const D_START,
        d_mid = const D_MID,
        d_end = const D_END,
        d_null = const D_NULL,
        d_null_t0 = const D_NULL_T0,
        d_null_t1 = const D_NULL_T1,
        d_evt = const D_EVT,
        d_evt_t0 = const D_EVT_T0,
        d_evt_t1 = const D_EVT_T1,
        d_state = const D_STATE,
        d_error = const D_ERROR,
        d_fired = const D_FIRED,
        d_bind = const D_BIND,
        d_send = const D_SEND,
        d_callback = const D_CALLBACK,
        d_shutdown = const D_SHUTDOWN,
        vcpu_op = const guest_abi::xen::HYPERVISOR_VCPU_OP,
        vcpuop_stop_periodic_timer = const guest_abi::vcpu::VCPUOP_STOP_PERIODIC_TIMER,
        callback_op = const guest_abi::xen::HYPERVISOR_CALLBACK_OP,
        event_channel_op = const guest_abi::xen::HYPERVISOR_EVENT_CHANNEL_OP,
        evtchnop_bind_interdomain = const guest_abi::event_channel::EVTCHNOP_BIND_INTERDOMAIN,
        evtchnop_send = const guest_abi::event_channel::EVTCHNOP_SEND,
        xen_version = const guest_abi::xen::HYPERVISOR_XEN_VERSION,
        sched_op = const guest_abi::xen::HYPERVISOR_SCHED_OP,
        schedop_shutdown = const guest_abi::sched::SCHEDOP_SHUTDOWN,
        iret = const guest_abi::xen::HYPERVISOR_IRET,
        options(att_syntax)
    );

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn fail(what: &str) -> ! {
        println!("scaling: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    /// The port bound to `VIRQ_DOM_EXC`.
    static DOM_EXC: AtomicU32 = AtomicU32::new(0);
    /// Whether to pin the domains (`pin=0` leaves them to the scheduler).
    static PIN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);
    /// The port bound to `VIRQ_TIMER`.
    static TIMER: AtomicU32 = AtomicU32::new(0);

    /// Waits, blocked (`SCHEDOP_block`, as Linux idles), until `port`
    /// fires or system time reaches `deadline_ns` (a one-shot timer wakes
    /// it then); whether it fired. Events are masked between the look at
    /// the flag and the block, which unmasks them.
    fn wait_until(port: u32, deadline_ns: u64) -> bool {
        loop {
            events::mask_events();
            let fired = events::take(port);
            if fired || events::system_time_ns() >= deadline_ns {
                events::unmask_events();
                return fired;
            }
            let _ = hypercall::set_timer_op(deadline_ns);
            events::block();
            let _ = events::take(TIMER.load(Ordering::Relaxed));
        }
    }
    /// SCRATCH's own frame, mapped back after each foreign access.
    static SCRATCH_MFN: AtomicU64 = AtomicU64::new(0);

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// Where the built domains' frames are mapped while they are written
    /// or read.
    static mut SCRATCH: Page = Page([0; 4096]);

    /// Maps frame `mfn` of domain `id` at SCRATCH, lets `f` use it, and
    /// maps SCRATCH's own frame back.
    fn with_foreign<R>(id: u16, mfn: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
        let va = core::ptr::addr_of!(SCRATCH) as u64;
        // SAFETY: SCRATCH is used only through this function, which maps
        // the frame over it and restores the page's own frame after.
        if unsafe { hypercall::update_va_mapping_otherdomain(va, (mfn << 12) | PT_FLAGS, 2, id) }.is_err() {
            fail("mapping a frame of a built domain");
        }
        // SAFETY: the frame is mapped writable at `va` until remapped below.
        let r = f(unsafe { &mut *(va as *mut [u8; 4096]) });
        if hypercall::update_va_mapping(va, (SCRATCH_MFN.load(Ordering::Relaxed) << 12) | PT_FLAGS, 2).is_err() {
            fail("restoring the scratch page");
        }
        r
    }

    fn put(page: &mut [u8; 4096], at: usize, value: u64) {
        page[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn get(page: &[u8; 4096], at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&page[at..at + 8]);
        u64::from_le_bytes(b)
    }

    /// A built domain: its ID and its data page's frame.
    #[derive(Clone, Copy)]
    struct Built {
        id: u16,
        data: u64,
        cpu: u32,
        pinned: bool,
    }

    /// `XEN_DOMCTL_setvcpuaffinity`: vCPU 0 of `id` runs on `cpu` alone.
    fn pin(id: u16, cpu: u32) -> Result<(), guest_abi::XenError> {
        let mut map = [0u8; 4];
        map[(cpu / 8) as usize % 4] = 1 << (cpu % 8);
        let mut aff = XenDomctlVcpuaffinity::new_zeroed();
        aff.vcpu = 0;
        aff.flags = XEN_VCPUAFFINITY_HARD;
        aff.cpumap_hard.bitmap = GuestHandle::from_mut_ptr(map.as_mut_ptr());
        aff.cpumap_hard.nr_bits = 32;
        let mut op = XenDomctl::new(XEN_DOMCTL_SETVCPUAFFINITY, id);
        op.set_vcpuaffinity(aff);
        hypercall::domctl(&mut op)
    }

    /// Builds one measuring domain (paused) for CPU `cpu`.
    fn build(cpu: u32) -> Built {
        let mut config = XenDomctlCreatedomain::new_zeroed();
        (config.max_vcpus, config.grant_opts, config.max_grant_frames, config.max_maptrack_frames) = (1, 1, -1, -1);
        config.max_evtchn_port = 1023; // libxl's default
        let Ok(id) = hypercall::domain_create(0, config) else { fail("createdomain") };
        let mut mfns = [0u64; PAGES];
        for (i, m) in mfns.iter_mut().enumerate() {
            *m = i as u64;
        }
        if hypercall::domain_max_mem(id, (PAGES as u64 + 1) * 4).is_err()
            || hypercall::populate_physmap_for(id, &mut mfns, 0) != Ok(PAGES as u64)
        {
            fail("memory for a domain to build");
        }
        let [l4, l3, l2, l1, code, data, stack] = mfns;
        let Ok(info) = hypercall::domain_getinfo(id) else { fail("getdomaininfo") };
        let shared = info.shared_info_frame;
        let entry = |page: &mut [u8; 4096], slot: usize, value: u64| put(page, slot * 8, value);
        with_foreign(id, l4, |p| entry(p, 0, (l3 << 12) | PT_FLAGS));
        with_foreign(id, l3, |p| entry(p, 0, (l2 << 12) | PT_FLAGS));
        with_foreign(id, l2, |p| entry(p, ((CODE_VA >> 21) & 511) as usize, (l1 << 12) | PT_FLAGS));
        with_foreign(id, l1, |p| {
            entry(p, 0, (code << 12) | CODE_FLAGS);
            entry(p, 1, (data << 12) | PT_FLAGS);
            entry(p, 2, (stack << 12) | PT_FLAGS);
            entry(p, 3, (shared << 12) | PT_FLAGS);
        });
        // The three symbols label the block of code above, in this image's
        // text, start before upcall before end.
        let (start, upcall, end) = (
            core::ptr::addr_of!(scaling_domu_start) as usize,
            core::ptr::addr_of!(scaling_domu_upcall) as usize,
            core::ptr::addr_of!(scaling_domu_end) as usize,
        );
        let len = end - start;
        if len > 4096 {
            fail("the domains' code is larger than a page");
        }
        // SAFETY: `start..end` is this image's mapped, read-only text.
        let text = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
        with_foreign(id, code, |p| p[..len].copy_from_slice(text));
        let Ok(port) = hypercall::evtchn_alloc_unbound_in(id, id) else { fail("alloc_unbound in a built domain") };
        with_foreign(id, data, |p| {
            p.fill(0);
            // evtchn_bind_interdomain: remote_dom (u16), remote_port (u32 at 4).
            p[D_BIND..D_BIND + 2].copy_from_slice(&DOMID_SELF.to_le_bytes());
            p[D_BIND + 4..D_BIND + 8].copy_from_slice(&port.to_le_bytes());
            p[D_SEND..D_SEND + 4].copy_from_slice(&port.to_le_bytes());
            // callback_register: type (u16), flags (u16), address (u64 at 8).
            p[D_CALLBACK..D_CALLBACK + 2].copy_from_slice(&(CALLBACKTYPE_EVENT as u16).to_le_bytes());
            p[D_CALLBACK + 2..D_CALLBACK + 4].copy_from_slice(&(CALLBACKF_MASK_EVENTS as u16).to_le_bytes());
            put(p, D_CALLBACK + 8, CODE_VA + (upcall - start) as u64);
            p[D_SHUTDOWN..D_SHUTDOWN + 4].copy_from_slice(&SHUTDOWN_POWEROFF.to_le_bytes());
            // Never before these are written.
            put(p, D_START, u64::MAX);
            put(p, D_MID, u64::MAX);
            put(p, D_END, u64::MAX);
        });
        let mut g = VcpuGuestContext::new_zeroed();
        g.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
        (g.user_regs.rip, g.user_regs.rsp) = (CODE_VA, STACK_VA + 0x1000);
        (g.user_regs.cs, g.user_regs.ss, g.user_regs.rflags) = (0xe033, 0xe02b, 0x200);
        (g.kernel_ss, g.kernel_sp, g.ctrlreg[3]) = (0xe02b, STACK_VA + 0x1000, l4 << 12);
        if hypercall::domain_max_vcpus(id, 1).is_err() {
            fail("max_vcpus");
        }
        if let Err(e) = hypercall::domain_set_vcpu_context(id, 0, &g) {
            println!("scaling: setvcpucontext: {e}");
            fail("setvcpucontext");
        }
        let pinned = match if PIN.load(Ordering::Relaxed) { pin(id, cpu) } else { Err(guest_abi::XenError::Eperm) } {
            Ok(()) => true,
            Err(_) if !PIN.load(Ordering::Relaxed) => false,
            Err(e) => {
                println!("scaling: d{id}: setvcpuaffinity to CPU {cpu}: {e}");
                false
            }
        };
        Built { id, data, cpu, pinned }
    }

    /// Whether domain `id` has shut down, and with which reason.
    fn shut_down(id: u16) -> Option<u32> {
        match hypercall::domain_getinfo(id) {
            Ok(i) if i.domain == id && i.flags & XEN_DOMINF_SHUTDOWN != 0 => Some(i.flags >> 16 & 0xff),
            Ok(i) if i.domain == id => None,
            _ => fail("a built domain vanished"),
        }
    }

    /// What a domain that did not finish got to: its data page's progress
    /// and the hypervisor's view (flags, CPU time).
    fn report_stuck(b: &Built) {
        let [state, null, evt] = with_foreign(b.id, b.data, |p| [D_STATE, D_NULL, D_EVT].map(|at| get(p, at)));
        let (flags, cpu_ns) = hypercall::domain_getinfo(b.id).map_or((0, 0), |i| (i.flags, i.cpu_time));
        println!(
            "scaling: d{} (CPU {}): state {state:#x}, {null} null hypercalls, {evt} round trips; domain flags {flags:#x}, {cpu_ns} ns run",
            b.id, b.cpu
        );
    }

    /// Operations per second from a count over `ns` nanoseconds.
    fn per_s(ops: u64, ns: u64) -> u64 {
        if ns == 0 {
            return 0;
        }
        (u128::from(ops) * 1_000_000_000 / u128::from(ns)) as u64
    }

    /// One run: `n` domains, each loop `ms` long.
    fn run(n: usize, ms: u64, cpus: u32, first: u32) {
        println!("scaling: run domains={n} first={first} cpus={cpus}");
        let mut built = [Built { id: 0, data: 0, cpu: 0, pinned: false }; MAX_DOMAINS];
        for (i, b) in built.iter_mut().enumerate().take(n) {
            *b = build((first + i as u32) % cpus.max(1));
        }
        let built = &built[..n];
        // Leave the domains time to start and set up before the clock
        // starts (each reports how late it began).
        let start = events::system_time_ns() + 200_000_000;
        let (mid, end) = (start + ms * 1_000_000, start + 2 * ms * 1_000_000);
        for b in built {
            with_foreign(b.id, b.data, |p| {
                put(p, D_START, start);
                put(p, D_MID, mid);
                put(p, D_END, end);
            });
        }
        for b in built {
            if hypercall::domain_unpause(b.id).is_err() {
                fail("unpausedomain");
            }
        }
        // Blocked until every domain powered off (each raises
        // VIRQ_DOM_EXC), or well past the end.
        let port = DOM_EXC.load(Ordering::Relaxed);
        let deadline = end + 30_000_000_000;
        while built.iter().any(|b| shut_down(b.id).is_none()) {
            if !wait_until(port, deadline) {
                // Say how far each got, and go on with the next run.
                for b in built {
                    report_stuck(b);
                    if hypercall::domain_destroy(b.id).is_err() {
                        fail("destroydomain");
                    }
                }
                println!("scaling: result domains={n} first={first} stuck");
                return;
            }
        }
        // Totals over the window every domain was given: from the start
        // time to the last domain's end of the loop (a domain that started
        // late, or waited for the CPU, counts against the throughput).
        let (mut null_total, mut evt_total, mut null_last, mut evt_last) = (0u64, 0u64, start, mid);
        for b in built {
            let reason = shut_down(b.id).unwrap_or(u32::MAX);
            let r = with_foreign(b.id, b.data, |p| {
                [D_STATE, D_ERROR, D_NULL, D_NULL_T0, D_NULL_T1, D_EVT, D_EVT_T0, D_EVT_T1].map(|at| get(p, at))
            });
            let [state, error, null, null_t0, null_t1, evt, evt_t0, evt_t1] = r;
            if state != 3 || reason != SHUTDOWN_POWEROFF {
                println!("scaling: d{}: shutdown reason {reason}, state {state:#x}, error {}", b.id, error as i64);
                fail("a measuring domain did not finish its loops");
            }
            let (null_ns, evt_ns) = (null_t1.saturating_sub(null_t0), evt_t1.saturating_sub(evt_t0));
            println!(
                "scaling: d{} cpu={} pinned={} null_hypercall={null}/{null_ns} evtchn_roundtrip={evt}/{evt_ns} late_ns={}",
                b.id,
                b.cpu,
                if b.pinned { "yes" } else { "no" },
                null_t0.saturating_sub(start)
            );
            (null_total, evt_total) = (null_total + null, evt_total + evt);
            (null_last, evt_last) = (null_last.max(null_t1), evt_last.max(evt_t1));
            if hypercall::domain_destroy(b.id).is_err() {
                fail("destroydomain");
            }
        }
        let (null_rate, evt_rate) = (per_s(null_total, null_last - start), per_s(evt_total, evt_last - mid));
        println!("scaling: result domains={n} first={first} null_hypercall={null_rate} evtchn_roundtrip={evt_rate}");
    }

    fn main(si: &'static StartInfo) -> ! {
        let scratch_pfn = (core::ptr::addr_of!(SCRATCH) as u64 - 0xffff_ffff_8000_0000) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        let scratch_mfn = unsafe { ((si.mfn_list + scratch_pfn * 8) as *const u64).read_volatile() };
        SCRATCH_MFN.store(scratch_mfn, Ordering::Relaxed);
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        if events::init(si).is_err() {
            fail("event setup");
        }
        // No periodic tick for this domain while it waits.
        let _ = hypercall::vcpu_stop_periodic_timer(0);
        match hypercall::evtchn_bind_virq(VIRQ_DOM_EXC, 0) {
            Ok(port) => DOM_EXC.store(port, Ordering::Relaxed),
            Err(_) => fail("bind VIRQ_DOM_EXC"),
        }
        match hypercall::evtchn_bind_virq(VIRQ_TIMER, 0) {
            Ok(port) => TIMER.store(port, Ordering::Relaxed),
            Err(_) => fail("bind VIRQ_TIMER"),
        }
        events::unmask_events();
        let ms = arg(cmdline, "ms").unwrap_or(2000).clamp(1, 600_000);
        let cpus = hypercall::physinfo().map_or(1, |p| p.nr_cpus.max(1));
        let first = arg(cmdline, "first").unwrap_or(0) as u32;
        PIN.store(arg(cmdline, "pin") != Some(0), Ordering::Relaxed);
        println!("scaling: start ms={ms} cpus={cpus}");
        let runs = cmdline.split(' ').find_map(|kv| kv.strip_prefix("runs=")).unwrap_or("1");
        for entry in runs.split(',') {
            let (n, at) = entry.split_once('@').map_or((entry, None), |(n, f)| (n, Some(f)));
            let at = match at.map(str::parse::<u32>) {
                None => first,
                Some(Ok(f)) => f,
                Some(Err(_)) => fail("runs=: N@F takes a CPU number F"),
            };
            match n.parse::<usize>() {
                Ok(n @ 1..=MAX_DOMAINS) => run(n, ms, cpus, at),
                _ => fail("runs= takes a list of domain counts, 1 to 8, each with @CPU or not"),
            }
        }
        println!("scaling: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
