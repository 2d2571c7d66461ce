//! Host tests: the index arithmetic, the framing, and the client against
//! a fake daemon that serves the same page the client writes (its own
//! ring code, so that the two check each other), well or badly.

extern crate std;

use std::boxed::Box;
use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use guest_abi::io::ring::RingPage;
use guest_abi::io::xs_wire::*;
use guest_abi::XenError;

use super::ring::{check_indexes, input_chunk, mask, output_chunk};
use super::wire::{self, Names, Receiver, RxError, HEADER_LEN};
use super::*;

const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
const MS: u64 = 1_000_000;

// ---- pure functions ----

#[test]
fn check_indexes_allows_at_most_a_ring() {
    assert!(check_indexes(0, 0));
    assert!(check_indexes(0, 1024));
    assert!(!check_indexes(0, 1025));
    assert!(check_indexes(u32::MAX - 10, 1013), "prod wrapped past 0");
    assert!(!check_indexes(u32::MAX - 10, 1014));
    assert!(!check_indexes(5, 4), "cons ahead of prod");
}

#[test]
fn output_chunk_stops_at_the_end_and_at_the_consumer() {
    assert_eq!(output_chunk(0, 0), (0, 1024));
    assert_eq!(output_chunk(0, 1000), (1000, 24));
    assert_eq!(output_chunk(1000, 1000), (1000, 24), "to the end first");
    assert_eq!(output_chunk(1000, 1024), (0, 1000), "then from the start up to the consumer");
    assert_eq!(output_chunk(0, 1024), (0, 0), "full");
    assert_eq!(output_chunk(u32::MAX - 3, u32::MAX - 3), (1020, 4));
    assert_eq!(output_chunk(u32::MAX - 3, 0), (0, 1020), "prod wrapped to 0");
    assert_eq!(output_chunk(0, 5000), (0, 0), "bad indexes give nothing");
}

#[test]
fn input_chunk_stops_at_the_end_and_at_the_producer() {
    assert_eq!(input_chunk(0, 0), (0, 0));
    assert_eq!(input_chunk(0, 10), (0, 10));
    assert_eq!(input_chunk(1020, 1030), (1020, 4));
    assert_eq!(input_chunk(1024, 1030), (0, 6));
    assert_eq!(input_chunk(u32::MAX - 1, 3), (1022, 2), "across the u32 wrap");
    assert_eq!(input_chunk(0, 2000), (0, 0), "bad indexes give nothing");
    assert_eq!(mask(u32::MAX), 1023);
}

fn message(msg_type: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = wire::header(msg_type, req_id, 0, payload.len() as u32).to_vec();
    m.extend_from_slice(payload);
    m
}

#[test]
fn receiver_assembles_a_message_from_any_fragments() {
    let msg = message(XS_READ, 7, b"value");
    for step in 1..=msg.len() {
        let mut rx = Receiver::new();
        let mut pos = 0;
        let mut got = None;
        while got.is_none() {
            let mut budget = step;
            let (progress, hdr) = rx
                .feed(|buf| {
                    let n = budget.min(buf.len()).min(msg.len() - pos);
                    buf[..n].copy_from_slice(&msg[pos..pos + n]);
                    (pos, budget) = (pos + n, budget - n);
                    Ok(n)
                })
                .unwrap();
            assert!(progress || hdr.is_some());
            got = hdr;
            if got.is_none() {
                assert!(rx.in_message());
                assert_eq!(rx.payload(), b"");
            }
        }
        let hdr = got.unwrap();
        assert_eq!((hdr.type_, hdr.req_id, hdr.len), (XS_READ, 7, 5));
        assert_eq!(rx.payload(), b"value", "step {step}");
    }
}

#[test]
fn receiver_refuses_an_oversized_message() {
    let mut rx = Receiver::new();
    let hdr = wire::header(XS_READ, 1, 0, XENSTORE_PAYLOAD_MAX + 1);
    let mut fed = false;
    let r = rx.feed(|buf| {
        if fed {
            return Ok(0);
        }
        fed = true;
        buf[..HEADER_LEN].copy_from_slice(&hdr);
        Ok(HEADER_LEN)
    });
    assert_eq!(r.err(), Some(RxError::TooLong));
    let mut rx = Receiver::new();
    let full = message(XS_READ, 1, &[b'x'; 4096]);
    let mut pos = 0;
    let (_, hdr) = rx
        .feed(|buf| {
            let n = buf.len().min(full.len() - pos);
            buf[..n].copy_from_slice(&full[pos..pos + n]);
            pos += n;
            Ok(n)
        })
        .unwrap();
    assert_eq!(hdr.map(|h| h.len), Some(4096), "exactly XENSTORE_PAYLOAD_MAX is fine");
}

