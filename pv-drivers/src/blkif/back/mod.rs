//! The blkif backend: what a block backend does, without its I/O.
//!
//! - [`handshake`]: [`BlkbackDevice`], the xenbus state machine of one
//!   vbd (publish the offer, connect when the frontend is ready, close,
//!   reconnect, go away with the toolstack), driven from the current
//!   states in XenStore;
//! - [`queue`]: [`BlkbackQueue`], one ring's request service: decode,
//!   validate, move data between the frontend's grants and the disk,
//!   respond, notify only when the ring protocol asks;
//! - [`grants`]: [`GrantAccess`], reaching the frontend's pages (grant
//!   map and grant copy), and the persistent-grant cache;
//! - [`disk`]: [`Disk`], the storage behind the vbd.
//!
//! The daemon that owns a device maps each queue's ring (the frontend's
//! `ring-ref`s, read-write, contiguous), binds its event channel, and
//! runs a [`BlkbackQueue`] over the ring whenever the channel fires.

pub mod disk;
pub mod grants;
pub mod handshake;
pub mod queue;

pub use disk::{Disk, DiskError};
pub use grants::{CopySpan, GrantAccess, GrantError, MappedPage};
pub use handshake::{BackendAction, BackendConfig, BlkbackDevice, ConnectInfo, QueueRings, ToolstackKeys};
pub use queue::{BlkbackQueue, QueueConfig, QueueError, QueueStats, Serviced};
