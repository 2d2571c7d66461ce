//! The time sources: the TSC, calibrated against the PIT, and the CMOS
//! real-time clock for the wallclock.

use super::cpu::{inb, outb};
use crate::rtc::RtcTime;

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects (CR4.TSD is clear in ring 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;

/// Measures the TSC frequency in Hz: the median of five 20 ms windows of
/// PIT channel 2. One window alone can be far off when the host stalls the
/// emulated CPU in the middle of it (a boot under QEMU on a loaded host once
/// measured 13.7 GHz for a 2.45 GHz TSC, and ran guest time 5.6x slow); a
/// median ignores up to two such windows.
pub fn calibrate_tsc() -> u64 {
    let mut hz = [0u64; 5];
    for slot in hz.iter_mut() {
        *slot = tsc_hz_over_pit(20);
    }
    hz.sort_unstable();
    hz[hz.len() / 2]
}

/// The TSC's rate in Hz over `ms` milliseconds (at most 54) of PIT
/// channel 2.
fn tsc_hz_over_pit(ms: u64) -> u64 {
    let count = (PIT_HZ * ms / 1000) as u16;
    // Gate channel 2 on, speaker off; mode 0 (interrupt on terminal count).
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, count as u8);
    outb(0x42, (count >> 8) as u8);
    let start = rdtsc();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
        spins += 1;
    }
    let ticks = rdtsc().wrapping_sub(start);
    ticks * 1000 / ms
}

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

/// Reads the CMOS clock (waiting out an update in progress).
pub fn read_rtc() -> RtcTime {
    let mut spins = 0;
    while cmos(0x0a) & 0x80 != 0 && spins < 1_000_000 {
        spins += 1;
    }
    RtcTime {
        second: cmos(0x00),
        minute: cmos(0x02),
        hour: cmos(0x04),
        day: cmos(0x07),
        month: cmos(0x08),
        year: cmos(0x09),
        century: cmos(0x32),
        status_b: cmos(0x0b),
    }
}
