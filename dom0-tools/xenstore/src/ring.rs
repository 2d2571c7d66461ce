//! The shared ring page (`struct xenstore_domain_interface`) read and
//! written through a small memory trait.
//!
//! Semantics: X:`tools/xenstore/xenstored_domain.c` `readchn`, `writechn`,
//! `check_indexes`, `get_input_chunk`, `get_output_chunk` (Xen 4.17). The
//! indices are free-running `u32`s masked with `XENSTORE_RING_SIZE - 1`;
//! each side reads both indices once, checks `prod - cons <= RING_SIZE`
//! and only then touches the data. Everything on the page is written by an
//! untrusted peer at any time: values are read once and checked, never
//! used to index anything unchecked.

use core::mem::offset_of;
use core::sync::atomic::{fence, Ordering};

use guest_abi::io::xs_wire::{XenstoreDomainInterface as Intf, XENSTORE_CONNECTED, XENSTORE_RING_SIZE};

/// Byte-addressed access to a ring page (a mapped page in the daemon, a
/// plain buffer in tests). Offsets are within the 4 KiB page; accesses
/// must be single, untorn reads and writes of shared memory.
pub trait RingMemory {
    /// Reads the `u32` at `off`.
    fn read_u32(&self, off: usize) -> u32;
    /// Writes the `u32` at `off`.
    fn write_u32(&self, off: usize, value: u32);
    /// Copies `buf.len()` bytes from `off`.
    fn read_bytes(&self, off: usize, buf: &mut [u8]);
    /// Copies `data` to `off`.
    fn write_bytes(&self, off: usize, data: &[u8]);
}

/// The peer broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `prod - cons > XENSTORE_RING_SIZE` on the request ring.
    BadRequestIndexes,
    /// `prod - cons > XENSTORE_RING_SIZE` on the response ring.
    BadResponseIndexes,
}

const RING_SIZE: u32 = XENSTORE_RING_SIZE;
const REQ: usize = offset_of!(Intf, req);
const RSP: usize = offset_of!(Intf, rsp);
const REQ_CONS: usize = offset_of!(Intf, req_cons);
const REQ_PROD: usize = offset_of!(Intf, req_prod);
const RSP_CONS: usize = offset_of!(Intf, rsp_cons);
const RSP_PROD: usize = offset_of!(Intf, rsp_prod);
const CONNECTION: usize = offset_of!(Intf, connection);
const ERROR: usize = offset_of!(Intf, error);

/// `check_indexes`.
fn indexes_ok(cons: u32, prod: u32) -> bool {
    prod.wrapping_sub(cons) <= RING_SIZE
}

/// Reads up to `buf.len()` request bytes and advances `req_cons`.
/// Returns how many bytes were read (0 when the ring is empty).
pub fn read<M: RingMemory + ?Sized>(mem: &M, buf: &mut [u8]) -> Result<usize, RingError> {
    let cons = mem.read_u32(REQ_CONS);
    let prod = mem.read_u32(REQ_PROD);
    fence(Ordering::SeqCst);
    if !indexes_ok(cons, prod) {
        return Err(RingError::BadRequestIndexes);
    }
    // `get_input_chunk`: up to the end of the buffer or of the data.
    let start = cons & (RING_SIZE - 1);
    let avail = (RING_SIZE - start).min(prod.wrapping_sub(cons));
    let len = (avail as usize).min(buf.len());
    if len == 0 {
        return Ok(0);
    }
    if let Some(dst) = buf.get_mut(..len) {
        mem.read_bytes(REQ + start as usize, dst);
    }
    fence(Ordering::SeqCst);
    mem.write_u32(REQ_CONS, cons.wrapping_add(len as u32));
    Ok(len)
}

/// Writes as much of `data` as fits in the response ring and advances
/// `rsp_prod`. Returns how many bytes were written (0 when it is full).
pub fn write<M: RingMemory + ?Sized>(mem: &M, data: &[u8]) -> Result<usize, RingError> {
    let cons = mem.read_u32(RSP_CONS);
    let prod = mem.read_u32(RSP_PROD);
    fence(Ordering::SeqCst);
    if !indexes_ok(cons, prod) {
        return Err(RingError::BadResponseIndexes);
    }
    // `get_output_chunk`: up to the end of the buffer or of the free space.
    let start = prod & (RING_SIZE - 1);
    let free = RING_SIZE - prod.wrapping_sub(cons);
    let avail = (RING_SIZE - start).min(free);
    let len = (avail as usize).min(data.len());
    if len == 0 {
        return Ok(0);
    }
    if let Some(src) = data.get(..len) {
        mem.write_bytes(RSP + start as usize, src);
    }
    fence(Ordering::SeqCst);
    mem.write_u32(RSP_PROD, prod.wrapping_add(len as u32));
    Ok(len)
}

/// Whether requests are waiting (`req_cons != req_prod`).
pub fn has_requests<M: RingMemory + ?Sized>(mem: &M) -> bool {
    mem.read_u32(REQ_CONS) != mem.read_u32(REQ_PROD)
}

/// `domain_can_write`: whether the response ring has room.
pub fn has_room<M: RingMemory + ?Sized>(mem: &M) -> bool {
    mem.read_u32(RSP_PROD).wrapping_sub(mem.read_u32(RSP_CONS)) != RING_SIZE
}

/// `domain_conn_reset`: zeroes all four indices.
pub fn reset<M: RingMemory + ?Sized>(mem: &M) {
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        mem.write_u32(off, 0);
    }
}

