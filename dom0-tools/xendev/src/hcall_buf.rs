//! [`HypercallBuf`]: memory Xen may read and write during a hypercall.
//!
//! A PV hypercall from dom0's user space reaches Xen with the process's
//! page tables, and Xen follows pointer arguments itself: a page that is
//! not present (never touched, swapped, copy-on-write after `fork`) makes
//! the hypercall fail with `EFAULT`. libxencall therefore bounces every
//! argument through pinned pages: `mmap` of `/dev/xen/hypercall` (Linux's
//! privcmd-buf, `MAP_SHARED`, zeroed and pinned) or, without that device,
//! `MAP_LOCKED` anonymous memory with `MADV_DONTFORK`, every page touched
//! (Xen `tools/libs/call/linux.c`). This module does the same.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::invalid_input;
use crate::sys::{self, PAGE_SIZE};

/// Pinned pages for hypercall arguments; unmapped on drop.
///
/// Only this thread's hypercalls write it, while the caller waits, so
/// plain copies in and out are enough; no reference into it is handed out.
pub struct HypercallBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: owned memory without thread affinity.
unsafe impl Send for HypercallBuf {}

impl HypercallBuf {
    /// Allocates at least `len` bytes (whole pages, zeroed) from
    /// `/dev/xen/hypercall` if open, else locked anonymous memory.
    pub(crate) fn new(hypercall_dev: Option<&OwnedFd>, len: usize) -> io::Result<HypercallBuf> {
        let pages = len.max(1).div_ceil(PAGE_SIZE);
        let bytes = pages * PAGE_SIZE;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let ptr = match hypercall_dev {
            Some(fd) => match sys::mmap_shared(fd, bytes, prot, 0, "/dev/xen/hypercall") {
                Ok(p) => p,
                // privcmd-buf limits each open file to 64 pages: fall back.
                Err(_) => sys::mmap_locked_anon(bytes)?,
            },
            None => sys::mmap_locked_anon(bytes)?,
        };
        Ok(HypercallBuf { ptr, len: bytes })
    }

    /// Its length in bytes (a multiple of 4096).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty: at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address to pass to Xen (in an argument or a guest handle).
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// The address of byte `off`, for a guest handle into the buffer; `None`
    /// past the end.
    pub fn addr_of(&self, off: usize) -> Option<u64> {
        (off < self.len).then(|| self.addr() + off as u64)
    }

    fn check(&self, off: usize, n: usize) -> io::Result<()> {
        match off.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(invalid_input("hypercall buffer", format!("{off}+{n} past its {} bytes", self.len))),
        }
    }

    /// Copies `data` to byte `off`.
    pub fn write(&mut self, off: usize, data: &[u8]) -> io::Result<()> {
        self.check(off, data.len())?;
        // SAFETY: the range is inside the buffer (checked), which we own;
        // `data` cannot overlap it (no reference into it exists).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(off), data.len()) };
        Ok(())
    }

    /// Copies `buf.len()` bytes from byte `off`.
    pub fn read(&self, off: usize, buf: &mut [u8]) -> io::Result<()> {
        self.check(off, buf.len())?;
        // SAFETY: as in `write`, in the other direction.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `obj` to byte `off`.
    pub fn write_obj<T: IntoBytes + Immutable>(&mut self, off: usize, obj: &T) -> io::Result<()> {
        self.write(off, obj.as_bytes())
    }

    /// Reads a `T` from byte `off`.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, off: usize) -> io::Result<T> {
        let mut obj = T::new_zeroed();
        self.read(off, obj.as_mut_bytes())?;
        Ok(obj)
    }
}

impl Drop for HypercallBuf {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and no reference into it exists.
        let _ = unsafe { sys::munmap(self.ptr, self.len) };
    }
}

impl fmt::Debug for HypercallBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HypercallBuf")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_bounds_are_checked() {
        let Ok(mut buf) = HypercallBuf::new(None, 10) else {
            // MAP_LOCKED can exceed RLIMIT_MEMLOCK in a sandbox: nothing to test.
            return;
        };
        assert_eq!(buf.len(), 4096);
        assert!(buf.write_obj(4088, &0x1122_3344_5566_7788u64).is_ok());
        assert_eq!(buf.read_obj::<u64>(4088).ok(), Some(0x1122_3344_5566_7788));
        assert_eq!(buf.read_obj::<u32>(0).ok(), Some(0), "zeroed");
        assert!(buf.write_obj(4090, &0u64).is_err());
        assert!(buf.read(usize::MAX, &mut [0; 2]).is_err());
        assert_eq!(buf.addr_of(4096), None);
        assert_eq!(buf.addr_of(8), Some(buf.addr() + 8));
    }
}
