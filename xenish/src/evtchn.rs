//! Event channels, Xen's 2-level ABI: each domain's ports and what they are
//! bound to, and raising an event in the guest's shared_info bitmaps.
//!
//! Semantics: Xen 4.17 `xen/common/event_channel.c` and `event_2l.c`.
//! Port 0 is reserved; a 64-bit guest has at most 4096 ports. Raising port
//! p sets `evtchn_pending[p]`; if it was clear and `evtchn_mask[p]` is
//! clear and bit p/64 of the notify vCPU's `evtchn_pending_sel` was clear,
//! the vCPU's `evtchn_upcall_pending` is set (the upcall follows on its next
//! return to the guest, or it wakes from SCHEDOP_block).

use alloc::vec::Vec;

use crate::domain::DomId;
use crate::mm::{MachineMemory, Mfn};

/// Ports of the 2-level ABI for a 64-bit guest (64 words of 64 bits).
pub const NR_PORTS_2L: u32 = 4096;
/// Virtual IRQs (`NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;
/// `DOMID_XEN`: the hypervisor as the remote end of a port (the domU
/// console is bound to it).
pub const DOMID_XEN: DomId = 0x7ff2;
/// `VIRQ_TIMER`
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG`
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE`
pub const VIRQ_CONSOLE: u32 = 2;

/// Offset of `evtchn_pending` in shared_info.
const PENDING: usize = 0x800;
/// Offset of `evtchn_mask` in shared_info.
const MASK: usize = 0xa00;

/// Per-vCPU VIRQs (the rest are global and bound on vCPU 0): Xen's
/// `VIRQ_TIMER`, `VIRQ_DEBUG`, `VIRQ_XENOPROF`, `VIRQ_XENPMU`.
pub fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(virq, 0 | 1 | 7 | 13)
}

/// What a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Not in use.
    Free,
    /// Port 0.
    Reserved,
    /// Offered to `remote`, which may bind it with `bind_interdomain`.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `port` of domain `remote`.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        port: u32,
    },
    /// Bound to a virtual IRQ.
    Virq(u32),
    /// An inter-processor interrupt within the domain.
    Ipi,
}

/// One port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// Its binding.
    pub binding: Binding,
    /// The vCPU notified when it is raised.
    pub notify_vcpu: u32,
}

/// Why an event-channel operation failed (mapped to Xen's errno by the
/// hypercall layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnError {
    /// `-EINVAL`: bad port, state or argument.
    Invalid,
    /// `-ENOSPC`: no free port.
    NoSpace,
    /// `-EEXIST`: the VIRQ is already bound on that vCPU.
    Exists,
    /// `-ENOENT`: no such vCPU.
    NoVcpu,
}

/// A domain's event channels.
#[derive(Clone, Debug)]
pub struct EvtchnTable {
    ports: Vec<Port>,
    /// Port bound to each VIRQ, per vCPU: `virqs[vcpu][virq]`.
    virqs: Vec<[u32; NR_VIRQS as usize]>,
    max_ports: u32,
}

impl EvtchnTable {
    /// A table for a domain with `nr_vcpus` vCPUs: port 0 reserved.
    pub fn new(nr_vcpus: usize) -> Self {
        EvtchnTable {
            ports: alloc::vec![Port { binding: Binding::Reserved, notify_vcpu: 0 }],
            virqs: alloc::vec![[0; NR_VIRQS as usize]; nr_vcpus],
            max_ports: NR_PORTS_2L,
        }
    }

    /// Limits the ports to `0..=max_port` (`createdomain.max_evtchn_port`;
    /// the 2-level ABI's 4096 bound all the same).
    pub fn set_max_port(&mut self, max_port: u32) {
        self.max_ports = max_port.saturating_add(1).min(NR_PORTS_2L);
    }

    /// The port, if it is valid.
    pub fn port(&self, port: u32) -> Option<&Port> {
        self.ports.get(port as usize)
    }

    fn port_mut(&mut self, port: u32) -> Option<&mut Port> {
        self.ports.get_mut(port as usize)
    }

