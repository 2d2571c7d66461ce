//! The system-test harness: builds xenish and the test guests, makes a GRUB
//! ISO for each boot, runs QEMU (software emulation) with a timeout, and
//! returns the serial log and how QEMU exited. Used by the system tests in
//! `tests/tests/` and by `cargo xtask`.
//!
//! ```no_run
//! use tests::{Boot, Exit};
//!
//! let out = Boot::new() // the built hypervisor, -cpu max, 512 MiB
//!     .cpu("qemu64")
//!     .cmdline("dom0_mem=64M") // xenish's command line
//!     .guest("hello", "hello greeting=yes") // module 1 and its string
//!     .run();
//! // Each check prints the serial log (and QEMU's stderr) when it fails.
//! out.expect_line("(d0) Hello from a xenish PV guest").expect_no("xenish: PANIC").expect_exit(Exit::DebugExit(0));
//! ```
//!
//! The images come from `XENISH_IMAGES_DIR` when set (`cargo xtask test`
//! builds them first), else are built once per test process into
//! `target/system-images`. A boot's time limit is 90 s, or
//! `XENISH_BOOT_TIMEOUT` seconds.

pub mod answers;
pub mod compare;
pub mod debian;
pub mod dom0;
pub mod images;
pub mod initramfs;
pub mod iso;
pub mod linux;
pub mod linuxbench;
pub mod qemu;
pub mod stub;
pub mod tools;
pub mod xen_tools;

pub use images::{images, target_dir, Images};
pub use qemu::{default_timeout, Boot, Exit, Outcome};
