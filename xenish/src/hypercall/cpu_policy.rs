//! CPU policies as the toolstack sees them: the featuresets of
//! `XEN_SYSCTL_get_cpu_featureset` and the serialised CPUID leaves and
//! MSRs of `XEN_SYSCTL_get_cpu_policy` and `XEN_DOMCTL_{get,set}_cpu_policy`,
//! in Xen 4.17's formats (`xen/lib/x86/cpuid.c x86_cpuid_copy_to_buffer`,
//! `msr.c x86_msr_copy_to_buffer`).
//!
//! xenish has one PV policy, the one its CPUID emulation gives every
//! guest ([`crate::cpuid::pv_cpuid`]): it is the PV default and the PV
//! maximum. The host (and raw) policy is the CPU's own CPUID. Leaves are
//! serialised within Xen 4.17's array sizes, so that libxc deserialises
//! them; a policy the toolstack sends back is checked the same way
//! ([`check_leaves`]) and otherwise not applied (a domain's CPUID stays
//! the PV policy).

use alloc::vec::Vec;

use guest_abi::arch_x86::{CpuidLeaf, MsrEntry, XEN_CPUID_NO_SUBLEAF};

/// `CPUID_GUEST_NR_BASIC`: leaves 0..=0xd.
const NR_BASIC: u32 = 0xd + 1;
/// `CPUID_GUEST_NR_CACHE`: leaf 4's subleaves.
const NR_CACHE: u32 = 5 + 1;
/// `CPUID_GUEST_NR_FEAT`: leaf 7's subleaves (0..=2 in 4.17.7).
const NR_FEAT: u32 = 2 + 1;
/// `CPUID_GUEST_NR_TOPO`: leaf 0xb's subleaves.
const NR_TOPO: u32 = 1 + 1;
/// `CPUID_GUEST_NR_XSTATE`: leaf 0xd's subleaves.
const NR_XSTATE: u32 = 62 + 1;
/// `CPUID_GUEST_NR_EXTD`: leaves 0x80000000..=0x80000021.
const NR_EXTD: u32 = 0x21 + 1;

/// `CPUID_MAX_SERIALISED_LEAVES`: the most leaves a policy serialises to.
pub const MAX_LEAVES: u32 = NR_BASIC + (NR_FEAT - 1) + (NR_CACHE - 1) + (NR_TOPO - 1) + (NR_XSTATE - 1) + NR_EXTD + 2;
/// `MSR_MAX_SERIALISED_ENTRIES`: `MSR_INTEL_PLATFORM_INFO` and
/// `MSR_ARCH_CAPABILITIES`.
pub const MAX_MSRS: u32 = 2;
/// `FEATURESET_NR_ENTRIES` of Xen 4.17.7 (words 0..=18).
pub const FEATURESET_WORDS: u32 = 19;

/// `MSR_INTEL_PLATFORM_INFO`.
pub const MSR_INTEL_PLATFORM_INFO: u32 = 0xce;
/// `MSR_ARCH_CAPABILITIES`.
pub const MSR_ARCH_CAPABILITIES: u32 = 0x10a;
/// `MSR_PLATFORM_INFO.CPUID_FAULTING`: Xen offers every PV guest CPUID
/// faulting, which it emulates.
const PLATFORM_INFO_CPUID_FAULTING: u64 = 1 << 32;

/// Which policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The CPU as the hypervisor sees it (raw and host).
    Host,
    /// What a PV guest sees (default and maximum alike).
    Pv,
}

/// A source of CPUID values for one policy, answering 0 for leaves past
/// the policy's maximum (as Xen's policy arrays hold them).
struct Source<'a> {
    policy: Policy,
    host: &'a dyn Fn(u32, u32) -> [u32; 4],
    max_basic: u32,
    max_extd: u32,
}

impl<'a> Source<'a> {
    fn new(policy: Policy, host: &'a dyn Fn(u32, u32) -> [u32; 4]) -> Self {
        let max_basic = host(0, 0)[0].min(NR_BASIC - 1);
        let extd = host(0x8000_0000, 0)[0];
        let max_extd = if extd & 0xffff_0000 == 0x8000_0000 { extd.min(0x8000_0000 + NR_EXTD - 1) } else { 0 };
        Source { policy, host, max_basic, max_extd }
    }

