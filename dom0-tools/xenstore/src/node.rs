//! A node of the tree: its data, permissions, children and generation.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.h` `struct node` and the
//! TDB record of `write_node_raw` (Xen 4.17). Children keep their creation
//! order, which is the order `DIRECTORY` lists them in. The record size
//! (header, permissions, data and child names) is what the entry-size
//! quota and the memory accounting measure, as in Xen.

use crate::perms::Perms;

/// `NO_GENERATION`: the generation recorded for a node that did not exist.
pub const NO_GENERATION: u64 = u64::MAX;

/// `sizeof(struct xs_tdb_record_hdr)`: generation, number of permissions,
/// data and children lengths, padded to 8 bytes.
const RECORD_HEADER: usize = 24;

/// `sizeof(struct xs_permissions)`.
const PERM_SIZE: usize = 8;

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The global generation of the node's last modification.
    pub generation: u64,
    /// Its permissions.
    pub perms: Perms,
    /// Its value (binary, no terminating NUL).
    pub data: Vec<u8>,
    /// The names of its children, in creation order.
    pub children: Vec<String>,
}

impl Node {
    /// A node with no data and no children.
    pub fn new(perms: Perms) -> Node {
        Node { generation: 0, perms, data: Vec::new(), children: Vec::new() }
    }

    /// `childlen`: bytes of the NUL-separated child list.
    pub fn childlen(&self) -> usize {
        self.children.iter().map(|c| c.len() + 1).sum()
    }

    /// The child list as Xen stores it: each name followed by a NUL.
    pub fn children_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.childlen());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }

    /// Size of the node's record (what the entry-size quota measures).
    pub fn record_size(&self) -> usize {
        RECORD_HEADER + PERM_SIZE * self.perms.len() + self.data.len() + self.childlen()
    }

    /// Memory the node costs its owner: its record and its name.
    pub fn memory(&self, name: &str) -> usize {
        self.record_size() + name.len()
    }

    /// Adds a child name at the end of the list.
    pub fn add_child(&mut self, name: &str) {
        self.children.push(name.to_owned());
    }

    /// Removes a child name; false if it was not there.
    pub fn remove_child(&mut self, name: &str) -> bool {
        match self.children.iter().position(|c| c == name) {
            Some(i) => {
                self.children.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::XS_PERM_NONE;

    #[test]
    fn sizes_follow_xens_record() {
        let mut n = Node::new(Perms::owned_by(0, XS_PERM_NONE));
        assert_eq!(n.record_size(), 32);
        n.data = b"abc".to_vec();
        n.add_child("tool");
        n.add_child("local");
        assert_eq!(n.childlen(), 11);
        assert_eq!(n.children_blob(), b"tool\0local\0");
        assert_eq!(n.record_size(), 32 + 3 + 11);
        assert_eq!(n.memory("/"), 47);
        assert!(n.remove_child("tool"));
        assert!(!n.remove_child("tool"));
        assert_eq!(n.children, vec!["local".to_owned()]);
    }
}
