//! A PV guest's own LDT: it writes a data descriptor into a page of its
//! memory, maps the page read-only, installs it with `MMUEXT_SET_LDT`,
//! loads %fs with the LDT selector (TI = 1, RPL 3) and reads through it at
//! the descriptor's base; changes the base with `update_descriptor` and
//! reads again; sees the page cannot be mapped writable while it is an
//! LDT page; then goes back to no LDT, after which the page is plain
//! writable memory again. Bad arguments are refused with Xen's errno. A
//! wrong result crashes it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;

    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{MmuextOp, StartInfo, DOMID_SELF, MMUEXT_SET_LDT, UVMF_INVLPG};
    use guest_abi::XenError;
    use guest_rt::println;

    /// Where the builder maps pfn 0 (the test guests' VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// P | RW | A | D; P | A (read-only).
    const RW: u64 = 0x63;
    const RO: u64 = 0x21;
    /// LDT entry 1, TI = 1, RPL 3.
    const SELECTOR: u16 = (1 << 3) | 4 | 3;

    #[repr(C, align(4096))]
    struct Page([u64; 512]);
    /// The LDT page.
    static mut LDT: Page = Page([0; 512]);
    /// What is read through %fs.
    static mut DATA: Page = Page([0; 512]);

    fn fail(what: &str) -> ! {
        println!("ldt: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    fn check(ok: bool, what: &str) {
        if !ok {
            fail(what);
        }
        println!("ldt: ok: {what}");
    }

    fn refused(r: Result<(), XenError>, want: XenError, what: &str) {
        if r != Err(want) {
            println!("ldt: {what}: got {r:?}, wanted {want:?}");
            fail(what);
        }
        println!("ldt: ok: refused: {what}: {want:?}");
    }

    /// A flat, writable 32-bit data segment at `base` (DPL 0: the
    /// hypervisor raises it to 3).
    fn data_descriptor(base: u32) -> u64 {
        let base = u64::from(base);
        0x00cf_9200_0000_ffff | (base & 0xff_ffff) << 16 | (base >> 24) << 56
    }

    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: the builder's p2m list covers every pfn of the domain.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    fn set_ldt(va: u64, ents: u64) -> Result<(), XenError> {
        // SAFETY: the LDT holds only this test's descriptor; %fs is the
        // only register that ever holds one of its selectors.
        unsafe { hypercall::mmuext_op(&[MmuextOp::new(MMUEXT_SET_LDT, va, ents)], DOMID_SELF) }.map(drop)
    }

    fn remap(va: u64, pte: u64) -> Result<(), XenError> {
        hypercall::update_va_mapping(va, pte, u64::from(UVMF_INVLPG))
    }

    fn load_fs(sel: u16) {
        // SAFETY: %fs is not used by this kernel; the selector is null or
        // one of its LDT's data segments.
        unsafe { asm!("mov fs, {0:x}", in(reg) sel, options(nostack, preserves_flags)) };
    }

    /// Reads 8 bytes at `off` in the %fs segment.
    fn read_fs(off: u64) -> u64 {
        let v: u64;
        // SAFETY: %fs's base plus `off` is DATA's address (checked by the
        // caller's arithmetic), mapped and readable.
        unsafe { asm!("mov {0}, qword ptr fs:[{1}]", out(reg) v, in(reg) off, options(nostack, readonly)) };
        v
    }

    fn main(si: &'static StartInfo) -> ! {
        let ldt_va = core::ptr::addr_of!(LDT) as u64;
        let data_va = core::ptr::addr_of!(DATA) as u64;
        let ldt_mfn = mfn_of(si, ldt_va);
        // SAFETY: single-threaded; the page is still mapped writable.
        unsafe {
            (*core::ptr::addr_of_mut!(DATA)).0[0] = 0x1d7_da7a;
            (*core::ptr::addr_of_mut!(LDT)).0[1] = data_descriptor(0x1000);
        }
        check(remap(ldt_va, (ldt_mfn << 12) | RO).is_ok(), "the LDT page made read-only");
        refused(set_ldt(ldt_va + 8, 2), XenError::Einval, "a misaligned LDT");
        refused(set_ldt(ldt_va, 8193), XenError::Einval, "an LDT of 8193 entries");
        refused(set_ldt(0xffff_8000_0000_0000, 2), XenError::Einval, "an LDT in the hypervisor's hole");
        check(set_ldt(ldt_va, 2).is_ok(), "install an LDT of two entries");
        load_fs(SELECTOR);
        check(read_fs(data_va - 0x1000) == 0x1d7_da7a, "%fs from the LDT reads at the descriptor's base");
        let ma = (ldt_mfn << 12) + 8;
        // SAFETY: the new descriptor is the same segment at another base.
        let updated = unsafe { hypercall::update_descriptor(ma, data_descriptor(0x2000)) };
        check(updated.is_ok(), "update_descriptor on the LDT page");
        load_fs(SELECTOR);
        check(read_fs(data_va - 0x2000) == 0x1d7_da7a, "%fs reloaded reads at the new base");
        refused(remap(ldt_va, (ldt_mfn << 12) | RW), XenError::Ebusy, "mapping an LDT page writable");
        load_fs(0);
        check(set_ldt(0, 0).is_ok(), "back to no LDT");
        check(remap(ldt_va, (ldt_mfn << 12) | RW).is_ok(), "the former LDT page maps writable again");
        println!("ldt: done");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
