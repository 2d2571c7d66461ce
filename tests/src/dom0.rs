//! The control-domain image: Debian's stock kernel (`linux-image-amd64`,
//! unmodified) with an initramfs made from Debian's packages and this
//! repository's toolstack.
//!
//! The initramfs holds Debian's static busybox, the kernel modules a Xen
//! dom0 needs that Debian builds as modules (with their dependencies, and a
//! `modules.dep` so busybox's `modprobe` finds them), the `dom0-tools`
//! binaries built for `x86_64-unknown-linux-musl`, and an `/init` that
//! mounts the pseudo filesystems and xenfs, loads the modules, starts
//! xenstored, writes dom0's own XenStore entries as Xen's `xen-init-dom0`
//! does, and then either runs a test script (`/etc/xenish/autorun`) and
//! powers off, or gives a root shell on `hvc0`.
//!
//! The same image boots on xenish and on Xen 4.17, which is what lets the
//! system tests compare the two.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::initramfs::Cpio;
use crate::{debian, images};

/// The Rust target the toolstack is built for: static Linux binaries.
pub const TOOLS_TARGET: &str = "x86_64-unknown-linux-musl";

/// Kernel modules the image loads at boot, by name (Debian builds these as
/// `=m`): the Xen device files, xenfs, the Xen backends, and what
/// backends stand on (loop devices, TAP, bridges, virtio disks and NICs,
/// Intel's e1000 NIC, NVMe disks, ext4 and the crc32c its metadata
/// checksums need).
pub const MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
    "xen-blkback",
    "xen-netback",
    "loop",
    "tun",
    "bridge",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "e1000",
    "nvme",
    "ext4",
    "crc32c_generic",
];

/// The ext4 label of dom0's persistent disk (`cargo xtask run`'s
/// `target/dom0-disk.img`, or a real machine's partition): `/init` mounts
/// the filesystem with this label at [`DISK_MOUNT`].
pub const DISK_LABEL: &str = "xenish-dom0";
/// Where `/init` mounts dom0's persistent disk: guest disk images live
/// there.
pub const DISK_MOUNT: &str = "/srv/xen";

/// The dom0 kernel's command line: the PV console, quiet boot.
pub const KERNEL_CMDLINE: &str = "console=hvc0 quiet";

/// What `/init` prints once xenstored runs and dom0's entries are written.
pub const READY: &str = "dom0: ready";
/// What `/init` prints after the autorun script, before powering off.
pub const AUTORUN_DONE: &str = "dom0: autorun done";
/// A file in the image (path without its leading `/`) that makes `/init`
/// reboot after the autorun script rather than power off.
pub const REBOOT_FLAG: &str = "etc/xenish/reboot-after-autorun";

/// A built dom0: kernel and initramfs.
#[derive(Clone, Debug)]
pub struct Dom0Image {
    /// Debian's vmlinuz.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
}

/// Builds the `dom0-tools` binaries for [`TOOLS_TARGET`] into
/// `target_dir` and returns the directory holding them.
pub fn build_tools(target_dir: &Path) -> Result<PathBuf, String> {
    crate::tools::ensure_rust_target(TOOLS_TARGET)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(images::workspace_root())
        .args(["build", "--release", "--target", TOOLS_TARGET, "-p", "dom0-tools"])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the toolstack failed (cargo build --release --target {TOOLS_TARGET} -p dom0-tools)"
        ));
    }
    Ok(target_dir.join(TOOLS_TARGET).join("release"))
}

/// The toolstack binaries for this process: those in `XENISH_TOOLS_DIR` if
/// set (xtask builds them first), else built once into
/// `<target>/system-images`.
pub fn tools_dir() -> Result<PathBuf, String> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("XENISH_TOOLS_DIR") {
        Some(dir) => Ok(images::workspace_root().join(dir)),
        None => build_tools(&images::target_dir().join("system-images")),
    })
    .clone()
}

