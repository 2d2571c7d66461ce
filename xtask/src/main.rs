//! `cargo xtask`: build, boot and test xenish.
//!
//! Plain `std` argument handling: four subcommands and a few flags do not
//! justify an argument-parsing dependency.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tests::images::{self, workspace_root};
use tests::{tools, Boot, Exit, Images};

mod bench;
mod bench_compare;
mod bench_dom0;
mod bench_drivers;
mod bench_linux;
mod bench_scaling;
mod bench_xpti;
mod fuzz;
mod linux;
mod profile;
mod qos;
mod test;

const HELP: &str = "\
cargo xtask — build, boot and test xenish

USAGE:
    cargo xtask run  [--cpu MODEL] [--smp N] [--guest NAME] [--xen] [--dom0-script FILE] [--timeout SECS]
                     [-- HYPERVISOR-CMDLINE...]
    cargo xtask iso  [-o PATH] [--guest NAME] [-- XENISH-CMDLINE...]
    cargo xtask test
    cargo xtask bench [--runs N] [--deterministic] [--only SECTION[,SECTION...]]
                      [--compare FILE]
    cargo xtask profile [--top N] [--linux ROW [--xen]]
    cargo xtask linux [--timeout SECS] [-- XENISH-CMDLINE...]
    cargo xtask fuzz [--iterations N] [--seed S]
    cargo xtask qos [--log FILE]

