//! The hypercall table: one entry per Xen hypercall number, each handler
//! validating its arguments and returning Xen's result or errno.

mod acquire_resource;
mod bitmap;
mod callbacks;
mod console_io;
mod cpu_policy;
pub mod debugreg;
mod descriptors;
mod domctl;
mod domctl_tools;
pub(crate) mod event_channel;
mod fpu;
#[cfg(test)]
mod frame_table_tests;
#[cfg(test)]
mod fuzz;
mod grant_table;
mod ldt;
mod memory_exchange;
mod memory_op;
mod mmu;
mod mmuext_op;
mod multicall;
mod physdev;
mod platform_op;
#[cfg(test)]
pub(crate) mod preempt_tests;
pub mod refusals;
mod sched_op;
pub mod segments;
mod set_trap_table;
#[cfg(test)]
mod smp_tests;
mod sysctl;
mod timer;
mod unconfigured;
mod vcpu_context;
mod vcpu_op;
mod vm_assist;
pub mod xen_version;
pub mod xsm;

use alloc::vec::Vec;

use guest_abi::errno::XenError;
use guest_abi::xen as abi;

use crate::domain::{DomId, Domain};
use crate::guest_access::GuestMemory;
use crate::ipi::CpuMask;
use crate::mm::frame_table::{FrameTable, Retyped};
use crate::mm::m2p::M2p;
use crate::mm::pt_validate::Mmu;
use crate::mm::{FramePool, MachineMemory};
use crate::sched::Scheduler;

/// What the hypervisor needs from the machine while serving hypercalls.
pub trait Platform {
    /// Reads pending console input into `buf`; returns the bytes read.
    fn console_read(&mut self, buf: &mut [u8]) -> usize;
    /// The hypervisor's own command line.
    fn cmdline(&self) -> &str;
    /// Writes guest console output (already prefixed) to the console.
    fn console_write(&mut self, bytes: &[u8]);
    /// Sets or clears CR0.TS for the running vCPU (its virtual TS).
    fn set_fpu_ts(&mut self, set: bool);
    /// The running vCPU's data selectors as the CPU holds them now:
    /// `ds, es, fs, gs` (what a failsafe frame reports when the return to
    /// the guest faults). Null unless the platform can read them.
    fn data_selectors(&self) -> [u16; 4] {
        [0; 4]
    }
    /// Changes the running vCPU's segment state (already validated).
    fn set_segment(&mut self, which: Segment, value: u64);
    /// The machine's memory map (the E820 the boot loader reported).
    fn machine_memory_map(&self) -> Vec<E820Entry>;
    /// The CPU's (TSC's) frequency in kHz.
    fn cpu_khz(&self) -> u32;
    /// Bytes of a vCPU's FPU save area on this CPU.
    fn fpu_area_size(&self) -> usize;
    /// The CPU's own `cpuid` for `leaf`/`subleaf` (eax, ebx, ecx, edx):
    /// what the toolstack's CPU featuresets and policies derive from.
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// The hypervisor image's build ID (the linker's GNU build-id note's
    /// descriptor; empty without one).
    fn build_id(&self) -> &[u8];
    /// The TSC now, where the platform has one: the time a hypercall
    /// ended, which the scheduler's decisions after it go by.
    fn tsc(&self) -> Option<u64> {
        None
    }
}

/// One range of the machine's memory map, as `XENMEM_machine_memory_map`
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type: 1 RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 bad.
    pub kind: u32,
}

pub use segments::Segment;
pub use vcpu_op::update_time_area;

/// Everything a handler may touch: the calling domain and vCPU, machine
/// memory and the platform.
pub struct Ctx<'a> {
    /// The calling domain.
    pub domain: &'a mut Domain,
    /// Index of the calling vCPU in `domain.vcpus`.
    pub vcpu: usize,
    /// Machine memory (the direct map).
    pub mem: &'a mut dyn MachineMemory,
    /// Machine services.
    pub platform: &'a mut dyn Platform,
    /// System time (ns since boot) at entry.
    pub now_ns: u64,
    /// Every other domain, for operations that involve two.
    pub peers: Peers<'a>,
    /// Free machine frames, for what the caller asks the hypervisor to
    /// allocate (grant-table frames).
    pub frames: &'a mut dyn FramePool,
    /// TLB maintenance this call needs, and on which CPUs (carried out
    /// once before the entry ends): see [`crate::flush`].
    pub tlb: crate::flush::FlushReq,
    /// The machine-to-phys table (`MMU_MACHPHYS_UPDATE` writes it).
    pub m2p: M2p,
    /// The run queue, for the toolstack's scheduler parameters.
    pub sched: &'a mut Scheduler,
    /// The calling vCPU's descriptor tables (GDT or LDT) changed: the
    /// CPU's copies must be reloaded before it runs again.
    pub reload_gdt: bool,
    /// The frame table: owners, types and reference counts of every frame.
    pub ft: &'a mut FrameTable,
    /// Domains the toolstack created, for the system to add.
    pub lifecycle: &'a mut crate::lifecycle::Lifecycle,
}

