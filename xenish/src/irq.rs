//! Machine interrupt routing: the IO-APICs' pins (GSIs), the vectors the
//! hypervisor gives them, and which domain's PIRQ each pin is bound to
//! (Xen's `irq_desc`/`irq_guest_action_t` for IO-APIC lines,
//! `xen/arch/x86/io_apic.c` and `irq.c`).
//!
//! The decisions live here; the registers are reached through
//! [`IoApicAccess`], which the arch layer implements with MMIO and host
//! tests with a fake. Xen 4.17's rules:
//! - Every pin starts masked. `PHYSDEVOP_setup_gsi` programs a pin once
//!   (trigger, polarity, a fresh vector, CPU 0 as destination), still
//!   masked; a second call, or one for a pin in use, is `-EEXIST`.
//! - `EVTCHNOP_bind_pirq` binds the pin to one domain's PIRQ and unmasks
//!   it; the PIRQ needs the guest's EOI iff the pin is level-triggered.
//! - A level interrupt masks its pin and stays "in flight" until the
//!   guest's `PHYSDEVOP_eoi` unmasks it (Xen's ACKTYPE_UNMASK): the line
//!   cannot storm while the guest services the device, and a line still
//!   asserted on unmask fires again. An edge interrupt is acknowledged at
//!   once. Either way the local APIC gets its EOI in the handler.
//! - Closing the port (or unmapping the PIRQ) masks the pin.
//!
//! - MSI and MSI-X vectors ([`crate::msi`]) are machine IRQs numbered
//!   after the GSIs, as Xen's `create_irq` numbers them: mapped by
//!   `PHYSDEVOP_map_pirq`, unmasked at the device when bound (the guest
//!   needs no EOI, except for an MSI without mask bits), masked when
//!   unbound, torn down when unmapped.
//!
//! One routing table serves the machine ([`with`]); the interrupt handler
//! records which PIRQs fired ([`IrqRouting::interrupt`]) and the core
//! raises their ports on its next entry ([`take_pending`]).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use guest_abi::errno::XenError;

use crate::domain::DomId;
use crate::msi::{MsiDesc, PciAccess, PciDev, MSIX_FLAGS_ENABLE, MSIX_FLAGS_MASKALL};

/// First vector handed to a device interrupt.
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// Last vector handed to a device interrupt (0xF0 and up are the
/// hypervisor's own: the APIC timer, IPIs, spurious).
pub const LAST_DEVICE_VECTOR: u8 = 0xef;

/// Register access to the machine's IO-APICs, by index in the routing
/// table's list.
pub trait IoApicAccess {
    /// Reads register `reg` of IO-APIC `apic`.
    fn read(&mut self, apic: usize, reg: u32) -> u32;
    /// Writes register `reg` of IO-APIC `apic`.
    fn write(&mut self, apic: usize, reg: u32, value: u32);
}

/// An IO-APIC as the MADT gives it, plus its pin count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Physical address of its registers.
    pub address: u64,
    /// GSI of its pin 0.
    pub gsi_base: u32,
    /// Its redirection entries.
    pub pins: u32,
}

/// An interrupt source override from the MADT: ISA IRQ `source` is `gsi`,
/// with MPS INTI `flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override {
    /// The ISA IRQ.
    pub source: u8,
    /// The GSI it arrives on.
    pub gsi: u32,
    /// Polarity (bits 1:0) and trigger mode (bits 3:2).
    pub flags: u16,
}

/// What a bound pin delivers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The domain.
    pub domid: DomId,
    /// Its PIRQ.
    pub pirq: u32,
}

/// One GSI (IO-APIC pin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Gsi {
    /// Level-triggered (else edge).
    level: bool,
    /// Active low (else high).
    active_low: bool,
    /// Its vector, 0 before it has one.
    vector: u8,
    /// `setup_gsi` programmed it (Xen's `pin_programmed`).
    programmed: bool,
    /// The PIRQ it is bound to.
    owner: Option<Owner>,
    /// A level interrupt was delivered and awaits the guest's EOI; the pin
    /// is masked until then.
    in_flight: bool,
    /// Reserved for the hypervisor: binds get `-EBUSY`.
    reserved: bool,
}

/// The routing table: the IO-APICs, their pins, the device vectors.
pub struct IrqRouting {
    apics: Vec<IoApic>,
    gsis: Vec<Gsi>,
    /// Machine IRQ of each vector (a GSI, or an MSI numbered from
    /// `gsis.len()`), `u32::MAX` for none.
    vector_irq: [u32; 256],
    /// APIC ID every pin targets (CPU 0's).
    dest_apic_id: u32,
    /// PIRQs that fired since the core last looked.
    pending: Vec<Owner>,
    /// The PCI devices the control domain added (`PHYSDEVOP_pci_device_add`
    /// and `manage_pci_add`), by segment << 16 | bus << 8 | devfn: whose
    /// MSIs are the hypervisor's to program.
    pci_devices: BTreeMap<u32, PciDev>,
    /// The MSI and MSI-X vectors set up, machine IRQ `gsis.len() + i`.
    msis: Vec<Option<MsiDesc>>,
    hw: Box<dyn IoApicAccess + Send>,
    /// Config space and device memory (none in tests that need no MSI).
    pci: Option<Box<dyn PciAccess + Send>>,
}

