//! The hypervisor's own lock types: a write-preferring readers-writer spin
//! lock with a reader slot per CPU ([`RwSpinLock`]) for the system state,
//! which hypercalls that touch only their own vCPU read while the rest
//! (the scheduler, other domains, the frame table) write.
//!
//! A waiter spins; what it does while it spins is the caller's
//! ([`Waiter::relax`]): the hypervisor runs with interrupts off, so its
//! waiters serve TLB shootdowns addressed to their own CPU there (a holder
//! that shoots the waiter down must not wait for it forever). A waiter
//! that has spun for a while may also doze ([`Waiter::drowsy`]): it marks
//! itself in the lock's dozer mask and halts until whoever lets the lock
//! go wakes it (Linux's paravirtual spin locks, `kvm_wait`/`kvm_kick_cpu`,
//! in spirit). On an overcommitted host (emulated CPUs, cloud VMs) a
//! spinning waiter burns the host time its lock's holder needs to finish:
//! a halted one gives it back.
//!
//! `spin::RwLock` prefers readers: a stream of overlapping readers (two
//! CPUs making fast hypercalls back to back) would keep a writer (the
//! timer, the scheduler, any slow hypercall) out for ever. And its readers
//! all count in one word, a cache line every reader writes twice: two
//! CPUs reading in parallel would pass it back and forth on every call.
//! Here each reader marks only its own slot (its own cache line), and a
//! writer, once it holds the writer word, keeps new readers out and waits
//! for the marked slots to clear (Xen's per-CPU rwlocks, `percpu_rwlock`,
//! for its grant tables, for the same reason).
//!
//! Whoever finds the lock free takes it: no hand-off to a waiter whose
//! host may have descheduled it (a ticket lock made the emulated two-CPU
//! ping-pong 14 times slower). But a CPU whose guest makes slow hypercall
//! after hypercall would take the writer word again as it lets go, while
//! another CPU's entries wait for seconds (hostile.rs on `-smp 2` saw a
//! neighbour get no CPU for whole windows): so a waiter whose patience ran
//! out claims the next turn, and no other CPU takes the lock, shared or
//! exclusive, before it has had it. And a writer that lets go while
//! another CPU waits gives way (one spin hint: [`RwSpinLock`]'s
//! `give_way`), which under emulation in turns hands the host's CPU to
//! the waiter at once.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How many reader slots a lock has (CPU numbers are taken modulo this).
pub const READER_SLOTS: usize = 64;

/// The writer bit of [`RwSpinLock`]'s state word (bit 0: a test-and-set
/// of it is one `lock bts`).
const WRITER: u64 = 1;

/// CPUs below this have a dozer mark in [`RwSpinLock`]'s state word;
/// the others only spin.
const MARKED_CPUS: usize = 39;

/// The dozer marks of [`RwSpinLock`]'s state word: bits 1 to
/// [`MARKED_CPUS`].
const MARKS: u64 = (1 << (MARKED_CPUS + 1)) - 2;

/// One waiter in [`RwSpinLock`]'s state word: the bits above the marks
/// count the CPUs waiting for the lock.
const WAITER: u64 = 1 << (MARKED_CPUS + 1);

/// The dozer mark of CPU `cpu` (below [`MARKED_CPUS`]) in
/// [`RwSpinLock`]'s state word.
#[inline]
const fn dozer_mark(cpu: usize) -> u64 {
    2 << cpu
}

/// One reader slot, alone in its cache line.
#[repr(align(64))]
struct Slot(AtomicBool);

