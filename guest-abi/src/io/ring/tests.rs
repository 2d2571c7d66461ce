//! Host tests of the ring protocol: both ends on one page, in one thread
//! or two.

extern crate std;

use std::boxed::Box;

use super::*;
use crate::io::blkif::{BlkifRequest, BlkifResponse};
use crate::io::netif::{
    NetifCtrlRequest, NetifCtrlResponse, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
};

type Req = [u32; 4]; // 16 bytes: 252 fit, so 128 entries
type Rsp = [u32; 2];

/// Front and back views of one fresh page.
fn pair(page: &mut RingPage) -> (FrontRing<'_, Req, Rsp>, BackRing<'_, Req, Rsp>) {
    let base = page.0.as_mut_ptr();
    // SAFETY: both views share a page-aligned page that outlives them.
    let (f, b) = unsafe { (SharedRing::from_raw(base, 1), SharedRing::from_raw(base, 1)) };
    let front = FrontRing::init(f);
    (front, BackRing::init(b))
}

#[test]
fn sizes_follow_xen() {
    assert_eq!(ring_size(PAGE_SIZE, 16), 128);
    assert_eq!(ring_entries::<BlkifRequest, BlkifResponse>(1), 32);
    assert_eq!(ring_entries::<NetifTxRequest, NetifTxResponse>(1), 256);
    assert_eq!(ring_entries::<NetifRxRequest, NetifRxResponse>(1), 256);
    assert_eq!(ring_entries::<NetifCtrlRequest, NetifCtrlResponse>(1), 128);
    assert_eq!(ring_entries::<BlkifRequest, BlkifResponse>(2), 64, "multi-page ring");
    assert_eq!(entry_size::<[u32; 3], u64>(), 16, "a union is rounded up to its alignment");
    assert_eq!(ring_size(PAGE_SIZE, 8192), 0);
}

#[test]
fn init_writes_xen_header() {
    let mut page = Box::new(RingPage([0xaa; PAGE_SIZE]));
    let _ = pair(&mut page);
    let header = SringHeader::read_from_prefix(&page.0).unwrap().0;
    assert_eq!((header.req_prod, header.req_event, header.rsp_prod, header.rsp_event), (0, 1, 0, 1));
    assert_eq!(header.pvt, [0; 4]);
    assert_eq!(header.__pad, [0; 44]);
}

#[test]
fn full_ring_and_wraparound() {
    let mut page = Box::new(RingPage::new());
    let (mut front, mut back) = pair(&mut page);
    for round in 0..5u32 {
        for i in 0..128 {
            front.queue_request(&[round, i, 0, 0]).unwrap();
        }
        assert!(front.is_full());
        assert_eq!(front.queue_request(&[0; 4]), Err(RingError::Full));
        front.push_requests();
        for i in 0..128 {
            let r = back.take_request().unwrap().unwrap();
            assert_eq!(r[..2], [round, i]);
            back.queue_response(&[r[1], round]).unwrap();
        }
        assert_eq!(back.take_request(), Ok(None));
        assert_eq!(back.queue_response(&[0, 0]), Err(RingError::Full), "nothing left to answer");
        back.push_responses();
        for i in 0..128 {
            assert_eq!(front.take_response(), Ok(Some([i, round])));
        }
        assert_eq!(front.take_response(), Ok(None));
    }
    assert_eq!(front.free_requests(), 128);
}

#[test]
fn indices_wrap_past_u32_max() {
    let mut page = Box::new(RingPage::new());
    let base = page.0.as_mut_ptr();
    let start = u32::MAX - 40;
    // SAFETY: both views share a page that outlives them.
    let (f, b) = unsafe { (SharedRing::from_raw(base, 1), SharedRing::from_raw(base, 1)) };
    for offset in [REQ_PROD, RSP_PROD] {
        f.store(offset, start);
    }
    let mut front = FrontRing::<Req, Rsp>::attach(f, start);
    let mut back = BackRing::<Req, Rsp>::attach(b, start);
    for n in 0..100u32 {
        front.queue_request(&[n; 4]).unwrap();
        front.push_requests();
        assert_eq!(back.take_request(), Ok(Some([n; 4])));
        back.queue_response(&[n, !n]).unwrap();
        back.push_responses();
        assert_eq!(front.take_response(), Ok(Some([n, !n])));
    }
    assert_eq!(page_word(&page, REQ_PROD), start.wrapping_add(100));
}

