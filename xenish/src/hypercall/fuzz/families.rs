//! The structured generators of the hypercall families with sub-ops:
//! `memory_op`, `grant_table_op`, `event_channel_op`, `sched_op`,
//! `vcpu_op` — each sub-op's structure laid out as Xen's public headers
//! define it, filled by [`Env`]'s value pickers.

use super::gen::{Env, Rec, DOMID_SELF};

extern crate std;

/// `memory_op`: reservations (increase, decrease, populate) with extent
/// lists of own or foreign frames, exchange, and the queries.
pub(super) fn memory_op(env: &mut Env) -> (u64, [u64; 5]) {
    let cmd = match env.rng.below(10) {
        0..=2 => env.rng.pick(&[0, 1, 6]),
        3 => 11,
        4 => env.rng.pick(&[2, 3, 4, 5, 9, 10, 12, 14, 25]),
        5 => env.rng.pick(&[7, 15, 23, 28, 26, 24, 27]),
        _ => env.rng.pick(&[0, 1, 6, 1, 1]),
    };
    let reservation = |e: &mut Env| {
        let n = e.count(6);
        let extents = e.array(n, |e| {
            let v = if e.rng.one_in(4) { e.rng.below(64) } else { e.mfn() };
            v.to_le_bytes().to_vec()
        });
        let order = e.rng.pick(&[0, 0, 0, 1, 9, 18, 63]);
        Rec::new(32).at(0, 8, extents).at(8, 8, n).at(16, 4, order).at(20, 4, 0).at(24, 2, e.domid()).done(e.rng)
    };
    let arg = match cmd {
        0 | 1 | 6 => {
            let r = reservation(env);
            env.put(r)
        }
        11 => {
            let (a, b) = (reservation(env), reservation(env));
            let mut x = a;
            x.extend(b);
            x.extend(env.rng.pick(&[0u64, 0, 1, 3]).to_le_bytes());
            env.put(x)
        }
        2 | 3 | 4 | 14 => {
            let r = Rec::new(8).at(0, 2, env.domid()).done(env.rng);
            env.put(r)
        }
        _ => {
            let r = Rec::new(64).at(0, 8, env.any()).at(8, 8, env.any()).at(16, 8, env.ptr()).done(env.rng);
            env.put(r)
        }
    };
    let start_extent = if env.rng.one_in(6) { env.rng.below(1 << 20) << 6 } else { 0 };
    let arg = if env.rng.one_in(12) { env.ptr() } else { arg };
    (12, [cmd | start_extent, arg, 0, 0, 0])
}

