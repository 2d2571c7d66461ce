//! Core interface (`xen.h`): hypercall numbers, MMU commands, VIRQs, VM
//! assists, domain IDs, start_info, shared_info and vcpu_info.
//!
//! Integer types: hypercall numbers and sub-op commands are `u32` (C's
//! plain `int` defines, all small and non-negative); domain IDs are `u16`
//! (`domid_t`); flag values take the type of the field they go in.

use crate::arch_x86::{ArchSharedInfo, ArchVcpuInfo};
use crate::wire::union_members;

xen_consts! {
    "xen.h";
    VIRQ_TIMER: u32 = 0, "VIRQ_TIMER";
    VIRQ_DEBUG: u32 = 1, "VIRQ_DEBUG";
    VIRQ_CONSOLE: u32 = 2, "VIRQ_CONSOLE";
    VIRQ_DOM_EXC: u32 = 3, "VIRQ_DOM_EXC";
    VIRQ_TBUF: u32 = 4, "VIRQ_TBUF";
    VIRQ_DEBUGGER: u32 = 6, "VIRQ_DEBUGGER";
    VIRQ_XENOPROF: u32 = 7, "VIRQ_XENOPROF";
    VIRQ_CON_RING: u32 = 8, "VIRQ_CON_RING";
    VIRQ_PCPU_STATE: u32 = 9, "VIRQ_PCPU_STATE";
    VIRQ_MEM_EVENT: u32 = 0xa, "VIRQ_MEM_EVENT";
    VIRQ_ARGO: u32 = 0xb, "VIRQ_ARGO";
    VIRQ_ENOMEM: u32 = 0xc, "VIRQ_ENOMEM";
    VIRQ_XENPMU: u32 = 0xd, "VIRQ_XENPMU";
    VIRQ_ARCH_0: u32 = 0x10, "VIRQ_ARCH_0";
    VIRQ_ARCH_1: u32 = 0x11, "VIRQ_ARCH_1";
    VIRQ_ARCH_2: u32 = 0x12, "VIRQ_ARCH_2";
    VIRQ_ARCH_3: u32 = 0x13, "VIRQ_ARCH_3";
    VIRQ_ARCH_4: u32 = 0x14, "VIRQ_ARCH_4";
    VIRQ_ARCH_5: u32 = 0x15, "VIRQ_ARCH_5";
    VIRQ_ARCH_6: u32 = 0x16, "VIRQ_ARCH_6";
    VIRQ_ARCH_7: u32 = 0x17, "VIRQ_ARCH_7";
    NR_VIRQS: u32 = 24, "NR_VIRQS";
    MMU_NORMAL_PT_UPDATE: u32 = 0, "MMU_NORMAL_PT_UPDATE";
    MMU_MACHPHYS_UPDATE: u32 = 1, "MMU_MACHPHYS_UPDATE";
    MMU_PT_UPDATE_PRESERVE_AD: u32 = 2, "MMU_PT_UPDATE_PRESERVE_AD";
    MMU_PT_UPDATE_NO_TRANSLATE: u32 = 3, "MMU_PT_UPDATE_NO_TRANSLATE";
    MMUEXT_PIN_L1_TABLE: u32 = 0, "MMUEXT_PIN_L1_TABLE";
    MMUEXT_PIN_L2_TABLE: u32 = 1, "MMUEXT_PIN_L2_TABLE";
    MMUEXT_PIN_L3_TABLE: u32 = 2, "MMUEXT_PIN_L3_TABLE";
    MMUEXT_PIN_L4_TABLE: u32 = 3, "MMUEXT_PIN_L4_TABLE";
    MMUEXT_UNPIN_TABLE: u32 = 4, "MMUEXT_UNPIN_TABLE";
    MMUEXT_NEW_BASEPTR: u32 = 5, "MMUEXT_NEW_BASEPTR";
    MMUEXT_TLB_FLUSH_LOCAL: u32 = 6, "MMUEXT_TLB_FLUSH_LOCAL";
    MMUEXT_INVLPG_LOCAL: u32 = 7, "MMUEXT_INVLPG_LOCAL";
    MMUEXT_TLB_FLUSH_MULTI: u32 = 8, "MMUEXT_TLB_FLUSH_MULTI";
    MMUEXT_INVLPG_MULTI: u32 = 9, "MMUEXT_INVLPG_MULTI";
    MMUEXT_TLB_FLUSH_ALL: u32 = 0xa, "MMUEXT_TLB_FLUSH_ALL";
    MMUEXT_INVLPG_ALL: u32 = 0xb, "MMUEXT_INVLPG_ALL";
    MMUEXT_FLUSH_CACHE: u32 = 0xc, "MMUEXT_FLUSH_CACHE";
    MMUEXT_SET_LDT: u32 = 0xd, "MMUEXT_SET_LDT";
    MMUEXT_NEW_USER_BASEPTR: u32 = 0xf, "MMUEXT_NEW_USER_BASEPTR";
    MMUEXT_CLEAR_PAGE: u32 = 0x10, "MMUEXT_CLEAR_PAGE";
    MMUEXT_COPY_PAGE: u32 = 0x11, "MMUEXT_COPY_PAGE";
    MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 0x12, "MMUEXT_FLUSH_CACHE_GLOBAL";
    MMUEXT_MARK_SUPER: u32 = 0x13, "MMUEXT_MARK_SUPER";
    MMUEXT_UNMARK_SUPER: u32 = 0x14, "MMUEXT_UNMARK_SUPER";
    UVMF_NONE: u32 = 0, "UVMF_NONE";
    UVMF_TLB_FLUSH: u32 = 1, "UVMF_TLB_FLUSH";
    UVMF_INVLPG: u32 = 2, "UVMF_INVLPG";
    UVMF_FLUSHTYPE_MASK: u32 = 3, "UVMF_FLUSHTYPE_MASK";
    UVMF_MULTI: u32 = 0, "UVMF_MULTI";
    UVMF_LOCAL: u32 = 0, "UVMF_LOCAL";
    UVMF_ALL: u32 = 4, "UVMF_ALL";
    CONSOLEIO_WRITE: u32 = 0, "CONSOLEIO_write";
    CONSOLEIO_READ: u32 = 1, "CONSOLEIO_read";
    VMASST_CMD_ENABLE: u32 = 0, "VMASST_CMD_enable";
    VMASST_CMD_DISABLE: u32 = 1, "VMASST_CMD_disable";
    VMASST_TYPE_4GB_SEGMENTS: u32 = 0, "VMASST_TYPE_4gb_segments";
    VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1, "VMASST_TYPE_4gb_segments_notify";
    VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2, "VMASST_TYPE_writable_pagetables";
    VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3, "VMASST_TYPE_pae_extended_cr3";
    VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4, "VMASST_TYPE_architectural_iopl";
    VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5, "VMASST_TYPE_runstate_update_flag";
    VMASST_TYPE_M2P_STRICT: u32 = 0x20, "VMASST_TYPE_m2p_strict";
    DOMID_FIRST_RESERVED: u16 = 0x7ff0, "DOMID_FIRST_RESERVED";
    DOMID_SELF: u16 = 0x7ff0, "DOMID_SELF";
    DOMID_IO: u16 = 0x7ff1, "DOMID_IO";
    DOMID_XEN: u16 = 0x7ff2, "DOMID_XEN";
    DOMID_COW: u16 = 0x7ff3, "DOMID_COW";
    DOMID_INVALID: u16 = 0x7ff4, "DOMID_INVALID";
    DOMID_IDLE: u16 = 0x7fff, "DOMID_IDLE";
    DOMID_MASK: u16 = 0x7fff, "DOMID_MASK";
    XEN_PVCLOCK_TSC_STABLE_BIT: u32 = 1, "XEN_PVCLOCK_TSC_STABLE_BIT";
    XEN_PVCLOCK_GUEST_STOPPED: u32 = 2, "XEN_PVCLOCK_GUEST_STOPPED";
    MAX_GUEST_CMDLINE: u32 = 0x400, "MAX_GUEST_CMDLINE";
    SIF_PRIVILEGED: u32 = 1, "SIF_PRIVILEGED";
    SIF_INITDOMAIN: u32 = 2, "SIF_INITDOMAIN";
    SIF_MULTIBOOT_MOD: u32 = 4, "SIF_MULTIBOOT_MOD";
    SIF_MOD_START_PFN: u32 = 8, "SIF_MOD_START_PFN";
    SIF_VIRT_P2M_4TOOLS: u32 = 0x10, "SIF_VIRT_P2M_4TOOLS";
    SIF_PM_MASK: u32 = 0xff00, "SIF_PM_MASK";
    XEN_VGATYPE_TEXT_MODE_3: u32 = 3, "XEN_VGATYPE_TEXT_MODE_3";
    XEN_VGATYPE_VESA_LFB: u32 = 0x23, "XEN_VGATYPE_VESA_LFB";
    XEN_VGATYPE_EFI_LFB: u32 = 0x70, "XEN_VGATYPE_EFI_LFB";
    HYPERVISOR_SET_TRAP_TABLE: u32 = 0, "__HYPERVISOR_set_trap_table";
    HYPERVISOR_MMU_UPDATE: u32 = 1, "__HYPERVISOR_mmu_update";
    HYPERVISOR_SET_GDT: u32 = 2, "__HYPERVISOR_set_gdt";
    HYPERVISOR_STACK_SWITCH: u32 = 3, "__HYPERVISOR_stack_switch";
    HYPERVISOR_SET_CALLBACKS: u32 = 4, "__HYPERVISOR_set_callbacks";
    HYPERVISOR_FPU_TASKSWITCH: u32 = 5, "__HYPERVISOR_fpu_taskswitch";
    HYPERVISOR_SCHED_OP_COMPAT: u32 = 6, "__HYPERVISOR_sched_op_compat";
    HYPERVISOR_PLATFORM_OP: u32 = 7, "__HYPERVISOR_platform_op";
    HYPERVISOR_SET_DEBUGREG: u32 = 8, "__HYPERVISOR_set_debugreg";
    HYPERVISOR_GET_DEBUGREG: u32 = 9, "__HYPERVISOR_get_debugreg";
    HYPERVISOR_UPDATE_DESCRIPTOR: u32 = 0xa, "__HYPERVISOR_update_descriptor";
    HYPERVISOR_MEMORY_OP: u32 = 0xc, "__HYPERVISOR_memory_op";
    HYPERVISOR_MULTICALL: u32 = 0xd, "__HYPERVISOR_multicall";
    HYPERVISOR_UPDATE_VA_MAPPING: u32 = 0xe, "__HYPERVISOR_update_va_mapping";
    HYPERVISOR_SET_TIMER_OP: u32 = 0xf, "__HYPERVISOR_set_timer_op";
    HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u32 = 0x10, "__HYPERVISOR_event_channel_op_compat";
    HYPERVISOR_XEN_VERSION: u32 = 0x11, "__HYPERVISOR_xen_version";
    HYPERVISOR_CONSOLE_IO: u32 = 0x12, "__HYPERVISOR_console_io";
    HYPERVISOR_PHYSDEV_OP_COMPAT: u32 = 0x13, "__HYPERVISOR_physdev_op_compat";
    HYPERVISOR_GRANT_TABLE_OP: u32 = 0x14, "__HYPERVISOR_grant_table_op";
    HYPERVISOR_VM_ASSIST: u32 = 0x15, "__HYPERVISOR_vm_assist";
    HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 0x16, "__HYPERVISOR_update_va_mapping_otherdomain";
    HYPERVISOR_IRET: u32 = 0x17, "__HYPERVISOR_iret";
    HYPERVISOR_VCPU_OP: u32 = 0x18, "__HYPERVISOR_vcpu_op";
    HYPERVISOR_SET_SEGMENT_BASE: u32 = 0x19, "__HYPERVISOR_set_segment_base";
    HYPERVISOR_MMUEXT_OP: u32 = 0x1a, "__HYPERVISOR_mmuext_op";
    HYPERVISOR_XSM_OP: u32 = 0x1b, "__HYPERVISOR_xsm_op";
    HYPERVISOR_NMI_OP: u32 = 0x1c, "__HYPERVISOR_nmi_op";
    HYPERVISOR_SCHED_OP: u32 = 0x1d, "__HYPERVISOR_sched_op";
    HYPERVISOR_CALLBACK_OP: u32 = 0x1e, "__HYPERVISOR_callback_op";
    HYPERVISOR_XENOPROF_OP: u32 = 0x1f, "__HYPERVISOR_xenoprof_op";
    HYPERVISOR_EVENT_CHANNEL_OP: u32 = 0x20, "__HYPERVISOR_event_channel_op";
    HYPERVISOR_PHYSDEV_OP: u32 = 0x21, "__HYPERVISOR_physdev_op";
    HYPERVISOR_HVM_OP: u32 = 0x22, "__HYPERVISOR_hvm_op";
    HYPERVISOR_SYSCTL: u32 = 0x23, "__HYPERVISOR_sysctl";
    HYPERVISOR_DOMCTL: u32 = 0x24, "__HYPERVISOR_domctl";
    HYPERVISOR_KEXEC_OP: u32 = 0x25, "__HYPERVISOR_kexec_op";
    HYPERVISOR_TMEM_OP: u32 = 0x26, "__HYPERVISOR_tmem_op";
    HYPERVISOR_ARGO_OP: u32 = 0x27, "__HYPERVISOR_argo_op";
    HYPERVISOR_XENPMU_OP: u32 = 0x28, "__HYPERVISOR_xenpmu_op";
    HYPERVISOR_DM_OP: u32 = 0x29, "__HYPERVISOR_dm_op";
    HYPERVISOR_HYPFS_OP: u32 = 0x2a, "__HYPERVISOR_hypfs_op";
    HYPERVISOR_ARCH_0: u32 = 0x30, "__HYPERVISOR_arch_0";
    HYPERVISOR_ARCH_1: u32 = 0x31, "__HYPERVISOR_arch_1";
    HYPERVISOR_ARCH_2: u32 = 0x32, "__HYPERVISOR_arch_2";
    HYPERVISOR_ARCH_3: u32 = 0x33, "__HYPERVISOR_arch_3";
    HYPERVISOR_ARCH_4: u32 = 0x34, "__HYPERVISOR_arch_4";
    HYPERVISOR_ARCH_5: u32 = 0x35, "__HYPERVISOR_arch_5";
    HYPERVISOR_ARCH_6: u32 = 0x36, "__HYPERVISOR_arch_6";
    HYPERVISOR_ARCH_7: u32 = 0x37, "__HYPERVISOR_arch_7";
}

