//! Decoding the CMOS real-time clock into seconds since the Unix epoch, for
//! the wallclock guests read from shared_info.

/// Raw CMOS clock registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcTime {
    /// Register 0x00.
    pub second: u8,
    /// Register 0x02.
    pub minute: u8,
    /// Register 0x04 (bit 7 = PM in 12-hour mode).
    pub hour: u8,
    /// Register 0x07.
    pub day: u8,
    /// Register 0x08.
    pub month: u8,
    /// Register 0x09 (two digits).
    pub year: u8,
    /// Register 0x32 (century, if the platform keeps it; else 0).
    pub century: u8,
    /// Status register B: bit 2 = binary (else BCD), bit 1 = 24-hour.
    pub status_b: u8,
}

fn bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0xf)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl RtcTime {
    /// Seconds since the epoch, or `None` if the registers are nonsense.
    pub fn unix_seconds(&self) -> Option<u64> {
        let binary = self.status_b & 0x04 != 0;
        let conv = |v: u8| if binary { v } else { bcd(v) };
        let pm = self.hour & 0x80 != 0;
        let mut hour = conv(self.hour & 0x7f);
        if self.status_b & 0x02 == 0 {
            hour = (hour % 12) + if pm { 12 } else { 0 };
        }
        let (sec, min, day, month) = (conv(self.second), conv(self.minute), conv(self.day), conv(self.month));
        let century = match conv(self.century) {
            c @ 19..=21 => u32::from(c),
            _ => 20,
        };
        let year = century * 100 + u32::from(conv(self.year));
        if sec > 59 || min > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) {
            return None;
        }
        let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
        let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
        u64::try_from(secs).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bcd_and_binary() {
        // 2026-11-25 04:58:16 UTC, BCD, 24-hour.
        let t = RtcTime {
            second: 0x16,
            minute: 0x58,
            hour: 0x04,
            day: 0x25,
            month: 0x11,
            year: 0x26,
            century: 0x20,
            status_b: 0x02,
        };
        assert_eq!(t.unix_seconds(), Some(1_795_582_696));
        let b = RtcTime { second: 16, minute: 58, hour: 4, day: 25, month: 11, year: 26, century: 0, status_b: 0x06 };
        assert_eq!(b.unix_seconds(), Some(1_795_582_696));
        // 12-hour mode: 12 AM is hour 0, 1 PM is 13.
        let pm = RtcTime { hour: 0x81, status_b: 0x00, ..t };
        assert_eq!(pm.unix_seconds(), Some(1_795_582_696 - 4 * 3600 + 13 * 3600));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(RtcTime { month: 0x13, ..t }.unix_seconds(), None);
    }
}
