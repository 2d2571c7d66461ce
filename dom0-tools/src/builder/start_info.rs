//! The domU's `start_info` page as libxc writes it.
//!
//! Layout (Xen 4.17 `public/xen.h`, 1168 bytes): magic, `nr_pages`,
//! `shared_info` (a machine address), `flags` (0, plus
//! `SIF_MOD_START_PFN` for an unmapped initrd), the xenstore and console
//! MFNs and ports, `pt_base`, `nr_pt_frames`, `mfn_list`, `mod_start`,
//! `mod_len`, `cmd_line[1024]`, `first_p2m_pfn`, `nr_p2m_frames`.
//! Semantics: `tools/libs/guest/xg_dom_x86.c start_info_x86_64`.

use pv_layout::{Layout, PAGE_SIZE};

/// `SIF_MOD_START_PFN`: `mod_start` is a pfn.
const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `sizeof(start_info_t)`.
pub const START_INFO_SIZE: usize = 1168;
/// `MAX_GUEST_CMDLINE`.
const MAX_GUEST_CMDLINE: usize = 1024;

/// What start_info says beyond the layout.
#[derive(Clone, Copy, Debug)]
pub struct StartInfoArgs<'a> {
    /// Pages the domain has.
    pub nr_pages: u64,
    /// Machine address of shared_info.
    pub shared_info_maddr: u64,
    /// The xenstore page's MFN and port.
    pub store: (u64, u32),
    /// The console ring's MFN and port.
    pub console: (u64, u32),
    /// Initrd length in bytes (0 without).
    pub initrd_len: u64,
    /// The kernel command line.
    pub cmdline: &'a [u8],
    /// PAE_MODE=yes: the magic gets a `p`.
    pub pae: bool,
}

/// The start_info bytes for `l` and `a`.
pub fn start_info(l: &Layout, a: &StartInfoArgs) -> [u8; START_INFO_SIZE] {
    let mut si = [0u8; START_INFO_SIZE];
    let magic: &[u8] = if a.pae { b"xen-3.0-x86_64p" } else { b"xen-3.0-x86_64" };
    si[..magic.len()].copy_from_slice(magic);
    let mut put = |off: usize, v: u64| si[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(0x20, a.nr_pages);
    put(0x28, a.shared_info_maddr);
    put(0x38, a.store.0);
    put(0x40, a.store.1.into());
    put(0x48, a.console.0);
    put(0x50, a.console.1.into());
    put(0x58, l.va(l.pt_pfn));
    put(0x60, l.nr_pt_frames());
    put(0x68, l.mfn_list_va());
    let (first_p2m, nr_p2m) = l.p2m_segment();
    put(0x480, first_p2m);
    put(0x488, nr_p2m);
    let mut flags = 0u32;
    if let Some((pfn, pages)) = l.initrd.filter(|_| a.initrd_len > 0) {
        if l.initrd_unmapped {
            flags |= SIF_MOD_START_PFN;
            // libxc gives the page-rounded length for an unmapped initrd.
            put(0x70, pfn);
            put(0x78, pages * PAGE_SIZE);
        } else {
            put(0x70, l.va(pfn));
            put(0x78, a.initrd_len);
        }
    }
    si[0x30..0x34].copy_from_slice(&flags.to_le_bytes());
    let cmd = a.cmdline.get(..a.cmdline.len().min(MAX_GUEST_CMDLINE - 1)).unwrap_or_default();
    si[0x80..0x80 + cmd.len()].copy_from_slice(cmd);
    si
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_layout::{compute, LayoutInput};

    #[test]
    fn fields_sit_at_xen_s_offsets() {
        let l = compute(&LayoutInput {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kstart: 0xffff_ffff_8100_0000,
            virt_kend: 0xffff_ffff_84a0_0000,
            nr_pages: 0x20000,
            initrd_len: Some(5000),
            initrd_unmapped: true,
            p2m_base: Some(0x80_0000_0000),
            store: true,
            console: true,
        })
        .unwrap();
        let long = vec![b'x'; 2000];
        let a = StartInfoArgs {
            nr_pages: 0x20000,
            shared_info_maddr: 0x1234_5000,
            store: (0x111, 1),
            console: (0x222, 2),
            initrd_len: 5000,
            cmdline: &long,
            pae: true,
        };
        let si = start_info(&l, &a);
        let at = |o: usize| u64::from_le_bytes(si[o..o + 8].try_into().unwrap());
        assert_eq!(&si[..16], b"xen-3.0-x86_64p\0");
        assert_eq!(
            (at(0x20), at(0x28), at(0x38), at(0x40), at(0x48), at(0x50)),
            (0x20000, 0x1234_5000, 0x111, 1, 0x222, 2)
        );
        assert_eq!(at(0x58), 0xffff_ffff_84a0_3000);
        assert_eq!(at(0x60), 41);
        assert_eq!(at(0x68), 0x80_0000_0000);
        assert_eq!((at(0x70), at(0x78)), (0x4c00, 8192));
        assert_eq!(si[0x30], 8, "SIF_MOD_START_PFN");
        assert_eq!(si[0x80 + 1022], b'x');
        assert_eq!(si[0x80 + 1023], 0, "the command line stays NUL-terminated");
        assert_eq!(at(0x480), 0x4c02);
        assert_eq!(at(0x488), 259);
    }
}