/// A write-preferring readers-writer spin lock with a reader slot per CPU.
///
/// Rules (proved by the host tests below with real threads):
/// - a writer excludes every other writer and every reader;
/// - readers share the lock with each other;
/// - once a writer holds the writer word, no new reader enters: the
///   readers inside leave and the writer gets the lock however busy the
///   readers are.
///
/// A reader names its slot (its CPU). Two readers naming the same slot
/// take turns (the slot is taken with a compare-and-swap), so any slot is
/// correct and only distinct slots read in parallel. A slot is registered
/// the first time it is used (under the writer word, so no writer is
/// looking at the slots then): a writer waits only for the registered
/// slots, one per CPU that ever read.
pub struct RwSpinLock<T> {
    /// [`WRITER`] while a writer holds the lock or waits for its readers
    /// to leave; above it, the waiters that halt until the lock is let go
    /// ([`MARKS`], bit `i + 1`: CPU `i`); above those, how many CPUs wait
    /// for the lock, spinning or dozing (in units of [`WAITER`]). One
    /// word: letting the writer bit go returns the dozers and the waiters
    /// in the same atomic operation, and a dozer's mark returns the writer
    /// bit, so either the release sees the mark or the dozer sees the lock
    /// free.
    state: AtomicU64,
    /// Wakes the halted waiters of a mask ([`Self::with_waker`]); `None`:
    /// nobody dozes.
    wake: Option<fn(u64)>,
    /// The slots readers have used (bit `i`: slot `i`).
    registered: AtomicU64,
    slots: [Slot; READER_SLOTS],
    /// The CPU (plus one) that waited too long and claimed the next turn;
    /// 0 if none did.
    claim: AtomicUsize,
    /// How often a writer gave way ([`Self::give_way`]; host tests only).
    #[cfg(test)]
    gave_way: AtomicU64,
    /// How often the value was handed out for writing (wrapping): bumped
    /// by every exclusive take, under it ([`Self::generation`]).
    generation: AtomicU64,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one writer at a time (needs `T:
// Send`, the value may be changed from any thread) and `&T` to readers on
// several threads at once (needs `T: Sync`), as std's `RwLock`.
unsafe impl<T: Send + Sync> Sync for RwSpinLock<T> {}
// SAFETY: moving the lock moves the value.
unsafe impl<T: Send> Send for RwSpinLock<T> {}

impl<T> RwSpinLock<T> {
    /// A free lock over `value`, whose waiters only spin.
    pub const fn new(value: T) -> Self {
        Self::build(value, None)
    }

    /// A free lock over `value` whose waiters may doze ([`Waiter::drowsy`]):
    /// `wake(mask)` must end the halt of each CPU of `mask` (bit `i`: CPU
    /// `i`), even one that halts only after `wake` returned (on the
    /// hypervisor an IPI, which stays pending until the halt).
    pub const fn with_waker(value: T, wake: fn(u64)) -> Self {
        Self::build(value, Some(wake))
    }

