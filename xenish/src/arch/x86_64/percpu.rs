//! Per-CPU state found from the stack pointer, as Xen's `get_cpu_info()`.
//!
//! Every CPU runs on its own [`STACK_SIZE`] block, aligned to its size:
//! the double-fault, NMI and machine-check IST stacks at the bottom, the
//! primary stack above them, and a [`CpuInfo`] at the very top. Rounding
//! any stack pointer inside the block up to the block's end finds the
//! `CpuInfo`, from the primary and the IST stacks alike. Guests own GS and
//! `TSC_AUX` (a PV kernel writes both), so neither can carry per-CPU data.
//!
//! The `syscall` entry needs its own stack before it can look at anything:
//! each CPU has its own pair of entry stubs (`MSR_LSTAR`/`MSR_CSTAR`), which
//! save the guest `rsp` in their CPU's `CpuInfo` and load that CPU's stack
//! with RIP-relative addressing, so no global scratch slot is shared.

use core::arch::{asm, global_asm};
use core::mem::size_of;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, AtomicU64};

use super::gdt::{self, CpuTables};

/// The most CPUs xenish brings up (MADT entries past it are reported and
/// skipped). Each costs one [`STACK_SIZE`] block in the image.
pub const MAX_CPUS: usize = 32;
/// Bytes of one CPU's stack block, a power of two (its alignment).
pub const STACK_SIZE: usize = 256 * 1024;
/// Bytes of each IST stack at the bottom of the block.
pub const IST_SIZE: usize = 16 * 1024;
/// Bytes reserved for [`CpuInfo`] at the top of the block.
pub const CPU_INFO_SIZE: usize = 128;
/// Offset of the primary stack's top (`TSS.rsp0`, where trap frames go)
/// inside a block: the `CpuInfo` sits right above it.
pub const STACK_TOP_OFFSET: usize = STACK_SIZE - CPU_INFO_SIZE;
/// Bytes of each CPU's pair of `syscall` entry stubs.
const STUB_SIZE: usize = 32;

/// What a CPU knows about itself, at the top of its stack block.
#[repr(C)]
pub struct CpuInfo {
    /// Scratch slot for the guest `rsp` while `syscall` switches stacks
    /// (offset 0: the stubs store to the stack top itself).
    pub syscall_rsp: u64,
    /// The CPU's index (0 is the boot CPU).
    pub cpu: u32,
    /// Its local APIC ID.
    pub apic_id: u32,
    /// Its GDT, LDT and TSS.
    pub tables: *mut CpuTables,
    /// The system time (ns) its APIC timer was last armed for, `u64::MAX`
    /// for none, `u64::MAX - 1` once it fired: while the timer still
    /// counts towards it, arming it for the same deadline again is skipped.
    pub armed_ns: AtomicU64,
    /// XPTI: while this CPU runs a guest on its root table, the CR3 every
    /// entry loads first (the vCPU's real L4), else 0 (Xen's `xen_cr3`).
    /// Written by the entry and exit stubs.
    pub xen_cr3: AtomicU64,
    /// XPTI: the table the exit stub loads before it returns to a guest
    /// (this CPU's root table), or 0 to stay on the real L4 (Xen's
    /// `pv_cr3`). Set by [`super::xpti::prepare_exit`].
    pub pv_cr3: AtomicU64,
    /// XPTI: this CPU's root table (machine address), 0 if it has none.
    pub root_pgt: AtomicU64,
    /// XPTI: the guest L4 (machine address) the root table's guest slots
    /// were last copied from, and the L4 generation then.
    pub root_synced_l4: AtomicU64,
    /// See [`CpuInfo::root_synced_l4`].
    pub root_synced_gen: AtomicU64,
    /// XPTI: whether the vCPU this CPU runs belongs to a domain with XPTI.
    pub xpti_current: AtomicBool,
}

