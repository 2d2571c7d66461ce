//! Hostile peers: random requests and random ring pages never panic the
//! store, and its accounting stays true to the tree.

mod common;

use std::collections::BTreeMap;

use common::*;
use guest_abi::io::xs_wire::*;
use xenstore::ring_conn::service_ring;
use xenstore::wire::encode;
use xenstore::RingMemory;

/// xorshift64*: deterministic, good enough to shake the store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A payload built from path-like pieces, numbers and NULs.
fn payload(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&str] = &[
        "/",
        "a",
        "b",
        "/a",
        "/a/b",
        "/local/domain/1",
        "/local/domain/2/x",
        "x/y",
        "@releaseDomain",
        "@introduceDomain",
        "\0",
        "\0",
        "\0",
        "n1",
        "r2",
        "b0",
        "w1",
        "T",
        "F",
        "0",
        "1",
        "2",
        "-1",
        "99999",
        "quota",
        "check",
        "//",
        "../",
        " ",
        "\u{ff}",
    ];
    let mut p = Vec::new();
    for _ in 0..rng.below(8) {
        p.extend_from_slice(rng.pick(PIECES).as_bytes());
    }
    p
}

#[test]
fn random_requests_never_panic_and_accounting_holds() {
    let mut h = Harness::new();
    let t = h.tools;
    h.mkdir(t, "/local/domain").unwrap();
    let mut conns = vec![t, h.socket()];
    for d in 1..=3 {
        conns.push(h.domain(d));
        h.mkdir(t, &format!("/local/domain/{d}")).unwrap();
        h.set_perms(t, &format!("/local/domain/{d}"), &[&format!("n{d}"), "r1"]).unwrap();
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..20_000 {
        let conn = conns[rng.below(conns.len() as u64) as usize];
        let type_ = match rng.below(10) {
            0 => rng.below(30) as u32,
            1 => XS_TRANSACTION_START,
            2 => XS_TRANSACTION_END,
            3 => XS_WATCH,
            4 => XS_RM,
            5 => XS_SET_PERMS,
            _ => XS_WRITE,
        };
        let tx = if rng.below(3) == 0 { rng.below(4) as u32 } else { 0 };
        let msg = encode(type_, i, tx, &payload(&mut rng));
        // Arbitrary chunking, as a socket or a ring would deliver it.
        let mut rest = &msg[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(40) as usize).min(rest.len());
            let _ = h.store.feed(conn, &rest[..n], &mut h.platform);
            rest = &rest[n..];
        }
        if rng.below(50) == 0 {
            h.drain();
        }
        if rng.below(2000) == 0 {
            h.store.check_domains(&mut h.platform);
        }
    }
    // Close every transaction, then compare the counts with the tree.
    for &c in &conns {
        h.store.feed(c, &encode(XS_RESET_WATCHES, 0, 0, b""), &mut h.platform).unwrap();
    }
    h.drain();
    let mut owned: BTreeMap<u32, u32> = BTreeMap::new();
    let mut stack = vec!["/".to_owned()];
    while let Some(name) = stack.pop() {
        let node = h.store.node(&name).unwrap_or_else(|| panic!("{name} is listed by its parent but missing"));
        *owned.entry(node.perms.owner()).or_default() += 1;
        for child in &node.children {
            stack.push(if name == "/" { format!("/{child}") } else { format!("{name}/{child}") });
        }
    }
    let total: u32 = owned.values().sum();
    assert!(total > 20, "the random requests built a tree ({total} nodes)");
    assert!((1..=3).any(|d| owned.get(&d).is_some_and(|&n| n > 1)), "domains created nodes: {owned:?}");
    for (domid, count) in owned {
        if let Some(u) = h.store.usage(domid as u16) {
            assert_eq!(u.nodes, count, "domain {domid}'s node count");
        }
    }
}

#[test]
fn random_ring_pages_never_panic() {
    let mut rng = Rng(0xfeed_face_cafe_beef);
    for round in 0..200 {
        let mut h = Harness::new();
        let conn = h.domain(5);
        let page = FakePage::new();
        for _ in 0..20 {
            match rng.below(4) {
                0 => {
                    let off = [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD][rng.below(4) as usize];
                    page.write_u32(off, rng.next() as u32);
                }
                1 => {
                    let at = rng.below(2048) as usize;
                    page.write_bytes(at, &[rng.next() as u8; 1]);
                }
                2 => {
                    let msg = encode(rng.below(25) as u32, round, 0, &payload(&mut rng));
                    page.guest_send(&msg);
                }
                _ => {
                    page.guest_receive();
                }
            }
            let done = service_ring(&mut h.store, conn, &page, &mut h.platform);
            if done.broken {
                assert!(h.store.is_ignored(conn));
                break;
            }
        }
        // The daemon is still fine for everyone else.
        assert_eq!(h.read(h.tools, "/tool/xenstored"), val(""));
    }
}
