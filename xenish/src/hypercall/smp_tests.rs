//! Host tests of domains with several vCPUs: `VCPUOP_initialise`, `up`,
//! `down`, `is_up` and the rules for down targets, per-vCPU events and
//! timers, `*_MULTI` flush masks, `max_vcpus`/`setvcpucontext` from the
//! toolstack, and the scheduler's per-domain weight and cap. Every call
//! goes through `World::call`, which audits the frame table after it.

use guest_abi::arch_x86::{VcpuGuestContext, VGCF_IN_KERNEL, VGCF_ONLINE};
use guest_abi::event_channel::*;
use guest_abi::vcpu::*;
use guest_abi::xen::{HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_MMUEXT_OP, HYPERVISOR_VCPU_OP};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::tests::{World, BUF_VA};
use crate::domain::{DomainState, ShutdownReason, RUNSTATE_OFFLINE};
use crate::mm::frame_table::PageType;
use crate::mm::Mfn;
use crate::sched::{Pick, SchedParams, Scheduler, VcpuRef};

const VCPU_OP: u64 = HYPERVISOR_VCPU_OP as u64;
const EVTCHN_OP: u64 = HYPERVISOR_EVENT_CHANNEL_OP as u64;
/// Where tests put a `vcpu_guest_context` (it spans two pages).
const CTX_VA: u64 = BUF_VA + 0x1000;
/// The domain's free frame a test makes a GDT of.
const GDT_MFN: u64 = 9;

/// The world's domain with `n` vCPUs: vCPU 0 running, the others as
/// `max_vcpus` makes them (down, uninitialised).
fn world(n: u32) -> World {
    let mut w = World::new(false);
    w.dom.max_vcpus = n;
    w.dom.create_offline_vcpus(512, 0);
    for v in 1..n as usize {
        let who = VcpuRef { domain: 0, vcpu: v };
        w.sched.add(who, SchedParams::default());
        w.sched.sleep(who);
    }
    w
}

fn vcpu_op(w: &mut World, cmd: u32, vcpu: u64, arg: u64) -> i64 {
    w.call_ret(VCPU_OP, [u64::from(cmd), vcpu, arg, 0, 0])
}

/// A context as Linux's `cpu_initialize_context` builds one: kernel mode,
/// not online, its own GDT (frame 9: a 64-bit code segment at 0x10 and a
/// data segment at 0x18), CS/SS from it, the domain's L4.
fn linux_context() -> VcpuGuestContext {
    let mut g = VcpuGuestContext::new_zeroed();
    g.flags = VGCF_IN_KERNEL;
    let r = &mut g.user_regs;
    (r.rip, r.rsp, r.rflags) = (0x40_0000, 0x40_2000, 0x1000);
    (r.cs, r.ss, r.ds, r.es) = (0x10, 0x18, 0x2b, 0x2b);
    g.gdt_frames[0] = GDT_MFN;
    g.gdt_ents = 16;
    (g.kernel_ss, g.kernel_sp) = (0x18, 0x40_2000);
    g.gs_base_kernel = 0xffff_8880_0010_0000;
    (g.event_callback_eip, g.failsafe_callback_eip) = (0x40_1000, 0x40_1100);
    g.ctrlreg[3] = 0;
    g
}

/// Writes Linux-like GDT entries into frame 9 (entry 5: the user data
/// segment 0x2b).
fn make_gdt(w: &mut World) {
    let gdt = &mut w.mem.0[GDT_MFN as usize];
    gdt[0x10..0x18].copy_from_slice(&0x00af_9a00_0000_ffffu64.to_le_bytes());
    gdt[0x18..0x20].copy_from_slice(&0x00cf_9200_0000_ffffu64.to_le_bytes());
    gdt[0x28..0x30].copy_from_slice(&0x00cf_f200_0000_ffffu64.to_le_bytes());
}

fn initialise(w: &mut World, vcpu: u64, g: &VcpuGuestContext) -> i64 {
    w.poke(CTX_VA, g.as_bytes());
    vcpu_op(w, VCPUOP_INITIALISE, vcpu, CTX_VA)
}

#[test]
fn is_up_names_every_vcpu_and_only_vcpu_0_is_up() {
    let mut w = world(3);
    assert_eq!(
        [0, 1, 2, 3].map(|v| vcpu_op(&mut w, VCPUOP_IS_UP, v, 0)),
        [1, 0, 0, -2],
        "0 up, 1 and 2 down, 3 absent (ENOENT)"
    );
    assert_eq!(w.dom.vcpus[1].runstate.state, RUNSTATE_OFFLINE);
}

