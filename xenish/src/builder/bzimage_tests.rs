//! Host tests of the bzImage unwrap: synthetic bzImages around the test ELF,
//! uncompressed and XZ-compressed (made with the `xz` tool at test time),
//! and hostile headers and payloads.

extern crate std;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::vec;
use std::vec::Vec;

use super::bzimage::{inspect, unxz, BzImageError, Payload, XzPayload};
use super::tests::{kernel, spec, world};
use super::*;
use crate::mm::frame_alloc::FrameAllocator;

/// A bzImage with `setup_sects` setup sectors, protocol `version` and
/// `payload` at payload_offset 0x40.
fn bzimage(setup_sects: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let sects = if setup_sects == 0 { 4 } else { usize::from(setup_sects) };
    let start = (sects + 1) * 512;
    let mut img = vec![0u8; start + 0x40];
    img[0x1f1] = setup_sects;
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&0x40u32.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img.extend_from_slice(payload);
    img
}

/// `data` compressed as Linux's build does (XZ, x86 BCJ, CRC32) plus the
/// le32 size trailer, or `None` if the `xz` tool is missing.
fn xz_payload(data: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("xz")
        .args(["--format=xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(data).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut payload = out.stdout;
    payload.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Some(payload)
}

/// Contiguous memory as one buffer of `frames` frames from mfn 0.
struct FakeRuns(Vec<u8>);

impl ContiguousMemory for FakeRuns {
    fn bytes_mut(&mut self, first: Mfn, count: u64) -> Option<&mut [u8]> {
        let start = usize::try_from(first.0).ok()?.checked_mul(PAGE_SIZE)?;
        let end = start.checked_add(usize::try_from(count).ok()?.checked_mul(PAGE_SIZE)?)?;
        self.0.get_mut(start..end)
    }
}

/// An allocator over `frames` free frames, and memory behind them.
fn pool(frames: u64) -> (Vec<u64>, FakeRuns) {
    (vec![0u64; FrameAllocator::bitmap_words(frames)], FakeRuns(vec![0u8; frames as usize * PAGE_SIZE]))
}

fn free_allocator(bitmap: &mut [u64], frames: u64) -> FrameAllocator<'_> {
    let mut fa = FrameAllocator::new(bitmap, frames);
    fa.add_free_bytes(0, frames * PAGE_SIZE as u64);
    fa
}

/// Builds `image` as dom0 and returns the entry point.
fn build_entry(image: &[u8]) -> u64 {
    let (mut mem, w) = world(2048);
    let built = build(&spec(image, &w, None), &mut mem).unwrap();
    built.entry
}

#[test]
fn bzimage_with_uncompressed_elf_payload_builds() {
    let elf = kernel(None);
    for sects in [0u8, 1, 39] {
        let img = bzimage(sects, 0x20f, &elf);
        assert_eq!(inspect(&img), Ok(Payload::Elf(&elf[..])));
        let (mut bm, mut runs) = pool(16);
        let mut fa = free_allocator(&mut bm, 16);
        let k = unwrap_kernel(&img, &mut fa, &mut runs).unwrap();
        assert_eq!(k.bytes(), &elf[..]);
        assert_eq!(k.held_frames(), 0);
        assert_eq!(build_entry(k.bytes()), build_entry(&elf));
        k.release(&mut fa);
        assert_eq!(fa.free_frames(), 16);
    }
}

#[test]
fn plain_elf_passes_through() {
    let elf = kernel(None);
    assert_eq!(inspect(&elf), Ok(Payload::NotBzImage(&elf[..])));
    assert_eq!(inspect(&[]), Ok(Payload::NotBzImage(&[][..])));
}

#[test]
fn bzimage_with_xz_bcj_payload_decompresses_into_frames() {
    let elf = kernel(Some(0xffff_ffff_8010_2000));
    let Some(payload) = xz_payload(&elf) else {
        std::println!("skipped: the `xz` tool is not available to make an XZ payload");
        return;
    };
    let img = bzimage(39, 0x20f, &payload);
    let Ok(Payload::Xz(xz)) = inspect(&img) else { panic!("not XZ: {:?}", inspect(&img)) };
    assert_eq!(xz.uncompressed_len, elf.len());
    assert_eq!(xz.dict_len, 1 << 20);
    // Output pages plus the 1 MiB dictionary, and a few spare frames.
    let frames = elf.len().div_ceil(PAGE_SIZE) as u64 + 256 + 4;
    let (mut bm, mut runs) = pool(frames);
    let mut fa = free_allocator(&mut bm, frames);
    let k = unwrap_kernel(&img, &mut fa, &mut runs).unwrap();
    assert_eq!(k.bytes(), &elf[..]);
    assert_eq!(k.held_frames(), elf.len().div_ceil(PAGE_SIZE) as u64);
    // The dictionary went back at once, the output stays until release.
    assert_eq!(fa.free_frames(), frames - k.held_frames());
    assert_eq!(build_entry(k.bytes()), build_entry(&elf));
    k.release(&mut fa);
    assert_eq!(fa.free_frames(), frames);
}

#[test]
fn xz_without_room_is_out_of_memory_and_frees_nothing_twice() {
    let elf = kernel(None);
    let Some(payload) = xz_payload(&elf) else {
        std::println!("skipped: the `xz` tool is not available to make an XZ payload");
        return;
    };
    let img = bzimage(4, 0x208, &payload);
    let (mut bm, mut runs) = pool(64);
    let mut fa = free_allocator(&mut bm, 64);
    assert!(matches!(unwrap_kernel(&img, &mut fa, &mut runs), Err(BzImageError::OutOfMemory { .. })));
    assert_eq!(fa.free_frames(), 64);
}

#[test]
fn corrupt_and_truncated_xz_payloads_are_errors() {
    let elf = kernel(None);
    let Some(payload) = xz_payload(&elf) else {
        std::println!("skipped: the `xz` tool is not available to make an XZ payload");
        return;
    };
    let decode = |p: &[u8]| -> Result<usize, BzImageError> {
        let img = bzimage(2, 0x20f, p);
        let Payload::Xz(xz) = inspect(&img)? else { return Err(BzImageError::UnknownFormat) };
        let mut out = vec![0u8; xz.uncompressed_len.div_ceil(PAGE_SIZE) * PAGE_SIZE];
        let mut dict = vec![0u8; xz.dict_len];
        unxz(&xz, &mut out, &mut dict)
    };
    assert_eq!(decode(&payload), Ok(elf.len()));
    // Flipped bytes in the compressed data: CRC or LZMA errors, never a panic.
    for at in (12..payload.len() - 4).step_by(7) {
        let mut p = payload.clone();
        p[at] ^= 0x55;
        assert!(decode(&p).is_err(), "corruption at {at} went unnoticed");
    }
    // Truncated streams (keeping a trailer of the right size).
    for cut in [13, 20, payload.len() / 2, payload.len() - 12] {
        let mut p = payload[..cut].to_vec();
        p.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert!(decode(&p).is_err(), "truncation at {cut} went unnoticed");
    }
    // A trailer that disagrees with the stream.
    let mut p = payload.clone();
    let n = p.len();
    p[n - 4..].copy_from_slice(&(elf.len() as u32 - 1).to_le_bytes());
    assert!(matches!(decode(&p), Err(BzImageError::SizeMismatch { .. })));
    p[n - 4..].copy_from_slice(&(elf.len() as u32 + 8192).to_le_bytes());
    assert!(matches!(decode(&p), Err(BzImageError::SizeMismatch { .. })));
    p[n - 4..].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode(&p), Err(BzImageError::BadUncompressedSize(0)));
}

