//! The `virtio_net_hdr` a TAP device with `IFF_VNET_HDR` puts before
//! every frame, and how it maps to netif's [`Offload`].
//!
//! `flags`: `NEEDS_CSUM` (1) — a partial checksum at
//! `csum_start`/`csum_offset`; `DATA_VALID` (2) — already checked.
//! `gso_type`: `NONE` 0, `TCPV4` 1, `UDP` 3, `TCPV6` 4, with the `ECN`
//! bit (0x80); `gso_size` is the MSS and `hdr_len` the header bytes
//! before the payload. Little-endian on x86 (tun's legacy byte order is
//! the host's). Semantics: L:`include/uapi/linux/virtio_net.h`,
//! `include/linux/virtio_net.h virtio_net_hdr_to_skb`/`_from_skb`.

use pv_drivers::netif::offload::{self, Checksum, Gso, GsoKind, Offload};

/// Bytes of the header (`struct virtio_net_hdr`, without `num_buffers`).
pub const LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`.
const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`.
const GSO_ECN: u8 = 0x80;

/// The header for a frame going into the TAP device.
pub fn encode(frame: &[u8], o: Offload) -> [u8; LEN] {
    let mut h = [0u8; LEN];
    match o.csum {
        Checksum::Partial { start, offset } => {
            h[0] = F_NEEDS_CSUM;
            h[6..8].copy_from_slice(&start.to_le_bytes());
            h[8..10].copy_from_slice(&offset.to_le_bytes());
        }
        Checksum::Validated => h[0] = F_DATA_VALID,
        Checksum::Unknown => {}
    }
    if let Some(g) = o.gso {
        h[1] = match g.kind {
            GsoKind::Tcpv4 => GSO_TCPV4,
            GsoKind::Tcpv6 => GSO_TCPV6,
        };
        let hdr_len = offload::gso_header_len(frame).unwrap_or(0);
        h[2..4].copy_from_slice(&hdr_len.to_le_bytes());
        h[4..6].copy_from_slice(&g.mss.to_le_bytes());
    }
    h
}

/// The offload of a frame read from the TAP device; `None` for one
/// netif cannot carry (UDP fragmentation offload, which is never
/// enabled, or an unknown type).
pub fn decode(h: &[u8; LEN]) -> Option<Offload> {
    let le = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    let csum = if h[0] & F_NEEDS_CSUM != 0 {
        Checksum::Partial { start: le(6), offset: le(8) }
    } else if h[0] & F_DATA_VALID != 0 {
        Checksum::Validated
    } else {
        Checksum::Unknown
    };
    let gso = match h[1] & !GSO_ECN {
        0 => None,
        GSO_TCPV4 => Some(Gso { kind: GsoKind::Tcpv4, mss: le(4) }),
        GSO_TCPV6 => Some(Gso { kind: GsoKind::Tcpv6, mss: le(4) }),
        _ => return None,
    };
    if gso.is_some_and(|g| g.mss == 0) {
        return None;
    }
    Some(Offload { csum, gso })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let o = Offload {
            csum: Checksum::Partial { start: 34, offset: 16 },
            gso: Some(Gso { kind: GsoKind::Tcpv4, mss: 1448 }),
        };
        let h = encode(&[], o);
        assert_eq!(h, [1, 1, 0, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(decode(&h), Some(o));
        for o in [Offload::default(), Offload { csum: Checksum::Validated, gso: None }] {
            assert_eq!(decode(&encode(&[], o)), Some(o));
        }
        assert_eq!(decode(&[0, 1 | GSO_ECN, 0, 0, 100, 0, 0, 0, 0, 0]).and_then(|o| o.gso).map(|g| g.mss), Some(100));
        assert_eq!(decode(&[0, 3, 0, 0, 100, 0, 0, 0, 0, 0]), None, "UFO");
        assert_eq!(decode(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), None, "MSS 0");
    }
}
