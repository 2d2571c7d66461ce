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
}

xen_struct! {
    "version.h", "struct xen_compile_info", 144;
    /// `struct xen_compile_info` (version.h).
    pub struct CompileInfo {
        /// `compiler`
        compiler: [u8; 64] = "compiler" opaque,
        /// `compile_by`
        compile_by: [u8; 16] = "compile_by" opaque,
        /// `compile_domain`
        compile_domain: [u8; 32] = "compile_domain" opaque,
        /// `compile_date`
        compile_date: [u8; 32] = "compile_date" opaque,
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

/// Every struct of this module, for the conformance test.
#[doc(hidden)]
pub const STRUCTS: &[crate::registry::StructLayout] = &[
    <CompileInfo as crate::registry::Described>::LAYOUT,
    <PlatformParameters as crate::registry::Described>::LAYOUT,
    <FeatureInfo as crate::registry::Described>::LAYOUT,
];
