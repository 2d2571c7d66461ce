//! Memory reservation and physmap (`memory.h`): XENMEM_* commands and structs.

use crate::arch_x86::GuestHandle;

xen_consts! {
    "memory.h";
    XENMEM_INCREASE_RESERVATION: u32 = 0, "XENMEM_increase_reservation";
    XENMEM_DECREASE_RESERVATION: u32 = 1, "XENMEM_decrease_reservation";
    XENMEM_POPULATE_PHYSMAP: u32 = 6, "XENMEM_populate_physmap";
    XENMEMF_POPULATE_ON_DEMAND: u32 = 0x10000, "XENMEMF_populate_on_demand";
    XENMEMF_EXACT_NODE_REQUEST: u32 = 0x20000, "XENMEMF_exact_node_request";
    XENMEMF_VNODE: u32 = 0x40000, "XENMEMF_vnode";
    XENMEM_EXCHANGE: u32 = 0xb, "XENMEM_exchange";
    XENMEM_MAXIMUM_RAM_PAGE: u32 = 2, "XENMEM_maximum_ram_page";
    XENMEM_CURRENT_RESERVATION: u32 = 3, "XENMEM_current_reservation";
    XENMEM_MAXIMUM_RESERVATION: u32 = 4, "XENMEM_maximum_reservation";
    XENMEM_MAXIMUM_GPFN: u32 = 0xe, "XENMEM_maximum_gpfn";
    XENMEM_MACHPHYS_MFN_LIST: u32 = 5, "XENMEM_machphys_mfn_list";
    XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 0x19, "XENMEM_machphys_compat_mfn_list";
    XENMEM_MACHPHYS_MAPPING: u32 = 0xc, "XENMEM_machphys_mapping";
    XENMAPSPACE_SHARED_INFO: u32 = 0, "XENMAPSPACE_shared_info";
    XENMAPSPACE_GRANT_TABLE: u32 = 1, "XENMAPSPACE_grant_table";
    XENMAPSPACE_GMFN: u32 = 2, "XENMAPSPACE_gmfn";
    XENMAPSPACE_GMFN_RANGE: u32 = 3, "XENMAPSPACE_gmfn_range";
    XENMAPSPACE_GMFN_FOREIGN: u32 = 4, "XENMAPSPACE_gmfn_foreign";
    XENMAPSPACE_DEV_MMIO: u32 = 5, "XENMAPSPACE_dev_mmio";
    XENMEM_ADD_TO_PHYSMAP: u32 = 7, "XENMEM_add_to_physmap";
    XENMAPIDX_GRANT_TABLE_STATUS: u32 = 0x80000000, "XENMAPIDX_grant_table_status";
    XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 0x17, "XENMEM_add_to_physmap_batch";
    XENMEM_REMOVE_FROM_PHYSMAP: u32 = 0xf, "XENMEM_remove_from_physmap";
    XENMEM_MEMORY_MAP: u32 = 9, "XENMEM_memory_map";
    XENMEM_MACHINE_MEMORY_MAP: u32 = 0xa, "XENMEM_machine_memory_map";
    XENMEM_SET_MEMORY_MAP: u32 = 0xd, "XENMEM_set_memory_map";
    XENMEM_SET_POD_TARGET: u32 = 0x10, "XENMEM_set_pod_target";
    XENMEM_GET_POD_TARGET: u32 = 0x11, "XENMEM_get_pod_target";
    XENMEM_ACQUIRE_RESOURCE: u32 = 0x1c, "XENMEM_acquire_resource";
    XENMEM_RESOURCE_IOREQ_SERVER: u32 = 0, "XENMEM_resource_ioreq_server";
    XENMEM_RESOURCE_GRANT_TABLE: u32 = 1, "XENMEM_resource_grant_table";
    XENMEM_RESOURCE_VMTRACE_BUF: u32 = 2, "XENMEM_resource_vmtrace_buf";
    XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0, "XENMEM_resource_grant_table_id_shared";
    XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1, "XENMEM_resource_grant_table_id_status";
    XENMEM_RESOURCE_IOREQ_SERVER_FRAME_BUFIOREQ: u32 = 0, "XENMEM_resource_ioreq_server_frame_bufioreq";
    XENMEM_GET_VNUMAINFO: u32 = 0x1a, "XENMEM_get_vnumainfo";

}

