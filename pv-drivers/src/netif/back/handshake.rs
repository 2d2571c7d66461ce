//! [`NetbackDevice`]: a vif backend's side of the xenbus handshake.
//!
//! [`NetbackDevice::step`] reads both states and does what they call
//! for, returning what the owner must do with rings and channels:
//!
//! | backend | frontend | the device |
//! |---|---|---|
//! | 1 | any | writes the offer (`feature-rx-copy`, SG, GSO, checksum offload, split event channels, queues) and goes to 2 |
//! | 2–4, not connected | 3 or 4 | reads the rings: [`BackendAction::Connect`]; the owner maps them and calls [`NetbackDevice::connected`] (→ 4) or [`NetbackDevice::fail`] (→ 5) |
//! | connected | 5 | [`BackendAction::Disconnect`], then → 5 |
//! | any | 6 | disconnects, → 6; with `online=0`, [`BackendAction::Remove`] |
//! | 6 | 1 | → 2 again (the frontend reconnects) |
//! | gone | — | [`BackendAction::Remove`] (the toolstack removed it) |
//! | any | gone, after being seen | [`BackendAction::Remove`] (the frontend domain went away) |
//!
//! Linux's netfront goes from 1 straight to 4 (it skips Initialised)
//! once the backend is at 2; both count as ready. A disconnect always
//! happens before the state that announces it is written. Everything the
//! frontend wrote is checked ([`read_connect_info`]); a bad value is
//! fatal for the device as in Linux's `xenbus_dev_fatal`: an `error`
//! node and state 5. Semantics: L:`drivers/net/xen-netback/xenbus.c
//! frontend_changed`, `connect`, `connect_data_rings`,
//! `read_xenbus_vif_flags`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::netif::keys::{self, queue_dir, Features, Mac};
use crate::store::{error_path, parse_u32, read_state, read_u32, Store, StoreError};
use crate::xenbus::{XenbusState, KEY_FRONTEND, KEY_FRONTEND_ID, KEY_ONLINE};

/// What the backend offers for one vif.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetbackConfig {
    /// Offloads offered.
    pub features: Features,
    /// `feature-split-event-channels`.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues`.
    pub max_queues: u32,
}

impl NetbackConfig {
    /// Everything netif defines, with up to `max_queues` queues.
    pub fn full(max_queues: u32) -> Self {
        NetbackConfig { features: Features::ALL, split_event_channels: true, max_queues: max_queues.max(1) }
    }

    /// The keys written before InitWait.
    fn entries(&self) -> Vec<(&'static str, String)> {
        let mut e = alloc::vec![(keys::FEATURE_RX_COPY, "1".to_string()), (keys::FEATURE_RX_FLIP, "0".to_string())];
        e.extend(self.features.backend_entries());
        e.push((keys::FEATURE_SPLIT_EVENT_CHANNELS, u32::from(self.split_event_channels).to_string()));
        e.push((keys::MULTI_QUEUE_MAX_QUEUES, self.max_queues.max(1).to_string()));
        e
    }
}

/// The toolstack's keys in a vif backend directory (libxl's
/// `libxl__set_xenstore_nic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolstackKeys {
    /// `frontend`: the frontend directory.
    pub frontend: String,
    /// `frontend-id`.
    pub frontend_id: u16,
    /// `handle`: the vif's devid.
    pub handle: u32,
    /// `mac`: the guest's address.
    pub mac: Option<Mac>,
    /// `bridge`, if any.
    pub bridge: Option<String>,
    /// `vifname`, if any.
    pub vifname: Option<String>,
    /// `ip`, if any (informational).
    pub ip: Option<String>,
}

impl ToolstackKeys {
    /// Reads them from `dir`; `None` if the directory is not (or no
    /// longer, or not yet) a complete vif backend.
    pub fn read(store: &mut impl Store, dir: &str) -> Result<Option<ToolstackKeys>, StoreError> {
        let Some(frontend) = store.read(&format!("{dir}/{KEY_FRONTEND}"))? else { return Ok(None) };
        let Some(frontend_id) = read_u32(store, &format!("{dir}/{KEY_FRONTEND_ID}"))? else { return Ok(None) };
        let Ok(frontend_id) = u16::try_from(frontend_id) else { return Ok(None) };
        let Some(handle) = read_u32(store, &format!("{dir}/{}", keys::HANDLE))? else { return Ok(None) };
        let mac = store.read(&format!("{dir}/{}", keys::MAC))?.and_then(|m| Mac::parse(&m));
        let bridge = text(store, dir, keys::BRIDGE)?;
        let vifname = text(store, dir, keys::VIFNAME)?;
        let ip = text(store, dir, keys::IP)?;
        Ok(Some(ToolstackKeys { frontend, frontend_id, handle, mac, bridge, vifname, ip }))
    }
}

