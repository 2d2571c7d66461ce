//! The scheduler: which vCPU runs next, on which CPU, and for how long.
//!
//! Weighted fair share with caps, in the spirit of Xen's credit scheduler
//! and with its parameters (weight 1..=65535, default 256; cap in percent
//! of one CPU, 0 = uncapped):
//! - the weight and the cap are the domain's, shared by its vCPUs, as in
//!   Xen's credit scheduler (whose `csched_acct` divides a domain's fair
//!   share among its active vCPUs);
//! - every runnable vCPU carries a virtual runtime that advances by the
//!   time it ran scaled by `DEFAULT_WEIGHT * n / weight`, `n` being the
//!   number of its domain's runnable vCPUs; the lowest runs next, so CPU
//!   time divides between domains in proportion to weight, however many
//!   vCPUs each keeps busy. The virtual runtimes are one timeline for the
//!   whole machine, so a domain's share is of all CPUs together (Xen's
//!   credit: `credit_total` is 300 per CPU per period, divided by weight);
//! - a capped domain may run at most `cap`% of one CPU in each accounting
//!   period, all its vCPUs on all CPUs together (`cap = 150` is one and a
//!   half CPUs): a vCPU takes its slice out of the domain's budget when it
//!   is picked and gives back what it did not use when it is charged
//!   (credit2's budget pool), so vCPUs of one domain on several CPUs
//!   cannot together overrun the budget; once it is spent they wait for
//!   the next period even if CPUs would otherwise idle;
//! - a vCPU runs for at most one time slice before the others are
//!   considered again (preemption); with nothing runnable the CPU idles.
//!
//! Run queues are per CPU, as in Xen's credit scheduler: every vCPU sits
//! on the queue of one CPU (where it last ran, or where a wake-up placed
//! it: [`Scheduler::move_to`]), and a CPU picks from its own queue
//! ([`Scheduler::pick_on`]). It takes a vCPU from another CPU's queue
//! (Xen's `csched_load_balance`) when its own has nothing it may run,
//! or when the best waiting there is more than a time slice of virtual
//! runtime behind its own best: that bounds how far the per-CPU choices
//! stray from one machine-wide fair order, and is what keeps weights
//! holding across CPUs while vCPUs mostly stay where they ran.
//!
//! Entities are identified by an opaque [`VcpuRef`]; the scheduler knows
//! nothing of domains beyond their parameters, nor of which vCPU another
//! CPU runs: the caller's `may_run` says which it may take (its hard
//! affinity, not running elsewhere).

use alloc::vec::Vec;

/// Default weight of a domain (Xen's `CSCHED_DEFAULT_WEIGHT`).
pub const DEFAULT_WEIGHT: u16 = 256;
/// Longest a vCPU runs before the scheduler reconsiders, by default (Xen's
/// default credit time slice is 30 ms; the toolstack may change it).
pub const TIME_SLICE_NS: u64 = 30_000_000;
/// Length of the accounting period over which caps are enforced.
pub const CAP_PERIOD_NS: u64 = 30_000_000;
/// Most CPUs that run guests (a power of two: per-CPU state is indexed
/// by a masked CPU number).
pub const MAX_CPUS: usize = 32;
const _: () = assert!(MAX_CPUS.is_power_of_two() && MAX_CPUS <= 64);

/// A vCPU as the scheduler knows it: (domain index, vCPU index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuRef {
    /// Index of the domain in the system's domain table.
    pub domain: usize,
    /// vCPU number within the domain.
    pub vcpu: usize,
}

/// Scheduling parameters of a domain (Xen's `xen_domctl_sched_credit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// Relative share of CPU time (1..=65535).
    pub weight: u16,
    /// Upper bound in percent of one CPU; 0 means none.
    pub cap: u16,
}

impl Default for SchedParams {
    fn default() -> Self {
        SchedParams { weight: DEFAULT_WEIGHT, cap: 0 }
    }
}

/// Why parameters were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// Weight 0 is not a share.
    ZeroWeight,
    /// A cap above 100% of the CPUs the domain can use.
    CapTooLarge,
}

impl SchedParams {
    /// Validates parameters for a domain with `nr_vcpus` vCPUs.
    pub fn validate(self, nr_vcpus: usize) -> Result<Self, ParamError> {
        if self.weight == 0 {
            return Err(ParamError::ZeroWeight);
        }
        if usize::from(self.cap) > 100 * nr_vcpus.max(1) {
            return Err(ParamError::CapTooLarge);
        }
        Ok(self)
    }
}

#[derive(Clone, Debug)]
struct Entity {
    who: VcpuRef,
    params: SchedParams,
    runnable: bool,
    /// Weighted virtual runtime (ns scaled by DEFAULT_WEIGHT / weight).
    vruntime: u128,
    /// ns consumed in the current cap period.
    used_in_period: u64,
    /// Of a capped domain's budget: what this vCPU took when it was
    /// picked and has not been charged for yet.
    reserved_ns: u64,
    /// A capped vCPU on a CPU: when it was put there, or when the cap
    /// period it runs into began, whichever is later.
    since_ns: u64,
    /// Of what it has run since it was picked: the part already counted
    /// in an earlier period's use (at that period's end).
    accounted_ns: u64,
    /// The CPU whose run queue holds it.
    cpu: usize,
    /// Woken since the caller last asked ([`Scheduler::take_woken`]).
    woken: bool,
}

/// The run queues of every CPU that runs guests, and the accounting they
/// share.
#[derive(Debug, Default)]
pub struct Scheduler {
    entities: Vec<Entity>,
    period_start_ns: u64,
    /// How many CPUs (0..cpus) run guests; 0 is read as 1.
    cpus: usize,
    /// Per CPU: the time vCPUs ran on it, ns (charged when they leave it).
    busy_ns: Vec<u64>,
    /// The scheduler-wide parameters the toolstack reads and sets
    /// (`XEN_SYSCTL_scheduler_op`).
    pub globals: CreditGlobals,
}

