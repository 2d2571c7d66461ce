//! Errors that say which device operation failed and with which errno.
//!
//! Every failure of this crate is an `io::Error` whose kind follows the
//! errno and whose payload is a [`DevError`]: the operation (ioctl name and
//! its arguments, device path, hypercall) and the errno with its symbolic
//! name, so a log line alone tells what went wrong. [`errno`] recovers the
//! number from any `io::Error`, ours or std's.

use std::fmt;
use std::io;

use guest_abi::XenError;

/// A failed device operation: what was attempted and the errno it got.
#[derive(Debug)]
pub struct DevError {
    /// The operation, e.g. `IOCTL_EVTCHN_NOTIFY(port 5)`.
    pub op: String,
    /// The positive errno (Linux's; Xen's hypercall errors are the same numbers).
    pub errno: i32,
}

impl fmt::Display for DevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        write!(f, "{}: {}: {}", self.op, errno_name(self.errno), os)
    }
}

impl std::error::Error for DevError {}

/// An `io::Error` for `op` failing with `errno`.
pub fn dev_error(op: impl Into<String>, errno: i32) -> io::Error {
    let kind = io::Error::from_raw_os_error(errno).kind();
    io::Error::new(kind, DevError { op: op.into(), errno })
}

/// The errno of `err`: the OS error, or the one inside a [`DevError`].
pub fn errno(err: &io::Error) -> Option<i32> {
    if let Some(n) = err.raw_os_error() {
        return Some(n);
    }
    err.get_ref().and_then(|e| e.downcast_ref::<DevError>()).map(|d| d.errno)
}

/// The symbolic name of an errno: Xen's names (which are Linux's for the
/// same numbers), a few Linux-only ones the Xen devices return, else
/// `errno N`.
pub fn errno_name(errno: i32) -> String {
    if let Some(e) = XenError::from_errno(errno) {
        return format!("{e:?}").to_uppercase();
    }
    let linux_only = match errno {
        4 => "EINTR",
        25 => "ENOTTY",
        27 => "EFBIG",
        32 => "EPIPE",
        104 => "ECONNRESET",
        515 => "ENOIOCTLCMD",
        _ => return format!("errno {errno}"),
    };
    linux_only.to_string()
}

/// A caller error (bad argument, detected before any device call).
pub fn invalid_input(op: impl fmt::Display, why: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{op}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_error_keeps_its_errno_kind_and_says_what_failed() {
        let e = dev_error("IOCTL_EVTCHN_NOTIFY(port 5)", libc::ENOTCONN);
        assert_eq!(errno(&e), Some(libc::ENOTCONN));
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        let text = e.to_string();
        assert!(text.starts_with("IOCTL_EVTCHN_NOTIFY(port 5): ENOTCONN: "), "{text}");
    }

    #[test]
    fn errno_names_cover_xen_and_linux_only_numbers() {
        assert_eq!(errno_name(3), "ESRCH");
        assert_eq!(errno_name(7), "E2BIG");
        assert_eq!(errno_name(25), "ENOTTY");
        assert_eq!(errno_name(4242), "errno 4242");
        assert_eq!(errno(&io::Error::from_raw_os_error(13)), Some(13));
        assert_eq!(errno(&io::Error::other("x")), None);
    }
}
