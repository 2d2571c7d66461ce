//! [`Privcmd`]: `/dev/xen/privcmd`, the toolstack's door to the
//! hypervisor: raw hypercalls, domctl/sysctl through pinned bounce
//! buffers, version queries, domain listing and foreign mappings.
//!
//! Semantics: Linux 6.1 `drivers/xen/privcmd.c` (dom0 is unrestricted;
//! `HYPERCALL` passes the op and arguments through unchanged and returns
//! Xen's result, a negative value arriving as errno), Xen 4.17
//! `xen/common/domctl.c` (getdomaininfo returns the first domain whose ID
//! is at least the one asked for) and `tools/libs/{call,foreignmemory}`.

use std::io;
use std::os::fd::OwnedFd;

use guest_abi::domctl::{XenDomctl, XenDomctlGetdomaininfo, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_INTERFACE_VERSION};
use guest_abi::sysctl::{
    XenSysctl, XenSysctlGetdomaininfolist, XenSysctlPhysinfo, XEN_SYSCTL_GETDOMAININFOLIST,
    XEN_SYSCTL_INTERFACE_VERSION, XEN_SYSCTL_PHYSINFO,
};
use guest_abi::version::{
    XENVER_CAPABILITIES, XENVER_EXTRAVERSION, XENVER_VERSION, XEN_CAPABILITIES_INFO_LEN, XEN_EXTRAVERSION_LEN,
};
use guest_abi::xen::{HYPERVISOR_DOMCTL, HYPERVISOR_SYSCTL, HYPERVISOR_XEN_VERSION};
use guest_abi::GuestHandle;

use crate::error::{dev_error, errno_name, invalid_input};
use crate::hcall_buf::HypercallBuf;
use crate::mapping::{Mapping, Release};
use crate::sys::{self, PAGE_SIZE};
use crate::uapi;
use crate::DomainInfo;

/// Entries per `XEN_SYSCTL_getdomaininfolist` call (7 pages of buffer).
const DOMAININFO_BATCH: usize = 256;

/// An open `/dev/xen/privcmd` (and `/dev/xen/hypercall` for buffers, if
/// the kernel has it).
#[derive(Debug)]
pub struct Privcmd {
    fd: OwnedFd,
    hypercall_dev: Option<OwnedFd>,
}

/// Xen's name for a hypercall number, for error messages.
fn hypercall_name(op: u64) -> String {
    let name = match op as u32 {
        x if x == HYPERVISOR_DOMCTL => "domctl",
        x if x == HYPERVISOR_SYSCTL => "sysctl",
        x if x == HYPERVISOR_XEN_VERSION => "xen_version",
        x if x == guest_abi::xen::HYPERVISOR_MEMORY_OP => "memory_op",
        x if x == guest_abi::xen::HYPERVISOR_MMU_UPDATE => "mmu_update",
        x if x == guest_abi::xen::HYPERVISOR_MMUEXT_OP => "mmuext_op",
        x if x == guest_abi::xen::HYPERVISOR_EVENT_CHANNEL_OP => "event_channel_op",
        x if x == guest_abi::xen::HYPERVISOR_GRANT_TABLE_OP => "grant_table_op",
        _ => return format!("hypercall {op}"),
    };
    name.to_string()
}

/// Xen's name for the domctl commands xenish serves, for error messages.
fn domctl_name(cmd: u32) -> String {
    use guest_abi::domctl as d;
    let name = match cmd {
        d::XEN_DOMCTL_CREATEDOMAIN => "createdomain",
        d::XEN_DOMCTL_DESTROYDOMAIN => "destroydomain",
        d::XEN_DOMCTL_PAUSEDOMAIN => "pausedomain",
        d::XEN_DOMCTL_UNPAUSEDOMAIN => "unpausedomain",
        d::XEN_DOMCTL_GETDOMAININFO => "getdomaininfo",
        d::XEN_DOMCTL_MAX_MEM => "max_mem",
        d::XEN_DOMCTL_SETVCPUCONTEXT => "setvcpucontext",
        d::XEN_DOMCTL_MAX_VCPUS => "max_vcpus",
        d::XEN_DOMCTL_SCHEDULER_OP => "scheduler_op",
        _ => return format!("{cmd}"),
    };
    name.to_string()
}

/// Xen's name for the sysctl commands xenish serves, for error messages.
fn sysctl_name(cmd: u32) -> String {
    use guest_abi::sysctl as s;
    let name = match cmd {
        s::XEN_SYSCTL_READCONSOLE => "readconsole",
        s::XEN_SYSCTL_PHYSINFO => "physinfo",
        s::XEN_SYSCTL_SCHED_ID => "sched_id",
        s::XEN_SYSCTL_GETDOMAININFOLIST => "getdomaininfolist",
        _ => return format!("{cmd}"),
    };
    name.to_string()
}

