//! System control (`sysctl.h`), the toolstack's interface to the machine as
//! a whole: the `xen_sysctl` envelope and the operations xenish serves
//! (`physinfo`, `getdomaininfolist`, `readconsole`, `sched_id`, `cpupool_op`,
//! `scheduler_op`, the CPU and NUMA topology, `getcpuinfo`, `availheap`,
//! the CPU featuresets and policies). Only a privileged domain may use it,
//! and only with this exact interface version. Xen compiles this header for its tools only
//! (`__XEN_TOOLS__`); the conformance probe does the same.

xen_consts! {
    "sysctl.h";
    XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15, "XEN_SYSCTL_INTERFACE_VERSION";
    XEN_SYSCTL_READCONSOLE: u32 = 1, "XEN_SYSCTL_readconsole";
    XEN_SYSCTL_PHYSINFO: u32 = 3, "XEN_SYSCTL_physinfo";
    XEN_SYSCTL_SCHED_ID: u32 = 4, "XEN_SYSCTL_sched_id";
    XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6, "XEN_SYSCTL_getdomaininfolist";
    XEN_SYSCTL_DEBUG_KEYS: u32 = 7, "XEN_SYSCTL_debug_keys";
    XEN_SYSCTL_GETCPUINFO: u32 = 8, "XEN_SYSCTL_getcpuinfo";
    XEN_SYSCTL_AVAILHEAP: u32 = 9, "XEN_SYSCTL_availheap";
    XEN_SYSCTL_CPUTOPOINFO: u32 = 16, "XEN_SYSCTL_cputopoinfo";
    XEN_SYSCTL_NUMAINFO: u32 = 17, "XEN_SYSCTL_numainfo";
    XEN_SYSCTL_CPUPOOL_OP: u32 = 18, "XEN_SYSCTL_cpupool_op";
    XEN_SYSCTL_SCHEDULER_OP: u32 = 19, "XEN_SYSCTL_scheduler_op";
    XEN_SYSCTL_GET_CPU_FEATURESET: u32 = 26, "XEN_SYSCTL_get_cpu_featureset";
    XEN_SYSCTL_GET_CPU_POLICY: u32 = 29, "XEN_SYSCTL_get_cpu_policy";
    XEN_SYSCTL_CPUPOOL_OP_CREATE: u32 = 1, "XEN_SYSCTL_CPUPOOL_OP_CREATE";
    XEN_SYSCTL_CPUPOOL_OP_DESTROY: u32 = 2, "XEN_SYSCTL_CPUPOOL_OP_DESTROY";
    XEN_SYSCTL_CPUPOOL_OP_INFO: u32 = 3, "XEN_SYSCTL_CPUPOOL_OP_INFO";
    XEN_SYSCTL_CPUPOOL_OP_ADDCPU: u32 = 4, "XEN_SYSCTL_CPUPOOL_OP_ADDCPU";
    XEN_SYSCTL_CPUPOOL_OP_RMCPU: u32 = 5, "XEN_SYSCTL_CPUPOOL_OP_RMCPU";
    XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN: u32 = 6, "XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN";
    XEN_SYSCTL_CPUPOOL_OP_FREEINFO: u32 = 7, "XEN_SYSCTL_CPUPOOL_OP_FREEINFO";
    XEN_SYSCTL_CPUPOOL_PAR_ANY: u32 = 0xffff_ffff, "XEN_SYSCTL_CPUPOOL_PAR_ANY";
    XEN_SYSCTL_SCHEDOP_PUTINFO: u32 = 0, "XEN_SYSCTL_SCHEDOP_putinfo";
    XEN_SYSCTL_SCHEDOP_GETINFO: u32 = 1, "XEN_SYSCTL_SCHEDOP_getinfo";
    XEN_SYSCTL_CSCHED_TSLICE_MAX: u32 = 1000, "XEN_SYSCTL_CSCHED_TSLICE_MAX";
    XEN_SYSCTL_CSCHED_TSLICE_MIN: u32 = 1, "XEN_SYSCTL_CSCHED_TSLICE_MIN";
    XEN_SYSCTL_CSCHED_MGR_DLY_MAX_US: u32 = 100 * 1000, "XEN_SYSCTL_CSCHED_MGR_DLY_MAX_US";
    XEN_SYSCTL_CPU_FEATURESET_RAW: u32 = 0, "XEN_SYSCTL_cpu_featureset_raw";
    XEN_SYSCTL_CPU_FEATURESET_HOST: u32 = 1, "XEN_SYSCTL_cpu_featureset_host";
    XEN_SYSCTL_CPU_FEATURESET_PV: u32 = 2, "XEN_SYSCTL_cpu_featureset_pv";
    XEN_SYSCTL_CPU_FEATURESET_HVM: u32 = 3, "XEN_SYSCTL_cpu_featureset_hvm";
    XEN_SYSCTL_CPU_FEATURESET_PV_MAX: u32 = 4, "XEN_SYSCTL_cpu_featureset_pv_max";
    XEN_SYSCTL_CPU_FEATURESET_HVM_MAX: u32 = 5, "XEN_SYSCTL_cpu_featureset_hvm_max";
    XEN_SYSCTL_CPU_POLICY_RAW: u32 = 0, "XEN_SYSCTL_cpu_policy_raw";
    XEN_SYSCTL_CPU_POLICY_HOST: u32 = 1, "XEN_SYSCTL_cpu_policy_host";
    XEN_SYSCTL_CPU_POLICY_PV_MAX: u32 = 2, "XEN_SYSCTL_cpu_policy_pv_max";
    XEN_SYSCTL_CPU_POLICY_HVM_MAX: u32 = 3, "XEN_SYSCTL_cpu_policy_hvm_max";
    XEN_SYSCTL_CPU_POLICY_PV_DEFAULT: u32 = 4, "XEN_SYSCTL_cpu_policy_pv_default";
    XEN_SYSCTL_CPU_POLICY_HVM_DEFAULT: u32 = 5, "XEN_SYSCTL_cpu_policy_hvm_default";
    XEN_INVALID_CORE_ID: u32 = !0, "XEN_INVALID_CORE_ID";
    XEN_INVALID_SOCKET_ID: u32 = !0, "XEN_INVALID_SOCKET_ID";
    XEN_INVALID_NODE_ID: u32 = !0, "XEN_INVALID_NODE_ID";
    XEN_INVALID_MEM_SZ: u32 = !0, "XEN_INVALID_MEM_SZ";
    XEN_INVALID_NODE_DIST: u32 = !0, "XEN_INVALID_NODE_DIST";
    XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0, "XEN_SYSCTL_PHYSCAP_hvm";
    XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1, "XEN_SYSCTL_PHYSCAP_pv";
    XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2, "XEN_SYSCTL_PHYSCAP_directio";
    XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3, "XEN_SYSCTL_PHYSCAP_hap";
    XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4, "XEN_SYSCTL_PHYSCAP_shadow";
    XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8, "XEN_SYSCTL_PHYSCAP_gnttab_v1";
    XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9, "XEN_SYSCTL_PHYSCAP_gnttab_v2";
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_physinfo", 112;
    /// `struct xen_sysctl_physinfo` (`XEN_SYSCTL_physinfo`): the machine's
    /// CPUs and memory as the hypervisor sees them.
    pub struct XenSysctlPhysinfo {
        /// `threads_per_core`
        threads_per_core: u32 = "threads_per_core",
        /// `cores_per_socket`
        cores_per_socket: u32 = "cores_per_socket",
        /// `nr_cpus`: CPUs online.
        nr_cpus: u32 = "nr_cpus",
        /// `max_cpu_id`
        max_cpu_id: u32 = "max_cpu_id",
        /// `nr_nodes`: NUMA nodes online.
        nr_nodes: u32 = "nr_nodes",
        /// `max_node_id`
        max_node_id: u32 = "max_node_id",
        /// `cpu_khz`
        cpu_khz: u32 = "cpu_khz",
        /// `capabilities`: `XEN_SYSCTL_PHYSCAP_*`.
        capabilities: u32 = "capabilities",
        /// `arch_capabilities`
        arch_capabilities: u32 = "arch_capabilities",
        /// `pad`
        pad: u32 = "pad",
        /// `total_pages`: RAM frames of the machine.
        total_pages: u64 = "total_pages",
        /// `free_pages`: frames no domain or the hypervisor holds.
        free_pages: u64 = "free_pages",
        /// `scrub_pages`: free frames still to be scrubbed.
        scrub_pages: u64 = "scrub_pages",
        /// `outstanding_pages`: claimed by domains, not yet allocated.
        outstanding_pages: u64 = "outstanding_pages",
        /// `max_mfn`: the largest machine frame number.
        max_mfn: u64 = "max_mfn",
        /// `hw_cap`: the boot CPU's feature words.
        hw_cap: [u32; 8] = "hw_cap",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_getdomaininfolist", 24;
    /// `struct xen_sysctl_getdomaininfolist` (`XEN_SYSCTL_getdomaininfolist`):
    /// the state of up to `max_domains` domains from `first_domain` on, in
    /// ID order.
    pub struct XenSysctlGetdomaininfolist {
        /// `first_domain`
        first_domain: u16 = "first_domain",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `max_domains`: the buffer's length in entries.
        max_domains: u32 = "max_domains",
        /// `buffer`
        buffer: crate::arch_x86::GuestHandle<crate::domctl::XenDomctlGetdomaininfo> = "buffer" handle,
        /// `num_domains`: OUT, the entries written.
        num_domains: u32 = "num_domains",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_readconsole", 24;
    /// `struct xen_sysctl_readconsole` (`XEN_SYSCTL_readconsole`): reads
    /// the hypervisor's console ring.
    pub struct XenSysctlReadconsole {
        /// `clear`: non-zero to consume what was read.
        clear: u8 = "clear",
        /// `incremental`: non-zero to start at `index`.
        incremental: u8 = "incremental",
        /// `pad0`
        pad0: u8 = "pad0",
        /// `pad1`
        pad1: u8 = "pad1",
        /// `index`: IN the start (if `incremental`), OUT where reading stopped.
        index: u32 = "index",
        /// `buffer`
        buffer: crate::arch_x86::GuestHandle<u8> = "buffer" handle,
        /// `count`: IN the buffer's size, OUT the bytes written.
        count: u32 = "count",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_sched_id", 4;
    /// `struct xen_sysctl_sched_id` (`XEN_SYSCTL_sched_id`).
    pub struct XenSysctlSchedId {
        /// `sched_id`: OUT, `XEN_SCHEDULER_*`.
        sched_id: u32 = "sched_id",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_cpuinfo", 8;
    /// `struct xen_sysctl_cpuinfo`: one CPU's idle time (ns).
    pub struct XenSysctlCpuinfo {
        /// `idletime`
        idletime: u64 = "idletime",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_getcpuinfo", 24;
    /// `struct xen_sysctl_getcpuinfo` (`XEN_SYSCTL_getcpuinfo`).
    pub struct XenSysctlGetcpuinfo {
        /// `max_cpus`: IN, the array's length.
        max_cpus: u32 = "max_cpus",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `info`
        info: crate::arch_x86::GuestHandle<XenSysctlCpuinfo> = "info" handle,
        /// `nr_cpus`: OUT, the entries written.
        nr_cpus: u32 = "nr_cpus",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_availheap", 24;
    /// `struct xen_sysctl_availheap` (`XEN_SYSCTL_availheap`): free memory
    /// in an address-width range of a node.
    pub struct XenSysctlAvailheap {
        /// `min_bitwidth`: 0 for any.
        min_bitwidth: u32 = "min_bitwidth",
        /// `max_bitwidth`: 0 for any.
        max_bitwidth: u32 = "max_bitwidth",
        /// `node`: -1 for all nodes.
        node: i32 = "node",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
        /// `avail_bytes`: OUT.
        avail_bytes: u64 = "avail_bytes",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_cputopo", 12;
    /// `struct xen_sysctl_cputopo`: where one CPU sits.
    pub struct XenSysctlCputopo {
        /// `core`
        core: u32 = "core",
        /// `socket`
        socket: u32 = "socket",
        /// `node`
        node: u32 = "node",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_cputopoinfo", 16;
    /// `struct xen_sysctl_cputopoinfo` (`XEN_SYSCTL_cputopoinfo`).
    pub struct XenSysctlCputopoinfo {
        /// `num_cpus`: IN the array's length, OUT the CPUs described (or
        /// the number there are, with a null array).
        num_cpus: u32 = "num_cpus",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
        /// `cputopo`
        cputopo: crate::arch_x86::GuestHandle<XenSysctlCputopo> = "cputopo" handle,
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_meminfo", 16;
    /// `struct xen_sysctl_meminfo`: one node's memory, in bytes.
    pub struct XenSysctlMeminfo {
        /// `memsize`
        memsize: u64 = "memsize",
        /// `memfree`
        memfree: u64 = "memfree",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_numainfo", 24;
    /// `struct xen_sysctl_numainfo` (`XEN_SYSCTL_numainfo`).
    pub struct XenSysctlNumainfo {
        /// `num_nodes`: IN the arrays' length, OUT the nodes described.
        num_nodes: u32 = "num_nodes",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
        /// `meminfo`
        meminfo: crate::arch_x86::GuestHandle<XenSysctlMeminfo> = "meminfo" handle,
        /// `distance`: `num_nodes` × `num_nodes` entries.
        distance: crate::arch_x86::GuestHandle<u32> = "distance" handle,
    }
}

xen_struct! {
    "xen.h, tools only", "struct xenctl_bitmap", 16;
    /// `struct xenctl_bitmap` (xen.h, tools only): a CPU or node bitmap in the caller's
    /// memory, bit `n` in byte `n / 8`.
    pub struct XenctlBitmap {
        /// `bitmap`
        bitmap: crate::arch_x86::GuestHandle<u8> = "bitmap" handle,
        /// `nr_bits`: the bitmap's length in bits.
        nr_bits: u32 = "nr_bits",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_cpupool_op", 40;
    /// `struct xen_sysctl_cpupool_op` (`XEN_SYSCTL_cpupool_op`).
    pub struct XenSysctlCpupoolOp {
        /// `op`: `XEN_SYSCTL_CPUPOOL_OP_*`.
        op: u32 = "op",
        /// `cpupool_id`
        cpupool_id: u32 = "cpupool_id",
        /// `sched_id`
        sched_id: u32 = "sched_id",
        /// `domid`
        domid: u32 = "domid",
        /// `cpu`
        cpu: u32 = "cpu",
        /// `n_dom`: OUT, the pool's domains.
        n_dom: u32 = "n_dom",
        /// `cpumap`: OUT, the pool's (or the free) CPUs.
        cpumap: XenctlBitmap = "cpumap",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_credit_schedule", 12;
    /// `struct xen_sysctl_credit_schedule`: the credit scheduler's global
    /// parameters.
    pub struct XenSysctlCreditSchedule {
        /// `tslice_ms`
        tslice_ms: u32 = "tslice_ms",
        /// `ratelimit_us`
        ratelimit_us: u32 = "ratelimit_us",
        /// `vcpu_migr_delay_us`
        vcpu_migr_delay_us: u32 = "vcpu_migr_delay_us",
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_scheduler_op", 32;
    /// `struct xen_sysctl_scheduler_op` (`XEN_SYSCTL_scheduler_op`): a
    /// pool's scheduler parameters.
    pub struct XenSysctlSchedulerOp {
        /// `cpupool_id`
        cpupool_id: u32 = "cpupool_id",
        /// `sched_id`: must be the pool's scheduler.
        sched_id: u32 = "sched_id",
        /// `cmd`: `XEN_SYSCTL_SCHEDOP_*`.
        cmd: u32 = "cmd",
        /// Padding (implicit in the C layout).
        _pad: [u8; 4] = "",
        /// `u`: the scheduler's parameters (credit's in the first 12 bytes).
        u: [u64; 2] = "u" union("u.sched_credit", "u.sched_credit2", "u.sched_arinc653"),
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_cpu_featureset", 16;
    /// `struct xen_sysctl_cpu_featureset` (`XEN_SYSCTL_get_cpu_featureset`).
    pub struct XenSysctlCpuFeatureset {
        /// `index`: `XEN_SYSCTL_cpu_featureset_*`.
        index: u32 = "index",
        /// `nr_features`: IN the array's length, OUT the words written (or
        /// the number there are, with a null array).
        nr_features: u32 = "nr_features",
        /// `features`
        features: crate::arch_x86::GuestHandle<u32> = "features" handle,
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl_cpu_policy", 32;
    /// `struct xen_sysctl_cpu_policy` (`XEN_SYSCTL_get_cpu_policy`).
    pub struct XenSysctlCpuPolicy {
        /// `index`: `XEN_SYSCTL_cpu_policy_*`.
        index: u32 = "index",
        /// `nr_leaves`: IN/OUT.
        nr_leaves: u32 = "nr_leaves",
        /// `nr_msrs`: IN/OUT.
        nr_msrs: u32 = "nr_msrs",
        /// `_rsvd`: must be zero.
        _rsvd: u32 = "_rsvd",
        /// `leaves`
        leaves: crate::arch_x86::GuestHandle<crate::arch_x86::CpuidLeaf> = "leaves" handle,
        /// `msrs`
        msrs: crate::arch_x86::GuestHandle<crate::arch_x86::MsrEntry> = "msrs" handle,
    }
}

xen_struct! {
    "sysctl.h", "struct xen_sysctl", 136;
    /// `struct xen_sysctl`: every system-control operation's envelope.
    pub struct XenSysctl {
        /// `cmd`: `XEN_SYSCTL_*`.
        cmd: u32 = "cmd",
        /// `interface_version`: must be [`XEN_SYSCTL_INTERFACE_VERSION`].
        interface_version: u32 = "interface_version",
        /// `u`: the operation's arguments (128 bytes).
        u: [u64; 16] = "u" union(
            "u.physinfo", "u.getdomaininfolist", "u.readconsole", "u.sched_id", "u.getcpuinfo", "u.availheap",
            "u.cputopoinfo", "u.numainfo", "u.cpupool_op", "u.scheduler_op", "u.cpu_featureset", "u.cpu_policy",
            "u.pad"
        ),
    }
}

xen_structs!(
    XenSysctlPhysinfo,
    XenSysctlGetdomaininfolist,
    XenSysctlReadconsole,
    XenSysctlSchedId,
    XenSysctlCpuinfo,
    XenSysctlGetcpuinfo,
    XenSysctlAvailheap,
    XenSysctlCputopo,
    XenSysctlCputopoinfo,
    XenSysctlMeminfo,
    XenSysctlNumainfo,
    XenctlBitmap,
    XenSysctlCpupoolOp,
    XenSysctlCreditSchedule,
    XenSysctlSchedulerOp,
    XenSysctlCpuFeatureset,
    XenSysctlCpuPolicy,
    XenSysctl,
);

impl XenSysctl {
    /// An envelope for `cmd` with this interface version.
    pub fn new(cmd: u32) -> Self {
        XenSysctl { cmd, interface_version: XEN_SYSCTL_INTERFACE_VERSION, u: [0; 16] }
    }

    crate::wire::union_members! {
        physinfo / set_physinfo: u: [u64; 16] => XenSysctlPhysinfo, "u.physinfo";
        getdomaininfolist / set_getdomaininfolist: u: [u64; 16] => XenSysctlGetdomaininfolist, "u.getdomaininfolist";
        readconsole / set_readconsole: u: [u64; 16] => XenSysctlReadconsole, "u.readconsole";
        sched_id / set_sched_id: u: [u64; 16] => XenSysctlSchedId, "u.sched_id";
        getcpuinfo / set_getcpuinfo: u: [u64; 16] => XenSysctlGetcpuinfo, "u.getcpuinfo";
        availheap / set_availheap: u: [u64; 16] => XenSysctlAvailheap, "u.availheap";
        cputopoinfo / set_cputopoinfo: u: [u64; 16] => XenSysctlCputopoinfo, "u.cputopoinfo";
        numainfo / set_numainfo: u: [u64; 16] => XenSysctlNumainfo, "u.numainfo";
        cpupool_op / set_cpupool_op: u: [u64; 16] => XenSysctlCpupoolOp, "u.cpupool_op";
        scheduler_op / set_scheduler_op: u: [u64; 16] => XenSysctlSchedulerOp, "u.scheduler_op";
        cpu_featureset / set_cpu_featureset: u: [u64; 16] => XenSysctlCpuFeatureset, "u.cpu_featureset";
        cpu_policy / set_cpu_policy: u: [u64; 16] => XenSysctlCpuPolicy, "u.cpu_policy";
    }
}

impl XenSysctlSchedulerOp {
    crate::wire::union_members! {
        sched_credit / set_sched_credit: u: [u64; 2] => XenSysctlCreditSchedule, "u.sched_credit";
    }
}
