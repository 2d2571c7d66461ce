//! Node requests: the initial tree, read/write/mkdir/rm/directory, paths,
//! reply framing.

mod common;

use common::*;
use guest_abi::io::xs_wire::*;

#[test]
fn initial_tree_is_xens_setup_structure() {
    let mut h = Harness::new();
    let t = h.tools;
    assert_eq!(h.dir(t, "/"), Ok(vec!["tool".into()]));
    assert_eq!(h.dir(t, "/tool"), Ok(vec!["xenstored".into()]));
    assert_eq!(h.dir(t, "/tool/xenstored"), Ok(vec![]));
    assert_eq!(h.get_perms(t, "/"), Ok(vec!["n0".into()]));
    assert_eq!(h.read(t, "/tool"), val(""));
    assert_eq!(h.store.usage(0).unwrap().nodes, 3);
}

#[test]
fn write_creates_parents_and_read_returns_raw_bytes() {
    let mut h = Harness::new();
    let t = h.tools;
    assert_eq!(h.write(t, "/a/b/c", "hello"), ok());
    assert_eq!(h.read(t, "/a/b/c"), val("hello"));
    assert_eq!(h.read(t, "/a/b"), val(""));
    assert_eq!(h.dir(t, "/"), Ok(vec!["tool".into(), "a".into()]), "children keep creation order");
    // The value is everything after the first NUL, NULs included.
    let mut p = z("/bin");
    p.extend_from_slice(b"x\0y");
    assert_eq!(h.request(t, XS_WRITE, 0, &p), ok());
    assert_eq!(h.read(t, "/bin"), Ok(b"x\0y".to_vec()));
    assert_eq!(h.request(t, XS_WRITE, 0, b"/nonul"), err("EINVAL"));
}

#[test]
fn relative_paths_resolve_under_the_connections_home() {
    let mut h = Harness::new();
    let t = h.tools;
    assert_eq!(h.write(t, "name", "Domain-0"), ok());
    assert_eq!(h.read(t, "/local/domain/0/name"), val("Domain-0"));
    let d = h.domain(3);
    h.mkdir(t, "/local/domain/3").unwrap();
    h.set_perms(t, "/local/domain/3", &["n3"]).unwrap();
    assert_eq!(h.write(d, "device/x", "1"), ok());
    assert_eq!(h.read(t, "/local/domain/3/device/x"), val("1"));
    assert_eq!(h.read(d, "device/x"), val("1"));
}

#[test]
fn invalid_names_are_einval() {
    let mut h = Harness::new();
    let t = h.tools;
    for bad in ["/a//b", "/a/", "/a b", "/a.b", "@introduceDomain", ""] {
        assert_eq!(h.write(t, bad, "x"), err("EINVAL"), "{bad:?}");
        assert_eq!(h.read(t, bad), err("EINVAL"), "{bad:?}");
    }
    assert_eq!(h.request(t, XS_READ, 0, b"/a\0/b\0"), err("EINVAL"), "READ takes one argument");
    assert_eq!(h.request(t, XS_READ, 0, b"/a"), err("EINVAL"), "without its NUL");
    let long = format!("/{}", "a".repeat(3072));
    assert_eq!(h.write(t, &long, "x"), err("EINVAL"));
}

#[test]
fn mkdir_rm_and_missing_nodes() {
    let mut h = Harness::new();
    let t = h.tools;
    assert_eq!(h.read(t, "/nope"), err("ENOENT"));
    assert_eq!(h.mkdir(t, "/d/e"), ok());
    assert_eq!(h.mkdir(t, "/d/e"), ok(), "an existing node is fine");
    assert_eq!(h.rm(t, "/d/zz"), ok(), "missing node with existing parent");
    assert_eq!(h.rm(t, "/q/zz"), err("ENOENT"), "missing parent too");
    h.write(t, "/d/e/f", "1").unwrap();
    assert_eq!(h.rm(t, "/d"), ok());
    assert_eq!(h.read(t, "/d/e/f"), err("ENOENT"));
    assert_eq!(h.read(t, "/d"), err("ENOENT"));
    assert_eq!(h.dir(t, "/"), Ok(vec!["tool".into()]));
    assert_eq!(h.rm(t, "/"), err("EINVAL"));
    assert_eq!(h.store.usage(0).unwrap().nodes, 3, "accounting follows removals");
}

