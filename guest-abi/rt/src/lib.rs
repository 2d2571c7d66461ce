//! guest-rt: a minimal runtime for Rust PV kernels on xenish (and Xen).
//!
//! It provides what every small PV kernel needs and nothing more: the Xen
//! ELF notes, the entry point (moving onto a 64 KiB stack and handing the
//! kernel its `start_info`), the hypercall page, console output through
//! `console_io`, and a panic handler that reports and crashes the domain.
//! A kernel links with `link.ld` beside this file and names its main
//! function with [`entry!`]. Beyond that, for domUs started by a
//! toolstack: waiting for an event channel with a deadline ([`poll`]),
//! lines on both consoles ([`tee`]) and a XenStore client ([`xenstore`]).
//! For split drivers: a heap ([`heap`]), the domain's grant table
//! ([`gnttab`]), block devices over pv-drivers' blkif frontend
//! ([`blkfront`]) and network interfaces over its netif frontend
//! ([`netfront`]).
#![no_std]

extern crate alloc;

pub mod blkfront;
pub mod console;
pub mod events;
pub mod gnttab;
pub mod heap;
pub mod netfront;
pub mod poll;
pub mod tee;
pub mod traps;
pub mod xenstore;

pub use guest_abi::hypercall;
pub use pv_drivers;

use guest_abi::xen::StartInfo;

/// Size of the kernel stack the entry code switches to.
pub const STACK_SIZE: usize = 64 * 1024;

#[cfg(target_os = "none")]
mod start {
    use core::arch::global_asm;

    #[repr(C, align(16))]
    struct Stack([u8; super::STACK_SIZE]);
    #[no_mangle]
    static mut GUEST_RT_STACK: Stack = Stack([0; super::STACK_SIZE]);

    global_asm!(
        r#"
        .section .text.entry, "ax"
        .globl _start
    _start:
        lea GUEST_RT_STACK+{stack_size}(%rip), %rsp
        mov %rsi, %rdi              /* start_info */
        call {main}
    1:  ud2
        jmp 1b

        /* The hypervisor fills this page with hypercall stubs (HYPERCALL_PAGE
           note); int3 until then. */
        .section .text.hypercall_page, "ax"
        .balign 4096
        .globl hypercall_page
    hypercall_page:
        .fill 4096, 1, 0xcc
    "#,
        stack_size = const super::STACK_SIZE,
        main = sym super::rt_main,
        options(att_syntax)
    );

    guest_abi::xen_elfnotes! {
        guest_os: "xenish-rt",
        guest_version: "0.1",
        virt_base: "0xffffffff80000000",
        paddr_offset: "0",
        entry: "_start",
        hypercall_page: "hypercall_page",
        features: "!writable_page_tables|pae_pgdir_above_4gb",
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        crate::println!("panic: {}", info);
        crate::shutdown(guest_abi::sched::SHUTDOWN_CRASH)
    }
}

#[cfg(target_os = "none")]
extern "Rust" {
    fn __guest_rt_main(start_info: &'static StartInfo) -> !;
}

/// Called by the entry code with the `start_info` pointer from `rsi`.
#[cfg(target_os = "none")]
extern "C" fn rt_main(start_info: *const StartInfo) -> ! {
    // SAFETY: the domain builder passes the address of the start_info page,
    // mapped read-write in the initial mapping for the kernel's lifetime.
    let start_info = unsafe { &*start_info };
    console::init(start_info);
    // SAFETY: `entry!` defines this symbol with exactly this signature.
    unsafe { __guest_rt_main(start_info) }
}

/// Names the kernel's main function: `fn(&'static StartInfo) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __guest_rt_main(start_info: &'static $crate::StartInfoRef) -> ! {
            let main: fn(&'static $crate::StartInfoRef) -> ! = $main;
            main(start_info)
        }
    };
}

/// Shuts the domain down with a `SHUTDOWN_*` reason; never returns.
pub fn shutdown(reason: u32) -> ! {
    loop {
        let _ = hypercall::sched_shutdown(reason);
    }
}

/// The `start_info` type kernels receive (re-exported for [`entry!`]).
pub type StartInfoRef = StartInfo;