/// TLB maintenance after a page-table update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlbFlush {
    /// Nothing.
    #[default]
    None,
    /// Invalidate one virtual address.
    Page(u64),
    /// Flush the whole (non-global) TLB.
    All,
}

impl TlbFlush {
    /// The maintenance that covers both `self` and `other` (two different
    /// pages need a full flush).
    pub fn and(self, other: TlbFlush) -> TlbFlush {
        match (self, other) {
            (TlbFlush::None, x) | (x, TlbFlush::None) => x,
            (TlbFlush::Page(a), TlbFlush::Page(b)) if a == b => TlbFlush::Page(a),
            _ => TlbFlush::All,
        }
    }
}

/// The domains other than the caller.
pub struct Peers<'a> {
    before: &'a mut [Domain],
    after: &'a mut [Domain],
}

impl<'a> Peers<'a> {
    /// The domains of `domains` around index `current`, and the current one.
    pub fn split(domains: &'a mut [Domain], current: usize) -> Option<(&'a mut Domain, Peers<'a>)> {
        let (before, rest) = domains.split_at_mut(current);
        let (domain, after) = rest.split_first_mut()?;
        Some((domain, Peers { before, after }))
    }

    /// No other domain.
    #[cfg(test)]
    pub fn none() -> Self {
        Peers { before: &mut [], after: &mut [] }
    }

    /// The domain with ID `id`, if it exists (a dying one still does; a
    /// dead one, whose slot waits for reuse, does not).
    pub fn get_mut(&mut self, id: DomId) -> Option<&mut Domain> {
        self.before.iter_mut().chain(self.after.iter_mut()).find(|d| d.id == id && d.exists())
    }

    /// Every other domain that exists.
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.before.iter().chain(self.after.iter()).filter(|d| d.exists())
    }

    /// Where domain `id` sits in the system's domain list (the index the
    /// scheduler knows it by), given the caller's ID `me`.
    pub fn index_of(&self, id: DomId, me: DomId) -> Option<usize> {
        let caller = self.before.len();
        if id == me {
            return Some(caller);
        }
        let found = |d: &Domain| d.id == id && d.exists();
        let before = self.before.iter().position(found);
        before.or_else(|| Some(caller + 1 + self.after.iter().position(found)?))
    }
}

impl Ctx<'_> {
    /// Free memory as Xen reports it (`total_avail_pages`): the pool and
    /// the frames of dead domains still waiting to be scrubbed, which are
    /// free (no one owns them) and scrubbed before anyone gets them.
    pub fn free_pages(&self) -> u64 {
        self.frames.free_frames() + self.ft.dirty_frames()
    }

    /// The PV MMU over this context's frame table and memory.
    pub fn mmu(&mut self) -> Mmu<'_> {
        Mmu { ft: &mut *self.ft, mem: &mut *self.mem }
    }

    /// The calling vCPU's address space, for guest pointers.
    pub fn guest(&mut self) -> GuestMemory<'_> {
        let l4 = self.domain.vcpus.get(self.vcpu).map(|v| v.kernel_l4).unwrap_or(crate::mm::Mfn(u64::MAX));
        GuestMemory::new(self.mem, l4)
    }

    /// Flushes `what` wherever the caller's domain may have cached
    /// translations (its dirty CPUs): after a change to its mappings, or
    /// to frames it may still reach through a stale entry.
    #[inline]
    pub fn flush_dirty(&mut self, what: TlbFlush) {
        let cpus = self.domain.dirty_cpus;
        self.tlb.add(what, cpus);
    }

    /// Flushes `what` on the calling vCPU's CPU only (`*_LOCAL`).
    #[inline]
    pub fn flush_local(&mut self, what: TlbFlush) {
        self.tlb.add_local(what);
    }
}

/// The result of a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Return this value in `rax`.
    Return(i64),
    /// Preempted: re-execute the hypercall with these arguments.
    Continue([u64; 5]),
}

/// A handler's result: a value or a Xen errno.
pub type HcResult = Result<i64, XenError>;

impl From<HcResult> for Outcome {
    fn from(r: HcResult) -> Self {
        Outcome::Return(match r {
            Ok(v) => v,
            Err(e) => e.to_ret(),
        })
    }
}