/// Redirection entry bits (low dword).
const RTE_ACTIVE_LOW: u32 = 1 << 13;
const RTE_LEVEL: u32 = 1 << 15;
const RTE_MASKED: u32 = 1 << 16;
/// The version register: bits 23:16 hold the last redirection entry.
const REG_VERSION: u32 = 1;

fn rte_low(pin: u32) -> u32 {
    0x10 + 2 * pin
}

impl IrqRouting {
    /// The routing of a machine with `apics` (address, GSI base; their pin
    /// counts read from the hardware) and the MADT's `overrides`, every pin
    /// masked, interrupts aimed at the CPU with APIC ID `dest_apic_id`.
    pub fn new(
        apics: &[(u64, u32)],
        overrides: &[Override],
        dest_apic_id: u32,
        mut hw: Box<dyn IoApicAccess + Send>,
    ) -> Self {
        let mut list = Vec::new();
        let mut nr_gsi = 0u32;
        for (i, &(address, gsi_base)) in apics.iter().enumerate() {
            let pins = ((hw.read(i, REG_VERSION) >> 16) & 0xff) + 1;
            for pin in 0..pins {
                hw.write(i, rte_low(pin) + 1, 0);
                hw.write(i, rte_low(pin), RTE_MASKED);
            }
            nr_gsi = nr_gsi.max(gsi_base.saturating_add(pins));
            list.push(IoApic { address, gsi_base, pins });
        }
        // ISA lines are edge/active-high unless overridden; PCI lines (16
        // and up) level/active-low until setup_gsi says otherwise.
        let mut gsis: Vec<Gsi> =
            (0..nr_gsi).map(|g| Gsi { level: g >= 16, active_low: g >= 16, ..Gsi::default() }).collect();
        for o in overrides {
            if let Some(g) = gsis.get_mut(o.gsi as usize) {
                // MPS INTI flags: 01 high / 11 low; 01 edge / 11 level;
                // 00 is the bus's default (ISA: edge, high).
                g.active_low = o.flags & 3 == 3;
                g.level = (o.flags >> 2) & 3 == 3;
            }
        }
        IrqRouting {
            apics: list,
            gsis,
            vector_irq: [u32::MAX; 256],
            dest_apic_id,
            pending: Vec::new(),
            pci_devices: BTreeMap::new(),
            msis: Vec::new(),
            hw,
            pci: None,
        }
    }

    /// Gives the table its way to PCI config space and device memory.
    pub fn set_pci(&mut self, pci: Box<dyn PciAccess + Send>) {
        self.pci = Some(pci);
    }

    /// How many GSIs there are (Xen's `nr_irqs_gsi`).
    pub fn nr_gsis(&self) -> u32 {
        self.gsis.len() as u32
    }

    /// Keeps `gsi` for the hypervisor: no domain may bind it.
    pub fn reserve(&mut self, gsi: u32) {
        if let Some(g) = self.gsis.get_mut(gsi as usize) {
            g.reserved = true;
        }
    }

    /// The IO-APIC and pin of `gsi`.
    fn pin(&self, gsi: u32) -> Option<(usize, u32)> {
        self.apics.iter().enumerate().find_map(|(i, a)| {
            let pin = gsi.checked_sub(a.gsi_base)?;
            (pin < a.pins).then_some((i, pin))
        })
    }

    /// Writes `gsi`'s redirection entry from its state, masked or not.
    fn write_rte(&mut self, gsi: u32, masked: bool) {
        let Some(g) = self.gsis.get(gsi as usize).copied() else { return };
        let Some((apic, pin)) = self.pin(gsi) else { return };
        let mut low = u32::from(g.vector);
        if g.active_low {
            low |= RTE_ACTIVE_LOW;
        }
        if g.level {
            low |= RTE_LEVEL;
        }
        if masked || g.vector == 0 {
            low |= RTE_MASKED;
        }
        // Masked while the destination changes, as the pin may be live.
        self.hw.write(apic, rte_low(pin), low | RTE_MASKED);
        self.hw.write(apic, rte_low(pin) + 1, self.dest_apic_id << 24);
        self.hw.write(apic, rte_low(pin), low);
    }

