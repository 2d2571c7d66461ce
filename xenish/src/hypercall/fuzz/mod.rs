//! The hostile-guest fuzzer: seeded random hypercall sequences from
//! several domains against the real dispatch, with every invariant checked
//! after every call.
//!
//! Three unprivileged domains share a fake machine ([`FuzzWorld`]): two
//! hostile ones (domain 0 and 1) issue random hypercalls with a mix of
//! plausible arguments (their own frames, grant references and ports they
//! hold or were offered, pointers into their buffer) and boundary or
//! garbage ones (0, -1, huge, misaligned, other domains' frames,
//! `DOMID_SELF`, unknown domains); the third, the *bystander*, never calls
//! and offers nothing. After each call:
//! - nothing panicked (a panic reachable from a guest is a hypervisor bug);
//! - the frame-table audit holds: every frame's reference and type counts
//!   equal what holds them, ownership matches the page lists, `tot_pages`
//!   and `max_pages` agree, frames are conserved ([`World::audit`]);
//! - the bystander is bit-identical: its domain state, the bytes of every
//!   frame it owns and of its shared_info, and their frame-table entries.
//!
//! A call that returns a continuation is re-issued as the guest's rewound
//! `syscall` would be; sometimes another call of the same domain comes
//! first (an upcall handler runs before the re-execution, as on Xen).
//! A hostile domain may shut itself down: the harness then destroys it as
//! the toolstack would ([`crate::lifecycle::destroy`], reaping it as the
//! frames others mapped come back) and builds a fresh domain with a new ID
//! in its place from pool frames.
//!
//! Everything derives from one seed, so a failure prints the seed and the
//! step, and `XENISH_FUZZ_SEED=<seed> XENISH_FUZZ_ITERATIONS=<steps>`
//! replays it; `XENISH_FUZZ_TRACE=<step>` prints every call from that step
//! on, with its outcome. The bounded run is an ordinary test; `cargo xtask fuzz`
//! runs the `#[ignore]`d long one in release mode.
//!
//! Why a test and not a binary or a cargo feature: the harness is the
//! test `World` of the hypercall layer (fake memory, pool, platform),
//! which exists only under `cfg(test)`; an ignored test run by xtask with
//! environment variables reuses it without exporting test doubles from
//! the hypervisor crate.

mod families;
mod gen;

use core::panic::AssertUnwindSafe;

use super::tests::{test_domain, World, BUF_VA};
use super::{dispatch, Ctx, Outcome, Peers};
use crate::domain::{DomId, Domain, DomainState};
use crate::guest_access::GuestMemory;
use crate::lifecycle::{self, Resources};
use crate::mm::frame_table::{Owner, PageType};
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{Mfn, PAGE_SIZE};

extern crate std;
use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

/// Frames of the fuzz machine.
const NR_FRAMES: usize = 192;
/// Frames a built domain gets: L4, L3, L2, L1, 4 buffer frames, its
/// shared_info (the hypervisor's), 7 spare frames.
const DOMAIN_FRAMES: usize = 16;
/// Pages a hostile domain may own (room to grow by memory_op).
const MAX_PAGES: u64 = 28;
/// The bystander's ID.
const BYSTANDER: DomId = 2;
/// Continuations one call may take before it counts as making no progress.
const MAX_CONTINUATIONS: u32 = 100_000;

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True once in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What the fuzzer knows of a hostile domain, as its guest kernel would.
#[derive(Clone, Debug)]
pub struct Guest {
    /// Its ID.
    pub id: DomId,
    /// Its frames in build order (see [`DOMAIN_FRAMES`]).
    pub frames: Vec<Mfn>,
    /// Calls made since its buffer was last found unmapped (0: mapped).
    pub broken: u32,
    /// Whether it is alive (not shut down).
    pub alive: bool,
}

impl Guest {
    fn l1(&self) -> Mfn {
        self.frames[3]
    }
    fn buffer(&self, i: usize) -> Mfn {
        self.frames[4 + i]
    }
}

