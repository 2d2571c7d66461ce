//! A domain's physical IRQ numbers (PIRQs): how many the domain may name
//! (`nr_pirqs`), which of them it reserved with `PHYSDEVOP_get_free_pirq`,
//! which are mapped to a GSI (`PHYSDEVOP_map_pirq`) and bound to a port
//! (`EVTCHNOP_bind_pirq`), and the EOI bitmap page it registered
//! (`PHYSDEVOP_pirq_eoi_gmfn_v1/v2`). The machine side of a mapped GSI —
//! its IO-APIC pin, vector, masking — is [`crate::irq`]'s.
//!
//! The counts are Xen 4.17's: `nr_irqs_gsi + 32` PIRQs for a domU
//! (`extra_domU_irqs`, counted with the 16 legacy GSIs), and for the
//! control domain what Xen's `arch_hwdom_irqs` gives it: 208 dynamic
//! vectors a CPU (208 on one CPU, 416 for a dom0 with two vCPUs on two).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::mm::Mfn;

/// GSIs (Xen's `nr_irqs_gsi`): the 16 ISA lines, no IO-APIC pins.
pub const NR_IRQS_GSI: u32 = 16;
/// PIRQs beyond the GSIs a domU gets (Xen's `extra_domU_irqs`).
const EXTRA_DOMU_IRQS: u32 = 32;
/// Xen's `NR_DYNAMIC_VECTORS` (vectors 0x20..=0xef), of each CPU.
const NR_DYNAMIC_VECTORS: u32 = 208;
/// PIRQs of the control domain on one CPU ([`hwdom_pirqs`]).
const HWDOM_PIRQS: u32 = 208;

/// The PIRQs of a control domain on `cpus` CPUs, as Xen 4.17's
/// `arch_hwdom_irqs`: `nr_irqs_gsi` plus a CPU's dynamic vectors for each
/// bit of the CPU count (`fls`), for dom0 (`dom0_vcpus`) at most one per
/// vCPU; capped by Xen's `nr_irqs` (the larger of every CPU's dynamic
/// vectors and eight per GSI) and by the bits of the EOI bitmap page.
pub fn hwdom_pirqs(cpus: u32, dom0_vcpus: Option<u32>) -> u32 {
    let cpus = cpus.max(1);
    let mut n = u32::BITS - cpus.leading_zeros();
    if let Some(v) = dom0_vcpus {
        n = n.min(v.max(1));
    }
    let nr_irqs = (cpus.saturating_mul(NR_DYNAMIC_VECTORS)).max(8 * NR_IRQS_GSI);
    (NR_IRQS_GSI + n * NR_DYNAMIC_VECTORS).min(nr_irqs).min(4096 * 8)
}

/// `MAP_PIRQ_TYPE_GSI`: the only type `get_free_pirq` looks among the GSIs for.
const MAP_PIRQ_TYPE_GSI: i32 = 1;

/// A domain's PIRQ state.
#[derive(Debug, Default)]
pub struct Pirqs {
    /// Numbers `0..nr_pirqs` are the domain's PIRQs.
    nr_pirqs: u32,
    /// One bit per PIRQ reserved by `PHYSDEVOP_get_free_pirq`.
    allocated: Vec<u64>,
    /// The registered EOI bitmap frame (holding a writable type reference).
    pub eoi_map: Option<Mfn>,
    /// Registered with `pirq_eoi_gmfn_v1`: an EOI also unmasks the PIRQ's
    /// port (Xen's `auto_unmask`).
    pub auto_unmask: bool,
    /// PIRQs mapped to a GSI.
    mapped: BTreeMap<u32, Mapped>,
}

/// A PIRQ mapped to a machine interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The machine IRQ (Xen's `irq`): a GSI, or an MSI numbered after them
    /// ([`crate::irq`]).
    pub irq: u32,
    /// The port bound to it, 0 when none is.
    pub port: u32,
}

/// Why `map_gsi` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `-EINVAL`: the PIRQ is out of range.
    Invalid,
    /// `-EEXIST`: the PIRQ is mapped to another GSI.
    Exists,
    /// `-ENOSPC`: no free PIRQ.
    NoSpace,
}

impl Pirqs {
    /// The PIRQ state of a new domain: the control domain's (`privileged`,
    /// as on one CPU: see [`Self::with_count`]) or a domU's.
    pub fn new(privileged: bool) -> Self {
        Self::with_count(if privileged { HWDOM_PIRQS } else { NR_IRQS_GSI + EXTRA_DOMU_IRQS })
    }

    /// The PIRQ state of a domain that may name `nr_pirqs` PIRQs (a
    /// control domain's from [`hwdom_pirqs`]).
    pub fn with_count(nr_pirqs: u32) -> Self {
        Pirqs {
            nr_pirqs,
            allocated: alloc::vec![0; nr_pirqs.div_ceil(64) as usize],
            eoi_map: None,
            auto_unmask: false,
            mapped: BTreeMap::new(),
        }
    }