    /// A free device vector, now recorded as machine IRQ `irq`'s.
    fn alloc_vector(&mut self, irq: u32) -> Option<u8> {
        let v = (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).find(|&v| self.vector_irq[usize::from(v)] == u32::MAX)?;
        self.vector_irq[usize::from(v)] = irq;
        Some(v)
    }

    /// Gives `gsi` a vector if it has none; `false` when all are taken.
    fn assign_vector(&mut self, gsi: u32) -> bool {
        let Some(g) = self.gsis.get(gsi as usize) else { return false };
        if g.vector != 0 {
            return true;
        }
        let Some(v) = self.alloc_vector(gsi) else { return false };
        if let Some(g) = self.gsis.get_mut(gsi as usize) {
            g.vector = v;
        }
        true
    }

    /// The MSI behind machine IRQ `irq`, if it is one.
    fn msi_mut(&mut self, irq: u32) -> Option<&mut MsiDesc> {
        let i = irq.checked_sub(self.nr_gsis())?;
        self.msis.get_mut(i as usize)?.as_mut()
    }

    /// Whether machine IRQ `irq` is an MSI that is set up.
    pub fn is_msi(&mut self, irq: u32) -> bool {
        self.msi_mut(irq).is_some()
    }

    /// `PHYSDEVOP_setup_gsi` (Xen's `mp_register_gsi`): programs `gsi` with
    /// the trigger (`level`) and polarity (`active_low`), masked. `-EINVAL`
    /// for a GSI on no IO-APIC, `-EEXIST` when it is bound or was set up
    /// already, `-ENOSPC` with no vector left.
    pub fn setup_gsi(&mut self, gsi: u32, level: bool, active_low: bool) -> Result<(), XenError> {
        self.pin(gsi).ok_or(XenError::Einval)?;
        let g = self.gsis.get_mut(gsi as usize).ok_or(XenError::Einval)?;
        if g.owner.is_some() || g.programmed {
            return Err(XenError::Eexist);
        }
        if !self.assign_vector(gsi) {
            return Err(XenError::Enospc);
        }
        if let Some(g) = self.gsis.get_mut(gsi as usize) {
            (g.level, g.active_low, g.programmed) = (level, active_low, true);
        }
        self.write_rte(gsi, true);
        Ok(())
    }

    /// `pirq_guest_bind`: delivers `gsi` to `owner` and unmasks it; whether
    /// the guest must EOI it (level-triggered). `-EINVAL` for no such GSI,
    /// `-EBUSY` when it is the hypervisor's or bound already.
    /// An MSI (`gsi` past the GSIs) is unmasked at the device; its guest
    /// EOIs only an MSI without mask bits.
    pub fn bind(&mut self, gsi: u32, owner: Owner) -> Result<bool, XenError> {
        if gsi >= self.nr_gsis() {
            return self.bind_msi(gsi, owner);
        }
        self.pin(gsi).ok_or(XenError::Einval)?;
        let g = self.gsis.get_mut(gsi as usize).ok_or(XenError::Einval)?;
        if g.reserved || g.owner.is_some() {
            return Err(XenError::Ebusy);
        }
        (g.owner, g.in_flight) = (Some(owner), false);
        let level = g.level;
        if !self.assign_vector(gsi) {
            if let Some(g) = self.gsis.get_mut(gsi as usize) {
                g.owner = None;
            }
            return Err(XenError::Enospc);
        }
        self.write_rte(gsi, false);
        Ok(level)
    }

    /// `pirq_guest_unbind`: masks `gsi` and forgets its owner and any
    /// interrupt in flight.
    pub fn unbind(&mut self, gsi: u32) {
        if let Some(desc) = self.msi_mut(gsi) {
            let old = desc.owner.take();
            desc.in_flight = false;
            let desc = *desc;
            self.pending.retain(|o| Some(*o) != old);
            if let Some(pci) = self.pci.as_deref_mut() {
                crate::msi::set_mask(pci, &desc, true);
            }
            return;
        }
        if let Some(g) = self.gsis.get_mut(gsi as usize) {
            let old = g.owner.take();
            g.in_flight = false;
            self.pending.retain(|o| Some(*o) != old);
            self.write_rte(gsi, true);
        }
    }

    /// The guest's EOI of `gsi` (`PHYSDEVOP_eoi` by `domid`): a level
    /// interrupt in flight is done, the pin unmasked.
    pub fn eoi(&mut self, gsi: u32, domid: DomId) {
        if let Some(desc) = self.msi_mut(gsi) {
            // ACKTYPE_EOI: the local APIC was EOI'd in the handler already.
            if desc.owner.is_some_and(|o| o.domid == domid) {
                desc.in_flight = false;
            }
            return;
        }
        let Some(g) = self.gsis.get_mut(gsi as usize) else { return };
        if g.in_flight && g.owner.is_some_and(|o| o.domid == domid) {
            g.in_flight = false;
            self.write_rte(gsi, false);
        }
    }

