//! The end of a domain's life: what `XEN_DOMCTL_destroydomain` sets off,
//! in Xen 4.17's order (`domain_kill`, `domain_relinquish_resources`,
//! `relinquish_memory` in xen/common/domain.c and xen/arch/x86/domain.c),
//! restartable as Xen's is, with the freed memory scrubbed lazily.
//!
//! A dying domain is taken apart in steps ([`destroy_step`]), each bounded
//! by a work budget ([`STEP_BUDGET`]); the system runs one after every
//! hypercall and in idle time, and `destroydomain` answers the toolstack
//! with a continuation until the last step is done (Xen's `-ERESTART`
//! from `domain_kill`). The stages, each resuming where the last step
//! stopped ([`Relinquish`]):
//! - teardown, resumable port by port, mapping by mapping and vCPU by
//!   vCPU (Xen's `evtchn_destroy`, `gnttab_release_mappings` and
//!   `PROG_vcpu_teardown`): its event channels close (an interdomain
//!   peer's port goes back to unbound, offered to the dead domain, as
//!   Xen's `evtchn_close` does); the grant mappings it holds of other
//!   domains' grants end (their references dropped, the granters'
//!   `GTF_reading`/`GTF_writing` cleared); its vCPUs go: base pointers,
//!   GDT and LDT frames, `vcpu_info` and parked tables' references, then
//!   its FIFO control blocks and its PIRQ EOI bitmap page's;
//! - its pages, a walk of its page list: a pin goes, and a page table
//!   (validated, or partially (de)validated) is forcibly invalidated, as
//!   Xen's `relinquish_memory` does, whoever holds type references on it.
//!   Its entries release what they hold without devalidating the tables
//!   they name, which are taken apart when the walk reaches them: one
//!   table walk per page at most, however deep the hierarchy, and nothing
//!   left circular;
//! - release, a second walk: every page nothing refers to any more loses
//!   its M2P entry and goes on the frame table's dirty list, as do the
//!   hypervisor frames it was given (shared_info, grant-table frames)
//!   once nobody maps them.
//!
//! Frames on the dirty list belong to no one and are never handed out:
//! [`scrub`] zeroes them and only then returns them to the pool (Xen's
//! `PGC_need_scrub`: "after a domain has died we assume responsibility for
//! erasure"). The system scrubs a bounded number after every hypercall
//! and more in idle time.
//!
//! Frames another domain still maps (a grant it mapped, a foreign mapping
//! of dom0's) stay the dying domain's until that mapping goes; [`reap`]
//! returns them then, and the domain is dead once it holds nothing.

use guest_abi::xen::VIRQ_DOM_EXC;

use crate::domain::{DomId, Domain, DomainState};
use crate::evtchn;
use crate::gnttab;
use crate::hypercall::{event_channel, Peers};
use crate::mm::frame_table::{FrameTable, Owner};
use crate::mm::m2p::M2p;
use crate::mm::pt_validate::Mmu;
use crate::mm::{FramePool, MachineMemory, Mfn};

/// Lifecycle work a hypercall hands to the system, which holds every
/// domain: the toolstack's `createdomain` makes a domain the system adds
/// once the hypercall returns.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// The last ID `createdomain` chose (Xen's `rover`): the next search
    /// starts after it.
    pub rover: DomId,
    /// Domains created by the hypercall just served.
    pub created: alloc::vec::Vec<Domain>,
    /// The wallclock at system time 0 (seconds, nanoseconds), which every
    /// domain's shared_info publishes, new ones too.
    pub wallclock: Option<(u64, u32)>,
    /// The teardowns under way: each dying domain's progress.
    pub relinquish: alloc::vec::Vec<(DomId, Relinquish)>,
}

/// What taking a domain apart needs from the system.
pub struct Resources<'a> {
    /// The frame table.
    pub ft: &'a mut FrameTable,
    /// Machine memory.
    pub mem: &'a mut dyn MachineMemory,
    /// Where freed frames go.
    pub pool: &'a mut dyn FramePool,
    /// The machine-to-phys table (freed frames get invalid entries).
    pub m2p: M2p,
}

/// Work units one [`destroy_step`] may spend: a page visited costs 1, a
/// page table walked 512 (its entries), a frame released 1; 32 tables'
/// worth, the budget of a page-table batch ([`crate::hypercall`]'s
/// `mmu_update`).
pub const STEP_BUDGET: u64 = 32 * 512;
/// Frames [`scrub`] zeroes after every hypercall (1 MiB).
pub const SCRUB_PER_ENTRY: u64 = 256;
/// Frames [`scrub`] zeroes per wakeup of the idle CPU (4 MiB).
pub const SCRUB_PER_IDLE: u64 = 1024;
/// Scrubbed frames the pool is refilled to after every hypercall while
/// dirty ones wait (4 MiB): more than one hypercall may allocate (a
/// `memory_op` batch stops at 2 MiB), so that no allocation fails while
/// memory only waits to be scrubbed (Xen scrubs on allocation instead).
pub const POOL_RESERVE: u64 = 1024;

