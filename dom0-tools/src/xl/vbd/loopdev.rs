//! Loop devices for `backendtype=phy` disks backed by image files: what
//! Xen's `block` hotplug script does with `losetup` before Linux's
//! xen-blkback can open the file, and the `physical-device` key it writes
//! (`major:minor` in hex, `stat -L -c %t:%T`).
//!
//! Detaching uses `LOOP_CLR_FD`, which on a device still open (blkback
//! releases it once its xenbus device is gone) only marks it for
//! auto-clear: the kernel detaches it at the last close.
//! Semantics: X:`tools/hotplug/Linux/block`, `block-common.sh write_dev`;
//! L:`drivers/block/loop.c loop_control_get_free`, `loop_configure`,
//! `loop_clr_fd`.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// `LOOP_SET_FD`.
const LOOP_SET_FD: u64 = 0x4C00;
/// `LOOP_CLR_FD`.
const LOOP_CLR_FD: u64 = 0x4C01;
/// `LOOP_CTL_GET_FREE`.
const LOOP_CTL_GET_FREE: u64 = 0x4C82;
/// Attempts when another process takes the free device first.
const ATTEMPTS: usize = 8;

/// A block device as blkback needs it: its node and numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDev {
    /// `/dev/...`.
    pub path: String,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Whether this module set it up (a loop device over a file).
    pub loop_created: bool,
}

impl BlockDev {
    /// `physical-device`: `major:minor` in hex.
    pub fn physical_device(&self) -> String {
        format!("{:x}:{:x}", self.major, self.minor)
    }
}

fn numbers(path: &str) -> io::Result<(u32, u32)> {
    let rdev = std::fs::metadata(path)?.rdev();
    Ok((libc::major(rdev), libc::minor(rdev)))
}

/// The block device for `target`: itself if it is one, else a new loop
/// device over the file (read-only unless `writable`).
pub fn block_device_for(target: &str, writable: bool) -> io::Result<BlockDev> {
    let meta = std::fs::metadata(target)?;
    if meta.file_type().is_block_device() {
        let (major, minor) = numbers(target)?;
        return Ok(BlockDev { path: target.to_string(), major, minor, loop_created: false });
    }
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{target}: not a file or block device")));
    }
    let file = OpenOptions::new().read(true).write(writable).open(target)?;
    let ctl = OpenOptions::new().read(true).write(true).open("/dev/loop-control")?;
    let mut last = io::Error::other("no free loop device");
    for _ in 0..ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = format!("/dev/loop{n}");
        let dev = OpenOptions::new().read(true).write(writable).open(&path)?;
        // SAFETY: LOOP_SET_FD takes the backing file's descriptor by value.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD as _, file.as_raw_fd()) };
        if r == 0 {
            let (major, minor) = numbers(&path)?;
            return Ok(BlockDev { path, major, minor, loop_created: true });
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            break;
        }
    }
    Err(last)
}

/// Detaches the loop device `path` (now, or at its last close).
pub fn detach(path: &str) -> io::Result<()> {
    let dev = OpenOptions::new().read(true).open(path)?;
    // SAFETY: LOOP_CLR_FD takes no argument.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_device_is_hex_major_minor() {
        let d = BlockDev { path: "/dev/loop10".into(), major: 7, minor: 10, loop_created: true };
        assert_eq!(d.physical_device(), "7:a");
        assert!(block_device_for("/nonexistent", true).is_err());
        assert!(block_device_for("/tmp", true).is_err(), "a directory is neither");
    }
}
