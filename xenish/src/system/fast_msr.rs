//! The fast path of one trapped privileged instruction: a guest kernel's
//! `rdmsr` or `wrmsr` of a segment-base MSR (FS, GS, shadow GS). Linux
//! with FSGSBASE reads the inactive GS base with `rdmsr` on every context
//! switch (a PV kernel runs in ring 3: the instruction faults, #GP), so
//! the slow exception path (the system lock taken exclusively, the
//! instruction fetched through a software walk, `finish`) was paid once
//! per switch; Xen emulates it on the same fault. Served here under the
//! shared lock as [`System::fast_page_fault`] is: the bases are the
//! guest's, live in this CPU's MSRs while the hypervisor runs (it uses
//! neither FS nor GS), so the emulation changes only the frame and this
//! CPU's registers. Anything else (another instruction or MSR, guest user
//! mode, a single-step, a base that is not canonical) is declined with
//! nothing changed, and the slow path ([`traps::handle`]) decides as
//! before.

use super::{Fast, System};
use crate::guest_access::GuestMemory;
use crate::mm::MachineMemory;
use crate::regs::TrapFrame;
use crate::traps::{self, CpuOps};

/// EFLAGS.TF: an emulated instruction under single step owes the guest a
/// #DB, which the slow path raises.
const EFLAGS_TF: u64 = 1 << 8;

impl System {
    /// Emulates the segment-base `rdmsr`/`wrmsr` whose #GP is in `frame`
    /// (an exception entry from the vCPU CPU `cpu` runs, at `now_ns`) with
    /// `ops` as this CPU's registers, or declines it with nothing changed.
    /// The caller has checked what it checks for [`Self::fast_syscall`];
    /// the arch layer, which keeps the system-wide conditions per CPU,
    /// calls [`Self::fast_privileged_op_open`].
    pub fn fast_privileged_op(
        &self,
        cpu: usize,
        frame: &mut TrapFrame,
        now_ns: u64,
        mem: &mut dyn MachineMemory,
        ops: &mut dyn CpuOps,
    ) -> Fast {
        if now_ns >= self.fast_until_ns(cpu) {
            return Fast::Declined;
        }
        self.fast_privileged_op_open(cpu, frame, mem, ops)
    }

