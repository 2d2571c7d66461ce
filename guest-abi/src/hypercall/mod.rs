//! Hypercalls from a PV kernel: raw `hypercall0..5` through the hypercall
//! page the hypervisor fills (slot `nr` at `hypercall_page + 32 * nr`,
//! arguments in rdi, rsi, rdx, r10, r8; rcx and r11 clobbered), and typed
//! wrappers returning `Result<_, XenError>`.
//!
//! The kernel provides the page: a 4 KiB-aligned symbol `hypercall_page`
//! named in its HYPERCALL_PAGE note (see [`crate::xen_elfnotes!`]).

use zerocopy::{FromZeros, IntoBytes};

use crate::errno::XenError;
use crate::event_channel as ev;
use crate::sched;
use crate::version;
use crate::xen;

#[cfg(target_os = "none")]
extern "C" {
    static hypercall_page: [u8; 4096];
}

/// Issues hypercall `nr` with five arguments and returns `rax`.
///
/// # Safety
/// The arguments must be what hypercall `nr` expects; any pointer among
/// them must be valid for what the hypervisor reads or writes through it.
#[cfg(target_os = "none")]
pub unsafe fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    let stub = (core::ptr::addr_of!(hypercall_page) as usize) + 32 * (nr as usize % 128);
    // SAFETY: the stub follows Xen's calling convention; the caller vouches
    // for the arguments. Argument registers may be clobbered.
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

fn result(ret: i64) -> Result<u64, XenError> {
    XenError::from_ret(ret)
}

/// `console_io(CONSOLEIO_write)`.
pub fn console_write(bytes: &[u8]) -> Result<(), XenError> {
    // SAFETY: the buffer is valid for its length during the call.
    let r = unsafe {
        hypercall3(xen::HYPERVISOR_CONSOLE_IO, xen::CONSOLEIO_WRITE.into(), bytes.len() as u64, bytes.as_ptr() as u64)
    };
    result(r).map(drop)
}

/// `console_io(CONSOLEIO_read)`: bytes read into `buf`.
pub fn console_read(buf: &mut [u8]) -> Result<usize, XenError> {
    // SAFETY: the buffer is valid for writing its length during the call.
    let r = unsafe {
        hypercall3(xen::HYPERVISOR_CONSOLE_IO, xen::CONSOLEIO_READ.into(), buf.len() as u64, buf.as_mut_ptr() as u64)
    };
    result(r).map(|n| n as usize)
}

/// `xen_version(XENVER_version)`: (major, minor).
pub fn xen_version() -> Result<(u16, u16), XenError> {
    // SAFETY: XENVER_version takes no argument.
    let v = result(unsafe { hypercall2(xen::HYPERVISOR_XEN_VERSION, version::XENVER_VERSION.into(), 0) })?;
    Ok(((v >> 16) as u16, v as u16))
}

/// `xen_version(XENVER_get_features)` for submap `index`.
pub fn get_features(index: u32) -> Result<u32, XenError> {
    let mut fi = version::FeatureInfo::new_zeroed();
    fi.submap_idx = index;
    // SAFETY: `fi` is a valid xen_feature_info for the call.
    result(unsafe {
        hypercall2(
            xen::HYPERVISOR_XEN_VERSION,
            version::XENVER_GET_FEATURES.into(),
            fi.as_mut_bytes().as_mut_ptr() as u64,
        )
    })?;
    Ok(fi.submap)
}

/// `sched_op(SCHEDOP_yield)`.
pub fn sched_yield() -> Result<(), XenError> {
    // SAFETY: no argument.
    result(unsafe { hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_YIELD.into(), 0) }).map(drop)
}

/// `sched_op(SCHEDOP_block)`: enable events and wait for one.
pub fn sched_block() -> Result<(), XenError> {
    // SAFETY: no argument.
    result(unsafe { hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_BLOCK.into(), 0) }).map(drop)
}

