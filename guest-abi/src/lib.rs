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
mod wire;

pub mod arch_x86;
pub mod callback;
pub mod domctl;
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
pub mod platform;
pub mod sched;
pub mod sysctl;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xen_mca;

pub use arch_x86::GuestHandle;
pub use errno::XenError;

#[cfg(test)]
mod tests {
    use crate::event_channel::EvtchnStat;
    use crate::grant_table::GrantFlags;
    use crate::io::blkif::BlkifOp;
    use crate::io::xenbus::XenbusState;
    use crate::registry::UnknownValue;

    #[test]
    fn enumerations_from_the_other_side_parse_fallibly() {
        assert_eq!(XenbusState::try_from(4), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::try_from(42), Err(UnknownValue(42)));
        assert_eq!(EvtchnStat::try_from(2), Ok(EvtchnStat::Interdomain));
        assert_eq!(BlkifOp::try_from(4), Err(UnknownValue(4)), "reserved op");
        assert_eq!(BlkifOp::Write.to_raw(), 1);
        let flags = GrantFlags::from_bits_truncate(0x1d);
        assert!(flags
            .contains(GrantFlags::PERMIT_ACCESS | GrantFlags::READONLY | GrantFlags::READING | GrantFlags::WRITING));
    }
}
