//! Version queries (`version.h`): XENVER_* and their structs.

xen_consts! {
    "version.h";
    XENVER_VERSION: u32 = 0, "XENVER_version";
    XENVER_EXTRAVERSION: u32 = 1, "XENVER_extraversion";
    XENVER_COMPILE_INFO: u32 = 2, "XENVER_compile_info";
    XENVER_CAPABILITIES: u32 = 3, "XENVER_capabilities";
    XENVER_CHANGESET: u32 = 4, "XENVER_changeset";
    XENVER_PLATFORM_PARAMETERS: u32 = 5, "XENVER_platform_parameters";
    XENVER_GET_FEATURES: u32 = 6, "XENVER_get_features";
    XENVER_PAGESIZE: u32 = 7, "XENVER_pagesize";
    XENVER_GUEST_HANDLE: u32 = 8, "XENVER_guest_handle";
    XENVER_COMMANDLINE: u32 = 9, "XENVER_commandline";
    XENVER_BUILD_ID: u32 = 0xa, "XENVER_build_id";
    XEN_EXTRAVERSION_LEN: usize = 16, "XEN_EXTRAVERSION_LEN";
    XEN_CAPABILITIES_INFO_LEN: usize = 1024, "XEN_CAPABILITIES_INFO_LEN";
    XEN_CHANGESET_INFO_LEN: usize = 64, "XEN_CHANGESET_INFO_LEN";
    XEN_COMMANDLINE_LEN: usize = 1024, "sizeof(xen_commandline_t)";
    XEN_GUEST_HANDLE_LEN: usize = 16, "sizeof(xen_domain_handle_t)";
}

xen_struct! {
    "version.h", "struct xen_compile_info", 144;
    /// `struct xen_compile_info` (version.h).
    pub struct CompileInfo {
        /// `compiler`
        compiler: [u8; 64] = "compiler" chars,
        /// `compile_by`
        compile_by: [u8; 16] = "compile_by" chars,
        /// `compile_domain`
        compile_domain: [u8; 32] = "compile_domain" chars,
        /// `compile_date`
        compile_date: [u8; 32] = "compile_date" chars,
    }
}

xen_struct! {
    "version.h", "struct xen_platform_parameters", 8;
    /// `struct xen_platform_parameters` (version.h).
    pub struct PlatformParameters {
        /// `virt_start`
        virt_start: u64 = "virt_start",
    }
}

xen_struct! {
    "version.h", "struct xen_feature_info", 8;
    /// `struct xen_feature_info` (version.h).
    pub struct FeatureInfo {
        /// `submap_idx`
        submap_idx: u32 = "submap_idx",
        /// `submap`
        submap: u32 = "submap",
    }
}

xen_struct! {
    "version.h", "struct xen_build_id", 4;
    /// `struct xen_build_id` (version.h): `len` IN, followed by the
    /// `buf[len]` the hypervisor fills.
    pub struct BuildId {
        /// `len`: size of the buffer that follows.
        len: u32 = "len",
    }
}

xen_structs!(CompileInfo, PlatformParameters, FeatureInfo, BuildId,);
