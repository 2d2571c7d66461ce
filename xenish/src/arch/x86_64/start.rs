//! Boot, from the trampoline's jump into Rust to the first guest
//! instruction: console, boot information, frame allocator and heap, the
//! hypervisor's own page tables (the direct map of all RAM, up to
//! [`DIRECTMAP_SIZE`]), the M2P and the frame table, descriptor tables,
//! `syscall`, and the boot-time domains.
//!
//! Memory comes up in two steps. The boot page tables map only the first
//! 4 GiB, so at first the frame allocator (its bitmap sized to the top of
//! RAM and placed in free RAM below 4 GiB) hands out only frames below
//! 4 GiB: the heap's first region and the new page tables come from there.
//! Once the new page tables map all of RAM, the rest is added, and the M2P
//! and the frame table (1/512 and 1/170 of RAM) are taken from anywhere.

use alloc::vec::Vec;
use core::ptr::addr_of_mut;

use crate::acpi::{Madt, PhysRead, Rsdp};

use super::heap::{self, MachineFrames};
use super::memory::{
    DirectMap, DirectMapRuns, DIRECTMAP_BOOT_SIZE, DIRECTMAP_SIZE, DIRECTMAP_START, FIXMAP_APIC, RO_MPT_START,
    XEN_VIRT_START,
};
use super::{apic, clock, cpu, entry, fpu, gdt, idt, ioapic, ipi, percpu, serial, smpboot, trap, xpti};
use crate::boot_info::{BootInfo, MULTIBOOT2_BOOTLOADER_MAGIC};
use crate::hypercall::E820Entry;
use crate::irq;
use crate::mm::frame_alloc::{find_boot_region, FrameAllocator};
use crate::mm::frame_table::{FrameTable, PageInfo};
use crate::mm::pagetable::{self, PageSize, PTE_NX, PTE_P, PTE_RW, PTE_US};
use crate::mm::{FramePool, MachineMemory, Mfn, PAGE_SIZE};
use crate::printk;
use crate::setup;

/// Bytes in a page, as a `u64`.
const PAGE: u64 = PAGE_SIZE as u64;

extern "C" {
    static __image_start_phys: u8;
    static __image_end_phys: u8;
    static __note_gnu_build_id_start: u8;
    static __note_gnu_build_id_end: u8;
}

/// The image's `.note.gnu.build-id` section (the linker's `--build-id`
/// note), as bytes; empty if the link made none.
pub fn build_id_note() -> &'static [u8] {
    // SAFETY: linker-provided symbols bracketing a section of the image,
    // which stays mapped (read-only data) for the hypervisor's lifetime;
    // the end is not before the start.
    unsafe {
        let start = &__note_gnu_build_id_start as *const u8;
        let end = &__note_gnu_build_id_end as *const u8;
        let len = (end as usize).saturating_sub(start as usize);
        core::slice::from_raw_parts(start, len)
    }
}

fn serial_sink(bytes: &[u8]) {
    for &b in bytes {
        serial::write_byte(b);
    }
}

/// Stops the machine after a boot failure `what`.
fn boot_failure(what: core::fmt::Arguments) -> ! {
    printk!("xenish: {what}; halting");
    cpu::halt_forever()
}

