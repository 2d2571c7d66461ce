//! [`FrontQueue`]: one ring of a connected frontend — submission,
//! completion, and the checks on what the backend answers.
//!
//! A request's `id` is its slot (`0..RING_SIZE`), free until its response
//! arrives. Data is staged in pool pages (see the module above): a write
//! is copied in at submit, a read copied out at completion. [`Io`]s are
//! queued with [`FrontQueue::submit`] and published together by
//! [`FrontQueue::kick`], which notifies only when `req_event` asks
//! (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`). [`FrontQueue::complete`]
//! takes responses until none is left, re-arming `rsp_event`
//! (`RING_FINAL_CHECK_FOR_RESPONSES`).
//!
//! The backend is not trusted either: a response whose `id` is not in
//! flight, whose `operation` is not the request's (the `indirect_op` for
//! INDIRECT), or a `rsp_prod` claiming more than the ring holds, breaks
//! the queue ([`FrontError::Protocol`]) as it makes Linux's blkfront
//! disable the disk.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::io::blkif::{
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
};
use guest_abi::io::ring::{FrontRing, SharedRing};
use zerocopy::{FromZeros, IntoBytes};

use super::handshake::FrontError;
use super::platform::{FrontendPlatform, SharedPage};
use crate::blkif::{PAGE_SIZE, SECTOR_SIZE, SEGMENTS_PER_INDIRECT_PAGE};

/// One I/O to submit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io<'d> {
    /// Read `sectors` 512-byte sectors from `sector`.
    Read {
        /// The first sector.
        sector: u64,
        /// How many.
        sectors: u32,
    },
    /// Write `data` (whole sectors) at `sector`; with `fua`, durable
    /// before completion (sent as FLUSH_DISKCACHE with data, as blkfront).
    Write {
        /// The first sector.
        sector: u64,
        /// The bytes.
        data: &'d [u8],
        /// Force unit access.
        fua: bool,
    },
    /// Make every completed write durable.
    Flush,
    /// Discard `sectors` sectors from `sector`.
    Discard {
        /// The first sector.
        sector: u64,
        /// How many.
        sectors: u64,
    },
}

/// Why an [`Io`] was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// No free slot or not enough free pool pages: complete some first.
    Busy,
    /// More data than one request can carry ([`FrontQueue::max_sectors`]).
    TooLarge,
    /// Empty, or not a whole number of sectors.
    Unaligned,
    /// The backend does not offer it (flush, discard).
    NotSupported,
    /// The queue broke (see [`FrontError`]).
    Broken,
}

/// A finished request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The caller's tag from [`FrontQueue::submit`].
    pub tag: u64,
    /// `BLKIF_RSP_OKAY`, `_ERROR` or `_EOPNOTSUPP`.
    pub status: i16,
    /// For a successful read, the data.
    pub data: Vec<u8>,
}

/// A pool page and its grant.
struct PoolPage<P> {
    page: P,
    gref: u32,
}

/// A request in flight.
#[derive(Clone, Debug)]
struct InFlight {
    tag: u64,
    /// The operation the response must echo.
    echo: u8,
    /// Pool pages holding its data, in order.
    data: Vec<usize>,
    /// Pool pages holding its indirect segment list.
    indirect: Vec<usize>,
    /// For a read, its length in bytes.
    read_len: usize,
}

/// What the backend offers, as this queue uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Segments per request (11, or the indirect maximum).
    pub max_segments: u32,
    /// FLUSH_DISKCACHE is offered.
    pub flush: bool,
    /// DISCARD is offered.
    pub discard: bool,
}

/// One ring of a frontend.
pub struct FrontQueue<P> {
    ring: FrontRing<'static, BlkifRequest, BlkifResponse>,
    ring_frames: Vec<u64>,
    ring_grefs: Vec<u32>,
    port: u32,
    pool: Vec<PoolPage<P>>,
    free_pages: Vec<usize>,
    slots: Vec<Option<InFlight>>,
    limits: QueueLimits,
    handle: u16,
    broken: Option<String>,
}

