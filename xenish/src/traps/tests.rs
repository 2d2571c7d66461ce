//! Host tests of the trap handling.

use super::emul_io::io_okay;
use super::emul_priv_op::{CR4_FSGSBASE, GUEST_CR4, MSR_FS_BASE, MSR_GS_BASE};
use super::*;
use crate::guest_access::Access;
use crate::hypercall::tests::{World, BUF_VA};
use crate::mm::Mfn;
extern crate std;

#[derive(Default)]
struct FakeCpu {
    bases: [u64; 3],
    ts: Option<bool>,
    wbinvds: u32,
    outs: std::vec::Vec<(u16, u8, u32)>,
    /// The last CR4.FSGSBASE set.
    fsgsbase: Option<bool>,
    /// Whether CPUID reports FSGSBASE (leaf 7, ebx bit 0).
    has_fsgsbase: bool,
}

impl CpuOps for FakeCpu {
    fn port_in(&mut self, port: u16, _size: u8) -> u32 {
        u32::from(port) ^ 0xffff
    }
    fn port_out(&mut self, port: u16, size: u8, value: u32) {
        self.outs.push((port, size, value));
    }
    fn clts(&mut self) {}
    fn set_ts(&mut self, set: bool) {
        self.ts = Some(set);
    }
    fn wbinvd(&mut self) {
        self.wbinvds += 1;
    }
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
        match leaf {
            7 => [0, u32::from(self.has_fsgsbase), 0, 0],
            _ => [leaf, 0, 0, 0],
        }
    }
    fn write_segment_base(&mut self, msr: u32, value: u64) {
        self.bases[(msr - MSR_FS_BASE) as usize] = value;
    }
    fn read_segment_base(&self, msr: u32) -> u64 {
        self.bases[(msr - MSR_FS_BASE) as usize]
    }
    fn set_fsgsbase(&mut self, on: bool) {
        self.fsgsbase = Some(on);
    }
}

/// A guest frame with code at BUF_VA and the stack top at BUF_VA + 0x3000.
fn setup(code: &[u8]) -> (World, TrapFrame) {
    let mut w = World::new(false);
    w.poke(BUF_VA, code);
    let frame = TrapFrame {
        rip: BUF_VA,
        cs: FLAT_KERNEL_CS,
        rflags: 0x202,
        rsp: BUF_VA + 0x3008,
        ss: FLAT_KERNEL_SS,
        rcx: 0x1111,
        r11: 0x2222,
        ..TrapFrame::default()
    };
    (w, frame)
}

fn run(w: &mut World, frame: &mut TrapFrame, vector: u64, error: u64) -> TrapDecision {
    frame.vector = vector;
    frame.error_code = error;
    let mut cpu = FakeCpu::default();
    handle(&mut w.dom, 0, frame, (0xdead_0000, 0), (&mut w.mem, &mut w.ft), &mut cpu)
}

#[test]
fn forced_emulation_cpuid_reports_xen() {
    let (mut w, mut f) = setup(&FEP_CPUID);
    f.rax = 0x4000_0000;
    assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Resume));
    assert_eq!(f.rip, BUF_VA + 7);
    assert_eq!((f.rbx, f.rcx, f.rdx), (0x566e_6558, 0x6558_4d4d, 0x4d4d_566e));
}

#[test]
fn reads_cr3_and_writes_segment_bases() {
    let (mut w, mut f) = setup(&[0x41, 0x0f, 0x20, 0xd9]); // mov %cr3, %r9
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
    assert_eq!((f.r9, f.rip), (0, BUF_VA + 4)); // kernel L4 is frame 0 in the test world
    let (mut w, mut f) = setup(&[0x0f, 0x30]); // wrmsr
    f.rcx = u64::from(MSR_GS_BASE);
    f.rdx = 0xffff_ffff;
    f.rax = 0x8304_4000;
    let mut cpu = FakeCpu::default();
    f.vector = 13;
    assert!(matches!(handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu), TrapDecision::Resume));
    assert_eq!(cpu.bases[1], 0xffff_ffff_8304_4000);
    // A non-canonical base is not emulated: with no handler, the guest dies.
    let (mut w, mut f) = setup(&[0x0f, 0x30]);
    f.rcx = u64::from(MSR_FS_BASE);
    f.rdx = 0x8000;
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Crash(_)));
}

/// CR4.FSGSBASE is the guest kernel's (Xen's `pv_fixup_guest_cr4` and
/// `pv_make_cr4`, XSA-293): clear at first, set by a write of CR4 with the
/// bit where CPUID offers the feature (and then read back, and loaded into
/// the CPU), cleared by a write without it; where CPUID does not offer it,
/// a write of the bit is ignored.
#[test]
fn cr4_fsgsbase_is_the_guest_kernels_where_offered() {
    let step = |dom: Option<crate::domain::Domain>, code: &[u8], rax: u64, has: bool| {
        let (mut w, mut f) = setup(code);
        if let Some(d) = dom {
            w.dom = d;
        }
        f.rax = rax;
        let mut cpu = FakeCpu { has_fsgsbase: has, ..FakeCpu::default() };
        f.vector = 13;
        let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 3);
        (w.dom, f.rax, cpu.fsgsbase)
    };
    const READ: [u8; 3] = [0x0f, 0x20, 0xe0];
    const WRITE: [u8; 3] = [0x0f, 0x22, 0xe0];
    let (dom, cr4, _) = step(None, &READ, 0, true);
    assert_eq!(cr4, GUEST_CR4, "clear at first");
    assert!(!dom.vcpus[0].cr4_fsgsbase);
    let (dom, _, loaded) = step(Some(dom), &WRITE, GUEST_CR4 | CR4_FSGSBASE, true);
    assert_eq!((dom.vcpus[0].cr4_fsgsbase, loaded), (true, Some(true)), "set where offered");
    let (dom, cr4, _) = step(Some(dom), &READ, 0, true);
    assert_eq!(cr4, GUEST_CR4 | CR4_FSGSBASE, "and read back");
    let (dom, _, loaded) = step(Some(dom), &WRITE, GUEST_CR4, true);
    assert_eq!((dom.vcpus[0].cr4_fsgsbase, loaded), (false, Some(false)), "cleared");
    let (dom, _, loaded) = step(Some(dom), &WRITE, GUEST_CR4 | CR4_FSGSBASE, false);
    assert_eq!((dom.vcpus[0].cr4_fsgsbase, loaded), (false, Some(false)), "not offered: ignored");
    let (_, cr4, _) = step(Some(dom), &READ, 0, false);
    assert_eq!(cr4, GUEST_CR4);
}

