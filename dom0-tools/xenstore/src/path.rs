//! Node names: validation, relative-path resolution and tree arithmetic.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `is_valid_nodename`,
//! `valid_chars`, `canonicalize`, `get_parent`, `basename`, and
//! `xenstored_watch.c` `is_child` (Xen 4.17). A valid name starts with `/`,
//! has no `//`, no trailing `/` (except the root), only the characters
//! `[A-Za-z0-9-/_@]`, at most `XENSTORE_ABS_PATH_MAX` bytes, and at most
//! the path-length quota bytes after a `/local/domain/<id>/` prefix.

use guest_abi::io::xs_wire::XENSTORE_ABS_PATH_MAX;

/// The prefix under which each domain's home lives.
const LOCAL_DOMAIN: &[u8] = b"/local/domain/";

/// `valid_chars`: every byte is one of `[A-Za-z0-9-/_@]`.
fn valid_chars(name: &[u8]) -> bool {
    name.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@'))
}

/// The offset just after a leading `/local/domain/<id>/`, or 0 (Xen's
/// `sscanf(node, "/local/domain/%5u/%n", ...)`).
fn local_offset(name: &[u8]) -> usize {
    let Some(rest) = name.strip_prefix(LOCAL_DOMAIN) else {
        return 0;
    };
    // `%5u`: at most five characters, an optional sign then digits.
    let mut len = 0;
    if matches!(rest.first(), Some(b'+' | b'-')) {
        len = 1;
    }
    let digits = rest.iter().skip(len).take(5 - len).take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return 0;
    }
    len += digits;
    match rest.get(len) {
        Some(b'/') => LOCAL_DOMAIN.len() + len + 1,
        _ => 0,
    }
}

/// `is_valid_nodename`: whether `name` (already canonical) may name a node.
/// `max_path_len` is the path-length quota (`quota_max_path_len`).
pub fn is_valid_nodename(name: &[u8], max_path_len: usize) -> bool {
    if name.first() != Some(&b'/') {
        return false;
    }
    if name.len() > 1 && name.last() == Some(&b'/') {
        return false;
    }
    if name.windows(2).any(|w| w == b"//") {
        return false;
    }
    if name.len() > XENSTORE_ABS_PATH_MAX as usize {
        return false;
    }
    if name.len() > local_offset(name).saturating_add(max_path_len) {
        return false;
    }
    valid_chars(name)
}

/// Whether `name` is a special watch path (`@introduceDomain`, ...).
pub fn is_special(name: &[u8]) -> bool {
    name.first() == Some(&b'@')
}

/// `canonicalize`: an absolute or special name stays as it is, a relative
/// one is resolved under `implicit` (the connection's home).
pub fn canonicalize(implicit: &str, name: &[u8]) -> Vec<u8> {
    if matches!(name.first(), Some(b'/' | b'@')) {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(implicit.len() + 1 + name.len());
    out.extend_from_slice(implicit.as_bytes());
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// `get_parent`: the parent of a valid node name (`/` for top-level nodes
/// and for the root itself).
pub fn parent(name: &str) -> &str {
    match name.get(1..).and_then(|rest| rest.rfind('/')) {
        Some(slash) => name.get(..slash + 1).unwrap_or("/"),
        None => "/",
    }
}

/// `basename`: the last component of a node name.
pub fn basename(name: &str) -> &str {
    match name.rfind('/') {
        Some(slash) => name.get(slash + 1..).unwrap_or(""),
        None => name,
    }
}

/// The name of `child` under `parent`.
pub fn child_name(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// `is_child`: whether `child` is `parent` or lies below it.
pub fn is_child(child: &[u8], parent: &[u8]) -> bool {
    if parent == b"/" {
        return true;
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.first() == Some(&b'/'),
        None => false,
    }
}

/// The home of domain `domid` (`talloc_domain_path`).
pub fn domain_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 2048;

    #[test]
    fn valid_names_follow_xen() {
        assert!(is_valid_nodename(b"/", MAX));
        assert!(is_valid_nodename(b"/local/domain/0/name", MAX));
        assert!(is_valid_nodename(b"/a-b_c@d/E9", MAX));
        assert!(!is_valid_nodename(b"", MAX));
        assert!(!is_valid_nodename(b"local", MAX));
        assert!(!is_valid_nodename(b"/a/", MAX));
        assert!(!is_valid_nodename(b"/a//b", MAX));
        assert!(!is_valid_nodename(b"/a b", MAX));
        assert!(!is_valid_nodename(b"/a.b", MAX));
        assert!(!is_valid_nodename(b"/a\xffb", MAX));
        assert!(!is_valid_nodename(b"@introduceDomain", MAX));
    }

    #[test]
    fn absolute_limit_and_path_quota() {
        let long = format!("/{}", "a".repeat(3071));
        assert!(is_valid_nodename(long.as_bytes(), 4000));
        let longer = format!("/{}", "a".repeat(3072));
        assert!(!is_valid_nodename(longer.as_bytes(), 4000), "XENSTORE_ABS_PATH_MAX");
        let path = format!("/{}", "a".repeat(MAX - 1));
        assert!(is_valid_nodename(path.as_bytes(), MAX));
        let path = format!("/{}", "a".repeat(MAX));
        assert!(!is_valid_nodename(path.as_bytes(), MAX));
        // The quota counts only what follows /local/domain/<id>/.
        let home = format!("/local/domain/12345/{}", "a".repeat(MAX));
        assert!(is_valid_nodename(home.as_bytes(), MAX));
        let home = format!("/local/domain/12345/{}", "a".repeat(MAX + 1));
        assert!(!is_valid_nodename(home.as_bytes(), MAX));
        let not_home = format!("/local/domain/123456/{}", "a".repeat(MAX));
        assert!(!is_valid_nodename(not_home.as_bytes(), MAX), "%5u reads at most five digits");
    }

    #[test]
    fn canonical_and_tree_arithmetic() {
        assert_eq!(canonicalize("/local/domain/3", b"device/vif"), b"/local/domain/3/device/vif");
        assert_eq!(canonicalize("/local/domain/3", b"/abs"), b"/abs");
        assert_eq!(canonicalize("/local/domain/3", b"@releaseDomain"), b"@releaseDomain");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(basename("/a/b/c"), "c");
        assert_eq!(child_name("/", "tool"), "/tool");
        assert_eq!(child_name("/tool", "xenstored"), "/tool/xenstored");
        assert!(is_child(b"/a/b", b"/a"));
        assert!(is_child(b"/a", b"/a"));
        assert!(!is_child(b"/ab", b"/a"));
        assert!(is_child(b"/anything", b"/"));
        assert_eq!(domain_path(7), "/local/domain/7");
    }
}
