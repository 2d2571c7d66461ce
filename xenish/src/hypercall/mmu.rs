//! `update_va_mapping`: a guest changes one of its own L1 page-table
//! entries, validated as Xen's `mod_l1_entry` does.
//!
//! Until the full PV MMU (frame table, pinning, mmu_update) exists, a
//! domain's page tables are exactly those its builder made: this path may
//! change entries in those L1 tables only, may map only frames the domain
//! owns (or its shared_info page), never maps a page-table frame
//! writable, and refuses Xen's disallowed flags.

use guest_abi::errno::XenError;
use guest_abi::xen::{UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH};

use super::{Ctx, HcResult, Outcome, TlbFlush};
use crate::domain::Domain;
use crate::guest_access::{is_guest_addr, PTE_ADDR_MASK};
use crate::mm::pagetable::{self, PTE_P, PTE_PS, PTE_RW, PTE_US};
use crate::mm::{MachineMemory, Mfn};

/// PWT | PCD | PAT: cache attributes a domain without I/O rights may not set.
const CACHE_ATTRS: u64 = (1 << 3) | (1 << 4) | (1 << 7);
/// Software-available bits 52..62, which Xen reserves.
const HIGH_RESERVED: u64 = 0x7ff << 52;

/// Checks a new L1 entry for `d` and returns it as written (Xen's
/// `adjust_guest_l1e` adds `_PAGE_USER`: the guest kernel runs in ring 3).
pub fn validate_l1e(d: &Domain, pte: u64) -> Result<u64, XenError> {
    if pte & PTE_P == 0 {
        return Ok(pte);
    }
    let disallowed = HIGH_RESERVED | if d.privileged { 0 } else { CACHE_ATTRS };
    if pte & disallowed != 0 {
        return Err(XenError::Einval);
    }
    let mfn = Mfn::containing(pte & PTE_ADDR_MASK);
    if !d.may_map(mfn) {
        return Err(XenError::Einval);
    }
    if pte & PTE_RW != 0 && d.is_page_table(mfn) {
        return Err(XenError::Einval);
    }
    Ok(pte | PTE_US)
}

/// The L1 table and slot mapping `va` in `l4`, if it is one of `d`'s.
pub(crate) fn find_l1(d: &Domain, mem: &dyn MachineMemory, l4: Mfn, va: u64) -> Option<(Mfn, usize)> {
    let mut table = l4;
    for shift in [39u32, 30, 21] {
        let e = pagetable::entry(mem, table, ((va >> shift) & 511) as usize).ok()?;
        if e & PTE_P == 0 || e & PTE_PS != 0 {
            return None;
        }
        table = Mfn::containing(e & PTE_ADDR_MASK);
        if !d.is_page_table(table) {
            return None;
        }
    }
    Some((table, ((va >> 12) & 511) as usize))
}

/// `HYPERVISOR_update_va_mapping(va, new_pte, flags)`.
pub fn update_va_mapping(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [va, pte, flags, ..] = args;
    serve(ctx, va, pte, flags).into()
}

fn serve(ctx: &mut Ctx, va: u64, pte: u64, flags: u64) -> HcResult {
    if !is_guest_addr(va) {
        return Err(XenError::Einval);
    }
    let l4 = ctx.domain.vcpus.get(ctx.vcpu).map(|v| v.current_l4()).ok_or(XenError::Einval)?;
    let (l1, slot) = find_l1(ctx.domain, ctx.mem, l4, va).ok_or(XenError::Einval)?;
    let value = validate_l1e(ctx.domain, pte)?;
    pagetable::set_entry(ctx.mem, l1, slot, value).map_err(|_| XenError::Einval)?;
    ctx.tlb = match flags & u64::from(UVMF_FLUSHTYPE_MASK) {
        f if f == u64::from(UVMF_INVLPG) => TlbFlush::Page(va),
        f if f == u64::from(UVMF_TLB_FLUSH) => TlbFlush::All,
        // Without a flush the guest sees the change when its TLB allows,
        // as on Xen; a stale entry only concerns its own mappings.
        _ => TlbFlush::None,
    };
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use crate::guest_access::{Access, GuestMemory};
    use guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING;

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
        assert_eq!(call(&mut w, BUF_VA, (99 << 12) | 0x23), einval, "frame not owned");
        assert_eq!(call(&mut w, BUF_VA, (2 << 12) | 0x23), einval, "own page table, writable");
        assert_eq!(call(&mut w, BUF_VA, (6 << 12) | 0x23 | 0x10), einval, "PCD without I/O rights");
        assert_eq!(call(&mut w, BUF_VA, (6 << 12) | 0x23 | (1 << 55)), einval, "reserved high bit");
        assert_eq!(call(&mut w, 0xffff_8000_0000_0000, 0), einval, "hypervisor hole");
        assert_eq!(call(&mut w, 0x1234_5000, 0), einval, "no L1 there");
        assert_eq!(w.mem.0[3], before, "L1 untouched");
        assert_eq!(call(&mut w, BUF_VA, (2 << 12) | 0x21), 0, "a page table read-only is fine");
        w.dom.privileged = true;
        assert_eq!(call(&mut w, BUF_VA, (6 << 12) | 0x23 | 0x10), 0, "privileged may set cache attributes");
    }
}