#[test]
fn payload_parsers_take_what_is_there() {
    assert_eq!(wire::parse_u32(b"42\0"), Some(42));
    assert_eq!(wire::parse_u32(b"42"), Some(42));
    assert_eq!(wire::parse_u32(b"\0"), None);
    assert_eq!(wire::parse_u32(b"4x\0"), None);
    assert_eq!(wire::parse_u32(b"99999999999\0"), None);
    assert_eq!(wire::watch_fields(b"a/b\0tok\0"), (&b"a/b"[..], &b"tok"[..]));
    assert_eq!(wire::watch_fields(b"a/b"), (&b"a/b"[..], &b""[..]));
    assert_eq!(wire::watch_fields(b""), (&b""[..], &b""[..]));
    let names: Vec<&[u8]> = Names::new(b"a\0bc\0").collect();
    assert_eq!(names, [&b"a"[..], &b"bc"[..]]);
    let names: Vec<&[u8]> = Names::new(b"a\0tail").collect();
    assert_eq!(names, [&b"a"[..], &b"tail"[..]]);
    assert_eq!(Names::new(b"").count(), 0);
}

#[test]
fn errors_keep_xen_names() {
    assert_eq!(format!("{}", XsError::from_error_reply(b"ENOENT\0")), "ENOENT");
    assert!(XsError::from_error_reply(b"EACCES\0").is(XenError::Eacces));
    let e = XsError::from_error_reply(b"EQUOTA\0");
    assert!(matches!(e, XsError::UnknownStore(_)));
    assert_eq!(format!("{e}"), "EQUOTA");
    assert_eq!(format!("{}", XsError::from_error_reply(b"\x01very long error name indeed")), "\\x01very long erro");
    assert_eq!(format!("{}", Text(b"a b\n\xff")), "a b\\x0a\\xff");
}

// ---- a fake daemon on the same page ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers every request.
    Serve,
    /// Never reads the ring.
    Deaf,
    /// Reads requests but never answers.
    Mute,
}

struct Fake {
    page: *mut u8,
    now: u64,
    mode: Mode,
    domid: u32,
    store: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Most reply bytes published per wait (to split messages).
    chunk: usize,
    /// Watch events to put before the next reply.
    event_before_reply: bool,
    /// Commits to refuse with EAGAIN.
    refuse_commits: u32,
    /// Requests seen, and notifications received.
    requests: Vec<(u32, u32, Vec<u8>)>,
    notified: u32,
    next_tx: u32,
}

