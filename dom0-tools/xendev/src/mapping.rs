//! [`Mapping`]: memory shared with the hypervisor or another domain,
//! mapped from a Xen device and unmapped (plus the device's release ioctl)
//! on drop.
//!
//! The other side may change the memory at any time, so it is never
//! handed out as a Rust reference: every access is a volatile copy, bounds
//! checked against the mapping. Ordering between accesses (ring protocols)
//! is the caller's, with `std::sync::atomic::fence`.

use std::fmt;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::sys;
use crate::uapi;

/// What to tell the device after `munmap`.
pub(crate) enum Release {
    /// Nothing: privcmd foreign maps, the store page.
    Unmap,
    /// `IOCTL_GNTDEV_UNMAP_GRANT_REF(index, count)`, as libxengnttab does.
    Gntdev { dev: Arc<OwnedFd>, index: u64, count: u32 },
    /// `IOCTL_GNTALLOC_DEALLOC_GREF(index, count)`: ends the grants once
    /// no domain maps them any more.
    Gntalloc { dev: Arc<OwnedFd>, index: u64, count: u32 },
}

/// An `mmap`ed region of a Xen device, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    release: Release,
}

// SAFETY: the mapping is process-wide memory with no thread affinity; the
// fds in `release` are shareable. All access is by volatile copies through
// `&self`, the same way another domain writes it concurrently.
unsafe impl Send for Mapping {}
// SAFETY: as above: no `&`/`&mut` into the memory is ever created.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Takes ownership of `len` mapped bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be a fresh `mmap` owned by nobody else, readable
    /// (and writable if callers will write), left mapped until drop.
    pub(crate) unsafe fn from_raw(ptr: NonNull<u8>, len: usize, release: Release) -> Mapping {
        Mapping { ptr, len, release }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for mappings this crate makes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start address, for callers that build their own accessors.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The address of `off..off+n`; panics if it is out of bounds (a caller bug).
    fn at(&self, off: usize, n: usize) -> *mut u8 {
        match off.checked_add(n) {
            Some(end) if end <= self.len => {}
            _ => panic!("Mapping access {off}+{n} out of bounds (len {})", self.len),
        }
        // SAFETY: `off + n <= len`, so the result stays inside the mapping.
        unsafe { self.ptr.as_ptr().add(off) }
    }

    /// Volatile read of the native-endian `u32` at `off`: one load when
    /// `off` is 4-aligned (ring indices shared with another domain must
    /// not tear), bytewise otherwise.
    pub fn read_u32(&self, off: usize) -> u32 {
        let p = self.at(off, 4);
        if (p as usize).is_multiple_of(4) {
            // SAFETY: `at` checked the 4 bytes are inside the mapping, which
            // stays mapped while `self` lives, and `p` is aligned.
            return unsafe { p.cast::<u32>().read_volatile() };
        }
        let mut b = [0u8; 4];
        self.read_bytes(off, &mut b);
        u32::from_ne_bytes(b)
    }

    /// Volatile write of the native-endian `u32` at `off`: one store when
    /// `off` is 4-aligned, bytewise otherwise.
    pub fn write_u32(&self, off: usize, v: u32) {
        let p = self.at(off, 4);
        if (p as usize).is_multiple_of(4) {
            // SAFETY: as in `read_u32`; the mapping is writable or the
            // kernel faults the process, which is the caller's choice.
            unsafe { p.cast::<u32>().write_volatile(v) };
            return;
        }
        self.write_bytes(off, &v.to_ne_bytes());
    }

    /// Volatile read of the native-endian `u64` at `off`: one load when
    /// `off` is 8-aligned, bytewise otherwise.
    pub fn read_u64(&self, off: usize) -> u64 {
        let p = self.at(off, 8);
        if (p as usize).is_multiple_of(8) {
            // SAFETY: `at` checked the 8 bytes are inside the mapping, which
            // stays mapped while `self` lives, and `p` is aligned.
            return unsafe { p.cast::<u64>().read_volatile() };
        }
        let mut b = [0u8; 8];
        self.read_bytes(off, &mut b);
        u64::from_ne_bytes(b)
    }

    /// Volatile copy of `off..off+buf.len()` into `buf`.
    pub fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        let src = self.at(off, buf.len());
        // SAFETY: `at` checked that the range is inside the mapping, which
        // stays mapped while `self` lives.
        unsafe { volatile_copy(src, buf.as_mut_ptr(), buf.len()) }
    }

    /// Volatile copy of `data` to `off..off+data.len()`.
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        let dst = self.at(off, data.len());
        // SAFETY: as in `read_bytes`; the mapping was made writable by
        // whoever returned it as such (a write to a read-only mapping
        // faults, it cannot corrupt Rust memory).
        unsafe { volatile_copy(data.as_ptr(), dst, data.len()) }
    }
}

