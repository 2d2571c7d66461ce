//! x86_64 PV specifics (`arch-x86/xen.h`, `arch-x86/xen-x86_64.h`): flat selectors, the hypervisor hole, register frames, vCPU context.

xen_consts! {
    "arch-x86/xen.h + arch-x86/xen-x86_64.h";
    SEGBASE_FS: u32 = 0, "SEGBASE_FS";
    SEGBASE_GS_USER: u32 = 1, "SEGBASE_GS_USER";
    SEGBASE_GS_KERNEL: u32 = 2, "SEGBASE_GS_KERNEL";
    SEGBASE_GS_USER_SEL: u32 = 3, "SEGBASE_GS_USER_SEL";
    FIRST_RESERVED_GDT_PAGE: u32 = 0xe, "FIRST_RESERVED_GDT_PAGE";
    FIRST_RESERVED_GDT_BYTE: u32 = 0xe000, "FIRST_RESERVED_GDT_BYTE";
    FIRST_RESERVED_GDT_ENTRY: u32 = 0x1c00, "FIRST_RESERVED_GDT_ENTRY";
    XEN_LEGACY_MAX_VCPUS: u32 = 0x20, "XEN_LEGACY_MAX_VCPUS";
    VGCF_I387_VALID: u32 = 1, "VGCF_I387_VALID";
    VGCF_IN_KERNEL: u32 = 4, "VGCF_IN_KERNEL";
    VGCF_I387_VALID_BIT: u32 = 0, "_VGCF_i387_valid";
    VGCF_IN_KERNEL_BIT: u32 = 2, "_VGCF_in_kernel";
    VGCF_FAILSAFE_DISABLES_EVENTS_BIT: u32 = 3, "_VGCF_failsafe_disables_events";
    VGCF_FAILSAFE_DISABLES_EVENTS: u32 = 8, "VGCF_failsafe_disables_events";
    VGCF_SYSCALL_DISABLES_EVENTS_BIT: u32 = 4, "_VGCF_syscall_disables_events";
    VGCF_SYSCALL_DISABLES_EVENTS: u32 = 0x10, "VGCF_syscall_disables_events";
    VGCF_ONLINE_BIT: u32 = 5, "_VGCF_online";
    VGCF_ONLINE: u32 = 0x20, "VGCF_online";
    FLAT_RING3_CS32: u32 = 0xe023, "FLAT_RING3_CS32";
    FLAT_RING3_CS64: u32 = 0xe033, "FLAT_RING3_CS64";
    FLAT_RING3_DS32: u32 = 0xe02b, "FLAT_RING3_DS32";
    FLAT_RING3_DS64: u32 = 0, "FLAT_RING3_DS64";
    FLAT_RING3_SS32: u32 = 0xe02b, "FLAT_RING3_SS32";
    FLAT_RING3_SS64: u32 = 0xe02b, "FLAT_RING3_SS64";
    FLAT_KERNEL_DS64: u32 = 0, "FLAT_KERNEL_DS64";
    FLAT_KERNEL_DS32: u32 = 0xe02b, "FLAT_KERNEL_DS32";
    FLAT_KERNEL_DS: u32 = 0, "FLAT_KERNEL_DS";
    FLAT_KERNEL_CS64: u32 = 0xe033, "FLAT_KERNEL_CS64";
    FLAT_KERNEL_CS32: u32 = 0xe023, "FLAT_KERNEL_CS32";
    FLAT_KERNEL_CS: u32 = 0xe033, "FLAT_KERNEL_CS";
    FLAT_KERNEL_SS64: u32 = 0xe02b, "FLAT_KERNEL_SS64";
    FLAT_KERNEL_SS32: u32 = 0xe02b, "FLAT_KERNEL_SS32";
    FLAT_KERNEL_SS: u32 = 0xe02b, "FLAT_KERNEL_SS";
    FLAT_USER_DS64: u32 = 0, "FLAT_USER_DS64";
    FLAT_USER_DS32: u32 = 0xe02b, "FLAT_USER_DS32";
    FLAT_USER_DS: u32 = 0, "FLAT_USER_DS";
    FLAT_USER_CS64: u32 = 0xe033, "FLAT_USER_CS64";
    FLAT_USER_CS32: u32 = 0xe023, "FLAT_USER_CS32";
    FLAT_USER_CS: u32 = 0xe033, "FLAT_USER_CS";
    FLAT_USER_SS64: u32 = 0xe02b, "FLAT_USER_SS64";
    FLAT_USER_SS32: u32 = 0xe02b, "FLAT_USER_SS32";
    FLAT_USER_SS: u32 = 0xe02b, "FLAT_USER_SS";
    HYPERVISOR_VIRT_START: i64 = -140737488355328, "HYPERVISOR_VIRT_START";
    HYPERVISOR_VIRT_END: i64 = -131941395333120, "HYPERVISOR_VIRT_END";
    MACH2PHYS_VIRT_START: i64 = -140737488355328, "MACH2PHYS_VIRT_START";
    MACH2PHYS_VIRT_END: i64 = -140462610448384, "MACH2PHYS_VIRT_END";
    MACH2PHYS_NR_ENTRIES: u64 = 0x800000000, "MACH2PHYS_NR_ENTRIES";
    VGCF_IN_SYSCALL_BIT: u32 = 8, "_VGCF_in_syscall";
    VGCF_IN_SYSCALL: u32 = 0x100, "VGCF_in_syscall";
}

