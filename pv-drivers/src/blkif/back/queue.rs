//! [`BlkbackQueue`]: one ring's request service.
//!
//! [`BlkbackQueue::service`] takes every published request, serves it
//! synchronously and queues its response, publishes the responses
//! (notifying only when `rsp_event` asks), and re-arms `req_event`
//! before returning (`RING_FINAL_CHECK_FOR_REQUESTS`), so an event is due
//! for anything published later. Each request is answered before the
//! next is taken: a write is on the disk (not necessarily durable) when
//! its response goes out, and every grant it used is released, unless
//! persistent.
//!
//! Per request, in order: decode and check the fields
//! ([`request::decode`]); refuse writes and discards to a read-only disk;
//! fetch and check an indirect request's segment list; check the extent
//! against the disk; move the data; respond. Any failure is the
//! request's `BLKIF_RSP_ERROR` (or `EOPNOTSUPP`) — never an access
//! outside the disk or the frontend's grants. A frontend that publishes
//! more requests than the ring holds breaks the ring
//! ([`QueueError::RingOverflow`]): the daemon closes the device.

use alloc::vec::Vec;

use guest_abi::io::blkif::{BlkifRequest, BlkifResponse, BLKIF_RSP_EOPNOTSUPP};
use guest_abi::io::ring::{BackRing, RingError, SharedRing};

use super::disk::Disk;
use super::grants::{CopySpan, GrantAccess, MappedPage, PersistentGrants, MAX_PERSISTENT_GRANTS};
use crate::blkif::request::{self, Invalid, Kind, Offer, Rejected, Request, Segment, Segments};
use crate::blkif::{PAGE_SIZE, SECTOR_SIZE};

/// How a queue serves its frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The frontend domain (owner of every grant).
    pub frontend: u16,
    /// What was offered.
    pub offer: Offer,
    /// Writes and discards are refused.
    pub read_only: bool,
    /// Persistent grants were negotiated.
    pub persistent: bool,
}

/// What the ring broke with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The frontend published more requests than the ring holds.
    RingOverflow,
}

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests answered `OKAY`.
    pub okay: u64,
    /// Requests answered `ERROR`.
    pub errors: u64,
    /// Requests answered `EOPNOTSUPP`.
    pub not_supported: u64,
    /// Bytes read from the disk for the frontend.
    pub bytes_read: u64,
    /// Bytes written to the disk.
    pub bytes_written: u64,
    /// Persistent grants mapped.
    pub persistent_maps: u64,
    /// Segments served by an already mapped persistent grant.
    pub persistent_reuses: u64,
}

/// The result of one [`BlkbackQueue::service`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Serviced {
    /// Requests answered.
    pub requests: u32,
    /// The frontend must be notified.
    pub notify: bool,
    /// The budget ran out with requests left: call again.
    pub more: bool,
}

/// One ring of a connected vbd.
pub struct BlkbackQueue<'a, P> {
    ring: BackRing<'a, BlkifRequest, BlkifResponse>,
    cfg: QueueConfig,
    persistent: PersistentGrants<P>,
    buf: Vec<u8>,
    stats: QueueStats,
    last_error: Option<Rejected>,
}

impl<'a, P: MappedPage> BlkbackQueue<'a, P> {
    /// Serves the ring in `shared` (just set up by the frontend).
    pub fn new(shared: SharedRing<'a>, cfg: QueueConfig) -> Self {
        BlkbackQueue {
            ring: BackRing::init(shared),
            cfg,
            persistent: PersistentGrants::new(MAX_PERSISTENT_GRANTS),
            buf: Vec::new(),
            stats: QueueStats::default(),
            last_error: None,
        }
    }

    /// Entries in the ring.
    pub fn ring_size(&self) -> u32 {
        self.ring.size()
    }

    /// The counters so far.
    pub fn stats(&self) -> QueueStats {
        QueueStats { persistent_maps: self.persistent.maps, persistent_reuses: self.persistent.reuses, ..self.stats }
    }

