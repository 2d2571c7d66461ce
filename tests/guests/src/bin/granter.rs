//! A domU that shares a page and an event channel with dom0, for the
//! control-domain tests of gntdev and evtchn: started by `xl create`, it
//! grants dom0 read-write access to a page filled with a known pattern,
//! offers dom0 an unbound event channel, publishes both in XenStore, then
//! answers dom0's notifications until it has had 100, and powers off.
//!
//! - The page: byte `i` is `(i * 7) ^ 0x5a`, truncated to 8 bits, for
//!   `i` in `0..4096`.
//! - The grant: ref [`GREF`] (the first after Xen's reserved ones, so the
//!   toolstack's console and xenstore refs 0 and 1 stay as they are),
//!   `GTF_permit_access` for domain 0.
//! - XenStore, written in one transaction: `data/gref` and `data/port`
//!   (decimal) in the domain's own directory.
//! - The exchange: dom0 maps the grant, binds the port, and sends; the
//!   granter notifies back after each notification. dom0 must wait for
//!   the answer before sending again (events coalesce), and has 120 s.
//!
//! Lines start with `granter: ` and go to both consoles.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::fmt::{self, Write};
    use core::sync::atomic::{fence, AtomicU16, Ordering};

    use guest_abi::grant_table::{GNTST_OKAY, GNTTAB_NR_RESERVED_ENTRIES, GTF_PERMIT_ACCESS};
    use guest_abi::hypercall;
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::{StartInfo, UVMF_INVLPG};
    use guest_abi::XenError;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{StorePort, XenStore, XsError};
    use guest_rt::{events, poll, tee};

    /// Where the builder maps pfn 0 (guest-rt's VIRT_BASE).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    /// `_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY`.
    const PTE_RW: u64 = 0x67;
    /// The grant reference offered to dom0.
    const GREF: u32 = GNTTAB_NR_RESERVED_ENTRIES;
    /// Notifications to count.
    const ROUNDS: u32 = 100;
    /// How long dom0 has for all of them.
    const EXCHANGE_NS: u64 = 120_000_000_000;
    /// Attempts at the publishing transaction when it conflicts.
    const TX_ATTEMPTS: u32 = 5;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    /// Where grant table frame 0 is mapped.
    static mut TABLE: Page = Page([0; 4096]);
    /// The page granted to dom0.
    static mut SHARED: Page = Page([0; 4096]);

    fn fail(what: &str) -> ! {
        say!("granter: FAILED: {what}");
        guest_rt::shutdown(SHUTDOWN_CRASH)
    }

    /// The pattern byte at offset `i` of the shared page.
    fn pattern(i: usize) -> u8 {
        ((i * 7) ^ 0x5a) as u8
    }

    /// The machine frame behind one of this kernel's pages (its p2m entry).
    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> 12;
        // SAFETY: `va` is in the kernel image, whose pfns are below
        // `nr_pages`; the builder maps the p2m list at `mfn_list`.
        unsafe { ((si.mfn_list + pfn * 8) as *const u64).read_volatile() }
    }

    /// Maps grant table frame 0 at TABLE and writes entry GREF for dom0.
    fn grant_page(si: &StartInfo) {
        let mut frames = [0u64; 1];
        match hypercall::gnttab_setup_table(&mut frames) {
            Ok(op) if op.status == GNTST_OKAY => {}
            Ok(op) => fail(Buf::new(format_args!("setup_table status {}", op.status)).as_str()),
            Err(e) => fail(Buf::new(format_args!("setup_table: {e}")).as_str()),
        }
        let table = core::ptr::addr_of_mut!(TABLE) as u64;
        if let Err(e) = hypercall::update_va_mapping(table, (frames[0] << 12) | PTE_RW, u64::from(UVMF_INVLPG)) {
            fail(Buf::new(format_args!("mapping the grant table: {e}")).as_str());
        }
        let shared = core::ptr::addr_of_mut!(SHARED) as *mut u8;
        for i in 0..4096 {
            // SAFETY: SHARED is this kernel's page, used only through raw
            // pointers; i < 4096.
            unsafe { shared.add(i).write_volatile(pattern(i)) };
        }
        let entry = (table + u64::from(GREF) * 8) as *mut u8;
        let frame = mfn_of(si, shared as u64) as u32;
        // SAFETY: entry GREF of grant table frame 0, mapped writable at
        // TABLE: `domid` at offset 2, `frame` at 4, both aligned.
        unsafe {
            (entry.add(2) as *mut u16).write_volatile(0);
            (entry.add(4) as *mut u32).write_volatile(frame);
        }
        // Xen must see domid and frame before the entry becomes valid.
        fence(Ordering::Release);
        // SAFETY: the 2-aligned `flags` word of the entry; Xen updates it
        // atomically too.
        let flags = unsafe { &*(entry as *const AtomicU16) };
        flags.store(GTF_PERMIT_ACCESS as u16, Ordering::Release);
    }

    /// A short string built without allocation.
    struct Buf {
        bytes: [u8; 64],
        len: usize,
    }

    impl Buf {
        fn new(args: fmt::Arguments) -> Buf {
            let mut b = Buf { bytes: [0; 64], len: 0 };
            let _ = b.write_fmt(args);
            b
        }

        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
        }
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    /// Writes `data/gref` and `data/port` in one transaction.
    fn publish(xs: &mut XenStore<StorePort>, port: u32) -> Result<(), XsError> {
        let gref = Buf::new(format_args!("{GREF}"));
        let port = Buf::new(format_args!("{port}"));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = xs.transaction_start()?;
            let written = xs
                .write(tx, "data/gref", gref.as_str().as_bytes())
                .and_then(|()| xs.write(tx, "data/port", port.as_str().as_bytes()));
            if let Err(e) = written {
                let _ = xs.transaction_abort(tx);
                return Err(e);
            }
            match xs.transaction_commit(tx) {
                Err(e) if e.is(XenError::Eagain) && attempt < TX_ATTEMPTS => {}
                r => return r,
            }
        }
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("granter: start");
        if let Err(e) = events::init(si) {
            fail(Buf::new(format_args!("event setup: {e}")).as_str());
        }
        let mut xs = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => fail(Buf::new(format_args!("opening XenStore: {e}")).as_str()),
        };
        grant_page(si);
        say!("granter: granted a page to d0 as ref {GREF}");
        let port = match hypercall::evtchn_alloc_unbound(0) {
            Ok(port) => port,
            Err(e) => fail(Buf::new(format_args!("alloc_unbound: {e}")).as_str()),
        };
        say!("granter: offered an event channel to d0");
        if let Err(e) = publish(&mut xs, port) {
            fail(Buf::new(format_args!("publishing data/gref and data/port: {e}")).as_str());
        }
        say!("granter: published data/gref and data/port");
        say!("granter: waiting for {ROUNDS} notifications");
        let deadline = events::system_time_ns() + EXCHANGE_NS;
        let mut received = 0;
        while received < ROUNDS {
            if !poll::wait_port(port, deadline) {
                say!("granter: timed out after {received} notifications");
                guest_rt::shutdown(SHUTDOWN_CRASH);
            }
            received += 1;
            if let Err(e) = hypercall::evtchn_send(port) {
                fail(Buf::new(format_args!("notifying d0: {e}")).as_str());
            }
        }
        say!("granter: {ROUNDS} notifications");
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
