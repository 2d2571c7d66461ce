//! Permissions: defaults, inheritance, ownership, ENOENT vs EACCES,
//! ignored entries, SET_TARGET, special nodes.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;

/// dom0 tools make `/local/domain/<d>` owned by 0 and readable by `d`, as
/// libxl does, and a writable `data` dir owned by `d`.
fn home(h: &mut Harness, d: u16) {
    let t = h.tools;
    let home = format!("/local/domain/{d}");
    h.mkdir(t, &home).unwrap();
    h.set_perms(t, &home, &["n0", &format!("r{d}")]).unwrap();
    h.mkdir(t, &format!("{home}/data")).unwrap();
    h.set_perms(t, &format!("{home}/data"), &[&format!("n{d}")]).unwrap();
}

#[test]
fn unprivileged_domains_see_nothing_by_default() {
    let mut h = Harness::new();
    let d = h.domain(1);
    assert_eq!(h.read(d, "/tool"), err("EACCES"));
    assert_eq!(h.dir(d, "/"), Err("EACCES".into()));
    assert_eq!(h.write(d, "/x", "1"), err("EACCES"));
    assert_eq!(h.read(d, "/nope"), err("EACCES"), "no hint that the node is missing");
    assert_eq!(h.rm(d, "/tool"), err("EACCES"));
}

#[test]
fn enoent_only_when_the_nearest_ancestor_is_readable() {
    let mut h = Harness::new();
    let d = h.domain(1);
    home(&mut h, 1);
    assert_eq!(h.read(d, "/local/domain/1/missing"), err("ENOENT"), "parent readable");
    assert_eq!(h.read(d, "/local/domain/1/missing/deeper"), err("ENOENT"), "nearest existing ancestor");
    assert_eq!(h.write(d, "/local/domain/1/x", "1"), err("EACCES"), "readable, not writable");
    assert_eq!(h.read(d, "/local/domain/2/x"), err("EACCES"));
}

#[test]
fn new_nodes_inherit_and_unprivileged_creators_own_them() {
    let mut h = Harness::new();
    let t = h.tools;
    let d = h.domain(1);
    h.domain(2);
    home(&mut h, 1);
    h.set_perms(t, "/local/domain/1/data", &["n1", "r2"]).unwrap();
    assert_eq!(h.write(d, "data/a/b", "x"), ok());
    assert_eq!(h.get_perms(t, "/local/domain/1/data/a/b"), Ok(vec!["n1".into(), "r2".into()]));
    // A privileged creator keeps the inherited owner.
    h.set_perms(t, "/local/domain/1/data", &["n0", "b1"]).unwrap();
    h.write(t, "/local/domain/1/data/fromtools", "y").unwrap();
    assert_eq!(h.get_perms(t, "/local/domain/1/data/fromtools"), Ok(vec!["n0".into(), "b1".into()]));
    // An unprivileged one becomes the owner even under a node it does not own.
    assert_eq!(h.write(d, "data/mine", "z"), ok());
    assert_eq!(h.get_perms(t, "/local/domain/1/data/mine"), Ok(vec!["n1".into(), "b1".into()]));
    assert_eq!(h.store.node("/local/domain/1/data/mine").unwrap().perms.owner(), 1);
}

#[test]
fn set_perms_needs_ownership_and_cannot_give_nodes_away() {
    let mut h = Harness::new();
    let t = h.tools;
    let d1 = h.domain(1);
    let d2 = h.domain(2);
    home(&mut h, 1);
    h.write(d1, "data/n", "1").unwrap();
    assert_eq!(h.set_perms(d1, "data/n", &["n1", "r2"]), ok());
    assert_eq!(h.read(d2, "/local/domain/1/data/n"), val("1"));
    assert_eq!(h.write(d2, "/local/domain/1/data/n", "2"), err("EACCES"));
    assert_eq!(h.set_perms(d2, "/local/domain/1/data/n", &["n2"]), err("EACCES"), "readers cannot set perms");
    assert_eq!(h.set_perms(d1, "data/n", &["n2"]), err("EPERM"), "no giving away");
    assert_eq!(h.set_perms(t, "/local/domain/1/data/n", &["n2"]), ok(), "tools may");
    assert_eq!(h.set_perms(d1, "data/n", &["n1"]), err("EACCES"), "no longer the owner");
    assert_eq!(h.store.usage(1).unwrap().nodes, 1, "the data dir stays with 1");
    assert_eq!(h.store.usage(2).unwrap().nodes, 1, "ownership moved the count");
    // A writer that is not the owner cannot set perms either.
    h.set_perms(t, "/local/domain/1/data/n", &["n2", "b1"]).unwrap();
    assert_eq!(h.write(d1, "/local/domain/1/data/n", "3"), ok());
    assert_eq!(h.set_perms(d1, "/local/domain/1/data/n", &["n2", "b1"]), err("EACCES"));
}