xen_struct! {
    "xen.h", "struct start_info", 1168;
    /// `struct start_info` (xen.h): what a PV kernel finds at `rsi` on entry.
    pub struct StartInfo {
        /// `magic`: `"xen-3.0-x86_64"` (with a `p` suffix for PAE_MODE kernels).
        magic: [u8; 32] = "magic" chars,
        /// `nr_pages`: total pages allocated to the domain.
        nr_pages: u64 = "nr_pages",
        /// `shared_info`: machine address of the shared info page.
        shared_info: u64 = "shared_info",
        /// `flags`: `SIF_*`.
        flags: u32 = "flags",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `store_mfn`: machine frame of the XenStore ring.
        store_mfn: u64 = "store_mfn",
        /// `store_evtchn`: event channel of the XenStore ring.
        store_evtchn: u32 = "store_evtchn",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
        /// `console`: a union, see [`console_domu`](Self::console_domu) and
        /// [`console_dom0`](Self::console_dom0).
        console: [u64; 2] = "console" union("console.domU", "console.dom0"),
        /// `pt_base`: virtual address of the top-level page table.
        pt_base: u64 = "pt_base",
        /// `nr_pt_frames`: frames of the bootstrap page tables.
        nr_pt_frames: u64 = "nr_pt_frames",
        /// `mfn_list`: virtual address of the p2m list.
        mfn_list: u64 = "mfn_list",
        /// `mod_start`: virtual address (or PFN with `SIF_MOD_START_PFN`) of the initrd.
        mod_start: u64 = "mod_start",
        /// `mod_len`: size of the initrd in bytes.
        mod_len: u64 = "mod_len",
        /// `cmd_line`: the NUL-terminated command line.
        cmd_line: [i8; 1024] = "cmd_line",
        /// `first_p2m_pfn`: first pfn of the initial p2m table.
        first_p2m_pfn: u64 = "first_p2m_pfn",
        /// `nr_p2m_frames`: pfns of the initial p2m table.
        nr_p2m_frames: u64 = "nr_p2m_frames",
    }
}

