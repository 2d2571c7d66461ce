//! [`BlkbackDevice`]: a vbd backend's side of the xenbus handshake.
//!
//! [`BlkbackDevice::step`] reads both states and does what they call
//! for, returning what the owner must do with rings and channels:
//!
//! | backend | frontend | the device |
//! |---|---|---|
//! | 1 | any | writes the offer (features, sizes) and goes to 2 |
//! | 2–4, not connected | 3 or 4 | reads the rings: [`BackendAction::Connect`]; the owner maps them and calls [`BlkbackDevice::connected`] (→ 4) or [`BlkbackDevice::fail`] (→ 5) |
//! | connected | 5 | [`BackendAction::Disconnect`], then → 5 |
//! | any | 6 | disconnects, → 6; with `online=0`, [`BackendAction::Remove`] |
//! | 6 | 1 | → 2 again (the frontend reconnects) |
//! | gone | — | [`BackendAction::Remove`] (the toolstack removed it) |
//! | any | gone, after being seen | [`BackendAction::Remove`] (the frontend domain went away) |
//!
//! A disconnect always happens before the state that announces it is
//! written: `step` returns [`BackendAction::Disconnect`] first, the owner
//! unmaps and calls [`BlkbackDevice::disconnected`], and the next `step`
//! writes the state. Everything the frontend wrote is checked
//! ([`read_connect_info`]); a bad value is fatal for the device as in
//! Linux's `xenbus_dev_fatal`: an `error` node and state 5.
//! Semantics: L:`drivers/block/xen-blkback/xenbus.c frontend_changed`,
//! `connect_ring`, `read_per_ring_refs`; X:`io/blkif.h`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::blkif::keys::{self, queue_dir, MAX_INDIRECT_SEGMENTS, MAX_RING_ORDER};
use crate::blkif::request::Offer;
use crate::store::{error_path, read_state, read_u32, Store, StoreError};
use crate::xenbus::{XenbusState, KEY_FRONTEND, KEY_FRONTEND_ID, KEY_ONLINE};
use guest_abi::io::blkif::{VDISK_CDROM, VDISK_READONLY};

/// What the backend offers for one vbd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// The disk's size in 512-byte sectors.
    pub sectors: u64,
    /// Writes and discards are refused (`info` gets `VDISK_READONLY`).
    pub read_only: bool,
    /// The frontend sees a CD-ROM (`VDISK_CDROM`).
    pub cdrom: bool,
    /// `feature-discard` (with `discard-granularity`).
    pub discard: bool,
    /// `multi-queue-max-queues`.
    pub max_queues: u32,
    /// `max-ring-page-order`.
    pub max_ring_order: u32,
    /// `feature-max-indirect-segments` (0: not offered).
    pub max_indirect_segments: u32,
    /// `feature-persistent`.
    pub persistent: bool,
}

impl BackendConfig {
    /// Everything offered, for a disk of `sectors`, with `max_queues`
    /// queues.
    pub fn full(sectors: u64, max_queues: u32) -> Self {
        BackendConfig {
            sectors,
            read_only: false,
            cdrom: false,
            discard: true,
            max_queues: max_queues.max(1),
            max_ring_order: MAX_RING_ORDER,
            max_indirect_segments: MAX_INDIRECT_SEGMENTS,
            persistent: true,
        }
    }

    /// What requests are accepted under this offer.
    pub fn offer(&self) -> Offer {
        Offer {
            max_indirect_segments: self.max_indirect_segments,
            flush: true,
            discard: self.discard,
            discard_secure: false,
        }
    }

    /// `info`'s `VDISK_*` bits.
    pub fn info(&self) -> u32 {
        (if self.read_only { VDISK_READONLY } else { 0 }) | (if self.cdrom { VDISK_CDROM } else { 0 })
    }

    /// The keys written before InitWait: the whole offer, sizes included
    /// (as QEMU does; blkfront reads them at Connected).
    fn entries(&self) -> Vec<(&'static str, String)> {
        let mut e = alloc::vec![
            (keys::MAX_RING_PAGE_ORDER, self.max_ring_order.min(MAX_RING_ORDER).to_string()),
            (keys::MULTI_QUEUE_MAX_QUEUES, self.max_queues.max(1).to_string()),
            (keys::FEATURE_PERSISTENT, u32::from(self.persistent).to_string()),
            (keys::FEATURE_FLUSH_CACHE, "1".to_string()),
            (keys::SECTORS, self.sectors.to_string()),
            (keys::INFO, self.info().to_string()),
            (keys::SECTOR_SIZE, "512".to_string()),
            (keys::PHYSICAL_SECTOR_SIZE, "512".to_string()),
        ];
        if self.max_indirect_segments > 0 {
            e.push((keys::FEATURE_MAX_INDIRECT_SEGMENTS, self.max_indirect_segments.to_string()));
        }
        if self.discard {
            e.push((keys::FEATURE_DISCARD, "1".to_string()));
            e.push((keys::DISCARD_GRANULARITY, "4096".to_string()));
            e.push((keys::DISCARD_ALIGNMENT, "0".to_string()));
        }
        e
    }
}

/// The toolstack's keys in a backend directory (libxl's `device_disk_add`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolstackKeys {
    /// `frontend`: the frontend directory.
    pub frontend: String,
    /// `frontend-id`.
    pub frontend_id: u16,
    /// `params`: what to serve (`raw:/path`, `/path`, `/dev/…`).
    pub params: String,
    /// `mode` contains `w`.
    pub writable: bool,
    /// `device-type` is `cdrom`.
    pub cdrom: bool,
    /// `discard-enable` is not 0.
    pub discard_enable: bool,
}

