//! [`TxDecoder`]: a frontend's transmit slots, one at a time, turned into
//! packets.
//!
//! A packet is a first slot (`size` = the whole packet; its own bytes
//! are what the later slots leave), then extra-info slots while the
//! first has `extra_info` and each extra `XEN_NETIF_EXTRA_FLAG_MORE`,
//! then data slots while `more_data` is set. Every slot is checked as it
//! comes:
//!
//! | check | drop reason |
//! |---|---|
//! | a data slot's `offset + size` past its page | [`TxDrop::CrossPage`] |
//! | more than 1 + [`MAX_TX_EXTRA_SLOTS`] data slots | [`TxDrop::TooManySlots`] |
//! | later slots larger than the packet's `size` | [`TxDrop::SizeMismatch`] |
//! | a packet shorter than an Ethernet header | [`TxDrop::Runt`] |
//! | an extra of unknown type, or more than [`MAX_EXTRAS`] | [`TxDrop::BadExtra`] |
//! | a GSO extra with size 0 or an unknown type | [`TxDrop::BadGso`] |
//!
//! A dropped packet's slots are still consumed to the end of its chain,
//! each answered `NETIF_RSP_ERROR` (extras `NETIF_RSP_NULL`), so the
//! frontend gets every id back and the ring stays in step; a chain that
//! goes on forever only ever costs its own slots. Multicast-control
//! packets (an `MCAST_ADD`/`MCAST_DEL` extra) carry no data and are
//! answered `NETIF_RSP_OKAY` (a TAP delivers every group anyway).
//! Semantics: L:`xen-netback/netback.c xenvif_tx_build_gops`,
//! `xenvif_count_requests`, `xenvif_get_extras`, `make_tx_response`.

use alloc::vec::Vec;

use guest_abi::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, XEN_NETIF_EXTRA_FLAG_MORE,
    XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
    XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::netif::offload::{Gso, GsoKind};
use crate::netif::{
    NetifExtraInfo, NetifTxRequest, NetifTxResponse, ETH_HLEN, MAX_EXTRAS, MAX_TX_EXTRA_SLOTS, PAGE_SIZE,
};

/// Why a transmitted packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxDrop {
    /// A data slot's `offset + size` crosses its page.
    CrossPage,
    /// More slots than netif allows.
    TooManySlots,
    /// The later slots hold more than the packet's `size`.
    SizeMismatch,
    /// Shorter than an Ethernet header.
    Runt,
    /// An extra-info slot of unknown type, or too many.
    BadExtra,
    /// A GSO extra with size 0, an unknown type, or one that does not
    /// match the packet.
    BadGso,
    /// A grant that could not be copied from.
    BadGrant,
    /// Asks for a checksum or segmentation of headers that do not parse.
    BadHeaders,
}

/// Dropped packets, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxDrops {
    /// [`TxDrop::CrossPage`].
    pub cross_page: u64,
    /// [`TxDrop::TooManySlots`].
    pub too_many_slots: u64,
    /// [`TxDrop::SizeMismatch`].
    pub size_mismatch: u64,
    /// [`TxDrop::Runt`].
    pub runt: u64,
    /// [`TxDrop::BadExtra`].
    pub bad_extra: u64,
    /// [`TxDrop::BadGso`].
    pub bad_gso: u64,
    /// [`TxDrop::BadGrant`].
    pub bad_grant: u64,
    /// [`TxDrop::BadHeaders`].
    pub bad_headers: u64,
}

impl TxDrops {
    /// Counts one drop.
    pub fn count(&mut self, why: TxDrop) {
        let c = match why {
            TxDrop::CrossPage => &mut self.cross_page,
            TxDrop::TooManySlots => &mut self.too_many_slots,
            TxDrop::SizeMismatch => &mut self.size_mismatch,
            TxDrop::Runt => &mut self.runt,
            TxDrop::BadExtra => &mut self.bad_extra,
            TxDrop::BadGso => &mut self.bad_gso,
            TxDrop::BadGrant => &mut self.bad_grant,
            TxDrop::BadHeaders => &mut self.bad_headers,
        };
        *c += 1;
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.cross_page
            + self.too_many_slots
            + self.size_mismatch
            + self.runt
            + self.bad_extra
            + self.bad_gso
            + self.bad_grant
            + self.bad_headers
    }
}

