//! Giving a vCPU its context: Xen 4.17's `arch_set_info_guest` for a 64-bit
//! PV vCPU (`xen/arch/x86/domain.c`), shared by the toolstack's
//! `XEN_DOMCTL_setvcpucontext` and the guest's own `VCPUOP_initialise`.
//!
//! Checks, all `-EINVAL` as in Xen: canonical `rip`, `rsp`, `kernel_sp`,
//! FS/GS bases, callbacks and trap handlers (the LDT base too when the LDT
//! has entries); an LDT base outside the hypervisor's hole, page aligned,
//! at most 8192 entries; a vCPU that starts in user mode must name a user
//! page table; the GDT frames (at most 14 frames of checked descriptors,
//! each taking a segment-descriptor type reference, Xen's `pv_set_gdt`);
//! the top-level table in `ctrlreg[3]` (and `ctrlreg[1]`) taking an L4 type
//! reference, preemptibly: `-ERESTART` makes the caller continue the call,
//! which resumes the validation (Xen's continuation of
//! `arch_set_info_guest`), and a table failing part-way is parked on the
//! vCPU (`old_guest_table`) until the next attempt or the teardown
//! releases it. Selectors get the guest kernel's RPL 3; a non-null FS/GS
//! selector clears its base; IOPL becomes the virtual IOPL; interrupts stay
//! enabled. `VGCF_online` decides whether the vCPU is up.
//!
//! Where xenish is stricter: the code and stack selectors the vCPU starts
//! with must be loadable from the new GDT (Xen would find out on the first
//! return and crash the domain; xenish refuses the context), and debug
//! registers in the context are not loaded (the vCPU starts with none).

use alloc::vec::Vec;

use guest_abi::arch_x86::{VcpuGuestContext, VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_IN_KERNEL, VGCF_ONLINE};
use guest_abi::arch_x86::{VGCF_I387_VALID, VGCF_SYSCALL_DISABLES_EVENTS};
use guest_abi::errno::XenError;

use crate::descriptors::{self, MAX_ENTRIES, PER_FRAME};
use crate::domain::{Callback, DomId, Domain, TrapHandler, Vcpu};
use crate::guest_access::{is_canonical, is_guest_addr};
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::regs::TrapFrame;

/// Most LDT entries (Xen's limit).
const MAX_LDT_ENTS: u64 = 8192;

/// A selector as Xen's `fixup_guest_{code,stack}_selector` leaves it for a
/// 64-bit PV guest: ring 0 becomes ring 3 (the guest kernel's ring).
pub fn fixup_selector(sel: u16) -> u16 {
    if sel & 3 == 0 {
        sel | 3
    } else {
        sel
    }
}

