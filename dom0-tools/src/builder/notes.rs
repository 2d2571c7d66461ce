//! A PV kernel's Xen ELF notes (`.note.Xen`), or the legacy `__xen_guest`
//! string, read into [`XenNotes`] with the acceptance checks of Xen's
//! libelf for a domU.
//!
//! Where Xen looks: `PT_NOTE` program headers first, then `SHT_NOTE`
//! sections, then `__xen_guest`. Numeric notes are 1, 2, 4 or 8 bytes,
//! little-endian (other sizes read as 0); strings are bounded by `descsz`
//! (Linux's FEATURES note has no NUL).
//! Semantics: Xen 4.17 `xen/common/libelf/libelf-dominfo.c`
//! (`elf_xen_parse`, `elf_xen_parse_note`, `elf_xen_parse_guest_info`,
//! `elf_xen_note_check`) and `tools/libs/guest/xg_dom_core.c` (the
//! required-features check).

use guest_abi::elfnote as n;

use super::elf::{Elf, PT_NOTE, SHT_NOTE};
use super::KernelError;

/// `XENFEAT_*` names as the FEATURES note spells them, by bit number.
const FEATURE_NAMES: [&str; 18] = [
    "writable_page_tables",
    "writable_descriptor_tables",
    "auto_translated_physmap",
    "supervisor_mode_kernel",
    "pae_pgdir_above_4gb",
    "mmu_pt_update_preserve_ad",
    "highmem_assist",
    "gnttab_map_avail_bits",
    "hvm_callback_vector",
    "hvm_safe_pvclock",
    "hvm_pirqs",
    "dom0",
    "grant_map_identity",
    "memory_op_vnode_supported",
    "ARM_SMCCC_supported",
    "linux_rsdp_unrestricted",
    "not_direct_mapped",
    "direct_mapped",
];

/// Bit of `XENFEAT_supervisor_mode_kernel`, which a PV kernel may not require.
const SUPERVISOR_MODE_KERNEL: u32 = 3;
/// Most notes read (libelf's `ELF_MAX_TOTAL_NOTE_COUNT` is 2048).
const MAX_NOTES: usize = 2048;

/// What a kernel's notes say (absent notes are `None` or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes {
    /// `ENTRY`: the initial instruction pointer.
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE`: where the builder writes the hypercall stubs.
    pub hypercall_page: Option<u64>,
    /// `VIRT_BASE`: the virtual address of pseudo-physical 0.
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `XEN_VERSION` (must start with `xen-3.0`).
    pub xen_version: Option<String>,
    /// `GUEST_OS`.
    pub guest_os: Option<String>,
    /// `LOADER`.
    pub loader: Option<String>,
    /// `PAE_MODE` is `yes` (or `yes[extended-cr3]`).
    pub pae: bool,
    /// `INIT_P2M`: map the p2m list here, outside the initial mapping.
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN`: the initrd may stay unmapped, given by pfn.
    pub mod_start_pfn: bool,
    /// Features the kernel supports (`FEATURES` and `SUPPORTED_FEATURES`).
    pub supported: u32,
    /// Features the kernel requires (`!name` in `FEATURES`).
    pub required: u32,
    /// Notes came from the legacy `__xen_guest` section.
    pub legacy: bool,
}

fn numeric(desc: &[u8]) -> u64 {
    match desc.len() {
        1 | 2 | 4 | 8 => desc.iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b)),
        _ => 0,
    }
}

fn string(desc: &[u8]) -> &[u8] {
    desc.iter().position(|&b| b == 0).and_then(|end| desc.get(..end)).unwrap_or(desc)
}

fn owned(desc: &[u8]) -> String {
    String::from_utf8_lossy(string(desc)).into_owned()
}

