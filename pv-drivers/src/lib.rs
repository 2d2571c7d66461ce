//! pv-drivers: Xen's split-driver protocols as portable engines.
//!
//! A split driver is a frontend in a guest and a backend in another domain
//! (normally dom0) that talk through XenStore (the xenbus handshake),
//! shared rings in granted pages, and event channels. This crate holds the
//! protocol logic of both ends, with no I/O of its own: what it needs from
//! the domain it runs in comes through small traits, so the same engines
//! run in a Rust PV kernel (`guest-rt`), in a dom0 daemon
//! (`dom0-tools`'s `xenish-blkback`) and in host tests, where both ends
//! talk through a fake platform in one address space.
//!
//! - [`store`]: XenStore as a driver sees it ([`store::Store`]);
//! - [`xenbus`]: device states and the paths and values of the handshake;
//! - [`blkif`]: the block protocol (`io/blkif.h`): request decoding and
//!   validation, the backend ([`blkif::back`]) and the frontend
//!   ([`blkif::front`]), vbd numbering ([`blkif::vdev`]);
//! - [`netif`]: the network protocol (`io/netif.h`): TX decoding and
//!   validation, RX placement, checksum and segmentation offloads, the
//!   backend ([`netif::back`]) and the frontend ([`netif::front`]).
//!
//! The peer is never trusted: every value read from XenStore, every ring
//! index and request from a frontend, every response from a backend is
//! checked before use; a bad one is an error for that request or closes
//! the connection, never a panic.
//!
//! `no_std` with `alloc`; `#![deny(unsafe_code)]` (only the host tests'
//! fake shared memory needs `unsafe`).
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod blkif;
pub mod netif;
pub mod store;
pub mod xenbus;

#[cfg(test)]
#[allow(unsafe_code)]
mod testing;
