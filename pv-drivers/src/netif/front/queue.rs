//! [`NetfrontQueue`]: one queue of a netif frontend — its TX and RX
//! rings and their page pools.
//!
//! TX: a frame is copied into pool pages, one slot per page (several
//! only when the backend offers `feature-sg`), the first slot's `size`
//! the whole frame; [`NetfrontQueue::flush`] publishes what was queued
//! with one notification at most. Responses free the pages by `id`; an
//! id that is not in flight breaks the queue.
//!
//! RX: every pool page is posted, its ring slot remembered (responses
//! are matched by slot, as netfront does: extras carry no id). A packet
//! is its first response, the extras after it while `extra_info`, and
//! more data responses while `more_data`; a response with a negative
//! status or `offset + status` past the page drops the packet (its
//! pages are posted again), a `csum_blank` packet has its checksum
//! completed here. A backend publishing more responses than requests
//! breaks the queue.
//! Semantics: L:`xen-netfront.c xennet_start_xmit`, `xennet_tx_buf_gc`,
//! `xennet_alloc_rx_buffers`, `xennet_get_responses`, `xennet_poll`.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use guest_abi::io::netif::{
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    NETTXF_MORE_DATA, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_GSO_TYPE_TCPV6,
};
use guest_abi::io::ring::FrontRing;
use zerocopy::{FromBytes, IntoBytes};

use super::handshake::FrontError;
use crate::blkif::front::{FrontendPlatform, SharedPage};
use crate::netif::keys::{self, Features};
use crate::netif::offload::{self, Checksum, Gso, GsoKind, Offload};
use crate::netif::{
    NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, MAX_RX_SLOTS, PAGE_SIZE,
    RING_SIZE,
};

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No free page or ring slot: reap TX responses and try again.
    Full,
    /// Longer than the connection allows (one page without SG).
    TooBig,
    /// The queue is broken.
    Broken,
}

/// A received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its bytes (a `csum_blank` frame's checksum completed).
    pub data: Vec<u8>,
    /// What the backend said about it: [`Checksum::Validated`] or
    /// [`Checksum::Unknown`], and the GSO extra if one came.
    pub offload: Offload,
}

/// What a queue has moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrontStats {
    /// Frames sent.
    pub tx_packets: u64,
    /// Slots the backend answered with an error.
    pub tx_errors: u64,
    /// Frames received.
    pub rx_packets: u64,
    /// Received packets dropped (bad responses).
    pub rx_errors: u64,
}

/// A page of a pool and its grant.
struct Buffer<Pg> {
    page: Pg,
    gref: u32,
}

/// A packet being reassembled from RX responses.
#[derive(Default)]
struct Partial {
    data: Vec<u8>,
    flags: u16,
    gso: Option<Gso>,
    slots: usize,
    extras_pending: bool,
    bad: bool,
}

/// One queue.
pub struct NetfrontQueue<Pg: SharedPage> {
    tx: FrontRing<'static, NetifTxRequest, NetifTxResponse>,
    rx: FrontRing<'static, NetifRxRequest, NetifRxResponse>,
    ring_frames: [Vec<u64>; 2],
    ring_grefs: [u32; 2],
    tx_port: u32,
    rx_port: u32,
    backend: u16,
    features: Features,
    tx_bufs: Vec<Buffer<Pg>>,
    tx_free: Vec<u16>,
    tx_inflight: Vec<bool>,
    rx_bufs: Vec<Buffer<Pg>>,
    rx_free: Vec<u16>,
    rx_slot: Vec<Option<u16>>,
    /// RX requests queued and responses taken so far (free-running ring
    /// indices: a response's slot is `rx_cons & (size - 1)`).
    rx_prod: u32,
    rx_cons: u32,
    partial: Option<Partial>,
    stats: FrontStats,
    broken: Option<String>,
}