    fn get(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let in_range = leaf <= self.max_basic || (leaf >= 0x8000_0000 && leaf <= self.max_extd);
        if !in_range {
            return [0; 4];
        }
        let mut r = match self.policy {
            Policy::Host => (self.host)(leaf, subleaf),
            Policy::Pv => crate::cpuid::pv_cpuid(leaf, subleaf, self.host),
        };
        // The maximum leaves as the policy holds them.
        if leaf == 0 {
            r[0] = self.max_basic;
        } else if leaf == 0x8000_0000 {
            r[0] = self.max_extd;
        }
        r
    }
}

/// `X86_FEATURE_SEP` (word 0 bit 11) and `X86_FEATURE_OSXSAVE` (word 1
/// bit 27).
const SEP: u32 = 1 << 11;
const OSXSAVE: u32 = 1 << 27;
/// "Auth" (of "AuthenticAMD") and "Hygo" (of "HygonGenuine") in leaf 0's ebx.
const VENDOR_AMD: u32 = 0x6874_7541;
const VENDOR_HYGON: u32 = 0x6f67_7948;

/// The featureset words of `policy` (Xen's `FEATURESET_*` order). The
/// host's are the CPU's as Xen keeps them for itself: only features Xen
/// knows, OSXSAVE clear (it reflects the OS's CR4, not the CPU), and on
/// AMD no SEP (SYSENTER does not work in long mode there).
pub fn featureset(policy: Policy, host: &dyn Fn(u32, u32) -> [u32; 4]) -> [u32; FEATURESET_WORDS as usize] {
    let s = Source::new(policy, host);
    let (l1, e1, d1) = (s.get(1, 0), s.get(0x8000_0001, 0), s.get(0xd, 1));
    let (f0, f1, f2) = (s.get(7, 0), s.get(7, 1), s.get(7, 2));
    let (e7, e8, e21) = (s.get(0x8000_0007, 0), s.get(0x8000_0008, 0), s.get(0x8000_0021, 0));
    let mut words = [
        l1[3], l1[2], e1[3], e1[2], d1[0], f0[1], f0[2], e7[3], e8[1], f0[3], f1[0], e21[0], f1[1], f2[3], f1[2],
        f1[3], 0, 0, e21[2],
    ];
    if policy == Policy::Host {
        for (w, known) in words.iter_mut().zip(crate::cpuid::KNOWN_FEATURES) {
            *w &= known;
        }
        words[1] &= !OSXSAVE;
        if matches!(s.get(0, 0)[1], VENDOR_AMD | VENDOR_HYGON) {
            words[0] &= !SEP;
        }
    }
    words
}

/// `policy`'s CPUID leaves, serialised in Xen's order.
pub fn leaves(policy: Policy, host: &dyn Fn(u32, u32) -> [u32; 4]) -> Vec<CpuidLeaf> {
    let s = Source::new(policy, host);
    let mut out = Vec::new();
    let mut push = |leaf: u32, subleaf: u32, r: [u32; 4]| {
        out.push(CpuidLeaf { leaf, subleaf, a: r[0], b: r[1], c: r[2], d: r[3] });
    };
    for leaf in 0..=s.max_basic {
        match leaf {
            4 => {
                for sub in 0..NR_CACHE {
                    let r = s.get(leaf, sub);
                    push(leaf, sub, r);
                    if r[0] & 0x1f == 0 {
                        break;
                    }
                }
            }
            7 => {
                let max_sub = s.get(7, 0)[0].min(NR_FEAT - 1);
                for sub in 0..=max_sub {
                    push(leaf, sub, s.get(leaf, sub));
                }
            }
            0xb => {
                for sub in 0..NR_TOPO {
                    let r = s.get(leaf, sub);
                    push(leaf, sub, r);
                    if (r[2] >> 8) & 0xff == 0 {
                        break;
                    }
                }
            }
            0xd => {
                let (d0, d1) = (s.get(0xd, 0), s.get(0xd, 1));
                let mut xstates = (u64::from(d0[3] | d1[3]) << 32) | u64::from(d0[0] | d1[2]);
                push(leaf, 0, d0);
                push(leaf, 1, d1);
                xstates >>= 2;
                let mut sub = 2;
                while xstates != 0 && sub < NR_XSTATE {
                    push(leaf, sub, s.get(leaf, sub));
                    xstates >>= 1;
                    sub += 1;
                }
            }
            _ => push(leaf, XEN_CPUID_NO_SUBLEAF, s.get(leaf, 0)),
        }
    }
    // The hypervisor leaves' limits the toolstack may select (none).
    push(0x4000_0000, XEN_CPUID_NO_SUBLEAF, [0; 4]);
    push(0x4000_0100, XEN_CPUID_NO_SUBLEAF, [0; 4]);
    if s.max_extd != 0 {
        for leaf in 0x8000_0000..=s.max_extd {
            push(leaf, XEN_CPUID_NO_SUBLEAF, s.get(leaf, 0));
        }
    }
    out
}

