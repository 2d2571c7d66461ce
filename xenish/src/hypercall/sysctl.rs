//! `sysctl`: the toolstack's system-control operations, for a privileged
//! domain, as Xen 4.17 serves them to `xl`, libxl and libxc:
//! - `physinfo` (the machine's CPUs, memory and the boot CPU's feature
//!   words, with the free-frame count a toolstack checks before it builds
//!   a domain), `getdomaininfolist` (what `xl list` shows: every domain
//!   from an ID on, in ID order; a buffer it cannot write is `-EFAULT`);
//! - `readconsole`: the hypervisor's console ring (`xl dmesg`);
//! - `sched_id`, `cpupool_op` and `scheduler_op`: one cpupool, 0, holding
//!   the one CPU and every domain, run by the credit scheduler (what
//!   xenish's weights and caps are); creating a second pool is
//!   `-EOPNOTSUPP` (xenish has no pools to add), the rest as Xen answers
//!   for a pool that cannot lose its last CPU or be destroyed while it
//!   has domains;
//! - `cputopoinfo`, `numainfo`: one CPU on one node (distance 10);
//!   `getcpuinfo` (the CPU's idle time), `availheap` (free memory);
//! - `get_cpu_featureset`, `get_cpu_policy`: the host's and the PV
//!   policies ([`super::cpu_policy`]); the HVM ones are `-EOPNOTSUPP`, as
//!   on a Xen built without HVM.
//!
//! Other commands answer `-ENOSYS`, and are named in the log once.
//!
//! Semantics and errnos: Xen 4.17 `xen/common/sysctl.c` (`do_sysctl`:
//! interface version `-EACCES`, then the caller's privilege `-EPERM`; the
//! whole operation copied back on success), `xen/arch/x86/sysctl.c`
//! (`arch_do_physinfo`, the CPU featuresets and policies),
//! `xen/common/sched/cpupool.c` (`cpupool_do_sysctl`),
//! `xen/common/sched/core.c` (`sched_adjust_global`) and
//! `sched/credit.c` (`csched_sys_cntl`), `xen/drivers/char/console.c`
//! (`read_console_ring`).

use alloc::vec::Vec;

use guest_abi::domctl::XEN_SCHEDULER_CREDIT;
use guest_abi::errno::XenError;
use guest_abi::sysctl::*;
use guest_abi::xen::HYPERVISOR_SYSCTL;

use super::cpu_policy::{self, Policy};
use super::{bitmap, Ctx, HcResult, Outcome};
use crate::domain::RUNSTATE_RUNNING;

/// NUMA nodes (one, 0).
pub const NR_NODES: u32 = 1;
/// The one cpupool's ID (`Pool-0`).
pub const CPUPOOL0: u32 = 0;
/// Xen's distance of a node to itself (`NUMA_LOCAL_DISTANCE`).
const LOCAL_DISTANCE: u32 = 10;
/// `XEN_SYSCTL_SCHED_RATELIMIT_MIN`/`MAX` (µs; 0 turns rate limiting off).
const RATELIMIT_US: core::ops::RangeInclusive<u32> = 100..=500_000;

/// `HYPERVISOR_sysctl(op)`.
pub fn sysctl(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    serve(ctx, args[0]).into()
}

fn serve(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut op: XenSysctl = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Err(XenError::Eacces);
    }
    ctx.privileged()?;
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => op.set_physinfo(physinfo(ctx)),
        XEN_SYSCTL_GETDOMAININFOLIST => {
            let mut list = op.getdomaininfolist();
            list.num_domains = domain_info_list(ctx, &list)?;
            op.set_getdomaininfolist(list);
        }
        XEN_SYSCTL_READCONSOLE => {
            let mut rc = op.readconsole();
            readconsole(ctx, &mut rc)?;
            op.set_readconsole(rc);
        }
        XEN_SYSCTL_SCHED_ID => op.set_sched_id(XenSysctlSchedId { sched_id: XEN_SCHEDULER_CREDIT }),
        XEN_SYSCTL_CPUPOOL_OP => {
            let mut c = op.cpupool_op();
            cpupool_op(ctx, &mut c)?;
            op.set_cpupool_op(c);
        }
        XEN_SYSCTL_SCHEDULER_OP => {
            let mut s = op.scheduler_op();
            scheduler_op(ctx, &mut s)?;
            op.set_scheduler_op(s);
        }
        XEN_SYSCTL_CPUTOPOINFO => {
            let mut t = op.cputopoinfo();
            cputopoinfo(ctx, &mut t)?;
            op.set_cputopoinfo(t);
        }
        XEN_SYSCTL_NUMAINFO => {
            let mut n = op.numainfo();
            numainfo(ctx, &mut n)?;
            op.set_numainfo(n);
        }
        XEN_SYSCTL_GETCPUINFO => {
            let mut g = op.getcpuinfo();
            getcpuinfo(ctx, &mut g)?;
            op.set_getcpuinfo(g);
        }
        XEN_SYSCTL_AVAILHEAP => {
            let mut a = op.availheap();
            // One node, no zones: every free frame is in range.
            let frames = if a.node == -1 || a.node == 0 { ctx.free_pages() } else { 0 };
            a.avail_bytes = frames << 12;
            op.set_availheap(a);
        }
        XEN_SYSCTL_GET_CPU_FEATURESET => {
            let mut f = op.cpu_featureset();
            let result = cpu_featureset(ctx, &mut f);
            // The count is written back whether or not the copy worked.
            op.set_cpu_featureset(f);
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            return result.map(|()| 0);
        }
        XEN_SYSCTL_GET_CPU_POLICY => {
            let mut p = op.cpu_policy();
            cpu_policy(ctx, &mut p)?;
            op.set_cpu_policy(p);
        }
        cmd => return Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_SYSCTL, Some(cmd.into()))),
    }
    ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
    Ok(0)
}

