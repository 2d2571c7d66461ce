//! Guest time: the TSC-to-nanoseconds scale Xen publishes, the
//! hypervisor's monotonic system time, and the version protocol of
//! `vcpu_time_info` and the shared_info wallclock.
//!
//! Semantics: Xen's `set_time_scale`/`scale_delta` (xen/arch/x86/time.c) and
//! the pvclock formula guests use:
//! `ns = system_time + (((tsc - tsc_timestamp) <<|>> shift) * mul) >> 32`.

use crate::mm::{MachineMemory, Mfn};

const NS_PER_SEC: u64 = 1_000_000_000;

/// A TSC-to-nanoseconds conversion: `(delta <<|>> shift) * mul_frac >> 32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// 32.32 fixed-point multiplier (`tsc_to_system_mul`).
    pub mul_frac: u32,
    /// Pre-shift applied to the delta (`tsc_shift`).
    pub shift: i8,
}

impl TimeScale {
    /// The scale for a counter running at `ticks_per_sec` (Xen's `set_time_scale`).
    /// Returns `None` for a frequency of 0.
    pub fn from_hz(ticks_per_sec: u64) -> Option<Self> {
        if ticks_per_sec == 0 {
            return None;
        }
        let mut tps = ticks_per_sec;
        let mut shift: i8 = 0;
        while tps > 2 * NS_PER_SEC {
            tps >>= 1;
            shift -= 1;
        }
        while tps <= NS_PER_SEC {
            tps <<= 1;
            shift += 1;
        }
        // tps is now in (1e9, 2e9], so the quotient fits in 32 bits.
        let mul_frac = ((NS_PER_SEC << 32) / tps) as u32;
        Some(TimeScale { mul_frac, shift })
    }

    /// Nanoseconds for `delta` ticks (Xen's `scale_delta`).
    pub fn ticks_to_ns(self, delta: u64) -> u64 {
        let d = if self.shift < 0 { delta >> -self.shift } else { delta << self.shift };
        ((u128::from(d) * u128::from(self.mul_frac)) >> 32) as u64
    }
}

/// The hypervisor's clock: system time in ns since boot, from the TSC.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// TSC value at system time 0.
    pub tsc_at_zero: u64,
    /// The TSC scale.
    pub scale: TimeScale,
    /// TSC frequency in Hz.
    pub tsc_hz: u64,
}

impl Clock {
    /// System time (ns) at TSC value `tsc`.
    pub fn system_time(&self, tsc: u64) -> u64 {
        self.scale.ticks_to_ns(tsc.wrapping_sub(self.tsc_at_zero))
    }

    /// A TSC value before which the system time is below `ns`: every TSC
    /// value from `tsc_at_zero` up to, not including, `tsc_before(ns)`
    /// has `system_time(tsc) < ns` (so a deadline compared in TSC units
    /// is never passed unseen); `u64::MAX` when the TSC cannot reach
    /// `ns`. A few ticks early at most. Without a 128-bit division: the
    /// fast path computes it after every write of the system.
    ///
    /// `⌊ns · hz / 10⁹⌋` ticks after `tsc_at_zero` is the exact answer
    /// for the exact scale; the Xen-style scale rounds its pre-shifted
    /// frequency and its multiplier, so `system_time` may run ahead of
    /// it by about one part in 2³⁰. The result is checked against
    /// `system_time` itself (monotonic), backed off by a margin well above
    /// that error if it must be, and `tsc_at_zero` (nothing before it)
    /// if even that fails.
    pub fn tsc_before(&self, ns: u64) -> u64 {
        let (secs, rest) = (ns / NS_PER_SEC, ns % NS_PER_SEC);
        // ⌊ns · hz / 10⁹⌋ = secs · hz + ⌊rest · hz / 10⁹⌋, exactly.
        let ticks = match (secs.checked_mul(self.tsc_hz), rest.checked_mul(self.tsc_hz)) {
            (Some(whole), Some(part)) => whole.checked_add(part / NS_PER_SEC),
            _ => None,
        };
        let Some((ticks, end)) = ticks.and_then(|t| Some((t, self.tsc_at_zero.checked_add(t)?))) else {
            return u64::MAX;
        };
        for back in [0, (ticks >> 28) + 2] {
            let t = end.saturating_sub(back);
            if t <= self.tsc_at_zero || self.system_time(t - 1) < ns {
                return t;
            }
        }
        self.tsc_at_zero
    }

