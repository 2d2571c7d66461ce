//! Xen 4.17's own toolstack as Debian ships it (`xen-utils-4.17`: `xl`,
//! libxl, libxc, C xenstored and oxenstored, xenconsoled, `xen-init-dom0`),
//! with the shared libraries it needs, as files for the dom0 image.
//!
//! The packages are fetched with `apt-get download` and unpacked under
//! `target/debian/` (never installed). Which libraries go in is not a list
//! kept by hand: it is the closure of the binaries' `DT_NEEDED` entries,
//! read from their ELF dynamic sections and resolved in the unpacked
//! packages as the dynamic loader would (its built-in multiarch
//! directories), plus the loader itself at its `PT_INTERP` path and
//! `libgcc_s.so.1`, which glibc loads at run time (thread cancellation,
//! unwinding) without naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::debian;

/// Where Debian installs Xen 4.17's programs.
pub const BIN_DIR: &str = "usr/lib/xen-4.17/bin";

/// The programs the image carries, from [`BIN_DIR`].
pub const PROGRAMS: &[&str] = &["xl", "xenstored", "oxenstored", "xenconsoled", "xen-init-dom0", "xenconsole"];

/// The packages the programs and their libraries come from. A library a
/// binary needs that none of them holds is an error naming it.
pub const PACKAGES: &[&str] = &[
    "xen-utils-4.17",
    "xen-utils-common",
    "libxenmisc4.17",
    "libxenstore4",
    "libxengnttab1",
    "libxenevtchn1",
    "libxencall1",
    "libxenforeignmemory1",
    "libxendevicemodel1",
    "libxentoolcore1",
    "libxentoollog1",
    "libxenhypfs1",
    "libc6",
    "libgcc-s1",
    "libyajl2",
    "libnl-3-200",
    "libnl-route-3-200",
    "libuuid1",
    "zlib1g",
    "libzstd1",
    "liblzma5",
    "libbz2-1.0",
    "libtinfo6",
    "libncursesw6",
];

/// Configuration files from `xen-utils-common` the programs read.
const CONFIG: &[&str] = &["etc/xen/xl.conf", "etc/xen/oxenstored.conf"];

/// Libraries loaded at run time without a `DT_NEEDED` entry.
const LOADED_AT_RUN_TIME: &[&str] = &["libgcc_s.so.1"];

/// The dynamic loader's search path (Debian's glibc: the multiarch
/// directories first).
const LIBRARY_DIRS: &[&str] = &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"];

/// The `DT_NEEDED` names and the `PT_INTERP` path of an ELF64
/// little-endian file, read from its section headers (the `SHT_DYNAMIC`
/// section and the string table it links to) and program headers.
/// `None` if it is not such a file or a table lies outside it.
pub fn dynamic_deps(elf: &[u8]) -> Option<(Vec<String>, Option<String>)> {
    let u16_at = |o: usize| elf.get(o..o.checked_add(2)?).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| elf.get(o..o.checked_add(4)?).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |o: usize| elf.get(o..o.checked_add(8)?).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let size = |o: usize| u64_at(o).and_then(|v| usize::try_from(v).ok());
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let c_str = |bytes: &[u8]| -> Option<String> {
        let end = bytes.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&bytes[..end]).ok().map(str::to_string)
    };
    // PT_INTERP from the program headers.
    let (phoff, phentsize, phnum) = (size(0x20)?, usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let mut interp = None;
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(at)? == 3 {
            let (off, len) = (size(at + 8)?, size(at + 32)?);
            interp = Some(c_str(elf.get(off..off.checked_add(len)?)?)?);
        }
    }
    // DT_NEEDED from the dynamic section.
    let (shoff, shentsize, shnum) = (size(0x28)?, usize::from(u16_at(0x3a)?), usize::from(u16_at(0x3c)?));
    let section = |i: usize| -> Option<(u32, usize, usize, u32)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(at + 4)?, size(at + 0x18)?, size(at + 0x20)?, u32_at(at + 0x28)?))
    };
    let mut needed = Vec::new();
    for i in 0..shnum {
        let (kind, off, len, link) = section(i)?;
        if kind != 6 {
            continue; // not SHT_DYNAMIC
        }
        let (_, str_off, str_len, _) = section(usize::try_from(link).ok()?)?;
        let strings = elf.get(str_off..str_off.checked_add(str_len)?)?;
        for entry in elf.get(off..off.checked_add(len)?)?.chunks_exact(16) {
            let tag = u64::from_le_bytes(entry[..8].try_into().ok()?);
            let val = usize::try_from(u64::from_le_bytes(entry[8..].try_into().ok()?)).ok()?;
            match tag {
                0 => break,
                1 => needed.push(c_str(strings.get(val..)?)?),
                _ => {}
            }
        }
    }
    Some((needed, interp))
}

/// The unpacked package trees.
fn roots() -> Result<Vec<PathBuf>, String> {
    PACKAGES.iter().map(|p| debian::unpacked(p).map(|(root, _)| root)).collect()
}

/// `path` (relative to an image root) found in one of the package trees,
/// symlinks followed within that tree (an absolute target is taken
/// relative to the tree, as it would be in the image).
fn resolve(roots: &[PathBuf], path: &str) -> Option<PathBuf> {
    for root in roots {
        let mut at = root.join(path.trim_start_matches('/'));
        for _ in 0..16 {
            let Ok(meta) = std::fs::symlink_metadata(&at) else { break };
            if !meta.file_type().is_symlink() {
                if meta.is_file() {
                    return Some(at);
                }
                break;
            }
            let target = std::fs::read_link(&at).ok()?;
            at = match target.strip_prefix("/") {
                Ok(absolute) => root.join(absolute),
                Err(_) => at.parent().unwrap_or(root).join(target),
            };
        }
    }
    None
}

