//! The node requests: `READ`, `WRITE`, `MKDIR`, `RM`, `DIRECTORY`,
//! `DIRECTORY_PART`, `GET_PERMS`, `SET_PERMS`.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `do_read`, `do_write`,
//! `do_mkdir`, `do_rm`, `send_directory`, `send_directory_part`,
//! `do_get_perms`, `do_set_perms` and X:`xenstored_domain.c`
//! `domain_alloc_permrefs`, `set_perms_special` (Xen 4.17).

use guest_abi::XenError;

use super::dispatch::ack;
use super::events::SPECIAL_NAMES;
use super::{Ctx, XenStore};
use crate::path::{canonicalize, is_special, parent};
use crate::perms::{perm_for, Perms, XS_PERM_IGNORE, XS_PERM_OWNER, XS_PERM_READ, XS_PERM_WRITE};
use crate::wire::{atoi, count_strings, onearg, strings};

impl XenStore {
    /// The canonical, valid name of a request's path argument.
    fn arg_name(&self, ctx: &Ctx, arg: Option<&[u8]>) -> Result<String, XenError> {
        let arg = arg.ok_or(XenError::Einval)?;
        self.valid_name(&canonicalize(&ctx.implicit, arg))
    }

    /// `READ path`: the node's value.
    pub(super) fn do_read(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let name = self.arg_name(ctx, onearg(payload))?;
        Ok(self.get_node(ctx, &name, XS_PERM_READ)?.data)
    }

    /// `DIRECTORY path`: the children's names, each NUL-terminated.
    pub(super) fn do_directory(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let name = self.arg_name(ctx, onearg(payload))?;
        Ok(self.get_node(ctx, &name, XS_PERM_READ)?.children_blob())
    }

    /// `DIRECTORY_PART path offset`: the node's generation, then as many
    /// child names from byte `offset` of the list as fit; an extra NUL
    /// marks the end of the list.
    pub(super) fn do_directory_part(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        if count_strings(payload) != 2 {
            return Err(XenError::Einval);
        }
        let args = strings(payload);
        let name = self.arg_name(ctx, args.first().copied())?;
        let node = self.get_node(ctx, &name, XS_PERM_READ)?;
        let off = atoi(args.get(1).copied().unwrap_or(&[])) as u32 as usize;
        let mut reply = format!("{}", node.generation).into_bytes();
        reply.push(0);
        let blob = node.children_blob();
        let Some(rest) = blob.get(off..).filter(|r| !r.is_empty()) else {
            reply.push(0);
            return Ok(reply);
        };
        let maxlen = crate::wire::PAYLOAD_MAX - reply.len() - 1;
        let mut len = 0;
        for child in rest.split_inclusive(|&b| b == 0) {
            if len + child.len() > maxlen {
                break;
            }
            len += child.len();
        }
        reply.extend_from_slice(rest.get(..len).unwrap_or(&[]));
        if len == rest.len() {
            reply.push(0);
        }
        Ok(reply)
    }

    /// `WRITE path\0value`: sets the value, creating missing nodes.
    pub(super) fn do_write(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let nul = payload.iter().position(|&b| b == 0).ok_or(XenError::Einval)?;
        let (path, value) = (payload.get(..nul).unwrap_or(&[]), payload.get(nul + 1..).unwrap_or(&[]));
        let name = self.arg_name(ctx, Some(path))?;
        let node = match self.get_node(ctx, &name, XS_PERM_WRITE) {
            Ok(mut node) => {
                node.data = value.to_vec();
                self.write_node(ctx, &name, node.clone(), true)?;
                node
            }
            Err(XenError::Enoent) => self.create_node(ctx, &name, value.to_vec())?,
            Err(e) => return Err(e),
        };
        self.fire_watches(ctx, name.as_bytes(), Some(&node), false, None);
        Ok(ack())
    }

    /// `MKDIR path`: creates the node (and missing ancestors) if absent.
    pub(super) fn do_mkdir(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let name = self.arg_name(ctx, onearg(payload))?;
        match self.get_node(ctx, &name, XS_PERM_WRITE) {
            Ok(_) => {}
            Err(XenError::Enoent) => {
                let node = self.create_node(ctx, &name, Vec::new())?;
                self.fire_watches(ctx, name.as_bytes(), Some(&node), false, None);
            }
            Err(e) => return Err(e),
        }
        Ok(ack())
    }

