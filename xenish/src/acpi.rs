//! The ACPI tables the hypervisor reads to find the machine's CPUs and
//! interrupt controllers: the RSDP (from multiboot2's copy or Xen's scan of
//! the BIOS areas), the RSDT/XSDT, and the MADT's local APICs, local APIC
//! address override, I/O APICs and interrupt source overrides; and the
//! FADT's PM1 control blocks and reset register, through which the
//! control domain's power-off ([`Fadt`], `XENPF_enter_acpi_sleep`) and
//! reboot reach the machine.
//!
//! Every table is read through [`PhysRead`] and checked before use
//! (signature, checksum, lengths within the table and its region): firmware
//! tables are trusted no more than guest input, so a truncated or lying
//! table yields an error or fewer entries, never a panic.

use alloc::vec::Vec;

/// Physical memory, as the ACPI parser reads it.
pub trait PhysRead {
    /// Reads `buf.len()` bytes at physical address `addr`; `false` if any
    /// of them is not readable (the tables then count as absent).
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// Why the ACPI tables could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP with a valid signature and checksum.
    NoRsdp,
    /// The root table (RSDT/XSDT) is unreadable or fails its checks.
    BadRootTable,
    /// No valid MADT ("APIC") is listed.
    NoMadt,
}

/// The largest table the parser reads (Xen's tables are far smaller; a
/// larger length is taken as a lie).
const MAX_TABLE_LEN: u32 = 1 << 20;
/// The most root-table entries looked at.
const MAX_ROOT_ENTRIES: usize = 1024;
/// Highest xAPIC ID xenish records (Xen's `MAX_APICS` for xAPIC mode: 255
/// is the broadcast ID).
pub const MAX_APIC_ID: u32 = 0xfe;
/// The xAPIC's power-on physical base.
pub const DEFAULT_LAPIC_BASE: u64 = 0xfee0_0000;

/// A checked RSDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsdp {
    /// ACPI revision (0 for ACPI 1.0, 2 for 2.0 and later).
    pub revision: u8,
    /// Physical address of the RSDT.
    pub rsdt: u32,
    /// Physical address of the XSDT (0 for revision 0).
    pub xsdt: u64,
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

impl Rsdp {
    /// Checks an RSDP: "RSD PTR " and the ACPI 1.0 checksum over 20 bytes;
    /// for revision ≥ 2 also the length (36 bytes or more, all present) and
    /// the extended checksum over it.
    pub fn parse(bytes: &[u8]) -> Option<Rsdp> {
        let v1 = bytes.get(..20)?;
        if &v1[..8] != b"RSD PTR " || sum(v1) != 0 {
            return None;
        }
        let revision = v1[15];
        let rsdt = u32_at(v1, 16)?;
        if revision < 2 {
            return Some(Rsdp { revision, rsdt, xsdt: 0 });
        }
        let len = u32_at(bytes, 20)? as usize;
        let full = bytes.get(..len).filter(|_| len >= 36)?;
        if sum(full) != 0 {
            return None;
        }
        Some(Rsdp { revision, rsdt, xsdt: u64_at(full, 24)? })
    }

    /// Finds the RSDP as Xen's `acpi_find_root_pointer` does: in the first
    /// KiB of the EBDA (its segment at 0x40e), then in 0xe0000..0xfffff, on
    /// 16-byte boundaries.
    pub fn scan(mem: &dyn PhysRead) -> Option<(u64, Rsdp)> {
        let mut seg = [0u8; 2];
        let ebda = if mem.read(0x40e, &mut seg) { u64::from(u16::from_le_bytes(seg)) << 4 } else { 0 };
        // Xen looks at the EBDA only when it starts above 0x400 (past the
        // BIOS data area).
        let areas = [(ebda, 1024u64), (0xe0000, 0x20000)];
        for (base, len) in areas.into_iter().filter(|&(base, _)| base > 0x400) {
            let mut area = alloc::vec![0u8; len as usize];
            if !mem.read(base, &mut area) {
                continue;
            }
            for off in (0..area.len()).step_by(16) {
                if let Some(rsdp) = area.get(off..).and_then(Rsdp::parse) {
                    return Some((base + off as u64, rsdp));
                }
            }
        }
        None
    }
}

