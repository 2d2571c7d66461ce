//! `memory_op`: a domain's memory reservation and what it may learn about
//! machine memory (the XENMEM_* commands a PV guest uses).
//!
//! Semantics and errnos: Xen 4.17 `xen/common/memory.c` (`do_memory_op`)
//! and `xen/arch/x86/mm.c` (`arch_memory_op`). The reservation commands
//! return how many extents they did (so a failure midway is a short
//! count, not an errno), and continue with `cmd | start << 6`. Xen checks
//! for preemption after every extent; xenish's work budget does the same
//! by cost: an invocation stops after [`BATCH`] extents or once the
//! extents done reach [`FRAME_BUDGET`] frames (each frame is zeroed or
//! scrubbed, so frames are the work), always after at least one extent.
//! One invocation therefore clears at most `FRAME_BUDGET` frames plus one
//! extent of the domain's largest order (2 MiB for a domU, 16 MiB for the
//! control domain), where a count of extents alone allowed 512 such
//! extents. A domain never owns more than its `max_pages`: that is where
//! `mem=` (and `dom0_mem=`) bite.
//!
//! `decrease_reservation` gives frames back: a frame leaves its domain
//! (scrubbed, its M2P entry invalid, the TLB flushed) only when nothing
//! refers to it: no mapping, page type, grant, vcpu_info, console ring
//! or shared_info.
//! Xen would accept a still-referenced frame and free it when its last
//! reference goes; xenish refuses it (the count stops there), which a
//! balloon driver never sees, as it unmaps before it gives back.
//! `exchange` is [`super::memory_exchange`]. `set_memory_map` keeps the
//! E820 map the toolstack gives a domain (libxl gives a PV domU one RAM
//! entry), and `memory_map` returns it to the domain; without one it is
//! `-ENOSYS`, as on Xen (Linux then builds one from `nr_pages`). The
//! sharing counters are 0: no page is shared. `add_to_physmap` is
//! `-EACCES`, Xen's answer for a PV (non-translated) domain, which maps
//! shared_info and grant frames by MFN.

use alloc::vec::Vec;

use guest_abi::arch_x86::{MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};
use guest_abi::errno::XenError;
use guest_abi::memory::tools::*;
use guest_abi::memory::*;
use guest_abi::xen::DOMID_SELF;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::xsm::{self, Action};
use super::{Ctx, HcResult, Outcome, TlbFlush};
use crate::domain::{DomId, Domain};
use crate::mm::{Mfn, Pfn, PAGE_SIZE};

/// `MEMOP_EXTENT_SHIFT`: where a continuation's start extent sits in `cmd`.
const MEMOP_EXTENT_SHIFT: u32 = 6;
/// `MEMOP_CMD_MASK`.
const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;
/// Extents served before a reservation command is continued.
pub(super) const BATCH: u64 = 512;
/// Frames an invocation of a reservation command allocates or frees (and
/// clears) before it is continued: 2 MiB, one extent of a domU's largest
/// order, as much as Xen does between two preemption checks.
pub(super) const FRAME_BUDGET: u64 = 512;
/// The largest extent order of an unprivileged domain (`CONFIG_DOMU_MAX_ORDER`).
const DOMU_MAX_ORDER: u32 = 9;
/// The largest for the control domain (`CONFIG_CTLDOM_MAX_ORDER`).
const CTLDOM_MAX_ORDER: u32 = 12;
/// M2P entries per 2 MiB chunk of the table.
const M2P_CHUNK_ENTRIES: u64 = (2 << 20) / 8;
/// Bytes of an E820 entry (`{u64 addr, u64 size, u32 type}`, packed).
const E820_ENTRY_SIZE: u64 = 20;
/// The most entries a domain's memory map may have (Xen's `E820MAX`).
const E820_MAX: u32 = 1024;

/// `HYPERVISOR_memory_op(cmd, arg)`.
pub fn memory_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    let op = (cmd & MEMOP_CMD_MASK) as u32;
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    match op {
        XENMEM_INCREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP | XENMEM_DECREASE_RESERVATION => {
            reservation(ctx, op, arg, start)
        }
        // Xen's common commands refuse a start extent; the arch ones do
        // not know the command with one.
        XENMEM_EXCHANGE
        | XENMEM_MAXIMUM_RAM_PAGE
        | XENMEM_CURRENT_RESERVATION
        | XENMEM_MAXIMUM_RESERVATION
        | XENMEM_MAXIMUM_GPFN
            if start != 0 =>
        {
            Outcome::Return(XenError::Einval.to_ret())
        }
        XENMEM_ACQUIRE_RESOURCE => super::acquire_resource::acquire_resource(ctx, arg, start).into(),
        _ if start != 0 => Outcome::Return(XenError::Enosys.to_ret()),
        XENMEM_EXCHANGE => super::memory_exchange::exchange(ctx, arg),
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION | XENMEM_MAXIMUM_GPFN => stat(ctx, op, arg).into(),
        XENMEM_MAXIMUM_RAM_PAGE => Outcome::Return(ctx.m2p.entries as i64),
        XENMEM_MACHPHYS_MAPPING => machphys_mapping(ctx, arg).into(),
        XENMEM_MACHPHYS_MFN_LIST => machphys_mfn_list(ctx, arg).into(),
        XENMEM_MACHINE_MEMORY_MAP => machine_memory_map(ctx, arg).into(),
        XENMEM_ADD_TO_PHYSMAP => add_to_physmap(ctx, arg).into(),
        XENMEM_SET_MEMORY_MAP => set_memory_map(ctx, arg).into(),
        XENMEM_CLAIM_PAGES => claim_pages(ctx, arg).into(),
        XENMEM_MEMORY_MAP => memory_map(ctx, arg).into(),
        // No memory sharing: nothing freed by it, nothing shared.
        XENMEM_GET_SHARING_FREED_PAGES | XENMEM_GET_SHARING_SHARED_PAGES => Outcome::Return(0),
        op => {
            let id = ctx.domain.id;
            Outcome::Return(
                super::refusals::not_implemented(id, guest_abi::xen::HYPERVISOR_MEMORY_OP, Some(op.into())).to_ret(),
            )
        }
    }
}