    /// An interrupt arrived on `vector` (the handler then EOIs the local
    /// APIC): a level pin is masked until its guest EOIs, and the owner's
    /// PIRQ is recorded for the core. An unbound pin is masked.
    pub fn interrupt(&mut self, vector: u8) {
        let gsi = self.vector_irq[usize::from(vector)];
        if let Some(desc) = self.msi_mut(gsi) {
            let Some(owner) = desc.owner else {
                let desc = *desc;
                if let Some(pci) = self.pci.as_deref_mut() {
                    crate::msi::set_mask(pci, &desc, true);
                }
                return;
            };
            desc.in_flight = !desc.maskable();
            if !self.pending.contains(&owner) {
                self.pending.push(owner);
            }
            PENDING.store(true, Ordering::Release);
            return;
        }
        let Some(g) = self.gsis.get_mut(gsi as usize) else { return };
        let Some(owner) = g.owner else {
            self.write_rte(gsi, true);
            return;
        };
        if g.level {
            g.in_flight = true;
            self.write_rte(gsi, true);
        }
        if !self.pending.contains(&owner) {
            self.pending.push(owner);
        }
        PENDING.store(true, Ordering::Release);
    }

    /// `pci_add_device`: records the device at `sbdf` and its MSI
    /// capabilities (idempotent, as Xen's `alloc_pdev`).
    pub fn pci_add(&mut self, sbdf: u32) {
        if !self.pci_devices.contains_key(&sbdf) {
            let dev = self.pci.as_deref_mut().map(|pci| PciDev::probe(pci, sbdf)).unwrap_or_default();
            self.pci_devices.insert(sbdf, dev);
        }
    }

    /// `pci_remove_device`: forgets the device at `sbdf`, tearing down its
    /// MSIs (Xen's `pci_cleanup_msi`); whether it was known (else
    /// `-ENODEV`). PIRQs still mapped to them deliver nothing more.
    pub fn pci_remove(&mut self, sbdf: u32) -> bool {
        let base = self.nr_gsis();
        let gone: Vec<u32> = (self.msis.iter().enumerate())
            .filter(|(_, d)| d.is_some_and(|d| d.sbdf == sbdf))
            .map(|(i, _)| base + i as u32)
            .collect();
        for irq in gone {
            self.unmap_msi(irq);
        }
        let known = self.pci_devices.remove(&sbdf).is_some();
        self.note_msix_use();
        known
    }

    /// Whether the device at `sbdf` was added.
    pub fn pci_known(&self, sbdf: u32) -> bool {
        self.pci_devices.contains_key(&sbdf)
    }

    /// `map_domain_pirq` of an MSI (Xen's `create_irq` and
    /// `pci_enable_msi`): MSI-X entry `entry_nr` when `table_base` is not 0,
    /// else the device's MSI, on a fresh vector for CPU 0. Returns the
    /// machine IRQ. `-ENODEV` for a device never added (or without the
    /// capability), `-EINVAL` for an MSI-X entry beyond the table,
    /// `-EEXIST` for an entry (or MSI) set up already, `-ENOSPC` without a
    /// vector, and [`crate::msi::enable_msix`]'s errors. When the device
    /// has the other kind mapped, the first such vector is turned off at
    /// the device first ([`crate::msi::switch_off`]), as Xen 4.17 does.
    pub fn map_msi(&mut self, sbdf: u32, entry_nr: u32, table_base: u64) -> Result<u32, XenError> {
        let msix = table_base != 0;
        let dev = self.pci_devices.get(&sbdf).ok_or(XenError::Enodev)?;
        match (msix, dev.msi, dev.msix) {
            (false, None, _) | (true, _, None) => return Err(XenError::Enodev),
            (true, _, Some(cap)) if entry_nr >= cap.nr_entries => return Err(XenError::Einval),
            _ => {}
        }
        let mut other = None;
        for (i, d) in self.msis.iter().enumerate().filter_map(|(i, d)| Some((i, d.as_ref()?))) {
            match d.kind {
                // Another device's, or one turned off (a mapping without a vector at the device).
                _ if d.sbdf != sbdf || d.switched_off => {}
                crate::msi::MsiKind::Msix { entry_nr: e, .. } if msix && e == entry_nr => return Err(XenError::Eexist),
                crate::msi::MsiKind::Msi(_) if !msix => return Err(XenError::Eexist),
                crate::msi::MsiKind::Msix { .. } if msix => {}
                // The other kind (Xen's `find_msi_entry(pdev, -1, ...)`: the first).
                _ => other = other.or(Some(i)),
            }
        }
        let slot = self.msis.iter().position(Option::is_none).unwrap_or(self.msis.len());
        let irq = self.nr_gsis() + slot as u32;
        let vector = self.alloc_vector(irq).ok_or(XenError::Enospc)?;
        let dest = self.dest_apic_id;
        let (Some(pci), Some(dev)) = (self.pci.as_deref_mut(), self.pci_devices.get_mut(&sbdf)) else {
            self.vector_irq[usize::from(vector)] = u32::MAX;
            return Err(XenError::Enodev);
        };
        if let Some(desc) = other.and_then(|i| self.msis.get_mut(i)).and_then(Option::as_mut) {
            crate::printk!("xenish: {} already in use on {sbdf:#x}: turned off", if msix { "MSI" } else { "MSI-X" });
            crate::msi::switch_off(pci, dev, desc);
        }
        let made = if msix {
            crate::msi::enable_msix(pci, dev, sbdf, entry_nr, table_base, (dest, vector))
        } else {
            crate::msi::enable_msi(pci, dev, sbdf, (dest, vector))
        };
        self.note_msix_use();
        match made {
            Ok(desc) => {
                if slot == self.msis.len() {
                    self.msis.push(Some(desc));
                } else if let Some(s) = self.msis.get_mut(slot) {
                    *s = Some(desc);
                }
                Ok(irq)
            }
            Err(e) => {
                self.vector_irq[usize::from(vector)] = u32::MAX;
                Err(e)
            }
        }
    }

