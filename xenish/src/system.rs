//! The running system: the domains, which vCPU has the CPU, and the
//! decisions taken on every entry from a guest (hypercall, trap, timer
//! interrupt) and on every wakeup of the idle CPU: what runs next, when the
//! CPU must next be interrupted, and whether the machine is done.
//!
//! The arch layer saves the guest's registers in a [`TrapFrame`], calls in
//! here with the current system time, carries out the returned [`Action`],
//! and arms its one-shot timer for [`System::next_deadline_ns`].

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::domain::{Domain, DomainState, RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};
use crate::evtchn;
use crate::flush::{self, FlushReq};
use crate::hypercall::{self, Ctx, Outcome, Peers, Platform};
use crate::ipi::CpuMask;
use crate::lifecycle::{self, Lifecycle, Resources};
use crate::mm::frame_table::FrameTable;
use crate::mm::m2p::M2p;
use crate::mm::{FramePool, MachineMemory, Mfn};
use crate::regs::TrapFrame;
use crate::sched::{Pick, SchedParams, Scheduler, VcpuRef, MAX_CPUS};
use crate::time::{self, Clock};
use crate::traps::{self, CpuOps, TrapDecision};

mod fast;
mod fast_msr;
pub use fast::{may_be_fast, Fast, FastGate};

/// How often the hypervisor looks for console input while the console
/// domain listens for it: the UART is polled, not interrupt-driven (10 ms
/// is well under what a 16-byte FIFO holds at typing speed; QEMU's UART
/// holds input back while its FIFO is full).
pub const CONSOLE_POLL_NS: u64 = 10_000_000;

/// What the arch layer must do after an entry has been handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    /// The vCPU that entered toggled between guest kernel and user mode:
    /// swap its GS bases (the guest's `swapgs`) before anything else.
    pub toggled: bool,
    /// The current vCPU's descriptor table changed: load it again.
    pub reload_gdt: bool,
    /// What runs next.
    pub next: Next,
}

/// What the CPU does after an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Return to the guest context now in the frame, same address space.
    Resume,
    /// Same vCPU, new mode: load this top-level table, then return.
    Reload(Mfn),
    /// A vCPU (possibly the same one after preemption) was loaded into the
    /// frame from its saved state: switch segment state from the vCPU that
    /// entered to [`System::current`], load this table, and return.
    Switch(Mfn),
    /// Nothing can run: idle until the next deadline or interrupt, then
    /// call [`System::idle_wakeup`].
    Idle,
    /// Every domain is down: power the machine off, reporting failure or not.
    PowerOff {
        /// Whether any domain crashed.
        failed: bool,
    },
}

impl Next {
    fn with_toggle(self, toggled: bool) -> Action {
        Action { toggled, reload_gdt: false, next: self }
    }
}

/// The hypervisor's domains and what each CPU runs.
pub struct System {
    /// All domains, indexed by position (domain IDs are in [`Domain::id`]).
    pub domains: Vec<Domain>,
    /// The CPU the entry being handled came from (the one that holds the
    /// big lock): whose [`CpuSched`] the entry's decisions are about.
    /// Always below [`MAX_CPUS`].
    pub this_cpu: usize,
    /// Each CPU's scheduling state, indexed by CPU number.
    ///
    /// An array in the portable core rather than a field of the arch
    /// layer's per-CPU `CpuInfo`: the scheduler's decisions read other
    /// CPUs' state (which vCPU each runs, for the tickles of
    /// [`Self::kicks`] and the load balancing of its pick), the host tests
    /// simulate several CPUs with it, and it is guarded by what guards the
    /// run queues (today the big lock; Xen's per-CPU `sched_resource`
    /// likewise lives with its scheduler lock, not in `cpu_info`). A CPU
    /// taking the lock only names itself ([`Self::enter_cpu`]): nothing is
    /// copied in or out.
    cpus: [CpuSched; MAX_CPUS],
    /// Whether vCPUs run on every CPU (the `smp_guests` option), not on
    /// CPU 0 alone.
    pub smp_guests: bool,
    /// How many CPUs (0..n) run guests.
    nr_cpus: usize,
    /// CPUs to send `SOFTIRQ_SCHEDULE` after the entry ([`Self::kicks`]).
    pub kick: CpuMask,
    /// The last CPU a woken vCPU was sent to while idle (the round robin
    /// of Xen's `last_tickle_cpu`).
    last_tickle: usize,
    /// Scratch list of woken vCPUs for [`Self::kicks`] (kept to avoid an
    /// allocation per entry).
    woken: Vec<VcpuRef>,
    /// TLB maintenance the entry being handled needs, and on which CPUs:
    /// the arch layer carries it out (and clears it) before the entry ends,
    /// before the big lock is released.
    pub flush: FlushReq,
    /// The hypervisor clock guests' time is published from.
    pub clock: Clock,
    /// The run queues.
    pub sched: Scheduler,
    /// The machine-to-phys table, which hypercalls keep current.
    pub m2p: M2p,
    /// The free machine frames, for what domains ask for at run time.
    pub frames: Box<dyn FramePool + Send + Sync>,
    /// The frame table of the PV MMU.
    pub ft: FrameTable,
    /// Domains the toolstack created, and its ID rover.
    pub lifecycle: Lifecycle,
    /// What the exit's timer check needs without a scan of every vCPU.
    timer_work: TimerWork,
    /// Some domain may be dying (its teardown is background work for
    /// [`Self::settle`]): set after every hypercall that may destroy one
    /// (outside [`hypercall::leaves_timers_alone`]), cleared once a look
    /// over the domains finds none.
    maybe_dying: bool,
}

/// The exit's view of every vCPU timer, kept so that an exit with nothing
/// due compares one time instead of scanning every vCPU of every domain
/// (Xen's `TIMER_SOFTIRQ`: raised where timers are armed and expire, not
/// found by a scan). Taken by a scan after anything that may have changed
/// it: a hypercall outside [`hypercall::leaves_timers_alone`], a domain
/// created, or [`System::timers_changed`]. A summary that is too early or
/// too attentive only costs a scan; one that misses a timer would lose it,
/// hence `stale` after every change it does not follow itself.
#[derive(Clone, Copy, Debug)]
struct TimerWork {
    /// Something may have armed or stopped a timer, blocked, polled, or
    /// brought a vCPU or a domain up since the scan below.
    stale: bool,
    /// The earliest timer or poll timeout of a running domain's vCPU
    /// (`u64::MAX`: none).
    earliest_ns: u64,
    /// Some vCPU of a running domain is blocked, polling or coming up:
    /// every exit looks whether it is to be woken.
    wakeups: bool,
}

impl TimerWork {
    const STALE: TimerWork = TimerWork { stale: true, earliest_ns: 0, wakeups: true };
}

/// What [`System`] keeps per CPU (Xen's per-CPU `curr` and
/// `sched_resource`): which vCPU it runs and since when, when it must
/// reschedule, and which page tables its CR3 holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSched {
    /// The vCPU on the CPU, or `None` while idle.
    pub current: Option<VcpuRef>,
    /// When the current vCPU was put on the CPU (ns).
    slice_start_ns: u64,
    /// When the current vCPU must give the CPU back (ns).
    preempt_at_ns: u64,
    /// When the idle CPU must look again even without an event (ns).
    idle_until_ns: Option<u64>,
    /// The vCPU whose page tables the CPU's CR3 holds (`None`: the
    /// hypervisor's own, loaded while it idles), for the dirty masks.
    loaded: Option<VcpuRef>,
    /// How often the CPU put a vCPU on itself (reported at power-off).
    runs: u64,
}

impl System {
    /// Lets vCPUs run on `cpus` CPUs (0..cpus, at most [`MAX_CPUS`]), all
    /// of them taking entries under the big lock ([`Self::enter_cpu`]).
    pub fn enable_smp_guests(&mut self, cpus: usize) {
        let cpus = cpus.clamp(1, MAX_CPUS);
        self.smp_guests = cpus > 1;
        self.nr_cpus = cpus;
        self.sched.set_cpus(cpus);
    }

    /// The CPU `cpu` takes the big lock: the entry's decisions are about
    /// its [`CpuSched`].
    #[inline]
    pub fn enter_cpu(&mut self, cpu: usize) {
        self.this_cpu = slot(cpu);
    }

    /// The scheduling state of the CPU handling the entry.
    #[inline]
    fn here(&self) -> &CpuSched {
        &self.cpus[slot(self.this_cpu)]
    }

    /// [`Self::here`], to change.
    #[inline]
    fn here_mut(&mut self) -> &mut CpuSched {
        &mut self.cpus[slot(self.this_cpu)]
    }

    /// The vCPU on the CPU handling the entry, or `None` while it idles.
    #[inline]
    pub fn current(&self) -> Option<VcpuRef> {
        self.here().current
    }

    /// The vCPU CPU `cpu` runs.
    fn current_of(&self, cpu: usize) -> Option<VcpuRef> {
        self.cpus.get(cpu).and_then(|c| c.current)
    }

    /// The CPU that switched away from `who` has saved all of its state:
    /// another CPU may pick it. If it was woken after this CPU decided to
    /// idle (an event from another CPU, which could not pick it yet and
    /// kicked no one for it), this CPU, idle now, takes another look
    /// ([`Self::kick`] names it): else both could halt with it runnable.
    pub fn vcpu_saved(&mut self, who: VcpuRef) {
        if self.current() == Some(who) {
            return;
        }
        let Some(d) = self.domains.get_mut(who.domain) else { return };
        let may_run_here = d.is_running() && d.tools.may_run_on(who.vcpu, self.this_cpu);
        let Some(v) = d.vcpus.get_mut(who.vcpu) else { return };
        if v.running_on != Some(self.this_cpu) {
            return;
        }
        v.running_on = None;
        if self.cpus[slot(self.this_cpu)].current.is_none() && may_run_here && v.runnable() && self.sched.eligible(who)
        {
            self.kick = self.kick.with(self.this_cpu);
        }
    }

    /// With guests on several CPUs: which CPUs must look at their
    /// scheduler again after this entry ([`Self::kick`]), and where the
    /// vCPUs woken in it wait:
    /// - another CPU whose vCPU has an event to take, may no longer run
    ///   there (down, paused, its hard affinity) or had its timers changed
    ///   by a sibling;
    /// - each woken vCPU goes on the run queue of a CPU its hard affinity
    ///   allows: where it last ran if that CPU idles, else an idle one
    ///   (round robin), else where it last ran; an idle CPU so chosen is
    ///   kicked, a busy one is if the woken vCPU should preempt what it
    ///   runs (after the rate limit), as Xen's `__runq_tickle`;
    /// - every idle CPU that a runnable vCPU waiting for a CPU may run on:
    ///   it takes it from its queue ([`Scheduler::pick_on`] balances).
    pub fn kicks(&mut self, now_ns: u64, mem: &dyn MachineMemory) {
        if !self.smp_guests {
            return;
        }
        let mut idle = CpuMask::EMPTY;
        for cpu in 0..self.nr_cpus {
            if cpu == self.this_cpu {
                continue;
            }
            let Some(who) = self.current_of(cpu) else {
                idle = idle.with(cpu);
                continue;
            };
            let Some(d) = self.domains.get_mut(who.domain) else { continue };
            let (pending, mask_offset) = (d.vcpu_info(who.vcpu), 1);
            let pinned_away = !d.tools.may_run_on(who.vcpu, cpu);
            let running = d.is_running();
            let Some(v) = d.vcpus.get_mut(who.vcpu) else { continue };
            let masked = mem.frame(pending.0).and_then(|f| f.get(pending.1 + mask_offset)).is_some_and(|&b| b != 0);
            let rearm = core::mem::take(&mut v.timers_moved);
            if !running || v.down || pinned_away || rearm || (upcall_pending(pending, mem) && !masked) {
                self.kick = self.kick.with(cpu);
            }
        }
        let tickled;
        (idle, tickled) = self.tickle_woken(now_ns, idle);
        if idle.is_empty() {
            return;
        }
        // The idle CPUs a waiting vCPU's hard affinity allows (one the
        // scheduler would not run now, say out of its cap, wakes none:
        // idle CPUs would otherwise kick each other without end).
        let mut wanted = 0u64;
        for (di, d) in self.domains.iter().enumerate().filter(|(_, d)| d.is_running()) {
            for (vi, v) in d.vcpus.iter().enumerate() {
                let who = VcpuRef { domain: di, vcpu: vi };
                // Not one a CPU was just sent for.
                let sent = self.sched.queue_of(who).is_some_and(|c| tickled.contains(c));
                if v.running_on.is_none() && !v.down && v.initialised && !sent && self.sched.eligible(who) {
                    wanted |= d.tools.affinity(vi).0;
                }
            }
        }
        self.kick = self.kick.or(idle.and(CpuMask(wanted)));
    }

