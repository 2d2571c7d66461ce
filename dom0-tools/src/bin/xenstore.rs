//! `xenstore`: Xen 4.17's `xenstore-*` tools in one multi-call binary.
//!
//! Dispatches on `argv[0]` (`xenstore-read`, `-write`, `-ls`, `-list`,
//! `-rm`, `-chmod`, `-watch`, `-exists`) or, invoked as anything else, on
//! the first argument (`xenstore read ...`), with the options, output,
//! messages and exit statuses of Xen 4.17's `tools/xenstore/xenstore_client.c`
//! (glibc's `getopt_long`, `err`/`warnx` formats and `strerror` texts).
//! Every usage error exits 1 with the usage line on stderr, `-h` too, as
//! in 4.17.
//!
//! Deviation: where 4.17's `xenstore-watch` would spin after losing its
//! connection, this one reports it and exits 1. `xenstore -h`/`--help`
//! (an "unknown mode" in Xen) prints the mode list.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::exit;

use dom0_tools::xs_client::{sanitise_value, unsanitise_value, Perm, TxId, XsClient, XsError};
use guest_abi::io::xs_wire::XENSTORE_ABS_PATH_MAX;
use guest_abi::XenError;

/// The tool being run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Unknown,
    Chmod,
    Exists,
    List,
    Ls,
    Read,
    Rm,
    Write,
    Watch,
}

impl Mode {
    /// `lookup_mode`.
    fn lookup(name: &str) -> Option<Mode> {
        Some(match name {
            "read" => Mode::Read,
            "chmod" => Mode::Chmod,
            "exists" => Mode::Exists,
            "list" => Mode::List,
            "ls" => Mode::Ls,
            "rm" => Mode::Rm,
            "write" => Mode::Write,
            "watch" => Mode::Watch,
            _ => return None,
        })
    }

    /// The usage line after `Usage: <prog> [<mode> ]`.
    fn usage_args(self) -> &'static str {
        match self {
            Mode::Unknown => "<mode> [-h] [...]",
            Mode::Read => "[-h] [-p] [-s] [-R] key [...]",
            Mode::Write => "[-h] [-s] [-R] key value [...]",
            Mode::Rm => "[-h] [-s] [-t] key [...]",
            Mode::Exists | Mode::List => "[-h] [-p] [-s] key [...]",
            Mode::Ls => "[-h] [-f] [-p] [-s] [path]",
            Mode::Chmod => "[-h] [-u] [-r] [-s] key <mode [modes...]>",
            Mode::Watch => "[-h] [-n NR] key",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Unknown => "",
            Mode::Chmod => "chmod",
            Mode::Exists => "exists",
            Mode::List => "list",
            Mode::Ls => "ls",
            Mode::Read => "read",
            Mode::Rm => "rm",
            Mode::Write => "write",
            Mode::Watch => "watch",
        }
    }
}

/// glibc's `getopt_long` for this tool: permutes non-options to the end,
/// clusters short options, abbreviates long ones, prints its own messages.
mod getopt {
    /// A long option: name, takes an argument, the short option it means.
    pub struct LongOpt(pub &'static str, pub bool, pub char);

    /// What parsing produced, in order.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Event {
        /// An option and its argument.
        Opt(char, Option<Vec<u8>>),
        /// A diagnostic getopt prints to stderr (without newline).
        Diag(String),
    }

