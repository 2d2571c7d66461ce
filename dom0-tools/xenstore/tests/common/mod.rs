//! Test harness: a store, a fake platform with a table of domains, and
//! clients that send requests and collect replies and watch events.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use guest_abi::io::xs_wire::*;
use guest_abi::XenError;
use xenstore::wire::{decode_header, encode, HEADER_LEN};
use xenstore::{Config, ConnId, DomainState, Platform, RingMemory, XenStore};

/// The hypervisor as the tests want it.
#[derive(Default)]
pub struct FakePlatform {
    pub domains: BTreeMap<u16, DomainState>,
    pub mapped: Vec<(u16, u64, u32)>,
    pub rebound: Vec<(u16, u32)>,
    pub unmapped: Vec<u16>,
    pub resets: Vec<u16>,
    pub logs: Vec<String>,
    pub fail_map: Option<XenError>,
}

impl Platform for FakePlatform {
    fn domain_state(&self, domid: u16) -> DomainState {
        self.domains.get(&domid).copied().unwrap_or(DomainState::Absent)
    }
    fn map_domain(&mut self, domid: u16, mfn: u64, port: u32) -> Result<(), XenError> {
        if let Some(e) = self.fail_map {
            return Err(e);
        }
        self.mapped.push((domid, mfn, port));
        Ok(())
    }
    fn rebind_domain(&mut self, domid: u16, port: u32) {
        self.rebound.push((domid, port));
    }
    fn reset_ring(&mut self, domid: u16) {
        self.resets.push(domid);
    }
    fn unmap_domain(&mut self, domid: u16) {
        self.unmapped.push(domid);
    }
    fn log(&mut self, msg: &str) {
        self.logs.push(msg.to_owned());
    }
}

/// One message as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub type_: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

/// A reply: the payload, or the error's name.
pub type Reply = Result<Vec<u8>, String>;

/// The store and its clients.
pub struct Harness {
    pub store: XenStore,
    pub platform: FakePlatform,
    inbox: BTreeMap<ConnId, VecDeque<Msg>>,
    next_req: u32,
    /// A privileged socket client, for setting things up.
    pub tools: ConnId,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Harness {
        let mut platform = FakePlatform::default();
        platform.domains.insert(0, DomainState::Running);
        let mut store = XenStore::new(config);
        let tools = store.add_socket_connection();
        Harness { store, platform, inbox: BTreeMap::new(), next_req: 1, tools }
    }

    /// A new privileged socket client.
    pub fn socket(&mut self) -> ConnId {
        self.store.add_socket_connection()
    }

    /// Creates domain `domid`, introduces it as the toolstack does and
    /// returns its ring connection.
    pub fn domain(&mut self, domid: u16) -> ConnId {
        self.platform.domains.insert(domid, DomainState::Running);
        let payload = format!("{domid}\0{}\0{}\0", 0x1000 + u32::from(domid), 10 + u32::from(domid));
        let tools = self.tools;
        assert_eq!(self.request(tools, XS_INTRODUCE, 0, payload.as_bytes()), Ok(b"OK\0".to_vec()));
        self.store.domain_connection(domid).expect("introduced")
    }

