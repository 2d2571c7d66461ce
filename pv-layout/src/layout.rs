//! Which pfn holds what: libxc's allocation of a new PV domain's memory.
//!
//! Allocation is one running cursor, as `xc_dom_alloc_segment` keeps it
//! (`pfn_alloc_end`): padding up to the kernel, the kernel, a mapped
//! initrd, the p2m list (unless the kernel maps it itself at `INIT_P2M`),
//! start_info, the xenstore page, the console page, the page tables, the
//! boot stack; then padding to the end of the initial mapping, which is
//! 4 MiB-aligned with at least 512 KiB of slack after the stack
//! (`xg_dom_x86.c alloc_pgtables_x86_64`). After the mapping come an
//! unmapped initrd (`MOD_START_PFN`) and the `INIT_P2M` p2m list with its
//! own tables; every pfn after that is free RAM the p2m alone describes.
//!
//! Every input comes from an untrusted kernel image, so all arithmetic is
//! checked: a layout that overflows is [`LayoutError::BadLayout`], never a
//! panic.

use core::fmt;

/// Bytes per page.
pub const PAGE_SIZE: u64 = 4096;
/// Slack after the boot stack: 512 KiB (libxc's 128 extra pages).
const SLACK_PAGES: u64 = 128;
/// The initial mapping ends on a 4 MiB boundary.
const ALIGN_4M: u64 = 4 << 20;
/// Enough rounds for the page-table count to converge (it grows
/// monotonically and settles in two or three).
const MAX_ROUNDS: usize = 64;

/// What the layout depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutInput {
    /// Virtual address of pfn 0 (`VIRT_BASE`).
    pub virt_base: u64,
    /// First virtual address of the kernel image (`virt_kstart`).
    pub virt_kstart: u64,
    /// End of the kernel image, exclusive (`virt_kend`).
    pub virt_kend: u64,
    /// Pages the domain owns.
    pub nr_pages: u64,
    /// Initrd size in bytes, if any.
    pub initrd_len: Option<u64>,
    /// The kernel accepts an unmapped initrd given by pfn (`MOD_START_PFN`).
    pub initrd_unmapped: bool,
    /// Map the p2m list at this address instead of in the initial mapping
    /// (`INIT_P2M`, already filtered as libxc does: below `virt_base`,
    /// page-aligned).
    pub p2m_base: Option<u64>,
    /// Allocate a xenstore page (a domU).
    pub store: bool,
    /// Allocate a console ring page (a domU).
    pub console: bool,
}

/// Page tables of one mapping, as counts per level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// L3 tables (one per 512 GiB touched).
    pub l3: u64,
    /// L2 tables (one per 1 GiB touched).
    pub l2: u64,
    /// L1 tables (one per 2 MiB touched).
    pub l1: u64,
}

impl TableCounts {
    /// Tables needed to map `[start, end)`; `None` if the range is empty.
    pub fn for_range(start: u64, end: u64) -> Option<Self> {
        let last = end.checked_sub(1).filter(|&l| l >= start)?;
        let span = |shift: u32| (last >> shift) - (start >> shift) + 1;
        Some(TableCounts { l3: span(39), l2: span(30), l1: span(21) })
    }

    /// All tables counted.
    pub fn total(&self) -> u64 {
        self.l3 + self.l2 + self.l1
    }
}

/// The computed layout; pfns index the domain's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Virtual address of pfn 0.
    pub virt_base: u64,
    /// First kernel pfn.
    pub kernel_pfn: u64,
    /// Initrd start pfn and its page count.
    pub initrd: Option<(u64, u64)>,
    /// Whether the initrd is outside the initial mapping.
    pub initrd_unmapped: bool,
    /// First pfn of the p2m list and its page count.
    pub p2m: (u64, u64),
    /// Where the kernel maps the p2m list itself (`INIT_P2M`), if it does.
    pub p2m_base: Option<u64>,
    /// start_info pfn.
    pub start_info_pfn: u64,
    /// xenstore page pfn.
    pub store_pfn: Option<u64>,
    /// Console ring pfn.
    pub console_pfn: Option<u64>,
    /// First page-table pfn (the L4).
    pub pt_pfn: u64,
    /// Tables of the initial mapping below the L4.
    pub pt: TableCounts,
    /// Boot stack pfn.
    pub stack_pfn: u64,
    /// Pfns mapped by the initial mapping: `[0, mapped_pages)`.
    pub mapped_pages: u64,
    /// With INIT_P2M: the p2m's own tables and their first pfn.
    pub p2m_tables: Option<(u64, TableCounts)>,
    /// Pfns used in all (the rest is free RAM).
    pub used_pages: u64,
}