/// The contents of the toolstack binary at `path` without its debug
/// information (`strip --strip-debug`; the symbols stay, so a backtrace
/// still names functions). The release profile keeps debug information,
/// which makes up about 40 of the 52 MB of a plain dom0 image; every boot
/// pays for those bytes three times under TCG (GRUB reads them from the
/// ISO, the hypervisor copies them into dom0, Linux unpacks them), about
/// 10 s a boot. Stripped once per process and binary; the binary as built
/// if `strip` is missing.
fn without_debug_info(path: &Path) -> Result<Vec<u8>, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static STRIPPED: OnceLock<Mutex<HashMap<PathBuf, Vec<u8>>>> = OnceLock::new();
    // Held while stripping: the boots of a pair build their images at once.
    let mut cache = STRIPPED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(data) = cache.get(path) {
        return Ok(data.clone());
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tool");
    let out = images::target_dir().join("debian").join(format!("stripped-{}-{name}", std::process::id()));
    std::fs::create_dir_all(out.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
    let stripped = Command::new("strip").arg("--strip-debug").arg("-o").arg(&out).arg(path).status();
    let data = match stripped {
        Ok(status) if status.success() => std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display())),
        _ => {
            eprintln!(
                "dom0: cannot strip {} (binutils' strip); the image carries its debug information",
                path.display()
            );
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
        }
    };
    let _ = std::fs::remove_file(&out);
    let data = data?;
    cache.insert(path.to_path_buf(), data.clone());
    Ok(data)
}

/// The binaries of `dom0-tools` the image carries (in `/usr/sbin`), and the
/// names each also answers to (symlinks in `/usr/bin`).
const BINARIES: &[(&str, &[&str])] = &[
    ("xenstored", &[]),
    (
        "xenstore",
        &[
            "xenstore-read",
            "xenstore-write",
            "xenstore-ls",
            "xenstore-list",
            "xenstore-rm",
            "xenstore-chmod",
            "xenstore-watch",
            "xenstore-exists",
        ],
    ),
    ("xen-devcheck", &[]),
    ("xenconsoled", &[]),
    ("xl", &[]),
    ("xenish-blkback", &[]),
    ("xenish-netback", &[]),
];

/// Whether dom0's `/init` starts this repository's daemons (xenstored,
/// xenconsoled) before the autorun script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnDaemons {
    /// Start them and write dom0's own XenStore entries (the default).
    Start,
    /// Start none: the autorun script brings up a toolstack of its own
    /// (Xen's C xenstored or oxenstored, `xen-init-dom0`, xenconsoled).
    /// The binaries are still in the image.
    Skip,
}

/// dom0's `/init`: a busybox shell script.
pub fn init_script() -> String {
    init_script_with(OwnDaemons::Start)
}

/// dom0's `/init`, starting this repository's daemons or not.
pub fn init_script_with(daemons: OwnDaemons) -> String {
    let modules = MODULES.join(" ");
    let own = match daemons {
        OwnDaemons::Start => "true",
        OwnDaemons::Skip => "false",
    };
    format!(
        r#"#!/bin/busybox sh
# xenish dom0 init: pseudo filesystems, Xen modules and xenfs, xenstored,
# dom0's XenStore entries, then the autorun script or a shell on hvc0.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var/log/xen /var/lib/xen
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ln -sf /run /var/run
hostname dom0
for m in {modules}; do
    modprobe "$m" || echo "dom0: cannot load module $m"
done
mount -t xenfs xenfs /proc/xen || echo "dom0: cannot mount xenfs"
mkdir -p /run/xen /var/lock
# The bridge guests' vifs join by default, on link-local addresses only.
{{ ip link add xenbr0 type bridge && ip addr add 169.254.0.1/16 dev xenbr0 && ip link set xenbr0 up; }} \
    || echo "dom0: cannot set up xenbr0"
if {own} && [ -x /usr/sbin/xenstored ]; then
    mkdir -p /run/xenstored
    xenstored --pid-file /run/xenstored.pid || echo "dom0: xenstored did not start"
    # What Xen's xen-init-dom0 writes for the control domain.
    xenstore-write /local/domain/0/name Domain-0 /local/domain/0/domid 0 \
        || echo "dom0: cannot write dom0's XenStore entries"
fi
if {own} && [ -x /usr/sbin/xenconsoled ]; then
    xenconsoled --pid-file /run/xenconsoled.pid || echo "dom0: xenconsoled did not start"
fi
# dom0's persistent disk, if the machine has one (`cargo xtask run`'s
# target/dom0-disk.img on virtio): the ext4 filesystem labelled
# {DISK_LABEL}, where guest disk images can live.
if disk=$(findfs LABEL={DISK_LABEL} 2>/dev/null); then
    mkdir -p {DISK_MOUNT}
    mount -t ext4 "$disk" {DISK_MOUNT} && echo "dom0: $disk ({DISK_LABEL}) mounted at {DISK_MOUNT}" \
        || echo "dom0: cannot mount $disk at {DISK_MOUNT}"
fi
# The demo guest's disk (when the image has the demo): sparse, in memory.
[ -d /var/lib/xen/images ] && truncate -s 64M /var/lib/xen/images/demo-disk.img
echo "{READY}"
if [ -f /etc/xenish/autorun ]; then
    sh /etc/xenish/autorun
    echo "{AUTORUN_DONE}"
    sync
    umount {DISK_MOUNT} 2>/dev/null
    [ -f /{REBOOT_FLAG} ] && reboot -f
    poweroff -f
fi
echo
echo "xenish dom0: Debian's Linux $(uname -r) on $(cat /sys/hypervisor/type 2>/dev/null) $(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)."
echo "Try: xenstore-ls, xl list, xl info. 'poweroff' ends the session."
grep -q " {DISK_MOUNT} " /proc/mounts && echo "Persistent disk at {DISK_MOUNT} ($(df -h {DISK_MOUNT} | awk 'NR == 2 {{ print $4 }}') free): keep guest disk images there."
while true; do
    setsid cttyhack sh -l
    echo "dom0: the shell ended; powering off"
    sync
    umount {DISK_MOUNT} 2>/dev/null
    poweroff -f
done
"#
    )
}

