//! Where everything of a new PV domain goes: the pfn and virtual layout of
//! Xen's domain builder (libxc `xc_dom_build_image`, reference §2.1), as
//! pure arithmetic.
//!
//! One contiguous virtual region from `virt_base` maps pfn N at
//! `virt_base + N * 4 KiB`, starting at pfn 0, in this order: the kernel,
//! a mapped initrd, the p2m list, start_info, the xenstore and console
//! pages, the page tables (L4, L3s, L2s, L1s), the boot stack, and padding
//! to a 4 MiB boundary with at least 512 KiB of slack. An initrd the kernel
//! lets stay unmapped (`MOD_START_PFN`) and a p2m list the kernel maps
//! elsewhere (`INIT_P2M`) follow, outside the mapping.

use super::BuildError;

/// Bytes per page.
pub const PAGE: u64 = 4096;
const SLACK_PAGES: u64 = 128; // 512 KiB
const ALIGN_4M: u64 = 4 << 20;

/// What the layout depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutInput {
    /// Virtual address of pfn 0.
    pub virt_base: u64,
    /// First virtual address of the kernel image.
    pub virt_kstart: u64,
    /// End of the kernel image (exclusive).
    pub virt_kend: u64,
    /// Pages the domain owns.
    pub nr_pages: u64,
    /// Initrd size in bytes, if any.
    pub initrd_len: Option<u64>,
    /// The kernel accepts an unmapped initrd given by pfn.
    pub initrd_unmapped: bool,
    /// Map the p2m list at this address instead of in the initial mapping.
    pub p2m_base: Option<u64>,
    /// Allocate a xenstore page.
    pub store: bool,
    /// Allocate a console ring page.
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
    /// Tables needed to map `[start, end)` (end exclusive, start < end).
    pub fn for_range(start: u64, end: u64) -> Self {
        let last = end - 1;
        let span = |shift: u32| (last >> shift) - (start >> shift) + 1;
        TableCounts { l3: span(39), l2: span(30), l1: span(21) }
    }

    /// All tables counted.
    pub fn total(&self) -> u64 {
        self.l3 + self.l2 + self.l1
    }
}

/// The computed layout; pfns index the domain's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// First kernel pfn.
    pub kernel_pfn: u64,
    /// Initrd start pfn and its page count.
    pub initrd: Option<(u64, u64)>,
    /// Whether the initrd is outside the initial mapping.
    pub initrd_unmapped: bool,
    /// First pfn of the p2m list and its page count.
    pub p2m: (u64, u64),
    /// start_info pfn.
    pub start_info_pfn: u64,
    /// xenstore page pfn.
    pub store_pfn: Option<u64>,
    /// console ring pfn.
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
        pfn >= self.pt_pfn && pfn < self.pt_pfn + self.nr_pt_frames()
    }

    /// `(first_p2m_pfn, nr_p2m_frames)` for start_info (zero without INIT_P2M).
    pub fn p2m_segment(&self) -> (u64, u64) {
        match self.p2m_tables {
            Some((_, t)) => (self.p2m.0, self.p2m.1 + t.total()),
            None => (0, 0),
        }
    }
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE)
}

/// Computes the layout, or says why the domain cannot be laid out.
pub fn compute(input: &LayoutInput) -> Result<Layout, BuildError> {
    let vb = input.virt_base;
    if input.virt_kstart < vb || input.virt_kend < input.virt_kstart || !vb.is_multiple_of(PAGE) {
        return Err(BuildError::BadLayout);
    }
    let kernel_pfn = (input.virt_kstart - vb) / PAGE;
    let mut cursor = (input.virt_kend - vb).div_ceil(PAGE);
    let mut l = Layout { kernel_pfn, initrd_unmapped: input.initrd_unmapped, ..Layout::default() };

    if let (Some(len), false) = (input.initrd_len, input.initrd_unmapped) {
        l.initrd = Some((cursor, pages(len)));
        cursor += pages(len);
    }
    let p2m_pages = pages(input.nr_pages.checked_mul(8).ok_or(BuildError::BadLayout)?);
    if input.p2m_base.is_none() {
        l.p2m = (cursor, p2m_pages);
        cursor += p2m_pages;
    }
    l.start_info_pfn = cursor;
    cursor += 1;
    if input.store {
        l.store_pfn = Some(cursor);
        cursor += 1;
    }
    if input.console {
        l.console_pfn = Some(cursor);
        cursor += 1;
    }

    // Count the tables until the count covers the mapping it implies.
    let mut nr_pt = 1u64;
    let mapped_end = loop {
        let need = cursor + nr_pt + 1 + SLACK_PAGES;
        let end = vb
            .checked_add(need.checked_mul(PAGE).ok_or(BuildError::BadLayout)?)
            .and_then(|e| e.checked_next_multiple_of(ALIGN_4M))
            .ok_or(BuildError::BadLayout)?;
        let counts = TableCounts::for_range(vb, end);
        if counts.total() < nr_pt {
            l.pt = counts;
            break end;
        }
        nr_pt = 1 + counts.total();
    };
    l.pt_pfn = cursor;
    cursor += l.nr_pt_frames();
    l.stack_pfn = cursor;
    l.mapped_pages = (mapped_end - vb) / PAGE;
    cursor = l.mapped_pages;

    if let (Some(len), true) = (input.initrd_len, input.initrd_unmapped) {
        l.initrd = Some((cursor, pages(len)));
        cursor += pages(len);
    }
    if let Some(base) = input.p2m_base {
        l.p2m = (cursor, p2m_pages);
        cursor += p2m_pages;
        let counts = TableCounts::for_range(base, base + p2m_pages * PAGE);
        l.p2m_tables = Some((cursor, counts));
        cursor += counts.total();
    }
    if cursor > input.nr_pages {
        return Err(BuildError::TooSmall { needed_pages: cursor, nr_pages: input.nr_pages });
    }
    l.used_pages = cursor;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 6.1 as a 512 MiB domU (reference §2.2).
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
        let vb = 0xffff_ffff_8000_0000u64;
        assert_eq!(vb + (l.stack_pfn + 1) * PAGE, 0xffff_ffff_84a2_d000); // rsp
        assert_eq!(vb + l.mapped_pages * PAGE, 0xffff_ffff_84c0_0000);
        assert_eq!(l.initrd, Some((0x4c00, 20 << 8)));
        assert_eq!(l.p2m.1, 256);
        assert_eq!(l.p2m_segment(), (0x4c00 + (20 << 8), 259));
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
        assert_eq!(l.start_info_pfn, 0x146);
        assert_eq!(l.pt_pfn, 0x147);
        assert!((l.mapped_pages * PAGE).is_multiple_of(4 << 20));
        assert!(l.mapped_pages - (l.stack_pfn + 1) >= 128);
        assert_eq!(l.p2m_segment(), (0, 0));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut input = linux_domu();
        input.nr_pages = 0x4000;
        assert!(matches!(compute(&input), Err(BuildError::TooSmall { .. })));
        let mut bad = linux_domu();
        bad.virt_kstart = bad.virt_base - 0x1000;
        assert_eq!(compute(&bad), Err(BuildError::BadLayout));
        let mut wrap = linux_domu();
        wrap.virt_base = !0xfff;
        wrap.virt_kstart = wrap.virt_base;
        wrap.virt_kend = wrap.virt_base;
        assert_eq!(compute(&wrap), Err(BuildError::BadLayout));
    }
}
