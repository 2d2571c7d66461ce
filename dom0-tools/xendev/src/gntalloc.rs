//! [`Gntalloc`]: `/dev/xen/gntalloc`, granting this domain's pages to
//! another domain from user space.
//!
//! Semantics (Linux 6.1 `drivers/xen/gntalloc.c`): `ALLOC_GREF` allocates
//! zeroed pages, writes this domain's grant entries for `domid` and
//! returns the refs and an mmap offset; `mmap` (`MAP_SHARED` only) maps the
//! pages. A page is freed, and its grant ended, once it is both unmapped
//! and deallocated (`DEALLOC_GREF`) and the other domain no longer maps
//! it. Linux limits the device to 1024 pages system-wide (`limit`).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::{dev_error, invalid_input};
use crate::mapping::{Mapping, Release};
use crate::sys::{self, PAGE_SIZE};
use crate::uapi;

/// An open `/dev/xen/gntalloc`.
#[derive(Debug)]
pub struct Gntalloc {
    fd: Arc<OwnedFd>,
}

/// Pages granted to another domain: their grant refs and a read-write
/// mapping of them. Dropping it unmaps and deallocates the pages.
#[derive(Debug)]
pub struct GrantAlloc {
    grefs: Vec<u32>,
    mapping: Mapping,
}

impl GrantAlloc {
    /// The grant reference of each page, in order.
    pub fn grefs(&self) -> &[u32] {
        &self.grefs
    }

    /// The pages, read-write for this domain.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }
}

impl Gntalloc {
    /// Opens `/dev/xen/gntalloc`.
    pub fn open() -> io::Result<Gntalloc> {
        Ok(Gntalloc { fd: Arc::new(sys::open_rw("/dev/xen/gntalloc", 0)?) })
    }

    /// Grants `count` fresh zeroed pages to `domid`, writable by it if
    /// `writable`, and maps them here.
    pub fn alloc(&self, domid: u16, count: u32, writable: bool) -> io::Result<GrantAlloc> {
        let op = || format!("IOCTL_GNTALLOC_ALLOC_GREF(dom {domid}, {count} pages)");
        let n = usize::try_from(count).ok().filter(|&n| n > 0).ok_or_else(|| invalid_input(op(), "no pages"))?;
        let flags = if writable { uapi::GNTALLOC_FLAG_WRITABLE } else { 0 };
        // The header (domid, flags, count, index: 4 u32s) then the ids; at
        // least the 24 bytes of the C struct, which the kernel copies whole.
        let header = uapi::GntallocAllocGref::HEADER_LEN / 4;
        let mut arg = vec![0u32; (header + n).max(size_of::<uapi::GntallocAllocGref>() / 4)];
        arg[0] = u32::from(domid) | (u32::from(flags) << 16);
        arg[1] = count;
        // SAFETY: `arg` is a `struct ioctl_gntalloc_alloc_gref` with room for
        // `count` ids (the kernel writes exactly that many), alive for the call.
        unsafe { sys::ioctl(&*self.fd, uapi::IOCTL_GNTALLOC_ALLOC_GREF, arg.as_mut_ptr() as u64) }
            .map_err(|errno| dev_error(op(), errno))?;
        let index = u64::from(arg[2]) | (u64::from(arg[3]) << 32);
        let grefs = arg[header..header + n].to_vec();
        let len = n * PAGE_SIZE;
        let release = Release::Gntalloc { dev: self.fd.clone(), index, count };
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        match sys::mmap_shared(&*self.fd, len, prot, index, &format!("gntalloc map of grants {grefs:?}")) {
            // SAFETY: a fresh RW mapping of `len` bytes owned by the Mapping.
            Ok(ptr) => Ok(GrantAlloc { grefs, mapping: unsafe { Mapping::from_raw(ptr, len, release) } }),
            Err(e) => {
                let mut dealloc = uapi::GntallocDeallocGref { index, count, _pad: 0 };
                // SAFETY: the ioctl's struct, alive for the call.
                let _ = unsafe {
                    sys::ioctl(&*self.fd, uapi::IOCTL_GNTALLOC_DEALLOC_GREF, std::ptr::from_mut(&mut dealloc) as u64)
                };
                Err(e)
            }
        }
    }
}
