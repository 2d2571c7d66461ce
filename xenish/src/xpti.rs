//! XPTI, Xen's page-table isolation against Meltdown (CVE-2017-5754): the
//! decisions, host-tested; the page tables and the CR3 switches are in
//! [`crate::arch::x86_64::xpti`].
//!
//! On a CPU that speculates through supervisor-only mappings (Intel parts
//! without `ARCH_CAPABILITIES.RDCL_NO`), a PV guest can read whatever its
//! page tables map, the hypervisor's direct map of all RAM included. With
//! XPTI on for a domain, its vCPUs run on a per-CPU *root* L4 that holds a
//! copy of the guest's own L4 slots (0..=255, 272..=511), the read-only M2P
//! (slot 256) and, of the hypervisor, only what the entry and exit paths
//! touch before and after they switch CR3: the entry text, the IDT, this
//! CPU's GDT/LDT/TSS and its stack block. Every entry into the hypervisor
//! loads the vCPU's real L4 first; every exit copies the guest slots again
//! if the guest's L4 changed ([`RootSync`]) and loads the root table.
//!
//! What is on by default, and the `xpti=` option, are Xen 4.17's
//! (`xpti_init_default`, `parse_xpti`): `xpti=<bool>`, `xpti=default`,
//! `xpti=dom0=<bool>,domu=<bool>` (also `dom0`, `no-dom0`, ...).

use core::sync::atomic::{AtomicU64, Ordering};

/// First L4 slot of the hypervisor hole (not copied into the root table).
pub const XEN_FIRST_SLOT: usize = 256;
/// First L4 slot after the hypervisor hole (guest slots again).
pub const XEN_END_SLOT: usize = 272;

/// What `xpti=` asked for, per domain kind: `None` leaves Xen's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XptiOption {
    /// For the hardware domain (dom0): Xen's `opt_xpti_hwdom`.
    pub dom0: Option<bool>,
    /// For every other domain: Xen's `opt_xpti_domu`.
    pub domu: Option<bool>,
}

/// Xen's boolean words (`parse_bool`): `Some(value)` or `None`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "no" | "off" | "false" | "disable" | "0" => Some(false),
        "yes" | "on" | "true" | "enable" | "1" => Some(true),
        _ => None,
    }
}

/// Xen's `parse_boolean(name, s)`: `name`, `no-name` or `name=<bool>`;
/// `None` if `s` is none of those (an unknown value included).
fn parse_named(name: &str, s: &str) -> Option<bool> {
    if s == name {
        return Some(true);
    }
    if s.strip_prefix("no-") == Some(name) {
        return Some(false);
    }
    s.strip_prefix(name)?.strip_prefix('=').and_then(parse_bool)
}

impl XptiOption {
    /// Applies the value of one `xpti=` option (empty for a bare `xpti`)
    /// as Xen 4.17's `parse_xpti`: a bare `xpti` is `xpti=1`; each
    /// comma-separated element is a boolean for both kinds, `default`, or
    /// `dom0`/`domu` as a named boolean. An element that is none of these
    /// is refused, but the elements around it still apply, as in Xen.
    /// Returns whether every element was understood (false: Xen's
    /// `-EINVAL`, reported).
    pub fn apply(&mut self, value: &str) -> bool {
        if value.is_empty() {
            self.dom0 = Some(true);
            self.domu = Some(true);
            return true;
        }
        let mut ok = true;
        for elem in value.split(',') {
            if let Some(b) = parse_bool(elem) {
                self.dom0 = Some(b);
                self.domu = Some(b);
            } else if elem == "default" {
                self.dom0 = None;
                self.domu = None;
            } else if let Some(b) = parse_named("dom0", elem) {
                self.dom0 = Some(b);
            } else if let Some(b) = parse_named("domu", elem) {
                self.domu = Some(b);
            } else if !elem.is_empty() {
                ok = false;
            }
        }
        ok
    }
}

/// The CPU facts Xen's `xpti_init_default` looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFacts {
    /// The vendor is AMD or Hygon (whose CPUs do not speculate through
    /// supervisor-only mappings: Xen treats them as `RDCL_NO`).
    pub amd_or_hygon: bool,
    /// `IA32_ARCH_CAPABILITIES.RDCL_NO` (bit 0): not affected by Meltdown.
    pub rdcl_no: bool,
}

