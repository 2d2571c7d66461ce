//! A XenStore client for guest-rt kernels, over the domain's own ring
//! (`start_info.store_mfn`) and event channel (`start_info.store_evtchn`).
//!
//! [`XenStore`] sends one request at a time and waits for its reply
//! ([`XenStore::request`] and the operations built on it: read, write,
//! directory, mkdir, rm, watch, transactions). Watch events that arrive
//! in between are kept in a small fixed queue for
//! [`XenStore::next_watch_event`]; replies to requests nobody waits for
//! any more (after a timeout) are recognised by `req_id` and dropped.
//! [`XenStore::send_if_room`] and [`XenStore::recv`] give message-level
//! access for tests that pipeline requests, and [`XenStore::ring`] the
//! raw page for tests that break the protocol on purpose.
//!
//! No allocation: the incoming message is assembled in a 4 KiB buffer
//! inside the client, watch events in [`EVENT_SLOTS`] slots of
//! [`EVENT_MAX`] bytes. Every wait has a deadline ([`DEFAULT_TIMEOUT_NS`]
//! per request unless changed). Errors the daemon reports keep Xen's
//! names ([`XsError::Store`]: `ENOENT`, `EACCES`, ...; names Xen does not
//! define, like oxenstored's `EQUOTA`, as [`XsError::UnknownStore`]).
//! Anything the daemon writes is checked before use; once the stream is
//! out of step (inconsistent indices, an oversized message, a request
//! left half-written) the client refuses further use with
//! [`XsError::Broken`].
//!
//! Semantics: X:`docs/misc/xenstore.txt`, `docs/misc/xenstore-ring.txt`,
//! `xen/include/public/io/xs_wire.h`; L:`drivers/xen/xenbus/xenbus_comms.c`,
//! `xenbus_xs.c`.

mod platform;
pub mod ring;
pub mod wire;

#[cfg(test)]
mod tests;

use core::fmt;

use guest_abi::io::xs_wire::{
    xsd_error_from_name, xsd_error_name, XsdSockmsg, XS_DIRECTORY, XS_ERROR, XS_MKDIR, XS_READ, XS_RM,
    XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
};
use guest_abi::xen::StartInfo;
use guest_abi::XenError;

pub use platform::{store_page, EventPort, StorePort};
pub use ring::Ring;
pub use wire::Names;

use wire::{Receiver, RxError, PAYLOAD_MAX};

/// How long a request waits for room and for its reply, unless changed
/// with [`XenStore::set_timeout_ns`].
pub const DEFAULT_TIMEOUT_NS: u64 = 5_000_000_000;
/// Watch events kept while waiting for replies.
pub const EVENT_SLOTS: usize = 8;
/// Longest watch event payload (`path\0token\0`) kept.
pub const EVENT_MAX: usize = 512;

/// A transaction ID; [`TxId::NONE`] (`XBT_NULL`) is outside any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxId(pub u32);

impl TxId {
    /// `XBT_NULL`: no transaction.
    pub const NONE: TxId = TxId(0);
}

/// An `XS_ERROR` name Xen's `xsd_errors` does not define (kept up to 15
/// bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorName {
    bytes: [u8; 15],
    len: u8,
}

impl ErrorName {
    fn new(name: &[u8]) -> ErrorName {
        let mut bytes = [0; 15];
        let len = name.len().min(bytes.len());
        bytes[..len].copy_from_slice(&name[..len]);
        ErrorName { bytes, len: len as u8 }
    }

    /// The name as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What went wrong talking to XenStore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// The store refused the request (`XS_ERROR` with one of Xen's names).
    Store(XenError),
    /// An `XS_ERROR` whose name Xen does not define.
    UnknownStore(ErrorName),
    /// No room or no reply before the deadline.
    Timeout,
    /// The daemon's ring indices are inconsistent (`prod - cons` larger
    /// than the ring): the connection is [`Broken`](XsError::Broken) now.
    BadIndexes,
    /// A message longer than `XENSTORE_PAYLOAD_MAX` arrived (the
    /// connection is broken now), or a reply of the wrong type or shape.
    Protocol,
    /// The request's payload is longer than `XENSTORE_PAYLOAD_MAX`.
    TooLong,
    /// An earlier failure left the byte streams out of step.
    Broken,
    /// The domain has no XenStore ring (`store_mfn` or `store_evtchn` is
    /// 0, or the page is not the domain's).
    NoStore,
}

impl XsError {
    /// Whether this is the store's `err`.
    pub fn is(&self, err: XenError) -> bool {
        matches!(self, XsError::Store(e) if *e == err)
    }

