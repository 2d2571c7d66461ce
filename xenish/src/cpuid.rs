//! CPUID as a 64-bit PV guest sees it: the host's leaves with what a PV
//! guest cannot use hidden, plus Xen's hypervisor leaves at 0x40000000.

/// `XenVMMXenVMM` in ebx, ecx, edx order.
pub const XEN_SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
/// First hypervisor leaf.
pub const XEN_CPUID_BASE: u32 = 0x4000_0000;
/// Highest hypervisor leaf Xen 4.17 reports (`XEN_CPUID_MAX_NUM_LEAVES` = 5).
pub const XEN_CPUID_MAX: u32 = XEN_CPUID_BASE + 5;

/// Leaf 1 ecx bit 31: "running on a hypervisor".
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;

/// The features a PV guest may see by default, per featureset word: the
/// bits Xen 4.17's `cpufeatureset.h` marks `A` (all guests, available by
/// default). Everything else is hidden, notably PSE, PSE36, PGE and 1 GiB
/// pages (no superpages for PV), MTRR, VMX, MONITOR, SMEP/SMAP and
/// INVPCID. Checked against Xen's header by a test.
pub const PV_FEATURES: [u32; 16] = [
    0x1fc9_cbf5, // 0: 1.edx
    0xf6d8_3203, // 1: 1.ecx
    0xea50_0800, // 2: 0x80000001.edx
    0x0421_09e3, // 3: 0x80000001.ecx
    0x0000_0007, // 4: 0xd:1.eax
    0xfdaf_0b29, // 5: 7:0.ebx
    0x0240_5f43, // 6: 7:0.ecx
    0x0000_0000, // 7: 0x80000007.edx
    0x6400_1005, // 8: 0x80000008.ebx
    0xac00_441c, // 9: 7:0.edx
    0x0000_1c30, // 10: 7:1.eax
    0x7800_0064, // 11: 0x80000021.eax
    0x0000_0000, // 12: 7:1.ebx
    0x0000_0021, // 13: 7:2.edx
    0x0000_0000, // 14: 7:1.ecx
    0x0000_0000, // 15: 7:1.edx
];

/// Every feature Xen 4.17.7 knows, per featureset word (words 0..=18,
/// any attribute in `cpufeatureset.h`): Xen keeps only these in its view
/// of the boot CPU (`boot_cpu_data.x86_capability`, which `physinfo`
/// reports as `hw_cap`). Checked against Xen's header by a test.
pub const KNOWN_FEATURES: [u32; 19] = [
    0xbfeb_fbff,
    0xfffe_f3ff,
    0xee50_0800,
    0x2469_bfff,
    0x0000_000f,
    0xffbf_ffff,
    0x3a40_5fdf,
    0x0000_0780,
    0x779f_d205,
    0xfc91_ef1c,
    0x0000_1c30,
    0xf800_0164,
    0x0000_0001,
    0x0000_0037,
    0x0000_0000,
    0x0004_0000,
    0x1fbe_ffff,
    0x4000_0000,
    0x0000_0006,
];

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
            [a, b, (c & PV_FEATURES[1]) | LEAF1_ECX_HYPERVISOR, d & PV_FEATURES[0]]
        }
        7 => {
            let [a, b, c, d] = host(7, subleaf);
            match subleaf {
                0 => [a, b & PV_FEATURES[5], c & PV_FEATURES[6], d & PV_FEATURES[9]],
                1 => [a & PV_FEATURES[10], b & PV_FEATURES[12], c & PV_FEATURES[14], d & PV_FEATURES[15]],
                2 => [a, b, c, d & PV_FEATURES[13]],
                _ => [a, b, c, d],
            }
        }
        0xd if subleaf == 1 => {
            let [a, b, c, d] = host(0xd, 1);
            [a & PV_FEATURES[4], b, c, d]
        }
        0x8000_0001 => {
            let [a, b, c, d] = host(leaf, 0);
            [a, b, c & PV_FEATURES[3], d & PV_FEATURES[2]]
        }
        0x8000_0007 => {
            let [a, b, c, d] = host(leaf, 0);
            [a, b, c, d & PV_FEATURES[7]]
        }
        0x8000_0008 => {
            let [a, b, c, d] = host(leaf, 0);
            [a, b & PV_FEATURES[8], c, d]
        }
        0x8000_0021 => {
            let [a, b, c, d] = host(leaf, 0);
            [a & PV_FEATURES[11], b, c, d]
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
        assert_eq!(pv_cpuid(7, 0, &host)[1] & (1 << 7), 0, "SMEP");
        assert_eq!(l1[3] & ((1 << 3) | (1 << 13) | (1 << 17)), 0, "PSE, PGE, PSE36: no superpages");
        assert_eq!(pv_cpuid(0x8000_0001, 0, &host)[3] & (1 << 26), 0, "no 1 GiB pages");
        assert_ne!(pv_cpuid(0x8000_0001, 0, &host)[3] & (1 << 29), 0, "long mode");
    }

    /// The masks are the `A` features of Xen's own `cpufeatureset.h`
    /// (Debian's libxen-dev, which CI installs).
    #[test]
    fn pv_features_are_xens() {
        let path = "/usr/include/xen/arch-x86/cpufeatureset.h";
        let Ok(text) = std::fs::read_to_string(path) else {
            panic!("{path} is missing: install it with `apt-get install libxen-dev`");
        };
        let mut words = [0u32; 16];
        for line in text.lines().filter_map(|l| l.strip_prefix("XEN_CPUFEATURE(")) {
            let Some((pos, rest)) = line.split_once(')').and_then(|(a, r)| Some((a.split_once(',')?.1, r))) else {
                continue;
            };
            let Some((w, b)) = pos.trim().split_once("*32+") else { continue };
            let (w, b): (usize, u32) = (w.trim().parse().unwrap(), b.trim().parse().unwrap());
            let attrs = rest.trim_start().strip_prefix("/*").unwrap_or("").split(' ').next().unwrap_or("");
            if w < 16 && attrs.contains('A') {
                words[w] |= 1 << b;
            }
        }
        assert_eq!(words, PV_FEATURES);
    }

    #[test]
    fn known_features_are_xens() {
        let path = "/usr/include/xen/arch-x86/cpufeatureset.h";
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|_| panic!("{path} is missing: apt-get install libxen-dev"));
        let mut words = [0u32; 19];
        for line in text.lines().filter_map(|l| l.strip_prefix("XEN_CPUFEATURE(")) {
            let Some(pos) = line.split_once(')').and_then(|(a, _)| Some(a.split_once(',')?.1)) else { continue };
            let Some((w, b)) = pos.trim().split_once("*32+") else { continue };
            let bit = w.trim().parse::<usize>().unwrap() * 32 + b.trim().parse::<usize>().unwrap();
            words[bit / 32] |= 1 << (bit % 32);
        }
        assert_eq!(words, KNOWN_FEATURES);
    }
}