pub(super) fn read<T: FromBytes + IntoBytes>(ctx: &mut Ctx, va: u64) -> Result<T, XenError> {
    ctx.guest().read(va).map_err(|_| XenError::Efault)
}

pub(super) fn write<T: IntoBytes + Immutable + ?Sized>(ctx: &mut Ctx, va: u64, value: &T) -> Result<(), XenError> {
    ctx.guest().write(va, value).map_err(|_| XenError::Efault)
}

/// The largest extent order the caller may ask for (Xen's `max_order`).
pub(super) fn max_order(ctx: &Ctx) -> u32 {
    if ctx.is_privileged() {
        CTLDOM_MAX_ORDER
    } else {
        DOMU_MAX_ORDER
    }
}

/// XENMEM_increase_reservation and XENMEM_populate_physmap (allocate
/// extents to the domain) and XENMEM_decrease_reservation (give them
/// back); returns the extents done.
fn reservation(ctx: &mut Ctx, op: u32, arg: u64, start: u64) -> Outcome {
    let Ok(r) = read::<MemoryReservation>(ctx, arg) else { return Outcome::Return(XenError::Efault.to_ret()) };
    let max_order = max_order(ctx);
    // Xen's early exits all report `start` extents done.
    let done = |n: u64| Outcome::Return(n as i64);
    if start >= r.nr_extents || r.extent_order > max_order || r.mem_flags & XENMEMF_POPULATE_ON_DEMAND != 0 {
        return done(start);
    }
    let list = r.extent_start;
    if !list.is_null() && list.element_addr(r.nr_extents).is_none() {
        return done(start);
    }
    let populate = op == XENMEM_POPULATE_PHYSMAP;
    let frames_per_extent = 1u64 << r.extent_order;
    let mut i = start;
    while i < r.nr_extents {
        let done_here = i - start;
        if done_here == BATCH || (done_here > 0 && done_here * frames_per_extent >= FRAME_BUDGET) {
            let cmd = u64::from(op) | (i << MEMOP_EXTENT_SHIFT);
            return Outcome::Continue([cmd, arg, 0, 0, 0]);
        }
        let slot = list.element_addr(i).unwrap_or(0);
        if op == XENMEM_DECREASE_RESERVATION {
            // A PV guest names its frames by MFN; no list, nothing to free.
            let Ok(first) = read::<u64>(ctx, slot) else { break };
            if list.is_null() || !release_extent(ctx, r.domid, r.extent_order, Mfn(first)) {
                break;
            }
            i += 1;
            continue;
        }
        let gpfn = match populate {
            true => match read::<u64>(ctx, slot) {
                Ok(g) => Some(Pfn(g)),
                Err(_) => break,
            },
            false => None,
        };
        let Some(mfn) = allocate_extent(ctx, r.domid, r.extent_order, gpfn) else { break };
        if !list.is_null() && write(ctx, slot, &mfn.0).is_err() {
            break;
        }
        i += 1;
    }
    done(i)
}

/// One extent of `2^order` contiguous frames for the domain `domid` names,
/// zeroed, owned by it, with their M2P entries (`gpfn` onwards, or
/// invalid); `None` past its `max_pages`, without memory, or not allowed.
fn allocate_extent(ctx: &mut Ctx, domid: DomId, order: u32, gpfn: Option<Pfn>) -> Option<Mfn> {
    let (m2p, count) = (ctx.m2p, 1u64 << order);
    // Xen's assign_pages refuses a dying domain.
    let d = xsm::target(ctx.domain, &mut ctx.peers, domid, Action::Target).ok().filter(|d| !d.is_destroyed())?;
    if d.tot_pages().checked_add(count)? > d.max_pages {
        return None;
    }
    if let Some(g) = gpfn {
        g.0.checked_add(count).filter(|&end| end <= MACH2PHYS_NR_ENTRIES)?;
    }
    let first = match count {
        1 => ctx.frames.alloc()?,
        _ => ctx.frames.alloc_contiguous(count, count)?,
    };
    // Frames just taken from the pool are free and unreferenced: they
    // change hands. One the frame table does not cover sends the extent
    // back whole.
    for k in 0..count {
        if ctx.ft.assign_page(Mfn(first.0 + k), d.id, &mut d.page_list).is_err() {
            for j in 0..count {
                let mfn = Mfn(first.0 + j);
                if j < k {
                    let _ = ctx.ft.release_page(mfn, d.id, &mut d.page_list);
                }
                ctx.frames.free(mfn);
            }
            return None;
        }
    }
    for k in 0..count {
        let mfn = Mfn(first.0 + k);
        if let Some(bytes) = ctx.mem.frame_mut(mfn) {
            bytes.fill(0);
        }
        m2p.set(ctx.mem, mfn, gpfn.map(|g| Pfn(g.0 + k)));
    }
    Some(first)
}

