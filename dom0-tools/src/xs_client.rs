//! A XenStore client: Xen 4.17's wire protocol (`io/xs_wire.h`,
//! `docs/misc/xenstore.txt`) over xenstored's Unix socket or Linux's
//! `/dev/xen/xenbus`, as libxenstore's `xs_open` connects.
//!
//! One request is outstanding at a time: [`XsClient::request`] writes a
//! message and reads until the reply, queueing the watch events that
//! arrive in between; [`XsClient::read_watch`] returns them first.
//! Failures are [`XsError`]s: the store's own errors keep Xen's names
//! (`ENOENT`, `EACCES`, ...), transport and protocol errors say what broke.
//!
//! Also here, because libxenstore has them: the text forms of permissions
//! ([`Perm`]) and of values ([`sanitise_value`], [`unsanitise_value`]).

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use guest_abi::io::xs_wire::{
    xsd_error_from_name, XENSTORE_PAYLOAD_MAX, XS_DIRECTORY, XS_DIRECTORY_PART, XS_ERROR, XS_GET_DOMAIN_PATH,
    XS_GET_PERMS, XS_INTRODUCE, XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ, XS_RELEASE, XS_RM, XS_SET_PERMS,
    XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
};
use guest_abi::XenError;

/// The socket xenstored listens on when neither `XENSTORED_PATH` nor
/// `XENSTORED_RUNDIR` says otherwise (`/var/run` is `/run` on Debian).
pub const DEFAULT_SOCKET: &str = "/run/xenstored/socket";

/// A transaction ID; [`TxId::NONE`] (`XBT_NULL`) is outside any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxId(pub u32);

impl TxId {
    /// `XBT_NULL`: no transaction.
    pub const NONE: TxId = TxId(0);
}

/// What went wrong talking to XenStore.
#[derive(Debug)]
pub enum XsError {
    /// The store refused the request (`XS_ERROR` with one of Xen's names).
    Store(XenError),
    /// An `XS_ERROR` whose name Xen does not define.
    UnknownStore(String),
    /// The transport failed (connect, read, write, closed connection).
    Io(io::Error),
    /// The other side broke the protocol (bad header, unexpected reply).
    Protocol(String),
}

impl XsError {
    /// The errno this maps to (libxenstore sets `errno` the same way).
    pub fn errno(&self) -> Option<i32> {
        match self {
            XsError::Store(e) => Some(e.errno()),
            XsError::UnknownStore(_) | XsError::Protocol(_) => Some(libc::EIO),
            XsError::Io(e) => Some(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    /// Whether this is the store's `err`.
    pub fn is(&self, err: XenError) -> bool {
        matches!(self, XsError::Store(e) if *e == err)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Store(e) => match guest_abi::io::xs_wire::xsd_error_name(*e) {
                Some(name) => f.write_str(name),
                None => write!(f, "{e}"),
            },
            XsError::UnknownStore(name) => write!(f, "unknown XenStore error {name:?}"),
            XsError::Io(e) => write!(f, "{e}"),
            XsError::Protocol(why) => write!(f, "XenStore protocol error: {why}"),
        }
    }
}

impl std::error::Error for XsError {}

impl From<io::Error> for XsError {
    fn from(e: io::Error) -> Self {
        XsError::Io(e)
    }
}

/// A fired watch: the path that changed and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node (as the watch named it: relative watches get relative paths).
    pub path: String,
    /// The token given to [`XsClient::watch`].
    pub token: String,
}

/// A permission's access (`XS_PERM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

/// One entry of a node's permission list; the first is the owner's (and
/// everyone else's default). Text form: access letter then domid, `r5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain (`unsigned int id` in libxenstore).
    pub domid: u32,
    /// What it may do.
    pub access: Access,
}

impl Perm {
    /// The access letter for `access`.
    pub fn letter(access: Access) -> char {
        match access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// The access an access letter names.
    pub fn access_of(letter: u8) -> Option<Access> {
        Some(match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return None,
        })
    }