/// The credit scheduler's global parameters as Xen reports them
/// (`struct xen_sysctl_credit_schedule`). The time slice is the longest a
/// vCPU runs before the scheduler reconsiders; the rate limit and the
/// migration delay are kept and reported only (vCPUs move between CPUs
/// by the load balancing of [`Scheduler::pick_on`] whatever the delay).
/// A vCPU runs its whole slice unless it blocks or a vCPU woken by an
/// event preempts it, which happens no sooner than the rate limit after
/// it was put on the CPU ([`Scheduler::wake_preempts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditGlobals {
    /// Time slice, ms (Xen's default 30).
    pub tslice_ms: u32,
    /// Minimum run time before preemption, µs (Xen's default 1000).
    pub ratelimit_us: u32,
    /// How long a vCPU stays cache-hot, µs (Xen's default 0).
    pub vcpu_migr_delay_us: u32,
}

impl Default for CreditGlobals {
    fn default() -> Self {
        CreditGlobals { tslice_ms: (TIME_SLICE_NS / 1_000_000) as u32, ratelimit_us: 1000, vcpu_migr_delay_us: 0 }
    }
}

/// The scheduler's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Run this vCPU until at most `until_ns` (then call `pick` again).
    Run {
        /// The vCPU.
        who: VcpuRef,
        /// Preemption deadline (system time, ns).
        until_ns: u64,
    },
    /// Nothing may run; idle until `until_ns` (a new cap period) or an event.
    Idle {
        /// When to look again, if nothing wakes a vCPU first.
        until_ns: Option<u64>,
    },
}

impl Scheduler {
    /// An empty run queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets vCPUs run on CPUs 0..`cpus` (at least one, at most
    /// [`MAX_CPUS`]); the vCPUs known so far are spread over them (vCPU
    /// `n` of each domain to CPU `n`, as Xen places dom0's).
    pub fn set_cpus(&mut self, cpus: usize) {
        self.cpus = cpus.clamp(1, MAX_CPUS);
        self.busy_ns.resize(self.cpus, 0);
        let n = self.cpus;
        for e in &mut self.entities {
            e.cpu = e.who.vcpu % n;
        }
    }

    /// How many CPUs run guests (what `physinfo` reports online).
    pub fn nr_cpus(&self) -> u32 {
        self.cpus.max(1) as u32
    }

    /// The CPUs that run guests, as a bit mask (bit n = CPU n): what a
    /// hard affinity is taken within (Xen's cpupool's `cpu_valid`).
    pub fn online_mask(&self) -> u64 {
        match self.nr_cpus() {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        }
    }

    /// The time vCPUs ran on `cpu` and left it, ns.
    pub fn busy_ns(&self, cpu: usize) -> u64 {
        self.busy_ns.get(cpu).copied().unwrap_or(0)
    }

    fn find(&mut self, who: VcpuRef) -> Option<&mut Entity> {
        self.entities.iter_mut().find(|e| e.who == who)
    }

    fn get(&self, who: VcpuRef) -> Option<&Entity> {
        self.entities.iter().find(|e| e.who == who)
    }

    fn min_vruntime(&self) -> u128 {
        self.entities.iter().filter(|e| e.runnable).map(|e| e.vruntime).min().unwrap_or(0)
    }

    /// Adds a vCPU (runnable) with its domain's parameters, on the run
    /// queue of the CPU with the fewest vCPUs (Xen's initial placement).
    pub fn add(&mut self, who: VcpuRef, params: SchedParams) {
        let vruntime = self.min_vruntime();
        let cpu =
            (0..self.cpus.max(1)).min_by_key(|&c| self.entities.iter().filter(|e| e.cpu == c).count()).unwrap_or(0);
        let e = Entity {
            who,
            params,
            runnable: true,
            vruntime,
            used_in_period: 0,
            reserved_ns: 0,
            since_ns: 0,
            accounted_ns: 0,
            cpu,
            woken: false,
        };
        self.entities.push(e);
    }

    /// Removes a vCPU (its domain is gone).
    pub fn remove(&mut self, who: VcpuRef) {
        self.entities.retain(|e| e.who != who);
    }

    /// Sets the parameters of every vCPU of `domain`.
    pub fn set_params(&mut self, domain: usize, params: SchedParams) {
        for e in self.entities.iter_mut().filter(|e| e.who.domain == domain) {
            e.params = params;
        }
    }

    /// The parameters of `domain`, if it has vCPUs here.
    pub fn params(&self, domain: usize) -> Option<SchedParams> {
        self.entities.iter().find(|e| e.who.domain == domain).map(|e| e.params)
    }

    /// Marks a vCPU runnable (woken by an event or timer). A vCPU that slept
    /// does not bank credit: it rejoins no further behind than the others.
    pub fn wake(&mut self, who: VcpuRef) {
        let floor = self.min_vruntime();
        if let Some(e) = self.find(who) {
            if !e.runnable {
                e.runnable = true;
                e.woken = true;
                e.vruntime = e.vruntime.max(floor);
            }
        }
    }

    /// Appends to `out` the vCPUs woken since the last call, and forgets
    /// them: the caller places each on a CPU and tickles it (Xen's
    /// `__runq_tickle`).
    pub fn take_woken(&mut self, out: &mut Vec<VcpuRef>) {
        for e in self.entities.iter_mut().filter(|e| e.woken) {
            e.woken = false;
            if e.runnable {
                out.push(e.who);
            }
        }
    }

    /// The CPU whose run queue holds `who`.
    pub fn queue_of(&self, who: VcpuRef) -> Option<usize> {
        self.get(who).map(|e| e.cpu)
    }

    /// Puts `who` on the run queue of `cpu` (a CPU that runs guests).
    pub fn move_to(&mut self, who: VcpuRef, cpu: usize) {
        let n = self.cpus.max(1);
        if let Some(e) = self.find(who) {
            e.cpu = cpu.min(n - 1);
        }
    }

    /// Whether `woken`, just made runnable, should take the CPU from
    /// `current`, which has run `ran_ns` since it was put on it. Xen's
    /// credit scheduler boosts a vCPU that wakes from blocking so that it
    /// preempts the running one (`csched_vcpu_wake`, `__runq_tickle`):
    /// an event answered at once rather than after the sender's slice.
    /// Here: when `woken` would be picked were `current` charged now.
    pub fn wake_preempts(&self, current: VcpuRef, ran_ns: u64, woken: VcpuRef) -> bool {
        if current == woken {
            return false;
        }
        let (Some(c), Some(w)) = (self.get(current), self.get(woken)) else {
            return false;
        };
        if !w.runnable || Self::budget_ns(w.params).is_some_and(|b| self.domain_used(woken.domain) >= b) {
            return false;
        }
        let charged = c.vruntime + u128::from(ran_ns) * u128::from(DEFAULT_WEIGHT) / u128::from(c.params.weight.max(1));
        (w.vruntime, w.who) < (charged, c.who)
    }