    /// Parses `args` (without argv[0]); `prog` prefixes diagnostics.
    /// Returns the events and the non-option arguments.
    pub fn parse(prog: &str, args: &[Vec<u8>], shorts: &str, longs: &[LongOpt]) -> (Vec<Event>, Vec<Vec<u8>>) {
        let mut events = Vec::new();
        let mut operands = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == b"--" {
                operands.extend(args[i..].iter().cloned());
                break;
            }
            if let Some(body) = arg.strip_prefix(b"--") {
                let (name, value) = match body.iter().position(|&b| b == b'=') {
                    Some(eq) => (&body[..eq], Some(body[eq + 1..].to_vec())),
                    None => (body, None),
                };
                let name_s = String::from_utf8_lossy(name);
                let exact = longs.iter().find(|l| l.0.as_bytes() == name);
                let matches: Vec<&LongOpt> = longs.iter().filter(|l| l.0.as_bytes().starts_with(name)).collect();
                let opt: &LongOpt = match (exact, matches.as_slice()) {
                    (Some(l), _) => l,
                    (None, [l]) => l,
                    (None, []) => {
                        events.push(Event::Diag(format!("{prog}: unrecognized option '--{name_s}'")));
                        continue;
                    }
                    (None, many) => {
                        let list: String = many.iter().map(|l| format!(" '--{}'", l.0)).collect();
                        events.push(Event::Diag(format!(
                            "{prog}: option '--{name_s}' is ambiguous; possibilities:{list}"
                        )));
                        continue;
                    }
                };
                match (opt.1, value) {
                    (false, Some(_)) => {
                        events.push(Event::Diag(format!("{prog}: option '--{}' doesn't allow an argument", opt.0)));
                    }
                    (false, None) => events.push(Event::Opt(opt.2, None)),
                    (true, Some(v)) => events.push(Event::Opt(opt.2, Some(v))),
                    (true, None) if i < args.len() => {
                        events.push(Event::Opt(opt.2, Some(args[i].clone())));
                        i += 1;
                    }
                    (true, None) => {
                        events.push(Event::Diag(format!("{prog}: option '--{}' requires an argument", opt.0)));
                    }
                }
                continue;
            }
            if arg.len() < 2 || arg[0] != b'-' {
                operands.push(arg.clone());
                continue;
            }
            let mut j = 1;
            while j < arg.len() {
                let c = arg[j] as char;
                j += 1;
                let spec = shorts.find(c).filter(|_| c != ':');
                let Some(pos) = spec else {
                    events.push(Event::Diag(format!("{prog}: invalid option -- '{c}'")));
                    continue;
                };
                let takes_arg = shorts[pos + 1..].starts_with(':');
                if !takes_arg {
                    events.push(Event::Opt(c, None));
                } else if j < arg.len() {
                    events.push(Event::Opt(c, Some(arg[j..].to_vec())));
                    break;
                } else if i < args.len() {
                    events.push(Event::Opt(c, Some(args[i].clone())));
                    i += 1;
                } else {
                    events.push(Event::Diag(format!("{prog}: option requires an argument -- '{c}'")));
                }
            }
        }
        (events, operands)
    }
}

/// The long options of 4.17's `xenstore_client.c`.
const LONG_OPTS: &[getopt::LongOpt] = &[
    getopt::LongOpt("help", false, 'h'),
    getopt::LongOpt("flat", false, 'f'),
    getopt::LongOpt("socket", false, 's'),
    getopt::LongOpt("prefix", false, 'p'),
    getopt::LongOpt("tidy", false, 't'),
    getopt::LongOpt("upto", false, 'u'),
    getopt::LongOpt("recurse", false, 'r'),
    getopt::LongOpt("number", true, 'n'),
    getopt::LongOpt("raw", false, 'R'),
];

/// glibc's `strerror` text for the errnos XenStore and sockets produce.
fn strerror(errno: i32) -> String {
    let text = match errno {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        5 => "Input/output error",
        7 => "Argument list too long",
        9 => "Bad file descriptor",
        11 => "Resource temporarily unavailable",
        12 => "Cannot allocate memory",
        13 => "Permission denied",
        16 => "Device or resource busy",
        17 => "File exists",
        20 => "Not a directory",
        21 => "Is a directory",
        22 => "Invalid argument",
        28 => "No space left on device",
        30 => "Read-only file system",
        32 => "Broken pipe",
        38 => "Function not implemented",
        39 => "Directory not empty",
        104 => "Connection reset by peer",
        106 => "Transport endpoint is already connected",
        107 => "Transport endpoint is not connected",
        111 => "Connection refused",
        _ => return format!("Unknown error {errno}"),
    };
    text.to_string()
}

/// C's `atoi` (as glibc's `strtol` truncated to `int`).
fn atoi(s: &[u8]) -> i32 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for d in digits.iter().take_while(|b| b.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    (if neg { -v } else { v }) as i32
}

/// C's `%.*s`: at most `prec` bytes, all of them for a negative precision.
fn precision(s: &[u8], prec: i64) -> &[u8] {
    // The C code casts a size_t difference to int: keep the low 32 bits.
    let p = prec as i32;
    if p < 0 {
        s
    } else {
        &s[..s.len().min(p as usize)]
    }
}

/// `xenstore-ls`'s layout: the column budget and whether paths are full.
#[derive(Clone, Copy, Debug)]
struct LsFormat {
    max_width: i64,
    desired_width: i64,
    show_whole_path: bool,
}

/// `TAG` of `do_ls`: what a truncated value ends with.
const TAG_LEN: i64 = " = \"...\"".len() as i64;
/// `STRING_MAX` of `do_ls`: the longest path it composes, plus one.
const STRING_MAX: usize = XENSTORE_ABS_PATH_MAX as usize + 1024;
/// `MAX_PATH_LEN` of `do_chmod`'s recursion buffer.
const MAX_PATH_LEN: usize = 256;