/// One piece of a packet: `len` bytes at `offset` in grant `gref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrag {
    /// The frontend's grant.
    pub gref: u32,
    /// Offset in the page.
    pub offset: u16,
    /// Bytes (`offset + len <= 4096`).
    pub len: u16,
}

/// A well-formed packet, ready to be copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxPacket {
    /// Its length (the sum of the fragments).
    pub size: u16,
    /// Its bytes, in order.
    pub frags: Vec<TxFrag>,
    /// The first slot's flags (`NETTXF_csum_blank`, `NETTXF_data_validated`).
    pub flags: u16,
    /// Segmentation asked for.
    pub gso: Option<Gso>,
    /// The responses owed, in the order the slots came: the data slots'
    /// ids, `None` for extras.
    pub slots: Vec<Option<u16>>,
}

impl TxPacket {
    /// Answers every slot: data slots with `status`, extras with
    /// `NETIF_RSP_NULL`.
    pub fn respond(&self, status: i16, out: &mut Vec<NetifTxResponse>) {
        respond(&self.slots, status, out);
    }
}

fn respond(slots: &[Option<u16>], status: i16, out: &mut Vec<NetifTxResponse>) {
    for s in slots {
        out.push(match s {
            Some(id) => NetifTxResponse { id: *id, status },
            None => NetifTxResponse { id: 0, status: NETIF_RSP_NULL },
        });
    }
}

/// What a slot completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// Nothing yet: the packet goes on.
    Pending,
    /// A packet, to copy and then answer.
    Packet(TxPacket),
    /// A multicast-control packet, already answered.
    Control,
    /// A malformed packet, already answered.
    Dropped(TxDrop),
}

/// Which chain the next slot continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chain {
    /// A first slot.
    Start,
    /// An extra; after the extras, data slots if the first had `more_data`.
    Extras { then_data: bool },
    /// A data slot.
    Data,
}

/// The transmit slots of one queue, decoded in order.
#[derive(Clone, Debug)]
pub struct TxDecoder {
    chain: Chain,
    first: NetifTxRequest,
    frags: Vec<NetifTxRequest>,
    extras: Vec<NetifExtraInfo>,
    slots: Vec<Option<u16>>,
    /// Set once the packet is known bad: its remaining slots are only
    /// answered.
    dropping: Option<TxDrop>,
}

impl Default for TxDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl TxDecoder {
    /// A decoder at a packet boundary.
    pub fn new() -> Self {
        TxDecoder {
            chain: Chain::Start,
            first: NetifTxRequest { gref: 0, offset: 0, flags: 0, id: 0, size: 0 },
            frags: Vec::new(),
            extras: Vec::new(),
            slots: Vec::new(),
            dropping: None,
        }
    }

    /// Whether a packet's slots have been taken but not all of them (the
    /// rest is still to come).
    pub fn in_progress(&self) -> bool {
        self.chain != Chain::Start
    }

    /// Decodes the next slot. Responses that are due now (for dropped
    /// and control packets) are appended to `responses`.
    pub fn feed(&mut self, req: NetifTxRequest, responses: &mut Vec<NetifTxResponse>) -> TxEvent {
        match self.chain {
            Chain::Start => self.start(req, responses),
            Chain::Extras { then_data } => self.extra(req, then_data, responses),
            Chain::Data => self.data(req, responses),
        }
    }

    fn start(&mut self, req: NetifTxRequest, responses: &mut Vec<NetifTxResponse>) -> TxEvent {
        self.first = req;
        self.frags.clear();
        self.extras.clear();
        self.slots.clear();
        self.dropping = None;
        self.slots.push(Some(req.id));
        let more = req.flags & NETTXF_MORE_DATA as u16 != 0;
        if req.flags & NETTXF_EXTRA_INFO as u16 != 0 {
            self.chain = Chain::Extras { then_data: more };
            return TxEvent::Pending;
        }
        if more {
            self.chain = Chain::Data;
            return TxEvent::Pending;
        }
        self.finish(responses)
    }