/// The boot CPU's entry into Rust (called by the trampoline, on the boot stack).
pub extern "C" fn xenish_start(magic: u32, mbi_phys: u32) -> ! {
    // The boot CPU runs on CPU 0's stack block: its CpuInfo first.
    percpu::init_cpu_info(0, apic::cpuid_id(), addr_of_mut!(gdt::BSP_TABLES));
    serial::init();
    crate::console::set_sink(serial_sink);
    printk!("xenish {} - a Xen 4.17 PV-ABI hypervisor for x86_64", env!("CARGO_PKG_VERSION"));
    if magic != MULTIBOOT2_BOOTLOADER_MAGIC {
        boot_failure(format_args!("not started by a multiboot2 loader (magic {magic:#x})"));
    }

    // SAFETY: the boot page tables direct-map the first 4 GiB, which holds
    // the 32-bit boot information address; its first word is its size.
    let mbi_bytes = unsafe {
        let base = (DIRECTMAP_START + u64::from(mbi_phys)) as *const u8;
        let size = (base as *const u32).read_unaligned() as usize;
        core::slice::from_raw_parts(base, size.max(8))
    };
    let info = match BootInfo::new(mbi_bytes) {
        Ok(info) => info,
        Err(e) => boot_failure(format_args!("unreadable multiboot2 information ({e:?})")),
    };
    if let Some(loader) = info.loader_name() {
        printk!("xenish: loaded by {loader}");
    }
    printk!("xenish: command line: {}", info.cmdline());
    printk!("xenish: memory map:");
    for r in info.memory_map() {
        printk!("xenish:   {:#014x} - {:#014x} {}", r.base, r.base.saturating_add(r.length), r.kind_name());
    }
    for (i, m) in info.modules().enumerate() {
        printk!("xenish: module {}: {:#x} - {:#x} ({} bytes) '{}'", i + 1, m.start, m.end, m.end - m.start, m.string);
    }

    // RAM, as far as the direct map can reach.
    let ram = || info.memory_map().filter(|r| r.is_available()).map(|r| (r.base, r.base.saturating_add(r.length)));
    let ram_end = ram().map(|(_, end)| end).max().unwrap_or(0);
    let ram_top = ram_end.min(DIRECTMAP_SIZE);
    if ram_end > ram_top {
        printk!("xenish: RAM above {} GiB is not used (the direct map ends there)", DIRECTMAP_SIZE >> 30);
    }
    let nr_frames = ram_top / PAGE;

    // The frame allocator, its bitmap in free RAM below 4 GiB; what may not
    // be handed out: the first MiB, the image, the boot information, the
    // modules and the bitmap itself.
    // SAFETY: linker-provided symbols; only their addresses are used.
    let (img_start, img_end) =
        unsafe { (&__image_start_phys as *const u8 as u64, &__image_end_phys as *const u8 as u64) };
    let mbi = (u64::from(mbi_phys), u64::from(mbi_phys) + info.len() as u64);
    let fixed = [(0, 0x10_0000), (img_start, img_end), mbi];
    let modules = || info.modules().map(|m| (m.start, m.end));
    let words = FrameAllocator::bitmap_words(nr_frames);
    let bitmap_bytes = words as u64 * 8;
    let reserved = || fixed.into_iter().chain(modules());
    let Some(bitmap_at) = find_boot_region(ram(), reserved, bitmap_bytes, DIRECTMAP_BOOT_SIZE) else {
        boot_failure(format_args!("no room below 4 GiB for the frame allocator's {} KiB bitmap", bitmap_bytes / 1024))
    };
    // SAFETY: `find_boot_region` found these bytes in RAM below 4 GiB (which
    // the boot page tables map), page-aligned, overlapping neither the
    // image, the boot information nor a module; they are reserved in the
    // allocator they become at once, so nothing else ever uses them.
    let bitmap = unsafe { core::slice::from_raw_parts_mut(DirectMap::va(bitmap_at) as *mut u64, words) };
    let mut frames = FrameAllocator::new(bitmap, nr_frames);
    for (start, end) in ram() {
        frames.add_free_bytes(start, end.min(DIRECTMAP_BOOT_SIZE));
    }
    let reserve_all = |f: &mut FrameAllocator| {
        for (start, end) in reserved().chain([(bitmap_at, bitmap_at + bitmap_bytes)]) {
            f.reserve_bytes(start, end);
        }
    };
    reserve_all(&mut frames);
    heap::install_frames(frames);

    // The CPUs, from the ACPI tables, read while the boot page tables map
    // the first 4 GiB (where the RSDT's 32-bit pointers lead).
    let madt = find_madt(&info);

    // SAFETY: the boot page tables map the first 4 GiB at DIRECTMAP_START,
    // and the frames the allocator hands out are all below it for now.
    let mut boot_mem = unsafe { DirectMap::new(Mfn(DIRECTMAP_BOOT_SIZE / PAGE)) };
    let cpu_features = CpuFeatures::detect();
    let ioapics = ioapic::addresses(madt.as_ref());
    let l4 = match build_address_space(&mut boot_mem, img_end, nr_frames, &cpu_features, &ioapics) {
        Ok(l4) => l4,
        Err(e) => boot_failure(format_args!("cannot build the hypervisor page tables ({e:?})")),
    };
    // SAFETY: the page tables just loaded map all of RAM below `ram_top`.
    let mut mem = unsafe { DirectMap::new(Mfn(nr_frames)) };
    // RAM above 4 GiB is mapped now: it may be handed out.
    let _ = heap::with_frames(|f| {
        for (start, end) in ram() {
            f.add_free_bytes(start.max(DIRECTMAP_BOOT_SIZE), end);
        }
        reserve_all(f);
    });
    let free = MachineFrames.free_frames();
    printk!(
        "xenish: {} MiB usable in {free} frames, RAM up to {ram_top:#x}; image {img_start:#x}-{img_end:#x}",
        free * PAGE / (1 << 20)
    );
    let m2p = match build_m2p(&mut mem, l4, nr_frames, &cpu_features) {
        Ok(m2p) => m2p,
        Err(e) => boot_failure(format_args!("cannot build the M2P table ({e:?})")),
    };

    let [timer, spurious] = *entry::interrupt_stubs();
    idt::init(entry::exception_stubs(), timer, spurious);
    idt::set_ipi_gates(entry::ipi_stubs());
    let stride = entry::DEVICE_STUB_SIZE as u64;
    idt::set_device_gates(entry::device_stubs(), stride, irq::FIRST_DEVICE_VECTOR, irq::LAST_DEVICE_VECTOR);
    // SAFETY: the boot CPU is CPU 0, on block 0; BSP_TABLES are its own.
    unsafe { percpu::load_tables(0, addr_of_mut!(gdt::BSP_TABLES)) };
    enable_syscall(&cpu_features);
    let tsc_hz = clock::calibrate_tsc();
    printk!("xenish: TSC runs at {} kHz", tsc_hz / 1000);
    apic::init(FIXMAP_APIC, tsc_hz / 100);
    // Mask the legacy PICs for good: device interrupts come through the
    // IO-APICs, every pin masked until dom0 binds it.
    cpu::outb(0x21, 0xff);
    cpu::outb(0xa1, 0xff);
    ioapic::init(madt.as_ref(), apic::id());

    CMDLINE.call_once(|| info.cmdline().into());
    MEMORY_MAP.call_once(|| {
        // Multiboot2's memory types are E820's.
        info.memory_map().map(|r| E820Entry { addr: r.base, size: r.length, kind: r.kind }).collect()
    });
    let boot_modules: Vec<setup::BootModule> = info
        .modules()
        .map(|m| setup::BootModule {
            // SAFETY: GRUB placed the module at [start, end) in RAM below
            // 4 GiB, which the direct map covers; its frames stay reserved
            // until the boot-time domains are built, after which these
            // slices are dropped before the frames are freed.
            bytes: unsafe {
                core::slice::from_raw_parts(DirectMap::va(m.start) as *const u8, (m.end - m.start) as usize)
            },
            string: m.string,
        })
        .collect();
    let m2p_table = crate::mm::m2p::M2p { base: m2p.base, entries: m2p.entries };
    let fpu_area_size = fpu::init();
    start_cpus(&info, madt.as_ref(), l4, tsc_hz, (u64::from(mbi_phys), u64::from(mbi_phys) + info.len() as u64));
    setup_xpti(&mut mem, info.cmdline(), m2p.l4_slots[0]);
    let Some(pages) = frame_table_storage(&mut mem, nr_frames) else {
        boot_failure(format_args!(
            "no run of free frames for the frame table ({} KiB)",
            nr_frames * core::mem::size_of::<PageInfo>() as u64 / 1024
        ))
    };
    printk!(
        "xenish: frame table: {nr_frames} frames, {} KiB",
        nr_frames * core::mem::size_of::<PageInfo>() as u64 / 1024
    );
    let mut ft = FrameTable::new(pages, m2p.l4_slots);
    ft.io_frames_end = io_frames_end();
    // SAFETY: the direct map covers all RAM below `ram_top`; the builder
    // asks only for runs it allocated for the kernel it unwraps.
    let mut runs = unsafe { DirectMapRuns::new(Mfn(nr_frames)) };
    let initial_images_pages = modules().map(|(start, end)| end.div_ceil(PAGE) - start / PAGE).sum();
    let mut pool = MachineFrames;
    let mut setup = setup::Setup {
        mem: &mut mem,
        frames: &mut pool,
        m2p: m2p_table,
        xen_l4_slots: m2p.l4_slots,
        ft: &mut ft,
        fpu_area_size,
        initial_images_pages,
        guest_cpus: crate::cmdline::CommandLine::parse(info.cmdline()).guest_cpus(smpboot::online_cpus()) as u32,
    };
    let domains = setup::boot_domains(&mut setup, &mut runs, info.cmdline(), &boot_modules);
    // Xen's discard_initial_images: the modules' memory goes back to the
    // pool once nothing reads them.
    drop(boot_modules);
    let _ = heap::with_frames(|f| {
        for (start, end) in modules() {
            f.add_free_bytes(start & !(PAGE - 1), end.next_multiple_of(PAGE));
        }
        for (start, end) in fixed.into_iter().chain([(bitmap_at, bitmap_at + bitmap_bytes)]) {
            f.reserve_bytes(start, end);
        }
    });
    trap::run(
        domains,
        alloc::boxed::Box::new(pool),
        m2p_table,
        ft,
        Mfn(nr_frames),
        tsc_hz,
        cpu_features.under_hypervisor,
    )
}

