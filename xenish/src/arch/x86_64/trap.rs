//! Glue between the entry stubs and the portable core: runs the domains,
//! routes guest traps and hypercalls to [`System`], carries out its
//! [`Action`]s, and reports hypervisor faults.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::memory::DirectMap;
use super::{apic, clock, cpu, entry, fpu, gdt, ipi, serial};
use crate::domain::{Domain, SegmentState};
use crate::flush::FlushReq;
use crate::hypercall::{E820Entry, Platform, Segment, TlbFlush};
use crate::mm::frame_table::FrameTable;
use crate::mm::m2p::M2p;
use crate::mm::{FramePool, Mfn};
use crate::regs::TrapFrame;
use crate::sched::{SchedParams, VcpuRef};
use crate::sync::{RwSpinLock, WriteGuard};
use crate::system::{may_be_fast, Action, Fast, FastGate, Next, System, CONSOLE_POLL_NS};
use crate::time::{Clock, TimeScale};
use crate::traps::{CpuOps, CR4_FSGSBASE, MSR_FS_BASE, MSR_GS_BASE, MSR_SHADOW_GS_BASE};

/// The lock over the portable core: taken shared by the fast path
/// ([`fast_syscall`]: hypercalls that change nothing but the caller's own
/// memory and frame), each CPU in its own reader slot, exclusively by
/// every other entry. Write-preferring, so that CPUs making fast
/// hypercalls back to back cannot keep a timer interrupt or a slow
/// hypercall out. A waiter that has spun [`LOCK_DOZE_US`] halts until the
/// holder lets go ([`SystemWaiter`]).
static SYSTEM: RwSpinLock<Option<System>> = RwSpinLock::with_waker(None, ipi::wake_cpus);

/// Takes the system lock exclusively. The hypervisor runs with interrupts
/// off, so while it spins it serves a TLB shootdown addressed to this CPU
/// itself: a holder that shoots this CPU down cannot wait on it forever.
///
/// With guests on several CPUs (`smp_guests`), the entry's decisions are
/// made about this CPU's scheduling state ([`System::enter_cpu`]: it only
/// names the CPU, each CPU's state has its own slot).
///
/// In line in every entry: the call and the frame of a function of its
/// own were a quarter of its cost.
#[inline(always)]
fn lock_system() -> WriteGuard<'static, Option<System>> {
    let cpu = super::percpu::cpu_index();
    let mut guard = SYSTEM.write_waiting(cpu, &mut SystemWaiter::default());
    if SMP_GUESTS.load(Ordering::Relaxed) {
        if let Some(system) = guard.as_mut() {
            system.enter_cpu(cpu);
        }
    }
    guard
}

/// How long a CPU waits for the system lock before it claims the next
/// turn (µs): far longer than an entry holds it, far shorter than a time
/// slice.
const LOCK_PATIENCE_US: u64 = 1000;

/// How long a CPU spins for the system lock before it halts until the
/// holder lets go (µs): longer than most entries hold the lock, so that a
/// waiter on a quiet host rarely pays an IPI's wake-up, and short enough
/// that on an overcommitted host (the emulated CPU holding the lock
/// descheduled by the host) the waiter gives the host's CPU back soon.
const LOCK_DOZE_US: u64 = 50;

/// How a CPU waits for the system lock ([`crate::sync::Waiter`]): it
/// serves TLB shootdowns addressed to itself while it spins, claims the
/// next turn after [`LOCK_PATIENCE_US`], and halts ([`ipi::doze`]) once
/// it has spun [`LOCK_DOZE_US`], to be woken by the release's IPI.
#[derive(Default)]
struct SystemWaiter {
    /// The TSC when the CPU first found the lock taken (0: not yet read).
    since: u64,
    /// Whether it halted: an event-check IPI may have been taken.
    halted: bool,
}

impl Drop for SystemWaiter {
    #[inline]
    fn drop(&mut self) {
        if self.halted {
            ipi::kick_self_if_flagged();
        }
    }
}

impl SystemWaiter {
    /// Whether the CPU has waited more than `us` µs since its first look.
    #[inline]
    fn waited(&mut self, us: u64) -> bool {
        let now = clock::rdtsc();
        if self.since == 0 {
            self.since = now;
        }
        now.wrapping_sub(self.since) > TSC_HZ.load(Ordering::Relaxed) / 1_000_000 * us
    }
}

impl crate::sync::Waiter for SystemWaiter {
    #[inline]
    fn relax(&mut self) {
        ipi::serve_flush();
    }
    #[inline]
    fn impatient(&mut self) -> bool {
        self.waited(LOCK_PATIENCE_US)
    }
    #[inline]
    fn drowsy(&mut self) -> bool {
        self.waited(LOCK_DOZE_US)
    }
    fn halt(&mut self) {
        LOCK_DOZES.fetch_add(1, Ordering::Relaxed);
        self.halted = true;
        ipi::doze();
    }
    fn acquired(&mut self) {
        if self.since != 0 {
            LOCK_LONGEST_WAIT.fetch_max(clock::rdtsc().wrapping_sub(self.since), Ordering::Relaxed);
        }
    }
}

