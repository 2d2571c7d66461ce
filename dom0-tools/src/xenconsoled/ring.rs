//! The console ring (`struct xencons_interface`, Xen 4.17
//! `public/io/console.h`): `in[1024]` to the guest at 0, `out[2048]` from
//! the guest at 1024, then `in_cons`, `in_prod`, `out_cons`, `out_prod`
//! (u32, free-running, masked with size − 1).
//!
//! The guest owns `out_prod` and `in_cons`; the backend owns `out_cons`
//! and `in_prod`. Indices are read once per pass and checked: a producer
//! more than a ring ahead is a broken guest, whose output is dropped
//! rather than trusted (xenconsoled does the same).

use std::sync::atomic::{fence, Ordering};

/// Size of `in`.
pub const IN_SIZE: u32 = 1024;
/// Size of `out`.
pub const OUT_SIZE: u32 = 2048;
const OUT_AT: usize = 1024;
const IN_CONS: usize = 3072;
const IN_PROD: usize = 3076;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// The ring's memory: a mapping of the guest's page (or a fake).
pub trait RingMem {
    /// Reads the u32 at `off`.
    fn read_u32(&self, off: usize) -> u32;
    /// Writes the u32 at `off`.
    fn write_u32(&self, off: usize, v: u32);
    /// Copies bytes from `off`.
    fn read_bytes(&self, off: usize, buf: &mut [u8]);
    /// Copies bytes to `off`.
    fn write_bytes(&self, off: usize, data: &[u8]);
}

impl RingMem for xendev::Mapping {
    fn read_u32(&self, off: usize) -> u32 {
        xendev::Mapping::read_u32(self, off)
    }
    fn write_u32(&self, off: usize, v: u32) {
        xendev::Mapping::write_u32(self, off, v)
    }
    fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        xendev::Mapping::read_bytes(self, off, buf)
    }
    fn write_bytes(&self, off: usize, data: &[u8]) {
        xendev::Mapping::write_bytes(self, off, data)
    }
}

/// Takes everything the guest wrote to `out`; `None` if its indices are
/// inconsistent (the output is then skipped).
pub fn drain_out(ring: &impl RingMem) -> Option<Vec<u8>> {
    let cons = ring.read_u32(OUT_CONS);
    let prod = ring.read_u32(OUT_PROD);
    fence(Ordering::Acquire);
    let len = prod.wrapping_sub(cons);
    if len > OUT_SIZE {
        ring.write_u32(OUT_CONS, prod);
        return None;
    }
    let mut data = vec![0u8; len as usize];
    let start = (cons % OUT_SIZE) as usize;
    let first = data.len().min(OUT_SIZE as usize - start);
    let (a, b) = data.split_at_mut(first);
    ring.read_bytes(OUT_AT + start, a);
    ring.read_bytes(OUT_AT, b);
    fence(Ordering::Release);
    ring.write_u32(OUT_CONS, prod);
    Some(data)
}

/// Puts as much of `data` as fits into `in`; returns how many bytes.
pub fn fill_in(ring: &impl RingMem, data: &[u8]) -> usize {
    let cons = ring.read_u32(IN_CONS);
    let prod = ring.read_u32(IN_PROD);
    fence(Ordering::Acquire);
    let used = prod.wrapping_sub(cons);
    if used > IN_SIZE {
        return 0;
    }
    let n = data.len().min((IN_SIZE - used) as usize);
    for (i, &b) in data.iter().take(n).enumerate() {
        let at = (prod.wrapping_add(i as u32) % IN_SIZE) as usize;
        ring.write_bytes(at, &[b]);
    }
    fence(Ordering::Release);
    ring.write_u32(IN_PROD, prod.wrapping_add(n as u32));
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Fake(RefCell<Vec<u8>>);

    impl RingMem for Fake {
        fn read_u32(&self, off: usize) -> u32 {
            u32::from_le_bytes(self.0.borrow()[off..off + 4].try_into().unwrap())
        }
        fn write_u32(&self, off: usize, v: u32) {
            self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn read_bytes(&self, off: usize, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0.borrow()[off..off + buf.len()]);
        }
        fn write_bytes(&self, off: usize, data: &[u8]) {
            self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
        }
    }

    fn ring() -> Fake {
        Fake(RefCell::new(vec![0; 4096]))
    }

    /// The guest's side: writes `s` to `out`.
    fn guest_writes(r: &Fake, s: &[u8]) {
        let prod = r.read_u32(OUT_PROD);
        for (i, &b) in s.iter().enumerate() {
            r.write_bytes(OUT_AT + (prod.wrapping_add(i as u32) % OUT_SIZE) as usize, &[b]);
        }
        r.write_u32(OUT_PROD, prod.wrapping_add(s.len() as u32));
    }

    #[test]
    fn output_is_drained_across_the_wrap() {
        let r = ring();
        r.write_u32(OUT_CONS, u32::MAX - 3);
        r.write_u32(OUT_PROD, u32::MAX - 3);
        guest_writes(&r, b"hello, world");
        assert_eq!(drain_out(&r).unwrap(), b"hello, world");
        assert_eq!(r.read_u32(OUT_CONS), r.read_u32(OUT_PROD));
        assert_eq!(drain_out(&r).unwrap(), b"");
        r.write_u32(OUT_CONS, 2040);
        r.write_u32(OUT_PROD, 2040);
        guest_writes(&r, b"0123456789abcdef");
        assert_eq!(drain_out(&r).unwrap(), b"0123456789abcdef");
    }

    #[test]
    fn a_producer_more_than_a_ring_ahead_is_skipped() {
        let r = ring();
        r.write_u32(OUT_PROD, OUT_SIZE + 1);
        assert_eq!(drain_out(&r), None);
        assert_eq!(r.read_u32(OUT_CONS), OUT_SIZE + 1, "resynchronised");
    }

    #[test]
    fn input_fills_what_the_guest_has_room_for() {
        let r = ring();
        assert_eq!(fill_in(&r, b"ls\n"), 3);
        assert_eq!(&r.0.borrow()[..3], b"ls\n");
        assert_eq!(r.read_u32(IN_PROD), 3);
        assert_eq!(fill_in(&r, &[b'x'; 2000]), 1021, "the ring is full");
        assert_eq!(fill_in(&r, b"y"), 0);
        r.write_u32(IN_CONS, 1024);
        assert_eq!(fill_in(&r, b"yz"), 2);
        assert_eq!(&r.0.borrow()[..2], b"yz", "wrapped");
        r.write_u32(IN_CONS, 5000);
        assert_eq!(fill_in(&r, b"q"), 0, "a consumer ahead of the producer is ignored");
    }
}
