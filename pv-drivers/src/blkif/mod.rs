//! The block device protocol (`io/blkif.h`), both ends.
//!
//! - [`keys`]: the XenStore keys of the negotiation and their limits;
//! - [`vdev`]: virtual device names (`xvda`, `hdc`, `sdb3`) and their
//!   numbers (the devid);
//! - [`request`]: decoding and validating requests as a backend must
//!   (segments, indirect descriptors, discards), and the responses;
//! - [`back`]: the backend — handshake, per-queue request service with
//!   persistent grants and indirect descriptors, over [`back::GrantAccess`]
//!   and [`back::Disk`];
//! - [`front`]: the frontend — handshake, rings, submit and complete,
//!   over [`front::FrontendPlatform`].
//!
//! Units: sector numbers and counts are always 512-byte sectors, whatever
//! `sector-size` says (Linux's reading, fixed in blkif.h by X@221f2748e8).

pub mod back;
pub mod front;
pub mod keys;
pub mod request;
pub mod vdev;

pub use guest_abi::io::blkif::{BlkifRequest, BlkifRequestSegment, BlkifResponse};

/// Bytes in a sector, the unit of every sector field.
pub const SECTOR_SIZE: u64 = 512;
/// Sectors in a page.
pub const SECTORS_PER_PAGE: u8 = 8;
/// Bytes in a page (a segment lies within one).
pub const PAGE_SIZE: usize = 4096;
/// Segment descriptors in one indirect page.
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = PAGE_SIZE / 8;
/// Entries of a blkif ring of `nr_pages` pages.
pub const fn ring_entries(nr_pages: usize) -> u32 {
    guest_abi::io::ring::ring_entries::<BlkifRequest, BlkifResponse>(nr_pages)
}

#[cfg(test)]
mod tests;
