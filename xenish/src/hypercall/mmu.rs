//! The PV MMU's page-table updates: `update_va_mapping`, which changes one
//! L1 entry found by virtual address, and `mmu_update`, a batch of entry
//! writes by machine address (at every level) and M2P updates. Also the
//! batching rules `mmu_update` and `mmuext_op` share (done count,
//! continuation, page owner).
//!
//! Every entry write goes through the frame table with Xen's
//! `mod_lN_entry` semantics ([`crate::mm::pt_validate`]): the written
//! frame must be a page table of the caller, validated at its level, and
//! the new entry takes its references before the old one releases its
//! own. A `mmu_update` to a frame the caller owns that is no page table
//! is a plain checked write, as Xen's default case does.
//!
//! Semantics: Xen's `do_mmu_update`, `do_update_va_mapping` and
//! `get_pg_owner` (xen/arch/x86/mm.c, xen/common/page_alloc.c).

use guest_abi::arch_x86::GuestHandle;
use guest_abi::errno::XenError;
use guest_abi::xen::{
    MmuUpdate, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_NO_TRANSLATE, MMU_PT_UPDATE_PRESERVE_AD,
    UVMF_ALL, UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use zerocopy::{FromBytes, IntoBytes};

use super::mmuext_op::vcpumask_to_cpus;
use super::xsm::Action;
use super::{Ctx, HcResult, Outcome, Peers, TlbFlush};
use crate::domain::{DomId, Domain};
use crate::guest_access::is_guest_addr;
use crate::mm::frame_table::PageType;
use crate::mm::pagetable;
use crate::mm::pt_validate::{find_l1, MapRights, Mmu};
use crate::mm::{Mfn, Pfn};

/// `HYPERVISOR_update_va_mapping(va, new_pte, flags)`.
pub fn update_va_mapping(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [va, pte, flags, ..] = args;
    serve(ctx, va, pte, flags, PgOwner::Caller).into()
}

/// `HYPERVISOR_update_va_mapping_otherdomain(va, new_pte, flags, domid)`:
/// as `update_va_mapping` in the caller's own tables, but the new entry
/// maps a frame of `domid` (a privileged caller's foreign mapping).
pub fn update_va_mapping_otherdomain(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [va, pte, flags, domid, _] = args;
    pg_owner(ctx, domid as u16).and_then(|owner| serve(ctx, va, pte, flags, owner)).into()
}

fn serve(ctx: &mut Ctx, va: u64, pte: u64, flags: u64, owner: PgOwner) -> HcResult {
    if !is_guest_addr(va) {
        return Err(XenError::Einval);
    }
    let l4 = ctx.domain.vcpus.get(ctx.vcpu).map(|v| v.current_l4()).ok_or(XenError::Einval)?;
    let rights = MapRights::of(ctx.domain);
    let (l1, slot) = find_l1(ctx.ft, ctx.mem, rights.id, l4, va).ok_or(XenError::Einval)?;
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    match owner {
        PgOwner::Caller => mmu.mod_entry(l1, 1, slot, pte, false, &rights, &rights)?,
        PgOwner::Foreign(id) => {
            let pg = MapRights::of(ctx.peers.get_mut(id).ok_or(XenError::Esrch)?);
            mmu.mod_entry(l1, 1, slot, pte, false, &rights, &pg)?
        }
    };
    let what = match flags & u64::from(UVMF_FLUSHTYPE_MASK) {
        f if f == u64::from(UVMF_INVLPG) => TlbFlush::Page(va),
        f if f == u64::from(UVMF_TLB_FLUSH) => TlbFlush::All,
        // Without a flush the guest sees the change when its TLB allows,
        // as on Xen; a stale entry only concerns its own mappings.
        _ => return Ok(0),
    };
    // The rest of the flags say where: this CPU, the domain's dirty CPUs,
    // or (UVMF_MULTI) a guest pointer to a vCPU mask, whose fault is
    // `-EFAULT` here (Xen's do_update_va_mapping).
    match flags & !u64::from(UVMF_FLUSHTYPE_MASK) {
        0 => ctx.flush_local(what),
        s if s == u64::from(UVMF_ALL) => ctx.flush_dirty(what),
        ptr => {
            let cpus = vcpumask_to_cpus(ctx, ptr).map_err(|_| XenError::Efault)?;
            ctx.tlb.add(what, cpus);
        }
    }
    Ok(0)
}

/// The `count` bit marking a continued batch (Xen's internal
/// `MMU_UPDATE_PREEMPTED`, asm/mm.h: not in the public headers, but part
/// of what a guest sees when it is preempted and re-executes the call).
pub(super) const MMU_UPDATE_PREEMPTED: u32 = 1 << 31;
/// Requests served per call before a batch is continued.
const BATCH: u32 = 512;
/// Page tables a batch may validate or devalidate (each a walk of 512
/// entries) before it is continued: Xen checks for preemption between
/// requests and inside each (one L1 between two checks). A request that
/// spends the rest of the budget stops inside (a pin, an unpin, an
/// L2..L4 entry update: [`crate::mm::pt_validate`]'s partial state) and
/// the batch is continued at that request, which resumes where it left
/// off.
pub(super) const TABLE_BUDGET: u64 = 64;
/// The `MMU_*` command bits of `mmu_update.ptr`: Xen takes
/// `ptr & (sizeof(l1_pgentry_t) - 1)`, so 4..7 are unknown commands.
const MMU_CMD_MASK: u64 = 7;

/// Whose pages a batch works on: Xen's `pg_owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PgOwner {
    /// The calling domain (`DOMID_SELF`).
    Caller,
    /// Another domain, named by a privileged caller.
    Foreign(DomId),
}

