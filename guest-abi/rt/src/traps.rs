//! Exception handling for a guest-rt kernel: a trap table covering every
//! vector (and `int $0x80`), entry stubs that turn Xen's bounce frame into
//! a uniform [`TrapFrame`], and a handler hook the kernel installs.
//!
//! Xen's frame on the kernel stack is `rcx, r11, [error code], rip, cs,
//! rflags, rsp, ss`; the stub restores rcx/r11, pushes a 0 error code for
//! vectors without one, saves the registers, calls the hook, and returns
//! with the `iret` hypercall. Xen enters the handler with DF as the
//! interrupted code had it, so the stub clears it before calling Rust.

use core::sync::atomic::{AtomicUsize, Ordering};

use guest_abi::arch_x86::TrapInfo;
use guest_abi::hypercall;
use zerocopy::FromZeros;

/// The state at the exception, as the hook sees and may change it.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The vector.
    pub vector: u64,
    /// The error code (0 for vectors without one).
    pub error_code: u64,
    pub rip: u64,
    /// CS, with Xen's saved upcall mask in bits 32-39.
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// A trap hook: returns whether the trap was handled (else the domain
/// crashes with a report).
pub type Hook = fn(&mut TrapFrame) -> bool;

static HOOK: AtomicUsize = AtomicUsize::new(0);

#[cfg_attr(not(target_os = "none"), allow(dead_code))]
extern "C" fn trap_handler(frame: &mut TrapFrame) {
    let hook = HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: HOOK only ever holds a `Hook` stored by `install`.
        let hook: Hook = unsafe { core::mem::transmute::<usize, Hook>(hook) };
        if hook(frame) {
            return;
        }
    }
    crate::println!("unhandled trap {} (error {:#x}) at {:#x}", frame.vector, frame.error_code, frame.rip);
    crate::shutdown(guest_abi::sched::SHUTDOWN_CRASH)
}

#[cfg(target_os = "none")]
macro_rules! stubs {
    ($($v:literal),*) => {
        core::arch::global_asm!(
            $(
                concat!(".section .text\n.balign 16\ntrap_stub_", $v, ":\n"),
                "pop %rcx\npop %r11\n",
                concat!(".if ", $v, " == 8 || ", $v, " == 10 || ", $v, " == 11 || ", $v, " == 12 || ", $v,
                    " == 13 || ", $v, " == 14 || ", $v, " == 17 || ", $v, " == 21 || ", $v, " == 29 || ", $v, " == 30\n.else\npushq $0\n.endif\n"),
                concat!("pushq $", $v, "\njmp trap_common\n"),
            )*
            ".section .rodata\n.balign 8\n.globl trap_stub_table\ntrap_stub_table:",
            $( concat!(".quad trap_stub_", $v), )*
            r#"
            .section .text
        trap_common:
            cld
            push %rax
            push %rbx
            push %rcx
            push %rdx
            push %rsi
            push %rdi
            push %rbp
            push %r8
            push %r9
            push %r10
            push %r11
            push %r12
            push %r13
            push %r14
            push %r15
            mov %rsp, %rdi
            mov %rsp, %rbp
            and $-16, %rsp
            call {handler}
            mov %rbp, %rsp
            pop %r15
            pop %r14
            pop %r13
            pop %r12
            pop %r11
            pop %r10
            pop %r9
            pop %r8
            pop %rbp
            pop %rdi
            pop %rsi
            pop %rdx
            pop %rcx
            pop %rbx
            pop %rax
            add $16, %rsp
            pushq $0
            jmp hypercall_page + 23 * 32
            "#,
            handler = sym trap_handler,
            options(att_syntax)
        );
    };
}

#[cfg(target_os = "none")]
stubs!(
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
    31, 128
);

#[cfg(target_os = "none")]
extern "C" {
    static trap_stub_table: [u64; 33];
}

/// Installs `hook` and a trap table covering every exception and
/// `int $0x80` (DPL 3 for `int3`, `into` and `int $0x80`).
pub fn install(hook: Hook) -> Result<(), guest_abi::XenError> {
    HOOK.store(hook as usize, Ordering::SeqCst);
    #[cfg_attr(not(target_os = "none"), allow(unused_mut))]
    let mut table = [TrapInfo::new_zeroed(); 34];
    #[cfg(target_os = "none")]
    {
        // SAFETY: the stub table is immutable data emitted above.
        let stubs = unsafe { &*core::ptr::addr_of!(trap_stub_table) };
        for (i, &stub) in stubs.iter().enumerate() {
            let vector = if i == 32 { 0x80 } else { i as u8 };
            let dpl = if matches!(vector, 3 | 4 | 0x80) { 3 } else { 0 };
            table[i] = TrapInfo { vector, flags: dpl, cs: 0xe033, _pad0: [0; 4], address: stub };
        }
    }
    hypercall::set_trap_table(&table[..34])
}
