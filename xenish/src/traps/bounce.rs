//! Bounce frames: entering the guest kernel's handlers with Xen's frame on
//! its stack: exceptions through the trap table, NMIs and event upcalls on
//! the way back to the guest, the failsafe callback, and `syscall` from
//! guest user mode (Xen's `create_bounce_frame`, `pv_inject_event`,
//! `process_nmi`, `test_all_events`, `load_segments`, `switch_to_kernel`).

use super::*;

/// Where and how a bounce enters the guest kernel.
struct Bounce {
    /// Handler address.
    target: u64,
    /// Error code to push, if the event has one.
    error_code: Option<u64>,
    /// Mask events (set `evtchn_upcall_mask`) on entry.
    mask_events: bool,
    /// For the failsafe callback: the `ds, es, fs, gs` selectors to report.
    segments: Option<[u16; 4]>,
}

/// Builds Xen's bounce frame on the guest kernel stack and enters `b.target`
/// in guest kernel mode:
/// `rcx, r11, [ds, es, fs, gs], [error_code], rip, cs | saved_upcall_mask << 32,
/// rflags, rsp, ss` (the selectors only for the failsafe callback).
/// From user mode the vCPU first switches to kernel mode and the kernel
/// stack (`stack_switch`); a kernel-mode frame has its CS RPL cleared, which
/// is how the guest tells the two apart.
fn create_bounce_frame(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    b: Bounce,
    mem: &mut dyn MachineMemory,
) -> Result<(), String> {
    write_bounce_frame(dom, vcpu, frame, b, mem, false)?;
    if let Some(v) = dom.vcpus.get_mut(vcpu) {
        v.set_kernel_mode(true);
    }
    Ok(())
}

/// [`create_bounce_frame`] but for the switch to guest kernel mode (which
/// a vCPU in kernel mode already is in): the frame written, `frame`
/// pointed at it, the upcall mask set; the domain itself is not changed.
/// `direct`: the entry changed no page table (the fast path), so the frame
/// may be written through the loaded tables ([`GuestMemory::copy_to_loaded`]).
fn write_bounce_frame(
    dom: &Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    b: Bounce,
    mem: &mut dyn MachineMemory,
    direct: bool,
) -> Result<(), String> {
    let Some(v) = dom.vcpus.get(vcpu) else { return Err(String::from("no such vCPU")) };
    let from_kernel = v.kernel_mode();
    let (stack, l4) = (if from_kernel { frame.rsp } else { v.kernel_sp() }, v.kernel_l4);
    let saved_mask = upcall_mask(dom, vcpu, mem, None);
    let cs = if from_kernel { frame.cs & !3 } else { frame.cs | 3 } | (u64::from(saved_mask) << 32);
    let rflags = (frame.rflags & !EFLAGS_IF) | if saved_mask == 0 { EFLAGS_IF } else { 0 };

    if b.target == 0 {
        // Xen's create_bounce_frame crashes the domain for a null callback.
        return Err(String::from("no callback registered"));
    }
    // Filled from the top down: the iret words, then the error code and
    // the selectors if any, then rcx and r11 (the lowest, where sp ends).
    let mut words = [0u64; 12];
    let mut first = words.len() - 5;
    words[first..].copy_from_slice(&[frame.rip, cs, rflags, frame.rsp, frame.ss]);
    if let Some(e) = b.error_code {
        first -= 1;
        words[first] = e;
    }
    if let Some(sel) = b.segments {
        first -= 4;
        words[first..first + 4].copy_from_slice(&sel.map(u64::from));
    }
    first -= 2;
    words[first..first + 2].copy_from_slice(&[frame.rcx, frame.r11]);
    let words = &words[first..];
    let sp = (stack & !15).wrapping_sub(8 * words.len() as u64);
    // The words as the guest reads them (x86 is little-endian): no second
    // buffer to fill on this hot path.
    let bytes = zerocopy::IntoBytes::as_bytes(words);
    // The frame must not touch the hypervisor hole (nor wrap into it).
    let end = sp.wrapping_add(8 * words.len() as u64);
    if !crate::guest_access::is_guest_addr(sp) || !crate::guest_access::is_guest_addr(end.wrapping_sub(1)) || end < sp {
        return Err(format!("bounce frame at {sp:#x} outside guest memory"));
    }
    let mut g = GuestMemory::new(mem, l4);
    let written = if direct { g.copy_to_loaded(sp, bytes) } else { g.copy_to(sp, bytes) };
    if written.is_err() {
        let walk: alloc::vec::Vec<String> = g.walk(sp).iter().map(|e| format!("{e:#x}")).collect();
        let user_l4 = v.user_l4.map_or(0, |m| m.0);
        return Err(format!(
            "the guest kernel stack at {sp:#x} is not writable (from {} mode, cs {:#x}; kernel L4 {:#x}, user L4 \
             {user_l4:#x}; walk {})",
            if from_kernel { "kernel" } else { "user" },
            frame.cs,
            l4.0,
            walk.join(" ")
        ));
    }
    if b.mask_events {
        upcall_mask(dom, vcpu, mem, Some(true));
    }
    frame.rsp = sp;
    frame.rip = b.target;
    frame.cs = FLAT_KERNEL_CS;
    frame.ss = FLAT_KERNEL_SS;
    // As Xen's create_bounce_frame: TF, NT, RF, VM and AC are cleared (as
    // a trap through an IDT gate would), DF is left as it was: a handler
    // clears it itself (only the syscall bounce clears it, see there).
    frame.rflags =
        (frame.rflags & !(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF | EFLAGS_VM | EFLAGS_AC | EFLAGS_IOPL)) | EFLAGS_IF;
    Ok(())
}