xen_struct! {
    "xen.h", "__typeof__(((struct start_info *)0)->console.domU)", 16;
    /// `start_info.console.domU`: the console ring of an unprivileged domain.
    pub struct ConsoleDomU {
        /// `mfn`: machine frame of the console ring.
        mfn: u64 = "mfn",
        /// `evtchn`: its event channel.
        evtchn: u32 = "evtchn",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
    }
}

xen_struct! {
    "xen.h", "__typeof__(((struct start_info *)0)->console.dom0)", 8;
    /// `start_info.console.dom0`: where dom0's VGA console info is.
    pub struct ConsoleDom0 {
        /// `info_off`: offset of the `dom0_vga_console_info` in the start_info page.
        info_off: u32 = "info_off",
        /// `info_size`: its size.
        info_size: u32 = "info_size",
    }
}

impl StartInfo {
    union_members! {
        console_domu_info / set_console_domu: console: [u64; 2] => ConsoleDomU, "console.domU";
        console_dom0_info / set_console_dom0: console: [u64; 2] => ConsoleDom0, "console.dom0";
    }

    /// The magic string (`xen-3.0-x86_64`, with a `p` suffix for PAE guests).
    pub fn magic_str(&self) -> &str {
        let end = self.magic.iter().position(|&b| b == 0).unwrap_or(self.magic.len());
        core::str::from_utf8(&self.magic[..end]).unwrap_or("")
    }

