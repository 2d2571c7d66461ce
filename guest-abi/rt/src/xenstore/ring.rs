//! The XenStore ring page as the guest sees it: two 1 KiB byte rings
//! (`req` to the daemon, `rsp` from it) with free-running `u32` indices.
//!
//! Semantics: X:`docs/misc/xenstore-ring.txt`; L:`drivers/xen/xenbus/
//! xenbus_comms.c` `check_indexes`, `get_output_chunk`, `get_input_chunk`,
//! `xb_write`, `xb_read`. Each pass reads both indices of a ring once,
//! checks `prod - cons <= XENSTORE_RING_SIZE`, and only then touches data
//! at `index & (XENSTORE_RING_SIZE - 1)`. Barriers as Linux places them:
//! a full fence between reading the consumer index and writing data, a
//! release fence before publishing `req_prod`; an acquire fence between
//! reading `rsp_prod` and the data, a full fence before publishing
//! `rsp_cons`.
//!
//! The daemon may write anything at any time: every value read from the
//! page is checked before use, and offsets into the page are computed so
//! that they stay inside their ring whatever the indices say.

use core::mem::offset_of;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use guest_abi::io::xs_wire::{XenstoreDomainInterface as Intf, XENSTORE_RING_SIZE};

const RING_SIZE: u32 = XENSTORE_RING_SIZE;
const REQ: usize = offset_of!(Intf, req);
const RSP: usize = offset_of!(Intf, rsp);
const REQ_CONS: usize = offset_of!(Intf, req_cons);
const REQ_PROD: usize = offset_of!(Intf, req_prod);
const RSP_CONS: usize = offset_of!(Intf, rsp_cons);
const RSP_PROD: usize = offset_of!(Intf, rsp_prod);
const SERVER_FEATURES: usize = offset_of!(Intf, server_features);
const CONNECTION: usize = offset_of!(Intf, connection);
const ERROR: usize = offset_of!(Intf, error);

/// The daemon published indices that claim more than a ring holds
/// (`prod - cons > XENSTORE_RING_SIZE`): it is broken or hostile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndexes;

/// `check_indexes`: whether `prod` is at most a ring's worth ahead of `cons`.
pub const fn check_indexes(cons: u32, prod: u32) -> bool {
    prod.wrapping_sub(cons) <= RING_SIZE
}

/// `MASK_XENSTORE_IDX`: the byte of a ring an index designates.
pub const fn mask(idx: u32) -> usize {
    (idx & (RING_SIZE - 1)) as usize
}

/// `get_output_chunk`: where the producer may write next and how many
/// contiguous bytes fit, as (offset in the ring, length). The indices must
/// have passed [`check_indexes`]; otherwise the chunk is empty.
pub const fn output_chunk(cons: u32, prod: u32) -> (usize, usize) {
    let used = prod.wrapping_sub(cons);
    if used > RING_SIZE {
        return (0, 0);
    }
    let off = mask(prod);
    let to_end = RING_SIZE as usize - off;
    let free = (RING_SIZE - used) as usize;
    (off, if free < to_end { free } else { to_end })
}

/// `get_input_chunk`: where the consumer reads next and how many
/// contiguous bytes are there, as (offset in the ring, length). The
/// indices must have passed [`check_indexes`]; otherwise the chunk is
/// empty.
pub const fn input_chunk(cons: u32, prod: u32) -> (usize, usize) {
    let avail = prod.wrapping_sub(cons);
    if avail > RING_SIZE {
        return (0, 0);
    }
    let off = mask(cons);
    let to_end = RING_SIZE as usize - off;
    let avail = avail as usize;
    (off, if avail < to_end { avail } else { to_end })
}

/// A mapped XenStore ring page.
pub struct Ring {
    page: *mut u8,
}

impl Ring {
    /// Uses the page at `page`.
    ///
    /// # Safety
    /// `page` must be 4-byte aligned and valid for reads and writes of
    /// `size_of::<XenstoreDomainInterface>()` bytes for as long as the
    /// `Ring` (or anything made from it) is used; nothing else in this
    /// program may hold a Rust reference into it. The daemon writing the
    /// page concurrently is expected.
    pub const unsafe fn new(page: *mut u8) -> Ring {
        Ring { page }
    }

    fn index(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is one of the 4-aligned u32 field offsets of the
        // interface, inside the page `new`'s caller vouched for; shared
        // memory is only accessed atomically or volatilely.
        unsafe { &*(self.page.add(off) as *const AtomicU32) }
    }

    fn load(&self, off: usize) -> u32 {
        self.index(off).load(Ordering::Relaxed)
    }

    fn store(&self, off: usize, value: u32) {
        self.index(off).store(value, Ordering::Relaxed)
    }

