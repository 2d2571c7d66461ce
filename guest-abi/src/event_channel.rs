//! Event channels (`event_channel.h`): EVTCHNOP_* commands and their
//! argument structs, the FIFO ABI's control block.

use crate::wire::union_members;

xen_consts! {
    "event_channel.h";
    EVTCHNOP_BIND_INTERDOMAIN: u32 = 0, "EVTCHNOP_bind_interdomain";
    EVTCHNOP_BIND_VIRQ: u32 = 1, "EVTCHNOP_bind_virq";
    EVTCHNOP_BIND_PIRQ: u32 = 2, "EVTCHNOP_bind_pirq";
    EVTCHNOP_CLOSE: u32 = 3, "EVTCHNOP_close";
    EVTCHNOP_SEND: u32 = 4, "EVTCHNOP_send";
    EVTCHNOP_STATUS: u32 = 5, "EVTCHNOP_status";
    EVTCHNOP_ALLOC_UNBOUND: u32 = 6, "EVTCHNOP_alloc_unbound";
    EVTCHNOP_BIND_IPI: u32 = 7, "EVTCHNOP_bind_ipi";
    EVTCHNOP_BIND_VCPU: u32 = 8, "EVTCHNOP_bind_vcpu";
    EVTCHNOP_UNMASK: u32 = 9, "EVTCHNOP_unmask";
    EVTCHNOP_RESET: u32 = 0xa, "EVTCHNOP_reset";
    EVTCHNOP_INIT_CONTROL: u32 = 0xb, "EVTCHNOP_init_control";
    EVTCHNOP_EXPAND_ARRAY: u32 = 0xc, "EVTCHNOP_expand_array";
    EVTCHNOP_SET_PRIORITY: u32 = 0xd, "EVTCHNOP_set_priority";
    EVTCHNSTAT_CLOSED: u32 = 0, "EVTCHNSTAT_closed";
    EVTCHNSTAT_UNBOUND: u32 = 1, "EVTCHNSTAT_unbound";
    EVTCHNSTAT_INTERDOMAIN: u32 = 2, "EVTCHNSTAT_interdomain";
    EVTCHNSTAT_PIRQ: u32 = 3, "EVTCHNSTAT_pirq";
    EVTCHNSTAT_VIRQ: u32 = 4, "EVTCHNSTAT_virq";
    EVTCHNSTAT_IPI: u32 = 5, "EVTCHNSTAT_ipi";
    EVTCHN_FIFO_PRIORITY_MAX: u32 = 0, "EVTCHN_FIFO_PRIORITY_MAX";
    EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7, "EVTCHN_FIFO_PRIORITY_DEFAULT";
    EVTCHN_FIFO_PRIORITY_MIN: u32 = 0xf, "EVTCHN_FIFO_PRIORITY_MIN";
    EVTCHN_FIFO_MAX_QUEUES: u32 = 0x10, "EVTCHN_FIFO_MAX_QUEUES";
    EVTCHN_FIFO_PENDING: u32 = 0x1f, "EVTCHN_FIFO_PENDING";
    EVTCHN_FIFO_MASKED: u32 = 0x1e, "EVTCHN_FIFO_MASKED";
    EVTCHN_FIFO_LINKED: u32 = 0x1d, "EVTCHN_FIFO_LINKED";
    EVTCHN_FIFO_BUSY: u32 = 0x1c, "EVTCHN_FIFO_BUSY";
    EVTCHN_FIFO_LINK_BITS: u32 = 0x11, "EVTCHN_FIFO_LINK_BITS";
    EVTCHN_FIFO_LINK_MASK: u32 = 0x1ffff, "EVTCHN_FIFO_LINK_MASK";
    EVTCHN_FIFO_NR_CHANNELS: u32 = 0x20000, "EVTCHN_FIFO_NR_CHANNELS";
    EVTCHN_2L_NR_CHANNELS: u32 = 4096, "EVTCHN_2L_NR_CHANNELS";
    BIND_PIRQ_WILL_SHARE: u32 = 1, "BIND_PIRQ__WILL_SHARE";
}

