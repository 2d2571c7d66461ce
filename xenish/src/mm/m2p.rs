//! The machine-to-phys table: for every machine frame, the guest pfn it
//! backs (`INVALID_M2P_ENTRY` when none). Guests read it, read-only, at
//! `0xffff800000000000`; the hypervisor keeps it current.

use super::{MachineMemory, Mfn, Pfn, PAGE_SIZE};

/// The M2P value of a frame no guest pfn maps.
pub const INVALID_M2P_ENTRY: u64 = !0;

/// Where the table lives in machine memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct M2p {
    /// First frame of the (machine-contiguous) table.
    pub base: Mfn,
    /// Number of entries (one per machine frame tracked).
    pub entries: u64,
}

impl M2p {
    fn slot(&self, mfn: Mfn) -> Option<(Mfn, usize)> {
        (mfn.0 < self.entries).then(|| {
            let byte = mfn.0 * 8;
            (Mfn(self.base.0 + byte / PAGE_SIZE as u64), (byte % PAGE_SIZE as u64) as usize)
        })
    }

    /// Records that `mfn` backs `pfn` (or nothing, with `None`).
    pub fn set(&self, mem: &mut dyn MachineMemory, mfn: Mfn, pfn: Option<Pfn>) -> bool {
        let Some((frame, off)) = self.slot(mfn) else { return false };
        let Some(f) = mem.frame_mut(frame) else { return false };
        f[off..off + 8].copy_from_slice(&pfn.map_or(INVALID_M2P_ENTRY, |p| p.0).to_le_bytes());
        true
    }

    /// Records that frames `[mfn, mfn + count)` back pfns
    /// `[pfn, pfn + count)`, a table frame at a time (a boot-time domain's
    /// memory); `false` if an entry is beyond the table.
    pub fn set_run(&self, mem: &mut dyn MachineMemory, mfn: Mfn, pfn: Pfn, count: u64) -> bool {
        let mut done = 0u64;
        while done < count {
            let Some((frame, off)) = self.slot(Mfn(mfn.0 + done)) else { return false };
            let Some(f) = mem.frame_mut(frame) else { return false };
            let n = ((PAGE_SIZE - off) as u64 / 8).min(count - done);
            for (k, entry) in f[off..off + n as usize * 8].chunks_exact_mut(8).enumerate() {
                entry.copy_from_slice(&(pfn.0 + done + k as u64).to_le_bytes());
            }
            done += n;
        }
        true
    }

    /// The pfn `mfn` backs, if any.
    pub fn get(&self, mem: &dyn MachineMemory, mfn: Mfn) -> Option<Pfn> {
        let (frame, off) = self.slot(mfn)?;
        let v = u64::from_le_bytes(mem.frame(frame)?[off..off + 8].try_into().ok()?);
        (v != INVALID_M2P_ENTRY).then_some(Pfn(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    extern crate std;

    #[test]
    fn set_get_and_bounds() {
        let mut mem = FakeMemory(std::vec![[0xffu8; PAGE_SIZE]; 4]);
        let m2p = M2p { base: Mfn(2), entries: 1024 };
        assert_eq!(m2p.get(&mem, Mfn(700)), None);
        assert!(m2p.set(&mut mem, Mfn(700), Some(Pfn(5))));
        assert_eq!(m2p.get(&mem, Mfn(700)), Some(Pfn(5)));
        assert_eq!(u64::from_le_bytes(mem.0[3][(700 * 8 - 4096)..(700 * 8 - 4096 + 8)].try_into().unwrap()), 5);
        assert!(!m2p.set(&mut mem, Mfn(1024), Some(Pfn(1))));
        assert!(m2p.set(&mut mem, Mfn(700), None));
        assert_eq!(m2p.get(&mem, Mfn(700)), None);
    }

    #[test]
    fn runs_cross_table_frames() {
        let mut mem = FakeMemory(std::vec![[0xffu8; PAGE_SIZE]; 4]);
        let m2p = M2p { base: Mfn(2), entries: 1024 };
        assert!(m2p.set_run(&mut mem, Mfn(510), Pfn(7), 4));
        let got: std::vec::Vec<_> = (509..515).map(|m| m2p.get(&mem, Mfn(m))).collect();
        assert_eq!(got, [None, Some(Pfn(7)), Some(Pfn(8)), Some(Pfn(9)), Some(Pfn(10)), None]);
        assert!(!m2p.set_run(&mut mem, Mfn(1022), Pfn(0), 3), "past the table's end");
        assert_eq!(m2p.get(&mem, Mfn(1023)), Some(Pfn(1)), "what fits is written");
    }
}