    /// Parses the wire form, `r5`; `None` if malformed.
    pub fn parse(text: &str) -> Option<Perm> {
        let (&first, rest) = text.as_bytes().split_first()?;
        let access = Self::access_of(first)?;
        let domid = std::str::from_utf8(rest).ok()?.parse().ok()?;
        Some(Perm { domid, access })
    }
}

impl fmt::Display for Perm {
    /// `xs_perm_to_string`: the letter, then the id as a C `int`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::letter(self.access), self.domid as i32)
    }
}

/// The connection: xenstored's socket or the kernel's xenbus device, both
/// carrying the same framed messages.
#[derive(Debug)]
enum Conn {
    Socket(UnixStream),
    Device(File),
}

impl Conn {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Socket(s) => s,
            Conn::Device(f) => f,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Conn::Socket(s) => s.as_raw_fd(),
            Conn::Device(f) => f.as_raw_fd(),
        }
    }
}

/// A connection to XenStore.
#[derive(Debug)]
pub struct XsClient {
    conn: Conn,
    next_req_id: u32,
    events: VecDeque<WatchEvent>,
}

/// Where xenstored's socket is: `XENSTORED_PATH`, else
/// `$XENSTORED_RUNDIR/socket`, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("XENSTORED_PATH") {
        return PathBuf::from(p);
    }
    match std::env::var_os("XENSTORED_RUNDIR") {
        Some(dir) => Path::new(&dir).join("socket"),
        None => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// The kernel's XenStore device: `XENSTORED_PATH`, else `/dev/xen/xenbus`
/// if it exists, else xenfs' `/proc/xen/xenbus` (libxenstore's `xs_domain_dev`).
pub fn device_path() -> PathBuf {
    if let Some(p) = std::env::var_os("XENSTORED_PATH") {
        return PathBuf::from(p);
    }
    if Path::new("/dev/xen/xenbus").exists() {
        PathBuf::from("/dev/xen/xenbus")
    } else {
        PathBuf::from("/proc/xen/xenbus")
    }
}

/// Splits a payload into its NUL-terminated strings (a missing final NUL
/// still ends the last one).
fn split_strings(payload: &[u8]) -> Vec<String> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// A reply that is one string (`"OK\0"`, a domain path, a transaction ID).
fn reply_string(payload: &[u8]) -> String {
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// Parses a watch event's payload, `path\0token\0`.
fn parse_watch_event(payload: &[u8]) -> Option<WatchEvent> {
    let mut parts = payload.split(|&b| b == 0);
    let path = String::from_utf8_lossy(parts.next()?).into_owned();
    let token = String::from_utf8_lossy(parts.next()?).into_owned();
    Some(WatchEvent { path, token })
}

/// Concatenates NUL-terminated strings into a payload.
fn strings_payload(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

impl XsClient {
    /// `xs_open(0)`: xenstored's socket, else the kernel's xenbus device.
    pub fn open() -> Result<XsClient, XsError> {
        Self::connect(&socket_path()).or_else(|_| Self::connect(&device_path()))
    }

    /// `xs_open(XS_OPEN_SOCKETONLY)`: xenstored's socket only.
    pub fn open_socket_only() -> Result<XsClient, XsError> {
        Self::connect(&socket_path())
    }

    /// Connects to `path`: a Unix socket is connected to, anything else
    /// (a character device) opened read-write, as libxenstore's `get_handle`.
    pub fn connect(path: &Path) -> Result<XsClient, XsError> {
        let meta = std::fs::metadata(path)?;
        let conn = if meta.file_type().is_socket() {
            Conn::Socket(UnixStream::connect(path)?)
        } else {
            Conn::Device(OpenOptions::new().read(true).write(true).open(path)?)
        };
        Ok(XsClient { conn, next_req_id: 0, events: VecDeque::new() })
    }

    /// Sends one request and returns its reply's payload; watch events that
    /// arrive first are queued for [`XsClient::read_watch`].
    pub fn request(&mut self, msg_type: u32, tx: TxId, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        if payload.len() > XENSTORE_PAYLOAD_MAX as usize {
            return Err(XsError::Store(XenError::E2big));
        }
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let mut msg = Vec::with_capacity(16 + payload.len());
        for word in [msg_type, req_id, tx.0, payload.len() as u32] {
            msg.extend_from_slice(&word.to_ne_bytes());
        }
        msg.extend_from_slice(payload);
        self.conn.io().write_all(&msg)?;
        loop {
            let (ty, body) = self.read_msg()?;
            if ty == XS_WATCH_EVENT {
                self.events.extend(parse_watch_event(&body));
                continue;
            }
            if ty == XS_ERROR {
                let name = reply_string(&body);
                return Err(match xsd_error_from_name(name.as_bytes()) {
                    Some(e) => XsError::Store(e),
                    None => XsError::UnknownStore(name),
                });
            }
            if ty != msg_type {
                return Err(XsError::Protocol(format!("reply of type {ty} to a request of type {msg_type}")));
            }
            return Ok(body);
        }
    }

    /// Reads one message: (type, payload).
    fn read_msg(&mut self) -> Result<(u32, Vec<u8>), XsError> {
        let mut header = [0u8; 16];
        self.conn.io().read_exact(&mut header).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => XsError::Protocol("connection closed".into()),
            _ => XsError::Io(e),
        })?;
        let word = |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (ty, len) = (word(0), word(12));
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::Protocol(format!("message of {len} bytes (type {ty})")));
        }
        let mut body = vec![0u8; len as usize];
        self.conn.io().read_exact(&mut body).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => XsError::Protocol("connection closed mid-message".into()),
            _ => XsError::Io(e),
        })?;
        Ok((ty, body))
    }

    /// A request whose reply must be `"OK"`.
    fn request_ok(&mut self, msg_type: u32, tx: TxId, payload: &[u8]) -> Result<(), XsError> {
        let reply = self.request(msg_type, tx, payload)?;
        match reply_string(&reply).as_str() {
            "OK" => Ok(()),
            other => Err(XsError::Protocol(format!("reply {other:?} where \"OK\" was expected"))),
        }
    }

    /// `XS_READ`: the node's value.
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, XsError> {
        self.request(XS_READ, tx, &strings_payload(&[path.as_bytes()]))
    }

    /// `XS_WRITE`: sets the value, creating the node and missing parents.
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), XsError> {
        let mut payload = strings_payload(&[path.as_bytes()]);
        payload.extend_from_slice(value);
        self.request_ok(XS_WRITE, tx, &payload)
    }

    /// `XS_DIRECTORY`: the children's names (falling back to
    /// `XS_DIRECTORY_PART` when the list does not fit a message).
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, XsError> {
        match self.request(XS_DIRECTORY, tx, &strings_payload(&[path.as_bytes()])) {
            Ok(reply) => Ok(split_strings(&reply)),
            Err(e) if e.is(XenError::E2big) => self.directory_part(tx, path),
            Err(e) => Err(e),
        }
    }

    /// `XS_DIRECTORY_PART` in a loop: each reply is a generation count then
    /// names from the byte offset asked; the list ends with an empty name.
    /// A changed generation restarts the listing.
    fn directory_part(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, XsError> {
        let mut names: Vec<u8> = Vec::new();
        let mut generation: Option<String> = None;
        loop {
            let offset = names.len().to_string();
            let reply = self.request(XS_DIRECTORY_PART, tx, &strings_payload(&[path.as_bytes(), offset.as_bytes()]))?;
            let gen_end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
            let gen = String::from_utf8_lossy(&reply[..gen_end]).into_owned();
            let chunk = reply.get(gen_end + 1..).unwrap_or(&[]);
            match &generation {
                Some(g) if *g != gen => {
                    names.clear();
                    generation = None;
                    continue;
                }
                Some(_) => {}
                None => generation = Some(gen),
            }
            names.extend_from_slice(chunk);
            if chunk.len() <= 1 || names.ends_with(&[0, 0]) {
                break;
            }
        }
        Ok(split_strings(names.strip_suffix(&[0]).unwrap_or(&names)).into_iter().filter(|n| !n.is_empty()).collect())
    }

    /// `XS_MKDIR`: creates the node (empty value) if missing.
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        self.request_ok(XS_MKDIR, tx, &strings_payload(&[path.as_bytes()]))
    }

    /// `XS_RM`: removes the node and its children.
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        self.request_ok(XS_RM, tx, &strings_payload(&[path.as_bytes()]))
    }

    /// `XS_GET_PERMS`: the node's permission list, owner first.
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Result<Vec<Perm>, XsError> {
        let reply = self.request(XS_GET_PERMS, tx, &strings_payload(&[path.as_bytes()]))?;
        split_strings(&reply)
            .iter()
            .map(|s| Perm::parse(s).ok_or_else(|| XsError::Protocol(format!("permission {s:?}"))))
            .collect()
    }

    /// `XS_SET_PERMS`: replaces the node's permission list.
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        let texts: Vec<String> = perms.iter().map(Perm::to_string).collect();
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(texts.iter().map(|t| t.as_bytes()));
        self.request_ok(XS_SET_PERMS, tx, &strings_payload(&parts))
    }

    /// `XS_WATCH`: watches `path` and below; fires once at once.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request_ok(XS_WATCH, TxId::NONE, &strings_payload(&[path.as_bytes(), token.as_bytes()]))
    }

    /// `XS_UNWATCH`: removes the watch `path`/`token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request_ok(XS_UNWATCH, TxId::NONE, &strings_payload(&[path.as_bytes(), token.as_bytes()]))
    }

    /// The next watch event, waiting for one if none is queued.
    pub fn read_watch(&mut self) -> Result<WatchEvent, XsError> {
        loop {
            if let Some(ev) = self.read_watch_timeout(-1)? {
                return Ok(ev);
            }
        }
    }

    /// The next watch event, waiting at most `timeout_ms` (negative:
    /// forever); `None` on timeout.
    pub fn read_watch_timeout(&mut self, timeout_ms: i32) -> Result<Option<WatchEvent>, XsError> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(Some(ev));
        }
        if !poll_readable(self.conn.as_raw_fd(), timeout_ms)? {
            return Ok(None);
        }
        let (ty, body) = self.read_msg()?;
        if ty != XS_WATCH_EVENT {
            return Err(XsError::Protocol(format!("unsolicited message of type {ty}")));
        }
        parse_watch_event(&body).map(Some).ok_or_else(|| XsError::Protocol("malformed watch event".into()))
    }

    /// `XS_TRANSACTION_START`: a new transaction.
    pub fn transaction_start(&mut self) -> Result<TxId, XsError> {
        let reply = self.request(XS_TRANSACTION_START, TxId::NONE, b"\0")?;
        let text = reply_string(&reply);
        text.parse().map(TxId).map_err(|_| XsError::Protocol(format!("transaction id {text:?}")))
    }

    /// `XS_TRANSACTION_END "T"`: commits; `EAGAIN` means it conflicted and
    /// should be retried from the start.
    pub fn transaction_commit(&mut self, tx: TxId) -> Result<(), XsError> {
        self.request_ok(XS_TRANSACTION_END, tx, b"T\0")
    }

    /// `XS_TRANSACTION_END "F"`: abandons the transaction.
    pub fn transaction_abort(&mut self, tx: TxId) -> Result<(), XsError> {
        self.request_ok(XS_TRANSACTION_END, tx, b"F\0")
    }

    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    pub fn get_domain_path(&mut self, domid: u16) -> Result<String, XsError> {
        let reply = self.request(XS_GET_DOMAIN_PATH, TxId::NONE, &strings_payload(&[domid.to_string().as_bytes()]))?;
        Ok(reply_string(&reply))
    }

    /// `XS_INTRODUCE`: tells xenstored about a domain's ring (its MFN) and port.
    pub fn introduce(&mut self, domid: u16, mfn: u64, port: u32) -> Result<(), XsError> {
        let (d, m, p) = (domid.to_string(), mfn.to_string(), port.to_string());
        self.request_ok(XS_INTRODUCE, TxId::NONE, &strings_payload(&[d.as_bytes(), m.as_bytes(), p.as_bytes()]))
    }

    /// `XS_RELEASE`: xenstored forgets the domain.
    pub fn release(&mut self, domid: u16) -> Result<(), XsError> {
        self.request_ok(XS_RELEASE, TxId::NONE, &strings_payload(&[domid.to_string().as_bytes()]))
    }

    /// `XS_IS_DOMAIN_INTRODUCED`.
    pub fn is_domain_introduced(&mut self, domid: u16) -> Result<bool, XsError> {
        let reply =
            self.request(XS_IS_DOMAIN_INTRODUCED, TxId::NONE, &strings_payload(&[domid.to_string().as_bytes()]))?;
        Ok(reply_string(&reply) == "T")
    }
}

