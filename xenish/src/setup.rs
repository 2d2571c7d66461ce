//! Boot-time domains: what the hypervisor builds from the multiboot2
//! modules before any guest runs. With no domain options, Xen's convention
//! holds: module 1 is dom0's kernel (its string is dom0's command line) and
//! module 2 its initrd.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::errno::XenError;

use crate::builder::{self, DomainSpec};
use crate::cmdline::CommandLine;
use crate::domain::{Domain, Vcpu};
use crate::domain_config;
use crate::evtchn::{Binding, EvtchnTable, DOMID_XEN};
use crate::mm::frame_alloc::FrameAllocator;
use crate::mm::frame_table::{FrameTable, Owner, PageList, PageType};
use crate::mm::m2p::M2p;
use crate::mm::pt_validate::{MapRights, Mmu};
use crate::mm::{MachineMemory, Mfn, Pfn, PAGE_SIZE};
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
pub struct Setup<'s, 'f> {
    /// Machine memory.
    pub mem: &'s mut dyn MachineMemory,
    /// The frame allocator.
    pub frames: &'s mut FrameAllocator<'f>,
    /// Contiguous frame runs, where a compressed kernel is unwrapped.
    pub scratch: &'s mut dyn builder::ContiguousMemory,
    /// The machine-to-phys table.
    pub m2p: M2p,
    /// L4 slots 256..=271 every guest top-level table shares.
    pub xen_l4_slots: [u64; 16],
    /// The frame table: the domains' frames are recorded as theirs.
    pub ft: &'s mut FrameTable,
    /// Bytes of a vCPU's FPU save area.
    pub fpu_area_size: usize,
}

/// The initial rflags of a PV vCPU: IF (and the always-one bit 1).
const INITIAL_RFLAGS: u64 = 0x202;

/// Memory of a declared domain without `mem=`.
const DEFAULT_DOMAIN_MIB: u64 = 64;

/// What to build for one domain.
struct Plan<'m> {
    id: u16,
    name: &'m str,
    kernel: &'m BootModule<'m>,
    initrd: Option<&'m BootModule<'m>>,
    nr_pages: u64,
    privileged: bool,
}

