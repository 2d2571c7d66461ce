//! A guest that executes an invalid instruction with no trap handler: the
//! hypervisor must crash it, report why, and keep running.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::xen::StartInfo;
    use guest_rt::println;

    fn main(_si: &'static StartInfo) -> ! {
        println!("crash: about to execute ud2 with no trap table");
        // SAFETY: deliberately raises #UD; the domain is expected to die.
        unsafe { core::arch::asm!("ud2") };
        println!("crash: survived #UD (this must not happen)");
        guest_rt::shutdown(guest_abi::sched::SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