/// One failure: what, where, and how to replay it.
#[derive(Debug)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The step (0-based) at which it happened.
    pub step: u64,
    /// The call: caller, number, arguments.
    pub call: (DomId, u64, [u64; 5]),
    /// What went wrong.
    pub what: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Hypercall invocations (continuations included).
    pub calls: u64,
    /// Invocations per hypercall number.
    pub per_hypercall: BTreeMap<u64, u64>,
    /// Per hypercall and sub-op (its first argument, for those that have
    /// one): invocations, and how many returned 0 or more.
    pub per_subop: BTreeMap<(u64, Option<u64>), (u64, u64)>,
    /// Calls that returned 0 or more.
    pub succeeded: u64,
    /// Continuations re-issued.
    pub continuations: u64,
    /// Domains shut down, destroyed and replaced, by shutdown reason.
    pub lifecycles: BTreeMap<String, u64>,
}

/// The machine: the test world with hostile domains and the bystander.
pub struct FuzzWorld {
    /// The hypercall layer's test world; `dom` is hostile domain 0.
    pub w: World,
    /// The hostile domains, as their kernels know themselves.
    pub guests: Vec<Guest>,
    /// The bystander's state when the run began.
    bystander: Snapshot,
    next_id: DomId,
}

/// Takes `n` frames for a new domain from the pool, lowest first.
fn take_frames(w: &mut World, n: usize) -> Option<Vec<Mfn>> {
    if w.pool.0.len() < n {
        return None;
    }
    w.pool.0.sort_unstable_by(|a, b| b.cmp(a));
    let at = w.pool.0.len() - n;
    let mut frames = w.pool.0.split_off(at);
    frames.reverse();
    Some(frames)
}

/// Builds a running one-vCPU unprivileged domain `id` over `frames` as a
/// domain builder would: page tables mapping the buffer at [`BUF_VA`],
/// the L4 validated, pinned and the vCPU's base pointer.
fn build(w: &mut World, id: DomId, frames: &[Mfn]) -> Domain {
    for &f in frames {
        w.mem.0[f.0 as usize] = [0; PAGE_SIZE];
    }
    let [l4, l3, l2, l1] = [frames[0], frames[1], frames[2], frames[3]];
    let va = BUF_VA;
    w.mem.set_entry(l4.0, (va >> 39) & 511, (l3.0 << 12) | 0x67);
    w.mem.set_entry(l3.0, (va >> 30) & 511, (l2.0 << 12) | 0x67);
    w.mem.set_entry(l2.0, (va >> 21) & 511, (l1.0 << 12) | 0x67);
    for i in 0..4 {
        w.mem.set_entry(l1.0, ((va >> 12) & 511) + i, (frames[4 + i as usize].0 << 12) | 0x67);
    }
    let si = frames[8];
    let mut d = test_domain(id, false, 0..0, Some(l4), si).domain;
    d.max_pages = MAX_PAGES;
    for &m in frames.iter().filter(|&&m| m != si) {
        w.ft.assign_page(m, id, &mut d.page_list).unwrap();
    }
    w.ft.set_owner(si, Owner::Xen).unwrap();
    let mut mmu = Mmu { ft: &mut w.ft, mem: &mut w.mem };
    mmu.pin(l4, 4, &MapRights::of(&d)).unwrap();
    mmu.get_page_and_type(l4, &MapRights::of(&d), PageType::L4).unwrap();
    d
}

