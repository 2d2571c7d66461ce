//! The monitor `xl create` leaves behind for each domain (xl's daemonized
//! child): it waits for the domain to shut down and applies the
//! configured action — `destroy`, `restart` (same configuration, same
//! name), `rename-restart` (the old domain kept under a new name, a new
//! one started), `preserve` (left shut down) — and exits when the domain
//! is gone.
//!
//! It runs as `xl __monitor DOMID CFG [KEY=VALUE...]` in its own process
//! group, watching `@releaseDomain` as xl does (`handle_domain_death`),
//! and logs to `/var/log/xen/xl-NAME.log`.
//! Semantics: Xen 4.17 `tools/xl/xl_vmcontrol.c` (`handle_domain_death`,
//! `preserve_domain`, the create loop's restart).

use std::io::Write;
use std::process::{Command, Stdio};

use super::config::{Action, DomainConfig};
use super::control::{destroy_domain, rename_domain};
use super::create::{create_domain, Source};
use super::{Ctx, Status, FAIL, OK, USAGE};

/// The hidden subcommand that runs a monitor.
pub const SUBCOMMAND: &str = "__monitor";
/// `SHUTDOWN_*` codes.
const POWEROFF: u32 = 0;
const REBOOT: u32 = 1;
const SUSPEND: u32 = 2;
const CRASH: u32 = 3;
const WATCHDOG: u32 = 4;
/// Most restarts in a row before the monitor gives up (a crash loop).
const MAX_RESTARTS: u32 = 100;

/// Starts the monitor of `domid` in the background.
pub fn spawn(source: &Source, domid: u16) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let _ = std::fs::create_dir_all("/var/log/xen");
    Command::new(exe)
        .arg(SUBCOMMAND)
        .arg(domid.to_string())
        .arg(&source.file)
        .args(&source.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
}

/// A log line to the monitor's log.
fn log(name: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(format!("/var/log/xen/xl-{name}.log"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// What happened to the watched domain.
enum Fate {
    /// Destroyed (or never there): nothing to do.
    Gone,
    /// Shut down with this reason code.
    Shutdown(u32),
}

/// Waits for the domain to shut down or disappear.
fn wait(ctx: &mut Ctx, domid: u16) -> Fate {
    let token = format!("xl-monitor-{domid}");
    if ctx.xs.watch("@releaseDomain", &token).is_err() {
        return Fate::Gone;
    }
    loop {
        match ctx.xc.domain_info(domid) {
            Ok(Some(i)) if i.dying() => return Fate::Gone,
            Ok(Some(i)) if i.shutdown() && i.shutdown_reason() != SUSPEND => {
                let _ = ctx.xs.unwatch("@releaseDomain", &token);
                return Fate::Shutdown(i.shutdown_reason());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return Fate::Gone,
        }
        if ctx.xs.read_watch().is_err() {
            return Fate::Gone;
        }
    }
}

/// The action configured for a shutdown code.
fn action_for(c: &DomainConfig, reason: u32) -> Action {
    match reason {
        POWEROFF => c.on_poweroff,
        REBOOT => c.on_reboot,
        CRASH => c.on_crash,
        WATCHDOG => c.on_watchdog,
        _ => Action::Destroy,
    }
}

/// `xl __monitor DOMID CFG [KEY=VALUE...]`.
pub fn main(args: &[String]) -> Status {
    let [domid, file, extra @ ..] = args else { return USAGE };
    let Ok(mut domid) = domid.parse::<u16>() else { return USAGE };
    let source = Source { file: file.clone(), extra: extra.to_vec() };
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    let mut restarts = 0;
    loop {
        let Fate::Shutdown(reason) = wait(&mut ctx, domid) else { return OK };
        let config = match source.load() {
            Ok(c) => c,
            Err(e) => {
                log(&format!("{domid}"), &format!("cannot reload the configuration: {e}; destroying {domid}"));
                let _ = destroy_domain(&mut ctx, domid);
                return FAIL;
            }
        };
        let action = action_for(&config, reason);
        log(&config.name, &format!("Domain {domid} has shut down, reason code {reason}; action {}", action.name()));
        match action {
            Action::Preserve => return OK,
            Action::Destroy | Action::CoredumpDestroy | Action::SoftReset => {
                let _ = destroy_domain(&mut ctx, domid);
                return OK;
            }
            Action::Restart | Action::CoredumpRestart => {
                let _ = destroy_domain(&mut ctx, domid);
            }
            Action::RenameRestart => {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
                let new_name = format!("{}-{now}", config.name);
                if let Err(e) = rename_domain(&mut ctx, domid, &new_name) {
                    log(&config.name, &format!("cannot preserve {domid}: {e}; destroying it"));
                    let _ = destroy_domain(&mut ctx, domid);
                }
            }
        }
        restarts += 1;
        if restarts > MAX_RESTARTS {
            log(&config.name, "too many restarts; giving up");
            return FAIL;
        }
        match create_domain(&mut ctx, &config, false) {
            Ok(id) => {
                log(&config.name, &format!("Domain {domid} restarted as {id}"));
                domid = id;
            }
            Err(e) => {
                log(&config.name, &format!("cannot restart: {e}"));
                return FAIL;
            }
        }
    }
}
