//! Linux's Xen device ABI (`include/uapi/xen/*.h`, x86_64): ioctl numbers
//! and the `#[repr(C)]` argument structs, each followed by a compile-time
//! check of its size and field offsets.
//!
//! This module owns only layouts; no function here touches a device. The
//! numbers are `_IOC(_IOC_NONE, type, nr, sizeof(arg))`, i.e.
//! `size << 16 | type << 8 | nr` (Linux encodes `_IOC_NONE` as 0 on x86).
//! Semantics: Linux 6.1 `drivers/xen/{privcmd,evtchn,gntdev,gntalloc}.c`
//! and `xenbus/xenbus_dev_backend.c`.

use core::mem::{offset_of, size_of};

/// `_IOC(_IOC_NONE, ty, nr, size)`.
pub const fn ioc_none(ty: u8, nr: u8, size: usize) -> u32 {
    ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

// ---------------------------------------------------------------- privcmd

/// `struct privcmd_hypercall`: a raw hypercall, run by the kernel with this
/// process's page tables (pointer arguments are user addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrivcmdHypercall {
    /// Hypercall number (`__HYPERVISOR_*`).
    pub op: u64,
    /// The five arguments.
    pub arg: [u64; 5],
}
const _: () = assert!(size_of::<PrivcmdHypercall>() == 48);

/// `struct privcmd_mmapbatch_v2`: map `num` foreign frames at `addr`,
/// per-frame errors in `err`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PrivcmdMmapbatchV2 {
    /// Number of frames (and entries of `arr` and `err`).
    pub num: u32,
    /// `dom`: the domain owning the frames.
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad: u16,
    /// Start of the `mmap`ed range of the privcmd fd to fill.
    pub addr: u64,
    /// `const xen_pfn_t *arr`: the frames (MFNs for a PV owner).
    pub arr: u64,
    /// `int *err`: OUT, 0 or a negative errno per frame.
    pub err: u64,
}
const _: () = {
    assert!(size_of::<PrivcmdMmapbatchV2>() == 32);
    assert!(offset_of!(PrivcmdMmapbatchV2, num) == 0);
    assert!(offset_of!(PrivcmdMmapbatchV2, dom) == 4);
    assert!(offset_of!(PrivcmdMmapbatchV2, addr) == 8);
    assert!(offset_of!(PrivcmdMmapbatchV2, arr) == 16);
    assert!(offset_of!(PrivcmdMmapbatchV2, err) == 24);
};

/// `struct privcmd_mmap_resource` (for `IOCTL_PRIVCMD_MMAP_RESOURCE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrivcmdMmapResource {
    /// `dom`
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad: u16,
    /// `type`: `XENMEM_resource_*`.
    pub type_: u32,
    /// `id`
    pub id: u32,
    /// `idx`: first frame.
    pub idx: u32,
    /// `num`: frames; 0 with `addr` 0 asks for the size.
    pub num: u64,
    /// `addr`: the `mmap`ed range.
    pub addr: u64,
}
const _: () = {
    assert!(size_of::<PrivcmdMmapResource>() == 32);
    assert!(offset_of!(PrivcmdMmapResource, type_) == 4);
    assert!(offset_of!(PrivcmdMmapResource, id) == 8);
    assert!(offset_of!(PrivcmdMmapResource, idx) == 12);
    assert!(offset_of!(PrivcmdMmapResource, num) == 16);
    assert!(offset_of!(PrivcmdMmapResource, addr) == 24);
};

/// `IOCTL_PRIVCMD_HYPERCALL`
pub const IOCTL_PRIVCMD_HYPERCALL: u32 = ioc_none(b'P', 0, size_of::<PrivcmdHypercall>());
/// `IOCTL_PRIVCMD_MMAP` (`struct privcmd_mmap`, 16 bytes; not used here).
pub const IOCTL_PRIVCMD_MMAP: u32 = ioc_none(b'P', 2, 16);
/// `IOCTL_PRIVCMD_MMAPBATCH` (v1, `struct privcmd_mmapbatch`, 24 bytes; not used here).
pub const IOCTL_PRIVCMD_MMAPBATCH: u32 = ioc_none(b'P', 3, 24);
/// `IOCTL_PRIVCMD_MMAPBATCH_V2`
pub const IOCTL_PRIVCMD_MMAPBATCH_V2: u32 = ioc_none(b'P', 4, size_of::<PrivcmdMmapbatchV2>());
/// `IOCTL_PRIVCMD_DM_OP` (`struct privcmd_dm_op`, 16 bytes; not used here).
pub const IOCTL_PRIVCMD_DM_OP: u32 = ioc_none(b'P', 5, 16);
/// `IOCTL_PRIVCMD_RESTRICT` (`domid_t`).
pub const IOCTL_PRIVCMD_RESTRICT: u32 = ioc_none(b'P', 6, size_of::<u16>());
/// `IOCTL_PRIVCMD_MMAP_RESOURCE`
pub const IOCTL_PRIVCMD_MMAP_RESOURCE: u32 = ioc_none(b'P', 7, size_of::<PrivcmdMmapResource>());

