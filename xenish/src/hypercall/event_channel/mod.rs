//! `event_channel_op`: the EVTCHNOP_* commands, for the 2-level and the
//! FIFO ABI alike ([`fifo_ops`] has the FIFO ABI's own three).
//!
//! Semantics and errnos: Xen 4.17 `xen/common/event_channel.c`. Arguments
//! are copied in, validated, and the OUT fields copied back; every event
//! raised goes through [`crate::evtchn::port_ops`], which picks the
//! domain's ABI.

mod fifo_ops;

use guest_abi::errno::XenError;
use guest_abi::event_channel::*;
use guest_abi::xen::DOMID_SELF;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::xsm::{self, Action};
use super::{Ctx, HcResult, Outcome, Peers};
use crate::domain::Domain;
use crate::evtchn::{self, Binding, EvtchnError};
use crate::mm::pt_validate::Mmu;

impl From<EvtchnError> for XenError {
    fn from(e: EvtchnError) -> Self {
        match e {
            EvtchnError::Invalid => XenError::Einval,
            EvtchnError::NoSpace => XenError::Enospc,
            EvtchnError::Exists => XenError::Eexist,
            EvtchnError::NoVcpu => XenError::Enoent,
            EvtchnError::NoMemory => XenError::Enomem,
            EvtchnError::NotSupported => XenError::Eopnotsupp,
            EvtchnError::NoSys => XenError::Enosys,
            EvtchnError::Access => XenError::Eacces,
        }
    }
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
pub fn event_channel_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    serve(ctx, cmd as u32, arg).into()
}

fn read<T: FromBytes + IntoBytes>(ctx: &mut Ctx, arg: u64) -> Result<T, XenError> {
    ctx.guest().read(arg).map_err(|_| XenError::Efault)
}

fn write<T: IntoBytes + Immutable>(ctx: &mut Ctx, arg: u64, value: &T) -> Result<(), XenError> {
    ctx.guest().write(arg, value).map_err(|_| XenError::Efault)
}

