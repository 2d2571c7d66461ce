//! [`NetfrontDevice`]: a vif frontend's side of the xenbus handshake.
//!
//! [`NetfrontDevice::step`] reads both states and acts:
//!
//! | frontend | backend | the device |
//! |---|---|---|
//! | 1 | 2 or 4 | checks `feature-rx-copy`, negotiates queues, split channels and offloads, allocates and grants rings and pools, posts the RX pages, and publishes all of it with state 4 in one transaction (`talk_to_netback`; netif frontends skip 3) |
//! | 4 | 4 | [`FrontendAction::Connected`], once |
//! | 4 | 5 or 6, or gone | the backend went away: releases everything, → 6 ([`FrontendAction::Closed`]) |
//! | 5 (after [`NetfrontDevice::close`]) | 5 or 6, or gone | releases everything, → 6 |
//!
//! Traffic may flow as soon as the frontend is at 4 (a backend maps the
//! rings then); Linux's netback reaches 4 itself only once the
//! toolstack has bridged its device (`hotplug-status`).
//! Semantics: L:`drivers/net/xen-netfront.c netback_changed`,
//! `talk_to_netback`, `xennet_connect`, `xennet_create_queues`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::queue::NetfrontQueue;
use crate::blkif::front::{FrontendPlatform, PlatformError};
use crate::netif::keys::{self, queue_dir, Features, Mac};
use crate::store::{read_state, read_u32, Store, StoreError};
use crate::xenbus::{is_closing, XenbusState, KEY_BACKEND, KEY_BACKEND_ID};

/// What the frontend asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetfrontConfig {
    /// Queues wanted (up to the backend's `multi-queue-max-queues`).
    pub queues: u32,
    /// Offloads asked for (what the backend also offers is used).
    pub features: Features,
    /// Use two ports per queue if the backend offers it.
    pub split_event_channels: bool,
    /// TX pool pages per queue.
    pub tx_buffers: usize,
    /// RX pool pages per queue.
    pub rx_buffers: usize,
}

impl Default for NetfrontConfig {
    /// One queue, no offloads (the simplest frames: one page each, full
    /// checksums), split channels, 64 pages each way.
    fn default() -> Self {
        NetfrontConfig {
            queues: 1,
            features: Features::NONE,
            split_event_channels: true,
            tx_buffers: 64,
            rx_buffers: 64,
        }
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontError {
    /// XenStore failed.
    Store(StoreError),
    /// The kernel could not provide memory, a grant or a port.
    Platform(PlatformError),
    /// The toolstack's or the backend's keys are missing or malformed.
    Keys(String),
    /// The backend broke the ring protocol.
    Protocol(String),
}

impl From<StoreError> for FrontError {
    fn from(e: StoreError) -> Self {
        FrontError::Store(e)
    }
}

impl From<PlatformError> for FrontError {
    fn from(e: PlatformError) -> Self {
        FrontError::Platform(e)
    }
}

impl core::fmt::Display for FrontError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrontError::Store(e) => write!(f, "xenstore: {e}"),
            FrontError::Platform(e) => write!(f, "platform: {}", e.0),
            FrontError::Keys(why) => write!(f, "bad keys: {why}"),
            FrontError::Protocol(why) => write!(f, "backend broke the protocol: {why}"),
        }
    }
}

/// What changed in a [`NetfrontDevice::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontendAction {
    /// Nothing to report.
    Idle,
    /// Both ends are at 4: the device is up.
    Connected,
    /// The connection ended and everything is released.
    Closed,
    /// The device failed (→ 5): why.
    Failed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Init,
    Published,
    Connected,
    Closing,
    Closed,
}

/// One vif's frontend.
pub struct NetfrontDevice<P: FrontendPlatform> {
    dir: String,
    backend_dir: String,
    backend_id: u16,
    mac: Mac,
    cfg: NetfrontConfig,
    phase: Phase,
    features: Features,
    queues: Vec<NetfrontQueue<P::Page>>,
}

