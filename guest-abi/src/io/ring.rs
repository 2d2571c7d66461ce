//! The shared-ring protocol of `io/ring.h`, as a safe API.
//!
//! A ring lives in one shared page: four indices (`req_prod`, `req_event`,
//! `rsp_prod`, `rsp_event`), 48 bytes of padding, then a power-of-two
//! array of entries, each big enough for a request or a response. The
//! frontend produces requests and consumes responses; the backend the
//! reverse. Producer indices are published after the entries with a write
//! barrier; consumers read them before the entries with a read barrier;
//! the `*_event` indices tell the producer when the other side wants a
//! notification (Xen's `RING_PUSH_*_AND_CHECK_NOTIFY` and
//! `RING_FINAL_CHECK_FOR_*`). Indices are free-running `u32`s.
//!
//! The other side is not trusted: a backend never lets a frontend's
//! `req_prod` claim more requests than the ring holds, and entries are
//! copied out before use (never referenced in shared memory).

use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes};

xen_consts! {
    "io/ring.h";
    XEN_PAGE_SHIFT: u32 = 12, "XEN_PAGE_SHIFT";
    RING_HEADER_SIZE: usize = 64, "offsetof(struct blkif_sring, ring)";
    BLKIF_RING_SIZE: u32 = ring_size(112), "__CONST_RING_SIZE(blkif, 4096)";
    NETIF_TX_RING_SIZE: u32 = ring_size(12), "__CONST_RING_SIZE(netif_tx, 4096)";
    NETIF_RX_RING_SIZE: u32 = ring_size(8), "__CONST_RING_SIZE(netif_rx, 4096)";
}

/// Bytes in the shared page.
const PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT;

/// Entries in a one-page ring of entries of `entry_size` bytes (Xen's
/// `__RING_SIZE`: the largest power of two that fits).
pub const fn ring_size(entry_size: usize) -> u32 {
    let n = (PAGE_SIZE - RING_HEADER_SIZE) / entry_size;
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// Why an operation on a ring was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// No free slot for another request.
    Full,
    /// The other side published an index that claims more entries than the
    /// ring holds: it is broken or hostile.
    Overflow,
}

/// The shared page of a ring, accessed with atomics and volatile copies.
pub struct SharedPage<'a> {
    base: *mut u8,
    _page: PhantomData<&'a mut [u8; PAGE_SIZE]>,
}

// SAFETY: the page is designed to be shared between agents; every access
// goes through atomics or volatile copies.
unsafe impl Send for SharedPage<'_> {}

impl<'a> SharedPage<'a> {
    /// A ring page this side owns exclusively for `'a` (the other side is
    /// another domain or, in tests, another thread holding its own view).
    pub fn new(page: &'a mut [u8; PAGE_SIZE]) -> Self {
        SharedPage { base: page.as_mut_ptr(), _page: PhantomData }
    }

    /// A view of a page shared with another agent.
    ///
    /// # Safety
    /// `base` must point to a 4-byte-aligned page of `PAGE_SIZE` bytes that
    /// stays mapped for `'a` and is only accessed through `SharedPage`s.
    pub unsafe fn from_raw(base: *mut u8) -> Self {
        SharedPage { base, _page: PhantomData }
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: offset is one of the four header words, inside the page,
        // 4-aligned; AtomicU32 has u32's layout.
        unsafe { &*(self.base.add(offset) as *const AtomicU32) }
    }

    fn load(&self, offset: usize) -> u32 {
        self.index(offset).load(Ordering::Relaxed)
    }

    fn store(&self, offset: usize, value: u32) {
        self.index(offset).store(value, Ordering::Relaxed)
    }

    fn read_entry<T: FromBytes + IntoBytes>(&self, slot: usize, entry_size: usize) -> T {
        let mut value = T::new_zeroed();
        let dst = value.as_mut_bytes();
        let start = RING_HEADER_SIZE + slot * entry_size;
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: slot < ring_size(entry_size), so start + i is inside
            // the page; volatile because the other side may write it.
            *b = unsafe { self.base.add(start + i).read_volatile() };
        }
        value
    }

    fn write_entry<T: IntoBytes + Immutable>(&self, slot: usize, entry_size: usize, value: &T) {
        let start = RING_HEADER_SIZE + slot * entry_size;
        for (i, b) in value.as_bytes().iter().enumerate() {
            // SAFETY: as in read_entry.
            unsafe { self.base.add(start + i).write_volatile(*b) };
        }
    }
}

fn entry_size<Req, Rsp>() -> usize {
    size_of::<Req>().max(size_of::<Rsp>()).max(1)
}

/// The frontend of a ring: produces `Req`, consumes `Rsp`.
pub struct FrontRing<'a, Req, Rsp> {
    page: SharedPage<'a>,
    req_prod_pvt: u32,
    rsp_cons: u32,
    size: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<'a, Req, Rsp> FrontRing<'a, Req, Rsp>
