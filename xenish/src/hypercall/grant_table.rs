//! `grant_table_op`: the GNTTABOP_* commands of grant tables v1.
//!
//! Semantics and status codes: Xen 4.17 `xen/common/grant_table.c` and
//! `xen/arch/x86/pv/grant_table.c`. The hypercall returns 0 (or an errno
//! for a bad pointer or argument) and each operation of a batch reports its
//! own `GNTST_*` status. Batches are preemptible: after [`BATCH`]
//! operations the hypercall is continued with the rest, as Xen does.
//! Version 2 is not offered (`set_version(2)` is `-ENOSYS`, as on a Xen
//! whose `max_grant_version` is 1); transfer, swap, status frames, dump and
//! cache flush are not implemented yet and answer `-ENOSYS`.

use guest_abi::errno::XenError;
use guest_abi::grant_table::*;
use guest_abi::xen::DOMID_SELF;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{Ctx, HcResult, Outcome, Peers, TlbFlush};
use crate::domain::{DomId, Domain};
use crate::gnttab::{self, GntStatus, Mapping, MAX_FRAMES};
use crate::guest_access::{is_guest_addr, PTE_ADDR_MASK};
use crate::mm::frame_table::{Owner, PageType};
use crate::mm::pagetable::{self, PTE_A, PTE_D, PTE_NX, PTE_P, PTE_RW, PTE_US};
use crate::mm::pt_validate::{find_l1, PTE_GNTTAB};
use crate::mm::{Mfn, PAGE_SIZE};

/// Operations of a map, unmap or copy batch served before the hypercall
/// is continued.
const BATCH: u32 = 64;

/// `HYPERVISOR_grant_table_op(cmd, uop, count)`.
pub fn grant_table_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, uop, count, ..] = args;
    let (cmd, count) = (cmd as u32, count as u32);
    if (count as i32) < 0 {
        return Outcome::Return(XenError::Einval.to_ret());
    }
    match cmd {
        GNTTABOP_MAP_GRANT_REF => batch(ctx, cmd, uop, count, map_one),
        GNTTABOP_UNMAP_GRANT_REF => batch(ctx, cmd, uop, count, unmap_one),
        GNTTABOP_COPY => batch(ctx, cmd, uop, count, copy_one),
        _ if count != 1 && is_single(cmd) => Outcome::Return(XenError::Einval.to_ret()),
        GNTTABOP_SETUP_TABLE => setup_table(ctx, uop).into(),
        GNTTABOP_QUERY_SIZE => query_size(ctx, uop).into(),
        GNTTABOP_SET_VERSION => set_version(ctx, uop).into(),
        GNTTABOP_GET_VERSION => get_version(ctx, uop).into(),
        _ => Outcome::Return(XenError::Enosys.to_ret()),
    }
}

/// Commands that take exactly one argument struct.
fn is_single(cmd: u32) -> bool {
    matches!(cmd, GNTTABOP_SETUP_TABLE | GNTTABOP_QUERY_SIZE | GNTTABOP_SET_VERSION | GNTTABOP_GET_VERSION)
}

fn read<T: FromBytes + IntoBytes>(ctx: &mut Ctx, va: u64) -> Result<T, XenError> {
    ctx.guest().read(va).map_err(|_| XenError::Efault)
}

fn write<T: IntoBytes + Immutable>(ctx: &mut Ctx, va: u64, value: &T) -> Result<(), XenError> {
    ctx.guest().write(va, value).map_err(|_| XenError::Efault)
}

/// Runs `one` on each struct of a batch: copy in, serve, copy out; after
/// [`BATCH`] of them the rest is a continuation.
fn batch<T: FromBytes + IntoBytes + Immutable>(
    ctx: &mut Ctx,
    cmd: u32,
    uop: u64,
    count: u32,
    one: fn(&mut Ctx, &mut T),
) -> Outcome {
    let size = core::mem::size_of::<T>() as u64;
    for i in 0..count {
        let va = uop.wrapping_add(u64::from(i) * size);
        if i == BATCH {
            return Outcome::Continue([u64::from(cmd), va, u64::from(count - i), 0, 0]);
        }
        let mut op: T = match read(ctx, va) {
            Ok(op) => op,
            Err(e) => return Outcome::Return(e.to_ret()),
        };
        one(ctx, &mut op);
        if let Err(e) = write(ctx, va, &op) {
            return Outcome::Return(e.to_ret());
        }
    }
    Outcome::Return(0)
}

/// The domain `id` names: the caller (`me`) or one of its peers.
fn domain_mut<'b>(me: &'b mut Domain, peers: &'b mut Peers, id: DomId) -> Option<&'b mut Domain> {
    if id == me.id {
        Some(me)
    } else {
        peers.get_mut(id)
    }
}

/// The domain a `dom` argument of a table operation names: the caller for
/// DOMID_SELF or its own ID; another one only for a privileged caller.
fn table_owner(ctx: &Ctx, dom: DomId) -> Result<DomId, GntStatus> {
    if dom == DOMID_SELF || dom == ctx.domain.id {
        Ok(ctx.domain.id)
    } else if ctx.domain.privileged {
        Ok(dom)
    } else {
        Err(GNTST_PERMISSION_DENIED)
    }
}

