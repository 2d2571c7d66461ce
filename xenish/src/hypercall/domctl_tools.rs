//! The `domctl`s libxl and libxc issue while they build a PV domain, and
//! those `xl` uses to look at one, beyond the lifecycle in
//! [`super::domctl`]:
//! - `setdomainhandle`; `set/getvcpuaffinity` and `set/getnodeaffinity`
//!   (the hard affinity is honoured by the scheduler with guests on
//!   several CPUs, one without any CPU that runs guests refused as Xen
//!   refuses one outside the pool; the soft affinity and the node map are
//!   kept and reported, a node map without node 0 refused as one disjoint
//!   from the system);
//! - `set/gettscinfo`: the TSC is never emulated on xenish, so the modes
//!   are default and never-emulate; always-emulate is `-EOPNOTSUPP`;
//! - `get/set_cpu_policy`: the domain's CPUID is xenish's PV policy; a
//!   policy the toolstack sends is checked as Xen checks its shape (sizes,
//!   leaves and MSRs in range, with the offending one reported) and
//!   accepted, but not applied;
//! - `set/get_address_size`: 64-bit PV only (32 is `-EOPNOTSUPP`, as on a
//!   Xen without 32-bit PV);
//! - `getvcpuinfo`, `getvcpucontext` (Xen's `arch_get_info_guest` for a
//!   64-bit PV vCPU), `settimeoffset` (the domain's wallclock moves);
//! - `shadow_op` and the paging pool: xenish has no shadow paging, and
//!   answers as a Xen built without it (log-dirty mode cannot be enabled,
//!   no pool to size).
//!
//! Semantics and errnos: Xen 4.17 `xen/common/domctl.c`,
//! `xen/arch/x86/domctl.c`, `xen/common/sched/core.c`
//! (`vcpu_affinity_domctl`), `xen/common/domain.c`
//! (`domain_set_node_affinity`), `xen/arch/x86/time.c` (`tsc_set_info`),
//! `xen/arch/x86/mm/paging.c` (`paging_domctl`).

use guest_abi::arch_x86::{CpuidLeaf, MsrEntry, VcpuGuestContext};
use guest_abi::arch_x86::{VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_IN_KERNEL, VGCF_ONLINE, VGCF_SYSCALL_DISABLES_EVENTS};
use guest_abi::domctl::*;
use guest_abi::errno::XenError;
use guest_abi::xen::HYPERVISOR_DOMCTL;
use zerocopy::FromZeros;

use super::cpu_policy::{self, BadPolicy, Policy};
use super::sysctl::NR_NODES;
use super::xsm::Action;
use super::{bitmap, Ctx, HcResult};
use crate::domain::{DomId, Domain, RUNSTATE_RUNNING};

/// `MAX_NUMNODES` on x86: the width of a node map.
const MAX_NUMNODES: u32 = 64;
/// `TSC_MODE_DEFAULT`, `TSC_MODE_ALWAYS_EMULATE`, `TSC_MODE_NEVER_EMULATE`.
const TSC_MODE_DEFAULT: u32 = 0;
const TSC_MODE_ALWAYS_EMULATE: u32 = 1;
const TSC_MODE_NEVER_EMULATE: u32 = 2;
/// `X86_CR0_TS`.
const CR0_TS: u64 = 1 << 3;
/// The CR0 bits a PV vCPU always has (PE, MP, ET, NE, WP, AM, PG).
const CR0_PV: u64 = 0x8005_003b;