impl<P: FrontendPlatform> NetfrontDevice<P> {
    /// The vif whose frontend directory is `dir`: reads `backend`,
    /// `backend-id` and `mac` (which the toolstack wrote).
    pub fn new(store: &mut impl Store, dir: &str, cfg: NetfrontConfig) -> Result<Self, FrontError> {
        let backend_dir = store
            .read(&format!("{dir}/{KEY_BACKEND}"))?
            .ok_or_else(|| FrontError::Keys(format!("reading {dir}/{KEY_BACKEND}")))?;
        let backend_id = read_u32(store, &format!("{dir}/{KEY_BACKEND_ID}"))?
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| FrontError::Keys(format!("reading {dir}/{KEY_BACKEND_ID}")))?;
        let mac = store
            .read(&format!("{dir}/{}", keys::MAC))?
            .and_then(|m| Mac::parse(&m))
            .ok_or_else(|| FrontError::Keys(format!("parsing {dir}/{}", keys::MAC)))?;
        Ok(NetfrontDevice {
            dir: dir.to_string(),
            backend_dir,
            backend_id,
            mac,
            cfg,
            phase: Phase::Init,
            features: Features::NONE,
            queues: Vec::new(),
        })
    }

    /// The frontend directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The backend directory (to watch its state).
    pub fn backend_dir(&self) -> &str {
        &self.backend_dir
    }

    /// The backend domain.
    pub fn backend_id(&self) -> u16 {
        self.backend_id
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The offloads in use.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Whether both ends are connected.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The queues (empty until published).
    pub fn queues(&mut self) -> &mut [NetfrontQueue<P::Page>] {
        &mut self.queues
    }

    /// Does what the current states call for (see the module doc).
    pub fn step(&mut self, store: &mut impl Store, platform: &mut P) -> Result<FrontendAction, FrontError> {
        let own = read_state(store, &self.dir)?;
        let back = read_state(store, &self.backend_dir)?;
        let back_gone = back.is_none_or(is_closing);
        match self.phase {
            Phase::Init => match (own, back) {
                (Some(XenbusState::Initialising), Some(XenbusState::InitWait | XenbusState::Connected)) => {
                    match self.publish(store, platform) {
                        Ok(true) => {
                            self.phase = Phase::Published;
                            self.step(store, platform)
                        }
                        Ok(false) => Ok(FrontendAction::Idle),
                        Err(FrontError::Keys(why)) => self.failed(store, platform, why),
                        Err(e) => Err(e),
                    }
                }
                _ => Ok(FrontendAction::Idle),
            },
            Phase::Published | Phase::Connected if back_gone => {
                self.release(platform);
                store.switch_state(&self.dir, XenbusState::Closed, &[])?;
                self.phase = Phase::Closed;
                Ok(FrontendAction::Closed)
            }
            Phase::Published if back == Some(XenbusState::Connected) => {
                self.phase = Phase::Connected;
                Ok(FrontendAction::Connected)
            }
            Phase::Closing if back_gone => {
                self.release(platform);
                store.switch_state(&self.dir, XenbusState::Closed, &[])?;
                self.phase = Phase::Closed;
                Ok(FrontendAction::Closed)
            }
            _ => Ok(FrontendAction::Idle),
        }
    }

    /// Negotiates and publishes the rings with state 4 (false if the
    /// device is gone).
    fn publish(&mut self, store: &mut impl Store, platform: &mut P) -> Result<bool, FrontError> {
        let back = self.backend_dir.clone();
        if read_u32(store, &format!("{back}/{}", keys::FEATURE_RX_COPY))? != Some(1) {
            return Err(FrontError::Keys("backend does not support copying receive path".into()));
        }
        let offered = Features {
            sg: flag(store, &back, keys::FEATURE_SG)?,
            gso_tcpv4: flag(store, &back, keys::FEATURE_GSO_TCPV4)?,
            gso_tcpv6: flag(store, &back, keys::FEATURE_GSO_TCPV6)?,
            ipv4_csum: true,
            ipv6_csum: flag(store, &back, keys::FEATURE_IPV6_CSUM_OFFLOAD)?,
        };
        let split = self.cfg.split_event_channels && flag(store, &back, keys::FEATURE_SPLIT_EVENT_CHANNELS)?;
        let max_queues = read_u32(store, &format!("{back}/{}", keys::MULTI_QUEUE_MAX_QUEUES))?;
        let nr = self.cfg.queues.clamp(1, max_queues.unwrap_or(1).max(1));
        self.features = self.cfg.features.common(offered);
        for _ in 0..nr {
            let mut q = NetfrontQueue::new(platform, self.backend_id, self.cfg.tx_buffers, self.cfg.rx_buffers, split)?;
            q.set_features(self.features);
            q.post_rx(platform);
            self.queues.push(q);
        }
        let mut entries: Vec<(String, String)> = Vec::new();
        if max_queues.is_some() {
            entries.push((keys::MULTI_QUEUE_NUM_QUEUES.into(), nr.to_string()));
        }
        for (i, q) in self.queues.iter().enumerate() {
            let prefix = if nr == 1 { String::new() } else { format!("{}/", queue_dir(i as u32)) };
            entries.extend(q.keys().into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        entries.push((keys::REQUEST_RX_COPY.into(), "1".into()));
        entries.push((keys::FEATURE_RX_NOTIFY.into(), "1".into()));
        entries.extend(self.cfg.features.frontend_entries().into_iter().map(|(k, v)| (k.to_string(), v)));
        let refs: Vec<(&str, String)> = entries.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        if !store.switch_state(&self.dir, XenbusState::Connected, &refs)? {
            self.release(platform);
            return Ok(false);
        }
        Ok(true)
    }

    fn failed(&mut self, store: &mut impl Store, platform: &mut P, why: String) -> Result<FrontendAction, FrontError> {
        self.release(platform);
        store.switch_state(&self.dir, XenbusState::Closing, &[])?;
        self.phase = Phase::Closing;
        Ok(FrontendAction::Failed(why))
    }

    /// Starts closing (→ 5); [`Self::step`] finishes when the backend
    /// follows.
    pub fn close(&mut self, store: &mut impl Store) -> Result<(), FrontError> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Ok(());
        }
        store.switch_state(&self.dir, XenbusState::Closing, &[])?;
        self.phase = Phase::Closing;
        Ok(())
    }

    fn release(&mut self, platform: &mut P) {
        for q in self.queues.drain(..) {
            q.release(platform);
        }
    }
}

/// A backend flag: 1 is on, anything else (or nothing) off.
fn flag(store: &mut impl Store, dir: &str, key: &str) -> Result<bool, StoreError> {
    Ok(read_u32(store, &format!("{dir}/{key}"))? == Some(1))
}
