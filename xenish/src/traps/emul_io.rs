//! Port I/O of PV guests: which ports a vCPU may reach (its virtual IOPL
//! and I/O bitmap, Xen's `guest_io_okay`) and the `in`/`out` emulation
//! (Xen's `guest_io_read`/`guest_io_write` in
//! X:`xen/arch/x86/pv/emul-priv-op.c`), with the ports the hypervisor
//! keeps to itself.

use super::*;

/// Ports the hypervisor itself drives; no guest may touch them directly:
/// the PICs, the PIT and speaker gate, CMOS (which a privileged domain
/// reaches through the hypervisor's latch, as on Xen: [`cmos_read`]),
/// QEMU's debug-exit port, COM1.
pub fn port_reserved(port: u16) -> bool {
    matches!(port, 0x20..=0x21 | 0x40..=0x43 | 0x61 | 0x70..=0x71 | 0xa0..=0xa1 | 0xf4 | 0x3f8..=0x3ff)
}

/// The port and width (bytes) of an `in`/`out` instruction, `None` for any
/// other instruction.
fn port_access(frame: &TrapFrame, insn: &[u8]) -> Option<(u16, u32)> {
    let (opsize16, body) = match insn {
        [0x66, rest @ ..] => (true, rest),
        _ => (false, insn),
    };
    let op = *body.first()?;
    let size = match (op & 1, opsize16) {
        (0, _) => 1,
        (_, true) => 2,
        _ => 4,
    };
    match op {
        0xe4..=0xe7 => Some((u16::from(*body.get(1)?), size)),
        0xec..=0xef => Some((frame.rdx as u16, size)),
        _ => None,
    }
}

