//! Boot-time domains: what the hypervisor builds from the multiboot2
//! modules before any guest runs. With no domain options, Xen's convention
//! holds: module 1 is dom0's kernel (its string is dom0's command line) and
//! module 2 its initrd.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::errno::XenError;

use crate::builder::{self, DomainSpec, KernelImage};
use crate::cmdline::{CommandLine, Dom0Mem};
use crate::domain::{Domain, Vcpu};
use crate::domain_config;
use crate::evtchn::{Binding, EvtchnTable, DOMID_XEN};
use crate::mm::frame_runs::FrameRuns;
use crate::mm::frame_table::{FrameTable, Owner, PageList, PageType};
use crate::mm::m2p::M2p;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{FramePool, MachineMemory, Mfn, Pfn, PAGE_SIZE};
use crate::printk;
use crate::regs::TrapFrame;
use crate::sched::SchedParams;
use crate::traps::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};

/// A multiboot2 module as the portable core sees it.
pub struct BootModule<'a> {
    /// The module's bytes.
    pub bytes: &'a [u8],
    /// The module's string (a guest kernel's command line).
    pub string: &'a str,
}

/// What building domains needs from the machine.
pub struct Setup<'s> {
    /// Machine memory.
    pub mem: &'s mut dyn MachineMemory,
    /// Where the domains' memory comes from.
    pub frames: &'s mut dyn FramePool,
    /// The machine-to-phys table.
    pub m2p: M2p,
    /// L4 slots 256..=271 every guest top-level table shares.
    pub xen_l4_slots: [u64; 16],
    /// The frame table: the domains' frames are recorded as theirs.
    pub ft: &'s mut FrameTable,
    /// Bytes of a vCPU's FPU save area.
    pub fpu_area_size: usize,
    /// Frames the boot modules hold, which go back to the pool once the
    /// boot-time domains are built (Xen's `initial_images_nrpages`):
    /// dom0's default size counts them as available, as Xen does.
    pub initial_images_pages: u64,
    /// The CPUs that run guests ([`CommandLine::guest_cpus`]): dom0's
    /// vCPU count without `dom0_max_vcpus=`, as in Xen.
    pub guest_cpus: u32,
}

/// The initial rflags of a PV vCPU: IF (and the always-one bit 1).
const INITIAL_RFLAGS: u64 = 0x202;

/// Memory of a declared domain without `mem=`.
const DEFAULT_DOMAIN_MIB: u64 = 64;

/// How much memory a planned domain gets.
#[derive(Clone, Copy)]
enum Size {
    /// This many pages (a declared domain's `mem=`).
    Pages(u64),
    /// dom0's: Xen's rule over the memory available (`dom0_mem=`).
    Dom0(Dom0Mem),
}

/// What to build for one domain.
struct Plan<'m> {
    id: u16,
    name: &'m str,
    kernel: &'m BootModule<'m>,
    initrd: Option<&'m BootModule<'m>>,
    size: Size,
    privileged: bool,
    /// Its vCPUs (`max_vcpus`): vCPU 0 starts, the others are down.
    vcpus: u32,
}

/// dom0's vCPU count by Xen's `dom0_max_vcpus()`: the number of CPUs
/// (`nr_cpus`), raised to the option's minimum and lowered to its maximum,
/// at most [`crate::domain::MAX_VCPUS`]. The option is Xen's
/// `dom0_max_vcpus=N` (exactly N), `N-M` (between N and M), `N-` (at least
/// N) or `-M` (at most M); N = 0 means 1; numbers as C's `strtoul` reads
/// them with base 0 (decimal, `0x` hex, leading-`0` octal).
pub fn dom0_max_vcpus(option: Option<&str>, nr_cpus: u32) -> Result<u32, String> {
    let (mut min, mut max) = (1u64, u64::from(u32::MAX));
    if let Some(s) = option {
        let bad = || alloc::format!("'{s}' is not N, N-M, N- or -M");
        if let Some(m) = s.strip_prefix('-') {
            max = strtoul(m).ok_or_else(bad)?;
        } else {
            let (n, rest) = s.split_once('-').map_or((s, None), |(n, m)| (n, Some(m)));
            min = strtoul(n).ok_or_else(bad)?.max(1);
            match rest {
                None => max = min,
                Some("") => {}
                Some(m) => max = strtoul(m).ok_or_else(bad)?,
            }
        }
    }
    let n = u64::from(nr_cpus).max(min).min(max).min(u64::from(crate::domain::MAX_VCPUS));
    Ok(n as u32)
}