    /// Sets the magic string (truncated to 31 bytes, NUL-padded).
    pub fn set_magic(&mut self, magic: &str) {
        let n = magic.len().min(self.magic.len() - 1);
        self.magic = [0; 32];
        self.magic[..n].copy_from_slice(&magic.as_bytes()[..n]);
    }

    /// The command line, up to its NUL.
    pub fn cmd_line_bytes(&self) -> &[u8] {
        let bytes = zerocopy::IntoBytes::as_bytes(&self.cmd_line);
        &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
    }

    /// Sets the command line (truncated to `MAX_GUEST_CMDLINE - 1` bytes,
    /// NUL-padded).
    pub fn set_cmd_line(&mut self, cmd_line: &[u8]) {
        let dst = zerocopy::IntoBytes::as_mut_bytes(&mut self.cmd_line);
        let n = cmd_line.len().min(dst.len() - 1);
        dst.fill(0);
        dst[..n].copy_from_slice(&cmd_line[..n]);
    }

    /// `console.domU`: the console ring's mfn and event channel.
    pub fn console_domu(&self) -> (u64, u32) {
        let c = self.console_domu_info();
        (c.mfn, c.evtchn)
    }

    /// `console.dom0`: offset and size of the VGA console info.
    pub fn console_dom0(&self) -> (u32, u32) {
        let c = self.console_dom0_info();
        (c.info_off, c.info_size)
    }

