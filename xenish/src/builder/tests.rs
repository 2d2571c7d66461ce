//! Host tests of the builder against hand-made ELF images.

use super::*;
use crate::guest_access::tests::FakeMemory;
use crate::guest_access::{Access, GuestMemory};
use alloc::vec;
use alloc::vec::Vec;

const VB: u64 = 0xffff_ffff_8000_0000;

/// One Xen note.
fn note(typ: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&4u32.to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&typ.to_le_bytes());
    n.extend_from_slice(b"Xen\0");
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

fn standard_notes(hypercall_page: Option<u64>) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend(note(6, b"xenish-test\0"));
    n.extend(note(5, b"xen-3.0\0"));
    n.extend(note(8, b"generic\0"));
    n.extend(note(3, &VB.to_le_bytes()));
    n.extend(note(4, &0u64.to_le_bytes()));
    n.extend(note(1, &(VB + 0x10_0000).to_le_bytes()));
    if let Some(hp) = hypercall_page {
        n.extend(note(2, &hp.to_le_bytes()));
    }
    n.extend(note(10, b"!writable_page_tables|pae_pgdir_above_4gb"));
    n
}

/// A segment: (p_vaddr, p_paddr, bytes, memsz).
struct Seg {
    vaddr: u64,
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

/// An ELF64 x86_64 image with PT_LOAD segments and one PT_NOTE, plus an
/// optional `__xen_guest` section.
fn elf(segs: &[Seg], notes: &[u8], xen_guest: Option<&[u8]>) -> Vec<u8> {
    let phnum = segs.len() + usize::from(!notes.is_empty());
    let mut data = Vec::new();
    let data_off = 64 + 56 * phnum;
    let mut phdrs = Vec::new();
    let mut ph = |typ: u32, flags: u32, off: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64| {
        for (v, n) in
            [(typ as u64, 4), (flags as u64, 4), (off, 8), (vaddr, 8), (paddr, 8), (filesz, 8), (memsz, 8), (0x1000, 8)]
        {
            phdrs.extend_from_slice(&v.to_le_bytes()[..n]);
        }
    };
    for s in segs {
        let off = (data_off + data.len()) as u64;
        ph(1, 7, off, s.vaddr, s.paddr, s.data.len() as u64, s.memsz);
        data.extend_from_slice(&s.data);
    }
    if !notes.is_empty() {
        let off = (data_off + data.len()) as u64;
        ph(4, 4, off, 0, 0, notes.len() as u64, notes.len() as u64);
        data.extend_from_slice(notes);
    }
    let mut shdrs = Vec::new();
    let mut shnum = 0u16;
    if let Some(g) = xen_guest {
        // Sections: null, __xen_guest, .shstrtab.
        let strtab = b"\0__xen_guest\0.shstrtab\0";
        let g_off = data_off + data.len();
        data.extend_from_slice(g);
        let s_off = data_off + data.len();
        data.extend_from_slice(strtab);
        let mut sh = |name: u32, typ: u32, off: u64, size: u64| {
            for (v, n) in
                [(name as u64, 4), (typ as u64, 4), (0, 8), (0, 8), (off, 8), (size, 8), (0, 4), (0, 4), (1, 8), (0, 8)]
            {
                shdrs.extend_from_slice(&v.to_le_bytes()[..n]);
            }
        };
        sh(0, 0, 0, 0);
        sh(1, 1, g_off as u64, g.len() as u64);
        sh(13, 3, s_off as u64, strtab.len() as u64);
        shnum = 3;
    }
    let sh_off = if shnum > 0 { (data_off + data.len()) as u64 } else { 0 };
    let mut out = Vec::new();
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0x100_0000u64.to_le_bytes()); // e_entry: native, unused with ENTRY
    out.extend_from_slice(&64u64.to_le_bytes());
    out.extend_from_slice(&sh_off.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, phnum as u16, 64, shnum, shnum.saturating_sub(1)] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend(phdrs);
    out.extend(data);
    out.extend(shdrs);
    out
}

