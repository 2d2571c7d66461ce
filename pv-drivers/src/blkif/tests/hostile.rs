//! Hostile peers: a frontend that sends what no correct one would (bad
//! grants, segments, sectors, operations, ring indices) and a backend
//! that answers what was never asked.

use super::*;
use guest_abi::io::blkif::{
    BlkifRequest, BlkifRequestIndirect, BlkifRequestSegment, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
};
use guest_abi::io::ring::BackRing;
use zerocopy::{FromZeros, IntoBytes};

use crate::blkif::back::QueueError;
use crate::blkif::front::FrontendPlatform;
use crate::blkif::request::Invalid;

/// A raw request with the given segments.
fn raw(op: u32, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
    let mut r = BlkifRequest::new_zeroed();
    r.operation = op as u8;
    r.id = id;
    r.sector_number = sector;
    r.nr_segments = segs.len() as u8;
    for (slot, &(gref, f, l)) in r.seg.iter_mut().zip(segs) {
        *slot = BlkifRequestSegment { gref, first_sect: f, last_sect: l, _pad0: [0; 2] };
    }
    r
}

/// Sends `req` (which must be answered echoing `echo`) and returns the status.
fn send(p: &mut Pair, req: BlkifRequest, echo: u8) -> i16 {
    p.front.queues()[0].submit_raw(req.id, &req, echo).unwrap_or_else(|e| panic!("{e:?}"));
    p.front.queues()[0].kick(&mut p.fp);
    p.serve();
    let mut out = Vec::new();
    p.front.queues()[0].complete(&mut out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), 1);
    out[0].status
}

fn hostile_pair(persistent: bool, read_only: bool) -> Pair {
    let mut bc = offer(64);
    bc.read_only = read_only;
    let fc = FrontConfig { persistent, pool_pages: 16, ..FrontConfig::default() };
    let p = Pair::connected(fc, bc);
    p.disk.data.borrow_mut().copy_from_slice(&pattern(42, 64 * 512));
    p
}

#[test]
fn bad_requests_get_errors_and_never_touch_the_disk() {
    for persistent in [false, true] {
        let mut p = hostile_pair(persistent, false);
        let good = p.front.queues()[0].pool_gref(0).unwrap_or(0);
        // A grant of the frontend's for another domain, and a read-only one.
        let other = p.fp.grant(7, 0, false).unwrap_or(0);
        let ro = p.fp.grant(0, 1, true).unwrap_or(0);
        let w = BLKIF_OP_WRITE;
        let r = BLKIF_OP_READ;
        let cases: [(&str, BlkifRequest, u8, i16); 12] = [
            ("bad gref", raw(w, 1, 0, &[(99_999, 0, 7)]), 1, BLKIF_RSP_ERROR),
            ("gref for another domain", raw(w, 2, 0, &[(other, 0, 7)]), 1, BLKIF_RSP_ERROR),
            ("read into a read-only grant", raw(r, 3, 0, &[(ro, 0, 7)]), 0, BLKIF_RSP_ERROR),
            ("last_sect 8", raw(w, 4, 0, &[(good, 0, 8)]), 1, BLKIF_RSP_ERROR),
            ("first after last", raw(w, 5, 0, &[(good, 6, 2)]), 1, BLKIF_RSP_ERROR),
            ("no segments", raw(w, 6, 0, &[]), 1, BLKIF_RSP_ERROR),
            ("past the end", raw(w, 7, 60, &[(good, 0, 7)]), 1, BLKIF_RSP_ERROR),
            ("sector overflow", raw(w, 8, u64::MAX - 2, &[(good, 0, 7)]), 1, BLKIF_RSP_ERROR),
            ("reserved op", raw(4, 9, 0, &[]), 4, BLKIF_RSP_EOPNOTSUPP),
            ("op 255", raw(255, 10, 0, &[]), 255, BLKIF_RSP_EOPNOTSUPP),
            ("last sector is fine", raw(r, 11, 63, &[(good, 0, 0)]), 0, BLKIF_RSP_OKAY),
            ("ro grant may be written from", raw(w, 12, 0, &[(ro, 0, 0)]), 1, BLKIF_RSP_OKAY),
        ];
        for (what, req, echo, want) in cases {
            let before = p.disk.data.borrow().clone();
            let got = send(&mut p, req, echo);
            assert_eq!(got, want, "{what} (persistent {persistent})");
            if want != BLKIF_RSP_OKAY {
                assert_eq!(*p.disk.data.borrow(), before, "{what}: the disk changed");
            }
        }
        let mut twelve = raw(w, 13, 0, &[(good, 0, 7)]);
        twelve.nr_segments = 12;
        assert_eq!(send(&mut p, twelve, 1), BLKIF_RSP_ERROR);
        assert!(p.queues[0].stats().errors >= 9);
    }
}

