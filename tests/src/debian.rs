//! Debian packages as test material: Xen 4.17, the stock kernel and
//! busybox, fetched with `apt-get download` into `target/debian/` and
//! unpacked there with `dpkg-deb -x` (never installed on the host), once
//! per checkout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::images::target_dir;

/// Debian's Xen 4.17 hypervisor package.
pub const XEN_PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// Debian's kernel metapackage; it depends on the versioned kernel package.
pub const KERNEL_META_PACKAGE: &str = "linux-image-amd64";
/// Debian's statically linked busybox.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// One fetch at a time within a process (tests run in parallel).
static FETCH: Mutex<()> = Mutex::new(());

fn debian_dir() -> PathBuf {
    target_dir().join("debian")
}

/// Runs `apt-get download PACKAGE` in `dir`, updating the package lists
/// once if the first attempt fails; returns the downloaded .deb.
fn download(package: &str, dir: &Path) -> Result<PathBuf, String> {
    let fetch = || {
        Command::new("apt-get").arg("download").arg(package).current_dir(dir).output().is_ok_and(|o| o.status.success())
    };
    if !fetch() {
        // The package lists may be missing on a fresh machine.
        let _ = Command::new("apt-get").arg("update").arg("-q").output();
        if !fetch() {
            return Err(format!("cannot download {package}; run: cd {} && apt-get download {package}", dir.display()));
        }
    }
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix))
        })
        .ok_or(format!("apt-get download {package} left no .deb in {}", dir.display()))
}

/// The unpacked tree of `package`, fetching and unpacking it the first
/// time; also returns the .deb (for its control fields).
pub fn unpacked(package: &str) -> Result<(PathBuf, PathBuf), String> {
    let _one = FETCH.lock().unwrap_or_else(|p| p.into_inner());
    // And one process at a time (test processes run side by side).
    std::fs::create_dir_all(debian_dir()).map_err(|e| format!("{}: {e}", debian_dir().display()))?;
    let lock_path = debian_dir().join(".fetch.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let dir = debian_dir().join(package);
    let root = dir.join("root");
    let done = dir.join(".unpacked");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if done.is_file() {
        let deb = std::fs::read_to_string(&done).map_err(|e| e.to_string())?;
        return Ok((root, PathBuf::from(deb.trim())));
    }
    eprintln!("debian: fetching {package} with apt-get download...");
    let deb = download(package, &dir)?;
    let status = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root).status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(format!("cannot unpack {} (dpkg-deb -x)", deb.display()));
    }
    std::fs::write(&done, deb.display().to_string()).map_err(|e| e.to_string())?;
    Ok((root, deb))
}

/// The first `linux-image-*` package in a Debian `Depends` field.
pub fn kernel_dependency(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .find(|name| name.starts_with("linux-image-"))
        .map(str::to_string)
}

/// The start of Xen's command line in every boot of it under QEMU: its
/// console on COM1, where the harness reads, and eager FPU switching.
///
/// QEMU's `-cpu max` is an AMD CPU to Xen, so Xen 4.17 switches FPU state
/// lazily (CR0.TS and a #NM on first use) unless told otherwise; under
/// QEMU 7.2's software emulation a PV domain's processes then lose their
/// SSE state to other running domains: busybox in dom0 computed wrong
/// checksums, broke its heap (glibc's malloc on a garbage free-list
/// pointer) and crashed in 5-16 of 150 rounds beside a busy Linux domU,
/// and in none with `spec-ctrl=eager-fpu` (nor with dom0 alone, nor on
/// xenish, which saves FPU state at every vCPU switch). Turning off AVX,
/// XSAVES/XSAVEC, PCID, global pages or INVPCID did not help. Eager
/// switching is also what Xen does by default on Intel CPUs.
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 spec-ctrl=eager-fpu";

/// dom0's memory for the boots that run a test guest as dom0 on Xen 4.17
/// in QEMU's 512 MiB: less than all of it. Xen sizes dom0 from the free
/// memory it counts before building it (about 498 MiB here), and on two
/// CPUs it uses more of that meanwhile than on one, so a dom0 of 512M
/// (clamped to the count) then fails its allocation ("Not enough RAM for
/// DOM0 reservation").
pub const XEN_TEST_DOM0_MEM: &str = "dom0_mem=448M";

/// The file name of Debian's Xen 4.17 image, as [`xen`] returns it.
pub const XEN_IMAGE: &str = "xen-4.17-amd64.gz";

