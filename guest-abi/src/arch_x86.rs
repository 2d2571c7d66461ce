//! x86_64 PV specifics (`arch-x86/xen.h`, `arch-x86/xen-x86_64.h`): guest
//! handles, flat selectors, the hypervisor hole, register frames, vCPU
//! context.

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

xen_consts! {
    "arch-x86/xen.h + arch-x86/xen-x86_64.h";
    FIRST_RESERVED_GDT_PAGE: u32 = 0xe, "FIRST_RESERVED_GDT_PAGE";
    FIRST_RESERVED_GDT_BYTE: u32 = 0xe000, "FIRST_RESERVED_GDT_BYTE";
    FIRST_RESERVED_GDT_ENTRY: u32 = 0x1c00, "FIRST_RESERVED_GDT_ENTRY";
    XEN_LEGACY_MAX_VCPUS: u32 = 0x20, "XEN_LEGACY_MAX_VCPUS";
    XEN_HAVE_PV_GUEST_ENTRY: u32 = 1, "XEN_HAVE_PV_GUEST_ENTRY";
    XEN_HAVE_PV_UPCALL_MASK: u32 = 1, "XEN_HAVE_PV_UPCALL_MASK";
    XEN_CPUID_NO_SUBLEAF: u32 = 0xffff_ffff, "XEN_CPUID_NO_SUBLEAF";
    XEN_HVM_DEBUGCONS_IOPORT: u16 = 0xe9, "XEN_HVM_DEBUGCONS_IOPORT";
    /// `trap_info.flags`: the privilege levels that may raise the trap
    /// (what `TI_GET_DPL` reads).
    TI_DPL_MASK: u8 = 3, "TI_GET_DPL(&(struct trap_info){ .flags = 0xff })";
    /// `trap_info.flags`: mask events while the handler runs (what
    /// `TI_GET_IF` reads and `TI_SET_IF` sets).
    TI_IF: u8 = 4, "TI_GET_IF(&(struct trap_info){ .flags = 0xff })";
    VGCF_I387_VALID: u64 = 1, "VGCF_I387_VALID";
    VGCF_IN_KERNEL: u64 = 4, "VGCF_IN_KERNEL";
    VGCF_I387_VALID_BIT: u32 = 0, "_VGCF_i387_valid";
    VGCF_IN_KERNEL_BIT: u32 = 2, "_VGCF_in_kernel";
    VGCF_FAILSAFE_DISABLES_EVENTS_BIT: u32 = 3, "_VGCF_failsafe_disables_events";
    VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 8, "VGCF_failsafe_disables_events";
    VGCF_SYSCALL_DISABLES_EVENTS_BIT: u32 = 4, "_VGCF_syscall_disables_events";
    VGCF_SYSCALL_DISABLES_EVENTS: u64 = 0x10, "VGCF_syscall_disables_events";
    VGCF_ONLINE_BIT: u32 = 5, "_VGCF_online";
    VGCF_ONLINE: u64 = 0x20, "VGCF_online";
    VGCF_IN_SYSCALL_BIT: u32 = 8, "_VGCF_in_syscall";
    VGCF_IN_SYSCALL: u64 = 0x100, "VGCF_in_syscall";
    FLAT_RING3_CS32: u16 = 0xe023, "FLAT_RING3_CS32";
    FLAT_RING3_CS64: u16 = 0xe033, "FLAT_RING3_CS64";
    FLAT_RING3_DS32: u16 = 0xe02b, "FLAT_RING3_DS32";
    FLAT_RING3_DS64: u16 = 0, "FLAT_RING3_DS64";
    FLAT_RING3_SS32: u16 = 0xe02b, "FLAT_RING3_SS32";
    FLAT_RING3_SS64: u16 = 0xe02b, "FLAT_RING3_SS64";
    FLAT_KERNEL_DS64: u16 = 0, "FLAT_KERNEL_DS64";
    FLAT_KERNEL_DS32: u16 = 0xe02b, "FLAT_KERNEL_DS32";
    FLAT_KERNEL_DS: u16 = 0, "FLAT_KERNEL_DS";
    FLAT_KERNEL_CS64: u16 = 0xe033, "FLAT_KERNEL_CS64";
    FLAT_KERNEL_CS32: u16 = 0xe023, "FLAT_KERNEL_CS32";
    FLAT_KERNEL_CS: u16 = 0xe033, "FLAT_KERNEL_CS";
    FLAT_KERNEL_SS64: u16 = 0xe02b, "FLAT_KERNEL_SS64";
    FLAT_KERNEL_SS32: u16 = 0xe02b, "FLAT_KERNEL_SS32";
    FLAT_KERNEL_SS: u16 = 0xe02b, "FLAT_KERNEL_SS";
    FLAT_USER_DS64: u16 = 0, "FLAT_USER_DS64";
    FLAT_USER_DS32: u16 = 0xe02b, "FLAT_USER_DS32";
    FLAT_USER_DS: u16 = 0, "FLAT_USER_DS";
    FLAT_USER_CS64: u16 = 0xe033, "FLAT_USER_CS64";
    FLAT_USER_CS32: u16 = 0xe023, "FLAT_USER_CS32";
    FLAT_USER_CS: u16 = 0xe033, "FLAT_USER_CS";
    FLAT_USER_SS64: u16 = 0xe02b, "FLAT_USER_SS64";
    FLAT_USER_SS32: u16 = 0xe02b, "FLAT_USER_SS32";
    FLAT_USER_SS: u16 = 0xe02b, "FLAT_USER_SS";
    HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000, "HYPERVISOR_VIRT_START";
    HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000, "HYPERVISOR_VIRT_END";
    MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000, "MACH2PHYS_VIRT_START";
    MACH2PHYS_VIRT_END: u64 = 0xffff_8040_0000_0000, "MACH2PHYS_VIRT_END";
    MACH2PHYS_NR_ENTRIES: u64 = 0x8_0000_0000, "MACH2PHYS_NR_ENTRIES";
    SEGBASE_FS: u32 = 0, "SEGBASE_FS";
    SEGBASE_GS_USER: u32 = 1, "SEGBASE_GS_USER";
    SEGBASE_GS_KERNEL: u32 = 2, "SEGBASE_GS_KERNEL";
    SEGBASE_GS_USER_SEL: u32 = 3, "SEGBASE_GS_USER_SEL";
}

