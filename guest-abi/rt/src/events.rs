//! Event channels for a guest-rt kernel: maps shared_info, registers the
//! event callback, and records which ports fired so the kernel can wait
//! for them. Also the guest's view of time (the pvclock in vcpu_info).
//!
//! The upcall arrives on the kernel stack with Xen's frame (`rcx, r11,
//! rip, cs, rflags, rsp, ss`); the entry stub restores rcx/r11, saves the
//! rest, scans the 2-level bitmaps (or calls the kernel's own handler,
//! [`set_handler`], e.g. for the FIFO ABI), and returns through the `iret`
//! hypercall.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use guest_abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT};
use guest_abi::hypercall;
use guest_abi::xen::{StartInfo, UVMF_INVLPG};

/// Ports that fired and were not yet taken: one bit per port, for every
/// port of the FIFO ABI (2^17).
static FIRED: [AtomicU64; 2048] = [const { AtomicU64::new(0) }; 2048];
/// Upcalls taken (for tests and statistics).
static UPCALLS: AtomicU64 = AtomicU64::new(0);
static READY: AtomicBool = AtomicBool::new(false);
/// The kernel's own event handler, if it set one (null: the 2-level scan).
static HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

#[repr(C, align(4096))]
struct Page([u8; 4096]);
/// The page whose mapping is replaced by shared_info.
static mut SHARED_INFO: Page = Page([0; 4096]);

fn shared() -> *mut u8 {
    core::ptr::addr_of_mut!(SHARED_INFO) as *mut u8
}

fn byte(off: usize) -> *mut u8 {
    // SAFETY: off < 4096 for every caller; the page is mapped for the
    // kernel's lifetime once `init` ran.
    unsafe { shared().add(off) }
}

fn word(off: usize) -> &'static AtomicU64 {
    // SAFETY: as above; 8-aligned offsets inside the page.
    unsafe { &*(byte(off) as *const AtomicU64) }
}

/// Maps shared_info and registers the event callback. Events stay masked
/// until [`unmask_events`] or [`block`].
pub fn init(si: &StartInfo) -> Result<(), guest_abi::XenError> {
    let va = shared() as u64;
    hypercall::update_va_mapping(va, si.shared_info | 0x7, u64::from(UVMF_INVLPG))?;
    hypercall::register_callback(
        CALLBACKTYPE_EVENT as u16,
        CALLBACKF_MASK_EVENTS as u16,
        event_entry as *const () as u64,
    )?;
    READY.store(true, Ordering::SeqCst);
    Ok(())
}

/// Clears vCPU 0's event mask, and forces the upcall if one is pending
/// (Xen's idiom: any hypercall returns through the event check).
pub fn unmask_events() {
    // SAFETY: vcpu_info[0].evtchn_upcall_mask is byte 1 of the page.
    unsafe { byte(1).write_volatile(0) };
    // SAFETY: evtchn_upcall_pending is byte 0.
    if unsafe { byte(0).read_volatile() } != 0 {
        let _ = hypercall::xen_version();
    }
}

/// Waits (SCHEDOP_block, which unmasks events) until something happens.
pub fn block() {
    let _ = hypercall::sched_block();
}

/// Makes `handler` consume events at each upcall instead of the 2-level
/// scan (a kernel that switched to the FIFO ABI); it calls [`fire`] for
/// each port it finds pending.
pub fn set_handler(handler: fn()) {
    HANDLER.store(handler as *mut (), Ordering::SeqCst);
}

/// Goes back to the 2-level scan at each upcall (after `EVTCHNOP_reset`).
pub fn clear_handler() {
    HANDLER.store(core::ptr::null_mut(), Ordering::SeqCst);
}

/// Records that `port` fired, for [`take`] and [`wait_for`].
pub fn fire(port: u32) {
    if let Some(w) = FIRED.get((port / 64) as usize) {
        w.fetch_or(1 << (port % 64), Ordering::SeqCst);
    }
}

/// Takes the "fired" flag of `port`.
pub fn take(port: u32) -> bool {
    let bit = 1u64 << (port % 64);
    FIRED.get((port / 64) as usize).is_some_and(|w| w.fetch_and(!bit, Ordering::SeqCst) & bit != 0)
}

/// Upcalls delivered so far.
pub fn upcalls() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}

/// Sets vCPU 0's event mask: events stay pending, no upcall arrives.
pub fn mask_events() {
    // SAFETY: vcpu_info[0].evtchn_upcall_mask is byte 1 of the page.
    unsafe { byte(1).write_volatile(1) };
}

