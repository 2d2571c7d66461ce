//! The netif frontend: an Ethernet device over a backend in another
//! domain, for kernels that bring their own memory, grants and event
//! channels ([`crate::blkif::front::FrontendPlatform`], shared with the
//! block frontend).
//!
//! - [`handshake`]: [`NetfrontDevice`], the xenbus state machine (wait
//!   for the backend's InitWait, negotiate, publish the rings with state
//!   4 as netfront does, wait for the backend's Connected, close);
//! - [`queue`]: [`NetfrontQueue`], one queue's TX and RX rings: send
//!   frames (several slots each with `feature-sg`), receive them
//!   (multi-slot packets reassembled, GSO extras read, partial checksums
//!   completed), every response checked.
//!
//! Data goes through pools of pages granted once to the backend (TX
//! read-only, RX read-write) and kept: the backend copies (netif's RX is
//! grant copy, and so is any TX a Rust or Linux backend does for small
//! packets), so nothing is granted or revoked per packet.

pub mod handshake;
pub mod queue;

pub use handshake::{FrontError, FrontendAction, NetfrontConfig, NetfrontDevice};
pub use queue::{FrontStats, NetfrontQueue, Received, SendError};
