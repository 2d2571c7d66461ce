//! A bounds-checked reader for the parts of an ELF64 image the builder
//! uses: the header, program headers and section headers. Every read is
//! checked against the image, so a malformed kernel is an error, never a
//! fault (the xmas-elf crate indexes unchecked and panics on such input).

use alloc::vec::Vec;

use super::BuildError;

/// `PT_LOAD`
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`
pub const PT_NOTE: u32 = 4;
/// `SHT_NOTE`
pub const SHT_NOTE: u32 = 7;

/// A program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`
    pub typ: u32,
    /// `p_flags` (R=4, W=2, X=1)
    pub flags: u32,
    /// `p_offset`
    pub offset: u64,
    /// `p_vaddr`
    pub vaddr: u64,
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

/// A parsed ELF64 little-endian x86_64 image.
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

fn u16_at(b: &[u8], off: usize) -> Result<u16, BuildError> {
    let s = b.get(off..off.checked_add(2).ok_or(BuildError::BadElf)?).ok_or(BuildError::BadElf)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BuildError> {
    let s = b.get(off..off.checked_add(4).ok_or(BuildError::BadElf)?).ok_or(BuildError::BadElf)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, BuildError> {
    let s = b.get(off..off.checked_add(8).ok_or(BuildError::BadElf)?).ok_or(BuildError::BadElf)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

fn to_usize(v: u64) -> Result<usize, BuildError> {
    usize::try_from(v).map_err(|_| BuildError::BadElf)
}

impl<'a> Elf<'a> {
    /// Parses and checks the headers.
    pub fn parse(image: &'a [u8]) -> Result<Self, BuildError> {
        let ident = image.get(..16).ok_or(BuildError::BadElf)?;
        // Magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT.
        if ident[..4] != [0x7f, b'E', b'L', b'F'] || ident[4] != 2 || ident[5] != 1 || ident[6] != 1 {
            return Err(BuildError::BadElf);
        }
        if u16_at(image, 18)? != 62 {
            return Err(BuildError::BadElf); // not EM_X86_64
        }
        let entry = u64_at(image, 24)?;
        let (phoff, shoff) = (to_usize(u64_at(image, 32)?)?, to_usize(u64_at(image, 40)?)?);
        let (phentsize, phnum) = (usize::from(u16_at(image, 54)?), usize::from(u16_at(image, 56)?));
        let (shentsize, shnum) = (usize::from(u16_at(image, 58)?), usize::from(u16_at(image, 60)?));
        let shstrndx = usize::from(u16_at(image, 62)?);
        let mut phdrs = Vec::with_capacity(phnum);
        if phnum > 0 && phentsize < 56 {
            return Err(BuildError::BadElf);
        }
        for i in 0..phnum {
            let o = phoff.checked_add(i.checked_mul(phentsize).ok_or(BuildError::BadElf)?).ok_or(BuildError::BadElf)?;
            phdrs.push(Phdr {
                typ: u32_at(image, o)?,
                flags: u32_at(image, o + 4)?,
                offset: u64_at(image, o + 8)?,
                vaddr: u64_at(image, o + 16)?,
                paddr: u64_at(image, o + 24)?,
                filesz: u64_at(image, o + 32)?,
                memsz: u64_at(image, o + 40)?,
            });
        }
        let mut shdrs = Vec::new();
        if shoff != 0 && shnum > 0 {
            if shentsize < 64 {
                return Err(BuildError::BadElf);
            }
            for i in 0..shnum {
                let o =
                    shoff.checked_add(i.checked_mul(shentsize).ok_or(BuildError::BadElf)?).ok_or(BuildError::BadElf)?;
                shdrs.push(Shdr {
                    name: u32_at(image, o)?,
                    typ: u32_at(image, o + 4)?,
                    offset: u64_at(image, o + 24)?,
                    size: u64_at(image, o + 32)?,
                });
            }
        }
        Ok(Elf { image, entry, phdrs, shdrs, shstrndx })
    }

    /// The bytes at `[offset, offset + len)` of the image.
    pub fn bytes(&self, offset: u64, len: u64) -> Result<&'a [u8], BuildError> {
        let start = to_usize(offset)?;
        let end = start.checked_add(to_usize(len)?).ok_or(BuildError::BadElf)?;
        self.image.get(start..end).ok_or(BuildError::BadElf)
    }

    /// A section's name, if the string table has it.
    pub fn section_name(&self, sh: &Shdr) -> Option<&'a [u8]> {
        let strtab = self.shdrs.get(self.shstrndx)?;
        let table = self.bytes(strtab.offset, strtab.size).ok()?;
        let rest = table.get(usize::try_from(sh.name).ok()?..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    }

    /// Loadable segments: `PT_LOAD` with any of R, W, X.
    pub fn loadable(&self) -> impl Iterator<Item = &Phdr> {
        self.phdrs.iter().filter(|p| p.typ == PT_LOAD && p.flags & 7 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_wrong_and_overflowing_headers() {
        assert!(Elf::parse(b"\x7fELF").is_err());
        let mut h = [0u8; 64];
        h[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        h[18] = 62;
        assert!(Elf::parse(&h).is_ok());
        let mut wrong = h;
        wrong[18] = 3; // i386
        assert!(Elf::parse(&wrong).is_err());
        let mut huge = h;
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // phoff
        huge[54] = 56;
        huge[56] = 1;
        assert!(Elf::parse(&huge).is_err());
        let mut small_ent = h;
        small_ent[54] = 8;
        small_ent[56] = 1;
        assert!(Elf::parse(&small_ent).is_err());
    }
}
