//! [`GntdevCopy`]: netif's [`GrantCopy`] through `/dev/xen/gntdev`'s
//! `IOCTL_GNTDEV_GRANT_COPY` — one ioctl per batch, a `GNTST_*` status
//! per span, nothing left mapped when it returns.

use std::sync::Arc;

use pv_drivers::netif::back::grants::CopySpan;
use pv_drivers::netif::back::GrantCopy;
use xendev::{CopyDest, CopySource, Gntdev, GrantAddr, GrantCopySegment};

/// One queue's grant copies (the device is shared by the queues).
pub struct GntdevCopy {
    dev: Arc<Gntdev>,
    /// Copy ioctls that failed as a whole (every span then fails).
    pub failed_calls: u64,
}

impl GntdevCopy {
    /// Uses `dev`.
    pub fn new(dev: Arc<Gntdev>) -> Self {
        GntdevCopy { dev, failed_calls: 0 }
    }

    /// Runs `segs`, setting `ok[i]` from segment `i`'s status. If the
    /// ioctl itself failed no status was written: all are failures.
    fn run(&mut self, segs: &mut [GrantCopySegment<'_>], ok: &mut [bool]) {
        let failed = self.dev.grant_copy(segs).is_err();
        let whole_call_failed = failed && segs.iter().all(|s| s.status() == 0);
        if whole_call_failed {
            self.failed_calls += 1;
        }
        for (seg, ok) in segs.iter().zip(ok.iter_mut()) {
            *ok = !whole_call_failed && seg.status() == 0;
        }
    }
}

/// Splits `buf` into the pieces `spans` name (increasing, disjoint
/// `at`s); `None` for a span that is out of order or outside `buf`.
fn pieces<'b>(spans: &[CopySpan], mut buf: &'b mut [u8]) -> Vec<Option<&'b mut [u8]>> {
    let mut out = Vec::with_capacity(spans.len());
    let mut base = 0usize;
    for s in spans {
        let len = usize::from(s.len);
        let fits = s.at.checked_sub(base).filter(|skip| skip.checked_add(len).is_some_and(|end| end <= buf.len()));
        let Some(skip) = fits else {
            out.push(None);
            continue;
        };
        let rest = std::mem::take(&mut buf);
        let (_, rest) = rest.split_at_mut(skip);
        let (piece, rest) = rest.split_at_mut(len);
        out.push(Some(piece));
        buf = rest;
        base = s.at + len;
    }
    out
}

impl GrantCopy for GntdevCopy {
    fn copy_from_frontend(&mut self, domid: u16, spans: &[CopySpan], buf: &mut [u8], ok: &mut [bool]) {
        let mut segs = Vec::with_capacity(spans.len());
        let mut index = Vec::with_capacity(spans.len());
        for (i, (s, piece)) in spans.iter().zip(pieces(spans, buf)).enumerate() {
            if let Some(piece) = piece {
                let source = CopySource::Grant(GrantAddr { domid, gref: s.gref, offset: s.offset });
                segs.push(GrantCopySegment::new(source, CopyDest::Local(piece), s.len));
                index.push(i);
            }
        }
        let mut seg_ok = vec![false; segs.len()];
        self.run(&mut segs, &mut seg_ok);
        ok.iter_mut().for_each(|o| *o = false);
        for (i, good) in index.into_iter().zip(seg_ok) {
            if let Some(o) = ok.get_mut(i) {
                *o = good;
            }
        }
    }

    fn copy_to_frontend(&mut self, domid: u16, spans: &[CopySpan], buf: &[u8], ok: &mut [bool]) {
        let mut segs = Vec::with_capacity(spans.len());
        let mut index = Vec::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            if let Some(piece) = buf.get(s.at..s.at.saturating_add(usize::from(s.len))) {
                let dest = CopyDest::Grant(GrantAddr { domid, gref: s.gref, offset: s.offset });
                segs.push(GrantCopySegment::new(CopySource::Local(piece), dest, s.len));
                index.push(i);
            }
        }
        let mut seg_ok = vec![false; segs.len()];
        self.run(&mut segs, &mut seg_ok);
        ok.iter_mut().for_each(|o| *o = false);
        for (i, good) in index.into_iter().zip(seg_ok) {
            if let Some(o) = ok.get_mut(i) {
                *o = good;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_split_into_the_spans_pieces() {
        let span = |at, len| CopySpan { gref: 1, offset: 0, len, at };
        let mut buf = [0u8; 100];
        let p = pieces(&[span(0, 10), span(10, 20), span(50, 50)], &mut buf);
        assert_eq!(p.iter().map(|s| s.as_ref().map_or(0, |s| s.len())).collect::<Vec<_>>(), [10, 20, 50]);
        let mut buf = [0u8; 100];
        let p = pieces(&[span(10, 10), span(5, 10), span(30, 5)], &mut buf);
        assert_eq!(p.iter().map(Option::is_some).collect::<Vec<_>>(), [true, false, true], "overlap skipped");
        let mut buf = [0u8; 100];
        assert!(pieces(&[span(90, 20)], &mut buf)[0].is_none(), "past the end");
    }
}