/// Delivers exception `vector` to the guest's trap-table handler.
pub(super) fn bounce(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    vector: u64,
    error_code: u64,
    cr2: u64,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    // Built only when the guest is crashed: bounces are a hot path.
    let error = frame.error_code;
    let crash = |why: &str| {
        let cr2 = if vector == 14 { format!(", cr2 {cr2:#x}") } else { String::new() };
        TrapDecision::Crash(format!("unhandled {} (vector {vector}, error {error:#x}{cr2}){why}", vector_name(vector)))
    };
    let Some(v) = dom.vcpus.get(vcpu) else { return crash("") };
    let handler: TrapHandler = v.traps.get(vector as usize).copied().unwrap_or_default();
    if handler.address == 0 {
        return crash(": no trap handler registered");
    }
    let is_soft = error_code == SOFTWARE_INTERRUPT;
    let has_error = !is_soft && matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
    let mut error_code = error_code;
    if vector == 14 {
        // Xen reports the fault address in vcpu_info.arch.cr2, and sets the
        // error code's user bit by the guest's mode, not the CPU's ring
        // (the guest kernel runs in ring 3 too): pv_inject_event.
        if let Some(slot) = cr2_slot(dom, vcpu, mem) {
            slot.copy_from_slice(&cr2.to_le_bytes());
        }
        error_code = (error_code & !PFEC_USER) | if v.kernel_mode() { 0 } else { PFEC_USER };
    }
    let b = Bounce {
        target: handler.address,
        error_code: has_error.then_some(error_code),
        mask_events: handler.flags & TI_DISABLE_EVENTS != 0,
        segments: None,
    };
    match create_bounce_frame(dom, vcpu, frame, b, mem) {
        Ok(()) => TrapDecision::Resume,
        Err(why) => crash(&format!(": {why}")),
    }
}

/// What a return to the guest delivers, in Xen's order: a pending NMI, then
/// a pending event upcall (on top of the NMI handler's frame if that left
/// events unmasked).
///
/// Runs on every return to a guest, where usually neither is pending: one
/// look at the vCPU's NMI flag and its vcpu_info's `evtchn_upcall_pending`
/// in line (as Xen's `test_all_events` tests the two flags), the delivery
/// out of line.
#[inline(always)]
pub fn deliver_pending(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let Some(v) = dom.vcpus.get(vcpu) else { return Ok(false) };
    let (info, off) = v.info_location(dom.shared_info, vcpu);
    let upcall = mem.frame(info).and_then(|f| f.get(off)).is_some_and(|&pending| pending != 0);
    if !upcall && !v.nmi_pending {
        return Ok(false);
    }
    deliver_pending_slow(dom, vcpu, frame, mem)
}

