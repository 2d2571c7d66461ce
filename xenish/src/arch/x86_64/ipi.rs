//! Inter-processor interrupts, the machine half: sending the event-check
//! and TLB-shootdown IPIs through the xAPIC, their handlers, the idle loop
//! of the application processors, and the boot-time IPI check. The rules
//! (softirq words, the shootdown gate) are in [`crate::ipi`].
//!
//! Hypervisor code runs with interrupts off, so a CPU takes an IPI only
//! while it runs a guest or halts in an idle loop. Every idle loop halts
//! with the haltable check: look at the softirq word and the shootdown
//! gate with interrupts off, and only if neither has work, `sti; hlt`
//! (the `sti` shadow makes the pair atomic: an IPI sent after the check
//! stays pending and ends the halt). Every spin loop serves the
//! shootdown gate, so a CPU waiting with interrupts off still flushes.
//!
//! (The `x86_64` crate has no local-APIC support, and this layer already
//! has its own register accessors in `apic`/`cpu`, so it is not used.)

use core::sync::atomic::{AtomicU64, Ordering};

use super::percpu::{self, MAX_CPUS};
use super::{apic, clock, cpu, smpboot};
use crate::ipi::{
    CpuMask, FlushGate, FlushRequest, Softirqs, FLUSH_PAGE, FLUSH_TLB, SOFTIRQ_PING, SOFTIRQ_PONG, SOFTIRQ_SCHEDULE,
};

/// Every CPU's pending softirqs.
static SOFTIRQS: Softirqs<MAX_CPUS> = Softirqs::new();
/// The one TLB shootdown in flight.
static FLUSH: FlushGate = FlushGate::new();
/// Flush IPIs and spin-loop services each CPU carried out (for the boot
/// check's report).
static FLUSHES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Sends `vector` to each CPU of `mask` (not the running one).
fn send(mask: CpuMask, vector: u8) {
    let me = percpu::cpu_index();
    for cpu in mask.without(me).and(smpboot::online_mask()).iter() {
        if let Some(apic_id) = percpu::apic_id_of(cpu) {
            apic::send_fixed(apic_id, vector);
        }
    }
}

/// Marks softirqs `bits` pending on `cpu` and, unless it is the running
/// CPU or already had them pending, sends it an event-check IPI
/// (Xen's `cpu_raise_softirq`).
pub fn raise_softirq(cpu: usize, bits: u32) {
    if SOFTIRQS.raise(cpu, bits, percpu::cpu_index()) {
        send(CpuMask::of(cpu), apic::EVENT_CHECK_VECTOR);
    }
}

/// Takes the running CPU's pending softirqs.
pub fn take_softirqs() -> u32 {
    SOFTIRQS.take(percpu::cpu_index())
}

/// Takes only `bits` of the running CPU's pending softirqs; which were.
pub fn take_softirq_bits(bits: u32) -> u32 {
    SOFTIRQS.take_bits(percpu::cpu_index(), bits)
}

/// Whether the running CPU has softirqs pending or a flush to do.
pub fn work_pending() -> bool {
    let me = percpu::cpu_index();
    SOFTIRQS.pending(me) || FLUSH.pending_for(me)
}

/// Flushes the local TLB as a shootdown asks.
fn local_flush(flags: u32, va: u64) {
    if flags & FLUSH_TLB != 0 {
        // SAFETY: reloading the current CR3 only flushes the TLB.
        unsafe { cpu::write_cr3(cpu::read_cr3()) };
    } else if flags & FLUSH_PAGE != 0 {
        cpu::invlpg(va);
    }
}

