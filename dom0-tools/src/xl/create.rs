//! `xl create [-c] [-p] [-e] [-q] CFG [KEY=VALUE...]`: parse the
//! configuration, build the domain, wait for its console, unpause it, and
//! leave a monitor behind that applies the `on_*` actions.
//!
//! Semantics: Xen 4.17 `tools/xl/xl_vmcontrol.c create_domain`,
//! `libxl_create.c` (the scheduler parameters applied at creation, the
//! ≤10 s wait for `console/tty`, the domain destroyed on any failure).

use std::time::{Duration, Instant};

use super::cfg::Config;
use super::config::DomainConfig;
use super::{getopt, Ctx, Status, FAIL, OK, USAGE};
use crate::builder::{self, xs_tree, BuildError, DomainSpec};
use crate::xs_client::TxId;

/// How long libxl waits for xenconsoled to write `console/tty`.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration file and the command line's `KEY=VALUE` settings.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file.
    pub file: String,
    /// Extra settings, in the config language.
    pub extra: Vec<String>,
}

impl Source {
    /// Reads and checks the configuration (one line of error on failure).
    pub fn load(&self) -> Result<DomainConfig, String> {
        let text = std::fs::read(&self.file).map_err(|e| format!("Failed to read config file: {}: {e}", self.file))?;
        let text = String::from_utf8_lossy(&text);
        let mut cfg = Config::parse(&self.file, &text).map_err(|e| e.to_string())?;
        if !self.extra.is_empty() {
            let more: String = self.extra.iter().map(|e| format!("{e}\n")).collect();
            cfg.parse_more("command line", &more).map_err(|e| e.to_string())?;
        }
        DomainConfig::from_cfg(&cfg).map_err(|e| e.to_string())
    }
}

/// A random (version 4) UUID.
fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(parsed) = super::config::parse_uuid(text.trim()) {
            return parsed;
        }
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    u.copy_from_slice(&(t ^ u128::from(std::process::id()) << 64).to_le_bytes());
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Waits for xenconsoled to write `/local/domain/N/console/tty`.
fn wait_for_console(ctx: &mut Ctx, domid: u16) -> bool {
    let path = format!("/local/domain/{domid}/console/tty");
    let start = Instant::now();
    while start.elapsed() < CONSOLE_TIMEOUT {
        if ctx.xs.read(TxId::NONE, &path).is_ok_and(|v| !v.is_empty()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Builds, configures and (unless `paused`) starts the domain of `c`;
/// returns its ID. Any failure leaves nothing behind.
pub fn create_domain(ctx: &mut Ctx, c: &DomainConfig, paused: bool) -> Result<u16, String> {
    match xs_tree::name_in_use(&mut ctx.xs, &c.name) {
        Ok(Some(_)) => return Err(format!("domain name \"{}\" is already in use", c.name)),
        Err(e) => return Err(format!("xenstore: {e}")),
        Ok(None) => {}
    }
    let spec = DomainSpec {
        name: &c.name,
        uuid: c.uuid.unwrap_or_else(random_uuid),
        kernel_path: &c.kernel,
        ramdisk_path: c.ramdisk.as_deref(),
        cmdline: &c.cmdline,
        target_memkb: c.memory_mib * 1024,
        max_memkb: c.maxmem_mib * 1024,
        vcpus: c.vcpus,
        max_vcpus: c.maxvcpus,
        store_domid: 0,
        console_domid: 0,
    };
    let built = builder::build(&ctx.xc, &mut ctx.xs, &spec).map_err(|e| e.to_string())?;
    let domid = built.domid;
    let finish = |ctx: &mut Ctx| -> Result<(), BuildError> {
        if c.cpu_weight.is_some() || c.cap.is_some() {
            let sched = ctx.xc.sched_id()?;
            let (w, cap) = ctx.xc.sched_credit_get(domid, sched)?;
            ctx.xc.sched_credit_set(domid, sched, c.cpu_weight.unwrap_or(w), c.cap.unwrap_or(cap))?;
        }
        super::vbd::attach_all(ctx, domid, &c.disks)?;
        super::vif::attach_all(ctx, domid, &c.vifs)?;
        if !wait_for_console(ctx, domid) {
            return Err(BuildError::ConsoleTimeout);
        }
        if !paused {
            ctx.xc.unpause(domid)?;
        }
        Ok(())
    };
    if let Err(e) = finish(ctx) {
        builder::domain::undo(&ctx.xc, &mut ctx.xs, domid);
        return Err(e.to_string());
    }
    Ok(domid)
}

/// `xl create`.
pub fn main(args: &[String]) -> Status {
    let long = [("quiet", 'q'), ("defconfig", 'f')];
    let (opts, operands) = match getopt("create", args, "cpqeFVf", "f", &long) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let has = |c: char| opts.iter().any(|o| o.0 == c);
    let mut operands = operands.into_iter();
    let file = match opts.iter().find(|o| o.0 == 'f').and_then(|o| o.1.clone()) {
        Some(f) => f,
        None => match operands.next() {
            Some(f) if !f.contains('=') => f,
            _ => {
                eprintln!("xl create: no config file given");
                super::help("create");
                return USAGE;
            }
        },
    };
    let source = Source { file, extra: operands.collect() };
    if !has('q') {
        eprintln!("Parsing config from {}", source.file);
    }
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return FAIL;
        }
    };
    for w in &config.warnings {
        eprintln!("{w}");
    }
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let domid = match create_domain(&mut ctx, &config, has('p')) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("xl: cannot create domain {}: {e}", config.name);
            return FAIL;
        }
    };
    if !has('e') {
        if let Err(e) = super::monitor::spawn(&source, domid) {
            eprintln!("xl: warning: cannot start the monitor of domain {domid}: {e}");
        }
    }
    if has('c') {
        return super::console::attach(&mut ctx, domid);
    }
    OK
}
