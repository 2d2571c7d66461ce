//! Domain requests (`INTRODUCE`, `RELEASE`, `RESUME`, `SET_TARGET`,
//! `IS_DOMAIN_INTRODUCED`, `GET_DOMAIN_PATH`) and the domain life cycle
//! (`check_domains` on `VIRQ_DOM_EXC`, `destroy_domain`).
//!
//! Semantics: X:`tools/xenstore/xenstored_domain.c` `do_introduce`,
//! `introduce_domain`, `domain_conn_reset`, `do_release`, `do_resume`,
//! `do_set_target`, `do_is_domain_introduced`, `do_get_domain_path`,
//! `check_domain`, `destroy_domain`, `domain_tree_remove` (Xen 4.17). A
//! dead domain loses its connection and every node it owns (or, with
//! `keep_orphans`, they pass to `priv_domid`), then `@releaseDomain` fires.

use guest_abi::xen::DOMID_SELF;
use guest_abi::XenError;

use super::dispatch::ack;
use super::{Ctx, XenStore};
use crate::connection::ConnId;
use crate::domain::{DomainState, Platform};
use crate::path::domain_path;
use crate::perms::Identity;
use crate::wire::{atoi, onearg, strings, strtol};

/// `DOMID_FIRST_RESERVED`: domain ids from here on are not domains.
const DOMID_FIRST_RESERVED: u32 = 0x7ff0;

impl XenStore {
    /// `INTRODUCE domid\0mfn\0port\0`: start serving a domain's ring.
    pub(super) fn do_introduce(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let args = strings(payload);
        let [domid, mfn, port, ..] = args.as_slice() else {
            return Err(XenError::Einval);
        };
        let domid = atoi(domid) as u32;
        let mfn = strtol(mfn).0 as u64;
        let port = atoi(port) as u32;
        if port == 0 || domid >= DOMID_FIRST_RESERVED {
            return Err(XenError::Einval);
        }
        let Ok(domid16) = u16::try_from(domid) else { return Err(XenError::Einval) };
        let generation = self.generation;
        let conn = match self.domains.alloc(domid, generation).conn {
            Some(conn) => {
                ctx.platform.rebind_domain(domid16, port);
                conn
            }
            None => {
                ctx.platform.map_domain(domid16, mfn, port)?;
                let conn = self.add_domain_connection(domid16);
                if domid16 != self.config.dom0_domid {
                    self.fire_special("@introduceDomain");
                }
                conn
            }
        };
        // `domain_conn_reset`.
        self.reset_connection(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.ignored = false;
        }
        ctx.platform.reset_ring(domid16);
        Ok(ack())
    }

    /// `onearg_domain`: the introduced domain a request names (not dom0).
    fn onearg_domain(&self, payload: &[u8]) -> Result<u32, XenError> {
        let domid = atoi(onearg(payload).ok_or(XenError::Einval)?) as u32;
        if domid == u32::from(self.config.dom0_domid) {
            return Err(XenError::Einval);
        }
        self.find_connected_domain(domid)
    }

    /// `find_connected_domain`.
    fn find_connected_domain(&self, domid: u32) -> Result<u32, XenError> {
        match self.domains.get(domid) {
            Some(rec) if rec.conn.is_some() => Ok(domid),
            _ => Err(XenError::Enoent),
        }
    }

    /// `RELEASE domid`: stop serving a domain as if it had died.
    pub(super) fn do_release(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let domid = self.onearg_domain(payload)?;
        // No events for the released domain about its own nodes.
        if let Some(c) = self.domains.get(domid).and_then(|d| d.conn).and_then(|c| self.conns.get_mut(&c)) {
            c.watches.clear();
        }
        self.destroy_domain(domid, ctx.platform);
        Ok(ack())
    }

    /// `RESUME domid`: the domain may announce a shutdown again.
    pub(super) fn do_resume(&mut self, _ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let domid = self.onearg_domain(payload)?;
        if let Some(rec) = self.domains.get_mut(domid) {
            rec.shutdown = false;
        }
        Ok(ack())
    }

