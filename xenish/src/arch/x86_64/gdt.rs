//! The GDT, LDT and TSS, one set per CPU ([`CpuTables`]): `ltr` marks a
//! TSS busy, so two CPUs cannot load one, and each CPU's `rsp0`, IST stacks
//! and guest descriptor copies are its own. The functions here act on the
//! running CPU's set, found through [`super::percpu`].
//!
//! The layout is Xen's: entries 0..7168 (14 pages) belong to the guest
//! (`set_gdt`), and Xen's reserved page starts at entry 7168, so that the
//! selectors PV guests hard-code (`FLAT_KERNEL_CS64 = 0xe033`, ...) exist.
//! The LDT the CPU uses is the hypervisor's own table, holding a checked
//! copy of the running vCPU's `MMUEXT_SET_LDT` frames; its descriptor sits
//! where Xen's does (`LDT_ENTRY`, selector 0xe050).

use core::arch::asm;
use core::mem::size_of;
use core::ptr::{addr_of, addr_of_mut};

use crate::descriptors;
use crate::mm::PAGE_SIZE;

/// First GDT entry reserved for the hypervisor (`FIRST_RESERVED_GDT_ENTRY`).
pub const FIRST_RESERVED_GDT_ENTRY: usize = 7168;
/// Total entries: the guest's 14 pages plus the reserved page.
pub const GDT_ENTRIES: usize = FIRST_RESERVED_GDT_ENTRY + 512;

/// Hypervisor 64-bit code selector (`__HYPERVISOR_CS`).
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data selector (`__HYPERVISOR_DS`).
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Ring-3 32-bit code (`FLAT_RING3_CS32`); SYSRET derives the 64-bit CS/SS from it.
pub const RING3_CS32: u16 = 0xe023;
/// Ring-3 data (`FLAT_RING3_DS64`, also the guest kernel's SS).
pub const RING3_DS: u16 = 0xe02b;
/// Ring-3 64-bit code (`FLAT_RING3_CS64`, the guest kernel's CS).
pub const RING3_CS64: u16 = 0xe033;
/// The TSS selector (16-byte descriptor).
pub const TSS_SELECTOR: u16 = 0xe040;
/// The LDT selector (16-byte descriptor, Xen's `LDT_ENTRY`).
pub const LDT_SELECTOR: u16 = 0xe050;
/// Entries of the largest LDT (`MMUEXT_SET_LDT`'s limit).
const LDT_ENTRIES: usize = 8192;

/// The 64-bit task-state segment.
#[repr(C, packed(4))]
pub struct Tss {
    reserved0: u32,
    /// Stack pointers loaded on a privilege change to ring 0..2.
    pub rsp: [u64; 3],
    reserved1: u64,
    /// Interrupt stack table.
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    /// Offset of the I/O bitmap; past the limit means "no bitmap".
    pub iomap_base: u16,
}

/// One CPU's descriptor tables: its GDT (the guest's 14 pages and Xen's
/// reserved page), its LDT (a checked copy of the running vCPU's), its
/// TSS, and how much of the guest parts is in use. All-zero bytes are a
/// valid (empty) value: [`init`] fills in the rest.
#[repr(C, align(4096))]
pub struct CpuTables {
    gdt: [u64; GDT_ENTRIES],
    ldt: [u64; LDT_ENTRIES],
    tss: Tss,
    /// Guest GDT frames currently copied into entries `0..7168`.
    guest_frames: usize,
    /// Guest LDT pages currently copied into the LDT.
    ldt_pages: usize,
    /// Entries of the LDT in use (0: LDTR is null).
    ldt_ents: usize,
}

/// Frames a [`CpuTables`] takes.
pub const CPU_TABLES_FRAMES: u64 = size_of::<CpuTables>().div_ceil(PAGE_SIZE) as u64;

