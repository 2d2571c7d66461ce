//! `domctl`: the toolstack's domain-control operations, for a privileged
//! domain: the domain lifecycle (`createdomain`, `max_vcpus`,
//! `setvcpucontext`, `pausedomain`, `unpausedomain`, `destroydomain`,
//! `getdomaininfo`, `max_mem`) and
//! `scheduler_op` with the credit scheduler's interface (weight and cap,
//! which are exactly its own parameters). Other commands answer `-ENOSYS`
//! until the toolstack needs them.
//!
//! Semantics and errnos: Xen 4.17 `xen/common/domctl.c` (`do_domctl`:
//! interface version, then the domain, then the caller's privilege;
//! `createdomain`'s ID search from a rover; `getdomaininfo` describing the
//! first domain at or above the ID asked), `xen/common/domain.c`
//! (`sanitise_domain_config`, the toolstack pause count limited to 255,
//! `domain_kill`), `xen/common/sched/core.c` (`sched_adjust`) and
//! `sched/credit.c` (`csched_dom_cntl`: a weight of 0 and a cap of 0xffff
//! leave the value as it is).
//!
//! `max_vcpus` creates the vCPUs `createdomain` fixed (1 to
//! [`crate::domain::MAX_VCPUS`]), down and uninitialised, as Xen's
//! `vcpu_create` does; `setvcpucontext` gives any of them its context, as
//! Xen's `arch_set_info_guest` does for a PV one
//! ([`super::vcpu_context`]).
//!
//! Where xenish differs: only PV domains exist (`XEN_DOMCTL_CDF_hvm` is
//! `-EINVAL`, as on a Xen without HVM support); a domain may not destroy
//! itself (`-EINVAL`); `setvcpucontext` sets up a vCPU once (again is
//! `-EEXIST`; Xen would reload the registers of an initialised one).

use guest_abi::domctl::*;
use guest_abi::errno::XenError;
use guest_abi::xen::DOMID_FIRST_RESERVED;

use super::xsm::Action;
use super::{Ctx, HcResult, Outcome};
use guest_abi::arch_x86::VcpuGuestContext;

use crate::domain::{DomId, Domain, DomainState, RUNSTATE_RUNNING};
use crate::mm::frame_table::{Owner, PageType};
use crate::mm::Mfn;
use crate::sched::{SchedParams, Scheduler, VcpuRef};

/// A `putinfo` cap that leaves the cap as it is.
const CAP_UNCHANGED: u16 = 0xffff;
/// Most toolstack pauses of one domain (Xen's limit).
const MAX_PAUSES: u8 = 255;

/// `HYPERVISOR_domctl(op)`.
pub fn domctl(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    match serve(ctx, args[0]) {
        // A restartable command (destroydomain): the same call again.
        Err(XenError::Erestart) => Outcome::Continue(args),
        r => r.into(),
    }
}

fn serve(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut op: XenDomctl = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(XenError::Eacces);
    }
    // The commands that do not name an existing domain.
    match op.cmd {
        XEN_DOMCTL_CREATEDOMAIN => {
            ctx.privileged()?;
            op.domain = create(ctx, op.domain, &op.createdomain())?;
            return write_back(ctx, arg, &op);
        }
        XEN_DOMCTL_GETDOMAININFO => {
            ctx.privileged()?;
            if op.domain >= DOMID_FIRST_RESERVED {
                return Err(XenError::Einval);
            }
            let info = domain_info(ctx, op.domain).ok_or(XenError::Esrch)?;
            op.domain = info.domain;
            op.set_getdomaininfo(info);
            return write_back(ctx, arg, &op);
        }
        _ => {}
    }
    let me = ctx.domain.id;
    ctx.target(op.domain, Action::Control)?;
    let index = ctx.peers.index_of(op.domain, me).ok_or(XenError::Esrch)?;
    if matches!(
        op.cmd,
        XEN_DOMCTL_PAUSEDOMAIN | XEN_DOMCTL_DESTROYDOMAIN | XEN_DOMCTL_SETVCPUCONTEXT | XEN_DOMCTL_GETVCPUCONTEXT
    ) {
        sync_vcpus(ctx, op.domain, index)?;
    }
    match op.cmd {
        XEN_DOMCTL_SCHEDULER_OP => {
            let mut s = op.scheduler_op();
            scheduler_op(ctx.sched, index, &mut s)?;
            op.set_scheduler_op(s);
            write_back(ctx, arg, &op)
        }
        XEN_DOMCTL_PAUSEDOMAIN => pause(ctx, op.domain, index, true),
        XEN_DOMCTL_UNPAUSEDOMAIN => pause(ctx, op.domain, index, false),
        XEN_DOMCTL_DESTROYDOMAIN => destroy(ctx, op.domain),
        XEN_DOMCTL_SETVCPUCONTEXT => set_vcpu_context(ctx, op.domain, &op.vcpucontext()),
        // Xen 4.17: the number fixed at createdomain, not the caller's own.
        XEN_DOMCTL_MAX_VCPUS => max_vcpus(ctx, op.domain, index, op.max_vcpus().max),
        // `xen_domctl_hypercall_init { uint64_aligned_t gmfn; }`.
        XEN_DOMCTL_HYPERCALL_INIT => hypercall_init(ctx, op.domain, Mfn(op.u[0])),
        XEN_DOMCTL_MAX_MEM => {
            let pages = (op.max_mem().max_memkb >> 2).min(u64::from(u32::MAX));
            ctx.target(op.domain, Action::Control)?.max_pages = pages;
            Ok(0)
        }
        _ => super::domctl_tools::serve(ctx, &mut op, arg),
    }
}

