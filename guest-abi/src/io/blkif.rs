//! The block device protocol (`io/blkif.h`): requests, responses, operations.

xen_consts! {
    "io/blkif.h";
    BLKIF_OP_READ: u32 = 0, "BLKIF_OP_READ";
    BLKIF_OP_WRITE: u32 = 1, "BLKIF_OP_WRITE";
    BLKIF_OP_WRITE_BARRIER: u32 = 2, "BLKIF_OP_WRITE_BARRIER";
    BLKIF_OP_FLUSH_DISKCACHE: u32 = 3, "BLKIF_OP_FLUSH_DISKCACHE";
    BLKIF_OP_RESERVED_1: u32 = 4, "BLKIF_OP_RESERVED_1";
    BLKIF_OP_DISCARD: u32 = 5, "BLKIF_OP_DISCARD";
    BLKIF_OP_INDIRECT: u32 = 6, "BLKIF_OP_INDIRECT";
    BLKIF_MAX_SEGMENTS_PER_REQUEST: u32 = 0xb, "BLKIF_MAX_SEGMENTS_PER_REQUEST";
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: u32 = 8, "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST";
    BLKIF_DISCARD_SECURE: u32 = 1, "BLKIF_DISCARD_SECURE";
    BLKIF_RSP_EOPNOTSUPP: i16 = -2, "BLKIF_RSP_EOPNOTSUPP";
    BLKIF_RSP_ERROR: i16 = -1, "BLKIF_RSP_ERROR";
    BLKIF_RSP_OKAY: i16 = 0, "BLKIF_RSP_OKAY";
    VDISK_CDROM: u32 = 1, "VDISK_CDROM";
    VDISK_REMOVABLE: u32 = 2, "VDISK_REMOVABLE";
    VDISK_READONLY: u32 = 4, "VDISK_READONLY";
    BLKIF_RING_SIZE: u32 = crate::io::ring::ring_entries::<BlkifRequest, BlkifResponse>(1), "__CONST_RING_SIZE(blkif, 4096)";
}

xen_struct! {
    "io/blkif.h", "struct blkif_request_segment", 8;
    /// `struct blkif_request_segment` (io/blkif.h).
    pub struct BlkifRequestSegment {
        /// `gref`
        gref: u32 = "gref",
        /// `first_sect`
        first_sect: u8 = "first_sect",
        /// `last_sect`
        last_sect: u8 = "last_sect",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "io/blkif.h", "struct blkif_request", 112;
    /// `struct blkif_request` (io/blkif.h).
    pub struct BlkifRequest {
        /// `operation`
        operation: u8 = "operation",
        /// `nr_segments`
        nr_segments: u8 = "nr_segments",
        /// `handle`
        handle: u16 = "handle",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `id`
        id: u64 = "id",
        /// `sector_number`
        sector_number: u64 = "sector_number",
        /// `seg`
        seg: [BlkifRequestSegment; 11] = "seg",
    }
}

xen_struct! {
    "io/blkif.h", "struct blkif_response", 16;
    /// `struct blkif_response` (io/blkif.h).
    pub struct BlkifResponse {
        /// `id`
        id: u64 = "id",
        /// `operation`
        operation: u8 = "operation",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 1] = "",
        /// `status`
        status: i16 = "status",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
    }
}

xen_struct! {
    "io/blkif.h", "struct blkif_request_discard", 32;
    /// `struct blkif_request_discard` (io/blkif.h).
    pub struct BlkifRequestDiscard {
        /// `operation`
        operation: u8 = "operation",
        /// `flag`
        flag: u8 = "flag",
        /// `handle`
        handle: u16 = "handle",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `id`
        id: u64 = "id",
        /// `sector_number`
        sector_number: u64 = "sector_number",
        /// `nr_sectors`
        nr_sectors: u64 = "nr_sectors",
    }
}

xen_struct! {
    "io/blkif.h", "struct blkif_request_indirect", 64;
    /// `struct blkif_request_indirect` (io/blkif.h).
    pub struct BlkifRequestIndirect {
        /// `operation`
        operation: u8 = "operation",
        /// `indirect_op`
        indirect_op: u8 = "indirect_op",
        /// `nr_segments`
        nr_segments: u16 = "nr_segments",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `id`
        id: u64 = "id",
        /// `sector_number`
        sector_number: u64 = "sector_number",
        /// `handle`
        handle: u16 = "handle",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 2] = "",
        /// `indirect_grefs`
        indirect_grefs: [u32; 8] = "indirect_grefs",
        /// Padding (implicit in the C layout).
        _pad2: [u8; 4] = "",
    }
}

xen_structs!(BlkifRequestSegment, BlkifRequest, BlkifResponse, BlkifRequestDiscard, BlkifRequestIndirect);

xen_enum! {
    /// A block request's operation (`blkif_request.operation`).
    pub enum BlkifOp: u8 {
        /// `BLKIF_OP_READ`
        Read = BLKIF_OP_READ,
        /// `BLKIF_OP_WRITE`
        Write = BLKIF_OP_WRITE,
        /// `BLKIF_OP_WRITE_BARRIER`
        WriteBarrier = BLKIF_OP_WRITE_BARRIER,
        /// `BLKIF_OP_FLUSH_DISKCACHE`
        FlushDiskcache = BLKIF_OP_FLUSH_DISKCACHE,
        /// `BLKIF_OP_DISCARD`
        Discard = BLKIF_OP_DISCARD,
        /// `BLKIF_OP_INDIRECT`
        Indirect = BLKIF_OP_INDIRECT,
    }
}
