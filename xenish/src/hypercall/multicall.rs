//! `multicall`: a batch of hypercalls in one entry, each entry's result
//! written back into it.
//!
//! Semantics: Xen 4.17's `do_multicall` (xen/common/multicall.c): entries
//! run in order and each entry's `result` field receives its return value
//! (nothing else of a finished entry is written); a nested multicall is
//! `-EINVAL`; the call itself returns 0. Xen never runs a continuation
//! inline: when a sub-call is preempted (it returns a continuation),
//! the whole entry is written back with the sub-call's new arguments (its
//! `op` unchanged, its `result` the op, as `hypercall_create_continuation`
//! returns) and the multicall itself is continued at that entry
//! (`"hi"`: the list advanced to it, the count of entries left), so the
//! guest runs between the steps and the sub-call resumes on re-entry.
//! The multicall is also continued between entries when its preemption
//! check fires (`i && hypercall_preempt_check()`); xenish's check is a
//! count, every [`BATCH`] entries. Work per invocation is therefore at
//! most [`BATCH`] entries of at most one step each.

use core::mem::{offset_of, size_of};
use guest_abi::errno::XenError;

use guest_abi::xen::{MulticallEntry, HYPERVISOR_MULTICALL};

use super::{dispatch, Ctx, Outcome};

/// Size of `struct multicall_entry`: op, result, args[6] (all xen_ulong_t).
const ENTRY_SIZE: u64 = size_of::<MulticallEntry>() as u64;
/// Entries run per invocation before the batch is continued.
pub const BATCH: u64 = 32;
/// Offset of `result` in an entry.
const RESULT: u64 = offset_of!(MulticallEntry, result) as u64;
/// Offset of `args` in an entry.
const ARGS: u64 = offset_of!(MulticallEntry, args) as u64;

