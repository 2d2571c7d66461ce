//! [`Tap`]: the vif's device in dom0 — a TAP interface (`/dev/net/tun`
//! with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE`), one
//! file descriptor per queue, joined to a bridge as Xen's `vif-bridge`
//! script joins netback's `vifN.M`.
//!
//! The interface lives while a descriptor is open: dropping the [`Tap`]
//! removes it (and takes it off its bridge). Its MAC is
//! `fe:ff:ff:ff:ff:ff`, as netback gives its vifs, so the bridge never
//! takes the guest's address for its own. `TUNSETOFFLOAD` says which
//! offloads dom0 may hand over in frames read from it (partial
//! checksums, TSO), which follows what the frontend accepts.
//! Semantics: L:`drivers/net/tun.c`, `include/uapi/linux/if_tun.h`,
//! `net/bridge/br_ioctl.c`; X:`tools/hotplug/Linux/xen-network-common.sh`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use dom0_tools::netdev::{self, if_index, IfReq};

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: u64 = 0x4004_54ca;
/// `TUNSETOFFLOAD`: `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
/// `IFF_TAP`.
const IFF_TAP: u16 = 0x0002;
/// `IFF_NO_PI`.
const IFF_NO_PI: u16 = 0x1000;
/// `IFF_VNET_HDR`.
const IFF_VNET_HDR: u16 = 0x4000;
/// `IFF_MULTI_QUEUE`.
const IFF_MULTI_QUEUE: u16 = 0x0100;
/// `TUN_F_CSUM`: partial checksums may be handed over.
pub const TUN_F_CSUM: u32 = 1;
/// `TUN_F_TSO4`.
pub const TUN_F_TSO4: u32 = 2;
/// `TUN_F_TSO6`.
pub const TUN_F_TSO6: u32 = 4;
/// The MAC every vif gets in dom0 (netback's).
pub const BACKEND_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

/// A TAP interface and its queues' descriptors.
pub struct Tap {
    name: String,
    queues: Vec<File>,
}

impl Tap {
    /// Creates the interface `name` with its first queue (fails if an
    /// interface of that name exists).
    pub fn create(name: &str) -> io::Result<Tap> {
        if if_index(name).is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("interface {name} exists")));
        }
        let mut tap = Tap { name: name.to_string(), queues: Vec::new() };
        tap.add_queue()?;
        netdev::set_mac(name, BACKEND_MAC)?;
        Ok(tap)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues open.
    pub fn nr_queues(&self) -> usize {
        self.queues.len()
    }

    /// Opens one more queue (`TUNSETIFF` of the same name).
    pub fn add_queue(&mut self) -> io::Result<()> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/net/tun: {e}")))?;
        let mut r = IfReq::new(&self.name)?;
        let flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
        r.data[..2].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: TUNSETIFF takes a struct ifreq.
        unsafe { netdev::ioctl_with(f.as_raw_fd(), TUNSETIFF, &mut r, &format!("TUNSETIFF {}", self.name))? };
        self.queues.push(f);
        Ok(())
    }

    /// Opens queues until there are `n`.
    pub fn ensure_queues(&mut self, n: usize) -> io::Result<()> {
        while self.queues.len() < n {
            self.add_queue()?;
        }
        Ok(())
    }

    /// A duplicate of queue `i`'s descriptor, for its worker.
    pub fn queue(&self, i: usize) -> io::Result<File> {
        self.queues.get(i).ok_or_else(|| io::Error::other(format!("no queue {i}")))?.try_clone()
    }

    /// `TUNSETOFFLOAD`: what dom0 may hand over (`TUN_F_*`).
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        let q = self.queues.first().ok_or_else(|| io::Error::other("no queue"))?;
        // The argument is the value itself, not a pointer.
        // SAFETY: TUNSETOFFLOAD takes an unsigned long by value.
        let r = unsafe { libc::ioctl(q.as_raw_fd(), TUNSETOFFLOAD as _, libc::c_ulong::from(flags)) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETOFFLOAD {}: {e}", self.name)));
        }
        Ok(())
    }

    /// Joins `bridge` and comes up (`vif-bridge online`).
    pub fn bridge_up(&self, bridge: &str) -> io::Result<()> {
        netdev::bridge_up(&self.name, bridge)
    }
}

/// Reads one frame (header included) from a queue's descriptor: its
/// length, or `None` when nothing is waiting.
pub fn read_frame(fd: &File, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// Writes one frame (header included) to a queue's descriptor; false
/// if the kernel refused it (a malformed header, or no room).
pub fn write_frame(fd: &File, frame: &[u8]) -> io::Result<bool> {
    // SAFETY: `frame` is valid for reads of its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINVAL | libc::EFAULT | libc::ENOBUFS | libc::ENOMEM) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(n as usize == frame.len())
}