    /// The flags as [`SifFlags`] (unknown bits kept).
    pub fn sif_flags(&self) -> SifFlags {
        SifFlags::from_bits_retain(self.flags)
    }
}

xen_struct! {
    "xen.h", "struct shared_info", 3136;
    /// `struct shared_info` (xen.h): the page shared by the hypervisor and
    /// all of a domain's vCPUs.
    pub struct SharedInfo {
        /// `vcpu_info`: the first `XEN_LEGACY_MAX_VCPUS` vCPUs' info.
        vcpu_info: [VcpuInfo; 32] = "vcpu_info",
        /// `evtchn_pending`: one bit per port (2-level ABI).
        evtchn_pending: [u64; 64] = "evtchn_pending",
        /// `evtchn_mask`: one bit per port; set masks the port.
        evtchn_mask: [u64; 64] = "evtchn_mask",
        /// `wc_version`: odd while the wallclock is being updated.
        wc_version: u32 = "wc_version",
        /// `wc_sec`: wallclock seconds at system time 0.
        wc_sec: u32 = "wc_sec",
        /// `wc_nsec`
        wc_nsec: u32 = "wc_nsec",
        /// `wc_sec_hi`: upper 32 bits of `wc_sec`.
        wc_sec_hi: u32 = "wc_sec_hi",
        /// `arch`
        arch: ArchSharedInfo = "arch",
    }
}

