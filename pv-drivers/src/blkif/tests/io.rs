//! I/O between the two ends: data integrity, flushes, discards, full
//! rings and wrap-around, indirect requests, persistent grants, several
//! queues and multi-page rings.

use super::*;
use guest_abi::io::blkif::{BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY};

use crate::blkif::front::SubmitError;

#[test]
fn written_data_reaches_the_disk_and_reads_back() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    let data = pattern(7, 3 * 4096 + 1024);
    let c = p.io(0, Io::Write { sector: 10, data: &data, fua: false });
    assert_eq!(c.status, BLKIF_RSP_OKAY);
    assert_eq!(&p.disk.data.borrow()[10 * 512..10 * 512 + data.len()], &data[..]);
    assert!(p.disk.data.borrow()[..10 * 512].iter().all(|&b| b == 0), "nothing before");
    let c = p.io(0, Io::Read { sector: 10, sectors: (data.len() / 512) as u32 });
    assert_eq!((c.status, c.data), (BLKIF_RSP_OKAY, data));
}

#[test]
fn flushes_and_fua_writes_make_acknowledged_writes_durable() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.io(0, Io::Write { sector: 0, data: &pattern(1, 4096), fua: false });
    assert_eq!(p.disk.unflushed.get(), 4096);
    assert_eq!(p.io(0, Io::Flush).status, BLKIF_RSP_OKAY);
    assert_eq!((p.disk.flushes.get(), p.disk.unflushed.get()), (1, 0));
    p.io(0, Io::Write { sector: 8, data: &pattern(2, 512), fua: false });
    let c = p.io(0, Io::Write { sector: 16, data: &pattern(3, 1024), fua: true });
    assert_eq!(c.status, BLKIF_RSP_OKAY);
    assert_eq!((p.disk.flushes.get(), p.disk.unflushed.get()), (2, 0), "FUA flushes after writing");
}

#[test]
fn discards_zero_the_range_and_respect_the_offer() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.io(0, Io::Write { sector: 0, data: &pattern(4, 8192), fua: false });
    assert_eq!(p.io(0, Io::Discard { sector: 4, sectors: 8 }).status, BLKIF_RSP_OKAY);
    let d = p.disk.data.borrow().clone();
    assert!(d[2048..6144].iter().all(|&b| b == 0));
    assert_eq!(&d[..2048], &pattern(4, 8192)[..2048]);
    assert_eq!(p.io(0, Io::Discard { sector: 2040, sectors: 9 }).status, BLKIF_RSP_ERROR, "past the end");

    let mut no = offer(2048);
    no.discard = false;
    let mut p = Pair::connected(FrontConfig::default(), no);
    assert!(!p.connected_info.is_some_and(|i| i.discard));
    let q = &mut p.front.queues()[0];
    assert_eq!(q.submit(1, Io::Discard { sector: 0, sectors: 8 }), Err(SubmitError::NotSupported));
}

