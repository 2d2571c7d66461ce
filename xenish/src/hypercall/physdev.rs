//! `physdev_op`: every sub-op of Xen 4.17's `physdev.h`, answered as Xen
//! 4.17 (`xen/arch/x86/physdev.c do_physdev_op`) answers a 64-bit PV
//! domain. The machine's interrupt routing is [`crate::irq`]'s, a
//! domain's PIRQs [`crate::pirq`]'s.
//!
//! - Served for every domain: the virtual IOPL and I/O bitmap; PIRQ
//!   status, EOI, reservation (`get_free_pirq`) and the EOI bitmap page;
//!   `IRQ_UNMASK_NOTIFY`.
//! - Privileged-only operations answer an unprivileged domain `-EPERM`
//!   (Xen's XSM default policy) after the checks Xen makes first; a PCI
//!   device no one added is `-ENODEV`.
//! - For the control domain, on a machine with IO-APICs: `map_pirq` and
//!   `unmap_pirq` of its own GSIs, MSIs and MSI-X entries (the hypervisor
//!   picks the vector and programs the device, [`crate::msi`]),
//!   `setup_gsi`, `apic_read`, `alloc_irq_vector` (Xen's dummy), the PCI
//!   device add/remove operations (recording the MSI capabilities),
//!   `restore_msi(_ext)`, `prepare/release_msix`, `dbgp_op` (0: no EHCI
//!   debug port). `apic_write` is `-EINVAL` (the routing is the
//!   hypervisor's); multi-vector MSI is `-EOPNOTSUPP`, as in Xen without
//!   interrupt remapping. Another domain's PIRQs (passthrough) and
//!   `pci_mmcfg_reserved` are `-ENOSYS`, named in the log once; so is
//!   everything device-related without IO-APICs.
//! - Numbers Xen has no handler for (`free_irq_vector` among them) are
//!   `-ENOSYS`, as in Xen.

use guest_abi::errno::XenError;
use guest_abi::physdev::*;
use guest_abi::xen::{DOMID_SELF, HYPERVISOR_PHYSDEV_OP};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{Ctx, HcResult, Outcome};
use crate::mm::frame_table::PageType;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::Mfn;

/// `HYPERVISOR_physdev_op(cmd, arg)`.
pub fn physdev_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, arg, ..] = args;
    serve(ctx, cmd as u32, arg).into()
}

/// The argument struct at `arg`, or `-EFAULT`.
fn read<T: FromBytes + IntoBytes>(ctx: &mut Ctx, arg: u64) -> Result<T, XenError> {
    ctx.guest().read(arg).map_err(|_| XenError::Efault)
}

/// Writes the OUT fields back: `-EFAULT` if that fails, else `result`.
fn write_back<T: IntoBytes + Immutable>(ctx: &mut Ctx, arg: u64, value: &T, result: HcResult) -> HcResult {
    ctx.guest().write(arg, value).map_err(|_| XenError::Efault)?;
    result
}

/// Xen's XSM default for `XSM_PRIV`: the control domain only.
fn privileged_only(ctx: &Ctx) -> Result<(), XenError> {
    ctx.privileged().map(|_| ())
}

/// A device operation of the control domain that device passthrough
/// (issue 19) will serve; any other domain is refused by Xen's XSM check.
fn device_op(ctx: &Ctx, cmd: u32) -> HcResult {
    privileged_only(ctx)?;
    Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_PHYSDEV_OP, Some(cmd.into())))
}