/// Carries out a shootdown addressed to the running CPU, if any (from the
/// flush IPI's handler and from spin loops).
pub fn serve_flush() {
    let me = percpu::cpu_index();
    // Counted before the acknowledgement: the boot check reads the count
    // as soon as the initiator's wait ends.
    FLUSH.service(me, &mut |flags, va| {
        local_flush(flags, va);
        if let Some(n) = FLUSHES.get(me) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Shoots down the TLB (all of it, or the page `va` with [`FLUSH_PAGE`])
/// on every CPU of `mask`, the running one included if it is in it, and
/// returns once each has flushed (Xen's `flush_area_mask`). Safe with
/// interrupts off: while it waits it serves flushes addressed to itself.
pub fn flush_mask(mask: CpuMask, flags: u32, va: u64) {
    let me = percpu::cpu_index();
    let mask = mask.and(smpboot::online_mask().with(me));
    FLUSH.flush_mask(
        me,
        mask,
        FlushRequest { flags, va },
        &mut local_flush,
        &mut |targets| send(targets, apic::INVALIDATE_TLB_VECTOR),
        &mut core::hint::spin_loop,
    );
}

/// The event-check IPI's handler: acknowledge it; the softirqs it flags
/// are looked at by whatever the CPU does next (idle loop or guest entry).
pub fn handle_event_check() {
    apic::eoi();
}

/// The shootdown IPI's handler.
pub fn handle_invalidate() {
    apic::eoi();
    serve_flush();
}

/// Halts the running CPU until an interrupt arrives, unless it has work
/// (the haltable check); interrupts are off again on return.
pub fn halt_unless_work() {
    if work_pending() {
        return;
    }
    halt_for_interrupt();
}

/// `sti; hlt; cli`: halts until an interrupt, taking it, with interrupts
/// off again on return. For the haltable checks above and [`doze`]: the
/// `sti` shadow makes the check before it and the halt one step (an
/// interrupt that became pending after the check, or a wake sent before
/// it, ends the halt).
fn halt_for_interrupt() {
    // SAFETY: interrupts are off here (hypervisor code runs so) and on
    // again for the halt only; the handlers that can run then (timer,
    // IPIs, device interrupts, spurious) only acknowledge, flush, set
    // bits or record a device's interrupt: none looks at the state of
    // the code it interrupted, and the halting CPU holds no lock.
    unsafe { core::arch::asm!("sti; hlt; cli", options(nomem, nostack)) };
}

/// Wakes the CPUs of `mask` (bit `i`: CPU `i`) that halt in [`doze`]
/// for a lock: an event-check IPI with no softirq, which ends the halt, or
/// stays pending until it begins (a CPU that already went on takes it as
/// a spurious event check).
pub fn wake_cpus(mask: u64) {
    send(CpuMask(mask), apic::EVENT_CHECK_VECTOR);
}

/// Halts the running CPU until an interrupt arrives, for a lock it waits
/// for ([`crate::sync::Waiter::halt`]), unless a shootdown waits for it;
/// interrupts are off again on return. Once the wait is over, the waiter
/// calls [`kick_self_if_flagged`].
pub fn doze() {
    if FLUSH.pending_for(percpu::cpu_index()) {
        return;
    }
    // This CPU holds no lock while it waits for one.
    halt_for_interrupt();
}

/// After a wait with [`doze`]: if softirqs are flagged for the running
/// CPU, sends it an event-check IPI, which stays pending until interrupts
/// are on again (the guest's exit). The wait is in the middle of an entry:
/// the IPI that flagged them may have been taken during a halt, where its
/// handler leaves the bits for whatever the CPU does next, and
/// [`raise_softirq`] sends no second IPI for bits already pending.
pub fn kick_self_if_flagged() {
    let me = percpu::cpu_index();
    if SOFTIRQS.pending(me) {
        if let Some(apic_id) = percpu::apic_id_of(me) {
            apic::send_fixed(apic_id, apic::EVENT_CHECK_VECTOR);
        }
    }
}

/// Where an application processor goes to run guests, once the boot CPU
/// lets it (`smp_guests`): set before the first `SOFTIRQ_SCHEDULE`.
static GUEST_ENTRY: spin::Once<fn() -> !> = spin::Once::new();

/// Lets the application processors run guests: each leaves [`idle`] for
/// `entry` at its next `SOFTIRQ_SCHEDULE`, which this raises.
pub fn start_guests_on_aps(entry: fn() -> !) {
    GUEST_ENTRY.call_once(|| entry);
    for ap in smpboot::online_mask().without(0).iter() {
        raise_softirq(ap, SOFTIRQ_SCHEDULE);
    }
}

/// The idle loop of an application processor: carry out softirqs and
/// shootdowns as IPIs bring them, halt in between; with guests on the
/// APs, go and run them at the first `SOFTIRQ_SCHEDULE`.
pub fn idle() -> ! {
    loop {
        serve_flush();
        let bits = take_softirqs();
        if bits & SOFTIRQ_PING != 0 {
            raise_softirq(0, SOFTIRQ_PONG);
        }
        if bits & SOFTIRQ_SCHEDULE != 0 {
            if let Some(entry) = GUEST_ENTRY.get() {
                entry()
            }
        }
        halt_unless_work();
    }
}

/// The boot-time IPI check, on the boot CPU with every AP idle: for each
/// online AP, `rounds` event-check round trips (a ping raised on the AP,
/// answered by a pong raised on the boot CPU, both halted in between) and
/// `rounds` TLB shootdowns of it; then `rounds` shootdowns of all CPUs at
/// once. Reports the counts and the time per round trip, or which CPU
/// failed to answer within `timeout_ms`.
pub fn boot_check(rounds: u32, tsc_hz: u64, timeout_ms: u64) {
    let online = smpboot::online_mask();
    if online.count() < 2 {
        return;
    }
    let ticks_per_us = (tsc_hz / 1_000_000).max(1);
    let timeout = tsc_hz / 1000 * timeout_ms;
    for ap in online.without(0).iter() {
        let start = clock::rdtsc();
        let mut done = 0;
        'rounds: while done < rounds {
            raise_softirq(ap, SOFTIRQ_PING);
            loop {
                if SOFTIRQS.take_bits(0, SOFTIRQ_PONG) != 0 {
                    break;
                }
                if clock::rdtsc().wrapping_sub(start) > timeout {
                    break 'rounds;
                }
                // The APIC timer bounds the halt, should an IPI be lost.
                apic::set_deadline(Some(clock::rdtsc() + tsc_hz / 1000));
                halt_unless_work();
            }
            done += 1;
        }
        apic::set_deadline(None);
        if done < rounds {
            crate::printk!("xenish: IPI check, CPU {ap}: no answer after {done}/{rounds} event-check round trips");
            continue;
        }
        let pings = clock::rdtsc().wrapping_sub(start) / ticks_per_us / u64::from(done.max(1));
        let before = FLUSHES[ap].load(Ordering::Relaxed);
        let start = clock::rdtsc();
        for _ in 0..rounds {
            flush_mask(CpuMask::of(ap), FLUSH_TLB, 0);
        }
        let shoot = clock::rdtsc().wrapping_sub(start) / ticks_per_us / u64::from(rounds.max(1));
        let flushed = FLUSHES[ap].load(Ordering::Relaxed) - before;
        crate::printk!(
            "xenish: IPI check, CPU {ap}: {done}/{rounds} event-check round trips ({pings} us each), \
             {flushed}/{rounds} TLB shootdowns ({shoot} us each)"
        );
    }
    let before: u64 = FLUSHES.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    for _ in 0..rounds {
        flush_mask(online, FLUSH_TLB, 0);
    }
    let flushed = FLUSHES.iter().map(|n| n.load(Ordering::Relaxed)).sum::<u64>() - before;
    let want = u64::from(rounds) * u64::from(online.count() - 1);
    crate::printk!("xenish: IPI check, all {} CPUs: {flushed}/{want} remote flushes", online.count());
}
