//! A bounds-checked reader for the parts of an ELF64 kernel the builder
//! uses: the header, program headers and section headers.
//!
//! Kernel images are untrusted input: every offset and size is checked
//! against the image, so a malformed kernel is a [`KernelError`], never a
//! panic (the xmas-elf crate indexes unchecked and panics on such input).
//! Semantics: Xen 4.17 `xen/common/libelf/libelf-tools.c`.

use super::KernelError;

/// `PT_LOAD`
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`
pub const PT_NOTE: u32 = 4;
/// `SHT_NOTE`
pub const SHT_NOTE: u32 = 7;
/// `EM_X86_64`
const EM_X86_64: u16 = 62;
/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;
/// Size of an ELF64 section header.
const SHDR_SIZE: usize = 64;

/// A program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`
    pub typ: u32,
    /// `p_flags` (R=4, W=2, X=1)
    pub flags: u32,
    /// `p_offset`
    pub offset: u64,
    /// `p_paddr`
    pub paddr: u64,
    /// `p_filesz`
    pub filesz: u64,
    /// `p_memsz`
    pub memsz: u64,
}

/// A section header (the fields the builder needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shdr {
    /// `sh_name`: offset in the section-name string table.
    pub name: u32,
    /// `sh_type`
    pub typ: u32,
    /// `sh_offset`
    pub offset: u64,
    /// `sh_size`
    pub size: u64,
}

/// A parsed little-endian x86_64 ELF64 image.
#[derive(Debug)]
pub struct Elf<'a> {
    image: &'a [u8],
    /// `e_entry`
    pub entry: u64,
    /// Program headers.
    pub phdrs: Vec<Phdr>,
    /// Section headers.
    pub shdrs: Vec<Shdr>,
    shstrndx: usize,
}

