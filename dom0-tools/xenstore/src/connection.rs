//! One client of the store: a socket peer or a domain's ring.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.h` `struct connection`
//! (Xen 4.17). A connection owns its watches, its open transactions, the
//! message being read and the messages waiting to be written. An
//! *ignored* connection (`is_ignored`) broke the protocol: it keeps its
//! place (so that its domain's death is still announced) but is served no
//! more.

use std::collections::BTreeMap;
use std::fmt;

use crate::output::OutQueue;
use crate::transaction::Transaction;
use crate::watch::Watch;
use crate::wire::MessageReader;

/// A connection's handle; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The number behind the handle (for logs).
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn{}", self.0)
    }
}

/// Where a connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnKind {
    /// A Unix-socket peer: privileged, at home in `/local/domain/0`.
    Socket,
    /// The ring of a domain.
    Domain(u16),
}

/// A connection's state.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Where it comes from.
    pub kind: ConnKind,
    /// The `SET_TARGET` target domain.
    pub target: Option<u32>,
    /// Its watches, in registration order.
    pub watches: Vec<Watch>,
    /// Its open transactions by id.
    pub transactions: BTreeMap<u32, Transaction>,
    /// `next_transaction_id`.
    pub next_transaction_id: u32,
    /// The request being assembled.
    pub reader: MessageReader,
    /// Messages waiting to be written.
    pub out: OutQueue,
    /// `is_ignored`.
    pub ignored: bool,
}

impl Connection {
    /// A fresh connection.
    pub fn new(kind: ConnKind) -> Connection {
        Connection {
            kind,
            target: None,
            watches: Vec::new(),
            transactions: BTreeMap::new(),
            next_transaction_id: 1,
            reader: MessageReader::default(),
            out: OutQueue::default(),
            ignored: false,
        }
    }

    /// `conn->id`: the domain of a ring, 0 for a socket.
    pub fn id(&self) -> u32 {
        match self.kind {
            ConnKind::Socket => 0,
            ConnKind::Domain(d) => u32::from(d),
        }
    }
}