/// Whether `dom` names the caller (by `DOMID_SELF` or its own ID): the
/// only domain whose ports `EVTCHNOP_reset` reaches. Another is looked up
/// first (`-ESRCH`), then needs privilege (`-EPERM`), as in Xen; resetting
/// another domain's ports is a toolstack operation xenish does not offer
/// yet (`-EOPNOTSUPP`).
fn own_ports(ctx: &mut Ctx, dom: u16) -> Result<(), XenError> {
    if dom == DOMID_SELF || dom == ctx.domain.id {
        return Ok(());
    }
    ctx.target(dom, Action::Target)?;
    Err(XenError::Eopnotsupp)
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    match cmd {
        EVTCHNOP_ALLOC_UNBOUND => {
            let mut a: EvtchnAllocUnbound = read(ctx, arg)?;
            let remote = if a.remote_dom == DOMID_SELF { ctx.domain.id } else { a.remote_dom };
            // A privileged domain may offer a port of another (a toolstack
            // wiring up a new domain's console or store channel).
            let target = xsm::target(ctx.domain, &mut ctx.peers, a.dom, Action::Target)?;
            if target.is_destroyed() {
                // Xen's get_free_port on a dying domain.
                return Err(XenError::Einval);
            }
            a.port = target.evtchn.allocate(ctx.mem, Binding::Unbound { remote }, 0)?;
            if let Err(e) = write(ctx, arg, &a) {
                if let Ok(t) = ctx.target(a.dom, Action::Target) {
                    let _ = t.evtchn.free(a.port);
                }
                return Err(e);
            }
            Ok(0)
        }
        EVTCHNOP_BIND_INTERDOMAIN => {
            let mut a: EvtchnBindInterdomain = read(ctx, arg)?;
            a.local_port = bind_interdomain(ctx, a.remote_dom, a.remote_port)?;
            write(ctx, arg, &a)?;
            Ok(0)
        }
        EVTCHNOP_BIND_VIRQ => {
            let mut a: EvtchnBindVirq = read(ctx, arg)?;
            a.port = ctx.domain.evtchn.bind_virq(ctx.mem, a.virq, a.vcpu)?;
            if let Err(e) = write(ctx, arg, &a) {
                let _ = ctx.domain.evtchn.free(a.port);
                return Err(e);
            }
            Ok(0)
        }
        EVTCHNOP_BIND_IPI => {
            let mut a: EvtchnBindIpi = read(ctx, arg)?;
            if !ctx.domain.evtchn.has_vcpu(a.vcpu) {
                return Err(XenError::Enoent);
            }
            a.port = ctx.domain.evtchn.allocate(ctx.mem, Binding::Ipi, a.vcpu)?;
            if let Err(e) = write(ctx, arg, &a) {
                let _ = ctx.domain.evtchn.free(a.port);
                return Err(e);
            }
            Ok(0)
        }
        EVTCHNOP_BIND_PIRQ => {
            let mut a: EvtchnBindPirq = read(ctx, arg)?;
            a.port = bind_pirq(ctx, a.pirq)?;
            if let Err(e) = write(ctx, arg, &a) {
                let _ = close(ctx.domain, &mut ctx.peers, a.port, ctx.mem);
                return Err(e);
            }
            Ok(0)
        }
        EVTCHNOP_CLOSE => {
            let a: EvtchnClose = read(ctx, arg)?;
            close(ctx.domain, &mut ctx.peers, a.port, ctx.mem)?;
            Ok(0)
        }
        EVTCHNOP_SEND => {
            let a: EvtchnSend = read(ctx, arg)?;
            send(ctx, a.port)?;
            Ok(0)
        }
        EVTCHNOP_STATUS => {
            let mut a: EvtchnStatus = read(ctx, arg)?;
            // Any domain's port, for a privileged caller (`lsevtchn DOMID`).
            let target = ctx.target(a.dom, Action::Target)?;
            let port = *target.evtchn.port(a.port).ok_or(XenError::Einval)?;
            let (status, u0, u1) = match port.binding {
                Binding::Free | Binding::Reserved => (EVTCHNSTAT_CLOSED, 0, 0),
                Binding::Unbound { remote } => (EVTCHNSTAT_UNBOUND, u64::from(remote), 0),
                Binding::Interdomain { remote, port } => (EVTCHNSTAT_INTERDOMAIN, u64::from(remote), port),
                Binding::Virq(v) => (EVTCHNSTAT_VIRQ, u64::from(v), 0),
                Binding::Ipi => (EVTCHNSTAT_IPI, 0, 0),
                Binding::Pirq(pirq) => (EVTCHNSTAT_PIRQ, u64::from(pirq), 0),
            };
            a.status = status;
            a.vcpu = port.notify_vcpu;
            // union u: unbound.dom / interdomain {dom @0, port @4} / virq @0.
            a.u = [u0 as u32, u1];
            write(ctx, arg, &a)?;
            Ok(0)
        }
        EVTCHNOP_BIND_VCPU => {
            let a: EvtchnBindVcpu = read(ctx, arg)?;
            ctx.domain.evtchn.bind_vcpu(a.port, a.vcpu)?;
            Ok(0)
        }
        EVTCHNOP_UNMASK => {
            let a: EvtchnUnmask = read(ctx, arg)?;
            ctx.domain.evtchn.port(a.port).ok_or(XenError::Einval)?;
            evtchn::port_unmask(ctx.domain, ctx.mem, a.port);
            Ok(0)
        }
        EVTCHNOP_RESET => {
            let a: EvtchnReset = read(ctx, arg)?;
            own_ports(ctx, a.dom)?;
            reset(ctx);
            Ok(0)
        }
        EVTCHNOP_INIT_CONTROL => fifo_ops::init_control(ctx, arg),
        EVTCHNOP_EXPAND_ARRAY => fifo_ops::expand_array(ctx, arg),
        EVTCHNOP_SET_PRIORITY => fifo_ops::set_priority(ctx, arg),
        _ => Err(XenError::Enosys),
    }
}