    /// `unmap_domain_pirq` of machine IRQ `irq`: an MSI is unbound, torn
    /// down at the device and its vector freed; a GSI is unbound.
    pub fn unmap(&mut self, irq: u32) {
        if self.msi_mut(irq).is_some() {
            self.unmap_msi(irq);
        } else {
            self.unbind(irq);
        }
    }

    fn unmap_msi(&mut self, irq: u32) {
        self.unbind(irq);
        let Some(slot) = irq.checked_sub(self.nr_gsis()).and_then(|i| self.msis.get_mut(i as usize)) else { return };
        let Some(desc) = slot.take() else { return };
        self.vector_irq[usize::from(desc.vector)] = u32::MAX;
        if let (Some(pci), Some(dev), false) =
            (self.pci.as_deref_mut(), self.pci_devices.get_mut(&desc.sbdf), desc.switched_off)
        {
            crate::msi::disable(pci, dev, &desc);
        }
        self.note_msix_use();
    }

    fn bind_msi(&mut self, irq: u32, owner: Owner) -> Result<bool, XenError> {
        let desc = self.msi_mut(irq).ok_or(XenError::Einval)?;
        if desc.owner.is_some() {
            return Err(XenError::Ebusy);
        }
        (desc.owner, desc.in_flight) = (Some(owner), false);
        let desc = *desc;
        if let Some(pci) = self.pci.as_deref_mut() {
            crate::msi::set_mask(pci, &desc, false);
        }
        Ok(!desc.maskable())
    }

    /// `PHYSDEVOP_restore_msi(_ext)` (Xen's `pci_restore_msi_state`): the
    /// device's messages and masks are written again (after a reset).
    /// `-ENODEV` for a device never added.
    pub fn restore_msi(&mut self, sbdf: u32) -> Result<(), XenError> {
        let dev = self.pci_devices.get(&sbdf).ok_or(XenError::Enodev)?.clone();
        let Some(pci) = self.pci.as_deref_mut() else { return Ok(()) };
        let descs: Vec<MsiDesc> = self.msis.iter().flatten().filter(|d| d.sbdf == sbdf).copied().collect();
        let msix_control = dev.msix.map(|cap| (cap.pos + 2, pci.conf_read(sbdf, cap.pos + 2, 2)));
        if let Some((reg, control)) =
            msix_control.filter(|_| descs.iter().any(|d| !matches!(d.kind, crate::msi::MsiKind::Msi(_))))
        {
            // ENABLE | MASKALL while the table is rewritten.
            pci.conf_write(sbdf, reg, 2, control | MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL);
        }
        for d in &descs {
            crate::msi::set_mask(pci, d, true);
            crate::msi::write_msg(pci, d);
            crate::msi::set_mask(pci, d, d.owner.is_none());
        }
        if let Some((reg, control)) = msix_control.filter(|_| !descs.is_empty()) {
            let maskall = if dev.host_maskall || dev.guest_maskall { MSIX_FLAGS_MASKALL } else { 0 };
            pci.conf_write(sbdf, reg, 2, (control & !MSIX_FLAGS_MASKALL) | maskall);
        }
        Ok(())
    }

    /// `PHYSDEVOP_prepare_msix` / `release_msix` (`off`) of the device at
    /// `sbdf`: [`crate::msi::prepare_msix`]; `-ENODEV` if never added.
    pub fn prepare_msix(&mut self, sbdf: u32, off: bool) -> Result<(), XenError> {
        let dev = self.pci_devices.get_mut(&sbdf).ok_or(XenError::Enodev)?;
        let pci = self.pci.as_deref_mut().ok_or(XenError::Enodev)?;
        let result = crate::msi::prepare_msix(pci, dev, sbdf, off);
        self.note_msix_use();
        result
    }

