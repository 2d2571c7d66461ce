//! `set_segment_base`: the guest's FS and GS bases (64-bit PV kernels
//! cannot write the base MSRs themselves).
//!
//! Semantics: Xen's `do_set_segment_base`: canonical bases only; the user
//! GS selector gets RPL 3 and a selector that cannot be loaded becomes null.

use guest_abi::arch_x86::{SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL};
use guest_abi::errno::XenError;

use super::{Ctx, HcResult, Outcome};
use crate::guest_access::is_canonical;
use crate::traps::{MSR_FS_BASE, MSR_GS_BASE, MSR_SHADOW_GS_BASE};

/// `HYPERVISOR_set_segment_base(which, base)`.
pub fn set_segment_base(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [which, base, ..] = args;
    serve(ctx, which as u32, base).into()
}

fn serve(ctx: &mut Ctx, which: u32, base: u64) -> HcResult {
    match Segment::named(which) {
        Some(Segment::GsUserSelector) => {
            let sel = base as u16;
            let sel = if sel & 0xfffc != 0 { sel | 3 } else { sel };
            ctx.platform.set_segment(Segment::GsUserSelector, u64::from(sel));
            Ok(0)
        }
        Some(seg) if is_canonical(base) => {
            ctx.platform.set_segment(seg, base);
            Ok(0)
        }
        _ => Err(XenError::Einval),
    }
}

/// The base MSR `set_segment_base(which, base)` from guest kernel mode
/// writes `base` to, if `which` names a base (not the selector) and
/// `base` is canonical: what the fast path ([`crate::system::System::fast_syscall`])
/// serves with one `wrmsr`, as the arch layer's `Platform::set_segment`
/// does for the slow path. Anything else (the selector, which needs a
/// segment load, an error) is left to [`set_segment_base`].
#[inline(always)]
pub fn base_msr(which: u32, base: u64) -> Option<u32> {
    Segment::named(which)?.msr().filter(|_| is_canonical(base))
}

impl Segment {
    /// The segment state `set_segment_base`'s `which` names, if any.
    #[inline(always)]
    pub fn named(which: u32) -> Option<Segment> {
        match which {
            SEGBASE_FS => Some(Segment::FsBase),
            SEGBASE_GS_USER => Some(Segment::GsUserBase),
            SEGBASE_GS_KERNEL => Some(Segment::GsKernelBase),
            SEGBASE_GS_USER_SEL => Some(Segment::GsUserSelector),
            _ => None,
        }
    }

    /// The MSR that holds this base while the vCPU runs in guest kernel
    /// mode (`None` for the selector).
    #[inline(always)]
    pub fn msr(self) -> Option<u32> {
        match self {
            Segment::FsBase => Some(MSR_FS_BASE),
            // In guest kernel mode the kernel's GS base is the active one.
            Segment::GsKernelBase => Some(MSR_GS_BASE),
            Segment::GsUserBase => Some(MSR_SHADOW_GS_BASE),
            Segment::GsUserSelector => None,
        }
    }
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

    /// The fast path's answer ([`base_msr`]) is the slow path's write, for
    /// every `which` and for canonical and other bases alike.
    #[test]
    fn the_fast_paths_msr_is_the_slow_paths_segment() {
        for which in 0..6u32 {
            for base in [0, 0x7fff_ffff_f000, 0x0000_8000_0000_0000, 0xffff_8000_0000_0000, u64::MAX] {
                let mut w = World::new(false);
                let ret = w.call_ret(NR, [u64::from(which), base, 0, 0, 0]);
                let slow = w.plat.segments.last().and_then(|&(seg, v)| Some((seg.msr()?, v)));
                match base_msr(which, base) {
                    Some(msr) => assert_eq!((ret, slow), (0, Some((msr, base))), "which {which} base {base:#x}"),
                    None => assert!(
                        ret != 0 || which == SEGBASE_GS_USER_SEL,
                        "which {which} base {base:#x}: the slow path wrote a base the fast path declines"
                    ),
                }
            }
        }
    }
}