/// Reads the table at `addr`, checked: its signature is `sig`, its length
/// covers the header and is readable, and its bytes sum to zero.
fn read_table(mem: &dyn PhysRead, addr: u64, sig: &[u8; 4]) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut header = [0u8; 36];
    if !mem.read(addr, &mut header) || &header[..4] != sig {
        return None;
    }
    let len = u32_at(&header, 4)?;
    if !(36..=MAX_TABLE_LEN).contains(&len) {
        return None;
    }
    let mut table = alloc::vec![0u8; len as usize];
    (mem.read(addr, &mut table) && sum(&table) == 0).then_some(table)
}

/// The physical addresses the root table lists: the XSDT's 64-bit entries
/// when the RSDP is revision 2 or later and names one (and none of them is
/// null, as Xen's `acpi_tb_check_xsdt` requires), else the RSDT's 32-bit
/// ones.
pub fn root_entries(mem: &dyn PhysRead, rsdp: &Rsdp) -> Result<Vec<u64>, AcpiError> {
    if rsdp.revision > 1 && rsdp.xsdt != 0 {
        if let Some(xsdt) = read_table(mem, rsdp.xsdt, b"XSDT") {
            let entries: Vec<u64> =
                xsdt[36..].chunks_exact(8).take(MAX_ROOT_ENTRIES).filter_map(|e| u64_at(e, 0)).collect();
            if !entries.contains(&0) {
                return Ok(entries);
            }
        }
    }
    let rsdt = read_table(mem, u64::from(rsdp.rsdt), b"RSDT").ok_or(AcpiError::BadRootTable)?;
    Ok(rsdt[36..].chunks_exact(4).take(MAX_ROOT_ENTRIES).filter_map(|e| u32_at(e, 0).map(u64::from)).collect())
}

/// A local APIC (a CPU) the MADT lists as enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalApic {
    /// The ACPI processor UID (type 0's processor ID, type 9's UID).
    pub acpi_id: u32,
    /// The APIC ID.
    pub apic_id: u32,
}

/// An I/O APIC (MADT type 1), kept for routing dom0's device interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its ID.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u32,
    /// The first global system interrupt it handles.
    pub gsi_base: u32,
}

/// An interrupt source override (MADT type 2): ISA IRQ `source` arrives as
/// GSI `gsi`, with polarity and trigger mode in `flags` (MPS INTI flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqOverride {
    /// The bus (0: ISA).
    pub bus: u8,
    /// The bus-relative IRQ.
    pub source: u8,
    /// The global system interrupt.
    pub gsi: u32,
    /// MPS INTI flags (bits 1:0 polarity, 3:2 trigger mode).
    pub flags: u16,
}

/// What the MADT says about the machine's interrupt controllers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Madt {
    /// Physical base of the local APICs (the table's, or type 5's override).
    pub lapic_base: u64,
    /// MADT flags bit 0: the machine has the legacy 8259 PICs.
    pub pcat_compat: bool,
    /// Enabled CPUs, in table order, each APIC ID once, IDs up to
    /// [`MAX_APIC_ID`].
    pub cpus: Vec<LocalApic>,
    /// Enabled entries ignored: their APIC ID is past [`MAX_APIC_ID`]
    /// (x2APIC-only IDs, which xenish's xAPIC driver cannot address).
    pub ignored_ids: Vec<u32>,
    /// I/O APICs.
    pub io_apics: Vec<IoApic>,
    /// Interrupt source overrides.
    pub overrides: Vec<IrqOverride>,
}

const MADT_LAPIC: u8 = 0;
const MADT_IO_APIC: u8 = 1;
const MADT_INT_OVERRIDE: u8 = 2;
const MADT_LAPIC_OVERRIDE: u8 = 5;
const MADT_X2APIC: u8 = 9;
const LAPIC_ENABLED: u32 = 1;