pub(super) fn kernel(hypercall_page: Option<u64>) -> Vec<u8> {
    let text: Vec<u8> = (0..0x3000u32).map(|i| (i % 251) as u8).collect();
    elf(
        &[
            Seg { vaddr: VB + 0x10_0000, paddr: 0x10_0000, data: text, memsz: 0x3000 },
            // A percpu-style segment: p_vaddr 0, loaded by p_paddr.
            Seg { vaddr: 0, paddr: 0x10_3000, data: vec![0xab; 0x100], memsz: 0x2000 },
        ],
        &standard_notes(hypercall_page),
        None,
    )
}

pub(super) struct Dom {
    frames: Vec<Mfn>,
    slots: [u64; 16],
}

/// Machine memory and a domain of `pages` frames, scattered (reversed).
pub(super) fn world(pages: usize) -> (FakeMemory, Dom) {
    let mem = FakeMemory(vec![[0u8; PAGE_SIZE]; pages + 2]);
    let frames = (0..pages).rev().map(|i| Mfn(i as u64 + 2)).collect();
    let mut slots = [0u64; 16];
    slots[0] = 0x1234_5000 | 0x5;
    (mem, Dom { frames, slots })
}

pub(super) fn spec<'a>(k: &'a [u8], w: &'a Dom, initrd: Option<&'a [u8]>) -> DomainSpec<'a> {
    DomainSpec {
        kernel: k,
        initrd,
        cmdline: b"console=hvc0 root=/dev/xvda",
        p2m: &w.frames,
        initial_domain: true,
        privileged: true,
        shared_info_mfn: Mfn(1),
        xen_l4_slots: &w.slots,
        store: None,
        console: None,
    }
}

fn read_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

#[test]
fn builds_a_mapped_runnable_image() {
    let k = kernel(Some(VB + 0x10_2000));
    let (mut w_mem, w) = world(4096);
    let s = spec(&k, &w, Some(b"initrd-bytes"));
    let frames = w.frames.clone();
    let built = build(&s, &mut w_mem).unwrap();
    assert_eq!(built.entry, VB + 0x10_0000);
    let l = built.layout;
    assert_eq!(l.kernel_pfn, 0x100);
    // Every mapped pfn reads through the guest's own tables at VB + pfn*4K.
    let g = GuestMemory::new(&mut w_mem, built.l4);
    for pfn in 0..l.mapped_pages {
        let ma = g.translate(VB + pfn * 4096, Access::Read).unwrap();
        assert_eq!(ma, frames[pfn as usize].addr(), "pfn {pfn:#x}");
        let writable = g.translate(VB + pfn * 4096, Access::Write).is_ok();
        assert_eq!(writable, !l.is_pt_pfn(pfn), "pfn {pfn:#x} RO iff page table");
    }
    assert!(g.translate(VB + l.mapped_pages * 4096, Access::Read).is_err());
    // Kernel bytes by p_paddr, bss zeroed, the p_vaddr-0 segment in place.
    let mut b = [0u8; 4];
    g.copy_from(VB + 0x10_0000 + 300, &mut b).unwrap();
    assert_eq!(b, [(300 % 251) as u8, (301 % 251) as u8, (302 % 251) as u8, (303 % 251) as u8]);
    g.copy_from(VB + 0x10_3000, &mut b).unwrap();
    assert_eq!(b, [0xab; 4]);
    g.copy_from(VB + 0x10_4000, &mut b).unwrap();
    assert_eq!(b, [0; 4]);
    // Hypervisor slots present in the L4.
    let l4 = w_mem.frame(built.l4).unwrap();
    assert_eq!(read_u64(l4, 256 * 8), 0x1234_5005);
    assert_eq!(built.page_tables.len() as u64, l.nr_pt_frames());
    assert_eq!(built.page_tables[0], (built.l4, 4));
    assert_eq!(built.stack_top, VB + (l.stack_pfn + 1) * 4096);
}