xen_struct! {
    "xen.h", "struct vcpu_info", 64;
    /// `struct vcpu_info` (xen.h): per-vCPU event and time state.
    pub struct VcpuInfo {
        /// `evtchn_upcall_pending`: set by the hypervisor with a pending event.
        evtchn_upcall_pending: u8 = "evtchn_upcall_pending",
        /// `evtchn_upcall_mask`: set by the guest to mask upcalls.
        evtchn_upcall_mask: u8 = "evtchn_upcall_mask",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 6] = "",
        /// `evtchn_pending_sel`: which words of `evtchn_pending` to scan.
        evtchn_pending_sel: u64 = "evtchn_pending_sel",
        /// `arch`
        arch: ArchVcpuInfo = "arch",
        /// `time`
        time: VcpuTimeInfo = "time",
    }
}

xen_struct! {
    "xen.h", "struct vcpu_time_info", 32;
    /// `struct vcpu_time_info` (xen.h): system time as a function of the TSC.
    pub struct VcpuTimeInfo {
        /// `version`: odd while an update is in progress.
        version: u32 = "version",
        /// `pad0`
        pad0: u32 = "pad0",
        /// `tsc_timestamp`: TSC at the last update.
        tsc_timestamp: u64 = "tsc_timestamp",
        /// `system_time`: nanoseconds since boot at the last update.
        system_time: u64 = "system_time",
        /// `tsc_to_system_mul`: 32.32 fixed-point TSC-to-ns multiplier.
        tsc_to_system_mul: u32 = "tsc_to_system_mul",
        /// `tsc_shift`: shift applied to a TSC delta before the multiply.
        tsc_shift: i8 = "tsc_shift",
        /// `flags`: `XEN_PVCLOCK_*`.
        flags: u8 = "flags",
        /// `pad1`
        pad1: [u8; 2] = "pad1",
    }
}

impl VcpuTimeInfo {
    /// Nanoseconds for a TSC delta: `((delta << tsc_shift) * mul) >> 32`
    /// with a negative shift shifting right, as Xen's guests compute it.
    pub const fn tsc_delta_to_ns(&self, delta: u64) -> u64 {
        let shifted = if self.tsc_shift >= 0 {
            delta << (self.tsc_shift as u32)
        } else {
            delta >> (self.tsc_shift.unsigned_abs() as u32)
        };
        ((shifted as u128 * self.tsc_to_system_mul as u128) >> 32) as u64
    }

    /// System time (ns) at TSC value `tsc`.
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        self.system_time.wrapping_add(self.tsc_delta_to_ns(tsc.wrapping_sub(self.tsc_timestamp)))
    }
}

xen_struct! {
    "xen.h", "struct mmu_update", 16;
    /// `struct mmu_update` (xen.h): the low 2 bits of `ptr` are the
    /// `MMU_*` command, the rest the machine address of the entry.
    pub struct MmuUpdate {
        /// `ptr`: machine address of the PTE (or MFN for MACHPHYS) | `MMU_*`.
        ptr: u64 = "ptr",
        /// `val`: the new entry (or PFN).
        val: u64 = "val",
    }
}

impl MmuUpdate {
    /// The `MMU_*` command in the low bits of `ptr`.
    pub const fn cmd(&self) -> u32 {
        (self.ptr & 3) as u32
    }

    /// `ptr` without the command bits.
    pub const fn addr(&self) -> u64 {
        self.ptr & !3
    }
}

xen_struct! {
    "xen.h", "struct mmuext_op", 24;
    /// `struct mmuext_op` (xen.h). `arg1` holds `mfn` or `linear_addr`;
    /// `arg2` holds `nr_ents`, `vcpumask` (a guest handle) or `src_mfn`,
    /// all at offset 0 of their union.
    pub struct MmuextOp {
        /// `cmd`: `MMUEXT_*`.
        cmd: u32 = "cmd",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `arg1`: `mfn` or `linear_addr`.
        arg1: u64 = "arg1" union("arg1.mfn", "arg1.linear_addr"),
        /// `arg2`: `nr_ents`, `vcpumask` or `src_mfn`.
        arg2: u64 = "arg2" union("arg2.nr_ents", "arg2.vcpumask", "arg2.src_mfn"),
    }
}

