//! `sysctl`: the toolstack's system-control operations, for a privileged
//! domain. xenish serves `XEN_SYSCTL_physinfo` (the machine's CPUs and
//! memory, with the free-frame count a toolstack checks before it builds
//! a domain) and `XEN_SYSCTL_getdomaininfolist` (what `xl list` shows:
//! every domain from an ID on, in ID order, as `getdomaininfo` describes
//! it; a buffer it cannot write is `-EFAULT`); the other commands answer
//! `-ENOSYS`.
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
        XEN_SYSCTL_GETDOMAININFOLIST => {
            let mut list = op.getdomaininfolist();
            list.num_domains = domain_info_list(ctx, &list)?;
            op.set_getdomaininfolist(list);
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        _ => Err(XenError::Enosys),
    }
}

/// Writes the `getdomaininfo` of up to `max_domains` domains with IDs from
/// `first_domain` on into the buffer, in ID order; returns how many.
fn domain_info_list(ctx: &mut Ctx, list: &XenSysctlGetdomaininfolist) -> Result<u32, XenError> {
    let me = &*ctx.domain;
    let mut ids: alloc::vec::Vec<u16> =
        core::iter::once(me).chain(ctx.peers.iter()).map(|d| d.id).filter(|&id| id >= list.first_domain).collect();
    ids.sort_unstable();
    let mut written = 0u32;
    for id in ids.into_iter().take(list.max_domains as usize) {
        let Some(info) = super::domctl::domain_info(ctx, id) else { continue };
        let at = list.buffer.element_addr(u64::from(written)).ok_or(XenError::Efault)?;
        ctx.guest().write(at, &info).map_err(|_| XenError::Efault)?;
        written += 1;
    }
    Ok(written)
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
        capabilities: XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1 | XEN_SYSCTL_PHYSCAP_GNTTAB_V2,
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
    use zerocopy::{FromBytes, FromZeros, IntoBytes};

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
        assert_eq!(
            info.capabilities,
            XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1 | XEN_SYSCTL_PHYSCAP_GNTTAB_V2
        );
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

    #[test]
    fn getdomaininfolist_lists_domains_in_id_order() {
        use guest_abi::domctl::XenDomctlGetdomaininfo;
        let mut w = World::new(true);
        w.add_peer(super::super::tests::test_domain(7, false, 10..12, None, crate::mm::Mfn(13)));
        w.add_peer(super::super::tests::test_domain(3, false, 12..13, None, crate::mm::Mfn(14)));
        let list = |w: &mut World, first: u16, max: u32, buffer: u64| {
            let mut op = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
            let mut l = XenSysctlGetdomaininfolist::new_zeroed();
            (l.first_domain, l.max_domains) = (first, max);
            l.buffer = guest_abi::GuestHandle::from_ptr(buffer as *const XenDomctlGetdomaininfo);
            op.set_getdomaininfolist(l);
            w.poke(BUF_VA, op.as_bytes());
            let ret = w.call_ret(u64::from(HYPERVISOR_SYSCTL), [BUF_VA, 0, 0, 0, 0]);
            let back = XenSysctl::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenSysctl>())).unwrap();
            (ret, back.getdomaininfolist().num_domains)
        };
        let entry = |w: &mut World, i: u64| {
            let size = core::mem::size_of::<XenDomctlGetdomaininfo>();
            XenDomctlGetdomaininfo::read_from_bytes(&w.peek(BUF_VA + 0x1000 + i * size as u64, size)).unwrap()
        };
        assert_eq!(list(&mut w, 0, 10, BUF_VA + 0x1000), (0, 3));
        let ids: [u16; 3] = [0, 1, 2].map(|i| entry(&mut w, i).domain);
        assert_eq!(ids, [0, 3, 7], "in ID order");
        assert_eq!(entry(&mut w, 2).tot_pages, 2);
        assert_eq!(list(&mut w, 1, 1, BUF_VA + 0x1000), (0, 1));
        assert_eq!(entry(&mut w, 0).domain, 3, "from first_domain on, at most max_domains");
        assert_eq!(list(&mut w, 0, 10, 0x10).0, -14, "an unwritable buffer: EFAULT");
    }
}
