//! Argument generation for the fuzzer: per hypercall and sub-op, the
//! structures a guest would pass (written into its buffer at [`BUF_VA`]),
//! filled with a mix of plausible values — the caller's own frames, grant
//! references and ports it holds or was offered, pointers into its buffer
//! — and boundary or garbage ones.

use super::families::{event_channel_op, grant_table_op, memory_op, sched_op, vcpu_op};
use super::{FuzzWorld, Rng, BYSTANDER};
use crate::domain::DomId;
use crate::hypercall::tests::BUF_VA;
use crate::mm::Mfn;

extern crate std;
use std::vec::Vec;

/// `DOMID_SELF`.
pub(super) const DOMID_SELF: u64 = 0x7ff0;
/// Bytes of guest buffer the generator lays structures out in.
const BUF_LEN: u64 = 0x4000;
/// `MMU_UPDATE_PREEMPTED`, bit 31 of a count.
const PREEMPTED: u64 = 1 << 31;

/// A hypercall's name, for the statistics.
pub fn name(nr: u64) -> &'static str {
    const NAMES: [&str; 49] = [
        "set_trap_table",
        "mmu_update",
        "set_gdt",
        "stack_switch",
        "set_callbacks",
        "fpu_taskswitch",
        "sched_op_compat",
        "platform_op",
        "set_debugreg",
        "get_debugreg",
        "update_descriptor",
        "(11)",
        "memory_op",
        "multicall",
        "update_va_mapping",
        "set_timer_op",
        "event_channel_op_compat",
        "xen_version",
        "console_io",
        "physdev_op_compat",
        "grant_table_op",
        "vm_assist",
        "update_va_mapping_otherdomain",
        "iret",
        "vcpu_op",
        "set_segment_base",
        "mmuext_op",
        "xsm_op",
        "nmi_op",
        "sched_op",
        "callback_op",
        "xenoprof_op",
        "event_channel_op",
        "physdev_op",
        "hvm_op",
        "sysctl",
        "domctl",
        "kexec_op",
        "tmem_op",
        "argo_op",
        "xenpmu_op",
        "dm_op",
        "hypfs_op",
        "(43)",
        "(44)",
        "(45)",
        "(46)",
        "(47)",
        "mca",
    ];
    match usize::try_from(nr).ok().and_then(|i| NAMES.get(i)) {
        Some(name) => name,
        None if nr < 64 => "(unassigned)",
        None => "(64 and above)",
    }
}

/// The sub-op of a call to count it under: the command in the first
/// argument of the hypercalls that have one (without continuation bits),
/// if it is a small number.
pub fn subop(nr: u64, args: [u64; 5]) -> (u64, Option<u64>) {
    let cmd = match nr {
        12 => args[0] & 63,
        20 => args[0] & 0xfff,
        17 | 18 | 24 | 29 | 30 | 32 | 33 => args[0],
        _ => return (nr.min(64), None),
    };
    (nr, (cmd < 64).then_some(cmd))
}

/// Where the structures of one call go in the caller's buffer.
struct Scratch {
    next: u64,
    writes: Vec<(u64, Vec<u8>)>,
}

impl Scratch {
    /// Places `bytes` (8-byte aligned) and returns their address; past the
    /// buffer's end, the last slot is reused.
    fn put(&mut self, bytes: Vec<u8>) -> u64 {
        let len = (bytes.len() as u64 + 7) & !7;
        let va = if self.next + len <= BUF_VA + BUF_LEN { self.next } else { BUF_VA + BUF_LEN - len.min(BUF_LEN) };
        self.next = va + len;
        self.writes.push((va, bytes));
        va
    }
}

/// A structure of `size` bytes being filled in.
pub(super) struct Rec(Vec<u8>);

impl Rec {
    pub(super) fn new(size: usize) -> Self {
        Rec(std::vec![0; size])
    }
    pub(super) fn at(mut self, off: usize, width: usize, v: u64) -> Self {
        if let Some(b) = self.0.get_mut(off..off + width) {
            b.copy_from_slice(&v.to_le_bytes()[..width]);
        }
        self
    }
    /// Sometimes scribbles garbage over it, as a hostile guest would.
    pub(super) fn done(mut self, rng: &mut Rng) -> Vec<u8> {
        if rng.one_in(12) && !self.0.is_empty() {
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(self.0.len() as u64) as usize;
                self.0[i] = rng.next() as u8;
            }
        }
        self.0
    }
}