#[test]
fn control_registers_clts_and_cache_flushes() {
    let step = |code: &[u8], prepare: &dyn Fn(&mut World, &mut TrapFrame)| {
        let (mut w, mut f) = setup(code);
        prepare(&mut w, &mut f);
        let mut cpu = FakeCpu::default();
        f.vector = 13;
        let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        (w, f, cpu, d)
    };
    // mov %rax, %cr0 setting TS only; then clts.
    let (w, f, cpu, d) = step(&[0x0f, 0x22, 0xc0], &|_, f| f.rax = 0x8005_003b);
    assert!(matches!(d, TrapDecision::Resume));
    assert_eq!((w.dom.vcpus[0].fpu_ts, cpu.ts, f.rip), (true, Some(true), BUF_VA + 3));
    let (w, _, cpu, _) = step(&[0x0f, 0x06], &|w, _| w.dom.vcpus[0].fpu_ts = true);
    assert_eq!((w.dom.vcpus[0].fpu_ts, cpu.ts), (false, Some(false)));
    // Changing any other CR0 bit is not emulated (a #GP, here a crash).
    let (_, _, _, d) = step(&[0x0f, 0x22, 0xc0], &|_, f| f.rax = 0x8005_0032);
    assert!(matches!(d, TrapDecision::Crash(_)), "clearing PE");
    // CR2 round trip through vcpu_info.arch.cr2; CR4 writes accepted.
    let (w, _, _, _) = step(&[0x0f, 0x22, 0xd1], &|_, f| f.rcx = 0x1234_5000);
    assert_eq!(&w.mem.0[8][0x10..0x18], &0x1234_5000u64.to_le_bytes());
    let (_, f, _, _) = step(&[0x0f, 0x20, 0xd2], &|w, _| w.mem.0[8][0x10..0x18].copy_from_slice(&[7; 8]));
    assert_eq!(f.rdx, 0x0707_0707_0707_0707);
    let (_, f, _, d) = step(&[0x0f, 0x22, 0xe0], &|_, f| f.rax = 0);
    assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 3);
    let (_, f, _, _) = step(&[0x0f, 0x20, 0xe0], &|_, _| {});
    assert_eq!(f.rax, GUEST_CR4);
    // mov %rax, %cr3: a new kernel L4, validated as NEW_BASEPTR does.
    let (w, f, _, d) = step(&[0x0f, 0x22, 0xd8], &|w, f| {
        w.mem.0[9] = w.mem.0[0];
        f.rax = 9 << 12;
    });
    assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 3);
    assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(9));
    assert_eq!(w.ft.page_type(Mfn(9)), crate::mm::frame_table::PageType::L4);
    let (w, _, _, d) = step(&[0x0f, 0x22, 0xd8], &|_, f| f.rax = 5 << 12);
    assert!(matches!(d, TrapDecision::Crash(_)), "a data frame is no L4: #GP");
    assert_eq!(w.dom.vcpus[0].kernel_l4, Mfn(0));
    // wbinvd: performed for the privileged domain, ignored for others.
    let (_, f, cpu, _) = step(&[0x0f, 0x09], &|_, _| {});
    assert_eq!((cpu.wbinvds, f.rip), (0, BUF_VA + 2));
    let (_, _, cpu, _) = step(&[0x0f, 0x09], &|w, _| w.dom.privileged = true);
    assert_eq!(cpu.wbinvds, 1);
    // Machine-check MSRs (vMCE): two banks, nothing to report.
    let (_, f, _, _) = step(&[0x0f, 0x32], &|_, f| f.rcx = 0x179);
    assert_eq!((f.rax, f.rdx, f.rip), (2, 0, BUF_VA + 2));
    let (_, f, _, _) = step(&[0x0f, 0x32], &|_, f| f.rcx = 0x404);
    assert_eq!((f.rax, f.rdx), (u64::from(u32::MAX), u64::from(u32::MAX)), "MC1_CTL: all ones");
    let (_, f, _, d) = step(&[0x0f, 0x30], &|_, f| f.rcx = 0x17a);
    assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 2, "MCG_STATUS writes accepted");
    let (_, _, _, d) = step(&[0x0f, 0x32], &|_, f| f.rcx = 0x408);
    assert!(matches!(d, TrapDecision::Crash(_)), "no third bank");
    // cli/sti: no-ops with I/O privilege, #GP without.
    let (_, f, _, d) = step(&[0xfa], &|w, _| w.dom.vcpus[0].iopl = 1);
    assert!(matches!(d, TrapDecision::Resume) && f.rip == BUF_VA + 1 && f.rflags & 0x200 != 0);
    let (_, _, _, d) = step(&[0xfb], &|_, _| {});
    assert!(matches!(d, TrapDecision::Crash(_)), "sti without I/O privilege");
    // hlt is not emulated for PV (Xen's priv-op filter): #GP.
    let (_, _, _, d) = step(&[0xf4], &|_, _| {});
    assert!(matches!(d, TrapDecision::Crash(_)));
}

