//! The network device protocol (`io/netif.h`): tx/rx requests and responses, flags.

xen_consts! {
    "io/netif.h";
    XEN_NETIF_NR_SLOTS_MIN: u32 = 0x12, "XEN_NETIF_NR_SLOTS_MIN";
    XEN_NETIF_CTRL_HASH_TYPE_IPV4_BIT: u32 = 0, "_XEN_NETIF_CTRL_HASH_TYPE_IPV4";
    XEN_NETIF_CTRL_HASH_TYPE_IPV4: u32 = 1, "XEN_NETIF_CTRL_HASH_TYPE_IPV4";
    XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP_BIT: u32 = 1, "_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP";
    XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP: u32 = 2, "XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP";
    XEN_NETIF_CTRL_HASH_TYPE_IPV6_BIT: u32 = 2, "_XEN_NETIF_CTRL_HASH_TYPE_IPV6";
    XEN_NETIF_CTRL_HASH_TYPE_IPV6: u32 = 4, "XEN_NETIF_CTRL_HASH_TYPE_IPV6";
    XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP_BIT: u32 = 3, "_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP";
    XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP: u32 = 8, "XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP";
    XEN_NETIF_CTRL_HASH_ALGORITHM_NONE: u32 = 0, "XEN_NETIF_CTRL_HASH_ALGORITHM_NONE";
    XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ: u32 = 1, "XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ";
    XEN_NETIF_CTRL_TYPE_INVALID: u32 = 0, "XEN_NETIF_CTRL_TYPE_INVALID";
    XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u32 = 1, "XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS";
    XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u32 = 2, "XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS";
    XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u32 = 3, "XEN_NETIF_CTRL_TYPE_SET_HASH_KEY";
    XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u32 = 4, "XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE";
    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u32 = 5, "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE";
    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u32 = 6, "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING";
    XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u32 = 7, "XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM";
    XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u32 = 8, "XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE";
    XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u32 = 9, "XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING";
    XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u32 = 0xa, "XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING";
    XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0, "XEN_NETIF_CTRL_STATUS_SUCCESS";
    XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1, "XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED";
    XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2, "XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER";
    XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3, "XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW";
    XEN_NETIF_CTRLF_GREF_READONLY_BIT: u32 = 0, "_XEN_NETIF_CTRLF_GREF_readonly";
    XEN_NETIF_CTRLF_GREF_READONLY: u32 = 1, "XEN_NETIF_CTRLF_GREF_readonly";
    NETTXF_CSUM_BLANK_BIT: u32 = 0, "_NETTXF_csum_blank";
    NETTXF_CSUM_BLANK: u32 = 1, "NETTXF_csum_blank";
    NETTXF_DATA_VALIDATED_BIT: u32 = 1, "_NETTXF_data_validated";
    NETTXF_DATA_VALIDATED: u32 = 2, "NETTXF_data_validated";
    NETTXF_MORE_DATA_BIT: u32 = 2, "_NETTXF_more_data";
    NETTXF_MORE_DATA: u32 = 4, "NETTXF_more_data";
    NETTXF_EXTRA_INFO_BIT: u32 = 3, "_NETTXF_extra_info";
    NETTXF_EXTRA_INFO: u32 = 8, "NETTXF_extra_info";
    XEN_NETIF_MAX_TX_SIZE: u32 = 0xffff, "XEN_NETIF_MAX_TX_SIZE";
    XEN_NETIF_EXTRA_TYPE_NONE: u32 = 0, "XEN_NETIF_EXTRA_TYPE_NONE";
    XEN_NETIF_EXTRA_TYPE_GSO: u32 = 1, "XEN_NETIF_EXTRA_TYPE_GSO";
    XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u32 = 2, "XEN_NETIF_EXTRA_TYPE_MCAST_ADD";
    XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u32 = 3, "XEN_NETIF_EXTRA_TYPE_MCAST_DEL";
    XEN_NETIF_EXTRA_TYPE_HASH: u32 = 4, "XEN_NETIF_EXTRA_TYPE_HASH";
    XEN_NETIF_EXTRA_TYPE_MAX: u32 = 5, "XEN_NETIF_EXTRA_TYPE_MAX";
    XEN_NETIF_EXTRA_FLAG_MORE_BIT: u32 = 0, "_XEN_NETIF_EXTRA_FLAG_MORE";
    XEN_NETIF_EXTRA_FLAG_MORE: u32 = 1, "XEN_NETIF_EXTRA_FLAG_MORE";
    XEN_NETIF_GSO_TYPE_NONE: u32 = 0, "XEN_NETIF_GSO_TYPE_NONE";
    XEN_NETIF_GSO_TYPE_TCPV4: u32 = 1, "XEN_NETIF_GSO_TYPE_TCPV4";
    XEN_NETIF_GSO_TYPE_TCPV6: u32 = 2, "XEN_NETIF_GSO_TYPE_TCPV6";
    NETRXF_DATA_VALIDATED_BIT: u32 = 0, "_NETRXF_data_validated";
    NETRXF_DATA_VALIDATED: u32 = 1, "NETRXF_data_validated";
    NETRXF_CSUM_BLANK_BIT: u32 = 1, "_NETRXF_csum_blank";
    NETRXF_CSUM_BLANK: u32 = 2, "NETRXF_csum_blank";
    NETRXF_MORE_DATA_BIT: u32 = 2, "_NETRXF_more_data";
    NETRXF_MORE_DATA: u32 = 4, "NETRXF_more_data";
    NETRXF_EXTRA_INFO_BIT: u32 = 3, "_NETRXF_extra_info";
    NETRXF_EXTRA_INFO: u32 = 8, "NETRXF_extra_info";
    NETRXF_GSO_PREFIX_BIT: u32 = 4, "_NETRXF_gso_prefix";
    NETRXF_GSO_PREFIX: u32 = 0x10, "NETRXF_gso_prefix";
    NETIF_RSP_DROPPED: i16 = -2, "NETIF_RSP_DROPPED";
    NETIF_RSP_ERROR: i16 = -1, "NETIF_RSP_ERROR";
    NETIF_RSP_OKAY: i16 = 0, "NETIF_RSP_OKAY";
    NETIF_RSP_NULL: i16 = 1, "NETIF_RSP_NULL";
    NETIF_TX_RING_SIZE: u32 = crate::io::ring::ring_entries::<NetifTxRequest, NetifTxResponse>(1), "__CONST_RING_SIZE(netif_tx, 4096)";
    NETIF_RX_RING_SIZE: u32 = crate::io::ring::ring_entries::<NetifRxRequest, NetifRxResponse>(1), "__CONST_RING_SIZE(netif_rx, 4096)";
    NETIF_CTRL_RING_SIZE: u32 = crate::io::ring::ring_entries::<NetifCtrlRequest, NetifCtrlResponse>(1), "__CONST_RING_SIZE(xen_netif_ctrl, 4096)";
}

