//! [`BlkfrontDevice`]: a vbd frontend's side of the xenbus handshake.
//!
//! [`BlkfrontDevice::step`] reads both states and acts:
//!
//! | frontend | backend | the device |
//! |---|---|---|
//! | 1 | 2 or 4 | negotiates (ring order, queues, persistent grants), allocates and grants the rings and the data pools, allocates the event channels, and publishes all of it with state 3 in one transaction (`talk_to_blkback`) |
//! | 3 | 4 | reads `sectors`, `info`, `sector-size` and the features, switches to 4: [`FrontendAction::Connected`] |
//! | 3, 4 or 5 | 5 | → 6, and waits: a Linux backend unmaps only when the frontend is Closed |
//! | 3, 4, 5 or 6 | 6, or gone | the backend let go: ends every grant, frees the rings and pools, → 6 ([`FrontendAction::Closed`]) |
//!
//! [`BlkfrontDevice::close`] starts closing from the frontend (→ 5).
//! A grant the backend still holds when it is ended is leaked with its
//! memory rather than reused.
//!
//! Everything the backend wrote is checked: a missing or malformed
//! geometry key fails the device (→ 5, [`FrontendAction::Failed`]).
//! Semantics: L:`drivers/block/xen-blkfront.c blkback_changed`,
//! `talk_to_blkback`, `blkfront_connect`, `blkfront_gather_backend_features`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::platform::{FrontendPlatform, PlatformError};
use super::queue::{FrontQueue, QueueLimits};
use crate::blkif::keys::{self, queue_dir, MAX_RING_ORDER, MIN_INDIRECT_SEGMENTS};
use crate::store::{parse_u64, read_state, read_u32, Store, StoreError};
use crate::xenbus::{XenbusState, KEY_BACKEND, KEY_BACKEND_ID};
use guest_abi::io::blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST;

/// What the frontend asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontConfig {
    /// Queues wanted (up to the backend's `multi-queue-max-queues`).
    pub queues: u32,
    /// Ring pages wanted, as an order (up to `max-ring-page-order`).
    pub ring_order: u32,
    /// Ask for persistent grants.
    pub persistent: bool,
    /// Pool pages per queue.
    pub pool_pages: usize,
    /// Most segments per request to use (INDIRECT above 11).
    pub max_segments: u32,
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig { queues: 1, ring_order: 0, persistent: true, pool_pages: 64, max_segments: 32 }
    }
}

/// The disk, as the backend describes it at Connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// `sector-size`.
    pub sector_size: u32,
    /// `info` (`VDISK_*`).
    pub info: u32,
    /// FLUSH_DISKCACHE offered.
    pub flush: bool,
    /// DISCARD offered.
    pub discard: bool,
    /// Persistent grants negotiated (both ends).
    pub persistent: bool,
    /// Segments per request in use.
    pub max_segments: u32,
    /// Queues in use.
    pub queues: u32,
    /// Ring order in use.
    pub ring_order: u32,
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

/// What changed in a [`BlkfrontDevice::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontendAction {
    /// Nothing to report.
    Idle,
    /// The disk is usable.
    Connected(DiskInfo),
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

/// One vbd's frontend.
pub struct BlkfrontDevice<P: FrontendPlatform> {
    dir: String,
    backend_dir: String,
    backend_id: u16,
    handle: u16,
    cfg: FrontConfig,
    phase: Phase,
    queues: Vec<FrontQueue<P::Page>>,
    info: Option<DiskInfo>,
    persistent_asked: bool,
    leaked_grants: usize,
}