impl<Pg: SharedPage> NetfrontQueue<Pg> {
    /// Allocates and grants (to `backend`) the two rings, `tx_buffers`
    /// read-only and `rx_buffers` writable pages (each at most the ring
    /// size), and one port, or two with `split`.
    pub fn new<P: FrontendPlatform<Page = Pg>>(
        platform: &mut P,
        backend: u16,
        tx_buffers: usize,
        rx_buffers: usize,
        split: bool,
    ) -> Result<Self, FrontError> {
        let (tx_n, rx_n) = (tx_buffers.clamp(1, RING_SIZE as usize), rx_buffers.clamp(1, RING_SIZE as usize));
        let tx_area = platform.alloc_ring(0)?;
        let tx_frames = tx_area.frames.clone();
        let tx_gref = platform.grant(backend, *tx_frames.first().unwrap_or(&0), false)?;
        let rx_area = platform.alloc_ring(0)?;
        let rx_frames = rx_area.frames.clone();
        let rx_gref = platform.grant(backend, *rx_frames.first().unwrap_or(&0), false)?;
        let mut pool = |n: usize, readonly: bool| -> Result<Vec<Buffer<Pg>>, FrontError> {
            (0..n)
                .map(|_| {
                    let page = platform.alloc_page()?;
                    let gref = platform.grant(backend, page.frame(), readonly)?;
                    Ok(Buffer { page, gref })
                })
                .collect()
        };
        let tx_bufs = pool(tx_n, true)?;
        let rx_bufs = pool(rx_n, false)?;
        let tx_port = platform.alloc_unbound(backend)?;
        let rx_port = if split { platform.alloc_unbound(backend)? } else { tx_port };
        Ok(NetfrontQueue {
            tx: FrontRing::init(tx_area.shared),
            rx: FrontRing::init(rx_area.shared),
            ring_frames: [tx_frames, rx_frames],
            ring_grefs: [tx_gref, rx_gref],
            tx_port,
            rx_port,
            backend,
            features: Features::NONE,
            tx_free: (0..tx_n as u16).rev().collect(),
            tx_inflight: vec![false; tx_n],
            tx_bufs,
            rx_free: (0..rx_n as u16).rev().collect(),
            rx_bufs,
            rx_slot: vec![None; RING_SIZE as usize],
            rx_prod: 0,
            rx_cons: 0,
            partial: None,
            stats: FrontStats::default(),
            broken: None,
        })
    }

    /// The keys that describe this queue to the backend (`tx-ring-ref`,
    /// `rx-ring-ref`, the event channel(s)).
    pub fn keys(&self) -> Vec<(&'static str, String)> {
        let mut k = vec![
            (keys::TX_RING_REF, format!("{}", self.ring_grefs[0])),
            (keys::RX_RING_REF, format!("{}", self.ring_grefs[1])),
        ];
        if self.tx_port == self.rx_port {
            k.push((keys::EVENT_CHANNEL, format!("{}", self.tx_port)));
        } else {
            k.push((keys::EVENT_CHANNEL_TX, format!("{}", self.tx_port)));
            k.push((keys::EVENT_CHANNEL_RX, format!("{}", self.rx_port)));
        }
        k
    }

    /// Sets the offloads in use (what both ends offer).
    pub fn set_features(&mut self, features: Features) {
        self.features = features;
    }

    /// The TX port and the RX port (equal without split channels).
    pub fn ports(&self) -> (u32, u32) {
        (self.tx_port, self.rx_port)
    }

    /// The counters.
    pub fn stats(&self) -> FrontStats {
        self.stats
    }