#[test]
fn initialise_checks_as_arch_set_info_guest_and_up_needs_it() {
    let mut w = world(2);
    make_gdt(&mut w);
    assert_eq!(vcpu_op(&mut w, VCPUOP_UP, 1, 0), -22, "not initialised: EINVAL");
    assert_eq!(vcpu_op(&mut w, VCPUOP_INITIALISE, 1, 0x10), -14, "the context is read first");
    type Spoil = fn(&mut VcpuGuestContext);
    let bad: [(Spoil, &str); 11] = [
        (|g| g.user_regs.rip = 1 << 47, "a non-canonical rip"),
        (|g| g.kernel_sp = 1 << 47, "a non-canonical kernel_sp"),
        (|g| g.event_callback_eip = 1 << 47, "a non-canonical callback"),
        (|g| g.trap_ctxt[14].address = 1 << 47, "a non-canonical trap handler"),
        (|g| (g.ldt_ents, g.ldt_base) = (1, 1 << 47), "a non-canonical LDT base"),
        (|g| (g.ldt_ents, g.ldt_base) = (1, 0x40_0800), "an unaligned LDT base"),
        (|g| (g.ldt_ents, g.ldt_base) = (1, 0xffff_8000_0000_0000), "an LDT in Xen's hole"),
        (|g| g.ldt_ents = 8193, "too many LDT entries"),
        (|g| g.flags = 0, "user mode without a user table"),
        (|g| g.gdt_ents = 14 * 512 + 1, "too many GDT entries"),
        (|g| g.user_regs.cs = 0x20, "a code selector past the GDT's entries"),
    ];
    for (spoil, what) in bad {
        let mut g = linux_context();
        spoil(&mut g);
        assert_eq!(initialise(&mut w, 1, &g), -22, "{what}");
    }
    let mut g = linux_context();
    g.gdt_frames[0] = 4; // mapped writable at BUF_VA
    assert_eq!(initialise(&mut w, 1, &g), -22, "a GDT frame the guest maps writable");
    let mut g = linux_context();
    g.ctrlreg[3] = 5 << 12;
    assert_eq!(initialise(&mut w, 1, &g), -22, "a CR3 that cannot be an L4");
    assert_eq!(w.ft.page_type(Mfn(GDT_MFN)), PageType::None, "refusals drop the GDT reference again");
    assert!(!w.dom.vcpus[1].initialised);

    assert_eq!(initialise(&mut w, 1, &linux_context()), 0);
    let v = &w.dom.vcpus[1];
    assert!(v.initialised && v.down, "initialised, still down without VGCF_online");
    assert_eq!((v.regs.cs, v.regs.ss, v.regs.rflags, v.iopl), (0x13, 0x1b, 0x202, 1), "RPL 3, IOPL virtual");
    assert_eq!((v.segments.ds, v.segments.gs_base, v.kernel_l4), (0x2b, 0xffff_8880_0010_0000, Mfn(0)));
    assert_eq!(v.gdt_frames, [Mfn(GDT_MFN)]);
    assert_eq!(w.ft.page_type(Mfn(GDT_MFN)), PageType::SegDesc);
    assert_eq!(initialise(&mut w, 1, &linux_context()), -17, "once: EEXIST");
    assert_eq!(vcpu_op(&mut w, VCPUOP_INITIALISE, 0, CTX_VA), -17, "vCPU 0 was built");
    assert_eq!(vcpu_op(&mut w, VCPUOP_IS_UP, 1, 0), 0);
    assert_eq!(vcpu_op(&mut w, VCPUOP_UP, 1, 0), 0);
    assert_eq!(vcpu_op(&mut w, VCPUOP_IS_UP, 1, 0), 1);
    assert_eq!(vcpu_op(&mut w, VCPUOP_UP, 1, 0), 0, "up again: fine");
}

