//! [`GrantCopy`]: how a netif backend reaches the frontend's pages.
//!
//! Only by grant copy (`GNTTABOP_copy`, through gntdev in a dom0
//! daemon): TX data is copied out of the frontend's (read-only) grants,
//! RX data into its posted (writable) buffers, and nothing stays mapped
//! when the response goes out, so netfront's check that the backend has
//! let go of a grant always holds. Each span succeeds or fails on its
//! own, so one bad grant costs one packet, not the batch.

pub use crate::blkif::back::CopySpan;

/// Grant copies between a frontend's pages and a local buffer.
///
/// Every span's `offset + len` lies within its page (the engine checks
/// before asking). `ok[i]` reports span `i`; an implementation that
/// cannot place a span in `buf` marks it failed, never panics.
pub trait GrantCopy {
    /// Copies each span of `domid`'s grants into `buf` at its `at`
    /// (spans are in increasing, non-overlapping order of `at`).
    fn copy_from_frontend(&mut self, domid: u16, spans: &[CopySpan], buf: &mut [u8], ok: &mut [bool]);
    /// Copies each span from `buf` at its `at` into `domid`'s grants.
    fn copy_to_frontend(&mut self, domid: u16, spans: &[CopySpan], buf: &[u8], ok: &mut [bool]);
}