/// Writes the `getdomaininfo` of up to `max_domains` domains with IDs from
/// `first_domain` on into the buffer, in ID order; returns how many.
fn domain_info_list(ctx: &mut Ctx, list: &XenSysctlGetdomaininfolist) -> Result<u32, XenError> {
    let me = &*ctx.domain;
    let mut ids: Vec<u16> =
        core::iter::once(me).chain(ctx.peers.iter()).map(|d| d.id).filter(|&id| id >= list.first_domain).collect();
    ids.sort_unstable();
    let mut written = 0u32;
    for id in ids.into_iter().take(list.max_domains as usize) {
        let Some(info) = super::domctl::domain_info(ctx, id) else { continue };
        let at = list.buffer.element_addr(u64::from(written)).ok_or(XenError::Efault)?;
        ctx.guest().write(at, &info).map_err(|_| XenError::Efault)?;
        written += 1;
    }
    Ok(written)
}

/// What `XEN_SYSCTL_physinfo` reports.
fn physinfo(ctx: &Ctx) -> XenSysctlPhysinfo {
    let ram = ctx.platform.machine_memory_map().iter().filter(|e| e.kind == 1).map(|e| e.size >> 12).sum();
    let host = |leaf, subleaf| ctx.platform.host_cpuid(leaf, subleaf);
    let features = cpu_policy::featureset(Policy::Host, &host);
    let mut hw_cap = [0u32; 8];
    hw_cap.copy_from_slice(&features[..8]);
    XenSysctlPhysinfo {
        threads_per_core: 1,
        cores_per_socket: ctx.sched.nr_cpus(),
        // The CPUs that run guests (with `smp_guests=0`, CPU 0 alone: a
        // toolstack that saw more would pin vCPUs to CPUs that never run
        // them), all cores of one socket.
        nr_cpus: ctx.sched.nr_cpus(),
        max_cpu_id: ctx.sched.nr_cpus() - 1,
        nr_nodes: NR_NODES,
        max_node_id: NR_NODES - 1,
        cpu_khz: ctx.platform.cpu_khz(),
        capabilities: XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1 | XEN_SYSCTL_PHYSCAP_GNTTAB_V2,
        arch_capabilities: 0,
        pad: 0,
        total_pages: ram,
        free_pages: ctx.free_pages(),
        scrub_pages: 0,
        outstanding_pages: core::iter::once(&*ctx.domain)
            .chain(ctx.peers.iter())
            .map(crate::domain::Domain::outstanding_pages)
            .sum(),
        max_mfn: ctx.ft.nr_frames().saturating_sub(1),
        hw_cap,
    }
}

/// `XEN_SYSCTL_readconsole`: copies the console ring out as Xen's
/// `read_console_ring` does.
fn readconsole(ctx: &mut Ctx, rc: &mut XenSysctlReadconsole) -> Result<(), XenError> {
    let (bytes, end) = crate::console::RING.lock().read(rc.incremental != 0, rc.index, rc.count as usize);
    if !bytes.is_empty() {
        ctx.guest().copy_to(rc.buffer.addr(), &bytes).map_err(|_| XenError::Efault)?;
    }
    if rc.clear != 0 {
        crate::console::RING.lock().clear_to(end);
    }
    rc.count = bytes.len() as u32;
    rc.index = end;
    Ok(())
}

/// The number of domains in pool 0 (all of them).
fn pool_domains(ctx: &Ctx) -> u32 {
    1 + ctx.peers.iter().count() as u32
}