#[test]
fn vcpus_past_32_need_a_registered_vcpu_info_to_initialise() {
    let mut w = world(34);
    make_gdt(&mut w);
    assert_eq!(initialise(&mut w, 33, &linux_context()), -22, "no vcpu_info slot in shared_info");
    assert_eq!(w.dom.vcpu_info(33), (Mfn(8), crate::mm::PAGE_SIZE), "the dummy: nothing of shared_info");
    let info = VcpuRegisterVcpuInfo { mfn: 9 - 2, offset: 64, rsvd: 0 };
    w.poke(BUF_VA, info.as_bytes());
    // Frame 7 is a data page of the domain (BUF_VA + 0x3000).
    assert_eq!(vcpu_op(&mut w, VCPUOP_REGISTER_VCPU_INFO, 33, BUF_VA), 0, "a down vCPU may be given one");
    assert_eq!(initialise(&mut w, 31, &linux_context()), 0, "vCPU 31 has its shared_info slot");
    assert_eq!(initialise(&mut w, 33, &linux_context()), 0, "with a vcpu_info of its own");
}

#[test]
fn down_stops_a_vcpu_and_the_last_one_powers_the_domain_off() {
    let mut w = world(2);
    make_gdt(&mut w);
    let mut g = linux_context();
    g.flags |= VGCF_ONLINE;
    assert_eq!(initialise(&mut w, 1, &g), 0);
    assert!(!w.dom.vcpus[1].down, "VGCF_online: up at once");
    assert_eq!(vcpu_op(&mut w, VCPUOP_DOWN, 1, 0), 0);
    assert!(w.dom.vcpus[1].down && w.dom.is_alive(), "vCPU 0 is still up");
    assert_eq!(w.dom.vcpus[1].runstate.state, RUNSTATE_OFFLINE);
    assert_eq!(vcpu_op(&mut w, VCPUOP_DOWN, 1, 0), 0, "down again: vCPU 0 is up, so nothing happens");
    assert!(w.dom.is_alive());
    assert_eq!(vcpu_op(&mut w, VCPUOP_UP, 1, 0), 0);
    assert_eq!(vcpu_op(&mut w, VCPUOP_DOWN, 0, 0), 0, "the caller itself goes down");
    assert!(w.dom.vcpus[0].down && w.dom.is_alive());
    // vCPU 1, the only one up now, goes down too: the domain powers off.
    w.vcpu = 1;
    assert_eq!(vcpu_op(&mut w, VCPUOP_DOWN, 1, 0), 0);
    assert_eq!(w.dom.state, DomainState::Shutdown(ShutdownReason::Poweroff));
}

#[test]
fn down_targets_take_vcpu_info_runstate_area_timers_but_not_the_singleshot() {
    let mut w = world(3);
    make_gdt(&mut w);
    let info = VcpuRegisterVcpuInfo { mfn: 7, offset: 64, rsvd: 0 };
    w.poke(BUF_VA, info.as_bytes());
    assert_eq!(vcpu_op(&mut w, VCPUOP_REGISTER_VCPU_INFO, 1, BUF_VA), 0, "vCPU 1 is down");
    assert_eq!(w.dom.vcpu_info(1), (Mfn(7), 64));
    let mut g = linux_context();
    g.flags |= VGCF_ONLINE;
    g.gdt_ents = 0;
    (g.user_regs.cs, g.user_regs.ss) = (0xe033, 0xe02b);
    assert_eq!(initialise(&mut w, 2, &g), 0);
    let info = VcpuRegisterVcpuInfo { mfn: 7, offset: 128, rsvd: 0 };
    w.poke(BUF_VA, info.as_bytes());
    assert_eq!(vcpu_op(&mut w, VCPUOP_REGISTER_VCPU_INFO, 2, BUF_VA), -22, "another vCPU that is up: EINVAL");
    // The runstate area of another vCPU is written at once, through the
    // caller's address space.
    w.poke(BUF_VA, &(BUF_VA + 0x100).to_le_bytes());
    assert_eq!(vcpu_op(&mut w, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 1, BUF_VA), 0);
    assert_eq!(w.dom.vcpus[1].runstate_area, Some(BUF_VA + 0x100));
    assert_eq!(w.peek(BUF_VA + 0x100, 4), 3u32.to_le_bytes(), "RUNSTATE_offline");
    assert_eq!(vcpu_op(&mut w, VCPUOP_GET_RUNSTATE_INFO, 2, BUF_VA + 0x200), 0);
    w.poke(BUF_VA, &10_000_000u64.to_le_bytes());
    assert_eq!(vcpu_op(&mut w, VCPUOP_SET_PERIODIC_TIMER, 1, BUF_VA), 0, "any vCPU's periodic timer");
    assert!(w.dom.vcpus[1].periodic_ns.is_some());
    w.poke(BUF_VA, &[0; 16]);
    assert_eq!(vcpu_op(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, 1, BUF_VA), -22, "only the vCPU itself");
    assert_eq!(vcpu_op(&mut w, VCPUOP_STOP_SINGLESHOT_TIMER, 2, 0), -22);
    w.vcpu = 2;
    assert_eq!(vcpu_op(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, 2, BUF_VA), 0, "vCPU 2 sets its own");
    assert_eq!(w.dom.vcpus[2].singleshot_ns, Some(0));
    assert_eq!(w.dom.vcpus[0].singleshot_ns, None);
}

