//! Machine-check architecture (`arch-x86/xen-mca.h`): the `xen_mc`
//! envelope of `HYPERVISOR_mca` and the operation a PV control domain's
//! kernel issues at boot, `XEN_MC_physcpuinfo` (Linux's `xen-mcelog`
//! learns the physical CPUs with it).

xen_consts! {
    "arch-x86/xen-mca.h";
    HYPERVISOR_MCA: u32 = 0x30, "__HYPERVISOR_mca";
    XEN_MCA_INTERFACE_VERSION: u32 = 0x01ec_c003, "XEN_MCA_INTERFACE_VERSION";
    XEN_MC_FETCH: u32 = 1, "XEN_MC_fetch";
    XEN_MC_PHYSCPUINFO: u32 = 3, "XEN_MC_physcpuinfo";
    XEN_MC_NODATA: u32 = 0x2, "XEN_MC_NODATA";
    MC_NCAPS: usize = 7, "MC_NCAPS";
}

xen_struct! {
    "arch-x86/xen-mca.h", "struct mcinfo_msr", 16;
    /// `struct mcinfo_msr`: an MSR and its value.
    pub struct McinfoMsr {
        /// `reg`
        reg: u64 = "reg",
        /// `value`
        value: u64 = "value",
    }
}

xen_struct! {
    "arch-x86/xen-mca.h", "struct mcinfo_logical_cpu", 304;
    /// `struct mcinfo_logical_cpu` (`XEN_MC_physcpuinfo`): one physical
    /// CPU as machine-check logging describes it.
    pub struct McinfoLogicalCpu {
        /// `mc_cpunr`
        mc_cpunr: u32 = "mc_cpunr",
        /// `mc_chipid`
        mc_chipid: u32 = "mc_chipid",
        /// `mc_coreid`
        mc_coreid: u16 = "mc_coreid",
        /// `mc_threadid`
        mc_threadid: u16 = "mc_threadid",
        /// `mc_apicid`
        mc_apicid: u32 = "mc_apicid",
        /// `mc_clusterid`
        mc_clusterid: u32 = "mc_clusterid",
        /// `mc_ncores`
        mc_ncores: u32 = "mc_ncores",
        /// `mc_ncores_active`
        mc_ncores_active: u32 = "mc_ncores_active",
        /// `mc_nthreads`
        mc_nthreads: u32 = "mc_nthreads",
        /// `mc_cpuid_level`
        mc_cpuid_level: i32 = "mc_cpuid_level",
        /// `mc_family`
        mc_family: u32 = "mc_family",
        /// `mc_vendor`: Xen's `X86_VENDOR_*`.
        mc_vendor: u32 = "mc_vendor",
        /// `mc_model`
        mc_model: u32 = "mc_model",
        /// `mc_step`
        mc_step: u32 = "mc_step",
        /// `mc_vendorid`
        mc_vendorid: [u8; 16] = "mc_vendorid" chars,
        /// `mc_brandid`
        mc_brandid: [u8; 64] = "mc_brandid" chars,
        /// `mc_cpu_caps`: the first feature words.
        mc_cpu_caps: [u32; 7] = "mc_cpu_caps",
        /// `mc_cache_size`
        mc_cache_size: u32 = "mc_cache_size",
        /// `mc_cache_alignment`
        mc_cache_alignment: u32 = "mc_cache_alignment",
        /// `mc_nmsrvals`
        mc_nmsrvals: i32 = "mc_nmsrvals",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `mc_msrvalues`
        mc_msrvalues: [McinfoMsr; 8] = "mc_msrvalues",
    }
}

xen_struct! {
    "arch-x86/xen-mca.h", "struct xen_mc_physcpuinfo", 16;
    /// `struct xen_mc_physcpuinfo` (`XEN_MC_physcpuinfo`).
    pub struct XenMcPhyscpuinfo {
        /// `ncpus`: IN the array's length, OUT the CPUs described (or how
        /// many there are, with a null array).
        ncpus: u32 = "ncpus",
        /// `_pad0`
        _pad0: u32 = "_pad0",
        /// `info`
        info: crate::arch_x86::GuestHandle<McinfoLogicalCpu> = "info" handle,
    }
}

xen_struct! {
    "arch-x86/xen-mca.h", "struct xen_mc", 152;
    /// `struct xen_mc`: the machine-check hypercall's envelope.
    pub struct XenMc {
        /// `cmd`: `XEN_MC_*`.
        cmd: u32 = "cmd",
        /// `interface_version`: must be [`XEN_MCA_INTERFACE_VERSION`].
        interface_version: u32 = "interface_version",
        /// `u`: the operation's arguments (144 bytes).
        u: [u64; 18] = "u" union("u.mc_fetch", "u.mc_physcpuinfo", "u.mc_msrinject", "u.mc_mceinject"),
    }
}

xen_structs!(McinfoMsr, McinfoLogicalCpu, XenMcPhyscpuinfo, XenMc);

impl XenMc {
    /// An envelope for `cmd` with this interface version.
    pub fn new(cmd: u32) -> Self {
        XenMc { cmd, interface_version: XEN_MCA_INTERFACE_VERSION, u: [0; 18] }
    }

    crate::wire::union_members! {
        physcpuinfo / set_physcpuinfo: u: [u64; 18] => XenMcPhyscpuinfo, "u.mc_physcpuinfo";
    }
}
