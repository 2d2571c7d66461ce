//! The local APIC (xAPIC, memory-mapped): the one-shot timer the hypervisor
//! uses for guest timers and preemption, and end-of-interrupt.

use core::sync::atomic::{AtomicU64, Ordering};

use super::clock::rdtsc;
use super::cpu;

/// Physical base of the xAPIC registers (the power-on default).
pub const APIC_PHYS_BASE: u64 = 0xfee0_0000;
/// Vector of the APIC timer interrupt.
pub const TIMER_VECTOR: u8 = 0xf0;
/// Vector the APIC delivers for spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const REG_EOI: usize = 0xb0;
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

/// Enables the APIC mapped at `va` and measures its timer against the TSC
/// over `calibration_tsc_ticks`.
pub fn init(va: u64, calibration_tsc_ticks: u64) {
    APIC_VA.store(va, Ordering::Relaxed);
    const IA32_APIC_BASE: u32 = 0x1b;
    // SAFETY: the APIC base MSR exists on every x86_64 CPU; setting the
    // global enable bit keeps the default base.
    unsafe { cpu::wrmsr(IA32_APIC_BASE, cpu::rdmsr(IA32_APIC_BASE) | (1 << 11)) };
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_TIMER_DIVIDE, 0x3); // divide by 16
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
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

/// Signals end of interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}