#[test]
fn directory_part_pages_children_with_the_generation() {
    let mut h = Harness::new();
    let t = h.tools;
    for i in 0..3 {
        h.write(t, &format!("/p/child{i}"), "").unwrap();
    }
    let gen = h.store.node("/p").unwrap().generation;
    let part = |h: &mut Harness, off: &str| {
        let mut p = z("/p");
        p.extend(z(off));
        h.request(t, XS_DIRECTORY_PART, 0, &p).unwrap()
    };
    assert_eq!(part(&mut h, "0"), format!("{gen}\0child0\0child1\0child2\0\0").into_bytes());
    assert_eq!(part(&mut h, "7"), format!("{gen}\0child1\0child2\0\0").into_bytes());
    assert_eq!(part(&mut h, "21"), format!("{gen}\0\0").into_bytes(), "past the end: empty list");
    assert_eq!(part(&mut h, "-1"), format!("{gen}\0\0").into_bytes());
    assert_eq!(h.request(t, XS_DIRECTORY_PART, 0, b"/p\0"), err("EINVAL"));

    // A long list is split; concatenating the parts gives the list.
    for i in 0..300 {
        h.write(t, &format!("/big/some-rather-long-child-name-{i:04}"), "").unwrap();
    }
    let mut all = Vec::new();
    let mut off = 0;
    loop {
        let mut p = z("/big");
        p.extend(z(&off.to_string()));
        let reply = h.request(t, XS_DIRECTORY_PART, 0, &p).unwrap();
        assert!(reply.len() <= 4096);
        let body = &reply[reply.iter().position(|&b| b == 0).unwrap() + 1..];
        let done = body.ends_with(b"\0\0") || body == b"\0";
        let names = split(body.strip_suffix(b"\0").filter(|_| done).unwrap_or(body));
        off += names.iter().map(|n| n.len() + 1).sum::<usize>();
        all.extend(names);
        if done {
            break;
        }
    }
    assert_eq!(all.len(), 300);
    assert_eq!(h.store.node("/big").unwrap().children, all);
    assert_eq!(h.dir(t, "/big"), Err("E2BIG".into()), "too long for one DIRECTORY");
}

#[test]
fn replies_echo_ids_and_unknown_types_are_enosys() {
    let mut h = Harness::new();
    let t = h.tools;
    let m = h.request_msg(t, XS_GET_DOMAIN_PATH, 0, b"5\0");
    assert_eq!(m.type_, XS_GET_DOMAIN_PATH);
    assert_eq!(m.payload, b"/local/domain/5\0");
    assert_eq!(h.request(t, 20, 0, b""), err("ENOSYS"), "20 was XS_RESTRICT");
    assert_eq!(h.request(t, 999, 0, b""), err("ENOSYS"));
    assert_eq!(h.request(t, XS_WATCH_EVENT, 0, b""), err("ENOSYS"));
    assert_eq!(h.request(t, XS_ERROR, 0, b""), err("ENOSYS"));
    // A tx_id naming no transaction.
    let m = h.request_msg(t, XS_READ, 77, &z("/"));
    assert_eq!((m.type_, m.payload), (XS_ERROR, b"ENOENT\0".to_vec()));
}

#[test]
fn control_commands() {
    let mut h = Harness::new();
    let t = h.tools;
    assert_eq!(h.request(t, XS_CONTROL, 0, b"check\0"), ok());
    assert_eq!(h.request(t, XS_CONTROL, 0, b"print\0hello\0"), ok());
    assert!(h.platform.logs.iter().any(|l| l == "hello"));
    assert_eq!(h.request(t, XS_CONTROL, 0, b"bogus\0"), err("EINVAL"));
    assert_eq!(h.request(t, XS_CONTROL, 0, b""), err("EINVAL"));
    let quota = String::from_utf8(h.request(t, XS_CONTROL, 0, b"quota\0").unwrap()).unwrap();
    assert!(quota.contains("nodes            :     1000 Nodes per domain"), "{quota}");
    assert_eq!(h.request(t, XS_CONTROL, 0, b"quota\0nodes\x005\0"), ok());
    assert_eq!(h.store.config().quotas.nodes, 5);
    let dom0 = String::from_utf8(h.request(t, XS_CONTROL, 0, b"quota\x000\0").unwrap()).unwrap();
    assert!(dom0.starts_with("Domain 0:\nnodes           :        3\n"), "{dom0}");
    let d = h.domain(4);
    assert_eq!(h.request(d, XS_CONTROL, 0, b"check\0"), err("EACCES"));
}
