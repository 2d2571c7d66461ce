//! `event_channel_op`: the EVTCHNOP_* commands of the 2-level ABI.
//!
//! Semantics and errnos: Xen 4.17 `xen/common/event_channel.c`. Arguments
//! are copied in, validated, and the OUT fields copied back; the FIFO ABI
//! (`init_control`, `expand_array`, `set_priority`) answers `-ENOSYS`, which
//! makes guests use the 2-level ABI.

use guest_abi::errno::XenError;
use guest_abi::event_channel::*;
use guest_abi::xen::DOMID_SELF;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{Ctx, HcResult, Outcome, Peers};
use crate::domain::Domain;
use crate::evtchn::{self, Binding, EvtchnError};

impl From<EvtchnError> for XenError {
    fn from(e: EvtchnError) -> Self {
        match e {
            EvtchnError::Invalid => XenError::Einval,
            EvtchnError::NoSpace => XenError::Enospc,
            EvtchnError::Exists => XenError::Eexist,
            EvtchnError::NoVcpu => XenError::Enoent,
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

/// The domain a `domid` argument names: the caller for DOMID_SELF or its
/// own ID; another domain only for a privileged caller.
fn resolve_self_or_privileged(ctx: &Ctx, dom: u16) -> Result<(), XenError> {
    if dom == DOMID_SELF || dom == ctx.domain.id {
        Ok(())
    } else if ctx.domain.privileged {
        // Acting on another domain's ports is a toolstack operation that
        // xenish does not offer yet.
        Err(XenError::Esrch)
    } else {
        Err(XenError::Eperm)
    }
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    match cmd {
        EVTCHNOP_ALLOC_UNBOUND => {
            let mut a: EvtchnAllocUnbound = read(ctx, arg)?;
            let remote = if a.remote_dom == DOMID_SELF { ctx.domain.id } else { a.remote_dom };
            let me = ctx.domain.id;
            let own = a.dom == DOMID_SELF || a.dom == me;
            if !own && !ctx.domain.privileged {
                return Err(XenError::Eperm);
            }
            // A privileged domain may offer a port of another (a toolstack
            // wiring up a new domain's console or store channel).
            let target = if own { Some(&mut *ctx.domain) } else { ctx.peers.get_mut(a.dom) };
            let target = target.ok_or(XenError::Esrch)?;
            if target.is_destroyed() {
                // Xen's get_free_port on a dying domain.
                return Err(XenError::Einval);
            }
            a.port = target.evtchn.allocate(Binding::Unbound { remote }, 0)?;
            if let Err(e) = write(ctx, arg, &a) {
                let target = if own { Some(&mut *ctx.domain) } else { ctx.peers.get_mut(a.dom) };
                if let Some(t) = target {
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
            a.port = ctx.domain.evtchn.bind_virq(a.virq, a.vcpu)?;
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
            a.port = ctx.domain.evtchn.allocate(Binding::Ipi, a.vcpu)?;
            if let Err(e) = write(ctx, arg, &a) {
                let _ = ctx.domain.evtchn.free(a.port);
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
            resolve_self_or_privileged(ctx, a.dom)?;
            let port = *ctx.domain.evtchn.port(a.port).ok_or(XenError::Einval)?;
            let (status, u0, u1) = match port.binding {
                Binding::Free | Binding::Reserved => (EVTCHNSTAT_CLOSED, 0, 0),
                Binding::Unbound { remote } => (EVTCHNSTAT_UNBOUND, u64::from(remote), 0),
                Binding::Interdomain { remote, port } => (EVTCHNSTAT_INTERDOMAIN, u64::from(remote), port),
                Binding::Virq(v) => (EVTCHNSTAT_VIRQ, u64::from(v), 0),
                Binding::Ipi => (EVTCHNSTAT_IPI, 0, 0),
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
            let port = *ctx.domain.evtchn.port(a.port).ok_or(XenError::Einval)?;
            let info = ctx.domain.vcpu_info(port.notify_vcpu as usize);
            evtchn::unmask(ctx.mem, ctx.domain.shared_info, a.port, info);
            Ok(0)
        }
        EVTCHNOP_RESET => {
            let a: EvtchnReset = read(ctx, arg)?;
            resolve_self_or_privileged(ctx, a.dom)?;
            let ports: alloc::vec::Vec<u32> = ctx.domain.evtchn.used_ports().map(|(p, _)| p).collect();
            for p in ports {
                let _ = close(ctx.domain, &mut ctx.peers, p, ctx.mem);
            }
            Ok(0)
        }
        // The FIFO ABI is not offered: guests fall back to 2-level.
        EVTCHNOP_INIT_CONTROL | EVTCHNOP_EXPAND_ARRAY | EVTCHNOP_SET_PRIORITY => Err(XenError::Enosys),
        _ => Err(XenError::Enosys),
    }
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
        let local = ctx.domain.evtchn.allocate(Binding::Interdomain { remote: me, port: remote_port }, 0)?;
        ctx.domain.evtchn.rebind(remote_port, Binding::Interdomain { remote: me, port: local })?;
        local
    } else {
        let peer = ctx.peers.get_mut(remote_id).ok_or(XenError::Esrch)?;
        if !offered(peer) {
            return Err(XenError::Einval);
        }
        let local = ctx.domain.evtchn.allocate(Binding::Interdomain { remote: remote_id, port: remote_port }, 0)?;
        if let Some(peer) = ctx.peers.get_mut(remote_id) {
            peer.evtchn.rebind(remote_port, Binding::Interdomain { remote: me, port: local })?;
        }
        local
    };
    // As Xen does: notifications sent to the still-unbound remote port may
    // have been lost, so raise the new local port conservatively.
    let notify = ctx.domain.evtchn.port(local).map_or(0, |p| p.notify_vcpu);
    evtchn::set_pending(ctx.mem, ctx.domain.shared_info, local, ctx.domain.vcpu_info(notify as usize));
    Ok(local)
}

/// Closes `port` of `domain`; an interdomain peer's port goes back to
/// unbound (offered to this domain), as in Xen.
pub fn close(
    domain: &mut Domain,
    peers: &mut Peers,
    port: u32,
    mem: &mut dyn crate::mm::MachineMemory,
) -> Result<(), XenError> {
    let old = domain.evtchn.free(port)?;
    evtchn::clear_pending(mem, domain.shared_info, port);
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
            crate::console_ring::service(ctx.domain, ctx.mem, &mut |b| platform.console_write(b));
            Ok(())
        }
        Binding::Interdomain { remote, port: rport } => {
            let target = if remote == ctx.domain.id { Some(&mut *ctx.domain) } else { ctx.peers.get_mut(remote) };
            if let Some(t) = target {
                if let Some(rp) = t.evtchn.port(rport) {
                    let info = t.vcpu_info(rp.notify_vcpu as usize);
                    evtchn::set_pending(ctx.mem, t.shared_info, rport, info);
                }
            }
            Ok(())
        }
        Binding::Ipi => {
            let info = ctx.domain.vcpu_info(p.notify_vcpu as usize);
            evtchn::set_pending(ctx.mem, ctx.domain.shared_info, port, info);
            Ok(())
        }
        Binding::Unbound { .. } => Ok(()),
        _ => Err(XenError::Einval),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use crate::mm::Mfn;
    use guest_abi::xen::HYPERVISOR_EVENT_CHANNEL_OP;
    use zerocopy::FromZeros;

    const NR: u64 = HYPERVISOR_EVENT_CHANNEL_OP as u64;
    const PEER_SI: Mfn = Mfn(9);

    /// A world with dom0 (caller) and dom1 (peer, shared_info in frame 9).
    fn two() -> World {
        let mut w = World::new(false);
        let mut peer = World::new(false).dom;
        peer.id = 1;
        peer.shared_info = PEER_SI;
        // Its frames are those of the other world: here it owns none.
        peer.page_list = Default::default();
        w.peers.push(peer);
        w
    }

    /// Makes the peer the caller and the caller the peer.
    fn swap(w: &mut World) {
        core::mem::swap(&mut w.dom, &mut w.peers[0]);
    }

    fn op<T: IntoBytes + Immutable + FromBytes>(w: &mut World, cmd: u32, arg: &T) -> (i64, T) {
        w.poke(BUF_VA, arg.as_bytes());
        let rc = w.call_ret(NR, [cmd as u64, BUF_VA, 0, 0, 0]);
        let out = T::read_from_bytes(&w.peek(BUF_VA, size_of::<T>())).unwrap();
        (rc, out)
    }

    fn alloc_unbound(w: &mut World, remote: u16) -> (i64, u32) {
        let mut a = EvtchnAllocUnbound::new_zeroed();
        a.dom = DOMID_SELF;
        a.remote_dom = remote;
        let (rc, out) = op(w, EVTCHNOP_ALLOC_UNBOUND, &a);
        (rc, out.port)
    }

    fn bind(w: &mut World, remote_dom: u16, remote_port: u32) -> (i64, u32) {
        let a = EvtchnBindInterdomain { remote_dom, _pad0: [0; 2], remote_port, local_port: 0 };
        let (rc, out) = op(w, EVTCHNOP_BIND_INTERDOMAIN, &a);
        (rc, out.local_port)
    }

    fn send(w: &mut World, port: u32) -> i64 {
        op(w, EVTCHNOP_SEND, &EvtchnSend { port }).0
    }

    /// Consumes a pending event in `si` like a guest's upcall handler:
    /// returns the pending ports and clears them, the selector and the flag.
    fn consume(w: &mut World, si: Mfn) -> std::vec::Vec<u32> {
        let page = &mut w.mem.0[si.0 as usize];
        let mut ports = std::vec::Vec::new();
        if page[0] == 0 {
            return ports;
        }
        page[0] = 0;
        page[8..16].fill(0);
        for p in 0..4096u32 {
            let (byte, bit) = (0x800 + (p / 8) as usize, 1u8 << (p % 8));
            if page[byte] & bit != 0 {
                page[byte] &= !bit;
                ports.push(p);
            }
        }
        ports
    }

    #[test]
    fn interdomain_ping_pong_ten_thousand_times() {
        let mut w = two();
        let (rc, offered) = alloc_unbound(&mut w, 1);
        assert_eq!((rc, offered), (0, 1));
        swap(&mut w);
        let (rc, peer_port) = bind(&mut w, 0, offered);
        assert_eq!((rc, peer_port), (0, 1));
        // Binding raises the new local port once (Xen's conservative notify).
        assert_eq!(consume(&mut w, PEER_SI), [peer_port]);
        swap(&mut w);
        let si0 = w.dom.shared_info;
        for round in 0..10_000 {
            assert_eq!(send(&mut w, offered), 0);
            assert_eq!(consume(&mut w, si0), [], "round {round}: no event back at the sender");
            assert_eq!(consume(&mut w, PEER_SI), [peer_port], "round {round}");
            swap(&mut w);
            assert_eq!(send(&mut w, peer_port), 0);
            swap(&mut w);
            assert_eq!(consume(&mut w, si0), [offered], "round {round}");
            assert_eq!(consume(&mut w, PEER_SI), [], "round {round}: nothing spurious");
        }
    }

    #[test]
    fn binding_what_was_not_offered_is_refused() {
        let mut w = two();
        let (_, for_dom2) = alloc_unbound(&mut w, 2);
        swap(&mut w);
        assert_eq!(bind(&mut w, 0, for_dom2).0, -22, "offered to someone else");
        assert_eq!(bind(&mut w, 0, 99).0, -22, "no such port");
        assert_eq!(bind(&mut w, 7, 1).0, -3, "no such domain");
        swap(&mut w);
        let mut a = EvtchnAllocUnbound::new_zeroed();
        a.dom = 1;
        a.remote_dom = 0;
        assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -1, "unprivileged for another domain");
        assert_eq!(w.call_ret(NR, [EVTCHNOP_ALLOC_UNBOUND as u64, 0x10, 0, 0, 0]), -14);
        assert_eq!(w.call_ret(NR, [EVTCHNOP_INIT_CONTROL as u64, BUF_VA, 0, 0, 0]), -38);
    }

    #[test]
    fn close_reverts_the_peer_and_status_reports() {
        let mut w = two();
        let (_, p0) = alloc_unbound(&mut w, 1);
        swap(&mut w);
        let (_, p1) = bind(&mut w, 0, p0);
        let mut st = EvtchnStatus::new_zeroed();
        st.dom = DOMID_SELF;
        st.port = p1;
        let (rc, out) = op(&mut w, EVTCHNOP_STATUS, &st);
        assert_eq!((rc, out.status, out.u), (0, EVTCHNSTAT_INTERDOMAIN, [0, p0]));
        assert_eq!(op(&mut w, EVTCHNOP_CLOSE, &EvtchnClose { port: p1 }).0, 0);
        assert_eq!(op(&mut w, EVTCHNOP_CLOSE, &EvtchnClose { port: p1 }).0, -22);
        swap(&mut w);
        st.port = p0;
        let (_, out) = op(&mut w, EVTCHNOP_STATUS, &st);
        assert_eq!((out.status, out.u[0]), (EVTCHNSTAT_UNBOUND, 1), "offered to dom1 again");
        st.port = 4000;
        assert_eq!(op(&mut w, EVTCHNOP_STATUS, &st).0, -22);
        assert_eq!(send(&mut w, 4000), -22);
        assert_eq!(send(&mut w, p0), 0, "sends on an unbound port are dropped");
    }

    #[test]
    fn virq_ipi_and_unmask() {
        let mut w = World::new(false);
        let mut v = EvtchnBindVirq::new_zeroed();
        v.virq = 0;
        let (rc, out) = op(&mut w, EVTCHNOP_BIND_VIRQ, &v);
        assert_eq!((rc, out.port), (0, 1));
        assert_eq!(op(&mut w, EVTCHNOP_BIND_VIRQ, &v).0, -17);
        v.vcpu = 5;
        assert_eq!(op(&mut w, EVTCHNOP_BIND_VIRQ, &v).0, -2);
        let mut ipi = EvtchnBindIpi::new_zeroed();
        let (rc, out) = op(&mut w, EVTCHNOP_BIND_IPI, &ipi);
        assert_eq!((rc, out.port), (0, 2));
        ipi.vcpu = 3;
        assert_eq!(op(&mut w, EVTCHNOP_BIND_IPI, &ipi).0, -2);
        // Masked IPI: pending, no upcall; unmask delivers it.
        let si = w.dom.shared_info;
        w.mem.0[si.0 as usize][0xa00] |= 1 << 2;
        assert_eq!(send(&mut w, 2), 0);
        assert_eq!(w.mem.0[si.0 as usize][0], 0);
        assert_eq!(op(&mut w, EVTCHNOP_UNMASK, &EvtchnUnmask { port: 2 }).0, 0);
        assert_eq!(w.mem.0[si.0 as usize][0], 1);
        assert_eq!(send(&mut w, 1), -22, "sending on a VIRQ port");
    }

    #[test]
    fn a_privileged_domain_offers_a_port_of_another() {
        let mut w = two();
        let mut a = EvtchnAllocUnbound::new_zeroed();
        (a.dom, a.remote_dom) = (1, DOMID_SELF);
        assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -1, "unprivileged: EPERM");
        w.dom.privileged = true;
        let (rc, out) = op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a);
        assert_eq!(rc, 0);
        let offered = w.peers[0].evtchn.port(out.port).map(|p| p.binding);
        assert_eq!(offered, Some(Binding::Unbound { remote: 0 }), "offered to the caller (DOMID_SELF)");
        let (rc, local) = bind(&mut w, 1, out.port);
        assert_eq!(rc, 0, "and the caller binds it");
        assert_eq!(
            w.dom.evtchn.port(local).map(|p| p.binding),
            Some(Binding::Interdomain { remote: 1, port: out.port })
        );
        a.dom = 7;
        assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -3, "no such domain: ESRCH");
        w.peers[0].state = crate::domain::DomainState::Dying(None);
        a.dom = 1;
        assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -22, "a dying domain: EINVAL");
    }
}
