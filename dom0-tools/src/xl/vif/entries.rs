//! A vif's XenStore entries as libxl's `libxl__set_xenstore_nic` writes
//! them: the backend directory (owned by dom0, readable by the guest),
//! the frontend directory (owned by the guest, readable by dom0), both
//! at state 1, and libxl's own `/libxl/<domid>/device/vif/<devid>`
//! record. For Linux's netback, `script` must be there (it refuses to
//! probe without one) and `hotplug-status` empty, which holds it at
//! InitWait until the toolstack has bridged `vif<domid>.<devid>`.
//! Semantics: X:`tools/libs/light/libxl_nic.c libxl__set_xenstore_nic`,
//! `libxl_device.c libxl__device_generic_add`.

use pv_drivers::netif::keys::Mac;

use super::vifspec::{BackendType, VifSpec};
use crate::xs_client::{Access, Perm, TxId, XsClient, XsError};

/// The default bridge (libxl's).
pub const DEFAULT_BRIDGE: &str = "xenbr0";
/// The default hotplug script (libxl's; recorded, never run).
pub const DEFAULT_SCRIPT: &str = "vif-bridge";

/// `/local/domain/<domid>/device/vif/<devid>`.
pub fn frontend_dir(domid: u16, devid: u32) -> String {
    pv_drivers::xenbus::frontend_dir(domid, "vif", devid)
}

/// What is written for one vif.
pub struct Nic<'a> {
    /// The guest.
    pub domid: u16,
    /// The devid (the vif's index).
    pub devid: u32,
    /// The specification.
    pub spec: &'a VifSpec,
    /// The MAC (given or made up).
    pub mac: Mac,
}

impl Nic<'_> {
    /// The backend directory.
    pub fn backend_dir(&self) -> String {
        pv_drivers::xenbus::backend_dir(0, self.spec.backendtype.kind(), self.domid, self.devid)
    }

    /// The bridge it joins.
    pub fn bridge(&self) -> &str {
        self.spec.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE)
    }

    /// (key, value) pairs of the backend directory.
    fn backend_keys(&self) -> Vec<(&'static str, String)> {
        let s = self.spec;
        let mut k = vec![
            ("frontend", frontend_dir(self.domid, self.devid)),
            ("frontend-id", self.domid.to_string()),
            ("online", "1".into()),
            ("state", "1".into()),
            ("script", s.script.clone().unwrap_or_else(|| DEFAULT_SCRIPT.into())),
            ("mac", self.mac.to_string()),
            ("bridge", self.bridge().to_string()),
            ("handle", self.devid.to_string()),
            ("type", "vif".into()),
        ];
        if s.backendtype == BackendType::Kernel {
            k.push(("hotplug-status", String::new()));
        }
        for (key, v) in [("ip", &s.ip), ("vifname", &s.vifname), ("rate", &s.rate)] {
            if let Some(v) = v {
                k.push((key, v.clone()));
            }
        }
        if let Some(mtu) = s.mtu {
            k.push(("mtu", mtu.to_string()));
        }
        k
    }

    /// (key, value) pairs of the frontend directory.
    fn frontend_keys(&self) -> Vec<(&'static str, String)> {
        vec![
            ("backend", self.backend_dir()),
            ("backend-id", "0".into()),
            ("state", "1".into()),
            ("handle", self.devid.to_string()),
            ("mac", self.mac.to_string()),
            ("trusted", u8::from(self.spec.trusted.unwrap_or(true)).to_string()),
        ]
    }
}

fn perm(domid: u16, access: Access) -> Perm {
    Perm { domid: domid.into(), access }
}

/// Writes both directories (inside transaction `tx`).
pub fn write(xs: &mut XsClient, tx: TxId, n: &Nic<'_>) -> Result<(), XsError> {
    let (front, back) = (frontend_dir(n.domid, n.devid), n.backend_dir());
    xs.write(tx, &back, b"")?;
    xs.set_perms(tx, &back, &[perm(0, Access::None), perm(n.domid, Access::Read)])?;
    for (k, v) in n.backend_keys() {
        xs.write(tx, &format!("{back}/{k}"), v.as_bytes())?;
    }
    xs.write(tx, &front, b"")?;
    xs.set_perms(tx, &front, &[perm(n.domid, Access::None), perm(0, Access::Read)])?;
    for (k, v) in n.frontend_keys() {
        xs.write(tx, &format!("{front}/{k}"), v.as_bytes())?;
    }
    if let Some(mtu) = n.spec.mtu {
        // Read-only for the guest: owned by the backend.
        let path = format!("{front}/mtu");
        xs.write(tx, &path, mtu.to_string().as_bytes())?;
        xs.set_perms(tx, &path, &[perm(0, Access::None), perm(n.domid, Access::Read)])?;
    }
    let libxl = format!("/libxl/{}/device/vif/{}", n.domid, n.devid);
    xs.write(tx, &format!("{libxl}/frontend"), front.as_bytes())?;
    xs.write(tx, &format!("{libxl}/backend"), back.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_libxl_s() {
        let spec = super::super::vifspec::parse("bridge=br1,ip=169.254.0.9").unwrap_or_default();
        let mac = Mac([0, 0x16, 0x3e, 1, 2, 3]);
        let n = Nic { domid: 3, devid: 1, spec: &spec, mac };
        assert_eq!(n.backend_dir(), "/local/domain/0/backend/qnic/3/1");
        let b = n.backend_keys();
        let get = |k: &str| b.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!((get("mac"), get("bridge"), get("handle")), (Some("00:16:3e:01:02:03"), Some("br1"), Some("1")));
        assert_eq!((get("script"), get("ip"), get("hotplug-status")), (Some("vif-bridge"), Some("169.254.0.9"), None));
        let spec = super::super::vifspec::parse("backendtype=kernel").unwrap_or_default();
        let n = Nic { domid: 3, devid: 0, spec: &spec, mac };
        assert_eq!(n.backend_dir(), "/local/domain/0/backend/vif/3/0");
        assert!(n.backend_keys().contains(&("hotplug-status", String::new())));
        let f = n.frontend_keys();
        assert!(f.contains(&("mac", "00:16:3e:01:02:03".into())) && f.contains(&("handle", "0".into())));
    }
}
