//! A guest that makes an unknown hypercall: it must get -ENOSYS and go on.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::sched::SHUTDOWN_POWEROFF;
    use guest_abi::xen::StartInfo;
    use guest_rt::println;

    fn main(_si: &'static StartInfo) -> ! {
        // SAFETY: number 63 is not a hypercall; no argument is a pointer.
        let rc = unsafe { guest_abi::hypercall::hypercall5(63, 1, 2, 3, 4, 5) };
        println!("enosys: hypercall 63 returned {rc}");
        println!("enosys: still running");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