/// Copies `n` bytes with volatile accesses: whole aligned `u32`s where
/// both sides allow (a shared ring's indices never tear), bytes elsewhere.
///
/// # Safety
/// Both ranges must be valid for `n` bytes and must not overlap.
unsafe fn volatile_copy(src: *const u8, dst: *mut u8, n: usize) {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n`, inside both ranges (caller's contract).
        let (s, d) = unsafe { (src.add(i), dst.add(i)) };
        if n - i >= 4 && (s as usize).is_multiple_of(4) && (d as usize).is_multiple_of(4) {
            // SAFETY: 4 bytes remain in both ranges and both are aligned.
            unsafe { d.cast::<u32>().write_volatile(s.cast::<u32>().read_volatile()) };
            i += 4;
        } else {
            // SAFETY: one byte remains in both ranges.
            unsafe { d.write_volatile(s.read_volatile()) };
            i += 1;
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is ours (constructor contract) and no reference
        // into it exists: accessors only copy.
        let _ = unsafe { sys::munmap(self.ptr, self.len) };
        match &self.release {
            Release::Unmap => {}
            Release::Gntdev { dev, index, count } => {
                let mut op = uapi::GntdevUnmapGrantRef { index: *index, count: *count, pad: 0 };
                // SAFETY: `op` is the ioctl's struct, alive for the call.
                let _ = unsafe {
                    sys::ioctl(&**dev, uapi::IOCTL_GNTDEV_UNMAP_GRANT_REF, std::ptr::from_mut(&mut op) as u64)
                };
            }
            Release::Gntalloc { dev, index, count } => {
                let mut op = uapi::GntallocDeallocGref { index: *index, count: *count, _pad: 0 };
                // SAFETY: `op` is the ioctl's struct, alive for the call.
                let _ = unsafe {
                    sys::ioctl(&**dev, uapi::IOCTL_GNTALLOC_DEALLOC_GREF, std::ptr::from_mut(&mut op) as u64)
                };
            }
        }
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping").field("ptr", &self.ptr).field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(len: usize) -> Mapping {
        let p = sys::mmap_locked_anon(len).or_else(|_| {
            // MAP_LOCKED may exceed RLIMIT_MEMLOCK in a test sandbox; any
            // fresh anonymous mapping will do here.
            // SAFETY: NULL hint, fresh private range.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            NonNull::new(p.cast::<u8>()).ok_or(())
        });
        let p = p.unwrap_or_else(|_| panic!("anonymous mmap failed"));
        // SAFETY: a fresh RW mapping of `len` bytes.
        unsafe { Mapping::from_raw(p, len, Release::Unmap) }
    }

    #[test]
    fn words_and_bytes_round_trip_at_any_alignment() {
        let m = anon(4096);
        m.write_u32(0, 0xdead_beef);
        assert_eq!(m.read_u32(0), 0xdead_beef);
        m.write_u32(4093 - 1, 0x0102_0304);
        assert_eq!(m.read_u32(4092), 0x0102_0304);
        m.write_bytes(5, b"unaligned copy over words");
        let mut back = [0u8; 25];
        m.read_bytes(5, &mut back);
        assert_eq!(&back, b"unaligned copy over words");
        assert_eq!(m.read_u64(0) as u32, 0xdead_beef);
        assert_eq!(m.len(), 4096);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn reading_past_the_end_is_a_caller_bug() {
        anon(4096).read_u32(4093);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn an_offset_that_overflows_is_caught() {
        anon(4096).read_bytes(usize::MAX, &mut [0u8; 2]);
    }
}
