//! A domU's XenStore entries as libxl writes them, and their removal.
//!
//! In one transaction (retried on `EAGAIN`, as libxl does): the
//! `/local/domain/N` skeleton with its permissions (`ro` = `[n0, rN]`,
//! `rw` = `[nN]`), `/vm/<uuid>`, `/libxl/N`, the memory and store keys,
//! the vCPUs' availability, and console 0 (front `…/console`, back
//! `/local/domain/0/backend/console/N/0`).
//! Semantics: Xen 4.17 `tools/libs/light/libxl_create.c libxl__domain_make`,
//! `libxl_dom.c libxl__build_post`, `libxl_console.c
//! libxl__device_console_add`, `libxl_device.c libxl__device_generic_add`.

use guest_abi::XenError;

use crate::xs_client::{Access, Perm, TxId, XsClient, XsError};

/// How many times a conflicting transaction is retried.
const RETRIES: usize = 20;

/// What the tree says about the domain.
#[derive(Clone, Debug)]
pub struct DomainEntries<'a> {
    /// The domain ID.
    pub domid: u16,
    /// Its name.
    pub name: &'a str,
    /// Its UUID, as text.
    pub uuid: &'a str,
    /// `memory/static-max` in KiB.
    pub max_memkb: u64,
    /// `memory/target` in KiB.
    pub target_memkb: u64,
    /// vCPUs that start online.
    pub vcpus: u32,
    /// All vCPUs (`maxvcpus`).
    pub max_vcpus: u32,
    /// The xenstore page's MFN and port.
    pub store: (u64, u32),
    /// The console ring's MFN and port.
    pub console: (u64, u32),
    /// The console backend's domain.
    pub console_domid: u16,
    /// `image/kernel`, `image/ramdisk`, `image/cmdline` of `/vm/<uuid>`.
    pub image: (&'a str, &'a str, &'a str),
    /// `start_time` (seconds.hundredths since the epoch).
    pub start_time: String,
}

/// `/local/domain/N`.
pub fn dom_path(domid: u16) -> String {
    format!("/local/domain/{domid}")
}

fn perm(domid: u16, access: Access) -> Perm {
    Perm { domid: domid.into(), access }
}

/// One write: path, value, permissions (None: inherit).
type Entry = (String, String, Option<Vec<Perm>>);

