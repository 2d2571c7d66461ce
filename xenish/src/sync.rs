//! The hypervisor's own lock types: a write-preferring readers-writer spin
//! lock ([`RwSpinLock`]) for the system state, which hypercalls that touch
//! only their own vCPU read while the rest (the scheduler, other domains,
//! the frame table) write.
//!
//! Every waiter spins; what it does while it spins is the caller's
//! (`relax`): the hypervisor runs with interrupts off, so its waiters serve
//! TLB shootdowns addressed to their own CPU there (a holder that shoots
//! the waiter down must not wait for it forever).
//!
//! `spin::RwLock` prefers readers: a stream of overlapping readers (two
//! CPUs making fast hypercalls back to back) would keep a writer (the
//! timer, the scheduler, any slow hypercall) out for ever. Here a waiting
//! writer closes the door to new readers, and the readers inside drain.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The lock word's bit: a writer holds the lock.
const WRITER: usize = 1;
/// The lock word's bit: a writer waits; no new reader may enter.
const WRITER_WAITING: usize = 2;
/// One reader, counted above the two flag bits.
const READER: usize = 4;

/// A write-preferring readers-writer spin lock.
///
/// Rules (proved by the host tests below with real threads):
/// - a writer excludes every other writer and every reader;
/// - readers share the lock with each other;
/// - once a writer waits, no new reader enters: the readers inside leave
///   and the writer gets the lock however busy the readers are.
///
/// A writer that gets the lock clears the waiting flag; other writers
/// still waiting set it again on their next look, so readers may slip in
/// between two writers, never in front of a waiting one for long.
pub struct RwSpinLock<T> {
    state: AtomicUsize,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one writer at a time (needs `T:
// Send`, the value may be changed from any thread) and `&T` to readers on
// several threads at once (needs `T: Sync`), as std's `RwLock`.
unsafe impl<T: Send + Sync> Sync for RwSpinLock<T> {}
// SAFETY: moving the lock moves the value.
unsafe impl<T: Send> Send for RwSpinLock<T> {}

impl<T> RwSpinLock<T> {
    /// A free lock over `value`.
    pub const fn new(value: T) -> Self {
        RwSpinLock { state: AtomicUsize::new(0), data: UnsafeCell::new(value) }
    }

    /// Takes the lock shared, if no writer holds it or waits for it.
    #[inline]
    pub fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        let s = self.state.load(Ordering::Relaxed);
        if s & (WRITER | WRITER_WAITING) != 0 {
            return None;
        }
        match self.state.compare_exchange(s, s + READER, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Some(ReadGuard { lock: self }),
            Err(_) => None,
        }
    }

    /// Takes the lock shared, spinning (and calling `relax` on every turn)
    /// while a writer holds it or waits for it.
    #[inline]
    pub fn read_with(&self, mut relax: impl FnMut()) -> ReadGuard<'_, T> {
        loop {
            if let Some(guard) = self.try_read() {
                return guard;
            }
            relax();
            core::hint::spin_loop();
        }
    }

    /// Takes the lock exclusively if it is free; else marks a writer as
    /// waiting (no new reader enters) and returns `None`. A caller that
    /// gives up after `None` leaves readers shut out until some writer
    /// takes the lock: use [`Self::write_with`] unless you retry.
    #[inline]
    pub fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        let s = self.state.load(Ordering::Relaxed);
        if s & !WRITER_WAITING == 0 {
            // Free (perhaps with writers waiting: this one is one of them).
            if self.state.compare_exchange(s, WRITER, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return Some(WriteGuard { lock: self });
            }
        } else if s & WRITER_WAITING == 0 {
            self.state.fetch_or(WRITER_WAITING, Ordering::Relaxed);
        }
        None
    }

    /// Takes the lock exclusively, spinning (and calling `relax` on every
    /// turn) until the readers inside have left and no writer holds it.
    #[inline]
    pub fn write_with(&self, mut relax: impl FnMut()) -> WriteGuard<'_, T> {
        loop {
            if let Some(guard) = self.try_write() {
                return guard;
            }
            relax();
            core::hint::spin_loop();
        }
    }

    /// [`Self::read_with`] with nothing to do while spinning.
    pub fn read(&self) -> ReadGuard<'_, T> {
        self.read_with(|| {})
    }

    /// [`Self::write_with`] with nothing to do while spinning.
    pub fn write(&self) -> WriteGuard<'_, T> {
        self.write_with(|| {})
    }

    /// The value, through exclusive access to the lock itself.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Shared access to a [`RwSpinLock`]'s value; released when dropped.
