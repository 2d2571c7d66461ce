//! Network interfaces of the control domain, by ioctl: look one up, set
//! its MAC, bring it up, add it to a bridge — what Xen's `vif-bridge`
//! hotplug script does with `ip link set <dev> master <bridge> up`, for
//! the TAP devices of `xenish-netback` and the `vifN.M` devices of
//! Linux's netback.
//! Semantics: L:`net/core/dev_ioctl.c`, `net/bridge/br_ioctl.c`;
//! X:`tools/hotplug/Linux/xen-network-common.sh add_to_bridge`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `SIOCGIFFLAGS`.
const SIOCGIFFLAGS: u64 = 0x8913;
/// `SIOCSIFFLAGS`.
const SIOCSIFFLAGS: u64 = 0x8914;
/// `SIOCSIFHWADDR`.
const SIOCSIFHWADDR: u64 = 0x8924;
/// `SIOCBRADDIF`.
const SIOCBRADDIF: u64 = 0x89a2;
/// `IFF_UP`.
const IFF_UP: u16 = 1;
/// `ARPHRD_ETHER`.
const ARPHRD_ETHER: u16 = 1;
/// Longest interface name (`IFNAMSIZ - 1`).
pub const MAX_NAME: usize = 15;

/// `struct ifreq`: a name and a 24-byte union.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IfReq {
    /// `ifr_name`, NUL-padded.
    pub name: [u8; 16],
    /// `ifr_ifru`.
    pub data: [u8; 24],
}

impl IfReq {
    /// A request for interface `name` (checked: 1 to 15 bytes, no `/`,
    /// blank or NUL).
    pub fn new(name: &str) -> io::Result<IfReq> {
        if !valid_name(name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}")));
        }
        let mut r = IfReq { name: [0; 16], data: [0; 24] };
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(r)
    }
}

/// Whether `name` can name an interface.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.contains(['/', ' ', '\0', ':']) && name != "." && name != ".."
}

/// `ioctl(fd, request, &mut arg)`, failing with `what` and the errno.
///
/// # Safety
/// `T` must be the argument struct `request` takes.
pub unsafe fn ioctl_with<T>(fd: RawFd, request: u64, arg: &mut T, what: &str) -> io::Result<()> {
    // SAFETY: `arg` is the struct `request` takes (the caller's contract)
    // and lives for the call; the kernel touches only its bytes.
    let r = unsafe { libc::ioctl(fd, request as _, std::ptr::from_mut(arg)) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// A socket for the interface ioctls.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain system call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The index of interface `name`, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string alive for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Sets interface `name`'s Ethernet address.
pub fn set_mac(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let sock = control_socket()?;
    let mut r = IfReq::new(name)?;
    r.data[..2].copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
    r.data[2..8].copy_from_slice(&mac);
    // SAFETY: SIOCSIFHWADDR takes a struct ifreq.
    unsafe { ioctl_with(sock.as_raw_fd(), SIOCSIFHWADDR, &mut r, &format!("SIOCSIFHWADDR {name}")) }
}

/// Brings interface `name` up.
pub fn set_up(name: &str) -> io::Result<()> {
    let sock = control_socket()?;
    let mut r = IfReq::new(name)?;
    // SAFETY: SIOCGIFFLAGS takes a struct ifreq.
    unsafe { ioctl_with(sock.as_raw_fd(), SIOCGIFFLAGS, &mut r, &format!("SIOCGIFFLAGS {name}"))? };
    let flags = u16::from_ne_bytes([r.data[0], r.data[1]]) | IFF_UP;
    r.data[..2].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: SIOCSIFFLAGS takes a struct ifreq.
    unsafe { ioctl_with(sock.as_raw_fd(), SIOCSIFFLAGS, &mut r, &format!("SIOCSIFFLAGS {name}")) }
}

/// Adds interface `name` to `bridge` (`SIOCBRADDIF`).
pub fn join_bridge(name: &str, bridge: &str) -> io::Result<()> {
    let index =
        if_index(name).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}")))?;
    if if_index(bridge).is_none() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("bridge {bridge} does not exist")));
    }
    let sock = control_socket()?;
    let mut r = IfReq::new(bridge)?;
    r.data[..4].copy_from_slice(&(index as i32).to_ne_bytes());
    // SAFETY: SIOCBRADDIF takes a struct ifreq carrying an ifindex.
    unsafe { ioctl_with(sock.as_raw_fd(), SIOCBRADDIF, &mut r, &format!("adding {name} to bridge {bridge}")) }
}

/// What `vif-bridge online` does: `name` joins `bridge` and comes up.
pub fn bridge_up(name: &str, bridge: &str) -> io::Result<()> {
    join_bridge(name, bridge)?;
    set_up(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(IfReq::new("vif5.0").is_ok());
        assert!(IfReq::new("vif65535.65535").is_ok());
        for bad in ["", "a-very-long-name-x", "a/b", "a b", ".."] {
            assert!(IfReq::new(bad).is_err(), "{bad}");
        }
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(if_index("surely-not-here"), None);
    }
}