    fn extra(&mut self, req: NetifTxRequest, then_data: bool, responses: &mut Vec<NetifTxResponse>) -> TxEvent {
        // An extra occupies the first 8 bytes of a 12-byte slot.
        let extra = NetifExtraInfo::read_from_prefix(req.as_bytes()).map(|(e, _)| e).ok();
        let extra = extra.unwrap_or(NetifExtraInfo { type_: 0, flags: 0, u: [0; 3] });
        self.slots.push(None);
        if self.dropping.is_none() {
            if !(u32::from(extra.type_) >= XEN_NETIF_EXTRA_TYPE_GSO
                && u32::from(extra.type_) <= XEN_NETIF_EXTRA_TYPE_HASH)
                || self.extras.len() >= MAX_EXTRAS
            {
                self.drop(TxDrop::BadExtra);
            } else {
                self.extras.push(extra);
            }
        }
        if extra.flags & XEN_NETIF_EXTRA_FLAG_MORE as u8 != 0 {
            return self.pending_or_answered(responses, Chain::Extras { then_data });
        }
        let mcast = self.extras.iter().any(|e| {
            let t = u32::from(e.type_);
            t == XEN_NETIF_EXTRA_TYPE_MCAST_ADD || t == XEN_NETIF_EXTRA_TYPE_MCAST_DEL
        });
        if self.dropping.is_none() && mcast {
            // Control only: no data follows, whatever `more_data` says
            // (as netback, which takes the next slot as a new packet).
            respond(&self.slots, NETIF_RSP_OKAY, responses);
            self.reset();
            return TxEvent::Control;
        }
        if then_data {
            return self.pending_or_answered(responses, Chain::Data);
        }
        self.finish(responses)
    }

    fn data(&mut self, req: NetifTxRequest, responses: &mut Vec<NetifTxResponse>) -> TxEvent {
        let more = req.flags & NETTXF_MORE_DATA as u16 != 0;
        self.slots.push(Some(req.id));
        if self.dropping.is_none() {
            if usize::from(req.offset) + usize::from(req.size) > PAGE_SIZE {
                self.drop(TxDrop::CrossPage);
            } else if self.frags.len() >= MAX_TX_EXTRA_SLOTS {
                self.drop(TxDrop::TooManySlots);
            } else {
                self.frags.push(req);
            }
        }
        if more {
            return self.pending_or_answered(responses, Chain::Data);
        }
        self.finish(responses)
    }

    /// The chain goes on: while dropping, this slot is answered at once.
    fn pending_or_answered(&mut self, responses: &mut Vec<NetifTxResponse>, next: Chain) -> TxEvent {
        if self.dropping.is_some() {
            respond(&self.slots, NETIF_RSP_ERROR, responses);
            self.slots.clear();
        }
        self.chain = next;
        TxEvent::Pending
    }

    /// Marks the packet bad (the slots so far are answered as the chain
    /// goes on).
    fn drop(&mut self, why: TxDrop) {
        self.dropping = Some(why);
        self.frags.clear();
        self.extras.clear();
    }

    fn reset(&mut self) {
        self.chain = Chain::Start;
        self.frags.clear();
        self.extras.clear();
        self.slots.clear();
        self.dropping = None;
    }

    /// The chain ended: the packet, or why not.
    fn finish(&mut self, responses: &mut Vec<NetifTxResponse>) -> TxEvent {
        let verdict = match self.dropping {
            Some(why) => Err(why),
            None => self.check(),
        };
        let event = match verdict {
            Ok(p) => TxEvent::Packet(p),
            Err(why) => {
                respond(&self.slots, NETIF_RSP_ERROR, responses);
                TxEvent::Dropped(why)
            }
        };
        self.reset();
        event
    }