impl Madt {
    /// Parses a MADT's bytes (already checked by signature, length and
    /// checksum). Subtables with a length below 2 or past the table end
    /// stop the walk; ones too short for their type are skipped; disabled
    /// CPUs (neither flag, or ONLINE_CAPABLE only, which is hot-plug) are
    /// left out; a repeated APIC ID is recorded once.
    pub fn parse(table: &[u8]) -> Madt {
        let mut madt = Madt {
            lapic_base: u32_at(table, 36).map_or(DEFAULT_LAPIC_BASE, u64::from),
            pcat_compat: u32_at(table, 40).is_some_and(|f| f & 1 != 0),
            ..Madt::default()
        };
        let mut off = 44usize;
        while let (Some(&typ), Some(&len)) = (table.get(off), table.get(off + 1)) {
            let len = usize::from(len);
            let Some(sub) = table.get(off..off + len).filter(|_| len >= 2) else { break };
            off += len;
            match typ {
                MADT_LAPIC if len >= 8 => {
                    if let Some(flags) = u32_at(sub, 4) {
                        madt.add_cpu(u32::from(sub[2]), u32::from(sub[3]), flags);
                    }
                }
                MADT_X2APIC if len >= 16 => {
                    if let (Some(id), Some(flags), Some(uid)) = (u32_at(sub, 4), u32_at(sub, 8), u32_at(sub, 12)) {
                        madt.add_cpu(uid, id, flags);
                    }
                }
                MADT_IO_APIC if len >= 12 => {
                    if let (Some(address), Some(gsi_base)) = (u32_at(sub, 4), u32_at(sub, 8)) {
                        madt.io_apics.push(IoApic { id: sub[2], address, gsi_base });
                    }
                }
                MADT_INT_OVERRIDE if len >= 10 => {
                    if let (Some(gsi), Some(flags)) = (u32_at(sub, 4), u16_at(sub, 8)) {
                        madt.overrides.push(IrqOverride { bus: sub[2], source: sub[3], gsi, flags });
                    }
                }
                MADT_LAPIC_OVERRIDE if len >= 12 => {
                    if let Some(address) = u64_at(sub, 4).filter(|&a| a != 0) {
                        madt.lapic_base = address;
                    }
                }
                _ => {}
            }
        }
        madt
    }

    fn add_cpu(&mut self, acpi_id: u32, apic_id: u32, flags: u32) {
        if flags & LAPIC_ENABLED == 0 {
            return;
        }
        if apic_id > MAX_APIC_ID {
            if !self.ignored_ids.contains(&apic_id) {
                self.ignored_ids.push(apic_id);
            }
            return;
        }
        if !self.cpus.iter().any(|c| c.apic_id == apic_id) {
            self.cpus.push(LocalApic { acpi_id, apic_id });
        }
    }

    /// Finds and parses the MADT listed by the root table of `rsdp`.
    pub fn find(mem: &dyn PhysRead, rsdp: &Rsdp) -> Result<Madt, AcpiError> {
        let entries = root_entries(mem, rsdp)?;
        entries
            .iter()
            .find_map(|&addr| read_table(mem, addr, b"APIC").filter(|t| t.len() >= 44))
            .map(|t| Madt::parse(&t))
            .ok_or(AcpiError::NoMadt)
    }
}

/// ACPI generic address space IDs xenish drives.
const ACPI_SPACE_IO: u8 = 1;
/// FADT flags: `RESET_REG_SUP`.
const FADT_RESET_REG_SUP: u32 = 1 << 10;
/// FADT flags: `HW_REDUCED_ACPI` (no PM1 blocks).
const FADT_HW_REDUCED: u32 = 1 << 20;

/// What the FADT ("FACP") says about sleeping and resetting, for the
/// port-I/O blocks xenish drives (QEMU's and most PCs'; memory-mapped
/// blocks count as absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fadt {
    /// The PM1a control block's port (0: none).
    pub pm1a_cnt: u16,
    /// The PM1b control block's port (0: none).
    pub pm1b_cnt: u16,
    /// The reset register's port and the value that resets, when the FADT
    /// says it is supported and in I/O space.
    pub reset: Option<(u16, u8)>,
}

/// A generic address at `off` of `t` in I/O space, as a port (`None` for
/// another space, an empty or an out-of-range one).
fn gas_port(t: &[u8], off: usize) -> Option<u16> {
    let space = *t.get(off)?;
    let address = u64_at(t, off + 4)?;
    (space == ACPI_SPACE_IO && address != 0).then(|| u16::try_from(address).ok()).flatten()
}

