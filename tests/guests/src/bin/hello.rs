//! The demo guest: greets, reports what it was given and what it runs on,
//! and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall;
    use guest_abi::sched::SHUTDOWN_POWEROFF;
    use guest_abi::xen::StartInfo;
    use guest_rt::println;

    fn main(si: &'static StartInfo) -> ! {
        println!("Hello from a xenish PV guest");
        println!("magic={} nr_pages={} flags={:#x}", si.magic_str(), si.nr_pages, si.flags);
        match hypercall::xen_version() {
            Ok((major, minor)) => println!("running on Xen ABI {major}.{minor}"),
            Err(e) => println!("xen_version failed: {e}"),
        }
        println!("cmdline: {}", core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("<not utf-8>"));
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
