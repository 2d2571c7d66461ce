//! The XenStore wire protocol (`io/xs_wire.h`): message types and header,
//! the ring page, error strings.
//!
//! A message is an [`XsdSockmsg`] header followed by `len` payload bytes
//! (at most `XENSTORE_PAYLOAD_MAX`): NUL-separated strings. Errors travel as
//! `XS_ERROR` messages whose payload is a name from [`XSD_ERRORS`].

use crate::errno::XenError;
use crate::registry::{int_entries, str_entries, Const, StrConst, Table};

xen_consts! {
    "io/xs_wire.h";
    XS_CONTROL: u32 = 0, "XS_CONTROL";
    XS_DEBUG: u32 = 0, "XS_DEBUG";
    XS_DIRECTORY: u32 = 1, "XS_DIRECTORY";
    XS_READ: u32 = 2, "XS_READ";
    XS_GET_PERMS: u32 = 3, "XS_GET_PERMS";
    XS_WATCH: u32 = 4, "XS_WATCH";
    XS_UNWATCH: u32 = 5, "XS_UNWATCH";
    XS_TRANSACTION_START: u32 = 6, "XS_TRANSACTION_START";
    XS_TRANSACTION_END: u32 = 7, "XS_TRANSACTION_END";
    XS_INTRODUCE: u32 = 8, "XS_INTRODUCE";
    XS_RELEASE: u32 = 9, "XS_RELEASE";
    XS_GET_DOMAIN_PATH: u32 = 10, "XS_GET_DOMAIN_PATH";
    XS_WRITE: u32 = 11, "XS_WRITE";
    XS_MKDIR: u32 = 12, "XS_MKDIR";
    XS_RM: u32 = 13, "XS_RM";
    XS_SET_PERMS: u32 = 14, "XS_SET_PERMS";
    XS_WATCH_EVENT: u32 = 15, "XS_WATCH_EVENT";
    XS_ERROR: u32 = 16, "XS_ERROR";
    XS_IS_DOMAIN_INTRODUCED: u32 = 17, "XS_IS_DOMAIN_INTRODUCED";
    XS_RESUME: u32 = 18, "XS_RESUME";
    XS_SET_TARGET: u32 = 19, "XS_SET_TARGET";
    XS_RESET_WATCHES: u32 = 21, "XS_RESET_WATCHES";
    XS_DIRECTORY_PART: u32 = 22, "XS_DIRECTORY_PART";
    XS_TYPE_COUNT: u32 = 23, "XS_TYPE_COUNT";
    XS_INVALID: u32 = 0xffff, "XS_INVALID";
    XS_WATCH_PATH: u32 = 0, "XS_WATCH_PATH";
    XS_WATCH_TOKEN: u32 = 1, "XS_WATCH_TOKEN";
    XENSTORE_RING_SIZE: u32 = 0x400, "XENSTORE_RING_SIZE";
    XENSTORE_PAYLOAD_MAX: u32 = 0x1000, "XENSTORE_PAYLOAD_MAX";
    XENSTORE_ABS_PATH_MAX: u32 = 0xc00, "XENSTORE_ABS_PATH_MAX";
    XENSTORE_REL_PATH_MAX: u32 = 0x800, "XENSTORE_REL_PATH_MAX";
    XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1, "XENSTORE_SERVER_FEATURE_RECONNECTION";
    XENSTORE_SERVER_FEATURE_ERROR: u32 = 2, "XENSTORE_SERVER_FEATURE_ERROR";
    XENSTORE_CONNECTED: u32 = 0, "XENSTORE_CONNECTED";
    XENSTORE_RECONNECT: u32 = 1, "XENSTORE_RECONNECT";
    XENSTORE_ERROR_NONE: u32 = 0, "XENSTORE_ERROR_NONE";
    XENSTORE_ERROR_COMM: u32 = 1, "XENSTORE_ERROR_COMM";
    XENSTORE_ERROR_RINGIDX: u32 = 2, "XENSTORE_ERROR_RINGIDX";
    XENSTORE_ERROR_PROTO: u32 = 3, "XENSTORE_ERROR_PROTO";
}

