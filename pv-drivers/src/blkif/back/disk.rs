//! [`Disk`]: the storage behind a vbd — an image file or a block device
//! in dom0, memory in tests. Offsets and lengths are in bytes and always
//! whole 512-byte sectors inside the disk (the queue checks them first).

use alloc::string::String;

/// A failed disk operation, with what the platform said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskError(pub String);

/// The storage behind a vbd. Methods take `&self` so that several queues
/// (threads, in a daemon) can share one disk; writes acknowledged by
/// `write_at` must be what a later `flush` makes durable.
pub trait Disk {
    /// The size in 512-byte sectors (what `sectors` advertises).
    fn sectors(&self) -> u64;
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Writes `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError>;
    /// Makes every completed write durable (`fdatasync` or better).
    fn flush(&self) -> Result<(), DiskError>;
    /// Forgets `len` bytes at `offset` (they may read back as zeroes).
    fn discard(&self, offset: u64, len: u64) -> Result<(), DiskError>;
}
