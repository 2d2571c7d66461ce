//! The shared-ring protocol of `io/ring.h`, as a safe API.
//!
//! A ring lives in a shared area of one or more (a power of two) pages: a
//! 64-byte header ([`SringHeader`]: `req_prod`, `req_event`, `rsp_prod`,
//! `rsp_event`, padding), then a power-of-two array of entries, each the C
//! union of a request and a response. The frontend produces requests and
//! consumes responses; the backend the reverse. Indices (`RING_IDX`) are
//! free-running `u32`s, masked by the ring size.
//!
//! Memory ordering follows Xen's macros: entries are written before the
//! producer index is published (`xen_wmb`, a release fence); a consumer
//! reads the producer index before the entries (`xen_rmb`, an acquire
//! fence); the producer publishes its index before reading the other
//! side's `*_event` (`xen_mb`, a full fence). `*_event` is the index at
//! which the other side wants a notification: a push notifies iff the new
//! entries cross it (`RING_PUSH_*_AND_CHECK_NOTIFY`), and a consumer about
//! to sleep re-arms it and checks again (`RING_FINAL_CHECK_FOR_*`).
//!
//! The other side is not trusted: a producer index claiming more entries
//! than the ring holds is [`RingError::Overflow`]
//! (`RING_REQUEST_PROD_OVERFLOW`, `RING_RESPONSE_PROD_OVERFLOW`), and
//! entries are copied out before use, never referenced in shared memory.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::sync::atomic::{fence, AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes};

xen_consts! {
    "io/ring.h";
    XEN_PAGE_SHIFT: u32 = 12, "XEN_PAGE_SHIFT";
    RING_HEADER_SIZE: usize = 64, "offsetof(struct blkif_sring, ring)";
    /// Bytes in a page of a ring.
    PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT, "(1UL << XEN_PAGE_SHIFT)";
}

xen_struct! {
    "io/ring.h", "struct blkif_sring" until "ring", 64;
    /// The header of every shared ring (`struct NAME_sring` of
    /// `DEFINE_RING_TYPES`, up to its `ring[]`), checked against
    /// `struct blkif_sring`.
    pub struct SringHeader {
        /// `req_prod`: requests published by the frontend.
        req_prod: u32 = "req_prod",
        /// `req_event`: notify the backend when `req_prod` passes this.
        req_event: u32 = "req_event",
        /// `rsp_prod`: responses published by the backend.
        rsp_prod: u32 = "rsp_prod",
        /// `rsp_event`: notify the frontend when `rsp_prod` passes this.
        rsp_event: u32 = "rsp_event",
        /// `pvt`: protocol-private bytes (netif's `smartpoll_active`).
        pvt: [u8; 4] = "pvt" union("pvt.netif", "pvt.tapif_user", "pvt.pvt_pad"),
        /// `__pad`
        __pad: [u8; 44] = "__pad",
    }
}

xen_structs!(SringHeader);

const REQ_PROD: usize = core::mem::offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = core::mem::offset_of!(SringHeader, req_event);
const RSP_PROD: usize = core::mem::offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = core::mem::offset_of!(SringHeader, rsp_event);

/// Entries in a ring of `area` bytes with entries of `entry_size` bytes
/// (Xen's `__RING_SIZE`: the largest power of two that fits after the
/// header).
pub const fn ring_size(area: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || area <= RING_HEADER_SIZE {
        return 0;
    }
    let n = (area - RING_HEADER_SIZE) / entry_size;
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// The size of a ring entry: the C union of `Req` and `Rsp`.
pub const fn entry_size<Req, Rsp>() -> usize {
    let size = if size_of::<Req>() > size_of::<Rsp>() { size_of::<Req>() } else { size_of::<Rsp>() };
    let align = if align_of::<Req>() > align_of::<Rsp>() { align_of::<Req>() } else { align_of::<Rsp>() };
    size.div_ceil(align) * align
}

/// Entries in a ring of `nr_pages` pages carrying `Req` and `Rsp`
/// (`__CONST_RING_SIZE` for one page).
pub const fn ring_entries<Req, Rsp>(nr_pages: usize) -> u32 {
    ring_size(nr_pages * PAGE_SIZE, entry_size::<Req, Rsp>())
}

/// Why an operation on a ring was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// No free slot for another request (or no consumed request left to
    /// answer).
    Full,
    /// The other side published an index that claims more entries than the
    /// ring holds: it is broken or hostile.
    Overflow,
}

/// One page, aligned as a ring needs, for rings this side allocates.
#[repr(C, align(4096))]
pub struct RingPage(pub [u8; PAGE_SIZE]);

impl RingPage {
    /// A zeroed page.
    pub const fn new() -> Self {
        RingPage([0; PAGE_SIZE])
    }
}

impl Default for RingPage {
    fn default() -> Self {
        Self::new()
    }
}

