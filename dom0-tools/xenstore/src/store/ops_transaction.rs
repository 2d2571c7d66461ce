//! `TRANSACTION_START` and `TRANSACTION_END`, and the commit.
//!
//! Semantics: X:`tools/xenstore/xenstored_transaction.c`
//! `do_transaction_start`, `do_transaction_end`, `finalize_transaction`
//! and X:`xenstored_domain.c` `acc_fix_domains` (Xen 4.17). Ids are per
//! connection, never 0, never two open at once. A commit fails with
//! `ENOMEM` if the transaction was doomed, `ENOSPC` if it takes a domain
//! over its node quota, `EAGAIN` if a node it read changed meanwhile;
//! otherwise its changes become visible at once and its watches fire.

use guest_abi::XenError;

use super::dispatch::ack;
use super::{Ctx, XenStore};
use crate::node::NO_GENERATION;
use crate::transaction::Transaction;
use crate::wire::onearg;

impl XenStore {
    /// `TRANSACTION_START`: replies with the new id in decimal.
    pub(super) fn do_transaction_start(&mut self, ctx: &mut Ctx, _payload: &[u8]) -> Result<Vec<u8>, XenError> {
        if ctx.tx.is_some() {
            return Err(XenError::Ebusy);
        }
        let unprivileged = ctx.unprivileged();
        let max = self.config.quotas.transactions as usize;
        let conn = self.conns.get_mut(&ctx.conn).ok_or(XenError::Einval)?;
        // As 4.17: the check is `started > quota`, so one more fits.
        if unprivileged && conn.transactions.len() > max {
            return Err(XenError::Enospc);
        }
        let id = loop {
            let id = conn.next_transaction_id;
            conn.next_transaction_id = id.wrapping_add(1);
            if id != 0 && !conn.transactions.contains_key(&id) {
                break id;
            }
        };
        conn.transactions.insert(id, Transaction::new(id));
        self.next_generation();
        let mut reply = id.to_string().into_bytes();
        reply.push(0);
        Ok(reply)
    }

    /// `TRANSACTION_END T|F`: commit or abort the request's transaction.
    pub(super) fn do_transaction_end(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let commit = match onearg(payload) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(XenError::Einval),
        };
        let tx = ctx.tx.take().ok_or(XenError::Enoent)?;
        let result = if commit { self.commit(ctx, &tx) } else { Ok(()) };
        let _ = self.domains.memory_add(ctx.who.id, -(tx.memory() as i64), None);
        result.map(|()| ack())
    }

    /// `finalize_transaction` with its quota and conflict checks.
    fn commit(&mut self, ctx: &mut Ctx, tx: &Transaction) -> Result<(), XenError> {
        if tx.fail {
            return Err(XenError::Enomem);
        }
        if tx.node_created && ctx.unprivileged() {
            let limit = i64::from(self.config.quotas.nodes);
            for (&domid, &delta) in &tx.node_deltas {
                let committed = self.domains.get(domid).map_or(0, |d| i64::from(d.nodes));
                if self.domid_unprivileged(domid) && committed + delta >= limit {
                    return Err(XenError::Enospc);
                }
            }
        }
        for (name, acc) in tx.in_order() {
            let now = self.nodes.get(name).map_or(NO_GENERATION, |n| n.generation);
            if acc.check_gen && acc.generation != now {
                return Err(XenError::Eagain);
            }
        }
        for (name, acc) in tx.in_order().filter(|(_, a)| a.modified) {
            match &acc.node {
                Some(node) => {
                    let mut node = node.clone();
                    node.generation = self.next_generation();
                    let _ = self.commit_node(name, node, false);
                }
                None if acc.generation != NO_GENERATION => {
                    if let Some(old) = self.nodes.remove(name) {
                        self.account_node(name, &old, -1);
                    }
                }
                None => {}
            }
        }
        for (name, acc) in tx.in_order().filter(|(_, a)| a.modified && a.fire_watch) {
            let mut events = core::mem::take(&mut ctx.events);
            self.collect_events(name.as_bytes(), None, acc.watch_exact, acc.orig_perms.as_ref(), &mut events);
            ctx.events = events;
        }
        for (&domid, &delta) in &tx.node_deltas {
            self.domains.nodes_add(domid, delta);
        }
        Ok(())
    }
}
