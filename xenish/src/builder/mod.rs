//! The PV domain builder: turns an ELF kernel with Xen's notes into a
//! domain's initial memory image exactly as Xen's builders do — kernel
//! loaded by physical address, initrd, p2m list, start_info, initial page
//! tables, boot stack and hypercall page — and reports what the hypervisor
//! needs to start the vCPU (`rip`, `rsp`, `rsi`, `cr3`).
//!
//! Semantics: Xen's libelf (`libelf-dominfo.c`, `libelf-loader.c`) and
//! libxc (`xg_dom_core.c`, `xg_dom_x86.c`); the layout is libxc's, which
//! Linux, Mini-OS, XTF and PV-GRUB all accept (reference gotcha 30).

pub mod bzimage;
mod elf;
pub mod kernel_image;
mod layout;
mod notes;

use alloc::vec::Vec;
use core::fmt;

use elf::Elf;

use crate::guest_access::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};
pub use kernel_image::{unwrap_kernel, ContiguousMemory, KernelImage};
pub use layout::{Layout, LayoutInput, TableCounts};
pub use notes::XenNotes;

use guest_abi::xen::{SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_PRIVILEGED};
/// `sizeof(struct start_info)`: where dom0's VGA console info follows it.
const START_INFO_SIZE: usize = 1168;
/// `sizeof(struct dom0_vga_console_info)`.
const DOM0_VGA_CONSOLE_INFO_SIZE: usize = 40;
/// L1 entries: P | RW | US | A.
const L1_PROT: u64 = 0x27;
/// L2-L4 entries: P | RW | US | A | D.
const LN_PROT: u64 = 0x67;
const PTE_RW: u64 = 0x2;
/// What a kernel asks for, and what it lands in.
pub struct DomainSpec<'a> {
    /// The ELF64 kernel image.
    pub kernel: &'a [u8],
    /// The initrd, if any.
    pub initrd: Option<&'a [u8]>,
    /// The kernel command line (truncated to 1023 bytes).
    pub cmdline: &'a [u8],
    /// The domain's memory: the frame behind each pfn.
    pub p2m: &'a dyn P2m,
    /// The initial domain (dom0): `SIF_INITDOMAIN | SIF_PRIVILEGED`.
    pub initial_domain: bool,
    /// A privileged domain (`SIF_PRIVILEGED`).
    pub privileged: bool,
    /// The hypervisor-owned shared_info page.
    pub shared_info_mfn: Mfn,
    /// L4 slots 256..=271 every guest top-level table carries.
    pub xen_l4_slots: &'a [u64; 16],
    /// A xenstore page and its event channel, for a domU.
    pub store: Option<u32>,
    /// A console ring page and its event channel, for a domU.
    pub console: Option<u32>,
}

/// A domain's memory as the builder sees it (libxc's `p2m_host`): the
/// machine frame behind each pseudo-physical frame, from pfn 0.
pub trait P2m {
    /// Pfns the domain has.
    fn nr_pages(&self) -> u64;
    /// The frame behind `pfn`, and how many pfns from `pfn` on are backed by
    /// the frames that follow it (at least 1); `None` past the end.
    fn run(&self, pfn: u64) -> Option<(Mfn, u64)>;
}

impl P2m for Vec<Mfn> {
    fn nr_pages(&self) -> u64 {
        self.len() as u64
    }

    fn run(&self, pfn: u64) -> Option<(Mfn, u64)> {
        self.get(usize::try_from(pfn).ok()?).map(|&m| (m, 1))
    }
}

impl P2m for crate::mm::frame_runs::FrameRuns {
    fn nr_pages(&self) -> u64 {
        crate::mm::frame_runs::FrameRuns::nr_pages(self)
    }

    fn run(&self, pfn: u64) -> Option<(Mfn, u64)> {
        crate::mm::frame_runs::FrameRuns::run(self, pfn)
    }
}

/// The p2m list's entries: the frame number of every pfn in order, then
/// `!0` (INVALID_P2M_ENTRY) for ever.
fn p2m_entries(p2m: &dyn P2m) -> impl Iterator<Item = u64> + '_ {
    let mut pfn = 0u64;
    // The next frame of the current run and how many of the run are left.
    let mut run = (Mfn(0), 0u64);
    core::iter::from_fn(move || {
        if run.1 == 0 {
            run = p2m.run(pfn).unwrap_or((Mfn(!0), 0));
        }
        pfn += 1;
        if run.1 == 0 {
            return Some(!0);
        }
        let mfn = run.0;
        run = (Mfn(mfn.0 + 1), run.1 - 1);
        Some(mfn.0)
    })
}