xen_struct! {
    "arch-x86/xen.h", "struct arch_vcpu_info", 16;
    /// `struct arch_vcpu_info` (arch-x86/xen.h).
    pub struct ArchVcpuInfo {
        /// `cr2`
        cr2: u64 = "cr2",
        /// `pad`
        pad: u64 = "pad",
    }
}

xen_struct! {
    "arch-x86/xen.h", "struct arch_shared_info", 48;
    /// `struct arch_shared_info` (arch-x86/xen.h).
    pub struct ArchSharedInfo {
        /// `max_pfn`
        max_pfn: u64 = "max_pfn",
        /// `pfn_to_mfn_frame_list_list`
        pfn_to_mfn_frame_list_list: u64 = "pfn_to_mfn_frame_list_list",
        /// `nmi_reason`
        nmi_reason: u64 = "nmi_reason",
        /// `p2m_cr3`
        p2m_cr3: u64 = "p2m_cr3",
        /// `p2m_vaddr`
        p2m_vaddr: u64 = "p2m_vaddr",
        /// `p2m_generation`
        p2m_generation: u64 = "p2m_generation",
    }
}

xen_struct! {
    "arch-x86/xen-x86_64.h", "struct cpu_user_regs", 200;
    /// `struct cpu_user_regs` (arch-x86/xen-x86_64.h).
    pub struct CpuUserRegs {
        /// `r15`
        r15: u64 = "r15",
        /// `r14`
        r14: u64 = "r14",
        /// `r13`
        r13: u64 = "r13",
        /// `r12`
        r12: u64 = "r12",
        /// Padding (implicit in the C layout).
        _anon0: u64 = "" opaque,
        /// Padding (implicit in the C layout).
        _anon1: u64 = "" opaque,
        /// `r11`
        r11: u64 = "r11",
        /// `r10`
        r10: u64 = "r10",
        /// `r9`
        r9: u64 = "r9",
        /// `r8`
        r8: u64 = "r8",
        /// Padding (implicit in the C layout).
        _anon2: u64 = "" opaque,
        /// Padding (implicit in the C layout).
        _anon3: u64 = "" opaque,
        /// Padding (implicit in the C layout).
        _anon4: u64 = "" opaque,
        /// Padding (implicit in the C layout).
        _anon5: u64 = "" opaque,
        /// Padding (implicit in the C layout).
        _anon6: u64 = "" opaque,
        /// `error_code`
        error_code: u32 = "error_code",
        /// `entry_vector`
        entry_vector: u32 = "entry_vector",
        /// Padding (implicit in the C layout).
        _anon7: u64 = "" opaque,
        /// `cs`
        cs: u16 = "cs",
        /// `_pad0`
        _pad0: [u16; 1] = "_pad0",
        /// `saved_upcall_mask`
        saved_upcall_mask: u8 = "saved_upcall_mask",
        /// `_pad1`
        _pad1: [u8; 3] = "_pad1",
        /// Padding (implicit in the C layout).
        _anon8: u64 = "" opaque,
        /// Padding (implicit in the C layout).
        _anon9: u64 = "" opaque,
        /// `ss`
        ss: u16 = "ss",
        /// `_pad2`
        _pad2: [u16; 3] = "_pad2",
        /// `es`
        es: u16 = "es",
        /// `_pad3`
        _pad3: [u16; 3] = "_pad3",
        /// `ds`
        ds: u16 = "ds",
        /// `_pad4`
        _pad4: [u16; 3] = "_pad4",
        /// `fs`
        fs: u16 = "fs",
        /// `_pad5`
        _pad5: [u16; 3] = "_pad5",
        /// `gs`
        gs: u16 = "gs",
        /// `_pad6`
        _pad6: [u16; 3] = "_pad6",
    }
}

