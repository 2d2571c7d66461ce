//! Booting xenish under QEMU (TCG) with a timeout, and reading what it did:
//! the serial log and the exit status (QEMU's `isa-debug-exit` turns the
//! hypervisor's status `v` into process status `(v << 1) | 1`).

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::iso::{self, Module};

/// The time limit of a boot unless [`Boot::timeout`] sets one:
/// `XENISH_BOOT_TIMEOUT` seconds if set (for slow machines), else 90 s
/// (scaled as [`scaled`] says).
pub fn default_timeout() -> Duration {
    scaled(
        std::env::var("XENISH_BOOT_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(90), Duration::from_secs),
    )
}

/// `limit` times `XENISH_TIMEOUT_SCALE` (a whole number, default 1): a
/// loaded or slow machine (CI, two cores running software emulation)
/// gives every boot more time without changing what a test checks; a
/// passing boot ends when its work is done, whatever its limit.
pub fn scaled(limit: Duration) -> Duration {
    let scale = std::env::var("XENISH_TIMEOUT_SCALE").ok().and_then(|s| s.trim().parse::<u32>().ok());
    limit.saturating_mul(scale.filter(|&s| s > 0).unwrap_or(1))
}

/// How a boot ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// xenish wrote `v` to the debug-exit port: 0 = every domain powered
    /// off, 1 = some domain crashed.
    DebugExit(u8),
    /// QEMU exited with status 0 (ACPI power-off) or another status.
    Qemu(i32),
    /// The machine without a debug-exit device reset itself (the FADT's
    /// reset register, the keyboard controller or 0xcf9) and QEMU, under
    /// `-no-reboot`, exited: its QMP `SHUTDOWN` event said `guest-reset`
    /// and no triple fault was logged.
    Reset,
    /// A triple fault reset the machine without a debug-exit device (QEMU
    /// reports it as a guest reset too, and logs `Triple fault`).
    TripleFault,
    /// The boot ran past its time limit and was killed.
    TimedOut,
    /// The serial log showed the `until` marker and QEMU was stopped.
    Marker,
}

impl Exit {
    /// How QEMU's process status reads, given what QEMU wrote to stderr.
    /// isa-debug-exit turns the value `v` the hypervisor writes into status
    /// `(v << 1) | 1`; QEMU also exits with 1 when it cannot start, which
    /// its error message on stderr tells apart.
    pub fn from_status(code: Option<i32>, qemu_stderr: &str) -> Exit {
        let qemu_failed = qemu_stderr
            .lines()
            .any(|l| l.starts_with("qemu-system-") && !l.contains("warning:") && !l.contains("terminating on signal"));
        match code {
            None => Exit::Qemu(-1),
            Some(1) if qemu_failed => Exit::Qemu(1),
            Some(c) if c > 0 && c & 1 == 1 => Exit::DebugExit((c >> 1) as u8),
            Some(c) => Exit::Qemu(c),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::DebugExit(0) => f.write_str("DebugExit(0): every domain powered off (QEMU status 1)"),
            Exit::DebugExit(1) => f.write_str("DebugExit(1): a domain crashed (QEMU status 3)"),
            Exit::DebugExit(v) => write!(f, "DebugExit({v}) (QEMU status {})", (u32::from(v) << 1) | 1),
            Exit::Qemu(0) => f.write_str("QEMU exited with status 0 (ACPI power-off)"),
            Exit::Qemu(-1) => f.write_str("QEMU was killed by a signal"),
            Exit::Qemu(c) => write!(f, "QEMU exited with status {c} (not a debug-exit status)"),
            Exit::Reset => f.write_str("the machine reset itself (QEMU exited under -no-reboot)"),
            Exit::TripleFault => f.write_str("a TRIPLE FAULT reset the machine (QEMU exited under -no-reboot)"),
            Exit::TimedOut => f.write_str("TIMED OUT: QEMU was still running at the time limit and was killed"),
            Exit::Marker => f.write_str("the awaited serial output appeared and QEMU was stopped"),
        }
    }
}