impl Fadt {
    /// Parses a checked FADT: the 64-bit `X_PM1x_CNT_BLK` generic
    /// addresses when the table has them (ACPI 2.0+) and they are set, else
    /// the 32-bit port fields (as Xen's `acpi_tb_convert_fadt` prefers
    /// them); nothing for a hardware-reduced machine.
    pub fn parse(t: &[u8]) -> Fadt {
        let flags = u32_at(t, 112).unwrap_or(0);
        if flags & FADT_HW_REDUCED != 0 {
            return Fadt::default();
        }
        let legacy = |off| u32_at(t, off).and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
        let block = |x_off, off| gas_port(t, x_off).filter(|_| t.len() >= x_off + 12).unwrap_or_else(|| legacy(off));
        let reset = (flags & FADT_RESET_REG_SUP != 0).then(|| Some((gas_port(t, 116)?, *t.get(128)?))).flatten();
        Fadt { pm1a_cnt: block(172, 64), pm1b_cnt: block(184, 68), reset }
    }

    /// Finds and parses the FADT listed by the root table of `rsdp`.
    pub fn find(mem: &dyn PhysRead, rsdp: &Rsdp) -> Option<Fadt> {
        let entries = root_entries(mem, rsdp).ok()?;
        entries
            .iter()
            .find_map(|&addr| read_table(mem, addr, b"FACP").filter(|t| t.len() >= 116))
            .map(|t| Fadt::parse(&t))
    }
}

/// `SLP_EN` in a PM1 control value.
pub const ACPI_SLP_EN: u16 = 1 << 13;

/// The machine's FADT, recorded at boot (none: power-off through ACPI
/// sleep is `-EPERM`, as in Xen without a PM1a block).
static FADT: spin::Once<Fadt> = spin::Once::new();

/// Records the machine's FADT (at boot).
pub fn set_fadt(fadt: Fadt) {
    FADT.call_once(|| fadt);
}

/// The machine's FADT, if boot found one.
pub fn fadt() -> Option<Fadt> {
    FADT.get().copied()
}

/// Writes `size` bytes (1 or 2) of `value` to an I/O port: the arch
/// layer's, installed at boot ([`set_port_writer`]).
pub type PortWriter = fn(port: u16, value: u16, size: u8);

static PORT_WRITER: spin::Once<PortWriter> = spin::Once::new();

/// Installs the machine's port writer (at boot).
pub fn set_port_writer(f: PortWriter) {
    PORT_WRITER.call_once(|| f);
}

#[cfg(test)]
std::thread_local! {
    /// Host tests: the port writes each thread made.
    pub static PORT_WRITES: core::cell::RefCell<Vec<(u16, u16)>> = const { core::cell::RefCell::new(Vec::new()) };
}

fn port_write(port: u16, value: u16, size: u8) {
    #[cfg(test)]
    let _ = size;
    #[cfg(test)]
    PORT_WRITES.with(|w| w.borrow_mut().push((port, value)));
    #[cfg(not(test))]
    if let Some(f) = PORT_WRITER.get() {
        f(port, value, size);
    }
}

