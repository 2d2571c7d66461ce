//! XPTI's machine side ([`crate::xpti`] decides): the per-CPU root tables
//! and what every exit to a guest does before the exit stub switches CR3.
//!
//! A root table maps, of the hypervisor, only what the entry and exit
//! stubs in [`super::entry`] and [`super::percpu`] touch while it is
//! loaded, each page at the address it has in the hypervisor's own tables:
//! the entry text (`__entry_text_start..__entry_text_end`), the IDT, this
//! CPU's [`CpuTables`] (GDT, LDT, TSS: the CPU reads them on every entry
//! and sets accessed bits on segment loads) and this CPU's stack block
//! (the `CpuInfo` at its top, the primary stack the CPU pushes trap frames
//! on, the IST stacks). Not the direct map, not the heap, not the rest of
//! the image, not other CPUs' stacks. Slot 256 (the read-only M2P guests
//! read) is the hypervisor's own; the guest slots are copied on exit.
//!
//! The hypervisor uses no global pages (CR4.PGE stays clear) and no PCID,
//! so each CR3 load flushes the whole TLB: nothing the hypervisor touched
//! stays translated when the guest runs on its root table again.

use core::sync::atomic::Ordering;

use super::gdt::{CpuTables, CPU_TABLES_FRAMES};
use super::heap::MachineFrames;
use super::memory::{DirectMap, DIRECTMAP_SIZE, DIRECTMAP_START, XEN_VIRT_START};
use super::{cpu, percpu};
use crate::mm::pagetable::{self, MapError, PageSize, PTE_NX, PTE_P, PTE_RW};
use crate::mm::{FramePool, Mfn, PAGE_SIZE};
use crate::xpti::{copy_guest_slots, CpuFacts, RootSync, Xpti, XEN_FIRST_SLOT};

extern "C" {
    static __entry_text_start: u8;
    static __entry_text_end: u8;
}

/// Which domains run with XPTI, decided once at boot.
static CONFIG: spin::Once<Xpti> = spin::Once::new();

/// The machine-address bits of CR3 (no PCID in use).
const CR3_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// `IA32_ARCH_CAPABILITIES`.
const MSR_ARCH_CAPABILITIES: u32 = 0x10a;

/// What this CPU says about Meltdown: its vendor and `RDCL_NO`.
pub fn cpu_facts() -> CpuFacts {
    let v = cpu::cpuid(0, 0);
    let vendor = |s: &[u8; 12]| {
        let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        v.ebx == w(0) && v.edx == w(4) && v.ecx == w(8)
    };
    let amd_or_hygon = vendor(b"AuthenticAMD") || vendor(b"HygonGenuine");
    // ARCH_CAPABILITIES exists when CPUID.7.0:EDX[29] says so.
    let has_arch_caps = v.eax >= 7 && cpu::cpuid(7, 0).edx & (1 << 29) != 0;
    // SAFETY: the MSR exists: CPUID enumerates it.
    let rdcl_no = has_arch_caps && unsafe { cpu::rdmsr(MSR_ARCH_CAPABILITIES) } & 1 != 0;
    CpuFacts { amd_or_hygon, rdcl_no }
}

/// Records which domains run with XPTI (once, at boot).
pub fn configure(x: Xpti) {
    CONFIG.call_once(|| x);
}

/// Which domains run with XPTI (all off before [`configure`]).
pub fn config() -> Xpti {
    CONFIG.get().copied().unwrap_or_default()
}

/// Says whether the vCPU this CPU is about to run belongs to a domain with
/// XPTI (`hardware_domain`: it is dom0), when the CPU switches vCPUs.
pub fn set_current(hardware_domain: Option<bool>) {
    let on = hardware_domain.is_some_and(|hw| config().for_domain(hw));
    percpu::this_cpu().xpti_current.store(on, Ordering::Relaxed);
}

/// The machine address behind hypervisor address `va`: the image's
/// linear mapping or the direct map.
fn machine_address(va: u64) -> Option<u64> {
    if (XEN_VIRT_START..XEN_VIRT_START + (1 << 30)).contains(&va) {
        Some(va - XEN_VIRT_START)
    } else if (DIRECTMAP_START..DIRECTMAP_START + DIRECTMAP_SIZE).contains(&va) {
        Some(va - DIRECTMAP_START)
    } else {
        None
    }
}

