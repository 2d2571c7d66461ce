//! The running system: the domains, which one has the CPU, and the decisions
//! taken on every entry from a guest (hypercall or trap) about what runs
//! next. The arch layer saves the guest's registers in a [`TrapFrame`], calls
//! in here, and carries out the returned [`Action`].

use alloc::format;
use alloc::vec::Vec;

use crate::domain::{Domain, DomainState};
use crate::hypercall::{self, Ctx, Outcome, Platform};
use crate::mm::{MachineMemory, Mfn};
use crate::regs::TrapFrame;
use crate::time::{self, Clock};
use crate::traps::{self, CpuOps, TrapDecision};

/// What the arch layer must do after an entry has been handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Return to the guest context now in the frame (same address space).
    Resume,
    /// The vCPU toggled between guest kernel and user mode: load its new
    /// top-level table and swap the GS bases (the guest's `swapgs`).
    ToggleMode(Mfn),
    /// Another vCPU runs now: load its top-level table, then return to the frame.
    Switch(Mfn),
    /// Every domain is down: power the machine off, reporting failure or not.
    PowerOff {
        /// Whether any domain crashed.
        failed: bool,
    },
}

/// The hypervisor's domains and the CPU's current one.
pub struct System {
    /// All domains, indexed by position (domain IDs are in [`Domain::id`]).
    pub domains: Vec<Domain>,
    /// Index of the domain whose vCPU 0 is on the CPU.
    pub current: usize,
    /// The hypervisor clock guests' time is published from.
    pub clock: Clock,
}

impl System {
    /// A system that will start running `domains[0]`, with time from `clock`.
    pub fn new(domains: Vec<Domain>, clock: Clock) -> Self {
        System { domains, current: 0, clock }
    }

    /// Publishes every domain's wallclock: `epoch_secs` (UTC) at TSC `tsc`.
    pub fn set_wallclock(&mut self, mem: &mut dyn MachineMemory, epoch_secs: u64, tsc: u64) {
        let since_boot_ns = self.clock.system_time(tsc);
        let boot_ns = (u128::from(epoch_secs) * 1_000_000_000).saturating_sub(u128::from(since_boot_ns));
        let (sec, nsec) = ((boot_ns / 1_000_000_000) as u64, (boot_ns % 1_000_000_000) as u32);
        for d in &self.domains {
            time::update_wallclock(mem, d.shared_info, sec, nsec);
        }
    }

    /// Publishes the current domain's vCPU time at TSC `tsc` (on every
    /// switch to it, as Xen does on each schedule).
    pub fn publish_time(&mut self, mem: &mut dyn MachineMemory, tsc: u64) {
        if let Some(d) = self.domains.get(self.current) {
            for v in 0..d.vcpus.len() {
                time::update_vcpu_time(mem, d.shared_info, v, &self.clock, tsc);
            }
        }
    }

    /// Handles a `syscall` from the current guest: a hypercall from guest
    /// kernel mode, a system call to bounce to the kernel from user mode.
    pub fn syscall(&mut self, frame: &mut TrapFrame, mem: &mut dyn MachineMemory, platform: &mut dyn Platform) -> Action {
        let Some(domain) = self.domains.get_mut(self.current) else {
            return self.schedule(frame);
        };
        let was_kernel = domain.vcpus.first().is_some_and(|v| v.kernel_mode);
        if !was_kernel {
            let decision = traps::syscall_from_user(domain, 0, frame, mem);
            return self.finish(decision, was_kernel, frame, mem);
        }
        if frame.rax == u64::from(guest_abi::xen::HYPERVISOR_IRET) {
            // iret replaces the whole frame rather than returning a value.
            let decision = traps::iret(domain, 0, frame, mem);
            return self.finish(decision, was_kernel, frame, mem);
        }
        let mut ctx = Ctx { domain, vcpu: 0, mem, platform };
        match hypercall::dispatch(&mut ctx, frame.rax, frame.hypercall_args()) {
            Outcome::Return(v) => frame.rax = v as u64,
            Outcome::Continue(args) => {
                // Re-execute the `syscall` (2 bytes) with updated arguments.
                frame.rip = frame.rip.wrapping_sub(2);
                [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8] = args;
            }
        }
        self.finish(TrapDecision::Resume, was_kernel, frame, mem)
    }

