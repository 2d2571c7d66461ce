//! The single-threaded poll loop: sockets, the event channel device, and
//! every domain's ring.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `main`'s loop and
//! `initialize_fds` (Xen 4.17). Rings have no file descriptor: when one
//! has work the store lets it do (requests within the throttle, or output
//! and room), the loop polls without sleeping; otherwise it sleeps until a
//! socket or an event channel wakes it. Each pass serves every ring and
//! socket a bounded amount, so a flooding peer delays nobody for long.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};

use xenstore::ring_conn::{ring_ready, service_ring};
use xenstore::{ConnId, Platform, XenStore};

use super::log;
use super::socket;
use super::xen::{NoXen, XenBackend};

/// The daemon's state.
pub struct Daemon {
    store: XenStore,
    listener: UnixListener,
    sockets: BTreeMap<ConnId, UnixStream>,
    xen: Option<XenBackend>,
    noxen: NoXen,
}

/// The platform the store talks to.
fn platform<'a>(xen: &'a mut Option<XenBackend>, noxen: &'a mut NoXen) -> &'a mut dyn Platform {
    match xen {
        Some(x) => x,
        None => noxen,
    }
}

impl Daemon {
    /// A daemon serving `listener` and, if given, the hypervisor's rings.
    pub fn new(store: XenStore, listener: UnixListener, xen: Option<XenBackend>) -> Daemon {
        let dom0 = store.config().dom0_domid;
        Daemon { store, listener, sockets: BTreeMap::new(), xen, noxen: NoXen { dom0 } }
    }

    /// Serves forever; returns only if polling itself fails.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            self.pass()?;
        }
    }

    /// Whether some ring can make progress without waiting.
    fn rings_ready(&self) -> bool {
        let Some(xen) = &self.xen else { return false };
        xen.rings()
            .iter()
            .any(|(domid, r)| self.store.domain_connection(*domid).is_some_and(|c| ring_ready(&self.store, c, &r.page)))
    }

    /// One wait and one round of service.
    fn pass(&mut self) -> io::Result<()> {
        let timeout = if self.rings_ready() { 0 } else { -1 };
        let conns: Vec<ConnId> = self.sockets.keys().copied().collect();
        let mut fds = Vec::with_capacity(2 + conns.len());
        fds.push(libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        if let Some(xen) = &self.xen {
            fds.push(libc::pollfd { fd: xen.fd(), events: libc::POLLIN, revents: 0 });
        }
        let first_socket = fds.len();
        for conn in &conns {
            let mut events = 0;
            if self.store.input_budget(*conn) > 0 {
                events |= libc::POLLIN;
            }
            if self.store.has_output(*conn) {
                events |= libc::POLLOUT;
            }
            let fd = self.sockets.get(conn).map_or(-1, |s| s.as_raw_fd());
            fds.push(libc::pollfd { fd, events, revents: 0 });
        }
        // SAFETY: `fds` is a live, correctly sized array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        let revents = |i: usize| fds.get(i).map_or(0, |p| p.revents);
        if revents(0) != 0 {
            self.accept();
        }
        if self.xen.is_some() && revents(1) != 0 {
            self.events();
        }
        for (i, conn) in conns.iter().enumerate() {
            let r = revents(first_socket + i);
            if r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.read_socket(*conn);
            }
        }
        self.serve_rings();
        self.flush_sockets();
        Ok(())
    }

    /// Accepts every waiting peer.
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::error(&format!("accept: {e}"));
                        continue;
                    }
                    let conn = self.store.add_socket_connection();
                    log::info(&format!("{conn}: new socket connection"));
                    self.sockets.insert(conn, stream);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != ErrorKind::WouldBlock {
                        log::error(&format!("accept: {e}"));
                    }
                    return;
                }
            }
        }
    }

    /// Handles the event channel device: unmask, and check domains on
    /// `VIRQ_DOM_EXC`.
    fn events(&mut self) {
        let Some(xen) = self.xen.as_mut() else { return };
        if xen.take_events() {
            log::info("VIRQ_DOM_EXC: checking domains");
            self.store.check_domains(xen);
        }
    }

    fn close_socket(&mut self, conn: ConnId) {
        log::info(&format!("{conn}: socket closed"));
        self.store.close_connection(conn);
        self.sockets.remove(&conn);
    }

    fn read_socket(&mut self, conn: ConnId) {
        let Some(stream) = self.sockets.get_mut(&conn) else { return };
        let platform = platform(&mut self.xen, &mut self.noxen);
        if !socket::read(stream, &mut self.store, conn, platform) {
            self.close_socket(conn);
        }
    }

    fn flush_sockets(&mut self) {
        let conns: Vec<ConnId> = self.sockets.keys().copied().collect();
        for conn in conns {
            if !self.store.has_output(conn) {
                continue;
            }
            let Some(stream) = self.sockets.get_mut(&conn) else { continue };
            if !socket::write(stream, &mut self.store, conn) {
                self.close_socket(conn);
            }
        }
    }

    /// Serves every ring once (twice when the first round left output
    /// that other rings' requests produced for earlier rings).
    fn serve_rings(&mut self) {
        let Some(xen) = self.xen.as_mut() else { return };
        for _ in 0..2 {
            for (domid, ring) in xen.rings() {
                let Some(conn) = self.store.domain_connection(domid) else { continue };
                let done = service_ring(&mut self.store, conn, &ring.page, xen);
                if done.broken {
                    log::error(&format!("dom{domid}: ring protocol error, connection ignored"));
                }
                if done.notify {
                    xen.notify(domid);
                }
            }
        }
    }
}
