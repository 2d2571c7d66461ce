//! The demo guest: greets, reports what it was given and what it runs on,
//! and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::sched::SHUTDOWN_POWEROFF;
    use guest_abi::version::XENVER_VERSION;
    use guest_abi::xen::{StartInfo, HYPERVISOR_XEN_VERSION};
    use guest_rt::{hypercall, println};

    fn main(si: &'static StartInfo) -> ! {
        println!("Hello from a xenish PV guest");
        let magic = &si.magic[..si.magic.iter().position(|&b| b == 0).unwrap_or(si.magic.len())];
        println!("magic={} nr_pages={} flags={:#x}", core::str::from_utf8(magic).unwrap_or("?"), si.nr_pages, si.flags);
        // SAFETY: XENVER_version takes no argument.
        let v = unsafe { hypercall::hypercall(HYPERVISOR_XEN_VERSION, XENVER_VERSION as u64, 0, 0, 0, 0) };
        println!("running on Xen ABI {}.{}", v >> 16, v & 0xffff);
        let cmdline = &si.cmd_line[..si.cmd_line.iter().position(|&b| b == 0).unwrap_or(0)];
        println!("cmdline: {}", core::str::from_utf8(cmdline).unwrap_or("?"));
        hypercall::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