    /// Checks a complete, so far well-formed packet.
    fn check(&mut self) -> Result<TxPacket, TxDrop> {
        let total = usize::from(self.first.size);
        let rest: usize = self.frags.iter().map(|f| usize::from(f.size)).sum();
        let first_len = total.checked_sub(rest).ok_or(TxDrop::SizeMismatch)?;
        if total < ETH_HLEN {
            return Err(TxDrop::Runt);
        }
        if usize::from(self.first.offset) + first_len > PAGE_SIZE {
            return Err(TxDrop::CrossPage);
        }
        let mut gso = None;
        for e in &self.extras {
            if u32::from(e.type_) == XEN_NETIF_EXTRA_TYPE_GSO {
                let g = e.gso();
                let kind = match u32::from(g.type_) {
                    XEN_NETIF_GSO_TYPE_TCPV4 => GsoKind::Tcpv4,
                    XEN_NETIF_GSO_TYPE_TCPV6 => GsoKind::Tcpv6,
                    _ => return Err(TxDrop::BadGso),
                };
                if g.size == 0 {
                    return Err(TxDrop::BadGso);
                }
                gso = Some(Gso { kind, mss: g.size });
            }
        }
        let mut frags = Vec::with_capacity(1 + self.frags.len());
        // first_len <= total <= u16::MAX.
        frags.push(TxFrag { gref: self.first.gref, offset: self.first.offset, len: first_len as u16 });
        frags.extend(self.frags.iter().map(|f| TxFrag { gref: f.gref, offset: f.offset, len: f.size }));
        frags.retain(|f| f.len > 0);
        Ok(TxPacket {
            size: self.first.size,
            frags,
            flags: self.first.flags,
            gso,
            slots: core::mem::take(&mut self.slots),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use guest_abi::io::netif::{NetifExtraGso, NETTXF_CSUM_BLANK};

    fn slot(id: u16, gref: u32, offset: u16, size: u16, flags: u32) -> NetifTxRequest {
        NetifTxRequest { gref, offset, flags: flags as u16, id, size }
    }

    fn extra(type_: u32, more: bool, gso: Option<(u16, u8)>) -> NetifTxRequest {
        let mut e = NetifExtraInfo { type_: type_ as u8, flags: u8::from(more), u: [0; 3] };
        if let Some((size, t)) = gso {
            e.set_gso(NetifExtraGso { size, type_: t, pad: 0, features: 0 });
        }
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(e.as_bytes());
        NetifTxRequest::read_from_bytes(&bytes).unwrap_or(slot(0, 0, 0, 0, 0))
    }

    fn feed_all(d: &mut TxDecoder, reqs: &[NetifTxRequest]) -> (Vec<TxEvent>, Vec<NetifTxResponse>) {
        let mut rsp = Vec::new();
        let events = reqs.iter().map(|r| d.feed(*r, &mut rsp)).collect();
        (events, rsp)
    }

    #[test]
    fn a_multi_slot_packet_with_a_gso_extra_decodes() {
        let mut d = TxDecoder::new();
        let reqs = [
            slot(1, 100, 64, 9000, NETTXF_CSUM_BLANK | NETTXF_EXTRA_INFO | NETTXF_MORE_DATA),
            extra(XEN_NETIF_EXTRA_TYPE_GSO, false, Some((1448, XEN_NETIF_GSO_TYPE_TCPV4 as u8))),
            slot(2, 101, 0, 4096, NETTXF_MORE_DATA),
            slot(3, 102, 0, 4000, 0),
        ];
        let (events, rsp) = feed_all(&mut d, &reqs);
        assert!(rsp.is_empty());
        assert_eq!(&events[..3], &[TxEvent::Pending, TxEvent::Pending, TxEvent::Pending]);
        let TxEvent::Packet(p) = &events[3] else { panic!("{:?}", events[3]) };
        assert_eq!(p.size, 9000);
        assert_eq!(p.frags[0], TxFrag { gref: 100, offset: 64, len: 904 });
        assert_eq!(p.frags.len(), 3);
        assert_eq!(p.gso, Some(Gso { kind: GsoKind::Tcpv4, mss: 1448 }));
        assert_eq!(p.slots, vec![Some(1), None, Some(2), Some(3)]);
        assert!(!d.in_progress());
        let mut out = Vec::new();
        p.respond(NETIF_RSP_OKAY, &mut out);
        assert_eq!(out[1].status, NETIF_RSP_NULL);
        assert_eq!((out[3].id, out[3].status), (3, NETIF_RSP_OKAY));
    }

    #[test]
    fn malformed_packets_are_dropped_with_every_slot_answered() {
        let cases: &[(&[NetifTxRequest], TxDrop)] = &[
            (&[slot(1, 1, 4000, 200, 0)], TxDrop::CrossPage),
            (&[slot(1, 1, 0, 100, NETTXF_MORE_DATA), slot(2, 2, 4000, 200, 0)], TxDrop::CrossPage),
            (&[slot(1, 1, 0, 100, NETTXF_MORE_DATA), slot(2, 2, 0, 200, 0)], TxDrop::SizeMismatch),
            (&[slot(1, 1, 0, 10, 0)], TxDrop::Runt),
            (&[slot(1, 1, 0, 100, NETTXF_EXTRA_INFO), extra(9, false, None)], TxDrop::BadExtra),
            (
                &[slot(1, 1, 0, 100, NETTXF_EXTRA_INFO), extra(XEN_NETIF_EXTRA_TYPE_GSO, false, Some((0, 1)))],
                TxDrop::BadGso,
            ),
            (
                &[slot(1, 1, 0, 100, NETTXF_EXTRA_INFO), extra(XEN_NETIF_EXTRA_TYPE_GSO, false, Some((1448, 7)))],
                TxDrop::BadGso,
            ),
        ];
        for (reqs, why) in cases {
            let mut d = TxDecoder::new();
            let (events, rsp) = feed_all(&mut d, reqs);
            assert_eq!(events.last(), Some(&TxEvent::Dropped(*why)), "{reqs:?}");
            assert_eq!(rsp.len(), reqs.len(), "one response per slot: {reqs:?}");
            assert!(rsp.iter().all(|r| r.status == NETIF_RSP_ERROR || r.status == NETIF_RSP_NULL));
            assert!(!d.in_progress());
        }
    }

    #[test]
    fn an_endless_chain_is_answered_as_it_goes() {
        let mut d = TxDecoder::new();
        let mut rsp = Vec::new();
        assert_eq!(d.feed(slot(0, 1, 0, 60000, NETTXF_MORE_DATA), &mut rsp), TxEvent::Pending);
        for i in 1..=1000u16 {
            assert_eq!(d.feed(slot(i, 1, 0, 10, NETTXF_MORE_DATA), &mut rsp), TxEvent::Pending);
        }
        // The first 1 + 18 slots are held, then every slot is answered.
        assert_eq!(rsp.len(), 1001);
        assert_eq!(d.feed(slot(1001, 1, 0, 10, 0), &mut rsp), TxEvent::Dropped(TxDrop::TooManySlots));
        assert_eq!(rsp.len(), 1002);
        let ids: Vec<u16> = rsp.iter().map(|r| r.id).collect();
        assert_eq!(ids, (0..=1001).collect::<Vec<_>>());
        // The decoder is back at a packet boundary.
        let (events, _) = feed_all(&mut d, &[slot(5, 1, 0, 60, 0)]);
        assert!(matches!(events[0], TxEvent::Packet(_)));
    }

    #[test]
    fn extras_are_bounded_and_multicast_control_is_answered() {
        let mut d = TxDecoder::new();
        let mut reqs = vec![slot(1, 1, 0, 100, NETTXF_EXTRA_INFO)];
        reqs.extend((0..6).map(|_| extra(XEN_NETIF_EXTRA_TYPE_HASH, true, None)));
        reqs.push(extra(XEN_NETIF_EXTRA_TYPE_HASH, false, None));
        let (events, rsp) = feed_all(&mut d, &reqs);
        assert_eq!(events.last(), Some(&TxEvent::Dropped(TxDrop::BadExtra)));
        assert_eq!(rsp.len(), reqs.len());
        let (events, rsp) = feed_all(
            &mut d,
            &[slot(4, 0, 0, 0, NETTXF_EXTRA_INFO), extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, false, None)],
        );
        assert_eq!(events[1], TxEvent::Control);
        assert_eq!((rsp[0].id, rsp[0].status, rsp[1].status), (4, NETIF_RSP_OKAY, NETIF_RSP_NULL));
    }

    #[test]
    fn zero_length_fragments_are_skipped() {
        let mut d = TxDecoder::new();
        let (events, _) = feed_all(&mut d, &[slot(1, 1, 0, 60, NETTXF_MORE_DATA), slot(2, 2, 0, 0, 0)]);
        let TxEvent::Packet(p) = &events[1] else { panic!() };
        assert_eq!(p.frags.len(), 1);
        assert_eq!(p.slots.len(), 2);
    }
}
