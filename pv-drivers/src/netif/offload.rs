//! What travels with a frame besides its bytes, and the arithmetic to
//! finish it.
//!
//! A frame's [`Offload`] says how far its L4 checksum got
//! ([`Checksum`]) and whether it is a TCP super-packet to be cut into
//! segments of `mss` bytes ([`Gso`]). The two ends of netif say it with
//! slot flags (TX `csum_blank`/`data_validated`, RX `csum_blank`/
//! `data_validated`, the bits swapped) and a GSO extra-info slot; a TAP
//! device says it with a `virtio_net_hdr`. Neither carries header
//! offsets, so a backend that hands a partial checksum on must find the
//! L4 header itself ([`partial_checksum`]), and one whose peer cannot
//! take a partial checksum completes it in software ([`finish_checksum`]).
//!
//! A partial checksum holds the folded pseudo-header sum in the L4
//! checksum field; finishing it sums everything from the L4 header to
//! the end of the frame and stores the complement (Linux's
//! `skb_checksum_help`). Frames come from peers: every offset is checked
//! against the frame's length, and a frame that does not parse is
//! reported, never indexed past its end.
//! Semantics: L:`net/core/skbuff.c skb_checksum_setup`,
//! `net/core/dev.c skb_checksum_help`, `include/linux/virtio_net.h`.