/// How far the teardown of a dying domain got (Xen's `d->teardown` and
/// `d->arch.rel_priv` progress markers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relinquish {
    stage: Stage,
    /// The next page of the current walk (`None`: from the list's head).
    cursor: Option<Mfn>,
    /// The next port or maptrack handle of the teardown.
    next: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stage {
    /// Event channels, port by port (Xen's `evtchn_destroy`).
    #[default]
    Channels,
    /// Grant mappings the domain holds, handle by handle (Xen's
    /// `gnttab_release_mappings`).
    GrantMappings,
    /// vCPUs one by one (Xen's `vcpu_destroy_pagetables` and the rest of
    /// `PROG_vcpu_teardown`), then the FIFO control blocks, the PIRQ EOI
    /// map and the console ring.
    Vcpus,
    /// Pins and page tables, a walk of the page list.
    Pages,
    /// Idle pages to the dirty list, a walk of the page list.
    Release,
}

/// What a [`destroy_step`] left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The budget ran out: more steps to go.
    More,
    /// Taken apart; `true` if nothing of it is mapped elsewhere any more
    /// (the next [`reap`] finds it dead), else a zombie until [`reap`]
    /// finds its last frame free.
    Done(bool),
}

/// Destroys domain `index` of `domains` (which must be
/// [`DomainState::Dying`] and not yet torn down) in one go: every step of
/// [`destroy_step`]. Returns whether it is dead already.
#[cfg(test)]
pub fn destroy(domains: &mut [Domain], index: usize, res: &mut Resources) -> bool {
    let mut progress = Relinquish::default();
    while destroy_step(domains, index, res, &mut progress, STEP_BUDGET) == Step::More {}
    domains.get_mut(index).is_some_and(|d| {
        d.destroy_acked = true;
        reap(d, res)
    })
}

/// One step of the teardown of dying domain `index` of `domains`, from
/// `progress` on, spending about `budget` work units (at least one page's
/// worth, so that every step makes progress); see the module
/// documentation.
pub fn destroy_step(
    domains: &mut [Domain],
    index: usize,
    res: &mut Resources,
    progress: &mut Relinquish,
    budget: u64,
) -> Step {
    let Some((d, mut peers)) = Peers::split(domains, index) else { return Step::Done(false) };
    if d.torn_down || !matches!(d.state, DomainState::Dying(_)) {
        return Step::Done(false);
    }
    let mut spent = 0u64;
    loop {
        match progress.stage {
            Stage::Channels | Stage::GrantMappings | Stage::Vcpus => {
                if !teardown(d, &mut peers, res, progress, budget, &mut spent) {
                    return Step::More;
                }
                *progress = Relinquish { stage: Stage::Pages, cursor: None, next: 0 };
            }
            Stage::Pages | Stage::Release => {
                let release = progress.stage == Stage::Release;
                // A cursor that left the list (nothing should take pages
                // from a dying domain, but the walk is idempotent): start over.
                let mut cursor = match progress.cursor {
                    Some(m) if res.ft.is_owned_by(m, d.id) => Some(m),
                    _ => d.page_list.first(),
                };
                while let Some(mfn) = cursor {
                    if spent >= budget {
                        progress.cursor = Some(mfn);
                        return Step::More;
                    }
                    cursor = res.ft.next_page(mfn);
                    spent += if release { release_page(d, mfn, res) } else { relinquish_page(d.id, mfn, res) };
                }
                if !release {
                    *progress = Relinquish { stage: Stage::Release, cursor: None, next: 0 };
                    continue;
                }
                d.torn_down = true;
                // Dead at the next reap, not now: the toolstack's
                // continued destroydomain still finds it, done.
                return Step::Done(release_frames(d, res, false));
            }
        }
    }
}

/// Work units of the teardown: a port looked at, a port closed, a grant
/// mapping ended, a vCPU taken apart (its base pointers, at most 16 GDT and
/// 16 LDT frames, `vcpu_info` and parked table: no walk).
const PORT_COST: u64 = 1;
const CLOSE_COST: u64 = 8;
const MAPPING_COST: u64 = 8;
const VCPU_COST: u64 = 64;

