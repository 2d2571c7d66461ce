//! Wrappers for `event_channel_op` (`event_channel.h`).

use zerocopy::FromZeros;

use super::struct_op;
use crate::errno::XenError;
use crate::event_channel::{self as ev, *};
use crate::xen::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP};

fn evtchn_op<T: zerocopy::IntoBytes + zerocopy::FromBytes>(cmd: u32, arg: &mut T) -> Result<u64, XenError> {
    struct_op(HYPERVISOR_EVENT_CHANNEL_OP, cmd, arg)
}

/// `EVTCHNOP_alloc_unbound`: a local port `remote_dom` may bind.
pub fn evtchn_alloc_unbound(remote_dom: u16) -> Result<u32, XenError> {
    let mut a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom, port: 0 };
    evtchn_op(ev::EVTCHNOP_ALLOC_UNBOUND, &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_alloc_unbound` in domain `dom` (a privileged domain setting
/// up another's channels): a port of `dom` that `remote_dom` may bind.
pub fn evtchn_alloc_unbound_in(dom: u16, remote_dom: u16) -> Result<u32, XenError> {
    let mut a = EvtchnAllocUnbound { dom, remote_dom, port: 0 };
    evtchn_op(ev::EVTCHNOP_ALLOC_UNBOUND, &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_bind_interdomain`: binds `remote_dom`'s unbound port; the
/// new local port.
pub fn evtchn_bind_interdomain(remote_dom: u16, remote_port: u32) -> Result<u32, XenError> {
    let mut a = EvtchnBindInterdomain::new_zeroed();
    a.remote_dom = remote_dom;
    a.remote_port = remote_port;
    evtchn_op(ev::EVTCHNOP_BIND_INTERDOMAIN, &mut a)?;
    Ok(a.local_port)
}

/// `EVTCHNOP_bind_virq`: `VIRQ_*` `virq` on `vcpu`; the new port.
pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<u32, XenError> {
    let mut a = EvtchnBindVirq { virq, vcpu, port: 0 };
    evtchn_op(ev::EVTCHNOP_BIND_VIRQ, &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_bind_pirq` (flags: `BIND_PIRQ__WILL_SHARE`); the new port.
pub fn evtchn_bind_pirq(pirq: u32, flags: u32) -> Result<u32, XenError> {
    let mut a = EvtchnBindPirq { pirq, flags, port: 0 };
    evtchn_op(ev::EVTCHNOP_BIND_PIRQ, &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_bind_ipi` on `vcpu`; the new port.
pub fn evtchn_bind_ipi(vcpu: u32) -> Result<u32, XenError> {
    let mut a = EvtchnBindIpi { vcpu, port: 0 };
    evtchn_op(ev::EVTCHNOP_BIND_IPI, &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_close`.
pub fn evtchn_close(port: u32) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_CLOSE, &mut EvtchnClose { port }).map(drop)
}

/// `EVTCHNOP_send`: notifies the other end of `port`.
pub fn evtchn_send(port: u32) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_SEND, &mut EvtchnSend { port }).map(drop)
}

/// `EVTCHNOP_status` of `dom`'s `port`.
pub fn evtchn_status(dom: u16, port: u32) -> Result<EvtchnStatus, XenError> {
    let mut a = EvtchnStatus::new_zeroed();
    a.dom = dom;
    a.port = port;
    evtchn_op(ev::EVTCHNOP_STATUS, &mut a)?;
    Ok(a)
}

/// `EVTCHNOP_bind_vcpu`: delivers `port` to `vcpu`.
pub fn evtchn_bind_vcpu(port: u32, vcpu: u32) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu }).map(drop)
}

/// `EVTCHNOP_unmask`: clears the mask and re-raises a pending event.
pub fn evtchn_unmask(port: u32) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_UNMASK, &mut EvtchnUnmask { port }).map(drop)
}

/// `EVTCHNOP_reset`: closes all of `dom`'s ports.
pub fn evtchn_reset(dom: u16) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_RESET, &mut EvtchnReset { dom }).map(drop)
}

/// `EVTCHNOP_init_control`: switches to the FIFO ABI with `vcpu`'s
/// control block at `offset` in frame `control_gfn`; returns `link_bits`.
///
/// # Safety
/// The hypervisor writes the control block from then on: that memory must
/// stay reserved for it.
pub unsafe fn evtchn_init_control(control_gfn: u64, offset: u32, vcpu: u32) -> Result<u8, XenError> {
    let mut a = EvtchnInitControl::new_zeroed();
    a.control_gfn = control_gfn;
    a.offset = offset;
    a.vcpu = vcpu;
    evtchn_op(ev::EVTCHNOP_INIT_CONTROL, &mut a)?;
    Ok(a.link_bits)
}

/// `EVTCHNOP_expand_array`: adds frame `array_gfn` to the FIFO event array.
///
/// # Safety
/// As for [`evtchn_init_control`]: the frame becomes the hypervisor's to
/// write.
pub unsafe fn evtchn_expand_array(array_gfn: u64) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn }).map(drop)
}

/// `EVTCHNOP_set_priority` (FIFO ABI).
pub fn evtchn_set_priority(port: u32, priority: u32) -> Result<(), XenError> {
    evtchn_op(ev::EVTCHNOP_SET_PRIORITY, &mut EvtchnSetPriority { port, priority }).map(drop)
}
