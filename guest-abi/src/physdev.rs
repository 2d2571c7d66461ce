//! Physical device operations (`physdev.h`): PHYSDEVOP_* and their
//! argument structs.

use crate::arch_x86::GuestHandle;
use crate::wire::union_members;

xen_consts! {
    "physdev.h";
    PHYSDEVOP_EOI: u32 = 0xc, "PHYSDEVOP_eoi";
    PHYSDEVOP_PIRQ_EOI_GMFN_V1: u32 = 0x11, "PHYSDEVOP_pirq_eoi_gmfn_v1";
    PHYSDEVOP_PIRQ_EOI_GMFN_V2: u32 = 0x1c, "PHYSDEVOP_pirq_eoi_gmfn_v2";
    PHYSDEVOP_IRQ_STATUS_QUERY: u32 = 5, "PHYSDEVOP_irq_status_query";
    PHYSDEVOP_SET_IOPL: u32 = 6, "PHYSDEVOP_set_iopl";
    PHYSDEVOP_SET_IOBITMAP: u32 = 7, "PHYSDEVOP_set_iobitmap";
    PHYSDEVOP_APIC_READ: u32 = 8, "PHYSDEVOP_apic_read";
    PHYSDEVOP_APIC_WRITE: u32 = 9, "PHYSDEVOP_apic_write";
    PHYSDEVOP_ALLOC_IRQ_VECTOR: u32 = 0xa, "PHYSDEVOP_alloc_irq_vector";
    PHYSDEVOP_FREE_IRQ_VECTOR: u32 = 0xb, "PHYSDEVOP_free_irq_vector";
    MAP_PIRQ_TYPE_MSI: u32 = 0, "MAP_PIRQ_TYPE_MSI";
    MAP_PIRQ_TYPE_GSI: u32 = 1, "MAP_PIRQ_TYPE_GSI";
    MAP_PIRQ_TYPE_UNKNOWN: u32 = 2, "MAP_PIRQ_TYPE_UNKNOWN";
    MAP_PIRQ_TYPE_MSI_SEG: u32 = 3, "MAP_PIRQ_TYPE_MSI_SEG";
    MAP_PIRQ_TYPE_MULTI_MSI: u32 = 4, "MAP_PIRQ_TYPE_MULTI_MSI";
    PHYSDEVOP_MAP_PIRQ: u32 = 0xd, "PHYSDEVOP_map_pirq";
    PHYSDEVOP_UNMAP_PIRQ: u32 = 0xe, "PHYSDEVOP_unmap_pirq";
    PHYSDEVOP_MANAGE_PCI_ADD: u32 = 0xf, "PHYSDEVOP_manage_pci_add";
    PHYSDEVOP_MANAGE_PCI_REMOVE: u32 = 0x10, "PHYSDEVOP_manage_pci_remove";
    PHYSDEVOP_RESTORE_MSI: u32 = 0x13, "PHYSDEVOP_restore_msi";
    PHYSDEVOP_MANAGE_PCI_ADD_EXT: u32 = 0x14, "PHYSDEVOP_manage_pci_add_ext";
    PHYSDEVOP_SETUP_GSI: u32 = 0x15, "PHYSDEVOP_setup_gsi";
    PHYSDEVOP_GET_FREE_PIRQ: u32 = 0x17, "PHYSDEVOP_get_free_pirq";
    XEN_PCI_MMCFG_RESERVED: u32 = 1, "XEN_PCI_MMCFG_RESERVED";
    PHYSDEVOP_PCI_MMCFG_RESERVED: u32 = 0x18, "PHYSDEVOP_pci_mmcfg_reserved";
    XEN_PCI_DEV_EXTFN: u32 = 1, "XEN_PCI_DEV_EXTFN";
    XEN_PCI_DEV_VIRTFN: u32 = 2, "XEN_PCI_DEV_VIRTFN";
    XEN_PCI_DEV_PXM: u32 = 4, "XEN_PCI_DEV_PXM";
    PHYSDEVOP_PCI_DEVICE_ADD: u32 = 0x19, "PHYSDEVOP_pci_device_add";
    PHYSDEVOP_PCI_DEVICE_REMOVE: u32 = 0x1a, "PHYSDEVOP_pci_device_remove";
    PHYSDEVOP_RESTORE_MSI_EXT: u32 = 0x1b, "PHYSDEVOP_restore_msi_ext";
    PHYSDEVOP_PREPARE_MSIX: u32 = 0x1e, "PHYSDEVOP_prepare_msix";
    PHYSDEVOP_RELEASE_MSIX: u32 = 0x1f, "PHYSDEVOP_release_msix";
    PHYSDEVOP_DBGP_RESET_PREPARE: u32 = 1, "PHYSDEVOP_DBGP_RESET_PREPARE";
    PHYSDEVOP_DBGP_RESET_DONE: u32 = 2, "PHYSDEVOP_DBGP_RESET_DONE";
    PHYSDEVOP_DBGP_BUS_UNKNOWN: u32 = 0, "PHYSDEVOP_DBGP_BUS_UNKNOWN";
    PHYSDEVOP_DBGP_BUS_PCI: u32 = 1, "PHYSDEVOP_DBGP_BUS_PCI";
    PHYSDEVOP_DBGP_OP: u32 = 0x1d, "PHYSDEVOP_dbgp_op";
    PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4, "PHYSDEVOP_IRQ_UNMASK_NOTIFY";
    PHYSDEVOP_PIRQ_EOI_GMFN: u32 = 0x1c, "PHYSDEVOP_pirq_eoi_gmfn";
    XENIRQSTAT_NEEDS_EOI_BIT: u32 = 0, "_XENIRQSTAT_needs_eoi";
    XENIRQSTAT_NEEDS_EOI: u32 = 1, "XENIRQSTAT_needs_eoi";
    XENIRQSTAT_SHARED_BIT: u32 = 1, "_XENIRQSTAT_shared";
    XENIRQSTAT_SHARED: u32 = 2, "XENIRQSTAT_shared";
}