    const fn build(value: T, wake: Option<fn(u64)>) -> Self {
        RwSpinLock {
            state: AtomicU64::new(0),
            wake,
            registered: AtomicU64::new(0),
            slots: [const { Slot(AtomicBool::new(false)) }; READER_SLOTS],
            claim: AtomicUsize::new(0),
            #[cfg(test)]
            gave_way: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// Whether CPU `cpu` may take the lock now: `Some(true)` if it holds
    /// the claim on the next turn, `Some(false)` if nobody does, `None` if
    /// another CPU does.
    #[inline]
    fn turn(&self, cpu: usize) -> Option<bool> {
        match self.claim.load(Ordering::Acquire) {
            0 => Some(false),
            c if c == cpu.wrapping_add(1) => Some(true),
            _ => None,
        }
    }

    /// The CPU that took the lock had the turn it claimed (`mine`): the
    /// claim goes.
    #[inline]
    fn served(&self, mine: bool) {
        if mine {
            // Dozers kept out by the claim alone may come in now.
            self.claim.store(0, Ordering::SeqCst);
            self.wake_dozers();
        }
    }

    /// Lets the writer word go, wakes the dozers and gives way to the
    /// waiters.
    #[inline]
    fn release_writer(&self) {
        // The writer bit is set: subtracting it clears it (one `lock
        // xadd`, which returns the dozers and the waiters).
        let was = self.state.fetch_sub(WRITER, Ordering::SeqCst);
        // Anything besides the writer bit: dozers to wake, or waiters.
        if was != WRITER {
            self.released_contended(was);
        }
    }

    /// A writer let the lock go with dozers or waiters in the state word
    /// `was` (before the release): wakes the dozers and gives way.
    #[cold]
    #[inline(never)]
    fn released_contended(&self, was: u64) {
        if was & MARKS != 0 {
            self.wake(was & MARKS);
        }
        if was >= WAITER {
            #[cfg(test)]
            self.gave_way.fetch_add(1, Ordering::Relaxed);
            Self::give_way();
        }
    }

    /// A writer let the lock go while another CPU waits for it: one spin
    /// hint before this CPU runs on (and likely takes the lock again for
    /// its next entry). On hardware it costs a few dozen cycles, only when
    /// the lock is contended; where CPUs are emulated or virtualized in
    /// turns on fewer host CPUs (QEMU's round-robin TCG, which `-icount`
    /// implies, ends a vCPU's turn at `pause`), it hands the host's CPU to
    /// the waiter, which otherwise would get it only when this CPU's turn
    /// ran out: a whole time slice later, every time the turn ended while
    /// the lock was held.
    #[inline]
    fn give_way() {
        core::hint::spin_loop();
    }

    /// Counts the calling CPU among the waiters until the returned token
    /// is dropped.
    #[inline]
    fn wait_token(&self) -> WaitToken<'_> {
        self.state.fetch_add(WAITER, Ordering::Relaxed);
        WaitToken(&self.state)
    }

    /// Wakes the waiters that doze, if any.
    #[inline]
    fn wake_dozers(&self) {
        let dozers = self.state.load(Ordering::SeqCst) & MARKS;
        if dozers != 0 {
            self.wake(dozers);
        }
    }

    /// Wakes the dozers whose marks `marks` holds.
    #[cold]
    fn wake(&self, marks: u64) {
        if let Some(wake) = self.wake {
            wake(marks >> 1);
        }
    }

    /// Whether a writer holds the lock or waits for its readers.
    #[inline]
    fn written(&self) -> bool {
        self.state.load(Ordering::SeqCst) & WRITER != 0
    }

    /// Sets the writer bit if it was clear: whether it was.
    #[inline]
    fn take_writer(&self) -> bool {
        self.state.fetch_or(WRITER, Ordering::SeqCst) & WRITER == 0
    }

    /// CPU `cpu` waits for the lock halted ([`Waiter::halt`]), if it is
    /// still held against it once its mark is set: a writer holds it (or
    /// waits for its readers), or another CPU claimed the next turn. The
    /// release of the writer bit, or the claim's being served, sees the
    /// mark and wakes it. (A reader slot another CPU holds does not count:
    /// its release wakes nobody, so that waiter spins.) CPUs from
    /// [`MARKED_CPUS`] on have no mark and only spin.
    #[cold]
    #[inline(never)]
    fn doze(&self, cpu: usize, waiter: &mut impl Waiter) {
        if self.wake.is_none() || cpu >= MARKED_CPUS {
            return;
        }
        let mark = dozer_mark(cpu);
        // Dekker with `served`: the mark, then the claim; it stores the
        // claim, then reads the marks (all sequentially consistent).
        let held = self.state.fetch_or(mark, Ordering::SeqCst) & WRITER != 0;
        let claimed = self.claim.load(Ordering::SeqCst);
        if held || (claimed != 0 && claimed != cpu.wrapping_add(1)) {
            waiter.halt();
        }
        self.state.fetch_and(!mark, Ordering::SeqCst);
    }

    /// CPU `cpu` waited too long: it claims the next turn, unless another
    /// CPU already did.
    #[cold]
    fn stake(&self, cpu: usize) {
        let _ = self.claim.compare_exchange(0, cpu.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Takes the lock shared for CPU `cpu`, in reader slot `cpu` (modulo
    /// [`READER_SLOTS`]), if no writer holds it or waits for it, no other
    /// CPU claimed the turn, and the slot is free.
    #[inline]
    pub fn try_read(&self, cpu: usize) -> Option<ReadGuard<'_, T>> {
        let mine = self.turn(cpu)?;
        let slot = cpu % READER_SLOTS;
        if self.registered.load(Ordering::Relaxed) & (1 << slot) == 0 {
            self.register(slot)?;
        }
        let mark = &self.slots[slot].0;
        // Dekker with the writer: mark the slot, then look at the writer
        // word; the writer sets its word, then looks at the slots (both
        // sequentially consistent, so at least one sees the other).
        // (A swap: a slot another CPU holds stays marked, as it was.)
        if mark.swap(true, Ordering::SeqCst) {
            return None;
        }
        if self.written() {
            mark.store(false, Ordering::Release);
            return None;
        }
        self.served(mine);
        Some(ReadGuard { lock: self, slot })
    }

    /// Registers reader slot `slot` under the writer word (no writer is
    /// looking at the slots then; the readers inside may stay), if no
    /// writer holds it.
    #[cold]
    fn register(&self, slot: usize) -> Option<()> {
        if !self.take_writer() {
            return None;
        }
        self.registered.fetch_or(1 << slot, Ordering::SeqCst);
        self.release_writer();
        Some(())
    }

    /// Takes the lock shared for CPU `cpu` ([`Self::try_read`]), spinning
    /// (and calling `relax` on every turn) while a writer holds it or waits
    /// for it; once `impatient()` says it waited too long, it claims the
    /// next turn.
    #[inline]
    pub fn read_with(&self, cpu: usize, impatient: impl FnMut() -> bool, relax: impl FnMut()) -> ReadGuard<'_, T> {
        self.read_waiting(cpu, &mut Spin { impatient, relax })
    }

    /// Takes the lock shared for CPU `cpu` ([`Self::try_read`]), waiting
    /// as `waiter` says while a writer holds it or waits for it.
    #[inline(always)]
    pub fn read_waiting(&self, cpu: usize, waiter: &mut impl Waiter) -> ReadGuard<'_, T> {
        // The lock found free in line; the waiting out of line.
        match self.try_read(cpu) {
            Some(guard) => guard,
            None => self.read_contended(cpu, waiter),
        }
    }

    /// [`Self::read_waiting`] once the lock was not free.
    #[inline(never)]
    fn read_contended(&self, cpu: usize, waiter: &mut impl Waiter) -> ReadGuard<'_, T> {
        let _waiting = self.wait_token();
        loop {
            self.wait_turn(cpu, waiter);
            if let Some(guard) = self.try_read(cpu) {
                waiter.acquired();
                return guard;
            }
        }
    }