#[test]
fn port_io_needs_privilege_and_iopl_and_spares_xenish_ports() {
    // in al, dx with dx = 0x3c4 (VGA sequencer)
    let (mut w, mut f) = setup(&[0xec]);
    f.rdx = 0x3c4;
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Crash(_)), "no I/O privilege: #GP");
    let (mut w, mut f) = setup(&[0xec]);
    w.dom.privileged = true;
    w.dom.vcpus[0].iopl = 1;
    f.rdx = 0x3c4;
    f.rax = 0x1234_5600;
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
    assert_eq!((f.rax, f.rip), (0x1234_5600 | (0x3c4 ^ 0xffff) & 0xff, BUF_VA + 1));
    // The hypervisor's own ports, as Xen's guest_io_read/write do for
    // ports dom0 may not touch: writes dropped, reads all ones. Here
    // out %al, $0xf4 (QEMU's debug exit) and in $0x20 (the PIC).
    for (code, what) in [(&[0xe6u8, 0xf4][..], "debug exit"), (&[0xe4, 0x20], "PIC")] {
        let (mut w, mut f) = setup(code);
        w.dom.privileged = true;
        w.dom.vcpus[0].iopl = 1;
        f.vector = 13;
        let mut cpu = FakeCpu::default();
        assert!(matches!(
            handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu),
            TrapDecision::Resume
        ));
        assert!(cpu.outs.is_empty(), "{what}: nothing reaches the hardware");
        assert_eq!((f.rax & 0xff, f.rip), (if code[0] == 0xe4 { 0xff } else { 0 }, BUF_VA + 2), "{what}");
    }
    // Port 0x61 and PIT channel 2 are the domain's virtual PIT.
    let (mut w, mut f) = setup(&[0xe6, 0x61]); // out %al, $0x61: gate on
    w.dom.privileged = true;
    w.dom.vcpus[0].iopl = 1;
    f.rax = 1;
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
    assert_eq!(w.dom.pit.read(0x61, 0) & 1, 1);
    // 16-bit in %dx, %ax
    let (mut w, mut f) = setup(&[0x66, 0xed]);
    w.dom.privileged = true;
    w.dom.vcpus[0].iopl = 3;
    f.rdx = 0x1f0;
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
    assert_eq!((f.rax & 0xffff, f.rip), (u64::from(0x1f0u16 ^ 0xffff), BUF_VA + 2));
}

#[test]
fn an_unprivileged_domain_with_iopl_sees_no_ports() {
    let io = |code: &[u8], prep: &dyn Fn(&mut TrapFrame)| {
        let (mut w, mut f) = setup(code);
        w.dom.vcpus[0].iopl = 1;
        prep(&mut f);
        let mut cpu = FakeCpu::default();
        let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        assert!(matches!(d, TrapDecision::Resume));
        assert!(cpu.outs.is_empty(), "nothing reaches the hardware");
        (w, f)
    };
    let (_, f) = io(&[0xec], &|f| (f.rdx, f.rax, f.vector) = (0x3c4, 0x1234_5600, 13));
    assert_eq!((f.rax, f.rip), (0x1234_56ff, BUF_VA + 1), "in al: all ones");
    let (w, f) = io(&[0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcf8, 0x8000_c068, 13));
    assert_eq!((w.dom.pci_cf8, f.rip), (0x8000_c068, BUF_VA + 1), "out eax to 0xcf8: latched");
    let (_, f) = io(&[0xed], &|f| (f.rdx, f.vector) = (0xcfc, 13));
    assert_eq!(f.rax, 0xffff_ffff, "no device behind 0xcfc");
    let (_, f) = io(&[0xe6, 0xf4], &|f| f.vector = 13);
    assert_eq!(f.rip, BUF_VA + 2, "a write is dropped");
}

#[test]
fn the_control_domains_pci_config_goes_through_its_latch_and_the_msi_filter() {
    let (_hw, pci) = crate::irq::tests::install_qemu_with_pci();
    crate::irq::with(|r| r.pci_add(0x10));
    let io = |w: &mut World, code: &[u8], prep: &dyn Fn(&mut TrapFrame)| {
        let (_, mut f) = setup(code);
        w.poke(BUF_VA, code);
        prep(&mut f);
        let mut cpu = FakeCpu::default();
        let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        assert!(matches!(d, TrapDecision::Resume));
        assert!(cpu.outs.is_empty(), "0xcf8/0xcfc are the hypervisor's: nothing goes straight to them");
        f
    };
    let (mut w, _) = setup(&[0x90]);
    w.dom.privileged = true;
    w.dom.vcpus[0].iopl = 1;
    // out eax to 0xcf8: 00:02.0 register 0x98 (its MSI-X capability).
    io(&mut w, &[0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcf8, 0x8000_1098, 13));
    assert_eq!(w.dom.pci_cf8, 0x8000_1098);
    let f = io(&mut w, &[0xed], &|f| (f.rdx, f.vector) = (0xcf8, 13));
    assert_eq!(f.rax, 0x8000_1098, "in eax from 0xcf8: the latch");
    let f = io(&mut w, &[0xed], &|f| (f.rdx, f.vector) = (0xcfc, 13));
    assert_eq!(f.rax, 0x0002_0011, "the capability header and control word");
    let f = io(&mut w, &[0x66, 0xed], &|f| (f.rdx, f.rax, f.vector) = (0xcfe, 0xdead_0000, 13));
    assert_eq!((f.rax, f.rip), (0xdead_0002, BUF_VA + 2), "in ax from 0xcfe: the control word");
    // out ax to 0xcfe: the control word passes; a dword over the capability is dropped.
    io(&mut w, &[0x66, 0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcfe, 0xc002, 13));
    assert_eq!(pci.get(0x10, 0x9a, 2), 0xc002);
    io(&mut w, &[0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcfc, 0, 13));
    assert_eq!(pci.get(0x10, 0x98, 4), 0xc002_0011);
    // Elsewhere in config space writes pass: the command register.
    io(&mut w, &[0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcf8, 0x8000_1004, 13));
    io(&mut w, &[0x66, 0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcfc, 0x0406, 13));
    assert_eq!(pci.get(0x10, 0x04, 2), 0x0406);
    // Without the enable bit no function is addressed.
    io(&mut w, &[0xef], &|f| (f.rdx, f.rax, f.vector) = (0xcf8, 0x0000_1004, 13));
    let f = io(&mut w, &[0xed], &|f| (f.rdx, f.vector) = (0xcfc, 13));
    assert_eq!(f.rax, 0xffff_ffff);
}

