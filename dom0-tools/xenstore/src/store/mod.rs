//! The store: the tree, the domains, the connections, and the transport-
//! facing API (feed requests in, take replies out).
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` (Xen 4.17) for the
//! connection life cycle and message flow. One request is processed at a
//! time; its reply is queued first, then the watch events it caused.
//! Submodules: `access` (reading and writing nodes through transactions),
//! `tree` (creating and removing subtrees), `events` (watch firing and
//! delivery), `dispatch` (request types), and one module per family of
//! requests.

mod access;
mod control;
mod dispatch;
mod events;
mod ops_domain;
mod ops_node;
mod ops_transaction;
mod ops_watch;
mod tree;

use std::collections::BTreeMap;

use guest_abi::io::xs_wire::{xsd_error_name, XS_ERROR};
use guest_abi::XenError;

use crate::connection::{ConnId, ConnKind, Connection};
use crate::domain::{DomainTable, DomainUsage, Platform};
use crate::node::Node;
use crate::output::OutKind;
use crate::path::domain_path;
use crate::perms::{Identity, Perms, XS_PERM_NONE};
use crate::quota::Config;
use crate::transaction::Transaction;
use crate::wire::{encode, PayloadTooLarge, PAYLOAD_MAX};

pub(crate) use events::Event;

/// A peer broke the message protocol; its connection is now ignored (a
/// socket should be closed, a ring left alone until its domain dies or is
/// introduced again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A header announced more than `XENSTORE_PAYLOAD_MAX` bytes.
    PayloadTooLarge(u32),
}

/// The whole daemon state, transports excepted.
#[derive(Debug)]
pub struct XenStore {
    config: Config,
    nodes: BTreeMap<String, Node>,
    /// The global generation counter.
    generation: u64,
    /// Permissions of `@introduceDomain` and `@releaseDomain`.
    special: [Perms; 2],
    domains: DomainTable,
    conns: BTreeMap<ConnId, Connection>,
    next_conn: u64,
}

/// Everything one request runs with.
pub(crate) struct Ctx<'p> {
    pub conn: ConnId,
    pub who: Identity,
    pub implicit: String,
    pub tx: Option<Transaction>,
    pub events: Vec<Event>,
    pub platform: &'p mut dyn Platform,
}

impl Ctx<'_> {
    /// Whether quotas bind the caller.
    pub fn unprivileged(&self) -> bool {
        !self.who.privileged
    }
}

impl XenStore {
    /// A store holding Xen's initial tree (`setup_structure`): `/`,
    /// `/tool` and `/tool/xenstored`, owned by dom0 with no access for
    /// others.
    pub fn new(config: Config) -> XenStore {
        let dom0 = u32::from(config.dom0_domid);
        let perms = Perms::owned_by(dom0, XS_PERM_NONE);
        let mut store = XenStore {
            config,
            nodes: BTreeMap::new(),
            generation: 0,
            special: [perms.clone(), perms.clone()],
            domains: DomainTable::default(),
            conns: BTreeMap::new(),
            next_conn: 1,
        };
        store.domains.alloc(dom0, 0);
        for (name, child) in [("/", Some("tool")), ("/tool", Some("xenstored")), ("/tool/xenstored", None)] {
            let mut node = Node::new(perms.clone());
            if let Some(child) = child {
                node.add_child(child);
            }
            store.generation += 1;
            node.generation = store.generation;
            store.account_node(name, &node, 1);
            store.nodes.insert(name.to_owned(), node);
        }
        store.domains.nodes_add(dom0, 3);
        store
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A new privileged socket connection.
    pub fn add_socket_connection(&mut self) -> ConnId {
        self.add_connection(ConnKind::Socket)
    }

    /// Registers the ring connection of `domid` without asking the platform
    /// to map anything (`dom0_init`: the daemon mapped dom0's page itself).
    /// No `@introduceDomain` fires, as in Xen.
    pub fn add_domain_connection(&mut self, domid: u16) -> ConnId {
        if let Some(conn) = self.domain_connection(domid) {
            return conn;
        }
        let conn = self.add_connection(ConnKind::Domain(domid));
        let generation = self.generation;
        let rec = self.domains.alloc(u32::from(domid), generation);
        rec.conn = Some(conn);
        rec.shutdown = false;
        conn
    }

    fn add_connection(&mut self, kind: ConnKind) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(id, Connection::new(kind));
        id
    }

    /// The connections, oldest first.
    pub fn connections(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// The ring connection of `domid`, if it is introduced.
    pub fn domain_connection(&self, domid: u16) -> Option<ConnId> {
        self.domains.get(u32::from(domid)).and_then(|d| d.conn)
    }

    /// The domain of a ring connection (`None` for sockets).
    pub fn connection_domain(&self, conn: ConnId) -> Option<u16> {
        match self.conns.get(&conn)?.kind {
            ConnKind::Domain(d) => Some(d),
            ConnKind::Socket => None,
        }
    }

    /// Whether a connection is a socket peer's.
    pub fn is_socket(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.kind == ConnKind::Socket)
    }

    /// Whether `domid` is introduced.
    pub fn is_introduced(&self, domid: u16) -> bool {
        self.domain_connection(domid).is_some()
    }

    /// Whether `conn` broke the protocol and is no longer served.
    pub fn is_ignored(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_none_or(|c| c.ignored)
    }

    /// A node of the committed tree.
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// What `domid` uses.
    pub fn usage(&self, domid: u16) -> Option<DomainUsage> {
        let rec = self.domains.get(u32::from(domid))?;
        let conn = rec.conn.and_then(|c| self.conns.get(&c));
        Some(DomainUsage {
            nodes: rec.nodes,
            watches: conn.map_or(0, |c| c.watches.len() as u32),
            transactions: conn.map_or(0, |c| c.transactions.len() as u32),
            outstanding: conn.map_or(0, |c| c.out.outstanding()),
            memory: rec.memory,
        })
    }

    /// How many request bytes `conn` may be given now: the rest of the
    /// message being read, or 0 while the connection is throttled
    /// (`domain_can_read`: too many outstanding replies or too much memory)
    /// or ignored.
    pub fn input_budget(&self, conn: ConnId) -> usize {
        let Some(c) = self.conns.get(&conn) else { return 0 };
        if c.ignored {
            return 0;
        }
        if !self.identity(c).privileged {
            let q = &self.config.quotas;
            if c.out.outstanding() >= q.outstanding {
                return 0;
            }
            let memory = self.domains.get(c.id()).map_or(0, |d| d.memory);
            if memory >= u64::from(q.memory_hard) {
                return 0;
            }
        }
        c.reader.wanted()
    }

    /// Hands request bytes from `conn`'s transport to the store; every
    /// request they complete is processed. Give at most
    /// [`input_budget`](Self::input_budget) bytes at a time to honour the
    /// throttle. On a protocol error the connection is ignored.
    pub fn feed(&mut self, conn: ConnId, mut bytes: &[u8], platform: &mut dyn Platform) -> Result<(), ProtocolError> {
        while !bytes.is_empty() {
            let Some(c) = self.conns.get_mut(&conn) else { return Ok(()) };
            if c.ignored {
                return Ok(());
            }
            let (used, msg) = match c.reader.push(bytes) {
                Ok(step) => step,
                Err(PayloadTooLarge(len)) => {
                    platform.log(&format!("{conn}: client tried to feed us {len}"));
                    self.ignore_connection(conn);
                    return Err(ProtocolError::PayloadTooLarge(len));
                }
            };
            bytes = bytes.get(used..).unwrap_or(&[]);
            if let Some((hdr, payload)) = msg {
                self.process(conn, hdr, &payload, platform);
            }
            if used == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The unwritten bytes of `conn`'s next message, if any.
    pub fn output(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(&conn).and_then(|c| c.out.head())
    }

    /// Whether `conn` has messages waiting.
    pub fn has_output(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.out.is_empty())
    }

    /// Records that the transport wrote `n` bytes of [`output`](Self::output).
    pub fn output_written(&mut self, conn: ConnId, n: usize) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let domid = c.id();
        let freed: usize = c.out.advance(n).iter().map(|(len, _)| len).sum();
        let _ = self.domains.memory_add(domid, -(freed as i64), None);
    }

    /// `ignore_connection`: stop serving `conn`, drop its watches,
    /// transactions and queued messages. A domain's record stays, so its
    /// death is still announced.
    pub fn ignore_connection(&mut self, conn: ConnId) {
        self.reset_connection(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.ignored = true;
        }
    }

    /// A socket peer went away: forget its connection. (A domain's ring
    /// connection is only ever ignored here; it goes with its domain.)
    pub fn close_connection(&mut self, conn: ConnId) {
        match self.conns.get(&conn).map(|c| c.kind) {
            Some(ConnKind::Socket) => {
                self.reset_connection(conn);
                self.conns.remove(&conn);
            }
            Some(ConnKind::Domain(_)) => self.ignore_connection(conn),
            None => {}
        }
    }

    /// Drops a connection's watches, transactions and queues, releasing
    /// what they cost (`domain_conn_reset` without the ring).
    fn reset_connection(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let domid = c.id();
        let mut freed: usize = c.out.clear();
        freed += c.watches.drain(..).map(|w| w.memory()).sum::<usize>();
        freed += core::mem::take(&mut c.transactions).values().map(|t| t.memory()).sum::<usize>();
        c.reader = Default::default();
        let _ = self.domains.memory_add(domid, -(freed as i64), None);
    }

    /// The identity `perm_for_conn` sees for a connection.
    fn identity(&self, c: &Connection) -> Identity {
        let privileged = match c.kind {
            ConnKind::Socket => true,
            ConnKind::Domain(d) => d == self.config.dom0_domid || d == self.config.priv_domid,
        };
        Identity { id: c.id(), privileged, target: c.target }
    }

    /// `get_implicit_path`.
    fn implicit_path(c: &Connection) -> String {
        domain_path(c.id())
    }

    /// Whether `domid` is bound by quotas (`domid_is_unprivileged`).
    fn domid_unprivileged(&self, domid: u32) -> bool {
        domid != u32::from(self.config.dom0_domid) && domid != u32::from(self.config.priv_domid)
    }

    /// `++generation`.
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Queues a reply (or, if it is too long, `E2BIG`) for `conn`.
    fn queue_reply(&mut self, conn: ConnId, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        let msg = if payload.len() > PAYLOAD_MAX {
            encode(XS_ERROR, req_id, tx_id, &error_payload(XenError::E2big))
        } else {
            encode(type_, req_id, tx_id, payload)
        };
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let domid = c.id();
        let len = msg.len();
        c.out.push(msg, OutKind::Reply);
        let _ = self.domains.memory_add(domid, len as i64, None);
    }

    /// Queues watch events, dropping duplicates of waiting ones and events
    /// that would take an unprivileged domain over its memory quota.
    fn deliver(&mut self, events: Vec<Event>) {
        let hard = self.config.quotas.memory_hard;
        for ev in events {
            let Some(c) = self.conns.get(&ev.conn) else { continue };
            if c.ignored || (!ev.special && c.out.has_pending_event(&ev.bytes)) {
                continue;
            }
            let domid = c.id();
            let limit = (!self.identity(c).privileged).then_some(hard);
            if self.domains.memory_add(domid, ev.bytes.len() as i64, limit).is_err() {
                continue;
            }
            if let Some(c) = self.conns.get_mut(&ev.conn) {
                c.out.push(ev.bytes, OutKind::Event);
            }
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) what a committed node costs
    /// its owner, without a quota check.
    fn account_node(&mut self, name: &str, node: &Node, sign: i64) {
        let _ = self.domains.memory_add(node.perms.owner(), sign * node.memory(name) as i64, None);
    }
}

/// The payload of an `XS_ERROR` reply: the errno's name and a NUL; errors
/// XenStore has no name for become `EINVAL`, as in Xen's `send_error`.
pub(crate) fn error_payload(err: XenError) -> Vec<u8> {
    let mut payload = xsd_error_name(err).unwrap_or("EINVAL").as_bytes().to_vec();
    payload.push(0);
    payload
}