/// Debian's Xen 4.17 image (`boot/xen-4.17-amd64.gz`).
pub fn xen() -> Result<PathBuf, String> {
    let (root, _) = unpacked(XEN_PACKAGE)?;
    let image = root.join("boot").join(XEN_IMAGE);
    image.is_file().then_some(image).ok_or(format!("{XEN_PACKAGE} has no boot/{XEN_IMAGE}"))
}

/// Whether `hypervisor` is Debian's Xen image (by its file name).
pub fn is_xen(hypervisor: &Path) -> bool {
    hypervisor.file_name().is_some_and(|n| n == XEN_IMAGE)
}

/// MiB at the top of the RAM below 4 GiB that [`xen_badpages`] keeps
/// Xen from allocating.
pub const STALE_CODE_MIB: u32 = 8;

/// Xen's `badpage=` option for a QEMU machine (`pc`) of `memory_mib`:
/// the top [`STALE_CODE_MIB`] MiB of the RAM below 4 GiB, where SeaBIOS
/// ran its relocated POST code and GRUB its modules.
///
/// Why: QEMU's software emulation keeps the code it translated from a
/// page until the bytes it came from are overwritten, and while any of
/// it is kept, *every* store to that page takes QEMU's slow path (its
/// self-modifying-code check: `notdirty_write`, `page_collection_lock`,
/// a tree allocated and freed per store). Xen 4.17 allocates its own
/// memory top-down from there and does not scrub what it keeps for
/// itself: CPU 0's stack landed on a page of SeaBIOS's code, and every
/// hypercall's pushes took the slow path (QEMU's trace event
/// `memory_notdirty_write_access`: 924,716 such stores to that one page
/// in a PV bench boot). Measured: Xen's null hypercall 41,723 TSC cycles
/// without, 1,813 with the option; `tests/xl.rs`'s Xen boot 143 s
/// without, 66 s with. A hardware machine has no such cost, so without
/// this the Xen column measured QEMU, not Xen. xenish is not affected:
/// the same trace of a xenish boot shows no such store once it runs.
pub fn xen_badpages(memory_mib: u32) -> String {
    // QEMU's `pc` machine keeps all RAM below 4 GiB up to 3.5 GiB, and
    // 3 GiB of it above that (the rest goes above 4 GiB).
    let below_4g_mib = if memory_mib >= 3584 { 3072 } else { memory_mib };
    let top = u64::from(below_4g_mib) * 256;
    let first = top.saturating_sub(u64::from(STALE_CODE_MIB) * 256);
    format!("badpage=0x{first:x}-0x{:x}", top.saturating_sub(1))
}

/// Debian's stock kernel (`boot/vmlinuz-*` of the package
/// `linux-image-amd64` depends on).
pub fn linux() -> Result<PathBuf, String> {
    let (_, meta) = unpacked(KERNEL_META_PACKAGE)?;
    let out = Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends").output();
    let depends = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).map_err(|e| e.to_string())?;
    let package = kernel_dependency(&depends).ok_or(format!("{KERNEL_META_PACKAGE} depends on no kernel"))?;
    let (root, _) = unpacked(&package)?;
    std::fs::read_dir(root.join("boot"))
        .map_err(|e| format!("{package}: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .ok_or(format!("{package} has no boot/vmlinuz-*"))
}

/// Debian's static busybox binary.
pub fn busybox() -> Result<PathBuf, String> {
    let (root, _) = unpacked(BUSYBOX_PACKAGE)?;
    let bin = root.join("bin/busybox");
    bin.is_file().then_some(bin).ok_or(format!("{BUSYBOX_PACKAGE} has no bin/busybox"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_is_kept_off_the_top_of_the_ram_below_4g() {
        assert_eq!(xen_badpages(512), "badpage=0x1f800-0x1ffff");
        assert_eq!(xen_badpages(1280), "badpage=0x4f800-0x4ffff");
        // Above 3.5 GiB QEMU's pc machine keeps 3 GiB below 4 GiB.
        assert_eq!(xen_badpages(4096), "badpage=0xbf800-0xbffff");
        assert!(is_xen(Path::new("/x/boot/xen-4.17-amd64.gz")));
        assert!(!is_xen(Path::new("/x/target/xenish")));
    }

    #[test]
    fn picks_the_kernel_dependency() {
        let pick = kernel_dependency;
        assert_eq!(pick("linux-image-6.1.0-57-amd64 (= 6.1.192-3)"), Some("linux-image-6.1.0-57-amd64".into()));
        assert_eq!(pick("foo, linux-image-6.1.0-1-amd64"), Some("linux-image-6.1.0-1-amd64".into()));
        assert_eq!(pick("foo"), None);
    }
}