impl Fake {
    fn new(start: u32) -> Fake {
        let page = Box::into_raw(Box::new(RingPage::new())) as *mut u8;
        let f = Fake {
            page,
            now: 1_000 * MS,
            mode: Mode::Serve,
            domid: 3,
            store: BTreeMap::new(),
            watches: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
            chunk: usize::MAX,
            event_before_reply: false,
            refuse_commits: 0,
            requests: Vec::new(),
            notified: 0,
            next_tx: 10,
        };
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            f.set(off, start);
        }
        f
    }

    fn get(&self, off: usize) -> u32 {
        // SAFETY: the page is a leaked 4 KiB box; offsets are the fields'.
        unsafe { (self.page.add(off) as *const u32).read_volatile() }
    }

    fn set(&self, off: usize, v: u32) {
        // SAFETY: as in `get`.
        unsafe { (self.page.add(off) as *mut u32).write_volatile(v) }
    }

    fn byte(&self, off: usize) -> u8 {
        // SAFETY: off < 4096.
        unsafe { self.page.add(off).read_volatile() }
    }

    fn put(&self, off: usize, b: u8) {
        // SAFETY: off < 4096.
        unsafe { self.page.add(off).write_volatile(b) }
    }

    fn client(self) -> XenStore<Fake> {
        // SAFETY: the page outlives the test (leaked), and only the client
        // and this fake touch it, through raw pointers.
        let ring = unsafe { Ring::new(self.page) };
        XenStore::new(ring, self)
    }

    fn serve(&mut self) {
        if self.mode == Mode::Deaf {
            return;
        }
        let (mut cons, prod) = (self.get(REQ_CONS), self.get(REQ_PROD));
        assert!(prod.wrapping_sub(cons) <= 1024, "the client broke its own ring");
        while cons != prod {
            self.input.push(self.byte(REQ + (cons as usize & 1023)));
            cons = cons.wrapping_add(1);
        }
        self.set(REQ_CONS, cons);
        while self.input.len() >= HEADER_LEN {
            let word = |i: usize| u32::from_ne_bytes(self.input[i * 4..i * 4 + 4].try_into().unwrap());
            let (ty, req_id, tx, len) = (word(0), word(1), word(2), word(3) as usize);
            if self.input.len() < HEADER_LEN + len {
                break;
            }
            let payload: Vec<u8> = self.input[HEADER_LEN..HEADER_LEN + len].to_vec();
            self.input.drain(..HEADER_LEN + len);
            self.requests.push((ty, tx, payload.clone()));
            if self.mode == Mode::Serve {
                self.answer(ty, req_id, &payload);
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        let (cons, mut prod) = (self.get(RSP_CONS), self.get(RSP_PROD));
        let mut budget = self.chunk;
        while !self.output.is_empty() && prod.wrapping_sub(cons) < 1024 && budget > 0 {
            let b = self.output.remove(0);
            self.put(RSP + (prod as usize & 1023), b);
            prod = prod.wrapping_add(1);
            budget -= 1;
        }
        self.set(RSP_PROD, prod);
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/local/domain/{}/{path}", self.domid)
        }
    }

    fn send(&mut self, ty: u32, req_id: u32, payload: &[u8]) {
        self.output.extend_from_slice(&message(ty, req_id, payload));
    }

    fn fire(&mut self, changed: &str) {
        for (path, token) in self.watches.clone() {
            if changed.starts_with(&self.absolute(&path)) {
                let shown = if path.starts_with('/') {
                    changed.to_string()
                } else {
                    changed.trim_start_matches(&format!("/local/domain/{}/", self.domid)).to_string()
                };
                let ev = format!("{shown}\0{token}\0");
                self.send(XS_WATCH_EVENT, 0, ev.as_bytes());
            }
        }
    }

    fn answer(&mut self, ty: u32, req_id: u32, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload).to_string();
        let mut fields = text.split('\0');
        let path = self.absolute(fields.next().unwrap_or(""));
        if self.event_before_reply {
            self.send(XS_WATCH_EVENT, 0, b"interleaved\0tok\0");
        }
        let reply: Result<Vec<u8>, &str> = match ty {
            XS_READ => self.store.get(&path).cloned().ok_or("ENOENT"),
            XS_WRITE => {
                let at = payload.iter().position(|&b| b == 0).unwrap();
                if path.starts_with("/local/domain/0") {
                    Err("EACCES")
                } else if path.ends_with("/quota") {
                    Err("EQUOTA")
                } else {
                    self.store.insert(path.clone(), payload[at + 1..].to_vec());
                    self.fire(&path);
                    Ok(b"OK\0".to_vec())
                }
            }
            XS_MKDIR => {
                self.store.entry(path.clone()).or_default();
                Ok(b"OK\0".to_vec())
            }
            XS_RM => {
                let below = format!("{path}/");
                self.store.retain(|k, _| *k != path && !k.starts_with(&below));
                Ok(b"OK\0".to_vec())
            }
            XS_DIRECTORY => {
                let below = format!("{path}/");
                let mut out = Vec::new();
                for k in self.store.keys().filter_map(|k| k.strip_prefix(&below)) {
                    let child = k.split('/').next().unwrap();
                    let entry = format!("{child}\0");
                    if !out.windows(entry.len()).any(|w| w == entry.as_bytes()) {
                        out.extend_from_slice(entry.as_bytes());
                    }
                }
                Ok(out)
            }
            XS_WATCH => {
                let token = fields.next().unwrap_or("").to_string();
                let raw = text.split('\0').next().unwrap_or("").to_string();
                self.watches.push((raw.clone(), token.clone()));
                self.send(XS_WATCH, req_id, b"OK\0");
                // Fires once right away, after the reply (as xenstored does).
                self.send(XS_WATCH_EVENT, 0, format!("{raw}\0{token}\0").as_bytes());
                return;
            }
            XS_UNWATCH => Ok(b"OK\0".to_vec()),
            XS_TRANSACTION_START => {
                self.next_tx += 1;
                Ok(format!("{}\0", self.next_tx).into_bytes())
            }
            XS_TRANSACTION_END if self.refuse_commits > 0 && payload == b"T\0" => {
                self.refuse_commits -= 1;
                Err("EAGAIN")
            }
            XS_TRANSACTION_END => Ok(b"OK\0".to_vec()),
            _ => Err("EINVAL"),
        };
        match reply {
            Ok(p) => self.send(ty, req_id, &p),
            Err(name) => self.send(XS_ERROR, req_id, format!("{name}\0").as_bytes()),
        }
    }
}

