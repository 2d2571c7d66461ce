//! `cargo xtask profile`: where xenish's instructions go. Boots the
//! benchmark kernel as dom0 on xenish with the `insn-profile` QEMU plugin
//! (executed instructions per translated block, exact, independent of
//! timing), maps the blocks to xenish's and the guest's function symbols
//! (`nm`) and prints the functions that executed the most instructions,
//! with the count per benchmark operation.
//!
//! The bench kernel runs each of its operations `WARMUP + N` = 1100 times
//! (see `tests/guests/src/bin/bench.rs`), so a function only one
//! operation uses costs its total / 1100 per operation; functions every
//! hypercall passes through (entry, exit, dispatch) are shared by all.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use tests::images::workspace_root;
use tests::Boot;

/// Times the bench kernel runs each operation (warm-up and measured).
const RUNS_PER_OP: u64 = 1100;

/// A function symbol: start address, size (`None` if the ELF does not
/// say), owner (`xenish` or `guest`), name.
type Symbol = (u64, Option<u64>, &'static str, String);

/// The text symbols of `elf`, by `nm -n -C -S`.
fn symbols(elf: &Path, owner: &'static str) -> Result<Vec<Symbol>, String> {
    let out = Command::new("nm")
        .args(["-n", "-C", "-S"])
        .arg(elf)
        .output()
        .map_err(|e| format!("cannot run nm (binutils): {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {} failed", elf.display()));
    }
    Ok(parse_nm(&String::from_utf8_lossy(&out.stdout), owner))
}

/// `nm -n -S` lines (`ADDR [SIZE] TYPE NAME`) of text symbols. A symbol
/// without a size (an assembly label) ends where the next symbol of any
/// kind starts: a boot page table labelled in `.text` does not swallow the
/// firmware's and GRUB's code at the addresses above it.
fn parse_nm(text: &str, owner: &'static str) -> Vec<Symbol> {
    let is_text = |k: &str| matches!(k, "t" | "T" | "W" | "w");
    // (address, size, whether text, name), in address order.
    let all: Vec<(u64, Option<u64>, bool, String)> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.splitn(4, ' ').collect();
            let addr = u64::from_str_radix(w.first()?, 16).ok()?;
            match w.as_slice() {
                [_, size, kind, name] if kind.len() == 1 && u64::from_str_radix(size, 16).is_ok() => {
                    Some((addr, u64::from_str_radix(size, 16).ok(), is_text(kind), name.to_string()))
                }
                [_, kind, ..] if kind.len() == 1 => Some((addr, None, is_text(kind), w[2..].join(" "))),
                _ => None,
            }
        })
        .collect();
    all.iter()
        .enumerate()
        .filter(|(_, s)| s.2)
        .map(|(i, (addr, size, _, name))| {
            let next = all[i + 1..].iter().map(|s| s.0).find(|&a| a > *addr);
            (*addr, size.or_else(|| next.map(|n| n - addr)), owner, name.clone())
        })
        .collect()
}

/// The plugin's lines (`VADDR INSNS RUNS`) summed per symbol:
/// (instructions, owner, name), most first. Blocks below the first
/// function (firmware, GRUB, guest user code) are `(outside both images)`.
fn attribute(profile: &str, syms: &[Symbol]) -> Vec<(u64, &'static str, String)> {
    let mut totals: std::collections::BTreeMap<(&'static str, String), u64> = Default::default();
    for line in profile.lines() {
        let mut w = line.split_whitespace();
        let (Some(Ok(vaddr)), Some(Ok(insns)), Some(Ok(runs))) = (
            w.next().map(|v| u64::from_str_radix(v, 16)),
            w.next().map(str::parse::<u64>),
            w.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        let at = syms.partition_point(|s| s.0 <= vaddr);
        let key = match at.checked_sub(1).and_then(|i| syms.get(i)) {
            Some((start, size, owner, name)) if size.is_none_or(|s| vaddr < start + s) => (*owner, name.clone()),
            _ => ("?", "(outside both images)".to_string()),
        };
        *totals.entry(key).or_default() += insns * runs;
    }
    let mut out: Vec<_> = totals.into_iter().map(|((owner, name), n)| (n, owner, name)).collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.0));
    out
}

