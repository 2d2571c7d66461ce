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

impl System {
    /// Serves the `syscall` in `frame` from the vCPU CPU `cpu` runs, at
    /// `now_ns`, without changing the system (see the module's
    /// description), or declines it with nothing changed.
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
            || crate::irq::any_pending()
        {
            return None;
        }
        let d = self.domains.get(who.domain).filter(|d| d.is_running())?;
        let v = d.vcpus.get(who.vcpu)?;
        let quiet = v.kernel_mode && !v.down && !v.blocked && v.poll.is_none() && !v.yielded && !v.nmi_pending;
        if !quiet || frame.cs == traps::FLAT_USER_CS32 || (self.smp_guests && !d.tools.may_run_on(who.vcpu, cpu)) {
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
