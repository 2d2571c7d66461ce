//! The fast path: the hypercalls that touch only the calling vCPU, the
//! system-call round trip of a guest user process and the page-fault
//! bounce, served under the system
//! lock taken shared, so that two domains on two CPUs make them in
//! parallel (issue 15's "hypercalls in parallel without one global lock").
//!
//! Under a shared lock nothing in [`System`] may change: other CPUs read
//! it at the same time. What these entries change is the guest's own
//! memory (event bits with atomic operations, the bounce frame on its
//! stack, `evtchn_upcall_mask`), the entry's frame, and the calling vCPU's
//! guest mode and kernel stack pointer, atomics only the CPU running the
//! vCPU writes outside the exclusive lock ([`crate::domain::KernelMode`]
//! says why that is sound);
//! anything that would change the domain, wake or kick a vCPU, run the
//! scheduler or touch the frame table is found before anything is done,
//! and the entry goes the slow way ([`System::syscall`] under the lock
//! taken exclusively). A hypercall is never half done here.
//!
//! Served from guest kernel mode: `xen_version` subops that read nothing
//! ([`hypercall::xen_version::constant_answer`]), `EVTCHNOP_send` on a
//! 2-level port whose event stays with the caller
//! ([`hypercall::event_channel::send_in_domain`]), `set_segment_base` of
//! a base ([`hypercall::segments::base_msr`]: Linux writes the user GS
//! base so on every context switch; the base lives in this CPU's MSR
//! while the vCPU runs), `stack_switch` (the kernel stack for bounces
//! from user mode, which Linux sets on every context switch), and
//! `HYPERVISOR_iret` to kernel or to user mode ([`traps::iret_fast`]). From guest user mode:
//! a 64-bit `syscall`, whatever its number, bounced to the registered
//! syscall callback ([`traps::syscall_from_user_fast`]). From either mode:
//! a page fault that is not a write to a present page, bounced to the
//! trap table's handler ([`System::fast_page_fault`]). On the way out
//! the pending upcall is bounced ([`traps::deliver_upcall_fast`]). A
//! change of mode ([`Fast::Toggled`]) is carried out by the arch layer as
//! the slow path's toggled return: swapgs and the new mode's table.
//!
//! Only when the exit has nothing else to do: no preemption due on this
//! CPU, no vCPU timer or poll timeout due and the timer summary current,
//! no device interrupt to deliver, no domain being created, torn down or
//! scrubbed, and the caller neither down, blocked, polling, yielding nor
//! with an NMI pending, on a CPU its affinity allows, and not in 32-bit
//! code. The time the fast calls take is charged to the caller: the
//! scheduler charges from the slice's start at the next slow entry or
//! switch, and the fast path never starts a slice.
//!
//! What is left for the slow path's exit is safe to leave: vCPUs blocked
//! elsewhere are woken by the entry that raised their event (the fast
//! path raises events only for the calling, running vCPU), other CPUs are
//! kicked by the entry that gave them work, and this CPU's timer stays
//! armed for the deadline its last slow exit computed (anything earlier
//! that another CPU arranges comes with a kick). A mode change leaves the
//! CPU's dirty-mask bookkeeping as it was: it records which vCPU's
//! domain the CPU holds tables of ([`flush::note_loaded`]), and the user
//! table is the same domain's.

use super::*;
use crate::domain::Vcpu;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_abi::event_channel::EVTCHNOP_SEND;
use guest_abi::xen::{
    HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_IRET, HYPERVISOR_SET_SEGMENT_BASE, HYPERVISOR_STACK_SWITCH,
    HYPERVISOR_XEN_VERSION,
};

/// What [`System::fast_syscall`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// Nothing: the entry is to be handled on the slow path.
    Declined,
    /// The entry is complete: return to the guest as the frame says, in
    /// the same mode (guest kernel mode), on the same tables.
    Done,
    /// The entry is complete and the vCPU changed mode (a system call
    /// bounced to the guest kernel, an `iret` to user mode): swap the GS
    /// bases and load this top-level table, as for the slow path's
    /// `Action { toggled: true, next: Next::Reload(l4), .. }`; `kernel`
    /// is the mode the vCPU is in now.
    Toggled {
        /// The table of the mode the vCPU is in now.
        l4: Mfn,
        /// Whether that mode is guest kernel mode.
        kernel: bool,
    },
    /// The entry was carried out, but its exit needs the slow path (the
    /// upcall's bounce failed): [`System::finish_fast_entry`], told the
    /// mode the vCPU entered in.
    Exit {
        /// Whether the vCPU entered in guest kernel mode.
        was_kernel: bool,
    },
}

