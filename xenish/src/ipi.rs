//! Cross-CPU signalling, the portable half: CPU masks, the per-CPU softirq
//! words that an event-check IPI makes a CPU look at, and the TLB
//! shootdown protocol a flush IPI carries out. The arch layer
//! (`arch::x86_64::ipi`) sends the interrupts and flushes the TLB; the
//! rules here are host-tested with real threads.
//!
//! The rules, as in Xen (`softirq.c`, `smp.c::flush_area_mask`):
//! - Raising a softirq sets its bit in the target's word first; only the
//!   raiser that turned the bit on sends the IPI (one already set means an
//!   IPI is on its way or the target has not looked yet).
//! - A CPU about to halt checks its word with interrupts off and halts
//!   with `sti; hlt`, so a raise after the check is taken by the halt
//!   (the IPI stays pending until `sti`): no wake-up is lost.
//! - One shootdown at a time (the gate's lock); the initiator publishes
//!   the flush, signals every target, and spins until each has flushed
//!   and cleared its bit. Hypervisor code runs with interrupts off, so a
//!   CPU that spins (for the gate, for a shootdown to finish, or for any
//!   lock another CPU may hold while it shoots down) also carries out a
//!   flush addressed to itself: two CPUs waiting on each other's flush
//!   cannot deadlock (gotcha 7 of the SMP reference).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Softirq: look at the scheduler again (a vCPU became runnable, or an
/// event was sent to a vCPU that runs here).
pub const SOFTIRQ_SCHEDULE: u32 = 1 << 0;
/// Softirq: the boot CPU's IPI check pings this CPU, which answers with
/// [`SOFTIRQ_PONG`] on the boot CPU.
pub const SOFTIRQ_PING: u32 = 1 << 1;
/// Softirq: the answer to [`SOFTIRQ_PING`].
pub const SOFTIRQ_PONG: u32 = 1 << 2;

/// Flush the whole (non-global) TLB.
pub const FLUSH_TLB: u32 = 1 << 0;
/// Flush the one page at the published address.
pub const FLUSH_PAGE: u32 = 1 << 1;

/// A set of CPUs by index (at most 64; xenish starts at most
/// `percpu::MAX_CPUS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuMask(pub u64);

impl CpuMask {
    /// No CPU.
    pub const EMPTY: CpuMask = CpuMask(0);

    /// The mask of `cpu` alone (empty if out of range).
    pub fn of(cpu: usize) -> CpuMask {
        CpuMask(if cpu < 64 { 1 << cpu } else { 0 })
    }

    /// CPUs `0..n`.
    pub fn first(n: usize) -> CpuMask {
        CpuMask(if n >= 64 { u64::MAX } else { (1u64 << n) - 1 })
    }

    /// Whether `cpu` is in the set.
    pub fn contains(self, cpu: usize) -> bool {
        cpu < 64 && self.0 & (1 << cpu) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set with `cpu` added.
    pub fn with(self, cpu: usize) -> CpuMask {
        CpuMask(self.0 | CpuMask::of(cpu).0)
    }

    /// The set with `cpu` taken out.
    pub fn without(self, cpu: usize) -> CpuMask {
        CpuMask(self.0 & !CpuMask::of(cpu).0)
    }

    /// The CPUs in either set.
    pub fn or(self, other: CpuMask) -> CpuMask {
        CpuMask(self.0 | other.0)
    }

    /// The CPUs in both sets.
    pub fn and(self, other: CpuMask) -> CpuMask {
        CpuMask(self.0 & other.0)
    }

    /// The CPUs in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let cpu = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(cpu)
        })
    }

    /// How many CPUs are in the set.
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }
}

/// A [`CpuMask`] several CPUs update (a domain's dirty CPUs, the CPUs a
/// shootdown still waits for).
#[derive(Debug, Default)]
pub struct AtomicCpuMask(AtomicU64);

impl AtomicCpuMask {
    /// An empty mask.
    pub const fn new() -> AtomicCpuMask {
        AtomicCpuMask(AtomicU64::new(0))
    }

    /// The set now.
    pub fn load(&self) -> CpuMask {
        CpuMask(self.0.load(Ordering::Acquire))
    }

    /// Replaces the set.
    pub fn store(&self, mask: CpuMask) {
        self.0.store(mask.0, Ordering::Release);
    }

    /// Adds `cpu`.
    pub fn set(&self, cpu: usize) {
        self.0.fetch_or(CpuMask::of(cpu).0, Ordering::AcqRel);
    }

