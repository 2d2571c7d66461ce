//! Domain control (`domctl.h`), the toolstack's interface to the
//! hypervisor: the `xen_domctl` envelope and the operations xenish serves
//! (scheduler parameters). Only a privileged domain may use it, and only
//! with this exact interface version. Xen compiles this header for its
//! tools only (`__XEN_TOOLS__`); the conformance probe does the same.

use crate::arch_x86::GuestHandle;

xen_consts! {
    "domctl.h";
    XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15, "XEN_DOMCTL_INTERFACE_VERSION";
    XEN_DOMCTL_CREATEDOMAIN: u32 = 1, "XEN_DOMCTL_createdomain";
    XEN_DOMCTL_DESTROYDOMAIN: u32 = 2, "XEN_DOMCTL_destroydomain";
    XEN_DOMCTL_PAUSEDOMAIN: u32 = 3, "XEN_DOMCTL_pausedomain";
    XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4, "XEN_DOMCTL_unpausedomain";
    XEN_DOMCTL_GETDOMAININFO: u32 = 5, "XEN_DOMCTL_getdomaininfo";
    XEN_DOMCTL_MAX_MEM: u32 = 11, "XEN_DOMCTL_max_mem";
    XEN_DOMCTL_MAX_VCPUS: u32 = 15, "XEN_DOMCTL_max_vcpus";
    XEN_DOMCTL_SCHEDULER_OP: u32 = 16, "XEN_DOMCTL_scheduler_op";
    XEN_SCHEDULER_CREDIT: u32 = 5, "XEN_SCHEDULER_CREDIT";
    XEN_SCHEDULER_CREDIT2: u32 = 6, "XEN_SCHEDULER_CREDIT2";
    XEN_SCHEDULER_ARINC653: u32 = 7, "XEN_SCHEDULER_ARINC653";
    XEN_SCHEDULER_RTDS: u32 = 8, "XEN_SCHEDULER_RTDS";
    XEN_SCHEDULER_NULL: u32 = 9, "XEN_SCHEDULER_NULL";
    XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0, "XEN_DOMCTL_SCHEDOP_putinfo";
    XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1, "XEN_DOMCTL_SCHEDOP_getinfo";
    XEN_DOMCTL_SCHEDOP_PUTVCPUINFO: u32 = 2, "XEN_DOMCTL_SCHEDOP_putvcpuinfo";
    XEN_DOMCTL_SCHEDOP_GETVCPUINFO: u32 = 3, "XEN_DOMCTL_SCHEDOP_getvcpuinfo";
    XEN_DOMCTL_SCHEDRT_EXTRA_BIT: u32 = 0, "_XEN_DOMCTL_SCHEDRT_extra";
    XEN_DOMCTL_SCHEDRT_EXTRA: u32 = 1, "XEN_DOMCTL_SCHEDRT_extra";
}

