//! The blkif frontend: a block device over a backend in another domain,
//! for kernels that bring their own memory, grants and event channels.
//!
//! - [`platform`]: [`FrontendPlatform`], what the kernel provides (pages,
//!   ring areas, grants, event channels);
//! - [`handshake`]: [`BlkfrontDevice`], the xenbus state machine (wait
//!   for InitWait, negotiate, publish rings, read the disk's geometry at
//!   Connected, close), driven from the current states in XenStore;
//! - [`queue`]: [`FrontQueue`], one ring: submit reads, writes, flushes
//!   and discards (batched: one push and at most one notification per
//!   batch), complete them, and check every response.
//!
//! Data goes through a pool of pages per queue, each granted once to the
//! backend (read-write) and kept: with `feature-persistent` the backend
//! maps them once, without it it maps or copies them per request. Either
//! way nothing is granted per request, and a request larger than 11
//! pages goes out as INDIRECT when the backend offers it.

pub mod handshake;
pub mod platform;
pub mod queue;

pub use handshake::{BlkfrontDevice, DiskInfo, FrontConfig, FrontError, FrontendAction};
pub use platform::{FrontendPlatform, PlatformError, RingArea, SharedPage};
pub use queue::{Completion, FrontQueue, Io, SubmitError};
