//! A hostile guest's random event-channel operations, with random writes
//! to its own FIFO words in between: nothing may panic, every frame count
//! stays exact (the world audits after each hypercall), and the
//! hypervisor's own FIFO state stays within bounds.

use super::super::tests::{World, BUF_VA};
use crate::evtchn::fifo::WORDS_PER_PAGE;
use guest_abi::event_channel::*;
use guest_abi::xen::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_SCHED_OP};
use zerocopy::{FromZeros, Immutable, IntoBytes};

extern crate std;

const NR: u64 = HYPERVISOR_EVENT_CHANNEL_OP as u64;

/// xorshift64: deterministic, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A port: mostly small ones, sometimes anything.
    fn port(&mut self) -> u32 {
        if self.below(8) == 0 {
            self.next() as u32
        } else {
            self.below(40) as u32
        }
    }

    /// A frame: mostly the caller's buffers (4..8), sometimes its page
    /// tables, shared_info, others' or absent frames.
    fn gfn(&mut self) -> u64 {
        match self.below(10) {
            0 => self.below(24),
            1 => self.next(),
            _ => 5 + self.below(3),
        }
    }
}

fn call<T: IntoBytes + Immutable>(w: &mut World, cmd: u32, arg: &T) -> i64 {
    w.poke(BUF_VA, arg.as_bytes());
    w.call_ret(NR, [u64::from(cmd), BUF_VA, 0, 0, 0])
}

#[test]
fn random_operations_and_corrupted_words_keep_every_count_exact() {
    for seed in [1u64, 0x9e37_79b9_7f4a_7c15, 0xdead_beef] {
        let mut w = World::new(false);
        let mut rng = Rng(seed);
        for _ in 0..3000 {
            let rc = match rng.below(13) {
                0 => call(&mut w, EVTCHNOP_BIND_IPI, &EvtchnBindIpi { vcpu: rng.below(2) as u32, port: 0 }),
                1 => {
                    let a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: DOMID_SELF, port: 0 };
                    call(&mut w, EVTCHNOP_ALLOC_UNBOUND, &a)
                }
                2 => {
                    let b = EvtchnBindInterdomain {
                        remote_dom: DOMID_SELF,
                        _pad0: [0; 2],
                        remote_port: rng.port(),
                        local_port: 0,
                    };
                    call(&mut w, EVTCHNOP_BIND_INTERDOMAIN, &b)
                }
                3 => call(&mut w, EVTCHNOP_SEND, &EvtchnSend { port: rng.port() }),
                4 => call(&mut w, EVTCHNOP_CLOSE, &EvtchnClose { port: rng.port() }),
                5 => call(&mut w, EVTCHNOP_UNMASK, &EvtchnUnmask { port: rng.port() }),
                6 => {
                    let p = EvtchnSetPriority { port: rng.port(), priority: rng.below(20) as u32 };
                    call(&mut w, EVTCHNOP_SET_PRIORITY, &p)
                }
                7 => {
                    let mut i = EvtchnInitControl::new_zeroed();
                    (i.control_gfn, i.offset, i.vcpu) = (rng.gfn(), (rng.below(520) * 8) as u32, rng.below(2) as u32);
                    call(&mut w, EVTCHNOP_INIT_CONTROL, &i)
                }
                8 => call(&mut w, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: rng.gfn() }),
                9 if rng.below(20) == 0 => call(&mut w, EVTCHNOP_RESET, &EvtchnReset { dom: DOMID_SELF }),
                10 => {
                    let v = EvtchnBindVirq { virq: rng.below(25) as u32, vcpu: 0, port: 0 };
                    call(&mut w, EVTCHNOP_BIND_VIRQ, &v)
                }
                11 => {
                    // SCHEDOP_poll on one port.
                    let port = rng.port();
                    w.poke(BUF_VA + 64, &port.to_le_bytes());
                    let mut req = [0u8; 24];
                    req[0..8].copy_from_slice(&(BUF_VA + 64).to_le_bytes());
                    req[8..12].copy_from_slice(&1u32.to_le_bytes());
                    w.poke(BUF_VA, &req);
                    w.dom.vcpus[0].poll = None;
                    w.call_ret(HYPERVISOR_SCHED_OP as u64, [3, BUF_VA, 0, 0, 0])
                }
                _ => {
                    // The guest scribbles over its own event words and
                    // control block (any of its buffers).
                    let frame = 5 + rng.below(3) as usize;
                    let at = rng.below(1024) as usize * 4;
                    let garbage = rng.next() as u32;
                    w.mem.0[frame][at..at + 4].copy_from_slice(&garbage.to_le_bytes());
                    0
                }
            };
            assert!(rc <= i64::from(u32::MAX), "a result, not garbage: {rc}");
            if let Some(f) = w.dom.evtchn.fifo() {
                let nr_ports = f.nr_ports().max(1);
                for v in &f.vcpus {
                    assert!(v.tails.iter().all(|&t| t < nr_ports || t == 0), "seed {seed}: a tail beyond the array");
                }
                assert!(f.array.len() <= crate::evtchn::fifo::MAX_ARRAY_PAGES);
                assert!(f.nr_ports() <= 128 * WORDS_PER_PAGE);
            }
        }
        // Whatever state it ended in, a reset releases every page.
        let counts_before_reset = w.counts();
        call(&mut w, EVTCHNOP_RESET, &EvtchnReset { dom: DOMID_SELF });
        assert!(w.dom.evtchn.fifo().is_none());
        assert!(w.dom.evtchn.used_ports().next().is_none());
        assert!(w.counts().iter().zip(&counts_before_reset).all(|(a, b)| a.0 <= b.0));
    }
}
