//! The netif backend: what a network backend does, without its I/O.
//!
//! - [`handshake`]: [`NetbackDevice`], the xenbus state machine of one
//!   vif (publish the offer, connect when the frontend is ready, close,
//!   reconnect, go away with the toolstack), driven from the current
//!   states in XenStore;
//! - [`tx`]: [`TxDecoder`], the frontend's transmit slots turned into
//!   packets, every slot checked, malformed packets dropped and counted;
//! - [`rx`]: how a frame is laid into the frontend's posted receive
//!   buffers (slots, flags, the GSO extra);
//! - [`queue`]: [`NetbackQueue`], one queue's TX and RX rings served by
//!   batched grant copies, responses and notifications as the ring
//!   protocol asks;
//! - [`grants`]: [`GrantCopy`], how the backend reaches the frontend's
//!   pages.
//!
//! The daemon that owns a vif maps each queue's two rings, binds its
//! event channel(s), and moves the frames [`NetbackQueue`] yields to its
//! network device (a TAP) and the device's frames back through it.
//!
//! Policy on a hostile frontend: a malformed packet (a slot crossing its
//! page, more slots than netif allows, sizes that do not add up, a runt,
//! a bad extra or GSO descriptor, a grant that does not copy, headers
//! that do not parse for the checksum it asks for) is answered
//! `NETIF_RSP_ERROR`, counted in [`TxDrops`], and the queue goes on; a
//! producer index claiming more requests than the ring holds breaks the
//! ring and closes the vif.

pub mod grants;
pub mod handshake;
pub mod queue;
pub mod rx;
pub mod tx;

pub use grants::GrantCopy;
pub use handshake::{BackendAction, ConnectInfo, NetbackConfig, NetbackDevice, QueueRings, ToolstackKeys};
pub use queue::{NetbackQueue, QueueError, QueueStats, RxFrame, RxService, TxBatch, TxFrame, TxService};
pub use tx::{TxDecoder, TxDrop, TxDrops, TxEvent, TxPacket};
