//! Memory-management vocabulary shared by the portable core: frame numbers and
//! the narrow trait through which the core reaches machine memory.

pub mod frame_alloc;
pub mod frame_runs;
pub mod frame_table;
pub mod m2p;
pub mod pagetable;
pub mod pt_validate;
pub mod shared_word;
pub mod xenheap;

/// Bytes in a page (x86_64 base page).
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// log2 of [`PAGE_SIZE`] (`XEN_PAGE_SHIFT`).
pub const PAGE_SHIFT: u32 = guest_abi::io::ring::XEN_PAGE_SHIFT;

/// A machine frame number: host-physical address >> 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(pub u64);

/// A guest pseudo-physical frame number (index into the guest's p2m).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

impl Mfn {
    /// The machine address of the frame's first byte.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    /// The frame containing machine address `addr`.
    pub const fn containing(addr: u64) -> Self {
        Mfn(addr >> PAGE_SHIFT)
    }
}

/// Byte access to machine frames by number: the direct map on hardware, a
/// vector of pages in host tests.
pub trait MachineMemory {
    /// The frame's bytes, or `None` if `mfn` is not RAM the hypervisor maps.
    fn frame(&self, mfn: Mfn) -> Option<&[u8; PAGE_SIZE]>;
    /// The frame's bytes for writing, or `None` if `mfn` is not mapped RAM.
    fn frame_mut(&mut self, mfn: Mfn) -> Option<&mut [u8; PAGE_SIZE]>;

    /// The machine address of guest virtual address `va` through the
    /// four-level page tables rooted at `l4`, every entry on the way
    /// carrying all of `need`'s bits; `None` where the walk stops. One call
    /// per walk (the default, [`crate::guest_access::walk_tables`], is
    /// compiled for each view with its frame lookups in line): every guest
    /// copy on the hot paths walks.
    fn walk_guest(&self, l4: Mfn, va: u64, need: u64) -> Option<u64> {
        crate::guest_access::walk_tables(self, l4, va, need)
    }

    /// Copies guest memory at `va` into `buf` directly through the page
    /// tables the CPU has loaded, if they are `l4` and the access may be
    /// made that way (on hardware: `arch::x86_64::guest_copy`);
    /// `false`, with `buf` holding anything, where it may not or a fault
    /// was taken: the caller then walks the tables in software, which
    /// decides the failure. Only for an entry that has changed no page
    /// table since the guest left it (the fast path): the loaded
    /// translations are then the guest's own. Host views: always `false`.
    fn read_guest_direct(&self, l4: Mfn, va: u64, buf: &mut [u8]) -> bool {
        let _ = (l4, va, buf);
        false
    }

    /// [`Self::read_guest_direct`] for a write of `data` at `va`, within one
    /// page: `false` leaves guest memory as it was.
    fn write_guest_direct(&mut self, l4: Mfn, va: u64, data: &[u8]) -> bool {
        let _ = (l4, va, data);
        false
    }

    /// Copies `len` bytes at `src_off` of frame `src` to `dst_off` of frame
    /// `dst` (the same frame or two; the ranges may overlap), as one
    /// `memmove` where the memory allows it: grant copy and `COPY_PAGE`
    /// move guest data frame to frame, not through a bounce buffer.
    /// `false`, with nothing copied, if a frame is not mapped RAM or a
    /// range leaves its frame.
    fn copy_bytes(&mut self, src: Mfn, src_off: usize, dst: Mfn, dst_off: usize, len: usize) -> bool {
        let fits = |off: usize| off.checked_add(len).is_some_and(|end| end <= PAGE_SIZE);
        if !fits(src_off) || !fits(dst_off) || self.frame(src).is_none() || self.frame(dst).is_none() {
            return false;
        }
        if src == dst {
            return self.frame_mut(dst).map(|f| f.copy_within(src_off..src_off + len, dst_off)).is_some();
        }
        // Views that cannot lend two frames at once go through a buffer.
        let mut chunk = [0u8; 256];
        for done in (0..len).step_by(chunk.len()) {
            let n = chunk.len().min(len - done);
            let Some(from) = self.frame(src).and_then(|f| f.get(src_off + done..src_off + done + n)) else {
                return false;
            };
            let buf = &mut chunk[..n];
            buf.copy_from_slice(from);
            let Some(to) = self.frame_mut(dst).and_then(|f| f.get_mut(dst_off + done..dst_off + done + n)) else {
                return false;
            };
            to.copy_from_slice(buf);
        }
        true
    }
}

/// Where the hypervisor takes machine frames from at run time (grant-table
/// frames, later domains' memory) and returns them to.
pub trait FramePool {
    /// A free frame, now in use; `None` when memory is exhausted.
    fn alloc(&mut self) -> Option<Mfn>;
    /// Up to `max` machine-contiguous free frames, now in use, for large
    /// allocations (a boot-time domain's memory): the first and the count
    /// (at least 1); `None` when memory is exhausted. A pool without runs
    /// hands out one frame at a time.
    fn alloc_run(&mut self, max: u64) -> Option<(Mfn, u64)> {
        if max == 0 {
            return None;
        }
        self.alloc().map(|m| (m, 1))
    }
    /// `count` machine-contiguous free frames, the first a multiple of
    /// `align` (a power of two); `None` if there is no such run.
    fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<Mfn>;
    /// As [`FramePool::alloc_contiguous`], with every frame below `end`
    /// (Xen's `MEMF_bits`: memory a device with fewer address bits reaches).
    fn alloc_contiguous_below(&mut self, count: u64, align: u64, end: Mfn) -> Option<Mfn>;
    /// Returns a frame taken with [`FramePool::alloc`].
    fn free(&mut self, mfn: Mfn);
    /// Frames still free.
    fn free_frames(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;

    #[test]
    fn copy_bytes_moves_between_frames_and_within_one_and_refuses_what_leaves_a_frame() {
        let mut m = FakeMemory(alloc::vec![[0u8; PAGE_SIZE]; 2]);
        for (i, b) in m.0[0].iter_mut().enumerate() {
            *b = i as u8;
        }
        assert!(m.copy_bytes(Mfn(0), 1000, Mfn(1), 7, 600), "across the 256-byte chunks");
        assert_eq!(&m.0[1][7..607], &m.0[0][1000..1600]);
        assert_eq!((m.0[1][6], m.0[1][607]), (0, 0), "nothing around it");
        assert!(m.copy_bytes(Mfn(0), 0, Mfn(0), 1, 10), "overlapping, as memmove");
        assert_eq!(&m.0[0][..11], &[0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let before = m.0.clone();
        assert!(!m.copy_bytes(Mfn(0), PAGE_SIZE - 4, Mfn(1), 0, 5));
        assert!(!m.copy_bytes(Mfn(0), 0, Mfn(1), usize::MAX, 1));
        assert!(!m.copy_bytes(Mfn(0), 0, Mfn(2), 0, 1), "no such frame");
        assert!(m.0 == before, "a refused copy copies nothing");
        assert!(m.copy_bytes(Mfn(1), 0, Mfn(0), 0, PAGE_SIZE));
    }
}
