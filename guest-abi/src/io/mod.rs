//! The split-driver protocols of `xen/io/`: the shared ring and the
//! block, network, console, XenStore and XenBus definitions.

pub mod blkif;
pub mod console;
pub mod netif;
#[allow(unsafe_code)]
pub mod ring;
pub mod xenbus;
pub mod xs_wire;