/// What the generator knows while building one call.
pub(super) struct Env<'a> {
    f: &'a FuzzWorld,
    pub(super) rng: &'a mut Rng,
    me: DomId,
    pub(super) other: DomId,
    scratch: Scratch,
}

impl Env<'_> {
    pub(super) fn own_frames(&self) -> Vec<Mfn> {
        self.f.domain(self.me).map(|d| self.f.w.ft.pages(&d.page_list).collect()).unwrap_or_default()
    }

    /// A machine frame: mostly the caller's own, sometimes another
    /// domain's (the bystander's too), a hypervisor frame, free or absent.
    pub(super) fn mfn(&mut self) -> u64 {
        match self.rng.below(16) {
            0..=8 => {
                let own = self.own_frames();
                own.get(self.rng.below(own.len() as u64) as usize).map_or(0, |m| m.0)
            }
            9 | 10 => {
                let id = if self.rng.one_in(2) { self.other } else { BYSTANDER };
                let theirs: Vec<Mfn> =
                    self.f.domain(id).map(|d| self.f.w.ft.pages(&d.page_list).collect()).unwrap_or_default();
                theirs.get(self.rng.below(theirs.len() as u64) as usize).map_or(1, |m| m.0)
            }
            11 => self.rng.pick(&[8, 14, 15, 16, 17]), // shared_info, M2P, free
            12 => self.rng.below(super::NR_FRAMES as u64),
            13 => self.rng.pick(&[super::NR_FRAMES as u64, 1 << 40, u64::MAX >> 12, (1 << 52) - 1]),
            _ => self.rng.pick(&[0, u64::MAX, 0xffff_ffff]),
        }
    }

    /// A page-table entry naming [`Env::mfn`] with plausible or odd flags.
    pub(super) fn pte(&mut self) -> u64 {
        let flags = match self.rng.below(10) {
            0..=3 => 0x67,
            4 | 5 => 0x65,
            6 => 0x63,
            7 => 0,
            8 => 0x67 | 0x80 | (1 << 63),
            _ => self.rng.next() & 0xfff,
        };
        let mfn = self.mfn();
        (mfn << 12 & 0x000f_ffff_ffff_f000) | flags
    }

    /// A domain ID: `DOMID_SELF`, itself, the other hostile domain, the
    /// bystander, a special or a nonexistent one.
    pub(super) fn domid(&mut self) -> u64 {
        match self.rng.below(12) {
            0..=3 => DOMID_SELF,
            4 | 5 => u64::from(self.other),
            6 => u64::from(self.me),
            7 => u64::from(BYSTANDER),
            8 => self.rng.pick(&[0x7ff1, 0x7ff2, 0x7ff3, 0x7ff4, 0x7ff5]),
            9 => 0xffff,
            _ => self.rng.below(40),
        }
    }

    /// A guest pointer: mostly into the buffer, sometimes straddling its
    /// end, misaligned, null, unmapped, the hypervisor's or non-canonical.
    pub(super) fn ptr(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => BUF_VA + (self.rng.below(BUF_LEN) & !7),
            6 => BUF_VA + BUF_LEN - 1 - self.rng.below(16),
            7 => self.rng.pick(&[0, 1, BUF_VA - 8, BUF_VA + 3]),
            8 => self.rng.pick(&[0xffff_8000_0000_0000, 0xffff_8800_0000_0000, 0x8000_0000_0000, u64::MAX - 7]),
            _ => self.rng.next(),
        }
    }

    /// A count: small mostly, else a boundary.
    pub(super) fn count(&mut self, usual: u64) -> u64 {
        match self.rng.below(12) {
            0..=7 => self.rng.below(usual + 1),
            8 => 0,
            9 => self.rng.pick(&[511, 512, 4096, 65_536, 1 << 20]),
            10 => self.rng.pick(&[PREEMPTED, PREEMPTED | 3, u64::from(u32::MAX), u64::MAX]),
            _ => self.rng.next() & 0xffff,
        }
    }

    /// Any value, weighted to boundaries.
    pub(super) fn any(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => self.ptr(),
            3 => self.mfn(),
            4 => self.rng.below(64),
            5 => self.domid(),
            6 => self.rng.pick(&[1 << 31, 1 << 32, 1 << 63, u64::from(u32::MAX), 0x7fff_ffff]),
            _ => self.rng.next(),
        }
    }

    /// A grant reference: one of the first few, or a boundary.
    pub(super) fn gref(&mut self) -> u64 {
        match self.rng.below(8) {
            0..=5 => self.rng.below(24),
            6 => self.rng.pick(&[511, 512, 1023, 1024, 32 * 512]),
            _ => self.rng.next() & 0xffff_ffff,
        }
    }

    /// A port: one the caller holds, a low one, or a boundary.
    pub(super) fn port(&mut self) -> u64 {
        let held: Vec<u32> =
            self.f.domain(self.me).map(|d| d.evtchn.used_ports().map(|(p, _)| p).collect()).unwrap_or_default();
        match self.rng.below(6) {
            0..=3 if !held.is_empty() => u64::from(self.rng.pick(&held)),
            4 => self.rng.below(16),
            _ => self.rng.pick(&[0, 4095, 4096, 1 << 17, u64::from(u32::MAX)]),
        }
    }

    /// A port the other domain holds (for binding to it).
    pub(super) fn their_port(&mut self) -> u64 {
        let me = self.me;
        let offered = |p: &crate::evtchn::Port| matches!(p.binding, crate::evtchn::Binding::Unbound { remote, .. } if remote == me);
        let any = self.rng.one_in(3);
        let theirs: Vec<u32> = self
            .f
            .domain(self.other)
            .map(|d| d.evtchn.used_ports().filter(|(_, p)| any || offered(p)).map(|(p, _)| p).collect())
            .unwrap_or_default();
        if theirs.is_empty() || self.rng.one_in(6) {
            return self.rng.below(8);
        }
        u64::from(self.rng.pick(&theirs))
    }

    /// A grant handle: one the caller holds, or not.
    pub(super) fn handle(&mut self) -> u64 {
        let held: Vec<u64> = self
            .f
            .domain(self.me)
            .map(|d| d.gnttab.maptrack.iter().enumerate().filter(|(_, m)| m.is_some()).map(|(h, _)| h as u64).collect())
            .unwrap_or_default();
        match self.rng.below(5) {
            0..=2 if !held.is_empty() => self.rng.pick(&held),
            3 => self.rng.below(8),
            _ => self.rng.pick(&[u64::from(u32::MAX), 1024, 1 << 20]),
        }
    }

    /// A virtual address the caller's tables may map: the buffer's pages,
    /// the ones after it, or anywhere.
    pub(super) fn va(&mut self) -> u64 {
        match self.rng.below(6) {
            0..=3 => BUF_VA + self.rng.below(12) * 0x1000,
            4 => self.rng.pick(&[0, 0xffff_8000_0000_0000, 0xffff_8800_0000_0000, 0x7fff_ffff_f000]),
            _ => self.rng.next() & !0xfff,
        }
    }

    /// Places `bytes` in the caller's buffer; their address.
    pub(super) fn put(&mut self, bytes: Vec<u8>) -> u64 {
        self.scratch.put(bytes)
    }

    /// `n` structures from `one`, one after another, placed.
    pub(super) fn array(&mut self, n: u64, mut one: impl FnMut(&mut Self) -> Vec<u8>) -> u64 {
        let mut bytes = Vec::new();
        for _ in 0..n.min(96) {
            bytes.extend(one(self));
        }
        self.scratch.put(bytes)
    }
}