impl EventPort for Fake {
    fn notify(&mut self) {
        self.notified += 1;
    }

    fn wait(&mut self, deadline_ns: u64) {
        self.now = (self.now + MS).min(deadline_ns.max(self.now + 1));
        self.serve();
    }

    fn now_ns(&mut self) -> u64 {
        self.now
    }
}

// ---- the client against it ----

#[test]
fn read_write_directory_mkdir_rm() {
    let mut xs = Fake::new(0).client();
    xs.write(TxId::NONE, "data/test", b"hello").unwrap();
    assert_eq!(xs.read(TxId::NONE, "data/test").unwrap(), b"hello");
    assert_eq!(xs.read(TxId::NONE, "/local/domain/3/data/test").unwrap(), b"hello");
    assert_eq!(xs.read(TxId::NONE, "data/none"), Err(XsError::Store(XenError::Enoent)));
    assert_eq!(xs.write(TxId::NONE, "/local/domain/0/name", b"x"), Err(XsError::Store(XenError::Eacces)));
    xs.mkdir(TxId::NONE, "data/dir").unwrap();
    xs.write(TxId::NONE, "data/dir/x", b"1").unwrap();
    xs.write(TxId::NONE, "data/dir/y/z", b"2").unwrap();
    let names: Vec<Vec<u8>> = xs.directory(TxId::NONE, "data/dir").unwrap().map(|n| n.to_vec()).collect();
    assert_eq!(names, [b"x".to_vec(), b"y".to_vec()]);
    xs.rm(TxId::NONE, "data/dir").unwrap();
    assert!(xs.read(TxId::NONE, "data/dir/x").unwrap_err().is(XenError::Enoent));
    let e = xs.write(TxId::NONE, "data/quota", b"1").unwrap_err();
    assert_eq!(format!("{e}"), "EQUOTA");
    assert!(!xs.is_broken());
    assert!(xs.port().notified > 0, "every request and every read is signalled");
}

#[test]
fn requests_carry_the_payload_xenstored_expects() {
    let mut xs = Fake::new(0).client();
    xs.write(TxId(9), "a", b"v").unwrap();
    xs.watch("w", "t").unwrap();
    let tx = xs.transaction_start().unwrap();
    xs.transaction_abort(tx).unwrap();
    let reqs = &xs.port().requests;
    assert_eq!(reqs[0], (XS_WRITE, 9, b"a\0v".to_vec()), "no NUL after the value");
    assert_eq!(reqs[1], (XS_WATCH, 0, b"w\0t\0".to_vec()));
    assert_eq!(reqs[2], (XS_TRANSACTION_START, 0, b"\0".to_vec()));
    assert_eq!(reqs[3], (XS_TRANSACTION_END, tx.0, b"F\0".to_vec()));
}

#[test]
fn indices_wrap_around_u32_and_large_values_cross_the_ring() {
    for start in [0, 1000, u32::MAX - 5, u32::MAX - 2000] {
        let mut fake = Fake::new(start);
        fake.chunk = 333;
        let mut xs = fake.client();
        for round in 0..5u8 {
            let value: Vec<u8> = (0..4000).map(|i| (i as u8).wrapping_mul(31) ^ round).collect();
            xs.write(TxId::NONE, "data/big", &value).unwrap();
            assert_eq!(xs.read(TxId::NONE, "data/big").unwrap(), &value[..], "start {start:#x} round {round}");
        }
        assert_eq!(xs.ring().req_prod(), xs.ring().req_cons());
        assert_eq!(xs.ring().rsp_prod(), xs.ring().rsp_cons());
        if start > u32::MAX - 10_000 {
            assert!(xs.ring().req_prod() < start, "the indices wrapped");
        }
    }
}