#[test]
fn writes_to_a_read_only_disk_are_refused() {
    let mut p = hostile_pair(true, true);
    let good = p.front.queues()[0].pool_gref(0).unwrap_or(0);
    let before = p.disk.data.borrow().clone();
    assert_eq!(send(&mut p, raw(BLKIF_OP_WRITE, 1, 0, &[(good, 0, 7)]), 1), BLKIF_RSP_ERROR);
    assert_eq!(p.queues[0].take_last_error().and_then(|e| e.why), Some(Invalid::ReadOnly));
    assert_eq!(*p.disk.data.borrow(), before);
}

fn indirect(op: u8, id: u64, nr: u16, pages: &[u32]) -> BlkifRequest {
    let mut ind = BlkifRequestIndirect::new_zeroed();
    ind.operation = BLKIF_OP_INDIRECT as u8;
    ind.indirect_op = op;
    ind.nr_segments = nr;
    ind.id = id;
    for (g, &p) in ind.indirect_grefs.iter_mut().zip(pages) {
        *g = p;
    }
    let mut r = BlkifRequest::new_zeroed();
    r.as_mut_bytes()[..64].copy_from_slice(ind.as_bytes());
    r
}

#[test]
fn bad_indirect_requests_are_refused() {
    for persistent in [false, true] {
        let mut p = hostile_pair(persistent, false);
        let list_page = p.front.queues()[0].pool_gref(1).unwrap_or(0);
        let data_page = p.front.queues()[0].pool_gref(2).unwrap_or(0);
        // Write a list with a bad segment into the list page through the
        // frontend's own memory: seg 0 good, seg 1 last_sect 9.
        let mut list = std::vec![0u8; 16];
        list[..4].copy_from_slice(&data_page.to_le_bytes());
        list[5] = 7;
        list[8..12].copy_from_slice(&data_page.to_le_bytes());
        list[13] = 9;
        write_pool_page(&mut p, 1, &list);
        let w = BLKIF_OP_WRITE as u8;
        let before = p.disk.data.borrow().clone();
        assert_eq!(send(&mut p, indirect(w, 1, 2, &[list_page]), w), BLKIF_RSP_ERROR, "bad segment in the list");
        assert_eq!(send(&mut p, indirect(w, 2, 1, &[99_999]), w), BLKIF_RSP_ERROR, "bad list gref");
        assert_eq!(send(&mut p, indirect(w, 3, 0, &[list_page]), w), BLKIF_RSP_ERROR, "no segments");
        assert_eq!(send(&mut p, indirect(w, 4, 257, &[list_page]), w), BLKIF_RSP_ERROR, "more than offered");
        assert_eq!(send(&mut p, indirect(3, 5, 1, &[list_page]), 3), BLKIF_RSP_ERROR, "flush inside");
        assert_eq!(*p.disk.data.borrow(), before);
        // The first segment alone is a good request.
        assert_eq!(send(&mut p, indirect(w, 6, 1, &[list_page]), w), BLKIF_RSP_OKAY);
    }
}

/// Writes `data` at the start of pool page `i` of queue 0, as the
/// frontend's kernel would.
fn write_pool_page(p: &mut Pair, i: usize, data: &[u8]) {
    let gref = p.front.queues()[0].pool_gref(i).unwrap_or(0);
    let page =
        crate::blkif::back::GrantAccess::map(&mut p.bp, FRONTEND, gref, true).unwrap_or_else(|e| panic!("{e:?}"));
    crate::blkif::back::MappedPage::write(&page, 0, data);
}