fn serve(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    match cmd {
        PHYSDEVOP_EOI => eoi(ctx, arg),
        PHYSDEVOP_PIRQ_EOI_GMFN_V1 | PHYSDEVOP_PIRQ_EOI_GMFN_V2 => register_eoi_map(ctx, cmd, arg),
        // Legacy: unmask every PIRQ whose port is unmasked; none is bound.
        PHYSDEVOP_IRQ_UNMASK_NOTIFY => Ok(0),
        PHYSDEVOP_IRQ_STATUS_QUERY => {
            let mut q: PhysdevIrqStatusQuery = read(ctx, arg)?;
            if q.irq >= ctx.domain.pirqs.nr_pirqs() || q.irq > i32::MAX as u32 {
                return Err(XenError::Einval);
            }
            // Xen always says an EOI is needed; no PIRQ is shared.
            q.flags = XENIRQSTAT_NEEDS_EOI;
            write_back(ctx, arg, &q, Ok(0))
        }
        PHYSDEVOP_MAP_PIRQ => map_pirq(ctx, arg),
        PHYSDEVOP_UNMAP_PIRQ => {
            let u: PhysdevUnmapPirq = read(ctx, arg)?;
            target_exists(ctx, u.domid)?;
            privileged_only(ctx)?;
            unmap_pirq(ctx, u.domid, u.pirq)
        }
        PHYSDEVOP_APIC_READ | PHYSDEVOP_APIC_WRITE => {
            let mut apic: PhysdevApic = read(ctx, arg)?;
            privileged_only(ctx)?;
            if cmd == PHYSDEVOP_APIC_WRITE {
                // ioapic_guest_write (Linux 6.1 never calls it): the
                // hypervisor owns the IO-APICs' routing.
                return Err(XenError::Einval);
            }
            // ioapic_guest_read: an IO-APIC at that base address, else EINVAL.
            let value = crate::irq::with(|r| r.read_register(apic.apic_physbase, apic.reg)).flatten();
            let result = match value {
                Some(v) => {
                    apic.value = v;
                    Ok(0)
                }
                None => Err(XenError::Einval),
            };
            write_back(ctx, arg, &apic, result)
        }
        PHYSDEVOP_ALLOC_IRQ_VECTOR => {
            let mut op: PhysdevIrq = read(ctx, arg)?;
            privileged_only(ctx)?;
            // Xen's dummy: the vector is the IRQ, allocated when routed.
            op.vector = op.irq;
            write_back(ctx, arg, &op, Ok(0))
        }
        PHYSDEVOP_SET_IOPL => {
            let op: PhysdevSetIopl = read(ctx, arg)?;
            if op.iopl > 3 {
                return Err(XenError::Einval);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
                v.iopl = op.iopl as u8;
            }
            Ok(0)
        }
        PHYSDEVOP_SET_IOBITMAP => {
            let op: PhysdevSetIobitmap = read(ctx, arg)?;
            // Xen's guest_handle_okay checks where the bitmap starts.
            if !crate::guest_access::is_guest_addr(op.bitmap.addr()) || op.nr_ports > 65536 {
                return Err(XenError::Einval);
            }
            if let Some(v) = ctx.domain.vcpus.get_mut(ctx.vcpu) {
                v.iobitmap = (op.bitmap.addr(), op.nr_ports);
            }
            Ok(0)
        }
        PHYSDEVOP_MANAGE_PCI_ADD | PHYSDEVOP_MANAGE_PCI_REMOVE => {
            let op: PhysdevManagePci = read(ctx, arg)?;
            pci_device(ctx, cmd, sbdf(0, op.bus, op.devfn), cmd == PHYSDEVOP_MANAGE_PCI_ADD)
        }
        PHYSDEVOP_MANAGE_PCI_ADD_EXT => {
            let op: PhysdevManagePciExt = read(ctx, arg)?;
            if op.is_extfn > 1 || op.is_virtfn > 1 {
                return Err(XenError::Einval);
            }
            pci_device(ctx, cmd, sbdf(0, op.bus, op.devfn), true)
        }
        PHYSDEVOP_PCI_DEVICE_ADD => {
            let op: PhysdevPciDeviceAdd = read(ctx, arg)?;
            if op.flags & XEN_PCI_DEV_PXM != 0 {
                // optarr[0], the proximity domain, follows the struct.
                let _: u32 = read(ctx, arg.wrapping_add(12))?;
            }
            pci_device(ctx, cmd, sbdf(op.seg, op.bus, op.devfn), true)
        }
        PHYSDEVOP_PCI_DEVICE_REMOVE => {
            let op: PhysdevPciDevice = read(ctx, arg)?;
            pci_device(ctx, cmd, sbdf(op.seg, op.bus, op.devfn), false)
        }
        PHYSDEVOP_PREPARE_MSIX | PHYSDEVOP_RELEASE_MSIX => {
            let op: PhysdevPciDevice = read(ctx, arg)?;
            privileged_only(ctx)?;
            let off = cmd == PHYSDEVOP_RELEASE_MSIX;
            let dev = sbdf(op.seg, op.bus, op.devfn);
            crate::irq::with(|r| r.prepare_msix(dev, off)).unwrap_or_else(|| Err(not_routed(ctx, cmd)))?;
            Ok(0)
        }
        PHYSDEVOP_PCI_MMCFG_RESERVED => {
            privileged_only(ctx)?;
            let _: PhysdevPciMmcfgReserved = read(ctx, arg)?;
            device_op(ctx, cmd)
        }
        PHYSDEVOP_RESTORE_MSI | PHYSDEVOP_RESTORE_MSI_EXT => {
            let dev = if cmd == PHYSDEVOP_RESTORE_MSI {
                let op: PhysdevRestoreMsi = read(ctx, arg)?;
                sbdf(0, op.bus, op.devfn)
            } else {
                let op: PhysdevPciDevice = read(ctx, arg)?;
                sbdf(op.seg, op.bus, op.devfn)
            };
            // No privilege check in Xen: a device it does not know is
            // -ENODEV, and no domU device is known to xenish.
            if !ctx.is_privileged() {
                return Err(XenError::Enodev);
            }
            // pci_restore_msi_state: the stored messages and masks again.
            crate::irq::with(|r| r.restore_msi(dev)).unwrap_or_else(|| Err(not_routed(ctx, cmd)))?;
            Ok(0)
        }
        PHYSDEVOP_SETUP_GSI => {
            let op: PhysdevSetupGsi = read(ctx, arg)?;
            let nr_gsis = crate::irq::with(|r| r.nr_gsis()).unwrap_or(crate::pirq::NR_IRQS_GSI);
            let gsi = u32::try_from(op.gsi).ok().filter(|&g| g < nr_gsis).ok_or(XenError::Einval)?;
            privileged_only(ctx)?;
            // mp_register_gsi: without IO-APICs Xen would program the ELCR;
            // xenish takes no device interrupts then.
            let (level, active_low) = (op.triggering != 0, op.polarity != 0);
            crate::irq::with(|r| r.setup_gsi(gsi, level, active_low)).unwrap_or_else(|| {
                Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_PHYSDEV_OP, Some(cmd.into())))
            })?;
            Ok(0)
        }
        PHYSDEVOP_GET_FREE_PIRQ => {
            let mut op: PhysdevGetFreePirq = read(ctx, arg)?;
            op.pirq = ctx.domain.pirqs.allocate(op.type_).ok_or(XenError::Enospc)?;
            write_back(ctx, arg, &op, Ok(0))
        }
        PHYSDEVOP_DBGP_OP => {
            privileged_only(ctx)?;
            let _: PhysdevDbgpOp = read(ctx, arg)?;
            // dbgp_op: nothing to do without an EHCI debug port.
            Ok(0)
        }
        _ => Err(XenError::Enosys),
    }
}

/// The refusal of a device operation on a machine without IO-APICs
/// (logged once).
fn not_routed(ctx: &Ctx, cmd: u32) -> XenError {
    super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_PHYSDEV_OP, Some(cmd.into()))
}

/// A PCI device's `seg << 16 | bus << 8 | devfn`.
fn sbdf(seg: u16, bus: u8, devfn: u8) -> u32 {
    u32::from(seg) << 16 | u32::from(bus) << 8 | u32::from(devfn)
}

/// `pci_add_device` (`add`) or `pci_remove_device` for the control domain
/// (others: `-EPERM`): the device is recorded, or forgotten (`-ENODEV` if
/// it was not known). Without IO-APICs xenish routes no device: `-ENOSYS`.
fn pci_device(ctx: &Ctx, cmd: u32, sbdf: u32, add: bool) -> HcResult {
    privileged_only(ctx)?;
    let known = crate::irq::with(|r| {
        if add {
            r.pci_add(sbdf);
            true
        } else {
            r.pci_remove(sbdf)
        }
    });
    match known {
        Some(true) => Ok(0),
        Some(false) => Err(XenError::Enodev),
        None => device_op(ctx, cmd),
    }
}