type Handler = fn(&mut Ctx, [u64; 5]) -> Outcome;

/// The dispatch table, indexed by hypercall number.
const TABLE: [Option<Handler>; 64] = {
    let mut t: [Option<Handler>; 64] = [None; 64];
    t[abi::HYPERVISOR_SET_TRAP_TABLE as usize] = Some(set_trap_table::set_trap_table);
    t[abi::HYPERVISOR_STACK_SWITCH as usize] = Some(callbacks::stack_switch);
    t[abi::HYPERVISOR_SET_CALLBACKS as usize] = Some(callbacks::set_callbacks);
    t[abi::HYPERVISOR_CALLBACK_OP as usize] = Some(callbacks::callback_op);
    t[abi::HYPERVISOR_MULTICALL as usize] = Some(multicall::multicall);
    t[abi::HYPERVISOR_SET_TIMER_OP as usize] = Some(timer::set_timer_op);
    t[abi::HYPERVISOR_MMU_UPDATE as usize] = Some(mmu::mmu_update);
    t[abi::HYPERVISOR_UPDATE_VA_MAPPING as usize] = Some(mmu::update_va_mapping);
    t[abi::HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN as usize] = Some(mmu::update_va_mapping_otherdomain);
    t[abi::HYPERVISOR_FPU_TASKSWITCH as usize] = Some(fpu::fpu_taskswitch);
    t[abi::HYPERVISOR_SET_DEBUGREG as usize] = Some(debugreg::set_debugreg);
    t[abi::HYPERVISOR_GET_DEBUGREG as usize] = Some(debugreg::get_debugreg);
    t[abi::HYPERVISOR_VCPU_OP as usize] = Some(vcpu_op::vcpu_op);
    t[abi::HYPERVISOR_SET_SEGMENT_BASE as usize] = Some(segments::set_segment_base);
    t[abi::HYPERVISOR_PHYSDEV_OP as usize] = Some(physdev::physdev_op);
    t[abi::HYPERVISOR_CONSOLE_IO as usize] = Some(console_io::console_io);
    t[abi::HYPERVISOR_EVENT_CHANNEL_OP as usize] = Some(event_channel::event_channel_op);
    t[abi::HYPERVISOR_DOMCTL as usize] = Some(domctl::domctl);
    t[abi::HYPERVISOR_SYSCTL as usize] = Some(sysctl::sysctl);
    t[abi::HYPERVISOR_SET_GDT as usize] = Some(descriptors::set_gdt);
    t[abi::HYPERVISOR_UPDATE_DESCRIPTOR as usize] = Some(descriptors::update_descriptor);
    t[abi::HYPERVISOR_MEMORY_OP as usize] = Some(memory_op::memory_op);
    t[abi::HYPERVISOR_GRANT_TABLE_OP as usize] = Some(grant_table::grant_table_op);
    t[abi::HYPERVISOR_XEN_VERSION as usize] = Some(xen_version::xen_version);
    t[abi::HYPERVISOR_SCHED_OP as usize] = Some(sched_op::sched_op);
    t[abi::HYPERVISOR_VM_ASSIST as usize] = Some(vm_assist::vm_assist);
    t[abi::HYPERVISOR_MMUEXT_OP as usize] = Some(mmuext_op::mmuext_op);
    t[abi::HYPERVISOR_PLATFORM_OP as usize] = Some(platform_op::platform_op);
    t[abi::HYPERVISOR_XSM_OP as usize] = Some(unconfigured::xsm_op);
    t[guest_abi::xen_mca::HYPERVISOR_MCA as usize] = Some(platform_op::mca);
    t[abi::HYPERVISOR_XENPMU_OP as usize] = Some(unconfigured::xenpmu_op);
    t
};

/// Serves hypercall `nr` with `args`; an unknown number is `-ENOSYS`
/// (and named in the log, once).
pub fn dispatch(ctx: &mut Ctx, nr: u64, args: [u64; 5]) -> Outcome {
    let outcome = match usize::try_from(nr).ok().and_then(|i| TABLE.get(i)).copied().flatten() {
        Some(handler) => handler(ctx, args),
        None => {
            let nr = u32::try_from(nr).unwrap_or(u32::MAX);
            Outcome::Return(refusals::not_implemented(ctx.domain.id, nr, None).to_ret())
        }
    };
    if ctx.ft.retyped != Retyped::None {
        flush_retyped(ctx);
    }
    outcome
}