xen_struct! {
    "physdev.h", "struct physdev_eoi", 4;
    /// `struct physdev_eoi` (physdev.h).
    pub struct PhysdevEoi {
        /// `irq`
        irq: u32 = "irq",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_pirq_eoi_gmfn", 8;
    /// `struct physdev_pirq_eoi_gmfn` (physdev.h).
    pub struct PhysdevPirqEoiGmfn {
        /// `gmfn`
        gmfn: u64 = "gmfn",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_irq_status_query", 8;
    /// `struct physdev_irq_status_query` (physdev.h).
    pub struct PhysdevIrqStatusQuery {
        /// `irq`
        irq: u32 = "irq",
        /// `flags`
        flags: u32 = "flags",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_set_iopl", 4;
    /// `struct physdev_set_iopl` (physdev.h).
    pub struct PhysdevSetIopl {
        /// `iopl`
        iopl: u32 = "iopl",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_set_iobitmap", 16;
    /// `struct physdev_set_iobitmap` (physdev.h).
    pub struct PhysdevSetIobitmap {
        /// `bitmap`
        bitmap: GuestHandle<u8> = "bitmap" handle,
        /// `nr_ports`
        nr_ports: u32 = "nr_ports",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_map_pirq", 40;
    /// `struct physdev_map_pirq` (physdev.h).
    pub struct PhysdevMapPirq {
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `type`
        type_: i32 = "type",
        /// `index`
        index: i32 = "index",
        /// `pirq`
        pirq: i32 = "pirq",
        /// `bus`
        bus: i32 = "bus",
        /// `devfn`
        devfn: i32 = "devfn",
        /// `entry_nr`
        entry_nr: i32 = "entry_nr",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 4] = "",
        /// `table_base`
        table_base: u64 = "table_base",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_unmap_pirq", 8;
    /// `struct physdev_unmap_pirq` (physdev.h).
    pub struct PhysdevUnmapPirq {
        /// `domid`
        domid: u16 = "domid",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `pirq`
        pirq: i32 = "pirq",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_manage_pci", 2;
    /// `struct physdev_manage_pci` (physdev.h).
    pub struct PhysdevManagePci {
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_manage_pci_ext", 16;
    /// `struct physdev_manage_pci_ext` (physdev.h).
    pub struct PhysdevManagePciExt {
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `is_extfn`
        is_extfn: u32 = "is_extfn",
        /// `is_virtfn`
        is_virtfn: u32 = "is_virtfn",
        /// `physfn`: the physical function of a virtual one.
        physfn: PciPhysfn = "physfn",
        /// Padding (implicit in the C layout).
        _pad1: [u8; 2] = "",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_restore_msi", 2;
    /// `struct physdev_restore_msi` (physdev.h).
    pub struct PhysdevRestoreMsi {
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_setup_gsi", 8;
    /// `struct physdev_setup_gsi` (physdev.h).
    pub struct PhysdevSetupGsi {
        /// `gsi`
        gsi: i32 = "gsi",
        /// `triggering`
        triggering: u8 = "triggering",
        /// `polarity`
        polarity: u8 = "polarity",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_get_free_pirq", 8;
    /// `struct physdev_get_free_pirq` (physdev.h).
    pub struct PhysdevGetFreePirq {
        /// `type`
        type_: i32 = "type",
        /// `pirq`
        pirq: u32 = "pirq",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_pci_mmcfg_reserved", 16;
    /// `struct physdev_pci_mmcfg_reserved` (physdev.h).
    pub struct PhysdevPciMmcfgReserved {
        /// `address`
        address: u64 = "address",
        /// `segment`
        segment: u16 = "segment",
        /// `start_bus`
        start_bus: u8 = "start_bus",
        /// `end_bus`
        end_bus: u8 = "end_bus",
        /// `flags`
        flags: u32 = "flags",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_pci_device", 4;
    /// `struct physdev_pci_device` (physdev.h).
    pub struct PhysdevPciDevice {
        /// `seg`
        seg: u16 = "seg",
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_dbgp_op", 6;
    /// `struct physdev_dbgp_op` (physdev.h).
    pub struct PhysdevDbgpOp {
        /// `op`
        op: u8 = "op",
        /// `bus`
        bus: u8 = "bus",
        /// `u.pci`: the device (the union's only member).
        u: PhysdevPciDevice = "u" union("u.pci"),
    }
}

xen_struct! {
    "physdev.h", "struct physdev_irq", 8;
    /// `struct physdev_irq` (physdev.h).
    pub struct PhysdevIrq {
        /// `irq`
        irq: u32 = "irq",
        /// `vector`
        vector: u32 = "vector",
    }
}

xen_struct! {
    "physdev.h", "__typeof__(((struct physdev_manage_pci_ext *)0)->physfn)", 2;
    /// `physdev_manage_pci_ext.physfn`: a PCI physical function.
    pub struct PciPhysfn {
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_apic", 16;
    /// `struct physdev_apic` (physdev.h): `PHYSDEVOP_apic_read/write`.
    pub struct PhysdevApic {
        /// `apic_physbase`
        apic_physbase: u64 = "apic_physbase",
        /// `reg`
        reg: u32 = "reg",
        /// `value`: IN for write, OUT for read.
        value: u32 = "value",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_pci_device_add", 12;
    /// `struct physdev_pci_device_add` (physdev.h), followed in memory by
    /// the optional `optarr[]` (`uint32_t`; `[0]` is the PXM with
    /// `XEN_PCI_DEV_PXM`).
    pub struct PhysdevPciDeviceAdd {
        /// `seg`
        seg: u16 = "seg",
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
        /// `flags`: `XEN_PCI_DEV_*`.
        flags: u32 = "flags",
        /// `physfn`
        physfn: PciPhysfnAdd = "physfn",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
    }
}

xen_struct! {
    "physdev.h", "__typeof__(((struct physdev_pci_device_add *)0)->physfn)", 2;
    /// `physdev_pci_device_add.physfn` (C declares a second anonymous
    /// struct, so its own type).
    pub struct PciPhysfnAdd {
        /// `bus`
        bus: u8 = "bus",
        /// `devfn`
        devfn: u8 = "devfn",
    }
}

xen_struct! {
    "physdev.h", "struct physdev_op", 24;
    /// `struct physdev_op` (physdev.h): the argument of the old
    /// `physdev_op_compat` hypercall, a command and its argument.
    pub struct PhysdevOp {
        /// `cmd`: `PHYSDEVOP_*`.
        cmd: u32 = "cmd",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `u`: the argument for `cmd`, see the accessors.
        u: [u64; 2] = "u" union("u.irq_status_query", "u.set_iopl", "u.set_iobitmap", "u.apic_op", "u.irq_op"),
    }
}

impl PhysdevOp {
    union_members! {
        irq_status_query / set_irq_status_query: u: [u64; 2] => PhysdevIrqStatusQuery, "u.irq_status_query";
        set_iopl / set_set_iopl: u: [u64; 2] => PhysdevSetIopl, "u.set_iopl";
        set_iobitmap / set_set_iobitmap: u: [u64; 2] => PhysdevSetIobitmap, "u.set_iobitmap";
        apic_op / set_apic_op: u: [u64; 2] => PhysdevApic, "u.apic_op";
        irq_op / set_irq_op: u: [u64; 2] => PhysdevIrq, "u.irq_op";
    }
}

xen_structs!(
    PhysdevEoi,
    PhysdevPirqEoiGmfn,
    PhysdevIrqStatusQuery,
    PhysdevSetIopl,
    PhysdevSetIobitmap,
    PhysdevApic,
    PhysdevIrq,
    PhysdevOp,
    PhysdevMapPirq,
    PhysdevUnmapPirq,
    PhysdevManagePci,
    PhysdevManagePciExt,
    PciPhysfn,
    PhysdevRestoreMsi,
    PhysdevSetupGsi,
    PhysdevGetFreePirq,
    PhysdevPciMmcfgReserved,
    PhysdevPciDeviceAdd,
    PciPhysfnAdd,
    PhysdevPciDevice,
    PhysdevDbgpOp,
);
