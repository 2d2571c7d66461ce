//! Hypercalls through the hypercall page the hypervisor filled in: a call
//! to `hypercall_page + 32 * nr` with Xen's x86_64 register convention.

use core::arch::asm;

use guest_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN};
use guest_abi::xen::HYPERVISOR_SCHED_OP;

#[cfg(target_os = "none")]
extern "C" {
    static hypercall_page: [u8; 4096];
}

fn stub(nr: u32) -> usize {
    #[cfg(target_os = "none")]
    {
        (core::ptr::addr_of!(hypercall_page) as usize) + 32 * nr as usize
    }
    #[cfg(not(target_os = "none"))]
    {
        let _ = nr;
        0
    }
}

/// Issues hypercall `nr` with up to five arguments; returns `rax`.
///
/// # Safety
/// The arguments must be what hypercall `nr` expects; pointers must be valid
/// for what the hypervisor reads or writes through them.
pub unsafe fn hypercall(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the stub follows Xen's convention: rdi, rsi, rdx, r10, r8 in,
    // rax out, rcx and r11 clobbered; argument registers may be clobbered.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub(nr),
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// `SCHEDOP_shutdown` with `reason`; does not return.
pub fn shutdown(reason: u32) -> ! {
    let arg = SchedShutdown { reason };
    loop {
        // SAFETY: `arg` is a valid sched_shutdown for the duration of the call.
        unsafe {
            hypercall(HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN as u64, &arg as *const _ as u64, 0, 0, 0);
        }
    }
}