/// The shared area of a ring, accessed only with atomics and volatile
/// copies, since the other side writes it concurrently.
pub struct SharedRing<'a> {
    base: *mut u8,
    bytes: usize,
    _area: PhantomData<&'a mut [u8]>,
}

// SAFETY: the area is designed to be shared between agents; every access
// goes through atomics or volatile copies.
unsafe impl Send for SharedRing<'_> {}

impl<'a> SharedRing<'a> {
    /// A one-page ring in a page this side owns for `'a` (the other side
    /// is another domain mapping the same frame).
    pub fn new(page: &'a mut RingPage) -> Self {
        SharedRing { base: page.0.as_mut_ptr(), bytes: PAGE_SIZE, _area: PhantomData }
    }

    /// A view of a ring area shared with another agent.
    ///
    /// # Safety
    /// `base` must be page-aligned and point to `nr_pages` contiguous pages
    /// (a power of two) that stay mapped for `'a` and are accessed by this
    /// side only through `SharedRing`s.
    pub unsafe fn from_raw(base: *mut u8, nr_pages: usize) -> Self {
        debug_assert!(nr_pages.is_power_of_two() && (base as usize).is_multiple_of(PAGE_SIZE));
        SharedRing { base, bytes: nr_pages * PAGE_SIZE, _area: PhantomData }
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: offset is one of the four header words: inside the area,
        // 4-aligned since the area is page-aligned; AtomicU32 has u32's
        // layout and the area outlives `self`.
        unsafe { &*(self.base.add(offset) as *const AtomicU32) }
    }

    fn load(&self, offset: usize) -> u32 {
        self.index(offset).load(Ordering::Relaxed)
    }

    fn store(&self, offset: usize, value: u32) {
        self.index(offset).store(value, Ordering::Relaxed)
    }

    /// Zeroes the header past the indices (`SHARED_RING_INIT`'s memsets).
    fn clear_private(&self) {
        for offset in core::mem::offset_of!(SringHeader, pvt)..RING_HEADER_SIZE {
            // SAFETY: a header byte past the four indices, inside the area.
            unsafe { self.base.add(offset).write_volatile(0) };
        }
    }

    /// Entries of `entry` bytes this area holds.
    fn size_for(&self, entry: usize) -> u32 {
        ring_size(self.bytes, entry)
    }

    /// Copies entry `slot` out. `slot < size_for(entry)`, `entry` a multiple
    /// of `T`'s alignment and at least its size.
    fn read_entry<T: FromBytes>(&self, slot: u32, entry: usize) -> T {
        let offset = RING_HEADER_SIZE + slot as usize * entry;
        debug_assert!(offset + size_of::<T>() <= self.bytes && offset.is_multiple_of(align_of::<T>()));
        // SAFETY: the entry lies inside the area (slot < ring size) and is
        // aligned for T (page-aligned base, 64-byte header, entry size a
        // multiple of T's alignment); any bytes are a valid T (FromBytes);
        // volatile because the other side may write it.
        unsafe { core::ptr::read_volatile(self.base.add(offset) as *const T) }
    }

    /// Copies `value` into entry `slot`; as for `read_entry`.
    fn write_entry<T: IntoBytes + Immutable + Copy>(&self, slot: u32, entry: usize, value: &T) {
        let offset = RING_HEADER_SIZE + slot as usize * entry;
        debug_assert!(offset + size_of::<T>() <= self.bytes && offset.is_multiple_of(align_of::<T>()));
        // SAFETY: as in read_entry; T has no padding (IntoBytes), so only
        // initialised bytes reach the other side.
        unsafe { core::ptr::write_volatile(self.base.add(offset) as *mut T, *value) }
    }
}

/// The frontend of a ring: produces `Req`, consumes `Rsp`.
pub struct FrontRing<'a, Req, Rsp> {
    shared: SharedRing<'a>,
    req_prod_pvt: u32,
    rsp_cons: u32,
    size: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<'a, Req, Rsp> FrontRing<'a, Req, Rsp>