/// An unsigned number as `strtoul(s, &end, 0)` reads the whole of `s`.
fn strtoul(s: &str) -> Option<u64> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => match s.strip_prefix('0') {
            Some(octal) if !octal.is_empty() => (octal, 8),
            _ => (s, 10),
        },
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Builds the boot-time domains from the command line and the modules,
/// each with its scheduling parameters; compressed kernels are unwrapped
/// into `scratch`. A domain that cannot be built is reported and left out;
/// the others start.
pub fn boot_domains(
    setup: &mut Setup,
    scratch: &mut dyn builder::ContiguousMemory,
    cmdline: &str,
    modules: &[BootModule],
) -> Vec<(Domain, SchedParams)> {
    let line = CommandLine::parse(cmdline);
    for unknown in line.unknown() {
        printk!("xenish: ignoring unknown option '{unknown}'");
    }
    if line.console_io_for_all() {
        crate::console::allow_domu_writes();
        printk!("xenish: console_io=all: every domain may write to this console (rate-limited)");
    }
    let declarations = domain_config::declarations(cmdline);
    let mut domains = Vec::new();
    if declarations.is_empty() {
        // Xen's convention: module 1 is dom0's kernel, module 2 its initrd.
        let Some(kernel) = modules.first() else {
            printk!("xenish: no modules: nothing to run (module 1 must be dom0's kernel)");
            return domains;
        };
        let dom0_mem = match line.dom0_mem() {
            Ok(m) => m,
            Err(e) => {
                printk!("xenish: bad dom0_mem ({e}); dom0 not started");
                return domains;
            }
        };
        let cpus = setup.guest_cpus.max(1);
        let vcpus = match dom0_max_vcpus(line.dom0_max_vcpus(), cpus) {
            Ok(n) => n,
            Err(e) => {
                printk!("xenish: bad dom0_max_vcpus ({e}); dom0 gets {cpus}");
                cpus
            }
        };
        let size = Size::Dom0(dom0_mem);
        let plan = Plan { id: 0, name: "dom0", kernel, initrd: modules.get(1), size, privileged: true, vcpus };
        match build_domain(setup, scratch, &plan) {
            Ok(d) => domains.push((d, SchedParams::default())),
            Err(e) => printk!("xenish: d0: not started: {e}"),
        }
        return domains;
    }
    for (i, decl) in declarations.iter().enumerate() {
        let id = i as u16;
        let cfg = match decl {
            Ok(cfg) => cfg,
            Err((text, e)) => {
                printk!("xenish: d{id}: domain={text}: {e}; not started");
                continue;
            }
        };
        let module = |n: usize| modules.get(n.wrapping_sub(1));
        let Some(kernel) = module(cfg.module) else {
            printk!("xenish: d{id} ({}): there is no module {}; not started", cfg.name, cfg.module);
            continue;
        };
        let initrd = match cfg.initrd {
            Some(n) => match module(n) {
                Some(m) => Some(m),
                None => {
                    printk!("xenish: d{id} ({}): there is no module {n} for the initrd; not started", cfg.name);
                    continue;
                }
            },
            None => None,
        };
        if cfg.vcpus > crate::domain::MAX_VCPUS {
            printk!(
                "xenish: d{id} ({}): {} vCPUs asked, at most {} per domain; not started",
                cfg.name,
                cfg.vcpus,
                crate::domain::MAX_VCPUS
            );
            continue;
        }
        let size = Size::Pages(cfg.mem_mib.unwrap_or(DEFAULT_DOMAIN_MIB) * 256);
        let plan = Plan { id, name: &cfg.name, kernel, initrd, size, privileged: cfg.privileged, vcpus: cfg.vcpus };
        match build_domain(setup, scratch, &plan) {
            Ok(d) => {
                printk!(
                    "xenish: d{id} ({}): weight {}, cap {}%{}",
                    cfg.name,
                    cfg.weight,
                    cfg.cap,
                    if cfg.privileged { ", privileged" } else { "" }
                );
                domains.push((d, SchedParams { weight: cfg.weight, cap: cfg.cap }));
            }
            Err(e) => printk!("xenish: d{id} ({}): not started: {e}", cfg.name),
        }
    }
    domains
}

/// Unwraps, sizes, allocates, builds and registers one PV domain.
fn build_domain(setup: &mut Setup, scratch: &mut dyn builder::ContiguousMemory, plan: &Plan) -> Result<Domain, String> {
    // A bzImage is unwrapped first, as Xen does (xen/arch/x86/bzimage.c).
    let image = builder::unwrap_kernel(plan.kernel.bytes, setup.frames, scratch)
        .map_err(|e| alloc::format!("cannot unwrap the kernel: {e}"))?;
    if image.held_frames() != 0 {
        printk!("xenish: d{}: bzImage unwrapped: {} bytes of ELF", plan.id, image.bytes().len());
    }
    let domain = construct(setup, plan, &image);
    image.release(setup.frames);
    domain
}