/// [`deliver_pending`] once something may be due.
#[inline(never)]
fn deliver_pending_slow(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let nmi = deliver_nmi(dom, vcpu, frame, mem)?;
    Ok(deliver_upcall(dom, vcpu, frame, mem)? || nmi)
}

/// Delivers a pending NMI (`VCPUOP_send_nmi`) to the guest's NMI handler,
/// trap-table vector 2 (`CALLBACKTYPE_nmi` sets it too), unless one is
/// still being handled: Xen's `process_nmi`, run on every return to a
/// guest before event upcalls. NMIs stay masked until the handler's
/// `iret`; with no handler the NMI is dropped. Returns whether one was
/// delivered.
pub fn deliver_nmi(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let Some(v) = dom.vcpus.get_mut(vcpu) else { return Ok(false) };
    if !v.nmi_pending || v.nmi_masked {
        return Ok(false);
    }
    v.nmi_pending = false;
    let handler = v.traps.get(2).copied().unwrap_or_default();
    if handler.address == 0 {
        return Ok(false);
    }
    v.nmi_masked = true;
    let mask_events = handler.flags & TI_DISABLE_EVENTS != 0;
    create_bounce_frame(
        dom,
        vcpu,
        frame,
        Bounce { target: handler.address, error_code: None, mask_events, segments: None },
        mem,
    )?;
    Ok(true)
}

/// Delivers a pending event upcall: if `evtchn_upcall_pending` is set and
/// events are not masked, bounce to the event callback with events masked
/// (Xen's `test_all_events`, run on every return to a guest). Returns whether
/// an upcall was delivered.
pub fn deliver_upcall(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let Some(b) = upcall_due(dom, vcpu, mem) else { return Ok(false) };
    create_bounce_frame(dom, vcpu, frame, b, mem)?;
    Ok(true)
}

/// The bounce to the event callback if an upcall is pending, unmasked, and
/// a callback registered. In line: on the fast path it is the exit's one
/// look at the guest's `vcpu_info`, and the memory's type is known there.
#[inline]
fn upcall_due(dom: &Domain, vcpu: usize, mem: &dyn MachineMemory) -> Option<Bounce> {
    let callback = dom.vcpus.get(vcpu).map(|v| v.callbacks.event.address)?;
    let (info, off) = dom.vcpu_info(vcpu);
    let pending = match mem.frame(info).and_then(|f| f.get(off..off + 2)) {
        Some(&[pending, mask]) => pending != 0 && mask == 0,
        _ => false,
    };
    (pending && callback != 0).then_some(Bounce {
        target: callback,
        error_code: None,
        mask_events: true,
        segments: None,
    })
}

/// [`deliver_pending`] for the fast path, for a vCPU with no NMI pending
/// (else an error, nothing changed): the upcall, if one is due, bounced
/// without changing the domain; from user mode the vCPU enters kernel mode
/// ([`crate::domain::Vcpu::set_kernel_mode_running`]). An error is the
/// bounce's failure, nothing changed: the slow path's [`deliver_pending`]
/// crashes the domain.
///
/// The look in line (every fast entry makes it, and most find nothing
/// due), the bounce and the errors out of line.
#[inline]
pub fn deliver_upcall_fast(
    dom: &Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    let Some(v) = dom.vcpus.get(vcpu).filter(|v| !v.nmi_pending) else {
        return Err(nmi_pending());
    };
    let Some(b) = upcall_due(dom, vcpu, mem) else { return Ok(false) };
    bounce_upcall_fast(dom, vcpu, v, frame, b, mem)
}

/// [`deliver_upcall_fast`]'s refusal: no such vCPU, or an NMI pending.
#[cold]
#[inline(never)]
fn nmi_pending() -> String {
    String::from("an NMI is pending")
}