/// Maps the pages covering `[start, end)` into `root` at the addresses
/// they have now, with leaf flags `flags`.
fn clone_range(mem: &mut DirectMap, root: Mfn, start: u64, end: u64, flags: u64) -> Result<(), MapError> {
    let mut alloc = || MachineFrames.alloc();
    let mut va = start & !(PAGE_SIZE as u64 - 1);
    while va < end {
        let pa = machine_address(va).ok_or(MapError::BadTable)?;
        pagetable::map(mem, &mut alloc, root, va, pa, PageSize::Size4K, flags, PTE_P | PTE_RW)?;
        va += PAGE_SIZE as u64;
    }
    Ok(())
}

/// Builds the root table of `cpu` (whose `CpuInfo` names its tables) and
/// records it in that CPU's `CpuInfo`; `m2p_slot` is L4 slot 256 of every
/// guest. Called on the boot CPU for every online CPU, itself included,
/// before any guest runs.
pub fn build_root(mem: &mut DirectMap, cpu: usize, m2p_slot: u64) -> Result<Mfn, MapError> {
    let info = percpu::info_of(cpu).ok_or(MapError::BadTable)?;
    let nx = if cpu::efer_nx() { PTE_NX } else { 0 };
    let mut alloc = || MachineFrames.alloc();
    let root = pagetable::new_table(mem, &mut alloc)?;
    pagetable::set_entry(mem, root, XEN_FIRST_SLOT, m2p_slot)?;
    // SAFETY: linker symbols; only their addresses are taken.
    let (text, text_end) = unsafe { (&__entry_text_start as *const u8 as u64, &__entry_text_end as *const u8 as u64) };
    clone_range(mem, root, text, text_end, PTE_P)?;
    let idt = super::idt::address();
    clone_range(mem, root, idt, idt + PAGE_SIZE as u64, PTE_P | nx)?;
    let tables = info.tables as u64;
    let tables_end = tables + CPU_TABLES_FRAMES * PAGE_SIZE as u64;
    clone_range(mem, root, tables, tables_end, PTE_P | PTE_RW | nx)?;
    let (stack, stack_end) = percpu::block_range(cpu);
    clone_range(mem, root, stack, stack_end, PTE_P | PTE_RW | nx)?;
    info.root_pgt.store(root.addr(), Ordering::Relaxed);
    Ok(root)
}

/// Before an exit to a guest (the frame returns to ring 3), on the real
/// L4 the guest is to run on: if its domain runs with XPTI and this CPU
/// has a root table, copies the guest slots into it when they may differ
/// ([`RootSync`]) and has the exit stub load it; otherwise the guest runs
/// on its real L4.
#[inline]
pub fn prepare_exit() {
    let info = percpu::this_cpu();
    let root = info.root_pgt.load(Ordering::Relaxed);
    if root == 0 || !info.xpti_current.load(Ordering::Relaxed) {
        info.pv_cr3.store(0, Ordering::Relaxed);
        return;
    }
    prepare_root_exit(info, root);
}

/// [`prepare_exit`] for a domain that runs with XPTI on this CPU's root
/// table `root`.
#[inline(never)]
fn prepare_root_exit(info: &percpu::CpuInfo, root: u64) {
    let l4 = cpu::read_cr3() & CR3_ADDR;
    // Read before the copy: a change made during it bumps the count again.
    let generation = crate::xpti::l4_generation();
    let synced = RootSync {
        l4: info.root_synced_l4.load(Ordering::Relaxed),
        generation: info.root_synced_gen.load(Ordering::Relaxed),
    };
    if synced.needs_copy(l4, generation) {
        // SAFETY: CR3 holds a validated guest L4 (or the hypervisor's
        // own), a page-table frame the direct map covers and no Rust
        // reference aliases; the root table is this CPU's alone, not loaded
        // now (the CPU runs on `l4`), and nothing else references it.
        unsafe {
            let guest = &*(DirectMap::va(l4) as *const [u64; 512]);
            let root_table = &mut *(DirectMap::va(root) as *mut [u64; 512]);
            copy_guest_slots(root_table, guest);
        }
        info.root_synced_l4.store(l4, Ordering::Relaxed);
        info.root_synced_gen.store(generation, Ordering::Relaxed);
    }
    info.pv_cr3.store(root, Ordering::Relaxed);
}

const _: () = assert!(core::mem::size_of::<CpuTables>() as u64 <= CPU_TABLES_FRAMES * PAGE_SIZE as u64);