impl MmuextOp {
    /// An op with its arguments (0 where `cmd` takes none).
    pub const fn new(cmd: u32, arg1: u64, arg2: u64) -> Self {
        MmuextOp { cmd, _pad0: [0; 4], arg1, arg2 }
    }
}

xen_struct! {
    "xen.h", "struct multicall_entry", 64;
    /// `struct multicall_entry` (xen.h).
    pub struct MulticallEntry {
        /// `op`: the hypercall number.
        op: u64 = "op",
        /// `result`: its return value, filled in.
        result: u64 = "result",
        /// `args`
        args: [u64; 6] = "args",
    }
}

xen_struct! {
    "xen.h", "struct xen_multiboot_mod_list", 16;
    /// `struct xen_multiboot_mod_list` (xen.h): a module descriptor of a
    /// `SIF_MULTIBOOT_MOD` module list, ended by one with `mod_start == 0`.
    pub struct MultibootModList {
        /// `mod_start`: offset of the module's first byte.
        mod_start: u32 = "mod_start",
        /// `mod_end`: offset of its last byte (inclusive).
        mod_end: u32 = "mod_end",
        /// `cmdline`: offset of its NUL-terminated command line.
        cmdline: u32 = "cmdline",
        /// `pad`
        pad: u32 = "pad",
    }
}

xen_struct! {
    "xen.h", "struct dom0_vga_console_info", 40;
    /// `struct dom0_vga_console_info` (xen.h): the `u` union by
    /// [`text_mode_3`](Self::text_mode_3) and [`vesa_lfb`](Self::vesa_lfb).
    pub struct Dom0VgaConsoleInfo {
        /// `video_type`: `XEN_VGATYPE_*`.
        video_type: u8 = "video_type",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 3] = "",
        /// `u`
        u: [u32; 9] = "u" union("u.text_mode_3", "u.vesa_lfb"),
    }
}

xen_struct! {
    "xen.h", "__typeof__(((struct dom0_vga_console_info *)0)->u.text_mode_3)", 10;
    /// `dom0_vga_console_info.u.text_mode_3`.
    pub struct VgaTextMode3 {
        /// `font_height`
        font_height: u16 = "font_height",
        /// `cursor_x`
        cursor_x: u16 = "cursor_x",
        /// `cursor_y`
        cursor_y: u16 = "cursor_y",
        /// `rows`
        rows: u16 = "rows",
        /// `columns`
        columns: u16 = "columns",
    }
}

xen_struct! {
    "xen.h", "__typeof__(((struct dom0_vga_console_info *)0)->u.vesa_lfb)", 36;
    /// `dom0_vga_console_info.u.vesa_lfb`.
    pub struct VgaVesaLfb {
        /// `width`
        width: u16 = "width",
        /// `height`
        height: u16 = "height",
        /// `bytes_per_line`
        bytes_per_line: u16 = "bytes_per_line",
        /// `bits_per_pixel`
        bits_per_pixel: u16 = "bits_per_pixel",
        /// `lfb_base`
        lfb_base: u32 = "lfb_base",
        /// `lfb_size` (64 KiB units).
        lfb_size: u32 = "lfb_size",
        /// `red_pos`
        red_pos: u8 = "red_pos",
        /// `red_size`
        red_size: u8 = "red_size",
        /// `green_pos`
        green_pos: u8 = "green_pos",
        /// `green_size`
        green_size: u8 = "green_size",
        /// `blue_pos`
        blue_pos: u8 = "blue_pos",
        /// `blue_size`
        blue_size: u8 = "blue_size",
        /// `rsvd_pos`
        rsvd_pos: u8 = "rsvd_pos",
        /// `rsvd_size`
        rsvd_size: u8 = "rsvd_size",
        /// `gbl_caps`
        gbl_caps: u32 = "gbl_caps",
        /// `mode_attrs`
        mode_attrs: u16 = "mode_attrs",
        /// `pad`
        pad: u16 = "pad",
        /// `ext_lfb_base`: high 32 bits of `lfb_base`.
        ext_lfb_base: u32 = "ext_lfb_base",
    }
}