/// Whether vCPU `vcpu` may access `bytes` ports from `port` (Xen's
/// `guest_io_okay`): its virtual IOPL covers the mode it runs in (the
/// kernel counts as ring 1, or ring 0 with `VMASST_TYPE_architectural_iopl`;
/// user mode needs IOPL 3), or the ports are below its I/O bitmap's limit
/// and their bits in the bitmap (`PHYSDEVOP_set_iobitmap`, read through
/// the kernel's page tables) are clear. A bitmap byte that cannot be read
/// forbids its ports, as in Xen.
pub(super) fn io_okay(dom: &Domain, vcpu: usize, port: u16, bytes: u32, mem: &mut dyn MachineMemory) -> bool {
    let Some(v) = dom.vcpus.get(vcpu) else { return false };
    let architectural = dom.vm_assist & (1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
    let cpl = match (v.kernel_mode(), architectural) {
        (false, _) => 3,
        (true, true) => 0,
        (true, false) => 1,
    };
    if v.iopl >= cpl {
        return true;
    }
    let (bitmap, limit) = v.iobitmap;
    if u32::from(port) + bytes > limit {
        return false;
    }
    let g = GuestMemory::new(mem, v.kernel_l4);
    let at = bitmap.wrapping_add(u64::from(port >> 3));
    let mut b = [0xffu8; 2];
    for (i, byte) in b.iter_mut().enumerate() {
        let mut one = [0u8];
        match g.copy_from(at.wrapping_add(i as u64), &mut one) {
            Ok(()) => *byte = one[0],
            Err(_) => break,
        }
    }
    let wanted = ((1u32 << bytes) - 1) << (port & 7);
    u32::from(u16::from_le_bytes(b)) & wanted == 0
}

/// `in`/`out` from a guest allowed the ports by its virtual IOPL
/// (`PHYSDEVOP_set_iopl`) or I/O bitmap ([`io_okay`]), as Xen's
/// `guest_io_read`/`guest_io_write` treat it: a privileged domain's is
/// performed on its behalf, except on the ports the hypervisor owns (of
/// which the CMOS pair reaches the real CMOS through a latch), and
/// PCI configuration mechanism #1 is the hypervisor's own too: a 4-byte
/// access to 0xcf8 is the domain's latch (`pci_cf8`), and the data ports
/// 0xcfc-0xcff reach the register it names through the hypervisor, which
/// filters writes to MSI and MSI-X capabilities ([`pci_config_io`]); an
/// unprivileged domain has no ports, so it reads all ones, its writes are
/// dropped, and only the PCI address latch (0xcf8) keeps what it wrote.
/// Without that permission it is the #GP it was.
pub(super) fn emulate_port_io(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    insn: &[u8],
    (mem, now_ns): (&mut dyn MachineMemory, u64),
    cpu: &mut dyn CpuOps,
) -> Option<TrapDecision> {
    let (port, size) = port_access(frame, insn)?;
    if !io_okay(dom, vcpu, port, size, mem) {
        return None;
    }
    if crate::hypercall::xsm::privileged(dom).is_err() {
        return emulate_absent_ports(dom, frame, insn);
    }
    let (opsize16, body) = match insn {
        [0x66, rest @ ..] => (true, rest),
        _ => (false, insn),
    };
    let (op, imm) = (*body.first()?, body.get(1).copied());
    let wide = op & 1 == 1;
    let size: u8 = if !wide {
        1
    } else if opsize16 {
        2
    } else {
        4
    };
    let (port, len) = match op {
        0xe4..=0xe7 => (u16::from(imm?), 2),
        0xec..=0xef => (frame.rdx as u16, 1),
        _ => return None,
    };
    if let Some(v) = pci_config_io(dom, port, size, op, frame.rax as u32, cpu) {
        let mask = if size == 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 };
        if matches!(op, 0xe4 | 0xe5 | 0xec | 0xed) {
            frame.rax = if size == 4 { u64::from(v) } else { (frame.rax & !u64::from(mask)) | u64::from(v & mask) };
        }
        frame.rip = frame.rip.wrapping_add(len + u64::from(opsize16));
        return Some(TrapDecision::Resume);
    }
    let ports = (0..u16::from(size)).map(|i| port.wrapping_add(i));
    let direct = ports.clone().all(|p| !port_reserved(p));
    let mask = if size == 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 };
    if matches!(op, 0xe4 | 0xe5 | 0xec | 0xed) {
        let v = if direct {
            cpu.port_in(port, size)
        } else {
            // Byte by byte, as Xen's guest_io_read: the virtual PIT channel
            // 2, all ones from the hypervisor's own ports, the rest real.
            ports.clone().enumerate().fold(0u32, |v, (i, p)| {
                let byte = match p {
                    0x42 | 0x43 | 0x61 => dom.pit.read(p, now_ns),
                    RTC_INDEX | RTC_DATA => cmos_read(dom, p, cpu),
                    _ if port_reserved(p) => 0xff,
                    _ => cpu.port_in(p, 1) as u8,
                };
                v | u32::from(byte) << (8 * i)
            })
        } & mask;
        frame.rax = if size == 4 { u64::from(v) } else { (frame.rax & !u64::from(mask)) | u64::from(v) };
    } else if direct {
        cpu.port_out(port, size, frame.rax as u32 & mask);
    } else {
        for (i, p) in ports.enumerate() {
            let byte = (frame.rax >> (8 * i)) as u8;
            match p {
                0x42 | 0x43 | 0x61 => dom.pit.write(p, byte, now_ns),
                RTC_INDEX | RTC_DATA => cmos_write(dom, p, byte, cpu),
                // Writes to the hypervisor's own ports are dropped.
                _ if port_reserved(p) => {}
                _ => cpu.port_out(p, 1, u32::from(byte)),
            }
        }
    }
    frame.rip = frame.rip.wrapping_add(len + u64::from(opsize16));
    Some(TrapDecision::Resume)
}

/// The CMOS/RTC index and data ports.
const RTC_INDEX: u16 = 0x70;
const RTC_DATA: u16 = 0x71;
/// The index port's NMI-disable bit, which stays the hypervisor's.
const CMOS_NMI_DISABLE: u8 = 0x80;

/// A privileged domain's read of the CMOS ports, as Xen's
/// `rtc_guest_read`: the index port gives back the latched index (without
/// the NMI bit), the data port the real CMOS register the latch names, the
/// index written first. The hypervisor reads the CMOS itself only at boot
/// (the wallclock), and every emulated access runs under the system lock
/// taken exclusively, so the index/data pair cannot be split. (Linux's
/// dom0 reads the clock at boot and waits for the update-in-progress bit
/// of register A to clear: with the ports all ones it waited a full
/// second, 10,000 times 100 us, for nothing.)
fn cmos_read(dom: &Domain, port: u16, cpu: &mut dyn CpuOps) -> u8 {
    if port == RTC_INDEX {
        return dom.cmos_idx & !CMOS_NMI_DISABLE;
    }
    cpu.port_out(RTC_INDEX, 1, u32::from(dom.cmos_idx & !CMOS_NMI_DISABLE));
    cpu.port_in(RTC_DATA, 1) as u8
}

