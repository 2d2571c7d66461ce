//! The machine frame allocator: one bit per frame below a limit, set when the
//! frame is in use or not RAM. Boot code marks the memory map's usable
//! ranges free and then reserves the hypervisor image, the boot information
//! and the modules, so those frames are never handed out.

use super::Mfn;

/// Why a frame operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is beyond the allocator's range.
    OutOfRange,
    /// Freeing a frame that is not allocated.
    NotAllocated,
}

/// A bitmap frame allocator over `[0, nr_frames)`.
pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    nr_frames: u64,
    free: u64,
    /// Word index to start the next search from.
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Frames of bitmap storage needed to track `nr_frames` frames.
    pub const fn bitmap_words(nr_frames: u64) -> usize {
        nr_frames.div_ceil(64) as usize
    }

    /// An allocator with every frame in use; `bitmap` needs at least
    /// [`Self::bitmap_words`] words. Frames beyond the bitmap are ignored.
    pub fn new(bitmap: &'a mut [u64], nr_frames: u64) -> Self {
        let nr_frames = nr_frames.min(bitmap.len() as u64 * 64);
        bitmap.fill(!0);
        FrameAllocator { bitmap, nr_frames, free: 0, hint: 0 }
    }

    /// Total frames tracked.
    pub fn nr_frames(&self) -> u64 {
        self.nr_frames
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    fn is_used(&self, f: u64) -> bool {
        self.bitmap[(f / 64) as usize] & (1 << (f % 64)) != 0
    }

    fn set(&mut self, f: u64, used: bool) {
        let word = &mut self.bitmap[(f / 64) as usize];
        let bit = 1u64 << (f % 64);
        if used && *word & bit == 0 {
            *word |= bit;
            self.free -= 1;
        } else if !used && *word & bit != 0 {
            *word &= !bit;
            self.free += 1;
        }
    }

    /// Marks the frames wholly inside the byte range `[start, end)` free.
    pub fn add_free_bytes(&mut self, start: u64, end: u64) {
        let first = start.div_ceil(4096);
        let last = (end / 4096).min(self.nr_frames);
        for f in first..last.max(first) {
            self.set(f, false);
        }
    }

    /// Marks every frame touching the byte range `[start, end)` in use.
    pub fn reserve_bytes(&mut self, start: u64, end: u64) {
        let first = start / 4096;
        let last = end.div_ceil(4096).min(self.nr_frames);
        for f in first..last.max(first) {
            self.set(f, true);
        }
    }

    /// Allocates one frame.
    pub fn alloc(&mut self) -> Option<Mfn> {
        let words = self.bitmap.len();
        for i in 0..words {
            let w = (self.hint + i) % words;
            let word = self.bitmap[w];
            if word != !0 {
                let f = w as u64 * 64 + u64::from((!word).trailing_zeros());
                if f < self.nr_frames {
                    self.set(f, true);
                    self.hint = w;
                    return Some(Mfn(f));
                }
            }
        }
        None
    }

    /// Allocates `count` physically contiguous frames whose first frame
    /// number is a multiple of `align` (a power of two).
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<Mfn> {
        self.alloc_contiguous_below(count, align, Mfn(u64::MAX))
    }

    /// Allocates `count` physically contiguous frames whose first frame
    /// number is a multiple of `align` (a power of two) and whose last is
    /// below `end` (an allocation limited to an address width, Xen's
    /// `MEMF_bits`).
    pub fn alloc_contiguous_below(&mut self, count: u64, align: u64, end: Mfn) -> Option<Mfn> {
        if count == 0 || !align.is_power_of_two() {
            return None;
        }
        let limit = self.nr_frames.min(end.0);
        let mut start = 0u64;
        loop {
            start = self.first_free_from(start, limit)?.checked_next_multiple_of(align)?;
            if start.checked_add(count)? > limit {
                return None;
            }
            match (start..start + count).find(|&f| self.is_used(f)) {
                None => {
                    for f in start..start + count {
                        self.set(f, true);
                    }
                    return Some(Mfn(start));
                }
                Some(used) => start = used + 1,
            }
        }
    }

    /// The first free frame at or after `f` and below `limit`, skipping
    /// whole words of used frames.
    fn first_free_from(&self, mut f: u64, limit: u64) -> Option<u64> {
        while f < limit {
            let word = self.bitmap.get((f / 64) as usize)? >> (f % 64);
            if word == !0u64 >> (f % 64) {
                f = (f / 64 + 1) * 64;
                continue;
            }
            return Some(f + u64::from((!word).trailing_zeros())).filter(|&free| free < limit);
        }
        None
    }

    /// Returns a frame to the pool.
    pub fn free(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        if mfn.0 >= self.nr_frames {
            return Err(FrameError::OutOfRange);
        }
        if !self.is_used(mfn.0) {
            return Err(FrameError::NotAllocated);
        }
        self.set(mfn.0, false);
        Ok(())
    }
}