    /// Whether `vcpu` exists.
    pub fn has_vcpu(&self, vcpu: u32) -> bool {
        (vcpu as usize) < self.virqs.len()
    }

    /// Allocates the lowest free port with `binding`.
    pub fn allocate(&mut self, binding: Binding, notify_vcpu: u32) -> Result<u32, EvtchnError> {
        let port = match self.ports.iter().position(|p| p.binding == Binding::Free) {
            Some(i) => i,
            None if (self.ports.len() as u32) < self.max_ports => {
                self.ports.push(Port { binding: Binding::Free, notify_vcpu: 0 });
                self.ports.len() - 1
            }
            None => return Err(EvtchnError::NoSpace),
        };
        self.ports[port] = Port { binding, notify_vcpu };
        Ok(port as u32)
    }

    /// Binds `virq` on `vcpu` to a new port.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, EvtchnError> {
        if virq >= NR_VIRQS || (!virq_is_per_vcpu(virq) && vcpu != 0) {
            return Err(EvtchnError::Invalid);
        }
        if !self.has_vcpu(vcpu) {
            return Err(EvtchnError::NoVcpu);
        }
        if self.virqs[vcpu as usize][virq as usize] != 0 {
            return Err(EvtchnError::Exists);
        }
        let port = self.allocate(Binding::Virq(virq), vcpu)?;
        self.virqs[vcpu as usize][virq as usize] = port;
        Ok(port)
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<u32> {
        self.virqs.get(vcpu as usize)?.get(virq as usize).copied().filter(|&p| p != 0)
    }

    /// Frees `port` (after its peer was dealt with); returns its old binding.
    pub fn free(&mut self, port: u32) -> Result<Binding, EvtchnError> {
        let p = self.port_mut(port).ok_or(EvtchnError::Invalid)?;
        let old = p.binding;
        if matches!(old, Binding::Free | Binding::Reserved) {
            return Err(EvtchnError::Invalid);
        }
        *p = Port { binding: Binding::Free, notify_vcpu: 0 };
        if let Binding::Virq(virq) = old {
            for per_vcpu in &mut self.virqs {
                if per_vcpu.get(virq as usize) == Some(&port) {
                    per_vcpu[virq as usize] = 0;
                }
            }
        }
        Ok(old)
    }

    /// Sets the binding of an existing port (used for the peer side).
    pub fn rebind(&mut self, port: u32, binding: Binding) -> Result<(), EvtchnError> {
        self.port_mut(port).ok_or(EvtchnError::Invalid)?.binding = binding;
        Ok(())
    }

    /// Moves notification of `port` to `vcpu` (`EVTCHNOP_bind_vcpu`).
    pub fn bind_vcpu(&mut self, port: u32, vcpu: u32) -> Result<(), EvtchnError> {
        if !self.has_vcpu(vcpu) {
            return Err(EvtchnError::NoVcpu);
        }
        let p = self.port_mut(port).ok_or(EvtchnError::Invalid)?;
        match p.binding {
            Binding::Virq(v) if virq_is_per_vcpu(v) => Err(EvtchnError::Invalid),
            Binding::Virq(_) | Binding::Unbound { .. } | Binding::Interdomain { .. } => {
                p.notify_vcpu = vcpu;
                Ok(())
            }
            _ => Err(EvtchnError::Invalid),
        }
    }

    /// Every port in use (for teardown and reset).
    pub fn used_ports(&self) -> impl Iterator<Item = (u32, Port)> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p.binding, Binding::Free | Binding::Reserved))
            .map(|(i, p)| (i as u32, *p))
    }
}

fn bit(mem: &mut dyn MachineMemory, page: Mfn, base: usize, nr: u32) -> Option<(&mut u8, u8)> {
    let byte = mem.frame_mut(page)?.get_mut(base + (nr / 8) as usize)?;
    Some((byte, 1 << (nr % 8)))
}

