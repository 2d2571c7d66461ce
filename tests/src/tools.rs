//! Host tools the harness needs, installed with apt-get when missing and
//! running as root, or named with the exact command to run otherwise.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Debian packages that provide the tools.
pub const PACKAGES: &[&str] = &["qemu-system-x86", "grub-pc-bin", "grub-common", "xorriso", "mtools", "e2fsprogs"];

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")]).status().is_ok_and(|s| s.success())
}

fn missing() -> Vec<&'static str> {
    let mut out = Vec::new();
    for (cmd, what) in [
        ("qemu-system-x86_64", "qemu-system-x86_64"),
        ("grub-mkrescue", "grub-mkrescue"),
        ("xorriso", "xorriso"),
        ("mformat", "mformat (mtools)"),
    ] {
        if !have(cmd) {
            out.push(what);
        }
    }
    if !Path::new("/usr/lib/grub/i386-pc").is_dir() {
        out.push("GRUB's i386-pc modules (grub-pc-bin)");
    }
    if mke2fs().is_none() {
        out.push("mke2fs (e2fsprogs)");
    }
    out
}

/// e2fsprogs' `mke2fs` (in `sbin`, which a user's `PATH` may lack): what
/// makes guest disk images with a filesystem, as a file, without root
/// (`mke2fs -d DIR IMAGE SIZE`).
pub fn mke2fs() -> Option<std::path::PathBuf> {
    ["/usr/sbin/mke2fs", "/sbin/mke2fs"].iter().map(std::path::PathBuf::from).find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn install() -> Result<(), String> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    let cmd = format!("apt-get update && apt-get install -y {}", PACKAGES.join(" "));
    if !is_root() {
        return Err(format!("missing {}; install them with:\n  sudo sh -c '{cmd}'", missing.join(", ")));
    }
    eprintln!("xenish: installing {} ...", missing.join(", "));
    let ok = Command::new("sh")
        .args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success());
    let still = self::missing();
    if !ok || !still.is_empty() {
        return Err(format!("installing with `{cmd}` failed; still missing: {}", still.join(", ")));
    }
    Ok(())
}

/// Makes sure QEMU, GRUB and the ISO tools are there (once per process),
/// and that the bare-metal Rust target is installed.
pub fn ensure() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        install()?;
        ensure_rust_target("x86_64-unknown-none")
    })
    .clone()
}

/// Adds the Rust target `target` with rustup (a no-op when it is there).
pub fn ensure_rust_target(target: &str) -> Result<(), String> {
    match Command::new("rustup").args(["target", "add", target]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("rustup target add {target} failed: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("cannot run rustup: {e}")),
    }
}
