//! The well-behaved neighbour of a hostile domain: it measures the CPU
//! share the hypervisor gives it while the other domain attacks, and checks
//! that its own memory stays as it wrote it.
//!
//! Command line: `neighbour from_ms=A window_ms=W gap_ms=G
//! classes=a,b:MS,..`: one window per name, `W` ms long unless `:MS` says
//! otherwise, the first from system time `A`, each after the previous one
//! and a gap of `G` ms (the hostile domain runs its classes with the same
//! schedule). Over
//! each window it reads its runstate from the hypervisor
//! (`VCPUOP_get_runstate_info`) at both ends and reports
//! `share = running / (running + runnable)` in permille, the hypervisor's own
//! accounting of how much of the time it wanted the CPU it got, together
//! with its own progress counter and the longest stretch it saw between two
//! clock reads (how long it was kept waiting at once). Its progress is
//! checking a pattern it wrote over a 16 MiB buffer, word by word; at the end
//! it checks the whole buffer and its reservation once more, reports, and
//! powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::vcpu::{RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};
    use guest_abi::xen::{StartInfo, DOMID_SELF};
    use guest_rt::{events, println};

    /// Words of the pattern buffer (16 MiB: most of a 48 MiB domain).
    const WORDS: usize = 2 * 1024 * 1024;
    static mut PATTERN: [u64; WORDS] = [0; WORDS];

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    /// The windows: (name, length in ns), from `classes=`.
    fn windows(cmdline: &str, default_ns: u64) -> impl Iterator<Item = (&str, u64)> {
        let list = cmdline.split(' ').find_map(|kv| kv.strip_prefix("classes=")).unwrap_or("run");
        list.split(',').map(move |c| match c.split_once(':') {
            Some((name, ms)) => (name, ms.parse::<u64>().map_or(default_ns, |ms| ms * 1_000_000)),
            None => (c, default_ns),
        })
    }

    /// What word `i` of the buffer holds.
    fn expected(i: usize) -> u64 {
        (i as u64 ^ 0x5a5a_5a5a).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
    }

    fn word(i: usize) -> u64 {
        // SAFETY: `i < WORDS`; single-threaded kernel.
        unsafe { core::ptr::addr_of!(PATTERN[i % WORDS]).read_volatile() }
    }

    /// (running, runnable) ns so far, from the hypervisor's accounting.
    fn runstate() -> (u64, u64) {
        match hypercall::vcpu_runstate_info(0) {
            Ok(rs) => (rs.time[RUNSTATE_RUNNING as usize], rs.time[RUNSTATE_RUNNABLE as usize]),
            Err(e) => fail(format_args!("VCPUOP_get_runstate_info: {e:?}")),
        }
    }

    fn fail(what: core::fmt::Arguments) -> ! {
        println!("neighbour: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let ms = 1_000_000;
        let from = arg(cmdline, "from_ms").unwrap_or(1000) * ms;
        let window = arg(cmdline, "window_ms").unwrap_or(2000) * ms;
        let gap = arg(cmdline, "gap_ms").unwrap_or(300) * ms;
        if let Err(e) = events::init(si) {
            fail(format_args!("cannot map shared_info: {e:?}"));
        }
        let reservation = hypercall::current_reservation(DOMID_SELF);
        for i in 0..WORDS {
            // SAFETY: `i < WORDS`; single-threaded kernel.
            unsafe { (core::ptr::addr_of_mut!(PATTERN) as *mut u64).add(i).write_volatile(expected(i)) };
        }
        println!("neighbour: {} KiB written", WORDS * 8 / 1024);
        let mut next = 0usize;
        let mut start = from;
        for (k, (name, window)) in windows(cmdline, window).enumerate() {
            while events::system_time_ns() < start {
                core::hint::spin_loop();
            }
            let (run0, wait0) = runstate();
            let t0 = events::system_time_ns();
            let (mut count, mut longest, mut last) = (0u64, 0u64, t0);
            loop {
                let now = events::system_time_ns();
                longest = longest.max(now.saturating_sub(last));
                last = now;
                if now >= start + window {
                    break;
                }
                // One unit of progress: 64 words checked.
                for _ in 0..64 {
                    if word(next) != expected(next % WORDS) {
                        fail(format_args!(
                            "word {} reads {:#x}, wrote {:#x}",
                            next % WORDS,
                            word(next),
                            expected(next % WORDS)
                        ));
                    }
                    next = (next + 1) % WORDS;
                }
                count += 1;
            }
            let (run1, wait1) = runstate();
            let t1 = events::system_time_ns();
            let (running, runnable) = (run1 - run0, wait1 - wait0);
            let share = running * 1000 / (running + runnable).max(1);
            println!(
                "neighbour: window {k} ({name}): share={share}/1000 running_ms={} runnable_ms={} span_ms={} count={count} longest_wait_us={}",
                running / ms,
                runnable / ms,
                (t1 - t0) / ms,
                longest / 1000,
            );
            start += window + gap;
        }
        for i in 0..WORDS {
            if word(i) != expected(i) {
                fail(format_args!("word {i} reads {:#x}, wrote {:#x}", word(i), expected(i)));
            }
        }
        let now = hypercall::current_reservation(DOMID_SELF);
        if now != reservation {
            fail(format_args!("reservation was {reservation:?}, is {now:?}"));
        }
        println!("neighbour: memory intact ({} KiB), reservation unchanged ({now:?})", WORDS * 8 / 1024);
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