#[test]
fn start_info_and_p2m_are_xens() {
    let k = kernel(None);
    let (mut w_mem, w) = world(4000);
    let s = spec(&k, &w, Some(b"initrd-bytes"));
    let frames = w.frames.clone();
    let built = build(&s, &mut w_mem).unwrap();
    let l = built.layout;
    let si = *w_mem.frame(frames[l.start_info_pfn as usize]).unwrap();
    assert_eq!(&si[..15], b"xen-3.0-x86_64\0");
    assert_eq!(read_u64(&si, 0x20), 4000);
    assert_eq!(read_u64(&si, 0x28), 0x1000);
    assert_eq!(u32::from_le_bytes(si[0x30..0x34].try_into().unwrap()), 3); // PRIVILEGED|INITDOMAIN
    assert_eq!(read_u64(&si, 0x58), VB + l.pt_pfn * 4096);
    assert_eq!(read_u64(&si, 0x60), l.nr_pt_frames());
    assert_eq!(read_u64(&si, 0x68), VB + l.p2m.0 * 4096);
    let (initrd_pfn, _) = l.initrd.unwrap();
    assert_eq!(read_u64(&si, 0x70), VB + initrd_pfn * 4096);
    assert_eq!(read_u64(&si, 0x78), 12);
    assert_eq!(&si[0x80..0x80 + 28], b"console=hvc0 root=/dev/xvda\0");
    // console.dom0: info_off = sizeof(start_info), info_size = 40, and a
    // zeroed dom0_vga_console_info there (video_type 0: no VGA known).
    assert_eq!(read_u64(&si, 0x48), 0x28_0000_0490);
    assert_eq!(read_u64(&si, 0x50), 0);
    assert!(si[0x490..0x490 + 40].iter().all(|&b| b == 0));
    let p2m = w_mem.frame(frames[l.p2m.0 as usize]).unwrap();
    assert_eq!(read_u64(p2m, 5 * 8), frames[5].0);
    let last = w_mem.frame(frames[(l.p2m.0 + l.p2m.1 - 1) as usize]).unwrap();
    assert_eq!(read_u64(last, 511 * 8), !0, "slots past nr_pages are invalid");
    let initrd = w_mem.frame(frames[initrd_pfn as usize]).unwrap();
    assert_eq!(&initrd[..12], b"initrd-bytes");
}

#[test]
fn hypercall_page_stubs() {
    let k = kernel(Some(VB + 0x10_2000));
    let (mut w_mem, w) = world(4096);
    let s = spec(&k, &w, None);
    let frames = w.frames.clone();
    build(&s, &mut w_mem).unwrap();
    let page = w_mem.frame(frames[0x102]).unwrap();
    assert_eq!(
        &page[17 * 32..17 * 32 + 14],
        &[0x51, 0x41, 0x53, 0xb8, 17, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]
    );
    assert_eq!(&page[23 * 32..23 * 32 + 11], &[0x51, 0x41, 0x53, 0x50, 0xb8, 0x17, 0, 0, 0, 0x0f, 0x05]);
    assert_eq!(page[17 * 32 + 14], 0xcc);
    // Outside the mapping: refused.
    let k = kernel(Some(VB + (64 << 20)));
    let (mut w_mem, w) = world(4096);
    assert_eq!(build(&spec(&k, &w, None), &mut w_mem).err(), Some(BuildError::BadHypercallPage));
}

