//! A disk's XenStore entries as libxl's `device_disk_add` writes them:
//! the backend directory (owned by dom0, readable by the guest), the
//! frontend directory (owned by the guest, readable by dom0), both at
//! state 1, and libxl's own `/libxl/<domid>/device/vbd/<devid>` record.
//! Semantics: X:`tools/libs/light/libxl_disk.c device_disk_add`,
//! `libxl_device.c libxl__device_generic_add`.

use super::diskspec::DiskSpec;
use super::loopdev::BlockDev;
use crate::xs_client::{Access, Perm, TxId, XsClient, XsError};

/// `/local/domain/<domid>/device/vbd/<devid>`.
pub fn frontend_dir(domid: u16, devid: u32) -> String {
    pv_drivers::xenbus::frontend_dir(domid, "vbd", devid)
}

/// What is written for one disk.
pub struct Disk<'a> {
    /// The guest.
    pub domid: u16,
    /// The devid (from the vdev).
    pub devid: u32,
    /// The backend kind: `vbd` (blkback) or `qdisk` (xenish-blkback).
    pub kind: &'static str,
    /// The specification.
    pub spec: &'a DiskSpec,
    /// The target path.
    pub target: &'a str,
    /// For `vbd`: the block device blkback opens.
    pub blockdev: Option<&'a BlockDev>,
}

impl Disk<'_> {
    /// The backend directory.
    pub fn backend_dir(&self) -> String {
        pv_drivers::xenbus::backend_dir(0, self.kind, self.domid, self.devid)
    }

    /// (key, value) pairs of the backend directory.
    fn backend_keys(&self) -> Vec<(&'static str, String)> {
        let s = self.spec;
        let mut k = vec![
            ("frontend", frontend_dir(self.domid, self.devid)),
            ("frontend-id", self.domid.to_string()),
            ("online", "1".into()),
            ("state", "1".into()),
            ("removable", u8::from(s.cdrom).to_string()),
            ("bootable", "1".into()),
            ("dev", s.vdev.clone().unwrap_or_default()),
            ("type", if self.kind == "vbd" { "phy" } else { "qdisk" }.into()),
            ("mode", if s.readwrite { "w" } else { "r" }.into()),
            ("device-type", if s.cdrom { "cdrom" } else { "disk" }.into()),
            ("discard-enable", u8::from(s.discard.unwrap_or(true)).to_string()),
            ("specification", "xen".into()),
        ];
        match self.blockdev {
            Some(dev) => {
                k.push(("params", self.target.to_string()));
                k.push(("script", "/etc/xen/scripts/block".into()));
                k.push(("physical-device", dev.physical_device()));
                k.push(("physical-device-path", dev.path.clone()));
            }
            None => k.push(("params", format!("raw:{}", self.target))),
        }
        if s.direct_io_safe {
            k.push(("direct-io-safe", "1".into()));
        }
        k
    }

    /// (key, value) pairs of the frontend directory.
    fn frontend_keys(&self) -> Vec<(&'static str, String)> {
        vec![
            ("backend", self.backend_dir()),
            ("backend-id", "0".into()),
            ("state", "1".into()),
            ("virtual-device", self.devid.to_string()),
            ("device-type", if self.spec.cdrom { "cdrom" } else { "disk" }.into()),
            ("trusted", u8::from(self.spec.trusted.unwrap_or(true)).to_string()),
        ]
    }
}

fn perm(domid: u16, access: Access) -> Perm {
    Perm { domid: domid.into(), access }
}

/// Writes both directories (inside transaction `tx`).
pub fn write(xs: &mut XsClient, tx: TxId, d: &Disk<'_>) -> Result<(), XsError> {
    let (front, back) = (frontend_dir(d.domid, d.devid), d.backend_dir());
    xs.write(tx, &back, b"")?;
    xs.set_perms(tx, &back, &[perm(0, Access::None), perm(d.domid, Access::Read)])?;
    for (k, v) in d.backend_keys() {
        xs.write(tx, &format!("{back}/{k}"), v.as_bytes())?;
    }
    xs.write(tx, &front, b"")?;
    xs.set_perms(tx, &front, &[perm(d.domid, Access::None), perm(0, Access::Read)])?;
    for (k, v) in d.frontend_keys() {
        xs.write(tx, &format!("{front}/{k}"), v.as_bytes())?;
    }
    let libxl = format!("/libxl/{}/device/vbd/{}", d.domid, d.devid);
    xs.write(tx, &format!("{libxl}/frontend"), front.as_bytes())?;
    xs.write(tx, &format!("{libxl}/backend"), back.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_libxl_s() {
        let spec = super::super::diskspec::parse("vdev=xvdb,access=ro,target=/srv/d.img").unwrap_or_default();
        let d = Disk { domid: 3, devid: 51728, kind: "qdisk", spec: &spec, target: "/srv/d.img", blockdev: None };
        assert_eq!(d.backend_dir(), "/local/domain/0/backend/qdisk/3/51728");
        let b = d.backend_keys();
        let get = |k: &str| b.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("params"), Some("raw:/srv/d.img"));
        assert_eq!((get("mode"), get("type"), get("dev")), (Some("r"), Some("qdisk"), Some("xvdb")));
        assert_eq!(get("frontend"), Some("/local/domain/3/device/vbd/51728"));
        let dev = BlockDev { path: "/dev/loop0".into(), major: 7, minor: 0, loop_created: true };
        let d = Disk { kind: "vbd", blockdev: Some(&dev), ..d };
        let b = d.backend_keys();
        let get = |k: &str| b.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            (get("physical-device"), get("params"), get("type")),
            (Some("7:0"), Some("/srv/d.img"), Some("phy"))
        );
        let f = d.frontend_keys();
        assert!(f.contains(&("virtual-device", "51728".into())) && f.contains(&("backend-id", "0".into())));
    }
}
