//! Console output: a domU writes its console ring (`start_info.console.domU`)
//! and raises the console port; the initial domain uses
//! `console_io(CONSOLEIO_write)`.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_abi::hypercall;
use guest_abi::xen::{SifFlags, StartInfo};

/// Where the read-only machine-to-phys table is mapped in every PV guest.
const M2P: u64 = 0xffff_8000_0000_0000;
/// guest-rt kernels map pfn N at this base + N pages (the VIRT_BASE note).
const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

static RING: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);

/// Uses the console ring when the domain has one.
pub fn init(si: &StartInfo) {
    let (mfn, port) = si.console_domu();
    if SifFlags::from_bits_truncate(si.flags).contains(SifFlags::INITDOMAIN) || port == 0 || mfn == 0 {
        return;
    }
    // SAFETY: the M2P is mapped read-only at M2P for every PV guest and
    // has an entry for each of the domain's frames.
    let pfn = unsafe { ((M2P + mfn * 8) as *const u64).read_volatile() };
    RING.store(VIRT_BASE + pfn * 4096, Ordering::SeqCst);
    PORT.store(port, Ordering::SeqCst);
}

/// Writes to the console ring; returns false if there is none.
fn ring_write(bytes: &[u8]) -> bool {
    let ring = RING.load(Ordering::SeqCst);
    if ring == 0 {
        return false;
    }
    let port = PORT.load(Ordering::SeqCst);
    let out = ring + 1024;
    // SAFETY: the ring page is in the initial mapping; the indices are u32
    // at offsets 3080 (out_cons) and 3084 (out_prod).
    let (cons, prod) = unsafe { (&*((ring + 3080) as *const AtomicU32), &*((ring + 3084) as *const AtomicU32)) };
    for chunk in bytes.chunks(1024) {
        let mut p = prod.load(Ordering::SeqCst);
        while p.wrapping_sub(cons.load(Ordering::SeqCst)) as usize + chunk.len() > 2048 {
            let _ = hypercall::evtchn_send(port); // the backend drains the ring
        }
        for &b in chunk {
            // SAFETY: index masked into the 2048-byte out array.
            unsafe { ((out + u64::from(p % 2048)) as *mut u8).write_volatile(b) };
            p = p.wrapping_add(1);
        }
        prod.store(p, Ordering::SeqCst);
        let _ = hypercall::evtchn_send(port);
    }
    true
}

/// A `fmt::Write` sink for the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if ring_write(s.as_bytes()) {
            return Ok(());
        }
        hypercall::console_write(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

/// Prints formatted text on the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
    }};
}

/// Prints formatted text and a newline on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        $crate::print!("{}\n", format_args!($($arg)*));
    }};
}