/// The first frame past the machine's physical address width: CPUID
/// 0x80000008's `eax[7:0]` (Xen's `paddr_bits`; 36 on a CPU without the
/// leaf, as Xen assumes), clamped to the architectural 52 bits.
fn io_frames_end() -> u64 {
    let bits = if cpu::cpuid(0x8000_0000, 0).eax >= 0x8000_0008 { cpu::cpuid(0x8000_0008, 0).eax & 0xff } else { 36 };
    let bits = u64::from(bits).clamp(32, 52);
    (1 << (bits - 12)).min(crate::mm::frame_table::MAX_IO_FRAMES_END)
}

/// The frame table's records, one per frame below the top of RAM, in
/// zeroed frames taken from the allocator and reached through the direct
/// map (24 bytes a frame is 1/170 of RAM: heap memory for it would only
/// be taken from the same allocator), mapped for as long as the
/// hypervisor runs.
fn frame_table_storage(mem: &mut DirectMap, nr_frames: u64) -> Option<&'static mut [PageInfo]> {
    let bytes = nr_frames.checked_mul(core::mem::size_of::<PageInfo>() as u64)?;
    let count = bytes.div_ceil(PAGE).max(1);
    let base = MachineFrames.alloc_contiguous(count, 1)?;
    for i in 0..count {
        mem.frame_mut(Mfn(base.0 + i))?.fill(0);
    }
    // SAFETY: the `count` frames from `base` were just allocated for the
    // frame table alone, are zeroed (a valid `PageInfo` of plain integers,
    // page-aligned), and the direct map keeps them mapped for the
    // hypervisor's lifetime; they are never freed, the hypervisor never
    // asks the direct map for them by number, and no guest can name them
    // (they are free in the frame table, which no guest may map).
    Some(unsafe { core::slice::from_raw_parts_mut(DirectMap::va(base.addr()) as *mut PageInfo, nr_frames as usize) })
}