/// The first per-frame error of a `MMAPBATCH_V2`, as (index, errno).
pub(crate) fn first_frame_error(errs: &[i32]) -> Option<(usize, i32)> {
    errs.iter().enumerate().find(|(_, &e)| e != 0).map(|(i, &e)| (i, e.saturating_abs()))
}

/// A NUL-terminated string from a buffer Xen filled.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd`, else xenfs' `/proc/xen/privcmd`, and
    /// `/dev/xen/hypercall` if present.
    pub fn open() -> io::Result<Privcmd> {
        let fd = sys::open_first(&["/dev/xen/privcmd", "/proc/xen/privcmd"], 0)?;
        let hypercall_dev = sys::open_rw("/dev/xen/hypercall", 0).ok();
        Ok(Privcmd { fd, hypercall_dev })
    }

    /// Pinned memory for hypercall arguments (see [`HypercallBuf`]): put
    /// anything a guest handle points to here.
    pub fn alloc_buffer(&self, len: usize) -> io::Result<HypercallBuf> {
        HypercallBuf::new(self.hypercall_dev.as_ref(), len)
    }

    /// `IOCTL_PRIVCMD_HYPERCALL`: hypercall `op` with `args`, returning
    /// Xen's non-negative result; a negative Xen errno becomes the error.
    ///
    /// # Safety
    /// Xen acts on the arguments with this process's rights and page
    /// tables: pointer arguments must point to live memory of the layout
    /// `op` expects (pinned, see [`Privcmd::alloc_buffer`]) that nothing else
    /// references during the call, and the operation must not break memory
    /// Rust code relies on (e.g. remapping this process's pages).
    pub unsafe fn hypercall(&self, op: u64, args: [u64; 5]) -> io::Result<i64> {
        // SAFETY: forwarded contract.
        unsafe { self.hypercall_as(op, args, || hypercall_name(op)) }
    }

    /// [`Privcmd::hypercall`], the error naming `what()`.
    ///
    /// # Safety
    /// As for [`Privcmd::hypercall`].
    unsafe fn hypercall_as(&self, op: u64, args: [u64; 5], what: impl FnOnce() -> String) -> io::Result<i64> {
        let mut call = uapi::PrivcmdHypercall { op, arg: args };
        // SAFETY: `call` is the ioctl's struct, alive for the call; what
        // the hypercall does with its arguments is the caller's contract.
        let ret = unsafe { sys::ioctl(&self.fd, uapi::IOCTL_PRIVCMD_HYPERCALL, std::ptr::from_mut(&mut call) as u64) };
        ret.map_err(|errno| dev_error(format!("IOCTL_PRIVCMD_HYPERCALL({})", what()), errno))
    }

    /// `XEN_DOMCTL_*` (hypercall 36) with `d`, interface version set to
    /// 0x15, through a pinned bounce buffer; `d` is updated with what Xen
    /// wrote back (also on failure, as libxc does).
    ///
    /// Guest handles inside `d` are followed by Xen: point them into a
    /// [`HypercallBuf`] that outlives the call.
    pub fn domctl(&self, d: &mut XenDomctl) -> io::Result<()> {
        d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
        let mut buf = self.alloc_buffer(size_of::<XenDomctl>())?;
        buf.write_obj(0, d)?;
        let what = || format!("domctl {} domain {}", domctl_name(d.cmd), d.domain);
        // SAFETY: the only pointer argument is the pinned buffer holding a
        // complete `xen_domctl`; handles inside it are the caller's (doc).
        let ret = unsafe { self.hypercall_as(HYPERVISOR_DOMCTL.into(), [buf.addr(), 0, 0, 0, 0], what) };
        *d = buf.read_obj(0)?;
        ret.map(drop)
    }

    /// `XEN_SYSCTL_*` (hypercall 35) with `s`, interface version 0x15,
    /// through a pinned bounce buffer; as [`Privcmd::domctl`].
    pub fn sysctl(&self, s: &mut XenSysctl) -> io::Result<()> {
        s.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
        let mut buf = self.alloc_buffer(size_of::<XenSysctl>())?;
        buf.write_obj(0, s)?;
        let what = || format!("sysctl {}", sysctl_name(s.cmd));
        // SAFETY: as in `domctl`.
        let ret = unsafe { self.hypercall_as(HYPERVISOR_SYSCTL.into(), [buf.addr(), 0, 0, 0, 0], what) };
        *s = buf.read_obj(0)?;
        ret.map(drop)
    }

    /// `XENVER_version`: (major, minor).
    pub fn xen_version(&self) -> io::Result<(u32, u32)> {
        let args = [XENVER_VERSION.into(), 0, 0, 0, 0];
        // SAFETY: XENVER_version reads and writes no memory.
        let v = unsafe { self.hypercall_as(HYPERVISOR_XEN_VERSION.into(), args, || "xen_version version".into())? };
        Ok(((v as u64 >> 16) as u32 & 0xffff, v as u32 & 0xffff))
    }

    /// A `xen_version` sub-op that fills a string buffer of `len` bytes.
    fn version_string(&self, cmd: u32, len: usize, name: &str) -> io::Result<String> {
        let buf = self.alloc_buffer(len)?;
        let args = [cmd.into(), buf.addr(), 0, 0, 0];
        // SAFETY: Xen writes at most `len` bytes (the sub-op's fixed size)
        // into the pinned buffer, which is at least that long.
        unsafe { self.hypercall_as(HYPERVISOR_XEN_VERSION.into(), args, || format!("xen_version {name}"))? };
        let mut bytes = vec![0u8; len];
        buf.read(0, &mut bytes)?;
        Ok(c_string(&bytes))
    }

    /// `XENVER_extraversion`, e.g. `".0"`.
    pub fn xen_extraversion(&self) -> io::Result<String> {
        self.version_string(XENVER_EXTRAVERSION, XEN_EXTRAVERSION_LEN, "extraversion")
    }

    /// `XENVER_capabilities`, e.g. `"xen-3.0-x86_64 hvm-3.0-x86_32 ..."`.
    pub fn xen_capabilities(&self) -> io::Result<String> {
        self.version_string(XENVER_CAPABILITIES, XEN_CAPABILITIES_INFO_LEN, "capabilities")
    }

    /// `XEN_SYSCTL_physinfo`.
    pub fn physinfo(&self) -> io::Result<XenSysctlPhysinfo> {
        let mut s = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        self.sysctl(&mut s)?;
        Ok(s.physinfo())
    }

    /// `XEN_DOMCTL_getdomaininfo` for `domid`; `None` if no such domain.
    /// (Xen 4.17 answers with the first domain whose ID is at least
    /// `domid`, or `ESRCH` if there is none; both mean "not `domid`".)
    pub fn getdomaininfo(&self, domid: u16) -> io::Result<Option<DomainInfo>> {
        let mut d = XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, domid);
        match self.domctl(&mut d) {
            Ok(()) => {}
            Err(e) if crate::errno(&e) == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        }
        let info = DomainInfo::from(&d.getdomaininfo());
        Ok((info.domid == domid).then_some(info))
    }

    /// Every domain, in ID order (`XEN_SYSCTL_getdomaininfolist` in batches).
    pub fn list_domains(&self) -> io::Result<Vec<DomainInfo>> {
        let entry = size_of::<XenDomctlGetdomaininfo>();
        let buf = self.alloc_buffer(DOMAININFO_BATCH * entry)?;
        let mut out = Vec::new();
        let mut first: u32 = 0;
        while first < u32::from(guest_abi::xen::DOMID_FIRST_RESERVED) {
            let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
            s.set_getdomaininfolist(XenSysctlGetdomaininfolist {
                first_domain: first as u16,
                _pad0: [0; 2],
                max_domains: DOMAININFO_BATCH as u32,
                buffer: GuestHandle::new(buf.addr()),
                num_domains: 0,
                _pad1: [0; 4],
            });
            self.sysctl(&mut s)?;
            let n = s.getdomaininfolist().num_domains as usize;
            if n > DOMAININFO_BATCH {
                return Err(dev_error(
                    format!("sysctl getdomaininfolist: {n} entries for a {DOMAININFO_BATCH}-entry buffer"),
                    libc::EIO,
                ));
            }
            for i in 0..n {
                let raw: XenDomctlGetdomaininfo = buf.read_obj(i * entry)?;
                out.push(DomainInfo::from(&raw));
            }
            match out.last() {
                Some(last) if n == DOMAININFO_BATCH => first = u32::from(last.domid) + 1,
                _ => break,
            }
        }
        Ok(out)
    }

    /// Maps `mfns` of `domid` (MFNs for a PV domain) contiguously with
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2`, read-only unless `writable`. A frame
    /// Xen refuses fails the whole call, naming its index and errno.
    ///
    /// To map this domain's own frames, name it `DOMID_SELF`: Xen's
    /// `get_pg_owner` refuses a domain naming itself by its ID (`ESRCH`).
    pub fn map_foreign(&self, domid: u16, mfns: &[u64], writable: bool) -> io::Result<Mapping> {
        let op = || format!("IOCTL_PRIVCMD_MMAPBATCH_V2(dom {domid}, {} frames)", mfns.len());
        let num = u32::try_from(mfns.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid_input(op(), "no frames or too many"))?;
        let len = mfns.len().checked_mul(PAGE_SIZE).ok_or_else(|| invalid_input(op(), "too many frames"))?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let ptr = sys::mmap_shared(&self.fd, len, prot, 0, &op())?;
        // SAFETY: a fresh mapping of `len` bytes that only this Mapping owns;
        // dropping it on the error paths below unmaps it.
        let mapping = unsafe { Mapping::from_raw(ptr, len, Release::Unmap) };
        let mut errs = vec![0i32; mfns.len()];
        let mut batch = uapi::PrivcmdMmapbatchV2 {
            num,
            dom: domid,
            _pad: 0,
            addr: ptr.as_ptr() as u64,
            arr: mfns.as_ptr() as u64,
            err: errs.as_mut_ptr() as u64,
        };
        // SAFETY: `batch` is the ioctl's struct; `arr` and `err` point to
        // `num` readable u64s and writable i32s alive for the call; `addr`
        // covers exactly the privcmd VMA mapped above.
        let ret =
            unsafe { sys::ioctl(&self.fd, uapi::IOCTL_PRIVCMD_MMAPBATCH_V2, std::ptr::from_mut(&mut batch) as u64) };
        if let Some((i, errno)) = first_frame_error(&errs) {
            return Err(dev_error(format!("{}: frame index {i} ({})", op(), errno_name(errno)), errno));
        }
        ret.map_err(|errno| dev_error(op(), errno))?;
        Ok(mapping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Privcmd over `/dev/null`: every ioctl fails with ENOTTY, which
    /// shows how failures reach the caller.
    fn null_privcmd() -> Privcmd {
        let fd = sys::open_rw("/dev/null", 0).unwrap_or_else(|e| panic!("{e}"));
        Privcmd { fd, hypercall_dev: None }
    }

    #[test]
    fn a_failing_domctl_names_the_ioctl_the_command_and_the_errno() {
        let p = null_privcmd();
        let Err(e) = p.getdomaininfo(0) else { panic!("ioctl on /dev/null succeeded") };
        assert_eq!(crate::errno(&e), Some(libc::ENOTTY));
        let text = e.to_string();
        assert!(text.starts_with("IOCTL_PRIVCMD_HYPERCALL(domctl getdomaininfo domain 0): ENOTTY"), "{text}");
        let Err(e) = p.xen_version() else { panic!("ioctl on /dev/null succeeded") };
        assert!(e.to_string().contains("xen_version version"), "{e}");
        let Err(e) = p.list_domains() else { panic!("ioctl on /dev/null succeeded") };
        assert!(e.to_string().contains("sysctl getdomaininfolist"), "{e}");
    }

    #[test]
    fn map_foreign_refuses_an_empty_frame_list() {
        let Err(e) = null_privcmd().map_foreign(1, &[], false) else { panic!("mapped nothing") };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_first_failing_frame_is_named() {
        assert_eq!(first_frame_error(&[0, 0, 0]), None);
        assert_eq!(first_frame_error(&[0, -1, -22]), Some((1, 1)));
        assert_eq!(first_frame_error(&[i32::MIN]), Some((0, i32::MAX)));
    }

    #[test]
    fn error_names_say_which_call() {
        assert_eq!(domctl_name(5), "getdomaininfo");
        assert_eq!(domctl_name(99), "99");
        assert_eq!(sysctl_name(6), "getdomaininfolist");
        assert_eq!(hypercall_name(36), "domctl");
        assert_eq!(hypercall_name(7), "hypercall 7");
        assert_eq!(c_string(b"xen-3.0-x86_64\0junk"), "xen-3.0-x86_64");
        assert_eq!(c_string(b"nonul"), "nonul");
    }

    #[test]
    fn domctl_and_sysctl_envelopes_have_xen_4_17_sizes() {
        assert_eq!(size_of::<XenDomctl>(), 144);
        assert_eq!(size_of::<XenSysctl>(), 136);
        assert_eq!(size_of::<XenDomctlGetdomaininfo>(), 112);
    }
}