/// Serves `op` for domain `op.domain` (which exists; the caller is
/// privileged), writing it back to `arg` where Xen copies back.
pub fn serve(ctx: &mut Ctx, op: &mut XenDomctl, arg: u64) -> HcResult {
    let id = op.domain;
    match op.cmd {
        XEN_DOMCTL_SETDOMAINHANDLE => {
            ctx.target(id, Action::Control)?.handle = op.setdomainhandle();
            Ok(0)
        }
        XEN_DOMCTL_SETVCPUAFFINITY | XEN_DOMCTL_GETVCPUAFFINITY => {
            let mut a = op.vcpuaffinity();
            vcpu_affinity(ctx, id, op.cmd == XEN_DOMCTL_SETVCPUAFFINITY, &mut a)?;
            Ok(0)
        }
        XEN_DOMCTL_SETNODEAFFINITY => {
            let map = bitmap::read(ctx, &op.nodeaffinity().nodemap, MAX_NUMNODES)?;
            if map & ((1 << NR_NODES) - 1) == 0 {
                return Err(XenError::Einval);
            }
            ctx.target(id, Action::Control)?.tools.node_affinity = map;
            Ok(0)
        }
        XEN_DOMCTL_GETNODEAFFINITY => {
            let map = ctx.target(id, Action::Control)?.tools.node_affinity & ((1 << NR_NODES) - 1);
            bitmap::write(ctx, &op.nodeaffinity().nodemap, map, MAX_NUMNODES)?;
            Ok(0)
        }
        XEN_DOMCTL_SETTSCINFO => {
            not_self(ctx, id)?;
            let info = op.tsc_info();
            let d = ctx.target(id, Action::Control)?;
            if super::xsm::privileged(d).is_ok() {
                // Xen: the hardware domain's TSC mode is fixed; accepted.
                return Ok(0);
            }
            match info.tsc_mode {
                TSC_MODE_DEFAULT | TSC_MODE_NEVER_EMULATE => {}
                // xenish never emulates the TSC.
                TSC_MODE_ALWAYS_EMULATE => return Err(XenError::Eopnotsupp),
                _ => return Err(XenError::Einval),
            }
            d.tools.tsc_mode = info.tsc_mode;
            d.tools.tsc_incarnation = info.incarnation.wrapping_add(1);
            Ok(0)
        }
        XEN_DOMCTL_GETTSCINFO => {
            not_self(ctx, id)?;
            let (now, khz) = (ctx.now_ns, ctx.platform.cpu_khz());
            let d = ctx.target(id, Action::Control)?;
            let native = d.tools.tsc_mode == TSC_MODE_DEFAULT;
            op.set_tsc_info(XenDomctlTscInfo {
                tsc_mode: d.tools.tsc_mode,
                gtsc_khz: if native { khz } else { 0 },
                incarnation: d.tools.tsc_incarnation,
                pad: 0,
                elapsed_nsec: if native { now } else { 0 },
            });
            write_back(ctx, arg, op)
        }
        XEN_DOMCTL_GET_CPU_POLICY => {
            let mut p = op.cpu_policy();
            let leaves = {
                let host = |leaf, subleaf| ctx.platform.host_cpuid(leaf, subleaf);
                cpu_policy::leaves(Policy::Pv, &host)
            };
            p.nr_leaves = super::sysctl::write_leaves(ctx, p.leaves, p.nr_leaves, &leaves)?;
            p.nr_msrs = super::sysctl::write_msrs(ctx, p.msrs, p.nr_msrs, &cpu_policy::msrs(Policy::Pv))?;
            op.set_cpu_policy(p);
            write_back(ctx, arg, op)
        }
        XEN_DOMCTL_SET_CPU_POLICY => set_cpu_policy(ctx, op, arg),
        XEN_DOMCTL_SET_ADDRESS_SIZE => match op.address_size().size {
            64 => Ok(0),
            // No 32-bit PV (Xen without CONFIG_PV32).
            32 => Err(XenError::Eopnotsupp),
            _ => Err(XenError::Einval),
        },
        XEN_DOMCTL_GET_ADDRESS_SIZE => {
            op.set_address_size(XenDomctlAddressSize { size: 64 });
            write_back(ctx, arg, op)
        }
        XEN_DOMCTL_GETVCPUINFO => {
            let mut info = op.getvcpuinfo();
            vcpu_info(ctx, id, &mut info)?;
            op.set_getvcpuinfo(info);
            write_back(ctx, arg, op)
        }
        XEN_DOMCTL_GETVCPUCONTEXT => {
            let c = op.vcpucontext();
            let context = vcpu_context(ctx, id, c.vcpu)?;
            ctx.guest().write(c.ctxt.addr(), &context).map_err(|_| XenError::Efault)?;
            write_back(ctx, arg, op)
        }
        XEN_DOMCTL_SETTIMEOFFSET => {
            let offset = op.settimeoffset().time_offset_seconds;
            let wallclock = ctx.lifecycle.wallclock;
            let d = ctx.target(id, Action::Control)?;
            d.tools.time_offset_s = offset;
            let shared_info = d.shared_info;
            if let Some((sec, nsec)) = wallclock {
                crate::time::update_wallclock(ctx.mem, shared_info, sec.saturating_add_signed(offset), nsec);
            }
            Ok(0)
        }
        XEN_DOMCTL_SHADOW_OP => shadow_op(ctx, op, arg),
        XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE => {
            op.set_paging_mempool(XenDomctlPagingMempool { size: 0 });
            write_back(ctx, arg, op)
        }
        // A PV domain has no paging pool to size.
        XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE => Err(XenError::Eopnotsupp),
        cmd => Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_DOMCTL, Some(cmd.into()))),
    }
}

fn write_back(ctx: &mut Ctx, arg: u64, op: &XenDomctl) -> HcResult {
    ctx.guest().write(arg, op).map_err(|_| XenError::Efault)?;
    Ok(0)
}

/// Xen refuses operations that would pause the caller itself.
fn not_self(ctx: &Ctx, id: DomId) -> Result<(), XenError> {
    if id == ctx.domain.id {
        Err(XenError::Einval)
    } else {
        Ok(())
    }
}