/// The fast path of a `syscall` ([`System::fast_syscall`]), under the
/// system lock taken shared (spinning as [`lock_system`] does): whether
/// the entry is complete. `false` leaves the entry untouched for the slow
/// path. Out of line: the slow path's frame stays as small as before.
#[inline(never)]
fn fast_syscall(frame: &mut TrapFrame) -> bool {
    fast_entry(frame, |system, cpu, frame, mem| system.fast_syscall_open(cpu, frame, mem, &mut Hardware))
}

/// The fast path of a guest's page fault at `cr2`
/// ([`System::fast_page_fault`]), as [`fast_syscall`].
#[inline(never)]
fn fast_page_fault(frame: &mut TrapFrame, cr2: u64) -> bool {
    fast_entry(frame, |system, cpu, frame, mem| system.fast_page_fault_open(cpu, frame, cr2, mem))
}

/// The fast path of a guest kernel's `rdmsr`/`wrmsr` of a segment base
/// ([`System::fast_privileged_op`]), as [`fast_syscall`].
#[inline(never)]
fn fast_segment_msr(frame: &mut TrapFrame) -> bool {
    fast_entry(frame, |system, cpu, frame, mem| system.fast_privileged_op_open(cpu, frame, mem, &mut Hardware))
}

/// [`fast_syscall`], [`fast_page_fault`] and [`fast_segment_msr`]: `serve`
/// under the shared lock, then the return it asks for.
#[inline(always)]
fn fast_entry(
    frame: &mut TrapFrame,
    serve: impl FnOnce(&System, usize, &mut TrapFrame, &mut DirectMap) -> Fast,
) -> bool {
    let outcome = {
        let cpu = super::percpu::cpu_index();
        // The lock found free in line, with no waiter to build and drop.
        let guard = match SYSTEM.try_read(cpu) {
            Some(guard) => guard,
            None => read_system_contended(cpu),
        };
        let Some(system) = guard.as_ref() else { return false };
        // A fired timer is re-armed, and device interrupts are delivered,
        // by a slow entry.
        if super::percpu::this_cpu().armed_ns.load(Ordering::Relaxed) == TIMER_FIRED || crate::irq::any_pending() {
            return false;
        }
        let slot = if system.smp_guests { cpu } else { 0 };
        // The system-wide conditions and their deadline, kept per CPU in
        // TSC units until a writer gets in (System::fast_until_ns).
        let gate = &FAST_GATES[cpu % super::percpu::MAX_CPUS];
        if !gate.open(SYSTEM.generation(), clock::rdtsc(), || system.clock.tsc_before(system.fast_until_ns(slot))) {
            return false;
        }
        serve(system, slot, frame, &mut memory())
    };
    match outcome {
        Fast::Declined => false,
        // A return within guest kernel mode: a guess of user mode left
        // stale here is put right by the next slow `syscall`.
        Fast::Done => true,
        Fast::Toggled { l4, kernel } => {
            in_user_mode().store(!kernel, Ordering::Relaxed);
            // The slow path's toggled return: swapgs and the new table
            // (under XPTI the exit stub's prepare_exit copies it into the
            // root table as after any CR3 load).
            carry_out_changes(Action { toggled: true, reload_gdt: false, next: Next::Reload(l4) }, None, frame);
            true
        }
        Fast::Exit { was_kernel } => {
            enter(frame, |s, f, now, tsc, mem| {
                let action = s.finish_fast_entry(was_kernel, f, now, tsc, mem);
                in_user_mode().store(s.current_in_user_mode(), Ordering::Relaxed);
                action
            });
            true
        }
    }
}

/// Per CPU: the fast path's system-wide conditions in TSC units, until the
/// system lock's next writer ([`FastGate`]).
static FAST_GATES: [FastGate; super::percpu::MAX_CPUS] = [const { FastGate::new() }; super::percpu::MAX_CPUS];

/// [`fast_entry`]'s shared take of the system lock once it was not free:
/// waiting as [`lock_system`] does.
#[cold]
#[inline(never)]
fn read_system_contended(cpu: usize) -> crate::sync::ReadGuard<'static, Option<System>> {
    SYSTEM.read_waiting(cpu, &mut SystemWaiter::default())
}

/// Whether vCPUs run on every CPU (the `smp_guests` option).
static SMP_GUESTS: AtomicBool = AtomicBool::new(false);

const _: () = assert!(super::percpu::MAX_CPUS <= crate::sched::MAX_CPUS, "a CPU without a scheduling slot");

/// Sends `SOFTIRQ_SCHEDULE` to the CPUs the entry found work for
/// ([`System::kicks`]), with guests on several CPUs.
#[inline]
fn send_kicks(system: &mut System) {
    if system.smp_guests {
        send_kicks_smp(system);
    }
}

