//! Reading a PV kernel's Xen ELF notes (`.note.Xen`), or the legacy
//! `__xen_guest` string, into [`XenNotes`], with the acceptance checks of
//! Xen's libelf (`elf_xen_parse`, `elf_xen_note_check`).
//!
//! Where Xen looks: `PT_NOTE` program headers first, then `SHT_NOTE`
//! sections, then `__xen_guest`. Numeric notes are 1, 2, 4 or 8 bytes,
//! little-endian (other sizes read as 0); strings are bounded by `descsz`.

use guest_abi::elfnote as n;

use super::elf::{Elf, PT_NOTE, SHT_NOTE};
use super::BuildError;

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
const SUPERVISOR_MODE_KERNEL: u32 = guest_abi::features::XENFEAT_SUPERVISOR_MODE_KERNEL;
/// Bit of `XENFEAT_dom0`.
const FEATURE_DOM0: u32 = guest_abi::features::XENFEAT_DOM0;

/// What a kernel's notes say (absent notes are `None` or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes<'a> {
    /// `ENTRY`: the initial instruction pointer.
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE`: where the hypervisor writes the hypercall stubs.
    pub hypercall_page: Option<u64>,
    /// `VIRT_BASE`: the virtual address of pseudo-physical 0.
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `XEN_VERSION` (must start with `xen-3.0`).
    pub xen_version: Option<&'a [u8]>,
    /// `GUEST_OS`.
    pub guest_os: Option<&'a [u8]>,
    /// `LOADER`.
    pub loader: Option<&'a [u8]>,
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
    /// Whether a `SUPPORTED_FEATURES` note was present.
    pub has_supported_features_note: bool,
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
    desc.iter().position(|&b| b == 0).map_or(desc, |end| &desc[..end])
}

/// Parses a `FEATURES` string (`a|b|!c`) into (supported, required).
fn parse_features(s: &[u8]) -> Result<(u32, u32), BuildError> {
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
            None if req => return Err(BuildError::UnknownRequiredFeature),
            None => {}
        }
    }
    Ok((supported, required))
}

impl<'a> XenNotes<'a> {
    fn apply(&mut self, typ: u32, desc: &'a [u8]) -> Result<(), BuildError> {
        match typ {
            n::XEN_ELFNOTE_ENTRY => self.entry = Some(numeric(desc)),
            n::XEN_ELFNOTE_HYPERCALL_PAGE => self.hypercall_page = Some(numeric(desc)),
            n::XEN_ELFNOTE_VIRT_BASE => self.virt_base = Some(numeric(desc)),
            n::XEN_ELFNOTE_PADDR_OFFSET => self.paddr_offset = Some(numeric(desc)),
            n::XEN_ELFNOTE_XEN_VERSION => self.xen_version = Some(string(desc)),
            n::XEN_ELFNOTE_GUEST_OS => self.guest_os = Some(string(desc)),
            n::XEN_ELFNOTE_LOADER => self.loader = Some(string(desc)),
            n::XEN_ELFNOTE_PAE_MODE => self.pae = string(desc).starts_with(b"yes"),
            n::XEN_ELFNOTE_FEATURES => {
                let (s, r) = parse_features(string(desc))?;
                self.supported |= s;
                self.required |= r;
            }
            n::XEN_ELFNOTE_INIT_P2M => self.init_p2m = Some(numeric(desc)),
            n::XEN_ELFNOTE_MOD_START_PFN => self.mod_start_pfn = numeric(desc) != 0,
            n::XEN_ELFNOTE_SUPPORTED_FEATURES => {
                self.has_supported_features_note = true;
                for word in desc.chunks_exact(4) {
                    self.supported |= u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                }
            }
            // INFO, GUEST_VERSION, BSD_SYMTAB, HV_START_LOW, L1_MFN_VALID,
            // SUSPEND_CANCEL, PHYS32_ENTRY and unknown types: not used by a
            // 64-bit PV builder.
            _ => {}
        }
        Ok(())
    }

    /// Parses one note area; returns how many Xen notes it held.
    fn parse_area(&mut self, area: &'a [u8]) -> Result<usize, BuildError> {
        let mut off = 0usize;
        let mut count = 0;
        while off + 12 <= area.len() {
            let word = |o: usize| u32::from_le_bytes([area[o], area[o + 1], area[o + 2], area[o + 3]]) as usize;
            let (namesz, descsz, typ) = (word(off), word(off + 4), word(off + 8) as u32);
            let name_start = off + 12;
            let desc_start = name_start.checked_add(namesz.next_multiple_of(4)).ok_or(BuildError::BadNotes)?;
            let desc_end = desc_start.checked_add(descsz).ok_or(BuildError::BadNotes)?;
            let name = area.get(name_start..name_start + namesz).ok_or(BuildError::BadNotes)?;
            let desc = area.get(desc_start..desc_end).ok_or(BuildError::BadNotes)?;
            if name == b"Xen\0" {
                self.apply(typ, desc)?;
                count += 1;
                if count > 512 {
                    return Err(BuildError::BadNotes);
                }
            }
            off = desc_start.checked_add(descsz.next_multiple_of(4)).ok_or(BuildError::BadNotes)?;
        }
        Ok(count)
    }

    /// Parses the legacy `NAME=VALUE,...` string of `__xen_guest`.
    fn parse_legacy(&mut self, s: &'a [u8]) -> Result<(), BuildError> {
        self.legacy = true;
        let s = string(s);
        let mut hypercall_page_pfn = None;
        for item in s.split(|&b| b == b',') {
            let mut kv = item.splitn(2, |&b| b == b'=');
            let (key, value) = (kv.next().unwrap_or(b""), kv.next().unwrap_or(b""));
            let num = || parse_number(value);
            match key {
                b"LOADER" => self.loader = Some(value),
                b"GUEST_OS" => self.guest_os = Some(value),
                b"XEN_VER" => self.xen_version = Some(value),
                b"PAE" => self.pae = value.starts_with(b"yes"),
                b"VIRT_BASE" => self.virt_base = num(),
                b"VIRT_ENTRY" => self.entry = num(),
                b"ELF_PADDR_OFFSET" => self.paddr_offset = num(),
                b"HYPERCALL_PAGE" => hypercall_page_pfn = num(),
                _ => {}
            }
        }
        // The legacy HYPERCALL_PAGE is a pfn relative to VIRT_BASE.
        if let Some(pfn) = hypercall_page_pfn {
            let base = self.virt_base.unwrap_or(0);
            self.hypercall_page = pfn.checked_mul(4096).and_then(|o| o.checked_add(base));
        }
        // FEATURES in the legacy form uses the same syntax.
        for item in s.split(|&b| b == b',') {
            if let Some(f) = item.strip_prefix(b"FEATURES=") {
                let (sup, req) = parse_features(f)?;
                self.supported |= sup;
                self.required |= req;
            }
        }
        Ok(())
    }

    /// Reads the notes of `elf` (program headers, then sections, then
    /// `__xen_guest`) and checks that Xen would accept the image.
    pub fn from_elf(elf: &Elf<'a>, initial_domain: bool) -> Result<Self, BuildError> {
        let mut notes = XenNotes::default();
        let mut found = 0;
        for ph in elf.phdrs.iter().filter(|p| p.typ == PT_NOTE && p.offset != 0) {
            found += notes.parse_area(elf.bytes(ph.offset, ph.filesz)?)?;
        }
        if found == 0 {
            for sh in elf.shdrs.iter().filter(|s| s.typ == SHT_NOTE) {
                found += notes.parse_area(elf.bytes(sh.offset, sh.size)?)?;
            }
        }
        if found == 0 {
            match elf.shdrs.iter().find(|sh| elf.section_name(sh) == Some(&b"__xen_guest"[..])) {
                Some(sh) => notes.parse_legacy(elf.bytes(sh.offset, sh.size)?)?,
                None => return Err(BuildError::NotXenKernel),
            }
        }
        notes.check(initial_domain)?;
        Ok(notes)
    }

    /// Xen's acceptance checks on the notes.
    fn check(&self, initial_domain: bool) -> Result<(), BuildError> {
        let loader_ok = self.loader.is_some_and(|l| l.starts_with(b"generic"));
        let os_ok = self.guest_os.is_some_and(|o| o.starts_with(b"linux"));
        if !loader_ok && !os_ok {
            return Err(BuildError::NotXenKernel);
        }
        if !self.xen_version.is_some_and(|v| v.starts_with(b"xen-3.0")) {
            return Err(BuildError::WrongXenVersion);
        }
        if self.paddr_offset.is_some() && self.virt_base.is_none() && !self.legacy {
            return Err(BuildError::PaddrOffsetWithoutVirtBase);
        }
        if self.required & (1 << SUPERVISOR_MODE_KERNEL) != 0 {
            return Err(BuildError::UnsupportedRequiredFeature);
        }
        if self.required & !self.supported != 0 {
            return Err(BuildError::UnsupportedRequiredFeature);
        }
        if initial_domain && self.has_supported_features_note && self.supported & (1 << FEATURE_DOM0) == 0 {
            return Err(BuildError::NotDom0Capable);
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

fn parse_number(s: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(s).ok()?;
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
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
        // Linux's FEATURES has no NUL: bounded by descsz.
        assert_eq!(string(b"!writable_page_tables|pae_pgdir_above_4gb"), b"!writable_page_tables|pae_pgdir_above_4gb");
    }

    #[test]
    fn features_supported_and_required() {
        let (s, r) = parse_features(b"!writable_page_tables|pae_pgdir_above_4gb|no_such_thing").unwrap();
        assert_eq!(s, 1 | 1 << 4);
        assert_eq!(r, 1);
        assert_eq!(parse_features(b"!no_such_thing"), Err(BuildError::UnknownRequiredFeature));
    }
}