/// Xen's `get_pg_owner` with its XSM check ([`Action::PgOwner`]).
pub(super) fn pg_owner(ctx: &mut Ctx, domid: u16) -> Result<PgOwner, XenError> {
    let me = ctx.domain.id;
    let id = ctx.target(domid, Action::PgOwner)?.id;
    Ok(if id == me { PgOwner::Caller } else { PgOwner::Foreign(id) })
}

/// The domain `owner` names: the caller or one of `peers`.
pub(super) fn owner_domain<'d>(
    caller: &'d mut Domain,
    peers: &'d mut Peers,
    owner: PgOwner,
) -> Result<&'d mut Domain, XenError> {
    match owner {
        PgOwner::Caller => Ok(caller),
        PgOwner::Foreign(id) => peers.get_mut(id).ok_or(XenError::Esrch),
    }
}

/// Whether `[addr, addr + len)` is guest address space (Xen's
/// `guest_handle_okay`: a range check, not a mapping check).
fn range_ok(addr: u64, len: u64) -> bool {
    let Some(last) = len.checked_sub(1) else { return true };
    match addr.checked_add(last) {
        Some(end) => is_guest_addr(addr) && is_guest_addr(end) && (addr >> 63) == (end >> 63),
        None => false,
    }
}

/// The arguments shared by `mmu_update` and `mmuext_op`:
/// `(list, count, pdone, foreigndom)`, as their continuations encode them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batch {
    /// Guest address of the next request.
    pub list: u64,
    /// Requests left (without `MMU_UPDATE_PREEMPTED`).
    pub count: u32,
    /// Guest address of the done counter, or 0.
    pub pdone: u64,
    /// The raw `foreigndom` argument.
    pub foreigndom: u32,
    /// Requests done by the earlier parts of a continued batch.
    pub done: u32,
}

/// How one request of a batch is served.
pub(super) type Serve<T> = fn(&mut Ctx, PgOwner, T) -> Result<(), XenError>;

impl Batch {
    /// Decodes the arguments; a continued batch reads back its done count.
    /// First the caller's vCPU finishes the final put a request of an
    /// earlier call left to it (Xen's `put_old_guest_table`), the same
    /// call continued while that goes on. `Err` is the immediate outcome:
    /// that continuation, or the result of Xen's null-list continuation
    /// form (`count == MMU_UPDATE_PREEMPTED`, no list: return
    /// `foreigndom`).
    #[inline(always)]
    pub(super) fn start(ctx: &mut Ctx, args: [u64; 5]) -> Result<Batch, Outcome> {
        if ctx.domain.vcpus.get(ctx.vcpu).is_some_and(|v| v.old_guest_table.is_some()) {
            return finish_parked(ctx, args);
        }
        Self::decode(ctx, args)
    }

    #[inline(always)]
    fn decode(ctx: &mut Ctx, args: [u64; 5]) -> Result<Batch, Outcome> {
        let [list, count, pdone, foreigndom, _] = args;
        let (count, foreigndom) = (count as u32, foreigndom as u32);
        if count == MMU_UPDATE_PREEMPTED && list == 0 {
            return Err(Outcome::Return(i64::from(foreigndom as i32)));
        }
        let mut batch = Batch { list, count, pdone, foreigndom, done: 0 };
        if count & MMU_UPDATE_PREEMPTED != 0 {
            batch.count &= !MMU_UPDATE_PREEMPTED;
            if pdone != 0 {
                batch.done = ctx.guest().read(pdone).unwrap_or(0);
            }
        }
        Ok(batch)
    }

    /// Whether the whole request array is guest address space.
    pub(super) fn list_ok<T>(&self) -> bool {
        range_ok(self.list, u64::from(self.count) * core::mem::size_of::<T>() as u64)
    }