    /// `req_cons`, as the daemon last published it.
    pub fn req_cons(&self) -> u32 {
        self.load(REQ_CONS)
    }

    /// `req_prod`, as this side last published it.
    pub fn req_prod(&self) -> u32 {
        self.load(REQ_PROD)
    }

    /// `rsp_cons`.
    pub fn rsp_cons(&self) -> u32 {
        self.load(RSP_CONS)
    }

    /// `rsp_prod`.
    pub fn rsp_prod(&self) -> u32 {
        self.load(RSP_PROD)
    }

    /// `server_features`: `XENSTORE_SERVER_FEATURE_*` bits.
    pub fn server_features(&self) -> u32 {
        self.load(SERVER_FEATURES)
    }

    /// `connection`: `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT` (valid
    /// only with `XENSTORE_SERVER_FEATURE_RECONNECTION`).
    pub fn connection(&self) -> u32 {
        self.load(CONNECTION)
    }

    /// `error`: `XENSTORE_ERROR_*` (valid only with
    /// `XENSTORE_SERVER_FEATURE_ERROR`).
    pub fn error(&self) -> u32 {
        self.load(ERROR)
    }

    /// Publishes `req_prod = prod` after a release fence, whatever it
    /// claims (a hostile guest's tool; [`Ring::write`] is the honest way).
    pub fn set_req_prod(&self, prod: u32) {
        fence(Ordering::Release);
        self.store(REQ_PROD, prod);
    }

    /// Writes `bytes` into `req[]` from stream position `idx` on, without
    /// publishing anything (a hostile guest's tool).
    pub fn poke_req(&self, idx: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.put(REQ + mask(idx.wrapping_add(i as u32)), b);
        }
    }

    fn put(&self, off: usize, byte: u8) {
        // SAFETY: callers pass `REQ + mask(..)`, inside the page.
        unsafe { self.page.add(off).write_volatile(byte) }
    }

    fn get(&self, off: usize) -> u8 {
        // SAFETY: callers pass `RSP + mask(..)` or `RSP + chunk offset`,
        // inside the page.
        unsafe { self.page.add(off).read_volatile() }
    }

    /// Bytes `req[]` can take now.
    pub fn req_space(&self) -> Result<u32, BadIndexes> {
        let (cons, prod) = (self.load(REQ_CONS), self.load(REQ_PROD));
        if !check_indexes(cons, prod) {
            return Err(BadIndexes);
        }
        Ok(RING_SIZE - prod.wrapping_sub(cons))
    }

    /// Bytes waiting in `rsp[]`.
    pub fn rsp_avail(&self) -> Result<u32, BadIndexes> {
        let (cons, prod) = (self.load(RSP_CONS), self.load(RSP_PROD));
        if !check_indexes(cons, prod) {
            return Err(BadIndexes);
        }
        Ok(prod.wrapping_sub(cons))
    }

    /// `xb_write` without waiting: writes as much of `data` as fits now
    /// and publishes it; returns how many bytes were written.
    pub fn write(&self, data: &[u8]) -> Result<usize, BadIndexes> {
        let mut done = 0;
        while done < data.len() {
            let (cons, prod) = (self.load(REQ_CONS), self.load(REQ_PROD));
            if !check_indexes(cons, prod) {
                return Err(BadIndexes);
            }
            let (off, len) = output_chunk(cons, prod);
            let n = len.min(data.len() - done);
            if n == 0 {
                break;
            }
            // Data goes in after the consumer index was read.
            fence(Ordering::SeqCst);
            for (i, &b) in data[done..done + n].iter().enumerate() {
                self.put(REQ + off + i, b);
            }
            // The daemon must not see the new producer before the data.
            fence(Ordering::Release);
            self.store(REQ_PROD, prod.wrapping_add(n as u32));
            done += n;
        }
        Ok(done)
    }

    /// `xb_read` without waiting: reads up to `buf.len()` bytes that are
    /// there now and frees their space; returns how many were read.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, BadIndexes> {
        let mut done = 0;
        while done < buf.len() {
            let (cons, prod) = (self.load(RSP_CONS), self.load(RSP_PROD));
            if !check_indexes(cons, prod) {
                return Err(BadIndexes);
            }
            let (off, len) = input_chunk(cons, prod);
            let n = len.min(buf.len() - done);
            if n == 0 {
                break;
            }
            // The data is read after the producer index.
            fence(Ordering::Acquire);
            for (i, b) in buf[done..done + n].iter_mut().enumerate() {
                *b = self.get(RSP + off + i);
            }
            // The daemon must not see the space free before it is copied.
            fence(Ordering::SeqCst);
            self.store(RSP_CONS, cons.wrapping_add(n as u32));
            done += n;
        }
        Ok(done)
    }
}