/// Offset of [`CpuInfo::xen_cr3`], for the entry stubs.
pub const CPU_INFO_XEN_CR3: usize = core::mem::offset_of!(CpuInfo, xen_cr3);
/// Offset of [`CpuInfo::pv_cr3`], for the exit stub.
pub const CPU_INFO_PV_CR3: usize = core::mem::offset_of!(CpuInfo, pv_cr3);

const _: () = assert!(size_of::<CpuInfo>() <= CPU_INFO_SIZE);
const _: () = assert!(MAX_CPUS <= crate::flush::LOCAL_CPU, "a flush's pseudo-CPU must not be a real one");
const _: () = assert!(STACK_SIZE.is_power_of_two() && STACK_TOP_OFFSET.is_multiple_of(16));

/// One CPU's stack block.
#[repr(C, align(262144))]
pub struct StackBlock([u8; STACK_SIZE]);

const _: () = assert!(core::mem::align_of::<StackBlock>() == STACK_SIZE);

/// Every CPU's stack block; CPU 0's is the boot stack the trampoline in
/// `boot` loads. The `syscall` stubs name it by symbol.
#[no_mangle]
pub static mut CPU_STACKS: [StackBlock; MAX_CPUS] = [const { StackBlock([0; STACK_SIZE]) }; MAX_CPUS];

/// Address of the stack block of `cpu` (which must be below [`MAX_CPUS`]).
fn block(cpu: usize) -> u64 {
    addr_of_mut!(CPU_STACKS) as u64 + (cpu * STACK_SIZE) as u64
}

/// The top of the primary stack of `cpu`: its `TSS.rsp0`, and where
/// [`super::entry::resume`] puts the frame it enters.
pub fn stack_top(cpu: usize) -> u64 {
    block(cpu) + STACK_TOP_OFFSET as u64
}

/// The tops of the double-fault, NMI and machine-check IST stacks of `cpu`.
pub fn ist_tops(cpu: usize) -> [u64; 3] {
    let b = block(cpu);
    [1, 2, 3].map(|i| b + (i * IST_SIZE) as u64)
}

/// Fills in the `CpuInfo` of `cpu` before that CPU runs on its block.
pub fn init_cpu_info(cpu: usize, apic_id: u32, tables: *mut CpuTables) {
    if cpu >= MAX_CPUS {
        return;
    }
    let info = stack_top(cpu) as *mut CpuInfo;
    // SAFETY: the block of `cpu` is not in use yet (its CPU is not
    // running, or is the caller, whose stack is far below the top); the
    // slot is aligned and inside the block.
    unsafe {
        info.write(CpuInfo {
            syscall_rsp: 0,
            cpu: cpu as u32,
            apic_id,
            tables,
            armed_ns: AtomicU64::new(u64::MAX),
            xen_cr3: AtomicU64::new(0),
            pv_cr3: AtomicU64::new(0),
            root_pgt: AtomicU64::new(0),
            root_synced_l4: AtomicU64::new(0),
            root_synced_gen: AtomicU64::new(0),
            xpti_current: AtomicBool::new(false),
        })
    };
}

/// The running CPU's `CpuInfo`, found from the stack pointer.
pub fn this_cpu() -> &'static CpuInfo {
    let rsp: u64;
    // SAFETY: reads the stack pointer only.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    let top = (rsp | (STACK_SIZE as u64 - 1)) + 1 - CPU_INFO_SIZE as u64;
    // SAFETY: every CPU runs on a block of CPU_STACKS (trap frames and IST
    // stacks included), whose CpuInfo was written before the CPU started;
    // other CPUs never write it, and the `syscall_rsp` field this CPU's
    // entry stubs write is not read through this reference.
    unsafe { &*(top as *const CpuInfo) }
}

