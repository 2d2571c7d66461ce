//! The `xenstored` binary on the host: socket transport only (`-D`), no
//! Xen needed. Spawns the daemon, talks the wire protocol to it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const XS_DIRECTORY: u32 = 1;
const XS_READ: u32 = 2;
const XS_GET_PERMS: u32 = 3;
const XS_WATCH: u32 = 4;
const XS_TRANSACTION_START: u32 = 6;
const XS_TRANSACTION_END: u32 = 7;
const XS_INTRODUCE: u32 = 8;
const XS_WRITE: u32 = 11;
const XS_WATCH_EVENT: u32 = 15;
const XS_ERROR: u32 = 16;

/// A daemon in a private directory, killed on drop.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenstored-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `xenstored -N -D` in the foreground.
    fn foreground(name: &str) -> Daemon {
        let dir = Daemon::dir(name);
        let socket = dir.join("run/socket");
        let child = Command::new(env!("CARGO_BIN_EXE_xenstored"))
            .args(["-N", "-D"])
            .env("XENSTORED_PATH", &socket)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn xenstored");
        let d = Daemon { child: Some(child), dir, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&d.socket).is_err() {
            assert!(Instant::now() < deadline, "xenstored did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn connect(&self) -> Client {
        let s = UnixStream::connect(&self.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { s, next: 1, events: Vec::new() }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let pid_file = self.dir.join("pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Client {
    s: UnixStream,
    next: u32,
    events: Vec<(String, String)>,
}

impl Client {
    fn send(&mut self, type_: u32, tx: u32, payload: &[u8]) -> u32 {
        let id = self.next;
        self.next += 1;
        let mut msg = Vec::new();
        for f in [type_, id, tx, payload.len() as u32] {
            msg.extend_from_slice(&f.to_ne_bytes());
        }
        msg.extend_from_slice(payload);
        self.s.write_all(&msg).unwrap();
        id
    }

    fn recv(&mut self) -> (u32, u32, u32, Vec<u8>) {
        let mut h = [0u8; 16];
        self.s.read_exact(&mut h).expect("a message");
        let f = |i: usize| u32::from_ne_bytes(h[i * 4..i * 4 + 4].try_into().unwrap());
        let mut payload = vec![0; f(3) as usize];
        self.s.read_exact(&mut payload).unwrap();
        (f(0), f(1), f(2), payload)
    }

    /// The reply to one request; events arriving meanwhile are kept.
    fn call(&mut self, type_: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.send(type_, tx, payload);
        loop {
            let (t, rid, rtx, p) = self.recv();
            if t == XS_WATCH_EVENT {
                let parts: Vec<String> = p.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into()).collect();
                self.events.push((parts[0].clone(), parts[1].clone()));
                continue;
            }
            assert_eq!((rid, rtx), (id, tx), "reply echoes req_id and tx_id");
            return if t == XS_ERROR {
                Err(String::from_utf8_lossy(p.strip_suffix(b"\0").unwrap()).into())
            } else {
                assert_eq!(t, type_);
                Ok(p)
            };
        }
    }

    fn write(&mut self, path: &str, value: &str) -> Result<Vec<u8>, String> {
        self.call(XS_WRITE, 0, format!("{path}\0{value}").as_bytes())
    }

    fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.call(XS_READ, 0, format!("{path}\0").as_bytes())
    }

    fn next_event(&mut self) -> (String, String) {
        if !self.events.is_empty() {
            return self.events.remove(0);
        }
        let (t, _, _, p) = self.recv();
        assert_eq!(t, XS_WATCH_EVENT);
        let parts: Vec<String> = p.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into()).collect();
        (parts[0].clone(), parts[1].clone())
    }
}

fn ok() -> Result<Vec<u8>, String> {
    Ok(b"OK\0".to_vec())
}

#[test]
fn serves_the_socket_without_xen() {
    let d = Daemon::foreground("basic");
    let mode = std::fs::metadata(&d.socket).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.unwrap() & 0o777, 0o600);
    let mut c = d.connect();
    assert_eq!(c.call(XS_DIRECTORY, 0, b"/\0"), Ok(b"tool\0".to_vec()));
    assert_eq!(c.write("/local/domain/0/name", "Domain-0"), ok());
    assert_eq!(c.read("name"), Ok(b"Domain-0".to_vec()), "relative to /local/domain/0");
    assert_eq!(c.call(XS_GET_PERMS, 0, b"/local/domain/0/name\0"), Ok(b"n0\0".to_vec()));
    assert_eq!(c.read("/nope"), Err("ENOENT".into()));
    assert_eq!(c.call(99, 0, b""), Err("ENOSYS".into()));
    assert_eq!(c.call(XS_INTRODUCE, 0, b"1\x001\x001\0"), Err("ENOSYS".into()), "no hypervisor with -D");
}

