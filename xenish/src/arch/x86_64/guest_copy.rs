//! Direct access to guest virtual memory through the page tables loaded in
//! CR3, with a fault fixup: Xen's `copy_to_guest`/`copy_from_guest`
//! (`__copy_to_user` and its exception table), for the fast paths.
//!
//! [`copy`] moves bytes with `rep movsq`/`rep movsb` between a guest
//! virtual address and a hypervisor buffer. A page fault (or a general
//! protection fault) whose RIP lies in the copy's instructions does not
//! stop the hypervisor: [`fixup`] tells the trap handler to resume at the
//! routine's failure exit, which returns "faulted". Any other fault in the
//! hypervisor stays fatal.
//!
//! [`read`] and [`write`] are what [`DirectMap`](super::memory::DirectMap)
//! offers the portable core ([`crate::mm::MachineMemory::read_guest_direct`]).
//! They copy directly only when that reaches what
//! [`crate::guest_access::GuestMemory`]'s software walk would reach:
//!
//! - the range is wholly guest addresses (canonical, outside the
//!   hypervisor hole, in one half of the address space, no wrap), so the
//!   access never touches the hypervisor's own mappings and never takes
//!   a #GP;
//! - CR3 holds the very top-level table the caller names (with or
//!   without XPTI: the entry stubs load the vCPU's real L4 before any
//!   hypervisor code runs, see [`super::xpti`]; the hypervisor uses no
//!   global pages and no PCID, so every translation the TLB holds was
//!   made from this table since it was loaded);
//! - CR0.WP is set (boot sets it on every CPU, checked once in [`init`]),
//!   so a write honours a read-only guest mapping as the walk does.
//!
//! The one difference from the walk: the CPU does not ask for the user
//! bit on a supervisor access. It makes no difference here: the page-table
//! validation adds `_PAGE_USER` to every present entry it accepts (a
//! 64-bit PV kernel runs in ring 3, so every page it uses is a user page),
//! as Xen does, and Xen's own copies do not check the bit either. With
//! SMAP on, the copy sets EFLAGS.AC around the access (`stac`/`clac`), as
//! Xen's do. A fault only says "not this way": the caller then walks in
//! software, which decides the failure (so `-EFAULT`, a crash or a redo on
//! the slow path stay what they were).
//!
//! Other exceptions the copy could meet: none. The hypervisor runs with
//! interrupts off, TF and DF clear; no guest data breakpoint is armed in
//! the hardware (`set_debugreg` refuses enabling DR7, see
//! [`crate::hypercall::debugreg`]; arming them would need Xen's `do_debug`
//! treatment of a #DB taken in the hypervisor's guest copies); `#AC` is
//! never checked in ring 0. An NMI taken inside the `stac` window runs
//! with EFLAGS.AC set (the CPU does not clear it on delivery), which only
//! matters to code that touches user pages, and the NMI handler touches
//! none.

use core::sync::atomic::{AtomicU8, Ordering};

use super::cpu;
use crate::guest_access::is_guest_addr;
use crate::mm::Mfn;

/// The machine-address bits of CR3 (no PCID in use).
const CR3_ADDR: u64 = 0x000f_ffff_ffff_f000;
/// CR0.WP.
const CR0_WP: u64 = 1 << 16;
/// CR4.SMAP.
const CR4_SMAP: u64 = 1 << 21;

/// [`MODE`]: direct access is not used.
const OFF: u8 = 0;
/// [`MODE`]: direct access without `stac`/`clac` (no SMAP).
const PLAIN: u8 = 1;
/// [`MODE`]: direct access with `stac`/`clac` (SMAP on).
const SMAP: u8 = 2;

/// Whether and how direct access is used, set once by [`init`] on the boot
/// CPU (application processors copy its CR0 and CR4).
static MODE: AtomicU8 = AtomicU8::new(OFF);

core::arch::global_asm!(
    r#"
.pushsection .text.xenish_guest_copy, "ax"
.balign 16
/* xenish_guest_copy(dst = rdi, src = rsi, len = rdx) -> rax: 0 copied,
   1 a fault was taken (fixup). Without SMAP. */
.global xenish_guest_copy
xenish_guest_copy:
    mov rcx, rdx
    shr rcx, 3
.global xenish_guest_copy_start
xenish_guest_copy_start:
    rep movsq
    mov ecx, edx
    and ecx, 7
    rep movsb
    xor eax, eax
    ret
/* The same with EFLAGS.AC set around the access (SMAP on). */
.global xenish_guest_copy_smap
xenish_guest_copy_smap:
    mov rcx, rdx
    shr rcx, 3
    stac
    rep movsq
    mov ecx, edx
    and ecx, 7
    rep movsb
    clac
    xor eax, eax
    ret
.global xenish_guest_copy_end
xenish_guest_copy_end:
/* Where a fault in either routine resumes (fixup): one exit each, as
   clac is #UD on a CPU without SMAP. */
.global xenish_guest_copy_fault
xenish_guest_copy_fault:
    mov eax, 1
    ret
.global xenish_guest_copy_fault_smap
xenish_guest_copy_fault_smap:
    clac
    mov eax, 1
    ret
.popsection
"#
);