#[cold]
#[inline(never)]
fn send_kicks_smp(system: &mut System) {
    let (now, _) = now(system);
    system.kicks(now, &memory());
    for cpu in core::mem::take(&mut system.kick).iter() {
        ipi::raise_softirq(cpu, crate::ipi::SOFTIRQ_SCHEDULE);
    }
}

/// Where an application processor runs guests from (`smp_guests`): the
/// idle loop, which picks what the scheduler has for it.
fn ap_run() -> ! {
    // A frame of its own (not on this stack, whose top `resume` reuses).
    let frame = Box::leak(Box::new(TrapFrame::default()));
    idle(frame)
}
static FRAME_LIMIT: AtomicU64 = AtomicU64::new(0);
static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// NMIs taken while the hypervisor itself ran (counted, not fatal: Xen's
/// default `nmi=dom0` ignores unknown NMIs too; reported at power-off).
static HYPERVISOR_NMIS: AtomicU64 = AtomicU64::new(0);
/// How often a CPU halted waiting for the system lock ([`SystemWaiter`];
/// reported at power-off).
static LOCK_DOZES: AtomicU64 = AtomicU64::new(0);
/// The longest a CPU waited for the system lock (TSC ticks; reported at
/// power-off).
static LOCK_LONGEST_WAIT: AtomicU64 = AtomicU64::new(0);

/// QEMU's `isa-debug-exit` port.
const DEBUG_EXIT_PORT: u16 = 0xf4;

struct Hardware;

impl Platform for Hardware {
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match serial::read_byte() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn cmdline(&self) -> &str {
        super::start::cmdline()
    }

    fn machine_memory_map(&self) -> Vec<E820Entry> {
        super::start::memory_map().to_vec()
    }

    fn fpu_area_size(&self) -> usize {
        super::fpu::area_size()
    }