// ----------------------------------------------------------------- evtchn

/// `struct ioctl_evtchn_bind_virq`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindVirq {
    /// `virq`: `VIRQ_*`.
    pub virq: u32,
}

/// `struct ioctl_evtchn_bind_interdomain`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    /// `remote_domain`
    pub remote_domain: u32,
    /// `remote_port`
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindUnboundPort {
    /// `remote_domain`: who may bind the other end.
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` / `ioctl_evtchn_notify`: one local port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnPort {
    /// `port`
    pub port: u32,
}

const _: () = {
    assert!(size_of::<EvtchnBindVirq>() == 4);
    assert!(size_of::<EvtchnBindInterdomain>() == 8);
    assert!(offset_of!(EvtchnBindInterdomain, remote_port) == 4);
    assert!(size_of::<EvtchnBindUnboundPort>() == 4);
    assert!(size_of::<EvtchnPort>() == 4);
};

/// `IOCTL_EVTCHN_BIND_VIRQ`: returns the local port.
pub const IOCTL_EVTCHN_BIND_VIRQ: u32 = ioc_none(b'E', 0, size_of::<EvtchnBindVirq>());
/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: returns the local port.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 = ioc_none(b'E', 1, size_of::<EvtchnBindInterdomain>());
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: returns the local port.
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 = ioc_none(b'E', 2, size_of::<EvtchnBindUnboundPort>());
/// `IOCTL_EVTCHN_UNBIND`
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc_none(b'E', 3, size_of::<EvtchnPort>());
/// `IOCTL_EVTCHN_NOTIFY`
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc_none(b'E', 4, size_of::<EvtchnPort>());
/// `IOCTL_EVTCHN_RESET` (no argument).
pub const IOCTL_EVTCHN_RESET: u32 = ioc_none(b'E', 5, 0);
/// `IOCTL_EVTCHN_RESTRICT_DOMID` (`domid_t`).
pub const IOCTL_EVTCHN_RESTRICT_DOMID: u32 = ioc_none(b'E', 6, size_of::<u16>());

// ----------------------------------------------------------------- gntdev

/// `struct ioctl_gntdev_grant_ref`: one grant to map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GntdevGrantRef {
    /// `domid`: the granting domain.
    pub domid: u32,
    /// `ref`: its grant reference.
    pub ref_: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` with its first `refs` entry; the
/// ioctl reads `count` entries, so callers pass a larger buffer that
/// starts with this header (see [`GntdevMapGrantRef::HEADER_LEN`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevMapGrantRef {
    /// `count`: grants to map, 1..=`limit`.
    pub count: u32,
    /// `pad`
    pub pad: u32,
    /// `index`: OUT, the `mmap` offset of the mapping.
    pub index: u64,
    /// `refs[1]`: the first grant.
    pub refs: [GntdevGrantRef; 1],
}

impl GntdevMapGrantRef {
    /// Bytes before `refs`.
    pub const HEADER_LEN: usize = offset_of!(GntdevMapGrantRef, refs);
}

/// `struct ioctl_gntdev_unmap_grant_ref`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevUnmapGrantRef {
    /// `index`: the offset `MAP_GRANT_REF` returned.
    pub index: u64,
    /// `count`: pages.
    pub count: u32,
    /// `pad`
    pub pad: u32,
}

/// `struct ioctl_gntdev_get_offset_for_vaddr`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevGetOffsetForVaddr {
    /// `vaddr`: start of a mapping.
    pub vaddr: u64,
    /// `offset`: OUT.
    pub offset: u64,
    /// `count`: OUT, pages.
    pub count: u32,
    /// `pad`
    pub pad: u32,
}

/// `struct ioctl_gntdev_unmap_notify` (same layout as gntalloc's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevUnmapNotify {
    /// `index`: mmap offset of a byte in the page.
    pub index: u64,
    /// `action`: [`UNMAP_NOTIFY_CLEAR_BYTE`] | [`UNMAP_NOTIFY_SEND_EVENT`].
    pub action: u32,
    /// `event_channel_port`
    pub event_channel_port: u32,
}

/// One end of a grant copy segment: `union { void *virt; struct { grant_ref_t
/// ref; u16 offset; domid_t domid; } foreign; }`, stored as its 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GntdevCopyPtr(pub u64);

impl GntdevCopyPtr {
    /// The `virt` member: a local buffer's address.
    pub fn virt(addr: u64) -> Self {
        GntdevCopyPtr(addr)
    }