/// `XEN_GUEST_HANDLE(T)`: a guest virtual address of a `T` (or an array of
/// them), as it travels in hypercall arguments. Only the address is kept;
/// the hypervisor reads through it with its checked guest-copy path, a guest
/// makes one from a pointer to memory that stays valid during the call.
/// `void` handles are `GuestHandle<u8>`.
#[repr(transparent)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GuestHandle<T> {
    addr: u64,
    _pointee: PhantomData<T>,
}

impl<T> GuestHandle<T> {
    /// A handle for guest virtual address `addr`.
    pub const fn new(addr: u64) -> Self {
        GuestHandle { addr, _pointee: PhantomData }
    }

    /// A handle for a pointer of this address space (what a guest passes).
    pub fn from_ptr(ptr: *const T) -> Self {
        Self::new(ptr as u64)
    }

    /// A handle for a mutable pointer (what a guest passes for OUT arrays).
    pub fn from_mut_ptr(ptr: *mut T) -> Self {
        Self::new(ptr as u64)
    }

    /// The guest virtual address.
    pub const fn addr(self) -> u64 {
        self.addr
    }

    /// The address of element `index` of the array the handle points to,
    /// or `None` on overflow.
    pub const fn element_addr(self, index: u64) -> Option<u64> {
        match index.checked_mul(core::mem::size_of::<T>() as u64) {
            Some(off) => self.addr.checked_add(off),
            None => None,
        }
    }

    /// Whether the handle is null.
    pub const fn is_null(self) -> bool {
        self.addr == 0
    }
}