    /// Adds `n` to the done count at `pdone`, if given (a fault there is
    /// ignored, as in Xen).
    pub(super) fn report_done(&self, ctx: &mut Ctx, n: u32) {
        if self.pdone != 0 {
            let _ = ctx.guest().write(self.pdone, &self.done.wrapping_add(n));
        }
    }

    /// Serves the requests in order with `serve` until one fails or the
    /// per-call bound is reached ([`BATCH`] requests, or [`TABLE_BUDGET`]
    /// page tables walked, inside a request if need be); reports the done
    /// count and returns the first error, success, or the continuation for
    /// the rest (from the preempted request on, Xen's `-ERESTART`).
    pub(super) fn run<T: FromBytes + IntoBytes>(self, ctx: &mut Ctx, owner: PgOwner, serve: Serve<T>) -> Outcome {
        let handle = GuestHandle::<T>::new(self.list);
        let mut result = Ok(());
        let mut i = 0;
        // A request that parks a table ends the budget too (FrameTable::park).
        let within_budget = |ctx: &Ctx, i: u32| i == 0 || !ctx.ft.preempt_due();
        ctx.ft.set_preempt_at(ctx.ft.tables_walked().wrapping_add(TABLE_BUDGET));
        while i < self.count && i < BATCH && within_budget(ctx, i) {
            let request = handle
                .element_addr(u64::from(i))
                .ok_or(XenError::Efault)
                .and_then(|addr| ctx.guest().read::<T>(addr).map_err(|_| XenError::Efault));
            result = request.and_then(|r| serve(ctx, owner, r));
            if result.is_err() {
                break;
            }
            i += 1;
        }
        self.report_done(ctx, i);
        let parked = ctx.ft.parked.is_some() && park_on_vcpu(ctx);
        if !parked {
            return self.outcome(result, handle, i);
        }
        match result {
            Err(XenError::Erestart) | Ok(()) if i < self.count => self.continuation(handle, i),
            // Xen's second continuation form: the parked put is finished
            // first, then the call returns `rc`, carried in `foreigndom`.
            r => {
                let rc = r.err().map_or(0, XenError::to_ret);
                Outcome::Continue([0, u64::from(MMU_UPDATE_PREEMPTED), 0, u64::from(rc as i32 as u32), 0])
            }
        }
    }

    /// The continuation of the batch from request `i` on.
    fn continuation<T>(&self, handle: GuestHandle<T>, i: u32) -> Outcome {
        Outcome::Continue([
            handle.element_addr(u64::from(i)).unwrap_or(self.list),
            u64::from((self.count - i) | MMU_UPDATE_PREEMPTED),
            self.pdone,
            u64::from(self.foreigndom),
            0,
        ])
    }

    /// What the batch returns after serving `i` requests with `result`:
    /// its error, success, or the continuation for the rest (from the
    /// preempted request on, Xen's `-ERESTART`).
    #[inline(always)]
    fn outcome<T>(&self, result: Result<(), XenError>, handle: GuestHandle<T>, i: u32) -> Outcome {
        match result {
            Err(XenError::Erestart) | Ok(()) if i < self.count => Outcome::Continue([
                handle.element_addr(u64::from(i)).unwrap_or(self.list),
                u64::from((self.count - i) | MMU_UPDATE_PREEMPTED),
                self.pdone,
                u64::from(self.foreigndom),
                0,
            ]),
            Err(e) => Outcome::Return(e.to_ret()),
            Ok(()) => Outcome::Return(0),
        }
    }
}

/// The cold start of a batch whose vCPU has a parked table: finishes its
/// put first (continuing the same call while that goes on), then decodes.
#[cold]
#[inline(never)]
fn finish_parked(ctx: &mut Ctx, args: [u64; 5]) -> Result<Batch, Outcome> {
    if let Some(old) = ctx.domain.vcpus.get(ctx.vcpu).and_then(|v| v.old_guest_table) {
        if put_old_guest_table(ctx, old).is_err() {
            return Err(Outcome::Continue(args));
        }
    }
    Batch::decode(ctx, args)
}

/// Moves the table a request parked ([`crate::mm::frame_table::FrameTable::parked`])
/// to the caller's vCPU (Xen's `old_guest_table`); returns whether it is
/// there. Without such a vCPU (not reached: the caller is one), or with
/// one already there, the put is finished at once.
#[cold]
#[inline(never)]
fn park_on_vcpu(ctx: &mut Ctx) -> bool {
    let Some(mfn) = ctx.ft.parked.take() else { return false };
    match ctx.domain.vcpus.get_mut(ctx.vcpu) {
        Some(v) if v.old_guest_table.is_none() => {
            v.old_guest_table = Some(mfn);
            true
        }
        _ => {
            ctx.ft.set_preempt_at(u64::MAX);
            let _ = ctx.mmu().finish_put(mfn);
            false
        }
    }
}