/// A hypercall for hostile guest `gi` of `f` to make next: its number and
/// arguments, with what they point at already written into its memory
/// (or, if its buffer is no longer mapped, a call that maps it again).
pub fn call(f: &mut FuzzWorld, gi: usize, rng: &mut Rng) -> (u64, [u64; 5]) {
    let me = f.guests[gi].id;
    let other = f.guests.iter().find(|g| g.id != me && g.alive).map_or(BYSTANDER, |g| g.id);
    if let Some(repair) = repair(f, gi) {
        return repair;
    }
    offer_grant(f, gi, other, rng);
    let mut env = Env { f, rng, me, other, scratch: Scratch { next: BUF_VA, writes: Vec::new() } };
    let (nr, args) = if env.rng.one_in(14) { multicall(&mut env) } else { one(&mut env, false) };
    let writes = core::mem::take(&mut env.scratch.writes);
    for (va, bytes) in writes {
        f.poke(me, va, &bytes);
    }
    (nr, args)
}

/// If the caller's buffer is unmapped (its own doing), the call that
/// restores it, as its kernel would; a guest left without any way back
/// is shut down by the harness after a while.
fn repair(f: &mut FuzzWorld, gi: usize) -> Option<(u64, [u64; 5])> {
    let me = f.guests[gi].id;
    for i in 0..4u64 {
        let va = BUF_VA + i * 0x1000;
        let mapped = f.peek(me, va, 8).is_some();
        if !mapped || f.guests[gi].broken > 0 {
            f.guests[gi].broken += 1;
            if f.guests[gi].broken > 64 {
                if let Some(d) = f.w.peers.iter_mut().chain(core::iter::once(&mut f.w.dom)).find(|d| d.id == me) {
                    if d.state == crate::domain::DomainState::Running {
                        d.state = crate::domain::DomainState::Shutdown(crate::domain::ShutdownReason::Crash);
                    }
                }
            }
            if mapped {
                continue;
            }
            let pte = (f.guests[gi].buffer(i as usize).0 << 12) | 0x67;
            return Some((14, [va, pte, 2, 0, 0]));
        }
    }
    f.guests[gi].broken = 0;
    None
}