    /// The error an `XS_ERROR` payload names (for callers of
    /// [`XenStore::recv`]).
    pub fn from_error_reply(payload: &[u8]) -> XsError {
        let name = wire::first_string(payload);
        match xsd_error_from_name(name) {
            Some(e) => XsError::Store(e),
            None => XsError::UnknownStore(ErrorName::new(name)),
        }
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Store(e) => match xsd_error_name(*e) {
                Some(name) => f.write_str(name),
                None => write!(f, "{e}"),
            },
            XsError::UnknownStore(name) => write!(f, "{}", Text(name.as_bytes())),
            XsError::Timeout => f.write_str("timed out"),
            XsError::BadIndexes => f.write_str("inconsistent ring indexes"),
            XsError::Protocol => f.write_str("protocol violation"),
            XsError::TooLong => f.write_str("request too long"),
            XsError::Broken => f.write_str("connection broken"),
            XsError::NoStore => f.write_str("no XenStore ring"),
        }
    }
}

/// Bytes from the store shown as text: printable ASCII as is, anything
/// else as `\xNN`.
pub struct Text<'a>(pub &'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b == b' ' || b.is_ascii_graphic() {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// A watch event: the path that changed and the watch's token.
#[derive(Clone)]
pub struct WatchEvent {
    buf: [u8; EVENT_MAX],
    len: usize,
}

impl WatchEvent {
    fn new(payload: &[u8]) -> Option<WatchEvent> {
        let mut buf = [0; EVENT_MAX];
        buf.get_mut(..payload.len())?.copy_from_slice(payload);
        Some(WatchEvent { buf, len: payload.len() })
    }

    /// The path that changed (relative if the watch was set relative).
    pub fn path(&self) -> &[u8] {
        wire::watch_fields(&self.buf[..self.len]).0
    }

    /// The token given to [`XenStore::watch`].
    pub fn token(&self) -> &[u8] {
        wire::watch_fields(&self.buf[..self.len]).1
    }
}

/// Watch events waiting to be taken, oldest first.
struct EventQueue {
    slots: [Option<WatchEvent>; EVENT_SLOTS],
    head: usize,
    count: usize,
    lost: u32,
}

impl EventQueue {
    const fn new() -> EventQueue {
        EventQueue { slots: [const { None }; EVENT_SLOTS], head: 0, count: 0, lost: 0 }
    }

    fn push(&mut self, payload: &[u8]) {
        match WatchEvent::new(payload) {
            Some(ev) if self.count < EVENT_SLOTS => {
                self.slots[(self.head + self.count) % EVENT_SLOTS] = Some(ev);
                self.count += 1;
            }
            _ => self.lost = self.lost.saturating_add(1),
        }
    }

    fn pop(&mut self) -> Option<WatchEvent> {
        if self.count == 0 {
            return None;
        }
        let ev = self.slots[self.head].take();
        self.head = (self.head + 1) % EVENT_SLOTS;
        self.count -= 1;
        ev
    }
}

/// A XenStore connection (see the module doc).
pub struct XenStore<P: EventPort> {
    ring: Ring,
    port: P,
    rx: Receiver,
    events: EventQueue,
    next_req_id: u32,
    stale: u32,
    broken: bool,
    timeout_ns: u64,
}

impl XenStore<StorePort> {
    /// Connects to the domain's own ring. Needs [`crate::events::init`].
    pub fn open(si: &StartInfo) -> Result<Self, XsError> {
        if si.store_mfn == 0 || si.store_evtchn == 0 {
            return Err(XsError::NoStore);
        }
        let page = store_page(si).ok_or(XsError::NoStore)?;
        // SAFETY: `store_page` found the ring page among the domain's own
        // frames and mapped it writable at `page`; this program touches it
        // only through `Ring`.
        let ring = unsafe { Ring::new(page) };
        Ok(XenStore::new(ring, StorePort::new(si.store_evtchn)))
    }
}

impl<P: EventPort> XenStore<P> {
    /// A client on `ring`, signalling through `port`.
    pub fn new(ring: Ring, port: P) -> Self {
        XenStore {
            ring,
            port,
            rx: Receiver::new(),
            events: EventQueue::new(),
            next_req_id: 1,
            stale: 0,
            broken: false,
            timeout_ns: DEFAULT_TIMEOUT_NS,
        }
    }

    /// The ring page.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The event port.
    pub fn port(&mut self) -> &mut P {
        &mut self.port
    }

    /// Sets how long each request may take.
    pub fn set_timeout_ns(&mut self, timeout_ns: u64) {
        self.timeout_ns = timeout_ns;
    }

