//! VIFSPEC, the `vif = [...]` entries of xl.cfg and the arguments of `xl
//! network-attach`: comma-separated `key=value` items, leading blanks
//! skipped, keys matched as xl matches them; an unknown item is
//! reported and skipped, as xl does.
//!
//! Keys: `mac=` (6 hex bytes), `bridge=`, `script=`, `backend=`,
//! `type=vif|ioemu` (`ioemu` refused: PV), `ip=`, `vifname=`, `model=`,
//! `rate=`, `mtu=`, `devid=`, `gatewaydev=`, `trusted`/`untrusted`; and
//! xenish's own `backendtype=xenish|kernel`, which chooses the backend
//! (`xenish-netback` or Linux's `xen-netback`).
//! Semantics: X:`tools/xl/xl_parse.c parse_nic_config`,
//! `docs/man/xl-network-configuration.5.pod.in`.

use pv_drivers::netif::keys::Mac;

/// Which backend serves the vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendType {
    /// `xenish-netback`, the userspace daemon (backend kind `qnic`).
    #[default]
    Xenish,
    /// Linux's in-kernel `xen-netback` (backend kind `vif`).
    Kernel,
}

impl BackendType {
    /// The backend directory's kind.
    pub fn kind(self) -> &'static str {
        match self {
            BackendType::Xenish => "qnic",
            BackendType::Kernel => "vif",
        }
    }
}

/// A parsed VIFSPEC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VifSpec {
    /// `mac=`.
    pub mac: Option<Mac>,
    /// `bridge=`.
    pub bridge: Option<String>,
    /// `script=`.
    pub script: Option<String>,
    /// `backend=`.
    pub backend: Option<String>,
    /// `ip=`.
    pub ip: Option<String>,
    /// `vifname=`.
    pub vifname: Option<String>,
    /// `model=` (HVM only: kept, unused).
    pub model: Option<String>,
    /// `rate=`.
    pub rate: Option<String>,
    /// `mtu=`.
    pub mtu: Option<u32>,
    /// `devid=`.
    pub devid: Option<u32>,
    /// `gatewaydev=` (kept, unused).
    pub gatewaydev: Option<String>,
    /// `trusted` / `untrusted`.
    pub trusted: Option<bool>,
    /// `backendtype=`.
    pub backendtype: BackendType,
    /// Items xl would report as unrecognized.
    pub unrecognized: Vec<String>,
}

/// Parses a VIFSPEC; an error names the bad item as xl does.
pub fn parse(text: &str) -> Result<VifSpec, String> {
    let mut s = VifSpec::default();
    for item in text.split(',') {
        let item = item.trim_start();
        if item.is_empty() {
            continue;
        }
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (item, None),
        };
        let text = || value.clone().unwrap_or_default();
        match (key, &value) {
            ("mac", Some(v)) => s.mac = Some(Mac::parse(v).ok_or_else(|| format!("invalid mac address: {v}"))?),
            ("bridge", Some(_)) => s.bridge = Some(text()),
            ("script", Some(_)) => s.script = Some(text()),
            ("backend", Some(_)) => s.backend = Some(text()),
            ("ip", Some(_)) => s.ip = Some(text()),
            ("vifname", Some(v)) => {
                if !dom0_tools::netdev::valid_name(v) {
                    return Err(format!("invalid vifname: {v}"));
                }
                s.vifname = Some(text());
            }
            ("model", Some(_)) => s.model = Some(text()),
            ("rate", Some(_)) => s.rate = Some(text()),
            ("gatewaydev", Some(_)) => s.gatewaydev = Some(text()),
            ("mtu", Some(v)) => s.mtu = Some(v.trim().parse().map_err(|_| format!("invalid mtu: {v}"))?),
            ("devid", Some(v)) => s.devid = Some(v.trim().parse().map_err(|_| format!("invalid devid: {v}"))?),
            ("type", Some(v)) => match v.as_str() {
                "vif" => {}
                "ioemu" => return Err("type=ioemu is for HVM guests; this is a PV guest".into()),
                _ => return Err(format!("Invalid parameter `type': {v}")),
            },
            ("trusted", None) => s.trusted = Some(true),
            ("untrusted", None) => s.trusted = Some(false),
            ("backendtype", Some(v)) => {
                s.backendtype = match v.as_str() {
                    "xenish" => BackendType::Xenish,
                    "kernel" => BackendType::Kernel,
                    _ => return Err(format!("invalid backendtype: {v} (xenish or kernel)")),
                }
            }
            ("accel", _) => {}
            _ => s.unrecognized.push(item.to_string()),
        }
    }
    Ok(s)
}

/// A MAC in Xen's range (`00:16:3e`) with random low bytes, the top bit
/// of the fourth byte clear (libxl's default).
pub fn random_mac() -> Mac {
    let mut r = [0u8; 3];
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/uuid") {
        let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        for (i, b) in r.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).and_then(|p| std::str::from_utf8(p).ok());
            *b = pair.and_then(|p| u8::from_str_radix(p, 16).ok()).unwrap_or(0);
        }
    } else {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        r.copy_from_slice(&(t as u32 ^ std::process::id()).to_le_bytes()[..3]);
    }
    Mac([0x00, 0x16, 0x3e, r[0] & 0x7f, r[1], r[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_xl_parses_them() {
        let s = parse("mac=00:16:3e:00:00:01, bridge=xenbr1,ip=169.254.0.2,backendtype=kernel,untrusted,foo=bar")
            .unwrap_or_default();
        assert_eq!(s.mac, Mac::parse("00:16:3e:00:00:01"));
        assert_eq!((s.bridge.as_deref(), s.ip.as_deref()), (Some("xenbr1"), Some("169.254.0.2")));
        assert_eq!((s.backendtype, s.trusted), (BackendType::Kernel, Some(false)));
        assert_eq!(s.unrecognized, vec!["foo=bar".to_string()]);
        assert_eq!(parse("").map(|s| s.backendtype.kind()), Ok("qnic"));
        assert_eq!(parse("type=vif,mtu=9000,devid=3").map(|s| (s.mtu, s.devid)), Ok((Some(9000), Some(3))));
        for bad in ["mac=00:16:3e", "type=ioemu", "mtu=x", "backendtype=qemu", "vifname=a/b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_macs_are_in_xen_s_range() {
        let m = random_mac();
        assert_eq!(&m.0[..3], &[0x00, 0x16, 0x3e]);
        assert_eq!(m.0[3] & 0x80, 0);
    }
}