fn evtchn<T: IntoBytes + FromBytes + zerocopy::Immutable>(w: &mut World, cmd: u32, arg: &T) -> (i64, T) {
    w.poke(BUF_VA, arg.as_bytes());
    let rc = w.call_ret(EVTCHN_OP, [u64::from(cmd), BUF_VA, 0, 0, 0]);
    (rc, T::read_from_bytes(&w.peek(BUF_VA, size_of::<T>())).unwrap())
}

fn ipi(vcpu: u32) -> EvtchnBindIpi {
    let mut b = EvtchnBindIpi::new_zeroed();
    b.vcpu = vcpu;
    b
}

fn virq(vcpu: u32) -> EvtchnBindVirq {
    let mut b = EvtchnBindVirq::new_zeroed();
    b.vcpu = vcpu; // VIRQ_TIMER is 0
    b
}

#[test]
fn ipis_and_virqs_bind_to_down_vcpus_and_raise_their_vcpu_info() {
    let mut w = world(2);
    w.mem.0[8][64 + 1] = 0; // vCPU 1's upcall mask (slot 1 of shared_info)
    let (rc, bound) = evtchn(&mut w, EVTCHNOP_BIND_IPI, &ipi(1));
    assert_eq!(rc, 0, "vCPU 1 is down: fine");
    let (rc, timer) = evtchn(&mut w, EVTCHNOP_BIND_VIRQ, &virq(1));
    assert_eq!(rc, 0);
    assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_IPI, &ipi(2)).0, -2, "no vCPU 2");
    assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_VIRQ, &virq(2)).0, -2);
    assert_eq!(w.dom.evtchn.virq_port(0, 1), Some(timer.port));
    // A send reaches vCPU 1's vcpu_info only.
    assert_eq!(
        evtchn(&mut w, EVTCHNOP_SEND, &{
            let mut x = EvtchnSend::new_zeroed();
            x.port = bound.port;
            x
        })
        .0,
        0
    );
    assert_eq!((w.mem.0[8][0], w.mem.0[8][64]), (0, 1), "vCPU 1's upcall pending, not vCPU 0's");
    // Its timer VIRQ too.
    w.mem.0[8][64] = 0;
    w.mem.0[8][72..80].fill(0); // its evtchn_pending_sel
    assert!(crate::evtchn::send_virq(&mut w.dom, &mut w.mem, 0, 1));
    assert_eq!(w.mem.0[8][64], 1);
    // EVTCHNOP_bind_vcpu moves an IPI's notifications (not a per-vCPU VIRQ).
    let mut unbound = EvtchnAllocUnbound::new_zeroed();
    (unbound.dom, unbound.remote_dom) = (guest_abi::xen::DOMID_SELF, 0);
    let (rc, port) = evtchn(&mut w, EVTCHNOP_ALLOC_UNBOUND, &unbound);
    assert_eq!(rc, 0);
    let bind = |port: u32, vcpu: u32| {
        let mut b = EvtchnBindVcpu::new_zeroed();
        (b.port, b.vcpu) = (port, vcpu);
        b
    };
    assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_VCPU, &bind(port.port, 1)).0, 0);
    assert_eq!(w.dom.evtchn.port(port.port).map(|p| p.notify_vcpu), Some(1));
    assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_VCPU, &bind(timer.port, 0)).0, -22, "a per-vCPU VIRQ stays");
    assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_VCPU, &bind(port.port, 2)).0, -2, "no vCPU 2: ENOENT");
}