xen_struct! {
    "io/netif.h", "struct netif_tx_request", 12;
    /// `struct netif_tx_request` (io/netif.h).
    pub struct NetifTxRequest {
        /// `gref`
        gref: u32 = "gref",
        /// `offset`
        offset: u16 = "offset",
        /// `flags`
        flags: u16 = "flags",
        /// `id`
        id: u16 = "id",
        /// `size`
        size: u16 = "size",
    }
}

xen_struct! {
    "io/netif.h", "struct netif_tx_response", 4;
    /// `struct netif_tx_response` (io/netif.h).
    pub struct NetifTxResponse {
        /// `id`
        id: u16 = "id",
        /// `status`
        status: i16 = "status",
    }
}

xen_struct! {
    "io/netif.h", "struct netif_rx_request", 8;
    /// `struct netif_rx_request` (io/netif.h).
    pub struct NetifRxRequest {
        /// `id`
        id: u16 = "id",
        /// `pad`
        pad: u16 = "pad",
        /// `gref`
        gref: u32 = "gref",
    }
}

xen_struct! {
    "io/netif.h", "struct netif_rx_response", 8;
    /// `struct netif_rx_response` (io/netif.h).
    pub struct NetifRxResponse {
        /// `id`
        id: u16 = "id",
        /// `offset`
        offset: u16 = "offset",
        /// `flags`
        flags: u16 = "flags",
        /// `status`
        status: i16 = "status",
    }
}