/// `policy`'s MSRs, serialised in Xen's order.
pub fn msrs(policy: Policy) -> [MsrEntry; MAX_MSRS as usize] {
    let platform_info = match policy {
        Policy::Pv => PLATFORM_INFO_CPUID_FAULTING,
        Policy::Host => 0,
    };
    [
        MsrEntry { idx: MSR_INTEL_PLATFORM_INFO, flags: 0, val: platform_info },
        MsrEntry { idx: MSR_ARCH_CAPABILITIES, flags: 0, val: 0 },
    ]
}

/// Why a serialised policy is refused, as Xen's `x86_cpuid_copy_from_buffer`
/// and `x86_msr_copy_from_buffer` say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPolicy {
    /// A leaf outside the policy's arrays (`-ERANGE`): leaf, subleaf.
    Leaf(u32, u32),
    /// An MSR that is not part of a policy (`-ERANGE`), or one with flags
    /// set (`-EINVAL`): index, whether it was the flags.
    Msr(u32, bool),
}

/// Checks that every leaf lies within Xen 4.17's policy arrays.
pub fn check_leaves(leaves: &[CpuidLeaf]) -> Result<(), BadPolicy> {
    for l in leaves {
        let ok = match l.leaf {
            4 => l.subleaf < NR_CACHE,
            7 => l.subleaf < NR_FEAT,
            0xb => l.subleaf < NR_TOPO,
            0xd => l.subleaf < NR_XSTATE,
            0..=0xc => l.subleaf == XEN_CPUID_NO_SUBLEAF,
            0x4000_0000 | 0x4000_0100 => l.subleaf == XEN_CPUID_NO_SUBLEAF,
            x if (0x8000_0000..0x8000_0000 + NR_EXTD).contains(&x) => l.subleaf == XEN_CPUID_NO_SUBLEAF,
            _ => false,
        };
        if !ok {
            return Err(BadPolicy::Leaf(l.leaf, l.subleaf));
        }
    }
    Ok(())
}