impl<P: SharedPage> FrontQueue<P> {
    /// A queue over a fresh ring (initialised here) whose pages are
    /// granted as `ring_grefs`, with `pool` (pages and their grants) for
    /// data, signalling on `port`. `handle` is the vbd's devid, copied
    /// into every request as blkfront does.
    pub fn new(
        shared: SharedRing<'static>,
        ring_frames: Vec<u64>,
        ring_grefs: Vec<u32>,
        port: u32,
        pool: Vec<(P, u32)>,
        handle: u16,
    ) -> Self {
        let ring = FrontRing::init(shared);
        let size = ring.size() as usize;
        let pool: Vec<PoolPage<P>> = pool.into_iter().map(|(page, gref)| PoolPage { page, gref }).collect();
        FrontQueue {
            ring,
            ring_frames,
            ring_grefs,
            port,
            free_pages: (0..pool.len()).rev().collect(),
            pool,
            slots: alloc::vec![None; size],
            limits: QueueLimits { max_segments: BLKIF_MAX_SEGMENTS_PER_REQUEST, flush: false, discard: false },
            handle,
            broken: None,
        }
    }

    /// Applies what the backend offers (at Connected).
    pub fn set_limits(&mut self, limits: QueueLimits) {
        self.limits = limits;
    }

    /// The event channel.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The ring's grant references.
    pub fn ring_grefs(&self) -> &[u32] {
        &self.ring_grefs
    }

    /// The ring's frames.
    pub fn ring_frames(&self) -> &[u64] {
        &self.ring_frames
    }

    /// Entries in the ring.
    pub fn ring_size(&self) -> u32 {
        self.ring.size()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// The most sectors one request can carry.
    pub fn max_sectors(&self) -> u32 {
        self.limits.max_segments.min(self.pool.len() as u32) * (PAGE_SIZE as u32 / SECTOR_SIZE as u32)
    }

    /// Why the queue broke, if it did.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Grant references of every page the queue owns (ring and pool),
    /// for ending them at close.
    pub fn grefs(&self) -> impl Iterator<Item = u32> + '_ {
        self.ring_grefs.iter().copied().chain(self.pool.iter().map(|p| p.gref))
    }

    fn free_slot(&self) -> Option<usize> {
        if self.ring.is_full() {
            return None;
        }
        self.slots.iter().position(Option::is_none)
    }

    fn take_pages(&mut self, n: usize) -> Option<Vec<usize>> {
        if self.free_pages.len() < n {
            return None;
        }
        let at = self.free_pages.len() - n;
        Some(self.free_pages.split_off(at))
    }

