//! Raising, unmasking, clearing and polling a domain's port through the
//! ABI the domain uses: Xen's `evtchn_port_*` operations
//! (xen/include/xen/event.h), which pick the 2-level or FIFO
//! `evtchn_port_ops`. Every path that delivers an event — a send, a
//! VIRQ, an interdomain notification, the console, an unmask — comes
//! through here, so both ABIs serve all of them.
//!
//! Each returns (or the raising ones return) whether the notify vCPU's
//! upcall became pending; the scheduler wakes a blocked vCPU from its
//! `evtchn_upcall_pending` and a polling one from [`port_is_pending`].

use super::{fifo, two_level};
use crate::domain::Domain;
use crate::mm::MachineMemory;

/// Raises `port` of `d` on vCPU `vcpu`, whatever the port's state.
pub(super) fn raise_on(d: &mut Domain, mem: &mut dyn MachineMemory, port: u32, vcpu: u32) -> bool {
    let info = d.vcpu_info(vcpu as usize);
    let shared_info = d.shared_info;
    let table = &mut d.evtchn;
    match table.fifo.as_deref_mut() {
        None => two_level::set_pending(mem, shared_info, port, info),
        Some(f) => fifo::set_pending(f, &mut table.ports, mem, port, vcpu, info),
    }
}

/// Raises `port` of `d` on its notify vCPU, if it is in use (Xen's
/// `evtchn_port_set_pending`).
pub fn port_set_pending(d: &mut Domain, mem: &mut dyn MachineMemory, port: u32) -> bool {
    match d.evtchn.port(port) {
        Some(p) if p.binding.is_usable() => {
            let vcpu = p.notify_vcpu;
            raise_on(d, mem, port, vcpu)
        }
        _ => false,
    }
}

/// Raises the port `d` bound to `virq` on `vcpu` (0 for a global VIRQ),
/// if it bound one (Xen's `send_guest_vcpu_virq` / `send_guest_global_virq`).
pub fn send_virq(d: &mut Domain, mem: &mut dyn MachineMemory, virq: u32, vcpu: u32) -> bool {
    match d.evtchn.virq_port(virq, vcpu) {
        Some(port) => port_set_pending(d, mem, port),
        None => false,
    }
}

/// Clears `port`'s pending state (when it is closed).
pub fn port_clear_pending(d: &mut Domain, mem: &mut dyn MachineMemory, port: u32) {
    match d.evtchn.fifo() {
        None => two_level::clear_pending(mem, d.shared_info, port),
        Some(f) => f.clear_pending(mem, port),
    }
}

/// `EVTCHNOP_unmask` of a port in use: unmasks it and delivers what is
/// pending.
pub fn port_unmask(d: &mut Domain, mem: &mut dyn MachineMemory, port: u32) -> bool {
    let Some(p) = d.evtchn.port(port).copied().filter(|p| p.binding.is_usable()) else { return false };
    let info = d.vcpu_info(p.notify_vcpu as usize);
    let shared_info = d.shared_info;
    let table = &mut d.evtchn;
    match table.fifo.as_deref_mut() {
        None => two_level::unmask(mem, shared_info, port, info),
        Some(f) => fifo::unmask(f, &mut table.ports, mem, port, p.notify_vcpu, info),
    }
}

/// Whether `port` is in use and pending, masked or not (what
/// `SCHEDOP_poll` waits for; Xen's `evtchn_port_poll`).
pub fn port_is_pending(d: &Domain, mem: &mut dyn MachineMemory, port: u32) -> bool {
    if !d.evtchn.port(port).is_some_and(|p| p.binding.is_usable()) {
        return false;
    }
    match d.evtchn.fifo() {
        None => two_level::is_pending(mem, d.shared_info, port),
        Some(f) => f.is_pending(mem, port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evtchn::{Binding, VIRQ_TIMER};
    use crate::hypercall::tests::World;

    #[test]
    fn closed_and_reserved_ports_raise_nothing() {
        let mut w = World::new(false);
        assert!(!port_set_pending(&mut w.dom, &mut w.mem, 0), "reserved");
        assert!(!port_set_pending(&mut w.dom, &mut w.mem, 5), "never allocated");
        assert!(!send_virq(&mut w.dom, &mut w.mem, VIRQ_TIMER, 0), "not bound");
        let p = w.dom.evtchn.bind_virq(&mut w.mem, VIRQ_TIMER, 0).unwrap();
        assert!(send_virq(&mut w.dom, &mut w.mem, VIRQ_TIMER, 0));
        assert!(port_is_pending(&w.dom, &mut w.mem, p));
        w.dom.evtchn.free(p).unwrap();
        assert!(!port_is_pending(&w.dom, &mut w.mem, p), "a closed port polls as not pending");
        port_clear_pending(&mut w.dom, &mut w.mem, p);
        let q = w.dom.evtchn.allocate(&mut w.mem, Binding::Ipi, 0).unwrap();
        assert_eq!(q, p);
        assert!(!port_is_pending(&w.dom, &mut w.mem, q), "cleared on close: nothing left for the new binding");
    }
}
