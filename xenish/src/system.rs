//! The running system: the domains, which one has the CPU, and the decisions
//! taken on every entry from a guest (hypercall or trap) about what runs
//! next. The arch layer saves the guest's registers in a [`TrapFrame`], calls
//! in here, and carries out the returned [`Action`].

use alloc::format;
use alloc::vec::Vec;

use crate::domain::{Domain, DomainState, ShutdownReason};
use crate::hypercall::{self, Ctx, Outcome, Platform};
use crate::mm::{MachineMemory, Mfn};
use crate::regs::TrapFrame;
use crate::traps::{self, CpuOps, TrapDecision};

/// What the arch layer must do after an entry has been handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Return to the guest context now in the frame (same address space).
    Resume,
    /// Load this top-level page table, then return to the frame.
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
}

impl System {
    /// A system that will start running `domains[0]`.
    pub fn new(domains: Vec<Domain>) -> Self {
        System { domains, current: 0 }
    }

    /// Handles a `syscall` from the current guest: a hypercall.
    pub fn hypercall(&mut self, frame: &mut TrapFrame, mem: &mut dyn MachineMemory, platform: &mut dyn Platform) -> Action {
        let Some(domain) = self.domains.get_mut(self.current) else {
            return self.schedule(frame);
        };
        if frame.rax == u64::from(guest_abi::xen::HYPERVISOR_IRET) {
            // iret replaces the whole frame rather than returning a value.
            if let TrapDecision::Crash(why) = traps::iret(domain, 0, frame, mem) {
                crate::printk!("xenish: d{} crashed: {}", domain.id, why);
                domain.crash(why);
            }
            return self.after_entry(frame);
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
        self.after_entry(frame)
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
        match traps::handle(domain, 0, frame, cr2, mem, cpu) {
            TrapDecision::Resume => {}
            TrapDecision::Crash(why) => {
                let msg = format!("{why} at rip {:#x} (rsp {:#x})", frame.rip, frame.rsp);
                crate::printk!("xenish: d{} crashed: {}", domain.id, msg);
                domain.crash(msg);
            }
        }
        self.after_entry(frame)
    }

    /// After an entry: keep running the current domain, or switch away.
    fn after_entry(&mut self, frame: &mut TrapFrame) -> Action {
        match self.domains.get(self.current) {
            Some(d) if d.is_running() => Action::Resume,
            Some(d) => {
                if let DomainState::Shutdown(reason) = d.state {
                    if !matches!(reason, ShutdownReason::Crash) || d.crash_message.is_none() {
                        crate::printk!("xenish: d{} shut down: {}", d.id, reason);
                    }
                }
                self.schedule(frame)
            }
            None => self.schedule(frame),
        }
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
                return Action::Switch(vcpu.kernel_l4);
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
