//! The message framing of `io/xs_wire.h` and the payload helpers every
//! request handler uses.
//!
//! A message is a 16-byte [`XsdSockmsg`] header in host byte order followed
//! by `len` payload bytes; a `len` above `XENSTORE_PAYLOAD_MAX` is a
//! protocol error that ends the connection (X:`xenstored_core.c`
//! `handle_input`). [`MessageReader`] assembles messages from chunks of any
//! size, as they come from a socket or a ring. The string helpers mirror
//! Xen's `get_strings`, `onearg`, `xs_count_strings`, `atoi` and `strtol`.

use guest_abi::io::xs_wire::{XsdSockmsg, XENSTORE_PAYLOAD_MAX};

/// Size of the message header.
pub const HEADER_LEN: usize = core::mem::size_of::<XsdSockmsg>();

/// Largest payload a peer may send or be sent.
pub const PAYLOAD_MAX: usize = XENSTORE_PAYLOAD_MAX as usize;

/// Encodes a message: header then payload.
pub fn encode(type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    for field in [type_, req_id, tx_id, len] {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Decodes a header from its 16 bytes.
pub fn decode_header(raw: &[u8; HEADER_LEN]) -> XsdSockmsg {
    let field = |i: usize| {
        let mut b = [0u8; 4];
        if let Some(src) = raw.get(i * 4..i * 4 + 4) {
            b.copy_from_slice(src);
        }
        u32::from_ne_bytes(b)
    };
    XsdSockmsg { type_: field(0), req_id: field(1), tx_id: field(2), len: field(3) }
}

/// A complete message: its header and payload.
pub type Message = (XsdSockmsg, Vec<u8>);

/// A framing error: the peer announced a payload larger than
/// `XENSTORE_PAYLOAD_MAX` (the connection cannot be resynchronised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTooLarge(pub u32);

/// Assembles one message at a time from arbitrary chunks.
#[derive(Debug, Default)]
pub struct MessageReader {
    header: [u8; HEADER_LEN],
    header_used: usize,
    payload: Vec<u8>,
    payload_len: usize,
}

impl MessageReader {
    /// How many more bytes the message being read needs (never 0: after a
    /// complete message the next header is wanted).
    pub fn wanted(&self) -> usize {
        if self.header_used < HEADER_LEN {
            HEADER_LEN - self.header_used
        } else {
            self.payload_len.saturating_sub(self.payload.len())
        }
    }

    /// Whether part of a message has been read.
    pub fn in_progress(&self) -> bool {
        self.header_used > 0
    }

    /// Takes bytes from the front of `input`, at most up to the end of the
    /// current message. Returns how many were used and the message if it is
    /// now complete.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), PayloadTooLarge> {
        let mut used = 0;
        if self.header_used < HEADER_LEN {
            let take = input.len().min(HEADER_LEN - self.header_used);
            let dst = self.header.get_mut(self.header_used..self.header_used + take);
            if let (Some(dst), Some(src)) = (dst, input.get(..take)) {
                dst.copy_from_slice(src);
            }
            self.header_used += take;
            used = take;
            if self.header_used < HEADER_LEN {
                return Ok((used, None));
            }
            let hdr = decode_header(&self.header);
            if hdr.len as usize > PAYLOAD_MAX {
                return Err(PayloadTooLarge(hdr.len));
            }
            self.payload_len = hdr.len as usize;
            self.payload = Vec::with_capacity(self.payload_len);
        }
        let rest = input.get(used..).unwrap_or(&[]);
        let take = rest.len().min(self.payload_len - self.payload.len());
        self.payload.extend_from_slice(rest.get(..take).unwrap_or(&[]));
        used += take;
        if self.payload.len() < self.payload_len {
            return Ok((used, None));
        }
        let hdr = decode_header(&self.header);
        let payload = core::mem::take(&mut self.payload);
        *self = MessageReader::default();
        Ok((used, Some((hdr, payload))))
    }
}

/// `get_strings`: the NUL-terminated strings at the start of `payload`
/// (bytes after the last NUL are not a string).
pub fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    // The piece after the last NUL is unterminated (or empty).
    out.pop();
    out
}

/// `xs_count_strings`: the number of NULs.
pub fn count_strings(payload: &[u8]) -> usize {
    payload.iter().filter(|&&b| b == 0).count()
}

