//! The fast path: the hypercalls that touch only the calling vCPU, served
//! under the system lock taken shared, so that two domains on two CPUs
//! make them in parallel (issue 15's "hypercalls in parallel without one
//! global lock").
//!
//! Under a shared lock nothing in [`System`] may change: other CPUs read
//! it at the same time. What these hypercalls change is the guest's own
//! memory (event bits with atomic operations, the bounce frame on its
//! stack, `evtchn_upcall_mask`) and the entry's frame; anything that would
//! change the domain, wake or kick a vCPU, run the scheduler or touch the
//! frame table is found before anything is done, and the entry goes the
//! slow way ([`System::syscall`] under the lock taken exclusively). A
//! hypercall is never half done here.
//!
//! Served: `xen_version` subops that read nothing
//! ([`hypercall::xen_version::constant_answer`]), `EVTCHNOP_send` on a
//! 2-level port whose event stays with the caller
//! ([`hypercall::event_channel::send_in_domain`]), and `HYPERVISOR_iret`
//! from kernel to kernel mode ([`traps::iret_in_kernel`]); on the way out
//! the pending upcall is bounced ([`traps::deliver_upcall_in_kernel`]).
//!
//! Only when the exit has nothing else to do: no preemption due on this
//! CPU, no vCPU timer or poll timeout due and the timer summary current,
//! no device interrupt to deliver, no domain being created, torn down or
//! scrubbed, and the caller running in guest kernel mode, neither down,
//! blocked, polling, yielding nor with an NMI pending, on a CPU its
//! affinity allows. The time the fast calls take is charged to the
//! caller: the scheduler charges from the slice's start at the next slow
//! entry or switch, and the fast path never starts a slice.
//!
//! What is left for the slow path's exit is safe to leave: vCPUs blocked
//! elsewhere are woken by the entry that raised their event (the fast
//! path raises events only for the calling, running vCPU), other CPUs are
//! kicked by the entry that gave them work, and this CPU's timer stays
//! armed for the deadline its last slow exit computed (anything earlier
//! that another CPU arranges comes with a kick).

use super::*;
use guest_abi::event_channel::EVTCHNOP_SEND;
use guest_abi::xen::{HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_IRET, HYPERVISOR_XEN_VERSION};

/// What [`System::fast_syscall`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// Nothing: the entry is to be handled on the slow path.
    Declined,
    /// The entry is complete: return to the guest as the frame says, in
    /// the same mode, on the same tables.
    Done,
    /// The hypercall was carried out, but its exit needs the slow path
    /// (the upcall's bounce failed): [`System::finish_fast_entry`].
    Exit,
}

/// Whether the `syscall` in `frame` is one [`System::fast_syscall`] may
/// serve, by its number and first argument alone: what the arch layer
/// asks before it takes any lock, so that every other entry pays nothing
/// for the fast path.
#[inline(always)]
pub fn may_be_fast(frame: &TrapFrame) -> bool {
    match frame.rax {
        nr if nr == u64::from(HYPERVISOR_XEN_VERSION) => {
            hypercall::xen_version::constant_answer(frame.rdi as u32).is_some()
        }
        nr if nr == u64::from(HYPERVISOR_EVENT_CHANNEL_OP) => frame.rdi as u32 == EVTCHNOP_SEND,
        nr => nr == u64::from(HYPERVISOR_IRET),
    }
}

impl System {
    /// Serves the `syscall` in `frame` from the vCPU CPU `cpu` runs, at
    /// `now_ns`, without changing the system (see the module's
    /// description), or declines it with nothing changed. The caller has
    /// checked that no device interrupt waits to be delivered
    /// ([`crate::irq::any_pending`]: the slow path delivers them).
    pub fn fast_syscall(&self, cpu: usize, frame: &mut TrapFrame, now_ns: u64, mem: &mut dyn MachineMemory) -> Fast {
        let Some((domain, vcpu)) = self.fast_caller(cpu, frame, now_ns) else { return Fast::Declined };
        let [a0, a1, ..] = frame.hypercall_args();
        let nr = frame.rax;
        let done = if nr == u64::from(HYPERVISOR_XEN_VERSION) {
            hypercall::xen_version::constant_answer(a0 as u32).map(|v| frame.rax = v as u64).is_some()
        } else if nr == u64::from(HYPERVISOR_EVENT_CHANNEL_OP) && a0 as u32 == EVTCHNOP_SEND {
            hypercall::event_channel::send_in_domain(domain, vcpu, mem, a1).map(|v| frame.rax = v as u64).is_some()
        } else if nr == u64::from(HYPERVISOR_IRET) {
            // iret replaces the whole frame rather than returning a value.
            traps::iret_in_kernel(domain, vcpu, frame, mem)
        } else {
            false
        };
        if !done {
            return Fast::Declined;
        }
        match traps::deliver_upcall_in_kernel(domain, vcpu, frame, mem) {
            Ok(_) => Fast::Done,
            Err(_) => Fast::Exit,
        }
    }

