//! A CPU-bound guest that measures its own share of the CPU. Command line:
//! `spin from_ms=A to_ms=B`: between system times A and B it spins,
//! counting iterations and summing the time between consecutive clock
//! reads that were close together (it was running); longer gaps are time
//! it was not scheduled. It prints its count and share, then powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::{events, println};

    /// Gaps longer than this between two clock reads mean "descheduled".
    const RUNNING_GAP_NS: u64 = 200_000;

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let from = arg(cmdline, "from_ms").unwrap_or(500) * 1_000_000;
        let to = arg(cmdline, "to_ms").unwrap_or(3500) * 1_000_000;
        if let Err(e) = events::init(si) {
            println!("spin: cannot map shared_info: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        println!("spin: spinning until {} ms", to / 1_000_000);
        let (mut count, mut running) = (0u64, 0u64);
        let mut last = events::system_time_ns();
        loop {
            let now = events::system_time_ns();
            if now >= to {
                break;
            }
            if now >= from {
                count += 1;
                let gap = now.saturating_sub(last.max(from));
                if gap < RUNNING_GAP_NS {
                    running += gap;
                }
            }
            last = now;
        }
        let permille = running * 1000 / (to - from);
        println!("spin: count={count} share={permille}/1000");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
