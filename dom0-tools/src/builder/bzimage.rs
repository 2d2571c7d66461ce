//! The bzImage unwrap: what Xen's `xen/arch/x86/bzimage.c` and libxc's
//! `xg_dom_bzimageloader.c` do before the ELF parser sees a kernel.
//!
//! A Linux bzImage ("HdrS" at 0x202, boot protocol 2.08 or later) carries
//! the real kernel, an ELF, as a payload at `(setup_sects + 1) * 512 +
//! payload_offset`, `payload_length` bytes long, usually compressed, with
//! the uncompressed size in its last four bytes. A kernel that is not a
//! bzImage may itself be a compressed ELF (libxc accepts those too).

use super::decompress::{self, Format, MAX_UNCOMPRESSED};
use super::elf::Elf;
use super::KernelError;

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

fn le(image: &[u8], at: usize, n: usize) -> Option<u64> {
    let bytes = image.get(at..at.checked_add(n)?)?;
    Some(bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// The payload of a bzImage, or `None` if `image` is not one.
pub fn payload(image: &[u8]) -> Result<Option<&[u8]>, KernelError> {
    if image.get(HEADER_MAGIC..HEADER_MAGIC + 4) != Some(b"HdrS") {
        return Ok(None);
    }
    let version = le(image, PROTOCOL_VERSION, 2).ok_or(KernelError::BadBzImage("truncated setup header"))?;
    if version < u64::from(MIN_PROTOCOL) {
        return Err(KernelError::BadBzImage("boot protocol older than 2.08"));
    }
    let (Some(sects), Some(offset), Some(length)) =
        (image.get(SETUP_SECTS).copied(), le(image, PAYLOAD_OFFSET, 4), le(image, PAYLOAD_LENGTH, 4))
    else {
        return Err(KernelError::BadBzImage("truncated setup header"));
    };
    let sects = if sects == 0 { 4 } else { u64::from(sects) };
    let start = (sects + 1) * 512 + offset;
    let payload = usize::try_from(start)
        .ok()
        .zip(usize::try_from(start + length).ok())
        .and_then(|(s, e)| image.get(s..e))
        .ok_or(KernelError::BadBzImage("payload outside the image"))?;
    Ok(Some(payload))
}

/// The ELF kernel inside `image`: the image itself, a bzImage's payload
/// (decompressed if need be, checked against its size trailer), or a
/// compressed ELF.
pub fn unwrap(image: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, KernelError> {
    let (data, bz) = match payload(image)? {
        Some(p) => (p, true),
        None => (image, false),
    };
    if Elf::is_elf(data) {
        return Ok(data.into());
    }
    let Some(format) = Format::detect(data) else {
        return Err(if bz {
            KernelError::BadBzImage("payload is neither ELF nor a known compression format")
        } else {
            KernelError::NotAKernel
        });
    };
    if let Format::Unsupported(name) = format {
        return Err(KernelError::UnsupportedCompression(name));
    }
    let limit = if bz && format != Format::Gzip {
        // The size trailer tells how much to expect.
        let size = data.len().checked_sub(4).and_then(|at| le(data, at, 4)).unwrap_or(0);
        usize::try_from(size)
            .ok()
            .filter(|&s| s > 0 && s <= MAX_UNCOMPRESSED)
            .ok_or(KernelError::TooLarge(size as usize))?
    } else {
        MAX_UNCOMPRESSED
    };
    let out = decompress::decompress(format, data, limit)?;
    if bz && format != Format::Gzip && out.len() != limit {
        return Err(KernelError::Decompress {
            format: format.name(),
            why: format!("{} bytes out, the bzImage says {limit}", out.len()),
        });
    }
    if !Elf::is_elf(&out) {
        return Err(KernelError::BadElf("the decompressed kernel is not ELF"));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal bzImage around `payload`: one setup sector, HdrS 2.15.
    pub(crate) fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 1024];
        img[SETUP_SECTS] = 1;
        img[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        img[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x20fu16.to_le_bytes());
        img[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
        img[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img.extend_from_slice(&[0u8; 16]);
        img.extend_from_slice(payload);
        img
    }

    #[test]
    fn an_elf_payload_is_used_in_place_and_other_kernels_pass_through() {
        let elf = b"\x7fELF\x02\x01\x01rest of it";
        assert_eq!(&*unwrap(&bzimage(elf)).unwrap(), elf);
        assert_eq!(&*unwrap(elf).unwrap(), elf);
        assert!(matches!(unwrap(b"MZ garbage"), Err(KernelError::NotAKernel)));
    }

    #[test]
    fn a_gzip_payload_is_inflated() {
        let elf = [b"\x7fELF".as_slice(), &[7u8; 5000]].concat();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&elf).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(&*unwrap(&bzimage(&gz)).unwrap(), &elf[..]);
        assert_eq!(&*unwrap(&gz).unwrap(), &elf[..], "a gzipped vmlinux");
    }

    #[test]
    fn a_zstd_payload_is_checked_against_its_size_trailer() {
        let elf = [b"\x7fELF".as_slice(), &[9u8; 5000]].concat();
        let mut zst = ruzstd::encoding::compress_to_vec(&elf[..], ruzstd::encoding::CompressionLevel::Fastest);
        zst.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert_eq!(&*unwrap(&bzimage(&zst)).unwrap(), &elf[..]);
        let n = zst.len();
        zst[n - 4..].copy_from_slice(&(elf.len() as u32 + 1).to_le_bytes());
        assert!(matches!(unwrap(&bzimage(&zst)), Err(KernelError::Decompress { .. })));
    }

    #[test]
    fn hostile_headers_are_errors() {
        let mut img = bzimage(b"\x7fELF");
        img[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(unwrap(&img), Err(KernelError::BadBzImage(_))));
        let mut old = bzimage(b"\x7fELF");
        old[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x204u16.to_le_bytes());
        assert!(matches!(unwrap(&old), Err(KernelError::BadBzImage(_))));
        assert!(matches!(unwrap(&bzimage(b"BZh9 bzip2 data")), Err(KernelError::UnsupportedCompression("bzip2"))));
        assert!(matches!(unwrap(&bzimage(b"random")), Err(KernelError::BadBzImage(_))));
        let full = bzimage(b"\x7fELF");
        for len in 0..full.len() {
            let _ = unwrap(&full[..len]);
        }
    }
}