/// The boot CPU's tables (the other CPUs' are allocated as they start).
pub static mut BSP_TABLES: CpuTables = CpuTables {
    gdt: [0; GDT_ENTRIES],
    ldt: [0; LDT_ENTRIES],
    tss: Tss { reserved0: 0, rsp: [0; 3], reserved1: 0, ist: [0; 7], reserved2: 0, reserved3: 0, iomap_base: 0 },
    guest_frames: 0,
    ldt_pages: 0,
    ldt_ents: 0,
};

/// The running CPU's tables.
fn this() -> *mut CpuTables {
    super::percpu::tables()
}

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

const fn index(sel: u16) -> usize {
    (sel >> 3) as usize
}

/// Fills in `tables` (all zero, or the boot CPU's static ones) and makes
/// them the running CPU's: loads the GDT and TSS and reloads every segment
/// register.
///
/// `rsp0` is the stack the CPU switches to when a guest traps; `ists` are
/// the double-fault, NMI and machine-check stacks.
///
/// # Safety
/// `tables` must point to a `CpuTables` for the running CPU alone, which
/// lives as long as the hypervisor and no other code references; `rsp0`
/// and `ists` must be this CPU's stacks.
pub unsafe fn init(tables: *mut CpuTables, rsp0: u64, ists: [u64; 3]) {
    // SAFETY: the caller's contract: the tables are this CPU's alone, and
    // no guest or interrupt observes them before they are loaded here.
    unsafe {
        let gdt = &mut *core::ptr::addr_of_mut!((*tables).gdt);
        gdt[index(HYPERVISOR_CS)] = 0x00af_9a00_0000_ffff;
        gdt[index(HYPERVISOR_DS)] = 0x00cf_9200_0000_ffff;
        let [cs32, ds, cs64] = descriptors::FLAT_RING3_DESCRIPTORS;
        gdt[index(RING3_CS32)] = cs32;
        gdt[index(RING3_DS)] = ds;
        gdt[index(RING3_CS64)] = cs64;

        let tss = &mut *core::ptr::addr_of_mut!((*tables).tss);
        tss.rsp[0] = rsp0;
        tss.ist[0] = ists[0];
        tss.ist[1] = ists[1];
        tss.ist[2] = ists[2];
        // No I/O bitmap: the offset is past the TSS's limit.
        tss.iomap_base = size_of::<Tss>() as u16;
        let base = addr_of!((*tables).tss) as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        gdt[index(TSS_SELECTOR)] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        gdt[index(TSS_SELECTOR) + 1] = base >> 32;

        let ptr = DescriptorPointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: addr_of!((*tables).gdt) as u64 };
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:e}",
            "mov es, {ds:e}",
            "mov ss, {ds:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) u64::from(HYPERVISOR_CS),
            ds = in(reg) u32::from(HYPERVISOR_DS),
            tss = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}

/// Loads a guest's descriptor frames into the guest part of the GDT
/// (entries `0..FIRST_RESERVED_GDT_ENTRY`), as checked copies; entries the
/// previous guest had beyond them are cleared.
pub fn load_guest(frames: &[&[u8; PAGE_SIZE]]) {
    let n = frames.len().min(FIRST_RESERVED_GDT_ENTRY / descriptors::PER_FRAME);
    let t = this();
    // SAFETY: the running CPU's GDT's guest part is written only here, on
    // that CPU, with the hypervisor's own selectors (in the reserved page)
    // untouched; the CPU reads descriptors only when a selector is loaded,
    // and every value written is a checked descriptor or zero.
    let (gdt, previous) = unsafe {
        let previous = core::mem::replace(&mut *addr_of_mut!((*t).guest_frames), n);
        (&mut *addr_of_mut!((*t).gdt), previous)
    };
    for (i, page) in gdt[..FIRST_RESERVED_GDT_ENTRY].chunks_exact_mut(descriptors::PER_FRAME).enumerate() {
        let Ok(page) = <&mut [u64; descriptors::PER_FRAME]>::try_from(page) else { continue };
        match frames.get(i) {
            Some(frame) if i < n => descriptors::load(frame, page),
            _ if i < previous => page.fill(0),
            _ => {}
        }
    }
}

