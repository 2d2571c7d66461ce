//! `cargo xtask linux`: Debian's stock kernel (`linux-image-amd64`) as dom0
//! on xenish, to see how far it gets. An exploration tool: it prints the
//! serial log and says how QEMU ended; it asserts nothing about Linux.

use std::process::ExitCode;
use std::time::Duration;

use tests::{Boot, Exit};

/// dom0's command line.
const LINUX_CMDLINE: &str = "console=hvc0 earlyprintk=xen loglevel=8";
/// xenish's command line unless one is given after `--`.
const DEFAULT_XENISH_CMDLINE: &str = "dom0_mem=512M";
/// Boot time limit unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT_SECS: u64 = 120;
use tests::linux::{CPU, QEMU_MEMORY_MIB};

/// Boots Debian's kernel as dom0 and prints the serial log.
pub fn run(cmdline: &[String], timeout: Option<u64>) -> Result<ExitCode, String> {
    tests::tools::ensure()?;
    let images = tests::images::build(&tests::images::target_dir())?;
    let kernel = tests::debian::linux()?;
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
