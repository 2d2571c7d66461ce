//! The images of the Linux-level benchmark rows (`xenish-linuxbench`), shared
//! by `cargo xtask bench` and the bench test: Debian's Linux as dom0 with
//! the program as its `/init`, and Debian's Linux as a domU with the
//! program as its `/init`, created by the toolstack (`xl create`) from the
//! dom0 image.

use std::path::{Path, PathBuf};

use crate::initramfs::Cpio;

/// The rows the program prints, in order.
pub const ROWS: &[&str] =
    &["boot_to_init", "fork_exit", "fork_exec", "pipe_roundtrip", "ctxsw_pingpong", "touch_unmap_64m"];

/// What the program prints last.
pub const DONE: &str = "linuxbench: done";

/// The name of the benchmark domU (its console log is
/// `/var/log/xen/console/guest-linuxbench.log` in dom0).
pub const DOMU_NAME: &str = "linuxbench";

/// The domU's memory (MiB): room for the 64 MiB the page-fault row
/// touches, the kernel and the page tables.
pub const DOMU_MEMORY_MIB: u32 = 256;

/// An initramfs with the program as `/init`, nothing else (written to
/// `target/debian/NAME.cpio`).
pub fn initramfs(tools: &Path, name: &str) -> Result<PathBuf, String> {
    let out = crate::images::target_dir().join("debian").join(format!("{name}.cpio"));
    crate::images::write_atomic(&out, &cpio(tools)?)?;
    Ok(out)
}

fn cpio(tools: &Path) -> Result<Vec<u8>, String> {
    let path = tools.join("xenish-linuxbench");
    let program = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Cpio::new().dir("dev").dir("proc").dir("tmp").file("init", 0o755, &program).finish())
}

/// Files for the dom0 image: path, mode, contents.
pub type Files = Vec<(&'static str, u32, Vec<u8>)>;

/// The files dom0's image needs to create the benchmark domU: Debian's
/// kernel and the domU's initramfs (the program as `/init`), in `/root`.
/// With `in_dom0`, the program also goes in as `/usr/sbin/xenish-linuxbench`
/// (for [`domu_script`]'s `dom0_divide`).
pub fn domu_files(tools: &Path, in_dom0: bool) -> Result<Files, String> {
    let vmlinuz = crate::debian::linux()?;
    let kernel = std::fs::read(&vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    let mut files = vec![("root/vmlinuz", 0o644, kernel), ("root/linuxbench.cpio", 0o644, cpio(tools)?)];
    if in_dom0 {
        let path = tools.join("xenish-linuxbench");
        let program = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(("usr/sbin/xenish-linuxbench", 0o755, program));
    }
    Ok(files)
}

/// dom0's script for the domU rows: creates the domU (one vCPU,
/// [`DOMU_MEMORY_MIB`], the counts divided by `divide`), waits for its
/// `linuxbench: done` (checking every 2 s: little dom0 work lands in the
/// domU's measurements), and copies its `linuxbench:` lines to the serial
/// line as `domU linuxbench: ...`. With `dom0_divide`, dom0 first runs the
/// program itself (as an ordinary process, counts divided by that) — the
/// test's way of checking both in one boot.
pub fn domu_script(divide: u32, dom0_divide: Option<u32>) -> String {
    let dom0 = match dom0_divide {
        Some(d) => format!("LINUXBENCH_DIVIDE={d} /usr/sbin/xenish-linuxbench\n"),
        None => String::new(),
    };
    format!(
        r#"{dom0}cat > /etc/xen/{DOMU_NAME}.cfg <<EOF
name = "{DOMU_NAME}"
type = "pv"
kernel = "/root/vmlinuz"
ramdisk = "/root/linuxbench.cpio"
extra = "console=hvc0 quiet LINUXBENCH_DIVIDE={divide}"
memory = {DOMU_MEMORY_MIB}
vcpus = 1
on_poweroff = "destroy"
EOF
log=/var/log/xen/console/guest-{DOMU_NAME}.log
xl create /etc/xen/{DOMU_NAME}.cfg || echo "info: xl create failed"
n=0
until grep -q "{DONE}" $log 2>/dev/null || [ $n -ge 900 ]; do sleep 2; n=$((n + 2)); done
grep "linuxbench: " $log | sed 's/^.*linuxbench: /domU linuxbench: /'
"#
    )
}

/// The `domU linuxbench: ...` lines of a serial log, without the `domU `
/// (for the row parser), and the other `linuxbench:` lines (dom0's).
pub fn split_domu(serial: &str) -> (String, String) {
    let (mut domu, mut dom0) = (String::new(), String::new());
    for line in serial.lines() {
        if let Some((_, rest)) = line.split_once("domU linuxbench: ") {
            domu.push_str("linuxbench: ");
            domu.push_str(rest);
            domu.push('\n');
        } else if line.contains("linuxbench: ") {
            dom0.push_str(line);
            dom0.push('\n');
        }
    }
    (domu, dom0)
}

#[cfg(test)]
mod tests_ {
    use super::*;

    #[test]
    fn domu_lines_are_told_apart_from_dom0s() {
        let (domu, dom0) =
            split_domu("linuxbench: fork_exit ns=5 n=1\n[ 1.0] domU linuxbench: fork_exit ns=7 n=1\nother\n");
        assert_eq!(domu, "linuxbench: fork_exit ns=7 n=1\n");
        assert_eq!(dom0, "linuxbench: fork_exit ns=5 n=1\n");
        let s = domu_script(100, Some(50));
        assert!(s.starts_with("LINUXBENCH_DIVIDE=50 ") && s.contains("LINUXBENCH_DIVIDE=100\""));
        assert!(!domu_script(1, None).contains("/usr/sbin/xenish-linuxbench"));
    }
}
