//! Scripted dom0 boots on xenish and on Xen 4.17 in the same QEMU, side
//! by side, and the comparison of what their scripts print.
//!
//! A test gives a shell script for dom0 (it runs as `/etc/xenish/autorun`
//! in the image [`dom0::image`] builds) that prints `check: ` lines for
//! what must hold and be the same on both hypervisors, and `info: ` lines
//! for what differs run to run (times, throughput). [`Scenario::both`]
//! boots both at once and returns both serial logs; [`expect_all`] and
//! [`assert_same`] check them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::dom0::{self, OwnDaemons, AUTORUN_DONE};
use crate::initramfs::Cpio;
use crate::linux::{Hypervisor, CPU};
use crate::{debian, images, Boot, Outcome};

/// One pair of boots at a time per test process: each pair runs two
/// QEMUs already, and the machines have two cores.
static ONE_PAIR_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A dom0 script and what its boots need.
#[derive(Clone, Debug)]
pub struct Scenario<'a> {
    /// Names the images and the saved serial logs (`target/compare/`).
    pub name: String,
    /// dom0's script.
    pub script: String,
    /// Files added to dom0's image: path, mode (with [`dom0::DIR`] for a
    /// directory), contents.
    pub extra: &'a [(&'a str, u32, Vec<u8>)],
    /// QEMU's memory.
    pub memory_mib: u32,
    /// dom0's memory (`dom0_mem=` on both hypervisors).
    pub dom0_mem: &'static str,
    /// QEMU's `-cpu`.
    pub cpu: String,
    /// More of Xen's command line (after its serial console and dom0_mem).
    pub xen_args: &'static str,
    /// Options for both hypervisors' command lines (say `dom0_max_vcpus=2`).
    pub common_args: &'static str,
    /// More of xenish's command line.
    pub xenish_args: &'static str,
    /// QEMU's CPUs for both boots (`-smp`; [`crate::qemu::default_smp`]
    /// unless set).
    pub smp: Option<u32>,
    /// A boot's time limit (scaled by `XENISH_TIMEOUT_SCALE`).
    pub limit: Duration,
    /// Whether dom0's `/init` starts this repository's daemons.
    pub daemons: OwnDaemons,
    /// More QEMU arguments for the boot on each hypervisor (devices, each
    /// boot with its own disk image).
    pub qemu_extra: Vec<(Hypervisor, Vec<String>)>,
    /// Let dom0's `/init` power the machine off after the script (`poweroff
    /// -f`) and wait for QEMU to end, rather than stopping it at the
    /// script's end; the machine has no debug-exit device, so it ends as
    /// real hardware would, and the boot's [`crate::Outcome::exit`] tells
    /// how.
    pub power_off: bool,
    /// Let dom0's `/init` reboot the machine after the script (`reboot
    /// -f`, [`dom0::REBOOT_FLAG`] in its image) on a machine without the
    /// debug-exit device: QEMU (under `-no-reboot`) exits when the machine
    /// resets, and the boot's [`crate::Outcome::exit`] is
    /// [`crate::qemu::Exit::Reset`] if it did.
    pub reboot: bool,
}