/// Raises `port` for `vcpu` in the domain whose shared_info is `shared_info`
/// (2-level `evtchn_port_set_pending`). Returns whether the vCPU's upcall
/// became pending.
pub fn set_pending(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32, vcpu_info: (Mfn, usize)) -> bool {
    if port >= NR_PORTS_2L {
        return false;
    }
    match bit(mem, shared_info, PENDING, port) {
        Some((byte, m)) if *byte & m == 0 => *byte |= m,
        _ => return false,
    }
    let masked = bit(mem, shared_info, MASK, port).is_none_or(|(byte, m)| *byte & m != 0);
    if masked {
        return false;
    }
    mark_selector(mem, port, vcpu_info)
}

/// Sets the selector bit for `port` and the upcall flag in the vCPU's
/// `vcpu_info` (frame and offset).
fn mark_selector(mem: &mut dyn MachineMemory, port: u32, (info, base): (Mfn, usize)) -> bool {
    let Some((sel, m)) = bit(mem, info, base + 8, port / 64) else { return false };
    if *sel & m != 0 {
        return false;
    }
    *sel |= m;
    match mem.frame_mut(info).and_then(|f| f.get_mut(base)) {
        Some(pending) if *pending == 0 => {
            *pending = 1;
            true
        }
        _ => false,
    }
}

/// Whether `port` is pending in the domain's shared_info.
pub fn is_pending(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32) -> bool {
    bit(mem, shared_info, PENDING, port).is_some_and(|(byte, m)| *byte & m != 0)
}

/// `EVTCHNOP_unmask`: clears the mask and re-raises a pending event.
pub fn unmask(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32, vcpu_info: (Mfn, usize)) -> bool {
    if let Some((byte, m)) = bit(mem, shared_info, MASK, port) {
        *byte &= !m;
    }
    let pending = bit(mem, shared_info, PENDING, port).is_some_and(|(byte, m)| *byte & m != 0);
    pending && mark_selector(mem, port, vcpu_info)
}

/// Clears the pending bit of `port` (when it is closed).
pub fn clear_pending(mem: &mut dyn MachineMemory, shared_info: Mfn, port: u32) {
    if let Some((byte, m)) = bit(mem, shared_info, PENDING, port) {
        *byte &= !m;
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
    fn allocation_starts_at_1_and_reuses() {
        let mut t = EvtchnTable::new(2);
        assert_eq!(t.allocate(Binding::Ipi, 0), Ok(1));
        assert_eq!(t.allocate(Binding::Ipi, 0), Ok(2));
        assert_eq!(t.free(1), Ok(Binding::Ipi));
        assert_eq!(t.free(1), Err(EvtchnError::Invalid));
        assert_eq!(t.free(0), Err(EvtchnError::Invalid));
        assert_eq!(t.allocate(Binding::Ipi, 1), Ok(1));
        for _ in 3..NR_PORTS_2L {
            t.allocate(Binding::Ipi, 0).unwrap();
        }
        assert_eq!(t.allocate(Binding::Ipi, 0), Err(EvtchnError::NoSpace));
    }

    #[test]
    fn virq_rules() {
        let mut t = EvtchnTable::new(2);
        let p = t.bind_virq(VIRQ_TIMER, 1).unwrap();
        assert_eq!(t.virq_port(VIRQ_TIMER, 1), Some(p));
        assert_eq!(t.bind_virq(VIRQ_TIMER, 1), Err(EvtchnError::Exists));
        assert_eq!(t.bind_virq(VIRQ_CONSOLE, 1), Err(EvtchnError::Invalid)); // global on vCPU 1
        assert_eq!(t.bind_virq(VIRQ_TIMER, 2), Err(EvtchnError::NoVcpu));
        assert_eq!(t.bind_virq(NR_VIRQS, 0), Err(EvtchnError::Invalid));
        assert_eq!(t.bind_vcpu(p, 0), Err(EvtchnError::Invalid)); // per-vCPU VIRQ
        let c = t.bind_virq(VIRQ_CONSOLE, 0).unwrap();
        assert_eq!(t.bind_vcpu(c, 1), Ok(()));
        t.free(p).unwrap();
        assert_eq!(t.virq_port(VIRQ_TIMER, 1), None);
    }

    #[test]
    fn two_level_pending_mask_selector_upcall() {
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
    }
}