/// CPU features the hypervisor adapts to.
pub struct CpuFeatures {
    nx: bool,
    smep: bool,
    smap: bool,
    /// CPUID says we run under a hypervisor (QEMU): isa-debug-exit may exist.
    pub under_hypervisor: bool,
}

impl CpuFeatures {
    fn detect() -> Self {
        let max_ext = cpu::cpuid(0x8000_0000, 0).eax;
        let nx = max_ext >= 0x8000_0001 && cpu::cpuid(0x8000_0001, 0).edx & (1 << 20) != 0;
        let leaf7 = if cpu::cpuid(0, 0).eax >= 7 { cpu::cpuid(7, 0).ebx } else { 0 };
        let under_hypervisor = cpu::cpuid(1, 0).ecx & (1 << 31) != 0;
        let f = CpuFeatures { nx, smep: leaf7 & (1 << 7) != 0, smap: leaf7 & (1 << 20) != 0, under_hypervisor };
        printk!("xenish: cpu: nx={} smep={} smap={} hypervisor={}", f.nx, f.smep, f.smap, f.under_hypervisor);
        f
    }
}

fn enable_syscall(f: &CpuFeatures) {
    // TF IF DF IOPL NT AC: the hypervisor runs with all of them clear.
    const FLAGS_MASK: u64 = 0x4_7700;
    let star = (u64::from(gdt::RING3_CS32) << 48) | (u64::from(gdt::HYPERVISOR_CS) << 32);
    smpboot::write_syscall_msrs(0, star, FLAGS_MASK);
    // SAFETY: only bits the CPU reports are set in CR4; CR0.AM only affects
    // ring 3, where no hypervisor code runs.
    unsafe {
        // The hypervisor touches guest pages through guest mappings only in
        // guest_copy's routine, which sets EFLAGS.AC around the access
        // under SMAP (as Xen's stac/clac); SMEP holds without exception.
        let mut cr4 = cpu::read_cr4();
        if f.smep {
            cr4 |= 1 << 20;
        }
        if f.smap {
            cr4 |= 1 << 21;
        }
        // CR4.FSGSBASE is each vCPU's own (its guest kernel's choice), set
        // as a vCPU is switched in (`trap::set_cr4_fsgsbase`).
        cpu::write_cr4(cr4);
        // CR0.AM, as Xen runs (its __start_xen writes PE MP ET NE WP AM PG):
        // a guest, whose kernel runs in ring 3, that sets EFLAGS.AC gets
        // #AC for a misaligned access, as on Xen. Ring 0 is never checked.
        let cr0 = cpu::read_cr0() | (1 << 18);
        core::arch::asm!("mov cr0, {}", in(reg) cr0, options(nomem, nostack, preserves_flags));
    }
    // CR0 and CR4 are final: whether the fast paths may copy directly.
    super::guest_copy::init();
}