/// The first stages, from where `progress` left off, spending from
/// `spent` up to `budget` (at least one unit of work a step): channels
/// close, grant mappings end, vCPUs go with what they hold. Returns
/// whether all of it is done.
fn teardown(
    d: &mut Domain,
    peers: &mut Peers,
    res: &mut Resources,
    progress: &mut Relinquish,
    budget: u64,
    spent: &mut u64,
) -> bool {
    let more = |spent: &mut u64, cost: u64| {
        let go = *spent < budget;
        *spent += cost;
        go
    };
    if progress.stage == Stage::Channels {
        while let Some(port) = u32::try_from(progress.next).ok().and_then(|p| d.evtchn.port(p).map(|q| (p, *q))) {
            if !more(spent, PORT_COST) {
                return false;
            }
            if port.1.binding.is_usable() {
                *spent += CLOSE_COST;
                let _ = event_channel::close(d, peers, port.0, res.mem);
            }
            progress.next += 1;
        }
        (progress.stage, progress.next) = (Stage::GrantMappings, 0);
    }
    if progress.stage == Stage::GrantMappings {
        while progress.next < d.gnttab.maptrack.len() {
            if !more(spent, MAPPING_COST) {
                return false;
            }
            let slot = d.gnttab.maptrack.get_mut(progress.next).and_then(Option::take);
            if let Some(m) = slot {
                end_grant_mapping(d, peers, res, m);
            }
            progress.next += 1;
        }
        d.gnttab.maptrack.clear();
        (progress.stage, progress.next) = (Stage::Vcpus, 0);
    }
    let mut mmu = Mmu { ft: &mut *res.ft, mem: &mut *res.mem };
    while !d.vcpus.is_empty() {
        if !more(spent, VCPU_COST) {
            return false;
        }
        if let Some(v) = d.vcpus.pop() {
            vcpu_teardown(d.id, v, &mut mmu);
        }
    }
    evtchn::fifo_control::destroy(d, &mut mmu);
    if let Some(eoi_map) = d.pirqs.eoi_map.take() {
        mmu.put_page_and_type(eoi_map);
    }
    d.console_ring = None;
    true
}

/// What vCPU `v` of dying domain `id` holds goes: its base pointers (the
/// tables are taken apart by the page walk), GDT and LDT frames,
/// `vcpu_info`, and a parked table's references.
fn vcpu_teardown(id: DomId, v: crate::domain::Vcpu, mmu: &mut Mmu) {
    for l4 in core::iter::once(v.kernel_l4).chain(v.user_l4) {
        if mmu.ft.owner(l4) == Some(Owner::Domain(id)) {
            mmu.ft.put_type_deferred(l4);
            mmu.ft.put_page(l4);
        }
    }
    for mfn in v.gdt_frames.into_iter().chain(v.ldt_frames.into_iter().flatten()) {
        mmu.put_page_and_type(mfn);
    }
    if let Some((info, _)) = v.vcpu_info {
        mmu.put_page_and_type(info);
    }
    if let Some(old) = v.old_guest_table {
        mmu.drop_parked(old);
    }
}

/// The page walk's work on page `mfn` of dying domain `id`: its pin goes
/// and, if it is a page table, it is forcibly invalidated. Returns the
/// work units spent.
fn relinquish_page(id: DomId, mfn: Mfn, res: &mut Resources) -> u64 {
    let mut mmu = Mmu { ft: &mut *res.ft, mem: &mut *res.mem };
    if mmu.ft.owner(mfn) != Some(Owner::Domain(id)) {
        return 1;
    }
    if let Some(p) = mmu.ft.info(mfn).copied().filter(|p| p.pinned()) {
        let _ = mmu.ft.set_pinned(mfn, false);
        // A pinned table whose unpin was preempted: its type reference is
        // the partial state's, which the invalidation below drops.
        if p.partial().is_none() {
            mmu.ft.put_type_deferred(mfn);
        }
        mmu.ft.put_page(mfn);
    }
    if mmu.relinquish_table(mfn) {
        513
    } else {
        1
    }
}

/// The release walk's work on page `mfn` of dying `d`: if nothing refers
/// to it, it leaves `d` for the dirty list. Returns the work units spent.
fn release_page(d: &mut Domain, mfn: Mfn, res: &mut Resources) -> u64 {
    if idle(res.ft, mfn) && res.ft.release_page(mfn, d.id, &mut d.page_list).is_ok() {
        to_dirty_list(mfn, res);
    }
    1
}

/// Returns what dying domain `d` no longer shares with anyone; marks it
/// dead when nothing is left. Returns whether it died now.
pub fn reap(d: &mut Domain, res: &mut Resources) -> bool {
    if !matches!(d.state, DomainState::Dying(_)) || !d.torn_down || !d.destroy_acked {
        return false;
    }
    release_frames(d, res, true)
}