#[test]
fn a_ring_index_that_jumps_breaks_the_ring_not_the_backend() {
    let mut p = hostile_pair(true, false);
    let frame = p.front.queues()[0].ring_frames()[0];
    p.xen.borrow().poke_u32(frame, 0, 1000); // req_prod
    let before = p.disk.data.borrow().clone();
    let r = p.queues[0].service(&mut p.bp, &p.disk, 64);
    assert_eq!(r, Err(QueueError::RingOverflow));
    assert_eq!(*p.disk.data.borrow(), before);
    // The daemon's answer: the device fails and is torn down cleanly.
    p.queues.clear();
    p.back.disconnected();
    p.back.fail(&mut p.store, "ring overflow").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.back_state(), Some(5));
    p.settle();
    assert!(p.front.is_closed());
    assert_eq!(p.xen.borrow().mapped_grants(), 0);
    assert_eq!(p.xen.borrow().live_grants(), 0);
}

#[test]
fn random_requests_never_crash_the_backend_or_escape_the_disk() {
    let mut p = hostile_pair(true, false);
    let good: Vec<u32> = (0..16).filter_map(|i| p.front.queues()[0].pool_gref(i)).collect();
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut answered = 0;
    for round in 0..400u64 {
        let mut req = BlkifRequest::new_zeroed();
        for b in req.as_mut_bytes().iter_mut() {
            *b = next() as u8;
        }
        // Mostly plausible fields, so the checks deep inside are reached.
        req.operation = [0, 1, 2, 3, 5, 6, 4, 9][(next() % 8) as usize];
        req.nr_segments = (next() % 13) as u8;
        req.sector_number = next() % 80;
        for s in req.seg.iter_mut() {
            if next() % 4 != 0 {
                s.gref = good[(next() % 16) as usize];
                s.first_sect = (next() % 9) as u8;
                s.last_sect = (next() % 9) as u8;
            }
        }
        if req.operation == BLKIF_OP_INDIRECT as u8 {
            let bytes = req.as_mut_bytes();
            bytes[1] = (next() % 3) as u8;
            bytes[2..4].copy_from_slice(&((next() % 600) as u16).to_le_bytes());
            bytes[28..32].copy_from_slice(&good[(next() % 16) as usize].to_le_bytes());
        }
        req.id = round % 32;
        let echo = if req.operation == BLKIF_OP_INDIRECT as u8 { req.as_bytes()[1] } else { req.operation };
        if p.front.queues()[0].submit_raw(round, &req, echo).is_err() {
            continue;
        }
        p.front.queues()[0].kick(&mut p.fp);
        p.serve();
        let mut out = Vec::new();
        p.front.queues()[0].complete(&mut out).unwrap_or_else(|e| panic!("round {round}: {e}"));
        answered += out.len();
    }
    assert_eq!(answered, 400);
    let s = p.queues[0].stats();
    assert!(s.errors > 50 && s.okay > 10 && s.not_supported > 10, "{s:?}");
}

#[test]
fn a_backend_answering_what_was_not_asked_breaks_the_frontend_queue() {
    for bad in ["id", "op", "rsp_prod"] {
        let mut p = hostile_pair(false, false);
        p.front.queues()[0].submit(1, Io::Read { sector: 0, sectors: 1 }).unwrap_or_else(|e| panic!("{e:?}"));
        p.front.queues()[0].kick(&mut p.fp);
        let frame = p.front.queues()[0].ring_frames()[0];
        let refs = std::vec![p.front.queues()[0].ring_grefs()[0]];
        let shared = p.bp.map_ring(FRONTEND, &refs).unwrap_or_else(|e| panic!("{e:?}"));
        let mut ring: BackRing<'_, BlkifRequest, guest_abi::io::blkif::BlkifResponse> = BackRing::init(shared);
        let req = ring.take_request().ok().flatten().unwrap_or_else(|| panic!("no request"));
        let mut rsp = crate::blkif::request::response(req.id, req.operation, BLKIF_RSP_OKAY);
        match bad {
            "id" => rsp.id = 17,
            "op" => rsp.operation = 1,
            _ => {}
        }
        let _ = ring.queue_response(&rsp);
        ring.push_responses();
        if bad == "rsp_prod" {
            p.xen.borrow().poke_u32(frame, 8, 5000);
        }
        let mut out = Vec::new();
        let r = p.front.queues()[0].complete(&mut out);
        assert!(matches!(r, Err(crate::blkif::front::FrontError::Protocol(_))), "{bad}: {r:?}");
        assert!(p.front.queues()[0].broken().is_some());
        assert_eq!(p.front.queues()[0].submit(2, Io::Flush), Err(crate::blkif::front::SubmitError::Broken));
    }
}