/// `grant_table_op`: every sub-op, arrays of them, over own and offered
/// grants, with odd counts and continuation bits.
pub(super) fn grant_table_op(env: &mut Env) -> (u64, [u64; 5]) {
    let cmd = if env.rng.one_in(20) {
        env.rng.below(16)
    } else {
        env.rng.pick(&[0, 0, 1, 1, 2, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12, 3])
    };
    let n = if env.rng.one_in(3) { env.count(4) } else { 1 };
    let list = match cmd {
        0 => env.array(n, |e| {
            let flags = e.rng.pick(&[1, 1, 1 | 4, 2, 3, 8, 1 | 8, 0]);
            let dom = if e.rng.one_in(3) { e.domid() } else { u64::from(e.other) };
            Rec::new(32).at(0, 8, e.va()).at(8, 4, flags).at(12, 4, e.gref()).at(16, 2, dom).done(e.rng)
        }),
        1 => env.array(n, |e| {
            let dev = if e.rng.one_in(3) { e.mfn() << 12 } else { 0 };
            Rec::new(24).at(0, 8, e.va()).at(8, 8, dev).at(16, 4, e.handle()).done(e.rng)
        }),
        2 => {
            let frames = env.array(4, |_| std::vec![0; 8]);
            let r = Rec::new(24).at(0, 2, env.domid()).at(4, 4, env.count(4)).at(16, 8, frames).done(env.rng);
            env.put(r)
        }
        4 => env.array(n, |e| Rec::new(24).at(0, 8, e.mfn()).at(8, 2, e.domid()).at(12, 4, e.gref()).done(e.rng)),
        5 => env.array(n, |e| {
            let flags = e.rng.pick(&[0, 1, 2, 3, 4, 1 | 4]);
            let src = if flags & 1 != 0 { e.gref() } else { e.mfn() };
            let dst = if flags & 2 != 0 { e.gref() } else { e.mfn() };
            let (sdom, ddom) = (if flags & 1 != 0 { u64::from(e.other) } else { e.domid() }, e.domid());
            Rec::new(40)
                .at(0, 8, src)
                .at(8, 2, sdom)
                .at(10, 2, e.rng.below(4200))
                .at(16, 8, dst)
                .at(24, 2, ddom)
                .at(26, 2, e.rng.below(4200))
                .at(32, 2, e.rng.pick(&[0, 1, 8, 100, 4096, 4097, 0xffff]))
                .at(34, 2, flags)
                .done(e.rng)
        }),
        6 | 10 => env.array(n, |e| Rec::new(16).at(0, 2, e.domid()).done(e.rng)),
        7 => env.array(n, |e| Rec::new(24).at(0, 8, e.va()).at(8, 8, e.va()).at(16, 4, e.handle()).done(e.rng)),
        8 => env.array(n, |e| Rec::new(4).at(0, 4, e.rng.pick(&[1, 2, 0, 3])).done(e.rng)),
        9 => {
            let frames = env.array(4, |_| std::vec![0; 8]);
            let r = Rec::new(16).at(0, 4, env.count(4)).at(4, 2, env.domid()).at(8, 8, frames).done(env.rng);
            env.put(r)
        }
        11 => env.array(n, |e| Rec::new(12).at(0, 4, e.gref()).at(4, 4, e.gref()).done(e.rng)),
        12 => env.array(n, |e| {
            Rec::new(16)
                .at(0, 8, e.gref())
                .at(8, 2, e.rng.below(4200))
                .at(10, 2, e.rng.below(4200))
                .at(12, 4, e.rng.below(8))
                .done(e.rng)
        }),
        _ => env.array(n, |e| Rec::new(32).at(0, 8, e.any()).at(8, 8, e.any()).done(e.rng)),
    };
    let high = if env.rng.one_in(12) { env.rng.below(1 << 20) << 12 } else { 0 };
    let list = if env.rng.one_in(12) { env.ptr() } else { list };
    (20, [cmd | high, list, n, 0, 0])
}

/// `event_channel_op`: every sub-op over own and the other's ports.
pub(super) fn event_channel_op(env: &mut Env) -> (u64, [u64; 5]) {
    let cmd = if env.rng.one_in(20) { env.rng.below(32) } else { env.rng.below(14) };
    // EVTCHNOP_reset closes every port: keep it rare; and offer and bind
    // more often, so channels between the two get made.
    let cmd = match cmd {
        10 if !env.rng.one_in(8) => 6,
        2 | 12 => env.rng.pick(&[0, 6, cmd]),
        _ => cmd,
    };
    let rec = match cmd {
        0 => Rec::new(12).at(0, 2, if env.rng.one_in(4) { env.domid() } else { u64::from(env.other) }).at(
            4,
            4,
            env.their_port(),
        ),
        1 => Rec::new(12).at(0, 4, env.rng.below(26)).at(4, 4, env.rng.pick(&[0, 0, 1, 64])),
        2 => Rec::new(12).at(0, 4, env.rng.below(64)),
        3 | 4 | 9 => Rec::new(4).at(0, 4, env.port()),
        5 => Rec::new(24).at(0, 2, env.domid()).at(4, 4, env.port()),
        6 => Rec::new(8).at(0, 2, if env.rng.one_in(3) { env.domid() } else { DOMID_SELF }).at(
            2,
            2,
            if env.rng.one_in(3) { env.domid() } else { u64::from(env.other) },
        ),
        7 => Rec::new(8).at(0, 4, env.rng.pick(&[0, 0, 1, 1 << 20])),
        8 => Rec::new(8).at(0, 4, env.port()).at(4, 4, env.rng.pick(&[0, 1])),
        10 => Rec::new(2).at(0, 2, env.domid()),
        11 => Rec::new(24).at(0, 8, env.mfn()).at(8, 4, env.rng.pick(&[0, 64, 4032, 4096])).at(
            12,
            4,
            env.rng.pick(&[0, 1]),
        ),
        12 => Rec::new(8).at(0, 8, env.mfn()),
        13 => Rec::new(8).at(0, 4, env.port()).at(4, 4, env.rng.below(20)),
        _ => Rec::new(24).at(0, 8, env.any()).at(8, 8, env.any()),
    };
    let rec = rec.done(env.rng);
    let arg = env.put(rec);
    let arg = if env.rng.one_in(16) { env.ptr() } else { arg };
    (32, [cmd, arg, 0, 0, 0])
}

