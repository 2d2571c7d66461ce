//! Timers and event delivery: binds VIRQ_TIMER, arms the single-shot timer
//! and blocks, ten times; checks that no timer fired early and reports the
//! worst lateness.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, VIRQ_TIMER};
    use guest_rt::{events, println};

    const ROUNDS: u32 = 10;
    const DELAY_NS: u64 = 5_000_000;

    fn main(si: &'static StartInfo) -> ! {
        if let Err(e) = events::init(si) {
            println!("timer: cannot set up events: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let port = match hypercall::evtchn_bind_virq(VIRQ_TIMER, 0) {
            Ok(p) => p,
            Err(e) => {
                println!("timer: bind_virq failed: {e}");
                guest_rt::shutdown(SHUTDOWN_CRASH)
            }
        };
        println!("timer: VIRQ_TIMER on port {port}");
        let (mut early, mut max_late) = (0u32, 0u64);
        for _ in 0..ROUNDS {
            let deadline = events::system_time_ns() + DELAY_NS;
            let _ = hypercall::set_timer_op(deadline);
            events::wait_for(port);
            let now = events::system_time_ns();
            if now < deadline {
                early += 1;
            }
            max_late = max_late.max(now.saturating_sub(deadline));
        }
        println!("timer: {ROUNDS} timers fired, {early} early, max lateness {} us", max_late / 1000);
        println!("timer: {} upcalls", events::upcalls());
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
