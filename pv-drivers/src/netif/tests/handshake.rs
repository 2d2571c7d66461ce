//! The handshake: what each end writes, split channels, several queues,
//! a frontend that cannot connect, closing and removal.

use std::string::ToString;

use super::{dump, Pair, BE, FE};
use crate::netif::back::NetbackConfig;
use crate::netif::front::{FrontendAction, NetfrontConfig};
use crate::netif::keys::Features;
use crate::xenbus::XenbusState;

#[test]
fn both_ends_connect_with_the_keys_linux_reads() {
    let p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(4));
    let get = |k: &str| p.store.get(k).map(ToString::to_string);
    for (k, v) in [
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-split-event-channels", "1"),
        ("multi-queue-max-queues", "4"),
        ("state", "4"),
    ] {
        assert_eq!(get(&std::format!("{BE}/{k}")).as_deref(), Some(v), "{k}\n{}", dump(&p.store, BE));
    }
    for (k, v) in
        [("request-rx-copy", "1"), ("feature-rx-notify", "1"), ("multi-queue-num-queues", "1"), ("state", "4")]
    {
        assert_eq!(get(&std::format!("{FE}/{k}")).as_deref(), Some(v), "{k}\n{}", dump(&p.store, FE));
    }
    for k in ["tx-ring-ref", "rx-ring-ref", "event-channel-tx", "event-channel-rx"] {
        assert!(get(&std::format!("{FE}/{k}")).is_some(), "{k}\n{}", dump(&p.store, FE));
    }
    assert_eq!(p.store.get(&std::format!("{FE}/feature-no-csum-offload")), Some("1"));
    assert_eq!(p.queues.len(), 1);
    assert_eq!(p.queues[0].features(), Features::NONE, "the default frontend asks for nothing");
    assert_eq!(p.rx_notify, Some(true));
}

#[test]
fn one_event_channel_without_the_split_offer_and_several_queues_under_their_dirs() {
    let bc = NetbackConfig { split_event_channels: false, ..NetbackConfig::full(2) };
    let fc = NetfrontConfig { queues: 3, features: Features::ALL, ..NetfrontConfig::default() };
    let mut p = Pair::connected(fc, bc);
    assert_eq!(p.store.get(&std::format!("{FE}/multi-queue-num-queues")), Some("2"), "capped at the offer");
    for q in 0..2 {
        assert!(p.store.get(&std::format!("{FE}/queue-{q}/event-channel")).is_some(), "{}", dump(&p.store, FE));
        assert!(p.store.get(&std::format!("{FE}/queue-{q}/event-channel-tx")).is_none());
        assert!(p.store.get(&std::format!("{FE}/queue-{q}/tx-ring-ref")).is_some());
    }
    assert!(p.store.get(&std::format!("{FE}/tx-ring-ref")).is_none(), "no flat keys with several queues");
    assert_eq!(p.queues.len(), 2);
    assert_eq!(p.queues[1].features(), Features::ALL);
    let (tx, rx) = p.front.queues()[0].ports();
    assert_eq!(tx, rx);
}

#[test]
fn a_frontend_without_rx_copy_or_with_too_many_queues_fails_the_vif() {
    for (key, value, why) in [
        ("request-rx-copy", "0", "request-rx-copy"),
        ("multi-queue-num-queues", "9", "queues"),
        ("tx-ring-ref", "", "tx-ring-ref"),
    ] {
        let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(4));
        // Replay the frontend's publication with one key broken.
        p.store.set(&std::format!("{FE}/{key}"), value);
        p.queues.clear();
        p.back.disconnected();
        p.settle();
        let err = p.store.get("/local/domain/0/error/backend/qnic/5/0/error").unwrap_or_default().to_string();
        assert!(err.starts_with("-22 ") && err.contains(why), "{key}: {err}\n{}", dump(&p.store, "/local/domain/0"));
        assert!(matches!(p.store.state(BE), Some(5 | 6)), "{}", dump(&p.store, BE));
    }
}

#[test]
fn a_backend_without_rx_copy_is_refused() {
    let mut p = Pair::new(NetfrontConfig::default(), NetbackConfig::full(1));
    // The backend offers, then the offer loses feature-rx-copy.
    let _ = p.back.step(&mut p.store);
    p.store.set(&std::format!("{BE}/feature-rx-copy"), "0");
    let first = p.front.step(&mut p.store, &mut p.fp).unwrap_or_else(|e| panic!("{e}"));
    p.front_actions.push(first);
    p.settle();
    assert!(
        p.front_actions.iter().any(|a| matches!(a, FrontendAction::Failed(w) if w.contains("copying receive path"))),
        "{:?}",
        p.front_actions
    );
    assert!(matches!(p.store.state(FE), Some(5 | 6)), "closed after failing");
}

#[test]
fn closing_and_removal_follow_the_toolstack() {
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    // xl network-detach: online=0, state=5 on the backend.
    p.store.set(&std::format!("{BE}/online"), "0");
    p.store.set(&std::format!("{BE}/state"), "5");
    p.settle();
    assert!(p.front_actions.contains(&FrontendAction::Closed));
    assert_eq!(p.store.state(FE), Some(XenbusState::Closed.to_raw()));
    assert!(p.removed, "front 6 and online 0: the backend goes away\n{}", dump(&p.store, BE));
    assert_eq!(p.store.state(BE), Some(6));
    assert_eq!(p.xen.borrow().mapped_grants(), 0);
    assert_eq!(p.xen.borrow().live_grants(), 0, "the frontend ended every grant");
}

#[test]
fn a_vanished_frontend_domain_removes_the_device() {
    let mut p = Pair::connected(NetfrontConfig::default(), NetbackConfig::full(1));
    p.store.rm("/local/domain/5");
    let _ = p.back.step(&mut p.store);
    p.settle();
    assert!(p.removed);
    assert!(p.queues.is_empty());
}