xen_struct! {
    "domctl.h", "struct xen_domctl_sched_credit", 4;
    /// `struct xen_domctl_sched_credit`: the credit scheduler's parameters.
    pub struct XenDomctlSchedCredit {
        /// `weight`: relative share; 0 in a `putinfo` keeps the current one.
        weight: u16 = "weight",
        /// `cap`: percent of one CPU, 0 = none; 0xffff in a `putinfo`
        /// keeps the current one.
        cap: u16 = "cap",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_sched_credit2", 4;
    /// `struct xen_domctl_sched_credit2`.
    pub struct XenDomctlSchedCredit2 {
        /// `weight`
        weight: u16 = "weight",
        /// `cap`
        cap: u16 = "cap",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_sched_rtds", 12;
    /// `struct xen_domctl_sched_rtds`.
    pub struct XenDomctlSchedRtds {
        /// `period` (µs)
        period: u32 = "period",
        /// `budget` (µs)
        budget: u32 = "budget",
        /// `flags`: `XEN_DOMCTL_SCHEDRT_*`.
        flags: u32 = "flags",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_schedparam_vcpu", 16;
    /// `struct xen_domctl_schedparam_vcpu`: one vCPU's parameters.
    pub struct XenDomctlSchedparamVcpu {
        /// `u`: credit, credit2 or rtds parameters.
        u: [u32; 3] = "u" union("u.credit", "u.credit2", "u.rtds"),
        /// `vcpuid`
        vcpuid: u32 = "vcpuid",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl_scheduler_op", 24;
    /// `struct xen_domctl_scheduler_op` (`XEN_DOMCTL_scheduler_op`).
    pub struct XenDomctlSchedulerOp {
        /// `sched_id`: `XEN_SCHEDULER_*`; must be the running scheduler's.
        sched_id: u32 = "sched_id",
        /// `cmd`: `XEN_DOMCTL_SCHEDOP_*`.
        cmd: u32 = "cmd",
        /// `u`: credit parameters (first 4 bytes), credit2, rtds, or the
        /// per-vCPU array `v`. IN/OUT.
        u: [u64; 2] = "u" union("u.credit", "u.credit2", "u.rtds", "u.v"),
    }
}

xen_struct! {
    "domctl.h", "__typeof__(((struct xen_domctl_scheduler_op *)0)->u.v)", 16;
    /// `xen_domctl_scheduler_op.u.v`: per-vCPU parameters.
    pub struct XenDomctlSchedulerOpVcpus {
        /// `vcpus`
        vcpus: GuestHandle<XenDomctlSchedparamVcpu> = "vcpus" handle,
        /// `nr_vcpus`: IN the array's length, OUT the elements processed.
        nr_vcpus: u32 = "nr_vcpus",
        /// `padding`
        padding: u32 = "padding",
    }
}

xen_struct! {
    "domctl.h", "struct xen_domctl", 144;
    /// `struct xen_domctl`: every domain-control operation's envelope.
    pub struct XenDomctl {
        /// `cmd`: `XEN_DOMCTL_*`.
        cmd: u32 = "cmd",
        /// `interface_version`: must be [`XEN_DOMCTL_INTERFACE_VERSION`].
        interface_version: u32 = "interface_version",
        /// `domain`: the domain operated on.
        domain: u16 = "domain",
        /// `_pad`
        _pad: [u16; 3] = "_pad",
        /// `u`: the operation's arguments (128 bytes).
        u: [u64; 16] = "u" union("u.scheduler_op", "u.max_mem", "u.max_vcpus", "u.pad"),
    }
}

xen_structs!(
    XenDomctlSchedCredit,
    XenDomctlSchedCredit2,
    XenDomctlSchedRtds,
    XenDomctlSchedparamVcpu,
    XenDomctlSchedulerOp,
    XenDomctlSchedulerOpVcpus,
    XenDomctl,
);

impl XenDomctl {
    /// An envelope for `cmd` on `domain` with this interface version.
    pub fn new(cmd: u32, domain: u16) -> Self {
        XenDomctl { cmd, interface_version: XEN_DOMCTL_INTERFACE_VERSION, domain, _pad: [0; 3], u: [0; 16] }
    }

    crate::wire::union_members! {
        scheduler_op / set_scheduler_op: u: [u64; 16] => XenDomctlSchedulerOp, "u.scheduler_op";
    }
}

impl XenDomctlSchedulerOp {
    crate::wire::union_members! {
        credit / set_credit: u: [u64; 2] => XenDomctlSchedCredit, "u.credit";
        credit2 / set_credit2: u: [u64; 2] => XenDomctlSchedCredit2, "u.credit2";
        rtds / set_rtds: u: [u64; 2] => XenDomctlSchedRtds, "u.rtds";
        vcpus / set_vcpus: u: [u64; 2] => XenDomctlSchedulerOpVcpus, "u.v";
    }
}

impl XenDomctlSchedparamVcpu {
    crate::wire::union_members! {
        credit / set_credit: u: [u32; 3] => XenDomctlSchedCredit, "u.credit";
        credit2 / set_credit2: u: [u32; 3] => XenDomctlSchedCredit2, "u.credit2";
        rtds / set_rtds: u: [u32; 3] => XenDomctlSchedRtds, "u.rtds";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn scheduler_op_sits_where_c_puts_it() {
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 3);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd: XEN_DOMCTL_SCHEDOP_PUTINFO, u: [0; 2] };
        s.set_credit(XenDomctlSchedCredit { weight: 512, cap: 25 });
        op.set_scheduler_op(s);
        let b = op.as_bytes();
        assert_eq!(&b[0..4], &16u32.to_le_bytes(), "cmd");
        assert_eq!(&b[4..8], &0x15u32.to_le_bytes(), "interface_version");
        assert_eq!(&b[8..10], &3u16.to_le_bytes(), "domain");
        // u at 16: sched_id, cmd, then u.credit {weight, cap}.
        assert_eq!(&b[16..28], &[5, 0, 0, 0, 0, 0, 0, 0, 0, 2, 25, 0]);
        let back = op.scheduler_op();
        assert_eq!((back.credit().weight, back.credit().cap), (512, 25));
    }
}