/// A privileged domain's write of the CMOS ports, as Xen's
/// `rtc_guest_write`: the index is latched, data goes to the register the
/// latch names.
fn cmos_write(dom: &mut Domain, port: u16, byte: u8, cpu: &mut dyn CpuOps) {
    if port == RTC_INDEX {
        dom.cmos_idx = byte;
        return;
    }
    cpu.port_out(RTC_INDEX, 1, u32::from(dom.cmos_idx & !CMOS_NMI_DISABLE));
    cpu.port_out(RTC_DATA, 1, u32::from(byte));
}

/// A privileged domain's access to PCI configuration mechanism #1 (Xen's
/// `guest_io_read`/`guest_io_write` for 0xcf8 and 0xcfc-0xcff): `None`
/// for other ports, else the value read (0 for a write). A 4-byte access
/// to 0xcf8 is the domain's latch; the data ports take the access apart
/// into naturally aligned pieces (3 bytes as 2 + 1), each performed at the
/// latched address by the routing table ([`crate::irq`]), which keeps
/// MSI and MSI-X capabilities the hypervisor's; without one (no IO-APIC)
/// it goes to the hardware as it came.
fn pci_config_io(dom: &mut Domain, port: u16, size: u8, op: u8, value: u32, cpu: &mut dyn CpuOps) -> Option<u32> {
    let read = matches!(op, 0xe4 | 0xe5 | 0xec | 0xed);
    if port == 0xcf8 && size == 4 {
        if read {
            return Some(dom.pci_cf8);
        }
        dom.pci_cf8 = value;
        return Some(0);
    }
    if !(0xcfc..=0xcff).contains(&port) {
        return None;
    }
    let cf8 = dom.pci_cf8;
    let (mut done, mut result) = (0u32, 0u32);
    let bytes = u32::from(size);
    while done < bytes {
        let p = u32::from(port) + done;
        if p > 0xcff {
            // Past the data ports: what the hardware gives, as before.
            let rest = (bytes - done) as u8;
            if read {
                result |= cpu.port_in(p as u16, rest) << (8 * done);
            } else {
                cpu.port_out(p as u16, rest, value >> (8 * done));
            }
            break;
        }
        let offset = p & 3;
        let mut chunk = (bytes - done).min(4 - offset);
        if chunk == 3 {
            chunk = 2;
        }
        let part = if chunk == 4 { value } else { (value >> (8 * done)) & ((1 << (8 * chunk)) - 1) };
        let routed = if read {
            crate::irq::with(|r| r.guest_conf_read(cf8, offset, chunk))
        } else {
            crate::irq::with(|r| r.guest_conf_write(cf8, offset, chunk, part)).map(|()| 0)
        };
        let v = routed.unwrap_or_else(|| {
            cpu.port_out(0xcf8, 4, cf8);
            if read {
                cpu.port_in(p as u16, chunk as u8)
            } else {
                cpu.port_out(p as u16, chunk as u8, part);
                0
            }
        });
        if read {
            let mask = if chunk == 4 { u32::MAX } else { (1 << (8 * chunk)) - 1 };
            result |= (v & mask) << (8 * done);
        }
        done += chunk;
    }
    Some(result)
}

/// Port I/O of an unprivileged domain with a virtual IOPL: no port is its
/// own, so reads give all ones and writes vanish, but for a 4-byte access
/// to the PCI address port 0xcf8, which Xen latches per domain (so a probe
/// reads back what it wrote, then finds no device at 0xcfc).
fn emulate_absent_ports(dom: &mut Domain, frame: &mut TrapFrame, insn: &[u8]) -> Option<TrapDecision> {
    let (opsize16, body) = match insn {
        [0x66, rest @ ..] => (true, rest),
        _ => (false, insn),
    };
    let op = *body.first()?;
    let size: u32 = match (op & 1, opsize16) {
        (0, _) => 1,
        (_, true) => 2,
        _ => 4,
    };
    let (port, len) = match op {
        0xe4..=0xe7 => (u16::from(*body.get(1)?), 2),
        0xec..=0xef => (frame.rdx as u16, 1),
        _ => return None,
    };
    let latch = port == 0xcf8 && size == 4;
    if matches!(op, 0xe4 | 0xe5 | 0xec | 0xed) {
        let mask = if size == 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 };
        let v = if latch { dom.pci_cf8 } else { mask };
        frame.rax = if size == 4 { u64::from(v) } else { (frame.rax & !u64::from(mask)) | u64::from(v) };
    } else if latch {
        dom.pci_cf8 = frame.rax as u32;
    }
    frame.rip = frame.rip.wrapping_add(len + u64::from(opsize16));
    Some(TrapDecision::Resume)
}
