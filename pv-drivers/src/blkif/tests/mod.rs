//! Both ends of blkif against each other through the fake platform: the
//! handshake in every state, I/O over the rings (wrap-around, full rings,
//! indirect requests, persistent-grant reuse, multi-page rings, several
//! queues), and hostile peers on either side.

mod handshake;
mod hostile;
mod io;

use std::string::{String, ToString};
use std::vec::Vec;

use crate::blkif::back::{BackendAction, BackendConfig, BlkbackDevice, BlkbackQueue, QueueConfig};
use crate::blkif::front::{BlkfrontDevice, Completion, FrontConfig, FrontendAction, Io};
use crate::testing::{self, FakeBack, FakeFront, FakeMapped, FakeStore, FakeXen, MemDisk, FRONTEND};

/// The frontend directory libxl makes for `xvda` of domain 5.
pub const FE: &str = "/local/domain/5/device/vbd/51712";
/// Its backend directory (our backend's kind).
pub const BE: &str = "/local/domain/0/backend/qdisk/5/51712";

/// What libxl's `device_disk_add` writes, both directories at state 1.
pub fn toolstack(store: &mut FakeStore) {
    for (k, v) in [
        ("frontend", FE),
        ("frontend-id", "5"),
        ("online", "1"),
        ("state", "1"),
        ("params", "raw:/disk.img"),
        ("mode", "w"),
        ("dev", "xvda"),
        ("type", "qdisk"),
        ("device-type", "disk"),
    ] {
        store.set(&std::format!("{BE}/{k}"), v);
    }
    for (k, v) in [("backend", BE), ("backend-id", "0"), ("state", "1"), ("virtual-device", "51712")] {
        store.set(&std::format!("{FE}/{k}"), v);
    }
}

/// A frontend, a backend and everything between them.
pub struct Pair {
    pub xen: FakeXen,
    pub store: FakeStore,
    pub fp: FakeFront,
    pub bp: FakeBack,
    pub front: BlkfrontDevice<FakeFront>,
    pub back: BlkbackDevice,
    pub queues: Vec<BlkbackQueue<'static, FakeMapped>>,
    pub disk: MemDisk,
    pub connected_info: Option<crate::blkif::front::DiskInfo>,
    pub front_actions: Vec<FrontendAction>,
    pub removed: bool,
    pub tag: u64,
}

impl Pair {
    /// Both ends created over the toolstack's directories.
    pub fn new(fc: FrontConfig, bc: BackendConfig, sectors: u64) -> Pair {
        let xen = testing::xen();
        let mut store = FakeStore::default();
        toolstack(&mut store);
        let front = BlkfrontDevice::new(&mut store, FE, fc).unwrap_or_else(|e| panic!("{e}"));
        let back = BlkbackDevice::new("/local/domain/0", BE, FE, FRONTEND, bc);
        Pair {
            fp: FakeFront { xen: xen.clone() },
            bp: FakeBack { xen: xen.clone() },
            xen,
            store,
            front,
            back,
            queues: Vec::new(),
            disk: MemDisk::new(sectors),
            connected_info: None,
            front_actions: Vec::new(),
            removed: false,
            tag: 0,
        }
    }

    /// Connected with defaults, a 1 MiB disk.
    pub fn connected(fc: FrontConfig, bc: BackendConfig) -> Pair {
        let mut p = Pair::new(fc, bc, bc.sectors);
        p.settle();
        assert!(p.connected_info.is_some(), "did not connect: {:?}\n{:?}", p.front_actions, p.store.nodes);
        p
    }

    /// One backend step, doing what it asks.
    pub fn back_step(&mut self) -> BackendAction {
        let action = self.back.step(&mut self.store).unwrap_or_else(|e| panic!("{e}"));
        match &action {
            BackendAction::Connect(info) => {
                let cfg = QueueConfig {
                    frontend: info.frontend_id,
                    offer: self.back.config().offer(),
                    read_only: self.back.config().read_only,
                    persistent: info.persistent,
                };
                let mut queues = Vec::new();
                for q in &info.queues {
                    match self.bp.map_ring(info.frontend_id, &q.refs) {
                        Ok(ring) => queues.push(BlkbackQueue::new(ring, cfg)),
                        Err(e) => {
                            let _ = self.back.fail(&mut self.store, &e.0);
                            return action;
                        }
                    }
                }
                self.queues = queues;
                self.back.connected(&mut self.store).unwrap_or_else(|e| panic!("{e}"));
            }
            BackendAction::Disconnect => {
                self.queues.clear();
                self.back.disconnected();
            }
            BackendAction::Remove => {
                self.queues.clear();
                self.removed = true;
            }
            BackendAction::Idle => {}
        }
        action
    }

    /// One frontend step.
    pub fn front_step(&mut self) -> FrontendAction {
        let a = self.front.step(&mut self.store, &mut self.fp).unwrap_or_else(|e| panic!("{e}"));
        if let FrontendAction::Connected(info) = &a {
            self.connected_info = Some(*info);
        }
        if a != FrontendAction::Idle {
            self.front_actions.push(a.clone());
        }
        a
    }

    /// Steps both ends until neither has anything left to do.
    pub fn settle(&mut self) {
        for _ in 0..20 {
            let writes = self.store.writes.len();
            let b = if self.removed { BackendAction::Idle } else { self.back_step() };
            let f = self.front_step();
            if b == BackendAction::Idle && f == FrontendAction::Idle && self.store.writes.len() == writes {
                return;
            }
        }
        panic!("the handshake did not settle: {:?}", self.store.nodes);
    }

    /// Serves every backend queue until idle.
    pub fn serve(&mut self) {
        for q in &mut self.queues {
            loop {
                let s = q.service(&mut self.bp, &self.disk, 64).unwrap_or_else(|e| panic!("{e:?}"));
                if !s.more {
                    break;
                }
            }
        }
    }

    /// Submits `io` on queue `q`, runs it, returns its completion.
    pub fn io(&mut self, q: usize, io: Io<'_>) -> Completion {
        self.tag += 1;
        let tag = self.tag;
        let queue = &mut self.front.queues()[q];
        queue.submit(tag, io).unwrap_or_else(|e| panic!("submit {io:?}: {e:?}"));
        queue.kick(&mut self.fp);
        self.serve();
        let mut out = Vec::new();
        self.front.queues()[q].complete(&mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.len(), 1, "{out:?}");
        out.remove(0)
    }

    /// The backend's state.
    pub fn back_state(&self) -> Option<u32> {
        self.store.state(BE)
    }

    /// The frontend's state.
    pub fn front_state(&self) -> Option<u32> {
        self.store.state(FE)
    }

    /// A node's value, or "".
    pub fn node(&self, path: &str) -> String {
        self.store.get(path).unwrap_or("").to_string()
    }
}

/// A deterministic byte pattern (xorshift), different per `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The backend's default offer for `sectors`.
pub fn offer(sectors: u64) -> BackendConfig {
    BackendConfig::full(sectors, 4)
}