/// Parses a `FEATURES` string (`a|b|!c`) into (supported, required).
fn parse_features(s: &[u8]) -> Result<(u32, u32), KernelError> {
    let (mut supported, mut required) = (0u32, 0u32);
    for name in s.split(|&b| b == b'|').filter(|n| !n.is_empty()) {
        let (name, req) = match name.strip_prefix(b"!") {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        match FEATURE_NAMES.iter().position(|f| f.as_bytes() == name) {
            Some(bit) => {
                supported |= 1 << bit;
                if req {
                    required |= 1 << bit;
                }
            }
            None if req => return Err(KernelError::UnknownRequiredFeature(String::from_utf8_lossy(name).into_owned())),
            None => {}
        }
    }
    Ok((supported, required))
}

fn parse_number(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?;
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl XenNotes {
    fn apply(&mut self, typ: u32, desc: &[u8]) -> Result<(), KernelError> {
        match typ {
            n::XEN_ELFNOTE_ENTRY => self.entry = Some(numeric(desc)),
            n::XEN_ELFNOTE_HYPERCALL_PAGE => self.hypercall_page = Some(numeric(desc)),
            n::XEN_ELFNOTE_VIRT_BASE => self.virt_base = Some(numeric(desc)),
            n::XEN_ELFNOTE_PADDR_OFFSET => self.paddr_offset = Some(numeric(desc)),
            n::XEN_ELFNOTE_XEN_VERSION => self.xen_version = Some(owned(desc)),
            n::XEN_ELFNOTE_GUEST_OS => self.guest_os = Some(owned(desc)),
            n::XEN_ELFNOTE_LOADER => self.loader = Some(owned(desc)),
            n::XEN_ELFNOTE_PAE_MODE => self.pae = string(desc).starts_with(b"yes"),
            n::XEN_ELFNOTE_FEATURES => {
                let (s, r) = parse_features(string(desc))?;
                self.supported |= s;
                self.required |= r;
            }
            n::XEN_ELFNOTE_INIT_P2M => self.init_p2m = Some(numeric(desc)),
            n::XEN_ELFNOTE_MOD_START_PFN => self.mod_start_pfn = numeric(desc) != 0,
            n::XEN_ELFNOTE_SUPPORTED_FEATURES => {
                for word in desc.chunks_exact(4) {
                    self.supported |= word.iter().rev().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
                }
            }
            // INFO, GUEST_VERSION, BSD_SYMTAB, HV_START_LOW, L1_MFN_VALID,
            // SUSPEND_CANCEL, PHYS32_ENTRY and unknown types: not used by a
            // 64-bit PV domU builder.
            _ => {}
        }
        Ok(())
    }

    /// Parses one note area; returns how many Xen notes it held.
    fn parse_area(&mut self, area: &[u8], count: &mut usize) -> Result<usize, KernelError> {
        let bad = || KernelError::BadNotes;
        let word = |o: usize| -> Result<usize, KernelError> {
            let b = area.get(o..o.checked_add(4).ok_or_else(bad)?).ok_or_else(bad)?;
            Ok(b.iter().rev().fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
        };
        let mut off = 0usize;
        let mut found = 0;
        while off.checked_add(12).is_some_and(|end| end <= area.len()) {
            let (namesz, descsz, typ) = (word(off)?, word(off + 4)?, word(off + 8)?);
            let name_start = off + 12;
            let name_end = name_start.checked_add(namesz).ok_or_else(bad)?;
            let desc_start = name_start.checked_add(namesz.next_multiple_of(4)).ok_or_else(bad)?;
            let desc_end = desc_start.checked_add(descsz).ok_or_else(bad)?;
            let name = area.get(name_start..name_end).ok_or_else(bad)?;
            let desc = area.get(desc_start..desc_end).ok_or_else(bad)?;
            *count += 1;
            if *count > MAX_NOTES {
                return Err(bad());
            }
            if name == b"Xen\0" {
                self.apply(u32::try_from(typ).map_err(|_| bad())?, desc)?;
                found += 1;
            }
            off = desc_start.checked_add(descsz.next_multiple_of(4)).ok_or_else(bad)?;
        }
        Ok(found)
    }

    /// Parses the legacy `NAME=VALUE,...` string of `__xen_guest`.
    fn parse_legacy(&mut self, s: &[u8]) -> Result<(), KernelError> {
        self.legacy = true;
        let s = string(s);
        let mut hypercall_page_pfn = None;
        for item in s.split(|&b| b == b',') {
            let mut kv = item.splitn(2, |&b| b == b'=');
            let (key, value) = (kv.next().unwrap_or_default(), kv.next().unwrap_or_default());
            let num = || parse_number(value);
            match key {
                b"LOADER" => self.loader = Some(owned(value)),
                b"GUEST_OS" => self.guest_os = Some(owned(value)),
                b"XEN_VER" => self.xen_version = Some(owned(value)),
                b"PAE" => self.pae = value.starts_with(b"yes"),
                b"VIRT_BASE" => self.virt_base = num(),
                b"VIRT_ENTRY" => self.entry = num(),
                b"ELF_PADDR_OFFSET" => self.paddr_offset = num(),
                b"HYPERCALL_PAGE" => hypercall_page_pfn = num(),
                b"FEATURES" => {
                    let (sup, req) = parse_features(value)?;
                    self.supported |= sup;
                    self.required |= req;
                }
                _ => {}
            }
        }
        // The legacy HYPERCALL_PAGE is a pfn relative to VIRT_BASE.
        if let Some(pfn) = hypercall_page_pfn {
            let base = self.virt_base.unwrap_or(0);
            self.hypercall_page = pfn.checked_mul(4096).and_then(|o| o.checked_add(base));
        }
        Ok(())
    }

    /// Reads the notes of `elf` (program headers, then sections, then
    /// `__xen_guest`) and checks that Xen would accept the image as a domU.
    pub fn from_elf(elf: &Elf) -> Result<Self, KernelError> {
        let mut notes = XenNotes::default();
        let (mut found, mut count) = (0, 0);
        for ph in elf.phdrs.iter().filter(|p| p.typ == PT_NOTE && p.offset != 0) {
            found += notes.parse_area(elf.bytes(ph.offset, ph.filesz)?, &mut count)?;
        }
        if found == 0 {
            for sh in elf.shdrs.iter().filter(|s| s.typ == SHT_NOTE) {
                found += notes.parse_area(elf.bytes(sh.offset, sh.size)?, &mut count)?;
            }
        }
        if found == 0 {
            match elf.shdrs.iter().find(|sh| elf.section_name(sh) == Some(&b"__xen_guest"[..])) {
                Some(sh) => notes.parse_legacy(elf.bytes(sh.offset, sh.size)?)?,
                None => return Err(KernelError::NotXenKernel("no Xen ELF notes and no __xen_guest section")),
            }
        }
        notes.check()?;
        Ok(notes)
    }

    /// Xen's acceptance checks on the notes.
    fn check(&self) -> Result<(), KernelError> {
        let loader_ok = self.loader.as_deref().is_some_and(|l| l.starts_with("generic"));
        let os_ok = self.guest_os.as_deref().is_some_and(|o| o.starts_with("linux"));
        if !loader_ok && !os_ok {
            return Err(KernelError::NotXenKernel("neither LOADER=generic nor GUEST_OS=linux"));
        }
        if !self.xen_version.as_deref().is_some_and(|v| v.starts_with("xen-3.0")) {
            return Err(KernelError::NotXenKernel("XEN_VERSION is not xen-3.0"));
        }
        if self.paddr_offset.is_some() && self.virt_base.is_none() && !self.legacy {
            return Err(KernelError::NotXenKernel("PADDR_OFFSET without VIRT_BASE"));
        }
        if self.required & (1 << SUPERVISOR_MODE_KERNEL) != 0 || self.required & !self.supported != 0 {
            return Err(KernelError::UnsupportedRequiredFeature(self.required & !self.supported));
        }
        Ok(())
    }

    /// `virt_base` (default 0).
    pub fn virt_base(&self) -> u64 {
        self.virt_base.unwrap_or(0)
    }

    /// `virt_offset = virt_base - paddr_offset`; PADDR_OFFSET defaults to 0
    /// with notes and to VIRT_BASE with the legacy section.
    pub fn virt_offset(&self) -> u64 {
        let paddr_offset = self.paddr_offset.unwrap_or(if self.legacy { self.virt_base() } else { 0 });
        self.virt_base().wrapping_sub(paddr_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_sizes_and_strings() {
        assert_eq!(numeric(&[0x34, 0x12]), 0x1234);
        assert_eq!(numeric(&[1, 0, 0, 0, 0, 0, 0, 0x80]), 0x8000_0000_0000_0001);
        assert_eq!(numeric(&[1, 2, 3]), 0); // odd sizes read as 0, as in Xen
        assert_eq!(string(b"linux\0\0\0"), b"linux");
        assert_eq!(string(b"!writable_page_tables|pae_pgdir_above_4gb"), b"!writable_page_tables|pae_pgdir_above_4gb");
    }

    #[test]
    fn features_supported_and_required() {
        let (s, r) = parse_features(b"!writable_page_tables|pae_pgdir_above_4gb|no_such_thing").unwrap();
        assert_eq!((s, r), (1 | 1 << 4, 1));
        assert!(matches!(parse_features(b"!no_such_thing"), Err(KernelError::UnknownRequiredFeature(_))));
    }

    #[test]
    fn note_areas_are_walked_with_checked_sizes() {
        let mut area = Vec::new();
        let mut note = |typ: u32, desc: &[u8]| {
            area.extend_from_slice(&4u32.to_le_bytes());
            area.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            area.extend_from_slice(&typ.to_le_bytes());
            area.extend_from_slice(b"Xen\0");
            area.extend_from_slice(desc);
            area.resize(area.len().next_multiple_of(4), 0);
        };
        note(n::XEN_ELFNOTE_ENTRY, &0xffff_ffff_8100_0000u64.to_le_bytes());
        note(n::XEN_ELFNOTE_GUEST_OS, b"linux");
        note(n::XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0");
        let mut notes = XenNotes::default();
        assert_eq!(notes.parse_area(&area, &mut 0), Ok(3));
        assert_eq!(notes.entry, Some(0xffff_ffff_8100_0000));
        assert_eq!(notes.check(), Ok(()));
        // A descsz that runs past the area.
        let mut bad = area.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(XenNotes::default().parse_area(&bad, &mut 0), Err(KernelError::BadNotes));
        for len in 0..area.len() {
            let _ = XenNotes::default().parse_area(&area[..len], &mut 0);
        }
    }

    #[test]
    fn the_legacy_string_is_read() {
        let mut notes = XenNotes::default();
        notes
            .parse_legacy(b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x80000000,HYPERCALL_PAGE=0x2,LOADER=generic\0")
            .unwrap();
        assert_eq!(notes.hypercall_page, Some(0x8000_2000));
        assert_eq!(notes.virt_offset(), 0, "PADDR_OFFSET defaults to VIRT_BASE");
        assert_eq!(notes.check(), Ok(()));
    }
}
