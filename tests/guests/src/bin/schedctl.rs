//! A control domain that changes another domain's CPU share at run time
//! through Xen's domctl scheduler interface. Command line:
//! `schedctl target=D weight=W cap=C` reads D's credit parameters, sets
//! them, reads them back, checks the errors Xen gives for a wrong
//! interface version and an absent domain, and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::domctl::{XenDomctl, XEN_DOMCTL_SCHEDULER_OP};
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::println;

    fn arg(cmdline: &str, key: &str) -> Option<u32> {
        cmdline.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn fail(what: &str) -> ! {
        println!("schedctl: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn main(si: &'static StartInfo) -> ! {
        let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
        let target = arg(cmdline, "target").unwrap_or(1) as u16;
        let weight = arg(cmdline, "weight").unwrap_or(256) as u16;
        let cap = arg(cmdline, "cap").unwrap_or(0) as u16;
        let Ok(before) = hypercall::sched_credit_get(target) else { fail("getinfo") };
        if hypercall::sched_credit_set(target, weight, cap).is_err() {
            fail("putinfo");
        }
        let Ok(after) = hypercall::sched_credit_get(target) else { fail("getinfo after putinfo") };
        println!(
            "schedctl: d{target} weight={} cap={} -> weight={} cap={}",
            before.weight, before.cap, after.weight, after.cap
        );
        let mut old = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, target);
        old.interface_version -= 1;
        println!("schedctl: another interface version: {:?}", hypercall::domctl(&mut old).err());
        println!("schedctl: an absent domain: {:?}", hypercall::sched_credit_get(999).err());
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
