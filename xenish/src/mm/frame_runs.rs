//! A domain's memory as runs of machine-contiguous frames, in pseudo-physical
//! order: how a boot-time domain's memory is taken from the frame allocator
//! and handed to the builder, a few entries however large the domain
//! (rather than one `Mfn` per page on the hypervisor heap).

use alloc::vec::Vec;

use super::Mfn;

/// One run: pfns `[first_pfn, first_pfn + count)` are frames
/// `[mfn, mfn + count)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first_pfn: u64,
    mfn: Mfn,
    count: u64,
}

/// Runs of frames backing pfns 0, 1, 2, ... in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameRuns {
    runs: Vec<Run>,
    nr_pages: u64,
}

impl FrameRuns {
    /// No memory yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `count` frames from `mfn` as the next pfns (merged with the
    /// last run when they follow it).
    pub fn push(&mut self, mfn: Mfn, count: u64) {
        if count == 0 {
            return;
        }
        match self.runs.last_mut() {
            Some(last) if last.mfn.0.checked_add(last.count) == Some(mfn.0) => last.count += count,
            _ => self.runs.push(Run { first_pfn: self.nr_pages, mfn, count }),
        }
        self.nr_pages += count;
    }

    /// Pfns backed.
    pub fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// The frame behind `pfn` and how many pfns from `pfn` on are backed by
    /// the frames that follow it.
    pub fn run(&self, pfn: u64) -> Option<(Mfn, u64)> {
        let i = self.runs.partition_point(|r| r.first_pfn <= pfn).checked_sub(1)?;
        let r = self.runs.get(i)?;
        let off = pfn - r.first_pfn;
        (off < r.count).then(|| (Mfn(r.mfn.0 + off), r.count - off))
    }

    /// Each run as (first pfn, first frame, count), in pfn order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Mfn, u64)> + '_ {
        self.runs.iter().map(|r| (r.first_pfn, r.mfn, r.count))
    }

    /// Every frame, in pfn order.
    pub fn frames(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.runs.iter().flat_map(|r| (r.mfn.0..r.mfn.0 + r.count).map(Mfn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn pfns_map_to_runs_in_order() {
        let mut r = FrameRuns::new();
        r.push(Mfn(100), 3);
        r.push(Mfn(103), 2); // follows: merged
        r.push(Mfn(10), 1);
        r.push(Mfn(50), 0);
        r.push(Mfn(20), 4);
        assert_eq!(r.nr_pages(), 10);
        assert_eq!(r.iter().count(), 3);
        assert_eq!(r.run(0), Some((Mfn(100), 5)));
        assert_eq!(r.run(4), Some((Mfn(104), 1)));
        assert_eq!(r.run(5), Some((Mfn(10), 1)));
        assert_eq!(r.run(7), Some((Mfn(21), 3)));
        assert_eq!(r.run(10), None);
        let all: std::vec::Vec<u64> = r.frames().map(|m| m.0).collect();
        assert_eq!(all, [100, 101, 102, 103, 104, 10, 20, 21, 22, 23]);
        assert_eq!(FrameRuns::new().run(0), None);
    }
}