    /// The TSC value at system time `ns` (for timer deadlines).
    pub fn tsc_at(&self, ns: u64) -> u64 {
        let ticks = (u128::from(ns) * u128::from(self.tsc_hz) / u128::from(NS_PER_SEC)) as u64;
        self.tsc_at_zero.wrapping_add(ticks)
    }
}

/// `XEN_PVCLOCK_TSC_STABLE_BIT` in `vcpu_time_info.flags`.
pub const PVCLOCK_TSC_STABLE: u8 = guest_abi::xen::XEN_PVCLOCK_TSC_STABLE_BIT as u8;

/// Offset of `time` in a `vcpu_info`.
const TIME_OFFSET: usize = core::mem::offset_of!(guest_abi::xen::VcpuInfo, time);

/// Publishes the clock in the `vcpu_info` at `vcpu_info` (frame, offset)
/// with the version protocol: version odd, fields, version even. Returns
/// false if the page or slot is out of reach.
pub fn update_vcpu_time(mem: &mut dyn MachineMemory, vcpu_info: (Mfn, usize), clock: &Clock, tsc: u64) -> bool {
    let Some(page) = mem.frame_mut(vcpu_info.0) else { return false };
    let off = vcpu_info.1 + TIME_OFFSET;
    let Some(slot) = page.get_mut(off..off + 32) else { return false };
    let version = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]);
    let odd = (version | 1).wrapping_add(if version & 1 == 1 { 2 } else { 0 });
    slot[0..4].copy_from_slice(&odd.to_le_bytes());
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    slot[8..16].copy_from_slice(&tsc.to_le_bytes());
    slot[16..24].copy_from_slice(&clock.system_time(tsc).to_le_bytes());
    slot[24..28].copy_from_slice(&clock.scale.mul_frac.to_le_bytes());
    slot[28] = clock.scale.shift as u8;
    slot[29] = PVCLOCK_TSC_STABLE;
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    slot[0..4].copy_from_slice(&odd.wrapping_add(1).to_le_bytes());
    true
}