    fn cpu_khz(&self) -> u32 {
        (TSC_HZ.load(Ordering::Relaxed) / 1000).min(u64::from(u32::MAX)) as u32
    }

    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = cpu::cpuid(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn build_id(&self) -> &[u8] {
        crate::hypercall::xen_version::build_id_of_note(super::start::build_id_note()).unwrap_or(&[])
    }

    fn tsc(&self) -> Option<u64> {
        Some(clock::rdtsc())
    }

    fn console_write(&mut self, bytes: &[u8]) {
        crate::console::write_bytes(bytes);
    }

    fn set_segment(&mut self, which: Segment, value: u64) {
        // SAFETY: the values are canonical (checked by the caller) or a
        // selector reduced to one that always exists; the hypervisor uses
        // neither FS nor GS. A hypercall comes from guest kernel mode, so
        // the user GS base is the shadow one.
        unsafe {
            match which.msr() {
                Some(msr) => cpu::wrmsr(msr, value),
                None => {
                    let sel = safe_selector(value as u16);
                    core::arch::asm!("swapgs", "mov gs, {0:x}", "swapgs", in(reg) sel, options(nostack, preserves_flags));
                }
            }
        }
    }

    fn set_fpu_ts(&mut self, set: bool) {
        if set {
            fpu::stts();
        } else {
            fpu::clts();
        }
    }

    fn data_selectors(&self) -> [u16; 4] {
        read_selectors()
    }
}

impl CpuOps for Hardware {
    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        // SAFETY: the core only passes ports outside the hypervisor's own,
        // on behalf of a privileged domain with I/O privilege.
        unsafe {
            match size {
                1 => u32::from(cpu::inb(port)),
                2 => {
                    let v: u16;
                    core::arch::asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack));
                    u32::from(v)
                }
                _ => {
                    let v: u32;
                    core::arch::asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack));
                    v
                }
            }
        }
    }

    fn port_out(&mut self, port: u16, size: u8, value: u32) {
        match size {
            1 => cpu::outb(port, value as u8),
            2 => cpu::outw(port, value as u16),
            // SAFETY: as for port_in.
            _ => unsafe { core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)) },
        }
    }

    fn clts(&mut self) {
        fpu::clts();
    }

    fn set_ts(&mut self, set: bool) {
        if set {
            fpu::stts();
        } else {
            fpu::clts();
        }
    }

    fn wbinvd(&mut self) {
        // SAFETY: flushing the caches changes no memory contents.
        unsafe { core::arch::asm!("wbinvd", options(nostack, preserves_flags)) };
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = cpu::cpuid(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn write_segment_base(&mut self, msr: u32, value: u64) {
        // SAFETY: the caller passes only FS/GS/shadow-GS base MSRs and a
        // canonical value; the hypervisor itself uses neither FS nor GS.
        unsafe { cpu::wrmsr(msr, value) };
    }

    fn read_segment_base(&self, msr: u32) -> u64 {
        // SAFETY: as above, the base MSRs exist on every x86_64 CPU.
        unsafe { cpu::rdmsr(msr) }
    }

    fn set_fsgsbase(&mut self, on: bool) {
        set_cr4_fsgsbase(on);
    }
}

/// Sets CR4.FSGSBASE as the running vCPU's guest kernel chose it (Xen's
/// `pv_make_cr4`: a 64-bit PV guest's user code may use
/// `{rd,wr}{fs,gs}base` only if its kernel set the bit; Xen's XSA-293),
/// writing CR4 only if it changes. The core offers the bit only where
/// the CPU has it; the hypervisor itself reads and writes the bases
/// through their MSRs only.
fn set_cr4_fsgsbase(on: bool) {
    let cr4 = cpu::read_cr4();
    let want = if on { cr4 | CR4_FSGSBASE } else { cr4 & !CR4_FSGSBASE };
    if want != cr4 {
        // SAFETY: FSGSBASE only enables four user-mode instructions; the
        // core asks for it only where CPUID reports the feature.
        unsafe { cpu::write_cr4(want) };
    }
}

fn memory() -> DirectMap {
    // SAFETY: FRAME_LIMIT is the frame count the direct map covers, set
    // before any guest runs; only one entry is handled at a time.
    unsafe { DirectMap::new(Mfn(FRAME_LIMIT.load(Ordering::Relaxed))) }
}

/// The hypervisor's own top-level table, loaded while the CPU idles.
static IDLE_L4: AtomicU64 = AtomicU64::new(0);

/// Starts running `domains` and never returns.
pub fn run(
    domains: Vec<(Domain, SchedParams)>,
    frames: Box<dyn FramePool + Send + Sync>,
    m2p: M2p,
    ft: FrameTable,
    frame_limit: Mfn,
    tsc_hz: u64,
    debug_exit: bool,
) -> ! {
    FRAME_LIMIT.store(frame_limit.0, Ordering::Relaxed);
    DEBUG_EXIT.store(debug_exit, Ordering::Relaxed);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    IDLE_L4.store(cpu::read_cr3(), Ordering::Relaxed);
    let tsc = clock::rdtsc();
    let Some(scale) = TimeScale::from_hz(tsc_hz) else {
        crate::printk!("xenish: cannot measure the TSC frequency; halting");
        cpu::halt_forever();
    };
    let mut system = System::new(domains, Clock { tsc_at_zero: tsc, scale, tsc_hz }, m2p, frames, ft);
    let mut mem = memory();
    match clock::read_rtc().unix_seconds() {
        Some(secs) => system.set_wallclock(&mut mem, secs, clock::rdtsc()),
        None => crate::printk!("xenish: the CMOS clock is unreadable; wallclock left at the epoch"),
    }
    let mut frame = TrapFrame::default();
    let (now, tsc) = now(&system);
    let action = system.start(&mut frame, now, tsc, &mut mem);
    let smp = crate::cmdline::CommandLine::parse(super::start::cmdline()).smp_guests();
    let online = super::smpboot::online_mask();
    if smp && online.count() > 1 {
        // CPU indices are dense from 0; one view per CPU up to the last.
        let cpus = online.iter().last().map_or(1, |c| c + 1);
        system.enable_smp_guests(cpus);
        crate::printk!("xenish: smp_guests: vCPUs run on {} CPUs (under the system lock)", online.count());
    }
    *lock_system() = Some(system);
    if smp && online.count() > 1 {
        SMP_GUESTS.store(true, Ordering::Release);
        ipi::start_guests_on_aps(ap_run);
    }
    carry_out(action, None, &mut frame)
}

/// The system time and TSC now.
fn now(system: &System) -> (u64, u64) {
    let tsc = clock::rdtsc();
    (system.clock.system_time(tsc), tsc)
}

/// Handles one entry with the system locked, then carries out its action.
fn enter(frame: &mut TrapFrame, handler: impl FnOnce(&mut System, &mut TrapFrame, u64, u64, &mut DirectMap) -> Action) {
    let (action, previous) = {
        let mut guard = lock_system();
        let Some(system) = guard.as_mut() else { hypervisor_fault(frame) };
        let previous = system.current();
        let (now, tsc) = now(system);
        system.deliver_pirqs(&mut memory());
        let action = handler(system, frame, now, tsc, &mut memory());
        // Under the lock: no CPU may take a freed or retyped frame before
        // every CPU that could reach it through its TLB has flushed.
        if !system.flush.is_none() {
            flush_tlb(&core::mem::take(&mut system.flush), system.this_cpu);
        }
        send_kicks(system);
        arm_timer(system);
        (action, previous)
    };
    carry_out_inline(action, previous, frame);
}

/// When the console is next polled for input (system time, ns), set by
/// each poll: `u64::MAX` while nobody listens. The poll runs on timer and
/// device interrupts and idle wakeups, never on a hypercall's or trap's
/// exit; [`arm_timer`] makes sure a timer interrupt comes by then. 0 at
/// boot: the first exit arms the timer for a poll at once.
static CONSOLE_POLL_AT: AtomicU64 = AtomicU64::new(0);

/// What [`super::percpu::CpuInfo::armed_ns`] holds once the APIC timer
/// fired (a deadline no exit computes): the next exit arms it again.
const TIMER_FIRED: u64 = u64::MAX - 1;

/// Programs the APIC for the system's next deadline (no later than the
/// next console poll while the console domain listens for input).
///
/// Most exits leave the deadline as it was (the slice's end, the next
/// timer): while the timer is armed for it and has not fired (the timer
/// interrupt sets [`TIMER_FIRED`]), it is left be, without touching the
/// APIC.
#[inline(always)]
fn arm_timer(system: &System) {
    let poll = CONSOLE_POLL_AT.load(Ordering::Relaxed);
    let deadline = system.next_deadline_ns().map_or(poll, |ns| ns.min(poll));
    let armed = &super::percpu::this_cpu().armed_ns;
    if armed.load(Ordering::Relaxed) != deadline {
        rearm_timer(system, deadline);
    }
}

/// [`arm_timer`] for a new deadline (`u64::MAX`: none).
#[inline(never)]
fn rearm_timer(system: &System, deadline: u64) {
    super::percpu::this_cpu().armed_ns.store(deadline, Ordering::Relaxed);
    apic::set_deadline((deadline != u64::MAX).then(|| system.clock.tsc_at(deadline)));
}

/// Hands waiting serial input to the console domain, and sets when to
/// look next ([`CONSOLE_POLL_AT`]).
fn poll_console(system: &mut System, now: u64) {
    if serial::input_ready() {
        system.console_input(&mut memory());
    }
    let next = if system.console_listener() { now.saturating_add(CONSOLE_POLL_NS) } else { u64::MAX };
    CONSOLE_POLL_AT.store(next, Ordering::Relaxed);
}

/// Carries out the TLB maintenance an entry handled on CPU `me` asked
/// for, on the CPUs it named (locally when `me` is one, by shootdown for
/// the others).
#[inline]
fn flush_tlb(req: &FlushReq, me: usize) {
    // A request is never for no CPU (FlushReq::add drops those), so one
    // naming no CPU but this one (or the handling CPU) is for this one:
    // the common case, and every case on one CPU, without the shootdown
    // machinery.
    if req.cpus.without(crate::flush::LOCAL_CPU).without(me).is_empty() {
        match req.what {
            TlbFlush::None => {}
            TlbFlush::Page(va) => cpu::invlpg(va),
            // SAFETY: reloading the current CR3 only flushes the TLB.
            TlbFlush::All => unsafe { cpu::write_cr3(cpu::read_cr3()) },
        }
    } else if let Some((cpus, flags, va)) = req.request(me) {
        ipi::flush_mask(cpus, flags, va);
    }
}

/// Carries out an action for a frame that will be returned to by the entry
/// stub (returns normally), or diverges for idle and power-off. Most exits
/// return to the same guest mode and address space: nothing to do.
#[inline]
fn carry_out_inline(action: Action, previous: Option<VcpuRef>, frame: &mut TrapFrame) {
    if action != (Action { toggled: false, reload_gdt: false, next: Next::Resume }) {
        carry_out_changes(action, previous, frame);
    }
}

/// [`carry_out_inline`] when the mode, the tables or the vCPU change.
#[inline(never)]
fn carry_out_changes(action: Action, previous: Option<VcpuRef>, frame: &mut TrapFrame) {
    if action.toggled {
        swapgs();
    }
    if action.reload_gdt {
        reload_current_gdt();
    }
    match action.next {
        Next::Resume => {}
        // SAFETY: every guest top-level table carries the hypervisor's L4
        // slots, so the hypervisor stays mapped after the switch.
        Next::Reload(l4) => unsafe { cpu::write_cr3(l4.addr()) },
        Next::Switch(l4) => {
            switch_segments(previous);
            // SAFETY: as above.
            unsafe { cpu::write_cr3(l4.addr()) };
        }
        Next::Idle => {
            switch_segments(previous);
            idle(frame)
        }
        Next::PowerOff { failed } => power_off(failed),
    }
}

/// Carries out the first action and enters the guest.
fn carry_out(action: Action, previous: Option<VcpuRef>, frame: &mut TrapFrame) -> ! {
    carry_out_inline(action, previous, frame);
    entry::resume(frame)
}

fn swapgs() {
    // SAFETY: exchanges the guest's kernel and user GS bases; the hypervisor
    // never uses GS.
    unsafe { core::arch::asm!("swapgs", options(nomem, nostack, preserves_flags)) };
}

/// Saves the segment state of `previous` and loads that of the system's
/// current vCPU, when they differ.
#[inline(never)]
fn switch_segments(previous: Option<VcpuRef>) {
    let mut guard = lock_system();
    let Some(system) = guard.as_mut() else { return };
    if previous == system.current() {
        return;
    }
    fpu::clts();
    if let Some(v) = previous.and_then(|p| system.domains.get_mut(p.domain)?.vcpus.get_mut(p.vcpu)) {
        v.segments = read_segments();
        fpu::save(&mut v.fpu);
    }
    if let (Some(p), true) = (previous, system.smp_guests) {
        // Its state is all saved: another CPU may take it now.
        system.vcpu_saved(p);
        send_kicks_smp(system);
    }
    let current = system.current();
    super::xpti::set_current(current.and_then(|c| Some(system.domains.get(c.domain)?.id == 0)));
    let next = current.and_then(|c| system.domains.get_mut(c.domain)?.vcpus.get_mut(c.vcpu));
    match next {
        Some(v) => {
            load_gdt(&v.gdt_frames);
            load_ldt(&v.ldt_frames, v.ldt_ents);
            write_segments(&v.segments);
            set_cr4_fsgsbase(v.cr4_fsgsbase);
            fpu::restore(&mut v.fpu);
            if v.fpu_ts {
                fpu::stts();
            }
        }
        None => {
            load_ldt(&[], 0);
            write_segments(&SegmentState::default());
            set_cr4_fsgsbase(false);
        }
    }
}

/// The data selectors loaded now: `ds, es, fs, gs`.
fn read_selectors() -> [u16; 4] {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        core::arch::asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs",
            out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs, options(nomem, nostack, preserves_flags));
    }
    [ds, es, fs, gs]
}

