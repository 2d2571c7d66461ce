//! Domain control (`domctl.h`), the toolstack's interface to the
//! hypervisor: the `xen_domctl` envelope and the operations xenish serves
//! (the domain lifecycle: create, pause, unpause, destroy, get info, the
//! memory limit; scheduler parameters; what libxl sets while it builds a
//! domain: handle, affinities, TSC mode, CPU policy, address size, time
//! offset; what it reads back: vCPU info and context). Only a privileged domain may use
//! it, and only with this exact interface version. Xen compiles this header for its
//! tools only (`__XEN_TOOLS__`); the conformance probe does the same.

use crate::arch_x86::GuestHandle;

xen_consts! {
    "domctl.h";
    XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15, "XEN_DOMCTL_INTERFACE_VERSION";
    XEN_DOMCTL_CREATEDOMAIN: u32 = 1, "XEN_DOMCTL_createdomain";
    XEN_DOMCTL_DESTROYDOMAIN: u32 = 2, "XEN_DOMCTL_destroydomain";
    XEN_DOMCTL_PAUSEDOMAIN: u32 = 3, "XEN_DOMCTL_pausedomain";
    XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4, "XEN_DOMCTL_unpausedomain";
    XEN_DOMCTL_GETDOMAININFO: u32 = 5, "XEN_DOMCTL_getdomaininfo";
    XEN_DOMCTL_GETPAGEFRAMEINFO3: u32 = 61, "XEN_DOMCTL_getpageframeinfo3";
    XEN_DOMCTL_MAX_MEM: u32 = 11, "XEN_DOMCTL_max_mem";
    XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12, "XEN_DOMCTL_setvcpucontext";
    XEN_DOMCTL_MAX_VCPUS: u32 = 15, "XEN_DOMCTL_max_vcpus";
    XEN_DOMCTL_HYPERCALL_INIT: u32 = 22, "XEN_DOMCTL_hypercall_init";
    XEN_DOMCTL_SCHEDULER_OP: u32 = 16, "XEN_DOMCTL_scheduler_op";
    XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9, "XEN_DOMCTL_setvcpuaffinity";
    XEN_DOMCTL_SHADOW_OP: u32 = 10, "XEN_DOMCTL_shadow_op";
    XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13, "XEN_DOMCTL_getvcpucontext";
    XEN_DOMCTL_GETVCPUINFO: u32 = 14, "XEN_DOMCTL_getvcpuinfo";
    XEN_DOMCTL_SETDOMAINHANDLE: u32 = 17, "XEN_DOMCTL_setdomainhandle";
    XEN_DOMCTL_SETTIMEOFFSET: u32 = 24, "XEN_DOMCTL_settimeoffset";
    XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25, "XEN_DOMCTL_getvcpuaffinity";
    XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35, "XEN_DOMCTL_set_address_size";
    XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36, "XEN_DOMCTL_get_address_size";
    XEN_DOMCTL_GETTSCINFO: u32 = 59, "XEN_DOMCTL_gettscinfo";
    XEN_DOMCTL_SETTSCINFO: u32 = 60, "XEN_DOMCTL_settscinfo";
    XEN_DOMCTL_SETNODEAFFINITY: u32 = 68, "XEN_DOMCTL_setnodeaffinity";
    XEN_DOMCTL_GETNODEAFFINITY: u32 = 69, "XEN_DOMCTL_getnodeaffinity";
    XEN_DOMCTL_GET_CPU_POLICY: u32 = 82, "XEN_DOMCTL_get_cpu_policy";
    XEN_DOMCTL_SET_CPU_POLICY: u32 = 83, "XEN_DOMCTL_set_cpu_policy";
    XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE: u32 = 85, "XEN_DOMCTL_get_paging_mempool_size";
    XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86, "XEN_DOMCTL_set_paging_mempool_size";
    XEN_VCPUAFFINITY_HARD: u32 = 1 << 0, "XEN_VCPUAFFINITY_HARD";
    XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1, "XEN_VCPUAFFINITY_SOFT";
    XEN_VCPUAFFINITY_FORCE: u32 = 1 << 2, "XEN_VCPUAFFINITY_FORCE";
    XEN_DOMCTL_SHADOW_OP_OFF: u32 = 0, "XEN_DOMCTL_SHADOW_OP_OFF";
    XEN_DOMCTL_SHADOW_OP_ENABLE: u32 = 32, "XEN_DOMCTL_SHADOW_OP_ENABLE";
    XEN_DOMCTL_SHADOW_OP_CLEAN: u32 = 11, "XEN_DOMCTL_SHADOW_OP_CLEAN";
    XEN_DOMCTL_SHADOW_OP_PEEK: u32 = 12, "XEN_DOMCTL_SHADOW_OP_PEEK";
    XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION: u32 = 30, "XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION";
    XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION: u32 = 31, "XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION";
    XEN_DOMCTL_SHADOW_OP_ENABLE_TEST: u32 = 1, "XEN_DOMCTL_SHADOW_OP_ENABLE_TEST";
    XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY: u32 = 2, "XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY";
    XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY: u32 = 1 << 2, "XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY";
    XEN_SCHEDULER_CREDIT: u32 = 5, "XEN_SCHEDULER_CREDIT";
    XEN_SCHEDULER_CREDIT2: u32 = 6, "XEN_SCHEDULER_CREDIT2";
    XEN_SCHEDULER_ARINC653: u32 = 7, "XEN_SCHEDULER_ARINC653";
    XEN_SCHEDULER_RTDS: u32 = 8, "XEN_SCHEDULER_RTDS";
    XEN_SCHEDULER_NULL: u32 = 9, "XEN_SCHEDULER_NULL";
    XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0, "XEN_DOMCTL_SCHEDOP_putinfo";
    XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1, "XEN_DOMCTL_SCHEDOP_getinfo";
    XEN_DOMCTL_SCHEDOP_PUTVCPUINFO: u32 = 2, "XEN_DOMCTL_SCHEDOP_putvcpuinfo";
    XEN_DOMCTL_SCHEDOP_GETVCPUINFO: u32 = 3, "XEN_DOMCTL_SCHEDOP_getvcpuinfo";
    XEN_DOMCTL_SCHEDRT_EXTRA_BIT: u32 = 0, "_XEN_DOMCTL_SCHEDRT_extra";
    XEN_DOMCTL_SCHEDRT_EXTRA: u32 = 1, "XEN_DOMCTL_SCHEDRT_extra";
    XEN_DOMCTL_CDF_HVM: u32 = 1 << 0, "XEN_DOMCTL_CDF_hvm";
    XEN_DOMCTL_CDF_HAP: u32 = 1 << 1, "XEN_DOMCTL_CDF_hap";
    XEN_DOMCTL_CDF_S3_INTEGRITY: u32 = 1 << 2, "XEN_DOMCTL_CDF_s3_integrity";
    XEN_DOMCTL_CDF_OOS_OFF: u32 = 1 << 3, "XEN_DOMCTL_CDF_oos_off";
    XEN_DOMCTL_CDF_XS_DOMAIN: u32 = 1 << 4, "XEN_DOMCTL_CDF_xs_domain";
    XEN_DOMCTL_CDF_IOMMU: u32 = 1 << 5, "XEN_DOMCTL_CDF_iommu";
    XEN_DOMCTL_CDF_NESTED_VIRT: u32 = 1 << 6, "XEN_DOMCTL_CDF_nested_virt";
    XEN_DOMCTL_CDF_VPMU: u32 = 1 << 7, "XEN_DOMCTL_CDF_vpmu";
    XEN_DOMCTL_CDF_MAX: u32 = 1 << 7, "XEN_DOMCTL_CDF_MAX";
    XEN_DOMCTL_GRANT_VERSION_MASK: u32 = 0xf, "XEN_DOMCTL_GRANT_version_mask";
    XEN_DOMINF_DYING: u32 = 1 << 0, "XEN_DOMINF_dying";
    XEN_DOMINF_HVM_GUEST: u32 = 1 << 1, "XEN_DOMINF_hvm_guest";
    XEN_DOMINF_SHUTDOWN: u32 = 1 << 2, "XEN_DOMINF_shutdown";
    XEN_DOMINF_PAUSED: u32 = 1 << 3, "XEN_DOMINF_paused";
    XEN_DOMINF_BLOCKED: u32 = 1 << 4, "XEN_DOMINF_blocked";
    XEN_DOMINF_RUNNING: u32 = 1 << 5, "XEN_DOMINF_running";
    XEN_DOMINF_DEBUGGED: u32 = 1 << 6, "XEN_DOMINF_debugged";
    XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7, "XEN_DOMINF_xs_domain";
    XEN_DOMINF_HAP: u32 = 1 << 8, "XEN_DOMINF_hap";
    XEN_DOMINF_SHUTDOWNMASK: u32 = 255, "XEN_DOMINF_shutdownmask";
    XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16, "XEN_DOMINF_shutdownshift";
    XEN_INVALID_MAX_VCPU_ID: u32 = !0, "XEN_INVALID_MAX_VCPU_ID";
    XEN_X86_EMU_LAPIC: u32 = 1 << 0, "XEN_X86_EMU_LAPIC";
    XEN_X86_EMU_PIT: u32 = 1 << 8, "XEN_X86_EMU_PIT";
    XEN_X86_MSR_RELAXED: u32 = 1 << 0, "XEN_X86_MSR_RELAXED";
}