    /// Sends raw bytes from `conn`, then collects every connection's output.
    pub fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), xenstore::ProtocolError> {
        let r = self.store.feed(conn, bytes, &mut self.platform);
        self.drain();
        r
    }

    /// Moves every queued message of every connection into the inboxes.
    pub fn drain(&mut self) {
        for conn in self.store.connections() {
            let mut bytes = Vec::new();
            while let Some(out) = self.store.output(conn) {
                let n = out.len();
                bytes.extend_from_slice(out);
                self.store.output_written(conn, n);
            }
            let inbox = self.inbox.entry(conn).or_default();
            let mut rest = &bytes[..];
            while rest.len() >= HEADER_LEN {
                let mut raw = [0u8; HEADER_LEN];
                raw.copy_from_slice(&rest[..HEADER_LEN]);
                let h = decode_header(&raw);
                let end = HEADER_LEN + h.len as usize;
                inbox.push_back(Msg {
                    type_: h.type_,
                    req_id: h.req_id,
                    tx_id: h.tx_id,
                    payload: rest[HEADER_LEN..end].to_vec(),
                });
                rest = &rest[end..];
            }
            assert!(rest.is_empty(), "output holds whole messages");
        }
    }

    /// Sends one request and returns the raw reply message.
    pub fn request_msg(&mut self, conn: ConnId, type_: u32, tx_id: u32, payload: &[u8]) -> Msg {
        let req_id = self.next_req;
        self.next_req += 1;
        self.send_raw(conn, &encode(type_, req_id, tx_id, payload)).expect("well-formed");
        let inbox = self.inbox.entry(conn).or_default();
        let at = inbox.iter().position(|m| m.type_ != XS_WATCH_EVENT).expect("a reply");
        let msg = inbox.remove(at).unwrap_or_else(|| unreachable!());
        assert_eq!(msg.req_id, req_id, "reply echoes req_id");
        assert_eq!(msg.tx_id, tx_id, "reply echoes tx_id");
        msg
    }

    /// Sends one request; the reply payload or the error name.
    pub fn request(&mut self, conn: ConnId, type_: u32, tx_id: u32, payload: &[u8]) -> Reply {
        let msg = self.request_msg(conn, type_, tx_id, payload);
        if msg.type_ == XS_ERROR {
            let name = msg.payload.strip_suffix(b"\0").expect("NUL-terminated error");
            Err(String::from_utf8(name.to_vec()).unwrap())
        } else {
            assert_eq!(msg.type_, type_, "reply has the request's type");
            Ok(msg.payload)
        }
    }

    /// The watch events `conn` received, as (path, token), oldest first.
    pub fn events(&mut self, conn: ConnId) -> Vec<(String, String)> {
        self.drain();
        let inbox = self.inbox.entry(conn).or_default();
        let mut out = Vec::new();
        inbox.retain(|m| {
            if m.type_ != XS_WATCH_EVENT {
                return true;
            }
            let parts: Vec<&[u8]> = m.payload.split(|&b| b == 0).collect();
            assert_eq!(parts.len(), 3, "path\\0token\\0");
            out.push((String::from_utf8_lossy(parts[0]).into(), String::from_utf8_lossy(parts[1]).into()));
            false
        });
        out
    }

    /// Every message waiting for `conn`, in order.
    pub fn inbox(&mut self, conn: ConnId) -> Vec<Msg> {
        self.drain();
        self.inbox.entry(conn).or_default().drain(..).collect()
    }

    // Shorthands (transaction 0 unless `_tx`).

    pub fn read(&mut self, c: ConnId, path: &str) -> Reply {
        self.request(c, XS_READ, 0, &z(path))
    }
    pub fn read_tx(&mut self, c: ConnId, tx: u32, path: &str) -> Reply {
        self.request(c, XS_READ, tx, &z(path))
    }
    pub fn write(&mut self, c: ConnId, path: &str, value: &str) -> Reply {
        self.write_tx(c, 0, path, value)
    }
    pub fn write_tx(&mut self, c: ConnId, tx: u32, path: &str, value: &str) -> Reply {
        let mut p = z(path);
        p.extend_from_slice(value.as_bytes());
        self.request(c, XS_WRITE, tx, &p)
    }
    pub fn mkdir(&mut self, c: ConnId, path: &str) -> Reply {
        self.request(c, XS_MKDIR, 0, &z(path))
    }
    pub fn rm(&mut self, c: ConnId, path: &str) -> Reply {
        self.request(c, XS_RM, 0, &z(path))
    }
    pub fn rm_tx(&mut self, c: ConnId, tx: u32, path: &str) -> Reply {
        self.request(c, XS_RM, tx, &z(path))
    }
    pub fn dir(&mut self, c: ConnId, path: &str) -> Result<Vec<String>, String> {
        self.request(c, XS_DIRECTORY, 0, &z(path)).map(|p| split(&p))
    }
    pub fn get_perms(&mut self, c: ConnId, path: &str) -> Result<Vec<String>, String> {
        self.request(c, XS_GET_PERMS, 0, &z(path)).map(|p| split(&p))
    }
    pub fn set_perms(&mut self, c: ConnId, path: &str, perms: &[&str]) -> Reply {
        let mut p = z(path);
        for perm in perms {
            p.extend(z(perm));
        }
        self.request(c, XS_SET_PERMS, 0, &p)
    }
    pub fn watch(&mut self, c: ConnId, path: &str, token: &str) -> Reply {
        let mut p = z(path);
        p.extend(z(token));
        self.request(c, XS_WATCH, 0, &p)
    }
    pub fn unwatch(&mut self, c: ConnId, path: &str, token: &str) -> Reply {
        let mut p = z(path);
        p.extend(z(token));
        self.request(c, XS_UNWATCH, 0, &p)
    }
    pub fn tx_start(&mut self, c: ConnId) -> u32 {
        let id = self.request(c, XS_TRANSACTION_START, 0, b"\0").expect("transaction starts");
        std::str::from_utf8(id.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap()
    }
    pub fn tx_end(&mut self, c: ConnId, tx: u32, commit: bool) -> Reply {
        self.request(c, XS_TRANSACTION_END, tx, if commit { b"T\0" } else { b"F\0" })
    }
}

