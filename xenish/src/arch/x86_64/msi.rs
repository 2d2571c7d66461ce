//! The hardware side of [`crate::msi::PciAccess`]: PCI configuration
//! mechanism #1 (ports 0xcf8/0xcfc, segment 0, registers below 256) and
//! 32-bit MMIO of device registers (the MSI-X tables) through one fixmap
//! page, mapped uncached on demand. The routing table's lock serialises
//! every use, so the address latch and the fixmap page have one user at a
//! time.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::mm::pagetable::{self, MapError, PageSize, PTE_NX, PTE_P, PTE_RW};
use crate::mm::{MachineMemory, Mfn};
use crate::msi::PciAccess;

use super::cpu;
use super::memory::{DIRECTMAP_START, FIXMAP_APIC};

/// The fixmap page through which the hypervisor reaches device memory
/// (after the local APIC's and the IO-APICs' pages).
pub const FIXMAP_MMIO: u64 = FIXMAP_APIC + 0x1000 * 16;

/// Physical address of the L1 table holding [`FIXMAP_MMIO`]'s entry (0:
/// not set up).
static MMIO_L1: AtomicU64 = AtomicU64::new(0);

/// PCD | PWT: device registers are never cached.
const UNCACHED: u64 = (1 << 4) | (1 << 3);

/// Maps [`FIXMAP_MMIO`] in the hypervisor's tables rooted at `l4` (to the
/// local APIC's page until first used), so that its L1 table exists, and
/// records that table.
pub fn fixmap_init(
    mem: &mut dyn MachineMemory,
    alloc: &mut dyn FnMut() -> Option<Mfn>,
    l4: Mfn,
) -> Result<(), MapError> {
    let leaf = PTE_P | PTE_RW | UNCACHED | PTE_NX;
    pagetable::map(mem, alloc, l4, FIXMAP_MMIO, super::apic::APIC_PHYS_BASE, PageSize::Size4K, leaf, PTE_P | PTE_RW)?;
    let idx = |shift: u32| ((FIXMAP_MMIO >> shift) & 0x1ff) as usize;
    let mut table = l4;
    for shift in [39, 30, 21] {
        table = Mfn::containing(pagetable::entry(mem, table, idx(shift))? & pagetable::PTE_ADDR);
    }
    MMIO_L1.store(table.addr(), Ordering::Relaxed);
    Ok(())
}

/// Makes [`FIXMAP_MMIO`] map the page holding `pa`; its virtual address.
fn map(pa: u64) -> Option<u64> {
    let l1 = MMIO_L1.load(Ordering::Relaxed);
    if l1 == 0 {
        return None;
    }
    let slot = (FIXMAP_MMIO >> 12) & 0x1ff;
    let pte = (DIRECTMAP_START + l1 + 8 * slot) as *mut u64;
    // SAFETY: `fixmap_init` recorded the L1 table the hypervisor's shared
    // fixmap slots use; the direct map covers it (a frame from the boot
    // allocator, below 4 GiB); the routing lock makes this CPU its only
    // writer, and the entry maps device memory, never RAM in use.
    unsafe { pte.write_volatile((pa & pagetable::PTE_ADDR) | PTE_P | PTE_RW | UNCACHED | PTE_NX) };
    // Another CPU may have pointed the slot elsewhere since this one last
    // used it: always drop this CPU's translation.
    cpu::invlpg(FIXMAP_MMIO);
    Some(FIXMAP_MMIO + (pa & 0xffc))
}

/// The machine's PCI configuration space and device memory.
pub struct Hardware;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

fn outl(port: u16, value: u32) {
    // SAFETY: port I/O touches no memory; the hypervisor owns 0xcf8.
    unsafe { core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)) };
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `outl`.
    unsafe { core::arch::asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack)) };
    v
}

fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as for `outl`.
    unsafe { core::arch::asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack)) };
    v
}

/// Selects register `reg` of `sbdf` on mechanism #1; the data port, or
/// `None` for what it cannot reach (another segment, extended registers).
fn select(sbdf: u32, reg: u32) -> Option<u16> {
    if sbdf >> 16 != 0 || reg >= 256 {
        return None;
    }
    outl(CONFIG_ADDRESS, 0x8000_0000 | (sbdf & 0xffff) << 8 | (reg & 0xfc));
    Some(CONFIG_DATA + (reg & 3) as u16)
}

impl PciAccess for Hardware {
    fn conf_read(&mut self, sbdf: u32, reg: u32, size: u32) -> u32 {
        let Some(port) = select(sbdf, reg) else { return u32::MAX };
        match size {
            1 => u32::from(cpu::inb(port)),
            2 => u32::from(inw(port)),
            _ => inl(port),
        }
    }

    fn conf_write(&mut self, sbdf: u32, reg: u32, size: u32, value: u32) {
        let Some(port) = select(sbdf, reg) else { return };
        match size {
            1 => cpu::outb(port, value as u8),
            2 => cpu::outw(port, value as u16),
            _ => outl(port, value),
        }
    }

    fn mmio_read(&mut self, pa: u64) -> u32 {
        let Some(va) = map(pa) else { return u32::MAX };
        // SAFETY: `map` just pointed the fixmap page at `pa`'s page,
        // uncached; `va` is 4-byte aligned inside it.
        unsafe { (va as *const u32).read_volatile() }
    }

    fn mmio_write(&mut self, pa: u64, value: u32) {
        let Some(va) = map(pa) else { return };
        // SAFETY: as for `mmio_read`.
        unsafe { (va as *mut u32).write_volatile(value) }
    }
}