/// Masks `port` (its bit in shared_info's `evtchn_mask`); unmask it with
/// the `EVTCHNOP_unmask` hypercall, which delivers what is pending.
pub fn mask_port(port: u32) {
    if port < 64 * 64 {
        let bit = 1u64 << (port % 64);
        word(0xa00 + (port / 64) as usize * 8).fetch_or(bit, Ordering::SeqCst);
    }
}

/// Whether `port`'s bit in shared_info's `evtchn_pending` is set.
pub fn is_pending(port: u32) -> bool {
    port < 64 * 64 && word(0x800 + (port / 64) as usize * 8).load(Ordering::SeqCst) & (1u64 << (port % 64)) != 0
}

/// Clears shared_info's `evtchn_pending` bitmap and vCPU 0's selector: a
/// kernel back on the 2-level ABI after `EVTCHNOP_reset` starts afresh
/// (nothing clears what was left there before it used the FIFO ABI, and
/// a stale bit keeps the hypervisor from signalling that port or word).
pub fn clear_two_level() {
    for i in 0..64 {
        word(0x800 + i * 8).store(0, Ordering::SeqCst);
    }
    word(8).store(0, Ordering::SeqCst);
}

/// Blocks until `port` fires.
///
/// Events stay masked between the look at the flag and `SCHEDOP_block`
/// (which unmasks them and returns at once if an upcall is pending, the
/// upcall then running on the way back): an upcall taken between an
/// unmasked look and the block would set the flag and leave the vCPU
/// asleep with nothing left to wake it, the lost wake-up Linux avoids by
/// disabling interrupts before its idle check. Returns with events
/// unmasked if it blocked or they were unmasked before.
pub fn wait_for(port: u32) {
    // SAFETY: vcpu_info[0].evtchn_upcall_mask is byte 1 of the page.
    let was_masked = unsafe { byte(1).read_volatile() } != 0;
    let mut blocked = false;
    mask_events();
    while !take(port) {
        block();
        blocked = true;
        mask_events();
    }
    if blocked || !was_masked {
        unmask_events();
    }
}

/// System time in ns from vCPU 0's pvclock (version protocol).
pub fn system_time_ns() -> u64 {
    loop {
        let t = 0x20;
        let version = word(t).load(Ordering::Acquire) as u32;
        let tsc_ts = word(t + 8).load(Ordering::Relaxed);
        let sys = word(t + 16).load(Ordering::Relaxed);
        let mul_shift = word(t + 24).load(Ordering::Relaxed);
        let again = word(t).load(Ordering::Acquire) as u32;
        if version & 1 == 1 || version != again {
            continue;
        }
        let (mul, shift) = (mul_shift as u32, (mul_shift >> 32) as u8 as i8);
        // SAFETY: rdtsc is allowed in ring 3 (CR4.TSD is clear).
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        let mut delta = tsc.wrapping_sub(tsc_ts);
        delta = if shift < 0 { delta >> -shift } else { delta << shift };
        return sys + ((u128::from(delta) * u128::from(mul)) >> 32) as u64;
    }
}

/// The Rust half of the upcall: scan and clear the 2-level bitmaps.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
extern "C" fn event_handler() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: evtchn_upcall_pending, byte 0 of vcpu_info[0].
    unsafe { byte(0).write_volatile(0) };
    let handler = HANDLER.load(Ordering::SeqCst);
    if !handler.is_null() {
        // SAFETY: only `set_handler` stores here, always a `fn()`.
        let handler: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(handler) };
        handler();
        return;
    }
    let sel = word(8).swap(0, Ordering::SeqCst);
    for (i, fired) in FIRED.iter().take(64).enumerate() {
        if sel & (1 << i) == 0 {
            continue;
        }
        let mask = word(0xa00 + i * 8).load(Ordering::SeqCst);
        let pending = word(0x800 + i * 8).load(Ordering::SeqCst) & !mask;
        if pending != 0 {
            word(0x800 + i * 8).fetch_and(!pending, Ordering::SeqCst);
            fired.fetch_or(pending, Ordering::SeqCst);
        }
    }
}

#[cfg(target_os = "none")]
extern "C" {
    fn event_entry();
}

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text, "ax"
    .globl event_entry
event_entry:
    cld
    pop %rcx
    pop %r11
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
    pushq $0
    jmp hypercall_page + 23 * 32
"#,
    handler = sym event_handler,
    options(att_syntax)
);

#[cfg(not(target_os = "none"))]
extern "C" fn event_entry() {}

/// vCPU 0's last page-fault address (`vcpu_info.arch.cr2`).
pub fn vcpu0_cr2() -> u64 {
    word(0x10).load(Ordering::SeqCst)
}
