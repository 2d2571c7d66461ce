//! Serving one domain's ring: requests from the page into the store,
//! replies and events from the store onto the page.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `handle_input`,
//! `handle_output` with X:`xenstored_domain.c` `readchn`/`writechn`
//! (Xen 4.17). Reads take only what the store's throttle allows; a full
//! response ring leaves the rest queued for the next call. Bad indices or
//! an oversized message make the connection ignored and set the page's
//! `error` field; they never panic.

use guest_abi::io::xs_wire::{XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_RING_SIZE};

use crate::connection::ConnId;
use crate::domain::Platform;
use crate::ring::{self, RingError, RingMemory};
use crate::store::XenStore;

/// At most this many request bytes are taken per call, so that one busy
/// domain cannot starve the others.
const READ_BUDGET: usize = 2 * XENSTORE_RING_SIZE as usize;

/// What a call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingService {
    /// Indices moved: the peer must be notified.
    pub notify: bool,
    /// The peer broke the protocol; the connection is now ignored.
    pub broken: bool,
}

/// Reads requests (as far as the throttle allows) and writes queued
/// output for `conn`, whose ring page is `mem`.
pub fn service_ring<M: RingMemory + ?Sized>(
    store: &mut XenStore,
    conn: ConnId,
    mem: &M,
    platform: &mut dyn Platform,
) -> RingService {
    let mut done = RingService::default();
    if store.is_ignored(conn) {
        return done;
    }
    let mut buf = [0u8; XENSTORE_RING_SIZE as usize];
    let mut taken = 0;
    while taken < READ_BUDGET {
        let want = store.input_budget(conn).min(buf.len());
        if want == 0 {
            break;
        }
        let Some(chunk) = buf.get_mut(..want) else { break };
        let n = match ring::read(mem, chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return fail(store, conn, mem, e, done),
        };
        done.notify = true;
        taken += n;
        if store.feed(conn, chunk.get(..n).unwrap_or(&[]), platform).is_err() {
            ring::set_error(mem, XENSTORE_ERROR_PROTO);
            done.broken = true;
            return done;
        }
    }
    match write_output(store, conn, mem) {
        Ok(wrote) => done.notify |= wrote,
        Err(e) => return fail(store, conn, mem, e, done),
    }
    done
}

/// Writes as much of `conn`'s queued output as the ring takes.
fn write_output<M: RingMemory + ?Sized>(store: &mut XenStore, conn: ConnId, mem: &M) -> Result<bool, RingError> {
    let mut wrote = false;
    while let Some(out) = store.output(conn) {
        let n = ring::write(mem, out)?;
        if n == 0 {
            break;
        }
        wrote = true;
        store.output_written(conn, n);
    }
    Ok(wrote)
}

fn fail<M: RingMemory + ?Sized>(
    store: &mut XenStore,
    conn: ConnId,
    mem: &M,
    _err: RingError,
    mut done: RingService,
) -> RingService {
    store.ignore_connection(conn);
    ring::set_error(mem, XENSTORE_ERROR_RINGIDX);
    done.broken = true;
    done
}

/// Whether `conn` has work the ring lets it do now: requests it may read,
/// or output with room for it (the daemon then polls without sleeping).
pub fn ring_ready<M: RingMemory + ?Sized>(store: &XenStore, conn: ConnId, mem: &M) -> bool {
    if store.is_ignored(conn) {
        return false;
    }
    let can_read = store.input_budget(conn) > 0 && ring::has_requests(mem);
    let can_write = store.has_output(conn) && ring::has_room(mem);
    can_read || can_write
}