    /// How many PIRQs the domain may name (Xen's `d->nr_pirqs`).
    pub fn nr_pirqs(&self) -> u32 {
        self.nr_pirqs
    }

    /// Whether PIRQ `pirq` has Xen's per-PIRQ record (`pirq_info`):
    /// whether `get_free_pirq` reserved it or it is mapped.
    pub fn has_info(&self, pirq: u32) -> bool {
        let word = self.allocated.get((pirq / 64) as usize).copied().unwrap_or(0);
        pirq < self.nr_pirqs && (word & (1 << (pirq % 64)) != 0 || self.mapped.contains_key(&pirq))
    }

    /// What `pirq` is mapped to.
    pub fn mapping(&self, pirq: u32) -> Option<Mapped> {
        self.mapped.get(&pirq).copied()
    }

    /// Records the port `pirq` is bound to (0: unbound).
    pub fn set_port(&mut self, pirq: u32, port: u32) {
        if let Some(m) = self.mapped.get_mut(&pirq) {
            m.port = port;
        }
    }

    /// `PHYSDEVOP_map_pirq` for `gsi` (Xen's `allocate_pirq` and
    /// `map_domain_pirq`): a negative `pirq` asks for the lowest free one
    /// from 16 up. Mapping a PIRQ to the GSI it has is idempotent; one
    /// mapped to another GSI is `-EEXIST`. A GSI mapped under another PIRQ
    /// stays so and the PIRQ asked for is returned unmapped, as Xen does
    /// (with a warning). Returns the PIRQ.
    pub fn map_gsi(&mut self, pirq: i32, gsi: u32) -> Result<u32, MapError> {
        let pirq = match u32::try_from(pirq) {
            Ok(p) if p >= self.nr_pirqs => return Err(MapError::Invalid),
            Ok(p) => p,
            Err(_) => (16..self.nr_pirqs).find(|&p| !self.has_info(p)).ok_or(MapError::NoSpace)?,
        };
        match self.mapped.get(&pirq) {
            Some(m) if m.irq == gsi => return Ok(pirq),
            Some(_) => return Err(MapError::Exists),
            None => {}
        }
        if self.mapped.values().any(|m| m.irq == gsi) {
            return Ok(pirq);
        }
        self.mapped.insert(pirq, Mapped { irq: gsi, port: 0 });
        Ok(pirq)
    }

    /// The PIRQ an MSI will be mapped to (Xen's `allocate_pirq` for
    /// `MAP_PIRQ_TYPE_MSI`): a negative `pirq` asks for the highest free
    /// one above the GSIs; a given one must be in range (`-EINVAL`) and
    /// not mapped (`-EEXIST`). Nothing is recorded until [`Self::map_irq`].
    pub fn choose_msi(&self, pirq: i32) -> Result<u32, MapError> {
        match u32::try_from(pirq) {
            Ok(p) if p >= self.nr_pirqs => Err(MapError::Invalid),
            Ok(p) if self.mapped.contains_key(&p) => Err(MapError::Exists),
            Ok(p) => Ok(p),
            Err(_) => (NR_IRQS_GSI..self.nr_pirqs).rev().find(|&p| !self.has_info(p)).ok_or(MapError::NoSpace),
        }
    }

    /// Records `pirq` (from [`Self::choose_msi`]) as mapped to machine IRQ
    /// `irq`.
    pub fn map_irq(&mut self, pirq: u32, irq: u32) {
        if pirq < self.nr_pirqs {
            self.mapped.insert(pirq, Mapped { irq, port: 0 });
        }
    }

    /// `PHYSDEVOP_unmap_pirq`: forgets `pirq`'s mapping and returns it.
    pub fn unmap(&mut self, pirq: u32) -> Option<Mapped> {
        self.mapped.remove(&pirq)
    }

    /// The PIRQ bound to `port`, if any.
    pub fn by_port(&self, port: u32) -> Option<u32> {
        self.mapped.iter().find(|(_, m)| m.port == port && port != 0).map(|(&p, _)| p)
    }

    /// Reserves a free PIRQ as Xen's `get_free_pirq` chooses it: for
    /// `MAP_PIRQ_TYPE_GSI` the lowest free one among GSIs 16 and up, else
    /// (or when there is none) the highest free one above the GSIs. `None`
    /// when all are taken (`-ENOSPC`).
    pub fn allocate(&mut self, map_type: i32) -> Option<u32> {
        let gsis = (map_type == MAP_PIRQ_TYPE_GSI).then_some(16..NR_IRQS_GSI).into_iter().flatten();
        let dynamic = (NR_IRQS_GSI..self.nr_pirqs).rev();
        let pirq = gsis.chain(dynamic).find(|&p| !self.has_info(p))?;
        let word = self.allocated.get_mut((pirq / 64) as usize)?;
        *word |= 1 << (pirq % 64);
        Some(pirq)
    }
}