/// Gives vCPU `idx` of `d`, not yet initialised, the context `g`; its FPU
/// save area is `fpu_size` bytes. A vCPU that comes up this way leaves
/// `RUNSTATE_offline` when the system next wakes it. On failure the vCPU and every reference
/// count are as they were, but for its top-level tables
/// ([`take_base_pointers`]): `-ERESTART` asks for the same call again.
pub fn set_info_guest(
    d: &mut Domain,
    idx: usize,
    g: &VcpuGuestContext,
    mmu: &mut Mmu,
    fpu_size: usize,
) -> Result<(), XenError> {
    if d.vcpus.get(idx).is_none_or(|v| v.initialised) {
        return Err(XenError::Eexist);
    }
    let r = &g.user_regs;
    let addresses = [
        r.rip,
        r.rsp,
        g.kernel_sp,
        g.fs_base,
        g.gs_base_kernel,
        g.gs_base_user,
        g.event_callback_eip,
        g.syscall_callback_eip,
        g.failsafe_callback_eip,
    ];
    let ldt_base_ok = g.ldt_ents == 0 || is_canonical(g.ldt_base);
    if !addresses.iter().all(|&a| is_canonical(a))
        || !ldt_base_ok
        || !g.trap_ctxt.iter().all(|t| is_canonical(t.address))
    {
        return Err(XenError::Einval);
    }
    if !is_guest_addr(g.ldt_base) || !g.ldt_base.is_multiple_of(PAGE_SIZE as u64) || g.ldt_ents > MAX_LDT_ENTS {
        return Err(XenError::Einval);
    }
    let in_kernel = g.flags & VGCF_IN_KERNEL != 0;
    if !in_kernel && g.ctrlreg[1] == 0 {
        return Err(XenError::Einval);
    }
    // pv_set_gdt: at most 14 frames, each holding only allowed descriptors.
    let gdt_ents = usize::try_from(g.gdt_ents).unwrap_or(usize::MAX);
    if gdt_ents > MAX_ENTRIES {
        return Err(XenError::Einval);
    }
    let gdt_frames: Vec<Mfn> = g.gdt_frames.iter().take(gdt_ents.div_ceil(PER_FRAME)).map(|&m| Mfn(m)).collect();
    let rights = MapRights::of(d);
    for (i, &mfn) in gdt_frames.iter().enumerate() {
        let valid = mmu.mem.frame(mfn).is_some_and(descriptors::frame_ok);
        if !valid || mmu.get_page_and_type(mfn, &rights, PageType::SegDesc).is_err() {
            put_all(mmu, gdt_frames.get(..i).unwrap_or(&[]));
            return Err(XenError::Einval);
        }
    }
    let (cs, ss) = (fixup_selector(r.cs), fixup_selector(r.ss));
    let gdt = |i: usize| descriptors::gdt_entry(&gdt_frames, &*mmu.mem, i);
    let none = |_: usize| None;
    if !descriptors::iret_target_ok(cs, ss, r.rip, &gdt, &none) {
        put_all(mmu, &gdt_frames);
        return Err(XenError::Einval);
    }
    // xen_cr3_to_pfn for a 64-bit guest: the frame is CR3 >> 12.
    let kernel_l4 = Mfn(g.ctrlreg[3] >> 12);
    let user_l4 = (g.ctrlreg[1] != 0).then_some(Mfn(g.ctrlreg[1] >> 12));
    mmu.ft.set_preempt_at(mmu.ft.tables_walked().wrapping_add(super::mmu::TABLE_BUDGET));
    // The rights by field, so that the vCPUs can be borrowed beside them.
    let rights = MapRights {
        id: d.id,
        privileged: d.privileged,
        shared_info: d.shared_info,
        grant_frames: &d.gnttab.frames,
        status_frames: d.gnttab.status_frames(),
    };
    let v = d.vcpus.get_mut(idx).ok_or(XenError::Eexist)?;
    if let Err(e) = take_base_pointers(v, rights.id, mmu, &rights, kernel_l4, user_l4) {
        put_all(mmu, &gdt_frames);
        return Err(e);
    }
    let ldt_ents = g.ldt_ents as u32;
    let ldt_base = if ldt_ents != 0 { g.ldt_base } else { 0 };
    let ldt_frames = super::ldt::take_frames(mmu, kernel_l4, &rights, ldt_base, ldt_ents);
    let Some(v) = d.vcpus.get_mut(idx) else { return Err(XenError::Eexist) };
    v.regs = TrapFrame {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rip: r.rip,
        cs: u64::from(cs),
        // IOPL is virtual; real interrupts stay on; bit 1 is always set.
        rflags: (r.rflags & !0x3000) | 0x202,
        rsp: r.rsp,
        ss: u64::from(ss),
        ..TrapFrame::default()
    };
    v.set_kernel_mode(in_kernel);
    v.set_kernel_sp(g.kernel_sp);
    v.iopl = ((r.rflags >> 12) & 3) as u8;
    for (slot, t) in v.traps.iter_mut().zip(g.trap_ctxt.iter()) {
        *slot = match t.address {
            0 => TrapHandler::default(),
            address => {
                let cs = if t.cs & !3 == 0 { 0xe033 } else { fixup_selector(t.cs) };
                TrapHandler { cs, flags: t.flags, address }
            }
        };
    }
    v.callbacks.event = Callback { address: g.event_callback_eip, mask_events: false };
    let failsafe_masks = g.flags & VGCF_FAILSAFE_DISABLES_EVENTS != 0;
    v.callbacks.failsafe = Callback { address: g.failsafe_callback_eip, mask_events: failsafe_masks };
    let syscall_masks = g.flags & VGCF_SYSCALL_DISABLES_EVENTS != 0;
    v.callbacks.syscall = Callback { address: g.syscall_callback_eip, mask_events: syscall_masks };
    let s = &mut v.segments;
    (s.ds, s.es, s.fs, s.gs) = (r.ds, r.es, r.fs, r.gs);
    // A non-null selector kills its base.
    s.fs_base = if r.fs & !3 == 0 { g.fs_base } else { 0 };
    let gs_user = if r.gs & !3 == 0 { g.gs_base_user } else { 0 };
    (s.gs_base, s.shadow_gs_base) = match in_kernel {
        true => (g.gs_base_kernel, gs_user),
        false => (gs_user, g.gs_base_kernel),
    };
    v.init_fpu(fpu_size);
    if g.flags & VGCF_I387_VALID != 0 {
        v.load_fxsave(&g.fpu_ctxt);
    }
    v.gdt_frames = gdt_frames;
    (v.ldt_base, v.ldt_ents, v.ldt_frames) = (ldt_base, ldt_ents, ldt_frames);
    v.initialised = true;
    v.down = g.flags & VGCF_ONLINE == 0;
    v.note_exit_work();
    if idx == 0 {
        d.vm_assist = g.vm_assist;
    }
    Ok(())
}