/// The directories every image has.
const BASE_DIRS: &[&str] = &[
    "bin",
    "sbin",
    "usr",
    "usr/bin",
    "usr/sbin",
    "etc",
    "etc/xenish",
    "etc/xen",
    "proc",
    "sys",
    "dev",
    "run",
    "tmp",
    "var",
    "var/lib",
    "var/log",
    "root",
    "lib",
    "lib/modules",
];

/// A login profile: a prompt that says where the user is, and power
/// commands that act at once after unmounting dom0's persistent disk
/// ([`DISK_MOUNT`]) (init is a script, not a daemon that would
/// take busybox's signals).
const PROFILE: &str = "export PS1='dom0:\\w# '
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
poweroff() { sync; umount /srv/xen 2>/dev/null; busybox poweroff -f; }
reboot() { sync; umount /srv/xen 2>/dev/null; busybox reboot -f; }
halt() { sync; umount /srv/xen 2>/dev/null; busybox poweroff -f; }
";

/// Builds the dom0 image named `name` under `target/debian/`, with
/// `autorun` (if any) as `/etc/xenish/autorun` and `extra` files
/// (path in the image, mode, contents; a mode with [`DIR`] makes a
/// directory) added.
pub fn image(name: &str, autorun: Option<&str>, extra: &[(&str, u32, Vec<u8>)]) -> Result<Dom0Image, String> {
    image_with(name, autorun, extra, OwnDaemons::Start)
}