/// Sometimes writes a grant entry into the caller's grant table offering
/// one of its frames to the other hostile domain (or garbage), as its
/// kernel would through its mapping of the table.
fn offer_grant(f: &mut FuzzWorld, gi: usize, other: DomId, rng: &mut Rng) {
    if !rng.one_in(4) {
        return;
    }
    let me = f.guests[gi].id;
    let Some(d) = f.domain(me) else { return };
    let gref = rng.below(24) as u32;
    let Ok((frame, off)) = d.gnttab.header_at(gref) else { return };
    let v2 = d.gnttab.version == 2;
    let own: Vec<Mfn> = f.w.ft.pages(&d.page_list).collect();
    let target = match rng.below(8) {
        0 => rng.next() & 0xffff_ffff,
        1 => 8,
        _ => own.get(rng.below(own.len() as u64) as usize).map_or(0, |m| m.0),
    };
    let flags: u16 = match rng.below(8) {
        0 => rng.next() as u16,
        1 => 1 | 4,
        2 => 0,
        3 => 2,
        _ => 1,
    };
    let domid = if rng.one_in(8) { rng.next() as u16 } else { other };
    let Some(page) = f.w.mem.0.get_mut(frame.0 as usize) else { return };
    let Some(b) = page.get_mut(off..off + if v2 { 16 } else { 8 }) else { return };
    b[2..4].copy_from_slice(&domid.to_le_bytes());
    if v2 {
        b[4..8].fill(0);
        b[8..16].copy_from_slice(&target.to_le_bytes());
    } else {
        b[4..8].copy_from_slice(&(target as u32).to_le_bytes());
    }
    // Flags last, as a guest publishes an entry.
    b[0..2].copy_from_slice(&flags.to_le_bytes());
}

/// A multicall of several calls (some of which continue), its entries in
/// the buffer; sometimes a nested multicall or garbage entry.
fn multicall(env: &mut Env) -> (u64, [u64; 5]) {
    let n = match env.rng.below(8) {
        0 => 0,
        1 => env.count(4096),
        _ => 1 + env.rng.below(8),
    };
    let mut entries = Vec::new();
    for _ in 0..n.min(32) {
        let (op, args) = if env.rng.one_in(16) { (13, [env.ptr(), env.count(4), 0, 0, 0]) } else { one(env, true) };
        let mut rec = Rec::new(64).at(0, 8, op).at(8, 8, 0xdead);
        for (i, a) in args.iter().enumerate() {
            rec = rec.at(16 + 8 * i, 8, *a);
        }
        entries.extend(rec.done(env.rng));
    }
    let list = env.scratch.put(entries);
    let list = if env.rng.one_in(16) { env.ptr() } else { list };
    (13, [list, n, 0, 0, 0])
}