/// Where a kernel wants to be mapped, from its notes: what Xen's dom0
/// sizing looks at (`dom0_compute_nr_pages` clips a legacy kernel's
/// memory to what its initial mapping can hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelExtent {
    /// `VIRT_BASE`: the virtual address of pfn 0.
    pub virt_base: u64,
    /// The end of the kernel image (exclusive).
    pub virt_kend: u64,
    /// Whether the kernel maps its p2m list itself (`INIT_P2M`, usable).
    pub init_p2m: bool,
    /// Whether the kernel takes an unmapped initrd (`MOD_START_PFN`).
    pub unmapped_initrd: bool,
}

/// Reads where `kernel` (an ELF image) wants to be mapped.
pub fn kernel_extent(kernel: &[u8], initial_domain: bool) -> Result<KernelExtent, BuildError> {
    let elf = Elf::parse(kernel)?;
    let notes = XenNotes::from_elf(&elf, initial_domain)?;
    let (_, pend) = paddr_extent(&elf)?;
    Ok(KernelExtent {
        virt_base: notes.virt_base(),
        virt_kend: pend.wrapping_add(notes.virt_offset()),
        init_p2m: usable_init_p2m(&notes).is_some(),
        unmapped_initrd: notes.mod_start_pfn,
    })
}

/// The `INIT_P2M` address the builder uses: libxc maps the p2m there only
/// below the kernel and page-aligned.
fn usable_init_p2m(notes: &XenNotes) -> Option<u64> {
    notes.init_p2m.filter(|&b| b < notes.virt_base() && b % PAGE_SIZE as u64 == 0)
}

/// A built domain: what the hypervisor needs to run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltDomain {
    /// Initial `rip`.
    pub entry: u64,
    /// Initial `rsp`: the top of the boot stack.
    pub stack_top: u64,
    /// Initial `rsi`: the virtual address of start_info.
    pub start_info_va: u64,
    /// The top-level page table (`cr3`), to be pinned.
    pub l4: Mfn,
    /// Every page-table frame the builder made, with its level (1..=4).
    pub page_tables: Vec<(Mfn, u8)>,
    /// Where the hypercall page was written, if the kernel asked for one.
    pub hypercall_page: Option<u64>,
    /// The console ring page, for a domU.
    pub console_mfn: Option<Mfn>,
    /// The xenstore page, for a domU.
    pub store_mfn: Option<Mfn>,
    /// The layout used.
    pub layout: Layout,
    /// Features the kernel supports (`XENFEAT_*` bits).
    pub features_supported: u32,
    /// Whether the kernel asked for PAE extended-cr3 (`PAE_MODE`).
    pub pae: bool,
}

/// Why a kernel could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// Not a well-formed little-endian x86_64 ELF64 image.
    BadElf,
    /// Malformed note headers.
    BadNotes,
    /// No Xen notes, or neither LOADER=generic nor GUEST_OS=linux.
    NotXenKernel,
    /// XEN_VERSION does not start with `xen-3.0`.
    WrongXenVersion,
    /// PADDR_OFFSET given without VIRT_BASE.
    PaddrOffsetWithoutVirtBase,
    /// The kernel requires a feature xenish lacks (or an unknown one).
    UnsupportedRequiredFeature,
    /// The FEATURES note requires a feature name Xen does not know.
    UnknownRequiredFeature,
    /// dom0 kernel whose SUPPORTED_FEATURES lacks `dom0`.
    NotDom0Capable,
    /// No loadable segment, or entry/extents inconsistent.
    BadLayout,
    /// The image does not fit in the domain's memory.
    TooSmall {
        /// Pages the layout needs.
        needed_pages: u64,
        /// Pages the domain has.
        nr_pages: u64,
    },
    /// The mapping would touch the hypervisor hole or a non-canonical address.
    BadAddress,
    /// HYPERCALL_PAGE outside the initial mapping.
    BadHypercallPage,
    /// A domain frame is not reachable machine memory.
    BadFrame,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadElf => f.write_str("not a valid x86_64 ELF64 image"),
            Self::BadNotes => f.write_str("malformed ELF notes"),
            Self::NotXenKernel => f.write_str("not a Xen PV kernel (no notes, or LOADER/GUEST_OS unsuitable)"),
            Self::WrongXenVersion => f.write_str("XEN_VERSION note does not start with xen-3.0"),
            Self::PaddrOffsetWithoutVirtBase => f.write_str("PADDR_OFFSET without VIRT_BASE"),
            Self::UnsupportedRequiredFeature => f.write_str("the kernel requires a feature that is not supported"),
            Self::UnknownRequiredFeature => f.write_str("the kernel requires an unknown feature"),
            Self::NotDom0Capable => f.write_str("kernel does not support dom0 operation"),
            Self::BadLayout => f.write_str("inconsistent image extents or entry point"),
            Self::TooSmall { needed_pages, nr_pages } => {
                write!(f, "the image needs {needed_pages} pages but the domain has {nr_pages}")
            }
            Self::BadAddress => f.write_str("the initial mapping would leave the guest address range"),
            Self::BadHypercallPage => f.write_str("HYPERCALL_PAGE outside the initial mapping"),
            Self::BadFrame => f.write_str("a domain frame is not reachable memory"),
        }
    }
}