/// Builds the `insn-profile` plugin; returns its path.
fn build_plugin() -> Result<PathBuf, String> {
    tests::tools::ensure()?;
    eprintln!("xtask profile: building the insn-profile QEMU plugin...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "-p", "insn-profile"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building insn-profile failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    Ok(target.join("release/libinsn_profile.so"))
}

/// Builds the plugin, boots, prints the `top` functions.
pub fn run(top: usize) -> Result<ExitCode, String> {
    let plugin = build_plugin()?;
    let images = tests::images::build(&workspace_root().join("target"))?;
    let bench = images.guest("bench");
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out_file = dir.join("profile.txt");
    let _ = std::fs::remove_file(&out_file);
    eprintln!("xtask profile: the bench kernel on xenish, with the plugin");
    let arg = format!("{},out={}", plugin.display(), out_file.display());
    let out = Boot::with_hypervisor(images.hypervisor.clone())
        .cpu("max,-smap")
        .cmdline("dom0_mem=64M")
        .module(bench.clone(), "bench")
        .qemu_extra(&["-plugin", &arg])
        .timeout(Duration::from_secs(900))
        .try_run()?;
    if !out.serial.contains("bench: done") {
        return Err(format!("the bench kernel did not finish ({:?})\n{}", out.exit, out.serial));
    }
    let profile = std::fs::read_to_string(&out_file)
        .map_err(|e| format!("{}: {e} (QEMU must exit normally for the plugin to write it)", out_file.display()))?;
    let mut syms = symbols(&images.hypervisor, "xenish")?;
    syms.extend(symbols(&bench, "guest")?);
    syms.sort_by_key(|s| s.0);
    syms.dedup_by_key(|s| s.0);
    let rows = attribute(&profile, &syms);
    let total: u64 = rows.iter().map(|r| r.0).sum();
    let xenish: u64 = rows.iter().filter(|r| r.1 == "xenish").map(|r| r.0).sum();
    println!("instructions executed in the whole boot: {total} (xenish {xenish}, the rest guest or unknown)");
    println!("{:>12} {:>10}  {:<7} function", "instructions", "per op", "in");
    for (n, owner, name) in rows.iter().take(top) {
        println!("{n:>12} {:>10}  {owner:<7} {name}", n / RUNS_PER_OP);
    }
    eprintln!("xtask profile: per-block counts in {}", out_file.display());
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask profile --linux ROW`: where one Linux-level benchmark
/// row's instructions go. Boots Debian's Linux as dom0 on xenish with
/// `xenish-linuxbench` as `/init` under `-icount` and the plugin twice:
/// once with the boot row alone (`LINUXBENCH_ONLY=none`), once with ROW
/// too, and prints each function's difference divided by ROW's operation
/// count: xenish's functions (its symbols) and the kernel's (its
/// `/proc/kallsyms`); user space and anything else is one line. With
/// `xen`, the same boots on Debian's Xen 4.17 (its default command line,
/// as the bench's "Xen 4.17" column): the kernel's functions are the same
/// symbols, Xen's own instructions count with user space's.
pub fn run_linux(top: usize, row: &str, xen: bool) -> Result<ExitCode, String> {
    if !crate::bench_linux::ROWS.iter().any(|(r, _)| *r == row && r != &"boot_to_init") {
        let rows: Vec<&str> = crate::bench_linux::ROWS.iter().map(|r| r.0).filter(|r| *r != "boot_to_init").collect();
        return Err(format!("--linux: no row {row:?}; the rows are {}", rows.join(", ")));
    }
    let plugin = build_plugin()?;
    let images = tests::images::build(&workspace_root().join("target"))?;
    let tools = crate::build_tools()?;
    let initrd = crate::bench_linux::initramfs(&tools)?;
    let kernel = tests::debian::linux()?;
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (hypervisor, cmdline, side) = if xen {
        (tests::debian::xen()?, format!("{} {}", tests::debian::XEN_CMDLINE, tests::linux::DOM0_MEM), "xen-")
    } else {
        (images.hypervisor.clone(), tests::linux::DOM0_MEM.to_string(), "")
    };
    let boot = |only: &str| -> Result<(String, u64), String> {
        let out_file = dir.join(format!("profile-linux-{side}{only}.txt"));
        let _ = std::fs::remove_file(&out_file);
        eprintln!(
            "xtask profile: Linux as dom0 on {}, LINUXBENCH_ONLY={only}, -icount, with the plugin (minutes)...",
            if xen { "Xen 4.17" } else { "xenish" }
        );
        let arg = format!("{},out={}", plugin.display(), out_file.display());
        let mut extra = vec!["-plugin", arg.as_str()];
        extra.extend_from_slice(crate::bench_linux::ICOUNT);
        let out = Boot::with_hypervisor(hypervisor.clone())
            .cpu(tests::linux::CPU)
            .memory_mib(tests::linux::QEMU_MEMORY_MIB)
            .cmdline(&cmdline)
            .module(kernel.clone(), &format!("{} LINUXBENCH_ONLY={only}", tests::linux::KERNEL_CMDLINE))
            .module(initrd.clone(), "")
            .qemu_extra(&extra)
            .timeout(Duration::from_secs(3600))
            .try_run()?;
        if !out.serial.contains(crate::bench_linux::DONE) {
            return Err(format!("linuxbench did not finish ({:?})\n{}", out.exit, out.serial));
        }
        let n = crate::bench_linux::operations(&out.serial, only).unwrap_or(0);
        let profile = std::fs::read_to_string(&out_file)
            .map_err(|e| format!("{}: {e} (QEMU must exit normally for the plugin to write it)", out_file.display()))?;
        Ok((profile, n))
    };
    let (base, _) = boot("none")?;
    let (with_row, n) = boot(row)?;
    if n == 0 {
        return Err(format!("linuxbench printed no operation count for {row}"));
    }
    // On Xen, xenish's symbols would name Xen's blocks wrongly: none.
    let mut syms = if xen { Vec::new() } else { symbols(&images.hypervisor, "xenish")? };
    syms.extend(kernel_symbols(&images.hypervisor, &kernel, &initrd, &dir)?);
    syms.sort_by_key(|s| s.0);
    syms.dedup_by_key(|s| s.0);
    let rows = difference(&attribute(&with_row, &syms), &attribute(&base, &syms));
    let per = |owner: &str| rows.iter().filter(|r| r.1 == owner).map(|r| r.0).sum::<i64>() / n as i64;
    println!(
        "{row}: {n} operations; per operation: xenish {}, Linux kernel {}, user space and other {}",
        per("xenish"),
        per("linux"),
        per("?")
    );
    println!("{:>12} {:>10}  {:<7} function", "instructions", "per op", "in");
    for (d, owner, name) in rows.iter().take(top) {
        println!("{d:>12} {:>10}  {owner:<7} {name}", d / n as i64);
    }
    eprintln!("xtask profile: per-block counts in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The kernel's text symbols, from its own `/proc/kallsyms` (Debian's
/// `System.map` is a stub; the real one is in a `-dbg` package of a
/// gigabyte): one plain boot with `LINUXBENCH_ONLY=kallsyms`, kept in
/// `DIR/kallsyms-KERNEL.txt`. A PV kernel runs where it was linked (no
/// address randomization), so the addresses hold for every boot.
fn kernel_symbols(hypervisor: &Path, kernel: &Path, initrd: &Path, dir: &Path) -> Result<Vec<Symbol>, String> {
    let name = kernel.file_name().and_then(|n| n.to_str()).unwrap_or("vmlinuz");
    let cache = dir.join(format!("kallsyms-{name}.txt"));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        return Ok(parse_nm(&text, "linux"));
    }
    eprintln!("xtask profile: reading the kernel's symbols from its /proc/kallsyms (one boot)...");
    let out = Boot::with_hypervisor(hypervisor.to_path_buf())
        .cpu(tests::linux::CPU)
        .memory_mib(tests::linux::QEMU_MEMORY_MIB)
        .cmdline(tests::linux::DOM0_MEM)
        .module(kernel.to_path_buf(), &format!("{} LINUXBENCH_ONLY=kallsyms", tests::linux::KERNEL_CMDLINE))
        .module(initrd.to_path_buf(), "")
        .timeout(Duration::from_secs(900))
        .try_run()?;
    let text: String = out
        .serial
        .lines()
        .filter_map(|l| l.split("linuxbench-sym: ").nth(1))
        .filter(|l| !l.starts_with("0000000000000000"))
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if text.lines().count() < 1000 || !out.serial.contains(crate::bench_linux::DONE) {
        let log = dir.join("kallsyms-boot.log");
        let _ = std::fs::write(&log, &out.serial);
        return Err(format!("the kernel's symbols did not arrive ({:?}; the boot's log: {})", out.exit, log.display()));
    }
    std::fs::write(&cache, &text).map_err(|e| format!("{}: {e}", cache.display()))?;
    Ok(parse_nm(&text, "linux"))
}

/// Per function, `with` minus `base` (functions in either), largest
/// first.
fn difference(
    with: &[(u64, &'static str, String)],
    base: &[(u64, &'static str, String)],
) -> Vec<(i64, &'static str, String)> {
    let mut d: std::collections::BTreeMap<(&'static str, String), i64> = Default::default();
    for (n, owner, name) in with {
        *d.entry((owner, name.clone())).or_default() += *n as i64;
    }
    for (n, owner, name) in base {
        *d.entry((owner, name.clone())).or_default() -= *n as i64;
    }
    let mut out: Vec<_> = d.into_iter().map(|((owner, name), n)| (n, owner, name)).collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.0));
    out
}

#[cfg(test)]
mod tests_ {
    use super::*;

    #[test]
    fn attributes_blocks_to_the_function_they_start_in() {
        let syms = parse_nm(
            "0000000000001000 t entry\n0000000000001100 0000000000000080 T dispatch\n\
             0000000000002000 0000000000000010 D data\n",
            "xenish",
        );
        assert_eq!(syms.len(), 2);
        let rows = attribute("1000 10 5\n1050 3 2\n1100 4 100\nfff 1 1\n1180 2 2\nbogus\n", &syms);
        assert_eq!(rows[0], (400, "xenish", "dispatch".to_string()));
        assert_eq!(rows[1], (56, "xenish", "entry".to_string()));
        assert_eq!(rows[2], (5, "?", "(outside both images)".to_string()));
    }

    #[test]
    fn the_difference_keeps_functions_of_either_run() {
        let with = [(10, "linux", "a".to_string()), (7, "xenish", "b".to_string())];
        let base = [(3, "linux", "a".to_string()), (2, "xenish", "c".to_string())];
        let d = difference(&with, &base);
        assert_eq!(d, [(7, "linux", "a".to_string()), (7, "xenish", "b".to_string()), (-2, "xenish", "c".to_string())]);
    }
}
