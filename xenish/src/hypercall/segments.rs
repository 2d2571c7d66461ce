//! `set_segment_base`: the guest's FS and GS bases (64-bit PV kernels
//! cannot write the base MSRs themselves).
//!
//! Semantics: Xen's `do_set_segment_base`: canonical bases only; the user
//! GS selector gets RPL 3 and a selector that cannot be loaded becomes null.

use guest_abi::arch_x86::{SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL};
use guest_abi::errno::XenError;

use super::{Ctx, HcResult, Outcome};
use crate::guest_access::is_canonical;

/// `HYPERVISOR_set_segment_base(which, base)`.
pub fn set_segment_base(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [which, base, ..] = args;
    serve(ctx, which as u32, base).into()
}

fn serve(ctx: &mut Ctx, which: u32, base: u64) -> HcResult {
    let seg = match which {
        SEGBASE_FS => Segment::FsBase,
        SEGBASE_GS_USER => Segment::GsUserBase,
        SEGBASE_GS_KERNEL => Segment::GsKernelBase,
        SEGBASE_GS_USER_SEL => {
            let sel = base as u16;
            let sel = if sel & 0xfffc != 0 { sel | 3 } else { sel };
            ctx.platform.set_segment(Segment::GsUserSelector, u64::from(sel));
            return Ok(0);
        }
        _ => return Err(XenError::Einval),
    };
    if !is_canonical(base) {
        return Err(XenError::Einval);
    }
    ctx.platform.set_segment(seg, base);
    Ok(0)
}

/// Which segment state `set_segment_base` changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// FS base.
    FsBase,
    /// The user-mode GS base (the inactive one while in kernel mode).
    GsUserBase,
    /// The kernel-mode GS base.
    GsKernelBase,
    /// The user-mode `%gs` selector.
    GsUserSelector,
}

#[cfg(test)]
mod tests {
    use super::super::tests::World;
    use super::*;
    use guest_abi::xen::HYPERVISOR_SET_SEGMENT_BASE;

    const NR: u64 = HYPERVISOR_SET_SEGMENT_BASE as u64;

    #[test]
    fn bases_must_be_canonical_and_selectors_get_rpl3() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(NR, [SEGBASE_GS_KERNEL as u64, 0xffff_ffff_8304_4000, 0, 0, 0]), 0);
        assert_eq!(w.plat.segments.last(), Some(&(Segment::GsKernelBase, 0xffff_ffff_8304_4000)));
        assert_eq!(w.call_ret(NR, [SEGBASE_FS as u64, 0x0000_8000_0000_0000, 0, 0, 0]), -22);
        assert_eq!(w.call_ret(NR, [SEGBASE_GS_USER_SEL as u64, 0x28, 0, 0, 0]), 0);
        assert_eq!(w.plat.segments.last(), Some(&(Segment::GsUserSelector, 0x2b)));
        assert_eq!(w.call_ret(NR, [SEGBASE_GS_USER_SEL as u64, 0x1_0002, 0, 0, 0]), 0);
        assert_eq!(w.plat.segments.last(), Some(&(Segment::GsUserSelector, 0x2)), "null stays null");
        assert_eq!(w.call_ret(NR, [4, 0, 0, 0, 0]), -22);
    }
}