pub struct ReadGuard<'a, T> {
    lock: &'a RwSpinLock<T>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a reader is counted in the lock word: no writer holds the
        // lock until every reader has left, so nothing changes the value
        // while this shared reference lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.state.fetch_sub(READER, Ordering::Release);
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
        // SAFETY: the writer bit is this guard's: no reader or other
        // writer is inside.
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
        // Keeps WRITER_WAITING if another writer set it meanwhile.
        self.lock.state.fetch_and(!WRITER, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    #[test]
    fn readers_share_and_a_writer_excludes_them() {
        let lock = RwSpinLock::new(5);
        let a = lock.try_read().map(|g| *g);
        let r1 = lock.try_read();
        let r2 = lock.try_read();
        assert_eq!((a, r1.as_deref(), r2.as_deref()), (Some(5), Some(&5), Some(&5)));
        assert!(lock.try_write().is_none(), "readers inside");
        assert!(lock.try_read().is_none(), "a writer waits: no new reader");
        drop((r1, r2));
        let mut w = lock.try_write().expect("free once the readers left");
        *w = 6;
        assert!(lock.try_read().is_none(), "a writer inside");
        drop(w);
        assert_eq!(*lock.read(), 6);
        assert_eq!(lock.state.load(Ordering::Relaxed), 0, "nothing left behind");
    }

    /// Two values a writer changes together, one after the other with a
    /// pause between: a reader or writer that ever sees them differ was
    /// inside with a writer.
    #[test]
    fn writers_exclude_each_other_and_readers_see_no_half_update() {
        let lock = Arc::new(RwSpinLock::new((0u64, 0u64)));
        let torn = Arc::new(AtomicBool::new(false));
        const WRITERS: u64 = 3;
        const ROUNDS: u64 = 20_000;
        let mut threads = Vec::new();
        for _ in 0..WRITERS {
            let (lock, torn) = (lock.clone(), torn.clone());
            threads.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut g = lock.write();
                    if g.0 != g.1 {
                        torn.store(true, Ordering::Relaxed);
                    }
                    g.0 += 1;
                    core::hint::spin_loop();
                    g.1 += 1;
                }
            }));
        }
        for _ in 0..2 {
            let (lock, torn) = (lock.clone(), torn.clone());
            threads.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let g = lock.read();
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
        assert_eq!(*lock.read(), (WRITERS * ROUNDS, WRITERS * ROUNDS), "no increment lost");
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
        for _ in 0..3 {
            let (lock, stop, reads) = (lock.clone(), stop.clone(), reads.clone());
            readers.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let g = lock.read();
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
            if let Some(mut g) = lock.try_write() {
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
        assert_eq!(*lock.read(), 200);
        assert!(readers_done_before >= 1000, "the readers ran meanwhile");
    }

    #[test]
    fn a_dropped_guard_leaves_the_waiting_flag_of_another_writer() {
        let lock = RwSpinLock::new(());
        let w = lock.try_write().expect("free");
        assert!(lock.try_write().is_none(), "a second writer waits");
        drop(w);
        assert!(lock.try_read().is_none(), "the waiting writer still keeps readers out");
        assert!(lock.try_write().is_some(), "and gets the lock");
        assert!(lock.try_read().is_some(), "after which readers come in again");
    }
}