    /// Queues `io` (published by the next [`FrontQueue::kick`]).
    pub fn submit(&mut self, tag: u64, io: Io<'_>) -> Result<(), SubmitError> {
        if self.broken.is_some() {
            return Err(SubmitError::Broken);
        }
        let slot = self.free_slot().ok_or(SubmitError::Busy)?;
        let id = slot as u64;
        let mut req = BlkifRequest::new_zeroed();
        req.handle = self.handle;
        req.id = id;
        let flight = match io {
            Io::Flush => {
                if !self.limits.flush {
                    return Err(SubmitError::NotSupported);
                }
                req.operation = BLKIF_OP_FLUSH_DISKCACHE as u8;
                InFlight { tag, echo: req.operation, data: Vec::new(), indirect: Vec::new(), read_len: 0 }
            }
            Io::Discard { sector, sectors } => {
                if !self.limits.discard {
                    return Err(SubmitError::NotSupported);
                }
                let mut d = BlkifRequestDiscard::new_zeroed();
                d.operation = BLKIF_OP_DISCARD as u8;
                d.handle = self.handle;
                d.id = id;
                d.sector_number = sector;
                d.nr_sectors = sectors;
                req.as_mut_bytes()[..core::mem::size_of::<BlkifRequestDiscard>()].copy_from_slice(d.as_bytes());
                InFlight { tag, echo: d.operation, data: Vec::new(), indirect: Vec::new(), read_len: 0 }
            }
            Io::Read { sector, sectors } => {
                let len = (sectors as usize).checked_mul(SECTOR_SIZE as usize).ok_or(SubmitError::TooLarge)?;
                self.data_request(&mut req, BLKIF_OP_READ as u8, sector, len, None, tag)?
            }
            Io::Write { sector, data, fua } => {
                let op = if fua { BLKIF_OP_FLUSH_DISKCACHE } else { BLKIF_OP_WRITE } as u8;
                if fua && !self.limits.flush {
                    return Err(SubmitError::NotSupported);
                }
                self.data_request(&mut req, op, sector, data.len(), Some(data), tag)?
            }
        };
        // Cannot fail: free_slot checked there is room.
        let _ = self.ring.queue_request(&req);
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(flight);
        }
        Ok(())
    }

    /// Fills `req` for a read or write of `len` bytes (staging `data`),
    /// direct or INDIRECT.
    fn data_request(
        &mut self,
        req: &mut BlkifRequest,
        op: u8,
        sector: u64,
        len: usize,
        data: Option<&[u8]>,
        tag: u64,
    ) -> Result<InFlight, SubmitError> {
        if len == 0 || !len.is_multiple_of(SECTOR_SIZE as usize) {
            return Err(SubmitError::Unaligned);
        }
        let nsegs = len.div_ceil(PAGE_SIZE);
        let direct = nsegs <= BLKIF_MAX_SEGMENTS_PER_REQUEST as usize;
        // FUA writes (FLUSH_DISKCACHE with data) are never INDIRECT.
        if nsegs > self.limits.max_segments as usize || (!direct && u32::from(op) == BLKIF_OP_FLUSH_DISKCACHE) {
            return Err(SubmitError::TooLarge);
        }
        let nind = if direct { 0 } else { nsegs.div_ceil(SEGMENTS_PER_INDIRECT_PAGE) };
        if nind > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST as usize || nsegs + nind > self.pool.len() {
            return Err(SubmitError::TooLarge);
        }
        let pages = self.take_pages(nsegs + nind).ok_or(SubmitError::Busy)?;
        let (data_pages, indirect) = pages.split_at(nsegs);
        let mut segs = Vec::with_capacity(nsegs);
        for (k, &p) in data_pages.iter().enumerate() {
            let start = k * PAGE_SIZE;
            let n = (len - start).min(PAGE_SIZE);
            let Some(pp) = self.pool.get(p) else { continue };
            if let Some(bytes) = data.and_then(|d| d.get(start..start + n)) {
                pp.page.write(0, bytes);
            }
            let last = (n / SECTOR_SIZE as usize - 1) as u8;
            segs.push(BlkifRequestSegment { gref: pp.gref, first_sect: 0, last_sect: last, _pad0: [0; 2] });
        }
        if direct {
            req.operation = op;
            req.nr_segments = nsegs as u8;
            req.sector_number = sector;
            for (slot, seg) in req.seg.iter_mut().zip(&segs) {
                *slot = *seg;
            }
        } else {
            let mut ind = BlkifRequestIndirect::new_zeroed();
            ind.operation = BLKIF_OP_INDIRECT as u8;
            ind.indirect_op = op;
            ind.nr_segments = nsegs as u16;
            ind.id = req.id;
            ind.sector_number = sector;
            ind.handle = self.handle;
            for (i, (chunk, &p)) in segs.chunks(SEGMENTS_PER_INDIRECT_PAGE).zip(indirect).enumerate() {
                let Some(pp) = self.pool.get(p) else { continue };
                let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.as_bytes().iter().copied()).collect();
                pp.page.write(0, &bytes);
                if let Some(g) = ind.indirect_grefs.get_mut(i) {
                    *g = pp.gref;
                }
            }
            *req = BlkifRequest::new_zeroed();
            req.as_mut_bytes()[..core::mem::size_of::<BlkifRequestIndirect>()].copy_from_slice(ind.as_bytes());
        }
        let read_len = if data.is_none() { len } else { 0 };
        Ok(InFlight { tag, echo: op, data: data_pages.to_vec(), indirect: indirect.to_vec(), read_len })
    }

    /// Queues a request exactly as given (its `id` names a slot, which is
    /// marked in flight if free), for tests that send what a correct
    /// frontend never would. The response must echo `echo`.
    pub fn submit_raw(&mut self, tag: u64, req: &BlkifRequest, echo: u8) -> Result<(), SubmitError> {
        if self.ring.is_full() {
            return Err(SubmitError::Busy);
        }
        if let Some(slot @ None) = usize::try_from(req.id).ok().and_then(|i| self.slots.get_mut(i)) {
            *slot = Some(InFlight { tag, echo, data: Vec::new(), indirect: Vec::new(), read_len: 0 });
        }
        self.ring.queue_request(req).map_err(|_| SubmitError::Busy)
    }

    /// The grant of pool page `i` (for tests that build raw requests).
    pub fn pool_gref(&self, i: usize) -> Option<u32> {
        self.pool.get(i).map(|p| p.gref)
    }

    /// Publishes queued requests; notifies the backend if it asked.
    pub fn kick<F: FrontendPlatform<Page = P>>(&mut self, platform: &mut F) -> bool {
        let notify = self.ring.push_requests();
        if notify {
            platform.notify(self.port);
        }
        notify
    }

    /// Takes every response (re-arming `rsp_event` at the end) into
    /// `out`; how many.
    pub fn complete(&mut self, out: &mut Vec<Completion>) -> Result<usize, FrontError> {
        if let Some(why) = &self.broken {
            return Err(FrontError::Protocol(why.clone()));
        }
        let mut n = 0;
        loop {
            while let Some(rsp) = self.ring.take_response().map_err(|_| self.fail("rsp_prod overflows the ring"))? {
                out.push(self.finish(&rsp)?);
                n += 1;
            }
            match self.ring.final_check_for_responses() {
                Ok(true) => continue,
                Ok(false) => return Ok(n),
                Err(_) => return Err(self.fail("rsp_prod overflows the ring")),
            }
        }
    }

    fn fail(&mut self, why: &str) -> FrontError {
        self.broken = Some(String::from(why));
        FrontError::Protocol(String::from(why))
    }

    /// Checks one response against its request and releases the request.
    fn finish(&mut self, rsp: &BlkifResponse) -> Result<Completion, FrontError> {
        let Some(slot) = usize::try_from(rsp.id).ok().and_then(|i| self.slots.get_mut(i)) else {
            return Err(self.fail("response id out of range"));
        };
        let Some(flight) = slot.take() else {
            return Err(self.fail("response to a request not in flight"));
        };
        if rsp.operation != flight.echo {
            return Err(self.fail("response operation differs from the request's"));
        }
        let mut data = Vec::new();
        if flight.read_len > 0 && rsp.status == guest_abi::io::blkif::BLKIF_RSP_OKAY {
            data.resize(flight.read_len, 0);
            for (k, &p) in flight.data.iter().enumerate() {
                let start = k * PAGE_SIZE;
                let n = (flight.read_len - start).min(PAGE_SIZE);
                if let (Some(pp), Some(dest)) = (self.pool.get(p), data.get_mut(start..start + n)) {
                    pp.page.read(0, dest);
                }
            }
        }
        self.free_pages.extend(flight.data.iter().chain(&flight.indirect));
        Ok(Completion { tag: flight.tag, status: rsp.status, data })
    }

    /// Gives the queue's pages back: pool pages and the ring's frames.
    pub(super) fn into_parts(self) -> (Vec<u64>, Vec<P>) {
        (self.ring_frames, self.pool.into_iter().map(|p| p.page).collect())
    }
}
