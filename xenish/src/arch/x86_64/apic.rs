//! The local APIC (xAPIC, memory-mapped; QEMU's TCG has no x2APIC): the
//! one-shot timer the hypervisor uses for guest timers and preemption,
//! end-of-interrupt, and the interrupt command register that starts the
//! other CPUs. Every CPU reaches its own APIC at the same address.

use core::sync::atomic::{AtomicU64, Ordering};

use super::clock::rdtsc;
use super::cpu;

/// Physical base of the xAPIC registers (the power-on default).
pub const APIC_PHYS_BASE: u64 = 0xfee0_0000;
/// Vector of the APIC timer interrupt (the lowest of the hypervisor's own
/// vectors, 0xf0..=0xfe; device interrupts take 0x30..=0xef).
pub const TIMER_VECTOR: u8 = 0xf0;
/// The event-check IPI: the target looks at its softirqs (Xen's
/// `EVENT_CHECK_VECTOR`).
pub const EVENT_CHECK_VECTOR: u8 = 0xfc;
/// The TLB shootdown IPI (Xen's `INVALIDATE_TLB_VECTOR`).
pub const INVALIDATE_TLB_VECTOR: u8 = 0xfd;
/// Vector the APIC delivers for spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_ESR: usize = 0x280;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;

/// Virtual address of the uncached mapping of the APIC page.
static APIC_VA: AtomicU64 = AtomicU64::new(0);
/// APIC timer ticks per TSC tick, as 32.32 fixed point.
static TICKS_PER_TSC: AtomicU64 = AtomicU64::new(0);

fn reg(offset: usize) -> *mut u32 {
    (APIC_VA.load(Ordering::Relaxed) as usize + offset) as *mut u32
}

fn read(offset: usize) -> u32 {
    // SAFETY: `init` mapped the APIC page uncached at APIC_VA; offsets are
    // architectural register offsets inside it.
    unsafe { reg(offset).read_volatile() }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as for `read`.
    unsafe { reg(offset).write_volatile(value) }
}

/// Enables the running CPU's APIC (its mapping set up already), with the
/// timer masked and stopped.
fn enable() {
    const IA32_APIC_BASE: u32 = 0x1b;
    // SAFETY: the APIC base MSR exists on every x86_64 CPU; setting the
    // global enable bit keeps the default base.
    unsafe { cpu::wrmsr(IA32_APIC_BASE, cpu::rdmsr(IA32_APIC_BASE) | (1 << 11)) };
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_TIMER_DIVIDE, 0x3); // divide by 16
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_TIMER_INITIAL, 0);
}

/// Enables the APIC mapped at `va` and measures its timer against the TSC
/// over `calibration_tsc_ticks` (on the boot CPU; the others reuse the
/// result, as in Xen).
pub fn init(va: u64, calibration_tsc_ticks: u64) {
    APIC_VA.store(va, Ordering::Relaxed);
    enable();
    write(REG_TIMER_INITIAL, u32::MAX);
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < calibration_tsc_ticks {
        core::hint::spin_loop();
    }
    let elapsed = u64::from(u32::MAX - read(REG_TIMER_CURRENT));
    write(REG_TIMER_INITIAL, 0);
    let ratio = (u128::from(elapsed) << 32) / u128::from(calibration_tsc_ticks.max(1));
    TICKS_PER_TSC.store(ratio as u64, Ordering::Relaxed);
}

/// Arms the one-shot timer to fire when the TSC reaches `deadline_tsc`
/// (at once if that has passed); `None` stops it.
pub fn set_deadline(deadline_tsc: Option<u64>) {
    let Some(deadline) = deadline_tsc else {
        write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
        write(REG_TIMER_INITIAL, 0);
        return;
    };
    let delta_tsc = deadline.saturating_sub(rdtsc());
    let ticks = (u128::from(delta_tsc) * u128::from(TICKS_PER_TSC.load(Ordering::Relaxed))) >> 32;
    let ticks = ticks.clamp(1, u128::from(u32::MAX)) as u32;
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    write(REG_TIMER_INITIAL, ticks);
}

/// Enables an application processor's APIC: software-enabled, spurious
/// vector set, timer masked (nothing is scheduled on it yet).
pub fn init_secondary() {
    enable();
}

/// The running CPU's APIC ID (xAPIC: bits 31:24 of the ID register).
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// The APIC ID CPUID reports for the running CPU (leaf 1, EBX[31:24]),
/// usable before the APIC is mapped.
pub fn cpuid_id() -> u32 {
    cpu::cpuid(1, 0).ebx >> 24
}

const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_LEVEL_TRIGGER: u32 = 1 << 15;
const ICR_DM_INIT: u32 = 5 << 8;
const ICR_DM_STARTUP: u32 = 6 << 8;

/// Clears the error status (written before reading, as the SDM says) and
/// returns the errors latched since the last clear.
pub fn take_errors() -> u32 {
    write(REG_ESR, 0);
    read(REG_ESR)
}

/// Waits until the last IPI left the APIC (ICR delivery status idle), for
/// at most about `max_spins` polls; whether it did.
fn wait_icr_idle(max_spins: u32) -> bool {
    for _ in 0..max_spins {
        if read(REG_ICR_LOW) & ICR_DELIVERY_PENDING == 0 {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// Sends an IPI with command `low` to the APIC with ID `dest`; whether the
/// APIC accepted it (the previous one had left).
fn send(dest: u32, low: u32) -> bool {
    let idle = wait_icr_idle(1_000_000);
    write(REG_ICR_HIGH, dest << 24);
    write(REG_ICR_LOW, low);
    idle
}

/// INIT, asserted (level-triggered): the target resets and waits for a
/// STARTUP IPI.
pub fn send_init_assert(dest: u32) -> bool {
    send(dest, ICR_LEVEL_TRIGGER | ICR_LEVEL_ASSERT | ICR_DM_INIT)
}

/// INIT de-assert (xAPIC), after the assert.
pub fn send_init_deassert(dest: u32) -> bool {
    send(dest, ICR_LEVEL_TRIGGER | ICR_DM_INIT)
}

/// A STARTUP IPI: the target starts in real mode at `page << 12`.
pub fn send_startup(dest: u32, page: u8) -> bool {
    send(dest, ICR_LEVEL_ASSERT | ICR_DM_STARTUP | u32::from(page))
}

/// A fixed-delivery IPI of `vector` to the APIC with ID `dest`; whether
/// the APIC accepted it. The caller runs with interrupts off (all
/// hypervisor code does), so the ICR2/ICR pair is not interleaved with
/// another send on this CPU.
pub fn send_fixed(dest: u32, vector: u8) -> bool {
    send(dest, ICR_LEVEL_ASSERT | u32::from(vector))
}

/// Signals end of interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}
