//! `vcpu_op`: per-vCPU timers, runstate information and state queries, NMIs
//! sent to a vCPU (`VCPUOP_send_nmi`), the physical CPU of a control-domain
//! vCPU pinned to one (`VCPUOP_get_physid`: all are, on one CPU), and
//! the secondary time area (`VCPUOP_register_vcpu_time_memory_area`): a
//! guest address that gets a copy of the vCPU's `vcpu_time_info`, with the
//! version protocol, whenever its time is published, which Linux maps
//! into user space for its vDSO clock.
//!
//! Semantics: Xen 4.17 `xen/common/domain.c do_vcpu_op` and
//! `xen/arch/x86/domain.c`. A vCPU ID the domain does not have is
//! `-ENOENT` (Linux probes every ID up to NR_CPUS this way); operations on
//! vCPUs other than the caller are refused where Xen refuses them.
//!
//! Bringing up more vCPUs, as Linux's SMP code does: `VCPUOP_initialise`
//! (the context, as the toolstack's `setvcpucontext` gives one), `up`
//! (only an initialised vCPU), `down` (the last one up powers the domain
//! off), `is_up`. A vCPU that is down accepts what Linux does for it from
//! the boot CPU: `register_vcpu_info`, the runstate area, its timers; the
//! single-shot timer only the vCPU itself may set or stop.

use guest_abi::errno::XenError;
use guest_abi::vcpu::*;

use super::{Ctx, HcResult, Outcome};
use crate::domain::{Domain, RUNSTATE_OFFLINE, VCPU_INFO_SIZE};
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};
/// Xen's `map_vcpu_info`: moves vCPU `idx`'s `vcpu_info` to `offset` in
/// frame `mfn`, an 8-aligned place in a writable frame of the domain that
/// keeps a writable type reference from now on. The old contents come
/// along, and everything is marked pending so that no event is lost (the
/// guest may see a spurious one).
fn register_vcpu_info(ctx: &mut Ctx, idx: usize, mfn: Mfn, offset: usize) -> HcResult {
    if offset > PAGE_SIZE - VCPU_INFO_SIZE || !offset.is_multiple_of(8) {
        return Err(XenError::Enxio);
    }
    if ctx.domain.vcpus.get(idx).is_some_and(|v| v.vcpu_info.is_some()) {
        return Err(XenError::Einval);
    }
    // Only the caller itself, or a vCPU that is down (Linux registers every
    // vCPU's from the boot CPU before bringing the others up).
    if idx != ctx.vcpu && !ctx.domain.vcpus.get(idx).is_some_and(|v| v.down) {
        return Err(XenError::Einval);
    }
    let rights = MapRights::of(ctx.domain);
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    mmu.get_page_and_type(mfn, &rights, PageType::Writable).map_err(|_| XenError::Einval)?;
    let (old_frame, old_offset) = ctx.domain.vcpu_info(idx);
    let mut current = [0u8; VCPU_INFO_SIZE];
    if let Some(bytes) = ctx.mem.frame(old_frame).and_then(|f| f.get(old_offset..old_offset + VCPU_INFO_SIZE)) {
        current.copy_from_slice(bytes);
    }
    current[0] = 1; // evtchn_upcall_pending
    current[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // evtchn_pending_sel
    if let Some(bytes) = ctx.mem.frame_mut(mfn).and_then(|f| f.get_mut(offset..offset + VCPU_INFO_SIZE)) {
        bytes.copy_from_slice(&current);
    }
    if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
        v.vcpu_info = Some((mfn, offset));
    }
    Ok(0)
}

/// Offset of `time` in a `vcpu_info`, and its size (`vcpu_time_info`).
const TIME_OFFSET: usize = core::mem::offset_of!(guest_abi::xen::VcpuInfo, time);
const TIME_SIZE: usize = core::mem::size_of::<guest_abi::xen::VcpuTimeInfo>();

