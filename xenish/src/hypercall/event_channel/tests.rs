//! Host tests of `event_channel_op`.

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
    assert_eq!(w.dom.evtchn.port(local).map(|p| p.binding), Some(Binding::Interdomain { remote: 1, port: out.port }));
    a.dom = 7;
    assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -3, "no such domain: ESRCH");
    w.peers[0].state = crate::domain::DomainState::Dying(None);
    a.dom = 1;
    assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -22, "a dying domain: EINVAL");
}

#[test]
fn ports_stop_at_the_2_level_limit_and_at_max_evtchn_port_with_enospc() {
    let mut w = two();
    // Xen's evtchn_allocate_port: port 0 is reserved, 1..4096 on the
    // 2-level ABI (max_evtchns), then -ENOSPC.
    for want in 1..crate::evtchn::NR_PORTS_2L {
        assert_eq!(alloc_unbound(&mut w, 1), (0, want));
    }
    assert_eq!(alloc_unbound(&mut w, 1).0, -28, "the 4097th port");
    assert_eq!(w.dom.evtchn.used_ports().count(), 4095, "a refusal allocates nothing");
    let close = EvtchnClose { port: 77 };
    assert_eq!(op(&mut w, EVTCHNOP_CLOSE, &close).0, 0);
    assert_eq!(alloc_unbound(&mut w, 1), (0, 77), "a closed port is reused");
    // createdomain's max_evtchn_port bounds a domain below the ABI's limit.
    w.dom.evtchn = crate::evtchn::EvtchnTable::new(1);
    w.dom.evtchn.set_max_port(3);
    for want in 1..=3 {
        assert_eq!(alloc_unbound(&mut w, 1), (0, want));
    }
    assert_eq!(alloc_unbound(&mut w, 1).0, -28, "past max_evtchn_port");
}

#[test]
fn status_of_another_domains_port_needs_privilege_after_the_lookup() {
    let mut w = two();
    let (_, p0) = alloc_unbound(&mut w, 0);
    swap(&mut w);
    let mut st = EvtchnStatus::new_zeroed();
    (st.dom, st.port) = (0, p0);
    assert_eq!(op(&mut w, EVTCHNOP_STATUS, &st).0, -1, "unprivileged: EPERM");
    st.dom = 7;
    assert_eq!(op(&mut w, EVTCHNOP_STATUS, &st).0, -3, "no such domain: ESRCH first");
    let mut a = EvtchnAllocUnbound::new_zeroed();
    (a.dom, a.remote_dom) = (7, DOMID_SELF);
    assert_eq!(op(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a).0, -3, "alloc_unbound: ESRCH before EPERM");
    w.dom.privileged = true;
    (st.dom, st.port) = (0, p0);
    let (rc, out) = op(&mut w, EVTCHNOP_STATUS, &st);
    assert_eq!((rc, out.status, out.u[0]), (0, EVTCHNSTAT_UNBOUND, 0), "a toolstack reads dom0's port");
}