COMMANDS:
    run     Build xenish, the toolstack and the dom0 image (Debian's stock
            kernel with an initramfs of busybox, the Xen modules and
            dom0-tools, fetched with apt-get download into target/debian),
            make a GRUB ISO and boot it in QEMU (software emulation) with
            the serial console on this terminal: dom0 starts xenstored and
            gives a root shell (`poweroff` ends it; Ctrl-A X quits QEMU).
            dom0 gets a virtio disk (with MSI-X, which xenish programs and
            delivers as PIRQ events) with an ext4 filesystem that persists between
            runs, target/dom0-disk.img (8 GiB sparse, made with mke2fs
            from e2fsprogs on the first run), mounted at /srv/xen in dom0
            for guest disk images; delete the file to start afresh.
            With --guest NAME, boots the small Rust test guest NAME as dom0
            instead (the old demo: `--guest hello`). Exits 0 if every domain
            powered off, 1 if one crashed, 2 on another QEMU status, 124 on
            timeout.
    iso     Build a bootable ISO (default target/xenish.iso).
    test    Run every test: host unit tests, the ABI conformance check
            against Xen's headers (needs libxen-dev) and the QEMU system
            tests; prints a summary (each file's time) and exits
            non-zero on any failure. Runs two lanes of cargo test side
            by side, sharing one QEMU per host CPU; XENISH_TEST_LANES=1
            runs one.
    bench   Boot the benchmark kernel as dom0 on xenish and on Xen 4.17
            (Debian's xen-hypervisor-4.17-amd64, fetched with apt into
            target/debian) in the same QEMU configuration, alternating,
            and print a table of median TSC cycles per operation with the
            xenish/Xen ratio; then boot Debian's Linux as dom0 with a
            measuring program as /init (kernel boot to /init, fork+exit,
            fork+exec, pipe round trip, two-process ping-pong, touching
            and unmapping 64 MiB; ns per operation); both kinds of rows
            also on Xen 4.17 with its speculative-execution mitigations
            off (spec-ctrl=no,eager-fpu xpti=no pv-l1tf=no), and which
            mitigations each side had active (Xen's boot report); then
            boot the dom0 image on each and time
            `xl create` to the guest's first console line (ms); then
            boot it on both at once with a Linux domU that measures the
            split drivers against our backends (xenish-blkback,
            xenish-netback) and Linux's in-kernel ones (xen-blkback over
            a loop device, xen-netback): sequential read and write MB/s
            (dd, 1 MiB, O_DIRECT), 4 KiB random-read IOPS, TCP Mbit/s
            both ways and ping round-trip time, with ours / Linux and
            xenish / Xen ratios. Before the Linux rows, SMP scaling:
            null hypercalls and event-channel round trips per second of
            one PV domain on one CPU (-smp 1) and of two, pinned one per
            CPU (-smp 2, multi-threaded TCG; guests on every CPU),
            and the ratio. All of it is also written to
            target/bench/results.{json,md}.
            --deterministic runs QEMU with -icount, so cycle counts follow
            executed instructions and repeat exactly from run to run (the
            hypercall and Linux rows; the others need wall-clock).
            --compare FILE then prints each row's change against an
            earlier results.json. XENISH_COMPARE=xenish runs only
            xenish's column of the Linux dom0 and domU rows.
    profile Where xenish's instructions go: boot the benchmark kernel on
            xenish with a QEMU TCG plugin (xtask/insn-profile) that counts
            executed instructions per translated block, map the blocks to
            xenish's and the guest's functions (nm) and print the top N
            (default 40) with their count per benchmark operation (each
            runs 1100 times). Exact counts, independent of timing.
            --linux ROW profiles one Linux-level row instead (fork_exit,
            fork_exec, pipe_roundtrip, ctxsw_pingpong, touch_unmap_64m):
            Debian's Linux as dom0 with xenish-linuxbench as /init, under
            -icount, booted twice (the boot alone, then with ROW), each
            function's difference per operation, xenish's and the
            kernel's (its /proc/kallsyms, read once). About 4 to 6 minutes.
    linux   Fetch Debian's stock kernel (linux-image-amd64's kernel package,
            apt-get download + dpkg-deb -x into target/debian), boot its
            vmlinuz as dom0 on xenish (dom0 command line `console=hvc0
            earlyprintk=xen loglevel=8`, QEMU -cpu max,-smap with 1 GiB)
            and print the serial log: an exploration tool, it asserts
            nothing. Exits 0 if every domain powered off, 1 if one
            crashed, 124 on timeout (default 120 s), 2 on another QEMU
            status.
    fuzz    Run the hypercall fuzzer long, in release mode (no QEMU): two
            hostile unprivileged domains issue N random hypercalls (default
            1000000) with random and boundary arguments against the real
            dispatch on a fake machine; after every call the frame-table
            audit and per-domain accounting must hold and a bystander domain
            must be bit-identical. Prints calls/s, counts per hypercall and
            the totals; on a failure, the seed and step to replay it with
            (XENISH_FUZZ_SEED, XENISH_FUZZ_ITERATIONS) and exits 1. A bounded
            run is part of `cargo xtask test`.

    qos     Boot the dom0 image on xenish (one CPU) with five busy domUs:
            Linux ones with weights 512 and 256, one capped at 10% of the
            CPU, one that forks and execs in a loop (a flood of page-table
            hypercalls), and the flood test guest (event channels, grants,
            ballooning, multicalls without pause); measure every domain's
            CPU share every 2 s for a minute from the hypervisor's
            run-state accounting (`xl top -b` in dom0) and from the
            guests' own progress counters (work per second over their
            rate alone, learnt first in 4 s each), and write a table
            (target/qos/results.md) and a plot of both over time against
            their targets (target/qos/shares.svg). About 15 to 20 minutes.
            --log FILE redraws both from a saved serial log
            (target/qos/serial.log) without booting.

