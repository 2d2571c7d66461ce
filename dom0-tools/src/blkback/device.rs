//! [`Vbd`]: one virtual block device the daemon serves — the engine's
//! [`BlkbackDevice`] state machine plus what it asks for: the disk, each
//! queue's ring mapping, event channel and [`Worker`].
//!
//! A device is taken on when its backend directory is complete and at
//! state 1 with `online=1` (QEMU's rule for its backends). Its `params`
//! (libxl's `<format>:<path>` for qdisk, or a bare path) must name a raw
//! image file or a block device; a failure to open it is reported the
//! way hotplug scripts report theirs (`hotplug-error`, then
//! `hotplug-status=error`), which xl prints.

use std::sync::Arc;

use pv_drivers::blkif::back::{
    BackendAction, BackendConfig, BlkbackDevice, ConnectInfo, Disk, QueueConfig, ToolstackKeys,
};
use pv_drivers::store::{read_state, read_u32, Store};
use pv_drivers::xenbus::XenbusState;
use xendev::{Evtchn, Gntdev};

use super::disk::FileDisk;
use super::grants::GntdevGrants;
use super::log;
use super::store::XsStore;
use super::worker::{Worker, WorkerSetup};
use dom0_tools::xs_client::XsClient;

/// What the daemon offers every device.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `multi-queue-max-queues`.
    pub max_queues: u32,
}

/// The image a `params` value names: libxl's `raw:/path` (or `aio:`,
/// `file:`), or a bare path. Other formats are refused.
pub fn image_path(params: &str) -> Result<&str, String> {
    let path = match params.split_once(':') {
        Some(("raw" | "aio" | "file" | "phy", path)) => path,
        Some((format, _)) if !format.contains('/') => {
            return Err(format!("format {format} is not supported (only raw)"));
        }
        _ => params,
    };
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(format!("{params:?} is not an absolute path"))
    }
}

/// One vbd.
pub struct Vbd {
    dev: BlkbackDevice,
    disk: Arc<FileDisk>,
    workers: Vec<Worker>,
    name: String,
}

impl Vbd {
    /// Takes on the device at `dir` if it is new (state 1, online); on a
    /// disk that cannot be opened, reports it and returns the error.
    pub fn open(xs: &mut XsClient, home: &str, dir: &str, limits: Limits) -> Result<Option<Vbd>, String> {
        let mut store = XsStore(xs);
        let err = |e: pv_drivers::store::StoreError| e.to_string();
        let Some(keys) = ToolstackKeys::read(&mut store, dir).map_err(err)? else { return Ok(None) };
        let fresh = read_state(&mut store, dir).map_err(err)? == Some(XenbusState::Initialising)
            && read_u32(&mut store, &format!("{dir}/online")).map_err(err)? == Some(1);
        if !fresh {
            return Ok(None);
        }
        let name = format!("{}/{}", keys.frontend_id, dir.rsplit('/').next().unwrap_or("?"));
        let opened = image_path(&keys.params)
            .and_then(|p| FileDisk::open(p, !keys.writable).map_err(|e| format!("cannot open {p}: {e}")));
        let disk = match opened {
            Ok(d) => d,
            Err(why) => {
                let _ = store.write(&format!("{dir}/hotplug-error"), &why);
                let _ = store.write(&format!("{dir}/hotplug-status"), "error");
                return Err(format!("{name}: {why}"));
            }
        };
        let mut config = BackendConfig::full(disk.sectors(), limits.max_queues);
        config.read_only = !keys.writable;
        config.cdrom = keys.cdrom;
        config.discard = keys.discard_enable && keys.writable && !disk.is_block_device();
        let _ = store.write(&format!("{dir}/hotplug-status"), "connected");
        log(&format!(
            "{name}: serving {} ({} sectors{}), frontend {}",
            keys.params,
            config.sectors,
            if config.read_only { ", read-only" } else { "" },
            keys.frontend
        ));
        let dev = BlkbackDevice::new(home, dir, &keys.frontend, keys.frontend_id, config);
        Ok(Some(Vbd { dev, disk: Arc::new(disk), workers: Vec::new(), name }))
    }

