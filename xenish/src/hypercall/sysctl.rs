//! `sysctl`: the toolstack's system-control operations, for a privileged
//! domain. xenish serves `XEN_SYSCTL_physinfo` (the machine's CPUs and
//! memory, with the free-frame count a toolstack checks before it builds
//! a domain); the other commands answer `-ENOSYS`.
//!
//! Semantics and errnos: Xen 4.17 `xen/common/sysctl.c` (`do_sysctl`:
//! interface version `-EACCES`, then the caller's privilege `-EPERM`) and
//! `xen/arch/x86/sysctl.c` (`arch_do_physinfo`). xenish runs on one CPU and
//! one node and does not report the boot CPU's feature words (`hw_cap` is
//! zero).

use guest_abi::errno::XenError;
use guest_abi::sysctl::*;

use super::{Ctx, HcResult, Outcome};

/// `HYPERVISOR_sysctl(op)`.
pub fn sysctl(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    serve(ctx, args[0]).into()
}

fn serve(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut op: XenSysctl = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Err(XenError::Eacces);
    }
    if !ctx.domain.privileged {
        return Err(XenError::Eperm);
    }
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => {
            op.set_physinfo(physinfo(ctx));
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        _ => Err(XenError::Enosys),
    }
}

/// What `XEN_SYSCTL_physinfo` reports.
fn physinfo(ctx: &Ctx) -> XenSysctlPhysinfo {
    let ram = ctx.platform.machine_memory_map().iter().filter(|e| e.kind == 1).map(|e| e.size >> 12).sum();
    XenSysctlPhysinfo {
        threads_per_core: 1,
        cores_per_socket: 1,
        nr_cpus: 1,
        max_cpu_id: 0,
        nr_nodes: 1,
        max_node_id: 0,
        cpu_khz: ctx.platform.cpu_khz(),
        capabilities: XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1,
        arch_capabilities: 0,
        pad: 0,
        total_pages: ram,
        free_pages: ctx.frames.free_frames(),
        scrub_pages: 0,
        outstanding_pages: 0,
        max_mfn: ctx.ft.nr_frames().saturating_sub(1),
        hw_cap: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use guest_abi::xen::HYPERVISOR_SYSCTL;
    use zerocopy::{FromBytes, IntoBytes};

    fn call(w: &mut World, op: XenSysctl) -> (i64, XenSysctlPhysinfo) {
        w.poke(BUF_VA, op.as_bytes());
        let ret = w.call_ret(u64::from(HYPERVISOR_SYSCTL), [BUF_VA, 0, 0, 0, 0]);
        let back = XenSysctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenSysctl>())).unwrap();
        (ret, back.physinfo())
    }

    #[test]
    fn physinfo_reports_the_free_frames() {
        let mut w = World::new(true);
        let (ret, info) = call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO));
        assert_eq!(ret, 0);
        assert_eq!(info.free_pages, w.pool.0.len() as u64);
        assert_eq!((info.nr_cpus, info.max_mfn), (1, 23));
        assert_eq!(info.capabilities, XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1);
        w.pool.0.pop();
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO)).1.free_pages, w.pool.0.len() as u64);
    }

    #[test]
    fn refuses_with_xens_errnos() {
        let mut w = World::new(true);
        let mut op = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        op.interface_version = 0x14;
        assert_eq!(call(&mut w, op).0, -13, "another interface version: EACCES");
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_SCHED_ID)).0, -38, "not served: ENOSYS");
        assert_eq!(w.call_ret(u64::from(HYPERVISOR_SYSCTL), [0x10, 0, 0, 0, 0]), -14, "bad pointer: EFAULT");
        w.dom.privileged = false;
        assert_eq!(call(&mut w, XenSysctl::new(XEN_SYSCTL_PHYSINFO)).0, -1, "unprivileged: EPERM");
    }
}
