//! Domain life cycle: introduce, release, shutdown, death, cleanup.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;
use xenstore::DomainState;

#[test]
fn introduce_maps_binds_and_announces() {
    let mut h = Harness::new();
    let t = h.tools;
    let w = h.socket();
    h.watch(w, "@introduceDomain", "i").unwrap();
    h.events(w);
    assert_eq!(h.request(t, XS_IS_DOMAIN_INTRODUCED, 0, b"3\0"), val("F\0"));
    h.platform.domains.insert(3, DomainState::Running);
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"3\x004660\x0017\0"), ok());
    assert_eq!(h.platform.mapped, vec![(3, 4660, 17)]);
    assert_eq!(h.platform.resets, vec![3], "ring indices zeroed");
    assert_eq!(h.request(t, XS_IS_DOMAIN_INTRODUCED, 0, b"3\0"), val("T\0"));
    assert_eq!(h.request(t, XS_IS_DOMAIN_INTRODUCED, 0, b"32752\0"), val("T\0"), "DOMID_SELF");
    assert_eq!(h.events(w), vec![("@introduceDomain".into(), "i".into())]);
    // Again: only the event channel is rebound, nothing is announced.
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"3\x004660\x0018\0"), ok());
    assert_eq!(h.platform.rebound, vec![(3, 18)]);
    assert_eq!(h.platform.mapped.len(), 1);
    assert_eq!(h.events(w), vec![]);
}

#[test]
fn introduce_checks_its_arguments_and_caller() {
    let mut h = Harness::new();
    let t = h.tools;
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"3\x001\0"), err("EINVAL"));
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"3\x001\x000\0"), err("EINVAL"), "port 0");
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"40000\x001\x005\0"), err("EINVAL"), "reserved domid");
    h.platform.fail_map = Some(guest_abi::XenError::Enoent);
    assert_eq!(h.request(t, XS_INTRODUCE, 0, b"3\x001\x005\0"), err("ENOENT"), "the platform's error");
    assert!(!h.store.is_introduced(3));
    h.platform.fail_map = None;
    let d = h.domain(4);
    assert_eq!(h.request(d, XS_INTRODUCE, 0, b"5\x001\x005\0"), err("EACCES"));
    assert_eq!(h.request(d, XS_RELEASE, 0, b"4\0"), err("EACCES"));
    assert_eq!(h.request(d, XS_IS_DOMAIN_INTRODUCED, 0, b"4\0"), err("EACCES"));
    assert_eq!(h.request(d, XS_GET_DOMAIN_PATH, 0, b"4\0"), val("/local/domain/4\0"), "anyone may ask");
}

#[test]
fn release_forgets_the_domain_and_its_nodes() {
    let mut h = Harness::new();
    let t = h.tools;
    let w = h.socket();
    let d = h.domain(3);
    h.mkdir(t, "/local/domain/3").unwrap();
    h.set_perms(t, "/local/domain/3", &["n0", "b3"]).unwrap();
    h.write(d, "mine/a", "1").unwrap();
    h.write(t, "/local/domain/3/tools-node", "1").unwrap();
    h.watch(w, "@releaseDomain", "r").unwrap();
    h.watch(w, "/local/domain/3", "home").unwrap();
    h.events(w);
    assert_eq!(h.request(t, XS_RELEASE, 0, b"0\0"), err("EINVAL"), "not dom0");
    assert_eq!(h.request(t, XS_RELEASE, 0, b"9\0"), err("ENOENT"));
    assert_eq!(h.request(t, XS_RELEASE, 0, b"3\0"), ok());
    assert!(!h.store.is_introduced(3));
    assert_eq!(h.platform.unmapped, vec![3]);
    assert_eq!(h.read(t, "/local/domain/3/mine"), err("ENOENT"), "what 3 owned is gone");
    assert_eq!(h.read(t, "/local/domain/3/tools-node"), val("1"), "the rest stays");
    let mut events = h.events(w);
    events.sort();
    assert_eq!(events, vec![("/local/domain/3/mine".into(), "home".into()), ("@releaseDomain".into(), "r".into())]);
    assert_eq!(h.store.usage(3), None);
}

#[test]
fn shutdown_is_announced_once_and_death_cleans_up() {
    let mut h = Harness::new();
    let t = h.tools;
    let w = h.socket();
    let d = h.domain(2);
    h.mkdir(t, "/local/domain/2").unwrap();
    h.set_perms(t, "/local/domain/2", &["n2"]).unwrap();
    h.write(d, "x", "1").unwrap();
    h.watch(d, "x", "dx").unwrap();
    h.watch(w, "@releaseDomain", "r").unwrap();
    h.events(w);
    h.events(d);

    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(w), vec![], "nothing changed");
    h.platform.domains.insert(2, DomainState::Shutdown);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "r".into())]);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(w), vec![], "once per shutdown");
    assert!(h.store.is_introduced(2), "a shut down domain is still served");
    assert_eq!(h.read(d, "x"), val("1"));
    // RESUME lets the next shutdown be announced.
    assert_eq!(h.request(t, XS_RESUME, 0, b"2\0"), ok());
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "r".into())]);

    h.platform.domains.insert(2, DomainState::Dying);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "r".into())]);
    assert!(!h.store.is_introduced(2));
    assert_eq!(h.platform.unmapped, vec![2]);
    assert_eq!(h.read(t, "/local/domain/2"), err("ENOENT"), "its home was its own");
    assert!(h.store.connections().iter().all(|&c| c != d));
    assert_eq!(h.store.usage(2), None);
}

#[test]
fn vanished_domains_lose_their_nodes_without_an_event() {
    let mut h = Harness::new();
    let t = h.tools;
    let w = h.socket();
    h.platform.domains.insert(8, DomainState::Running);
    h.write(t, "/owned-by-8", "x").unwrap();
    h.set_perms(t, "/owned-by-8", &["n8"]).unwrap();
    assert_eq!(h.store.usage(8).unwrap().nodes, 1);
    h.watch(w, "@releaseDomain", "r").unwrap();
    h.events(w);
    h.platform.domains.remove(&8);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.read(t, "/owned-by-8"), err("ENOENT"));
    assert_eq!(h.events(w), vec![], "8 was never introduced");
}

#[test]
fn keep_orphans_hands_nodes_to_the_privileged_domain() {
    let config = xenstore::Config { keep_orphans: true, ..Default::default() };
    let mut h = Harness::with_config(config);
    let t = h.tools;
    let d = h.domain(2);
    h.mkdir(t, "/local/domain/2").unwrap();
    h.set_perms(t, "/local/domain/2", &["n2"]).unwrap();
    h.write(d, "x", "1").unwrap();
    h.platform.domains.remove(&2);
    h.store.check_domains(&mut h.platform);
    assert_eq!(h.read(t, "/local/domain/2/x"), val("1"));
    assert_eq!(h.get_perms(t, "/local/domain/2/x"), Ok(vec!["n0".into()]));
}

#[test]
fn dom0_ring_connection_is_privileged_and_at_home_in_local_domain_0() {
    let mut h = Harness::new();
    let dom0 = h.store.add_domain_connection(0);
    assert!(h.store.is_introduced(0));
    assert_eq!(h.write(dom0, "memory/target", "1024"), ok());
    assert_eq!(h.read(h.tools, "/local/domain/0/memory/target"), val("1024"));
    assert_eq!(h.read(dom0, "/tool/xenstored"), val(""));
    h.store.check_domains(&mut h.platform);
    assert!(h.store.is_introduced(0));
}