/// Whether hypercall `nr` can neither arm nor stop a vCPU timer, block,
/// poll, bring a vCPU up or down, nor pause, unpause, create or shut down
/// a domain, whatever its arguments: after one of these the exit's timer
/// summary stays valid and no domain can have started dying
/// ([`crate::system::System`] looks again after any other). The memory,
/// grant, event-channel, descriptor and segment operations guests make
/// most; a multicall may carry anything, so it is not one of them.
#[inline]
pub fn leaves_timers_alone(nr: u64) -> bool {
    const ALONE: u64 = 1 << abi::HYPERVISOR_MMU_UPDATE
        | 1 << abi::HYPERVISOR_STACK_SWITCH
        | 1 << abi::HYPERVISOR_FPU_TASKSWITCH
        | 1 << abi::HYPERVISOR_UPDATE_DESCRIPTOR
        | 1 << abi::HYPERVISOR_UPDATE_VA_MAPPING
        | 1 << abi::HYPERVISOR_XEN_VERSION
        | 1 << abi::HYPERVISOR_CONSOLE_IO
        | 1 << abi::HYPERVISOR_GRANT_TABLE_OP
        | 1 << abi::HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN
        | 1 << abi::HYPERVISOR_SET_SEGMENT_BASE
        | 1 << abi::HYPERVISOR_MMUEXT_OP
        | 1 << abi::HYPERVISOR_EVENT_CHANNEL_OP;
    nr < 64 && ALONE & (1 << nr) != 0
}

/// Whether hypercall `nr` may load a new page-table base for the calling
/// vCPU (`MMUEXT_NEW_BASEPTR`, `MMUEXT_NEW_USER_BASEPTR`, a context set
/// by `VCPUOP_initialise`, a multicall of those, ...): every call but those
/// of [`leaves_timers_alone`] other than `mmuext_op`, none of which loads
/// a base. After one of them the exit compares the vCPU's table with the
/// one before the call.
#[inline]
pub fn may_load_base(nr: u64) -> bool {
    nr == u64::from(abi::HYPERVISOR_MMUEXT_OP) || !leaves_timers_alone(nr)
}

