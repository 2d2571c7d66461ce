//! CPUID as a 64-bit PV guest sees it: the host's leaves with what a PV
//! guest cannot use hidden, plus Xen's hypervisor leaves at 0x40000000.

/// `XenVMMXenVMM` in ebx, ecx, edx order.
pub const XEN_SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
/// First hypervisor leaf.
pub const XEN_CPUID_BASE: u32 = 0x4000_0000;
/// Highest hypervisor leaf Xen 4.17 reports (`XEN_CPUID_MAX_NUM_LEAVES` = 5).
pub const XEN_CPUID_MAX: u32 = XEN_CPUID_BASE + 5;

/// Leaf 1 ecx bits hidden from PV guests: MONITOR, VMX, SMX. (OSXSAVE
/// passes through: the hypervisor enables XSAVE and owns XCR0.)
const LEAF1_ECX_HIDE: u32 = (1 << 3) | (1 << 5) | (1 << 6);
/// Leaf 1 ecx bit 31: "running on a hypervisor".
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 7 ebx bits hidden: SMEP, SMAP, and the guest cannot use INVPCID.
const LEAF7_EBX_HIDE: u32 = (1 << 7) | (1 << 10) | (1 << 20);

/// The CPUID result a PV guest gets for `leaf`/`subleaf`, given the host's.
pub fn pv_cpuid(leaf: u32, subleaf: u32, host: &dyn Fn(u32, u32) -> [u32; 4]) -> [u32; 4] {
    match leaf {
        XEN_CPUID_BASE => [XEN_CPUID_MAX, XEN_SIGNATURE[0], XEN_SIGNATURE[1], XEN_SIGNATURE[2]],
        // Xen version 4.17.
        0x4000_0001 => [(4 << 16) | 17, 0, 0, 0],
        // One hypercall page; the hypercall-page MSR is 0x40000000.
        0x4000_0002 => [1, 0x4000_0000, 0, 0],
        // Time, HVM and PV leaves: nothing to advertise; other hypervisor
        // leaves are absent.
        0x4000_0003..=0x4fff_ffff => [0; 4],
        1 => {
            let [a, b, c, d] = host(1, 0);
            [a, b, (c & !LEAF1_ECX_HIDE) | LEAF1_ECX_HYPERVISOR, d]
        }
        7 if subleaf == 0 => {
            let [a, b, c, d] = host(7, 0);
            [a, b & !LEAF7_EBX_HIDE, c, d]
        }
        _ => host(leaf, subleaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(leaf: u32, _sub: u32) -> [u32; 4] {
        [leaf, !0, !0, !0]
    }

    #[test]
    fn xen_leaves_and_masking() {
        let sig = pv_cpuid(0x4000_0000, 0, &host);
        let bytes: Vec<u8> = sig[1..].iter().flat_map(|r| r.to_le_bytes()).collect();
        assert_eq!(&bytes, b"XenVMMXenVMM");
        assert_eq!(sig[0], 0x4000_0005);
        assert_eq!(pv_cpuid(0x4000_0001, 0, &host)[0], 0x0004_0011);
        assert_eq!(pv_cpuid(0x4000_0002, 0, &host), [1, 0x4000_0000, 0, 0]);
        let l1 = pv_cpuid(1, 0, &host);
        assert_eq!(l1[2] & (1 << 5), 0);
        assert_ne!(l1[2] & (1 << 31), 0);
        assert_eq!(pv_cpuid(7, 0, &host)[1] & (1 << 7), 0);
        assert_eq!(pv_cpuid(0x8000_0001, 0, &host), host(0x8000_0001, 0));
    }
}