where
    Req: IntoBytes + Immutable + Copy,
    Rsp: FromBytes,
{
    const ENTRY: usize = entry_size::<Req, Rsp>();

    /// Initialises a fresh shared ring and attaches to it
    /// (`XEN_FRONT_RING_INIT`: `SHARED_RING_INIT` + `FRONT_RING_INIT`).
    pub fn init(shared: SharedRing<'a>) -> Self {
        shared.store(REQ_PROD, 0);
        shared.store(RSP_PROD, 0);
        shared.store(REQ_EVENT, 1);
        shared.store(RSP_EVENT, 1);
        shared.clear_private();
        Self::attach(shared, 0)
    }

    /// Attaches to a ring at index `index`, where both sides agree all
    /// earlier requests are answered (`FRONT_RING_ATTACH`).
    pub fn attach(shared: SharedRing<'a>, index: u32) -> Self {
        let size = shared.size_for(Self::ENTRY);
        FrontRing { shared, req_prod_pvt: index, rsp_cons: index, size, _types: PhantomData }
    }

    /// Entries in the ring (`RING_SIZE`).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can still be queued (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        self.size.wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// Whether no request can be queued (`RING_FULL`).
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Queues a request; the backend sees it after
    /// [`push_requests`](Self::push_requests).
    pub fn queue_request(&mut self, req: &Req) -> Result<(), RingError> {
        if self.size == 0 || self.is_full() {
            return Err(RingError::Full);
        }
        let slot = self.req_prod_pvt & (self.size - 1);
        self.shared.write_entry(slot, Self::ENTRY, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued requests; returns whether the backend must be
    /// notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests(&mut self) -> bool {
        let old = self.shared.load(REQ_PROD);
        let new = self.req_prod_pvt;
        fence(Ordering::Release); // xen_wmb: entries before the index
        self.shared.store(REQ_PROD, new);
        fence(Ordering::SeqCst); // xen_mb: index before reading req_event
        let event = self.shared.load(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses published and not yet consumed
    /// (`RING_HAS_UNCONSUMED_RESPONSES`), or `Overflow` for a backend
    /// claiming more than the ring holds.
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let n = self.shared.load(RSP_PROD).wrapping_sub(self.rsp_cons);
        if n > self.size {
            return Err(RingError::Overflow);
        }
        Ok(n)
    }

    /// Takes (copies out) the next response, if one is published.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        fence(Ordering::Acquire); // xen_rmb: the index before the entries
        let slot = self.rsp_cons & (self.size - 1);
        let rsp = self.shared.read_entry(slot, Self::ENTRY);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Asks for a notification on the next response and checks again,
    /// closing the race with a backend that published meanwhile
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`): true if responses are waiting.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.shared.store(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst); // xen_mb
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The backend of a ring: consumes `Req`, produces `Rsp`.
pub struct BackRing<'a, Req, Rsp> {
    shared: SharedRing<'a>,
    rsp_prod_pvt: u32,
    req_cons: u32,
    size: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<'a, Req, Rsp> BackRing<'a, Req, Rsp>
where
    Req: FromBytes,
    Rsp: IntoBytes + Immutable + Copy,
{
    const ENTRY: usize = entry_size::<Req, Rsp>();

    /// Attaches to a ring the frontend has just initialised
    /// (`BACK_RING_INIT`).
    pub fn init(shared: SharedRing<'a>) -> Self {
        Self::attach(shared, 0)
    }

    /// Attaches at index `index` (`BACK_RING_ATTACH`), e.g. the ring's
    /// `rsp_prod` when reconnecting.
    pub fn attach(shared: SharedRing<'a>, index: u32) -> Self {
        let size = shared.size_for(Self::ENTRY);
        BackRing { shared, rsp_prod_pvt: index, req_cons: index, size, _types: PhantomData }
    }

    /// Entries in the ring (`RING_SIZE`).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests published and not yet consumed
    /// (`RING_HAS_UNCONSUMED_REQUESTS`); a frontend claiming more than the
    /// ring holds is an `Overflow` (`RING_REQUEST_PROD_OVERFLOW`).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let prod = self.shared.load(REQ_PROD);
        if prod.wrapping_sub(self.rsp_prod_pvt) > self.size {
            return Err(RingError::Overflow);
        }
        let outstanding = prod.wrapping_sub(self.req_cons);
        let room = self.size.wrapping_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        Ok(outstanding.min(room))
    }

    /// Takes (copies out) the next request, if one is published.
    pub fn take_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        fence(Ordering::Acquire); // xen_rmb: the index before the entries
        let slot = self.req_cons & (self.size - 1);
        let req = self.shared.read_entry(slot, Self::ENTRY);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Queues a response to a consumed request; the frontend sees it after
    /// [`push_responses`](Self::push_responses).
    pub fn queue_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::Full); // nothing consumed to answer
        }
        let slot = self.rsp_prod_pvt & (self.size - 1);
        self.shared.write_entry(slot, Self::ENTRY, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued responses; returns whether the frontend must be
    /// notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push_responses(&mut self) -> bool {
        let old = self.shared.load(RSP_PROD);
        let new = self.rsp_prod_pvt;
        fence(Ordering::Release); // xen_wmb
        self.shared.store(RSP_PROD, new);
        fence(Ordering::SeqCst); // xen_mb
        let event = self.shared.load(RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Asks for a notification on the next request and checks again
    /// (`RING_FINAL_CHECK_FOR_REQUESTS`): true if requests are waiting.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.shared.store(REQ_EVENT, self.req_cons.wrapping_add(1));
        fence(Ordering::SeqCst); // xen_mb
        Ok(self.unconsumed_requests()? > 0)
    }
}

#[cfg(test)]
mod tests;
