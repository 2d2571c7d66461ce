//! The PV console ring (`io/console.h`).

xen_consts! {
    "io/console.h";

}

xen_struct! {
    "io/console.h", "struct xencons_interface", 3088;
    /// `struct xencons_interface` (io/console.h).
    pub struct XenconsInterface {
        /// `in`
        in_: [u8; 1024] = "in" opaque,
        /// `out`
        out_: [u8; 2048] = "out" opaque,
        /// `in_cons`
        in_cons: u32 = "in_cons",
        /// `in_prod`
        in_prod: u32 = "in_prod",
        /// `out_cons`
        out_cons: u32 = "out_cons",
        /// `out_prod`
        out_prod: u32 = "out_prod",
    }
}

/// Every struct of this module, for the conformance test.
#[doc(hidden)]
pub const STRUCTS: &[crate::registry::StructLayout] = &[<XenconsInterface as crate::registry::Described>::LAYOUT];
