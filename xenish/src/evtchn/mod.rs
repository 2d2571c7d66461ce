//! Event channels: each domain's ports, what they are bound to, and which
//! ABI its guest reads events through.
//!
//! Semantics: Xen 4.17 `xen/common/event_channel.c`. Port 0 is reserved.
//! A domain starts on the 2-level ABI ([`two_level`]: bits in shared_info,
//! at most 4096 ports for a 64-bit guest) and moves to the FIFO ABI
//! ([`fifo`]: event words in guest pages, per-vCPU priority queues, up to
//! 2^17 ports) with its first `EVTCHNOP_init_control`; `EVTCHNOP_reset`
//! takes it back. Ports are also bounded by the domain's
//! `max_evtchn_port` (`createdomain`; `INT_MAX` for a boot-time domain, as
//! for Xen's dom0). Raising, unmasking and polling a port go through
//! [`port_ops`], which picks the domain's ABI.
//!
//! This module owns the port table. Guest memory is only reached through
//! the ABI modules, with atomic operations ([`crate::mm::shared_word`]).

pub mod fifo;
pub mod fifo_control;
pub mod port_ops;
pub mod two_level;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::domain::DomId;
use crate::mm::MachineMemory;

pub use port_ops::{port_clear_pending, port_is_pending, port_set_pending, port_unmask, send_virq};

/// Ports of the 2-level ABI for a 64-bit guest (64 words of 64 bits).
pub const NR_PORTS_2L: u32 = guest_abi::event_channel::EVTCHN_2L_NR_CHANNELS;
/// Ports of the FIFO ABI (`EVTCHN_FIFO_NR_CHANNELS`).
pub const NR_PORTS_FIFO: u32 = guest_abi::event_channel::EVTCHN_FIFO_NR_CHANNELS;
/// The highest `max_evtchn_port` Xen records (`INT_MAX`).
pub const MAX_EVTCHN_PORT: u32 = i32::MAX as u32;
/// Virtual IRQs (`NR_VIRQS`); `DOMID_XEN`, the hypervisor as the remote
/// end of a port (the domU console is bound to it); the VIRQs the
/// hypervisor raises itself.
pub use guest_abi::xen::{DOMID_XEN, NR_VIRQS, VIRQ_CONSOLE, VIRQ_TIMER};

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
    /// A physical IRQ of the domain's (`EVTCHNOP_bind_pirq`).
    Pirq(u32),
}

impl Binding {
    /// Whether events can be raised on the port (Xen's `evtchn_usable`:
    /// neither free nor reserved).
    pub fn is_usable(self) -> bool {
        !matches!(self, Binding::Free | Binding::Reserved)
    }
}

/// One port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// Its binding.
    pub binding: Binding,
    /// The vCPU notified when it is raised.
    pub notify_vcpu: u32,
    /// Its FIFO priority (0 highest, 15 lowest; 7 by default).
    pub priority: u8,
    /// The FIFO queue it was last linked on (Xen's `fifo_lastq`).
    pub last_queue: fifo::QueueId,
    /// Raised while its FIFO event word had no page yet (Xen's
    /// `evtchn->pending`): raised again once the page is added.
    pub deferred: bool,
}

impl Port {
    fn new(binding: Binding, notify_vcpu: u32) -> Self {
        Port {
            binding,
            notify_vcpu,
            priority: fifo::PRIORITY_DEFAULT,
            last_queue: fifo::QueueId::default(),
            deferred: false,
        }
    }
}