/// Marks the page connected (`connection = XENSTORE_CONNECTED`).
pub fn set_connected<M: RingMemory + ?Sized>(mem: &M) {
    mem.write_u32(CONNECTION, XENSTORE_CONNECTED);
}

/// Records why the daemon stopped serving the ring (`XENSTORE_ERROR_*`).
pub fn set_error<M: RingMemory + ?Sized>(mem: &M, error: u32) {
    mem.write_u32(ERROR, error);
}

#[cfg(test)]
pub(crate) mod fake {
    //! A ring page in a plain buffer, with the guest's side of the protocol.

    use core::cell::RefCell;

    use super::*;

    /// A 4 KiB page in memory.
    pub struct FakePage(pub RefCell<Vec<u8>>);

    impl FakePage {
        pub fn new() -> FakePage {
            FakePage(RefCell::new(vec![0; 4096]))
        }

        /// The guest writes request bytes (as much as fits).
        pub fn guest_send(&self, data: &[u8]) -> usize {
            let cons = self.read_u32(REQ_CONS);
            let prod = self.read_u32(REQ_PROD);
            let free = (RING_SIZE - prod.wrapping_sub(cons)) as usize;
            let n = free.min(data.len());
            for (i, &b) in data.iter().take(n).enumerate() {
                let at = REQ + (prod.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize;
                self.0.borrow_mut()[at] = b;
            }
            self.write_u32(REQ_PROD, prod.wrapping_add(n as u32));
            n
        }

        /// The guest takes every response byte waiting.
        pub fn guest_receive(&self) -> Vec<u8> {
            let cons = self.read_u32(RSP_CONS);
            let prod = self.read_u32(RSP_PROD);
            let n = prod.wrapping_sub(cons);
            let out =
                (0..n).map(|i| self.0.borrow()[RSP + (cons.wrapping_add(i) & (RING_SIZE - 1)) as usize]).collect();
            self.write_u32(RSP_CONS, prod);
            out
        }

        pub fn set(&self, off: usize, v: u32) {
            self.write_u32(off, v);
        }
    }

    impl RingMemory for FakePage {
        fn read_u32(&self, off: usize) -> u32 {
            let b = self.0.borrow();
            u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
        }
        fn write_u32(&self, off: usize, value: u32) {
            self.0.borrow_mut()[off..off + 4].copy_from_slice(&value.to_ne_bytes());
        }
        fn read_bytes(&self, off: usize, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0.borrow()[off..off + buf.len()]);
        }
        fn write_bytes(&self, off: usize, data: &[u8]) {
            self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
        }
    }

    pub const OFF_REQ_CONS: usize = REQ_CONS;
    pub const OFF_REQ_PROD: usize = REQ_PROD;
    pub const OFF_RSP_CONS: usize = RSP_CONS;
    pub const OFF_RSP_PROD: usize = RSP_PROD;
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn read_wraps_around_the_end() {
        let page = FakePage::new();
        page.set(OFF_REQ_CONS, 1020);
        page.set(OFF_REQ_PROD, 1020);
        assert_eq!(page.guest_send(b"abcdefgh"), 8);
        let mut buf = [0u8; 16];
        assert_eq!(read(&page, &mut buf), Ok(4), "first chunk stops at the end of the buffer");
        assert_eq!(&buf[..4], b"abcd");
        assert_eq!(read(&page, &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"efgh");
        assert_eq!(read(&page, &mut buf), Ok(0));
        assert_eq!(page.read_u32(OFF_REQ_CONS), 1028);
    }

    #[test]
    fn free_running_indices_cross_u32_max() {
        let page = FakePage::new();
        page.set(OFF_REQ_CONS, u32::MAX - 1);
        page.set(OFF_REQ_PROD, u32::MAX - 1);
        page.guest_send(b"wxyz");
        let mut buf = [0u8; 8];
        let mut got = Vec::new();
        while let Ok(n @ 1..) = read(&page, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"wxyz");
        assert_eq!(page.read_u32(OFF_REQ_CONS), 2);
    }

    #[test]
    fn write_stops_when_full_and_resumes() {
        let page = FakePage::new();
        let data = vec![7u8; 1500];
        assert_eq!(write(&page, &data), Ok(1024));
        assert!(!has_room(&page));
        assert_eq!(write(&page, &data[1024..]), Ok(0));
        assert_eq!(page.guest_receive().len(), 1024);
        assert_eq!(write(&page, &data[1024..]), Ok(476));
    }

    #[test]
    fn garbage_indices_are_errors_not_panics() {
        let page = FakePage::new();
        page.set(OFF_REQ_CONS, 0);
        page.set(OFF_REQ_PROD, 5000);
        assert_eq!(read(&page, &mut [0u8; 16]), Err(RingError::BadRequestIndexes));
        page.set(OFF_REQ_CONS, 10);
        page.set(OFF_REQ_PROD, 5);
        assert_eq!(read(&page, &mut [0u8; 16]), Err(RingError::BadRequestIndexes), "prod behind cons");
        page.set(OFF_RSP_CONS, 3000);
        page.set(OFF_RSP_PROD, 0);
        assert_eq!(write(&page, b"x"), Err(RingError::BadResponseIndexes));
        reset(&page);
        assert_eq!(read(&page, &mut [0u8; 16]), Ok(0));
        assert_eq!(write(&page, b"x"), Ok(1));
    }
}
