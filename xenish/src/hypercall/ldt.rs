//! `MMUEXT_SET_LDT`: a PV guest's local descriptor table.
//!
//! Semantics and errnos: Xen 4.17 `xen/arch/x86/mm.c` (`MMUEXT_SET_LDT`)
//! and `xen/arch/x86/pv/mm.c` (`pv_map_ldt_shadow_page`). The LDT is named
//! by a guest linear address, page aligned and outside the hypervisor's
//! hole, and up to 8192 entries (16 pages); anything else is `-EINVAL`.
//! With no entries the address is ignored and the vCPU has no LDT. Asking
//! for the LDT already installed changes nothing.
//!
//! Xen maps the LDT's pages into a per-vCPU area lazily, on the first
//! fault on each, after taking a segment-descriptor type reference on the
//! frame the guest's page tables map there (which validates every
//! descriptor of a frame that becomes a descriptor page, and fails for a
//! frame mapped writable or used as a page table). xenish does the same
//! per page, but when the LDT is installed, and keeps the references until
//! the LDT is replaced; the CPU sees a checked copy of the frames, made
//! again whenever the vCPU runs or a descriptor of its LDT changes
//! (`update_descriptor`), as for the GDT. A page that cannot be taken
//! reads as not-present descriptors, so the guest's access to them faults
//! (#GP on the selector where Xen would deliver a #PF on the LDT address).
//! Xen also forgets the mappings when the guest switches page tables and
//! refaults them through the new ones; xenish keeps the frames of the
//! installation (the same frames for a kernel whose LDTs live in memory
//! every address space maps alike, as Linux's do).

use alloc::vec::Vec;

use guest_abi::errno::XenError;

use super::Ctx;
use crate::descriptors::{self, PER_FRAME};
use crate::guest_access::{is_guest_addr, Access, GuestMemory};
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{Mfn, PAGE_SIZE};

/// Most LDT entries a guest may install (Xen's limit).
pub const MAX_LDT_ENTS: u32 = 8192;

/// `SET_LDT(linear_addr, ents)` for the calling vCPU.
pub fn set_ldt(ctx: &mut Ctx, linear_addr: u64, ents: u32) -> Result<(), XenError> {
    let base = if ents != 0 { linear_addr } else { 0 };
    if base % PAGE_SIZE as u64 != 0 || !is_guest_addr(base) || ents > MAX_LDT_ENTS {
        return Err(XenError::Einval);
    }
    let vcpu = ctx.domain.vcpus.get(ctx.vcpu).ok_or(XenError::Einval)?;
    if (vcpu.ldt_base, vcpu.ldt_ents) == (base, ents) {
        return Ok(());
    }
    let l4 = vcpu.kernel_l4;
    let rights = MapRights::of(ctx.domain);
    let frames = take_frames(&mut Mmu { ft: ctx.ft, mem: ctx.mem }, l4, &rights, base, ents);
    let Some(vcpu) = ctx.domain.vcpus.get_mut(ctx.vcpu) else {
        put_frames(&mut Mmu { ft: ctx.ft, mem: ctx.mem }, &frames);
        return Err(XenError::Einval);
    };
    let old = core::mem::replace(&mut vcpu.ldt_frames, frames);
    (vcpu.ldt_base, vcpu.ldt_ents) = (base, ents);
    put_frames(&mut ctx.mmu(), &old);
    ctx.reload_gdt = true;
    Ok(())
}

/// The frames behind the `ents` descriptors at `base` in the address
/// space of `l4`, page by page, each with a segment-descriptor type
/// reference (Xen's `pv_map_ldt_shadow_page`); `None` for a page not
/// mapped, not the owner's, or not able to become a descriptor page.
pub fn take_frames(mmu: &mut Mmu, l4: Mfn, owner: &MapRights, base: u64, ents: u32) -> Vec<Option<Mfn>> {
    let pages = (ents as usize).div_ceil(PER_FRAME);
    let mut frames = Vec::with_capacity(pages);
    for page in 0..pages as u64 {
        // An LDT at the top of the address space may run past its end.
        let va = base.checked_add(page * PAGE_SIZE as u64);
        let ma = va.and_then(|va| GuestMemory::new(mmu.mem, l4).translate(va, Access::Read).ok());
        let mfn = ma.map(Mfn::containing);
        let taken = mfn.filter(|&m| {
            mmu.mem.frame(m).is_some_and(descriptors::frame_ok)
                && mmu.get_page_and_type(m, owner, PageType::SegDesc).is_ok()
        });
        frames.push(taken);
    }
    frames
}