fn setup_table(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabSetupTable = read(ctx, uop)?;
    op.status = match setup_frames(ctx, &op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
    write(ctx, uop, &op)?;
    Ok(0)
}

/// Grows the table to `op.nr_frames` and writes its frames to `frame_list`.
fn setup_frames(ctx: &mut Ctx, op: &GnttabSetupTable) -> Result<(), GntStatus> {
    let id = table_owner(ctx, op.dom)?;
    if op.nr_frames > MAX_FRAMES {
        return Err(GNTST_GENERAL_ERROR);
    }
    let owner = domain_mut(ctx.domain, &mut ctx.peers, id).ok_or(GNTST_BAD_DOMAIN)?;
    owner.gnttab.grow(op.nr_frames, ctx.mem, ctx.frames, ctx.ft)?;
    let frames: alloc::vec::Vec<Mfn> = owner.gnttab.frames.iter().take(op.nr_frames as usize).copied().collect();
    for (i, mfn) in frames.iter().enumerate() {
        let va = op.frame_list.element_addr(i as u64).ok_or(GNTST_BAD_VIRT_ADDR)?;
        write(ctx, va, &mfn.0).map_err(|_| GNTST_BAD_VIRT_ADDR)?;
    }
    Ok(())
}

fn query_size(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabQuerySize = read(ctx, uop)?;
    let table = table_owner(ctx, op.dom)
        .and_then(|id| domain_mut(ctx.domain, &mut ctx.peers, id).ok_or(GNTST_BAD_DOMAIN))
        .map(|d| d.gnttab.frames.len() as u32);
    (op.nr_frames, op.max_nr_frames, op.status) = match table {
        Ok(nr_frames) => (nr_frames, MAX_FRAMES, GNTST_OKAY),
        Err(status) => (op.nr_frames, op.max_nr_frames, status),
    };
    write(ctx, uop, &op)?;
    Ok(0)
}

fn set_version(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabSetVersion = read(ctx, uop)?;
    let wanted = op.version;
    op.version = 1;
    write(ctx, uop, &op)?;
    match wanted {
        1 => Ok(0),
        2 => Err(XenError::Enosys),
        _ => Err(XenError::Einval),
    }
}

fn get_version(ctx: &mut Ctx, uop: u64) -> HcResult {
    let mut op: GnttabGetVersion = read(ctx, uop)?;
    if op.dom != DOMID_SELF && op.dom != ctx.domain.id {
        if !ctx.domain.privileged {
            return Err(XenError::Eperm);
        }
        if ctx.peers.get_mut(op.dom).is_none() {
            return Err(XenError::Esrch);
        }
    }
    op.version = 1;
    write(ctx, uop, &op)?;
    Ok(0)
}

/// GNTTABOP_map_grant_ref, one operation.
fn map_one(ctx: &mut Ctx, op: &mut GnttabMapGrantRef) {
    op.status = match map_grant(ctx, op) {
        Ok(handle) => {
            op.handle = handle;
            GNTST_OKAY
        }
        Err(status) => status,
    };
}

fn map_grant(ctx: &mut Ctx, op: &mut GnttabMapGrantRef) -> Result<u32, GntStatus> {
    let host = op.flags & GNTMAP_HOST_MAP != 0;
    let device = op.flags & GNTMAP_DEVICE_MAP != 0;
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let by_pte = op.flags & GNTMAP_CONTAINS_PTE != 0;
    if !host && !device {
        return Err(GNTST_BAD_GNTREF);
    }
    // Where the host mapping goes, checked before the grant is touched.
    let slot = if host { Some(host_slot(ctx, op.host_addr, by_pte)?) } else { None };
    let (me, dom, gref) = (ctx.domain.id, op.dom, op.ref_);
    let granter = domain_mut(ctx.domain, &mut ctx.peers, dom).ok_or(GNTST_BAD_DOMAIN)?;
    let mfn = gnttab::acquire(granter, ctx.mem, ctx.ft, gref, me, readonly)?;
    let uses = u32::from(host) + u32::from(device);
    let undo = |ctx: &mut Ctx, held: u32| {
        for _ in 0..held {
            drop_frame(ctx, mfn, readonly);
        }
        if let Some(g) = domain_mut(ctx.domain, &mut ctx.peers, dom) {
            gnttab::release(g, ctx.mem, gref, readonly);
        }
    };
    for held in 0..uses {
        if hold_frame(ctx, dom, mfn, readonly).is_err() {
            undo(ctx, held);
            return Err(GNTST_GENERAL_ERROR);
        }
    }
    if let Some(slot) = slot {
        if let Err(status) = install_pte(ctx, slot, mfn, grant_pte_flags(op.flags)) {
            undo(ctx, uses);
            return Err(status);
        }
    }
    let mapping = Mapping { granter: dom, gref, mfn, host, device, readonly, by_pte };
    match ctx.domain.gnttab.track(mapping) {
        Ok(handle) => {
            op.dev_bus_addr = mfn.addr();
            Ok(handle)
        }
        Err(status) => {
            if let Some(slot) = slot {
                let _ = remove_pte(ctx, slot, mfn, readonly);
            }
            undo(ctx, uses);
            Err(status)
        }
    }
}

/// What one use (host or device mapping) of a granted frame holds: a
/// reference through the granter's ownership and, when writable, a
/// writable type reference, so the frame cannot become one of the
/// granter's page tables while mapped (Xen's `map_grant_ref`:
/// `get_page` / `get_page_type(PGT_writable_page)`).
fn hold_frame(ctx: &mut Ctx, granter: DomId, mfn: Mfn, readonly: bool) -> Result<(), XenError> {
    ctx.ft.get_page(mfn, Owner::Domain(granter))?;
    if !readonly {
        if let Err(e) = ctx.ft.get_type(mfn, PageType::Writable) {
            ctx.ft.put_page(mfn);
            return Err(e);
        }
    }
    Ok(())
}

/// Releases what [`hold_frame`] took.
fn drop_frame(ctx: &mut Ctx, mfn: Mfn, readonly: bool) {
    if !readonly {
        ctx.mmu().put_type(mfn);
    }
    ctx.ft.put_page(mfn);
}

/// The L1 slot mapping `va` in the caller's current address space.
fn l1_slot(ctx: &Ctx, va: u64) -> Result<(Mfn, usize), GntStatus> {
    if !is_guest_addr(va) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let l4 = ctx.domain.vcpus.get(ctx.vcpu).map(|v| v.current_l4()).ok_or(GNTST_GENERAL_ERROR)?;
    find_l1(ctx.ft, ctx.mem, ctx.domain.id, l4, va).ok_or(GNTST_GENERAL_ERROR)
}

/// The L1 slot a host mapping names: by virtual address, or with
/// `GNTMAP_contains_pte` by the machine address of the entry itself, which
/// must be 8-byte aligned and inside one of the caller's own L1 tables
/// (Xen's `create_grant_pv_mapping` / `replace_grant_pv_mapping`; gntdev
/// in a PV dom0 maps user pages this way).
fn host_slot(ctx: &Ctx, addr: u64, by_pte: bool) -> Result<(Mfn, usize), GntStatus> {
    if !by_pte {
        return l1_slot(ctx, addr);
    }
    if !addr.is_multiple_of(8) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let table = Mfn::containing(addr);
    if !ctx.ft.is_page_table_of(table, ctx.domain.id, Some(1)) {
        return Err(GNTST_GENERAL_ERROR);
    }
    Ok((table, ((addr as usize) % PAGE_SIZE) / 8))
}

/// The PTE flags of a grant mapping (Xen's `grant_to_pte_flags` with the
/// 64-bit PV guest's `_PAGE_USER`): present, accessed, dirty, no-execute,
/// writable unless read-only, and the three `GNTMAP_guest_avail` bits as
/// the PTE's available bits 9–11 (Linux keeps `_PAGE_SPECIAL` there).
fn grant_pte_flags(flags: u32) -> u64 {
    let avail = (u64::from(flags >> GNTMAP_GUEST_AVAIL0_BIT) << 9) & PTE_AVAIL;
    let rw = if flags & GNTMAP_READONLY != 0 { 0 } else { PTE_RW };
    PTE_P | PTE_US | PTE_A | PTE_D | PTE_NX | PTE_GNTTAB | rw | avail
}

/// The PTE's software-available bits 9–11.
const PTE_AVAIL: u64 = 0xe00;

/// Maps `mfn` at L1 `slot` with `flags`, as Xen's `create_grant_pv_mapping`
/// does: the PTE there is replaced by one for the granted frame, marked
/// `_PAGE_GNTTAB` (the grant holds its references), and the old entry's
/// references are released; an old grant entry there is refused.
fn install_pte(ctx: &mut Ctx, (l1, slot): (Mfn, usize), mfn: Mfn, flags: u64) -> Result<(), GntStatus> {
    let old = pagetable::entry(ctx.mem, l1, slot).map_err(|_| GNTST_GENERAL_ERROR)?;
    if old & PTE_P != 0 && old & PTE_GNTTAB != 0 {
        return Err(GNTST_GENERAL_ERROR);
    }
    pagetable::set_entry(ctx.mem, l1, slot, mfn.addr() | flags).map_err(|_| GNTST_GENERAL_ERROR)?;
    ctx.mmu().put_page_from_l1e(old);
    ctx.tlb = TlbFlush::All;
    Ok(())
}

/// Unmaps the grant of `mfn` at L1 `slot`, refusing if the PTE there is
/// not a grant entry for that frame with the mapping's write permission
/// (Xen's `replace_grant_pv_mapping`).
fn remove_pte(ctx: &mut Ctx, (l1, slot): (Mfn, usize), mfn: Mfn, readonly: bool) -> Result<(), GntStatus> {
    let old = pagetable::entry(ctx.mem, l1, slot).map_err(|_| GNTST_GENERAL_ERROR)?;
    let frame_matches = Mfn::containing(old & PTE_ADDR_MASK) == mfn;
    let rw_matches = (old & PTE_RW == 0) == readonly;
    if old & PTE_P == 0 || old & PTE_GNTTAB == 0 || !frame_matches || !rw_matches {
        return Err(GNTST_GENERAL_ERROR);
    }
    pagetable::set_entry(ctx.mem, l1, slot, 0).map_err(|_| GNTST_GENERAL_ERROR)?;
    ctx.tlb = TlbFlush::All;
    Ok(())
}

/// GNTTABOP_unmap_grant_ref, one operation.
fn unmap_one(ctx: &mut Ctx, op: &mut GnttabUnmapGrantRef) {
    op.status = match unmap_grant(ctx, op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

fn unmap_grant(ctx: &mut Ctx, op: &GnttabUnmapGrantRef) -> Result<(), GntStatus> {
    let m = *ctx.domain.gnttab.mapping(op.handle).ok_or(GNTST_BAD_HANDLE)?;
    if op.dev_bus_addr != 0 && op.dev_bus_addr != m.mfn.addr() {
        return Err(GNTST_GENERAL_ERROR);
    }
    let undo_host = op.host_addr != 0 && m.host;
    let undo_device = op.dev_bus_addr != 0 && m.device;
    if undo_host {
        let slot = host_slot(ctx, op.host_addr, m.by_pte)?;
        remove_pte(ctx, slot, m.mfn, m.readonly)?;
    }
    let (host, device) = (m.host && !undo_host, m.device && !undo_device);
    let undone = u32::from(undo_host) + u32::from(undo_device);
    if host || device {
        if let Some(left) = ctx.domain.gnttab.mapping_mut(op.handle) {
            (left.host, left.device) = (host, device);
        }
    } else {
        ctx.domain.gnttab.untrack(op.handle);
    }
    for _ in 0..undone {
        drop_frame(ctx, m.mfn, m.readonly);
    }
    if let Some(granter) = domain_mut(ctx.domain, &mut ctx.peers, m.granter) {
        for _ in 0..undone {
            gnttab::release(granter, ctx.mem, m.gref, m.readonly);
        }
    }
    Ok(())
}

/// GNTTABOP_copy, one operation.
fn copy_one(ctx: &mut Ctx, op: &mut GnttabCopy) {
    op.status = match copy(ctx, op) {
        Ok(()) => GNTST_OKAY,
        Err(status) => status,
    };
}

/// One side of a copy, resolved: the frame and, for a grant, what to
/// release afterwards.
struct Side {
    mfn: Mfn,
    grant: Option<(DomId, u32)>,
}

fn copy(ctx: &mut Ctx, op: &GnttabCopy) -> Result<(), GntStatus> {
    let len = usize::from(op.len);
    let (src_off, dst_off) = (usize::from(op.source.offset), usize::from(op.dest.offset));
    if src_off + len > PAGE_SIZE || dst_off + len > PAGE_SIZE {
        return Err(GNTST_BAD_COPY_ARG);
    }
    let src_gref = u32::from(op.flags) & GNTCOPY_SOURCE_GREF != 0;
    let dst_gref = u32::from(op.flags) & GNTCOPY_DEST_GREF != 0;
    let src = claim(ctx, &op.source, src_gref, true)?;
    let dst = match claim(ctx, &op.dest, dst_gref, false) {
        Ok(d) => d,
        Err(status) => {
            unclaim(ctx, &src, true);
            return Err(status);
        }
    };
    let mut buf = alloc::vec![0u8; len];
    let copied = ctx
        .mem
        .frame(src.mfn)
        .and_then(|f| f.get(src_off..src_off + len))
        .map(|bytes| buf.copy_from_slice(bytes))
        .and_then(|()| ctx.mem.frame_mut(dst.mfn)?.get_mut(dst_off..dst_off + len))
        .map(|bytes| bytes.copy_from_slice(&buf))
        .ok_or(GNTST_GENERAL_ERROR);
    unclaim(ctx, &dst, false);
    unclaim(ctx, &src, true);
    copied
}

/// Resolves one side of a copy: a grant made to the caller, or (for
/// DOMID_SELF only, as in Xen) one of the caller's own frames, which must
/// not be a page table if it is written.
fn claim(ctx: &mut Ctx, ptr: &GnttabCopyPtr, is_gref: bool, readonly: bool) -> Result<Side, GntStatus> {
    if !is_gref {
        if ptr.domid != DOMID_SELF {
            return Err(GNTST_PERMISSION_DENIED);
        }
        let mfn = Mfn(ptr.u);
        if !ctx.ft.is_owned_by(mfn, ctx.domain.id) {
            return Err(GNTST_BAD_PAGE);
        }
        if !readonly && ctx.ft.is_page_table(mfn) {
            return Err(GNTST_GENERAL_ERROR);
        }
        return Ok(Side { mfn, grant: None });
    }
    let me = ctx.domain.id;
    let id = if ptr.domid == DOMID_SELF { me } else { ptr.domid };
    let gref = ptr.u as u32;
    let granter = domain_mut(ctx.domain, &mut ctx.peers, id).ok_or(GNTST_BAD_DOMAIN)?;
    let mfn = gnttab::acquire(granter, ctx.mem, ctx.ft, gref, me, readonly)?;
    Ok(Side { mfn, grant: Some((id, gref)) })
}

fn unclaim(ctx: &mut Ctx, side: &Side, readonly: bool) {
    if let Some((id, gref)) = side.grant {
        if let Some(granter) = domain_mut(ctx.domain, &mut ctx.peers, id) {
            gnttab::release(granter, ctx.mem, gref, readonly);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA};
    use super::*;
    use crate::gnttab::tests::grant;
    use crate::guest_access::{Access, GuestMemory};
    use guest_abi::xen::HYPERVISOR_GRANT_TABLE_OP;
    use zerocopy::FromZeros;

    extern crate std;
    use std::vec::Vec;

    const NR: u64 = HYPERVISOR_GRANT_TABLE_OP as u64;
    const PERMIT: u16 = GTF_PERMIT_ACCESS as u16;
    const RO: u16 = GTF_READONLY as u16;
    const READING: u16 = GTF_READING as u16;
    const WRITING: u16 = GTF_WRITING as u16;
    /// Where the caller maps grants: the slot of its frame 7.
    const MAP_VA: u64 = BUF_VA + 0x3000;
    /// The peer (domain 1) owns frames 10..14; its table is frame 16.
    const PEER: DomId = 1;

    fn world() -> World {
        let mut w = World::new(false);
        let mut peer = test_domain(PEER, false, 10..14, None, Mfn(15));
        peer.gnttab.grow(1, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        w.add_peer(peer);
        w
    }

    fn op<T: FromBytes + IntoBytes + Immutable>(w: &mut World, cmd: u32, ops: &[T]) -> (i64, Vec<T>) {
        let bytes: Vec<u8> = ops.iter().flat_map(|o| o.as_bytes().to_vec()).collect();
        w.poke(BUF_VA, &bytes);
        let ret = w.call_ret(NR, [u64::from(cmd), BUF_VA, ops.len() as u64, 0, 0]);
        let back = w.peek(BUF_VA, bytes.len());
        (ret, back.chunks(core::mem::size_of::<T>()).map(|c| T::read_from_bytes(c).unwrap()).collect())
    }

    fn map_op(gref: u32, dom: DomId, flags: u32) -> GnttabMapGrantRef {
        let mut m = GnttabMapGrantRef::new_zeroed();
        (m.host_addr, m.flags, m.ref_, m.dom) = (MAP_VA, flags, gref, dom);
        m
    }

    fn map(w: &mut World, gref: u32, dom: DomId, flags: u32) -> GnttabMapGrantRef {
        let (ret, out) = op(w, GNTTABOP_MAP_GRANT_REF, &[map_op(gref, dom, flags)]);
        assert_eq!(ret, 0);
        out[0]
    }

    fn unmap(w: &mut World, handle: u32, host_addr: u64) -> i16 {
        let mut u = GnttabUnmapGrantRef::new_zeroed();
        (u.host_addr, u.handle) = (host_addr, handle);
        let (ret, out) = op(w, GNTTABOP_UNMAP_GRANT_REF, &[u]);
        assert_eq!(ret, 0);
        out[0].status
    }

    fn peer_flags(w: &World, gref: u32) -> u16 {
        w.peers[0].gnttab.entry(&w.mem, gref).unwrap().flags
    }

    fn translate(w: &mut World, va: u64, access: Access) -> Option<u64> {
        GuestMemory::new(&mut w.mem, Mfn(0)).translate(va, access).ok()
    }

    #[test]
    fn setup_table_query_size_and_versions() {
        let mut w = world();
        let mut s = GnttabSetupTable::new_zeroed();
        (s.dom, s.nr_frames, s.frame_list) = (DOMID_SELF, 2, guest_abi::GuestHandle::new(BUF_VA + 0x100));
        let (ret, out) = op(&mut w, GNTTABOP_SETUP_TABLE, &[s]);
        assert_eq!((ret, out[0].status), (0, GNTST_OKAY));
        let frames = w.peek(BUF_VA + 0x100, 16);
        assert_eq!(frames, [17u64.to_le_bytes(), 18u64.to_le_bytes()].concat(), "the table's frames, in order");
        assert!(w.dom.may_map(&w.ft, Mfn(18)) && !w.owns(0, 18), "mappable, not counted as the domain's RAM");
        s.nr_frames = MAX_FRAMES + 1;
        assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_GENERAL_ERROR);
        s.dom = PEER;
        s.nr_frames = 1;
        assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_PERMISSION_DENIED, "another's table");
        s.dom = DOMID_SELF;
        s.frame_list = guest_abi::GuestHandle::new(0x10);
        assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s]).1[0].status, GNTST_BAD_VIRT_ADDR);
        assert_eq!(op(&mut w, GNTTABOP_SETUP_TABLE, &[s, s]).0, -22, "setup_table takes one struct");

        let mut q = GnttabQuerySize::new_zeroed();
        q.dom = DOMID_SELF;
        let (ret, out) = op(&mut w, GNTTABOP_QUERY_SIZE, &[q]);
        assert_eq!((ret, out[0].nr_frames, out[0].max_nr_frames, out[0].status), (0, 2, MAX_FRAMES, GNTST_OKAY));

        let v = |version| GnttabSetVersion { version };
        let version = |(ret, out): (i64, Vec<GnttabSetVersion>)| (ret, out[0].version);
        assert_eq!(version(op(&mut w, GNTTABOP_SET_VERSION, &[v(1)])), (0, 1));
        assert_eq!(version(op(&mut w, GNTTABOP_SET_VERSION, &[v(2)])), (-38, 1), "v2 is not offered");
        assert_eq!(op(&mut w, GNTTABOP_SET_VERSION, &[v(3)]).0, -22);
        let g = GnttabGetVersion { dom: DOMID_SELF, pad: 0, version: 0 };
        assert_eq!(op(&mut w, GNTTABOP_GET_VERSION, &[g]).1[0].version, 1);
        assert_eq!(op(&mut w, GNTTABOP_GET_VERSION, &[GnttabGetVersion { dom: PEER, ..g }]).0, -1);
        assert_eq!(w.call_ret(NR, [GNTTABOP_TRANSFER.into(), BUF_VA, 1, 0, 0]), -38);
        assert_eq!(w.call_ret(NR, [GNTTABOP_COPY.into(), BUF_VA, u64::from(u32::MAX), 0, 0]), -22, "negative count");
        assert_eq!(w.call_ret(NR, [GNTTABOP_COPY.into(), 0x10, 1, 0, 0]), -14, "bad pointer");
    }

    #[test]
    fn a_map_by_pte_machine_address_writes_that_entry_as_xen_does() {
        let mut w = world();
        grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
        let Some((l1, slot)) = find_l1(&w.ft, &w.mem, 0, Mfn(0), MAP_VA) else { panic!("no L1 for MAP_VA") };
        let pte_maddr = l1.addr() + slot as u64 * 8;
        // What gntdev's user op asks for in a PV dom0.
        let flags = GNTMAP_HOST_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE | (1 << GNTMAP_GUEST_AVAIL0_BIT);
        let by_pte = |addr| GnttabMapGrantRef { host_addr: addr, ..map_op(3, PEER, flags) };
        for (addr, why) in [(pte_maddr + 4, "misaligned"), (0xa000, "not an L1 of the caller's"), (u64::MAX, "nowhere")]
        {
            assert_eq!(op(&mut w, GNTTABOP_MAP_GRANT_REF, &[by_pte(addr)]).1[0].status, GNTST_GENERAL_ERROR, "{why}");
        }
        assert_eq!(peer_flags(&w, 3), PERMIT, "refused maps leave the grant unused");
        let (ret, out) = op(&mut w, GNTTABOP_MAP_GRANT_REF, &[by_pte(pte_maddr)]);
        assert_eq!((ret, out[0].status), (0, GNTST_OKAY));
        let pte = pagetable::entry(&w.mem, l1, slot).unwrap();
        assert_eq!(pte & PTE_ADDR_MASK, 0xa000, "the granted frame");
        assert_eq!(pte & (PTE_P | PTE_RW | PTE_US | PTE_NX), PTE_P | PTE_RW | PTE_US | PTE_NX);
        assert_eq!(pte & PTE_AVAIL, 1 << 9, "guest_avail0 is the PTE's bit 9 (Linux's _PAGE_SPECIAL)");
        assert_eq!(translate(&mut w, MAP_VA, Access::Write), Some(0xa000));
        assert_eq!(peer_flags(&w, 3), PERMIT | READING | WRITING);
        // The unmap names the entry the same way; a VA there is not it.
        assert_eq!(unmap(&mut w, out[0].handle, MAP_VA), GNTST_GENERAL_ERROR);
        assert_eq!(unmap(&mut w, out[0].handle, pte_maddr), GNTST_OKAY);
        assert_eq!(pagetable::entry(&w.mem, l1, slot).unwrap(), 0, "Xen clears the entry");
        assert_eq!(peer_flags(&w, 3), PERMIT);
    }

    #[test]
    fn a_read_only_map_is_unmapped_only_as_read_only() {
        let mut w = world();
        grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
        let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
        let Some((l1, slot)) = find_l1(&w.ft, &w.mem, 0, Mfn(0), MAP_VA) else { panic!("no L1") };
        let pte = pagetable::entry(&w.mem, l1, slot).unwrap();
        assert_eq!(pte & PTE_RW, 0);
        // The guest cannot make the entry writable (it is a grant entry,
        // refused by mmu_update), so a writable one here is not this map's.
        pagetable::set_entry(&mut w.mem, l1, slot, pte | PTE_RW).unwrap();
        assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_GENERAL_ERROR);
        pagetable::set_entry(&mut w.mem, l1, slot, pte).unwrap();
        assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
    }

    #[test]
    fn map_write_unmap_revoke() {
        let mut w = world();
        grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
        let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
        assert_eq!((m.status, m.handle, m.dev_bus_addr), (GNTST_OKAY, 0, 0xa000));
        assert_eq!(w.tlb, TlbFlush::All);
        assert_eq!(translate(&mut w, MAP_VA, Access::Write), Some(0xa000));
        assert_eq!(peer_flags(&w, 3), PERMIT | READING | WRITING, "the granter cannot revoke now");
        w.poke(MAP_VA + 8, b"granted");
        assert_eq!(&w.mem.0[10][8..15], b"granted");

        assert_eq!(unmap(&mut w, m.handle, MAP_VA + 0x1000), GNTST_GENERAL_ERROR, "not where it is mapped");
        assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
        assert_eq!(translate(&mut w, MAP_VA, Access::Read), None);
        assert_eq!(peer_flags(&w, 3), PERMIT, "revocable again");
        assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_BAD_HANDLE, "unmapped twice");
        assert!(w.peers[0].gnttab.active.is_empty() && w.dom.gnttab.maptrack.iter().all(Option::is_none));

        grant(&w.peers[0], &mut w.mem, 3, 0, 0, 10);
        assert_eq!(map(&mut w, 3, PEER, GNTMAP_HOST_MAP).status, GNTST_GENERAL_ERROR, "after revocation");
    }

    #[test]
    fn a_frame_mapped_writable_by_a_grant_cannot_become_a_page_table() {
        use crate::mm::pt_validate::{MapRights, Mmu};
        let mut w = world();
        // The grant replaces the mapping at MAP_VA; start without one.
        let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
        assert_eq!(w.call_ret(uvm, [MAP_VA, 0, 0, 0, 0]), 0);
        let start = w.counts();
        grant(&w.peers[0], &mut w.mem, 3, PERMIT, 0, 10);
        let m = map(&mut w, 3, PEER, GNTMAP_HOST_MAP);
        assert_eq!(m.status, GNTST_OKAY);
        let pin = |w: &mut World| {
            let peer = MapRights::of(&w.peers[0]);
            Mmu { ft: &mut w.ft, mem: &mut w.mem }.pin(Mfn(10), 1, &peer)
        };
        w.audit();
        assert_eq!(pin(&mut w), Err(XenError::Einval), "mapped writable by the grantee");
        assert_eq!(w.call_ret(uvm, [MAP_VA, 0, 0, 0, 0]), -22, "a grant PTE is not the MMU's to replace");
        assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
        assert_eq!(w.counts(), start, "the grant's references are gone");
        assert_eq!(pin(&mut w), Ok(()));
        assert_eq!(map(&mut w, 3, PEER, GNTMAP_HOST_MAP).status, GNTST_GENERAL_ERROR, "now a page table");
        let ro = map(&mut w, 3, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
        assert_eq!(ro.status, GNTST_OKAY, "read-only is fine");
        assert_eq!(unmap(&mut w, ro.handle, MAP_VA), GNTST_OKAY);
    }

    #[test]
    fn read_only_mappings_and_device_mappings() {
        let mut w = world();
        grant(&w.peers[0], &mut w.mem, 4, PERMIT | RO, 0, 11);
        assert_eq!(map(&mut w, 4, PEER, GNTMAP_HOST_MAP).status, GNTST_GENERAL_ERROR, "writable map of a r/o grant");
        assert_eq!(peer_flags(&w, 4), PERMIT | RO, "left as it was");
        let m = map(&mut w, 4, PEER, GNTMAP_HOST_MAP | GNTMAP_READONLY);
        assert_eq!(m.status, GNTST_OKAY);
        assert_eq!(translate(&mut w, MAP_VA, Access::Read), Some(0xb000));
        assert_eq!(translate(&mut w, MAP_VA, Access::Write), None);
        assert_eq!(peer_flags(&w, 4), PERMIT | RO | READING);

        let d = map(&mut w, 4, PEER, GNTMAP_DEVICE_MAP | GNTMAP_READONLY);
        assert_eq!((d.status, d.handle, d.dev_bus_addr), (GNTST_OKAY, 1, 0xb000));
        assert_eq!(unmap(&mut w, m.handle, MAP_VA), GNTST_OKAY);
        assert_eq!(peer_flags(&w, 4), PERMIT | RO | READING, "the device mapping still reads it");
        let mut u = GnttabUnmapGrantRef::new_zeroed();
        (u.dev_bus_addr, u.handle) = (0xb000, d.handle);
        assert_eq!(op(&mut w, GNTTABOP_UNMAP_GRANT_REF, &[u]).1[0].status, GNTST_OKAY);
        assert_eq!(peer_flags(&w, 4), PERMIT | RO);
    }

    #[test]
    fn hostile_maps_are_refused_and_change_nothing() {
        let mut w = world();
        grant(&w.peers[0], &mut w.mem, 1, PERMIT, 2, 10); // for domain 2
        grant(&w.peers[0], &mut w.mem, 2, PERMIT, 0, 99); // a frame the peer does not own
        grant(&w.peers[0], &mut w.mem, 5, PERMIT, 0, 10);
        let pte_before = w.mem.0[3];
        let cases: [(GnttabMapGrantRef, GntStatus, &str); 8] = [
            (map_op(1, PEER, GNTMAP_HOST_MAP), GNTST_GENERAL_ERROR, "a grant meant for another domain"),
            (map_op(2, PEER, GNTMAP_HOST_MAP), GNTST_BAD_PAGE, "a frame the granter does not own"),
            (map_op(512, PEER, GNTMAP_HOST_MAP), GNTST_BAD_GNTREF, "reference beyond the table"),
            (map_op(u32::MAX, PEER, GNTMAP_HOST_MAP), GNTST_BAD_GNTREF, "reference far beyond the table"),
            (map_op(5, 9, GNTMAP_HOST_MAP), GNTST_BAD_DOMAIN, "no such domain"),
            (map_op(5, DOMID_SELF, GNTMAP_HOST_MAP), GNTST_BAD_DOMAIN, "DOMID_SELF names no granter"),
            (map_op(5, PEER, 0), GNTST_BAD_GNTREF, "neither host nor device map"),
            (map_op(5, PEER, GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE), GNTST_GENERAL_ERROR, "PTE addresses"),
        ];
        for (m, want, what) in cases {
            let (ret, out) = op(&mut w, GNTTABOP_MAP_GRANT_REF, &[m]);
            assert_eq!((ret, out[0].status), (0, want), "{what}");
        }
        let mut m = map_op(5, PEER, GNTMAP_HOST_MAP);
        for (va, what) in [(0xffff_8000_0000_0000, "hypervisor hole"), (0x1234_5000, "no L1 there")] {
            m.host_addr = va;
            assert_eq!(op(&mut w, GNTTABOP_MAP_GRANT_REF, &[m]).1[0].status, GNTST_GENERAL_ERROR, "{what}");
        }
        assert_eq!(w.mem.0[3], pte_before, "no PTE changed");
        assert!(w.peers[0].gnttab.active.is_empty(), "no grant left in use");
        assert_eq!(peer_flags(&w, 5), PERMIT);
        assert!(w.dom.gnttab.maptrack.iter().all(Option::is_none));
        assert_eq!(unmap(&mut w, 7, MAP_VA), GNTST_BAD_HANDLE);

        // A mapped grant's frame is still not the mapper's to map elsewhere.
        let ok = map(&mut w, 5, PEER, GNTMAP_HOST_MAP);
        assert_eq!(ok.status, GNTST_OKAY);
        let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
        assert_eq!(w.call_ret(uvm, [BUF_VA + 0x2000, 0xa000 | 0x67, 0, 0, 0]), -16);
    }

    fn copy_op(src: (u64, DomId, u16), dst: (u64, DomId, u16), len: u16, flags: u32) -> GnttabCopy {
        let mut c = GnttabCopy::new_zeroed();
        (c.source.u, c.source.domid, c.source.offset) = src;
        (c.dest.u, c.dest.domid, c.dest.offset) = dst;
        (c.len, c.flags) = (len, flags as u16);
        c
    }

    #[test]
    fn copies_in_both_directions_and_refuses_bad_ones() {
        let mut w = world();
        grant(&w.peers[0], &mut w.mem, 6, PERMIT, 0, 12);
        grant(&w.peers[0], &mut w.mem, 7, PERMIT | RO, 0, 13);
        w.mem.0[5][..4].copy_from_slice(b"mine");
        w.mem.0[13][100..106].copy_from_slice(b"theirs");
        let to_peer = copy_op((5, DOMID_SELF, 0), (6, PEER, 16), 4, GNTCOPY_DEST_GREF);
        let from_peer = copy_op((7, PEER, 100), (6, DOMID_SELF, 8), 6, GNTCOPY_SOURCE_GREF);
        let (ret, out) = op(&mut w, GNTTABOP_COPY, &[to_peer, from_peer]);
        assert_eq!((ret, out[0].status, out[1].status), (0, GNTST_OKAY, GNTST_OKAY));
        assert_eq!(&w.mem.0[12][16..20], b"mine");
        assert_eq!(&w.mem.0[6][8..14], b"theirs");
        assert_eq!((peer_flags(&w, 6), peer_flags(&w, 7)), (PERMIT, PERMIT | RO), "in use only during the copy");

        let page = copy_op((5, DOMID_SELF, 0), (6, DOMID_SELF, 0), 4096, 0);
        assert_eq!(op(&mut w, GNTTABOP_COPY, &[page]).1[0].status, GNTST_OKAY, "a whole page");
        let before = (w.mem.0[6], w.mem.0[12]);
        let cases: [(GnttabCopy, GntStatus, &str); 8] = [
            (copy_op((5, DOMID_SELF, 4000), (6, DOMID_SELF, 0), 100, 0), GNTST_BAD_COPY_ARG, "source crosses a page"),
            (copy_op((5, DOMID_SELF, 0), (6, DOMID_SELF, 4095), 2, 0), GNTST_BAD_COPY_ARG, "dest crosses a page"),
            (copy_op((5, 0, 0), (6, DOMID_SELF, 0), 4, 0), GNTST_PERMISSION_DENIED, "frames only as DOMID_SELF"),
            (copy_op((12, DOMID_SELF, 0), (6, DOMID_SELF, 0), 4, 0), GNTST_BAD_PAGE, "someone else's frame"),
            (copy_op((5, DOMID_SELF, 0), (2, DOMID_SELF, 0), 4, 0), GNTST_GENERAL_ERROR, "into an own page table"),
            (copy_op((5, DOMID_SELF, 0), (7, PEER, 0), 4, GNTCOPY_DEST_GREF), GNTST_GENERAL_ERROR, "into r/o grant"),
            (copy_op((600, PEER, 0), (6, DOMID_SELF, 0), 4, GNTCOPY_SOURCE_GREF), GNTST_BAD_GNTREF, "bad ref"),
            (copy_op((6, 9, 0), (6, DOMID_SELF, 0), 4, GNTCOPY_SOURCE_GREF), GNTST_BAD_DOMAIN, "no such domain"),
        ];
        for (c, want, what) in cases {
            assert_eq!(op(&mut w, GNTTABOP_COPY, &[c]).1[0].status, want, "{what}");
        }
        assert_eq!((w.mem.0[6], w.mem.0[12]), before, "no refused copy wrote anything");
        assert!(w.peers[0].gnttab.active.is_empty());
    }

    #[test]
    fn long_batches_are_continued() {
        let mut w = world();
        let ops = std::vec![map_op(1, 9, GNTMAP_HOST_MAP); BATCH as usize + 3];
        let bytes: Vec<u8> = ops.iter().flat_map(|o| o.as_bytes().to_vec()).collect();
        w.poke(BUF_VA, &bytes);
        let size = core::mem::size_of::<GnttabMapGrantRef>() as u64;
        let next = BUF_VA + u64::from(BATCH) * size;
        let cmd = u64::from(GNTTABOP_MAP_GRANT_REF);
        assert_eq!(w.call(NR, [cmd, BUF_VA, ops.len() as u64, 0, 0]), Outcome::Continue([cmd, next, 3, 0, 0]));
        assert_eq!(w.call(NR, [cmd, next, 3, 0, 0]), Outcome::Return(0));
        let back = w.peek(BUF_VA, bytes.len());
        assert!(back.chunks(size as usize).all(|c| GnttabMapGrantRef::read_from_bytes(c).unwrap().status == -2));
    }
}