/// Ends grant mapping `m` of dying `d`: the references its host and
/// device uses took go, and the granter's entry is released. The PTEs
/// (marked `_PAGE_GNTTAB`) hold nothing of their own and go with `d`'s
/// tables.
fn end_grant_mapping(d: &mut Domain, peers: &mut Peers, res: &mut Resources, m: gnttab::Mapping) {
    let mut mmu = Mmu { ft: &mut *res.ft, mem: &mut *res.mem };
    let uses = u32::from(m.host) + u32::from(m.device);
    for _ in 0..uses {
        if !m.readonly {
            mmu.put_type(m.mfn);
        }
        mmu.ft.put_page(m.mfn);
    }
    let granter = if m.granter == d.id { Some(&mut *d) } else { peers.get_mut(m.granter) };
    if let Some(g) = granter {
        for device in [false, true].into_iter().filter(|&dev| if dev { m.device } else { m.host }) {
            gnttab::active::unpin(g, mmu.mem, m.gref, gnttab::active::pin_inc(device, m.readonly));
        }
    }
}

/// Frees every frame of dying `d` that nothing refers to (a walk of its
/// page list; those still mapped elsewhere stay on it); when none is left,
/// its hypervisor frames go too (once unmapped) and, with `mark_dead`, it
/// is dead. Returns whether nothing is left.
fn release_frames(d: &mut Domain, res: &mut Resources, mark_dead: bool) -> bool {
    let mut cursor = d.page_list.first();
    while let Some(mfn) = cursor {
        cursor = res.ft.next_page(mfn);
        release_page(d, mfn, res);
    }
    let xen_frames = core::iter::once(d.shared_info).chain(d.gnttab.shared_frames());
    let xen_frames: alloc::vec::Vec<Mfn> = xen_frames.filter(|&m| m != Mfn(u64::MAX)).collect();
    let mut xen_kept = alloc::vec::Vec::new();
    for mfn in xen_frames {
        if !free_frame(mfn, res) {
            xen_kept.push(mfn);
        }
    }
    // A freed table or status frame cannot be written again: entries
    // still in use by a mapper are only counted from now on.
    d.gnttab.frames.retain(|m| xen_kept.contains(m));
    d.gnttab.status.retain(|m| xen_kept.contains(m));
    if !xen_kept.contains(&d.shared_info) {
        d.shared_info = Mfn(u64::MAX);
    }
    if !d.page_list.is_empty() || !xen_kept.is_empty() {
        return false;
    }
    if !mark_dead {
        return true;
    }
    d.state = match d.state {
        DomainState::Dying(r) => DomainState::Dead(r),
        other => other,
    };
    true
}

/// Whether nothing refers to `mfn`, which somebody owns.
fn idle(ft: &FrameTable, mfn: Mfn) -> bool {
    ft.info(mfn).is_some_and(|p| p.count() == 0 && p.type_count() == 0 && p.owner() != Owner::Free)
}

/// Returns a hypervisor frame (shared_info, a grant-table frame) to the
/// pool if nothing refers to it.
fn free_frame(mfn: Mfn, res: &mut Resources) -> bool {
    if !idle(res.ft, mfn) || res.ft.set_owner(mfn, Owner::Free).is_err() {
        return false;
    }
    to_dirty_list(mfn, res);
    true
}

/// Puts an unowned frame on the dirty list with an invalid M2P entry.
fn to_dirty_list(mfn: Mfn, res: &mut Resources) {
    res.m2p.set(res.mem, mfn, None);
    if res.ft.push_dirty(mfn).is_err() {
        // Not a frame the table covers as free memory: scrub it now.
        if let Some(bytes) = res.mem.frame_mut(mfn) {
            bytes.fill(0);
        }
        res.pool.free(mfn);
    }
}

/// Scrubs up to `max` frames of the dirty list and returns them to the
/// pool: the only way back for a dead domain's memory. Returns how many.
pub fn scrub(res: &mut Resources, max: u64) -> u64 {
    let mut n = 0;
    while n < max {
        let Some(mfn) = res.ft.take_dirty() else { break };
        if let Some(bytes) = res.mem.frame_mut(mfn) {
            bytes.fill(0);
        }
        res.pool.free(mfn);
        n += 1;
    }
    n
}