impl<'a> Scenario<'a> {
    /// A scenario running `script` with `extra` files, with the defaults:
    /// 1 GiB of QEMU memory, 512 MiB for dom0, `-cpu max,-smap`, 600 s.
    pub fn new(name: &str, script: &str, extra: &'a [(&'a str, u32, Vec<u8>)]) -> Self {
        Scenario {
            name: name.into(),
            script: script.into(),
            extra,
            memory_mib: 1024,
            dom0_mem: "512M",
            cpu: CPU.into(),
            xen_args: "",
            common_args: "",
            xenish_args: "",
            smp: None,
            limit: Duration::from_secs(600),
            daemons: OwnDaemons::Start,
            qemu_extra: Vec::new(),
            power_off: false,
            reboot: false,
        }
    }

    /// Boots dom0 with the script on `hv` and waits for the script's end.
    /// Panics if the boot fails or the script does not finish.
    pub fn boot(&self, hv: Hypervisor) -> Outcome {
        let image_name = format!("{}-{hv:?}", self.name).to_lowercase();
        let mut files = self.extra.to_vec();
        if self.reboot {
            files.push((dom0::REBOOT_FLAG, 0o644, Vec::new()));
        }
        let image =
            dom0::image_with(&image_name, Some(&self.script), &files, self.daemons).unwrap_or_else(|e| panic!("{e}"));
        let dom0_mem = format!("dom0_mem={} {}", self.dom0_mem, self.common_args);
        let (hypervisor, cmdline) = match hv {
            Hypervisor::Xenish => {
                let extra = crate::qemu::extra_options();
                let options = [self.xenish_args, crate::qemu::XENISH_TEST_OPTIONS, extra.as_str()];
                let options: Vec<&str> = options.into_iter().filter(|o| !o.is_empty()).collect();
                (images::images().hypervisor.clone(), format!("{dom0_mem} {}", options.join(" ")))
            }
            Hypervisor::Xen => (
                debian::xen().unwrap_or_else(|e| panic!("{e}")),
                format!("{} {dom0_mem} {}", debian::XEN_CMDLINE, self.xen_args),
            ),
        };
        let extra: Vec<&str> =
            self.qemu_extra.iter().filter(|(h, _)| *h == hv).flat_map(|(_, a)| a.iter().map(String::as_str)).collect();
        let mut boot = Boot::with_hypervisor(hypervisor);
        if let Some(cpus) = self.smp {
            boot = boot.smp(cpus);
        }
        let boot = boot
            .qemu_extra(&extra)
            .cpu(&self.cpu)
            .memory_mib(self.memory_mib)
            .cmdline(cmdline.trim_end())
            .module(image.kernel, dom0::KERNEL_CMDLINE)
            .module(image.initrd, "")
            .timeout(self.limit);
        let boot = if self.power_off || self.reboot { boot.without_debug_exit() } else { boot.until(AUTORUN_DONE) };
        let out = boot.try_run().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.serial.contains(AUTORUN_DONE), "dom0's script did not finish on {hv:?}\n{out}");
        out
    }

    /// Boots both hypervisors at once and returns (xenish, Xen 4.17).
    /// Saves both serial logs under `target/compare/` and prints how long
    /// each took, with the script's `info: t=` phase stamps. Checks that
    /// xenish neither panicked nor saw dom0 crash.
    ///
    /// With `XENISH_COMPARE=xenish` (for trying xenish options, say
    /// `XENISH_OPTIONS=smp_guests=0`, without the Xen boot's time) only
    /// xenish boots, and its log stands in for Xen's too: the expected
    /// lines are still checked, the comparison proves nothing.
    pub fn both(&self) -> (Outcome, Outcome) {
        let _one = ONE_PAIR_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        if std::env::var("XENISH_COMPARE").is_ok_and(|v| v == "xenish") {
            let xenish = self.boot(Hypervisor::Xenish);
            let logs = images::target_dir().join("compare");
            let _ = std::fs::create_dir_all(&logs);
            let _ = std::fs::write(logs.join(format!("{}-xenish.log", self.name)), &xenish.serial);
            eprintln!("{} on xenish: {:.0?} (XENISH_COMPARE=xenish: no Xen boot)", self.name, xenish.elapsed);
            xenish.expect_no("xenish: d0 crashed").expect_no("xenish: PANIC");
            return (xenish.clone(), xenish);
        }
        // Both boots at once, each on slots of its own (`Slots`), given
        // back as it ends: Xen's boots take two to three times xenish's
        // under TCG, and the slot xenish's leaves runs another test's boot
        // meanwhile (under `cargo xtask test`, another test process's).
        let (xenish, xen) = std::thread::scope(|s| {
            let xenish = s.spawn(|| self.boot(Hypervisor::Xenish));
            let xen = s.spawn(|| self.boot(Hypervisor::Xen));
            (xenish.join(), xen.join())
        });
        let (xenish, xen) = (xenish.expect("the xenish boot failed"), xen.expect("the Xen boot failed"));
        let logs = images::target_dir().join("compare");
        let _ = std::fs::create_dir_all(&logs);
        for (hv, out) in [("xenish", &xenish), ("xen", &xen)] {
            let log = logs.join(format!("{}-{hv}.log", self.name));
            let _ = std::fs::write(&log, &out.serial);
            eprintln!("{} on {hv}: {:.0?}, serial log in {}", self.name, out.elapsed, log.display());
            for l in lines(out, "info: t=") {
                eprintln!("  {}", l.trim_start_matches("info: "));
            }
        }
        xenish.expect_no("xenish: d0 crashed").expect_no("xenish: PANIC");
        (xenish, xen)
    }
}