xen_struct! {
    "event_channel.h", "struct evtchn_alloc_unbound", 8;
    /// `struct evtchn_alloc_unbound` (event_channel.h).
    pub struct EvtchnAllocUnbound {
        /// `dom`
        dom: u16 = "dom",
        /// `remote_dom`
        remote_dom: u16 = "remote_dom",
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_bind_interdomain", 12;
    /// `struct evtchn_bind_interdomain` (event_channel.h).
    pub struct EvtchnBindInterdomain {
        /// `remote_dom`
        remote_dom: u16 = "remote_dom",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `remote_port`
        remote_port: u32 = "remote_port",
        /// `local_port`
        local_port: u32 = "local_port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_bind_virq", 12;
    /// `struct evtchn_bind_virq` (event_channel.h).
    pub struct EvtchnBindVirq {
        /// `virq`
        virq: u32 = "virq",
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_bind_pirq", 12;
    /// `struct evtchn_bind_pirq` (event_channel.h).
    pub struct EvtchnBindPirq {
        /// `pirq`
        pirq: u32 = "pirq",
        /// `flags`
        flags: u32 = "flags",
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_bind_ipi", 8;
    /// `struct evtchn_bind_ipi` (event_channel.h).
    pub struct EvtchnBindIpi {
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_close", 4;
    /// `struct evtchn_close` (event_channel.h).
    pub struct EvtchnClose {
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_send", 4;
    /// `struct evtchn_send` (event_channel.h).
    pub struct EvtchnSend {
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_status", 24;
    /// `struct evtchn_status` (event_channel.h).
    pub struct EvtchnStatus {
        /// `dom`
        dom: u16 = "dom",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `port`
        port: u32 = "port",
        /// `status`
        status: u32 = "status",
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// `u`: by `status`, see the accessors.
        u: [u32; 2] = "u" union("u.unbound", "u.interdomain", "u.pirq", "u.virq"),
    }
}

xen_struct! {
    "event_channel.h", "__typeof__(((struct evtchn_status *)0)->u.unbound)", 2;
    /// `evtchn_status.u.unbound`.
    pub struct EvtchnStatusUnbound {
        /// `dom`: the domain allowed to bind.
        dom: u16 = "dom",
    }
}

xen_struct! {
    "event_channel.h", "__typeof__(((struct evtchn_status *)0)->u.interdomain)", 8;
    /// `evtchn_status.u.interdomain`.
    pub struct EvtchnStatusInterdomain {
        /// `dom`: the remote domain.
        dom: u16 = "dom",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `port`: the remote port.
        port: u32 = "port",
    }
}

impl EvtchnStatus {
    union_members! {
        unbound / set_unbound: u: [u32; 2] => EvtchnStatusUnbound, "u.unbound";
        interdomain / set_interdomain: u: [u32; 2] => EvtchnStatusInterdomain, "u.interdomain";
    }

    /// `u.pirq` (or `u.virq`: both are the first word).
    pub const fn irq(&self) -> u32 {
        self.u[0]
    }

    /// Sets `u.pirq` or `u.virq` (the rest of the union is zeroed).
    pub fn set_irq(&mut self, irq: u32) {
        self.u = [irq, 0];
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_bind_vcpu", 8;
    /// `struct evtchn_bind_vcpu` (event_channel.h).
    pub struct EvtchnBindVcpu {
        /// `port`
        port: u32 = "port",
        /// `vcpu`
        vcpu: u32 = "vcpu",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_unmask", 4;
    /// `struct evtchn_unmask` (event_channel.h).
    pub struct EvtchnUnmask {
        /// `port`
        port: u32 = "port",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_reset", 2;
    /// `struct evtchn_reset` (event_channel.h).
    pub struct EvtchnReset {
        /// `dom`
        dom: u16 = "dom",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_init_control", 24;
    /// `struct evtchn_init_control` (event_channel.h).
    pub struct EvtchnInitControl {
        /// `control_gfn`
        control_gfn: u64 = "control_gfn",
        /// `offset`
        offset: u32 = "offset",
        /// `vcpu`
        vcpu: u32 = "vcpu",
        /// `link_bits`
        link_bits: u8 = "link_bits",
        /// `_pad`
        _pad: [u8; 7] = "_pad",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_expand_array", 8;
    /// `struct evtchn_expand_array` (event_channel.h).
    pub struct EvtchnExpandArray {
        /// `array_gfn`
        array_gfn: u64 = "array_gfn",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_set_priority", 8;
    /// `struct evtchn_set_priority` (event_channel.h).
    pub struct EvtchnSetPriority {
        /// `port`
        port: u32 = "port",
        /// `priority`
        priority: u32 = "priority",
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_op", 28;
    /// `struct evtchn_op` (event_channel.h): the argument of the old
    /// `event_channel_op_compat` hypercall, a command and its argument.
    pub struct EvtchnOp {
        /// `cmd`: `EVTCHNOP_*`.
        cmd: u32 = "cmd",
        /// `u`: the argument struct for `cmd`, see the accessors.
        u: [u32; 6] = "u" union(
            "u.alloc_unbound", "u.bind_interdomain", "u.bind_virq", "u.bind_pirq", "u.bind_ipi",
            "u.close", "u.send", "u.status", "u.bind_vcpu", "u.unmask"
        ),
    }
}

impl EvtchnOp {
    union_members! {
        alloc_unbound / set_alloc_unbound: u: [u32; 6] => EvtchnAllocUnbound, "u.alloc_unbound";
        bind_interdomain / set_bind_interdomain: u: [u32; 6] => EvtchnBindInterdomain, "u.bind_interdomain";
        bind_virq / set_bind_virq: u: [u32; 6] => EvtchnBindVirq, "u.bind_virq";
        bind_pirq / set_bind_pirq: u: [u32; 6] => EvtchnBindPirq, "u.bind_pirq";
        bind_ipi / set_bind_ipi: u: [u32; 6] => EvtchnBindIpi, "u.bind_ipi";
        close / set_close: u: [u32; 6] => EvtchnClose, "u.close";
        send / set_send: u: [u32; 6] => EvtchnSend, "u.send";
        status / set_status: u: [u32; 6] => EvtchnStatus, "u.status";
        bind_vcpu / set_bind_vcpu: u: [u32; 6] => EvtchnBindVcpu, "u.bind_vcpu";
        unmask / set_unmask: u: [u32; 6] => EvtchnUnmask, "u.unmask";
    }
}

xen_struct! {
    "event_channel.h", "struct evtchn_fifo_control_block", 72;
    /// `struct evtchn_fifo_control_block` (event_channel.h): the FIFO ABI's
    /// per-vCPU control block.
    pub struct EvtchnFifoControlBlock {
        /// `ready`: one bit per queue with events.
        ready: u32 = "ready",
        /// `_rsvd`
        _rsvd: u32 = "_rsvd",
        /// `head`: the head port of each priority queue.
        head: [u32; 16] = "head",
    }
}

xen_structs!(
    EvtchnAllocUnbound,
    EvtchnBindInterdomain,
    EvtchnBindVirq,
    EvtchnBindPirq,
    EvtchnBindIpi,
    EvtchnClose,
    EvtchnSend,
    EvtchnStatus,
    EvtchnStatusUnbound,
    EvtchnStatusInterdomain,
    EvtchnBindVcpu,
    EvtchnUnmask,
    EvtchnReset,
    EvtchnInitControl,
    EvtchnExpandArray,
    EvtchnSetPriority,
    EvtchnOp,
    EvtchnFifoControlBlock,
);

xen_enum! {
    /// What a port is bound to (`evtchn_status.status`).
    pub enum EvtchnStat: u32 {
        /// `EVTCHNSTAT_closed`
        Closed = EVTCHNSTAT_CLOSED,
        /// `EVTCHNSTAT_unbound`
        Unbound = EVTCHNSTAT_UNBOUND,
        /// `EVTCHNSTAT_interdomain`
        Interdomain = EVTCHNSTAT_INTERDOMAIN,
        /// `EVTCHNSTAT_pirq`
        Pirq = EVTCHNSTAT_PIRQ,
        /// `EVTCHNSTAT_virq`
        Virq = EVTCHNSTAT_VIRQ,
        /// `EVTCHNSTAT_ipi`
        Ipi = EVTCHNSTAT_IPI,
    }
}
