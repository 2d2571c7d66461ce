//! Creating a node with its missing ancestors, and removing subtrees.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `construct_node`,
//! `create_node`, `rm_node`, `delnode_sub`, `walk_node_tree` (Xen 4.17).
//! New nodes copy their parent's permissions; an unprivileged creator
//! becomes their owner. Removal goes children first, firing each removed
//! node's exact watches and the removed root's watches (and its
//! ancestors').

use guest_abi::XenError;

use super::{Ctx, XenStore};
use crate::node::Node;
use crate::path::{basename, child_name, parent};

impl XenStore {
    /// `create_node`: creates `name` holding `data`, and every missing
    /// ancestor. On failure nothing is left behind (in a transaction, the
    /// transaction is doomed instead).
    pub(super) fn create_node(&mut self, ctx: &mut Ctx, name: &str, data: Vec<u8>) -> Result<Node, XenError> {
        // Walk up until an existing node is found (`construct_node`).
        let mut missing = vec![name.to_owned()];
        let (parent_name, mut parent_node) = loop {
            let deepest = missing.last().map(String::as_str).unwrap_or("/");
            let up = parent(deepest).to_owned();
            match self.read_node(ctx, &up)? {
                Some(node) => break (up, node),
                None if up == "/" => return Err(XenError::Enoent),
                None => missing.push(up),
            }
        };
        // Build the chain top-down, each node inheriting its parent's perms.
        let mut chain: Vec<(String, Node)> = Vec::with_capacity(missing.len());
        let mut perms = parent_node.perms.clone();
        if ctx.unprivileged() {
            perms.set_owner(ctx.who.id);
        }
        for n in missing.iter().rev() {
            match chain.last_mut() {
                Some((_, up)) => up.add_child(basename(n)),
                None => parent_node.add_child(basename(n)),
            }
            chain.push((n.clone(), Node::new(perms.clone())));
        }
        if let Some((_, node)) = chain.last_mut() {
            node.data = data;
        }
        if let Some(tx) = ctx.tx.as_mut() {
            tx.node_created = true;
        }
        // Write bottom-up, then the existing parent with its new child.
        let mut written: Vec<(String, u32)> = Vec::new();
        let result = self.write_chain(ctx, &chain, &mut written);
        let result = result.and_then(|()| self.write_node(ctx, &parent_name, parent_node, true));
        if let Err(e) = result {
            for (n, owner) in written {
                let _ = self.delete_node(ctx, &n);
                let _ = self.entry_add(ctx, owner, -1);
            }
            if let Some(tx) = ctx.tx.as_mut() {
                tx.fail = true;
            }
            return Err(e);
        }
        Ok(chain.pop().map(|(_, n)| n).unwrap_or_else(|| Node::new(perms)))
    }

    /// Writes the new nodes of `create_node`, deepest first, checking the
    /// node quota of the caller before each.
    fn write_chain(
        &mut self,
        ctx: &mut Ctx,
        chain: &[(String, Node)],
        written: &mut Vec<(String, u32)>,
    ) -> Result<(), XenError> {
        let limit = i64::from(self.config.quotas.nodes);
        for (n, node) in chain.iter().rev() {
            if ctx.unprivileged() && self.nodes_of(ctx, ctx.who.id) >= limit {
                return Err(XenError::Enospc);
            }
            self.write_node(ctx, n, node.clone(), true)?;
            let owner = node.perms.owner();
            if let Err(e) = self.entry_add(ctx, owner, 1) {
                let _ = self.delete_node(ctx, n);
                return Err(e);
            }
            written.push((n.clone(), owner));
        }
        Ok(())
    }

    /// `rm_node`: removes `name` and everything below it.
    pub(super) fn rm_node(&mut self, ctx: &mut Ctx, name: &str) -> Result<(), XenError> {
        let parent_name = parent(name).to_owned();
        let Some(mut parent_node) = self.read_node(ctx, &parent_name)? else {
            return Err(XenError::Einval);
        };
        for (n, node) in self.subtree_post_order(ctx, name)? {
            self.delete_node(ctx, &n)?;
            self.fire_watches(ctx, n.as_bytes(), Some(&node), n != name, None);
            self.entry_add(ctx, node.perms.owner(), -1)?;
        }
        if !parent_node.remove_child(basename(name)) {
            ctx.platform.log(&format!("corruption: can't find child '{}' in {parent_name}", basename(name)));
            return Err(XenError::Eio);
        }
        self.write_node(ctx, &parent_name, parent_node, false)
    }

    /// Every node of the subtree at `root`, children before parents
    /// (children missing from the tree are skipped).
    fn subtree_post_order(&mut self, ctx: &mut Ctx, root: &str) -> Result<Vec<(String, Node)>, XenError> {
        let mut out = Vec::new();
        // Each stack entry: a node and how many of its children were visited.
        let mut stack: Vec<(String, Node, usize)> = Vec::new();
        if let Some(node) = self.read_node(ctx, root)? {
            stack.push((root.to_owned(), node, 0));
        }
        while let Some((name, node, next)) = stack.last_mut() {
            match node.children.get(*next) {
                Some(child) => {
                    *next += 1;
                    let child = child_name(name, child);
                    if let Some(node) = self.read_node(ctx, &child)? {
                        stack.push((child, node, 0));
                    }
                }
                None => {
                    if let Some((name, node, _)) = stack.pop() {
                        out.push((name, node));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The names of the committed tree, parents before children.
    pub(super) fn committed_pre_order(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec!["/".to_owned()];
        while let Some(name) = stack.pop() {
            if let Some(node) = self.nodes.get(&name) {
                for child in node.children.iter().rev() {
                    stack.push(child_name(&name, child));
                }
                out.push(name);
            }
        }
        out
    }
}