/// Sets or clears `pirq`'s bit in `d`'s EOI bitmap page, if it registered
/// one (Xen writes it only when a PIRQ is bound).
pub fn set_eoi_bit(d: &crate::domain::Domain, mem: &mut dyn crate::mm::MachineMemory, pirq: u32, needs_eoi: bool) {
    let Some(mfn) = d.pirqs.eoi_map else { return };
    let Ok(offset) = usize::try_from(pirq / 8) else { return };
    if let Some(byte) = crate::mm::shared_word::u8_at(mem, mfn, offset) {
        let bit = 1u8 << (pirq % 8);
        if needs_eoi {
            byte.fetch_or(bit, core::sync::atomic::Ordering::SeqCst);
        } else {
            byte.fetch_and(!bit, core::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_xen_without_an_io_apic() {
        assert_eq!(Pirqs::new(true).nr_pirqs(), 208);
        assert_eq!(Pirqs::new(false).nr_pirqs(), 48);
    }

    /// Xen 4.17 under QEMU: "d0 has maximum 208 PIRQs" on one CPU, 416 on
    /// two with dom0's default two vCPUs (its `get_free_pirq` then answers
    /// 415, where xenish, sizing dom0 for one CPU, answered 207).
    #[test]
    fn a_control_domain_gets_dynamic_vectors_per_cpu_as_in_xen() {
        assert_eq!(hwdom_pirqs(1, Some(1)), 208);
        assert_eq!(hwdom_pirqs(2, Some(2)), 416);
        assert_eq!(hwdom_pirqs(2, Some(1)), 16 + 208, "one vCPU: one CPU's vectors beyond the GSIs");
        assert_eq!(hwdom_pirqs(4, Some(4)), 16 + 3 * 208, "fls(4) = 3");
        assert_eq!(hwdom_pirqs(2, None), 416, "another control domain: not bounded by vCPUs");
        assert_eq!(hwdom_pirqs(1000, None), 16 + 10 * 208, "fls(1000) = 10");
        let mut p = Pirqs::with_count(hwdom_pirqs(2, Some(2)));
        assert_eq!(p.nr_pirqs(), 416);
        assert_eq!(p.allocate(0), Some(415), "MSI: the highest");
    }

    #[test]
    fn free_pirqs_come_from_the_top_and_run_out() {
        let mut p = Pirqs::new(false);
        assert_eq!(p.allocate(0), Some(47), "MSI: the highest");
        assert_eq!(p.allocate(MAP_PIRQ_TYPE_GSI), Some(46), "no GSI above 15: the dynamic range");
        assert!(p.has_info(47) && p.has_info(46) && !p.has_info(45) && !p.has_info(48));
        for want in (16..46).rev() {
            assert_eq!(p.allocate(4), Some(want));
        }
        assert_eq!(p.allocate(0), None, "the GSIs are never handed out: ENOSPC");
    }

    #[test]
    fn gsis_map_to_pirqs_as_in_xen() {
        let mut p = Pirqs::new(true);
        assert_eq!(p.map_gsi(11, 11), Ok(11));
        assert_eq!(p.map_gsi(11, 11), Ok(11), "idempotent");
        assert_eq!(p.map_gsi(11, 10), Err(MapError::Exists));
        assert_eq!(p.map_gsi(208, 10), Err(MapError::Invalid));
        assert_eq!(p.map_gsi(-1, 22), Ok(16), "the lowest free from 16");
        assert_eq!(p.map_gsi(-1, 23), Ok(17));
        assert_eq!(p.map_gsi(40, 22), Ok(40), "GSI 22 stays with PIRQ 16");
        assert_eq!(p.mapping(40), None);
        assert!(p.has_info(16) && !p.has_info(40));
        p.set_port(16, 7);
        assert_eq!(p.by_port(7), Some(16));
        assert_eq!(p.by_port(0), None);
        assert_eq!(p.unmap(16), Some(Mapped { irq: 22, port: 7 }));
        assert_eq!(p.choose_msi(-1), Ok(207), "MSIs from the top");
        p.map_irq(207, 30);
        assert_eq!(p.choose_msi(-1), Ok(206));
        assert_eq!(p.choose_msi(207), Err(MapError::Exists));
        assert_eq!(p.choose_msi(208), Err(MapError::Invalid));
        assert_eq!(p.mapping(207), Some(Mapped { irq: 30, port: 0 }));
        assert_eq!(p.by_port(7), None);
        assert_eq!(p.unmap(16), None);
    }
}