impl Layout {
    /// Page-table frames of the initial mapping (`nr_pt_frames`).
    pub fn nr_pt_frames(&self) -> u64 {
        1 + self.pt.total()
    }

    /// Whether `pfn` holds a page table of the initial mapping (mapped
    /// read-only).
    pub fn is_pt_pfn(&self, pfn: u64) -> bool {
        pfn >= self.pt_pfn && pfn - self.pt_pfn < self.nr_pt_frames()
    }

    /// `(first_p2m_pfn, nr_p2m_frames)` for start_info (zero without INIT_P2M).
    pub fn p2m_segment(&self) -> (u64, u64) {
        match self.p2m_tables {
            Some((_, t)) => (self.p2m.0, self.p2m.1 + t.total()),
            None => (0, 0),
        }
    }

    /// The virtual address of `pfn` in the initial mapping (wrapping: only
    /// meaningful for pfns below [`Layout::mapped_pages`]).
    pub fn va(&self, pfn: u64) -> u64 {
        self.virt_base.wrapping_add(pfn.wrapping_mul(PAGE_SIZE))
    }

    /// The initial `rsp`: the top of the boot stack.
    pub fn stack_top(&self) -> u64 {
        self.va(self.stack_pfn + 1)
    }

    /// Where the kernel finds the p2m list (`start_info.mfn_list`).
    pub fn mfn_list_va(&self) -> u64 {
        self.p2m_base.unwrap_or_else(|| self.va(self.p2m.0))
    }

    /// Every pfn that must be zeroed before the segments are written (the
    /// whole used range); the rest is the domain's free RAM.
    pub fn used_pfns(&self) -> core::ops::Range<u64> {
        0..self.used_pages
    }
}

/// Why a domain cannot be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Inconsistent extents (kernel below `virt_base`, end before start,
    /// unaligned base) or arithmetic that overflows.
    BadLayout,
    /// The image does not fit in the domain's memory.
    TooSmall {
        /// Pages the layout needs.
        needed_pages: u64,
        /// Pages the domain has.
        nr_pages: u64,
    },
    /// The mapping would touch the hypervisor hole or leave the canonical
    /// half it starts in.
    BadAddress,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLayout => f.write_str("inconsistent image extents"),
            Self::TooSmall { needed_pages, nr_pages } => {
                write!(f, "the image needs {needed_pages} pages but the domain has {nr_pages}")
            }
            Self::BadAddress => f.write_str("the initial mapping would leave the guest address range"),
        }
    }
}

/// Pages holding `bytes`.
fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// A running pfn cursor with checked arithmetic.
struct Cursor(u64);

impl Cursor {
    /// Takes `n` pfns; returns the first.
    fn take(&mut self, n: u64) -> Result<u64, LayoutError> {
        let at = self.0;
        self.0 = at.checked_add(n).ok_or(LayoutError::BadLayout)?;
        Ok(at)
    }
}

