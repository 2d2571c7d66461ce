//! A domU that uses XenStore as a Linux domU would, for the control-domain
//! tests: started by `xl create` in dom0, it reads its `domid` and `name`,
//! writes and reads back nodes in its own directory, creates, lists and
//! removes a directory, tries dom0's `/local/domain/0/name`, waits for dom0
//! to change a watched node, runs a committed and an aborted transaction,
//! writes `data/done = 1` and powers off.
//!
//! Every line starts with `xsguest: ` and goes to both consoles
//! (`guest_rt::tee`). What dom0 must do: write
//! `/local/domain/<id>/data/watched` after `data/waiting` appears (within
//! 60 s). The last line counts the results that differ from what Xen
//! 4.17's xenstored gives (`xsguest: done, 0 failures`); dom0's name is
//! printed as read, whatever the permissions say.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::fmt::{self, Write};

    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_abi::XenError;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{StorePort, Text, TxId, XenStore, XsError};
    use guest_rt::{events, tee};

    type Xs = XenStore<StorePort>;

    /// How long dom0 has to change `data/watched`.
    const WATCH_WAIT_NS: u64 = 60_000_000_000;
    /// How long the registration event may take.
    const FIRST_EVENT_NS: u64 = 2_000_000_000;
    const TOKEN: &str = "xsguest";
    const TEST_VALUE: &[u8] = b"hello from xsguest";
    /// Attempts at a transaction that conflicts (`EAGAIN`).
    const TX_ATTEMPTS: u32 = 5;

    /// A short string built without allocation.
    struct Buf {
        bytes: [u8; 64],
        len: usize,
    }

    impl Buf {
        fn new(args: fmt::Arguments) -> Buf {
            let mut b = Buf { bytes: [0; 64], len: 0 };
            let _ = b.write_fmt(args);
            b
        }

        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
        }
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    /// Results that differ from Xen's.
    struct Failures(u32);

    impl Failures {
        fn check(&mut self, ok: bool) {
            if !ok {
                self.0 += 1;
            }
        }
    }

    /// Prints `what: OK` or `what: <error>`; expects OK.
    fn expect_ok(f: &mut Failures, what: &str, r: Result<(), XsError>) {
        match r {
            Ok(()) => say!("xsguest: {what}: OK"),
            Err(e) => say!("xsguest: {what}: {e}"),
        }
        f.check(r.is_ok());
    }

    /// Reads `path` and prints `label: <value>` or `label: <error>`;
    /// expects `want` (a value, or the store's error).
    fn expect_read(xs: &mut Xs, f: &mut Failures, tx: TxId, path: &str, label: &str, want: Result<&[u8], XenError>) {
        let ok = match (xs.read(tx, path), want) {
            (Ok(v), want) => {
                say!("xsguest: {label}: {}", Text(v));
                want == Ok(v)
            }
            (Err(e), want) => {
                say!("xsguest: {label}: {e}");
                want.err().is_some_and(|w| e.is(w))
            }
        };
        f.check(ok);
    }

    fn identity(xs: &mut Xs, f: &mut Failures) -> u32 {
        let domid = match xs.read(TxId::NONE, "domid") {
            Ok(v) => {
                say!("xsguest: domid {}", Text(v));
                core::str::from_utf8(v).ok().and_then(|s| s.parse().ok())
            }
            Err(e) => {
                say!("xsguest: read domid: {e}");
                None
            }
        };
        f.check(domid.is_some());
        match xs.read(TxId::NONE, "name") {
            Ok(v) => say!("xsguest: name {}", Text(v)),
            Err(e) => {
                say!("xsguest: read name: {e}");
                f.check(false);
            }
        }
        domid.unwrap_or(0)
    }

    fn own_nodes(xs: &mut Xs, f: &mut Failures, domid: u32) {
        expect_ok(f, "write data/test", xs.write(TxId::NONE, "data/test", TEST_VALUE));
        expect_read(xs, f, TxId::NONE, "data/test", "read data/test", Ok(TEST_VALUE));
        let absolute = Buf::new(format_args!("/local/domain/{domid}/data/test"));
        expect_read(xs, f, TxId::NONE, absolute.as_str(), "read it by absolute path", Ok(TEST_VALUE));
        expect_ok(f, "mkdir data/dir", xs.mkdir(TxId::NONE, "data/dir"));
        expect_ok(f, "write data/dir/x", xs.write(TxId::NONE, "data/dir/x", b"1"));
        match xs.directory(TxId::NONE, "data/dir") {
            Ok(names) => {
                let mut only_x = true;
                let mut line = Buf::new(format_args!(""));
                for name in names {
                    only_x &= name == b"x" && line.len == 0;
                    let _ = write!(line, "{}{}", if line.len == 0 { "" } else { " " }, Text(name));
                }
                say!("xsguest: directory data/dir: {}", line.as_str());
                f.check(only_x && line.len == 1);
            }
            Err(e) => {
                say!("xsguest: directory data/dir: {e}");
                f.check(false);
            }
        }
        expect_ok(f, "rm data/dir", xs.rm(TxId::NONE, "data/dir"));
        expect_read(xs, f, TxId::NONE, "data/dir/x", "read data/dir/x after rm", Err(XenError::Enoent));
    }

    fn dom0_nodes(xs: &mut Xs, f: &mut Failures) {
        match xs.read(TxId::NONE, "/local/domain/0/name") {
            Ok(v) => say!("xsguest: read /local/domain/0/name: {}", Text(v)),
            Err(e) => say!("xsguest: read /local/domain/0/name: {e}"),
        }
        let r = xs.write(TxId::NONE, "/local/domain/0/name", b"xsguest");
        match r {
            Ok(()) => say!("xsguest: write /local/domain/0/name: OK"),
            Err(e) => say!("xsguest: write /local/domain/0/name: {e}"),
        }
        f.check(r.is_err_and(|e| e.is(XenError::Eacces)));
    }

    fn watch(xs: &mut Xs, f: &mut Failures) {
        let r = xs.watch("data/watched", TOKEN);
        expect_ok(f, "watch data/watched", r);
        if r.is_err() {
            return;
        }
        let deadline = events::system_time_ns() + FIRST_EVENT_NS;
        match xs.next_watch_event(deadline) {
            Ok(ev) => {
                say!("xsguest: watch fired on registration: {} {}", Text(ev.path()), Text(ev.token()));
                f.check(ev.path() == b"data/watched" && ev.token() == TOKEN.as_bytes());
            }
            Err(e) => {
                say!("xsguest: no event on registration: {e}");
                f.check(false);
            }
        }
        expect_ok(f, "write data/waiting", xs.write(TxId::NONE, "data/waiting", b"1"));
        say!("xsguest: waiting for data/watched");
        let deadline = events::system_time_ns() + WATCH_WAIT_NS;
        loop {
            match xs.next_watch_event(deadline) {
                Ok(ev) if ev.path().starts_with(b"data/watched") && ev.token() == TOKEN.as_bytes() => {
                    match xs.read(TxId::NONE, "data/watched") {
                        Ok(v) => {
                            say!("xsguest: data/watched changed: {}", Text(v));
                            break;
                        }
                        // Removed, or not written yet: wait for the next change.
                        Err(e) if e.is(XenError::Enoent) => {}
                        Err(e) => {
                            say!("xsguest: read data/watched: {e}");
                            f.check(false);
                            break;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    say!("xsguest: no change of data/watched in 60 s: {e}");
                    f.check(false);
                    break;
                }
            }
        }
        expect_ok(f, "unwatch data/watched", xs.unwatch("data/watched", TOKEN));
    }

    /// One attempt at the committed transaction.
    fn transaction_once(xs: &mut Xs, f: &mut Failures) -> Result<(), XsError> {
        let tx = xs.transaction_start()?;
        if let Err(e) = xs.write(tx, "data/tx/a", b"1").and_then(|()| xs.write(tx, "data/tx/b", b"2")) {
            let _ = xs.transaction_abort(tx);
            return Err(e);
        }
        expect_read(xs, f, tx, "data/tx/a", "read data/tx/a in the transaction", Ok(b"1"));
        xs.transaction_commit(tx)
    }

    fn transactions(xs: &mut Xs, f: &mut Failures) {
        let mut attempt = 0;
        let committed = loop {
            attempt += 1;
            match transaction_once(xs, f) {
                Err(e) if e.is(XenError::Eagain) && attempt < TX_ATTEMPTS => {
                    say!("xsguest: transaction conflicted (EAGAIN), retrying");
                }
                r => break r,
            }
        };
        match committed {
            Ok(()) => say!("xsguest: transaction committed"),
            Err(e) => say!("xsguest: transaction failed: {e}"),
        }
        f.check(committed.is_ok());
        expect_read(xs, f, TxId::NONE, "data/tx/b", "after commit data/tx/b", Ok(b"2"));

        let aborted = xs.transaction_start().and_then(|tx| {
            xs.write(tx, "data/tx/c", b"3")?;
            xs.transaction_abort(tx)
        });
        match aborted {
            Ok(()) => say!("xsguest: transaction aborted"),
            Err(e) => say!("xsguest: aborted transaction failed: {e}"),
        }
        f.check(aborted.is_ok());
        expect_read(xs, f, TxId::NONE, "data/tx/c", "after abort data/tx/c", Err(XenError::Enoent));
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("xsguest: start");
        if let Err(e) = events::init(si) {
            say!("xsguest: event setup failed: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let mut xs = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => {
                say!("xsguest: cannot open XenStore: {e}");
                guest_rt::shutdown(SHUTDOWN_CRASH)
            }
        };
        let mut f = Failures(0);
        let domid = identity(&mut xs, &mut f);
        own_nodes(&mut xs, &mut f, domid);
        dom0_nodes(&mut xs, &mut f);
        watch(&mut xs, &mut f);
        transactions(&mut xs, &mut f);
        expect_ok(&mut f, "write data/done", xs.write(TxId::NONE, "data/done", b"1"));
        say!("xsguest: done, {} failures", f.0);
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
