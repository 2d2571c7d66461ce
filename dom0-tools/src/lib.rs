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

/// Makes a closed output pipe end the program quietly, as it does a C
/// tool (`xl uptime | head -1`): Rust ignores `SIGPIPE`, so without this
/// the next write to the closed pipe panics. For command-line tools only;
/// the daemons keep ignoring it and handle `EPIPE` on their sockets.
pub fn default_sigpipe() {
    // SAFETY: restoring a signal's default disposition touches no memory
    // of this program; it runs at the start of `main`, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