xen_struct! {
    "memory.h", "struct xen_memory_reservation", 32;
    /// `struct xen_memory_reservation` (memory.h).
    pub struct MemoryReservation {
        /// `extent_start`: the extents' frames (`xen_pfn_t`), IN and/or OUT.
        extent_start: GuestHandle<u64> = "extent_start" handle,
        /// `nr_extents`
        nr_extents: u64 = "nr_extents",
        /// `extent_order`
        extent_order: u32 = "extent_order",
        /// `mem_flags`
        mem_flags: u32 = "mem_flags",
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 6] = "",
    }
}

xen_struct! {
    "memory.h", "struct xen_memory_exchange", 72;
    /// `struct xen_memory_exchange` (memory.h).
    pub struct MemoryExchange {
        /// `in`
        in_: MemoryReservation = "in",
        /// `out`
        out_: MemoryReservation = "out",
        /// `nr_exchanged`
        nr_exchanged: u64 = "nr_exchanged",
    }
}

xen_struct! {
    "memory.h", "struct xen_machphys_mfn_list", 24;
    /// `struct xen_machphys_mfn_list` (memory.h).
    pub struct MachphysMfnList {
        /// `max_extents`
        max_extents: u32 = "max_extents",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `extent_start`: OUT, the M2P's frames (`xen_pfn_t`).
        extent_start: GuestHandle<u64> = "extent_start" handle,
        /// `nr_extents`
        nr_extents: u32 = "nr_extents",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
    }
}

xen_struct! {
    "memory.h", "struct xen_machphys_mapping", 24;
    /// `struct xen_machphys_mapping` (memory.h).
    pub struct MachphysMapping {
        /// `v_start`
        v_start: u64 = "v_start",
        /// `v_end`
        v_end: u64 = "v_end",
        /// `max_mfn`
        max_mfn: u64 = "max_mfn",
    }
}

xen_struct! {
    "memory.h", "struct xen_add_to_physmap", 24;
    /// `struct xen_add_to_physmap` (memory.h).
    pub struct AddToPhysmap {
        /// `domid`
        domid: u16 = "domid",
        /// `size`
        size: u16 = "size",
        /// `space`
        space: u32 = "space",
        /// `idx`
        idx: u64 = "idx",
        /// `gpfn`
        gpfn: u64 = "gpfn",
    }
}

xen_struct! {
    "memory.h", "struct xen_add_to_physmap_batch", 32;
    /// `struct xen_add_to_physmap_batch` (memory.h).
    pub struct AddToPhysmapBatch {
        /// `domid`
        domid: u16 = "domid",
        /// `space`
        space: u16 = "space",
        /// `size`
        size: u16 = "size",
        /// `u`: `foreign_domid` (for `XENMAPSPACE_gmfn_foreign`) or `res0`.
        u: u16 = "u" union("u.foreign_domid", "u.res0"),
        /// `idxs`: IN, indexes into the space (`xen_ulong_t`).
        idxs: GuestHandle<u64> = "idxs" handle,
        /// `gpfns`: IN, where to map them (`xen_pfn_t`).
        gpfns: GuestHandle<u64> = "gpfns" handle,
        /// `errs`: OUT, per-entry errno (`int`).
        errs: GuestHandle<i32> = "errs" handle,
    }
}

xen_struct! {
    "memory.h", "struct xen_remove_from_physmap", 16;
    /// `struct xen_remove_from_physmap` (memory.h).
    pub struct RemoveFromPhysmap {
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 6] = "",
        /// `gpfn`
        gpfn: u64 = "gpfn",
    }
}

xen_struct! {
    "memory.h", "struct xen_memory_map", 16;
    /// `struct xen_memory_map` (memory.h).
    pub struct MemoryMap {
        /// `nr_entries`
        nr_entries: u32 = "nr_entries",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `buffer`: E820 entries of 20 bytes (`void`).
        buffer: GuestHandle<u8> = "buffer" handle,
    }
}

xen_struct! {
    "memory.h", "struct xen_foreign_memory_map", 24;
    /// `struct xen_foreign_memory_map` (memory.h).
    pub struct ForeignMemoryMap {
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 6] = "",
        /// `map`
        map: MemoryMap = "map",
    }
}

