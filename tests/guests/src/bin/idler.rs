//! A domU that says hello on its console and then waits, doing nothing,
//! until the toolstack destroys it: what the Xen-toolstack test starts
//! with `xl create` so that `xl list`, `vcpu-list`, `pause` and the
//! scheduler commands have a live domain to look at. It takes no events
//! (no callbacks are registered); it sleeps in `SCHEDOP_poll` with no
//! ports and no timeout, waking only to sleep again.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall;
    use guest_abi::xen::StartInfo;
    use guest_rt::println;

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("<not utf-8>");
        println!("idler: hello from the PV console ({cmdline})");
        loop {
            let _ = hypercall::sched_poll(&[], 0);
        }
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
