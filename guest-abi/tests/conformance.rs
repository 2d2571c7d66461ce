//! ABI conformance: every struct and constant of guest-abi against Xen's own
//! public headers (Debian `libxen-dev`, /usr/include/xen), through a C probe
//! compiled here. Fails on the first mismatch with both values and the
//! header; fails if any definition escapes the registry.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use guest_abi::registry;

const HEADERS: &[&str] = &[
    "xen/xen.h",
    "xen/errno.h",
    "xen/elfnote.h",
    "xen/event_channel.h",
    "xen/grant_table.h",
    "xen/memory.h",
    "xen/sched.h",
    "xen/vcpu.h",
    "xen/callback.h",
    "xen/physdev.h",
    "xen/version.h",
    "xen/features.h",
    "xen/io/ring.h",
    "xen/io/blkif.h",
    "xen/io/netif.h",
    "xen/io/console.h",
    "xen/io/xs_wire.h",
    "xen/io/xenbus.h",
];

fn probe_source() -> String {
    let mut c = String::from(
        "#define __XEN_INTERFACE_VERSION__ 0x00040e00\n#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n",
    );
    for h in HEADERS {
        let _ = writeln!(c, "#include <{h}>");
    }
    c.push_str("int main(void) {\n");
    for k in registry::consts() {
        let _ = writeln!(c, "  printf(\"C|%s|%lld\\n\", \"{}\", (long long)({}));", k.c, k.c);
    }
    for s in registry::structs() {
        let _ = writeln!(c, "  printf(\"S|%s|%zu|%zu\\n\", \"{0}\", sizeof({0}), _Alignof({0}));", s.c);
        for f in s.fields.iter().filter(|f| !f.c.is_empty()) {
            let _ = writeln!(
                c,
                "  printf(\"F|%s.%s|%zu|%zu\\n\", \"{0}\", \"{1}\", offsetof({0}, {1}), sizeof(((({0} *)0)->{1})));",
                s.c, f.c
            );
            if f.signed.is_some() {
                let elem = if f.array { "[0]" } else { "" };
                let _ = writeln!(
                    c,
                    "  printf(\"G|%s.%s|%d\\n\", \"{0}\", \"{1}\", (int)((__typeof__((({0} *)0)->{1}{2}))-1 < 0));",
                    s.c, f.c, elem
                );
            }
        }
    }
    c.push_str("  return 0;\n}\n");
    c
}

fn run_probe() -> String {
    assert!(
        Path::new("/usr/include/xen/xen.h").exists(),
        "Xen's public headers are missing: install them with `apt-get install libxen-dev`"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    let bin = dir.join("probe");
    std::fs::write(&src, probe_source()).unwrap();
    let cc = Command::new("cc").arg("-w").arg("-o").arg(&bin).arg(&src).output().expect("a C compiler (cc)");
    assert!(
        cc.status.success(),
        "the probe does not compile against Xen's headers:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&bin).output().expect("run the probe");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn abi_matches_xen_headers() {
    let output = run_probe();
    let mut c_values: HashMap<String, Vec<i64>> = HashMap::new();
    for line in output.lines() {
        let mut parts = line.split('|');
        let kind = parts.next().unwrap();
        let name = parts.next().unwrap().to_string();
        let nums: Vec<i64> = parts.map(|p| p.parse().unwrap()).collect();
        c_values.insert(format!("{kind}|{name}"), nums);
    }
    let (mut s, mut f, mut k) = (0, 0, 0);
    for c in registry::consts() {
        let got = &c_values[&format!("C|{}", c.c)];
        assert_eq!(
            c.value as i64, got[0],
            "constant {} (C {}, xen/{}): Rust {:#x}, Xen {:#x}",
            c.rust, c.c, c.header, c.value as i64, got[0]
        );
        k += 1;
    }
    for st in registry::structs() {
        let got = &c_values[&format!("S|{}", st.c)];
        assert_eq!(
            (st.size as i64, st.align as i64),
            (got[0], got[1]),
            "struct {} ({}, xen/{}): Rust size/align {}/{}, Xen {}/{}",
            st.rust,
            st.c,
            st.header,
            st.size,
            st.align,
            got[0],
            got[1]
        );
        s += 1;
        let mut end = 0;
        for field in st.fields {
            // Padding fields must fill exactly the gaps between C members.
            assert_eq!(field.offset, end, "struct {}: field {} does not follow its predecessor", st.rust, field.rust);
            end = field.offset + field.size;
            if field.c.is_empty() {
                continue;
            }
            let got = &c_values[&format!("F|{}.{}", st.c, field.c)];
            assert_eq!(
                (field.offset as i64, field.size as i64),
                (got[0], got[1]),
                "field {}.{} ({}.{}, xen/{}): Rust offset/size {}/{}, Xen {}/{}",
                st.rust,
                field.rust,
                st.c,
                field.c,
                st.header,
                field.offset,
                field.size,
                got[0],
                got[1]
            );
            if let Some(signed) = field.signed {
                let got = &c_values[&format!("G|{}.{}", st.c, field.c)];
                assert_eq!(
                    i64::from(signed),
                    got[0],
                    "field {}.{} ({}.{}, xen/{}): Rust signed={}, Xen signed={}",
                    st.rust,
                    field.rust,
                    st.c,
                    field.c,
                    st.header,
                    signed,
                    got[0] != 0
                );
            }
            f += 1;
        }
        assert_eq!(end, st.size, "struct {}: fields do not cover the struct", st.rust);
    }
    println!("abi-conformance: {s} structs, {f} fields, {k} constants match Xen 4.17 headers");
    assert!(s >= 60 && f >= 400 && k >= 400, "coverage below the bar: {s} structs, {f} fields, {k} constants");
}

/// Every `pub const` and wire `pub struct` in the crate goes through the
/// registering macros, so the probe checks all of them.
#[test]
fn every_definition_is_registered() {
    let registered: Vec<&str> = registry::structs().map(|s| s.rust).collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let is_registry = path.ends_with("registry.rs");
            let mut in_wire_struct = false;
            for line in text.lines() {
                let t = line.trim_start();
                if t.starts_with("xen_struct!") {
                    in_wire_struct = true;
                }
                if let Some(rest) = t.strip_prefix("pub struct ") {
                    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if in_wire_struct {
                        assert!(
                            registered.contains(&name.as_str()),
                            "{}: {name} is not in its module's STRUCTS",
                            path.display()
                        );
                        in_wire_struct = false;
                    }
                }
                if t.starts_with("pub const ")
                    && !is_registry
                    && !t.starts_with("pub const fn")
                    && !t.starts_with("pub const STRUCTS")
                {
                    panic!(
                        "{}: `{t}` is not declared through xen_consts!, so the probe cannot check it",
                        path.display()
                    );
                }
            }
        }
    }
}
