//! `mmuext_op`: a batch of extended MMU operations — TLB flushes, base
//! pointers, pinning, LDT, page clear and copy — with the batching rules of
//! `mmu_update` (done count, continuation, page owner).
//!
//! Semantics: Xen's `do_mmuext_op` (xen/arch/x86/mm.c) over the frame
//! table: a pin holds a page-table type reference of its level (validating
//! the table, and through it every table below, on first use); a base
//! pointer holds an L4 type reference, taken on the new table before the
//! old one's is dropped; `CLEAR_PAGE`/`COPY_PAGE` need a writable type on
//! the destination. Operations on the caller's own state (flushes, base
//! pointers, LDT, cache) refuse a foreign page owner with `-EPERM`, as Xen
//! does.

use guest_abi::errno::XenError;
use guest_abi::xen::{
    MmuextOp, MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_FLUSH_CACHE, MMUEXT_FLUSH_CACHE_GLOBAL, MMUEXT_INVLPG_ALL,
    MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_MARK_SUPER, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR,
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_SET_LDT,
    MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNMARK_SUPER, MMUEXT_UNPIN_TABLE,
};

use super::mmu::{owner_domain, pg_owner, Batch, PgOwner};
use super::{Ctx, Outcome, TlbFlush};
use crate::guest_access::{is_canonical, is_guest_addr};
use crate::ipi::CpuMask;
use crate::mm::frame_table::{Owner, PageType};
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{Mfn, PAGE_SIZE};

/// `HYPERVISOR_mmuext_op(ops, count, pdone, foreigndom)`.
pub fn mmuext_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let batch = match Batch::start(ctx, args) {
        Ok(b) => b,
        Err(outcome) => return outcome,
    };
    if !batch.list_ok::<MmuextOp>() {
        return Outcome::Return(XenError::Efault.to_ret());
    }
    // domid_t: Xen truncates foreigndom to 16 bits here.
    match pg_owner(ctx, batch.foreigndom as u16) {
        Ok(owner) => batch.run(ctx, owner, mmuext_one),
        Err(e) => Outcome::Return(e.to_ret()),
    }
}

/// One operation of the batch.
fn mmuext_one(ctx: &mut Ctx, owner: PgOwner, op: MmuextOp) -> Result<(), XenError> {
    match op.cmd {
        MMUEXT_PIN_L1_TABLE | MMUEXT_PIN_L2_TABLE | MMUEXT_PIN_L3_TABLE | MMUEXT_PIN_L4_TABLE => {
            pin(ctx, owner, Mfn(op.arg1), (op.cmd - MMUEXT_PIN_L1_TABLE + 1) as u8)
        }
        MMUEXT_UNPIN_TABLE => unpin(ctx, owner, Mfn(op.arg1)),
        MMUEXT_CLEAR_PAGE => clear_page(ctx, owner, Mfn(op.arg1)),
        MMUEXT_COPY_PAGE => copy_page(ctx, owner, Mfn(op.arg1), Mfn(op.arg2)),
        MMUEXT_MARK_SUPER | MMUEXT_UNMARK_SUPER => Err(XenError::Eopnotsupp),
        cmd => own_state_op(ctx, owner, cmd, op),
    }
}