/// A string with its NUL.
pub fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The NUL-terminated strings of a payload.
pub fn split(p: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = p.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into()).collect();
    v.pop();
    v
}

pub fn ok() -> Reply {
    Ok(b"OK\0".to_vec())
}

pub fn err(name: &str) -> Reply {
    Err(name.to_owned())
}

pub fn val(s: &str) -> Reply {
    Ok(s.as_bytes().to_vec())
}

/// A ring page in a plain buffer, with the guest's side of the protocol.
pub struct FakePage(pub RefCell<Vec<u8>>);

pub const REQ: usize = 0;
pub const RSP: usize = 1024;
pub const REQ_CONS: usize = 2048;
pub const REQ_PROD: usize = 2052;
pub const RSP_CONS: usize = 2056;
pub const RSP_PROD: usize = 2060;
pub const ERROR: usize = 2072;

impl FakePage {
    pub fn new() -> FakePage {
        FakePage(RefCell::new(vec![0; 4096]))
    }

    /// The guest writes request bytes, as much as fits; returns how many.
    pub fn guest_send(&self, data: &[u8]) -> usize {
        let cons = self.read_u32(REQ_CONS);
        let prod = self.read_u32(REQ_PROD);
        let n = (1024 - prod.wrapping_sub(cons) as usize).min(data.len());
        for (i, &b) in data.iter().take(n).enumerate() {
            self.0.borrow_mut()[REQ + (prod.wrapping_add(i as u32) & 1023) as usize] = b;
        }
        self.write_u32(REQ_PROD, prod.wrapping_add(n as u32));
        n
    }

    /// The guest takes every response byte waiting.
    pub fn guest_receive(&self) -> Vec<u8> {
        let cons = self.read_u32(RSP_CONS);
        let prod = self.read_u32(RSP_PROD);
        // A guest trusts no more than a ring's worth either.
        let out = (0..prod.wrapping_sub(cons).min(1024))
            .map(|i| self.0.borrow()[RSP + (cons.wrapping_add(i) & 1023) as usize])
            .collect();
        self.write_u32(RSP_CONS, prod);
        out
    }
}

impl RingMemory for FakePage {
    fn read_u32(&self, off: usize) -> u32 {
        let b = self.0.borrow();
        u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn write_u32(&self, off: usize, value: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&value.to_ne_bytes());
    }
    fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0.borrow()[off..off + buf.len()]);
    }
    fn write_bytes(&self, off: usize, data: &[u8]) {
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
}

/// Splits a byte stream of messages.
pub fn parse_stream(mut bytes: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    while bytes.len() >= HEADER_LEN {
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&bytes[..HEADER_LEN]);
        let h = decode_header(&raw);
        let end = HEADER_LEN + h.len as usize;
        out.push(Msg { type_: h.type_, req_id: h.req_id, tx_id: h.tx_id, payload: bytes[HEADER_LEN..end].to_vec() });
        bytes = &bytes[end..];
    }
    out
}
