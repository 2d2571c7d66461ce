//! Requests as a backend must read them: decoding the ring entry
//! (`blkif_request`, or its discard and indirect forms), validating every
//! field, and the response that answers it.
//!
//! A request the backend cannot serve is a [`Rejected`] carrying the
//! response to send: `BLKIF_RSP_EOPNOTSUPP` for an operation that is not
//! offered, `BLKIF_RSP_ERROR` for a malformed one. The response echoes
//! the request's `id` and its operation — for INDIRECT the `indirect_op`
//! (Linux blkfront disables the disk on any other echo).
//!
//! Rules (L:`drivers/block/xen-blkback/blkback.c dispatch_rw_block_io`,
//! `xen_blkbk_parse_indirect`, `dispatch_discard_io`; X:`io/blkif.h`):
//! READ and WRITE carry 1–11 segments, FLUSH_DISKCACHE and WRITE_BARRIER
//! 0–11 (with data: a write, then the flush); INDIRECT's `indirect_op` is
//! READ or WRITE with 1..=the advertised maximum segments, listed in
//! `ceil(n/512)` (≤ 8) granted pages; a segment covers sectors
//! `first_sect..=last_sect` of its page (`last_sect ≤ 7`); the segments
//! are consecutive on disk from `sector_number`; nothing may reach past
//! the disk's last sector.

use alloc::vec::Vec;

use guest_abi::io::blkif::{
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifResponse, BLKIF_DISCARD_SECURE,
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::{SECTORS_PER_PAGE, SECTOR_SIZE, SEGMENTS_PER_INDIRECT_PAGE};

/// One segment: sectors `first_sect..=last_sect` of granted page `gref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The grant reference of the page.
    pub gref: u32,
    /// First sector within the page (0..=7).
    pub first_sect: u8,
    /// Last sector within the page (`first_sect..=7`).
    pub last_sect: u8,
}

impl Segment {
    /// Sectors it covers (validated segments only).
    pub fn sectors(&self) -> u64 {
        u64::from(self.last_sect.saturating_sub(self.first_sect)) + 1
    }

    /// Its byte offset within the page.
    pub fn offset(&self) -> u16 {
        u16::from(self.first_sect) * SECTOR_SIZE as u16
    }

    /// Its length in bytes.
    pub fn len(&self) -> u16 {
        self.sectors() as u16 * SECTOR_SIZE as u16
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn check(&self) -> Result<(), Invalid> {
        if self.last_sect >= SECTORS_PER_PAGE || self.first_sect > self.last_sect {
            return Err(Invalid::Segment);
        }
        Ok(())
    }
}

/// Where a data request's segments are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segments {
    /// In the request itself (1..=11).
    Direct(Vec<Segment>),
    /// In `nr` descriptors on the granted pages `pages` (INDIRECT).
    Indirect {
        /// How many segments.
        nr: usize,
        /// The grant references of the pages listing them.
        pages: Vec<u32>,
    },
}

/// What a decoded request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Read into the segments.
    Read {
        /// The first sector.
        sector: u64,
        /// The data pages.
        segments: Segments,
    },
    /// Write from the segments; with `flush`, the data and every write
    /// acknowledged before must be on stable storage before the response
    /// (FLUSH_DISKCACHE or WRITE_BARRIER with data).
    Write {
        /// The first sector.
        sector: u64,
        /// The data pages.
        segments: Segments,
        /// Flush after writing.
        flush: bool,
    },
    /// FLUSH_DISKCACHE or WRITE_BARRIER without data.
    Flush,
    /// Forget `nr_sectors` sectors from `sector` (DISCARD).
    Discard {
        /// The first sector.
        sector: u64,
        /// How many.
        nr_sectors: u64,
        /// `BLKIF_DISCARD_SECURE`, honoured only if offered.
        secure: bool,
    },
}

