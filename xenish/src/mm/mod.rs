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
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

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
