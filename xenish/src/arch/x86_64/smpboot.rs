//! Starting the application processors (APs) and parking them idle.
//!
//! The boot CPU copies a real-mode trampoline to a page below 1 MiB and
//! starts each AP in turn with INIT-SIPI-SIPI through the xAPIC, with the
//! SDM's delays, as Xen's `wakeup_secondary_cpu`. The trampoline enters
//! protected mode, then long mode on page tables below 4 GiB that map the
//! trampoline 1:1 (paging comes on while the AP still runs there) and the
//! hypervisor as its own tables do, and jumps to [`ap_entry`] on the AP's
//! stack block. The AP then takes the boot CPU's control registers, PAT,
//! XCR0 and `syscall` MSRs, loads its own GDT/TSS and the shared IDT, and
//! answers the boot CPU's CALLOUT by enabling its APIC (timer masked) and
//! going online. A CPU that does not answer in time is reset with INIT
//! again, reported and left out; boot goes on.
//!
//! Online APs idle: they halt until an IPI arrives (event check or TLB
//! shootdown, `super::ipi`), take no lock and never touch the scheduler's
//! state (guests run on CPU 0 alone until vCPUs are scheduled across
//! CPUs).

use core::arch::global_asm;
use core::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};

use super::clock::rdtsc;
use super::gdt::{CpuTables, CPU_TABLES_FRAMES};
use super::heap::MachineFrames;
use super::memory::{DirectMap, XEN_VIRT_START};
use super::percpu::{self, MAX_CPUS};
use super::{apic, cpu, fpu};
use crate::ipi::CpuMask;
use crate::mm::{FramePool, Mfn};

/// Offsets of the trampoline's data, after its code (which is shorter).
const OFF_GDT: usize = 0x800;
const OFF_GDTR: usize = 0x820;
const OFF_FAR32: usize = 0x828;
const OFF_FAR64: usize = 0x830;
const OFF_STARTED: usize = 0x838;
const OFF_CR3: usize = 0x840;
const OFF_EFER: usize = 0x844;
const OFF_STACK: usize = 0x848;
const OFF_ENTRY: usize = 0x850;
const OFF_CPU: usize = 0x858;
/// What the trampoline writes at `OFF_STARTED` first (Xen's
/// `trampoline_cpu_started`): tells "stuck" from "never started".
const STARTED: u8 = 0xa5;

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .globl ap_trampoline
ap_trampoline:
    .code16
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %ax, %bx
    shl $4, %ebx                    /* ebx: the trampoline's linear base */
    movb ${started}, {off_started}
    lgdtl {off_gdtr}
    mov %cr0, %eax
    or $1, %eax                     /* PE */
    mov %eax, %cr0
    ljmpl *{off_far32}
    .code32
    .globl ap_trampoline_pm32
ap_trampoline_pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov {off_cr3}(%ebx), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx           /* EFER: LME and the boot CPU's NXE, SCE */
    rdmsr
    or {off_efer}(%ebx), %eax
    wrmsr
    mov $0x80010011, %eax           /* PG | WP | ET | PE; caches on (CD, NW clear) */
    mov %eax, %cr0
    ljmpl *{off_far64}(%ebx)
    .code64
    .globl ap_trampoline_lm64
ap_trampoline_lm64:
    mov {off_stack}(%rbx), %rsp
    mov {off_cpu}(%rbx), %edi
    mov {off_entry}(%rbx), %rax
    jmp *%rax
    .globl ap_trampoline_end
ap_trampoline_end:
"#,
    started = const STARTED,
    off_started = const OFF_STARTED,
    off_gdtr = const OFF_GDTR,
    off_far32 = const OFF_FAR32,
    off_cr3 = const OFF_CR3,
    off_efer = const OFF_EFER,
    off_far64 = const OFF_FAR64,
    off_stack = const OFF_STACK,
    off_cpu = const OFF_CPU,
    off_entry = const OFF_ENTRY,
    options(att_syntax)
);

extern "C" {
    static ap_trampoline: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_pm32: u8;
    static ap_trampoline_lm64: u8;
}

/// A page table of the APs' boot address space.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// The APs' first page tables, in the image (so below 4 GiB, where a
/// 32-bit `mov cr3` can reach them): the hypervisor's L4 slots plus an
/// identity map of the first 2 MiB (the trampoline). Kept after boot, as
/// Xen keeps its trampoline mapping.
static mut AP_L4: Table = Table([0; 512]);
static mut AP_L3: Table = Table([0; 512]);
static mut AP_L2: Table = Table([0; 512]);

