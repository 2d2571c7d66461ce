//! The scheduler: which vCPU runs next and for how long.
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
//!   vCPUs each keeps busy;
//! - a capped domain may run at most `cap`% of one CPU in each accounting
//!   period, all its vCPUs together; once that budget is spent they wait
//!   for the next period even if the CPU would otherwise idle;
//! - a vCPU runs for at most one time slice before the others are
//!   considered again (preemption); with nothing runnable the CPU idles.
//!
//! Entities are identified by an opaque [`VcpuRef`]; the scheduler knows
//! nothing of domains beyond their parameters.

use alloc::vec::Vec;

/// Default weight of a domain (Xen's `CSCHED_DEFAULT_WEIGHT`).
pub const DEFAULT_WEIGHT: u16 = 256;
/// Longest a vCPU runs before the scheduler reconsiders, by default (Xen's
/// default credit time slice is 30 ms; the toolstack may change it).
pub const TIME_SLICE_NS: u64 = 30_000_000;
/// Length of the accounting period over which caps are enforced.
pub const CAP_PERIOD_NS: u64 = 30_000_000;

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
}

/// The run queue, shared by every CPU that runs guests.
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
/// migration delay is kept and reported only (one CPU: nothing migrates).
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

    /// Lets vCPUs run on CPUs 0..`cpus` (at least one, at most 64).
    pub fn set_cpus(&mut self, cpus: usize) {
        self.cpus = cpus.clamp(1, 64);
        self.busy_ns.resize(self.cpus, 0);
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

    fn min_vruntime(&self) -> u128 {
        self.entities.iter().filter(|e| e.runnable).map(|e| e.vruntime).min().unwrap_or(0)
    }

    /// Adds a vCPU (runnable) with its domain's parameters.
    pub fn add(&mut self, who: VcpuRef, params: SchedParams) {
        let vruntime = self.min_vruntime();
        self.entities.push(Entity { who, params, runnable: true, vruntime, used_in_period: 0 });
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
                e.vruntime = e.vruntime.max(floor);
            }
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
        let (Some(c), Some(w)) =
            (self.entities.iter().find(|e| e.who == current), self.entities.iter().find(|e| e.who == woken))
        else {
            return false;
        };
        if !w.runnable || Self::budget_ns(w.params).is_some_and(|b| w.used_in_period >= b) {
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
    /// [`Self::pick`] would consider now.
    pub fn eligible(&self, who: VcpuRef) -> bool {
        self.entities
            .iter()
            .find(|e| e.who == who)
            .is_some_and(|e| e.runnable && Self::budget_ns(e.params).is_none_or(|b| self.domain_used(who.domain) < b))
    }

    /// Marks a vCPU not runnable (blocked, paused or shut down).
    pub fn sleep(&mut self, who: VcpuRef) {
        if let Some(e) = self.find(who) {
            e.runnable = false;
        }
    }

    /// `SCHEDOP_yield`: `who` goes behind every other runnable vCPU.
    pub fn yield_now(&mut self, who: VcpuRef) {
        let last = self.entities.iter().filter(|e| e.runnable).map(|e| e.vruntime).max().unwrap_or(0);
        if let Some(e) = self.find(who) {
            e.vruntime = e.vruntime.max(last + 1);
        }
    }

    /// How many of `domain`'s vCPUs are runnable (at least 1).
    fn active(&self, domain: usize) -> u128 {
        self.entities.iter().filter(|e| e.who.domain == domain && e.runnable).count().max(1) as u128
    }

    /// What `domain`'s vCPUs together used of the current cap period.
    fn domain_used(&self, domain: usize) -> u64 {
        self.entities.iter().filter(|e| e.who.domain == domain).map(|e| e.used_in_period).fold(0, u64::saturating_add)
    }

    /// [`Self::charge`], `ran_ns` having been spent on `cpu` (counted in
    /// [`Self::busy_ns`]).
    pub fn charge_on(&mut self, cpu: usize, who: VcpuRef, ran_ns: u64) {
        if self.busy_ns.len() <= cpu && cpu < 64 {
            self.busy_ns.resize(cpu + 1, 0);
        }
        if let Some(b) = self.busy_ns.get_mut(cpu) {
            *b = b.saturating_add(ran_ns);
        }
        self.charge(who, ran_ns);
    }

    /// Charges `ran_ns` of CPU time to `who`: its virtual runtime advances
    /// as if its domain's weight were divided among its runnable vCPUs.
    pub fn charge(&mut self, who: VcpuRef, ran_ns: u64) {
        let active = self.active(who.domain);
        if let Some(e) = self.find(who) {
            let weight = u128::from(e.params.weight.max(1));
            e.vruntime += u128::from(ran_ns) * u128::from(DEFAULT_WEIGHT) * active / weight;
            e.used_in_period = e.used_in_period.saturating_add(ran_ns);
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
    /// the period afresh.
    fn start_periods(&mut self, periods: u64) {
        let mut debts: Vec<(usize, u64)> = Vec::new();
        for e in &self.entities {
            if let Some(budget) = Self::budget_ns(e.params) {
                if !debts.iter().any(|&(d, _)| d == e.who.domain) {
                    let over = self.domain_used(e.who.domain).saturating_sub(budget.saturating_mul(periods));
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

    /// Chooses what runs at system time `now_ns`.
    pub fn pick(&mut self, now_ns: u64) -> Pick {
        self.pick_where(now_ns, |_| true)
    }

    /// Chooses what runs at system time `now_ns` among the vCPUs `may_run`
    /// accepts (on several CPUs: not those another CPU runs).
    pub fn pick_where(&mut self, now_ns: u64, may_run: impl Fn(VcpuRef) -> bool) -> Pick {
        if now_ns >= self.period_start_ns.saturating_add(CAP_PERIOD_NS) {
            let periods = (now_ns - self.period_start_ns) / CAP_PERIOD_NS;
            self.period_start_ns += periods * CAP_PERIOD_NS;
            self.start_periods(periods);
        }
        let period_end = self.period_start_ns + CAP_PERIOD_NS;
        let best = self
            .entities
            .iter()
            .filter(|e| e.runnable && may_run(e.who))
            .filter(|e| Self::budget_ns(e.params).is_none_or(|b| self.domain_used(e.who.domain) < b))
            .min_by_key(|e| (e.vruntime, e.who));
        match best {
            Some(e) => {
                let mut until = now_ns + u64::from(self.globals.tslice_ms) * 1_000_000;
                if let Some(budget) = Self::budget_ns(e.params) {
                    let left = budget.saturating_sub(self.domain_used(e.who.domain));
                    until = until.min(now_ns + left).min(period_end.max(now_ns + 1));
                }
                Pick::Run { who: e.who, until_ns: until }
            }
            None => {
                let capped_waiting = self.entities.iter().any(|e| e.runnable);
                Pick::Idle { until_ns: capped_waiting.then_some(period_end) }
            }
        }
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
        assert_eq!(s.pick_where(0, |_| true), Pick::Idle { until_ns: Some(CAP_PERIOD_NS) });
        assert_eq!((s.busy_ns(0), s.busy_ns(1)), (0, 3_000_000));
        s.sleep(v(0));
        assert!(!s.eligible(v(0)) && !s.eligible(v(1)), "asleep, unknown");
        // A pick on a CPU a vCPU may not use passes it over.
        s.add(v(1), SchedParams::default());
        assert!(matches!(s.pick_where(CAP_PERIOD_NS, |who| who != v(1)), Pick::Idle { .. }));
        assert!(matches!(s.pick_where(CAP_PERIOD_NS, |_| true), Pick::Run { who, .. } if who == v(1)));
    }

    #[test]
    fn parameters_are_validated() {
        assert_eq!(SchedParams { weight: 0, cap: 0 }.validate(1), Err(ParamError::ZeroWeight));
        assert_eq!(SchedParams { weight: 1, cap: 101 }.validate(1), Err(ParamError::CapTooLarge));
        assert!(SchedParams { weight: 65535, cap: 200 }.validate(2).is_ok());
    }
}
