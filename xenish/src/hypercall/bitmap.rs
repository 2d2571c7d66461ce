//! `struct xenctl_bitmap`: CPU and node maps in the caller's memory, bit
//! `n` in byte `n / 8`, as Xen's `bitmap_to_xenctl_bitmap` and
//! `xenctl_bitmap_to_bitmap` copy them. xenish's maps have at most 64
//! bits (its CPUs and nodes), kept in a `u64`.

use guest_abi::errno::XenError;
use guest_abi::sysctl::XenctlBitmap;

use super::Ctx;

/// Writes the low `nbits` bits of `map` into the caller's bitmap: as many
/// bytes as both sides have, the rest of the caller's bytes zeroed (a
/// chunk at a time: the caller's map may be long, nothing is allocated).
pub fn write(ctx: &mut Ctx, to: &XenctlBitmap, map: u64, nbits: u32) -> Result<(), XenError> {
    const ZEROES: [u8; 512] = [0; 512];
    let guest_bytes = u64::from(to.nr_bits.div_ceil(8));
    let ours = u64::from(nbits.min(64).div_ceil(8));
    let mask = if nbits >= 64 { u64::MAX } else { (1u64 << nbits) - 1 };
    let bytes = (map & mask).to_le_bytes();
    let copied = guest_bytes.min(ours);
    let base = to.bitmap.addr();
    let efault = |_| XenError::Efault;
    if copied > 0 {
        ctx.guest().copy_to(base, &bytes[..copied as usize]).map_err(efault)?;
    }
    let mut at = copied;
    while at < guest_bytes {
        let n = (guest_bytes - at).min(ZEROES.len() as u64);
        ctx.guest().copy_to(base.wrapping_add(at), &ZEROES[..n as usize]).map_err(efault)?;
        at += n;
    }
    Ok(())
}

/// Reads the caller's bitmap as a map of `nbits` bits: bits past the
/// caller's `nr_bits` are clear, bits past `nbits` ignored.
pub fn read(ctx: &mut Ctx, from: &XenctlBitmap, nbits: u32) -> Result<u64, XenError> {
    let guest_bytes = from.nr_bits.div_ceil(8) as usize;
    let ours = nbits.min(64).div_ceil(8) as usize;
    let copied = guest_bytes.min(ours);
    let mut bytes = [0u8; 8];
    if copied > 0 {
        ctx.guest().copy_from(from.bitmap.addr(), &mut bytes[..copied]).map_err(|_| XenError::Efault)?;
        if !from.nr_bits.is_multiple_of(8) && guest_bytes == copied {
            bytes[copied - 1] &= !(0xffu8 << (from.nr_bits % 8));
        }
    }
    let mask = if nbits >= 64 { u64::MAX } else { (1u64 << nbits) - 1 };
    Ok(u64::from_le_bytes(bytes) & mask)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::super::{Ctx, Peers};
    use super::*;

    fn with_ctx<R>(w: &mut World, f: impl FnOnce(&mut Ctx) -> R) -> R {
        let mut ctx = Ctx {
            domain: &mut w.dom,
            vcpu: 0,
            mem: &mut w.mem,
            platform: &mut w.plat,
            now_ns: 0,
            peers: Peers::none(),
            frames: &mut w.pool,
            tlb: crate::flush::FlushReq::NONE,
            m2p: super::super::tests::M2P,
            sched: &mut w.sched,
            reload_gdt: false,
            ft: &mut w.ft,
            lifecycle: &mut w.lifecycle,
        };
        f(&mut ctx)
    }

    fn map(nr_bits: u32) -> XenctlBitmap {
        XenctlBitmap { bitmap: guest_abi::GuestHandle::from_ptr(BUF_VA as *const u8), nr_bits, _pad: [0; 4] }
    }

    #[test]
    fn writes_what_both_sides_have_and_zeroes_the_rest() {
        let mut w = World::new(true);
        w.poke(BUF_VA, &[0xaa; 4]);
        with_ctx(&mut w, |ctx| write(ctx, &map(20), 0b1, 1)).unwrap();
        assert_eq!(w.peek(BUF_VA, 4), [1, 0, 0, 0xaa], "3 bytes of the caller's: ours, then zeroes");
        w.poke(BUF_VA, &[0xaa; 2]);
        with_ctx(&mut w, |ctx| write(ctx, &map(0), 1, 1)).unwrap();
        assert_eq!(w.peek(BUF_VA, 1), [0xaa], "an empty map is left alone");
        let bad =
            XenctlBitmap { bitmap: guest_abi::GuestHandle::from_ptr(0x10 as *const u8), nr_bits: 8, _pad: [0; 4] };
        assert_eq!(with_ctx(&mut w, |ctx| write(ctx, &bad, 1, 1)), Err(XenError::Efault));
    }

    #[test]
    fn reads_only_the_callers_bits() {
        let mut w = World::new(true);
        w.poke(BUF_VA, &[0xff, 0xff]);
        assert_eq!(with_ctx(&mut w, |ctx| read(ctx, &map(3), 8)), Ok(0b111), "bits past nr_bits cleared");
        assert_eq!(with_ctx(&mut w, |ctx| read(ctx, &map(16), 1)), Ok(1), "bits past ours ignored");
        assert_eq!(with_ctx(&mut w, |ctx| read(ctx, &map(0), 1)), Ok(0));
    }
}
