//! The XenStore wire protocol (`io/xs_wire.h`): message types, header, ring interface.

xen_consts! {
    "io/xs_wire.h";
    XS_DEBUG: u32 = 0, "XS_DEBUG";
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

xen_struct! {
    "io/xs_wire.h", "struct xsd_sockmsg", 16;
    /// `struct xsd_sockmsg` (io/xs_wire.h).
    pub struct XsdSockmsg {
        /// `type`
        type_: u32 = "type",
        /// `req_id`
        req_id: u32 = "req_id",
        /// `tx_id`
        tx_id: u32 = "tx_id",
        /// `len`
        len: u32 = "len",
    }
}

xen_struct! {
    "io/xs_wire.h", "struct xenstore_domain_interface", 2076;
    /// `struct xenstore_domain_interface` (io/xs_wire.h).
    pub struct XenstoreDomainInterface {
        /// `req`
        req: [u8; 1024] = "req" opaque,
        /// `rsp`
        rsp: [u8; 1024] = "rsp" opaque,
        /// `req_cons`
        req_cons: u32 = "req_cons",
        /// `req_prod`
        req_prod: u32 = "req_prod",
        /// `rsp_cons`
        rsp_cons: u32 = "rsp_cons",
        /// `rsp_prod`
        rsp_prod: u32 = "rsp_prod",
        /// `server_features`
        server_features: u32 = "server_features",
        /// `connection`
        connection: u32 = "connection",
        /// `error`
        error: u32 = "error",
    }
}

/// Every struct of this module, for the conformance test.
#[doc(hidden)]
pub const STRUCTS: &[crate::registry::StructLayout] = &[
    <XsdSockmsg as crate::registry::Described>::LAYOUT,
    <XenstoreDomainInterface as crate::registry::Described>::LAYOUT,
];