    /// [`Self::fast_privileged_op`] for a caller that found the time
    /// before [`Self::fast_until_ns`], as [`Self::fast_syscall_open`].
    pub fn fast_privileged_op_open(
        &self,
        cpu: usize,
        frame: &mut TrapFrame,
        mem: &mut dyn MachineMemory,
        ops: &mut dyn CpuOps,
    ) -> Fast {
        if frame.vector != 13 || frame.error_code != 0 || frame.rflags & EFLAGS_TF != 0 {
            return Fast::Declined;
        }
        let Some((domain, vcpu, v)) = self.fast_caller(cpu, frame) else { return Fast::Declined };
        // Guest user mode gets its #GP: only the kernel's is emulated.
        if !v.kernel_mode() {
            return Fast::Declined;
        }
        let mut insn = [0u8; 2];
        if GuestMemory::new(mem, v.kernel_l4).copy_from_loaded(frame.rip, &mut insn).is_err() {
            return Fast::Declined;
        }
        if !traps::segment_base_msr_fast(frame, insn, ops) {
            return Fast::Declined;
        }
        if traps::deliver_upcall_fast(domain, vcpu, frame, mem).is_err() {
            return Fast::Exit { was_kernel: true };
        }
        Fast::Done
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::guest_access::tests::FakeMemory;
    use crate::hypercall::tests::{World, BUF_VA, M2P};
    use crate::mm::Mfn;
    use crate::sched::SchedParams;
    use crate::system::{Action, Next};
    use crate::time::{Clock, TimeScale};
    use alloc::boxed::Box;
    use guest_abi::xen::HYPERVISOR_XEN_VERSION;

    /// This CPU's three base MSRs, and whether anything else was asked.
    #[derive(Default, Clone, PartialEq, Debug)]
    struct Bases([u64; 3]);

    impl CpuOps for Bases {
        fn port_in(&mut self, _: u16, _: u8) -> u32 {
            panic!("port_in")
        }
        fn port_out(&mut self, _: u16, _: u8, _: u32) {
            panic!("port_out")
        }
        fn clts(&mut self) {
            panic!("clts")
        }
        fn set_ts(&mut self, _: bool) {
            panic!("set_ts")
        }
        fn wbinvd(&mut self) {
            panic!("wbinvd")
        }
        fn cpuid(&self, _: u32, _: u32) -> [u32; 4] {
            panic!("cpuid")
        }
        fn write_segment_base(&mut self, msr: u32, value: u64) {
            self.0[(msr - 0xc000_0100) as usize] = value;
        }
        fn read_segment_base(&self, msr: u32) -> u64 {
            self.0[(msr - 0xc000_0100) as usize]
        }
        fn set_fsgsbase(&mut self, _: bool) {
            panic!("set_fsgsbase")
        }
    }

    const CALLBACK: u64 = 0xffff_ffff_8000_1000;
    const GP_HANDLER: u64 = 0xffff_ffff_8000_2000;

    /// A started system over the test world's domain (an event callback,
    /// a #GP handler, a kernel stack, user tables in frame 9) with `code`
    /// at `BUF_VA`, after one slow hypercall at 500 ns (which takes the
    /// timer summary), with its frame and memory.
    fn system(code: &[u8]) -> (System, TrapFrame, FakeMemory) {
        let mut w = World::new(false);
        w.mem.0[9] = w.mem.0[0];
        w.poke(BUF_VA, code);
        let v = &mut w.dom.vcpus[0];
        (v.callbacks.event.address, v.user_l4) = (CALLBACK, Some(Mfn(9)));
        v.set_kernel_sp(BUF_VA + 0x3000);
        v.traps[13] = crate::domain::TrapHandler { address: GP_HANDLER, ..Default::default() };
        let dom =
            core::mem::replace(&mut w.dom, crate::hypercall::tests::test_domain(0, false, 0..0, None, Mfn(8)).domain);
        let mut mem = core::mem::replace(&mut w.mem, FakeMemory(std::vec::Vec::new()));
        let pool = core::mem::replace(&mut w.pool, crate::hypercall::tests::FakePool(std::vec::Vec::new()));
        let ft = core::mem::replace(&mut w.ft, crate::mm::frame_table::tests::table(1));
        let Some(scale) = TimeScale::from_hz(1_000_000_000) else { panic!("scale") };
        let clock = Clock { tsc_at_zero: 0, scale, tsc_hz: 1_000_000_000 };
        let mut system = System::new(std::vec![(dom, SchedParams::default())], clock, M2P, Box::new(pool), ft);
        let mut frame = TrapFrame::default();
        system.start(&mut frame, 0, 0, &mut mem);
        (frame.rax, frame.rdi, frame.rsi, frame.rsp) = (u64::from(HYPERVISOR_XEN_VERSION), 0, 0, BUF_VA + 0x2000);
        system.syscall(&mut frame, 500, 500, &mut mem, &mut w.plat);
        (system, frame, mem)
    }

    /// Random #GPs (the segment-base `rdmsr`/`wrmsr` and their near
    /// misses: other MSRs, prefixes, other instructions, guest user mode,
    /// single step, non-canonical bases, an error code, an upcall due or
    /// masked) on two identical systems, fast on one and slow on the
    /// other: what the fast path serves it must leave exactly as the slow
    /// path does (frame, memory, this CPU's bases, the vCPU's mode, the
    /// exit's action), and what it declines it must leave untouched.
    #[test]
    fn random_segment_base_msrs_are_served_as_the_slow_path_serves_them_or_declined_untouched() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut reads, mut writes, mut exits, mut declined, mut upcalls) = (0, 0, 0, 0, 0);
        for round in 0..3000 {
            let r: [u64; 6] = core::array::from_fn(|_| next());
            let pick = |x: u64, items: &[u64]| items[(x % items.len() as u64) as usize];
            let codes: [&[u8]; 6] =
                [&[0x0f, 0x32], &[0x0f, 0x32], &[0x0f, 0x30], &[0x0f, 0x30], &[0x48, 0x0f, 0x32], &[0x0f, 0x20, 0xd8]];
            let code = codes[(r[0] % codes.len() as u64) as usize];
            let (mut fast, mut f1, mut m1) = system(code);
            let (mut slow, mut f2, mut m2) = system(code);
            let setup = |s: &mut System, f: &mut TrapFrame, m: &mut FakeMemory| {
                s.domains[0].vcpus[0].set_kernel_mode(r[1] & 7 != 0);
                (m.0[8][0], m.0[8][1]) = ((r[1] >> 3 & 1) as u8, (r[1] >> 4 & 1) as u8);
                f.vector = 13;
                f.error_code = if r[1] & 0xe0 == 0xe0 { 0x18 } else { 0 };
                f.rip = BUF_VA;
                f.cs = 0xe033;
                f.rflags = pick(r[1] >> 8, &[0x202, 0x202, 0x202, 0x302]);
                f.rcx = pick(r[2], &[0xc000_0100, 0xc000_0101, 0xc000_0102, 0x1_c000_0102, 0x179, 0xc000_0080]);
                f.rax = r[3];
                f.rdx = pick(r[4], &[0, 0x7fff, 0xffff_8000, 0xffff_ffff, 0x8000, r[4] >> 32]);
                // Unmapped: an upcall's bounce frame cannot be written.
                f.rsp = pick(r[5] >> 32, &[BUF_VA + 0x2000, BUF_VA + 0x2000, BUF_VA + 0x2000, 0x1000_0000]);
            };
            setup(&mut fast, &mut f1, &mut m1);
            setup(&mut slow, &mut f2, &mut m2);
            let start = Bases([r[5], r[5] >> 8, r[5] >> 16]);
            let (mut c1, mut c2) = (start.clone(), start.clone());
            let (before, memory, mode) = (f1, m1.0.clone(), fast.domains[0].vcpus[0].kernel_mode());
            let outcome = fast.fast_privileged_op(0, &mut f1, 1000, &mut m1, &mut c1);
            let expected = match outcome {
                Fast::Declined => {
                    declined += 1;
                    assert_eq!(f1, before, "round {round}: the frame changed");
                    assert!(m1.0 == memory, "round {round}: the memory changed");
                    assert_eq!(c1, start, "round {round}: the bases changed");
                    assert_eq!(fast.domains[0].vcpus[0].kernel_mode(), mode, "round {round}");
                    continue;
                }
                Fast::Done => Action { toggled: false, reload_gdt: false, next: Next::Resume },
                Fast::Exit { was_kernel } => {
                    exits += 1;
                    assert!(was_kernel, "round {round}");
                    fast.finish_fast_entry(was_kernel, &mut f1, 1000, 1000, &mut m1)
                }
                Fast::Toggled { .. } => panic!("round {round}: a privileged op changed mode"),
            };
            upcalls += usize::from(f1.rip == CALLBACK);
            if code == [0x0f, 0x30] {
                writes += 1;
            } else {
                reads += 1;
            }
            let action = slow.guest_trap(&mut f2, 0, 1000, 1000, &mut m2, &mut c2);
            assert_eq!(action, expected, "round {round}: {outcome:?}");
            assert_eq!(f1, f2, "round {round}: the frames differ ({outcome:?})");
            assert!(m1.0 == m2.0, "round {round}: the memory differs");
            assert_eq!(c1, c2, "round {round}: the bases differ");
            let mode = |s: &System| s.domains[0].vcpus[0].kernel_mode();
            assert_eq!(mode(&fast), mode(&slow), "round {round}");
        }
        std::println!("reads {reads}, writes {writes}, upcalls {upcalls}, exits {exits}, declined {declined}");
        assert!(
            reads > 100 && writes > 100 && upcalls > 20 && exits > 10 && declined > 500,
            "every outcome is exercised"
        );
    }
}
