//! A PV kernel ready to load: the unwrapped ELF, its Xen notes, and the
//! addresses libelf derives from them.
//!
//! Segments load by `p_paddr` (never `p_vaddr`: Debian's `.data..percpu`
//! has `p_vaddr` 0), at `dest = p_paddr - pstart` from the kernel's first
//! pfn: `p_filesz` bytes, then zeroes up to `p_memsz`.
//! Semantics: Xen 4.17 `libelf-dominfo.c elf_xen_addr_calc_check`,
//! `libelf-loader.c elf_load_binary`.

use std::borrow::Cow;

use super::elf::Elf;
use super::notes::XenNotes;
use super::{bzimage, KernelError};

/// A loadable segment, relative to the kernel's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    /// Offset from `pstart`.
    dest: u64,
    /// File offset.
    offset: usize,
    /// Bytes in the file.
    filesz: u64,
}

/// A parsed, checked kernel.
#[derive(Debug)]
pub struct Kernel<'a> {
    elf: Cow<'a, [u8]>,
    segments: Vec<Segment>,
    /// Its Xen notes.
    pub notes: XenNotes,
    /// `virt_kstart`: where the kernel image starts.
    pub virt_kstart: u64,
    /// `virt_kend`: where it ends (exclusive).
    pub virt_kend: u64,
    /// The entry point (`ENTRY`, else `e_entry`).
    pub entry: u64,
}