/// The lines a script printed with `prefix`, from the prefix on.
pub fn lines(out: &Outcome, prefix: &str) -> Vec<String> {
    out.serial.lines().filter_map(|l| l.find(prefix).map(|at| l[at..].trim_end().to_string())).collect()
}

/// Asserts every `expected` line is among the `check: ` lines of `out`.
pub fn expect_all(out: &Outcome, expected: &[&str]) {
    let got = lines(out, "check: ");
    for e in expected {
        assert!(got.iter().any(|l| l == e), "missing {e:?} in\n{}\n--- serial ---\n{out}", got.join("\n"));
    }
}

/// Asserts both boots printed the same `check: ` lines, except those
/// starting with one of `differ` (numbers that legitimately differ).
pub fn assert_same(xenish: &Outcome, xen: &Outcome, differ: &[&str]) {
    let keep = |l: &String| !differ.iter().any(|d| l.starts_with(d));
    let a: Vec<_> = lines(xenish, "check: ").into_iter().filter(keep).collect();
    let b: Vec<_> = lines(xen, "check: ").into_iter().filter(keep).collect();
    assert_eq!(a, b, "xenish and Xen 4.17 differ\n--- xenish ---\n{xenish}\n--- xen ---\n{xen}");
}

/// `lib/modules/<version>` of Debian's kernel.
fn modules_root() -> Result<PathBuf, String> {
    let vmlinuz = debian::linux()?;
    let name = vmlinuz.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let version = name.strip_prefix("vmlinuz-").ok_or(format!("{name}: not a vmlinuz-VERSION"))?;
    let root = vmlinuz.parent().and_then(Path::parent).ok_or("kernel path has no package root")?;
    Ok(root.join("lib/modules").join(version))
}

/// Debian's kernel modules `wanted` and their dependencies, in load order
/// (dependencies first): file name and contents.
pub fn module_files(wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let root = modules_root()?;
    let by_name = dom0::modules_by_name(&root)?;
    fn visit(
        name: &str,
        by_name: &std::collections::BTreeMap<String, PathBuf>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        let name = name.replace('-', "_");
        let file = format!("{name}.ko");
        if order.iter().any(|(n, _)| *n == file) {
            return Ok(());
        }
        let path = by_name.get(&name).ok_or(format!("module {name} not found"))?;
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for dep in dom0::modinfo_depends(&data).unwrap_or_default() {
            visit(&dep, by_name, order)?;
        }
        order.push((file, data));
        Ok(())
    }
    let mut order = Vec::new();
    for w in wanted {
        visit(w, &by_name, &mut order)?;
    }
    Ok(order)
}

/// A Linux domU's initramfs: Debian's static busybox, the kernel modules
/// `modules` (with their dependencies) under `/modules` with their load
/// order in `/modules/order`, the directories a shell init needs, and
/// `init` (a busybox shell script, without its `#!` line) as `/init`.
pub fn domu_initramfs(modules: &[&str], init: &str) -> Result<Vec<u8>, String> {
    domu_initramfs_with(modules, init, &[])
}

/// [`domu_initramfs`] with `extra` files too: path (in a directory the
/// image has: `bin`, `tmp`, ...), mode, contents.
pub fn domu_initramfs_with(modules: &[&str], init: &str, extra: &[(&str, u32, &[u8])]) -> Result<Vec<u8>, String> {
    let busybox = std::fs::read(debian::busybox()?).map_err(|e| format!("busybox: {e}"))?;
    let modules = module_files(modules)?;
    let order: String = modules.iter().map(|(n, _)| format!("{n}\n")).collect();
    let mut cpio = Cpio::new().dir("bin").file("bin/busybox", 0o755, &busybox).symlink("bin/sh", "busybox");
    for dir in ["proc", "sys", "dev", "tmp", "mnt", "modules"] {
        cpio = cpio.dir(dir);
    }
    cpio = cpio.file("modules/order", 0o644, order.as_bytes()).file(
        "init",
        0o755,
        format!("#!/bin/busybox sh\n{init}").as_bytes(),
    );
    for (name, data) in &modules {
        cpio = cpio.file(&format!("modules/{name}"), 0o644, data);
    }
    for (path, mode, data) in extra {
        cpio = cpio.file(path, *mode, data);
    }
    Ok(cpio.finish())
}