impl FuzzWorld {
    /// The machine: the test world's domain 0 made hostile, hostile
    /// domain 1 and the bystander built from new frames, the rest free.
    pub fn new() -> Self {
        let mut w = World::new(false);
        w.grow(NR_FRAMES);
        w.dom.max_pages = MAX_PAGES;
        w.pool.0.extend((24..NR_FRAMES as u64).map(Mfn));
        let mut guests = std::vec![Guest { id: 0, frames: (0..16).map(Mfn).collect(), broken: 0, alive: true }];
        // World::new's domain 0: buffer frames 4..8, shared_info 8; spare
        // 9 is its own. Frames 10..16 are outside (14 the M2P table).
        guests[0].frames.truncate(10);
        for id in [1, BYSTANDER] {
            let frames = take_frames(&mut w, DOMAIN_FRAMES).unwrap();
            let d = build(&mut w, id, &frames);
            w.peers.push(d);
            if id != BYSTANDER {
                guests.push(Guest { id, frames, broken: 0, alive: true });
            }
        }
        let mut f = FuzzWorld { w, guests, bystander: Snapshot::default(), next_id: 10 };
        f.bystander = f.bystander_state();
        f
    }

    /// Index of domain `id` in [`World`]: 0 for `dom`, `k + 1` for
    /// `peers[k]`.
    fn slot(&self, id: DomId) -> Option<usize> {
        if self.w.dom.id == id {
            return Some(0);
        }
        self.w.peers.iter().position(|d| d.id == id).map(|k| k + 1)
    }

    /// Domain `id`.
    pub fn domain(&self, id: DomId) -> Option<&Domain> {
        core::iter::once(&self.w.dom).chain(self.w.peers.iter()).find(|d| d.id == id)
    }

