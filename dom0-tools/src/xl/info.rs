//! `xl info`: the host as Xen's tools describe it, one `key : value`
//! line each, labels padded to 23 columns.
//!
//! Sources: `uname`, `XEN_SYSCTL_physinfo`, `XENMEM_get_sharing_*`,
//! `XEN_SYSCTL_sched_id`, the `XENVER_*` sub-ops.
//! Semantics: Xen 4.17 `tools/xl/xl_info.c print_info` and its helpers.

use guest_abi::version::*;

use super::{Ctx, Status, FAIL, OK};

/// `XENMEM_get_sharing_freed_pages`
const XENMEM_GET_SHARING_FREED_PAGES: u32 = 18;
/// `XENMEM_get_sharing_shared_pages`
const XENMEM_GET_SHARING_SHARED_PAGES: u32 = 19;
/// Pages per MiB.
const PAGES_PER_MIB: u64 = 256;

/// Xen's scheduler names by `XEN_SCHEDULER_*` ID.
fn scheduler_name(id: u32) -> &'static str {
    match id {
        5 => "credit",
        6 => "credit2",
        7 => "arinc653",
        8 => "rtds",
        9 => "null",
        _ => "unknown",
    }
}

/// The `virt_caps` words for physinfo's capability bits.
pub fn virt_caps(caps: u32) -> String {
    let bit = |n: u32| caps & (1 << n) != 0;
    let (hvm, pv, directio) = (bit(0), bit(1), bit(2));
    let words = [
        (pv, " pv"),
        (hvm, " hvm"),
        (hvm && directio, " hvm_directio"),
        (pv && directio, " pv_directio"),
        (bit(3), " hap"),
        (bit(4), " shadow"),
        (bit(5), " iommu_hap_pt_share"),
        (bit(6), " vmtrace"),
        (bit(7), " vpmu"),
        (bit(8), " gnttab-v1"),
        (bit(9), " gnttab-v2"),
    ];
    words.iter().filter(|(on, _)| *on).map(|(_, w)| *w).collect()
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

fn uname() -> [String; 4] {
    let mut u = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the struct it is given; on failure it stays zeroed.
    let u = unsafe {
        libc::uname(u.as_mut_ptr());
        u.assume_init()
    };
    let s = |f: &[libc::c_char]| c_string(&f.iter().map(|&c| c as u8).collect::<Vec<_>>());
    [s(&u.nodename), s(&u.release), s(&u.version), s(&u.machine)]
}

/// `xl info [-n]`.
pub fn main(args: &[String]) -> Status {
    let Ok(ctx) = Ctx::open() else { return FAIL };
    let xc = &ctx.xc;
    let p = match xc.privcmd().physinfo() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("libxl_physinfo failed: {e}");
            return FAIL;
        }
    };
    let mut lines: Vec<(&str, String)> = Vec::new();
    let [host, release, version, machine] = uname();
    lines.extend([("host", host), ("release", release), ("version", version), ("machine", machine)]);
    lines.push(("nr_cpus", p.nr_cpus.to_string()));
    lines.push(("max_cpu_id", p.max_cpu_id.to_string()));
    lines.push(("nr_nodes", p.nr_nodes.to_string()));
    lines.push(("cores_per_socket", p.cores_per_socket.to_string()));
    lines.push(("threads_per_core", p.threads_per_core.to_string()));
    lines.push(("cpu_mhz", format!("{}.{:03}", p.cpu_khz / 1000, p.cpu_khz % 1000)));
    let hw: Vec<String> = p.hw_cap.iter().map(|w| format!("{w:08x}")).collect();
    lines.push(("hw_caps", hw.join(":")));
    lines.push(("virt_caps", virt_caps(p.capabilities).trim_start().to_string()));
    let freed = xc.memory_op_count(XENMEM_GET_SHARING_FREED_PAGES).unwrap_or(0).max(0) as u64;
    let shared = xc.memory_op_count(XENMEM_GET_SHARING_SHARED_PAGES).unwrap_or(0).max(0) as u64;
    lines.push(("total_memory", (p.total_pages / PAGES_PER_MIB).to_string()));
    lines.push(("free_memory", (p.free_pages.saturating_sub(p.outstanding_pages) / PAGES_PER_MIB).to_string()));
    lines.push(("sharing_freed_memory", (freed / PAGES_PER_MIB).to_string()));
    lines.push(("sharing_used_memory", (shared / PAGES_PER_MIB).to_string()));
    lines.push(("outstanding_claims", (p.outstanding_pages / PAGES_PER_MIB).to_string()));
    lines.push(("free_cpus", "0".into()));
    let (major, minor) = xc.privcmd().xen_version().unwrap_or((0, 0));
    let extra = xc.privcmd().xen_extraversion().unwrap_or_default();
    lines.push(("xen_major", major.to_string()));
    lines.push(("xen_minor", minor.to_string()));
    lines.push(("xen_extra", extra.clone()));
    lines.push(("xen_version", format!("{major}.{minor}{extra}")));
    lines.push(("xen_caps", xc.privcmd().xen_capabilities().unwrap_or_default()));
    lines.push(("xen_scheduler", xc.sched_id().map(scheduler_name).unwrap_or("").to_string()));
    let text = |cmd: u32, len: usize| xc.xen_version_raw(cmd, len).map(|(_, b)| c_string(&b)).unwrap_or_default();
    lines
        .push(("xen_pagesize", xc.xen_version_raw(XENVER_PAGESIZE, 8).map(|(r, _)| r.to_string()).unwrap_or_default()));
    let virt_start = xc.xen_version_raw(XENVER_PLATFORM_PARAMETERS, 8).ok().and_then(|(_, b)| b.try_into().ok());
    lines.push(("platform_params", format!("virt_start={:#x}", virt_start.map_or(0, u64::from_le_bytes))));
    lines.push(("xen_changeset", text(XENVER_CHANGESET, 64)));
    lines.push(("xen_commandline", text(XENVER_COMMANDLINE, 1024)));
    let compile = xc.xen_version_raw(XENVER_COMPILE_INFO, 144).map(|(_, b)| b).unwrap_or_default();
    let field = |a: usize, b: usize| c_string(compile.get(a..b).unwrap_or_default());
    lines.push(("cc_compiler", field(0, 64)));
    lines.push(("cc_compile_by", field(64, 80)));
    lines.push(("cc_compile_domain", field(80, 112)));
    lines.push(("cc_compile_date", field(112, 144)));
    lines.push(("build_id", String::new()));
    lines.push(("xend_config_format", "4".into()));
    let only = args.iter().find(|a| !a.starts_with('-'));
    for (key, value) in lines {
        if only.is_none_or(|o| o == key) {
            println!("{key:<23}: {value}");
        }
    }
    OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virt_caps_read_as_xl_prints_them() {
        assert_eq!(virt_caps(1 << 1 | 1 << 8), " pv gnttab-v1");
        assert_eq!(virt_caps(0b11_0001_1111), " pv hvm hvm_directio pv_directio hap shadow gnttab-v1 gnttab-v2");
        assert_eq!(scheduler_name(6), "credit2");
    }
}
