//! Feature bits (`features.h`) reported by `XENVER_get_features`.

xen_consts! {
    "features.h";
    XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0, "XENFEAT_writable_page_tables";
    XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1, "XENFEAT_writable_descriptor_tables";
    XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2, "XENFEAT_auto_translated_physmap";
    XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3, "XENFEAT_supervisor_mode_kernel";
    XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4, "XENFEAT_pae_pgdir_above_4gb";
    XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5, "XENFEAT_mmu_pt_update_preserve_ad";
    XENFEAT_HIGHMEM_ASSIST: u32 = 6, "XENFEAT_highmem_assist";
    XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7, "XENFEAT_gnttab_map_avail_bits";
    XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8, "XENFEAT_hvm_callback_vector";
    XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9, "XENFEAT_hvm_safe_pvclock";
    XENFEAT_HVM_PIRQS: u32 = 0xa, "XENFEAT_hvm_pirqs";
    XENFEAT_DOM0: u32 = 0xb, "XENFEAT_dom0";
    XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 0xd, "XENFEAT_memory_op_vnode_supported";
    XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 0xe, "XENFEAT_ARM_SMCCC_supported";
    XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 0xf, "XENFEAT_linux_rsdp_unrestricted";
    XENFEAT_NOT_DIRECT_MAPPED: u32 = 0x10, "XENFEAT_not_direct_mapped";
    XENFEAT_DIRECT_MAPPED: u32 = 0x11, "XENFEAT_direct_mapped";
    XENFEAT_NR_SUBMAPS: u32 = 1, "XENFEAT_NR_SUBMAPS";
}
