//! `set_gdt` and `update_descriptor`: a PV guest's own descriptor table.
//!
//! Semantics and errnos: Xen 4.17 `xen/arch/x86/pv/descriptor-tables.c`.
//! `set_gdt` takes up to 14 frames (7168 entries) of the guest's own
//! memory, each of which must hold only descriptors a 64-bit PV guest may
//! have ([`crate::descriptors`]); `update_descriptor` writes one checked
//! descriptor at a machine address in the guest's memory. As in Xen, each
//! frame takes the `seg_desc` page type, so a frame the guest still maps
//! writable is refused (`-EINVAL`) and a descriptor frame cannot be mapped
//! writable later. Xen maps the frames themselves as the GDT; xenish loads
//! a checked copy into the CPU's GDT whenever the vCPU runs or its table
//! changes.

use alloc::vec::Vec;

use guest_abi::errno::XenError;

use super::{Ctx, HcResult, Outcome};
use crate::descriptors::{self, MAX_ENTRIES, PER_FRAME};
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{Mfn, PAGE_SIZE};

/// `HYPERVISOR_set_gdt(frame_list, entries)`.
pub fn set_gdt(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [frame_list, entries, ..] = args;
    serve_set_gdt(ctx, frame_list, entries as u32 as usize).into()
}

fn serve_set_gdt(ctx: &mut Ctx, frame_list: u64, entries: usize) -> HcResult {
    if entries > MAX_ENTRIES {
        return Err(XenError::Einval);
    }
    let nr_frames = entries.div_ceil(PER_FRAME);
    let mut frames = Vec::with_capacity(nr_frames);
    for i in 0..nr_frames {
        let va = frame_list.checked_add(i as u64 * 8).ok_or(XenError::Efault)?;
        let mfn: u64 = ctx.guest().read(va).map_err(|_| XenError::Efault)?;
        frames.push(Mfn(mfn));
    }
    if ctx.domain.vcpus.get(ctx.vcpu).is_none() {
        return Err(XenError::Einval);
    }
    let rights = MapRights::of(ctx.domain);
    let mut mmu = Mmu { ft: ctx.ft, mem: ctx.mem };
    for (i, &mfn) in frames.iter().enumerate() {
        let valid = mmu.mem.frame(mfn).is_some_and(descriptors::frame_ok);
        if !valid || mmu.get_page_and_type(mfn, &rights, PageType::SegDesc).is_err() {
            for &taken in &frames[..i] {
                mmu.put_page_and_type(taken);
            }
            return Err(XenError::Einval);
        }
    }
    let old = match ctx.domain.vcpus.get_mut(ctx.vcpu) {
        Some(v) => core::mem::replace(&mut v.gdt_frames, frames),
        None => Vec::new(),
    };
    for mfn in old {
        mmu.put_page_and_type(mfn);
    }
    ctx.reload_gdt = true;
    Ok(0)
}

/// `HYPERVISOR_update_descriptor(ma, desc)`.
pub fn update_descriptor(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [ma, desc, ..] = args;
    serve_update_descriptor(ctx, ma, desc).into()
}

