//! A bounds-checked reader for the multiboot2 boot information GRUB hands
//! over: command line, modules, memory map and the loader's copy of the
//! ACPI RSDP. Nothing here allocates, so it runs before the heap exists.

/// The multiboot2 magic GRUB leaves in `eax`.
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_LOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;

/// Why the boot information could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// Shorter than its header or its own `total_size`.
    Truncated,
    /// A tag runs past the end or has a size below 8.
    BadTag,
}

/// A validated view of the boot information block.
#[derive(Clone, Copy)]
pub struct BootInfo<'a> {
    bytes: &'a [u8],
}

/// One tag: its type and payload (after the 8-byte tag header).
#[derive(Clone, Copy, Debug)]
struct Tag<'a> {
    typ: u32,
    body: &'a [u8],
}

/// A boot module (a guest kernel or initrd) in machine memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// Physical start address.
    pub start: u64,
    /// Physical end address (exclusive).
    pub end: u64,
    /// The module's string from `module2` (its command line).
    pub string: &'a str,
}

/// A memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Physical base address.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// Multiboot2/E820 type: 1 available, 3 ACPI reclaimable, 4 NVS, 5 bad.
    pub kind: u32,
}

impl MemoryRegion {
    /// Whether the region is RAM free for use.
    pub fn is_available(&self) -> bool {
        self.kind == 1
    }

    /// A short name of the region's type, as Xen prints the E820 map.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            1 => "usable",
            3 => "ACPI data",
            4 => "ACPI NVS",
            5 => "unusable",
            _ => "reserved",
        }
    }
}

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn read_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

fn c_str(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..end]).unwrap_or("<invalid utf-8>")
}

impl<'a> BootInfo<'a> {
    /// Validates the block's header and every tag's bounds.
    pub fn new(bytes: &'a [u8]) -> Result<Self, BootInfoError> {
        let total = read_u32(bytes, 0).ok_or(BootInfoError::Truncated)? as usize;
        let bytes = bytes.get(..total).ok_or(BootInfoError::Truncated)?;
        let info = BootInfo { bytes };
        let mut off = 8;
        loop {
            let typ = read_u32(bytes, off).ok_or(BootInfoError::BadTag)?;
            let size = read_u32(bytes, off + 4).ok_or(BootInfoError::BadTag)? as usize;
            if size < 8 || off.checked_add(size).is_none_or(|end| end > total) {
                return Err(BootInfoError::BadTag);
            }
            if typ == TAG_END {
                return Ok(info);
            }
            off = (off + size + 7) & !7;
        }
    }

