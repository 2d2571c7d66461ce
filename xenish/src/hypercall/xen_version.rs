//! `xen_version`: version, build and feature queries. xenish answers as Xen
//! 4.17 does, so guests take the code paths they take on Xen.

use guest_abi::errno::XenError;
use guest_abi::features;
use guest_abi::version::{self as v, CompileInfo, FeatureInfo, PlatformParameters};
use guest_abi::xen::VMASST_TYPE_PAE_EXTENDED_CR3;
use zerocopy::FromZeros;

use super::{Ctx, HcResult, Outcome};
use crate::guest_access::HYPERVISOR_VIRT_START;

/// `XENVER_version`: major in the high half, minor in the low half.
pub const XEN_VERSION: i64 = (4 << 16) | 17;
/// `XENVER_extraversion`.
pub const EXTRAVERSION: &str = ".0-xenish";
/// `XENVER_capabilities`: 64-bit PV only.
pub const CAPABILITIES: &str = "xen-3.0-x86_64";
/// Features every 64-bit PV guest sees (Xen 4.17 `XENVER_get_features`,
/// submap 0): mmu_pt_update_preserve_ad, highmem_assist,
/// gnttab_map_avail_bits, memory_op_vnode_supported, direct_mapped.
const PV_BASE_FEATURES: u32 = (1 << features::XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
    | (1 << features::XENFEAT_HIGHMEM_ASSIST)
    | (1 << features::XENFEAT_GNTTAB_MAP_AVAIL_BITS)
    | (1 << features::XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
    | (1 << features::XENFEAT_DIRECT_MAPPED);

fn fixed_str<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The feature submap `idx` for the calling domain.
fn feature_submap(ctx: &Ctx, idx: u32) -> Option<u32> {
    (idx == 0).then(|| {
        let mut map = PV_BASE_FEATURES;
        if ctx.domain.vm_assist & (1 << VMASST_TYPE_PAE_EXTENDED_CR3) != 0 {
            map |= 1 << features::XENFEAT_PAE_PGDIR_ABOVE_4GB;
        }
        if ctx.domain.privileged {
            map |= 1 << features::XENFEAT_DOM0;
        }
        map
    })
}

/// `HYPERVISOR_xen_version(cmd, arg)`.
pub fn xen_version(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    serve(ctx, cmd as u32, arg).into()
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    let efault = |_| XenError::Efault;
    match cmd {
        v::XENVER_VERSION => Ok(XEN_VERSION),
        v::XENVER_EXTRAVERSION => {
            ctx.guest().write(arg, &fixed_str::<16>(EXTRAVERSION)).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_COMPILE_INFO => {
            let mut info = CompileInfo::new_zeroed();
            info.compiler = fixed_str("rustc");
            info.compile_by = fixed_str("xenish");
            info.compile_domain = fixed_str("xenish.invalid");
            info.compile_date = fixed_str(env!("CARGO_PKG_VERSION"));
            ctx.guest().write(arg, &info).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_CAPABILITIES => {
            ctx.guest().write(arg, &fixed_str::<1024>(CAPABILITIES)).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_CHANGESET => {
            ctx.guest().write(arg, &fixed_str::<64>(concat!("xenish ", env!("CARGO_PKG_VERSION")))).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_PLATFORM_PARAMETERS => {
            let params = PlatformParameters { virt_start: HYPERVISOR_VIRT_START };
            ctx.guest().write(arg, &params).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_GET_FEATURES => {
            let mut fi: FeatureInfo = ctx.guest().read(arg).map_err(efault)?;
            fi.submap = feature_submap(ctx, fi.submap_idx).ok_or(XenError::Einval)?;
            ctx.guest().write(arg, &fi).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_PAGESIZE => Ok(4096),
        v::XENVER_GUEST_HANDLE => {
            // The domain handle: the UUID the toolstack gave createdomain
            // (Linux shows it as /sys/hypervisor/uuid); boot-time domains
            // have none, which Xen reports as all zeroes.
            let handle = ctx.domain.handle;
            ctx.guest().write(arg, &handle).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_COMMANDLINE => {
            if !ctx.domain.privileged {
                return Err(XenError::Eperm);
            }
            let line = fixed_str::<1024>(ctx.platform.cmdline());
            ctx.guest().write(arg, &line).map_err(efault)?;
            Ok(0)
        }
        _ => Err(XenError::Enosys),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::HYPERVISOR_XEN_VERSION;

    const NR: u64 = HYPERVISOR_XEN_VERSION as u64;

    fn call(w: &mut World, cmd: u32, arg: u64) -> i64 {
        w.call_ret(NR, [cmd as u64, arg, 0, 0, 0])
    }

    #[test]
    fn version_and_strings() {
        let mut w = World::new(true);
        assert_eq!(call(&mut w, v::XENVER_VERSION, 0), 0x0004_0011);
        assert_eq!(call(&mut w, v::XENVER_EXTRAVERSION, BUF_VA), 0);
        assert_eq!(&w.peek(BUF_VA, 10), b".0-xenish\0");
        assert_eq!(call(&mut w, v::XENVER_CAPABILITIES, BUF_VA), 0);
        assert_eq!(&w.peek(BUF_VA, 15), b"xen-3.0-x86_64\0");
        assert_eq!(call(&mut w, v::XENVER_PAGESIZE, 0), 4096);
        assert_eq!(call(&mut w, v::XENVER_PLATFORM_PARAMETERS, BUF_VA), 0);
        assert_eq!(w.peek(BUF_VA, 8), 0xffff_8000_0000_0000u64.to_le_bytes());
        assert_eq!(call(&mut w, v::XENVER_CHANGESET, BUF_VA), 0);
        assert_eq!(call(&mut w, v::XENVER_COMPILE_INFO, BUF_VA), 0);
        assert_eq!(&w.peek(BUF_VA, 6), b"rustc\0");
        w.dom.handle = *b"0123456789abcdef";
        assert_eq!(call(&mut w, v::XENVER_GUEST_HANDLE, BUF_VA), 0);
        assert_eq!(&w.peek(BUF_VA, 16), b"0123456789abcdef", "the toolstack's UUID");
        assert_eq!(call(&mut w, 99, BUF_VA), -38);
    }

    #[test]
    fn features_follow_xen_and_vm_assist() {
        let mut w = World::new(false);
        w.poke(BUF_VA, &[0u8; 8]);
        assert_eq!(call(&mut w, v::XENVER_GET_FEATURES, BUF_VA), 0);
        assert_eq!(w.peek(BUF_VA + 4, 4), 0x220e0u32.to_le_bytes());
        w.dom.vm_assist |= 1 << VMASST_TYPE_PAE_EXTENDED_CR3;
        w.dom.privileged = true;
        assert_eq!(call(&mut w, v::XENVER_GET_FEATURES, BUF_VA), 0);
        assert_eq!(w.peek(BUF_VA + 4, 4), (0x220e0u32 | 1 << 4 | 1 << 11).to_le_bytes());
        w.poke(BUF_VA, &1u32.to_le_bytes());
        assert_eq!(call(&mut w, v::XENVER_GET_FEATURES, BUF_VA), -22);
    }

    #[test]
    fn bad_pointers_fault_and_commandline_is_privileged() {
        let mut w = World::new(false);
        for cmd in [1, 2, 3, 4, 5, 6, 8] {
            assert_eq!(call(&mut w, cmd, 0xffff_8100_0000_0000), -14, "cmd {cmd}");
        }
        assert_eq!(call(&mut w, v::XENVER_COMMANDLINE, BUF_VA), -1);
        w.dom.privileged = true;
        assert_eq!(call(&mut w, v::XENVER_COMMANDLINE, BUF_VA), 0);
        assert_eq!(&w.peek(BUF_VA, 13), b"dom0_mem=64M\0");
    }
}