impl Dom0VgaConsoleInfo {
    union_members! {
        text_mode_3 / set_text_mode_3: u: [u32; 9] => VgaTextMode3, "u.text_mode_3";
        vesa_lfb / set_vesa_lfb: u: [u32; 9] => VgaVesaLfb, "u.vesa_lfb";
    }
}

xen_struct! {
    "xen.h", "xen_uuid_t", 16;
    /// `xen_uuid_t` (xen.h): a UUID in big-endian byte order.
    pub struct XenUuid {
        /// `a`
        a: [u8; 16] = "a",
    }
}

xen_structs!(
    StartInfo,
    ConsoleDomU,
    ConsoleDom0,
    SharedInfo,
    VcpuInfo,
    VcpuTimeInfo,
    MmuUpdate,
    MmuextOp,
    MulticallEntry,
    MultibootModList,
    Dom0VgaConsoleInfo,
    VgaTextMode3,
    VgaVesaLfb,
    XenUuid,
);

bitflags::bitflags! {
    /// `start_info.flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SifFlags: u32 {
        /// `SIF_PRIVILEGED`: the domain is privileged.
        const PRIVILEGED = SIF_PRIVILEGED;
        /// `SIF_INITDOMAIN`: the domain is the initial domain (dom0).
        const INITDOMAIN = SIF_INITDOMAIN;
        /// `SIF_MULTIBOOT_MOD`: the module is a multiboot module list.
        const MULTIBOOT_MOD = SIF_MULTIBOOT_MOD;
        /// `SIF_MOD_START_PFN`: `mod_start` is a PFN.
        const MOD_START_PFN = SIF_MOD_START_PFN;
        /// `SIF_VIRT_P2M_4TOOLS`: the p2m is for tools only.
        const VIRT_P2M_4TOOLS = SIF_VIRT_P2M_4TOOLS;
        /// `SIF_PM_MASK`: the power-management bits.
        const PM_MASK = SIF_PM_MASK;
    }
}

#[cfg(test)]
mod tests {
    use zerocopy::FromZeros;

    use super::*;

    #[test]
    fn start_info_console_union() {
        let mut si = StartInfo::new_zeroed();
        si.set_console_domu(ConsoleDomU { mfn: 0x1234, evtchn: 7, _pad0: [0; 4] });
        assert_eq!(si.console_domu(), (0x1234, 7));
        si.set_console_dom0(ConsoleDom0 { info_off: 0x100, info_size: 40 });
        assert_eq!(si.console_dom0(), (0x100, 40));
        assert_eq!(si.console[1], 0, "setting a member zeroes the rest of the union");
    }

    #[test]
    fn start_info_strings() {
        let mut si = StartInfo::new_zeroed();
        si.set_magic("xen-3.0-x86_64p");
        assert_eq!(si.magic_str(), "xen-3.0-x86_64p");
        si.set_cmd_line(b"console=hvc0 root=/dev/xvda1");
        assert_eq!(si.cmd_line_bytes(), b"console=hvc0 root=/dev/xvda1");
        si.set_cmd_line(&[b'x'; 2000]);
        assert_eq!(si.cmd_line_bytes().len(), MAX_GUEST_CMDLINE as usize - 1);
    }

    #[test]
    fn pvclock_scaling() {
        let mut t = VcpuTimeInfo::new_zeroed();
        // 2 GHz TSC: 0.5 ns per tick = mul 2^31, shift 0.
        t.tsc_to_system_mul = 1 << 31;
        t.system_time = 1_000;
        t.tsc_timestamp = 10_000;
        assert_eq!(t.system_time_at(12_000), 2_000);
        t.tsc_shift = -1;
        assert_eq!(t.tsc_delta_to_ns(4_000), 1_000);
        t.tsc_shift = 2;
        assert_eq!(t.tsc_delta_to_ns(1_000), 2_000);
    }

    #[test]
    fn mmu_update_command_bits() {
        let u = MmuUpdate { ptr: 0x1234_5000 | u64::from(MMU_PT_UPDATE_PRESERVE_AD), val: 0 };
        assert_eq!(u.cmd(), MMU_PT_UPDATE_PRESERVE_AD);
        assert_eq!(u.addr(), 0x1234_5000);
    }
}
