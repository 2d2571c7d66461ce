//! Building a PV domU, step by step as `xl create` does, and undoing a
//! half-built one.
//!
//! Order (libxl `libxl__domain_make`, `libxl__build_pre`, libxc
//! `xc_dom_*`, `libxl__build_post`): read and check the kernel and lay the
//! domain out (before anything exists, so a bad kernel leaves nothing);
//! check free memory; `createdomain` (born paused) → `max_vcpus` →
//! `max_mem` (target + 1 MiB) → the E820 map up to `maxmem`
//! (`set_memory_map`) → two `alloc_unbound` ports (xenstore, then
//! console, remote dom0) → `populate_physmap` → write the image through
//! foreign maps → `hypercall_init` if the kernel has a HYPERCALL_PAGE →
//! shared_info reset → pin the L4 (`foreigndom`) → `setvcpucontext` →
//! seed grant entries 0 (console) and 1 (xenstore) → the XenStore tree →
//! `XS_INTRODUCE`. Any failure destroys the domain and removes its
//! XenStore entries before the error is returned. Unpausing is the
//! caller's (`xl create -p` leaves it paused).

use std::io;

use guest_abi::arch_x86::{VcpuGuestContext, FLAT_KERNEL_CS64, VGCF_IN_KERNEL, VGCF_ONLINE};
use guest_abi::domctl::XenDomctl;
use guest_abi::grant_table::{GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GTF_PERMIT_ACCESS};
use pv_layout::{compute, Layout, LayoutInput, PAGE_SIZE};
use zerocopy::FromZeros;

use super::image::Image;
use super::kernel::Kernel;
use super::start_info::{start_info, StartInfoArgs};
use super::xc::Xc;
use super::xs_tree::{self, DomainEntries};
use super::BuildError;
use crate::xs_client::XsClient;

/// `XEN_DOMCTL_hypercall_init` (not in guest-abi's domctl set).
const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// `FLAT_KERNEL_SS64`.
const FLAT_KERNEL_SS64: u16 = 0xe02b;
/// libxl's `LIBXL_MAXMEM_CONSTANT`: KiB of slack over the target.
const MAXMEM_SLACK_KB: u64 = 1024;
/// Legacy vcpu_info slots in shared_info, 64 bytes each.
const LEGACY_VCPUS: usize = 32;

/// What to build.
#[derive(Clone, Debug)]
pub struct DomainSpec<'a> {
    /// The domain's name.
    pub name: &'a str,
    /// Its UUID.
    pub uuid: [u8; 16],
    /// The kernel's path.
    pub kernel_path: &'a str,
    /// The ramdisk's path, if any.
    pub ramdisk_path: Option<&'a str>,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Memory it starts with, KiB (`memory`).
    pub target_memkb: u64,
    /// Its maximum, KiB (`maxmem`).
    pub max_memkb: u64,
    /// vCPUs online at start.
    pub vcpus: u32,
    /// vCPUs it may have.
    pub max_vcpus: u32,
    /// The xenstore domain (0).
    pub store_domid: u16,
    /// The console backend domain (0).
    pub console_domid: u16,
}

/// A built, paused, introduced domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltDomain {
    /// Its ID.
    pub domid: u16,
    /// The xenstore page's MFN and port.
    pub store: (u64, u32),
    /// The console ring's MFN and port.
    pub console: (u64, u32),
}

/// The UUID's text form.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn read_file(what: &'static str, path: &str) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|err| BuildError::File { what, path: path.into(), err })
}

/// Checks the kernel and lays the domain out, before anything is created.
fn plan<'k>(spec: &DomainSpec, kernel: &'k Kernel<'k>, ramdisk_len: Option<u64>) -> Result<Layout, BuildError> {
    let n = &kernel.notes;
    // libxc maps the p2m at INIT_P2M only below the kernel and page-aligned.
    let p2m_base = n.init_p2m.filter(|&b| b < n.virt_base() && b.is_multiple_of(PAGE_SIZE));
    let layout = compute(&LayoutInput {
        virt_base: n.virt_base(),
        virt_kstart: kernel.virt_kstart,
        virt_kend: kernel.virt_kend,
        nr_pages: spec.target_memkb / 4,
        initrd_len: ramdisk_len,
        initrd_unmapped: n.mod_start_pfn,
        p2m_base,
        store: true,
        console: true,
    })?;
    pv_layout::check_addresses(&layout)?;
    if let Some(hp) = n.hypercall_page {
        if hp < layout.virt_base || hp >= layout.va(layout.mapped_pages) || !hp.is_multiple_of(PAGE_SIZE) {
            return Err(BuildError::Kernel {
                path: spec.kernel_path.into(),
                err: super::KernelError::BadElf("HYPERCALL_PAGE outside the initial mapping"),
            });
        }
    }
    Ok(layout)
}

