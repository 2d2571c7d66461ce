//! The new domain's initial memory: every used pfn's contents, composed
//! page by page and written through foreign mappings of its MFNs, as
//! `xc_dom_build_image` and `xc_dom_boot_image` write the segments.
//!
//! A page is composed from whatever lands on it: kernel segments (by
//! `p_paddr`), the ramdisk, the p2m list (MFN of each pfn, `~0` past the
//! end), start_info, the page tables ([`pv_layout::for_each_entry`]);
//! everything else in the used range is zero (the xenstore and console
//! pages, the boot stack, padding). The writer maps a chunk of frames at a
//! time and drops the mapping before moving on, so that no writable
//! mapping of a page table survives into the pin.

use std::collections::HashMap;
use std::io;

use pv_layout::{Layout, PtProt, PAGE_SIZE};

use super::kernel::Kernel;
use super::xc::Xc;

/// Frames mapped at once while writing (4 MiB).
const CHUNK_PAGES: usize = 1024;
/// Bytes per page, as a usize.
const PAGE: usize = PAGE_SIZE as usize;

/// Everything the initial memory holds.
pub struct Image<'a> {
    /// The layout.
    pub layout: &'a Layout,
    /// The kernel.
    pub kernel: &'a Kernel<'a>,
    /// The ramdisk, if any.
    pub ramdisk: Option<&'a [u8]>,
    /// MFN of every pfn.
    pub mfns: &'a [u64],
    /// The start_info page's bytes.
    pub start_info: &'a [u8],
    /// Page-table entries by table pfn.
    tables: HashMap<u64, Vec<u64>>,
}

impl<'a> Image<'a> {
    /// Composes the image; computes the page tables.
    pub fn new(
        layout: &'a Layout,
        kernel: &'a Kernel<'a>,
        ramdisk: Option<&'a [u8]>,
        mfns: &'a [u64],
        start_info: &'a [u8],
    ) -> Result<Self, pv_layout::LayoutError> {
        let mut tables: HashMap<u64, Vec<u64>> = HashMap::new();
        let mfn_of = |pfn: u64| usize::try_from(pfn).ok().and_then(|i| mfns.get(i)).copied();
        pv_layout::for_each_entry(layout, PtProt::LIBXC, mfn_of, |e| {
            let table = tables.entry(e.table_pfn).or_insert_with(|| vec![0; 512]);
            if let Some(slot) = usize::try_from(e.slot).ok().and_then(|s| table.get_mut(s)) {
                *slot = e.value;
            }
        })?;
        Ok(Image { layout, kernel, ramdisk, mfns, start_info, tables })
    }

    /// Copies the part of `data` placed at pfn `first` that falls in `pfn`.
    fn copy_at(data: &[u8], first: u64, pfn: u64, page: &mut [u8]) {
        let Some(off) = pfn.checked_sub(first).and_then(|p| usize::try_from(p * PAGE_SIZE).ok()) else { return };
        if let Some(src) = data.get(off..) {
            let n = src.len().min(PAGE);
            page[..n].copy_from_slice(&src[..n]);
        }
    }

    /// Writes the contents of `pfn` into `page` (zeroed by the caller).
    pub fn fill(&self, pfn: u64, page: &mut [u8]) {
        let l = self.layout;
        if let Some(off) = pfn.checked_sub(l.kernel_pfn) {
            self.kernel.fill_page(off * PAGE_SIZE, page);
        }
        if let (Some(rd), Some((first, pages))) = (self.ramdisk, l.initrd) {
            if pfn >= first && pfn - first < pages {
                Self::copy_at(rd, first, pfn, page);
            }
        }
        let (p2m_pfn, p2m_pages) = l.p2m;
        if pfn >= p2m_pfn && pfn - p2m_pfn < p2m_pages {
            let first = usize::try_from((pfn - p2m_pfn) * 512).unwrap_or(usize::MAX);
            for (i, slot) in page.chunks_exact_mut(8).enumerate() {
                let mfn = first.checked_add(i).and_then(|i| self.mfns.get(i)).copied().unwrap_or(!0);
                slot.copy_from_slice(&mfn.to_le_bytes());
            }
        }
        if pfn == l.start_info_pfn {
            let n = self.start_info.len().min(PAGE);
            page[..n].copy_from_slice(&self.start_info[..n]);
        }
        if let Some(table) = self.tables.get(&pfn) {
            for (slot, e) in page.chunks_exact_mut(8).zip(table) {
                slot.copy_from_slice(&e.to_le_bytes());
            }
        }
    }

