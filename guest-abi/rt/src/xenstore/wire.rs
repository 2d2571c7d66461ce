//! Message framing on the XenStore byte streams: request headers out, a
//! resumable receiver in, and parsers for reply payloads.
//!
//! Semantics: X:`xen/include/public/io/xs_wire.h`, `docs/misc/xenstore.txt`.
//! A message is a 16-byte [`XsdSockmsg`] header (host byte order) and
//! `len <= XENSTORE_PAYLOAD_MAX` payload bytes. Replies and watch events
//! arrive in the same stream; a header claiming a longer payload is a
//! protocol violation after which the stream cannot be trusted. Payloads
//! are parsed without assuming they are well formed.

use core::mem::size_of;

use guest_abi::io::xs_wire::{XsdSockmsg, XENSTORE_PAYLOAD_MAX};
use zerocopy::{FromBytes, IntoBytes};

use super::ring::BadIndexes;

/// Bytes in a message header.
pub const HEADER_LEN: usize = size_of::<XsdSockmsg>();
/// Most payload bytes a message may carry.
pub const PAYLOAD_MAX: usize = XENSTORE_PAYLOAD_MAX as usize;

/// The header of a message of `msg_type` with `len` payload bytes.
pub fn header(msg_type: u32, req_id: u32, tx_id: u32, len: u32) -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    out.copy_from_slice(XsdSockmsg { type_: msg_type, req_id, tx_id, len }.as_bytes());
    out
}

/// Why the incoming stream cannot be read any further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// The ring's indices are inconsistent.
    BadIndexes,
    /// A header claims more than `XENSTORE_PAYLOAD_MAX` payload bytes.
    TooLong,
}

impl From<BadIndexes> for RxError {
    fn from(_: BadIndexes) -> Self {
        RxError::BadIndexes
    }
}

/// A message assembled from the incoming stream, possibly across many
/// calls (the daemon may publish a message in pieces, and a caller may
/// give up waiting half-way and come back later).
pub struct Receiver {
    header: [u8; HEADER_LEN],
    header_len: usize,
    payload: [u8; PAYLOAD_MAX],
    payload_len: usize,
    complete: bool,
}

impl Receiver {
    /// An empty receiver.
    pub const fn new() -> Receiver {
        Receiver { header: [0; HEADER_LEN], header_len: 0, payload: [0; PAYLOAD_MAX], payload_len: 0, complete: false }
    }

    /// Reads from `source` (which returns how many bytes it put into the
    /// buffer, 0 when there are none now) until a message is complete or
    /// the source is dry. Returns whether bytes were consumed and, when a
    /// message is complete, its header; its payload is [`payload`] until
    /// the next call.
    ///
    /// [`payload`]: Receiver::payload
    pub fn feed<F>(&mut self, mut source: F) -> Result<(bool, Option<XsdSockmsg>), RxError>
    where
        F: FnMut(&mut [u8]) -> Result<usize, BadIndexes>,
    {
        if self.complete {
            (self.header_len, self.payload_len, self.complete) = (0, 0, false);
        }
        let mut progress = false;
        while self.header_len < HEADER_LEN {
            let n = source(&mut self.header[self.header_len..])?;
            if n == 0 {
                return Ok((progress, None));
            }
            progress = true;
            self.header_len += n.min(HEADER_LEN - self.header_len);
        }
        let hdr = self.peek_header();
        let len = hdr.len as usize;
        if len > PAYLOAD_MAX {
            return Err(RxError::TooLong);
        }
        while self.payload_len < len {
            let n = source(&mut self.payload[self.payload_len..len])?;
            if n == 0 {
                return Ok((progress, None));
            }
            progress = true;
            self.payload_len += n.min(len - self.payload_len);
        }
        self.complete = true;
        Ok((progress, Some(hdr)))
    }

    fn peek_header(&self) -> XsdSockmsg {
        // Sixteen bytes always make a header (any bit pattern is valid).
        XsdSockmsg::read_from_bytes(&self.header).unwrap_or(XsdSockmsg { type_: 0, req_id: 0, tx_id: 0, len: 0 })
    }

    /// The payload of the last complete message (empty otherwise).
    pub fn payload(&self) -> &[u8] {
        if self.complete {
            &self.payload[..self.payload_len]
        } else {
            &[]
        }
    }

    /// Whether part of a message has been read but not all of it.
    pub fn in_message(&self) -> bool {
        !self.complete && self.header_len > 0
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

/// The bytes of `payload` up to its first NUL (all of it if none).
pub fn first_string(payload: &[u8]) -> &[u8] {
    payload.split(|&b| b == 0).next().unwrap_or(&[])
}

/// The transaction id an `XS_TRANSACTION_START` reply carries: decimal
/// digits and a NUL (libxenstore accepts a missing NUL too).
pub fn parse_u32(payload: &[u8]) -> Option<u32> {
    let digits = first_string(payload);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        } else {
            None
        }
    })
}

/// The `path` and `token` of an `XS_WATCH_EVENT` payload
/// (`path\0token\0`); missing fields are empty.
pub fn watch_fields(payload: &[u8]) -> (&[u8], &[u8]) {
    let mut fields = payload.split(|&b| b == 0);
    let path = fields.next().unwrap_or(&[]);
    let token = fields.next().unwrap_or(&[]);
    (path, token)
}

/// The names of an `XS_DIRECTORY` reply: NUL-terminated strings.
#[derive(Clone)]
pub struct Names<'a> {
    rest: &'a [u8],
}

impl<'a> Names<'a> {
    /// Iterates over the names in `payload`.
    pub fn new(payload: &'a [u8]) -> Names<'a> {
        Names { rest: payload }
    }
}

impl<'a> Iterator for Names<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match self.rest.iter().position(|&b| b == 0) {
            Some(end) => {
                let name = &self.rest[..end];
                self.rest = &self.rest[end + 1..];
                Some(name)
            }
            None => Some(core::mem::take(&mut self.rest)),
        }
    }
}
