//! The PV MMU's frame table from a guest: a fresh 4-level address space
//! built, linked with `mmu_update`, pinned and switched to, the attacks Xen
//! refuses (each with its errno, memory still working after each), and the
//! teardown that leaves the tables' frames plain writable memory again,
//! and an `XENMEM_exchange` for a contiguous extent below 4 GiB.

use tests::{Boot, Exit};

#[test]
fn a_guest_builds_pins_and_switches_to_new_page_tables_and_is_refused_what_xen_refuses() {
    // With XPTI forced on: the L4 the guest switches to, and the entries
    // it writes into the running L4 (the recursive slot it then reads
    // through), must reach the CPU's root table.
    let out = Boot::new().cmdline("dom0_mem=64M xpti=on").guest("mmu", "mmu").run();
    out.expect_line("XPTI (64-bit PV only): Dom0 enabled");
    out.expect_line("(d0) mmu: ok: link the L1 into the L2 (validates it)")
        .expect_line("(d0) mmu: ok: pin the new L4 (a copy of the current one)")
        .expect_line("(d0) mmu: ok: switch to the new L4")
        .expect_line("(d0) mmu: ok: cr3 is the new L4")
        .expect_line("(d0) mmu: ok: running on the new L4: a write through the new mapping is seen")
        .expect_line("(d0) mmu: ok: refused: mapping a frame not owned: Ebusy")
        .expect_line("(d0) mmu: ok: refused: mapping an own L1 writable: Ebusy")
        .expect_line("(d0) mmu: ok: refused: mapping the running L4 writable: Ebusy")
        .expect_line("(d0) mmu: ok: refused: clearing an L4 hypervisor slot: Einval")
        .expect_line("(d0) mmu: ok: refused: writing an L4 hypervisor slot: Einval")
        .expect_line("(d0) mmu: ok: refused: pinning a frame mapped writable: Einval")
        .expect_line("(d0) mmu: ok: refused: unpinning a linked, unpinned L1: Einval")
        .expect_line("(d0) mmu: ok: refused: retyping an L1 in use as an L2: Einval")
        .expect_line("(d0) mmu: ok: refused: clearing an L2 in use: Einval")
        .expect_line("(d0) mmu: ok: refused: pinning a pinned L4: Einval")
        .expect_line("(d0) mmu: ok: refused: an L2 superpage (PSE): Einval")
        .expect_line("(d0) mmu: ok: refused: a writable linear L4 entry: Einval")
        .expect_line("(d0) mmu: ok: refused: an L2 naming an L3: Einval")
        .expect_line("(d0) mmu: ok: the L4 reads through its recursive slot")
        .expect_line("(d0) mmu: ok: refused: remapping through the recursive slot: Einval")
        .expect_line("(d0) mmu: ok: mmu_update to plain memory writes it")
        .expect_line("(d0) mmu: ok: refused: an entry of a frame not its own: Einval")
        .expect_line("(d0) mmu: ok: switch back to the builder's L4")
        .expect_line("(d0) mmu: ok: a former table page maps writable again (its counts are back to zero)")
        .expect_line("(d0) mmu: ok: unpin the builder's L4 (Linux does)")
        .expect_line("(d0) mmu: ok: refused: exchanging a mapped frame: Einval")
        .expect_line("(d0) mmu: ok: exchange two frames for one contiguous extent below 4 GiB")
        .expect_line("(d0) mmu: ok: the extent is aligned, below 4 GiB, in the M2P at its pfns")
        .expect_line("(d0) mmu: ok: the reservation is the same")
        .expect_line("(d0) mmu: ok: each frame holds what was written to it")
        .expect_line("(d0) mmu: ok: the old frames are no longer its own (decrease_reservation finds none)")
        .expect_line("(d0) mmu: done")
        .expect_line("xenish: d0 shut down: poweroff")
        .expect_no("FAILED")
        .expect_no("xenish: PANIC")
        .expect_exit(Exit::DebugExit(0));
}

#[test]
fn a_guest_reads_through_a_segment_of_its_own_ldt() {
    let out = Boot::new().cmdline("dom0_mem=64M").guest("ldt", "ldt").run();
    out.expect_line("(d0) ldt: ok: refused: a misaligned LDT: Einval")
        .expect_line("(d0) ldt: ok: refused: an LDT of 8193 entries: Einval")
        .expect_line("(d0) ldt: ok: refused: an LDT in the hypervisor's hole: Einval")
        .expect_line("(d0) ldt: ok: install an LDT of two entries")
        .expect_line("(d0) ldt: ok: %fs from the LDT reads at the descriptor's base")
        .expect_line("(d0) ldt: ok: update_descriptor on the LDT page")
        .expect_line("(d0) ldt: ok: %fs reloaded reads at the new base")
        .expect_line("(d0) ldt: ok: refused: mapping an LDT page writable: Ebusy")
        .expect_line("(d0) ldt: ok: back to no LDT")
        .expect_line("(d0) ldt: ok: the former LDT page maps writable again")
        .expect_line("(d0) ldt: done")
        .expect_line("xenish: d0 shut down: poweroff")
        .expect_no("FAILED")
        .expect_no("xenish: PANIC")
        .expect_exit(Exit::DebugExit(0));
}
