//! A domain's physical IRQ numbers (PIRQs) as far as xenish has them today:
//! how many the domain may name (`nr_pirqs`), which of them it reserved
//! with `PHYSDEVOP_get_free_pirq`, and the EOI bitmap page it registered
//! (`PHYSDEVOP_pirq_eoi_gmfn_v1/v2`). Nothing routes a device interrupt to
//! a PIRQ yet (issue 19): no PIRQ is ever bound, so the EOI bitmap is never
//! written and an EOI has nothing to acknowledge.
//!
//! The numbers are Xen 4.17's for a machine whose interrupts xenish drives
//! without an IO-APIC: 16 GSIs (the legacy ISA lines, Xen's `nr_irqs_gsi`
//! with no IO-APIC), `nr_irqs_gsi + 32` PIRQs for a domU
//! (`extra_domU_irqs`), and for the control domain on one CPU the 208
//! dynamic vectors Xen's `arch_hwdom_irqs` gives it.

use alloc::vec::Vec;

use crate::mm::Mfn;

/// GSIs (Xen's `nr_irqs_gsi`): the 16 ISA lines, no IO-APIC pins.
pub const NR_IRQS_GSI: u32 = 16;
/// PIRQs beyond the GSIs a domU gets (Xen's `extra_domU_irqs`).
const EXTRA_DOMU_IRQS: u32 = 32;
/// PIRQs of the control domain on one CPU: Xen's `nr_irqs`, one CPU's
/// `NR_DYNAMIC_VECTORS`, which caps `nr_irqs_gsi + 208`.
const HWDOM_PIRQS: u32 = 208;

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
}

impl Pirqs {
    /// The PIRQ state of a new domain: the control domain's (`privileged`)
    /// or a domU's.
    pub fn new(privileged: bool) -> Self {
        let nr_pirqs = if privileged { HWDOM_PIRQS } else { NR_IRQS_GSI + EXTRA_DOMU_IRQS };
        Pirqs { nr_pirqs, allocated: alloc::vec![0; nr_pirqs.div_ceil(64) as usize], eoi_map: None, auto_unmask: false }
    }

    /// How many PIRQs the domain may name (Xen's `d->nr_pirqs`).
    pub fn nr_pirqs(&self) -> u32 {
        self.nr_pirqs
    }

    /// Whether PIRQ `pirq` has Xen's per-PIRQ record (`pirq_info`): here,
    /// whether `get_free_pirq` reserved it.
    pub fn has_info(&self, pirq: u32) -> bool {
        let word = self.allocated.get((pirq / 64) as usize).copied().unwrap_or(0);
        pirq < self.nr_pirqs && word & (1 << (pirq % 64)) != 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_xen_without_an_io_apic() {
        assert_eq!(Pirqs::new(true).nr_pirqs(), 208);
        assert_eq!(Pirqs::new(false).nr_pirqs(), 48);
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
}