impl ToolstackKeys {
    /// Reads them from `dir`; `None` if the directory is not (or no
    /// longer, or not yet) a complete vbd backend.
    pub fn read(store: &mut impl Store, dir: &str) -> Result<Option<ToolstackKeys>, StoreError> {
        let Some(frontend) = store.read(&format!("{dir}/{KEY_FRONTEND}"))? else { return Ok(None) };
        let Some(frontend_id) = read_u32(store, &format!("{dir}/{KEY_FRONTEND_ID}"))? else { return Ok(None) };
        let Ok(frontend_id) = u16::try_from(frontend_id) else { return Ok(None) };
        let Some(params) = store.read(&format!("{dir}/{}", keys::PARAMS))? else { return Ok(None) };
        let mode = store.read(&format!("{dir}/{}", keys::MODE))?.unwrap_or_default();
        let cdrom = store.read(&format!("{dir}/{}", keys::DEVICE_TYPE))?.is_some_and(|t| t == "cdrom");
        let discard_enable = read_u32(store, &format!("{dir}/discard-enable"))?.is_none_or(|v| v != 0);
        Ok(Some(ToolstackKeys { frontend, frontend_id, params, writable: mode.contains('w'), cdrom, discard_enable }))
    }
}

/// One queue's ring and channel, as the frontend published them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRings {
    /// The ring's grant references, in order (2^order of them).
    pub refs: Vec<u32>,
    /// The frontend's unbound port for this queue.
    pub event_channel: u32,
}

/// What the frontend published: everything needed to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The frontend domain.
    pub frontend_id: u16,
    /// Pages per ring, as an order.
    pub ring_order: u32,
    /// Both ends want persistent grants.
    pub persistent: bool,
    /// One entry per queue.
    pub queues: Vec<QueueRings>,
}

/// What the owner of the device must do after [`BlkbackDevice::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendAction {
    /// Nothing until the next change.
    Idle,
    /// Map these rings and bind these channels, then call
    /// [`BlkbackDevice::connected`] or [`BlkbackDevice::fail`].
    Connect(ConnectInfo),
    /// Unmap every ring and grant and unbind the channels, then call
    /// [`BlkbackDevice::disconnected`] and `step` again.
    Disconnect,
    /// Tear everything down and forget the device.
    Remove,
}

/// One vbd's backend state machine.
#[derive(Clone, Debug)]
pub struct BlkbackDevice {
    home: String,
    dir: String,
    frontend_dir: String,
    frontend_id: u16,
    config: BackendConfig,
    connected: bool,
    frontend_seen: bool,
}

impl BlkbackDevice {
    /// The device at backend directory `dir` (below `home`, the backend
    /// domain's `/local/domain/<id>`), whose frontend is at
    /// `frontend_dir` in domain `frontend_id`.
    pub fn new(home: &str, dir: &str, frontend_dir: &str, frontend_id: u16, config: BackendConfig) -> Self {
        BlkbackDevice {
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
    pub fn config(&self) -> &BackendConfig {
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
                    // The frontend reconnects: offer again.
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
        store.switch_state(&self.dir, XenbusState::Connected, &[(keys::SECTORS, self.config.sectors.to_string())])?;
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

/// Reads and checks the frontend's connection keys: queues, ring order
/// and references, event channels, protocol, persistent grants.
pub fn read_connect_info(
    store: &mut impl Store,
    front: &str,
    frontend_id: u16,
    config: &BackendConfig,
) -> Result<ConnectInfo, ConnectError> {
    let bad = |what: String| Err(ConnectError::Bad(what));
    let queues = match store.read(&format!("{front}/{}", keys::MULTI_QUEUE_NUM_QUEUES))? {
        None => 1,
        Some(v) => match crate::store::parse_u32(&v) {
            Some(n) if (1..=config.max_queues.max(1)).contains(&n) => n,
            _ => return bad(format!("reading {front}/{}", keys::MULTI_QUEUE_NUM_QUEUES)),
        },
    };
    match store.read(&format!("{front}/{}", keys::PROTOCOL))?.as_deref() {
        None | Some(keys::PROTOCOL_X86_64) => {}
        Some(other) => return bad(format!("unknown fe protocol {other}")),
    }
    let persistent = config.persistent && read_u32(store, &format!("{front}/{}", keys::FEATURE_PERSISTENT))? == Some(1);
    let order = match store.read(&format!("{front}/{}", keys::RING_PAGE_ORDER))? {
        None => None,
        Some(v) => match crate::store::parse_u32(&v) {
            Some(o) if o <= config.max_ring_order.min(MAX_RING_ORDER) => Some(o),
            _ => return bad(format!("{front}/{} {v} exceeds max {}", keys::RING_PAGE_ORDER, config.max_ring_order)),
        },
    };
    let mut out = Vec::new();
    for q in 0..queues {
        let dir = if queues == 1 { front.to_string() } else { format!("{front}/{}", queue_dir(q)) };
        let Some(event_channel) = read_u32(store, &format!("{dir}/{}", keys::EVENT_CHANNEL))? else {
            return bad(format!("reading {dir}/{}", keys::EVENT_CHANNEL));
        };
        let mut refs = Vec::new();
        match order {
            None => match read_u32(store, &format!("{dir}/{}", keys::RING_REF))? {
                Some(r) => refs.push(r),
                None => return bad(format!("reading {dir}/{}", keys::RING_REF)),
            },
            Some(o) => {
                for i in 0..1u32 << o {
                    match read_u32(store, &format!("{dir}/{}{i}", keys::RING_REF))? {
                        Some(r) => refs.push(r),
                        None => return bad(format!("reading {dir}/{}{i}", keys::RING_REF)),
                    }
                }
            }
        }
        out.push(QueueRings { refs, event_channel });
    }
    Ok(ConnectInfo { frontend_id, ring_order: order.unwrap_or(0), persistent, queues: out })
}
