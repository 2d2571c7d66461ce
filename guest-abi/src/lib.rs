//! The Xen 4.17 x86_64 PV guest interface, byte for byte.
//!
//! One module per Xen public header (`xen.h` → [`xen`], `io/ring.h` →
//! [`io::ring`], ...), with Xen's names: constants keep the C name in
//! upper case without leading underscores (`__HYPERVISOR_console_io` →
//! [`xen::HYPERVISOR_CONSOLE_IO`]; a `_NAME` bit number becomes `NAME_BIT`),
//! structs are the C name in CamelCase with the C field names. Every
//! definition is registered with its C spelling in [`registry`], and a test
//! compares them all with Xen's headers (`libxen-dev`).
//!
//! On top: [`hypercall`] (raw and typed hypercalls through the hypercall
//! page), [`io::ring`] (the shared-ring protocol), and the
//! [`xen_elfnotes!`] macro that makes a Rust kernel a valid PV kernel.
//! `no_std`, no allocation. See README.md for the porting guide.
#![no_std]
#![deny(unsafe_code)]

#[macro_use]
pub mod registry;

pub mod arch_x86;
pub mod callback;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
#[allow(unsafe_code)]
pub mod hypercall;
pub mod io;
pub mod memory;
pub mod physdev;
pub mod sched;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use errno::XenError;
