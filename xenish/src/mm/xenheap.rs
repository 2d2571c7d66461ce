//! How the hypervisor heap grows. As on Xen x86 there is one heap, taken
//! from the same frame allocator as guest memory ("all of RAM is covered by
//! a permanent contiguous mapping and there is only a single heap",
//! xen/common/page_alloc.c): it starts empty and grows by regions of
//! machine-contiguous frames reached through the direct map, so it is
//! never what limits a large machine; what it may hold is bounded by
//! the memory left free. This module decides how much each growth takes;
//! the arch layer's allocator does the taking.

use super::PAGE_SIZE;

/// The smallest region the heap grows by: 2 MiB, in frames.
pub const MIN_GROWTH_FRAMES: u64 = 512;

/// Bytes a region spends on the allocator's bookkeeping, at most.
const OVERHEAD: u64 = 64;

/// The frames to grow a heap of `heap_bytes` by, so that it can serve a
/// request of `size` bytes aligned to `align`: `(preferred, least)`. The
/// preferred growth is at least [`MIN_GROWTH_FRAMES`] and at least what the
/// heap has already (it doubles, so a few regions serve any total); the
/// least is what the request alone needs, to try when memory is short.
pub fn growth_frames(size: usize, align: usize, heap_bytes: u64) -> (u64, u64) {
    let need = (size as u64).saturating_add(align as u64).saturating_add(OVERHEAD);
    let least = need.div_ceil(PAGE_SIZE as u64);
    let preferred = least.max(MIN_GROWTH_FRAMES).max(heap_bytes / PAGE_SIZE as u64);
    (preferred, least)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_doubles_and_always_fits_the_request() {
        assert_eq!(growth_frames(64, 8, 0), (MIN_GROWTH_FRAMES, 1), "the first region: 2 MiB");
        assert_eq!(growth_frames(64, 8, 8 << 20), (2048, 1), "as much as it has: 8 MiB more");
        let (big, least) = growth_frames(100 << 20, 4096, 4 << 20);
        assert!(big >= least && least * 4096 >= (100 << 20) + 4096, "room for the request and its alignment");
        assert_eq!(growth_frames(usize::MAX, 8, 0).1, u64::MAX.div_ceil(4096), "no overflow");
    }
}