#[test]
fn other_compression_formats_are_named() {
    for (magic, name) in [
        (&b"\x1f\x8b\x08\0"[..], "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x02\x21\x4c\x18", "lz4"),
        (b"BZh9", "bzip2"),
        (b"\x5d\0\0\x80", "lzma"),
        (b"\x89LZO\0\r\n\x1a\n", "lzo"),
    ] {
        let mut payload = magic.to_vec();
        payload.extend_from_slice(&[0; 16]);
        let err = inspect(&bzimage(1, 0x20f, &payload)).unwrap_err();
        assert_eq!(err, BzImageError::UnsupportedFormat(name));
        assert!(std::format!("{err}").contains(name));
    }
    assert_eq!(inspect(&bzimage(1, 0x20f, &[0x42; 32])), Err(BzImageError::UnknownFormat));
    assert_eq!(inspect(&bzimage(1, 0x20f, &[0x42; 3])), Err(BzImageError::PayloadTooShort));
}

#[test]
fn hostile_headers_are_errors() {
    let elf = kernel(None);
    let good = bzimage(1, 0x20f, &elf);
    assert_eq!(inspect(&bzimage(1, 0x207, &elf)), Err(BzImageError::ProtocolTooOld(0x207)));
    // Payload beyond the image, by length and by offset.
    let mut img = good.clone();
    img[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(inspect(&img), Err(BzImageError::PayloadOutOfBounds { .. })));
    let mut img = good.clone();
    img[0x248..0x24c].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(inspect(&img), Err(BzImageError::PayloadOutOfBounds { .. })));
    let mut img = good.clone();
    img[0x1f1] = 0xff;
    assert!(matches!(inspect(&img), Err(BzImageError::PayloadOutOfBounds { .. })));
    // Every truncation of the image: an error or (before "HdrS") not a bzImage.
    for len in 0..good.len() {
        match inspect(&good[..len]) {
            Ok(Payload::NotBzImage(_)) => assert!(len < 0x206),
            Ok(other) => panic!("truncated to {len}: {other:?}"),
            Err(_) => {}
        }
    }
    // The XZ block header: bad sizes and filter lists.
    let xz_with_block = |block: &[u8]| {
        let mut p = b"\xfd7zXZ\0\0\x01\0\0\0\0".to_vec();
        p.extend_from_slice(block);
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&4096u32.to_le_bytes());
        inspect(&bzimage(1, 0x20f, &p)).map(|_| ())
    };
    assert_eq!(xz_with_block(&[0x02, 0x00, 0x21, 0x01, 0x29, 0, 0, 0]), Err(BzImageError::BadXzHeader));
    assert_eq!(xz_with_block(&[0x02, 0x00, 0x03, 0x01, 0x10, 0, 0, 0]), Err(BzImageError::BadXzHeader));
    assert_eq!(xz_with_block(&[0x02, 0x00, 0x21, 0x09, 0x10, 0, 0, 0]), Err(BzImageError::BadXzHeader));
    assert_eq!(xz_with_block(&[0xff, 0x00, 0x21, 0x01, 0x10]), Err(BzImageError::BadXzHeader));
    assert!(matches!(
        xz_with_block(&[0x02, 0x00, 0x21, 0x01, 0x28, 0, 0, 0]),
        Err(BzImageError::DictionaryTooLarge(_))
    ));
    assert_eq!(xz_with_block(&[0x02, 0x00, 0x21, 0x01, 0x10, 0, 0, 0]), Ok(()));
}

#[test]
fn xz_decoder_needs_its_dictionary() {
    let elf = kernel(None);
    let Some(payload) = xz_payload(&elf) else {
        std::println!("skipped: the `xz` tool is not available to make an XZ payload");
        return;
    };
    let xz = XzPayload { stream: &payload, uncompressed_len: elf.len(), dict_len: 4096 };
    let mut out = vec![0u8; elf.len()];
    let mut dict = vec![0u8; 4096];
    assert_eq!(unxz(&xz, &mut out, &mut dict), Err(BzImageError::DictionaryTooLarge(1 << 20)));
}