/// Checks that vCPU `vcpu` of `d` exists: past `max_vcpus` is `-EINVAL`,
/// not yet allocated (`XEN_DOMCTL_max_vcpus`) `-ESRCH`.
fn vcpu_exists(d: &Domain, vcpu: u32) -> Result<usize, XenError> {
    if vcpu >= d.max_vcpus {
        return Err(XenError::Einval);
    }
    let index = vcpu as usize;
    if index < d.vcpus.len() || d.vcpus_allocated {
        Ok(index)
    } else {
        Err(XenError::Esrch)
    }
}

/// `XEN_DOMCTL_{set,get}vcpuaffinity`.
fn vcpu_affinity(ctx: &mut Ctx, id: DomId, set: bool, a: &mut XenDomctlVcpuaffinity) -> Result<(), XenError> {
    let index = vcpu_exists(ctx.target(id, Action::Control)?, a.vcpu)?;
    let all = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT | XEN_VCPUAFFINITY_FORCE;
    if a.flags & !all != 0 || a.flags & (XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT) == 0 {
        return Err(XenError::Einval);
    }
    let (online, nr_cpus) = (ctx.sched.online_mask(), ctx.sched.nr_cpus());
    let (mut hard, mut soft) = ctx.target(id, Action::Control)?.tools.affinity(index);
    if set {
        if a.flags & XEN_VCPUAFFINITY_HARD != 0 {
            let new = bitmap::read(ctx, &a.cpumap_hard, nr_cpus)?;
            // Xen's vcpu_set_affinity: not disjoint from the pool's CPUs.
            if new & online == 0 {
                return Err(XenError::Einval);
            }
            hard = new;
        }
        if a.flags & XEN_VCPUAFFINITY_SOFT != 0 {
            soft = bitmap::read(ctx, &a.cpumap_soft, nr_cpus)?;
        }
        let d = ctx.target(id, Action::Control)?;
        let slots = (d.max_vcpus as usize).max(index + 1);
        d.tools.vcpu_affinity.resize(slots, (u64::MAX, u64::MAX));
        if let Some(slot) = d.tools.vcpu_affinity.get_mut(index) {
            *slot = (hard, soft);
        }
        // Its CPU's next exit looks whether it may stay there.
        if let Some(v) = d.vcpus.get_mut(index) {
            v.note_exit_work();
        }
        // The scheduler honours the hard affinity from the next pick on;
        // a vCPU on a CPU it leaves out moves at that CPU's next entry
        // (which the system's kicks bring about). One not running moves
        // at once (Xen's vcpu_migrate picks its new CPU now).
        if let Some(v) = d.vcpus.get_mut(index) {
            let allowed = hard & online;
            if v.running_on.is_none() && allowed & (1 << v.processor.min(63)) == 0 && allowed != 0 {
                v.processor = allowed.trailing_zeros() as usize;
            }
        }
        // What comes back: the effective affinities (Xen: hard within the
        // pool's CPUs, soft within those and the hard affinity).
        soft &= hard;
    }
    if a.flags & XEN_VCPUAFFINITY_HARD != 0 {
        bitmap::write(ctx, &a.cpumap_hard, hard & online, nr_cpus)?;
    }
    if a.flags & XEN_VCPUAFFINITY_SOFT != 0 {
        bitmap::write(ctx, &a.cpumap_soft, soft & online, nr_cpus)?;
    }
    Ok(())
}

/// `XEN_DOMCTL_getvcpuinfo`: a vCPU not yet given a context is offline.
fn vcpu_info(ctx: &mut Ctx, id: DomId, info: &mut XenDomctlGetvcpuinfo) -> Result<(), XenError> {
    let (me, my_vcpu, now) = (ctx.domain.id, ctx.vcpu, ctx.now_ns);
    let here = ctx.domain.vcpus.get(my_vcpu).and_then(|v| v.running_on);
    let d = ctx.target(id, Action::Control)?;
    let index = vcpu_exists(d, info.vcpu)?;
    let alive = d.is_alive();
    (info.online, info.blocked, info.running, info.cpu_time, info.cpu) = (0, 0, 0, 0, 0);
    if let Some(v) = d.vcpus.get(index) {
        info.online = u8::from(alive && !v.down);
        info.blocked = u8::from(v.blocked || v.poll.is_some());
        // The caller, and a vCPU another CPU runs (on one CPU, only the
        // caller is on it; `running_on` is cleared only with guests on
        // several CPUs, so one naming the caller's CPU is not running).
        let elsewhere = v.running_on.is_some_and(|c| Some(c) != here);
        info.running = u8::from((id == me && index == my_vcpu) || elsewhere);
        info.cpu = v.processor as u32;
        let current = if v.runstate.state == RUNSTATE_RUNNING { now.saturating_sub(v.runstate.entry_ns) } else { 0 };
        info.cpu_time = v.runstate.time[RUNSTATE_RUNNING].saturating_add(current);
    }
    Ok(())
}