/// `XEN_DOMCTL_hypercall_init`: writes the hypercall page into frame
/// `gmfn` of the domain (a PV domain's gmfn is a machine frame), for a
/// kernel whose `XEN_ELFNOTE_HYPERCALL_PAGE` asks for one. As Xen's x86
/// `arch_do_domctl`: a frame the domain does not own is `-EINVAL`; one
/// that cannot be written (a page table, a descriptor page) is `-EPERM`.
fn hypercall_init(ctx: &mut Ctx, domain: DomId, gmfn: Mfn) -> HcResult {
    let id = ctx.target(domain, Action::Control)?.id;
    if ctx.ft.owner(gmfn) != Some(Owner::Domain(id)) {
        return Err(XenError::Einval);
    }
    if !matches!(ctx.ft.page_type(gmfn), PageType::None | PageType::Writable) {
        return Err(XenError::Eperm);
    }
    let page = ctx.mem.frame_mut(gmfn).ok_or(XenError::Einval)?;
    crate::builder::write_hypercall_page(page);
    Ok(0)
}

fn write_back(ctx: &mut Ctx, arg: u64, op: &XenDomctl) -> HcResult {
    ctx.guest().write(arg, op).map_err(|_| XenError::Efault)?;
    Ok(0)
}

/// Whether no domain (alive, dying, or just created) has ID `id`.
fn is_free_domid(ctx: &Ctx, id: DomId) -> bool {
    ctx.domain.id != id && ctx.peers.iter().all(|d| d.id != id) && ctx.lifecycle.created.iter().all(|d| d.id != id)
}

/// `XEN_DOMCTL_createdomain`: checks the configuration as Xen's
/// `sanitise_domain_config` does, picks the ID (`asked` if it is a free
/// one, else the next free one after the rover), and makes a paused domain
/// with a shared_info page and nothing else. Returns its ID.
fn create(ctx: &mut Ctx, asked: DomId, config: &XenDomctlCreatedomain) -> Result<DomId, XenError> {
    let known = XEN_DOMCTL_CDF_HVM
        | XEN_DOMCTL_CDF_HAP
        | XEN_DOMCTL_CDF_S3_INTEGRITY
        | XEN_DOMCTL_CDF_OOS_OFF
        | XEN_DOMCTL_CDF_XS_DOMAIN
        | XEN_DOMCTL_CDF_IOMMU
        | XEN_DOMCTL_CDF_NESTED_VIRT
        | XEN_DOMCTL_CDF_VPMU;
    let grant_version = config.grant_opts & XEN_DOMCTL_GRANT_VERSION_MASK;
    let bad = config.flags & !known != 0
        // No HVM, HAP, IOMMU, nested virtualization, vPMU or vmtrace here.
        || config.flags & (XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP | XEN_DOMCTL_CDF_IOMMU) != 0
        || config.flags & (XEN_DOMCTL_CDF_NESTED_VIRT | XEN_DOMCTL_CDF_VPMU) != 0
        || config.vmtrace_size != 0
        || !(1..=crate::domain::MAX_VCPUS).contains(&config.max_vcpus)
        || config.grant_opts & !XEN_DOMCTL_GRANT_VERSION_MASK != 0
        || !(1..=2).contains(&grant_version)
        || config.arch.misc_flags & !XEN_X86_MSR_RELAXED != 0;
    // Xen's grant_table_init: a negative size is the default; a table of
    // 1..=64 frames and at most 1024 maptrack frames.
    let mut gnttab = crate::gnttab::GrantTable::new();
    if bad || gnttab.set_limits(config.max_grant_frames, config.max_maptrack_frames).is_err() {
        return Err(XenError::Einval);
    }
    if config.arch.emulation_flags != 0 {
        // A PV domU emulates nothing (Xen's emulation_flags_ok).
        return Err(XenError::Eopnotsupp);
    }
    let id = if asked > 0 && asked < DOMID_FIRST_RESERVED {
        if !is_free_domid(ctx, asked) {
            return Err(XenError::Eexist);
        }
        asked
    } else {
        // Xen's search: from the rover on, wrapping to 1, never the rover.
        let rover = ctx.lifecycle.rover;
        let mut id = rover;
        let found = loop {
            id = if id.saturating_add(1) >= DOMID_FIRST_RESERVED { 1 } else { id + 1 };
            if id == rover {
                break None;
            }
            if is_free_domid(ctx, id) {
                break Some(id);
            }
            if rover == 0 && id == DOMID_FIRST_RESERVED - 1 {
                break None;
            }
        };
        let id = found.ok_or(XenError::Enomem)?;
        ctx.lifecycle.rover = id;
        id
    };
    let shared_info = ctx.frames.alloc().ok_or(XenError::Enomem)?;
    if ctx.ft.set_owner(shared_info, Owner::Xen).is_err() || ctx.mem.frame(shared_info).is_none() {
        let _ = ctx.ft.set_owner(shared_info, Owner::Free);
        ctx.frames.free(shared_info);
        return Err(XenError::Enomem);
    }
    crate::domain::init_shared_info(ctx.mem, shared_info);
    if let Some((sec, nsec)) = ctx.lifecycle.wallclock {
        crate::time::update_wallclock(ctx.mem, shared_info, sec, nsec);
    }
    let mut d = Domain::new(id, "domU", false, shared_info);
    (d.pause_count, d.handle, d.max_vcpus, d.vcpus_allocated) = (1, config.handle, config.max_vcpus, false);
    d.tools.creation_finished = false;
    // Xen's evtchn_init: no port above max_evtchn_port (0 leaves none).
    d.evtchn.set_max_port(config.max_evtchn_port);
    // Xen's grant_table_init: the highest grant-table version it may use.
    d.gnttab = gnttab;
    d.gnttab.max_version = grant_version as u8;
    ctx.lifecycle.created.push(d);
    crate::printk!("xenish: d{}: created by d{} (paused, no memory)", id, ctx.domain.id);
    Ok(id)
}

