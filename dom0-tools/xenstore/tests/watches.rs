//! Watches: the first event, tokens, recursion, removal, permission
//! filtering, relative paths, special events, ordering.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;

fn ev(path: &str, token: &str) -> (String, String) {
    (path.into(), token.into())
}

#[test]
fn a_watch_fires_once_on_registration_after_the_ack() {
    let mut h = Harness::new();
    let w = h.socket();
    let mut p = z("/nowhere");
    p.extend(z("tok"));
    h.request_msg(w, XS_WATCH, 0, &p);
    // Nothing else was queued before the event.
    let inbox = h.inbox(w);
    assert_eq!(inbox.len(), 1);
    assert_eq!((inbox[0].type_, inbox[0].req_id, inbox[0].tx_id), (XS_WATCH_EVENT, 0, 0));
    assert_eq!(inbox[0].payload, b"/nowhere\0tok\0");
    assert_eq!(h.watch(w, "/nowhere", "tok"), err("EEXIST"));
    assert_eq!(h.watch(w, "/nowhere", "tok2"), ok(), "another token is another watch");
    assert_eq!(h.request(w, XS_WATCH, 0, b"/x\0"), err("EINVAL"));
    assert_eq!(h.request(w, XS_WATCH, 0, b"/x\0t\0extra\0"), err("EINVAL"));
    assert_eq!(h.watch(w, "/bad//path", "t"), err("EINVAL"));
}

#[test]
fn changes_at_or_below_fire_with_the_changed_path() {
    let mut h = Harness::new();
    let (a, w) = (h.socket(), h.socket());
    h.watch(w, "/dev", "T").unwrap();
    h.events(w);
    h.write(a, "/dev/vif/0/state", "1").unwrap();
    h.mkdir(a, "/dev/vbd").unwrap();
    h.write(a, "/devices", "no").unwrap();
    h.write(a, "/other", "no").unwrap();
    h.mkdir(a, "/dev/vbd").unwrap();
    assert_eq!(h.events(w), vec![ev("/dev/vif/0/state", "T"), ev("/dev/vbd", "T")]);
    let root = h.socket();
    h.watch(root, "/", "all").unwrap();
    h.events(root);
    h.write(a, "/z", "1").unwrap();
    assert_eq!(h.events(root), vec![ev("/z", "all")]);
}

#[test]
fn the_writers_reply_comes_before_its_own_event() {
    let mut h = Harness::new();
    let w = h.socket();
    h.watch(w, "/self", "me").unwrap();
    h.events(w);
    let mut p = z("/self");
    p.extend_from_slice(b"v");
    let req_id = h.request_msg(w, XS_WRITE, 0, &p).req_id;
    assert!(req_id > 0);
    assert_eq!(h.events(w), vec![ev("/self", "me")]);
}