    /// Takes `cpu` out.
    pub fn clear(&self, cpu: usize) {
        self.0.fetch_and(!CpuMask::of(cpu).0, Ordering::AcqRel);
    }
}

/// The pending-softirq word of each of `N` CPUs.
pub struct Softirqs<const N: usize> {
    pending: [AtomicU32; N],
}

impl<const N: usize> Default for Softirqs<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Softirqs<N> {
    /// No softirq pending anywhere.
    pub const fn new() -> Self {
        Softirqs { pending: [const { AtomicU32::new(0) }; N] }
    }

    /// Marks softirqs `bits` pending on `cpu`; whether the caller must send
    /// `cpu` an event-check IPI (some bit was newly set, and `cpu` is not
    /// `from`, which looks at its own word before it returns or halts).
    pub fn raise(&self, cpu: usize, bits: u32, from: usize) -> bool {
        let Some(word) = self.pending.get(cpu) else { return false };
        let old = word.fetch_or(bits, Ordering::AcqRel);
        cpu != from && old & bits != bits
    }

    /// Takes the softirqs pending on `cpu` (leaving none).
    pub fn take(&self, cpu: usize) -> u32 {
        self.pending.get(cpu).map_or(0, |w| w.swap(0, Ordering::AcqRel))
    }

    /// Takes only `bits` of those pending on `cpu`; which of them were.
    pub fn take_bits(&self, cpu: usize, bits: u32) -> u32 {
        self.pending.get(cpu).map_or(0, |w| w.fetch_and(!bits, Ordering::AcqRel) & bits)
    }

    /// Whether any softirq is pending on `cpu` (the haltable check).
    pub fn pending(&self, cpu: usize) -> bool {
        self.pending.get(cpu).is_some_and(|w| w.load(Ordering::Acquire) != 0)
    }
}

/// What a shootdown flushes: [`FLUSH_TLB`] and/or [`FLUSH_PAGE`] of `va`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushRequest {
    /// `FLUSH_*` bits.
    pub flags: u32,
    /// The page for [`FLUSH_PAGE`].
    pub va: u64,
}

/// One TLB shootdown at a time: what to flush, and which CPUs have not
/// yet (Xen's `flush_lock`, `flush_cpumask`, `flush_va`, `flush_flags`).
#[derive(Debug, Default)]
pub struct FlushGate {
    busy: AtomicBool,
    waiting: AtomicCpuMask,
    flags: AtomicU32,
    va: AtomicU64,
}

impl FlushGate {
    /// An idle gate.
    pub const fn new() -> FlushGate {
        FlushGate {
            busy: AtomicBool::new(false),
            waiting: AtomicCpuMask::new(),
            flags: AtomicU32::new(0),
            va: AtomicU64::new(0),
        }
    }

    /// Whether a flush addressed to `cpu` waits for it.
    pub fn pending_for(&self, cpu: usize) -> bool {
        self.waiting.load().contains(cpu)
    }

    /// Carries out a flush addressed to `cpu`, if one is: `flush(flags,
    /// va)` flushes the local TLB, then `cpu` is taken out of the waiting
    /// set. Whether there was one. Called by the flush IPI's handler and
    /// by every spin loop of hypervisor code.
    pub fn service(&self, cpu: usize, flush: &mut impl FnMut(u32, u64)) -> bool {
        if !self.waiting.load().contains(cpu) {
            return false;
        }
        // The initiator published flags and va before it added us.
        flush(self.flags.load(Ordering::Acquire), self.va.load(Ordering::Acquire));
        self.waiting.clear(cpu);
        true
    }