impl<P: FrontendPlatform> BlkfrontDevice<P> {
    /// The device at frontend directory `dir` (`device/vbd/<devid>`,
    /// absolute or relative to the domain's home): reads `backend` and
    /// `backend-id`.
    pub fn new(store: &mut impl Store, dir: &str, cfg: FrontConfig) -> Result<Self, FrontError> {
        let backend_dir = store
            .read(&format!("{dir}/{KEY_BACKEND}"))?
            .ok_or_else(|| FrontError::Keys(format!("{dir}/{KEY_BACKEND} missing")))?;
        let backend_id = read_u32(store, &format!("{dir}/{KEY_BACKEND_ID}"))?
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| FrontError::Keys(format!("{dir}/{KEY_BACKEND_ID} missing or bad")))?;
        let devid = dir.rsplit('/').next().and_then(|d| d.parse::<u32>().ok()).unwrap_or(0);
        Ok(BlkfrontDevice {
            dir: dir.to_string(),
            backend_dir,
            backend_id,
            handle: devid as u16,
            cfg,
            phase: Phase::Init,
            queues: Vec::new(),
            info: None,
            persistent_asked: false,
            leaked_grants: 0,
        })
    }

    /// The backend directory (for watching its `state`).
    pub fn backend_dir(&self) -> &str {
        &self.backend_dir
    }

    /// The frontend directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The backend domain.
    pub fn backend_id(&self) -> u16 {
        self.backend_id
    }

    /// The disk, once connected.
    pub fn info(&self) -> Option<DiskInfo> {
        self.info
    }

    /// Whether the disk is usable.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Grants the backend still held when they were ended (leaked).
    pub fn leaked_grants(&self) -> usize {
        self.leaked_grants
    }

    /// The queues (empty unless published).
    pub fn queues(&mut self) -> &mut [FrontQueue<P::Page>] {
        &mut self.queues
    }

    /// Does what the current states call for (see the module doc).
    pub fn step(&mut self, store: &mut impl Store, platform: &mut P) -> Result<FrontendAction, FrontError> {
        let Some(own) = read_state(store, &self.dir)? else {
            // The toolstack removed the device.
            self.release(platform);
            self.phase = Phase::Closed;
            return Ok(FrontendAction::Closed);
        };
        let back = read_state(store, &self.backend_dir)?;
        match (self.phase, back) {
            (Phase::Closed, _) => Ok(FrontendAction::Idle),
            (Phase::Init, Some(XenbusState::InitWait | XenbusState::Connected)) => {
                match self.publish(store, platform) {
                    Ok(()) => {
                        self.phase = Phase::Published;
                        self.step(store, platform)
                    }
                    Err(FrontError::Store(e)) => Err(FrontError::Store(e)),
                    Err(e) => self.failed(store, e),
                }
            }
            (Phase::Init, _) => Ok(FrontendAction::Idle),
            // The backend has let go of everything (or is gone).
            (_, None | Some(XenbusState::Closed)) => self.closed(store, platform),
            (Phase::Published, Some(XenbusState::Connected)) => match self.connect(store) {
                Ok(info) => Ok(FrontendAction::Connected(info)),
                Err(FrontError::Store(e)) => Err(FrontError::Store(e)),
                Err(e) => self.failed(store, e),
            },
            // The backend closes: answer Closed, and release once it is.
            (_, Some(XenbusState::Closing)) => {
                if own != XenbusState::Closed {
                    store.switch_state(&self.dir, XenbusState::Closed, &[])?;
                }
                self.phase = Phase::Closing;
                Ok(FrontendAction::Idle)
            }
            _ => Ok(FrontendAction::Idle),
        }
    }

    /// Starts closing (→ 5); the next steps finish once the backend has
    /// closed (and unmapped everything). Requests still in flight are
    /// abandoned.
    pub fn close(&mut self, store: &mut impl Store) -> Result<(), FrontError> {
        if self.phase != Phase::Closed {
            store.switch_state(&self.dir, XenbusState::Closing, &[])?;
            self.phase = Phase::Closing;
        }
        Ok(())
    }

    /// The device cannot go on: → 5; what it set up is released once the
    /// backend has closed.
    fn failed(&mut self, store: &mut impl Store, e: FrontError) -> Result<FrontendAction, FrontError> {
        self.phase = Phase::Closing;
        store.switch_state(&self.dir, XenbusState::Closing, &[])?;
        Ok(FrontendAction::Failed(e.to_string()))
    }

    fn closed(&mut self, store: &mut impl Store, platform: &mut P) -> Result<FrontendAction, FrontError> {
        self.release(platform);
        self.phase = Phase::Closed;
        store.switch_state(&self.dir, XenbusState::Closed, &[])?;
        Ok(FrontendAction::Closed)
    }

    /// Ends every grant and gives pages and ports back. A queue whose
    /// grants the backend still holds keeps its memory (leaked, as Linux
    /// does): freeing it would let the backend write into reused pages.
    fn release(&mut self, platform: &mut P) {
        for q in self.queues.drain(..) {
            let mut leaked = 0;
            for gref in q.grefs() {
                if platform.end_grant(gref).is_err() {
                    leaked += 1;
                }
            }
            platform.close_port(q.port());
            let (frames, pool) = q.into_parts();
            if leaked == 0 {
                platform.free_ring(&frames);
                drop(pool);
            } else {
                core::mem::forget(pool);
            }
            self.leaked_grants += leaked;
        }
        self.info = None;
    }

    /// Negotiates and publishes the rings (`talk_to_blkback`).
    fn publish(&mut self, store: &mut impl Store, platform: &mut P) -> Result<(), FrontError> {
        let back = self.backend_dir.clone();
        let max_order = read_u32(store, &format!("{back}/{}", keys::MAX_RING_PAGE_ORDER))?.unwrap_or(0);
        let max_queues = read_u32(store, &format!("{back}/{}", keys::MULTI_QUEUE_MAX_QUEUES))?.unwrap_or(1);
        let order = self.cfg.ring_order.min(max_order).min(MAX_RING_ORDER);
        let nq = self.cfg.queues.clamp(1, max_queues.max(1));
        self.persistent_asked = self.cfg.persistent;
        let mut entries: Vec<(String, String)> = Vec::new();
        for q in 0..nq {
            let prefix = if nq == 1 { String::new() } else { format!("{}/", queue_dir(q)) };
            let queue = self.make_queue(platform, order)?;
            if order == 0 {
                let gref = queue.ring_grefs().first().copied().unwrap_or(0);
                entries.push((format!("{prefix}{}", keys::RING_REF), gref.to_string()));
            } else {
                for (i, gref) in queue.ring_grefs().iter().enumerate() {
                    entries.push((format!("{prefix}{}{i}", keys::RING_REF), gref.to_string()));
                }
            }
            entries.push((format!("{prefix}{}", keys::EVENT_CHANNEL), queue.port().to_string()));
            self.queues.push(queue);
        }
        if order > 0 {
            entries.push((keys::RING_PAGE_ORDER.into(), order.to_string()));
        }
        if nq > 1 {
            entries.push((keys::MULTI_QUEUE_NUM_QUEUES.into(), nq.to_string()));
        }
        entries.push((keys::PROTOCOL.into(), keys::PROTOCOL_X86_64.into()));
        entries.push((keys::FEATURE_PERSISTENT.into(), u32::from(self.cfg.persistent).to_string()));
        let refs: Vec<(&str, String)> = entries.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        if !store.switch_state(&self.dir, XenbusState::Initialised, &refs)? {
            return Err(FrontError::Keys(format!("{}/state vanished", self.dir)));
        }
        Ok(())
    }

    /// One queue: its ring granted, its pool granted, its port.
    fn make_queue(&mut self, platform: &mut P, order: u32) -> Result<FrontQueue<P::Page>, FrontError> {
        let area = platform.alloc_ring(order)?;
        let mut grefs = Vec::new();
        for &frame in &area.frames {
            grefs.push(platform.grant(self.backend_id, frame, false)?);
        }
        let mut pool = Vec::new();
        for _ in 0..self.cfg.pool_pages.max(1) {
            let page = platform.alloc_page()?;
            let gref = platform.grant(self.backend_id, super::platform::SharedPage::frame(&page), false)?;
            pool.push((page, gref));
        }
        let port = platform.alloc_unbound(self.backend_id)?;
        Ok(FrontQueue::new(area.shared, area.frames, grefs, port, pool, self.handle))
    }

    /// Reads the disk and the features and switches to Connected
    /// (`blkfront_connect`).
    fn connect(&mut self, store: &mut impl Store) -> Result<DiskInfo, FrontError> {
        let back = self.backend_dir.clone();
        let key = |k: &str| format!("{back}/{k}");
        let sectors = store
            .read(&key(keys::SECTORS))?
            .and_then(|v| parse_u64(&v))
            .ok_or_else(|| FrontError::Keys("reading backend fields: sectors".into()))?;
        let info = read_u32(store, &key(keys::INFO))?
            .ok_or_else(|| FrontError::Keys("reading backend fields: info".into()))?;
        let sector_size = read_u32(store, &key(keys::SECTOR_SIZE))?
            .filter(|s| s.is_power_of_two() && *s >= 512)
            .ok_or_else(|| FrontError::Keys("reading backend fields: sector-size".into()))?;
        let flag = |store: &mut dyn FnMut(&str) -> Result<Option<u32>, StoreError>, k: &str| {
            store(k).map(|v| v.is_some_and(|v| v != 0))
        };
        let mut reader = |k: &str| read_u32(store, &key(k));
        let flush = flag(&mut reader, keys::FEATURE_FLUSH_CACHE)? || flag(&mut reader, keys::FEATURE_BARRIER)?;
        let discard = flag(&mut reader, keys::FEATURE_DISCARD)?;
        let persistent = self.persistent_asked && reader(keys::FEATURE_PERSISTENT)? == Some(1);
        let indirect = reader(keys::FEATURE_MAX_INDIRECT_SEGMENTS)?.unwrap_or(0);
        let max_segments = if indirect < MIN_INDIRECT_SEGMENTS {
            BLKIF_MAX_SEGMENTS_PER_REQUEST
        } else {
            indirect.min(self.cfg.max_segments.max(BLKIF_MAX_SEGMENTS_PER_REQUEST))
        };
        let limits = QueueLimits { max_segments, flush, discard };
        for q in &mut self.queues {
            q.set_limits(limits);
        }
        let ring_order = self.queues.first().map_or(0, |q| q.ring_grefs().len().trailing_zeros());
        let disk = DiskInfo {
            sectors,
            sector_size,
            info,
            flush,
            discard,
            persistent,
            max_segments,
            queues: self.queues.len() as u32,
            ring_order,
        };
        store.switch_state(&self.dir, XenbusState::Connected, &[])?;
        self.phase = Phase::Connected;
        self.info = Some(disk);
        Ok(disk)
    }
}