fn read_segments() -> SegmentState {
    let [ds, es, fs, gs] = read_selectors();
    // SAFETY: the base MSRs exist on every x86_64 CPU.
    let (fs_base, gs_base, shadow_gs_base) =
        unsafe { (cpu::rdmsr(MSR_FS_BASE), cpu::rdmsr(MSR_GS_BASE), cpu::rdmsr(MSR_SHADOW_GS_BASE)) };
    SegmentState { ds, es, fs, gs, fs_base, gs_base, shadow_gs_base }
}

/// A selector the hypervisor can load for the guest without faulting:
/// Xen's flat ring-3 ones, or one of the guest's own GDT that is loadable;
/// anything else is loaded as null, as Xen's `load_segments` does. (When
/// that happens on a switch to a vCPU, the core has already entered the
/// guest's failsafe callback for it: `traps::reload_segments`.)
fn safe_selector(sel: u16) -> u16 {
    if gdt::loadable(sel) {
        sel
    } else {
        0
    }
}

/// Loads `frames` (a vCPU's `set_gdt` frames) into the CPU's GDT.
fn load_gdt(frames: &[Mfn]) {
    use crate::mm::MachineMemory as _;
    let mem = memory();
    let pages: Vec<&[u8; crate::mm::PAGE_SIZE]> = frames.iter().filter_map(|&m| mem.frame(m)).collect();
    gdt::load_guest(&pages);
}

