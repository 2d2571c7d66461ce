//! The system calls this crate makes, each wrapped once: opening a device,
//! `ioctl`, `mmap`/`munmap`, `poll`, `read`/`write` on raw buffers.
//!
//! Errors come back as [`DevError`](crate::DevError)s naming the operation,
//! so callers only add what they know (which ioctl, which arguments).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;

use crate::error::dev_error;

/// The page size of x86_64 Xen guests.
pub const PAGE_SIZE: usize = 4096;

/// The current thread's errno.
pub fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Opens `path` read-write and close-on-exec (plus `O_NONBLOCK` if `extra`
/// says so); the error names the path.
pub fn open_rw(path: &str, extra_flags: i32) -> io::Result<OwnedFd> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | extra_flags)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| dev_error(format!("open {path}"), e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Opens the first of `paths` that exists; if none opens, the error names
/// every path tried and carries the first path's errno.
pub fn open_first(paths: &[&str], extra_flags: i32) -> io::Result<OwnedFd> {
    let mut first_errno = None;
    for path in paths {
        match open_rw(path, extra_flags) {
            Ok(fd) => return Ok(fd),
            Err(e) => {
                first_errno.get_or_insert(crate::error::errno(&e).unwrap_or(libc::EIO));
            }
        }
    }
    Err(dev_error(format!("open {}", paths.join(" or ")), first_errno.unwrap_or(libc::ENOENT)))
}

/// `ioctl(fd, request, arg)` through `syscall(2)`, so the full `long`
/// result comes back (a hypercall's return value). `Err` holds the errno.
///
/// # Safety
/// `arg` must be what `request` expects on this device: a pointer to a
/// live buffer of the right layout and size (the kernel reads and writes
/// through it), or a plain value for by-value ioctls.
pub unsafe fn ioctl(fd: &impl AsRawFd, request: u32, arg: u64) -> Result<i64, i32> {
    // SAFETY: the caller guarantees `arg` matches `request`; the fd is open
    // for the duration of the call (borrowed).
    let ret = unsafe {
        libc::syscall(libc::SYS_ioctl, fd.as_raw_fd() as libc::c_long, request as libc::c_ulong, arg as libc::c_ulong)
    };
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, offset)` of a device.
///
/// A fresh mapping never aliases memory Rust already references, so this is
/// safe; the caller owns the range and must `munmap` it.
pub fn mmap_shared(fd: &impl AsRawFd, len: usize, prot: i32, offset: u64, op: &str) -> io::Result<NonNull<u8>> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| dev_error(format!("{op}: mmap offset {offset:#x}"), libc::EINVAL))?;
    // SAFETY: a NULL hint lets the kernel choose a fresh range, so no
    // existing memory is replaced; the fd is valid for the call.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), off) };
    if p == libc::MAP_FAILED {
        return Err(dev_error(format!("{op}: mmap({len} bytes, offset {offset:#x})"), last_errno()));
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| dev_error(format!("{op}: mmap returned NULL"), libc::ENOMEM))
}

/// `mmap` of `len` bytes of locked, private, anonymous memory that a child
/// process does not inherit (`MADV_DONTFORK`), every page touched: memory
/// Xen can read and write during a hypercall without faulting, as
/// libxencall allocates it without `/dev/xen/hypercall`.
pub fn mmap_locked_anon(len: usize) -> io::Result<NonNull<u8>> {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED;
    // SAFETY: a NULL hint gives a fresh anonymous range.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(dev_error(format!("mmap({len} bytes, MAP_LOCKED) for a hypercall buffer"), last_errno()));
    }
    // SAFETY: the range was just mapped, `len` bytes long.
    if unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) } != 0 {
        let errno = last_errno();
        // SAFETY: unmapping the range mapped above, which nothing references.
        unsafe { libc::munmap(p, len) };
        return Err(dev_error("madvise(MADV_DONTFORK) of a hypercall buffer", errno));
    }
    let base = p.cast::<u8>();
    for page in (0..len).step_by(PAGE_SIZE) {
        // SAFETY: `page < len`, inside the fresh writable mapping.
        unsafe { base.add(page).write_volatile(0) };
    }
    NonNull::new(base).ok_or_else(|| dev_error("mmap returned NULL", libc::ENOMEM))
}

/// `munmap(ptr, len)`.
///
/// # Safety
/// `ptr..ptr+len` must be a mapping this process owns and that nothing
/// references any more.
pub unsafe fn munmap(ptr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded contract.
    if unsafe { libc::munmap(ptr.as_ptr().cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `timeout_ms` (negative: forever) for `fd` to be readable.
/// `Ok(false)` on timeout; `EINTR` is retried.
pub fn poll_readable(fd: &impl AsRawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let errno = last_errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(dev_error("poll", errno));
        }
        return Ok(n > 0);
    }
}

/// `read(fd, buf)`; `Err` holds the errno.
pub fn read(fd: &impl AsRawFd, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| last_errno())
}

/// `write(fd, data)`; `Err` holds the errno.
pub fn write(fd: &impl AsRawFd, data: &[u8]) -> Result<usize, i32> {
    // SAFETY: `data` is valid for reads of its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    usize::try_from(n).map_err(|_| last_errno())
}

/// Reads a small text file (xenfs' `xsd_port`), naming it on error.
pub fn read_text(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| dev_error(format!("read {path}"), e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(s)
}
