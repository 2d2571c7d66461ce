//! [`MemDisk`]: a disk in memory that counts flushes and can be told to
//! fail.

use std::cell::{Cell, RefCell};
use std::vec::Vec;

use crate::blkif::back::{Disk, DiskError};

/// A disk in memory.
pub struct MemDisk {
    /// The bytes.
    pub data: RefCell<Vec<u8>>,
    /// Flushes so far.
    pub flushes: Cell<u32>,
    /// Writes since the last flush (bytes).
    pub unflushed: Cell<u64>,
    /// Fail every operation.
    pub failing: Cell<bool>,
}

impl MemDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64) -> Self {
        MemDisk {
            data: RefCell::new(std::vec![0; sectors as usize * 512]),
            flushes: Cell::new(0),
            unflushed: Cell::new(0),
            failing: Cell::new(false),
        }
    }

    fn check(&self, offset: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
        if self.failing.get() {
            return Err(DiskError("injected failure".into()));
        }
        let start = offset as usize;
        let end = start + len;
        assert!(end <= self.data.borrow().len(), "I/O past the end of the disk: {start}..{end}");
        Ok(start..end)
    }
}

impl Disk for MemDisk {
    fn sectors(&self) -> u64 {
        self.data.borrow().len() as u64 / 512
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let r = self.check(offset, buf.len())?;
        buf.copy_from_slice(&self.data.borrow()[r]);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let r = self.check(offset, data.len())?;
        self.data.borrow_mut()[r].copy_from_slice(data);
        self.unflushed.set(self.unflushed.get() + data.len() as u64);
        Ok(())
    }
    fn flush(&self) -> Result<(), DiskError> {
        self.check(0, 0)?;
        self.flushes.set(self.flushes.get() + 1);
        self.unflushed.set(0);
        Ok(())
    }
    fn discard(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        let r = self.check(offset, len as usize)?;
        self.data.borrow_mut()[r].fill(0);
        Ok(())
    }
}