    /// The size of the block in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the block is empty (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn tags(&self) -> impl Iterator<Item = Tag<'a>> + 'a {
        let bytes = self.bytes;
        let mut off = 8usize;
        core::iter::from_fn(move || {
            let typ = read_u32(bytes, off)?;
            let size = read_u32(bytes, off + 4)? as usize;
            if typ == TAG_END || size < 8 {
                return None;
            }
            let body = bytes.get(off + 8..off + size)?;
            off = (off + size + 7) & !7;
            Some(Tag { typ, body })
        })
    }

    /// The hypervisor's command line (empty if GRUB gave none).
    pub fn cmdline(&self) -> &'a str {
        self.tags().find(|t| t.typ == TAG_CMDLINE).map(|t| c_str(t.body)).unwrap_or("")
    }

    /// The boot loader's name, if given.
    pub fn loader_name(&self) -> Option<&'a str> {
        self.tags().find(|t| t.typ == TAG_LOADER_NAME).map(|t| c_str(t.body))
    }

    /// The modules, in `module2` order.
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> + 'a {
        self.tags().filter(|t| t.typ == TAG_MODULE).filter_map(|t| {
            let start = u64::from(read_u32(t.body, 0)?);
            let end = u64::from(read_u32(t.body, 4)?);
            let string = c_str(t.body.get(8..)?);
            (end >= start).then_some(Module { start, end, string })
        })
    }

    /// The copy of the ACPI RSDP the loader found: tag 15 (ACPI 2.0+) if
    /// present, else tag 14 (ACPI 1.0). Unchecked bytes: the caller
    /// validates them ([`crate::acpi::Rsdp::parse`]).
    pub fn acpi_rsdp(&self) -> Option<&'a [u8]> {
        let find = |typ| self.tags().find(|t| t.typ == typ).map(|t| t.body);
        find(TAG_ACPI_NEW).or_else(|| find(TAG_ACPI_OLD))
    }

    /// The memory map entries.
    pub fn memory_map(&self) -> impl Iterator<Item = MemoryRegion> + 'a {
        let mmap = self.tags().find(|t| t.typ == TAG_MMAP);
        let (entry_size, entries) = match mmap.and_then(|t| Some((read_u32(t.body, 0)? as usize, t.body.get(8..)?))) {
            Some((size, entries)) if size >= 24 => (size, entries),
            _ => (24, &[][..]),
        };
        entries.chunks_exact(entry_size).filter_map(|e| {
            Some(MemoryRegion { base: read_u64(e, 0)?, length: read_u64(e, 8)?, kind: read_u32(e, 16)? })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn tag(out: &mut Vec<u8>, typ: u32, body: &[u8]) {
        out.extend_from_slice(&typ.to_le_bytes());
        out.extend_from_slice(&((body.len() + 8) as u32).to_le_bytes());
        out.extend_from_slice(body);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 8];
        tag(&mut b, TAG_CMDLINE, b"dom0_mem=64M\0");
        tag(&mut b, TAG_LOADER_NAME, b"GRUB 2.06\0");
        let mut m = Vec::new();
        m.extend_from_slice(&0x100_0000u32.to_le_bytes());
        m.extend_from_slice(&0x100_2000u32.to_le_bytes());
        m.extend_from_slice(b"console=hvc0\0");
        tag(&mut b, TAG_MODULE, &m);
        let mut mm = Vec::new();
        mm.extend_from_slice(&24u32.to_le_bytes());
        mm.extend_from_slice(&0u32.to_le_bytes());
        for (base, len, kind) in [(0u64, 0x9fc00u64, 1u32), (0x100000, 0x7ee0000, 1), (0xfffc0000, 0x40000, 2)] {
            mm.extend_from_slice(&base.to_le_bytes());
            mm.extend_from_slice(&len.to_le_bytes());
            mm.extend_from_slice(&kind.to_le_bytes());
            mm.extend_from_slice(&0u32.to_le_bytes());
        }
        tag(&mut b, TAG_MMAP, &mm);
        tag(&mut b, TAG_END, &[]);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn reads_every_tag() {
        let b = sample();
        let info = BootInfo::new(&b).unwrap();
        assert_eq!(info.cmdline(), "dom0_mem=64M");
        assert_eq!(info.loader_name(), Some("GRUB 2.06"));
        let mods: Vec<_> = info.modules().collect();
        assert_eq!(mods, [Module { start: 0x100_0000, end: 0x100_2000, string: "console=hvc0" }]);
        let map: Vec<_> = info.memory_map().collect();
        assert_eq!(map.len(), 3);
        assert!(map[1].is_available() && !map[2].is_available());
        assert_eq!(map[2].kind_name(), "reserved");
        assert_eq!(info.acpi_rsdp(), None);
    }

    #[test]
    fn acpi_new_tag_wins_over_old() {
        let with = |tags: &[(u32, &[u8])]| {
            let mut b = vec![0u8; 8];
            for &(typ, body) in tags {
                tag(&mut b, typ, body);
            }
            tag(&mut b, TAG_END, &[]);
            let len = b.len() as u32;
            b[0..4].copy_from_slice(&len.to_le_bytes());
            b
        };
        let b = with(&[(TAG_ACPI_OLD, b"old rsdp 20 bytes..."), (TAG_ACPI_NEW, b"new rsdp")]);
        assert_eq!(BootInfo::new(&b).unwrap().acpi_rsdp(), Some(&b"new rsdp"[..]));
        let b = with(&[(TAG_ACPI_OLD, b"old rsdp")]);
        assert_eq!(BootInfo::new(&b).unwrap().acpi_rsdp(), Some(&b"old rsdp"[..]));
    }

    #[test]
    fn rejects_truncated_and_overlong_tags() {
        let b = sample();
        assert_eq!(BootInfo::new(&b[..4]).err(), Some(BootInfoError::Truncated));
        assert_eq!(BootInfo::new(&b[..b.len() - 8]).err(), Some(BootInfoError::Truncated));
        let mut bad = b.clone();
        bad[12..16].copy_from_slice(&0x1000u32.to_le_bytes()); // cmdline tag size past the end
        assert_eq!(BootInfo::new(&bad).err(), Some(BootInfoError::BadTag));
        let mut tiny = b.clone();
        tiny[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(BootInfo::new(&tiny).err(), Some(BootInfoError::BadTag));
    }
}