/// `XEN_DOMCTL_getvcpucontext`: vCPU `vcpu`'s state as Xen's
/// `arch_get_info_guest` reports a 64-bit PV one.
fn vcpu_context(ctx: &mut Ctx, id: DomId, vcpu: u32) -> Result<VcpuGuestContext, XenError> {
    let (me, my_vcpu) = (ctx.domain.id, ctx.vcpu);
    let d = ctx.target(id, Action::Control)?;
    let index = vcpu_exists(d, vcpu).map_err(|_| XenError::Einval)?;
    if id == me && index == my_vcpu {
        // Not the running vCPU itself (Xen cannot pause it).
        return Err(XenError::Einval);
    }
    let v = d.vcpus.get(index).ok_or(XenError::Enodata)?;
    let mut c = VcpuGuestContext::new_zeroed();
    if let Some(image) = v.fxsave_image() {
        c.fpu_ctxt = image;
    }
    c.flags = guest_abi::arch_x86::VGCF_I387_VALID;
    if d.is_alive() && !v.down {
        c.flags |= VGCF_ONLINE;
    }
    if v.kernel_mode() {
        c.flags |= VGCF_IN_KERNEL;
    }
    if v.callbacks.failsafe.mask_events {
        c.flags |= VGCF_FAILSAFE_DISABLES_EVENTS;
    }
    if v.callbacks.syscall.mask_events {
        c.flags |= VGCF_SYSCALL_DISABLES_EVENTS;
    }
    let r = &v.regs;
    let u = &mut c.user_regs;
    (u.r15, u.r14, u.r13, u.r12, u.rbp, u.rbx) = (r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx);
    (u.r11, u.r10, u.r9, u.r8, u.rax, u.rcx) = (r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx);
    (u.rdx, u.rsi, u.rdi, u.rip, u.rsp) = (r.rdx, r.rsi, r.rdi, r.rip, r.rsp);
    // The guest's view: ring-3 selectors and IOPL as it set it virtually.
    (u.cs, u.ss) = (r.cs as u16, r.ss as u16);
    u.rflags = (r.rflags & !0x3000) | (u64::from(v.iopl) << 12);
    let s = &v.segments;
    (u.ds, u.es, u.fs, u.gs) = (s.ds, s.es, s.fs, s.gs);
    for (i, (slot, t)) in c.trap_ctxt.iter_mut().zip(v.traps.iter()).enumerate() {
        if t.address != 0 {
            (slot.vector, slot.flags, slot.cs, slot.address) = (i as u8, t.flags, t.cs, t.address);
        }
    }
    (c.ldt_base, c.ldt_ents) = (v.ldt_base, u64::from(v.ldt_ents));
    for (slot, frame) in c.gdt_frames.iter_mut().zip(v.gdt_frames.iter()) {
        *slot = frame.0;
    }
    c.gdt_ents = (v.gdt_frames.len() as u64) * 512;
    (c.kernel_ss, c.kernel_sp) = (u64::from(guest_abi::arch_x86::FLAT_KERNEL_SS), v.kernel_sp());
    c.ctrlreg[0] = CR0_PV | if v.fpu_ts { CR0_TS } else { 0 };
    // An uninitialised vCPU has no page tables.
    if v.initialised {
        c.ctrlreg[3] = v.kernel_l4.0 << 12;
        c.ctrlreg[1] = v.user_l4.map_or(0, |m| m.0 << 12);
    }
    c.debugreg = v.debugreg;
    c.event_callback_eip = v.callbacks.event.address;
    c.failsafe_callback_eip = v.callbacks.failsafe.address;
    c.syscall_callback_eip = v.callbacks.syscall.address;
    c.vm_assist = d.vm_assist;
    c.fs_base = s.fs_base;
    (c.gs_base_kernel, c.gs_base_user) = match v.kernel_mode() {
        true => (s.gs_base, s.shadow_gs_base),
        false => (s.shadow_gs_base, s.gs_base),
    };
    Ok(c)
}