/// Why an event-channel operation failed (mapped to Xen's errno by the
/// hypercall layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnError {
    /// `-EINVAL`: bad port, state, frame or argument.
    Invalid,
    /// `-ENOSPC`: no free port, or no room for another event-array page.
    NoSpace,
    /// `-EEXIST`: the VIRQ is already bound on that vCPU.
    Exists,
    /// `-ENOENT`: no such vCPU.
    NoVcpu,
    /// `-ENOMEM`: the hypervisor's memory ran out.
    NoMemory,
    /// `-EOPNOTSUPP`: a FIFO operation before `init_control`.
    NotSupported,
    /// `-ENOSYS`: the domain's ABI has no such operation (priorities on
    /// the 2-level ABI).
    NoSys,
    /// `-EACCES`: the port is not in use.
    Access,
}

/// A domain's event channels.
#[derive(Clone, Debug)]
pub struct EvtchnTable {
    ports: Vec<Port>,
    /// Port bound to each VIRQ, per vCPU: `virqs[vcpu][virq]`.
    virqs: Vec<[u32; NR_VIRQS as usize]>,
    /// The domain's `max_evtchn_port`.
    max_port: u32,
    /// The FIFO ABI's state once the guest switched to it; `None` on the
    /// 2-level ABI.
    fifo: Option<Box<fifo::Fifo>>,
}

impl EvtchnTable {
    /// A table for a domain with `nr_vcpus` vCPUs on the 2-level ABI: port
    /// 0 reserved, `max_evtchn_port` as for Xen's dom0.
    pub fn new(nr_vcpus: usize) -> Self {
        EvtchnTable {
            ports: alloc::vec![Port::new(Binding::Reserved, 0)],
            virqs: alloc::vec![[0; NR_VIRQS as usize]; nr_vcpus],
            max_port: MAX_EVTCHN_PORT,
            fifo: None,
        }
    }

    /// Sets the domain's `max_evtchn_port` (`createdomain.max_evtchn_port`,
    /// which Xen clips to `INT_MAX`): no port above it is allocated.
    pub fn set_max_port(&mut self, max_port: u32) {
        self.max_port = max_port.min(MAX_EVTCHN_PORT);
    }

    /// How many ports the domain may have: its `max_evtchn_port` within
    /// its ABI's limit (Xen's `max_evtchns`).
    pub fn limit(&self) -> u32 {
        let abi = if self.fifo.is_some() { NR_PORTS_FIFO } else { NR_PORTS_2L };
        self.max_port.saturating_add(1).min(abi)
    }

    /// The FIFO ABI's state, if the domain uses it.
    pub fn fifo(&self) -> Option<&fifo::Fifo> {
        self.fifo.as_deref()
    }

    /// The port, if it is valid (it was allocated once).
    pub fn port(&self, port: u32) -> Option<&Port> {
        self.ports.get(port as usize)
    }

    fn port_mut(&mut self, port: u32) -> Option<&mut Port> {
        self.ports.get_mut(port as usize)
    }

    /// Makes room for the per-vCPU VIRQs of `nr_vcpus` vCPUs (the domain
    /// got its vCPUs; bindings of existing ones stay).
    pub fn set_nr_vcpus(&mut self, nr_vcpus: usize) {
        if nr_vcpus > self.virqs.len() {
            self.virqs.resize(nr_vcpus, [0; NR_VIRQS as usize]);
        }
    }

    /// Whether `vcpu` exists.
    pub fn has_vcpu(&self, vcpu: u32) -> bool {
        (vcpu as usize) < self.virqs.len()
    }

    /// Allocates the lowest free port with `binding` (Xen's
    /// `get_free_port`): a closed port whose FIFO event word is still
    /// linked on a queue is busy and skipped until the guest unlinks it.
    pub fn allocate(
        &mut self,
        mem: &mut dyn MachineMemory,
        binding: Binding,
        notify_vcpu: u32,
    ) -> Result<u32, EvtchnError> {
        let limit = self.limit() as usize;
        let fifo = self.fifo.as_deref();
        let free = self
            .ports
            .iter()
            .take(limit)
            .enumerate()
            .position(|(i, p)| p.binding == Binding::Free && !fifo.is_some_and(|f| f.is_busy(mem, i as u32)));
        let port = match free {
            Some(i) => i,
            None if self.ports.len() < limit => {
                self.ports.try_reserve(1).map_err(|_| EvtchnError::NoMemory)?;
                self.ports.push(Port::new(Binding::Free, 0));
                self.ports.len() - 1
            }
            None => return Err(EvtchnError::NoSpace),
        };
        let p = self.ports.get_mut(port).ok_or(EvtchnError::NoSpace)?;
        // Xen's evtchn_port_init: a new binding starts at the default priority.
        (p.binding, p.notify_vcpu, p.priority) = (binding, notify_vcpu, fifo::PRIORITY_DEFAULT);
        Ok(port as u32)
    }