/// Gives the `2^order` frames from `first` of the domain `domid` names
/// back to the pool, one by one; `false` at the first that cannot go
/// (Xen's `guest_remove_page` loop: frames before it stay freed).
fn release_extent(ctx: &mut Ctx, domid: DomId, order: u32, first: Mfn) -> bool {
    let Ok(d) = xsm::target(ctx.domain, &mut ctx.peers, domid, Action::Target) else { return false };
    for k in 0..1u64 << order {
        let Some(mfn) = first.0.checked_add(k).map(Mfn) else { return false };
        let held = d.shared_info == mfn || d.console_ring.is_some_and(|(ring, _)| ring == mfn);
        let referenced = ctx.ft.info(mfn).is_none_or(|p| p.count() != 0 || p.type_count() != 0);
        if held || referenced || ctx.ft.release_page(mfn, d.id, &mut d.page_list).is_err() {
            return false;
        }
        ctx.m2p.set(ctx.mem, mfn, None);
        if let Some(bytes) = ctx.mem.frame_mut(mfn) {
            bytes.fill(0);
        }
        ctx.frames.free(mfn);
        // The guest may have unmapped it without a flush: no stale
        // translation may outlive the frame's next owner taking it, on
        // any CPU the owner's vCPUs ran on.
        ctx.tlb.add(TlbFlush::All, d.dirty_cpus);
    }
    true
}

/// XENMEM_current_reservation, maximum_reservation, maximum_gpfn.
fn stat(ctx: &mut Ctx, op: u32, arg: u64) -> HcResult {
    let domid: u16 = read(ctx, arg)?;
    let mem = &*ctx.mem;
    let d = xsm::target(ctx.domain, &mut ctx.peers, domid, Action::Target)?;
    Ok(match op {
        XENMEM_CURRENT_RESERVATION => d.tot_pages() as i64,
        XENMEM_MAXIMUM_RESERVATION => d.max_pages as i64,
        // Xen: a PV guest's highest pfn is what it published in
        // shared_info.arch.max_pfn (0 counts as 1).
        _ => shared_info_max_pfn(mem, d.shared_info).max(1) as i64 - 1,
    })
}

