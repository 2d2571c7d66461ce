//! The IO-APICs' registers, mapped uncached at fixmap pages after the
//! local APIC's, and the machine side of device interrupts: at boot every
//! pin is masked and the routing table ([`crate::irq`]) installed; each
//! device vector's handler lets the table mask a level line and record the
//! PIRQ, then EOIs the local APIC.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::acpi::Madt;
use crate::irq::{IoApicAccess, IrqRouting, Override};

use super::memory::FIXMAP_APIC;

/// IO-APICs xenish drives; more are left alone (and their GSIs unusable).
pub const MAX_IO_APICS: usize = 8;

/// Virtual address of IO-APIC `i`'s fixmap page.
pub const fn fixmap(i: usize) -> u64 {
    FIXMAP_APIC + 0x1000 * (1 + i as u64)
}

/// Virtual address of each IO-APIC's registers (0: none).
static REGS: [AtomicU64; MAX_IO_APICS] = [const { AtomicU64::new(0) }; MAX_IO_APICS];

/// Offsets of the index and data registers.
const IOREGSEL: u64 = 0;
const IOWIN: u64 = 0x10;

/// The IO-APICs' register windows (the routing table holds its lock
/// around every access, so index/data pairs never interleave).
struct Mmio;

impl Mmio {
    fn regs(apic: usize) -> Option<u64> {
        REGS.get(apic).map(|r| r.load(Ordering::Relaxed)).filter(|&va| va != 0)
    }
}

impl IoApicAccess for Mmio {
    fn read(&mut self, apic: usize, reg: u32) -> u32 {
        let Some(va) = Self::regs(apic) else { return 0 };
        // SAFETY: `init` recorded `va` only after the page tables mapped
        // the IO-APIC's register page there uncached; IOREGSEL and IOWIN
        // are its architectural registers.
        unsafe {
            ((va + IOREGSEL) as *mut u32).write_volatile(reg);
            ((va + IOWIN) as *const u32).read_volatile()
        }
    }

    fn write(&mut self, apic: usize, reg: u32, value: u32) {
        let Some(va) = Self::regs(apic) else { return };
        // SAFETY: as for `read`.
        unsafe {
            ((va + IOREGSEL) as *mut u32).write_volatile(reg);
            ((va + IOWIN) as *mut u32).write_volatile(value);
        }
    }
}

/// The IO-APICs' physical addresses from `madt`, at most [`MAX_IO_APICS`]:
/// what the page tables map at [`fixmap`].
pub fn addresses(madt: Option<&Madt>) -> Vec<u64> {
    madt.map(|m| m.io_apics.iter().take(MAX_IO_APICS).map(|a| u64::from(a.address)).collect()).unwrap_or_default()
}

/// Masks every pin of the IO-APICs `madt` lists (already mapped at their
/// [`fixmap`] pages) and installs the routing table, interrupts aimed at
/// the APIC with ID `dest_apic_id`. The GSIs of ISA IRQ 0 (the PIT) and 4
/// (COM1, the hypervisor's console) stay the hypervisor's, as in Xen.
pub fn init(madt: Option<&Madt>, dest_apic_id: u32) {
    let Some(madt) = madt.filter(|m| !m.io_apics.is_empty()) else {
        crate::printk!("xenish: no IO-APIC; dom0 gets no device interrupts");
        return;
    };
    let apics: Vec<(u64, u32)> =
        madt.io_apics.iter().take(MAX_IO_APICS).map(|a| (u64::from(a.address), a.gsi_base)).collect();
    for (i, &(address, _)) in apics.iter().enumerate() {
        if let Some(r) = REGS.get(i) {
            r.store(fixmap(i) + (address & 0xfff), Ordering::Relaxed);
        }
    }
    let overrides: Vec<Override> = madt
        .overrides
        .iter()
        .filter(|o| o.bus == 0)
        .map(|o| Override { source: o.source, gsi: o.gsi, flags: o.flags })
        .collect();
    let mut routing = IrqRouting::new(&apics, &overrides, dest_apic_id, Box::new(Mmio));
    routing.set_pci(Box::new(super::msi::Hardware));
    for isa in [0u8, 4] {
        let gsi = overrides.iter().find(|o| o.source == isa).map_or(u32::from(isa), |o| o.gsi);
        routing.reserve(gsi);
    }
    crate::printk!("xenish: {} IO-APIC(s), {} GSIs, every pin masked", apics.len(), routing.nr_gsis());
    crate::irq::install(routing);
}

/// A device vector fired: the routing table records it (masking a level
/// line until its guest EOIs), then the local APIC gets its EOI.
pub fn interrupt(vector: u8) {
    crate::irq::with(|r| r.interrupt(vector));
    super::apic::eoi();
}
