//! The domU console backend in the hypervisor: when a domU raises its
//! console port, xenish copies the bytes it produced in the ring page
//! (`struct xencons_interface`: `in[1024]`, `out[2048]`, then
//! `in_cons, in_prod, out_cons, out_prod`) to the serial line, marks them
//! consumed and notifies the guest that there is room again.
//!
//! The indices are the guest's: a producer index more than a ring ahead of
//! the consumer is bad input, and the ring is reset to empty rather than
//! trusted; the hypervisor says so once per domain, not at every
//! notification. One notification writes at most a ring's worth (2 KiB)
//! to the serial line, and the domain's console rate limit applies
//! ([`GuestConsole`]).

use core::mem::offset_of;

use guest_abi::io::console::{XenconsInterface, XENCONS_OUT_SIZE};

use crate::console::GuestConsole;
use crate::evtchn;
use crate::mm::{MachineMemory, Mfn};

const OUT: usize = offset_of!(XenconsInterface, out_);
const OUT_SIZE: u32 = XENCONS_OUT_SIZE;
const OUT_CONS: usize = offset_of!(XenconsInterface, out_cons);
const OUT_PROD: usize = offset_of!(XenconsInterface, out_prod);

fn word(page: &[u8; 4096], off: usize) -> u32 {
    u32::from_le_bytes([page[off], page[off + 1], page[off + 2], page[off + 3]])
}

/// Drains the console ring at `ring` into `out` at system time `now_ns`;
/// returns the bytes copied, or `None` if the ring's indices were corrupt.
pub fn drain(
    mem: &mut dyn MachineMemory,
    ring: Mfn,
    console: &mut GuestConsole,
    now_ns: u64,
    out: &mut dyn FnMut(&[u8]),
) -> Option<usize> {
    let page = mem.frame_mut(ring)?;
    let (cons, prod) = (word(page, OUT_CONS), word(page, OUT_PROD));
    let pending = prod.wrapping_sub(cons);
    if pending > OUT_SIZE {
        page[OUT_CONS..OUT_CONS + 4].copy_from_slice(&prod.to_le_bytes());
        return None;
    }
    let mut buf = [0u8; OUT_SIZE as usize];
    for i in 0..pending {
        buf[i as usize] = page[OUT + (cons.wrapping_add(i) % OUT_SIZE) as usize];
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::AcqRel);
    page[OUT_CONS..OUT_CONS + 4].copy_from_slice(&prod.to_le_bytes());
    console.write(now_ns, buf.get(..pending as usize).unwrap_or(&[]), out);
    Some(pending as usize)
}

/// Drains `domain`'s console ring (if it has one) at system time `now_ns`
/// and raises its console port so the guest knows the ring has room.
pub fn service(
    domain: &mut crate::domain::Domain,
    mem: &mut dyn MachineMemory,
    now_ns: u64,
    out: &mut dyn FnMut(&[u8]),
) {
    let Some((ring, port)) = domain.console_ring else { return };
    if drain(mem, ring, &mut domain.console, now_ns, out).is_none() && domain.console.report_corrupt_ring() {
        crate::printk!("xenish: d{}: console ring indices corrupt; ring reset (reported once)", domain.id);
    }
    evtchn::port_set_pending(domain, mem, port);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::mm::PAGE_SIZE;
    extern crate std;
    use std::vec::Vec;

    fn produce(mem: &mut FakeMemory, bytes: &[u8]) {
        let page = &mut mem.0[0];
        let mut prod = word(page, OUT_PROD);
        for &b in bytes {
            page[OUT + (prod % OUT_SIZE) as usize] = b;
            prod = prod.wrapping_add(1);
        }
        page[OUT_PROD..OUT_PROD + 4].copy_from_slice(&prod.to_le_bytes());
    }

    #[test]
    fn drains_with_wraparound_and_prefix() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        let start = u32::MAX - 3; // indices wrap during the test
        mem.0[0][OUT_CONS..OUT_CONS + 4].copy_from_slice(&start.to_le_bytes());
        mem.0[0][OUT_PROD..OUT_PROD + 4].copy_from_slice(&start.to_le_bytes());
        let mut c = GuestConsole::unlimited(2);
        let mut out = Vec::new();
        produce(&mut mem, b"hello\nworld\n");
        assert_eq!(drain(&mut mem, Mfn(0), &mut c, 0, &mut |b| out.extend_from_slice(b)), Some(12));
        assert_eq!(out, b"(d2) hello\n(d2) world\n");
        assert_eq!(drain(&mut mem, Mfn(0), &mut c, 0, &mut |b| out.extend_from_slice(b)), Some(0));
    }

    #[test]
    fn corrupt_indices_are_not_trusted() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        mem.0[0][OUT_PROD..OUT_PROD + 4].copy_from_slice(&5000u32.to_le_bytes());
        let mut c = GuestConsole::unlimited(1);
        let mut out = Vec::new();
        assert_eq!(drain(&mut mem, Mfn(0), &mut c, 0, &mut |b| out.extend_from_slice(b)), None);
        assert!(out.is_empty());
        assert_eq!(word(&mem.0[0], OUT_CONS), 5000, "reset to empty");
        assert_eq!(drain(&mut mem, Mfn(9), &mut c, 0, &mut |b| out.extend_from_slice(b)), None);
    }
}