/// Builds the domain `spec` describes: paused, in the store, introduced.
pub fn build(xc: &Xc, xs: &mut XsClient, spec: &DomainSpec) -> Result<BuiltDomain, BuildError> {
    let image = read_file("kernel", spec.kernel_path)?;
    let ramdisk = spec.ramdisk_path.map(|p| read_file("ramdisk", p)).transpose()?;
    let kernel = Kernel::parse(&image).map_err(|err| BuildError::Kernel { path: spec.kernel_path.into(), err })?;
    let layout = plan(spec, &kernel, ramdisk.as_ref().map(|r| r.len() as u64))?;
    let free_kb = xc.privcmd().physinfo()?.free_pages * 4;
    if spec.target_memkb > free_kb {
        return Err(BuildError::NotEnoughMemory { need_kb: spec.target_memkb, free_kb });
    }
    let domid = xc.create_domain(spec.uuid, spec.max_vcpus)?;
    super::trace(|| {
        format!(
            "domain {domid}: {} pages, kernel at pfn {:#x}, start_info {:#x}, page tables {:#x}+{}, {} pages used",
            spec.target_memkb / 4,
            layout.kernel_pfn,
            layout.start_info_pfn,
            layout.pt_pfn,
            layout.nr_pt_frames(),
            layout.used_pages
        )
    });
    match populate(xc, xs, spec, domid, &kernel, ramdisk.as_deref(), &layout) {
        Ok(built) => Ok(built),
        Err(e) => {
            undo(xc, xs, domid);
            Err(e)
        }
    }
}

/// Destroys a half-built domain and removes its store entries.
pub fn undo(xc: &Xc, xs: &mut XsClient, domid: u16) {
    let _ = xs_tree::remove(xs, domid);
    let _ = xc.destroy(domid);
}

