//! Both ends of netif against each other through the fake platform: the
//! handshake (features, split channels, several queues, closing), frames
//! both ways (single and multi-slot, GSO extras, checksums completed
//! where the peer cannot take them partial, ring wrap, RX batching and
//! waiting for buffers), and a hostile frontend's malformed requests.

mod datapath;
mod handshake;
mod hostile;

use std::cell::Cell;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use crate::blkif::back::{CopySpan, GrantAccess};
use crate::netif::back::{BackendAction, GrantCopy, NetbackConfig, NetbackDevice, NetbackQueue, RxFrame, TxBatch};
use crate::netif::front::{FrontendAction, NetfrontConfig, NetfrontDevice, Received};
use crate::netif::offload::Offload;
use crate::testing::{self, FakeBack, FakeFront, FakeStore, FakeXen, FRONTEND};

/// The frontend directory libxl makes for vif 0 of domain 5.
pub const FE: &str = "/local/domain/5/device/vif/0";
/// Its backend directory (our backend's kind).
pub const BE: &str = "/local/domain/0/backend/qnic/5/0";
/// The guest's MAC.
pub const MAC: &str = "00:16:3e:00:00:05";

/// What libxl's `libxl__set_xenstore_nic` writes, both directories at
/// state 1.
pub fn toolstack(store: &mut FakeStore) {
    for (k, v) in [
        ("frontend", FE),
        ("frontend-id", "5"),
        ("online", "1"),
        ("state", "1"),
        ("handle", "0"),
        ("mac", MAC),
        ("bridge", "xenbr0"),
        ("script", "vif-bridge"),
        ("type", "vif"),
    ] {
        store.set(&std::format!("{BE}/{k}"), v);
    }
    for (k, v) in [("backend", BE), ("backend-id", "0"), ("state", "1"), ("handle", "0"), ("mac", MAC)] {
        store.set(&std::format!("{FE}/{k}"), v);
    }
}

/// The fake backend's grant copies, one span at a time (so each has
/// its own verdict), counting the calls.
pub struct Copier {
    pub back: FakeBack,
    pub calls: Rc<Cell<u32>>,
}

impl GrantCopy for Copier {
    fn copy_from_frontend(&mut self, domid: u16, spans: &[CopySpan], buf: &mut [u8], ok: &mut [bool]) {
        self.calls.set(self.calls.get() + 1);
        for (s, ok) in spans.iter().zip(ok.iter_mut()) {
            *ok = self.back.copy_from_guest(domid, core::slice::from_ref(s), buf).is_ok();
        }
    }
    fn copy_to_frontend(&mut self, domid: u16, spans: &[CopySpan], buf: &[u8], ok: &mut [bool]) {
        self.calls.set(self.calls.get() + 1);
        for (s, ok) in spans.iter().zip(ok.iter_mut()) {
            *ok = self.back.copy_to_guest(domid, core::slice::from_ref(s), buf).is_ok();
        }
    }
}

/// A frontend, a backend and everything between them.
pub struct Pair {
    pub xen: FakeXen,
    pub store: FakeStore,
    pub fp: FakeFront,
    pub copier: Copier,
    pub front: NetfrontDevice<FakeFront>,
    pub back: NetbackDevice,
    pub queues: Vec<NetbackQueue<'static>>,
    pub rx_notify: Option<bool>,
    pub removed: bool,
    pub front_actions: Vec<FrontendAction>,
}

impl Pair {
    /// Both ends created over the toolstack's directories.
    pub fn new(fc: NetfrontConfig, bc: NetbackConfig) -> Pair {
        let xen = testing::xen();
        let mut store = FakeStore::default();
        toolstack(&mut store);
        let front = NetfrontDevice::new(&mut store, FE, fc).unwrap_or_else(|e| panic!("{e}"));
        let back = NetbackDevice::new("/local/domain/0", BE, FE, FRONTEND, bc);
        Pair {
            fp: FakeFront { xen: xen.clone() },
            copier: Copier { back: FakeBack { xen: xen.clone() }, calls: Rc::new(Cell::new(0)) },
            xen,
            store,
            front,
            back,
            queues: Vec::new(),
            rx_notify: None,
            removed: false,
            front_actions: Vec::new(),
        }
    }

