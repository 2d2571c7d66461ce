//! The system-test harness: builds xenish and the test guests, makes a GRUB
//! ISO for each boot, runs QEMU (software emulation) with a timeout, and
//! returns the serial log and how QEMU exited. Used by the system tests in
//! `tests/tests/` and by `cargo xtask`.

pub mod images;
pub mod iso;
pub mod qemu;
pub mod tools;

pub use images::{images, Images};
pub use qemu::{Boot, Exit, Outcome};