/// The machine-to-phys table: where it lives and the L4 slots every guest shares.
#[derive(Clone, Copy)]
pub struct M2p {
    /// First frame of the (contiguous) table.
    pub base: Mfn,
    /// Entries in the table.
    pub entries: u64,
    /// L4 slots 256..=271 for every guest's top-level table.
    pub l4_slots: [u64; 16],
}

/// The NX bit for mappings of data, when the CPU has NX.
fn nx(f: &CpuFeatures) -> u64 {
    if f.nx {
        PTE_NX
    } else {
        0
    }
}

/// Builds the hypervisor's own page tables and switches to them: the image,
/// the direct map of RAM below `nr_frames` (2 MiB pages) and the APIC
/// fixmap; every slot of the hypervisor hole gets its L3 now so that guest
/// copies of the slots stay current. Runs on the boot page tables, which
/// map the first 4 GiB: the tables come from the frames the allocator has
/// so far, all below 4 GiB. Returns the new top-level table.
fn build_address_space(
    mem: &mut DirectMap,
    img_end: u64,
    nr_frames: u64,
    f: &CpuFeatures,
    ioapics: &[u64],
) -> Result<Mfn, pagetable::MapError> {
    let nx = nx(f);
    let mut alloc = || MachineFrames.alloc();
    let l4 = pagetable::new_table(mem, &mut alloc)?;
    for slot in 256..272 {
        let l3 = pagetable::new_table(mem, &mut alloc)?;
        let us = if slot == 256 { PTE_US } else { 0 };
        pagetable::set_entry(mem, l4, slot, l3.addr() | PTE_P | PTE_RW | us)?;
    }
    let two_mib = 2 << 20;
    let mut pa = 0;
    while pa < img_end.next_multiple_of(two_mib) {
        let rw = PTE_P | PTE_RW;
        pagetable::map(mem, &mut alloc, l4, XEN_VIRT_START + pa, pa, PageSize::Size2M, rw, rw)?;
        pa += two_mib;
    }
    pa = 0;
    while pa < (nr_frames * PAGE).next_multiple_of(two_mib) {
        let (leaf, table) = (PTE_P | PTE_RW | nx, PTE_P | PTE_RW);
        pagetable::map(mem, &mut alloc, l4, DIRECTMAP_START + pa, pa, PageSize::Size2M, leaf, table)?;
        pa += two_mib;
    }
    // PCD | PWT: the APIC's registers must not be cached.
    let uncached = (1 << 4) | (1 << 3);
    let apic = PTE_P | PTE_RW | uncached | nx;
    pagetable::map(mem, &mut alloc, l4, FIXMAP_APIC, apic::APIC_PHYS_BASE, PageSize::Size4K, apic, PTE_P | PTE_RW)?;
    for (i, &pa) in ioapics.iter().enumerate() {
        let va = ioapic::fixmap(i);
        pagetable::map(mem, &mut alloc, l4, va, pa & !0xfff, PageSize::Size4K, apic, PTE_P | PTE_RW)?;
    }
    super::msi::fixmap_init(mem, &mut alloc, l4)?;
    // SAFETY: the new table maps the image, stacks and direct map at the
    // same addresses as the boot tables; only the identity map goes away.
    unsafe { cpu::write_cr3(l4.addr()) };
    crate::printk!(
        "xenish: hypervisor page tables at {:#x}, direct map of {} MiB",
        l4.addr(),
        (nr_frames * PAGE).next_multiple_of(two_mib) >> 20
    );
    Ok(l4)
}