/// One run of the tool: its names, its output, its connection.
struct Tool {
    /// `program_invocation_short_name`, the prefix of `err`/`warnx`.
    short: String,
    /// stdout (C's buffered `printf`), flushed at exit.
    stdout: Box<dyn Write>,
    /// `output()`'s buffer: printed only once the transaction committed.
    output: Vec<u8>,
}

impl Tool {
    /// `errx`: the message, then exit.
    fn errx(&mut self, code: i32, msg: &str) -> ! {
        let _ = self.stdout.flush();
        eprintln!("{}: {msg}", self.short);
        exit(code)
    }

    /// `err`: the message and the errno's text, then exit.
    fn err(&mut self, code: i32, msg: &str, errno: i32) -> ! {
        let text = strerror(errno);
        self.errx(code, &format!("{msg}: {text}"))
    }

    /// `warnx`.
    fn warnx(&self, msg: &str) {
        eprintln!("{}: {msg}", self.short);
    }

    fn print(&mut self, bytes: &[u8]) {
        if self.stdout.write_all(bytes).is_err() {
            exit(1);
        }
    }

    /// `usage()`: the mode's usage line, exit 1.
    fn usage(&mut self, mode: Mode, incl_mode: bool, argv0: &str) -> ! {
        let mstr = if incl_mode && mode != Mode::Unknown { format!("{} ", mode.name()) } else { String::new() };
        self.errx(1, &format!("Usage: {argv0} {mstr}{}", mode.usage_args()))
    }
}

/// The parsed options.
#[derive(Debug, Default)]
struct Opts {
    socket: bool,
    prefix: bool,
    tidy: bool,
    upto: bool,
    recurse: bool,
    raw: bool,
    flat: bool,
    nr_watches: Option<i32>,
}