#[test]
fn multi_flush_masks_are_read_as_xen_reads_them() {
    let mut w = world(2);
    let mask_va = BUF_VA + 0x2000;
    let flush = |w: &mut World, cmd: u32, mask: u64| {
        let mut op = [0u8; 24];
        op[0..4].copy_from_slice(&cmd.to_le_bytes());
        op[8..16].copy_from_slice(&0x1234_5000u64.to_le_bytes());
        op[16..24].copy_from_slice(&mask.to_le_bytes());
        w.poke(BUF_VA, &op);
        w.call_ret(u64::from(HYPERVISOR_MMUEXT_OP), [BUF_VA, 1, 0, 0x7ff0, 0])
    };
    use guest_abi::xen::{MMUEXT_INVLPG_MULTI, MMUEXT_TLB_FLUSH_MULTI};
    w.poke(mask_va, &0b11u64.to_le_bytes());
    assert_eq!(flush(&mut w, MMUEXT_TLB_FLUSH_MULTI, mask_va), 0);
    assert_eq!(w.tlb, super::TlbFlush::All, "the caller is in the mask: flushed here");
    w.poke(mask_va, &0b10u64.to_le_bytes());
    assert_eq!(flush(&mut w, MMUEXT_TLB_FLUSH_MULTI, mask_va), 0);
    assert_eq!(w.tlb, super::TlbFlush::None, "vCPU 1 never ran: nothing to flush");
    w.poke(mask_va, &u64::MAX.to_le_bytes());
    assert_eq!(flush(&mut w, MMUEXT_INVLPG_MULTI, mask_va), 0, "bits past max_vcpus end the walk");
    assert_eq!(w.tlb, super::TlbFlush::Page(0x1234_5000));
    assert_eq!(flush(&mut w, MMUEXT_TLB_FLUSH_MULTI, 0x10), -22, "an unreadable mask: EINVAL");
    assert_eq!(flush(&mut w, MMUEXT_INVLPG_MULTI, 0), -22);
    // A mask that ends where the page does is read one word at a time:
    // two vCPUs need only the first word.
    w.poke(BUF_VA + 0x3ff8, &1u64.to_le_bytes());
    assert_eq!(flush(&mut w, MMUEXT_TLB_FLUSH_MULTI, BUF_VA + 0x3ff8), 0);
}

#[test]
fn flushes_go_to_the_cpus_the_named_vcpus_dirtied() {
    use crate::flush::note_loaded;
    use crate::ipi::CpuMask;
    use guest_abi::xen::{
        HYPERVISOR_UPDATE_VA_MAPPING, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_TLB_FLUSH_ALL,
        MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, UVMF_ALL, UVMF_INVLPG, UVMF_TLB_FLUSH,
    };
    let mut w = world(3);
    // vCPU 0 (the caller) runs on CPU 0, vCPU 1 ran on CPU 1, vCPU 2 on 2.
    let on = |w: &mut World, cpu, prev, vcpu| {
        let at = |v: Option<usize>| v.map(|vcpu| VcpuRef { domain: 0, vcpu });
        note_loaded(core::slice::from_mut(&mut w.dom), cpu, at(prev), at(vcpu));
    };
    on(&mut w, 1, None, Some(1));
    on(&mut w, 2, None, Some(2));
    let cpus = |list: &[usize]| list.iter().fold(CpuMask::EMPTY, |m, &c| m.with(c));
    let mask_va = BUF_VA + 0x2000;
    let ext = |w: &mut World, cmd: u32, mask: u64| {
        let mut op = [0u8; 24];
        op[0..4].copy_from_slice(&cmd.to_le_bytes());
        op[8..16].copy_from_slice(&0x1234_5000u64.to_le_bytes());
        op[16..24].copy_from_slice(&mask.to_le_bytes());
        w.poke(BUF_VA, &op);
        let r = w.call_ret(u64::from(HYPERVISOR_MMUEXT_OP), [BUF_VA, 1, 0, 0x7ff0, 0]);
        (r, w.tlb, w.tlb_cpus)
    };
    use super::TlbFlush::{All, Page};
    w.poke(mask_va, &0b010u64.to_le_bytes());
    assert_eq!(ext(&mut w, MMUEXT_TLB_FLUSH_MULTI, mask_va), (0, All, cpus(&[1])), "vCPU 1 alone: its CPU");
    w.poke(mask_va, &0b111u64.to_le_bytes());
    assert_eq!(ext(&mut w, MMUEXT_TLB_FLUSH_MULTI, mask_va), (0, All, cpus(&[0, 1, 2])), "the caller too");
    assert_eq!(ext(&mut w, MMUEXT_TLB_FLUSH_LOCAL, 0), (0, All, cpus(&[0])));
    assert_eq!(ext(&mut w, MMUEXT_INVLPG_LOCAL, 0), (0, Page(0x1234_5000), cpus(&[0])));
    assert_eq!(ext(&mut w, MMUEXT_TLB_FLUSH_ALL, 0), (0, All, cpus(&[0, 1, 2])), "the domain's dirty CPUs");
    assert_eq!(ext(&mut w, MMUEXT_INVLPG_ALL, 0), (0, Page(0x1234_5000), cpus(&[0, 1, 2])));
    // CPU 2 switches to another domain's tables: the domain is clean there,
    // and vCPU 2 too (it must run again to dirty a CPU).
    on(&mut w, 2, Some(2), None);
    assert_eq!(w.dom.dirty_cpus, cpus(&[0, 1]));
    assert_eq!(ext(&mut w, MMUEXT_TLB_FLUSH_ALL, 0), (0, All, cpus(&[0, 1])));
    w.poke(mask_va, &0b100u64.to_le_bytes());
    assert_eq!(ext(&mut w, MMUEXT_TLB_FLUSH_MULTI, mask_va), (0, super::TlbFlush::None, CpuMask::EMPTY));

    // update_va_mapping's flags: LOCAL, ALL, or a pointer to a vCPU mask
    // (a fault there is EFAULT, after the entry was written).
    let va = BUF_VA + 0x3000;
    let uva = |w: &mut World, flags: u64| {
        let r = w.call_ret(u64::from(HYPERVISOR_UPDATE_VA_MAPPING), [va, (7 << 12) | 0x67, flags, 0, 0]);
        (r, w.tlb, w.tlb_cpus)
    };
    let (invlpg, flush_all) = (u64::from(UVMF_INVLPG), u64::from(UVMF_TLB_FLUSH));
    assert_eq!(uva(&mut w, invlpg), (0, Page(va), cpus(&[0])));
    assert_eq!(uva(&mut w, invlpg | u64::from(UVMF_ALL)), (0, Page(va), cpus(&[0, 1])));
    w.poke(mask_va, &0b011u64.to_le_bytes());
    assert_eq!(uva(&mut w, flush_all | mask_va), (0, All, cpus(&[0, 1])));
    assert_eq!(uva(&mut w, flush_all | 0x10).0, -14, "an unreadable mask: EFAULT");
}