/// `EVTCHNOP_reset` of the caller's own ports: every port closes, and a
/// domain on the FIFO ABI goes back to the 2-level ABI, its control
/// blocks and event-array pages released (Xen's `evtchn_reset`).
fn reset(ctx: &mut Ctx) {
    let ports: alloc::vec::Vec<u32> = ctx.domain.evtchn.used_ports().map(|(p, _)| p).collect();
    for p in ports {
        let _ = close(ctx.domain, &mut ctx.peers, p, ctx.mem);
    }
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    evtchn::fifo_control::destroy(ctx.domain, &mut mmu);
}

/// Connects a new local port to `remote_port` of `remote_dom`, which must be
/// unbound and offered to the caller.
fn bind_interdomain(ctx: &mut Ctx, remote_dom: u16, remote_port: u32) -> Result<u32, XenError> {
    let me = ctx.domain.id;
    let remote_id = if remote_dom == DOMID_SELF { me } else { remote_dom };
    let offered = |d: &Domain| matches!(d.evtchn.port(remote_port).map(|p| p.binding), Some(Binding::Unbound { remote }) if remote == me);
    let local = if remote_id == me {
        if !offered(ctx.domain) {
            return Err(XenError::Einval);
        }
        let local = ctx.domain.evtchn.allocate(ctx.mem, Binding::Interdomain { remote: me, port: remote_port }, 0)?;
        ctx.domain.evtchn.rebind(remote_port, Binding::Interdomain { remote: me, port: local })?;
        local
    } else {
        let peer = ctx.peers.get_mut(remote_id).ok_or(XenError::Esrch)?;
        if !offered(peer) {
            return Err(XenError::Einval);
        }
        let binding = Binding::Interdomain { remote: remote_id, port: remote_port };
        let local = ctx.domain.evtchn.allocate(ctx.mem, binding, 0)?;
        if let Some(peer) = ctx.peers.get_mut(remote_id) {
            peer.evtchn.rebind(remote_port, Binding::Interdomain { remote: me, port: local })?;
        }
        local
    };
    // As Xen does: notifications sent to the still-unbound remote port may
    // have been lost, so raise the new local port conservatively.
    evtchn::port_set_pending(ctx.domain, ctx.mem, local);
    Ok(local)
}

/// `EVTCHNOP_bind_pirq` (Xen's `evtchn_bind_pirq` and `pirq_guest_bind`):
/// `-EINVAL` for a PIRQ out of range, `-EPERM` for one not mapped,
/// `-EEXIST` when it has a port; the machine refuses a line the hypervisor
/// keeps (`-EBUSY`). The new port notifies vCPU 0, and the EOI bitmap's
/// bit for the PIRQ says whether the guest must EOI it (level lines).
fn bind_pirq(ctx: &mut Ctx, pirq: u32) -> Result<u32, XenError> {
    if pirq >= ctx.domain.pirqs.nr_pirqs() {
        return Err(XenError::Einval);
    }
    let mapped = ctx.domain.pirqs.mapping(pirq).ok_or(XenError::Eperm)?;
    if mapped.port != 0 {
        return Err(XenError::Eexist);
    }
    let port = ctx.domain.evtchn.allocate(ctx.mem, Binding::Pirq(pirq), 0)?;
    let owner = crate::irq::Owner { domid: ctx.domain.id, pirq };
    let bound = crate::irq::with(|r| r.bind(mapped.irq, owner)).unwrap_or(Err(XenError::Einval));
    let needs_eoi = match bound {
        Ok(level) => level,
        Err(e) => {
            let _ = ctx.domain.evtchn.free(port);
            return Err(e);
        }
    };
    ctx.domain.pirqs.set_port(pirq, port);
    crate::pirq::set_eoi_bit(ctx.domain, ctx.mem, pirq, needs_eoi);
    Ok(port)
}