/// `XEN_SYSCTL_cpupool_op`.
fn cpupool_op(ctx: &mut Ctx, c: &mut XenSysctlCpupoolOp) -> Result<(), XenError> {
    let (all_cpus, nr_cpus) = (ctx.sched.online_mask(), ctx.sched.nr_cpus());
    match c.op {
        XEN_SYSCTL_CPUPOOL_OP_INFO => {
            // The first pool with an ID at or above the one asked.
            if c.cpupool_id > CPUPOOL0 {
                return Err(XenError::Enoent);
            }
            c.cpupool_id = CPUPOOL0;
            c.sched_id = XEN_SCHEDULER_CREDIT;
            c.n_dom = pool_domains(ctx);
            bitmap::write(ctx, &c.cpumap, all_cpus, nr_cpus)
        }
        // No CPU is outside pool 0.
        XEN_SYSCTL_CPUPOOL_OP_FREEINFO => bitmap::write(ctx, &c.cpumap, 0, nr_cpus),
        XEN_SYSCTL_CPUPOOL_OP_CREATE => {
            if c.cpupool_id == CPUPOOL0 {
                Err(XenError::Eexist)
            } else {
                // A pool needs a CPU of its own to run anything, and
                // xenish keeps every CPU in pool 0.
                Err(XenError::Eopnotsupp)
            }
        }
        XEN_SYSCTL_CPUPOOL_OP_DESTROY => match c.cpupool_id {
            // Xen's cpupool_destroy: not while it has domains or CPUs.
            CPUPOOL0 => Err(XenError::Ebusy),
            _ => Err(XenError::Enoent),
        },
        XEN_SYSCTL_CPUPOOL_OP_ADDCPU => {
            if c.cpupool_id != CPUPOOL0 {
                return Err(XenError::Enoent);
            }
            match c.cpu {
                // No free CPU to take.
                XEN_SYSCTL_CPUPOOL_PAR_ANY => Err(XenError::Einval),
                cpu if cpu >= nr_cpus => Err(XenError::Einval),
                // Not free: already the pool's.
                _ => Err(XenError::Enodev),
            }
        }
        XEN_SYSCTL_CPUPOOL_OP_RMCPU => {
            if c.cpupool_id != CPUPOOL0 {
                return Err(XenError::Enoent);
            }
            match c.cpu {
                // The pool's last CPU, with domains in it.
                XEN_SYSCTL_CPUPOOL_PAR_ANY => Err(XenError::Ebusy),
                cpu if cpu >= nr_cpus => Err(XenError::Einval),
                _ => Err(XenError::Ebusy),
            }
        }
        XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN => {
            // Xen's rcu_lock_remote_domain_by_id, then: already there.
            let domid = u16::try_from(c.domid).map_err(|_| XenError::Esrch)?;
            if domid == ctx.domain.id {
                return Err(XenError::Eperm);
            }
            ctx.peers.get_mut(domid).ok_or(XenError::Esrch)?;
            if c.cpupool_id == CPUPOOL0 {
                Ok(())
            } else {
                Err(XenError::Enoent)
            }
        }
        _ => Err(XenError::Enosys),
    }
}

/// `XEN_SYSCTL_scheduler_op`: the credit scheduler's global parameters.
fn scheduler_op(ctx: &mut Ctx, s: &mut XenSysctlSchedulerOp) -> Result<(), XenError> {
    if s.cmd != XEN_SYSCTL_SCHEDOP_PUTINFO && s.cmd != XEN_SYSCTL_SCHEDOP_GETINFO {
        return Err(XenError::Einval);
    }
    if s.cpupool_id != CPUPOOL0 {
        return Err(XenError::Esrch);
    }
    if s.sched_id != XEN_SCHEDULER_CREDIT {
        return Err(XenError::Einval);
    }
    let g = &mut ctx.sched.globals;
    if s.cmd == XEN_SYSCTL_SCHEDOP_PUTINFO {
        let p = s.sched_credit();
        let bad = !(XEN_SYSCTL_CSCHED_TSLICE_MIN..=XEN_SYSCTL_CSCHED_TSLICE_MAX).contains(&p.tslice_ms)
            || (p.ratelimit_us != 0 && !RATELIMIT_US.contains(&p.ratelimit_us))
            || u64::from(p.ratelimit_us) * 1000 > u64::from(p.tslice_ms) * 1_000_000
            || p.vcpu_migr_delay_us > XEN_SYSCTL_CSCHED_MGR_DLY_MAX_US;
        if bad {
            return Err(XenError::Einval);
        }
        (g.tslice_ms, g.ratelimit_us, g.vcpu_migr_delay_us) = (p.tslice_ms, p.ratelimit_us, p.vcpu_migr_delay_us);
    }
    s.set_sched_credit(XenSysctlCreditSchedule {
        tslice_ms: g.tslice_ms,
        ratelimit_us: g.ratelimit_us,
        vcpu_migr_delay_us: g.vcpu_migr_delay_us,
    });
    Ok(())
}

/// `XEN_SYSCTL_cputopoinfo`: CPU n is core n of socket 0 on node 0; with
/// a null array, the number of CPUs.
fn cputopoinfo(ctx: &mut Ctx, t: &mut XenSysctlCputopoinfo) -> Result<(), XenError> {
    let mut n = ctx.sched.nr_cpus();
    if !t.cputopo.is_null() {
        n = n.min(t.num_cpus);
        for i in 0..n {
            let at = t.cputopo.element_addr(u64::from(i)).ok_or(XenError::Efault)?;
            ctx.guest().write(at, &XenSysctlCputopo { core: i, socket: 0, node: 0 }).map_err(|_| XenError::Efault)?;
        }
    }
    t.num_cpus = n;
    Ok(())
}