#[test]
fn a_frame_that_becomes_a_page_table_is_flushed_where_its_owner_ran() {
    use crate::flush::note_loaded;
    use crate::ipi::CpuMask;
    use guest_abi::xen::{MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};
    let mut w = world(2);
    // vCPU 1 ran on CPU 3: a stale writable translation of the frame may
    // be there.
    note_loaded(core::slice::from_mut(&mut w.dom), 3, None, Some(VcpuRef { domain: 0, vcpu: 1 }));
    let op = |w: &mut World, cmd: u32| {
        let mut op = [0u8; 24];
        op[0..4].copy_from_slice(&cmd.to_le_bytes());
        op[8..16].copy_from_slice(&GDT_MFN.to_le_bytes());
        w.poke(BUF_VA, &op);
        let r = w.call_ret(u64::from(HYPERVISOR_MMUEXT_OP), [BUF_VA, 1, 0, 0x7ff0, 0]);
        (r, w.tlb, w.tlb_cpus)
    };
    let both = CpuMask::of(0).with(3);
    assert_eq!(op(&mut w, MMUEXT_PIN_L1_TABLE), (0, super::TlbFlush::All, both), "writable to L1: flushed");
    assert_eq!(op(&mut w, MMUEXT_UNPIN_TABLE), (0, super::TlbFlush::None, CpuMask::EMPTY), "L1 to nothing");
}

#[test]
fn the_scheduler_shares_weight_and_cap_per_domain() {
    // Domain 0 keeps two vCPUs busy, domain 1 one, equal weights: each
    // domain gets half the CPU.
    let mut s = Scheduler::new();
    let all = [(0, 0), (0, 1), (1, 0)].map(|(domain, vcpu)| VcpuRef { domain, vcpu });
    for who in all {
        s.add(who, SchedParams::default());
    }
    let mut ran = [0u64; 2];
    let mut now = 0;
    while now < 3_000_000_000 {
        let Pick::Run { who, until_ns } = s.pick(now) else { panic!("busy vCPUs always run") };
        s.charge(who, until_ns - now);
        ran[who.domain] += until_ns - now;
        now = until_ns;
    }
    let share = ran[0] as f64 / 3e9;
    assert!((share - 0.5).abs() < 0.05, "domain 0 got {share}");
    // A cap of 50% holds for both of domain 0's vCPUs together.
    let mut s = Scheduler::new();
    for who in &all[..2] {
        s.add(*who, SchedParams { weight: 256, cap: 50 });
    }
    let (mut busy, mut now) = (0u64, 0u64);
    while now < 3_000_000_000 {
        match s.pick(now) {
            Pick::Run { who, until_ns } => {
                s.charge(who, until_ns - now);
                busy += until_ns - now;
                now = until_ns;
            }
            Pick::Idle { until_ns } => now = until_ns.expect("capped vCPUs come back"),
        }
    }
    let share = busy as f64 / 3e9;
    assert!((share - 0.5).abs() < 0.02, "capped domain got {share}");
}

