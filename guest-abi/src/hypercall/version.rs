//! Wrappers for `xen_version` (`version.h`).

use zerocopy::{FromZeros, IntoBytes};

use super::{hypercall2, result};
use crate::errno::XenError;
use crate::version::{self as v, CompileInfo, FeatureInfo, PlatformParameters};
use crate::xen::HYPERVISOR_XEN_VERSION;

/// `xen_version(cmd, buf)` for a command that fills `buf`.
fn version_into(cmd: u32, buf: &mut [u8]) -> Result<u64, XenError> {
    // SAFETY: callers pass a buffer of exactly the size `cmd` writes.
    result(unsafe { hypercall2(HYPERVISOR_XEN_VERSION, cmd.into(), buf.as_mut_ptr() as u64) })
}

/// `XENVER_version`: (major, minor).
pub fn xen_version() -> Result<(u16, u16), XenError> {
    // SAFETY: XENVER_version takes no argument.
    let v = result(unsafe { hypercall2(HYPERVISOR_XEN_VERSION, v::XENVER_VERSION.into(), 0) })?;
    Ok(((v >> 16) as u16, v as u16))
}

/// `XENVER_extraversion` (NUL-terminated).
pub fn xen_extraversion() -> Result<[u8; v::XEN_EXTRAVERSION_LEN], XenError> {
    let mut b = [0u8; v::XEN_EXTRAVERSION_LEN];
    version_into(v::XENVER_EXTRAVERSION, &mut b)?;
    Ok(b)
}

/// `XENVER_compile_info`.
pub fn xen_compile_info() -> Result<CompileInfo, XenError> {
    let mut ci = CompileInfo::new_zeroed();
    version_into(v::XENVER_COMPILE_INFO, ci.as_mut_bytes())?;
    Ok(ci)
}

/// `XENVER_capabilities` (NUL-terminated, e.g. `"xen-3.0-x86_64 ..."`).
pub fn xen_capabilities() -> Result<[u8; v::XEN_CAPABILITIES_INFO_LEN], XenError> {
    let mut b = [0u8; v::XEN_CAPABILITIES_INFO_LEN];
    version_into(v::XENVER_CAPABILITIES, &mut b)?;
    Ok(b)
}

/// `XENVER_changeset`.
pub fn xen_changeset() -> Result<[u8; v::XEN_CHANGESET_INFO_LEN], XenError> {
    let mut b = [0u8; v::XEN_CHANGESET_INFO_LEN];
    version_into(v::XENVER_CHANGESET, &mut b)?;
    Ok(b)
}

/// `XENVER_platform_parameters`: the start of the hypervisor hole.
pub fn xen_platform_parameters() -> Result<u64, XenError> {
    let mut p = PlatformParameters::new_zeroed();
    version_into(v::XENVER_PLATFORM_PARAMETERS, p.as_mut_bytes())?;
    Ok(p.virt_start)
}

/// `XENVER_get_features` for submap `index` (`XENFEAT_*` bits).
pub fn get_features(index: u32) -> Result<u32, XenError> {
    let mut fi = FeatureInfo { submap_idx: index, submap: 0 };
    version_into(v::XENVER_GET_FEATURES, fi.as_mut_bytes())?;
    Ok(fi.submap)
}

/// Whether feature `XENFEAT_*` `feature` is offered.
pub fn has_feature(feature: u32) -> Result<bool, XenError> {
    Ok(get_features(feature / 32)? & (1 << (feature % 32)) != 0)
}

/// `XENVER_pagesize`.
pub fn xen_pagesize() -> Result<u64, XenError> {
    // SAFETY: no argument.
    result(unsafe { hypercall2(HYPERVISOR_XEN_VERSION, v::XENVER_PAGESIZE.into(), 0) })
}

/// `XENVER_guest_handle`: the domain's handle (UUID).
pub fn xen_guest_handle() -> Result<[u8; v::XEN_GUEST_HANDLE_LEN], XenError> {
    let mut b = [0u8; v::XEN_GUEST_HANDLE_LEN];
    version_into(v::XENVER_GUEST_HANDLE, &mut b)?;
    Ok(b)
}

/// `XENVER_commandline`: the hypervisor's command line (privileged).
pub fn xen_commandline() -> Result<[u8; v::XEN_COMMANDLINE_LEN], XenError> {
    let mut b = [0u8; v::XEN_COMMANDLINE_LEN];
    version_into(v::XENVER_COMMANDLINE, &mut b)?;
    Ok(b)
}

/// `XENVER_build_id` into `buf` (privileged): the id's length.
pub fn xen_build_id(buf: &mut [u8]) -> Result<usize, XenError> {
    // The argument is a `xen_build_id` header followed by its buffer.
    const HEADER: usize = core::mem::size_of::<v::BuildId>();
    let mut area = [0u8; HEADER + 256];
    let len = buf.len().min(area.len() - HEADER);
    area[..HEADER].copy_from_slice(v::BuildId { len: len as u32 }.as_bytes());
    let n = version_into(v::XENVER_BUILD_ID, &mut area[..HEADER + len])? as usize;
    let n = n.min(len);
    buf[..n].copy_from_slice(&area[HEADER..HEADER + n]);
    Ok(n)
}