    /// The `foreign` member: `ref` at bytes 0..4, `offset` 4..6, `domid` 6..8.
    pub fn foreign(gref: u32, offset: u16, domid: u16) -> Self {
        GntdevCopyPtr(u64::from(gref) | (u64::from(offset) << 32) | (u64::from(domid) << 48))
    }
}

/// `struct gntdev_grant_copy_segment`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevGrantCopySegment {
    /// `source`
    pub source: GntdevCopyPtr,
    /// `dest`
    pub dest: GntdevCopyPtr,
    /// `len`: bytes.
    pub len: u16,
    /// `flags`: `GNTCOPY_source_gref` | `GNTCOPY_dest_gref`.
    pub flags: u16,
    /// `status`: OUT, `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad: u16,
}

/// `struct ioctl_gntdev_grant_copy`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevGrantCopy {
    /// `count`: segments.
    pub count: u32,
    /// Padding (implicit in C).
    pub _pad: u32,
    /// `segments`: pointer to the array.
    pub segments: u64,
}

const _: () = {
    assert!(size_of::<GntdevGrantRef>() == 8);
    assert!(size_of::<GntdevMapGrantRef>() == 24);
    assert!(offset_of!(GntdevMapGrantRef, index) == 8);
    assert!(offset_of!(GntdevMapGrantRef, refs) == 16);
    assert!(size_of::<GntdevUnmapGrantRef>() == 16);
    assert!(offset_of!(GntdevUnmapGrantRef, count) == 8);
    assert!(size_of::<GntdevGetOffsetForVaddr>() == 24);
    assert!(size_of::<GntdevUnmapNotify>() == 16);
    assert!(offset_of!(GntdevUnmapNotify, action) == 8);
    assert!(offset_of!(GntdevUnmapNotify, event_channel_port) == 12);
    assert!(size_of::<GntdevGrantCopySegment>() == 24);
    assert!(offset_of!(GntdevGrantCopySegment, dest) == 8);
    assert!(offset_of!(GntdevGrantCopySegment, len) == 16);
    assert!(offset_of!(GntdevGrantCopySegment, flags) == 18);
    assert!(offset_of!(GntdevGrantCopySegment, status) == 20);
    assert!(size_of::<GntdevGrantCopy>() == 16);
    assert!(offset_of!(GntdevGrantCopy, segments) == 8);
};

/// `IOCTL_GNTDEV_MAP_GRANT_REF`
pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc_none(b'G', 0, size_of::<GntdevMapGrantRef>());
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 = ioc_none(b'G', 1, size_of::<GntdevUnmapGrantRef>());
/// `IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR`
pub const IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR: u32 = ioc_none(b'G', 2, size_of::<GntdevGetOffsetForVaddr>());
/// `IOCTL_GNTDEV_SET_MAX_GRANTS` (`ENOTTY` on Linux 6.1).
pub const IOCTL_GNTDEV_SET_MAX_GRANTS: u32 = ioc_none(b'G', 3, size_of::<u32>());
/// `IOCTL_GNTDEV_SET_UNMAP_NOTIFY`
pub const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: u32 = ioc_none(b'G', 7, size_of::<GntdevUnmapNotify>());
/// `IOCTL_GNTDEV_GRANT_COPY`
pub const IOCTL_GNTDEV_GRANT_COPY: u32 = ioc_none(b'G', 8, size_of::<GntdevGrantCopy>());
/// `UNMAP_NOTIFY_CLEAR_BYTE`
pub const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 1;
/// `UNMAP_NOTIFY_SEND_EVENT`
pub const UNMAP_NOTIFY_SEND_EVENT: u32 = 2;

// --------------------------------------------------------------- gntalloc

/// `struct ioctl_gntalloc_alloc_gref` with its first `gref_ids` entry; the
/// ioctl writes `count` ids, so callers pass a larger buffer that starts
/// with this header (see [`GntallocAllocGref::HEADER_LEN`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntallocAllocGref {
    /// `domid`: who may map the pages.
    pub domid: u16,
    /// `flags`: [`GNTALLOC_FLAG_WRITABLE`].
    pub flags: u16,
    /// `count`: pages.
    pub count: u32,
    /// `index`: OUT, the `mmap` offset.
    pub index: u64,
    /// `gref_ids[1]`: OUT, the grant references.
    pub gref_ids: [u32; 1],
    /// Padding (implicit in C).
    pub _pad: u32,
}

impl GntallocAllocGref {
    /// Bytes before `gref_ids`.
    pub const HEADER_LEN: usize = offset_of!(GntallocAllocGref, gref_ids);
}

/// `struct ioctl_gntalloc_dealloc_gref`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntallocDeallocGref {
    /// `index`: the offset `ALLOC_GREF` returned.
    pub index: u64,
    /// `count`: pages.
    pub count: u32,
    /// Padding (implicit in C).
    pub _pad: u32,
}

