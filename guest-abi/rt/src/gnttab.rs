//! The kernel's own grant table (v1): offering its frames to another
//! domain and taking them back.
//!
//! [`init`] asks Xen for the table's frames (`GNTTABOP_setup_table`) and
//! maps them into a static window. [`grant`] fills a free entry — `domid`
//! and `frame` first, then `flags` with a release store, as Xen requires;
//! [`end`] revokes one with a compare-and-swap of `flags` to 0 that fails
//! while Xen has set `GTF_reading`/`GTF_writing` (the grantee still maps
//! or copies it), in which case the entry is left alone (leaked), as
//! Linux's `gnttab_end_foreign_access_ref` does. Entries 0–7 are Xen's
//! reserved ones (the toolstack's console and xenstore grants).
//! Semantics: X:`xen/include/public/grant_table.h`; L:`drivers/xen/grant-table.c`.

use core::sync::atomic::{fence, AtomicBool, AtomicU16, AtomicU64, Ordering};

use guest_abi::grant_table::{GNTST_OKAY, GNTTAB_NR_RESERVED_ENTRIES, GTF_PERMIT_ACCESS, GTF_READONLY};
use guest_abi::hypercall;
use guest_abi::xen::UVMF_INVLPG;

/// Frames of the table asked for (512 entries each).
pub const FRAMES: usize = 4;
/// Entries in the table.
pub const ENTRIES: usize = FRAMES * 512;
/// `_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY`.
const PTE_RW: u64 = 0x67;

#[repr(C, align(4096))]
struct Window([u8; FRAMES * 4096]);
/// Where the table's frames are mapped.
static mut WINDOW: Window = Window([0; FRAMES * 4096]);
/// One bit per entry: in use.
static USED: [AtomicU64; ENTRIES / 64] = [const { AtomicU64::new(0) }; ENTRIES / 64];
static READY: AtomicBool = AtomicBool::new(false);
/// Entries the table really has (after [`init`]).
static mut NR_ENTRIES: usize = 0;

/// Why a grant could not be made or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// [`init`] has not run or failed.
    NoTable,
    /// Every entry is in use.
    Full,
    /// The grantee still uses the entry (it stays granted).
    InUse,
    /// Not an entry this module handed out.
    BadRef,
}

fn entry_flags(gref: u32) -> &'static AtomicU16 {
    let base = core::ptr::addr_of_mut!(WINDOW) as *mut u8;
    // SAFETY: callers check gref < the mapped entries; each entry is 8
    // bytes, `flags` its first 2-aligned u16, and the window stays mapped.
    unsafe { &*(base.add(gref as usize * 8) as *const AtomicU16) }
}

fn nr_entries() -> usize {
    // SAFETY: written once by `init` before READY is set; read after.
    unsafe { NR_ENTRIES }
}

/// Sets the table up: `FRAMES` frames if Xen allows, else one.
pub fn init() -> Result<usize, guest_abi::XenError> {
    if READY.load(Ordering::Acquire) {
        return Ok(nr_entries());
    }
    let mut frames = [0u64; FRAMES];
    let mut n = FRAMES;
    loop {
        match hypercall::gnttab_setup_table(&mut frames[..n]) {
            Ok(op) if op.status == GNTST_OKAY => break,
            _ if n > 1 => n = 1,
            Ok(_) => return Err(guest_abi::XenError::Einval),
            Err(e) => return Err(e),
        }
    }
    let base = core::ptr::addr_of_mut!(WINDOW) as u64;
    for (i, &mfn) in frames[..n].iter().enumerate() {
        hypercall::update_va_mapping(base + i as u64 * 4096, (mfn << 12) | PTE_RW, u64::from(UVMF_INVLPG))?;
    }
    // SAFETY: single writer, before READY publishes it.
    unsafe { NR_ENTRIES = n * 512 };
    for gref in 0..GNTTAB_NR_RESERVED_ENTRIES as usize {
        USED[gref / 64].fetch_or(1 << (gref % 64), Ordering::Relaxed);
    }
    READY.store(true, Ordering::Release);
    Ok(n * 512)
}

/// Offers `frame` to `domid` (read-only or not); the grant reference.
pub fn grant(domid: u16, frame: u64, readonly: bool) -> Result<u32, GrantError> {
    if !READY.load(Ordering::Acquire) {
        return Err(GrantError::NoTable);
    }
    let limit = nr_entries();
    let gref = (0..limit)
        .find(|&g| USED[g / 64].fetch_or(1 << (g % 64), Ordering::AcqRel) & (1 << (g % 64)) == 0)
        .ok_or(GrantError::Full)? as u32;
    let base = core::ptr::addr_of_mut!(WINDOW) as *mut u8;
    // SAFETY: entry `gref` is ours (its bit was clear) and inside the
    // mapped table; `domid` at offset 2 and `frame` at 4 are aligned.
    unsafe {
        let e = base.add(gref as usize * 8);
        (e.add(2) as *mut u16).write_volatile(domid);
        (e.add(4) as *mut u32).write_volatile(frame as u32);
    }
    fence(Ordering::Release);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    entry_flags(gref).store(flags as u16, Ordering::Release);
    Ok(gref)
}

/// Revokes `gref` unless the grantee still uses it.
pub fn end(gref: u32) -> Result<(), GrantError> {
    let g = gref as usize;
    if !READY.load(Ordering::Acquire) || g < GNTTAB_NR_RESERVED_ENTRIES as usize || g >= nr_entries() {
        return Err(GrantError::BadRef);
    }
    if USED[g / 64].load(Ordering::Acquire) & (1 << (g % 64)) == 0 {
        return Err(GrantError::BadRef);
    }
    let flags = entry_flags(gref);
    let current = flags.load(Ordering::Acquire);
    let type_bits = (GTF_PERMIT_ACCESS | GTF_READONLY) as u16;
    if current & !type_bits != 0 || flags.compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Err(GrantError::InUse);
    }
    USED[g / 64].fetch_and(!(1 << (g % 64)), Ordering::AcqRel);
    Ok(())
}