OPTIONS:
    --cpu MODEL     QEMU CPU model: max (default) or qemu64
    --smp N         `run`: give the machine N CPUs (1 to 32; default 1, or
                    XENISH_SMP); guests run on every CPU and dom0 gets a
                    vCPU per CPU, as on Xen
    --guest NAME    A Rust test guest to boot as dom0 instead of Linux: hello,
                    crash, enosys, ...
    --xen           `run`: boot the same dom0 image on Debian's Xen 4.17
                    (xen-hypervisor-4.17-amd64) instead of xenish;
                    `profile --linux ROW`: profile the row on Xen 4.17 (the
                    kernel's functions; Xen's instructions count as other)
    --dom0-script FILE
                    `run`: run FILE (a busybox sh script) in dom0 instead of
                    the shell, then power off
    --timeout SECS  Kill QEMU after SECS seconds (`run`; 0 = never). Default:
                    none on a terminal, else XENISH_BOOT_TIMEOUT or 90;
                    for `linux`, 120
    -o PATH         Where `iso` writes the image
    -- ARGS         the hypervisor's command line (default: dom0_mem=512M
                    for the Linux dom0, dom0_mem=64M with --guest)
    --runs N        Boots per configuration for `bench`'s hypercall, scaling
                    and Linux rows (default 3; 1 with --deterministic)
    --only SECTIONS `bench`: only these groups of rows (comma-separated or
                    repeated): hypercalls, xpti (xenish with xpti=off
                    and =on), scaling (two domains on two CPUs
                    against one on one; wall-clock only), linux
                    (Linux as dom0),
                    linux_domu (Linux as a domU, created with xl),
                    toolstack, drivers. Default: all
    --compare FILE  `bench`: print the change against this earlier
                    results.json (copy target/bench/results.json away first:
                    the run overwrites it)
    --top N         `profile`: how many functions to show (default 40)
    --linux ROW     `profile`: profile this Linux-level row (above)
    --iterations N  Hypercalls for `fuzz` (default 1000000)
    --seed S        The fuzzer's seed, decimal or 0x-hex (default 0x5eed)
    -h, --help      This text

Missing tools (qemu-system-x86, grub-pc-bin, grub-common, xorriso, mtools)
are installed with apt-get when run as root; otherwise the exact command is
printed. The bare-metal target is added with rustup. Images are built into
Cargo's target directory (CARGO_TARGET_DIR, else target/).
";

struct Opts {
    cpu: String,
    smp: Option<u32>,
    guest: Option<String>,
    xen: bool,
    dom0_script: Option<PathBuf>,
    output: Option<PathBuf>,
    cmdline: Vec<String>,
    runs: Option<usize>,
    deterministic: bool,
    only: Vec<String>,
    compare: Option<PathBuf>,
    top: Option<usize>,
    linux_row: Option<String>,
    timeout: Option<u64>,
    iterations: Option<u64>,
    seed: Option<String>,
    log: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        cpu: "max".into(),
        smp: None,
        guest: None,
        xen: false,
        dom0_script: None,
        output: None,
        cmdline: Vec::new(),
        runs: None,
        deterministic: false,
        only: Vec::new(),
        compare: None,
        top: None,
        linux_row: None,
        timeout: None,
        iterations: None,
        seed: None,
        log: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--cpu" => o.cpu = value("--cpu")?,
            "--smp" => {
                let n = value("--smp")?.parse().ok().filter(|n| (1..=MAX_SMP).contains(n));
                o.smp = Some(n.ok_or(format!("--smp needs a number of CPUs from 1 to {MAX_SMP}"))?);
            }
            "--guest" => o.guest = Some(value("--guest")?),
            "--xen" => o.xen = true,
            "--dom0-script" => o.dom0_script = Some(PathBuf::from(value("--dom0-script")?)),
            "-o" => o.output = Some(PathBuf::from(value("-o")?)),
            "--runs" => o.runs = Some(value("--runs")?.parse().map_err(|_| "--runs needs a number".to_string())?),
            "--deterministic" => o.deterministic = true,
            "--linux" => o.linux_row = Some(value("--linux")?),
            "--top" => o.top = Some(value("--top")?.parse().map_err(|_| "--top needs a number".to_string())?),
            "--compare" => o.compare = Some(PathBuf::from(value("--compare")?)),
            "--only" => {
                for section in value("--only")?.split(',') {
                    if !bench::SECTIONS.contains(&section) {
                        return Err(format!("--only: no section '{section}' (one of {})", bench::SECTIONS.join(", ")));
                    }
                    o.only.push(section.to_string());
                }
            }
            "--iterations" => {
                o.iterations =
                    Some(value("--iterations")?.parse().map_err(|_| "--iterations needs a number".to_string())?)
            }
            "--seed" => o.seed = Some(value("--seed")?),
            "--log" => o.log = Some(PathBuf::from(value("--log")?)),
            "--timeout" => {
                o.timeout = Some(value("--timeout")?.parse().map_err(|_| "--timeout needs a number of seconds")?)
            }
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
    images::build(&images::target_dir())
}

/// The most CPUs `--smp` gives the machine: xenish's `MAX_CPUS`.
const MAX_SMP: u32 = 32;