/// A decoded, field-checked request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The frontend's `id`, echoed.
    pub id: u64,
    /// The operation to echo in the response.
    pub echo: u8,
    /// What it asks for.
    pub kind: Kind,
}

/// Why a request is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A segment count outside what the operation allows.
    SegmentCount,
    /// A segment with `last_sect > 7` or `first_sect > last_sect`.
    Segment,
    /// INDIRECT with an `indirect_op` other than READ or WRITE.
    IndirectOp,
    /// The sectors reach past the end of the disk (or overflow).
    OutOfRange,
    /// A write or discard to a read-only disk.
    ReadOnly,
    /// A grant could not be mapped or copied.
    Grant,
    /// The disk failed the I/O.
    Io,
}

/// A request answered without being served: its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The `id` to echo.
    pub id: u64,
    /// The operation to echo.
    pub echo: u8,
    /// `BLKIF_RSP_ERROR` or `BLKIF_RSP_EOPNOTSUPP`.
    pub status: i16,
    /// Why, for the logs (`None`: not supported).
    pub why: Option<Invalid>,
}

impl Rejected {
    /// The response.
    pub fn response(&self) -> BlkifResponse {
        response(self.id, self.echo, self.status)
    }
}

/// What the backend offers, which decides what is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// `feature-max-indirect-segments` (0: INDIRECT not offered).
    pub max_indirect_segments: u32,
    /// `feature-flush-cache`.
    pub flush: bool,
    /// `feature-discard`.
    pub discard: bool,
    /// `discard-secure`.
    pub discard_secure: bool,
}

/// A response.
pub fn response(id: u64, operation: u8, status: i16) -> BlkifResponse {
    let mut r = BlkifResponse::new_zeroed();
    r.id = id;
    r.operation = operation;
    r.status = status;
    r
}

/// An `OKAY` response to `req`.
pub fn okay(req: &Request) -> BlkifResponse {
    response(req.id, req.echo, BLKIF_RSP_OKAY)
}

/// An `ERROR` response to `req`, for `why`.
pub fn error(req: &Request, why: Invalid) -> Rejected {
    Rejected { id: req.id, echo: req.echo, status: BLKIF_RSP_ERROR, why: Some(why) }
}

fn direct_segments(raw: &BlkifRequest, range: core::ops::RangeInclusive<u32>) -> Result<Vec<Segment>, Invalid> {
    let n = u32::from(raw.nr_segments);
    if !range.contains(&n) {
        return Err(Invalid::SegmentCount);
    }
    raw.seg
        .iter()
        .take(n as usize)
        .map(|s| {
            let seg = Segment { gref: s.gref, first_sect: s.first_sect, last_sect: s.last_sect };
            seg.check().map(|()| seg)
        })
        .collect()
}

