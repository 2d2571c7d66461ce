//! System control (`sysctl.h`), the toolstack's interface to the machine as
//! a whole: the `xen_sysctl` envelope and the operations xenish serves
//! (`physinfo`, `getdomaininfolist`). Only a privileged domain may use it, and only with this
//! exact interface version. Xen compiles this header for its tools only
//! (`__XEN_TOOLS__`); the conformance probe does the same.

xen_consts! {
    "sysctl.h";
    XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15, "XEN_SYSCTL_INTERFACE_VERSION";
    XEN_SYSCTL_READCONSOLE: u32 = 1, "XEN_SYSCTL_readconsole";
    XEN_SYSCTL_PHYSINFO: u32 = 3, "XEN_SYSCTL_physinfo";
    XEN_SYSCTL_SCHED_ID: u32 = 4, "XEN_SYSCTL_sched_id";
    XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6, "XEN_SYSCTL_getdomaininfolist";
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
    "sysctl.h", "struct xen_sysctl", 136;
    /// `struct xen_sysctl`: every system-control operation's envelope.
    pub struct XenSysctl {
        /// `cmd`: `XEN_SYSCTL_*`.
        cmd: u32 = "cmd",
        /// `interface_version`: must be [`XEN_SYSCTL_INTERFACE_VERSION`].
        interface_version: u32 = "interface_version",
        /// `u`: the operation's arguments (128 bytes).
        u: [u64; 16] = "u" union("u.physinfo", "u.getdomaininfolist", "u.pad"),
    }
}

xen_structs!(XenSysctlPhysinfo, XenSysctlGetdomaininfolist, XenSysctl);

impl XenSysctl {
    /// An envelope for `cmd` with this interface version.
    pub fn new(cmd: u32) -> Self {
        XenSysctl { cmd, interface_version: XEN_SYSCTL_INTERFACE_VERSION, u: [0; 16] }
    }

    crate::wire::union_members! {
        physinfo / set_physinfo: u: [u64; 16] => XenSysctlPhysinfo, "u.physinfo";
        getdomaininfolist / set_getdomaininfolist: u: [u64; 16] => XenSysctlGetdomaininfolist, "u.getdomaininfolist";
    }
}