    /// The calling domain and vCPU index, if the entry on CPU `cpu` may be
    /// served on the fast path at `now_ns`.
    #[inline]
    fn fast_caller(&self, cpu: usize, frame: &TrapFrame, now_ns: u64) -> Option<(&Domain, usize)> {
        let here = self.cpus.get(cpu)?;
        let who = here.current?;
        let w = &self.timer_work;
        if now_ns >= here.preempt_at_ns
            || w.stale
            || now_ns >= w.earliest_ns
            || self.maybe_dying
            || !self.lifecycle.created.is_empty()
            || self.ft.dirty_frames() != 0
        {
            return None;
        }
        let d = self.domains.get(who.domain).filter(|d| d.is_running())?;
        let v = d.vcpus.get(who.vcpu)?;
        // With its exit work word clear the vCPU is neither down, blocked,
        // polling nor yielding, and its hard affinity has the CPU it runs
        // on (System::exit_work_missed).
        let quiet = v.kernel_mode && !v.exit_work && !v.nmi_pending;
        if !quiet || frame.cs == traps::FLAT_USER_CS32 {
            return None;
        }
        Some((d, who.vcpu))
    }

    /// The exit of an entry [`Self::fast_syscall`] carried out but could
    /// not finish ([`Fast::Exit`]), under the exclusive lock: what
    /// [`Self::syscall`] does after its hypercall.
    pub fn finish_fast_entry(
        &mut self,
        frame: &mut TrapFrame,
        now_ns: u64,
        tsc: u64,
        mem: &mut dyn MachineMemory,
    ) -> Action {
        self.settle(mem);
        self.finish(TrapDecision::Resume, true, frame, now_ns, tsc, mem)
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
        (v.callbacks.event.address, v.kernel_sp, v.user_l4) = (CALLBACK, BUF_VA + 0x3000, Some(Mfn(9)));
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
        let (fast, mut f1, mut m1, _) = system(prepare);
        let (mut slow, mut f2, mut m2, mut w2) = system(prepare);
        entry(&mut f1, &mut m1);
        entry(&mut f2, &mut m2);
        assert_eq!(fast.fast_syscall(0, &mut f1, 1000, &mut m1), Fast::Done);
        let action = slow.syscall(&mut f2, 1000, 1000, &mut m2, &mut w2.plat);
        assert_eq!(action, Action { toggled: false, reload_gdt: false, next: Next::Resume });
        assert_eq!(f1, f2, "the frames differ");
        assert!(m1.0 == m2.0, "the memory differs");
        f1
    }

    /// The fast path declines the entry and changes nothing.
    fn declines(system: &System, frame: &mut TrapFrame, mem: &mut FakeMemory, now: u64) {
        let (before, memory) = (*frame, mem.0.clone());
        assert_eq!(system.fast_syscall(0, frame, now, mem), Fast::Declined);
        assert_eq!(*frame, before, "the frame changed");
        assert!(mem.0 == memory, "the memory changed");
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
        assert!(candidate(HYPERVISOR_IRET, 0));
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
        assert_eq!(system.fast_syscall(1, &mut frame, 1000, &mut mem), Fast::Declined);
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
            ("user mode", |s| s.domains[0].vcpus[0].kernel_mode = false),
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
            assert_eq!(system.fast_syscall(0, &mut frame, 1000, &mut mem), Fast::Declined, "{what}");
            assert_eq!(frame, before, "{what}");
        }
        // A timer due.
        let (mut system, mut frame, mut mem, _) = system(|_| {});
        system.timer_work.earliest_ns = 900;
        null_hypercall(&mut frame, &mut mem);
        declines(&system, &mut frame, &mut mem, 1000);
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
        assert_eq!(system.fast_syscall(0, &mut frame, 1000, &mut mem), Fast::Done, "vCPU 0's own port");
    }

    /// The upcall handler's `iret` back to kernel mode, fast; to user
    /// mode, or with NMIs masked, slow.
    #[test]
    fn an_iret_within_the_kernel_is_served_and_one_to_user_mode_is_not() {
        fn context(mem: &mut FakeMemory, cs: u64) {
            let ctx: [u64; 9] = [5, 0, 0, 0, 0x7000, cs, 0x202, BUF_VA + 0x2000, 0xe02b];
            let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
            GuestMemory::new(mem, Mfn(0)).copy_to(BUF_VA + 0x1000, &bytes).expect("the stack is mapped");
        }
        let iret = |cs: u64| {
            move |frame: &mut TrapFrame, mem: &mut FakeMemory| {
                context(mem, cs);
                (frame.rax, frame.rsp) = (u64::from(HYPERVISOR_IRET), BUF_VA + 0x1000);
            }
        };
        let frame = fast_is_slow(|_| {}, iret(0xe030));
        assert_eq!((frame.rip, frame.rax, frame.rsp), (0x7000, 5, BUF_VA + 0x2000));
        let (mut system, mut frame, mut mem, _) = system(|_| {});
        iret(0xe033)(&mut frame, &mut mem);
        declines(&system, &mut frame, &mut mem, 1000);
        iret(0xe030)(&mut frame, &mut mem);
        system.domains[0].vcpus[0].nmi_masked = true;
        declines(&system, &mut frame, &mut mem, 1000);
    }
}