fn serve_update_descriptor(ctx: &mut Ctx, ma: u64, desc: u64) -> HcResult {
    if !ma.is_multiple_of(8) {
        return Err(XenError::Einval);
    }
    let desc = descriptors::check(desc).ok_or(XenError::Einval)?;
    let mfn = Mfn::containing(ma);
    // A descriptor page stays one; any other frame must be writable-typable
    // (not a page table) for the write, as in Xen.
    let ty = match ctx.ft.page_type(mfn) {
        PageType::SegDesc => PageType::SegDesc,
        _ => PageType::Writable,
    };
    let rights = MapRights::of(ctx.domain);
    let mut mmu = Mmu { ft: ctx.ft, mem: ctx.mem };
    mmu.get_page_and_type(mfn, &rights, ty).map_err(|_| XenError::Einval)?;
    let off = (ma % PAGE_SIZE as u64) as usize;
    if let Some(bytes) = mmu.mem.frame_mut(mfn) {
        bytes[off..off + 8].copy_from_slice(&desc.to_le_bytes());
    }
    mmu.put_page_and_type(mfn);
    let live = |v: &crate::domain::Vcpu| v.gdt_frames.contains(&mfn) || v.ldt_frames.contains(&Some(mfn));
    if ctx.domain.vcpus.get(ctx.vcpu).is_some_and(live) {
        ctx.reload_gdt = true;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::{HYPERVISOR_SET_GDT, HYPERVISOR_UPDATE_DESCRIPTOR};

    const SET_GDT: u64 = HYPERVISOR_SET_GDT as u64;
    const UPDATE: u64 = HYPERVISOR_UPDATE_DESCRIPTOR as u64;
    const CODE64: u64 = 0x00af_9a00_0000_ffff;
    const TSS: u64 = 0x0000_8900_0000_0067;

    fn frame_list(w: &mut World, mfns: &[u64]) {
        let bytes: Vec<u8> = mfns.iter().flat_map(|m| m.to_le_bytes()).collect();
        w.poke(BUF_VA, &bytes);
    }

    /// Unmaps the caller's frame 7 (mapped at BUF_VA + 0x3000), so that it
    /// and frame 9 are its own frames with no writable mapping.
    fn unmap_frame_7(w: &mut World) {
        let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
        assert_eq!(w.call_ret(uvm, [BUF_VA + 0x3000, 0, 0, 0, 0]), 0);
    }

    #[test]
    fn set_gdt_takes_own_unmapped_frames_of_valid_descriptors() {
        let mut w = World::new(false);
        unmap_frame_7(&mut w);
        w.mem.0[9][8..16].copy_from_slice(&CODE64.to_le_bytes());
        frame_list(&mut w, &[9, 7]);
        assert_eq!(w.call_ret(SET_GDT, [BUF_VA, 600, 0, 0, 0]), 0);
        assert_eq!(w.dom.vcpus[0].gdt_frames, [Mfn(9), Mfn(7)]);
        assert!(w.reload_gdt, "the CPU's copy must be reloaded");
        assert_eq!(w.ft.page_type(Mfn(9)), PageType::SegDesc);
        let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
        assert_eq!(w.call_ret(uvm, [BUF_VA + 0x3000, (7 << 12) | 0x67, 0, 0, 0]), -16, "a GDT frame writable: EBUSY");
        assert_eq!(w.call_ret(uvm, [BUF_VA + 0x3000, (7 << 12) | 0x25, 0, 0, 0]), 0, "read-only is fine");
        assert_eq!(w.call_ret(SET_GDT, [BUF_VA, 0, 0, 0, 0]), 0, "no GDT");
        assert!(w.dom.vcpus[0].gdt_frames.is_empty());
        assert_eq!(w.ft.page_type(Mfn(9)), PageType::None, "the descriptor type is gone with the last user");
    }

    #[test]
    fn set_gdt_refuses_what_xen_refuses() {
        let mut w = World::new(false);
        w.mem.0[9][16..24].copy_from_slice(&TSS.to_le_bytes());
        let einval = -22;
        for (mfns, what) in [
            (&[99u64][..], "a frame it does not own"),
            (&[2], "one of its page tables"),
            (&[5], "a frame it maps writable"),
            (&[9], "a frame holding a TSS descriptor"),
        ] {
            frame_list(&mut w, mfns);
            assert_eq!(w.call_ret(SET_GDT, [BUF_VA, 1, 0, 0, 0]), einval, "{what}");
        }
        assert_eq!(w.call_ret(SET_GDT, [BUF_VA, MAX_ENTRIES as u64 + 1, 0, 0, 0]), einval, "too many entries");
        assert_eq!(w.call_ret(SET_GDT, [0x10, 1, 0, 0, 0]), -14, "unreadable frame list");
        assert!(w.dom.vcpus[0].gdt_frames.is_empty() && !w.reload_gdt);
        assert_eq!(w.ft.page_type(Mfn(9)), PageType::None, "nothing held after a refusal");
    }

    #[test]
    fn update_descriptor_checks_and_writes() {
        let mut w = World::new(false);
        let ma = 5 * 4096 + 16;
        assert_eq!(w.call_ret(UPDATE, [ma, CODE64, 0, 0, 0]), 0, "a writable frame of its own");
        assert_eq!(&w.mem.0[5][16..24], &0x00af_fa00_0000_ffffu64.to_le_bytes(), "DPL raised to 3");
        assert!(!w.reload_gdt, "not in use as a GDT");
        frame_list(&mut w, &[9]);
        assert_eq!(w.call_ret(SET_GDT, [BUF_VA, 16, 0, 0, 0]), 0);
        w.reload_gdt = false;
        assert_eq!(w.call_ret(UPDATE, [9 * 4096 + 8, CODE64, 0, 0, 0]), 0, "its live GDT");
        assert!(w.reload_gdt, "an entry of the live GDT changed");
        let before = w.mem.0[5];
        for (ma, desc, what) in [
            (ma + 4, CODE64, "misaligned"),
            (ma, TSS, "a system descriptor"),
            (99 * 4096, CODE64, "a frame it does not own"),
            (2 * 4096, CODE64, "a page table"),
        ] {
            assert_eq!(w.call_ret(UPDATE, [ma, desc, 0, 0, 0]), -22, "{what}");
        }
        assert_eq!(w.mem.0[5], before);
    }
}