#[test]
fn a_request_too_long_is_refused_before_anything_is_sent() {
    let mut xs = Fake::new(0).client();
    let value = [b'v'; 4096];
    assert_eq!(xs.write(TxId::NONE, "p", &value), Err(XsError::TooLong));
    assert!(!xs.is_broken());
    assert_eq!(xs.ring().req_prod(), 0);
    xs.write(TxId::NONE, "p", &value[..4094]).unwrap();
}

#[test]
fn watch_events_interleaved_with_replies_are_kept() {
    let mut xs = Fake::new(0).client();
    xs.watch("data/watched", "tok").unwrap();
    let ev = xs.next_watch_event(u64::MAX).unwrap();
    assert_eq!((ev.path(), ev.token()), (&b"data/watched"[..], &b"tok"[..]), "fired at registration");
    xs.port().event_before_reply = true;
    assert!(xs.read(TxId::NONE, "data/none").is_err());
    xs.write(TxId::NONE, "data/watched/sub", b"1").unwrap();
    xs.port().event_before_reply = false;
    let deadline = xs.port().now + 100 * MS;
    let paths: Vec<Vec<u8>> = (0..3).map(|_| xs.next_watch_event(deadline).unwrap().path().to_vec()).collect();
    assert_eq!(paths, [b"interleaved".to_vec(), b"interleaved".to_vec(), b"data/watched/sub".to_vec()]);
    let deadline = xs.port().now + 100 * MS;
    assert_eq!(xs.next_watch_event(deadline).err(), Some(XsError::Timeout));
    assert_eq!(xs.lost_events(), 0);
}

#[test]
fn the_event_queue_is_bounded() {
    let mut xs = Fake::new(0).client();
    xs.port().event_before_reply = true;
    for _ in 0..EVENT_SLOTS + 3 {
        assert!(xs.read(TxId::NONE, "x").is_err());
    }
    assert_eq!(xs.lost_events(), 3);
    let deadline = xs.port().now + 10 * MS;
    xs.port().event_before_reply = false;
    for _ in 0..EVENT_SLOTS {
        assert_eq!(xs.next_watch_event(deadline).unwrap().token(), b"tok");
    }
}

#[test]
fn a_silent_daemon_times_out_and_late_replies_are_dropped() {
    let mut fake = Fake::new(0);
    fake.mode = Mode::Mute;
    let mut xs = fake.client();
    xs.set_timeout_ns(50 * MS);
    assert_eq!(xs.read(TxId::NONE, "data/x"), Err(XsError::Timeout));
    assert!(!xs.is_broken(), "the request went out whole");
    // The daemon wakes up and answers both the old and the new request.
    let old = xs.port().requests.remove(0);
    xs.port().mode = Mode::Serve;
    xs.port().store.insert("/local/domain/3/data/x".into(), b"late".to_vec());
    xs.port().answer(old.0, 1, &old.2);
    xs.port().store.insert("/local/domain/3/data/x".into(), b"now".to_vec());
    assert_eq!(xs.read(TxId::NONE, "data/x").unwrap(), b"now");
    assert_eq!(xs.stale_replies(), 1);
}

#[test]
fn a_reply_cut_by_a_timeout_is_finished_later() {
    let mut fake = Fake::new(0);
    fake.mode = Mode::Mute;
    let mut xs = fake.client();
    let id = xs.send(XS_READ, TxId::NONE, &[b"p\0"]).unwrap();
    xs.port().send(XS_READ, id, b"0123456789");
    xs.port().chunk = 20;
    xs.port().flush();
    let deadline = xs.port().now;
    assert_eq!(xs.recv(deadline).err(), Some(XsError::Timeout));
    xs.port().chunk = usize::MAX;
    let hdr = xs.recv(u64::MAX).unwrap();
    assert_eq!((hdr.req_id, xs.last_payload()), (id, &b"0123456789"[..]));
}