xen_struct! {
    "arch-x86/xen.h", "struct trap_info", 16;
    /// `struct trap_info` (arch-x86/xen.h).
    pub struct TrapInfo {
        /// `vector`
        vector: u8 = "vector",
        /// `flags`
        flags: u8 = "flags",
        /// `cs`
        cs: u16 = "cs",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `address`
        address: u64 = "address",
    }
}

xen_struct! {
    "arch-x86/xen.h", "struct vcpu_guest_context", 5168;
    /// `struct vcpu_guest_context` (arch-x86/xen.h).
    pub struct VcpuGuestContext {
        /// `fpu_ctxt`
        fpu_ctxt: [u8; 512] = "fpu_ctxt" opaque,
        /// `flags`
        flags: u64 = "flags",
        /// `user_regs`
        user_regs: CpuUserRegs = "user_regs",
        /// `trap_ctxt`
        trap_ctxt: [TrapInfo; 256] = "trap_ctxt",
        /// `ldt_base`
        ldt_base: u64 = "ldt_base",
        /// `ldt_ents`
        ldt_ents: u64 = "ldt_ents",
        /// `gdt_frames`
        gdt_frames: [u64; 16] = "gdt_frames",
        /// `gdt_ents`
        gdt_ents: u64 = "gdt_ents",
        /// `kernel_ss`
        kernel_ss: u64 = "kernel_ss",
        /// `kernel_sp`
        kernel_sp: u64 = "kernel_sp",
        /// `ctrlreg`
        ctrlreg: [u64; 8] = "ctrlreg",
        /// `debugreg`
        debugreg: [u64; 8] = "debugreg",
        /// `event_callback_eip`
        event_callback_eip: u64 = "event_callback_eip",
        /// `failsafe_callback_eip`
        failsafe_callback_eip: u64 = "failsafe_callback_eip",
        /// `syscall_callback_eip`
        syscall_callback_eip: u64 = "syscall_callback_eip",
        /// `vm_assist`
        vm_assist: u64 = "vm_assist",
        /// `fs_base`
        fs_base: u64 = "fs_base",
        /// `gs_base_kernel`
        gs_base_kernel: u64 = "gs_base_kernel",
        /// `gs_base_user`
        gs_base_user: u64 = "gs_base_user",
    }
}

xen_struct! {
    "arch-x86/xen-x86_64.h", "struct iret_context", 72;
    /// `struct iret_context` (arch-x86/xen-x86_64.h).
    pub struct IretContext {
        /// `rax`
        rax: u64 = "rax",
        /// `r11`
        r11: u64 = "r11",
        /// `rcx`
        rcx: u64 = "rcx",
        /// `flags`
        flags: u64 = "flags",
        /// `rip`
        rip: u64 = "rip",
        /// `cs`
        cs: u64 = "cs",
        /// `rflags`
        rflags: u64 = "rflags",
        /// `rsp`
        rsp: u64 = "rsp",
        /// `ss`
        ss: u64 = "ss",
    }
}

/// Every struct of this module, for the conformance test.
#[doc(hidden)]
pub const STRUCTS: &[crate::registry::StructLayout] = &[
    <ArchVcpuInfo as crate::registry::Described>::LAYOUT,
    <ArchSharedInfo as crate::registry::Described>::LAYOUT,
    <CpuUserRegs as crate::registry::Described>::LAYOUT,
    <TrapInfo as crate::registry::Described>::LAYOUT,
    <VcpuGuestContext as crate::registry::Described>::LAYOUT,
    <IretContext as crate::registry::Described>::LAYOUT,
];