fn entries(e: &DomainEntries) -> Vec<Entry> {
    let n = e.domid;
    let (dom, vm, libxl) = (dom_path(n), format!("/vm/{}", e.uuid), format!("/libxl/{n}"));
    let ro = Some(vec![perm(0, Access::None), perm(n, Access::Read)]);
    let rw = Some(vec![perm(n, Access::None)]);
    let none = Some(vec![perm(0, Access::None)]);
    let console_back = format!("/local/domain/{}/backend/console/{n}/0", e.console_domid);
    let console_front = format!("{dom}/console");
    let console_perms = Some(vec![perm(e.console_domid, Access::None), perm(n, Access::Read)]);
    let mut out: Vec<Entry> = vec![
        (dom.clone(), String::new(), ro.clone()),
        (vm.clone(), String::new(), ro.clone()),
        (libxl.clone(), String::new(), none.clone()),
        (format!("{libxl}/device"), String::new(), none),
        (format!("{dom}/vm"), vm.clone(), None),
        (format!("{dom}/name"), e.name.into(), None),
        (format!("{dom}/domid"), n.to_string(), None),
    ];
    for d in ["cpu", "memory", "device", "control"] {
        out.push((format!("{dom}/{d}"), String::new(), ro.clone()));
    }
    for c in ["shutdown", "feature-poweroff", "feature-reboot", "feature-suspend", "sysrq"] {
        out.push((format!("{dom}/control/{c}"), String::new(), rw.clone()));
    }
    out.push((format!("{dom}/device/suspend/event-channel"), String::new(), rw.clone()));
    for d in ["data", "drivers", "feature", "attr", "error"] {
        out.push((format!("{dom}/{d}"), String::new(), rw.clone()));
    }
    for f in ["platform-feature-multiprocessor-suspend", "platform-feature-xs_reset_watches"] {
        out.push((format!("{dom}/control/{f}"), "1".into(), None));
    }
    let mut more: Vec<Entry> = vec![
        (format!("{vm}/uuid"), e.uuid.into(), None),
        (format!("{vm}/name"), e.name.into(), None),
        (format!("{vm}/image/ostype"), "linux".into(), None),
        (format!("{vm}/image/kernel"), e.image.0.into(), None),
        (format!("{vm}/image/ramdisk"), e.image.1.into(), None),
        (format!("{vm}/image/cmdline"), e.image.2.into(), None),
        (format!("{vm}/start_time"), e.start_time.clone(), None),
        (format!("{libxl}/type"), "pv".into(), None),
        (format!("{libxl}/dm-version"), "qemu_xen".into(), None),
        (format!("{dom}/memory/static-max"), e.max_memkb.to_string(), None),
        (format!("{dom}/memory/target"), e.target_memkb.to_string(), None),
        (format!("{dom}/memory/videoram"), "0".into(), None),
        (format!("{dom}/store/port"), e.store.1.to_string(), None),
        (format!("{dom}/store/ring-ref"), e.store.0.to_string(), None),
        // Console 0: backend, then frontend.
        (console_back.clone(), String::new(), console_perms.clone()),
        (format!("{console_back}/frontend"), console_front.clone(), None),
        (format!("{console_back}/frontend-id"), n.to_string(), None),
        (format!("{console_back}/online"), "1".into(), None),
        (format!("{console_back}/state"), "1".into(), None),
        (format!("{console_back}/protocol"), "vt100".into(), None),
        (console_front.clone(), String::new(), console_perms),
        (format!("{console_front}/backend"), console_back.clone(), None),
        (format!("{console_front}/backend-id"), e.console_domid.to_string(), None),
        (format!("{console_front}/limit"), "1048576".into(), None),
        (format!("{console_front}/type"), "xenconsoled".into(), None),
        (format!("{console_front}/output"), "pty".into(), None),
        (format!("{console_front}/tty"), String::new(), None),
        (format!("{console_front}/port"), e.console.1.to_string(), None),
        (format!("{console_front}/ring-ref"), e.console.0.to_string(), None),
        (format!("{libxl}/device/console/0/frontend"), console_front, None),
        (format!("{libxl}/device/console/0/backend"), console_back, None),
    ];
    out.append(&mut more);
    for i in 0..e.max_vcpus {
        let state = if i < e.vcpus { "online" } else { "offline" };
        out.push((format!("{dom}/cpu/{i}/availability"), state.into(), None));
    }
    out
}

/// Runs `f` in a transaction, retrying while the commit conflicts.
pub fn transaction(
    xs: &mut XsClient,
    mut f: impl FnMut(&mut XsClient, TxId) -> Result<(), XsError>,
) -> Result<(), XsError> {
    let mut last = None;
    for _ in 0..RETRIES {
        let tx = xs.transaction_start()?;
        if let Err(e) = f(xs, tx) {
            let _ = xs.transaction_abort(tx);
            return Err(e);
        }
        match xs.transaction_commit(tx) {
            Err(e) if e.is(XenError::Eagain) => last = Some(e),
            r => return r,
        }
    }
    Err(last.unwrap_or(XsError::Protocol("transaction retries exhausted".into())))
}

/// Writes the domain's entries (one transaction).
pub fn write(xs: &mut XsClient, e: &DomainEntries) -> Result<(), XsError> {
    let list = entries(e);
    transaction(xs, |xs, tx| {
        for (path, value, perms) in &list {
            xs.write(tx, path, value.as_bytes())?;
            if let Some(p) = perms {
                xs.set_perms(tx, path, p)?;
            }
        }
        Ok(())
    })
}