/// Decodes and checks a request's fields (all but the indirect segment
/// lists, which need the pages: [`indirect_segments`]).
pub fn decode(raw: &BlkifRequest, offer: &Offer) -> Result<Request, Rejected> {
    let op = u32::from(raw.operation);
    let id = raw.id;
    let reject = |echo: u8, status: i16, why: Option<Invalid>| Rejected { id, echo, status, why };
    let invalid = |echo: u8| move |why: Invalid| reject(echo, BLKIF_RSP_ERROR, Some(why));
    let max = BLKIF_MAX_SEGMENTS_PER_REQUEST;
    let kind = match op {
        BLKIF_OP_READ | BLKIF_OP_WRITE => {
            let segments = Segments::Direct(direct_segments(raw, 1..=max).map_err(invalid(raw.operation))?);
            let sector = raw.sector_number;
            if op == BLKIF_OP_READ {
                Kind::Read { sector, segments }
            } else {
                Kind::Write { sector, segments, flush: false }
            }
        }
        BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => {
            if !offer.flush {
                return Err(reject(raw.operation, BLKIF_RSP_EOPNOTSUPP, None));
            }
            let segs = direct_segments(raw, 0..=max).map_err(invalid(raw.operation))?;
            if segs.is_empty() {
                Kind::Flush
            } else {
                Kind::Write { sector: raw.sector_number, segments: Segments::Direct(segs), flush: true }
            }
        }
        BLKIF_OP_DISCARD => {
            if !offer.discard {
                return Err(reject(raw.operation, BLKIF_RSP_EOPNOTSUPP, None));
            }
            let d = BlkifRequestDiscard::read_from_prefix(raw.as_bytes()).map(|(d, _)| d).map_err(|_| {
                reject(raw.operation, BLKIF_RSP_ERROR, Some(Invalid::SegmentCount))
                // unreachable: 32 < 112 bytes
            })?;
            let secure = offer.discard_secure && u32::from(d.flag) & BLKIF_DISCARD_SECURE != 0;
            Kind::Discard { sector: d.sector_number, nr_sectors: d.nr_sectors, secure }
        }
        BLKIF_OP_INDIRECT => {
            let ind = BlkifRequestIndirect::read_from_prefix(raw.as_bytes())
                .map(|(r, _)| r)
                .map_err(|_| reject(raw.operation, BLKIF_RSP_ERROR, Some(Invalid::SegmentCount)))?;
            let inner = ind.indirect_op;
            if offer.max_indirect_segments == 0 {
                return Err(reject(inner, BLKIF_RSP_EOPNOTSUPP, None));
            }
            let inner_op = u32::from(inner);
            if inner_op != BLKIF_OP_READ && inner_op != BLKIF_OP_WRITE {
                return Err(reject(inner, BLKIF_RSP_ERROR, Some(Invalid::IndirectOp)));
            }
            let nr = usize::from(ind.nr_segments);
            if nr == 0 || nr > offer.max_indirect_segments as usize {
                return Err(reject(inner, BLKIF_RSP_ERROR, Some(Invalid::SegmentCount)));
            }
            let pages = nr.div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
            if pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST as usize {
                return Err(reject(inner, BLKIF_RSP_ERROR, Some(Invalid::SegmentCount)));
            }
            let segments = Segments::Indirect { nr, pages: ind.indirect_grefs.iter().take(pages).copied().collect() };
            let sector = ind.sector_number;
            return Ok(Request {
                id: ind.id,
                echo: inner,
                kind: if inner_op == BLKIF_OP_READ {
                    Kind::Read { sector, segments }
                } else {
                    Kind::Write { sector, segments, flush: false }
                },
            });
        }
        _ => return Err(reject(raw.operation, BLKIF_RSP_EOPNOTSUPP, None)),
    };
    Ok(Request { id, echo: raw.operation, kind })
}

/// The segments listed in an indirect request's pages, `nr` of them from
/// the start of `list` (the pages' bytes, concatenated), each checked.
pub fn indirect_segments(list: &[u8], nr: usize) -> Result<Vec<Segment>, Invalid> {
    let bytes = list.get(..nr.checked_mul(8).ok_or(Invalid::SegmentCount)?).ok_or(Invalid::SegmentCount)?;
    bytes
        .chunks_exact(8)
        .map(|c| {
            let seg = Segment { gref: u32::from_le_bytes([c[0], c[1], c[2], c[3]]), first_sect: c[4], last_sect: c[5] };
            seg.check().map(|()| seg)
        })
        .collect()
}

/// The sectors the segments cover together, if they fit on a disk of
/// `capacity` sectors from `sector`.
pub fn check_extent(sector: u64, segments: &[Segment], capacity: u64) -> Result<u64, Invalid> {
    let total: u64 = segments.iter().map(Segment::sectors).sum();
    check_range(sector, total, capacity)?;
    Ok(total)
}

