//! Atomic access to words of frames a guest shares with the hypervisor.
//!
//! The event bits of shared_info and vcpu_info, FIFO event words and
//! control blocks, grant entries and status words are written by the guest
//! while the hypervisor reads and updates them: Xen uses locked
//! instructions on them (`guest_test_and_set_bit`, `guest_cmpxchg`), so
//! does xenish. A word is viewed as a `core::sync::atomic` type in place
//! (zerocopy checks size and alignment), so every update is one locked
//! read-modify-write of guest memory and never a copy written back.

use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8};

use zerocopy::{FromBytes, IntoBytes, KnownLayout};

use super::{MachineMemory, Mfn};

/// The atomic of type `A` at byte `offset` of frame `mfn`: `None` if the
/// frame is not mapped RAM, or the word does not fit in the frame or is not
/// naturally aligned.
fn view<A: FromBytes + IntoBytes + KnownLayout>(mem: &mut dyn MachineMemory, mfn: Mfn, offset: usize) -> Option<&A> {
    let end = offset.checked_add(size_of::<A>())?;
    let bytes = mem.frame_mut(mfn)?.get_mut(offset..end)?;
    A::mut_from_bytes(bytes).ok().map(|a| &*a)
}

/// The byte at `offset` of `mfn`.
pub fn u8_at(mem: &mut dyn MachineMemory, mfn: Mfn, offset: usize) -> Option<&AtomicU8> {
    view(mem, mfn, offset)
}

/// The 16-bit word at `offset` of `mfn` (2-aligned).
pub fn u16_at(mem: &mut dyn MachineMemory, mfn: Mfn, offset: usize) -> Option<&AtomicU16> {
    view(mem, mfn, offset)
}

/// The 32-bit word at `offset` of `mfn` (4-aligned).
pub fn u32_at(mem: &mut dyn MachineMemory, mfn: Mfn, offset: usize) -> Option<&AtomicU32> {
    view(mem, mfn, offset)
}

/// The 64-bit word at `offset` of `mfn` (8-aligned).
pub fn u64_at(mem: &mut dyn MachineMemory, mfn: Mfn, offset: usize) -> Option<&AtomicU64> {
    view(mem, mfn, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::mm::PAGE_SIZE;
    use core::sync::atomic::Ordering::SeqCst;
    extern crate std;

    #[test]
    fn words_are_views_of_the_frame_in_place() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 2]);
        u32_at(&mut mem, Mfn(1), 8).map(|w| w.fetch_or(0x8000_0001, SeqCst));
        assert_eq!(&mem.0[1][8..12], &[1, 0, 0, 0x80]);
        assert_eq!(u16_at(&mut mem, Mfn(1), 10).map(|w| w.load(SeqCst)), Some(0x8000));
        assert_eq!(u64_at(&mut mem, Mfn(1), 8).map(|w| w.swap(0, SeqCst)), Some(0x8000_0001));
        assert_eq!(mem.0[1][8..16], [0; 8]);
    }

    #[test]
    fn misplaced_words_are_none() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        assert!(u32_at(&mut mem, Mfn(0), 2).is_none(), "misaligned");
        assert!(u64_at(&mut mem, Mfn(0), PAGE_SIZE - 4).is_none(), "crosses the frame's end");
        assert!(u32_at(&mut mem, Mfn(0), usize::MAX - 1).is_none(), "offset overflow");
        assert!(u8_at(&mut mem, Mfn(1), 0).is_none(), "no such frame");
        assert!(u8_at(&mut mem, Mfn(0), PAGE_SIZE - 1).is_some());
    }
}
