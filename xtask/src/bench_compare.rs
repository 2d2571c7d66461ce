//! `cargo xtask bench --compare FILE`: the change of every row against an
//! earlier `results.json`, so that a commit that made something slower
//! shows.
//!
//! Reads the line-per-row JSON that `cargo xtask bench` writes (no JSON
//! library in xtask): per section (`operations`, `linux`, `drivers`,
//! `scaling`, ...) each row's xenish and Xen values.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// (section, row, column) to value.
type Values = BTreeMap<(String, String, String), f64>;

/// The number after `"key": ` in `text`, if it is one.
fn number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &text[at..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The string after `"key": "` in `text`.
fn string<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("\"{key}\": \""))? + key.len() + 5;
    let rest = &text[at..];
    Some(&rest[..rest.find('"')?])
}

/// Whether the results were measured with `--deterministic` (`None` for
/// files that do not say).
fn deterministic(json: &str) -> Option<bool> {
    json.lines().find_map(|l| l.contains("\"deterministic\": ").then(|| l.contains("true")))
}

/// The rows of a `results.json`.
fn values(json: &str) -> Values {
    let mut out = Values::new();
    let mut section = String::new();
    for line in json.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('"').and_then(|r| r.strip_suffix("\": [")) {
            section = name.to_string();
            continue;
        }
        let Some(row) = string(t, "op").or_else(|| string(t, "row")) else { continue };
        let mut put = |column: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.insert((section.clone(), row.to_string(), column.to_string()), v);
            }
        };
        if section == "drivers" {
            // `"xenish": { "ours": A, "linux": B }, "xen": { ... }`.
            for hv in ["xenish", "xen"] {
                let Some(at) = t.find(&format!("\"{hv}\": {{")) else { continue };
                let part = &t[at..];
                let part = &part[..part.find('}').unwrap_or(part.len())];
                put(&format!("{hv} (ours)"), number(part, "ours"));
                put(&format!("{hv} (Linux's)"), number(part, "linux"));
            }
        } else {
            put("xenish", number(t, "xenish"));
            put("xenish_unpinned", number(t, "xenish_unpinned"));
            put("xen", number(t, "xen"));
            put("xen_nomit", number(t, "xen_nomit"));
        }
    }
    out
}

/// Whether a larger value is better in this row (throughput, IOPS).
fn larger_is_better(section: &str, row: &str) -> bool {
    (section == "drivers" && !row.contains("ping")) || section == "scaling"
}

/// The comparison of `now` against `earlier` (both `results.json` texts),
/// one line per row and column both have.
pub fn report(earlier: &str, now: &str) -> String {
    let (old, new) = (values(earlier), values(now));
    let mut out = String::from("\nChange against the earlier results (new / old; + is worse):\n");
    match (deterministic(earlier), deterministic(now)) {
        (Some(a), Some(b)) if a != b => {
            out.push_str("  warning: one run is --deterministic and the other is not: the units differ\n")
        }
        (None, _) => out.push_str("  note: the earlier file does not say whether it was --deterministic\n"),
        _ => {}
    }
    let _ =
        writeln!(out, "  {:<14} {:<28} {:<18} {:>12} {:>12} {:>8}", "section", "row", "column", "old", "new", "change");
    let mut shown = 0;
    for ((section, row, column), n) in &new {
        let Some(o) = old.get(&(section.clone(), row.clone(), column.clone())) else { continue };
        let change = if *o != 0.0 { (n / o - 1.0) * 100.0 } else { 0.0 };
        // `+ 0.0`: no "-0.0%".
        let worse = if larger_is_better(section, row) { -change } else { change } + 0.0;
        let _ = writeln!(out, "  {section:<14} {row:<28} {column:<18} {o:>12} {n:>12} {worse:>+7.1}%");
        shown += 1;
    }
    if shown == 0 {
        out.push_str("  (no row in common)\n");
    }
    out
}

#[cfg(test)]
mod tests_ {
    use super::*;

    const OLD: &str = r#"{
  "unit": "TSC cycles (median of per-boot medians)",
  "deterministic": true,
  "runs": 1,
  "operations": [
    { "op": "null_hypercall", "xenish": 800, "xen": 315 },
    { "op": "grant_copy_4k", "xenish": null, "xen": 1770 }
  ],
  "drivers": [
    { "row": "net_tcp_tx", "unit": "Mbit/s", "xenish": { "ours": 20.000, "linux": 40.000 }, "xen": { "ours": 10.000, "linux": null } }
  ],
  "sections": ["hypercalls", "drivers"]
}"#;

    const NEW: &str = r#"{
  "deterministic": true,
  "operations": [
    { "op": "null_hypercall", "xenish": 600, "xen": 315, "xen_nomit": 300 },
    { "op": "grant_copy_4k", "xenish": 2000, "xen": 1770, "xen_nomit": 1700 }
  ],
  "linux": [
    { "row": "fork_exit", "xenish": 1, "xen": 2, "xen_nomit": 2 }
  ],
  "drivers": [
    { "row": "net_tcp_tx", "unit": "Mbit/s", "xenish": { "ours": 10.000, "linux": 40.000 }, "xen": { "ours": 10.000, "linux": 5.0 } }
  ],
  "sections": ["hypercalls", "linux", "drivers"]
}"#;

    #[test]
    fn reads_every_section() {
        let v = values(NEW);
        let get = |s: &str, r: &str, c: &str| v.get(&(s.into(), r.into(), c.into())).copied();
        assert_eq!(get("operations", "null_hypercall", "xen_nomit"), Some(300.0));
        assert_eq!(get("linux", "fork_exit", "xenish"), Some(1.0));
        assert_eq!(get("drivers", "net_tcp_tx", "xenish (ours)"), Some(10.0));
        assert_eq!(get("drivers", "net_tcp_tx", "xen (Linux's)"), Some(5.0));
        assert_eq!(values(OLD).get(&("operations".into(), "grant_copy_4k".into(), "xenish".into())), None);
    }

    #[test]
    fn reports_changes_with_worse_positive() {
        let r = report(OLD, NEW);
        let line = |row: &str, col: &str| {
            r.lines()
                .find(|l| l.contains(row) && l.contains(&format!(" {col} ")))
                .map(str::to_string)
                .unwrap_or_default()
        };
        assert!(line("null_hypercall", "xenish").ends_with("-25.0%"), "{r}");
        // Throughput halved: worse.
        assert!(line("net_tcp_tx", "xenish (ours)").ends_with("+50.0%"), "{r}");
        // Rows or cells only one side has are left out.
        assert!(line("grant_copy_4k", "xenish").is_empty() && !r.contains("fork_exit"), "{r}");
        assert!(line("grant_copy_4k", "xen").ends_with("+0.0%"), "{r}");
        assert!(!r.contains("warning"));
        assert!(report(&OLD.replace("true", "false"), NEW).contains("warning"));
    }
}