#[test]
fn removing_a_subtree_fires_each_removed_nodes_exact_watches() {
    let mut h = Harness::new();
    let (a, w) = (h.socket(), h.socket());
    h.write(a, "/t/a/b", "1").unwrap();
    h.write(a, "/t/c", "1").unwrap();
    for (path, tok) in [("/t/a/b", "b"), ("/t/a", "a"), ("/t", "t"), ("/", "root"), ("/t/a/b/c", "below")] {
        h.watch(w, path, tok).unwrap();
    }
    h.events(w);
    h.rm(a, "/t/a").unwrap();
    let mut got = h.events(w);
    got.sort();
    // Children fire only their own watches; the removed root fires its
    // own and its ancestors'. Nothing fires below a removed leaf.
    let mut want = vec![ev("/t/a/b", "b"), ev("/t/a", "a"), ev("/t/a", "t"), ev("/t/a", "root")];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn watchers_only_hear_about_nodes_they_may_read() {
    let mut h = Harness::new();
    let t = h.tools;
    let d1 = h.domain(1);
    let d2 = h.domain(2);
    h.mkdir(t, "/shared").unwrap();
    h.set_perms(t, "/shared", &["n0", "r1"]).unwrap();
    h.watch(d1, "/shared", "one").unwrap();
    h.watch(d2, "/shared", "two").unwrap();
    assert_eq!(h.events(d1), vec![ev("/shared", "one")], "first event regardless of perms");
    assert_eq!(h.events(d2), vec![ev("/shared", "two")]);
    h.write(t, "/shared/x", "1").unwrap();
    assert_eq!(h.events(d1), vec![ev("/shared/x", "one")], "parent readable");
    assert_eq!(h.events(d2), vec![]);
    // Taking read access away still tells the watcher who had it.
    h.set_perms(t, "/shared/x", &["n0", "r2"]).unwrap();
    assert_eq!(h.events(d1), vec![ev("/shared/x", "one")]);
    assert_eq!(h.events(d2), vec![ev("/shared/x", "two")], "it can read the node now");
    h.set_perms(t, "/shared/x", &["n0"]).unwrap();
    assert_eq!(h.events(d2), vec![ev("/shared/x", "two")], "old permissions count");
    assert_eq!(h.events(d1), vec![ev("/shared/x", "one")]);
    h.write(t, "/shared/x", "2").unwrap();
    assert_eq!(h.events(d2), vec![]);
    assert_eq!(h.events(d1), vec![ev("/shared/x", "one")], "via the parent");
}

#[test]
fn relative_watches_report_relative_paths() {
    let mut h = Harness::new();
    let t = h.tools;
    let d = h.domain(4);
    h.mkdir(t, "/local/domain/4").unwrap();
    h.set_perms(t, "/local/domain/4", &["n4"]).unwrap();
    h.watch(d, "device", "rel").unwrap();
    assert_eq!(h.events(d), vec![ev("device", "rel")]);
    h.write(t, "/local/domain/4/device/vif/0", "x").unwrap();
    assert_eq!(h.events(d), vec![ev("device/vif/0", "rel")]);
    assert_eq!(h.unwatch(d, "device", "rel"), ok());
    assert_eq!(h.unwatch(d, "device", "rel"), err("ENOENT"));
    h.write(t, "/local/domain/4/device/vif/1", "x").unwrap();
    assert_eq!(h.events(d), vec![]);
}

#[test]
fn special_events_need_read_permission_on_the_special_node() {
    let mut h = Harness::new();
    let t = h.tools;
    let tools_w = h.socket();
    let d3 = h.domain(3);
    h.watch(tools_w, "@introduceDomain", "intro").unwrap();
    h.watch(tools_w, "@releaseDomain", "rel").unwrap();
    h.watch(d3, "@releaseDomain", "d3").unwrap();
    h.events(tools_w);
    assert_eq!(h.events(d3), vec![ev("@releaseDomain", "d3")]);
    h.domain(5);
    assert_eq!(h.events(tools_w), vec![ev("@introduceDomain", "intro")]);
    // Domain 5 dies: dom0's tools hear it, domain 3 may not.
    h.platform.domains.insert(5, xenstore::DomainState::Dying);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(tools_w), vec![ev("@releaseDomain", "rel")]);
    assert_eq!(h.events(d3), vec![]);
    h.set_perms(t, "@releaseDomain", &["n0", "r3"]).unwrap();
    h.domain(6);
    h.platform.domains.remove(&6);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(d3), vec![ev("@releaseDomain", "d3")]);
}

#[test]
fn reset_watches_drops_watches_and_transactions() {
    let mut h = Harness::new();
    let (a, w) = (h.socket(), h.socket());
    h.watch(w, "/r", "t").unwrap();
    let tx = h.tx_start(w);
    h.events(w);
    assert_eq!(h.request(w, XS_RESET_WATCHES, 0, b""), ok());
    h.write(a, "/r", "1").unwrap();
    assert_eq!(h.events(w), vec![]);
    assert_eq!(h.tx_end(w, tx, true), err("ENOENT"));
}

#[test]
fn identical_pending_events_are_merged() {
    let mut h = Harness::new();
    let (a, w) = (h.socket(), h.socket());
    h.watch(w, "/m", "t").unwrap();
    h.drain();
    h.events(w);
    // The watcher does not read; three identical events wait as one.
    for v in ["1", "2", "3"] {
        let mut p = z("/m");
        p.extend_from_slice(v.as_bytes());
        h.store.feed(a, &xenstore::wire::encode(XS_WRITE, 1, 0, &p), &mut h.platform).unwrap();
    }
    h.store.feed(a, &xenstore::wire::encode(XS_WRITE, 1, 0, b"/m/k\0v"), &mut h.platform).unwrap();
    assert_eq!(h.events(w), vec![ev("/m", "t"), ev("/m/k", "t")]);
}
