//! Grant tables (`grant_table.h`): v1 (and v2) entries, GTF_*/GNTMAP_*
//! flags, GNTTABOP_* structs and GNTST_* statuses.

use crate::arch_x86::GuestHandle;
use crate::wire::union_members;

xen_consts! {
    "grant_table.h";
    GNTTAB_NR_RESERVED_ENTRIES: u32 = 8, "GNTTAB_NR_RESERVED_ENTRIES";
    GNTTAB_RESERVED_CONSOLE: u32 = 0, "GNTTAB_RESERVED_CONSOLE";
    GNTTAB_RESERVED_XENSTORE: u32 = 1, "GNTTAB_RESERVED_XENSTORE";
    GTF_INVALID: u32 = 0, "GTF_invalid";
    GTF_PERMIT_ACCESS: u32 = 1, "GTF_permit_access";
    GTF_ACCEPT_TRANSFER: u32 = 2, "GTF_accept_transfer";
    GTF_TRANSITIVE: u32 = 3, "GTF_transitive";
    GTF_TYPE_MASK: u32 = 3, "GTF_type_mask";
    GTF_READONLY_BIT: u32 = 2, "_GTF_readonly";
    GTF_READONLY: u32 = 4, "GTF_readonly";
    GTF_READING_BIT: u32 = 3, "_GTF_reading";
    GTF_READING: u32 = 8, "GTF_reading";
    GTF_WRITING_BIT: u32 = 4, "_GTF_writing";
    GTF_WRITING: u32 = 0x10, "GTF_writing";
    GTF_PWT_BIT: u32 = 5, "_GTF_PWT";
    GTF_PWT: u32 = 0x20, "GTF_PWT";
    GTF_PCD_BIT: u32 = 6, "_GTF_PCD";
    GTF_PCD: u32 = 0x40, "GTF_PCD";
    GTF_PAT_BIT: u32 = 7, "_GTF_PAT";
    GTF_PAT: u32 = 0x80, "GTF_PAT";
    GTF_SUB_PAGE_BIT: u32 = 8, "_GTF_sub_page";
    GTF_SUB_PAGE: u32 = 0x100, "GTF_sub_page";
    GTF_TRANSFER_COMMITTED_BIT: u32 = 2, "_GTF_transfer_committed";
    GTF_TRANSFER_COMMITTED: u32 = 4, "GTF_transfer_committed";
    GTF_TRANSFER_COMPLETED_BIT: u32 = 3, "_GTF_transfer_completed";
    GTF_TRANSFER_COMPLETED: u32 = 8, "GTF_transfer_completed";
    GNTTABOP_MAP_GRANT_REF: u32 = 0, "GNTTABOP_map_grant_ref";
    GNTTABOP_UNMAP_GRANT_REF: u32 = 1, "GNTTABOP_unmap_grant_ref";
    GNTTABOP_SETUP_TABLE: u32 = 2, "GNTTABOP_setup_table";
    GNTTABOP_DUMP_TABLE: u32 = 3, "GNTTABOP_dump_table";
    GNTTABOP_TRANSFER: u32 = 4, "GNTTABOP_transfer";
    GNTTABOP_COPY: u32 = 5, "GNTTABOP_copy";
    GNTTABOP_QUERY_SIZE: u32 = 6, "GNTTABOP_query_size";
    GNTTABOP_UNMAP_AND_REPLACE: u32 = 7, "GNTTABOP_unmap_and_replace";
    GNTTABOP_SET_VERSION: u32 = 8, "GNTTABOP_set_version";
    GNTTABOP_GET_STATUS_FRAMES: u32 = 9, "GNTTABOP_get_status_frames";
    GNTTABOP_GET_VERSION: u32 = 0xa, "GNTTABOP_get_version";
    GNTTABOP_SWAP_GRANT_REF: u32 = 0xb, "GNTTABOP_swap_grant_ref";
    GNTTABOP_CACHE_FLUSH: u32 = 0xc, "GNTTABOP_cache_flush";
    GNTCOPY_SOURCE_GREF_BIT: u32 = 0, "_GNTCOPY_source_gref";
    GNTCOPY_SOURCE_GREF: u32 = 1, "GNTCOPY_source_gref";
    GNTCOPY_DEST_GREF_BIT: u32 = 1, "_GNTCOPY_dest_gref";
    GNTCOPY_DEST_GREF: u32 = 2, "GNTCOPY_dest_gref";
    GNTTAB_CACHE_CLEAN: u32 = 1, "GNTTAB_CACHE_CLEAN";
    GNTTAB_CACHE_INVAL: u32 = 2, "GNTTAB_CACHE_INVAL";
    GNTTAB_CACHE_SOURCE_GREF: u32 = 0x80000000, "GNTTAB_CACHE_SOURCE_GREF";
    GNTMAP_DEVICE_MAP_BIT: u32 = 0, "_GNTMAP_device_map";
    GNTMAP_DEVICE_MAP: u32 = 1, "GNTMAP_device_map";
    GNTMAP_HOST_MAP_BIT: u32 = 1, "_GNTMAP_host_map";
    GNTMAP_HOST_MAP: u32 = 2, "GNTMAP_host_map";
    GNTMAP_READONLY_BIT: u32 = 2, "_GNTMAP_readonly";
    GNTMAP_READONLY: u32 = 4, "GNTMAP_readonly";
    GNTMAP_APPLICATION_MAP_BIT: u32 = 3, "_GNTMAP_application_map";
    GNTMAP_APPLICATION_MAP: u32 = 8, "GNTMAP_application_map";
    GNTMAP_CONTAINS_PTE_BIT: u32 = 4, "_GNTMAP_contains_pte";
    GNTMAP_CONTAINS_PTE: u32 = 0x10, "GNTMAP_contains_pte";
    GNTMAP_GUEST_AVAIL0_BIT: u32 = 0x10, "_GNTMAP_guest_avail0";
    GNTMAP_GUEST_AVAIL_MASK: u32 = 0xffff0000, "GNTMAP_guest_avail_mask";
    GNTST_OKAY: i16 = 0, "GNTST_okay";
    GNTST_GENERAL_ERROR: i16 = -1, "GNTST_general_error";
    GNTST_BAD_DOMAIN: i16 = -2, "GNTST_bad_domain";
    GNTST_BAD_GNTREF: i16 = -3, "GNTST_bad_gntref";
    GNTST_BAD_HANDLE: i16 = -4, "GNTST_bad_handle";
    GNTST_BAD_VIRT_ADDR: i16 = -5, "GNTST_bad_virt_addr";
    GNTST_BAD_DEV_ADDR: i16 = -6, "GNTST_bad_dev_addr";
    GNTST_NO_DEVICE_SPACE: i16 = -7, "GNTST_no_device_space";
    GNTST_PERMISSION_DENIED: i16 = -8, "GNTST_permission_denied";
    GNTST_BAD_PAGE: i16 = -9, "GNTST_bad_page";
    GNTST_BAD_COPY_ARG: i16 = -10, "GNTST_bad_copy_arg";
    GNTST_ADDRESS_TOO_BIG: i16 = -11, "GNTST_address_too_big";
    GNTST_EAGAIN: i16 = -12, "GNTST_eagain";
    GNTST_NO_SPACE: i16 = -13, "GNTST_no_space";
}

