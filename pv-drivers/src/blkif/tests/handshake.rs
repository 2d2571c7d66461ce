//! The xenbus handshake in every state, both ends.

use super::*;
use crate::blkif::back::BackendAction;

#[test]
fn both_ends_connect_in_the_order_linux_expects() {
    let mut p = Pair::new(FrontConfig::default(), offer(2048), 2048);
    // Backend 1 → 2 with the whole offer; the frontend waits for it.
    assert_eq!(p.front_step(), FrontendAction::Idle);
    assert_eq!(p.front_state(), Some(1), "the frontend waits for InitWait");
    assert_eq!(p.back_step(), BackendAction::Idle);
    assert_eq!(p.back_state(), Some(2));
    for (k, v) in [
        ("max-ring-page-order", "4"),
        ("multi-queue-max-queues", "4"),
        ("feature-max-indirect-segments", "256"),
        ("feature-persistent", "1"),
        ("feature-flush-cache", "1"),
        ("feature-discard", "1"),
        ("sectors", "2048"),
        ("info", "0"),
        ("sector-size", "512"),
    ] {
        assert_eq!(p.node(&std::format!("{BE}/{k}")), v, "{k}");
    }
    // Frontend 1 → 3 with its rings, in one transaction with the state.
    assert_eq!(p.front_step(), FrontendAction::Idle);
    assert_eq!(p.front_state(), Some(3));
    let ring_write = p.store.writes.iter().position(|(k, _)| k == &std::format!("{FE}/ring-ref"));
    let state_write = p.store.writes.iter().position(|(k, v)| k == &std::format!("{FE}/state") && v == "3");
    assert!(ring_write < state_write, "keys before state");
    assert_eq!(p.node(&std::format!("{FE}/protocol")), "x86_64-abi");
    assert_eq!(p.node(&std::format!("{FE}/feature-persistent")), "1");
    assert!(p.store.get(&std::format!("{FE}/ring-page-order")).is_none(), "one page: ring-ref only");
    // Backend maps and goes to 4; frontend reads the disk and goes to 4.
    assert!(matches!(p.back_step(), BackendAction::Connect(_)));
    assert_eq!(p.back_state(), Some(4));
    let a = p.front_step();
    let FrontendAction::Connected(info) = a else { panic!("{a:?}") };
    assert_eq!(p.front_state(), Some(4));
    assert_eq!((info.sectors, info.sector_size, info.info), (2048, 512, 0));
    assert!(info.flush && info.discard && info.persistent);
    assert_eq!((info.queues, info.ring_order, info.max_segments), (1, 0, 32));
    assert_eq!(p.back_step(), BackendAction::Idle, "connected once");
}

#[test]
fn multi_page_rings_and_queues_are_negotiated_down_to_the_offer() {
    let fc = FrontConfig { queues: 8, ring_order: 6, pool_pages: 16, ..FrontConfig::default() };
    let p = Pair::connected(fc, offer(2048));
    let info = p.connected_info.unwrap_or_else(|| panic!());
    assert_eq!((info.queues, info.ring_order), (4, 4));
    assert_eq!(p.node(&std::format!("{FE}/multi-queue-num-queues")), "4");
    assert_eq!(p.node(&std::format!("{FE}/ring-page-order")), "4");
    assert!(!p.node(&std::format!("{FE}/queue-3/ring-ref15")).is_empty());
    assert!(!p.node(&std::format!("{FE}/queue-3/event-channel")).is_empty());
    assert!(p.store.get(&std::format!("{FE}/ring-ref")).is_none());
    assert_eq!(p.queues.len(), 4);
    assert_eq!(p.queues[0].ring_size(), 512);
}

