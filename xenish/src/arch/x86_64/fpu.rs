//! FPU/SSE/AVX state: enabling it for guests (CR4.OSFXSR, OSXMMEXCPT and,
//! where present, XSAVE with the x87/SSE/AVX components), and saving and
//! restoring a vCPU's state when the CPU switches between vCPUs.
//!
//! The hypervisor itself never touches FPU or vector registers (it is
//! built soft-float), so a vCPU's state stays live in the CPU from entry to
//! exit and only moves on a vCPU switch.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::cpu;

static USE_XSAVE: AtomicBool = AtomicBool::new(false);
static XCR0: AtomicU64 = AtomicU64::new(0);
static AREA_SIZE: AtomicUsize = AtomicUsize::new(512);

/// Alignment XSAVE needs (FXSAVE needs 16).
pub const AREA_ALIGN: usize = 64;

/// Bytes of a save area, as [`init`] found them.
pub fn area_size() -> usize {
    AREA_SIZE.load(Ordering::Relaxed)
}

/// Enables FXSR/SSE exceptions and, if the CPU has it, XSAVE (for x87 and
/// SSE), with x87 errors reported as #MF (CR0.NE, and MP so that fwait
/// honours TS), as the CR0 guests are shown says; returns the size of a
/// save area.
pub fn init() -> usize {
    let leaf1 = cpu::cpuid(1, 0);
    let has_xsave = leaf1.ecx & (1 << 26) != 0;
    // SAFETY: OSFXSR and OSXMMEXCPT exist on every x86_64 CPU; OSXSAVE is
    // set only when CPUID reports XSAVE.
    unsafe {
        let cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        asm!("mov cr0, {}", in(reg) cr0 | (1 << 1) | (1 << 5), options(nomem, nostack));
        let mut cr4 = cpu::read_cr4() | (1 << 9) | (1 << 10);
        if has_xsave {
            cr4 |= 1 << 18;
        }
        cpu::write_cr4(cr4);
    }
    if has_xsave {
        let supported = u64::from(cpu::cpuid(0xd, 0).eax);
        // x87 and SSE only: XCR0 is what guests see through XGETBV (which
        // ring 3 may execute), and their kernels neither see OSXSAVE nor
        // can set XCR0 here, so they save user state with FXSAVE. Offering
        // AVX in XCR0 made user code (glibc's string functions pick AVX2 from
        // CPUID and XGETBV) keep YMM state its kernel never saves: a Linux
        // process switch then corrupted it. Xen gives a PV guest the XCR0
        // its kernel set with (emulated) XSETBV, x87|SSE until it does.
        let xcr0 = supported & 0b011;
        // SAFETY: XSETBV with a subset of the supported components, x87 set.
        unsafe {
            asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nomem, nostack))
        };
        let size = cpu::cpuid(0xd, 0).ebx as usize; // for the enabled XCR0
        USE_XSAVE.store(true, Ordering::Relaxed);
        XCR0.store(xcr0, Ordering::Relaxed);
        AREA_SIZE.store(size, Ordering::Relaxed);
    }
    AREA_SIZE.load(Ordering::Relaxed)
}

/// Sets XCR0 on an application processor to what [`init`] chose on the
/// boot CPU (its CR4 already has the boot CPU's bits, OSXSAVE included).
pub fn init_secondary() {
    if USE_XSAVE.load(Ordering::Relaxed) {
        let xcr0 = XCR0.load(Ordering::Relaxed);
        // SAFETY: the same XCR0 the boot CPU took, which the identical
        // application processors support; CR4.OSXSAVE is set.
        unsafe {
            asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nomem, nostack))
        };
    }
}

/// The 64-byte-aligned start of a save area inside `buf`.
fn aligned(buf: &mut [u8]) -> Option<*mut u8> {
    let size = AREA_SIZE.load(Ordering::Relaxed);
    let start = buf.as_mut_ptr().align_offset(AREA_ALIGN);
    (start.checked_add(size)? <= buf.len()).then(|| buf[start..].as_mut_ptr())
}

/// Saves the CPU's FPU state into `buf` (sized by the portable core from
/// [`init`]'s result plus alignment slack).
pub fn save(buf: &mut [u8]) {
    let Some(area) = aligned(buf) else { return };
    // SAFETY: `area` is 64-byte aligned with room for the state; CR0.TS is
    // clear (callers clts first), so the instruction cannot fault.
    unsafe {
        if USE_XSAVE.load(Ordering::Relaxed) {
            let m = XCR0.load(Ordering::Relaxed);
            asm!("xsave64 [{}]", in(reg) area, in("eax") m as u32, in("edx") (m >> 32) as u32, options(nostack));
        } else {
            asm!("fxsave64 [{}]", in(reg) area, options(nostack));
        }
    }
}

/// Loads FPU state from `buf`.
pub fn restore(buf: &mut [u8]) {
    let Some(area) = aligned(buf) else { return };
    // SAFETY: as for `save`; the area holds a state saved by `save` or
    // prepared by `init_area` (valid MXCSR, empty XSAVE header).
    unsafe {
        if USE_XSAVE.load(Ordering::Relaxed) {
            let m = XCR0.load(Ordering::Relaxed);
            asm!("xrstor64 [{}]", in(reg) area, in("eax") m as u32, in("edx") (m >> 32) as u32, options(nostack));
        } else {
            asm!("fxrstor64 [{}]", in(reg) area, options(nostack));
        }
    }
}

/// Clears CR0.TS so the hypervisor can save and load FPU state.
pub fn clts() {
    // SAFETY: only clears the task-switched flag.
    unsafe { asm!("clts", options(nomem, nostack)) };
}

/// Sets CR0.TS: the next FPU instruction raises #NM (the guest's virtual TS).
pub fn stts() {
    // SAFETY: sets CR0.TS; the hypervisor itself never uses the FPU.
    unsafe {
        let cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        asm!("mov cr0, {}", in(reg) cr0 | (1 << 3), options(nomem, nostack));
    }
}
