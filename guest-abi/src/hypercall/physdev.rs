//! Wrappers for `physdev_op` (`physdev.h`): interrupts, I/O privilege and
//! PCI devices, mostly for the hardware domain. Each takes the op's
//! argument struct, updated with its OUT fields.

use super::{arg, hypercall2, result, struct_op};
use crate::errno::XenError;
use crate::physdev::{self as p, *};
use crate::xen::HYPERVISOR_PHYSDEV_OP;

/// Declares wrappers for sub-ops whose effect is confined to their
/// argument struct and to device state (not to this domain's memory).
macro_rules! physdev_ops {
    ($( $(#[$m:meta])* $name:ident: $cmd:path => $ty:ty; )*) => {
        $(
            $(#[$m])*
            pub fn $name(op: &mut $ty) -> Result<u64, XenError> {
                struct_op(HYPERVISOR_PHYSDEV_OP, $cmd, op)
            }
        )*
    };
}

physdev_ops! {
    /// `PHYSDEVOP_eoi`: end of interrupt for a PIRQ.
    physdev_eoi: p::PHYSDEVOP_EOI => PhysdevEoi;
    /// `PHYSDEVOP_irq_status_query`: `XENIRQSTAT_*` of an IRQ.
    physdev_irq_status_query: p::PHYSDEVOP_IRQ_STATUS_QUERY => PhysdevIrqStatusQuery;
    /// `PHYSDEVOP_set_iopl`: the I/O privilege level of the vCPU.
    physdev_set_iopl: p::PHYSDEVOP_SET_IOPL => PhysdevSetIopl;
    /// `PHYSDEVOP_apic_read`.
    physdev_apic_read: p::PHYSDEVOP_APIC_READ => PhysdevApic;
    /// `PHYSDEVOP_apic_write`.
    physdev_apic_write: p::PHYSDEVOP_APIC_WRITE => PhysdevApic;
    /// `PHYSDEVOP_alloc_irq_vector`.
    physdev_alloc_irq_vector: p::PHYSDEVOP_ALLOC_IRQ_VECTOR => PhysdevIrq;
    /// `PHYSDEVOP_free_irq_vector`.
    physdev_free_irq_vector: p::PHYSDEVOP_FREE_IRQ_VECTOR => PhysdevIrq;
    /// `PHYSDEVOP_map_pirq`: maps a GSI or MSI to a PIRQ.
    physdev_map_pirq: p::PHYSDEVOP_MAP_PIRQ => PhysdevMapPirq;
    /// `PHYSDEVOP_unmap_pirq`.
    physdev_unmap_pirq: p::PHYSDEVOP_UNMAP_PIRQ => PhysdevUnmapPirq;
    /// `PHYSDEVOP_manage_pci_add`.
    physdev_manage_pci_add: p::PHYSDEVOP_MANAGE_PCI_ADD => PhysdevManagePci;
    /// `PHYSDEVOP_manage_pci_remove`.
    physdev_manage_pci_remove: p::PHYSDEVOP_MANAGE_PCI_REMOVE => PhysdevManagePci;
    /// `PHYSDEVOP_manage_pci_add_ext`.
    physdev_manage_pci_add_ext: p::PHYSDEVOP_MANAGE_PCI_ADD_EXT => PhysdevManagePciExt;
    /// `PHYSDEVOP_restore_msi`.
    physdev_restore_msi: p::PHYSDEVOP_RESTORE_MSI => PhysdevRestoreMsi;
    /// `PHYSDEVOP_setup_gsi`.
    physdev_setup_gsi: p::PHYSDEVOP_SETUP_GSI => PhysdevSetupGsi;
    /// `PHYSDEVOP_get_free_pirq`.
    physdev_get_free_pirq: p::PHYSDEVOP_GET_FREE_PIRQ => PhysdevGetFreePirq;
    /// `PHYSDEVOP_pci_mmcfg_reserved`.
    physdev_pci_mmcfg_reserved: p::PHYSDEVOP_PCI_MMCFG_RESERVED => PhysdevPciMmcfgReserved;
    /// `PHYSDEVOP_pci_device_add` without optional parameters.
    physdev_pci_device_add: p::PHYSDEVOP_PCI_DEVICE_ADD => PhysdevPciDeviceAdd;
    /// `PHYSDEVOP_pci_device_remove`.
    physdev_pci_device_remove: p::PHYSDEVOP_PCI_DEVICE_REMOVE => PhysdevPciDevice;
    /// `PHYSDEVOP_restore_msi_ext`.
    physdev_restore_msi_ext: p::PHYSDEVOP_RESTORE_MSI_EXT => PhysdevPciDevice;
    /// `PHYSDEVOP_prepare_msix`.
    physdev_prepare_msix: p::PHYSDEVOP_PREPARE_MSIX => PhysdevPciDevice;
    /// `PHYSDEVOP_release_msix`.
    physdev_release_msix: p::PHYSDEVOP_RELEASE_MSIX => PhysdevPciDevice;
    /// `PHYSDEVOP_dbgp_op`: USB debug port reset notifications.
    physdev_dbgp_op: p::PHYSDEVOP_DBGP_OP => PhysdevDbgpOp;
}

/// `PHYSDEVOP_pirq_eoi_gmfn_v2`: frame `gmfn` becomes the bitmap of PIRQs
/// needing an EOI, kept by the hypervisor.
///
/// # Safety
/// The frame becomes the hypervisor's to write: nothing else may use it.
pub unsafe fn physdev_pirq_eoi_gmfn(gmfn: u64) -> Result<(), XenError> {
    let a = PhysdevPirqEoiGmfn { gmfn };
    // SAFETY: forwarded contract.
    result(unsafe { hypercall2(HYPERVISOR_PHYSDEV_OP, p::PHYSDEVOP_PIRQ_EOI_GMFN_V2.into(), arg(&a)) }).map(drop)
}

/// `PHYSDEVOP_set_iobitmap`: the vCPU's I/O permission bitmap.
///
/// # Safety
/// The hypervisor reads the bitmap on every port access from then on: it
/// must stay mapped and valid.
pub unsafe fn physdev_set_iobitmap(op: &PhysdevSetIobitmap) -> Result<(), XenError> {
    // SAFETY: forwarded contract.
    result(unsafe { hypercall2(HYPERVISOR_PHYSDEV_OP, p::PHYSDEVOP_SET_IOBITMAP.into(), arg(op)) }).map(drop)
}

/// `physdev_op_compat(&op)`: the pre-3.2 form, a command and its argument
/// in one struct.
///
/// # Safety
/// As for the sub-op `op.cmd` names (`set_iobitmap` registers a bitmap).
pub unsafe fn physdev_op_compat(op: &mut PhysdevOp) -> Result<u64, XenError> {
    // SAFETY: forwarded contract; `op` is valid during the call.
    result(unsafe {
        super::hypercall1(
            crate::xen::HYPERVISOR_PHYSDEV_OP_COMPAT,
            zerocopy::IntoBytes::as_mut_bytes(op).as_mut_ptr() as u64,
        )
    })
}
