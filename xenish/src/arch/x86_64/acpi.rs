//! The machine side of ACPI power control: at boot the FADT's PM1 control
//! blocks and reset register are recorded ([`crate::acpi::Fadt`]) and the
//! core gets its port writer, with which the control domain's S5 request
//! powers the machine off (`crate::acpi::enter_s5`, from the hypervisor's
//! power-off); [`restart`] resets the machine when the control domain
//! rebooted.

use crate::acpi::{Fadt, PhysRead, Rsdp};

use super::cpu;

/// Records the FADT listed by `rsdp` (read through `mem`) and installs the
/// port writer.
pub fn init(mem: &dyn PhysRead, rsdp: &Rsdp) {
    crate::acpi::set_port_writer(|port, value, size| match size {
        1 => cpu::outb(port, value as u8),
        _ => cpu::outw(port, value),
    });
    match Fadt::find(mem, rsdp) {
        Some(f) => {
            crate::printk!("xenish: ACPI PM1a control at {:#x}, reset register {:?}", f.pm1a_cnt, f.reset);
            crate::acpi::set_fadt(f);
        }
        None => crate::printk!("xenish: no FADT; the control domain cannot power off through ACPI"),
    }
}

/// Resets the machine (Xen's `machine_restart`), pausing some 50 ms after
/// each attempt (reads of the POST port 0x80 take about a microsecond
/// each); halts if it is still there.
pub fn restart() -> ! {
    crate::printk!("xenish: the control domain rebooted: resetting the machine");
    let mut delay = || {
        for _ in 0..50_000 {
            cpu::inb(0x80);
        }
    };
    crate::acpi::machine_restart(crate::acpi::fadt(), &mut delay);
    crate::printk!("xenish: the machine did not reset; halting");
    cpu::halt_forever()
}
