//! The one checked path between guest virtual memory and the hypervisor.
//!
//! Every guest pointer a hypercall receives is translated here by walking the
//! guest's own page tables in software, with the rights a guest access would
//! need (present and user at every level, writable for writes), and the data
//! is copied through the hypervisor's direct map. The walk never
//! dereferences a guest address, so a bad pointer is an `-EFAULT`, never a
//! hypervisor fault.
//!
//! The fast paths, which change no page table, may first copy directly
//! through the tables the CPU has loaded ([`GuestMemory::copy_from_loaded`]:
//! Xen's `copy_to_guest`; the machine layer fixes up the copy's faults, so
//! a bad pointer is still never a hypervisor fault), when those are the
//! tables named; whatever that cannot do goes the walk's way, so the walk
//! alone decides what fails.

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};

/// The hypervisor's reserved hole (guests may not touch it): its start
/// and end.
pub use guest_abi::arch_x86::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

const PTE_PRESENT: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_PSE: u64 = 1 << 7;
/// Physical-address bits of a page-table entry.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A guest access that the guest's own page tables do not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestFault {
    /// The faulting guest virtual address.
    pub va: u64,
}

/// The kind of access being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read.
    Read,
    /// A write.
    Write,
}

/// Whether `va` is canonical (bits 63..47 all equal).
pub const fn is_canonical(va: u64) -> bool {
    ((va as i64) << 16 >> 16) as u64 == va
}

/// Whether `va` is an address a guest may reference at all.
pub const fn is_guest_addr(va: u64) -> bool {
    is_canonical(va) && !(va >= HYPERVISOR_VIRT_START && va < HYPERVISOR_VIRT_END)
}

/// The machine address of `va` through the four-level tables rooted at
/// `l4`, every entry on the way carrying all of `need`'s bits (2 MiB and
/// 1 GiB leaves included), or `None`: the walk of
/// [`MachineMemory::walk_guest`], generic so that each memory view gets
/// its own copy with the frame lookups in line.
pub fn walk_tables<M: MachineMemory + ?Sized>(mem: &M, l4: Mfn, va: u64, need: u64) -> Option<u64> {
    let mut table = l4;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let off = (((va >> shift) & 0x1ff) as usize) * 8;
        let e = u64::from_le_bytes(mem.frame(table)?.get(off..off + 8)?.try_into().ok()?);
        if e & need != need {
            return None;
        }
        let is_leaf = level == 1 || ((level == 2 || level == 3) && e & PTE_PSE != 0);
        if is_leaf {
            let page_mask = (1u64 << shift) - 1;
            let base = e & PTE_ADDR_MASK & !page_mask;
            return Some(base | (va & page_mask));
        }
        table = Mfn::containing(e & PTE_ADDR_MASK);
    }
    None
}

/// A guest address space: machine memory seen through one top-level table.
pub struct GuestMemory<'m> {
    mem: &'m mut dyn MachineMemory,
    l4: Mfn,
}

impl<'m> GuestMemory<'m> {
    /// The address space rooted at the L4 table `l4`.
    pub fn new(mem: &'m mut dyn MachineMemory, l4: Mfn) -> Self {
        GuestMemory { mem, l4 }
    }

    /// [`Self::copy_from`] for an entry that has changed no page table
    /// since the guest left it (the fast path): directly through the
    /// tables the CPU has loaded when they are this space's
    /// ([`MachineMemory::read_guest_direct`]), by the walk when they are
    /// not or the direct copy faults. The walk decides every failure, so
    /// the result is [`Self::copy_from`]'s, with one difference the
    /// machine layer documents: the CPU's supervisor access does not ask
    /// for the user bit, which the page-table validation puts on every
    /// present entry of a PV guest anyway (as in Xen).
    #[inline]
    pub fn copy_from_loaded(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        if self.mem.read_guest_direct(self.l4, va, buf) {
            return Ok(());
        }
        self.copy_from(va, buf)
    }

    /// [`Self::copy_to`] as [`Self::copy_from_loaded`] (directly only
    /// within one page, so that a fault leaves guest memory as it was).
    #[inline]
    pub fn copy_to_loaded(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
        if self.mem.write_guest_direct(self.l4, va, data) {
            return Ok(());
        }
        self.copy_to(va, data)
    }

    fn entry(&self, table: Mfn, index: u64) -> Option<u64> {
        let frame = self.mem.frame(table)?;
        let off = (index as usize) * 8;
        Some(u64::from_le_bytes(frame.get(off..off + 8)?.try_into().ok()?))
    }

    /// Translates `va` to a machine address, as the guest would access it.
    pub fn translate(&self, va: u64, access: Access) -> Result<u64, GuestFault> {
        let fault = GuestFault { va };
        if !is_guest_addr(va) {
            return Err(fault);
        }
        let need = PTE_PRESENT | PTE_USER | if access == Access::Write { PTE_RW } else { 0 };
        self.mem.walk_guest(self.l4, va, need).ok_or(fault)
    }

