//! MSI and MSI-X of the control domain's PCI devices, driven as Xen 4.17
//! drives them for a PV hardware domain (`xen/arch/x86/msi.c`,
//! `pci_msi_conf_write_intercept`):
//!
//! - `PHYSDEVOP_pci_device_add` records a device and its MSI and MSI-X
//!   capabilities ([`PciDev::probe`], Xen's `pdev_msi_init`).
//! - `PHYSDEVOP_map_pirq` of an MSI: the hypervisor chooses the vector and
//!   writes the message (address: the destination's APIC ID, physical,
//!   fixed; data: edge, assert, the vector). MSI-X
//!   ([`enable_msix`], Xen's `msix_capability_init`): needs memory decoding
//!   (`-ENXIO`); the table is found from the capability's BIR and offset and
//!   the BAR in config space; the entry is written through the hypervisor's
//!   own mapping and left masked; the table and PBA pages become read-only
//!   to guests while an entry is in use; the control word gets back the
//!   guest's ENABLE and MASKALL. MSI ([`enable_msi`], `msi_capability_init`):
//!   ENABLE cleared, one vector, every mask bit set, the message written;
//!   ENABLE is the control domain's to set (Xen's "split brain" model).
//! - `EVTCHNOP_bind_pirq` unmasks the vector ([`set_mask`]); Linux, with
//!   `pci_msi_ignore_mask`, never does.
//! - The control domain's config-space writes into an MSI-X capability
//!   pass only as 2-byte writes of the control word (its MASKALL recorded,
//!   and kept set while the hypervisor holds it); into an MSI capability
//!   with mask bits, the control word passes and a 4-byte write of the mask
//!   register keeps the hypervisor's masked and the unused bits set; any
//!   other write inside them is dropped ([`conf_write_intercept`]).
//!
//! Config space and the MSI-X table are reached through [`PciAccess`]: the
//! arch layer's port I/O and MMIO, a fake in the host tests.

use alloc::vec::Vec;
use core::ops::RangeInclusive;

use guest_abi::errno::XenError;

use crate::irq::Owner;

/// Config space and device memory, as the hypervisor reaches them.
pub trait PciAccess {
    /// Reads `size` bytes (1, 2 or 4, naturally aligned) at config register
    /// `reg` of the function `sbdf` (`seg << 16 | bus << 8 | devfn`); all
    /// ones where it cannot reach (without MMCONFIG: segments other than 0,
    /// registers from 256).
    fn conf_read(&mut self, sbdf: u32, reg: u32, size: u32) -> u32;
    /// Writes `size` bytes of `value` at config register `reg` of `sbdf`
    /// (dropped where it cannot reach).
    fn conf_write(&mut self, sbdf: u32, reg: u32, size: u32, value: u32);
    /// Reads the 32-bit device register at physical address `pa`.
    fn mmio_read(&mut self, pa: u64) -> u32;
    /// Writes the 32-bit device register at physical address `pa`.
    fn mmio_write(&mut self, pa: u64, value: u32);
}

/// `PCI_CAP_ID_MSI`.
pub const PCI_CAP_ID_MSI: u32 = 0x05;
/// `PCI_CAP_ID_MSIX`.
pub const PCI_CAP_ID_MSIX: u32 = 0x11;

const PCI_COMMAND: u32 = 0x04;
const PCI_COMMAND_MEMORY: u32 = 1 << 1;
const PCI_COMMAND_INTX_DISABLE: u32 = 1 << 10;
const PCI_STATUS: u32 = 0x06;
const PCI_STATUS_CAP_LIST: u32 = 1 << 4;
const PCI_CAPABILITY_LIST: u32 = 0x34;
const PCI_BASE_ADDRESS_0: u32 = 0x10;

const MSI_FLAGS_ENABLE: u32 = 1 << 0;
const MSI_FLAGS_QMASK: u32 = 7 << 1;
const MSI_FLAGS_QSIZE: u32 = 7 << 4;
const MSI_FLAGS_64BIT: u32 = 1 << 7;
const MSI_FLAGS_MASKBIT: u32 = 1 << 8;

const MSIX_FLAGS_QSIZE: u32 = 0x7ff;
/// `PCI_MSIX_FLAGS_MASKALL`.
pub const MSIX_FLAGS_MASKALL: u32 = 1 << 14;
/// `PCI_MSIX_FLAGS_ENABLE`.
pub const MSIX_FLAGS_ENABLE: u32 = 1 << 15;
const MSIX_ENTRY_SIZE: u64 = 16;
const MSIX_ENTRY_VECTOR_CTRL: u64 = 12;

