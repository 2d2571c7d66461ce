//! The XenStore keys of a vif, the features each end offers, and MAC
//! addresses as the toolstack writes them.
//!
//! Backend directory (written by the backend before InitWait):
//! `feature-rx-copy`, `feature-rx-flip`, `feature-sg`,
//! `feature-gso-tcpv4`, `feature-gso-tcpv6`, `feature-ipv6-csum-offload`,
//! `feature-split-event-channels`, `multi-queue-max-queues`; by the
//! toolstack: `mac`, `handle`, `bridge`, `script`, `ip`, `vifname`.
//! Frontend directory (written by the frontend with state 4, in one
//! transaction): `tx-ring-ref`, `rx-ring-ref`, `event-channel` or
//! `event-channel-tx` + `event-channel-rx`, `request-rx-copy`,
//! `feature-rx-notify`, its own `feature-*` keys, and
//! `multi-queue-num-queues` with the per-queue keys under `queue-<n>/`
//! when there are several queues. Semantics: L:`xen-netfront.c
//! talk_to_netback`, `xen-netback/xenbus.c netback_probe`, `connect`,
//! `read_xenbus_vif_flags`.

use alloc::format;
use alloc::string::String;

/// `feature-rx-copy` (back): RX by grant copy. netfront refuses a
/// backend without it.
pub const FEATURE_RX_COPY: &str = "feature-rx-copy";
/// `feature-rx-flip` (back): page flipping, never offered (0).
pub const FEATURE_RX_FLIP: &str = "feature-rx-flip";
/// `feature-sg`: multi-slot packets.
pub const FEATURE_SG: &str = "feature-sg";
/// `feature-gso-tcpv4`: TCP segmentation offload over IPv4.
pub const FEATURE_GSO_TCPV4: &str = "feature-gso-tcpv4";
/// `feature-gso-tcpv6`: TCP segmentation offload over IPv6.
pub const FEATURE_GSO_TCPV6: &str = "feature-gso-tcpv6";
/// `feature-ipv6-csum-offload`: partial checksums for IPv6.
pub const FEATURE_IPV6_CSUM_OFFLOAD: &str = "feature-ipv6-csum-offload";
/// `feature-no-csum-offload` (front): no partial IPv4 checksums.
pub const FEATURE_NO_CSUM_OFFLOAD: &str = "feature-no-csum-offload";
/// `feature-split-event-channels` (back): separate TX and RX ports.
pub const FEATURE_SPLIT_EVENT_CHANNELS: &str = "feature-split-event-channels";
/// `multi-queue-max-queues` (back).
pub const MULTI_QUEUE_MAX_QUEUES: &str = "multi-queue-max-queues";
/// `multi-queue-num-queues` (front).
pub const MULTI_QUEUE_NUM_QUEUES: &str = "multi-queue-num-queues";
/// `tx-ring-ref` (front, per queue).
pub const TX_RING_REF: &str = "tx-ring-ref";
/// `rx-ring-ref` (front, per queue).
pub const RX_RING_REF: &str = "rx-ring-ref";
/// `event-channel` (front, per queue): one port for both rings.
pub const EVENT_CHANNEL: &str = "event-channel";
/// `event-channel-tx` (front, per queue, split channels).
pub const EVENT_CHANNEL_TX: &str = "event-channel-tx";
/// `event-channel-rx` (front, per queue, split channels).
pub const EVENT_CHANNEL_RX: &str = "event-channel-rx";
/// `request-rx-copy` (front): must be 1.
pub const REQUEST_RX_COPY: &str = "request-rx-copy";
/// `feature-rx-notify` (front): it notifies when it posts RX buffers.
pub const FEATURE_RX_NOTIFY: &str = "feature-rx-notify";
/// `mac` (toolstack, both directories).
pub const MAC: &str = "mac";
/// `handle` (toolstack): the vif's index, its devid.
pub const HANDLE: &str = "handle";
/// `bridge` (toolstack, backend): the bridge the vif joins.
pub const BRIDGE: &str = "bridge";
/// `ip` (toolstack, backend): the guest's addresses, informational.
pub const IP: &str = "ip";
/// `vifname` (toolstack, backend): the backend device's name.
pub const VIFNAME: &str = "vifname";
/// `script` (toolstack, backend): the hotplug script (Linux netback
/// requires the key, whatever it says).
pub const SCRIPT: &str = "script";
/// `hotplug-status` (backend): `connected` once the backend device is
/// bridged (Linux netback holds Connected until it reads this).
pub const HOTPLUG_STATUS: &str = "hotplug-status";