/// With guests on several CPUs: before an operation that reads or
/// replaces the state of domain `id`'s vCPUs (pause, destroy, get/set a
/// vCPU context), none of them may run on another CPU, whose registers
/// and FPU would then be newer than what the domain holds (Xen's
/// `vcpu_sleep_sync`). The big lock cannot be held while that CPU
/// deschedules them (it needs the lock), so the domain is held off every
/// CPU (`sync_pause`, which the other CPUs' next entry sees: the entry
/// that set it kicks them) and the call is continued (`-ERESTART`: the
/// same call again, the lock released in between) until none runs; then
/// the hold ends and the operation goes on. On one CPU no other vCPU is
/// ever running: nothing happens.
fn sync_vcpus(ctx: &mut Ctx, id: DomId, index: usize) -> Result<(), XenError> {
    let here = ctx.domain.vcpus.get(ctx.vcpu).and_then(|v| v.running_on);
    // The caller's own domain never waits for itself (the commands refuse
    // their caller's domain anyway).
    let Some(d) = ctx.peers.get_mut(id).filter(|d| d.id != ctx.domain.id) else { return Ok(()) };
    let elsewhere = d.vcpus.iter().any(|v| v.running_on.is_some() && v.running_on != here);
    if elsewhere {
        if !d.sync_pause {
            // One pause more while it waits (past the toolstack's limit if
            // need be: the hold ends with this call).
            d.sync_pause = true;
            d.pause_count = d.pause_count.saturating_add(1);
        }
        return Err(XenError::Erestart);
    }
    if d.sync_pause {
        d.sync_pause = false;
        d.pause_count = d.pause_count.saturating_sub(1);
        let runs = d.is_running();
        for (v, vcpu) in d.vcpus.iter().enumerate() {
            if runs && vcpu.runnable() {
                ctx.sched.wake(VcpuRef { domain: index, vcpu: v });
            }
        }
    }
    Ok(())
}

/// `XEN_DOMCTL_pausedomain` / `unpausedomain` of domain `id` (at system
/// index `index`): one toolstack pause more or less; the caller may not
/// pause itself (`-EINVAL`), pauses stop at 255 (`-EOVERFLOW`), and an
/// unpause needs a pause (`-EINVAL`).
fn pause(ctx: &mut Ctx, id: DomId, index: usize, more: bool) -> HcResult {
    if id == ctx.domain.id {
        return Err(XenError::Einval);
    }
    let d = ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
    d.pause_count = match (more, d.pause_count) {
        (true, MAX_PAUSES) => return Err(XenError::Eoverflow),
        (true, n) => n + 1,
        (false, 0) => return Err(XenError::Einval),
        (false, n) => n - 1,
    };
    if !more {
        // Xen's domain_unpause_by_systemcontroller.
        d.tools.creation_finished = true;
    }
    let runs = d.is_running();
    for (v, vcpu) in d.vcpus.iter().enumerate() {
        let who = VcpuRef { domain: index, vcpu: v };
        if !runs {
            ctx.sched.sleep(who);
        } else if vcpu.runnable() {
            ctx.sched.wake(who);
        }
    }
    Ok(0)
}

/// `XEN_DOMCTL_destroydomain` of domain `id`: marks it dying; the system
/// takes it apart in bounded steps after each hypercall
/// ([`crate::lifecycle::destroy_step`]), and until the last is done the
/// call is continued (Xen's `-ERESTART` from `domain_kill`): it returns
/// once the domain is dead or a zombie held by others' mappings.
/// Destroying a dying domain again is fine, as in Xen; a domain may not
/// destroy itself (`-EINVAL`).
fn destroy(ctx: &mut Ctx, id: DomId) -> HcResult {
    if id == ctx.domain.id {
        return Err(XenError::Einval);
    }
    let d = ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
    if !d.is_destroyed() {
        d.state = DomainState::Dying(d.shutdown_reason());
        crate::printk!("xenish: d{}: destroyed by d{}", id, ctx.domain.id);
    }
    if matches!(d.state, DomainState::Dying(_)) && !d.torn_down {
        return Err(XenError::Erestart);
    }
    d.destroy_acked = true;
    Ok(0)
}