xen_struct! {
    "domctl.h", "struct xen_arch_domainconfig", 8;
    /// `struct xen_arch_domainconfig` (arch-x86/xen.h, tools only): what a
    /// domain emulates (0 for a PV domain) and miscellaneous options.
    pub struct XenArchDomainconfig {
        /// `emulation_flags`: `XEN_X86_EMU_*`.
        emulation_flags: u32 = "emulation_flags",
        /// `misc_flags`: `XEN_X86_MSR_RELAXED`.
        misc_flags: u32 = "misc_flags",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_createdomain", 64;
    /// `struct xen_domctl_createdomain` (`XEN_DOMCTL_createdomain`): the new
    /// domain's configuration. The new domain's ID comes back in
    /// `xen_domctl.domain`.
    pub struct XenDomctlCreatedomain {
        /// `ssidref`: the XSM label (ignored without XSM).
        ssidref: u32 = "ssidref",
        /// `handle`: the toolstack's 16-byte UUID for the domain.
        handle: [u8; 16] = "handle",
        /// `flags`: `XEN_DOMCTL_CDF_*`.
        flags: u32 = "flags",
        /// `iommu_opts`: `XEN_DOMCTL_IOMMU_*`.
        iommu_opts: u32 = "iommu_opts",
        /// `max_vcpus`: at least 1.
        max_vcpus: u32 = "max_vcpus",
        /// `max_evtchn_port`
        max_evtchn_port: u32 = "max_evtchn_port",
        /// `max_grant_frames`: < 0 for the hypervisor's default.
        max_grant_frames: i32 = "max_grant_frames",
        /// `max_maptrack_frames`: < 0 for the hypervisor's default.
        max_maptrack_frames: i32 = "max_maptrack_frames",
        /// `grant_opts`: the highest grant-table version in the low 4 bits.
        grant_opts: u32 = "grant_opts",
        /// `vmtrace_size`: per-vCPU trace buffer bytes, 0 = none.
        vmtrace_size: u32 = "vmtrace_size",
        /// `cpupool_id`
        cpupool_id: u32 = "cpupool_id",
        /// `arch`
        arch: XenArchDomainconfig = "arch",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_getdomaininfo", 112;
    /// `struct xen_domctl_getdomaininfo` (`XEN_DOMCTL_getdomaininfo`): the
    /// state of the first domain whose ID is at least the one asked for.
    pub struct XenDomctlGetdomaininfo {
        /// `domain`: the domain described (also in `xen_domctl.domain`).
        domain: u16 = "domain",
        /// `pad1`
        pad1: u16 = "pad1",
        /// `flags`: `XEN_DOMINF_*`, the shutdown code in bits 16..24.
        flags: u32 = "flags",
        /// `tot_pages`: frames the domain owns.
        tot_pages: u64 = "tot_pages",
        /// `max_pages`
        max_pages: u64 = "max_pages",
        /// `outstanding_pages`: claimed, not yet allocated.
        outstanding_pages: u64 = "outstanding_pages",
        /// `shr_pages`: shared through memory sharing.
        shr_pages: u64 = "shr_pages",
        /// `paged_pages`: paged out.
        paged_pages: u64 = "paged_pages",
        /// `shared_info_frame`: the shared_info page's frame.
        shared_info_frame: u64 = "shared_info_frame",
        /// `cpu_time`: ns the vCPUs have run.
        cpu_time: u64 = "cpu_time",
        /// `nr_online_vcpus`
        nr_online_vcpus: u32 = "nr_online_vcpus",
        /// `max_vcpu_id`: [`XEN_INVALID_MAX_VCPU_ID`] without vCPUs.
        max_vcpu_id: u32 = "max_vcpu_id",
        /// `ssidref`
        ssidref: u32 = "ssidref",
        /// `handle`: the UUID given at creation.
        handle: [u8; 16] = "handle",
        /// `cpupool`
        cpupool: u32 = "cpupool",
        /// `gpaddr_bits`: the guest physical address width.
        gpaddr_bits: u8 = "gpaddr_bits",
        /// `pad2`
        pad2: [u8; 7] = "pad2",
        /// `arch_config`
        arch_config: XenArchDomainconfig = "arch_config",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_max_vcpus", 4;
    /// `struct xen_domctl_max_vcpus` (`XEN_DOMCTL_max_vcpus`): creates the
    /// domain's vCPUs; `max` must be `createdomain`'s `max_vcpus`.
    pub struct XenDomctlMaxVcpus {
        /// `max`
        max: u32 = "max",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_vcpucontext", 16;
    /// `struct xen_domctl_vcpucontext` (`XEN_DOMCTL_setvcpucontext`): a
    /// vCPU and the `vcpu_guest_context` it starts from.
    pub struct XenDomctlVcpucontext {
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `ctxt`
        ctxt: GuestHandle<crate::arch_x86::VcpuGuestContext> = "ctxt" handle,
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_max_mem", 8;
    /// `struct xen_domctl_max_mem` (`XEN_DOMCTL_max_mem`).
    pub struct XenDomctlMaxMem {
        /// `max_memkb`: the new limit in KiB.
        max_memkb: u64 = "max_memkb",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_sched_credit", 4;
    /// `struct xen_domctl_sched_credit`: the credit scheduler's parameters.
    pub struct XenDomctlSchedCredit {
        /// `weight`: relative share; 0 in a `putinfo` keeps the current one.
        weight: u16 = "weight",
        /// `cap`: percent of one CPU, 0 = none; 0xffff in a `putinfo`
        /// keeps the current one.
        cap: u16 = "cap",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_sched_credit2", 4;
    /// `struct xen_domctl_sched_credit2`.
    pub struct XenDomctlSchedCredit2 {
        /// `weight`
        weight: u16 = "weight",
        /// `cap`
        cap: u16 = "cap",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_sched_rtds", 12;
    /// `struct xen_domctl_sched_rtds`.
    pub struct XenDomctlSchedRtds {
        /// `period` (µs)
        period: u32 = "period",
        /// `budget` (µs)
        budget: u32 = "budget",
        /// `flags`: `XEN_DOMCTL_SCHEDRT_*`.
        flags: u32 = "flags",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_schedparam_vcpu", 16;
    /// `struct xen_domctl_schedparam_vcpu`: one vCPU's parameters.
    pub struct XenDomctlSchedparamVcpu {
        /// `u`: credit, credit2 or rtds parameters.
        u: [u32; 3] = "u" union("u.credit", "u.credit2", "u.rtds"),
        /// `vcpuid`
        vcpuid: u32 = "vcpuid",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_scheduler_op", 24;
    /// `struct xen_domctl_scheduler_op` (`XEN_DOMCTL_scheduler_op`).
    pub struct XenDomctlSchedulerOp {
        /// `sched_id`: `XEN_SCHEDULER_*`; must be the running scheduler's.
        sched_id: u32 = "sched_id",
        /// `cmd`: `XEN_DOMCTL_SCHEDOP_*`.
        cmd: u32 = "cmd",
        /// `u`: credit parameters (first 4 bytes), credit2, rtds, or the
        /// per-vCPU array `v`. IN/OUT.
        u: [u64; 2] = "u" union("u.credit", "u.credit2", "u.rtds", "u.v"),
    }
}

xen_struct! {
    "domctl.h", "__typeof__(((struct xen_domctl_scheduler_op *)0)->u.v)", 16;
    /// `xen_domctl_scheduler_op.u.v`: per-vCPU parameters.
    pub struct XenDomctlSchedulerOpVcpus {
        /// `vcpus`
        vcpus: GuestHandle<XenDomctlSchedparamVcpu> = "vcpus" handle,
        /// `nr_vcpus`: IN the array's length, OUT the elements processed.
        nr_vcpus: u32 = "nr_vcpus",
        /// `padding`
        padding: u32 = "padding",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_vcpuaffinity", 40;
    /// `struct xen_domctl_vcpuaffinity` (`XEN_DOMCTL_{set,get}vcpuaffinity`).
    pub struct XenDomctlVcpuaffinity {
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// `flags`: `XEN_VCPUAFFINITY_*`.
        flags: u32 = "flags",
        /// `cpumap_hard`: IN/OUT.
        cpumap_hard: crate::sysctl::XenctlBitmap = "cpumap_hard",
        /// `cpumap_soft`: IN/OUT.
        cpumap_soft: crate::sysctl::XenctlBitmap = "cpumap_soft",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_nodeaffinity", 16;
    /// `struct xen_domctl_nodeaffinity` (`XEN_DOMCTL_{set,get}nodeaffinity`).
    pub struct XenDomctlNodeaffinity {
        /// `nodemap`
        nodemap: crate::sysctl::XenctlBitmap = "nodemap",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_tsc_info", 24;
    /// `struct xen_domctl_tsc_info` (`XEN_DOMCTL_{set,get}tscinfo`).
    pub struct XenDomctlTscInfo {
        /// `tsc_mode`: 0 default, 1 always emulate, 2 never emulate.
        tsc_mode: u32 = "tsc_mode",
        /// `gtsc_khz`
        gtsc_khz: u32 = "gtsc_khz",
        /// `incarnation`
        incarnation: u32 = "incarnation",
        /// `pad`
        pad: u32 = "pad",
        /// `elapsed_nsec`
        elapsed_nsec: u64 = "elapsed_nsec",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_cpu_policy", 40;
    /// `struct xen_domctl_cpu_policy` (`XEN_DOMCTL_{get,set}_cpu_policy`).
    pub struct XenDomctlCpuPolicy {
        /// `nr_leaves`: IN/OUT.
        nr_leaves: u32 = "nr_leaves",
        /// `nr_msrs`: IN/OUT.
        nr_msrs: u32 = "nr_msrs",
        /// `leaves`
        leaves: GuestHandle<crate::arch_x86::CpuidLeaf> = "leaves" handle,
        /// `msrs`
        msrs: GuestHandle<crate::arch_x86::MsrEntry> = "msrs" handle,
        /// `err_leaf`: OUT, the leaf a refused policy failed on.
        err_leaf: u32 = "err_leaf",
        /// `err_subleaf`
        err_subleaf: u32 = "err_subleaf",
        /// `err_msr`
        err_msr: u32 = "err_msr",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_address_size", 4;
    /// `struct xen_domctl_address_size` (`XEN_DOMCTL_{set,get}_address_size`).
    pub struct XenDomctlAddressSize {
        /// `size`: 32 or 64.
        size: u32 = "size",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_getvcpuinfo", 24;
    /// `struct xen_domctl_getvcpuinfo` (`XEN_DOMCTL_getvcpuinfo`).
    pub struct XenDomctlGetvcpuinfo {
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// `online`
        online: u8 = "online",
        /// `blocked`
        blocked: u8 = "blocked",
        /// `running`
        running: u8 = "running",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 1] = "",
        /// `cpu_time`: ns it has run.
        cpu_time: u64 = "cpu_time",
        /// `cpu`: the CPU it runs on.
        cpu: u32 = "cpu",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_settimeoffset", 8;
    /// `struct xen_domctl_settimeoffset` (`XEN_DOMCTL_settimeoffset`).
    pub struct XenDomctlSettimeoffset {
        /// `time_offset_seconds`: added to the domain's wallclock.
        time_offset_seconds: i64 = "time_offset_seconds",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_shadow_op_stats", 8;
    /// `struct xen_domctl_shadow_op_stats`.
    pub struct XenDomctlShadowOpStats {
        /// `fault_count`
        fault_count: u32 = "fault_count",
        /// `dirty_count`
        dirty_count: u32 = "dirty_count",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_shadow_op", 40;
    /// `struct xen_domctl_shadow_op` (`XEN_DOMCTL_shadow_op`).
    pub struct XenDomctlShadowOp {
        /// `op`: `XEN_DOMCTL_SHADOW_OP_*`.
        op: u32 = "op",
        /// `mode`
        mode: u32 = "mode",
        /// `mb`: the shadow pool in MiB.
        mb: u32 = "mb",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
        /// `dirty_bitmap`
        dirty_bitmap: GuestHandle<u8> = "dirty_bitmap" handle,
        /// `pages`
        pages: u64 = "pages",
        /// `stats`
        stats: XenDomctlShadowOpStats = "stats",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_paging_mempool", 8;
    /// `struct xen_domctl_paging_mempool`
    /// (`XEN_DOMCTL_{get,set}_paging_mempool_size`).
    pub struct XenDomctlPagingMempool {
        /// `size` in bytes.
        size: u64 = "size",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl", 144;
    /// `struct xen_domctl`: every domain-control operation's envelope.
    pub struct XenDomctl {
        /// `cmd`: `XEN_DOMCTL_*`.
        cmd: u32 = "cmd",
        /// `interface_version`: must be [`XEN_DOMCTL_INTERFACE_VERSION`].
        interface_version: u32 = "interface_version",
        /// `domain`: the domain operated on.
        domain: u16 = "domain",
        /// `_pad`
        _pad: [u16; 3] = "_pad",
        /// `u`: the operation's arguments (128 bytes).
        u: [u64; 16] = "u" union(
            "u.createdomain", "u.getdomaininfo", "u.scheduler_op", "u.max_mem", "u.vcpucontext", "u.max_vcpus",
            "u.vcpuaffinity", "u.nodeaffinity", "u.tsc_info", "u.cpu_policy", "u.address_size", "u.getvcpuinfo",
            "u.settimeoffset", "u.shadow_op", "u.paging_mempool", "u.setdomainhandle", "u.hypercall_init", "u.pad"
        ),
    }
}

xen_structs!(
    XenArchDomainconfig,
    XenDomctlCreatedomain,
    XenDomctlGetdomaininfo,
    XenDomctlMaxMem,
    XenDomctlVcpucontext,
    XenDomctlMaxVcpus,
    XenDomctlSchedCredit,
    XenDomctlSchedCredit2,
    XenDomctlSchedRtds,
    XenDomctlSchedparamVcpu,
    XenDomctlSchedulerOp,
    XenDomctlSchedulerOpVcpus,
    XenDomctlVcpuaffinity,
    XenDomctlNodeaffinity,
    XenDomctlTscInfo,
    XenDomctlCpuPolicy,
    XenDomctlAddressSize,
    XenDomctlGetvcpuinfo,
    XenDomctlSettimeoffset,
    XenDomctlShadowOpStats,
    XenDomctlShadowOp,
    XenDomctlPagingMempool,
    XenDomctl,
);

impl XenDomctl {
    /// An envelope for `cmd` on `domain` with this interface version.
    pub fn new(cmd: u32, domain: u16) -> Self {
        XenDomctl { cmd, interface_version: XEN_DOMCTL_INTERFACE_VERSION, domain, _pad: [0; 3], u: [0; 16] }
    }

    crate::wire::union_members! {
        scheduler_op / set_scheduler_op: u: [u64; 16] => XenDomctlSchedulerOp, "u.scheduler_op";
        createdomain / set_createdomain: u: [u64; 16] => XenDomctlCreatedomain, "u.createdomain";
        getdomaininfo / set_getdomaininfo: u: [u64; 16] => XenDomctlGetdomaininfo, "u.getdomaininfo";
        max_mem / set_max_mem: u: [u64; 16] => XenDomctlMaxMem, "u.max_mem";
        vcpucontext / set_vcpucontext: u: [u64; 16] => XenDomctlVcpucontext, "u.vcpucontext";
        max_vcpus / set_max_vcpus: u: [u64; 16] => XenDomctlMaxVcpus, "u.max_vcpus";
        vcpuaffinity / set_vcpuaffinity: u: [u64; 16] => XenDomctlVcpuaffinity, "u.vcpuaffinity";
        nodeaffinity / set_nodeaffinity: u: [u64; 16] => XenDomctlNodeaffinity, "u.nodeaffinity";
        tsc_info / set_tsc_info: u: [u64; 16] => XenDomctlTscInfo, "u.tsc_info";
        cpu_policy / set_cpu_policy: u: [u64; 16] => XenDomctlCpuPolicy, "u.cpu_policy";
        address_size / set_address_size: u: [u64; 16] => XenDomctlAddressSize, "u.address_size";
        getvcpuinfo / set_getvcpuinfo: u: [u64; 16] => XenDomctlGetvcpuinfo, "u.getvcpuinfo";
        settimeoffset / set_settimeoffset: u: [u64; 16] => XenDomctlSettimeoffset, "u.settimeoffset";
        shadow_op / set_shadow_op: u: [u64; 16] => XenDomctlShadowOp, "u.shadow_op";
        paging_mempool / set_paging_mempool: u: [u64; 16] => XenDomctlPagingMempool, "u.paging_mempool";
        setdomainhandle / set_setdomainhandle: u: [u64; 16] => [u8; 16], "u.setdomainhandle";
        hypercall_init / set_hypercall_init: u: [u64; 16] => u64, "u.hypercall_init";
    }
}

impl XenDomctlSchedulerOp {
    crate::wire::union_members! {
        credit / set_credit: u: [u64; 2] => XenDomctlSchedCredit, "u.credit";
        credit2 / set_credit2: u: [u64; 2] => XenDomctlSchedCredit2, "u.credit2";
        rtds / set_rtds: u: [u64; 2] => XenDomctlSchedRtds, "u.rtds";
        vcpus / set_vcpus: u: [u64; 2] => XenDomctlSchedulerOpVcpus, "u.v";
    }
}

impl XenDomctlSchedparamVcpu {
    crate::wire::union_members! {
        credit / set_credit: u: [u32; 3] => XenDomctlSchedCredit, "u.credit";
        credit2 / set_credit2: u: [u32; 3] => XenDomctlSchedCredit2, "u.credit2";
        rtds / set_rtds: u: [u32; 3] => XenDomctlSchedRtds, "u.rtds";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn scheduler_op_sits_where_c_puts_it() {
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 3);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd: XEN_DOMCTL_SCHEDOP_PUTINFO, u: [0; 2] };
        s.set_credit(XenDomctlSchedCredit { weight: 512, cap: 25 });
        op.set_scheduler_op(s);
        let b = op.as_bytes();
        assert_eq!(&b[0..4], &16u32.to_le_bytes(), "cmd");
        assert_eq!(&b[4..8], &0x15u32.to_le_bytes(), "interface_version");
        assert_eq!(&b[8..10], &3u16.to_le_bytes(), "domain");
        // u at 16: sched_id, cmd, then u.credit {weight, cap}.
        assert_eq!(&b[16..28], &[5, 0, 0, 0, 0, 0, 0, 0, 0, 2, 25, 0]);
        let back = op.scheduler_op();
        assert_eq!((back.credit().weight, back.credit().cap), (512, 25));
    }
}