xen_struct! {
    "io/netif.h", "struct netif_extra_info", 8;
    /// `struct netif_extra_info` (io/netif.h).
    pub struct NetifExtraInfo {
        /// `type`
        type_: u8 = "type",
        /// `flags`
        flags: u8 = "flags",
        /// `u`: by `type`, see the accessors.
        u: [u16; 3] = "u" union("u.gso", "u.mcast", "u.hash", "u.pad"),
    }
}

xen_struct! {
    "io/netif.h", "__typeof__(((struct netif_extra_info *)0)->u.gso)", 6;
    /// `netif_extra_info.u.gso` (`XEN_NETIF_EXTRA_TYPE_GSO`).
    pub struct NetifExtraGso {
        /// `size`: the GSO MSS.
        size: u16 = "size",
        /// `type`: `XEN_NETIF_GSO_TYPE_*`.
        type_: u8 = "type",
        /// `pad`
        pad: u8 = "pad",
        /// `features`
        features: u16 = "features",
    }
}

xen_struct! {
    "io/netif.h", "__typeof__(((struct netif_extra_info *)0)->u.mcast)", 6;
    /// `netif_extra_info.u.mcast` (`XEN_NETIF_EXTRA_TYPE_MCAST_{ADD,DEL}`).
    pub struct NetifExtraMcast {
        /// `addr`: the multicast MAC address.
        addr: [u8; 6] = "addr",
    }
}

xen_struct! {
    "io/netif.h", "__typeof__(((struct netif_extra_info *)0)->u.hash)", 6;
    /// `netif_extra_info.u.hash` (`XEN_NETIF_EXTRA_TYPE_HASH`).
    pub struct NetifExtraHash {
        /// `type`: `_XEN_NETIF_CTRL_HASH_TYPE_*`.
        type_: u8 = "type",
        /// `algorithm`: `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
        algorithm: u8 = "algorithm",
        /// `value`: the hash, little-endian.
        value: [u8; 4] = "value",
    }
}

impl NetifExtraInfo {
    crate::wire::union_members! {
        gso / set_gso: u: [u16; 3] => NetifExtraGso, "u.gso";
        mcast / set_mcast: u: [u16; 3] => NetifExtraMcast, "u.mcast";
        hash / set_hash: u: [u16; 3] => NetifExtraHash, "u.hash";
    }
}

xen_struct! {
    "io/netif.h", "struct xen_netif_ctrl_request", 16;
    /// `struct xen_netif_ctrl_request` (io/netif.h).
    pub struct NetifCtrlRequest {
        /// `id`
        id: u16 = "id",
        /// `type`
        type_: u16 = "type",
        /// `data`
        data: [u32; 3] = "data",
    }
}

xen_struct! {
    "io/netif.h", "struct xen_netif_ctrl_response", 12;
    /// `struct xen_netif_ctrl_response` (io/netif.h).
    pub struct NetifCtrlResponse {
        /// `id`
        id: u16 = "id",
        /// `type`
        type_: u16 = "type",
        /// `status`
        status: u32 = "status",
        /// `data`
        data: u32 = "data",
    }
}

xen_struct! {
    "io/netif.h", "struct xen_netif_gref", 8;
    /// `struct xen_netif_gref` (io/netif.h).
    pub struct NetifGref {
        /// `ref`
        ref_: u32 = "ref",
        /// `flags`
        flags: u16 = "flags",
        /// `status`
        status: u16 = "status",
    }
}

xen_structs!(
    NetifTxRequest,
    NetifTxResponse,
    NetifRxRequest,
    NetifRxResponse,
    NetifExtraInfo,
    NetifExtraGso,
    NetifExtraMcast,
    NetifExtraHash,
    NetifCtrlRequest,
    NetifCtrlResponse,
    NetifGref,
);