    /// Writes every used pfn of domain `domid` through foreign mappings.
    pub fn write(&self, xc: &Xc, domid: u16) -> io::Result<()> {
        let used = usize::try_from(self.layout.used_pages).unwrap_or(usize::MAX);
        let mfns = self.mfns.get(..used).ok_or_else(|| io::Error::other("fewer frames than the layout uses"))?;
        let mut buf = vec![0u8; CHUNK_PAGES * PAGE];
        for (chunk_no, chunk) in mfns.chunks(CHUNK_PAGES).enumerate() {
            let first = (chunk_no * CHUNK_PAGES) as u64;
            let bytes = &mut buf[..chunk.len() * PAGE];
            bytes.fill(0);
            for (i, page) in bytes.chunks_exact_mut(PAGE).enumerate() {
                self.fill(first + i as u64, page);
            }
            let map = xc.map_foreign(domid, chunk)?;
            map.write_bytes(0, bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::kernel::tests::tiny_kernel;
    use pv_layout::{compute, LayoutInput};

    #[test]
    fn pages_hold_kernel_p2m_start_info_and_tables() {
        let image = tiny_kernel(0xffff_ffff_8000_0000, b"\xf4");
        let kernel = Kernel::parse(&image).unwrap();
        let layout = compute(&LayoutInput {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kstart: kernel.virt_kstart,
            virt_kend: kernel.virt_kend,
            nr_pages: 2048,
            initrd_len: Some(5000),
            initrd_unmapped: false,
            p2m_base: None,
            store: true,
            console: true,
        })
        .unwrap();
        let mfns: Vec<u64> = (0..2048).map(|p| 0x8000 + p).collect();
        let rd = vec![0xabu8; 5000];
        let si = [0x5au8; 1168];
        let img = Image::new(&layout, &kernel, Some(&rd), &mfns, &si).unwrap();
        let page = |pfn: u64| {
            let mut p = vec![0u8; PAGE];
            img.fill(pfn, &mut p);
            p
        };
        assert_eq!(layout.kernel_pfn, 1);
        assert_eq!(page(1)[0], 0xf4);
        assert!(page(0).iter().all(|&b| b == 0));
        let (rd_pfn, _) = layout.initrd.unwrap();
        assert_eq!(page(rd_pfn + 1)[5000 - 4097], 0xab);
        assert_eq!(page(rd_pfn + 1)[5000 - 4096], 0, "past the ramdisk's end");
        let p2m = page(layout.p2m.0);
        assert_eq!(u64::from_le_bytes(p2m[8..16].try_into().unwrap()), 0x8001);
        let last = page(layout.p2m.0 + layout.p2m.1 - 1);
        assert_eq!(u64::from_le_bytes(last[4088..].try_into().unwrap()), 0x8000 + 2047);
        assert_eq!(page(layout.start_info_pfn)[1167], 0x5a);
        let l4 = page(layout.pt_pfn);
        let slot511 = u64::from_le_bytes(l4[511 * 8..].try_into().unwrap());
        assert_eq!(slot511, ((0x8000 + layout.pt_pfn + 1) << 12) | 0x67);
        assert!(page(layout.store_pfn.unwrap()).iter().all(|&b| b == 0));
    }
}