#[test]
fn max_vcpus_creates_them_down_and_setvcpucontext_reaches_any() {
    use crate::hypercall::tests::test_domain;
    use guest_abi::domctl::*;
    let mut w = World::new(true);
    w.add_peer(test_domain(4, false, 10..14, None, Mfn(15)));
    w.peers[0].vcpus.clear();
    (w.peers[0].max_vcpus, w.peers[0].pause_count) = (3, 1);
    let call = |w: &mut World, op: XenDomctl| {
        w.poke(BUF_VA, op.as_bytes());
        w.call_ret(u64::from(guest_abi::xen::HYPERVISOR_DOMCTL), [BUF_VA, 0, 0, 0, 0])
    };
    let mut mv = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, 4);
    mv.set_max_vcpus(XenDomctlMaxVcpus { max: 3 });
    assert_eq!(call(&mut w, mv), 0);
    let d = &w.peers[0];
    assert_eq!(d.vcpus.len(), 3);
    assert!(d.vcpus.iter().all(|v| v.down && !v.initialised));
    // Offline since now, not since boot: no time before its creation is
    // counted in any state (xl list, the guest's steal time).
    assert!(d.vcpus.iter().all(|v| v.runstate.entry_ns == w.now_ns && v.runstate.time == [0; 4]));
    assert!(d.evtchn.has_vcpu(2) && !d.evtchn.has_vcpu(3));
    let mut g = VcpuGuestContext::new_zeroed();
    g.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    (g.user_regs.rip, g.user_regs.cs, g.user_regs.ss, g.ctrlreg[3]) = (0x40_0000, 0xe033, 0xe02b, 10 << 12);
    w.poke(CTX_VA, g.as_bytes());
    let set = |w: &mut World, vcpu: u32| {
        let mut op = XenDomctl::new(XEN_DOMCTL_SETVCPUCONTEXT, 4);
        let ctxt = guest_abi::GuestHandle::from_ptr(CTX_VA as *const VcpuGuestContext);
        op.set_vcpucontext(XenDomctlVcpucontext { vcpu, _pad0: [0; 4], ctxt });
        call(w, op)
    };
    assert_eq!(set(&mut w, 3), -22, "no vCPU 3");
    assert_eq!(set(&mut w, 2), 0, "any vCPU");
    assert!(w.peers[0].vcpus[2].initialised && !w.peers[0].vcpus[2].down);
    // getdomaininfo counts the vCPUs up and names the highest.
    assert_eq!(call(&mut w, XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, 4)), 0);
    let info = XenDomctl::read_from_bytes(&w.peek(BUF_VA, size_of::<XenDomctl>())).unwrap().getdomaininfo();
    assert_eq!((info.nr_online_vcpus, info.max_vcpu_id), (1, 2));
}

#[test]
fn dom0_max_vcpus_follows_xens_syntax() {
    use crate::setup::dom0_max_vcpus;
    for (opt, cpus, want) in [
        (None, 1, 1),
        (None, 4, 4),
        (Some("2"), 1, 2),
        (Some("0"), 1, 1),
        (Some("1-4"), 1, 1),
        (Some("1-4"), 8, 4),
        (Some("2-"), 1, 2),
        (Some("-2"), 4, 2),
        (Some("0x3"), 1, 3),
        (Some("1000"), 1, crate::domain::MAX_VCPUS),
    ] {
        assert_eq!(dom0_max_vcpus(opt, cpus), Ok(want), "{opt:?} on {cpus} CPUs");
    }
    for bad in ["x", "2-x", "-", "1-2-3", ""] {
        assert!(dom0_max_vcpus(Some(bad), 1).is_err(), "{bad}");
    }
}