/// What every AP copies from the boot CPU.
struct BootCpuState {
    /// The hypervisor's own top-level table.
    l4: u64,
    cr0: u64,
    cr4: u64,
    pat: u64,
    star: u64,
    sfmask: u64,
    tsc_hz: u64,
}

static BOOT_CPU: spin::Once<BootCpuState> = spin::Once::new();

/// Handshake states of a CPU being started (Xen's `cpu_state`).
const CPU_STATE_NONE: u8 = 0;
/// The boot CPU has sent the STARTUP IPIs and waits for the AP.
const CPU_STATE_CALLOUT: u8 = 1;
/// The AP is set up and parked.
const CPU_STATE_ONLINE: u8 = 2;
/// The boot CPU gave up on it.
const CPU_STATE_DEAD: u8 = 3;

static CPU_STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(CPU_STATE_NONE) }; MAX_CPUS];
/// CPUs online, the boot CPU included.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// CPUs online, the boot CPU included.
pub fn online_cpus() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// The CPUs online, the boot CPU included, as a mask (the targets an IPI
/// may go to).
pub fn online_mask() -> CpuMask {
    let mut mask = CpuMask::of(0);
    for (cpu, state) in CPU_STATE.iter().enumerate().skip(1) {
        if state.load(Ordering::Acquire) == CPU_STATE_ONLINE {
            mask = mask.with(cpu);
        }
    }
    mask
}

const MSR_PAT: u32 = 0x277;
const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SFMASK: u32 = 0xc000_0084;
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_NXE: u64 = 1 << 11;

