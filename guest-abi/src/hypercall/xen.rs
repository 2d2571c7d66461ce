//! Wrappers for the `xen.h` hypercalls: console, MMU, descriptors, vm
//! assists, timers, multicalls, segment bases.

use zerocopy::IntoBytes;

use super::{hypercall1, hypercall2, hypercall3, hypercall4, result};
use crate::arch_x86::TrapInfo;
use crate::errno::XenError;
use crate::xen::{self as x, MmuUpdate, MmuextOp, MulticallEntry};

/// `console_io(CONSOLEIO_write)`: writes `bytes` to the hypervisor console.
pub fn console_write(bytes: &[u8]) -> Result<(), XenError> {
    // SAFETY: the buffer is valid for reading its length during the call.
    let r = unsafe {
        hypercall3(x::HYPERVISOR_CONSOLE_IO, x::CONSOLEIO_WRITE.into(), bytes.len() as u64, bytes.as_ptr() as u64)
    };
    result(r).map(drop)
}

/// `console_io(CONSOLEIO_read)`: bytes read into `buf` (dom0 only).
pub fn console_read(buf: &mut [u8]) -> Result<usize, XenError> {
    // SAFETY: the buffer is valid for writing its length during the call.
    let r = unsafe {
        hypercall3(x::HYPERVISOR_CONSOLE_IO, x::CONSOLEIO_READ.into(), buf.len() as u64, buf.as_mut_ptr() as u64)
    };
    result(r).map(|n| n as usize)
}

/// `set_trap_table`: installs the virtual IDT; `traps` must end with an
/// entry whose `address` is 0.
pub fn set_trap_table(traps: &[TrapInfo]) -> Result<(), XenError> {
    if traps.last().is_none_or(|t| t.address != 0) {
        return Err(XenError::Einval);
    }
    // SAFETY: the table is valid and terminated during the call.
    result(unsafe { hypercall1(x::HYPERVISOR_SET_TRAP_TABLE, traps.as_ptr() as u64) }).map(drop)
}

/// `mmu_update` of a batch on `foreign_dom`'s (or `DOMID_SELF`'s) page
/// tables: how many were done.
///
/// # Safety
/// The updates change mappings: nothing Rust code still references may be
/// unmapped or remapped by them.
pub unsafe fn mmu_update(reqs: &[MmuUpdate], foreign_dom: u16) -> Result<u32, XenError> {
    let mut done = 0u32;
    // SAFETY: the slice and `done` are valid during the call; the caller
    // vouches for the effect.
    result(unsafe {
        hypercall4(
            x::HYPERVISOR_MMU_UPDATE,
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            core::ptr::addr_of_mut!(done) as u64,
            foreign_dom.into(),
        )
    })?;
    Ok(done)
}

/// `mmuext_op` of a batch: how many were done.
///
/// # Safety
/// Pinning, base-pointer and LDT changes alter the address space: nothing
/// Rust code still references may be unmapped or remapped by them.
pub unsafe fn mmuext_op(ops: &[MmuextOp], foreign_dom: u16) -> Result<u32, XenError> {
    let mut done = 0u32;
    // SAFETY: as in mmu_update.
    result(unsafe {
        hypercall4(
            x::HYPERVISOR_MMUEXT_OP,
            ops.as_ptr() as u64,
            ops.len() as u64,
            core::ptr::addr_of_mut!(done) as u64,
            foreign_dom.into(),
        )
    })?;
    Ok(done)
}

/// `mmuext_op(MMUEXT_TLB_FLUSH_LOCAL)`.
pub fn tlb_flush_local() -> Result<(), XenError> {
    let op = MmuextOp::new(x::MMUEXT_TLB_FLUSH_LOCAL, 0, 0);
    // SAFETY: a TLB flush changes no mapping.
    unsafe { mmuext_op(core::slice::from_ref(&op), x::DOMID_SELF) }.map(drop)
}

/// `mmuext_op(MMUEXT_INVLPG_LOCAL)` of `va`.
pub fn invlpg_local(va: u64) -> Result<(), XenError> {
    let op = MmuextOp::new(x::MMUEXT_INVLPG_LOCAL, va, 0);
    // SAFETY: an invalidation changes no mapping.
    unsafe { mmuext_op(core::slice::from_ref(&op), x::DOMID_SELF) }.map(drop)
}

/// `update_va_mapping(va, pte, flags)`: sets the L1 entry mapping `va`
/// (`flags`: `UVMF_*`). Kept safe for its callers: the new entry must not
/// remap memory Rust code references.
pub fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<(), XenError> {
    // SAFETY: plain values; the hypervisor validates the entry, the caller
    // its effect (see above).
    result(unsafe { hypercall3(x::HYPERVISOR_UPDATE_VA_MAPPING, va, pte, flags) }).map(drop)
}

/// `update_va_mapping_otherdomain(va, pte, flags, domid)`.
///
/// # Safety
/// As for `update_va_mapping`: the mapping must not alias memory Rust
/// code references.
pub unsafe fn update_va_mapping_otherdomain(va: u64, pte: u64, flags: u64, domid: u16) -> Result<(), XenError> {
    // SAFETY: plain values; the caller vouches for the effect.
    result(unsafe { hypercall4(x::HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN, va, pte, flags, domid.into()) }).map(drop)
}