/// `N` bytes at `off`.
fn bytes_at<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], KernelError> {
    let end = off.checked_add(N).ok_or(KernelError::BadElf("header outside the image"))?;
    let s = b.get(off..end).ok_or(KernelError::BadElf("header outside the image"))?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, KernelError> {
    bytes_at(b, off).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, KernelError> {
    bytes_at(b, off).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, KernelError> {
    bytes_at(b, off).map(u64::from_le_bytes)
}

fn to_usize(v: u64) -> Result<usize, KernelError> {
    usize::try_from(v).map_err(|_| KernelError::BadElf("offset out of range"))
}

/// The offset of table entry `i`.
fn entry_offset(base: usize, i: usize, size: usize) -> Result<usize, KernelError> {
    i.checked_mul(size).and_then(|o| base.checked_add(o)).ok_or(KernelError::BadElf("header table out of range"))
}

impl<'a> Elf<'a> {
    /// Whether `image` starts like an ELF file.
    pub fn is_elf(image: &[u8]) -> bool {
        image.starts_with(b"\x7fELF")
    }

    /// Parses and checks the headers.
    pub fn parse(image: &'a [u8]) -> Result<Self, KernelError> {
        let ident: [u8; 16] = bytes_at(image, 0).map_err(|_| KernelError::BadElf("truncated ELF header"))?;
        if !Self::is_elf(&ident) {
            return Err(KernelError::BadElf("no ELF magic"));
        }
        // ELFCLASS64, ELFDATA2LSB, EV_CURRENT.
        if ident[4] != 2 || ident[5] != 1 || ident[6] != 1 {
            return Err(KernelError::BadElf("not a little-endian ELF64 file"));
        }
        if u16_at(image, 18)? != EM_X86_64 {
            return Err(KernelError::BadElf("not an x86_64 image"));
        }
        let entry = u64_at(image, 24)?;
        let (phoff, shoff) = (to_usize(u64_at(image, 32)?)?, to_usize(u64_at(image, 40)?)?);
        let (phentsize, phnum) = (usize::from(u16_at(image, 54)?), usize::from(u16_at(image, 56)?));
        let (shentsize, shnum) = (usize::from(u16_at(image, 58)?), usize::from(u16_at(image, 60)?));
        let shstrndx = usize::from(u16_at(image, 62)?);
        if phnum > 0 && phentsize < PHDR_SIZE {
            return Err(KernelError::BadElf("program header entries too small"));
        }
        let mut phdrs = Vec::with_capacity(phnum);
        for i in 0..phnum {
            let o = entry_offset(phoff, i, phentsize)?;
            phdrs.push(Phdr {
                typ: u32_at(image, o)?,
                flags: u32_at(image, o.saturating_add(4))?,
                offset: u64_at(image, o.saturating_add(8))?,
                paddr: u64_at(image, o.saturating_add(24))?,
                filesz: u64_at(image, o.saturating_add(32))?,
                memsz: u64_at(image, o.saturating_add(40))?,
            });
        }
        let mut shdrs = Vec::new();
        if shoff != 0 && shnum > 0 {
            if shentsize < SHDR_SIZE {
                return Err(KernelError::BadElf("section header entries too small"));
            }
            for i in 0..shnum {
                let o = entry_offset(shoff, i, shentsize)?;
                shdrs.push(Shdr {
                    name: u32_at(image, o)?,
                    typ: u32_at(image, o.saturating_add(4))?,
                    offset: u64_at(image, o.saturating_add(24))?,
                    size: u64_at(image, o.saturating_add(32))?,
                });
            }
        }
        Ok(Elf { image, entry, phdrs, shdrs, shstrndx })
    }

    /// The bytes at `[offset, offset + len)` of the image.
    pub fn bytes(&self, offset: u64, len: u64) -> Result<&'a [u8], KernelError> {
        let start = to_usize(offset)?;
        let end = start.checked_add(to_usize(len)?).ok_or(KernelError::BadElf("segment out of range"))?;
        self.image.get(start..end).ok_or(KernelError::BadElf("segment outside the image"))
    }

    /// A section's name, if the string table has it.
    pub fn section_name(&self, sh: &Shdr) -> Option<&'a [u8]> {
        let strtab = self.shdrs.get(self.shstrndx)?;
        let table = self.bytes(strtab.offset, strtab.size).ok()?;
        let rest = table.get(usize::try_from(sh.name).ok()?..)?;
        rest.get(..rest.iter().position(|&b| b == 0)?)
    }

    /// Loadable segments: `PT_LOAD` with any of R, W, X.
    pub fn loadable(&self) -> impl Iterator<Item = &Phdr> {
        self.phdrs.iter().filter(|p| p.typ == PT_LOAD && p.flags & 7 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        h[18] = 62;
        h
    }

    #[test]
    fn rejects_short_wrong_and_overflowing_headers() {
        assert!(Elf::parse(b"\x7fELF").is_err());
        assert!(Elf::parse(&header()).is_ok());
        let mut wrong = header();
        wrong[18] = 3; // i386
        assert!(Elf::parse(&wrong).is_err());
        let mut huge = header();
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // phoff
        huge[54] = 56;
        huge[56] = 1;
        assert!(Elf::parse(&huge).is_err());
        let mut small_ent = header();
        small_ent[54] = 8;
        small_ent[56] = 1;
        assert!(Elf::parse(&small_ent).is_err());
        let mut big_endian = header();
        big_endian[5] = 2;
        assert!(Elf::parse(&big_endian).is_err());
    }

    #[test]
    fn every_truncation_of_a_valid_header_is_an_error() {
        let mut h = header().to_vec();
        h[32] = 64; // phoff
        h[54] = 56;
        h[56] = 1;
        h.extend_from_slice(&[0u8; 56]);
        assert!(Elf::parse(&h).is_ok());
        // Everything up to p_memsz is read (p_align, the last 8 bytes, is not).
        for len in 0..h.len() - 8 {
            assert!(Elf::parse(&h[..len]).is_err(), "{len}");
        }
    }
}
