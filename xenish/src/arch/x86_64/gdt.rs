//! The GDT, LDT and TSS of the boot CPU.
//!
//! The layout is Xen's: entries 0..7168 (14 pages) belong to the guest
//! (`set_gdt`), and Xen's reserved page starts at entry 7168, so that the
//! selectors PV guests hard-code (`FLAT_KERNEL_CS64 = 0xe033`, ...) exist.
//! The LDT the CPU uses is the hypervisor's own table, holding a checked
//! copy of the running vCPU's `MMUEXT_SET_LDT` frames; its descriptor sits
//! where Xen's does (`LDT_ENTRY`, selector 0xe050).

use core::arch::asm;
use core::mem::size_of;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicUsize, Ordering};

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

#[repr(C, align(4096))]
struct Gdt([u64; GDT_ENTRIES]);

static mut GDT: Gdt = Gdt([0; GDT_ENTRIES]);

#[repr(C, align(4096))]
struct Ldt([u64; LDT_ENTRIES]);

static mut LDT: Ldt = Ldt([0; LDT_ENTRIES]);

/// The boot CPU's TSS.
pub static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

const fn index(sel: u16) -> usize {
    (sel >> 3) as usize
}

/// Installs the GDT and TSS and reloads every segment register.
///
/// `rsp0` is the stack the CPU switches to when a guest traps; `ists` are
/// the double-fault, NMI and machine-check stacks.
pub fn init(rsp0: u64, ists: [u64; 3]) {
    // SAFETY: runs once on the boot CPU before any guest or interrupt can
    // observe the GDT/TSS; nothing else holds references to them.
    unsafe {
        let gdt = &mut *core::ptr::addr_of_mut!(GDT.0);
        gdt[index(HYPERVISOR_CS)] = 0x00af_9a00_0000_ffff;
        gdt[index(HYPERVISOR_DS)] = 0x00cf_9200_0000_ffff;
        let [cs32, ds, cs64] = descriptors::FLAT_RING3_DESCRIPTORS;
        gdt[index(RING3_CS32)] = cs32;
        gdt[index(RING3_DS)] = ds;
        gdt[index(RING3_CS64)] = cs64;

        let tss = &mut *core::ptr::addr_of_mut!(TSS);
        tss.rsp[0] = rsp0;
        tss.ist[0] = ists[0];
        tss.ist[1] = ists[1];
        tss.ist[2] = ists[2];
        let base = addr_of!(TSS) as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        gdt[index(TSS_SELECTOR)] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        gdt[index(TSS_SELECTOR) + 1] = base >> 32;

        let ptr = DescriptorPointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: addr_of!(GDT) as u64 };
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

/// Guest GDT frames currently copied into entries `0..7168`.
static GUEST_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Loads a guest's descriptor frames into the guest part of the GDT
/// (entries `0..FIRST_RESERVED_GDT_ENTRY`), as checked copies; entries the
/// previous guest had beyond them are cleared.
pub fn load_guest(frames: &[&[u8; PAGE_SIZE]]) {
    let n = frames.len().min(FIRST_RESERVED_GDT_ENTRY / descriptors::PER_FRAME);
    let previous = GUEST_FRAMES.swap(n, Ordering::Relaxed);
    // SAFETY: the GDT's guest part is written only here, on the one CPU,
    // with the hypervisor's own selectors (in the reserved page) untouched;
    // the CPU reads descriptors only when a selector is loaded, and every
    // value written is a checked descriptor or zero.
    let gdt = unsafe { &mut *core::ptr::addr_of_mut!(GDT.0) };
    for (i, page) in gdt[..FIRST_RESERVED_GDT_ENTRY].chunks_exact_mut(descriptors::PER_FRAME).enumerate() {
        let Ok(page) = <&mut [u64; descriptors::PER_FRAME]>::try_from(page) else { continue };
        match frames.get(i) {
            Some(frame) if i < n => descriptors::load(frame, page),
            _ if i < previous => page.fill(0),
            _ => {}
        }
    }
}

/// Guest LDT pages currently copied into the LDT.
static LDT_PAGES: AtomicUsize = AtomicUsize::new(0);
/// Entries of the LDT in use (0: LDTR is null).
static LDT_ENTS: AtomicUsize = AtomicUsize::new(0);

/// Loads a vCPU's LDT: `frames` (a page each, `None` for a page that reads
/// as not-present descriptors) as checked copies, `ents` entries of them
/// in force; with no entries LDTR becomes null. Entries the previous
/// vCPU's LDT had beyond these are cleared.
pub fn load_ldt(frames: &[Option<&[u8; PAGE_SIZE]>], ents: usize) {
    let ents = ents.min(LDT_ENTRIES);
    let pages = ents.div_ceil(descriptors::PER_FRAME);
    let previous = LDT_PAGES.swap(pages, Ordering::Relaxed);
    // SAFETY: the LDT is written only here, on the one CPU, while LDTR is
    // null or about to be reloaded: the CPU reads it only when an LDT
    // selector is loaded, and every value written is a checked descriptor
    // or zero.
    let ldt = unsafe { &mut *core::ptr::addr_of_mut!(LDT.0) };
    for (i, page) in ldt.chunks_exact_mut(descriptors::PER_FRAME).enumerate().take(pages.max(previous)) {
        let Ok(page) = <&mut [u64; descriptors::PER_FRAME]>::try_from(page) else { continue };
        match frames.get(i).copied().flatten() {
            Some(frame) if i < pages => descriptors::load(frame, page),
            _ => page.fill(0),
        }
    }
    LDT_ENTS.store(ents, Ordering::Relaxed);
    if ents == 0 {
        // SAFETY: a null LDTR: LDT selectors fault (in the guest, which
        // has no LDT); the hypervisor uses none.
        unsafe { asm!("lldt {0:x}", in(reg) 0u16, options(nostack, preserves_flags)) };
        return;
    }
    let base = core::ptr::addr_of!(LDT) as u64;
    let limit = (ents * 8 - 1) as u64;
    // SAFETY: the LDT descriptor's two entries in the reserved page are
    // written only here; the CPU reads them at the `lldt` that follows,
    // which loads a present LDT descriptor for the table above.
    unsafe {
        let gdt = &mut *core::ptr::addr_of_mut!(GDT.0);
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
    // SAFETY: reads of single descriptors; the GDT and LDT are only written
    // on this CPU.
    let (gdt, ldt) = unsafe { (&*core::ptr::addr_of!(GDT.0), &*core::ptr::addr_of!(LDT.0)) };
    let ents = LDT_ENTS.load(Ordering::Relaxed);
    descriptors::selector_loadable(sel, &|i| gdt.get(i).copied(), &|i| {
        (i < ents).then(|| ldt.get(i).copied()).flatten()
    })
}

/// Sets the stack the CPU loads when a guest traps into the hypervisor.
pub fn set_rsp0(rsp0: u64) {
    // SAFETY: a single aligned 8-byte store to the boot CPU's TSS, which only
    // the CPU reads (on the next ring-3 → ring-0 transition).
    unsafe { core::ptr::addr_of_mut!(TSS.rsp[0]).write_unaligned(rsp0) };
}
