//! [`Gntdev`]: `/dev/xen/gntdev`, mapping other domains' grants and
//! copying through them.
//!
//! Semantics (Linux 6.1 `drivers/xen/gntdev.c`, Xen
//! `tools/libs/gnttab/linux.c`): `MAP_GRANT_REF` only records the refs and
//! returns an mmap offset; `mmap` of that offset (`MAP_SHARED`, read-only
//! without `PROT_WRITE`) does the grant maps. Unmapping is `munmap` then
//! `UNMAP_GRANT_REF`, which [`Mapping`]'s drop does. `GRANT_COPY` runs
//! `GNTTABOP_copy`, one status per segment.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use guest_abi::grant_table::{GntStatus, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF};

use crate::error::{dev_error, invalid_input};
use crate::mapping::{Mapping, Release};
use crate::sys::{self, PAGE_SIZE};
use crate::uapi;

/// An open `/dev/xen/gntdev`. Mappings keep the device open until dropped.
#[derive(Debug)]
pub struct Gntdev {
    fd: Arc<OwnedFd>,
}

/// A byte range of a granted page: `domid`'s grant `gref`, from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantAddr {
    /// The granting domain.
    pub domid: u16,
    /// Its grant reference.
    pub gref: u32,
    /// Offset in the page.
    pub offset: u16,
}

/// Where a grant copy reads from.
#[derive(Debug)]
pub enum CopySource<'a> {
    /// A granted page.
    Grant(GrantAddr),
    /// Local memory.
    Local(&'a [u8]),
}

/// Where a grant copy writes to.
#[derive(Debug)]
pub enum CopyDest<'a> {
    /// A granted page.
    Grant(GrantAddr),
    /// Local memory.
    Local(&'a mut [u8]),
}

/// One segment of [`Gntdev::grant_copy`]: `len` bytes from `source` to
/// `dest`, at least one of them a grant, a grant's range within its page.
#[derive(Debug)]
pub struct GrantCopySegment<'a> {
    /// The source.
    pub source: CopySource<'a>,
    /// The destination.
    pub dest: CopyDest<'a>,
    /// Bytes to copy.
    pub len: u16,
    status: i16,
}

impl<'a> GrantCopySegment<'a> {
    /// A segment copying `len` bytes.
    pub fn new(source: CopySource<'a>, dest: CopyDest<'a>, len: u16) -> Self {
        GrantCopySegment { source, dest, len, status: 0 }
    }

    /// After a copy: the `GNTST_*` status (0 = `GNTST_okay`).
    pub fn status(&self) -> i16 {
        self.status
    }

    /// Checks the segment and encodes it for the ioctl.
    fn encode(&mut self, index: usize) -> io::Result<uapi::GntdevGrantCopySegment> {
        let len = usize::from(self.len);
        let op = || format!("IOCTL_GNTDEV_GRANT_COPY segment {index}");
        let grant = |g: &GrantAddr| {
            if usize::from(g.offset) + len > PAGE_SIZE {
                return Err(invalid_input(op(), format!("offset {} + {len} crosses the granted page", g.offset)));
            }
            Ok(uapi::GntdevCopyPtr::foreign(g.gref, g.offset, g.domid))
        };
        let mut flags = 0u16;
        let source = match &self.source {
            CopySource::Grant(g) => {
                flags |= GNTCOPY_SOURCE_GREF as u16;
                grant(g)?
            }
            CopySource::Local(buf) if buf.len() >= len => uapi::GntdevCopyPtr::virt(buf.as_ptr() as u64),
            CopySource::Local(buf) => return Err(invalid_input(op(), format!("source buffer {} < {len}", buf.len()))),
        };
        let dest = match &mut self.dest {
            CopyDest::Grant(g) => {
                flags |= GNTCOPY_DEST_GREF as u16;
                grant(g)?
            }
            CopyDest::Local(buf) if buf.len() >= len => uapi::GntdevCopyPtr::virt(buf.as_mut_ptr() as u64),
            CopyDest::Local(buf) => return Err(invalid_input(op(), format!("dest buffer {} < {len}", buf.len()))),
        };
        if flags == 0 {
            return Err(invalid_input(op(), "both ends are local"));
        }
        Ok(uapi::GntdevGrantCopySegment { source, dest, len: self.len, flags, status: 0, _pad: 0 })
    }
}