#[test]
fn a_frontend_that_closes_is_disconnected_before_the_backend_says_so_and_can_reconnect() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.io(0, Io::Write { sector: 0, data: &pattern(1, 4096), fua: false });
    assert!(p.xen.borrow().mapped_grants() > 0, "persistent grants mapped");
    p.front.close(&mut p.store).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.front_state(), Some(5));
    assert_eq!(p.back_step(), BackendAction::Disconnect);
    assert_eq!(p.back_state(), Some(4), "the state is written only after the disconnect");
    assert!(p.queues.is_empty());
    assert_eq!(p.back_step(), BackendAction::Idle);
    assert_eq!(p.back_state(), Some(5));
    // The frontend answers Closed and waits for the backend's Closed
    // (a Linux backend unmaps only then).
    assert_eq!(p.front_step(), FrontendAction::Idle);
    assert_eq!(p.front_state(), Some(6));
    assert!(p.xen.borrow().live_grants() > 0, "nothing ended yet");
    assert_eq!(p.back_step(), BackendAction::Idle, "online=1: the device stays");
    assert_eq!(p.back_state(), Some(6));
    assert_eq!(p.front_step(), FrontendAction::Closed);
    assert_eq!(p.front.leaked_grants(), 0, "the backend unmapped everything first");
    assert_eq!(p.xen.borrow().live_grants(), 0);
    // Reconnect: the frontend goes back to 1, the backend offers again.
    p.store.set(&std::format!("{FE}/state"), "1");
    p.front = BlkfrontDevice::new(&mut p.store, FE, FrontConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    p.connected_info = None;
    p.settle();
    assert!(p.connected_info.is_some());
    let c = p.io(0, Io::Read { sector: 0, sectors: 8 });
    assert_eq!(c.data, pattern(1, 4096), "the data survived the reconnect");
}

#[test]
fn the_toolstack_removes_a_device_as_libxl_does() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    // libxl__initiate_device_generic_remove: online=0, state=5.
    p.store.set(&std::format!("{BE}/online"), "0");
    p.store.set(&std::format!("{BE}/state"), "5");
    assert_eq!(p.front_step(), FrontendAction::Idle, "blkfront answers Closed");
    assert_eq!(p.front_state(), Some(6));
    assert_eq!(p.back_step(), BackendAction::Disconnect);
    assert_eq!(p.back_step(), BackendAction::Remove);
    assert_eq!(p.back_state(), Some(6));
    assert_eq!(p.xen.borrow().mapped_grants(), 0);
    assert_eq!(p.front_step(), FrontendAction::Closed);
    assert_eq!((p.front.leaked_grants(), p.xen.borrow().live_grants()), (0, 0));
}

#[test]
fn grants_a_backend_still_holds_are_leaked_not_reused() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    let gref = p.front.queues()[0].pool_gref(3).unwrap_or(0);
    let held = crate::blkif::back::GrantAccess::map(&mut p.bp, FRONTEND, gref, true);
    assert!(held.is_ok());
    p.front.close(&mut p.store).unwrap_or_else(|e| panic!("{e}"));
    p.settle();
    assert!(p.front.is_closed());
    assert_eq!(p.front.leaked_grants(), 1);
    assert_eq!(p.xen.borrow().live_grants(), 1, "the held grant stays, the rest ended");
    drop(held);
}

#[test]
fn a_removed_backend_directory_or_a_vanished_frontend_removes_the_device() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.store.rm(BE);
    assert_eq!(p.back_step(), BackendAction::Remove);
    assert!(p.store.get(&std::format!("{BE}/state")).is_none(), "nothing written into a removed directory");
    assert_eq!(p.xen.borrow().mapped_grants(), 0);

    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.store.rm("/local/domain/5");
    assert_eq!(p.back_step(), BackendAction::Remove);
}

#[test]
fn a_frontend_that_is_not_there_yet_is_waited_for() {
    let mut p = Pair::new(FrontConfig::default(), offer(2048), 2048);
    p.store.rm(FE);
    assert_eq!(p.back_step(), BackendAction::Idle);
    assert_eq!(p.back_state(), Some(2));
}

/// Connects with the frontend's keys edited by `edit` after it
/// published them; returns the backend's action and error node.
fn with_frontend_keys(edit: impl FnOnce(&mut FakeStore)) -> (BackendAction, Option<u32>, String) {
    let mut p = Pair::new(FrontConfig::default(), offer(2048), 2048);
    p.back_step();
    p.front_step();
    assert_eq!(p.front_state(), Some(3));
    edit(&mut p.store);
    let a = p.back_step();
    let err = p.node("/local/domain/0/error/backend/qdisk/5/51712/error");
    (a, p.back_state(), err)
}

