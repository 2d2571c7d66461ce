//! The x86_64 machine layer: boot trampoline, descriptor tables, entry
//! stubs, paging of the hypervisor's own address space, and the glue that
//! runs the portable core on real hardware. The only home of `unsafe`
//! hardware access.

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod clock;
pub mod cpu;
pub mod entry;
pub mod fpu;
pub mod gdt;
pub mod guest_copy;
pub mod heap;
pub mod idt;
pub mod ioapic;
pub mod ipi;
pub mod memory;
pub mod msi;
pub mod percpu;
pub mod serial;
pub mod smpboot;
pub mod start;
pub mod trap;
pub mod xpti;