    /// Whether machine frame `mfn` holds an MSI-X table or PBA in use,
    /// which guests may map read-only only (Xen's `mmio_ro_ranges`).
    pub fn is_msix_frame(&self, mfn: u64) -> bool {
        self.pci_devices.values().any(|d| d.is_ro_frame(mfn))
    }

    /// Refreshes [`MSIX_IN_USE`] after MSI-X use changed.
    fn note_msix_use(&self) {
        MSIX_IN_USE.store(self.pci_devices.values().any(|d| d.msix_used != 0), Ordering::Relaxed);
    }

    /// The control domain's read of `size` bytes at `offset` (0-3) of the
    /// config data port, addressed by its latched `cf8` (Xen's
    /// `pci_conf_read`): all ones when `cf8` has no enable bit (as a PCI
    /// host bridge answers) or the table has no PCI access.
    pub fn guest_conf_read(&mut self, cf8: u32, offset: u32, size: u32) -> u32 {
        let Some(pci) = self.pci.as_deref_mut().filter(|_| cf8 & 0x8000_0000 != 0) else { return u32::MAX };
        pci.conf_read(cf8_sbdf(cf8), (cf8 & 0xfc) + offset, size)
    }

    /// The control domain's write of `size` bytes at `offset` of the config
    /// data port (Xen's `pci_conf_write_intercept`, then `pci_conf_write`):
    /// inside a known device's MSI or MSI-X capability only what
    /// [`crate::msi::conf_write_intercept`] lets through reaches the device.
    pub fn guest_conf_write(&mut self, cf8: u32, offset: u32, size: u32, value: u32) {
        let (sbdf, reg) = (cf8_sbdf(cf8), (cf8 & 0xfc) + offset);
        let mut value = value;
        if cf8 & 0x8000_0000 == 0 {
            return; // no function addressed
        }
        if (0x40..0x100).contains(&reg) {
            let msi_masked = self
                .msis
                .iter()
                .flatten()
                .any(|d| d.sbdf == sbdf && matches!(d.kind, crate::msi::MsiKind::Msi(_)) && d.owner.is_none());
            if let Some(dev) = self.pci_devices.get_mut(&sbdf) {
                match crate::msi::conf_write_intercept(dev, reg, size, value, msi_masked) {
                    Some(v) => {
                        crate::msi::note_guest_control(dev, reg, size, value);
                        value = v;
                    }
                    None => return,
                }
            }
        }
        if let Some(pci) = self.pci.as_deref_mut() {
            pci.conf_write(sbdf, reg, size, value);
        }
    }

    /// `PHYSDEVOP_apic_read`: register `reg` of the IO-APIC at `address`,
    /// `None` (`-EINVAL`) if there is none there.
    pub fn read_register(&mut self, address: u64, reg: u32) -> Option<u32> {
        let i = self.apics.iter().position(|a| a.address == address)?;
        Some(self.hw.read(i, reg))
    }
}

/// Set when a PIRQ fired and the core has not raised it yet: a check
/// without the lock on every entry.
static PENDING: AtomicBool = AtomicBool::new(false);

#[cfg(not(test))]
static ROUTING: spin::Mutex<Option<IrqRouting>> = spin::Mutex::new(None);

#[cfg(test)]
extern crate std;
#[cfg(test)]
std::thread_local! {
    /// Host tests: one routing table per test thread.
    static ROUTING: core::cell::RefCell<Option<IrqRouting>> = const { core::cell::RefCell::new(None) };
}

/// Installs the machine's routing table (at boot).
pub fn install(routing: IrqRouting) {
    #[cfg(not(test))]
    {
        *ROUTING.lock() = Some(routing);
    }
    #[cfg(test)]
    ROUTING.with(|r| *r.borrow_mut() = Some(routing));
}

/// Runs `f` on the routing table; `None` on a machine without IO-APICs.
/// Callers run with interrupts off (the handler takes the same lock).
pub fn with<R>(f: impl FnOnce(&mut IrqRouting) -> R) -> Option<R> {
    #[cfg(not(test))]
    {
        ROUTING.lock().as_mut().map(f)
    }
    #[cfg(test)]
    ROUTING.with(|r| r.borrow_mut().as_mut().map(f))
}

/// The function (`bus << 8 | devfn`, segment 0) a config address `cf8`
/// names.
fn cf8_sbdf(cf8: u32) -> u32 {
    (cf8 >> 8) & 0xffff
}

