//! xl's commands: the command table, `help`, option handling, and what
//! every command shares (the hypervisor and XenStore handles, domain
//! lookup by name or ID).
//!
//! Exit codes as xl's: 0 on success, 1 (`EXIT_FAILURE`) when a command
//! fails, 2 for a usage error (after printing the command's help).
//! Semantics: Xen 4.17 `tools/xl/xl.c`, `xl_cmdtable.c`, `xl_utils.c`
//! (`find_domain`).

pub mod cfg;
pub mod config;
mod console;
mod control;
mod create;
mod info;
mod list;
pub mod monitor;
mod top;
pub mod vbd;
mod vcpu;
pub mod vif;

use std::process::ExitCode;

use crate::builder::xc::Xc;
use crate::xs_client::{TxId, XsClient};

/// A command's outcome: its exit status.
pub type Status = u8;
/// `EXIT_SUCCESS`
pub const OK: Status = 0;
/// `EXIT_FAILURE`
pub const FAIL: Status = 1;
/// A usage error.
pub const USAGE: Status = 2;

/// One subcommand.
struct Command {
    name: &'static str,
    run: fn(&[String]) -> Status,
    summary: &'static str,
    usage: &'static str,
    options: &'static str,
}

/// The subcommands, in xl's order.
const COMMANDS: &[Command] = &[
    Command {
        name: "create",
        run: create::main,
        summary: "Create a domain from config file <filename>",
        usage: "<ConfigFile> [options] [vars]",
        options: "-h                      Print this help.\n\
                  -p                      Leave the domain paused after it is created.\n\
                  -c                      Connect to the console after the domain is created.\n\
                  -q, --quiet             Quiet.\n\
                  -e                      Do not wait in the background for the death of the domain.\n\
                  -F                      Run in foreground until death of the domain.",
    },
    Command {
        name: "list",
        run: list::list,
        summary: "List information about all/some domains",
        usage: "[options] [Domain]",
        options: "-l, --long              Output all VM details\n-v, --verbose           Prints out UUIDs and security context",
    },
    Command { name: "destroy", run: control::destroy, summary: "Terminate a domain immediately", usage: "[options] <Domain>", options: "-f                      Permit destroying domain 0." },
    Command {
        name: "shutdown",
        run: control::shutdown,
        summary: "Issue a shutdown signal to a domain",
        usage: "[options] <-a|Domain>",
        options: "-a, --all               Shutdown all guest domains.\n-w, --wait              Wait for guest(s) to shutdown.\n-F                      Fallback to ACPI power event for HVM guests.",
    },
    Command {
        name: "reboot",
        run: control::reboot,
        summary: "Issue a reboot signal to a domain",
        usage: "[options] <-a|Domain>",
        options: "-a, --all               Reboot all guest domains.\n-w, --wait              Wait for guest(s) to reboot.",
    },
    Command { name: "pause", run: control::pause, summary: "Pause execution of a domain", usage: "<Domain>", options: "" },
    Command { name: "unpause", run: control::unpause, summary: "Unpause a paused domain", usage: "<Domain>", options: "" },
    Command {
        name: "console",
        run: console::main,
        summary: "Attach to domain's console",
        usage: "[options] <Domain>",
        options: "-t <type>       console type, pv or serial\n-n <number>     console number",
    },
    Command { name: "info", run: info::main, summary: "Get information about Xen host", usage: "[-n|--numa]", options: "-n, --numa         List host NUMA topology information" },
    Command { name: "domid", run: list::domid, summary: "Convert a domain name to domain id", usage: "<DomainName>", options: "" },
    Command { name: "domname", run: list::domname, summary: "Convert a domain id to domain name", usage: "<DomainId>", options: "" },
    Command { name: "rename", run: control::rename, summary: "Rename a domain", usage: "<Domain> <NewDomainName>", options: "" },
    Command { name: "mem-max", run: control::mem_max, summary: "Set the maximum amount reservation for a domain", usage: "<Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>", options: "" },
    Command { name: "mem-set", run: control::mem_set, summary: "Set the current memory usage for a domain", usage: "<Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>", options: "" },
    Command {
        name: "sched-credit",
        run: control::sched_credit,
        summary: "Get/set credit scheduler parameters",
        usage: "[-d <Domain> [-w[=WEIGHT]|-c[=CAP]]]",
        options: "-d DOMAIN, --domain=DOMAIN     Domain to modify\n-w WEIGHT, --weight=WEIGHT     Weight (int)\n-c CAP, --cap=CAP              Cap (int)",
    },
    Command { name: "vcpu-list", run: list::vcpu_list, summary: "List the VCPUs for all/some domains", usage: "[Domain, ...]", options: "" },
    Command {
        name: "vcpu-pin",
        run: vcpu::vcpu_pin,
        summary: "Set which CPUs a VCPU can use",
        usage: "[option] <Domain> <VCPU|all> <Hard affinity|-|all> <Soft affinity|-|all>",
        options: "-f, --force        undo an override pinning done by the kernel\n\
                  -i, --ignore-global-affinity-masks Ignore global masks in xl.conf",
    },
    Command {
        name: "top",
        run: top::main,
        summary: "Monitor a host and the domains in real time",
        usage: "-b [-d DELAY] [-i ITERATIONS]",
        options: "-b, --batch             Batch mode (the only one here): print, do not draw.\n\
                  -d, --delay=SECONDS     Seconds between updates (default 3).\n\
                  -i, --iterations=N      Number of updates before exiting.",
    },
    Command { name: "dmesg", run: control::dmesg, summary: "Read and/or clear dmesg buffer", usage: "[-c]", options: "  -c                        Clear dmesg buffer as well as printing it" },
    Command { name: "uptime", run: list::uptime, summary: "Print uptime for all/some domains", usage: "[-s] [Domain]", options: "-s                         Uptime in short format" },
    Command { name: "block-attach", run: vbd::block_attach, summary: "Create a new virtual block device", usage: "<Domain> <disk-spec-component(s)>...", options: "" },
    Command { name: "block-list", run: vbd::block_list, summary: "List virtual block devices for a domain", usage: "<Domain(s)>", options: "" },
    Command { name: "block-detach", run: vbd::block_detach, summary: "Destroy a domain's virtual block device", usage: "[-f] <Domain> <DevId>", options: "-f                      Force detach" },
    Command { name: "network-attach", run: vif::network_attach, summary: "Create a new virtual network device", usage: "<Domain> <nic-spec-component(s)>...", options: "" },
    Command { name: "network-list", run: vif::network_list, summary: "List virtual network interfaces for a domain", usage: "<Domain(s)>", options: "" },
    Command { name: "network-detach", run: vif::network_detach, summary: "Destroy a domain's virtual network device", usage: "<Domain> <DevId|mac>", options: "" },
];