const _: () = {
    assert!(size_of::<GntallocAllocGref>() == 24);
    assert!(offset_of!(GntallocAllocGref, flags) == 2);
    assert!(offset_of!(GntallocAllocGref, count) == 4);
    assert!(offset_of!(GntallocAllocGref, index) == 8);
    assert!(offset_of!(GntallocAllocGref, gref_ids) == 16);
    assert!(size_of::<GntallocDeallocGref>() == 16);
};

/// `IOCTL_GNTALLOC_ALLOC_GREF`
pub const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc_none(b'G', 5, size_of::<GntallocAllocGref>());
/// `IOCTL_GNTALLOC_DEALLOC_GREF`
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u32 = ioc_none(b'G', 6, size_of::<GntallocDeallocGref>());
/// `IOCTL_GNTALLOC_SET_UNMAP_NOTIFY` (= gntdev's number and layout).
pub const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: u32 = ioc_none(b'G', 7, size_of::<GntdevUnmapNotify>());
/// `GNTALLOC_FLAG_WRITABLE`
pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;

// ---------------------------------------------------------------- xenbus

/// `IOCTL_XENBUS_BACKEND_EVTCHN`: returns the store event channel.
pub const IOCTL_XENBUS_BACKEND_EVTCHN: u32 = ioc_none(b'B', 0, 0);
/// `IOCTL_XENBUS_BACKEND_SETUP`: the domid is passed by value.
pub const IOCTL_XENBUS_BACKEND_SETUP: u32 = ioc_none(b'B', 1, 0);

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of dom0-toolstack.md §1.2 (a gcc probe of Linux 6.1's uapi).
    #[test]
    fn ioctl_numbers_match_linux_6_1() {
        let table: &[(&str, u32, u32)] = &[
            ("PRIVCMD_HYPERCALL", IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000),
            ("PRIVCMD_MMAP", IOCTL_PRIVCMD_MMAP, 0x0010_5002),
            ("PRIVCMD_MMAPBATCH", IOCTL_PRIVCMD_MMAPBATCH, 0x0018_5003),
            ("PRIVCMD_MMAPBATCH_V2", IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004),
            ("PRIVCMD_DM_OP", IOCTL_PRIVCMD_DM_OP, 0x0010_5005),
            ("PRIVCMD_RESTRICT", IOCTL_PRIVCMD_RESTRICT, 0x0002_5006),
            ("PRIVCMD_MMAP_RESOURCE", IOCTL_PRIVCMD_MMAP_RESOURCE, 0x0020_5007),
            ("EVTCHN_BIND_VIRQ", IOCTL_EVTCHN_BIND_VIRQ, 0x0004_4500),
            ("EVTCHN_BIND_INTERDOMAIN", IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501),
            ("EVTCHN_BIND_UNBOUND_PORT", IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x0004_4502),
            ("EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND, 0x0004_4503),
            ("EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY, 0x0004_4504),
            ("EVTCHN_RESET", IOCTL_EVTCHN_RESET, 0x0000_4505),
            ("EVTCHN_RESTRICT_DOMID", IOCTL_EVTCHN_RESTRICT_DOMID, 0x0002_4506),
            ("GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700),
            ("GNTDEV_UNMAP_GRANT_REF", IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701),
            ("GNTDEV_GET_OFFSET_FOR_VADDR", IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, 0x0018_4702),
            ("GNTDEV_SET_MAX_GRANTS", IOCTL_GNTDEV_SET_MAX_GRANTS, 0x0004_4703),
            ("GNTDEV_SET_UNMAP_NOTIFY", IOCTL_GNTDEV_SET_UNMAP_NOTIFY, 0x0010_4707),
            ("GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY, 0x0010_4708),
            ("GNTALLOC_ALLOC_GREF", IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705),
            ("GNTALLOC_DEALLOC_GREF", IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706),
            ("GNTALLOC_SET_UNMAP_NOTIFY", IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, 0x0010_4707),
            ("XENBUS_BACKEND_EVTCHN", IOCTL_XENBUS_BACKEND_EVTCHN, 0x0000_4200),
            ("XENBUS_BACKEND_SETUP", IOCTL_XENBUS_BACKEND_SETUP, 0x0000_4201),
        ];
        for &(name, ours, linux) in table {
            assert_eq!(ours, linux, "{name}: {ours:#010x} != {linux:#010x}");
        }
    }

    #[test]
    fn grant_copy_foreign_member_sits_where_c_puts_it() {
        let p = GntdevCopyPtr::foreign(0x1122_3344, 0x0ffc, 7);
        assert_eq!(p.0.to_le_bytes(), [0x44, 0x33, 0x22, 0x11, 0xfc, 0x0f, 7, 0]);
    }
}
