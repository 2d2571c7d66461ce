//! The watch requests: `WATCH`, `UNWATCH`, `RESET_WATCHES`.
//!
//! Semantics: X:`tools/xenstore/xenstored_watch.c` `do_watch`,
//! `do_unwatch`, `check_watch_path` and X:`xenstored_domain.c`
//! `do_reset_watches` (Xen 4.17). A new watch fires once at once (after
//! the reply), whatever the node's permissions.

use guest_abi::io::xs_wire::XENSTORE_REL_PATH_MAX;
use guest_abi::XenError;

use super::dispatch::ack;
use super::events::Event;
use super::{Ctx, XenStore};
use crate::path::{canonicalize, is_special, is_valid_nodename};
use crate::watch::Watch;
use crate::wire::strings;

impl XenStore {
    /// `WATCH path\0token\0`.
    pub(super) fn do_watch(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let args = strings(payload);
        let [path, token] = args.as_slice() else {
            return Err(XenError::Einval);
        };
        // `check_watch_path`.
        let (node, relative_to) = if is_special(path) {
            if path.len() > XENSTORE_REL_PATH_MAX as usize {
                return Err(XenError::Einval);
            }
            (path.to_vec(), None)
        } else {
            let relative = path.first() != Some(&b'/');
            let node = canonicalize(&ctx.implicit, path);
            if !is_valid_nodename(&node, self.config.quotas.path_len as usize) {
                return Err(XenError::Einval);
            }
            (node, relative.then(|| ctx.implicit.clone()))
        };
        let watch = Watch { node, token: token.to_vec(), relative_to };
        let unprivileged = ctx.unprivileged();
        let max = self.config.quotas.watches as usize;
        let conn = self.conns.get_mut(&ctx.conn).ok_or(XenError::Einval)?;
        if conn.watches.iter().any(|w| w.node == watch.node && w.token == watch.token) {
            return Err(XenError::Eexist);
        }
        if unprivileged && conn.watches.len() > max {
            return Err(XenError::E2big);
        }
        let first = watch.event(&watch.node);
        let memory = watch.memory();
        conn.watches.push(watch);
        let _ = self.domains.memory_add(ctx.who.id, memory as i64, None);
        if let Some(bytes) = first {
            let special = is_special(path);
            ctx.events.push(Event { conn: ctx.conn, bytes, special });
        }
        Ok(ack())
    }

    /// `UNWATCH path\0token\0`.
    pub(super) fn do_unwatch(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let args = strings(payload);
        let [path, token] = args.as_slice() else {
            return Err(XenError::Einval);
        };
        let node = canonicalize(&ctx.implicit, path);
        let conn = self.conns.get_mut(&ctx.conn).ok_or(XenError::Einval)?;
        let i = conn.watches.iter().position(|w| w.node == node && w.token == *token).ok_or(XenError::Enoent)?;
        let memory = conn.watches.remove(i).memory();
        let _ = self.domains.memory_add(ctx.who.id, -(memory as i64), None);
        Ok(ack())
    }

    /// `RESET_WATCHES`: drops all watches and transactions of the caller.
    pub(super) fn do_reset_watches(&mut self, ctx: &mut Ctx, _payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let mut freed = ctx.tx.take().map_or(0, |tx| tx.memory());
        if let Some(conn) = self.conns.get_mut(&ctx.conn) {
            freed += conn.watches.drain(..).map(|w| w.memory()).sum::<usize>();
            freed += core::mem::take(&mut conn.transactions).values().map(|t| t.memory()).sum::<usize>();
        }
        let _ = self.domains.memory_add(ctx.who.id, -(freed as i64), None);
        Ok(ack())
    }
}