/// `XEN_DOMCTL_setvcpucontext`: vCPU `c.vcpu` of domain `id` (at system
/// index `index`) gets the context the toolstack built
/// ([`super::vcpu_context::set_info_guest`]).
fn set_vcpu_context(ctx: &mut Ctx, id: DomId, c: &XenDomctlVcpucontext) -> HcResult {
    if id == ctx.domain.id || c.ctxt.is_null() {
        return Err(XenError::Einval);
    }
    let target = ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
    // Xen: the vCPU must exist (XEN_DOMCTL_max_vcpus made it).
    let idx = c.vcpu as usize;
    if c.vcpu >= target.max_vcpus || idx >= target.vcpus.len() {
        return Err(XenError::Einval);
    }
    let g: VcpuGuestContext = ctx.guest().read(c.ctxt.addr()).map_err(|_| XenError::Efault)?;
    let fpu_size = ctx.platform.fpu_area_size();
    let d = ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
    if !d.is_alive() {
        return Err(XenError::Einval);
    }
    let mut mmu = crate::mm::pt_validate::Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    super::vcpu_context::set_info_guest(d, idx, &g, &mut mmu, fpu_size)?;
    Ok(0)
}

/// `XEN_DOMCTL_max_vcpus` of domain `id` (at system index `index`): creates
/// its vCPUs, as many as `createdomain` fixed and the caller repeats, down
/// and uninitialised; each is a scheduling entity with the domain's
/// parameters, asleep until it comes up.
fn max_vcpus(ctx: &mut Ctx, id: DomId, index: usize, max: u32) -> HcResult {
    let fpu_size = ctx.platform.fpu_area_size();
    let me = ctx.domain.id;
    let d = ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
    if d.id == me || max != d.max_vcpus {
        return Err(XenError::Einval);
    }
    let before = d.vcpus.len();
    d.create_offline_vcpus(fpu_size, ctx.now_ns);
    d.vcpus_allocated = true;
    let params = ctx.sched.params(index).unwrap_or_default();
    for vcpu in before..d.vcpus.len() {
        let who = VcpuRef { domain: index, vcpu };
        ctx.sched.add(who, params);
        ctx.sched.sleep(who);
    }
    Ok(0)
}

/// `XEN_DOMCTL_getdomaininfo`: the first existing domain whose ID is `id`
/// or more, as Xen's `getdomaininfo` fills it in.
pub(super) fn domain_info(ctx: &Ctx, id: DomId) -> Option<XenDomctlGetdomaininfo> {
    let me = &*ctx.domain;
    let all = core::iter::once(me).chain(ctx.peers.iter());
    let d = all.filter(|d| d.id >= id).min_by_key(|d| d.id)?;
    let mut flags = 0;
    match d.state {
        DomainState::Running => {}
        DomainState::Shutdown(reason) => {
            let code = u32::from(shutdown_code(reason));
            flags |= XEN_DOMINF_SHUTDOWN | (code & XEN_DOMINF_SHUTDOWNMASK) << XEN_DOMINF_SHUTDOWNSHIFT;
        }
        DomainState::Dying(_) | DomainState::Dead(_) => flags |= XEN_DOMINF_DYING,
    }
    if d.pause_count != 0 {
        flags |= XEN_DOMINF_PAUSED;
    }
    // Xen: blocked unless a vCPU that is up is not; running if the caller
    // is one of its vCPUs (one CPU: only the caller is on it).
    if d.vcpus.iter().all(|v| v.down || v.blocked || v.poll.is_some()) {
        flags |= XEN_DOMINF_BLOCKED;
    }
    if d.id == me.id {
        flags |= XEN_DOMINF_RUNNING;
    }
    let cpu_time = d.vcpus.iter().map(|v| {
        let current =
            if v.runstate.state == RUNSTATE_RUNNING { ctx.now_ns.saturating_sub(v.runstate.entry_ns) } else { 0 };
        v.runstate.time[RUNSTATE_RUNNING].saturating_add(current)
    });
    let nr_vcpus = d.vcpus.len() as u32;
    let nr_online = d.online_vcpus() as u32;
    Some(XenDomctlGetdomaininfo {
        domain: d.id,
        pad1: 0,
        flags,
        tot_pages: d.tot_pages(),
        max_pages: d.max_pages,
        outstanding_pages: d.outstanding_pages(),
        shr_pages: 0,
        paged_pages: 0,
        shared_info_frame: d.shared_info.0,
        cpu_time: cpu_time.fold(0u64, u64::saturating_add),
        nr_online_vcpus: nr_online,
        max_vcpu_id: if nr_vcpus == 0 { XEN_INVALID_MAX_VCPU_ID } else { nr_vcpus - 1 },
        ssidref: 0,
        handle: d.handle,
        cpupool: 0,
        // A PV guest's physical addresses are machine addresses: 52 bits.
        gpaddr_bits: 52,
        pad2: [0; 7],
        arch_config: XenArchDomainconfig { emulation_flags: 0, misc_flags: 0 },
    })
}

