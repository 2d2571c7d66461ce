//! The C probe: one check per registered definition, each a C expression
//! printed with its id, and what the Rust side says it must be.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use guest_abi::registry::{self, Field, FieldCheck, StructLayout};

/// Xen's public headers the crate mirrors, in include order.
pub const HEADERS: &[&str] = &[
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
    "xen/platform.h",
    "xen/arch-x86/xen-mca.h",
    "xen/version.h",
    "xen/features.h",
    "xen/io/ring.h",
    "xen/io/blkif.h",
    "xen/io/netif.h",
    "xen/io/console.h",
    "xen/io/xs_wire.h",
    "xen/io/xenbus.h",
];

/// Headers Xen compiles for its tools only. `__XEN_TOOLS__` changes other
/// headers too (extra union member names, tools-only types), so their
/// checks go into a probe of their own with it defined first.
pub const TOOLS_HEADERS: &[&str] = &["xen/domctl.h", "xen/sysctl.h"];

/// Whether a check of `header` (as the registry names it) belongs in the
/// tools probe: the tools headers, and the tools-only parts of others
/// (registered as "header.h, tools only").
fn is_tools(header: &str) -> bool {
    header.ends_with(", tools only") || TOOLS_HEADERS.iter().any(|h| h.strip_prefix("xen/") == Some(header))
}

/// What kind of definition a check belongs to, for the summary counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The size (and alignment) of a struct.
    Struct,
    /// The offset and size of a C member.
    Field,
    /// A constant (integer or string, alone or in a table).
    Const,
    /// A further property (signedness, element type, table length...).
    Detail,
}

/// The value a check expects from the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this integer.
    Int(i64),
    /// At most this integer.
    AtMost(i64),
    /// At least this integer.
    AtLeast(i64),
    /// Exactly this string.
    Str(&'static str),
}

/// One comparison of a Rust definition with a C expression.
#[derive(Clone, Debug)]
pub struct Check {
    /// What is compared, in Rust and C terms.
    pub what: String,
    /// The header the C side comes from.
    pub header: &'static str,
    /// The C expression (an integer, or a `const char *` for strings).
    pub c_expr: String,
    /// The Rust side.
    pub expect: Expect,
    /// For the summary.
    pub kind: Kind,
}

impl Check {
    fn int(kind: Kind, what: String, header: &'static str, c_expr: String, value: i64) -> Self {
        Check { what, header, c_expr, expect: Expect::Int(value), kind }
    }
}

/// Every check the registry calls for, in registry order.
pub fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    for k in registry::consts() {
        let c = index(k.c, k.index);
        let what = format!("constant {}{} (C `{c}`)", k.rust, k.index.map(|i| format!("[{i}]")).unwrap_or_default());
        out.push(Check::int(Kind::Const, what, k.header, c, k.value as i64));
    }
    for k in registry::strs() {
        let c = index(k.c, k.index);
        let what = format!("string {}{} (C `{c}`)", k.rust, k.index.map(|i| format!("[{i}]")).unwrap_or_default());
        out.push(Check { what, header: k.header, c_expr: c, expect: Expect::Str(k.value), kind: Kind::Const });
    }
    for t in registry::tables() {
        let what = format!("length of table {} (C `{}`)", t.rust, t.c_len);
        out.push(Check::int(Kind::Detail, what, t.header, t.c_len.to_string(), t.len as i64));
    }
    for s in registry::structs() {
        struct_checks(s, &mut out);
    }
    out
}

fn index(c: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => c.replace('#', &i.to_string()),
        None => c.to_string(),
    }
}

fn struct_checks(s: &StructLayout, out: &mut Vec<Check>) {
    let c = s.c;
    let (size_expr, size_what) = match s.tail {
        Some(tail) => (format!("offsetof({c}, {tail})"), format!("size of {} (C `{c}` up to `{tail}`)", s.rust)),
        None => (format!("sizeof({c})"), format!("size of {} (C `{c}`)", s.rust)),
    };
    out.push(Check::int(Kind::Struct, size_what, s.header, size_expr, s.size as i64));
    let align = format!("_Alignof({c})");
    let what = format!("alignment of {} (C `{c}`)", s.rust);
    out.push(match s.tail {
        // A head-only mirror may be less aligned than the whole C struct.
        Some(_) => {
            Check { what, header: s.header, c_expr: align, expect: Expect::AtLeast(s.align as i64), kind: Kind::Detail }
        }
        None => Check::int(Kind::Detail, what, s.header, align, s.align as i64),
    });
    for f in s.fields.iter().filter(|f| !f.c.is_empty()) {
        field_checks(s, f, out);
    }
}

