//! Where an unwrapped kernel lives while its domain is built: a compressed
//! bzImage payload is decompressed into contiguous machine frames taken from
//! the frame allocator (a Linux kernel is far larger than the hypervisor
//! heap), together with the XZ dictionary, and the frames go back once the
//! domain is built. The format logic is [`super::bzimage`]'s.

use super::bzimage::{self, BzImageError, Payload};
use crate::mm::{FramePool, Mfn, PAGE_SIZE};

/// Byte access to runs of contiguous machine frames: the direct map on
/// hardware, a buffer in host tests. Only frames the caller allocated for
/// its own use may be asked for.
pub trait ContiguousMemory {
    /// The `count` frames from `first` as one slice, or `None` if they are
    /// not all mapped RAM.
    fn bytes_mut(&mut self, first: Mfn, count: u64) -> Option<&mut [u8]>;
}

/// A kernel ready for the ELF parser, and the frames holding it, if any.
pub struct KernelImage<'m> {
    bytes: &'m [u8],
    held: Option<(Mfn, u64)>,
}

impl KernelImage<'_> {
    /// The ELF bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// Frames held for the decompressed kernel (0 when used in place).
    pub fn held_frames(&self) -> u64 {
        self.held.map_or(0, |(_, n)| n)
    }

    /// Returns the frames holding the kernel to the allocator.
    pub fn release(self, frames: &mut dyn FramePool) {
        if let Some((first, count)) = self.held {
            free_run(frames, first, count);
        }
    }
}

fn free_run(frames: &mut dyn FramePool, first: Mfn, count: u64) {
    for f in first.0..first.0 + count {
        // The run was allocated by `unwrap_kernel` and is freed once.
        frames.free(Mfn(f));
    }
}

/// Unwraps `image` (see [`bzimage::inspect`]): an ELF or a bzImage with an
/// ELF payload is used in place; an XZ payload is decompressed into frames
/// from `frames`, reached through `mem`, which the caller must
/// [`KernelImage::release`] once the domain is built.
pub fn unwrap_kernel<'m>(
    image: &'m [u8],
    frames: &mut dyn FramePool,
    mem: &'m mut dyn ContiguousMemory,
) -> Result<KernelImage<'m>, BzImageError> {
    let xz = match bzimage::inspect(image)? {
        Payload::NotBzImage(bytes) | Payload::Elf(bytes) => return Ok(KernelImage { bytes, held: None }),
        Payload::Xz(xz) => xz,
    };
    let out_frames = xz.uncompressed_len.div_ceil(PAGE_SIZE) as u64;
    let dict_frames = xz.dict_len.div_ceil(PAGE_SIZE) as u64;
    let total = out_frames + dict_frames;
    let first = frames.alloc_contiguous(total, 1).ok_or(BzImageError::OutOfMemory { frames: total })?;
    let Some(run) = mem.bytes_mut(first, total) else {
        free_run(frames, first, total);
        return Err(BzImageError::OutOfMemory { frames: total });
    };
    let (out, dict) = run.split_at_mut(out_frames as usize * PAGE_SIZE);
    let result = bzimage::unxz(&xz, out, dict);
    // The dictionary is not needed once the stream is decoded.
    free_run(frames, Mfn(first.0 + out_frames), dict_frames);
    match result {
        Ok(len) => {
            let out: &'m [u8] = out;
            Ok(KernelImage { bytes: out.get(..len).unwrap_or_default(), held: Some((first, out_frames)) })
        }
        Err(e) => {
            free_run(frames, first, out_frames);
            Err(e)
        }
    }
}