    /// Binds `virq` on `vcpu` to a new port.
    pub fn bind_virq(&mut self, mem: &mut dyn MachineMemory, virq: u32, vcpu: u32) -> Result<u32, EvtchnError> {
        if virq >= NR_VIRQS || (!virq_is_per_vcpu(virq) && vcpu != 0) {
            return Err(EvtchnError::Invalid);
        }
        let bound = self.virqs.get(vcpu as usize).ok_or(EvtchnError::NoVcpu)?;
        if bound.get(virq as usize).is_some_and(|&p| p != 0) {
            return Err(EvtchnError::Exists);
        }
        let port = self.allocate(mem, Binding::Virq(virq), vcpu)?;
        if let Some(slot) = self.virqs.get_mut(vcpu as usize).and_then(|v| v.get_mut(virq as usize)) {
            *slot = port;
        }
        Ok(port)
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<u32> {
        self.virqs.get(vcpu as usize)?.get(virq as usize).copied().filter(|&p| p != 0)
    }

    /// Frees `port` (after its peer was dealt with); returns its old
    /// binding. Its pending state is the caller's to clear.
    pub fn free(&mut self, port: u32) -> Result<Binding, EvtchnError> {
        let p = self.port_mut(port).ok_or(EvtchnError::Invalid)?;
        let old = p.binding;
        if !old.is_usable() {
            return Err(EvtchnError::Invalid);
        }
        (p.binding, p.notify_vcpu, p.deferred) = (Binding::Free, 0, false);
        if let Binding::Virq(virq) = old {
            for slot in self.virqs.iter_mut().filter_map(|v| v.get_mut(virq as usize)) {
                if *slot == port {
                    *slot = 0;
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
            Binding::Virq(_) | Binding::Unbound { .. } | Binding::Interdomain { .. } | Binding::Pirq(_) => {
                p.notify_vcpu = vcpu;
                Ok(())
            }
            _ => Err(EvtchnError::Invalid),
        }
    }

    /// `EVTCHNOP_set_priority`: the FIFO priority of `port` for its future
    /// events (an event already queued stays where it is). In Xen's order:
    /// an invalid port, then the 2-level ABI (no priorities), then a port
    /// not in use, then a priority beyond the lowest.
    pub fn set_priority(&mut self, port: u32, priority: u32) -> Result<(), EvtchnError> {
        let fifo = self.fifo.is_some();
        let p = self.port_mut(port).ok_or(EvtchnError::Invalid)?;
        if !fifo {
            return Err(EvtchnError::NoSys);
        }
        if !p.binding.is_usable() {
            return Err(EvtchnError::Access);
        }
        p.priority = u8::try_from(priority).ok().filter(|&q| q <= fifo::PRIORITY_MIN).ok_or(EvtchnError::Invalid)?;
        Ok(())
    }

    /// Every port in use (for teardown and reset).
    pub fn used_ports(&self) -> impl Iterator<Item = (u32, Port)> + '_ {
        self.ports.iter().enumerate().filter(|(_, p)| p.binding.is_usable()).map(|(i, p)| (i as u32, *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::mm::PAGE_SIZE;
    extern crate std;

    fn mem() -> FakeMemory {
        FakeMemory(std::vec![[0u8; PAGE_SIZE]; 1])
    }

    #[test]
    fn allocation_starts_at_1_and_reuses() {
        let mut m = mem();
        let mut t = EvtchnTable::new(2);
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Ok(1));
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Ok(2));
        assert_eq!(t.free(1), Ok(Binding::Ipi));
        assert_eq!(t.free(1), Err(EvtchnError::Invalid));
        assert_eq!(t.free(0), Err(EvtchnError::Invalid));
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 1), Ok(1));
        for _ in 3..NR_PORTS_2L {
            t.allocate(&mut m, Binding::Ipi, 0).unwrap();
        }
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Err(EvtchnError::NoSpace));
    }

