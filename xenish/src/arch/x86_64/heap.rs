//! The machine's frame allocator and the hypervisor heap that grows from it.
//!
//! The frame allocator (one bitmap over all of RAM) sits behind its own
//! lock, [`FRAMES`], so that both the portable core (through
//! [`MachineFrames`], its [`FramePool`]) and the global allocator can take
//! frames from it. The heap is a set of regions of machine-contiguous
//! frames reached through the direct map, each a first-fit
//! `linked_list_allocator` heap; when none can serve a request, the heap
//! takes a new region from the frame allocator, sized by
//! [`crate::mm::xenheap::growth_frames`] (it roughly doubles). Regions are
//! never given back.
//!
//! Lock order: the heap's lock, then [`FRAMES`]. Nothing that holds
//! [`FRAMES`] allocates from the heap (the frame allocator never does),
//! so the two cannot deadlock. A request nothing can serve is reported on
//! the console before the allocation fails (and the machine stops): out of
//! memory is a clear message, at boot or later.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};

use linked_list_allocator::Heap;
use spin::Mutex;

use super::memory::DirectMap;
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::xenheap::growth_frames;
use crate::mm::{FramePool, Mfn, PAGE_SIZE};
use crate::printk;

/// The machine's frame allocator, once boot code has set it up.
static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// Makes `frames` the machine's frame allocator, which the heap and
/// [`MachineFrames`] take frames from.
pub fn install_frames(frames: FrameAllocator<'static>) {
    *FRAMES.lock() = Some(frames);
}

/// Runs `f` on the frame allocator (`None` before [`install_frames`]);
/// `f` must not allocate from the heap.
pub fn with_frames<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> Option<R> {
    FRAMES.lock().as_mut().map(f)
}

/// The machine's frame allocator as the portable core's [`FramePool`].
pub struct MachineFrames;

impl FramePool for MachineFrames {
    fn alloc(&mut self) -> Option<Mfn> {
        with_frames(|f| f.alloc()).flatten()
    }

    fn alloc_run(&mut self, max: u64) -> Option<(Mfn, u64)> {
        with_frames(|f| f.alloc_run(max)).flatten()
    }

    fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<Mfn> {
        with_frames(|f| f.alloc_contiguous(count, align)).flatten()
    }

    fn alloc_contiguous_below(&mut self, count: u64, align: u64, end: Mfn) -> Option<Mfn> {
        with_frames(|f| f.alloc_contiguous_below(count, align, end)).flatten()
    }

    fn free(&mut self, mfn: Mfn) {
        // A frame the pool never handed out stays as it is.
        let _ = with_frames(|f| f.free(mfn));
    }

    fn free_frames(&self) -> u64 {
        with_frames(|f| f.free_frames()).unwrap_or(0)
    }
}

/// Regions the heap may have; with each growth at least doubling the heap,
/// this is far more than RAM allows.
const MAX_REGIONS: usize = 48;

/// The heap's regions.
struct Regions {
    heaps: [Heap; MAX_REGIONS],
    /// Regions in use: `heaps[..used]`.
    used: usize,
    /// Bytes of all regions.
    bytes: u64,
}

impl Regions {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.heaps.iter_mut().take(self.used).find_map(|h| h.allocate_first_fit(layout).ok())
    }

    /// Adds a region of `frames` frames from the frame allocator.
    fn grow(&mut self, frames: u64) -> bool {
        let Some(heap) = self.heaps.get_mut(self.used) else { return false };
        let Ok(bytes) = usize::try_from(frames.saturating_mul(PAGE_SIZE as u64)) else { return false };
        let Some(first) = with_frames(|f| f.alloc_contiguous(frames, 1)).flatten() else { return false };
        // SAFETY: the frames were just taken from the frame allocator for
        // the heap alone and are never given back; the direct map covers
        // every frame the allocator hands out (boot code adds frames to it
        // only once they are mapped), for as long as the hypervisor runs.
        unsafe { heap.init(DirectMap::va(first.addr()) as *mut u8, bytes) };
        self.used += 1;
        self.bytes += bytes as u64;
        true
    }
}

/// The hypervisor heap: the global allocator.
pub struct XenHeap(Mutex<Regions>);

#[global_allocator]
static HEAP: XenHeap =
    XenHeap(Mutex::new(Regions { heaps: [const { Heap::empty() }; MAX_REGIONS], used: 0, bytes: 0 }));

// SAFETY: every block handed out comes from one region's first-fit
// allocator for the layout asked, under the lock; regions never overlap
// (each is frames taken from the frame allocator once) and never go away,
// so a block stays valid until it is deallocated into the region it came
// from, which `dealloc` finds by address.
unsafe impl GlobalAlloc for XenHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut regions = self.0.lock();
        if let Some(p) = regions.alloc(layout) {
            return p.as_ptr();
        }
        let (preferred, least) = growth_frames(layout.size(), layout.align(), regions.bytes);
        if regions.grow(preferred) || regions.grow(least) {
            if let Some(p) = regions.alloc(layout) {
                return p.as_ptr();
            }
        }
        let free = FRAMES.try_lock().and_then(|f| f.as_ref().map(|f| f.free_frames())).unwrap_or(0);
        printk!(
            "xenish: out of memory for the hypervisor heap: {} bytes asked; the heap has {} KiB in {} regions, \
             {free} frames are free and no run of {least} of them is",
            layout.size(),
            regions.bytes / 1024,
            regions.used
        );
        null_mut()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut regions = self.0.lock();
        let used = regions.used;
        let Some(ptr) = NonNull::new(ptr) else { return };
        let home = regions.heaps.iter_mut().take(used).find(|h| h.bottom() <= ptr.as_ptr() && ptr.as_ptr() < h.top());
        if let Some(heap) = home {
            // SAFETY: the caller's contract: `ptr` was allocated by this
            // allocator with `layout`, from the region that contains it.
            unsafe { heap.deallocate(ptr, layout) };
        }
    }
}