    /// Watch events dropped because the queue was full or they were
    /// longer than [`EVENT_MAX`].
    pub fn lost_events(&self) -> u32 {
        self.events.lost
    }

    /// Replies dropped because no request waited for them.
    pub fn stale_replies(&self) -> u32 {
        self.stale
    }

    /// Whether the connection is out of step and refuses further use.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn usable(&self) -> Result<(), XsError> {
        if self.broken {
            Err(XsError::Broken)
        } else {
            Ok(())
        }
    }

    fn fail(&mut self, e: XsError) -> XsError {
        self.broken = true;
        e
    }

    fn deadline(&mut self) -> u64 {
        self.port.now_ns().saturating_add(self.timeout_ns)
    }

    fn take_req_id(&mut self) -> u32 {
        let id = self.next_req_id;
        self.next_req_id = id.wrapping_add(1).max(1);
        id
    }

    /// Reads what the ring holds; returns a complete message's header.
    /// Notifies the daemon when space was freed.
    fn pump(&mut self) -> Result<Option<XsdSockmsg>, XsError> {
        let ring = &self.ring;
        match self.rx.feed(|buf| ring.read(buf)) {
            Ok((progress, msg)) => {
                if progress {
                    self.port.notify();
                }
                Ok(msg)
            }
            Err(RxError::BadIndexes) => Err(self.fail(XsError::BadIndexes)),
            Err(RxError::TooLong) => Err(self.fail(XsError::Protocol)),
        }
    }

    /// Keeps a complete message nobody asked for: a watch event is
    /// queued, anything else dropped as stale.
    fn set_aside(&mut self, hdr: &XsdSockmsg) {
        if hdr.type_ == XS_WATCH_EVENT {
            self.events.push(self.rx.payload());
        } else {
            self.stale = self.stale.saturating_add(1);
        }
    }

    /// Sends a message of `msg_type` whose payload is `parts` joined,
    /// waiting (until the request timeout) for room. Messages that arrive
    /// meanwhile are set aside: watch events queued, replies dropped. On
    /// success returns the `req_id` the reply will carry.
    pub fn send(&mut self, msg_type: u32, tx: TxId, parts: &[&[u8]]) -> Result<u32, XsError> {
        let deadline = self.deadline();
        self.send_until(msg_type, tx, parts, deadline)
    }

    fn send_until(&mut self, msg_type: u32, tx: TxId, parts: &[&[u8]], deadline: u64) -> Result<u32, XsError> {
        self.usable()?;
        let len = payload_len(parts)?;
        let req_id = self.take_req_id();
        let header = wire::header(msg_type, req_id, tx.0, len);
        let mut started = false;
        for chunk in core::iter::once(&header[..]).chain(parts.iter().copied()) {
            let mut off = 0;
            while off < chunk.len() {
                let n = match self.ring.write(&chunk[off..]) {
                    Ok(n) => n,
                    Err(_) => return Err(self.fail(XsError::BadIndexes)),
                };
                if n > 0 {
                    (off, started) = (off + n, true);
                    self.port.notify();
                    continue;
                }
                if let Some(hdr) = self.pump()? {
                    self.set_aside(&hdr);
                    continue;
                }
                if self.port.now_ns() >= deadline {
                    // Half a request in the ring: the daemon will read the
                    // next one as its rest.
                    return Err(if started { self.fail(XsError::Timeout) } else { XsError::Timeout });
                }
                self.port.wait(deadline);
            }
        }
        Ok(req_id)
    }

    /// Sends like [`send`](Self::send) if the whole message fits in the
    /// ring now; `Ok(None)` if it does not (nothing is written then).
    pub fn send_if_room(&mut self, msg_type: u32, tx: TxId, parts: &[&[u8]]) -> Result<Option<u32>, XsError> {
        self.usable()?;
        let len = payload_len(parts)?;
        let space = match self.ring.req_space() {
            Ok(space) => space as usize,
            Err(_) => return Err(self.fail(XsError::BadIndexes)),
        };
        if space < wire::HEADER_LEN + len as usize {
            return Ok(None);
        }
        self.send_until(msg_type, tx, parts, 0).map(Some)
    }