    /// The least a vCPU runs before a woken one preempts it (the credit
    /// scheduler's rate limit), ns.
    pub fn ratelimit_ns(&self) -> u64 {
        u64::from(self.globals.ratelimit_us) * 1000
    }

    /// Whether `who` is runnable and its domain within its cap: a vCPU
    /// [`Self::pick_on`] would consider now.
    pub fn eligible(&self, who: VcpuRef) -> bool {
        self.get(who)
            .is_some_and(|e| e.runnable && Self::budget_ns(e.params).is_none_or(|b| self.domain_used(who.domain) < b))
    }

    /// Marks a vCPU not runnable (blocked, paused or shut down).
    pub fn sleep(&mut self, who: VcpuRef) {
        if let Some(e) = self.find(who) {
            e.runnable = false;
            e.woken = false;
        }
    }

    /// `SCHEDOP_yield`: `who` goes behind every other runnable vCPU.
    pub fn yield_now(&mut self, who: VcpuRef) {
        let last = self.entities.iter().filter(|e| e.runnable).map(|e| e.vruntime).max().unwrap_or(0);
        if let Some(e) = self.find(who) {
            e.vruntime = e.vruntime.max(last + 1);
        }
    }

    /// How many of `domain`'s vCPUs are active (at least 1): runnable, or
    /// ran in the current accounting period. As Xen's credit scheduler
    /// counts a vCPU active for the period once it consumed credit, a vCPU
    /// that blocks for a moment (a PV spinlock's poll while its holder
    /// waits for a CPU) does not halve what its siblings are charged.
    fn active(&self, domain: usize) -> u128 {
        self.entities.iter().filter(|e| e.who.domain == domain && (e.runnable || e.used_in_period != 0)).count().max(1)
            as u128
    }

    /// What `domain`'s vCPUs together used of the current cap period, and
    /// hold reserved for the slices they run now.
    fn domain_used(&self, domain: usize) -> u64 {
        self.entities
            .iter()
            .filter(|e| e.who.domain == domain)
            .map(|e| e.used_in_period.saturating_add(e.reserved_ns))
            .fold(0, u64::saturating_add)
    }

    /// [`Self::charge`], `ran_ns` having been spent on `cpu` (counted in
    /// [`Self::busy_ns`]).
    pub fn charge_on(&mut self, cpu: usize, who: VcpuRef, ran_ns: u64) {
        if self.busy_ns.len() <= cpu && cpu < MAX_CPUS {
            self.busy_ns.resize(cpu + 1, 0);
        }
        if let Some(b) = self.busy_ns.get_mut(cpu) {
            *b = b.saturating_add(ran_ns);
        }
        self.charge(who, ran_ns);
    }

    /// Charges `ran_ns` of CPU time to `who`: its virtual runtime advances
    /// as if its domain's weight were divided among its runnable vCPUs,
    /// and what it reserved of its domain's cap budget is settled.
    pub fn charge(&mut self, who: VcpuRef, ran_ns: u64) {
        let active = self.active(who.domain);
        if let Some(e) = self.find(who) {
            let weight = u128::from(e.params.weight.max(1));
            e.vruntime += u128::from(ran_ns) * u128::from(DEFAULT_WEIGHT) * active / weight;
            e.used_in_period = e.used_in_period.saturating_add(ran_ns.saturating_sub(e.accounted_ns));
            (e.reserved_ns, e.accounted_ns) = (0, 0);
        }
    }

    fn budget_ns(params: SchedParams) -> Option<u64> {
        (params.cap != 0).then(|| CAP_PERIOD_NS * u64::from(params.cap) / 100)
    }

    /// Starts a new cap period, `periods` after the last one began. A
    /// capped domain that ran past its budget (a timer that fired late, a
    /// hypercall that finished after the deadline) carries the overrun
    /// into the new period, as Xen's credit scheduler lets credit go
    /// negative, so that over many periods it gets its cap and no more;
    /// the debt carried is at most one period. Everything else starts
    /// the period afresh. A capped vCPU still running (on another CPU)
    /// has the part of its slice before the new period counted in the old
    /// one, and the rest of its reservation held against the new one: time
    /// is charged to the period it was spent in, whichever CPU notices the
    /// period's end first.
    fn start_periods(&mut self, periods: u64) {
        let start = self.period_start_ns;
        for e in self.entities.iter_mut().filter(|e| e.reserved_ns != 0) {
            let before = start.saturating_sub(e.since_ns);
            e.used_in_period = e.used_in_period.saturating_add(before);
            e.accounted_ns = e.accounted_ns.saturating_add(before);
            e.reserved_ns = e.reserved_ns.saturating_sub(before);
            e.since_ns = e.since_ns.max(start);
        }
        let mut debts: Vec<(usize, u64)> = Vec::new();
        for e in &self.entities {
            if let Some(budget) = Self::budget_ns(e.params) {
                if !debts.iter().any(|&(d, _)| d == e.who.domain) {
                    let used = self
                        .entities
                        .iter()
                        .filter(|o| o.who.domain == e.who.domain)
                        .fold(0u64, |a, o| a.saturating_add(o.used_in_period));
                    let over = used.saturating_sub(budget.saturating_mul(periods));
                    debts.push((e.who.domain, over.min(CAP_PERIOD_NS)));
                }
            }
        }
        for e in &mut self.entities {
            e.used_in_period = 0;
        }
        for (domain, debt) in debts {
            if let Some(e) = self.entities.iter_mut().find(|e| e.who.domain == domain) {
                e.used_in_period = debt;
            }
        }
    }

    /// The virtual runtime a time slice adds to `e`.
    fn slice_vruntime(&self, e: &Entity) -> u128 {
        u128::from(self.globals.tslice_ms) * 1_000_000 * u128::from(DEFAULT_WEIGHT) * self.active(e.who.domain)
            / u128::from(e.params.weight.max(1))
    }