/// [`deliver_upcall_fast`]'s bounce of the due upcall `b` for vCPU `vcpu`
/// (`v`) of `dom`.
#[inline(never)]
fn bounce_upcall_fast(
    dom: &Domain,
    vcpu: usize,
    v: &crate::domain::Vcpu,
    frame: &mut TrapFrame,
    b: Bounce,
    mem: &mut dyn MachineMemory,
) -> Result<bool, String> {
    write_bounce_frame(dom, vcpu, frame, b, mem, true)?;
    v.set_kernel_mode_running(true);
    Ok(true)
}

/// Enters the guest's failsafe callback (`CALLBACKTYPE_failsafe`) with
/// Xen's failsafe frame `rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss`
/// on the guest kernel stack: what Xen does when reloading the guest's data
/// selectors fails (`load_segments`) and when the return to the guest
/// itself faults (`failsafe_callback` in entry.S). `segments` are the
/// selectors to report; `why` says what failed, for the crash report when
/// the guest registered no failsafe callback or the frame cannot be written.
/// Events are masked on entry if the callback was registered with
/// `CALLBACKF_mask_events` (`VGCF_failsafe_disables_events`).
pub fn failsafe(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    segments: [u16; 4],
    why: &str,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let Some(cb) = dom.vcpus.get(vcpu).map(|v| v.callbacks.failsafe) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    if cb.address == 0 {
        return TrapDecision::Crash(format!("{why}, and no failsafe callback is registered"));
    }
    let b = Bounce { target: cb.address, error_code: None, mask_events: cb.mask_events, segments: Some(segments) };
    match create_bounce_frame(dom, vcpu, frame, b, mem) {
        Ok(()) => TrapDecision::Resume,
        Err(e) => TrapDecision::Crash(format!("{why}, and the failsafe callback cannot be entered: {e}")),
    }
}

/// On a switch to vCPU `vcpu`, whose saved state is in `frame`: the data
/// selectors it had (`ds, es, fs, gs`) are loaded again, and any that no
/// longer loads (its GDT entry changed meanwhile) is loaded as null and
/// reported to the guest's failsafe callback, as Xen's `load_segments` does.
pub fn reload_segments(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let Some(v) = dom.vcpus.get(vcpu) else { return TrapDecision::Resume };
    let s = v.segments;
    let selectors = [s.ds, s.es, s.fs, s.gs];
    let gdt = |i: usize| crate::descriptors::gdt_entry(&v.gdt_frames, &*mem, i);
    let ldt = |i: usize| crate::descriptors::ldt_entry(&v.ldt_frames, v.ldt_ents, &*mem, i);
    if selectors.iter().all(|&sel| crate::descriptors::selector_loadable(sel, &gdt, &ldt)) {
        return TrapDecision::Resume;
    }
    failsafe(dom, vcpu, frame, selectors, "reloading a data segment selector failed", mem)
}

/// A `syscall` from guest user mode, or from 32-bit code (whose frame says
/// [`FLAT_USER_CS32`]): enter the kernel's syscall callback, the
/// `CALLBACKTYPE_syscall32` one for 32-bit code, as Xen's
/// `switch_to_kernel` does (events masked as the 64-bit callback asked, in
/// both cases). With no such callback registered, the guest gets `#UD` at
/// the instruction, as on Xen.
pub fn syscall_from_user(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
) -> TrapDecision {
    let compat = frame.cs == FLAT_USER_CS32;
    let Some(cb) = dom.vcpus.get(vcpu).map(|v| Callback {
        address: if compat { v.callbacks.syscall32.address } else { v.callbacks.syscall.address },
        mask_events: v.callbacks.syscall.mask_events,
    }) else {
        return TrapDecision::Crash(String::from("no such vCPU"));
    };
    if cb.address == 0 {
        frame.rip = frame.rcx.wrapping_sub(2);
        frame.rflags = frame.r11;
        return bounce(dom, vcpu, frame, 6, 0, 0, mem);
    }
    // The CPU put the return rip and rflags in rcx and r11.
    frame.rip = frame.rcx;
    frame.rflags = frame.r11;
    let b = Bounce { target: cb.address, error_code: None, mask_events: cb.mask_events, segments: None };
    match create_bounce_frame(dom, vcpu, frame, b, mem) {
        Ok(()) => {
            // Xen's switch_to_kernel clears DF for the system call entry.
            frame.rflags &= !EFLAGS_DF;
            TrapDecision::Resume
        }
        Err(why) => TrapDecision::Crash(format!("syscall bounce failed: {why}")),
    }
}

