//! TLB coherence, the portable decisions: which CPUs may hold a domain's
//! translations, and which CPUs a flush must reach.
//!
//! As in Xen (`arch/x86/domain.c::__context_switch`, `mm.c`): every vCPU
//! records the CPU that last loaded its page tables (`dirty_cpu`, Xen's
//! `v->dirty_cpu`), every domain the set of CPUs that may still hold its
//! translations (`dirty_cpus`, Xen's `d->dirty_cpumask`). Both are kept
//! by [`note_loaded`] on every change of what a CPU's CR3 holds: a
//! switch to another vCPU, and the switch to the hypervisor's own table
//! when a CPU idles. (xenish's idle loop loads its own table rather than
//! keeping the last guest's, Xen's lazy idle; a CPU that keeps a guest's
//! table must not call [`note_loaded`] with `None`, so it stays dirty,
//! gotcha 9 of the SMP reference.)
//!
//! Every flush a guest asks for, or that the hypervisor needs after it
//! changed a guest's mappings or freed or retyped its frames, is a
//! [`FlushReq`]: what to flush and the CPUs to flush it on, collected
//! during the entry and carried out once by the arch layer before the
//! entry ends (through `ipi::flush_mask`, which flushes locally when the
//! running CPU is in the mask and shoots the others down).

use crate::domain::Domain;
use crate::hypercall::TlbFlush;
use crate::ipi::{CpuMask, FLUSH_PAGE, FLUSH_TLB};
use crate::sched::VcpuRef;

/// The pseudo-CPU "whichever CPU handles the entry" in a [`FlushReq`]'s
/// mask (`*_LOCAL`, `UVMF_LOCAL`): never a real CPU (xenish starts fewer).
pub const LOCAL_CPU: usize = 63;

/// TLB maintenance and the CPUs it must reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReq {
    /// What to flush.
    pub what: TlbFlush,
    /// Where; [`LOCAL_CPU`] stands for the CPU that handles the entry.
    pub cpus: CpuMask,
}

impl FlushReq {
    /// Nothing to flush.
    pub const NONE: FlushReq = FlushReq { what: TlbFlush::None, cpus: CpuMask::EMPTY };

    /// Adds `what` on the CPU that handles the entry.
    #[inline]
    pub fn add_local(&mut self, what: TlbFlush) {
        self.add(what, CpuMask::of(LOCAL_CPU));
    }

    /// The CPUs to flush when CPU `me` handles the entry.
    #[inline]
    pub fn cpus_from(&self, me: usize) -> CpuMask {
        if self.cpus.contains(LOCAL_CPU) {
            self.cpus.without(LOCAL_CPU).with(me)
        } else {
            self.cpus
        }
    }

    /// Adds `what` on `cpus`: the union of the CPUs, and what covers
    /// both (two different pages make a full flush). No CPU, or nothing
    /// to flush, adds nothing.
    #[inline]
    pub fn add(&mut self, what: TlbFlush, cpus: CpuMask) {
        if cpus.is_empty() || what == TlbFlush::None {
            return;
        }
        self.what = self.what.and(what);
        self.cpus = self.cpus.or(cpus);
    }

    /// Whether there is nothing to do.
    #[inline]
    pub fn is_none(&self) -> bool {
        self.what == TlbFlush::None
    }

    /// The flush as `ipi::flush_mask` takes it when CPU `me` handles the
    /// entry: the CPUs, the flags ([`FLUSH_TLB`] or [`FLUSH_PAGE`]) and the
    /// page; `None` for nothing.
    pub fn request(&self, me: usize) -> Option<(CpuMask, u32, u64)> {
        let cpus = self.cpus_from(me);
        match self.what {
            TlbFlush::None => None,
            _ if cpus.is_empty() => None,
            TlbFlush::Page(va) => Some((cpus, FLUSH_PAGE, va)),
            TlbFlush::All => Some((cpus, FLUSH_TLB, 0)),
        }
    }
}

/// Records that `cpu`'s CR3 now holds `next`'s page tables (`None`: the
/// hypervisor's own) instead of `prev`'s. `next` becomes dirty on `cpu`
/// first, then `prev` stops being (Xen sets the new bits before loading
/// the table and clears the old ones after); `prev`'s domain keeps `cpu`
/// in its mask if `next` is another vCPU of the same domain.
pub fn note_loaded(domains: &mut [Domain], cpu: usize, prev: Option<VcpuRef>, next: Option<VcpuRef>) {
    if prev == next {
        return;
    }
    if let Some(n) = next {
        if let Some(d) = domains.get_mut(n.domain) {
            d.dirty_cpus = d.dirty_cpus.with(cpu);
            if let Some(v) = d.vcpus.get_mut(n.vcpu) {
                v.dirty_cpu = Some(cpu);
            }
        }
    }
    if let Some(p) = prev {
        if let Some(d) = domains.get_mut(p.domain) {
            if let Some(v) = d.vcpus.get_mut(p.vcpu) {
                if v.dirty_cpu == Some(cpu) {
                    v.dirty_cpu = None;
                }
            }
            if next.map(|n| n.domain) != Some(p.domain) {
                d.dirty_cpus = d.dirty_cpus.without(cpu);
            }
        }
    }
}

