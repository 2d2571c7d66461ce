//! Building the bootable pieces: the hypervisor and the test guests, for
//! `x86_64-unknown-none`, in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the built images are.
#[derive(Clone, Debug)]
pub struct Images {
    /// The multiboot2 hypervisor ELF.
    pub hypervisor: PathBuf,
    /// Directory holding the guest kernels (`hello`, `crash`, ...).
    pub guests: PathBuf,
}

impl Images {
    /// The path of guest kernel `name`.
    pub fn guest(&self, name: &str) -> PathBuf {
        self.guests.join(name)
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the hypervisor and the guests into `target_dir` and returns their
/// paths.
pub fn build(target_dir: &Path) -> Result<Images, String> {
    crate::tools::ensure()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", "x86_64-unknown-none", "-p", "xenish", "-p", "test-guests"])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the hypervisor and guests failed".into());
    }
    let dir = target_dir.join("x86_64-unknown-none/release");
    let images = Images { hypervisor: dir.join("xenish"), guests: dir.clone() };
    // The image must be multiboot2 as it is, with no post-processing.
    let mb2 = Command::new("grub-file").arg("--is-x86-multiboot2").arg(&images.hypervisor).status();
    if !mb2.is_ok_and(|s| s.success()) {
        return Err(format!("{} is not a multiboot2 image", images.hypervisor.display()));
    }
    Ok(images)
}

/// The images for this test process: `XENISH_IMAGES_DIR` if set (xtask
/// builds them first), else built once into `target/system-images`.
pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        if let Some(dir) = std::env::var_os("XENISH_IMAGES_DIR") {
            let dir = PathBuf::from(dir);
            return Images { hypervisor: dir.join("xenish"), guests: dir };
        }
        match build(&workspace_root().join("target/system-images")) {
            Ok(images) => images,
            Err(e) => panic!("cannot build the boot images: {e}"),
        }
    })
}
