//! Where everything of a new PV domain goes: libxc's layout, from the
//! `pv-layout` crate the toolstack's builder in dom0 uses too, so a domain
//! built at boot and one built by `xl create` are laid out by one tested
//! implementation. This module only maps its errors to the builder's.

use super::BuildError;

pub use pv_layout::{Layout, LayoutInput, TableCounts};

/// Computes the layout, or says why the domain cannot be laid out.
pub fn compute(input: &LayoutInput) -> Result<Layout, BuildError> {
    pv_layout::compute(input).map_err(|e| match e {
        pv_layout::LayoutError::TooSmall { needed_pages, nr_pages } => BuildError::TooSmall { needed_pages, nr_pages },
        pv_layout::LayoutError::BadLayout | pv_layout::LayoutError::BadAddress => BuildError::BadLayout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_builders() {
        let mut input = LayoutInput {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kstart: 0xffff_ffff_8100_0000,
            virt_kend: 0xffff_ffff_84a0_0000,
            nr_pages: 0x4000,
            initrd_len: None,
            initrd_unmapped: false,
            p2m_base: None,
            store: false,
            console: false,
        };
        assert!(matches!(compute(&input), Err(BuildError::TooSmall { .. })));
        input.virt_kstart = input.virt_base - 0x1000;
        assert_eq!(compute(&input), Err(BuildError::BadLayout));
    }
}