/// Whether another domain already has `name` (`/local/domain/*/name`).
pub fn name_in_use(xs: &mut XsClient, name: &str) -> Result<Option<u16>, XsError> {
    let ids = match xs.directory(TxId::NONE, "/local/domain") {
        Ok(ids) => ids,
        Err(e) if e.is(XenError::Enoent) => return Ok(None),
        Err(e) => return Err(e),
    };
    for id in ids.iter().filter_map(|i| i.parse::<u16>().ok()) {
        if xs.read(TxId::NONE, &format!("{}/name", dom_path(id))).ok().as_deref() == Some(name.as_bytes()) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Removes everything the domain has in the store (libxl's destroy):
/// `/vm/<uuid>` (read from its `vm` key), `/local/domain/N`, `/libxl/N`,
/// and its backends' directories in dom0.
pub fn remove(xs: &mut XsClient, domid: u16) -> Result<(), XsError> {
    let dom = dom_path(domid);
    let vm = xs.read(TxId::NONE, &format!("{dom}/vm")).ok().and_then(|v| String::from_utf8(v).ok());
    transaction(xs, |xs, tx| {
        let mut paths = vec![dom.clone(), format!("/libxl/{domid}")];
        paths.extend(vm.iter().filter(|v| v.starts_with("/vm/")).cloned());
        if let Ok(kinds) = xs.directory(tx, "/local/domain/0/backend") {
            paths.extend(kinds.iter().map(|k| format!("/local/domain/0/backend/{k}/{domid}")));
        }
        for p in &paths {
            match xs.rm(tx, p) {
                Err(e) if !e.is(XenError::Enoent) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DomainEntries<'static> {
        DomainEntries {
            domid: 3,
            name: "d1",
            uuid: "00000000-0000-4000-8000-000000000001",
            max_memkb: 65536,
            target_memkb: 65536,
            vcpus: 1,
            max_vcpus: 2,
            store: (0x1234, 1),
            console: (0x1235, 2),
            console_domid: 0,
            image: ("/k", "", "console=hvc0"),
            start_time: "1.00".into(),
        }
    }

    fn find<'a>(list: &'a [Entry], path: &str) -> &'a Entry {
        list.iter().find(|(p, _, _)| p == path).unwrap_or_else(|| panic!("{path} missing"))
    }

    #[test]
    fn the_tree_has_libxl_s_keys_and_permissions() {
        let list = entries(&sample());
        let ro = Some(vec![perm(0, Access::None), perm(3, Access::Read)]);
        let rw = Some(vec![perm(3, Access::None)]);
        assert_eq!(find(&list, "/local/domain/3").2, ro);
        assert_eq!(find(&list, "/local/domain/3/control/shutdown").2, rw);
        assert_eq!(find(&list, "/local/domain/3/data").2, rw);
        assert_eq!(find(&list, "/libxl/3").2, Some(vec![perm(0, Access::None)]));
        assert_eq!(find(&list, "/local/domain/3/vm").1, "/vm/00000000-0000-4000-8000-000000000001");
        assert_eq!(find(&list, "/local/domain/3/store/ring-ref").1, "4660");
        assert_eq!(find(&list, "/local/domain/3/console/ring-ref").1, "4661");
        assert_eq!(find(&list, "/local/domain/3/console/type").1, "xenconsoled");
        assert_eq!(find(&list, "/local/domain/0/backend/console/3/0/frontend-id").1, "3");
        assert_eq!(find(&list, "/local/domain/3/cpu/1/availability").1, "offline");
        assert_eq!(find(&list, "/local/domain/3/memory/static-max").1, "65536");
        // Parents come before their children that carry their own perms.
        let pos = |p: &str| list.iter().position(|(q, _, _)| q == p).unwrap();
        assert!(pos("/local/domain/3") < pos("/local/domain/3/control"));
        assert!(pos("/local/domain/3/control") < pos("/local/domain/3/control/shutdown"));
    }
}
