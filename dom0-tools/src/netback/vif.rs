//! [`Vif`]: one virtual network interface the daemon serves — the
//! engine's [`NetbackDevice`] state machine, the TAP device that stands
//! for the guest in dom0, and each queue's [`Worker`].
//!
//! A vif is taken on when its backend directory is complete and at
//! state 1 with `online=1` (QEMU's rule for its backends). Its TAP is
//! named `vifname` if the toolstack gave one, else `vif<domid>.<devid>`
//! as Xen names netback's, joins `bridge` (default `xenbr0`) and comes
//! up; then `hotplug-status=connected` is written, as `vif-bridge` does.
//! A failure is reported the way hotplug scripts report theirs
//! (`hotplug-error`, then `hotplug-status=error`), which xl prints.

use std::sync::Arc;

use pv_drivers::netif::back::{BackendAction, ConnectInfo, NetbackConfig, NetbackDevice, ToolstackKeys};
use pv_drivers::netif::keys::HOTPLUG_STATUS;
use pv_drivers::store::{read_state, read_u32, Store};
use pv_drivers::xenbus::XenbusState;
use xendev::{Evtchn, Gntdev};

use super::grants::GntdevCopy;
use super::log;
use super::store::XsStore;
use super::tap::{Tap, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
use super::worker::{Worker, WorkerSetup};
use dom0_tools::xs_client::XsClient;

/// The bridge a vif joins when the toolstack names none (libxl's
/// default).
pub const DEFAULT_BRIDGE: &str = "xenbr0";

/// What the daemon offers every vif.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `multi-queue-max-queues`.
    pub max_queues: u32,
}

/// One vif.
pub struct Vif {
    dev: NetbackDevice,
    tap: Tap,
    workers: Vec<Worker>,
}

impl Vif {
    /// Takes on the vif at `dir` if it is new (state 1, online); if its
    /// TAP cannot be made, reports it and returns the error.
    pub fn open(xs: &mut XsClient, home: &str, dir: &str, limits: Limits) -> Result<Option<Vif>, String> {
        let mut store = XsStore(xs);
        let err = |e: pv_drivers::store::StoreError| e.to_string();
        let Some(keys) = ToolstackKeys::read(&mut store, dir).map_err(err)? else { return Ok(None) };
        let fresh = read_state(&mut store, dir).map_err(err)? == Some(XenbusState::Initialising)
            && read_u32(&mut store, &format!("{dir}/online")).map_err(err)? == Some(1);
        if !fresh {
            return Ok(None);
        }
        let name = keys.vifname.clone().unwrap_or_else(|| format!("vif{}.{}", keys.frontend_id, keys.handle));
        let bridge = keys.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        let made = Tap::create(&name).and_then(|tap| {
            tap.bridge_up(&bridge)?;
            Ok(tap)
        });
        let tap = match made {
            Ok(t) => t,
            Err(e) => {
                let why = format!("{name}: {e}");
                let _ = store.write(&format!("{dir}/hotplug-error"), &why);
                let _ = store.write(&format!("{dir}/{HOTPLUG_STATUS}"), "error");
                return Err(why);
            }
        };
        let _ = store.write(&format!("{dir}/{HOTPLUG_STATUS}"), "connected");
        log(&format!(
            "{name}: on bridge {bridge}, frontend {} (mac {}{})",
            keys.frontend,
            keys.mac.map_or_else(|| "unset".to_string(), |m| m.to_string()),
            keys.ip.as_deref().map_or_else(String::new, |ip| format!(", ip {ip}")),
        ));
        let dev =
            NetbackDevice::new(home, dir, &keys.frontend, keys.frontend_id, NetbackConfig::full(limits.max_queues));
        Ok(Some(Vif { dev, tap, workers: Vec::new() }))
    }

    /// The frontend's directory (to watch its state).
    pub fn frontend_dir(&self) -> &str {
        self.dev.frontend_dir()
    }

    /// Steps the state machine until it has nothing to do; false once
    /// the vif is gone (everything released).
    pub fn step(&mut self, xs: &mut XsClient, gntdev: &Arc<Gntdev>) -> bool {
        for _ in 0..8 {
            let action = match self.dev.step(&mut XsStore(xs)) {
                Ok(a) => a,
                Err(e) => {
                    log(&format!("{}: xenstore: {e}", self.tap.name()));
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
                    log(&format!("{}: removed", self.tap.name()));
                    return false;
                }
            }
        }
        true
    }