/// Loads `frames` (a vCPU's `MMUEXT_SET_LDT` pages) into the CPU's LDT,
/// `ents` entries of them in force.
fn load_ldt(frames: &[Option<Mfn>], ents: u32) {
    use crate::mm::MachineMemory as _;
    let mem = memory();
    let pages: Vec<Option<&[u8; crate::mm::PAGE_SIZE]>> = frames.iter().map(|m| m.and_then(|m| mem.frame(m))).collect();
    gdt::load_ldt(&pages, ents as usize);
}

/// Loads the current vCPU's GDT and LDT again (one of them changed).
fn reload_current_gdt() {
    let guard = lock_system();
    let Some(system) = guard.as_ref() else { return };
    if let Some(v) = system.current().and_then(|c| system.domains.get(c.domain)?.vcpus.get(c.vcpu)) {
        load_gdt(&v.gdt_frames);
        load_ldt(&v.ldt_frames, v.ldt_ents);
    }
}

fn write_segments(s: &SegmentState) {
    // SAFETY: the selectors are null or flat ring-3 GDT entries that always
    // exist; the bases were saved from this vCPU and are canonical.
    unsafe {
        core::arch::asm!("mov ds, {0:x}", "mov es, {1:x}", "mov fs, {2:x}", "mov gs, {3:x}",
            in(reg) safe_selector(s.ds), in(reg) safe_selector(s.es), in(reg) safe_selector(s.fs),
            in(reg) safe_selector(s.gs), options(nostack, preserves_flags));
        cpu::wrmsr(MSR_FS_BASE, s.fs_base);
        cpu::wrmsr(MSR_GS_BASE, s.gs_base);
        cpu::wrmsr(MSR_SHADOW_GS_BASE, s.shadow_gs_base);
    }
}

