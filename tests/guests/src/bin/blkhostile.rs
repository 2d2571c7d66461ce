//! A domU that attacks its block backend, for the hostile-frontend test:
//! it connects to `xvda` (writable) and `xvdb` (read-only) like a normal
//! frontend, then sends requests no correct frontend sends — bad grant
//! references, a grant meant for another domain, segments outside their
//! page, too many segments, sectors past the end, writes to the
//! read-only disk, unknown operations, broken INDIRECT requests — and
//! prints each answer; then it makes `xvda`'s ring index jump far ahead
//! and waits for the backend to close the device.
//!
//! Lines start with `blkhostile: `; the last is `blkhostile: done, N
//! unexpected answers`. It writes nothing to either disk except sector 0
//! of `xvda` (the one valid write, to show the device still works).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;

    use alloc::vec::Vec;

    use guest_abi::io::blkif::{
        BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BLKIF_OP_DISCARD,
        BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
    };
    use guest_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use guest_abi::xen::StartInfo;
    use guest_rt::blkfront::{BlockDevice, GuestStore};
    use guest_rt::pv_drivers::blkif::front::{Completion, FrontConfig, FrontendPlatform, SharedPage};
    use guest_rt::pv_drivers::store::read_state;
    use guest_rt::pv_drivers::xenbus::XenbusState;
    use guest_rt::tee_println as say;
    use guest_rt::xenstore::{StorePort, XenStore};
    use guest_rt::{events, gnttab, heap, tee};
    use zerocopy::{FromZeros, IntoBytes};

    static mut HEAP: [u8; 2 << 20] = [0; 2 << 20];
    const TIMEOUT_NS: u64 = 30_000_000_000;
    const XVDA: u32 = 51712;
    const XVDB: u32 = 51728;

    fn raw(op: u32, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
        let mut r = BlkifRequest::new_zeroed();
        r.operation = op as u8;
        r.id = id;
        r.sector_number = sector;
        r.nr_segments = segs.len() as u8;
        for (slot, &(gref, first_sect, last_sect)) in r.seg.iter_mut().zip(segs) {
            *slot = BlkifRequestSegment { gref, first_sect, last_sect, _pad0: [0; 2] };
        }
        r
    }

    fn indirect(op: u8, id: u64, nr: u16, list: u32) -> BlkifRequest {
        let mut ind = BlkifRequestIndirect::new_zeroed();
        ind.operation = BLKIF_OP_INDIRECT as u8;
        ind.indirect_op = op;
        ind.nr_segments = nr;
        ind.id = id;
        ind.indirect_grefs[0] = list;
        let mut r = BlkifRequest::new_zeroed();
        r.as_mut_bytes()[..64].copy_from_slice(ind.as_bytes());
        r
    }

    /// Sends `req` raw on queue 0 and returns the status it got.
    fn send(dev: &mut BlockDevice, req: &BlkifRequest, echo: u8) -> Option<i16> {
        let q = dev.queue(0)?;
        q.submit_raw(req.id, req, echo).ok()?;
        dev.kick(0);
        let mut out: Vec<Completion> = Vec::new();
        let deadline = events::system_time_ns() + TIMEOUT_NS;
        while out.is_empty() {
            dev.wait(0, &mut out, deadline).ok()?;
        }
        out.pop().map(|c| c.status)
    }

    struct Tally(u32);

    fn expect(dev: &mut BlockDevice, t: &mut Tally, what: &str, req: BlkifRequest, echo: u8, want: i16) {
        let got = send(dev, &req, echo);
        let name = |s: Option<i16>| match s {
            Some(BLKIF_RSP_OKAY) => "OKAY",
            Some(BLKIF_RSP_ERROR) => "ERROR",
            Some(BLKIF_RSP_EOPNOTSUPP) => "EOPNOTSUPP",
            Some(_) => "other",
            None => "no answer",
        };
        say!("blkhostile: {what}: {}", name(got));
        if got != Some(want) {
            t.0 += 1;
        }
    }

    fn attack(si: &'static StartInfo, xs: &mut XenStore<StorePort>, t: &mut Tally) {
        // Plain frontends otherwise: persistent grants off, so that every
        // data access goes through the backend's checks by grant copy.
        let cfg = FrontConfig { queues: 1, ring_order: 0, persistent: false, pool_pages: 16, max_segments: 32 };
        let mut a = match BlockDevice::connect(si, xs, XVDA, cfg, TIMEOUT_NS) {
            Ok(d) => d,
            Err(e) => {
                say!("blkhostile: cannot connect xvda: {e}");
                t.0 += 1;
                return;
            }
        };
        let mut b = match BlockDevice::connect(si, xs, XVDB, cfg, TIMEOUT_NS) {
            Ok(d) => d,
            Err(e) => {
                say!("blkhostile: cannot connect xvdb: {e}");
                t.0 += 1;
                return;
            }
        };
        let sectors = a.info().sectors;
        let good = a.queue(0).and_then(|q| q.pool_gref(0)).unwrap_or(0);
        let list = a.queue(0).and_then(|q| q.pool_gref(1)).unwrap_or(0);
        let good_b = b.queue(0).and_then(|q| q.pool_gref(0)).unwrap_or(0);
        // A page of ours granted to domain 7, not to the backend.
        let page = a.platform().alloc_page().ok();
        let foreign = page.as_ref().and_then(|p| gnttab::grant(7, p.frame(), false).ok()).unwrap_or(0);
        let (w, r) = (BLKIF_OP_WRITE, BLKIF_OP_READ);
        let (err, nosup) = (BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP);
        expect(&mut a, t, "bad grant reference", raw(w, 1, 0, &[(99_999, 0, 7)]), 1, err);
        expect(&mut a, t, "grant for another domain", raw(w, 2, 0, &[(foreign, 0, 7)]), 1, err);
        expect(&mut a, t, "segment past its page", raw(w, 3, 0, &[(good, 0, 8)]), 1, err);
        expect(&mut a, t, "first sector after last", raw(r, 4, 0, &[(good, 5, 2)]), 0, err);
        let mut twelve = raw(w, 5, 0, &[(good, 0, 7)]);
        twelve.nr_segments = 12;
        expect(&mut a, t, "12 segments", twelve, 1, err);
        expect(&mut a, t, "no segments", raw(r, 6, 0, &[]), 0, err);
        expect(&mut a, t, "sectors past the end", raw(w, 7, sectors - 4, &[(good, 0, 7)]), 1, err);
        expect(&mut a, t, "sector number overflow", raw(r, 8, u64::MAX - 3, &[(good, 0, 7)]), 0, err);
        expect(&mut a, t, "unknown operation", raw(200, 9, 0, &[]), 200, nosup);
        expect(&mut a, t, "INDIRECT with a bad list grant", indirect(w as u8, 10, 8, 99_999), 1, err);
        expect(&mut a, t, "INDIRECT without segments", indirect(w as u8, 11, 0, list), 1, err);
        expect(&mut a, t, "INDIRECT beyond the maximum", indirect(w as u8, 12, 4000, list), 1, err);
        expect(&mut a, t, "INDIRECT flush", indirect(3, 13, 1, list), 3, err);
        let mut d = BlkifRequestDiscard::new_zeroed();
        d.operation = BLKIF_OP_DISCARD as u8;
        d.id = 14;
        d.sector_number = sectors - 1;
        d.nr_sectors = 2;
        let mut discard = BlkifRequest::new_zeroed();
        discard.as_mut_bytes()[..32].copy_from_slice(d.as_bytes());
        expect(&mut a, t, "discard past the end", discard, 5, err);
        expect(&mut b, t, "write to the read-only disk", raw(w, 15, 0, &[(good_b, 0, 7)]), 1, err);
        expect(&mut b, t, "discard on the read-only disk (not offered)", discard, 5, nosup);
        expect(&mut a, t, "a valid write after all that", raw(w, 16, 0, &[(good, 0, 0)]), 1, BLKIF_RSP_OKAY);
        expect(&mut b, t, "a valid read of the read-only disk", raw(r, 17, 0, &[(good_b, 0, 7)]), 0, BLKIF_RSP_OKAY);

        // The ring index jumps: req_prod far beyond what the ring holds.
        let ring = a.queue(0).and_then(|q| q.ring_frames().first().copied());
        let addr = ring.and_then(|f| a.platform().ring_address(f));
        match addr {
            Some(p) => {
                // SAFETY: `req_prod`, the first u32 of our own ring page,
                // mapped for as long as the device lives.
                unsafe { (p as *mut u32).write_volatile(1000) };
                if let Some(q) = a.queue(0) {
                    let port = q.port();
                    let _ = guest_abi::hypercall::evtchn_send(port);
                }
            }
            None => t.0 += 1,
        }
        let dir = a_backend_dir(xs);
        let state = alloc::format!("{dir}/state");
        let _ = xs.watch(&state, "jump");
        let deadline = events::system_time_ns() + TIMEOUT_NS;
        let mut closed = false;
        while events::system_time_ns() < deadline {
            let s = read_state(&mut GuestStore(xs), &dir).ok().flatten();
            if matches!(s, Some(XenbusState::Closing | XenbusState::Closed)) {
                closed = true;
                break;
            }
            let _ = xs.next_watch_event(deadline);
        }
        let _ = xs.unwatch(&state, "jump");
        say!(
            "blkhostile: ring index jump: {}",
            if closed { "the backend closed the device" } else { "nothing happened" }
        );
        if !closed {
            t.0 += 1;
        }
        let _ = b.close(xs, TIMEOUT_NS);
    }

    /// xvda's backend directory.
    fn a_backend_dir(xs: &mut XenStore<StorePort>) -> alloc::string::String {
        let path = alloc::format!("device/vbd/{XVDA}/backend");
        xs.read(guest_rt::xenstore::TxId::NONE, &path)
            .map(|v| alloc::string::String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }

    fn main(si: &'static StartInfo) -> ! {
        tee::init(si);
        say!("blkhostile: start");
        // SAFETY: HEAP is used only here, handed to the heap once.
        heap::init(unsafe { &mut *core::ptr::addr_of_mut!(HEAP) });
        if events::init(si).is_err() || gnttab::init().is_err() {
            say!("blkhostile: event or grant table setup failed");
            guest_rt::shutdown(SHUTDOWN_CRASH);
        }
        let mut xs = match XenStore::open(si) {
            Ok(xs) => xs,
            Err(e) => {
                say!("blkhostile: cannot open XenStore: {e}");
                guest_rt::shutdown(SHUTDOWN_CRASH)
            }
        };
        let mut t = Tally(0);
        attack(si, &mut xs, &mut t);
        say!("blkhostile: done, {} unexpected answers", t.0);
        guest_rt::shutdown(SHUTDOWN_POWEROFF)
    }

    guest_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {}