/// Computes the layout, or says why the domain cannot be laid out.
pub fn compute(input: &LayoutInput) -> Result<Layout, LayoutError> {
    let vb = input.virt_base;
    if input.virt_kstart < vb || input.virt_kend < input.virt_kstart || !vb.is_multiple_of(PAGE_SIZE) {
        return Err(LayoutError::BadLayout);
    }
    let kernel_pfn = (input.virt_kstart - vb) / PAGE_SIZE;
    let mut cursor = Cursor((input.virt_kend - vb).div_ceil(PAGE_SIZE));
    let mut l = Layout {
        virt_base: vb,
        kernel_pfn,
        initrd_unmapped: input.initrd_unmapped,
        p2m_base: input.p2m_base,
        ..Layout::default()
    };

    if let (Some(len), false) = (input.initrd_len, input.initrd_unmapped) {
        l.initrd = Some((cursor.take(pages(len))?, pages(len)));
    }
    let p2m_pages = pages(input.nr_pages.checked_mul(8).ok_or(LayoutError::BadLayout)?);
    if input.p2m_base.is_none() {
        l.p2m = (cursor.take(p2m_pages)?, p2m_pages);
    }
    l.start_info_pfn = cursor.take(1)?;
    if input.store {
        l.store_pfn = Some(cursor.take(1)?);
    }
    if input.console {
        l.console_pfn = Some(cursor.take(1)?);
    }

    // Count the tables until the count covers the mapping it implies.
    let mut nr_pt = 1u64;
    let mut mapped_end = None;
    for _ in 0..MAX_ROUNDS {
        let need = [nr_pt, 1, SLACK_PAGES].iter().try_fold(cursor.0, |a, &b| a.checked_add(b));
        let end = need
            .and_then(|n| n.checked_mul(PAGE_SIZE))
            .and_then(|bytes| vb.checked_add(bytes))
            .and_then(|e| e.checked_next_multiple_of(ALIGN_4M))
            .ok_or(LayoutError::BadLayout)?;
        let counts = TableCounts::for_range(vb, end).ok_or(LayoutError::BadLayout)?;
        if counts.total() < nr_pt {
            l.pt = counts;
            mapped_end = Some(end);
            break;
        }
        nr_pt = 1 + counts.total();
    }
    let mapped_end = mapped_end.ok_or(LayoutError::BadLayout)?;
    l.pt_pfn = cursor.take(l.nr_pt_frames())?;
    l.stack_pfn = cursor.take(1)?;
    l.mapped_pages = (mapped_end - vb) / PAGE_SIZE;
    cursor = Cursor(l.mapped_pages);

    if let (Some(len), true) = (input.initrd_len, input.initrd_unmapped) {
        l.initrd = Some((cursor.take(pages(len))?, pages(len)));
    }
    if let Some(base) = input.p2m_base {
        l.p2m = (cursor.take(p2m_pages)?, p2m_pages);
        let end = p2m_pages.checked_mul(PAGE_SIZE).and_then(|b| base.checked_add(b)).ok_or(LayoutError::BadLayout)?;
        let counts = TableCounts::for_range(base, end).ok_or(LayoutError::BadLayout)?;
        l.p2m_tables = Some((cursor.take(counts.total())?, counts));
    }
    if cursor.0 > input.nr_pages {
        return Err(LayoutError::TooSmall { needed_pages: cursor.0, nr_pages: input.nr_pages });
    }
    l.used_pages = cursor.0;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 6.1 as a 512 MiB domU (xen-pv-boot.md §2.2).
    fn linux_domu() -> LayoutInput {
        LayoutInput {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kstart: 0xffff_ffff_8100_0000,
            virt_kend: 0xffff_ffff_84a0_0000,
            nr_pages: 0x20000,
            initrd_len: Some(20 << 20),
            initrd_unmapped: true,
            p2m_base: Some(0x80_0000_0000),
            store: true,
            console: true,
        }
    }

    #[test]
    fn reproduces_the_worked_linux_example() {
        let l = compute(&linux_domu()).unwrap();
        assert_eq!(l.kernel_pfn, 0x1000);
        assert_eq!((l.start_info_pfn, l.store_pfn, l.console_pfn), (0x4a00, Some(0x4a01), Some(0x4a02)));
        assert_eq!(l.pt_pfn, 0x4a03);
        assert_eq!(l.nr_pt_frames(), 41);
        assert_eq!(l.pt, TableCounts { l3: 1, l2: 1, l1: 38 });
        assert_eq!(l.stack_pfn, 0x4a2c);
        assert_eq!(l.stack_top(), 0xffff_ffff_84a2_d000); // rsp
        assert_eq!(l.va(l.mapped_pages), 0xffff_ffff_84c0_0000);
        assert_eq!(l.initrd, Some((0x4c00, 20 << 8)));
        assert_eq!(l.p2m.1, 256);
        assert_eq!(l.p2m_segment(), (0x4c00 + (20 << 8), 259));
        assert_eq!(l.mfn_list_va(), 0x80_0000_0000);
        assert_eq!(l.used_pages, 0x4c00 + (20 << 8) + 259);
        assert!(l.is_pt_pfn(0x4a03) && l.is_pt_pfn(0x4a2b) && !l.is_pt_pfn(0x4a2c) && !l.is_pt_pfn(0x4a02));
    }

    #[test]
    fn mapped_p2m_and_initrd_come_before_start_info() {
        let input = LayoutInput {
            virt_base: 0,
            virt_kstart: 0x10_0000,
            virt_kend: 0x12_3456,
            nr_pages: 16384,
            initrd_len: Some(5000),
            initrd_unmapped: false,
            p2m_base: None,
            store: false,
            console: false,
        };
        let l = compute(&input).unwrap();
        assert_eq!(l.initrd, Some((0x124, 2)));
        assert_eq!(l.p2m, (0x126, 32));
        assert_eq!(l.mfn_list_va(), 0x126 * PAGE_SIZE);
        assert_eq!(l.start_info_pfn, 0x146);
        assert_eq!(l.pt_pfn, 0x147);
        assert!((l.mapped_pages * PAGE_SIZE).is_multiple_of(4 << 20));
        assert!(l.mapped_pages - (l.stack_pfn + 1) >= 128);
        assert_eq!(l.p2m_segment(), (0, 0));
    }

    #[test]
    fn a_small_domu_without_notes_gets_libxc_s_order() {
        // A Mini-OS-like kernel linked at 0 with store and console pages.
        let input = LayoutInput {
            virt_base: 0,
            virt_kstart: 0,
            virt_kend: 0x5_2000,
            nr_pages: 8192,
            initrd_len: None,
            initrd_unmapped: false,
            p2m_base: None,
            store: true,
            console: true,
        };
        let l = compute(&input).unwrap();
        assert_eq!(l.kernel_pfn, 0);
        assert_eq!(l.p2m, (0x52, 16));
        assert_eq!((l.start_info_pfn, l.store_pfn, l.console_pfn), (0x62, Some(0x63), Some(0x64)));
        assert_eq!(l.pt_pfn, 0x65);
        assert_eq!(l.pt, TableCounts { l3: 1, l2: 1, l1: 2 });
        assert_eq!(l.stack_pfn, 0x65 + 5);
        assert_eq!(l.mapped_pages, 1024, "4 MiB");
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut input = linux_domu();
        input.nr_pages = 0x4000;
        assert!(matches!(compute(&input), Err(LayoutError::TooSmall { .. })));
        let mut bad = linux_domu();
        bad.virt_kstart = bad.virt_base - 0x1000;
        assert_eq!(compute(&bad), Err(LayoutError::BadLayout));
        let mut wrap = linux_domu();
        wrap.virt_base = !0xfff;
        wrap.virt_kstart = wrap.virt_base;
        wrap.virt_kend = wrap.virt_base;
        assert_eq!(compute(&wrap), Err(LayoutError::BadLayout));
    }

    #[test]
    fn hostile_sizes_are_errors_not_panics() {
        let mut huge = linux_domu();
        huge.nr_pages = u64::MAX;
        assert_eq!(compute(&huge), Err(LayoutError::BadLayout));
        let mut initrd = linux_domu();
        initrd.initrd_len = Some(u64::MAX);
        assert!(compute(&initrd).is_err());
        initrd.initrd_unmapped = false;
        assert!(compute(&initrd).is_err());
        let mut p2m = linux_domu();
        p2m.p2m_base = Some(!0xfff);
        assert_eq!(compute(&p2m), Err(LayoutError::BadLayout));
        let mut kend = linux_domu();
        kend.virt_base = 0;
        kend.virt_kstart = 0;
        kend.virt_kend = u64::MAX;
        assert!(compute(&kend).is_err());
        assert_eq!(TableCounts::for_range(5, 5), None);
        assert_eq!(TableCounts::for_range(0, 1), Some(TableCounts { l3: 1, l2: 1, l1: 1 }));
    }
}
