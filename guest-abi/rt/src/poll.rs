//! Waiting for one event channel with a deadline, without lost wakeups.
//!
//! [`wait_port`] masks event delivery, looks at the port's "fired" flag
//! (set by the upcall in [`crate::events`]) and, if it is clear, sleeps in
//! `SCHEDOP_poll` on the port with the deadline as timeout. With delivery
//! masked the upcall cannot take the port's pending bit between the check
//! and the poll, and Xen's poll wakes on a pending bit whether or not
//! events are masked (X:`xen/common/sched/core.c` `do_poll`). Delivery is
//! unmasked again before returning, so whatever arrived is dispatched.
//!
//! Needs [`crate::events::init`] (shared_info and the pvclock), and the
//! port unmasked in shared_info (`EVTCHNOP_unmask`).

use guest_abi::hypercall;

use crate::events;

/// Waits until `port` fires or system time reaches `deadline_ns`; returns
/// whether it fired (taking the flag). Leaves event delivery unmasked.
pub fn wait_port(port: u32, deadline_ns: u64) -> bool {
    loop {
        if events::take(port) {
            return true;
        }
        if events::system_time_ns() >= deadline_ns {
            return false;
        }
        events::mask_events();
        let fired = events::take(port);
        if !fired && !events::is_pending(port) && hypercall::sched_poll(&[port], deadline_ns).is_err() {
            // No poll: let others run, and look again.
            let _ = hypercall::sched_yield();
        }
        events::unmask_events();
        if fired {
            return true;
        }
    }
}