/// The directory of queue `q`'s keys, below the frontend directory.
pub fn queue_dir(q: u32) -> String {
    format!("queue-{q}")
}

/// Offloads one end offers (the backend) or asks for (the frontend); a
/// connection uses what both have ([`Features::common`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `feature-sg`.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// Partial IPv4 checksums (a frontend refuses them with
    /// `feature-no-csum-offload`).
    pub ipv4_csum: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum: bool,
}

impl Features {
    /// Everything netif defines.
    pub const ALL: Features = Features { sg: true, gso_tcpv4: true, gso_tcpv6: true, ipv4_csum: true, ipv6_csum: true };
    /// Nothing: single-slot frames with full checksums.
    pub const NONE: Features =
        Features { sg: false, gso_tcpv4: false, gso_tcpv6: false, ipv4_csum: false, ipv6_csum: false };

    /// What both `self` and `other` have. GSO needs SG and the checksum
    /// of its IP version (netfront's and netback's feature fixups).
    pub fn common(self, other: Features) -> Features {
        let sg = self.sg && other.sg;
        let ipv4_csum = self.ipv4_csum && other.ipv4_csum;
        let ipv6_csum = self.ipv6_csum && other.ipv6_csum;
        Features {
            sg,
            gso_tcpv4: sg && ipv4_csum && self.gso_tcpv4 && other.gso_tcpv4,
            gso_tcpv6: sg && ipv6_csum && self.gso_tcpv6 && other.gso_tcpv6,
            ipv4_csum,
            ipv6_csum,
        }
    }

    /// The keys a backend publishes for these features (IPv4 checksum
    /// offload has no backend key: it is always offered).
    pub fn backend_entries(self) -> [(&'static str, String); 4] {
        let b = |v: bool| String::from(if v { "1" } else { "0" });
        [
            (FEATURE_SG, b(self.sg)),
            (FEATURE_GSO_TCPV4, b(self.gso_tcpv4)),
            (FEATURE_GSO_TCPV6, b(self.gso_tcpv6)),
            (FEATURE_IPV6_CSUM_OFFLOAD, b(self.ipv6_csum)),
        ]
    }

    /// The keys a frontend publishes for these features.
    pub fn frontend_entries(self) -> [(&'static str, String); 5] {
        let b = |v: bool| String::from(if v { "1" } else { "0" });
        [
            (FEATURE_SG, b(self.sg)),
            (FEATURE_GSO_TCPV4, b(self.gso_tcpv4)),
            (FEATURE_GSO_TCPV6, b(self.gso_tcpv6)),
            (FEATURE_IPV6_CSUM_OFFLOAD, b(self.ipv6_csum)),
            (FEATURE_NO_CSUM_OFFLOAD, b(!self.ipv4_csum)),
        ]
    }
}

/// A MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Broadcast, `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Parses six colon-separated hexadecimal bytes (`00:16:3e:01:02:03`,
    /// one or two digits each, either case), as xl's `mac=` and the
    /// `mac` key; anything else is `None`.
    pub fn parse(text: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = text.trim().split(':');
        for byte in &mut out {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *byte = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// Whether this is a group (multicast or broadcast) address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn macs_parse_as_xl_writes_them() {
        assert_eq!(Mac::parse("00:16:3e:0a:0B:c"), Some(Mac([0, 0x16, 0x3e, 0x0a, 0x0b, 0x0c])));
        assert_eq!(Mac([0, 0x16, 0x3e, 1, 2, 0xab]).to_string(), "00:16:3e:01:02:ab");
        for bad in ["", "00:16:3e:01:02", "00:16:3e:01:02:03:04", "00:16:3e:01:02:zz", "000:16:3e:01:02:03", "::::::"] {
            assert_eq!(Mac::parse(bad), None, "{bad}");
        }
        assert!(Mac::BROADCAST.is_multicast() && !Mac([0, 0x16, 0x3e, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn gso_needs_sg_and_the_checksum() {
        let no_sg = Features { sg: false, ..Features::ALL };
        assert_eq!(
            Features::ALL.common(no_sg),
            Features { sg: false, gso_tcpv4: false, gso_tcpv6: false, ..Features::ALL }
        );
        let no_v6 = Features { ipv6_csum: false, ..Features::ALL };
        let c = Features::ALL.common(no_v6);
        assert!(c.gso_tcpv4 && !c.gso_tcpv6 && !c.ipv6_csum);
        assert_eq!(Features::ALL.common(Features::NONE), Features::NONE);
        let f = Features { ipv4_csum: false, ..Features::NONE }.frontend_entries();
        assert!(f.contains(&(FEATURE_NO_CSUM_OFFLOAD, "1".into())));
    }
}