/// `XEN_DOMCTL_set_cpu_policy`: checked as Xen's `update_domain_cpu_policy`
/// checks the shape of what it is given; the offending leaf or MSR comes
/// back in `err_*`.
fn set_cpu_policy(ctx: &mut Ctx, op: &mut XenDomctl, arg: u64) -> HcResult {
    let id = op.domain;
    not_self(ctx, id)?;
    if ctx.target(id, Action::Control)?.tools.creation_finished {
        // No changing once the domain has run.
        return Err(XenError::Eexist);
    }
    let mut p = op.cpu_policy();
    if p.nr_leaves > cpu_policy::MAX_LEAVES || p.nr_msrs > cpu_policy::MAX_MSRS {
        return Err(XenError::E2big);
    }
    let mut leaves = alloc::vec::Vec::with_capacity(p.nr_leaves as usize);
    for i in 0..u64::from(p.nr_leaves) {
        let at = p.leaves.element_addr(i).ok_or(XenError::Efault)?;
        leaves.push(ctx.guest().read::<CpuidLeaf>(at).map_err(|_| XenError::Efault)?);
    }
    let mut msrs = alloc::vec::Vec::with_capacity(p.nr_msrs as usize);
    for i in 0..u64::from(p.nr_msrs) {
        let at = p.msrs.element_addr(i).ok_or(XenError::Efault)?;
        msrs.push(ctx.guest().read::<MsrEntry>(at).map_err(|_| XenError::Efault)?);
    }
    let bad = cpu_policy::check_leaves(&leaves).and_then(|()| cpu_policy::check_msrs(&msrs));
    let errno = match bad {
        Ok(()) => return Ok(0),
        Err(BadPolicy::Leaf(leaf, subleaf)) => {
            (p.err_leaf, p.err_subleaf) = (leaf, subleaf);
            XenError::Erange
        }
        Err(BadPolicy::Msr(msr, flags)) => {
            p.err_msr = msr;
            if flags {
                XenError::Einval
            } else {
                XenError::Erange
            }
        }
    };
    op.set_cpu_policy(p);
    write_back(ctx, arg, op)?;
    Err(errno)
}