/// Spins for `us` microseconds of TSC time.
fn udelay(us: u64, tsc_hz: u64) {
    let ticks = tsc_hz / 1_000_000 * us;
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Spins until `cpu`'s state is `want` or `ms` milliseconds have passed;
/// whether it got there.
fn wait_state(cpu: usize, want: u8, ms: u64, tsc_hz: u64) -> bool {
    let ticks = tsc_hz / 1000 * ms;
    let start = rdtsc();
    loop {
        if CPU_STATE[cpu].load(Ordering::Acquire) == want {
            return true;
        }
        if rdtsc().wrapping_sub(start) >= ticks {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Programs the `syscall` MSRs of the running CPU `cpu`: its own entry
/// stubs, and the selectors and flag mask every CPU shares.
pub fn write_syscall_msrs(cpu: usize, star: u64, sfmask: u64) {
    let (lstar, cstar) = percpu::syscall_stubs_of(cpu);
    // SAFETY: these MSRs exist on every x86_64 CPU; the selectors name the
    // GDT entries every CPU's tables have, the entries are this CPU's stubs.
    unsafe {
        cpu::wrmsr(MSR_EFER, cpu::rdmsr(MSR_EFER) | EFER_SCE);
        cpu::wrmsr(MSR_STAR, star);
        cpu::wrmsr(MSR_LSTAR, lstar);
        cpu::wrmsr(MSR_CSTAR, cstar);
        cpu::wrmsr(MSR_SFMASK, sfmask);
    }
}

/// Why an AP did not come up.
pub enum Failure {
    /// No frames for its descriptor tables.
    NoMemory,
    /// It ran the trampoline but never reached the handshake.
    Stuck,
    /// It never ran the trampoline.
    NotResponding,
}

impl Failure {
    /// A short description for the boot log.
    pub fn describe(&self) -> &'static str {
        match self {
            Failure::NoMemory => "no memory for its descriptor tables",
            Failure::Stuck => "stuck in the trampoline (no answer to CALLOUT)",
            Failure::NotResponding => "not responding to INIT-SIPI-SIPI",
        }
    }
}

/// The trampoline, copied to `page` (below 1 MiB) and ready for APs.
pub struct Trampoline {
    page: u64,
}

impl Trampoline {
    /// Copies the trampoline to `page` (a free, 4 KiB-aligned page below
    /// 1 MiB), builds the APs' boot page tables from the hypervisor's
    /// top-level table `l4`, and records the boot CPU's state that every
    /// AP copies. `tsc_hz` times the handshake.
    pub fn install(page: u64, l4: Mfn, tsc_hz: u64) -> Option<Trampoline> {
        if !page.is_multiple_of(4096) || !(0x1000..0x10_0000).contains(&page) {
            return None;
        }
        // SAFETY: the linker-provided bounds of the trampoline's code.
        let (code, len, pm32, lm64) = unsafe {
            let start = &ap_trampoline as *const u8;
            let end = &ap_trampoline_end as *const u8 as usize;
            let pm32 = &ap_trampoline_pm32 as *const u8 as usize - start as usize;
            let lm64 = &ap_trampoline_lm64 as *const u8 as usize - start as usize;
            (start, end - start as usize, pm32, lm64)
        };
        if len > OFF_GDT {
            return None;
        }
        let base = DirectMap::va(page) as *mut u8;
        // SAFETY: the page is below 1 MiB, which the frame allocator never
        // hands out and the direct map covers; the caller chose it free.
        // Only this CPU writes it while no AP runs.
        unsafe {
            core::ptr::write_bytes(base, 0, 4096);
            core::ptr::copy_nonoverlapping(code, base, len);
            let put32 = |off: usize, v: u32| base.add(off).cast::<u32>().write_unaligned(v);
            let put16 = |off: usize, v: u16| base.add(off).cast::<u16>().write_unaligned(v);
            let gdt = [0u64, 0x00cf_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0x00af_9a00_0000_ffff];
            for (i, d) in gdt.iter().enumerate() {
                base.add(OFF_GDT + 8 * i).cast::<u64>().write_unaligned(*d);
            }
            put16(OFF_GDTR, (gdt.len() * 8 - 1) as u16);
            put32(OFF_GDTR + 2, (page + OFF_GDT as u64) as u32);
            put32(OFF_FAR32, (page + pm32 as u64) as u32);
            put16(OFF_FAR32 + 4, 0x08);
            put32(OFF_FAR64, (page + lm64 as u64) as u32);
            put16(OFF_FAR64 + 4, 0x18);
        }
        // The APs' boot page tables: the hypervisor's slots, and the first
        // 2 MiB identity-mapped (one large page, executable).
        // SAFETY: the tables are written only here, before any AP runs; the
        // hypervisor's L4 is mapped through the direct map.
        let ap_l4 = unsafe {
            let hv = &*(DirectMap::va(l4.addr()) as *const [u64; 512]);
            let l4t = &mut *core::ptr::addr_of_mut!(AP_L4.0);
            l4t.copy_from_slice(hv);
            let l3 = &mut *core::ptr::addr_of_mut!(AP_L3.0);
            let l2 = &mut *core::ptr::addr_of_mut!(AP_L2.0);
            let phys = |t: u64| t - XEN_VIRT_START;
            const P_RW: u64 = 0b11;
            const PS: u64 = 1 << 7;
            l2[0] = P_RW | PS;
            l3[0] = phys(l2.as_ptr() as u64) | P_RW;
            l4t[0] = phys(l3.as_ptr() as u64) | P_RW;
            phys(l4t.as_ptr() as u64)
        };
        // SAFETY: reading this CPU's MSRs, which exist on every x86_64 CPU.
        let (efer, pat, star, sfmask) =
            unsafe { (cpu::rdmsr(MSR_EFER), cpu::rdmsr(MSR_PAT), cpu::rdmsr(MSR_STAR), cpu::rdmsr(MSR_SFMASK)) };
        // SAFETY: as above: the trampoline page is this CPU's to write.
        unsafe {
            base.add(OFF_CR3).cast::<u32>().write_unaligned(ap_l4 as u32);
            base.add(OFF_EFER).cast::<u32>().write_unaligned((EFER_LME | (efer & (EFER_NXE | EFER_SCE))) as u32);
            base.add(OFF_ENTRY).cast::<u64>().write_unaligned(ap_entry as *const () as u64);
        }
        BOOT_CPU.call_once(|| BootCpuState {
            l4: l4.addr(),
            cr0: cpu::read_cr0(),
            cr4: cpu::read_cr4(),
            pat,
            star,
            sfmask,
            tsc_hz,
        });
        Some(Trampoline { page })
    }

    /// Starts CPU `cpu` (its APIC ID `apic_id`) and waits for it to come
    /// online; on failure, resets it with INIT again so it cannot run on
    /// into a later CPU's start.
    pub fn start(&self, cpu: usize, apic_id: u32) -> Result<(), Failure> {
        let Some(boot) = BOOT_CPU.get() else { return Err(Failure::NotResponding) };
        if cpu == 0 || cpu >= MAX_CPUS {
            return Err(Failure::NotResponding);
        }
        let tables = MachineFrames.alloc_contiguous(CPU_TABLES_FRAMES, 1).ok_or(Failure::NoMemory)?;
        let tables = DirectMap::va(tables.addr()) as *mut CpuTables;
        let base = DirectMap::va(self.page) as *mut u8;
        // SAFETY: the frames were just allocated for this CPU's tables
        // (all-zero bytes are a valid `CpuTables`), and the direct map
        // covers them; the trampoline page is this CPU's to write while no
        // AP is between INIT and online.
        unsafe {
            core::ptr::write_bytes(tables.cast::<u8>(), 0, (CPU_TABLES_FRAMES * 4096) as usize);
            base.add(OFF_STARTED).write_volatile(0);
            base.add(OFF_STACK).cast::<u64>().write_unaligned(percpu::stack_top(cpu) - 8);
            base.add(OFF_CPU).cast::<u32>().write_unaligned(cpu as u32);
        }
        percpu::init_cpu_info(cpu, apic_id, tables);
        CPU_STATE[cpu].store(CPU_STATE_NONE, Ordering::Release);
        fence(Ordering::SeqCst);

        let hz = boot.tsc_hz;
        apic::take_errors();
        apic::send_init_assert(apic_id);
        udelay(10_000, hz);
        apic::send_init_deassert(apic_id);
        for _ in 0..2 {
            apic::take_errors();
            apic::send_startup(apic_id, (self.page >> 12) as u8);
            udelay(300, hz);
            udelay(200, hz);
        }
        let errors = apic::take_errors() & 0xef;
        if errors != 0 {
            crate::printk!("xenish: APIC error {errors:#x} while starting APIC id {apic_id}");
        }
        CPU_STATE[cpu].store(CPU_STATE_CALLOUT, Ordering::Release);
        if wait_state(cpu, CPU_STATE_ONLINE, 5000, hz) {
            ONLINE.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
        CPU_STATE[cpu].store(CPU_STATE_DEAD, Ordering::Release);
        apic::send_init_assert(apic_id);
        udelay(10_000, hz);
        apic::send_init_deassert(apic_id);
        // SAFETY: a byte of the trampoline page, which the AP may write.
        let started = unsafe { base.add(OFF_STARTED).read_volatile() };
        // The tables are not freed: an AP that was stuck might have loaded
        // them before the INIT.
        Err(if started == STARTED { Failure::Stuck } else { Failure::NotResponding })
    }
}

/// Where an AP enters Rust from the trampoline: on its own stack block,
/// in long mode on the APs' boot page tables, interrupts off.
extern "C" fn ap_entry(cpu: u32) -> ! {
    let cpu = cpu as usize;
    let Some(boot) = BOOT_CPU.get() else { cpu::halt_forever() };
    // SAFETY: the hypervisor's own tables map everything the boot page
    // tables do but the trampoline, which this code no longer runs from;
    // CR0 and CR4 take the boot CPU's values (the same CPU model; TS
    // clear, as the hypervisor runs), and PAT its memory types.
    unsafe {
        cpu::write_cr3(boot.l4);
        core::arch::asm!("mov cr0, {}", in(reg) boot.cr0 & !(1 << 3), options(nostack));
        cpu::write_cr4(boot.cr4);
        cpu::wrmsr(MSR_PAT, boot.pat);
    }
    fpu::init_secondary();
    // SAFETY: this CPU is `cpu`, on its own stack block, whose CpuInfo the
    // boot CPU filled with tables allocated for this CPU alone.
    unsafe { percpu::load_tables(cpu, percpu::tables()) };
    write_syscall_msrs(cpu, boot.star, boot.sfmask);
    // The boot CPU's CALLOUT (Xen's smp_callin waits 2 s for it).
    if !wait_state(cpu, CPU_STATE_CALLOUT, 2000, boot.tsc_hz) {
        cpu::halt_forever();
    }
    apic::init_secondary();
    apic::take_errors();
    // Online only if the boot CPU still waits; once it has given up, this
    // CPU stays parked and out of the count.
    let _ = CPU_STATE[cpu].compare_exchange(CPU_STATE_CALLOUT, CPU_STATE_ONLINE, Ordering::AcqRel, Ordering::Acquire);
    park()
}

/// The idle loop of an AP: it halts until an IPI arrives and carries out
/// the softirqs and flushes addressed to it ([`super::ipi::idle`]).
/// Nothing here takes a lock or looks at the domains.
fn park() -> ! {
    super::ipi::idle()
}
