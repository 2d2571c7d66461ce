//! [`GntdevGrants`]: the blkif engine's [`GrantAccess`] through
//! `/dev/xen/gntdev` — `IOCTL_GNTDEV_GRANT_COPY` for copies (nothing stays
//! mapped when it returns) and `IOCTL_GNTDEV_MAP_GRANT_REF` + `mmap` for
//! persistent grants, unmapped when their [`Mapping`] drops.

use std::sync::Arc;

use pv_drivers::blkif::back::{CopySpan, GrantAccess, GrantError, MappedPage};
use xendev::{CopyDest, CopySource, Gntdev, GrantAddr, GrantCopySegment, Mapping};

/// One queue's access to its frontend's grants (the device is shared).
pub struct GntdevGrants {
    dev: Arc<Gntdev>,
}

impl GntdevGrants {
    /// Uses `dev`.
    pub fn new(dev: Arc<Gntdev>) -> Self {
        GntdevGrants { dev }
    }
}

/// A persistently mapped grant.
pub struct MappedGrant(Mapping);

impl MappedPage for MappedGrant {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.0.read_bytes(offset, buf);
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.0.write_bytes(offset, data);
    }
}

fn grant_error(e: std::io::Error) -> GrantError {
    GrantError(e.to_string())
}

/// Splits `buf` into the disjoint pieces `spans` name (in increasing
/// order of `at`, as the engine builds them).
fn pieces<'b>(spans: &[CopySpan], mut buf: &'b mut [u8]) -> Result<Vec<&'b mut [u8]>, GrantError> {
    let mut out = Vec::with_capacity(spans.len());
    let mut base = 0usize;
    for s in spans {
        let skip = s.at.checked_sub(base).ok_or_else(|| GrantError("copy spans out of order".into()))?;
        let len = usize::from(s.len);
        if skip.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(GrantError("copy span outside the buffer".into()));
        }
        let (_, rest) = buf.split_at_mut(skip);
        let (piece, rest) = rest.split_at_mut(len);
        out.push(piece);
        buf = rest;
        base = s.at + len;
    }
    Ok(out)
}

impl GrantAccess for GntdevGrants {
    type Page = MappedGrant;

    fn map(&mut self, domid: u16, gref: u32, writable: bool) -> Result<MappedGrant, GrantError> {
        self.dev.map_grant(domid, gref, writable).map(MappedGrant).map_err(grant_error)
    }

    fn copy_from_guest(&mut self, domid: u16, spans: &[CopySpan], buf: &mut [u8]) -> Result<(), GrantError> {
        let mut segs: Vec<GrantCopySegment<'_>> = spans
            .iter()
            .zip(pieces(spans, buf)?)
            .map(|(s, piece)| {
                let source = CopySource::Grant(GrantAddr { domid, gref: s.gref, offset: s.offset });
                GrantCopySegment::new(source, CopyDest::Local(piece), s.len)
            })
            .collect();
        self.dev.grant_copy(&mut segs).map_err(grant_error)
    }

    fn copy_to_guest(&mut self, domid: u16, spans: &[CopySpan], buf: &[u8]) -> Result<(), GrantError> {
        let mut segs = Vec::with_capacity(spans.len());
        for s in spans {
            let piece = buf.get(s.at..s.at + usize::from(s.len)).ok_or_else(|| GrantError("span outside".into()))?;
            let dest = CopyDest::Grant(GrantAddr { domid, gref: s.gref, offset: s.offset });
            segs.push(GrantCopySegment::new(CopySource::Local(piece), dest, s.len));
        }
        self.dev.grant_copy(&mut segs).map_err(grant_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_split_into_the_spans_pieces() {
        let span = |at, len| CopySpan { gref: 1, offset: 0, len, at };
        let mut buf = [0u8; 100];
        let p = pieces(&[span(0, 10), span(10, 20), span(50, 50)], &mut buf).unwrap_or_default();
        assert_eq!(p.iter().map(|s| s.len()).collect::<Vec<_>>(), [10, 20, 50]);
        let mut buf = [0u8; 100];
        assert!(pieces(&[span(10, 10), span(5, 10)], &mut buf).is_err(), "overlap");
        let mut buf = [0u8; 100];
        assert!(pieces(&[span(90, 20)], &mut buf).is_err(), "past the end");
    }
}