    /// The frontend's directory (to watch its state).
    pub fn frontend_dir(&self) -> &str {
        self.dev.frontend_dir()
    }

    /// Steps the state machine until it has nothing to do; false once
    /// the device is gone (everything released).
    pub fn step(&mut self, xs: &mut XsClient, gntdev: &Arc<Gntdev>) -> bool {
        for _ in 0..8 {
            let action = match self.dev.step(&mut XsStore(xs)) {
                Ok(a) => a,
                Err(e) => {
                    log(&format!("{}: xenstore: {e}", self.name));
                    return true;
                }
            };
            match action {
                BackendAction::Idle => return true,
                BackendAction::Connect(info) => self.connect(xs, gntdev, &info),
                BackendAction::Disconnect => {
                    self.teardown();
                    self.dev.disconnected();
                }
                BackendAction::Remove => {
                    self.teardown();
                    log(&format!("{}: removed", self.name));
                    return false;
                }
            }
        }
        true
    }

    /// Closes the device if a queue found its ring broken.
    pub fn check(&mut self, xs: &mut XsClient) {
        if self.workers.iter().any(Worker::is_broken) {
            self.teardown();
            let _ = self.dev.fail(&mut XsStore(xs), "frontend broke the ring protocol");
        }
    }

    /// Maps every ring, binds every channel, starts the workers; Connected,
    /// or fails the device with everything released.
    fn connect(&mut self, xs: &mut XsClient, gntdev: &Arc<Gntdev>, info: &ConnectInfo) {
        let cfg = QueueConfig {
            frontend: info.frontend_id,
            offer: self.dev.config().offer(),
            read_only: self.dev.config().read_only,
            persistent: info.persistent,
        };
        for (i, q) in info.queues.iter().enumerate() {
            let setup = (|| -> std::io::Result<WorkerSetup> {
                let ring = gntdev.map_grants(info.frontend_id, &q.refs, true)?;
                let evtchn = Evtchn::open()?;
                let port = evtchn.bind_interdomain(info.frontend_id, q.event_channel)?;
                Ok(WorkerSetup {
                    name: format!("{}/q{i}", self.name),
                    ring,
                    nr_pages: q.refs.len(),
                    evtchn,
                    port,
                    cfg,
                    grants: GntdevGrants::new(gntdev.clone()),
                    disk: self.disk.clone(),
                })
            })()
            .and_then(Worker::spawn);
            match setup {
                Ok(w) => self.workers.push(w),
                Err(e) => {
                    log(&format!("{}: connecting queue {i}: {e}", self.name));
                    self.teardown();
                    let _ = self.dev.fail(&mut XsStore(xs), &format!("mapping ring-ref / port: {e}"));
                    return;
                }
            }
        }
        log(&format!(
            "{}: connected, {} queue(s) of {} page(s), persistent grants {}",
            self.name,
            info.queues.len(),
            1u32 << info.ring_order,
            if info.persistent { "on" } else { "off" }
        ));
        if let Err(e) = self.dev.connected(&mut XsStore(xs)) {
            log(&format!("{}: xenstore: {e}", self.name));
        }
    }

    /// Stops every worker (each releases its ring, grants and port).
    pub fn teardown(&mut self) {
        for (i, w) in self.workers.drain(..).enumerate() {
            let s = w.stop();
            log(&format!(
                "{}/q{i}: disconnected: {} ok, {} errors, {} not supported, {} KiB read, {} KiB written, {} persistent grants",
                self.name,
                s.okay,
                s.errors,
                s.not_supported,
                s.bytes_read / 1024,
                s.bytes_written / 1024,
                s.persistent_maps
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_name_a_raw_image() {
        assert_eq!(image_path("raw:/srv/d.img"), Ok("/srv/d.img"));
        assert_eq!(image_path("aio:/srv/d.img"), Ok("/srv/d.img"));
        assert_eq!(image_path("/dev/vda"), Ok("/dev/vda"));
        assert_eq!(image_path("/srv/a:b.img"), Ok("/srv/a:b.img"));
        assert!(image_path("qcow2:/srv/d.qcow2").is_err());
        assert!(image_path("raw:relative").is_err());
        assert!(image_path("").is_err());
    }
}
