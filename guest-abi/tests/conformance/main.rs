//! ABI conformance: every struct, field and constant of guest-abi against
//! Xen's own public headers (Debian `libxen-dev`, `/usr/include/xen`),
//! through a C probe compiled here. Fails on the first mismatch with the
//! definition, both values and the header; fails if any definition escapes
//! the registry (and so the probe).

mod probe;
mod scan;

use probe::{Expect, Kind};

/// The bar issue 3 sets: structs, fields and constants checked.
const MIN_STRUCTS: usize = 60;
const MIN_FIELDS: usize = 400;
const MIN_CONSTS: usize = 400;

#[test]
fn abi_matches_xen_headers() {
    let checks = probe::checks();
    let values = probe::run(&checks);
    for (check, got) in checks.iter().zip(&values) {
        let ok = match &check.expect {
            Expect::Str(want) => got == want,
            Expect::Int(want) => got.parse::<i64>().ok() == Some(*want),
            Expect::AtMost(max) => got.parse::<i64>().is_ok_and(|v| v <= *max),
            Expect::AtLeast(min) => got.parse::<i64>().is_ok_and(|v| v >= *min),
        };
        assert!(ok, "{}: guest-abi says {:?}, Xen's {} says {got:?}", check.what, check.expect, check.header);
    }
    let count = |kind: Kind| checks.iter().filter(|c| c.kind == kind).count();
    let (s, f, c) = (count(Kind::Struct), count(Kind::Field), count(Kind::Const));
    println!("abi-conformance: {s} structs, {f} fields, {c} constants match Xen 4.17 headers");
    assert!(
        s >= MIN_STRUCTS && f >= MIN_FIELDS && c >= MIN_CONSTS,
        "coverage below the bar ({MIN_STRUCTS} structs, {MIN_FIELDS} fields, {MIN_CONSTS} constants)"
    );
}

/// Padding fields fill exactly the gaps between C members, and the fields
/// cover the whole struct, so no byte of a mirrored struct goes unchecked.
#[test]
fn fields_tile_every_struct() {
    for s in guest_abi::registry::structs() {
        let mut end = 0;
        for f in s.fields {
            assert_eq!(f.offset, end, "struct {}: field {} does not follow its predecessor", s.rust, f.rust);
            end = f.offset + f.size;
        }
        assert_eq!(end, s.size, "struct {}: its fields do not cover it", s.rust);
    }
}

/// Every `pub const`, table and wire `pub struct` of the crate goes through
/// the registering macros, so the probe checks all of them.
#[test]
fn every_definition_is_registered() {
    let problems = scan::unregistered_definitions();
    assert!(problems.is_empty(), "definitions the probe does not check:\n{}", problems.join("\n"));
}