/// Copies vCPU `idx`'s published time (from its `vcpu_info`) to its
/// registered time area, if it has one, as Xen's `write_time_guest_area`
/// does: the version made odd first, then the contents, then the version
/// even. A fault there is the guest's problem and is ignored, as in Xen.
pub fn update_time_area(mem: &mut dyn MachineMemory, d: &Domain, idx: usize) {
    let Some(v) = d.vcpus.get(idx) else { return };
    let Some(area) = v.time_area else { return };
    let (frame, offset) = d.vcpu_info(idx);
    let mut time = [0u8; TIME_SIZE];
    let Some(src) = mem.frame(frame).and_then(|f| f.get(offset + TIME_OFFSET..offset + TIME_OFFSET + TIME_SIZE)) else {
        return;
    };
    time.copy_from_slice(src);
    let version = u32::from_le_bytes([time[0], time[1], time[2], time[3]]);
    let mut guest = crate::guest_access::GuestMemory::new(mem, v.kernel_l4);
    let odd = version.wrapping_sub(1) | 1;
    time[0..4].copy_from_slice(&odd.to_le_bytes());
    if guest.copy_to(area, &odd.to_le_bytes()).is_err() {
        return;
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    let _ = guest.copy_to(area, &time);
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    let _ = guest.copy_to(area, &odd.wrapping_add(1).to_le_bytes());
}

/// `VCPUOP_initialise`: vCPU `idx` gets the context at `arg`, as Xen's
/// `default_initialise_vcpu` gives it: a vCPU with no `vcpu_info` (from
/// vCPU 32 on, until it registers one) is `-EINVAL`; the context is read
/// next (`-EFAULT`); an initialised vCPU is `-EEXIST`; then
/// [`super::vcpu_context::set_info_guest`]. The vCPU stays down unless the
/// context says `VGCF_online`; `VCPUOP_up` brings it up.
fn initialise(ctx: &mut Ctx, idx: usize, arg: u64) -> HcResult {
    if idx >= crate::domain::LEGACY_MAX_VCPUS && ctx.domain.vcpus.get(idx).is_some_and(|v| v.vcpu_info.is_none()) {
        return Err(XenError::Einval);
    }
    let g: guest_abi::arch_x86::VcpuGuestContext = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if ctx.domain.vcpus.get(idx).is_none_or(|v| v.initialised) {
        return Err(XenError::Eexist);
    }
    let fpu_size = ctx.platform.fpu_area_size();
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    super::vcpu_context::set_info_guest(ctx.domain, idx, &g, &mut mmu, fpu_size)?;
    Ok(0)
}

/// The shortest period `VCPUOP_set_periodic_timer` accepts (1 ms).
const MIN_PERIOD_NS: u64 = 1_000_000;

/// `HYPERVISOR_vcpu_op(cmd, vcpuid, arg)`.
pub fn vcpu_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, vcpuid, arg, ..] = args;
    match serve(ctx, cmd as u32, vcpuid as u32, arg) {
        // VCPUOP_initialise's tables stopped part-way: the same call again.
        Err(XenError::Erestart) => Outcome::Continue(args),
        r => r.into(),
    }
}