/// The top-level tables of vCPU `v` of domain `id` become `kernel` and `user`,
/// each taking an L4 type reference, as Xen's `arch_set_info_guest` takes
/// them: preemptibly by the budget. First the vCPU's parked table (Xen's
/// `old_guest_table`) is finished. `-ERESTART`: stopped part-way (a
/// table partially validated, or one being released parked on the vCPU);
/// the same call again goes on. A kernel table taken stays installed
/// (with its references) when the user table is not taken yet, and is
/// used again by the next attempt if it names the same table; a different
/// one is released first. A table failing part-way is parked on the vCPU.
fn take_base_pointers(
    v: &mut Vcpu,
    id: DomId,
    mmu: &mut Mmu,
    rights: &MapRights,
    kernel: Mfn,
    user: Option<Mfn>,
) -> Result<(), XenError> {
    if let Some(old) = v.old_guest_table {
        mmu.finish_put(old)?;
        v.old_guest_table = None;
    }
    let held = v.kernel_l4;
    if held != kernel && mmu.ft.is_owned_by(held, id) {
        v.kernel_l4 = Mfn(u64::MAX);
        if let Err(e) = mmu.put_page_and_type_preemptible(held) {
            v.old_guest_table = mmu.ft.parked.take();
            return Err(e);
        }
    }
    if held != kernel || !mmu.ft.is_owned_by(held, id) {
        take_l4(mmu, rights, kernel, &mut v.old_guest_table)?;
    }
    v.kernel_l4 = kernel;
    if let Some(user) = user {
        take_l4(mmu, rights, user, &mut v.old_guest_table)?;
    }
    v.user_l4 = user;
    Ok(())
}

/// An L4 type reference on `mfn`, preemptibly: `-ERESTART` as it comes, a
/// failure `-EINVAL`, the table parked in `old_guest_table` if it failed
/// part-way.
fn take_l4(mmu: &mut Mmu, rights: &MapRights, mfn: Mfn, old_guest_table: &mut Option<Mfn>) -> Result<(), XenError> {
    match mmu.get_page_and_type_preemptible(mfn, rights, PageType::L4) {
        Ok(()) => Ok(()),
        Err(XenError::Erestart) => Err(XenError::Erestart),
        Err(_) => {
            *old_guest_table = mmu.ft.parked.take();
            Err(XenError::Einval)
        }
    }
}

fn put_all(mmu: &mut Mmu, frames: &[Mfn]) {
    for &mfn in frames {
        mmu.put_page_and_type(mfn);
    }
}