/// `MSI_ADDR_BASE_LO`: the interrupt window.
pub const MSI_ADDR_BASE: u64 = 0xfee0_0000;
/// `MSI_DATA_LEVEL_ASSERT` (edge trigger and fixed delivery are 0).
const MSI_DATA_LEVEL_ASSERT: u32 = 1 << 14;

/// The message for `vector` on the CPU with APIC ID `dest` (Xen's
/// `msi_compose_msg`: physical destination, fixed delivery, edge).
pub fn compose_msg(dest: u32, vector: u8) -> (u64, u32) {
    (MSI_ADDR_BASE | u64::from(dest & 0xff) << 12, MSI_DATA_LEVEL_ASSERT | u32::from(vector))
}

/// A device's MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiCap {
    /// Its offset in config space.
    pub pos: u32,
    /// 64-bit message address.
    pub is64: bool,
    /// Per-vector mask bits.
    pub maskbit: bool,
    /// Vectors it can request (`1 << MMC`).
    pub maxvec: u32,
}

impl MsiCap {
    fn data_reg(&self) -> u32 {
        self.pos + if self.is64 { 12 } else { 8 }
    }
    fn mask_reg(&self) -> u32 {
        self.pos + if self.is64 { 16 } else { 12 }
    }
}

/// A device's MSI-X capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixCap {
    /// Its offset in config space.
    pub pos: u32,
    /// Table entries.
    pub nr_entries: u32,
    /// The table's BAR indicator (bits 2:0) and offset.
    pub table: u32,
    /// The PBA's BAR indicator and offset.
    pub pba: u32,
}

/// A PCI function the control domain added (Xen's `struct pci_dev`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciDev {
    /// Its MSI capability.
    pub msi: Option<MsiCap>,
    /// Its MSI-X capability.
    pub msix: Option<MsixCap>,
    /// MSI-X entries in use, plus one while prepared for passthrough
    /// (Xen's `used_entries`).
    pub msix_used: u32,
    /// The hypervisor keeps MSI-X MASKALL set (`host_maskall`).
    pub host_maskall: bool,
    /// The control domain wrote MASKALL set (`guest_maskall`).
    pub guest_maskall: bool,
    /// Frames of the MSI-X table and PBA, read-only to guests while
    /// `msix_used` is not 0.
    pub ro_frames: Vec<RangeInclusive<u64>>,
}

/// Where a mapped MSI lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiKind {
    /// The device's MSI capability.
    Msi(MsiCap),
    /// Entry `entry_nr` of the MSI-X table, at physical address `pa`.
    Msix {
        /// The entry.
        entry_nr: u32,
        /// Its address.
        pa: u64,
    },
}

/// One MSI or MSI-X vector the hypervisor programmed (Xen's `msi_desc`
/// with its `irq_desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiDesc {
    /// The function.
    pub sbdf: u32,
    /// MSI or an MSI-X entry.
    pub kind: MsiKind,
    /// The hypervisor's vector.
    pub vector: u8,
    /// The message address written.
    pub addr: u64,
    /// The message data written.
    pub data: u32,
    /// The PIRQ it is bound to.
    pub owner: Option<Owner>,
    /// An interrupt of an MSI without mask bits awaits the guest's EOI
    /// (Xen's ACKTYPE_EOI).
    pub in_flight: bool,
    /// Turned off at the device when the control domain mapped the other
    /// kind on the function ([`switch_off`]); its unmap leaves the device
    /// alone.
    pub switched_off: bool,
}

impl MsiDesc {
    /// Whether the vector can be masked at the device (every MSI-X entry,
    /// MSI with mask bits): then the guest needs no EOI.
    pub fn maskable(&self) -> bool {
        match self.kind {
            MsiKind::Msi(cap) => cap.maskbit,
            MsiKind::Msix { .. } => true,
        }
    }
}