/// Frames became page tables or descriptor pages during the call: their
/// owners' dirty CPUs flush before the guest runs again, so that no CPU
/// keeps a writable translation of them from before.
#[cold]
#[inline(never)]
fn flush_retyped(ctx: &mut Ctx) {
    let me = ctx.domain.id;
    let cpus = match ctx.ft.take_retyped() {
        Retyped::None => return,
        Retyped::Owner(id) if id == me => ctx.domain.dirty_cpus,
        Retyped::Owner(id) => ctx.peers.iter().find(|d| d.id == id).map_or(CpuMask::EMPTY, |d| d.dirty_cpus),
        Retyped::Several => ctx.peers.iter().fold(ctx.domain.dirty_cpus, |m, d| m.or(d.dirty_cpus)),
    };
    ctx.tlb.add(TlbFlush::All, cpus);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::Vcpu;
    use crate::guest_access::tests::FakeMemory;
    use crate::mm::frame_table::{tests::table, Owner};
    use crate::mm::pt_validate::MapRights;
    use crate::mm::{Mfn, PAGE_SIZE};
    use crate::regs::TrapFrame;
    extern crate std;
    use std::vec::Vec;

    /// Held by tests that read the hypervisor's (global) console ring and
    /// by those that fill it (the fuzzer), so that the readers find their
    /// own lines still there.
    pub static CONSOLE_RING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Guest buffer area: va BUF_VA.. maps frames 4..8 (RW).
    pub const BUF_VA: u64 = 0x40_0000_4000;
    /// The test M2P table: one frame (512 entries) after the others.
    pub const M2P: M2p = M2p { base: Mfn(14), entries: 512 };

    pub struct FakePlatform {
        pub out: Vec<u8>,
        pub input: Vec<u8>,
        pub ts: Option<bool>,
        pub segments: Vec<(Segment, u64)>,
        /// What [`Platform::tsc`] reads (the time a hypercall ends).
        pub tsc: Option<u64>,
    }

    impl Platform for FakePlatform {
        fn console_read(&mut self, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            n
        }
        fn fpu_area_size(&self) -> usize {
            512
        }
        fn cpu_khz(&self) -> u32 {
            1_000_000
        }
        fn build_id(&self) -> &[u8] {
            &[0x5e, 0xed, 0x00, 0x01]
        }
        fn tsc(&self) -> Option<u64> {
            self.tsc
        }
        fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
            match (leaf, subleaf) {
                (0, _) => [0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69], // GenuineIntel
                (1, _) => [0x000806ea, 0x0010_0800, 0xfffa_3203, 0x178b_fbff],
                (4, s) if s < 2 => [0x121 + (s << 5), 0x01c0_003f, 0x3f, 0],
                (7, 0) => [1, 0x0000_0209, 0, 0],
                (0xd, 0) => [0x7, 0x340, 0x340, 0],
                (0xd, 1) => [0x1, 0, 0, 0],
                (0xd, 2) => [0x100, 0x240, 0, 0],
                (0x8000_0000, _) => [0x8000_0008, 0, 0, 0],
                (0x8000_0001, _) => [0, 0, 0x121, 0x2c10_0800],
                (0x8000_0008, _) => [0x3027, 0, 0, 0],
                _ => [0; 4],
            }
        }
        fn cmdline(&self) -> &str {
            "dom0_mem=64M"
        }
        fn console_write(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn set_fpu_ts(&mut self, set: bool) {
            self.ts = Some(set);
        }
        fn set_segment(&mut self, which: Segment, value: u64) {
            self.segments.push((which, value));
        }
        fn machine_memory_map(&self) -> Vec<E820Entry> {
            std::vec![
                E820Entry { addr: 0, size: 0x9fc00, kind: 1 },
                E820Entry { addr: 0xf0000, size: 0x10000, kind: 2 }
            ]
        }
    }

    /// A frame pool over a list of free frames.
    pub struct FakePool(pub Vec<Mfn>);

    impl FramePool for FakePool {
        fn alloc(&mut self) -> Option<Mfn> {
            self.0.pop()
        }
        fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<Mfn> {
            self.alloc_contiguous_below(count, align, Mfn(u64::MAX))
        }
        fn alloc_contiguous_below(&mut self, count: u64, align: u64, end: Mfn) -> Option<Mfn> {
            let mut free: Vec<u64> = self.0.iter().map(|m| m.0).collect();
            free.sort_unstable();
            let fits =
                |f: u64| f.is_multiple_of(align) && f + count <= end.0 && (f..f + count).all(|g| free.contains(&g));
            let first = free.iter().copied().find(|&f| fits(f))?;
            self.0.retain(|m| m.0 < first || m.0 >= first + count);
            Some(Mfn(first))
        }
        fn free(&mut self, mfn: Mfn) {
            self.0.push(mfn);
        }
        fn free_frames(&self) -> u64 {
            self.0.len() as u64
        }
    }

    /// Frames of the test machine: 0..10 the caller's (page tables 0..3,
    /// buffers 4..7, 9; its shared_info 8 is the hypervisor's), 10..16 for
    /// peers, 16..24 free.
    pub const NR_FRAMES: usize = 24;

    pub struct World {
        pub dom: Domain,
        pub peers: Vec<Domain>,
        pub mem: FakeMemory,
        pub plat: FakePlatform,
        pub pool: FakePool,
        /// The run queue: the caller (index 0) and peers as tests add them.
        pub sched: Scheduler,
        /// Whether the last call asked for the GDT to be reloaded.
        pub reload_gdt: bool,
        pub ft: FrameTable,
        pub now_ns: u64,
        /// The TLB maintenance the last call asked for.
        pub tlb: TlbFlush,
        /// The CPUs it asked it for.
        pub tlb_cpus: crate::ipi::CpuMask,
        pub lifecycle: crate::lifecycle::Lifecycle,
        /// The calling vCPU of `dom` (0 unless a test changes it).
        pub vcpu: usize,
        /// Set by a test that lowers a `max_pages` below what its domain
        /// owns, as `XEN_DOMCTL_max_mem` may (Xen lets the domain ratchet
        /// down to it): the audit then allows `tot_pages > max_pages`.
        pub limit_lowered: bool,
    }

    /// A domain for a test, and the frames it is to own: [`install`] (or
    /// [`World::add_peer`]) records them in the frame table.
    pub struct TestDomain {
        pub domain: Domain,
        pub owned: core::ops::Range<u64>,
    }

    impl core::ops::Deref for TestDomain {
        type Target = Domain;
        fn deref(&self) -> &Domain {
            &self.domain
        }
    }

    impl core::ops::DerefMut for TestDomain {
        fn deref_mut(&mut self) -> &mut Domain {
            &mut self.domain
        }
    }

    /// A running one-vCPU domain that is to own frames `owned`, with `l4`
    /// as its vCPU's top-level table and `shared_info`.
    pub fn test_domain(
        id: DomId,
        privileged: bool,
        owned: core::ops::Range<u64>,
        l4: Option<Mfn>,
        shared_info: Mfn,
    ) -> TestDomain {
        let l4 = l4.unwrap_or(Mfn(u64::MAX));
        let mut d = Domain::new(id, "test", privileged, shared_info);
        d.max_pages = 16;
        d.vcpus = std::vec![Vcpu::new(0, TrapFrame::default(), l4)];
        TestDomain { domain: d, owned }
    }

    /// Domain 1, unprivileged: owns frames 10..14, frame 10 its L4 and 11
    /// (not yet a page table) for an L1, 13 its shared_info.
    pub fn peer_domain() -> TestDomain {
        test_domain(1, false, 10..14, Some(Mfn(10)), Mfn(13))
    }

    /// Records `d` in the frame table as a builder does: the frames
    /// `owned` become its own (on its page list), its shared_info (which
    /// may lie in that range) the hypervisor's, and its vCPU's L4 is
    /// validated, pinned and referenced by the vCPU.
    pub fn install(ft: &mut FrameTable, mem: &mut FakeMemory, d: &mut Domain, owned: core::ops::Range<u64>) {
        for m in owned.map(Mfn).filter(|&m| m != d.shared_info) {
            ft.assign_page(m, d.id, &mut d.page_list).unwrap();
        }
        ft.set_owner(d.shared_info, Owner::Xen).unwrap();
        let l4 = d.vcpus[0].kernel_l4;
        if ft.is_owned_by(l4, d.id) {
            let mut mmu = Mmu { ft, mem };
            mmu.pin(l4, 4, &MapRights::of(d)).unwrap();
            mmu.get_page_and_type(l4, &MapRights::of(d), crate::mm::frame_table::PageType::L4).unwrap();
        }
        // As a builder's: no CPU has run the domain yet.
        ft.take_retyped();
    }

    impl World {
        pub fn new(privileged: bool) -> Self {
            let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; NR_FRAMES]);
            mem.0[M2P.base.0 as usize] = [0xff; PAGE_SIZE]; // INVALID_M2P_ENTRY everywhere
            let va = BUF_VA;
            mem.set_entry(0, (va >> 39) & 511, (1 << 12) | 0x67);
            mem.set_entry(1, (va >> 30) & 511, (2 << 12) | 0x67);
            mem.set_entry(2, (va >> 21) & 511, (3 << 12) | 0x67);
            for i in 0..4 {
                mem.set_entry(3, ((va >> 12) & 511) + i, ((4 + i) << 12) | 0x67);
            }
            let TestDomain { domain: mut dom, owned } = test_domain(0, privileged, 0..10, Some(Mfn(0)), Mfn(8));
            let mut ft = table(NR_FRAMES);
            install(&mut ft, &mut mem, &mut dom, owned);
            // The caller runs on CPU 0: its flushes go there.
            crate::flush::note_loaded(
                core::slice::from_mut(&mut dom),
                0,
                None,
                Some(crate::sched::VcpuRef { domain: 0, vcpu: 0 }),
            );
            World {
                dom,
                peers: Vec::new(),
                mem,
                plat: FakePlatform { out: Vec::new(), input: Vec::new(), ts: None, segments: Vec::new(), tsc: None },
                pool: FakePool((16..NR_FRAMES as u64).rev().map(Mfn).collect()),
                reload_gdt: false,
                sched: {
                    let mut sched = Scheduler::new();
                    sched.add(crate::sched::VcpuRef { domain: 0, vcpu: 0 }, crate::sched::SchedParams::default());
                    sched
                },
                ft,
                now_ns: 1_000_000,
                tlb: TlbFlush::None,
                tlb_cpus: crate::ipi::CpuMask::EMPTY,
                lifecycle: crate::lifecycle::Lifecycle::default(),
                vcpu: 0,
                limit_lowered: false,
            }
        }

        pub fn call(&mut self, nr: u64, args: [u64; 5]) -> Outcome {
            let mut ctx = Ctx {
                domain: &mut self.dom,
                vcpu: self.vcpu,
                mem: &mut self.mem,
                platform: &mut self.plat,
                now_ns: self.now_ns,
                peers: Peers { before: &mut [], after: &mut self.peers },
                frames: &mut self.pool,
                tlb: crate::flush::FlushReq::NONE,
                m2p: M2P,
                sched: &mut self.sched,
                reload_gdt: false,
                ft: &mut self.ft,
                lifecycle: &mut self.lifecycle,
            };
            let outcome = dispatch(&mut ctx, nr, args);
            // The caller runs on CPU 0.
            (self.tlb, self.tlb_cpus) = (ctx.tlb.what, ctx.tlb.cpus_from(0));
            self.reload_gdt = ctx.reload_gdt;
            self.audit();
            outcome
        }

        /// Adds a peer domain, recorded in the frame table.
        pub fn add_peer(&mut self, d: TestDomain) {
            let TestDomain { domain: mut d, owned } = d;
            install(&mut self.ft, &mut self.mem, &mut d, owned);
            self.peers.push(d);
        }

        /// A machine of `n` frames: memory and frame table grown, records
        /// kept (the new frames are free, not in the pool).
        pub fn grow(&mut self, n: usize) {
            self.mem.0.resize(n, [0; PAGE_SIZE]);
            self.ft = crate::mm::frame_table::tests::grown(&self.ft, n);
        }

        /// Whether domain `id` owns frame `mfn`, as the frame table says.
        pub fn owns(&self, id: DomId, mfn: u64) -> bool {
            self.ft.is_owned_by(Mfn(mfn), id)
        }

        /// Gives domain `id` (the caller or a peer) the free frame `mfn`,
        /// as an allocation would.
        pub fn give(&mut self, id: DomId, mfn: Mfn) {
            let d = core::iter::once(&mut self.dom).chain(self.peers.iter_mut()).find(|d| d.id == id).unwrap();
            self.ft.assign_page(mfn, id, &mut d.page_list).unwrap();
        }

        /// The (reference count, type count) of every frame, to check that
        /// operation sequences leave them as they were.
        pub fn counts(&self) -> Vec<(u32, u32, bool)> {
            self.ft.iter().map(|(_, p)| (p.count(), p.type_count(), p.pinned())).collect()
        }

        /// Recomputes every frame's counts from what should hold them —
        /// pins, base pointers, GDT frames, the entries of validated page
        /// tables and grant mappings — and checks the frame table agrees.
        pub fn audit(&self) {
            let nr_frames = self.ft.nr_frames() as usize;
            let mut want = std::vec![(0u32, 0u32); nr_frames];
            let mut linear = std::vec![0i16; nr_frames];
            let mut add = |m: Mfn, typed: bool| {
                if let Some(w) = want.get_mut(m.0 as usize) {
                    w.0 += 1;
                    w.1 += u32::from(typed);
                }
            };
            let domains = core::iter::once(&self.dom).chain(self.peers.iter());
            for d in domains {
                for v in &d.vcpus {
                    for l4 in core::iter::once(v.kernel_l4).chain(v.user_l4) {
                        if self.ft.owner(l4) == Some(Owner::Domain(d.id)) {
                            add(l4, true);
                        }
                    }
                    for &gdt in v.gdt_frames.iter().chain(v.ldt_frames.iter().flatten()) {
                        add(gdt, true);
                    }
                    if let Some((info, _)) = v.vcpu_info {
                        add(info, true);
                    }
                    // A parked table: a reference, and the type reference
                    // to drop unless its partial devalidation holds it.
                    if let Some(old) = v.old_guest_table {
                        let partial = self.ft.info(old).and_then(|p| p.partial()).is_some_and(|q| q.devalidating);
                        add(old, !partial);
                    }
                }
                for mfn in d.evtchn.fifo().into_iter().flat_map(|f| f.frames()).chain(d.pirqs.eoi_map) {
                    add(mfn, true);
                }
                for m in d.gnttab.maptrack.iter().flatten() {
                    for _ in 0..u32::from(m.host) + u32::from(m.device) {
                        add(m.mfn, !m.readonly);
                    }
                }
            }
            for (mfn, p) in self.ft.iter() {
                // A pinned table whose unpin was preempted: the partial
                // state holds its type reference.
                if p.pinned() {
                    add(mfn, p.partial().is_none());
                }
                // A partial table: the partial state holds a reference and
                // the type reference; entries 0..nr hold theirs, entry nr
                // (with `child`) a reference on the partial table it names.
                if p.partial().is_some() {
                    add(mfn, true);
                }
                let (level, end) = match (p.page_type().level(), p.partial()) {
                    (Some(level), Some(q)) => {
                        if q.child && q.nr < 512 {
                            let e = crate::mm::pagetable::entry(&self.mem, mfn, usize::from(q.nr)).unwrap();
                            add(Mfn::containing(e & crate::guest_access::PTE_ADDR_MASK), false);
                        }
                        (level, usize::from(q.nr).min(512))
                    }
                    (Some(level), None) if p.validated() => (level, 512),
                    _ => continue,
                };
                for i in 0..end {
                    if level == 4 && crate::mm::pt_validate::is_xen_l4_slot(i) {
                        continue;
                    }
                    let e = crate::mm::pagetable::entry(&self.mem, mfn, i).unwrap();
                    let target = Mfn::containing(e & crate::guest_access::PTE_ADDR_MASK);
                    let owner = self.ft.owner(target);
                    let counted = matches!(owner, Some(Owner::Domain(_) | Owner::Xen));
                    if e & 1 == 0 || (level == 1 && (e & crate::mm::pt_validate::PTE_GNTTAB != 0 || !counted)) {
                        continue;
                    }
                    if level > 1 && target == mfn {
                        continue; // a linear entry naming its own table holds nothing
                    }
                    if level > 1 && self.ft.page_type(target).level() == Some(level) {
                        linear[mfn.0 as usize] += 1;
                        linear[target.0 as usize] -= 1;
                    }
                    // Hypervisor frames take a reference but never a type.
                    add(target, level > 1 || (e & 2 != 0 && owner != Some(Owner::Xen)));
                }
            }
            for (mfn, p) in self.ft.iter() {
                assert_eq!((p.count(), p.type_count()), want[mfn.0 as usize], "counts of frame {}", mfn.0);
                assert_eq!(p.linear(), linear[mfn.0 as usize], "linear count of frame {}", mfn.0);
            }
            self.audit_ownership();
        }

        /// Checks ownership against the domains' page lists and the pool:
        /// each list holds exactly the frames the table says are that
        /// domain's, as many as its `tot_pages`, no more than its
        /// `max_pages`; pool frames are free and unreferenced; and every
        /// frame is a domain's, the hypervisor's (shared with a guest, or
        /// its own) or free in the pool: Σ tot_pages + hypervisor frames +
        /// free = total.
        pub fn audit_ownership(&self) {
            let nr_frames = self.ft.nr_frames() as usize;
            let mut listed = std::vec![false; nr_frames];
            let mut tot_pages = 0u64;
            for d in core::iter::once(&self.dom).chain(self.peers.iter()) {
                let mut n = 0u64;
                for m in self.ft.pages(&d.page_list) {
                    assert_eq!(self.ft.owner(m), Some(Owner::Domain(d.id)), "frame {} on d{}'s list", m.0, d.id);
                    assert!(!std::mem::replace(&mut listed[m.0 as usize], true), "frame {} listed twice", m.0);
                    n += 1;
                }
                assert_eq!(n, d.tot_pages(), "d{}'s tot_pages", d.id);
                assert!(
                    d.tot_pages() <= d.max_pages || self.limit_lowered,
                    "d{}: tot_pages {} > max_pages {}",
                    d.id,
                    n,
                    d.max_pages
                );
                tot_pages += n;
            }
            let owned = self.ft.iter().filter(|(_, p)| matches!(p.owner(), Owner::Domain(_))).count() as u64;
            assert_eq!(owned, tot_pages, "a frame owned by a domain but on no list");
            let mut pool = self.pool.0.clone();
            pool.sort_unstable();
            pool.dedup();
            assert_eq!(pool.len(), self.pool.0.len(), "a frame twice in the pool");
            for &m in &pool {
                assert!(!self.ft.needs_scrub(m), "pool frame {} waits to be scrubbed", m.0);
                let p = self.ft.info(m).copied().unwrap_or_default();
                assert_eq!((p.owner(), p.count(), p.type_count()), (Owner::Free, 0, 0), "pool frame {}", m.0);
            }
            let xen = self.ft.iter().filter(|(_, p)| p.owner() == Owner::Xen).count() as u64;
            let hypervisor_own =
                self.ft.iter().filter(|(m, p)| p.owner() == Owner::Free && pool.binary_search(m).is_err()).count()
                    as u64;
            assert_eq!(tot_pages + xen + hypervisor_own + pool.len() as u64, nr_frames as u64, "frames conserved");
        }

        /// One call and its result. The continuations a batch makes to
        /// finish a parked table's put before it returns (Xen's second
        /// form, `(NULL, MMU_UPDATE_PREEMPTED, NULL, rc)`) are followed, as
        /// the guest's rewound `syscall` would; any other is unexpected.
        pub fn call_ret(&mut self, nr: u64, args: [u64; 5]) -> i64 {
            let mut args = args;
            loop {
                match self.call(nr, args) {
                    Outcome::Return(v) => return v,
                    Outcome::Continue(a) if a[0] == 0 && a[1] == 1 << 31 => args = a,
                    Outcome::Continue(a) => panic!("unexpected continuation {a:?}"),
                }
            }
        }

        pub fn poke(&mut self, va: u64, data: &[u8]) {
            GuestMemory::new(&mut self.mem, Mfn(0)).copy_to(va, data).unwrap();
        }

        pub fn peek(&mut self, va: u64, len: usize) -> Vec<u8> {
            let mut b = std::vec![0u8; len];
            GuestMemory::new(&mut self.mem, Mfn(0)).copy_from(va, &mut b).unwrap();
            b
        }
    }

    #[test]
    fn unknown_and_out_of_range_numbers_are_enosys() {
        let mut w = World::new(true);
        for nr in [11u64, 42, 63, 64, 1 << 40, u64::MAX] {
            assert_eq!(w.call_ret(nr, [0; 5]), -38, "hypercall {nr}");
        }
    }
}
