//! Daemon-wide settings: quotas and the special domain ids.
//!
//! Defaults are Xen 4.17's (X:`tools/xenstore/xenstored_core.c`, the
//! `quota_*` variables). Quotas bind unprivileged domains only; the path
//! length limit applies to every connection, as in 4.17.

use guest_abi::io::xs_wire::XENSTORE_REL_PATH_MAX;

/// Per-domain limits (`quota_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// `quota_nb_entry_per_domain`: nodes a domain may own.
    pub nodes: u32,
    /// `quota_nb_watch_per_domain`: watches per connection.
    pub watches: u32,
    /// `quota_max_entry_size`: node record size (bytes).
    pub entry_size: u32,
    /// `quota_max_transaction`: open transactions per connection.
    pub transactions: u32,
    /// `quota_nb_perms_per_node`: entries in a `SET_PERMS` list.
    pub perms_per_node: u32,
    /// `quota_trans_nodes`: nodes one transaction may touch.
    pub transaction_nodes: u32,
    /// `quota_max_path_len`: bytes of a path below `/local/domain/<id>/`.
    pub path_len: u32,
    /// `quota_req_outstanding`: replies queued but not yet taken by the
    /// domain before the daemon stops reading its requests.
    pub outstanding: u32,
    /// `quota_memory_per_domain_soft`: bytes before a warning.
    pub memory_soft: u32,
    /// `quota_memory_per_domain_hard`: bytes before `ENOMEM` and a stall.
    pub memory_hard: u32,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            nodes: 1000,
            watches: 128,
            entry_size: 2048,
            transactions: 10,
            perms_per_node: 5,
            transaction_nodes: 1024,
            path_len: XENSTORE_REL_PATH_MAX,
            outstanding: 20,
            memory_soft: 2 * 1024 * 1024,
            memory_hard: 2 * 1024 * 1024 + 512 * 1024,
        }
    }
}

impl Quotas {
    /// The `CONTROL quota` table: name, value, description, in Xen's order.
    pub fn table(&self) -> [(&'static str, u32, &'static str); 9] {
        [
            ("nodes", self.nodes, "Nodes per domain"),
            ("watches", self.watches, "Watches per domain"),
            ("transactions", self.transactions, "Transactions per domain"),
            ("outstanding", self.outstanding, "Outstanding requests per domain"),
            ("transaction-nodes", self.transaction_nodes, "Max. number of accessed nodes per transaction"),
            ("memory", self.memory_hard, "Total Xenstore memory per domain (error level)"),
            ("node-size", self.entry_size, "Max. size of a node"),
            ("path-max", self.path_len, "Max. length of a node path"),
            ("permissions", self.perms_per_node, "Max. number of permissions per node"),
        ]
    }

    /// Sets a hard quota by its `CONTROL`/`-Q` name; false if unknown.
    pub fn set(&mut self, name: &str, value: u32) -> bool {
        let slot = match name {
            "nodes" => &mut self.nodes,
            "watches" => &mut self.watches,
            "transactions" => &mut self.transactions,
            "outstanding" => &mut self.outstanding,
            "transaction-nodes" => &mut self.transaction_nodes,
            "memory" => &mut self.memory_hard,
            "node-size" => &mut self.entry_size,
            "path-max" => &mut self.path_len,
            "permissions" => &mut self.perms_per_node,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// Everything the store needs to know about the daemon's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The limits for unprivileged domains.
    pub quotas: Quotas,
    /// `dom0_domid` (`--master-domid`): the domain whose kernel ring the
    /// daemon serves first and which owns the initial nodes.
    pub dom0_domid: u16,
    /// `priv_domid` (`--priv-domid`): a second privileged domain.
    pub priv_domid: u16,
    /// `keep_orphans` (`--keep-orphans`): give a dead domain's nodes to
    /// `priv_domid` instead of deleting them.
    pub keep_orphans: bool,
}