    /// Handles an exception raised by the current guest.
    pub fn guest_trap(
        &mut self,
        frame: &mut TrapFrame,
        cr2: u64,
        mem: &mut dyn MachineMemory,
        cpu: &mut dyn CpuOps,
    ) -> Action {
        let Some(domain) = self.domains.get_mut(self.current) else {
            return self.schedule(frame);
        };
        let was_kernel = domain.vcpus.first().is_some_and(|v| v.kernel_mode);
        let decision = traps::handle(domain, 0, frame, cr2, mem, cpu);
        self.finish(decision, was_kernel, frame, mem)
    }

    /// Applies a trap decision and works out what the CPU must do next.
    fn finish(&mut self, decision: TrapDecision, was_kernel: bool, frame: &mut TrapFrame, mem: &mut dyn MachineMemory) -> Action {
        let Some(domain) = self.domains.get_mut(self.current) else {
            return self.schedule(frame);
        };
        if let TrapDecision::Crash(why) = decision {
            let msg = format!("{why} at rip {:#x} (rsp {:#x})", frame.rip, frame.rsp);
            crate::printk!("xenish: d{} crashed: {}", domain.id, msg);
            domain.crash(msg);
        }
        if !domain.is_running() {
            return self.leave_stopped_domain(frame);
        }
        if let Err(why) = traps::deliver_upcall(domain, 0, frame, mem) {
            let msg = format!("event upcall failed: {why}");
            crate::printk!("xenish: d{} crashed: {}", domain.id, msg);
            domain.crash(msg);
            return self.leave_stopped_domain(frame);
        }
        match domain.vcpus.first() {
            Some(v) if v.kernel_mode != was_kernel => Action::ToggleMode(v.current_l4()),
            _ => Action::Resume,
        }
    }

    /// The current domain stopped: report why (unless the hypervisor
    /// already reported crashing it) and run another.
    fn leave_stopped_domain(&mut self, frame: &mut TrapFrame) -> Action {
        if let Some(d) = self.domains.get(self.current) {
            if let (DomainState::Shutdown(reason), None) = (d.state, &d.crash_message) {
                crate::printk!("xenish: d{} shut down: {}", d.id, reason);
            }
        }
        self.schedule(frame)
    }

    /// Loads the first runnable domain's registers into `frame`.
    pub fn schedule_first(&mut self, frame: &mut TrapFrame) -> Action {
        self.run_from(0, frame)
    }

    /// Saves the current vCPU and picks the next runnable domain
    /// (round-robin), loading its registers into `frame`.
    pub fn schedule(&mut self, frame: &mut TrapFrame) -> Action {
        if let Some(vcpu) = self.domains.get_mut(self.current).and_then(|d| d.vcpus.get_mut(0)) {
            vcpu.regs = *frame;
        }
        self.run_from(self.current + 1, frame)
    }

    /// Switches to the first runnable domain at or after index `start`
    /// (wrapping), or powers off when none is left.
    fn run_from(&mut self, start: usize, frame: &mut TrapFrame) -> Action {
        let n = self.domains.len();
        for step in 0..n {
            let i = (start + step) % n;
            let d = &self.domains[i];
            if let (true, Some(vcpu)) = (d.is_running(), d.vcpus.first()) {
                *frame = vcpu.regs;
                self.current = i;
                return Action::Switch(vcpu.current_l4());
            }
        }
        self.report();
        Action::PowerOff { failed: self.any_failed() }
    }

    /// Whether any domain crashed (or was stopped by a watchdog).
    pub fn any_failed(&self) -> bool {
        self.domains.iter().any(|d| matches!(d.state, DomainState::Shutdown(r) if r.is_failure()))
    }

    /// Prints each domain's final state.
    pub fn report(&self) {
        crate::printk!("xenish: all domains have shut down");
        for d in &self.domains {
            match d.state {
                DomainState::Shutdown(reason) => crate::printk!("xenish:   d{} ({}): {}", d.id, d.name, reason),
                DomainState::Running => crate::printk!("xenish:   d{} ({}): running", d.id, d.name),
            }
        }
    }
}