    /// [`Self::kicks`] for the vCPUs woken since the last look: queues each
    /// on a CPU and tickles that CPU; returns the other CPUs still idle and
    /// not tickled, and the idle ones tickled.
    fn tickle_woken(&mut self, now_ns: u64, mut idle: CpuMask) -> (CpuMask, CpuMask) {
        let mut tickled = CpuMask::EMPTY;
        let mut woken = core::mem::take(&mut self.woken);
        woken.clear();
        self.sched.take_woken(&mut woken);
        let online = self.sched.online_mask();
        for &who in &woken {
            let Some(d) = self.domains.get(who.domain).filter(|d| d.is_running()) else { continue };
            let waiting = d.vcpus.get(who.vcpu).is_some_and(|v| v.running_on.is_none() && !v.down && v.initialised);
            let allowed = d.tools.affinity(who.vcpu).0 & online;
            if !waiting || allowed == 0 || !self.sched.eligible(who) {
                continue;
            }
            let home = self.sched.queue_of(who).unwrap_or(0);
            let idlers = idle.0 & allowed;
            let target = if idlers & (1 << (home & 63)) != 0 {
                home
            } else if idlers != 0 {
                // The first idle CPU after the last one tickled.
                let from = (self.last_tickle + 1) % 64;
                let rotated = idlers.rotate_right(from as u32);
                (rotated.trailing_zeros() as usize + from) % 64
            } else if allowed & (1 << (home & 63)) != 0 {
                home
            } else {
                allowed.trailing_zeros() as usize
            };
            self.sched.move_to(who, target);
            if idle.contains(target) {
                idle = idle.without(target);
                tickled = tickled.with(target);
                self.last_tickle = target;
                self.kick = self.kick.with(target);
                continue;
            }
            let Some(cpu) = self.cpus.get_mut(target) else { continue };
            let Some(current) = cpu.current else { continue };
            if self.sched.wake_preempts(current, now_ns.saturating_sub(cpu.slice_start_ns), who) {
                let at = cpu.slice_start_ns.saturating_add(self.sched.ratelimit_ns());
                cpu.preempt_at_ns = cpu.preempt_at_ns.min(at);
                if target != self.this_cpu {
                    self.kick = self.kick.with(target);
                }
            }
        }
        self.woken = woken;
        (idle, tickled)
    }

    /// A system over `domains` (each with its scheduling parameters), with
    /// time from `clock`, the machine's M2P table, and run-time memory from
    /// `frames`, and the frame table `ft` the domains were built into.
    /// Nothing runs until [`System::start`].
    pub fn new(
        domains: Vec<(Domain, SchedParams)>,
        clock: Clock,
        m2p: M2p,
        frames: Box<dyn FramePool + Send + Sync>,
        mut ft: FrameTable,
    ) -> Self {
        // The builders' page tables: no CPU has run a guest yet, so none
        // holds a stale translation of them.
        ft.take_retyped();
        let mut sched = Scheduler::new();
        let mut list = Vec::with_capacity(domains.len());
        for (i, (d, params)) in domains.into_iter().enumerate() {
            for (v, vcpu) in d.vcpus.iter().enumerate() {
                let who = VcpuRef { domain: i, vcpu: v };
                sched.add(who, params);
                // vCPUs other than 0 start down, as in Xen.
                if !vcpu.runnable() {
                    sched.sleep(who);
                }
            }
            list.push(d);
        }
        System {
            domains: list,
            this_cpu: 0,
            cpus: [CpuSched::default(); MAX_CPUS],
            flush: FlushReq::NONE,
            smp_guests: false,
            nr_cpus: 1,
            kick: CpuMask::EMPTY,
            last_tickle: 0,
            woken: Vec::new(),
            clock,
            sched,
            m2p,
            frames,
            ft,
            lifecycle: Lifecycle::default(),
            timer_work: TimerWork::STALE,
            maybe_dying: true,
        }
    }

    /// vCPU timers or run states (blocked, polling, down, a domain's
    /// pause or state) may have changed other than through a hypercall:
    /// the next exit scans for them again.
    pub fn timers_changed(&mut self) {
        self.timer_work.stale = true;
    }

    /// Publishes every domain's wallclock: `epoch_secs` (UTC) at TSC `tsc`
    /// (and remembers it for the domains created later).
    pub fn set_wallclock(&mut self, mem: &mut dyn MachineMemory, epoch_secs: u64, tsc: u64) {
        let since_boot_ns = self.clock.system_time(tsc);
        let boot_ns = (u128::from(epoch_secs) * 1_000_000_000).saturating_sub(u128::from(since_boot_ns));
        let (sec, nsec) = ((boot_ns / 1_000_000_000) as u64, (boot_ns % 1_000_000_000) as u32);
        self.lifecycle.wallclock = Some((sec, nsec));
        for d in &self.domains {
            time::update_wallclock(mem, d.shared_info, sec, nsec);
        }
    }

    /// Picks the first vCPU to run and loads it into `frame`.
    pub fn start(&mut self, frame: &mut TrapFrame, now_ns: u64, tsc: u64, mem: &mut dyn MachineMemory) -> Action {
        self.reschedule(frame, now_ns, tsc, mem).with_toggle(false)
    }

    /// The current vCPU's domain and vCPU index, if a guest is on the CPU.
    fn current_mut(&mut self) -> Option<(&mut Domain, usize)> {
        let who = self.current()?;
        self.domains.get_mut(who.domain).map(|d| (d, who.vcpu))
    }

    /// Handles a `syscall` from the current guest: a hypercall from guest
    /// kernel mode, a system call to bounce to the kernel from user mode.
    pub fn syscall(
        &mut self,
        frame: &mut TrapFrame,
        now_ns: u64,
        tsc: u64,
        mem: &mut dyn MachineMemory,
        platform: &mut dyn Platform,
    ) -> Action {
        let Some(who) = self.current() else {
            return self.reschedule(frame, now_ns, tsc, mem).with_toggle(false);
        };
        let Some((domain, peers)) = Peers::split(&mut self.domains, who.domain) else {
            return self.reschedule(frame, now_ns, tsc, mem).with_toggle(false);
        };
        let vcpu = who.vcpu;
        let was_kernel = domain.vcpus.get(vcpu).is_some_and(|v| v.kernel_mode());
        // The table the vCPU runs on, taken before a hypercall that may
        // load a new one (`None`: no such call; a mode switch is `finish`'s).
        let mut l4_before = None;
        let (mut tlb, mut reload_gdt) = (FlushReq::NONE, false);
        // A `syscall` from 32-bit code is never a hypercall: Xen's
        // cstar_enter bounces it to the guest kernel in either mode.
        let decision = if !was_kernel || frame.cs == traps::FLAT_USER_CS32 {
            traps::syscall_from_user(domain, vcpu, frame, mem)
        } else if frame.rax == u64::from(guest_abi::xen::HYPERVISOR_IRET) {
            // iret replaces the whole frame rather than returning a value.
            traps::iret(domain, vcpu, frame, mem, || platform.data_selectors())
        } else {
            if hypercall::may_load_base(frame.rax) {
                l4_before = domain.vcpus.get(vcpu).map(|v| v.current_l4());
            }
            let (frames, m2p, ft) = (&mut *self.frames, self.m2p, &mut self.ft);
            let (sched, lifecycle) = (&mut self.sched, &mut self.lifecycle);
            let mut ctx = Ctx {
                domain: &mut *domain,
                vcpu,
                mem: &mut *mem,
                platform: &mut *platform,
                now_ns,
                peers,
                frames,
                tlb: FlushReq::NONE,
                m2p,
                sched,
                reload_gdt: false,
                ft,
                lifecycle,
            };
            let nr = frame.rax;
            let outcome = hypercall::dispatch(&mut ctx, nr, frame.hypercall_args());
            if !hypercall::leaves_timers_alone(nr) {
                self.timer_work.stale = true;
                self.maybe_dying = true;
            }
            (tlb, reload_gdt) = (ctx.tlb, ctx.reload_gdt);
            match outcome {
                Outcome::Return(v) => frame.rax = v as u64,
                Outcome::Continue(args) => {
                    // Re-execute the `syscall` (2 bytes) with updated arguments.
                    frame.rip = frame.rip.wrapping_sub(2);
                    [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8] = args;
                }
            }
            if reload_gdt {
                traps::recheck_return(domain, vcpu, frame, mem, platform.data_selectors())
            } else {
                TrapDecision::Resume
            }
        };
        self.settle(mem);
        // What follows (timers, preemption, a switch's timestamps) goes by
        // the time the call ended: a long call's own time is charged to
        // its caller, not to whoever runs next.
        let (now_ns, tsc) = match platform.tsc() {
            Some(t) => (self.clock.system_time(t).max(now_ns), t),
            None => (now_ns, tsc),
        };
        let mut action = self.finish(decision, was_kernel, frame, now_ns, tsc, mem);
        action.reload_gdt = reload_gdt;
        self.flush = tlb;
        // A new base pointer (MMUEXT_NEW_BASEPTR) for the running mode
        // takes effect on the way back to the guest.
        if let (Some(before), Next::Resume) = (l4_before, action.next) {
            match self.current_l4() {
                Some(l4) if l4 != before => action.next = Next::Reload(l4),
                _ => {}
            }
        }
        action
    }

    /// Carries out the lifecycle changes a hypercall made: adds the domains
    /// the toolstack created (in the slot of a dead one if there is one),
    /// then a bounded share of the background work on dead domains
    /// ([`Self::relinquish`]).
    fn settle(&mut self, mem: &mut dyn MachineMemory) {
        if !self.lifecycle.created.is_empty() {
            self.add_created();
        }
        if self.maybe_dying {
            self.maybe_dying = self.domains.iter().any(|d| matches!(d.state, DomainState::Dying(_)));
        }
        if self.ft.dirty_frames() != 0 || self.maybe_dying {
            // Refill the pool first when it runs low: the next caller may
            // be the toolstack building a domain in what was just freed.
            let short = lifecycle::POOL_RESERVE.saturating_sub(self.frames.free_frames());
            self.relinquish(mem, lifecycle::SCRUB_PER_ENTRY.max(short));
        }
    }

    /// Adds the domains the toolstack created, each in the slot of a dead
    /// domain if there is one.
    #[inline(never)]
    fn add_created(&mut self) {
        self.timer_work.stale = true;
        for d in core::mem::take(&mut self.lifecycle.created) {
            let dead = self.domains.iter().position(|d| matches!(d.state, DomainState::Dead(_)));
            match dead.and_then(|i| self.domains.get_mut(i)) {
                Some(slot) => *slot = d,
                None => self.domains.push(d),
            }
        }
    }

