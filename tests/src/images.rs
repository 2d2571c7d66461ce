//! Building the bootable pieces: the hypervisor and the test guests, for
//! `x86_64-unknown-none`, in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The bare-metal target both the hypervisor and the guests are built for.
pub const TARGET: &str = "x86_64-unknown-none";

/// Where the built images are.
#[derive(Clone, Debug)]
pub struct Images {
    /// The multiboot2 hypervisor ELF.
    pub hypervisor: PathBuf,
    /// Directory holding the guest kernels (`hello`, `crash`, ...).
    pub guests: PathBuf,
}

impl Images {
    /// The images in `dir`, as a build leaves them (`xenish` and the guests
    /// side by side).
    pub fn in_dir(dir: &Path) -> Self {
        Images { hypervisor: dir.join("xenish"), guests: dir.to_path_buf() }
    }

    /// The path of guest kernel `name`.
    pub fn guest(&self, name: &str) -> PathBuf {
        self.guests.join(name)
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to the
/// workspace root), else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Writes `data` to `path` (creating its directory) so that a reader sees
/// the old file or the whole new one, never a part: written beside it
/// under a name of this process and thread, then renamed over it. Test
/// processes run side by side (`cargo xtask test`) and may write the same
/// image at once.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}-{n}", std::process::id()));
    std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds the hypervisor and the guests into `target_dir` and returns their
/// paths. Cargo's own output goes to this process's stderr.
pub fn build(target_dir: &Path) -> Result<Images, String> {
    crate::tools::ensure()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", TARGET, "-p", "xenish", "-p", "test-guests"])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the hypervisor and guests failed (cargo build --release --target {TARGET} -p xenish -p test-guests)"
        ));
    }
    let images = Images::in_dir(&target_dir.join(TARGET).join("release"));
    check_multiboot2(&images.hypervisor)?;
    Ok(images)
}

/// The image must be multiboot2 as it is, with no post-processing.
fn check_multiboot2(hypervisor: &Path) -> Result<(), String> {
    let mb2 = Command::new("grub-file").arg("--is-x86-multiboot2").arg(hypervisor).status();
    if !mb2.is_ok_and(|s| s.success()) {
        return Err(format!("{} is not a multiboot2 image (grub-file --is-x86-multiboot2)", hypervisor.display()));
    }
    Ok(())
}

/// The images for this test process: those in `XENISH_IMAGES_DIR` if set
/// (`cargo xtask test` builds them first), else built once into
/// `<target>/system-images` — a target directory of its own, so the nested
/// cargo never waits for the lock the outer `cargo test` holds. Panics with
/// the reason if they cannot be had (every test that boots then fails with
/// the same message, not only the first).
pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Result<Images, String>> = OnceLock::new();
    let images = IMAGES.get_or_init(|| match std::env::var_os("XENISH_IMAGES_DIR") {
        Some(dir) => {
            let images = Images::in_dir(&workspace_root().join(dir));
            if images.hypervisor.is_file() {
                Ok(images)
            } else {
                Err(format!("XENISH_IMAGES_DIR is set but {} does not exist", images.hypervisor.display()))
            }
        }
        None => build(&target_dir().join("system-images")),
    });
    match images {
        Ok(images) => images,
        Err(e) => panic!("cannot get the boot images: {e}"),
    }
}