/// The control domain asked for a reboot (`SCHEDOP_shutdown(reboot)`):
/// when the hypervisor goes down it restarts the machine
/// ([`machine_restart`]) rather than powering it off, as Xen's
/// `hwdom_shutdown` does.
static RESTART: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Records the control domain's reboot request.
pub fn request_restart() {
    RESTART.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the control domain asked for a reboot.
pub fn restart_requested() -> bool {
    RESTART.load(core::sync::atomic::Ordering::Relaxed)
}

/// One attempt of Xen's `machine_restart` order: the FADT's reset
/// register (`acpi_reboot`), the keyboard controller's reset line (0xfe to
/// port 0x64), then the PCI reset control register 0xcf9 (hard reset:
/// 0x02, then 0x06). The caller waits a little after each write and
/// halts if the machine is still there. Each attempt is logged first, so
/// the last line before the reset says which one worked.
pub fn machine_restart(fadt: Option<Fadt>, delay: &mut dyn FnMut()) {
    if let Some((port, value)) = fadt.and_then(|f| f.reset) {
        crate::printk!("xenish: resetting through the FADT's reset register ({value:#x} to port {port:#x})");
        port_write(port, u16::from(value), 1);
        delay();
    }
    crate::printk!("xenish: resetting through the keyboard controller (0xfe to port 0x64)");
    port_write(0x64, 0xfe, 1);
    delay();
    crate::printk!("xenish: resetting through port 0xcf9");
    port_write(0xcf9, 0x02, 1);
    delay();
    port_write(0xcf9, 0x06, 1);
    delay();
}

/// The PM1a and PM1b control values (`SLP_TYP | SLP_EN`) of the control
/// domain's S5 request, `pm1a | pm1b << 16 | 1 << 32` once made.
static S5: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the control domain's request for sleep state S5 with its PM1a
/// and PM1b control values (`XENPF_enter_acpi_sleep`), which
/// [`enter_s5`] writes when the hypervisor powers the machine off.
pub fn request_s5(pm1a: u16, pm1b: u16) {
    let value = u64::from(pm1a) | u64::from(pm1b) << 16 | 1 << 32;
    S5.store(value, core::sync::atomic::Ordering::Relaxed);
}

/// Puts the machine into sleep state S5 as the control domain asked (Xen's
/// `acpi_enter_sleep_state`): its PM1a and PM1b control values go to the
/// FADT's control blocks. `false` (nothing written) without a request or
/// a PM1a block; if it returns `true` and the machine is still on, it
/// did not take the request.
pub fn enter_s5() -> bool {
    let s5 = S5.load(core::sync::atomic::Ordering::Relaxed);
    let Some(f) = fadt().filter(|f| f.pm1a_cnt != 0 && s5 != 0) else { return false };
    port_write(f.pm1a_cnt, s5 as u16, 2);
    if f.pm1b_cnt != 0 {
        port_write(f.pm1b_cnt, (s5 >> 16) as u16, 2);
    }
    true
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec;

    /// Sparse physical memory: byte runs at addresses.
    #[derive(Default)]
    struct Mem(BTreeMap<u64, Vec<u8>>);

    impl Mem {
        fn put(&mut self, addr: u64, bytes: &[u8]) {
            self.0.insert(addr, bytes.to_vec());
        }
    }

    impl PhysRead for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            for (&base, bytes) in &self.0 {
                let end = base + bytes.len() as u64;
                if addr >= base && addr + buf.len() as u64 <= end {
                    let off = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    return true;
                }
            }
            false
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        t[at] = 0u8.wrapping_sub(sum(t));
    }

    fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[8] = 1;
        fix_checksum(&mut t, 9);
        t
    }

    fn rsdp_v1(rsdt: u32) -> Vec<u8> {
        let mut r = vec![0u8; 20];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        fix_checksum(&mut r, 8);
        r
    }

    fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut r = vec![0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[15] = 2;
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.to_le_bytes());
        fix_checksum(&mut r[..20], 8);
        fix_checksum(&mut r, 32);
        r
    }

    fn lapic(acpi_id: u8, apic_id: u8, flags: u32) -> Vec<u8> {
        let mut e = vec![MADT_LAPIC, 8, acpi_id, apic_id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    fn x2apic(id: u32, flags: u32, uid: u32) -> Vec<u8> {
        let mut e = vec![MADT_X2APIC, 16, 0, 0];
        e.extend_from_slice(&id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        e
    }

    /// QEMU's MADT for `-smp 2,maxcpus=4`: two enabled, two possible CPUs,
    /// an I/O APIC, IRQ0→GSI2 and IRQ9 level-high overrides, a LAPIC NMI.
    fn qemu_madt_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for (i, flags) in [(0u8, 1u32), (1, 1), (2, 0), (3, 0)] {
            b.extend(lapic(i, i, flags));
        }
        b.extend([MADT_IO_APIC, 12, 0, 0]);
        b.extend(0xfec0_0000u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend([MADT_INT_OVERRIDE, 10, 0, 0]);
        b.extend(2u32.to_le_bytes());
        b.extend(0u16.to_le_bytes());
        b.extend([MADT_INT_OVERRIDE, 10, 0, 9]);
        b.extend(9u32.to_le_bytes());
        b.extend(0xdu16.to_le_bytes());
        b.extend([4, 6, 0xff, 0, 0, 1]); // LAPIC NMI: ignored
        b
    }

    fn machine(rsdp: Vec<u8>) -> Mem {
        let mut m = Mem::default();
        let madt = table(b"APIC", &qemu_madt_body());
        let facp = table(b"FACP", &[0; 80]);
        m.put(0x7000_0000, &facp);
        m.put(0x7000_1000, &madt);
        let mut rsdt_body = Vec::new();
        rsdt_body.extend(0x7000_0000u32.to_le_bytes());
        rsdt_body.extend(0x7000_1000u32.to_le_bytes());
        m.put(0x7000_2000, &table(b"RSDT", &rsdt_body));
        m.put(0xf5000, &rsdp);
        m
    }

    #[test]
    fn qemu_tables_through_the_rsdt() {
        let m = machine(rsdp_v1(0x7000_2000));
        let rsdp = Rsdp::parse(&rsdp_v1(0x7000_2000)).unwrap();
        assert_eq!(rsdp, Rsdp { revision: 0, rsdt: 0x7000_2000, xsdt: 0 });
        let madt = Madt::find(&m, &rsdp).unwrap();
        assert_eq!(madt.lapic_base, 0xfee0_0000);
        assert!(madt.pcat_compat);
        assert_eq!(madt.cpus, [LocalApic { acpi_id: 0, apic_id: 0 }, LocalApic { acpi_id: 1, apic_id: 1 }]);
        assert_eq!(madt.io_apics, [IoApic { id: 0, address: 0xfec0_0000, gsi_base: 0 }]);
        assert_eq!(
            madt.overrides,
            [
                IrqOverride { bus: 0, source: 0, gsi: 2, flags: 0 },
                IrqOverride { bus: 0, source: 9, gsi: 9, flags: 0xd }
            ]
        );
    }

    #[test]
    fn rsdp_checks_signature_and_both_checksums() {
        assert!(Rsdp::parse(&rsdp_v1(0x1000)).is_some());
        let mut bad = rsdp_v1(0x1000);
        bad[0] = b'X';
        assert!(Rsdp::parse(&bad).is_none());
        let mut bad = rsdp_v1(0x1000);
        bad[16] ^= 1;
        assert!(Rsdp::parse(&bad).is_none(), "the v1 checksum");
        let v2 = rsdp_v2(0x1000, 0x2000);
        assert_eq!(Rsdp::parse(&v2), Some(Rsdp { revision: 2, rsdt: 0x1000, xsdt: 0x2000 }));
        let mut bad = v2.clone();
        bad[33] ^= 1; // reserved byte: only the extended checksum covers it
        assert!(Rsdp::parse(&bad).is_none(), "the extended checksum");
        assert!(Rsdp::parse(&v2[..30]).is_none(), "a truncated v2 RSDP");
        let mut lying = v2.clone();
        lying[20..24].copy_from_slice(&4096u32.to_le_bytes());
        fix_checksum(&mut lying[..20], 8);
        assert!(Rsdp::parse(&lying).is_none(), "a length past the bytes");
        lying[20..24].copy_from_slice(&8u32.to_le_bytes());
        fix_checksum(&mut lying[..20], 8);
        assert!(Rsdp::parse(&lying).is_none(), "a length below 36");
        assert!(Rsdp::parse(&[]).is_none());
    }

    #[test]
    fn the_xsdt_wins_when_valid_else_the_rsdt() {
        let mut m = machine(Vec::new());
        let mut xsdt_body = Vec::new();
        xsdt_body.extend(0x7000_1000u64.to_le_bytes());
        m.put(0x7000_3000, &table(b"XSDT", &xsdt_body));
        let rsdp = Rsdp { revision: 2, rsdt: 0x7000_2000, xsdt: 0x7000_3000 };
        assert_eq!(root_entries(&m, &rsdp).unwrap(), [0x7000_1000]);
        // Revision 1 (or 0): the RSDT, whatever the XSDT field holds.
        let v1 = Rsdp { revision: 1, ..rsdp };
        assert_eq!(root_entries(&m, &v1).unwrap(), [0x7000_0000, 0x7000_1000]);
        // An XSDT with a null entry falls back to the RSDT.
        let mut null_body = xsdt_body.clone();
        null_body.extend(0u64.to_le_bytes());
        m.put(0x7000_3000, &table(b"XSDT", &null_body));
        assert_eq!(root_entries(&m, &rsdp).unwrap().len(), 2);
        // A bad XSDT checksum: the RSDT too.
        let mut bad = table(b"XSDT", &xsdt_body);
        bad[9] ^= 1;
        m.put(0x7000_3000, &bad);
        assert_eq!(root_entries(&m, &rsdp).unwrap().len(), 2);
        // No RSDT either.
        let none = Rsdp { revision: 0, rsdt: 0x1234_0000, xsdt: 0 };
        assert_eq!(root_entries(&m, &none), Err(AcpiError::BadRootTable));
        assert_eq!(Madt::find(&m, &none), Err(AcpiError::BadRootTable));
    }

    #[test]
    fn lying_table_lengths_are_refused() {
        let mut m = machine(Vec::new());
        let rsdp = Rsdp { revision: 0, rsdt: 0x7000_2000, xsdt: 0 };
        // A MADT whose length runs past readable memory.
        let mut madt = table(b"APIC", &qemu_madt_body());
        madt[4..8].copy_from_slice(&0x10_0000u32.to_le_bytes());
        m.put(0x7000_1000, &madt);
        assert_eq!(Madt::find(&m, &rsdp), Err(AcpiError::NoMadt));
        // A huge length.
        madt[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        m.put(0x7000_1000, &madt);
        assert_eq!(Madt::find(&m, &rsdp), Err(AcpiError::NoMadt));
        // A length below the header.
        madt[4..8].copy_from_slice(&10u32.to_le_bytes());
        m.put(0x7000_1000, &madt);
        assert_eq!(Madt::find(&m, &rsdp), Err(AcpiError::NoMadt));
        // A bad checksum.
        let mut madt = table(b"APIC", &qemu_madt_body());
        madt[9] ^= 0x55;
        m.put(0x7000_1000, &madt);
        assert_eq!(Madt::find(&m, &rsdp), Err(AcpiError::NoMadt));
        // An RSDT whose length is not a multiple of 4: the whole entries only.
        let mut body = 0x7000_0000u32.to_le_bytes().to_vec();
        body.extend([0x12, 0x34]);
        m.put(0x7000_2000, &table(b"RSDT", &body));
        assert_eq!(root_entries(&m, &rsdp).unwrap(), [0x7000_0000]);
    }

    #[test]
    fn malformed_subtables_neither_panic_nor_overrun() {
        // Every truncation of a real MADT parses without panicking, to a
        // prefix of the full result.
        let full = table(b"APIC", &qemu_madt_body());
        let whole = Madt::parse(&full);
        for n in 0..full.len() {
            let part = Madt::parse(&full[..n]);
            assert!(part.cpus.len() <= whole.cpus.len());
            assert!(whole.cpus.starts_with(&part.cpus));
        }
        // A subtable length of 0 or 1 stops the walk; one past the end too.
        let mut body = qemu_madt_body();
        body.extend([MADT_LAPIC, 0]);
        body.extend(lapic(7, 7, 1));
        assert_eq!(Madt::parse(&table(b"APIC", &body)).cpus.len(), 2);
        let mut body = qemu_madt_body();
        body.extend([MADT_LAPIC, 200, 9, 9, 1, 0, 0, 0]);
        assert_eq!(Madt::parse(&table(b"APIC", &body)).cpus.len(), 2);
        // A LAPIC entry too short for its type is skipped, the next read.
        let mut body = qemu_madt_body();
        body.extend([MADT_LAPIC, 4, 5, 5]);
        body.extend(lapic(6, 6, 1));
        let ids: Vec<u32> = Madt::parse(&table(b"APIC", &body)).cpus.iter().map(|c| c.apic_id).collect();
        assert_eq!(ids, [0, 1, 6]);
        // Random bytes never panic.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut t = vec![0u8; 44];
            for _ in 0..(x % 200) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                t.push((x % 12) as u8);
            }
            let _ = Madt::parse(&t);
        }
    }

    #[test]
    fn the_fadt_gives_the_pm1_blocks_and_the_reset_register() {
        // QEMU's i440fx FADT (revision 3, 244 bytes): PM1a at 0x604, the
        // X_ blocks set, the reset register at 0xcf9 with value 6.
        let mut t = vec![0u8; 244];
        t[0..4].copy_from_slice(b"FACP");
        t[64..68].copy_from_slice(&0x604u32.to_le_bytes());
        t[112..116].copy_from_slice(&FADT_RESET_REG_SUP.to_le_bytes());
        t[116] = ACPI_SPACE_IO;
        t[120..128].copy_from_slice(&0xcf9u64.to_le_bytes());
        t[128] = 6;
        t[172] = ACPI_SPACE_IO;
        t[176..184].copy_from_slice(&0x604u64.to_le_bytes());
        assert_eq!(Fadt::parse(&t), Fadt { pm1a_cnt: 0x604, pm1b_cnt: 0, reset: Some((0xcf9, 6)) });
        // The X_ block wins when set; the legacy field else; a memory-space
        // reset register and an unsupported one count as none.
        t[176..184].copy_from_slice(&0xb004u64.to_le_bytes());
        t[120] = 0;
        t[116] = 0;
        assert_eq!(Fadt::parse(&t), Fadt { pm1a_cnt: 0xb004, pm1b_cnt: 0, reset: None });
        t[112] = 0;
        assert_eq!(Fadt::parse(&t[..116]), Fadt { pm1a_cnt: 0x604, pm1b_cnt: 0, reset: None }, "ACPI 1.0 length");
        t[114] = 0x10; // HW_REDUCED_ACPI
        assert_eq!(Fadt::parse(&t), Fadt::default());
    }

    #[test]
    fn a_restart_tries_the_reset_register_then_the_keyboard_controller_then_cf9() {
        PORT_WRITES.with(|w| w.borrow_mut().clear());
        let mut delays = 0;
        let fadt = Fadt { pm1a_cnt: 0x604, pm1b_cnt: 0, reset: Some((0xcf9, 6)) };
        machine_restart(Some(fadt), &mut || delays += 1);
        let writes = PORT_WRITES.with(|w| w.borrow().clone());
        assert_eq!(writes, [(0xcf9, 6), (0x64, 0xfe), (0xcf9, 2), (0xcf9, 6)]);
        assert_eq!(delays, 4, "a pause after each");
        PORT_WRITES.with(|w| w.borrow_mut().clear());
        machine_restart(None, &mut || {});
        assert_eq!(PORT_WRITES.with(|w| w.borrow().len()), 3, "no reset register: the others");
    }

    #[test]
    fn cpus_enabled_deduplicated_and_in_range() {
        let mut body = vec![0u8; 8];
        body.extend(lapic(0, 0, 1));
        body.extend(lapic(1, 2, 1));
        body.extend(lapic(2, 2, 1)); // duplicate APIC ID
        body.extend(lapic(3, 3, 2)); // online-capable only: hot-plug, not started
        body.extend(lapic(4, 0xff, 1)); // broadcast ID
        body.extend(x2apic(5, 1, 10));
        body.extend(x2apic(0x1000, 1, 11)); // x2APIC-only ID
        body.extend(x2apic(6, 0, 12)); // disabled
        body.extend([MADT_LAPIC_OVERRIDE, 12, 0, 0]);
        body.extend(0xfed0_0000u64.to_le_bytes());
        let madt = Madt::parse(&table(b"APIC", &body));
        let ids: Vec<(u32, u32)> = madt.cpus.iter().map(|c| (c.acpi_id, c.apic_id)).collect();
        assert_eq!(ids, [(0, 0), (1, 2), (10, 5)]);
        assert_eq!(madt.ignored_ids, [0xff, 0x1000]);
        assert_eq!(madt.lapic_base, 0xfed0_0000, "type 5 overrides the table's address");
        assert!(!madt.pcat_compat);
    }

    #[test]
    fn scan_finds_the_rsdp_in_the_ebda_first_then_the_bios_area() {
        let mut m = Mem::default();
        let mut bda = vec![0u8; 0x400];
        bda.extend([0; 0x0e]);
        bda.extend(0x9fc0u16.to_le_bytes()); // EBDA at 0x9fc00
        m.put(0, &bda);
        let mut ebda = vec![0u8; 1024];
        let r = rsdp_v1(0x1111);
        ebda[0x40..0x40 + 20].copy_from_slice(&r);
        m.put(0x9fc00, &ebda);
        let mut bios = vec![0u8; 0x20000];
        let r2 = rsdp_v1(0x2222);
        bios[0x15010..0x15010 + 20].copy_from_slice(&r2);
        bios[0x100..0x100 + 8].copy_from_slice(b"RSD PTR "); // bad checksum: skipped
        m.put(0xe0000, &bios);
        assert_eq!(Rsdp::scan(&m).map(|(a, r)| (a, r.rsdt)), Some((0x9fc40, 0x1111)));
        // Without the EBDA copy: the BIOS area.
        m.put(0x9fc00, &[0u8; 1024]);
        assert_eq!(Rsdp::scan(&m).map(|(a, r)| (a, r.rsdt)), Some((0xf5010, 0x2222)));
        // Not on a 16-byte boundary: not found.
        let mut bios = vec![0u8; 0x20000];
        bios[0x15008..0x15008 + 20].copy_from_slice(&r2);
        m.put(0xe0000, &bios);
        assert_eq!(Rsdp::scan(&m), None);
        // Nothing readable at all.
        assert_eq!(Rsdp::scan(&Mem::default()), None);
    }
}
