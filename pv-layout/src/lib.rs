//! libxc's x86_64 PV domain layout, as pure arithmetic.
//!
//! Where everything of a new PV domain goes: one contiguous virtual region
//! from `virt_base` maps pfn N at `virt_base + N * 4 KiB`, starting at
//! pfn 0, holding in this order the kernel, a mapped initrd, the p2m list,
//! start_info, the xenstore and console pages, the page tables (L4, L3s,
//! L2s, L1s), the boot stack, and padding to a 4 MiB boundary with at
//! least 512 KiB of slack. An initrd the kernel lets stay unmapped
//! (`MOD_START_PFN`) and a p2m list the kernel maps elsewhere (`INIT_P2M`)
//! follow, outside the mapping.
//!
//! This crate owns the *decisions* (which pfn holds what, which page-table
//! entry says what); writing them into memory is the caller's: the
//! hypervisor's boot-time builder writes machine frames directly, the
//! toolstack's builder writes through foreign mappings. Both use this one
//! implementation, tested once, here.
//!
//! - [`layout`]: [`compute`] turns a [`LayoutInput`] into a [`Layout`];
//! - [`pagetable`]: the initial page tables' entries ([`for_each_entry`]),
//!   their frames and levels ([`tables`]), and the address checks
//!   ([`check_addresses`]).
//!
//! Semantics: Xen 4.17 `tools/libs/guest/xg_dom_core.c`
//! (`xc_dom_build_image`, `xc_dom_alloc_segment`) and `xg_dom_x86.c`
//! (`count_pgtables`, `alloc_pgtables_x86_64`, `setup_pgtables_x86_64`),
//! and the start-of-day layout comment of `public/xen.h`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod layout;
pub mod pagetable;

pub use layout::{compute, Layout, LayoutError, LayoutInput, TableCounts, PAGE_SIZE};
pub use pagetable::{check_addresses, for_each_entry, tables, PtProt};