#[test]
fn bad_frontend_keys_fail_the_device_with_an_error_node() {
    let fe = |k: &str| std::format!("{FE}/{k}");
    type Edit = std::boxed::Box<dyn FnOnce(&mut FakeStore)>;
    let cases: [(&str, Edit, &str); 7] = [
        ("no ring-ref", std::boxed::Box::new(move |s: &mut FakeStore| s.rm(&fe("ring-ref"))), "reading"),
        (
            "garbage ring-ref",
            std::boxed::Box::new(|s: &mut FakeStore| s.set(&std::format!("{FE}/ring-ref"), "x1")),
            "ring-ref",
        ),
        (
            "no event-channel",
            std::boxed::Box::new(|s: &mut FakeStore| s.rm(&std::format!("{FE}/event-channel"))),
            "event-channel",
        ),
        (
            "x86_32",
            std::boxed::Box::new(|s: &mut FakeStore| s.set(&std::format!("{FE}/protocol"), "x86_32-abi")),
            "protocol",
        ),
        (
            "order 5",
            std::boxed::Box::new(|s: &mut FakeStore| s.set(&std::format!("{FE}/ring-page-order"), "5")),
            "exceeds",
        ),
        (
            "9 queues",
            std::boxed::Box::new(|s: &mut FakeStore| s.set(&std::format!("{FE}/multi-queue-num-queues"), "9")),
            "queues",
        ),
        (
            "0 queues",
            std::boxed::Box::new(|s: &mut FakeStore| s.set(&std::format!("{FE}/multi-queue-num-queues"), "0")),
            "queues",
        ),
    ];
    for (what, edit, msg) in cases {
        let (a, state, err) = with_frontend_keys(edit);
        assert_eq!(a, BackendAction::Idle, "{what}");
        assert_eq!(state, Some(5), "{what}: closing");
        assert!(err.starts_with("-22 ") && err.contains(msg), "{what}: {err}");
    }
}

#[test]
fn an_absent_protocol_is_the_native_one() {
    let (a, state, _) = with_frontend_keys(|s| s.rm(&std::format!("{FE}/protocol")));
    assert!(matches!(a, BackendAction::Connect(_)), "{a:?}");
    assert_eq!(state, Some(4));
}

#[test]
fn a_ring_the_backend_cannot_map_fails_the_device() {
    let (mut p, _) = (Pair::new(FrontConfig::default(), offer(2048), 2048), ());
    p.back_step();
    p.front_step();
    p.store.set(&std::format!("{FE}/ring-ref"), "4000");
    assert!(matches!(p.back_step(), BackendAction::Connect(_)));
    assert_eq!(p.back_state(), Some(5));
    assert!(p.queues.is_empty());
    // The frontend sees the backend close and releases everything once
    // the backend is Closed.
    p.settle();
    assert!(p.front.is_closed());
    assert_eq!((p.front_state(), p.back_state()), (Some(6), Some(6)));
    assert_eq!(p.xen.borrow().live_grants(), 0);
}

#[test]
fn a_backend_without_geometry_fails_the_frontend() {
    let mut p = Pair::new(FrontConfig::default(), offer(2048), 2048);
    p.back_step();
    p.front_step();
    p.back_step();
    p.store.rm(&std::format!("{BE}/sectors"));
    let a = p.front_step();
    assert!(matches!(&a, FrontendAction::Failed(why) if why.contains("sectors")), "{a:?}");
    assert_eq!(p.front_state(), Some(5));
}

#[test]
fn a_frontend_in_an_unknown_state_is_fatal_and_garbage_is_unknown() {
    let mut p = Pair::connected(FrontConfig::default(), offer(2048));
    p.store.set(&std::format!("{FE}/state"), "7");
    assert_eq!(p.back_step(), BackendAction::Disconnect);
    assert_eq!(p.back_step(), BackendAction::Idle);
    assert_eq!(p.back_state(), Some(5));
    let mut p = Pair::new(FrontConfig::default(), offer(2048), 2048);
    p.store.set(&std::format!("{FE}/state"), "lots");
    assert_eq!(p.back_step(), BackendAction::Idle);
    assert_eq!(p.back_state(), Some(2));
}