    /// The entries a walk for `va` meets, top level first, up to the first
    /// not-present one (for crash reports).
    pub fn walk(&self, va: u64) -> alloc::vec::Vec<u64> {
        let mut out = alloc::vec::Vec::new();
        let mut table = self.l4;
        for level in (1..=4u32).rev() {
            let Some(e) = self.entry(table, (va >> (12 + 9 * (level - 1))) & 0x1ff) else { break };
            out.push(e);
            if e & PTE_PRESENT == 0 || (level < 4 && e & PTE_PSE != 0) {
                break;
            }
            table = Mfn::containing(e & PTE_ADDR_MASK);
        }
        out
    }

    /// Copies guest memory at `va` into `buf`.
    pub fn copy_from(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        let mut done = 0;
        while done < buf.len() {
            let cur = va.checked_add(done as u64).ok_or(GuestFault { va })?;
            let ma = self.translate(cur, Access::Read)?;
            let off = (ma as usize) % PAGE_SIZE;
            let n = (PAGE_SIZE - off).min(buf.len() - done);
            let frame = self.mem.frame(Mfn::containing(ma)).ok_or(GuestFault { va: cur })?;
            buf[done..done + n].copy_from_slice(&frame[off..off + n]);
            done += n;
        }
        Ok(())
    }