/// `PHYSDEVOP_eoi`: a PIRQ out of range, or one without a record (never
/// reserved), is `-EINVAL`; a reserved one has no interrupt in flight.
fn eoi(ctx: &mut Ctx, arg: u64) -> HcResult {
    let op: PhysdevEoi = read(ctx, arg)?;
    if op.irq >= ctx.domain.pirqs.nr_pirqs() || !ctx.domain.pirqs.has_info(op.irq) {
        return Err(XenError::Einval);
    }
    if let Some(m) = ctx.domain.pirqs.mapping(op.irq) {
        if ctx.domain.pirqs.auto_unmask && m.port != 0 {
            crate::evtchn::port_unmask(ctx.domain, ctx.mem, m.port);
        }
        // pirq_guest_eoi: a level line in flight is unmasked.
        let domid = ctx.domain.id;
        crate::irq::with(|r| r.eoi(m.irq, domid));
    }
    Ok(0)
}

/// `PHYSDEVOP_unmap_pirq` of the caller's own PIRQ (Xen's
/// `unmap_domain_pirq`): out of range or not mapped is `-EINVAL`; a PIRQ
/// still bound is unbound by force (its port stays, raising nothing); an
/// MSI is torn down at the device and its vector freed.
/// Another domain's PIRQs are passthrough's, which xenish does not do.
fn unmap_pirq(ctx: &mut Ctx, domid: u16, pirq: i32) -> HcResult {
    if domid != DOMID_SELF && domid != ctx.domain.id {
        return Err(super::refusals::not_implemented(
            ctx.domain.id,
            HYPERVISOR_PHYSDEV_OP,
            Some(PHYSDEVOP_UNMAP_PIRQ.into()),
        ));
    }
    let pirq = u32::try_from(pirq).ok().filter(|&p| p < ctx.domain.pirqs.nr_pirqs()).ok_or(XenError::Einval)?;
    let m = ctx.domain.pirqs.unmap(pirq).ok_or(XenError::Einval)?;
    crate::irq::with(|r| {
        if m.port != 0 || r.is_msi(m.irq) {
            r.unmap(m.irq);
        }
    });
    Ok(0)
}

/// `PHYSDEVOP_pirq_eoi_gmfn_v1/v2`: the domain's frame `gmfn` becomes its
/// EOI bitmap, keeping a writable type reference; once only (`-EBUSY`).
/// With v1 an EOI also unmasks the PIRQ's port.
fn register_eoi_map(ctx: &mut Ctx, cmd: u32, arg: u64) -> HcResult {
    let op: PhysdevPirqEoiGmfn = read(ctx, arg)?;
    let mfn = Mfn(op.gmfn);
    let rights = MapRights::of(ctx.domain);
    let mut mmu = Mmu { ft: &mut *ctx.ft, mem: &mut *ctx.mem };
    mmu.get_page_and_type(mfn, &rights, PageType::Writable).map_err(|_| XenError::Einval)?;
    if ctx.domain.pirqs.eoi_map.is_some() {
        mmu.put_page_and_type(mfn);
        return Err(XenError::Ebusy);
    }
    ctx.domain.pirqs.eoi_map = Some(mfn);
    if cmd == PHYSDEVOP_PIRQ_EOI_GMFN_V1 {
        ctx.domain.pirqs.auto_unmask = true;
    }
    Ok(0)
}

/// Xen's `rcu_lock_domain_by_any_id`: `DOMID_SELF`, the caller's own ID or
/// another existing domain, else `-ESRCH`.
fn target_exists(ctx: &mut Ctx, domid: u16) -> Result<(), XenError> {
    if domid == DOMID_SELF || domid == ctx.domain.id || ctx.peers.get_mut(domid).is_some() {
        Ok(())
    } else {
        Err(XenError::Esrch)
    }
}

/// `PHYSDEVOP_map_pirq`: the struct is copied back whatever the result
/// (with `MAP_PIRQ_TYPE_MSI_SEG` rewritten to `MSI`, as Xen does).
fn map_pirq(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut map: PhysdevMapPirq = read(ctx, arg)?;
    let map_type = map.type_ as u32;
    if map_type == MAP_PIRQ_TYPE_MULTI_MSI && map.table_base != 0 {
        return Err(XenError::Einval);
    }
    if map_type == MAP_PIRQ_TYPE_MSI_SEG {
        map.type_ = MAP_PIRQ_TYPE_MSI as i32;
    }
    let result =
        target_exists(ctx, map.domid).and_then(|()| privileged_only(ctx)).and_then(|()| match map.type_ as u32 {
            MAP_PIRQ_TYPE_GSI if map.domid == DOMID_SELF || map.domid == ctx.domain.id => map_gsi(ctx, &mut map),
            MAP_PIRQ_TYPE_MSI | MAP_PIRQ_TYPE_MULTI_MSI if map.domid == DOMID_SELF || map.domid == ctx.domain.id => {
                map_msi(ctx, &mut map, map_type)
            }
            MAP_PIRQ_TYPE_GSI | MAP_PIRQ_TYPE_MSI | MAP_PIRQ_TYPE_MULTI_MSI => device_op(ctx, PHYSDEVOP_MAP_PIRQ),
            _ => Err(XenError::Einval),
        });
    write_back(ctx, arg, &map, result)
}

