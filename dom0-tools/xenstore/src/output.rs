//! A connection's queue of encoded messages waiting to be written.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `out_list`,
//! `send_reply`, `send_event`, `write_messages` (Xen 4.17). Replies count
//! as outstanding until fully written (the `quota_req_outstanding`
//! throttle); a watch event identical to one still waiting is dropped
//! (special `@` events excepted).

use std::collections::VecDeque;

/// What a queued message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutKind {
    /// The answer to a request.
    Reply,
    /// A watch event.
    Event,
}

#[derive(Debug)]
struct OutMsg {
    bytes: Vec<u8>,
    kind: OutKind,
}

/// The queue; the head may be partly written.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    msgs: VecDeque<OutMsg>,
    head_written: usize,
}

impl OutQueue {
    /// Queues a message at the tail.
    pub fn push(&mut self, bytes: Vec<u8>, kind: OutKind) {
        self.msgs.push_back(OutMsg { bytes, kind });
    }

    /// Whether an event with exactly these bytes waits, not yet started.
    pub fn has_pending_event(&self, bytes: &[u8]) -> bool {
        self.msgs
            .iter()
            .enumerate()
            .any(|(i, m)| m.kind == OutKind::Event && m.bytes == bytes && (i > 0 || self.head_written == 0))
    }

    /// The unwritten rest of the head message.
    pub fn head(&self) -> Option<&[u8]> {
        self.msgs.front().and_then(|m| m.bytes.get(self.head_written..))
    }

    /// Records that `n` bytes of the head were written. Returns the size of
    /// each message this completed.
    pub fn advance(&mut self, mut n: usize) -> Vec<(usize, OutKind)> {
        let mut done = Vec::new();
        while n > 0 {
            let Some(head) = self.msgs.front() else { break };
            let left = head.bytes.len().saturating_sub(self.head_written);
            let step = n.min(left);
            self.head_written += step;
            n -= step;
            if self.head_written >= head.bytes.len() {
                done.push((head.bytes.len(), head.kind));
                self.msgs.pop_front();
                self.head_written = 0;
            }
        }
        done
    }

    /// Replies not yet completely written.
    pub fn outstanding(&self) -> u32 {
        self.msgs.iter().filter(|m| m.kind == OutKind::Reply).count() as u32
    }

    /// Bytes of every queued message.
    pub fn bytes(&self) -> usize {
        self.msgs.iter().map(|m| m.bytes.len()).sum()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Drops everything; returns the bytes that were queued.
    pub fn clear(&mut self) -> usize {
        let bytes = self.bytes();
        self.msgs.clear();
        self.head_written = 0;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_and_outstanding() {
        let mut q = OutQueue::default();
        q.push(b"abcd".to_vec(), OutKind::Reply);
        q.push(b"ef".to_vec(), OutKind::Event);
        assert_eq!(q.outstanding(), 1);
        assert!(q.advance(3).is_empty());
        assert_eq!(q.head(), Some(&b"d"[..]));
        assert!(!q.has_pending_event(b"abcd"));
        assert!(q.has_pending_event(b"ef"));
        assert_eq!(q.advance(3), vec![(4, OutKind::Reply), (2, OutKind::Event)]);
        assert_eq!(q.outstanding(), 0);
        assert!(q.is_empty());
        assert_eq!(q.head(), None);
    }
}
