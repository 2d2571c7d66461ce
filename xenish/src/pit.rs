//! The virtual PIT channel 2 a privileged PV domain sees on ports 0x42,
//! 0x43 and 0x61 (Xen's `pv_pit_handler`). The real PIT belongs to the
//! hypervisor; a PV kernel still uses channel 2 and the port-0x61 gate to
//! calibrate its TSC (Linux's `pit_calibrate_tsc` and
//! `quick_pit_calibrate`), so the hypervisor models that channel against
//! its own clock: a 1.193182 MHz down-counter, gated by bit 0 of port
//! 0x61, whose output shows in bit 5.
//!
//! Modes 0 (interrupt on terminal count: the output goes high at zero and
//! stays), 2 (rate generator) and 3 (square wave) are modelled; the others
//! count like mode 0. Counter latches and the lobyte/hibyte access modes
//! are as on the i8254.

/// The PIT's input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;

/// Port 0x61 bit 0: channel 2 gate.
const GATE: u8 = 1 << 0;
/// Port 0x61 bit 1: speaker data (kept, no sound).
const SPEAKER: u8 = 1 << 1;
/// Port 0x61 bit 5: channel 2 output.
const OUT2: u8 = 1 << 5;

/// How the count is read and written: `RW` of the control word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Access {
    /// Low byte only.
    Lsb,
    /// High byte only.
    Msb,
    /// Low byte, then high byte.
    #[default]
    Word,
}

/// Channel 2 and the gate/speaker bits of port 0x61.
#[derive(Clone, Debug, Default)]
pub struct Pit {
    mode: u8,
    access: Access,
    /// The programmed count (0 means 65536).
    count: u16,
    /// A count is loaded and counting (while the gate is high).
    armed: bool,
    /// Ticks counted before the current gate-high stretch.
    ticks_before: u64,
    /// When the gate last went high (or the count was loaded while high).
    since_ns: Option<u64>,
    /// The low byte of a count being written in `Word` access.
    pending_lsb: Option<u8>,
    /// A latched count, and whether its high byte is next.
    latch: Option<(u16, bool)>,
    /// In `Word` access, the high byte is read next.
    read_msb_next: bool,
    /// Port 0x61 gate and speaker bits.
    port61: u8,
}

impl Pit {
    /// A channel with nothing programmed and the gate low.
    pub fn new() -> Self {
        Self::default()
    }

    fn reload(&self) -> u64 {
        if self.count == 0 {
            65_536
        } else {
            u64::from(self.count)
        }
    }

    /// Input ticks counted since the count was loaded.
    fn ticks(&self, now_ns: u64) -> u64 {
        let running = self.since_ns.map_or(0, |t| {
            let ns = u128::from(now_ns.saturating_sub(t));
            (ns * u128::from(PIT_HZ) / 1_000_000_000) as u64
        });
        self.ticks_before + running
    }

    /// The counter now and whether the output is high.
    fn state(&self, now_ns: u64) -> (u16, bool) {
        if !self.armed {
            return (self.count, self.mode != 0);
        }
        let (n, t) = (self.reload(), self.ticks(now_ns));
        match self.mode {
            2 => {
                let c = n - t % n;
                (c as u16, c != 1)
            }
            3 => {
                let c = n - t % n;
                (c as u16, c > n / 2)
            }
            _ if t >= n => (((n + 65_536 - t % 65_536) % 65_536) as u16, true),
            _ => ((n - t) as u16, false),
        }
    }

    /// `in` from port 0x42, 0x43 or 0x61.
    pub fn read(&mut self, port: u16, now_ns: u64) -> u8 {
        match port {
            0x61 => {
                let (_, out) = self.state(now_ns);
                self.port61 | if out { OUT2 } else { 0 }
            }
            0x42 => {
                if let Some((value, msb)) = self.latch {
                    let byte = if msb { (value >> 8) as u8 } else { value as u8 };
                    self.latch = (self.access == Access::Word && !msb).then_some((value, true));
                    return byte;
                }
                let (count, _) = self.state(now_ns);
                match self.access {
                    Access::Lsb => count as u8,
                    Access::Msb => (count >> 8) as u8,
                    Access::Word => {
                        let msb = self.read_msb_next;
                        self.read_msb_next = !msb;
                        if msb {
                            (count >> 8) as u8
                        } else {
                            count as u8
                        }
                    }
                }
            }
            // The control port reads as nothing on an i8254.
            _ => 0xff,
        }
    }