    /// Serves hypercall `nr` from domain `id`'s vCPU 0; a panic comes back
    /// as its message.
    pub fn call_as(&mut self, id: DomId, nr: u64, args: [u64; 5]) -> Result<Outcome, String> {
        let slot = self.slot(id).ok_or_else(|| format!("no domain {id}"))?;
        if slot > 0 {
            core::mem::swap(&mut self.w.dom, &mut self.w.peers[slot - 1]);
        }
        let w = &mut self.w;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Ctx {
                domain: &mut w.dom,
                vcpu: 0,
                mem: &mut w.mem,
                platform: &mut w.plat,
                now_ns: w.now_ns,
                peers: Peers { before: &mut [], after: &mut w.peers },
                frames: &mut w.pool,
                tlb: crate::flush::FlushReq::NONE,
                m2p: super::tests::M2P,
                sched: &mut w.sched,
                reload_gdt: false,
                ft: &mut w.ft,
                lifecycle: &mut w.lifecycle,
            };
            dispatch(&mut ctx, nr, args)
        }));
        if slot > 0 {
            core::mem::swap(&mut self.w.dom, &mut self.w.peers[slot - 1]);
        }
        self.w.plat.out.clear();
        result.map_err(|e| panic_message(&*e))
    }

    /// Writes `data` at `va` in domain `id`'s address space (as its
    /// kernel would); false if that is not mapped.
    pub fn poke(&mut self, id: DomId, va: u64, data: &[u8]) -> bool {
        let Some(l4) = self.domain(id).and_then(|d| d.vcpus.first()).map(|v| v.kernel_l4) else { return false };
        GuestMemory::new(&mut self.w.mem, l4).copy_to(va, data).is_ok()
    }

    /// Reads `len` bytes at `va` in domain `id`'s address space.
    pub fn peek(&mut self, id: DomId, va: u64, len: usize) -> Option<Vec<u8>> {
        let l4 = self.domain(id).and_then(|d| d.vcpus.first()).map(|v| v.kernel_l4)?;
        let mut b = std::vec![0u8; len];
        GuestMemory::new(&mut self.w.mem, l4).copy_from(va, &mut b).ok()?;
        Some(b)
    }

    /// Everything of the bystander's that no other domain may change: its
    /// state, and the frame-table entry and bytes of each of its frames.
    fn bystander_state(&self) -> Snapshot {
        let Some(d) = self.domain(BYSTANDER) else { return Snapshot::default() };
        let frames: Vec<Mfn> = self.w.ft.pages(&d.page_list).chain(core::iter::once(d.shared_info)).collect();
        let mut bytes = Vec::with_capacity(frames.len() * PAGE_SIZE);
        for m in &frames {
            bytes.extend_from_slice(&self.w.mem.0[m.0 as usize]);
        }
        let infos = frames.iter().map(|&m| (m, self.w.ft.info(m).copied())).collect();
        let mut state = StateHash(std::hash::DefaultHasher::new());
        let _ = core::fmt::write(&mut state, format_args!("{d:?}"));
        Snapshot { state: std::hash::Hasher::finish(&state.0), infos, bytes }
    }

    /// Checks every invariant; the first broken one as a message.
    pub fn check(&self) -> Result<(), String> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.w.audit()))
            .map_err(|e| format!("audit: {}", panic_message(&*e)))?;
        let now = self.bystander_state();
        if now != self.bystander {
            let (a, b) = (&self.bystander, &now);
            let page = a.bytes.iter().zip(&b.bytes).position(|(x, y)| x != y).map(|i| i / PAGE_SIZE);
            return Err(format!(
                "the bystander changed: state {}, frames {:?} -> {:?}, first changed page {page:?}; now {:?}",
                if a.state == b.state { "same" } else { "differs" },
                a.infos,
                b.infos,
                self.domain(BYSTANDER),
            ));
        }
        Ok(())
    }

    /// The caller's exit, as far as its exit work word goes: every vCPU
    /// the call left down, blocked, yielding or polling must have the word
    /// set (else the system's exit would skip its look: a setter of
    /// [`crate::domain::Vcpu::exit_work`] is missing); then the look, the
    /// wake-up and the run that clear it, so that the next call that sets
    /// something without the word is caught too.
    fn exit(&mut self, id: DomId) -> Result<(), String> {
        let Some(slot) = self.slot(id) else { return Ok(()) };
        let d = match slot.checked_sub(1) {
            None => &mut self.w.dom,
            Some(k) => match self.w.peers.get_mut(k) {
                Some(d) => d,
                None => return Ok(()),
            },
        };
        for (i, v) in d.vcpus.iter_mut().enumerate() {
            if !v.exit_work && v.needs_exit_look() {
                return Err(format!(
                    "d{id} vCPU {i}: exit work word clear, but down {} blocked {} yielded {} polling {}",
                    v.down,
                    v.blocked,
                    v.yielded,
                    v.poll.is_some()
                ));
            }
            (v.yielded, v.blocked, v.poll) = (false, false, None);
            v.exit_work = v.down;
        }
        Ok(())
    }

    /// The toolstack's part when a hostile domain has shut down: destroy
    /// it, and build a fresh one with a new ID from pool frames.
    fn replace_dead(&mut self, stats: &mut Stats) -> Result<(), String> {
        for gi in 0..self.guests.len() {
            let id = self.guests[gi].id;
            let Some(d) = self.domain(id) else { continue };
            let DomainState::Shutdown(reason) = d.state else { continue };
            self.guests[gi].alive = false;
            let slot = self.slot(id).unwrap_or(0);
            self.with_all(|domains, res| {
                if let Some(d) = domains.get_mut(slot) {
                    d.state = DomainState::Dying(Some(reason));
                }
                lifecycle::destroy(domains, slot, res);
                // The toolstack's next domain takes scrubbed frames only.
                lifecycle::scrub(res, u64::MAX);
            })?;
            let reason = match reason {
                crate::domain::ShutdownReason::Other(_) => String::from("Other"),
                known => format!("{known:?}"),
            };
            *stats.lifecycles.entry(reason).or_default() += 1;
            let Some(frames) = take_frames(&mut self.w, DOMAIN_FRAMES) else { continue };
            let id = self.next_id;
            self.next_id += 1;
            let d = build(&mut self.w, id, &frames);
            self.w.peers.push(d);
            self.guests[gi] = Guest { id, frames, broken: 0, alive: true };
        }
        // Reap the dying: their frames others mapped may be back.
        self.with_all(|domains, res| {
            for d in domains.iter_mut() {
                lifecycle::reap(d, res);
            }
        })
    }

    /// Runs `f` over every domain as one slice (the system's view).
    fn with_all(&mut self, f: impl FnOnce(&mut [Domain], &mut Resources)) -> Result<(), String> {
        let w = &mut self.w;
        let placeholder = test_domain(DomId::MAX - 1, false, 0..0, None, Mfn(u64::MAX)).domain;
        let mut all = std::vec![core::mem::replace(&mut w.dom, placeholder)];
        all.append(&mut w.peers);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut res = Resources { ft: &mut w.ft, mem: &mut w.mem, pool: &mut w.pool, m2p: super::tests::M2P };
            f(&mut all, &mut res);
        }));
        let mut all = all.into_iter();
        w.dom = all.next().unwrap();
        w.peers.extend(all);
        result.map_err(|e| format!("teardown: {}", panic_message(&*e)))
    }
}