/// `xl help`: every subcommand with its summary.
fn help_all() {
    println!("Usage xl [-vfNtT] <subcommand> [args]\n\nxl full list of subcommands:\n");
    for c in COMMANDS {
        println!(" {:<20}{}", c.name, c.summary);
    }
    println!();
}

/// `xl CMD --help`.
pub fn help(name: &str) {
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => {
            println!("Usage: xl [-v] {} {}\n\n{}.\n", c.name, c.usage, c.summary);
            if !c.options.is_empty() {
                println!("Options:\n\n{}", c.options);
            }
        }
        None => help_all(),
    }
}

/// Runs xl with `args` (argv).
pub fn main(args: &[String]) -> ExitCode {
    let mut rest = args.get(1..).unwrap_or_default();
    // Global options xl takes before the subcommand (-v verbose, -f force,
    // -N dry run, -t timestamps, -T): accepted and ignored.
    while let Some(opt) = rest.first().filter(|a| a.starts_with('-') && *a != "-h" && *a != "--help") {
        if opt.contains('v') {
            crate::builder::set_verbose(true);
        }
        if !opt.chars().skip(1).all(|c| "vfNtT".contains(c)) {
            eprintln!("xl: invalid option -- '{}'", opt.trim_start_matches('-'));
            help_all();
            return ExitCode::from(USAGE);
        }
        rest = &rest[1..];
    }
    let Some(cmd) = rest.first() else {
        help_all();
        return ExitCode::from(USAGE);
    };
    if cmd == "help" || cmd == "-h" || cmd == "--help" {
        match rest.get(1) {
            Some(c) => help(c),
            None => help_all(),
        }
        return ExitCode::SUCCESS;
    }
    if cmd == monitor::SUBCOMMAND {
        return ExitCode::from(monitor::main(&rest[1..]));
    }
    match COMMANDS.iter().find(|c| c.name == cmd) {
        Some(c) => {
            let cmd_args = &rest[1..];
            if cmd_args.iter().any(|a| a == "-h" || a == "--help") {
                help(c.name);
                return ExitCode::SUCCESS;
            }
            ExitCode::from((c.run)(cmd_args))
        }
        None => {
            eprintln!("command not implemented");
            ExitCode::from(USAGE)
        }
    }
}

/// What every command that talks to Xen holds.
pub struct Ctx {
    /// The hypervisor.
    pub xc: Xc,
    /// XenStore.
    pub xs: XsClient,
}