/// The operations on the caller's own vCPU, TLB and cache: a foreign page
/// owner makes no sense for them (`-EPERM`).
fn own_state_op(ctx: &mut Ctx, owner: PgOwner, cmd: u32, op: MmuextOp) -> Result<(), XenError> {
    let known = matches!(
        cmd,
        MMUEXT_NEW_BASEPTR
            | MMUEXT_NEW_USER_BASEPTR
            | MMUEXT_TLB_FLUSH_LOCAL
            | MMUEXT_TLB_FLUSH_MULTI
            | MMUEXT_TLB_FLUSH_ALL
            | MMUEXT_INVLPG_LOCAL
            | MMUEXT_INVLPG_MULTI
            | MMUEXT_INVLPG_ALL
            | MMUEXT_FLUSH_CACHE
            | MMUEXT_FLUSH_CACHE_GLOBAL
            | MMUEXT_SET_LDT
    );
    if !known {
        return Err(XenError::Enosys);
    }
    if owner != PgOwner::Caller {
        return Err(XenError::Eperm);
    }
    match cmd {
        MMUEXT_NEW_BASEPTR => new_baseptr(ctx, Mfn(op.arg1)),
        MMUEXT_NEW_USER_BASEPTR => new_user_baseptr(ctx, Mfn(op.arg1)),
        MMUEXT_TLB_FLUSH_LOCAL => flush(ctx, TlbFlush::All, Scope::Local),
        MMUEXT_TLB_FLUSH_MULTI => {
            let cpus = vcpumask_to_cpus(ctx, op.arg2)?;
            flush(ctx, TlbFlush::All, Scope::Cpus(cpus))
        }
        MMUEXT_TLB_FLUSH_ALL => flush(ctx, TlbFlush::All, Scope::Domain),
        // Xen ignores a non-canonical address (paging_invlpg).
        MMUEXT_INVLPG_LOCAL if is_canonical(op.arg1) => flush_page(ctx, op.arg1, Scope::Local),
        MMUEXT_INVLPG_LOCAL => Ok(()),
        MMUEXT_INVLPG_MULTI => {
            let cpus = vcpumask_to_cpus(ctx, op.arg2)?;
            flush_page(ctx, op.arg1, Scope::Cpus(cpus))
        }
        MMUEXT_INVLPG_ALL => flush_page(ctx, op.arg1, Scope::Domain),
        MMUEXT_FLUSH_CACHE => flush_cache(ctx, XenError::Eacces),
        MMUEXT_FLUSH_CACHE_GLOBAL => flush_cache(ctx, XenError::Einval),
        _ => super::ldt::set_ldt(ctx, op.arg1, op.arg2 as u32),
    }
}

/// Which CPUs a guest's flush request reaches.
#[derive(Clone, Copy)]
enum Scope {
    /// The caller's own CPU (`*_LOCAL`, `UVMF_LOCAL`).
    Local,
    /// Every CPU the caller's domain may have cached translations on
    /// (`*_ALL`, `UVMF_ALL`: Xen's `d->dirty_cpumask`).
    Domain,
    /// These (`*_MULTI`: the dirty CPUs of the vCPUs the guest named).
    Cpus(CpuMask),
}

/// Asks for TLB maintenance on `scope`'s CPUs before the entry ends
/// (several different ones in a batch make a full flush).
#[inline]
fn flush(ctx: &mut Ctx, what: TlbFlush, scope: Scope) -> Result<(), XenError> {
    match scope {
        Scope::Local => ctx.flush_local(what),
        Scope::Domain => ctx.flush_dirty(what),
        Scope::Cpus(cpus) => ctx.tlb.add(what, cpus),
    }
    Ok(())
}

/// `INVLPG_*`: flushes `va` on `scope`'s CPUs, only guest addresses
/// (Xen's `__addr_ok`); anything else is a successful no-op.
fn flush_page(ctx: &mut Ctx, va: u64, scope: Scope) -> Result<(), XenError> {
    if is_guest_addr(va) {
        flush(ctx, TlbFlush::Page(va), scope)?;
    }
    Ok(())
}

/// `*_MULTI`: reads the vCPU bitmap as Xen's `vcpumask_to_pcpumask`
/// does, one `unsigned long` after another while its first bit names a
/// vCPU below `max_vcpus`, stopping at the first set bit at or past it; a
/// word that cannot be read is `-EINVAL`. Returns the dirty CPUs of the
/// vCPUs it names (a vCPU that never ran adds none; the caller, if named,
/// adds its own CPU: Linux's `xen_flush_tlb_multi` keeps itself in the
/// mask).
#[inline(never)]
pub(super) fn vcpumask_to_cpus(ctx: &mut Ctx, vcpumask: u64) -> Result<CpuMask, XenError> {
    let max = u64::from(ctx.domain.max_vcpus).min(ctx.domain.vcpus.len() as u64);
    let mut cpus = CpuMask::EMPTY;
    for word in 0.. {
        let bias = word * 64;
        if bias >= max {
            break;
        }
        let addr = vcpumask.checked_add(word * 8).ok_or(XenError::Einval)?;
        let mut bits: u64 = ctx.guest().read(addr).map_err(|_| XenError::Einval)?;
        while bits != 0 {
            let id = bias + u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            if id >= max {
                return Ok(cpus);
            }
            cpus = cpus.or(crate::flush::vcpu_dirty_cpus(ctx.domain, id as usize));
        }
    }
    Ok(cpus)
}

