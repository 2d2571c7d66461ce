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
//! One routing table serves the machine ([`with`]); the interrupt handler
//! records which PIRQs fired ([`IrqRouting::interrupt`]) and the core
//! raises their ports on its next entry ([`take_pending`]).

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use guest_abi::errno::XenError;

use crate::domain::DomId;

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
    /// GSI of each vector, `u32::MAX` for none.
    vector_gsi: [u32; 256],
    /// APIC ID every pin targets (CPU 0's).
    dest_apic_id: u32,
    /// PIRQs that fired since the core last looked.
    pending: Vec<Owner>,
    /// The PCI devices the control domain added (`PHYSDEVOP_pci_device_add`
    /// and `manage_pci_add`), as segment << 16 | bus << 8 | devfn: whose
    /// MSIs will be the hypervisor's to program.
    pci_devices: BTreeSet<u32>,
    hw: Box<dyn IoApicAccess + Send>,
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
            vector_gsi: [u32::MAX; 256],
            dest_apic_id,
            pending: Vec::new(),
            pci_devices: BTreeSet::new(),
            hw,
        }
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

    /// Gives `gsi` a vector if it has none; `false` when all are taken.
    fn assign_vector(&mut self, gsi: u32) -> bool {
        let Some(g) = self.gsis.get(gsi as usize) else { return false };
        if g.vector != 0 {
            return true;
        }
        let Some(v) = (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).find(|&v| self.vector_gsi[usize::from(v)] == u32::MAX)
        else {
            return false;
        };
        self.vector_gsi[usize::from(v)] = gsi;
        if let Some(g) = self.gsis.get_mut(gsi as usize) {
            g.vector = v;
        }
        true
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
    pub fn bind(&mut self, gsi: u32, owner: Owner) -> Result<bool, XenError> {
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
        let gsi = self.vector_gsi[usize::from(vector)];
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

    /// `pci_add_device`: records the device at `sbdf` (idempotent, as
    /// Xen's `alloc_pdev`).
    pub fn pci_add(&mut self, sbdf: u32) {
        self.pci_devices.insert(sbdf);
    }

    /// `pci_remove_device`: forgets the device at `sbdf`; whether it was
    /// known (else `-ENODEV`).
    pub fn pci_remove(&mut self, sbdf: u32) -> bool {
        self.pci_devices.remove(&sbdf)
    }

    /// Whether the device at `sbdf` was added.
    pub fn pci_known(&self, sbdf: u32) -> bool {
        self.pci_devices.contains(&sbdf)
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