/// `MAP_PIRQ_TYPE_MSI(_SEG)` and `MULTI_MSI` for the caller itself (Xen's
/// `allocate_and_map_msi_pirq` and `map_domain_pirq`): `index` must be -1
/// (a new machine IRQ; `-EINVAL` else); `MULTI_MSI` asks for `entry_nr`
/// vectors, of which only one works without interrupt remapping
/// (`-EOPNOTSUPP`, `-EDOM` beyond 32, `-EINVAL` for none); the PIRQ is the
/// one asked for or the highest free; the device must have been added
/// (`-ENODEV`). MSI-X iff `table_base` is not 0.
fn map_msi(ctx: &mut Ctx, map: &mut PhysdevMapPirq, requested_type: u32) -> HcResult {
    if crate::irq::with(|r| r.nr_gsis()).is_none() {
        return device_op(ctx, PHYSDEVOP_MAP_PIRQ);
    }
    if map.index != -1 {
        return Err(XenError::Einval);
    }
    let seg = match requested_type {
        MAP_PIRQ_TYPE_MSI_SEG | MAP_PIRQ_TYPE_MULTI_MSI => (map.bus as u32 >> 16) as u16,
        _ => 0,
    };
    if requested_type == MAP_PIRQ_TYPE_MULTI_MSI {
        match map.entry_nr {
            1 => {}
            0 | i32::MIN..=-1 => return Err(XenError::Einval),
            2..=32 => return Err(XenError::Eopnotsupp),
            _ => return Err(XenError::Edom),
        }
    }
    let pirq = ctx.domain.pirqs.choose_msi(map.pirq).map_err(|e| match e {
        crate::pirq::MapError::Invalid => XenError::Einval,
        crate::pirq::MapError::Exists => XenError::Eexist,
        crate::pirq::MapError::NoSpace => XenError::Enospc,
    })?;
    let dev = sbdf(seg, map.bus as u8, map.devfn as u8);
    let entry_nr = if map.table_base != 0 { u32::try_from(map.entry_nr).map_err(|_| XenError::Einval)? } else { 0 };
    let irq = crate::irq::with(|r| r.map_msi(dev, entry_nr, map.table_base)).unwrap_or(Err(XenError::Enodev))?;
    ctx.domain.pirqs.map_irq(pirq, irq);
    map.pirq = pirq as i32;
    Ok(0)
}