    /// The last request refused, and why (then forgotten).
    pub fn take_last_error(&mut self) -> Option<Rejected> {
        self.last_error.take()
    }

    /// Persistent grants currently mapped.
    pub fn persistent_grants(&self) -> usize {
        self.persistent.len()
    }

    /// Serves up to `budget` requests (see the module doc).
    pub fn service<G, D>(&mut self, grants: &mut G, disk: &D, budget: u32) -> Result<Serviced, QueueError>
    where
        G: GrantAccess<Page = P>,
        D: Disk + ?Sized,
    {
        let mut done = Serviced::default();
        loop {
            while done.requests < budget {
                let raw = match self.ring.take_request() {
                    Ok(Some(raw)) => raw,
                    Ok(None) => break,
                    Err(RingError::Overflow | RingError::Full) => return Err(QueueError::RingOverflow),
                };
                let rsp = self.serve(grants, disk, &raw);
                // Cannot fail: the request was just taken.
                let _ = self.ring.queue_response(&rsp);
                done.requests += 1;
            }
            done.notify |= self.ring.push_responses();
            if done.requests >= budget {
                done.more = self.ring.unconsumed_requests().map_err(|_| QueueError::RingOverflow)? > 0;
                return Ok(done);
            }
            match self.ring.final_check_for_requests() {
                Ok(true) => continue,
                Ok(false) => return Ok(done),
                Err(_) => return Err(QueueError::RingOverflow),
            }
        }
    }

    /// Serves one request; its response.
    fn serve<G, D>(&mut self, grants: &mut G, disk: &D, raw: &BlkifRequest) -> BlkifResponse
    where
        G: GrantAccess<Page = P>,
        D: Disk + ?Sized,
    {
        let result = request::decode(raw, &self.cfg.offer).and_then(|req| match self.execute(grants, disk, &req) {
            Ok(()) => Ok(req),
            Err(why) => Err(request::error(&req, why)),
        });
        match result {
            Ok(req) => {
                self.stats.okay += 1;
                request::okay(&req)
            }
            Err(rejected) => {
                if rejected.status == BLKIF_RSP_EOPNOTSUPP {
                    self.stats.not_supported += 1;
                } else {
                    self.stats.errors += 1;
                }
                self.last_error = Some(rejected);
                rejected.response()
            }
        }
    }

    fn execute<G, D>(&mut self, grants: &mut G, disk: &D, req: &Request) -> Result<(), Invalid>
    where
        G: GrantAccess<Page = P>,
        D: Disk + ?Sized,
    {
        let capacity = disk.sectors();
        match &req.kind {
            Kind::Read { sector, segments } => {
                let segs = self.segments(grants, segments)?;
                let total = request::check_extent(*sector, &segs, capacity)?;
                let len = byte_len(total)?;
                self.buf.resize(len, 0);
                disk.read_at(sector * SECTOR_SIZE, &mut self.buf).map_err(|_| Invalid::Io)?;
                self.scatter_to_guest(grants, &segs)?;
                self.stats.bytes_read += len as u64;
                Ok(())
            }
            Kind::Write { sector, segments, flush } => {
                if self.cfg.read_only {
                    return Err(Invalid::ReadOnly);
                }
                let segs = self.segments(grants, segments)?;
                let total = request::check_extent(*sector, &segs, capacity)?;
                let len = byte_len(total)?;
                self.buf.resize(len, 0);
                self.gather_from_guest(grants, &segs)?;
                disk.write_at(sector * SECTOR_SIZE, &self.buf).map_err(|_| Invalid::Io)?;
                self.stats.bytes_written += len as u64;
                if *flush {
                    disk.flush().map_err(|_| Invalid::Io)?;
                }
                Ok(())
            }
            Kind::Flush => disk.flush().map_err(|_| Invalid::Io),
            Kind::Discard { sector, nr_sectors, .. } => {
                if self.cfg.read_only {
                    return Err(Invalid::ReadOnly);
                }
                request::check_range(*sector, *nr_sectors, capacity)?;
                if *nr_sectors == 0 {
                    return Ok(());
                }
                disk.discard(sector * SECTOR_SIZE, nr_sectors * SECTOR_SIZE).map_err(|_| Invalid::Io)
            }
        }
    }