#[test]
fn the_io_bitmap_grants_ports_iopl_does_not() {
    // in al, dx (0x3c4) through a bitmap at BUF_VA + 0x1000 covering
    // 0x400 ports, all allowed but those whose bits are set.
    let (mut w, mut f) = setup(&[0xec]);
    w.dom.privileged = true;
    w.dom.vcpus[0].iobitmap = (BUF_VA + 0x1000, 0x400);
    f.rdx = 0x3c4;
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume), "a clear bit: allowed");
    assert_eq!(f.rip, BUF_VA + 1);
    let bits = |w: &mut World, byte: u64, value: u8| w.poke(BUF_VA + 0x1000 + byte, &[value]);
    let ok = |w: &mut World, port: u16, bytes: u32| io_okay(&w.dom, 0, port, bytes, &mut w.mem);
    bits(&mut w, 0x78, 1 << 4);
    assert!(!ok(&mut w, 0x3c4, 1), "its bit set");
    assert!(ok(&mut w, 0x3c5, 1) && ok(&mut w, 0x3c0, 4), "the neighbours' bits are clear");
    assert!(!ok(&mut w, 0x3c2, 4), "a wide access needs every port's bit clear");
    bits(&mut w, 0x79, 1);
    assert!(!ok(&mut w, 0x3c6, 4), "across a byte boundary");
    assert!(ok(&mut w, 0x3ff, 1) && !ok(&mut w, 0x3ff, 2) && !ok(&mut w, 0x400, 1), "the limit");
    w.dom.vcpus[0].iobitmap = (BUF_VA + 0x3fff, 0x400);
    assert!(ok(&mut w, 0, 1) && !ok(&mut w, 8, 1), "an unreadable byte forbids its ports");
    w.dom.vcpus[0].iobitmap = (0x10, 0x400);
    assert!(!ok(&mut w, 0, 1), "an unmapped bitmap forbids all");
    // The virtual IOPL: the kernel needs 1 (0 with architectural IOPL),
    // user mode 3.
    w.dom.vcpus[0].iobitmap = (0, 0);
    w.dom.vcpus[0].iopl = 1;
    assert!(ok(&mut w, 0x3c4, 1));
    w.dom.vcpus[0].set_kernel_mode(false);
    assert!(!ok(&mut w, 0x3c4, 1), "IOPL 1 does not cover user mode");
    w.dom.vcpus[0].iopl = 3;
    assert!(ok(&mut w, 0x3c4, 1));
    w.dom.vcpus[0].set_kernel_mode(true);
    w.dom.vcpus[0].iopl = 0;
    assert!(!ok(&mut w, 0x3c4, 1));
    w.dom.vm_assist |= 1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL;
    assert!(ok(&mut w, 0x3c4, 1), "architectural IOPL: the kernel is ring 0");
}

/// The test world with its L1 (frame 3) also mapped read-only at
/// BUF_VA + 0x2000, writable page tables on, and the code `code` at
/// BUF_VA; returns the address of the L1 entry that maps BUF_VA + 0x3000.
fn ptwr_world(code: &[u8]) -> (World, TrapFrame, u64) {
    let (mut w, f) = setup(code);
    let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
    assert_eq!(w.call_ret(uvm, [BUF_VA + 0x2000, (3 << 12) | 0x25, 0, 0, 0]), 0);
    w.dom.vm_assist = 1 << guest_abi::xen::VMASST_TYPE_WRITABLE_PAGETABLES;
    let slot = ((BUF_VA + 0x3000) >> 12) & 511;
    (w, f, BUF_VA + 0x2000 + slot * 8)
}

fn ptwr_fault(w: &mut World, f: &mut TrapFrame, cr2: u64) -> TrapDecision {
    f.vector = 14;
    f.error_code = 7; // present, write, user (the guest kernel's ring 3)
    let mut cpu = FakeCpu::default();
    let d = handle(&mut w.dom, 0, f, (cr2, 0), (&mut w.mem, &mut w.ft), &mut cpu);
    w.audit();
    d
}

#[test]
fn writes_to_read_only_page_tables_are_emulated() {
    // mov %rcx,(%rdi): map frame 9 at BUF_VA + 0x3000.
    let (mut w, mut f, pte_va) = ptwr_world(&[0x48, 0x89, 0x0f]);
    (f.rcx, f.rdi) = ((9 << 12) | 0x63, pte_va);
    assert!(matches!(ptwr_fault(&mut w, &mut f, pte_va), TrapDecision::Resume));
    assert_eq!(f.rip, BUF_VA + 3, "stepped over the mov");
    assert_eq!(GuestMemory::new(&mut w.mem, Mfn(0)).translate(BUF_VA + 0x3000, Access::Write), Ok(0x9000));
    // lock btrq $1,(%rdi): clear RW; CF reports it was set.
    let (mut w2, mut f2, pte_va) = ptwr_world(&[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x01]);
    f2.rdi = pte_va;
    assert!(matches!(ptwr_fault(&mut w2, &mut f2, pte_va), TrapDecision::Resume));
    assert_eq!(f2.rflags & 1, 1);
    assert_eq!(GuestMemory::new(&mut w2.mem, Mfn(0)).translate(BUF_VA + 0x3000, Access::Write).ok(), None);
}

#[test]
fn the_control_domains_writes_to_an_msix_table_in_use_are_dropped() {
    crate::irq::tests::install_qemu_with_pci();
    let irq = crate::irq::with(|r| {
        r.pci_add(0x10);
        r.map_msi(0x10, 0, 0xfebf_1000)
    });
    assert!(matches!(irq, Some(Ok(_))));
    // mov %rcx,(%rdi) through BUF_VA + 0x3000, which maps the table's frame
    // (asked for writable, made read-only), then another device frame read-only.
    let (mut w, f) = setup(&[0x48, 0x89, 0x0f]);
    w.dom.privileged = true;
    w.ft.io_frames_end = 1 << 28;
    let uvm = guest_abi::xen::HYPERVISOR_UPDATE_VA_MAPPING as u64;
    let fault = |w: &mut World, f: &mut TrapFrame| {
        (f.vector, f.error_code, f.rdi) = (14, 7, BUF_VA + 0x3000);
        let mut cpu = FakeCpu::default();
        handle(&mut w.dom, 0, f, (BUF_VA + 0x3000, 0), (&mut w.mem, &mut w.ft), &mut cpu)
    };
    assert_eq!(w.call_ret(uvm, [BUF_VA + 0x3000, (0xfebf1 << 12) | 0x27, 0, 0, 0]), 0);
    let mut g = f;
    assert!(matches!(fault(&mut w, &mut g), TrapDecision::Resume));
    assert_eq!(g.rip, BUF_VA + 3, "dropped and stepped over");
    assert_eq!(w.call_ret(uvm, [BUF_VA + 0x3000, (0xfebf2 << 12) | 0x25, 0, 0, 0]), 0);
    let mut g = f;
    assert!(matches!(fault(&mut w, &mut g), TrapDecision::Crash(_)), "other read-only device memory: the guest's #PF");
}

