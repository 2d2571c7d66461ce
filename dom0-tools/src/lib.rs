//! dom0-tools: the toolstack's shared code for the control domain's
//! binaries (static Linux programs in a Linux 6.1 PV dom0, on xenish and
//! on Xen 4.17 alike).
//!
//! - [`xs_client`]: a XenStore client (wire protocol over xenstored's
//!   socket or `/dev/xen/xenbus`), used by the `xenstore-*` tools;
//! - [`netdev`]: network interfaces by ioctl (MAC, up, bridge), for the
//!   net backend and xl's vifs;
//! - device access is the `xendev` crate, re-exported as [`xendev`].
//!
//! Binaries: `xenstore` (multi-call `xenstore-read`, `-write`, `-ls`, ...,
//! Xen 4.17's options and output) and `xen-devcheck` (a self-test of the
//! Xen device files).

pub mod netdev;
pub mod xs_client;

pub use xendev;