impl<'a> Kernel<'a> {
    /// Unwraps (bzImage, compression), parses and checks `image`.
    pub fn parse(image: &'a [u8]) -> Result<Kernel<'a>, KernelError> {
        let elf_bytes = bzimage::unwrap(image)?;
        let (segments, notes, pstart, pend, e_entry) = {
            let elf = Elf::parse(&elf_bytes)?;
            let notes = XenNotes::from_elf(&elf)?;
            let mut extent: Option<(u64, u64)> = None;
            for ph in elf.loadable() {
                let end = ph.paddr.checked_add(ph.memsz).ok_or(KernelError::BadElf("segment wraps"))?;
                if ph.filesz > ph.memsz {
                    return Err(KernelError::BadElf("segment with p_filesz > p_memsz"));
                }
                elf.bytes(ph.offset, ph.filesz)?;
                extent = Some(extent.map_or((ph.paddr, end), |(s, e)| (s.min(ph.paddr), e.max(end))));
            }
            let (pstart, pend) = extent.ok_or(KernelError::BadElf("no loadable segment"))?;
            let segments = elf
                .loadable()
                .map(|ph| {
                    let offset = usize::try_from(ph.offset).map_err(|_| KernelError::BadElf("offset out of range"))?;
                    Ok(Segment { dest: ph.paddr - pstart, offset, filesz: ph.filesz })
                })
                .collect::<Result<Vec<_>, KernelError>>()?;
            (segments, notes, pstart, pend, elf.entry)
        };
        let offset = notes.virt_offset();
        let (virt_kstart, virt_kend) = (pstart.wrapping_add(offset), pend.wrapping_add(offset));
        let entry = notes.entry.unwrap_or(e_entry);
        if virt_kstart > virt_kend || entry < virt_kstart || entry > virt_kend || notes.virt_base() > virt_kstart {
            return Err(KernelError::BadElf("entry point or extents inconsistent with VIRT_BASE"));
        }
        Ok(Kernel { elf: elf_bytes, segments, notes, virt_kstart, virt_kend, entry })
    }

    /// Writes the kernel's bytes that fall into `page`, the page at byte
    /// offset `page_off` from the kernel's start (zeroes are the caller's:
    /// `page` starts zeroed).
    pub fn fill_page(&self, page_off: u64, page: &mut [u8]) {
        let page_end = page_off.saturating_add(page.len() as u64);
        for s in &self.segments {
            let (start, end) = (s.dest.max(page_off), s.dest.saturating_add(s.filesz).min(page_end));
            if start >= end {
                continue;
            }
            // Checked in `parse`: the segment's file bytes are in the image.
            let src = (s.offset as u64).saturating_add(start - s.dest);
            let (Ok(src), Ok(len), Ok(dst)) =
                (usize::try_from(src), usize::try_from(end - start), usize::try_from(start - page_off))
            else {
                continue;
            };
            if let (Some(from), Some(to)) = (self.elf.get(src..src + len), page.get_mut(dst..dst + len)) {
                to.copy_from_slice(from);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use guest_abi::elfnote as n;

    /// A tiny ELF kernel: one PT_LOAD at paddr 0x1000 (`code`, memsz 0x3000)
    /// and a PT_NOTE with Linux-like notes at `virt_base`.
    pub(crate) fn tiny_kernel(virt_base: u64, code: &[u8]) -> Vec<u8> {
        let mut notes = Vec::new();
        let mut note = |typ: u32, desc: &[u8]| {
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&typ.to_le_bytes());
            notes.extend_from_slice(b"Xen\0");
            notes.extend_from_slice(desc);
            notes.resize(notes.len().next_multiple_of(4), 0);
        };
        note(n::XEN_ELFNOTE_GUEST_OS, b"linux\0");
        note(n::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0");
        note(n::XEN_ELFNOTE_VIRT_BASE, &virt_base.to_le_bytes());
        note(n::XEN_ELFNOTE_ENTRY, &(virt_base + 0x1000).to_le_bytes());
        note(n::XEN_ELFNOTE_FEATURES, b"!writable_page_tables|pae_pgdir_above_4gb");
        let phoff = 64u64;
        let notes_off = phoff + 2 * 56;
        let code_off = (notes_off + notes.len() as u64).next_multiple_of(16);
        let mut f = vec![0u8; 64];
        f[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        f[18] = 62;
        f[24..32].copy_from_slice(&(virt_base + 0x1000).to_le_bytes());
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        f[54] = 56;
        f[56] = 2;
        let ph = |typ: u32, flags: u32, off: u64, paddr: u64, filesz: u64, memsz: u64| {
            let mut p = vec![0u8; 56];
            p[0..4].copy_from_slice(&typ.to_le_bytes());
            p[4..8].copy_from_slice(&flags.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[24..32].copy_from_slice(&paddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            p
        };
        f.extend(ph(1, 5, code_off, 0x1000, code.len() as u64, 0x3000));
        f.extend(ph(4, 4, notes_off, 0, notes.len() as u64, notes.len() as u64));
        f.extend_from_slice(&notes);
        f.resize(code_off as usize, 0);
        f.extend_from_slice(code);
        f
    }

    #[test]
    fn a_tiny_kernel_parses_and_loads_by_paddr() {
        let image = tiny_kernel(0xffff_ffff_8000_0000, b"\x90\x90\xf4");
        let k = Kernel::parse(&image).unwrap();
        assert_eq!((k.virt_kstart, k.virt_kend), (0xffff_ffff_8000_1000, 0xffff_ffff_8000_4000));
        assert_eq!(k.entry, 0xffff_ffff_8000_1000);
        assert_eq!(k.notes.required, 1);
        let mut page = vec![0u8; 4096];
        k.fill_page(0, &mut page);
        assert_eq!(&page[..4], b"\x90\x90\xf4\0");
        let mut second = vec![0u8; 4096];
        k.fill_page(4096, &mut second);
        assert!(second.iter().all(|&b| b == 0), "bss");
    }

    #[test]
    fn truncated_or_corrupt_kernels_are_errors_not_panics() {
        let image = tiny_kernel(0xffff_ffff_8000_0000, &[0xcc; 300]);
        for len in 0..image.len() {
            assert!(Kernel::parse(&image[..len]).is_err(), "truncated to {len}");
        }
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut bad = image.clone();
            for _ in 0..4 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = (state >> 8) as usize % bad.len();
                bad[at] = (state >> 24) as u8;
            }
            let _ = Kernel::parse(&bad).map(|k| k.fill_page(0, &mut [0u8; 4096]));
        }
        assert!(matches!(Kernel::parse(&[0u8; 4096]), Err(KernelError::NotAKernel)));
    }
}