fn errno_of(e: &XsError) -> i32 {
    e.errno().unwrap_or(libc::EIO)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The terminal width `xenstore-ls` uses: `ws_col - 2` when stdout is a
/// terminal, else 80 (or the `-f` width).
fn ls_format(flat: bool) -> LsFormat {
    let mut f = if flat {
        LsFormat { max_width: i64::from(i32::MAX / 2), desired_width: 0, show_whole_path: true }
    } else {
        LsFormat { max_width: 80, desired_width: 60, show_whole_path: false }
    };
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `ws`, which lives across the call.
    if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 {
        f.max_width = i64::from(ws.ws_col) - 2;
    }
    f
}

impl Tool {
    /// `do_ls`: the tree under `path`, one node per line.
    fn do_ls(&mut self, xs: &mut XsClient, path: &str, depth: i64, show_perms: bool, fmt: LsFormat) {
        let names = match xs.directory(TxId::NONE, path) {
            Ok(n) => n,
            // A node that disappears while recursing is skipped.
            Err(e) if depth > 0 && e.is(XenError::Enoent) => return,
            Err(e) => self.err(1, &format!("xs_directory ({path})"), errno_of(&e)),
        };
        for name in names {
            let sep = if path.ends_with('/') { "" } else { "/" };
            let mut newpath = format!("{path}{sep}{name}");
            let fits = newpath.len() < STRING_MAX;
            newpath.truncate(STRING_MAX - 1);
            let mut linewid: i64 = 0;
            if fmt.show_whole_path {
                self.print(newpath.as_bytes());
            } else {
                self.print(" ".repeat(depth as usize).as_bytes());
                linewid = depth;
                let shown = precision(name.as_bytes(), fmt.max_width - TAG_LEN - linewid);
                self.print(shown);
                linewid += shown.len() as i64;
            }
            let value = if fits { xs.read(TxId::NONE, &newpath).ok() } else { None };
            match value {
                None => self.print(b":\n"),
                Some(v) => {
                    let text = sanitise_value(&v);
                    // The C comparison is in size_t.
                    let need = (linewid as u64).wrapping_add(v.len() as u64).wrapping_add(TAG_LEN as u64);
                    if (fmt.max_width as u64) < need {
                        let shown = precision(text.as_bytes(), fmt.max_width - TAG_LEN - linewid).to_vec();
                        self.print(b" = \"");
                        self.print(&shown);
                        self.print(b"\\...\"");
                    } else {
                        let s = format!(" = \"{text}\"");
                        self.print(s.as_bytes());
                        linewid += s.len() as i64;
                        if show_perms {
                            self.print(b" ");
                            linewid += 1;
                            while linewid < fmt.desired_width.min(fmt.max_width) {
                                self.print(if linewid & 1 == 1 { b"." } else { b" " });
                                linewid += 1;
                            }
                        }
                    }
                }
            }
            if show_perms {
                match xs.get_perms(TxId::NONE, &newpath) {
                    Err(e) => {
                        let _ = self.stdout.flush();
                        self.warnx(&format!("\ncould not access permissions for {name}: {}", strerror(errno_of(&e))));
                    }
                    Ok(perms) => {
                        let list: Vec<String> = perms.iter().map(Perm::to_string).collect();
                        self.print(format!("  ({})", list.join(",")).as_bytes());
                    }
                }
            }
            self.print(b"\n");
            self.do_ls(xs, &newpath, depth + 1, show_perms, fmt);
        }
    }

    /// `do_chmod`: sets `perms` on `path`, its parents (`upto`), its
    /// subtree (`recurse`).
    fn do_chmod(&mut self, xs: &mut XsClient, tx: TxId, path: &str, perms: &[Perm], upto: bool, recurse: bool) {
        if path.is_empty() {
            return;
        }
        if let Err(e) = xs.set_perms(tx, path, perms) {
            self.err(1, &format!("Error occurred setting permissions on '{path}'"), errno_of(&e));
        }
        if upto {
            match path.rfind('/') {
                Some(sep) => self.do_chmod(xs, tx, &path[..sep], perms, true, false),
                None => self.errx(1, &format!("Unable to locate path separator '/' in '{path}'")),
            }
        }
        if recurse {
            if let Ok(children) = xs.directory(tx, path) {
                for child in children {
                    let mut sub = format!("{path}/{child}");
                    // snprintf into a MAX_PATH_LEN buffer.
                    while sub.len() > MAX_PATH_LEN - 1 {
                        sub.pop();
                    }
                    self.do_chmod(xs, tx, &sub, perms, false, true);
                }
            }
        }
    }

    /// `perform`: runs `mode` on the operands; 0 or 1.
    fn perform(&mut self, mode: Mode, xs: &mut XsClient, tx: TxId, args: &[Vec<u8>], o: &Opts) -> i32 {
        match mode {
            Mode::Unknown => self.errx(1, "invalid mode 0"),
            Mode::Read => {
                for key in args.iter().map(|k| lossy(k)) {
                    let Ok(val) = xs.read(tx, &key) else {
                        self.warnx(&format!("couldn't read path {key}"));
                        return 1;
                    };
                    if o.prefix {
                        self.output.extend_from_slice(format!("{key}: ").as_bytes());
                    }
                    if o.raw {
                        self.output.extend_from_slice(&val);
                    } else {
                        self.output.extend_from_slice(sanitise_value(&val).as_bytes());
                        self.output.push(b'\n');
                    }
                }
            }
            Mode::Write => {
                for pair in args.chunks_exact(2) {
                    let key = lossy(&pair[0]);
                    let value = if o.raw { pair[1].clone() } else { unsanitise_value(&pair[1]) };
                    if xs.write(tx, &key, &value).is_err() {
                        self.warnx(&format!("could not write path {key}"));
                        return 1;
                    }
                }
            }
            Mode::Rm => {
                for key in args.iter().map(|k| lossy(k)) {
                    let mut path = key;
                    loop {
                        if xs.rm(tx, &path).is_err() {
                            self.warnx(&format!("could not remove path {path}"));
                            return 1;
                        }
                        if !o.tidy {
                            break;
                        }
                        // Also remove parents left empty and without a value.
                        let Some(slash) = path.rfind('/') else { break };
                        path.truncate(slash);
                        let empty_value = xs.read(tx, &path).is_ok_and(|v| v.is_empty());
                        if !(empty_value && xs.directory(tx, &path).is_ok_and(|l| l.is_empty())) {
                            break;
                        }
                    }
                }
            }
            Mode::Exists => {
                for key in args.iter().map(|k| lossy(k)) {
                    if xs.read(tx, &key).is_err() {
                        return 1;
                    }
                }
            }
            Mode::List => {
                for key in args.iter().map(|k| lossy(k)) {
                    let Ok(names) = xs.directory(tx, &key) else {
                        self.warnx(&format!("could not list path {key}"));
                        return 1;
                    };
                    for name in names {
                        if o.prefix {
                            self.output.extend_from_slice(format!("{key}/").as_bytes());
                        }
                        self.output.extend_from_slice(format!("{name}\n").as_bytes());
                    }
                }
            }
            Mode::Ls => {
                let fmt = ls_format(o.flat);
                let paths = if args.is_empty() { vec![b"/".to_vec()] } else { args.to_vec() };
                for path in paths {
                    self.do_ls(xs, &lossy(&path), 0, o.prefix, fmt);
                }
            }
            Mode::Chmod => {
                let path = lossy(&args[0]);
                let mut perms = Vec::new();
                for spec in &args[1..] {
                    let letter = spec.first().copied().unwrap_or(0);
                    let Some(access) = Perm::access_of(letter) else {
                        self.errx(1, &format!("Invalid permission specification: '{}'", letter as char));
                    };
                    perms.push(Perm { domid: atoi(spec.get(1..).unwrap_or(&[])) as u32, access });
                }
                self.do_chmod(xs, tx, &path, &perms, o.upto, o.recurse);
            }
            Mode::Watch => {
                for w in args.iter().map(|k| lossy(k)) {
                    if xs.watch(&w, &w).is_err() {
                        self.errx(1, &format!("Unable to add watch on {w}\n"));
                    }
                }
                let max = o.nr_watches.unwrap_or(-1);
                let mut count = 0;
                while max == -1 || count < max {
                    match xs.read_watch() {
                        Ok(ev) => {
                            self.print(format!("{}\n", ev.path).as_bytes());
                            let _ = self.stdout.flush();
                        }
                        Err(e) => self.err(1, "xs_read_watch", errno_of(&e)),
                    }
                    count += 1;
                }
            }
        }
        0
    }
}

/// The multi-call entry: `args` is the whole argv.
fn run(args: Vec<OsString>) -> i32 {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let argv0 = args.first().map(|a| lossy(a)).unwrap_or_else(|| "xenstore".into());
    let short = argv0.rsplit('/').next().unwrap_or(&argv0).to_string();
    let stdout = Box::new(io::BufWriter::new(io::stdout()));
    let mut tool = Tool { short: short.clone(), stdout, output: Vec::new() };

    let (switch_argv, command) = match short.strip_prefix("xenstore-") {
        Some(cmd) => (0, cmd.to_string()),
        None if args.len() < 2 => tool.usage(Mode::Unknown, false, &argv0),
        None => (1, lossy(&args[1])),
    };
    let incl_mode = switch_argv == 1;
    let Some(mode) = Mode::lookup(&command) else {
        if incl_mode && (command == "-h" || command == "--help") {
            tool.warnx(&format!("Usage: {argv0} <mode> [-h] [...]"));
            tool.errx(1, "modes: chmod exists list ls read rm watch write");
        }
        tool.errx(1, &format!("unknown mode {command}\n"));
    };

    let getopt_prog = lossy(&args[switch_argv]);
    let (events, operands) = getopt::parse(&getopt_prog, &args[switch_argv + 1..], "hfspturn:R", LONG_OPTS);
    let mut o = Opts::default();
    for ev in events {
        let (c, arg) = match ev {
            getopt::Event::Diag(msg) => {
                eprintln!("{msg}");
                continue;
            }
            getopt::Event::Opt(c, arg) => (c, arg),
        };
        let allowed = match c {
            'h' => tool.usage(mode, incl_mode, &argv0),
            's' => {
                o.socket = true;
                true
            }
            'f' => {
                mode == Mode::Ls && {
                    o.flat = true;
                    true
                }
            }
            'p' => {
                matches!(mode, Mode::Read | Mode::List | Mode::Ls) && {
                    o.prefix = true;
                    true
                }
            }
            't' => {
                mode == Mode::Rm && {
                    o.tidy = true;
                    true
                }
            }
            'u' => {
                mode == Mode::Chmod && {
                    o.upto = true;
                    true
                }
            }
            'r' => {
                mode == Mode::Chmod && {
                    o.recurse = true;
                    true
                }
            }
            'n' => {
                mode == Mode::Watch && {
                    o.nr_watches = Some(atoi(arg.as_deref().unwrap_or(&[])));
                    true
                }
            }
            'R' => {
                matches!(mode, Mode::Read | Mode::Write) && {
                    o.raw = true;
                    true
                }
            }
            _ => true,
        };
        if !allowed {
            tool.usage(mode, incl_mode, &argv0);
        }
    }

    if mode == Mode::Write && operands.len() % 2 == 1 {
        tool.usage(mode, incl_mode, &argv0);
    }
    if mode != Mode::Ls && operands.is_empty() {
        tool.usage(mode, incl_mode, &argv0);
    }
    let transaction = match mode {
        Mode::Read => operands.len() > 1,
        Mode::Write => operands.len() > 2,
        Mode::Ls | Mode::Watch => false,
        _ => true,
    };

    let opened = if o.socket { XsClient::open_socket_only() } else { XsClient::open() };
    let mut xs = match opened {
        Ok(xs) => xs,
        Err(e) => tool.err(1, "xs_open", errno_of(&e)),
    };

    let ret = loop {
        tool.output.clear();
        let tx = if transaction {
            match xs.transaction_start() {
                Ok(tx) => tx,
                Err(_) => tool.errx(1, "couldn't start transaction"),
            }
        } else {
            TxId::NONE
        };
        let ret = tool.perform(mode, &mut xs, tx, &operands, &o);
        if transaction {
            let end = if ret == 0 { xs.transaction_commit(tx) } else { xs.transaction_abort(tx) };
            match end {
                Ok(()) => {}
                Err(e) if ret == 0 && e.is(XenError::Eagain) => continue,
                Err(_) => tool.errx(1, "couldn't end transaction"),
            }
        }
        break ret;
    };
    let out = std::mem::take(&mut tool.output);
    tool.print(&out);
    let _ = tool.stdout.flush();
    ret
}

fn main() {
    dom0_tools::default_sigpipe();
    exit(run(std::env::args_os().collect()));
}

#[cfg(test)]
mod tests {
    use super::getopt::{parse, Event};
    use super::*;

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn opts(list: &[&str]) -> (Vec<Event>, Vec<Vec<u8>>) {
        parse("prog", &args(list), "hfspturn:R", LONG_OPTS)
    }

    #[test]
    fn getopt_permutes_clusters_and_takes_arguments_like_glibc() {
        let (ev, ops) = opts(&["/a", "-pR", "/b", "-n3", "-n", "4", "--", "-p"]);
        assert_eq!(
            ev,
            vec![
                Event::Opt('p', None),
                Event::Opt('R', None),
                Event::Opt('n', Some(b"3".to_vec())),
                Event::Opt('n', Some(b"4".to_vec()))
            ]
        );
        assert_eq!(ops, args(&["/a", "/b", "-p"]));
        let (_, ops) = opts(&["-", "x"]);
        assert_eq!(ops, args(&["-", "x"]), "a lone dash is an operand");
    }

    #[test]
    fn getopt_long_options_abbreviate_and_complain_as_glibc() {
        let (ev, _) = opts(&["--pre", "--number=7", "--number", "8", "--raw"]);
        let want = [Event::Opt('p', None), Event::Opt('n', Some(b"7".to_vec())), Event::Opt('n', Some(b"8".to_vec()))];
        assert_eq!(&ev[..3], &want);
        assert_eq!(ev[3], Event::Opt('R', None));
        let (ev, _) = opts(&["--r", "--bogus", "--prefix=1", "-x", "--number"]);
        assert_eq!(
            ev,
            vec![
                Event::Diag("prog: option '--r' is ambiguous; possibilities: '--recurse' '--raw'".into()),
                Event::Diag("prog: unrecognized option '--bogus'".into()),
                Event::Diag("prog: option '--prefix' doesn't allow an argument".into()),
                Event::Diag("prog: invalid option -- 'x'".into()),
                Event::Diag("prog: option '--number' requires an argument".into()),
            ]
        );
        let (ev, _) = opts(&["-n"]);
        assert_eq!(ev, vec![Event::Diag("prog: option requires an argument -- 'n'".into())]);
    }

    #[test]
    fn usage_lines_are_xen_4_17s() {
        assert_eq!(Mode::Read.usage_args(), "[-h] [-p] [-s] [-R] key [...]");
        assert_eq!(Mode::Exists.usage_args(), Mode::List.usage_args());
        assert_eq!(Mode::lookup("ls"), Some(Mode::Ls));
        assert_eq!(Mode::lookup("xenstore-ls"), None);
    }

    /// A minimal in-memory xenstored on a Unix socket: enough of READ,
    /// WRITE, DIRECTORY, RM, GET/SET_PERMS and transactions (which it
    /// applies at once) to drive the tools.
    mod fake_store {
        use guest_abi::io::xs_wire::*;
        use std::collections::BTreeMap;
        use std::io::{Read, Write};
        use std::os::unix::net::UnixListener;
        use std::path::PathBuf;

        type Tree = BTreeMap<String, (Vec<u8>, Vec<String>)>;

        fn parent(path: &str) -> Option<String> {
            let i = path.rfind('/').filter(|_| path != "/")?;
            Some(if i == 0 { "/".to_string() } else { path[..i].to_string() })
        }

        fn valid(path: &str) -> bool {
            path.starts_with('/') && !path.contains("//") && (path == "/" || !path.ends_with('/'))
        }

        fn handle(tree: &mut Tree, ty: u32, body: &[u8]) -> (u32, Vec<u8>) {
            let mut parts = body.split(|&b| b == 0);
            let path = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
            let err = |name: &str| (XS_ERROR, format!("{name}\0").into_bytes());
            let ok = |ty: u32| (ty, b"OK\0".to_vec());
            match ty {
                XS_TRANSACTION_START => return (ty, b"1\0".to_vec()),
                XS_TRANSACTION_END => return ok(ty),
                _ if !valid(&path) => return err("EINVAL"),
                _ => {}
            }
            match ty {
                XS_READ => tree.get(&path).map_or_else(|| err("ENOENT"), |n| (ty, n.0.clone())),
                XS_GET_PERMS => tree
                    .get(&path)
                    .map_or_else(|| err("ENOENT"), |n| (ty, n.1.iter().flat_map(|p| p.bytes().chain([0])).collect())),
                XS_DIRECTORY => {
                    if !tree.contains_key(&path) {
                        return err("ENOENT");
                    }
                    let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
                    let names: Vec<u8> = tree
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix).filter(|r| !r.is_empty() && !r.contains('/')))
                        .flat_map(|n| n.bytes().chain([0]))
                        .collect();
                    (ty, names)
                }
                XS_WRITE => {
                    let value = body[path.len() + 1..].to_vec();
                    let mut p = Some(path.clone());
                    while let Some(q) = p {
                        let perms = vec!["n0".to_string()];
                        tree.entry(q.clone()).or_insert((Vec::new(), perms));
                        p = parent(&q);
                    }
                    if let Some(n) = tree.get_mut(&path) {
                        n.0 = value;
                    }
                    ok(ty)
                }
                XS_RM => {
                    if !tree.contains_key(&path) {
                        return match parent(&path) {
                            Some(p) if tree.contains_key(&p) => ok(ty),
                            _ => err("ENOENT"),
                        };
                    }
                    let sub = format!("{path}/");
                    tree.retain(|k, _| *k != path && !k.starts_with(&sub));
                    ok(ty)
                }
                XS_SET_PERMS => {
                    let perms: Vec<String> =
                        parts.filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
                    match tree.get_mut(&path) {
                        Some(_) if perms.is_empty() => err("EINVAL"),
                        Some(n) => {
                            n.1 = perms;
                            ok(ty)
                        }
                        None => err("ENOENT"),
                    }
                }
                _ => err("ENOSYS"),
            }
        }

        /// Serves `tree` on a fresh socket; returns its path.
        pub fn serve(entries: &[(&str, &str)]) -> PathBuf {
            let mut tree = Tree::new();
            tree.insert("/".into(), (Vec::new(), vec!["n0".into()]));
            for (path, value) in entries {
                let body: Vec<u8> = path.bytes().chain([0]).chain(value.bytes()).collect();
                handle(&mut tree, XS_WRITE, &body);
            }
            let dir = std::env::temp_dir().join(format!(
                "xenstore-cli-test-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("socket");
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
            std::thread::spawn(move || {
                let Ok((mut s, _)) = listener.accept() else { return };
                let mut h = [0u8; 16];
                while s.read_exact(&mut h).is_ok() {
                    let w = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
                    let mut body = vec![0u8; w(12) as usize];
                    if s.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (ty, reply) = handle(&mut tree, w(0), &body);
                    let mut m = Vec::new();
                    for word in [ty, w(4), w(8), reply.len() as u32] {
                        m.extend_from_slice(&word.to_ne_bytes());
                    }
                    m.extend_from_slice(&reply);
                    if s.write_all(&m).is_err() {
                        return;
                    }
                }
            });
            path
        }
    }

    /// stdout captured for a test.
    #[derive(Clone, Default)]
    struct Capture(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn tool_with_store(entries: &[(&str, &str)]) -> (Tool, Capture, XsClient) {
        let cap = Capture::default();
        let tool = Tool { short: "xenstore-test".into(), stdout: Box::new(cap.clone()), output: Vec::new() };
        let path = fake_store::serve(entries);
        let xs = XsClient::connect(&path).unwrap_or_else(|e| panic!("connect: {e}"));
        (tool, cap, xs)
    }

    fn text(cap: &Capture) -> String {
        String::from_utf8_lossy(&cap.0.borrow()).into_owned()
    }

    const DOM0: &[(&str, &str)] =
        &[("/local/domain/0/name", "Domain-0"), ("/tool/xenstored", ""), ("/local/domain/0/nl", "a\nb")];

    #[test]
    fn ls_indents_truncates_at_80_columns_and_quotes_values() {
        let long = "x".repeat(100);
        let mut entries = DOM0.to_vec();
        entries.push(("/local/domain/0/long", &long));
        let (mut tool, cap, mut xs) = tool_with_store(&entries);
        let fmt = LsFormat { max_width: 80, desired_width: 60, show_whole_path: false };
        tool.do_ls(&mut xs, "/", 0, false, fmt);
        let want = format!(
            "local = \"\"\n domain = \"\"\n  0 = \"\"\n   long = \"{}\\...\"\n   name = \"Domain-0\"\n   nl = \"a\\nb\"\ntool = \"\"\n xenstored = \"\"\n",
            "x".repeat(65)
        );
        assert_eq!(text(&cap), want);
    }

    #[test]
    fn ls_flat_prints_full_paths_and_perms_line_up_at_column_60() {
        let (mut tool, cap, mut xs) = tool_with_store(DOM0);
        let flat = LsFormat { max_width: i64::from(i32::MAX / 2), desired_width: 0, show_whole_path: true };
        tool.do_ls(&mut xs, "/local/domain/0", 0, true, flat);
        assert_eq!(text(&cap), "/local/domain/0/name = \"Domain-0\"   (n0)\n/local/domain/0/nl = \"a\\nb\"   (n0)\n");
        let (mut tool, cap, mut xs) = tool_with_store(DOM0);
        tool.do_ls(&mut xs, "/tool", 0, true, LsFormat { max_width: 80, desired_width: 60, show_whole_path: false });
        let out = text(&cap);
        assert!(out.starts_with("xenstored = \"\" . . . ."), "{out}");
        assert_eq!(out.find("  (n0)"), Some(60), "{out}");
    }

    #[test]
    fn write_unsanitises_read_sanitises_and_raw_skips_both() {
        let (mut tool, _cap, mut xs) = tool_with_store(&[]);
        let o = Opts::default();
        assert_eq!(tool.perform(Mode::Write, &mut xs, TxId::NONE, &args(&["/k", "a\\tb", "/j", "v"]), &o), 0);
        let prefixed = Opts { prefix: true, ..Opts::default() };
        assert_eq!(tool.perform(Mode::Read, &mut xs, TxId::NONE, &args(&["/k", "/j"]), &prefixed), 0);
        assert_eq!(String::from_utf8_lossy(&tool.output), "/k: a\\tb\n/j: v\n");
        tool.output.clear();
        let raw = Opts { raw: true, ..Opts::default() };
        assert_eq!(tool.perform(Mode::Read, &mut xs, TxId::NONE, &args(&["/k"]), &raw), 0);
        assert_eq!(tool.output, b"a\tb");
        assert_eq!(tool.perform(Mode::Exists, &mut xs, TxId::NONE, &args(&["/k", "/nope"]), &o), 1);
    }

    #[test]
    fn rm_tidy_removes_parents_left_empty_and_list_prefixes_paths() {
        let (mut tool, _cap, mut xs) = tool_with_store(&[("/a", "keep"), ("/a/b/c", "v"), ("/a/d", "")]);
        let tidy = Opts { tidy: true, ..Opts::default() };
        assert_eq!(tool.perform(Mode::Rm, &mut xs, TxId::NONE, &args(&["/a/b/c"]), &tidy), 0);
        assert!(xs.read(TxId::NONE, "/a/b").is_err(), "empty parent removed");
        assert!(xs.read(TxId::NONE, "/a").is_ok(), "a parent with a value stays");
        let prefixed = Opts { prefix: true, ..Opts::default() };
        assert_eq!(tool.perform(Mode::List, &mut xs, TxId::NONE, &args(&["/a", "/"]), &prefixed), 0);
        assert_eq!(String::from_utf8_lossy(&tool.output), "/a/d\n//a\n", "4.17 prints '//' under the root");
    }

    #[test]
    fn chmod_sets_a_subtree_and_its_parents() {
        let (mut tool, _cap, mut xs) = tool_with_store(&[("/a/b/c", "v")]);
        let rec = Opts { recurse: true, upto: true, ..Opts::default() };
        assert_eq!(tool.perform(Mode::Chmod, &mut xs, TxId::NONE, &args(&["/a/b", "n0", "r5"]), &rec), 0);
        for path in ["/a", "/a/b", "/a/b/c"] {
            let perms = xs.get_perms(TxId::NONE, path).map(|p| p.iter().map(Perm::to_string).collect::<Vec<_>>());
            assert_eq!(perms.ok(), Some(vec!["n0".to_string(), "r5".to_string()]), "{path}");
        }
        assert_eq!(xs.get_perms(TxId::NONE, "/").ok().map(|p| p.len()), Some(1), "the root is not touched");
    }

    #[test]
    fn c_helpers_behave_as_c() {
        assert_eq!(atoi(b" 12abc"), 12);
        assert_eq!(atoi(b"-1"), -1);
        assert_eq!(atoi(b""), 0);
        assert_eq!(precision(b"abcdef", 3), b"abc");
        assert_eq!(precision(b"abcdef", -2), b"abcdef", "negative precision prints everything");
        assert_eq!(precision(b"abc", 10), b"abc");
        assert_eq!(strerror(2), "No such file or directory");
        assert_eq!(strerror(4242), "Unknown error 4242");
    }
}
