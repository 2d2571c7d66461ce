//! The Unix socket: where it lives, and moving bytes for its peers.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `init_sockets`,
//! `readfd`, `writefd` and X:`tools/xenstore/xs_lib.c`
//! `xs_daemon_socket` (Xen 4.17): `$XENSTORED_PATH`, else
//! `$XENSTORED_RUNDIR/socket`, else `/run/xenstored/socket`; a stale
//! socket is unlinked, the new one is mode 0600. Peers are privileged.
//! All I/O is non-blocking; a peer that hangs up or errs is dropped.

use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use guest_abi::io::xs_wire::XENSTORE_PAYLOAD_MAX;
use xenstore::wire::HEADER_LEN;
use xenstore::{ConnId, Platform, XenStore};

/// The socket's path.
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("XENSTORED_PATH") {
        return p.into();
    }
    let dir = std::env::var_os("XENSTORED_RUNDIR").map_or_else(|| PathBuf::from("/run/xenstored"), PathBuf::from);
    dir.join("socket")
}

/// Creates the listening socket at `path`.
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = fs::DirBuilder::new().recursive(true).mode(0o755).create(dir);
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("Could not bind socket to {}: {e}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Per-call read limit, so one peer cannot keep the daemon to itself.
const READ_PER_CALL: usize = 16 * (HEADER_LEN + XENSTORE_PAYLOAD_MAX as usize);

/// Reads what `conn`'s peer sent (as far as the store wants it). Returns
/// false when the connection must be closed.
pub fn read(stream: &mut UnixStream, store: &mut XenStore, conn: ConnId, platform: &mut dyn Platform) -> bool {
    let mut buf = [0u8; HEADER_LEN + XENSTORE_PAYLOAD_MAX as usize];
    let mut total = 0;
    while total < READ_PER_CALL {
        let want = store.input_budget(conn).min(buf.len());
        let Some(chunk) = buf.get_mut(..want).filter(|c| !c.is_empty()) else { return true };
        match stream.read(chunk) {
            Ok(0) => return false,
            Ok(n) => {
                total += n;
                if store.feed(conn, chunk.get(..n).unwrap_or(&[]), platform).is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Writes `conn`'s queued output as far as the socket takes it. Returns
/// false when the connection must be closed.
pub fn write(stream: &mut UnixStream, store: &mut XenStore, conn: ConnId) -> bool {
    while let Some(out) = store.output(conn) {
        match stream.write(out) {
            Ok(0) => return false,
            Ok(n) => store.output_written(conn, n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}