#[test]
fn a_full_ring_refuses_more_and_wraps_around_many_times() {
    let fc = FrontConfig { pool_pages: 64, ..FrontConfig::default() };
    let mut p = Pair::connected(fc, offer(2048));
    let size = p.queues[0].ring_size() as usize;
    assert_eq!(size, 32);
    let mut expected = std::vec![0u8; 2048 * 512];
    let mut next = 0u64;
    for round in 0..10u64 {
        // Fill the ring with one-sector writes, then one more is Busy.
        let mut submitted = 0;
        loop {
            let sector = (next * 7) % 2048;
            let data = pattern(next + 100, 512);
            match p.front.queues()[0].submit(next, Io::Write { sector, data: &data, fua: false }) {
                Ok(()) => {
                    expected[sector as usize * 512..][..512].copy_from_slice(&data);
                    next += 1;
                    submitted += 1;
                }
                Err(SubmitError::Busy) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(submitted, size, "round {round}: a full ring holds RING_SIZE requests");
        p.front.queues()[0].kick(&mut p.fp);
        p.serve();
        let mut out = Vec::new();
        assert_eq!(p.front.queues()[0].complete(&mut out).ok(), Some(size));
        assert!(out.iter().all(|c| c.status == BLKIF_RSP_OKAY));
    }
    assert_eq!(*p.disk.data.borrow(), expected, "every write landed after 10 wraps");
}

#[test]
fn notifications_happen_only_when_the_other_end_asks() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    let port = p.front.queues()[0].port();
    let before = p.xen.borrow().notifies.get(&port).copied().unwrap_or(0);
    // A batch of 8 requests: one push, at most one notification.
    for i in 0..8 {
        let d = pattern(i, 512);
        p.front.queues()[0]
            .submit(i, Io::Write { sector: i, data: &d, fua: false })
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert!(p.front.queues()[0].kick(&mut p.fp));
    // A second push before the backend ran: req_event is behind, no notify.
    p.front.queues()[0].submit(9, Io::Flush).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!p.front.queues()[0].kick(&mut p.fp), "the backend has not consumed the first batch");
    assert_eq!(p.xen.borrow().notifies.get(&port).copied().unwrap_or(0), before + 1);
    let s = p.queues[0].service(&mut p.bp, &p.disk, 100).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((s.requests, s.notify, s.more), (9, true, false));
    let mut out = Vec::new();
    assert_eq!(p.front.queues()[0].complete(&mut out).ok(), Some(9));
}

#[test]
fn large_requests_go_indirect_and_persistent_grants_are_reused() {
    let fc = FrontConfig { pool_pages: 80, max_segments: 64, ..FrontConfig::default() };
    let mut p = Pair::connected(fc, offer(4096));
    assert_eq!(p.connected_info.map(|i| i.max_segments), Some(64));
    let data = pattern(9, 64 * 4096);
    assert_eq!(p.front.queues()[0].max_sectors(), 512);
    for round in 0..5u64 {
        let c = p.io(0, Io::Write { sector: round * 8, data: &data, fua: false });
        assert_eq!(c.status, BLKIF_RSP_OKAY);
        let c = p.io(0, Io::Read { sector: round * 8, sectors: 512 });
        assert_eq!(c.data, data, "round {round}");
    }
    let stats = p.queues[0].stats();
    assert!(stats.persistent_maps <= 65, "each pool page mapped once: {stats:?}");
    assert!(stats.persistent_reuses > 4 * 64, "and reused: {stats:?}");
    assert_eq!(p.xen.borrow().copies, 0, "no copy when persistent");
    assert_eq!(p.front.queues()[0].submit(1, Io::Read { sector: 0, sectors: 520 }), Err(SubmitError::TooLarge));
}

#[test]
fn without_persistent_grants_nothing_stays_mapped_after_a_response() {
    let fc = FrontConfig { persistent: false, pool_pages: 40, ..FrontConfig::default() };
    let mut p = Pair::connected(fc, offer(4096));
    assert_eq!(p.connected_info.map(|i| i.persistent), Some(false));
    let rings = p.xen.borrow().mapped_grants();
    let data = pattern(3, 20 * 4096);
    assert_eq!(p.io(0, Io::Write { sector: 0, data: &data, fua: false }).status, BLKIF_RSP_OKAY);
    assert_eq!(p.io(0, Io::Read { sector: 0, sectors: 160 }).data, data);
    assert_eq!(p.xen.borrow().mapped_grants(), rings, "only the ring stays mapped");
    assert!(p.xen.borrow().copies >= 40, "data went by grant copy");
    // A backend that does not offer persistent grants: same.
    let mut bc = offer(4096);
    bc.persistent = false;
    let mut p = Pair::connected(FrontConfig::default(), bc);
    assert_eq!(p.connected_info.map(|i| i.persistent), Some(false));
    p.io(0, Io::Write { sector: 0, data: &data[..4096], fua: false });
    assert_eq!(p.queues[0].persistent_grants(), 0);
}

#[test]
fn without_indirect_descriptors_requests_stay_at_eleven_segments() {
    let mut bc = offer(4096);
    bc.max_indirect_segments = 0;
    let mut p = Pair::connected(FrontConfig::default(), bc);
    assert!(p.store.get(&std::format!("{BE}/feature-max-indirect-segments")).is_none(), "absent, as blkif.h asks");
    assert_eq!(p.connected_info.map(|i| i.max_segments), Some(11));
    let data = pattern(5, 11 * 4096);
    assert_eq!(p.io(0, Io::Write { sector: 0, data: &data, fua: false }).status, BLKIF_RSP_OKAY);
    assert_eq!(p.front.queues()[0].submit(1, Io::Read { sector: 0, sectors: 96 }), Err(SubmitError::TooLarge));
}

#[test]
fn every_queue_and_every_ring_page_carries_requests() {
    let fc = FrontConfig { queues: 3, ring_order: 2, pool_pages: 300, max_segments: 8, ..FrontConfig::default() };
    let mut p = Pair::connected(fc, offer(8192));
    assert_eq!(p.queues.len(), 3);
    assert_eq!(p.queues[1].ring_size(), 128);
    // 3 × 128 requests in flight at once, one per slot of every ring.
    for q in 0..3 {
        for i in 0..128u64 {
            let sector = (q as u64 * 128 + i) * 8;
            let d = pattern(sector, 4096);
            p.front.queues()[q]
                .submit(sector, Io::Write { sector, data: &d, fua: false })
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
        p.front.queues()[q].kick(&mut p.fp);
    }
    p.serve();
    for q in 0..3 {
        let mut out = Vec::new();
        assert_eq!(p.front.queues()[q].complete(&mut out).ok(), Some(128));
    }
    for s in (0..384u64).map(|i| i * 8) {
        assert_eq!(&p.disk.data.borrow()[s as usize * 512..][..4096], &pattern(s, 4096)[..], "sector {s}");
    }
}

#[test]
fn read_only_disks_refuse_writes_and_discards_but_read() {
    let mut bc = offer(2048);
    bc.read_only = true;
    let mut p = Pair::connected(FrontConfig::default(), bc);
    assert_eq!(p.node(&std::format!("{BE}/info")), "4");
    assert_eq!(p.connected_info.map(|i| i.info), Some(4));
    p.disk.data.borrow_mut()[..512].copy_from_slice(&pattern(8, 512));
    assert_eq!(p.io(0, Io::Write { sector: 0, data: &pattern(1, 512), fua: false }).status, BLKIF_RSP_ERROR);
    assert_eq!(p.io(0, Io::Discard { sector: 0, sectors: 1 }).status, BLKIF_RSP_ERROR);
    assert_eq!(p.io(0, Io::Read { sector: 0, sectors: 1 }).data, pattern(8, 512));
    assert_eq!(p.io(0, Io::Flush).status, BLKIF_RSP_OKAY);
    let _ = BLKIF_RSP_EOPNOTSUPP;
}

#[test]
fn disk_failures_are_io_errors_and_the_queue_goes_on() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.disk.failing.set(true);
    assert_eq!(p.io(0, Io::Read { sector: 0, sectors: 1 }).status, BLKIF_RSP_ERROR);
    assert_eq!(p.io(0, Io::Flush).status, BLKIF_RSP_ERROR);
    p.disk.failing.set(false);
    assert_eq!(p.io(0, Io::Read { sector: 0, sectors: 1 }).status, BLKIF_RSP_OKAY);
}