fn serve(ctx: &mut Ctx, cmd: u32, id: u32, arg: u64) -> HcResult {
    let idx = id as usize;
    if idx >= ctx.domain.vcpus.len() {
        return Err(XenError::Enoent);
    }
    let is_self = idx == ctx.vcpu;
    let now = ctx.now_ns;
    match cmd {
        VCPUOP_IS_UP => Ok(i64::from(ctx.domain.vcpus.get(idx).is_some_and(|v| !v.down))),
        VCPUOP_INITIALISE => initialise(ctx, idx, arg),
        // Xen: only an initialised vCPU comes up; one already up is fine.
        // The system wakes it (out of RUNSTATE_offline) on this entry.
        VCPUOP_UP => {
            let v = ctx.domain.vcpus.get_mut(idx).ok_or(XenError::Enoent)?;
            if !v.initialised {
                return Err(XenError::Einval);
            }
            v.down = false;
            Ok(0)
        }
        // Xen: when no other vCPU is up, the domain powers off (a kernel
        // that halts with events masked, such as Linux after an early
        // panic, ends this way); otherwise the vCPU stops being scheduled,
        // the caller itself on its way out of this hypercall.
        VCPUOP_DOWN => {
            let others_up = ctx.domain.vcpus.iter().enumerate().any(|(i, v)| i != idx && !v.down);
            if !others_up {
                crate::printk!("xenish: d{}: its last vCPU went down (VCPUOP_down)", ctx.domain.id);
                ctx.domain.shutdown(crate::domain::ShutdownReason::Poweroff);
                return Ok(0);
            }
            let here = ctx.domain.vcpus.get(ctx.vcpu).and_then(|v| v.running_on);
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                // The caller's runstate changes when it leaves the CPU, as
                // does that of a vCPU another CPU runs (Xen's
                // vcpu_sleep_nosync: that CPU is kicked, System::kicks).
                let elsewhere = v.running_on.is_some_and(|c| Some(c) != here);
                v.note_exit_work();
                if !core::mem::replace(&mut v.down, true) && !is_self && !elsewhere {
                    v.runstate.enter(RUNSTATE_OFFLINE, now);
                }
            }
            Ok(0)
        }
        VCPUOP_GET_RUNSTATE_INFO => {
            let mut rs = ctx.domain.vcpus.get(idx).map(|v| v.runstate).ok_or(XenError::Enoent)?;
            rs.enter(rs.state, now); // bring the current state's time up to date
            let bytes = rs.to_bytes();
            ctx.guest().copy_to(arg, &bytes).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
            let area: u64 = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            let Some(v) = ctx.domain.vcpus.get(idx) else { return Err(XenError::Enoent) };
            let mut rs = v.runstate;
            rs.enter(rs.state, now);
            // Xen's guest_handle_okay looks at where the area starts. A
            // null handle unregisters; otherwise the area is written now
            // and on every runstate change, a fault there ignored.
            if !crate::guest_access::is_guest_addr(area) {
                return Err(XenError::Efault);
            }
            if area != 0 {
                let _ = ctx.guest().copy_to(area, &rs.to_bytes());
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.runstate_area = (area != 0).then_some(area);
            }
            Ok(0)
        }
        VCPUOP_SET_PERIODIC_TIMER => {
            let period: u64 = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            // At least 1 ms, at most Xen's STIME_DELTA_MAX.
            if period < MIN_PERIOD_NS || period > i64::MAX as u64 {
                return Err(XenError::Einval);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.periodic_ns = Some((period, now.saturating_add(period)));
                // A sibling's timer: the CPU that may run it arms again.
                v.timers_moved |= !is_self;
            }
            Ok(0)
        }
        VCPUOP_STOP_PERIODIC_TIMER => {
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.periodic_ns = None;
                v.timers_moved |= !is_self;
            }
            Ok(0)
        }
        VCPUOP_SET_SINGLESHOT_TIMER => {
            if !is_self {
                return Err(XenError::Einval);
            }
            let mut raw = [0u8; 16];
            ctx.guest().copy_from(arg, &mut raw).map_err(|_| XenError::Efault)?;
            let timeout = u64::from_le_bytes(raw[0..8].try_into().unwrap_or([0; 8]));
            let flags = u32::from_le_bytes(raw[8..12].try_into().unwrap_or([0; 4]));
            if flags & VCPU_SSHOTTMR_FUTURE != 0 && timeout < now {
                return Err(XenError::Etime);
            }
            // A deadline in the past fires at once (Linux relies on 0 here).
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.singleshot_ns = Some(timeout);
            }
            Ok(0)
        }
        VCPUOP_STOP_SINGLESHOT_TIMER => {
            if !is_self {
                return Err(XenError::Einval);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.singleshot_ns = None;
            }
            Ok(0)
        }
        VCPUOP_REGISTER_VCPU_INFO => {
            let info: VcpuRegisterVcpuInfo = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            register_vcpu_info(ctx, idx, Mfn(info.mfn), info.offset as usize)
        }
        VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => {
            let area: u64 = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
            // Xen's guest_handle_okay: the area starts in the guest's part
            // of the address space (a copy that runs off it faults, and
            // that is ignored).
            if !crate::guest_access::is_guest_addr(area) {
                return Err(XenError::Efault);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.time_area = (area != 0).then_some(area);
            }
            update_time_area(ctx.mem, ctx.domain, idx);
            Ok(0)
        }
        VCPUOP_SEND_NMI => {
            // The argument must be null; the NMI reaches the vCPU's NMI
            // handler on its way back to the guest (one pending at most).
            if arg != 0 {
                return Err(XenError::Einval);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(idx) {
                v.nmi_pending = true;
            }
            Ok(0)
        }
        // Xen answers only for a vCPU of the hardware domain whose hard
        // affinity is one physical CPU (on one CPU, every control domain
        // vCPU): the APIC ID and ACPI processor ID of the CPU numbered as
        // the vCPU (Xen's `x86_cpu_to_apicid[vcpu_id]`), which
        // XENPF_get_cpuinfo reports as the CPU's index.
        VCPUOP_GET_PHYSID => {
            ctx.privileged().map_err(|_| XenError::Einval)?;
            let hard = ctx.domain.tools.affinity(idx).0 & ctx.sched.online_mask();
            if hard.count_ones() != 1 {
                return Err(XenError::Einval);
            }
            let phys_id: u64 = (idx as u64) | (idx as u64) << 32;
            ctx.guest().write(arg, &phys_id).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        // Not in Xen 4.17's vcpu.h (14 and 15 came with Xen 4.18).
        _ => Err(XenError::Enosys),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::HYPERVISOR_VCPU_OP;

    const NR: u64 = HYPERVISOR_VCPU_OP as u64;

    fn call(w: &mut World, cmd: u32, vcpu: u64, arg: u64) -> i64 {
        w.call_ret(NR, [cmd as u64, vcpu, arg, 0, 0])
    }

    fn register(w: &mut World, mfn: u64, offset: u32) -> i64 {
        let info = VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 };
        w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&info));
        call(w, VCPUOP_REGISTER_VCPU_INFO, 0, BUF_VA)
    }

    #[test]
    fn the_last_vcpu_going_down_powers_the_domain_off() {
        let mut w = World::new(false);
        assert_eq!(call(&mut w, VCPUOP_DOWN, 1, 0), -2, "no such vCPU: ENOENT");
        assert!(w.dom.is_alive());
        assert_eq!(call(&mut w, VCPUOP_DOWN, 0, 0), 0);
        assert_eq!(w.dom.state, crate::domain::DomainState::Shutdown(crate::domain::ShutdownReason::Poweroff));
    }

    #[test]
    fn vcpu_info_moves_with_its_contents_and_events_follow() {
        let mut w = World::new(false);
        w.mem.0[8][0x20..0x28].copy_from_slice(&0x1234u64.to_le_bytes()); // time.version etc.
        for (mfn, offset, errno, what) in [
            (9, 4096 - 32, -6, "does not fit: ENXIO"),
            (9, 68, -6, "misaligned: ENXIO"),
            (2, 64, -22, "a page table"),
            (99, 64, -22, "a frame not its own"),
        ] {
            assert_eq!(register(&mut w, mfn, offset), errno, "{what}");
        }
        assert_eq!(w.dom.vcpu_info(0), (Mfn(8), 0), "still in shared_info");
        assert_eq!(register(&mut w, 9, 128), 0);
        assert_eq!(w.dom.vcpu_info(0), (Mfn(9), 128));
        let moved = &w.mem.0[9][128..192];
        assert_eq!(&moved[0x20..0x28], &0x1234u64.to_le_bytes(), "the contents came along");
        assert_eq!((moved[0], &moved[8..16]), (1, &u64::MAX.to_le_bytes()[..]), "everything marked pending");
        assert_eq!(register(&mut w, 9, 192), -22, "only once");
        // An event now raises the selector in the new place.
        w.mem.0[9][128..192].fill(0);
        let info = w.dom.vcpu_info(0);
        assert!(crate::evtchn::two_level::set_pending(&mut w.mem, w.dom.shared_info, 3, info));
        assert_eq!((w.mem.0[9][128], w.mem.0[9][136]), (1, 1 << 0), "upcall pending, selector word 0");
    }

    #[test]
    fn absent_vcpus_are_enoent_fast() {
        let mut w = World::new(false);
        assert_eq!(call(&mut w, VCPUOP_IS_UP, 0, 0), 1);
        for id in [1u64, 8191, 1 << 32] {
            assert_eq!(call(&mut w, VCPUOP_IS_UP, id, 0), if id == 1 << 32 { 1 } else { -2 }, "vcpu {id}");
        }
        assert_eq!(call(&mut w, VCPUOP_INITIALISE, 0, 0x10), -14, "the context is read first");
        assert_eq!(call(&mut w, VCPUOP_INITIALISE, 0, BUF_VA), -17);
        assert_eq!(call(&mut w, VCPUOP_REGISTER_VCPU_INFO, 0, 0), -14, "a bad pointer");
    }

    #[test]
    fn an_nmi_is_sent_with_a_null_argument_and_only_the_control_domain_learns_its_cpu() {
        let mut w = World::new(true);
        assert_eq!(call(&mut w, VCPUOP_SEND_NMI, 1, 0), -2, "no vCPU 1");
        assert_eq!(call(&mut w, VCPUOP_SEND_NMI, 0, BUF_VA), -22, "a non-null argument");
        assert!(!w.dom.vcpus[0].nmi_pending);
        assert_eq!(call(&mut w, VCPUOP_SEND_NMI, 0, 0), 0);
        assert!(w.dom.vcpus[0].nmi_pending);
        assert_eq!(call(&mut w, VCPUOP_SEND_NMI, 0, 0), 0, "a second one merges with the first");
        w.poke(BUF_VA, &[0xff; 8]);
        assert_eq!(call(&mut w, VCPUOP_GET_PHYSID, 0, BUF_VA), 0, "the control domain's vCPU is on CPU 0");
        assert_eq!(w.peek(BUF_VA, 8), [0; 8], "APIC ID 0, ACPI ID 0");
        assert_eq!(call(&mut w, VCPUOP_GET_PHYSID, 0, 0x10), -14);
        let mut domu = World::new(false);
        assert_eq!(call(&mut domu, VCPUOP_GET_PHYSID, 0, 0x10), -22, "a domU: refused before the copy");
        for cmd in [14, 15, 99] {
            assert_eq!(call(&mut w, cmd, 0, BUF_VA), -38, "no sub-op {cmd} in Xen 4.17");
        }
    }

    #[test]
    fn the_time_area_gets_a_copy_of_the_vcpus_time() {
        let mut w = World::new(false);
        w.mem.0[8][0x20..0x40].copy_from_slice(&[7; 32]);
        w.mem.0[8][0x20..0x24].copy_from_slice(&4u32.to_le_bytes()); // version 4
        w.poke(BUF_VA, &(BUF_VA + 0x100).to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, BUF_VA), 0);
        assert_eq!(w.dom.vcpus[0].time_area, Some(BUF_VA + 0x100));
        let copy = w.peek(BUF_VA + 0x100, 32);
        assert_eq!((&copy[0..4], &copy[4..]), (&4u32.to_le_bytes()[..], &[7; 28][..]), "contents, even version");
        w.poke(BUF_VA, &0xffff_8000_0000_0000u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, BUF_VA), -14, "in Xen's hole");
        w.poke(BUF_VA, &0x7fff_ffff_fff0u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, BUF_VA), 0, "only the start is checked");
        w.poke(BUF_VA, &0u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, BUF_VA), 0);
        assert_eq!(w.dom.vcpus[0].time_area, None, "a null address unregisters");
    }

    #[test]
    fn timers_follow_xen() {
        let mut w = World::new(false);
        let now = w.now_ns;
        w.poke(BUF_VA, &500_000u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_SET_PERIODIC_TIMER, 0, BUF_VA), -22, "under 1 ms");
        w.poke(BUF_VA, &(1u64 << 63).to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_SET_PERIODIC_TIMER, 0, BUF_VA), -22, "beyond STIME_DELTA_MAX");
        w.poke(BUF_VA, &10_000_000u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_SET_PERIODIC_TIMER, 0, BUF_VA), 0);
        assert_eq!(w.dom.vcpus[0].periodic_ns, Some((10_000_000, now + 10_000_000)));
        assert_eq!(call(&mut w, VCPUOP_STOP_PERIODIC_TIMER, 0, 0), 0);
        assert_eq!(w.dom.vcpus[0].periodic_ns, None);
        let mut arg = [0u8; 16];
        arg[..8].copy_from_slice(&(now - 5).to_le_bytes());
        w.poke(BUF_VA, &arg);
        assert_eq!(call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, 0, BUF_VA), 0, "past deadline: fires now");
        arg[8] = VCPU_SSHOTTMR_FUTURE as u8;
        w.poke(BUF_VA, &arg);
        assert_eq!(call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, 0, BUF_VA), -62, "future flag");
        assert_eq!(call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, 0, 0x10), -14);
    }

    #[test]
    fn runstate_area_is_written_and_kept() {
        let mut w = World::new(false);
        w.dom.vcpus[0].runstate.enter(crate::domain::RUNSTATE_RUNNING, 100);
        w.poke(BUF_VA, &(BUF_VA + 0x100).to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, BUF_VA), 0);
        assert_eq!(w.dom.vcpus[0].runstate_area, Some(BUF_VA + 0x100));
        let rs = w.peek(BUF_VA + 0x100, 48);
        assert_eq!(rs[0..4], [0, 0, 0, 0], "running");
        assert_eq!(u64::from_le_bytes(rs[8..16].try_into().unwrap()), w.now_ns);
        assert_eq!(call(&mut w, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, BUF_VA), 0, "re-registration succeeds");
        w.poke(BUF_VA, &0x10u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, BUF_VA), 0, "unmapped: kept, as in Xen");
        assert_eq!(w.dom.vcpus[0].runstate_area, Some(0x10));
        w.poke(BUF_VA, &0xffff_8000_0000_0000u64.to_le_bytes());
        assert_eq!(call(&mut w, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, BUF_VA), -14, "in Xen's hole");
        assert_eq!(call(&mut w, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, 0x10), -14);
        assert_eq!(call(&mut w, VCPUOP_GET_RUNSTATE_INFO, 0, BUF_VA + 0x200), 0);
    }
}