fn page_word(page: &RingPage, offset: usize) -> u32 {
    u32::from_le_bytes(page.0[offset..offset + 4].try_into().unwrap())
}

#[test]
fn notification_decisions() {
    let mut page = Box::new(RingPage::new());
    let (mut front, mut back) = pair(&mut page);
    front.queue_request(&[1; 4]).unwrap();
    assert!(front.push_requests(), "req_event = 1: the first request notifies");
    front.queue_request(&[2; 4]).unwrap();
    assert!(!front.push_requests(), "the backend has not asked again");
    assert_eq!(back.take_request().unwrap(), Some([1; 4]));
    assert_eq!(back.take_request().unwrap(), Some([2; 4]));
    assert_eq!(back.final_check_for_requests(), Ok(false), "nothing left: re-arm and sleep");
    front.queue_request(&[3; 4]).unwrap();
    assert!(front.push_requests(), "the backend re-armed req_event");

    // A final check that finds work does not re-arm.
    front.queue_request(&[4; 4]).unwrap();
    assert!(!front.push_requests());
    assert_eq!(back.final_check_for_requests(), Ok(true));

    back.queue_response(&[1, 1]).unwrap();
    assert!(back.push_responses(), "rsp_event = 1");
    back.queue_response(&[2, 2]).unwrap();
    assert!(!back.push_responses(), "the frontend has not asked again");
    assert_eq!(front.final_check_for_responses(), Ok(true));
    assert_eq!(front.take_response(), Ok(Some([1, 1])));
    assert_eq!(front.take_response(), Ok(Some([2, 2])));
    assert_eq!(front.final_check_for_responses(), Ok(false));

    // Batching: an event index three ahead notifies only when a push
    // crosses it.
    while back.take_request().unwrap().is_some() {}
    let cons = back.req_cons;
    back.shared.store(REQ_EVENT, cons.wrapping_add(3));
    front.queue_request(&[5; 4]).unwrap();
    front.queue_request(&[6; 4]).unwrap();
    assert!(!front.push_requests(), "two requests do not reach the event");
    front.queue_request(&[7; 4]).unwrap();
    assert!(front.push_requests(), "the third reaches it");
}

#[test]
fn hostile_producer_indices_are_caught() {
    let mut page = Box::new(RingPage::new());
    let (front, mut back) = pair(&mut page);
    front.shared.store(REQ_PROD, 1000);
    assert_eq!(back.take_request(), Err(RingError::Overflow));
    assert_eq!(back.final_check_for_requests(), Err(RingError::Overflow));

    let mut page = Box::new(RingPage::new());
    let (mut front, back) = pair(&mut page);
    back.shared.store(RSP_PROD, 129);
    assert_eq!(front.take_response(), Err(RingError::Overflow));
}

#[test]
fn two_threads_one_page() {
    const N: u32 = 100_000;
    let mut page = Box::new(RingPage::new());
    let base = page.0.as_mut_ptr() as usize;
    // SAFETY: the page outlives both threads (joined below).
    let mut front = FrontRing::<Req, Rsp>::init(unsafe { SharedRing::from_raw(base as *mut u8, 1) });
    let back = std::thread::spawn(move || {
        // SAFETY: as above.
        let mut back = BackRing::<Req, Rsp>::init(unsafe { SharedRing::from_raw(base as *mut u8, 1) });
        let mut served = 0u32;
        while served < N {
            while let Some(r) = back.take_request().unwrap() {
                assert_eq!(r, [served, served ^ 0x5555, 7, served.wrapping_mul(3)], "entry torn");
                back.queue_response(&[r[0], r[0].wrapping_mul(3)]).unwrap();
                served += 1;
            }
            back.push_responses();
            if !back.final_check_for_requests().unwrap() {
                std::hint::spin_loop();
            }
        }
    });
    let (mut sent, mut got) = (0u32, 0u32);
    while got < N {
        while sent < N && front.queue_request(&[sent, sent ^ 0x5555, 7, sent.wrapping_mul(3)]).is_ok() {
            sent += 1;
        }
        front.push_requests();
        while let Some(rsp) = front.take_response().unwrap() {
            assert_eq!(rsp, [got, got.wrapping_mul(3)]);
            got += 1;
        }
        front.final_check_for_responses().unwrap();
    }
    back.join().unwrap();
    drop(page);
}
