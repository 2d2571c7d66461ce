//! xenstored: Xen 4.17's XenStore daemon for the control domain.
//!
//! The store itself (requests, permissions, watches, transactions,
//! quotas) is the `xenstore` crate; this module gives it its transports
//! and its hypervisor: the Unix socket for dom0's tools, dom0's kernel
//! ring (`/proc/xen/xsd_kva` and `xsd_port`), the rings of introduced
//! domains (gntdev, or privcmd by MFN), `VIRQ_DOM_EXC` for domain deaths.
//!
//! Start-up follows X:`tools/xenstore/xenstored_core.c` `main`: options,
//! fork to the background unless `-N`, sockets, `domain_init` and
//! `dom0_init` unless `-D`, pid file, then the loop. Unlike Xen, the
//! foreground process exits only once the daemon is ready (or with its
//! error). Modules: `options`, `log`, `daemonize`, `socket`, `xen`,
//! `ring_page`, `event_loop`.

mod daemonize;
mod event_loop;
mod log;
mod options;
mod ring_page;
mod socket;
mod xen;

use std::io::Write;
use std::process::ExitCode;

use xenstore::XenStore;

use daemonize::Ready;
use event_loop::Daemon;
use options::{Options, USAGE};
use xen::XenBackend;

/// Everything up to the loop: the store, the socket, the hypervisor.
fn start(opts: &Options) -> Result<Daemon, String> {
    let mut store = XenStore::new(opts.config.clone());
    let path = socket::socket_path();
    let listener = socket::listen(&path).map_err(|e| e.to_string())?;
    log::info(&format!("listening on {}", path.display()));
    let xen = if opts.no_domain_init {
        None
    } else {
        let mut xen = XenBackend::open().map_err(|e| e.to_string())?;
        let dom0 = opts.config.dom0_domid;
        xen.init_dom0(dom0, opts.dom0_event).map_err(|e| e.to_string())?;
        store.add_domain_connection(dom0);
        log::info(&format!("serving dom{dom0}'s ring"));
        Some(xen)
    };
    Ok(Daemon::new(store, listener, xen))
}

/// The program.
pub fn main() -> ExitCode {
    let opts = match options::parse(std::env::args_os().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xenstored: {e}");
            eprint!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if opts.help {
        eprint!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    for note in &opts.ignored {
        eprintln!("xenstored: ignoring {note}");
    }
    log::init(opts.verbose, opts.trace_file.as_deref());
    // Xen reopens its trace file on SIGHUP; this daemon appends to one open
    // file, so SIGHUP (a closed terminal, a log rotator) must not kill it.
    // SAFETY: installs the predefined "ignore" disposition; no handler runs.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let mut ready = if opts.no_fork {
        Ready::none()
    } else {
        match daemonize::daemonize() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("xenstored: Failed to fork daemon: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    // The pid file's lock guards the socket: a second daemon stops here.
    let pidfile = opts.pid_file.as_deref().map(daemonize::write_pidfile).transpose();
    let started = pidfile.map_err(|e| format!("Writing pid file: {e}")).and_then(|f| Ok((f, start(&opts)?)));
    let (_pidfile, mut daemon) = match started {
        Ok(started) => started,
        Err(e) => {
            // In the background the waiting parent reports it.
            if opts.no_fork {
                log::error(&e);
            } else {
                log::record(&e);
            }
            ready.fail(&e);
            return ExitCode::FAILURE;
        }
    };
    if opts.output_pid {
        println!("{}", std::process::id());
        let _ = std::io::stdout().flush();
    }
    if !opts.no_fork {
        if let Err(e) = daemonize::detach_stdio() {
            log::error(&format!("detaching from the terminal: {e}"));
        }
    }
    ready.ok();
    match daemon.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&format!("Poll failed: {e}"));
            ExitCode::FAILURE
        }
    }
}