/// A library `name` on the loader's search path: where it goes in the
/// image, and the file holding it.
fn find_library(roots: &[PathBuf], name: &str) -> Option<(String, PathBuf)> {
    LIBRARY_DIRS.iter().find_map(|dir| {
        let in_image = format!("{dir}/{name}");
        resolve(roots, &in_image).map(|file| (in_image, file))
    })
}

/// Every file the programs need, as (path in the image, mode, contents):
/// the programs in [`BIN_DIR`], their library closure, the loader and the
/// configuration files.
pub fn files() -> Result<Vec<(String, u32, Vec<u8>)>, String> {
    let roots = roots()?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut out: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    let mut todo: Vec<String> = LOADED_AT_RUN_TIME.iter().map(|s| s.to_string()).collect();
    let mut interpreters = BTreeSet::new();
    let mut scan = |data: &[u8], what: &str, todo: &mut Vec<String>| -> Result<(), String> {
        let (needed, interp) = dynamic_deps(data).ok_or(format!("{what}: not an ELF64 file"))?;
        todo.extend(needed);
        interpreters.extend(interp);
        Ok(())
    };
    for program in PROGRAMS {
        let path = format!("{BIN_DIR}/{program}");
        let file = resolve(&roots, &path).ok_or(format!("{path} is in none of the packages"))?;
        let data = read(&file)?;
        scan(&data, &path, &mut todo)?;
        out.insert(path, (0o755, data));
    }
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let (in_image, file) =
            find_library(&roots, &name).ok_or(format!("library {name} is in none of {}", PACKAGES.join(", ")))?;
        let data = read(&file)?;
        scan(&data, &name, &mut todo)?;
        out.insert(in_image, (0o755, data));
    }
    for interp in &interpreters {
        let file = resolve(&roots, interp).ok_or(format!("the dynamic loader {interp} is in none of the packages"))?;
        out.insert(interp.trim_start_matches('/').to_string(), (0o755, read(&file)?));
    }
    for config in CONFIG {
        let file = resolve(&roots, config).ok_or(format!("{config} is in none of the packages"))?;
        out.insert(config.to_string(), (0o644, read(&file)?));
    }
    Ok(out.into_iter().map(|(path, (mode, data))| (path, mode, data)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a PT_INTERP and a dynamic section naming `libs`.
    fn elf(interp: &str, libs: &[&str]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut dynamic = Vec::new();
        for lib in libs {
            dynamic.extend_from_slice(&1u64.to_le_bytes());
            dynamic.extend_from_slice(&(strings.len() as u64).to_le_bytes());
            strings.extend_from_slice(lib.as_bytes());
            strings.push(0);
        }
        dynamic.extend_from_slice(&[0u8; 16]);
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let phoff = f.len();
        f.resize(phoff + 56, 0);
        let interp_off = f.len();
        f.extend_from_slice(interp.as_bytes());
        f.push(0);
        f[phoff..phoff + 4].copy_from_slice(&3u32.to_le_bytes());
        f[phoff + 8..phoff + 16].copy_from_slice(&(interp_off as u64).to_le_bytes());
        f[phoff + 32..phoff + 40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
        let (dyn_off, str_off) = (f.len(), f.len() + dynamic.len());
        f.extend_from_slice(&dynamic);
        f.extend_from_slice(&strings);
        let shoff = f.len();
        let sh = |kind: u32, off: usize, len: usize, link: u32| {
            let mut s = vec![0u8; 64];
            s[4..8].copy_from_slice(&kind.to_le_bytes());
            s[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            s[0x20..0x28].copy_from_slice(&(len as u64).to_le_bytes());
            s[0x28..0x2c].copy_from_slice(&link.to_le_bytes());
            s
        };
        f.extend(sh(0, 0, 0, 0));
        f.extend(sh(6, dyn_off, dynamic.len(), 2));
        f.extend(sh(3, str_off, strings.len(), 0));
        f[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f
    }

    #[test]
    fn needed_libraries_and_the_interpreter_come_from_the_elf() {
        let f = elf("/lib64/ld-linux-x86-64.so.2", &["libxenctrl.so.4.17", "libc.so.6"]);
        let (needed, interp) = dynamic_deps(&f).unwrap();
        assert_eq!(needed, ["libxenctrl.so.4.17", "libc.so.6"]);
        assert_eq!(interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
    }

    #[test]
    fn garbage_and_truncated_files_are_not_elf() {
        assert!(dynamic_deps(b"#!/bin/sh\n").is_none());
        let mut f = elf("/lib64/ld.so", &["libc.so.6"]);
        f.truncate(f.len() - 100);
        assert!(dynamic_deps(&f).is_none(), "section headers cut off");
    }

    #[test]
    fn symlinks_resolve_inside_the_package_tree() {
        let root = std::env::temp_dir().join(format!("xen-tools-test-{}", std::process::id()));
        let lib = root.join("lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(root.join("lib64")).unwrap();
        std::fs::write(lib.join("libfoo.so.1.2"), b"foo").unwrap();
        let _ = std::os::unix::fs::symlink("libfoo.so.1.2", lib.join("libfoo.so.1"));
        let _ = std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/libfoo.so.1", root.join("lib64/ld.so"));
        let roots = [root.clone()];
        let (in_image, file) = find_library(&roots, "libfoo.so.1").unwrap();
        assert_eq!((in_image.as_str(), file), ("lib/x86_64-linux-gnu/libfoo.so.1", lib.join("libfoo.so.1.2")));
        assert_eq!(resolve(&roots, "/lib64/ld.so"), Some(lib.join("libfoo.so.1.2")), "absolute target re-rooted");
        assert_eq!(resolve(&roots, "lib/none"), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