/// The local APIC ID of `cpu` (which must have been set up by
/// [`init_cpu_info`]; `None` past [`MAX_CPUS`]).
pub fn apic_id_of(cpu: usize) -> Option<u32> {
    if cpu >= MAX_CPUS {
        return None;
    }
    let info = stack_top(cpu) as *const CpuInfo;
    // SAFETY: the slot is aligned and inside the block of `cpu`; its
    // `apic_id` is written once by `init_cpu_info` before that CPU starts
    // (and before it is in the online mask any sender reads) and never
    // again; only that field is read.
    Some(unsafe { core::ptr::addr_of!((*info).apic_id).read() })
}

/// The `CpuInfo` of `cpu` (set up by [`init_cpu_info`]; `None` past
/// [`MAX_CPUS`]), for the boot CPU to fill in another CPU's fields that
/// are atomics.
pub fn info_of(cpu: usize) -> Option<&'static CpuInfo> {
    if cpu >= MAX_CPUS {
        return None;
    }
    // SAFETY: the slot is aligned and inside the block of `cpu`, written
    // by `init_cpu_info` before that CPU starts; the fields others write
    // are atomics, the rest are written once before the CPU runs.
    Some(unsafe { &*(stack_top(cpu) as *const CpuInfo) })
}

/// The bounds of the stack block of `cpu` (below [`MAX_CPUS`]).
pub fn block_range(cpu: usize) -> (u64, u64) {
    (block(cpu), block(cpu) + STACK_SIZE as u64)
}

/// The running CPU's index.
pub fn cpu_index() -> usize {
    this_cpu().cpu as usize
}

/// The running CPU's descriptor tables.
pub fn tables() -> *mut CpuTables {
    this_cpu().tables
}

global_asm!(
    r#"
    .section .text.syscall_stubs, "ax"
    .balign {stub_size}
    .globl syscall_stubs
syscall_stubs:
    .set cpu_i, 0
    .rept {max_cpus}
    .balign {stub_size}
    /* MSR_LSTAR: 64-bit syscall */
    mov qword ptr [rip + CPU_STACKS + cpu_i * {stack_size} + {top}], rsp
    lea rsp, [rip + CPU_STACKS + cpu_i * {stack_size} + {top}]
    jmp lstar_common
    .balign {half}
    /* MSR_CSTAR: syscall from 32-bit code */
    mov qword ptr [rip + CPU_STACKS + cpu_i * {stack_size} + {top}], rsp
    lea rsp, [rip + CPU_STACKS + cpu_i * {stack_size} + {top}]
    jmp cstar_common
    .set cpu_i, cpu_i + 1
    .endr
    .balign {stub_size}
    .globl syscall_stubs_end
syscall_stubs_end:
"#,
    stub_size = const STUB_SIZE * 2,
    half = const STUB_SIZE,
    max_cpus = const MAX_CPUS,
    stack_size = const STACK_SIZE,
    top = const STACK_TOP_OFFSET,
);

extern "C" {
    static syscall_stubs: u8;
    static syscall_stubs_end: u8;
}

/// The `MSR_LSTAR` and `MSR_CSTAR` entries of `cpu`.
pub fn syscall_stubs_of(cpu: usize) -> (u64, u64) {
    // SAFETY: only the addresses of the stub table are taken.
    let (start, end) = unsafe { (&syscall_stubs as *const u8 as u64, &syscall_stubs_end as *const u8 as u64) };
    debug_assert_eq!(end - start, (MAX_CPUS * STUB_SIZE * 2) as u64);
    let lstar = start + (cpu.min(MAX_CPUS - 1) * STUB_SIZE * 2) as u64;
    (lstar, lstar + STUB_SIZE as u64)
}

/// Loads the running CPU's descriptor tables (`tables`, with `rsp0` and
/// its IST stacks set in the TSS) and the shared IDT.
///
/// # Safety
/// The running CPU must be `cpu`, on its stack block, and `tables` its own
/// [`CpuTables`], as [`gdt::init`] requires.
pub unsafe fn load_tables(cpu: usize, tables: *mut CpuTables) {
    // SAFETY: the caller's contract.
    unsafe { gdt::init(tables, stack_top(cpu), ist_tops(cpu)) };
    super::idt::load();
}