    /// One turn of a waiter's loop after a failed try: claim the next turn
    /// if it waited too long, serve what it must, and doze if it is
    /// drowsy.
    #[inline]
    fn wait_turn(&self, cpu: usize, waiter: &mut impl Waiter) {
        if self.claim.load(Ordering::Relaxed) == 0 && waiter.impatient() {
            self.stake(cpu);
        }
        waiter.relax();
        if waiter.drowsy() {
            self.doze(cpu, waiter);
        }
        core::hint::spin_loop();
    }

    /// Takes the lock exclusively for CPU `cpu` if no writer holds it and
    /// no other CPU claimed the turn, waiting for the readers inside to
    /// leave (calling `relax` on every turn); `None` otherwise.
    #[inline(always)]
    fn try_write_with(&self, cpu: usize, waiter: &mut impl Waiter) -> Option<WriteGuard<'_, T>> {
        let mine = self.turn(cpu)?;
        if !self.take_writer() {
            return None;
        }
        // No new reader enters now; wait for those inside.
        let mut slots = self.registered.load(Ordering::SeqCst);
        while slots != 0 {
            let i = slots.trailing_zeros() as usize;
            // Readers' sections are short and their release wakes nobody:
            // this waits spinning, never dozing.
            while self.slots[i % READER_SLOTS].0.load(Ordering::SeqCst) {
                waiter.relax();
                core::hint::spin_loop();
            }
            slots &= slots - 1;
        }
        self.served(mine);
        // The one place a writer gets in: every write to the value comes
        // after a new generation.
        self.bump_generation();
        Some(WriteGuard { lock: self })
    }