/// Publishes the wallclock (UTC at system time 0) in shared_info with the
/// `wc_version` protocol.
pub fn update_wallclock(mem: &mut dyn MachineMemory, shared_info: Mfn, sec: u64, nsec: u32) -> bool {
    let Some(page) = mem.frame_mut(shared_info) else { return false };
    let Some(wc) = page.get_mut(0xc00..0xc10) else { return false };
    let version = u32::from_le_bytes([wc[0], wc[1], wc[2], wc[3]]);
    let odd = (version | 1).wrapping_add(if version & 1 == 1 { 2 } else { 0 });
    wc[0..4].copy_from_slice(&odd.to_le_bytes());
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    wc[4..8].copy_from_slice(&(sec as u32).to_le_bytes());
    wc[8..12].copy_from_slice(&nsec.to_le_bytes());
    wc[12..16].copy_from_slice(&((sec >> 32) as u32).to_le_bytes());
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    wc[0..4].copy_from_slice(&odd.wrapping_add(1).to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::mm::PAGE_SIZE;
    extern crate std;

    /// The guest's pvclock formula, as Linux computes it.
    fn guest_ns(slot: &[u8], tsc: u64) -> u64 {
        let ts = u64::from_le_bytes(slot[8..16].try_into().unwrap());
        let st = u64::from_le_bytes(slot[16..24].try_into().unwrap());
        let mul = u32::from_le_bytes(slot[24..28].try_into().unwrap());
        let shift = slot[28] as i8;
        let mut d = tsc - ts;
        d = if shift < 0 { d >> -shift } else { d << shift };
        st + ((u128::from(d) * u128::from(mul)) >> 32) as u64
    }

    /// `tsc_before` is never late (the tick before it is still before the
    /// deadline) and only a few ticks early, for odd frequencies (whose
    /// scale rounds) and deadlines from 0 to a century and more;
    /// `u64::MAX` exactly when the TSC cannot reach the deadline.
    #[test]
    fn tsc_before_is_never_late_and_hardly_early() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for hz in
            [1_000_000u64, 999_999_999, 1_000_000_000, 2_000_000_001, 2_893_441_727, 3_999_999_999, 10_000_000_007]
        {
            let Some(scale) = TimeScale::from_hz(hz) else { panic!("scale") };
            let clock = Clock { tsc_at_zero: next() >> 8, scale, tsc_hz: hz };
            for i in 0..20_000u64 {
                let ns = match i {
                    0 => 0,
                    1 => 1,
                    2 => u64::MAX,
                    // Up to 146 years: beyond, the scale itself wraps.
                    _ => next() >> (2 + next() % 62),
                };
                let t = clock.tsc_before(ns);
                let exact = u128::from(ns) * u128::from(hz) / u128::from(NS_PER_SEC) + u128::from(clock.tsc_at_zero);
                if t == u64::MAX || ns == u64::MAX {
                    assert_eq!(t == u64::MAX, exact > u128::from(u64::MAX), "{hz} Hz, {ns} ns");
                    continue;
                }
                if t > clock.tsc_at_zero {
                    assert!(clock.system_time(t - 1) < ns, "{hz} Hz, {ns} ns: late at {t}");
                }
                // Early by a few ticks at most (the scale counts in steps of
                // up to 8 ticks above 2 GHz).
                if let Some(later) = t.checked_add(16 + (t - clock.tsc_at_zero.min(t)) / (1 << 27)) {
                    assert!(clock.system_time(later) >= ns || ns == 0, "{hz} Hz, {ns} ns: early at {t}");
                }
            }
        }
    }

    #[test]
    fn scale_matches_frequency() {
        for hz in [1_000_000u64, 999_999_999, 1_000_000_000, 2_400_000_000, 3_999_999_999, 10_000_000_000] {
            let s = TimeScale::from_hz(hz).unwrap();
            let ns = s.ticks_to_ns(hz * 3);
            assert!(ns.abs_diff(3 * NS_PER_SEC) < 10, "{hz} Hz: {ns}");
        }
        assert_eq!(TimeScale::from_hz(0), None);
    }

    #[test]
    fn vcpu_time_follows_the_version_protocol() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        let clock =
            Clock { tsc_at_zero: 1000, scale: TimeScale::from_hz(2_000_000_000).unwrap(), tsc_hz: 2_000_000_000 };
        assert!(update_vcpu_time(&mut mem, (Mfn(0), 64), &clock, 1000 + 2_000_000_000));
        let slot = &mem.0[0][64 + 0x20..64 + 0x40];
        assert_eq!(u32::from_le_bytes(slot[0..4].try_into().unwrap()), 2);
        assert_eq!(guest_ns(slot, 1000 + 4_000_000_000), 2 * NS_PER_SEC);
        assert_eq!(slot[29], PVCLOCK_TSC_STABLE);
        assert!(update_vcpu_time(&mut mem, (Mfn(0), 64), &clock, 5000));
        assert_eq!(u32::from_le_bytes(mem.0[0][0x60..0x64].try_into().unwrap()), 4);
        assert!(!update_vcpu_time(&mut mem, (Mfn(3), 0), &clock, 0));
        assert!(!update_vcpu_time(&mut mem, (Mfn(0), 64 * 64), &clock, 0));
    }

    #[test]
    fn wallclock_and_deadlines() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        assert!(update_wallclock(&mut mem, Mfn(0), 0x1_2345_6789, 500));
        let wc = &mem.0[0][0xc00..0xc10];
        assert_eq!(u32::from_le_bytes(wc[0..4].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(wc[4..8].try_into().unwrap()), 0x2345_6789);
        assert_eq!(u32::from_le_bytes(wc[12..16].try_into().unwrap()), 1);
        let clock =
            Clock { tsc_at_zero: 100, scale: TimeScale::from_hz(3_000_000_000).unwrap(), tsc_hz: 3_000_000_000 };
        assert_eq!(clock.tsc_at(1_000_000), 100 + 3_000_000);
        assert!(clock.system_time(clock.tsc_at(123_456_789)).abs_diff(123_456_789) <= 1);
    }
}