    /// Why the queue is broken, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn fail(&mut self, why: String) -> FrontError {
        self.broken = Some(why.clone());
        FrontError::Protocol(why)
    }

    /// Posts every free RX page and publishes them, notifying the
    /// backend if the ring protocol asks.
    pub fn post_rx<P: FrontendPlatform<Page = Pg>>(&mut self, platform: &mut P) {
        let mut posted = false;
        while !self.rx.is_full() {
            let Some(b) = self.rx_free.pop() else { break };
            let gref = self.rx_bufs.get(usize::from(b)).map_or(0, |x| x.gref);
            if self.rx.queue_request(&NetifRxRequest { id: b, pad: 0, gref }).is_err() {
                self.rx_free.push(b);
                break;
            }
            if let Some(s) = self.rx_slot.get_mut((self.rx_prod & (RING_SIZE - 1)) as usize) {
                *s = Some(b);
            }
            self.rx_prod = self.rx_prod.wrapping_add(1);
            posted = true;
        }
        if posted && self.rx.push_requests() {
            platform.notify(self.rx_port);
        }
    }

    /// Queues `frame` (it goes out at the next [`Self::flush`]).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        if self.broken.is_some() {
            return Err(SendError::Broken);
        }
        let slots = frame.len().div_ceil(PAGE_SIZE).max(1);
        if frame.len() > usize::from(u16::MAX)
            || (slots > 1 && !self.features.sg)
            || slots > 1 + crate::netif::MAX_TX_EXTRA_SLOTS
        {
            return Err(SendError::TooBig);
        }
        if self.tx_free.len() < slots || (self.tx.free_requests() as usize) < slots {
            return Err(SendError::Full);
        }
        for (i, chunk) in frame.chunks(PAGE_SIZE).enumerate() {
            let Some(id) = self.tx_free.pop() else { return Err(SendError::Full) };
            let Some(b) = self.tx_bufs.get(usize::from(id)) else { return Err(SendError::Full) };
            b.page.write(0, chunk);
            let more = if i + 1 < slots { NETTXF_MORE_DATA as u16 } else { 0 };
            let size = if i == 0 { frame.len() as u16 } else { chunk.len() as u16 };
            let req = NetifTxRequest { gref: b.gref, offset: 0, flags: more, id, size };
            if let Some(f) = self.tx_inflight.get_mut(usize::from(id)) {
                *f = true;
            }
            // Room was checked above.
            let _ = self.tx.queue_request(&req);
        }
        self.stats.tx_packets += 1;
        Ok(())
    }

    /// Publishes queued frames, notifying the backend if it asks.
    pub fn flush<P: FrontendPlatform<Page = Pg>>(&mut self, platform: &mut P) {
        if self.tx.push_requests() {
            platform.notify(self.tx_port);
        }
    }

    /// Takes TX responses and frees their pages; how many slots were
    /// answered.
    pub fn reap_tx(&mut self) -> Result<usize, FrontError> {
        let mut n = 0;
        loop {
            let rsp = match self.tx.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(n),
                Err(_) => return Err(self.fail("the backend published more TX responses than requests".into())),
            };
            n += 1;
            if rsp.status == NETIF_RSP_NULL {
                continue;
            }
            let slot = self.tx_inflight.get_mut(usize::from(rsp.id));
            match slot {
                Some(f) if *f => {
                    *f = false;
                    self.tx_free.push(rsp.id);
                }
                _ => return Err(self.fail(format!("TX response for id {} not in flight", rsp.id))),
            }
            if rsp.status != NETIF_RSP_OKAY {
                self.stats.tx_errors += 1;
            }
        }
    }

    /// Takes RX responses, appends whole frames to `out`, posts the
    /// pages again; how many frames came.
    pub fn receive<P: FrontendPlatform<Page = Pg>>(
        &mut self,
        platform: &mut P,
        out: &mut Vec<Received>,
    ) -> Result<usize, FrontError> {
        let mut n = 0;
        loop {
            let rsp = match self.rx.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => return Err(self.fail("the backend published more RX responses than requests".into())),
            };
            let slot = (self.rx_cons & (RING_SIZE - 1)) as usize;
            self.rx_cons = self.rx_cons.wrapping_add(1);
            let Some(buf) = self.rx_slot.get_mut(slot).and_then(Option::take) else {
                return Err(self.fail(format!("RX response in slot {slot}, which holds no buffer")));
            };
            self.rx_free.push(buf);
            if let Some(frame) = self.rx_response(rsp, buf) {
                out.push(frame);
                n += 1;
            }
        }
        self.post_rx(platform);
        Ok(n)
    }

    /// One RX response (in the slot of buffer `buf`); a frame when it
    /// completes one.
    fn rx_response(&mut self, rsp: NetifRxResponse, buf: u16) -> Option<Received> {
        let mut p = self.partial.take().unwrap_or_default();
        if p.extras_pending {
            let extra = NetifExtraInfo::read_from_bytes(rsp.as_bytes()).ok();
            let more = extra.is_some_and(|e| e.flags & XEN_NETIF_EXTRA_FLAG_MORE as u8 != 0);
            if let Some(e) = extra.filter(|e| u32::from(e.type_) == XEN_NETIF_EXTRA_TYPE_GSO) {
                let g = e.gso();
                let kind = match u32::from(g.type_) {
                    XEN_NETIF_GSO_TYPE_TCPV4 => Some(GsoKind::Tcpv4),
                    XEN_NETIF_GSO_TYPE_TCPV6 => Some(GsoKind::Tcpv6),
                    _ => None,
                };
                match kind {
                    Some(kind) if g.size > 0 => p.gso = Some(Gso { kind, mss: g.size }),
                    _ => p.bad = true,
                }
            }
            p.extras_pending = more;
            return self.continue_or_finish(p, true);
        }
        let first = p.slots == 0;
        p.slots += 1;
        if first {
            p.flags = rsp.flags;
            p.extras_pending = rsp.flags & NETRXF_EXTRA_INFO as u16 != 0;
        }
        let len = usize::try_from(rsp.status).ok();
        match len {
            Some(len) if usize::from(rsp.offset) + len <= PAGE_SIZE && p.slots <= MAX_RX_SLOTS && !p.bad => {
                let start = p.data.len();
                p.data.resize(start + len, 0);
                if let Some(b) = self.rx_bufs.get(usize::from(buf)) {
                    b.page.read(usize::from(rsp.offset), &mut p.data[start..]);
                }
            }
            _ => p.bad = true,
        }
        let more = rsp.flags & NETRXF_MORE_DATA as u16 != 0;
        self.continue_or_finish(p, more)
    }

    fn continue_or_finish(&mut self, mut p: Partial, more_data: bool) -> Option<Received> {
        if p.extras_pending || more_data {
            self.partial = Some(p);
            return None;
        }
        let mut csum = Checksum::Unknown;
        if p.flags & NETRXF_CSUM_BLANK as u16 != 0 {
            match offload::partial_checksum(&p.data) {
                Some((start, offset)) if p.gso.is_none() && offload::finish_checksum(&mut p.data, start, offset) => {
                    csum = Checksum::Validated;
                }
                Some((start, offset)) if p.gso.is_some() => csum = Checksum::Partial { start, offset },
                _ => p.bad = true,
            }
        } else if p.flags & NETRXF_DATA_VALIDATED as u16 != 0 {
            csum = Checksum::Validated;
        }
        if p.bad || p.data.is_empty() {
            self.stats.rx_errors += 1;
            return None;
        }
        self.stats.rx_packets += 1;
        Some(Received { data: p.data, offload: Offload { csum, gso: p.gso } })
    }

    /// Asks for a notification on the next responses of both rings and
    /// checks again: true if some are already there.
    pub fn final_check(&mut self) -> Result<bool, FrontError> {
        let tx = self.tx.final_check_for_responses();
        let rx = self.rx.final_check_for_responses();
        match (tx, rx) {
            (Ok(a), Ok(b)) => Ok(a || b),
            _ => Err(self.fail("the backend published more responses than requests".into())),
        }
    }

    /// Ends every grant, closes the ports and gives the rings back
    /// (grants the backend still maps are left alone, as Linux leaves
    /// them).
    pub fn release<P: FrontendPlatform<Page = Pg>>(self, platform: &mut P) {
        for b in self.tx_bufs.iter().chain(&self.rx_bufs) {
            let _ = platform.end_grant(b.gref);
        }
        let mut ended = true;
        for g in self.ring_grefs {
            ended &= platform.end_grant(g).is_ok();
        }
        platform.close_port(self.tx_port);
        if self.rx_port != self.tx_port {
            platform.close_port(self.rx_port);
        }
        // The ring views (`self.tx`, `self.rx`) go with `self` here.
        let frames = self.ring_frames;
        if ended {
            for f in &frames {
                platform.free_ring(f);
            }
        }
    }

    // For testing backends: raw access that bypasses every check.

    /// The grant and page of TX pool page `i` (for tests that build
    /// their own requests).
    pub fn raw_tx_page(&self, i: usize) -> Option<(u32, &Pg)> {
        self.tx_bufs.get(i).map(|b| (b.gref, &b.page))
    }

    /// Queues `reqs` exactly as given and publishes them (for tests of
    /// a backend's defences: ids, grants and sizes are not checked and
    /// the pool is not used).
    pub fn raw_push_tx<P: FrontendPlatform<Page = Pg>>(&mut self, platform: &mut P, reqs: &[NetifTxRequest]) -> usize {
        let mut n = 0;
        for r in reqs {
            if self.tx.queue_request(r).is_err() {
                break;
            }
            n += 1;
        }
        self.flush(platform);
        n
    }

    /// Takes TX responses as they are (the counterpart of
    /// [`Self::raw_push_tx`]).
    pub fn raw_take_tx(&mut self, out: &mut Vec<NetifTxResponse>) -> Result<usize, FrontError> {
        let mut n = 0;
        loop {
            match self.tx.take_response() {
                Ok(Some(r)) => {
                    out.push(r);
                    n += 1;
                }
                Ok(None) => return Ok(n),
                Err(_) => return Err(self.fail("the backend published more TX responses than requests".into())),
            }
        }
    }

    /// The frames of the TX and RX rings (for tests that scribble on
    /// their own rings).
    pub fn ring_frames(&self) -> (u64, u64) {
        let first = |v: &Vec<u64>| v.first().copied().unwrap_or(0);
        (first(&self.ring_frames[0]), first(&self.ring_frames[1]))
    }

    /// The backend domain.
    pub fn backend(&self) -> u16 {
        self.backend
    }
}