    /// Takes the lock exclusively for CPU `cpu` if no writer holds it and
    /// no other CPU claimed the turn, waiting for the readers inside to
    /// leave.
    #[inline]
    pub fn try_write(&self, cpu: usize) -> Option<WriteGuard<'_, T>> {
        self.try_write_with(cpu, &mut Spin { impatient: || false, relax: || {} })
    }

    /// Takes the lock exclusively for CPU `cpu`, spinning (and calling
    /// `relax` on every turn) until no other writer holds it and the
    /// readers inside have left; once `impatient()` says it waited too
    /// long, it claims the next turn.
    #[inline(always)]
    pub fn write_with(&self, cpu: usize, impatient: impl FnMut() -> bool, relax: impl FnMut()) -> WriteGuard<'_, T> {
        self.write_waiting(cpu, &mut Spin { impatient, relax })
    }

    /// Takes the lock exclusively for CPU `cpu`, waiting as `waiter` says
    /// until no other writer holds it and the readers inside have left.
    #[inline(always)]
    pub fn write_waiting(&self, cpu: usize, waiter: &mut impl Waiter) -> WriteGuard<'_, T> {
        // The lock found free (every entry on one CPU, most on several)
        // in line; the waiting out of line.
        match self.try_write_with(cpu, waiter) {
            Some(guard) => guard,
            None => self.write_contended(cpu, waiter),
        }
    }

    /// [`Self::write_waiting`] once the lock was not free.
    #[inline(never)]
    fn write_contended(&self, cpu: usize, waiter: &mut impl Waiter) -> WriteGuard<'_, T> {
        let _waiting = self.wait_token();
        loop {
            self.wait_turn(cpu, waiter);
            if let Some(guard) = self.try_write_with(cpu, waiter) {
                waiter.acquired();
                return guard;
            }
        }
    }

    /// [`Self::read_with`] with nothing to do while spinning, never
    /// claiming a turn.
    pub fn read(&self, cpu: usize) -> ReadGuard<'_, T> {
        self.read_with(cpu, || false, || {})
    }

    /// [`Self::write_with`] with nothing to do while spinning, never
    /// claiming a turn.
    pub fn write(&self, cpu: usize) -> WriteGuard<'_, T> {
        self.write_with(cpu, || false, || {})
    }

    /// The value, through exclusive access to the lock itself (a new
    /// generation, as for a writer).
    pub fn get_mut(&mut self) -> &mut T {
        self.bump_generation();
        self.data.get_mut()
    }

    /// Under exclusive access: the next generation.
    #[inline(always)]
    fn bump_generation(&self) {
        // Only a writer stores it; a plain increment suffices.
        let g = self.generation.load(Ordering::Relaxed);
        self.generation.store(g.wrapping_add(1), Ordering::Relaxed);
    }

    /// How many times the value was handed out for writing (wrapping):
    /// for a reader, under its [`ReadGuard`], to tell whether anything it
    /// derived from the value under an earlier guard still holds. The
    /// same generation seen under two read guards means no writer got in
    /// between, so the value is as it was (but for what the readers
    /// themselves change through atomics inside it). Every exclusive take
    /// and [`Self::get_mut`] make a new one; taking the lock shared does
    /// not. (The read guard's take synchronises with the last writer's
    /// release, so a relaxed load sees that writer's generation.)
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

/// A CPU counted among a lock's waiters ([`RwSpinLock::wait_token`])
/// until dropped.
struct WaitToken<'a>(&'a AtomicU64);

impl Drop for WaitToken<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.fetch_sub(WAITER, Ordering::Relaxed);
    }
}

/// Shared access to a [`RwSpinLock`]'s value; released when dropped.
pub struct ReadGuard<'a, T> {
    lock: &'a RwSpinLock<T>,
    slot: usize,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this reader's slot is marked and was registered: no
        // writer holds the lock until every marked slot is clear, so
        // nothing changes the value while this shared reference lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // (The slot is below READER_SLOTS: the modulo only spares the
        // bounds check.)
        self.lock.slots[self.slot % READER_SLOTS].0.store(false, Ordering::Release);
    }
}

/// Exclusive access to a [`RwSpinLock`]'s value; released when dropped.
pub struct WriteGuard<'a, T> {
    lock: &'a RwSpinLock<T>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the writer word is this guard's and every registered
        // slot was clear after it was set: no reader or other writer is
        // inside.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this the only
        // reference through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release_writer();
    }
}

/// How a CPU waits for a [`RwSpinLock`].
pub trait Waiter {
    /// Called on every turn of the spin (and while a writer waits for
    /// its readers to leave): serve what must not wait for the lock.
    fn relax(&mut self);
    /// Whether the CPU has waited long enough to claim the next turn.
    fn impatient(&mut self) -> bool;
    /// Whether the CPU has spun long enough to halt until the lock is let
    /// go ([`Self::halt`]). Only asked of a lock made
    /// [`RwSpinLock::with_waker`] would it matter.
    fn drowsy(&mut self) -> bool {
        false
    }
    /// Halts until the lock's waker wakes this CPU (or anything else
    /// does: the loop looks again either way); a wake sent before the halt
    /// must end it.
    fn halt(&mut self) {}
    /// The CPU has the lock, after waiting for it (not called when the
    /// first try took it).
    fn acquired(&mut self) {}
}

/// A waiter made of two closures, that never dozes.
struct Spin<I, R> {
    impatient: I,
    relax: R,
}

