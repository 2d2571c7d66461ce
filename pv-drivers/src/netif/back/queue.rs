//! [`NetbackQueue`]: one queue of a connected vif — its TX and RX rings,
//! served in batches.
//!
//! [`NetbackQueue::tx_service`] takes up to a batch of packets off the
//! TX ring ([`TxDecoder`] checks every slot), copies them out of the
//! frontend's grants in one [`GrantCopy`] call into a [`TxBatch`] (each
//! frame preceded by `headroom` bytes for the caller's own header),
//! works out each frame's [`Offload`] from its flags and headers, and
//! answers every slot; [`NetbackQueue::rx_service`] lays frames into
//! the frontend's posted buffers ([`super::rx::layout`]), copies them in
//! one call, and answers each slot in its request's place. Both push
//! their responses and say whether the frontend must be notified
//! (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`); TX re-arms `req_event`
//! before it reports no more work (`RING_FINAL_CHECK_FOR_REQUESTS`), RX
//! when it waits for buffers ([`NetbackQueue::rx_arm`]).
//!
//! Every request consumed is answered before the call returns (or, for
//! a packet whose slots are not all published yet, once they are), so
//! RX responses always land in their requests' slots, as netfront
//! requires.

use alloc::vec::Vec;

use guest_abi::io::netif::{NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED};
use guest_abi::io::ring::{BackRing, RingError, SharedRing};
use zerocopy::{FromBytes, IntoBytes};

use super::grants::{CopySpan, GrantCopy};
use super::rx::layout;
use super::tx::{TxDecoder, TxDrop, TxDrops, TxEvent, TxPacket};
use crate::netif::keys::Features;
use crate::netif::offload::{self, Checksum, GsoKind, IpVersion, Offload};
use crate::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, MAX_RX_SLOTS, PAGE_SIZE};

/// Bytes of frames gathered in one TX batch before it is copied.
const TX_BATCH_BYTES: usize = 1 << 20;

/// The queue's ring broke: the frontend published more requests than
/// the ring holds. The vif must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// `RING_REQUEST_PROD_OVERFLOW` on the named ring.
    RingOverflow(&'static str),
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            QueueError::RingOverflow(ring) => {
                write!(f, "the frontend published more {ring} requests than the ring holds")
            }
        }
    }
}

/// What a queue has moved and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets the frontend sent that went out.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Packets the frontend sent that were dropped, by reason.
    pub tx_drops: TxDrops,
    /// Multicast-control packets answered.
    pub tx_control: u64,
    /// Frames given to the frontend.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames the frontend could not take (too big, GSO it did not ask
    /// for, a checksum that could not be completed).
    pub rx_dropped: u64,
    /// Frames lost because a posted buffer's grant did not copy.
    pub rx_copy_errors: u64,
}

/// A frame taken from the frontend: `len` bytes at `start` in
/// [`TxBatch::buf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrame {
    /// Where it starts (the caller's headroom is just before).
    pub start: usize,
    /// Its length.
    pub len: usize,
    /// Checksum and segmentation state.
    pub offload: Offload,
}

/// The frames of one [`NetbackQueue::tx_service`]; reused from call to
/// call.
#[derive(Clone, Debug, Default)]
pub struct TxBatch {
    /// The frames' bytes.
    pub buf: Vec<u8>,
    /// The frames.
    pub frames: Vec<TxFrame>,
}

impl TxBatch {
    /// Frame `f`'s bytes.
    pub fn frame(&self, f: &TxFrame) -> &[u8] {
        self.buf.get(f.start..f.start + f.len).unwrap_or_default()
    }
}

/// A frame for the frontend: `len` bytes at `start` in the caller's
/// buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// Where it starts.
    pub start: usize,
    /// Its length.
    pub len: usize,
    /// Checksum and segmentation state.
    pub offload: Offload,
}

/// What [`NetbackQueue::tx_service`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxService {
    /// Notify the frontend (its TX port).
    pub notify: bool,
    /// More requests are waiting: call again.
    pub more: bool,
}

/// What [`NetbackQueue::rx_service`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxService {
    /// Frames taken from the front of the list (given or dropped); the
    /// rest wait for buffers.
    pub taken: usize,
    /// Notify the frontend (its RX port).
    pub notify: bool,
    /// Stopped for want of posted buffers.
    pub waiting: bool,
}

/// One queue's rings and state.
pub struct NetbackQueue<'a> {
    tx: BackRing<'a, NetifTxRequest, NetifTxResponse>,
    rx: BackRing<'a, NetifRxRequest, NetifRxResponse>,
    frontend: u16,
    features: Features,
    decoder: TxDecoder,
    stats: QueueStats,
    spans: Vec<CopySpan>,
    ok: Vec<bool>,
    tx_responses: Vec<NetifTxResponse>,
    tx_packets: Vec<(TxPacket, usize, usize)>,
    rx_responses: Vec<(NetifRxResponse, Option<usize>, usize)>,
}