/// `XEN_DOMCTL_shadow_op` as a Xen without shadow paging answers it for
/// a PV domain: log-dirty mode is off and cannot be turned on, there is
/// no shadow pool.
fn shadow_op(ctx: &mut Ctx, op: &mut XenDomctl, arg: u64) -> HcResult {
    let id = op.domain;
    not_self(ctx, id)?;
    let d = ctx.target(id, Action::Control)?;
    if matches!(d.state, crate::domain::DomainState::Dying(_) | crate::domain::DomainState::Dead(_)) {
        return Ok(0);
    }
    if d.vcpus.is_empty() && !d.vcpus_allocated {
        return Err(XenError::Einval);
    }
    let mut s = op.shadow_op();
    match s.op {
        XEN_DOMCTL_SHADOW_OP_OFF => Ok(0),
        XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY => Err(XenError::Eopnotsupp),
        XEN_DOMCTL_SHADOW_OP_ENABLE if s.mode & XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY != 0 => Err(XenError::Eopnotsupp),
        // Log-dirty mode is not on.
        XEN_DOMCTL_SHADOW_OP_CLEAN | XEN_DOMCTL_SHADOW_OP_PEEK => Err(XenError::Einval),
        XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION => {
            s.mb = 0;
            op.set_shadow_op(s);
            write_back(ctx, arg, op)
        }
        _ => Err(XenError::Einval),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA};
    use super::*;
    use crate::mm::Mfn;
    use guest_abi::sysctl::XenctlBitmap;
    use zerocopy::{FromBytes, IntoBytes};

    const NR: u64 = HYPERVISOR_DOMCTL as u64;
    /// Guest memory for the operations' buffers.
    const OUT: u64 = BUF_VA + 0x1000;

    /// The caller (d0, privileged) and d4, created and not yet started.
    fn world() -> World {
        let mut w = World::new(true);
        w.add_peer(test_domain(4, false, 10..14, Some(Mfn(10)), Mfn(15)));
        w.peers[0].tools.creation_finished = false;
        w
    }

    /// Adds domain `id`, created and given no vCPU yet, as `w.peers[1]`.
    fn add_unbuilt(w: &mut World, id: u16) {
        w.add_peer(test_domain(id, false, 0..0, None, Mfn(15)));
        w.peers[1].vcpus.clear();
        w.peers[1].vcpus_allocated = false;
    }

    fn call(w: &mut World, op: XenDomctl) -> (i64, XenDomctl) {
        w.poke(BUF_VA, op.as_bytes());
        let ret = w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]);
        (ret, XenDomctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenDomctl>())).unwrap())
    }

    fn map(va: u64, nr_bits: u32) -> XenctlBitmap {
        XenctlBitmap { bitmap: guest_abi::GuestHandle::from_ptr(va as *const u8), nr_bits, _pad: [0; 4] }
    }

    fn affinity(w: &mut World, cmd: u32, dom: u16, vcpu: u32, flags: u32, hard: u8, soft: u8) -> (i64, u8, u8) {
        w.poke(OUT, &[hard, soft]);
        let mut op = XenDomctl::new(cmd, dom);
        op.set_vcpuaffinity(XenDomctlVcpuaffinity {
            vcpu,
            flags,
            cpumap_hard: map(OUT, 8),
            cpumap_soft: map(OUT + 1, 8),
        });
        let ret = call(w, op).0;
        let back = w.peek(OUT, 2);
        (ret, back[0], back[1])
    }

    #[test]
    fn vcpu_and_node_affinities_are_kept_and_checked() {
        let mut w = world();
        let both = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT;
        assert_eq!(affinity(&mut w, XEN_DOMCTL_GETVCPUAFFINITY, 4, 0, both, 0, 0), (0, 1, 1), "all CPUs");
        assert_eq!(affinity(&mut w, XEN_DOMCTL_SETVCPUAFFINITY, 4, 0, both, 0xff, 0), (0, 1, 0));
        assert_eq!(affinity(&mut w, XEN_DOMCTL_GETVCPUAFFINITY, 4, 0, both, 0, 0), (0, 1, 0), "soft kept");
        assert_eq!(w.peers[0].tools.affinity(0), (1, 0));
        let refusals = [
            (XEN_DOMCTL_SETVCPUAFFINITY, 4, 0, XEN_VCPUAFFINITY_HARD, 0, -22, "no CPU the pool has"),
            (XEN_DOMCTL_SETVCPUAFFINITY, 4, 1, both, 1, -22, "past max_vcpus"),
            (XEN_DOMCTL_SETVCPUAFFINITY, 4, 0, XEN_VCPUAFFINITY_FORCE, 1, -22, "neither hard nor soft"),
            (XEN_DOMCTL_SETVCPUAFFINITY, 4, 0, 8, 1, -22, "an unknown flag"),
            (XEN_DOMCTL_SETVCPUAFFINITY, 9, 0, both, 1, -3, "no domain"),
        ];
        for (cmd, dom, vcpu, flags, hard, errno, what) in refusals {
            assert_eq!(affinity(&mut w, cmd, dom, vcpu, flags, hard, 1).0, errno, "{what}");
        }
        add_unbuilt(&mut w, 5);
        assert_eq!(affinity(&mut w, XEN_DOMCTL_GETVCPUAFFINITY, 5, 0, both, 0, 0).0, -3, "before max_vcpus: ESRCH");
        let node = |w: &mut World, cmd: u32, bits: u8| {
            w.poke(OUT, &[bits]);
            let mut op = XenDomctl::new(cmd, 4);
            op.set_nodeaffinity(XenDomctlNodeaffinity { nodemap: map(OUT, 8) });
            (call(w, op).0, w.peek(OUT, 1)[0])
        };
        assert_eq!(node(&mut w, XEN_DOMCTL_SETNODEAFFINITY, 0b10), (-22, 0b10), "disjoint from node 0");
        assert_eq!(node(&mut w, XEN_DOMCTL_SETNODEAFFINITY, 0b11).0, 0);
        assert_eq!(node(&mut w, XEN_DOMCTL_GETNODEAFFINITY, 0xff), (0, 1));
    }

    #[test]
    fn with_two_cpus_a_hard_affinity_names_either_and_vcpu_info_says_where_it_runs() {
        let mut w = world();
        w.sched.set_cpus(2);
        let both = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT;
        assert_eq!(affinity(&mut w, XEN_DOMCTL_GETVCPUAFFINITY, 4, 0, both, 0, 0), (0, 0b11, 0b11), "both CPUs");
        w.peers[0].vcpus[0].exit_work = false;
        assert_eq!(affinity(&mut w, XEN_DOMCTL_SETVCPUAFFINITY, 4, 0, XEN_VCPUAFFINITY_HARD, 0b10, 0).0, 0);
        assert_eq!(w.peers[0].tools.affinity(0).0, 0b10);
        assert!(w.peers[0].vcpus[0].exit_work, "its CPU's next exit looks whether it may stay");
        assert!(w.peers[0].tools.may_run_on(0, 1) && !w.peers[0].tools.may_run_on(0, 0));
        let hard = XEN_VCPUAFFINITY_HARD;
        assert_eq!(affinity(&mut w, XEN_DOMCTL_SETVCPUAFFINITY, 4, 0, hard, 0b100, 0).0, -22, "CPU 2 is not up");
        // A vCPU another CPU runs is running, on that CPU.
        let info = |w: &mut World| {
            let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, 4);
            op.set_getvcpuinfo(XenDomctlGetvcpuinfo::new_zeroed());
            let (ret, back) = call(w, op);
            let i = back.getvcpuinfo();
            (ret, i.running, i.cpu)
        };
        (w.dom.vcpus[0].running_on, w.peers[0].vcpus[0].running_on) = (Some(0), Some(1));
        w.peers[0].vcpus[0].processor = 1;
        assert_eq!(info(&mut w), (0, 1, 1));
        // Saved by that CPU: not running, last on CPU 1.
        w.peers[0].vcpus[0].running_on = None;
        assert_eq!(info(&mut w), (0, 0, 1));
    }

    #[test]
    fn tsc_modes_handle_address_size_and_time_offset() {
        let mut w = world();
        let tsc = |w: &mut World, cmd: u32, dom: u16, mode: u32| {
            let mut op = XenDomctl::new(cmd, dom);
            let mut t = XenDomctlTscInfo::new_zeroed();
            (t.tsc_mode, t.incarnation) = (mode, 6);
            op.set_tsc_info(t);
            let (ret, back) = call(w, op);
            (ret, back.tsc_info())
        };
        assert_eq!(tsc(&mut w, XEN_DOMCTL_SETTSCINFO, 4, TSC_MODE_NEVER_EMULATE).0, 0);
        let (ret, info) = tsc(&mut w, XEN_DOMCTL_GETTSCINFO, 4, 0);
        assert_eq!((ret, info.tsc_mode, info.incarnation, info.gtsc_khz), (0, 2, 7, 0));
        assert_eq!(tsc(&mut w, XEN_DOMCTL_SETTSCINFO, 4, TSC_MODE_ALWAYS_EMULATE).0, -95, "no TSC emulation");
        assert_eq!(tsc(&mut w, XEN_DOMCTL_SETTSCINFO, 4, 3).0, -22, "an unknown mode");
        assert_eq!(tsc(&mut w, XEN_DOMCTL_SETTSCINFO, 0, 0).0, -22, "the caller itself");
        assert_eq!(tsc(&mut w, XEN_DOMCTL_SETTSCINFO, 4, TSC_MODE_DEFAULT).0, 0);
        assert_eq!(tsc(&mut w, XEN_DOMCTL_GETTSCINFO, 4, 0).1.gtsc_khz, 1_000_000, "native: the CPU's");
        let size = |w: &mut World, cmd: u32, size: u32| {
            let mut op = XenDomctl::new(cmd, 4);
            op.set_address_size(XenDomctlAddressSize { size });
            let (ret, back) = call(w, op);
            (ret, back.address_size().size)
        };
        assert_eq!(size(&mut w, XEN_DOMCTL_SET_ADDRESS_SIZE, 64).0, 0);
        assert_eq!(size(&mut w, XEN_DOMCTL_SET_ADDRESS_SIZE, 32).0, -95, "no 32-bit PV");
        assert_eq!(size(&mut w, XEN_DOMCTL_SET_ADDRESS_SIZE, 48).0, -22);
        assert_eq!(size(&mut w, XEN_DOMCTL_GET_ADDRESS_SIZE, 0), (0, 64));
        let mut op = XenDomctl::new(XEN_DOMCTL_SETDOMAINHANDLE, 4);
        op.set_setdomainhandle([9; 16]);
        assert_eq!(call(&mut w, op).0, 0);
        assert_eq!(w.peers[0].handle, [9; 16]);
        w.lifecycle.wallclock = Some((1000, 0));
        let mut op = XenDomctl::new(XEN_DOMCTL_SETTIMEOFFSET, 4);
        op.set_settimeoffset(XenDomctlSettimeoffset { time_offset_seconds: -10 });
        assert_eq!(call(&mut w, op).0, 0);
        assert_eq!(&w.mem.0[15][0xc04..0xc08], &990u32.to_le_bytes(), "the domain's wallclock moved");
    }

    #[test]
    fn vcpu_info_and_context() {
        let mut w = world();
        w.peers[0].vcpus[0].regs.rip = 0x1234;
        w.peers[0].vcpus[0].blocked = true;
        let info = |w: &mut World, dom: u16, vcpu: u32| {
            let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, dom);
            let mut i = XenDomctlGetvcpuinfo::new_zeroed();
            i.vcpu = vcpu;
            op.set_getvcpuinfo(i);
            let (ret, back) = call(w, op);
            let i = back.getvcpuinfo();
            (ret, i.online, i.blocked, i.running)
        };
        assert_eq!(info(&mut w, 4, 0), (0, 1, 1, 0));
        assert_eq!(info(&mut w, 0, 0), (0, 1, 0, 1), "the caller is the one running");
        assert_eq!(info(&mut w, 4, 1).0, -22, "past max_vcpus");
        let context = |w: &mut World, dom: u16, to: u64| {
            let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUCONTEXT, dom);
            let ctxt = guest_abi::GuestHandle::from_ptr(to as *const VcpuGuestContext);
            op.set_vcpucontext(XenDomctlVcpucontext { vcpu: 0, _pad0: [0; 4], ctxt });
            call(w, op).0
        };
        assert_eq!(context(&mut w, 4, OUT), 0);
        let size = core::mem::size_of::<VcpuGuestContext>();
        let c = VcpuGuestContext::read_from_bytes(&w.peek(OUT, size)).unwrap();
        assert_eq!((c.user_regs.rip, c.flags & VGCF_ONLINE, c.ctrlreg[3]), (0x1234, VGCF_ONLINE, 10 << 12));
        assert_eq!(context(&mut w, 0, OUT), -22, "the running vCPU itself");
        assert_eq!(context(&mut w, 4, 0x10), -14, "a bad buffer");
        add_unbuilt(&mut w, 5);
        w.peers[1].vcpus_allocated = true;
        assert_eq!(context(&mut w, 5, OUT), -61, "not yet initialised: ENODATA");
        assert_eq!(info(&mut w, 5, 0), (0, 0, 0, 0), "allocated, not initialised: offline");
    }

    #[test]
    fn cpu_policies_are_checked_and_fixed_once_running() {
        let mut w = world();
        let mut op = XenDomctl::new(XEN_DOMCTL_GET_CPU_POLICY, 4);
        op.set_cpu_policy(XenDomctlCpuPolicy::new_zeroed());
        let (ret, back) = call(&mut w, op);
        assert_eq!((ret, back.cpu_policy().nr_leaves, back.cpu_policy().nr_msrs), (0, cpu_policy::MAX_LEAVES, 2));
        let set = |w: &mut World, dom: u16, leaves: &[CpuidLeaf], nr: u32| {
            for (i, l) in leaves.iter().enumerate() {
                w.poke(OUT + 24 * i as u64, l.as_bytes());
            }
            let mut p = XenDomctlCpuPolicy::new_zeroed();
            (p.nr_leaves, p.leaves) = (nr, guest_abi::GuestHandle::from_ptr(OUT as *const CpuidLeaf));
            let mut op = XenDomctl::new(XEN_DOMCTL_SET_CPU_POLICY, dom);
            op.set_cpu_policy(p);
            let (ret, back) = call(w, op);
            (ret, back.cpu_policy().err_leaf, back.cpu_policy().err_subleaf)
        };
        let none = guest_abi::arch_x86::XEN_CPUID_NO_SUBLEAF;
        let good = CpuidLeaf { leaf: 1, subleaf: none, a: 0, b: 0, c: 0, d: 0 };
        assert_eq!(set(&mut w, 4, &[good], 1).0, 0);
        let bad = CpuidLeaf { leaf: 0x20, ..good };
        assert_eq!(set(&mut w, 4, &[good, bad], 2), (-34, 0x20, none), "out of range: ERANGE, named");
        assert_eq!(set(&mut w, 4, &[], cpu_policy::MAX_LEAVES + 1).0, -7, "too many: E2BIG");
        assert_eq!(set(&mut w, 0, &[good], 1).0, -22, "the caller itself");
        w.peers[0].tools.creation_finished = true;
        assert_eq!(set(&mut w, 4, &[good], 1).0, -17, "once running: EEXIST");
    }

    #[test]
    fn shadow_paging_and_its_pool_are_absent() {
        let mut w = world();
        let shadow = |w: &mut World, dom: u16, op_: u32, mode: u32| {
            let mut op = XenDomctl::new(XEN_DOMCTL_SHADOW_OP, dom);
            let mut s = XenDomctlShadowOp::new_zeroed();
            (s.op, s.mode, s.mb) = (op_, mode, 7);
            op.set_shadow_op(s);
            let (ret, back) = call(w, op);
            (ret, back.shadow_op().mb)
        };
        assert_eq!(shadow(&mut w, 4, XEN_DOMCTL_SHADOW_OP_OFF, 0).0, 0, "log-dirty already off");
        assert_eq!(shadow(&mut w, 4, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, 0), (0, 0), "no pool");
        assert_eq!(shadow(&mut w, 4, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, 0).0, -95);
        let log_dirty = XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY;
        assert_eq!(shadow(&mut w, 4, XEN_DOMCTL_SHADOW_OP_ENABLE, log_dirty).0, -95);
        assert_eq!(shadow(&mut w, 4, XEN_DOMCTL_SHADOW_OP_CLEAN, 0).0, -22, "log-dirty is not on");
        assert_eq!(shadow(&mut w, 4, XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION, 0).0, -22);
        assert_eq!(shadow(&mut w, 0, XEN_DOMCTL_SHADOW_OP_OFF, 0).0, -22, "the caller itself");
        let (ret, back) = call(&mut w, XenDomctl::new(XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE, 4));
        assert_eq!((ret, back.paging_mempool().size), (0, 0));
        assert_eq!(call(&mut w, XenDomctl::new(XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE, 4)).0, -95);
    }
}