    /// Steps both ends until neither has anything to do.
    pub fn settle(&mut self) {
        for _ in 0..20 {
            let writes = self.store.writes.len();
            let mut busy = false;
            match self.back.step(&mut self.store).unwrap_or_else(|e| panic!("{e}")) {
                BackendAction::Idle => {}
                BackendAction::Connect(info) => {
                    busy = true;
                    for q in &info.queues {
                        let tx = self.copier.back.map_ring(info.frontend_id, &[q.tx_ring_ref]);
                        let rx = self.copier.back.map_ring(info.frontend_id, &[q.rx_ring_ref]);
                        let (tx, rx) = (tx.unwrap_or_else(|e| panic!("{e:?}")), rx.unwrap_or_else(|e| panic!("{e:?}")));
                        self.queues.push(NetbackQueue::new(tx, rx, info.frontend_id, info.features));
                    }
                    self.rx_notify = Some(info.rx_notify);
                    self.back.connected(&mut self.store).unwrap_or_else(|e| panic!("{e}"));
                }
                BackendAction::Disconnect => {
                    busy = true;
                    self.queues.clear();
                    self.back.disconnected();
                }
                BackendAction::Remove => {
                    self.queues.clear();
                    self.removed = true;
                }
            }
            match self.front.step(&mut self.store, &mut self.fp).unwrap_or_else(|e| panic!("{e}")) {
                FrontendAction::Idle => {}
                a => {
                    busy = true;
                    self.front_actions.push(a);
                }
            }
            if !busy && self.store.writes.len() == writes {
                return;
            }
        }
        panic!("the handshake does not settle");
    }

    /// A connected pair.
    pub fn connected(fc: NetfrontConfig, bc: NetbackConfig) -> Pair {
        let mut p = Pair::new(fc, bc);
        p.settle();
        assert!(p.front.is_connected() && p.back.is_connected(), "{:?}", p.store.nodes);
        p
    }

    /// Sends `frames` from the frontend (queue `q`) and returns what the
    /// backend took, with the drops it counted.
    pub fn guest_sends(&mut self, q: usize, frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Offload)> {
        let fq = &mut self.front.queues()[q];
        for f in frames {
            fq.send(f).unwrap_or_else(|e| panic!("{e:?}"));
        }
        fq.flush(&mut self.fp);
        self.backend_takes(q)
    }

    /// Everything the backend's queue `q` takes from its TX ring now.
    pub fn backend_takes(&mut self, q: usize) -> Vec<(Vec<u8>, Offload)> {
        let mut out = Vec::new();
        let mut batch = TxBatch::default();
        loop {
            let s = self.queues[q].tx_service(&mut self.copier, &mut batch, 10, 64).unwrap_or_else(|e| panic!("{e}"));
            out.extend(batch.frames.iter().map(|f| (batch.frame(f).to_vec(), f.offload)));
            if !s.more {
                break;
            }
        }
        let _ = self.front.queues()[q].reap_tx().unwrap_or_else(|e| panic!("{e}"));
        out
    }

    /// Gives `frames` to the frontend through queue `q`, as far as its
    /// buffers go; how many were taken, and what the frontend received.
    pub fn guest_receives(&mut self, q: usize, frames: &[(Vec<u8>, Offload)]) -> (usize, Vec<Received>) {
        let mut buf = Vec::new();
        let mut list = Vec::new();
        for (f, o) in frames {
            list.push(RxFrame { start: buf.len(), len: f.len(), offload: *o });
            buf.extend_from_slice(f);
        }
        let s = self.queues[q].rx_service(&mut self.copier, &mut buf, &list).unwrap_or_else(|e| panic!("{e}"));
        let mut got = Vec::new();
        self.front.queues()[q].receive(&mut self.fp, &mut got).unwrap_or_else(|e| panic!("{e}"));
        (s.taken, got)
    }
}

/// A frame of `len` bytes: broadcast Ethernet header, then a pattern
/// seeded by `seed`.
pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    if len >= 14 {
        f[..6].copy_from_slice(&[0xff; 6]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    }
    f
}

/// A short description of what a store holds under `dir`, for failures.
pub fn dump(store: &FakeStore, dir: &str) -> String {
    store.nodes.iter().filter(|(k, _)| k.starts_with(dir)).map(|(k, v)| std::format!("{k} = {v}\n")).collect()
}