#[test]
fn send_if_room_never_leaves_half_a_message() {
    let mut fake = Fake::new(u32::MAX - 100);
    fake.mode = Mode::Deaf;
    let mut xs = fake.client();
    let mut sent = 0;
    while xs.send_if_room(XS_WRITE, TxId::NONE, &[b"data/flood\0", b"12345"]).unwrap().is_some() {
        sent += 1;
    }
    let msg = (HEADER_LEN + 16) as u32;
    assert_eq!(sent, 1024 / msg);
    assert_eq!(xs.ring().req_prod().wrapping_sub(xs.ring().req_cons()), sent * msg);
    assert!(!xs.is_broken());
    // Once the daemon reads, the replies all come back.
    xs.port().mode = Mode::Serve;
    xs.port().serve();
    let mut replies = 0;
    loop {
        let deadline = xs.port().now + 10 * MS;
        let Ok(hdr) = xs.recv(deadline) else { break };
        assert_eq!(hdr.type_, XS_WRITE);
        replies += 1;
    }
    assert_eq!(replies, sent);
}

#[test]
fn a_request_left_half_written_breaks_the_connection() {
    let mut fake = Fake::new(0);
    fake.mode = Mode::Deaf;
    let mut xs = fake.client();
    xs.set_timeout_ns(20 * MS);
    assert_eq!(xs.write(TxId::NONE, "p", &[0; 2000]), Err(XsError::Timeout));
    assert!(xs.is_broken());
    assert_eq!(xs.read(TxId::NONE, "p"), Err(XsError::Broken));
}

#[test]
fn a_daemon_with_bad_indexes_breaks_the_connection() {
    let mut xs = Fake::new(0).client();
    xs.port().set(RSP_PROD, 2000);
    assert_eq!(xs.read(TxId::NONE, "x"), Err(XsError::BadIndexes));
    assert!(xs.is_broken());
    assert_eq!(xs.read(TxId::NONE, "x"), Err(XsError::Broken));
    let mut xs = Fake::new(0).client();
    xs.port().set(REQ_CONS, 3000);
    assert_eq!(xs.write(TxId::NONE, "x", b""), Err(XsError::BadIndexes));
    assert_eq!(xs.ring().req_prod(), 0, "nothing written");
}

#[test]
fn an_oversized_reply_breaks_the_connection() {
    let mut fake = Fake::new(0);
    fake.mode = Mode::Mute;
    let mut xs = fake.client();
    let id = xs.send(XS_READ, TxId::NONE, &[b"p\0"]).unwrap();
    let hdr = wire::header(XS_READ, id, 0, 0xffff_ffff);
    xs.port().output.extend_from_slice(&hdr);
    xs.port().flush();
    assert_eq!(xs.recv(u64::MAX).err(), Some(XsError::Protocol));
    assert!(xs.is_broken());
}

#[test]
fn a_reply_of_the_wrong_type_is_a_protocol_error() {
    let mut fake = Fake::new(0);
    fake.mode = Mode::Mute;
    let mut xs = fake.client();
    // The reply to req_id 1 will be an XS_DIRECTORY for an XS_READ.
    xs.port().send(XS_DIRECTORY, 1, b"");
    xs.port().flush();
    assert_eq!(xs.read(TxId::NONE, "p"), Err(XsError::Protocol));
    assert!(!xs.is_broken());
}

#[test]
fn transactions_start_commit_and_retry() {
    let mut fake = Fake::new(0);
    fake.refuse_commits = 1;
    let mut xs = fake.client();
    let tx = xs.transaction_start().unwrap();
    assert_eq!(tx, TxId(11));
    xs.write(tx, "data/tx/a", b"1").unwrap();
    assert_eq!(xs.transaction_commit(tx), Err(XsError::Store(XenError::Eagain)));
    let tx = xs.transaction_start().unwrap();
    xs.transaction_commit(tx).unwrap();
    assert_eq!(xs.port().requests.last().unwrap(), &(XS_TRANSACTION_END, 12, b"T\0".to_vec()));
}

#[test]
fn a_bad_transaction_id_is_a_protocol_error() {
    let mut fake = Fake::new(0);
    fake.mode = Mode::Mute;
    let mut xs = fake.client();
    xs.port().send(XS_TRANSACTION_START, 1, b"0\0");
    xs.port().send(XS_TRANSACTION_START, 2, b"x\0");
    xs.port().flush();
    assert_eq!(xs.transaction_start(), Err(XsError::Protocol));
    assert_eq!(xs.transaction_start(), Err(XsError::Protocol));
}