/// What the bystander must keep: see [`FuzzWorld::bystander_state`].
#[derive(Debug, Default, PartialEq, Eq)]
struct Snapshot {
    /// A hash of the domain's `Debug` form (every field of it).
    state: u64,
    infos: Vec<(Mfn, Option<crate::mm::frame_table::PageInfo>)>,
    bytes: Vec<u8>,
}

/// Feeds formatted text to a hasher without building a string.
struct StateHash(std::hash::DefaultHasher);

impl core::fmt::Write for StateHash {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        std::hash::Hasher::write(&mut self.0, s.as_bytes());
        Ok(())
    }
}

fn panic_message(e: &(dyn core::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| String::from(*s))
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| String::from("panic"))
}

/// Runs `iterations` steps from `seed`: the statistics, and the first
/// failure if there was one (the run stops there).
pub fn run(seed: u64, iterations: u64) -> (Stats, Option<Failure>) {
    // Crashing domains print; tests reading the console ring wait.
    let _console = super::tests::CONSOLE_RING.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = FuzzWorld::new();
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    // Per hostile domain: a continuation its vCPU must re-execute.
    let mut pending: BTreeMap<DomId, (u64, [u64; 5], u32)> = BTreeMap::new();
    if let Err(what) = f.check() {
        return (stats, Some(Failure { seed, step: 0, call: (0, 0, [0; 5]), what }));
    }
    let trace_from = std::env::var("XENISH_FUZZ_TRACE").ok().and_then(|v| parse_u64(&v)).unwrap_or(u64::MAX);
    for step in 0..iterations {
        f.w.now_ns += 1 + rng.below(50_000);
        let alive: Vec<usize> = (0..f.guests.len()).filter(|&g| f.guests[g].alive).collect();
        if alive.is_empty() {
            break;
        }
        let gi = rng.pick(&alive);
        let id = f.guests[gi].id;
        let (nr, args, resumed) = match pending.remove(&id) {
            Some((nr, args, n)) if !rng.one_in(8) => (nr, args, n + 1),
            other => {
                if let Some(p) = other {
                    pending.insert(id, p);
                }
                let (nr, args) = gen::call(&mut f, gi, &mut rng);
                (nr, args, 0)
            }
        };
        let fail = |what: String| Some(Failure { seed, step, call: (id, nr, args), what });
        stats.calls += 1;
        *stats.per_hypercall.entry(nr.min(64)).or_default() += 1;
        stats.per_subop.entry(gen::subop(nr, args)).or_default().0 += 1;
        stats.continuations += u64::from(resumed > 0);
        let outcome = f.call_as(id, nr, args);
        if step >= trace_from {
            std::println!("step {step}: d{id} {} {nr} {args:x?} -> {outcome:x?}", gen::name(nr));
        }
        match outcome {
            Err(msg) => return (stats, fail(format!("hypervisor panic: {msg}"))),
            Ok(Outcome::Return(v)) => {
                stats.succeeded += u64::from(v >= 0);
                stats.per_subop.entry(gen::subop(nr, args)).or_default().1 += u64::from(v >= 0);
            }
            Ok(Outcome::Continue(next)) => {
                if resumed >= MAX_CONTINUATIONS {
                    return (stats, fail(format!("{resumed} continuations without finishing")));
                }
                pending.insert(id, (nr, next, resumed));
            }
        }
        if let Err(what) = f.check() {
            return (stats, fail(what));
        }
        if let Err(what) = f.exit(id) {
            return (stats, fail(what));
        }
        let before = stats.lifecycles.values().sum::<u64>();
        if let Err(what) = f.replace_dead(&mut stats) {
            return (stats, fail(what));
        }
        if stats.lifecycles.values().sum::<u64>() != before {
            pending.retain(|id, _| f.guests.iter().any(|g| g.id == *id && g.alive));
            if let Err(what) = f.check() {
                return (stats, fail(format!("after a teardown: {what}")));
            }
        }
    }
    (stats, None)
}