    /// Background work on dead domains' memory, bounded per call: one
    /// teardown step ([`lifecycle::destroy_step`]) for a dying domain, the
    /// frames of zombies nobody maps any more, and up to `scrub` frames of
    /// the dirty list scrubbed back into the pool. A domain taken apart
    /// tells the toolstack (`VIRQ_DOM_EXC`), as Xen's `domain_kill` does
    /// when it is done.
    #[inline(never)]
    fn relinquish(&mut self, mem: &mut dyn MachineMemory, scrub: u64) {
        let mut notify = false;
        let mut stepped = false;
        for i in 0..self.domains.len() {
            let Some(d) = self.domains.get_mut(i) else { continue };
            if !matches!(d.state, DomainState::Dying(_)) {
                continue;
            }
            let (id, before, torn_down) = (d.id, d.tot_pages(), d.torn_down);
            let known = self.lifecycle.relinquish.iter().position(|(who, _)| *who == id);
            if !torn_down && known.is_none() {
                d.console.flush(&mut |b| crate::console::write_bytes(b));
                for v in 0..d.vcpus.len() {
                    self.sched.remove(VcpuRef { domain: i, vcpu: v });
                }
                self.lifecycle.relinquish.push((id, lifecycle::Relinquish::default()));
            }
            // A CPU whose CR3 still holds the domain's tables could reach
            // what the teardown frees: wait until each has switched away
            // (a switch of CR3 flushes them).
            if !torn_down && !d.dirty_cpus.is_empty() {
                continue;
            }
            let mut res = Resources { ft: &mut self.ft, mem: &mut *mem, pool: &mut *self.frames, m2p: self.m2p };
            let step = if torn_down {
                lifecycle::Step::Done(self.domains.get_mut(i).is_some_and(|d| lifecycle::reap(d, &mut res)))
            } else if stepped {
                continue;
            } else {
                stepped = true;
                let at = self.lifecycle.relinquish.iter_mut().find(|(who, _)| *who == id);
                let Some((_, progress)) = at else { continue };
                lifecycle::destroy_step(&mut self.domains, i, &mut res, progress, lifecycle::STEP_BUDGET)
            };
            let held = self.domains.get(i).map_or(0, |d| d.tot_pages());
            let (free, dirty) = (self.frames.free_frames(), self.ft.dirty_frames());
            match step {
                lifecycle::Step::More => {}
                lifecycle::Step::Done(_) if !torn_down => {
                    // Xen's domain_kill tells the toolstack once it is done.
                    notify = true;
                    self.lifecycle.relinquish.retain(|(who, _)| *who != id);
                    crate::printk!(
                        "xenish: d{id}: torn down: {held} frames still mapped elsewhere; {free} frames free, {dirty} to scrub"
                    );
                }
                lifecycle::Step::Done(_) if held != before => {
                    crate::printk!("xenish: d{id}: {} more frames returned", before.saturating_sub(held));
                }
                lifecycle::Step::Done(_) => {}
            }
            if torn_down && step == lifecycle::Step::Done(true) {
                crate::printk!("xenish: d{id}: dead, every frame returned");
            }
        }
        if self.ft.dirty_frames() != 0 {
            let mut res = Resources { ft: &mut self.ft, mem: &mut *mem, pool: &mut *self.frames, m2p: self.m2p };
            lifecycle::scrub(&mut res, scrub);
        }
        if notify {
            self.raise_dom_exc(mem);
        }
    }

    /// Raises `VIRQ_DOM_EXC` for the toolstack and wakes it if it blocked
    /// or polled waiting for events: Xen's `vcpu_kick` unblocks a polling
    /// vCPU too, so a toolstack in `SCHEDOP_poll` learns of the shutdown at
    /// once, not when its poll times out (with guests on several CPUs this
    /// CPU's next entry, which would also find it, may be far off).
    fn raise_dom_exc(&mut self, mem: &mut dyn MachineMemory) {
        lifecycle::notify_dom_exc(&mut self.domains, mem);
        for (di, d) in self.domains.iter_mut().enumerate().filter(|(_, d)| d.privileged && d.is_running()) {
            for (vi, v) in d.vcpus.iter_mut().enumerate() {
                let waiting = v.blocked || v.poll.is_some();
                if waiting && upcall_pending(v.info_location(d.shared_info, vi), mem) {
                    (v.blocked, v.poll) = (false, None);
                    self.sched.wake(VcpuRef { domain: di, vcpu: vi });
                    self.timer_work.stale = true;
                }
            }
        }
    }

    /// Handles an exception raised by the current guest.
    #[allow(clippy::too_many_arguments)]
    pub fn guest_trap(
        &mut self,
        frame: &mut TrapFrame,
        cr2: u64,
        now_ns: u64,
        tsc: u64,
        mem: &mut dyn MachineMemory,
        cpu: &mut dyn CpuOps,
    ) -> Action {
        let l4_before = self.current_l4();
        let Some(who) = self.current() else {
            return self.reschedule(frame, now_ns, tsc, mem).with_toggle(false);
        };
        let Some(domain) = self.domains.get_mut(who.domain) else {
            return self.reschedule(frame, now_ns, tsc, mem).with_toggle(false);
        };
        let vcpu = who.vcpu;
        let was_kernel = domain.vcpus.get(vcpu).is_some_and(|v| v.kernel_mode());
        let decision = traps::handle(domain, vcpu, frame, (cr2, now_ns), (mem, &mut self.ft), cpu);
        let mut action = self.finish(decision, was_kernel, frame, now_ns, tsc, mem);
        // A `mov` to CR3 takes effect on the way back to the guest.
        match self.current_l4() {
            Some(l4) if action.next == Next::Resume && Some(l4) != l4_before => action.next = Next::Reload(l4),
            _ => {}
        }
        action
    }

    /// The timer interrupted a guest: fire due timers, preempt if the slice
    /// is over.
    pub fn timer_interrupt(
        &mut self,
        frame: &mut TrapFrame,
        now_ns: u64,
        tsc: u64,
        mem: &mut dyn MachineMemory,
    ) -> Action {
        let was_kernel = self.current_mut().and_then(|(d, v)| d.vcpus.get(v)).is_some_and(|v| v.kernel_mode());
        self.finish(TrapDecision::Resume, was_kernel, frame, now_ns, tsc, mem)
    }

    /// Whether the console domain (domain 0) listens for console input:
    /// it is running and has bound `VIRQ_CONSOLE`. While it does, the
    /// platform looks for input at least every [`CONSOLE_POLL_NS`].
    pub fn console_listener(&self) -> bool {
        self.domains
            .iter()
            .any(|d| d.id == 0 && d.is_running() && d.evtchn.virq_port(evtchn::VIRQ_CONSOLE, 0).is_some())
    }

    /// Console input is waiting: raise `VIRQ_CONSOLE` at the console
    /// domain, which reads it with `CONSOLEIO_read` (Xen's
    /// `serial_rx` → `send_global_virq(VIRQ_CONSOLE)`). A blocked vCPU
    /// wakes on the next timer check, as for any event.
    pub fn console_input(&mut self, mem: &mut dyn MachineMemory) {
        let Some(d) = self.domains.iter_mut().find(|d| d.id == 0 && d.is_running()) else { return };
        evtchn::send_virq(d, mem, evtchn::VIRQ_CONSOLE, 0);
    }

    /// Device interrupts arrived: raise each PIRQ's port at its domain
    /// (Xen's `send_guest_pirq`). A blocked vCPU wakes on the next timer
    /// check, as for any event.
    #[inline(always)]
    pub fn deliver_pirqs(&mut self, mem: &mut dyn MachineMemory) {
        if crate::irq::any_pending() {
            self.deliver_pending_pirqs(mem);
        }
    }

    /// [`Self::deliver_pirqs`] once a device interrupt was seen.
    #[cold]
    #[inline(never)]
    fn deliver_pending_pirqs(&mut self, mem: &mut dyn MachineMemory) {
        for owner in crate::irq::take_pending() {
            let Some(d) = self.domains.iter_mut().find(|d| d.id == owner.domid && d.is_running()) else { continue };
            if let Some(port) = d.pirqs.mapping(owner.pirq).map(|m| m.port).filter(|&p| p != 0) {
                evtchn::port_set_pending(d, mem, port);
            }
        }
    }

    /// The idle CPU woke (timer or interrupt): fire due timers and run
    /// whatever became runnable, or keep idling.
    pub fn idle_wakeup(&mut self, frame: &mut TrapFrame, now_ns: u64, tsc: u64, mem: &mut dyn MachineMemory) -> Action {
        self.fire_timers(now_ns, mem);
        self.relinquish(mem, lifecycle::SCRUB_PER_IDLE);
        self.reschedule(frame, now_ns, tsc, mem).with_toggle(false)
    }

    /// Fires every vCPU timer due at `now_ns` (raising the vCPU's
    /// `VIRQ_TIMER` port, as Xen's `send_timer_event`), then wakes every
    /// blocked vCPU that has an upcall pending, and has the current vCPU
    /// preempted for it when the scheduler says so.
    ///
    /// Runs on every exit to a guest, where usually there is nothing to
    /// do (Xen runs its timers only when their softirq is raised): one
    /// look at [`TimerWork`] in line, the scan and
    /// [`Self::fire_due_timers`] out of line only when the summary is
    /// stale, a timer is due or some vCPU waits to be woken.
    #[inline]
    fn fire_timers(&mut self, now_ns: u64, mem: &mut dyn MachineMemory) {
        let w = &self.timer_work;
        if w.stale || w.wakeups || now_ns >= w.earliest_ns {
            self.fire_timers_slow(now_ns, mem);
        }
    }

    /// [`Self::fire_timers`] when it may have work: fires what is due,
    /// then takes the summary again.
    #[inline(never)]
    fn fire_timers_slow(&mut self, now_ns: u64, mem: &mut dyn MachineMemory) {
        let attention =
            self.domains.iter().any(|d| d.is_running() && d.vcpus.iter().any(|v| v.needs_timer_check(now_ns)));
        if attention {
            self.fire_due_timers(now_ns, mem);
        }
        self.timer_work = self.scan_timers();
    }

    /// A fresh [`TimerWork`]: the conditions [`Vcpu::needs_timer_check`]
    /// tests, over the vCPUs of every running domain.
    ///
    /// [`Vcpu::needs_timer_check`]: crate::domain::Vcpu::needs_timer_check
    fn scan_timers(&self) -> TimerWork {
        let (mut earliest_ns, mut wakeups) = (u64::MAX, false);
        for d in self.domains.iter().filter(|d| d.is_running()) {
            for v in &d.vcpus {
                if let Some(t) = v.next_timer_ns() {
                    earliest_ns = earliest_ns.min(t);
                }
                if let Some((_, timeout)) = &v.poll {
                    earliest_ns = earliest_ns.min(timeout.unwrap_or(u64::MAX));
                }
                wakeups |= v.blocked || v.poll.is_some() || (!v.down && v.runstate.state == RUNSTATE_OFFLINE);
            }
        }
        TimerWork { stale: false, earliest_ns, wakeups }
    }

    /// [`Self::fire_timers`] once a vCPU needs it.
    #[inline(never)]
    fn fire_due_timers(&mut self, now_ns: u64, mem: &mut dyn MachineMemory) {
        for (di, d) in self.domains.iter_mut().enumerate() {
            if !d.is_running() {
                continue;
            }
            for vi in 0..d.vcpus.len() {
                let Some(v) = d.vcpus.get_mut(vi) else { continue };
                let fired = v.take_due_timers(now_ns);
                // Nothing below concerns a vCPU whose timer did not fire
                // and that is neither blocked, polling nor coming up: the
                // common case of the running one, checked first.
                if !fired && !v.blocked && v.poll.is_none() && (v.down || v.runstate.state != RUNSTATE_OFFLINE) {
                    continue;
                }
                if fired {
                    evtchn::send_virq(d, mem, evtchn::VIRQ_TIMER, vi as u32);
                }
                let info = d.vcpu_info(vi);
                // A poller also wakes for an event it can take (Xen's
                // vcpu_kick of a polling vCPU: Linux's PV spinlock waits
                // with interrupts on, and must still take its IPIs).
                let poll_done = d.vcpus.get(vi).and_then(|v| v.poll.as_ref()).is_some_and(|(ports, deadline)| {
                    deadline.is_some_and(|t| t <= now_ns)
                        || ports.iter().any(|&p| evtchn::port_is_pending(d, mem, p))
                        || upcall_deliverable(info, mem)
                });
                let Some(v) = d.vcpus.get_mut(vi) else { continue };
                let who = VcpuRef { domain: di, vcpu: vi };
                let mut woke = false;
                // A vCPU that came up (VCPUOP_up, or a context with
                // VGCF_online) leaves RUNSTATE_offline: Xen's vcpu_wake.
                if !v.down && v.runstate.state == RUNSTATE_OFFLINE {
                    v.runstate.enter(RUNSTATE_RUNNABLE, now_ns);
                    self.sched.wake(who);
                    woke = true;
                }
                if v.blocked && upcall_pending(info, mem) {
                    v.blocked = false;
                    self.sched.wake(who);
                    woke = true;
                }
                if poll_done {
                    v.poll = None;
                    self.sched.wake(who);
                    woke = true;
                }
                // The woken vCPU takes the CPU once the current one has had
                // the rate limit (on this exit, or at that deadline).
                // With guests on several CPUs, only for a vCPU on this CPU's
                // queue: the others are placed and tickled by Self::kicks.
                let here = &mut self.cpus[slot(self.this_cpu)];
                let ran_ns = now_ns.saturating_sub(here.slice_start_ns);
                if woke
                    && (!self.smp_guests || self.sched.queue_of(who) == Some(self.this_cpu))
                    && here.current.is_some_and(|c| self.sched.wake_preempts(c, ran_ns, who))
                {
                    let at = here.slice_start_ns.saturating_add(self.sched.ratelimit_ns()).max(now_ns);
                    here.preempt_at_ns = here.preempt_at_ns.min(at);
                }
            }
        }
    }

