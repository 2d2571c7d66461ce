//! A domain that tries to grow past its memory size. It reads its
//! reservation, asks for more pages with increase_reservation and
//! populate_physmap, checks that none came, that it still runs, and
//! powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, DOMID_SELF};
    use guest_rt::println;

    fn main(si: &'static StartInfo) -> ! {
        let (Ok(current), Ok(max)) =
            (hypercall::current_reservation(DOMID_SELF), hypercall::maximum_reservation(DOMID_SELF))
        else {
            println!("memqos: FAILED: reservation queries");
            guest_rt::shutdown(SHUTDOWN_CRASH)
        };
        println!("memqos: nr_pages={} current={current} max={max}", si.nr_pages);
        let mut extents = [0u64; 16];
        let grown = hypercall::increase_reservation(&mut extents, 0, 0);
        let mut gpfns = [0u64; 16];
        for (i, g) in gpfns.iter_mut().enumerate() {
            *g = si.nr_pages + i as u64;
        }
        let populated = hypercall::populate_physmap(&mut gpfns, 0, 0);
        let after = hypercall::current_reservation(DOMID_SELF);
        println!("memqos: increase_reservation gave {grown:?}, populate_physmap gave {populated:?}, current={after:?}");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