/// `set_gdt(frames, entries)`: the guest's GDT in the given frames.
///
/// # Safety
/// The frames become read-only descriptor pages: Rust code must not write
/// them, and the descriptors must suit the running code.
pub unsafe fn set_gdt(frames: &[u64], entries: u32) -> Result<(), XenError> {
    // SAFETY: the frame list is valid during the call; the caller vouches
    // for the effect.
    result(unsafe { hypercall2(x::HYPERVISOR_SET_GDT, frames.as_ptr() as u64, entries.into()) }).map(drop)
}

/// `update_descriptor(ma, desc)`: writes one descriptor at machine address
/// `ma`.
///
/// # Safety
/// The descriptor must not break segments the running code uses.
pub unsafe fn update_descriptor(ma: u64, desc: u64) -> Result<(), XenError> {
    // SAFETY: plain values; the caller vouches for the effect.
    result(unsafe { hypercall2(x::HYPERVISOR_UPDATE_DESCRIPTOR, ma, desc) }).map(drop)
}

/// `stack_switch(ss, sp)`: the kernel stack for bounces from user mode.
/// Kept safe for its callers: `sp` must be the top of a stack the kernel
/// keeps for that purpose.
pub fn stack_switch(ss: u64, sp: u64) -> Result<(), XenError> {
    // SAFETY: plain values (see above).
    result(unsafe { hypercall2(x::HYPERVISOR_STACK_SWITCH, ss, sp) }).map(drop)
}

/// `set_callbacks(event, failsafe, syscall)` (the older interface to
/// `callback_op`).
///
/// # Safety
/// The addresses must be entry points able to take the hypervisor's frame.
pub unsafe fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> Result<(), XenError> {
    // SAFETY: plain values; the caller vouches for the entry points.
    result(unsafe { hypercall3(x::HYPERVISOR_SET_CALLBACKS, event, failsafe, syscall) }).map(drop)
}

/// `fpu_taskswitch(set)`: sets (true) or clears the virtual CR0.TS.
pub fn fpu_taskswitch(set: bool) -> Result<(), XenError> {
    // SAFETY: plain value.
    result(unsafe { hypercall1(x::HYPERVISOR_FPU_TASKSWITCH, u64::from(set)) }).map(drop)
}

/// `set_debugreg(reg, value)`.
pub fn set_debugreg(reg: u32, value: u64) -> Result<(), XenError> {
    // SAFETY: plain values; a breakpoint only traps.
    result(unsafe { hypercall2(x::HYPERVISOR_SET_DEBUGREG, reg.into(), value) }).map(drop)
}

/// `get_debugreg(reg)`.
pub fn get_debugreg(reg: u32) -> Result<u64, XenError> {
    // SAFETY: plain value.
    result(unsafe { hypercall1(x::HYPERVISOR_GET_DEBUGREG, reg.into()) })
}

/// `set_timer_op(deadline)`: the single-shot timer at system time
/// `deadline_ns` (0 cancels).
pub fn set_timer_op(deadline_ns: u64) -> Result<(), XenError> {
    // SAFETY: plain value.
    result(unsafe { hypercall1(x::HYPERVISOR_SET_TIMER_OP, deadline_ns) }).map(drop)
}

/// `vm_assist(VMASST_CMD_enable, type)`.
pub fn vm_assist_enable(typ: u32) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall2(x::HYPERVISOR_VM_ASSIST, x::VMASST_CMD_ENABLE.into(), typ.into()) }).map(drop)
}

/// `vm_assist(VMASST_CMD_disable, type)`.
pub fn vm_assist_disable(typ: u32) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall2(x::HYPERVISOR_VM_ASSIST, x::VMASST_CMD_DISABLE.into(), typ.into()) }).map(drop)
}

/// `set_segment_base(which, base)` (`SEGBASE_*`).
///
/// # Safety
/// Changing `%fs` or the kernel `%gs` base moves what thread-local and
/// per-CPU accesses reach.
pub unsafe fn set_segment_base(which: u32, base: u64) -> Result<(), XenError> {
    // SAFETY: plain values; the caller vouches for the effect.
    result(unsafe { hypercall2(x::HYPERVISOR_SET_SEGMENT_BASE, which.into(), base) }).map(drop)
}

/// `multicall` over a batch; each entry's `result` is filled in.
///
/// # Safety
/// Every entry must be a call that would be sound on its own, with its
/// pointers valid until the multicall returns.
pub unsafe fn multicall(entries: &mut [MulticallEntry]) -> Result<(), XenError> {
    // SAFETY: the entries are valid for reading and writing during the
    // call; the caller vouches for each call.
    result(unsafe { hypercall2(x::HYPERVISOR_MULTICALL, entries.as_mut_ptr() as u64, entries.len() as u64) }).map(drop)
}

/// `event_channel_op_compat(&op)`: the pre-3.2 form of
/// `event_channel_op`, a command and its argument in one struct.
pub fn event_channel_op_compat(op: &mut crate::event_channel::EvtchnOp) -> Result<u64, XenError> {
    // SAFETY: `op` is valid for reading and writing during the call; the
    // event channel commands only affect ports.
    result(unsafe { hypercall1(x::HYPERVISOR_EVENT_CHANNEL_OP_COMPAT, op.as_mut_bytes().as_mut_ptr() as u64) })
}

/// `sched_op_compat(cmd, arg)`: the pre-3.0.2 form of `sched_op`, with
/// the shutdown reason as a value.
pub fn sched_op_compat(cmd: u32, arg: u64) -> Result<u64, XenError> {
    // SAFETY: the compat commands take plain values.
    result(unsafe { hypercall2(x::HYPERVISOR_SCHED_OP_COMPAT, cmd.into(), arg) })
}