#[test]
fn domu_pages_and_unmapped_initrd() {
    let mut notes = standard_notes(None);
    notes.extend(note(16, &1u64.to_le_bytes())); // MOD_START_PFN
    notes.extend(note(15, &0x80_0000_0000u64.to_le_bytes())); // INIT_P2M
    let k = elf(&[Seg { vaddr: VB + 0x10_0000, paddr: 0x10_0000, data: vec![0x90; 16], memsz: 0x1000 }], &notes, None);
    let (mut w_mem, w) = world(8192);
    let mut s = spec(&k, &w, Some(b"cpio"));
    s.initial_domain = false;
    s.privileged = false;
    s.store = Some(1);
    s.console = Some(2);
    let frames = w.frames.clone();
    let built = build(&s, &mut w_mem).unwrap();
    let l = built.layout;
    let si = *w_mem.frame(frames[l.start_info_pfn as usize]).unwrap();
    assert_eq!(u32::from_le_bytes(si[0x30..0x34].try_into().unwrap()), 8); // SIF_MOD_START_PFN
    assert_eq!(read_u64(&si, 0x38), frames[l.start_info_pfn as usize + 1].0);
    assert_eq!(read_u64(&si, 0x40), 1);
    assert_eq!(read_u64(&si, 0x48), frames[l.start_info_pfn as usize + 2].0);
    assert_eq!(read_u64(&si, 0x50), 2);
    assert_eq!(read_u64(&si, 0x70), l.mapped_pages); // a pfn, past the mapping
    assert_eq!(read_u64(&si, 0x68), 0x80_0000_0000);
    assert_eq!(read_u64(&si, 0x488), 16 + 3); // 16 p2m pages + L3, L2, L1
    let g = GuestMemory::new(&mut w_mem, built.l4);
    assert_eq!(g.translate(0x80_0000_1008, Access::Write), Ok(frames[l.p2m.0 as usize + 1].addr() + 8));
    assert!(g.translate(VB + l.mapped_pages * 4096, Access::Read).is_err());
}

#[test]
fn legacy_xen_guest_section() {
    let k = elf(
        &[Seg { vaddr: VB + 0x10_0000, paddr: VB + 0x10_0000, data: vec![0x90; 16], memsz: 0x1000 }],
        &[],
        Some(b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,VIRT_ENTRY=0xffffffff80100000,HYPERCALL_PAGE=0x101,LOADER=generic\0"),
    );
    let (mut w_mem, w) = world(2048);
    let built = build(&spec(&k, &w, None), &mut w_mem).unwrap();
    assert_eq!(built.hypercall_page, Some(VB + 0x10_1000));
    // PADDR_OFFSET defaults to VIRT_BASE for the legacy form.
    assert_eq!(built.layout.kernel_pfn, 0x100);
}

#[test]
fn rejects_bad_notes_and_images() {
    let base = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut n = Vec::new();
        f(&mut n);
        elf(&[Seg { vaddr: VB + 0x10_0000, paddr: 0x10_0000, data: vec![0; 16], memsz: 0x1000 }], &n, None)
    };
    let (mut w_mem, w) = world(2048);
    let cases: Vec<(Vec<u8>, BuildError)> = vec![
        (base(&|n| n.extend(note(5, b"xen-2.0\0"))), BuildError::NotXenKernel),
        (
            base(&|n| {
                n.extend(note(8, b"generic\0"));
                n.extend(note(5, b"xen-2.0\0"));
            }),
            BuildError::WrongXenVersion,
        ),
        (
            base(&|n| {
                n.extend(standard_notes(None));
                n.extend(note(10, b"!supervisor_mode_kernel"));
            }),
            BuildError::UnsupportedRequiredFeature,
        ),
        (
            base(&|n| {
                n.extend(standard_notes(None));
                n.extend(note(10, b"!frobnication"));
            }),
            BuildError::UnknownRequiredFeature,
        ),
        (
            base(&|n| {
                n.extend(standard_notes(None));
                n.extend(note(17, &0u32.to_le_bytes()));
            }),
            BuildError::NotDom0Capable,
        ),
        (
            base(&|n| {
                n.extend(note(8, b"generic\0"));
                n.extend(note(5, b"xen-3.0\0"));
                n.extend(note(4, &0u64.to_le_bytes()));
            }),
            BuildError::PaddrOffsetWithoutVirtBase,
        ),
        (
            base(&|n| {
                n.extend(standard_notes(None));
                n.extend(note(1, &(VB + 0x90_0000).to_le_bytes()));
            }),
            BuildError::BadLayout,
        ),
        (vec![0x7f, b'E', b'L', b'F'], BuildError::BadElf),
    ];
    for (image, err) in cases {
        assert_eq!(build(&spec(&image, &w, None), &mut w_mem).err(), Some(err));
    }
    // Truncated image: program headers past the end.
    let k = kernel(None);
    assert!(build(&spec(&k[..100], &w, None), &mut w_mem).is_err());
    // Note area running past the image.
    let mut bad = kernel(None);
    let len = bad.len();
    bad.truncate(len - 8);
    assert!(build(&spec(&bad, &w, None), &mut w_mem).is_err());
    // Too little memory.
    let k = kernel(None);
    let (mut small_mem, small) = world(300);
    assert!(matches!(build(&spec(&k, &small, None), &mut small_mem), Err(BuildError::TooSmall { .. })));
}

