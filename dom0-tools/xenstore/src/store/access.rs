//! Reading, writing and deleting single nodes, through the caller's
//! transaction when it has one, with permission checks and accounting.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `read_node`,
//! `write_node`, `write_node_raw`, `get_node`, `ask_parents`,
//! `errno_from_parents`, `domain_adjust_node_perms` and
//! X:`xenstored_transaction.c` `access_node` (Xen 4.17). A node the
//! caller may not see reports `EACCES` unless the nearest existing
//! ancestor grants the wanted access, so that errors leak nothing.

use guest_abi::XenError;

use super::{Ctx, XenStore};
use crate::node::Node;
use crate::path::{is_valid_nodename, parent};
use crate::perms::{perm_for, Identity, Perms, XS_PERM_IGNORE};
use crate::transaction::Accessed;

impl XenStore {
    /// A valid, canonical node name as a `String`, or `EINVAL`.
    pub(super) fn valid_name(&self, canonical: &[u8]) -> Result<String, XenError> {
        if !is_valid_nodename(canonical, self.config.quotas.path_len as usize) {
            return Err(XenError::Einval);
        }
        String::from_utf8(canonical.to_vec()).map_err(|_| XenError::Einval)
    }

    /// `domain_adjust_node_perms`: entries naming a domain that did not
    /// exist when the node was last written are ignored.
    pub(super) fn adjust_perms(&self, perms: &mut Perms, generation: u64) {
        for p in perms.entries_mut().iter_mut().skip(1) {
            if p.perms & XS_PERM_IGNORE == 0 && !self.domains.valid_at(p.id, generation) {
                p.perms |= XS_PERM_IGNORE;
            }
        }
    }

    /// A committed node with its permissions adjusted.
    pub(super) fn committed(&self, name: &str) -> Option<Node> {
        let mut node = self.nodes.get(name)?.clone();
        self.adjust_perms(&mut node.perms, node.generation);
        Some(node)
    }

    /// The rights `who` has on a committed node, adjusted as on reading.
    pub(super) fn perm_on(&self, who: &Identity, node: &Node) -> u32 {
        let mut perms = node.perms.clone();
        self.adjust_perms(&mut perms, node.generation);
        perm_for(who, &perms)
    }

    /// Checks the transaction-nodes quota before a new access.
    fn tx_quota(&self, ctx: &mut Ctx) -> Result<(), XenError> {
        let limit = self.config.quotas.transaction_nodes as usize;
        let unprivileged = ctx.unprivileged();
        match ctx.tx.as_mut() {
            Some(tx) if unprivileged && tx.nodes() >= limit => {
                tx.fail = true;
                Err(XenError::Enospc)
            }
            _ => Ok(()),
        }
    }

    /// `read_node`: the caller's view of `name` (`Ok(None)`: absent). In a
    /// transaction the first read records the node and copies it.
    pub(super) fn read_node(&mut self, ctx: &mut Ctx, name: &str) -> Result<Option<Node>, XenError> {
        if let Some(acc) = ctx.tx.as_ref().and_then(|tx| tx.get(name)) {
            return Ok(acc.node.clone());
        }
        let node = self.committed(name);
        if ctx.tx.is_some() {
            self.tx_quota(ctx)?;
            let memory = node.as_ref().map_or(0, |n| n.memory(name));
            let _ = self.domains.memory_add(ctx.who.id, memory as i64, None);
            if let Some(tx) = ctx.tx.as_mut() {
                tx.insert(name, Accessed::read(node.as_ref(), memory));
            }
        }
        Ok(node)
    }

    /// `write_node`: stores `node` as `name` (in the transaction, if any),
    /// with a new generation. `quota_check` applies the entry-size and
    /// memory quotas.
    pub(super) fn write_node(
        &mut self,
        ctx: &mut Ctx,
        name: &str,
        mut node: Node,
        quota_check: bool,
    ) -> Result<(), XenError> {
        let quotas = &self.config.quotas;
        if quota_check && ctx.unprivileged() && node.record_size() >= quotas.entry_size as usize {
            if let Some(tx) = ctx.tx.as_mut() {
                tx.fail = true;
            }
            return Err(XenError::Enospc);
        }
        let hard = quotas.memory_hard;
        node.generation = self.next_generation();
        let memory = node.memory(name);
        if ctx.tx.is_none() {
            return self.commit_node(name, node, quota_check);
        }
        if ctx.tx.as_ref().and_then(|tx| tx.get(name)).is_none() {
            self.tx_quota(ctx)?;
            if let Some(tx) = ctx.tx.as_mut() {
                tx.insert(name, Accessed::blind());
            }
        }
        let limit = (quota_check && ctx.unprivileged()).then_some(hard);
        let Some(acc) = ctx.tx.as_mut().and_then(|tx| tx.get_mut(name)) else {
            return Err(XenError::Eio);
        };
        let delta = memory as i64 - acc.memory as i64;
        if let Err(e) = self.domains.memory_add(ctx.who.id, delta, limit) {
            if let Some(tx) = ctx.tx.as_mut() {
                tx.fail = true;
            }
            return Err(e);
        }
        acc.memory = memory;
        acc.modified = true;
        acc.node = Some(node);
        Ok(())
    }