/// A new domain's memory while it is built.
struct Memory {
    /// Its frames in pfn order.
    runs: FrameRuns,
    /// The same frames, recorded as the domain's in the frame table.
    pages: PageList,
    /// Its shared_info page (the hypervisor's).
    shared_info: Mfn,
}

/// Sizes, allocates and builds the domain of `plan` from the unwrapped
/// kernel `image`.
fn construct(setup: &mut Setup, plan: &Plan, image: &KernelImage) -> Result<Domain, String> {
    let nr_pages = match plan.size {
        Size::Pages(n) => n,
        Size::Dom0(dom0_mem) => dom0_size(setup, plan, &dom0_mem, image)?,
    };
    let memory = populate(setup, plan.id, nr_pages)?;
    let (built, evtchn, console_port) = match build_image(setup, plan, image, &memory) {
        Ok(b) => b,
        Err(e) => {
            depopulate(setup, plan.id, memory);
            return Err(e);
        }
    };
    for (pfn, mfn, count) in memory.runs.iter() {
        setup.m2p.set_run(setup.mem, mfn, Pfn(pfn), count);
    }
    printk!(
        "xenish: d{}: {nr_pages} pages ({} MiB) in {} runs, entry {:#x}, start_info {:#x}, page tables at {:#x}",
        plan.id,
        (nr_pages * PAGE_SIZE as u64) >> 20,
        memory.runs.iter().count(),
        built.entry,
        built.start_info_va,
        built.l4.addr()
    );
    let regs = TrapFrame {
        rip: built.entry,
        cs: FLAT_KERNEL_CS,
        rflags: INITIAL_RFLAGS,
        rsp: built.stack_top,
        ss: FLAT_KERNEL_SS,
        rsi: built.start_info_va,
        ..TrapFrame::default()
    };
    let mut d = Domain::new(plan.id, plan.name, plan.privileged, memory.shared_info);
    if plan.privileged {
        // Xen's arch_hwdom_irqs: dynamic vectors for the CPUs (dom0's at
        // most one per vCPU).
        let dom0_vcpus = (plan.id == 0).then_some(plan.vcpus);
        d.pirqs = crate::pirq::Pirqs::with_count(crate::pirq::hwdom_pirqs(setup.guest_cpus, dom0_vcpus));
    }
    d.max_pages = nr_pages;
    d.page_list = memory.pages;
    d.vcpus = alloc::vec![{
        let mut v = Vcpu::new(0, regs, built.l4);
        v.init_fpu(setup.fpu_area_size);
        v
    }];
    d.evtchn = evtchn;
    // vCPUs 1.. exist from the start, down until the guest brings them up
    // (Xen's sched_setup_dom0_vcpus and the toolstack's max_vcpus).
    d.max_vcpus = plan.vcpus.max(1);
    d.create_offline_vcpus(setup.fpu_area_size, 0);
    if d.max_vcpus > 1 {
        printk!("xenish: d{}: {} vCPUs (vCPU 0 up, the others down until the guest starts them)", plan.id, d.max_vcpus);
    }
    d.console_ring = built.console_mfn.zip(console_port);
    Ok(d)
}

/// dom0's size by Xen's rule (`dom0_compute_nr_pages`) over the pages
/// available: those free, and those the boot modules and the unwrapped
/// kernel hold, which go back once the boot-time domains are built.
fn dom0_size(setup: &Setup, plan: &Plan, dom0_mem: &Dom0Mem, image: &KernelImage) -> Result<u64, String> {
    let avail = setup.frames.free_frames() + setup.initial_images_pages + image.held_frames();
    let kernel =
        builder::kernel_extent(image.bytes(), true).map_err(|e| alloc::format!("cannot build the kernel: {e}"))?;
    let initrd_len = plan.initrd.map_or(0, |m| m.bytes.len() as u64);
    let size =
        dom0_mem.compute_nr_pages(avail, &kernel, initrd_len).map_err(|e| alloc::format!("bad dom0_mem ({e})"))?;
    let rule = match *dom0_mem == Dom0Mem::default() {
        true => "no dom0_mem: all but min(1/16, 128 MiB)",
        false => "as dom0_mem says",
    };
    let clipped = if size.clipped { "; clipped to what its initial mapping can hold" } else { "" };
    printk!("xenish: d{}: {} of {avail} available pages for dom0 ({rule}{clipped})", plan.id, size.nr_pages);
    Ok(size.nr_pages)
}