/// The dom0 image's QEMU memory and dom0's share of it.
const DOM0_QEMU_MIB: u32 = 2048;
const DOM0_MEM: &str = "dom0_mem=512M";
/// The dom0 image's time limit when not on a terminal (Linux boots slowly
/// under software emulation).
const DOM0_TIMEOUT_SECS: u64 = 600;

/// dom0's persistent disk for `run`: its file name under the target
/// directory, size (sparse) and ext4 label. dom0's `/init` mounts the
/// filesystem with this label at `/srv/xen`.
const DOM0_DISK: &str = "dom0-disk.img";
const DOM0_DISK_SIZE: &str = "8G";

/// The QEMU arguments that give dom0 its persistent disk: the image under
/// the target directory, made with `mke2fs -t ext4` on the first run, on a
/// virtio-blk device (MSI-X, which xenish routes to dom0 as PIRQ events).
fn dom0_disk() -> Result<Vec<String>, String> {
    let path = images::target_dir().join(DOM0_DISK);
    if !path.exists() {
        // mke2fs lives in sbin, which a user's PATH may lack.
        let mke2fs = tools::mke2fs().ok_or(
            "dom0's disk needs mke2fs, from e2fsprogs: install it \
             (Debian/Ubuntu: sudo apt-get install e2fsprogs; Fedora: sudo dnf install e2fsprogs)",
        )?;
        eprintln!("xtask: making dom0's disk {} ({DOM0_DISK_SIZE} sparse, ext4)...", path.display());
        let made = Command::new(&mke2fs)
            .args(["-q", "-t", "ext4", "-L", tests::dom0::DISK_LABEL])
            .arg(&path)
            .arg(DOM0_DISK_SIZE)
            .status()
            .map_err(|e| format!("{}: {e}", mke2fs.display()))?;
        if !made.success() {
            let _ = std::fs::remove_file(&path);
            return Err(format!("{} {} failed ({made})", mke2fs.display(), path.display()));
        }
    }
    Ok(vec![
        "-drive".into(),
        format!("file={},if=none,id=dom0disk,format=raw", path.display()),
        "-device".into(),
        "virtio-blk-pci,drive=dom0disk".into(),
    ])
}

/// Builds the toolstack's static binaries and points the dom0 image
/// builder at them.
fn build_tools() -> Result<PathBuf, String> {
    eprintln!("xtask: building the toolstack (release, {})...", tests::dom0::TOOLS_TARGET);
    let dir = tests::dom0::build_tools(&images::target_dir())?;
    // Read by tests::dom0::tools_dir, in this process and in `cargo test`.
    std::env::set_var("XENISH_TOOLS_DIR", &dir);
    Ok(dir)
}

