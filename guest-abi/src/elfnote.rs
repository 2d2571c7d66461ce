//! Xen ELF note types (`elfnote.h`) and the `xen_elfnotes!` macro that declares a kernel's notes.

xen_consts! {
    "elfnote.h";
    XEN_ELFNOTE_INFO: u32 = 0, "XEN_ELFNOTE_INFO";
    XEN_ELFNOTE_ENTRY: u32 = 1, "XEN_ELFNOTE_ENTRY";
    XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2, "XEN_ELFNOTE_HYPERCALL_PAGE";
    XEN_ELFNOTE_VIRT_BASE: u32 = 3, "XEN_ELFNOTE_VIRT_BASE";
    XEN_ELFNOTE_PADDR_OFFSET: u32 = 4, "XEN_ELFNOTE_PADDR_OFFSET";
    XEN_ELFNOTE_XEN_VERSION: u32 = 5, "XEN_ELFNOTE_XEN_VERSION";
    XEN_ELFNOTE_GUEST_OS: u32 = 6, "XEN_ELFNOTE_GUEST_OS";
    XEN_ELFNOTE_GUEST_VERSION: u32 = 7, "XEN_ELFNOTE_GUEST_VERSION";
    XEN_ELFNOTE_LOADER: u32 = 8, "XEN_ELFNOTE_LOADER";
    XEN_ELFNOTE_PAE_MODE: u32 = 9, "XEN_ELFNOTE_PAE_MODE";
    XEN_ELFNOTE_FEATURES: u32 = 0xa, "XEN_ELFNOTE_FEATURES";
    XEN_ELFNOTE_BSD_SYMTAB: u32 = 0xb, "XEN_ELFNOTE_BSD_SYMTAB";
    XEN_ELFNOTE_HV_START_LOW: u32 = 0xc, "XEN_ELFNOTE_HV_START_LOW";
    XEN_ELFNOTE_L1_MFN_VALID: u32 = 0xd, "XEN_ELFNOTE_L1_MFN_VALID";
    XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 0xe, "XEN_ELFNOTE_SUSPEND_CANCEL";
    XEN_ELFNOTE_INIT_P2M: u32 = 0xf, "XEN_ELFNOTE_INIT_P2M";
    XEN_ELFNOTE_MOD_START_PFN: u32 = 0x10, "XEN_ELFNOTE_MOD_START_PFN";
    XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 0x11, "XEN_ELFNOTE_SUPPORTED_FEATURES";
    XEN_ELFNOTE_PHYS32_ENTRY: u32 = 0x12, "XEN_ELFNOTE_PHYS32_ENTRY";
    XEN_ELFNOTE_MAX: u32 = 0x12, "XEN_ELFNOTE_MAX";
    XEN_ELFNOTE_CRASH_INFO: u32 = 0x1000001, "XEN_ELFNOTE_CRASH_INFO";
    XEN_ELFNOTE_CRASH_REGS: u32 = 0x1000002, "XEN_ELFNOTE_CRASH_REGS";
    XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x2000000, "XEN_ELFNOTE_DUMPCORE_NONE";
    XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x2000001, "XEN_ELFNOTE_DUMPCORE_HEADER";
    XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x2000002, "XEN_ELFNOTE_DUMPCORE_XEN_VERSION";
    XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x2000003, "XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION";
}

/// Declares a kernel's Xen ELF notes (`.note.Xen`), making it a valid PV
/// kernel for Xen and xenish: GUEST_OS, GUEST_VERSION, XEN_VERSION
/// ("xen-3.0"), LOADER ("generic"), VIRT_BASE, PADDR_OFFSET, ENTRY,
/// HYPERCALL_PAGE, FEATURES and PAE_MODE ("yes"). Every value is a string
/// the assembler reads: numbers, or symbol names the kernel defines.
///
/// ```ignore
/// guest_abi::xen_elfnotes! {
///     guest_os: "mykernel", guest_version: "1.0",
///     virt_base: "0xffffffff80000000", paddr_offset: "0",
///     entry: "_start", hypercall_page: "hypercall_page",
///     features: "!writable_page_tables|pae_pgdir_above_4gb",
/// }
/// ```
#[macro_export]
macro_rules! xen_elfnotes {
    (guest_os: $os:literal, guest_version: $ver:literal, virt_base: $vb:literal, paddr_offset: $po:literal,
     entry: $entry:literal, hypercall_page: $hp:literal, features: $feat:literal $(,)?) => {
        #[cfg(target_os = "none")]
        core::arch::global_asm!(
            ".pushsection .note.Xen, \"a\"",
            ".balign 4",
            ".macro xen_elfnote_head type",
            ".long 4, 2f - 1f, \\type",
            ".asciz \"Xen\"",
            ".balign 4",
            ".endm",
            ".macro xen_elfnote_str type, value",
            "xen_elfnote_head \\type",
            "1: .asciz \"\\value\"",
            "2: .balign 4",
            ".endm",
            ".macro xen_elfnote_quad type, value",
            "xen_elfnote_head \\type",
            "1: .quad \\value",
            "2: .balign 4",
            ".endm",
            concat!("xen_elfnote_str ", 6, ", \"", $os, "\""),
            concat!("xen_elfnote_str ", 7, ", \"", $ver, "\""),
            "xen_elfnote_str 5, \"xen-3.0\"",
            "xen_elfnote_str 8, \"generic\"",
            concat!("xen_elfnote_quad 3, ", $vb),
            concat!("xen_elfnote_quad 4, ", $po),
            concat!("xen_elfnote_quad 1, ", $entry),
            concat!("xen_elfnote_quad 2, ", $hp),
            concat!("xen_elfnote_str 10, \"", $feat, "\""),
            "xen_elfnote_str 9, \"yes\"",
            ".popsection",
            options(att_syntax)
        );
    };
}
