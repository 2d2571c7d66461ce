//! The bare-metal xenish image: GRUB enters the trampoline in
//! `arch::x86_64::boot`, which calls into the library. On the host this
//! binary is empty, so `cargo test` of the workspace builds.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use xenish as _;

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    xenish::arch::x86_64::start::panic(info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("xenish is a bare-metal image: build it with --target x86_64-unknown-none");
}