/// The seed and step count from the environment, with defaults.
fn from_env(default_iterations: u64) -> (u64, u64) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| parse_u64(&v));
    (var("XENISH_FUZZ_SEED").unwrap_or(0x5eed), var("XENISH_FUZZ_ITERATIONS").unwrap_or(default_iterations))
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Runs and reports; panics (failing the test) on any failure.
fn run_and_report(seed: u64, iterations: u64) {
    let start = std::time::Instant::now();
    let (stats, failure) = run(seed, iterations);
    let secs = start.elapsed().as_secs_f64();
    std::println!(
        "xenish fuzz: seed {seed:#x}: {} calls in {secs:.1} s ({:.0} calls/s); {} succeeded, {} continuations, \
         domains destroyed and replaced: {:?}",
        stats.calls,
        stats.calls as f64 / secs.max(1e-9),
        stats.succeeded,
        stats.continuations,
        stats.lifecycles,
    );
    std::println!("per hypercall: calls");
    for (nr, n) in &stats.per_hypercall {
        std::println!("  {:>3} {:<30} {n}", nr, gen::name(*nr));
    }
    std::println!("per sub-op: calls, returned >= 0");
    for ((nr, sub), (n, ok)) in stats.per_subop.iter().filter(|((_, sub), _)| sub.is_some()) {
        std::println!("  {:<24} {:>3} {n:>9} {ok:>9}", gen::name(*nr), sub.unwrap_or(0));
    }
    match failure {
        None => std::println!("hypervisor faults 0, audit failures 0, cross-domain effects 0"),
        Some(f) => panic!(
            "FAILED at step {} (replay: XENISH_FUZZ_SEED={:#x} XENISH_FUZZ_ITERATIONS={}): d{} called {} {:#x?}: {}",
            f.step,
            f.seed,
            f.step + 1,
            f.call.0,
            f.call.1,
            f.call.2,
            f.what
        ),
    }
}

/// The bounded run `cargo xtask test` includes: a few seconds.
#[test]
fn hostile_domains_leave_audit_accounting_and_bystander_intact() {
    // A few seconds either way (debug builds are ~8x slower).
    let (seed, iterations) = from_env(if cfg!(debug_assertions) { 4_000 } else { 20_000 });
    run_and_report(seed, iterations);
}

/// The long run: `cargo xtask fuzz --iterations N [--seed S]`.
#[test]
#[ignore = "long; run by `cargo xtask fuzz`"]
fn long_run() {
    let (seed, iterations) = from_env(1_000_000);
    run_and_report(seed, iterations);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (a, fa) = run(42, 1_000);
    let (b, fb) = run(42, 1_000);
    assert!(fa.is_none() && fb.is_none(), "{fa:?}");
    assert_eq!((a.calls, a.succeeded, &a.per_hypercall), (b.calls, b.succeeded, &b.per_hypercall));
}