/// `FLUSH_CACHE{,_GLOBAL}`: for a domain allowed to flush caches (here:
/// privileged), else `refusal`. The host core has no cache to write back;
/// the machine's caches are coherent for everything the guest can see.
fn flush_cache(ctx: &mut Ctx, refusal: XenError) -> Result<(), XenError> {
    ctx.privileged().map(|_| ()).map_err(|_| refusal)
}

/// Takes an L4 type reference on the caller's frame `mfn` (Xen's
/// `new_guest_cr3` / `get_page_and_type_from_mfn(PGT_root_page_table,
/// PTF_preemptible)`): `-ERESTART` leaves the table partially validated
/// for the same request to resume; a failure part-way parks it.
fn get_l4(ctx: &mut Ctx, mfn: Mfn) -> Result<(), XenError> {
    let rights = MapRights::of(ctx.domain);
    Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem }.get_page_and_type_preemptible(mfn, &rights, PageType::L4)
}

/// `NEW_BASEPTR`: the kernel-mode top-level table becomes `mfn`, one of
/// the caller's frames, which takes an L4 type reference (validated now if
/// it was not an L4 yet, preemptibly); the old table's is dropped,
/// preemptibly too: if its devalidation stops part-way, the old table is
/// parked on the vCPU and the request (`-ERESTART`) is served again,
/// finding `mfn` installed already, as in Xen. The vCPU is in kernel
/// mode, so the system loads it on the way back (`System::syscall` sees
/// the change).
fn new_baseptr(ctx: &mut Ctx, mfn: Mfn) -> Result<(), XenError> {
    let old = ctx.domain.vcpus.get(ctx.vcpu).ok_or(XenError::Einval)?.kernel_l4;
    if old == mfn {
        return Ok(());
    }
    get_l4(ctx, mfn)?;
    let vcpu = ctx.domain.vcpus.get_mut(ctx.vcpu).ok_or(XenError::Einval)?;
    vcpu.kernel_l4 = mfn;
    ctx.mmu().put_page_and_type_preemptible(old)
}

/// `NEW_USER_BASEPTR`: the user-mode top-level table becomes `mfn`, with
/// an L4 type reference as for `NEW_BASEPTR` (and its preemption); 0
/// clears it. Setting the current one again is a no-op success, as in Xen.
fn new_user_baseptr(ctx: &mut Ctx, mfn: Mfn) -> Result<(), XenError> {
    let current = ctx.domain.vcpus.get(ctx.vcpu).ok_or(XenError::Einval)?.user_l4;
    if current.map_or(0, |m| m.0) == mfn.0 {
        return Ok(());
    }
    let new = match mfn.0 {
        0 => None,
        _ => {
            get_l4(ctx, mfn)?;
            Some(mfn)
        }
    };
    let vcpu = ctx.domain.vcpus.get_mut(ctx.vcpu).ok_or(XenError::Einval)?;
    match core::mem::replace(&mut vcpu.user_l4, new) {
        Some(old) => ctx.mmu().put_page_and_type_preemptible(old),
        None => Ok(()),
    }
}

/// `PIN_Ln_TABLE`: `mfn`, a frame of the owner, becomes (or already is) a
/// validated page table of `level` and is pinned: the pin holds a type
/// reference. A frame of another type in use, a table that fails
/// validation, or one already pinned, is refused.
fn pin(ctx: &mut Ctx, owner: PgOwner, mfn: Mfn, level: u8) -> Result<(), XenError> {
    let d = owner_domain(&mut *ctx.domain, &mut ctx.peers, owner)?;
    let rights = MapRights::of(d);
    Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem }.pin_preemptible(mfn, level, &rights)
}

/// `UNPIN_TABLE`: `mfn` must be one of the owner's pinned page tables; the
/// pin's reference goes (devalidating the table if it was the last).
fn unpin(ctx: &mut Ctx, owner: PgOwner, mfn: Mfn) -> Result<(), XenError> {
    let id = owner_domain(&mut *ctx.domain, &mut ctx.peers, owner)?.id;
    ctx.mmu().unpin_preemptible(mfn, id)
}

/// The owner's domain ID.
fn owner_id(ctx: &mut Ctx, owner: PgOwner) -> Result<u16, XenError> {
    Ok(owner_domain(&mut *ctx.domain, &mut ctx.peers, owner)?.id)
}