/// Checks that every MSR is one a policy has, with no flags.
pub fn check_msrs(msrs: &[MsrEntry]) -> Result<(), BadPolicy> {
    for m in msrs {
        if m.flags != 0 {
            return Err(BadPolicy::Msr(m.idx, true));
        }
        if m.idx != MSR_INTEL_PLATFORM_INFO && m.idx != MSR_ARCH_CAPABILITIES {
            return Err(BadPolicy::Msr(m.idx, false));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Intel-like CPU: basic leaves up to 0x16, two cache levels, xstate
    /// components 0..=2, extended leaves up to 0x80000008.
    fn host(leaf: u32, subleaf: u32) -> [u32; 4] {
        match (leaf, subleaf) {
            (0, _) => [0x16, 1, 2, 3],
            (1, _) => [0x806ea, 0x800, 0xfffa_3203, 0x178b_fbff],
            (4, 0) | (4, 1) => [0x121, 0, 0, 0],
            (4, _) => [0; 4],
            (7, 0) => [0, 0x209, 0, 0],
            (0xb, 0) => [1, 1, 0x100, 0],
            (0xd, 0) => [0x7, 0x340, 0x340, 0],
            (0xd, 1) => [0x1, 0, 0, 0],
            (0x8000_0000, _) => [0x8000_0008, 0, 0, 0],
            (0x8000_0001, _) => [0, 0, 0x121, 0x2c10_0800],
            _ => [leaf, subleaf, 0, 0],
        }
    }

    #[test]
    fn leaves_follow_xens_serialisation() {
        let l = leaves(Policy::Host, &host);
        let ids: Vec<(u32, u32)> = l.iter().map(|l| (l.leaf, l.subleaf)).collect();
        let none = XEN_CPUID_NO_SUBLEAF;
        assert_eq!(ids[0], (0, none));
        assert_eq!(l[0].a, 0xd, "max leaf clipped to the policy's 0xd");
        let four: Vec<u32> = ids.iter().filter(|i| i.0 == 4).map(|i| i.1).collect();
        assert_eq!(four, [0, 1, 2], "cache subleaves up to and including the first of type 0");
        assert_eq!(ids.iter().filter(|i| i.0 == 7).count(), 1, "max_subleaf 0");
        assert_eq!(ids.iter().filter(|i| i.0 == 0xb).count(), 2);
        let d: Vec<u32> = ids.iter().filter(|i| i.0 == 0xd).map(|i| i.1).collect();
        assert_eq!(d, [0, 1, 2], "xstate subleaves up to the highest component");
        assert!(ids.contains(&(0x4000_0000, none)) && ids.contains(&(0x4000_0100, none)));
        assert_eq!(*ids.last().unwrap(), (0x8000_0008, none));
        assert!(l.len() as u32 <= MAX_LEAVES);
        assert_eq!(check_leaves(&l), Ok(()), "what we serialise we accept");
    }

    #[test]
    fn pv_policy_hides_what_pv_guests_cannot_use() {
        let pv = featureset(Policy::Pv, &host);
        let raw = featureset(Policy::Host, &host);
        assert_eq!(raw[0], 0x178b_fbff & crate::cpuid::KNOWN_FEATURES[0]);
        assert_eq!(pv[0] & (1 << 13), 0, "no PGE for PV");
        assert_ne!(pv[1] & (1 << 31), 0, "the hypervisor bit");
        assert_eq!(pv[11], 0, "0x80000021 is past the maximum: zero");
        assert_eq!(msrs(Policy::Pv)[0].val, 1 << 32, "CPUID faulting");
    }

    #[test]
    fn out_of_range_leaves_and_msrs_are_refused() {
        let leaf = |leaf, subleaf| CpuidLeaf { leaf, subleaf, a: 0, b: 0, c: 0, d: 0 };
        assert_eq!(check_leaves(&[leaf(0xe, XEN_CPUID_NO_SUBLEAF)]), Err(BadPolicy::Leaf(0xe, !0)));
        assert_eq!(check_leaves(&[leaf(4, 6)]), Err(BadPolicy::Leaf(4, 6)));
        assert_eq!(check_leaves(&[leaf(1, 0)]), Err(BadPolicy::Leaf(1, 0)), "a subleaf where there are none");
        assert_eq!(check_leaves(&[leaf(0x8000_0022, XEN_CPUID_NO_SUBLEAF)]), Err(BadPolicy::Leaf(0x8000_0022, !0)));
        assert_eq!(check_leaves(&[leaf(0x4000_0001, XEN_CPUID_NO_SUBLEAF)]), Err(BadPolicy::Leaf(0x4000_0001, !0)));
        let msr = |idx, flags| MsrEntry { idx, flags, val: 0 };
        assert_eq!(check_msrs(&[msr(0xce, 0), msr(0x10a, 0)]), Ok(()));
        assert_eq!(check_msrs(&[msr(0x10, 0)]), Err(BadPolicy::Msr(0x10, false)));
        assert_eq!(check_msrs(&[msr(0xce, 1)]), Err(BadPolicy::Msr(0xce, true)));
    }
}