/// Set while some device's MSI-X table is in use: the page-table checks
/// look no further without it.
static MSIX_IN_USE: AtomicBool = AtomicBool::new(false);

/// Whether machine frame `mfn` holds an MSI-X table or PBA in use (guests
/// map it read-only).
pub fn is_msix_frame(mfn: u64) -> bool {
    (MSIX_IN_USE.load(Ordering::Relaxed) || cfg!(test)) && with(|r| r.is_msix_frame(mfn)).unwrap_or(false)
}

/// Whether machine frame `mfn` holds an IO-APIC's registers (which no
/// guest may map: the routing is the hypervisor's).
pub fn is_io_apic_frame(mfn: u64) -> bool {
    with(|r| r.apics.iter().any(|a| a.address >> 12 == mfn)).unwrap_or(false)
}

/// Whether a PIRQ may have fired since the last [`take_pending`]: one
/// plain load, for the hypervisor's entry path.
#[inline(always)]
pub fn any_pending() -> bool {
    PENDING.load(Ordering::Relaxed) || cfg!(test)
}

/// The PIRQs that fired since the last call (empty at once when none did).
pub fn take_pending() -> Vec<Owner> {
    // (Host tests run in parallel with a table each: the flag is shared.)
    if !PENDING.swap(false, Ordering::Acquire) && !cfg!(test) {
        return Vec::new();
    }
    with(|r| core::mem::take(&mut r.pending)).unwrap_or_default()
}

/// Host tests, and the fake IO-APIC other modules' tests use.
#[cfg(test)]
pub mod tests {
    use super::*;
    use alloc::sync::Arc;
    use spin::Mutex;
    use std::collections::BTreeMap;

    /// A fake IO-APIC set: registers in a map, 24 pins each.
    #[derive(Clone, Default)]
    pub struct FakeIoApics(pub Arc<Mutex<BTreeMap<(usize, u32), u32>>>);

    impl IoApicAccess for FakeIoApics {
        fn read(&mut self, apic: usize, reg: u32) -> u32 {
            if reg == REG_VERSION {
                return 0x0017_0020;
            }
            self.0.lock().get(&(apic, reg)).copied().unwrap_or(0)
        }
        fn write(&mut self, apic: usize, reg: u32, value: u32) {
            self.0.lock().insert((apic, reg), value);
        }
    }

    impl FakeIoApics {
        /// The low dword of `pin`'s entry.
        pub fn rte(&self, pin: u32) -> u32 {
            self.0.lock().get(&(0, rte_low(pin))).copied().unwrap_or(0)
        }
    }

    /// QEMU's overrides: IRQ 0 → GSI 2; 5, 9, 10, 11 level/high.
    pub fn qemu_overrides() -> std::vec::Vec<Override> {
        let mut o = std::vec![Override { source: 0, gsi: 2, flags: 0 }];
        o.extend([5u8, 9, 10, 11].map(|s| Override { source: s, gsi: u32::from(s), flags: 0xd }));
        o
    }

    /// One QEMU IO-APIC at 0xfec00000, installed for this thread.
    pub fn install_qemu() -> FakeIoApics {
        let hw = FakeIoApics::default();
        install(IrqRouting::new(&[(0xfec0_0000, 0)], &qemu_overrides(), 0, Box::new(hw.clone())));
        hw
    }

    /// [`install_qemu`] with a fake PCI bus holding a virtio-like function
    /// at 00:02.0 ([`crate::msi::tests::FakePci::virtio_like`]).
    pub fn install_qemu_with_pci() -> (FakeIoApics, crate::msi::tests::FakePci) {
        let hw = install_qemu();
        let pci = crate::msi::tests::FakePci::default();
        pci.virtio_like(0x10);
        with(|r| r.set_pci(Box::new(pci.clone())));
        (hw, pci)
    }

    const DOM0_PIRQ: fn(u32) -> Owner = |pirq| Owner { domid: 0, pirq };

    #[test]
    fn every_pin_starts_masked_and_setup_gsi_programs_once() {
        let hw = install_qemu();
        with(|r| {
            assert_eq!(r.nr_gsis(), 24);
            assert!((0..24).all(|p| hw.rte(p) & RTE_MASKED != 0));
            assert_eq!(r.setup_gsi(24, true, false), Err(XenError::Einval), "no pin 24");
            assert_eq!(r.setup_gsi(22, true, false), Ok(()));
            let rte = hw.rte(22);
            assert_eq!(rte & 0xff, u32::from(FIRST_DEVICE_VECTOR));
            assert_eq!(rte & (RTE_MASKED | RTE_LEVEL | RTE_ACTIVE_LOW), RTE_MASKED | RTE_LEVEL, "level, high, masked");
            assert_eq!(r.setup_gsi(22, false, true), Err(XenError::Eexist), "once only");
            assert_eq!(r.setup_gsi(4, false, false), Ok(()));
            assert_eq!(hw.rte(4) & 0xff, u32::from(FIRST_DEVICE_VECTOR) + 1, "a vector of its own");
        });
    }