extern "C" {
    fn xenish_guest_copy(dst: *mut u8, src: *const u8, len: usize) -> u64;
    fn xenish_guest_copy_smap(dst: *mut u8, src: *const u8, len: usize) -> u64;
    static xenish_guest_copy_start: u8;
    static xenish_guest_copy_end: u8;
    static xenish_guest_copy_fault: u8;
    static xenish_guest_copy_fault_smap: u8;
}

/// Turns direct access on if CR0.WP is set (else every copy walks), with
/// `stac`/`clac` if CR4.SMAP is set. On the boot CPU, after CR4 is final
/// and before any guest runs.
pub fn init() {
    let mode = if cpu::read_cr0() & CR0_WP == 0 {
        OFF
    } else if cpu::read_cr4() & CR4_SMAP != 0 {
        SMAP
    } else {
        PLAIN
    };
    MODE.store(mode, Ordering::Relaxed);
}

/// Where a hypervisor-mode fault at `rip` resumes, if `rip` lies in the
/// copy's instructions: the failure exit of the routine it is in.
pub fn fixup(rip: u64) -> Option<u64> {
    // SAFETY: linker symbols; only their addresses are taken.
    let (start, smap, end, fault, fault_smap) = unsafe {
        (
            &xenish_guest_copy_start as *const u8 as u64,
            xenish_guest_copy_smap as *const () as u64,
            &xenish_guest_copy_end as *const u8 as u64,
            &xenish_guest_copy_fault as *const u8 as u64,
            &xenish_guest_copy_fault_smap as *const u8 as u64,
        )
    };
    if (start..smap).contains(&rip) {
        Some(fault)
    } else if (smap..end).contains(&rip) {
        Some(fault_smap)
    } else {
        None
    }
}

/// Whether `len` bytes at guest address `va` may be accessed directly
/// through the table `l4` (see the module's description).
#[inline(always)]
fn usable(l4: Mfn, va: u64, len: usize) -> Option<u8> {
    // The loaded table first: the one test that fails in the common case
    // (a Linux process's system call, whose bounce frame goes through the
    // kernel's table while the user table is loaded).
    if cpu::read_cr3() & CR3_ADDR != l4.addr() {
        return None;
    }
    let mode = MODE.load(Ordering::Relaxed);
    let last = va.checked_add((len as u64).checked_sub(1)?)?;
    let ok = mode != OFF && is_guest_addr(va) && is_guest_addr(last) && (va >> 63) == (last >> 63);
    ok.then_some(mode)
}

/// Copies `len` bytes from `src` to `dst` with the routine for `mode`;
/// whether no fault was taken.
///
/// # Safety
/// One of `src`, `dst` is a guest address `usable` accepted for `len`
/// bytes (a fault there is fixed up); the other is `len` bytes of a
/// hypervisor buffer the caller holds exclusively (for `dst`) or shared
/// (for `src`), which the guest cannot map (it is not guest memory).
#[inline(always)]
unsafe fn copy(mode: u8, dst: *mut u8, src: *const u8, len: usize) -> bool {
    // SAFETY: the caller's contract; the routine touches only the two
    // ranges and rax, rcx, rdx, rsi, rdi (the C ABI's scratch registers),
    // and returns with DF clear as found (the hypervisor runs with DF
    // clear) and AC clear.
    let r = unsafe {
        if mode == SMAP {
            xenish_guest_copy_smap(dst, src, len)
        } else {
            xenish_guest_copy(dst, src, len)
        }
    };
    r == 0
}

/// Copies guest memory at `va` into `buf` through the loaded table, if it
/// is `l4` and the access is allowed (see the module's description);
/// `false` (`buf` then holds anything) if not or if a fault was taken.
pub fn read(l4: Mfn, va: u64, buf: &mut [u8]) -> bool {
    let Some(mode) = usable(l4, va, buf.len()) else { return false };
    // SAFETY: `usable` accepted the guest range; `buf` is the caller's,
    // held exclusively for the call.
    unsafe { copy(mode, buf.as_mut_ptr(), va as *const u8, buf.len()) }
}

/// Copies `data` to guest memory at `va` through the loaded table, if it
/// is `l4` and the access is allowed; `false` if not or if a fault was
/// taken. Only within one page: a fault then leaves guest memory as it
/// was (a page's translation and rights are the same for all its bytes,
/// so the first byte faults or none does), as the walk's writes do.
pub fn write(l4: Mfn, va: u64, data: &[u8]) -> bool {
    let Some(mode) = usable(l4, va, data.len()) else { return false };
    if va >> 12 != (va + data.len() as u64 - 1) >> 12 {
        return false;
    }
    // SAFETY: `usable` accepted the guest range; `data` is the caller's,
    // only read.
    unsafe { copy(mode, va as *mut u8, data.as_ptr(), data.len()) }
}