/// Whether XPTI is on, per domain kind (64-bit PV: every xenish domain).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Xpti {
    /// For the hardware domain (dom0).
    pub dom0: bool,
    /// For every other domain.
    pub domu: bool,
}

impl Xpti {
    /// Xen's `xpti_init_default`: what the option leaves to the default is
    /// off on AMD/Hygon and on `RDCL_NO` parts, on everywhere else.
    pub fn resolve(opt: XptiOption, cpu: CpuFacts) -> Self {
        let default = !(cpu.amd_or_hygon || cpu.rdcl_no);
        Xpti { dom0: opt.dom0.unwrap_or(default), domu: opt.domu.unwrap_or(default) }
    }

    /// Whether a domain runs with XPTI (Xen's `d->arch.pv.xpti`: the
    /// hardware domain's setting for dom0, the domU one for the others).
    pub fn for_domain(&self, hardware_domain: bool) -> bool {
        if hardware_domain {
            self.dom0
        } else {
            self.domu
        }
    }

    /// Whether any domain runs with XPTI (per-CPU root tables are needed).
    pub fn any(&self) -> bool {
        self.dom0 || self.domu
    }

    /// The boot log line, in the words of Xen's `print_details`.
    pub fn describe(&self) -> alloc::string::String {
        let w = |b: bool| if b { "enabled" } else { "disabled" };
        alloc::format!(
            "XPTI (64-bit PV only): Dom0 {}, DomU {} (without PCID: every switch flushes the TLB)",
            w(self.dom0),
            w(self.domu)
        )
    }
}

/// Bumped whenever the guest part of some L4 table may have changed: an L4
/// entry written (`mmu_update`), or a frame validated as an L4 (a fresh
/// table, possibly in a frame that held another L4 before). Xen sets
/// `root_pgt_changed` for this; one global count serves every CPU, which
/// is correct with several CPUs too (a CPU whose guest runs on a root copy
/// is sent a flush after another changes its L4, and resyncs on the way
/// back) at the price of some copies that were not needed.
static L4_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Records that the guest slots of some L4 table may have changed.
pub fn l4_changed() {
    L4_GENERATION.fetch_add(1, Ordering::Release);
}

/// The current L4 generation.
pub fn l4_generation() -> u64 {
    L4_GENERATION.load(Ordering::Acquire)
}

/// What a CPU's root table was last copied from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootSync {
    /// The guest L4 (machine address) the guest slots came from, 0: none.
    pub l4: u64,
    /// The [`l4_generation`] at the copy.
    pub generation: u64,
}

impl RootSync {
    /// Whether the root table must be copied again before the guest runs
    /// on guest L4 `l4` (machine address) at generation `generation`:
    /// another table (a vCPU switch, or the guest's kernel/user toggle), or
    /// a table that may have changed since the last copy.
    pub fn needs_copy(&self, l4: u64, generation: u64) -> bool {
        self.l4 != l4 || self.generation != generation
    }
}