#[test]
fn page_table_writes_are_validated_like_mmu_update() {
    let (mut w, mut f, pte_va) = ptwr_world(&[0x48, 0x89, 0x0f]);
    let before = w.mem.0[3];
    for (pte, what) in [((2u64 << 12) | 0x63, "a page table writable"), ((99 << 12) | 0x63, "a frame not its own")] {
        let mut g = f;
        (g.rcx, g.rdi) = (pte, pte_va);
        assert!(matches!(ptwr_fault(&mut w, &mut g, pte_va), TrapDecision::Crash(_)), "{what}: a #PF to the guest");
        assert_eq!(w.mem.0[3], before, "{what}: the table is unchanged");
    }
    w.dom.vm_assist = 0;
    (f.rcx, f.rdi) = ((9 << 12) | 0x63, pte_va);
    assert!(matches!(ptwr_fault(&mut w, &mut f, pte_va), TrapDecision::Crash(_)), "not without writable_pagetables");
    assert_eq!(w.mem.0[3], before);
}

#[test]
fn no_handler_crashes_with_a_report() {
    let (mut w, mut f) = setup(&[0x0f, 0x0b]);
    match run(&mut w, &mut f, 6, 0) {
        TrapDecision::Crash(why) => assert!(why.contains("#UD"), "{why}"),
        TrapDecision::Resume => panic!("must crash"),
    }
}

#[test]
fn bounce_builds_xens_frame() {
    let (mut w, mut f) = setup(&[0; 4]);
    w.dom.vcpus[0].traps[14] = TrapHandler { cs: 0xe033, flags: TI_DISABLE_EVENTS, address: 0xffff_ffff_8000_5000 };
    // Events unmasked before the fault.
    w.mem.0[8][1] = 0;
    assert!(matches!(run(&mut w, &mut f, 14, 0x6), TrapDecision::Resume));
    let sp = (BUF_VA + 0x3008) & !15;
    assert_eq!(f.rsp, sp - 8 * 8);
    assert_eq!((f.rip, f.cs, f.ss), (0xffff_ffff_8000_5000, 0xe033, 0xe02b));
    let words: std::vec::Vec<u64> =
        w.peek(f.rsp, 64).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    // The user bit is cleared: the fault came from guest kernel mode.
    assert_eq!(words, [0x1111, 0x2222, 0x2, BUF_VA, 0xe030, 0x202, BUF_VA + 0x3008, 0xe02b]);
    assert_eq!(w.mem.0[8][1], 1, "TI_DISABLE_EVENTS masks events");
    assert_eq!(&w.mem.0[8][0x10..0x18], &0xdead_0000u64.to_le_bytes(), "cr2 in vcpu_info");
}

#[test]
fn a_bounce_keeps_df_and_a_system_call_clears_it() {
    let (mut w, mut f) = setup(&[0x0f, 0x0b]);
    w.dom.vcpus[0].traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
    f.rflags |= EFLAGS_DF | EFLAGS_AC;
    assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Resume));
    assert_eq!(f.rflags & (EFLAGS_DF | EFLAGS_AC), EFLAGS_DF, "as Xen: DF stays, AC goes");
    let (mut w, mut f) = setup(&[0; 4]);
    let v = &mut w.dom.vcpus[0];
    v.set_kernel_mode(false);
    v.user_l4 = Some(crate::mm::Mfn(0));
    v.set_kernel_sp(BUF_VA + 0x2000);
    v.callbacks.syscall = crate::domain::Callback { address: 0x9000, mask_events: false };
    f.r11 = 0x202 | EFLAGS_DF;
    assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert_eq!(f.rflags & EFLAGS_DF, 0);
}

#[test]
fn saved_mask_goes_into_cs_and_if() {
    let (mut w, mut f) = setup(&[0xcd, 0x80]); // int $0x80
    w.dom.vcpus[0].traps[0x80] = TrapHandler { cs: 0xe033, flags: 3, address: 0x7000 };
    w.mem.0[8][1] = 1; // masked
    assert!(matches!(run(&mut w, &mut f, 13, 0x402), TrapDecision::Resume));
    let words: std::vec::Vec<u64> =
        w.peek(f.rsp, 56).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    // No error code for a software interrupt; rip is after the int.
    assert_eq!(words, [0x1111, 0x2222, BUF_VA + 2, 0xe030 | 1 << 32, 0x002, BUF_VA + 0x3008, 0xe02b]);
}

#[test]
fn int_through_a_gate_the_caller_may_not_use_is_a_gp_naming_it() {
    // DPL 0: not for the guest kernel either; with no #GP handler, a crash.
    let (mut w, mut f) = setup(&[0xcd, 0x80]);
    w.dom.vcpus[0].traps[0x80] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Crash(_)));
    // With a #GP handler: #GP with error 0x80 << 3 | 2 at the int,
    // whatever error code the CPU (QEMU) reported.
    let (mut w, mut f) = setup(&[0xcd, 0x80]);
    w.dom.vcpus[0].traps[0x80] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
    w.dom.vcpus[0].traps[13] = TrapHandler { cs: 0xe033, flags: 0, address: 0x6000 };
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
    assert_eq!(f.rip, 0x6000);
    let words: std::vec::Vec<u64> =
        w.peek(f.rsp, 24).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(words, [0x1111, 0x2222, 0x402]);
    assert_eq!(w.peek(f.rsp + 24, 8), BUF_VA.to_le_bytes(), "rip at the int");
    // DPL 1 is enough from guest kernel mode (Xen's permit_softint).
    let (mut w, mut f) = setup(&[0xcd, 0x81]);
    w.dom.vcpus[0].traps[0x81] = TrapHandler { cs: 0xe033, flags: 1, address: 0x7000 };
    assert!(matches!(run(&mut w, &mut f, 13, 0), TrapDecision::Resume));
    assert_eq!(f.rip, 0x7000);
    assert_eq!(w.peek(f.rsp + 16, 8), (BUF_VA + 2).to_le_bytes(), "rip after the int");
}

#[test]
fn softint_permission_follows_the_callers_mode() {
    assert!(permit_softint(1, true) && permit_softint(3, true) && !permit_softint(0, true));
    assert!(permit_softint(3, false) && !permit_softint(2, false));
}