    /// Shoots down the TLB entries `req` names on `mask` from CPU `me`:
    /// flushes locally if `me` is in it, then (one shootdown at a time)
    /// signals the others with `signal` and waits until each has flushed.
    /// While it waits it serves flushes addressed to `me` and calls
    /// `relax` (a pause, or a poll of other per-CPU work).
    pub fn flush_mask(
        &self,
        me: usize,
        mask: CpuMask,
        req: FlushRequest,
        flush: &mut impl FnMut(u32, u64),
        signal: &mut impl FnMut(CpuMask),
        relax: &mut impl FnMut(),
    ) {
        let FlushRequest { flags, va } = req;
        if mask.contains(me) {
            flush(flags, va);
        }
        let others = mask.without(me);
        if others.is_empty() {
            return;
        }
        while self.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.service(me, flush);
            relax();
        }
        self.flags.store(flags, Ordering::Release);
        self.va.store(va, Ordering::Release);
        self.waiting.store(others);
        signal(others);
        while !self.waiting.load().is_empty() {
            relax();
        }
        self.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};

    #[test]
    fn masks() {
        let m = CpuMask::EMPTY.with(0).with(3).with(63).with(64);
        assert_eq!(m.iter().collect::<Vec<_>>(), [0, 3, 63]);
        assert_eq!(m.count(), 3);
        assert!(m.contains(3) && !m.contains(2) && !m.contains(64));
        assert_eq!(m.without(3).without(200), CpuMask::EMPTY.with(0).with(63));
        assert_eq!(CpuMask::first(2), CpuMask(0b11));
        assert_eq!(CpuMask::first(64), CpuMask(u64::MAX));
        assert_eq!(CpuMask::first(0), CpuMask::EMPTY);
        assert_eq!(m.and(CpuMask::first(4)).iter().collect::<Vec<_>>(), [0, 3]);
        let a = AtomicCpuMask::new();
        a.set(1);
        a.set(5);
        a.clear(1);
        a.clear(99);
        assert_eq!(a.load(), CpuMask::of(5));
    }

    #[test]
    fn only_the_first_raise_sends_an_ipi_and_never_to_self() {
        let s = Softirqs::<4>::new();
        assert!(s.raise(1, SOFTIRQ_SCHEDULE, 0));
        assert!(!s.raise(1, SOFTIRQ_SCHEDULE, 0), "already pending: the first IPI covers it");
        assert!(s.raise(1, SOFTIRQ_PING, 0), "a new bit needs a look");
        assert!(!s.raise(2, SOFTIRQ_PING, 2), "no IPI to oneself");
        assert!(!s.raise(9, SOFTIRQ_PING, 0), "no such CPU");
        assert!(s.pending(1) && s.pending(2) && !s.pending(0) && !s.pending(9));
        assert_eq!(s.take_bits(1, SOFTIRQ_PING | SOFTIRQ_PONG), SOFTIRQ_PING);
        assert_eq!(s.take(1), SOFTIRQ_SCHEDULE);
        assert_eq!(s.take(1), 0);
        assert!(s.raise(1, SOFTIRQ_SCHEDULE, 0), "taken: the next raise signals again");
    }

    /// A model CPU: an "IRR" bit the IPI sets, and a halt that waits for
    /// it with the haltable check (check with "interrupts off", halt only
    /// if nothing is pending; an IPI sent in between stays in the IRR).
    struct ModelCpu {
        irr: AtomicBool,
    }

    impl ModelCpu {
        fn ipi(&self) {
            self.irr.store(true, Ordering::Release);
        }
        /// `sti; hlt`: returns once an interrupt is (or was) pending.
        fn halt(&self) {
            while !self.irr.swap(false, Ordering::AcqRel) {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
        }
    }

    #[test]
    fn ping_pong_loses_no_wakeup() {
        // Two CPUs ping each other through softirqs; each waits with the
        // haltable check. A lost wake-up would hang the test.
        const ROUNDS: usize = 20_000;
        let s = Arc::new(Softirqs::<2>::new());
        let cpus = Arc::new([ModelCpu { irr: AtomicBool::new(false) }, ModelCpu { irr: AtomicBool::new(false) }]);
        let answered = Arc::new(AtomicUsize::new(0));
        let responder = {
            let (s, cpus, answered) = (s.clone(), cpus.clone(), answered.clone());
            std::thread::spawn(move || {
                while answered.load(Ordering::Acquire) < ROUNDS {
                    let bits = s.take(1);
                    if bits & SOFTIRQ_PING != 0 {
                        answered.fetch_add(1, Ordering::AcqRel);
                        if s.raise(0, SOFTIRQ_PONG, 1) {
                            cpus[0].ipi();
                        }
                        continue;
                    }
                    if !s.pending(1) {
                        cpus[1].halt();
                    }
                }
            })
        };
        for _ in 0..ROUNDS {
            if s.raise(1, SOFTIRQ_PING, 0) {
                cpus[1].ipi();
            }
            loop {
                if s.take_bits(0, SOFTIRQ_PONG) != 0 {
                    break;
                }
                if !s.pending(0) {
                    cpus[0].halt();
                }
            }
        }
        responder.join().unwrap();
        assert_eq!(answered.load(Ordering::Acquire), ROUNDS);
    }

    #[test]
    fn concurrent_shootdowns_complete_and_flush_every_target() {
        // Four CPUs, "interrupts off": none takes the flush IPI except
        // through its spin loops and its idle check. Each shoots down all
        // CPUs repeatedly; every shootdown must reach every target before
        // it returns, and nothing may deadlock.
        const CPUS: usize = 4;
        const ROUNDS: usize = 2_000;
        let gate = Arc::new(FlushGate::new());
        let flushes: Arc<Vec<AtomicUsize>> = Arc::new((0..CPUS).map(|_| AtomicUsize::new(0)).collect());
        let done = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(CPUS));
        let threads: Vec<_> = (0..CPUS)
            .map(|me| {
                let (gate, flushes, done, start) = (gate.clone(), flushes.clone(), done.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut flush = |flags: u32, _va: u64| {
                        assert_eq!(flags, FLUSH_TLB);
                        flushes[me].fetch_add(1, Ordering::Relaxed);
                    };
                    start.wait();
                    for _ in 0..ROUNDS {
                        let before: Vec<usize> = flushes.iter().map(|f| f.load(Ordering::Relaxed)).collect();
                        gate.flush_mask(
                            me,
                            CpuMask::first(CPUS),
                            FlushRequest { flags: FLUSH_TLB, va: 0 },
                            &mut flush,
                            &mut |_| {},
                            &mut || std::thread::yield_now(),
                        );
                        // Every CPU flushed at least once since we started.
                        for (cpu, f) in flushes.iter().enumerate() {
                            assert!(f.load(Ordering::Relaxed) > before[cpu], "CPU {cpu} not flushed");
                        }
                    }
                    done.fetch_add(1, Ordering::AcqRel);
                    // Idle: keep serving until everyone is finished.
                    while done.load(Ordering::Acquire) < CPUS {
                        gate.service(me, &mut flush);
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(flushes.iter().all(|f| f.load(Ordering::Relaxed) >= ROUNDS * CPUS));
    }

    #[test]
    fn a_lock_holder_can_shoot_down_cpus_that_spin_on_its_lock() {
        // The big-lock rule (gotcha 7): with interrupts off, CPUs waiting
        // for a lock must serve flushes while they spin, else a holder
        // that shoots them down waits forever.
        const CPUS: usize = 3;
        const ROUNDS: usize = 500;
        let gate = Arc::new(FlushGate::new());
        let big_lock = Arc::new(std::sync::Mutex::new(0usize));
        let start = Arc::new(Barrier::new(CPUS));
        let threads: Vec<_> = (0..CPUS)
            .map(|me| {
                let (gate, big_lock, start) = (gate.clone(), big_lock.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut flush = |_: u32, _: u64| {};
                    start.wait();
                    for _ in 0..ROUNDS {
                        let mut held = loop {
                            if let Ok(guard) = big_lock.try_lock() {
                                break guard;
                            }
                            gate.service(me, &mut flush);
                            std::thread::yield_now();
                        };
                        *held += 1;
                        let req = FlushRequest { flags: FLUSH_TLB, va: 0 };
                        gate.flush_mask(me, CpuMask::first(CPUS), req, &mut flush, &mut |_| {}, &mut || {
                            std::thread::yield_now()
                        });
                    }
                })
            })
            .collect();
        // The threads finish at different times; the last ones may shoot
        // down CPUs that have left: serve for them, as their idle loop would.
        while !threads.iter().all(|t| t.is_finished()) {
            for (cpu, t) in threads.iter().enumerate() {
                if t.is_finished() {
                    gate.service(cpu, &mut |_, _| {});
                }
            }
            std::thread::yield_now();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*big_lock.lock().unwrap(), CPUS * ROUNDS);
    }

    #[test]
    fn a_local_only_flush_takes_no_gate() {
        let gate = FlushGate::new();
        gate.busy.store(true, Ordering::Relaxed);
        let mut n = 0;
        gate.flush_mask(
            2,
            CpuMask::of(2),
            FlushRequest { flags: FLUSH_PAGE, va: 0x1000 },
            &mut |f, va| {
                assert_eq!((f, va), (FLUSH_PAGE, 0x1000));
                n += 1;
            },
            &mut |_| panic!("no IPI for a local flush"),
            &mut || panic!("no wait"),
        );
        assert_eq!(n, 1);
        gate.flush_mask(
            2,
            CpuMask::EMPTY,
            FlushRequest { flags: FLUSH_TLB, va: 0 },
            &mut |_, _| panic!(),
            &mut |_| panic!(),
            &mut || panic!(),
        );
    }
}