/// One hypercall of any kind (none that blocks or ends the domain inside a
/// multicall, whose later entries would otherwise never run).
fn one(env: &mut Env, in_multicall: bool) -> (u64, [u64; 5]) {
    match env.rng.below(100) {
        0..=11 => mmu_update(env),
        12..=21 => mmuext_op(env),
        22..=27 => {
            let vcpumask = 4 | (env.ptr() & !3);
            (14, [env.va(), env.pte(), env.rng.pick(&[0, 1, 2, 3, vcpumask]), 0, 0])
        }
        28 => (22, [env.va(), env.pte(), env.rng.pick(&[0, 2]), env.domid(), 0]),
        29..=40 => memory_op(env),
        41..=56 => grant_table_op(env),
        57..=70 => event_channel_op(env),
        71..=74 => sched_op(env, in_multicall),
        75..=78 => vcpu_op(env),
        79..=80 => {
            let len = env.count(200);
            let (ptr, cmd) = (env.ptr(), env.rng.pick(&[0, 0, 1, 2]));
            (18, [cmd, len, ptr, 0, 0])
        }
        81 => (17, [env.rng.below(16), env.ptr(), 0, 0, 0]),
        82 => {
            let n = env.count(4);
            let traps = env.array(n.saturating_add(1), |e| {
                let vector = e.rng.below(256);
                Rec::new(16).at(0, 1, vector).at(1, 1, e.rng.below(4)).at(2, 2, 0xe033).at(8, 8, e.ptr()).done(e.rng)
            });
            (0, [if env.rng.one_in(4) { env.ptr() } else { traps }, 0, 0, 0, 0])
        }
        83 => {
            let n = env.count(3);
            let frames = env.array(n, |e| e.mfn().to_le_bytes().to_vec());
            (2, [frames, env.rng.pick(&[0, 1, 512, 8192, 65_536]), 0, 0, 0])
        }
        84 => (10, [(env.mfn() << 12) | (env.rng.below(512) * 8), env.any(), 0, 0, 0]),
        85 => (env.rng.pick(&[8, 9]), [env.rng.below(9), env.any(), 0, 0, 0]),
        86 => (25, [env.rng.below(5), env.any(), 0, 0, 0]),
        87 => (5, [env.rng.below(3), 0, 0, 0, 0]),
        88 => (15, [env.any(), 0, 0, 0, 0]),
        89 => (21, [env.rng.below(3), env.rng.below(40), 0, 0, 0]),
        90 => (30, [env.rng.below(5), env.ptr(), 0, 0, 0]),
        91 => (4, [env.ptr(), env.ptr(), 0, 0, 0]),
        92 => (3, [env.rng.pick(&[0xe02b, 0, 0xffff]), env.ptr(), 0, 0, 0]),
        93 => {
            let arg = env.scratch.put(Rec::new(64).at(0, 4, env.rng.below(64)).done(env.rng));
            (env.rng.pick(&[33, 36, 35, 7, 48]), [env.rng.below(64), arg, 0, 0, 0])
        }
        _ => {
            // Any number, anything as arguments.
            let nr = match env.rng.below(4) {
                0 => env.rng.next(),
                _ => env.rng.below(64),
            };
            let nr = if in_multicall && (nr == 29 || nr == 6) { 17 } else { nr };
            (nr, [env.any(), env.any(), env.any(), env.any(), env.any()])
        }
    }
}

/// `mmu_update` over the caller's own tables (their entries beyond the
/// buffer mostly), M2P updates, and odd commands.
fn mmu_update(env: &mut Env) -> (u64, [u64; 5]) {
    let n = env.count(8);
    let l1 = env.f.guests.iter().find(|g| g.id == env.me).map_or(Mfn(0), |g| g.l1());
    let list = env.array(n, |e| {
        let table = if e.rng.one_in(3) { l1.0 } else { e.mfn() };
        let index = match e.rng.below(6) {
            0 => 4 + e.rng.below(4), // the buffer's own entries
            1 => e.rng.below(512),
            2 => 256 + e.rng.below(16), // the hypervisor's slots, in an L4
            _ => 8 + e.rng.below(8),
        };
        let cmd = e.rng.pick(&[0, 0, 0, 1, 2, 3]);
        let misalign = if e.rng.one_in(16) { 4 } else { 0 };
        let val = if cmd == 1 { e.rng.below(64) } else { e.pte() };
        Rec::new(16).at(0, 8, (table << 12) + index * 8 + misalign + cmd).at(8, 8, val).done(e.rng)
    });
    let pdone = if env.rng.one_in(2) { 0 } else { env.ptr() };
    (1, [list, n, pdone, env.domid(), 0])
}

/// `mmuext_op`: pins and unpins of every level, base pointers, flushes,
/// LDT, page clears and copies.
fn mmuext_op(env: &mut Env) -> (u64, [u64; 5]) {
    let n = env.count(4);
    let list = env.array(n, |e| {
        let cmd = if e.rng.one_in(16) { e.rng.below(64) } else { e.rng.below(21) };
        let arg1 = match cmd {
            7 | 9 | 11 => e.va(),
            _ => e.mfn(),
        };
        let arg2 = match cmd {
            8 | 9 => e.ptr(),
            13 => e.rng.pick(&[0, 1, 16, 8192, 8193]),
            17 => e.mfn(),
            _ => e.any(),
        };
        Rec::new(24).at(0, 4, cmd).at(8, 8, arg1).at(16, 8, arg2).done(e.rng)
    });
    let pdone = if env.rng.one_in(2) { 0 } else { env.ptr() };
    (26, [list, n, pdone, env.domid(), 0])
}