impl<T> Clone for GuestHandle<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for GuestHandle<T> {}

impl<T> PartialEq for GuestHandle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<T> Eq for GuestHandle<T> {}

impl<T> core::fmt::Debug for GuestHandle<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "GuestHandle({:#x})", self.addr)
    }
}

impl<T> crate::registry::WireType for GuestHandle<T> {
    const ELEM_SIZE: usize = core::mem::size_of::<T>();
}

xen_struct! {
    "arch-x86/xen.h", "struct arch_vcpu_info", 16;
    /// `struct arch_vcpu_info` (arch-x86/xen.h).
    pub struct ArchVcpuInfo {
        /// `cr2`: the faulting address of the last page fault bounced.
        cr2: u64 = "cr2",
        /// `pad`
        pad: u64 = "pad",
    }
}

xen_struct! {
    "arch-x86/xen.h", "struct arch_shared_info", 48;
    /// `struct arch_shared_info` (arch-x86/xen.h).
    pub struct ArchSharedInfo {
        /// `max_pfn`: valid entries in the p2m.
        max_pfn: u64 = "max_pfn",
        /// `pfn_to_mfn_frame_list_list`: root of the 3-level p2m frame list.
        pfn_to_mfn_frame_list_list: u64 = "pfn_to_mfn_frame_list_list",
        /// `nmi_reason`
        nmi_reason: u64 = "nmi_reason",
        /// `p2m_cr3`: root of the address space where `p2m_vaddr` is valid.
        p2m_cr3: u64 = "p2m_cr3",
        /// `p2m_vaddr`: virtual address of the linear p2m list.
        p2m_vaddr: u64 = "p2m_vaddr",
        /// `p2m_generation`: bumped around every p2m mapping change.
        p2m_generation: u64 = "p2m_generation",
    }
}