fn field_checks(s: &StructLayout, f: &Field, out: &mut Vec<Check>) {
    let (c, h) = (s.c, s.header);
    let member = format!("((({c} *)0)->{})", f.c);
    let name = |what: &str| format!("{what} of {}.{} (C `{c}.{}`)", s.rust, f.rust, f.c);
    out.push(Check::int(Kind::Field, name("offset"), h, format!("offsetof({c}, {})", f.c), f.offset as i64));
    out.push(Check::int(Kind::Detail, name("size"), h, format!("sizeof{member}"), f.size as i64));
    let elem = if f.array { format!("{member}[0]") } else { member.clone() };
    match f.check {
        FieldCheck::Typed => {
            if f.signed.is_none() && f.c_type.is_none() {
                // A Rust type the probe cannot compare: report it as a
                // failed check rather than skip it.
                let what = name("type (neither integer nor mirrored struct; mark it union/chars/handle)");
                out.push(Check::int(Kind::Detail, what, h, "0".into(), 1));
            }
            if let Some(signed) = f.signed {
                let e = format!("(__typeof__({elem}))-1 < 0");
                out.push(Check::int(Kind::Detail, name("signedness"), h, e, i64::from(signed)));
            }
            if f.array {
                out.push(Check::int(
                    Kind::Detail,
                    name("element size"),
                    h,
                    format!("sizeof({elem})"),
                    f.elem_size as i64,
                ));
            }
            if let Some(ty) = f.c_type {
                let e = format!("__builtin_types_compatible_p(__typeof__({elem}), {ty})");
                out.push(Check::int(Kind::Detail, name(&format!("type `{ty}`")), h, e, 1));
            }
        }
        FieldCheck::Chars => {
            let e = format!("__builtin_types_compatible_p(__typeof__({member}[0]), char)");
            out.push(Check::int(Kind::Detail, name("type `char[]`"), h, e, 1));
        }
        FieldCheck::Handle => {
            let e = format!("sizeof(*{member}.p)");
            out.push(Check::int(Kind::Detail, name("guest handle's element size"), h, e, f.elem_size as i64));
        }
        FieldCheck::Union => {}
    }
    for m in f.members {
        let what = format!("offset of union member {}.{} (C `{c}.{m}`)", s.rust, f.rust);
        out.push(Check::int(Kind::Field, what, h, format!("offsetof({c}, {m})"), f.offset as i64));
        let what = format!("size of union member {}.{} (C `{c}.{m}`), at most", s.rust, f.rust);
        let e = format!("sizeof((({c} *)0)->{m})");
        out.push(Check { what, header: h, c_expr: e, expect: Expect::AtMost(f.size as i64), kind: Kind::Detail });
    }
}

/// The C source of a probe: check `i` prints `i|value`, for the checks of
/// the tools headers (`tools`) or of the others.
pub fn source(checks: &[Check], tools: bool) -> String {
    let mut c = String::from(if tools { "#define __XEN_TOOLS__\n" } else { "" });
    c.push_str("#define __XEN_INTERFACE_VERSION__ 0x00040e00\n");
    // <errno.h> before xs_wire.h, which defines `xsd_errors` under `#ifdef EINVAL`.
    c.push_str("#include <errno.h>\n#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n");
    let extra: &[&str] = if tools { TOOLS_HEADERS } else { &[] };
    for h in HEADERS.iter().chain(extra) {
        let _ = writeln!(c, "#include <{h}>");
    }
    c.push_str("int main(void) {\n");
    for (i, k) in checks.iter().enumerate().filter(|(_, k)| is_tools(k.header) == tools) {
        let what = k.what.replace("*/", "* /");
        match k.expect {
            Expect::Str(_) => {
                let _ = writeln!(c, "  printf(\"%d|%s\\n\", {i}, {}); /* {what} */", k.c_expr);
            }
            _ => {
                let _ = writeln!(c, "  printf(\"%d|%lld\\n\", {i}, (long long)({})); /* {what} */", k.c_expr);
            }
        }
    }
    c.push_str("  return 0;\n}\n");
    c
}

/// Compiles and runs both probes; their output, one line per check.
pub fn run(checks: &[Check]) -> Vec<String> {
    assert!(
        Path::new("/usr/include/xen/xen.h").exists(),
        "Xen's public headers are missing (/usr/include/xen): install them with `apt-get install libxen-dev`"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = vec![String::new(); checks.len()];
    for (name, tools) in [("probe", false), ("probe-tools", true)] {
        let src = dir.join(format!("{name}.c"));
        let bin = dir.join(name);
        std::fs::write(&src, source(checks, tools)).unwrap();
        let cc = Command::new("cc").arg("-w").arg("-o").arg(&bin).arg(&src).output().expect("run the C compiler `cc`");
        assert!(
            cc.status.success(),
            "the probe {} does not compile against Xen's headers (a Rust definition names a C member or type that \
             does not exist, or has the wrong kind of type; the comment on the failing line says which):\n{}",
            src.display(),
            String::from_utf8_lossy(&cc.stderr)
        );
        let out = Command::new(&bin).output().expect("run the probe");
        assert!(out.status.success(), "the probe failed: {}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (id, value) = line.split_once('|').unwrap();
            lines[id.parse::<usize>().unwrap()] = value.to_string();
        }
    }
    lines
}
