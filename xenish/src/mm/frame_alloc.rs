//! The machine frame allocator: one bit per frame below a limit, set when the
//! frame is in use or not RAM. Boot code marks the memory map's usable
//! ranges free and then reserves the hypervisor image, the boot information
//! and the modules, so those frames are never handed out.
//!
//! The bitmap itself is sized to the top of RAM and placed by boot code in
//! free RAM ([`find_boot_region`]): one bit per frame, 32 KiB per GiB.
//! Single frames come from the bottom up; large allocations
//! ([`FrameAllocator::alloc_run`], dom0's memory) from the top down, so that
//! low memory, which devices with fewer address bits reach, stays free for
//! what needs it (Xen allocates dom0 with `MEMF_no_dma` for the same reason).

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
    /// Word index the next top-down search starts from (and below).
    top_hint: usize,
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
        let top_hint = bitmap.len().saturating_sub(1);
        FrameAllocator { bitmap, nr_frames, free: 0, hint: 0, top_hint }
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
            self.top_hint = self.top_hint.max((f / 64) as usize);
        }
    }

    /// Marks frames `[first, end)` (within the range tracked) used or
    /// free, a word at a time where whole words are covered.
    fn mark(&mut self, first: u64, end: u64, used: bool) {
        let end = end.min(self.nr_frames);
        let mut f = first;
        while f < end {
            let (w, bit) = ((f / 64) as usize, f % 64);
            let n = (64 - bit).min(end - f);
            let mask = if n == 64 { !0u64 } else { ((1u64 << n) - 1) << bit };
            let Some(word) = self.bitmap.get_mut(w) else { return };
            let changed = u64::from(if used { !*word & mask } else { *word & mask }.count_ones());
            if used {
                *word |= mask;
                self.free -= changed;
            } else {
                *word &= !mask;
                self.free += changed;
                self.top_hint = self.top_hint.max(w);
            }
            f += n;
        }
    }

    /// Marks the frames wholly inside the byte range `[start, end)` free.
    pub fn add_free_bytes(&mut self, start: u64, end: u64) {
        self.mark(start.div_ceil(4096), end / 4096, false);
    }

    /// Marks every frame touching the byte range `[start, end)` in use.
    pub fn reserve_bytes(&mut self, start: u64, end: u64) {
        self.mark(start / 4096, end.div_ceil(4096), true);
    }

    /// Allocates up to `max` machine-contiguous frames, taken from the top
    /// of memory down: the highest free frame and the free frames right
    /// below it. Returns the first frame and the count (at least 1).
    pub fn alloc_run(&mut self, max: u64) -> Option<(Mfn, u64)> {
        if max == 0 {
            return None;
        }
        // The highest free frame, from the top-down hint downwards.
        let mut w = self.top_hint.min(self.bitmap.len().checked_sub(1)?);
        let last = loop {
            // Bits past nr_frames stay set: a clear bit is a free frame.
            let word = *self.bitmap.get(w)?;
            if word != !0 {
                break w as u64 * 64 + 63 - u64::from((!word).leading_zeros());
            }
            w = w.checked_sub(1)?;
        };
        self.top_hint = w;
        // Extend downwards while free, whole words at a time when possible.
        let mut first = last;
        while last - first + 1 < max && first > 0 && !self.is_used(first - 1) {
            let below = first - 1;
            if below % 64 == 63 && last - below + 64 <= max && self.bitmap.get((below / 64) as usize) == Some(&0) {
                first -= 64;
            } else {
                first -= 1;
            }
        }
        self.mark(first, last + 1, true);
        Some((Mfn(first), last - first + 1))
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

    fn alloc_run(&mut self, max: u64) -> Option<(Mfn, u64)> {
        FrameAllocator::alloc_run(self, max)
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

/// Where boot code may put a structure of `size` bytes before the frame
/// allocator exists (the allocator's own bitmap): the lowest page-aligned
/// range inside one of the `available` byte ranges, ending at or below
/// `limit` (what the boot page tables map), overlapping none of the
/// `reserved` byte ranges (the first MiB, the image, the boot information,
/// the modules).
pub fn find_boot_region<R: Iterator<Item = (u64, u64)>>(
    available: impl Iterator<Item = (u64, u64)>,
    reserved: impl Fn() -> R,
    size: u64,
    limit: u64,
) -> Option<u64> {
    const PAGE: u64 = 4096;
    let mut best: Option<u64> = None;
    for (start, end) in available {
        let end = end.min(limit);
        let mut at = start.checked_next_multiple_of(PAGE)?;
        while let Some(stop) = at.checked_add(size).filter(|&stop| stop <= end) {
            let clash = reserved().filter(|&(r0, r1)| r0 < stop && at < r1).map(|(_, r1)| r1).max();
            match clash {
                None => {
                    best = Some(best.map_or(at, |b| b.min(at)));
                    break;
                }
                Some(r1) => at = r1.checked_next_multiple_of(PAGE)?,
            }
        }
    }
    best
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
    fn ranges_are_marked_a_word_at_a_time_and_counted() {
        let mut bm = vec![0u64; 4];
        let mut fa = FrameAllocator::new(&mut bm, 250);
        fa.add_free_bytes(0, 1 << 40);
        assert_eq!(fa.free_frames(), 250, "nothing past nr_frames");
        fa.reserve_bytes(3 * 4096, 200 * 4096 + 1);
        assert_eq!(fa.free_frames(), 250 - 198);
        fa.reserve_bytes(0, 10 * 4096);
        assert_eq!(fa.free_frames(), 250 - 201, "frames already used are not counted twice");
        fa.add_free_bytes(64 * 4096, 128 * 4096);
        assert_eq!(fa.free_frames(), 250 - 201 + 64);
        assert_eq!(fa.alloc_contiguous(64, 64), Some(Mfn(64)));
        assert_eq!(fa.alloc_run(1), Some((Mfn(249), 1)), "the last frame tracked");
    }

    #[test]
    fn runs_come_from_the_top_down() {
        let mut bm = vec![0u64; 4];
        let mut fa = FrameAllocator::new(&mut bm, 250);
        fa.add_free_bytes(0, 250 * 4096);
        fa.reserve_bytes(100 * 4096, 101 * 4096);
        assert_eq!(fa.alloc_run(10), Some((Mfn(240), 10)), "the highest frames first");
        assert_eq!(fa.alloc_run(1000), Some((Mfn(101), 139)), "down to the hole at 100");
        assert_eq!(fa.alloc_run(30), Some((Mfn(70), 30)));
        assert_eq!(fa.alloc(), Some(Mfn(0)), "single frames still from the bottom");
        assert_eq!(fa.alloc_run(0), None);
        assert_eq!(fa.alloc_run(1000), Some((Mfn(1), 69)));
        assert_eq!(fa.alloc_run(1), None, "everything taken");
        assert_eq!(fa.free_frames(), 0);
        fa.free(Mfn(5)).unwrap();
        fa.free(Mfn(245)).unwrap();
        assert_eq!(fa.alloc_run(4), Some((Mfn(245), 1)), "a frame freed up high is found again");
        assert_eq!(fa.alloc_run(4), Some((Mfn(5), 1)));
        let mut all = vec![0u64; 2];
        let mut fa = FrameAllocator::new(&mut all, 128);
        fa.add_free_bytes(0, 128 * 4096);
        assert_eq!(fa.alloc_run(u64::MAX), Some((Mfn(0), 128)), "whole words at once");
    }

    #[test]
    fn a_boot_region_avoids_what_is_reserved() {
        let ram = [(0, 0x9fc00), (0x10_0000, 0x4000_0000)];
        let reserved = [(0, 0x10_0000), (0x10_0000, 0x30_0000), (0x30_1000, 0x30_1800)];
        let place = |size, limit| find_boot_region(ram.iter().copied(), || reserved.iter().copied(), size, limit);
        assert_eq!(place(0x1000, u64::MAX), Some(0x30_0000), "the page between the image and the boot info");
        assert_eq!(place(0x2000, u64::MAX), Some(0x30_2000), "after the boot information, page-aligned");
        assert_eq!(place(0x4000_0000, u64::MAX), None, "too large for any range");
        assert_eq!(place(0x1000, 0x30_0000), None, "nothing free below the limit");
        let high_first = [(0x1_0000_0000, 0x2_0000_0000), (0x10_0000, 0x20_0000)];
        assert_eq!(find_boot_region(high_first.into_iter(), || [].into_iter(), 0x1000, u64::MAX), Some(0x10_0000));
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