/// Without `dom0_max_vcpus=` dom0 gets a vCPU per CPU that runs guests, as
/// Xen gives one per CPU of its pool: every online CPU by default, the boot
/// CPU alone with `smp_guests=0` (on two CPUs it had one either way, and
/// Linux as dom0 used one CPU of two where Xen's used both).
#[test]
fn dom0_gets_a_vcpu_per_cpu_that_runs_guests() {
    use crate::cmdline::CommandLine;
    use crate::setup::dom0_max_vcpus;
    for (line, online, want) in [
        ("", 1, 1),
        ("", 2, 2),
        ("", 4, 4),
        ("smp_guests=0", 4, 1),
        ("dom0_max_vcpus=1", 2, 1),
        ("smp_guests=0 dom0_max_vcpus=2", 4, 2),
    ] {
        let line = CommandLine::parse(line);
        let cpus = line.guest_cpus(online) as u32;
        assert_eq!(dom0_max_vcpus(line.dom0_max_vcpus(), cpus), Ok(want), "{line:?} on {online} CPUs");
    }
}

/// Issues `VCPUOP_initialise` and its continuations; the result and the
/// calls made (each walking at most about a batch's budget of tables).
fn initialise_driven(w: &mut World, vcpu: u64, g: &VcpuGuestContext) -> (i64, usize) {
    w.poke(CTX_VA, g.as_bytes());
    let args = [u64::from(VCPUOP_INITIALISE), vcpu, CTX_VA, 0, 0];
    for calls in 1..1000 {
        let before = w.ft.tables_walked();
        let outcome = w.call(VCPU_OP, args);
        assert!(w.ft.tables_walked() - before <= super::mmu::TABLE_BUDGET + 4);
        match outcome {
            super::Outcome::Return(v) => return (v, calls),
            super::Outcome::Continue(next) => assert_eq!(next, args, "the same call again"),
        }
    }
    panic!("no end");
}

#[test]
fn initialise_validates_deep_tables_through_continuations() {
    use super::preempt_tests::deep;
    let mut w = world(2);
    make_gdt(&mut w);
    let kernel = deep(&mut w, 0, (2, 2, 70), Mfn(GDT_MFN), Mfn(6));
    let user = deep(&mut w, 0, (1, 2, 70), Mfn(GDT_MFN), Mfn(6));
    let mut g = linux_context();
    (g.ctrlreg[3], g.ctrlreg[1]) = (kernel.l4.addr(), user.l4.addr());
    let (ret, calls) = initialise_driven(&mut w, 1, &g);
    assert_eq!(ret, 0);
    assert!(calls >= 6, "{calls} calls");
    let v = &w.dom.vcpus[1];
    assert!(v.initialised);
    assert_eq!((v.kernel_l4, v.user_l4, v.old_guest_table), (kernel.l4, Some(user.l4), None));
    for t in kernel.tables.iter().chain(&user.tables) {
        assert!(w.ft.info(*t).is_some_and(|p| p.validated() && p.type_count() == 1), "frame {}", t.0);
    }
    assert_eq!(w.ft.info(Mfn(GDT_MFN)).map(|p| p.type_count()), Some(1), "one GDT type reference, not one a try");
}

#[test]
fn initialise_failing_deep_down_parks_the_table_and_the_next_attempt_releases_it() {
    use super::preempt_tests::deep;
    let mut w = world(2);
    make_gdt(&mut w);
    let before: std::vec::Vec<_> = w.ft.iter().map(|(_, p)| *p).collect();
    let kernel = deep(&mut w, 0, (2, 2, 70), Mfn(GDT_MFN), Mfn(6));
    let bad = *kernel.l1s.last().unwrap();
    w.mem.set_entry(bad.0, 9, (20 << 12) | 0x25);
    let initial: std::vec::Vec<_> = w.ft.iter().map(|(_, p)| *p).collect();
    assert_ne!(before.len(), initial.len());
    let mut g = linux_context();
    g.ctrlreg[3] = kernel.l4.addr();
    let (ret, calls) = initialise_driven(&mut w, 1, &g);
    assert_eq!(ret, -22);
    assert!(calls >= 4, "{calls} calls");
    let parked = w.dom.vcpus[1].old_guest_table.expect("the failed L4 is parked");
    assert_eq!(parked, kernel.l4);
    // The next attempt releases it first, in bounded steps, then succeeds.
    w.mem.set_entry(bad.0, 9, 0);
    let (ret, calls) = initialise_driven(&mut w, 1, &g);
    assert_eq!(ret, 0);
    assert!(calls >= 8, "released, then validated again: {calls} calls");
    assert_eq!(w.dom.vcpus[1].old_guest_table, None);
    assert_eq!(w.dom.vcpus[1].kernel_l4, kernel.l4);
}
