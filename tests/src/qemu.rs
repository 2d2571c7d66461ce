//! Booting xenish under QEMU (TCG) with a timeout, and reading what it did:
//! the serial log and the exit status (QEMU's `isa-debug-exit` turns the
//! hypervisor's status `v` into process status `(v << 1) | 1`).

use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::iso::{self, Module};

/// How a boot ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// xenish wrote `v` to the debug-exit port: 0 = every domain powered
    /// off, 1 = some domain crashed.
    DebugExit(u8),
    /// QEMU exited with status 0 (ACPI power-off) or another status.
    Qemu(i32),
    /// The boot ran past its time limit and was killed.
    TimedOut,
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
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit: {:?} after {:.1?}", self.exit, self.elapsed)?;
        writeln!(f, "---- serial log ----")?;
        f.write_str(&self.serial)?;
        writeln!(f, "---- end of serial log ----")
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
    timeout: Duration,
}

impl Default for Boot {
    fn default() -> Self {
        Self::new()
    }
}

impl Boot {
    /// A boot of the built hypervisor, no modules, `-cpu max`, 512 MiB, 90 s.
    pub fn new() -> Self {
        Boot {
            hypervisor: crate::images().hypervisor.clone(),
            cmdline: String::new(),
            modules: Vec::new(),
            cpu: "max".into(),
            memory_mib: 512,
            timeout: Duration::from_secs(90),
        }
    }

    /// A boot of the given hypervisor image (for callers with their own build).
    pub fn with_hypervisor(hypervisor: PathBuf) -> Self {
        Boot { hypervisor, ..Self::new_unbuilt() }
    }

    fn new_unbuilt() -> Self {
        Boot {
            hypervisor: PathBuf::new(),
            cmdline: String::new(),
            modules: Vec::new(),
            cpu: "max".into(),
            memory_mib: 512,
            timeout: Duration::from_secs(90),
        }
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

    /// Adds the test guest `name` as the next module, with `string` as its
    /// command line.
    pub fn guest(self, name: &str, string: &str) -> Self {
        let path = crate::images().guest(name);
        self.module(path, string)
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

    /// Sets the time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The QEMU arguments for `iso`, with the serial line going to `serial`.
    pub fn qemu_args(&self, iso: &std::path::Path, serial: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "-accel",
            "tcg",
            "-cpu",
            &self.cpu,
            "-m",
            &format!("{}M", self.memory_mib),
            "-smp",
            "1",
            "-display",
            "none",
            "-vga",
            "none",
            "-no-reboot",
            "-serial",
            serial,
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-boot",
            "d",
            "-cdrom",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(iso.display().to_string());
        args
    }

    /// Builds the ISO into a fresh scratch directory and returns its path.
    pub fn make_iso(&self, work: &std::path::Path) -> Result<PathBuf, String> {
        crate::tools::ensure()?;
        std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
        let iso = work.join("xenish.iso");
        iso::make(&iso, work, &self.hypervisor, &self.cmdline, &self.modules)?;
        Ok(iso)
    }

    /// Boots and waits for QEMU to end or the time limit.
    pub fn run(&self) -> Outcome {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let work =
            crate::images::workspace_root().join("target/system-tests").join(format!("{}-{n}", std::process::id()));
        let iso = match self.make_iso(&work) {
            Ok(iso) => iso,
            Err(e) => panic!("cannot make the boot ISO: {e}"),
        };
        let log = work.join("serial.log");
        let start = Instant::now();
        let child = Command::new("qemu-system-x86_64")
            .args(self.qemu_args(&iso, &format!("file:{}", log.display())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => KillOnDrop(c),
            Err(e) => panic!("cannot start qemu-system-x86_64: {e}"),
        };
        let exit = loop {
            match child.0.try_wait() {
                Ok(Some(status)) => {
                    let code = status.code().unwrap_or(-1);
                    break if code & 1 == 1 && code > 0 {
                        Exit::DebugExit((code >> 1) as u8)
                    } else {
                        Exit::Qemu(code)
                    };
                }
                Ok(None) if start.elapsed() > self.timeout => break Exit::TimedOut,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("waiting for QEMU: {e}"),
            }
        };
        drop(child);
        let serial = std::fs::read(&log).map(|b| String::from_utf8_lossy(&b).replace('\r', "")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&work);
        Outcome { serial, exit, elapsed: start.elapsed() }
    }
}