xen_strs! {
    "io/xs_wire.h";
    XS_WRITE_NONE = "NONE", "XS_WRITE_NONE";
    XS_WRITE_CREATE = "CREATE", "XS_WRITE_CREATE";
    XS_WRITE_CREATE_EXCL = "CREATE|EXCL", "XS_WRITE_CREATE_EXCL";
}

xen_struct! {
    "io/xs_wire.h", "struct xsd_sockmsg", 16;
    /// `struct xsd_sockmsg` (io/xs_wire.h): a message header.
    pub struct XsdSockmsg {
        /// `type`: `XS_*` (see [`XsdSockmsgType`]).
        type_: u32 = "type",
        /// `req_id`: echoed in the reply.
        req_id: u32 = "req_id",
        /// `tx_id`: the transaction, 0 for none.
        tx_id: u32 = "tx_id",
        /// `len`: payload bytes that follow.
        len: u32 = "len",
    }
}

xen_struct! {
    "io/xs_wire.h", "struct xenstore_domain_interface", 2076;
    /// `struct xenstore_domain_interface` (io/xs_wire.h): the XenStore ring
    /// page, two byte rings with free-running `u32` indices
    /// (`MASK_XENSTORE_IDX`).
    pub struct XenstoreDomainInterface {
        /// `req`: requests to the XenStore daemon.
        req: [u8; 1024] = "req" chars,
        /// `rsp`: replies and watch events.
        rsp: [u8; 1024] = "rsp" chars,
        /// `req_cons`
        req_cons: u32 = "req_cons",
        /// `req_prod`
        req_prod: u32 = "req_prod",
        /// `rsp_cons`
        rsp_cons: u32 = "rsp_cons",
        /// `rsp_prod`
        rsp_prod: u32 = "rsp_prod",
        /// `server_features`: `XENSTORE_SERVER_FEATURE_*`.
        server_features: u32 = "server_features",
        /// `connection`: `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
        connection: u32 = "connection",
        /// `error`: `XENSTORE_ERROR_*`.
        error: u32 = "error",
    }
}

xen_structs!(XsdSockmsg, XenstoreDomainInterface);

impl XenstoreDomainInterface {
    /// `MASK_XENSTORE_IDX`: the byte a ring index designates.
    pub const fn mask(idx: u32) -> usize {
        (idx & (XENSTORE_RING_SIZE - 1)) as usize
    }
}

xen_enum! {
    /// A message type (`enum xsd_sockmsg_type`), as read from a header.
    pub enum XsdSockmsgType: u32 {
        /// `XS_CONTROL` (alias `XS_DEBUG`)
        Control = XS_CONTROL,
        /// `XS_DIRECTORY`
        Directory = XS_DIRECTORY,
        /// `XS_READ`
        Read = XS_READ,
        /// `XS_GET_PERMS`
        GetPerms = XS_GET_PERMS,
        /// `XS_WATCH`
        Watch = XS_WATCH,
        /// `XS_UNWATCH`
        Unwatch = XS_UNWATCH,
        /// `XS_TRANSACTION_START`
        TransactionStart = XS_TRANSACTION_START,
        /// `XS_TRANSACTION_END`
        TransactionEnd = XS_TRANSACTION_END,
        /// `XS_INTRODUCE`
        Introduce = XS_INTRODUCE,
        /// `XS_RELEASE`
        Release = XS_RELEASE,
        /// `XS_GET_DOMAIN_PATH`
        GetDomainPath = XS_GET_DOMAIN_PATH,
        /// `XS_WRITE`
        Write = XS_WRITE,
        /// `XS_MKDIR`
        Mkdir = XS_MKDIR,
        /// `XS_RM`
        Rm = XS_RM,
        /// `XS_SET_PERMS`
        SetPerms = XS_SET_PERMS,
        /// `XS_WATCH_EVENT`
        WatchEvent = XS_WATCH_EVENT,
        /// `XS_ERROR`
        Error = XS_ERROR,
        /// `XS_IS_DOMAIN_INTRODUCED`
        IsDomainIntroduced = XS_IS_DOMAIN_INTRODUCED,
        /// `XS_RESUME`
        Resume = XS_RESUME,
        /// `XS_SET_TARGET`
        SetTarget = XS_SET_TARGET,
        /// `XS_RESET_WATCHES`
        ResetWatches = XS_RESET_WATCHES,
        /// `XS_DIRECTORY_PART`
        DirectoryPart = XS_DIRECTORY_PART,
    }
}