/// `HYPERVISOR_multicall(call_list, nr_calls)`.
pub fn multicall(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [list, nr_calls, ..] = args;
    // nr_calls is an unsigned int.
    let nr = u64::from(nr_calls as u32);
    // Xen's continuation "hi": the list at entry `i`, the entries left;
    // the other argument registers as the guest left them.
    let preempted = |i: u64| Outcome::Continue([list.wrapping_add(i * ENTRY_SIZE), nr - i, args[2], args[3], args[4]]);
    for i in 0..nr {
        if i >= BATCH {
            return preempted(i);
        }
        let va = list.wrapping_add(i * ENTRY_SIZE);
        let mut raw = [0u8; ENTRY_SIZE as usize];
        if ctx.guest().copy_from(va, &mut raw).is_err() {
            return Outcome::Return(XenError::Efault.to_ret());
        }
        let word = |k: usize| raw.get(k * 8..k * 8 + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
        let op = word(0);
        let call_args = [word(2), word(3), word(4), word(5), word(6)];
        let outcome = if op == u64::from(HYPERVISOR_MULTICALL) {
            Outcome::Return(XenError::Einval.to_ret())
        } else {
            dispatch(ctx, op, call_args)
        };
        match outcome {
            Outcome::Return(result) => {
                if ctx.guest().write(va.wrapping_add(RESULT), &result.to_le_bytes()).is_err() {
                    return Outcome::Return(XenError::Efault.to_ret());
                }
            }
            Outcome::Continue(next) => {
                // The sub-call's continuation goes into its entry; the
                // multicall resumes there.
                let mut back = [0u8; (ENTRY_SIZE - RESULT) as usize];
                back[..8].copy_from_slice(&op.to_le_bytes());
                for (k, a) in next.iter().enumerate() {
                    back[8 + k * 8..16 + k * 8].copy_from_slice(&a.to_le_bytes());
                }
                if ctx.guest().write(va.wrapping_add(RESULT), &back[..(ARGS - RESULT + 40) as usize]).is_err() {
                    // Xen cancels the continuation: -EFAULT.
                    return Outcome::Return(XenError::Efault.to_ret());
                }
                return preempted(i);
            }
        }
        if !ctx.domain.is_running() {
            // The batch shut the domain down: nothing more runs.
            return Outcome::Return(0);
        }
    }
    Outcome::Return(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::super::Outcome;
    use super::*;
    use guest_abi::version::XENVER_PAGESIZE;
    use guest_abi::xen::HYPERVISOR_XEN_VERSION;

    fn entry(op: u32, args: [u64; 6]) -> [u8; 64] {
        let mut e = [0u8; 64];
        e[0..8].copy_from_slice(&u64::from(op).to_le_bytes());
        e[8..16].copy_from_slice(&0xdeadu64.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            e[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_le_bytes());
        }
        e
    }

    fn result(w: &mut World, i: u64) -> i64 {
        i64::from_le_bytes(w.peek(BUF_VA + i * 64 + 8, 8).try_into().unwrap())
    }

    #[test]
    fn runs_each_entry_and_records_results() {
        let mut w = World::new(false);
        w.poke(BUF_VA, &entry(HYPERVISOR_XEN_VERSION, [XENVER_PAGESIZE as u64, 0, 0, 0, 0, 0]));
        w.poke(BUF_VA + 64, &entry(60, [0; 6]));
        w.poke(BUF_VA + 128, &entry(HYPERVISOR_MULTICALL, [BUF_VA, 1, 0, 0, 0, 0]));
        assert_eq!(w.call_ret(HYPERVISOR_MULTICALL as u64, [BUF_VA, 3, 0, 0, 0]), 0);
        assert_eq!([result(&mut w, 0), result(&mut w, 1), result(&mut w, 2)], [4096, -38, -22]);
    }

    #[test]
    fn bad_list_faults_and_long_batches_continue() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(HYPERVISOR_MULTICALL as u64, [0x1000, 1, 0, 0, 0]), -14);
        for i in 0..40 {
            w.poke(BUF_VA + i * 64, &entry(HYPERVISOR_XEN_VERSION, [XENVER_PAGESIZE as u64, 0, 0, 0, 0, 0]));
        }
        let out = w.call(HYPERVISOR_MULTICALL as u64, [BUF_VA, 40, 0, 0, 0]);
        assert_eq!(out, Outcome::Continue([BUF_VA + 32 * 64, 8, 0, 0, 0]));
        assert_eq!(result(&mut w, 31), 4096);
        assert_eq!(result(&mut w, 32), 0xdead);
    }

    /// Drives a hypercall to completion as the guest's re-executed
    /// `syscall` would; returns its result and how often it was continued.
    fn run_to_end(w: &mut World, nr: u64, mut args: [u64; 5]) -> (i64, usize) {
        let mut continued = 0;
        loop {
            match w.call(nr, args) {
                Outcome::Return(v) => return (v, continued),
                Outcome::Continue(next) => {
                    args = next;
                    continued += 1;
                }
            }
        }
    }

    const CONSOLE: u32 = guest_abi::xen::HYPERVISOR_CONSOLE_IO;
    const TEXT: u64 = BUF_VA + 0x1000;

    /// Three console writes of 300 bytes (three steps each), a version
    /// query between them, as a multicall list at BUF_VA.
    fn continuing_batch(w: &mut World) -> u64 {
        let mut text = [0u8; 900];
        for (i, b) in text.iter_mut().enumerate() {
            *b = if i % 50 == 49 { b'\n' } else { b'a' + (i % 26) as u8 };
        }
        w.poke(TEXT, &text);
        let write = |k: u64| entry(CONSOLE, [guest_abi::xen::CONSOLEIO_WRITE as u64, 300, TEXT + k * 300, 0, 0, 0]);
        let version = entry(HYPERVISOR_XEN_VERSION, [XENVER_PAGESIZE as u64, 0, 0, 0, 0, 0]);
        for (i, e) in [write(0), version, write(1), version, write(2)].iter().enumerate() {
            w.poke(BUF_VA + i as u64 * 64, e);
        }
        5
    }

    #[test]
    fn a_multicall_of_continuing_calls_is_preempted_as_a_whole_and_ends_as_an_uninterrupted_run() {
        // The uninterrupted run: each write driven to its end on its own.
        let mut alone = World::new(true);
        continuing_batch(&mut alone);
        for k in 0..3 {
            let args = [guest_abi::xen::CONSOLEIO_WRITE as u64, 300, TEXT + k * 300, 0, 0];
            assert_eq!(run_to_end(&mut alone, u64::from(CONSOLE), args), (0, 2));
        }
        // The multicall: never a sub-call continued inline.
        let mut w = World::new(true);
        let nr = continuing_batch(&mut w);
        let first = w.call(u64::from(HYPERVISOR_MULTICALL), [BUF_VA, nr, 0, 0, 0]);
        assert_eq!(first, Outcome::Continue([BUF_VA, nr, 0, 0, 0]), "preempted at entry 0, not advanced");
        // Entry 0 now holds the console write's continuation, result = op.
        assert_eq!(w.peek(BUF_VA, 8), u64::from(CONSOLE).to_le_bytes(), "op unchanged");
        assert_eq!(result(&mut w, 0), i64::from(CONSOLE));
        let arg = |w: &mut World, i: u64, k: u64| {
            u64::from_le_bytes(w.peek(BUF_VA + i * 64 + 16 + k * 8, 8).try_into().unwrap())
        };
        assert_eq!((arg(&mut w, 0, 1), arg(&mut w, 0, 2)), (300 - 128, TEXT + 128), "the rest, the buffer advanced");
        assert_eq!(w.plat.out.len(), 2 * (5 + 50), "one step: 128 bytes, the two lines they complete");
        let (ret, continued) = run_to_end(&mut w, u64::from(HYPERVISOR_MULTICALL), [BUF_VA, nr, 0, 0, 0]);
        assert_eq!(ret, 0);
        assert_eq!(continued + 1, 3 * 2, "each write's two continuations are the multicall's own");
        assert!(w.plat.out == alone.plat.out, "the same output as the uninterrupted run");
        assert_eq!(w.plat.out.len(), 18 * (5 + 50), "18 lines of 49 bytes, each (d0)-prefixed");
        let results: std::vec::Vec<i64> = (0..5).map(|i| result(&mut w, i)).collect();
        assert_eq!(results, [0, 4096, 0, 4096, 0]);
    }

    #[test]
    fn the_entry_count_and_a_sub_call_preempt_the_same_way() {
        let mut w = World::new(true);
        let version = entry(HYPERVISOR_XEN_VERSION, [XENVER_PAGESIZE as u64, 0, 0, 0, 0, 0]);
        for i in 0..33 {
            w.poke(BUF_VA + i * 64, &version);
        }
        let mut line = [b'x'; 200];
        line[199] = b'\n';
        w.poke(TEXT, &line);
        w.poke(BUF_VA + 33 * 64, &entry(CONSOLE, [guest_abi::xen::CONSOLEIO_WRITE as u64, 200, TEXT, 0, 0, 0]));
        let nr = u64::from(HYPERVISOR_MULTICALL);
        assert_eq!(w.call(nr, [BUF_VA, 34, 7, 8, 9]), Outcome::Continue([BUF_VA + 32 * 64, 2, 7, 8, 9]), "after BATCH");
        assert_eq!(result(&mut w, 32), 0xdead, "entry 32 not run yet");
        let at_33 = Outcome::Continue([BUF_VA + 33 * 64, 1, 7, 8, 9]);
        assert_eq!(w.call(nr, [BUF_VA + 32 * 64, 2, 7, 8, 9]), at_33, "entry 33's write preempted");
        assert_eq!(result(&mut w, 32), 4096);
        assert_eq!(w.call(nr, [BUF_VA + 33 * 64, 1, 7, 8, 9]), Outcome::Return(0));
        assert_eq!(result(&mut w, 33), 0);
        let mut want = std::vec::Vec::from(&b"(d0) "[..]);
        want.extend_from_slice(&line);
        assert!(w.plat.out == want, "the line written once, whole");
    }
}
