//! Command-line options, as Xen 4.17's C xenstored takes them.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `options[]`, `usage`,
//! `set_quota` (Xen 4.17), parsed like `getopt_long`: `-Nv` clusters,
//! `-Ffile` or `-F file`, `--pid-file=file` or `--pid-file file`, `--`
//! ends the options. Unknown options are reported and ignored, as getopt
//! lets Xen do; bad numbers are errors.

use std::ffi::OsString;
use std::path::PathBuf;

use xenstore::Config;

/// What the daemon was asked to do.
#[derive(Debug, Default)]
pub struct Options {
    /// `-H`: print the usage and exit.
    pub help: bool,
    /// `-D`: do not talk to the hypervisor (sockets only).
    pub no_domain_init: bool,
    /// `-F FILE`: write the daemon's pid there.
    pub pid_file: Option<PathBuf>,
    /// `-N`: stay in the foreground.
    pub no_fork: bool,
    /// `-P`: print the daemon's pid on stdout.
    pub output_pid: bool,
    /// `-T FILE`: append the log there.
    pub trace_file: Option<PathBuf>,
    /// `-V`: log to stderr.
    pub verbose: bool,
    /// `-e PORT`: dom0's store event channel instead of `xsd_port`.
    pub dom0_event: Option<u32>,
    /// Quotas and special domain ids.
    pub config: Config,
    /// Options that were accepted but change nothing here.
    pub ignored: Vec<String>,
}

/// Whether an option takes an argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    /// Only attached (`-Ioff`, `--internal-db=off`), as getopt's `::`.
    Optional,
}

/// `options[]`: short name, long name, argument.
const OPTIONS: &[(char, &str, Arg)] = &[
    ('D', "no-domain-init", Arg::No),
    ('E', "entry-nb", Arg::Required),
    ('F', "pid-file", Arg::Required),
    ('e', "event", Arg::Required),
    ('m', "master-domid", Arg::Required),
    ('H', "help", Arg::No),
    ('N', "no-fork", Arg::No),
    ('p', "priv-domid", Arg::Required),
    ('P', "output-pid", Arg::No),
    ('S', "entry-size", Arg::Required),
    ('T', "trace-file", Arg::Required),
    ('t', "transaction", Arg::Required),
    ('A', "perm-nb", Arg::Required),
    ('M', "path-max", Arg::Required),
    ('Q', "quota", Arg::Required),
    ('q', "quota-soft", Arg::Required),
    ('w', "timeout", Arg::Required),
    ('R', "no-recovery", Arg::No),
    ('I', "internal-db", Arg::Optional),
    ('K', "keep-orphans", Arg::No),
    ('V', "verbose", Arg::No),
    ('W', "watch-nb", Arg::Required),
];

/// The `--help` text.
pub const USAGE: &str = "\
Usage:

  xenstored <options>

where options may include:

  -D, --no-domain-init    to state that xenstored should not initialise dom0,
  -F, --pid-file <file>   giving a file for the daemon's pid to be written,
  -H, --help              to output this message,
  -N, --no-fork           to request that the daemon does not fork,
  -P, --output-pid        to request that the pid of the daemon is output,
  -T, --trace-file <file> giving the file for logging, and
  -E, --entry-nb <nb>     limit the number of entries per domain,
  -S, --entry-size <size> limit the size of entry per domain, and
  -W, --watch-nb <nb>     limit the number of watches per domain,
  -t, --transaction <nb>  limit the number of transaction allowed per domain,
  -A, --perm-nb <nb>      limit the number of permissions per node,
  -M, --path-max <chars>  limit the allowed Xenstore node path length,
  -Q, --quota <what>=<nb> set the quota <what> to the value <nb>, allowed
                          quotas are:
                          transaction-nodes: number of accessed node per
                                             transaction
                          memory: total used memory per domain for nodes,
                                  transactions, watches and requests, above
                                  which Xenstore will stop talking to domain
                          outstanding: number of outstanding requests
  -q, --quota-soft <what>=<nb> set a soft quota <what> to the value <nb>,
                          causing a warning to be issued via syslog() if the
                          limit is violated, allowed quotas are:
                          memory: see above
  -w, --timeout <what>=<seconds>   set the timeout in seconds for <what>,
                          allowed timeout candidates are:
                          watch-event: time a watch-event is kept pending
                          (accepted, not enforced by this xenstored)
  -R, --no-recovery       to request that no recovery should be attempted when
                          the store is corrupted (debug only),
  -I, --internal-db [on|off] store database in memory, not on disk (always
                          in memory here)
  -K, --keep-orphans      don't delete nodes owned by a domain when the
                          domain is deleted (this is a security risk!)
  -V, --verbose           to request verbose execution.
  -e, --event <port>      dom0's XenStore event channel (default: xsd_port)
  -m, --master-domid <id> the domain whose kernel ring is served at start
  -p, --priv-domid <id>   a domain that gets dom0's rights

Environment: XENSTORED_PATH (the socket), XENSTORED_RUNDIR (its directory,
default /run/xenstored).
";

/// Parses a non-negative `int`, as Xen's `get_optval_int`.
fn number(what: &str, arg: &str) -> Result<u32, String> {
    arg.parse::<u32>()
        .ok()
        .filter(|&v| v <= i32::MAX as u32)
        .ok_or_else(|| format!("invalid parameter value \"{arg}\" for {what}"))
}

/// A domain id argument.
fn domid(what: &str, arg: &str) -> Result<u16, String> {
    u16::try_from(number(what, arg)?).map_err(|_| format!("invalid domain id \"{arg}\" for {what}"))
}