/// Loads a vCPU's LDT: `frames` (a page each, `None` for a page that reads
/// as not-present descriptors) as checked copies, `ents` entries of them
/// in force; with no entries LDTR becomes null. Entries the previous
/// vCPU's LDT had beyond these are cleared.
pub fn load_ldt(frames: &[Option<&[u8; PAGE_SIZE]>], ents: usize) {
    let ents = ents.min(LDT_ENTRIES);
    let pages = ents.div_ceil(descriptors::PER_FRAME);
    let t = this();
    // SAFETY: the running CPU's LDT is written only here, on that CPU,
    // while LDTR is null or about to be reloaded: the CPU reads it only
    // when an LDT selector is loaded, and every value written is a checked
    // descriptor or zero.
    let (ldt, previous) = unsafe {
        let previous = core::mem::replace(&mut *addr_of_mut!((*t).ldt_pages), pages);
        (&mut *addr_of_mut!((*t).ldt), previous)
    };
    for (i, page) in ldt.chunks_exact_mut(descriptors::PER_FRAME).enumerate().take(pages.max(previous)) {
        let Ok(page) = <&mut [u64; descriptors::PER_FRAME]>::try_from(page) else { continue };
        match frames.get(i).copied().flatten() {
            Some(frame) if i < pages => descriptors::load(frame, page),
            _ => page.fill(0),
        }
    }
    // SAFETY: a field of the running CPU's own tables.
    unsafe { addr_of_mut!((*t).ldt_ents).write(ents) };
    if ents == 0 {
        // SAFETY: a null LDTR: LDT selectors fault (in the guest, which
        // has no LDT); the hypervisor uses none.
        unsafe { asm!("lldt {0:x}", in(reg) 0u16, options(nostack, preserves_flags)) };
        return;
    }
    // SAFETY: only the address is taken.
    let base = unsafe { addr_of!((*t).ldt) } as u64;
    let limit = (ents * 8 - 1) as u64;
    // SAFETY: the LDT descriptor's two entries in the running CPU's
    // reserved GDT page are written only here; the CPU reads them at the
    // `lldt` that follows, which loads a present LDT descriptor for the
    // table above.
    unsafe {
        let gdt = &mut *addr_of_mut!((*t).gdt);
        gdt[index(LDT_SELECTOR)] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x82 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        gdt[index(LDT_SELECTOR) + 1] = base >> 32;
        asm!("lldt {0:x}", in(reg) LDT_SELECTOR, options(nostack, preserves_flags));
    }
}

/// Whether `sel` can be loaded into a data segment register now, by the
/// rule of [`descriptors::selector_loadable`] applied to the tables the CPU
/// holds (the running vCPU's checked GDT copy and reserved page, its LDT
/// copy).
pub fn loadable(sel: u16) -> bool {
    let t = this();
    // SAFETY: reads of single descriptors of the running CPU's tables,
    // which only this CPU writes.
    let (gdt, ldt, ents) = unsafe { (&*addr_of!((*t).gdt), &*addr_of!((*t).ldt), addr_of!((*t).ldt_ents).read()) };
    descriptors::selector_loadable(sel, &|i| gdt.get(i).copied(), &|i| {
        (i < ents).then(|| ldt.get(i).copied()).flatten()
    })
}

/// Sets the stack the CPU loads when a guest traps into the hypervisor.
pub fn set_rsp0(rsp0: u64) {
    // SAFETY: a single 8-byte store to the running CPU's TSS, which only
    // that CPU reads (on the next ring-3 → ring-0 transition).
    unsafe { addr_of_mut!((*this()).tss.rsp[0]).write_unaligned(rsp0) };
}