where
    Req: IntoBytes + Immutable,
    Rsp: FromBytes + IntoBytes,
{
    /// Initialises a fresh shared ring (`SHARED_RING_INIT` +
    /// `FRONT_RING_INIT`).
    pub fn init(page: SharedPage<'a>) -> Self {
        page.store(REQ_PROD, 0);
        page.store(RSP_PROD, 0);
        page.store(REQ_EVENT, 1);
        page.store(RSP_EVENT, 1);
        Self::attach(page)
    }

    /// Attaches to an initialised ring (`FRONT_RING_ATTACH`).
    pub fn attach(page: SharedPage<'a>) -> Self {
        let rsp_prod = page.load(RSP_PROD);
        FrontRing {
            req_prod_pvt: page.load(REQ_PROD),
            rsp_cons: rsp_prod,
            size: ring_size(entry_size::<Req, Rsp>()),
            page,
            _types: PhantomData,
        }
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can still be queued.
    pub fn free_requests(&self) -> u32 {
        self.size.wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// Queues a request (not visible to the backend until
    /// [`push_requests`](Self::push_requests)).
    pub fn queue_request(&mut self, req: &Req) -> Result<(), RingError> {
        if self.free_requests() == 0 {
            return Err(RingError::Full);
        }
        let slot = (self.req_prod_pvt & (self.size - 1)) as usize;
        self.page.write_entry(slot, entry_size::<Req, Rsp>(), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued requests; returns whether the backend must be
    /// notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests(&mut self) -> bool {
        let old = self.page.load(REQ_PROD);
        let new = self.req_prod_pvt;
        fence(Ordering::Release); // entries before the index
        self.page.store(REQ_PROD, new);
        fence(Ordering::SeqCst); // index before reading req_event
        let event = self.page.load(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses published and not yet consumed.
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let n = self.page.load(RSP_PROD).wrapping_sub(self.rsp_cons);
        if n > self.size {
            return Err(RingError::Overflow);
        }
        Ok(n)
    }

    /// Takes the next response, if one is published.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        fence(Ordering::Acquire); // index before the entries
        let slot = (self.rsp_cons & (self.size - 1)) as usize;
        let rsp = self.page.read_entry(slot, entry_size::<Req, Rsp>());
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Asks for a notification on the next response and re-checks, closing
    /// the race with a backend that published meanwhile
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`): true if responses are waiting.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.page.store(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The backend of a ring: consumes `Req`, produces `Rsp`.
pub struct BackRing<'a, Req, Rsp> {
    page: SharedPage<'a>,
    rsp_prod_pvt: u32,
    req_cons: u32,
    size: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<'a, Req, Rsp> BackRing<'a, Req, Rsp>
where
    Req: FromBytes + IntoBytes,
    Rsp: IntoBytes + Immutable,
{
    /// Attaches to a ring the frontend initialised (`BACK_RING_ATTACH`).
    pub fn attach(page: SharedPage<'a>) -> Self {
        let rsp_prod = page.load(RSP_PROD);
        BackRing {
            rsp_prod_pvt: rsp_prod,
            req_cons: rsp_prod,
            size: ring_size(entry_size::<Req, Rsp>()),
            page,
            _types: PhantomData,
        }
    }

    /// Requests published and not yet consumed; a frontend claiming more
    /// than the ring holds is an [`RingError::Overflow`]
    /// (`RING_REQUEST_PROD_OVERFLOW`).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let prod = self.page.load(REQ_PROD);
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
        fence(Ordering::Acquire);
        let slot = (self.req_cons & (self.size - 1)) as usize;
        let req = self.page.read_entry(slot, entry_size::<Req, Rsp>());
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Queues a response to a consumed request.
    pub fn queue_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::Full); // nothing consumed to answer
        }
        let slot = (self.rsp_prod_pvt & (self.size - 1)) as usize;
        self.page.write_entry(slot, entry_size::<Req, Rsp>(), rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued responses; returns whether the frontend must be
    /// notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push_responses(&mut self) -> bool {
        let old = self.page.load(RSP_PROD);
        let new = self.rsp_prod_pvt;
        fence(Ordering::Release);
        self.page.store(RSP_PROD, new);
        fence(Ordering::SeqCst);
        let event = self.page.load(RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Asks for a notification on the next request and re-checks
    /// (`RING_FINAL_CHECK_FOR_REQUESTS`): true if requests are waiting.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.page.store(REQ_EVENT, self.req_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? > 0)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;

    #[repr(C, align(4096))]
    struct Page([u8; PAGE_SIZE]);

    type Req = [u32; 4]; // 16 bytes
    type Rsp = [u32; 2];

    #[test]
    fn sizes_follow_xen() {
        assert_eq!(ring_size(16), 128);
        assert_eq!(ring_size(112), 32); // blkif
        assert_eq!(ring_size(12), 256); // netif tx
        assert_eq!(ring_size(8192), 0);
    }

    #[test]
    fn full_ring_and_wraparound() {
        let mut page = Box::new(Page([0; PAGE_SIZE]));
        let base = page.0.as_mut_ptr();
        // SAFETY: both views share a page that outlives them.
        let (fp, bp) = unsafe { (SharedPage::from_raw(base), SharedPage::from_raw(base)) };
        let mut front = FrontRing::<Req, Rsp>::init(fp);
        let mut back = BackRing::<Req, Rsp>::attach(bp);
        for round in 0..5u32 {
            for i in 0..128 {
                front.queue_request(&[round, i, 0, 0]).unwrap();
            }
            assert_eq!(front.queue_request(&[0; 4]), Err(RingError::Full));
            front.push_requests();
            for i in 0..128 {
                let r = back.take_request().unwrap().unwrap();
                assert_eq!(r[..2], [round, i]);
                back.queue_response(&[r[1], round]).unwrap();
            }
            assert_eq!(back.take_request(), Ok(None));
            back.push_responses();
            for i in 0..128 {
                assert_eq!(front.take_response(), Ok(Some([i, round])));
            }
            assert_eq!(front.take_response(), Ok(None));
        }
        // Indices have wrapped past 640 entries of a 128-entry ring.
        assert_eq!(front.free_requests(), 128);
    }

    #[test]
    fn notification_decisions() {
        let mut page = Box::new(Page([0; PAGE_SIZE]));
        let base = page.0.as_mut_ptr();
        // SAFETY: as above.
        let (fp, bp) = unsafe { (SharedPage::from_raw(base), SharedPage::from_raw(base)) };
        let mut front = FrontRing::<Req, Rsp>::init(fp);
        let mut back = BackRing::<Req, Rsp>::attach(bp);
        front.queue_request(&[1; 4]).unwrap();
        assert!(front.push_requests(), "req_event = 1: first request notifies");
        front.queue_request(&[2; 4]).unwrap();
        assert!(!front.push_requests(), "backend has not asked again");
        assert_eq!(back.take_request().unwrap(), Some([1; 4]));
        assert_eq!(back.take_request().unwrap(), Some([2; 4]));
        assert_eq!(back.final_check_for_requests(), Ok(false));
        front.queue_request(&[3; 4]).unwrap();
        assert!(front.push_requests(), "backend re-armed req_event");
        back.queue_response(&[1, 1]).unwrap();
        assert!(back.push_responses(), "rsp_event = 1");
        assert_eq!(front.final_check_for_responses(), Ok(true));
    }

    #[test]
    fn hostile_producer_index_is_caught() {
        let mut page = Box::new(Page([0; PAGE_SIZE]));
        let base = page.0.as_mut_ptr();
        // SAFETY: as above.
        let (fp, bp) = unsafe { (SharedPage::from_raw(base), SharedPage::from_raw(base)) };
        let front = FrontRing::<Req, Rsp>::init(fp);
        let mut back = BackRing::<Req, Rsp>::attach(bp);
        front.page.store(REQ_PROD, 1000);
        assert_eq!(back.take_request(), Err(RingError::Overflow));
    }

    #[test]
    fn two_threads_one_page() {
        let mut page = Box::new(Page([0; PAGE_SIZE]));
        let base = page.0.as_mut_ptr() as usize;
        // SAFETY: the page outlives both threads (joined below).
        let mut front = FrontRing::<Req, Rsp>::init(unsafe { SharedPage::from_raw(base as *mut u8) });
        let back = std::thread::spawn(move || {
            // SAFETY: as above.
            let mut back = BackRing::<Req, Rsp>::attach(unsafe { SharedPage::from_raw(base as *mut u8) });
            let mut served = 0u32;
            while served < 100_000 {
                while let Some(r) = back.take_request().unwrap() {
                    assert_eq!(r[0], served);
                    back.queue_response(&[r[0], r[0].wrapping_mul(3)]).unwrap();
                    served += 1;
                }
                back.push_responses();
                std::hint::spin_loop();
            }
        });
        let (mut sent, mut got) = (0u32, 0u32);
        while got < 100_000 {
            while sent < 100_000 && front.queue_request(&[sent, 0, 0, 0]).is_ok() {
                sent += 1;
            }
            front.push_requests();
            while let Some(rsp) = front.take_response().unwrap() {
                assert_eq!(rsp, [got, got.wrapping_mul(3)]);
                got += 1;
            }
        }
        back.join().unwrap();
        drop(page);
    }
}
