//! The 2-level event-channel ABI: a pending and a mask bit per port in
//! shared_info, a selector word and an upcall flag per vCPU in its
//! vcpu_info.
//!
//! Semantics: Xen 4.17 `xen/common/event_2l.c`. Raising port p sets
//! `evtchn_pending[p]`; if it was clear and `evtchn_mask[p]` is clear and
//! bit p/64 of the notify vCPU's `evtchn_pending_sel` was clear, the vCPU's
//! `evtchn_upcall_pending` is set (the upcall follows on its next return to
//! the guest, or it wakes from SCHEDOP_block). Every bit is set, cleared
//! and tested with one atomic operation on the guest's page, in Xen's
//! order.

use core::sync::atomic::Ordering::SeqCst;

use core::mem::offset_of;

use guest_abi::xen::{SharedInfo, VcpuInfo};

use super::NR_PORTS_2L;
use crate::mm::shared_word::{u64_at, u8_at};
use crate::mm::{MachineMemory, Mfn};

/// Offset of `evtchn_pending` in shared_info.
pub const PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
/// Offset of `evtchn_mask` in shared_info.
pub const MASK: usize = offset_of!(SharedInfo, evtchn_mask);
/// Offset of `evtchn_pending_sel` in a vcpu_info.
const PENDING_SEL: usize = offset_of!(VcpuInfo, evtchn_pending_sel);

/// The word holding `port`'s bit in the bitmap at `base`, and the bit.
fn bit(port: u32, base: usize) -> Option<(usize, u64)> {
    (port < NR_PORTS_2L).then(|| (base + (port / 64) as usize * 8, 1u64 << (port % 64)))
}

/// Atomically sets `port`'s bit in the bitmap at `base` of `page`;
/// whether it was set already (`None` if the port or page is not there).
fn test_and_set(mem: &mut dyn MachineMemory, page: Mfn, base: usize, port: u32) -> Option<bool> {
    let (off, b) = bit(port, base)?;
    Some(u64_at(mem, page, off)?.fetch_or(b, SeqCst) & b != 0)
}

fn test(mem: &mut dyn MachineMemory, page: Mfn, base: usize, port: u32) -> Option<bool> {
    let (off, b) = bit(port, base)?;
    Some(u64_at(mem, page, off)?.load(SeqCst) & b != 0)
}

/// Xen's `vcpu_mark_events_pending`: sets the vCPU's
/// `evtchn_upcall_pending` (the byte at the start of its vcpu_info at
/// `info`); whether it was clear, i.e. an upcall became pending now.
pub fn mark_events_pending(mem: &mut dyn MachineMemory, (frame, offset): (Mfn, usize)) -> bool {
    u8_at(mem, frame, offset).is_some_and(|b| b.fetch_or(1, SeqCst) & 1 == 0)
}

/// Sets the selector bit of `port` in the vcpu_info at `info` and, if it
/// was clear, marks an upcall pending.
fn mark_selector(mem: &mut dyn MachineMemory, port: u32, info: (Mfn, usize)) -> bool {
    let (frame, offset) = info;
    let sel = offset.checked_add(PENDING_SEL).and_then(|at| u64_at(mem, frame, at));
    let newly = sel.is_some_and(|s| {
        let b = 1u64 << (port / 64);
        s.fetch_or(b, SeqCst) & b == 0
    });
    newly && mark_events_pending(mem, info)
}

/// Raises `port` for the vCPU whose vcpu_info is at `info`, in the domain
/// whose shared_info is `shared_info` (`evtchn_2l_set_pending`). Returns
/// whether the vCPU's upcall became pending.
pub fn set_pending(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32, info: (Mfn, usize)) -> bool {
    if test_and_set(mem, shared_info, PENDING, port) != Some(false) {
        return false;
    }
    if is_masked(mem, shared_info, port) {
        return false;
    }
    mark_selector(mem, port, info)
}