/// Takes `nr_pages` frames (in as few runs as the pool has them) and a
/// shared_info page for domain `id`, recording the frames as its own.
fn populate(setup: &mut Setup, id: u16, nr_pages: u64) -> Result<Memory, String> {
    let free = setup.frames.free_frames();
    if nr_pages.checked_add(1).is_none_or(|n| n > free) {
        return Err(alloc::format!("{nr_pages} pages requested but only {free} free"));
    }
    let mut memory = Memory { runs: FrameRuns::new(), pages: PageList::default(), shared_info: Mfn(u64::MAX) };
    while memory.runs.nr_pages() < nr_pages {
        let Some((first, count)) = setup.frames.alloc_run(nr_pages - memory.runs.nr_pages()) else {
            depopulate(setup, id, memory);
            return Err(String::from("out of memory"));
        };
        memory.runs.push(first, count);
        for mfn in (first.0..first.0 + count).map(Mfn) {
            if setup.ft.assign_page(mfn, id, &mut memory.pages).is_err() {
                depopulate(setup, id, memory);
                return Err(alloc::format!("frame {:#x} is beyond the frame table", mfn.0));
            }
        }
    }
    match setup.frames.alloc() {
        Some(m) if setup.ft.set_owner(m, Owner::Xen).is_ok() => memory.shared_info = m,
        other => {
            other.into_iter().for_each(|m| setup.frames.free(m));
            depopulate(setup, id, memory);
            return Err(String::from("out of memory"));
        }
    }
    crate::domain::init_shared_info(setup.mem, memory.shared_info);
    Ok(memory)
}

/// Gives back what [`populate`] took (nothing refers to it yet).
fn depopulate(setup: &mut Setup, id: u16, mut memory: Memory) {
    for mfn in memory.runs.frames() {
        let _ = setup.ft.release_page(mfn, id, &mut memory.pages);
        setup.frames.free(mfn);
    }
    if setup.ft.set_owner(memory.shared_info, Owner::Free).is_ok() {
        setup.frames.free(memory.shared_info);
    }
}

/// Builds the kernel into `memory`: the initial image and page tables,
/// validated and pinned; the domain's event channels (a domU's console
/// port) and the port.
fn build_image(
    setup: &mut Setup,
    plan: &Plan,
    image: &KernelImage,
    memory: &Memory,
) -> Result<(builder::BuiltDomain, EvtchnTable, Option<u32>), String> {
    let initial_domain = plan.id == 0;
    // A domU's console: a ring page the builder allocates and a port
    // bound to the hypervisor, which drains the ring when it is raised.
    let mut evtchn = EvtchnTable::new(1);
    let console_port = if initial_domain {
        None
    } else {
        evtchn.allocate(setup.mem, Binding::Interdomain { remote: DOMID_XEN, port: 0 }, 0).ok()
    };
    let spec = DomainSpec {
        kernel: image.bytes(),
        initrd: plan.initrd.map(|m| m.bytes),
        cmdline: plan.kernel.string.as_bytes(),
        p2m: &memory.runs,
        initial_domain,
        privileged: plan.privileged,
        shared_info_mfn: memory.shared_info,
        xen_l4_slots: &setup.xen_l4_slots,
        store: None,
        console: console_port,
    };
    let built = builder::build(&spec, setup.mem).map_err(|e| alloc::format!("cannot build the kernel: {e}"))?;
    let rights = MapRights {
        id: plan.id,
        privileged: plan.privileged,
        shared_info: memory.shared_info,
        grant_frames: &[],
        status_frames: &[],
    };
    adopt_page_tables(setup.ft, setup.mem, &rights, built.l4, &built.page_tables)
        .map_err(|e| alloc::format!("the initial page tables do not validate ({e:?})"))?;
    Ok((built, evtchn, console_port))
}

/// Makes the builder's tables the domain's page tables, as Xen's builders
/// do: the top-level table `l4` is validated (and with it every table
/// below) and pinned, and vCPU 0's CR3 holds a second L4 type reference.
/// Every table the builder reports in `tables` must come out validated at
/// its level (a builder table left out of the hierarchy is a builder bug).
/// On failure nothing is held.
pub fn adopt_page_tables(
    ft: &mut FrameTable,
    mem: &mut dyn MachineMemory,
    rights: &MapRights,
    l4: Mfn,
    tables: &[(Mfn, u8)],
) -> Result<(), XenError> {
    let mut mmu = Mmu { ft, mem };
    mmu.pin(l4, 4, rights)?;
    if let Err(e) = mmu.get_page_and_type(l4, rights, PageType::L4) {
        let _ = mmu.unpin(l4, rights.id);
        return Err(e);
    }
    if tables.iter().any(|&(mfn, level)| !mmu.ft.is_page_table_of(mfn, rights.id, Some(level))) {
        mmu.put_page_and_type(l4);
        let _ = mmu.unpin(l4, rights.id);
        return Err(XenError::Einval);
    }
    Ok(())
}
