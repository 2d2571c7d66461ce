//! A token bucket: how much console output a domain may produce, in
//! bytes, over time.
//!
//! The bucket holds up to `burst` bytes and refills at `bytes_per_s`; a
//! write takes its bytes or is refused whole. It owns no clock: callers
//! pass the system time, and time that runs backwards refills nothing.
//! Xen rate-limits guest-provoked console lines the same way
//! (`__printk_ratelimit` in xen/drivers/char/console.c: a burst, then a
//! steady rate, and a count of what was suppressed); xenish counts bytes
//! rather than messages so that one long line costs what it costs on the
//! serial line.

/// Nanoseconds per second.
const NS_PER_S: u128 = 1_000_000_000;

/// Bytes a rate-limited domain may write at once to the console.
pub const BURST_BYTES: u64 = 64 * 1024;
/// Bytes per second a rate-limited domain may write in the long run:
/// below what 115200 baud carries (about 11 KiB/s), so no one domain
/// holds the serial line.
pub const BYTES_PER_S: u64 = 8 * 1024;

/// A token bucket over bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: u64,
    last_ns: u64,
    burst: u64,
    bytes_per_s: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` bytes refilling at `bytes_per_s`.
    pub const fn new(burst: u64, bytes_per_s: u64) -> Self {
        TokenBucket { tokens: burst, last_ns: 0, burst, bytes_per_s }
    }

    /// The console's bucket: [`BURST_BYTES`] at [`BYTES_PER_S`].
    pub const fn console() -> Self {
        Self::new(BURST_BYTES, BYTES_PER_S)
    }

    /// Bytes available at `now_ns`.
    #[cfg(test)]
    pub fn available(&mut self, now_ns: u64) -> u64 {
        self.refill(now_ns);
        self.tokens
    }

    /// Takes `bytes` at `now_ns` if the bucket holds them; false (taking
    /// nothing) if not.
    pub fn take(&mut self, now_ns: u64, bytes: u64) -> bool {
        self.refill(now_ns);
        match self.tokens.checked_sub(bytes) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    fn refill(&mut self, now_ns: u64) {
        if now_ns < self.last_ns {
            self.last_ns = now_ns;
            return;
        }
        let elapsed = u128::from(now_ns - self.last_ns);
        let earned = elapsed * u128::from(self.bytes_per_s) / NS_PER_S;
        if earned == 0 {
            return;
        }
        let room = u128::from(self.burst - self.tokens.min(self.burst));
        if earned >= room {
            self.tokens = self.burst;
            self.last_ns = now_ns;
        } else {
            // Keep the part of a byte not yet earned: move the clock on by
            // exactly what the whole bytes took.
            self.tokens += earned as u64;
            let spent_ns = earned * NS_PER_S / u128::from(self.bytes_per_s);
            self.last_ns = self.last_ns.saturating_add(spent_ns as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut b = TokenBucket::new(100, 1000);
        assert!(b.take(0, 60));
        assert!(b.take(0, 40));
        assert!(!b.take(0, 1), "empty");
        assert!(!b.take(5 * MS, 10), "5 ms earns 5 bytes, not 10");
        assert!(b.take(10 * MS, 10), "10 ms earns 10");
        assert_eq!(b.available(10 * MS), 0);
        assert_eq!(b.available(10_000 * MS), 100, "never more than the burst");
    }

    #[test]
    fn a_refusal_takes_nothing_and_time_going_back_earns_nothing() {
        let mut b = TokenBucket::new(100, 1000);
        assert!(!b.take(0, 101));
        assert_eq!(b.available(0), 100);
        assert!(b.take(1000 * MS, 100));
        assert_eq!(b.available(500 * MS), 0, "earlier than the last refill");
        assert_eq!(b.available(510 * MS), 10, "counted from the earlier time");
    }

    #[test]
    fn small_steps_add_up_and_huge_gaps_do_not_overflow() {
        let mut b = TokenBucket::new(8, 1000);
        assert!(b.take(0, 8));
        for t in 1..=1000 {
            let _ = b.available(t * 1000); // every microsecond: no whole byte yet each time
        }
        assert_eq!(b.available(1000 * 1000), 1, "a millisecond in microsecond steps is one byte");
        assert_eq!(b.available(u64::MAX), 8);
        let mut fast = TokenBucket::new(u64::MAX, u64::MAX);
        assert!(fast.take(0, u64::MAX));
        assert_eq!(fast.available(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_console_flood_is_held_to_the_rate() {
        let mut b = TokenBucket::console();
        let line = 100;
        let mut written = 0u64;
        // A domain writing a line every millisecond for ten seconds.
        for t in 0..10_000u64 {
            if b.take(t * MS, line) {
                written += line;
            }
        }
        let allowed = BURST_BYTES + 10 * BYTES_PER_S;
        assert!(written <= allowed && written + line >= allowed - 2 * line, "{written} of {allowed}");
    }
}