/// `shared_info.arch.max_pfn`, as the guest wrote it.
fn shared_info_max_pfn(mem: &dyn crate::mm::MachineMemory, shared_info: Mfn) -> u64 {
    let off = core::mem::offset_of!(guest_abi::xen::SharedInfo, arch)
        + core::mem::offset_of!(guest_abi::arch_x86::ArchSharedInfo, max_pfn);
    mem.frame(shared_info)
        .and_then(|f| f.get(off..off + 8))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn machphys_mapping(ctx: &mut Ctx, arg: u64) -> HcResult {
    let max_mfn = if ctx.is_privileged() { ctx.m2p.entries.saturating_sub(1) } else { MACH2PHYS_NR_ENTRIES - 1 };
    let m = MachphysMapping { v_start: MACH2PHYS_VIRT_START, v_end: MACH2PHYS_VIRT_END, max_mfn };
    write(ctx, arg, &m)?;
    Ok(0)
}

/// The MFN of each 2 MiB chunk of the M2P table (the table is machine
/// contiguous), as many as the caller has room for.
fn machphys_mfn_list(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut l: MachphysMfnList = read(ctx, arg)?;
    let chunks = ctx.m2p.entries.div_ceil(M2P_CHUNK_ENTRIES);
    let n = chunks.min(u64::from(l.max_extents));
    let per_chunk = M2P_CHUNK_ENTRIES * 8 / PAGE_SIZE as u64;
    for i in 0..n {
        let va = l.extent_start.element_addr(i).ok_or(XenError::Efault)?;
        write(ctx, va, &(ctx.m2p.base.0 + i * per_chunk))?;
    }
    l.nr_extents = n as u32;
    write(ctx, arg, &l)?;
    Ok(0)
}

/// The machine's E820 map, for the privileged domain.
fn machine_memory_map(ctx: &mut Ctx, arg: u64) -> HcResult {
    ctx.privileged()?;
    let mut m: MemoryMap = read(ctx, arg)?;
    let map = ctx.platform.machine_memory_map();
    let n = (map.len() as u64).min(u64::from(m.nr_entries));
    let mut bytes: Vec<u8> = Vec::with_capacity((n * E820_ENTRY_SIZE) as usize);
    for e in map.iter().take(n as usize) {
        bytes.extend_from_slice(&e.addr.to_le_bytes());
        bytes.extend_from_slice(&e.size.to_le_bytes());
        bytes.extend_from_slice(&e.kind.to_le_bytes());
    }
    write(ctx, m.buffer.addr(), bytes.as_slice())?;
    m.nr_entries = n as u32;
    write(ctx, arg, &m)?;
    Ok(0)
}

/// `XENMEM_set_memory_map`: the E820 map domain `fmap.domid` will read
/// with `XENMEM_memory_map` (the caller's own, or any for a privileged
/// caller).
fn set_memory_map(ctx: &mut Ctx, arg: u64) -> HcResult {
    let fmap: ForeignMemoryMap = read(ctx, arg)?;
    if fmap.map.nr_entries > E820_MAX {
        return Err(XenError::Einval);
    }
    let mut bytes = alloc::vec![0u8; (u64::from(fmap.map.nr_entries) * E820_ENTRY_SIZE) as usize];
    ctx.guest().copy_from(fmap.map.buffer.addr(), &mut bytes).map_err(|_| XenError::Efault)?;
    let d = xsm::target(ctx.domain, &mut ctx.peers, fmap.domid, Action::Target)?;
    d.tools.memory_map = Some(bytes);
    Ok(0)
}

/// `XENMEM_claim_pages` (Xen's `domain_set_outstanding_pages`): stakes a
/// claim for a domain to grow to `nr_extents` pages, if the free memory
/// not claimed by others holds what it lacks (`-ENOMEM`); 0 drops the
/// claim. One claim at a time; not at or below what it has, nor above its
/// `max_pages` (`-EINVAL`). Privileged callers only.
///
/// Where xenish differs: a claim is accounted (what the domain still
/// lacks is outstanding in `getdomaininfo` and `physinfo`) but not
/// reserved against other domains' allocations.
fn claim_pages(ctx: &mut Ctx, arg: u64) -> HcResult {
    let r: MemoryReservation = read(ctx, arg)?;
    if !r.extent_start.is_null() || r.extent_order != 0 || r.mem_flags != 0 {
        return Err(XenError::Einval);
    }
    let me = ctx.domain.id;
    let others: u64 = core::iter::once(&*ctx.domain)
        .chain(ctx.peers.iter())
        .filter(|d| d.id != r.domid)
        .map(Domain::outstanding_pages)
        .sum();
    let free = ctx.free_pages();
    let privileged = ctx.privileged();
    let d = if r.domid == me { Some(&mut *ctx.domain) } else { ctx.peers.get_mut(r.domid) };
    let d = d.ok_or(XenError::Einval)?;
    privileged?;
    if r.nr_extents == 0 {
        d.tools.claim_pages = 0;
        return Ok(0);
    }
    if d.outstanding_pages() != 0 || r.nr_extents <= d.tot_pages() || r.nr_extents > d.max_pages {
        return Err(XenError::Einval);
    }
    if r.nr_extents - d.tot_pages() > free.saturating_sub(others) {
        return Err(XenError::Enomem);
    }
    d.tools.claim_pages = r.nr_extents;
    Ok(0)
}

/// `XENMEM_memory_map`: the caller's own E820 map, as the toolstack set it.
fn memory_map(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut m: MemoryMap = read(ctx, arg)?;
    let Some(map) = ctx.domain.tools.memory_map.clone() else { return Err(XenError::Enosys) };
    let n = (map.len() as u64 / E820_ENTRY_SIZE).min(u64::from(m.nr_entries));
    let bytes = map.get(..(n * E820_ENTRY_SIZE) as usize).unwrap_or(&[]);
    write(ctx, m.buffer.addr(), bytes)?;
    m.nr_entries = n as u32;
    write(ctx, arg, &m)?;
    Ok(0)
}

fn add_to_physmap(ctx: &mut Ctx, arg: u64) -> HcResult {
    let a: AddToPhysmap = read(ctx, arg)?;
    if a.space == XENMAPSPACE_GMFN_FOREIGN {
        return Err(XenError::Enosys);
    }
    if a.domid != DOMID_SELF && a.domid != ctx.domain.id && ctx.peers.get_mut(a.domid).is_none() {
        return Err(XenError::Esrch);
    }
    // A PV domain is not translated: it maps frames by MFN (Xen checks
    // this before the caller's rights over the domain).
    Err(XenError::Eacces)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA, M2P};
    use super::*;
    use guest_abi::arch_x86::GuestHandle;
    use guest_abi::xen::HYPERVISOR_MEMORY_OP;
    use zerocopy::FromZeros;

    extern crate std;
    use std::vec;

    const NR: u64 = HYPERVISOR_MEMORY_OP as u64;
    /// Where the tests put extent lists.
    const LIST: u64 = BUF_VA + 0x800;

    fn reservation(nr_extents: u64, order: u32, domid: u16, list: u64) -> MemoryReservation {
        let mut r = MemoryReservation::new_zeroed();
        (r.extent_start, r.nr_extents, r.extent_order, r.domid) = (GuestHandle::new(list), nr_extents, order, domid);
        r
    }

    fn reserve(w: &mut World, cmd: u64, r: MemoryReservation) -> Outcome {
        w.poke(BUF_VA, r.as_bytes());
        w.call(NR, [cmd, BUF_VA, 0, 0, 0])
    }

    fn list(w: &mut World, n: usize) -> vec::Vec<u64> {
        w.peek(LIST, n * 8).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn increase_reservation_stops_at_max_pages() {
        let mut w = World::new(false);
        w.mem.0[17][0] = 0xaa;
        let inc = u64::from(XENMEM_INCREASE_RESERVATION);
        assert_eq!(reserve(&mut w, inc, reservation(4, 0, DOMID_SELF, LIST)), Outcome::Return(4));
        assert_eq!(list(&mut w, 4), [16, 17, 18, 19], "the new frames' MFNs");
        assert_eq!(w.dom.tot_pages(), 13, "9 frames of RAM (shared_info is not) and 4 more");
        assert!(w.owns(0, 19));
        assert_eq!(w.mem.0[17][0], 0, "handed out zeroed");
        assert_eq!(M2P.get(&w.mem, Mfn(17)), None, "not in the p2m until the guest says so");
        assert_eq!(reserve(&mut w, inc, reservation(10, 0, DOMID_SELF, LIST)), Outcome::Return(3), "max_pages is 16");
        assert_eq!(w.dom.tot_pages(), 16);
        assert_eq!(w.pool.0.len(), 1, "nothing taken past the limit");
        assert_eq!(reserve(&mut w, inc, reservation(1, 0, DOMID_SELF, LIST)), Outcome::Return(0));
    }

    #[test]
    fn decrease_reservation_frees_only_unreferenced_own_frames() {
        let mut w = World::new(false);
        let (inc, dec) = (u64::from(XENMEM_INCREASE_RESERVATION), u64::from(XENMEM_DECREASE_RESERVATION));
        assert_eq!(reserve(&mut w, inc, reservation(2, 0, DOMID_SELF, LIST)), Outcome::Return(2));
        let got = list(&mut w, 2);
        assert_eq!(got, [16, 17]);
        w.mem.0[17][5] = 0xaa;
        M2P.set(&mut w.mem, Mfn(17), Some(Pfn(40)));
        let (pool, owned) = (w.pool.0.len(), w.dom.tot_pages());
        let give = |w: &mut World, mfns: &[u64], order: u32| {
            w.poke(LIST, &mfns.iter().flat_map(|m| m.to_le_bytes()).collect::<vec::Vec<u8>>());
            reserve(w, dec, reservation(mfns.len() as u64, order, DOMID_SELF, LIST))
        };
        assert_eq!(give(&mut w, &[17, 16], 0), Outcome::Return(2), "both back");
        assert_eq!(w.tlb, TlbFlush::All, "no stale translation of a freed frame");
        assert_eq!((w.pool.0.len(), w.dom.tot_pages()), (pool + 2, owned - 2));
        assert!(!w.owns(0, 17));
        assert_eq!(w.ft.owner(Mfn(17)), Some(crate::mm::frame_table::Owner::Free));
        assert_eq!(w.mem.0[17][5], 0, "scrubbed");
        assert_eq!(M2P.get(&w.mem, Mfn(17)), None);
        assert_eq!(give(&mut w, &[17], 0), Outcome::Return(0), "no longer its own");
        assert_eq!(give(&mut w, &[12], 0), Outcome::Return(0), "never its own");
        assert_eq!(give(&mut w, &[4], 0), Outcome::Return(0), "still mapped");
        assert_eq!(give(&mut w, &[0], 0), Outcome::Return(0), "its L4 in use");
        assert_eq!(give(&mut w, &[8], 0), Outcome::Return(0), "shared_info");
        assert_eq!(give(&mut w, &[9, 4], 0), Outcome::Return(1), "stops at the first refusal");
        assert!(!w.owns(0, 9) && w.owns(0, 4));
        assert_eq!(give(&mut w, &[u64::MAX], 1), Outcome::Return(0), "an extent past the end of memory");
        let owned = w.dom.tot_pages();
        assert_eq!(reserve(&mut w, dec, reservation(1, 0, DOMID_SELF, 0)), Outcome::Return(0), "no list");
        assert_eq!(reserve(&mut w, dec, reservation(1, 0, DOMID_SELF, 0x10)), Outcome::Return(0), "bad list");
        assert_eq!(w.dom.tot_pages(), owned);
    }

    /// A balloon driver's cycle under a limit the toolstack lowers and
    /// raises (`xl mem-set`: `max_mem` first, then the target): while a
    /// domain owns more than its new `max_pages` it may not grow, by
    /// `increase_reservation` or `populate_physmap` (Xen's `assign_pages`
    /// refuses: 0 extents done, no errno); it shrinks freely, grows back
    /// to exactly the limit, and every frame is either its own or free.
    #[test]
    fn a_balloon_cycle_keeps_the_books_under_a_moving_limit() {
        let mut w = World::new(false);
        let (inc, dec, pop) = (
            u64::from(XENMEM_INCREASE_RESERVATION),
            u64::from(XENMEM_DECREASE_RESERVATION),
            u64::from(XENMEM_POPULATE_PHYSMAP),
        );
        w.dom.max_pages = 1000;
        w.pool.0 = (1000..1064).map(Mfn).collect();
        w.grow(1100);
        let total = |w: &World| w.dom.tot_pages() + w.pool.0.len() as u64;
        let books = total(&w);
        assert_eq!(reserve(&mut w, inc, reservation(32, 0, DOMID_SELF, LIST)), Outcome::Return(32));
        let mine = list(&mut w, 32);
        assert_eq!((w.dom.tot_pages(), total(&w)), (9 + 32, books));
        // The toolstack lowers the limit below what the domain owns.
        w.dom.max_pages = 20;
        w.limit_lowered = true;
        assert_eq!(reserve(&mut w, inc, reservation(1, 0, DOMID_SELF, LIST)), Outcome::Return(0), "over the limit");
        w.poke(LIST, &500u64.to_le_bytes());
        assert_eq!(reserve(&mut w, pop, reservation(1, 0, DOMID_SELF, LIST)), Outcome::Return(0), "populate too");
        assert_eq!((w.dom.tot_pages(), total(&w)), (41, books), "nothing taken");
        // The balloon gives back 24 frames: 17 owned, 3 under the limit.
        w.poke(LIST, &mine[..24].iter().flat_map(|m| m.to_le_bytes()).collect::<vec::Vec<u8>>());
        assert_eq!(reserve(&mut w, dec, reservation(24, 0, DOMID_SELF, LIST)), Outcome::Return(24));
        assert_eq!((w.dom.tot_pages(), total(&w)), (17, books));
        assert_eq!(stat(&mut w, XENMEM_CURRENT_RESERVATION, DOMID_SELF), 17);
        // It grows back to the limit exactly: 3 of 5 asked.
        let gpfns: vec::Vec<u8> = (600u64..605).flat_map(|p| p.to_le_bytes()).collect();
        w.poke(LIST, &gpfns);
        assert_eq!(reserve(&mut w, pop, reservation(5, 0, DOMID_SELF, LIST)), Outcome::Return(3));
        assert_eq!((w.dom.tot_pages(), total(&w)), (20, books));
        // Raised again (mem-set up): the frames it gave back serve it again.
        w.dom.max_pages = 60;
        assert_eq!(reserve(&mut w, inc, reservation(40, 0, DOMID_SELF, LIST)), Outcome::Return(40));
        assert_eq!((w.dom.tot_pages(), total(&w)), (60, books));
        assert_eq!(stat(&mut w, XENMEM_MAXIMUM_RESERVATION, DOMID_SELF), 60);
    }

    #[test]
    fn decrease_reservation_for_another_needs_privilege() {
        let mut w = World::new(false);
        w.add_peer(test_domain(4, false, 10..12, None, Mfn(15)));
        let dec = u64::from(XENMEM_DECREASE_RESERVATION);
        w.poke(LIST, &11u64.to_le_bytes());
        assert_eq!(reserve(&mut w, dec, reservation(1, 0, 4, LIST)), Outcome::Return(0), "unprivileged");
        assert_eq!(reserve(&mut w, dec, reservation(1, 0, DOMID_SELF, LIST)), Outcome::Return(0), "not the caller's");
        assert!(w.owns(4, 11));
        w.dom.privileged = true;
        assert_eq!(reserve(&mut w, dec, reservation(1, 0, 4, LIST)), Outcome::Return(1), "privileged: for another");
        assert!(!w.owns(4, 11));
        assert_eq!(w.peers[0].tot_pages(), 1);
        assert!(w.pool.0.contains(&Mfn(11)));
    }

    #[test]
    fn populate_physmap_sets_the_m2p_and_takes_extents() {
        let mut w = World::new(false);
        w.poke(LIST, &[100u64.to_le_bytes(), 102u64.to_le_bytes()].concat());
        let pop = u64::from(XENMEM_POPULATE_PHYSMAP);
        assert_eq!(reserve(&mut w, pop, reservation(2, 1, DOMID_SELF, LIST)), Outcome::Return(2));
        let mfns = list(&mut w, 2);
        assert_eq!(mfns, [16, 18], "2-frame extents, aligned");
        assert_eq!([16, 17, 18, 19].map(|m| M2P.get(&w.mem, Mfn(m))), [100, 101, 102, 103].map(|p| Some(Pfn(p))));
        assert_eq!(reserve(&mut w, pop, reservation(1, DOMU_MAX_ORDER + 1, DOMID_SELF, LIST)), Outcome::Return(0));
        w.poke(LIST, &u64::MAX.to_le_bytes());
        assert_eq!(reserve(&mut w, pop, reservation(1, 0, DOMID_SELF, LIST)), Outcome::Return(0), "gpfn out of range");
        assert_eq!(reserve(&mut w, pop, reservation(1, 0, DOMID_SELF, 0x10)), Outcome::Return(0), "bad list");
        assert_eq!(w.dom.tot_pages(), 13);
    }

    #[test]
    fn start_extents_continuations_and_targets() {
        let mut w = World::new(false);
        let inc = u64::from(XENMEM_INCREASE_RESERVATION);
        let cont = inc | (2 << MEMOP_EXTENT_SHIFT);
        assert_eq!(reserve(&mut w, cont, reservation(3, 0, DOMID_SELF, 0)), Outcome::Return(3), "one extent, from 2");
        assert_eq!(reserve(&mut w, cont, reservation(2, 0, DOMID_SELF, 0)), Outcome::Return(2), "nothing left to do");
        assert_eq!(w.dom.tot_pages(), 10);
        w.add_peer(test_domain(4, false, 10..12, None, Mfn(15)));
        assert_eq!(reserve(&mut w, inc, reservation(1, 0, 4, 0)), Outcome::Return(0), "another's, unprivileged");
        assert_eq!(reserve(&mut w, inc, reservation(1, 0, 9, 0)), Outcome::Return(0), "no such domain");
        w.dom.privileged = true;
        assert_eq!(reserve(&mut w, inc, reservation(1, 0, 4, 0)), Outcome::Return(1), "privileged: for another");
        assert_eq!(w.peers[0].tot_pages(), 3);
        let big = reservation(BATCH + 5, 0, DOMID_SELF, 0);
        w.dom.max_pages = 10_000;
        w.pool.0 = (1000..1000 + BATCH + 5).map(Mfn).collect();
        w.grow(2000);
        let next = inc | (BATCH << MEMOP_EXTENT_SHIFT);
        assert_eq!(reserve(&mut w, inc, big), Outcome::Continue([next, BUF_VA, 0, 0, 0]));
        assert_eq!(w.call(NR, [next, BUF_VA, 0, 0, 0]), Outcome::Return((BATCH + 5) as i64));
    }

    fn stat(w: &mut World, op: u32, domid: u16) -> i64 {
        w.poke(BUF_VA, &domid.to_le_bytes());
        w.call_ret(NR, [u64::from(op), BUF_VA, 0, 0, 0])
    }

    #[test]
    fn reservation_figures() {
        let mut w = World::new(false);
        assert_eq!(stat(&mut w, XENMEM_CURRENT_RESERVATION, DOMID_SELF), 9, "its RAM, not its shared_info");
        assert_eq!(stat(&mut w, XENMEM_MAXIMUM_RESERVATION, 0), 16);
        assert_eq!(stat(&mut w, XENMEM_MAXIMUM_GPFN, DOMID_SELF), 0, "max_pfn 0 counts as 1");
        let off = core::mem::offset_of!(guest_abi::xen::SharedInfo, arch);
        w.mem.0[8][off..off + 8].copy_from_slice(&4096u64.to_le_bytes());
        assert_eq!(stat(&mut w, XENMEM_MAXIMUM_GPFN, DOMID_SELF), 4095);
        w.add_peer(test_domain(4, false, 10..12, None, Mfn(15)));
        assert_eq!(stat(&mut w, XENMEM_CURRENT_RESERVATION, 4), -1, "another's: EPERM");
        assert_eq!(stat(&mut w, XENMEM_CURRENT_RESERVATION, 9), -3, "no such domain: ESRCH");
        w.dom.privileged = true;
        assert_eq!(stat(&mut w, XENMEM_CURRENT_RESERVATION, 4), 2);
        assert_eq!(w.call_ret(NR, [u64::from(XENMEM_MAXIMUM_RAM_PAGE), 0, 0, 0, 0]), 512);
        assert_eq!(w.call_ret(NR, [u64::from(XENMEM_CURRENT_RESERVATION), 0x10, 0, 0, 0]), -14);
    }

    #[test]
    fn what_the_machine_looks_like() {
        let mut w = World::new(false);
        let mapping = |w: &mut World| {
            assert_eq!(w.call_ret(NR, [u64::from(XENMEM_MACHPHYS_MAPPING), BUF_VA, 0, 0, 0]), 0);
            MachphysMapping::read_from_bytes(&w.peek(BUF_VA, 24)).unwrap()
        };
        let m = mapping(&mut w);
        assert_eq!((m.v_start, m.v_end, m.max_mfn), (MACH2PHYS_VIRT_START, MACH2PHYS_VIRT_END, (1 << 35) - 1));
        let mut l = MachphysMfnList::new_zeroed();
        (l.max_extents, l.extent_start) = (4, GuestHandle::new(LIST));
        w.poke(BUF_VA, l.as_bytes());
        assert_eq!(w.call_ret(NR, [u64::from(XENMEM_MACHPHYS_MFN_LIST), BUF_VA, 0, 0, 0]), 0);
        assert_eq!(MachphysMfnList::read_from_bytes(&w.peek(BUF_VA, 24)).unwrap().nr_extents, 1);
        assert_eq!(list(&mut w, 1), [14], "the M2P's first frame");

        let mut map = MemoryMap::new_zeroed();
        (map.nr_entries, map.buffer) = (8, GuestHandle::new(LIST));
        w.poke(BUF_VA, map.as_bytes());
        let machine_map = u64::from(XENMEM_MACHINE_MEMORY_MAP);
        assert_eq!(w.call_ret(NR, [machine_map, BUF_VA, 0, 0, 0]), -1, "dom0's only");
        w.dom.privileged = true;
        assert_eq!(mapping(&mut w).max_mfn, 511, "the hardware domain sees the real limit");
        w.poke(BUF_VA, map.as_bytes());
        assert_eq!(w.call_ret(NR, [machine_map, BUF_VA, 0, 0, 0]), 0);
        assert_eq!(MemoryMap::read_from_bytes(&w.peek(BUF_VA, 16)).unwrap().nr_entries, 2);
        let e = w.peek(LIST, 40);
        assert_eq!(
            (&e[8..16], &e[16..20], &e[20..28]),
            (&0x9fc00u64.to_le_bytes()[..], &1u32.to_le_bytes()[..], &0xf0000u64.to_le_bytes()[..])
        );
        assert_eq!(w.call_ret(NR, [u64::from(XENMEM_MEMORY_MAP), BUF_VA, 0, 0, 0]), -38, "no map was set");
    }

    #[test]
    fn what_pv_domains_do_not_get() {
        let mut w = World::new(true);
        let mut a = AddToPhysmap::new_zeroed();
        a.domid = DOMID_SELF;
        w.poke(BUF_VA, a.as_bytes());
        let add = u64::from(XENMEM_ADD_TO_PHYSMAP);
        assert_eq!(w.call_ret(NR, [add, BUF_VA, 0, 0, 0]), -13, "not translated: EACCES");
        a.domid = 9;
        w.poke(BUF_VA, a.as_bytes());
        assert_eq!(w.call_ret(NR, [add, BUF_VA, 0, 0, 0]), -3);
        a.space = XENMAPSPACE_GMFN_FOREIGN;
        w.poke(BUF_VA, a.as_bytes());
        assert_eq!(w.call_ret(NR, [add, BUF_VA, 0, 0, 0]), -38);
        assert_eq!(w.call_ret(NR, [63, BUF_VA, 0, 0, 0]), -38, "an unknown command");
    }

    #[test]
    fn a_memory_map_set_by_the_toolstack_is_the_domains() {
        let mut w = World::new(true);
        w.add_peer(test_domain(3, false, 10..12, None, Mfn(13)));
        let nr = u64::from(HYPERVISOR_MEMORY_OP);
        let entry: std::vec::Vec<u8> =
            [0u64.to_le_bytes().as_slice(), &(16u64 << 20).to_le_bytes(), &1u32.to_le_bytes()].concat();
        w.poke(BUF_VA + 0x100, &entry);
        let fmap = |domid: u16, n: u32| ForeignMemoryMap {
            domid,
            _pad0: [0; 6],
            map: MemoryMap {
                nr_entries: n,
                _pad0: [0; 4],
                buffer: GuestHandle::from_ptr((BUF_VA + 0x100) as *const u8),
            },
        };
        let set = |w: &mut World, m: ForeignMemoryMap| {
            w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&m));
            w.call_ret(nr, [u64::from(XENMEM_SET_MEMORY_MAP), BUF_VA, 0, 0, 0])
        };
        assert_eq!(set(&mut w, fmap(3, 1)), 0);
        assert_eq!(w.peers[0].tools.memory_map.as_deref(), Some(entry.as_slice()));
        assert_eq!(set(&mut w, fmap(3, 1025)), -22, "over E820MAX");
        assert_eq!(set(&mut w, fmap(9, 1)), -3, "no such domain");
        let mut bad = fmap(3, 1);
        bad.map.buffer = GuestHandle::from_ptr(0x10 as *const u8);
        assert_eq!(set(&mut w, bad), -14);
        // The caller's own map: none yet, then one entry of the one it set.
        let get = |w: &mut World, n: u32| {
            let m = MemoryMap {
                nr_entries: n,
                _pad0: [0; 4],
                buffer: GuestHandle::from_ptr((BUF_VA + 0x200) as *const u8),
            };
            w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&m));
            let ret = w.call_ret(nr, [u64::from(XENMEM_MEMORY_MAP), BUF_VA, 0, 0, 0]);
            (ret, u32::from_le_bytes(w.peek(BUF_VA, 4).try_into().unwrap()))
        };
        assert_eq!(get(&mut w, 4).0, -38, "no map set: ENOSYS, as on Xen");
        assert_eq!(set(&mut w, fmap(DOMID_SELF, 1)), 0);
        assert_eq!(get(&mut w, 4), (0, 1));
        assert_eq!(w.peek(BUF_VA + 0x200, 20), entry);
        w.dom.privileged = false;
        assert_eq!(set(&mut w, fmap(3, 1)), -1, "another domain's, unprivileged: EPERM");
    }

    #[test]
    fn claims_and_the_sharing_counters() {
        let mut w = World::new(true);
        w.add_peer(test_domain(3, false, 10..12, None, Mfn(13)));
        let nr = u64::from(HYPERVISOR_MEMORY_OP);
        let claim = |w: &mut World, domid: u16, pages: u64| {
            let mut r = MemoryReservation::new_zeroed();
            (r.domid, r.nr_extents) = (domid, pages);
            w.poke(BUF_VA, zerocopy::IntoBytes::as_bytes(&r));
            w.call_ret(nr, [u64::from(XENMEM_CLAIM_PAGES), BUF_VA, 0, 0, 0])
        };
        w.peers[0].max_pages = 10;
        assert_eq!(claim(&mut w, 3, 6), 0);
        assert_eq!(w.peers[0].outstanding_pages(), 4, "claimed 6, has 2");
        assert_eq!(claim(&mut w, 3, 7), -22, "one claim at a time");
        assert_eq!(claim(&mut w, 3, 0), 0, "dropped");
        assert_eq!(claim(&mut w, 3, 2), -22, "not above what it has");
        assert_eq!(claim(&mut w, 3, 11), -22, "not above max_pages");
        w.peers[0].max_pages = 100;
        assert_eq!(claim(&mut w, 3, 50), -12, "more than is free: ENOMEM");
        assert_eq!(claim(&mut w, 9, 5), -22, "no such domain: EINVAL, as in Xen");
        assert_eq!(w.call_ret(nr, [u64::from(XENMEM_GET_SHARING_FREED_PAGES), 0, 0, 0, 0]), 0);
        assert_eq!(w.call_ret(nr, [u64::from(XENMEM_GET_SHARING_SHARED_PAGES), 0, 0, 0, 0]), 0);
        w.dom.privileged = false;
        assert_eq!(claim(&mut w, 3, 6), -1, "unprivileged: EPERM");
    }

    /// Drives a reservation command through its continuations; returns
    /// its result and how often it was continued.
    fn reserve_to_end(w: &mut World, cmd: u64, r: MemoryReservation) -> (i64, usize) {
        let mut out = reserve(w, cmd, r);
        let mut continued = 0;
        loop {
            match out {
                Outcome::Return(v) => return (v, continued),
                Outcome::Continue(args) => {
                    continued += 1;
                    out = w.call(NR, args);
                }
            }
        }
    }

    #[test]
    fn reservations_are_continued_by_frames_cleared_and_end_as_one_run() {
        // The same 2048 frames asked for as 4 extents of order 9 and as
        // 2048 of order 0: continued after every 2 MiB either way, the
        // same frames owned, zeroed and in the M2P at the end.
        let inc = u64::from(XENMEM_INCREASE_RESERVATION);
        let dec = u64::from(XENMEM_DECREASE_RESERVATION);
        let run = |order: u32, nr: u64| {
            let mut w = World::new(false);
            w.grow(4096);
            w.pool.0 = (2048..4096).rev().map(Mfn).collect();
            for f in 2048..4096 {
                w.mem.0[f][0] = 0x5a; // dirty: must come out zeroed
            }
            w.dom.max_pages = 10_000;
            let (ret, continued) = reserve_to_end(&mut w, inc, reservation(nr, order, DOMID_SELF, 0));
            assert_eq!((ret, continued), (nr as i64, 3), "order {order}: 4 rounds of 512 frames");
            let owned: vec::Vec<Mfn> = w.ft.pages(&w.dom.page_list).filter(|m| m.0 >= 2048).collect();
            assert_eq!(owned.len(), 2048);
            assert!(owned.iter().all(|m| w.mem.0[m.0 as usize][0] == 0), "zeroed");
            w.audit();
            (w, owned)
        };
        let (mut big, mut owned_big) = run(9, 4);
        let (_, mut owned_small) = run(0, 2048);
        owned_big.sort();
        owned_small.sort();
        assert_eq!(owned_big, owned_small, "the same frames");
        // Giving them back: 4 extents of order 9 at their MFNs.
        let firsts: vec::Vec<u64> = (0..4).map(|k| 2048 + k * 512).collect();
        big.poke(LIST, &firsts.iter().flat_map(|m| m.to_le_bytes()).collect::<vec::Vec<u8>>());
        assert_eq!(reserve_to_end(&mut big, dec, reservation(4, 9, DOMID_SELF, LIST)), (4, 3));
        assert_eq!(big.ft.pages(&big.dom.page_list).filter(|m| m.0 >= 2048).count(), 0);
        big.audit();
    }
}