/// The result of a boot.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Everything written to COM1, `\r` removed.
    pub serial: String,
    /// How QEMU ended.
    pub exit: Exit,
    /// Wall-clock time of the boot.
    pub elapsed: Duration,
    /// What QEMU itself wrote to stderr (its errors and warnings).
    pub qemu_stderr: String,
    /// The answers of QEMU's monitor to a [`Boot::monitor_probe`], one per
    /// sample, in order (empty without a probe or if the marker never came;
    /// fewer than asked for if QEMU ended first).
    pub monitor: Vec<String>,
}

/// Lines of a long serial log shown from its start and from its end.
const HEAD_LINES: usize = 60;
const TAIL_LINES: usize = 400;

/// The serial log as shown on a failure: whole if short, else its start and
/// its tail (where the failure usually is).
fn excerpt(serial: &str) -> String {
    let lines: Vec<&str> = serial.lines().collect();
    if lines.len() <= HEAD_LINES + TAIL_LINES {
        return serial.to_string();
    }
    let mut out = lines[..HEAD_LINES].join("\n");
    let skipped = lines.len() - HEAD_LINES - TAIL_LINES;
    out.push_str(&format!("\n[... {skipped} lines left out ...]\n"));
    out.push_str(&lines[lines.len() - TAIL_LINES..].join("\n"));
    out.push('\n');
    out
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit: {} after {:.1?}", self.exit, self.elapsed)?;
        if !self.qemu_stderr.trim().is_empty() {
            writeln!(f, "---- QEMU stderr ----\n{}", self.qemu_stderr.trim_end())?;
        }
        if self.serial.is_empty() {
            return writeln!(f, "---- serial log: empty ----");
        }
        writeln!(f, "---- serial log ----")?;
        f.write_str(&excerpt(&self.serial))?;
        if !self.serial.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "---- end of serial log ({}) ----", self.exit)
    }
}

impl Outcome {
    /// Panics (printing the whole log) unless the serial log contains `needle`.
    #[track_caller]
    pub fn expect_line(&self, needle: &str) -> &Self {
        assert!(self.serial.contains(needle), "serial log lacks {needle:?}\n{self}");
        self
    }

    /// Panics (printing the whole log) if the serial log contains `needle`.
    #[track_caller]
    pub fn expect_no(&self, needle: &str) -> &Self {
        assert!(!self.serial.contains(needle), "serial log must not contain {needle:?}\n{self}");
        self
    }

    /// Panics (printing the whole log) unless the boot ended with `exit`.
    #[track_caller]
    pub fn expect_exit(&self, exit: Exit) -> &Self {
        assert_eq!(self.exit, exit, "unexpected exit\n{self}");
        self
    }
}

/// How many host CPUs this process's QEMUs (and, with
/// `XENISH_QEMU_SLOTS_DIR`, the machine's) may keep busy at once:
/// `XENISH_QEMU_JOBS` if set, else one per host CPU. Each emulated CPU is
/// one host thread (TCG), so more at once only make every boot slower and
/// nearer its time limit (and a guest whose vCPUs wait for each other
/// far slower), fewer leave a core idle while a test boots one machine.
/// Tests may run in parallel (cargo's default, and `cargo xtask test`):
/// a boot waits for [`Slots`] before QEMU starts, and its time limit
/// counts from there.
pub fn qemu_jobs() -> u32 {
    std::env::var("XENISH_QEMU_JOBS")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
}

