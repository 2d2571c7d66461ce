//! One request, start to finish: type lookup, privilege and transaction
//! checks, the handler, the reply, then the watch events.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `wire_funcs`,
//! `process_message` (Xen 4.17): unknown types are `ENOSYS`; privileged
//! types asked by an unprivileged domain are `EACCES`; a `tx_id` naming no
//! open transaction of the connection is `ENOENT` (`WATCH` and `UNWATCH`
//! ignore `tx_id`). Replies echo `req_id` and `tx_id`.

use guest_abi::io::xs_wire::{XsdSockmsg, XsdSockmsgType as T, XS_ERROR};
use guest_abi::XenError;

use super::{error_payload, Ctx, XenStore};
use crate::connection::ConnId;
use crate::domain::Platform;

/// A handler: the reply payload, or the error to report.
type Handler = fn(&mut XenStore, &mut Ctx, &[u8]) -> Result<Vec<u8>, XenError>;

/// `wire_funcs`: handler, privileged-only, ignores `tx_id`.
fn handler(t: T) -> Option<(Handler, bool, bool)> {
    Some(match t {
        T::Control => (XenStore::do_control, true, false),
        T::Directory => (XenStore::do_directory, false, false),
        T::Read => (XenStore::do_read, false, false),
        T::GetPerms => (XenStore::do_get_perms, false, false),
        T::Watch => (XenStore::do_watch, false, true),
        T::Unwatch => (XenStore::do_unwatch, false, true),
        T::TransactionStart => (XenStore::do_transaction_start, false, false),
        T::TransactionEnd => (XenStore::do_transaction_end, false, false),
        T::Introduce => (XenStore::do_introduce, true, false),
        T::Release => (XenStore::do_release, true, false),
        T::GetDomainPath => (XenStore::do_get_domain_path, false, false),
        T::Write => (XenStore::do_write, false, false),
        T::Mkdir => (XenStore::do_mkdir, false, false),
        T::Rm => (XenStore::do_rm, false, false),
        T::SetPerms => (XenStore::do_set_perms, false, false),
        T::IsDomainIntroduced => (XenStore::do_is_domain_introduced, true, false),
        T::Resume => (XenStore::do_resume, true, false),
        T::SetTarget => (XenStore::do_set_target, true, false),
        T::ResetWatches => (XenStore::do_reset_watches, false, false),
        T::DirectoryPart => (XenStore::do_directory_part, false, false),
        T::WatchEvent | T::Error => return None,
    })
}

impl XenStore {
    /// `process_message`.
    pub(super) fn process(&mut self, conn: ConnId, hdr: XsdSockmsg, payload: &[u8], platform: &mut dyn Platform) {
        let Some(c) = self.conns.get(&conn) else { return };
        let who = self.identity(c);
        let implicit = Self::implicit_path(c);
        let found = T::try_from(hdr.type_).ok().and_then(handler);
        let Some((func, privileged_only, no_tx)) = found else {
            platform.log(&format!("{conn}: client unknown operation {}", hdr.type_));
            return self.queue_reply(conn, XS_ERROR, hdr.req_id, hdr.tx_id, &error_payload(XenError::Enosys));
        };
        if privileged_only && !who.privileged {
            return self.queue_reply(conn, XS_ERROR, hdr.req_id, hdr.tx_id, &error_payload(XenError::Eacces));
        }
        let tx = if no_tx || hdr.tx_id == 0 {
            None
        } else {
            match self.conns.get_mut(&conn).and_then(|c| c.transactions.remove(&hdr.tx_id)) {
                Some(tx) => Some(tx),
                None => {
                    return self.queue_reply(conn, XS_ERROR, hdr.req_id, hdr.tx_id, &error_payload(XenError::Enoent))
                }
            }
        };
        let mut ctx = Ctx { conn, who, implicit, tx, events: Vec::new(), platform };
        let result = func(self, &mut ctx, payload);
        if let Some(tx) = ctx.tx.take() {
            match self.conns.get_mut(&conn) {
                Some(c) => {
                    c.transactions.insert(tx.id, tx);
                }
                None => {
                    let _ = self.domains.memory_add(who.id, -(tx.memory() as i64), None);
                }
            }
        }
        match result {
            Ok(reply) => self.queue_reply(conn, hdr.type_, hdr.req_id, hdr.tx_id, &reply),
            Err(e) => self.queue_reply(conn, XS_ERROR, hdr.req_id, hdr.tx_id, &error_payload(e)),
        }
        self.deliver(ctx.events);
    }
}

/// The reply of requests that only succeed (`send_ack`).
pub(super) fn ack() -> Vec<u8> {
    b"OK\0".to_vec()
}