/// [`syscall_from_user`] for the fast path: a 64-bit `syscall` from guest
/// user mode entering the registered syscall callback, the vCPU put in
/// kernel mode ([`crate::domain::Vcpu::set_kernel_mode_running`]; the
/// caller loads the kernel table and swaps the GS bases). `false`, with
/// nothing changed, for what the slow path does otherwise: a vCPU in
/// kernel mode, 32-bit code (the `syscall32` callback), no callback
/// registered (`#UD`), a bounce frame that cannot be written (a crash:
/// [`GuestMemory::copy_to`] checks the whole range before it writes).
#[inline(always)]
pub fn syscall_from_user_fast(dom: &Domain, vcpu: usize, frame: &mut TrapFrame, mem: &mut dyn MachineMemory) -> bool {
    let Some(v) = dom.vcpus.get(vcpu) else { return false };
    let cb = v.callbacks.syscall;
    if v.kernel_mode() || frame.cs == FLAT_USER_CS32 || cb.address == 0 {
        return false;
    }
    let (rip, rflags) = (frame.rip, frame.rflags);
    frame.rip = frame.rcx;
    frame.rflags = frame.r11;
    let b = Bounce { target: cb.address, error_code: None, mask_events: cb.mask_events, segments: None };
    if write_bounce_frame(dom, vcpu, frame, b, mem, true).is_err() {
        // It changes the frame only once the bounce frame is written.
        (frame.rip, frame.rflags) = (rip, rflags);
        return false;
    }
    frame.rflags &= !EFLAGS_DF;
    v.set_kernel_mode_running(true);
    true
}

/// [`bounce`] of a page fault at `cr2` for the fast path: the fault
/// address in `vcpu_info.arch.cr2`, the error code's user bit by the
/// guest's mode, the bounce to the trap table's handler for vector 14, the
/// vCPU in kernel mode ([`crate::domain::Vcpu::set_kernel_mode_running`];
/// from user mode the caller loads the kernel table and swaps the GS
/// bases). `false`, with nothing changed, for what the slow path does
/// otherwise: no handler registered or a bounce frame that cannot be
/// written (a crash); the caller declines writes to present pages, which
/// the slow path may emulate (ptwr, MSI-X tables).
pub fn page_fault_fast(
    dom: &Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    cr2: u64,
    mem: &mut dyn MachineMemory,
) -> bool {
    let Some(v) = dom.vcpus.get(vcpu) else { return false };
    let handler = v.traps.get(14).copied().unwrap_or_default();
    if frame.vector != 14 || frame.error_code == SOFTWARE_INTERRUPT || handler.address == 0 {
        return false;
    }
    let error_code = (frame.error_code & !PFEC_USER) | if v.kernel_mode() { 0 } else { PFEC_USER };
    // The slow path writes the fault address first, then the frame (which
    // a hostile guest may have overlap it): so here, put back if the
    // bounce cannot be made.
    let old = cr2_slot(dom, vcpu, mem).map(|slot| core::mem::replace(slot, cr2.to_le_bytes()));
    let mask_events = handler.flags & TI_DISABLE_EVENTS != 0;
    let b = Bounce { target: handler.address, error_code: Some(error_code), mask_events, segments: None };
    if write_bounce_frame(dom, vcpu, frame, b, mem, true).is_err() {
        if let (Some(old), Some(slot)) = (old, cr2_slot(dom, vcpu, mem)) {
            *slot = old;
        }
        return false;
    }
    v.set_kernel_mode_running(true);
    true
}