fn words_at(w: &mut World, va: u64, n: usize) -> std::vec::Vec<u64> {
    w.peek(va, n * 8).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn an_iret_to_a_non_canonical_rip_enters_the_failsafe_callback() {
    let (mut w, mut f) = setup(&[0; 4]);
    let ctx: [u64; 9] = [0x42, 0x33, 0x44, 0, 0x8000_0000_0000_0000, 0xe030, 0x246, BUF_VA + 0x2008, 0xe02b];
    let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
    f.rsp = BUF_VA + 0x1000;
    w.poke(f.rsp, &bytes);
    let d = iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0xe02b, 0, 0x1b, 0]);
    assert!(matches!(&d, TrapDecision::Crash(why) if why.contains("no failsafe callback")), "{d:?}");

    let (mut w, mut f) = setup(&[0; 4]);
    w.dom.vcpus[0].callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: true };
    f.rsp = BUF_VA + 0x1000;
    w.poke(f.rsp, &bytes);
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0xe02b, 0, 0x1b, 0]), TrapDecision::Resume));
    assert_eq!((f.rip, f.cs, f.ss, f.rsp), (0x5000, 0xe033, 0xe02b, BUF_VA + 0x2000 - 88));
    // rcx, r11, ds, es, fs, gs, rip, cs (kernel: RPL 0; IF was set, so
    // the saved mask is 0), rflags, rsp, ss.
    let words = words_at(&mut w, f.rsp, 11);
    assert_eq!(words, [0x44, 0x33, 0xe02b, 0, 0x1b, 0, 0x8000_0000_0000_0000, 0xe030, 0x246, BUF_VA + 0x2008, 0xe02b]);
    assert_eq!(w.mem.0[8][1], 1, "CALLBACKF_mask_events masks events");
    assert_eq!(f.rax, 0x42);
}

#[test]
fn a_selector_that_no_longer_loads_enters_the_failsafe_callback() {
    let (mut w, mut f) = setup(&[0; 4]);
    w.dom.vcpus[0].segments.ds = 0xe02b;
    w.dom.vcpus[0].segments.fs = 0x0b; // GDT entry 1: the vCPU has no GDT frames
    assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Crash(_)));
    let (mut w, mut f) = setup(&[0; 4]);
    w.dom.vcpus[0].segments.ds = 0xe02b;
    w.dom.vcpus[0].callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: false };
    assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert_eq!(f.rip, BUF_VA, "flat and null selectors load");
    w.dom.vcpus[0].segments.fs = 0x0b;
    assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert_eq!(f.rip, 0x5000);
    let words = words_at(&mut w, f.rsp, 11);
    assert_eq!(words, [0x1111, 0x2222, 0xe02b, 0, 0x0b, 0, BUF_VA, 0xe030, 0x202, BUF_VA + 0x3008, 0xe02b]);
    assert_eq!(w.mem.0[8][1], 0, "events stay as they were without CALLBACKF_mask_events");
    // From user mode: the frame goes on the kernel stack, cs keeps RPL 3.
    let (mut w, mut f) = setup(&[0; 4]);
    let v = &mut w.dom.vcpus[0];
    v.set_kernel_mode(false);
    v.user_l4 = Some(crate::mm::Mfn(0));
    v.set_kernel_sp(BUF_VA + 0x2000);
    v.segments.gs = 0x0f; // an LDT selector: there is no LDT
    v.callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: false };
    f.rsp = 0x7fff_0000;
    assert!(matches!(reload_segments(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert!(w.dom.vcpus[0].kernel_mode());
    assert_eq!(f.rsp, BUF_VA + 0x2000 - 88);
    assert_eq!(words_at(&mut w, f.rsp + 40, 3), [0x0f, BUF_VA, 0xe033]);
}

#[test]
fn an_emulated_instruction_under_single_step_raises_debug() {
    let (mut w, mut f) = setup(&FEP_CPUID);
    w.dom.vcpus[0].traps[1] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
    f.rflags |= 0x100;
    assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Resume));
    assert_eq!(f.rip, 0x7000);
    assert_eq!(w.peek(f.rsp + 16, 8), (BUF_VA + 7).to_le_bytes(), "the #DB is after the cpuid");
    assert_eq!(w.dom.vcpus[0].debugreg[6], 0xffff_4ff0, "DR6.BS");
}

#[test]
fn a_debug_trap_leaves_its_status_in_the_guests_dr6() {
    let (mut w, mut f) = setup(&[0x90]);
    w.dom.vcpus[0].traps[1] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
    f.rflags |= 0x100; // TF: a single step
    let mut cpu = FakeCpu::default();
    f.vector = 1;
    let d = handle(&mut w.dom, 0, &mut f, (0xffff_4ff0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
    assert!(matches!(d, TrapDecision::Resume));
    assert_eq!(w.dom.vcpus[0].debugreg[6], 0xffff_4ff0);
    assert_eq!(f.rflags & 0x100, 0, "the handler runs without TF");
    assert_eq!(w.peek(f.rsp + 32, 8), (0x302u64).to_le_bytes(), "the saved rflags keep it");
}

#[test]
fn unwritable_stack_crashes() {
    let (mut w, mut f) = setup(&[0; 4]);
    w.dom.vcpus[0].traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x7000 };
    f.rsp = 0x1000; // unmapped
    assert!(matches!(run(&mut w, &mut f, 6, 0), TrapDecision::Crash(_)));
}

#[test]
fn iret_restores_the_context() {
    let (mut w, mut f) = setup(&[0; 4]);
    let ctx: [u64; 9] = [0x42, 0x33, 0x44, 0, 0xffff_ffff_8000_9000, 0xe030, 0x246, BUF_VA + 0x2000, 0xe02b];
    let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
    f.rsp = BUF_VA + 0x1000;
    w.poke(f.rsp, &bytes);
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Resume));
    assert_eq!((f.rax, f.r11, f.rcx, f.rip, f.rsp), (0x42, 0x33, 0x44, 0xffff_ffff_8000_9000, BUF_VA + 0x2000));
    assert_eq!(w.mem.0[8][1], 0, "IF set in rflags unmasks events");
    // VGCF_in_syscall keeps rcx/r11; a non-canonical rip crashes.
    let mut ctx2 = ctx;
    ctx2[3] = 1 << 8;
    ctx2[6] = 0x046;
    let bytes: std::vec::Vec<u8> = ctx2.iter().flat_map(|v| v.to_le_bytes()).collect();
    f.rsp = BUF_VA + 0x1000;
    f.rcx = 7;
    w.poke(f.rsp, &bytes);
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Resume));
    assert_eq!(f.rcx, 7);
    assert_eq!(w.mem.0[8][1], 1);
    // With VMASST_TYPE_architectural_iopl the iret sets the virtual IOPL.
    ctx2[6] = 0x2046;
    let bytes: std::vec::Vec<u8> = ctx2.iter().flat_map(|v| v.to_le_bytes()).collect();
    (f.rsp, w.dom.vcpus[0].iopl) = (BUF_VA + 0x1000, 0);
    w.poke(f.rsp, &bytes);
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Resume));
    assert_eq!((w.dom.vcpus[0].iopl, f.rflags & EFLAGS_IOPL), (0, 0), "not without the assist");
    w.dom.vm_assist |= 1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL;
    f.rsp = BUF_VA + 0x1000;
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Resume));
    assert_eq!((w.dom.vcpus[0].iopl, f.rflags & EFLAGS_IOPL), (2, 0), "virtual, never the real IOPL");
    ctx2[4] = 0x0000_8000_0000_0000;
    let bytes: std::vec::Vec<u8> = ctx2.iter().flat_map(|v| v.to_le_bytes()).collect();
    f.rsp = BUF_VA + 0x1000;
    w.poke(f.rsp, &bytes);
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Crash(_)));
    f.rsp = 0x10;
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Crash(_)));
}