/// `sched_op(SCHEDOP_shutdown)` with a `SHUTDOWN_*` reason.
pub fn sched_shutdown(reason: u32) -> Result<(), XenError> {
    let arg = sched::SchedShutdown { reason };
    // SAFETY: `arg` is a valid sched_shutdown for the call.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_SCHED_OP, sched::SCHEDOP_SHUTDOWN.into(), arg.as_bytes().as_ptr() as u64)
    })
    .map(drop)
}

/// `set_timer_op`: fire the single-shot timer at system time `deadline_ns`
/// (0 cancels).
pub fn set_timer_op(deadline_ns: u64) -> Result<(), XenError> {
    // SAFETY: plain value argument.
    result(unsafe { hypercall1(xen::HYPERVISOR_SET_TIMER_OP, deadline_ns) }).map(drop)
}

/// `vm_assist(VMASST_CMD_enable, type)`.
pub fn vm_assist_enable(typ: u32) -> Result<(), XenError> {
    // SAFETY: plain value arguments.
    result(unsafe { hypercall2(xen::HYPERVISOR_VM_ASSIST, xen::VMASST_CMD_ENABLE.into(), typ.into()) }).map(drop)
}

/// `event_channel_op(EVTCHNOP_send)`.
pub fn evtchn_send(port: u32) -> Result<(), XenError> {
    let arg = ev::EvtchnSend { port };
    // SAFETY: `arg` is valid for the call.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_EVENT_CHANNEL_OP, ev::EVTCHNOP_SEND.into(), arg.as_bytes().as_ptr() as u64)
    })
    .map(drop)
}

/// `event_channel_op(EVTCHNOP_alloc_unbound)`: a port `remote_dom` may bind.
pub fn evtchn_alloc_unbound(remote_dom: u16) -> Result<u32, XenError> {
    let mut arg = ev::EvtchnAllocUnbound::new_zeroed();
    arg.dom = xen::DOMID_SELF;
    arg.remote_dom = remote_dom;
    // SAFETY: `arg` is valid for reading and writing during the call.
    result(unsafe {
        hypercall2(
            xen::HYPERVISOR_EVENT_CHANNEL_OP,
            ev::EVTCHNOP_ALLOC_UNBOUND.into(),
            arg.as_mut_bytes().as_mut_ptr() as u64,
        )
    })?;
    Ok(arg.port)
}

/// `event_channel_op(EVTCHNOP_bind_virq)` on `vcpu`: the new port.
pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<u32, XenError> {
    let mut arg = ev::EvtchnBindVirq::new_zeroed();
    arg.virq = virq;
    arg.vcpu = vcpu;
    // SAFETY: as above.
    result(unsafe {
        hypercall2(
            xen::HYPERVISOR_EVENT_CHANNEL_OP,
            ev::EVTCHNOP_BIND_VIRQ.into(),
            arg.as_mut_bytes().as_mut_ptr() as u64,
        )
    })?;
    Ok(arg.port)
}

/// `event_channel_op(EVTCHNOP_close)`.
pub fn evtchn_close(port: u32) -> Result<(), XenError> {
    let arg = ev::EvtchnClose { port };
    // SAFETY: as above.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_EVENT_CHANNEL_OP, ev::EVTCHNOP_CLOSE.into(), arg.as_bytes().as_ptr() as u64)
    })
    .map(drop)
}

/// `update_va_mapping(va, pte, flags)`.
pub fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<(), XenError> {
    // SAFETY: plain values; the hypervisor validates the mapping.
    result(unsafe { hypercall3(xen::HYPERVISOR_UPDATE_VA_MAPPING, va, pte, flags) }).map(drop)
}

/// `mmu_update` of a batch: how many were done.
pub fn mmu_update(reqs: &[xen::MmuUpdate], foreign_dom: u16) -> Result<u32, XenError> {
    let mut done = 0u32;
    // SAFETY: the slice and `done` are valid during the call.
    result(unsafe {
        hypercall4(
            xen::HYPERVISOR_MMU_UPDATE,
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            core::ptr::addr_of_mut!(done) as u64,
            foreign_dom.into(),
        )
    })?;
    Ok(done)
}

