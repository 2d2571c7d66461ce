//! Decompressing kernel payloads: the formats distributions compress
//! Linux with, dispatched on their magic as Xen's `xen/common/decompress.c`
//! and libxc's `xg_dom_decompress*.c` do.
//!
//! XZ (with the x86 BCJ filter Debian's kernels use) through `xz4rust`,
//! gzip through `flate2` (miniz_oxide, pure Rust), zstd through `ruzstd`,
//! and LZ4's legacy frame (what `lz4 -l` writes for the kernel) block by
//! block through `lz4_flex`. Output is bounded: a payload that inflates
//! past the limit is an error, not an out-of-memory abort.

use std::io::Read;

use xz4rust::{XzDecoder, XzNextBlockResult};

use super::KernelError;

/// The largest decompressed kernel accepted (Debian's is ~66 MB).
pub const MAX_UNCOMPRESSED: usize = 256 << 20;
/// The largest XZ dictionary accepted (xz's largest preset uses 64 MiB).
const MAX_XZ_DICT: usize = 128 << 20;
/// The largest zstd window accepted.
const MAX_ZSTD_WINDOW: u64 = 128 << 20;
/// LZ4 legacy frame magic (`0x184C2102`, little-endian).
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Uncompressed size of a full LZ4 legacy block.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// A compression format, by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `\xfd7zXZ\0`
    Xz,
    /// `\x1f\x8b` (or `\x1f\x9e`, old gzip)
    Gzip,
    /// `\x28\xb5\x2f\xfd`
    Zstd,
    /// `\x02\x21\x4c\x18`
    Lz4Legacy,
    /// A format Xen knows that this builder does not decompress.
    Unsupported(&'static str),
}

impl Format {
    /// The format of `data`, if it starts with a known magic.
    pub fn detect(data: &[u8]) -> Option<Format> {
        const FORMATS: &[(&[u8], Format)] = &[
            (b"\xfd7zXZ\0", Format::Xz),
            (b"\x1f\x8b", Format::Gzip),
            (b"\x1f\x9e", Format::Gzip),
            (b"\x28\xb5\x2f\xfd", Format::Zstd),
            (&LZ4_LEGACY_MAGIC, Format::Lz4Legacy),
            (b"BZh", Format::Unsupported("bzip2")),
            (b"\x5d\x00\x00", Format::Unsupported("lzma")),
            (b"\x89LZO\x00\r\n\x1a\n", Format::Unsupported("lzo")),
        ];
        FORMATS.iter().find(|(magic, _)| data.starts_with(magic)).map(|&(_, f)| f)
    }

    /// The name Xen gives it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Xz => "xz",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Lz4Legacy => "lz4",
            Format::Unsupported(name) => name,
        }
    }
}

/// Decompresses `data` of format `format`, producing at most `limit`
/// bytes (more is [`KernelError::TooLarge`]).
pub fn decompress(format: Format, data: &[u8], limit: usize) -> Result<Vec<u8>, KernelError> {
    let fail = |why: String| KernelError::Decompress { format: format.name(), why };
    match format {
        Format::Xz => unxz(data, limit).map_err(fail),
        Format::Gzip => read_limited(flate2::read::MultiGzDecoder::new(data), limit).map_err(fail),
        Format::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(data, MAX_ZSTD_WINDOW)
                .map_err(|e| fail(e.to_string()))?;
            read_limited(decoder, limit).map_err(fail)
        }
        Format::Lz4Legacy => unlz4_legacy(data, limit).map_err(fail),
        Format::Unsupported(name) => Err(KernelError::UnsupportedCompression(name)),
    }?
    .ok_or(KernelError::TooLarge(limit))
}

/// Reads `r` to its end; `Ok(None)` if it has more than `limit` bytes.
fn read_limited(r: impl Read, limit: usize) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok((out.len() <= limit).then_some(out))
}

/// XZ: one stream (trailing bytes, such as a size trailer, are ignored).
fn unxz(data: &[u8], limit: usize) -> Result<Option<Vec<u8>>, String> {
    let mut decoder = XzDecoder::in_heap_with_alloc_dict_size(1 << 20, MAX_XZ_DICT);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut read = 0usize;
    loop {
        let input = data.get(read..).unwrap_or_default();
        let result = decoder.decode(input, &mut chunk).map_err(|e| e.to_string())?;
        read = read.saturating_add(result.input_consumed());
        let produced = chunk.get(..result.output_produced()).unwrap_or_default();
        if out.len().saturating_add(produced.len()) > limit {
            return Ok(None);
        }
        out.extend_from_slice(produced);
        match result {
            XzNextBlockResult::EndOfStream(..) => return Ok(Some(out)),
            XzNextBlockResult::NeedMoreData(..) if !result.made_progress() => {
                return Err("the stream is truncated".into());
            }
            XzNextBlockResult::NeedMoreData(..) => {}
        }
    }
}

