//! Building 4-level x86_64 page tables in machine memory: the mechanism the
//! hypervisor uses for its own address space (guest tables are the builder's
//! and the PV MMU's business).

use super::{MachineMemory, Mfn, PAGE_SIZE};

/// Present.
pub const PTE_P: u64 = 1 << 0;
/// Writable.
pub const PTE_RW: u64 = 1 << 1;
/// User-accessible.
pub const PTE_US: u64 = 1 << 2;
/// Accessed.
pub const PTE_A: u64 = 1 << 5;
/// Dirty.
pub const PTE_D: u64 = 1 << 6;
/// Page size (superpage at L2/L3).
pub const PTE_PS: u64 = 1 << 7;
/// No-execute.
pub const PTE_NX: u64 = 1 << 63;
/// Address bits of an entry.
pub const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Page sizes a mapping can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, mapped by an L1 entry.
    Size4K,
    /// 2 MiB, mapped by an L2 entry with PS.
    Size2M,
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfMemory,
    /// A table frame is not reachable in machine memory.
    BadTable,
    /// Something else is already mapped there.
    AlreadyMapped,
    /// `va` or `pa` is not aligned to the page size.
    Misaligned,
}

/// Entry `i` of a table's bytes (`i < 512`; 0 past the end).
#[inline(always)]
pub(crate) fn read_entry(frame: &[u8; PAGE_SIZE], i: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(e) = frame.get(i * 8..i * 8 + 8) {
        b.copy_from_slice(e);
    }
    u64::from_le_bytes(b)
}

/// Writes entry `i` of a table's bytes (`i < 512`; nothing past the end).
#[inline(always)]
pub(crate) fn write_entry(frame: &mut [u8; PAGE_SIZE], i: usize, v: u64) {
    if let Some(e) = frame.get_mut(i * 8..i * 8 + 8) {
        e.copy_from_slice(&v.to_le_bytes());
    }
}

fn read(mem: &dyn MachineMemory, table: Mfn, i: usize) -> Result<u64, MapError> {
    Ok(read_entry(mem.frame(table).ok_or(MapError::BadTable)?, i))
}

fn write(mem: &mut dyn MachineMemory, table: Mfn, i: usize, v: u64) -> Result<(), MapError> {
    write_entry(mem.frame_mut(table).ok_or(MapError::BadTable)?, i, v);
    Ok(())
}

/// Allocates and zeroes a table frame.
pub fn new_table(mem: &mut dyn MachineMemory, alloc: &mut dyn FnMut() -> Option<Mfn>) -> Result<Mfn, MapError> {
    let mfn = alloc().ok_or(MapError::OutOfMemory)?;
    *mem.frame_mut(mfn).ok_or(MapError::BadTable)? = [0; PAGE_SIZE];
    Ok(mfn)
}

/// The table below entry `i` of `table`, created with `table_flags` if absent.
fn next(
    mem: &mut dyn MachineMemory,
    alloc: &mut dyn FnMut() -> Option<Mfn>,
    table: Mfn,
    i: usize,
    table_flags: u64,
) -> Result<Mfn, MapError> {
    let e = read(mem, table, i)?;
    if e & PTE_P != 0 {
        if e & PTE_PS != 0 {
            return Err(MapError::AlreadyMapped);
        }
        return Ok(Mfn::containing(e & PTE_ADDR));
    }
    let t = new_table(mem, alloc)?;
    write(mem, table, i, t.addr() | table_flags)?;
    Ok(t)
}

/// Maps `va` → `pa` in the hierarchy rooted at `l4`, creating intermediate
/// tables (with `table_flags`) from `alloc`.
#[allow(clippy::too_many_arguments)]
pub fn map(
    mem: &mut dyn MachineMemory,
    alloc: &mut dyn FnMut() -> Option<Mfn>,
    l4: Mfn,
    va: u64,
    pa: u64,
    size: PageSize,
    leaf_flags: u64,
    table_flags: u64,
) -> Result<(), MapError> {
    let align = match size {
        PageSize::Size4K => 0xfff,
        PageSize::Size2M => 0x1f_ffff,
    };
    if va & align != 0 || pa & align != 0 {
        return Err(MapError::Misaligned);
    }
    let idx = |shift: u32| ((va >> shift) & 0x1ff) as usize;
    let l3 = next(mem, alloc, l4, idx(39), table_flags)?;
    let l2 = next(mem, alloc, l3, idx(30), table_flags)?;
    let (table, i, leaf) = match size {
        PageSize::Size2M => (l2, idx(21), pa | leaf_flags | PTE_PS),
        PageSize::Size4K => (next(mem, alloc, l2, idx(21), table_flags)?, idx(12), pa | leaf_flags),
    };
    if read(mem, table, i)? & PTE_P != 0 {
        return Err(MapError::AlreadyMapped);
    }
    write(mem, table, i, leaf)
}

/// Reads entry `i` of table `table`.
pub fn entry(mem: &dyn MachineMemory, table: Mfn, i: usize) -> Result<u64, MapError> {
    read(mem, table, i)
}

/// Writes entry `i` of table `table`.
pub fn set_entry(mem: &mut dyn MachineMemory, table: Mfn, i: usize, value: u64) -> Result<(), MapError> {
    write(mem, table, i, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::guest_access::{Access, GuestMemory};
    extern crate std;

    #[test]
    fn maps_4k_and_2m_and_refuses_overlaps() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 16]);
        let mut next_free = 1u64;
        let mut alloc = || {
            next_free += 1;
            (next_free < 16).then_some(Mfn(next_free))
        };
        let flags = PTE_P | PTE_RW | PTE_US;
        map(&mut mem, &mut alloc, Mfn(0), 0x40_0000_1000, 0x1000, PageSize::Size4K, flags, flags).unwrap();
        map(&mut mem, &mut alloc, Mfn(0), 0x40_0020_0000, 0x20_0000, PageSize::Size2M, flags, flags).unwrap();
        assert_eq!(
            map(&mut mem, &mut alloc, Mfn(0), 0x40_0000_1000, 0x2000, PageSize::Size4K, flags, flags),
            Err(MapError::AlreadyMapped)
        );
        assert_eq!(
            map(&mut mem, &mut alloc, Mfn(0), 0x40_0000_1800, 0x2000, PageSize::Size4K, flags, flags),
            Err(MapError::Misaligned)
        );
        let g = GuestMemory::new(&mut mem, Mfn(0));
        assert_eq!(g.translate(0x40_0000_1abc, Access::Write), Ok(0x1abc));
        assert_eq!(g.translate(0x40_0021_0000, Access::Read), Ok(0x21_0000));
    }
}