    /// After an entry: apply the decision, then keep running the current
    /// vCPU or switch away.
    fn finish(
        &mut self,
        decision: TrapDecision,
        was_kernel: bool,
        frame: &mut TrapFrame,
        now_ns: u64,
        tsc: u64,
        mem: &mut dyn MachineMemory,
    ) -> Action {
        let Some(who) = self.current() else {
            return self.reschedule(frame, now_ns, tsc, mem).with_toggle(false);
        };
        if let (TrapDecision::Crash(why), Some(domain)) = (decision, self.domains.get_mut(who.domain)) {
            let msg = format!("{why} at rip {:#x} (rsp {:#x})", frame.rip, frame.rsp);
            crate::printk!("xenish: d{} crashed: {}", domain.id, msg);
            domain.crash(msg);
        }
        self.fire_timers(now_ns, mem);
        // Whether the vCPU changed mode, judged after the upcall a return to
        // the guest may have delivered: an iret to user mode followed by an
        // upcall bounce ends in kernel mode again (no swapgs, no new table),
        // and an upcall taken from user mode is a switch to kernel mode
        // (swapgs and the kernel's table) even when the entry made none.
        match self.may_continue(who, frame, mem) {
            Some((kernel_mode, l4)) if now_ns < self.here().preempt_at_ns => {
                if kernel_mode != was_kernel {
                    Next::Reload(l4).with_toggle(true)
                } else {
                    Next::Resume.with_toggle(false)
                }
            }
            _ => {
                let toggled = self
                    .domains
                    .get(who.domain)
                    .and_then(|d| d.vcpus.get(who.vcpu))
                    .is_some_and(|v| v.kernel_mode() != was_kernel);
                self.reschedule(frame, now_ns, tsc, mem).with_toggle(toggled)
            }
        }
    }

    /// Whether `who` (which just entered) may go on running: its domain is
    /// alive, it is not blocked, and a pending upcall could be delivered;
    /// if so, whether it is in kernel mode now and the table of that mode.
    /// Puts it to sleep in the run queue when it may not.
    ///
    /// The checks of the vCPU's own state are [`Self::exit_look`]'s, made
    /// only when its [`Vcpu::exit_work`] word is set; with it clear (most
    /// exits) one lookup of the vCPU serves the domain's state, the
    /// upcall or NMI to deliver, and the mode.
    ///
    /// [`Vcpu::exit_work`]: crate::domain::Vcpu::exit_work
    #[inline(always)]
    fn may_continue(
        &mut self,
        who: VcpuRef,
        frame: &mut TrapFrame,
        mem: &mut dyn MachineMemory,
    ) -> Option<(bool, Mfn)> {
        // The common exit: the domain runs, the word is clear, no upcall
        // or NMI is pending (Xen's test_all_events): one lookup.
        let d = self.domains.get(who.domain)?;
        let (running, shared_info) = (d.is_running(), d.shared_info);
        let v = d.vcpus.get(who.vcpu)?;
        if running && !v.exit_work && !v.nmi_pending && !upcall_pending(v.info_location(shared_info, who.vcpu), mem) {
            #[cfg(debug_assertions)]
            self.assert_no_exit_work_missed(who);
            return Some((v.kernel_mode(), v.current_l4()));
        }
        self.may_continue_slow(who, frame, mem)
    }

    /// [`Self::may_continue`] when there is something to look at: the
    /// exit work word ([`Self::exit_look`]), the domain's state, or an
    /// upcall or NMI to deliver.
    #[inline(never)]
    fn may_continue_slow(
        &mut self,
        who: VcpuRef,
        frame: &mut TrapFrame,
        mem: &mut dyn MachineMemory,
    ) -> Option<(bool, Mfn)> {
        let domain = self.domains.get(who.domain)?;
        let look = !domain.is_running() || domain.vcpus.get(who.vcpu).is_none_or(|v| v.exit_work);
        if look && !self.exit_look(who, mem) {
            return None;
        }
        #[cfg(debug_assertions)]
        self.assert_no_exit_work_missed(who);
        let domain = self.domains.get_mut(who.domain)?;
        if let Err(why) = traps::deliver_pending(domain, who.vcpu, frame, mem) {
            self.upcall_failed(who, why);
            return None;
        }
        let v = self.domains.get(who.domain)?.vcpus.get(who.vcpu)?;
        Some((v.kernel_mode(), v.current_l4()))
    }

    /// A vCPU whose exit work word is clear has nothing for
    /// [`Self::exit_look`] (a setter of [`Vcpu::exit_work`] missing would
    /// let an exit skip a block, a poll, a yield, a down or a move):
    /// checked on every exit of a debug build, so every host test of the
    /// system checks it.
    ///
    /// [`Vcpu::exit_work`]: crate::domain::Vcpu::exit_work
    #[cfg(debug_assertions)]
    fn assert_no_exit_work_missed(&self, who: VcpuRef) {
        assert!(!self.exit_work_missed(who), "exit work missed for {who:?}");
    }

    /// Whether `who`'s [`Vcpu::exit_work`] is clear although
    /// [`Self::exit_look`] would act on it on the CPU handling the entry
    /// (down, blocked, yielded, polling, or its hard affinity leaving this
    /// CPU out): the full check the cheap one must agree with.
    ///
    /// [`Vcpu::exit_work`]: crate::domain::Vcpu::exit_work
    pub fn exit_work_missed(&self, who: VcpuRef) -> bool {
        let Some(d) = self.domains.get(who.domain) else { return false };
        let Some(v) = d.vcpus.get(who.vcpu) else { return false };
        !v.exit_work && (v.needs_exit_look() || (self.smp_guests && !d.tools.may_run_on(who.vcpu, self.this_cpu)))
    }

    /// The exit's full look at `who` (its domain not running, or its
    /// exit work word set): whether it may go on. Puts it to sleep in the
    /// run queue when it may not; clears the word once nothing is left
    /// for the next exit.
    #[inline(never)]
    fn exit_look(&mut self, who: VcpuRef, mem: &mut dyn MachineMemory) -> bool {
        let Some(domain) = self.domains.get_mut(who.domain) else { return false };
        if !domain.is_running() {
            domain.console.flush(&mut |b| crate::console::write_bytes(b));
            if let (DomainState::Shutdown(reason), None) = (domain.state, &domain.crash_message) {
                crate::printk!("xenish: d{} shut down: {}", domain.id, reason);
            }
            for v in 0..domain.vcpus.len() {
                self.sched.sleep(VcpuRef { domain: who.domain, vcpu: v });
            }
            if !domain.is_alive() {
                self.raise_dom_exc(mem);
            }
            return false;
        }
        let shared_info = domain.shared_info;
        let pinned_away = self.smp_guests && !domain.tools.may_run_on(who.vcpu, self.this_cpu);
        let Some(v) = domain.vcpus.get_mut(who.vcpu) else { return false };
        if v.down {
            // VCPUOP_down on itself: it leaves the CPU until it is up.
            self.sched.sleep(who);
            return false;
        }
        if core::mem::take(&mut v.yielded) {
            self.sched.yield_now(who);
            self.cpus[slot(self.this_cpu)].preempt_at_ns = 0; // reschedule on the way out
        }
        if pinned_away {
            // Its hard affinity no longer has this CPU: it moves on
            // the way out (Xen's vcpu_set_affinity migrates it).
            self.cpus[slot(self.this_cpu)].preempt_at_ns = 0;
        }
        if v.poll.is_some() {
            // SCHEDOP_poll found nothing pending: sleep until a polled
            // port is raised or the timeout passes.
            self.sched.sleep(who);
            return false;
        }
        if v.blocked {
            // SCHEDOP_block: go on only if an upcall is already pending.
            if !upcall_pending(v.info_location(shared_info, who.vcpu), mem) {
                self.sched.sleep(who);
                return false;
            }
            v.blocked = false;
        }
        // Nothing left for the next exit (a vCPU pinned away looks again
        // wherever it runs next).
        v.exit_work = pinned_away;
        true
    }

    /// The upcall's bounce onto `who`'s stack failed: the domain crashes.
    #[cold]
    #[inline(never)]
    fn upcall_failed(&mut self, who: VcpuRef, why: String) {
        if let Some(domain) = self.domains.get_mut(who.domain) {
            let msg = format!("event upcall failed: {why}");
            crate::printk!("xenish: d{} crashed: {}", domain.id, msg);
            domain.crash(msg);
        }
        self.sched.sleep(who);
    }

    fn current_l4(&self) -> Option<Mfn> {
        let who = self.current()?;
        self.domains.get(who.domain)?.vcpus.get(who.vcpu).map(|v| v.current_l4())
    }

    /// Charges the current vCPU, saves it, and loads the scheduler's next
    /// choice into `frame` (or idles, or powers off when every domain is
    /// down); records which page tables the CPU will hold in the dirty
    /// masks ([`flush::note_loaded`]).
    fn reschedule(&mut self, frame: &mut TrapFrame, now_ns: u64, tsc: u64, mem: &mut dyn MachineMemory) -> Next {
        let next = self.pick_next(frame, now_ns, tsc, mem);
        let before = self.here().loaded;
        let loaded = match next {
            Next::Switch(_) | Next::Resume | Next::Reload(_) => self.current(),
            // The idle loop loads the hypervisor's own table.
            Next::Idle => None,
            Next::PowerOff { .. } => before,
        };
        flush::note_loaded(&mut self.domains, self.this_cpu, before, loaded);
        self.here_mut().loaded = loaded;
        next
    }