/// Drops the references [`take_frames`] took.
pub fn put_frames(mmu: &mut Mmu, frames: &[Option<Mfn>]) {
    for &mfn in frames.iter().flatten() {
        mmu.put_page_and_type(mfn);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::{
        MmuextOp, DOMID_SELF, HYPERVISOR_MMUEXT_OP, HYPERVISOR_UPDATE_DESCRIPTOR, HYPERVISOR_UPDATE_VA_MAPPING,
        MMUEXT_SET_LDT,
    };
    use zerocopy::IntoBytes;

    const EINVAL: i64 = -22;
    const DATA: u64 = 0x00cf_9200_0000_ffff;
    const TSS: u64 = 0x0000_8900_0000_0067;
    /// The op is put here, clear of the LDT pages the tests use.
    const OP_VA: u64 = BUF_VA + 0x800;

    fn set_ldt(w: &mut World, va: u64, ents: u64) -> i64 {
        w.poke(OP_VA, MmuextOp::new(MMUEXT_SET_LDT, va, ents).as_bytes());
        w.call_ret(HYPERVISOR_MMUEXT_OP as u64, [OP_VA, 1, 0, DOMID_SELF as u64, 0])
    }

    fn remap(w: &mut World, va: u64, pte: u64) -> i64 {
        w.call_ret(HYPERVISOR_UPDATE_VA_MAPPING as u64, [va, pte, 0, 0, 0])
    }

    /// Frames 6 and 7 (at BUF_VA + 0x2000 and + 0x3000) made read-only,
    /// with a data descriptor at entry 1 of frame 6.
    fn world() -> World {
        let mut w = World::new(false);
        w.mem.0[6][8..16].copy_from_slice(&DATA.to_le_bytes());
        assert_eq!(remap(&mut w, BUF_VA + 0x2000, (6 << 12) | 0x25), 0);
        assert_eq!(remap(&mut w, BUF_VA + 0x3000, (7 << 12) | 0x25), 0);
        w
    }

    #[test]
    fn an_ldt_takes_its_frames_as_descriptor_pages_until_replaced() {
        let mut w = world();
        w.reload_gdt = false;
        assert_eq!(set_ldt(&mut w, BUF_VA + 0x2000, 600), 0, "two pages of descriptors");
        let v = &w.dom.vcpus[0];
        assert_eq!(
            (v.ldt_base, v.ldt_ents, &v.ldt_frames[..]),
            (BUF_VA + 0x2000, 600, &[Some(Mfn(6)), Some(Mfn(7))][..])
        );
        assert!(w.reload_gdt, "the CPU's copy must be made");
        assert_eq!((w.ft.page_type(Mfn(6)), w.ft.page_type(Mfn(7))), (PageType::SegDesc, PageType::SegDesc));
        assert_eq!(remap(&mut w, BUF_VA + 0x2000, (6 << 12) | 0x67), -16, "an LDT page cannot be mapped writable");
        w.reload_gdt = false;
        assert_eq!(set_ldt(&mut w, BUF_VA + 0x2000, 600), 0, "the same LDT again");
        assert!(!w.reload_gdt, "changes nothing");
        assert_eq!(set_ldt(&mut w, BUF_VA + 0x3000, 16), 0, "another LDT");
        assert_eq!(w.dom.vcpus[0].ldt_frames, [Some(Mfn(7))]);
        assert_eq!(w.ft.page_type(Mfn(6)), PageType::None, "the old LDT's references are gone");
        assert_eq!(w.ft.page_type(Mfn(7)), PageType::SegDesc);
        assert_eq!(set_ldt(&mut w, 0x1234, 0), 0, "no LDT: the address is ignored");
        let v = &w.dom.vcpus[0];
        assert_eq!((v.ldt_base, v.ldt_ents, v.ldt_frames.len()), (0, 0, 0));
        assert_eq!(w.ft.page_type(Mfn(7)), PageType::None);
        assert_eq!(remap(&mut w, BUF_VA + 0x2000, (6 << 12) | 0x67), 0, "plain memory again");
    }

    #[test]
    fn pages_that_cannot_be_descriptor_pages_are_left_out() {
        let mut w = world();
        w.mem.0[7][16..24].copy_from_slice(&TSS.to_le_bytes());
        let (va, ents) = (BUF_VA + 0x1000, 4 * 512);
        // Frame 5 is mapped writable; 6 is fine; 7 holds a TSS descriptor;
        // the fourth page is not mapped.
        assert_eq!(set_ldt(&mut w, va, ents), 0, "Xen takes the LDT, and faults on its use");
        assert_eq!(w.dom.vcpus[0].ldt_frames, [None, Some(Mfn(6)), None, None]);
        assert_eq!(w.ft.page_type(Mfn(5)), PageType::Writable, "still writable: no descriptor page");
        assert_eq!(w.ft.page_type(Mfn(7)), PageType::None);
        assert_eq!(set_ldt(&mut w, 0, 0), 0);
        assert_eq!(w.ft.page_type(Mfn(6)), PageType::None);
        assert_eq!(set_ldt(&mut w, 0xffff_ffff_ffff_f000, 8192), 0, "an LDT running past the top");
        assert_eq!(w.dom.vcpus[0].ldt_frames, [None; 16]);
    }

    #[test]
    fn arguments_xen_refuses() {
        let mut w = world();
        let counts = w.counts();
        for (va, ents, what) in [
            (BUF_VA + 0x2008, 16, "misaligned"),
            (BUF_VA + 0x2000, 8193, "too many entries"),
            (0xffff_8000_0000_0000, 16, "in the hypervisor's hole"),
            (0x8000_0000_0000, 16, "non-canonical"),
        ] {
            assert_eq!(set_ldt(&mut w, va, ents), EINVAL, "{what}");
        }
        assert_eq!(w.counts(), counts);
        assert!(w.dom.vcpus[0].ldt_frames.is_empty());
    }

    #[test]
    fn a_changed_descriptor_of_the_ldt_reloads_it() {
        let mut w = world();
        assert_eq!(set_ldt(&mut w, BUF_VA + 0x2000, 16), 0);
        w.reload_gdt = false;
        let update = HYPERVISOR_UPDATE_DESCRIPTOR as u64;
        assert_eq!(w.call_ret(update, [6 * 4096 + 16, DATA, 0, 0, 0]), 0, "a descriptor of a live LDT page");
        assert!(w.reload_gdt);
        assert_eq!(&w.mem.0[6][16..24], &0x00cf_f200_0000_ffffu64.to_le_bytes(), "DPL raised to 3");
        assert_eq!(w.call_ret(update, [6 * 4096 + 16, TSS, 0, 0, 0]), EINVAL, "a system descriptor");
    }
}