fn boot_for(images: &Images, o: &Opts) -> Result<Boot, String> {
    if o.xen && o.guest.is_some() {
        return Err("--xen boots the Linux dom0 image; it does not take --guest".into());
    }
    if let Some(name) = &o.guest {
        let guest = images.guest(name);
        if !guest.is_file() {
            return Err(format!("no guest named '{name}' (expected {})", guest.display()));
        }
        let cmdline = if o.cmdline.is_empty() { "dom0_mem=64M".to_string() } else { o.cmdline.join(" ") };
        return Ok(Boot::with_hypervisor(images.hypervisor.clone()).cpu(&o.cpu).cmdline(&cmdline).module(guest, name));
    }
    let script = match &o.dom0_script {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    build_tools()?;
    eprintln!("xtask: building the dom0 image (Debian's kernel and busybox, the toolstack)...");
    let name = if script.is_some() { "xtask-script" } else { "xtask-run" };
    let demo = tests::dom0::demo_files()?;
    let demo: Vec<(&str, u32, Vec<u8>)> = demo.iter().map(|(p, m, d)| (p.as_str(), *m, d.clone())).collect();
    let dom0 = tests::dom0::image(name, script.as_deref(), &demo)?;
    let mut cmdline = if o.cmdline.is_empty() { DOM0_MEM.to_string() } else { o.cmdline.join(" ") };
    let hypervisor = if o.xen {
        cmdline = format!("{} {cmdline}", tests::debian::XEN_CMDLINE);
        tests::debian::xen()?
    } else {
        images.hypervisor.clone()
    };
    let cpu = if o.cpu == "max" { tests::linux::CPU } else { o.cpu.as_str() };
    Ok(Boot::with_hypervisor(hypervisor)
        .timeout(Duration::from_secs(DOM0_TIMEOUT_SECS))
        .cpu(cpu)
        .memory_mib(DOM0_QEMU_MIB)
        .cmdline(&cmdline)
        .module(dom0.kernel, tests::dom0::KERNEL_CMDLINE)
        .module(dom0.initrd, ""))
}

fn run(o: &Opts) -> Result<ExitCode, String> {
    let images = build()?;
    let mut boot = boot_for(&images, o)?;
    if let Some(cpus) = o.smp {
        boot = boot.smp(cpus);
    }
    if o.guest.is_none() {
        let disk = dom0_disk()?;
        boot = boot.qemu_extra(&disk.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let work = images::target_dir().join("xtask-run");
    let iso = boot.make_iso(&work)?;
    // An interactive session runs until QEMU ends; anything else (a script,
    // CI) gets the harness's time limit unless --timeout says otherwise.
    let limit = match o.timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None if std::io::stdin().is_terminal() => None,
        None => Some(boot.time_limit()),
    };
    let limit_text = limit.map_or(String::new(), |l| format!(", time limit {}s", l.as_secs()));
    let cpus = o.smp.unwrap_or_else(tests::qemu::default_smp);
    eprintln!("xtask: booting {} under QEMU (-cpu {}, {cpus} CPU(s){limit_text}); Ctrl-C quits", iso.display(), o.cpu);
    let mut child = Command::new("qemu-system-x86_64")
        .args(boot.qemu_args(&iso, "stdio"))
        .stdin(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            break status;
        }
        if limit.is_some_and(|l| start.elapsed() > l) {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("\nxtask: TIMED OUT: QEMU still running after {}s; killed it", start.elapsed().as_secs());
            return Ok(ExitCode::from(124));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // stderr was the terminal, so there is no QEMU error text to tell an
    // early QEMU failure (status 1) from debug-exit 0; QEMU printed it.
    let exit = Exit::from_status(status.code(), "");
    eprintln!("\nxtask: {exit}");
    Ok(match exit {
        Exit::DebugExit(0) | Exit::Qemu(0) => ExitCode::SUCCESS,
        Exit::DebugExit(1) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

fn iso(o: &Opts) -> Result<ExitCode, String> {
    let images = build()?;
    let boot = boot_for(&images, o)?;
    let work = images::target_dir().join("xtask-iso");
    let made = boot.make_iso(&work)?;
    let out = o.output.clone().unwrap_or_else(|| images::target_dir().join("xenish.iso"));
    std::fs::copy(&made, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("xtask: wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn test() -> Result<ExitCode, String> {
    tools::ensure()?;
    let images = build()?;
    let tools = build_tools()?;
    test::run(&workspace_root(), &images.guests, &tools)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    // `--help` anywhere before `--` (e.g. `cargo xtask run --help`).
    let wants_help = |a: &String| a == "-h" || a == "--help" || a == "help";
    if args.iter().take_while(|a| *a != "--").any(wants_help) {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let result = parse(&args[1..]).and_then(|o| match cmd.as_str() {
        "run" => run(&o),
        "iso" => iso(&o),
        "test" => test(),
        "bench" => bench::run(&o.runs, o.deterministic, &o.only, o.compare.as_deref()),
        "profile" => match &o.linux_row {
            Some(row) => profile::run_linux(o.top.unwrap_or(40), row, o.xen),
            None => profile::run(o.top.unwrap_or(40)),
        },
        "linux" => linux::run(&o.cmdline, o.timeout),
        "fuzz" => fuzz::run(o.iterations, o.seed.clone()),
        "qos" => match &o.log {
            Some(log) => std::fs::read_to_string(log)
                .map_err(|e| format!("{}: {e}", log.display()))
                .and_then(|s| qos::render(&s)),
            None => build().and_then(|images| {
                build_tools()?;
                qos::run(images.hypervisor.clone(), images.guest("flood"))
            }),
        },
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