/// Idles until something can run, then enters it (discarding this stack).
fn idle(frame: &mut TrapFrame) -> ! {
    // SAFETY: the hypervisor's own table maps everything it needs.
    unsafe { cpu::write_cr3(IDLE_L4.load(Ordering::Relaxed)) };
    loop {
        // Waits for the APIC timer or an IPI, unless a softirq or flush is
        // pending already (the haltable check); interrupts off again after.
        ipi::halt_unless_work();
        ipi::serve_flush();
        ipi::take_softirqs();
        let action = {
            let mut guard = lock_system();
            let Some(system) = guard.as_mut() else { cpu::halt_forever() };
            let (now, tsc) = now(system);
            poll_console(system, now);
            system.deliver_pirqs(&mut memory());
            let action = system.idle_wakeup(frame, now, tsc, &mut memory());
            send_kicks(system);
            arm_timer(system);
            action
        };
        match action.next {
            Next::Idle => continue,
            Next::PowerOff { failed } => power_off(failed),
            Next::Resume | Next::Reload(_) | Next::Switch(_) => {
                let l4 = match action.next {
                    Next::Reload(l4) | Next::Switch(l4) => l4,
                    _ => Mfn(IDLE_L4.load(Ordering::Relaxed) >> 12),
                };
                switch_segments(None);
                // SAFETY: a guest table carries the hypervisor's L4 slots.
                unsafe { cpu::write_cr3(l4.addr()) };
                entry::resume(frame)
            }
        }
    }
}