impl super::FramePool for FrameAllocator<'_> {
    fn alloc(&mut self) -> Option<Mfn> {
        FrameAllocator::alloc(self)
    }

    fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<Mfn> {
        FrameAllocator::alloc_contiguous(self, count, align)
    }

    fn alloc_contiguous_below(&mut self, count: u64, align: u64, end: Mfn) -> Option<Mfn> {
        FrameAllocator::alloc_contiguous_below(self, count, align, end)
    }

    fn free(&mut self, mfn: Mfn) {
        // A frame the pool never handed out stays as it is: freeing it
        // would give away memory someone else may own.
        let _ = FrameAllocator::free(self, mfn);
    }

    fn free_frames(&self) -> u64 {
        FrameAllocator::free_frames(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    #[test]
    fn hands_out_only_free_unreserved_frames() {
        let mut bm = vec![0u64; 4];
        let mut fa = FrameAllocator::new(&mut bm, 256);
        assert_eq!(fa.free_frames(), 0);
        fa.add_free_bytes(0x1800, 0x10_000); // partial first frame excluded: 2..16
        fa.reserve_bytes(0x4000, 0x5001); // frames 4 and 5
        assert_eq!(fa.free_frames(), 12);
        let mut got = vec![];
        while let Some(m) = fa.alloc() {
            got.push(m.0);
        }
        assert_eq!(got, [2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(fa.free_frames(), 0);
    }

    #[test]
    fn contiguous_respects_alignment_and_holes() {
        let mut bm = vec![0u64; 4];
        let mut fa = FrameAllocator::new(&mut bm, 256);
        fa.add_free_bytes(0, 256 * 4096);
        fa.reserve_bytes(5 * 4096, 6 * 4096);
        assert_eq!(fa.alloc_contiguous(8, 8), Some(Mfn(8)));
        assert_eq!(fa.alloc_contiguous(4, 1), Some(Mfn(0)));
        assert_eq!(fa.alloc_contiguous(300, 1), None);
        assert_eq!(fa.alloc_contiguous(0, 1), None);
    }

    #[test]
    fn contiguous_below_a_limit() {
        let mut bm = vec![0u64; 4];
        let mut fa = FrameAllocator::new(&mut bm, 256);
        fa.add_free_bytes(0, 256 * 4096);
        fa.reserve_bytes(0, 16 * 4096);
        assert_eq!(fa.alloc_contiguous_below(2, 2, Mfn(18)), Some(Mfn(16)), "ends right at the limit");
        assert_eq!(fa.alloc_contiguous_below(2, 2, Mfn(19)), None, "18..20 crosses it");
        assert_eq!(fa.alloc_contiguous_below(1, 1, Mfn(16)), None, "nothing free below");
        assert_eq!(fa.alloc_contiguous_below(4, 4, Mfn(u64::MAX)), Some(Mfn(20)), "no limit");
        assert_eq!(fa.alloc_contiguous_below(1, 3, Mfn(100)), None, "alignment not a power of two");
        assert_eq!(fa.free_frames(), 256 - 16 - 6);
        fa.reserve_bytes(0, 200 * 4096);
        assert_eq!(fa.alloc_contiguous_below(64, 64, Mfn(256)), None, "no aligned run of 64 left");
        assert_eq!(fa.alloc_contiguous_below(8, 8, Mfn(256)), Some(Mfn(200)), "past whole used words");
        assert_eq!(fa.alloc_contiguous_below(1, 1, Mfn(256)), Some(Mfn(208)));
    }

    #[test]
    fn free_checks_state_and_range() {
        let mut bm = vec![0u64; 1];
        let mut fa = FrameAllocator::new(&mut bm, 64);
        fa.add_free_bytes(0, 64 * 4096);
        let m = fa.alloc().unwrap();
        assert_eq!(fa.free(m), Ok(()));
        assert_eq!(fa.free(m), Err(FrameError::NotAllocated));
        assert_eq!(fa.free(Mfn(64)), Err(FrameError::OutOfRange));
    }
}
