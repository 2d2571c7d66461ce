//! `cargo xtask`: build, boot and test xenish.
//!
//! Plain `std` argument handling: three subcommands and a few flags do not
//! justify an argument-parsing dependency.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use tests::images::{self, workspace_root};
use tests::{tools, Boot, Images};

mod bench;

const HELP: &str = "\
cargo xtask — build, boot and test xenish

USAGE:
    cargo xtask run  [--cpu MODEL] [--guest NAME] [-- XENISH-CMDLINE...]
    cargo xtask iso  [-o PATH] [--guest NAME] [-- XENISH-CMDLINE...]
    cargo xtask test
    cargo xtask bench [--runs N] [--deterministic]

COMMANDS:
    run     Build xenish and the demo guest, make a GRUB ISO and boot it in
            QEMU (software emulation) with the serial console on this
            terminal. Exits 0 if every domain powered off, 1 if one crashed.
            Quit QEMU with Ctrl-A X.
    iso     Build a bootable ISO (default target/xenish.iso).
    test    Run the host unit tests and the QEMU system tests.
    bench   Boot the benchmark kernel as dom0 on xenish and on Xen 4.17
            (Debian's xen-hypervisor-4.17-amd64, fetched with apt into
            target/bench/xen) in the same QEMU configuration, alternating,
            and print a table of median TSC cycles per operation with the
            xenish/Xen ratio; also written to target/bench/results.{json,md}.
            --deterministic runs QEMU with -icount, so cycle counts follow
            executed instructions and repeat exactly from run to run.

OPTIONS:
    --cpu MODEL     QEMU CPU model: max (default) or qemu64
    --guest NAME    Guest kernel to boot as dom0: hello (default), crash, enosys
    -o PATH         Where `iso` writes the image
    --runs N        Boots per hypervisor for `bench` (default 3; 1 with --deterministic)
    -h, --help      This text

Missing tools (qemu-system-x86, grub-pc-bin, grub-common, xorriso, mtools)
are installed with apt-get when run as root; otherwise the exact command is
printed. The bare-metal target is added with rustup.
";

struct Opts {
    cpu: String,
    guest: String,
    output: Option<PathBuf>,
    cmdline: Vec<String>,
    runs: Option<usize>,
    deterministic: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        cpu: "max".into(),
        guest: "hello".into(),
        output: None,
        cmdline: Vec::new(),
        runs: None,
        deterministic: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--cpu" => o.cpu = value("--cpu")?,
            "--guest" => o.guest = value("--guest")?,
            "-o" => o.output = Some(PathBuf::from(value("-o")?)),
            "--runs" => o.runs = Some(value("--runs")?.parse().map_err(|_| "--runs needs a number".to_string())?),
            "--deterministic" => o.deterministic = true,
            "--" => {
                o.cmdline = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown argument '{other}' (see cargo xtask --help)")),
        }
    }
    Ok(o)
}

fn build() -> Result<Images, String> {
    eprintln!("xtask: building xenish and the test guests (release, x86_64-unknown-none)...");
    images::build(&workspace_root().join("target"))
}

fn boot_for(images: &Images, o: &Opts) -> Result<Boot, String> {
    let guest = images.guest(&o.guest);
    if !guest.is_file() {
        return Err(format!("no guest named '{}' (expected {})", o.guest, guest.display()));
    }
    let cmdline = if o.cmdline.is_empty() { "dom0_mem=64M".to_string() } else { o.cmdline.join(" ") };
    Ok(Boot::with_hypervisor(images.hypervisor.clone()).cpu(&o.cpu).cmdline(&cmdline).module(guest, &o.guest))
}

fn run(o: &Opts) -> Result<ExitCode, String> {
    let images = build()?;
    let boot = boot_for(&images, o)?;
    let work = workspace_root().join("target/xtask-run");
    let iso = boot.make_iso(&work)?;
    eprintln!("xtask: booting {} under QEMU (-cpu {}); Ctrl-A X quits", iso.display(), o.cpu);
    let status = Command::new("qemu-system-x86_64")
        .args(boot.qemu_args(&iso, "stdio"))
        .stdin(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    // isa-debug-exit: status (v << 1) | 1, v = 0 all powered off, 1 crash.
    Ok(match status.code() {
        Some(1) | Some(0) => ExitCode::SUCCESS,
        Some(3) => ExitCode::from(1),
        other => {
            eprintln!("xtask: QEMU ended with {other:?}");
            ExitCode::from(2)
        }
    })
}

fn iso(o: &Opts) -> Result<ExitCode, String> {
    let images = build()?;
    let boot = boot_for(&images, o)?;
    let work = workspace_root().join("target/xtask-iso");
    let made = boot.make_iso(&work)?;
    let out = o.output.clone().unwrap_or_else(|| workspace_root().join("target/xenish.iso"));
    std::fs::copy(&made, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("xtask: wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn test() -> Result<ExitCode, String> {
    tools::ensure()?;
    let images = build()?;
    eprintln!("xtask: running host unit tests and QEMU system tests...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["test", "--workspace", "--", "--show-output"])
        .env("XENISH_IMAGES_DIR", &images.guests)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    // Echo the output and add up libtest's "test result" lines.
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |what: &str| {
                    rest.split("; ")
                        .find_map(|part| part.trim_start_matches(|c: char| !c.is_ascii_digit()).strip_suffix(what))
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo test: {e}"))?;
    println!("xtask: {passed} passed, {failed} failed");
    Ok(if status.success() && failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    if cmd == "-h" || cmd == "--help" || cmd == "help" {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let result = parse(&args[1..]).and_then(|o| match cmd.as_str() {
        "run" => run(&o),
        "iso" => iso(&o),
        "test" => test(),
        "bench" => bench::run(&o.runs, o.deterministic),
        other => Err(format!("unknown command '{other}' (see cargo xtask --help)")),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