/// The machine-to-phys table for `nr_frames` frames, every entry invalid,
/// mapped read-only for guests at `RO_MPT_START` in the live tables `l4`
/// (new mappings of unmapped addresses need no TLB flush), and the L4
/// slots every guest top-level table carries.
fn build_m2p(mem: &mut DirectMap, l4: Mfn, nr_frames: u64, f: &CpuFeatures) -> Result<M2p, pagetable::MapError> {
    let m2p_frames = (nr_frames * 8).div_ceil(PAGE);
    let base = MachineFrames.alloc_contiguous(m2p_frames, 1).ok_or(pagetable::MapError::OutOfMemory)?;
    for i in 0..m2p_frames {
        mem.frame_mut(Mfn(base.0 + i)).ok_or(pagetable::MapError::BadTable)?.fill(0xff);
        // INVALID_M2P_ENTRY
    }
    let mut alloc = || MachineFrames.alloc();
    for i in 0..m2p_frames {
        let (va, pa) = (RO_MPT_START + i * PAGE, (base.0 + i) << 12);
        let (leaf, table) = (PTE_P | PTE_US | nx(f), PTE_P | PTE_RW | PTE_US);
        pagetable::map(mem, &mut alloc, l4, va, pa, PageSize::Size4K, leaf, table)?;
    }
    let mut l4_slots = [0u64; 16];
    for (i, slot) in l4_slots.iter_mut().enumerate() {
        *slot = pagetable::entry(mem, l4, 256 + i)?;
    }
    crate::printk!("xenish: M2P {} frames at {:#x}", m2p_frames, base.addr());
    Ok(M2p { base, entries: nr_frames, l4_slots })
}