#[test]
fn set_perms_argument_checks() {
    let mut h = Harness::new();
    let t = h.tools;
    h.mkdir(t, "/x").unwrap();
    assert_eq!(h.set_perms(t, "/x", &[]), err("EINVAL"));
    assert_eq!(h.set_perms(t, "/x", &["q1"]), err("EINVAL"));
    assert_eq!(h.set_perms(t, "/x", &["r"]), err("EINVAL"));
    assert_eq!(h.set_perms(t, "/x", &["r1z"]), err("EINVAL"));
    assert_eq!(h.set_perms(t, "/missing", &["n0"]), err("ENOENT"));
    assert_eq!(h.set_perms(t, "/x", &["n0", "r0x10", "b010"]), ok());
    assert_eq!(h.get_perms(t, "/x"), Ok(vec!["n0".into(), "r16".into(), "b8".into()]));
}

#[test]
fn entries_for_domains_that_do_not_exist_are_ignored() {
    let mut h = Harness::new();
    let t = h.tools;
    h.mkdir(t, "/x").unwrap();
    assert_eq!(h.set_perms(t, "/x", &["n42"]), err("ENOENT"), "owner must exist");
    assert_eq!(h.set_perms(t, "/x", &["n0", "r42"]), ok());
    assert_eq!(h.get_perms(t, "/x"), Ok(vec!["n0".into(), "r42".into()]), "listed as given");
    // Domain 42 appears later: the entry written before it existed does not
    // apply to it.
    let d = h.domain(42);
    assert_eq!(h.read(d, "/x"), err("EACCES"));
    assert_eq!(h.set_perms(t, "/x", &["n0", "r42"]), ok());
    assert_eq!(h.read(d, "/x"), val(""), "set again once the domain exists");
}

#[test]
fn a_dead_domains_entries_do_not_pass_to_its_successor() {
    let mut h = Harness::new();
    let t = h.tools;
    h.domain(7);
    h.write(t, "/secret", "s").unwrap();
    h.set_perms(t, "/secret", &["n0", "r7"]).unwrap();
    // Domain 7 dies; a new domain 7 is created and introduced.
    h.platform.domains.insert(7, xenstore::DomainState::Dying);
    h.store.check_domains(&mut h.platform);
    h.platform.domains.remove(&7);
    // The toolstack writes (as libxl always does) before the new domain is
    // introduced; a record made at the very generation of the node's last
    // write would count as older than the node, as in Xen.
    h.write(t, "/vm/new", "x").unwrap();
    let d = h.domain(7);
    assert_eq!(h.read(d, "/secret"), err("EACCES"));
}

#[test]
fn set_target_grants_the_targets_rights() {
    let mut h = Harness::new();
    let t = h.tools;
    let guest = h.domain(5);
    let stubdom = h.domain(6);
    home(&mut h, 5);
    h.write(guest, "data/v", "1").unwrap();
    assert_eq!(h.read(stubdom, "/local/domain/5/data/v"), err("EACCES"));
    assert_eq!(h.request(t, XS_SET_TARGET, 0, b"6\x005\0"), ok());
    assert_eq!(h.read(stubdom, "/local/domain/5/data/v"), val("1"));
    assert_eq!(h.write(stubdom, "/local/domain/5/data/v", "2"), ok());
    assert_eq!(h.request(t, XS_SET_TARGET, 0, b"6\x0099\0"), err("ENOENT"));
    assert_eq!(h.request(t, XS_SET_TARGET, 0, b"6\0"), err("EINVAL"));
    assert_eq!(h.request(guest, XS_SET_TARGET, 0, b"5\x006\0"), err("EACCES"));
}

#[test]
fn privileged_domain_ids() {
    let config = xenstore::Config { priv_domid: 9, ..Default::default() };
    let mut h = Harness::with_config(config);
    let d = h.domain(9);
    assert_eq!(h.write(d, "/anything", "1"), ok(), "--priv-domid is privileged");
    assert_eq!(h.request(d, XS_IS_DOMAIN_INTRODUCED, 0, b"9\0"), val("T\0"));
}

#[test]
fn special_node_permissions() {
    let mut h = Harness::new();
    let t = h.tools;
    let d = h.domain(3);
    assert_eq!(h.set_perms(d, "@releaseDomain", &["n3"]), err("EACCES"));
    assert_eq!(h.set_perms(t, "@bogus", &["n0"]), err("EINVAL"));
    assert_eq!(h.set_perms(t, "@releaseDomain", &["n0", "r3"]), ok());
    assert_eq!(h.get_perms(t, "@releaseDomain"), Err("EINVAL".into()), "not a node in 4.17");
}