    /// [`Self::reschedule`]'s choice.
    fn pick_next(&mut self, frame: &mut TrapFrame, now_ns: u64, tsc: u64, mem: &mut dyn MachineMemory) -> Next {
        let previous = self.here_mut().current.take();
        if let Some(who) = previous {
            self.sched.charge_on(self.this_cpu, who, now_ns.saturating_sub(self.here().slice_start_ns));
            if let Some(v) = self.domains.get_mut(who.domain).and_then(|d| d.vcpus.get_mut(who.vcpu)) {
                v.regs = *frame;
                let state = match () {
                    _ if v.down => RUNSTATE_OFFLINE,
                    _ if v.blocked || v.poll.is_some() => RUNSTATE_BLOCKED,
                    _ => RUNSTATE_RUNNABLE,
                };
                v.runstate.enter(state, now_ns);
            }
            self.publish_runstate(who, mem);
        }
        // A domain without a vCPU up (created, not yet built) cannot run.
        if self.domains.iter().all(|d| !d.is_running() || d.online_vcpus() == 0) {
            self.report();
            return Next::PowerOff { failed: self.any_failed() };
        }
        let pick = if self.smp_guests {
            // Not a vCPU another CPU runs, or has not saved yet, nor one
            // whose hard affinity leaves out this CPU.
            let (cpu, domains) = (self.this_cpu, &self.domains);
            self.sched.pick_on(cpu, now_ns, |who| {
                domains.get(who.domain).is_some_and(|d| {
                    d.tools.may_run_on(who.vcpu, cpu)
                        && d.vcpus.get(who.vcpu).is_some_and(|v| v.running_on.is_none_or(|c| c == cpu))
                })
            })
        } else {
            self.sched.pick(now_ns)
        };
        match pick {
            Pick::Run { who, .. }
                if !self
                    .domains
                    .get(who.domain)
                    .is_some_and(|d| d.is_running() && d.vcpus.get(who.vcpu).is_some_and(|v| !v.down)) =>
            {
                // Paused, shut down or its vCPU down since it was queued:
                // not a candidate.
                self.sched.sleep(who);
                self.reschedule(frame, now_ns, tsc, mem)
            }
            Pick::Run { who, until_ns } => {
                let Some(d) = self.domains.get_mut(who.domain) else { return Next::Idle };
                let Some(v) = d.vcpus.get_mut(who.vcpu) else { return Next::Idle };
                v.running_on = Some(self.this_cpu);
                v.processor = self.this_cpu;
                *frame = v.regs;
                let was_kernel = v.kernel_mode();
                if let Some(v) = d.vcpus.get_mut(who.vcpu) {
                    v.runstate.enter(RUNSTATE_RUNNING, now_ns);
                }
                for vi in 0..d.vcpus.len() {
                    time::update_vcpu_time(mem, d.vcpu_info(vi), &self.clock, tsc);
                    crate::hypercall::update_time_area(mem, d, vi);
                }
                let cpu = self.here_mut();
                cpu.current = Some(who);
                cpu.slice_start_ns = now_ns;
                cpu.preempt_at_ns = until_ns;
                cpu.idle_until_ns = None;
                cpu.runs += 1;
                if let Some(d) = self.domains.get_mut(who.domain) {
                    if previous != Some(who) {
                        if let TrapDecision::Crash(why) = traps::reload_segments(d, who.vcpu, frame, mem) {
                            crate::printk!("xenish: d{} crashed: {}", d.id, why);
                            d.crash(why);
                            self.sched.sleep(who);
                            self.here_mut().current = None;
                            return self.reschedule(frame, now_ns, tsc, mem);
                        }
                    }
                    if let Err(why) = traps::deliver_pending(d, who.vcpu, frame, mem) {
                        let msg = format!("event upcall failed: {why}");
                        crate::printk!("xenish: d{} crashed: {}", d.id, msg);
                        d.crash(msg);
                        self.sched.sleep(who);
                        self.here_mut().current = None;
                        return self.reschedule(frame, now_ns, tsc, mem);
                    }
                }
                // An upcall or failsafe bounce taken from user mode on the
                // way in is a switch to kernel mode: the kernel's table, and
                // the GS bases exchanged as the guest's swapgs would (the
                // arch layer loads them from the saved state).
                let Some(v) = self.domains.get_mut(who.domain).and_then(|d| d.vcpus.get_mut(who.vcpu)) else {
                    return Next::Idle;
                };
                if v.kernel_mode() != was_kernel {
                    let s = &mut v.segments;
                    core::mem::swap(&mut s.gs_base, &mut s.shadow_gs_base);
                }
                let l4 = v.current_l4();
                self.publish_runstate(who, mem);
                Next::Switch(l4)
            }
            Pick::Idle { until_ns } => {
                self.here_mut().idle_until_ns = until_ns;
                Next::Idle
            }
        }
    }

    /// Writes `who`'s runstate to its registered area, if any (a fault
    /// there is the guest's problem and is ignored, as in Xen).
    fn publish_runstate(&mut self, who: VcpuRef, mem: &mut dyn MachineMemory) {
        let Some(v) = self.domains.get(who.domain).and_then(|d| d.vcpus.get(who.vcpu)) else { return };
        if let Some(area) = v.runstate_area {
            let bytes = v.runstate.to_bytes();
            let _ = crate::guest_access::GuestMemory::new(mem, v.kernel_l4).copy_to(area, &bytes);
        }
    }

    /// When the CPU must next be interrupted (system time, ns): the end of
    /// the current slice, the earliest vCPU timer, or the idle recheck.
    #[inline]
    pub fn next_deadline_ns(&self) -> Option<u64> {
        // A plain loop: this runs on every entry, and the iterator chain
        // it replaces cost several times as many instructions.
        let here = self.here();
        let mut earliest = if here.current.is_some() { Some(here.preempt_at_ns) } else { here.idle_until_ns };
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        };
        if self.smp_guests {
            return self.next_deadline_smp(earliest);
        }
        if !self.timer_work.stale {
            let t = self.timer_work.earliest_ns;
            consider((t != u64::MAX).then_some(t));
            return earliest;
        }
        for d in self.domains.iter().filter(|d| d.is_running()) {
            for v in &d.vcpus {
                consider(v.next_timer_ns());
                if let Some((_, timeout)) = &v.poll {
                    consider(*timeout);
                }
            }
        }
        earliest
    }

    /// [`Self::next_deadline_ns`] with guests on several CPUs, from
    /// `earliest` (this CPU's slice or idle recheck): a vCPU's timers are
    /// armed by the CPU that runs it; those of vCPUs no CPU runs (blocked,
    /// polling, waiting) by every CPU.
    #[cold]
    #[inline(never)]
    fn next_deadline_smp(&self, mut earliest: Option<u64>) -> Option<u64> {
        let me = self.this_cpu;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        };
        for d in self.domains.iter().filter(|d| d.is_running()) {
            for v in d.vcpus.iter().filter(|v| v.running_on.is_none_or(|c| c == me)) {
                consider(v.next_timer_ns());
                if let Some((_, timeout)) = &v.poll {
                    consider(*timeout);
                }
            }
        }
        earliest
    }

    /// Whether any domain crashed (or was stopped by a watchdog).
    pub fn any_failed(&self) -> bool {
        self.domains.iter().any(|d| d.shutdown_reason().is_some_and(|r| r.is_failure()))
    }

    /// Prints each domain's final state.
    pub fn report(&self) {
        crate::printk!("xenish: all domains have shut down");
        if self.smp_guests {
            let mut line = alloc::string::String::from("xenish: smp_guests: vCPUs put on each CPU:");
            for (cpu, c) in self.cpus.iter().take(self.nr_cpus).enumerate() {
                line.push_str(&format!(" CPU {cpu} {}", c.runs));
            }
            crate::printk!("{line}");
        }
        for d in &self.domains {
            let (id, name) = (d.id, &d.name);
            match (d.state, d.shutdown_reason()) {
                (DomainState::Shutdown(reason), _) => crate::printk!("xenish:   d{id} ({name}): {reason}"),
                (DomainState::Running, _) if !d.vcpus.iter().any(|v| v.initialised) => {
                    crate::printk!("xenish:   d{id} ({name}): not built")
                }
                (DomainState::Running, _) => crate::printk!("xenish:   d{id} ({name}): paused"),
                (_, Some(reason)) => crate::printk!("xenish:   d{id} ({name}): {reason}, then destroyed"),
                (_, None) => crate::printk!("xenish:   d{id} ({name}): destroyed"),
            }
        }
    }
}

/// The index of `cpu`'s [`CpuSched`]: the mask keeps it in bounds
/// ([`MAX_CPUS`] is a power of two), so indexing with it cannot panic.
#[inline(always)]
const fn slot(cpu: usize) -> usize {
    cpu & (MAX_CPUS - 1)
}

/// Whether `evtchn_upcall_pending` is set in the `vcpu_info` at `info`.
fn upcall_pending((frame, offset): (Mfn, usize), mem: &dyn MachineMemory) -> bool {
    mem.frame(frame).and_then(|f| f.get(offset)).is_some_and(|&b| b != 0)
}

