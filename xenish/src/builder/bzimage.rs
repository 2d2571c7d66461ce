//! The bzImage unwrap: what Xen's `xen/arch/x86/bzimage.c` does before the
//! ELF parser sees a kernel. A Linux bzImage ("HdrS" at 0x202, boot protocol
//! 2.08 or later) carries the real kernel, an ELF, as a payload that is
//! usually compressed; this module finds the payload, tells its format and
//! decompresses XZ (the format of Debian's kernels, with the x86 BCJ filter).
//!
//! Everything here is portable and works on caller-provided buffers; where
//! the output memory comes from is [`super::kernel_image`]'s business. Every
//! offset and length read from the image is checked: a hostile image yields
//! a [`BzImageError`], never a panic.

use alloc::boxed::Box;
use core::fmt;

use xz4rust::{XzDecoder, XzError, XzNextBlockResult};

/// Offset of `setup_sects` (u8) in the setup header.
const SETUP_SECTS: usize = 0x1f1;
/// Offset of the "HdrS" signature.
const HEADER_MAGIC: usize = 0x202;
/// Offset of the boot protocol version (le16).
const PROTOCOL_VERSION: usize = 0x206;
/// Offset of `payload_offset` (le32), protocol 2.08+.
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length` (le32), protocol 2.08+.
const PAYLOAD_LENGTH: usize = 0x24c;
/// The first protocol version with `payload_offset`/`payload_length`.
const MIN_PROTOCOL: u16 = 0x208;
/// The largest decompressed kernel accepted (Debian's is ~66 MB).
pub const MAX_UNCOMPRESSED: usize = 512 << 20;
/// The largest XZ dictionary accepted (xz's largest preset uses 64 MiB).
pub const MAX_DICT: usize = 128 << 20;

/// ELF magic.
const ELF_MAGIC: &[u8] = b"\x7fELF";
/// XZ stream magic.
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";
/// XZ stream header: magic, flags, CRC32.
const XZ_STREAM_HEADER: usize = 12;
/// LZMA2's filter id in an XZ block header.
const XZ_FILTER_LZMA2: u64 = 0x21;

/// Why a bzImage could not be unwrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BzImageError {
    /// "HdrS" is there but the boot protocol predates payload fields.
    ProtocolTooOld(u16),
    /// The setup header or the payload lies outside the image.
    PayloadOutOfBounds {
        /// Payload offset in the file.
        offset: u64,
        /// Payload length.
        length: u64,
        /// Image length.
        image: u64,
    },
    /// The payload is too short to hold its size trailer.
    PayloadTooShort,
    /// A compression format xenish does not decompress (named as Xen names it).
    UnsupportedFormat(&'static str),
    /// The payload is neither ELF nor a known compression format.
    UnknownFormat,
    /// The size trailer says zero or more than [`MAX_UNCOMPRESSED`] bytes.
    BadUncompressedSize(u64),
    /// The XZ stream or block header is malformed or has no LZMA2 filter.
    BadXzHeader,
    /// The XZ dictionary is larger than [`MAX_DICT`].
    DictionaryTooLarge(u64),
    /// The XZ decoder rejected the data.
    Xz(XzError),
    /// The XZ stream ended early (or the input did).
    XzTruncated,
    /// The decompressed length differs from the size trailer.
    SizeMismatch {
        /// What the trailer said.
        expected: u64,
        /// What came out.
        actual: u64,
    },
    /// No memory for the decompressed kernel.
    OutOfMemory {
        /// Frames needed.
        frames: u64,
    },
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProtocolTooOld(v) => write!(f, "bzImage boot protocol {v:#x} is older than 0x208"),
            Self::PayloadOutOfBounds { offset, length, image } => {
                write!(f, "bzImage payload {offset:#x}+{length:#x} is outside the {image:#x}-byte image")
            }
            Self::PayloadTooShort => f.write_str("bzImage payload too short"),
            Self::UnsupportedFormat(name) => write!(f, "bzImage payload is {name}-compressed, which is not supported"),
            Self::UnknownFormat => f.write_str("bzImage payload is neither ELF nor a known compression format"),
            Self::BadUncompressedSize(n) => write!(f, "bzImage uncompressed size {n:#x} is unacceptable"),
            Self::BadXzHeader => f.write_str("malformed XZ header in the bzImage payload"),
            Self::DictionaryTooLarge(n) => write!(f, "XZ dictionary of {n} bytes is too large"),
            Self::Xz(e) => write!(f, "XZ decoding failed: {e}"),
            Self::XzTruncated => f.write_str("XZ stream truncated"),
            Self::SizeMismatch { expected, actual } => {
                write!(f, "XZ stream gave {actual} bytes, the bzImage said {expected}")
            }
            Self::OutOfMemory { frames } => write!(f, "no {frames} contiguous frames for the decompressed kernel"),
        }
    }
}

/// An XZ payload and what decompressing it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XzPayload<'a> {
    /// The XZ stream (followed by the size trailer).
    pub stream: &'a [u8],
    /// The decompressed size, from the trailer.
    pub uncompressed_len: usize,
    /// The dictionary the stream's first block asks for.
    pub dict_len: usize,
}

/// What a kernel image turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Not a bzImage: hand it to the ELF parser as is.
    NotBzImage(&'a [u8]),
    /// A bzImage whose payload is already ELF.
    Elf(&'a [u8]),
    /// A bzImage with an XZ payload.
    Xz(XzPayload<'a>),
}

fn le32(image: &[u8], at: usize) -> Option<u32> {
    let bytes = image.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn le16(image: &[u8], at: usize) -> Option<u16> {
    let bytes = image.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// Names the compression formats Xen knows (`xen/common/decompress.c`).
fn compression_name(payload: &[u8]) -> Option<&'static str> {
    const FORMATS: &[(&[u8], &str)] = &[
        (b"\x1f\x8b", "gzip"),
        (b"\x1f\x9e", "gzip"),
        (b"BZh", "bzip2"),
        (b"\x5d\x00\x00", "lzma"),
        (b"\x89LZO\x00\r\n\x1a\n", "lzo"),
        (b"\x02\x21\x4c\x18", "lz4"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
    ];
    FORMATS.iter().find(|(magic, _)| payload.starts_with(magic)).map(|&(_, name)| name)
}

/// Finds and classifies the payload of `image`.
pub fn inspect(image: &[u8]) -> Result<Payload<'_>, BzImageError> {
    if image.get(HEADER_MAGIC..HEADER_MAGIC + 4) != Some(b"HdrS") {
        return Ok(Payload::NotBzImage(image));
    }
    let out_of_bounds =
        |offset: u64, length: u64| BzImageError::PayloadOutOfBounds { offset, length, image: image.len() as u64 };
    let version = le16(image, PROTOCOL_VERSION).ok_or(out_of_bounds(0, 0))?;
    if version < MIN_PROTOCOL {
        return Err(BzImageError::ProtocolTooOld(version));
    }
    let (Some(sects), Some(offset), Some(length)) =
        (image.get(SETUP_SECTS).copied(), le32(image, PAYLOAD_OFFSET), le32(image, PAYLOAD_LENGTH))
    else {
        return Err(out_of_bounds(0, 0));
    };
    let sects = if sects == 0 { 4 } else { u64::from(sects) };
    let start = (sects + 1) * 512 + u64::from(offset);
    let end = start + u64::from(length);
    let payload = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| image.get(s..e))
        .ok_or(out_of_bounds(start, u64::from(length)))?;
    if payload.starts_with(ELF_MAGIC) {
        return Ok(Payload::Elf(payload));
    }
    if payload.len() < 4 {
        return Err(BzImageError::PayloadTooShort);
    }
    if !payload.starts_with(XZ_MAGIC) {
        return Err(compression_name(payload).map_or(BzImageError::UnknownFormat, BzImageError::UnsupportedFormat));
    }
    let trailer = le32(payload, payload.len() - 4).ok_or(BzImageError::PayloadTooShort)?;
    let uncompressed_len = trailer as usize;
    if uncompressed_len == 0 || uncompressed_len > MAX_UNCOMPRESSED {
        return Err(BzImageError::BadUncompressedSize(u64::from(trailer)));
    }
    let dict_len = xz_dict_len(payload)?;
    Ok(Payload::Xz(XzPayload { stream: payload, uncompressed_len, dict_len }))
}

/// Reads an XZ variable-length integer at `*at`, advancing it.
fn vli(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The LZMA2 dictionary size the first block of an XZ stream declares.
fn xz_dict_len(stream: &[u8]) -> Result<usize, BzImageError> {
    let size_byte = *stream.get(XZ_STREAM_HEADER).ok_or(BzImageError::BadXzHeader)?;
    if size_byte == 0 {
        // No block at all: the index follows. The decoder handles it.
        return Ok(0);
    }
    let header_end = XZ_STREAM_HEADER + (usize::from(size_byte) + 1) * 4;
    let header = stream.get(..header_end).ok_or(BzImageError::BadXzHeader)?;
    let flags = *header.get(XZ_STREAM_HEADER + 1).ok_or(BzImageError::BadXzHeader)?;
    let mut at = XZ_STREAM_HEADER + 2;
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            vli(header, &mut at).ok_or(BzImageError::BadXzHeader)?;
        }
    }
    for _ in 0..=(flags & 3) {
        let id = vli(header, &mut at).ok_or(BzImageError::BadXzHeader)?;
        let props_len = vli(header, &mut at).ok_or(BzImageError::BadXzHeader)?;
        let props_len = usize::try_from(props_len).map_err(|_| BzImageError::BadXzHeader)?;
        let props_end = at.checked_add(props_len).ok_or(BzImageError::BadXzHeader)?;
        let props = header.get(at..props_end).ok_or(BzImageError::BadXzHeader)?;
        at = props_end;
        if id == XZ_FILTER_LZMA2 {
            let &[b] = props else { return Err(BzImageError::BadXzHeader) };
            if b > 40 {
                return Err(BzImageError::BadXzHeader);
            }
            let dict = if b == 40 { u64::from(u32::MAX) } else { (2 | u64::from(b & 1)) << (b / 2 + 11) };
            return usize::try_from(dict).ok().filter(|&d| d <= MAX_DICT).ok_or(BzImageError::DictionaryTooLarge(dict));
        }
    }
    Err(BzImageError::BadXzHeader)
}

/// Decompresses `xz` into `out` (at least `xz.uncompressed_len` bytes) with
/// `dict` (at least `xz.dict_len` bytes) as the decoder's dictionary, and
/// returns the bytes produced, which must be exactly `uncompressed_len`.
pub fn unxz(xz: &XzPayload, out: &mut [u8], dict: &mut [u8]) -> Result<usize, BzImageError> {
    let mut decoder = Box::new(XzDecoder::with_fixed_size_dict(dict));
    let (mut read, mut written) = (0usize, 0usize);
    loop {
        let (Some(input), Some(output)) = (xz.stream.get(read..), out.get_mut(written..)) else {
            return Err(BzImageError::XzTruncated);
        };
        let result = decoder.decode(input, output).map_err(|e| match e {
            XzError::DictionaryTooLarge(n) => BzImageError::DictionaryTooLarge(n),
            XzError::NeedsLargerInputBuffer => BzImageError::XzTruncated,
            e => BzImageError::Xz(e),
        })?;
        read += result.input_consumed();
        written += result.output_produced();
        match result {
            XzNextBlockResult::EndOfStream(..) => break,
            XzNextBlockResult::NeedMoreData(..) if !result.made_progress() => {
                // Either the input is used up or the output is full.
                return Err(if written >= out.len() {
                    BzImageError::SizeMismatch { expected: xz.uncompressed_len as u64, actual: written as u64 + 1 }
                } else {
                    BzImageError::XzTruncated
                });
            }
            XzNextBlockResult::NeedMoreData(..) => {}
        }
    }
    if written != xz.uncompressed_len {
        return Err(BzImageError::SizeMismatch { expected: xz.uncompressed_len as u64, actual: written as u64 });
    }
    Ok(written)
}