/// Slots in use in this process, and the condition a boot waiting for
/// slots sleeps on.
static RUNNING: (std::sync::Mutex<u32>, std::sync::Condvar) = (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Some of the [`qemu_jobs`] slots (one per emulated CPU), given back when
/// dropped: this process's, and, when `XENISH_QEMU_SLOTS_DIR` names a
/// directory (`cargo xtask test`, which runs two test processes at once),
/// as many of the machine's, shared by every process that names
/// the same directory.
pub struct Slots(u32, Vec<File>);

impl Slots {
    /// Waits until `n` slots are free, or, for more than there are, until
    /// none is in use, and takes them.
    pub fn take(n: u32) -> Slots {
        let (count, freed) = &RUNNING;
        let jobs = qemu_jobs();
        let mut running = count.lock().unwrap_or_else(|p| p.into_inner());
        while *running > 0 && *running + n > jobs {
            running = freed.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += n;
        drop(running);
        // This process's slots first, then the machine's: a boot holding
        // the machine's always holds its process's, so no two boots wait
        // for each other.
        let host = std::env::var_os("XENISH_QEMU_SLOTS_DIR").map_or_else(Vec::new, |dir| {
            host_slots(Path::new(&dir), n.min(jobs), jobs).unwrap_or_else(|e| {
                eprintln!(
                    "qemu: machine-wide QEMU slots in {}: {e}; this process counts its own only",
                    dir.to_string_lossy()
                );
                Vec::new()
            })
        });
        Slots(n, host)
    }
}

/// Takes `want` of the machine's `jobs` slots in `dir`: a slot is a file
/// `slot-I` locked (`flock`) while a boot uses it. Whoever takes slots
/// first holds `dir/gate`, so a boot waiting for two slots is not passed
/// by boots that take one at a time; it polls the slot files until it
/// has its `want`.
fn host_slots(dir: &Path, want: u32, jobs: u32) -> Result<Vec<File>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(name))
            .map_err(|e| format!("{name}: {e}"))
    };
    let gate = open("gate")?;
    gate.lock().map_err(|e| format!("gate: {e}"))?;
    let mut held: Vec<(u32, File)> = Vec::new();
    while held.len() < want as usize {
        for i in 0..jobs {
            if held.len() == want as usize || held.iter().any(|(h, _)| *h == i) {
                continue;
            }
            let slot = open(&format!("slot-{i}"))?;
            if slot.try_lock().is_ok() {
                held.push((i, slot));
            }
        }
        if held.len() < want as usize {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The gate goes with its file; the slots' locks with theirs (on drop).
    Ok(held.into_iter().map(|(_, f)| f).collect())
}

impl Drop for Slots {
    fn drop(&mut self) {
        // The machine's slots go when their files close.
        self.1.clear();
        let (count, freed) = &RUNNING;
        let mut running = count.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(self.0);
        freed.notify_all();
    }
}

/// Kills the child when dropped, so no QEMU outlives a failed test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A boot to run: hypervisor command line, modules, CPU model, limits.
#[derive(Clone, Debug)]
pub struct Boot {
    hypervisor: PathBuf,
    cmdline: String,
    modules: Vec<Module>,
    cpu: String,
    memory_mib: u32,
    smp: u32,
    accel: String,
    timeout: Duration,
    until: Option<String>,
    extra: Vec<String>,
    /// Options appended to the command line (see [`Boot::new`]).
    implied: &'static str,
    probe: Option<MonitorProbe>,
    /// Whether the machine has QEMU's `isa-debug-exit` device.
    debug_exit: bool,
    /// Whether the boot takes every QEMU slot ([`Boot::exclusive`]).
    exclusive: bool,
}

/// Monitor commands sent while the machine runs (see [`Boot::monitor_probe`]).
#[derive(Clone, Debug)]
struct MonitorProbe {
    marker: String,
    command: String,
    samples: u32,
    interval: Duration,
}

/// A connection to QEMU's human monitor on a unix socket.
struct Monitor {
    stream: std::os::unix::net::UnixStream,
}

impl Monitor {
    /// Connects to the monitor listening at `path` and reads its banner.
    fn connect(path: &Path) -> Result<Monitor, String> {
        let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
        let mut m = Monitor { stream };
        m.until_prompt()?;
        Ok(m)
    }

    /// Reads up to the next `(qemu) ` prompt; returns what came before it.
    fn until_prompt(&mut self) -> Result<String, String> {
        use std::io::Read;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"(qemu) ") {
            let n = self.stream.read(&mut buf).map_err(|e| format!("monitor: {e}"))?;
            if n == 0 {
                return Err("monitor: closed".into());
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.truncate(got.len() - b"(qemu) ".len());
        Ok(String::from_utf8_lossy(&got).replace('\r', ""))
    }

    /// Runs `command` and returns its answer (the echoed command left out).
    fn command(&mut self, command: &str) -> Result<String, String> {
        use std::io::Write;
        self.stream.write_all(format!("{command}\n").as_bytes()).map_err(|e| format!("monitor: {e}"))?;
        let answer = self.until_prompt()?;
        // The monitor echoes the command line (with terminal escapes) first.
        Ok(answer.split_once('\n').map_or(String::new(), |(_, rest)| rest.to_string()))
    }
}

/// The virtual CPUs a boot gets unless [`Boot::smp`] says: `XENISH_SMP`
/// if set (to run any test on several CPUs), else 1.
pub fn default_smp() -> u32 {
    std::env::var("XENISH_SMP").ok().and_then(|s| s.trim().parse::<u32>().ok()).filter(|&n| n > 0).unwrap_or(1)
}

/// What every boot of the built xenish adds to its command line: the test
/// guests' domUs report with `console_io` writes, which Xen 4.17 prints
/// only in debug builds (`CONFIG_VERBOSE_DEBUG`) and xenish only with
/// `console_io=all`.
pub const XENISH_TEST_OPTIONS: &str = "console_io=all";

/// Options from `XENISH_OPTIONS` that every boot of the built xenish adds
/// after [`XENISH_TEST_OPTIONS`] (to run any test with, say,
/// `XENISH_SMP=2 XENISH_OPTIONS=smp_guests=0`); empty if unset.
pub fn extra_options() -> String {
    std::env::var("XENISH_OPTIONS").unwrap_or_default().trim().to_string()
}

impl Default for Boot {
    fn default() -> Self {
        Self::new()
    }
}

impl Boot {
    /// A boot of the built hypervisor (see [`crate::images()`]), no modules,
    /// `-cpu max`, 512 MiB, [`default_timeout`], with
    /// [`XENISH_TEST_OPTIONS`] after whatever command line is given.
    pub fn new() -> Self {
        Boot { implied: XENISH_TEST_OPTIONS, ..Self::with_hypervisor(crate::images().hypervisor.clone()) }
    }

    /// A boot of the given hypervisor image (for callers with their own build,
    /// such as xtask, or another multiboot2 kernel).
    pub fn with_hypervisor(hypervisor: PathBuf) -> Self {
        Boot {
            hypervisor,
            cmdline: String::new(),
            modules: Vec::new(),
            cpu: "max".into(),
            memory_mib: 512,
            smp: default_smp(),
            exclusive: false,
            accel: "tcg".into(),
            timeout: default_timeout(),
            implied: "",
            until: None,
            extra: Vec::new(),
            probe: None,
            debug_exit: true,
        }
    }

    /// Once the serial log contains `marker`, runs `command` on QEMU's
    /// monitor `samples` times, `interval` apart, while the machine runs
    /// (e.g. `info mem`: the mappings of the page tables CPU 0 has loaded
    /// at that moment); the answers are [`Outcome::monitor`].
    pub fn monitor_probe(mut self, marker: &str, command: &str, samples: u32, interval: Duration) -> Self {
        self.probe = Some(MonitorProbe { marker: marker.into(), command: command.into(), samples, interval });
        self
    }

    /// Leaves out QEMU's `isa-debug-exit` device: the machine ends only by
    /// powering off (or resetting) as real hardware does ([`Exit::Qemu`]).
    pub fn without_debug_exit(mut self) -> Self {
        self.debug_exit = false;
        self
    }

    /// Sets xenish's command line.
    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.cmdline = cmdline.into();
        self
    }

    /// Adds a module file with its string.
    pub fn module(mut self, path: PathBuf, string: &str) -> Self {
        self.modules.push(Module { path, string: string.into() });
        self
    }

    /// Adds the test guest `name` (from [`crate::images()`]) as the next
    /// module, with `string` as its command line.
    pub fn guest(self, name: &str, string: &str) -> Self {
        let path = crate::images().guest(name);
        self.module(path, string)
    }

    /// The time limit.
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }

    /// Sets the QEMU CPU model (`max`, `qemu64`, ...).
    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = cpu.into();
        self
    }

    /// Sets the guest RAM size of the virtual machine.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Sets the number of virtual CPUs (`-smp`; [`default_smp`] unless set).
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// Runs with every QEMU slot taken ([`Slots`]; the machine's too,
    /// with `XENISH_QEMU_SLOTS_DIR`): no other boot runs beside it, in
    /// this process or another. For boots that measure CPU shares in
    /// wall-clock time, which a second QEMU on the host would skew.
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }

    /// Sets the accelerator (`-accel`; `tcg` unless set, which is
    /// multi-threaded TCG on x86_64 hosts; `tcg,thread=single` runs every
    /// CPU on one host thread).
    pub fn accel(mut self, accel: &str) -> Self {
        self.accel = accel.into();
        self
    }

    /// Ends the boot as soon as the serial log contains `marker` (for
    /// hypervisors that halt rather than power off, such as Xen).
    pub fn until(mut self, marker: &str) -> Self {
        self.until = Some(marker.into());
        self
    }

    /// Adds QEMU arguments (e.g. `-icount shift=0`).
    pub fn qemu_extra(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets the time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = scaled(timeout);
        self
    }

    /// The QEMU arguments for `iso`, with the serial line going to `serial`
    /// (a QEMU chardev: `stdio`, `file:PATH`, ...). No `-enable-kvm`: the
    /// machines that run this have no usable hardware virtualization.
    pub fn qemu_args(&self, iso: &Path, serial: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "-accel",
            &self.accel,
            "-cpu",
            &self.cpu,
            "-m",
            &format!("{}M", self.memory_mib),
            "-smp",
            &self.smp.to_string(),
            "-display",
            "none",
            "-vga",
            "none",
            "-no-reboot",
            // No NIC: nothing inside the machine reaches the host's network
            // (QEMU would otherwise add a user-mode NIC by default).
            "-nic",
            "none",
            "-serial",
            serial,
            "-boot",
            "d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.debug_exit {
            args.extend(["-device".into(), "isa-debug-exit,iobase=0xf4,iosize=0x04".into()]);
        }
        args.push("-cdrom".into());
        args.push(iso.display().to_string());
        args.extend(self.extra.iter().cloned());
        args
    }

    /// The hypervisor's whole command line: the one given, the implied test
    /// options and `XENISH_OPTIONS` (xenish's test boots), and for Xen the
    /// pages it must not use under QEMU ([`crate::debian::xen_badpages`]).
    pub fn hypervisor_cmdline(&self) -> String {
        let extra = if self.implied.is_empty() { String::new() } else { extra_options() };
        let badpages = if crate::debian::is_xen(&self.hypervisor) {
            crate::debian::xen_badpages(self.memory_mib)
        } else {
            String::new()
        };
        [self.cmdline.as_str(), self.implied, extra.as_str(), badpages.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Builds the ISO (`xenish.iso`) in the directory `work` and returns its
    /// path.
    pub fn make_iso(&self, work: &Path) -> Result<PathBuf, String> {
        crate::tools::ensure()?;
        std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
        let iso = work.join("xenish.iso");
        let cmdline = self.hypervisor_cmdline();
        iso::make(&iso, work, &self.hypervisor, &cmdline, &self.modules)?;
        Ok(iso)
    }

    /// Boots and waits for QEMU to end, the `until` marker or the time
    /// limit. Panics if the ISO cannot be made or QEMU cannot be started;
    /// a boot that goes wrong is an [`Outcome`] to check.
    pub fn run(&self) -> Outcome {
        self.try_run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Boot::run`], returning setup failures instead of panicking.
    pub fn try_run(&self) -> Result<Outcome, String> {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let work = crate::images::target_dir().join("system-tests").join(format!("{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let iso = self.make_iso(&work).map_err(|e| format!("cannot make the boot ISO: {e}"))?;
        let log = work.join("serial.log");
        let stderr_path = work.join("qemu.stderr");
        let stderr = File::create(&stderr_path).map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        let slot = Slots::take(if self.exclusive { qemu_jobs().max(self.smp) } else { self.smp });
        let start = Instant::now();
        let monitor_path = work.join("monitor.sock");
        let mut args = self.qemu_args(&iso, &format!("file:{}", log.display()));
        if self.probe.is_some() {
            args.extend(["-monitor".to_string(), format!("unix:{},server=on,wait=off", monitor_path.display())]);
        }
        // Without the debug-exit device the machine ends as hardware does,
        // and under -no-reboot QEMU exits with status 0 both when it is
        // powered off and when it resets. Its QMP SHUTDOWN event tells
        // which (reason `guest-shutdown` or `guest-reset`); a triple fault
        // is a `guest-reset` too, which only `-d cpu_reset`'s `Triple
        // fault` line tells apart (QEMU 7.2's `check_exception`).
        let (qmp_path, cpu_log) = (work.join("qmp.sock"), work.join("qemu-cpu.log"));
        if !self.debug_exit {
            args.extend(["-qmp".to_string(), format!("unix:{},server=on,wait=off", qmp_path.display())]);
            args.extend(["-d".to_string(), "cpu_reset".to_string(), "-D".to_string(), cpu_log.display().to_string()]);
        }
        let mut child = Command::new("qemu-system-x86_64")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map(KillOnDrop)
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
        let qemu_ended = Arc::new(AtomicBool::new(false));
        let events = (!self.debug_exit).then(|| qmp_events(qmp_path, qemu_ended.clone()));
        let seen = |marker: &str| std::fs::read(&log).is_ok_and(|b| String::from_utf8_lossy(&b).contains(marker));
        let mut monitor = Vec::new();
        let mut probe = self.probe.clone();
        // QEMU's status if it ended by itself, else how it was stopped.
        let ended: Result<Option<i32>, Exit> = loop {
            if let Some(p) = probe.as_ref().filter(|p| seen(&p.marker)) {
                // Sampling ends early if QEMU does (the answers so far stay).
                if let Ok(mut m) = Monitor::connect(&monitor_path) {
                    for i in 0..p.samples {
                        if i > 0 {
                            std::thread::sleep(p.interval);
                        }
                        match m.command(&p.command) {
                            Ok(answer) => monitor.push(answer),
                            Err(_) => break,
                        }
                    }
                }
                probe = None;
            }
            match child.0.try_wait() {
                Ok(Some(status)) => break Ok(status.code()),
                Ok(None) if start.elapsed() > self.timeout => break Err(Exit::TimedOut),
                Ok(None) if self.until.as_deref().is_some_and(seen) => break Err(Exit::Marker),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("waiting for QEMU: {e}")),
            }
        };
        drop(child);
        qemu_ended.store(true, Ordering::Relaxed);
        drop(slot);
        let elapsed = start.elapsed();
        let read =
            |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).replace('\r', "")).unwrap_or_default();
        let (serial, qemu_stderr) = (read(&log), read(&stderr_path));
        let events = events.and_then(|e| e.join().ok()).unwrap_or_default();
        let exit = match ended.map_or_else(|stopped| stopped, |code| Exit::from_status(code, &qemu_stderr)) {
            Exit::Qemu(0) if events.contains("\"guest-reset\"") => {
                if read(&cpu_log).contains("Triple fault") {
                    Exit::TripleFault
                } else {
                    Exit::Reset
                }
            }
            exit => exit,
        };
        let _ = std::fs::remove_dir_all(&work);
        // Shown by `cargo test -- --show-output` (and on failure).
        println!(
            "boot: -cpu {} '{}' with {} module(s): {exit} after {elapsed:.1?}",
            self.cpu,
            self.hypervisor_cmdline(),
            self.modules.len()
        );
        Ok(Outcome { serial, exit, elapsed, qemu_stderr, monitor })
    }
}

