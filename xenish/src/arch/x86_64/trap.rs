//! Glue between the entry stubs and the portable core: runs the domains,
//! routes guest traps and hypercalls to [`System`], carries out its
//! [`Action`]s, and reports hypervisor faults.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;

use super::memory::DirectMap;
use super::{clock, cpu, entry, serial};
use crate::domain::Domain;
use crate::hypercall::Platform;
use crate::mm::Mfn;
use crate::regs::TrapFrame;
use crate::system::{Action, System};
use crate::time::{Clock, TimeScale};
use crate::traps::CpuOps;

static SYSTEM: Mutex<Option<System>> = Mutex::new(None);
static FRAME_LIMIT: AtomicU64 = AtomicU64::new(0);
static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);

/// QEMU's `isa-debug-exit` port.
const DEBUG_EXIT_PORT: u16 = 0xf4;

struct Hardware;

impl Platform for Hardware {
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match serial::read_byte() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn cmdline(&self) -> &str {
        super::start::cmdline()
    }

    fn console_write(&mut self, bytes: &[u8]) {
        crate::console::write_bytes(bytes);
    }
}

impl CpuOps for Hardware {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = cpu::cpuid(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn write_segment_base(&mut self, msr: u32, value: u64) {
        // SAFETY: the caller passes only FS/GS/shadow-GS base MSRs and a
        // canonical value; the hypervisor itself uses neither FS nor GS.
        unsafe { cpu::wrmsr(msr, value) };
    }

    fn read_segment_base(&self, msr: u32) -> u64 {
        // SAFETY: as above, the base MSRs exist on every x86_64 CPU.
        unsafe { cpu::rdmsr(msr) }
    }
}

fn memory() -> DirectMap {
    // SAFETY: FRAME_LIMIT is the frame count the direct map covers, set
    // before any guest runs; only one entry is handled at a time.
    unsafe { DirectMap::new(Mfn(FRAME_LIMIT.load(Ordering::Relaxed))) }
}

/// Starts running `domains` (the first one first) and never returns.
pub fn run(domains: Vec<Domain>, frame_limit: Mfn, tsc_hz: u64, debug_exit: bool) -> ! {
    FRAME_LIMIT.store(frame_limit.0, Ordering::Relaxed);
    DEBUG_EXIT.store(debug_exit, Ordering::Relaxed);
    let tsc = clock::rdtsc();
    let Some(scale) = TimeScale::from_hz(tsc_hz) else {
        crate::printk!("xenish: cannot measure the TSC frequency; halting");
        cpu::halt_forever();
    };
    let mut system = System::new(domains, Clock { tsc_at_zero: tsc, scale, tsc_hz });
    let mut mem = memory();
    match clock::read_rtc().unix_seconds() {
        Some(secs) => system.set_wallclock(&mut mem, secs, clock::rdtsc()),
        None => crate::printk!("xenish: the CMOS clock is unreadable; wallclock left at the epoch"),
    }
    let mut frame = TrapFrame::default();
    let action = system.schedule_first(&mut frame);
    if matches!(action, Action::Switch(_)) {
        system.publish_time(&mut mem, clock::rdtsc());
    }
    *SYSTEM.lock() = Some(system);
    carry_out(action);
    entry::resume(&frame)
}

fn carry_out(action: Action) {
    match action {
        Action::Resume => {}
        // SAFETY: every guest top-level table carries the hypervisor's L4
        // slots, so the hypervisor stays mapped after the switch.
        Action::Switch(l4) => unsafe { cpu::write_cr3(l4.addr()) },
        Action::ToggleMode(l4) => {
            // SAFETY: as above for the table; swapgs exchanges the guest's
            // kernel and user GS bases, which the hypervisor never uses.
            unsafe {
                cpu::write_cr3(l4.addr());
                core::arch::asm!("swapgs", options(nomem, nostack, preserves_flags));
            }
        }
        Action::PowerOff { failed } => power_off(failed),
    }
}

/// An exception: from a guest, handled by the core; from the hypervisor, fatal.
pub fn handle(frame: &mut TrapFrame) {
    if !frame.from_guest() {
        hypervisor_fault(frame);
    }
    if frame.vector == 2 {
        return; // NMI while a guest ran: nothing to do yet.
    }
    let cr2 = if frame.vector == 14 { cpu::read_cr2() } else { 0 };
    let action = {
        let mut guard = SYSTEM.lock();
        let Some(system) = guard.as_mut() else { hypervisor_fault(frame) };
        let mut mem = memory();
        let action = system.guest_trap(frame, cr2, &mut mem, &mut Hardware);
        if matches!(action, Action::Switch(_)) {
            system.publish_time(&mut mem, clock::rdtsc());
        }
        action
    };
    carry_out(action);
}

/// A `syscall` from a guest kernel: a hypercall.
pub fn handle_syscall(frame: &mut TrapFrame) {
    let action = {
        let mut guard = SYSTEM.lock();
        let Some(system) = guard.as_mut() else { hypervisor_fault(frame) };
        let mut mem = memory();
        let action = system.syscall(frame, &mut mem, &mut Hardware);
        if matches!(action, Action::Switch(_)) {
            system.publish_time(&mut mem, clock::rdtsc());
        }
        action
    };
    carry_out(action);
}

/// Powers the machine off: QEMU's debug-exit device if present (status 0
/// when every domain powered off, 1 if any crashed), else ACPI, else halt.
pub fn power_off(failed: bool) -> ! {
    crate::printk!("xenish: powering off (exit status {})", failed as u8);
    if DEBUG_EXIT.load(Ordering::Relaxed) {
        cpu::outb(DEBUG_EXIT_PORT, failed as u8);
    }
    // ACPI PM1a control of QEMU's PIIX4/ICH9 and Bochs: SLP_TYP 5 | SLP_EN.
    cpu::outw(0x604, 0x2000);
    cpu::outw(0xb004, 0x2000);
    crate::printk!("xenish: power-off failed; halting");
    cpu::halt_forever()
}

/// Prints a hypervisor fault's registers and halts, without taking any lock.
fn hypervisor_fault(frame: &TrapFrame) -> ! {
    use core::fmt::Write;
    struct Raw;
    impl Write for Raw {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for b in s.bytes() {
                if b == b'\n' {
                    serial::write_byte(b'\r');
                }
                serial::write_byte(b);
            }
            Ok(())
        }
    }
    let f = frame;
    let _ = write!(
        Raw,
        "\nxenish: hypervisor fault: {} (vector {}, error {:#x})\n\
         rip {:#018x} cs {:#06x} rflags {:#010x} rsp {:#018x} ss {:#06x}\n\
         rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n\
         rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n\
         r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n\
         r13 {:#018x} r14 {:#018x} r15 {:#018x}\n\
         cr0 {:#018x} cr2 {:#018x} cr3 {:#018x} cr4 {:#018x}\n\
         xenish: halting\n",
        crate::traps::vector_name(f.vector),
        f.vector,
        f.error_code,
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss,
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15,
        cpu::read_cr0(),
        cpu::read_cr2(),
        cpu::read_cr3(),
        cpu::read_cr4(),
    );
    cpu::halt_forever()
}