#[test]
fn an_iret_returns_to_32_bit_code_and_one_the_cpu_would_refuse_enters_the_failsafe_callback() {
    let (mut w, _) = setup(&[0; 4]);
    w.dom.vcpus[0].user_l4 = Some(crate::mm::Mfn(0));
    w.dom.vcpus[0].set_kernel_sp(BUF_VA + 0x3000);
    w.dom.vcpus[0].callbacks.failsafe = crate::domain::Callback { address: 0x5000, mask_events: false };
    let iret_to = |w: &mut World, cs: u64, rip: u64, ss: u64| {
        let ctx: [u64; 9] = [0, 0, 0, 0, rip, cs | 0xab << 32, 0x202, BUF_VA + 0x2000, ss];
        let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.dom.vcpus[0].set_kernel_mode(true);
        let mut f = TrapFrame { rsp: BUF_VA + 0x1000, ..TrapFrame::default() };
        w.poke(f.rsp, &bytes);
        let d = iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0xe02b, 0, 0, 0]);
        assert!(matches!(d, TrapDecision::Resume), "{d:?}");
        f
    };
    let f = iret_to(&mut w, 0xe023, 0x40_0000, 0xe02b);
    assert_eq!((f.cs, f.ss, f.rip), (0xe023, 0xe02b, 0x40_0000), "compatibility mode, the upper CS bits dropped");
    assert!(!w.dom.vcpus[0].kernel_mode(), "RPL 3: user mode");
    let f = iret_to(&mut w, 0xe020, 0xffff_ffff, 0xe028);
    assert_eq!((f.cs, f.ss), (0xe023, 0xe02b), "RPL 0 stays in the kernel, loaded with RPL 3");
    assert!(w.dom.vcpus[0].kernel_mode());
    for (cs, rip, ss, what) in [
        (0xe023, 0x1_0000_0000, 0xe02b, "past 4 GiB in 32-bit code"),
        (0x0010, 0x40_0000, 0xe02b, "a GDT entry the guest does not have"),
        (0xe033, 0x40_0000, 0, "a null stack selector"),
        (0xe008, 0x40_0000, 0xe02b, "the hypervisor's code selector"),
    ] {
        let f = iret_to(&mut w, cs, rip, ss);
        assert_eq!(f.rip, 0x5000, "{what}: the failsafe callback");
        let frame = words_at(&mut w, f.rsp, 11);
        // (The selector's RPL says the mode, as in every bounce frame.)
        assert_eq!((frame[6], frame[7] & 0xfffc, frame[10]), (rip, cs & !3, ss | 3), "{what}: what failed, reported");
    }
}

#[test]
fn iret_to_user_needs_a_user_table_and_switches_mode() {
    let (mut w, mut f) = setup(&[0; 4]);
    let ctx: [u64; 9] = [0, 0, 0, 0, 0x40_0000, 0xe033, 0x202, 0x7fff_0000, 0xe02b];
    let bytes: std::vec::Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
    f.rsp = BUF_VA + 0x1000;
    w.poke(f.rsp, &bytes);
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Crash(_)));
    assert!(w.dom.vcpus[0].kernel_mode());
    w.dom.vcpus[0].user_l4 = Some(crate::mm::Mfn(0));
    f.rsp = BUF_VA + 0x1000;
    assert!(matches!(iret(&mut w.dom, 0, &mut f, &mut w.mem, || [0; 4]), TrapDecision::Resume));
    assert!(!w.dom.vcpus[0].kernel_mode());
    assert_eq!((f.rip, f.rsp, f.cs), (0x40_0000, 0x7fff_0000, 0xe033));
}

#[test]
fn user_syscall_bounces_to_the_kernel_stack() {
    let (mut w, mut f) = setup(&[0; 4]);
    let v = &mut w.dom.vcpus[0];
    v.set_kernel_mode(false);
    v.user_l4 = Some(crate::mm::Mfn(0));
    v.set_kernel_sp(BUF_VA + 0x2000);
    v.callbacks.syscall = crate::domain::Callback { address: 0x9000, mask_events: true };
    w.mem.0[8][1] = 0;
    f.rcx = 0x40_1002; // return rip
    f.r11 = 0x246; // user rflags
    f.rsp = 0x7fff_0000;
    assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert!(w.dom.vcpus[0].kernel_mode());
    assert_eq!((f.rip, f.rsp), (0x9000, BUF_VA + 0x2000 - 56));
    let words: std::vec::Vec<u64> =
        w.peek(f.rsp, 56).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(words, [0x40_1002, 0x246, 0x40_1002, 0xe033, 0x246, 0x7fff_0000, 0xe02b]);
    assert_eq!(w.mem.0[8][1], 1, "mask_events");
}

