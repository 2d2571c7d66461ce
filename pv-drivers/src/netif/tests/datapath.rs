//! Frames both ways: single and multi-slot, GSO extras, checksums, ring
//! wrap, RX batching and waiting for posted buffers.

use std::vec::Vec;

use super::{frame, Pair};
use crate::netif::back::NetbackConfig;
use crate::netif::front::NetfrontConfig;
use crate::netif::keys::Features;
use crate::netif::offload::tests::{ipv4_frame, l4_checksum_ok};
use crate::netif::offload::{set_pseudo_header, Checksum, Gso, GsoKind, Offload, IPPROTO_TCP, IPPROTO_UDP};

fn plain(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Offload)> {
    frames.iter().map(|f| (f.clone(), Offload::default())).collect()
}

#[test]
fn frames_go_both_ways_and_the_rings_wrap() {
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    let mut sent = 0usize;
    // 1200 frames each way, in bursts of 50: each ring wraps four times.
    for burst in 0..24u8 {
        let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(60 + (i * 29) % 1455, burst.wrapping_add(i as u8))).collect();
        let got = p.guest_sends(0, &frames);
        assert_eq!(got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(), frames);
        assert!(got.iter().all(|g| g.1 == Offload::default()));
        let (taken, rx) = p.guest_receives(0, &plain(&frames));
        assert_eq!(taken, 50);
        assert_eq!(rx.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), frames);
        sent += frames.len();
    }
    let s = p.queues[0].stats();
    assert_eq!((s.tx_packets, s.rx_packets, s.tx_drops.total(), s.rx_dropped), (sent as u64, sent as u64, 0, 0));
    assert_eq!(p.front.queues()[0].stats().rx_errors, 0);
}

#[test]
fn multi_slot_frames_need_sg_both_ways() {
    let fc = NetfrontConfig { features: Features::ALL, ..NetfrontConfig::default() };
    let mut p = Pair::connected(fc, NetbackConfig::full(1));
    let big = frame(9000, 3);
    let jumbo = frame(65535, 9);
    let got = p.guest_sends(0, &[big.clone(), jumbo.clone()]);
    assert_eq!(got.len(), 2);
    assert!(got[0].0 == big && got[1].0 == jumbo);
    let (taken, rx) = p.guest_receives(0, &plain(&[big.clone(), jumbo.clone()]));
    assert_eq!(taken, 2);
    assert_eq!(rx.len(), 2);
    assert!(rx[0].data == big && rx[1].data == jumbo);

    // Without SG, a frame is one page at most, either way.
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    assert!(p.front.queues()[0].send(&big).is_err());
    let (taken, rx) = p.guest_receives(0, &plain(&[big, frame(100, 1)]));
    assert_eq!((taken, rx.len()), (2, 1));
    assert_eq!(p.queues[0].stats().rx_dropped, 1);
}

#[test]
fn super_packets_carry_their_gso_extra_and_partial_checksum() {
    let fc = NetfrontConfig { features: Features::ALL, ..NetfrontConfig::default() };
    let mut p = Pair::connected(fc, NetbackConfig::full(1));
    let mut tso = ipv4_frame(IPPROTO_TCP, &[0x5a; 20000], false);
    let (start, offset) = set_pseudo_header(&mut tso).unwrap_or_default();
    let o = Offload { csum: Checksum::Partial { start, offset }, gso: Some(Gso { kind: GsoKind::Tcpv4, mss: 1448 }) };
    let (taken, rx) = p.guest_receives(0, &[(tso.clone(), o)]);
    assert_eq!((taken, rx.len()), (1, 1));
    assert_eq!(rx[0].data, tso);
    assert_eq!(rx[0].offload, o, "the extra and csum_blank came through");
}

#[test]
fn partial_checksums_are_completed_for_a_frontend_that_cannot_take_them() {
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    let good = ipv4_frame(IPPROTO_UDP, b"checksum me", false);
    let mut partial = good.clone();
    let (start, offset) = set_pseudo_header(&mut partial).unwrap_or_default();
    let o = Offload { csum: Checksum::Partial { start, offset }, gso: None };
    let (_, rx) = p.guest_receives(0, &[(partial.clone(), o)]);
    assert_eq!(rx[0].data, good);
    assert_eq!(rx[0].offload.csum, Checksum::Validated);

    // A frontend that takes them gets csum_blank and completes it itself.
    let fc = NetfrontConfig { features: Features::ALL, ..NetfrontConfig::default() };
    let mut p = Pair::connected(fc, NetbackConfig::full(1));
    let (_, rx) = p.guest_receives(0, &[(partial, o)]);
    assert!(l4_checksum_ok(&rx[0].data));
    assert_eq!(rx[0].data, good);
}

#[test]
fn rx_is_one_copy_per_batch_and_waits_for_posted_buffers() {
    let fc = NetfrontConfig { rx_buffers: 8, ..NetfrontConfig::default() };
    let mut p = Pair::connected(fc, NetbackConfig::full(1));
    let frames: Vec<Vec<u8>> = (0..20).map(|i| frame(1000, i)).collect();
    let before = p.copier.calls.get();
    let (taken, rx) = p.guest_receives(0, &plain(&frames));
    assert_eq!(p.copier.calls.get() - before, 1, "one grant-copy call for the batch");
    assert_eq!((taken, rx.len()), (8, 8), "as many as buffers were posted");
    // The frontend posted its pages again: the next eight go.
    let (taken, rx) = p.guest_receives(0, &plain(&frames[8..]));
    assert_eq!((taken, rx.len()), (8, 8));
    assert_eq!(rx[0].data, frames[8]);
    assert_eq!(p.queues[0].rx_arm(), Ok(true), "buffers are posted again");
}

#[test]
fn several_queues_carry_traffic_independently() {
    let fc = NetfrontConfig { queues: 2, ..NetfrontConfig::default() };
    let mut p = Pair::connected(fc, NetbackConfig::full(4));
    assert_eq!(p.queues.len(), 2);
    for q in 0..2 {
        let frames: Vec<Vec<u8>> = (0..10).map(|i| frame(200, q as u8 * 16 + i)).collect();
        assert_eq!(p.guest_sends(q, &frames).len(), 10);
        assert_eq!(p.guest_receives(q, &plain(&frames)).1.len(), 10);
    }
    assert!(p.queues.iter().all(|q| q.stats().tx_packets == 10 && q.stats().rx_packets == 10));
}
