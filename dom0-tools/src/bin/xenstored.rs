//! `xenstored`: the XenStore daemon of the control domain (Xen 4.17's
//! options and behaviour). The daemon lives in `src/xenstored/`, the
//! store it serves in the `xenstore` crate.

#[path = "../xenstored/mod.rs"]
mod xenstored;

fn main() -> std::process::ExitCode {
    xenstored::main()
}