#[test]
fn a_syscall_from_32_bit_code_enters_the_syscall32_callback_with_the_syscall_callbacks_mask() {
    let (mut w, mut f) = setup(&[0; 4]);
    let v = &mut w.dom.vcpus[0];
    v.set_kernel_mode(false);
    v.user_l4 = Some(crate::mm::Mfn(0));
    v.set_kernel_sp(BUF_VA + 0x2000);
    v.callbacks.syscall = crate::domain::Callback { address: 0x9000, mask_events: false };
    v.callbacks.syscall32 = crate::domain::Callback { address: 0xa000, mask_events: true };
    v.traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x6000 };
    w.mem.0[8][1] = 0;
    (f.cs, f.rcx, f.r11, f.rsp) = (FLAT_USER_CS32, 0x40_1002, 0x246, 0x7fff_0000);
    assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert_eq!(f.rip, 0xa000, "the syscall32 callback");
    assert_eq!(words_at(&mut w, f.rsp + 24, 1), [0xe023], "the frame says FLAT_USER_CS32");
    assert_eq!(w.mem.0[8][1], 0, "events left as the 64-bit callback asked, as in Xen");
    // With no syscall32 callback, #UD at the instruction (no fallback
    // to the 64-bit one).
    w.dom.vcpus[0].callbacks.syscall32.address = 0;
    w.dom.vcpus[0].set_kernel_mode(true);
    (f.cs, f.rcx, f.rsp) = (FLAT_USER_CS32, 0x40_1002, BUF_VA + 0x1000);
    assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert_eq!((f.rip, words_at(&mut w, f.rsp + 16, 1)[0]), (0x6000, 0x40_1000), "#UD");
}

#[test]
fn upcalls_are_delivered_only_when_pending_and_unmasked() {
    let (mut w, mut f) = setup(&[0; 4]);
    w.dom.vcpus[0].callbacks.event = crate::domain::Callback { address: 0x8000, mask_events: true };
    w.mem.0[8][0] = 1; // pending
    w.mem.0[8][1] = 1; // masked
    assert_eq!(deliver_upcall(&mut w.dom, 0, &mut f, &mut w.mem), Ok(false));
    w.mem.0[8][1] = 0;
    assert_eq!(deliver_upcall(&mut w.dom, 0, &mut f, &mut w.mem), Ok(true));
    assert_eq!(f.rip, 0x8000);
    assert_eq!(w.mem.0[8][1], 1, "delivery masks events");
    let words: std::vec::Vec<u64> =
        w.peek(f.rsp, 56).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    // No error code; IF set in the saved rflags (events were unmasked).
    assert_eq!(words, [0x1111, 0x2222, BUF_VA, 0xe030, 0x202, BUF_VA + 0x3008, 0xe02b]);
    // Already masked now: nothing more until the guest unmasks.
    assert_eq!(deliver_upcall(&mut w.dom, 0, &mut f, &mut w.mem), Ok(false));
}

#[test]
fn user_syscall_without_callback_is_ud() {
    let (mut w, mut f) = setup(&[0; 4]);
    let v = &mut w.dom.vcpus[0];
    v.set_kernel_mode(false);
    v.user_l4 = Some(crate::mm::Mfn(0));
    v.set_kernel_sp(BUF_VA + 0x2000);
    v.traps[6] = TrapHandler { cs: 0xe033, flags: 0, address: 0x6000 };
    f.rcx = 0x40_1002;
    assert!(matches!(syscall_from_user(&mut w.dom, 0, &mut f, &mut w.mem), TrapDecision::Resume));
    assert_eq!(f.rip, 0x6000);
    let rip_slot = w.peek(f.rsp + 16, 8);
    assert_eq!(rip_slot, 0x40_1000u64.to_le_bytes());
}

/// The control domain reaches the CMOS clock through its own index latch,
/// as on Xen (`rtc_guest_read`/`rtc_guest_write`): the index port is never
/// written straight through, the data port is reached with the index
/// (NMI bit clear) written first; an unprivileged domain sees all ones.
#[test]
fn the_control_domains_cmos_goes_through_its_latch() {
    let io = |w: &mut World, code: &[u8], rax: u64| {
        let (_, mut f) = setup(code);
        w.poke(BUF_VA, code);
        (f.rax, f.vector) = (rax, 13);
        let mut cpu = FakeCpu::default();
        let d = handle(&mut w.dom, 0, &mut f, (0, 0), (&mut w.mem, &mut w.ft), &mut cpu);
        assert!(matches!(d, TrapDecision::Resume));
        (f, cpu.outs)
    };
    let (mut w, _) = setup(&[0x90]);
    w.dom.privileged = true;
    w.dom.vcpus[0].iopl = 1;
    // out al, 0x70: register A with the NMI-disable bit.
    let (f, outs) = io(&mut w, &[0xe6, 0x70], 0x8a);
    assert_eq!((w.dom.cmos_idx, f.rip, outs.len()), (0x8a, BUF_VA + 2, 0), "latched, not written through");
    let (f, outs) = io(&mut w, &[0xe4, 0x70], 0x1234_5600);
    assert_eq!((f.rax, outs.len()), (0x1234_560a, 0), "in al, 0x70: the latch, NMI bit clear");
    let (f, outs) = io(&mut w, &[0xe4, 0x71], 0x1234_5600);
    assert_eq!(outs, [(0x70, 1, 0x0a)], "the index goes first, NMI bit clear");
    assert_eq!(f.rax, 0x1234_5600 | u64::from((0x71u16 ^ 0xffff) as u8), "in al, 0x71: the register");
    let (_, outs) = io(&mut w, &[0xe6, 0x71], 0x26);
    assert_eq!(outs, [(0x70, 1, 0x0a), (0x71, 1, 0x26)], "out al, 0x71: the register written");
    // in ax, 0x70: byte by byte, the latch and the register.
    let (f, _) = io(&mut w, &[0x66, 0xe5, 0x70], 0);
    assert_eq!(f.rax, 0x0a | u64::from((0x71u16 ^ 0xffff) as u8) << 8);
    w.dom.privileged = false;
    let (f, outs) = io(&mut w, &[0xe4, 0x71], 0);
    assert_eq!((f.rax, outs.len()), (0xff, 0), "an unprivileged domain: all ones, nothing reaches the CMOS");
}
