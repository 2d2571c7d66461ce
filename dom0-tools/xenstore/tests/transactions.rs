//! Transactions: isolation, commit, abort, conflicts, ids, watches.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;

#[test]
fn changes_are_private_until_commit() {
    let mut h = Harness::new();
    let t = h.tools;
    let other = h.socket();
    let tx = h.tx_start(t);
    assert_eq!(h.write_tx(t, tx, "/a/b", "1"), ok());
    assert_eq!(h.read_tx(t, tx, "/a/b"), val("1"));
    assert_eq!(h.read(other, "/a/b"), err("ENOENT"));
    assert_eq!(h.read(t, "/a/b"), err("ENOENT"), "outside the transaction, even on its connection");
    assert_eq!(h.tx_end(t, tx, true), ok());
    assert_eq!(h.read(other, "/a/b"), val("1"));
    assert_eq!(h.dir(other, "/a"), Ok(vec!["b".into()]));
    assert_eq!(h.store.usage(0).unwrap().nodes, 5);
}

#[test]
fn abort_discards_everything() {
    let mut h = Harness::new();
    let t = h.tools;
    h.write(t, "/keep", "old").unwrap();
    let tx = h.tx_start(t);
    h.write_tx(t, tx, "/keep", "new").unwrap();
    h.write_tx(t, tx, "/fresh/node", "x").unwrap();
    h.rm_tx(t, tx, "/tool").unwrap();
    assert_eq!(h.read_tx(t, tx, "/tool/xenstored"), err("ENOENT"));
    assert_eq!(h.tx_end(t, tx, false), ok());
    assert_eq!(h.read(t, "/keep"), val("old"));
    assert_eq!(h.read(t, "/fresh"), err("ENOENT"));
    assert_eq!(h.read(t, "/tool/xenstored"), val(""));
    assert_eq!(h.store.usage(0).unwrap().nodes, 4);
    assert_eq!(h.tx_end(t, tx, true), err("ENOENT"), "it is gone");
}

#[test]
fn two_conflicting_transactions_give_exactly_one_eagain() {
    let mut h = Harness::new();
    let (a, b) = (h.socket(), h.socket());
    h.write(a, "/counter", "0").unwrap();
    let ta = h.tx_start(a);
    let tb = h.tx_start(b);
    // Both read the counter and write it back incremented.
    assert_eq!(h.read_tx(a, ta, "/counter"), val("0"));
    assert_eq!(h.read_tx(b, tb, "/counter"), val("0"));
    h.write_tx(a, ta, "/counter", "1").unwrap();
    h.write_tx(b, tb, "/counter", "1").unwrap();
    let results = [h.tx_end(a, ta, true), h.tx_end(b, tb, true)];
    assert_eq!(results.iter().filter(|r| **r == err("EAGAIN")).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| **r == ok()).count(), 1);
    assert_eq!(h.read(a, "/counter"), val("1"));
    // The loser retries and succeeds.
    let tb = h.tx_start(b);
    let v: u32 = String::from_utf8(h.read_tx(b, tb, "/counter").unwrap()).unwrap().parse().unwrap();
    h.write_tx(b, tb, "/counter", &(v + 1).to_string()).unwrap();
    assert_eq!(h.tx_end(b, tb, true), ok());
    assert_eq!(h.read(a, "/counter"), val("2"));
}

#[test]
fn crossed_reads_and_writes_fail_the_second_commit() {
    // Xen's example 4: TA1 reads A, writes B; TA2 reads B, writes A.
    let mut h = Harness::new();
    let (a, b) = (h.socket(), h.socket());
    h.write(a, "/A", "a").unwrap();
    h.write(a, "/B", "b").unwrap();
    let t1 = h.tx_start(a);
    let t2 = h.tx_start(b);
    h.read_tx(a, t1, "/A").unwrap();
    h.read_tx(b, t2, "/B").unwrap();
    h.write_tx(a, t1, "/B", "1").unwrap();
    h.write_tx(b, t2, "/A", "2").unwrap();
    assert_eq!(h.tx_end(a, t1, true), ok());
    assert_eq!(h.tx_end(b, t2, true), err("EAGAIN"));
    assert_eq!(h.read(a, "/A"), val("a"));
    assert_eq!(h.read(a, "/B"), val("1"));
}

#[test]
fn a_direct_write_or_creation_conflicts_with_a_reader() {
    let mut h = Harness::new();
    let (a, b) = (h.socket(), h.socket());
    h.write(a, "/x", "0").unwrap();
    let tx = h.tx_start(a);
    h.read_tx(a, tx, "/x").unwrap();
    h.write(b, "/x", "9").unwrap();
    assert_eq!(h.read_tx(a, tx, "/x"), val("0"), "the transaction keeps its copy");
    h.write_tx(a, tx, "/y", "1").unwrap();
    assert_eq!(h.tx_end(a, tx, true), err("EAGAIN"));
    assert_eq!(h.read(a, "/y"), err("ENOENT"));

    let tx = h.tx_start(a);
    assert_eq!(h.read_tx(a, tx, "/new"), err("ENOENT"));
    h.write(b, "/new", "appeared").unwrap();
    assert_eq!(h.tx_end(a, tx, true), err("EAGAIN"), "a node that appeared also conflicts");

    let tx = h.tx_start(a);
    h.write(a, "/unrelated", "1").unwrap();
    h.read_tx(a, tx, "/x").unwrap();
    h.write(b, "/elsewhere", "2").unwrap();
    assert_eq!(h.tx_end(a, tx, true), ok(), "changes to other nodes do not conflict");
}