#[test]
fn the_built_hierarchy_validates_and_is_pinned() {
    use crate::mm::frame_table::{tests::table, Owner, PageType};
    use crate::mm::pt_validate::{MapRights, Mmu};
    let k = kernel(None);
    let (mut w_mem, w) = world(4096);
    let built = build(&spec(&k, &w, None), &mut w_mem).unwrap();
    let mut ft = table(4096 + 2);
    let mut pages = crate::mm::frame_table::PageList::default();
    for &m in &w.frames {
        ft.assign_page(m, 0, &mut pages).unwrap();
    }
    assert_eq!(ft.owner(w.frames[0]), Some(Owner::Domain(0)));
    let rights = MapRights { id: 0, privileged: true, shared_info: Mfn(1), grant_frames: &[], status_frames: &[] };
    crate::setup::adopt_page_tables(&mut ft, &mut w_mem, &rights, built.l4, &built.page_tables).unwrap();
    let l4 = ft.info(built.l4).unwrap();
    // References: its read-only mapping in the initial mapping, the pin, CR3.
    assert_eq!((l4.count(), l4.type_count(), l4.pinned()), (3, 2, true), "pinned, and vCPU 0's CR3");
    for &(mfn, level) in &built.page_tables {
        let p = ft.info(mfn).unwrap();
        assert_eq!(p.page_type(), PageType::table(level).unwrap(), "frame {mfn:?}");
    }
    let l = built.layout;
    for pfn in 0..l.mapped_pages {
        let p = ft.info(w.frames[pfn as usize]).unwrap();
        assert_eq!(p.page_type() == PageType::Writable, !l.is_pt_pfn(pfn), "pfn {pfn:#x}");
    }
    // A table the builder reports but did not link is refused.
    let mut bogus = built.page_tables.clone();
    bogus.push((w.frames[l.mapped_pages as usize + 1], 1));
    let mut mmu = Mmu { ft: &mut ft, mem: &mut w_mem };
    mmu.put_page_and_type(built.l4);
    mmu.unpin(built.l4, 0).unwrap();
    assert!(ft.iter().all(|(_, p)| p.count() == 0 && p.type_count() == 0), "all released");
    assert_eq!(
        crate::setup::adopt_page_tables(&mut ft, &mut w_mem, &rights, built.l4, &bogus),
        Err(guest_abi::errno::XenError::Einval)
    );
    assert!(ft.iter().all(|(_, p)| p.count() == 0 && p.type_count() == 0), "nothing held after a failure");
}

/// Machine memory that exists only where it is written (all frames read
/// as zeroes until then): room for a domain of many GiB in a host test.
struct SparseMemory {
    frames: alloc::collections::BTreeMap<u64, alloc::boxed::Box<[u8; PAGE_SIZE]>>,
    limit: u64,
}

const ZERO_FRAME: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

