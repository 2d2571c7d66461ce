//! [`FileDisk`]: a vbd's storage — a raw image file or a block device —
//! as the blkif engine's [`Disk`].
//!
//! Reads and writes are `pread`/`pwrite` (several queue threads share the
//! file); a flush is `fdatasync`, so a flush acknowledged to the frontend
//! covers every write acknowledged before it. A discard punches a hole in
//! an image file (`fallocate(PUNCH_HOLE | KEEP_SIZE)`) or is
//! `BLKDISCARD` on a block device. The size is the file's length or the
//! device's (`BLKGETSIZE64`), in whole 512-byte sectors.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};

use pv_drivers::blkif::back::{Disk, DiskError};

/// `BLKGETSIZE64` (`_IOR(0x12, 114, size_t)`).
const BLKGETSIZE64: u64 = 0x8008_1272;
/// `BLKDISCARD` (`_IO(0x12, 119)`).
const BLKDISCARD: u64 = 0x1277;

/// An open image file or block device.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    sectors: u64,
    block_device: bool,
}

fn disk_error(what: &str, e: io::Error) -> DiskError {
    DiskError(format!("{what}: {e}"))
}

impl FileDisk {
    /// Opens `path`, read-write unless `read_only`.
    pub fn open(path: &str, read_only: bool) -> io::Result<FileDisk> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let meta = file.metadata()?;
        let block_device = meta.file_type().is_block_device();
        let bytes = if block_device {
            let mut size: u64 = 0;
            // SAFETY: BLKGETSIZE64 writes one u64 to the pointer, which
            // points to `size`, alive for the call.
            let r = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, std::ptr::from_mut(&mut size)) };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            size
        } else if meta.is_file() {
            meta.len()
        } else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file or block device"));
        };
        Ok(FileDisk { file, sectors: bytes / 512, block_device })
    }

    /// Whether it is a block device (not an image file).
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }
}

impl Disk for FileDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.file.read_exact_at(buf, offset).map_err(|e| disk_error("pread", e))
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.file.write_all_at(data, offset).map_err(|e| disk_error("pwrite", e))
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.file.sync_data().map_err(|e| disk_error("fdatasync", e))
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(DiskError("discard range too large".into()));
        };
        let r = if self.block_device {
            let range = [offset, len];
            // SAFETY: BLKDISCARD reads two u64s (start, length) from the
            // pointer, which points to `range`, alive for the call.
            unsafe { libc::ioctl(self.file.as_raw_fd(), BLKDISCARD as _, range.as_ptr()) }
        } else {
            // SAFETY: a plain system call on our descriptor.
            unsafe {
                libc::fallocate(self.file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, n)
            }
        };
        if r != 0 {
            return Err(disk_error("discard", io::Error::last_os_error()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_file_reads_writes_flushes_and_punches_holes() {
        let path = std::env::temp_dir().join(format!("xenish-blkback-disk-{}", std::process::id()));
        std::fs::write(&path, vec![0xaau8; 8192 + 100]).unwrap_or_else(|e| panic!("{e}"));
        let p = path.display().to_string();
        let disk = FileDisk::open(&p, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(disk.sectors(), 16, "a partial last sector is not offered");
        assert!(!disk.is_block_device());
        disk.write_at(512, &[1u8; 1024]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(disk.flush().is_ok());
        let mut back = [0u8; 1536];
        disk.read_at(0, &mut back).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(back[..512].iter().all(|&b| b == 0xaa) && back[512..].iter().all(|&b| b == 1));
        if disk.discard(0, 4096).is_ok() {
            disk.read_at(0, &mut back).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(back.iter().all(|&b| b == 0), "a punched hole reads as zeroes");
        }
        let ro = FileDisk::open(&p, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(ro.write_at(0, &[0u8; 512]).is_err(), "a read-only open refuses writes");
        let _ = std::fs::remove_file(&path);
        assert!(FileDisk::open("/nonexistent/image", false).is_err());
        assert!(FileDisk::open("/tmp", false).is_err());
    }
}