/// `onearg`: the single argument of a payload that holds exactly one
/// NUL, at its end.
pub fn onearg(payload: &[u8]) -> Option<&[u8]> {
    match payload.split_last() {
        Some((0, arg)) if !arg.contains(&0) => Some(arg),
        _ => None,
    }
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's `strtol(s, &end, 0)`: the value (clamped to `i64`) and how many
/// bytes were read (0 if no number was found).
pub fn strtol(s: &[u8]) -> (i64, usize) {
    let mut i = s.iter().take_while(|&&c| is_c_space(c)).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut radix = 10;
    if s.get(i) == Some(&b'0') {
        let hex = matches!(s.get(i + 1), Some(b'x' | b'X')) && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit());
        if hex {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let start = i;
    let mut value: i128 = 0;
    while let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        value = (value * i128::from(radix) + i128::from(d)).min(i128::from(i64::MAX) + 1);
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    let value = if negative { -value } else { value };
    (value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64, i)
}

/// C's `atoi`: a decimal prefix, 0 if there is none.
pub fn atoi(s: &[u8]) -> i32 {
    let mut i = s.iter().take_while(|&&c| is_c_space(c)).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        value = (value * 10 + i64::from(d - b'0')).min(i64::from(u32::MAX) + 1);
        i += 1;
    }
    let value = if negative { -value } else { value };
    value as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let msg = encode(2, 7, 9, b"/a\0");
        assert_eq!(msg.len(), 19);
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&msg[..HEADER_LEN]);
        let h = decode_header(&raw);
        assert_eq!((h.type_, h.req_id, h.tx_id, h.len), (2, 7, 9, 3));
    }

    #[test]
    fn reader_assembles_split_messages() {
        let msg = encode(2, 1, 0, b"/local\0");
        let mut r = MessageReader::default();
        let mut got = None;
        for byte in &msg {
            let (used, done) = r.push(core::slice::from_ref(byte)).unwrap();
            assert_eq!(used, 1);
            if done.is_some() {
                got = done;
            }
        }
        let (h, payload) = got.unwrap();
        assert_eq!(h.type_, 2);
        assert_eq!(payload, b"/local\0");
        assert_eq!(r.wanted(), HEADER_LEN);
    }

    #[test]
    fn reader_stops_at_message_end_and_rejects_oversize() {
        let mut two = encode(1, 1, 0, b"/\0");
        two.extend(encode(2, 2, 0, b"/x\0"));
        let mut r = MessageReader::default();
        let (used, first) = r.push(&two).unwrap();
        assert_eq!(used, HEADER_LEN + 2);
        assert_eq!(first.unwrap().0.req_id, 1);
        let (_, second) = r.push(&two[used..]).unwrap();
        assert_eq!(second.unwrap().0.req_id, 2);

        let mut big = encode(2, 1, 0, b"");
        big[12..16].copy_from_slice(&4097u32.to_ne_bytes());
        assert_eq!(MessageReader::default().push(&big).err(), Some(PayloadTooLarge(4097)));
        big[12..16].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(MessageReader::default().push(&big).is_ok());
    }

    #[test]
    fn string_helpers_follow_c() {
        assert_eq!(strings(b"a\0b\0c"), vec![&b"a"[..], b"b"]);
        assert_eq!(strings(b""), Vec::<&[u8]>::new());
        assert_eq!(count_strings(b"a\0\0b\0"), 3);
        assert_eq!(onearg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(onearg(b"/a"), None);
        assert_eq!(onearg(b"/a\0b\0"), None);
        assert_eq!(onearg(b""), None);
        assert_eq!(strtol(b"0x1f"), (31, 4));
        assert_eq!(strtol(b"017"), (15, 3));
        assert_eq!(strtol(b" -5z"), (-5, 3));
        assert_eq!(strtol(b"0x"), (0, 1));
        assert_eq!(strtol(b"z"), (0, 0));
        assert_eq!(strtol(b"99999999999999999999999").0, i64::MAX);
        assert_eq!(atoi(b"42abc"), 42);
        assert_eq!(atoi(b"-1"), -1);
        assert_eq!(atoi(b"junk"), 0);
        assert_eq!(atoi(b"99999999999999"), 0, "C leaves overflow undefined; we wrap, never panic");
    }
}
