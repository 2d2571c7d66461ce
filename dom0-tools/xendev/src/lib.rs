//! Safe bindings to Linux's Xen device files, for dom0 programs.
//!
//! The toolstack reaches the hypervisor the way Xen's own libraries do,
//! through the devices of a Linux 6.1 PV dom0, on xenish and on Xen 4.17:
//!
//! | device | type | Xen library it replaces |
//! |---|---|---|
//! | `/dev/xen/privcmd` (+ `/dev/xen/hypercall`) | [`Privcmd`] | libxencall, libxenforeignmemory, libxc's domctl/sysctl |
//! | `/dev/xen/evtchn` | [`Evtchn`] | libxenevtchn |
//! | `/dev/xen/gntdev` | [`Gntdev`] | libxengnttab |
//! | `/dev/xen/gntalloc` | [`Gntalloc`] | libxengntshr |
//! | `/dev/xen/xenbus_backend`, `/proc/xen/xsd_{port,kva}` | [`XenbusBackend`], [`xsd_port`], [`xsd_kva`] | xenstored's dom0 setup |
//!
//! Memory shared with Xen or another domain is a [`Mapping`], unmapped
//! (and released to its device) on drop. Every error is an `io::Error`
//! that names the failing operation and errno ([`DevError`]); [`errno`]
//! gets the number back. The ABI itself (ioctl numbers, structs) is in
//! [`uapi`]; hypercall argument layouts come from `guest-abi`.
//!
//! Only Linux on x86_64 is supported (the uapi layouts are x86_64's); the
//! crate builds and its layout tests run on any Linux host.

mod domain_info;
mod error;
mod evtchn;
mod gntalloc;
mod gntdev;
mod hcall_buf;
mod mapping;
mod privcmd;
mod sys;
pub mod uapi;
mod xenbus;

pub use domain_info::DomainInfo;
pub use error::{errno, errno_name, DevError};
pub use evtchn::Evtchn;
pub use gntalloc::{Gntalloc, GrantAlloc};
pub use gntdev::{gntst_name, CopyDest, CopySource, Gntdev, GrantAddr, GrantCopySegment};
pub use hcall_buf::HypercallBuf;
pub use mapping::Mapping;
pub use privcmd::Privcmd;
pub use sys::PAGE_SIZE;
pub use xenbus::{xsd_kva, xsd_port, XenbusBackend};