#[test]
fn ids_are_per_connection_and_checked() {
    let mut h = Harness::new();
    let (a, b) = (h.socket(), h.socket());
    let a1 = h.tx_start(a);
    let a2 = h.tx_start(a);
    let b1 = h.tx_start(b);
    assert_eq!((a1, a2, b1), (1, 2, 1));
    assert_eq!(h.read_tx(b, a2, "/"), err("ENOENT"), "b has no transaction 2");
    assert_eq!(h.request(a, XS_TRANSACTION_START, a1, b"\0"), err("EBUSY"), "no nesting");
    assert_eq!(h.request(a, XS_TRANSACTION_END, 0, b"T\0"), err("ENOENT"));
    assert_eq!(h.request(a, XS_TRANSACTION_END, a1, b"X\0"), err("EINVAL"));
    assert_eq!(h.request(a, XS_TRANSACTION_END, a1, b"T"), err("EINVAL"));
    assert_eq!(h.tx_end(a, a1, true), ok());
    assert_eq!(h.tx_start(a), 3, "ids are not reused at once");
    // WATCH ignores the transaction id.
    let mut p = z("/w");
    p.extend(z("tok"));
    assert_eq!(h.request(a, XS_WATCH, 999, &p), ok());
}

#[test]
fn watches_fire_at_commit_not_before() {
    let mut h = Harness::new();
    let (a, w) = (h.socket(), h.socket());
    h.watch(w, "/watched", "tok").unwrap();
    assert_eq!(h.events(w), vec![("/watched".into(), "tok".into())]);
    let tx = h.tx_start(a);
    h.write_tx(a, tx, "/watched/a", "1").unwrap();
    h.write_tx(a, tx, "/watched/a", "2").unwrap();
    h.write_tx(a, tx, "/watched/b", "3").unwrap();
    assert_eq!(h.events(w), vec![]);
    h.tx_end(a, tx, true).unwrap();
    assert_eq!(h.events(w), vec![("/watched/a".into(), "tok".into()), ("/watched/b".into(), "tok".into())]);
    // An aborted or failed transaction fires nothing.
    let tx = h.tx_start(a);
    h.write_tx(a, tx, "/watched/c", "1").unwrap();
    h.tx_end(a, tx, false).unwrap();
    assert_eq!(h.events(w), vec![]);
}

#[test]
fn removal_inside_a_transaction() {
    let mut h = Harness::new();
    let (a, w) = (h.socket(), h.socket());
    h.write(a, "/r/x/y", "1").unwrap();
    h.watch(w, "/r/x/y", "deep").unwrap();
    h.events(w);
    let tx = h.tx_start(a);
    assert_eq!(h.rm_tx(a, tx, "/r/x"), ok());
    assert_eq!(h.read_tx(a, tx, "/r/x/y"), err("ENOENT"));
    assert_eq!(h.read(a, "/r/x/y"), val("1"));
    assert_eq!(h.tx_end(a, tx, true), ok());
    assert_eq!(h.read(a, "/r/x"), err("ENOENT"));
    assert_eq!(h.dir(a, "/r"), Ok(vec![]));
    assert_eq!(h.events(w), vec![("/r/x/y".into(), "deep".into())]);
    assert_eq!(h.store.usage(0).unwrap().nodes, 4);
}

#[test]
fn domain_transactions_commit_their_node_counts() {
    let mut h = Harness::new();
    let t = h.tools;
    let d = h.domain(2);
    h.mkdir(t, "/local/domain/2").unwrap();
    h.set_perms(t, "/local/domain/2", &["n2"]).unwrap();
    let before = h.store.usage(2).unwrap().nodes;
    let tx = h.tx_start(d);
    h.write_tx(d, tx, "a/b/c", "1").unwrap();
    assert_eq!(h.store.usage(2).unwrap().nodes, before, "not before commit");
    h.tx_end(d, tx, true).unwrap();
    assert_eq!(h.store.usage(2).unwrap().nodes, before + 3);
    assert_eq!(h.store.usage(2).unwrap().memory, {
        let mem = |p: &str| h.store.node(p).unwrap().memory(p) as u64;
        mem("/local/domain/2") + mem("/local/domain/2/a") + mem("/local/domain/2/a/b") + mem("/local/domain/2/a/b/c")
    });
}
