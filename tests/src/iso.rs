//! A GRUB rescue ISO that boots xenish with multiboot2 and the guests as
//! modules, with GRUB and xenish on the serial line.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A module line: the file and its string (a guest's command line).
#[derive(Clone, Debug)]
pub struct Module {
    /// The file to load.
    pub path: PathBuf,
    /// The module's string.
    pub string: String,
}

/// The grub.cfg that boots xenish with `cmdline` and `modules`.
pub fn grub_cfg(cmdline: &str, modules: &[Module]) -> String {
    let mut cfg = String::from(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n",
    );
    let _ = writeln!(cfg, "menuentry \"xenish\" {{\n    multiboot2 /boot/xenish {cmdline}");
    for (i, m) in modules.iter().enumerate() {
        let _ = writeln!(cfg, "    module2 /boot/module{} {}", i + 1, m.string);
    }
    cfg.push_str("}\n");
    cfg
}

/// Builds `iso` from the hypervisor and modules, using `work` as scratch.
pub fn make(iso: &Path, work: &Path, hypervisor: &Path, cmdline: &str, modules: &[Module]) -> Result<(), String> {
    let root = work.join("iso-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("boot/grub")).map_err(|e| format!("{}: {e}", root.display()))?;
    fs::copy(hypervisor, root.join("boot/xenish")).map_err(|e| format!("{}: {e}", hypervisor.display()))?;
    for (i, m) in modules.iter().enumerate() {
        fs::copy(&m.path, root.join(format!("boot/module{}", i + 1)))
            .map_err(|e| format!("{}: {e}", m.path.display()))?;
    }
    fs::write(root.join("boot/grub/grub.cfg"), grub_cfg(cmdline, modules)).map_err(|e| e.to_string())?;
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(iso)
        .arg(&root)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if !out.status.success() {
        return Err(format!("grub-mkrescue failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_module_in_order() {
        let m = |s: &str| Module { path: PathBuf::from(s), string: format!("{s} arg") };
        let cfg = grub_cfg("dom0_mem=64M", &[m("a"), m("b")]);
        assert!(cfg.contains("multiboot2 /boot/xenish dom0_mem=64M\n"));
        let a = cfg.find("module2 /boot/module1 a arg").unwrap();
        let b = cfg.find("module2 /boot/module2 b arg").unwrap();
        assert!(a < b);
        assert!(cfg.contains("serial --unit=0 --speed=115200"));
    }
}