    /// Writes a node to the committed tree, moving its memory between the
    /// old and the new owner.
    pub(super) fn commit_node(&mut self, name: &str, node: Node, quota_check: bool) -> Result<(), XenError> {
        let owner = node.perms.owner();
        let limit = (quota_check && self.domid_unprivileged(owner)).then_some(self.config.quotas.memory_hard);
        let old = self.nodes.get(name).map(|n| (n.perms.owner(), n.memory(name)));
        if let Some((old_owner, old_mem)) = old {
            let _ = self.domains.memory_add(old_owner, -(old_mem as i64), None);
        }
        if let Err(e) = self.domains.memory_add(owner, node.memory(name) as i64, limit) {
            if let Some((old_owner, old_mem)) = old {
                let _ = self.domains.memory_add(old_owner, old_mem as i64, None);
            }
            return Err(e);
        }
        self.nodes.insert(name.to_owned(), node);
        Ok(())
    }

    /// Deletes `name` (in the transaction, if any).
    pub(super) fn delete_node(&mut self, ctx: &mut Ctx, name: &str) -> Result<(), XenError> {
        self.next_generation();
        if ctx.tx.is_none() {
            if let Some(old) = self.nodes.remove(name) {
                self.account_node(name, &old, -1);
            }
            return Ok(());
        }
        if ctx.tx.as_ref().and_then(|tx| tx.get(name)).is_none() {
            self.tx_quota(ctx)?;
            if let Some(tx) = ctx.tx.as_mut() {
                tx.insert(name, Accessed::blind());
            }
        }
        if let Some(acc) = ctx.tx.as_mut().and_then(|tx| tx.get_mut(name)) {
            let _ = self.domains.memory_add(ctx.who.id, -(acc.memory as i64), None);
            acc.memory = 0;
            acc.modified = true;
            acc.node = None;
        }
        Ok(())
    }

    /// `get_node`: `name` if the caller has all of `want` on it; else
    /// `EACCES`, or `ENOENT` if it does not exist and its nearest existing
    /// ancestor grants some of `want`.
    pub(super) fn get_node(&mut self, ctx: &mut Ctx, name: &str, want: u32) -> Result<Node, XenError> {
        let err = match self.read_node(ctx, name)? {
            Some(node) if perm_for(&ctx.who, &node.perms) & want == want => return Ok(node),
            Some(_) => XenError::Eacces,
            None => XenError::Enoent,
        };
        if self.ask_parents(ctx, name)? & want != 0 {
            Err(err)
        } else {
            Err(XenError::Eacces)
        }
    }

    /// `ask_parents`: the caller's rights on the nearest existing ancestor.
    fn ask_parents(&mut self, ctx: &mut Ctx, name: &str) -> Result<u32, XenError> {
        let mut name = name.to_owned();
        loop {
            let up = parent(&name).to_owned();
            if let Some(node) = self.read_node(ctx, &up)? {
                return Ok(perm_for(&ctx.who, &node.perms));
            }
            if up == "/" {
                return Ok(0);
            }
            name = up;
        }
    }

    /// Nodes `domid` owns, counting the caller's uncommitted changes.
    pub(super) fn nodes_of(&self, ctx: &Ctx, domid: u32) -> i64 {
        let committed = self.domains.get(domid).map_or(0, |d| i64::from(d.nodes));
        committed + ctx.tx.as_ref().and_then(|tx| tx.node_deltas.get(&domid)).copied().unwrap_or(0)
    }

    /// `domain_nbentry_inc`/`_dec`: `domid` owns one node more or less
    /// (recorded in the transaction until commit). Owning a node needs a
    /// domain that exists.
    pub(super) fn entry_add(&mut self, ctx: &mut Ctx, domid: u32, delta: i64) -> Result<(), XenError> {
        let generation = self.generation;
        if delta > 0 && self.domains.find_or_alloc_existing(domid, generation, &*ctx.platform).is_none() {
            return Err(XenError::Enomem);
        }
        match ctx.tx.as_mut() {
            Some(tx) => *tx.node_deltas.entry(domid).or_insert(0) += delta,
            None => self.domains.nodes_add(domid, delta),
        }
        Ok(())
    }
}