/// `XEN_SYSCTL_numainfo`: node 0 holds all memory; with null arrays, the
/// number of nodes.
fn numainfo(ctx: &mut Ctx, ni: &mut XenSysctlNumainfo) -> Result<(), XenError> {
    let mut n = NR_NODES;
    if !ni.meminfo.is_null() || !ni.distance.is_null() {
        n = n.min(ni.num_nodes);
        let span = ctx.platform.machine_memory_map().iter().filter(|e| e.kind == 1).map(|e| e.addr + e.size).max();
        let memsize = span.unwrap_or(0) & !0xfff;
        let memfree = ctx.free_pages() << 12;
        for i in 0..n {
            if !ni.meminfo.is_null() {
                let at = ni.meminfo.element_addr(u64::from(i)).ok_or(XenError::Efault)?;
                ctx.guest().write(at, &XenSysctlMeminfo { memsize, memfree }).map_err(|_| XenError::Efault)?;
            }
            if !ni.distance.is_null() {
                for j in 0..n {
                    let at = ni.distance.element_addr(u64::from(i * n + j)).ok_or(XenError::Efault)?;
                    ctx.guest().write(at, &LOCAL_DISTANCE).map_err(|_| XenError::Efault)?;
                }
            }
        }
    }
    ni.num_nodes = n;
    Ok(())
}

/// `XEN_SYSCTL_getcpuinfo`: each CPU's idle time, the time no vCPU ran
/// on it (what vCPUs ran there and left, and what the one on it now has
/// run so far).
fn getcpuinfo(ctx: &mut Ctx, g: &mut XenSysctlGetcpuinfo) -> Result<(), XenError> {
    let now = ctx.now_ns;
    let n = g.max_cpus.min(ctx.sched.nr_cpus());
    for i in 0..n {
        let cpu = i as usize;
        // The vCPU on CPU `cpu` now (only a vCPU on a CPU is in
        // RUNSTATE_running, since it was put there).
        let current: u64 = core::iter::once(&*ctx.domain)
            .chain(ctx.peers.iter())
            .flat_map(|d| d.vcpus.iter())
            .filter(|v| v.runstate.state == RUNSTATE_RUNNING && v.processor == cpu)
            .map(|v| now.saturating_sub(v.runstate.entry_ns))
            .fold(0, u64::saturating_add);
        let busy = ctx.sched.busy_ns(cpu).saturating_add(current);
        let at = g.info.element_addr(u64::from(i)).ok_or(XenError::Efault)?;
        let info = XenSysctlCpuinfo { idletime: now.saturating_sub(busy) };
        ctx.guest().write(at, &info).map_err(|_| XenError::Efault)?;
    }
    g.nr_cpus = n;
    Ok(())
}

/// The policy behind a featureset or policy index: raw and host are the
/// CPU's, PV default and maximum xenish's PV policy; HVM has none.
fn policy_of(index: u32, hvm: [u32; 2]) -> Result<Policy, XenError> {
    match index {
        0 | 1 => Ok(Policy::Host),
        i if hvm.contains(&i) => Err(XenError::Eopnotsupp),
        i if i <= 5 => Ok(Policy::Pv),
        _ => Err(XenError::Einval),
    }
}

/// `XEN_SYSCTL_get_cpu_featureset`.
fn cpu_featureset(ctx: &mut Ctx, f: &mut XenSysctlCpuFeatureset) -> Result<(), XenError> {
    if f.features.is_null() {
        f.nr_features = cpu_policy::FEATURESET_WORDS;
        return Ok(());
    }
    let n = f.nr_features.min(cpu_policy::FEATURESET_WORDS);
    f.nr_features = n;
    let hvm = [XEN_SYSCTL_CPU_FEATURESET_HVM, XEN_SYSCTL_CPU_FEATURESET_HVM_MAX];
    let policy = policy_of(f.index, hvm)?;
    let words = {
        let host = |leaf, subleaf| ctx.platform.host_cpuid(leaf, subleaf);
        cpu_policy::featureset(policy, &host)
    };
    let bytes: Vec<u8> = words.iter().take(n as usize).flat_map(|w| w.to_le_bytes()).collect();
    ctx.guest().copy_to(f.features.addr(), &bytes).map_err(|_| XenError::Efault)
}

/// `XEN_SYSCTL_get_cpu_policy`.
fn cpu_policy(ctx: &mut Ctx, p: &mut XenSysctlCpuPolicy) -> Result<(), XenError> {
    let hvm = [XEN_SYSCTL_CPU_POLICY_HVM_MAX, XEN_SYSCTL_CPU_POLICY_HVM_DEFAULT];
    if p._rsvd != 0 {
        return Err(XenError::Einval);
    }
    let policy = policy_of(p.index, hvm)?;
    let leaves = {
        let host = |leaf, subleaf| ctx.platform.host_cpuid(leaf, subleaf);
        cpu_policy::leaves(policy, &host)
    };
    p.nr_leaves = write_leaves(ctx, p.leaves, p.nr_leaves, &leaves)?;
    p.nr_msrs = write_msrs(ctx, p.msrs, p.nr_msrs, &cpu_policy::msrs(policy))?;
    Ok(())
}

/// Serialises `leaves` into the caller's array of `room` entries; with a
/// null array, answers the most there can be. `-ENOBUFS` if they do not fit.
pub(super) fn write_leaves(
    ctx: &mut Ctx,
    to: guest_abi::GuestHandle<guest_abi::arch_x86::CpuidLeaf>,
    room: u32,
    leaves: &[guest_abi::arch_x86::CpuidLeaf],
) -> Result<u32, XenError> {
    if to.is_null() {
        return Ok(cpu_policy::MAX_LEAVES);
    }
    if leaves.len() > room as usize {
        return Err(XenError::Enobufs);
    }
    for (i, l) in leaves.iter().enumerate() {
        let at = to.element_addr(i as u64).ok_or(XenError::Efault)?;
        ctx.guest().write(at, l).map_err(|_| XenError::Efault)?;
    }
    Ok(leaves.len() as u32)
}

