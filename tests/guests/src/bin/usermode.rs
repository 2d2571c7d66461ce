//! Guest kernel and user mode, events and broken contexts. Command line:
//! - `usermode`: probes the `physdev_op` and `vcpu_op` sub-ops whose
//!   answers do not depend on the machine's devices and prints what they
//!   answered (an NMI sent to itself included), checks that masked events
//!   (per port and per vCPU) stay pending and arrive on unmask, then runs a
//!   user-mode process that makes system calls while a periodic timer keeps
//!   interrupting it, and checks every call came back with the kernel's
//!   answer; last, an `iret` to Xen's flat 32-bit code selector runs 32-bit
//!   code at a low address, whose `syscall` must enter the `syscall32`
//!   callback.
//! - `usermode bad-iret`: an `iret` hypercall whose frame is unreadable.
//! - `usermode bad-trap`: a trap table whose #UD handler is not canonical
//!   (refused), then one whose #UD handler is unmapped, then a #UD.
//! - `usermode bad-stack-ro`, `usermode bad-stack-unmapped`: a page fault
//!   in guest kernel mode with a #PF handler registered but the stack
//!   pointer on a read-only page (the top-level page table, which the
//!   guest maps read-only) or an unmapped one: the bounce frame cannot be
//!   written (the fast path's direct write through the loaded tables
//!   faults in the hypervisor and must be fixed up).
//!
//! The bad ones must crash this domain and no other.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::{asm, global_asm};
    use core::sync::atomic::{AtomicU64, Ordering};

    use guest_abi::arch_x86::TrapInfo;
    use guest_abi::hypercall::{self, hypercall2, hypercall3, hypercall4};
    use guest_abi::physdev::*;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{
        MmuUpdate, MmuextOp, StartInfo, DOMID_SELF, HYPERVISOR_MMUEXT_OP, HYPERVISOR_PHYSDEV_OP, HYPERVISOR_VCPU_OP,
        MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, UVMF_INVLPG, VIRQ_TIMER,
    };
    use guest_rt::{events, println};

    /// System calls the user process makes.
    const CALLS: u64 = 3000;
    /// System calls answered by the kernel (its answer is the new count).
    static ANSWERED: AtomicU64 = AtomicU64::new(0);
    /// Upcalls when the user process started.
    static UPCALLS_AT_START: AtomicU64 = AtomicU64::new(0);
    /// Wrong answers the user process saw.
    static WRONG: AtomicU64 = AtomicU64::new(0);

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    static mut USER_STACK: [Page; 2] = [const { Page([0; 4096]) }; 2];
    static mut KERNEL_STACK: [Page; 4] = [const { Page([0; 4096]) }; 4];
    /// An L3, L2 and L1 that map the last page, holding the 32-bit code
    /// and its stack, at [`COMPAT_VA`].
    static mut COMPAT_PAGES: [Page; 4] = [const { Page([0; 4096]) }; 4];
    /// The I/O bitmap handed to `PHYSDEVOP_set_iobitmap`, and the page
    /// registered as the PIRQ EOI bitmap.
    static mut BITMAPS: [Page; 3] = [const { Page([0; 4096]) }; 3];
    /// Where the 32-bit code runs: L4 slot 0, L3 index 1.
    const COMPAT_VA: u64 = 0x4000_0000;
    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// The p2m list (`start_info.mfn_list`).
    static MFN_LIST: AtomicU64 = AtomicU64::new(0);
    /// NMIs the NMI callback took.
    static NMIS: AtomicU64 = AtomicU64::new(0);

    fn fail(what: &str) -> ! {
        println!("usermode: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn check(ok: bool, what: &str) {
        if !ok {
            fail(what);
        }
        println!("usermode: ok: {what}");
    }

    /// `physdev_op(cmd, arg)` with `arg` pointing at `bytes`.
    fn physdev(cmd: u32, bytes: &mut [u8]) -> i64 {
        // SAFETY: the hypervisor reads and writes at most the op's struct,
        // which each caller's buffer holds.
        unsafe { hypercall2(HYPERVISOR_PHYSDEV_OP, u64::from(cmd), bytes.as_mut_ptr() as u64) }
    }

    fn vcpu_op(cmd: u32, arg: u64) -> i64 {
        // SAFETY: only null or unmapped arguments: nothing of ours is written.
        unsafe { hypercall3(HYPERVISOR_VCPU_OP, u64::from(cmd), 0, arg) }
    }

    /// `n` little-endian words.
    fn words<const N: usize>(ws: [u32; N]) -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, w) in ws.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    fn word(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]])
    }

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn_of(va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((MFN_LIST.load(Ordering::Relaxed) + pfn * 8) as *const u64).read_volatile() }
    }

    /// The `physdev_op` sub-ops whose answers do not depend on the
    /// machine's devices, as this domain (the control domain) gets them.
    fn physdev_probes() {
        let bitmap = core::ptr::addr_of!(BITMAPS) as u64;
        let iobitmap = |addr: u64, ports: u32| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&addr.to_le_bytes());
            b[8..12].copy_from_slice(&ports.to_le_bytes());
            physdev(PHYSDEVOP_SET_IOBITMAP, &mut b)
        };
        let (too_many, hole) = (iobitmap(bitmap, 65537), iobitmap(0xffff_8000_0000_0000, 8));
        let (set, none) = (iobitmap(bitmap, 0x400), iobitmap(0, 0));
        println!("usermode: physdev set_iobitmap: 65537 ports {too_many}, in the hypervisor's hole {hole}, a bitmap {set}, none {none}");

        let mut q = words([1, 0x55]);
        let rc = physdev(PHYSDEVOP_IRQ_STATUS_QUERY, &mut q);
        let big = physdev(PHYSDEVOP_IRQ_STATUS_QUERY, &mut words([0x10000, 0]));
        println!("usermode: physdev irq_status_query: pirq 1 {rc} flags {}, pirq 65536 {big}", word(&q, 1));
        let eoi1 = physdev(PHYSDEVOP_EOI, &mut words([1]));
        let mut free = words([MAP_PIRQ_TYPE_MSI, 0]);
        let rc = physdev(PHYSDEVOP_GET_FREE_PIRQ, &mut free);
        let eoi = physdev(PHYSDEVOP_EOI, &mut words([word(&free, 1)]));
        println!(
            "usermode: physdev eoi: pirq 1 {eoi1}; get_free_pirq(MSI) {rc} pirq {}, its eoi {eoi}",
            word(&free, 1)
        );

        let gmfn = |mfn: u64| physdev(PHYSDEVOP_PIRQ_EOI_GMFN_V2, &mut mfn.to_le_bytes());
        let page = mfn_of(bitmap + 2 * 4096);
        let (bad, first, again) = (gmfn(0xf_ffff_ffff), gmfn(page), gmfn(page));
        println!("usermode: physdev pirq_eoi_gmfn_v2: a bad frame {bad}, a page {first}, again {again}");

        let mut irq = words([9, 0]);
        let rc = physdev(PHYSDEVOP_ALLOC_IRQ_VECTOR, &mut irq);
        let apic = physdev(PHYSDEVOP_APIC_READ, &mut words([0x1000, 0, 1, 0]));
        println!("usermode: physdev alloc_irq_vector(9): {rc} vector {}; apic_read(0x1000): {apic}", word(&irq, 1));

        let unmap = physdev(PHYSDEVOP_UNMAP_PIRQ, &mut words([u32::from(DOMID_SELF), 20]));
        let mut map = [0u8; 40];
        map[..16].copy_from_slice(&words([u32::from(DOMID_SELF), 7]));
        let map = physdev(PHYSDEVOP_MAP_PIRQ, &mut map);
        let gsi = physdev(PHYSDEVOP_SETUP_GSI, &mut words([100, 0]));
        let ext = physdev(PHYSDEVOP_MANAGE_PCI_ADD_EXT, &mut words([0, 2, 0, 0]));
        println!("usermode: physdev unmap_pirq(20) {unmap}, map_pirq(type 7) {map}, setup_gsi(100) {gsi}, manage_pci_add_ext(is_extfn 2) {ext}");

        let dbgp = physdev(PHYSDEVOP_DBGP_OP, &mut words([1]));
        let free_vector = physdev(PHYSDEVOP_FREE_IRQ_VECTOR, &mut words([9, 9]));
        let (unknown, unmask) = (physdev(99, &mut [0; 16]), physdev(PHYSDEVOP_IRQ_UNMASK_NOTIFY, &mut [0; 16]));
        println!("usermode: physdev dbgp_op {dbgp}, free_irq_vector {free_vector}, sub-op 99 {unknown}, IRQ_UNMASK_NOTIFY {unmask}");
    }

    extern "C" {
        fn nmi_entry();
    }

    // The NMI callback: counts, and returns with the `iret` hypercall.
    global_asm!(
        r#"
        .section .text
        .globl nmi_entry
    nmi_entry:
        pop %rcx
        pop %r11
        lock incq {nmis}(%rip)
        pushq $0
        jmp hypercall_page + 23 * 32
        "#,
        nmis = sym NMIS,
        options(att_syntax)
    );

    /// `vcpu_op`'s sub-ops beyond timers and runstate, and an NMI sent to
    /// this vCPU, without and then with an NMI callback.
    fn vcpu_probes() {
        use guest_abi::vcpu::{VCPUOP_GET_PHYSID, VCPUOP_SEND_NMI};
        let non_null = vcpu_op(VCPUOP_SEND_NMI, 0x1000);
        let physid = vcpu_op(VCPUOP_GET_PHYSID, 0x1000);
        let unknown = vcpu_op(14, 0);
        let physid_ok = hypercall::vcpu_get_physid(0);
        println!("usermode: vcpu_op send_nmi(non-null) {non_null}, get_physid(unmapped) {physid}, get_physid {physid_ok:?}, sub-op 14 {unknown}");
        // Where Xen reads or checks less than one might think: the
        // context first, the areas where they start, their writes unchecked.
        use guest_abi::vcpu::{
            VCPUOP_INITIALISE, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
        };
        let init = vcpu_op(VCPUOP_INITIALISE, 0x1000);
        let area = |cmd, va: u64| vcpu_op(cmd, &va as *const u64 as u64);
        let runstate = area(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0x1000);
        let hole = area(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0xffff_8000_0000_0000);
        let time = area(VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0x7fff_ffff_fff0);
        let undone = area(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0) | area(VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0);
        let period = hypercall::vcpu_set_periodic_timer(0, 1 << 63);
        println!("usermode: vcpu_op initialise(unmapped) {init}, runstate area unmapped {runstate}, in the hole {hole}, time area at the top {time}, both off {undone}, a period of 2^63 ns {period:?}");
        let dropped = vcpu_op(VCPUOP_SEND_NMI, 0);
        let before = NMIS.load(Ordering::SeqCst);
        if hypercall::register_callback(4, 0, nmi_entry as *const () as u64).is_err() {
            fail("register the NMI callback");
        }
        let sent = vcpu_op(VCPUOP_SEND_NMI, 0);
        let after = NMIS.load(Ordering::SeqCst);
        println!(
            "usermode: vcpu_op send_nmi: without a callback {dropped} ({before} NMIs), with one {sent} ({after} NMIs)"
        );
    }

    /// #GPs taken at an `in` the I/O bitmap refused.
    static IO_FAULTS: AtomicU64 = AtomicU64::new(0);

    /// Skips an `in al, imm8` that raised #GP, and counts it.
    fn io_fault(frame: &mut guest_rt::traps::TrapFrame) -> bool {
        // SAFETY: rip is the faulting instruction of this kernel's code.
        let opcode = unsafe { (frame.rip as *const u8).read() };
        if frame.vector != 13 || opcode != 0xe4 {
            return false;
        }
        IO_FAULTS.fetch_add(1, Ordering::SeqCst);
        frame.rip += 2;
        true
    }

    /// Whether `in al, $PORT` went through without a #GP.
    fn port_readable<const PORT: u8>() -> bool {
        let before = IO_FAULTS.load(Ordering::SeqCst);
        // SAFETY: reads a harmless legacy port (or faults, which io_fault
        // skips).
        unsafe { asm!("in al, {p}", p = const PORT, out("al") _) };
        IO_FAULTS.load(Ordering::SeqCst) == before
    }

    /// With no I/O privilege, the I/O bitmap alone grants ports: those
    /// whose bit is clear, below its limit.
    fn io_bitmap_probe() {
        if guest_rt::traps::install(io_fault).is_err() {
            fail("install the trap table");
        }
        let bitmap = core::ptr::addr_of_mut!(BITMAPS) as u64;
        // SAFETY: the bitmap page is this test's; port 0x80's bit clear.
        unsafe {
            core::ptr::write_bytes(bitmap as *mut u8, 0xff, 4096);
            ((bitmap + 0x10) as *mut u8).write_volatile(0xfe);
        }
        let set = |ports: u32| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&bitmap.to_le_bytes());
            b[8..12].copy_from_slice(&ports.to_le_bytes());
            physdev(PHYSDEVOP_SET_IOBITMAP, &mut b) == 0
        };
        let none = (port_readable::<0x80>(), port_readable::<0x81>());
        let covered = set(0x400) && port_readable::<0x80>() && !port_readable::<0x81>();
        let limited = set(0x80) && !port_readable::<0x80>();
        let mut off = [0u8; 16];
        let reset = physdev(PHYSDEVOP_SET_IOBITMAP, &mut off) == 0;
        println!("usermode: I/O bitmap: without one ports 0x80/0x81 {none:?}; with 0x80 clear: 0x80 only {covered}; 0x80 past the limit refused {limited}; reset {reset}");
    }

    /// Masked events stay pending; unmasking delivers them.
    fn masked_events() {
        let Ok(a) = hypercall::evtchn_alloc_unbound(DOMID_SELF) else { fail("alloc_unbound") };
        let Ok(b) = hypercall::evtchn_bind_interdomain(DOMID_SELF, a) else { fail("bind_interdomain") };
        events::unmask_events();
        let _ = hypercall::xen_version(); // deliver the bind's own event
        while events::take(b) {}

        events::mask_port(b);
        let before = events::upcalls();
        check(hypercall::evtchn_send(a).is_ok(), "send to a masked port");
        let _ = hypercall::xen_version();
        check(events::upcalls() == before && events::is_pending(b), "a masked port stays pending, no upcall");
        check(hypercall::evtchn_unmask(b).is_ok(), "EVTCHNOP_unmask");
        check(events::take(b) && events::upcalls() == before + 1, "unmasking delivers the pending event");

        events::mask_events();
        let before = events::upcalls();
        let _ = hypercall::evtchn_send(a);
        let _ = hypercall::xen_version();
        check(events::upcalls() == before && events::is_pending(b), "with the vCPU masked nothing is delivered");
        events::unmask_events();
        check(events::take(b) && events::upcalls() == before + 1, "clearing the vCPU mask delivers it");
    }

    fn mmuext_new_user_baseptr(mfn: u64) -> i64 {
        let mut op = [0u8; 24]; // struct mmuext_op {cmd, pad, arg1 = mfn, arg2}
        op[0..4].copy_from_slice(&15u32.to_le_bytes()); // MMUEXT_NEW_USER_BASEPTR
        op[8..16].copy_from_slice(&mfn.to_le_bytes());
        let mut done = 0u32;
        // SAFETY: one valid mmuext_op and a done counter.
        unsafe {
            hypercall4(
                HYPERVISOR_MMUEXT_OP,
                op.as_ptr() as u64,
                1,
                core::ptr::addr_of_mut!(done) as u64,
                u64::from(DOMID_SELF),
            )
        }
    }

    fn read_cr3() -> u64 {
        let v: u64;
        // SAFETY: xenish emulates the read of %cr3.
        unsafe { asm!("mov {}, cr3", out(reg) v) };
        v
    }

    /// Enters user mode (the same page tables, as XTF does) at `user_main`.
    fn user_process() -> ! {
        let Ok(port) = hypercall::evtchn_bind_virq(VIRQ_TIMER, 0) else { fail("bind VIRQ_TIMER") };
        if hypercall::vcpu_set_periodic_timer(0, 1_000_000).is_err() {
            fail("periodic timer");
        }
        let _ = port;
        let kstack = core::ptr::addr_of!(KERNEL_STACK) as u64 + 4 * 4096;
        let ready = mmuext_new_user_baseptr(read_cr3() >> 12) == 0
            && hypercall::register_callback(2, 1, syscall_entry as *const () as u64).is_ok() // syscall, mask events
            && hypercall::stack_switch(0xe02b, kstack).is_ok();
        if !ready {
            fail("entering user mode");
        }
        UPCALLS_AT_START.store(events::upcalls(), Ordering::SeqCst);
        let ustack = core::ptr::addr_of!(USER_STACK) as u64 + 2 * 4096;
        // The iret frame: rax, r11, rcx, flags, rip, cs, rflags (IF), rsp, ss.
        let frame: [u64; 9] = [0, 0, 0, 0, user_main as *const () as u64, 0xe033, 0x202, ustack, 0xe02b];
        // SAFETY: iret to guest user mode; control comes back through the
        // syscall callback, which ends in `user_done`.
        unsafe {
            asm!("mov rsp, {f}", "mov eax, 23", "syscall", f = in(reg) frame.as_ptr(), options(noreturn));
        }
    }

    extern "C" {
        fn syscall_entry();
    }

    // The kernel's system call entry: counts the call, answers with the new
    // count in rax and returns to user mode; 0xdead ends the test.
    global_asm!(
        r#"
        .section .text
        .globl syscall_entry
    syscall_entry:
        pop %rcx
        pop %r11
        cmp $0xdead, %rax
        je 1f
        lock incq {answered}(%rip)
        mov {answered}(%rip), %rax
        pushq $0x100                /* VGCF_in_syscall */
        jmp hypercall_page + 23 * 32
    1:  and $-16, %rsp
        call {done}
        "#,
        answered = sym ANSWERED,
        done = sym user_done,
        options(att_syntax)
    );

    /// Runs in guest user mode: system calls with some work in between.
    extern "C" fn user_main() -> ! {
        for i in 1..=CALLS {
            let answer: u64;
            // SAFETY: a system call to the guest kernel, which returns here.
            unsafe { asm!("syscall", inout("rax") 1u64 => answer, out("rcx") _, out("r11") _) };
            if answer != i {
                WRONG.fetch_add(1, Ordering::Relaxed);
            }
            for _ in 0..2000 {
                core::hint::spin_loop();
            }
        }
        // SAFETY: the marker makes the callback stay in the kernel.
        unsafe { asm!("syscall", in("rax") 0xdeadu64, options(noreturn)) };
    }

    extern "C" fn user_done() -> ! {
        let upcalls = events::upcalls() - UPCALLS_AT_START.load(Ordering::SeqCst);
        let (answered, wrong) = (ANSWERED.load(Ordering::SeqCst), WRONG.load(Ordering::SeqCst));
        println!("usermode: user process made {answered} system calls, {wrong} wrong answers");
        check(answered == CALLS && wrong == 0, "every system call returned to user mode with its answer");
        check(upcalls > 0, "timer events interrupted the user process");
        compat_mode()
    }

    extern "C" {
        fn compat_code();
        fn compat_code_end();
        fn compat_syscall_entry();
    }

    // 32-bit code: eax is 1 in 64-bit mode (0x48 is a REX prefix there) and
    // 0 in 32-bit mode (0x48 is `dec %eax`); then a system call, with a
    // marker in edx. The syscall32 callback hands the frame on.
    global_asm!(
        r#"
        .section .text
        .globl compat_code
        .globl compat_code_end
        .code32
    compat_code:
        mov $1, %eax
        .byte 0x48
        nop
        mov $0xc0de, %edx
        syscall
        ud2
    compat_code_end:
        .code64

        .globl compat_syscall_entry
    compat_syscall_entry:
        pop %rcx
        pop %r11
        mov %rsp, %rdi
        mov %rax, %rsi
        and $-16, %rsp
        call {done}
        "#,
        done = sym compat_done,
        options(att_syntax)
    );

    fn page_va(i: usize) -> u64 {
        // SAFETY: only the address is taken.
        unsafe { core::ptr::addr_of!(COMPAT_PAGES[i]) as u64 }
    }

    /// Maps the code page at COMPAT_VA (L4 slot 0 of the running tables,
    /// which user mode shares), copies the 32-bit code there and returns to
    /// it in user mode through `iret` with Xen's flat 32-bit code selector.
    fn compat_mode() -> ! {
        const RW: u64 = 0x67; // P | RW | US | A | D
        const RO: u64 = 0x25; // P | US | A
        let [l3, l2, l1, code] = [0, 1, 2, 3].map(|i| mfn_of(page_va(i)));
        let len = compat_code_end as *const () as usize - compat_code as *const () as usize;
        // SAFETY: the code page is this kernel's, written before it is mapped
        // low; the bytes are the assembled 32-bit code above.
        unsafe {
            core::ptr::copy_nonoverlapping(compat_code as *const u8, page_va(3) as *mut u8, len);
            (page_va(2) as *mut u64).write_volatile((code << 12) | RW);
        }
        let ext = |cmd, mfn| {
            // SAFETY: pins this test's own, read-only table pages.
            unsafe { hypercall::mmuext_op(&[MmuextOp::new(cmd, mfn, 0)], DOMID_SELF) }.is_ok()
        };
        let link = |ptr: u64, val: u64| {
            // SAFETY: links this test's own tables into each other and into
            // L4 slot 0, which nothing else uses.
            unsafe { hypercall::mmu_update(&[MmuUpdate { ptr, val }], DOMID_SELF) }.is_ok()
        };
        let tables_ro = (0..3).all(|i| {
            hypercall::update_va_mapping(page_va(i), (mfn_of(page_va(i)) << 12) | RO, u64::from(UVMF_INVLPG)).is_ok()
        });
        let mapped = tables_ro
            && ext(MMUEXT_PIN_L2_TABLE, l2)
            && link(l2 << 12, (l1 << 12) | RW)
            && ext(MMUEXT_PIN_L3_TABLE, l3)
            && link((l3 << 12) + 8, (l2 << 12) | RW)
            && link(read_cr3() & !0xfff, (l3 << 12) | RW);
        check(mapped, "32-bit code mapped at 0x40000000");
        if hypercall::register_callback(7, 1, compat_syscall_entry as *const () as u64).is_err() {
            fail("register the syscall32 callback");
        }
        // rax, r11, rcx, flags, rip, cs (FLAT_RING3_CS32), rflags, rsp, ss.
        let frame: [u64; 9] = [0, 0, 0, 0, COMPAT_VA, 0xe023, 0x202, COMPAT_VA + 0x1000, 0xe02b];
        // SAFETY: iret to 32-bit user code; control comes back through the
        // syscall32 callback, which ends in `compat_done`.
        unsafe {
            asm!("mov rsp, {f}", "mov eax, 23", "syscall", f = in(reg) frame.as_ptr(), options(noreturn));
        }
    }

    /// The syscall32 callback's report: `frame` is its bounce frame past
    /// rcx and r11 (rip, cs, rflags, rsp, ss), `eax` the mode probe.
    extern "C" fn compat_done(frame: *const u64, eax: u64, edx: u64) -> ! {
        // SAFETY: the hypervisor's bounce frame on this kernel's stack.
        let (rip, cs) = unsafe { (frame.read(), frame.add(1).read()) };
        println!("usermode: 32-bit code: eax {eax}, edx {edx:#x}, syscall from cs {:#x} at rip {rip:#x}", cs & 0xffff);
        check(
            eax == 0 && edx == 0xc0de && cs & 0xffff == 0xe023,
            "an iret to 0xe023 ran 32-bit code, its syscall entered the syscall32 callback",
        );
        println!("usermode: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    fn bad_iret() -> ! {
        println!("usermode: iret with an unreadable frame");
        // SAFETY: the hypervisor reads the frame at rsp = 0x1000, which is
        // unmapped, and must crash this domain.
        unsafe { asm!("mov rsp, 0x1000", "mov eax, 23", "syscall", options(noreturn)) }
    }

    fn bad_trap() -> ! {
        let entry = |vector, address| TrapInfo { vector, flags: 0, cs: 0xe033, _pad0: [0; 4], address };
        let end = entry(0, 0);
        let refused = hypercall::set_trap_table(&[entry(6, 0x8000_0000_0000_0000), end]);
        check(refused == Err(guest_abi::XenError::Einval), "a non-canonical handler is refused: EINVAL");
        // A #UD handler in unmapped memory, and no #PF handler.
        check(hypercall::set_trap_table(&[entry(6, 0x2000), end]).is_ok(), "a trap table with an unmapped #UD handler");
        println!("usermode: ud2");
        // SAFETY: raises #UD on purpose; the handler cannot even be fetched.
        unsafe { asm!("ud2", options(noreturn)) }
    }

    /// A kernel-mode page fault (a read of unmapped 0x1000) with the stack
    /// pointer at `rsp`, where no bounce frame can be written.
    fn bad_stack(rsp: u64, what: &str) -> ! {
        let pf = TrapInfo { vector: 14, flags: 0, cs: 0xe033, _pad0: [0; 4], address: bad_stack as *const () as u64 };
        let end = TrapInfo { vector: 0, flags: 0, cs: 0, _pad0: [0; 4], address: 0 };
        check(hypercall::set_trap_table(&[pf, end]).is_ok(), "a #PF handler registered");
        println!("usermode: a page fault with the stack on {what} page at {rsp:#x}");
        // SAFETY: faults on purpose, with a stack the hypervisor cannot
        // write the bounce frame to: it must crash this domain.
        unsafe { asm!("mov rsp, {rsp}", "mov rax, [0x1000]", "ud2", rsp = in(reg) rsp, options(noreturn)) }
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        if cmdline.contains("bad-stack-ro") {
            // The top of the top-level table's page, mapped read-only.
            bad_stack(si.pt_base + 0x1000, "a read-only")
        }
        if cmdline.contains("bad-stack-unmapped") {
            bad_stack(0x3000, "an unmapped")
        }
        if events::init(si).is_err() {
            fail("event setup");
        }
        if cmdline.contains("bad-iret") {
            bad_iret()
        }
        if cmdline.contains("bad-trap") {
            bad_trap()
        }
        MFN_LIST.store(si.mfn_list, Ordering::Relaxed);
        physdev_probes();
        vcpu_probes();
        io_bitmap_probe();
        masked_events();
        user_process()
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