impl<I: FnMut() -> bool, R: FnMut()> Waiter for Spin<I, R> {
    #[inline]
    fn relax(&mut self) {
        (self.relax)();
    }
    #[inline]
    fn impatient(&mut self) -> bool {
        (self.impatient)()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    #[test]
    fn readers_share_and_a_writer_excludes_them() {
        let lock = RwSpinLock::new(5);
        let r1 = lock.try_read(0);
        let r2 = lock.try_read(1);
        assert_eq!((r1.as_deref(), r2.as_deref()), (Some(&5), Some(&5)));
        assert!(lock.try_read(1).is_none(), "slot 1 is taken: its next reader waits its turn");
        drop((r1, r2));
        let mut w = lock.try_write(3).expect("free once the readers left");
        *w = 6;
        assert!(lock.try_read(0).is_none() && lock.try_read(2).is_none(), "a writer inside");
        assert!(lock.try_write(4).is_none(), "one writer at a time");
        drop(w);
        assert_eq!(*lock.read(2), 6);
        assert_eq!(lock.registered.load(Ordering::Relaxed), 0b111, "slots 0, 1 and 2 registered");
        assert!(lock.state.load(Ordering::Relaxed) == 0 && lock.slots.iter().all(|s| !s.0.load(Ordering::Relaxed)));
    }

    /// Every way to the value for writing makes a new generation; every
    /// way to read it, and a refused take, do not: what a reader derives
    /// from the value and keys by the generation (the fast path's
    /// `FastGate`) is found stale after any write, whoever the writer.
    #[test]
    fn every_write_and_no_read_makes_a_new_generation() {
        let mut lock = RwSpinLock::new(0u64);
        let mut seen = lock.generation();
        let mut changed = |lock: &RwSpinLock<u64>, what: &str, expect: bool| {
            let now = lock.generation();
            assert_eq!(now != seen, expect, "{what}");
            seen = now;
        };
        drop(lock.read(0));
        drop(lock.try_read(1));
        drop(lock.read_with(2, || false, || {}));
        changed(&lock, "reads", false);
        *lock.write(0) += 1;
        changed(&lock, "write", true);
        drop(lock.try_write(1));
        changed(&lock, "try_write", true);
        drop(lock.write_with(2, || false, || {}));
        changed(&lock, "write_with", true);
        drop(lock.write_waiting(3, &mut Spin { impatient: || false, relax: || {} }));
        changed(&lock, "write_waiting", true);
        let w = lock.write(0);
        changed(&lock, "write", true);
        assert!(lock.try_write(1).is_none() && lock.try_read(2).is_none());
        changed(&lock, "a refused write or read", false);
        drop(w);
        *lock.get_mut() += 1;
        changed(&lock, "get_mut", true);
    }

    /// Two values a writer changes together, one after the other with a
    /// pause between: a reader or writer that ever sees them differ was
    /// inside with a writer. Readers in their own slots and in a shared one.
    #[test]
    fn writers_exclude_each_other_and_readers_see_no_half_update() {
        let lock = Arc::new(RwSpinLock::new((0u64, 0u64)));
        let torn = Arc::new(AtomicBool::new(false));
        const WRITERS: u64 = 3;
        const ROUNDS: u64 = 20_000;
        let mut threads = Vec::new();
        for cpu in 0..WRITERS as usize {
            let (lock, torn) = (lock.clone(), torn.clone());
            threads.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut g = lock.write(10 + cpu);
                    if g.0 != g.1 {
                        torn.store(true, Ordering::Relaxed);
                    }
                    g.0 += 1;
                    core::hint::spin_loop();
                    g.1 += 1;
                }
            }));
        }
        for slot in [0, 1, 1] {
            let (lock, torn) = (lock.clone(), torn.clone());
            threads.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let g = lock.read(slot);
                    if g.0 != g.1 {
                        torn.store(true, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in threads {
            t.join().expect("thread");
        }
        assert!(!torn.load(Ordering::Relaxed), "someone saw a half-done update");
        assert_eq!(*lock.read(0), (WRITERS * ROUNDS, WRITERS * ROUNDS), "no increment lost");
    }

    /// Readers that overlap without pause (there is always one inside)
    /// would keep a reader-preferring lock from every writer: this one's
    /// writer gets in, many times, while they keep trying.
    #[test]
    fn a_writer_is_not_starved_by_readers_that_always_overlap() {
        let lock = Arc::new(RwSpinLock::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for slot in 0..3 {
            let (lock, stop, reads) = (lock.clone(), stop.clone(), reads.clone());
            readers.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let g = lock.read(slot);
                    // Hold it a while, so the readers' sections overlap.
                    for _ in 0..50 {
                        core::hint::spin_loop();
                    }
                    drop(g);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Let the readers get going first.
        while reads.load(Ordering::Relaxed) < 1000 {
            thread::yield_now();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut writes = 0;
        while writes < 200 && Instant::now() < deadline {
            // try_write, not write: a starved writer fails the test rather
            // than hanging it.
            if let Some(mut g) = lock.try_write(9) {
                *g += 1;
                writes += 1;
            }
            core::hint::spin_loop();
        }
        let readers_done_before = reads.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for t in readers {
            t.join().expect("reader");
        }
        assert_eq!(writes, 200, "the writer got in only {writes} times while readers were busy");
        assert_eq!(*lock.read(0), 200);
        assert!(readers_done_before >= 1000, "the readers ran meanwhile");
    }

    /// A CPU that waited past its patience has the next turn: no other
    /// CPU takes the lock, shared or exclusive, in front of it (with a
    /// bare test-and-set writer word the holder could take it again as
    /// often as it liked), and the claim goes with its turn.
    #[test]
    fn a_cpu_that_waited_too_long_has_the_next_turn() {
        let lock = Arc::new(RwSpinLock::new(0u32));
        for round in 0..20 {
            let held = lock.write(0);
            let spun = Arc::new(AtomicBool::new(false));
            // Once it has claimed, the waiter parks in its spin loop until
            // the checks below are done: otherwise it could take the lock
            // and let it go between them, and a free lock would look like
            // a claim not honoured.
            let go = Arc::new(AtomicBool::new(false));
            let waiter = {
                let (lock, spun, go) = (lock.clone(), spun.clone(), go.clone());
                thread::spawn(move || {
                    let as_writer = round % 2 == 0;
                    let relax = || {
                        spun.store(true, Ordering::SeqCst);
                        while lock.claim.load(Ordering::SeqCst) != 0 && !go.load(Ordering::SeqCst) {
                            thread::yield_now();
                        }
                        thread::yield_now();
                    };
                    if as_writer {
                        *lock.write_with(1, || true, relax) += 1;
                    } else {
                        let g = lock.read_with(1, || true, relax);
                        assert!(*g >= round);
                        drop(g);
                        *lock.write(1) += 1;
                    }
                })
            };
            // Claimed, and spinning (it stakes the claim, then relaxes).
            while lock.claim.load(Ordering::SeqCst) != 2 || !spun.load(Ordering::SeqCst) {
                thread::yield_now();
            }
            drop(held);
            assert!(lock.try_write(0).is_none(), "round {round}: the holder wrote in front of the claim");
            assert!(lock.try_read(0).is_none(), "round {round}: a reader came in front of the claim");
            go.store(true, Ordering::SeqCst);
            waiter.join().expect("waiter");
            assert_eq!(lock.claim.load(Ordering::SeqCst), 0, "the claim is gone with its turn");
            assert!(lock.try_write(0).is_some(), "round {round}: free again");
        }
        assert_eq!(*lock.read(0), 20, "every waiter had its turn");
    }

    /// A writer that lets the lock go while another CPU waits for it
    /// (spinning, as a reader or a writer) gives way; one that lets it go
    /// with nobody waiting does not; and a waiter is no longer counted
    /// once it has the lock.
    #[test]
    fn a_writer_gives_way_only_to_a_waiting_cpu() {
        let lock = Arc::new(RwSpinLock::new(0u32));
        // The reader's slot registered (a registration lets a writer word
        // go, and would give way to the reader registering).
        drop(lock.read(1));
        for round in 0..10u64 {
            let held = lock.write(0);
            let spun = Arc::new(AtomicBool::new(false));
            let waiter = {
                let (lock, spun) = (lock.clone(), spun.clone());
                thread::spawn(move || {
                    let relax = || {
                        spun.store(true, Ordering::SeqCst);
                        thread::yield_now();
                    };
                    if round % 2 == 0 {
                        *lock.write_with(1, || false, relax) += 1;
                    } else {
                        drop(lock.read_with(1, || false, relax));
                        *lock.write(1) += 1;
                    }
                })
            };
            while !spun.load(Ordering::SeqCst) {
                thread::yield_now();
            }
            assert!(lock.state.load(Ordering::SeqCst) >= WAITER, "round {round}: the waiter is counted");
            drop(held);
            assert_eq!(lock.gave_way.load(Ordering::SeqCst), round + 1, "round {round}: the holder gave way");
            waiter.join().expect("waiter");
            assert_eq!(lock.state.load(Ordering::SeqCst), 0, "round {round}: nobody waits or holds");
            // Nobody waits: letting go gives no way.
            drop(lock.write(0));
            assert_eq!(lock.gave_way.load(Ordering::SeqCst), round + 1, "round {round}: no waiter, no way given");
        }
        assert_eq!(*lock.read(0), 10, "every waiter had its turn");
    }

    /// A waiter still within its patience claims nothing: whoever finds
    /// the lock free takes it, no hand-off to a CPU that may not be
    /// running.
    #[test]
    fn a_patient_waiter_claims_nothing() {
        let lock = Arc::new(RwSpinLock::new(0u32));
        let held = lock.write(0);
        let spun = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (lock, spun) = (lock.clone(), spun.clone());
            thread::spawn(move || {
                *lock.write_with(
                    1,
                    || false,
                    || {
                        spun.store(true, Ordering::SeqCst);
                        thread::yield_now();
                    },
                ) += 1;
            })
        };
        while !spun.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        drop(held);
        // The waiter may win the race; it then lets go at once.
        let again = loop {
            if let Some(g) = lock.try_write(0) {
                break g;
            }
            thread::yield_now();
        };
        assert_eq!(lock.claim.load(Ordering::SeqCst), 0, "no claim without impatience");
        drop(again);
        waiter.join().expect("waiter");
    }

    /// The "CPUs" of [`dozing_waiters_are_always_woken`]: each parks as its
    /// halt, and the lock's waker unparks the threads of its mask.
    static PARKED: [std::sync::Mutex<Option<thread::Thread>>; 4] = [const { std::sync::Mutex::new(None) }; 4];

    fn unpark(mask: u64) {
        for (cpu, parked) in PARKED.iter().enumerate() {
            if mask & (1 << cpu) != 0 {
                if let Some(t) = parked.lock().expect("parked").as_ref() {
                    t.unpark();
                }
            }
        }
    }

    /// Waits as a hypervisor CPU does, but dozes at every failed try and
    /// claims the next turn after a few: parking stands for `hlt` (an
    /// unpark before the park ends it, as a pending IPI ends a halt).
    struct Parker {
        turns: u32,
        halts: Arc<AtomicU64>,
    }

    impl Waiter for Parker {
        fn relax(&mut self) {
            self.turns += 1;
        }
        fn impatient(&mut self) -> bool {
            self.turns > 3
        }
        fn drowsy(&mut self) -> bool {
            true
        }
        fn halt(&mut self) {
            self.halts.fetch_add(1, Ordering::Relaxed);
            thread::park();
        }
    }

    /// Writers and readers that doze whenever they find the lock taken,
    /// also when a claim alone keeps them out and the claimant reads: each
    /// is woken by the release (or the served claim) that lets it in, and
    /// all finish. A lost wake-up leaves a thread parked for ever, and the
    /// test fails on its deadline.
    #[test]
    fn dozing_waiters_are_always_woken() {
        let lock = Arc::new(RwSpinLock::with_waker((0u64, 0u64), unpark));
        let halts = Arc::new(AtomicU64::new(0));
        let (done, finished) = std::sync::mpsc::channel();
        const ROUNDS: u64 = 3000;
        for (cpu, parked) in PARKED.iter().enumerate() {
            let (lock, halts, done) = (lock.clone(), halts.clone(), done.clone());
            thread::spawn(move || {
                *parked.lock().expect("parked") = Some(thread::current());
                for round in 0..ROUNDS {
                    let mut waiter = Parker { turns: 0, halts: halts.clone() };
                    if cpu < 2 {
                        let mut g = lock.write_waiting(cpu, &mut waiter);
                        g.0 += 1;
                        if round % 16 == 0 {
                            // Descheduled while holding it, as a preempted
                            // holder is.
                            thread::yield_now();
                        }
                        g.1 += 1;
                    } else {
                        let g = lock.read_waiting(cpu, &mut waiter);
                        assert_eq!(g.0, g.1, "a reader saw a half-done update");
                        if round % 16 == 0 {
                            thread::yield_now();
                        }
                    }
                }
                done.send(cpu).expect("report");
            });
        }
        for _ in 0..4 {
            if let Err(e) = finished.recv_timeout(Duration::from_secs(60)) {
                panic!("a dozing waiter was never woken ({e}; {} halts)", halts.load(Ordering::Relaxed));
            }
        }
        assert_eq!(*lock.read(0), (2 * ROUNDS, 2 * ROUNDS), "no increment lost");
        assert!(halts.load(Ordering::Relaxed) > 0, "nobody dozed: the test proved nothing");
        assert_eq!(lock.state.load(Ordering::Relaxed), 0, "every dozer took its mark away");
    }
}