    /// The segments of a data request, fetching an indirect list.
    fn segments<G: GrantAccess<Page = P>>(&mut self, grants: &mut G, s: &Segments) -> Result<Vec<Segment>, Invalid> {
        match s {
            Segments::Direct(segs) => Ok(segs.clone()),
            Segments::Indirect { nr, pages } => {
                let mut list = alloc::vec![0u8; pages.len() * PAGE_SIZE];
                let mut remaining = nr * 8;
                let mut spans = Vec::new();
                for (i, &gref) in pages.iter().enumerate() {
                    let len = remaining.min(PAGE_SIZE);
                    remaining -= len;
                    let at = i * PAGE_SIZE;
                    let dest = list.get_mut(at..at + len).ok_or(Invalid::SegmentCount)?;
                    match self.persistent_page(grants, gref) {
                        Some(page) => page.read(0, dest),
                        None => spans.push(CopySpan { gref, offset: 0, len: len as u16, at }),
                    }
                }
                if !spans.is_empty() {
                    grants.copy_from_guest(self.cfg.frontend, &spans, &mut list).map_err(|_| Invalid::Grant)?;
                }
                // The pages, back to back, are the list.
                request::indirect_segments(&list, *nr)
            }
        }
    }

    /// A persistent mapping of `gref`, if persistent grants are on and
    /// one is (or can be) mapped.
    fn persistent_page<G: GrantAccess<Page = P>>(&mut self, grants: &mut G, gref: u32) -> Option<&P> {
        if !self.cfg.persistent {
            return None;
        }
        self.persistent.get(grants, self.cfg.frontend, gref)
    }

    /// Copies the buffer out to the segments' pages.
    fn scatter_to_guest<G: GrantAccess<Page = P>>(&mut self, grants: &mut G, segs: &[Segment]) -> Result<(), Invalid> {
        let domid = self.cfg.frontend;
        let mut spans = Vec::new();
        let mut at = 0;
        for seg in segs {
            let len = usize::from(seg.len());
            let data = self.buf.get(at..at + len).ok_or(Invalid::SegmentCount)?;
            let page = if self.cfg.persistent { self.persistent.get(grants, domid, seg.gref) } else { None };
            match page {
                Some(page) => page.write(usize::from(seg.offset()), data),
                None => spans.push(CopySpan { gref: seg.gref, offset: seg.offset(), len: seg.len(), at }),
            }
            at += len;
        }
        if spans.is_empty() {
            return Ok(());
        }
        grants.copy_to_guest(domid, &spans, &self.buf).map_err(|_| Invalid::Grant)
    }

    /// Copies the segments' pages into the buffer.
    fn gather_from_guest<G: GrantAccess<Page = P>>(&mut self, grants: &mut G, segs: &[Segment]) -> Result<(), Invalid> {
        let domid = self.cfg.frontend;
        let mut spans = Vec::new();
        let mut at = 0;
        for seg in segs {
            let len = usize::from(seg.len());
            let page = if self.cfg.persistent { self.persistent.get(grants, domid, seg.gref) } else { None };
            match page {
                Some(page) => {
                    page.read(usize::from(seg.offset()), self.buf.get_mut(at..at + len).ok_or(Invalid::SegmentCount)?)
                }
                None => spans.push(CopySpan { gref: seg.gref, offset: seg.offset(), len: seg.len(), at }),
            }
            at += len;
        }
        if spans.is_empty() {
            return Ok(());
        }
        grants.copy_from_guest(domid, &spans, &mut self.buf).map_err(|_| Invalid::Grant)
    }
}

/// `sectors` in bytes, as a buffer length.
fn byte_len(sectors: u64) -> Result<usize, Invalid> {
    sectors.checked_mul(SECTOR_SIZE).and_then(|b| usize::try_from(b).ok()).ok_or(Invalid::OutOfRange)
}