xen_struct! {
    "memory.h", "struct xen_mem_acquire_resource", 32;
    /// `struct xen_mem_acquire_resource` (memory.h).
    pub struct MemAcquireResource {
        /// `domid`
        domid: u16 = "domid",
        /// `type`
        type_: u16 = "type",
        /// `id`
        id: u32 = "id",
        /// `nr_frames`
        nr_frames: u32 = "nr_frames",
        /// `pad`
        pad: u32 = "pad",
        /// `frame`
        frame: u64 = "frame",
        /// `frame_list`: the resource's frames (`xen_pfn_t`).
        frame_list: GuestHandle<u64> = "frame_list" handle,
    }
}

xen_struct! {
    "memory.h", "struct xen_vmemrange", 24;
    /// `struct xen_vmemrange` (memory.h).
    pub struct Vmemrange {
        /// `start`
        start: u64 = "start",
        /// `end`
        end: u64 = "end",
        /// `flags`
        flags: u32 = "flags",
        /// `nid`
        nid: u32 = "nid",
    }
}

xen_struct! {
    "memory.h", "struct xen_vnuma_topology_info", 40;
    /// `struct xen_vnuma_topology_info` (memory.h).
    pub struct VnumaTopologyInfo {
        /// `domid`
        domid: u16 = "domid",
        /// `pad`
        pad: u16 = "pad",
        /// `nr_vnodes`
        nr_vnodes: u32 = "nr_vnodes",
        /// `nr_vcpus`
        nr_vcpus: u32 = "nr_vcpus",
        /// `nr_vmemranges`
        nr_vmemranges: u32 = "nr_vmemranges",
        /// `vdistance`: handle (`unsigned int`) padded to 64 bits.
        vdistance: GuestHandle<u32> = "vdistance" union("vdistance.h", "vdistance.pad"),
        /// `vcpu_to_vnode`: handle (`unsigned int`) padded to 64 bits.
        vcpu_to_vnode: GuestHandle<u32> = "vcpu_to_vnode" union("vcpu_to_vnode.h", "vcpu_to_vnode.pad"),
        /// `vmemrange`: handle (`xen_vmemrange_t`) padded to 64 bits.
        vmemrange: GuestHandle<Vmemrange> = "vmemrange" union("vmemrange.h", "vmemrange.pad"),
    }
}

xen_struct! {
    "memory.h", "struct xen_pod_target", 40;
    /// `struct xen_pod_target` (memory.h).
    pub struct PodTarget {
        /// `target_pages`
        target_pages: u64 = "target_pages",
        /// `tot_pages`
        tot_pages: u64 = "tot_pages",
        /// `pod_cache_pages`
        pod_cache_pages: u64 = "pod_cache_pages",
        /// `pod_entries`
        pod_entries: u64 = "pod_entries",
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 6] = "",
    }
}

xen_struct! {
    "memory.h", "struct xen_memory_domain", 2;
    /// `struct xen_memory_domain` (memory.h): the argument of
    /// `XENMEM_current_reservation`, `maximum_reservation`, `maximum_gpfn`.
    pub struct MemoryDomain {
        /// `domid`
        domid: u16 = "domid",
    }
}

xen_structs!(
    MemoryReservation,
    MemoryExchange,
    MachphysMfnList,
    MachphysMapping,
    AddToPhysmap,
    AddToPhysmapBatch,
    RemoveFromPhysmap,
    MemoryMap,
    ForeignMemoryMap,
    MemAcquireResource,
    Vmemrange,
    VnumaTopologyInfo,
    PodTarget,
    MemoryDomain,
);

/// The `memory.h` commands Xen declares for its tools only (`__XEN_TOOLS__`).
pub mod tools {
    xen_consts! {
        "memory.h, tools only";
        XENMEM_GET_SHARING_FREED_PAGES: u32 = 18, "XENMEM_get_sharing_freed_pages";
        XENMEM_GET_SHARING_SHARED_PAGES: u32 = 19, "XENMEM_get_sharing_shared_pages";
        XENMEM_CLAIM_PAGES: u32 = 24, "XENMEM_claim_pages";
    }
}