/// Xen's `put_old_guest_table` for the caller's vCPU: goes on with the
/// final put of its parked table `old` within a batch's budget; `Err`
/// (`-ERESTART`) if it is not done yet.
fn put_old_guest_table(ctx: &mut Ctx, old: Mfn) -> Result<(), XenError> {
    ctx.ft.set_preempt_at(ctx.ft.tables_walked().wrapping_add(TABLE_BUDGET));
    ctx.mmu().finish_put(old)?;
    if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
        v.old_guest_table = None;
    }
    Ok(())
}

/// `HYPERVISOR_mmu_update(reqs, count, pdone, foreigndom)`.
pub fn mmu_update(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let batch = match Batch::start(ctx, args) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    if !batch.list_ok::<MmuUpdate>() {
        return Outcome::Return(XenError::Efault.to_ret());
    }
    match mmu_update_owner(ctx, batch.foreigndom) {
        Ok(owner) => batch.run(ctx, owner, mmu_update_one),
        Err(e) => {
            batch.report_done(ctx, 0);
            Outcome::Return(e.to_ret())
        }
    }
}

/// The page owner of an `mmu_update` batch. Bits 16.. of `foreigndom`
/// name the page tables' owner plus one (0: the caller's); updating
/// another domain's tables is not supported yet: `-EPERM` without
/// privilege, else `-EINVAL`.
fn mmu_update_owner(ctx: &mut Ctx, foreigndom: u32) -> Result<PgOwner, XenError> {
    let pt_dom = foreigndom >> 16;
    if pt_dom != 0 {
        let id = DomId::try_from(pt_dom - 1).map_err(|_| XenError::Esrch)?;
        if id != ctx.domain.id {
            ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
            return Err(if ctx.is_privileged() { XenError::Einval } else { XenError::Eperm });
        }
    }
    pg_owner(ctx, foreigndom as u16)
}

/// One `mmu_update` request.
fn mmu_update_one(ctx: &mut Ctx, owner: PgOwner, req: MmuUpdate) -> Result<(), XenError> {
    let addr = req.ptr & !MMU_CMD_MASK;
    match (req.ptr & MMU_CMD_MASK) as u32 {
        // NO_TRANSLATE only skips translating `val` through the foreign
        // domain's p2m, which a PV domain does not have: Xen 4.17 serves it
        // as a normal update (privcmd's MMAP_RESOURCE maps this way).
        MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_NO_TRANSLATE => update_entry(ctx, owner, addr, req.val, false),
        MMU_PT_UPDATE_PRESERVE_AD => update_entry(ctx, owner, addr, req.val, true),
        MMU_MACHPHYS_UPDATE => machphys_update(ctx, owner, Mfn::containing(req.ptr), req.val),
        _ => Err(XenError::Enosys),
    }
}

/// Writes the page-table entry at machine address `ma` (8-aligned) of one
/// of the caller's validated page tables, of any level; a new L1 entry may
/// map frames of `owner`. A frame of the caller that is no page table is
/// written as plain memory, as Xen does (Linux fills new tables this way
/// before it links or pins them). With `preserve_ad` the old
/// entry's accessed and dirty bits are kept (`MMU_PT_UPDATE_PRESERVE_AD`).
fn update_entry(ctx: &mut Ctx, owner: PgOwner, ma: u64, val: u64, preserve_ad: bool) -> Result<(), XenError> {
    let table = Mfn::containing(ma);
    let Some(level) = ctx.ft.table_level_of(table, ctx.domain.id) else { return plain_write(ctx, ma, val) };
    let slot = ((ma & 0xfff) >> 3) as usize;
    let pt = MapRights::of(ctx.domain);
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    let changed = match owner {
        PgOwner::Caller => mmu.mod_entry_preemptible(table, level, slot, val, preserve_ad, &pt, &pt)?,
        PgOwner::Foreign(id) => {
            let pg_owner = ctx.peers.get_mut(id).ok_or(XenError::Esrch)?;
            let pg = MapRights::of(pg_owner);
            mmu.mod_entry_preemptible(table, level, slot, val, preserve_ad, &pt, &pg)?
        }
    };
    if changed {
        ctx.flush_dirty(TlbFlush::All);
    }
    Ok(())
}

