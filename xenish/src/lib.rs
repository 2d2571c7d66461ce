//! xenish: a Xen 4.17 PV-ABI compatible microhypervisor for x86_64.
//!
//! The crate is the portable core (everything that decides something, host
//! tested with `cargo test`) plus, for `target_os = "none"`, the x86_64
//! machine layer in [`arch`] that boots it on bare metal.
#![cfg_attr(not(test), no_std)]
// Machine access is confined to `arch`; everything else is safe Rust.
#![deny(unsafe_code)]

extern crate alloc;

pub mod acpi;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
pub mod boot_info;
pub mod builder;
pub mod cmdline;
pub mod console;
pub mod console_rate;
pub mod console_ring;
pub mod cpuid;
pub mod descriptors;
pub mod domain;
pub mod domain_config;
pub mod evtchn;
pub mod flush;
pub mod gnttab;
pub mod guest_access;
pub mod hypercall;
pub mod ipi;
pub mod irq;
pub mod lifecycle;
pub mod mm;
pub mod msi;
pub mod pirq;
pub mod pit;
pub mod ptwr;
pub mod regs;
pub mod rtc;
pub mod sched;
pub mod setup;
pub mod smp;
pub mod sync;
pub mod system;
pub mod time;
pub mod traps;
pub mod xpti;
