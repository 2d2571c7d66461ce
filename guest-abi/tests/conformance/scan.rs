//! A scan of the crate's sources for ABI definitions that escape the
//! registry (and so the probe).

use std::path::{Path, PathBuf};

use guest_abi::registry;

/// The registry lists every module exports; the only `pub const` items
/// allowed outside the registering macros.
const REGISTRY_LISTS: &[&str] = &["CONSTS", "STRUCTS", "STR_CONSTS", "TABLES", "TABLE_STRS", "TABLE_CONSTS"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// Problems found: a `pub const` outside the registering macros, a
/// `pub static` that is not a registered table, a wire struct missing from
/// its module's `STRUCTS`.
pub fn unregistered_definitions() -> Vec<String> {
    let structs: Vec<&str> = registry::structs().map(|s| s.rust).collect();
    let tables: Vec<&str> = registry::tables().map(|t| t.rust).collect();
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut problems = Vec::new();
    for path in files.iter().filter(|p| !p.ends_with("registry.rs")) {
        let text = std::fs::read_to_string(path).unwrap();
        let mut in_wire_struct = false;
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("xen_struct!") {
                in_wire_struct = true;
            }
            if let Some(rest) = t.strip_prefix("pub struct ") {
                let name = ident(rest);
                if in_wire_struct && !structs.contains(&name.as_str()) {
                    problems.push(format!("{}: struct {name} is not in its module's STRUCTS", path.display()));
                }
                in_wire_struct = false;
            }
            if let Some(rest) = t.strip_prefix("pub const ") {
                let name = ident(rest);
                if name != "fn" && !REGISTRY_LISTS.contains(&name.as_str()) {
                    problems.push(format!(
                        "{}: `pub const {name}` is not declared through xen_consts!/xen_strs!, so the probe cannot check it",
                        path.display()
                    ));
                }
            }
            if let Some(rest) = t.strip_prefix("pub static ") {
                let name = ident(rest.trim_start_matches("mut "));
                if !tables.contains(&name.as_str()) {
                    problems.push(format!("{}: `pub static {name}` is not a registered table", path.display()));
                }
            }
        }
    }
    problems
}