/// An exception or interrupt: from a guest, handled by the core; the timer
/// while idle, acknowledged; anything else from the hypervisor, fatal.
pub fn handle(frame: &mut TrapFrame) {
    // The hypervisor's own vectors (0xf0..=0xfe) with one compare on the
    // exception paths.
    if frame.vector >= u64::from(apic::TIMER_VECTOR) {
        let reschedule = match frame.vector as u8 {
            apic::TIMER_VECTOR => {
                apic::eoi();
                super::percpu::this_cpu().armed_ns.store(TIMER_FIRED, Ordering::Relaxed);
                true
            }
            apic::EVENT_CHECK_VECTOR => {
                ipi::handle_event_check();
                // Taken here only from a guest, which re-enters the
                // scheduler below. A halted CPU (the idle loops, where the
                // hypervisor's IF is on only across `hlt`) finds the bit
                // when it wakes: an AP parked in `ipi::idle` leaves for the
                // guests only on seeing it, and one taken here was lost (a
                // vCPU pinned to CPU 1 then never ran).
                frame.from_guest() && ipi::take_softirq_bits(crate::ipi::SOFTIRQ_SCHEDULE) != 0
            }
            apic::INVALIDATE_TLB_VECTOR => {
                ipi::handle_invalidate();
                false
            }
            _ => hypervisor_fault(frame),
        };
        if reschedule && frame.from_guest() {
            enter(frame, |s, f, now, tsc, mem| {
                poll_console(s, now);
                s.timer_interrupt(f, now, tsc, mem)
            });
        }
        return;
    }
    if (u64::from(crate::irq::FIRST_DEVICE_VECTOR)..=u64::from(crate::irq::LAST_DEVICE_VECTOR)).contains(&frame.vector)
    {
        super::ioapic::interrupt(frame.vector as u8);
        if frame.from_guest() {
            enter(frame, |s, f, now, tsc, mem| {
                poll_console(s, now);
                s.timer_interrupt(f, now, tsc, mem)
            });
        }
        return;
    }
    if frame.vector == 2 {
        // An NMI (on its own IST stack) can arrive anywhere, the
        // hypervisor's own code included: count it and carry on. Nothing
        // here may take a lock the interrupted code could hold.
        if !frame.from_guest() {
            HYPERVISOR_NMIS.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    if !frame.from_guest() {
        // A fault in the direct guest copy returns its failure instead
        // (Xen's exception table); any other is the hypervisor's own bug.
        if let Some(resume) =
            (frame.vector == 14 || frame.vector == 13).then(|| super::guest_copy::fixup(frame.rip)).flatten()
        {
            frame.rip = resume;
            return;
        }
        hypervisor_fault(frame);
    }
    let cr2 = match frame.vector {
        14 => cpu::read_cr2(),
        1 => cpu::take_dr6(),
        _ => 0,
    };
    // A page fault that cannot be a write to a page table the hypervisor
    // emulates (not a write to a present page) may be bounced fast.
    if frame.vector == 14 && frame.error_code & 3 != 3 && fast_page_fault(frame, cr2) {
        return;
    }
    // A guest kernel's rdmsr/wrmsr of a segment base (ECX names one) may
    // be emulated fast; any other #GP pays nothing more than this test.
    if frame.vector == 13 && (MSR_FS_BASE..=MSR_SHADOW_GS_BASE).contains(&(frame.rcx as u32)) && fast_segment_msr(frame)
    {
        return;
    }
    enter(frame, |s, f, now, tsc, mem| s.guest_trap(f, cr2, now, tsc, mem, &mut Hardware));
}

/// A `syscall` from a guest: a hypercall, or a system call from guest user
/// mode. In line in the entry stub's Rust half: the fast path's entries
/// do not pay the slow path's frame.
#[inline(always)]
pub fn handle_syscall(frame: &mut TrapFrame) {
    if (may_be_fast(frame) || in_user_mode().load(Ordering::Relaxed)) && fast_syscall(frame) {
        return;
    }
    handle_syscall_slow(frame);
}

/// [`handle_syscall`] on the slow path, under the lock taken exclusively.
#[inline(never)]
fn handle_syscall_slow(frame: &mut TrapFrame) {
    // Only a system call or an iret toggles (or the odd switch to another
    // vCPU, which the guess may miss): other hypercalls leave it be.
    let toggles = frame.rax == u64::from(guest_abi::xen::HYPERVISOR_IRET) || in_user_mode().load(Ordering::Relaxed);
    enter(frame, |s, f, now, tsc, mem| {
        let action = s.syscall(f, now, tsc, mem, &mut Hardware);
        if toggles {
            in_user_mode().store(s.current_in_user_mode(), Ordering::Relaxed);
        }
        action
    });
}

/// This CPU's [`IN_USER_MODE`].
#[inline(always)]
fn in_user_mode() -> &'static AtomicBool {
    &IN_USER_MODE[super::percpu::cpu_index() % super::percpu::MAX_CPUS]
}

/// Per CPU: whether the guest it runs was in guest user mode when its
/// last `syscall` entry left. A system call from user mode has any
/// number (the guest's own), so [`may_be_fast`] cannot pick it out by its
/// registers; while this says user mode, every `syscall` tries the fast
/// path first. Only a guess, kept by the `syscall` entries alone (a trap
/// or a switch to another vCPU may leave it stale): the fast path looks at
/// the vCPU's real mode and declines what it does not serve, and either
/// path is right for any `syscall`.
static IN_USER_MODE: [AtomicBool; super::percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; super::percpu::MAX_CPUS];

/// Powers the machine off: QEMU's debug-exit device if present (status 0
/// when every domain powered off, 1 if any crashed), else a reset if the
/// control domain rebooted, else ACPI S5 (with the control domain's PM1
/// values if it asked, else QEMU's), else halt.
pub fn power_off(failed: bool) -> ! {
    let nmis = HYPERVISOR_NMIS.load(Ordering::Relaxed);
    if nmis > 0 {
        crate::printk!("xenish: {nmis} NMI(s) arrived while the hypervisor ran; ignored");
    }
    let dozes = LOCK_DOZES.load(Ordering::Relaxed);
    if dozes > 0 {
        let longest_us =
            LOCK_LONGEST_WAIT.load(Ordering::Relaxed) / (TSC_HZ.load(Ordering::Relaxed) / 1_000_000).max(1);
        crate::printk!(
            "xenish: CPUs halted {dozes} time(s) waiting for the system lock, the longest wait {longest_us} us"
        );
    }
    let debug_exit = DEBUG_EXIT.load(Ordering::Relaxed);
    // Without the debug-exit device, a reboot of the control domain is
    // announced by `restart` alone: this machine is not powered off.
    if debug_exit || !crate::acpi::restart_requested() {
        crate::printk!("xenish: powering off (exit status {})", failed as u8);
    }
    if debug_exit {
        cpu::outb(DEBUG_EXIT_PORT, failed as u8);
    }
    // The control domain's reboot resets the machine; its ACPI S5 request
    // (`XENPF_enter_acpi_sleep`) writes its PM1 values to the FADT's blocks.
    if crate::acpi::restart_requested() {
        super::acpi::restart();
    }
    if !crate::acpi::enter_s5() {
        // ACPI PM1a control of QEMU's PIIX4/ICH9 and Bochs: SLP_TYP 0 | SLP_EN.
        cpu::outw(0x604, 0x2000);
        cpu::outw(0xb004, 0x2000);
    }
    crate::printk!("xenish: power-off failed; halting");
    cpu::halt_forever()
}

/// Prints a hypervisor fault's registers and halts, without taking any lock.
fn hypervisor_fault(frame: &TrapFrame) -> ! {
    use core::fmt::Write;
    struct Raw;
    impl Write for Raw {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for b in s.bytes() {
                if b == b'\n' {
                    serial::write_byte(b'\r');
                }
                serial::write_byte(b);
            }
            Ok(())
        }
    }
    let f = frame;
    let _ = write!(
        Raw,
        "\nxenish: hypervisor fault: {} (vector {}, error {:#x})\n\
         rip {:#018x} cs {:#06x} rflags {:#010x} rsp {:#018x} ss {:#06x}\n\
         rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n\
         rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n\
         r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n\
         r13 {:#018x} r14 {:#018x} r15 {:#018x}\n\
         cr0 {:#018x} cr2 {:#018x} cr3 {:#018x} cr4 {:#018x}\n\
         xenish: halting\n",
        crate::traps::vector_name(f.vector),
        f.vector,
        f.error_code,
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss,
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15,
        cpu::read_cr0(),
        cpu::read_cr2(),
        cpu::read_cr3(),
        cpu::read_cr4(),
    );
    cpu::halt_forever()
}