/// The CPUs that may hold translations of `d`'s vCPU `vcpu` (its dirty
/// CPU; none for a vCPU that never ran or does not exist): one bit of
/// Xen's `vcpumask_to_pcpumask`.
#[inline]
pub fn vcpu_dirty_cpus(d: &Domain, vcpu: usize) -> CpuMask {
    match d.vcpus.get(vcpu).and_then(|v| v.dirty_cpu) {
        Some(cpu) => CpuMask::of(cpu),
        None => CpuMask::EMPTY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Vcpu;
    use crate::mm::Mfn;
    use crate::regs::TrapFrame;
    use alloc::vec::Vec;

    fn domains() -> Vec<Domain> {
        (0..2)
            .map(|id| {
                let mut d = Domain::new(id, "t", id == 0, Mfn(100 + u64::from(id)));
                d.vcpus = (0..3).map(|v| Vcpu::new(v, TrapFrame::default(), Mfn(200))).collect();
                d
            })
            .collect()
    }

    fn at(domain: usize, vcpu: usize) -> Option<VcpuRef> {
        Some(VcpuRef { domain, vcpu })
    }

    #[test]
    fn a_switch_moves_the_dirty_bits_and_a_domain_stays_dirty_for_its_own_vcpus() {
        let mut ds = domains();
        note_loaded(&mut ds, 1, None, at(0, 0));
        assert_eq!((ds[0].dirty_cpus, ds[0].vcpus[0].dirty_cpu), (CpuMask::of(1), Some(1)));
        // Another vCPU of the same domain on the same CPU: the domain stays
        // dirty there, the old vCPU is clean.
        note_loaded(&mut ds, 1, at(0, 0), at(0, 2));
        assert_eq!(ds[0].dirty_cpus, CpuMask::of(1));
        assert_eq!((ds[0].vcpus[0].dirty_cpu, ds[0].vcpus[2].dirty_cpu), (None, Some(1)));
        // Another domain: the first one's bit goes.
        note_loaded(&mut ds, 1, at(0, 2), at(1, 0));
        assert_eq!((ds[0].dirty_cpus, ds[1].dirty_cpus), (CpuMask::EMPTY, CpuMask::of(1)));
        assert_eq!(ds[0].vcpus[2].dirty_cpu, None);
        // Two CPUs run the same domain; one idles on the hypervisor's table.
        note_loaded(&mut ds, 0, None, at(1, 1));
        assert_eq!(ds[1].dirty_cpus, CpuMask::of(0).with(1));
        note_loaded(&mut ds, 1, at(1, 0), None);
        assert_eq!(ds[1].dirty_cpus, CpuMask::of(0));
        assert_eq!((ds[1].vcpus[0].dirty_cpu, ds[1].vcpus[1].dirty_cpu), (None, Some(0)));
        // The same vCPU again (a reload): nothing changes.
        note_loaded(&mut ds, 0, at(1, 1), at(1, 1));
        assert_eq!(ds[1].dirty_cpus, CpuMask::of(0));
    }

    #[test]
    fn a_vcpu_that_moved_stays_dirty_where_it_runs_now() {
        let mut ds = domains();
        note_loaded(&mut ds, 0, None, at(0, 1));
        // CPU 1 takes it (CPU 0 went idle lazily and keeps it loaded).
        note_loaded(&mut ds, 1, None, at(0, 1));
        assert_eq!(ds[0].dirty_cpus, CpuMask::of(0).with(1));
        assert_eq!(ds[0].vcpus[1].dirty_cpu, Some(1));
        // CPU 0 now loads another domain: vCPU 1's own CPU is untouched.
        note_loaded(&mut ds, 0, at(0, 1), at(1, 0));
        assert_eq!(ds[0].dirty_cpus, CpuMask::of(1));
        assert_eq!(ds[0].vcpus[1].dirty_cpu, Some(1));
        assert_eq!(vcpu_dirty_cpus(&ds[0], 1), CpuMask::of(1));
        assert_eq!(vcpu_dirty_cpus(&ds[0], 0), CpuMask::EMPTY, "never ran");
        assert_eq!(vcpu_dirty_cpus(&ds[0], 7), CpuMask::EMPTY, "no such vCPU");
    }

    #[test]
    fn requests_merge_and_drop_what_reaches_no_cpu() {
        let mut r = FlushReq::NONE;
        r.add(TlbFlush::All, CpuMask::EMPTY);
        assert!(r.is_none() && r.request(0).is_none(), "no CPU: nothing to do");
        r.add(TlbFlush::None, CpuMask::of(3));
        assert!(r.is_none());
        r.add(TlbFlush::Page(0x5000), CpuMask::of(0));
        assert_eq!(r.request(1), Some((CpuMask::of(0), FLUSH_PAGE, 0x5000)));
        r.add(TlbFlush::Page(0x5000), CpuMask::of(2));
        assert_eq!(r.request(1), Some((CpuMask::of(0).with(2), FLUSH_PAGE, 0x5000)));
        r.add(TlbFlush::Page(0x6000), CpuMask::of(2));
        assert_eq!(r.request(1), Some((CpuMask::of(0).with(2), FLUSH_TLB, 0)), "two pages: all");
        // A local flush is the handling CPU's, whichever that is.
        let mut l = FlushReq::NONE;
        l.add_local(TlbFlush::None);
        assert!(l.request(3).is_none());
        l.add_local(TlbFlush::Page(0x7000));
        assert_eq!(l.request(3), Some((CpuMask::of(3), FLUSH_PAGE, 0x7000)));
        l.add(TlbFlush::Page(0x7000), CpuMask::of(1));
        assert_eq!(l.request(3), Some((CpuMask::of(1).with(3), FLUSH_PAGE, 0x7000)));
    }
}