/// Physical memory below 4 GiB through the boot page tables, for the ACPI
/// parser: only the first MiB (BIOS areas) and ranges inside one entry of
/// the memory map are read, so a lying table pointer cannot make the
/// hypervisor read device registers.
struct BootPhys {
    regions: Vec<(u64, u64)>,
}

impl PhysRead for BootPhys {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else { return false };
        let allowed = end <= 0x10_0000 || self.regions.iter().any(|&(b, e)| b <= addr && end <= e);
        if !allowed || end > DIRECTMAP_BOOT_SIZE {
            return false;
        }
        // SAFETY: the boot page tables map the first 4 GiB at
        // DIRECTMAP_START, and the range is firmware memory (BIOS area or a
        // memory-map entry), not device registers; copied out byte-wise.
        unsafe { core::ptr::copy_nonoverlapping(DirectMap::va(addr) as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// The MADT, through the RSDP GRUB copied (tag 15, then 14) or Xen's scan
/// of the BIOS areas; `None` (with the reason printed) when there is none.
fn find_madt(info: &BootInfo) -> Option<Madt> {
    let mem = BootPhys { regions: info.memory_map().map(|r| (r.base, r.base.saturating_add(r.length))).collect() };
    let rsdp = match info.acpi_rsdp().and_then(Rsdp::parse) {
        Some(r) => r,
        None => match Rsdp::scan(&mem) {
            Some((_, r)) => r,
            None => {
                printk!("xenish: no ACPI RSDP; running on the boot CPU alone");
                return None;
            }
        },
    };
    super::acpi::init(&mem, &rsdp);
    match Madt::find(&mem, &rsdp) {
        Ok(madt) => {
            printk!(
                "xenish: ACPI: RSDP revision {}, MADT: {} CPU(s), {} IO-APIC(s), {} interrupt override(s)",
                rsdp.revision,
                madt.cpus.len(),
                madt.io_apics.len(),
                madt.overrides.len()
            );
            Some(madt)
        }
        Err(e) => {
            printk!("xenish: ACPI: {e:?}; running on the boot CPU alone");
            None
        }
    }
}

/// The MADT found at boot (I/O APICs and overrides, for dom0's interrupt
/// routing later).
static MADT: spin::Once<Madt> = spin::Once::new();

/// The MADT found at boot, if any.
pub fn madt() -> Option<&'static Madt> {
    MADT.get()
}

/// Brings up the CPUs the MADT lists, as `nosmp`/`maxcpus=` allow, and
/// reports each; they park idle (guests keep running on CPU 0).
fn start_cpus(info: &BootInfo, madt: Option<&Madt>, l4: Mfn, tsc_hz: u64, mbi: (u64, u64)) {
    use crate::smp::{plan, trampoline_page, Skip};
    let bsp_apic = apic::id();
    printk!("xenish: CPU 0 (APIC id {bsp_apic}) online");
    let cmdline = crate::cmdline::CommandLine::parse(info.cmdline());
    let limit = cmdline.cpu_limit().unwrap_or_else(|e| {
        printk!("xenish: {e}; ignored");
        None
    });
    let ids: Vec<u32> = madt.map(|m| m.cpus.iter().map(|c| c.apic_id).collect()).unwrap_or_default();
    if let Some(m) = madt {
        for id in &m.ignored_ids {
            printk!("xenish: CPU with APIC id {id} not brought up: x2APIC-only IDs need an x2APIC");
        }
        MADT.call_once(|| m.clone());
    }
    let cpus = plan(&ids, bsp_apic, limit, percpu::MAX_CPUS);
    let why_limit = if limit == Some(1) && info.cmdline().split_ascii_whitespace().any(|o| o == "nosmp") {
        alloc::string::String::from("nosmp")
    } else {
        alloc::format!("maxcpus={}", limit.unwrap_or(0))
    };
    if cpus.apic_ids.len() > 1 {
        let ram: Vec<(u64, u64)> =
            info.memory_map().filter(|r| r.is_available()).map(|r| (r.base, r.base.saturating_add(r.length))).collect();
        let mut seg = [0u8; 2];
        let ebda = if (BootPhys { regions: Vec::new() }).read(0x40e, &mut seg) {
            u64::from(u16::from_le_bytes(seg)) << 4
        } else {
            0
        };
        let avoid: Vec<(u64, u64)> = core::iter::once(mbi).chain(info.modules().map(|m| (m.start, m.end))).collect();
        let tramp = trampoline_page(&ram, ebda, &avoid).and_then(|page| smpboot::Trampoline::install(page, l4, tsc_hz));
        match tramp {
            None => printk!("xenish: no page below 1 MiB for the AP trampoline; running on the boot CPU alone"),
            Some(t) => {
                for (cpu, &apic_id) in cpus.apic_ids.iter().enumerate().skip(1) {
                    match t.start(cpu, apic_id) {
                        Ok(()) => printk!("xenish: CPU {cpu} (APIC id {apic_id}) online"),
                        Err(e) => printk!("xenish: CPU with APIC id {apic_id} not brought up: {}", e.describe()),
                    }
                }
            }
        }
    }
    for &(id, why) in &cpus.skipped {
        match why {
            Skip::Limit => printk!("xenish: CPU with APIC id {id} not brought up: {why_limit}"),
            Skip::TooMany => printk!("xenish: CPU with APIC id {id} not brought up: past {} CPUs", percpu::MAX_CPUS),
        }
    }
    printk!("xenish: {} CPUs online", smpboot::online_cpus());
    ipi::boot_check(IPI_CHECK_ROUNDS, tsc_hz, 2000);
}

/// Decides which domains run with XPTI (`xpti=` over Xen's default for
/// this CPU), says so, and gives every online CPU its root table if any
/// domain needs one (`m2p_slot`: L4 slot 256 of every guest). A CPU whose
/// root table cannot be built runs its guests without isolation, which is
/// reported.
fn setup_xpti(mem: &mut DirectMap, cmdline: &str, m2p_slot: u64) {
    let (opt, bad) = crate::cmdline::CommandLine::parse(cmdline).xpti();
    for v in bad {
        printk!("xenish: parameter \"xpti\" has invalid value \"{v}\"; the rest of it applies");
    }
    let facts = xpti::cpu_facts();
    let x = crate::xpti::Xpti::resolve(opt, facts);
    xpti::configure(x);
    printk!(
        "xenish: speculation: {} CPU, RDCL_NO {}; {}",
        if facts.amd_or_hygon { "AMD/Hygon" } else { "non-AMD" },
        if facts.rdcl_no { "set" } else { "clear" },
        x.describe()
    );
    if !x.any() {
        return;
    }
    let mut built = 0;
    for cpu in smpboot::online_mask().iter() {
        match xpti::build_root(mem, cpu, m2p_slot) {
            Ok(_) => built += 1,
            Err(e) => printk!("xenish: XPTI: no root page table for CPU {cpu} ({e:?}): its guests run unisolated"),
        }
    }
    printk!("xenish: XPTI: root page tables for {built} CPU(s)");
}

/// Round trips and shootdowns per AP of the boot-time IPI check.
const IPI_CHECK_ROUNDS: u32 = 100;

static CMDLINE: spin::Once<alloc::string::String> = spin::Once::new();

static MEMORY_MAP: spin::Once<Vec<E820Entry>> = spin::Once::new();

/// The machine's memory map as the boot loader reported it.
pub fn memory_map() -> &'static [E820Entry] {
    MEMORY_MAP.get().map(|m| m.as_slice()).unwrap_or(&[])
}

/// The hypervisor's command line, as GRUB passed it.
pub fn cmdline() -> &'static str {
    CMDLINE.get().map(|s| s.as_str()).unwrap_or("")
}

/// The hypervisor's panic handler: a panic is a bug in xenish, never guest
/// input; report it and stop the machine.
pub fn panic(info: &core::panic::PanicInfo) -> ! {
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
    let _ = writeln!(Raw, "\nxenish: PANIC: {info}");
    trap::power_off(true)
}