/// `dir/key` trimmed, `None` if missing or empty.
fn text(store: &mut impl Store, dir: &str, key: &str) -> Result<Option<String>, StoreError> {
    Ok(store.read(&format!("{dir}/{key}"))?.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
}

/// One queue's rings and channels, as the frontend published them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueRings {
    /// `tx-ring-ref`.
    pub tx_ring_ref: u32,
    /// `rx-ring-ref`.
    pub rx_ring_ref: u32,
    /// The frontend's port for TX (`event-channel-tx`, or the one
    /// `event-channel`).
    pub tx_port: u32,
    /// The frontend's port for RX (equal to `tx_port` without split
    /// channels).
    pub rx_port: u32,
}

impl QueueRings {
    /// Whether the queue uses two ports.
    pub fn split(&self) -> bool {
        self.tx_port != self.rx_port
    }
}

/// What the frontend published: everything needed to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The frontend domain.
    pub frontend_id: u16,
    /// The offloads both ends share.
    pub features: Features,
    /// `feature-rx-notify`: the frontend notifies when it posts buffers
    /// (otherwise the backend must poll while it waits for them).
    pub rx_notify: bool,
    /// One entry per queue.
    pub queues: Vec<QueueRings>,
}

/// What the owner of the device must do after [`NetbackDevice::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendAction {
    /// Nothing until the next change.
    Idle,
    /// Map these rings and bind these channels, then call
    /// [`NetbackDevice::connected`] or [`NetbackDevice::fail`].
    Connect(ConnectInfo),
    /// Unmap every ring and unbind the channels, then call
    /// [`NetbackDevice::disconnected`] and `step` again.
    Disconnect,
    /// Tear everything down and forget the device.
    Remove,
}

/// One vif's backend state machine.
#[derive(Clone, Debug)]
pub struct NetbackDevice {
    home: String,
    dir: String,
    frontend_dir: String,
    frontend_id: u16,
    config: NetbackConfig,
    connected: bool,
    frontend_seen: bool,
}

impl NetbackDevice {
    /// The device at backend directory `dir` (below `home`, the backend
    /// domain's `/local/domain/<id>`), whose frontend is at
    /// `frontend_dir` in domain `frontend_id`.
    pub fn new(home: &str, dir: &str, frontend_dir: &str, frontend_id: u16, config: NetbackConfig) -> Self {
        NetbackDevice {
            home: home.to_string(),
            dir: dir.to_string(),
            frontend_dir: frontend_dir.to_string(),
            frontend_id,
            config,
            connected: false,
            frontend_seen: false,
        }
    }

    /// The backend directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The frontend directory.
    pub fn frontend_dir(&self) -> &str {
        &self.frontend_dir
    }

    /// The frontend domain.
    pub fn frontend_id(&self) -> u16 {
        self.frontend_id
    }

    /// The offer.
    pub fn config(&self) -> &NetbackConfig {
        &self.config
    }

    /// Whether rings are connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    fn switch(&self, store: &mut impl Store, state: XenbusState) -> Result<bool, StoreError> {
        store.switch_state(&self.dir, state, &[])
    }

    /// Does what the current states call for (see the module doc).
    pub fn step(&mut self, store: &mut impl Store) -> Result<BackendAction, StoreError> {
        let Some(mut own) = read_state(store, &self.dir)? else {
            return Ok(BackendAction::Remove);
        };
        let front = read_state(store, &self.frontend_dir)?.unwrap_or(XenbusState::Unknown);
        if front == XenbusState::Unknown {
            if self.frontend_seen {
                return Ok(BackendAction::Remove);
            }
        } else {
            self.frontend_seen = true;
        }
        if own == XenbusState::Initialising {
            if !store.switch_state(&self.dir, XenbusState::InitWait, &self.config.entries())? {
                return Ok(BackendAction::Remove);
            }
            own = XenbusState::InitWait;
        }
        match front {
            XenbusState::Initialised | XenbusState::Connected => {
                let connectable =
                    matches!(own, XenbusState::InitWait | XenbusState::Initialised | XenbusState::Connected);
                if self.connected || !connectable {
                    return Ok(BackendAction::Idle);
                }
                match read_connect_info(store, &self.frontend_dir, self.frontend_id, &self.config) {
                    Ok(info) => Ok(BackendAction::Connect(info)),
                    Err(ConnectError::Store(e)) => Err(e),
                    Err(ConnectError::Bad(why)) => {
                        self.fail(store, &why)?;
                        Ok(BackendAction::Idle)
                    }
                }
            }
            XenbusState::Closing => {
                if self.connected {
                    return Ok(BackendAction::Disconnect);
                }
                if own != XenbusState::Closing && own != XenbusState::Closed {
                    self.switch(store, XenbusState::Closing)?;
                }
                Ok(BackendAction::Idle)
            }
            XenbusState::Closed => {
                if self.connected {
                    return Ok(BackendAction::Disconnect);
                }
                if own != XenbusState::Closed {
                    self.switch(store, XenbusState::Closed)?;
                }
                let online = read_u32(store, &format!("{}/{KEY_ONLINE}", self.dir))?;
                Ok(if online == Some(1) { BackendAction::Idle } else { BackendAction::Remove })
            }
            XenbusState::Initialising => {
                if own == XenbusState::Closed {
                    self.switch(store, XenbusState::InitWait)?;
                }
                Ok(BackendAction::Idle)
            }
            XenbusState::Unknown | XenbusState::InitWait => Ok(BackendAction::Idle),
            XenbusState::Reconfiguring | XenbusState::Reconfigured => {
                if self.connected {
                    return Ok(BackendAction::Disconnect);
                }
                self.fail(store, &format!("saw state {} at frontend", front.to_raw()))?;
                Ok(BackendAction::Idle)
            }
        }
    }

    /// The rings of the last [`BackendAction::Connect`] are mapped and
    /// bound: switch to Connected.
    pub fn connected(&mut self, store: &mut impl Store) -> Result<(), StoreError> {
        self.connected = true;
        self.switch(store, XenbusState::Connected)?;
        Ok(())
    }

    /// Everything of the connection is released.
    pub fn disconnected(&mut self) {
        self.connected = false;
    }

    /// Fatal for the device (`xenbus_dev_fatal`): records `why` in the
    /// error node and switches to Closing. The owner must have released
    /// whatever it set up.
    pub fn fail(&mut self, store: &mut impl Store, why: &str) -> Result<(), StoreError> {
        self.connected = false;
        if read_state(store, &self.dir)?.is_none() {
            return Ok(());
        }
        store.write(&error_path(&self.home, &self.dir), &format!("-22 {why}"))?;
        self.switch(store, XenbusState::Closing)?;
        Ok(())
    }
}