impl MachineMemory for SparseMemory {
    fn frame(&self, mfn: Mfn) -> Option<&[u8; PAGE_SIZE]> {
        (mfn.0 < self.limit).then(|| self.frames.get(&mfn.0).map_or(&ZERO_FRAME, |f| &**f))
    }
    fn frame_mut(&mut self, mfn: Mfn) -> Option<&mut [u8; PAGE_SIZE]> {
        (mfn.0 < self.limit)
            .then(|| &mut **self.frames.entry(mfn.0).or_insert_with(|| alloc::boxed::Box::new(ZERO_FRAME)))
    }
}

#[test]
fn a_15_gib_dom0_builds_with_its_p2m_list_in_the_initial_mapping() {
    // The hello guest's shape: at -2 GiB, no INIT_P2M; 15 GiB of memory
    // in three runs, as the frame allocator hands out a big machine's RAM.
    let k = kernel(None);
    let nr_pages = 15u64 << 18;
    let mut runs = crate::mm::frame_runs::FrameRuns::new();
    runs.push(Mfn(0x10_0000), 13 << 18);
    runs.push(Mfn(0x300), (2 << 18) - 0x1000);
    runs.push(Mfn(0x10), 0x1000);
    assert_eq!(runs.nr_pages(), nr_pages);
    let mut mem = SparseMemory { frames: Default::default(), limit: 0x50_0000 };
    let (_, w) = world(0);
    let mut s = spec(&k, &w, None);
    s.p2m = &runs;
    let built = build(&s, &mut mem).unwrap();
    let l = built.layout;
    assert_eq!(l.p2m.1, nr_pages * 8 / 4096, "30 MiB of p2m list");
    assert!(l.p2m.0 + l.p2m.1 <= l.mapped_pages, "inside the initial mapping");
    assert!(l.mapped_pages < (64 << 20) / 4096, "which stays far below the 2 GiB above VIRT_BASE");
    let g = GuestMemory::new(&mut mem, built.l4);
    let entry = |g: &GuestMemory, pfn: u64| {
        let mut b = [0u8; 8];
        g.copy_from(VB + l.p2m.0 * 4096 + pfn * 8, &mut b).unwrap();
        u64::from_le_bytes(b)
    };
    let last = nr_pages - 1;
    assert_eq!([0, (13 << 18) - 1, 13 << 18, last].map(|p| entry(&g, p)), [0x10_0000, 0x43_ffff, 0x300, 0x100f]);
    let mut si = [0u8; 0x30];
    g.copy_from(built.start_info_va, &mut si).unwrap();
    assert_eq!(read_u64(&si, 0x20), nr_pages, "start_info.nr_pages");
    assert_eq!(g.translate(VB + 0x10_0000, Access::Read), Ok(0x10_0100 << 12), "kernel pfn 0x100 is run 1's");
    assert_eq!(mem.frames.len() as u64, l.used_pages, "only the pages the layout uses were written");
}

#[test]
fn a_15_gib_linux_dom0_maps_its_p2m_list_at_init_p2m() {
    let input = LayoutInput {
        virt_base: VB,
        virt_kstart: VB + 0x100_0000,
        virt_kend: VB + 0x4a0_0000,
        nr_pages: 15 << 18,
        initrd_len: Some(40 << 20),
        initrd_unmapped: true,
        p2m_base: Some(0x80_0000_0000),
        store: false,
        console: false,
    };
    let l = layout::compute(&input).unwrap();
    assert!(l.mapped_pages * 4096 <= 80 << 20, "the initial mapping holds the kernel, not the p2m list");
    let (table_pfn, counts) = l.p2m_tables.unwrap();
    assert_eq!(l.p2m.1, 7680, "30 MiB of list");
    assert_eq!(counts, TableCounts { l3: 1, l2: 1, l1: 15 }, "mapped by its own tables");
    assert_eq!(table_pfn, l.p2m.0 + l.p2m.1);
    assert!(l.used_pages < input.nr_pages);
}