/// Serialises `msrs` as [`write_leaves`] does leaves.
pub(super) fn write_msrs(
    ctx: &mut Ctx,
    to: guest_abi::GuestHandle<guest_abi::arch_x86::MsrEntry>,
    room: u32,
    msrs: &[guest_abi::arch_x86::MsrEntry],
) -> Result<u32, XenError> {
    if to.is_null() {
        return Ok(cpu_policy::MAX_MSRS);
    }
    if msrs.len() > room as usize {
        return Err(XenError::Enobufs);
    }
    for (i, m) in msrs.iter().enumerate() {
        let at = to.element_addr(i as u64).ok_or(XenError::Efault)?;
        ctx.guest().write(at, m).map_err(|_| XenError::Efault)?;
    }
    Ok(msrs.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use zerocopy::{FromBytes, FromZeros, IntoBytes};
    extern crate std;

    fn call(w: &mut World, op: XenSysctl) -> (i64, XenSysctlPhysinfo) {
        w.poke(BUF_VA, op.as_bytes());
        let ret = w.call_ret(u64::from(HYPERVISOR_SYSCTL), [BUF_VA, 0, 0, 0, 0]);
        let back = XenSysctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenSysctl>())).unwrap();
        (ret, back.physinfo())
    }

    #[test]
    fn physinfo_reports_the_free_frames() {
        let mut w = World::new(true);
        let (ret, info) = call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO));
        assert_eq!(ret, 0);
        assert_eq!(info.free_pages, w.pool.0.len() as u64);
        assert_eq!((info.nr_cpus, info.max_mfn), (1, 23));
        assert_eq!(
            info.capabilities,
            XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1 | XEN_SYSCTL_PHYSCAP_GNTTAB_V2
        );
        w.pool.0.pop();
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO)).1.free_pages, w.pool.0.len() as u64);
        // A dead domain's frame waiting to be scrubbed is free memory, as
        // in Xen (its heap holds unscrubbed pages too).
        let Some(m) = w.pool.0.pop() else { panic!("no frame") };
        assert_eq!(w.ft.push_dirty(m), Ok(()));
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO)).1.free_pages, w.pool.0.len() as u64 + 1);
    }

    #[test]
    fn refuses_with_xens_errnos() {
        let mut w = World::new(true);
        let mut op = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        op.interface_version = 0x14;
        assert_eq!(call(&mut w, op).0, -13, "another interface version: EACCES");
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_DEBUG_KEYS)).0, -38, "not served: ENOSYS");
        assert_eq!(w.call_ret(u64::from(HYPERVISOR_SYSCTL), [0x10, 0, 0, 0, 0]), -14, "bad pointer: EFAULT");
        w.dom.privileged = false;
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO)).0, -1, "unprivileged: EPERM");
    }

    #[test]
    fn getdomaininfolist_lists_domains_in_id_order() {
        use guest_abi::domctl::XenDomctlGetdomaininfo;
        let mut w = World::new(true);
        w.add_peer(super::super::tests::test_domain(7, false, 10..12, None, crate::mm::Mfn(13)));
        w.add_peer(super::super::tests::test_domain(3, false, 12..13, None, crate::mm::Mfn(14)));
        let list = |w: &mut World, first: u16, max: u32, buffer: u64| {
            let mut op = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
            let mut l = XenSysctlGetdomaininfolist::new_zeroed();
            (l.first_domain, l.max_domains) = (first, max);
            l.buffer = guest_abi::GuestHandle::from_ptr(buffer as *const XenDomctlGetdomaininfo);
            op.set_getdomaininfolist(l);
            w.poke(BUF_VA, op.as_bytes());
            let ret = w.call_ret(u64::from(HYPERVISOR_SYSCTL), [BUF_VA, 0, 0, 0, 0]);
            let back = XenSysctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenSysctl>())).unwrap();
            (ret, back.getdomaininfolist().num_domains)
        };
        let entry = |w: &mut World, i: u64| {
            let size = core::mem::size_of::<XenDomctlGetdomaininfo>();
            XenDomctlGetdomaininfo::read_from_bytes(&w.peek(BUF_VA + 0x1000 + i * size as u64, size)).unwrap()
        };
        assert_eq!(list(&mut w, 0, 10, BUF_VA + 0x1000), (0, 3));
        let ids: [u16; 3] = [0, 1, 2].map(|i| entry(&mut w, i).domain);
        assert_eq!(ids, [0, 3, 7], "in ID order");
        assert_eq!(entry(&mut w, 2).tot_pages, 2);
        assert_eq!(list(&mut w, 1, 1, BUF_VA + 0x1000), (0, 1));
        assert_eq!(entry(&mut w, 0).domain, 3, "from first_domain on, at most max_domains");
        assert_eq!(list(&mut w, 0, 10, 0x10).0, -14, "an unwritable buffer: EFAULT");
    }

    /// Runs `op`; its result and the operation as written back.
    fn run(w: &mut World, op: XenSysctl) -> (i64, XenSysctl) {
        w.poke(BUF_VA, op.as_bytes());
        let ret = w.call_ret(u64::from(HYPERVISOR_SYSCTL), [BUF_VA, 0, 0, 0, 0]);
        (ret, XenSysctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenSysctl>())).unwrap())
    }

    /// A buffer in the test guest's memory, after the operation.
    const OUT: u64 = BUF_VA + 0x1000;

    fn bitmap_at(va: u64, nr_bits: u32) -> XenctlBitmap {
        XenctlBitmap { bitmap: guest_abi::GuestHandle::from_ptr(va as *const u8), nr_bits, _pad: [0; 4] }
    }

    fn pool_op(w: &mut World, op: u32, pool: u32, cpu: u32, domid: u32) -> (i64, XenSysctlCpupoolOp) {
        let mut s = XenSysctl::new(XEN_SYSCTL_CPUPOOL_OP);
        let mut c = XenSysctlCpupoolOp::new_zeroed();
        (c.op, c.cpupool_id, c.cpu, c.domid, c.cpumap) = (op, pool, cpu, domid, bitmap_at(OUT, 16));
        s.set_cpupool_op(c);
        let (ret, back) = run(w, s);
        (ret, back.cpupool_op())
    }

    #[test]
    fn one_pool_with_every_domain_on_the_credit_scheduler() {
        let mut w = World::new(true);
        w.add_peer(super::super::tests::test_domain(7, false, 10..12, None, crate::mm::Mfn(13)));
        let (ret, back) = run(&mut w, XenSysctl::new(XEN_SYSCTL_SCHED_ID));
        assert_eq!((ret, back.sched_id().sched_id), (0, XEN_SCHEDULER_CREDIT));
        w.poke(OUT, &[0xff, 0xff]);
        let (ret, info) = pool_op(&mut w, XEN_SYSCTL_CPUPOOL_OP_INFO, 0, 0, 0);
        assert_eq!((ret, info.cpupool_id, info.sched_id, info.n_dom), (0, 0, XEN_SCHEDULER_CREDIT, 2));
        assert_eq!(w.peek(OUT, 2), [1, 0], "CPU 0, the rest of the caller's map cleared");
        assert_eq!(pool_op(&mut w, XEN_SYSCTL_CPUPOOL_OP_INFO, 1, 0, 0).0, -2, "no pool at or above 1: ENOENT");
        w.poke(OUT, &[0xff]);
        assert_eq!(pool_op(&mut w, XEN_SYSCTL_CPUPOOL_OP_FREEINFO, 0, 0, 0).0, 0);
        assert_eq!(w.peek(OUT, 1), [0], "no free CPU");
        let refusals = [
            (XEN_SYSCTL_CPUPOOL_OP_CREATE, 0, 0, 0, -17, "pool 0 exists: EEXIST"),
            (XEN_SYSCTL_CPUPOOL_OP_CREATE, XEN_SYSCTL_CPUPOOL_PAR_ANY, 0, 0, -95, "a second pool: EOPNOTSUPP"),
            (XEN_SYSCTL_CPUPOOL_OP_DESTROY, 0, 0, 0, -16, "pool 0 has domains: EBUSY"),
            (XEN_SYSCTL_CPUPOOL_OP_DESTROY, 3, 0, 0, -2, "no pool 3: ENOENT"),
            (XEN_SYSCTL_CPUPOOL_OP_ADDCPU, 0, 0, 0, -19, "CPU 0 is not free: ENODEV"),
            (XEN_SYSCTL_CPUPOOL_OP_ADDCPU, 0, 5, 0, -22, "no CPU 5: EINVAL"),
            (XEN_SYSCTL_CPUPOOL_OP_RMCPU, 0, 0, 0, -16, "the last CPU: EBUSY"),
            (XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, 0, 0, 9, -3, "no domain 9: ESRCH"),
            (XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, 0, 0, 0, -1, "itself: EPERM"),
            (XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, 2, 0, 7, -2, "to no pool: ENOENT"),
            (99, 0, 0, 0, -38, "unknown: ENOSYS"),
        ];
        for (op, pool, cpu, domid, errno, what) in refusals {
            assert_eq!(pool_op(&mut w, op, pool, cpu, domid).0, errno, "{what}");
        }
        assert_eq!(pool_op(&mut w, XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, 0, 0, 7).0, 0, "already there");
    }

    fn sched(w: &mut World, cmd: u32, pool: u32, p: XenSysctlCreditSchedule) -> (i64, XenSysctlCreditSchedule) {
        let mut s = XenSysctl::new(XEN_SYSCTL_SCHEDULER_OP);
        let mut o = XenSysctlSchedulerOp::new_zeroed();
        (o.cpupool_id, o.sched_id, o.cmd) = (pool, XEN_SCHEDULER_CREDIT, cmd);
        o.set_sched_credit(p);
        s.set_scheduler_op(o);
        let (ret, back) = run(w, s);
        (ret, back.scheduler_op().sched_credit())
    }

    #[test]
    fn credit_parameters_are_read_and_checked_as_xen() {
        let mut w = World::new(true);
        let zero = XenSysctlCreditSchedule::new_zeroed();
        let (ret, p) = sched(&mut w, XEN_SYSCTL_SCHEDOP_GETINFO, 0, zero);
        assert_eq!((ret, p.tslice_ms, p.ratelimit_us, p.vcpu_migr_delay_us), (0, 30, 1000, 0), "Xen's defaults");
        let new = XenSysctlCreditSchedule { tslice_ms: 10, ratelimit_us: 500, vcpu_migr_delay_us: 100 };
        assert_eq!(sched(&mut w, XEN_SYSCTL_SCHEDOP_PUTINFO, 0, new).0, 0);
        assert_eq!(w.sched.globals.tslice_ms, 10);
        for (bad, what) in [
            (XenSysctlCreditSchedule { tslice_ms: 0, ..new }, "a zero slice"),
            (XenSysctlCreditSchedule { tslice_ms: 1001, ..new }, "a slice over 1 s"),
            (XenSysctlCreditSchedule { ratelimit_us: 50, ..new }, "a rate limit under 100 µs"),
            (XenSysctlCreditSchedule { tslice_ms: 1, ratelimit_us: 2000, ..new }, "a rate limit over the slice"),
            (XenSysctlCreditSchedule { vcpu_migr_delay_us: 100_001, ..new }, "a migration delay over 100 ms"),
        ] {
            assert_eq!(sched(&mut w, XEN_SYSCTL_SCHEDOP_PUTINFO, 0, bad).0, -22, "{what}");
        }
        assert_eq!(w.sched.globals.tslice_ms, 10, "refusals change nothing");
        assert_eq!(sched(&mut w, XEN_SYSCTL_SCHEDOP_GETINFO, 1, zero).0, -3, "no pool 1: ESRCH");
        assert_eq!(sched(&mut w, 7, 0, zero).0, -22, "unknown command");
    }

    #[test]
    fn topology_numa_and_idle_time() {
        let mut w = World::new(true);
        let mut s = XenSysctl::new(XEN_SYSCTL_CPUTOPOINFO);
        s.set_cputopoinfo(XenSysctlCputopoinfo::new_zeroed());
        let (ret, back) = run(&mut w, s);
        assert_eq!((ret, back.cputopoinfo().num_cpus), (0, 1), "a null array: how many");
        let mut t = XenSysctlCputopoinfo::new_zeroed();
        (t.num_cpus, t.cputopo) = (4, guest_abi::GuestHandle::from_ptr(OUT as *const XenSysctlCputopo));
        s.set_cputopoinfo(t);
        w.poke(OUT, &[0xff; 12]);
        let (ret, back) = run(&mut w, s);
        assert_eq!((ret, back.cputopoinfo().num_cpus), (0, 1));
        assert_eq!(w.peek(OUT, 12), [0; 12], "core 0, socket 0, node 0");
        let mut n = XenSysctlNumainfo::new_zeroed();
        n.num_nodes = 2;
        n.meminfo = guest_abi::GuestHandle::from_ptr(OUT as *const XenSysctlMeminfo);
        n.distance = guest_abi::GuestHandle::from_ptr((OUT + 0x100) as *const u32);
        let mut s = XenSysctl::new(XEN_SYSCTL_NUMAINFO);
        s.set_numainfo(n);
        let (ret, back) = run(&mut w, s);
        assert_eq!((ret, back.numainfo().num_nodes), (0, 1));
        let mem = XenSysctlMeminfo::read_from_bytes(&w.peek(OUT, 16)).unwrap();
        assert_eq!((mem.memsize, mem.memfree), (0x9f000, w.pool.0.len() as u64 * 4096));
        assert_eq!(w.peek(OUT + 0x100, 4), 10u32.to_le_bytes(), "local distance");
        w.dom.vcpus[0].runstate.enter(crate::domain::RUNSTATE_BLOCKED, 0);
        let mut g = XenSysctlGetcpuinfo::new_zeroed();
        (g.max_cpus, g.info) = (8, guest_abi::GuestHandle::from_ptr(OUT as *const XenSysctlCpuinfo));
        let mut s = XenSysctl::new(XEN_SYSCTL_GETCPUINFO);
        s.set_getcpuinfo(g);
        let (ret, back) = run(&mut w, s);
        assert_eq!((ret, back.getcpuinfo().nr_cpus), (0, 1));
        assert_eq!(w.peek(OUT, 8), w.now_ns.to_le_bytes(), "nothing has run yet: all idle");
        let mut a = XenSysctlAvailheap::new_zeroed();
        a.node = -1;
        let mut s = XenSysctl::new(XEN_SYSCTL_AVAILHEAP);
        s.set_availheap(a);
        assert_eq!(run(&mut w, s).1.availheap().avail_bytes, w.pool.0.len() as u64 * 4096);
        a.node = 3;
        s.set_availheap(a);
        assert_eq!(run(&mut w, s).1.availheap().avail_bytes, 0, "no node 3");
    }

    #[test]
    fn featuresets_and_policies() {
        let mut w = World::new(true);
        let fs = |w: &mut World, index: u32, nr: u32, to: u64| {
            let mut s = XenSysctl::new(XEN_SYSCTL_GET_CPU_FEATURESET);
            let features = guest_abi::GuestHandle::from_ptr(to as *const u32);
            s.set_cpu_featureset(XenSysctlCpuFeatureset { index, nr_features: nr, features });
            let (ret, back) = run(w, s);
            (ret, back.cpu_featureset().nr_features)
        };
        assert_eq!(fs(&mut w, XEN_SYSCTL_CPU_FEATURESET_HOST, 0, 0), (0, 19), "a null array: the size");
        assert_eq!(fs(&mut w, XEN_SYSCTL_CPU_FEATURESET_HOST, 2, OUT), (0, 2), "clipped to the caller's");
        assert_eq!(w.peek(OUT, 4), (0x178b_fbffu32 & crate::cpuid::KNOWN_FEATURES[0]).to_le_bytes(), "1.edx");
        assert_eq!(fs(&mut w, XEN_SYSCTL_CPU_FEATURESET_PV, 40, OUT), (0, 19));
        assert_eq!(fs(&mut w, XEN_SYSCTL_CPU_FEATURESET_HVM, 40, OUT).0, -95, "no HVM: EOPNOTSUPP");
        assert_eq!(fs(&mut w, 6, 40, OUT).0, -22, "no such featureset: EINVAL");
        let policy = |w: &mut World, index: u32, leaves: (u32, u64), msrs: (u32, u64), rsvd: u32| {
            let mut s = XenSysctl::new(XEN_SYSCTL_GET_CPU_POLICY);
            let mut p = XenSysctlCpuPolicy::new_zeroed();
            (p.index, p.nr_leaves, p.nr_msrs, p._rsvd) = (index, leaves.0, msrs.0, rsvd);
            p.leaves = guest_abi::GuestHandle::from_ptr(leaves.1 as *const _);
            p.msrs = guest_abi::GuestHandle::from_ptr(msrs.1 as *const _);
            s.set_cpu_policy(p);
            let (ret, back) = run(w, s);
            (ret, back.cpu_policy().nr_leaves, back.cpu_policy().nr_msrs)
        };
        let sizes = policy(&mut w, XEN_SYSCTL_CPU_POLICY_PV_DEFAULT, (0, 0), (0, 0), 0);
        assert_eq!(sizes, (0, cpu_policy::MAX_LEAVES, 2), "null arrays: the sizes");
        let (ret, nr, msrs) = policy(&mut w, XEN_SYSCTL_CPU_POLICY_PV_DEFAULT, (100, OUT), (2, OUT + 0xc00), 0);
        assert!(ret == 0 && nr > 10 && msrs == 2, "{ret} {nr} {msrs}");
        let first = guest_abi::arch_x86::CpuidLeaf::read_from_bytes(&w.peek(OUT, 24)).unwrap();
        assert_eq!((first.leaf, first.subleaf, first.a), (0, !0, 0xd));
        assert_eq!(policy(&mut w, 4, (2, OUT), (2, OUT + 0xc00), 0).0, -105, "no room: ENOBUFS");
        assert_eq!(policy(&mut w, 4, (0, 0), (0, 0), 1).0, -22, "reserved field: EINVAL");
        assert_eq!(policy(&mut w, XEN_SYSCTL_CPU_POLICY_HVM_DEFAULT, (0, 0), (0, 0), 0).0, -95);
        assert_eq!(policy(&mut w, 6, (0, 0), (0, 0), 0).0, -22);
    }

    #[test]
    fn readconsole_reads_the_ring_from_an_index() {
        let _quiet = crate::hypercall::tests::CONSOLE_RING.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = World::new(true);
        crate::printk!("readconsole test marker");
        let read = |w: &mut World, incremental: u8, index: u32, count: u32| {
            let mut s = XenSysctl::new(XEN_SYSCTL_READCONSOLE);
            let mut r = XenSysctlReadconsole::new_zeroed();
            (r.incremental, r.index, r.count) = (incremental, index, count);
            r.buffer = guest_abi::GuestHandle::from_ptr(OUT as *const u8);
            s.set_readconsole(r);
            let (ret, back) = run(w, s);
            (ret, back.readconsole().count, back.readconsole().index)
        };
        let (ret, count, mut end) = read(&mut w, 0, 0, 4096);
        assert!(ret == 0 && count > 0, "{ret} {count}");
        let mut text = w.peek(OUT, count as usize);
        // Earlier tests may have filled more than one read: read on to the end.
        loop {
            let (ret, more, next) = read(&mut w, 1, end, 4096);
            if ret != 0 || more == 0 {
                break;
            }
            text.extend(w.peek(OUT, more as usize));
            end = next;
        }
        let count = text.len() as u32;
        assert!(std::string::String::from_utf8_lossy(&text).contains("readconsole test marker"));
        // Other tests running in parallel (the fuzzer above all) print to
        // the same ring: what follows `end` is theirs, never this text again.
        let (_, after, _) = read(&mut w, 1, end, 4096);
        assert!(!std::string::String::from_utf8_lossy(&w.peek(OUT, after as usize)).contains("readconsole test marker"));
        let (_, tail, _) = read(&mut w, 1, end - 7, 4096);
        assert!(tail >= 7, "from an index: what follows it");
        assert_eq!(w.peek(OUT, 7), text[count as usize - 7..], "starting at that index");
    }
}