/// The loadable extent of an image: min/max `p_paddr` of loadable segments.
fn paddr_extent(elf: &Elf) -> Result<(u64, u64), BuildError> {
    let mut extent: Option<(u64, u64)> = None;
    for ph in elf.loadable() {
        let start = ph.paddr;
        let end = start.checked_add(ph.memsz).ok_or(BuildError::BadElf)?;
        extent = Some(extent.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
    }
    extent.ok_or(BuildError::BadLayout)
}

/// A canonical range in one half, outside the hypervisor hole.
fn range_ok(start: u64, end: u64) -> bool {
    let canonical = |a: u64| ((a as i64) << 16 >> 16) as u64 == a;
    end > start
        && canonical(start)
        && canonical(end - 1)
        && (start >> 63) == ((end - 1) >> 63)
        && (end <= HYPERVISOR_VIRT_START || start >= HYPERVISOR_VIRT_END)
}

/// Writes machine memory a frame at a time.
struct Writer<'m, 'f> {
    mem: &'m mut dyn MachineMemory,
    p2m: &'f dyn P2m,
}

impl Writer<'_, '_> {
    fn frame(&mut self, pfn: u64) -> Result<&mut [u8; PAGE_SIZE], BuildError> {
        let mfn = self.mfn(pfn)?;
        self.mem.frame_mut(mfn).ok_or(BuildError::BadFrame)
    }

    fn mfn(&self, pfn: u64) -> Result<Mfn, BuildError> {
        self.p2m.run(pfn).map(|(m, _)| m).ok_or(BuildError::BadFrame)
    }

    /// Copies `data` to pseudo-physical byte address `pa`.
    fn copy(&mut self, pa: u64, data: &[u8]) -> Result<(), BuildError> {
        let mut done = 0usize;
        while done < data.len() {
            let at = pa + done as u64;
            let off = (at % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - off).min(data.len() - done);
            self.frame(at / PAGE_SIZE as u64)?[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn put_u64(&mut self, pfn: u64, index: u64, value: u64) -> Result<(), BuildError> {
        let off = (index * 8) as usize;
        self.frame(pfn)?[off..off + 8].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }
}

/// Builds the page tables mapping `pages` pfns from `first_pfn` at `va`,
/// with tables taken in order (L3s, L2s, L1s) from `table_pfn`, hung off
/// the L4 at `l4_pfn`. Returns the tables made, with their levels.
#[allow(clippy::too_many_arguments)]
fn map_range(
    w: &mut Writer,
    l4_pfn: u64,
    va: u64,
    first_pfn: u64,
    pages: u64,
    counts: TableCounts,
    table_pfn: u64,
    readonly: &dyn Fn(u64) -> bool,
) -> Result<Vec<(Mfn, u8)>, BuildError> {
    let end = va + pages * PAGE_SIZE as u64;
    let (l3_base, l2_base, l1_base) = (table_pfn, table_pfn + counts.l3, table_pfn + counts.l3 + counts.l2);
    let mut tables = Vec::new();
    for i in 0..counts.l3 {
        tables.push((w.mfn(l3_base + i)?, 3));
    }
    for i in 0..counts.l2 {
        tables.push((w.mfn(l2_base + i)?, 2));
    }
    for i in 0..counts.l1 {
        tables.push((w.mfn(l1_base + i)?, 1));
    }
    let (first3, first2, first1) = (va >> 39, va >> 30, va >> 21);
    let mut cur = va;
    while cur < end {
        let pfn = first_pfn + (cur - va) / PAGE_SIZE as u64;
        let (l3, l2, l1) =
            (l3_base + ((cur >> 39) - first3), l2_base + ((cur >> 30) - first2), l1_base + ((cur >> 21) - first1));
        let mfn = w.mfn(pfn)?;
        let prot = if readonly(pfn) { L1_PROT & !PTE_RW } else { L1_PROT };
        w.put_u64(l1, (cur >> 12) & 511, mfn.addr() | prot)?;
        let (m1, m2, m3) = (w.mfn(l1)?, w.mfn(l2)?, w.mfn(l3)?);
        w.put_u64(l2, (cur >> 21) & 511, m1.addr() | LN_PROT)?;
        w.put_u64(l3, (cur >> 30) & 511, m2.addr() | LN_PROT)?;
        w.put_u64(l4_pfn, (cur >> 39) & 511, m3.addr() | LN_PROT)?;
        cur += PAGE_SIZE as u64;
    }
    Ok(tables)
}

/// Fills the hypercall page: 0xcc, then a 32-byte stub per hypercall
/// (`push %rcx; push %r11; mov $i,%eax; syscall; pop %r11; pop %rcx; ret`),
/// and the `iret` stub (#23) that pushes rax and does not return.
pub fn write_hypercall_page(page: &mut [u8; PAGE_SIZE]) {
    page.fill(0xcc);
    for (i, stub) in page.chunks_exact_mut(32).enumerate() {
        if i == 23 {
            stub[..11].copy_from_slice(&[0x51, 0x41, 0x53, 0x50, 0xb8, 0x17, 0, 0, 0, 0x0f, 0x05]);
        } else {
            stub[..4].copy_from_slice(&[0x51, 0x41, 0x53, 0xb8]);
            stub[4..8].copy_from_slice(&(i as u32).to_le_bytes());
            stub[8..14].copy_from_slice(&[0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        }
    }
}

/// Builds the domain described by `spec` into its frames.
pub fn build(spec: &DomainSpec, mem: &mut dyn MachineMemory) -> Result<BuiltDomain, BuildError> {
    let elf = Elf::parse(spec.kernel)?;
    let notes = XenNotes::from_elf(&elf, spec.initial_domain)?;
    let (pstart, pend) = paddr_extent(&elf)?;
    let offset = notes.virt_offset();
    let (kstart, kend) = (pstart.wrapping_add(offset), pend.wrapping_add(offset));
    let entry = notes.entry.unwrap_or(elf.entry);
    if kstart > kend || entry < kstart || entry > kend || notes.virt_base() > kstart {
        return Err(BuildError::BadLayout);
    }
    let nr_pages = spec.p2m.nr_pages();
    let p2m_base = usable_init_p2m(&notes);
    let layout = layout::compute(&LayoutInput {
        virt_base: notes.virt_base(),
        virt_kstart: kstart,
        virt_kend: kend,
        nr_pages,
        initrd_len: spec.initrd.map(|i| i.len() as u64),
        initrd_unmapped: notes.mod_start_pfn,
        p2m_base,
        store: spec.store.is_some(),
        console: spec.console.is_some(),
    })?;
    let vb = notes.virt_base();
    let va = |pfn: u64| vb + pfn * PAGE_SIZE as u64;
    if !range_ok(vb, va(layout.mapped_pages)) {
        return Err(BuildError::BadAddress);
    }
    if let Some(base) = p2m_base {
        if !range_ok(base, base + layout.p2m.1 * PAGE_SIZE as u64) || (base < va(layout.mapped_pages) && base >= vb) {
            return Err(BuildError::BadAddress);
        }
    }
    if let Some(hp) = notes.hypercall_page {
        if hp < vb || hp >= va(layout.mapped_pages) || hp % PAGE_SIZE as u64 != 0 {
            return Err(BuildError::BadHypercallPage);
        }
    }

    let mut w = Writer { mem, p2m: spec.p2m };
    for pfn in 0..layout.used_pages {
        w.frame(pfn)?.fill(0);
    }
    // Load each segment by p_paddr: file bytes, then zeroes to p_memsz.
    for ph in elf.loadable() {
        if ph.filesz > ph.memsz {
            return Err(BuildError::BadElf);
        }
        let data = elf.bytes(ph.offset, ph.filesz)?;
        w.copy(ph.paddr - pstart + layout.kernel_pfn * PAGE_SIZE as u64, data)?;
    }
    let mut mod_start = 0;
    if let (Some(initrd), Some((pfn, _))) = (spec.initrd, layout.initrd) {
        w.copy(pfn * PAGE_SIZE as u64, initrd)?;
        mod_start = if layout.initrd_unmapped { pfn } else { va(pfn) };
    }

    // The p2m list: mfn of every pfn, the rest of its last page invalid;
    // a page at a time (a large domain's list is megabytes).
    let (p2m_pfn, p2m_pages) = layout.p2m;
    let mut entries = p2m_entries(spec.p2m);
    for page in 0..p2m_pages {
        let frame = w.frame(p2m_pfn + page)?;
        for (slot, value) in frame.chunks_exact_mut(8).zip(&mut entries) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    }

    // Initial page tables.
    let l4_pfn = layout.pt_pfn;
    for (i, slot) in spec.xen_l4_slots.iter().enumerate() {
        w.put_u64(l4_pfn, 256 + i as u64, *slot)?;
    }
    let mut page_tables = alloc::vec![(w.mfn(l4_pfn)?, 4u8)];
    let ro = |pfn: u64| layout.is_pt_pfn(pfn);
    page_tables.extend(map_range(&mut w, l4_pfn, vb, 0, layout.mapped_pages, layout.pt, l4_pfn + 1, &ro)?);
    if let (Some(base), Some((table_pfn, counts))) = (p2m_base, layout.p2m_tables) {
        let none = |_: u64| false;
        page_tables.extend(map_range(&mut w, l4_pfn, base, p2m_pfn, p2m_pages, counts, table_pfn, &none)?);
    }

    // start_info, and for dom0 the `dom0_vga_console_info` after it.
    let mut si = [0u8; START_INFO_SIZE + DOM0_VGA_CONSOLE_INFO_SIZE];
    let magic: &[u8] = if notes.pae { b"xen-3.0-x86_64p" } else { b"xen-3.0-x86_64" };
    si[..magic.len()].copy_from_slice(magic);
    let mut put = |off: usize, v: u64| si[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(0x20, nr_pages);
    put(0x28, spec.shared_info_mfn.addr());
    let mut flags = 0u32;
    if spec.privileged || spec.initial_domain {
        flags |= SIF_PRIVILEGED;
    }
    if spec.initial_domain {
        flags |= SIF_INITDOMAIN;
    }
    if layout.initrd_unmapped && spec.initrd.is_some() {
        flags |= SIF_MOD_START_PFN;
    }
    let store_mfn = layout.store_pfn.map(|p| w.mfn(p)).transpose()?;
    let console_mfn = layout.console_pfn.map(|p| w.mfn(p)).transpose()?;
    put(0x38, store_mfn.map_or(0, |m| m.0));
    put(0x40, u64::from(spec.store.unwrap_or(0)));
    if spec.initial_domain {
        // console.dom0: Xen's dom0 builder always points it at a
        // dom0_vga_console_info right after start_info
        // (`fill_console_start_info` returns 1 whatever the video state);
        // xenish knows no video mode, so its `video_type` is 0 (none),
        // as Xen's is on a machine without VGA.
        put(0x48, START_INFO_SIZE as u64 | (DOM0_VGA_CONSOLE_INFO_SIZE as u64) << 32);
    } else {
        put(0x48, console_mfn.map_or(0, |m| m.0));
        put(0x50, u64::from(spec.console.unwrap_or(0)));
    }
    put(0x58, va(l4_pfn));
    put(0x60, layout.nr_pt_frames());
    put(0x68, p2m_base.unwrap_or(va(p2m_pfn)));
    put(0x70, mod_start);
    put(0x78, spec.initrd.map_or(0, |i| i.len() as u64));
    let (first_p2m, nr_p2m) = layout.p2m_segment();
    put(0x480, first_p2m);
    put(0x488, nr_p2m);
    si[0x30..0x34].copy_from_slice(&flags.to_le_bytes());
    let cmd = &spec.cmdline[..spec.cmdline.len().min(1023)];
    si[0x80..0x80 + cmd.len()].copy_from_slice(cmd);
    w.frame(layout.start_info_pfn)?[..si.len()].copy_from_slice(&si);

    if let Some(hp) = notes.hypercall_page {
        write_hypercall_page(w.frame((hp - vb) / PAGE_SIZE as u64)?);
    }

    Ok(BuiltDomain {
        entry,
        stack_top: va(layout.stack_pfn + 1),
        start_info_va: va(layout.start_info_pfn),
        l4: w.mfn(l4_pfn)?,
        page_tables,
        hypercall_page: notes.hypercall_page,
        console_mfn,
        store_mfn,
        layout,
        features_supported: notes.supported,
        pae: notes.pae,
    })
}

#[cfg(test)]
mod bzimage_tests;
#[cfg(test)]
mod tests;
