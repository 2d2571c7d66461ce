//! A mapped XenStore ring page as the store core's [`RingMemory`].
//!
//! The page is shared with a domain that may write it at any moment:
//! indices are read and written as single aligned volatile `u32`s (never
//! torn), data with `Mapping`'s volatile copies. Offsets come from the
//! core's ring module, never from the peer; an offset outside the page is
//! a bug in this program, not peer input.

use std::mem::offset_of;
use std::ptr;

use guest_abi::io::xs_wire::XenstoreDomainInterface;
use xendev::Mapping;
use xenstore::RingMemory;

/// A domain's ring page.
pub struct RingPage(Mapping);

impl RingPage {
    /// Wraps a mapping of at least one `xenstore_domain_interface`.
    pub fn new(mapping: Mapping) -> Option<RingPage> {
        (mapping.len() >= size_of::<XenstoreDomainInterface>()).then_some(RingPage(mapping))
    }

    /// The address of the `u32` at `off`, if it is inside and aligned.
    fn word(&self, off: usize) -> Option<*mut u32> {
        let end = off.checked_add(4)?;
        (end <= self.0.len() && off.is_multiple_of(4)).then(|| self.0.as_ptr().wrapping_add(off).cast::<u32>())
    }
}

// The index fields are 4-byte aligned in the (page-aligned) mapping.
const _: () = assert!(offset_of!(XenstoreDomainInterface, req_cons) % 4 == 0);

impl RingMemory for RingPage {
    fn read_u32(&self, off: usize) -> u32 {
        match self.word(off) {
            // SAFETY: `word` checked that the 4 bytes at `off` lie inside the
            // mapping (alive as long as `self`) and are 4-byte aligned; the
            // other side may write them concurrently, which a volatile read
            // of plain data tolerates.
            Some(p) => unsafe { ptr::read_volatile(p) },
            None => 0,
        }
    }

    fn write_u32(&self, off: usize, value: u32) {
        if let Some(p) = self.word(off) {
            // SAFETY: as in `read_u32`; the mapping is writable (all ring
            // mappings are made read-write).
            unsafe { ptr::write_volatile(p, value) }
        }
    }

    fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        self.0.read_bytes(off, buf);
    }

    fn write_bytes(&self, off: usize, data: &[u8]) {
        self.0.write_bytes(off, data);
    }
}