    /// Closes the vif if a queue found a ring broken.
    pub fn check(&mut self, xs: &mut XsClient) {
        if self.workers.iter().any(Worker::is_broken) {
            self.teardown();
            let _ = self.dev.fail(&mut XsStore(xs), "frontend broke the ring protocol");
        }
    }

    /// Maps every queue's rings, binds its channels, starts its worker;
    /// Connected, or fails the vif with everything released.
    fn connect(&mut self, xs: &mut XsClient, gntdev: &Arc<Gntdev>, info: &ConnectInfo) {
        let name = self.tap.name().to_string();
        let f = info.features;
        let offload = if f.ipv4_csum || f.ipv6_csum { TUN_F_CSUM } else { 0 }
            | if f.gso_tcpv4 { TUN_F_TSO4 } else { 0 }
            | if f.gso_tcpv6 { TUN_F_TSO6 } else { 0 };
        let prepared = self.tap.ensure_queues(info.queues.len()).and_then(|()| self.tap.set_offload(offload));
        if let Err(e) = prepared {
            log(&format!("{name}: {e}"));
            let _ = self.dev.fail(&mut XsStore(xs), &format!("preparing {name}: {e}"));
            return;
        }
        for (i, q) in info.queues.iter().enumerate() {
            let setup = (|| -> std::io::Result<WorkerSetup> {
                let tx_ring = gntdev.map_grant(info.frontend_id, q.tx_ring_ref, true)?;
                let rx_ring = gntdev.map_grant(info.frontend_id, q.rx_ring_ref, true)?;
                let evtchn = Evtchn::open()?;
                let tx_port = evtchn.bind_interdomain(info.frontend_id, q.tx_port)?;
                let rx_port = if q.split() { evtchn.bind_interdomain(info.frontend_id, q.rx_port)? } else { tx_port };
                Ok(WorkerSetup {
                    name: format!("{name}/q{i}"),
                    tx_ring,
                    rx_ring,
                    evtchn,
                    tx_port,
                    rx_port,
                    frontend: info.frontend_id,
                    features: info.features,
                    rx_notify: info.rx_notify,
                    tap: self.tap.queue(i)?,
                    copier: GntdevCopy::new(gntdev.clone()),
                })
            })()
            .and_then(Worker::spawn);
            match setup {
                Ok(w) => self.workers.push(w),
                Err(e) => {
                    log(&format!("{name}: connecting queue {i}: {e}"));
                    self.teardown();
                    let _ = self
                        .dev
                        .fail(&mut XsStore(xs), &format!("mapping tx-ring-ref/rx-ring-ref / binding ports: {e}"));
                    return;
                }
            }
        }
        log(&format!(
            "{name}: connected, {} queue(s), {} event channels, offloads: sg {} gso-tcpv4 {} gso-tcpv6 {} csum ipv4 {} ipv6 {}",
            info.queues.len(),
            if info.queues.iter().any(|q| q.split()) { "split" } else { "shared" },
            u8::from(f.sg),
            u8::from(f.gso_tcpv4),
            u8::from(f.gso_tcpv6),
            u8::from(f.ipv4_csum),
            u8::from(f.ipv6_csum),
        ));
        if let Err(e) = self.dev.connected(&mut XsStore(xs)) {
            log(&format!("{name}: xenstore: {e}"));
        }
    }

    /// Stops every worker (each releases its rings and ports).
    pub fn teardown(&mut self) {
        for (i, w) in self.workers.drain(..).enumerate() {
            let s = w.stop();
            let q = s.queue;
            let d = q.tx_drops;
            log(&format!(
                "{}/q{i}: disconnected: tx {} packets {} bytes, rx {} packets {} bytes; dropped from the frontend: {} \
                 (cross-page {}, too-many-slots {}, size-mismatch {}, runt {}, bad-extra {}, bad-gso {}, bad-grant {}, \
                 bad-headers {}); to the frontend: {} dropped, {} copy errors; TAP refused {}",
                self.tap.name(),
                q.tx_packets,
                q.tx_bytes,
                q.rx_packets,
                q.rx_bytes,
                d.total(),
                d.cross_page,
                d.too_many_slots,
                d.size_mismatch,
                d.runt,
                d.bad_extra,
                d.bad_gso,
                d.bad_grant,
                d.bad_headers,
                q.rx_dropped,
                q.rx_copy_errors,
                s.tap_refused,
            ));
        }
    }
}