/// Whether `nr_sectors` from `sector` lie on a disk of `capacity` sectors.
pub fn check_range(sector: u64, nr_sectors: u64, capacity: u64) -> Result<(), Invalid> {
    match sector.checked_add(nr_sectors) {
        Some(end) if end <= capacity && end.checked_mul(SECTOR_SIZE).is_some() => Ok(()),
        _ => Err(Invalid::OutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_abi::io::blkif::BlkifRequestSegment;

    const OFFER: Offer = Offer { max_indirect_segments: 256, flush: true, discard: true, discard_secure: false };

    fn rw(op: u32, segs: &[(u32, u8, u8)]) -> BlkifRequest {
        let mut r = BlkifRequest::new_zeroed();
        r.operation = op as u8;
        r.nr_segments = segs.len() as u8;
        r.id = 0xfeed;
        r.sector_number = 8;
        for (slot, &(gref, f, l)) in r.seg.iter_mut().zip(segs) {
            *slot = BlkifRequestSegment { gref, first_sect: f, last_sect: l, _pad0: [0; 2] };
        }
        r
    }

    fn status(r: Result<Request, Rejected>) -> Option<(u8, i16)> {
        r.err().map(|e| (e.echo, e.status))
    }

    #[test]
    fn reads_and_writes_carry_one_to_eleven_good_segments() {
        let r = decode(&rw(BLKIF_OP_READ, &[(9, 0, 7), (10, 2, 3)]), &OFFER);
        let Ok(Request { id: 0xfeed, echo: 0, kind: Kind::Read { sector: 8, segments: Segments::Direct(s) } }) = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(s.iter().map(Segment::sectors).sum::<u64>(), 10);
        assert_eq!((s[1].offset(), s[1].len()), (1024, 1024));
        assert_eq!(status(decode(&rw(BLKIF_OP_WRITE, &[]), &OFFER)), Some((1, BLKIF_RSP_ERROR)));
        let mut twelve = rw(BLKIF_OP_WRITE, &[(1, 0, 7)]);
        twelve.nr_segments = 12;
        assert_eq!(status(decode(&twelve, &OFFER)), Some((1, BLKIF_RSP_ERROR)));
        assert_eq!(status(decode(&rw(BLKIF_OP_READ, &[(1, 0, 8)]), &OFFER)), Some((0, BLKIF_RSP_ERROR)));
        assert_eq!(status(decode(&rw(BLKIF_OP_READ, &[(1, 5, 4)]), &OFFER)), Some((0, BLKIF_RSP_ERROR)));
    }

    #[test]
    fn flushes_may_carry_data_and_need_the_feature() {
        assert_eq!(decode(&rw(BLKIF_OP_FLUSH_DISKCACHE, &[]), &OFFER).map(|r| r.kind), Ok(Kind::Flush));
        let r = decode(&rw(BLKIF_OP_WRITE_BARRIER, &[(3, 0, 0)]), &OFFER);
        assert!(matches!(r, Ok(Request { echo: 2, kind: Kind::Write { flush: true, .. }, .. })), "{r:?}");
        let no_flush = Offer { flush: false, ..OFFER };
        assert_eq!(status(decode(&rw(BLKIF_OP_FLUSH_DISKCACHE, &[]), &no_flush)), Some((3, BLKIF_RSP_EOPNOTSUPP)));
    }

    #[test]
    fn unknown_operations_are_not_supported_and_echoed() {
        assert_eq!(status(decode(&rw(4, &[]), &OFFER)), Some((4, BLKIF_RSP_EOPNOTSUPP)));
        assert_eq!(status(decode(&rw(200, &[]), &OFFER)), Some((200, BLKIF_RSP_EOPNOTSUPP)));
    }

    fn indirect(op: u8, nr: u16) -> BlkifRequest {
        let mut ind = BlkifRequestIndirect::new_zeroed();
        ind.operation = BLKIF_OP_INDIRECT as u8;
        ind.indirect_op = op;
        ind.nr_segments = nr;
        ind.id = 77;
        ind.sector_number = 100;
        ind.indirect_grefs = [20, 21, 22, 23, 24, 25, 26, 27];
        let mut raw = BlkifRequest::new_zeroed();
        raw.as_mut_bytes()[..64].copy_from_slice(ind.as_bytes());
        raw
    }

    #[test]
    fn indirect_requests_echo_their_inner_operation() {
        let r = decode(&indirect(1, 600), &OFFER);
        assert_eq!(status(r), Some((1, BLKIF_RSP_ERROR)), "more than offered");
        let r = decode(&indirect(0, 200), &OFFER).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.echo, 0);
        assert_eq!(
            r.kind,
            Kind::Read { sector: 100, segments: Segments::Indirect { nr: 200, pages: alloc::vec![20] } }
        );
        let big = Offer { max_indirect_segments: 4096, ..OFFER };
        let r = decode(&indirect(1, 1025), &big).map(|r| r.kind);
        assert!(
            matches!(r, Ok(Kind::Write { segments: Segments::Indirect { nr: 1025, ref pages }, .. }) if pages.len() == 3)
        );
        assert_eq!(status(decode(&indirect(1, 4097), &big)), Some((1, BLKIF_RSP_ERROR)), "more than 8 pages");
        assert_eq!(status(decode(&indirect(3, 8), &OFFER)), Some((3, BLKIF_RSP_ERROR)), "flush is never indirect");
        assert_eq!(status(decode(&indirect(0, 0), &OFFER)), Some((0, BLKIF_RSP_ERROR)));
        let none = Offer { max_indirect_segments: 0, ..OFFER };
        assert_eq!(status(decode(&indirect(0, 8), &none)), Some((0, BLKIF_RSP_EOPNOTSUPP)));
    }

    #[test]
    fn indirect_segment_lists_are_checked() {
        let mut list = alloc::vec![0u8; 4096];
        list[..8].copy_from_slice(&[5, 0, 0, 0, 0, 7, 0, 0]);
        list[8..16].copy_from_slice(&[6, 0, 0, 0, 3, 3, 0, 0]);
        let segs = indirect_segments(&list, 2).unwrap_or_default();
        assert_eq!(
            segs,
            [Segment { gref: 5, first_sect: 0, last_sect: 7 }, Segment { gref: 6, first_sect: 3, last_sect: 3 }]
        );
        list[13] = 9;
        assert_eq!(indirect_segments(&list, 2), Err(Invalid::Segment));
        assert_eq!(indirect_segments(&list, 513), Err(Invalid::SegmentCount), "longer than the pages");
    }

    #[test]
    fn discards_decode_their_own_layout() {
        let mut d = BlkifRequestDiscard::new_zeroed();
        d.operation = BLKIF_OP_DISCARD as u8;
        d.flag = 1;
        d.id = 5;
        d.sector_number = 64;
        d.nr_sectors = 1 << 40;
        let mut raw = BlkifRequest::new_zeroed();
        raw.as_mut_bytes()[..32].copy_from_slice(d.as_bytes());
        let r = decode(&raw, &OFFER).map(|r| r.kind);
        assert_eq!(r, Ok(Kind::Discard { sector: 64, nr_sectors: 1 << 40, secure: false }));
        let no = Offer { discard: false, ..OFFER };
        assert_eq!(status(decode(&raw, &no)), Some((5, BLKIF_RSP_EOPNOTSUPP)));
    }

    #[test]
    fn extents_stay_on_the_disk() {
        let seg = Segment { gref: 1, first_sect: 0, last_sect: 7 };
        assert_eq!(check_extent(0, &[seg, seg], 16), Ok(16));
        assert_eq!(check_extent(1, &[seg, seg], 16), Err(Invalid::OutOfRange));
        assert_eq!(check_range(u64::MAX - 3, 8, u64::MAX), Err(Invalid::OutOfRange));
        assert_eq!(check_range(u64::MAX / 512, 1, u64::MAX), Err(Invalid::OutOfRange), "byte offset overflows");
        assert_eq!(check_range(16, 0, 16), Ok(()));
    }
}