xen_struct! {
    "arch-x86/xen-x86_64.h", "struct cpu_user_regs", 200;
    /// `struct cpu_user_regs` (arch-x86/xen-x86_64.h). The C register
    /// unions (`rax`/`eax`/`ax`/...) are the 64-bit names here.
    pub struct CpuUserRegs {
        /// `r15`
        r15: u64 = "r15",
        /// `r14`
        r14: u64 = "r14",
        /// `r13`
        r13: u64 = "r13",
        /// `r12`
        r12: u64 = "r12",
        /// `rbp`
        rbp: u64 = "rbp" union("ebp", "_ebp"),
        /// `rbx`
        rbx: u64 = "rbx" union("ebx", "_ebx"),
        /// `r11`
        r11: u64 = "r11",
        /// `r10`
        r10: u64 = "r10",
        /// `r9`
        r9: u64 = "r9",
        /// `r8`
        r8: u64 = "r8",
        /// `rax`
        rax: u64 = "rax" union("eax", "_eax"),
        /// `rcx`
        rcx: u64 = "rcx" union("ecx", "_ecx"),
        /// `rdx`
        rdx: u64 = "rdx" union("edx", "_edx"),
        /// `rsi`
        rsi: u64 = "rsi" union("esi", "_esi"),
        /// `rdi`
        rdi: u64 = "rdi" union("edi", "_edi"),
        /// `error_code` (private to the hypervisor).
        error_code: u32 = "error_code",
        /// `entry_vector` (private to the hypervisor).
        entry_vector: u32 = "entry_vector",
        /// `rip`
        rip: u64 = "rip" union("eip", "_eip"),
        /// `cs`
        cs: u16 = "cs",
        /// `_pad0`
        _pad0: [u16; 1] = "_pad0",
        /// `saved_upcall_mask`: `rflags.IF == !saved_upcall_mask`.
        saved_upcall_mask: u8 = "saved_upcall_mask",
        /// `_pad1`
        _pad1: [u8; 3] = "_pad1",
        /// `rflags`
        rflags: u64 = "rflags" union("eflags", "_eflags"),
        /// `rsp`
        rsp: u64 = "rsp" union("esp", "_esp"),
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
    /// `struct trap_info` (arch-x86/xen.h): one virtual IDT entry. A table
    /// passed to `set_trap_table` ends with an entry whose `address` is 0.
    pub struct TrapInfo {
        /// `vector`
        vector: u8 = "vector",
        /// `flags`: bits 0-1 the DPL, bit 2 "clear events mask" (`TI_GET_IF`).
        flags: u8 = "flags",
        /// `cs`
        cs: u16 = "cs",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `address`: handler address (0 ends a table).
        address: u64 = "address",
    }
}

impl TrapInfo {
    /// `TI_GET_DPL`: the privilege level allowed to raise it with `int`.
    pub const fn dpl(&self) -> u8 {
        self.flags & 3
    }

    /// `TI_GET_IF`: whether delivery masks events (an interrupt gate).
    pub const fn masks_events(&self) -> bool {
        self.flags & 4 != 0
    }
}

xen_struct! {
    "arch-x86/xen.h", "struct vcpu_guest_context", 5168;
    /// `struct vcpu_guest_context` (arch-x86/xen.h), for `VCPUOP_initialise`.
    pub struct VcpuGuestContext {
        /// `fpu_ctxt`: the FXSAVE image (C: `struct { char x[512]; }`).
        fpu_ctxt: [u8; 512] = "fpu_ctxt" union("fpu_ctxt.x"),
        /// `flags`: `VGCF_*`.
        flags: u64 = "flags",
        /// `user_regs`
        user_regs: CpuUserRegs = "user_regs",
        /// `trap_ctxt`: the virtual IDT.
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
        /// `ctrlreg`: CR0-CR7; the user page table is in `ctrlreg[1]`.
        ctrlreg: [u64; 8] = "ctrlreg",
        /// `debugreg`
        debugreg: [u64; 8] = "debugreg",
        /// `event_callback_eip`
        event_callback_eip: u64 = "event_callback_eip",
        /// `failsafe_callback_eip`
        failsafe_callback_eip: u64 = "failsafe_callback_eip",
        /// `syscall_callback_eip`
        syscall_callback_eip: u64 = "syscall_callback_eip",
        /// `vm_assist`: `VMASST_TYPE_*` bitmap.
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
    /// `struct iret_context` (arch-x86/xen-x86_64.h): what a guest pushes
    /// before jumping to `HYPERVISOR_iret`, lowest address first.
    pub struct IretContext {
        /// `rax`
        rax: u64 = "rax",
        /// `r11`
        r11: u64 = "r11",
        /// `rcx`
        rcx: u64 = "rcx",
        /// `flags`: `VGCF_in_syscall`.
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

xen_struct! {
    "arch-x86/xen.h", "struct xen_cpuid_leaf", 24;
    /// `struct xen_cpuid_leaf` (arch-x86/xen.h): one CPUID policy leaf.
    pub struct CpuidLeaf {
        /// `leaf`
        leaf: u32 = "leaf",
        /// `subleaf` (`XEN_CPUID_NO_SUBLEAF` if none).
        subleaf: u32 = "subleaf",
        /// `a`
        a: u32 = "a",
        /// `b`
        b: u32 = "b",
        /// `c`
        c: u32 = "c",
        /// `d`
        d: u32 = "d",
    }
}

xen_struct! {
    "arch-x86/xen.h", "struct xen_msr_entry", 16;
    /// `struct xen_msr_entry` (arch-x86/xen.h): one MSR policy entry.
    pub struct MsrEntry {
        /// `idx`
        idx: u32 = "idx",
        /// `flags` (reserved, must be zero).
        flags: u32 = "flags",
        /// `val`
        val: u64 = "val",
    }
}

xen_structs!(ArchVcpuInfo, ArchSharedInfo, CpuUserRegs, TrapInfo, VcpuGuestContext, IretContext, CpuidLeaf, MsrEntry);