    /// `SET_TARGET domid\0target\0`: `domid` gets `target`'s rights.
    pub(super) fn do_set_target(&mut self, _ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let args = strings(payload);
        let [domid, target, ..] = args.as_slice() else {
            return Err(XenError::Einval);
        };
        let domid = self.find_connected_domain(atoi(domid) as u32)?;
        let target = self.find_connected_domain(atoi(target) as u32)?;
        let conn = self.domains.get(domid).and_then(|d| d.conn).ok_or(XenError::Enoent)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.target = Some(target);
        }
        Ok(ack())
    }

    /// `IS_DOMAIN_INTRODUCED domid`: `T` or `F`.
    pub(super) fn do_is_domain_introduced(&mut self, _ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let domid = atoi(onearg(payload).ok_or(XenError::Einval)?) as u32;
        let introduced = domid == u32::from(DOMID_SELF) || self.find_connected_domain(domid).is_ok();
        Ok(if introduced { b"T\0".to_vec() } else { b"F\0".to_vec() })
    }

    /// `GET_DOMAIN_PATH domid`: `/local/domain/<domid>`.
    pub(super) fn do_get_domain_path(&mut self, _ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let domid = atoi(onearg(payload).ok_or(XenError::Einval)?) as u32;
        let mut reply = domain_path(domid).into_bytes();
        reply.push(0);
        Ok(reply)
    }

    /// `check_domains`, on `VIRQ_DOM_EXC`: announce shutdowns, destroy
    /// what died, forget records of vanished domains.
    pub fn check_domains(&mut self, platform: &mut dyn Platform) {
        let mut notify = false;
        for domid in self.domains.ids() {
            let Some(rec) = self.domains.get(domid) else { continue };
            let state = u16::try_from(domid).map_or(DomainState::Absent, |d| platform.domain_state(d));
            let introduced = rec.conn.is_some();
            if !introduced {
                if state == DomainState::Absent && domid != u32::from(self.config.dom0_domid) {
                    self.destroy_domain(domid, platform);
                }
                continue;
            }
            if matches!(state, DomainState::Shutdown | DomainState::Dying) && !rec.shutdown {
                if let Some(rec) = self.domains.get_mut(domid) {
                    rec.shutdown = true;
                }
                notify = true;
            }
            if matches!(state, DomainState::Running | DomainState::Shutdown) {
                continue;
            }
            self.destroy_domain(domid, platform);
            notify = false;
        }
        if notify {
            self.fire_special("@releaseDomain");
        }
    }

    /// `destroy_domain`: drops the domain's connection, its nodes and its
    /// record; an introduced domain's ring is released and
    /// `@releaseDomain` fires.
    pub(super) fn destroy_domain(&mut self, domid: u32, platform: &mut dyn Platform) {
        let conn = self.domains.get(domid).and_then(|d| d.conn);
        if let Some(conn) = conn {
            self.reset_connection(conn);
            self.conns.remove(&conn);
        }
        self.domain_tree_remove(domid, platform);
        self.domains.remove(domid);
        if conn.is_some() {
            if let Ok(d) = u16::try_from(domid) {
                platform.unmap_domain(d);
            }
            self.fire_special("@releaseDomain");
        }
    }

    /// `domain_tree_remove`: removes (or hands to `priv_domid`) every node
    /// `domid` owns.
    fn domain_tree_remove(&mut self, domid: u32, platform: &mut dyn Platform) {
        if self.domains.get(domid).is_none_or(|d| d.nodes == 0) {
            return;
        }
        let who = Identity::privileged(u32::from(self.config.dom0_domid));
        let mut ctx =
            Ctx { conn: ConnId(0), who, implicit: domain_path(who.id), tx: None, events: Vec::new(), platform };
        for name in self.committed_pre_order() {
            if self.domains.get(domid).is_none_or(|d| d.nodes == 0) {
                break;
            }
            let Some(node) = self.nodes.get(&name) else { continue };
            if node.perms.owner() != domid {
                continue;
            }
            if self.config.keep_orphans {
                let mut node = node.clone();
                let heir = u32::from(self.config.priv_domid);
                node.perms.set_owner(heir);
                self.domains.nodes_add(domid, -1);
                self.domains.nodes_add(heir, 1);
                let _ = self.commit_node(&name, node, false);
            } else if name != "/" {
                if let Err(e) = self.rm_node(&mut ctx, &name) {
                    ctx.platform.log(&format!("error {e:?} when deleting orphaned node {name}"));
                }
            }
        }
        let events = core::mem::take(&mut ctx.events);
        self.deliver(events);
    }
}
