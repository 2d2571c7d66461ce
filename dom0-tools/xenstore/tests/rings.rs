//! Transports: split and malformed messages, and a domain's ring page
//! served through `service_ring` over a fake page.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;
use xenstore::ring_conn::{ring_ready, service_ring};
use xenstore::wire::encode;
use xenstore::{ProtocolError, RingMemory};

#[test]
fn requests_split_at_every_byte_are_served() {
    let mut h = Harness::new();
    let t = h.tools;
    let mut bytes = encode(XS_WRITE, 7, 0, b"/split\0value");
    bytes.extend(encode(XS_READ, 8, 0, b"/split\0"));
    for b in &bytes {
        h.send_raw(t, std::slice::from_ref(b)).unwrap();
    }
    let inbox = h.inbox(t);
    assert_eq!(inbox.len(), 2);
    assert_eq!((inbox[0].req_id, inbox[0].payload.as_slice()), (7, &b"OK\0"[..]));
    assert_eq!((inbox[1].req_id, inbox[1].payload.as_slice()), (8, &b"value"[..]));
}

#[test]
fn an_oversized_payload_ends_the_connection() {
    let mut h = Harness::new();
    let s = h.socket();
    let mut bad = encode(XS_READ, 1, 0, b"");
    bad[12..16].copy_from_slice(&4097u32.to_ne_bytes());
    assert_eq!(h.send_raw(s, &bad), Err(ProtocolError::PayloadTooLarge(4097)));
    assert!(h.store.is_ignored(s));
    assert_eq!(h.store.input_budget(s), 0);
    h.store.close_connection(s);
    assert!(!h.store.connections().contains(&s));
    // A 4096-byte payload is fine.
    let t = h.tools;
    let mut big = z("/big");
    big.resize(4096, b'v');
    assert_eq!(h.request(t, XS_WRITE, 0, &big), ok());
    assert_eq!(h.read(t, "/big").unwrap().len(), 4096 - 5);
}

#[test]
fn replies_longer_than_the_payload_limit_are_e2big() {
    let mut h = Harness::new();
    let t = h.tools;
    for i in 0..200 {
        h.mkdir(t, &format!("/wide/a-long-child-name-to-fill-the-list-{i:05}")).unwrap();
    }
    assert_eq!(h.dir(t, "/wide"), Err("E2BIG".into()));
}

/// A domain whose ring is the fake page, served as the daemon would.
fn ring_domain(h: &mut Harness, domid: u16) -> (xenstore::ConnId, FakePage) {
    let conn = h.domain(domid);
    (conn, FakePage::new())
}

fn serve(h: &mut Harness, conn: xenstore::ConnId, page: &FakePage) -> xenstore::ring_conn::RingService {
    service_ring(&mut h.store, conn, page, &mut h.platform)
}

#[test]
fn a_request_dribbled_into_the_ring_is_answered_through_it() {
    let mut h = Harness::new();
    let (conn, page) = ring_domain(&mut h, 3);
    let req = encode(XS_GET_DOMAIN_PATH, 42, 0, b"3\0");
    for chunk in req.chunks(5) {
        assert!(page.guest_send(chunk) == chunk.len());
        let done = serve(&mut h, conn, &page);
        assert!(done.notify && !done.broken);
    }
    let msgs = parse_stream(&page.guest_receive());
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].type_, msgs[0].req_id), (XS_GET_DOMAIN_PATH, 42));
    assert_eq!(msgs[0].payload, b"/local/domain/3\0");
    assert!(!ring_ready(&h.store, conn, &page));
}

