//! The network device protocol (`io/netif.h`), both ends.
//!
//! - [`keys`]: the XenStore keys of the negotiation, the features each
//!   end offers ([`keys::Features`]) and MAC addresses;
//! - [`offload`]: what travels with a frame besides its bytes — partial
//!   checksums and TCP segmentation — and the header parsing and
//!   checksum arithmetic a backend needs to finish what a frontend left
//!   undone;
//! - [`back`]: the backend — handshake, TX decoding with full validation
//!   of every slot, RX placement into the frontend's posted buffers by
//!   grant copy, over [`back::GrantCopy`];
//! - [`front`]: the frontend — handshake, TX and RX rings over a pool of
//!   pages granted once, over [`crate::blkif::front::FrontendPlatform`].
//!
//! Units: sizes in bytes; every data slot lies within one 4 KiB page
//! (`offset + size <= 4096`). A packet is at most
//! [`guest_abi::io::netif::XEN_NETIF_MAX_TX_SIZE`] bytes.
//! Semantics: X:`xen/include/public/io/netif.h`; L:`drivers/net/xen-netfront.c`,
//! `drivers/net/xen-netback/{netback,rx,xenbus}.c`.

pub mod back;
pub mod front;
pub mod keys;
pub mod offload;

pub use guest_abi::io::netif::{NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};

/// Bytes in a page (no slot crosses one).
pub const PAGE_SIZE: usize = 4096;
/// An Ethernet header: the shortest frame a backend accepts (`ETH_HLEN`).
pub const ETH_HLEN: usize = 14;
/// Slots a TX packet may use after its first one before the backend
/// drops it (Linux netback's `XEN_NETBK_LEGACY_SLOTS_MAX`).
pub const MAX_TX_EXTRA_SLOTS: usize = 18;
/// Data slots an RX packet may use (netfront refuses more:
/// `XEN_NETIF_NR_SLOTS_MIN`).
pub const MAX_RX_SLOTS: usize = 18;
/// Extra-info slots a packet may carry: one per type
/// (`XEN_NETIF_EXTRA_TYPE_MAX - 1`).
pub const MAX_EXTRAS: usize = 4;
/// Entries of a netif TX or RX ring (one page each).
pub const RING_SIZE: u32 = guest_abi::io::netif::NETIF_TX_RING_SIZE;

#[cfg(test)]
mod tests;
