//! The hypervisor's own address space: the direct map of machine memory at
//! `DIRECTMAP_START`, through which the portable core reaches frames, and the
//! layout constants of the hypervisor hole.
//!
//! **How much memory xenish uses: up to 5 TiB** ([`DIRECTMAP_SIZE`]). The
//! direct map is where the hypervisor reaches every frame (guest memory,
//! the frame table, the M2P, its heap), and it has L4 slots 262..=271 of
//! the hypervisor hole, as in Xen: 10 x 512 GiB. RAM above that is not
//! used (boot says so). The next limits would be the frame allocator's
//! bitmap, which boot places below 4 GiB (1 bit per frame: 160 MiB at
//! 5 TiB), and the frame table's 32-bit page-list links (16 TiB).

use crate::builder::ContiguousMemory;
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};

/// Where the image is linked: `XEN_VIRT_START + physical address`.
pub const XEN_VIRT_START: u64 = 0xffff_82d0_8000_0000;
/// Start of the direct map of machine memory (L4 slot 262, as in Xen).
pub const DIRECTMAP_START: u64 = 0xffff_8300_0000_0000;
/// Machine memory the boot page tables map in the direct map: 4 GiB.
pub const DIRECTMAP_BOOT_SIZE: u64 = 4 << 30;
/// Machine memory the direct map can hold: L4 slots 262..=271, 5 TiB (the
/// end of the hypervisor hole, `HYPERVISOR_VIRT_END`, is slot 272).
pub const DIRECTMAP_SIZE: u64 = 10 << 39;
/// Uncached mapping of the local APIC's registers (a fixmap slot just
/// above the image's gigabyte).
pub const FIXMAP_APIC: u64 = 0xffff_82d0_c000_0000;
/// Guest-visible read-only machine-to-phys table (L4 slot 256).
pub const RO_MPT_START: u64 = 0xffff_8000_0000_0000;

/// The direct map, as [`MachineMemory`] for frames below `limit`.
pub struct DirectMap {
    limit: Mfn,
}

impl DirectMap {
    /// A view of frames `[0, limit)`, which the direct map must cover.
    ///
    /// # Safety
    /// Every frame below `limit` must be mapped at `DIRECTMAP_START + addr`,
    /// and no Rust reference to a frame handed out may be held across a call
    /// that hands out the same frame again.
    pub const unsafe fn new(limit: Mfn) -> Self {
        DirectMap { limit }
    }

    /// The direct-map virtual address of machine address `ma`.
    pub const fn va(ma: u64) -> u64 {
        DIRECTMAP_START + ma
    }
}

impl MachineMemory for DirectMap {
    fn frame(&self, mfn: Mfn) -> Option<&[u8; PAGE_SIZE]> {
        (mfn < self.limit).then(|| {
            // SAFETY: `new`'s contract: the frame is mapped, and the borrow of
            // `self` bounds the reference's use.
            unsafe { &*(Self::va(mfn.addr()) as *const [u8; PAGE_SIZE]) }
        })
    }

    fn frame_mut(&mut self, mfn: Mfn) -> Option<&mut [u8; PAGE_SIZE]> {
        (mfn < self.limit).then(|| {
            // SAFETY: as above; `&mut self` keeps this the only live reference
            // handed out by this view.
            unsafe { &mut *(Self::va(mfn.addr()) as *mut [u8; PAGE_SIZE]) }
        })
    }

    fn copy_bytes(&mut self, src: Mfn, src_off: usize, dst: Mfn, dst_off: usize, len: usize) -> bool {
        let fits = |off: usize| off.checked_add(len).is_some_and(|end| end <= PAGE_SIZE);
        if src >= self.limit || dst >= self.limit || !fits(src_off) || !fits(dst_off) {
            return false;
        }
        let from = Self::va(src.addr()) + src_off as u64;
        let to = Self::va(dst.addr()) + dst_off as u64;
        // SAFETY: `new`'s contract: both frames are mapped, and both ranges
        // lie inside their frames (checked above); `&mut self` means no
        // reference this view handed out is live. `copy` allows overlap.
        unsafe { core::ptr::copy(from as *const u8, to as *mut u8, len) };
        true
    }

    fn read_guest_direct(&self, l4: Mfn, va: u64, buf: &mut [u8]) -> bool {
        super::guest_copy::read(l4, va, buf)
    }

    fn write_guest_direct(&mut self, l4: Mfn, va: u64, data: &[u8]) -> bool {
        // `&mut self`: no frame reference this view handed out is live
        // while the guest's mapping writes the frame behind it.
        super::guest_copy::write(l4, va, data)
    }
}

/// Runs of contiguous frames below `limit` through the direct map, for
/// buffers the hypervisor allocates for itself (a decompressed kernel).
pub struct DirectMapRuns {
    limit: Mfn,
}

impl DirectMapRuns {
    /// A view of runs of frames in `[0, limit)`, which the direct map must cover.
    ///
    /// # Safety
    /// Every frame below `limit` must be mapped at `DIRECTMAP_START + addr`,
    /// and callers may only ask for frames they allocated for themselves,
    /// which no other view hands out while the slice lives.
    pub const unsafe fn new(limit: Mfn) -> Self {
        DirectMapRuns { limit }
    }
}

impl ContiguousMemory for DirectMapRuns {
    fn bytes_mut(&mut self, first: Mfn, count: u64) -> Option<&mut [u8]> {
        let end = first.0.checked_add(count)?;
        let len = usize::try_from(count.checked_mul(PAGE_SIZE as u64)?).ok()?;
        (end <= self.limit.0).then(|| {
            // SAFETY: `new`'s contract: the run is mapped and owned by the
            // caller alone; `&mut self` bounds the slice's use.
            unsafe { core::slice::from_raw_parts_mut(DirectMap::va(first.addr()) as *mut u8, len) }
        })
    }
}
