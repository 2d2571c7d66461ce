//! A transaction: the nodes it touched, their private copies, and what
//! must be checked and applied at commit.
//!
//! Semantics: X:`tools/xenstore/xenstored_transaction.c` (Xen 4.17),
//! `struct accessed_node`, `access_node`, `queue_watches`,
//! `finalize_transaction`. The first access to a node records the node's
//! generation (`NO_GENERATION` if it did not exist) and, from then on, the
//! transaction works on its own copy. A commit fails with `EAGAIN` if any
//! node it *read* changed (or appeared, or vanished) in the global tree
//! since; nodes it only wrote are not checked.

use std::collections::BTreeMap;

use crate::node::{Node, NO_GENERATION};
use crate::perms::Perms;

/// One node the transaction touched.
#[derive(Clone, Debug)]
pub(crate) struct Accessed {
    /// The global generation at first access (`NO_GENERATION`: absent).
    pub generation: u64,
    /// The first access was a read: check `generation` at commit.
    pub check_gen: bool,
    /// Written or deleted in the transaction.
    pub modified: bool,
    /// The transaction's view of the node (`None`: absent or deleted).
    pub node: Option<Node>,
    /// The node's permissions at first access, for watch filtering.
    pub orig_perms: Option<Perms>,
    /// A watch event is due at commit.
    pub fire_watch: bool,
    /// That event is exact (only watches on the node itself).
    pub watch_exact: bool,
    /// Bytes this copy costs the transaction's domain.
    pub memory: usize,
}

impl Accessed {
    /// The record of a first read of `node` (`None`: it does not exist).
    pub fn read(node: Option<&Node>, memory: usize) -> Accessed {
        Accessed {
            generation: node.map_or(NO_GENERATION, |n| n.generation),
            check_gen: true,
            modified: false,
            node: node.cloned(),
            orig_perms: node.map(|n| n.perms.clone()),
            fire_watch: false,
            watch_exact: false,
            memory,
        }
    }

    /// The record of a first access that is a write or a delete.
    pub fn blind() -> Accessed {
        Accessed {
            generation: 0,
            check_gen: false,
            modified: true,
            node: None,
            orig_perms: None,
            fire_watch: false,
            watch_exact: false,
            memory: 0,
        }
    }
}

/// One open transaction.
#[derive(Debug)]
pub(crate) struct Transaction {
    /// The connection-local id.
    pub id: u32,
    /// Names in first-access order (commit applies and fires in it).
    order: Vec<String>,
    accessed: BTreeMap<String, Accessed>,
    /// A node was created in it (commit then checks the node quota).
    pub node_created: bool,
    /// Something went wrong that cannot be undone: commit fails.
    pub fail: bool,
    /// Changes to each domain's node count, applied at commit.
    pub node_deltas: BTreeMap<u32, i64>,
}

impl Transaction {
    /// A transaction with nothing accessed.
    pub fn new(id: u32) -> Transaction {
        Transaction {
            id,
            order: Vec::new(),
            accessed: BTreeMap::new(),
            node_created: false,
            fail: false,
            node_deltas: BTreeMap::new(),
        }
    }

    /// Number of nodes touched (`trans->nodes`).
    pub fn nodes(&self) -> usize {
        self.order.len()
    }

    /// The record of `name`, if touched.
    pub fn get(&self, name: &str) -> Option<&Accessed> {
        self.accessed.get(name)
    }

    /// The record of `name`, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Accessed> {
        self.accessed.get_mut(name)
    }

    /// Adds the record of a first access.
    pub fn insert(&mut self, name: &str, acc: Accessed) {
        if self.accessed.insert(name.to_owned(), acc).is_none() {
            self.order.push(name.to_owned());
        }
    }

    /// `queue_watches`: an event for `name` is due at commit. A non-exact
    /// event replaces an exact one, never the other way round.
    pub fn queue_watch(&mut self, name: &str, exact: bool) {
        match self.accessed.get_mut(name) {
            Some(acc) if !acc.fire_watch => {
                acc.fire_watch = true;
                acc.watch_exact = exact;
            }
            Some(acc) => acc.watch_exact &= exact,
            None => self.fail = true,
        }
    }

    /// Bytes the transaction's copies cost.
    pub fn memory(&self) -> usize {
        self.accessed.values().map(|a| a.memory).sum()
    }

    /// The records in first-access order.
    pub fn in_order(&self) -> impl Iterator<Item = (&str, &Accessed)> {
        self.order.iter().filter_map(|n| self.accessed.get(n).map(|a| (n.as_str(), a)))
    }
}