/// `set_quota`: `what=nb`.
fn set_quota(o: &mut Options, arg: &str, soft: bool) -> Result<(), String> {
    let (what, value) = arg.split_once('=').ok_or("quotas must be specified via <what>=<nb>")?;
    let value = number(what, value)?;
    let q = &mut o.config.quotas;
    match (what, soft) {
        ("memory", true) => q.memory_soft = value,
        ("memory", false) => q.memory_hard = value,
        ("outstanding", false) => q.outstanding = value,
        ("transaction-nodes", false) => q.transaction_nodes = value,
        _ => return Err(format!("unknown quota \"{arg}\"")),
    }
    Ok(())
}

/// Applies one option.
fn apply(o: &mut Options, short: char, arg: Option<String>) -> Result<(), String> {
    let need = |arg: Option<String>| arg.ok_or_else(|| format!("option -{short} requires an argument"));
    let q = &mut o.config.quotas;
    match short {
        'D' => o.no_domain_init = true,
        'E' => q.nodes = number("--entry-nb", &need(arg)?)?,
        'F' => o.pid_file = Some(need(arg)?.into()),
        'e' => o.dom0_event = Some(number("--event", &need(arg)?)?),
        'm' => o.config.dom0_domid = domid("--master-domid", &need(arg)?)?,
        'H' => o.help = true,
        'N' => o.no_fork = true,
        'p' => o.config.priv_domid = domid("--priv-domid", &need(arg)?)?,
        'P' => o.output_pid = true,
        'S' => q.entry_size = number("--entry-size", &need(arg)?)?,
        'T' => o.trace_file = Some(need(arg)?.into()),
        't' => q.transactions = number("--transaction", &need(arg)?)?,
        'A' => q.perms_per_node = number("--perm-nb", &need(arg)?)?,
        'M' => {
            let max = guest_abi::io::xs_wire::XENSTORE_REL_PATH_MAX;
            q.path_len = number("--path-max", &need(arg)?)?.min(max);
        }
        'Q' => set_quota(o, &need(arg)?, false)?,
        'q' => set_quota(o, &need(arg)?, true)?,
        'w' => {
            let arg = need(arg)?;
            let (what, secs) = arg.split_once('=').ok_or("timeouts must be specified via <what>=<seconds>")?;
            number(what, secs)?;
            if what != "watch-event" {
                return Err(format!("unknown timeout \"{arg}\""));
            }
            o.ignored.push(format!("--timeout {arg}"));
        }
        'R' => o.ignored.push("--no-recovery".into()),
        'I' => o.ignored.push(format!("--internal-db {}", arg.unwrap_or_default())),
        'K' => o.config.keep_orphans = true,
        'V' => o.verbose = true,
        'W' => q.watches = number("--watch-nb", &need(arg)?)?,
        _ => {}
    }
    Ok(())
}

/// Parses the arguments after the program name. Unknown options are
/// returned as warnings in `ignored`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "--" {
            if args.next().is_some() {
                return Err("No arguments desired".into());
            }
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(short, _, kind)) = OPTIONS.iter().find(|(_, l, _)| *l == name) else {
                o.ignored.push(format!("unrecognized option '--{name}'"));
                continue;
            };
            let arg = match (kind, attached) {
                (Arg::No, Some(_)) => return Err(format!("option '--{name}' doesn't allow an argument")),
                (Arg::Required, None) => args.next(),
                (_, attached) => attached,
            };
            apply(&mut o, short, arg)?;
        } else if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (i, c) in cluster.char_indices() {
                let Some(&(short, _, kind)) = OPTIONS.iter().find(|(s, _, _)| *s == c) else {
                    o.ignored.push(format!("invalid option -- '{c}'"));
                    continue;
                };
                let rest = cluster.get(i + c.len_utf8()..).unwrap_or("");
                if kind == Arg::No {
                    apply(&mut o, short, None)?;
                    continue;
                }
                let arg = match (rest.is_empty(), kind) {
                    (false, _) => Some(rest.to_owned()),
                    (true, Arg::Required) => args.next(),
                    (true, _) => None,
                };
                apply(&mut o, short, arg)?;
                break;
            }
        } else {
            return Err("No arguments desired".into());
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn xen_spellings() {
        let o = p(&["--pid-file", "/run/x.pid", "-NV", "-E500", "--watch-nb=7", "-Q", "outstanding=3"]).unwrap();
        assert_eq!(o.pid_file, Some("/run/x.pid".into()));
        assert!(o.no_fork && o.verbose && !o.no_domain_init);
        assert_eq!(o.config.quotas.nodes, 500);
        assert_eq!(o.config.quotas.watches, 7);
        assert_eq!(o.config.quotas.outstanding, 3);
        let o = p(&["-F", "f", "-D", "-p", "3", "-q", "memory=10", "-M", "99999", "-Ioff", "-K"]).unwrap();
        assert_eq!(o.pid_file, Some("f".into()));
        assert!(o.no_domain_init && o.config.keep_orphans);
        assert_eq!(o.config.priv_domid, 3);
        assert_eq!(o.config.quotas.memory_soft, 10);
        assert_eq!(o.config.quotas.path_len, 2048, "capped at XENSTORE_REL_PATH_MAX");
        assert_eq!(o.ignored, vec!["--internal-db off".to_owned()]);
    }

    #[test]
    fn errors_and_unknowns() {
        assert!(p(&["stray"]).is_err());
        assert!(p(&["-E", "many"]).is_err());
        assert!(p(&["-F"]).is_err());
        assert!(p(&["-Q", "bogus=1"]).is_err());
        assert!(p(&["-m", "70000"]).is_err());
        assert!(p(&["--help=yes"]).is_err());
        let o = p(&["--frobnicate", "-z", "-H"]).unwrap();
        assert!(o.help);
        assert_eq!(o.ignored.len(), 2);
    }
}
