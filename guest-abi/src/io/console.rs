//! The PV console ring (`io/console.h`): two byte rings in one page,
//! `in` (backend to guest) and `out` (guest to backend), with free-running
//! `u32` indices masked by the ring size (`MASK_XENCONS_IDX`).

xen_consts! {
    "io/console.h";
    XENCONS_IN_SIZE: u32 = 1024, "sizeof(((struct xencons_interface *)0)->in)";
    XENCONS_OUT_SIZE: u32 = 2048, "sizeof(((struct xencons_interface *)0)->out)";
}

xen_struct! {
    "io/console.h", "struct xencons_interface", 3088;
    /// `struct xencons_interface` (io/console.h).
    pub struct XenconsInterface {
        /// `in`
        in_: [u8; 1024] = "in" chars,
        /// `out`
        out_: [u8; 2048] = "out" chars,
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

xen_structs!(XenconsInterface,);

impl XenconsInterface {
    /// `MASK_XENCONS_IDX` for the `in` ring.
    pub const fn mask_in(idx: u32) -> usize {
        (idx & (XENCONS_IN_SIZE - 1)) as usize
    }

    /// `MASK_XENCONS_IDX` for the `out` ring.
    pub const fn mask_out(idx: u32) -> usize {
        (idx & (XENCONS_OUT_SIZE - 1)) as usize
    }
}