/// `GNTST_okay` or Xen's name for a grant status.
pub fn gntst_name(status: i16) -> String {
    let Ok(s) = GntStatus::try_from(status) else {
        return format!("GNTST {status}");
    };
    // The variant's CamelCase back to Xen's snake_case (`BadGntref` -> `bad_gntref`).
    let mut name = String::from("GNTST_");
    for (i, c) in format!("{s:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

impl Gntdev {
    /// Opens `/dev/xen/gntdev`.
    pub fn open() -> io::Result<Gntdev> {
        Ok(Gntdev { fd: Arc::new(sys::open_rw("/dev/xen/gntdev", 0)?) })
    }

    /// Maps `domid`'s grant `gref` (one page), read-only unless `writable`.
    pub fn map_grant(&self, domid: u16, gref: u32, writable: bool) -> io::Result<Mapping> {
        self.map_grants(domid, &[gref], writable)
    }

    /// Maps `domid`'s grants `grefs` as contiguous pages.
    pub fn map_grants(&self, domid: u16, grefs: &[u32], writable: bool) -> io::Result<Mapping> {
        let op = || format!("IOCTL_GNTDEV_MAP_GRANT_REF(dom {domid}, {} grants)", grefs.len());
        let count = u32::try_from(grefs.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid_input(op(), "no grants or too many"))?;
        // The header (count, pad, index) then {domid, ref} pairs, in u64s.
        let mut arg: Vec<u64> = Vec::with_capacity(2 + grefs.len());
        arg.extend([u64::from(count), 0]);
        arg.extend(grefs.iter().map(|&r| u64::from(domid) | (u64::from(r) << 32)));
        // SAFETY: `arg` is a `struct ioctl_gntdev_map_grant_ref` with `count`
        // refs (the kernel reads exactly that many), alive for the call.
        unsafe { sys::ioctl(&*self.fd, uapi::IOCTL_GNTDEV_MAP_GRANT_REF, arg.as_mut_ptr() as u64) }
            .map_err(|errno| dev_error(op(), errno))?;
        let index = arg[1];
        let len = grefs.len() * PAGE_SIZE;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let release = Release::Gntdev { dev: self.fd.clone(), index, count };
        match sys::mmap_shared(&*self.fd, len, prot, index, &format!("gntdev map of dom {domid} grants {grefs:?}")) {
            // SAFETY: a fresh mapping of `len` bytes owned by the Mapping.
            Ok(ptr) => Ok(unsafe { Mapping::from_raw(ptr, len, release) }),
            Err(e) => {
                let mut unmap = uapi::GntdevUnmapGrantRef { index, count, pad: 0 };
                // SAFETY: the ioctl's struct, alive for the call.
                let _ = unsafe {
                    sys::ioctl(&*self.fd, uapi::IOCTL_GNTDEV_UNMAP_GRANT_REF, std::ptr::from_mut(&mut unmap) as u64)
                };
                Err(e)
            }
        }
    }

    /// `IOCTL_GNTDEV_GRANT_COPY` of `segs`; each segment's
    /// [`status`](GrantCopySegment::status) is set. Fails if the ioctl
    /// does, or names the first segment whose status is not `GNTST_okay`.
    pub fn grant_copy(&self, segs: &mut [GrantCopySegment<'_>]) -> io::Result<()> {
        let mut raw = segs.iter_mut().enumerate().map(|(i, s)| s.encode(i)).collect::<io::Result<Vec<_>>>()?;
        let count =
            u32::try_from(raw.len()).map_err(|_| invalid_input("IOCTL_GNTDEV_GRANT_COPY", "too many segments"))?;
        let mut op = uapi::GntdevGrantCopy { count, _pad: 0, segments: raw.as_mut_ptr() as u64 };
        // SAFETY: `op` points to `count` encoded segments; their local ends
        // point into slices borrowed by `segs` (shared for sources, unique
        // for destinations) of at least `len` bytes, all alive for the call.
        unsafe { sys::ioctl(&*self.fd, uapi::IOCTL_GNTDEV_GRANT_COPY, std::ptr::from_mut(&mut op) as u64) }
            .map_err(|errno| dev_error(format!("IOCTL_GNTDEV_GRANT_COPY({count} segments)"), errno))?;
        for (seg, r) in segs.iter_mut().zip(&raw) {
            seg.status = r.status;
        }
        match raw.iter().position(|r| r.status != 0) {
            None => Ok(()),
            Some(i) => Err(io::Error::other(format!(
                "IOCTL_GNTDEV_GRANT_COPY segment {i} of {count}: {}",
                gntst_name(raw[i].status)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_from_a_grant_into_a_buffer_sets_the_source_flag() {
        let mut buf = [0u8; 16];
        let dest_addr = buf.as_ptr() as u64;
        let g = GrantAddr { domid: 3, gref: 9, offset: 8 };
        let mut seg = GrantCopySegment::new(CopySource::Grant(g), CopyDest::Local(&mut buf), 16);
        let raw = seg.encode(0).ok().unwrap_or_default();
        assert_eq!(raw.flags, GNTCOPY_SOURCE_GREF as u16);
        assert_eq!(raw.source, uapi::GntdevCopyPtr::foreign(9, 8, 3));
        assert_eq!(raw.dest.0, dest_addr);
        assert_eq!(raw.len, 16);
    }

    #[test]
    fn bad_segments_are_refused_before_the_kernel_sees_them() {
        let data = [0u8; 8];
        let mut out = [0u8; 8];
        let g = GrantAddr { domid: 0, gref: 1, offset: 4090 };
        assert!(GrantCopySegment::new(CopySource::Grant(g), CopyDest::Local(&mut out), 8).encode(0).is_err());
        let g = GrantAddr { offset: 0, ..g };
        assert!(GrantCopySegment::new(CopySource::Local(&data), CopyDest::Grant(g), 9).encode(0).is_err());
        assert!(GrantCopySegment::new(CopySource::Local(&data), CopyDest::Local(&mut out), 8).encode(0).is_err());
        let ok = GrantCopySegment::new(CopySource::Local(&data), CopyDest::Grant(g), 8).encode(1);
        assert_eq!(ok.map(|r| r.flags).ok(), Some(GNTCOPY_DEST_GREF as u16));
    }

    #[test]
    fn grant_statuses_have_xen_names() {
        assert_eq!(gntst_name(0), "GNTST_okay");
        assert_eq!(gntst_name(-3), "GNTST_bad_gntref");
        assert_eq!(gntst_name(-7), "GNTST_no_device_space");
        assert_eq!(gntst_name(-99), "GNTST -99");
    }
}
