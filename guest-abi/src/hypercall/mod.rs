//! Hypercalls from a 64-bit PV kernel: raw [`hypercall0`]..[`hypercall5`]
//! through the hypercall page, and a typed wrapper per hypercall and
//! sub-op returning `Result<_, XenError>`.
//!
//! The convention (`arch-x86/xen-x86_64.h`): the hypervisor fills the
//! kernel's hypercall page with 32-byte stubs, slot `nr` at
//! `hypercall_page + 32 * nr`; arguments go in `rdi`, `rsi`, `rdx`, `r10`,
//! `r8`, the result comes back in `rax` (a negative Xen errno on failure);
//! `rcx` and `r11` are clobbered, and so may be the argument registers
//! (debug Xen overwrites them). The kernel provides the page: a 4 KiB
//! aligned symbol `hypercall_page` named in its HYPERCALL_PAGE ELF note
//! (see [`crate::xen_elfnotes!`]).
//!
//! Memory safety: a wrapper is an `unsafe fn` when its effect can break
//! what Rust code in the kernel relies on (remapping or giving away this
//! domain's memory, registering an area the hypervisor writes later,
//! installing code addresses), and says why in `# Safety`. Four of them
//! predate that rule and stay safe for their callers: `update_va_mapping`,
//! `stack_switch`, `register_callback` and `set_trap_table`; treat them
//! with the same care.
//!
//! On a host build (not `target_os = "none"`) every hypercall returns
//! `-ENOSYS`, so code using them compiles and runs in tests.

use zerocopy::IntoBytes;

use crate::errno::XenError;

mod callback;
mod domctl;
mod event_channel;
mod grant_table;
mod memory;
mod physdev;
mod sched;
mod vcpu;
mod version;
mod xen;

pub use callback::*;
pub use domctl::*;
pub use event_channel::*;
pub use grant_table::*;
pub use memory::*;
pub use physdev::*;
pub use sched::*;
pub use vcpu::*;
pub use version::*;
pub use xen::*;

/// Slots in the hypercall page.
#[cfg(target_os = "none")]
const SLOTS: u32 = 128;

#[cfg(target_os = "none")]
extern "C" {
    static hypercall_page: [u8; 4096];
}

/// Issues hypercall `nr` with five arguments and returns `rax`; a number
/// past the hypercall page's 128 slots returns `-ENOSYS`.
///
/// # Safety
/// The arguments must be what hypercall `nr` expects; any pointer among
/// them must be valid for what the hypervisor reads or writes through it,
/// and the call's effect must not break memory Rust code relies on.
#[cfg(target_os = "none")]
pub unsafe fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    if nr >= SLOTS {
        return XenError::Enosys.to_ret();
    }
    let ret: i64;
    let stub = (core::ptr::addr_of!(hypercall_page) as usize) + 32 * nr as usize;
    // SAFETY: the stub follows Xen's calling convention (arguments in rdi,
    // rsi, rdx, r10, r8; rcx, r11 and the argument registers clobbered;
    // it may use the stack, which asm! allows without `nostack`); the
    // caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") a1 => _, inlateout("rsi") a2 => _, inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _, inlateout("r8") a5 => _,
            lateout("rax") ret, lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}

/// Hypercalls exist only inside a PV guest; on a host build every call
/// reports `-ENOSYS`, so code using them still compiles and can be tested.
///
/// # Safety
/// As for the bare-metal version.
#[cfg(not(target_os = "none"))]
pub unsafe fn hypercall5(_nr: u32, _a1: u64, _a2: u64, _a3: u64, _a4: u64, _a5: u64) -> i64 {
    XenError::Enosys.to_ret()
}

/// Hypercall with no argument.
///
/// # Safety
/// See [`hypercall5`].
pub unsafe fn hypercall0(nr: u32) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, 0, 0, 0, 0, 0) }
}

/// Hypercall with one argument.
///
/// # Safety
/// See [`hypercall5`].
pub unsafe fn hypercall1(nr: u32, a1: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, 0, 0, 0, 0) }
}

/// Hypercall with two arguments.
///
/// # Safety
/// See [`hypercall5`].
pub unsafe fn hypercall2(nr: u32, a1: u64, a2: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, 0, 0, 0) }
}

/// Hypercall with three arguments.
///
/// # Safety
/// See [`hypercall5`].
pub unsafe fn hypercall3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, a3, 0, 0) }
}

/// Hypercall with four arguments.
///
/// # Safety
/// See [`hypercall5`].
pub unsafe fn hypercall4(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, a3, a4, 0) }
}

/// A hypercall's return value as a result.
fn result(ret: i64) -> Result<u64, XenError> {
    XenError::from_ret(ret)
}

/// The address of a struct argument, for the hypervisor to read.
fn arg<T: IntoBytes + zerocopy::Immutable>(value: &T) -> u64 {
    value.as_bytes().as_ptr() as u64
}

/// The address of a struct argument, for the hypervisor to read and write.
fn arg_mut<T: IntoBytes + zerocopy::FromBytes>(value: &mut T) -> u64 {
    value.as_mut_bytes().as_mut_ptr() as u64
}

/// `op(cmd, &mut arg)`: a sub-op taking one struct the hypervisor may
/// read and write. Only for sub-ops whose effect is confined to `value`
/// (the others are `unsafe fn`s calling `hypercall2` themselves).
fn struct_op<T: IntoBytes + zerocopy::FromBytes>(nr: u32, cmd: u32, value: &mut T) -> Result<u64, XenError> {
    // SAFETY: `value` is a valid, exclusively borrowed instance of the
    // struct `cmd` takes, for the duration of the call; callers only use
    // this for sub-ops whose effect is confined to that struct (others are
    // `unsafe fn`s that say why).
    result(unsafe { hypercall2(nr, cmd.into(), arg_mut(value)) })
}