/// Xen's default case of `MMU_NORMAL_PT_UPDATE`: the frame must be the
/// caller's and take a writable type (not a page table or a descriptor
/// page in use), and the value is stored unchecked.
fn plain_write(ctx: &mut Ctx, ma: u64, val: u64) -> Result<(), XenError> {
    let mfn = Mfn::containing(ma);
    let rights = MapRights::of(ctx.domain);
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    mmu.get_page_and_type(mfn, &rights, PageType::Writable).map_err(|_| XenError::Einval)?;
    let slot = ((ma & 0xfff) >> 3) as usize;
    let written = pagetable::set_entry(mmu.mem, mfn, slot, val).map_err(|_| XenError::Einval);
    mmu.put_page_and_type(mfn);
    written
}

/// `MMU_MACHPHYS_UPDATE`: records that `mfn`, a frame of `owner`, backs
/// guest frame `pfn` in the M2P table.
fn machphys_update(ctx: &mut Ctx, owner: PgOwner, mfn: Mfn, pfn: u64) -> Result<(), XenError> {
    let d = owner_domain(&mut *ctx.domain, &mut ctx.peers, owner)?;
    if !ctx.ft.is_owned_by(mfn, d.id) || !ctx.m2p.set(ctx.mem, mfn, Some(Pfn(pfn))) {
        return Err(XenError::Einval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{peer_domain, World, BUF_VA, M2P};
    use super::*;
    use crate::guest_access::{Access, GuestMemory};
    use guest_abi::xen::{HYPERVISOR_MMU_UPDATE, HYPERVISOR_UPDATE_VA_MAPPING};

    const NR: u64 = HYPERVISOR_UPDATE_VA_MAPPING as u64;

    fn call(w: &mut World, va: u64, pte: u64) -> i64 {
        w.call_ret(NR, [va, pte, u64::from(UVMF_INVLPG), 0, 0])
    }

    #[test]
    fn maps_own_frames_and_shared_info() {
        let mut w = World::new(false);
        // Remap BUF_VA + 0x1000 (frame 5) to frame 6, read-only.
        assert_eq!(call(&mut w, BUF_VA + 0x1000, (6 << 12) | 0x21), 0);
        let g = GuestMemory::new(&mut w.mem, Mfn(0));
        assert_eq!(g.translate(BUF_VA + 0x1000, Access::Read), Ok(0x6000));
        assert!(g.translate(BUF_VA + 0x1000, Access::Write).is_err());
        assert_eq!(call(&mut w, BUF_VA + 0x2000, (8 << 12) | 0x23), 0, "shared_info, writable");
        assert_eq!(call(&mut w, BUF_VA + 0x3000, 0), 0, "unmap");
        let g = GuestMemory::new(&mut w.mem, Mfn(0));
        assert!(g.translate(BUF_VA + 0x3000, Access::Read).is_err());
    }

    #[test]
    fn refuses_what_xen_refuses_and_changes_nothing() {
        let mut w = World::new(false);
        let before = w.mem.0[3];
        let einval = -22;
        let counts = w.counts();
        // Xen 4.17's get_page_from_l1e: not RAM is -EPERM ("MMIO space"),
        // a frame that cannot be referenced or typed is -EBUSY.
        assert_eq!(call(&mut w, BUF_VA, (99 << 12) | 0x23), -1, "not RAM");
        assert_eq!(call(&mut w, BUF_VA, (12 << 12) | 0x23), -16, "frame not owned");
        assert_eq!(call(&mut w, BUF_VA, (20 << 12) | 0x21), -16, "free frame");
        assert_eq!(call(&mut w, BUF_VA, (2 << 12) | 0x23), -16, "own page table, writable");
        assert_eq!(call(&mut w, BUF_VA, (6 << 12) | 0x23 | 0x10), einval, "PCD without I/O rights");
        assert_eq!(call(&mut w, BUF_VA, (6 << 12) | 0x23 | (1 << 55)), einval, "reserved high bit");
        assert_eq!(call(&mut w, 0xffff_8000_0000_0000, 0), einval, "hypervisor hole");
        assert_eq!(call(&mut w, 0x1234_5000, 0), einval, "no L1 there");
        assert_eq!(w.mem.0[3], before, "L1 untouched");
        assert_eq!(w.counts(), counts, "no count changed");
        assert_eq!(call(&mut w, BUF_VA, (2 << 12) | 0x21), 0, "a page table read-only is fine");
        w.dom.privileged = true;
        assert_eq!(call(&mut w, BUF_VA, (6 << 12) | 0x23 | 0x10), 0, "privileged may set cache attributes");
    }

    const EINVAL: i64 = -22;
    /// The guest's done counter (frame 7).
    const DONE_VA: u64 = BUF_VA + 0x3000;
    const SELF: u64 = guest_abi::xen::DOMID_SELF as u64;

    /// Machine address of entry `slot` of the L1 table (frame 3).
    fn l1e(slot: u64) -> u64 {
        3 * 4096 + slot * 8
    }

    /// Slot of the L1 entry mapping BUF_VA + 0x1000 (frame 5).
    const SLOT5: u64 = 5;

    /// Puts `reqs` at BUF_VA, zeroes the done counter, calls
    /// mmu_update(BUF_VA, reqs.len(), DONE_VA, foreigndom).
    fn mmu(w: &mut World, reqs: &[(u64, u64)], foreigndom: u64) -> i64 {
        put(w, reqs);
        w.call_ret(u64::from(HYPERVISOR_MMU_UPDATE), [BUF_VA, reqs.len() as u64, DONE_VA, foreigndom, 0])
    }

    fn put(w: &mut World, reqs: &[(u64, u64)]) {
        let bytes: std::vec::Vec<u8> =
            reqs.iter().flat_map(|&(ptr, val)| ptr.to_le_bytes().into_iter().chain(val.to_le_bytes())).collect();
        w.poke(BUF_VA, &bytes);
        w.poke(DONE_VA, &0xffff_ffffu32.to_le_bytes());
    }

    fn done(w: &mut World) -> u32 {
        u32::from_le_bytes(w.peek(DONE_VA, 4).try_into().unwrap())
    }

    fn entry(w: &World, table: usize, slot: u64) -> u64 {
        let off = slot as usize * 8;
        u64::from_le_bytes(w.mem.0[table][off..off + 8].try_into().unwrap())
    }

    extern crate std;

    #[test]
    fn mmu_update_writes_l1_entries_and_asks_for_a_flush() {
        let mut w = World::new(false);
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (6 << 12) | 0x21)], SELF), 0);
        assert_eq!(done(&mut w), 1);
        assert_eq!(w.tlb, TlbFlush::All);
        assert_eq!(entry(&w, 3, SLOT5), (6 << 12) | 0x25, "written with _PAGE_USER");
        let g = GuestMemory::new(&mut w.mem, Mfn(0));
        assert_eq!(g.translate(BUF_VA + 0x1000, Access::Read), Ok(0x6000));
        assert!(g.translate(BUF_VA + 0x1000, Access::Write).is_err());
        // The same value again changes nothing: no flush needed.
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (6 << 12) | 0x25)], SELF), 0);
        assert_eq!(w.tlb, TlbFlush::None);
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), 0)], SELF), 0, "unmap");
        assert_eq!(entry(&w, 3, SLOT5), 0);
    }

    #[test]
    fn preserve_ad_keeps_the_old_accessed_and_dirty_bits() {
        let mut w = World::new(false);
        w.mem.set_entry(3, SLOT5, (5 << 12) | 0x67); // A and D set
        let ptr = l1e(SLOT5) | u64::from(MMU_PT_UPDATE_PRESERVE_AD);
        assert_eq!(mmu(&mut w, &[(ptr, (6 << 12) | 0x01)], SELF), 0);
        assert_eq!(entry(&w, 3, SLOT5), (6 << 12) | 0x65);
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (6 << 12) | 0x01)], SELF), 0);
        assert_eq!(entry(&w, 3, SLOT5), (6 << 12) | 0x05, "a normal update drops them");
    }

    #[test]
    fn mmu_update_refuses_what_xen_refuses_and_changes_nothing() {
        let mut w = World::new(false);
        let before = w.mem.0.clone();
        let counts = w.counts();
        let good = (6 << 12) | 0x23;
        let cases: [(&str, u64, u64, i64); 10] = [
            ("frame not owned", 12 * 4096, good, EINVAL),
            ("L2 PSE", 2 * 4096 + 8, (9 << 12) | 0xe7, EINVAL),
            ("L3 naming an L1", 4096 + 8, (3 << 12) | 0x67, EINVAL),
            ("L4 GLOBAL", 8, (9 << 12) | 0x167, EINVAL),
            ("L4 hypervisor slot", 256 * 8, (9 << 12) | 0x67, EINVAL),
            ("maps a frame not owned", l1e(SLOT5), (12 << 12) | 0x23, -16),
            ("maps its own page table writable", l1e(SLOT5), (2 << 12) | 0x23, -16),
            ("PCD without I/O rights", l1e(SLOT5), good | 0x10, EINVAL),
            ("misaligned (command 4)", l1e(SLOT5) | 4, good, -38),
            ("misaligned (command 7)", l1e(SLOT5) | 7, good, -38),
        ];
        for (what, ptr, val, errno) in cases {
            assert_eq!(mmu(&mut w, &[(ptr, val)], SELF), errno, "{what}");
            assert_eq!(done(&mut w), 0, "{what}");
            assert_eq!(w.tlb, TlbFlush::None, "{what}");
        }
        // Only the request buffer and the done counter were written.
        for f in [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14] {
            assert!(w.mem.0[f] == before[f], "frame {f} changed");
        }
        assert_eq!(w.counts(), counts, "no count changed");
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (2 << 12) | 0x21)], SELF), 0, "a page table read-only is fine");
        let no_translate = l1e(SLOT5) | u64::from(MMU_PT_UPDATE_NO_TRANSLATE);
        assert_eq!(mmu(&mut w, &[(no_translate, good)], SELF), 0, "NO_TRANSLATE is a normal update for PV");
        assert_eq!(entry(&w, 3, SLOT5), good | 0x04, "with _PAGE_USER, as any PV L1 entry");
        assert_eq!(mmu(&mut w, &[(no_translate, (12 << 12) | 0x23)], SELF), -16, "with the same checks");
        // An own frame that is no page table is written as plain memory,
        // unchecked (Xen's default case): Linux fills new tables this way.
        assert_eq!(mmu(&mut w, &[(9 * 4096 + 16, (12 << 12) | 0x23)], SELF), 0);
        assert_eq!(&w.mem.0[9][16..24], &((12u64 << 12) | 0x23).to_le_bytes());
    }

    #[test]
    fn bad_pointers_are_efault() {
        let mut w = World::new(false);
        let nr = u64::from(HYPERVISOR_MMU_UPDATE);
        assert_eq!(w.call_ret(nr, [0x1234_0000, 1, 0, SELF, 0]), -14, "unmapped list");
        assert_eq!(w.call_ret(nr, [0xffff_8000_0000_0000, 1, 0, SELF, 0]), -14, "list in the hypervisor hole");
        assert_eq!(w.call_ret(nr, [0x7fff_ffff_fff0, 2, 0, SELF, 0]), -14, "list runs off the lower half");
        // The second request is on an unmapped page: one is done.
        let last = BUF_VA + 0x3ff0; // end of frame 7; BUF_VA + 0x4000 is unmapped
        let req: std::vec::Vec<u8> =
            l1e(SLOT5).to_le_bytes().into_iter().chain(((6u64 << 12) | 0x21).to_le_bytes()).collect();
        w.poke(last, &req);
        w.poke(DONE_VA, &9u32.to_le_bytes());
        assert_eq!(w.call_ret(nr, [last, 2, DONE_VA, SELF, 0]), -14);
        assert_eq!(done(&mut w), 1);
        assert_eq!(entry(&w, 3, SLOT5), (6 << 12) | 0x25);
        assert_eq!(w.call_ret(nr, [BUF_VA, 0, 0, SELF, 0]), 0, "nothing to do, no done counter");
    }

    #[test]
    fn done_counts_stop_at_the_first_failure() {
        let mut w = World::new(false);
        let reqs = [(l1e(SLOT5), (6 << 12) | 0x21), (l1e(SLOT5 + 1), (12 << 12) | 0x21), (l1e(SLOT5 + 2), 0)];
        let before = entry(&w, 3, SLOT5 + 2);
        assert_eq!(mmu(&mut w, &reqs, SELF), -16);
        assert_eq!(done(&mut w), 1);
        assert_eq!(entry(&w, 3, SLOT5), (6 << 12) | 0x25, "the first was done");
        assert_eq!(entry(&w, 3, SLOT5 + 2), before, "the third was not");
        assert_eq!(w.tlb, TlbFlush::All, "the done part still needs its flush");
    }

    #[test]
    fn long_batches_continue_with_xen_encoding() {
        let mut w = World::new(false);
        let n = 600u64;
        let reqs: std::vec::Vec<(u64, u64)> =
            (0..n).map(|i| ((9 << 12) | u64::from(MMU_MACHPHYS_UPDATE), 1000 + i)).collect();
        put(&mut w, &reqs);
        let nr = u64::from(HYPERVISOR_MMU_UPDATE);
        let next = match w.call(nr, [BUF_VA, n, DONE_VA, SELF, 0]) {
            Outcome::Continue(a) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(next, [BUF_VA + 512 * 16, (n - 512) | u64::from(MMU_UPDATE_PREEMPTED), DONE_VA, SELF, 0]);
        assert_eq!(done(&mut w), 512);
        assert_eq!(M2P.get(&w.mem, Mfn(9)), Some(Pfn(1511)));
        assert_eq!(w.call_ret(nr, next), 0);
        assert_eq!(done(&mut w), 600, "the continuation adds to the done count");
        assert_eq!(M2P.get(&w.mem, Mfn(9)), Some(Pfn(1599)));
        // Xen's null-list continuation form returns foreigndom.
        assert_eq!(w.call_ret(nr, [0, u64::from(MMU_UPDATE_PREEMPTED), 0, 5, 0]), 5);
    }

    #[test]
    fn machphys_update_of_owned_and_unowned_frames() {
        let mut w = World::new(false);
        let cmd = u64::from(MMU_MACHPHYS_UPDATE);
        assert_eq!(mmu(&mut w, &[((9 << 12) | cmd, 42)], SELF), 0);
        assert_eq!(M2P.get(&w.mem, Mfn(9)), Some(Pfn(42)));
        assert_eq!(w.tlb, TlbFlush::None);
        assert_eq!(mmu(&mut w, &[((12 << 12) | cmd, 42)], SELF), EINVAL, "not owned");
        assert_eq!(mmu(&mut w, &[((4000 << 12) | cmd, 42)], SELF), EINVAL, "not even RAM");
        assert_eq!(M2P.get(&w.mem, Mfn(12)), None);
    }

    #[test]
    fn foreigndom_needs_privilege_and_a_real_other_domain() {
        let mut w = World::new(false);
        w.add_peer(peer_domain());
        let map_peer = [(l1e(SLOT5), (12 << 12) | 0x23)];
        assert_eq!(mmu(&mut w, &map_peer, 1), -1, "unprivileged: EPERM");
        assert_eq!(mmu(&mut w, &map_peer, 7), -3, "unknown domain: ESRCH");
        assert_eq!(mmu(&mut w, &map_peer, 0), -3, "its own ID is no foreign domain: ESRCH");
        assert_eq!(mmu(&mut w, &map_peer, (2 << 16) | SELF), -1, "another's page tables, unprivileged");
        assert_eq!(done(&mut w), 0);
        w.dom.privileged = true;
        assert_eq!(mmu(&mut w, &map_peer, (2 << 16) | SELF), EINVAL, "another's page tables: not supported");
        assert_eq!(mmu(&mut w, &map_peer, SELF), -16, "the peer's frame is not the caller's");
        assert_eq!(mmu(&mut w, &map_peer, 1), 0, "privileged: maps the peer's frame");
        assert_eq!(entry(&w, 3, SLOT5), (12 << 12) | 0x27);
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (13 << 12) | 0x23)], 1), 0, "and its shared_info");
        let pin_l1 = |w: &mut World| {
            let peer = MapRights::of(&w.peers[0]);
            Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(Mfn(11), 1, &peer)
        };
        assert_eq!(pin_l1(&mut w), Ok(()));
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (11 << 12) | 0x23)], 1), -16, "not its page table writable");
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (6 << 12) | 0x23)], 1), -16, "own frame, peer as owner");
        assert_eq!(mmu(&mut w, &[(l1e(SLOT5), (6 << 12) | 0x23)], (1 << 16) | SELF), 0, "own tables named");
        let machphys = u64::from(MMU_MACHPHYS_UPDATE);
        assert_eq!(mmu(&mut w, &[((12 << 12) | machphys, 7)], 1), 0, "the peer's M2P entry");
        assert_eq!(M2P.get(&w.mem, Mfn(12)), Some(Pfn(7)));
        assert_eq!(mmu(&mut w, &[((9 << 12) | machphys, 7)], 1), EINVAL, "not the peer's frame");
    }

    #[test]
    fn update_va_mapping_otherdomain_maps_a_peer_frame_for_the_privileged() {
        let nr = u64::from(guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN);
        let va = BUF_VA + 0x1000; // the L1 slot SLOT5
        let other = |w: &mut World, pte: u64, dom: u64| w.call_ret(nr, [va, pte, u64::from(UVMF_INVLPG), dom, 0]);
        let mut w = World::new(false);
        w.add_peer(peer_domain());
        let before = entry(&w, 3, SLOT5);
        assert_eq!(other(&mut w, (12 << 12) | 0x23, 1), -1, "unprivileged: EPERM");
        assert_eq!(other(&mut w, (12 << 12) | 0x23, 7), -3, "unknown domain: ESRCH");
        assert_eq!(other(&mut w, (12 << 12) | 0x23, 0), -3, "its own ID: ESRCH");
        assert_eq!(entry(&w, 3, SLOT5), before, "nothing changed");
        w.dom.privileged = true;
        assert_eq!(other(&mut w, (6 << 12) | 0x23, 1), -16, "own frame named as the peer's");
        assert_eq!(other(&mut w, (12 << 12) | 0x23, SELF), -16, "the peer's frame, no owner named");
        assert_eq!(other(&mut w, (12 << 12) | 0x23, 1), 0, "privileged: maps the peer's frame");
        assert_eq!(entry(&w, 3, SLOT5), (12 << 12) | 0x27);
        let g = GuestMemory::new(&mut w.mem, Mfn(0));
        assert_eq!(g.translate(va, Access::Write), Ok(0xc000));
        assert_eq!(other(&mut w, 0, 1), 0, "unmap");
        assert_eq!(entry(&w, 3, SLOT5), 0);
    }
}
