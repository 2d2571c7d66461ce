//! Two domains exchanging events over an interdomain channel. Command line:
//! `ping peer=D rounds=N` offers a port to domain D and answers each event;
//! `pong peer=D port=P rounds=N` binds D's port P and starts the exchange.
//! Each side checks that every event arrives once, none is lost and none
//! is spurious.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::{events, println};

    fn arg(cmdline: &str, key: &str) -> Option<u32> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn fail(what: &str, e: guest_abi::XenError) -> ! {
        println!("pingpong: {what} failed: {e}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let peer = arg(cmdline, "peer").unwrap_or(0) as u16;
        let rounds = arg(cmdline, "rounds").unwrap_or(10_000);
        if let Err(e) = events::init(si) {
            fail("event setup", e);
        }
        if cmdline.starts_with("ping") {
            let port = hypercall::evtchn_alloc_unbound(peer).unwrap_or_else(|e| fail("alloc_unbound", e));
            println!("ping: offered port {port} to d{peer}");
            for _ in 0..rounds {
                events::wait_for(port);
                if let Err(e) = hypercall::evtchn_send(port) {
                    fail("send", e);
                }
            }
            let _ = hypercall::sched_yield();
            let spurious = events::take(port);
            println!("ping: {rounds} events answered, spurious: {spurious}");
        } else {
            let remote = arg(cmdline, "port").unwrap_or(1);
            let port = loop {
                match hypercall::evtchn_bind_interdomain(peer, remote) {
                    Ok(p) => break p,
                    // Not offered yet: let the peer run.
                    Err(guest_abi::XenError::Einval) => {
                        let _ = hypercall::sched_yield();
                    }
                    Err(e) => fail("bind_interdomain", e),
                }
            };
            // Binding raises the new local port once, as on Xen.
            events::wait_for(port);
            println!("pong: bound d{peer} port {remote} as port {port}");
            for _ in 0..rounds {
                if let Err(e) = hypercall::evtchn_send(port) {
                    fail("send", e);
                }
                events::wait_for(port);
            }
            let spurious = events::take(port);
            println!("pong: {rounds} round trips, spurious: {spurious}");
        }
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
