//! Ethernet, ARP and ICMP echo for the network test guests: just what it
//! takes to answer `ping` and to ask who has an address. Frames come
//! from the network: every field is read with bounds checks.

// Shared by the network test guests, each of which uses part of it.
#![allow(dead_code)]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::pv_drivers::netif::keys::Mac;
use guest_rt::pv_drivers::netif::offload::internet_checksum;

/// `ETH_P_ARP`.
const ETH_P_ARP: [u8; 2] = [0x08, 0x06];
/// `ETH_P_IP`.
const ETH_P_IP: [u8; 2] = [0x08, 0x00];

/// An IPv4 address.
pub type Ip = [u8; 4];

/// Parses `a.b.c.d`.
pub fn parse_ip(text: &[u8]) -> Option<Ip> {
    let text = core::str::from_utf8(text).ok()?.trim();
    let mut ip = [0u8; 4];
    let mut parts = text.split('.');
    for b in &mut ip {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

/// What a received frame asks of us.
pub enum Request {
    /// An ARP request for our address, from (mac, ip).
    Arp(Mac, Ip),
    /// An ARP reply to us, from (mac, ip).
    ArpReply(Mac, Ip),
    /// An ICMP echo request to our address from `Ip`; the reply frame.
    Echo(Ip, Vec<u8>),
    /// Anything else.
    Other,
}

fn mac_at(f: &[u8], at: usize) -> Option<Mac> {
    let mut m = [0u8; 6];
    m.copy_from_slice(f.get(at..at + 6)?);
    Some(Mac(m))
}

fn ip_at(f: &[u8], at: usize) -> Option<Ip> {
    let mut ip = [0u8; 4];
    ip.copy_from_slice(f.get(at..at + 4)?);
    Some(ip)
}

/// An ARP frame: `op` 1 (request, to broadcast) or 2 (reply).
pub fn arp(op: u8, mac: Mac, ip: Ip, to_mac: Mac, to_ip: Ip) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(if op == 1 { &Mac::BROADCAST.0 } else { &to_mac.0 });
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, op]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip);
    f.extend_from_slice(if op == 1 { &[0; 6] } else { &to_mac.0 });
    f.extend_from_slice(&to_ip);
    f
}

/// What `frame` asks of the host at (`mac`, `ip`).
pub fn classify(frame: &[u8], mac: Mac, ip: Ip) -> Request {
    classify_inner(frame, mac, ip).unwrap_or(Request::Other)
}

fn classify_inner(f: &[u8], mac: Mac, ip: Ip) -> Option<Request> {
    let ethertype = f.get(12..14)?;
    if ethertype == ETH_P_ARP {
        let (op, sha, spa, tpa) = (*f.get(21)?, mac_at(f, 22)?, ip_at(f, 28)?, ip_at(f, 38)?);
        if f.get(14..20)? != [0, 1, 0x08, 0x00, 6, 4] || tpa != ip {
            return Some(Request::Other);
        }
        return Some(match op {
            1 => Request::Arp(sha, spa),
            2 => Request::ArpReply(sha, spa),
            _ => Request::Other,
        });
    }
    if ethertype != ETH_P_IP || mac_at(f, 0)? != mac {
        return Some(Request::Other);
    }
    let ihl = usize::from(*f.get(14)? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*f.get(16)?, *f.get(17)?]));
    let (proto, src, dst) = (*f.get(23)?, ip_at(f, 26)?, ip_at(f, 30)?);
    let icmp = 14 + ihl;
    if ihl < 20 || total < ihl + 8 || 14 + total > f.len() || proto != 1 || dst != ip || *f.get(icmp)? != 8 {
        return Some(Request::Other);
    }
    let mut r = f.get(..14 + total)?.to_vec();
    r.copy_within(6..12, 0);
    r[6..12].copy_from_slice(&mac.0);
    r[26..30].copy_from_slice(&ip);
    r[30..34].copy_from_slice(&src);
    r[22] = 64; // TTL
    r[24..26].copy_from_slice(&[0, 0]);
    let c = internet_checksum(r.get(14..14 + ihl)?);
    r[24..26].copy_from_slice(&c.to_be_bytes());
    r[icmp] = 0; // echo reply
    r[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
    let c = internet_checksum(r.get(icmp..14 + total)?);
    r[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    Some(Request::Echo(src, r))
}

/// `a.b.c.d`.
pub struct ShowIp(pub Ip);

impl core::fmt::Display for ShowIp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}.{}", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}