#[test]
fn watches_and_transactions_across_connections() {
    let d = Daemon::foreground("watch");
    let mut w = d.connect();
    let mut a = d.connect();
    assert_eq!(w.call(XS_WATCH, 0, b"/vm\0tok\0"), ok());
    assert_eq!(w.next_event(), ("/vm".into(), "tok".into()));
    assert_eq!(a.write("/vm/1/name", "guest"), ok());
    assert_eq!(w.next_event(), ("/vm/1/name".into(), "tok".into()));

    let tx = a.call(XS_TRANSACTION_START, 0, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(&tx[..tx.len() - 1]).unwrap().parse().unwrap();
    assert_eq!(a.call(XS_WRITE, tx, b"/vm/1/state\0running"), ok());
    assert_eq!(w.read("/vm/1/state"), Err("ENOENT".into()));
    assert_eq!(a.call(XS_TRANSACTION_END, tx, b"T\0"), ok());
    assert_eq!(w.read("/vm/1/state"), Ok(b"running".to_vec()));
    assert_eq!(w.next_event(), ("/vm/1/state".into(), "tok".into()));
}

#[test]
fn a_malformed_peer_is_dropped_and_others_carry_on() {
    let d = Daemon::foreground("bad");
    let mut good = d.connect();
    let mut bad = d.connect();
    let mut hdr = Vec::new();
    for f in [XS_READ, 1, 0, 100_000u32] {
        hdr.extend_from_slice(&f.to_ne_bytes());
    }
    bad.s.write_all(&hdr).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(bad.s.read(&mut buf).unwrap_or(0), 0, "the daemon hangs up");
    // A peer that vanishes in the middle of a message is harmless too.
    let mut half = d.connect();
    half.s.write_all(&hdr[..7]).unwrap();
    drop(half);
    assert_eq!(good.write("/still", "alive"), ok());
    assert_eq!(good.read("/still"), Ok(b"alive".to_vec()));
}

#[test]
fn forks_writes_its_pid_and_is_ready_when_the_parent_exits() {
    let dir = Daemon::dir("fork");
    let socket = dir.join("socket");
    let pid_file = dir.join("pid");
    let status = Command::new(env!("CARGO_BIN_EXE_xenstored"))
        .args(["-D", "--pid-file"])
        .arg(&pid_file)
        .env("XENSTORED_PATH", &socket)
        .stderr(Stdio::null())
        .status()
        .expect("run xenstored");
    let d = Daemon { child: None, dir, socket };
    assert!(status.success());
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the daemon runs");
    // No waiting: the socket is there as soon as the parent returned.
    let mut c = d.connect();
    assert_eq!(c.write("/x", "1"), ok());
    // A second daemon on the same pid file fails without harming the first.
    let second = Command::new(env!("CARGO_BIN_EXE_xenstored"))
        .args(["-D", "--pid-file"])
        .arg(&pid_file)
        .env("XENSTORED_PATH", &d.socket)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!second.success());
    assert_eq!(d.connect().read("/x"), Ok(b"1".to_vec()));
}

#[test]
fn help_and_bad_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_xenstored")).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-domain-init"));
    let out = Command::new(env!("CARGO_BIN_EXE_xenstored")).args(["-N", "stray"]).output().unwrap();
    assert!(!out.status.success());
}