/// [`image`], with `daemons` saying whether `/init` starts this
/// repository's xenstored and xenconsoled. The parent directories of the
/// `extra` files are created as needed.
pub fn image_with(
    name: &str,
    autorun: Option<&str>,
    extra: &[(&str, u32, Vec<u8>)],
    daemons: OwnDaemons,
) -> Result<Dom0Image, String> {
    let kernel = debian::linux()?;
    let modules_root = modules_root(&kernel)?;
    let busybox = std::fs::read(debian::busybox()?).map_err(|e| format!("busybox: {e}"))?;
    let tools = tools_dir()?;

    let mut cpio = Cpio::new();
    for dir in BASE_DIRS {
        cpio = cpio.dir(dir);
    }
    cpio = cpio.file("bin/busybox", 0o755, &busybox).symlink("bin/sh", "busybox");
    cpio =
        cpio.file("init", 0o755, init_script_with(daemons).as_bytes()).file("etc/profile", 0o644, PROFILE.as_bytes());
    cpio = cpio.file("etc/hostname", 0o644, b"dom0\n");

    for (bin, aliases) in BINARIES {
        let path = tools.join(bin);
        if !path.is_file() {
            continue;
        }
        let data = without_debug_info(&path)?;
        cpio = cpio.file(&format!("usr/sbin/{bin}"), 0o755, &data);
        for alias in *aliases {
            cpio = cpio.symlink(&format!("usr/bin/{alias}"), &format!("../sbin/{bin}"));
        }
    }

    let (version_dir, files) = module_closure(&modules_root, MODULES)?;
    let base = format!("lib/modules/{version_dir}");
    cpio = cpio.dir(&base);
    let mut dirs = BTreeSet::new();
    let mut dep = String::new();
    for (rel, deps) in &files {
        let mut parent = Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
        dep.push_str(&format!("{rel}:"));
        for d in deps {
            dep.push_str(&format!(" {d}"));
        }
        dep.push('\n');
    }
    for d in &dirs {
        cpio = cpio.dir(&format!("{base}/{}", d.display()));
    }
    for rel in files.keys() {
        let data = std::fs::read(modules_root.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        cpio = cpio.file(&format!("{base}/{rel}"), 0o644, &data);
    }
    cpio = cpio.file(&format!("{base}/modules.dep"), 0o644, dep.as_bytes());

    if let Some(script) = autorun {
        cpio = cpio.file("etc/xenish/autorun", 0o755, script.as_bytes());
    }
    let mut parents = BTreeSet::new();
    for (path, _, _) in extra {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            parents.insert(p.to_path_buf());
            parent = p.parent();
        }
    }
    for dir in parents.iter().filter_map(|p| p.to_str()).filter(|p| !BASE_DIRS.contains(p)) {
        cpio = cpio.dir(dir);
    }
    for (path, mode, data) in extra {
        cpio = if mode & DIR != 0 { cpio.dir(path) } else { cpio.file(path, *mode, data) };
    }

    let path = images::target_dir().join("debian").join(format!("dom0-{name}.cpio"));
    images::write_atomic(&path, &cpio.finish())?;
    Ok(Dom0Image { kernel, initrd: path })
}

/// The demo guest's `/init`: Debian's Linux as a domU with a busybox shell
/// on its console (`xl create /etc/xen/demo.cfg -c`).
const DEMO_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
# `xl shutdown`/`reboot` reach the kernel, which runs /sbin/poweroff or
# /sbin/reboot; init is this script, not a daemon that takes busybox's
# signals, so they act directly.
for cmd in poweroff reboot; do
    rm -f /sbin/$cmd
    printf '#!/bin/sh\nsync\nexec /bin/busybox %s -f\n' $cmd > /sbin/$cmd
    chmod 755 /sbin/$cmd
done
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname demo
insmod /lib/modules/xen-blkfront.ko 2>/dev/null
insmod /lib/modules/xen-netfront.ko 2>/dev/null
echo
echo "demo: Debian's Linux $(uname -r), a domU on $(cat /sys/hypervisor/type) (uuid $(cat /sys/hypervisor/uuid))."
echo "demo: 'poweroff' ends this guest; Ctrl-] leaves its console (xl console demo comes back)."
[ -b /dev/xvda ] && echo "demo: /dev/xvda is a $(($(cat /sys/block/xvda/size) / 2048)) MiB disk (mke2fs /dev/xvda to use it)."
for i in $(seq 50); do [ -d /sys/class/net/eth0 ] && break; sleep 0.1; done
if ip addr add 169.254.0.5/16 dev eth0 2>/dev/null && ip link set eth0 up; then
    echo "demo: eth0 is 169.254.0.5 on dom0's bridge xenbr0 (ping 169.254.0.1 reaches dom0)."
fi
while true; do
    setsid cttyhack sh -l
    busybox poweroff -f
done
"#;

/// The demo guest's login profile.
const DEMO_PROFILE: &str = "export PS1='demo:\\w# '
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
poweroff() { sync; busybox poweroff -f; }
reboot() { sync; busybox reboot -f; }
";

/// `/etc/xen/demo.cfg`: the ready-made guest of `cargo xtask run`.
pub const DEMO_CFG: &str = r#"# The demo guest: Debian's stock kernel with a busybox shell.
#   xl create /etc/xen/demo.cfg -c     start it and attach to its console
name = "demo"
type = "pv"
kernel = "/var/lib/xen/images/demo-vmlinuz"
ramdisk = "/var/lib/xen/images/demo-initrd.cpio"
extra = "console=hvc0 quiet"
memory = 256
vcpus = 1
on_reboot = "restart"
# A 64 MiB disk dom0 makes at boot, served by xenish-blkback.
disk = [ 'vdev=xvda, target=/var/lib/xen/images/demo-disk.img' ]
# A network interface on dom0's bridge xenbr0 (dom0 is 169.254.0.1),
# served by xenish-netback; the guest's /init gives it 169.254.0.5.
vif = [ 'mac=00:16:3e:00:00:05, ip=169.254.0.5' ]
"#;