    /// Copies `data` into guest memory at `va`.
    pub fn copy_to(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
        let end = va.checked_add(data.len() as u64).ok_or(GuestFault { va })?;
        let page_of = |a: u64| a & !(PAGE_SIZE as u64 - 1);
        // Within one page (the frames, structures and status words the fast
        // paths write): one walk both checks the range and finds the frame.
        if !data.is_empty() && page_of(va) == page_of(end - 1) {
            let ma = self.translate(va, Access::Write)?;
            let off = (ma as usize) % PAGE_SIZE;
            let frame = self.mem.frame_mut(Mfn::containing(ma)).ok_or(GuestFault { va })?;
            frame.get_mut(off..off + data.len()).ok_or(GuestFault { va })?.copy_from_slice(data);
            return Ok(());
        }
        // Check the whole range first so a fault leaves guest memory untouched.
        let mut page = page_of(va);
        while page < end {
            self.translate(page.max(va), Access::Write)?;
            page += PAGE_SIZE as u64;
        }
        let mut done = 0;
        while done < data.len() {
            let cur = va + done as u64;
            let ma = self.translate(cur, Access::Write)?;
            let off = (ma as usize) % PAGE_SIZE;
            let n = (PAGE_SIZE - off).min(data.len() - done);
            let frame = self.mem.frame_mut(Mfn::containing(ma)).ok_or(GuestFault { va: cur })?;
            frame[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Reads a value of type `T` from guest memory.
    pub fn read<T: FromBytes + IntoBytes>(&self, va: u64) -> Result<T, GuestFault> {
        let mut v = T::new_zeroed();
        self.copy_from(va, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Writes `value` to guest memory.
    pub fn write<T: IntoBytes + Immutable + ?Sized>(&mut self, va: u64, value: &T) -> Result<(), GuestFault> {
        self.copy_to(va, value.as_bytes())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// Machine memory as a vector of frames, for host tests.
    pub struct FakeMemory(pub Vec<[u8; PAGE_SIZE]>);

    impl MachineMemory for FakeMemory {
        fn frame(&self, mfn: Mfn) -> Option<&[u8; PAGE_SIZE]> {
            self.0.get(mfn.0 as usize)
        }
        fn frame_mut(&mut self, mfn: Mfn) -> Option<&mut [u8; PAGE_SIZE]> {
            self.0.get_mut(mfn.0 as usize)
        }
    }

    impl FakeMemory {
        pub fn set_entry(&mut self, table: u64, index: u64, value: u64) {
            let off = index as usize * 8;
            self.0[table as usize][off..off + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// L4=0, L3=1, L2=2, L1=3; va 0x40_0000_1000 → frame 4 (RW), 0x40_0000_2000 → frame 5 (RO);
    /// 0x40_0020_0000 → 2 MiB superpage at frame 512 (outside memory).
    fn space() -> FakeMemory {
        let mut m = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 8]);
        let va = 0x40_0000_0000u64;
        m.set_entry(0, (va >> 39) & 511, (1 << 12) | 0x67);
        m.set_entry(1, (va >> 30) & 511, (2 << 12) | 0x67);
        m.set_entry(2, 0, (3 << 12) | 0x67);
        m.set_entry(2, 1, (512 << 12) | 0xe7);
        m.set_entry(3, 1, (4 << 12) | 0x27);
        m.set_entry(3, 2, (5 << 12) | 0x25);
        m.set_entry(3, 3, (6 << 12) | 0x23); // supervisor-only
        m
    }

    #[test]
    fn walks_four_levels_and_superpages() {
        let mut m = space();
        let g = GuestMemory::new(&mut m, Mfn(0));
        assert_eq!(g.translate(0x40_0000_1234, Access::Write), Ok(0x4234));
        assert_eq!(g.translate(0x40_0000_2008, Access::Read), Ok(0x5008));
        assert_eq!(g.translate(0x40_0021_2345, Access::Read), Ok(0x20_0000 + 0x1_2345));
    }

    #[test]
    fn refuses_what_the_guest_could_not_do() {
        let mut m = space();
        let g = GuestMemory::new(&mut m, Mfn(0));
        let f = |va| Err(GuestFault { va });
        assert_eq!(g.translate(0x40_0000_2000, Access::Write), f(0x40_0000_2000)); // read-only
        assert_eq!(g.translate(0x40_0000_3000, Access::Read), f(0x40_0000_3000)); // no US
        assert_eq!(g.translate(0x40_0000_4000, Access::Read), f(0x40_0000_4000)); // not present
        assert_eq!(g.translate(0x0000_8000_0000_0000, Access::Read), f(0x0000_8000_0000_0000)); // non-canonical
        assert_eq!(g.translate(0xffff_8000_0000_0000, Access::Read), f(0xffff_8000_0000_0000)); // hole
        let mut buf = [0u8; 8];
        assert!(g.copy_from(0x40_0021_0000, &mut buf).is_err()); // superpage beyond RAM
    }

    /// Machine memory whose "loaded tables" answer every direct copy with
    /// `answer` (counting the tries), as a CPU whose copy succeeded or
    /// faulted; a success writes `0xaa` bytes, so that it shows.
    struct Loaded {
        mem: FakeMemory,
        answer: bool,
        tries: core::cell::Cell<u32>,
    }

    impl MachineMemory for Loaded {
        fn frame(&self, mfn: Mfn) -> Option<&[u8; PAGE_SIZE]> {
            self.mem.frame(mfn)
        }
        fn frame_mut(&mut self, mfn: Mfn) -> Option<&mut [u8; PAGE_SIZE]> {
            self.mem.frame_mut(mfn)
        }
        fn read_guest_direct(&self, _: Mfn, _: u64, buf: &mut [u8]) -> bool {
            self.tries.set(self.tries.get() + 1);
            buf.fill(0xaa);
            self.answer
        }
        fn write_guest_direct(&mut self, _: Mfn, _: u64, _: &[u8]) -> bool {
            self.tries.set(self.tries.get() + 1);
            self.answer
        }
    }

    /// The fast path's copies take the direct copy's success, and after its
    /// failure give exactly the walk's answer (data or fault); the plain
    /// copies never try it.
    #[test]
    fn loaded_copies_use_the_direct_copy_and_fall_back_to_the_walk() {
        for answer in [true, false] {
            let mut m = Loaded { mem: space(), answer, tries: core::cell::Cell::new(0) };
            m.mem.0[4][0x10..0x14].copy_from_slice(&[1, 2, 3, 4]);
            let mut g = GuestMemory::new(&mut m, Mfn(0));
            let mut buf = [0u8; 4];
            assert!(g.copy_from_loaded(0x40_0000_1010, &mut buf).is_ok());
            assert_eq!(buf, if answer { [0xaa; 4] } else { [1, 2, 3, 4] });
            let ro = g.copy_to_loaded(0x40_0000_2000, &[9; 4]);
            let unmapped = g.copy_from_loaded(0x40_0000_4000, &mut buf);
            if answer {
                assert_eq!((ro, unmapped), (Ok(()), Ok(())), "a direct success stands");
            } else {
                let f = |va| Err(GuestFault { va });
                assert_eq!((ro, unmapped), (f(0x40_0000_2000), f(0x40_0000_4000)), "the walk decides");
            }
            assert!(g.copy_from(0x40_0000_1010, &mut buf).is_ok() && g.copy_to(0x40_0000_1010, &[5]).is_ok());
            assert_eq!(m.tries.get(), 3, "only the loaded copies try the direct way");
            assert_eq!(m.mem.0[5][..4], [0; 4], "a failed direct write leaves the walk's result");
        }
    }

    #[test]
    fn copies_across_pages_and_faults_atomically() {
        let mut m = space();
        let mut g = GuestMemory::new(&mut m, Mfn(0));
        g.copy_to(0x40_0000_1ffc, &[1, 2, 3, 4]).unwrap();
        assert!(g.copy_to(0x40_0000_1ffe, &[9, 9, 9, 9]).is_err()); // second page read-only
        let mut buf = [0u8; 4];
        g.copy_from(0x40_0000_1ffc, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        let v: u32 = g.read(0x40_0000_1ffc).unwrap();
        assert_eq!(v, 0x0403_0201);
        assert!(g.copy_from(0x40_0000_1ffc, &mut [0u8; 8]).is_ok()); // frame 5 readable
        assert!(g.copy_from(u64::MAX - 2, &mut [0u8; 8]).is_err()); // wraps
    }
}