impl<'a> NetbackQueue<'a> {
    /// A queue over the frontend's freshly initialised rings, for
    /// frontend domain `frontend`, with the `features` both ends share.
    pub fn new(tx: SharedRing<'a>, rx: SharedRing<'a>, frontend: u16, features: Features) -> Self {
        NetbackQueue {
            tx: BackRing::init(tx),
            rx: BackRing::init(rx),
            frontend,
            features,
            decoder: TxDecoder::new(),
            stats: QueueStats::default(),
            spans: Vec::new(),
            ok: Vec::new(),
            tx_responses: Vec::new(),
            tx_packets: Vec::new(),
            rx_responses: Vec::new(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// The features in use.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Takes up to `max_frames` packets from the TX ring into `batch`
    /// (cleared first), `headroom` bytes before each, and answers their
    /// slots.
    pub fn tx_service<G: GrantCopy>(
        &mut self,
        grants: &mut G,
        batch: &mut TxBatch,
        headroom: usize,
        max_frames: usize,
    ) -> Result<TxService, QueueError> {
        batch.buf.clear();
        batch.frames.clear();
        self.spans.clear();
        self.tx_responses.clear();
        self.tx_packets.clear();
        let mut more = false;
        loop {
            if self.tx_packets.len() >= max_frames || batch.buf.len() >= TX_BATCH_BYTES {
                more = true;
                break;
            }
            let req = match self.tx.take_request() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(RingError::Overflow | RingError::Full) => return Err(QueueError::RingOverflow("TX")),
            };
            match self.decoder.feed(req, &mut self.tx_responses) {
                TxEvent::Pending => {}
                TxEvent::Control => self.stats.tx_control += 1,
                TxEvent::Dropped(why) => self.stats.tx_drops.count(why),
                TxEvent::Packet(p) => {
                    let start = batch.buf.len() + headroom;
                    batch.buf.resize(start + usize::from(p.size), 0);
                    let first_span = self.spans.len();
                    let mut at = start;
                    for f in &p.frags {
                        self.spans.push(CopySpan { gref: f.gref, offset: f.offset, len: f.len, at });
                        at += usize::from(f.len);
                    }
                    self.tx_packets.push((p, start, first_span));
                }
            }
        }
        self.ok.clear();
        self.ok.resize(self.spans.len(), false);
        if !self.spans.is_empty() {
            grants.copy_from_frontend(self.frontend, &self.spans, &mut batch.buf, &mut self.ok);
        }
        for (i, (p, start, first_span)) in self.tx_packets.iter().enumerate() {
            let end_span = self.tx_packets.get(i + 1).map_or(self.spans.len(), |n| n.2);
            let copied = self.ok.get(*first_span..end_span).is_some_and(|s| s.iter().all(|&ok| ok));
            let len = usize::from(p.size);
            let verdict = if !copied {
                Err(TxDrop::BadGrant)
            } else {
                match batch.buf.get_mut(*start..start + len) {
                    Some(frame) => tx_offload(frame, p),
                    None => Err(TxDrop::BadGrant),
                }
            };
            match verdict {
                Ok(offload) => {
                    batch.frames.push(TxFrame { start: *start, len, offload });
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += len as u64;
                    p.respond(NETIF_RSP_OKAY, &mut self.tx_responses);
                }
                Err(why) => {
                    self.stats.tx_drops.count(why);
                    p.respond(NETIF_RSP_ERROR, &mut self.tx_responses);
                }
            }
        }
        for r in &self.tx_responses {
            // Never more responses than consumed requests.
            let _ = self.tx.queue_response(r);
        }
        let notify = self.tx.push_responses();
        if !more {
            more = self.tx.final_check_for_requests().map_err(|_| QueueError::RingOverflow("TX"))?;
        }
        Ok(TxService { notify, more })
    }

    /// Gives `frames` (in `buf`) to the frontend, in order, as far as its
    /// posted buffers go.
    pub fn rx_service<G: GrantCopy>(
        &mut self,
        grants: &mut G,
        buf: &mut [u8],
        frames: &[RxFrame],
    ) -> Result<RxService, QueueError> {
        self.spans.clear();
        self.rx_responses.clear();
        let mut taken = 0;
        let mut waiting = false;
        for f in frames {
            let Some(frame) = buf.get_mut(f.start..f.start.saturating_add(f.len)) else {
                self.stats.rx_dropped += 1;
                taken += 1;
                continue;
            };
            // Wait for buffers before `layout`, which may complete the
            // checksum in place (it must run once per frame).
            let needed = f.len.div_ceil(PAGE_SIZE) + usize::from(f.offload.gso.is_some());
            let have = self.rx.unconsumed_requests().map_err(|_| QueueError::RingOverflow("RX"))?;
            if needed <= MAX_RX_SLOTS + 1 && (have as usize) < needed {
                waiting = true;
                break;
            }
            let l = match layout(frame, f.offload, self.features) {
                Ok(l) if l.slots() <= have as usize => l,
                _ => {
                    self.stats.rx_dropped += 1;
                    taken += 1;
                    continue;
                }
            };
            let mut at = f.start;
            let mut left = f.len;
            for slot in 0..l.data_slots {
                let req = self.take_rx()?;
                let chunk = left.min(PAGE_SIZE);
                let flags = if slot == 0 {
                    l.flags
                } else if slot + 1 < l.data_slots {
                    guest_abi::io::netif::NETRXF_MORE_DATA as u16
                } else {
                    0
                };
                self.spans.push(CopySpan { gref: req.gref, offset: 0, len: chunk as u16, at });
                let rsp = NetifRxResponse { id: req.id, offset: 0, flags, status: chunk as i16 };
                self.rx_responses.push((rsp, Some(self.spans.len() - 1), taken));
                at += chunk;
                left -= chunk;
                if slot == 0 {
                    if let Some(extra) = l.gso {
                        self.take_rx()?;
                        let rsp = NetifRxResponse::read_from_bytes(extra.as_bytes()).unwrap_or(NetifRxResponse {
                            id: 0,
                            offset: 0,
                            flags: 0,
                            status: 0,
                        });
                        self.rx_responses.push((rsp, None, taken));
                    }
                }
            }
            taken += 1;
        }
        self.ok.clear();
        self.ok.resize(self.spans.len(), false);
        if !self.spans.is_empty() {
            grants.copy_to_frontend(self.frontend, &self.spans, buf, &mut self.ok);
        }
        let mut last_frame = None;
        let mut frame_failed = false;
        for (rsp, span, frame) in &mut self.rx_responses {
            if last_frame != Some(*frame) {
                if let Some(prev) = last_frame {
                    count_rx(&mut self.stats, frames, prev, frame_failed);
                }
                last_frame = Some(*frame);
                frame_failed = false;
            }
            if let Some(s) = span {
                if !self.ok.get(*s).copied().unwrap_or(false) {
                    rsp.status = NETIF_RSP_ERROR;
                    frame_failed = true;
                }
            }
            let _ = self.rx.queue_response(rsp);
        }
        if let Some(prev) = last_frame {
            count_rx(&mut self.stats, frames, prev, frame_failed);
        }
        let notify = self.rx.push_responses();
        Ok(RxService { taken, notify, waiting })
    }

    fn take_rx(&mut self) -> Result<NetifRxRequest, QueueError> {
        match self.rx.take_request() {
            Ok(Some(r)) => Ok(r),
            _ => Err(QueueError::RingOverflow("RX")),
        }
    }

    /// Asks for a notification when the frontend posts more buffers, and
    /// checks again: true if some are there already.
    pub fn rx_arm(&mut self) -> Result<bool, QueueError> {
        self.rx.final_check_for_requests().map_err(|_| QueueError::RingOverflow("RX"))
    }
}

fn count_rx(stats: &mut QueueStats, frames: &[RxFrame], i: usize, failed: bool) {
    if failed {
        stats.rx_copy_errors += 1;
    } else {
        stats.rx_packets += 1;
        stats.rx_bytes += frames.get(i).map_or(0, |f| f.len as u64);
    }
}

/// A sent packet's [`Offload`], from its flags and headers: `csum_blank`
/// becomes a partial checksum at the L4 header it names; a super-packet
/// without `csum_blank` gets its pseudo-header recomputed (what Linux
/// does for such buggy senders).
fn tx_offload(frame: &mut [u8], p: &TxPacket) -> Result<Offload, TxDrop> {
    let csum = if p.flags & NETTXF_CSUM_BLANK as u16 != 0 {
        let (start, offset) = offload::partial_checksum(frame).ok_or(TxDrop::BadHeaders)?;
        Checksum::Partial { start, offset }
    } else if p.gso.is_some() {
        let (start, offset) = offload::set_pseudo_header(frame).ok_or(TxDrop::BadHeaders)?;
        Checksum::Partial { start, offset }
    } else if p.flags & NETTXF_DATA_VALIDATED as u16 != 0 {
        Checksum::Validated
    } else {
        Checksum::Unknown
    };
    if let Some(g) = p.gso {
        let h = offload::parse(frame).ok_or(TxDrop::BadHeaders)?;
        let ip_ok = matches!((g.kind, h.ip), (GsoKind::Tcpv4, IpVersion::V4) | (GsoKind::Tcpv6, IpVersion::V6));
        if !ip_ok || h.proto != offload::IPPROTO_TCP || offload::gso_header_len(frame).is_none() {
            return Err(TxDrop::BadGso);
        }
    }
    Ok(Offload { csum, gso: p.gso })
}
