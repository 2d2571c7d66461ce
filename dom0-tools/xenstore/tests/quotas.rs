//! Quotas: they bind the domain that exceeds them, and nobody else.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;
use xenstore::Config;

/// A harness with domains 1 and 2 introduced, each owning its home.
fn two_domains(config: Config) -> (Harness, xenstore::ConnId, xenstore::ConnId) {
    let mut h = Harness::with_config(config);
    let t = h.tools;
    let d1 = h.domain(1);
    let d2 = h.domain(2);
    for d in [1, 2] {
        h.mkdir(t, &format!("/local/domain/{d}")).unwrap();
        h.set_perms(t, &format!("/local/domain/{d}"), &[&format!("n{d}")]).unwrap();
    }
    (h, d1, d2)
}

#[test]
fn node_quota_binds_the_domain_over_it_only() {
    let mut config = Config::default();
    config.quotas.nodes = 10;
    let (mut h, d1, d2) = two_domains(config);
    let t = h.tools;
    // Domain 1 owns its home (1 node): 9 more fit.
    for i in 0..9 {
        assert_eq!(h.write(d1, &format!("n{i}"), "x"), ok(), "node {i}");
    }
    assert_eq!(h.store.usage(1).unwrap().nodes, 10);
    assert_eq!(h.write(d1, "one-too-many", "x"), err("ENOSPC"));
    assert_eq!(h.mkdir(d1, "a/b"), err("ENOSPC"));
    assert_eq!(h.write(d1, "n0", "overwrite is fine"), ok());
    assert_eq!(h.write(d2, "still-fine", "x"), ok(), "domain 2 is unaffected");
    assert_eq!(h.write(t, "/local/domain/0/tools-too", "x"), ok());
    for i in 0..20 {
        assert_eq!(h.write(t, &format!("/local/domain/0/many/{i}"), "x"), ok(), "dom0 has no quota");
    }
    assert_eq!(h.rm(d1, "n0"), ok());
    assert_eq!(h.write(d1, "room-again", "x"), ok());
    // The quota is also checked at commit.
    let tx = h.tx_start(d1);
    h.rm_tx(d1, tx, "n1").unwrap();
    h.write_tx(d1, tx, "x", "1").unwrap();
    assert_eq!(h.tx_end(d1, tx, true), err("ENOSPC"), "Xen's commit check is count >= quota");
}

#[test]
fn entry_size_quota_counts_the_record() {
    let (mut h, d1, _) = two_domains(Config::default());
    let t = h.tools;
    // Record = 24 header + 8 per permission + data + children.
    assert_eq!(h.write(d1, "big", &"x".repeat(2048 - 24 - 8 - 1)), ok());
    assert_eq!(h.write(d1, "big", &"x".repeat(2048 - 24 - 8)), err("ENOSPC"));
    assert_eq!(h.read(d1, "big").unwrap().len(), 2015, "the failed write changed nothing");
    assert_eq!(h.write(t, "/local/domain/1/big", &"x".repeat(4000)), ok(), "privileged writers are exempt");
}

#[test]
fn watch_quota() {
    let mut config = Config::default();
    config.quotas.watches = 3;
    let (mut h, d1, d2) = two_domains(config);
    // 4.17 checks `watches > quota`, so one more than the quota fits.
    for i in 0..4 {
        assert_eq!(h.watch(d1, &format!("w{i}"), "t"), ok(), "watch {i}");
    }
    assert_eq!(h.watch(d1, "w4", "t"), err("E2BIG"));
    assert_eq!(h.watch(d2, "w0", "t"), ok());
    let t = h.tools;
    for i in 0..10 {
        assert_eq!(h.watch(t, &format!("/w{i}"), "t"), ok());
    }
    assert_eq!(h.unwatch(d1, "w0", "t"), ok());
    assert_eq!(h.watch(d1, "w4", "t"), ok());
}

#[test]
fn transaction_quota() {
    let mut config = Config::default();
    config.quotas.transactions = 2;
    let (mut h, d1, d2) = two_domains(config);
    // 4.17 checks `started > quota`, so one more than the quota fits.
    let ids: Vec<u32> = (0..3).map(|_| h.tx_start(d1)).collect();
    assert_eq!(h.request(d1, XS_TRANSACTION_START, 0, b"\0"), err("ENOSPC"));
    h.tx_start(d2);
    h.tx_end(d1, ids[0], false).unwrap();
    h.tx_start(d1);
}

#[test]
fn permission_list_quota() {
    let mut config = Config::default();
    config.quotas.perms_per_node = 2;
    let (mut h, d1, _) = two_domains(config);
    h.write(d1, "p", "").unwrap();
    assert_eq!(h.set_perms(d1, "p", &["n1", "r2"]), ok());
    assert_eq!(h.set_perms(d1, "p", &["n1", "r2", "r0"]), err("ENOSPC"));
    let t = h.tools;
    assert_eq!(h.set_perms(t, "/local/domain/1/p", &["n1", "r2", "r0"]), ok());
}

#[test]
fn transaction_node_quota_dooms_the_transaction() {
    let mut config = Config::default();
    config.quotas.transaction_nodes = 5;
    let (mut h, d1, _) = two_domains(config);
    let tx = h.tx_start(d1);
    let mut failed = None;
    for i in 0..10 {
        if let Err(e) = h.write_tx(d1, tx, &format!("t{i}"), "x") {
            failed = Some((i, e));
            break;
        }
    }
    let (i, e) = failed.expect("the quota stops the transaction");
    assert_eq!(e, "ENOSPC");
    assert!(i < 5, "at most 5 nodes, the parent included");
    assert_eq!(h.tx_end(d1, tx, true), err("ENOMEM"), "a doomed transaction cannot commit");
    assert_eq!(h.read(d1, "t0"), err("ENOENT"));
}

#[test]
fn outstanding_replies_throttle_reading() {
    let (mut h, d1, d2) = two_domains(Config::default());
    // Domain 1 sends requests but never takes replies.
    for i in 0..20 {
        assert!(h.store.input_budget(d1) > 0, "request {i}");
        let msg = xenstore::wire::encode(XS_READ, i, 0, &z("/local/domain/1"));
        h.store.feed(d1, &msg, &mut h.platform).unwrap();
    }
    assert_eq!(h.store.usage(1).unwrap().outstanding, 20);
    assert_eq!(h.store.input_budget(d1), 0, "20 unanswered: stop reading");
    assert!(h.store.input_budget(d2) > 0, "others are served");
    assert!(h.store.input_budget(h.tools) > 0);
    // Taking one reply lets it send again.
    let n = h.store.output(d1).unwrap().len();
    h.store.output_written(d1, n);
    assert!(h.store.input_budget(d1) > 0);
    assert_eq!(h.read(d2, "/local/domain/2"), val(""));
}

#[test]
fn memory_quota() {
    let mut config = Config::default();
    config.quotas.memory_hard = 64 * 1024;
    config.quotas.nodes = 10_000;
    let (mut h, d1, d2) = two_domains(config);
    let mut refused = false;
    for i in 0..200 {
        match h.write(d1, &format!("m{i}"), &"x".repeat(1000)) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, "ENOMEM");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "64 KiB is less than 200 KB");
    assert!(h.store.usage(1).unwrap().memory < 64 * 1024);
    assert_eq!(h.write(d2, "fine", &"x".repeat(1000)), ok());
}
