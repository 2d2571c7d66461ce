//! A domU that uses its disks through guest-rt's blkif frontend, for the
//! block driver tests: started by `xl create` with `disk = [...]`, it
//! connects to every vbd in `device/vbd` (2 queues, 4-page rings,
//! persistent grants, up to 64 segments per request), and on each:
//!
//! - writable: checks a discard (written sectors read back as zeroes),
//!   writes the whole disk with a pattern in batches of mixed sizes
//!   (1 sector to 64 pages, direct and INDIRECT, spread over the queues),
//!   flushes, reads it all back and compares, and prints the disk's MD5;
//! - read-only: checks that a write is refused, and prints the MD5.
//!
//! Lines start with `blkfront: ` and go to both consoles; dom0 compares
//! `blkfront: <vdev>: md5 <hex>` with the image's `md5sum`. The last line
//! is `blkfront: done, N failures`; then it powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[path = "../md5.rs"]
mod md5;

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;

    use alloc::vec::Vec;

    use guest_abi::io::blkif::{BLKIF_RSP_OKAY, VDISK_READONLY};
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::blkfront::BlockDevice;
    use guest_rt::pv_drivers::blkif::front::{Completion, FrontConfig, Io, SubmitError};
    use guest_rt::pv_drivers::blkif::vdev;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{StorePort, TxId, XenStore};
    use guest_rt::{events, gnttab, heap, tee};

    use super::md5::{Hex, Md5};

    /// The heap: rings and data pools come from here.
    static mut HEAP: [u8; 6 << 20] = [0; 6 << 20];
    /// How long a connection or one batch may take.
    const TIMEOUT_NS: u64 = 60_000_000_000;
    /// Request sizes cycled through, in sectors.
    const SIZES: [u32; 6] = [1, 8, 88, 96, 256, 512];
    /// Requests in flight per queue at most.
    const DEPTH: usize = 16;

    /// The pattern byte stream: 8 bytes per (seed, offset / 8).
    fn pattern(seed: u64, offset: u64, out: &mut [u8]) {
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let mut z = seed ^ (offset / 8 + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }

    struct Run {
        failures: u32,
    }

    impl Run {
        fn check(&mut self, ok: bool, what: core::fmt::Arguments) {
            if !ok {
                self.failures += 1;
                say!("blkfront: FAILED: {what}");
            }
        }
    }

    /// Discarded sectors read back as zeroes.
    fn discard(dev: &mut BlockDevice, name: &str, run: &mut Run) {
        let mut data = [0u8; 8192];
        pattern(1, 0, &mut data);
        let w = dev.run(Io::Write { sector: 0, data: &data, fua: false }, TIMEOUT_NS);
        let d = dev.run(Io::Discard { sector: 8, sectors: 8 }, TIMEOUT_NS);
        let r = dev.run(Io::Read { sector: 0, sectors: 16 }, TIMEOUT_NS);
        let ok = match (w, d, r) {
            (Ok(w), Ok(d), Ok(r)) => {
                w.status == BLKIF_RSP_OKAY
                    && d.status == BLKIF_RSP_OKAY
                    && r.data.get(..4096) == Some(&data[..4096])
                    && r.data.get(4096..).is_some_and(|z| z.iter().all(|&b| b == 0))
            }
            _ => false,
        };
        say!("blkfront: {name}: discard {}", if ok { "zeroes the range" } else { "failed" });
        run.check(ok, format_args!("{name}: discard"));
    }

    /// Writes the whole disk with the pattern, in batches over the queues.
    fn write_all(dev: &mut BlockDevice, name: &str, seed: u64, sectors: u64, run: &mut Run) {
        let queues = dev.queues();
        let mut next = 0u64;
        let mut size = 0usize;
        let mut in_flight = alloc::vec![0usize; queues];
        let mut out: Vec<Completion> = Vec::new();
        let mut errors = 0;
        let deadline = events::system_time_ns() + 10 * TIMEOUT_NS;
        let mut buf = alloc::vec![0u8; 512 * 512];
        while next < sectors || in_flight.iter().any(|&n| n > 0) {
            for (q, flying) in in_flight.iter_mut().enumerate() {
                while next < sectors && *flying < DEPTH {
                    let n = u64::from(SIZES[size % SIZES.len()]).min(sectors - next);
                    let data = &mut buf[..n as usize * 512];
                    pattern(seed, next * 512, data);
                    match dev.submit(q, next, Io::Write { sector: next, data, fua: false }) {
                        Ok(()) => {
                            *flying += 1;
                            next += n;
                            size += 1;
                        }
                        Err(SubmitError::Busy) => break,
                        Err(e) => {
                            run.check(false, format_args!("{name}: submit: {e:?}"));
                            return;
                        }
                    }
                }
                dev.kick(q);
            }
            for (q, flying) in in_flight.iter_mut().enumerate() {
                if *flying == 0 {
                    continue;
                }
                out.clear();
                match dev.wait(q, &mut out, deadline) {
                    Ok(n) => *flying -= n,
                    Err(e) => {
                        run.check(false, format_args!("{name}: queue {q}: {e}"));
                        return;
                    }
                }
                errors += out.iter().filter(|c| c.status != BLKIF_RSP_OKAY).count();
            }
        }
        let flushed = dev.run(Io::Flush, TIMEOUT_NS).is_ok_and(|c| c.status == BLKIF_RSP_OKAY);
        say!(
            "blkfront: {name}: wrote {sectors} sectors, {errors} errors, flush {}",
            if flushed { "ok" } else { "failed" }
        );
        run.check(errors == 0 && flushed, format_args!("{name}: writes"));
    }

    /// Reads the whole disk; its MD5 and how many sectors differ from the
    /// pattern (if `seed` is given).
    fn read_all(dev: &mut BlockDevice, name: &str, seed: Option<u64>, sectors: u64, run: &mut Run) -> Hex {
        let mut md5 = Md5::new();
        let mut expect = alloc::vec![0u8; 128 * 512];
        let mut wrong = 0u64;
        let mut s = 0;
        while s < sectors {
            let n = 128u64.min(sectors - s);
            match dev.run(Io::Read { sector: s, sectors: n as u32 }, TIMEOUT_NS) {
                Ok(c) if c.status == BLKIF_RSP_OKAY && c.data.len() == n as usize * 512 => {
                    md5.update(&c.data);
                    if let Some(seed) = seed {
                        let e = &mut expect[..c.data.len()];
                        pattern(seed, s * 512, e);
                        wrong += c.data.chunks(512).zip(e.chunks(512)).filter(|(a, b)| a != b).count() as u64;
                    }
                }
                other => {
                    run.check(false, format_args!("{name}: read at {s}: {:?}", other.map(|c| c.status)));
                    break;
                }
            }
            s += n;
        }
        if seed.is_some() {
            say!("blkfront: {name}: read back {sectors} sectors, {wrong} differ");
            run.check(wrong == 0, format_args!("{name}: read back"));
        }
        Hex(md5.finish())
    }

    fn test_disk(si: &'static StartInfo, xs: &mut XenStore<StorePort>, devid: u32, run: &mut Run) {
        let name = vdev::xvd_name(devid).unwrap_or_default();
        let cfg = FrontConfig { queues: 2, ring_order: 2, persistent: true, pool_pages: 96, max_segments: 64 };
        let mut dev = match BlockDevice::connect(si, xs, devid, cfg, TIMEOUT_NS) {
            Ok(d) => d,
            Err(e) => {
                run.check(false, format_args!("{name}: connect: {e}"));
                return;
            }
        };
        let i = dev.info();
        let ro = i.info & VDISK_READONLY != 0;
        say!(
            "blkfront: {name}: {} sectors of {} bytes, read-only {}, flush {}, discard {}",
            i.sectors,
            i.sector_size,
            u8::from(ro),
            u8::from(i.flush),
            u8::from(i.discard)
        );
        say!(
            "blkfront: {name}: persistent grants {}, {} segments per request, {} queue(s), {} ring page(s)",
            u8::from(i.persistent),
            i.max_segments,
            i.queues,
            1u32 << i.ring_order
        );
        if ro {
            let data = [0x5au8; 512];
            let w = dev.run(Io::Write { sector: 0, data: &data, fua: false }, TIMEOUT_NS);
            let refused = w.as_ref().is_ok_and(|c| c.status != BLKIF_RSP_OKAY);
            say!("blkfront: {name}: write {}", if refused { "refused by the backend" } else { "accepted" });
            run.check(refused, format_args!("{name}: read-only write"));
            let md5 = read_all(&mut dev, &name, None, i.sectors, run);
            say!("blkfront: {name}: md5 {md5}");
        } else {
            if i.discard {
                discard(&mut dev, &name, run);
            }
            let seed = u64::from(devid);
            write_all(&mut dev, &name, seed, i.sectors, run);
            let md5 = read_all(&mut dev, &name, Some(seed), i.sectors, run);
            say!("blkfront: {name}: md5 {md5}");
        }
        match dev.close(xs, TIMEOUT_NS) {
            Ok(0) => say!("blkfront: {name}: closed, every grant ended"),
            Ok(n) => {
                say!("blkfront: {name}: closed, {n} grants still held by the backend");
                run.check(false, format_args!("{name}: grants held"));
            }
            Err(e) => run.check(false, format_args!("{name}: close: {e}")),
        }
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("blkfront: start");
        // SAFETY: HEAP is used only here, handed to the heap once.
        heap::init(unsafe { &mut *core::ptr::addr_of_mut!(HEAP) });
        if let Err(e) = events::init(si) {
            say!("blkfront: event setup failed: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        if let Err(e) = gnttab::init() {
            say!("blkfront: grant table setup failed: {e}");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let mut xs = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => {
                say!("blkfront: cannot open XenStore: {e}");
                guest_rt::shutdown(SHUTDOWN_CRASH)
            }
        };
        let mut devids: Vec<u32> = match xs.directory(TxId::NONE, "device/vbd") {
            Ok(names) => names.filter_map(|n| core::str::from_utf8(n).ok()?.parse().ok()).collect(),
            Err(e) => {
                say!("blkfront: no disks: {e}");
                Vec::new()
            }
        };
        devids.sort_unstable();
        let mut run = Run { failures: 0 };
        for devid in devids {
            test_disk(si, &mut xs, devid, &mut run);
        }
        say!("blkfront: done, {} failures", run.failures);
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