/// `ETH_P_IP`.
const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`.
const ETH_P_IPV6: u16 = 0x86dd;
/// `ETH_P_8021Q`.
const ETH_P_8021Q: u16 = 0x8100;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u8 = 1;

/// How far a frame's L4 checksum got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    /// Nothing is known: the receiver verifies it.
    #[default]
    Unknown,
    /// Only the pseudo-header sum is in the field at `start + offset`;
    /// the sum from `start` to the end of the frame is still to be done.
    Partial {
        /// Where the checksummed data starts (the L4 header).
        start: u16,
        /// Where the field is, from `start`.
        offset: u16,
    },
    /// The sender vouches for it (`data_validated`).
    Validated,
}

/// The protocol of a TCP super-packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4 (`XEN_NETIF_GSO_TYPE_TCPV4`).
    Tcpv4,
    /// TCP over IPv6 (`XEN_NETIF_GSO_TYPE_TCPV6`).
    Tcpv6,
}

/// A TCP super-packet, to be cut into segments of `mss` payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    /// The protocol.
    pub kind: GsoKind,
    /// Payload bytes per segment (never 0).
    pub mss: u16,
}

/// What travels with a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// The L4 checksum's state.
    pub csum: Checksum,
    /// Segmentation still to be done.
    pub gso: Option<Gso>,
}

/// The IP version of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Where a frame's headers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// The IP version.
    pub ip: IpVersion,
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the L4 header.
    pub l4: usize,
    /// The L4 protocol (`IPPROTO_*`).
    pub proto: u8,
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    let b = frame.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn byte(frame: &[u8], at: usize) -> Option<u8> {
    frame.get(at).copied()
}

/// Finds the IP and L4 headers of an Ethernet frame (one 802.1Q tag at
/// most; IPv6 extension headers skipped). `None` for anything else, for
/// a non-first IP fragment, or for headers cut short.
pub fn parse(frame: &[u8]) -> Option<Headers> {
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == ETH_P_8021Q {
        ethertype = be16(frame, 16)?;
        l3 = 18;
    }
    match ethertype {
        ETH_P_IP => {
            let vihl = byte(frame, l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || frame.len() < l3 + ihl {
                return None;
            }
            let frag = be16(frame, l3 + 6)?;
            if frag & 0x1fff != 0 {
                return None; // not the first fragment: no L4 header
            }
            Some(Headers { ip: IpVersion::V4, l3, l4: l3 + ihl, proto: byte(frame, l3 + 9)? })
        }
        ETH_P_IPV6 => {
            if byte(frame, l3)? >> 4 != 6 {
                return None;
            }
            let mut next = byte(frame, l3 + 6)?;
            let mut l4 = l3 + 40;
            for _ in 0..8 {
                match next {
                    // Hop-by-hop, routing, destination options.
                    0 | 43 | 60 => {
                        let len = (usize::from(byte(frame, l4 + 1)?) + 1) * 8;
                        next = byte(frame, l4)?;
                        l4 += len;
                    }
                    // Fragment: only the first carries the L4 header.
                    44 => {
                        if be16(frame, l4 + 2)? & 0xfff8 != 0 {
                            return None;
                        }
                        next = byte(frame, l4)?;
                        l4 += 8;
                    }
                    _ => break,
                }
            }
            (frame.len() >= l4).then_some(Headers { ip: IpVersion::V6, l3, l4, proto: next })
        }
        _ => None,
    }
}

/// Where the checksum field of a TCP or UDP header is, from its start.
fn csum_field(proto: u8) -> Option<u16> {
    match proto {
        IPPROTO_TCP => Some(16),
        IPPROTO_UDP => Some(6),
        _ => None,
    }
}

/// The [`Checksum::Partial`] offsets of a TCP or UDP frame whose
/// checksum field holds the pseudo-header sum; `None` if the frame is
/// neither or is cut short.
pub fn partial_checksum(frame: &[u8]) -> Option<(u16, u16)> {
    let h = parse(frame)?;
    let offset = csum_field(h.proto)?;
    let start = u16::try_from(h.l4).ok()?;
    (h.l4 + usize::from(offset) + 2 <= frame.len()).then_some((start, offset))
}

/// Adds `data` to a ones'-complement sum (big-endian 16-bit words, an
/// odd last byte padded with zero).
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` (RFC 1071), as stored in a header.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Completes a [`Checksum::Partial`]: sums from `start` to the end and
/// stores the complement in the field (0 becomes `0xffff`, as UDP
/// requires and TCP allows). False if the offsets lie outside the frame.
pub fn finish_checksum(frame: &mut [u8], start: u16, offset: u16) -> bool {
    let (start, field) = (usize::from(start), usize::from(start) + usize::from(offset));
    if field + 2 > frame.len() {
        return false;
    }
    let Some(data) = frame.get(start..) else { return false };
    let c = match !fold(sum(data, 0)) {
        0 => 0xffff,
        c => c,
    };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Writes the pseudo-header sum (for the frame's whole L4 length) into a
/// TCP or UDP checksum field, turning the frame into a partial checksum
/// whatever the field held (what Linux does to a GSO frame that came
/// without `csum_blank`); the offsets, or `None` if the frame does not
/// parse.
pub fn set_pseudo_header(frame: &mut [u8]) -> Option<(u16, u16)> {
    let h = parse(frame)?;
    let offset = csum_field(h.proto)?;
    let field = h.l4 + usize::from(offset);
    if field + 2 > frame.len() {
        return None;
    }
    let l4_len = (frame.len() - h.l4) as u64;
    let acc = match h.ip {
        IpVersion::V4 => sum(frame.get(h.l3 + 12..h.l3 + 20)?, 0) + u64::from(h.proto) + l4_len,
        IpVersion::V6 => sum(frame.get(h.l3 + 8..h.l3 + 40)?, 0) + u64::from(h.proto) + l4_len,
    };
    frame[field..field + 2].copy_from_slice(&fold(acc).to_be_bytes());
    Some((u16::try_from(h.l4).ok()?, offset))
}

/// The bytes of headers before a TCP super-packet's payload (Ethernet,
/// IP and TCP with options): `virtio_net_hdr.hdr_len`.
pub fn gso_header_len(frame: &[u8]) -> Option<u16> {
    let h = parse(frame)?;
    if h.proto != IPPROTO_TCP {
        return None;
    }
    let doff = usize::from(byte(frame, h.l4 + 12)? >> 4) * 4;
    let end = h.l4 + doff;
    (doff >= 20 && end <= frame.len()).then(|| u16::try_from(end).ok()).flatten()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// An Ethernet + IPv4 + UDP or TCP frame with `payload`, its L4
    /// checksum complete; with `vlan`, one 802.1Q tag.
    pub fn ipv4_frame(proto: u8, payload: &[u8], vlan: bool) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 2, 0x00, 0x16, 0x3e, 0, 0, 1]);
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let l3 = f.len();
        let l4_len = if proto == IPPROTO_TCP { 20 } else { 8 } + payload.len();
        let total = (20 + l4_len) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[169, 254, 0, 2, 169, 254, 0, 1]);
        let c = internet_checksum(&f[l3..l3 + 20]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        if proto == IPPROTO_TCP {
            f.extend_from_slice(&[0x30, 0x39, 0x13, 0x88, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&[0x30, 0x39, 0x13, 0x88, (l4_len >> 8) as u8, l4_len as u8, 0, 0]);
        }
        f.extend_from_slice(payload);
        let (start, offset) = set_pseudo_header(&mut f).unwrap_or_default();
        assert!(finish_checksum(&mut f, start, offset));
        f
    }

    /// Verifies a complete TCP/UDP checksum: the sum over the
    /// pseudo-header and the L4 bytes folds to `0xffff`.
    pub fn l4_checksum_ok(frame: &[u8]) -> bool {
        let Some(h) = parse(frame) else { return false };
        let l4_len = (frame.len() - h.l4) as u64;
        let ph = match h.ip {
            IpVersion::V4 => sum(&frame[h.l3 + 12..h.l3 + 20], 0),
            IpVersion::V6 => sum(&frame[h.l3 + 8..h.l3 + 40], 0),
        } + u64::from(h.proto)
            + l4_len;
        fold(sum(&frame[h.l4..], ph)) == 0xffff
    }

    #[test]
    fn checksums_follow_rfc1071() {
        // RFC 1071's example words: 0001 f203 f4f5 f6f7 → sum ddf2.
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)), 0xddf2);
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        assert_eq!(fold(sum(&[0xff], 0)), 0xff00, "odd byte padded");
    }

    #[test]
    fn partial_checksums_are_found_and_finished() {
        for (proto, vlan) in [(IPPROTO_TCP, false), (IPPROTO_UDP, false), (IPPROTO_TCP, true)] {
            let good = ipv4_frame(proto, b"hello, netif!", vlan);
            assert!(l4_checksum_ok(&good));
            let mut f = good.clone();
            let (start, offset) = set_pseudo_header(&mut f).unwrap_or_default();
            assert_eq!(partial_checksum(&f), Some((start, offset)));
            assert_eq!(usize::from(start), if vlan { 38 } else { 34 });
            assert!(!l4_checksum_ok(&f), "only the pseudo-header is in");
            assert!(finish_checksum(&mut f, start, offset));
            assert_eq!(f, good);
        }
        let tcp = ipv4_frame(IPPROTO_TCP, &[7; 100], false);
        assert_eq!(gso_header_len(&tcp), Some(54));
    }

    #[test]
    fn short_or_strange_frames_do_not_parse() {
        let good = ipv4_frame(IPPROTO_UDP, b"x", false);
        for cut in 0..good.len() - 1 {
            let mut f = good[..cut].to_vec();
            // Nothing may index past the end, whatever is asked.
            let _ = partial_checksum(&f);
            let _ = set_pseudo_header(&mut f);
            let _ = gso_header_len(&f);
        }
        assert_eq!(partial_checksum(&good[..40]), None, "UDP header cut");
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(&arp), None);
        let mut frag = good.clone();
        frag[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(parse(&frag), None, "a later fragment has no L4 header");
        let mut bad_ihl = good;
        bad_ihl[14] = 0x44;
        assert_eq!(parse(&bad_ihl), None);
        assert!(!finish_checksum(&mut [0u8; 10], 8, 2));
        assert!(!finish_checksum(&mut [0u8; 10], 20, 0));
    }
}