/// Whether `evtchn_upcall_pending` is set and `evtchn_upcall_mask` clear
/// in the `vcpu_info` at `info` (Xen's `local_events_need_delivery`).
pub fn upcall_deliverable((frame, offset): (Mfn, usize), mem: &dyn MachineMemory) -> bool {
    mem.frame(frame).and_then(|f| f.get(offset..offset + 2)).is_some_and(|b| matches!(b, &[p, 0] if p != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::tests::{World, BUF_VA, M2P};
    use crate::time::TimeScale;
    use guest_abi::xen::{DOMID_SELF, HYPERVISOR_MMUEXT_OP, HYPERVISOR_XEN_VERSION, MMUEXT_NEW_BASEPTR};
    extern crate std;

    /// A system over the test world's domain, with `prepare` applied to it
    /// first, started.
    fn started(prepare: impl FnOnce(&mut World)) -> (System, TrapFrame, crate::guest_access::tests::FakeMemory, World) {
        let (system, frame, mem, w, _) = started_with(prepare);
        (system, frame, mem, w)
    }

    /// [`started`], with the action the start returned.
    fn started_with(
        prepare: impl FnOnce(&mut World),
    ) -> (System, TrapFrame, crate::guest_access::tests::FakeMemory, World, Action) {
        let mut w = World::new(false);
        w.mem.0[9] = w.mem.0[0];
        prepare(&mut w);
        let dom =
            core::mem::replace(&mut w.dom, crate::hypercall::tests::test_domain(0, false, 0..0, None, Mfn(8)).domain);
        let mem = core::mem::replace(&mut w.mem, crate::guest_access::tests::FakeMemory(std::vec::Vec::new()));
        let pool = core::mem::replace(&mut w.pool, crate::hypercall::tests::FakePool(std::vec::Vec::new()));
        let ft = core::mem::replace(&mut w.ft, crate::mm::frame_table::tests::table(1));
        let Some(scale) = TimeScale::from_hz(1_000_000_000) else { panic!("scale") };
        let clock = Clock { tsc_at_zero: 0, scale, tsc_hz: 1_000_000_000 };
        let mut system =
            System::new(std::vec![(dom, SchedParams::default())], clock, M2P, alloc::boxed::Box::new(pool), ft);
        let mut mem = mem;
        let mut frame = TrapFrame::default();
        let action = system.start(&mut frame, 0, 0, &mut mem);
        (system, frame, mem, w, action)
    }

    #[test]
    fn the_cpu_is_dirty_for_the_domain_it_runs_and_clean_once_it_idles() {
        use crate::ipi::CpuMask;
        let (mut system, mut frame, mut mem, mut w) = started(|w| {
            (w.dom.dirty_cpus, w.dom.vcpus[0].dirty_cpu) = (CpuMask::EMPTY, None);
        });
        assert_eq!((system.domains[0].dirty_cpus, system.domains[0].vcpus[0].dirty_cpu), (CpuMask::of(0), Some(0)));
        let nr = guest_abi::xen::HYPERVISOR_SCHED_OP;
        let a = hypercall(
            &mut system,
            &mut frame,
            &mut mem,
            &mut w,
            10,
            nr,
            [u64::from(guest_abi::sched::SCHEDOP_BLOCK), 0],
        );
        assert_eq!(a.next, Next::Idle, "blocked with nothing pending");
        // The idle loop loads the hypervisor's own table: nothing of the
        // domain is left in this CPU's TLB.
        assert_eq!((system.domains[0].dirty_cpus, system.domains[0].vcpus[0].dirty_cpu), (CpuMask::EMPTY, None));
    }

    #[test]
    fn with_guests_on_two_cpus_each_has_its_own_current_and_no_vcpu_runs_twice() {
        use crate::ipi::CpuMask;
        let (mut system, mut frame, mut mem, _w) = started(|_| {});
        system.enable_smp_guests(2);
        let v0 = VcpuRef { domain: 0, vcpu: 0 };
        assert_eq!((system.current(), system.domains[0].vcpus[0].running_on), (Some(v0), Some(0)));
        // vCPU 0's timer is CPU 0's to arm.
        system.domains[0].vcpus[0].singleshot_ns = Some(5);
        assert_eq!(system.next_deadline_ns(), Some(5));
        // CPU 1 takes the lock: it runs nothing, and may not take vCPU 0.
        system.enter_cpu(1);
        assert_eq!(system.current(), None);
        assert_eq!(system.next_deadline_ns(), None, "not CPU 1's timer");
        system.domains[0].vcpus[0].singleshot_ns = None;
        assert_eq!(system.idle_wakeup(&mut frame, 10, 10, &mut mem).next, Next::Idle);
        assert_eq!(system.domains[0].dirty_cpus, CpuMask::of(0), "CPU 1 never loaded it");
        // An event for vCPU 0 seen from CPU 1: CPU 0 is kicked.
        raise_upcall(&mut mem);
        system.kicks(0, &mem);
        assert_eq!(core::mem::take(&mut system.kick), CpuMask::of(0));
        mem.0[8][0] = 0;
        // Back on CPU 0: its own state again.
        system.enter_cpu(0);
        assert_eq!(system.current(), Some(v0));
        // CPU 0 switches away and saves vCPU 0: CPU 1 may now pick it.
        system.domains[0].vcpus[0].blocked = true;
        system.sched.sleep(v0);
        assert_eq!(system.idle_wakeup(&mut frame, 20, 20, &mut mem).next, Next::Idle);
        system.vcpu_saved(v0);
        assert_eq!(system.domains[0].vcpus[0].running_on, None);
        system.domains[0].vcpus[0].blocked = false;
        system.sched.wake(v0);
        system.kicks(0, &mem);
        assert_eq!(core::mem::take(&mut system.kick), CpuMask::of(1), "an idle CPU for the waiting vCPU");
        system.enter_cpu(1);
        assert!(matches!(system.idle_wakeup(&mut frame, 30, 30, &mut mem).next, Next::Switch(_)));
        assert_eq!(system.current(), Some(v0));
        assert_eq!((system.domains[0].vcpus[0].running_on, system.domains[0].dirty_cpus), (Some(1), CpuMask::of(1)));
    }

    /// The lost wake-up of the two-CPU ping-pong: CPU 0 decides to idle
    /// (its vCPU blocked); before it has saved the vCPU, CPU 1 wakes it,
    /// and cannot pick it (it still runs on CPU 0) nor kick anyone for it.
    /// Saving it must make CPU 0 look again, or both CPUs halt.
    #[test]
    fn a_vcpu_woken_before_its_cpu_saved_it_is_not_lost() {
        use crate::ipi::CpuMask;
        let (mut system, mut frame, mut mem, _w) = started(|_| {});
        system.enable_smp_guests(2);
        let v0 = VcpuRef { domain: 0, vcpu: 0 };
        system.domains[0].vcpus[0].blocked = true;
        system.sched.sleep(v0);
        assert_eq!(system.idle_wakeup(&mut frame, 20, 20, &mut mem).next, Next::Idle);
        assert_eq!(system.domains[0].vcpus[0].running_on, Some(0), "not saved yet");
        // CPU 1 sends it an event: woken, but still CPU 0's.
        system.enter_cpu(1);
        raise_upcall(&mut mem);
        assert_eq!(system.idle_wakeup(&mut frame, 25, 25, &mut mem).next, Next::Idle);
        assert!(system.domains[0].vcpus[0].runnable());
        system.kicks(0, &mem);
        assert_eq!(core::mem::take(&mut system.kick), CpuMask::EMPTY, "nobody to kick yet");
        // CPU 0 saves it: it kicks itself.
        system.enter_cpu(0);
        system.vcpu_saved(v0);
        assert_eq!(system.domains[0].vcpus[0].running_on, None);
        system.kicks(0, &mem);
        assert_eq!(core::mem::take(&mut system.kick), CpuMask::of(0).with(1), "itself and the idle CPU 1");
        assert!(matches!(system.idle_wakeup(&mut frame, 30, 30, &mut mem).next, Next::Switch(_)));
        assert_eq!(system.current(), Some(v0));
    }

    /// A vCPU woken while the CPU it last ran on is busy goes on the queue
    /// of an idle CPU, which alone is kicked and takes it: Xen's
    /// `__runq_tickle`.
    #[test]
    fn a_woken_vcpu_is_queued_on_an_idle_cpu_and_that_cpu_is_tickled() {
        use crate::ipi::CpuMask;
        let (mut system, mut frame, mut mem, _w) = started(|w| {
            w.dom.max_vcpus = 2;
            w.dom.create_offline_vcpus(0, 0);
            let regs = TrapFrame { rip: 0x1000, cs: 0xe033, ss: 0xe02b, rflags: 0x202, ..TrapFrame::default() };
            let mut ap = crate::domain::Vcpu::new(1, regs, Mfn(0));
            ap.blocked = true;
            w.dom.vcpus[1] = ap;
        });
        let (v0, v1) = (VcpuRef { domain: 0, vcpu: 0 }, VcpuRef { domain: 0, vcpu: 1 });
        system.sched.sleep(v1);
        system.enable_smp_guests(2);
        assert_eq!(system.current(), Some(v0));
        // vCPU 1 last ran on CPU 0, which runs vCPU 0 now; CPU 1 idles.
        system.sched.move_to(v1, 0);
        system.domains[0].vcpus[1].blocked = false;
        system.sched.wake(v1);
        assert_eq!(system.kick_targets(&mem), CpuMask::of(1), "the idle CPU, and only it");
        assert_eq!(system.sched.queue_of(v1), Some(1), "queued there");
        assert_eq!(system.kick_targets(&mem), CpuMask::of(1), "still waiting: CPU 1 is kicked again");
        system.enter_cpu(1);
        assert!(matches!(system.idle_wakeup(&mut frame, 10, 10, &mut mem).next, Next::Switch(_)));
        assert_eq!(system.current(), Some(v1));
        assert_eq!((system.domains[0].vcpus[1].running_on, system.domains[0].vcpus[0].running_on), (Some(1), Some(0)));
        assert_eq!(system.kick_targets(&mem), CpuMask::EMPTY, "nothing waits");
    }

    #[test]
    fn a_hard_affinity_keeps_a_vcpu_off_the_cpus_it_leaves_out() {
        use crate::ipi::CpuMask;
        let (mut system, mut frame, mut mem, _w) = started(|_| {});
        system.enable_smp_guests(2);
        assert_eq!((system.sched.nr_cpus(), system.sched.online_mask()), (2, 0b11));
        let v0 = VcpuRef { domain: 0, vcpu: 0 };
        assert_eq!(system.current(), Some(v0));
        // Pinned to CPU 1 while CPU 0 runs it: CPU 0 is kicked (seen
        // from CPU 1), and CPU 0's next entry gives it up.
        system.domains[0].tools.vcpu_affinity = std::vec![(0b10, u64::MAX)];
        system.enter_cpu(1);
        system.kicks(0, &mem);
        assert_eq!(core::mem::take(&mut system.kick), CpuMask::of(0), "its CPU is no longer allowed");
        system.enter_cpu(0);
        let a = system.timer_interrupt(&mut frame, 10, 10, &mut mem);
        assert_eq!((a.next, system.current()), (Next::Idle, None), "CPU 0 may not run it, nothing else may run");
        assert_eq!(system.domains[0].vcpus[0].regs, frame, "its registers were saved");
        system.vcpu_saved(v0);
        // Waiting for a CPU: idle CPU 1, which its affinity has, is kicked.
        assert_eq!(system.kick_targets(&mem), CpuMask::of(1));
        // Seen from CPU 1, idle CPU 0 is not: the vCPU may not run there.
        system.enter_cpu(1);
        assert_eq!(system.kick_targets(&mem), CpuMask::EMPTY);
        system.enter_cpu(0);
        // CPU 0 looks again: still nothing for it; CPU 1 takes the vCPU.
        assert_eq!(system.idle_wakeup(&mut frame, 20, 20, &mut mem).next, Next::Idle);
        system.enter_cpu(1);
        assert!(matches!(system.idle_wakeup(&mut frame, 30, 30, &mut mem).next, Next::Switch(_)));
        assert_eq!((system.current(), system.domains[0].vcpus[0].processor), (Some(v0), 1));
        // Pinned back to both: it stays where it is.
        system.domains[0].tools.vcpu_affinity = std::vec![(0b11, u64::MAX)];
        assert_eq!(system.kick_targets(&mem), CpuMask::EMPTY);
        assert_eq!(system.timer_interrupt(&mut frame, 40, 40, &mut mem).next, Next::Resume);
        // The time it ran on CPU 0 is CPU 0's, not CPU 1's.
        assert_eq!((system.sched.busy_ns(0), system.sched.busy_ns(1)), (10, 0));
    }

    const CALLBACK: u64 = 0xffff_ffff_8000_1000;

    /// An event callback, a kernel stack, and user page tables (frame 9, a
    /// copy of the kernel's) for vCPU 0.
    fn with_callback(w: &mut World) {
        let v = &mut w.dom.vcpus[0];
        (v.callbacks.event.address, v.user_l4) = (CALLBACK, Some(Mfn(9)));
        v.set_kernel_sp(BUF_VA + 0x3000);
    }

    /// Makes an upcall pending and unmasked (in shared_info's vcpu_info 0).
    fn raise_upcall(mem: &mut crate::guest_access::tests::FakeMemory) {
        mem.0[8][0] = 1; // evtchn_upcall_pending
        mem.0[8][1] = 0; // evtchn_upcall_mask
    }

    impl System {
        /// The CPUs [`System::kicks`] names from the CPU holding the lock.
        fn kick_targets(&mut self, mem: &crate::guest_access::tests::FakeMemory) -> crate::ipi::CpuMask {
            self.kicks(0, mem);
            core::mem::take(&mut self.kick)
        }
    }

    /// A hypercall by the vCPU on the CPU, as its `syscall` makes it.
    fn hypercall(
        system: &mut System,
        frame: &mut TrapFrame,
        mem: &mut crate::guest_access::tests::FakeMemory,
        w: &mut World,
        now: u64,
        nr: u32,
        args: [u64; 2],
    ) -> Action {
        (frame.rax, frame.rdi, frame.rsi, frame.rip) = (u64::from(nr), args[0], args[1], frame.rip + 2);
        system.syscall(frame, now, now, mem, &mut w.plat)
    }

    /// The exit's timer summary follows a timer a hypercall arms, keeps it
    /// across calls that cannot touch timers, and fires it on the first
    /// exit after it is due.
    #[test]
    fn a_timer_armed_by_a_hypercall_is_kept_across_calls_that_leave_timers_alone_and_fires_when_due() {
        use guest_abi::xen::HYPERVISOR_SET_TIMER_OP;
        let (mut system, mut frame, mut mem, mut w) = started(|_| {});
        let Some(slice_end) = system.next_deadline_ns() else { panic!("no slice end") };
        assert!(slice_end > 10_000, "the test's times lie within the slice");
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 1_000, HYPERVISOR_SET_TIMER_OP, [5_000, 0]);
        assert_eq!(system.next_deadline_ns(), Some(5_000), "the new timer is the next deadline");
        for now in [2_000, 3_000, 4_999] {
            hypercall(&mut system, &mut frame, &mut mem, &mut w, now, HYPERVISOR_XEN_VERSION, [0, 0]);
            assert!(hypercall::leaves_timers_alone(u64::from(HYPERVISOR_XEN_VERSION)));
            assert_eq!(system.next_deadline_ns(), Some(5_000), "kept at {now}");
            assert_eq!(system.domains[0].vcpus[0].singleshot_ns, Some(5_000), "not due at {now}");
        }
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 5_000, HYPERVISOR_XEN_VERSION, [0, 0]);
        assert_eq!(system.domains[0].vcpus[0].singleshot_ns, None, "fired on the exit at its deadline");
        assert_eq!(system.next_deadline_ns(), Some(slice_end), "only the slice's end is left");
        // A timer set behind the summary's back is seen once it is told.
        system.domains[0].vcpus[0].singleshot_ns = Some(7_000);
        system.timers_changed();
        assert_eq!(system.next_deadline_ns(), Some(7_000));
    }

    /// A call that ends past the slice is preempted then, and the time it
    /// took is its caller's running time: the switch is stamped when the
    /// call ended, not when it began (else whoever runs next is charged).
    #[test]
    fn a_long_hypercall_is_charged_to_its_caller() {
        let (mut system, mut frame, mut mem, mut w) = started(|_| {});
        let end = crate::sched::TIME_SLICE_NS + 10_000_000;
        w.plat.tsc = Some(end);
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 1_000, HYPERVISOR_XEN_VERSION, [0, 0]);
        let rs = &system.domains[0].vcpus[0].runstate;
        assert_eq!((rs.state, rs.entry_ns), (RUNSTATE_RUNNING, end), "rescheduled when the call ended");
        assert_eq!((rs.time[RUNSTATE_RUNNING], rs.time[RUNSTATE_RUNNABLE]), (end, 0), "all of it the caller's");
    }

    #[test]
    fn a_second_vcpu_runs_once_up_and_stops_when_down() {
        use guest_abi::vcpu::{VCPUOP_DOWN, VCPUOP_IS_UP, VCPUOP_UP};
        use guest_abi::xen::{HYPERVISOR_SCHED_OP, HYPERVISOR_VCPU_OP};
        const AP_RIP: u64 = 0xffff_ffff_8100_0000;
        let (mut system, mut frame, mut mem, mut w) = started(|w| {
            w.dom.max_vcpus = 2;
            w.dom.create_offline_vcpus(0, 0);
            let regs = TrapFrame { rip: AP_RIP, cs: 0xe033, ss: 0xe02b, rflags: 0x202, ..TrapFrame::default() };
            let mut ap = crate::domain::Vcpu::new(1, regs, Mfn(0));
            ap.down = true;
            ap.runstate.state = RUNSTATE_OFFLINE;
            w.dom.vcpus[1] = ap;
        });
        let vcpu0 = Some(VcpuRef { domain: 0, vcpu: 0 });
        assert_eq!(system.current(), vcpu0);
        let yield_ = [u64::from(guest_abi::sched::SCHEDOP_YIELD), 0];
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 1_000, HYPERVISOR_SCHED_OP, yield_);
        assert_eq!(system.current(), vcpu0, "vCPU 1 is down: vCPU 0 goes on after its yield");
        let up = [u64::from(VCPUOP_UP), 1];
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 2_000, HYPERVISOR_VCPU_OP, up);
        assert_eq!(frame.rax, 0);
        assert_eq!(system.domains[0].vcpus[1].runstate.state, RUNSTATE_RUNNABLE, "woken");
        let action = hypercall(&mut system, &mut frame, &mut mem, &mut w, 3_000, HYPERVISOR_SCHED_OP, yield_);
        assert_eq!(system.current(), Some(VcpuRef { domain: 0, vcpu: 1 }), "the yield lets vCPU 1 run");
        assert!(matches!(action.next, Next::Switch(_)));
        assert_eq!(frame.rip, AP_RIP);
        let down = [u64::from(VCPUOP_DOWN), 1];
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 4_000, HYPERVISOR_VCPU_OP, down);
        assert_eq!(system.current(), vcpu0, "down on itself: it leaves the CPU");
        assert_eq!(system.domains[0].vcpus[1].runstate.state, RUNSTATE_OFFLINE);
        assert!(system.domains[0].is_alive());
        let is_up = [u64::from(VCPUOP_IS_UP), 1];
        hypercall(&mut system, &mut frame, &mut mem, &mut w, 5_000, HYPERVISOR_VCPU_OP, is_up);
        assert_eq!(frame.rax, 0, "vCPU 1 is down");
        for t in 1..5 {
            hypercall(&mut system, &mut frame, &mut mem, &mut w, 5_000 + t * 40_000_000, HYPERVISOR_SCHED_OP, yield_);
            assert_eq!(system.current(), vcpu0, "never vCPU 1 again");
        }
    }

    #[test]
    fn console_input_raises_virq_console_only_at_a_listening_domain_0() {
        let (mut system, _frame, mut mem, _w) = started(|_| {});
        assert!(!system.console_listener(), "nothing bound yet");
        system.console_input(&mut mem);
        let Ok(port) = system.domains[0].evtchn.bind_virq(&mut mem, evtchn::VIRQ_CONSOLE, 0) else { panic!("bind") };
        assert!(system.console_listener());
        assert!(!evtchn::port_is_pending(&system.domains[0], &mut mem, port));
        system.console_input(&mut mem);
        assert!(evtchn::port_is_pending(&system.domains[0], &mut mem, port), "input raised the virq");
        system.domains[0].id = 1;
        assert!(!system.console_listener(), "only domain 0 is the console domain");
    }

    #[test]
    fn a_domain_exception_wakes_a_polling_toolstack() {
        let (mut system, _frame, mut mem, _w) = started(|_| {});
        system.domains[0].privileged = true;
        let Ok(port) = system.domains[0].evtchn.bind_virq(&mut mem, guest_abi::xen::VIRQ_DOM_EXC, 0) else {
            panic!("bind")
        };
        // The toolstack polls another port, for long.
        system.domains[0].vcpus[0].poll = Some((std::vec![port + 1], Some(u64::MAX)));
        system.raise_dom_exc(&mut mem);
        assert!(evtchn::port_is_pending(&system.domains[0], &mut mem, port), "VIRQ_DOM_EXC raised");
        assert_eq!(system.domains[0].vcpus[0].poll, None, "the poll ended");
    }

    #[test]
    fn a_device_interrupt_raises_its_pirq_port_at_its_domain() {
        let (mut system, _frame, mut mem, _w) = started(|_| {});
        let hw = crate::irq::tests::install_qemu();
        let d = &mut system.domains[0];
        assert_eq!(d.pirqs.map_gsi(11, 11), Ok(11));
        let Ok(port) = d.evtchn.allocate(&mut mem, evtchn::Binding::Pirq(11), 0) else { panic!("port") };
        d.pirqs.set_port(11, port);
        let owner = crate::irq::Owner { domid: d.id, pirq: 11 };
        let other = crate::irq::Owner { domid: 7, pirq: 10 };
        assert_eq!(crate::irq::with(|r| (r.bind(11, owner), r.bind(10, other))), Some((Ok(true), Ok(true))));
        system.deliver_pirqs(&mut mem);
        assert!(!evtchn::port_is_pending(&system.domains[0], &mut mem, port), "nothing fired yet");
        let vector = |pin| (hw.rte(pin) & 0xff) as u8;
        crate::irq::with(|r| {
            r.interrupt(vector(10));
            r.interrupt(vector(11));
        });
        system.deliver_pirqs(&mut mem);
        assert!(evtchn::port_is_pending(&system.domains[0], &mut mem, port), "raised");
        assert_eq!(crate::irq::take_pending(), [], "domain 7's (no such domain) dropped too");
    }

    #[test]
    fn an_iret_to_user_that_meets_an_upcall_stays_in_kernel_mode() {
        let (mut system, mut frame, mut mem, mut w) = started(with_callback);
        raise_upcall(&mut mem);
        // The iret context: rax, r11, rcx, flags, rip, cs (user), rflags, rsp, ss.
        let ctx: [u64; 9] = [0, 0, 0, 0, 0x40_0000_0000, 0xe033, 0x202, BUF_VA + 0x2000, 0xe02b];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        crate::guest_access::GuestMemory::new(&mut mem, Mfn(0)).copy_to(BUF_VA + 0x1000, &bytes).unwrap();
        (frame.rax, frame.rsp) = (u64::from(guest_abi::xen::HYPERVISOR_IRET), BUF_VA + 0x1000);
        let action = system.syscall(&mut frame, 1000, 1000, &mut mem, &mut w.plat);
        assert_eq!(frame.rip, CALLBACK, "the upcall was delivered on the way to user mode");
        assert!(system.domains[0].vcpus[0].kernel_mode());
        assert!(!action.toggled, "kernel mode in, kernel mode out: no swapgs");
        assert_eq!(action.next, Next::Resume, "and the kernel's table stays");
    }

    #[test]
    fn a_sent_nmi_enters_trap_2_before_the_upcall_and_waits_for_its_iret() {
        const NMI: u64 = 0xffff_ffff_8000_2000;
        let (mut system, mut frame, mut mem, mut w) = started(|w| {
            with_callback(w);
            w.dom.vcpus[0].traps[2] = crate::domain::TrapHandler { cs: 0xe033, flags: 4, address: NMI };
        });
        raise_upcall(&mut mem);
        mem.0[8][1] = 1; // events masked: only the NMI can be delivered
        fn send_nmi(system: &mut System, frame: &mut TrapFrame, mem: &mut dyn MachineMemory, w: &mut World) {
            (frame.rax, frame.rdi, frame.rsi, frame.rdx) =
                (u64::from(guest_abi::xen::HYPERVISOR_VCPU_OP), u64::from(guest_abi::vcpu::VCPUOP_SEND_NMI), 0, 0);
            (frame.rip, frame.rsp) = (0x7000, BUF_VA + 0x2000);
            system.syscall(frame, 1000, 1000, mem, &mut w.plat);
        }
        send_nmi(&mut system, &mut frame, &mut mem, &mut w);
        assert_eq!((frame.rip, frame.rax), (NMI, 0), "the NMI handler, with the hypercall's answer");
        assert!(system.domains[0].vcpus[0].nmi_masked);
        send_nmi(&mut system, &mut frame, &mut mem, &mut w);
        assert_eq!(frame.rip, 0x7000, "a second NMI waits while the first is handled");
        assert!(system.domains[0].vcpus[0].nmi_pending);
        // The handler's iret (to kernel mode, events unmasked) unmasks NMIs:
        // the pending one is delivered at once, before the upcall.
        let ctx: [u64; 9] = [0, 0, 0, 0, 0x7000, 0xe030, 0x202, BUF_VA + 0x2000, 0xe02b];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        crate::guest_access::GuestMemory::new(&mut mem, Mfn(0)).copy_to(BUF_VA + 0x1000, &bytes).unwrap();
        (frame.rax, frame.rsp) = (u64::from(guest_abi::xen::HYPERVISOR_IRET), BUF_VA + 0x1000);
        system.syscall(&mut frame, 1000, 1000, &mut mem, &mut w.plat);
        assert_eq!(frame.rip, NMI, "the second NMI");
        assert_eq!(mem.0[8][1], 1, "entered with events masked (trap 2's flags)");
        crate::guest_access::GuestMemory::new(&mut mem, Mfn(0)).copy_to(BUF_VA + 0x1000, &bytes).unwrap();
        (frame.rax, frame.rsp) = (u64::from(guest_abi::xen::HYPERVISOR_IRET), BUF_VA + 0x1000);
        system.syscall(&mut frame, 1000, 1000, &mut mem, &mut w.plat);
        assert_eq!(frame.rip, CALLBACK, "its iret unmasks events: now the upcall");
    }

    #[test]
    fn a_code_segment_the_guest_drops_under_itself_sends_it_to_the_failsafe_callback() {
        const FAILSAFE: u64 = 0xffff_ffff_8000_3000;
        let (mut system, mut frame, mut mem, mut w) = started(|w| {
            with_callback(w);
            let v = &mut w.dom.vcpus[0];
            v.callbacks.failsafe = crate::domain::Callback { address: FAILSAFE, mask_events: false };
            v.gdt_frames = std::vec![Mfn(7)];
            w.mem.0[7][8..16].copy_from_slice(&0x00af_fa00_0000_ffffu64.to_le_bytes());
            // GDT 1: 64-bit code
        });
        let update = |system: &mut System,
                      frame: &mut TrapFrame,
                      mem: &mut crate::guest_access::tests::FakeMemory,
                      w: &mut World,
                      entry: u64| {
            (frame.rax, frame.rdi, frame.rsi) =
                (u64::from(guest_abi::xen::HYPERVISOR_UPDATE_DESCRIPTOR), (7 << 12) + entry * 8, 0);
            (frame.rip, frame.cs, frame.rsp, frame.ss) = (0x7000, 0x0b, BUF_VA + 0x2000, 0xe02b);
            system.syscall(frame, 1000, 1000, mem, &mut w.plat);
        };
        update(&mut system, &mut frame, &mut mem, &mut w, 2);
        assert_eq!((frame.rip, frame.cs, frame.rax), (0x7000, 0x0b, 0), "another entry: back to its own code segment");
        update(&mut system, &mut frame, &mut mem, &mut w, 1);
        assert_eq!(frame.rip, FAILSAFE, "its code segment is gone: the return would fault");
        assert_eq!(frame.cs, 0xe033);
    }

    #[test]
    fn an_upcall_taken_from_user_mode_switches_to_the_kernel() {
        let (mut system, mut frame, mut mem, _w) = started(|w| {
            with_callback(w);
            w.dom.vcpus[0].set_kernel_mode(false);
        });
        assert!(!system.domains[0].vcpus[0].kernel_mode());
        raise_upcall(&mut mem);
        let action = system.timer_interrupt(&mut frame, 1000, 1000, &mut mem);
        assert_eq!(frame.rip, CALLBACK);
        assert!(system.domains[0].vcpus[0].kernel_mode());
        assert!(action.toggled, "user mode in, kernel mode out: swapgs");
        assert!(matches!(action.next, Next::Reload(Mfn(0)) | Next::Switch(Mfn(0))), "{:?}", action.next);
    }

    #[test]
    fn a_vcpu_switched_in_from_user_mode_to_an_upcall_gets_the_kernels_table_and_gs() {
        let (system, frame, _mem, _w, action) = started_with(|w| {
            with_callback(w);
            let v = &mut w.dom.vcpus[0];
            v.set_kernel_mode(false);
            (v.segments.gs_base, v.segments.shadow_gs_base) = (0x1111, 0x2222); // user's, kernel's
            w.mem.0[8][0] = 1; // evtchn_upcall_pending
            w.mem.0[8][1] = 0; // evtchn_upcall_mask
        });
        let v = &system.domains[0].vcpus[0];
        assert_eq!(frame.rip, CALLBACK, "the upcall was delivered on the way in");
        assert!(v.kernel_mode());
        assert_eq!((v.segments.gs_base, v.segments.shadow_gs_base), (0x2222, 0x1111), "swapgs done for it");
        assert_eq!(action.next, Next::Switch(Mfn(0)), "the kernel's table, not the user's (frame 9)");
    }

    #[test]
    fn a_new_base_pointer_is_loaded_on_the_way_back() {
        let mut w = World::new(false);
        // Frame 9: a second L4, a copy of frame 0.
        w.mem.0[9] = w.mem.0[0];
        let mut op = [0u8; 24];
        op[0..4].copy_from_slice(&MMUEXT_NEW_BASEPTR.to_le_bytes());
        op[8..16].copy_from_slice(&9u64.to_le_bytes());
        w.poke(BUF_VA, &op);
        let World { dom, mut mem, mut plat, pool, ft, .. } = w;
        let Some(scale) = TimeScale::from_hz(1_000_000_000) else { panic!("scale") };
        let clock = Clock { tsc_at_zero: 0, scale, tsc_hz: 1_000_000_000 };
        let mut system =
            System::new(std::vec![(dom, SchedParams::default())], clock, M2P, alloc::boxed::Box::new(pool), ft);
        let mut frame = TrapFrame::default();
        assert_eq!(system.start(&mut frame, 0, 0, &mut mem).next, Next::Switch(Mfn(0)));
        frame.rax = u64::from(HYPERVISOR_MMUEXT_OP);
        (frame.rdi, frame.rsi, frame.rdx, frame.r10) = (BUF_VA, 1, 0, u64::from(DOMID_SELF));
        let action = system.syscall(&mut frame, 1000, 1000, &mut mem, &mut plat);
        assert_eq!(frame.rax, 0);
        assert_eq!(action.next, Next::Reload(Mfn(9)));
        frame.rax = u64::from(HYPERVISOR_XEN_VERSION);
        (frame.rdi, frame.rsi) = (0, 0);
        let action = system.syscall(&mut frame, 2000, 2000, &mut mem, &mut plat);
        assert_eq!(action.next, Next::Resume, "nothing changed: no reload");
        // Only the calls that cannot load a base skip the comparison.
        use guest_abi::xen::{HYPERVISOR_DOMCTL, HYPERVISOR_MULTICALL, HYPERVISOR_VCPU_OP};
        for nr in [HYPERVISOR_MMUEXT_OP, HYPERVISOR_MULTICALL, HYPERVISOR_VCPU_OP, HYPERVISOR_DOMCTL, 99] {
            assert!(hypercall::may_load_base(u64::from(nr)), "{nr}");
        }
        assert!(!hypercall::may_load_base(u64::from(HYPERVISOR_XEN_VERSION)));
    }

    #[test]
    fn destroydomain_is_continued_until_the_domain_is_taken_apart_and_its_memory_scrubbed() {
        use crate::hypercall::preempt_tests::deep;
        use crate::mm::pt_validate::{MapRights, Mmu};
        use guest_abi::domctl::{XenDomctl, XEN_DOMCTL_DESTROYDOMAIN};
        let mut w = World::new(true);
        w.add_peer(crate::hypercall::tests::test_domain(1, false, 10..13, Some(Mfn(10)), Mfn(13)));
        let d = deep(&mut w, 1, (2, 4, 50), Mfn(11), Mfn(12));
        let rights = MapRights::of(&w.peers[0]);
        Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(d.l4, 4, &rights).unwrap();
        w.peers[0].state = DomainState::Shutdown(crate::domain::ShutdownReason::Poweroff);
        w.audit();
        let frames: std::vec::Vec<Mfn> = w.ft.pages(&w.peers[0].page_list).collect();
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&XenDomctl::new(XEN_DOMCTL_DESTROYDOMAIN, 1)));
        let World { dom, peers, mut mem, mut plat, pool, ft, .. } = w;
        let Some(scale) = TimeScale::from_hz(1_000_000_000) else { panic!("scale") };
        let clock = Clock { tsc_at_zero: 0, scale, tsc_hz: 1_000_000_000 };
        let domains = core::iter::once(dom).chain(peers).map(|d| (d, SchedParams::default())).collect();
        let mut system = System::new(domains, clock, M2P, alloc::boxed::Box::new(pool), ft);
        let mut frame = TrapFrame::default();
        system.start(&mut frame, 0, 0, &mut mem);
        let free_before = system.frames.free_frames();
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 1000, "no end");
            (frame.rax, frame.rdi, frame.rip) = (u64::from(guest_abi::xen::HYPERVISOR_DOMCTL), BUF_VA, 0x1000);
            system.syscall(&mut frame, 1000 * calls, 1000 * calls, &mut mem, &mut plat);
            if frame.rip == 0x1000 {
                break;
            }
            assert_eq!(frame.rip, 0x0ffe, "continued: the syscall again");
            // Another call before the continued one comes back (an event
            // upcall's `iret`, say): the settling it brings must not free
            // the domain under the destroying call.
            (frame.rax, frame.rdi, frame.rsi, frame.rip) = (u64::from(HYPERVISOR_XEN_VERSION), 0, 0, 0x2000);
            system.syscall(&mut frame, 1000 * calls + 500, 1000 * calls + 500, &mut mem, &mut plat);
            // A frame back in the pool is a scrubbed one.
            for &m in &frames {
                let free = system.ft.owner(m) == Some(crate::mm::frame_table::Owner::Free);
                if free && !system.ft.needs_scrub(m) {
                    assert!(mem.0[m.0 as usize].iter().all(|&b| b == 0), "frame {} free unscrubbed", m.0);
                }
            }
        }
        assert_eq!(frame.rax, 0, "done");
        assert!(calls >= 5, "{} tables at 32 a step: {calls} calls", d.tables.len());
        assert_eq!(system.domains[1].state, DomainState::Dead(Some(crate::domain::ShutdownReason::Poweroff)));
        // Its memory comes back scrubbed, lazily: after later hypercalls,
        // at once while the pool is below its reserve (this small machine's
        // pool always is).
        assert!(system.frames.free_frames() < lifecycle::POOL_RESERVE);
        (frame.rax, frame.rdi, frame.rsi) = (u64::from(HYPERVISOR_XEN_VERSION), 0, 0);
        system.syscall(&mut frame, 1000 * (calls + 1), 1000 * (calls + 1), &mut mem, &mut plat);
        assert_eq!(system.ft.dirty_frames(), 0, "the pool was refilled after one hypercall");
        assert_eq!(system.frames.free_frames(), free_before + frames.len() as u64 + 1, "every frame and shared_info");
        for &m in &frames {
            assert!(mem.0[m.0 as usize].iter().all(|&b| b == 0), "frame {} scrubbed", m.0);
        }
    }

    /// The exit work word against the full check, over random sequences
    /// of the real hypercalls and interrupts that block, yield, poll, put
    /// vCPUs down and up, send NMIs, arm timers and raise events, by two
    /// vCPUs of one domain taking turns on the CPU: on every exit
    /// [`System::may_continue`] asserts (debug builds) that a vCPU whose
    /// word is clear has nothing for [`System::exit_look`], and after
    /// every step no vCPU has a state the word misses. A setter of
    /// [`crate::domain::Vcpu::exit_work`] left out fails here.
    #[test]
    fn the_exit_work_word_never_misses_what_the_full_check_finds() {
        use guest_abi::sched::{SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_YIELD};
        use guest_abi::vcpu::{VCPUOP_DOWN, VCPUOP_SEND_NMI, VCPUOP_UP};
        use guest_abi::xen::{HYPERVISOR_SCHED_OP, HYPERVISOR_SET_TIMER_OP, HYPERVISOR_VCPU_OP};
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let (mut looked, mut skipped, mut idled) = (0u64, 0u64, 0u64);
        for run in 0..40 {
            let (mut system, mut frame, mut mem, mut w) = started(|w| {
                with_callback(w);
                w.dom.max_vcpus = 2;
                w.dom.create_offline_vcpus(0, 0);
                let (rip, rsp) = (0x7000, BUF_VA + 0x2000);
                let regs = TrapFrame { rip, rsp, cs: 0xe030, ss: 0xe02b, rflags: 0x202, ..TrapFrame::default() };
                let mut ap = crate::domain::Vcpu::new(1, regs, Mfn(0));
                ap.callbacks.event.address = CALLBACK;
                ap.set_kernel_sp(BUF_VA + 0x3000);
                w.dom.vcpus[1] = ap;
            });
            let mut now = 1_000u64;
            for step in 0..400 {
                now += 1 + next(3_000_000);
                let Some(who) = system.current() else {
                    // Both asleep: an event for each, and the idle CPU's look.
                    (mem.0[8][0], mem.0[8][64]) = (1, 1);
                    idled += 1;
                    system.idle_wakeup(&mut frame, now, now, &mut mem);
                    continue;
                };
                // The guest's handlers returned: its stack is whole again.
                frame.rsp = BUF_VA + 0x2000;
                let other = 1 - who.vcpu;
                let other_up = !system.domains[0].vcpus[other].down;
                let work_before = system.domains[0].vcpus[who.vcpu].exit_work;
                let op = next(12);
                let (nr, args) = match op {
                    0 => (HYPERVISOR_SCHED_OP, [u64::from(SCHEDOP_YIELD), 0]),
                    1 => (HYPERVISOR_SCHED_OP, [u64::from(SCHEDOP_BLOCK), 0]),
                    2 => {
                        // No ports, a timeout: struct sched_poll.
                        let mut req = [0u8; 24];
                        req[16..].copy_from_slice(&(now + next(10_000_000)).to_le_bytes());
                        let mut guest = crate::guest_access::GuestMemory::new(&mut mem, Mfn(0));
                        guest.copy_to(BUF_VA, &req).expect("mapped");
                        (HYPERVISOR_SCHED_OP, [u64::from(SCHEDOP_POLL), BUF_VA])
                    }
                    3 if other_up => (HYPERVISOR_VCPU_OP, [u64::from(VCPUOP_DOWN), other as u64]),
                    4 if other_up => (HYPERVISOR_VCPU_OP, [u64::from(VCPUOP_DOWN), who.vcpu as u64]),
                    3..=5 => (HYPERVISOR_VCPU_OP, [u64::from(VCPUOP_UP), other as u64]),
                    6 => (HYPERVISOR_VCPU_OP, [u64::from(VCPUOP_SEND_NMI), next(2)]),
                    7 => (HYPERVISOR_SET_TIMER_OP, [now + next(5_000_000), 0]),
                    8 => {
                        // An event for either vCPU, masked or not.
                        let at = 64 * next(2) as usize;
                        (mem.0[8][at], mem.0[8][at + 1]) = (1, next(2) as u8);
                        (HYPERVISOR_XEN_VERSION, [0, 0])
                    }
                    _ => (HYPERVISOR_XEN_VERSION, [0, 0]),
                };
                if nr == HYPERVISOR_VCPU_OP {
                    // vcpu_op's vCPU is its second argument, the third null.
                    (frame.rdx, frame.rax, frame.rdi, frame.rsi) = (0, u64::from(nr), args[0], args[1]);
                    frame.rip += 2;
                    system.syscall(&mut frame, now, now, &mut mem, &mut w.plat);
                } else if next(6) == 0 {
                    system.timer_interrupt(&mut frame, now, now, &mut mem);
                } else {
                    hypercall(&mut system, &mut frame, &mut mem, &mut w, now, nr, args);
                }
                if work_before {
                    looked += 1;
                } else {
                    skipped += 1;
                }
                let d = &system.domains[0];
                assert!(
                    d.is_alive(),
                    "run {run} step {step} op {op}: the domain went down: {:?} {:?}",
                    d.state,
                    d.crash_message
                );
                for vcpu in 0..2 {
                    let v = VcpuRef { domain: 0, vcpu };
                    assert!(!system.exit_work_missed(v), "run {run} step {step} (op {op}): {v:?}'s word is clear");
                }
            }
        }
        assert!(looked > 1000 && skipped > 1000 && idled > 10, "looked {looked}, skipped {skipped}, idled {idled}");
    }
}
