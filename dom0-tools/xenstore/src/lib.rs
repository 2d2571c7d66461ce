//! The XenStore core: Xen 4.17 C xenstored's semantics without any I/O.
//!
//! This crate owns the store (the node tree, permissions, watches,
//! transactions, per-domain quotas and accounting) and the byte-level
//! protocols (message framing, the ring page of
//! [`XenstoreDomainInterface`](guest_abi::io::xs_wire::XenstoreDomainInterface)).
//! It never opens a file or a device: transports hand it bytes with
//! [`XenStore::feed`], take replies with [`XenStore::output`], and the few
//! side effects that need the hypervisor (mapping a ring, binding a port,
//! asking whether a domain exists) go through the [`Platform`] trait.
//!
//! Semantics mirror X:`tools/xenstore/xenstored_core.c`,
//! `xenstored_domain.c`, `xenstored_transaction.c`, `xenstored_watch.c`
//! and `xenstored_control.c` of Xen 4.17, including their error numbers:
//! quota violations are `ENOSPC` (nodes, node size, transactions,
//! permissions, transaction nodes), `E2BIG` (watches) and `ENOMEM`
//! (memory), as Xen 4.17 reports them; unknown request types are `ENOSYS`.

pub mod domain;
pub mod node;
pub mod path;
pub mod perms;
pub mod quota;
pub mod ring;
pub mod ring_conn;
pub mod wire;

mod connection;
mod output;
mod store;
mod transaction;
mod watch;

pub use connection::ConnId;
pub use domain::{DomainState, DomainUsage, Platform};
pub use quota::{Config, Quotas};
pub use ring::{RingError, RingMemory};
pub use store::{ProtocolError, XenStore};