#[test]
fn a_reply_bigger_than_the_ring_goes_out_in_pieces() {
    let mut h = Harness::new();
    let t = h.tools;
    let (conn, page) = ring_domain(&mut h, 3);
    h.mkdir(t, "/local/domain/3").unwrap();
    h.set_perms(t, "/local/domain/3", &["n3"]).unwrap();
    let value = "v".repeat(3000);
    h.write(t, "/local/domain/3/big", &value).unwrap();
    page.guest_send(&encode(XS_READ, 1, 0, b"big\0"));
    serve(&mut h, conn, &page);
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(page.guest_receive());
        if !ring_ready(&h.store, conn, &page) {
            break;
        }
        serve(&mut h, conn, &page);
    }
    got.extend(page.guest_receive());
    let msgs = parse_stream(&got);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload, value.as_bytes());
}

#[test]
fn garbage_indices_cut_off_that_domain_only() {
    let mut h = Harness::new();
    let t = h.tools;
    let (bad, bad_page) = ring_domain(&mut h, 3);
    let (good, good_page) = ring_domain(&mut h, 4);
    h.watch(bad, "/w", "t").unwrap();
    bad_page.write_u32(REQ_CONS, 0);
    bad_page.write_u32(REQ_PROD, 0x8000_0000);
    let done = serve(&mut h, bad, &bad_page);
    assert!(done.broken);
    assert_eq!(bad_page.read_u32(ERROR), XENSTORE_ERROR_RINGIDX);
    assert!(h.store.is_ignored(bad));
    assert_eq!(h.store.usage(3).unwrap().watches, 0, "its watches are gone");
    assert!(h.store.is_introduced(3), "the domain stays known until it dies");
    assert!(!ring_ready(&h.store, bad, &bad_page));
    assert!(!serve(&mut h, bad, &bad_page).notify, "no more service");

    good_page.guest_send(&encode(XS_GET_DOMAIN_PATH, 1, 0, b"4\0"));
    assert!(ring_ready(&h.store, good, &good_page));
    serve(&mut h, good, &good_page);
    assert_eq!(parse_stream(&good_page.guest_receive())[0].payload, b"/local/domain/4\0");
    assert_eq!(h.read(t, "/tool"), val(""));

    // Garbage on the response side too.
    let (third, page) = ring_domain(&mut h, 5);
    page.guest_send(&encode(XS_GET_DOMAIN_PATH, 1, 0, b"5\0"));
    page.write_u32(RSP_CONS, 5000);
    assert!(serve(&mut h, third, &page).broken);

    // Introducing the domain again serves it afresh.
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"3\x001\x0099\0"), ok());
    assert!(!h.store.is_ignored(bad));
}

#[test]
fn an_oversized_message_on_a_ring_is_a_protocol_error() {
    let mut h = Harness::new();
    let (conn, page) = ring_domain(&mut h, 3);
    let mut bad = encode(XS_READ, 1, 0, b"");
    bad[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
    page.guest_send(&bad);
    assert!(serve(&mut h, conn, &page).broken);
    assert_eq!(page.read_u32(ERROR), XENSTORE_ERROR_PROTO);
}

#[test]
fn a_flooding_domain_is_throttled_not_served_forever() {
    let mut h = Harness::new();
    let (conn, page) = ring_domain(&mut h, 3);
    // The guest fills its request ring over and over, never reading replies.
    let req = encode(XS_GET_DOMAIN_PATH, 1, 0, b"3\0");
    let mut sent = 0;
    for _ in 0..100 {
        while page.guest_send(&req) == req.len() {
            sent += 1;
        }
        serve(&mut h, conn, &page);
        if !ring_ready(&h.store, conn, &page) {
            break;
        }
    }
    let u = h.store.usage(3).unwrap();
    assert_eq!(u.outstanding, 20, "stopped at the outstanding quota");
    assert!(sent > 20);
    assert_eq!(h.store.input_budget(conn), 0);
    assert!(!ring_ready(&h.store, conn, &page), "nothing to do until the guest reads");
    // Once it reads, service resumes.
    page.guest_receive();
    assert!(ring_ready(&h.store, conn, &page));
    serve(&mut h, conn, &page);
    assert!(!parse_stream(&page.guest_receive()).is_empty());
}