/// Raises `VIRQ_DOM_EXC` (a domain shut down or died) in every privileged
/// domain that bound it, as Xen's `send_global_virq` does for its handler.
pub fn notify_dom_exc(domains: &mut [Domain], mem: &mut dyn MachineMemory) {
    for d in domains.iter_mut().filter(|d| d.privileged && d.is_alive()) {
        evtchn::send_virq(d, mem, VIRQ_DOM_EXC, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evtchn::Binding;
    use crate::hypercall::tests::{test_domain, World, BUF_VA, M2P};
    use guest_abi::grant_table::{
        GnttabMapGrantRef, GnttabUnmapGrantRef, GNTMAP_HOST_MAP, GNTST_OKAY, GNTTABOP_MAP_GRANT_REF,
        GNTTABOP_UNMAP_GRANT_REF, GTF_PERMIT_ACCESS,
    };
    use guest_abi::xen::{HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP};
    use zerocopy::{FromBytes, FromZeros, IntoBytes};
    extern crate std;

    /// Runs `destroy` on `w`'s peer 0 with the caller beside it, as the
    /// system's domain list would hold them.
    fn destroy_peer(w: &mut World) -> bool {
        w.peers[0].state = DomainState::Dying(None);
        let dom = core::mem::replace(&mut w.dom, test_domain(99, false, 0..0, None, Mfn(u64::MAX)).domain);
        let mut domains = std::vec![dom, w.peers.remove(0)];
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        let dead = destroy(&mut domains, 1, &mut res);
        scrub(&mut res, u64::MAX);
        w.peers.insert(0, domains.remove(1));
        w.dom = domains.remove(0);
        w.audit();
        dead
    }

    /// Domain 1 owning frames 10..15 with a full hierarchy: L4 10 → L3 11
    /// → L2 12 → L1 13, which maps frame 14 writable and its shared_info
    /// (15) read-only; L4 slot 1 is a read-only linear entry to itself.
    fn world_with_peer_tables() -> World {
        let mut w = World::new(true);
        w.mem.set_entry(10, 0, (11 << 12) | 0x67);
        w.mem.set_entry(10, 1, (10 << 12) | 0x65);
        w.mem.set_entry(11, 0, (12 << 12) | 0x67);
        w.mem.set_entry(12, 0, (13 << 12) | 0x67);
        w.mem.set_entry(13, 0, (14 << 12) | 0x67);
        w.mem.set_entry(13, 1, (15 << 12) | 0x65);
        let mut peer = test_domain(1, false, 10..15, Some(Mfn(10)), Mfn(15));
        peer.max_pages = 5;
        w.add_peer(peer);
        w.audit();
        w
    }

    #[test]
    fn a_domain_alone_gives_every_frame_back_at_once() {
        let mut w = world_with_peer_tables();
        assert!(w.ft.info(Mfn(13)).is_some_and(|p| p.type_count() == 1), "the hierarchy is validated");
        assert_eq!(w.ft.info(Mfn(15)).map(|p| p.count()), Some(1), "its L1 maps its shared_info");
        let pool = w.pool.0.len();
        w.mem.0[14][0] = 0xaa;
        assert!(destroy_peer(&mut w), "nothing of it is mapped elsewhere: dead");
        assert_eq!(w.peers[0].state, DomainState::Dead(None));
        assert_eq!(w.pool.0.len(), pool + 6, "5 frames of RAM and shared_info back in the pool");
        for m in 10..16 {
            let p = w.ft.info(Mfn(m)).copied().unwrap_or_default();
            assert_eq!((p.owner(), p.count(), p.type_count(), p.pinned()), (Owner::Free, 0, 0, false), "frame {m}");
        }
        assert_eq!(w.mem.0[14][0], 0, "scrubbed");
        assert!(w.peers[0].vcpus.is_empty() && w.peers[0].page_list.is_empty());
        assert_eq!(w.peers[0].tot_pages(), 0);
    }

    #[test]
    fn destroy_drops_what_the_vcpus_hold_gdt_ldt_and_vcpu_info() {
        use crate::mm::frame_table::PageType;
        use crate::mm::pt_validate::MapRights;
        let mut w = world_with_peer_tables();
        let (gdt, ldt) = (w.pool.0.pop().unwrap(), w.pool.0.pop().unwrap());
        w.peers[0].max_pages = 7;
        for m in [gdt, ldt] {
            w.give(1, m);
        }
        let mut mmu = Mmu { ft: &mut w.ft, mem: &mut w.mem };
        let rights = MapRights::of(&w.peers[0]);
        mmu.get_page_and_type(gdt, &rights, PageType::SegDesc).unwrap();
        mmu.get_page_and_type(ldt, &rights, PageType::SegDesc).unwrap();
        mmu.get_page_and_type(Mfn(14), &rights, PageType::Writable).unwrap();
        let v = &mut w.peers[0].vcpus[0];
        (v.gdt_frames, v.ldt_frames, v.ldt_ents, v.vcpu_info) =
            (std::vec![gdt], std::vec![Some(ldt)], 1, Some((Mfn(14), 0)));
        w.audit();
        let pool = w.pool.0.len();
        assert!(destroy_peer(&mut w), "nothing else holds them: dead");
        assert_eq!(w.pool.0.len(), pool + 8, "5 frames of RAM, shared_info, the GDT and LDT frames");
        for m in [gdt, ldt, Mfn(14)] {
            let p = w.ft.info(m).copied().unwrap_or_default();
            assert_eq!((p.owner(), p.count(), p.type_count()), (Owner::Free, 0, 0), "frame {}", m.0);
        }
    }

    #[test]
    fn a_dying_domain_keeps_what_a_peer_maps_until_it_is_unmapped() {
        let mut w = World::new(true);
        w.add_peer(test_domain(1, false, 10..13, Some(Mfn(10)), Mfn(13)));
        // The peer: a grant table granting frame 12 to d0, and a port for d0.
        w.peers[0].gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        let table = w.peers[0].gnttab.frames[0];
        crate::gnttab::tests::grant(&w.peers[0], &mut w.mem, 8, GTF_PERMIT_ACCESS as u16, 0, 12);
        let port = w.peers[0].evtchn.allocate(&mut w.mem, Binding::Unbound { remote: 0 }, 0).unwrap();
        // d0 binds the port and maps the grant over its buffer page 1.
        let bind = guest_abi::event_channel::EvtchnBindInterdomain {
            remote_dom: 1,
            _pad0: [0; 2],
            remote_port: port,
            local_port: 0,
        };
        w.poke(BUF_VA, bind.as_bytes());
        let nr = u64::from(HYPERVISOR_EVENT_CHANNEL_OP);
        assert_eq!(
            w.call_ret(nr, [u64::from(guest_abi::event_channel::EVTCHNOP_BIND_INTERDOMAIN), BUF_VA, 0, 0, 0]),
            0
        );
        let local = u32::read_from_bytes(&w.peek(BUF_VA + 8, 4)).unwrap();
        let mut map = GnttabMapGrantRef::new_zeroed();
        (map.host_addr, map.flags, map.ref_, map.dom) = (BUF_VA + 0x1000, GNTMAP_HOST_MAP, 8, 1);
        w.poke(BUF_VA + 0x2000, map.as_bytes());
        let gnt = u64::from(HYPERVISOR_GRANT_TABLE_OP);
        assert_eq!(w.call_ret(gnt, [u64::from(GNTTABOP_MAP_GRANT_REF), BUF_VA + 0x2000, 1, 0, 0]), 0);
        let map =
            GnttabMapGrantRef::read_from_bytes(&w.peek(BUF_VA + 0x2000, core::mem::size_of::<GnttabMapGrantRef>()))
                .unwrap();
        assert_eq!(map.status, GNTST_OKAY);
        w.mem.0[12][0] = 0x5a;

        let pool = w.pool.0.len();
        assert!(!destroy_peer(&mut w), "d0 still maps frame 12");
        assert_eq!(w.peers[0].state, DomainState::Dying(None));
        assert_eq!(w.ft.pages(&w.peers[0].page_list).collect::<std::vec::Vec<_>>(), [Mfn(12)]);
        assert_eq!(w.peers[0].tot_pages(), 1);
        assert_eq!(w.pool.0.len(), pool + 4, "frames 10, 11, 13 (shared_info) and the grant-table frame");
        assert_eq!(w.ft.owner(table), Some(Owner::Free));
        assert_eq!(
            w.dom.evtchn.port(local).map(|p| p.binding),
            Some(Binding::Unbound { remote: 1 }),
            "d0's end is closed: unbound, offered to the dead domain, as Xen leaves it"
        );
        assert_eq!(w.peek(BUF_VA + 0x1000, 1), [0x5a], "the mapping still reads the frame");

        // A new mapping of a dying domain's grant is refused.
        let mut again = map;
        (again.host_addr, again.status) = (BUF_VA + 0x3000, 0);
        w.poke(BUF_VA + 0x2000, again.as_bytes());
        assert_eq!(w.call_ret(gnt, [u64::from(GNTTABOP_MAP_GRANT_REF), BUF_VA + 0x2000, 1, 0, 0]), 0);
        let again =
            GnttabMapGrantRef::read_from_bytes(&w.peek(BUF_VA + 0x2000, core::mem::size_of::<GnttabMapGrantRef>()))
                .unwrap();
        assert_eq!(again.status, guest_abi::grant_table::GNTST_BAD_DOMAIN);

        let mut unmap = GnttabUnmapGrantRef::new_zeroed();
        (unmap.host_addr, unmap.handle) = (BUF_VA + 0x1000, map.handle);
        w.poke(BUF_VA + 0x2000, unmap.as_bytes());
        assert_eq!(w.call_ret(gnt, [u64::from(GNTTABOP_UNMAP_GRANT_REF), BUF_VA + 0x2000, 1, 0, 0]), 0);
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        assert!(reap(&mut w.peers[0], &mut res), "the last frame is free: dead");
        assert_eq!(scrub(&mut res, u64::MAX), 1, "frame 12, scrubbed on its way back");
        assert_eq!(w.peers[0].state, DomainState::Dead(None));
        assert_eq!(w.pool.0.len(), pool + 5);
        assert_eq!(w.ft.owner(Mfn(12)), Some(Owner::Free));
    }

    #[test]
    fn the_mapper_dying_releases_its_grant_mappings() {
        let mut w = World::new(true);
        w.add_peer(test_domain(1, false, 10..13, Some(Mfn(10)), Mfn(13)));
        w.dom.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        crate::gnttab::tests::grant(&w.dom, &mut w.mem, 3, GTF_PERMIT_ACCESS as u16, 1, 7);
        // As if the peer had mapped it: the references and the entry's use.
        let host_w = crate::gnttab::active::HOST_W;
        let granted = crate::gnttab::active::pin_for_map(&mut w.dom, &mut w.mem, &w.ft, 3, 1, host_w).unwrap();
        w.ft.get_page(granted, Owner::Domain(0)).unwrap();
        w.ft.get_type(granted, crate::mm::frame_table::PageType::Writable).unwrap();
        let m = crate::gnttab::Mapping {
            granter: 0,
            gref: 3,
            mfn: granted,
            host: true,
            device: false,
            readonly: false,
            by_pte: false,
        };
        w.peers[0].gnttab.track(m).unwrap();
        w.audit();
        assert!(destroy_peer(&mut w));
        assert_eq!(w.dom.gnttab.entry(&w.mem, 3).map(|e| e.flags), Ok(GTF_PERMIT_ACCESS as u16), "no longer in use");
        assert!(w.dom.gnttab.active.is_empty());
    }

    use crate::hypercall::preempt_tests::deep;
    use crate::mm::pt_validate::MapRights;
    use guest_abi::errno::XenError;

    /// The peer's frames, as its page list holds them.
    fn peer_frames(w: &World) -> std::vec::Vec<Mfn> {
        w.ft.pages(&w.peers[0].page_list).collect()
    }

    /// Destroys peer 0 and checks that every frame it had (and its
    /// shared_info) came back to the pool, free and unreferenced.
    fn destroy_and_check_every_frame_back(w: &mut World) {
        let frames = peer_frames(w);
        let pool = w.pool.0.len();
        assert!(destroy_peer(w), "dead");
        assert_eq!(w.pool.0.len(), pool + frames.len() + 1, "every frame and shared_info back");
        for m in frames {
            let p = w.ft.info(m).copied().unwrap_or_default();
            assert_eq!(p, crate::mm::frame_table::PageInfo::default(), "frame {} free and clean", m.0);
        }
    }

    #[test]
    fn a_partial_pin_abandoned_leaks_nothing_when_the_domain_dies() {
        let mut w = world_with_peer_tables();
        let d = deep(&mut w, 1, (2, 2, 40), Mfn(12), Mfn(14));
        let rights = MapRights::of(&w.peers[0]);
        let walked = w.ft.tables_walked();
        w.ft.set_preempt_at(walked + 70);
        assert_eq!(Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin_preemptible(d.l4, 4, &rights), Err(XenError::Erestart));
        w.audit();
        let partial = w.ft.info(d.l4).and_then(|p| p.partial()).expect("partially validated");
        assert!(partial.child, "down in an L3: {partial:?}");
        destroy_and_check_every_frame_back(&mut w);
    }

    #[test]
    fn a_partial_unpin_abandoned_leaks_nothing_when_the_domain_dies() {
        let mut w = world_with_peer_tables();
        let d = deep(&mut w, 1, (2, 2, 40), Mfn(12), Mfn(14));
        let rights = MapRights::of(&w.peers[0]);
        Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(d.l4, 4, &rights).unwrap();
        let walked = w.ft.tables_walked();
        w.ft.set_preempt_at(walked + 70);
        assert_eq!(Mmu { ft: &mut w.ft, mem: &mut w.mem }.unpin_preemptible(d.l4, 1), Err(XenError::Erestart));
        w.audit();
        let p = w.ft.info(d.l4).copied().unwrap();
        assert!(p.pinned() && p.partial().is_some_and(|q| q.devalidating && q.child), "{:?}", p.partial());
        destroy_and_check_every_frame_back(&mut w);
    }

    /// One teardown step of peer 0 with `budget`, audited after it.
    fn step_peer(w: &mut World, progress: &mut Relinquish, budget: u64) -> Step {
        let dom = core::mem::replace(&mut w.dom, test_domain(99, false, 0..0, None, Mfn(u64::MAX)).domain);
        let mut domains = std::vec![dom, w.peers.remove(0)];
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        let step = destroy_step(&mut domains, 1, &mut res, progress, budget);
        w.peers.insert(0, domains.remove(1));
        w.dom = domains.remove(0);
        w.audit();
        step
    }

    #[test]
    fn a_large_domain_dies_in_bounded_steps_and_its_memory_is_scrubbed_before_reuse() {
        let mut w = world_with_peer_tables();
        let d = deep(&mut w, 1, (2, 3, 40), Mfn(12), Mfn(14));
        let rights = MapRights::of(&w.peers[0]);
        Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(d.l4, 4, &rights).unwrap();
        // A second hierarchy reference: the small L4 links the deep L3s too.
        let l3 = d.tables[1];
        let mut mmu = Mmu { ft: &mut w.ft, mem: &mut w.mem };
        assert_eq!(mmu.mod_entry(Mfn(10), 4, 5, l3.addr() | 0x67, false, &rights, &rights), Ok(true));
        w.audit();
        let frames = peer_frames(&w);
        let pool = w.pool.0.len();
        w.peers[0].state = DomainState::Dying(None);
        let mut progress = Relinquish::default();
        let mut steps = 0;
        let dead = loop {
            steps += 1;
            let walked = w.ft.tables_walked();
            let step = step_peer(&mut w, &mut progress, 16 * 512);
            assert!(w.ft.tables_walked() - walked <= 16 + 1, "a step walks at most its budget's tables");
            match step {
                Step::More => assert!(!w.peers[0].torn_down && steps < 1000),
                Step::Done(dead) => break dead,
            }
        };
        assert!(dead && w.peers[0].torn_down);
        assert_eq!(w.peers[0].state, DomainState::Dying(None), "dead at the next reap");
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        assert!(!reap(&mut w.peers[0], &mut res), "not before the toolstack's call has returned");
        w.peers[0].destroy_acked = true;
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        assert!(reap(&mut w.peers[0], &mut res));
        assert_eq!(w.peers[0].state, DomainState::Dead(None));
        assert!(steps >= 8, "{} tables at 16 a step: {steps} steps", d.tables.len());
        // Nothing came back to the pool unscrubbed: all of it waits.
        assert_eq!(w.pool.0.len(), pool, "no frame in the pool yet");
        assert_eq!(w.ft.dirty_frames(), frames.len() as u64 + 1, "its frames and shared_info wait to be scrubbed");
        for &m in &frames {
            assert!(w.ft.needs_scrub(m) && w.ft.owner(m) == Some(Owner::Free), "frame {}", m.0);
        }
        let dirty_tables = d.tables.iter().filter(|m| w.mem.0[m.0 as usize].iter().any(|&b| b != 0)).count();
        assert_eq!(dirty_tables, d.tables.len(), "the tables still hold their entries");
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        assert_eq!(scrub(&mut res, 7), 7);
        w.audit();
        // Whatever the allocator hands out now reads as zeroes.
        let mut handed = std::vec::Vec::new();
        while let Some(m) = crate::mm::FramePool::alloc(&mut w.pool) {
            assert!(w.mem.0[m.0 as usize].iter().all(|&b| b == 0), "frame {} handed out unscrubbed", m.0);
            handed.push(m);
        }
        for m in handed {
            crate::mm::FramePool::free(&mut w.pool, m);
        }
        let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: M2P };
        assert_eq!(scrub(&mut res, u64::MAX), frames.len() as u64 + 1 - 7);
        assert_eq!(w.pool.0.len(), pool + frames.len() + 1, "every frame back");
        for &m in &frames {
            assert!(w.mem.0[m.0 as usize].iter().all(|&b| b == 0), "frame {} scrubbed", m.0);
            assert_eq!(w.ft.info(m).copied(), Some(crate::mm::frame_table::PageInfo::default()));
        }
        w.audit();
    }

    #[test]
    fn the_teardown_of_many_channels_and_vcpus_is_bounded_per_step() {
        let mut w = world_with_peer_tables();
        for _ in 0..300 {
            w.peers[0].evtchn.allocate(&mut w.mem, Binding::Unbound { remote: 0 }, 0).unwrap();
        }
        w.peers[0].max_vcpus = 8;
        w.peers[0].create_offline_vcpus(512, 0);
        let vcpus = w.peers[0].vcpus.len();
        assert!(vcpus >= 8);
        w.peers[0].state = DomainState::Dying(None);
        let mut progress = Relinquish::default();
        let budget = 512;
        let mut teardown_steps = 0;
        while matches!(progress.stage, Stage::Channels | Stage::GrantMappings | Stage::Vcpus) {
            let (ports, vcpus) = (w.peers[0].evtchn.used_ports().count(), w.peers[0].vcpus.len());
            assert_eq!(step_peer(&mut w, &mut progress, budget), Step::More);
            let closed = ports - w.peers[0].evtchn.used_ports().count();
            let gone = vcpus - w.peers[0].vcpus.len();
            assert!(closed as u64 <= budget / (PORT_COST + CLOSE_COST) + 1, "{closed} ports in one step");
            assert!(gone as u64 <= budget / VCPU_COST + 1, "{gone} vCPUs in one step");
            teardown_steps += 1;
        }
        assert!(teardown_steps >= 5, "{teardown_steps} steps");
        assert_eq!(w.peers[0].evtchn.used_ports().count(), 0);
        assert!(w.peers[0].vcpus.is_empty());
        let mut progress2 = progress;
        while step_peer(&mut w, &mut progress2, budget) == Step::More {}
        assert!(w.peers[0].torn_down);
    }
}