    /// Writes `bytes` into the request ring as they are, as far as they
    /// fit now, and notifies; returns how many went in. For tests that
    /// break the protocol on purpose.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        let n = self.ring.write(bytes).map_err(|_| XsError::BadIndexes)?;
        self.port.notify();
        Ok(n)
    }

    /// Receives the next message, reply or watch event, waiting until
    /// system time `deadline_ns`; returns its header. Its payload is
    /// [`last_payload`](Self::last_payload) until the next receive.
    pub fn recv(&mut self, deadline_ns: u64) -> Result<XsdSockmsg, XsError> {
        self.usable()?;
        loop {
            if let Some(hdr) = self.pump()? {
                return Ok(hdr);
            }
            if self.port.now_ns() >= deadline_ns {
                return Err(XsError::Timeout);
            }
            self.port.wait(deadline_ns);
        }
    }

    /// The payload of the message [`recv`](Self::recv) returned last.
    pub fn last_payload(&self) -> &[u8] {
        self.rx.payload()
    }

    /// Sends a request and waits for its reply; returns the reply's
    /// payload, or the store's error.
    pub fn request(&mut self, msg_type: u32, tx: TxId, parts: &[&[u8]]) -> Result<&[u8], XsError> {
        let deadline = self.deadline();
        let req_id = self.send_until(msg_type, tx, parts, deadline)?;
        loop {
            let hdr = self.recv(deadline)?;
            if hdr.type_ == XS_WATCH_EVENT || hdr.req_id != req_id {
                self.set_aside(&hdr);
                continue;
            }
            if hdr.type_ == XS_ERROR {
                return Err(XsError::from_error_reply(self.rx.payload()));
            }
            if hdr.type_ != msg_type {
                return Err(XsError::Protocol);
            }
            return Ok(self.rx.payload());
        }
    }

    /// `XS_READ`: the value of `path`.
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<&[u8], XsError> {
        self.request(XS_READ, tx, &[path.as_bytes(), b"\0"])
    }

    /// `XS_WRITE`: sets `path` to `value`, creating missing parents.
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.request(XS_WRITE, tx, &[path.as_bytes(), b"\0", value]).map(drop)
    }

    /// `XS_MKDIR`: creates `path` (and parents) with an empty value.
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        self.request(XS_MKDIR, tx, &[path.as_bytes(), b"\0"]).map(drop)
    }

    /// `XS_RM`: removes `path` and everything below it.
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        self.request(XS_RM, tx, &[path.as_bytes(), b"\0"]).map(drop)
    }

    /// `XS_DIRECTORY`: the names of `path`'s children.
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<Names<'_>, XsError> {
        self.request(XS_DIRECTORY, tx, &[path.as_bytes(), b"\0"]).map(Names::new)
    }

    /// `XS_WATCH`: reports changes at or below `path` with `token`. The
    /// daemon fires the watch once right away.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XS_WATCH, TxId::NONE, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]).map(drop)
    }

    /// `XS_UNWATCH`: removes the watch set with `path` and `token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XS_UNWATCH, TxId::NONE, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]).map(drop)
    }

    /// `XS_TRANSACTION_START`: a new transaction.
    pub fn transaction_start(&mut self) -> Result<TxId, XsError> {
        let reply = self.request(XS_TRANSACTION_START, TxId::NONE, &[b"\0"])?;
        match wire::parse_u32(reply) {
            Some(id) if id != 0 => Ok(TxId(id)),
            _ => Err(XsError::Protocol),
        }
    }

    /// `XS_TRANSACTION_END` with `T`: commits `tx` (`EAGAIN` if it
    /// conflicted with another change; then it is gone and may be retried).
    pub fn transaction_commit(&mut self, tx: TxId) -> Result<(), XsError> {
        self.request(XS_TRANSACTION_END, tx, &[b"T\0"]).map(drop)
    }

    /// `XS_TRANSACTION_END` with `F`: abandons `tx`.
    pub fn transaction_abort(&mut self, tx: TxId) -> Result<(), XsError> {
        self.request(XS_TRANSACTION_END, tx, &[b"F\0"]).map(drop)
    }

    /// The next watch event: a queued one, or the next to arrive before
    /// system time `deadline_ns`. Replies arriving meanwhile are dropped.
    pub fn next_watch_event(&mut self, deadline_ns: u64) -> Result<WatchEvent, XsError> {
        loop {
            if let Some(ev) = self.events.pop() {
                return Ok(ev);
            }
            let hdr = self.recv(deadline_ns)?;
            self.set_aside(&hdr);
        }
    }
}

/// The payload length of `parts`, if a message may carry it.
fn payload_len(parts: &[&[u8]]) -> Result<u32, XsError> {
    let len = parts.iter().map(|p| p.len()).fold(0usize, usize::saturating_add);
    if len > PAYLOAD_MAX {
        return Err(XsError::TooLong);
    }
    Ok(len as u32)
}