/// Closes `port` of `domain`; an interdomain peer's port goes back to
/// unbound (offered to this domain), as in Xen; a PIRQ's line is masked.
pub fn close(
    domain: &mut Domain,
    peers: &mut Peers,
    port: u32,
    mem: &mut dyn crate::mm::MachineMemory,
) -> Result<(), XenError> {
    let old = domain.evtchn.free(port)?;
    evtchn::port_clear_pending(domain, mem, port);
    if let Binding::Pirq(pirq) = old {
        if let Some(m) = domain.pirqs.mapping(pirq).filter(|m| m.port == port) {
            crate::irq::with(|r| r.unbind(m.irq));
            domain.pirqs.set_port(pirq, 0);
        }
    }
    if let Binding::Interdomain { remote, port: remote_port } = old {
        let me = domain.id;
        let back = Binding::Unbound { remote: me };
        if remote == me {
            let _ = domain.evtchn.rebind(remote_port, back);
        } else if let Some(peer) = peers.get_mut(remote) {
            if matches!(peer.evtchn.port(remote_port).map(|p| p.binding), Some(Binding::Interdomain { remote: r, port: p }) if r == me && p == port)
            {
                let _ = peer.evtchn.rebind(remote_port, back);
            }
        }
    }
    Ok(())
}

/// `EVTCHNOP_send`: raise the peer of an interdomain port, or an IPI port
/// locally; sends on an unbound port are dropped, anything else is -EINVAL.
fn send(ctx: &mut Ctx, port: u32) -> Result<(), XenError> {
    let p = *ctx.domain.evtchn.port(port).ok_or(XenError::Einval)?;
    match p.binding {
        Binding::Interdomain { remote: evtchn::DOMID_XEN, .. } => {
            // The console port of a domU: xenish is the backend.
            let platform = &mut *ctx.platform;
            crate::console_ring::service(ctx.domain, ctx.mem, ctx.now_ns, &mut |b| platform.console_write(b));
            Ok(())
        }
        Binding::Interdomain { remote, port: rport } => {
            let target = if remote == ctx.domain.id { Some(&mut *ctx.domain) } else { ctx.peers.get_mut(remote) };
            if let Some(t) = target {
                evtchn::port_set_pending(t, ctx.mem, rport);
            }
            Ok(())
        }
        Binding::Ipi => {
            evtchn::port_set_pending(ctx.domain, ctx.mem, port);
            Ok(())
        }
        Binding::Unbound { .. } => Ok(()),
        _ => Err(XenError::Einval),
    }
}

/// `EVTCHNOP_send` for the fast path, which may change guest memory but
/// not the domain (shared with other CPUs): carried out, returning
/// `Some(0)`, only for a 2-level port whose event stays with the caller
/// (an interdomain port bound to the caller's own domain, or an IPI port,
/// either way notifying the calling vCPU) while no vCPU of the domain
/// polls (a poller of the port would have to be woken). `None` otherwise,
/// before anything was changed: the slow path does it (and answers the
/// errors).
pub fn send_in_domain(dom: &Domain, vcpu: usize, mem: &mut dyn crate::mm::MachineMemory, arg: u64) -> Option<i64> {
    let kernel_l4 = dom.vcpus.get(vcpu)?.kernel_l4;
    let a: EvtchnSend = crate::guest_access::GuestMemory::new(mem, kernel_l4).read(arg).ok()?;
    let target = match dom.evtchn.port(a.port)?.binding {
        Binding::Interdomain { remote, port } if remote == dom.id => port,
        Binding::Ipi => a.port,
        _ => return None,
    };
    let p = dom.evtchn.port(target)?;
    let polled = dom.vcpus.iter().any(|v| v.poll.is_some());
    if !p.binding.is_usable() || p.notify_vcpu as usize != vcpu || dom.evtchn.fifo().is_some() || polled {
        return None;
    }
    evtchn::two_level::set_pending(mem, dom.shared_info, target, dom.vcpu_info(vcpu));
    Some(0)
}

#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod tests;