/// [`System::fast_syscall`] for a `syscall` from guest user mode (vCPU
/// `vcpu` of `domain`, `v`): a system call bounced to the guest kernel's
/// callback, the vCPU in kernel mode on its kernel table.
#[inline(never)]
fn fast_system_call(
    domain: &Domain,
    vcpu: usize,
    v: &Vcpu,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Fast {
    if !traps::syscall_from_user_fast(domain, vcpu, frame, mem) {
        return Fast::Declined;
    }
    // A callback entered with events masked has no upcall due on the way
    // out (the slow path looks, and finds the mask it just set).
    if !v.callbacks.syscall.mask_events && traps::deliver_upcall_fast(domain, vcpu, frame, mem).is_err() {
        return Fast::Exit { was_kernel: false };
    }
    Fast::Toggled { l4: v.kernel_l4, kernel: true }
}

/// Whether the `syscall` in `frame` is a hypercall [`System::fast_syscall`]
/// may serve, by its number and first argument alone: what the arch layer
/// asks before it takes any lock, so that every other entry pays nothing
/// for the fast path. (A system call from guest user mode has the guest's
/// own numbers: the arch layer keeps a guess of the mode for those.)
#[inline(always)]
pub fn may_be_fast(frame: &TrapFrame) -> bool {
    match frame.rax {
        nr if nr == u64::from(HYPERVISOR_XEN_VERSION) => {
            hypercall::xen_version::constant_answer(frame.rdi as u32).is_some()
        }
        nr if nr == u64::from(HYPERVISOR_EVENT_CHANNEL_OP) => frame.rdi as u32 == EVTCHNOP_SEND,
        nr if nr == u64::from(HYPERVISOR_SET_SEGMENT_BASE) => {
            hypercall::segments::base_msr(frame.rdi as u32, frame.rsi).is_some()
        }
        nr => nr == u64::from(HYPERVISOR_IRET) || nr == u64::from(HYPERVISOR_STACK_SWITCH),
    }
}

/// One CPU's memo of [`System::fast_until_ns`] in TSC units, made under
/// the system lock taken shared and kept for as long as the lock's
/// generation ([`crate::sync::RwSpinLock::generation`]) stays the same:
/// no writer got in, so the system-wide conditions of the fast path, and
/// the deadline they run to, are as they were. A fast entry then compares
/// the TSC with one number instead of reading and scaling the clock and
/// testing six conditions. Written only by its own CPU (with interrupts
/// off): relaxed atomics suffice, they are atomics only so that a
/// `static` may hold them without `unsafe`.
pub struct FastGate {
    /// The lock generation the memo was made at (`u64::MAX`: none yet).
    generation: AtomicU64,
    /// The TSC value from which the conditions may no longer hold.
    until_tsc: AtomicU64,
}

impl Default for FastGate {
    fn default() -> Self {
        Self::new()
    }
}

impl FastGate {
    /// A gate with no memo.
    pub const fn new() -> Self {
        FastGate { generation: AtomicU64::new(u64::MAX), until_tsc: AtomicU64::new(0) }
    }

    /// Whether the fast path's system-wide conditions hold at `tsc`, with
    /// the system lock (held shared by the caller) at `generation`: from
    /// the memo if it was made at that generation, else from `until` (the
    /// deadline in TSC units, computed afresh and remembered).
    #[inline(always)]
    pub fn open(&self, generation: u64, tsc: u64, until: impl FnOnce() -> u64) -> bool {
        let until_tsc = if self.generation.load(Ordering::Relaxed) == generation {
            self.until_tsc.load(Ordering::Relaxed)
        } else {
            self.remember(generation, until)
        };
        tsc < until_tsc
    }

    /// [`Self::open`] after a write of the system: the new deadline.
    #[cold]
    #[inline(never)]
    fn remember(&self, generation: u64, until: impl FnOnce() -> u64) -> u64 {
        let until_tsc = until();
        self.until_tsc.store(until_tsc, Ordering::Relaxed);
        self.generation.store(generation, Ordering::Relaxed);
        until_tsc
    }
}

impl System {
    /// Serves the `syscall` in `frame` from the vCPU CPU `cpu` runs, at
    /// `now_ns`, with `ops` as this CPU's registers, without changing the
    /// system (see the module's description), or declines it with nothing
    /// changed. The caller has
    /// checked that no device interrupt waits to be delivered
    /// ([`crate::irq::any_pending`]: the slow path delivers them).
    ///
    /// The system-wide conditions are [`Self::fast_until_ns`]'s; the arch
    /// layer keeps those in TSC units per CPU ([`FastGate`]) and calls
    /// [`Self::fast_syscall_open`] directly.
    pub fn fast_syscall(
        &self,
        cpu: usize,
        frame: &mut TrapFrame,
        now_ns: u64,
        mem: &mut dyn MachineMemory,
        ops: &mut dyn CpuOps,
    ) -> Fast {
        if now_ns >= self.fast_until_ns(cpu) {
            return Fast::Declined;
        }
        self.fast_syscall_open(cpu, frame, mem, ops)
    }

    /// [`Self::fast_syscall`] for a caller that found the time before
    /// [`Self::fast_until_ns`] (of this system as it is: under the same
    /// read guard, or one of the same lock generation).
    ///
    /// In line in the arch layer's only caller: a call and frame of its
    /// own cost every fast entry about 20 instructions.
    #[inline(always)]
    pub fn fast_syscall_open(
        &self,
        cpu: usize,
        frame: &mut TrapFrame,
        mem: &mut dyn MachineMemory,
        ops: &mut dyn CpuOps,
    ) -> Fast {
        let Some((domain, vcpu, v)) = self.fast_caller(cpu, frame) else { return Fast::Declined };
        if !v.kernel_mode() {
            return fast_system_call(domain, vcpu, v, frame, mem);
        }
        let [a0, a1, ..] = frame.hypercall_args();
        let nr = frame.rax;
        let done = if nr == u64::from(HYPERVISOR_XEN_VERSION) {
            hypercall::xen_version::constant_answer(a0 as u32).map(|v| frame.rax = v as u64).is_some()
        } else if nr == u64::from(HYPERVISOR_EVENT_CHANNEL_OP) && a0 as u32 == EVTCHNOP_SEND {
            hypercall::event_channel::send_in_domain(domain, vcpu, mem, a1).map(|v| frame.rax = v as u64).is_some()
        } else if nr == u64::from(HYPERVISOR_SET_SEGMENT_BASE) {
            hypercall::segments::base_msr(a0 as u32, a1).map(|msr| ops.write_segment_base(msr, a1)).is_some() && {
                frame.rax = 0;
                true
            }
        } else if nr == u64::from(HYPERVISOR_STACK_SWITCH) {
            // Xen's do_stack_switch: 64-bit PV ignores the selector.
            v.set_kernel_sp_running(a1);
            frame.rax = 0;
            true
        } else if nr == u64::from(HYPERVISOR_IRET) {
            // iret replaces the whole frame rather than returning a value.
            traps::iret_fast(domain, vcpu, frame, mem)
        } else {
            false
        };
        if !done {
            return Fast::Declined;
        }
        if traps::deliver_upcall_fast(domain, vcpu, frame, mem).is_err() {
            return Fast::Exit { was_kernel: true };
        }
        // Judged after the upcall, as the slow path's `finish` judges it:
        // an iret to user mode that meets an upcall ends in kernel mode.
        if v.kernel_mode() {
            Fast::Done
        } else {
            Fast::Toggled { l4: v.current_l4(), kernel: false }
        }
    }

    /// Bounces the page fault at `cr2` in `frame` (an exception entry from
    /// the vCPU CPU `cpu` runs) to the guest kernel's handler at `now_ns`,
    /// as the slow path's [`System::guest_trap`] does, without changing
    /// the system; or declines it with nothing changed. A write to a
    /// present page (error code bits 0 and 1) is always declined: the slow
    /// path may emulate it (a page-table write, an MSI-X table's). The
    /// caller has checked what it checks for [`Self::fast_syscall`].
    pub fn fast_page_fault(
        &self,
        cpu: usize,
        frame: &mut TrapFrame,
        cr2: u64,
        now_ns: u64,
        mem: &mut dyn MachineMemory,
    ) -> Fast {
        if now_ns >= self.fast_until_ns(cpu) {
            return Fast::Declined;
        }
        self.fast_page_fault_open(cpu, frame, cr2, mem)
    }

    /// [`Self::fast_page_fault`] for a caller that found the time before
    /// [`Self::fast_until_ns`], as [`Self::fast_syscall_open`]; in line,
    /// as that.
    #[inline(always)]
    pub fn fast_page_fault_open(
        &self,
        cpu: usize,
        frame: &mut TrapFrame,
        cr2: u64,
        mem: &mut dyn MachineMemory,
    ) -> Fast {
        if frame.vector != 14 || frame.error_code & 3 == 3 {
            return Fast::Declined;
        }
        let Some((domain, vcpu, v)) = self.fast_caller(cpu, frame) else { return Fast::Declined };
        let was_kernel = v.kernel_mode();
        if !traps::page_fault_fast(domain, vcpu, frame, cr2, mem) {
            return Fast::Declined;
        }
        if traps::deliver_upcall_fast(domain, vcpu, frame, mem).is_err() {
            return Fast::Exit { was_kernel };
        }
        if was_kernel {
            Fast::Done
        } else {
            Fast::Toggled { l4: v.kernel_l4, kernel: true }
        }
    }

    /// Until when (system time, ns) the fast path's system-wide conditions
    /// hold on CPU `cpu`: a vCPU runs there, no preemption is due there,
    /// no vCPU timer or poll timeout is due and the timer summary is
    /// current, no domain is being created, torn down or scrubbed. 0 if
    /// they do not hold at all. It reads only what is written under the
    /// system lock taken exclusively, so the answer stands until the next
    /// writer (the lock's generation: [`FastGate`]).
    pub fn fast_until_ns(&self, cpu: usize) -> u64 {
        let Some(here) = self.cpus.get(cpu) else { return 0 };
        let w = &self.timer_work;
        if here.current.is_none()
            || w.stale
            || self.maybe_dying
            || !self.lifecycle.created.is_empty()
            || self.ft.dirty_frames() != 0
        {
            return 0;
        }
        here.preempt_at_ns.min(w.earliest_ns)
    }

    /// The calling domain and vCPU index, if the entry on CPU `cpu` may be
    /// served on the fast path, the system-wide conditions
    /// ([`Self::fast_until_ns`]) checked.
    #[inline]
    pub(super) fn fast_caller(&self, cpu: usize, frame: &TrapFrame) -> Option<(&Domain, usize, &Vcpu)> {
        let here = self.cpus.get(cpu)?;
        let who = here.current?;
        let d = self.domains.get(who.domain).filter(|d| d.is_running())?;
        let v = d.vcpus.get(who.vcpu)?;
        // With its exit work word clear the vCPU is neither down, blocked,
        // polling nor yielding, and its hard affinity has the CPU it runs
        // on (System::exit_work_missed). Either mode: which calls a mode
        // may make fast is fast_syscall's to decide.
        let quiet = !v.exit_work && !v.nmi_pending;
        if !quiet || frame.cs == traps::FLAT_USER_CS32 {
            return None;
        }
        Some((d, who.vcpu, v))
    }

    /// Whether the vCPU on the CPU handling the entry is in guest user
    /// mode: what the arch layer keeps as its guess of where the next
    /// `syscall` comes from (a system call [`Self::fast_syscall`] may
    /// bounce, whatever its number).
    pub fn current_in_user_mode(&self) -> bool {
        let Some(who) = self.current() else { return false };
        self.domains.get(who.domain).and_then(|d| d.vcpus.get(who.vcpu)).is_some_and(|v| !v.kernel_mode())
    }

    /// The exit of an entry [`Self::fast_syscall`] carried out but could
    /// not finish ([`Fast::Exit`]), under the exclusive lock: what
    /// [`Self::syscall`] does after its hypercall or bounce, for a vCPU
    /// that entered in kernel mode or not (`was_kernel`).
    pub fn finish_fast_entry(
        &mut self,
        was_kernel: bool,
        frame: &mut TrapFrame,
        now_ns: u64,
        tsc: u64,
        mem: &mut dyn MachineMemory,
    ) -> Action {
        self.settle(mem);
        self.finish(TrapDecision::Resume, was_kernel, frame, now_ns, tsc, mem)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::guest_access::GuestMemory;
    use crate::hypercall::tests::{World, BUF_VA, M2P};
    use crate::time::TimeScale;
    use guest_abi::xen::{HYPERVISOR_MMU_UPDATE, HYPERVISOR_SCHED_OP};

    const CALLBACK: u64 = 0xffff_ffff_8000_1000;

    /// A started system over the test world's domain (an event callback,
    /// a kernel stack, user tables in frame 9), `prepare` applied first,
    /// after one slow hypercall at 500 ns (which takes the timer summary),
    /// with its frame and memory and the world (for its platform).
    fn system(prepare: impl FnOnce(&mut World)) -> (System, TrapFrame, FakeMemory, World) {
        let mut w = World::new(false);
        w.mem.0[9] = w.mem.0[0];
        let v = &mut w.dom.vcpus[0];
        (v.callbacks.event.address, v.user_l4) = (CALLBACK, Some(Mfn(9)));
        v.set_kernel_sp(BUF_VA + 0x3000);
        prepare(&mut w);
        let dom =
            core::mem::replace(&mut w.dom, crate::hypercall::tests::test_domain(0, false, 0..0, None, Mfn(8)).domain);
        let mut mem = core::mem::replace(&mut w.mem, FakeMemory(std::vec::Vec::new()));
        let pool = core::mem::replace(&mut w.pool, crate::hypercall::tests::FakePool(std::vec::Vec::new()));
        let ft = core::mem::replace(&mut w.ft, crate::mm::frame_table::tests::table(1));
        let Some(scale) = TimeScale::from_hz(1_000_000_000) else { panic!("scale") };
        let clock = Clock { tsc_at_zero: 0, scale, tsc_hz: 1_000_000_000 };
        let mut system = System::new(std::vec![(dom, SchedParams::default())], clock, M2P, Box::new(pool), ft);
        let mut frame = TrapFrame::default();
        system.start(&mut frame, 0, 0, &mut mem);
        (frame.rax, frame.rdi, frame.rsi, frame.rsp) = (u64::from(HYPERVISOR_XEN_VERSION), 0, 0, BUF_VA + 0x2000);
        system.syscall(&mut frame, 500, 500, &mut mem, &mut w.plat);
        (system, frame, mem, w)
    }

    /// The same entry on two identical systems, fast on one and slow on
    /// the other: the fast path must serve it, and leave the frame and the
    /// memory exactly as the slow path does.
    fn fast_is_slow(prepare: impl Fn(&mut World) + Copy, entry: impl Fn(&mut TrapFrame, &mut FakeMemory)) -> TrapFrame {
        fast_is_slow_as(prepare, |_, f, m| entry(f, m), Fast::Done)
    }

    /// [`fast_is_slow`] for an entry `setup` also prepares the system for
    /// (the vCPU's mode), which the fast path must serve as `expect` says:
    /// the slow path's action must be the same return (a toggled one
    /// loading the same table), and the vCPU end in the same mode.
    fn fast_is_slow_as(
        prepare: impl Fn(&mut World) + Copy,
        setup: impl Fn(&mut System, &mut TrapFrame, &mut FakeMemory),
        expect: Fast,
    ) -> TrapFrame {
        let (mut fast, mut f1, mut m1, _) = system(prepare);
        let (mut slow, mut f2, mut m2, mut w2) = system(prepare);
        setup(&mut fast, &mut f1, &mut m1);
        setup(&mut slow, &mut f2, &mut m2);
        assert_eq!(fast.fast_syscall(0, &mut f1, 1000, &mut m1, &mut Bases::default()), expect);
        let action = slow.syscall(&mut f2, 1000, 1000, &mut m2, &mut w2.plat);
        let next = match expect {
            Fast::Toggled { l4, .. } => Next::Reload(l4),
            _ => Next::Resume,
        };
        let toggled = matches!(expect, Fast::Toggled { .. });
        assert_eq!(action, Action { toggled, reload_gdt: false, next });
        assert_eq!(f1, f2, "the frames differ");
        assert!(m1.0 == m2.0, "the memory differs");
        assert_eq!(vcpu_state(&fast), vcpu_state(&slow), "the vCPUs differ");
        let mode = |s: &System| s.domains[0].vcpus[0].kernel_mode();
        assert_eq!(fast.current_in_user_mode(), !mode(&fast));
        f1
    }

    /// What of vCPU 0 a fast entry may change: its mode, NMI state,
    /// virtual IOPL, kernel stack pointer.
    fn vcpu_state(s: &System) -> (bool, bool, bool, u8, u64) {
        let v = &s.domains[0].vcpus[0];
        (v.kernel_mode(), v.nmi_masked, v.nmi_pending, v.iopl, v.kernel_sp())
    }

    /// The fast path declines the entry and changes nothing.
    fn declines(system: &System, frame: &mut TrapFrame, mem: &mut FakeMemory, now: u64) {
        let (before, memory, vcpu) = (*frame, mem.0.clone(), vcpu_state(system));
        assert_eq!(system.fast_syscall(0, frame, now, mem, &mut Bases::default()), Fast::Declined);
        assert_eq!(*frame, before, "the frame changed");
        assert!(mem.0 == memory, "the memory changed");
        assert_eq!(vcpu_state(system), vcpu, "the vCPU changed");
    }

    fn null_hypercall(frame: &mut TrapFrame, _: &mut FakeMemory) {
        (frame.rax, frame.rdi, frame.rsi, frame.rip) = (u64::from(HYPERVISOR_XEN_VERSION), 0, 0, 0x7000);
    }

    #[test]
    fn the_null_hypercall_is_served_as_the_slow_path_serves_it() {
        let frame = fast_is_slow(|_| {}, null_hypercall);
        assert_eq!(frame.rax, 0x0004_0011);
        let pagesize = |frame: &mut TrapFrame, _: &mut FakeMemory| {
            (frame.rax, frame.rdi) = (u64::from(HYPERVISOR_XEN_VERSION), u64::from(guest_abi::version::XENVER_PAGESIZE))
        };
        assert_eq!(fast_is_slow(|_| {}, pagesize).rax, 4096);
    }

    #[test]
    fn only_the_calls_it_serves_are_candidates() {
        let mut frame = TrapFrame::default();
        let mut candidate = |nr: u32, a0: u32| {
            (frame.rax, frame.rdi) = (u64::from(nr), u64::from(a0));
            may_be_fast(&frame)
        };
        assert!(candidate(HYPERVISOR_XEN_VERSION, 0) && candidate(HYPERVISOR_XEN_VERSION, 7));
        assert!(!candidate(HYPERVISOR_XEN_VERSION, 1), "extraversion writes guest memory");
        assert!(candidate(HYPERVISOR_EVENT_CHANNEL_OP, EVTCHNOP_SEND));
        assert!(!candidate(HYPERVISOR_EVENT_CHANNEL_OP, 0), "bind_interdomain");
        assert!(candidate(HYPERVISOR_IRET, 0) && candidate(HYPERVISOR_STACK_SWITCH, 0xe02b));
        assert!(candidate(HYPERVISOR_SET_SEGMENT_BASE, guest_abi::arch_x86::SEGBASE_FS));
        assert!(!candidate(HYPERVISOR_SET_SEGMENT_BASE, guest_abi::arch_x86::SEGBASE_GS_USER_SEL), "a segment load");
        assert!(!candidate(HYPERVISOR_MMU_UPDATE, 0) && !candidate(HYPERVISOR_SCHED_OP, 0));
    }

    #[test]
    fn what_would_change_the_system_is_declined_untouched() {
        let (system, mut frame, mut mem, _) = system(|_| {});
        null_hypercall(&mut frame, &mut mem);
        let preempt_at = system.cpus[0].preempt_at_ns;
        declines(&system, &mut frame, &mut mem, preempt_at);
        // Other calls, and xen_version subops that write guest memory.
        for (nr, a0) in [(HYPERVISOR_MMU_UPDATE, 0), (HYPERVISOR_SCHED_OP, 0), (HYPERVISOR_XEN_VERSION, 1), (99, 0)] {
            (frame.rax, frame.rdi) = (u64::from(nr), a0);
            declines(&system, &mut frame, &mut mem, 1000);
        }
        // An entry on a CPU that runs nothing of it.
        null_hypercall(&mut frame, &mut mem);
        assert_eq!(system.fast_syscall(1, &mut frame, 1000, &mut mem, &mut Bases::default()), Fast::Declined);
    }

    #[test]
    fn a_caller_the_exit_must_look_at_is_declined() {
        type Change = fn(&mut System);
        // Each as its hypercall makes it: the state, and the exit work word.
        fn vcpu0(s: &mut System) -> &mut crate::domain::Vcpu {
            let v = &mut s.domains[0].vcpus[0];
            v.note_exit_work();
            v
        }
        let changes: [(&str, Change); 8] = [
            ("user mode, no syscall callback", |s| s.domains[0].vcpus[0].set_kernel_mode(false)),
            ("blocked", |s| vcpu0(s).blocked = true),
            ("yielded", |s| vcpu0(s).yielded = true),
            ("NMI pending", |s| s.domains[0].vcpus[0].nmi_pending = true),
            ("polling", |s| vcpu0(s).poll = Some((std::vec![1], None))),
            ("exit work alone (a new hard affinity)", |s| vcpu0(s).exit_work = true),
            ("timers changed", |s| s.timers_changed()),
            ("paused", |s| s.domains[0].pause_count = 1),
        ];
        for (what, change) in changes {
            let (mut system, mut frame, mut mem, _) = system(|_| {});
            change(&mut system);
            null_hypercall(&mut frame, &mut mem);
            let before = frame;
            assert_eq!(
                system.fast_syscall(0, &mut frame, 1000, &mut mem, &mut Bases::default()),
                Fast::Declined,
                "{what}"
            );
            assert_eq!(frame, before, "{what}");
        }
        // A timer due.
        let (mut system, mut frame, mut mem, _) = system(|_| {});
        system.timer_work.earliest_ns = 900;
        null_hypercall(&mut frame, &mut mem);
        declines(&system, &mut frame, &mut mem, 1000);
    }

    /// The arch layer's memo of the system-wide conditions ([`FastGate`])
    /// closes after every writer that changes them, however it changes
    /// them, and is used as it is while no writer got in: the system
    /// behind the lock it runs on, each change made through the lock's
    /// exclusive side (the test fails if a writer could get in without a
    /// new generation, or if `fast_until_ns` missed a condition).
    #[test]
    fn the_fast_gate_closes_after_every_writer_that_changes_its_conditions() {
        type Change = fn(&mut System);
        let changes: [(&str, Change); 7] = [
            ("timers changed", |s| s.timers_changed()),
            ("a timer due", |s| s.timer_work.earliest_ns = 900),
            ("a preemption due", |s| s.cpus[0].preempt_at_ns = 900),
            ("a domain maybe dying", |s| s.maybe_dying = true),
            ("frames to scrub", |s| {
                assert!((1..64).any(|m| s.ft.push_dirty(Mfn(m)).is_ok()), "a free frame");
            }),
            ("a domain created", |s| {
                let d = crate::hypercall::tests::test_domain(1, false, 0..0, None, Mfn(8)).domain;
                s.lifecycle.created.push(d);
            }),
            ("the CPU idle", |s| s.cpus[0].current = None),
        ];
        for (what, change) in changes {
            let (system, _, _, _) = system(|_| {});
            let lock = crate::sync::RwSpinLock::new(system);
            let gate = FastGate::new();
            let computed = core::cell::Cell::new(0);
            // The clock runs at 1 GHz from TSC 0: the TSC is the time in ns.
            let open = |tsc: u64| {
                let s = lock.read(0);
                gate.open(lock.generation(), tsc, || {
                    computed.set(computed.get() + 1);
                    s.clock.tsc_before(s.fast_until_ns(0))
                })
            };
            assert!(open(1000) && open(1000), "{what}: open before");
            assert_eq!(computed.get(), 1, "{what}: the memo is used while no writer got in");
            change(&mut lock.write(0));
            assert!(!open(1000), "{what}: closed after");
            assert_eq!(computed.get(), 2, "{what}");
        }
    }

    /// An IPI port of vCPU 0's, raised by its own send: the event, the
    /// upcall bounce on the way out, as on the slow path.
    #[test]
    fn a_send_that_stays_with_the_caller_raises_the_event_and_bounces_the_upcall() {
        fn ipi_port(w: &mut World) {
            // A second vCPU (down) to notify or poll instead.
            w.dom.max_vcpus = 2;
            w.dom.create_offline_vcpus(0, 0);
            let Ok(port) = w.dom.evtchn.allocate(&mut w.mem, crate::evtchn::Binding::Ipi, 0) else { panic!("port") };
            assert_eq!(port, 1);
            let Ok(port) = w.dom.evtchn.allocate(&mut w.mem, crate::evtchn::Binding::Ipi, 1) else { panic!("port") };
            assert_eq!(port, 2, "vCPU 1's");
            w.mem.0[8][1] = 0; // events unmasked
            w.poke(BUF_VA, &1u32.to_le_bytes()); // struct evtchn_send { port }
        }
        let send = |frame: &mut TrapFrame, _: &mut FakeMemory| {
            (frame.rax, frame.rdi, frame.rsi, frame.rip) =
                (u64::from(HYPERVISOR_EVENT_CHANNEL_OP), u64::from(EVTCHNOP_SEND), BUF_VA, 0x7000);
        };
        let frame = fast_is_slow(ipi_port, send);
        assert_eq!(frame.rip, CALLBACK, "the upcall was bounced");
        // Masked events: raised, no bounce.
        let frame = fast_is_slow(
            |w| {
                ipi_port(w);
                w.mem.0[8][1] = 1;
            },
            send,
        );
        assert_eq!((frame.rip, frame.rax), (0x7000, 0));
        // A port notifying another vCPU, or a domain with a poller: slow.
        let (mut system, mut frame, mut mem, _) = system(ipi_port);
        send(&mut frame, &mut mem);
        system.domains[0].vcpus[1].poll = Some((std::vec![1], None));
        declines(&system, &mut frame, &mut mem, 1000);
        system.domains[0].vcpus[1].poll = None;
        GuestMemory::new(&mut mem, Mfn(0)).copy_to(BUF_VA, &2u32.to_le_bytes()).expect("mapped");
        declines(&system, &mut frame, &mut mem, 1000);
        GuestMemory::new(&mut mem, Mfn(0)).copy_to(BUF_VA, &1u32.to_le_bytes()).expect("mapped");
        assert_eq!(
            system.fast_syscall(0, &mut frame, 1000, &mut mem, &mut Bases::default()),
            Fast::Done,
            "vCPU 0's own port"
        );
    }

    /// An `iret_context` on the kernel stack at `BUF_VA + 0x1000`: `rax`
    /// 5, `r11` and `rcx` 0x11 and 0x22, the `flags` given (`VGCF_*`),
    /// `rip` 0x7000, the `cs` given, interrupts on, a stack at `BUF_VA +
    /// 0x2000`.
    fn context(mem: &mut FakeMemory, cs: u64, flags: u64) {
        let ctx: [u64; 9] = [5, 0x11, 0x22, flags, 0x7000, cs, 0x202, BUF_VA + 0x2000, 0xe02b];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        GuestMemory::new(mem, Mfn(0)).copy_to(BUF_VA + 0x1000, &bytes).expect("the stack is mapped");
    }

    /// `HYPERVISOR_iret` through [`context`].
    fn iret(cs: u64, flags: u64) -> impl Fn(&mut TrapFrame, &mut FakeMemory) {
        move |frame: &mut TrapFrame, mem: &mut FakeMemory| {
            context(mem, cs, flags);
            (frame.rax, frame.rsp) = (u64::from(HYPERVISOR_IRET), BUF_VA + 0x1000);
        }
    }

    /// An upcall pending in vCPU 0's `vcpu_info`, events unmasked.
    fn upcall_pending(mem: &mut FakeMemory) {
        (mem.0[8][0], mem.0[8][1]) = (1, 0);
    }

    /// The upcall handler's `iret` back to kernel mode, fast; with NMIs
    /// masked, slow.
    #[test]
    fn an_iret_within_the_kernel_is_served() {
        let frame = fast_is_slow(|_| {}, iret(0xe030, 0));
        assert_eq!((frame.rip, frame.rax, frame.rsp, frame.rcx), (0x7000, 5, BUF_VA + 0x2000, 0x22));
        let (mut system, mut frame, mut mem, _) = system(|_| {});
        iret(0xe030, 0)(&mut frame, &mut mem);
        system.domains[0].vcpus[0].nmi_masked = true;
        declines(&system, &mut frame, &mut mem, 1000);
    }

    /// A system call's `iret` back to user mode: user mode and the user
    /// table, as on the slow path; `VGCF_in_syscall` keeps `rcx` and `r11`.
    #[test]
    fn an_iret_to_user_mode_is_served_with_the_user_table() {
        let to_user = Fast::Toggled { l4: Mfn(9), kernel: false };
        let frame = fast_is_slow_as(|_| {}, |_, f, m| iret(0xe033, 0)(f, m), to_user);
        assert_eq!((frame.rip, frame.rax, frame.cs, frame.rcx, frame.r11), (0x7000, 5, 0xe033, 0x22, 0x11));
        let in_syscall = |_: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
            (f.rcx, f.r11) = (0x33, 0x44);
            iret(0xe033, 1 << 8)(f, m)
        };
        let frame = fast_is_slow_as(|_| {}, in_syscall, to_user);
        assert_eq!((frame.rcx, frame.r11), (0x33, 0x44), "VGCF_in_syscall");
        // Masked events stay masked: the context's flags say so.
        let masked = |_: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
            iret(0xe033, 0)(f, m);
            upcall_pending(m);
            m.0[8][1] = 1;
            let ctx_rflags = BUF_VA + 0x1000 + 6 * 8;
            GuestMemory::new(m, Mfn(0)).copy_to(ctx_rflags, &0x2u64.to_le_bytes()).expect("mapped");
        };
        let frame = fast_is_slow_as(|_| {}, masked, to_user);
        assert_eq!(frame.rip, 0x7000, "no upcall with events masked");
    }

    /// An `iret` to user mode that meets a pending upcall is bounced to
    /// the event callback on the kernel stack: it ends in kernel mode, no
    /// toggle, as on the slow path.
    #[test]
    fn an_iret_to_user_mode_that_meets_an_upcall_stays_in_kernel_mode() {
        let setup = |_: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
            iret(0xe033, 0)(f, m);
            upcall_pending(m);
        };
        let frame = fast_is_slow_as(|_| {}, setup, Fast::Done);
        assert_eq!((frame.rip, frame.rsp & !0xfff), (CALLBACK, BUF_VA + 0x2000), "bounced onto the kernel stack");
        // The bounce fails (no kernel stack): the iret is done, the exit
        // is the slow path's, which crashes the domain as the slow path
        // alone does.
        let no_stack = |w: &mut World| w.dom.vcpus[0].set_kernel_sp(0x1000_0000);
        let (mut fast, mut f1, mut m1, _) = system(no_stack);
        let (mut slow, mut f2, mut m2, mut w2) = system(no_stack);
        for (f, m) in [(&mut f1, &mut m1), (&mut f2, &mut m2)] {
            setup(&mut fast, f, m);
        }
        assert_eq!(
            fast.fast_syscall(0, &mut f1, 1000, &mut m1, &mut Bases::default()),
            Fast::Exit { was_kernel: true }
        );
        let action = fast.finish_fast_entry(true, &mut f1, 1000, 1000, &mut m1);
        assert_eq!(action, slow.syscall(&mut f2, 1000, 1000, &mut m2, &mut w2.plat));
        assert!(fast.domains[0].crash_message.is_some() && slow.domains[0].crash_message.is_some());
        assert!(m1.0 == m2.0, "the memory differs");
    }

    /// Every `iret` the slow path must handle otherwise (a crash, the
    /// failsafe callback, NMIs to unmask) is declined untouched.
    #[test]
    fn an_iret_to_user_mode_the_slow_path_must_see_is_declined() {
        let (mut system, mut frame, mut mem, _) = system(|_| {});
        // A code segment that does not load (the guest has no GDT): failsafe.
        iret(0x0803, 0)(&mut frame, &mut mem);
        declines(&system, &mut frame, &mut mem, 1000);
        iret(0xe033, 0)(&mut frame, &mut mem);
        system.domains[0].vcpus[0].nmi_masked = true;
        declines(&system, &mut frame, &mut mem, 1000);
        system.domains[0].vcpus[0].nmi_masked = false;
        // No user tables: the slow path crashes the guest.
        system.domains[0].vcpus[0].user_l4 = None;
        declines(&system, &mut frame, &mut mem, 1000);
        // An unreadable frame.
        system.domains[0].vcpus[0].user_l4 = Some(Mfn(9));
        frame.rsp = 0x1000_0000;
        declines(&system, &mut frame, &mut mem, 1000);
    }

    const SYSCALL_CALLBACK: u64 = 0xffff_ffff_8000_2000;

    /// The guest kernel's syscall callback, events masked on entry.
    fn syscall_callback(w: &mut World) {
        w.dom.vcpus[0].callbacks.syscall = crate::domain::Callback { address: SYSCALL_CALLBACK, mask_events: true };
    }

    /// vCPU 0 in user mode making a system call (Linux's getpid) with DF
    /// set: the CPU's `rcx` and `r11` as `syscall` leaves them.
    fn user_syscall(system: &mut System, frame: &mut TrapFrame, _: &mut FakeMemory) {
        system.domains[0].vcpus[0].set_kernel_mode(false);
        (frame.rax, frame.rcx, frame.r11, frame.rip, frame.rsp) = (39, 0x40_1234, 0x646, 0x40_1234, 0x7fff_0000);
        frame.cs = 0xe033;
    }

    /// A system call from user mode is bounced to the syscall callback on
    /// the kernel stack, in kernel mode on the kernel table, DF cleared:
    /// as the slow path bounces it, whatever its number.
    #[test]
    fn a_system_call_from_user_mode_is_bounced_as_the_slow_path_bounces_it() {
        let to_kernel = Fast::Toggled { l4: Mfn(0), kernel: true };
        let frame = fast_is_slow_as(syscall_callback, user_syscall, to_kernel);
        assert_eq!((frame.rip, frame.rflags & 0x400), (SYSCALL_CALLBACK, 0));
        assert_eq!(frame.rsp & !0xfff, BUF_VA + 0x2000, "on the kernel stack");
        // A number that would be a fast hypercall from kernel mode.
        let iret_number = |s: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
            user_syscall(s, f, m);
            f.rax = u64::from(HYPERVISOR_IRET);
        };
        assert_eq!(fast_is_slow_as(syscall_callback, iret_number, to_kernel).rip, SYSCALL_CALLBACK);
        // Events left unmasked and an upcall pending: bounced on top.
        let unmasked = |w: &mut World| {
            syscall_callback(w);
            w.dom.vcpus[0].callbacks.syscall.mask_events = false;
        };
        let pending = |s: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
            user_syscall(s, f, m);
            upcall_pending(m);
        };
        assert_eq!(fast_is_slow_as(unmasked, pending, to_kernel).rip, CALLBACK);
        // Masked by the callback: no upcall yet.
        assert_eq!(fast_is_slow_as(syscall_callback, pending, to_kernel).rip, SYSCALL_CALLBACK);
    }

    /// A system call the slow path must handle otherwise is declined
    /// untouched: no callback (`#UD`), 32-bit code (the `syscall32`
    /// callback), a kernel stack it cannot write (a crash), an NMI to
    /// deliver.
    #[test]
    fn a_system_call_the_slow_path_must_see_is_declined() {
        let (mut bare, mut frame, mut mem, _) = system(|_| {});
        user_syscall(&mut bare, &mut frame, &mut mem);
        declines(&bare, &mut frame, &mut mem, 1000);
        let (mut system, mut frame, mut mem, _) = system(syscall_callback);
        user_syscall(&mut system, &mut frame, &mut mem);
        frame.cs = traps::FLAT_USER_CS32;
        declines(&system, &mut frame, &mut mem, 1000);
        user_syscall(&mut system, &mut frame, &mut mem);
        system.domains[0].vcpus[0].set_kernel_sp(0x1000_0000);
        declines(&system, &mut frame, &mut mem, 1000);
        system.domains[0].vcpus[0].set_kernel_sp(BUF_VA + 0x3000);
        system.domains[0].vcpus[0].nmi_pending = true;
        declines(&system, &mut frame, &mut mem, 1000);
        system.domains[0].vcpus[0].nmi_pending = false;
        let preempt_at = system.cpus[0].preempt_at_ns;
        declines(&system, &mut frame, &mut mem, preempt_at);
        assert!(matches!(
            system.fast_syscall(0, &mut frame, 1000, &mut mem, &mut Bases::default()),
            Fast::Toggled { .. }
        ));
    }

    /// Random system calls, `iret`s and page faults from either mode
    /// (hostile frames, callbacks or none, stacks mapped or not, upcalls pending or not,
    /// NMIs masked or pending): each the fast path serves must end as on
    /// the slow path (frame, memory, mode, the action; after a failed
    /// upcall bounce, the exclusive exit's action and crash too), and each
    /// it declines must leave everything as it was.
    #[test]
    fn random_mode_changes_are_served_as_the_slow_path_serves_them_or_declined_untouched() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut toggled, mut within, mut exits, mut declined) = (0, 0, 0, 0);
        let mut faults = 0;
        for round in 0..4000 {
            let r: [u64; 8] = core::array::from_fn(|_| next());
            let pick = |x: u64, items: &[u64]| items[(x % items.len() as u64) as usize];
            let prepare = move |w: &mut World| {
                let v = &mut w.dom.vcpus[0];
                if r[0] & 1 != 0 {
                    v.callbacks.syscall =
                        crate::domain::Callback { address: SYSCALL_CALLBACK, mask_events: r[0] & 2 != 0 };
                }
                if r[0] & 12 == 4 {
                    v.user_l4 = None;
                }
                if r[0] & 48 == 16 {
                    v.set_kernel_sp(0x1000_0000); // unmapped
                }
                if r[0] & 64 != 0 {
                    v.traps[14] = crate::domain::TrapHandler {
                        flags: (r[0] >> 8 & 4) as u8,
                        address: PF_HANDLER,
                        ..Default::default()
                    };
                }
            };
            // Every fourth entry a page fault (any error code) instead.
            let page_fault = r[1] & 0x3000 == 0x3000;
            let setup = move |s: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
                let v = &mut s.domains[0].vcpus[0];
                v.set_kernel_mode(r[1] & 1 == 0);
                v.nmi_masked = r[1] & 6 == 6;
                v.nmi_pending = r[1] & 0x18 == 0x18;
                (m.0[8][0], m.0[8][1]) = ((r[1] >> 5 & 1) as u8, (r[1] >> 6 & 1) as u8);
                let cs = pick(r[2], &[0xe033, 0xe033, 0xe030, 0xe023, 0x0803, 0xe02b, r[2] >> 32 & 0xffff]);
                let rip = pick(r[7], &[0x7000, 0x7000, r[7] >> 8, 0x8000_0000_0000]);
                let rsp = pick(r[3] >> 40, &[BUF_VA + 0x2000, BUF_VA + 0x2000, 0x8000_0000_0000, 0x1000_0000]);
                let flags = pick(r[2] >> 20, &[0, 1 << 8]);
                let ctx: [u64; 9] = [r[4], r[5], r[6], flags, rip, cs, r[3] & 0x3f_ffff, rsp, 0xe02b];
                let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
                GuestMemory::new(m, Mfn(0)).copy_to(BUF_VA + 0x1000, &bytes).expect("the stack is mapped");
                f.rax = if r[1] & 0x80 != 0 { r[5] & 0x1ff } else { u64::from(HYPERVISOR_IRET) };
                f.rsp = if r[1] & 0x300 == 0x300 { 0x1000_0000 } else { BUF_VA + 0x1000 };
                (f.rcx, f.r11, f.rip) = (r[6], r[4] & 0x3f_ffff, r[6]);
                f.cs = if r[1] & 0xc00 == 0xc00 { traps::FLAT_USER_CS32 } else { 0xe033 };
                // Kernel-mode calls other than iret are the other tests'.
                if v.kernel_mode() && r[1] & 0x80 != 0 {
                    f.rax = u64::from(HYPERVISOR_IRET);
                }
                if page_fault {
                    (f.vector, f.error_code) = (14, r[6] & 0x1f);
                }
            };
            let (mut fast, mut f1, mut m1, _) = system(prepare);
            let (mut slow, mut f2, mut m2, mut w2) = system(prepare);
            setup(&mut fast, &mut f1, &mut m1);
            setup(&mut slow, &mut f2, &mut m2);
            let (before, memory, vcpu) = (f1, m1.0.clone(), vcpu_state(&fast));
            let mode = vcpu.0;
            let outcome = if page_fault {
                fast.fast_page_fault(0, &mut f1, CR2, 1000, &mut m1)
            } else {
                fast.fast_syscall(0, &mut f1, 1000, &mut m1, &mut Bases::default())
            };
            let mode_of = |s: &System| s.domains[0].vcpus[0].kernel_mode();
            let expected = match outcome {
                Fast::Declined => {
                    declined += 1;
                    assert_eq!(f1, before, "round {round}: the frame changed");
                    assert!(m1.0 == memory, "round {round}: the memory changed");
                    assert_eq!(vcpu_state(&fast), vcpu, "round {round}: the vCPU changed");
                    continue;
                }
                Fast::Done => {
                    within += 1;
                    Action { toggled: false, reload_gdt: false, next: Next::Resume }
                }
                Fast::Toggled { l4, kernel } => {
                    toggled += 1;
                    assert_eq!(kernel, mode_of(&fast), "round {round}");
                    assert_eq!(l4, fast.domains[0].vcpus[0].current_l4(), "round {round}");
                    Action { toggled: true, reload_gdt: false, next: Next::Reload(l4) }
                }
                Fast::Exit { was_kernel } => {
                    exits += 1;
                    assert_eq!(was_kernel, mode, "round {round}");
                    fast.finish_fast_entry(was_kernel, &mut f1, 1000, 1000, &mut m1)
                }
            };
            faults += usize::from(page_fault);
            let action = if page_fault {
                slow.guest_trap(&mut f2, CR2, 1000, 1000, &mut m2, &mut NoCpu)
            } else {
                slow.syscall(&mut f2, 1000, 1000, &mut m2, &mut w2.plat)
            };
            assert_eq!(action, expected, "round {round}: {outcome:?}");
            assert_eq!(f1, f2, "round {round}: the frames differ ({outcome:?})");
            assert!(m1.0 == m2.0, "round {round}: the memory differs ({outcome:?})");
            assert_eq!(vcpu_state(&fast), vcpu_state(&slow), "round {round}: the vCPUs differ");
            let crashed = |s: &System| s.domains[0].crash_message.is_some();
            assert_eq!(crashed(&fast), crashed(&slow), "round {round}");
        }
        std::println!(
            "toggled {toggled}, within the kernel {within}, exits {exits}, declined {declined}, page faults served {faults}"
        );
        assert!(
            toggled > 100 && within > 20 && exits > 3 && declined > 100 && faults > 20,
            "every outcome is exercised"
        );
    }

    /// A CPU whose segment-base writes are recorded (in order, as MSR and
    /// value); anything else it is asked is a test failure.
    #[derive(Default)]
    struct Bases(std::vec::Vec<(u32, u64)>);

    impl CpuOps for Bases {
        fn port_in(&mut self, _: u16, _: u8) -> u32 {
            panic!("port_in")
        }
        fn port_out(&mut self, _: u16, _: u8, _: u32) {
            panic!("port_out")
        }
        fn clts(&mut self) {
            panic!("clts")
        }
        fn set_ts(&mut self, _: bool) {
            panic!("set_ts")
        }
        fn wbinvd(&mut self) {
            panic!("wbinvd")
        }
        fn cpuid(&self, _: u32, _: u32) -> [u32; 4] {
            panic!("cpuid")
        }
        fn write_segment_base(&mut self, msr: u32, value: u64) {
            self.0.push((msr, value));
        }
        fn read_segment_base(&self, _: u32) -> u64 {
            panic!("read_segment_base")
        }
        fn set_fsgsbase(&mut self, _: bool) {
            panic!("set_fsgsbase")
        }
    }

    /// `set_segment_base` of a base with a canonical value is served with
    /// the slow path's write and return; anything else (the selector, a
    /// bad `which`, a non-canonical base) is declined untouched and left
    /// to the slow path.
    #[test]
    fn set_segment_base_is_served_as_the_slow_path_serves_it_or_declined() {
        use guest_abi::arch_x86::SEGBASE_GS_USER_SEL;
        let (mut served, mut declined) = (0, 0);
        for which in 0..6u64 {
            for base in [0, 0x7fff_ffff_f000, 0x0000_8000_0000_0000, 0xffff_8000_0000_0000, u64::MAX, 0x2b] {
                let (fast, mut f1, mut m1, _) = system(|_| {});
                let (mut slow, mut f2, mut m2, mut w2) = system(|_| {});
                for f in [&mut f1, &mut f2] {
                    (f.rax, f.rdi, f.rsi, f.rip) = (u64::from(HYPERVISOR_SET_SEGMENT_BASE), which, base, 0x7000);
                }
                let (before, memory) = (f1, m1.0.clone());
                let mut cpu = Bases::default();
                let outcome = fast.fast_syscall(0, &mut f1, 1000, &mut m1, &mut cpu);
                assert_eq!(may_be_fast(&before), outcome != Fast::Declined, "which {which} base {base:#x}");
                slow.syscall(&mut f2, 1000, 1000, &mut m2, &mut w2.plat);
                let wrote: std::vec::Vec<(u32, u64)> =
                    w2.plat.segments.iter().filter_map(|&(seg, v)| Some((seg.msr()?, v))).collect();
                match outcome {
                    Fast::Done => {
                        served += 1;
                        assert_eq!((f1.rax, &cpu.0), (0, &wrote), "which {which} base {base:#x}");
                        assert_eq!(f1, f2, "which {which} base {base:#x}: the frames differ");
                        assert!(m1.0 == m2.0, "the memory differs");
                    }
                    Fast::Declined => {
                        declined += 1;
                        assert_eq!(f1, before, "which {which} base {base:#x}: the frame changed");
                        assert!(m1.0 == memory && cpu.0.is_empty(), "which {which} base {base:#x}: changed");
                        assert!(
                            f2.rax != 0 || which == u64::from(SEGBASE_GS_USER_SEL),
                            "which {which} base {base:#x}: declined what the slow path serves"
                        );
                    }
                    other => panic!("which {which} base {base:#x}: {other:?}"),
                }
            }
        }
        assert_eq!((served, declined), (15, 21), "FS, user GS and kernel GS with five canonical bases each");
    }

    /// `stack_switch` from guest kernel mode is served as the slow path
    /// serves it: 0, the new kernel stack, which the next bounce from user
    /// mode uses; from user mode it is a system call like any other.
    #[test]
    fn stack_switch_is_served_as_the_slow_path_serves_it() {
        let switch = |frame: &mut TrapFrame, _: &mut FakeMemory| {
            (frame.rax, frame.rdi, frame.rsi, frame.rip) =
                (u64::from(HYPERVISOR_STACK_SWITCH), 0xe02b, BUF_VA + 0x2800, 0x7000);
        };
        let frame = fast_is_slow(syscall_callback, switch);
        assert_eq!(frame.rax, 0);
        let (mut system, mut frame, mut mem, _) = system(syscall_callback);
        switch(&mut frame, &mut mem);
        assert_eq!(system.fast_syscall(0, &mut frame, 1000, &mut mem, &mut Bases::default()), Fast::Done);
        assert_eq!(system.domains[0].vcpus[0].kernel_sp(), BUF_VA + 0x2800);
        user_syscall(&mut system, &mut frame, &mut mem);
        assert!(matches!(
            system.fast_syscall(0, &mut frame, 1000, &mut mem, &mut Bases::default()),
            Fast::Toggled { kernel: true, .. }
        ));
        assert!(
            (BUF_VA + 0x2700..BUF_VA + 0x2800).contains(&frame.rsp),
            "the system call's bounce frame is on the new stack: {:#x}",
            frame.rsp
        );
    }

    /// A CPU the page-fault path must not touch.
    struct NoCpu;

    impl CpuOps for NoCpu {
        fn port_in(&mut self, _: u16, _: u8) -> u32 {
            panic!("port_in")
        }
        fn port_out(&mut self, _: u16, _: u8, _: u32) {
            panic!("port_out")
        }
        fn clts(&mut self) {
            panic!("clts")
        }
        fn set_ts(&mut self, _: bool) {
            panic!("set_ts")
        }
        fn wbinvd(&mut self) {
            panic!("wbinvd")
        }
        fn cpuid(&self, _: u32, _: u32) -> [u32; 4] {
            panic!("cpuid")
        }
        fn write_segment_base(&mut self, _: u32, _: u64) {
            panic!("write_segment_base")
        }
        fn read_segment_base(&self, _: u32) -> u64 {
            panic!("read_segment_base")
        }
        fn set_fsgsbase(&mut self, _: bool) {
            panic!("set_fsgsbase")
        }
    }

    const PF_HANDLER: u64 = 0xffff_ffff_8000_3000;
    const CR2: u64 = 0xdead_b000;

    /// The guest kernel's #PF handler, events masked on entry or not.
    fn pf_handler(mask: bool) -> impl Fn(&mut World) + Copy {
        move |w: &mut World| {
            w.dom.vcpus[0].traps[14] = crate::domain::TrapHandler {
                flags: if mask { 4 } else { 0 },
                address: PF_HANDLER,
                ..Default::default()
            };
        }
    }

    /// A page fault with `error_code`, from kernel or user mode.
    fn fault(kernel: bool, error_code: u64) -> impl Fn(&mut System, &mut TrapFrame, &mut FakeMemory) {
        move |s: &mut System, f: &mut TrapFrame, _: &mut FakeMemory| {
            s.domains[0].vcpus[0].set_kernel_mode(kernel);
            (f.vector, f.error_code, f.rip, f.rsp, f.cs, f.rflags) =
                (14, error_code, 0x7000, BUF_VA + 0x2000, 0xe033, 0x202);
        }
    }

    /// The same fault on two identical systems, fast on one and through
    /// `guest_trap` on the other: served as `expect` says, with the same
    /// frame, memory (the bounce frame, `vcpu_info.arch.cr2`), vCPU state
    /// and return.
    fn fault_is_slow(
        prepare: impl Fn(&mut World) + Copy,
        setup: impl Fn(&mut System, &mut TrapFrame, &mut FakeMemory),
        expect: Fast,
    ) -> (TrapFrame, FakeMemory) {
        let (mut fast, mut f1, mut m1, _) = system(prepare);
        let (mut slow, mut f2, mut m2, _) = system(prepare);
        setup(&mut fast, &mut f1, &mut m1);
        setup(&mut slow, &mut f2, &mut m2);
        assert_eq!(fast.fast_page_fault(0, &mut f1, CR2, 1000, &mut m1), expect);
        let action = slow.guest_trap(&mut f2, CR2, 1000, 1000, &mut m2, &mut NoCpu);
        let next = match expect {
            Fast::Toggled { l4, .. } => Next::Reload(l4),
            _ => Next::Resume,
        };
        let toggled = matches!(expect, Fast::Toggled { .. });
        assert_eq!(action, Action { toggled, reload_gdt: false, next });
        assert_eq!(f1, f2, "the frames differ");
        assert!(m1.0 == m2.0, "the memory differs");
        assert_eq!(vcpu_state(&fast), vcpu_state(&slow), "the vCPUs differ");
        (f1, m1)
    }

    /// A page fault that is not a write to a present page, from kernel or
    /// user mode, is bounced to the trap table's handler as the slow path
    /// bounces it: the fault address in `vcpu_info`, the user bit by the
    /// guest's mode, the upcall on top if events stay unmasked.
    #[test]
    fn a_page_fault_is_bounced_as_the_slow_path_bounces_it() {
        let (frame, mut mem) = fault_is_slow(pf_handler(true), fault(true, 0), Fast::Done);
        assert_eq!(frame.rip, PF_HANDLER);
        let mut error = [0u8; 8];
        GuestMemory::new(&mut mem, Mfn(0)).copy_from(frame.rsp + 16, &mut error).expect("the bounce frame");
        assert_eq!(u64::from_le_bytes(error), 0, "a kernel-mode fault");
        assert_eq!(mem.0[8][0x10..0x18], CR2.to_le_bytes(), "vcpu_info.arch.cr2");
        let to_kernel = Fast::Toggled { l4: Mfn(0), kernel: true };
        let (frame, mut mem) = fault_is_slow(pf_handler(true), fault(false, 2), to_kernel);
        GuestMemory::new(&mut mem, Mfn(0)).copy_from(frame.rsp + 16, &mut error).expect("the bounce frame");
        assert_eq!(u64::from_le_bytes(error), 6, "a user-mode write fault");
        assert_eq!(frame.rsp & !0xfff, BUF_VA + 0x2000, "on the kernel stack");
        let pending = |s: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
            fault(false, 1)(s, f, m);
            upcall_pending(m);
        };
        assert_eq!(fault_is_slow(pf_handler(false), pending, to_kernel).0.rip, CALLBACK, "the upcall on top");
    }

    /// A page fault the slow path must handle otherwise is declined
    /// untouched: a write to a present page (page-table writes are
    /// emulated), no handler, a kernel stack the frame cannot be written
    /// to (the fault address put back), an NMI pending, another vector.
    #[test]
    fn a_page_fault_the_slow_path_must_see_is_declined() {
        let pf_declines = |system: &System, frame: &mut TrapFrame, mem: &mut FakeMemory| {
            let (before, memory, vcpu) = (*frame, mem.0.clone(), vcpu_state(system));
            assert_eq!(system.fast_page_fault(0, frame, CR2, 1000, mem), Fast::Declined);
            assert_eq!(*frame, before, "the frame changed");
            assert!(mem.0 == memory, "the memory changed");
            assert_eq!(vcpu_state(system), vcpu, "the vCPU changed");
        };
        let (mut bare, mut frame, mut mem, _) = system(|_| {});
        fault(true, 0)(&mut bare, &mut frame, &mut mem);
        pf_declines(&bare, &mut frame, &mut mem);
        let (mut system, mut frame, mut mem, _) = system(pf_handler(true));
        fault(true, 3)(&mut system, &mut frame, &mut mem);
        pf_declines(&system, &mut frame, &mut mem);
        fault(false, 0)(&mut system, &mut frame, &mut mem);
        system.domains[0].vcpus[0].set_kernel_sp(0x1000_0000);
        pf_declines(&system, &mut frame, &mut mem);
        fault(true, 0)(&mut system, &mut frame, &mut mem);
        frame.rsp = 0x1000_0000;
        pf_declines(&system, &mut frame, &mut mem);
        fault(true, 0)(&mut system, &mut frame, &mut mem);
        system.domains[0].vcpus[0].nmi_pending = true;
        pf_declines(&system, &mut frame, &mut mem);
        system.domains[0].vcpus[0].nmi_pending = false;
        frame.vector = 13;
        pf_declines(&system, &mut frame, &mut mem);
        frame.vector = 14;
        assert_eq!(system.fast_page_fault(0, &mut frame, CR2, 1000, &mut mem), Fast::Done);
    }
}