/// Everything after `createdomain`.
fn populate(
    xc: &Xc,
    xs: &mut XsClient,
    spec: &DomainSpec,
    domid: u16,
    kernel: &Kernel,
    ramdisk: Option<&[u8]>,
    l: &Layout,
) -> Result<BuiltDomain, BuildError> {
    xc.max_vcpus(domid, spec.max_vcpus)?;
    xc.max_mem(domid, spec.target_memkb + MAXMEM_SLACK_KB)?;
    // libxl's `libxl__arch_domain_create`: the E820 map spans `maxmem`
    // (PV slack 0), so the guest can balloon up to it later.
    xc.set_memmap_limit(domid, spec.max_memkb)?;
    let store_port = xc.alloc_unbound(domid, spec.store_domid)?;
    let console_port = xc.alloc_unbound(domid, spec.console_domid)?;
    let nr_pages = spec.target_memkb / 4;
    let pfns: Vec<u64> = (0..nr_pages).collect();
    let mfns = xc.populate_physmap(domid, &pfns)?;
    let mfn = |pfn: Option<u64>| {
        pfn.and_then(|p| usize::try_from(p).ok())
            .and_then(|p| mfns.get(p))
            .copied()
            .ok_or(BuildError::Layout(pv_layout::LayoutError::TooSmall { needed_pages: l.used_pages, nr_pages }))
    };
    let (store_mfn, console_mfn) = (mfn(l.store_pfn)?, mfn(l.console_pfn)?);
    let info = xc.domain_info(domid)?.ok_or_else(|| io::Error::other(format!("domain {domid} vanished")))?;

    let si = start_info(
        l,
        &StartInfoArgs {
            nr_pages,
            shared_info_maddr: info.shared_info_frame << 12,
            store: (store_mfn, store_port),
            console: (console_mfn, console_port),
            initrd_len: ramdisk.map_or(0, |r| r.len() as u64),
            cmdline: spec.cmdline.as_bytes(),
            pae: kernel.notes.pae,
        },
    );
    super::trace(|| format!("domain {domid}: memory populated; store port {store_port}, console port {console_port}"));
    Image::new(l, kernel, ramdisk, &mfns, &si)?.write(xc, domid)?;
    super::trace(|| format!("domain {domid}: image written through foreign maps"));
    if let Some(hp) = kernel.notes.hypercall_page {
        let gmfn = mfn(Some((hp - l.virt_base) / PAGE_SIZE))?;
        let mut d = XenDomctl::new(XEN_DOMCTL_HYPERCALL_INIT, domid);
        d.u[0] = gmfn;
        xc.privcmd().domctl(&mut d)?;
    }
    reset_shared_info(xc, domid, info.shared_info_frame)?;
    let l4_mfn = mfn(Some(l.pt_pfn))?;
    xc.pin_l4(domid, l4_mfn)?;
    super::trace(|| format!("domain {domid}: L4 {l4_mfn:#x} pinned"));
    xc.set_vcpu_context(domid, 0, &vcpu_context(kernel.entry, l, l4_mfn))?;
    seed_grants(xc, domid, (spec.console_domid, console_mfn), (spec.store_domid, store_mfn))?;

    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let uuid = uuid_string(&spec.uuid);
    let entries = DomainEntries {
        domid,
        name: spec.name,
        uuid: &uuid,
        max_memkb: spec.max_memkb,
        target_memkb: spec.target_memkb,
        vcpus: spec.vcpus,
        max_vcpus: spec.max_vcpus,
        store: (store_mfn, store_port),
        console: (console_mfn, console_port),
        console_domid: spec.console_domid,
        image: (spec.kernel_path, spec.ramdisk_path.unwrap_or(""), spec.cmdline),
        start_time: format!("{}.{:02}", start.as_secs(), start.subsec_millis() / 10),
    };
    xs_tree::write(xs, &entries).map_err(|e| BuildError::Store(e.to_string()))?;
    xs.introduce(domid, store_mfn, store_port).map_err(|e| BuildError::Store(format!("INTRODUCE: {e}")))?;
    super::trace(|| format!("domain {domid}: XenStore entries written, introduced"));
    Ok(BuiltDomain { domid, store: (store_mfn, store_port), console: (console_mfn, console_port) })
}

/// Zeroes shared_info with every legacy vCPU's events masked, as libxc's
/// `shared_info_x86_64` does.
fn reset_shared_info(xc: &Xc, domid: u16, frame: u64) -> io::Result<()> {
    let map = xc.map_foreign(domid, &[frame])?;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    for vcpu in page.chunks_exact_mut(64).take(LEGACY_VCPUS) {
        vcpu[1] = 1; // evtchn_upcall_mask
    }
    map.write_bytes(0, &page);
    Ok(())
}

/// vCPU 0 at the kernel's entry, as libxc's `vcpu_x86_64`.
fn vcpu_context(entry: u64, l: &Layout, l4_mfn: u64) -> VcpuGuestContext {
    let mut g = VcpuGuestContext::new_zeroed();
    g.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    let r = &mut g.user_regs;
    (r.rip, r.rsp, r.rsi, r.rflags) = (entry, l.stack_top(), l.va(l.start_info_pfn), 1 << 9);
    (r.cs, r.ss) = (FLAT_KERNEL_CS64, FLAT_KERNEL_SS64);
    (g.kernel_ss, g.kernel_sp) = (FLAT_KERNEL_SS64.into(), l.stack_top());
    g.ctrlreg[3] = l4_mfn << 12;
    g
}