xen_struct! {
    "grant_table.h", "struct grant_entry_v1", 8;
    /// `struct grant_entry_v1` (grant_table.h).
    pub struct GrantEntryV1 {
        /// `flags`
        flags: u16 = "flags",
        /// `domid`
        domid: u16 = "domid",
        /// `frame`
        frame: u32 = "frame",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_setup_table", 24;
    /// `struct gnttab_setup_table` (grant_table.h).
    pub struct GnttabSetupTable {
        /// `dom`
        dom: u16 = "dom",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `nr_frames`
        nr_frames: u32 = "nr_frames",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 6] = "",
        /// `frame_list`: OUT, the frames of the table (`xen_pfn_t`).
        frame_list: GuestHandle<u64> = "frame_list" handle,
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_dump_table", 4;
    /// `struct gnttab_dump_table` (grant_table.h).
    pub struct GnttabDumpTable {
        /// `dom`
        dom: u16 = "dom",
        /// `status`
        status: i16 = "status",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_map_grant_ref", 32;
    /// `struct gnttab_map_grant_ref` (grant_table.h).
    pub struct GnttabMapGrantRef {
        /// `host_addr`
        host_addr: u64 = "host_addr",
        /// `flags`
        flags: u32 = "flags",
        /// `ref`
        ref_: u32 = "ref",
        /// `dom`
        dom: u16 = "dom",
        /// `status`
        status: i16 = "status",
        /// `handle`
        handle: u32 = "handle",
        /// `dev_bus_addr`
        dev_bus_addr: u64 = "dev_bus_addr",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_unmap_grant_ref", 24;
    /// `struct gnttab_unmap_grant_ref` (grant_table.h).
    pub struct GnttabUnmapGrantRef {
        /// `host_addr`
        host_addr: u64 = "host_addr",
        /// `dev_bus_addr`
        dev_bus_addr: u64 = "dev_bus_addr",
        /// `handle`
        handle: u32 = "handle",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_transfer", 24;
    /// `struct gnttab_transfer` (grant_table.h).
    pub struct GnttabTransfer {
        /// `mfn`
        mfn: u64 = "mfn",
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `ref`
        ref_: u32 = "ref",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 6] = "",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_copy", 40;
    /// `struct gnttab_copy` (grant_table.h).
    pub struct GnttabCopy {
        /// `source`
        source: GnttabCopyPtr = "source",
        /// `dest`
        dest: GnttabCopyPtr = "dest",
        /// `len`
        len: u16 = "len",
        /// `flags`
        flags: u16 = "flags",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_query_size", 16;
    /// `struct gnttab_query_size` (grant_table.h).
    pub struct GnttabQuerySize {
        /// `dom`
        dom: u16 = "dom",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `nr_frames`
        nr_frames: u32 = "nr_frames",
        /// `max_nr_frames`
        max_nr_frames: u32 = "max_nr_frames",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 2] = "",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_unmap_and_replace", 24;
    /// `struct gnttab_unmap_and_replace` (grant_table.h).
    pub struct GnttabUnmapAndReplace {
        /// `host_addr`
        host_addr: u64 = "host_addr",
        /// `new_addr`
        new_addr: u64 = "new_addr",
        /// `handle`
        handle: u32 = "handle",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_set_version", 4;
    /// `struct gnttab_set_version` (grant_table.h).
    pub struct GnttabSetVersion {
        /// `version`
        version: u32 = "version",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_get_status_frames", 16;
    /// `struct gnttab_get_status_frames` (grant_table.h).
    pub struct GnttabGetStatusFrames {
        /// `nr_frames`
        nr_frames: u32 = "nr_frames",
        /// `dom`
        dom: u16 = "dom",
        /// `status`
        status: i16 = "status",
        /// `frame_list`: OUT, the status frames (`uint64_t`).
        frame_list: GuestHandle<u64> = "frame_list" handle,
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_get_version", 8;
    /// `struct gnttab_get_version` (grant_table.h).
    pub struct GnttabGetVersion {
        /// `dom`
        dom: u16 = "dom",
        /// `pad`
        pad: u16 = "pad",
        /// `version`
        version: u32 = "version",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_swap_grant_ref", 12;
    /// `struct gnttab_swap_grant_ref` (grant_table.h).
    pub struct GnttabSwapGrantRef {
        /// `ref_a`
        ref_a: u32 = "ref_a",
        /// `ref_b`
        ref_b: u32 = "ref_b",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_cache_flush", 16;
    /// `struct gnttab_cache_flush` (grant_table.h).
    pub struct GnttabCacheFlush {
        /// `a`: `dev_bus_addr` or (with `GNTTAB_CACHE_SOURCE_GREF`) `ref`,
        /// both at offset 0.
        a: u64 = "a" union("a.dev_bus_addr", "a.ref"),
        /// `offset`
        offset: u16 = "offset",
        /// `length`
        length: u16 = "length",
        /// `op`
        op: u32 = "op",
    }
}

xen_struct! {
    "grant_table.h", "struct grant_entry_header", 4;
    /// `struct grant_entry_header` (grant_table.h).
    pub struct GrantEntryHeader {
        /// `flags`
        flags: u16 = "flags",
        /// `domid`
        domid: u16 = "domid",
    }
}

xen_struct! {
    "grant_table.h", "struct gnttab_copy_ptr", 16;
    /// `struct gnttab_copy_ptr` (grant_table.h): one side of a grant copy.
    /// `u` is a grant reference, or with `GNTCOPY_*_gref` clear, a frame
    /// (`gmfn`); both start at offset 0.
    pub struct GnttabCopyPtr {
        /// `u`: `ref` or `gmfn`.
        u: u64 = "u" union("u.ref", "u.gmfn"),
        /// `domid`
        domid: u16 = "domid",
        /// `offset`: byte offset in the page.
        offset: u16 = "offset",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
    }
}

impl GnttabCopyPtr {
    /// `u.ref`: the grant reference (when the side is a grant).
    pub const fn gref(&self) -> u32 {
        self.u as u32
    }

    /// A side given by grant reference `gref` of domain `domid`.
    pub const fn from_gref(gref: u32, domid: u16, offset: u16) -> Self {
        GnttabCopyPtr { u: gref as u64, domid, offset, _pad0: [0; 4] }
    }

    /// A side given by frame `gmfn` of domain `domid`.
    pub const fn from_gmfn(gmfn: u64, domid: u16, offset: u16) -> Self {
        GnttabCopyPtr { u: gmfn, domid, offset, _pad0: [0; 4] }
    }
}

xen_struct! {
    "grant_table.h", "union grant_entry_v2", 16;
    /// `union grant_entry_v2` (grant_table.h): a v2 entry, read by its
    /// header then as one of its members. Aligned as the C union is, by its
    /// `full_page.frame` (a `uint64_t`).
    #[repr(align(8))]
    pub struct GrantEntryV2 {
        /// `__spacer`: the entry's storage.
        spacer: [u32; 4] = "__spacer" union("hdr", "full_page", "sub_page", "transitive"),
    }
}

xen_struct! {
    "grant_table.h", "__typeof__(((union grant_entry_v2 *)0)->full_page)", 16;
    /// `grant_entry_v2.full_page`.
    pub struct GrantEntryV2FullPage {
        /// `hdr`
        hdr: GrantEntryHeader = "hdr",
        /// `pad0`
        pad0: u32 = "pad0",
        /// `frame`
        frame: u64 = "frame",
    }
}

xen_struct! {
    "grant_table.h", "__typeof__(((union grant_entry_v2 *)0)->sub_page)", 16;
    /// `grant_entry_v2.sub_page`.
    pub struct GrantEntryV2SubPage {
        /// `hdr`
        hdr: GrantEntryHeader = "hdr",
        /// `page_off`
        page_off: u16 = "page_off",
        /// `length`
        length: u16 = "length",
        /// `frame`
        frame: u64 = "frame",
    }
}

xen_struct! {
    "grant_table.h", "__typeof__(((union grant_entry_v2 *)0)->transitive)", 12;
    /// `grant_entry_v2.transitive`.
    pub struct GrantEntryV2Transitive {
        /// `hdr`
        hdr: GrantEntryHeader = "hdr",
        /// `trans_domid`
        trans_domid: u16 = "trans_domid",
        /// `pad0`
        pad0: u16 = "pad0",
        /// `gref`
        gref: u32 = "gref",
    }
}

impl GrantEntryV2 {
    union_members! {
        hdr / set_hdr: spacer: [u32; 4] => GrantEntryHeader, "hdr";
        full_page / set_full_page: spacer: [u32; 4] => GrantEntryV2FullPage, "full_page";
        sub_page / set_sub_page: spacer: [u32; 4] => GrantEntryV2SubPage, "sub_page";
        transitive / set_transitive: spacer: [u32; 4] => GrantEntryV2Transitive, "transitive";
    }
}

xen_structs!(
    GrantEntryV1,
    GrantEntryHeader,
    GrantEntryV2,
    GrantEntryV2FullPage,
    GrantEntryV2SubPage,
    GrantEntryV2Transitive,
    GnttabSetupTable,
    GnttabDumpTable,
    GnttabMapGrantRef,
    GnttabUnmapGrantRef,
    GnttabTransfer,
    GnttabCopyPtr,
    GnttabCopy,
    GnttabQuerySize,
    GnttabUnmapAndReplace,
    GnttabSetVersion,
    GnttabGetStatusFrames,
    GnttabGetVersion,
    GnttabSwapGrantRef,
    GnttabCacheFlush,
);

bitflags::bitflags! {
    /// The flags of a v1 grant entry (`grant_entry_v1.flags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GrantFlags: u16 {
        /// `GTF_permit_access`: the grantee may map or copy the frame.
        const PERMIT_ACCESS = GTF_PERMIT_ACCESS as u16;
        /// `GTF_accept_transfer`: the grantee may transfer a frame here.
        const ACCEPT_TRANSFER = GTF_ACCEPT_TRANSFER as u16;
        /// `GTF_readonly`: read-only access only.
        const READONLY = GTF_READONLY as u16;
        /// `GTF_reading`: set by the hypervisor while the frame is in use.
        const READING = GTF_READING as u16;
        /// `GTF_writing`: set by the hypervisor while mapped writable.
        const WRITING = GTF_WRITING as u16;
        /// `GTF_PWT`
        const PWT = GTF_PWT as u16;
        /// `GTF_PCD`
        const PCD = GTF_PCD as u16;
        /// `GTF_PAT`
        const PAT = GTF_PAT as u16;
        /// `GTF_sub_page`
        const SUB_PAGE = GTF_SUB_PAGE as u16;
    }
}

bitflags::bitflags! {
    /// `gnttab_map_grant_ref.flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GntmapFlags: u32 {
        /// `GNTMAP_device_map`
        const DEVICE_MAP = GNTMAP_DEVICE_MAP;
        /// `GNTMAP_host_map`
        const HOST_MAP = GNTMAP_HOST_MAP;
        /// `GNTMAP_readonly`
        const READONLY = GNTMAP_READONLY;
        /// `GNTMAP_application_map`
        const APPLICATION_MAP = GNTMAP_APPLICATION_MAP;
        /// `GNTMAP_contains_pte`
        const CONTAINS_PTE = GNTMAP_CONTAINS_PTE;
    }
}

xen_enum! {
    /// A grant operation's per-op status (`GNTST_*`, in each op's `status`).
    pub enum GntStatus: i16 {
        /// `GNTST_okay`
        Okay = GNTST_OKAY,
        /// `GNTST_general_error`
        GeneralError = GNTST_GENERAL_ERROR,
        /// `GNTST_bad_domain`
        BadDomain = GNTST_BAD_DOMAIN,
        /// `GNTST_bad_gntref`
        BadGntref = GNTST_BAD_GNTREF,
        /// `GNTST_bad_handle`
        BadHandle = GNTST_BAD_HANDLE,
        /// `GNTST_bad_virt_addr`
        BadVirtAddr = GNTST_BAD_VIRT_ADDR,
        /// `GNTST_bad_dev_addr`
        BadDevAddr = GNTST_BAD_DEV_ADDR,
        /// `GNTST_no_device_space`
        NoDeviceSpace = GNTST_NO_DEVICE_SPACE,
        /// `GNTST_permission_denied`
        PermissionDenied = GNTST_PERMISSION_DENIED,
        /// `GNTST_bad_page`
        BadPage = GNTST_BAD_PAGE,
        /// `GNTST_bad_copy_arg`
        BadCopyArg = GNTST_BAD_COPY_ARG,
        /// `GNTST_address_too_big`
        AddressTooBig = GNTST_ADDRESS_TOO_BIG,
        /// `GNTST_eagain`
        Eagain = GNTST_EAGAIN,
        /// `GNTST_no_space`
        NoSpace = GNTST_NO_SPACE,
    }
}

const ERROR_MSGS: [&str; 14] = [
    "okay",
    "undefined error",
    "unrecognised domain id",
    "invalid grant reference",
    "invalid mapping handle",
    "invalid virtual address",
    "invalid device address",
    "no spare translation slot in the I/O MMU",
    "permission denied",
    "bad page",
    "copy arguments cross page boundary",
    "page address size too large",
    "operation not done; try again",
    "out of space",
];

/// `GNTTABOP_error_msgs` (grant_table.h): the message for each `GNTST_*`,
/// indexed by `-status`.
pub static GNTTABOP_ERROR_MSGS: [&str; 14] = ERROR_MSGS;

impl GntStatus {
    /// Xen's message for the status (`GNTTABOP_error_msgs`).
    pub fn message(self) -> &'static str {
        GNTTABOP_ERROR_MSGS[usize::from(self.to_raw().unsigned_abs())]
    }
}

/// This module's tables, for the conformance test.
#[doc(hidden)]
pub const TABLES: &[crate::registry::Table] = &[crate::registry::Table {
    rust: "GNTTABOP_ERROR_MSGS",
    c_len: "sizeof((const char *[])GNTTABOP_error_msgs) / sizeof(const char *)",
    len: ERROR_MSGS.len(),
    header: "grant_table.h",
}];

/// The entries of this module's tables, for the conformance test.
#[doc(hidden)]
pub const TABLE_STRS: &[crate::registry::StrConst] = &crate::registry::str_entries(
    "GNTTABOP_ERROR_MSGS",
    "((const char *[])GNTTABOP_error_msgs)[#]",
    "grant_table.h",
    ERROR_MSGS,
);