    /// `out` to port 0x42, 0x43 or 0x61.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) {
        match port {
            0x61 => self.set_gate(value, now_ns),
            0x43 => self.control(value, now_ns),
            0x42 => self.write_count(value, now_ns),
            _ => {}
        }
    }

    fn set_gate(&mut self, value: u8, now_ns: u64) {
        let was_high = self.port61 & GATE != 0;
        self.port61 = value & (GATE | SPEAKER);
        match (was_high, value & GATE != 0) {
            (false, true) => {
                // Modes 2 and 3 restart on a rising gate; mode 0 resumes.
                if matches!(self.mode, 2 | 3) {
                    self.ticks_before = 0;
                }
                self.since_ns = Some(now_ns);
            }
            (true, false) => {
                self.ticks_before = self.ticks(now_ns);
                self.since_ns = None;
            }
            _ => {}
        }
    }

    fn control(&mut self, value: u8, now_ns: u64) {
        // Channels 0 and 1 and the read-back command concern the real PIT.
        if value >> 6 != 2 {
            return;
        }
        let access = match (value >> 4) & 3 {
            0 => {
                if self.latch.is_none() {
                    self.latch = Some((self.state(now_ns).0, self.access == Access::Msb));
                }
                return;
            }
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::Word,
        };
        let mode = (value >> 1) & 7;
        *self = Pit {
            mode: if mode > 5 { mode - 4 } else { mode },
            access,
            port61: self.port61,
            count: self.count,
            ..Pit::default()
        };
    }

    fn write_count(&mut self, value: u8, now_ns: u64) {
        let count = match (self.access, self.pending_lsb.take()) {
            (Access::Lsb, _) => u16::from(value),
            (Access::Msb, _) => u16::from(value) << 8,
            (Access::Word, None) => {
                self.pending_lsb = Some(value);
                return;
            }
            (Access::Word, Some(lsb)) => u16::from(lsb) | (u16::from(value) << 8),
        };
        self.count = count;
        self.armed = true;
        self.ticks_before = 0;
        self.since_ns = (self.port61 & GATE != 0).then_some(now_ns);
        self.read_msb_next = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ns for `ticks` PIT ticks (rounded up).
    fn ns(ticks: u64) -> u64 {
        (ticks * 1_000_000_000).div_ceil(PIT_HZ)
    }

    /// Linux's pit_calibrate_tsc: gate high, mode 0, 50 ms latch.
    fn program(p: &mut Pit, count: u16, at: u64) {
        let v = p.read(0x61, at);
        p.write(0x61, (v & !SPEAKER) | GATE, at);
        p.write(0x43, 0xb0, at);
        p.write(0x42, count as u8, at);
        p.write(0x42, (count >> 8) as u8, at);
    }

    #[test]
    fn mode_0_counts_down_and_raises_out2_at_zero() {
        let mut p = Pit::new();
        let latch = (PIT_HZ / 20) as u16; // 50 ms
        program(&mut p, latch, 1000);
        assert_eq!(p.read(0x61, 1000) & OUT2, 0);
        assert_eq!(p.read(0x61, 1000 + ns(u64::from(latch)) - 2000) & OUT2, 0, "not yet");
        assert_ne!(p.read(0x61, 1000 + ns(u64::from(latch))) & OUT2, 0, "terminal count");
        assert_ne!(p.read(0x61, 1000 + 2 * ns(u64::from(latch))) & OUT2, 0, "and stays high");
        assert_eq!(p.read(0x61, 0) & GATE, GATE);
    }

    #[test]
    fn the_counter_reads_lsb_then_msb_and_latches() {
        let mut p = Pit::new();
        program(&mut p, 0xffff, 0);
        let at = ns(0x100);
        let (lsb, msb) = (p.read(0x42, at), p.read(0x42, at));
        assert_eq!(u16::from(lsb) | (u16::from(msb) << 8), 0xffff - 0x100);
        p.write(0x43, 0x80, at); // latch channel 2
        let later = ns(0x300);
        let (lsb, msb) = (p.read(0x42, later), p.read(0x42, later));
        assert_eq!(u16::from(lsb) | (u16::from(msb) << 8), 0xffff - 0x100, "the latched value");
        let (lsb, msb) = (p.read(0x42, later), p.read(0x42, later));
        assert_eq!(u16::from(lsb) | (u16::from(msb) << 8), 0xffff - 0x300, "live again");
    }

    #[test]
    fn a_low_gate_stops_the_count() {
        let mut p = Pit::new();
        program(&mut p, 1000, 0);
        p.write(0x61, 0, ns(400));
        assert_eq!(p.read(0x61, ns(5000)) & OUT2, 0, "stopped at 600 to go");
        p.write(0x61, GATE, ns(5000));
        assert_eq!(p.read(0x61, ns(5599)) & OUT2, 0);
        assert_ne!(p.read(0x61, ns(5601)) & OUT2, 0);
    }

    #[test]
    fn square_wave_and_other_channels() {
        let mut p = Pit::new();
        p.write(0x61, GATE, 0);
        p.write(0x43, 0xb6, 0); // channel 2, word, mode 3
        p.write(0x42, 100, 0);
        p.write(0x42, 0, 0);
        assert_ne!(p.read(0x61, ns(10)) & OUT2, 0, "first half high");
        assert_eq!(p.read(0x61, ns(60)) & OUT2, 0, "second half low");
        assert_ne!(p.read(0x61, ns(110)) & OUT2, 0, "and again");
        p.write(0x43, 0x34, 0); // channel 0: the hypervisor's, ignored
        assert_ne!(p.read(0x61, ns(110)) & OUT2, 0);
        assert_eq!(p.read(0x43, 0), 0xff);
    }
}
