//! `xl`: Xen's domain management command for the control domain — create,
//! list, console, destroy and the rest — with xl's options, output formats
//! and exit codes, on xenish and on Xen 4.17 alike.
//!
//! The domain builder ([`builder`]) and the commands ([`xl`]) are modules
//! of this binary; the XenStore client and the device bindings come from
//! the `dom0_tools` library.

#[path = "../builder/mod.rs"]
pub mod builder;
#[path = "../xl/mod.rs"]
pub mod xl;

pub use dom0_tools::xs_client;

fn main() -> std::process::ExitCode {
    dom0_tools::default_sigpipe();
    let args: Vec<String> = std::env::args().collect();
    xl::main(&args)
}