/// The domain's first grant-table frame: `XENMEM_acquire_resource`, or
/// (on `EOPNOTSUPP`/`ENOSYS`) `GNTTABOP_setup_table`.
fn grant_frame(xc: &Xc, domid: u16) -> io::Result<u64> {
    match xc.acquire_grant_frame(domid) {
        Err(e) if matches!(xendev::errno(&e), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {
            super::trace(|| format!("domain {domid}: {e}; falling back to GNTTABOP_setup_table"));
            let frame = xc.gnttab_setup_table(domid)?;
            super::trace(|| format!("domain {domid}: grant frame {frame:#x} from GNTTABOP_setup_table"));
            Ok(frame)
        }
        r => {
            if let Ok(frame) = &r {
                super::trace(|| format!("domain {domid}: grant frame {frame:#x} from XENMEM_acquire_resource"));
            }
            r
        }
    }
}

/// Seeds grant entries 0 (console) and 1 (xenstore), as
/// `xc_dom_gnttab_seed`: `{GTF_permit_access, backend, mfn}`, skipped if
/// the backend is the domain itself.
fn seed_grants(xc: &Xc, domid: u16, console: (u16, u64), store: (u16, u64)) -> io::Result<()> {
    let frame = grant_frame(xc, domid)?;
    let map = xc.map_foreign(domid, &[frame])?;
    for (gref, (backend, mfn)) in [(GNTTAB_RESERVED_CONSOLE, console), (GNTTAB_RESERVED_XENSTORE, store)] {
        if backend == domid {
            continue;
        }
        let frame =
            u32::try_from(mfn).map_err(|_| io::Error::other(format!("mfn {mfn:#x} does not fit a v1 grant")))?;
        let at = gref as usize * 8;
        // grant_entry_v1 {u16 flags; u16 domid; u32 frame}: flags last.
        map.write_bytes(at + 2, &backend.to_le_bytes());
        map.write_bytes(at + 4, &frame.to_le_bytes());
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        map.write_bytes(at, &(GTF_PERMIT_ACCESS as u16).to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_as_libxl_prints_them() {
        let u = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        assert_eq!(uuid_string(&u), "12345678-9abc-4def-8123-456789abcdef");
    }

    #[test]
    fn the_vcpu_starts_at_the_entry_with_start_info_in_rsi() {
        let l = compute(&LayoutInput {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kstart: 0xffff_ffff_8010_0000,
            virt_kend: 0xffff_ffff_8012_0000,
            nr_pages: 4096,
            initrd_len: None,
            initrd_unmapped: false,
            p2m_base: None,
            store: true,
            console: true,
        })
        .unwrap();
        let g = vcpu_context(0xffff_ffff_8010_0000, &l, 0x777);
        assert_eq!(g.user_regs.rsi, l.va(l.start_info_pfn));
        assert_eq!(g.user_regs.rsp, l.stack_top());
        assert_eq!((g.user_regs.cs, g.user_regs.ss, g.user_regs.ds), (0xe033, 0xe02b, 0));
        assert_eq!(g.ctrlreg[3], 0x777 << 12);
        assert_eq!(g.flags, VGCF_IN_KERNEL | VGCF_ONLINE);
    }
}

#[cfg(test)]
mod debian_kernel {
    use super::*;

    /// Debian's kernel, when the system tests have fetched it: it unwraps
    /// (bzImage, XZ with BCJ), its notes parse, and a 256 MiB domU lays
    /// out as xen-pv-boot.md §2.2 says.
    #[test]
    fn debian_s_kernel_lays_out_like_libxc_s() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
        let Some(path) = std::fs::read_dir(root.join("linux-image-6.1.0-57-amd64/root/boot")).ok().and_then(|mut d| {
            d.find_map(|e| e.ok().map(|e| e.path()).filter(|p| p.to_string_lossy().contains("vmlinuz")))
        }) else {
            return; // not fetched on this machine
        };
        let image = std::fs::read(&path).unwrap();
        let kernel = Kernel::parse(&image).unwrap();
        assert_eq!(kernel.virt_kstart, 0xffff_ffff_8100_0000);
        assert!(kernel.notes.mod_start_pfn && kernel.notes.init_p2m == Some(0x80_0000_0000));
        assert_eq!(kernel.notes.hypercall_page, None);
        let spec = DomainSpec {
            name: "d",
            uuid: [0; 16],
            kernel_path: "k",
            ramdisk_path: None,
            cmdline: "",
            target_memkb: 256 << 10,
            max_memkb: 256 << 10,
            vcpus: 1,
            max_vcpus: 1,
            store_domid: 0,
            console_domid: 0,
        };
        let l = plan(&spec, &kernel, Some(4 << 20)).unwrap();
        assert_eq!(l.start_info_pfn, (kernel.virt_kend - 0xffff_ffff_8000_0000).div_ceil(4096));
        assert_eq!(l.p2m.1, 128);
    }
}
