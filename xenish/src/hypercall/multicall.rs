//! `multicall`: a batch of hypercalls in one entry, each entry's result
//! written back into it.
//!
//! Semantics: Xen's `do_multicall` (xen/common/multicall.c): entries run in
//! order; the call returns 0 and each entry's `result` holds its return
//! value; a nested multicall is `-EINVAL`; a long batch is continued with
//! the list pointer advanced.

use guest_abi::errno::XenError;
use guest_abi::xen::HYPERVISOR_MULTICALL;

use super::{dispatch, Ctx, Outcome};

/// Size of `struct multicall_entry`: op, result, args[6] (all xen_ulong_t).
const ENTRY_SIZE: u64 = 64;
/// Entries run per invocation before the batch is continued.
const BATCH: u64 = 32;
/// Continuations of one entry run inline before it is given up on.
const MAX_INLINE_CONTINUATIONS: u32 = 1 << 16;

/// `HYPERVISOR_multicall(call_list, nr_calls)`.
pub fn multicall(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [list, nr_calls, ..] = args;
    // nr_calls is an unsigned int.
    let nr = u64::from(nr_calls as u32);
    for i in 0..nr.min(BATCH) {
        let va = list.wrapping_add(i * ENTRY_SIZE);
        let mut raw = [0u8; ENTRY_SIZE as usize];
        if ctx.guest().copy_from(va, &mut raw).is_err() {
            return Outcome::Return(XenError::Efault.to_ret());
        }
        let word = |k: usize| u64::from_le_bytes(raw[k * 8..k * 8 + 8].try_into().unwrap_or([0; 8]));
        let op = word(0);
        let mut call_args = [word(2), word(3), word(4), word(5), word(6)];
        let result = if op == u64::from(HYPERVISOR_MULTICALL) {
            XenError::Einval.to_ret()
        } else {
            let mut result = XenError::Enosys.to_ret();
            for _ in 0..MAX_INLINE_CONTINUATIONS {
                match dispatch(ctx, op, call_args) {
                    Outcome::Return(v) => {
                        result = v;
                        break;
                    }
                    Outcome::Continue(next) => call_args = next,
                }
            }
            result
        };
        if ctx.guest().write(va.wrapping_add(8), &result.to_le_bytes()).is_err() {
            return Outcome::Return(XenError::Efault.to_ret());
        }
        if !ctx.domain.is_running() {
            // The batch shut the domain down: nothing more runs.
            return Outcome::Return(0);
        }
    }
    if nr > BATCH {
        return Outcome::Continue([list.wrapping_add(BATCH * ENTRY_SIZE), nr - BATCH, args[2], args[3], args[4]]);
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
}