/// `MAP_PIRQ_TYPE_GSI` for the caller itself (Xen's
/// `allocate_and_map_gsi_pirq`): the GSI must exist (`-EINVAL`) and be one
/// the domain may use (not GSI 0: `-EPERM`); the PIRQ is the one asked
/// for, or the lowest free from 16. The line is set up at bind time.
fn map_gsi(ctx: &mut Ctx, map: &mut PhysdevMapPirq) -> HcResult {
    let Some(nr_gsis) = crate::irq::with(|r| r.nr_gsis()) else {
        return device_op(ctx, PHYSDEVOP_MAP_PIRQ);
    };
    let gsi = u32::try_from(map.index).ok().filter(|&g| g < nr_gsis).ok_or(XenError::Einval)?;
    if gsi == 0 {
        return Err(XenError::Eperm);
    }
    let pirq = ctx.domain.pirqs.map_gsi(map.pirq, gsi).map_err(|e| match e {
        crate::pirq::MapError::Invalid => XenError::Einval,
        crate::pirq::MapError::Exists => XenError::Eexist,
        crate::pirq::MapError::NoSpace => XenError::Enospc,
    })?;
    map.pirq = pirq as i32;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;

    const NR: u64 = HYPERVISOR_PHYSDEV_OP as u64;

    fn call(w: &mut World, cmd: u32, arg: u64) -> i64 {
        w.call_ret(NR, [cmd as u64, arg, 0, 0, 0])
    }

    /// Calls `cmd` with `bytes` at BUF_VA.
    fn with(w: &mut World, cmd: u32, bytes: &[u8]) -> i64 {
        w.poke(BUF_VA, bytes);
        call(w, cmd, BUF_VA)
    }

    fn words(ws: &[u32]) -> std::vec::Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    extern crate std;

    #[test]
    fn set_iopl_validates_and_records() {
        let mut w = World::new(true);
        assert_eq!(with(&mut w, PHYSDEVOP_SET_IOPL, &words(&[1])), 0);
        assert_eq!(w.dom.vcpus[0].iopl, 1);
        assert_eq!(with(&mut w, PHYSDEVOP_SET_IOPL, &words(&[4])), -22);
        assert_eq!(call(&mut w, PHYSDEVOP_SET_IOPL, 0x10), -14);
    }

    #[test]
    fn the_io_bitmap_is_checked_where_it_starts_and_kept() {
        let mut w = World::new(false);
        let set = |w: &mut World, bitmap: u64, nr_ports: u32| {
            let mut b = bitmap.to_le_bytes().to_vec();
            b.extend_from_slice(&words(&[nr_ports, 0]));
            with(w, PHYSDEVOP_SET_IOBITMAP, &b)
        };
        assert_eq!(set(&mut w, 0xffff_8000_0000_0000, 8), -22, "in the hypervisor's hole");
        assert_eq!(set(&mut w, 0x8000_0000_0000, 8), -22, "not canonical");
        assert_eq!(set(&mut w, BUF_VA, 65537), -22, "more ports than there are");
        assert_eq!(w.dom.vcpus[0].iobitmap, (0, 0));
        assert_eq!(set(&mut w, 0x7fff_ffff_f000, 65536), 0, "only the start is checked, as in Xen");
        assert_eq!(set(&mut w, BUF_VA + 0x100, 0x400), 0);
        assert_eq!(w.dom.vcpus[0].iobitmap, (BUF_VA + 0x100, 0x400));
        assert_eq!(call(&mut w, PHYSDEVOP_SET_IOBITMAP, 0x10), -14);
    }

    #[test]
    fn status_queries_and_eois_with_no_pirq_bound() {
        let mut w = World::new(false);
        assert_eq!(with(&mut w, PHYSDEVOP_IRQ_STATUS_QUERY, &words(&[47, 0x55])), 0);
        assert_eq!(w.peek(BUF_VA, 8), words(&[47, XENIRQSTAT_NEEDS_EOI]), "always needs an EOI, never shared");
        for irq in [48, u32::MAX] {
            assert_eq!(with(&mut w, PHYSDEVOP_IRQ_STATUS_QUERY, &words(&[irq, 0])), -22, "irq {irq}");
        }
        assert_eq!(with(&mut w, PHYSDEVOP_EOI, &words(&[5])), -22, "no record of pirq 5");
        assert_eq!(with(&mut w, PHYSDEVOP_EOI, &words(&[48])), -22, "beyond nr_pirqs");
        assert_eq!(call(&mut w, PHYSDEVOP_EOI, 0x10), -14);
        assert_eq!(call(&mut w, PHYSDEVOP_IRQ_UNMASK_NOTIFY, 0), 0);
        // A reserved PIRQ has a record: its EOI succeeds.
        assert_eq!(with(&mut w, PHYSDEVOP_GET_FREE_PIRQ, &words(&[0, 0])), 0);
        assert_eq!(w.peek(BUF_VA, 8), words(&[0, 47]), "MSI: the highest");
        assert_eq!(with(&mut w, PHYSDEVOP_EOI, &words(&[47])), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_GET_FREE_PIRQ, &words(&[1, 0])), 0);
        assert_eq!(w.peek(BUF_VA + 4, 4), words(&[46]), "GSI: none above 15, so the next from the top");
        assert_eq!(call(&mut w, PHYSDEVOP_GET_FREE_PIRQ, 0x10), -14);
        for _ in 16..46 {
            assert_eq!(with(&mut w, PHYSDEVOP_GET_FREE_PIRQ, &words(&[0, 0])), 0);
        }
        assert_eq!(with(&mut w, PHYSDEVOP_GET_FREE_PIRQ, &words(&[0, 0])), -28, "ENOSPC");
    }

    #[test]
    fn the_eoi_map_is_a_writable_frame_registered_once() {
        let mut w = World::new(false);
        let gmfn = |w: &mut World, cmd, mfn: u64| with(w, cmd, &mfn.to_le_bytes());
        assert_eq!(gmfn(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V2, 99), -22, "not its frame");
        assert_eq!(gmfn(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V2, 2), -22, "a page table");
        assert_eq!(call(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V1, 0x10), -14);
        assert_eq!(gmfn(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V2, 9), 0);
        assert_eq!((w.dom.pirqs.eoi_map, w.dom.pirqs.auto_unmask), (Some(Mfn(9)), false));
        assert_eq!(gmfn(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V1, 5), -16, "once only: EBUSY");
        assert_eq!(gmfn(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V1, 99), -22, "a bad frame is EINVAL first");
        // (The world audits every frame's counts after each call.)
        let mut v1 = World::new(false);
        assert_eq!(gmfn(&mut v1, PHYSDEVOP_PIRQ_EOI_GMFN_V1, 9), 0);
        assert!(v1.dom.pirqs.auto_unmask, "v1 unmasks on EOI");
    }

    #[test]
    fn privileged_operations_answer_a_domu_eperm_after_xens_first_checks() {
        let mut w = World::new(false);
        let apic = [0u8; 16];
        for cmd in [PHYSDEVOP_APIC_READ, PHYSDEVOP_APIC_WRITE, PHYSDEVOP_ALLOC_IRQ_VECTOR] {
            assert_eq!(call(&mut w, cmd, 0x10), -14, "cmd {cmd}: copied in first");
            assert_eq!(with(&mut w, cmd, &apic), -1, "cmd {cmd}");
        }
        for cmd in [
            PHYSDEVOP_MANAGE_PCI_ADD,
            PHYSDEVOP_MANAGE_PCI_REMOVE,
            PHYSDEVOP_MANAGE_PCI_ADD_EXT,
            PHYSDEVOP_PCI_DEVICE_ADD,
            PHYSDEVOP_PCI_DEVICE_REMOVE,
            PHYSDEVOP_PREPARE_MSIX,
            PHYSDEVOP_RELEASE_MSIX,
        ] {
            assert_eq!(call(&mut w, cmd, 0x10), -14, "cmd {cmd}: copied in first");
            assert_eq!(with(&mut w, cmd, &[0; 16]), -1, "cmd {cmd}");
        }
        assert_eq!(with(&mut w, PHYSDEVOP_MANAGE_PCI_ADD_EXT, &words(&[0, 2, 0, 0])), -22, "is_extfn > 1");
        assert_eq!(call(&mut w, PHYSDEVOP_PCI_MMCFG_RESERVED, 0x10), -1, "XSM before the copy");
        assert_eq!(call(&mut w, PHYSDEVOP_DBGP_OP, 0x10), -1, "XSM before the copy");
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &words(&[16, 0])), -22, "no GSI 16 without an IO-APIC");
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &words(&[u32::MAX, 0])), -22);
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &words(&[9, 0])), -1);
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI, &[0; 2]), -19, "no such device: ENODEV");
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI_EXT, &[0; 4]), -19);
        // unmap_pirq and map_pirq look the domain up first.
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 3])), -1);
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[42, 3])), -3, "no domain 42: ESRCH");
        let mut map = [0u8; 40];
        map[0..2].copy_from_slice(&0x7ff0u16.to_le_bytes());
        map[4] = 3; // MAP_PIRQ_TYPE_MSI_SEG
        assert_eq!(with(&mut w, PHYSDEVOP_MAP_PIRQ, &map), -1);
        assert_eq!(w.peek(BUF_VA + 4, 1), [0], "copied back with MSI_SEG made MSI");
        map[0] = 42;
        assert_eq!(with(&mut w, PHYSDEVOP_MAP_PIRQ, &map), -3);
        map[4] = 4; // MULTI_MSI with a table base
        map[32] = 1;
        assert_eq!(with(&mut w, PHYSDEVOP_MAP_PIRQ, &map), -22);
        for cmd in [0, 1, 2, 3, PHYSDEVOP_FREE_IRQ_VECTOR, 18, 22, 32, 99] {
            assert_eq!(with(&mut w, cmd, &[0; 16]), -38, "Xen has no sub-op {cmd}");
        }
    }

    /// `EVTCHNOP_*` with `bytes` at BUF_VA.
    fn evtchn(w: &mut World, cmd: u32, bytes: &[u8]) -> i64 {
        w.poke(BUF_VA, bytes);
        w.call_ret(guest_abi::xen::HYPERVISOR_EVENT_CHANNEL_OP as u64, [cmd as u64, BUF_VA, 0, 0, 0])
    }

    fn map_gsi(w: &mut World, gsi: i32, pirq: i32) -> i64 {
        let mut map = [0u8; 40];
        map[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
        map[4..8].copy_from_slice(&(MAP_PIRQ_TYPE_GSI as i32).to_le_bytes());
        map[8..12].copy_from_slice(&gsi.to_le_bytes());
        map[12..16].copy_from_slice(&pirq.to_le_bytes());
        with(w, PHYSDEVOP_MAP_PIRQ, &map)
    }

    #[test]
    fn a_gsi_reaches_the_control_domain_as_a_pirq_event_with_xens_eoi_rules() {
        use guest_abi::event_channel::{EVTCHNOP_BIND_PIRQ, EVTCHNOP_CLOSE, EVTCHNOP_STATUS, EVTCHNSTAT_PIRQ};
        let hw = crate::irq::tests::install_qemu();
        let mut w = World::new(true);
        assert_eq!(map_gsi(&mut w, 0, 0), -1, "GSI 0 is not dom0's: EPERM");
        assert_eq!(map_gsi(&mut w, 24, 24), -22, "no GSI 24");
        assert_eq!(map_gsi(&mut w, 11, 11), 0);
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[11]));
        assert_eq!(map_gsi(&mut w, 22, -1), 0);
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[16]), "the lowest free PIRQ from 16");
        assert_eq!(map_gsi(&mut w, 10, 11), -17, "PIRQ 11 is GSI 11's: EEXIST");
        assert_eq!(with(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V2, &9u64.to_le_bytes()), 0);
        // setup_gsi: level, active high; once.
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &[11, 0, 0, 0, 1, 0, 0, 0]), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &[11, 0, 0, 0, 1, 0, 0, 0]), -17);
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &[24, 0, 0, 0, 1, 0, 0, 0]), -22);
        assert_ne!(hw.rte(11) & (1 << 16), 0, "set up, still masked");
        let apic = [0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(with(&mut w, PHYSDEVOP_APIC_READ, &apic), 0);
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[0x0017_0020]), "the IO-APIC's version register");
        // bind_pirq: range, mapping, once.
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[208, 0, 0])), -22);
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[12, 0, 0])), -1, "not mapped: EPERM");
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[11, 0, 0])), 0);
        let port = u32::from_le_bytes(w.peek(BUF_VA + 8, 4).try_into().unwrap());
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[11, 0, 0])), -17);
        assert_eq!(w.mem.0[9][1] & (1 << 3), 1 << 3, "level: PIRQ 11's EOI bit set");
        assert_eq!(hw.rte(11) & (1 << 16), 0, "bound: unmasked");
        assert_eq!(evtchn(&mut w, EVTCHNOP_STATUS, &words(&[0x7ff0, port, 0, 0, 0, 0])), 0);
        assert_eq!(w.peek(BUF_VA + 8, 4), words(&[EVTCHNSTAT_PIRQ]));
        assert_eq!(w.peek(BUF_VA + 16, 4), words(&[11]), "u.pirq");
        // The line fires: masked until the EOI.
        let vector = (hw.rte(11) & 0xff) as u8;
        crate::irq::with(|r| r.interrupt(vector));
        assert_ne!(hw.rte(11) & (1 << 16), 0);
        assert_eq!(crate::irq::take_pending(), [crate::irq::Owner { domid: w.dom.id, pirq: 11 }]);
        assert_eq!(with(&mut w, PHYSDEVOP_EOI, &words(&[11])), 0);
        assert_eq!(hw.rte(11) & (1 << 16), 0, "EOI'd: unmasked");
        // Closing the port masks the line; the PIRQ stays mapped.
        crate::irq::with(|r| r.interrupt(vector));
        assert_eq!(evtchn(&mut w, EVTCHNOP_CLOSE, &words(&[port])), 0);
        assert_ne!(hw.rte(11) & (1 << 16), 0);
        assert_eq!(crate::irq::take_pending(), []);
        assert_eq!(with(&mut w, PHYSDEVOP_EOI, &words(&[11])), 0);
        assert_ne!(hw.rte(11) & (1 << 16), 0, "nothing in flight any more");
        // Bound again, then unmapped: the line is unbound by force.
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[11, 0, 0])), 0);
        assert_eq!(hw.rte(11) & (1 << 16), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 11])), 0);
        assert_ne!(hw.rte(11) & (1 << 16), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 11])), -22, "not mapped");
        assert_eq!(with(&mut w, PHYSDEVOP_EOI, &words(&[11])), -22, "no record of PIRQ 11 now");
        // An edge line (ISA IRQ 1) needs no EOI; COM1's line is Xen's... here the hypervisor's.
        assert_eq!(map_gsi(&mut w, 1, 1), 0);
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[1, 0, 0])), 0);
        assert_eq!(w.mem.0[9][0] & 2, 0, "edge: PIRQ 1's EOI bit clear");
        crate::irq::with(|r| r.reserve(4));
        assert_eq!(map_gsi(&mut w, 4, 4), 0);
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[4, 0, 0])), -16, "EBUSY");
    }

    fn map_msi(w: &mut World, type_: u32, pirq: i32, entry_nr: i32, table_base: u64) -> i64 {
        let mut map = [0u8; 40];
        map[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
        map[4..8].copy_from_slice(&type_.to_le_bytes());
        map[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        map[12..16].copy_from_slice(&pirq.to_le_bytes());
        map[20..24].copy_from_slice(&0x10i32.to_le_bytes()); // 00:02.0
        map[24..28].copy_from_slice(&entry_nr.to_le_bytes());
        map[32..40].copy_from_slice(&table_base.to_le_bytes());
        with(w, PHYSDEVOP_MAP_PIRQ, &map)
    }

    #[test]
    fn msix_entries_map_to_pirqs_unmask_at_bind_and_go_at_unmap() {
        use guest_abi::event_channel::{EVTCHNOP_BIND_PIRQ, EVTCHNOP_CLOSE};
        let (_hw, pci) = crate::irq::tests::install_qemu_with_pci();
        let mut w = World::new(true);
        assert_eq!(with(&mut w, PHYSDEVOP_PIRQ_EOI_GMFN_V2, &9u64.to_le_bytes()), 0);
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI_SEG, -1, 0, 0xfebf_1000), -19, "not added: ENODEV");
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), 0);
        // Linux: ENABLE | MASKALL through 0xcfc, then one map per vector.
        crate::irq::with(|r| r.guest_conf_write(0x8000_1098, 2, 2, 0xc002));
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI_SEG, -1, 3, 0xfebf_1000), -22, "3 entries");
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI_SEG, -1, 0, 0xfebf_1000), 0);
        assert_eq!(w.peek(BUF_VA + 4, 4), words(&[MAP_PIRQ_TYPE_MSI]), "MSI_SEG copied back as MSI");
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[207]), "the highest PIRQ");
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI_SEG, -1, 0, 0xfebf_1000), -17, "entry 0 is mapped");
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 1, 0xfebf_1000), 0);
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[206]));
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MULTI_MSI, -1, 2, 0), -95, "multi-MSI: EOPNOTSUPP");
        let vector = (pci.reg(0xfebf_1008) & 0xff) as u8;
        assert!(vector >= crate::irq::FIRST_DEVICE_VECTOR);
        assert_eq!(pci.reg(0xfebf_1000), 0xfee0_0000);
        assert_eq!(pci.reg(0xfebf_100c), 1, "masked until bound");
        assert!(crate::irq::is_msix_frame(0xfebf1));
        // Linux clears MASKALL; a write over the table offset is dropped.
        crate::irq::with(|r| r.guest_conf_write(0x8000_1098, 2, 2, 0x8002));
        crate::irq::with(|r| r.guest_conf_write(0x8000_109c, 0, 4, 0x5));
        assert_eq!(pci.get(0x10, 0x9a, 2), 0x8002);
        assert_eq!(pci.get(0x10, 0x9c, 4), 1, "the BIR/offset stay");
        assert_eq!(crate::irq::with(|r| r.guest_conf_read(0x8000_1098, 2, 2)), Some(0x8002));
        // Bound: unmasked, no EOI needed; the vector raises the PIRQ.
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[207, 0, 0])), 0);
        let port = u32::from_le_bytes(w.peek(BUF_VA + 8, 4).try_into().unwrap());
        assert_eq!(pci.reg(0xfebf_100c), 0);
        assert_eq!(w.mem.0[9][207 / 8] & (1 << (207 % 8)), 0, "edge-like: no EOI bit");
        crate::irq::with(|r| r.interrupt(vector));
        assert_eq!(crate::irq::take_pending(), [crate::irq::Owner { domid: w.dom.id, pirq: 207 }]);
        // A reset: restore_msi writes the message again.
        pci.mmio.lock().insert(0xfebf_1008, 0);
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI_EXT, &[0, 0, 0, 0x10]), 0);
        assert_eq!(pci.reg(0xfebf_1008) & 0xff, u32::from(vector));
        assert_eq!(pci.reg(0xfebf_100c), 0, "still bound: unmasked");
        // Closed: masked again; unmapped: the vector is free, the table writable when the last goes.
        assert_eq!(evtchn(&mut w, EVTCHNOP_CLOSE, &words(&[port])), 0);
        assert_eq!(pci.reg(0xfebf_100c), 1);
        crate::irq::with(|r| r.interrupt(vector));
        assert_eq!(crate::irq::take_pending(), []);
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 207])), 0);
        assert!(crate::irq::is_msix_frame(0xfebf1), "entry 1 still uses it");
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 206])), 0);
        assert!(!crate::irq::is_msix_frame(0xfebf1));
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI_SEG, -1, 0, 0xfebf_1000), 0, "map, unmap, map again");
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[207]));
        // prepare_msix wants no entry in use.
        assert_eq!(with(&mut w, PHYSDEVOP_PREPARE_MSIX, &[0, 0, 0, 0x10]), -16);
        assert_eq!(with(&mut w, PHYSDEVOP_PREPARE_MSIX, &[0, 0, 0, 0x18]), -19);
        // Removing the device tears its MSIs down.
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_REMOVE, &[0, 0, 0, 0x10]), 0);
        assert!(!crate::irq::is_msix_frame(0xfebf1));
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[207, 0, 0])), -22, "its machine IRQ is gone");
    }

    #[test]
    fn mapping_the_other_kind_turns_the_first_vector_of_the_old_one_off_as_xen_does() {
        use guest_abi::event_channel::EVTCHNOP_BIND_PIRQ;
        let (_hw, pci) = crate::irq::tests::install_qemu_with_pci();
        let mut w = World::new(true);
        let unmap = |w: &mut World, pirq: u32| with(w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, pirq]));
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), 0);
        crate::irq::with(|r| r.guest_conf_write(0x8000_1098, 2, 2, 0x8002));
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 0, 0xfebf_1000), 0, "PIRQ 207");
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 1, 0xfebf_1000), 0, "PIRQ 206");
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[207, 0, 0])), 0);
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[206, 0, 0])), 0);
        assert_eq!((pci.reg(0xfebf_100c), pci.reg(0xfebf_101c)), (0, 0), "both unmasked");
        // MSI while MSI-X is in use: mapped; the first MSI-X entry is masked
        // at the device (its PIRQ stays mapped), the second is left alone.
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 0, 0), 0);
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[205]));
        assert_eq!((pci.reg(0xfebf_100c), pci.reg(0xfebf_101c)), (1, 0));
        assert!(crate::irq::is_msix_frame(0xfebf1), "entry 1 still uses the table");
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 0, 0), -17, "one MSI");
        // dom0 enables MSI (and turns INTx off); MSI-X entry 0 mapped again
        // turns MSI off and, its PIRQ unbound, INTx back on.
        crate::irq::with(|r| r.guest_conf_write(0x8000_1050, 2, 2, 0x0181));
        pci.set(0x10, 0x04, 2, 0x407);
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 0, 0xfebf_1000), 0, "entry 0 again");
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[204]));
        assert_eq!(pci.get(0x10, 0x52, 2) & 1, 0, "MSI disabled");
        assert_eq!(pci.get(0x10, 0x04, 2), 0x007, "INTx enabled");
        assert_eq!(pci.reg(0xfebf_100c), 1, "masked until bound");
        // What was turned off is unmapped without touching the device; the
        // table stays read-only while entries 0 (PIRQ 204) and 1 use it.
        assert_eq!(unmap(&mut w, 207), 0);
        assert_eq!(unmap(&mut w, 205), 0);
        assert_eq!(pci.get(0x10, 0x04, 2), 0x007);
        assert!(crate::irq::is_msix_frame(0xfebf1));
        assert_eq!(unmap(&mut w, 206), 0);
        assert!(crate::irq::is_msix_frame(0xfebf1), "entry 0 uses it");
        assert_eq!(unmap(&mut w, 204), 0);
        assert!(!crate::irq::is_msix_frame(0xfebf1));
    }

    #[test]
    fn a_device_on_another_segment_has_no_msi_without_mmconfig() {
        let (_hw, pci) = crate::irq::tests::install_qemu_with_pci();
        pci.virtio_like(0x1_0010);
        let mut w = World::new(true);
        // 0001:00:02.0: added (as Xen adds it), but config space beyond
        // segment 0 needs MMCONFIG, which xenish does not map: no MSI or
        // MSI-X capability is found, and mapping one is -ENODEV, as on Xen
        // without an MCFG region for the segment.
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0001, 0, 0, 0])), 0);
        for table_base in [0u64, 0xfebf_1000] {
            let mut map = [0u8; 40];
            map[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
            map[4..8].copy_from_slice(&MAP_PIRQ_TYPE_MSI_SEG.to_le_bytes());
            map[8..12].copy_from_slice(&(-1i32).to_le_bytes());
            map[12..16].copy_from_slice(&(-1i32).to_le_bytes());
            map[16..20].copy_from_slice(&0x1_0000i32.to_le_bytes()); // segment 1, bus 0
            map[20..24].copy_from_slice(&0x10i32.to_le_bytes());
            map[32..40].copy_from_slice(&table_base.to_le_bytes());
            assert_eq!(with(&mut w, PHYSDEVOP_MAP_PIRQ, &map), -19, "table base {table_base:#x}");
        }
        // The same function on segment 0 has both.
        assert!(crate::irq::with(|r| r.pci_known(0x1_0010)).unwrap_or(false));
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), 0);
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 0, 0), 0);
    }

    #[test]
    fn an_msi_without_msix_is_enabled_by_the_guest_and_masked_by_the_hypervisor() {
        use guest_abi::event_channel::EVTCHNOP_BIND_PIRQ;
        let (_hw, pci) = crate::irq::tests::install_qemu_with_pci();
        let mut w = World::new(true);
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), 0);
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, 100, 0, 0), 0);
        assert_eq!(w.peek(BUF_VA + 12, 4), words(&[100]), "the PIRQ asked for");
        assert_eq!(map_msi(&mut w, MAP_PIRQ_TYPE_MSI, -1, 0, 0), -17, "one MSI per device");
        assert_eq!(pci.get(0x10, 0x60, 4), 1, "masked");
        // dom0 enables it and tries to unmask: ENABLE passes, the mask bit stays.
        crate::irq::with(|r| r.guest_conf_write(0x8000_1050, 2, 2, 0x0181));
        crate::irq::with(|r| r.guest_conf_write(0x8000_1060, 0, 4, 0));
        assert_eq!((pci.get(0x10, 0x52, 2), pci.get(0x10, 0x60, 4)), (0x181, 0xffff_ffff));
        assert_eq!(evtchn(&mut w, EVTCHNOP_BIND_PIRQ, &words(&[100, 0, 0])), 0);
        assert_eq!(pci.get(0x10, 0x60, 4), 0xffff_fffe, "bound: unmasked");
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 100])), 0);
        assert_eq!(pci.get(0x10, 0x52, 2) & 1, 0, "unmapped: disabled");
    }

    #[test]
    fn the_control_domain_adds_and_removes_pci_devices() {
        crate::irq::tests::install_qemu();
        let mut w = World::new(true);
        // seg 0, bus 0, devfn 0x10 (00:02.0), no flags, PXM 0.
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI_EXT, &[0, 0, 0, 0x10]), -19, "not added: ENODEV");
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), 0, "idempotent");
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI_EXT, &[0, 0, 0, 0x10]), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI, &[0, 0x10]), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_REMOVE, &[0, 0, 0, 0x10]), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_REMOVE, &[0, 0, 0, 0x10]), -19);
        assert_eq!(with(&mut w, PHYSDEVOP_MANAGE_PCI_ADD, &[0, 0x08]), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_MANAGE_PCI_REMOVE, &[0, 0x08]), 0);
        assert_eq!(with(&mut w, PHYSDEVOP_MANAGE_PCI_REMOVE, &[0, 0x08]), -19);
        let mut domu = World::new(false);
        assert_eq!(with(&mut domu, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0x1000_0000, 0, 0, 0])), -1);
    }

    #[test]
    fn the_control_domain_gets_xens_answers_for_a_machine_without_an_io_apic() {
        let mut w = World::new(true);
        assert_eq!(w.dom.pirqs.nr_pirqs(), 208);
        assert_eq!(with(&mut w, PHYSDEVOP_ALLOC_IRQ_VECTOR, &words(&[9, 0])), 0);
        assert_eq!(w.peek(BUF_VA, 8), words(&[9, 9]), "the vector is the IRQ");
        let apic = [0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(with(&mut w, PHYSDEVOP_APIC_READ, &apic), -22, "no IO-APIC at 0xfec00000");
        assert_eq!(with(&mut w, PHYSDEVOP_APIC_WRITE, &apic), -22);
        assert_eq!(with(&mut w, PHYSDEVOP_UNMAP_PIRQ, &words(&[0x7ff0, 20])), -22, "nothing mapped");
        assert_eq!(with(&mut w, PHYSDEVOP_DBGP_OP, &[1, 0, 0, 0, 0, 0]), 0, "no EHCI debug port");
        let mut map = [0u8; 40];
        map[0..2].copy_from_slice(&0x7ff0u16.to_le_bytes());
        map[4] = 7;
        assert_eq!(with(&mut w, PHYSDEVOP_MAP_PIRQ, &map), -22, "an unknown type");
        map[4] = 1;
        assert_eq!(with(&mut w, PHYSDEVOP_MAP_PIRQ, &map), -38, "GSIs: issue 19");
        assert_eq!(with(&mut w, PHYSDEVOP_SETUP_GSI, &words(&[9, 0])), -38);
        assert_eq!(with(&mut w, PHYSDEVOP_PCI_DEVICE_ADD, &words(&[0, XEN_PCI_DEV_PXM, 0])), -38);
        assert_eq!(with(&mut w, PHYSDEVOP_RESTORE_MSI, &[0; 2]), -38);
        assert_eq!(with(&mut w, PHYSDEVOP_GET_FREE_PIRQ, &words(&[1, 0])), 0);
        assert_eq!(w.peek(BUF_VA + 4, 4), words(&[207]));
    }
}