/// `sched_op`: yield, poll, shutdown codes, remote shutdown of others,
/// watchdogs, and rarely a shutdown of the caller (outside multicalls).
pub(super) fn sched_op(env: &mut Env, in_multicall: bool) -> (u64, [u64; 5]) {
    let cmd = match env.rng.below(24) {
        0 if !in_multicall => 2,
        1 | 2 => 3,
        3 => 4,
        4 => 5,
        5 => 6,
        6 => env.rng.below(16),
        _ => 0,
    };
    let cmd = if in_multicall && (cmd == 1 || cmd == 2) { 0 } else { cmd };
    let rec = match cmd {
        2 | 5 => Rec::new(4).at(0, 4, env.rng.pick(&[0, 1, 2, 3, 4, 5, 0xffff])),
        3 => {
            let n = env.count(3);
            let ports = env.array(n, |e| (e.port() as u32).to_le_bytes().to_vec());
            Rec::new(24).at(0, 8, ports).at(8, 4, n).at(16, 8, env.rng.pick(&[0, 1, 1 << 40]))
        }
        4 => Rec::new(8).at(0, 2, env.domid()).at(4, 4, env.rng.below(5)),
        6 => Rec::new(8).at(0, 4, env.rng.below(4)).at(4, 4, env.rng.below(100)),
        _ => Rec::new(16).at(0, 8, env.any()),
    };
    let rec = rec.done(env.rng);
    let arg = env.put(rec);
    (29, [cmd, arg, 0, 0, 0])
}

/// `vcpu_op`: every sub-op on vCPU 0, absent vCPUs, areas in own frames.
pub(super) fn vcpu_op(env: &mut Env) -> (u64, [u64; 5]) {
    let cmd = if env.rng.one_in(10) { env.rng.below(32) } else { env.rng.below(14) };
    // VCPUOP_down of the only vCPU powers the domain off: keep it rare.
    let cmd = if cmd == 2 && !env.rng.one_in(8) { 3 } else { cmd };
    let vcpu = env.rng.pick(&[0, 0, 0, 1, 64, u64::from(u32::MAX)]);
    let rec = match cmd {
        10 => Rec::new(16).at(0, 8, env.mfn()).at(8, 4, env.rng.pick(&[0, 64, 4032, 4095])),
        5 | 13 => Rec::new(8).at(0, 8, env.ptr()),
        6 => Rec::new(8).at(0, 8, env.rng.pick(&[0, 1, 1_000_000, u64::MAX])),
        8 => Rec::new(16).at(0, 8, env.any()).at(8, 4, env.rng.below(2)),
        _ => Rec::new(64).at(0, 8, env.any()).at(8, 8, env.ptr()),
    };
    let rec = rec.done(env.rng);
    let arg = env.put(rec);
    (24, [cmd, vcpu, arg, 0, 0])
}