/// The offset of capability `id` of `sbdf`, walking the list as Xen's
/// `pci_find_cap_offset` (at most 48 entries, none below 0x40).
pub fn find_cap(pci: &mut dyn PciAccess, sbdf: u32, id: u32) -> Option<u32> {
    if pci.conf_read(sbdf, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut pos = pci.conf_read(sbdf, PCI_CAPABILITY_LIST, 1) & 0xfc;
    for _ in 0..48 {
        if pos < 0x40 {
            return None;
        }
        let header = pci.conf_read(sbdf, pos, 2);
        match header & 0xff {
            0xff => return None,
            found if found == id => return Some(pos),
            _ => pos = (header >> 8) & 0xfc,
        }
    }
    None
}

impl PciDev {
    /// A newly added function's capabilities, read from config space.
    pub fn probe(pci: &mut dyn PciAccess, sbdf: u32) -> Self {
        let msi = find_cap(pci, sbdf, PCI_CAP_ID_MSI).map(|pos| {
            let control = pci.conf_read(sbdf, pos + 2, 2);
            MsiCap {
                pos,
                is64: control & MSI_FLAGS_64BIT != 0,
                maskbit: control & MSI_FLAGS_MASKBIT != 0,
                maxvec: 1 << ((control & MSI_FLAGS_QMASK) >> 1).min(5),
            }
        });
        let msix = find_cap(pci, sbdf, PCI_CAP_ID_MSIX).map(|pos| MsixCap {
            pos,
            nr_entries: (pci.conf_read(sbdf, pos + 2, 2) & MSIX_FLAGS_QSIZE) + 1,
            table: pci.conf_read(sbdf, pos + 4, 4),
            pba: pci.conf_read(sbdf, pos + 8, 4),
        });
        PciDev { msi, msix, ..PciDev::default() }
    }

    /// Whether frame `mfn` is one of its MSI-X table or PBA frames in use.
    pub fn is_ro_frame(&self, mfn: u64) -> bool {
        self.msix_used != 0 && self.ro_frames.iter().any(|r| r.contains(&mfn))
    }
}

/// The memory address BAR `bir` of `sbdf` decodes (Xen's
/// `read_pci_mem_bar`), 0 for an I/O or unset BAR.
fn mem_bar(pci: &mut dyn PciAccess, sbdf: u32, bir: u32) -> u64 {
    if bir > 5 {
        return 0;
    }
    let reg = PCI_BASE_ADDRESS_0 + 4 * bir;
    let lo = pci.conf_read(sbdf, reg, 4);
    if lo & 1 != 0 {
        return 0;
    }
    let mut base = u64::from(lo & !0xf);
    if lo & 6 == 4 && bir < 5 {
        base |= u64::from(pci.conf_read(sbdf, reg + 4, 4)) << 32;
    }
    base
}

fn memory_decoded(pci: &mut dyn PciAccess, sbdf: u32) -> bool {
    pci.conf_read(sbdf, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY != 0
}

/// Writes an MSI-X entry's message (address, data), leaving its mask.
fn write_msix_msg(pci: &mut dyn PciAccess, pa: u64, addr: u64, data: u32) {
    pci.mmio_write(pa, addr as u32);
    pci.mmio_write(pa + 4, (addr >> 32) as u32);
    pci.mmio_write(pa + 8, data);
}

/// Sets up MSI-X entry `entry_nr` of `dev` at `sbdf` for `vector` (Xen's
/// `msix_capability_init` for the hardware domain), masked. `table_base`
/// is where the control domain found the table's BAR. `-ENODEV` without
/// MSI-X, `-EINVAL` for an entry beyond the table, `-ENXIO` when memory
/// decoding is off or the BAR unset.
pub fn enable_msix(
    pci: &mut dyn PciAccess,
    dev: &mut PciDev,
    sbdf: u32,
    entry_nr: u32,
    table_base: u64,
    (dest, vector): (u32, u8),
) -> Result<MsiDesc, XenError> {
    let cap = dev.msix.ok_or(XenError::Enodev)?;
    if entry_nr >= cap.nr_entries {
        return Err(XenError::Einval);
    }
    let control_reg = cap.pos + 2;
    let control = pci.conf_read(sbdf, control_reg, 2);
    // Masked during set-up; some devices need ENABLE to reach the table.
    dev.host_maskall = true;
    pci.conf_write(sbdf, control_reg, 2, control | MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL);
    let restore = |pci: &mut dyn PciAccess, dev: &mut PciDev, control: u32| {
        dev.host_maskall = false;
        let maskall = if dev.guest_maskall { MSIX_FLAGS_MASKALL } else { 0 };
        pci.conf_write(sbdf, control_reg, 2, (control & !MSIX_FLAGS_MASKALL) | maskall);
    };
    if !memory_decoded(pci, sbdf) {
        restore(pci, dev, control & !MSIX_FLAGS_ENABLE);
        return Err(XenError::Enxio);
    }
    // Config space decides where the table is (Xen only warns when the
    // control domain's `table_base` differs); an unset BAR is -ENXIO.
    let _ = table_base;
    let bar = mem_bar(pci, sbdf, cap.table & 7);
    if bar == 0 {
        restore(pci, dev, control);
        return Err(XenError::Enxio);
    }
    let table_pa = bar + u64::from(cap.table & !7);
    let pa = table_pa + u64::from(entry_nr) * MSIX_ENTRY_SIZE;
    if dev.msix_used == 0 {
        let table_end = table_pa + u64::from(cap.nr_entries) * MSIX_ENTRY_SIZE - 1;
        let pba_pa = mem_bar(pci, sbdf, cap.pba & 7) + u64::from(cap.pba & !7);
        let pba_end = pba_pa + u64::from(cap.nr_entries.div_ceil(64)) * 8 - 1;
        dev.ro_frames = alloc::vec![table_pa >> 12..=table_end >> 12, pba_pa >> 12..=pba_end >> 12];
    }
    let (addr, data) = compose_msg(dest, vector);
    pci.mmio_write(pa + MSIX_ENTRY_VECTOR_CTRL, 1);
    write_msix_msg(pci, pa, addr, data);
    dev.msix_used += 1;
    restore(pci, dev, control);
    Ok(MsiDesc {
        sbdf,
        kind: MsiKind::Msix { entry_nr, pa },
        vector,
        addr,
        data,
        owner: None,
        in_flight: false,
        switched_off: false,
    })
}

/// Sets up `dev`'s MSI for `vector` (Xen's `msi_capability_init` for the
/// hardware domain, one vector): ENABLE cleared (the control domain sets
/// it), every mask bit set, the message written. `-ENODEV` without MSI.
pub fn enable_msi(
    pci: &mut dyn PciAccess,
    dev: &mut PciDev,
    sbdf: u32,
    (dest, vector): (u32, u8),
) -> Result<MsiDesc, XenError> {
    let cap = dev.msi.ok_or(XenError::Enodev)?;
    let control_reg = cap.pos + 2;
    let control = pci.conf_read(sbdf, control_reg, 2) & !MSI_FLAGS_QSIZE & !MSI_FLAGS_ENABLE;
    pci.conf_write(sbdf, control_reg, 2, control);
    if cap.maskbit {
        let unused = u32::MAX >> (32 - cap.maxvec.clamp(1, 32));
        let bits = pci.conf_read(sbdf, cap.mask_reg(), 4);
        pci.conf_write(sbdf, cap.mask_reg(), 4, bits | unused);
    }
    let (addr, data) = compose_msg(dest, vector);
    let desc = MsiDesc {
        sbdf,
        kind: MsiKind::Msi(cap),
        vector,
        addr,
        data,
        owner: None,
        in_flight: false,
        switched_off: false,
    };
    write_msg(pci, &desc);
    pci.conf_write(sbdf, control_reg, 2, control);
    Ok(desc)
}

/// (Re)writes `desc`'s message into the device (Xen's `write_msi_msg`).
pub fn write_msg(pci: &mut dyn PciAccess, desc: &MsiDesc) {
    match desc.kind {
        MsiKind::Msi(cap) => {
            pci.conf_write(desc.sbdf, cap.pos + 4, 4, desc.addr as u32);
            if cap.is64 {
                pci.conf_write(desc.sbdf, cap.pos + 8, 4, (desc.addr >> 32) as u32);
            }
            pci.conf_write(desc.sbdf, cap.data_reg(), 2, desc.data);
        }
        MsiKind::Msix { pa, .. } => write_msix_msg(pci, pa, desc.addr, desc.data),
    }
}

/// Masks or unmasks `desc`'s vector at the device (Xen's
/// `msi_set_mask_bit`); an MSI without mask bits cannot be.
pub fn set_mask(pci: &mut dyn PciAccess, desc: &MsiDesc, masked: bool) {
    match desc.kind {
        MsiKind::Msi(cap) if cap.maskbit => {
            let bits = pci.conf_read(desc.sbdf, cap.mask_reg(), 4);
            let bits = if masked { bits | 1 } else { bits & !1 };
            pci.conf_write(desc.sbdf, cap.mask_reg(), 4, bits);
        }
        MsiKind::Msi(_) => {}
        MsiKind::Msix { pa, .. } => pci.mmio_write(pa + MSIX_ENTRY_VECTOR_CTRL, u32::from(masked)),
    }
}

/// Tears `desc` down (Xen's `pci_disable_msi`): MSI is disabled; an MSI-X
/// entry is masked, and the last one in use gives the table back to
/// writable mappings.
pub fn disable(pci: &mut dyn PciAccess, dev: &mut PciDev, desc: &MsiDesc) {
    match desc.kind {
        MsiKind::Msi(cap) => {
            set_mask(pci, desc, true);
            let control = pci.conf_read(desc.sbdf, cap.pos + 2, 2);
            pci.conf_write(desc.sbdf, cap.pos + 2, 2, control & !MSI_FLAGS_ENABLE);
        }
        MsiKind::Msix { pa, .. } => {
            let Some(cap) = dev.msix else { return };
            let control_reg = cap.pos + 2;
            let control = pci.conf_read(desc.sbdf, control_reg, 2);
            if control & MSIX_FLAGS_ENABLE == 0 {
                pci.conf_write(desc.sbdf, control_reg, 2, control | MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL);
            }
            let mut maskall = dev.host_maskall;
            if memory_decoded(pci, desc.sbdf) {
                pci.mmio_write(pa + MSIX_ENTRY_VECTOR_CTRL, 1);
            } else if control & MSIX_FLAGS_MASKALL == 0 {
                // The entry cannot be reached: mask them all instead.
                maskall = true;
            }
            dev.host_maskall = maskall;
            let control = if maskall || dev.guest_maskall { control | MSIX_FLAGS_MASKALL } else { control };
            pci.conf_write(desc.sbdf, control_reg, 2, control);
            release_msix_use(dev);
        }
    }
}

/// Turns `desc` off at the device because the control domain maps the
/// other kind on the same function (Xen's `__pci_enable_msi` and
/// `__pci_enable_msix`, which warn "already in use" and disable the first
/// such entry before going on): an MSI-X entry is masked as [`disable`]
/// masks it; MSI has its ENABLE cleared, and INTx enabled again unless a
/// guest has the PIRQ bound (`pci_intx`). The mapping stays, marked
/// [`MsiDesc::switched_off`].
pub fn switch_off(pci: &mut dyn PciAccess, dev: &mut PciDev, desc: &mut MsiDesc) {
    match desc.kind {
        MsiKind::Msi(cap) => {
            let control = pci.conf_read(desc.sbdf, cap.pos + 2, 2);
            pci.conf_write(desc.sbdf, cap.pos + 2, 2, control & !MSI_FLAGS_ENABLE);
            if desc.owner.is_none() {
                let command = pci.conf_read(desc.sbdf, PCI_COMMAND, 2);
                pci.conf_write(desc.sbdf, PCI_COMMAND, 2, command & !PCI_COMMAND_INTX_DISABLE);
            }
        }
        MsiKind::Msix { .. } => disable(pci, dev, desc),
    }
    desc.switched_off = true;
}

/// One MSI-X user fewer (Xen's `_pci_cleanup_msix`).
fn release_msix_use(dev: &mut PciDev) {
    dev.msix_used = dev.msix_used.saturating_sub(1);
    if dev.msix_used == 0 {
        dev.ro_frames.clear();
    }
}

/// `PHYSDEVOP_prepare_msix` (`off` false) and `release_msix` (Xen's
/// `pci_prepare_msix`): the table is set up, protected and counted as one
/// user before a device is handed to another domain, and released after.
/// `-ENODEV` without MSI-X, `-EBUSY` when entries are (or are not yet) in
/// use, `-ENXIO` as for [`enable_msix`].
pub fn prepare_msix(pci: &mut dyn PciAccess, dev: &mut PciDev, sbdf: u32, off: bool) -> Result<(), XenError> {
    let cap = dev.msix.ok_or(XenError::Enodev)?;
    if dev.msix_used != u32::from(off) {
        return Err(XenError::Ebusy);
    }
    if off {
        release_msix_use(dev);
        return Ok(());
    }
    let control = pci.conf_read(sbdf, cap.pos + 2, 2);
    if !memory_decoded(pci, sbdf) {
        return Err(XenError::Enxio);
    }
    let bar = mem_bar(pci, sbdf, cap.table & 7);
    if bar == 0 {
        return Err(XenError::Enxio);
    }
    let table_pa = bar + u64::from(cap.table & !7);
    let table_end = table_pa + u64::from(cap.nr_entries) * MSIX_ENTRY_SIZE - 1;
    let pba_pa = mem_bar(pci, sbdf, cap.pba & 7) + u64::from(cap.pba & !7);
    let pba_end = pba_pa + u64::from(cap.nr_entries.div_ceil(64)) * 8 - 1;
    dev.ro_frames = alloc::vec![table_pa >> 12..=table_end >> 12, pba_pa >> 12..=pba_end >> 12];
    dev.msix_used = 1;
    let maskall = if dev.guest_maskall { MSIX_FLAGS_MASKALL } else { 0 };
    pci.conf_write(sbdf, cap.pos + 2, 2, (control & !MSIX_FLAGS_MASKALL) | maskall);
    Ok(())
}

/// The control domain's config write of `size` bytes at `reg` of a known
/// device `dev` (Xen's `pci_msi_conf_write_intercept`): `None` drops it,
/// else the value to write. `masked` says, for an MSI with mask bits,
/// whether the hypervisor holds its vector masked.
pub fn conf_write_intercept(dev: &PciDev, reg: u32, size: u32, value: u32, msi_masked: bool) -> Option<u32> {
    if let Some(cap) = dev.msix {
        // The capability: header, control, table and PBA registers.
        if (cap.pos..cap.pos + 12).contains(&reg) {
            if reg != cap.pos + 2 || size != 2 {
                return None;
            }
            return Some(if dev.host_maskall { value | MSIX_FLAGS_MASKALL } else { value });
        }
    }
    if let Some(cap) = dev.msi.filter(|c| c.maskbit) {
        let end = cap.mask_reg() + 8; // mask and pending bits
        if (cap.pos..end).contains(&reg) {
            if reg == cap.pos + 2 && size == 2 {
                return Some(value);
            }
            if reg == cap.mask_reg() && size == 4 {
                let unused = u32::MAX.checked_shl(cap.maxvec.clamp(1, 32)).unwrap_or(0);
                return Some(value | unused | u32::from(msi_masked));
            }
            return None;
        }
    }
    Some(value)
}

/// Records the MASKALL bit of a control-word write [`conf_write_intercept`]
/// let through (Xen's `guest_maskall`).
pub fn note_guest_control(dev: &mut PciDev, reg: u32, size: u32, value: u32) {
    if let Some(cap) = dev.msix {
        if reg == cap.pos + 2 && size == 2 {
            dev.guest_maskall = value & MSIX_FLAGS_MASKALL != 0;
        }
    }
}

/// A write fault of the control domain's kernel (`error`: present, write)
/// at `cr2` through a read-only mapping of an MSI-X table or PBA frame in
/// use: the write (`insn`, a `mov`) is dropped and the instruction stepped
/// over, as Xen's `mmio_ro_emulated_write` drops it. Whether it was.
#[allow(clippy::too_many_arguments)]
pub fn drop_ro_write(
    dom: &crate::domain::Domain,
    vcpu: usize,
    frame: &mut crate::regs::TrapFrame,
    cr2: u64,
    insn: &[u8],
    ft: &crate::mm::frame_table::FrameTable,
    mem: &dyn crate::mm::MachineMemory,
) -> bool {
    use crate::mm::pagetable::{PTE_ADDR, PTE_P, PTE_RW};
    if !dom.privileged {
        return false;
    }
    let Some(v) = dom.vcpus.get(vcpu).filter(|v| v.kernel_mode()) else { return false };
    let Some((l1, slot)) = crate::mm::pt_validate::find_l1(ft, mem, dom.id, v.current_l4(), cr2) else { return false };
    let Ok(pte) = crate::mm::pagetable::entry(mem, l1, slot) else { return false };
    let mfn = (pte & PTE_ADDR) >> 12;
    if pte & (PTE_P | PTE_RW) != PTE_P || ft.owner(crate::mm::Mfn(mfn)).is_some() || !crate::irq::is_msix_frame(mfn) {
        return false;
    }
    match crate::ptwr::decode(insn) {
        Some(w) if w.op == crate::ptwr::Op::Mov => {
            frame.rip = frame.rip.wrapping_add(w.len as u64);
            true
        }
        _ => false,
    }
}

/// Host tests, and the fake PCI function other modules' tests use.
#[cfg(test)]
pub mod tests {
    use super::*;
    use alloc::sync::Arc;
    use spin::Mutex;
    use std::collections::BTreeMap;
    extern crate std;

    /// A fake PCI bus: config bytes per function, device memory by address.
    #[derive(Clone, Default)]
    pub struct FakePci {
        /// Config space, by (sbdf, byte offset).
        pub conf: Arc<Mutex<BTreeMap<(u32, u32), u8>>>,
        /// Device registers, by address.
        pub mmio: Arc<Mutex<BTreeMap<u64, u32>>>,
    }

    impl FakePci {
        /// Sets `size` bytes at `reg` of `sbdf`.
        pub fn set(&self, sbdf: u32, reg: u32, size: u32, value: u32) {
            let mut c = self.conf.lock();
            for i in 0..size {
                c.insert((sbdf, reg + i), (value >> (8 * i)) as u8);
            }
        }
        /// Reads `size` bytes at `reg` of `sbdf`.
        pub fn get(&self, sbdf: u32, reg: u32, size: u32) -> u32 {
            let c = self.conf.lock();
            (0..size).fold(0, |v, i| v | u32::from(c.get(&(sbdf, reg + i)).copied().unwrap_or(0)) << (8 * i))
        }
        /// A virtio-like function at `sbdf`: memory decoding on; MSI-X with
        /// 3 entries at offset 0 of BAR 1 (0xfebf_1000), PBA at 0x800; an
        /// MSI capability (64-bit, mask bits, 1 vector) before it.
        pub fn virtio_like(&self, sbdf: u32) {
            self.set(sbdf, PCI_COMMAND, 2, 0x7);
            self.set(sbdf, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
            self.set(sbdf, PCI_BASE_ADDRESS_0 + 4, 4, 0xfebf_1000);
            self.set(sbdf, PCI_CAPABILITY_LIST, 1, 0x50);
            self.set(sbdf, 0x50, 2, 0x9805); // MSI, next 0x98
            self.set(sbdf, 0x52, 2, MSI_FLAGS_64BIT | MSI_FLAGS_MASKBIT);
            self.set(sbdf, 0x98, 2, 0x0011); // MSI-X, last
            self.set(sbdf, 0x9a, 2, 2);
            self.set(sbdf, 0x9c, 4, 1);
            self.set(sbdf, 0xa0, 4, 0x801);
        }
        /// Device register at `pa`.
        pub fn reg(&self, pa: u64) -> u32 {
            self.mmio.lock().get(&pa).copied().unwrap_or(0)
        }
    }

    /// As the hypervisor reaches config space (mechanism #1, no MMCONFIG):
    /// segment 0's first 256 bytes.
    fn reachable(sbdf: u32, reg: u32) -> bool {
        sbdf >> 16 == 0 && reg < 256
    }

    impl PciAccess for FakePci {
        fn conf_read(&mut self, sbdf: u32, reg: u32, size: u32) -> u32 {
            if !reachable(sbdf, reg) {
                return u32::MAX >> (32 - 8 * size.clamp(1, 4));
            }
            self.get(sbdf, reg, size)
        }
        fn conf_write(&mut self, sbdf: u32, reg: u32, size: u32, value: u32) {
            if reachable(sbdf, reg) {
                self.set(sbdf, reg, size, value);
            }
        }
        fn mmio_read(&mut self, pa: u64) -> u32 {
            self.reg(pa)
        }
        fn mmio_write(&mut self, pa: u64, value: u32) {
            self.mmio.lock().insert(pa, value);
        }
    }

    const DEV: u32 = 0x0010;

    #[test]
    fn capabilities_are_found_on_the_list() {
        let mut pci = FakePci::default();
        pci.virtio_like(DEV);
        let dev = PciDev::probe(&mut pci, DEV);
        assert_eq!(dev.msi, Some(MsiCap { pos: 0x50, is64: true, maskbit: true, maxvec: 1 }));
        assert_eq!(dev.msix, Some(MsixCap { pos: 0x98, nr_entries: 3, table: 1, pba: 0x801 }));
        pci.set(DEV, 0x99, 1, 0x98); // a loop: the walk gives up
        assert_eq!(find_cap(&mut pci, DEV, 0x10), None);
        let mut none = FakePci::default();
        assert_eq!(PciDev::probe(&mut none, DEV), PciDev::default(), "no capability list");
    }

    #[test]
    fn an_msix_entry_is_programmed_masked_and_the_table_protected() {
        let mut pci = FakePci::default();
        pci.virtio_like(DEV);
        let mut dev = PciDev::probe(&mut pci, DEV);
        // Linux: ENABLE | MASKALL first (recorded), then map_pirq.
        let control = MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL | 2;
        assert_eq!(conf_write_intercept(&dev, 0x9a, 2, control, false), Some(control));
        note_guest_control(&mut dev, 0x9a, 2, control);
        pci.set(DEV, 0x9a, 2, control);
        assert_eq!(enable_msix(&mut pci, &mut dev, DEV, 3, 0xfebf_1000, (0, 0x31)), Err(XenError::Einval));
        let desc = enable_msix(&mut pci, &mut dev, DEV, 1, 0xfebf_1000, (1, 0x31)).unwrap();
        assert_eq!(desc.kind, MsiKind::Msix { entry_nr: 1, pa: 0xfebf_1010 });
        assert_eq!([pci.reg(0xfebf_1010), pci.reg(0xfebf_1014), pci.reg(0xfebf_1018)], [0xfee0_1000, 0, 0x4031]);
        assert_eq!(pci.reg(0xfebf_101c), 1, "masked until bound");
        assert_eq!(pci.get(DEV, 0x9a, 2), control, "the guest's ENABLE and MASKALL back");
        assert!(dev.is_ro_frame(0xfebf1) && !dev.is_ro_frame(0xfebf2));
        // Linux clears MASKALL: passes. Anything else in the capability is dropped.
        assert_eq!(conf_write_intercept(&dev, 0x9a, 2, MSIX_FLAGS_ENABLE, false), Some(MSIX_FLAGS_ENABLE));
        note_guest_control(&mut dev, 0x9a, 2, MSIX_FLAGS_ENABLE);
        pci.set(DEV, 0x9a, 2, MSIX_FLAGS_ENABLE);
        assert_eq!(conf_write_intercept(&dev, 0x98, 4, 0, false), None, "a dword over the control word");
        assert_eq!(conf_write_intercept(&dev, 0x9c, 4, 0, false), None, "the table's BIR");
        assert_eq!(conf_write_intercept(&dev, 0x04, 2, 0, false), Some(0), "elsewhere: passes");
        set_mask(&mut pci, &desc, false);
        assert_eq!(pci.reg(0xfebf_101c), 0);
        // A second entry, then both torn down: the table is writable again.
        let second = enable_msix(&mut pci, &mut dev, DEV, 0, 0, (0, 0x32)).unwrap();
        assert_eq!(dev.msix_used, 2);
        disable(&mut pci, &mut dev, &desc);
        assert_eq!(pci.reg(0xfebf_101c), 1);
        assert!(dev.is_ro_frame(0xfebf1));
        disable(&mut pci, &mut dev, &second);
        assert!(!dev.is_ro_frame(0xfebf1));
        assert_eq!(pci.get(DEV, 0x9a, 2), MSIX_FLAGS_ENABLE, "the guest's control word");
        // Memory decoding off: ENXIO, ENABLE cleared.
        pci.set(DEV, PCI_COMMAND, 2, 0x5);
        assert_eq!(enable_msix(&mut pci, &mut dev, DEV, 0, 0, (0, 0x33)), Err(XenError::Enxio));
        assert_eq!(pci.get(DEV, 0x9a, 2) & MSIX_FLAGS_ENABLE, 0);
        assert_eq!(dev.msix_used, 0);
    }

    #[test]
    fn prepare_and_release_count_one_user() {
        let mut pci = FakePci::default();
        pci.virtio_like(DEV);
        let mut dev = PciDev::probe(&mut pci, DEV);
        assert_eq!(prepare_msix(&mut pci, &mut dev, DEV, true), Err(XenError::Ebusy), "not prepared");
        assert_eq!(prepare_msix(&mut pci, &mut dev, DEV, false), Ok(()));
        assert!(dev.is_ro_frame(0xfebf1));
        assert_eq!(prepare_msix(&mut pci, &mut dev, DEV, false), Err(XenError::Ebusy));
        assert_eq!(prepare_msix(&mut pci, &mut dev, DEV, true), Ok(()));
        assert!(!dev.is_ro_frame(0xfebf1));
        let mut plain = PciDev::default();
        assert_eq!(prepare_msix(&mut pci, &mut plain, DEV, false), Err(XenError::Enodev));
    }

    #[test]
    fn msi_is_programmed_with_enable_left_to_the_guest_and_mask_bits_kept() {
        let mut pci = FakePci::default();
        pci.virtio_like(DEV);
        let mut dev = PciDev::probe(&mut pci, DEV);
        pci.set(DEV, 0x52, 2, MSI_FLAGS_64BIT | MSI_FLAGS_MASKBIT | MSI_FLAGS_ENABLE);
        let desc = enable_msi(&mut pci, &mut dev, DEV, (2, 0x40)).unwrap();
        assert_eq!(pci.get(DEV, 0x52, 2), MSI_FLAGS_64BIT | MSI_FLAGS_MASKBIT, "ENABLE is the guest's to set");
        assert_eq!([pci.get(DEV, 0x54, 4), pci.get(DEV, 0x58, 4), pci.get(DEV, 0x5c, 2)], [0xfee0_2000, 0, 0x4040]);
        assert_eq!(pci.get(DEV, 0x60, 4), 1, "masked");
        assert!(desc.maskable());
        // The guest enables MSI and tries to unmask: the host's bit stays.
        assert_eq!(conf_write_intercept(&dev, 0x52, 2, 1, true), Some(1));
        assert_eq!(conf_write_intercept(&dev, 0x60, 4, 0, true), Some(0xffff_ffff));
        assert_eq!(conf_write_intercept(&dev, 0x60, 4, 0, false), Some(0xffff_fffe));
        assert_eq!(conf_write_intercept(&dev, 0x54, 4, 0, false), None, "the address is the hypervisor's");
        assert_eq!(conf_write_intercept(&dev, 0x60, 1, 0, false), None);
        set_mask(&mut pci, &desc, false);
        assert_eq!(pci.get(DEV, 0x60, 4), 0);
        pci.set(DEV, 0x54, 4, 0);
        write_msg(&mut pci, &desc);
        assert_eq!(pci.get(DEV, 0x54, 4), 0xfee0_2000, "restored");
        pci.set(DEV, 0x52, 2, 0x181);
        disable(&mut pci, &mut dev, &desc);
        assert_eq!((pci.get(DEV, 0x52, 2), pci.get(DEV, 0x60, 4)), (0x180, 1));
        // Without mask bits: nothing is intercepted, nothing to mask.
        pci.set(DEV, 0x52, 2, 0);
        let mut dev = PciDev::probe(&mut pci, DEV);
        dev.msix = None;
        assert_eq!(conf_write_intercept(&dev, 0x54, 4, 7, false), Some(7));
        let desc = enable_msi(&mut pci, &mut dev, DEV, (0, 0x41)).unwrap();
        assert!(!desc.maskable());
        assert_eq!(pci.get(DEV, 0x58, 2), 0x4041, "32-bit: the data follows the address");
    }
}
