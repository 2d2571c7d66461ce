//! The interrupt descriptor table: the 32 exception vectors, routed to the
//! stubs in [`super::entry`]. One table serves every CPU: its IST indices
//! name slots of each CPU's own TSS.

use core::arch::asm;
use core::ptr::addr_of;

use super::gdt::HYPERVISOR_CS;

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate =
        Gate { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn interrupt(handler: u64, dpl: u8, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: HYPERVISOR_CS,
            ist,
            type_attr: 0x80 | (dpl << 5) | 0xe,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(4096))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate::MISSING; 256]);

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// IST slot (1-based) for the double fault.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMIs.
pub const IST_NMI: u8 = 2;
/// IST slot for machine checks.
pub const IST_MCE: u8 = 3;

/// Fills the IDT from the stub tables (the 32 exceptions; the APIC timer
/// and spurious vectors) and loads it.
pub fn init(stubs: &[u64; 32], timer: u64, spurious: u64) {
    // SAFETY: runs once on the boot CPU with interrupts disabled, before any
    // exception can be delivered through the new table.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT.0);
        for (vector, &stub) in stubs.iter().enumerate() {
            // int3 and into may be raised by guest code directly, as in Xen.
            let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
            let ist = match vector {
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MCE,
                _ => 0,
            };
            idt[vector] = Gate::interrupt(stub, dpl, ist);
        }
        idt[usize::from(super::apic::TIMER_VECTOR)] = Gate::interrupt(timer, 0, 0);
        idt[usize::from(super::apic::SPURIOUS_VECTOR)] = Gate::interrupt(spurious, 0, 0);
    }
    load();
}

/// Routes the event-check and TLB-shootdown IPI vectors to their stubs
/// (`stubs`, in that order), on the boot CPU before any other starts.
pub fn set_ipi_gates(stubs: &[u64; 2]) {
    // SAFETY: runs once on the boot CPU with interrupts disabled, before
    // the other CPUs start and before any IPI can be sent; the gates are
    // written whole.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT.0);
        idt[usize::from(super::apic::EVENT_CHECK_VECTOR)] = Gate::interrupt(stubs[0], 0, 0);
        idt[usize::from(super::apic::INVALIDATE_TLB_VECTOR)] = Gate::interrupt(stubs[1], 0, 0);
    }
}

/// Points the device-interrupt vectors `first..=last` at their stubs,
/// `stride` bytes apart from `stubs` (on the boot CPU, before the other
/// CPUs load the table).
pub fn set_device_gates(stubs: u64, stride: u64, first: u8, last: u8) {
    // SAFETY: runs once on the boot CPU with interrupts disabled, before
    // any device interrupt is unmasked and before other CPUs start.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT.0) };
    for v in first..=last {
        if let Some(gate) = idt.get_mut(usize::from(v)) {
            *gate = Gate::interrupt(stubs + stride * u64::from(v - first), 0, 0);
        }
    }
}

/// The IDT's address (one page, page-aligned), for XPTI's root tables.
pub fn address() -> u64 {
    addr_of!(IDT) as u64
}

const _: () = assert!(core::mem::size_of::<Idt>() == 4096 && core::mem::align_of::<Idt>() == 4096);

/// Loads the (shared) IDT on the running CPU.
pub fn load() {
    let ptr = DescriptorPointer { limit: (256 * 16 - 1) as u16, base: addr_of!(IDT) as u64 };
    // SAFETY: the IDT is filled once by `init` on the boot CPU before any
    // other CPU starts, and never written again.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(nostack)) };
}