    #[test]
    fn a_level_line_is_held_until_the_guest_eois_and_an_edge_one_is_not() {
        let hw = install_qemu();
        with(|r| {
            r.setup_gsi(11, true, false).unwrap();
            assert_eq!(r.bind(11, DOM0_PIRQ(11)), Ok(true), "level: needs an EOI");
            assert_eq!(hw.rte(11) & RTE_MASKED, 0, "bound: unmasked");
            let v = (hw.rte(11) & 0xff) as u8;
            r.interrupt(v);
            assert_ne!(hw.rte(11) & RTE_MASKED, 0, "in flight: masked");
            r.interrupt(v);
            r.eoi(11, 5);
            assert_ne!(hw.rte(11) & RTE_MASKED, 0, "another domain's EOI does nothing");
            r.eoi(11, 0);
            assert_eq!(hw.rte(11) & RTE_MASKED, 0, "EOI'd: unmasked");
            r.eoi(11, 0);
            assert_eq!(hw.rte(11) & RTE_MASKED, 0, "a second EOI is harmless");
            // ISA IRQ 1 (no override): edge, high, never masked by delivery.
            assert_eq!(r.bind(1, DOM0_PIRQ(1)), Ok(false));
            let v1 = (hw.rte(1) & 0xff) as u8;
            assert_eq!(hw.rte(1) & (RTE_LEVEL | RTE_ACTIVE_LOW | RTE_MASKED), 0);
            r.interrupt(v1);
            assert_eq!(hw.rte(1) & RTE_MASKED, 0);
        });
        assert_eq!(take_pending(), [DOM0_PIRQ(11), DOM0_PIRQ(1)], "each PIRQ once");
        assert_eq!(take_pending(), []);
    }

    #[test]
    fn binding_is_exclusive_and_unbinding_masks() {
        let hw = install_qemu();
        with(|r| {
            r.reserve(4);
            assert_eq!(r.bind(4, DOM0_PIRQ(4)), Err(XenError::Ebusy), "the hypervisor's");
            assert_eq!(r.bind(30, DOM0_PIRQ(30)), Err(XenError::Einval));
            assert_eq!(r.bind(9, DOM0_PIRQ(9)), Ok(true), "override: level");
            assert_eq!(r.bind(9, Owner { domid: 1, pirq: 9 }), Err(XenError::Ebusy));
            assert_eq!(r.setup_gsi(9, true, false), Err(XenError::Eexist), "in use");
            let v = (hw.rte(9) & 0xff) as u8;
            r.interrupt(v);
        });
        assert_eq!(take_pending(), [DOM0_PIRQ(9)]);
        with(|r| {
            let v = (hw.rte(9) & 0xff) as u8;
            r.interrupt(v);
            r.unbind(9);
            assert_ne!(hw.rte(9) & RTE_MASKED, 0);
            r.eoi(9, 0);
            assert_ne!(hw.rte(9) & RTE_MASKED, 0, "unbound: the EOI unmasks nothing");
            r.interrupt(v);
            assert_eq!(r.bind(9, DOM0_PIRQ(9)), Ok(true), "free again");
            assert_eq!(r.read_register(0xfec0_0000, 1), Some(0x0017_0020));
            assert_eq!(r.read_register(0xfec0_1000, 1), None);
        });
        assert!(is_io_apic_frame(0xfec00) && !is_io_apic_frame(0xfec01));
        let permitted = |mfn| crate::mm::pt_validate::io_frame_permitted(crate::mm::Mfn(mfn), 1 << 40);
        assert!(!permitted(0xfec00), "the IO-APIC's registers are not the control domain's to map");
        assert!(permitted(0xfec01) && permitted(0xfebff));
        assert_eq!(take_pending(), [], "unbinding dropped what was recorded; nothing for the unbound pin");
    }

    #[test]
    fn vectors_run_out_with_enospc() {
        let hw = FakeIoApics::default();
        // 8 IO-APICs of 24 pins: more GSIs than device vectors.
        let apics: std::vec::Vec<(u64, u32)> = (0..9).map(|i| (0xfec0_0000 + i * 0x1000, i as u32 * 24)).collect();
        install(IrqRouting::new(&apics, &[], 0, Box::new(hw)));
        with(|r| {
            let n = u32::from(LAST_DEVICE_VECTOR - FIRST_DEVICE_VECTOR) + 1;
            for gsi in 0..n {
                assert_eq!(r.setup_gsi(gsi, true, true), Ok(()), "gsi {gsi}");
            }
            assert_eq!(r.setup_gsi(n, true, true), Err(XenError::Enospc));
        });
    }
}