/// Reads QEMU's QMP events from the socket at `path` (retrying the
/// connection until QEMU listens, or ends) until QEMU ends; returns them,
/// a JSON object a line.
fn qmp_events(path: PathBuf, qemu_ended: Arc<AtomicBool>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let stream = loop {
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(_) if qemu_ended.load(Ordering::Relaxed) => return String::new(),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        // Events flow once capabilities are negotiated.
        let _ = (&stream).write_all(b"{\"execute\": \"qmp_capabilities\"}\n");
        let lines = std::io::BufReader::new(&stream).lines().map_while(Result::ok);
        lines.filter(|l| l.contains("\"event\"")).map(|l| l + "\n").collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine's slots are shared by every holder of the directory
    /// (here two threads, each with files of its own, as two processes
    /// would be): a boot that wants one waits while another holds all,
    /// and gets one once they are given back.
    #[test]
    fn machine_slots_are_shared_and_given_back() {
        let dir = crate::images::target_dir().join("slot-test").join(std::process::id().to_string());
        let all = host_slots(&dir, 2, 2).expect("two slots");
        assert_eq!(all.len(), 2);
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (dir, got) = (dir.clone(), got.clone());
            std::thread::spawn(move || {
                let one = host_slots(&dir, 1, 2).expect("one slot");
                got.store(true, Ordering::SeqCst);
                one.len()
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!got.load(Ordering::SeqCst), "a slot was taken while both were held");
        drop(all);
        assert_eq!(waiter.join().expect("waiter"), 1);
        assert!(got.load(Ordering::SeqCst));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_exit_statuses_decode() {
        assert_eq!(Exit::from_status(Some(1), ""), Exit::DebugExit(0));
        assert_eq!(Exit::from_status(Some(3), ""), Exit::DebugExit(1));
        assert_eq!(Exit::from_status(Some(0), ""), Exit::Qemu(0));
        assert_eq!(Exit::from_status(Some(2), ""), Exit::Qemu(2));
        assert_eq!(Exit::from_status(None, ""), Exit::Qemu(-1));
        let warning = "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.01H:ECX.vmx [bit 5]\n";
        assert_eq!(Exit::from_status(Some(1), warning), Exit::DebugExit(0));
        let error =
            "qemu-system-x86_64: -cdrom /nonexistent: Could not open '/nonexistent': No such file or directory\n";
        assert_eq!(Exit::from_status(Some(1), error), Exit::Qemu(1));
    }

    #[test]
    fn long_logs_keep_their_start_and_tail() {
        let log: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let shown = excerpt(&log);
        assert!(shown.starts_with("line 0\n"));
        assert!(shown.contains(&format!("[... {} lines left out ...]", 1000 - HEAD_LINES - TAIL_LINES)));
        assert!(shown.ends_with("line 999\n"));
        assert!(!shown.contains(&format!("line {}\n", HEAD_LINES)));
        let short = "a\nb\n";
        assert_eq!(excerpt(short), short);
    }
}
