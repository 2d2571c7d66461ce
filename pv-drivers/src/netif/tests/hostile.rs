//! A hostile frontend: malformed TX requests are answered with errors,
//! counted, and leave the queue serving; grants it may not use copy
//! nothing; a broken producer index closes the ring.

use std::vec::Vec;

use guest_abi::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA,
};

use super::{frame, Pair};
use crate::blkif::front::{FrontendPlatform, SharedPage};
use crate::netif::back::{NetbackConfig, QueueError, TxBatch};
use crate::netif::front::NetfrontConfig;
use crate::netif::NetifTxRequest;

fn req(id: u16, gref: u32, offset: u16, size: u16, flags: u32) -> NetifTxRequest {
    NetifTxRequest { gref, offset, flags: flags as u16, id, size }
}

#[test]
fn malformed_requests_are_dropped_counted_and_answered() {
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    let (good_gref, page) = p.front.queues()[0].raw_tx_page(0).map(|(g, pg)| (g, pg.frame())).unwrap_or_default();
    let good = frame(100, 1);
    if let Some((_, pg)) = p.front.queues()[0].raw_tx_page(0) {
        pg.write(0, &good);
    }
    let mut arp = frame(60, 2);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    if let Some((_, pg)) = p.front.queues()[0].raw_tx_page(1) {
        pg.write(0, &arp);
    }
    let arp_gref = p.front.queues()[0].raw_tx_page(1).map_or(0, |x| x.0);
    // A grant of the same page to another domain: not the backend's to use.
    let foreign = p.fp.grant(7, page, true).unwrap_or_default();
    let mut reqs = std::vec![
        req(1, good_gref, 4000, 200, 0),             // crosses its page
        req(2, good_gref, 0, 10, 0),                 // runt
        req(3, good_gref, 0, 100, NETTXF_MORE_DATA), // later slots larger than the packet
        req(4, good_gref, 0, 200, 0),
        req(5, 9999, 0, 100, 0),                      // a grant that does not exist
        req(6, foreign, 0, 100, 0),                   // a grant to someone else
        req(7, good_gref, 0, 100, NETTXF_EXTRA_INFO), // an extra of unknown type
        NetifTxRequest { gref: 0x0000_0009, offset: 0, flags: 0, id: 0, size: 0 },
        req(8, arp_gref, 0, 60, NETTXF_CSUM_BLANK), // a checksum of no L4 header
        req(9, good_gref, 0, 60000, NETTXF_MORE_DATA), // more slots than netif allows
    ];
    for i in 0..25u16 {
        reqs.push(req(10 + i, good_gref, 0, 100, if i < 24 { NETTXF_MORE_DATA } else { 0 }));
    }
    reqs.push(req(40, good_gref, 0, 100, 0)); // and a good packet after all that
    let n = p.front.queues()[0].raw_push_tx(&mut p.fp, &reqs);
    assert_eq!(n, reqs.len());
    let got = p.backend_takes_raw(0);
    assert_eq!(got, std::vec![good.clone()], "only the good packet goes out");
    let d = p.queues[0].stats().tx_drops;
    assert_eq!(
        (d.cross_page, d.runt, d.size_mismatch, d.bad_grant, d.bad_extra, d.bad_headers, d.too_many_slots),
        (1, 1, 1, 2, 1, 1, 1),
        "{d:?}"
    );
    let mut rsp = Vec::new();
    p.front.queues()[0].raw_take_tx(&mut rsp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rsp.len(), reqs.len(), "every slot is answered");
    let status =
        |id: u16| rsp.iter().filter(|r| r.id == id && r.status != NETIF_RSP_NULL).map(|r| r.status).collect::<Vec<_>>();
    for id in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 34] {
        assert_eq!(status(id), std::vec![NETIF_RSP_ERROR], "id {id}");
    }
    assert_eq!(status(40), std::vec![NETIF_RSP_OKAY]);
    assert_eq!(rsp.iter().filter(|r| r.status == NETIF_RSP_NULL).count(), 1, "the extra");

    // The queue still serves the frontend normally.
    let frames: Vec<Vec<u8>> = (0..5).map(|i| frame(300, i)).collect();
    assert_eq!(p.guest_sends(0, &frames).len(), 5);
}

#[test]
fn an_impossible_producer_index_breaks_the_ring() {
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    let (tx_frame, rx_frame) = p.front.queues()[0].ring_frames();
    p.xen.borrow().poke_u32(tx_frame, 0, 1000);
    let mut batch = TxBatch::default();
    let r = p.queues[0].tx_service(&mut p.copier, &mut batch, 0, 64);
    assert_eq!(r.err(), Some(QueueError::RingOverflow("TX")));
    p.xen.borrow().poke_u32(rx_frame, 0, 5000);
    let mut buf = frame(60, 1);
    let list = [crate::netif::back::RxFrame { start: 0, len: 60, offload: Default::default() }];
    let r = p.queues[0].rx_service(&mut p.copier, &mut buf, &list);
    assert_eq!(r.err(), Some(QueueError::RingOverflow("RX")));
}

impl Pair {
    /// The frames the backend takes now, without reaping (the test reads
    /// the responses raw).
    fn backend_takes_raw(&mut self, q: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut batch = TxBatch::default();
        loop {
            let s = self.queues[q].tx_service(&mut self.copier, &mut batch, 0, 64).unwrap_or_else(|e| panic!("{e}"));
            out.extend(batch.frames.iter().map(|f| batch.frame(f).to_vec()));
            if !s.more {
                return out;
            }
        }
    }
}