impl Ctx {
    /// Opens privcmd and XenStore, or says why not (xl's messages).
    pub fn open() -> Result<Ctx, Status> {
        let xc = Xc::open().map_err(|e| {
            eprintln!("xl: cannot open /dev/xen/privcmd: {e}");
            FAIL
        })?;
        let xs = XsClient::open().map_err(|e| {
            eprintln!("xl: cannot connect to xenstore: {e}");
            FAIL
        })?;
        Ok(Ctx { xc, xs })
    }

    /// A domain's name (`/local/domain/N/name`).
    pub fn name_of(&mut self, domid: u16) -> Option<String> {
        let v = self.xs.read(TxId::NONE, &format!("/local/domain/{domid}/name")).ok()?;
        String::from_utf8(v).ok()
    }

    /// The domain `name` names, by name or ID (xl's `find_domain`).
    pub fn lookup(&mut self, name: &str) -> Option<u16> {
        if let Ok(id) = name.parse::<u16>() {
            return Some(id);
        }
        crate::builder::xs_tree::name_in_use(&mut self.xs, name).ok().flatten()
    }

    /// [`Ctx::lookup`] that prints xl's error when there is no such domain.
    pub fn find_domain(&mut self, name: &str) -> Result<u16, Status> {
        match self.lookup(name) {
            Some(id) if self.xc.domain_info(id).ok().flatten().is_some() => Ok(id),
            _ => {
                eprintln!("{name} is an invalid domain identifier (rc=-6)");
                Err(FAIL)
            }
        }
    }
}

/// Parsed options (letter, value) and operands.
pub type Parsed = (Vec<(char, Option<String>)>, Vec<String>);

/// Splits `args` into options (with their values, for the letters in
/// `with_value`) and operands, getopt-style: `-wc 5`, `-c5`, `--cap=5`
/// and `--` work. Unknown options are usage errors.
pub fn getopt(
    cmd: &str,
    args: &[String],
    letters: &str,
    with_value: &str,
    long: &[(&str, char)],
) -> Result<Parsed, Status> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut it = args.iter();
    let bad = |what: &str| {
        eprintln!("xl {cmd}: {what}");
        help(cmd);
        USAGE
    };
    while let Some(a) = it.next() {
        if a == "--" {
            operands.extend(it.by_ref().cloned());
            break;
        }
        if let Some(l) = a.strip_prefix("--") {
            let (name, value) = match l.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (l, None),
            };
            let Some(&(_, c)) = long.iter().find(|(n, _)| *n == name) else {
                return Err(bad(&format!("unrecognized option '--{name}'")));
            };
            let value = match (with_value.contains(c), value) {
                (true, None) => {
                    Some(it.next().cloned().ok_or_else(|| bad(&format!("option '--{name}' requires an argument")))?)
                }
                (_, v) => v,
            };
            opts.push((c, value));
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a.chars().skip(1).collect();
            let mut i = 0;
            while let Some(&c) = chars.get(i) {
                if !letters.contains(c) {
                    return Err(bad(&format!("invalid option -- '{c}'")));
                }
                if with_value.contains(c) {
                    let rest: String = chars.get(i + 1..).unwrap_or_default().iter().collect();
                    let v = if rest.is_empty() {
                        it.next().cloned().ok_or_else(|| bad(&format!("option requires an argument -- '{c}'")))?
                    } else {
                        rest
                    };
                    opts.push((c, Some(v)));
                    break;
                }
                opts.push((c, None));
                i += 1;
            }
        } else {
            operands.push(a.clone());
        }
    }
    Ok((opts, operands))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn getopt_handles_clusters_values_and_long_options() {
        let (o, rest) =
            getopt("x", &v(&["-d", "d1", "-w256", "--cap=50", "extra"]), "dwc", "dwc", &[("cap", 'c')]).unwrap();
        assert_eq!(o, vec![('d', Some("d1".into())), ('w', Some("256".into())), ('c', Some("50".into()))]);
        assert_eq!(rest, v(&["extra"]));
        let (o, rest) = getopt("x", &v(&["-cp", "f.cfg", "--", "-x"]), "cp", "", &[]).unwrap();
        assert_eq!(o, vec![('c', None), ('p', None)]);
        assert_eq!(rest, v(&["f.cfg", "-x"]));
        assert_eq!(getopt("list", &v(&["-z"]), "lv", "", &[]), Err(USAGE));
        assert_eq!(getopt("list", &v(&["-d"]), "d", "d", &[]), Err(USAGE));
    }

    #[test]
    fn every_command_has_help() {
        for c in COMMANDS {
            assert!(!c.summary.is_empty() && !c.usage.is_empty(), "{}", c.name);
        }
    }
}
