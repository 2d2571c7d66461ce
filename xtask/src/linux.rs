//! `cargo xtask linux`: Debian's stock kernel (`linux-image-amd64`) as dom0
//! on xenish, to see how far it gets. An exploration tool: it prints the
//! serial log and says how QEMU ended; it asserts nothing about Linux.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use tests::images::workspace_root;
use tests::{Boot, Exit};

/// Debian's kernel metapackage; it depends on the versioned kernel package.
const META_PACKAGE: &str = "linux-image-amd64";
/// dom0's command line.
const LINUX_CMDLINE: &str = "console=hvc0 earlyprintk=xen loglevel=8";
/// xenish's command line unless one is given after `--`.
const DEFAULT_XENISH_CMDLINE: &str = "dom0_mem=512M";
/// Boot time limit unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// The CPU model: as for `bench`, SMAP hidden, because QEMU's software
/// emulation does IRETQ's stack reads as supervisor accesses, which SMAP
/// faults on a PV kernel's (user-accessible) stack. Seen with QEMU 7.2:
/// `#PF error 0x1, cr2 = rsp` at Linux's `iretq` in `sync_core`.
const CPU: &str = "max,-smap";
/// QEMU memory: dom0_mem=512M plus room for the unwrapped kernel.
const QEMU_MEMORY_MIB: u32 = 1024;

/// Runs `apt-get download PACKAGE` in `dir`, updating the package lists once
/// if the first attempt fails; returns the downloaded .deb.
fn apt_download(package: &str, dir: &Path) -> Result<PathBuf, String> {
    let download =
        || Command::new("apt-get").arg("download").arg(package).current_dir(dir).status().is_ok_and(|s| s.success());
    if !download() {
        // The package lists may be missing on a fresh machine.
        let _ = Command::new("apt-get").arg("update").status();
        if !download() {
            return Err(format!("cannot download {package}; run: cd {} && apt-get download {package}", dir.display()));
        }
    }
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix))
        })
        .ok_or(format!("apt-get download {package} left no .deb in {}", dir.display()))
}

/// The versioned kernel package `linux-image-amd64`'s .deb depends on.
fn kernel_package(meta_deb: &Path) -> Result<String, String> {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(meta_deb)
        .arg("Depends")
        .output()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    let depends = String::from_utf8_lossy(&out.stdout);
    kernel_dependency(&depends).ok_or(format!("{} depends on no linux-image package ({depends:?})", meta_deb.display()))
}

/// The first `linux-image-*` package in a Debian `Depends` field.
fn kernel_dependency(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .find(|name| name.starts_with("linux-image-"))
        .map(str::to_string)
}

/// Fetches and unpacks Debian's kernel under target/linux; returns its vmlinuz.
fn vmlinuz() -> Result<PathBuf, String> {
    let dir = workspace_root().join("target/linux");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    eprintln!("xtask linux: fetching {META_PACKAGE} with apt-get download...");
    let meta = apt_download(META_PACKAGE, &dir)?;
    let package = kernel_package(&meta)?;
    let root = dir.join("root").join(&package);
    let find = |root: &Path| -> Option<PathBuf> {
        std::fs::read_dir(root.join("boot"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
    };
    if let Some(image) = find(&root) {
        return Ok(image);
    }
    eprintln!("xtask linux: fetching {package} with apt-get download...");
    let deb = apt_download(&package, &dir)?;
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let status = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root).status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(format!("cannot unpack {}", deb.display()));
    }
    find(&root).ok_or(format!("{} has no boot/vmlinuz-*", deb.display()))
}

/// Boots Debian's kernel as dom0 and prints the serial log.
pub fn run(cmdline: &[String], timeout: Option<u64>) -> Result<ExitCode, String> {
    tests::tools::ensure()?;
    let images = tests::images::build(&tests::images::target_dir())?;
    let kernel = vmlinuz()?;
    let cmdline = if cmdline.is_empty() { DEFAULT_XENISH_CMDLINE.to_string() } else { cmdline.join(" ") };
    let secs = timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    eprintln!(
        "xtask linux: booting {} as dom0 ({LINUX_CMDLINE}) on xenish ({cmdline}), -cpu {CPU}, {QEMU_MEMORY_MIB} MiB, \
         time limit {secs}s",
        kernel.display()
    );
    let out = Boot::with_hypervisor(images.hypervisor.clone())
        .cpu(CPU)
        .memory_mib(QEMU_MEMORY_MIB)
        .cmdline(&cmdline)
        .module(kernel, LINUX_CMDLINE)
        .timeout(Duration::from_secs(secs))
        .try_run()?;
    print!("{}", out.serial);
    if !out.serial.ends_with('\n') {
        println!();
    }
    if !out.qemu_stderr.trim().is_empty() {
        eprintln!("---- QEMU stderr ----\n{}", out.qemu_stderr.trim_end());
    }
    eprintln!("xtask linux: {} after {:.1?}", out.exit, out.elapsed);
    Ok(match out.exit {
        Exit::DebugExit(0) | Exit::Qemu(0) => ExitCode::SUCCESS,
        Exit::DebugExit(1) => ExitCode::from(1),
        Exit::TimedOut => ExitCode::from(124),
        _ => ExitCode::from(2),
    })
}

#[cfg(test)]
mod tests_ {
    use super::*;

    #[test]
    fn picks_the_kernel_dependency() {
        let pick = kernel_dependency;
        assert_eq!(pick("linux-image-6.1.0-57-amd64 (= 6.1.192-3)"), Some("linux-image-6.1.0-57-amd64".into()));
        assert_eq!(pick("foo, linux-image-6.1.0-1-amd64"), Some("linux-image-6.1.0-1-amd64".into()));
        assert_eq!(pick("foo"), None);
    }
}
