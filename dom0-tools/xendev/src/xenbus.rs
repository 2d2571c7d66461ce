//! The XenStore ring of the control domain: `/dev/xen/xenbus_backend`
//! ([`XenbusBackend`]) and xenfs' `xsd_port`/`xsd_kva` ([`xsd_port`],
//! [`xsd_kva`]), what a local xenstored serves dom0's own kernel through.
//!
//! Semantics: Linux 6.1 `drivers/xen/xenbus/xenbus_dev_backend.c`
//! (`CAP_SYS_ADMIN`; `IOCTL_XENBUS_BACKEND_EVTCHN` returns the store port,
//! `mmap` of one page at offset 0 maps the store ring) and
//! `drivers/xen/xenfs/xenstored.c` (`xsd_port` is the port in decimal,
//! `xsd_kva` maps the same page).

use std::io;
use std::os::fd::OwnedFd;

use crate::error::dev_error;
use crate::mapping::{Mapping, Release};
use crate::sys::{self, PAGE_SIZE};
use crate::uapi;

/// An open `/dev/xen/xenbus_backend`.
#[derive(Debug)]
pub struct XenbusBackend {
    fd: OwnedFd,
}

/// A read-write shared mapping of the one-page store ring behind `fd`.
fn map_store_page(fd: &OwnedFd, what: &str) -> io::Result<Mapping> {
    let ptr = sys::mmap_shared(fd, PAGE_SIZE, libc::PROT_READ | libc::PROT_WRITE, 0, what)?;
    // SAFETY: a fresh RW mapping of one page, owned by the Mapping.
    Ok(unsafe { Mapping::from_raw(ptr, PAGE_SIZE, Release::Unmap) })
}

impl XenbusBackend {
    /// Opens `/dev/xen/xenbus_backend` (dom0 only).
    pub fn open() -> io::Result<XenbusBackend> {
        Ok(XenbusBackend { fd: sys::open_rw("/dev/xen/xenbus_backend", 0)? })
    }

    /// `IOCTL_XENBUS_BACKEND_EVTCHN`: the store event channel (dom0's end).
    pub fn evtchn(&self) -> io::Result<u32> {
        // SAFETY: the ioctl takes no argument.
        let port = unsafe { sys::ioctl(&self.fd, uapi::IOCTL_XENBUS_BACKEND_EVTCHN, 0) }
            .map_err(|errno| dev_error("IOCTL_XENBUS_BACKEND_EVTCHN", errno))?;
        u32::try_from(port).map_err(|_| dev_error(format!("IOCTL_XENBUS_BACKEND_EVTCHN returned {port}"), libc::EIO))
    }

    /// Maps the store ring page (4096 bytes, read-write, shared).
    pub fn map(&self) -> io::Result<Mapping> {
        map_store_page(&self.fd, "/dev/xen/xenbus_backend")
    }
}

/// Parses xenfs' `xsd_port` text.
fn parse_port(text: &str, path: &str) -> io::Result<u32> {
    text.trim().parse().map_err(|_| dev_error(format!("{path}: not a port number: {:?}", text.trim()), libc::EINVAL))
}

/// The store event channel from `/proc/xen/xsd_port` (or `/dev/xen/xsd_port`).
pub fn xsd_port() -> io::Result<u32> {
    let mut first_err = None;
    for path in ["/proc/xen/xsd_port", "/dev/xen/xsd_port"] {
        match sys::read_text(path) {
            Ok(text) => return parse_port(&text, path),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| dev_error("read /proc/xen/xsd_port", libc::ENOENT)))
}

/// Maps the store ring page through `/proc/xen/xsd_kva` (or
/// `/dev/xen/xsd_kva`): 4096 bytes, read-write, shared.
pub fn xsd_kva() -> io::Result<Mapping> {
    let paths = ["/proc/xen/xsd_kva", "/dev/xen/xsd_kva"];
    let fd = sys::open_first(&paths, 0)?;
    map_store_page(&fd, "xsd_kva")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xsd_port_text_is_a_decimal_line() {
        assert_eq!(parse_port("3\n", "p").ok(), Some(3));
        assert!(parse_port("0x3", "p").is_err());
        assert!(parse_port("", "p").is_err());
    }
}
