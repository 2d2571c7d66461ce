//! [`Evtchn`]: `/dev/xen/evtchn`, event channels for user space.
//!
//! Semantics (Linux 6.1 `drivers/xen/evtchn.c`): the bind ioctls return the
//! local port; ports bound on an fd belong to it (`UNBIND`/`NOTIFY` of
//! another port fail with `ENOTCONN`) and are unbound when it closes.
//! `read` returns pending ports as native `u32`s; each delivered port stays
//! **masked until its number is written back** ([`Evtchn::unmask`]),
//! libxenevtchn's `xenevtchn_unmask`. The fd is opened non-blocking, so
//! [`Evtchn::pending`] never blocks and [`Evtchn::wait`] polls first.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::error::dev_error;
use crate::sys;
use crate::uapi;

/// An open `/dev/xen/evtchn`.
#[derive(Debug)]
pub struct Evtchn {
    fd: OwnedFd,
}

impl AsRawFd for Evtchn {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Evtchn {
    /// Opens `/dev/xen/evtchn` (non-blocking).
    pub fn open() -> io::Result<Evtchn> {
        Ok(Evtchn { fd: sys::open_rw("/dev/xen/evtchn", libc::O_NONBLOCK)? })
    }

    /// An ioctl taking a struct `T` that returns a port or 0.
    fn ioctl<T>(&self, request: u32, arg: &mut T, what: impl Fn() -> String) -> io::Result<u32> {
        // SAFETY: `arg` is the struct `request` takes (the callers pair
        // them), alive for the call.
        let ret = unsafe { sys::ioctl(&self.fd, request, std::ptr::from_mut(arg) as u64) };
        let port = ret.map_err(|errno| dev_error(what(), errno))?;
        u32::try_from(port).map_err(|_| dev_error(format!("{}: returned {port}", what()), libc::EIO))
    }

    /// `IOCTL_EVTCHN_BIND_VIRQ`: binds `virq` (`VIRQ_*`) on vCPU 0; the local port.
    pub fn bind_virq(&self, virq: u32) -> io::Result<u32> {
        let mut op = uapi::EvtchnBindVirq { virq };
        self.ioctl(uapi::IOCTL_EVTCHN_BIND_VIRQ, &mut op, || format!("IOCTL_EVTCHN_BIND_VIRQ(virq {virq})"))
    }

    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: connects to `remote_port`, an unbound
    /// port of `domid` offered to this domain; the local port.
    pub fn bind_interdomain(&self, domid: u16, remote_port: u32) -> io::Result<u32> {
        let mut op = uapi::EvtchnBindInterdomain { remote_domain: domid.into(), remote_port };
        self.ioctl(uapi::IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut op, || {
            format!("IOCTL_EVTCHN_BIND_INTERDOMAIN(dom {domid}, remote port {remote_port})")
        })
    }

    /// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: a new local port that `remote_domid`
    /// may bind to.
    pub fn bind_unbound(&self, remote_domid: u16) -> io::Result<u32> {
        let mut op = uapi::EvtchnBindUnboundPort { remote_domain: remote_domid.into() };
        self.ioctl(uapi::IOCTL_EVTCHN_BIND_UNBOUND_PORT, &mut op, || {
            format!("IOCTL_EVTCHN_BIND_UNBOUND_PORT(remote dom {remote_domid})")
        })
    }

    /// `IOCTL_EVTCHN_UNBIND`: closes `port` (bound on this fd).
    pub fn unbind(&self, port: u32) -> io::Result<()> {
        let mut op = uapi::EvtchnPort { port };
        self.ioctl(uapi::IOCTL_EVTCHN_UNBIND, &mut op, || format!("IOCTL_EVTCHN_UNBIND(port {port})")).map(drop)
    }

    /// `IOCTL_EVTCHN_NOTIFY`: sends an event on `port` (bound on this fd).
    pub fn notify(&self, port: u32) -> io::Result<()> {
        let mut op = uapi::EvtchnPort { port };
        self.ioctl(uapi::IOCTL_EVTCHN_NOTIFY, &mut op, || format!("IOCTL_EVTCHN_NOTIFY(port {port})")).map(drop)
    }

    /// Reads the pending ports into `buf` without blocking; how many (0 if
    /// none). Each returned port stays masked until [`Evtchn::unmask`].
    pub fn pending(&self, buf: &mut [u32]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // The kernel returns at most a page of ports.
        let n = buf.len().min(1024);
        let mut bytes = [0u8; 4096];
        let bytes = &mut bytes[..n * 4];
        match sys::read(&self.fd, bytes) {
            Ok(got) => {
                let ports = got / 4;
                for (slot, chunk) in buf.iter_mut().zip(bytes[..ports * 4].chunks_exact(4)) {
                    *slot = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
                Ok(ports)
            }
            Err(errno) if errno == libc::EAGAIN => Ok(0),
            // EFBIG: the ring overflowed; events were lost.
            Err(errno) => Err(dev_error("read /dev/xen/evtchn", errno)),
        }
    }

    /// Waits up to `timeout_ms` (negative: forever) for pending ports, then
    /// reads them as [`Evtchn::pending`]; 0 on timeout.
    pub fn wait(&self, buf: &mut [u32], timeout_ms: i32) -> io::Result<usize> {
        if !sys::poll_readable(&self.fd, timeout_ms)? {
            return Ok(0);
        }
        self.pending(buf)
    }

    /// Unmasks `port` by writing it back, so its next event is delivered.
    pub fn unmask(&self, port: u32) -> io::Result<()> {
        let what = || format!("write /dev/xen/evtchn (unmask port {port})");
        match sys::write(&self.fd, &port.to_ne_bytes()) {
            Ok(4) => Ok(()),
            Ok(n) => Err(dev_error(format!("{}: wrote {n} of 4 bytes", what()), libc::EIO)),
            Err(errno) => Err(dev_error(what(), errno)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_ioctl_and_port() {
        let ev = Evtchn { fd: sys::open_rw("/dev/null", libc::O_NONBLOCK).unwrap_or_else(|e| panic!("{e}")) };
        let Err(e) = ev.notify(5) else { panic!("ioctl on /dev/null succeeded") };
        assert!(e.to_string().starts_with("IOCTL_EVTCHN_NOTIFY(port 5): ENOTTY"), "{e}");
        let Err(e) = ev.bind_interdomain(0, 7) else { panic!("ioctl on /dev/null succeeded") };
        assert!(e.to_string().starts_with("IOCTL_EVTCHN_BIND_INTERDOMAIN(dom 0, remote port 7)"), "{e}");
        // /dev/null reads as empty: no pending ports, and writes succeed.
        assert_eq!(ev.pending(&mut [0; 8]).ok(), Some(0));
        assert!(ev.unmask(3).is_ok());
    }
}