/// Runs `write` on the owner's frame `dst` while it holds a writable type
/// reference (Xen's `get_page_and_type(PGT_writable_page)`): a page table
/// or a frame not the owner's is `-EINVAL`.
fn with_writable(
    ctx: &mut Ctx,
    owner: PgOwner,
    dst: Mfn,
    write: impl FnOnce(&mut Ctx) -> Result<(), XenError>,
) -> Result<(), XenError> {
    let id = owner_id(ctx, owner)?;
    ctx.ft.get_page(dst, Owner::Domain(id))?;
    if let Err(e) = ctx.ft.get_type(dst, PageType::Writable) {
        ctx.ft.put_page(dst);
        return Err(e);
    }
    let r = write(ctx);
    ctx.mmu().put_page_and_type(dst);
    r
}

/// `CLEAR_PAGE`: zeroes a writable frame of the owner.
fn clear_page(ctx: &mut Ctx, owner: PgOwner, mfn: Mfn) -> Result<(), XenError> {
    with_writable(ctx, owner, mfn, |ctx| {
        ctx.mem.frame_mut(mfn).ok_or(XenError::Einval)?.fill(0);
        Ok(())
    })
}

/// `COPY_PAGE`: copies the owner's frame `src` (any of its RAM) into its
/// writable frame `dst`.
fn copy_page(ctx: &mut Ctx, owner: PgOwner, dst: Mfn, src: Mfn) -> Result<(), XenError> {
    let id = owner_id(ctx, owner)?;
    if ctx.ft.owner(src) != Some(Owner::Domain(id)) {
        return Err(XenError::Einval);
    }
    with_writable(ctx, owner, dst, |ctx| {
        if ctx.mem.copy_bytes(src, 0, dst, 0, PAGE_SIZE) {
            Ok(())
        } else {
            Err(XenError::Einval)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::mmu::MMU_UPDATE_PREEMPTED;
    use super::super::tests::{peer_domain, World, BUF_VA};
    use super::*;
    use guest_abi::xen::{DOMID_SELF, HYPERVISOR_MMUEXT_OP};
    extern crate std;
    use std::vec::Vec;

    const EINVAL: i64 = -22;
    const SELF: u64 = DOMID_SELF as u64;
    /// The guest's done counter (end of frame 7, after the longest batch).
    const DONE_VA: u64 = BUF_VA + 0x3ffc;
    /// A readable vCPU mask (frame 6).
    const MASK_VA: u64 = BUF_VA + 0x2000;

    fn put(w: &mut World, ops: &[(u32, u64, u64)]) {
        let bytes: Vec<u8> = ops
            .iter()
            .flat_map(|&(cmd, a1, a2)| {
                let mut b = [0u8; 24];
                b[0..4].copy_from_slice(&cmd.to_le_bytes());
                b[8..16].copy_from_slice(&a1.to_le_bytes());
                b[16..24].copy_from_slice(&a2.to_le_bytes());
                b
            })
            .collect();
        w.poke(BUF_VA, &bytes);
        w.poke(DONE_VA, &0xffff_ffffu32.to_le_bytes());
    }

    fn ext(w: &mut World, ops: &[(u32, u64, u64)], foreigndom: u64) -> i64 {
        put(w, ops);
        w.call_ret(u64::from(HYPERVISOR_MMUEXT_OP), [BUF_VA, ops.len() as u64, DONE_VA, foreigndom, 0])
    }

    fn one(w: &mut World, cmd: u32, arg1: u64, arg2: u64) -> i64 {
        ext(w, &[(cmd, arg1, arg2)], SELF)
    }

    fn done(w: &mut World) -> u32 {
        u32::from_le_bytes(w.peek(DONE_VA, 4).try_into().unwrap())
    }

    /// Makes frame 9 a second L4 (a copy of frame 0, so guest pointers
    /// still resolve through it).
    fn second_l4(w: &mut World) {
        w.mem.0[9] = w.mem.0[0];
    }

    #[test]
    fn tlb_flushes() {
        let mut w = World::new(false);
        for cmd in [MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_ALL] {
            assert_eq!(one(&mut w, cmd, 0, 0), 0);
            assert_eq!(w.tlb, TlbFlush::All);
        }
        w.poke(MASK_VA, &1u64.to_le_bytes());
        assert_eq!(one(&mut w, MMUEXT_TLB_FLUSH_MULTI, 0, MASK_VA), 0);
        assert_eq!(w.tlb, TlbFlush::All);
        for cmd in [MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_ALL] {
            assert_eq!(one(&mut w, cmd, 0x1234_5000, 0), 0);
            assert_eq!(w.tlb, TlbFlush::Page(0x1234_5000));
        }
        assert_eq!(one(&mut w, MMUEXT_INVLPG_MULTI, 0x1234_5000, MASK_VA), 0);
        assert_eq!(w.tlb, TlbFlush::Page(0x1234_5000));
        let two = [(MMUEXT_INVLPG_LOCAL, 0x1000, 0), (MMUEXT_INVLPG_LOCAL, 0x2000, 0)];
        assert_eq!(ext(&mut w, &two, SELF), 0);
        assert_eq!(w.tlb, TlbFlush::All, "two pages: a full flush");
        let same = [(MMUEXT_INVLPG_LOCAL, 0x1000, 0), (MMUEXT_INVLPG_ALL, 0x1000, 0)];
        assert_eq!(ext(&mut w, &same, SELF), 0);
        assert_eq!(w.tlb, TlbFlush::Page(0x1000));
        assert_eq!(one(&mut w, MMUEXT_INVLPG_LOCAL, 0xffff_8000_0000_0000, 0), 0, "hole: ignored");
        assert_eq!(w.tlb, TlbFlush::None);
        assert_eq!(one(&mut w, MMUEXT_TLB_FLUSH_MULTI, 0, 0x1234_0000), EINVAL, "unreadable vCPU mask");
        assert_eq!(one(&mut w, MMUEXT_INVLPG_MULTI, 0x1000, 0), EINVAL, "null vCPU mask");
        assert_eq!(w.tlb, TlbFlush::None);
    }

    #[test]
    fn new_baseptr_takes_only_an_own_l4() {
        let mut w = World::new(false);
        second_l4(&mut w);
        for (mfn, what) in [(1, "an L3"), (3, "an L1"), (6, "no page table"), (12, "not owned")] {
            assert_eq!(one(&mut w, MMUEXT_NEW_BASEPTR, mfn, 0), EINVAL, "{what}");
            assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(0), "{what}");
        }
        assert_eq!(one(&mut w, MMUEXT_NEW_BASEPTR, 9, 0), 0);
        assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(9));
        assert_eq!(done(&mut w), 1, "the done counter is read through the new L4");
    }

    #[test]
    fn new_user_baseptr_sets_and_clears() {
        let mut w = World::new(false);
        second_l4(&mut w);
        assert_eq!(one(&mut w, MMUEXT_NEW_USER_BASEPTR, 9, 0), 0);
        assert_eq!(w.dom.vcpus[0].user_l4, Some(Mfn(9)));
        assert_eq!(one(&mut w, MMUEXT_NEW_USER_BASEPTR, 9, 0), 0, "the same again");
        assert_eq!(one(&mut w, MMUEXT_NEW_USER_BASEPTR, 2, 0), EINVAL, "an L2");
        assert_eq!(one(&mut w, MMUEXT_NEW_USER_BASEPTR, 12, 0), EINVAL, "not owned");
        assert_eq!(w.dom.vcpus[0].user_l4, Some(Mfn(9)));
        assert_eq!(one(&mut w, MMUEXT_NEW_USER_BASEPTR, 0, 0), 0);
        assert_eq!(w.dom.vcpus[0].user_l4, None);
        assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(0), "the kernel table is untouched");
    }

    #[test]
    fn pin_and_unpin() {
        let mut w = World::new(false);
        let pinned = |w: &World, m| w.ft.info(Mfn(m)).is_some_and(|p| p.pinned());
        assert!(pinned(&w, 0), "the builder's L4 starts pinned");
        assert_eq!(one(&mut w, MMUEXT_PIN_L4_TABLE, 0, 0), EINVAL, "pinned twice");
        assert_eq!(one(&mut w, MMUEXT_UNPIN_TABLE, 0, 0), 0);
        assert!(!pinned(&w, 0));
        assert_eq!(one(&mut w, MMUEXT_UNPIN_TABLE, 0, 0), EINVAL, "not pinned");
        assert_eq!(one(&mut w, MMUEXT_PIN_L4_TABLE, 0, 0), 0);
        assert!(pinned(&w, 0));
        assert_eq!(one(&mut w, MMUEXT_PIN_L2_TABLE, 3, 0), EINVAL, "an L1 as an L2");
        assert_eq!(one(&mut w, MMUEXT_PIN_L1_TABLE, 3, 0), 0);
        assert_eq!(one(&mut w, MMUEXT_PIN_L3_TABLE, 1, 0), 0);
        assert_eq!(one(&mut w, MMUEXT_PIN_L2_TABLE, 2, 0), 0);
        assert!(pinned(&w, 1) && pinned(&w, 2) && pinned(&w, 3));
        assert_eq!(one(&mut w, MMUEXT_PIN_L1_TABLE, 6, 0), EINVAL, "no page table");
        assert_eq!(one(&mut w, MMUEXT_PIN_L1_TABLE, 12, 0), EINVAL, "not owned");
        assert_eq!(one(&mut w, MMUEXT_UNPIN_TABLE, 6, 0), EINVAL, "no page table to unpin");
    }

    #[test]
    fn clear_and_copy_pages() {
        let mut w = World::new(false);
        w.mem.0[9] = [0xaa; PAGE_SIZE];
        assert_eq!(one(&mut w, MMUEXT_COPY_PAGE, 6, 9), 0);
        assert!(w.mem.0[6].iter().all(|&b| b == 0xaa));
        assert_eq!(one(&mut w, MMUEXT_CLEAR_PAGE, 6, 0), 0);
        assert!(w.mem.0[6].iter().all(|&b| b == 0));
        assert_eq!(one(&mut w, MMUEXT_COPY_PAGE, 6, 3), 0, "a page table may be the source");
        assert_eq!(w.mem.0[6], w.mem.0[3]);
        let before = w.mem.0.clone();
        for (cmd, dst, src, what) in [
            (MMUEXT_COPY_PAGE, 2, 9, "into a page table"),
            (MMUEXT_COPY_PAGE, 12, 9, "into a frame not owned"),
            (MMUEXT_COPY_PAGE, 9, 12, "from a frame not owned"),
            (MMUEXT_CLEAR_PAGE, 3, 0, "a page table"),
            (MMUEXT_CLEAR_PAGE, 12, 0, "a frame not owned"),
        ] {
            assert_eq!(one(&mut w, cmd, dst, src), EINVAL, "{what}");
        }
        for f in [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14] {
            assert!(w.mem.0[f] == before[f], "frame {f} changed");
        }
    }

    #[test]
    fn set_ldt_flush_cache_and_unknown_commands() {
        let mut w = World::new(false);
        assert_eq!(one(&mut w, MMUEXT_SET_LDT, 0x1234, 0), 0, "no LDT: the address is ignored");
        assert_eq!((w.dom.vcpus[0].ldt_base, w.dom.vcpus[0].ldt_ents), (0, 0));
        assert_eq!(one(&mut w, MMUEXT_SET_LDT, 0x1234, 16), EINVAL, "misaligned");
        assert_eq!(one(&mut w, MMUEXT_SET_LDT, 0x1000, 8193), EINVAL, "too many entries");
        assert_eq!(one(&mut w, MMUEXT_FLUSH_CACHE, 0, 0), -13, "EACCES without I/O rights");
        assert_eq!(one(&mut w, MMUEXT_FLUSH_CACHE_GLOBAL, 0, 0), EINVAL);
        for cmd in [0xe, 0x15, 999] {
            assert_eq!(one(&mut w, cmd, 0, 0), -38, "cmd {cmd}");
        }
        assert_eq!(one(&mut w, MMUEXT_MARK_SUPER, 0, 0), -95);
        w.dom.privileged = true;
        assert_eq!(one(&mut w, MMUEXT_FLUSH_CACHE, 0, 0), 0);
        assert_eq!(one(&mut w, MMUEXT_FLUSH_CACHE_GLOBAL, 0, 0), 0);
    }

    #[test]
    fn done_counts_bad_pointers_and_continuation() {
        let mut w = World::new(false);
        let ops = [(MMUEXT_TLB_FLUSH_LOCAL, 0, 0), (MMUEXT_PIN_L1_TABLE, 6, 0), (MMUEXT_PIN_L1_TABLE, 3, 0)];
        assert_eq!(ext(&mut w, &ops, SELF), EINVAL);
        assert_eq!(done(&mut w), 1);
        assert!(w.ft.info(Mfn(3)).is_some_and(|p| !p.pinned()), "the third was not done");
        let nr = u64::from(HYPERVISOR_MMUEXT_OP);
        assert_eq!(w.call_ret(nr, [0x1234_0000, 1, 0, SELF, 0]), -14, "unmapped list");
        assert_eq!(w.call_ret(nr, [0xffff_8000_0000_0000, 1, 0, SELF, 0]), -14, "list in the hole");
        let n = 600u64;
        let flushes: Vec<(u32, u64, u64)> = (0..n).map(|_| (MMUEXT_TLB_FLUSH_LOCAL, 0, 0)).collect();
        put(&mut w, &flushes);
        let next = match w.call(nr, [BUF_VA, n, DONE_VA, SELF, 0]) {
            Outcome::Continue(a) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(next, [BUF_VA + 512 * 24, (n - 512) | u64::from(MMU_UPDATE_PREEMPTED), DONE_VA, SELF, 0]);
        assert_eq!(done(&mut w), 512);
        assert_eq!(w.call_ret(nr, next), 0);
        assert_eq!(done(&mut w), 600);
    }

    #[test]
    fn foreign_page_owner() {
        let mut w = World::new(false);
        w.add_peer(peer_domain());
        assert_eq!(ext(&mut w, &[(MMUEXT_PIN_L1_TABLE, 11, 0)], 1), -1, "unprivileged: EPERM");
        assert_eq!(ext(&mut w, &[(MMUEXT_PIN_L1_TABLE, 3, 0)], 0), -3, "own ID: ESRCH");
        assert_eq!(ext(&mut w, &[(MMUEXT_PIN_L1_TABLE, 11, 0)], 9), -3, "unknown: ESRCH");
        w.dom.privileged = true;
        assert_eq!(ext(&mut w, &[(MMUEXT_PIN_L1_TABLE, 11, 0)], 1), 0, "the peer's L1");
        assert!(w.ft.info(Mfn(11)).is_some_and(|p| p.pinned()));
        assert_eq!(ext(&mut w, &[(MMUEXT_PIN_L1_TABLE, 3, 0)], 1), EINVAL, "the caller's L1 is not the peer's");
        assert_eq!(ext(&mut w, &[(MMUEXT_UNPIN_TABLE, 10, 0)], 1), 0, "the peer's L4");
        w.mem.0[12] = [0x55; PAGE_SIZE];
        assert_eq!(ext(&mut w, &[(MMUEXT_COPY_PAGE, 12, 9)], 1), EINVAL, "the caller's frame is not the peer's");
        assert_eq!(ext(&mut w, &[(MMUEXT_COPY_PAGE, 11, 12)], 1), EINVAL, "into the peer's page table");
        assert!(w.mem.0[12].iter().all(|&b| b == 0x55));
        assert_eq!(ext(&mut w, &[(MMUEXT_CLEAR_PAGE, 12, 0)], 1), 0, "the peer's RAM");
        assert!(w.mem.0[12].iter().all(|&b| b == 0));
        for cmd in [MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_SET_LDT] {
            assert_eq!(ext(&mut w, &[(cmd, 10, 0)], 1), -1, "cmd {cmd} on the caller's own state");
        }
    }

    #[test]
    fn a_batch_is_continued_by_the_tables_it_walks_and_ends_as_one_run() {
        use super::super::mmu::TABLE_BUDGET;
        let mut w = World::new(false);
        let before = w.counts();
        // Frame 9: the caller's, untyped; each pin validates it (a walk of
        // its 512 entries), each unpin devalidates it.
        let pairs = 100u64;
        let ops: Vec<(u32, u64, u64)> =
            (0..pairs).flat_map(|_| [(MMUEXT_PIN_L1_TABLE, 9, 0), (MMUEXT_UNPIN_TABLE, 9, 0)]).collect();
        put(&mut w, &ops);
        let nr = u64::from(HYPERVISOR_MMUEXT_OP);
        let mut args = [BUF_VA, 2 * pairs, DONE_VA, SELF, 0];
        let mut dones = Vec::new();
        let ret = loop {
            match w.call(nr, args) {
                Outcome::Continue(next) => {
                    dones.push(done(&mut w));
                    args = next;
                }
                Outcome::Return(v) => break v,
            }
        };
        assert_eq!(ret, 0);
        let budget = TABLE_BUDGET as u32;
        assert_eq!(dones, [budget, 2 * budget, 3 * budget], "one request per table walked, 64 a call");
        assert_eq!(done(&mut w), 200);
        assert_eq!(w.counts(), before, "the same state as one uninterrupted run: nothing pinned, nothing typed");
        w.audit();
    }
}