    #[test]
    fn max_evtchn_port_bounds_allocation() {
        let mut m = mem();
        let mut t = EvtchnTable::new(1);
        t.set_max_port(2);
        assert_eq!(t.limit(), 3);
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Ok(1));
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Ok(2));
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Err(EvtchnError::NoSpace));
        t.set_max_port(0);
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Err(EvtchnError::NoSpace), "0 leaves none");
        t.set_max_port(u32::MAX);
        assert_eq!(t.limit(), NR_PORTS_2L, "the 2-level ABI's bound all the same");
    }

    #[test]
    fn virq_rules() {
        let mut m = mem();
        let mut t = EvtchnTable::new(2);
        let p = t.bind_virq(&mut m, VIRQ_TIMER, 1).unwrap();
        assert_eq!(t.virq_port(VIRQ_TIMER, 1), Some(p));
        assert_eq!(t.bind_virq(&mut m, VIRQ_TIMER, 1), Err(EvtchnError::Exists));
        assert_eq!(t.bind_virq(&mut m, VIRQ_CONSOLE, 1), Err(EvtchnError::Invalid)); // global on vCPU 1
        assert_eq!(t.bind_virq(&mut m, VIRQ_TIMER, 2), Err(EvtchnError::NoVcpu));
        assert_eq!(t.bind_virq(&mut m, NR_VIRQS, 0), Err(EvtchnError::Invalid));
        assert_eq!(t.bind_vcpu(p, 0), Err(EvtchnError::Invalid)); // per-vCPU VIRQ
        let c = t.bind_virq(&mut m, VIRQ_CONSOLE, 0).unwrap();
        assert_eq!(t.bind_vcpu(c, 1), Ok(()));
        t.free(p).unwrap();
        assert_eq!(t.virq_port(VIRQ_TIMER, 1), None);
    }

    #[test]
    fn priorities_need_the_fifo_abi_and_a_port_in_use() {
        let mut m = mem();
        let mut t = EvtchnTable::new(1);
        let p = t.allocate(&mut m, Binding::Ipi, 0).unwrap();
        assert_eq!(t.set_priority(99, 3), Err(EvtchnError::Invalid), "an invalid port first");
        assert_eq!(t.set_priority(p, 3), Err(EvtchnError::NoSys), "2-level: no priorities");
        t.fifo = Some(Box::new(fifo::Fifo::new(1)));
        assert_eq!(t.set_priority(0, 3), Err(EvtchnError::Access), "the reserved port");
        assert_eq!(t.set_priority(p, 16), Err(EvtchnError::Invalid));
        assert_eq!(t.set_priority(p, u32::MAX), Err(EvtchnError::Invalid));
        assert_eq!(t.set_priority(p, 15), Ok(()));
        assert_eq!(t.port(p).map(|x| x.priority), Some(15));
        t.free(p).unwrap();
        assert_eq!(t.set_priority(p, 3), Err(EvtchnError::Access), "a closed port");
        assert_eq!(t.allocate(&mut m, Binding::Ipi, 0), Ok(p));
        assert_eq!(t.port(p).map(|x| x.priority), Some(fifo::PRIORITY_DEFAULT), "a new binding: default again");
    }
}
