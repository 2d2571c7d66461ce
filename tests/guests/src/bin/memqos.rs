//! A domain that tries to grow past its memory size. It reads its
//! reservation, asks for more pages with increase_reservation and
//! populate_physmap and reports that none came. Then it gives back two
//! frames it does not map (decrease_reservation), tries to give back one
//! it maps (refused), grows again by what it gave back and no more, and
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
        // The last two pfns lie far past the builder's initial mapping.
        let mut unmapped = [mfn_of(si, si.nr_pages - 1), mfn_of(si, si.nr_pages - 2)];
        // SAFETY: nothing maps these frames or refers to them.
        let given = unsafe { hypercall::decrease_reservation(&mut unmapped, 0) };
        // pfn 0 holds this kernel's first page, mapped: the hypervisor refuses it.
        let mut mapped = [mfn_of(si, 0)];
        // SAFETY: refused (it is mapped), so the frame stays ours.
        let refused = unsafe { hypercall::decrease_reservation(&mut mapped, 0) };
        let after = hypercall::current_reservation(DOMID_SELF);
        println!("memqos: decrease_reservation gave back {given:?}, a mapped frame {refused:?}, current={after:?}");
        let regrown = hypercall::increase_reservation(&mut extents, 0, 0);
        let after = hypercall::current_reservation(DOMID_SELF);
        println!("memqos: increase_reservation gave {regrown:?}, current={after:?}");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    /// The machine frame behind `pfn` (its p2m entry).
    fn mfn_of(si: &StartInfo, pfn: u64) -> u64 {
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