/// Waits up to `timeout_ms` for `fd` to be readable (`EINTR` retried).
fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// libxenstore's `sanitise_value`: printable ASCII stays, backslash and the
/// rest become `\\`, `\t`, `\n`, `\r`, `\NNN` (octal, below 8) or `\xNN`.
pub fn sanitise_value(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &c in value {
        match c {
            b' '..=b'~' if c != b'\\' => out.push(c as char),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            0..=7 => out.push_str(&format!("\\{c:03o}")),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

/// libxenstore's `unsanitise_value`, byte for byte: `\t \n \r \\`,
/// `\xNN` (up to two hex digits, after optional white space, as `%2x`),
/// `\NNN` (up to three octal digits, kept modulo 256), any other escaped
/// character as itself, and a trailing backslash as a NUL byte.
pub fn unsanitise_value(spec: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spec.len());
    let mut i = 0;
    while i < spec.len() {
        let c = spec[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = spec.get(i) else {
            out.push(0);
            break;
        };
        i += 1;
        let byte = match e {
            b't' => b'\t',
            b'n' => b'\n',
            b'r' => b'\r',
            b'x' => {
                let mut j = i;
                while spec.get(j).is_some_and(|b| b" \t\n\x0b\x0c\r".contains(b)) {
                    j += 1;
                }
                let digits = spec[j..].iter().take(2).take_while(|b| b.is_ascii_hexdigit()).count();
                if digits == 0 {
                    b'x'
                } else {
                    let text = std::str::from_utf8(&spec[j..j + digits]).unwrap_or("0");
                    i = j + digits;
                    u8::from_str_radix(text, 16).unwrap_or(0)
                }
            }
            b'0'..=b'7' => {
                let start = i - 1;
                let digits = spec[start..].iter().take(3).take_while(|b| (b'0'..=b'7').contains(b)).count();
                i = start + digits;
                spec[start..i].iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0')) as u8
            }
            other => other,
        };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    #[test]
    fn values_sanitise_as_libxenstore_does() {
        assert_eq!(sanitise_value(b"plain text~"), "plain text~");
        assert_eq!(sanitise_value(b"a\\b\tc\nd\re"), "a\\\\b\\tc\\nd\\re");
        assert_eq!(sanitise_value(&[0, 7, 8, 0x1b, 0x7f, 0xff]), "\\000\\007\\x08\\x1b\\x7f\\xff");
    }

    #[test]
    fn unsanitise_inverts_sanitise_and_keeps_c_quirks() {
        for raw in [&b"x\x00y\x07\x08\t\n\\ \xff"[..], b"", b"\x1b[0m"] {
            assert_eq!(unsanitise_value(sanitise_value(raw).as_bytes()), raw);
        }
        assert_eq!(unsanitise_value(b"\\q"), b"q", "unknown escapes keep the character");
        assert_eq!(unsanitise_value(b"ab\\"), b"ab\0", "a trailing backslash is a NUL");
        assert_eq!(unsanitise_value(b"\\xZ"), b"xZ", "\\x without digits is an x");
        assert_eq!(unsanitise_value(b"\\x414"), b"A4", "at most two hex digits");
        assert_eq!(unsanitise_value(b"\\1012"), b"A2", "at most three octal digits");
        assert_eq!(unsanitise_value(b"\\777"), [0xff], "octal kept modulo 256");
        assert_eq!(unsanitise_value(b"\\x 41"), b"A", "%2x skips white space");
    }

    #[test]
    fn permissions_have_their_text_forms() {
        assert_eq!(Perm::parse("r5"), Some(Perm { domid: 5, access: Access::Read }));
        assert_eq!(Perm::parse("b0").map(|p| p.to_string()), Some("b0".into()));
        assert_eq!(Perm::parse("x1"), None);
        assert_eq!(Perm::parse("n"), None);
        assert_eq!(Perm { domid: u32::MAX, access: Access::Write }.to_string(), "w-1");
    }

    #[test]
    fn payload_strings_split_at_nuls() {
        assert_eq!(split_strings(b"a\0bc\0"), vec!["a", "bc"]);
        assert_eq!(split_strings(b""), Vec::<String>::new());
        assert_eq!(split_strings(b"x"), vec!["x"]);
        assert_eq!(parse_watch_event(b"/a\0tok\0"), Some(WatchEvent { path: "/a".into(), token: "tok".into() }));
        assert_eq!(parse_watch_event(b"/a"), None);
    }

    /// A message: (type, payload).
    type Msg = (u32, Vec<u8>);

    /// A scripted xenstored: for each expected request it sends the given
    /// messages back.
    fn fake_store(script: Vec<(Msg, Vec<Msg>)>) -> (XsClient, thread::JoinHandle<()>) {
        let dir =
            std::env::temp_dir().join(format!("xs-client-test-{}-{:?}", std::process::id(), thread::current().id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
            for ((want_ty, want_body), replies) in script {
                let mut h = [0u8; 16];
                s.read_exact(&mut h).unwrap_or_else(|e| panic!("read: {e}"));
                let w = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
                let mut body = vec![0u8; w(12) as usize];
                s.read_exact(&mut body).unwrap_or_else(|e| panic!("read: {e}"));
                assert_eq!((w(0), &body), (want_ty, &want_body));
                for (ty, payload) in replies {
                    let mut m = Vec::new();
                    let req_id = if ty == XS_WATCH_EVENT { 0 } else { w(4) };
                    for word in [ty, req_id, w(8), payload.len() as u32] {
                        m.extend_from_slice(&word.to_ne_bytes());
                    }
                    m.extend_from_slice(&payload);
                    s.write_all(&m).unwrap_or_else(|e| panic!("write: {e}"));
                }
            }
        });
        let client = XsClient::connect(&path).unwrap_or_else(|e| panic!("connect: {e}"));
        (client, server)
    }

    #[test]
    fn watch_events_between_requests_and_replies_are_queued() {
        let (mut xs, server) = fake_store(vec![
            (
                (XS_WATCH, b"/a\0tok\0".to_vec()),
                vec![(XS_WATCH, b"OK\0".to_vec()), (XS_WATCH_EVENT, b"/a\0tok\0".to_vec())],
            ),
            (
                (XS_READ, b"/a/b\0".to_vec()),
                vec![(XS_WATCH_EVENT, b"/a/b\0tok\0".to_vec()), (XS_READ, b"value".to_vec())],
            ),
            ((XS_READ, b"/nope\0".to_vec()), vec![(XS_ERROR, b"ENOENT\0".to_vec())]),
            ((XS_DIRECTORY, b"/a\0".to_vec()), vec![(XS_DIRECTORY, b"b\0c\0".to_vec())]),
            ((XS_GET_PERMS, b"/a\0".to_vec()), vec![(XS_GET_PERMS, b"n0\0r3\0".to_vec())]),
            ((XS_TRANSACTION_START, b"\0".to_vec()), vec![(XS_TRANSACTION_START, b"17\0".to_vec())]),
            ((XS_TRANSACTION_END, b"T\0".to_vec()), vec![(XS_ERROR, b"EAGAIN\0".to_vec())]),
        ]);
        assert!(xs.watch("/a", "tok").is_ok());
        assert_eq!(xs.read(TxId::NONE, "/a/b").ok(), Some(b"value".to_vec()));
        let err = xs.read(TxId::NONE, "/nope").err();
        assert!(err.as_ref().is_some_and(|e| e.is(XenError::Enoent) && e.to_string() == "ENOENT"), "{err:?}");
        assert_eq!(xs.directory(TxId::NONE, "/a").ok(), Some(vec!["b".to_string(), "c".to_string()]));
        let perms = xs.get_perms(TxId::NONE, "/a").ok();
        assert_eq!(
            perms.map(|p| p.iter().map(Perm::to_string).collect::<Vec<_>>()),
            Some(vec!["n0".into(), "r3".into()])
        );
        let tx = xs.transaction_start().ok();
        assert_eq!(tx, Some(TxId(17)));
        assert!(xs.transaction_commit(TxId(17)).is_err_and(|e| e.errno() == Some(libc::EAGAIN)));
        // The two events came in before replies; both were kept, in order.
        assert_eq!(xs.read_watch().ok().map(|e| e.path), Some("/a".into()));
        assert_eq!(xs.read_watch_timeout(0).ok().flatten().map(|e| e.path), Some("/a/b".into()));
        assert!(server.join().is_ok());
        assert!(matches!(xs.read_watch_timeout(1000), Err(XsError::Protocol(_))), "closed connection");
    }

    #[test]
    fn a_long_directory_is_listed_in_parts() {
        let (mut xs, server) = fake_store(vec![
            ((XS_DIRECTORY, b"/big\0".to_vec()), vec![(XS_ERROR, b"E2BIG\0".to_vec())]),
            ((XS_DIRECTORY_PART, b"/big\x000\x00".to_vec()), vec![(XS_DIRECTORY_PART, b"9\0aa\0bb\0".to_vec())]),
            ((XS_DIRECTORY_PART, b"/big\x006\x00".to_vec()), vec![(XS_DIRECTORY_PART, b"9\0cc\0\0".to_vec())]),
        ]);
        let names = xs.directory(TxId::NONE, "/big").ok();
        assert_eq!(names, Some(vec!["aa".into(), "bb".into(), "cc".into()]));
        assert!(server.join().is_ok());
    }

    #[test]
    fn writes_carry_the_value_without_a_final_nul_and_oversize_is_refused() {
        let (mut xs, server) = fake_store(vec![
            ((XS_WRITE, b"/a\0v\0x".to_vec()), vec![(XS_WRITE, b"OK\0".to_vec())]),
            ((XS_SET_PERMS, b"/a\0n0\0b5\0".to_vec()), vec![(XS_SET_PERMS, b"OK\0".to_vec())]),
        ]);
        assert!(xs.write(TxId::NONE, "/a", b"v\0x").is_ok());
        let perms = [Perm { domid: 0, access: Access::None }, Perm { domid: 5, access: Access::Both }];
        assert!(xs.set_perms(TxId::NONE, "/a", &perms).is_ok());
        assert!(xs.write(TxId::NONE, "/a", &[0u8; 5000]).is_err_and(|e| e.is(XenError::E2big)));
        assert!(server.join().is_ok());
    }
}