/// `mmuext_op` of a batch: how many were done.
pub fn mmuext_op(ops: &[xen::MmuextOp], foreign_dom: u16) -> Result<u32, XenError> {
    let mut done = 0u32;
    // SAFETY: as above.
    result(unsafe {
        hypercall4(
            xen::HYPERVISOR_MMUEXT_OP,
            ops.as_ptr() as u64,
            ops.len() as u64,
            core::ptr::addr_of_mut!(done) as u64,
            foreign_dom.into(),
        )
    })?;
    Ok(done)
}

/// `set_trap_table`: `traps` must end with an entry whose address is 0.
pub fn set_trap_table(traps: &[crate::arch_x86::TrapInfo]) -> Result<(), XenError> {
    if traps.last().is_none_or(|t| t.address != 0) {
        return Err(XenError::Einval);
    }
    // SAFETY: the table is valid and terminated during the call.
    result(unsafe { hypercall1(xen::HYPERVISOR_SET_TRAP_TABLE, traps.as_ptr() as u64) }).map(drop)
}

/// `callback_op(CALLBACKOP_register)`.
pub fn register_callback(typ: u16, flags: u16, address: u64) -> Result<(), XenError> {
    let mut arg = crate::callback::CallbackRegister::new_zeroed();
    arg.type_ = typ;
    arg.flags = flags;
    arg.address = address;
    // SAFETY: `arg` is valid for the call.
    result(unsafe {
        hypercall2(
            xen::HYPERVISOR_CALLBACK_OP,
            crate::callback::CALLBACKOP_REGISTER.into(),
            arg.as_bytes().as_ptr() as u64,
        )
    })
    .map(drop)
}

/// `stack_switch(ss, sp)`: the kernel stack for bounces from user mode.
pub fn stack_switch(ss: u64, sp: u64) -> Result<(), XenError> {
    // SAFETY: plain values.
    result(unsafe { hypercall2(xen::HYPERVISOR_STACK_SWITCH, ss, sp) }).map(drop)
}

/// `memory_op(XENMEM_current_reservation / maximum_reservation)` for self.
pub fn reservation(maximum: bool) -> Result<u64, XenError> {
    let dom: u16 = xen::DOMID_SELF;
    let cmd =
        if maximum { crate::memory::XENMEM_MAXIMUM_RESERVATION } else { crate::memory::XENMEM_CURRENT_RESERVATION };
    // SAFETY: `dom` is valid for the call.
    result(unsafe { hypercall2(xen::HYPERVISOR_MEMORY_OP, cmd.into(), core::ptr::addr_of!(dom) as u64) })
}

/// `multicall` over a batch; each entry's `result` is filled in.
pub fn multicall(entries: &mut [xen::MulticallEntry]) -> Result<(), XenError> {
    // SAFETY: the entries are valid for reading and writing during the call.
    result(unsafe { hypercall2(xen::HYPERVISOR_MULTICALL, entries.as_mut_ptr() as u64, entries.len() as u64) })
        .map(drop)
}

/// `event_channel_op(EVTCHNOP_bind_interdomain)`: the new local port.
pub fn evtchn_bind_interdomain(remote_dom: u16, remote_port: u32) -> Result<u32, XenError> {
    let mut arg = ev::EvtchnBindInterdomain::new_zeroed();
    arg.remote_dom = remote_dom;
    arg.remote_port = remote_port;
    // SAFETY: `arg` is valid for reading and writing during the call.
    result(unsafe {
        hypercall2(
            xen::HYPERVISOR_EVENT_CHANNEL_OP,
            ev::EVTCHNOP_BIND_INTERDOMAIN.into(),
            arg.as_mut_bytes().as_mut_ptr() as u64,
        )
    })?;
    Ok(arg.local_port)
}

/// `event_channel_op(EVTCHNOP_unmask)`.
pub fn evtchn_unmask(port: u32) -> Result<(), XenError> {
    let arg = ev::EvtchnUnmask { port };
    // SAFETY: `arg` is valid for the call.
    result(unsafe {
        hypercall2(xen::HYPERVISOR_EVENT_CHANNEL_OP, ev::EVTCHNOP_UNMASK.into(), arg.as_bytes().as_ptr() as u64)
    })
    .map(drop)
}

mod more;
pub use more::*;