    /// On several CPUs a vCPU may be unable to use its weight's share (a
    /// single vCPU can use one CPU at most): its virtual runtime would fall
    /// ever further behind, and once it could use more (a second vCPU up,
    /// a neighbour gone) it would monopolise CPUs to catch up. Keeps every
    /// runnable vCPU within two of the largest slices of virtual runtime of
    /// the one furthest ahead (on one CPU the lowest always runs, so none
    /// falls behind further than that).
    fn bound_lag(&mut self) {
        let mut ahead = 0u128;
        let mut span = 0u128;
        for e in self.entities.iter().filter(|e| e.runnable) {
            ahead = ahead.max(e.vruntime);
            span = span.max(self.slice_vruntime(e));
        }
        let floor = ahead.saturating_sub(2 * span);
        for e in self.entities.iter_mut().filter(|e| e.runnable) {
            e.vruntime = e.vruntime.max(floor);
        }
    }

    /// Chooses what runs at system time `now_ns` (one CPU, CPU 0).
    pub fn pick(&mut self, now_ns: u64) -> Pick {
        self.pick_on(0, now_ns, |_| true)
    }

    /// Chooses what runs on `cpu` at system time `now_ns` among the vCPUs
    /// `may_run` accepts (on several CPUs: not those another CPU runs or
    /// has not saved yet, nor those whose hard affinity leaves `cpu`
    /// out): the best on `cpu`'s own run queue, unless that queue has none
    /// or another's best waits more than a time slice of virtual runtime
    /// behind it; then that one moves here (load balancing). A capped
    /// vCPU takes its slice out of its domain's budget.
    pub fn pick_on(&mut self, cpu: usize, now_ns: u64, may_run: impl Fn(VcpuRef) -> bool) -> Pick {
        if now_ns >= self.period_start_ns.saturating_add(CAP_PERIOD_NS) {
            let periods = (now_ns - self.period_start_ns) / CAP_PERIOD_NS;
            self.period_start_ns += periods * CAP_PERIOD_NS;
            self.start_periods(periods);
        }
        if self.cpus > 1 {
            self.bound_lag();
        }
        let period_end = self.period_start_ns + CAP_PERIOD_NS;
        let (mut local, mut remote): (Option<&Entity>, Option<&Entity>) = (None, None);
        for e in &self.entities {
            if !e.runnable
                || !may_run(e.who)
                || Self::budget_ns(e.params).is_some_and(|b| self.domain_used(e.who.domain) >= b)
            {
                continue;
            }
            let best = if e.cpu == cpu { &mut local } else { &mut remote };
            if best.is_none_or(|b| (e.vruntime, e.who) < (b.vruntime, b.who)) {
                *best = Some(e);
            }
        }
        let chosen = match (local, remote) {
            (Some(l), Some(r)) if r.vruntime.saturating_add(self.slice_vruntime(l)) < l.vruntime => Some(r),
            (Some(l), _) => Some(l),
            (None, r) => r,
        };
        let Some(chosen) = chosen.map(|e| (e.who, e.params)) else {
            let capped_waiting = self.entities.iter().any(|e| e.runnable);
            return Pick::Idle { until_ns: capped_waiting.then_some(period_end) };
        };
        let (who, params) = chosen;
        let tslice = u64::from(self.globals.tslice_ms) * 1_000_000;
        let grant = match Self::budget_ns(params) {
            Some(budget) => {
                let left = budget.saturating_sub(self.domain_used(who.domain));
                left.min(tslice).min(period_end.saturating_sub(now_ns).max(1))
            }
            None => tslice,
        };
        let capped = params.cap != 0;
        if let Some(e) = self.find(who) {
            e.cpu = cpu;
            e.woken = false;
            if capped {
                (e.reserved_ns, e.since_ns, e.accounted_ns) = (grant, now_ns, 0);
            }
        }
        Pick::Run { who, until_ns: now_ns + grant }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(domain: usize) -> VcpuRef {
        VcpuRef { domain, vcpu: 0 }
    }

    /// Runs the queue for `total_ns` with every vCPU always busy; returns
    /// ns per domain and ns idle.
    fn simulate(s: &mut Scheduler, n: usize, total_ns: u64) -> (Vec<u64>, u64) {
        let mut ran = alloc::vec![0u64; n];
        let mut idle = 0;
        let mut now = 0;
        while now < total_ns {
            match s.pick(now) {
                Pick::Run { who, until_ns } => {
                    let slice = until_ns - now;
                    s.charge(who, slice);
                    ran[who.domain] += slice;
                    now = until_ns;
                }
                Pick::Idle { until_ns } => {
                    let next = until_ns.expect("busy vCPUs always come back");
                    idle += next - now;
                    now = next;
                }
            }
        }
        (ran, idle)
    }

    #[test]
    fn weights_divide_the_cpu_proportionally() {
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 512, cap: 0 });
        s.add(v(1), SchedParams { weight: 256, cap: 0 });
        let (ran, idle) = simulate(&mut s, 2, 3_000_000_000);
        let ratio = ran[0] as f64 / ran[1] as f64;
        assert!((ratio - 2.0).abs() < 0.2, "ratio {ratio}");
        assert_eq!(idle, 0);
    }

    #[test]
    fn caps_hold_even_with_an_idle_cpu() {
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 256, cap: 25 });
        let (ran, idle) = simulate(&mut s, 1, 3_000_000_000);
        let share = ran[0] as f64 / 3e9;
        assert!((share - 0.25).abs() < 0.01, "share {share}");
        assert!(idle > 0);
    }

    /// As [`simulate`], but every slice overruns its deadline by `late_ns`
    /// (a timer interrupt taken late, as on a loaded emulator).
    fn simulate_late(s: &mut Scheduler, n: usize, total_ns: u64, late_ns: u64) -> Vec<u64> {
        let mut ran = alloc::vec![0u64; n];
        let mut now = 0;
        while now < total_ns {
            match s.pick(now) {
                Pick::Run { who, until_ns } => {
                    let slice = until_ns - now + late_ns;
                    s.charge(who, slice);
                    ran[who.domain] += slice;
                    now += slice;
                }
                Pick::Idle { until_ns } => now = until_ns.expect("busy vCPUs always come back") + late_ns,
            }
        }
        ran
    }

    #[test]
    fn a_cap_holds_when_every_deadline_is_missed() {
        // 2 ms late on a 7.5 ms budget: without carrying the overrun the
        // capped domain would get 9.5 ms of every 30 ms period (32%).
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 256, cap: 25 });
        let ran = simulate_late(&mut s, 1, 3_000_000_000, 2_000_000);
        let share = ran[0] as f64 / 3e9;
        assert!((share - 0.25).abs() < 0.01, "share {share}");
        // Beside an uncapped busy domain the cap is still a ceiling (the
        // other's full slices may keep it below, as a cap is no floor).
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 256, cap: 25 });
        s.add(v(1), SchedParams::default());
        let ran = simulate_late(&mut s, 2, 3_000_000_000, 1_000_000);
        let share = ran[0] as f64 / (ran[0] + ran[1]) as f64;
        assert!(share > 0.15 && share < 0.255, "share {share}");
    }

    #[test]
    fn a_cap_forgives_at_most_one_period_of_debt() {
        // A capped domain that ran 300 ms in one go (a long hypercall)
        // waits one period's worth, not ten, before it runs again.
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 256, cap: 50 });
        assert!(matches!(s.pick(0), Pick::Run { .. }));
        s.charge(v(0), 300_000_000);
        assert_eq!(s.pick(300_000_000), Pick::Idle { until_ns: Some(330_000_000) });
        assert_eq!(s.pick(330_000_000), Pick::Idle { until_ns: Some(360_000_000) });
        assert!(matches!(s.pick(360_000_000), Pick::Run { .. }));
    }

    #[test]
    fn caps_count_all_vcpus_of_a_domain_together() {
        // Cap 50 (half of one CPU) for a domain keeping two vCPUs busy,
        // beside an uncapped one: the capped domain's two vCPUs together
        // get half the CPU, not half each.
        let mut s = Scheduler::new();
        s.add(VcpuRef { domain: 0, vcpu: 0 }, SchedParams { weight: 256, cap: 50 });
        s.add(VcpuRef { domain: 0, vcpu: 1 }, SchedParams { weight: 256, cap: 50 });
        let (ran, idle) = simulate(&mut s, 1, 3_000_000_000);
        let share = ran[0] as f64 / 3e9;
        assert!((share - 0.5).abs() < 0.01, "share {share}");
        assert!(idle > 0);
    }

    #[test]
    fn weights_divide_three_ways_and_ignore_vcpu_counts() {
        // 512 : 256 : 256 with the first domain keeping two vCPUs busy:
        // shares 1/2, 1/4, 1/4 (weights are the domain's, not per vCPU).
        let mut s = Scheduler::new();
        s.add(VcpuRef { domain: 0, vcpu: 0 }, SchedParams { weight: 512, cap: 0 });
        s.add(VcpuRef { domain: 0, vcpu: 1 }, SchedParams { weight: 512, cap: 0 });
        s.add(v(1), SchedParams { weight: 256, cap: 0 });
        s.add(v(2), SchedParams { weight: 256, cap: 0 });
        let (ran, idle) = simulate(&mut s, 3, 6_000_000_000);
        assert_eq!(idle, 0);
        for (d, want) in [(0, 0.5), (1, 0.25), (2, 0.25)] {
            let share = ran[d] as f64 / 6e9;
            assert!((share - want).abs() < 0.01, "domain {d}: share {share}");
        }
    }

    #[test]
    fn a_vcpu_that_blocks_for_moments_does_not_cheapen_its_siblings() {
        // Domain 0 keeps two vCPUs busy, one of which blocks after each
        // run until its sibling ran (a spinlock poll); domain 1 keeps
        // one busy. Equal weights: half the CPU each, not more for the
        // domain whose vCPU blocks.
        let mut s = Scheduler::new();
        s.add(vr(0, 0), SchedParams::default());
        s.add(vr(0, 1), SchedParams::default());
        s.add(v(1), SchedParams::default());
        let mut ran = [0u64; 2];
        let (mut now, mut asleep) = (0, false);
        while now < 3_000_000_000 {
            let Pick::Run { who, until_ns } = s.pick(now) else { panic!("idle") };
            let slice = (until_ns - now).min(2_000_000);
            s.charge(who, slice);
            ran[who.domain] += slice;
            now += slice;
            // Woken once its sibling (the lock holder) ran.
            if asleep && who == vr(0, 0) {
                s.wake(vr(0, 1));
                asleep = false;
            }
            if who == vr(0, 1) {
                s.sleep(who);
                asleep = true;
            }
        }
        let share = ran[0] as f64 / now as f64;
        assert!((share - 0.5).abs() < 0.025, "share {share}");
    }

    #[test]
    fn sleepers_do_not_bank_credit_and_idle_when_none_runs() {
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams::default());
        s.add(v(1), SchedParams::default());
        s.sleep(v(1));
        simulate(&mut s, 2, 1_000_000_000);
        s.wake(v(1));
        // After waking, the two alternate rather than v1 monopolising the CPU.
        let (ran, _) = simulate(&mut s, 2, 600_000_000);
        assert!(ran[1] <= 330_000_000, "v1 ran {}", ran[1]);
        s.sleep(v(0));
        s.sleep(v(1));
        assert_eq!(s.pick(0), Pick::Idle { until_ns: None });
        s.remove(v(0));
        assert_eq!(s.params(0), None);
    }

    #[test]
    fn yield_lets_the_others_run_first() {
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams::default());
        s.add(v(1), SchedParams::default());
        assert!(matches!(s.pick(0), Pick::Run { who, .. } if who == v(0)));
        s.yield_now(v(0));
        assert!(matches!(s.pick(0), Pick::Run { who, .. } if who == v(1)));
    }

    #[test]
    fn a_woken_vcpu_preempts_one_that_has_run_but_not_one_ahead_of_it() {
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams::default());
        s.add(v(1), SchedParams::default());
        s.sleep(v(1));
        assert!(!s.wake_preempts(v(0), 1_000_000, v(1)), "still blocked");
        s.wake(v(1));
        assert!(s.wake_preempts(v(0), 1_000_000, v(1)), "the running one is charged first");
        assert!(!s.wake_preempts(v(1), 1_000_000, v(1)), "not itself");
        // v1 ran far ahead (a CPU hog); woken, it waits for its turn.
        s.charge(v(1), 500_000_000);
        assert!(!s.wake_preempts(v(0), 1_000_000, v(1)));
        // Once charged, the pick agrees with the verdict.
        s.charge(v(0), 1_000_000);
        assert!(matches!(s.pick(0), Pick::Run { who, .. } if who == v(0)));
        // A capped vCPU out of budget does not preempt.
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams::default());
        s.add(v(1), SchedParams { weight: 256, cap: 10 });
        s.charge(v(1), 3_000_000);
        s.charge(v(0), 4_000_000);
        assert!(!s.wake_preempts(v(0), 1_000_000, v(1)));
        assert_eq!(s.ratelimit_ns(), 1_000_000, "Xen's default 1000 µs");
    }

    #[test]
    fn eligible_is_what_a_pick_would_consider_and_cpus_are_counted() {
        let mut s = Scheduler::new();
        assert_eq!((s.nr_cpus(), s.online_mask()), (1, 1), "one CPU until told");
        s.set_cpus(2);
        assert_eq!((s.nr_cpus(), s.online_mask()), (2, 0b11));
        s.add(v(0), SchedParams { weight: 256, cap: 10 });
        assert!(s.eligible(v(0)));
        s.charge_on(1, v(0), 3_000_000);
        assert!(!s.eligible(v(0)), "its cap is spent");
        assert_eq!(s.pick_on(0, 0, |_| true), Pick::Idle { until_ns: Some(CAP_PERIOD_NS) });
        assert_eq!((s.busy_ns(0), s.busy_ns(1)), (0, 3_000_000));
        s.sleep(v(0));
        assert!(!s.eligible(v(0)) && !s.eligible(v(1)), "asleep, unknown");
        // A pick on a CPU a vCPU may not use passes it over.
        s.add(v(1), SchedParams::default());
        assert!(matches!(s.pick_on(0, CAP_PERIOD_NS, |who| who != v(1)), Pick::Idle { .. }));
        assert!(matches!(s.pick_on(0, CAP_PERIOD_NS, |_| true), Pick::Run { who, .. } if who == v(1)));
    }

    /// What [`simulate_smp`] measured.
    struct SmpRun {
        /// ns each domain ran.
        ran: Vec<u64>,
        /// ns each domain ran on each CPU.
        ran_on: Vec<Vec<u64>>,
        /// ns the CPUs idled, together.
        idle: u64,
        /// How often a vCPU changed CPU.
        moves: u64,
    }

    /// Runs `cpus` CPUs for `total_ns` with every runnable vCPU always busy,
    /// each CPU rescheduling at the end of what it was given; `allowed`
    /// gives each vCPU's hard affinity (bit n = CPU n). Checks on every
    /// pick that the vCPU runs on no other CPU and may run on this one,
    /// and that a CPU idles only when nothing it may run waits.
    fn simulate_smp(
        s: &mut Scheduler,
        cpus: usize,
        n: usize,
        total_ns: u64,
        allowed: impl Fn(VcpuRef) -> u64,
    ) -> SmpRun {
        simulate_smp_late(s, cpus, n, total_ns, 0, allowed)
    }

    /// [`simulate_smp`], each slice ending `late_ns` after its deadline
    /// (a busy CPU's timer taken late), idle CPUs waking on time.
    fn simulate_smp_late(
        s: &mut Scheduler,
        cpus: usize,
        n: usize,
        total_ns: u64,
        late_ns: u64,
        allowed: impl Fn(VcpuRef) -> u64,
    ) -> SmpRun {
        s.set_cpus(cpus);
        let mut run =
            SmpRun { ran: alloc::vec![0; n], ran_on: alloc::vec![alloc::vec![0; cpus]; n], idle: 0, moves: 0 };
        let mut on: Vec<Option<(VcpuRef, u64)>> = alloc::vec![None; cpus];
        let mut next: Vec<u64> = alloc::vec![0; cpus];
        let mut last_cpu: Vec<(VcpuRef, usize)> = Vec::new();
        while let Some((cpu, &now)) = next.iter().enumerate().min_by_key(|(c, t)| (**t, *c)) {
            if now >= total_ns {
                break;
            }
            if let Some((who, start)) = on[cpu].take() {
                s.charge_on(cpu, who, now - start);
                run.ran[who.domain] += now - start;
                run.ran_on[who.domain][cpu] += now - start;
            }
            let busy: Vec<VcpuRef> = on.iter().flatten().map(|(w, _)| *w).collect();
            let may = |w: VcpuRef| allowed(w) & (1 << cpu) != 0 && !busy.contains(&w);
            match s.pick_on(cpu, now, may) {
                Pick::Run { who, until_ns } => {
                    assert!(!busy.contains(&who), "{who:?} on two CPUs at once");
                    assert!(allowed(who) & (1 << cpu) != 0, "{who:?} on CPU {cpu} against its affinity");
                    assert_eq!(s.queue_of(who), Some(cpu), "picked onto this CPU's queue");
                    match last_cpu.iter_mut().find(|(w, _)| *w == who) {
                        Some((_, c)) if *c != cpu => {
                            run.moves += 1;
                            *c = cpu;
                        }
                        Some(_) => {}
                        None => last_cpu.push((who, cpu)),
                    }
                    on[cpu] = Some((who, now));
                    next[cpu] = (until_ns + late_ns).min(total_ns);
                }
                Pick::Idle { until_ns } => {
                    let lost = s.entities.iter().find(|e| may(e.who) && s.eligible(e.who));
                    assert!(lost.is_none(), "CPU {cpu} idles while {lost:?} waits");
                    let until = until_ns.unwrap_or(total_ns).min(total_ns);
                    run.idle += until - now;
                    next[cpu] = until;
                }
            }
        }
        run
    }

    fn vr(domain: usize, vcpu: usize) -> VcpuRef {
        VcpuRef { domain, vcpu }
    }

    /// Asserts that `got` ns of `total` machine ns are `want` CPUs' worth,
    /// within 5% of `want`.
    fn assert_cpus(got: u64, total: u64, want: f64, what: &str) {
        let cpus = got as f64 / total as f64;
        assert!((cpus - want).abs() <= want * 0.05, "{what}: {cpus:.3} CPUs, want {want:.3}");
    }

    const SIM_NS: u64 = 6_000_000_000;

    #[test]
    fn weights_hold_across_two_cpus_as_far_as_each_vcpu_can_use_one() {
        // 512 : 256 : 256, one busy vCPU each, two CPUs: 1, 0.5, 0.5 CPUs
        // (the heavy one's fair 1.0 is all one vCPU can use).
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 512, cap: 0 });
        s.add(v(1), SchedParams { weight: 256, cap: 0 });
        s.add(v(2), SchedParams { weight: 256, cap: 0 });
        let run = simulate_smp(&mut s, 2, 3, SIM_NS, |_| u64::MAX);
        assert_eq!(run.idle, 0);
        for (d, want) in [(0, 1.0), (1, 0.5), (2, 0.5)] {
            assert_cpus(run.ran[d], SIM_NS, want, &alloc::format!("domain {d}"));
        }
        // 1024 : 256 : 256: the heavy one cannot use its 4/3 CPUs; the
        // others split what it leaves, and it does not fall behind for
        // ever (its lag is bounded) to take more later.
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 1024, cap: 0 });
        s.add(v(1), SchedParams { weight: 256, cap: 0 });
        s.add(v(2), SchedParams { weight: 256, cap: 0 });
        let run = simulate_smp(&mut s, 2, 3, SIM_NS, |_| u64::MAX);
        for (d, want) in [(0, 1.0), (1, 0.5), (2, 0.5)] {
            assert_cpus(run.ran[d], SIM_NS, want, &alloc::format!("domain {d}"));
        }
        let spread =
            s.entities.iter().map(|e| e.vruntime).max().unwrap() - s.entities.iter().map(|e| e.vruntime).min().unwrap();
        assert!(spread <= 4 * 30_000_000, "lag {spread}");
    }

    #[test]
    fn weights_of_two_vcpu_domains_hold_across_two_cpus() {
        // Two domains keeping two vCPUs busy each, 512 : 256 on two CPUs:
        // 4/3 and 2/3 of a CPU; and the vCPUs mostly stay where they ran.
        let mut s = Scheduler::new();
        for vcpu in 0..2 {
            s.add(vr(0, vcpu), SchedParams { weight: 512, cap: 0 });
            s.add(vr(1, vcpu), SchedParams { weight: 256, cap: 0 });
        }
        let run = simulate_smp(&mut s, 2, 2, SIM_NS, |_| u64::MAX);
        assert_eq!(run.idle, 0);
        assert_cpus(run.ran[0], SIM_NS, 4.0 / 3.0, "w512");
        assert_cpus(run.ran[1], SIM_NS, 2.0 / 3.0, "w256");
        let picks = SIM_NS / TIME_SLICE_NS * 2;
        assert!(run.moves < picks / 2, "{} moves in about {picks} picks", run.moves);
    }

    #[test]
    fn weights_hold_across_four_cpus() {
        // Five single-vCPU domains on four CPUs, one of weight 512: it gets
        // one CPU (its fair 4/3 is more than one vCPU can use), the four
        // others share the remaining three equally.
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 512, cap: 0 });
        for d in 1..5 {
            s.add(v(d), SchedParams::default());
        }
        let run = simulate_smp(&mut s, 4, 5, SIM_NS, |_| u64::MAX);
        assert_eq!(run.idle, 0);
        assert_cpus(run.ran[0], SIM_NS, 1.0, "w512");
        for d in 1..5 {
            assert_cpus(run.ran[d], SIM_NS, 0.75, &alloc::format!("domain {d}"));
        }
        // Eight vCPUs of two domains 2:1 on four CPUs: 8/3 and 4/3 CPUs.
        let mut s = Scheduler::new();
        for vcpu in 0..4 {
            s.add(vr(0, vcpu), SchedParams { weight: 512, cap: 0 });
            s.add(vr(1, vcpu), SchedParams { weight: 256, cap: 0 });
        }
        let run = simulate_smp(&mut s, 4, 2, SIM_NS, |_| u64::MAX);
        assert_cpus(run.ran[0], SIM_NS, 8.0 / 3.0, "w512");
        assert_cpus(run.ran[1], SIM_NS, 4.0 / 3.0, "w256");
    }

    #[test]
    fn caps_are_in_percent_of_one_cpu_across_all_cpus() {
        // cap 150 on a domain keeping two vCPUs busy, alone on two CPUs:
        // one and a half CPUs, the rest idle.
        let mut s = Scheduler::new();
        s.add(vr(0, 0), SchedParams { weight: 256, cap: 150 });
        s.add(vr(0, 1), SchedParams { weight: 256, cap: 150 });
        let run = simulate_smp(&mut s, 2, 1, SIM_NS, |_| u64::MAX);
        assert_cpus(run.ran[0], SIM_NS, 1.5, "cap 150");
        assert_cpus(run.idle, SIM_NS, 0.5, "idle");
        // cap 25 beside an uncapped busy domain, two CPUs: a quarter of one
        // CPU although a CPU is idle part of the time.
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams { weight: 256, cap: 25 });
        s.add(v(1), SchedParams::default());
        let run = simulate_smp(&mut s, 2, 2, SIM_NS, |_| u64::MAX);
        assert_cpus(run.ran[0], SIM_NS, 0.25, "cap 25");
        assert_cpus(run.ran[1], SIM_NS, 1.0, "uncapped");
        // cap 50 on a two-vCPU domain beside an uncapped two-vCPU one of
        // the same weight: 0.5 and 1.5 CPUs.
        let mut s = Scheduler::new();
        for vcpu in 0..2 {
            s.add(vr(0, vcpu), SchedParams { weight: 256, cap: 50 });
            s.add(vr(1, vcpu), SchedParams::default());
        }
        let run = simulate_smp(&mut s, 2, 2, SIM_NS, |_| u64::MAX);
        assert_cpus(run.ran[0], SIM_NS, 0.5, "cap 50");
        assert_cpus(run.ran[1], SIM_NS, 1.5, "uncapped");
        // The same when the busy CPUs' timers fire late, so that the idle
        // CPU starts each new period before the running vCPU is charged
        // for the end of the old one.
        let mut s = Scheduler::new();
        s.add(vr(0, 0), SchedParams { weight: 256, cap: 150 });
        s.add(vr(0, 1), SchedParams { weight: 256, cap: 150 });
        let run = simulate_smp_late(&mut s, 2, 1, SIM_NS, 200_000, |_| u64::MAX);
        assert_cpus(run.ran[0], SIM_NS, 1.5, "cap 150, timers late");
        // cap 150 on four CPUs with four busy vCPUs.
        let mut s = Scheduler::new();
        for vcpu in 0..4 {
            s.add(vr(0, vcpu), SchedParams { weight: 256, cap: 150 });
        }
        let run = simulate_smp(&mut s, 4, 1, SIM_NS, |_| u64::MAX);
        assert_cpus(run.ran[0], SIM_NS, 1.5, "cap 150 on four CPUs");
    }

    #[test]
    fn a_hard_affinity_is_respected_and_the_rest_balance_around_it() {
        // Three equal domains on two CPUs, the first pinned to CPU 1: each
        // gets 2/3 of a CPU, the pinned one only ever on CPU 1 (the
        // simulation checks every pick against the affinity).
        let mut s = Scheduler::new();
        for d in 0..3 {
            s.add(v(d), SchedParams::default());
        }
        let run = simulate_smp(&mut s, 2, 3, SIM_NS, |w| if w.domain == 0 { 0b10 } else { u64::MAX });
        assert_eq!(run.ran_on[0][0], 0);
        for d in 0..3 {
            assert_cpus(run.ran[d], SIM_NS, 2.0 / 3.0, &alloc::format!("domain {d}"));
        }
        // Pinned to CPU 0 alone, two domains: they share CPU 0 and CPU 1
        // idles (nothing may run there).
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams::default());
        s.add(v(1), SchedParams::default());
        let run = simulate_smp(&mut s, 2, 2, SIM_NS, |_| 0b01);
        assert_eq!((run.ran_on[0][1], run.ran_on[1][1]), (0, 0));
        assert_cpus(run.ran[0], SIM_NS, 0.5, "domain 0");
        assert_cpus(run.idle, SIM_NS, 1.0, "CPU 1 idles");
    }

    #[test]
    fn an_idle_cpu_steals_from_a_busy_ones_queue_and_a_wake_is_reported_once() {
        let mut s = Scheduler::new();
        s.add(v(0), SchedParams::default());
        s.add(v(1), SchedParams::default());
        s.set_cpus(2);
        // Both single-vCPU domains start on CPU 0's queue.
        assert_eq!((s.queue_of(v(0)), s.queue_of(v(1))), (Some(0), Some(0)));
        assert!(matches!(s.pick_on(0, 0, |_| true), Pick::Run { who, .. } if who == v(0)));
        // CPU 1 has nothing of its own: it takes v1 from CPU 0's queue.
        assert!(matches!(s.pick_on(1, 0, |w| w != v(0)), Pick::Run { who, .. } if who == v(1)));
        assert_eq!(s.queue_of(v(1)), Some(1));
        // A CPU with its own work does not take a vCPU that is not far
        // behind: v0, waiting on CPU 0's queue, stays there.
        s.charge_on(1, v(1), 1_000_000);
        s.charge_on(0, v(0), 2_000_000);
        assert!(matches!(s.pick_on(1, 2_000_000, |_| true), Pick::Run { who, .. } if who == v(1)));
        // ... unless it is a slice behind or more.
        s.charge_on(1, v(1), 2 * TIME_SLICE_NS);
        assert!(matches!(s.pick_on(1, 70_000_000, |w| w != v(1)), Pick::Run { who, .. } if who == v(0)));
        assert_eq!(s.queue_of(v(0)), Some(1));
        // Wakes are reported once each, and only of vCPUs still runnable.
        let mut woken = Vec::new();
        s.sleep(v(0));
        s.sleep(v(1));
        s.wake(v(0));
        s.wake(v(0));
        s.wake(v(1));
        s.sleep(v(1));
        s.take_woken(&mut woken);
        assert_eq!(woken, [v(0)]);
        woken.clear();
        s.take_woken(&mut woken);
        assert!(woken.is_empty());
        s.move_to(v(0), 7);
        assert_eq!(s.queue_of(v(0)), Some(1), "clamped to the CPUs that run guests");
    }

    #[test]
    fn blocking_and_waking_vcpus_on_three_cpus_are_never_lost() {
        // vCPUs that block and wake at random on three CPUs: every CPU
        // that idles has nothing it may run (checked on every pick), and
        // every vCPU runs.
        let mut s = Scheduler::new();
        for d in 0..6 {
            s.add(v(d), SchedParams { weight: 128 * (d as u16 + 1), cap: if d == 5 { 30 } else { 0 } });
        }
        s.set_cpus(3);
        let mut seed = 0x1234_5678u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut ran = [0u64; 6];
        let mut on: [Option<VcpuRef>; 3] = [None; 3];
        for step in 0..20_000u64 {
            let now = step * 100_000;
            let cpu = (rand() % 3) as usize;
            if let Some(who) = on[cpu].take() {
                s.charge_on(cpu, who, 100_000);
                ran[who.domain] += 1;
                if rand() % 4 == 0 {
                    s.sleep(who);
                }
            }
            let d = (rand() % 6) as usize;
            if !on.contains(&Some(v(d))) {
                s.wake(v(d));
            }
            let busy = on;
            let may = |w: VcpuRef| !busy.contains(&Some(w));
            match s.pick_on(cpu, now, may) {
                Pick::Run { who, .. } => on[cpu] = Some(who),
                Pick::Idle { .. } => {
                    let lost = s.entities.iter().find(|e| may(e.who) && s.eligible(e.who));
                    assert!(lost.is_none(), "CPU {cpu} idles while {lost:?} waits");
                }
            }
        }
        assert!(ran.iter().all(|&n| n > 0), "{ran:?}");
    }

    #[test]
    fn parameters_are_validated() {
        assert_eq!(SchedParams { weight: 0, cap: 0 }.validate(1), Err(ParamError::ZeroWeight));
        assert_eq!(SchedParams { weight: 1, cap: 101 }.validate(1), Err(ParamError::CapTooLarge));
        assert!(SchedParams { weight: 65535, cap: 200 }.validate(2).is_ok());
    }
}