/// Builds the boot-time domains from the command line and the modules,
/// each with its scheduling parameters. A domain that cannot be built is
/// reported and left out; the others start.
pub fn boot_domains(setup: &mut Setup, cmdline: &str, modules: &[BootModule]) -> Vec<(Domain, SchedParams)> {
    let line = CommandLine::parse(cmdline);
    for unknown in line.unknown() {
        printk!("xenish: ignoring unknown option '{unknown}'");
    }
    let declarations = domain_config::declarations(cmdline);
    let mut domains = Vec::new();
    if declarations.is_empty() {
        // Xen's convention: module 1 is dom0's kernel, module 2 its initrd.
        let Some(kernel) = modules.first() else {
            printk!("xenish: no modules: nothing to run (module 1 must be dom0's kernel)");
            return domains;
        };
        let nr_pages = match line.dom0_pages(setup.frames.free_frames()) {
            Ok(n) => n,
            Err(e) => {
                printk!("xenish: bad dom0_mem ({e}); dom0 not started");
                return domains;
            }
        };
        let plan = Plan { id: 0, name: "dom0", kernel, initrd: modules.get(1), nr_pages, privileged: true };
        match build_domain(setup, &plan) {
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
        if cfg.vcpus != 1 {
            printk!(
                "xenish: d{id} ({}): {} vCPUs asked, but one per domain is supported yet; not started",
                cfg.name,
                cfg.vcpus
            );
            continue;
        }
        let nr_pages = cfg.mem_mib.unwrap_or(DEFAULT_DOMAIN_MIB) * 256;
        let plan = Plan { id, name: &cfg.name, kernel, initrd, nr_pages, privileged: cfg.privileged };
        match build_domain(setup, &plan) {
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

/// Allocates, builds and registers one PV domain.
fn build_domain(setup: &mut Setup, plan: &Plan) -> Result<Domain, String> {
    let Plan { id, name, kernel, initrd, nr_pages, privileged } = *plan;
    let initial_domain = id == 0;
    if nr_pages + 1 > setup.frames.free_frames() {
        return Err(alloc::format!("{nr_pages} pages requested but only {} free", setup.frames.free_frames()));
    }
    let mut frames = Vec::with_capacity(nr_pages as usize);
    for _ in 0..nr_pages {
        // Checked above: the allocator has at least this many free frames.
        let Some(mfn) = setup.frames.alloc() else { break };
        frames.push(mfn);
    }
    let shared_info = setup.frames.alloc();
    // The domain's frames, linked through the frame table.
    let mut pages = PageList::default();
    let release = |setup: &mut Setup, pages: &mut PageList, frames: &[Mfn], extra: Option<Mfn>| {
        for &m in frames.iter().chain(extra.iter()) {
            let _ = setup.ft.release_page(m, id, pages);
            let _ = setup.ft.set_owner(m, Owner::Free);
            let _ = setup.frames.free(m);
        }
    };
    let Some(shared_info) = shared_info.filter(|_| frames.len() as u64 == nr_pages) else {
        release(setup, &mut pages, &frames, shared_info);
        return Err(String::from("out of memory"));
    };
    for &m in &frames {
        if setup.ft.assign_page(m, id, &mut pages).is_err() {
            release(setup, &mut pages, &frames, Some(shared_info));
            return Err(alloc::format!("frame {:#x} is beyond the frame table", m.0));
        }
    }
    if setup.ft.set_owner(shared_info, Owner::Xen).is_err() {
        release(setup, &mut pages, &frames, Some(shared_info));
        return Err(alloc::format!("frame {:#x} is beyond the frame table", shared_info.0));
    }
    crate::domain::init_shared_info(setup.mem, shared_info);
    // A domU's console: a ring page the builder allocates and a port
    // bound to the hypervisor, which drains the ring when it is raised.
    let mut evtchn = EvtchnTable::new(1);
    let console_port = if initial_domain {
        None
    } else {
        evtchn.allocate(Binding::Interdomain { remote: DOMID_XEN, port: 0 }, 0).ok()
    };

    // A bzImage is unwrapped first, as Xen does (xen/arch/x86/bzimage.c).
    let image = match builder::unwrap_kernel(kernel.bytes, setup.frames, setup.scratch) {
        Ok(image) => image,
        Err(e) => {
            release(setup, &mut pages, &frames, Some(shared_info));
            return Err(alloc::format!("cannot unwrap the kernel: {e}"));
        }
    };
    if image.held_frames() != 0 {
        printk!("xenish: d{id}: bzImage unwrapped: {} bytes of ELF", image.bytes().len());
    }
    let spec = DomainSpec {
        kernel: image.bytes(),
        initrd: initrd.map(|m| m.bytes),
        cmdline: kernel.string.as_bytes(),
        frames: &frames,
        initial_domain,
        privileged,
        shared_info_mfn: shared_info,
        xen_l4_slots: &setup.xen_l4_slots,
        store: None,
        console: console_port,
    };
    let built = builder::build(&spec, setup.mem);
    image.release(setup.frames);
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            release(setup, &mut pages, &frames, Some(shared_info));
            return Err(alloc::format!("cannot build the kernel: {e}"));
        }
    };
    let rights = MapRights { id, privileged, shared_info, grant_frames: &[] };
    if let Err(e) = adopt_page_tables(setup.ft, setup.mem, &rights, built.l4, &built.page_tables) {
        release(setup, &mut pages, &frames, Some(shared_info));
        return Err(alloc::format!("the initial page tables do not validate ({e:?})"));
    }
    for (pfn, &mfn) in frames.iter().enumerate() {
        setup.m2p.set(setup.mem, mfn, Some(Pfn(pfn as u64)));
    }
    printk!(
        "xenish: d{id}: {nr_pages} pages ({} MiB), entry {:#x}, start_info {:#x}, page tables at {:#x}",
        (nr_pages * PAGE_SIZE as u64) >> 20,
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
    let mut d = Domain::new(id, name, privileged, shared_info);
    d.max_pages = nr_pages;
    d.page_list = pages;
    d.vcpus = alloc::vec![{
        let mut v = Vcpu::new(0, regs, built.l4);
        v.init_fpu(setup.fpu_area_size);
        v
    }];
    d.evtchn = evtchn;
    d.console_ring = built.console_mfn.zip(console_port);
    Ok(d)
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