    /// `RM path`: removes the subtree; a missing node is fine if its parent
    /// exists.
    pub(super) fn do_rm(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let name = self.arg_name(ctx, onearg(payload))?;
        match self.get_node(ctx, &name, XS_PERM_WRITE) {
            Ok(_) if name == "/" => Err(XenError::Einval),
            Ok(_) => {
                self.rm_node(ctx, &name)?;
                Ok(ack())
            }
            Err(XenError::Enoent) => match self.read_node(ctx, parent(&name))? {
                Some(_) => Ok(ack()),
                None => Err(XenError::Enoent),
            },
            Err(e) => Err(e),
        }
    }

    /// `GET_PERMS path`: the permission list as strings.
    pub(super) fn do_get_perms(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let name = self.arg_name(ctx, onearg(payload))?;
        Ok(self.get_node(ctx, &name, XS_PERM_READ)?.perms.to_strings())
    }

    /// `SET_PERMS path\0perm\0...`: replaces the permission list; needs
    /// ownership; unprivileged callers cannot give a node away.
    pub(super) fn do_set_perms(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let count = count_strings(payload);
        if count < 2 {
            return Err(XenError::Einval);
        }
        if ctx.unprivileged() && count - 1 > self.config.quotas.perms_per_node as usize {
            return Err(XenError::Enospc);
        }
        let args = strings(payload);
        let (path, perm_strings) = args.split_first().ok_or(XenError::Einval)?;
        let mut perms = Perms::parse(perm_strings)?;
        self.alloc_permrefs(ctx, &mut perms);
        if perms.owner_entry().perms & XS_PERM_IGNORE != 0 {
            return Err(XenError::Enoent);
        }
        if is_special(path) {
            return self.set_perms_special(ctx, path, perms);
        }
        let name = self.arg_name(ctx, Some(path))?;
        let mut node = self.get_node(ctx, &name, XS_PERM_WRITE | XS_PERM_OWNER)?;
        let (old_owner, new_owner) = (node.perms.owner(), perms.owner());
        if ctx.unprivileged() && old_owner != new_owner {
            return Err(XenError::Eperm);
        }
        self.entry_add(ctx, old_owner, -1)?;
        if let Err(e) = self.entry_add(ctx, new_owner, 1) {
            let _ = self.entry_add(ctx, old_owner, 1);
            return Err(e);
        }
        let old_perms = core::mem::replace(&mut node.perms, perms);
        if let Err(e) = self.write_node(ctx, &name, node.clone(), true) {
            let _ = self.entry_add(ctx, new_owner, -1);
            let _ = self.entry_add(ctx, old_owner, 1);
            return Err(e);
        }
        self.fire_watches(ctx, name.as_bytes(), Some(&node), false, Some(&old_perms));
        Ok(ack())
    }

    /// `domain_alloc_permrefs`: entries for domains that do not exist are
    /// ignored; existing ones get a record (and thus a generation).
    fn alloc_permrefs(&mut self, ctx: &Ctx, perms: &mut Perms) {
        let generation = self.generation;
        for p in perms.entries_mut() {
            if self.domains.find_or_alloc_existing(p.id, generation, &*ctx.platform).is_none() {
                p.perms |= XS_PERM_IGNORE;
            }
        }
    }

    /// `set_perms_special`: the permissions of `@introduceDomain` or
    /// `@releaseDomain`, which decide who hears those events.
    fn set_perms_special(&mut self, ctx: &Ctx, name: &[u8], perms: Perms) -> Result<Vec<u8>, XenError> {
        let i = SPECIAL_NAMES.iter().position(|s| s.as_bytes() == name).ok_or(XenError::Einval)?;
        let slot = self.special.get_mut(i).ok_or(XenError::Einval)?;
        let want = XS_PERM_WRITE | XS_PERM_OWNER;
        if perm_for(&ctx.who, slot) & want != want {
            return Err(XenError::Eacces);
        }
        *slot = perms;
        Ok(ack())
    }
}