/// Files that give the dom0 image the demo guest: `/etc/xen/demo.cfg`,
/// Debian's kernel and a busybox initramfs for it under
/// `/var/lib/xen/images/` (for [`image`]'s `extra`).
pub fn demo_files() -> Result<Vec<(String, u32, Vec<u8>)>, String> {
    let vmlinuz = debian::linux()?;
    let kernel = std::fs::read(&vmlinuz).map_err(|e| format!("kernel: {e}"))?;
    let busybox = std::fs::read(debian::busybox()?).map_err(|e| format!("busybox: {e}"))?;
    // Debian builds the block and network frontends as modules (depending
    // on none).
    let blkfront = modules_root(&vmlinuz)?.join("kernel/drivers/block/xen-blkfront.ko");
    let blkfront = std::fs::read(&blkfront).map_err(|e| format!("{}: {e}", blkfront.display()))?;
    let netfront = modules_root(&vmlinuz)?.join("kernel/drivers/net/xen-netfront.ko");
    let netfront = std::fs::read(&netfront).map_err(|e| format!("{}: {e}", netfront.display()))?;
    let initrd = Cpio::new()
        .dir("bin")
        .file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .dir("etc")
        .file("etc/profile", 0o644, DEMO_PROFILE.as_bytes())
        .file("init", 0o755, DEMO_INIT.as_bytes())
        .dir("lib")
        .dir("lib/modules")
        .file("lib/modules/xen-blkfront.ko", 0o644, &blkfront)
        .file("lib/modules/xen-netfront.ko", 0o644, &netfront)
        .finish();
    Ok(vec![
        ("var/lib/xen".into(), 0o755 | DIR, Vec::new()),
        ("var/lib/xen/images".into(), 0o755 | DIR, Vec::new()),
        ("var/lib/xen/images/demo-vmlinuz".into(), 0o644, kernel),
        ("var/lib/xen/images/demo-initrd.cpio".into(), 0o644, initrd),
        ("etc/xen/demo.cfg".into(), 0o644, DEMO_CFG.as_bytes().to_vec()),
    ])
}

/// The mode bit that makes an `extra` entry of [`image`] a directory.
pub const DIR: u32 = 0o040000;

/// `lib/modules/<version>` of the unpacked kernel package `vmlinuz` came from.
fn modules_root(vmlinuz: &Path) -> Result<PathBuf, String> {
    let root = vmlinuz.parent().and_then(Path::parent).ok_or("kernel path has no package root")?;
    let name = vmlinuz.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let version = name.strip_prefix("vmlinuz-").ok_or(format!("{name}: not a vmlinuz-VERSION"))?;
    let dir = root.join("lib/modules").join(version);
    dir.is_dir().then_some(dir.clone()).ok_or(format!("{} is missing", dir.display()))
}

/// Module names compare with `-` and `_` alike, as the kernel's do.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// Every module under `modules_root/kernel`, by name (`-` as `_`).
pub fn modules_by_name(modules_root: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut by_name = BTreeMap::new();
    let mut stack = vec![modules_root.join("kernel")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
                by_name.insert(normalise(stem), path);
            }
        }
    }
    Ok(by_name)
}