/// LZ4 legacy frames: the magic, then blocks of `{le32 size, data}`, each
/// at most 8 MiB uncompressed; a new magic may start another frame, and
/// anything shorter than a block header (the size trailer) ends it.
fn unlz4_legacy(data: &[u8], limit: usize) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut at = LZ4_LEGACY_MAGIC.len();
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while let Some(header) = data.get(at..at.saturating_add(4)) {
        let mut word = [0u8; 4];
        word.copy_from_slice(header);
        at += 4;
        if word == LZ4_LEGACY_MAGIC {
            continue;
        }
        let size = u32::from_le_bytes(word) as usize;
        let Some(input) = data.get(at..at.saturating_add(size)) else {
            // Only the size trailer may be left over.
            if data.len() - (at - 4) == 4 {
                break;
            }
            return Err(format!("block of {size} bytes runs past the end"));
        };
        at += size;
        let n = lz4_flex::block::decompress_into(input, &mut block).map_err(|e| e.to_string())?;
        if out.len().saturating_add(n) > limit {
            return Ok(None);
        }
        out.extend_from_slice(block.get(..n).unwrap_or_default());
    }
    if out.is_empty() {
        return Err("no data".into());
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn formats_are_told_by_magic() {
        assert_eq!(Format::detect(b"\xfd7zXZ\0rest"), Some(Format::Xz));
        assert_eq!(Format::detect(b"\x1f\x8b\x08"), Some(Format::Gzip));
        assert_eq!(Format::detect(b"BZh91AY"), Some(Format::Unsupported("bzip2")));
        assert_eq!(Format::detect(b"\x7fELF"), None);
        let err = decompress(Format::Unsupported("lzo"), b"", 10);
        assert!(matches!(err, Err(KernelError::UnsupportedCompression("lzo"))));
    }

    #[test]
    fn gzip_round_trips_and_is_bounded() {
        let data = sample();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decompress(Format::Gzip, &gz, MAX_UNCOMPRESSED).unwrap(), data);
        assert!(matches!(decompress(Format::Gzip, &gz, 1000), Err(KernelError::TooLarge(1000))));
        assert!(decompress(Format::Gzip, &gz[..gz.len() / 2], MAX_UNCOMPRESSED).is_err());
    }

    #[test]
    fn zstd_round_trips() {
        let data = sample();
        let zst = ruzstd::encoding::compress_to_vec(&data[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert_eq!(decompress(Format::Zstd, &zst, MAX_UNCOMPRESSED).unwrap(), data);
        assert!(decompress(Format::Zstd, &zst[..zst.len() / 2], MAX_UNCOMPRESSED).is_err());
    }

    #[test]
    fn lz4_legacy_blocks_round_trip_with_a_size_trailer() {
        let data = sample();
        let mut lz4 = LZ4_LEGACY_MAGIC.to_vec();
        for chunk in data.chunks(500_000) {
            let block = lz4_flex::block::compress(chunk);
            lz4.extend_from_slice(&(block.len() as u32).to_le_bytes());
            lz4.extend_from_slice(&block);
        }
        lz4.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert_eq!(decompress(Format::Lz4Legacy, &lz4, MAX_UNCOMPRESSED).unwrap(), data);
        assert!(decompress(Format::Lz4Legacy, &lz4[..lz4.len() - 100], MAX_UNCOMPRESSED).is_err());
    }

    #[test]
    fn xz_with_bcj_decodes_and_garbage_does_not() {
        // `for i in $(seq 64); do printf "xenish kernel payload "; done | xz --x86 --lzma2`
        let xz = include_bytes!("testdata/payload.xz");
        let out = decompress(Format::Xz, xz, MAX_UNCOMPRESSED).unwrap();
        assert_eq!(out, b"xenish kernel payload ".repeat(64));
        assert!(decompress(Format::Xz, &xz[..xz.len() - 20], MAX_UNCOMPRESSED).is_err());
        assert!(decompress(Format::Xz, b"\xfd7zXZ\0garbage", MAX_UNCOMPRESSED).is_err());
    }
}
