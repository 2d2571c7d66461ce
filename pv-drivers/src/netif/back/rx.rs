//! How a frame is laid into a frontend's posted receive buffers.
//!
//! Each posted buffer is one page. A frame of `len` bytes takes
//! `ceil(len / 4096)` data slots, filled from offset 0 (more than one
//! only if the frontend wrote `feature-sg`), and a TCP super-packet
//! takes one more slot for its GSO extra, right after the first data
//! slot. The first response carries the checksum flags, `more_data` if
//! other data slots follow, `extra_info` if the extra does; every later
//! data slot but the last carries `more_data`. A partial checksum goes
//! to the frontend as `csum_blank | data_validated` when it accepts one
//! for the frame's IP version, and is completed here otherwise.
//! Semantics: L:`xen-netback/rx.c xenvif_rx_skb`, `xenvif_rx_complete`,
//! `xenvif_rx_extra_slot`; L:`xen-netfront.c xennet_get_responses`.

use guest_abi::io::netif::{
    NetifExtraGso, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};

use crate::netif::keys::Features;
use crate::netif::offload::{self, Checksum, GsoKind, IpVersion, Offload};
use crate::netif::{NetifExtraInfo, MAX_RX_SLOTS, PAGE_SIZE};

/// Why a frame cannot be given to the frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// An empty frame.
    Empty,
    /// Larger than the frontend can take (one page without SG, or more
    /// slots than netfront accepts).
    TooBig,
    /// A super-packet the frontend did not ask for.
    NoGso,
    /// A partial checksum that cannot be completed (the headers do not
    /// match its offsets).
    BadChecksum,
}

/// Where a frame goes in the receive ring.
#[derive(Clone, Copy, Debug)]
pub struct RxLayout {
    /// Data slots (pages).
    pub data_slots: usize,
    /// The first response's flags.
    pub flags: u16,
    /// The GSO extra, if any (one more slot, after the first).
    pub gso: Option<NetifExtraInfo>,
}

impl RxLayout {
    /// Slots the frame consumes.
    pub fn slots(&self) -> usize {
        self.data_slots + usize::from(self.gso.is_some())
    }
}

/// Lays out `frame` for a frontend with `features`, completing its
/// checksum in place if the frontend cannot take it partial.
pub fn layout(frame: &mut [u8], offload: Offload, features: Features) -> Result<RxLayout, RxDrop> {
    if frame.is_empty() {
        return Err(RxDrop::Empty);
    }
    let data_slots = frame.len().div_ceil(PAGE_SIZE);
    if data_slots > MAX_RX_SLOTS || (data_slots > 1 && !features.sg) {
        return Err(RxDrop::TooBig);
    }
    let mut flags = match offload.csum {
        Checksum::Unknown => 0,
        Checksum::Validated => NETRXF_DATA_VALIDATED as u16,
        Checksum::Partial { start, offset } => {
            let accepted = match offload::parse(frame).map(|h| h.ip) {
                Some(IpVersion::V4) => features.ipv4_csum,
                Some(IpVersion::V6) => features.ipv6_csum,
                None => false,
            };
            if accepted {
                (NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED) as u16
            } else if offload.gso.is_none() && offload::finish_checksum(frame, start, offset) {
                NETRXF_DATA_VALIDATED as u16
            } else {
                return Err(RxDrop::BadChecksum);
            }
        }
    };
    let gso = match offload.gso {
        None => None,
        Some(g) => {
            let (ok, t) = match g.kind {
                GsoKind::Tcpv4 => (features.gso_tcpv4, XEN_NETIF_GSO_TYPE_TCPV4),
                GsoKind::Tcpv6 => (features.gso_tcpv6, XEN_NETIF_GSO_TYPE_TCPV6),
            };
            if !ok || g.mss == 0 {
                return Err(RxDrop::NoGso);
            }
            let mut e = NetifExtraInfo { type_: XEN_NETIF_EXTRA_TYPE_GSO as u8, flags: 0, u: [0; 3] };
            e.set_gso(NetifExtraGso { size: g.mss, type_: t as u8, pad: 0, features: 0 });
            flags |= NETRXF_EXTRA_INFO as u16;
            Some(e)
        }
    };
    if data_slots > 1 {
        flags |= NETRXF_MORE_DATA as u16;
    }
    Ok(RxLayout { data_slots, flags, gso })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netif::offload::tests::{ipv4_frame, l4_checksum_ok};
    use crate::netif::offload::{set_pseudo_header, Gso, IPPROTO_TCP};

    #[test]
    fn frames_take_one_slot_per_page_and_one_per_extra() {
        let mut small = [0u8; 60];
        let l = layout(&mut small, Offload::default(), Features::NONE).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((l.data_slots, l.flags, l.gso.is_none()), (1, 0, true));
        let mut big = alloc::vec![0u8; 9000];
        assert_eq!(layout(&mut big, Offload::default(), Features::NONE).err(), Some(RxDrop::TooBig));
        let l = layout(&mut big, Offload::default(), Features::ALL).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((l.data_slots, l.flags), (3, NETRXF_MORE_DATA as u16));
        let mut huge = alloc::vec![0u8; 19 * 4096];
        assert_eq!(layout(&mut huge, Offload::default(), Features::ALL).err(), Some(RxDrop::TooBig));
        assert_eq!(layout(&mut [], Offload::default(), Features::ALL).err(), Some(RxDrop::Empty));
    }

    #[test]
    fn partial_checksums_pass_through_or_are_completed() {
        let good = ipv4_frame(IPPROTO_TCP, &[1; 300], false);
        let mut f = good.clone();
        let (start, offset) = set_pseudo_header(&mut f).unwrap_or_default();
        let partial = Offload { csum: Checksum::Partial { start, offset }, gso: None };
        let l = layout(&mut f.clone(), partial, Features::ALL).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.flags, (NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED) as u16);
        let l = layout(&mut f, partial, Features::NONE).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.flags, NETRXF_DATA_VALIDATED as u16);
        assert!(l4_checksum_ok(&f) && f == good);
        let bogus = Offload { csum: Checksum::Partial { start: 5000, offset: 16 }, gso: None };
        assert_eq!(layout(&mut f, bogus, Features::NONE).err(), Some(RxDrop::BadChecksum));
    }

    #[test]
    fn super_packets_need_the_frontend_s_gso() {
        let mut f = ipv4_frame(IPPROTO_TCP, &[1; 5000], false);
        let (start, offset) = set_pseudo_header(&mut f).unwrap_or_default();
        let o =
            Offload { csum: Checksum::Partial { start, offset }, gso: Some(Gso { kind: GsoKind::Tcpv4, mss: 1448 }) };
        assert_eq!(layout(&mut f, o, Features { gso_tcpv4: false, ..Features::ALL }).err(), Some(RxDrop::NoGso));
        let l = layout(&mut f, o, Features::ALL).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.slots(), 3);
        assert_eq!(l.flags & NETRXF_EXTRA_INFO as u16, NETRXF_EXTRA_INFO as u16);
        let g = l.gso.map(|e| e.gso()).unwrap_or_else(|| panic!("no extra"));
        assert_eq!((g.size, u32::from(g.type_)), (1448, XEN_NETIF_GSO_TYPE_TCPV4));
    }
}