const XSD: [(XenError, &str); 16] = [
    (XenError::Einval, "EINVAL"),
    (XenError::Eacces, "EACCES"),
    (XenError::Eexist, "EEXIST"),
    (XenError::Eisdir, "EISDIR"),
    (XenError::Enoent, "ENOENT"),
    (XenError::Enomem, "ENOMEM"),
    (XenError::Enospc, "ENOSPC"),
    (XenError::Eio, "EIO"),
    (XenError::Enotempty, "ENOTEMPTY"),
    (XenError::Enosys, "ENOSYS"),
    (XenError::Erofs, "EROFS"),
    (XenError::Ebusy, "EBUSY"),
    (XenError::Eagain, "EAGAIN"),
    (XenError::Eisconn, "EISCONN"),
    (XenError::E2big, "E2BIG"),
    (XenError::Eperm, "EPERM"),
];

/// `xsd_errors` (io/xs_wire.h): the errors XenStore reports, each with the
/// name an `XS_ERROR` payload carries.
pub static XSD_ERRORS: [(XenError, &str); 16] = XSD;

/// The `XS_ERROR` payload for `err`, if XenStore has a name for it.
pub fn xsd_error_name(err: XenError) -> Option<&'static str> {
    XSD_ERRORS.iter().find(|(e, _)| *e == err).map(|(_, name)| *name)
}

/// The error an `XS_ERROR` payload names.
pub fn xsd_error_from_name(name: &[u8]) -> Option<XenError> {
    XSD_ERRORS.iter().find(|(_, n)| n.as_bytes() == name).map(|(e, _)| *e)
}

const fn xsd_names() -> [&'static str; 16] {
    let mut out = [""; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = XSD[i].1;
        i += 1;
    }
    out
}

const fn xsd_errnos() -> [i128; 16] {
    let mut out = [0; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = XSD[i].0.errno() as i128;
        i += 1;
    }
    out
}

/// This module's tables, for the conformance test.
#[doc(hidden)]
pub const TABLES: &[Table] = &[Table {
    rust: "XSD_ERRORS",
    c_len: "sizeof(xsd_errors) / sizeof(xsd_errors[0])",
    len: XSD.len(),
    header: "io/xs_wire.h",
}];

/// The string entries of this module's tables, for the conformance test.
#[doc(hidden)]
pub const TABLE_STRS: &[StrConst] = &str_entries("XSD_ERRORS", "xsd_errors[#].errstring", "io/xs_wire.h", xsd_names());

/// The integer entries of this module's tables, for the conformance test.
#[doc(hidden)]
pub const TABLE_CONSTS: &[Const] = &int_entries("XSD_ERRORS", "xsd_errors[#].errnum", "io/xs_wire.h", xsd_errnos());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_round_trip() {
        assert_eq!(xsd_error_name(XenError::Enoent), Some("ENOENT"));
        assert_eq!(xsd_error_from_name(b"EACCES"), Some(XenError::Eacces));
        assert_eq!(xsd_error_name(XenError::Efault), None);
        assert_eq!(XsdSockmsgType::try_from(XS_DIRECTORY_PART), Ok(XsdSockmsgType::DirectoryPart));
        assert!(XsdSockmsgType::try_from(20).is_err(), "XS_RESTRICT was removed");
    }
}
