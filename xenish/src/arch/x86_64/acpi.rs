//! The machine side of ACPI power control: at boot the FADT's PM1 control
//! blocks and reset register are recorded ([`crate::acpi::Fadt`]) and the
//! core gets its port writer, with which the control domain's S5 request
//! powers the machine off.

use crate::acpi::{Fadt, PhysRead, Rsdp};

use super::cpu;

/// Records the FADT listed by `rsdp` (read through `mem`) and installs the
/// port writer.
pub fn init(mem: &dyn PhysRead, rsdp: &Rsdp) {
    crate::acpi::set_port_writer(cpu::outw);
    match Fadt::find(mem, rsdp) {
        Some(f) => {
            crate::printk!("xenish: ACPI PM1a control at {:#x}, reset register {:?}", f.pm1a_cnt, f.reset);
            crate::acpi::set_fadt(f);
        }
        None => crate::printk!("xenish: no FADT; the control domain cannot power off through ACPI"),
    }
}