/// Copies the guest slots of `guest` (a guest L4) into `root`: everything
/// but the hypervisor hole, which the root table fills itself.
pub fn copy_guest_slots(root: &mut [u64; 512], guest: &[u64; 512]) {
    root[..XEN_FIRST_SLOT].copy_from_slice(&guest[..XEN_FIRST_SLOT]);
    root[XEN_END_SLOT..].copy_from_slice(&guest[XEN_END_SLOT..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> (XptiOption, bool) {
        let mut o = XptiOption::default();
        let mut ok = true;
        for v in values {
            ok &= o.apply(v);
        }
        (o, ok)
    }

    const INTEL: CpuFacts = CpuFacts { amd_or_hygon: false, rdcl_no: false };
    const FIXED_INTEL: CpuFacts = CpuFacts { amd_or_hygon: false, rdcl_no: true };
    const AMD: CpuFacts = CpuFacts { amd_or_hygon: true, rdcl_no: false };

    #[test]
    fn default_follows_the_cpu() {
        let d = XptiOption::default();
        assert_eq!(Xpti::resolve(d, INTEL), Xpti { dom0: true, domu: true });
        assert_eq!(Xpti::resolve(d, FIXED_INTEL), Xpti { dom0: false, domu: false });
        assert_eq!(Xpti::resolve(d, AMD), Xpti { dom0: false, domu: false });
    }

    #[test]
    fn booleans_force_both_kinds() {
        for on in ["", "1", "on", "yes", "true", "enable"] {
            let (o, ok) = parse(&[on]);
            assert!(ok, "{on}");
            assert_eq!(Xpti::resolve(o, AMD), Xpti { dom0: true, domu: true }, "{on}");
        }
        for off in ["0", "off", "no", "false", "disable"] {
            let (o, ok) = parse(&[off]);
            assert!(ok, "{off}");
            assert_eq!(Xpti::resolve(o, INTEL), Xpti { dom0: false, domu: false }, "{off}");
        }
    }

    #[test]
    fn per_kind_settings_leave_the_other_at_its_default() {
        // Xen's "xpti=no-dom0 ought to have no effect for DomU-s".
        let (o, ok) = parse(&["no-dom0"]);
        assert!(ok);
        assert_eq!(Xpti::resolve(o, INTEL), Xpti { dom0: false, domu: true });
        let (o, _) = parse(&["dom0"]);
        assert_eq!(Xpti::resolve(o, FIXED_INTEL), Xpti { dom0: true, domu: false });
        let (o, _) = parse(&["dom0=0,domu=1"]);
        assert_eq!(Xpti::resolve(o, AMD), Xpti { dom0: false, domu: true });
        let (o, _) = parse(&["domu=off"]);
        assert_eq!(Xpti::resolve(o, INTEL), Xpti { dom0: true, domu: false });
        // Later elements and later options win; `default` resets.
        let (o, _) = parse(&["on,no-domu"]);
        assert_eq!(Xpti::resolve(o, AMD), Xpti { dom0: true, domu: false });
        let (o, _) = parse(&["off", "default"]);
        assert_eq!(Xpti::resolve(o, INTEL), Xpti { dom0: true, domu: true });
        let (o, _) = parse(&["off", "dom0"]);
        assert_eq!(Xpti::resolve(o, INTEL), Xpti { dom0: true, domu: false });
    }

    #[test]
    fn unknown_elements_are_errors_but_the_rest_applies() {
        let (o, ok) = parse(&["dom0=maybe,domu=0"]);
        assert!(!ok);
        assert_eq!(Xpti::resolve(o, INTEL), Xpti { dom0: true, domu: false });
        assert!(!parse(&["dom1"]).1);
        assert!(!parse(&["no-dom0=1"]).1);
    }

    #[test]
    fn domains_take_their_kinds_setting() {
        let x = Xpti { dom0: false, domu: true };
        assert!(!x.for_domain(true));
        assert!(x.for_domain(false));
        assert!(x.any());
        assert!(!Xpti::default().any());
        assert_eq!(
            Xpti { dom0: true, domu: false }.describe(),
            "XPTI (64-bit PV only): Dom0 enabled, DomU disabled (without PCID: every switch flushes the TLB)"
        );
    }

    #[test]
    fn root_is_recopied_on_another_table_or_a_change() {
        let s = RootSync { l4: 0x5000, generation: 7 };
        assert!(!s.needs_copy(0x5000, 7));
        assert!(s.needs_copy(0x6000, 7), "kernel/user toggle or vCPU switch");
        assert!(s.needs_copy(0x5000, 8), "an L4 changed somewhere");
        assert!(RootSync::default().needs_copy(0x5000, 0), "never copied");
        let before = l4_generation();
        l4_changed();
        assert!(l4_generation() > before);
    }

    #[test]
    fn only_guest_slots_are_copied() {
        let guest: [u64; 512] = core::array::from_fn(|i| i as u64 * 0x1000 + 0x67);
        let mut root = [0u64; 512];
        root[256] = 0xabc5; // the root's own M2P slot
        root[261] = 0xdef3; // its entry mappings
        copy_guest_slots(&mut root, &guest);
        for i in 0..512 {
            let want = match i {
                256 => 0xabc5,
                261 => 0xdef3,
                257..=271 => 0,
                _ => guest[i],
            };
            assert_eq!(root[i], want, "slot {i}");
        }
    }
}