/// The `SHUTDOWN_*` code of a reason.
fn shutdown_code(reason: crate::domain::ShutdownReason) -> u8 {
    use crate::domain::ShutdownReason::*;
    match reason {
        Poweroff => 0,
        Reboot => 1,
        Suspend => 2,
        Crash => 3,
        Watchdog => 4,
        SoftReset => 5,
        Other(code) => code,
    }
}

/// Gets or sets the credit parameters of the domain at `index`.
fn scheduler_op(sched: &mut Scheduler, index: usize, op: &mut XenDomctlSchedulerOp) -> Result<(), XenError> {
    if op.sched_id != XEN_SCHEDULER_CREDIT {
        return Err(XenError::Einval);
    }
    let current = sched.params(index).ok_or(XenError::Esrch)?;
    match op.cmd {
        XEN_DOMCTL_SCHEDOP_GETINFO => {
            op.set_credit(XenDomctlSchedCredit { weight: current.weight, cap: current.cap });
            Ok(())
        }
        XEN_DOMCTL_SCHEDOP_PUTINFO => {
            let asked = op.credit();
            let weight = if asked.weight != 0 { asked.weight } else { current.weight };
            let cap = if asked.cap != CAP_UNCHANGED { asked.cap } else { current.cap };
            sched.set_params(index, SchedParams { weight, cap });
            Ok(())
        }
        // Per-vCPU parameters are not the credit scheduler's.
        _ => Err(XenError::Einval),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA};
    use super::*;
    use crate::sched::VcpuRef;
    use guest_abi::xen::HYPERVISOR_DOMCTL;
    use zerocopy::{FromBytes, FromZeros};

    const NR: u64 = HYPERVISOR_DOMCTL as u64;

    fn world() -> World {
        let mut w = World::new(true);
        w.add_peer(test_domain(4, false, 10..14, None, crate::mm::Mfn(15)));
        w.sched.add(VcpuRef { domain: 1, vcpu: 0 }, SchedParams { weight: 512, cap: 0 });
        w
    }

    fn credit(w: &mut World, domain: u16, cmd: u32, weight: u16, cap: u16) -> (i64, XenDomctlSchedCredit) {
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, domain);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, u: [0; 2] };
        s.set_credit(XenDomctlSchedCredit { weight, cap });
        op.set_scheduler_op(s);
        call(w, op)
    }

    fn call(w: &mut World, op: XenDomctl) -> (i64, XenDomctlSchedCredit) {
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&op));
        let ret = w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]);
        let back = XenDomctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenDomctl>())).unwrap();
        (ret, back.scheduler_op().credit())
    }

    #[test]
    fn gets_and_sets_credit_parameters() {
        let mut w = world();
        let (ret, c) = credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0);
        assert_eq!((ret, c.weight, c.cap), (0, 512, 0));
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 128, 25).0, 0);
        assert_eq!(w.sched.params(1), Some(SchedParams { weight: 128, cap: 25 }));
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 0, 50).0, 0, "weight 0 keeps the weight");
        assert_eq!(w.sched.params(1), Some(SchedParams { weight: 128, cap: 50 }));
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 300, 0xffff).0, 0, "cap 0xffff keeps the cap");
        assert_eq!(w.sched.params(1), Some(SchedParams { weight: 300, cap: 50 }));
        assert_eq!(credit(&mut w, 0, XEN_DOMCTL_SCHEDOP_PUTINFO, 1000, 0).0, 0, "its own parameters");
        assert_eq!(w.sched.params(0), Some(SchedParams { weight: 1000, cap: 0 }));
    }

    #[test]
    fn refuses_with_xens_errnos_and_changes_nothing() {
        let mut w = world();
        let before = (w.sched.params(0), w.sched.params(1));
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 4);
        op.interface_version = 0x14;
        assert_eq!(call(&mut w, op).0, -13, "another interface version: EACCES");
        assert_eq!(credit(&mut w, 9, XEN_DOMCTL_SCHEDOP_PUTINFO, 1, 1).0, -3, "no such domain: ESRCH");
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTVCPUINFO, 1, 1).0, -22, "per-vCPU: EINVAL");
        assert_eq!(credit(&mut w, 4, 99, 1, 1).0, -22, "unknown sub-op: EINVAL");
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 4);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_RTDS, cmd: XEN_DOMCTL_SCHEDOP_PUTINFO, u: [0; 2] };
        s.set_credit(XenDomctlSchedCredit { weight: 1, cap: 1 });
        op.set_scheduler_op(s);
        assert_eq!(call(&mut w, op).0, -22, "another scheduler: EINVAL");
        assert_eq!(call(&mut w, XenDomctl::new(XEN_DOMCTL_GETPAGEFRAMEINFO3, 4)).0, -38, "not served: ENOSYS");
        assert_eq!(w.call_ret(NR, [0x10, 0, 0, 0, 0]), -14, "bad pointer: EFAULT");
        w.dom.privileged = false;
        assert_eq!(credit(&mut w, 4, XEN_DOMCTL_SCHEDOP_PUTINFO, 1, 1).0, -1, "unprivileged: EPERM");
        assert_eq!((w.sched.params(0), w.sched.params(1)), before);
    }

    #[test]
    fn hypercall_init_writes_the_stubs_into_a_frame_the_domain_owns() {
        let mut w = world();
        let init = |domain: u16, gmfn: u64| {
            let mut op = XenDomctl::new(XEN_DOMCTL_HYPERCALL_INIT, domain);
            op.u[0] = gmfn;
            op
        };
        assert_eq!(call(&mut w, init(4, 11)).0, 0);
        let page = &w.mem.0[11];
        assert_eq!(&page[32..40], &[0x51, 0x41, 0x53, 0xb8, 1, 0, 0, 0], "stub 1: push rcx/r11, mov $1, eax");
        assert_eq!(page[31], 0xcc, "filler between stubs");
        assert_eq!(call(&mut w, init(4, 2)).0, -22, "a frame of another domain: EINVAL");
        assert_eq!(call(&mut w, init(4, u64::MAX)).0, -22, "no such frame: EINVAL");
        assert_eq!(call(&mut w, init(0, 0)).0, -1, "its own page table: EPERM");
        assert_eq!(call(&mut w, init(9, 11)).0, -3, "no such domain: ESRCH");
        w.dom.privileged = false;
        assert_eq!(call(&mut w, init(4, 12)).0, -1, "unprivileged: EPERM");
        assert!(w.mem.0[12].iter().all(|&b| b != 0xcc), "nothing written");
    }

    #[test]
    fn index_of_counts_around_the_caller() {
        let mut doms = [
            test_domain(7, false, 0..0, None, crate::mm::Mfn(0)).domain,
            test_domain(2, false, 0..0, None, crate::mm::Mfn(0)).domain,
            test_domain(5, false, 0..0, None, crate::mm::Mfn(0)).domain,
        ];
        let Some((_, peers)) = super::super::Peers::split(&mut doms, 1) else { panic!("split") };
        assert_eq!([7, 2, 5, 9].map(|id| peers.index_of(id, 2)), [Some(0), Some(1), Some(2), None]);
    }

    fn create_op(domid: u16, config: XenDomctlCreatedomain) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, domid);
        op.set_createdomain(config);
        op
    }

    fn pv_config() -> XenDomctlCreatedomain {
        let mut c = XenDomctlCreatedomain::new_zeroed();
        (c.max_vcpus, c.grant_opts, c.max_grant_frames, c.max_maptrack_frames) = (1, 1, -1, -1);
        (c.handle, c.max_evtchn_port) = ([7; 16], 1023);
        c
    }

    /// Runs `op`; its return value and the envelope as written back.
    fn call_op(w: &mut World, op: XenDomctl) -> (i64, XenDomctl) {
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&op));
        let ret = w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]);
        (ret, XenDomctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenDomctl>())).unwrap())
    }

    /// Moves the domains `createdomain` made into the world, as the system does.
    fn adopt(w: &mut World) {
        for d in core::mem::take(&mut w.lifecycle.created) {
            w.peers.push(d);
        }
    }

    #[test]
    fn createdomain_picks_ids_from_the_rover_and_checks_the_config() {
        let mut w = world();
        w.lifecycle.wallclock = Some((1_764_547_200, 5));
        let pool = w.pool.0.len();
        let (ret, back) = call_op(&mut w, create_op(0, pv_config()));
        assert_eq!((ret, back.domain), (0, 1), "the first free ID after the rover");
        adopt(&mut w);
        let d = w.peers.last().unwrap();
        assert_eq!((d.pause_count, d.handle, d.vcpus.len(), d.max_pages), (1, [7; 16], 0, 0));
        assert_eq!(w.ft.owner(d.shared_info), Some(crate::mm::frame_table::Owner::Xen));
        assert_eq!(w.pool.0.len(), pool - 1, "a shared_info page and nothing else");
        let wc = &w.mem.0[d.shared_info.0 as usize][0xc00..0xc0c];
        assert_eq!(&wc[4..8], &1_764_547_200u32.to_le_bytes(), "the wallclock's seconds, as every domain has it");
        assert_eq!(call_op(&mut w, create_op(0, pv_config())).1.domain, 2, "the rover moves on");
        adopt(&mut w);
        assert_eq!(call_op(&mut w, create_op(4, pv_config())).0, -17, "an ID in use: EEXIST");
        assert_eq!(call_op(&mut w, create_op(9, pv_config())).1.domain, 9, "a free ID asked for");
        adopt(&mut w);
        assert_eq!(call_op(&mut w, create_op(0, pv_config())).1.domain, 3, "an ID asked for leaves the rover");
        adopt(&mut w);
        type Spoil = fn(&mut XenDomctlCreatedomain);
        let bad: [(Spoil, i64, &str); 9] = [
            (|c| c.flags = XEN_DOMCTL_CDF_HVM, -22, "HVM"),
            (|c| c.flags = 1 << 8, -22, "an unknown flag"),
            (|c| c.max_vcpus = 0, -22, "no vCPU"),
            (|c| c.max_vcpus = crate::domain::MAX_VCPUS + 1, -22, "more vCPUs than xenish's limit"),
            (|c| c.grant_opts = 3, -22, "grant v3"),
            (|c| c.max_grant_frames = 65, -22, "too many grant frames"),
            (|c| c.max_grant_frames = 0, -22, "no grant frames"),
            (|c| c.max_maptrack_frames = 1025, -22, "too many maptrack frames"),
            (|c| c.arch.emulation_flags = XEN_X86_EMU_LAPIC, -95, "emulation: EOPNOTSUPP"),
        ];
        let pool = w.pool.0.len();
        for (spoil, errno, what) in bad {
            let mut c = pv_config();
            spoil(&mut c);
            assert_eq!(call_op(&mut w, create_op(0, c)).0, errno, "{what}");
        }
        assert!(w.lifecycle.created.is_empty() && w.pool.0.len() == pool, "refusals create nothing");
        w.dom.privileged = false;
        assert_eq!(call_op(&mut w, create_op(0, pv_config())).0, -1, "unprivileged: EPERM");
    }

    #[test]
    fn a_domain_whose_vcpu_runs_on_another_cpu_is_held_off_until_it_stopped() {
        let mut w = world();
        // The caller runs on CPU 0, domain 4's vCPU on CPU 1.
        (w.dom.vcpus[0].running_on, w.peers[0].vcpus[0].running_on) = (Some(0), Some(1));
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&XenDomctl::new(XEN_DOMCTL_PAUSEDOMAIN, 4)));
        for _ in 0..3 {
            assert!(matches!(w.call(NR, [BUF_VA, 0, 0, 0, 0]), Outcome::Continue(_)), "waits");
            assert!(w.peers[0].sync_pause && !w.peers[0].is_running(), "held off every CPU");
            assert_eq!(w.peers[0].pause_count, 1, "the hold's pause only");
        }
        // CPU 1 descheduled it and saved its state.
        w.peers[0].vcpus[0].running_on = None;
        assert_eq!(w.call_ret(NR, [BUF_VA, 0, 0, 0, 0]), 0);
        assert!(!w.peers[0].sync_pause && w.peers[0].pause_count == 1, "the hold is over, the pause done");
        // A vCPU on the caller's own CPU (saved when the caller came on) is
        // no reason to wait; nor is anything on one CPU.
        w.peers[0].vcpus[0].running_on = Some(0);
        assert_eq!(call_op(&mut w, XenDomctl::new(XEN_DOMCTL_UNPAUSEDOMAIN, 4)).0, 0);
        assert_eq!(call_op(&mut w, XenDomctl::new(XEN_DOMCTL_PAUSEDOMAIN, 4)).0, 0);
    }

    #[test]
    fn pause_unpause_destroy_and_max_mem() {
        let mut w = world();
        let op = |cmd| XenDomctl::new(cmd, 4);
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_UNPAUSEDOMAIN)).0, -22, "unpause without a pause: EINVAL");
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_PAUSEDOMAIN)).0, 0);
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_PAUSEDOMAIN)).0, 0);
        assert!(!w.peers[0].is_running() && w.peers[0].pause_count == 2);
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_UNPAUSEDOMAIN)).0, 0);
        assert!(!w.peers[0].is_running(), "still paused once");
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_UNPAUSEDOMAIN)).0, 0);
        assert!(w.peers[0].is_running());
        w.peers[0].pause_count = 255;
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_PAUSEDOMAIN)).0, -75, "EOVERFLOW past 255");
        w.peers[0].pause_count = 0;
        assert_eq!(call_op(&mut w, XenDomctl::new(XEN_DOMCTL_PAUSEDOMAIN, 0)).0, -22, "itself: EINVAL");
        let mut m = XenDomctl::new(XEN_DOMCTL_MAX_MEM, 4);
        m.set_max_mem(XenDomctlMaxMem { max_memkb: 64 * 1024 });
        assert_eq!(call_op(&mut w, m).0, 0);
        assert_eq!(w.peers[0].max_pages, 16384);
        assert_eq!(call_op(&mut w, XenDomctl::new(XEN_DOMCTL_DESTROYDOMAIN, 0)).0, -22, "itself: EINVAL");
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&op(XEN_DOMCTL_DESTROYDOMAIN)));
        let args = [BUF_VA, 0, 0, 0, 0];
        assert_eq!(w.call(NR, args), Outcome::Continue(args), "continued until torn down");
        assert_eq!(w.peers[0].state, DomainState::Dying(None));
        w.peers[0].torn_down = true; // as the system's teardown steps leave it
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_DESTROYDOMAIN)).0, 0, "done; again: fine, as in Xen");
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_DESTROYDOMAIN)).0, 0);
        w.peers[0].state = DomainState::Dead(None);
        assert_eq!(call_op(&mut w, op(XEN_DOMCTL_DESTROYDOMAIN)).0, -3, "a dead domain is gone: ESRCH");
    }

    #[test]
    fn getdomaininfo_describes_the_first_domain_at_or_above() {
        let mut w = world();
        let info = |w: &mut World, id| {
            let (ret, back) = call_op(w, XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, id));
            (ret, back.domain, back.getdomaininfo())
        };
        let (ret, id, i) = info(&mut w, 0);
        assert_eq!((ret, id, i.domain, i.tot_pages, i.max_pages), (0, 0, 0, 9, 16));
        assert_eq!(i.flags, XEN_DOMINF_RUNNING, "the caller is on the CPU");
        assert_eq!((i.nr_online_vcpus, i.max_vcpu_id, i.shared_info_frame), (1, 0, 8));
        let (_, id, i) = info(&mut w, 1);
        assert_eq!((id, i.domain, i.tot_pages), (4, 4, 4), "no d1..d3: the next one, d4");
        w.peers[0].state = DomainState::Shutdown(crate::domain::ShutdownReason::Reboot);
        w.peers[0].pause_count = 1;
        let (_, _, i) = info(&mut w, 4);
        assert_eq!(i.flags, XEN_DOMINF_SHUTDOWN | XEN_DOMINF_PAUSED | (1 << XEN_DOMINF_SHUTDOWNSHIFT));
        w.peers[0].state = DomainState::Dying(None);
        assert_eq!(info(&mut w, 4).2.flags & XEN_DOMINF_DYING, XEN_DOMINF_DYING, "a zombie is listed");
        w.peers[0].state = DomainState::Dead(None);
        assert_eq!(info(&mut w, 1).0, -3, "none left at or above: ESRCH");
        assert_eq!(info(&mut w, 0x7ff0).0, -22, "a reserved ID: EINVAL");
    }

    #[test]
    fn setvcpucontext_gives_a_built_domain_its_vcpu() {
        use guest_abi::arch_x86::{VcpuGuestContext, VGCF_IN_KERNEL, VGCF_ONLINE};
        let mut w = World::new(true);
        w.add_peer(test_domain(4, false, 10..14, None, crate::mm::Mfn(15)));
        w.peers[0].vcpus.clear();
        w.peers[0].pause_count = 1;
        let mut g = VcpuGuestContext::new_zeroed();
        g.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
        (g.user_regs.rip, g.user_regs.rsp, g.user_regs.cs, g.user_regs.ss) = (0x40_0000, 0x40_2000, 0xe030, 0xe02b);
        g.user_regs.rflags = 0x1000; // IOPL 1
        (g.kernel_ss, g.kernel_sp, g.ctrlreg[3]) = (0xe02b, 0x40_2000, 10 << 12);
        let set = |w: &mut World, g: &VcpuGuestContext| {
            w.poke(BUF_VA + 0x1000, zerocopy::IntoBytes::as_bytes(g));
            let mut op = XenDomctl::new(XEN_DOMCTL_SETVCPUCONTEXT, 4);
            let ctxt = guest_abi::GuestHandle::from_ptr((BUF_VA + 0x1000) as *const VcpuGuestContext);
            op.set_vcpucontext(XenDomctlVcpucontext { vcpu: 0, _pad0: [0; 4], ctxt });
            call_op(w, op).0
        };
        w.peers[0].vcpus_allocated = false;
        assert_eq!(set(&mut w, &g), -22, "before max_vcpus: no vCPU to set");
        let mut mv = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, 4);
        mv.set_max_vcpus(XenDomctlMaxVcpus { max: 2 });
        assert_eq!(call_op(&mut w, mv).0, -22, "not createdomain's number");
        mv.set_max_vcpus(XenDomctlMaxVcpus { max: 1 });
        assert_eq!(call_op(&mut w, mv).0, 0);
        let mut bad = g;
        bad.user_regs.rip = 0x8000_0000_0000;
        assert_eq!(set(&mut w, &bad), -22, "a non-canonical rip");
        let mut bad = g;
        bad.user_regs.cs = 0x10;
        assert_eq!(set(&mut w, &bad), -22, "no GDT yet: only Xen's flat code selectors load");
        bad.user_regs.cs = 0xe031;
        assert_eq!(set(&mut w, &bad), -22, "RPL 1");
        (bad.user_regs.cs, bad.user_regs.rip) = (0xe023, 1 << 32);
        assert_eq!(set(&mut w, &bad), -22, "past 4 GiB in 32-bit code");
        let mut bad = g;
        bad.gs_base_user = 1 << 47;
        assert_eq!(set(&mut w, &bad), -22, "a non-canonical GS base");
        let mut bad = g;
        bad.ctrlreg[3] = 5 << 12;
        assert_eq!(set(&mut w, &bad), -22, "a top-level table not its own");
        let mut bad = g;
        bad.flags = 0;
        assert_eq!(set(&mut w, &bad), -22, "user mode without a user table");
        let v = &w.peers[0].vcpus[0];
        assert!(!v.initialised && v.down && v.gdt_frames.is_empty(), "refusals leave vCPU 0 as max_vcpus made it");
        assert_eq!(set(&mut w, &g), 0);
        let v = &w.peers[0].vcpus[0];
        assert_eq!(
            (v.kernel_l4, v.regs.rip, v.regs.cs, v.kernel_mode(), v.iopl),
            (crate::mm::Mfn(10), 0x40_0000, 0xe033, true, 1)
        );
        assert_eq!(v.regs.rflags, 0x202, "IOPL virtual, interrupts on");
        assert_eq!(w.ft.page_type(crate::mm::Mfn(10)), crate::mm::frame_table::PageType::L4);
        assert_eq!(set(&mut w, &g), -17, "once: EEXIST");
        for _ in 0..4 {
            let pick = w.sched.pick(0);
            assert!(matches!(pick, crate::sched::Pick::Run { who, .. } if who.domain == 0), "paused: not picked");
            w.sched.charge(VcpuRef { domain: 0, vcpu: 0 }, 10_000_000);
        }
    }
}
