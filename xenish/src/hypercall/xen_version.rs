//! `xen_version`: version, build and feature queries. xenish answers as Xen
//! 4.17 does, so guests take the code paths they take on Xen. The build ID
//! (`XENVER_build_id`, privileged as in Xen) is the linker's GNU build-id
//! of the hypervisor image.

use guest_abi::errno::XenError;
use guest_abi::features;
use guest_abi::version::{self as v, CompileInfo, FeatureInfo, PlatformParameters};
use guest_abi::xen::{HYPERVISOR_XEN_VERSION, VMASST_TYPE_PAE_EXTENDED_CR3};
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
        if ctx.is_privileged() {
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

/// The answer of the `xen_version` subops that read nothing and write
/// nothing (`XENVER_version`, `XENVER_pagesize`): what the fast path
/// answers without the rest of the hypercall machinery. `None` for the
/// others.
#[inline]
pub fn constant_answer(cmd: u32) -> Option<i64> {
    match cmd {
        v::XENVER_VERSION => Some(XEN_VERSION),
        v::XENVER_PAGESIZE => Some(4096),
        _ => None,
    }
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    let efault = |_| XenError::Efault;
    if let Some(answer) = constant_answer(cmd) {
        return Ok(answer);
    }
    match cmd {
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
        v::XENVER_GUEST_HANDLE => {
            // The domain handle: the UUID the toolstack gave createdomain
            // (Linux shows it as /sys/hypervisor/uuid); boot-time domains
            // have none, which Xen reports as all zeroes.
            let handle = ctx.domain.handle;
            ctx.guest().write(arg, &handle).map_err(efault)?;
            Ok(0)
        }
        v::XENVER_BUILD_ID => build_id(ctx, arg),
        v::XENVER_COMMANDLINE => {
            ctx.privileged()?;
            let line = fixed_str::<1024>(ctx.platform.cmdline());
            ctx.guest().write(arg, &line).map_err(efault)?;
            Ok(0)
        }
        cmd => Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_XEN_VERSION, Some(cmd.into()))),
    }
}

/// `XENVER_build_id`: with a null argument, the ID's length; else the ID
/// after the `len` field of `struct xen_build_id`, if it fits (`-ENOBUFS`).
fn build_id(ctx: &mut Ctx, arg: u64) -> HcResult {
    ctx.privileged()?;
    let room = if arg != 0 {
        let len: u32 = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
        if len == 0 {
            return Err(XenError::Einval);
        }
        Some(len)
    } else {
        None
    };
    let id: alloc::vec::Vec<u8> = ctx.platform.build_id().to_vec();
    if id.is_empty() {
        return Err(XenError::Enodata);
    }
    let Some(room) = room else { return Ok(id.len() as i64) };
    if id.len() > room as usize {
        return Err(XenError::Enobufs);
    }
    ctx.guest().copy_to(arg.wrapping_add(4), &id).map_err(|_| XenError::Efault)?;
    Ok(id.len() as i64)
}

/// The descriptor of a GNU build-id ELF note (`namesz`, `descsz`, `type`
/// 3 = `NT_GNU_BUILD_ID`, the name "GNU\0", the ID), if `note` is one.
pub fn build_id_of_note(note: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| note.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let (namesz, descsz, kind) = (word(0)? as usize, word(4)? as usize, word(8)?);
    if kind != 3 || note.get(12..12 + namesz)? != b"GNU\0" {
        return None;
    }
    let desc = 12 + namesz.next_multiple_of(4);
    note.get(desc..desc.checked_add(descsz)?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    extern crate std;

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
    fn build_id_is_privileged_and_sized_as_xen() {
        let mut w = World::new(true);
        assert_eq!(call(&mut w, v::XENVER_BUILD_ID, 0), 4, "a null argument: the length");
        w.poke(BUF_VA, &0u32.to_le_bytes());
        assert_eq!(call(&mut w, v::XENVER_BUILD_ID, BUF_VA), -22, "len 0: EINVAL");
        w.poke(BUF_VA, &3u32.to_le_bytes());
        assert_eq!(call(&mut w, v::XENVER_BUILD_ID, BUF_VA), -105, "too small: ENOBUFS");
        w.poke(BUF_VA, &20u32.to_le_bytes());
        assert_eq!(call(&mut w, v::XENVER_BUILD_ID, BUF_VA), 4);
        assert_eq!(w.peek(BUF_VA + 4, 4), [0x5e, 0xed, 0x00, 0x01]);
        w.dom.privileged = false;
        assert_eq!(call(&mut w, v::XENVER_BUILD_ID, BUF_VA), -1, "unprivileged: EPERM");
    }

    #[test]
    fn the_build_id_comes_from_the_gnu_note() {
        let mut note = std::vec::Vec::new();
        for w in [4u32, 3, 3] {
            note.extend_from_slice(&w.to_le_bytes());
        }
        note.extend_from_slice(b"GNU\0\xaa\xbb\xcc\0");
        assert_eq!(build_id_of_note(&note), Some(&[0xaa, 0xbb, 0xcc][..]));
        note[8] = 1;
        assert_eq!(build_id_of_note(&note), None, "another note type");
        assert_eq!(build_id_of_note(&note[..10]), None, "cut short");
        assert_eq!(build_id_of_note(&[]), None);
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