/// The modules `wanted` and everything they depend on: their paths
/// relative to `modules_root`, each with its dependencies' paths; and the
/// version directory's name.
fn module_closure(modules_root: &Path, wanted: &[&str]) -> Result<(String, BTreeMap<String, Vec<String>>), String> {
    let version = modules_root.file_name().and_then(|n| n.to_str()).ok_or("bad modules directory")?.to_string();
    let by_name = modules_by_name(modules_root)?;
    let mut out = BTreeMap::new();
    let mut todo: Vec<String> = wanted.iter().map(|m| normalise(m)).collect();
    let mut seen = BTreeSet::new();
    let mut deps_of = BTreeMap::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let path = by_name.get(&name).ok_or(format!("module {name} is not in {}", modules_root.display()))?;
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let deps = modinfo_depends(&data).ok_or(format!("{}: no .modinfo section", path.display()))?;
        for d in &deps {
            todo.push(normalise(d));
        }
        deps_of.insert(name, deps);
    }
    let rel = |name: &str| -> Result<String, String> {
        let path = by_name.get(&normalise(name)).ok_or(format!("module {name} is missing"))?;
        Ok(path.strip_prefix(modules_root).map_err(|e| e.to_string())?.display().to_string())
    };
    for (name, direct) in &deps_of {
        // modules.dep lists every module needed, in load order reversed:
        // the full closure, deepest last.
        let mut closure = Vec::new();
        let mut stack: Vec<String> = direct.iter().map(|d| normalise(d)).collect();
        while let Some(d) = stack.pop() {
            if closure.contains(&d) {
                continue;
            }
            if let Some(more) = deps_of.get(&d) {
                stack.extend(more.iter().map(|m| normalise(m)));
            }
            closure.push(d);
        }
        let paths = closure.iter().map(|d| rel(d)).collect::<Result<Vec<_>, _>>()?;
        out.insert(rel(name)?, paths);
    }
    Ok((version, out))
}

/// The `depends=` list of a kernel module (an ELF relocatable file): read
/// from its `.modinfo` section. `None` if the file is not such an ELF.
pub fn modinfo_depends(ko: &[u8]) -> Option<Vec<String>> {
    let u16_at = |o: usize| ko.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| ko.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    let u64_at = |o: usize| ko.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if ko.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let section = |i: usize| -> Option<(u32, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(at)?, usize::try_from(u64_at(at + 0x18)?).ok()?, usize::try_from(u64_at(at + 0x20)?).ok()?))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let names = ko.get(stroff..stroff.checked_add(strsize)?)?;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = names.get(name as usize..)?;
        if name.split(|&b| b == 0).next()? != b".modinfo" {
            continue;
        }
        let info = ko.get(off..off.checked_add(size)?)?;
        for field in info.split(|&b| b == 0) {
            if let Some(list) = field.strip_prefix(b"depends=") {
                let list = std::str::from_utf8(list).ok()?;
                return Some(list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect());
            }
        }
        return Some(Vec::new());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a `.modinfo` section holding `info`.
    fn elf_with_modinfo(info: &[u8]) -> Vec<u8> {
        let shstr = b"\0.modinfo\0.shstrtab\0";
        let mut f = vec![0u8; 64];
        f[..5].copy_from_slice(b"\x7fELF\x02");
        let info_off = f.len();
        f.extend_from_slice(info);
        let str_off = f.len();
        f.extend_from_slice(shstr);
        let shoff = f.len();
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        let sh = |name: u32, off: usize, size: usize| {
            let mut s = vec![0u8; 64];
            s[..4].copy_from_slice(&name.to_le_bytes());
            s[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            s[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            s
        };
        f.extend(sh(0, 0, 0));
        f.extend(sh(1, info_off, info.len()));
        f.extend(sh(10, str_off, shstr.len()));
        f
    }

    #[test]
    fn depends_come_from_the_modinfo_section() {
        let ko = elf_with_modinfo(b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0");
        assert_eq!(modinfo_depends(&ko), Some(vec!["virtio".to_string(), "virtio_ring".to_string()]));
        let none = elf_with_modinfo(b"license=GPL\0depends=\0");
        assert_eq!(modinfo_depends(&none), Some(vec![]));
    }

    #[test]
    fn garbage_is_not_a_module() {
        assert_eq!(modinfo_depends(b"not an elf"), None);
        let mut ko = elf_with_modinfo(b"depends=a\0");
        ko.truncate(100);
        assert_eq!(modinfo_depends(&ko), None, "section headers cut off");
    }

    #[test]
    fn init_loads_every_module_and_starts_xenstored() {
        let init = init_script();
        for m in MODULES {
            assert!(init.contains(m), "{m}");
        }
        assert!(init.contains("mount -t xenfs xenfs /proc/xen"));
        assert!(init.contains("xenstored --pid-file"));
        assert!(init.contains("/local/domain/0/name Domain-0"));
    }
}