/// Whether `port` is pending in the domain's shared_info.
pub fn is_pending(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32) -> bool {
    test(mem, shared_info, PENDING, port) == Some(true)
}

/// Whether `port` is masked (a port beyond the ABI's always is).
pub fn is_masked(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32) -> bool {
    test(mem, shared_info, MASK, port) != Some(false)
}

/// `EVTCHNOP_unmask` (`evtchn_2l_unmask`): clears the mask; if it was set
/// and the port is pending, the event is delivered as if raised now.
/// Returns whether the vCPU's upcall became pending.
pub fn unmask(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32, info: (Mfn, usize)) -> bool {
    let Some((off, b)) = bit(port, MASK) else { return false };
    let was_masked = u64_at(mem, shared_info, off).is_some_and(|w| w.fetch_and(!b, SeqCst) & b != 0);
    was_masked && is_pending(mem, shared_info, port) && mark_selector(mem, port, info)
}

/// Clears the pending bit of `port` (when it is closed).
pub fn clear_pending(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32) {
    if let Some((off, b)) = bit(port, PENDING) {
        if let Some(w) = u64_at(mem, shared_info, off) {
            w.fetch_and(!b, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::mm::PAGE_SIZE;
    extern crate std;

    fn byte(mem: &FakeMemory, off: usize) -> u8 {
        mem.0[0][off]
    }

    #[test]
    fn pending_mask_selector_upcall() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        let si = Mfn(0);
        let vcpu1 = (si, 64);
        assert!(set_pending(&mut mem, si, 70, vcpu1));
        assert_eq!(byte(&mem, PENDING + 70 / 8), 1 << (70 % 8));
        assert_eq!(byte(&mem, 64 + 8), 2, "selector bit 1 for port 70 on vCPU 1");
        assert_eq!(byte(&mem, 64), 1, "upcall pending on vCPU 1");
        assert!(!set_pending(&mut mem, si, 70, vcpu1), "already pending");
        // Masked: pending but no upcall until unmask.
        mem.0[0][64] = 0;
        mem.0[0][64 + 8] = 0;
        mem.0[0][MASK + 1] |= 1 << 1; // mask port 9
        assert!(!set_pending(&mut mem, si, 9, vcpu1));
        assert_eq!(byte(&mem, PENDING + 1) & 2, 2);
        assert_eq!(byte(&mem, 64), 0);
        assert!(unmask(&mut mem, si, 9, vcpu1));
        assert_eq!(byte(&mem, 64), 1);
        assert_eq!(byte(&mem, MASK + 1) & 2, 0);
        assert!(!set_pending(&mut mem, si, NR_PORTS_2L, (si, 0)));
        assert!(is_masked(&mut mem, si, NR_PORTS_2L), "beyond the ABI: masked");
        assert!(!is_pending(&mut mem, si, NR_PORTS_2L));
    }

    #[test]
    fn unmasking_an_unmasked_port_raises_nothing() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        let si = Mfn(0);
        mem.0[0][PENDING] = 1 << 3; // port 3 pending, not masked, selector clear
        assert!(!unmask(&mut mem, si, 3, (si, 0)), "Xen: only a set mask bit re-raises");
        assert_eq!(byte(&mem, 0), 0);
        clear_pending(&mut mem, si, 3);
        assert!(!is_pending(&mut mem, si, 3));
    }

    #[test]
    fn a_vcpu_info_at_the_end_of_its_frame_is_safe() {
        let mut mem = FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1]);
        // A selector word that would cross the frame's end is not touched.
        assert!(!set_pending(&mut mem, Mfn(0), 1, (Mfn(0), PAGE_SIZE - 4)));
        assert!(!set_pending(&mut mem, Mfn(0), 2, (Mfn(0), usize::MAX)));
        assert!(!set_pending(&mut mem, Mfn(5), 3, (Mfn(0), 0)), "no shared_info frame");
    }
}
