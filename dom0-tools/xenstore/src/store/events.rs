//! Watch firing: which connections hear about a change.
//!
//! Semantics: X:`tools/xenstore/xenstored_watch.c` `fire_watches`,
//! `watch_permitted`, `check_special_event` and X:`xenstored_domain.c`
//! `check_perms_special` (Xen 4.17). A watcher hears about a node only if
//! it may read the node, its parent, or (after a permission change) the
//! node under its old permissions; special `@` events go to those who may
//! read the special node's permissions. Inside a transaction, events are
//! only noted; they fire at commit.

use super::{Ctx, XenStore};
use crate::node::Node;
use crate::path::{is_special, parent};
use crate::perms::{perm_for, Identity, Perms, XS_PERM_READ};

/// A watch event on its way to a connection.
#[derive(Debug)]
pub(crate) struct Event {
    /// The watcher.
    pub conn: crate::ConnId,
    /// The encoded message.
    pub bytes: Vec<u8>,
    /// For a special `@` path (never deduplicated).
    pub special: bool,
}

/// The special watch paths with permissions of their own.
pub(crate) const SPECIAL_NAMES: [&str; 2] = ["@introduceDomain", "@releaseDomain"];

impl XenStore {
    /// The permissions of a special path (`get_perms_special`).
    pub(super) fn special_perms(&self, name: &[u8]) -> Option<&Perms> {
        SPECIAL_NAMES.iter().position(|s| s.as_bytes() == name).and_then(|i| self.special.get(i))
    }

    /// `fire_watches` for a request: noted in the transaction if there is
    /// one, else collected into the request's events.
    pub(super) fn fire_watches(
        &mut self,
        ctx: &mut Ctx,
        name: &[u8],
        node: Option<&Node>,
        exact: bool,
        old_perms: Option<&Perms>,
    ) {
        if let Some(tx) = ctx.tx.as_mut() {
            tx.queue_watch(&String::from_utf8_lossy(name), exact);
            return;
        }
        let mut events = core::mem::take(&mut ctx.events);
        self.collect_events(name, node, exact, old_perms, &mut events);
        ctx.events = events;
    }

    /// Fires the special event `name` (`@introduceDomain`, ...) right away.
    pub(super) fn fire_special(&mut self, name: &str) {
        let mut events = Vec::new();
        self.collect_events(name.as_bytes(), None, true, None, &mut events);
        self.deliver(events);
    }

    /// The events a change of `name` causes, for every watcher allowed to
    /// hear of it.
    pub(super) fn collect_events(
        &self,
        name: &[u8],
        node: Option<&Node>,
        exact: bool,
        old_perms: Option<&Perms>,
        out: &mut Vec<Event>,
    ) {
        let special = is_special(name);
        for (&id, conn) in &self.conns {
            if conn.ignored || !conn.watches.iter().any(|w| w.matches(name, exact)) {
                continue;
            }
            let who = self.identity(conn);
            let allowed = if special {
                self.special_perms(name).is_some_and(|p| perm_for(&who, p) & XS_PERM_READ != 0)
            } else {
                self.watch_permitted(&who, name, node, old_perms)
            };
            if !allowed {
                continue;
            }
            for w in conn.watches.iter().filter(|w| w.matches(name, exact)) {
                if let Some(bytes) = w.event(name) {
                    out.push(Event { conn: id, bytes, special });
                }
            }
        }
    }

    /// `watch_permitted`: whether `who` may hear about `name`.
    fn watch_permitted(&self, who: &Identity, name: &[u8], node: Option<&Node>, old_perms: Option<&Perms>) -> bool {
        if old_perms.is_some_and(|p| perm_for(who, p) & XS_PERM_READ != 0) {
            return true;
        }
        let Ok(name) = core::str::from_utf8(name) else { return false };
        let Some(node) = node.or_else(|| self.nodes.get(name)) else { return false };
        if self.perm_on(who, node) & XS_PERM_READ != 0 {
            return true;
        }
        self.nodes.get(parent(name)).is_some_and(|p| self.perm_on(who, p) & XS_PERM_READ != 0)
    }
}