/// Why the frontend's keys cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// Reading the store failed.
    Store(StoreError),
    /// A key is missing or out of range: the message for the error node.
    Bad(String),
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        ConnectError::Store(e)
    }
}

/// `dir/key` as a number.
fn key_u32(store: &mut impl Store, dir: &str, key: &str) -> Result<Option<u32>, StoreError> {
    read_u32(store, &format!("{dir}/{key}"))
}

/// A frontend flag: 1 is on, anything else (or nothing) off.
fn flag(store: &mut impl Store, dir: &str, key: &str) -> Result<bool, StoreError> {
    Ok(key_u32(store, dir, key)? == Some(1))
}

/// Reads and checks the frontend's connection keys: queues, rings,
/// event channels, `request-rx-copy`, and its offloads.
pub fn read_connect_info(
    store: &mut impl Store,
    front: &str,
    frontend_id: u16,
    config: &NetbackConfig,
) -> Result<ConnectInfo, ConnectError> {
    let bad = |what: String| Err(ConnectError::Bad(what));
    let queues = match store.read(&format!("{front}/{}", keys::MULTI_QUEUE_NUM_QUEUES))? {
        None => 1,
        Some(v) => match parse_u32(&v) {
            Some(n) if (1..=config.max_queues.max(1)).contains(&n) => n,
            _ => return bad(format!("guest requested {v:?} queues, exceeding the maximum of {}", config.max_queues)),
        },
    };
    if read_u32(store, &format!("{front}/{}", keys::REQUEST_RX_COPY))? != Some(1) {
        return bad(format!("reading {front}/{}: the frontend must request rx copy", keys::REQUEST_RX_COPY));
    }
    let wanted = Features {
        sg: flag(store, front, keys::FEATURE_SG)?,
        gso_tcpv4: flag(store, front, keys::FEATURE_GSO_TCPV4)?,
        gso_tcpv6: flag(store, front, keys::FEATURE_GSO_TCPV6)?,
        ipv4_csum: !flag(store, front, keys::FEATURE_NO_CSUM_OFFLOAD)?,
        ipv6_csum: flag(store, front, keys::FEATURE_IPV6_CSUM_OFFLOAD)?,
    };
    let rx_notify = flag(store, front, keys::FEATURE_RX_NOTIFY)?;
    let mut out = Vec::new();
    for q in 0..queues {
        let dir = if queues == 1 { front.to_string() } else { format!("{front}/{}", queue_dir(q)) };
        let Some(tx_ring_ref) = key_u32(store, &dir, keys::TX_RING_REF)? else {
            return bad(format!("reading {dir}/{}", keys::TX_RING_REF));
        };
        let Some(rx_ring_ref) = key_u32(store, &dir, keys::RX_RING_REF)? else {
            return bad(format!("reading {dir}/{}", keys::RX_RING_REF));
        };
        let split = (key_u32(store, &dir, keys::EVENT_CHANNEL_TX)?, key_u32(store, &dir, keys::EVENT_CHANNEL_RX)?);
        let (tx_port, rx_port) = match split {
            (Some(tx), Some(rx)) if config.split_event_channels => (tx, rx),
            _ => match key_u32(store, &dir, keys::EVENT_CHANNEL)? {
                Some(p) => (p, p),
                None => return bad(format!("reading {dir}/{}", keys::EVENT_CHANNEL)),
            },
        };
        out.push(QueueRings { tx_ring_ref, rx_ring_ref, tx_port, rx_port });
    }
    Ok(ConnectInfo { frontend_id, features: config.features.common(wanted), rx_notify, queues: out })
}
