//! Domains and their vCPUs: identity, privilege, lifecycle, memory and the
//! per-vCPU state the hypervisor keeps for a PV guest.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use guest_abi::vcpu as vcpu_abi;

use crate::console::GuestConsole;
use crate::evtchn::EvtchnTable;
use crate::gnttab::GrantTable;
use crate::ipi::CpuMask;
use crate::mm::frame_table::PageList;
use crate::mm::Mfn;
use crate::regs::TrapFrame;

/// A domain identifier (`domid_t`).
pub type DomId = u16;

/// Why a domain shut down: Xen's `SHUTDOWN_*` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`
    Poweroff,
    /// `SHUTDOWN_reboot`
    Reboot,
    /// `SHUTDOWN_suspend`
    Suspend,
    /// `SHUTDOWN_crash`
    Crash,
    /// `SHUTDOWN_watchdog`
    Watchdog,
    /// `SHUTDOWN_soft_reset`
    SoftReset,
    /// A code Xen does not define; Xen records any 8-bit value.
    Other(u8),
}

impl ShutdownReason {
    /// The reason for a guest-supplied code (Xen keeps its low 8 bits).
    pub fn from_code(code: u32) -> Self {
        match code as u8 {
            0 => Self::Poweroff,
            1 => Self::Reboot,
            2 => Self::Suspend,
            3 => Self::Crash,
            4 => Self::Watchdog,
            5 => Self::SoftReset,
            other => Self::Other(other),
        }
    }

    /// Whether this reason counts as a failure for the machine's exit status.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Crash | Self::Watchdog)
    }
}

impl core::fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Poweroff => f.write_str("poweroff"),
            Self::Reboot => f.write_str("reboot"),
            Self::Suspend => f.write_str("suspend"),
            Self::Crash => f.write_str("crash"),
            Self::Watchdog => f.write_str("watchdog"),
            Self::SoftReset => f.write_str("soft_reset"),
            Self::Other(code) => write!(f, "unknown reason {code}"),
        }
    }
}

/// Where a domain is in its life. A toolstack pause ([`Domain::pause_count`])
/// is orthogonal: a running domain with a pause does not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Alive: its vCPUs run unless paused.
    Running,
    /// Shut down (by itself or crashed); it runs no more, and waits for the
    /// toolstack to destroy it.
    Shutdown(ShutdownReason),
    /// Destroyed (`XEN_DOMCTL_destroydomain`): its vCPUs, channels, grant
    /// mappings and page tables are gone, but other domains still map some
    /// of its frames (Xen's zombie). Carries how it had shut down, if it had.
    Dying(Option<ShutdownReason>),
    /// Every frame it had is back in the pool; its ID is free again.
    Dead(Option<ShutdownReason>),
}

/// One entry of a vCPU's virtual trap table (`trap_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapHandler {
    /// Code selector of the handler.
    pub cs: u16,
    /// `trap_info.flags`: DPL in bits 0-1, bit 2 = disable events.
    pub flags: u8,
    /// Handler address; 0 means no handler.
    pub address: u64,
}

/// A vCPU's guest mode, kernel (`true`) or user: the one piece of
/// [`Vcpu`] the fast path changes while other CPUs read the system (a
/// system call bounced to the guest kernel, `HYPERVISOR_iret` back to user
/// mode, under the system lock taken shared).
///
/// Why that is sound: it is written either under the system lock taken
/// exclusively (every slow entry: no fast path runs anywhere then), or by
/// the CPU that runs the vCPU, on the fast path, for that vCPU alone
/// ([`Vcpu::set_kernel_mode_running`]). No other CPU reads or writes a
/// vCPU's mode while it runs there: the fast path of another CPU looks
/// only at the vCPU that CPU runs, and slow entries wait for every shared
/// holder to leave. The lock's release and acquisition order the writes
/// for whoever reads next, so a relaxed atomic is enough; it is an atomic
/// (not a plain `bool`) so that the write through a shared reference needs
/// no `unsafe`.
pub struct KernelMode(AtomicBool);

impl Clone for KernelMode {
    fn clone(&self) -> Self {
        KernelMode(AtomicBool::new(self.0.load(Ordering::Relaxed)))
    }
}

impl core::fmt::Debug for KernelMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", if self.0.load(Ordering::Relaxed) { "kernel" } else { "user" })
    }
}

/// A vCPU's kernel stack pointer for bounces from user mode
/// (`stack_switch`; Xen's `kernel_sp`): the other piece of [`Vcpu`] the
/// fast path changes (Linux switches it on every context switch), by the
/// same rule as [`KernelMode`]: written under the system lock taken
/// exclusively, or by the CPU that runs the vCPU for that vCPU alone
/// ([`Vcpu::set_kernel_sp_running`]), and read by that CPU or under the
/// exclusive lock.
pub struct KernelStack(AtomicU64);

impl Clone for KernelStack {
    fn clone(&self) -> Self {
        KernelStack(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl core::fmt::Debug for KernelStack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}", self.0.load(Ordering::Relaxed))
    }
}

/// A virtual CPU of a PV domain.
#[derive(Clone, Debug)]
pub struct Vcpu {
    /// vCPU number within the domain.
    pub id: u32,
    /// Down (Xen's `_VPF_down`): not scheduled until `VCPUOP_up`. Every
    /// vCPU but 0 is created down; `VCPUOP_down` puts one back.
    pub down: bool,
    /// Given a context (Xen's `is_initialised`): by the builder,
    /// `XEN_DOMCTL_setvcpucontext` or `VCPUOP_initialise`. Only an
    /// initialised vCPU may come up.
    pub initialised: bool,
    /// The CPU whose CR3 last held this vCPU's page tables and may still
    /// cache its translations (Xen's `dirty_cpu`; `None`: clean). Kept by
    /// [`crate::flush::note_loaded`].
    pub dirty_cpu: Option<usize>,
    /// The CPU the vCPU runs on, from the moment a CPU picks it until that
    /// CPU has saved all of its state again (Xen's `is_running` with
    /// `processor`): no other CPU may pick it meanwhile.
    pub running_on: Option<usize>,
    /// The CPU it last ran on (Xen's `processor`; 0 before it ran).
    pub processor: usize,
    /// Another vCPU changed its timers (`VCPUOP_set_periodic_timer` on a
    /// sibling): the CPU that runs it must arm its timer again
    /// ([`crate::system::System::kicks`]).
    pub timers_moved: bool,
    /// The guest registers while the vCPU is not running.
    pub regs: TrapFrame,
    /// The kernel-mode top-level page table (it holds an L4 type
    /// reference in the frame table, like Xen's `guest_table`).
    pub kernel_l4: Mfn,
    /// The user-mode top-level page table (`NEW_USER_BASEPTR`), if set
    /// (also holding an L4 type reference).
    pub user_l4: Option<Mfn>,
    /// Whether the vCPU is in guest kernel mode (Xen's `TF_kernel_mode`);
    /// guest kernel and guest user both run in ring 3. Read with
    /// [`Self::kernel_mode`]; see [`KernelMode`] for who writes it.
    kernel_mode: KernelMode,
    /// Blocked in `SCHEDOP_block` until an event arrives.
    pub blocked: bool,
    /// Asked to yield the CPU (`SCHEDOP_yield`).
    pub yielded: bool,
    /// `SCHEDOP_poll`: the ports it waits for (any pending wakes it, even
    /// masked) and an optional deadline (ns).
    pub poll: Option<(Vec<u32>, Option<u64>)>,
    /// Time accounting per runstate (`vcpu_runstate_info`).
    pub runstate: Runstate,
    /// Guest virtual address kept updated with the runstate
    /// (`VCPUOP_register_runstate_memory_area`).
    pub runstate_area: Option<u64>,
    /// Guest virtual address kept updated with a copy of the vCPU's time
    /// (`VCPUOP_register_vcpu_time_memory_area`; Linux maps it into user
    /// space for its vDSO clock).
    pub time_area: Option<u64>,
    /// Single-shot timer deadline (system time, ns): `set_timer_op`.
    pub singleshot_ns: Option<u64>,
    /// Periodic timer: (period, next deadline) in ns.
    pub periodic_ns: Option<(u64, u64)>,
    /// The virtual IDT installed with `set_trap_table`.
    pub traps: [TrapHandler; 256],
    /// Kernel stack pointer for bounces from user mode (`stack_switch`):
    /// [`Self::kernel_sp`]; see [`KernelStack`] for who writes it.
    kernel_sp: KernelStack,
    /// The registered callbacks.
    pub callbacks: Callbacks,
    /// Segment registers and bases, saved while another vCPU runs.
    pub segments: SegmentState,
    /// FPU/SSE/AVX state while another vCPU runs (an XSAVE/FXSAVE area
    /// with alignment slack; the arch layer owns its format).
    pub fpu: Vec<u8>,
    /// The guest's virtual CR0.TS (`fpu_taskswitch`): its next FPU use
    /// raises #NM in the guest.
    pub fpu_ts: bool,
    /// The guest kernel's CR4.FSGSBASE (Xen's `ctrlreg[4]` bit): whether
    /// its user code may use `{rd,wr}{fs,gs}base`. Clear until the kernel
    /// sets it (where the CPU has the feature); the arch layer loads it
    /// into CR4 while the vCPU runs (Xen's XSA-293: never set behind a
    /// 64-bit PV kernel's back).
    pub cr4_fsgsbase: bool,
    /// Virtual I/O privilege level (`PHYSDEVOP_set_iopl`): with 1 or more,
    /// a privileged domain's kernel may use I/O ports (emulated).
    pub iopl: u8,
    /// The I/O permission bitmap (`PHYSDEVOP_set_iobitmap`): its guest
    /// address and how many ports it covers (0: none).
    pub iobitmap: (u64, u32),
    /// An NMI is pending (`VCPUOP_send_nmi`), to be delivered to the
    /// guest's NMI trap handler on its way back.
    pub nmi_pending: bool,
    /// An NMI handler runs: further NMIs wait until its `iret` (Xen's
    /// `async_exception_mask`).
    pub nmi_masked: bool,
    /// Work pending for the exit (Xen's `pause_flags` and softirq bits in
    /// spirit): set by everything that changes what the exit's look at
    /// this vCPU ([`crate::system::System`]'s `may_continue`) decides on:
    /// [`Self::down`], [`Self::blocked`], [`Self::yielded`],
    /// [`Self::poll`] and the domain's hard affinity for it
    /// ([`Self::note_exit_work`]); cleared by that look once it let the
    /// vCPU go on. While it is clear, an exit skips those checks and only
    /// looks at the domain's state and the pending upcall or NMI (which
    /// the guest itself may raise in its `vcpu_info`: they are read on
    /// every exit, as Xen's `test_all_events` does). Every setter runs
    /// under the system lock taken exclusively, which orders it before the
    /// exit of any CPU (the fast path, under the shared lock, only reads
    /// it). Set at creation: a new vCPU's first exit looks.
    pub exit_work: bool,
    /// The guest LDT's linear address (`MMUEXT_SET_LDT`); 0 with no LDT.
    pub ldt_base: u64,
    /// The guest LDT's entry count; 0 with no LDT.
    pub ldt_ents: u32,
    /// The frames behind the guest LDT's pages (`None` for a page that
    /// could not be a descriptor page), each holding a segment-descriptor
    /// type reference while installed.
    pub ldt_frames: Vec<Option<Mfn>>,
    /// The guest's GDT (`set_gdt`): its frames, 512 descriptors each.
    pub gdt_frames: Vec<Mfn>,
    /// The guest's debug registers (`set_debugreg`), DR6 as its #DBs left it.
    pub debugreg: [u64; 8],
    /// Where the vCPU's `vcpu_info` lives once the guest moved it
    /// (`VCPUOP_register_vcpu_info`): a frame and byte offset; until then
    /// it is its slot in shared_info.
    pub vcpu_info: Option<(Mfn, usize)>,
    /// Xen's `old_guest_table`: a page table of the domain whose final
    /// type put a preempted or failed request left unfinished (holding a
    /// reference, and either a type reference to drop or the table's
    /// partially devalidated state); finished before this vCPU's next
    /// `mmu_update`, `mmuext_op` or context load, or by the teardown.
    pub old_guest_table: Option<Mfn>,
}

/// The segment state the CPU holds for a running vCPU: selectors and the
/// FS/GS bases (`gs_base` is the active one, `shadow_gs_base` the other
/// mode's, exchanged on every kernel/user toggle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentState {
    /// `%ds` selector.
    pub ds: u16,
    /// `%es` selector.
    pub es: u16,
    /// `%fs` selector.
    pub fs: u16,
    /// `%gs` selector.
    pub gs: u16,
    /// FS base.
    pub fs_base: u64,
    /// Active GS base.
    pub gs_base: u64,
    /// Inactive GS base (`MSR_SHADOW_GS_BASE`).
    pub shadow_gs_base: u64,
}

/// `RUNSTATE_running`, as an index into the runstate times.
pub const RUNSTATE_RUNNING: usize = vcpu_abi::RUNSTATE_RUNNING as usize;
/// `RUNSTATE_runnable`
pub const RUNSTATE_RUNNABLE: usize = vcpu_abi::RUNSTATE_RUNNABLE as usize;
/// `RUNSTATE_blocked`
pub const RUNSTATE_BLOCKED: usize = vcpu_abi::RUNSTATE_BLOCKED as usize;
/// `RUNSTATE_offline`: down, or not yet initialised.
pub const RUNSTATE_OFFLINE: usize = vcpu_abi::RUNSTATE_OFFLINE as usize;

/// A vCPU's runstate and the time it spent in each (`vcpu_runstate_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    /// Current state (`RUNSTATE_*`): 0 (running) by default, for the
    /// boot-time domains' first vCPUs; a vCPU the toolstack creates starts
    /// offline at its creation time ([`Vcpu::offline`]).
    pub state: usize,
    /// System time the current state was entered.
    pub entry_ns: u64,
    /// Nanoseconds spent in each state, not counting the current one.
    pub time: [u64; 4],
}

impl Runstate {
    /// Moves to `state` at `now_ns`, accounting the time in the old one.
    pub fn enter(&mut self, state: usize, now_ns: u64) {
        if let Some(t) = self.time.get_mut(self.state) {
            *t += now_ns.saturating_sub(self.entry_ns);
        }
        self.state = state.min(3);
        self.entry_ns = now_ns;
    }

    /// The guest's `vcpu_runstate_info` bytes (48) at `now_ns`.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..4].copy_from_slice(&(self.state as u32).to_le_bytes());
        b[8..16].copy_from_slice(&self.entry_ns.to_le_bytes());
        for (i, t) in self.time.iter().enumerate() {
            b[16 + i * 8..24 + i * 8].copy_from_slice(&t.to_le_bytes());
        }
        b
    }
}

/// A callback entry point and whether events are masked while it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callback {
    /// Guest address; 0 when not registered.
    pub address: u64,
    /// `CALLBACKF_mask_events`: mask event delivery on entry.
    pub mask_events: bool,
}

/// The guest kernel's entry points for hypervisor-delivered events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callbacks {
    /// `CALLBACKTYPE_event`: event-channel upcalls.
    pub event: Callback,
    /// `CALLBACKTYPE_failsafe`: when a bounce or segment reload fails.
    pub failsafe: Callback,
    /// `CALLBACKTYPE_syscall`: 64-bit `syscall` from guest user mode.
    pub syscall: Callback,
    /// `CALLBACKTYPE_syscall32`: `syscall` from 32-bit user code.
    pub syscall32: Callback,
    /// `CALLBACKTYPE_sysenter`: `sysenter` from 32-bit user code.
    pub sysenter: Callback,
}

impl Vcpu {
    /// A vCPU that will start at the given register state and page table.
    pub fn new(id: u32, regs: TrapFrame, kernel_l4: Mfn) -> Self {
        Vcpu {
            id,
            down: false,
            exit_work: true,
            initialised: true,
            dirty_cpu: None,
            running_on: None,
            processor: 0,
            timers_moved: false,
            regs,
            kernel_l4,
            user_l4: None,
            kernel_mode: KernelMode(AtomicBool::new(true)),
            blocked: false,
            yielded: false,
            poll: None,
            runstate: Runstate::default(),
            runstate_area: None,
            time_area: None,
            singleshot_ns: None,
            periodic_ns: None,
            traps: [TrapHandler::default(); 256],
            kernel_sp: KernelStack(AtomicU64::new(regs.rsp)),
            callbacks: Callbacks::default(),
            segments: SegmentState::default(),
            fpu: Vec::new(),
            fpu_ts: false,
            cr4_fsgsbase: false,
            iopl: 0,
            iobitmap: (0, 0),
            nmi_pending: false,
            nmi_masked: false,
            ldt_base: 0,
            ldt_ents: 0,
            ldt_frames: Vec::new(),
            gdt_frames: Vec::new(),
            debugreg: crate::hypercall::debugreg::RESET,
            vcpu_info: None,
            old_guest_table: None,
        }
    }

    /// A vCPU as `XEN_DOMCTL_max_vcpus` creates it (Xen's `vcpu_create`):
    /// down, not initialised, offline, with no page table (a frame number
    /// no domain owns) and an FPU save area of `fpu_size` bytes, offline
    /// since `now_ns` (its runstate counts from its creation, not boot).
    pub fn offline(id: u32, fpu_size: usize, now_ns: u64) -> Self {
        let mut v = Vcpu::new(id, TrapFrame::default(), Mfn(u64::MAX));
        (v.down, v.initialised) = (true, false);
        v.set_kernel_sp(0);
        (v.runstate.state, v.runstate.entry_ns) = (RUNSTATE_OFFLINE, now_ns);
        v.init_fpu(fpu_size);
        v
    }

    /// Something the exit looks at changed ([`Self::exit_work`]): call
    /// after setting [`Self::down`], [`Self::blocked`], [`Self::yielded`]
    /// or [`Self::poll`], or changing the vCPU's hard affinity.
    #[inline]
    pub fn note_exit_work(&mut self) {
        self.exit_work = true;
    }

    /// Whether the vCPU itself has what the exit's full look acts on
    /// (down, blocked, yielded or polling): never while
    /// [`Self::exit_work`] is clear.
    pub fn needs_exit_look(&self) -> bool {
        self.down || self.blocked || self.yielded || self.poll.is_some()
    }

    /// Whether the scheduler may run the vCPU: up, and neither blocked nor
    /// polling.
    pub fn runnable(&self) -> bool {
        !self.down && !self.blocked && self.poll.is_none()
    }

    /// Where this vCPU's `vcpu_info` is, it being vCPU `index` of a domain
    /// whose shared_info page is `shared_info`.
    pub fn info_location(&self, shared_info: Mfn, index: usize) -> (Mfn, usize) {
        self.vcpu_info.unwrap_or_else(|| legacy_vcpu_info(shared_info, index))
    }

    /// Gives the vCPU an FPU save area of `size` bytes (plus alignment
    /// slack) in the initial state: x87 control word 0x37f, MXCSR 0x1f80,
    /// an empty XSAVE header.
    pub fn init_fpu(&mut self, size: usize) {
        let mut area = alloc::vec![0u8; size + 64];
        let start = area.as_ptr().align_offset(64);
        if let Some(legacy) = area.get_mut(start..start + 512) {
            legacy[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
            legacy[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        }
        self.fpu = area;
    }

    /// The FXSAVE image (the legacy 512 bytes) of the save area, as the
    /// vCPU last left it: what `XEN_DOMCTL_getvcpucontext` reports.
    pub fn fxsave_image(&self) -> Option<[u8; 512]> {
        let start = self.fpu.as_ptr().align_offset(64);
        self.fpu.get(start..start + 512).and_then(|legacy| legacy.try_into().ok())
    }

    /// Loads a toolstack-given FXSAVE image (`vcpu_guest_context.fpu_ctxt`)
    /// as the legacy region of the save area (its MXCSR reserved bits
    /// cleared, so the restore cannot fault).
    pub fn load_fxsave(&mut self, image: &[u8; 512]) {
        let start = self.fpu.as_ptr().align_offset(64);
        if let Some(legacy) = self.fpu.get_mut(start..start + 512) {
            legacy.copy_from_slice(image);
            let mxcsr = u32::from_le_bytes([legacy[24], legacy[25], legacy[26], legacy[27]]) & 0xffff;
            legacy[24..28].copy_from_slice(&mxcsr.to_le_bytes());
            legacy[28..32].fill(0);
        }
        // An XSAVE area restores x87 and SSE from it only if its header says
        // so (XSTATE_BV bits 0 and 1); an FXSAVE area ignores these bytes.
        if let Some(bv) = self.fpu.get_mut(start + 512..start + 520) {
            bv[0] |= 3;
        }
    }

    /// The earliest timer deadline of the vCPU, if any.
    pub fn next_timer_ns(&self) -> Option<u64> {
        match (self.singleshot_ns, self.periodic_ns.map(|(_, next)| next)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the timer check at `now_ns` has work for this vCPU: a timer
    /// due, or a wake-up to consider (it is blocked, polling, or coming
    /// up). The same conditions [`crate::system::System`]'s timer check
    /// acts on; a vCPU for which this is false is skipped there.
    #[inline]
    pub fn needs_timer_check(&self, now_ns: u64) -> bool {
        self.singleshot_ns.is_some_and(|t| t <= now_ns)
            || self.periodic_ns.is_some_and(|(_, next)| next <= now_ns)
            || self.blocked
            || self.poll.is_some()
            || (!self.down && self.runstate.state == RUNSTATE_OFFLINE)
    }

    /// Consumes the timers due at `now_ns`; returns whether any fired.
    pub fn take_due_timers(&mut self, now_ns: u64) -> bool {
        let mut fired = false;
        if self.singleshot_ns.is_some_and(|t| t <= now_ns) {
            self.singleshot_ns = None;
            fired = true;
        }
        if let Some((period, next)) = self.periodic_ns {
            if next <= now_ns {
                // Skip missed periods rather than firing a burst.
                let missed = (now_ns - next) / period.max(1);
                self.periodic_ns = Some((period, next + (missed + 1) * period.max(1)));
                fired = true;
            }
        }
        fired
    }

    /// Whether the vCPU is in guest kernel mode (Xen's `TF_kernel_mode`).
    #[inline(always)]
    pub fn kernel_mode(&self) -> bool {
        self.kernel_mode.0.load(Ordering::Relaxed)
    }

    /// Puts the vCPU in guest kernel or user mode.
    #[inline(always)]
    pub fn set_kernel_mode(&mut self, kernel: bool) {
        self.kernel_mode.0.store(kernel, Ordering::Relaxed);
    }

    /// [`Self::set_kernel_mode`] through a shared reference: only for the
    /// CPU that runs this vCPU, on the entry it is handling (the fast
    /// path, [`crate::system::System::fast_syscall`]); see [`KernelMode`].
    #[inline(always)]
    pub fn set_kernel_mode_running(&self, kernel: bool) {
        self.kernel_mode.0.store(kernel, Ordering::Relaxed);
    }

    /// The kernel stack pointer for bounces from user mode.
    #[inline(always)]
    pub fn kernel_sp(&self) -> u64 {
        self.kernel_sp.0.load(Ordering::Relaxed)
    }

    /// Sets the kernel stack pointer for bounces from user mode.
    pub fn set_kernel_sp(&mut self, sp: u64) {
        self.kernel_sp.0.store(sp, Ordering::Relaxed);
    }

    /// [`Self::set_kernel_sp`] through a shared reference: only for the
    /// CPU that runs this vCPU, on the entry it is handling (the fast
    /// path's `stack_switch`); see [`KernelStack`].
    #[inline(always)]
    pub fn set_kernel_sp_running(&self, sp: u64) {
        self.kernel_sp.0.store(sp, Ordering::Relaxed);
    }

    /// The top-level page table of the vCPU's current mode.
    pub fn current_l4(&self) -> Mfn {
        match (self.kernel_mode(), self.user_l4) {
            (false, Some(user)) => user,
            _ => self.kernel_l4,
        }
    }
}

/// Bytes of a `vcpu_info`.
pub const VCPU_INFO_SIZE: usize = core::mem::size_of::<guest_abi::xen::VcpuInfo>();

/// vCPUs whose `vcpu_info` has a slot in shared_info
/// (`XEN_LEGACY_MAX_VCPUS`); the others have none until they register one.
pub const LEGACY_MAX_VCPUS: usize = guest_abi::arch_x86::XEN_LEGACY_MAX_VCPUS as usize;

/// The most vCPUs a domain may have on xenish (`createdomain`'s
/// `max_vcpus`, boot-time `vcpus=`, `dom0_max_vcpus=`). Xen allows 8192 for
/// a PV domain; xenish time-slices them and keeps them in a vector, and 128
/// is what a guest on today's machines may sensibly ask for.
pub const MAX_VCPUS: u32 = 128;

/// The default `vcpu_info` of vCPU `index`: its shared_info slot, or, from
/// vCPU 32 on, none (Xen's `dummy_vcpu_info`): an offset past the page,
/// which every access treats as absent.
pub fn legacy_vcpu_info(shared_info: Mfn, index: usize) -> (Mfn, usize) {
    match index < LEGACY_MAX_VCPUS {
        true => (shared_info, index * VCPU_INFO_SIZE),
        false => (shared_info, crate::mm::PAGE_SIZE),
    }
}

/// Zeroes a shared_info page and masks event upcalls on all 32 legacy
/// vcpu_info slots, as Xen's builders do.
pub fn init_shared_info(mem: &mut dyn crate::mm::MachineMemory, mfn: Mfn) {
    if let Some(page) = mem.frame_mut(mfn) {
        page.fill(0);
        for v in 0..32 {
            page[v * VCPU_INFO_SIZE + 1] = 1;
        }
    }
}

/// A domain: an isolated guest with its memory and vCPUs.
#[derive(Debug)]
pub struct Domain {
    /// Domain ID.
    pub id: DomId,
    /// Human-readable name (for reports).
    pub name: String,
    /// Whether the domain may use privileged operations (dom0).
    pub privileged: bool,
    /// Lifecycle state.
    pub state: DomainState,
    /// Why the domain crashed, when the hypervisor crashed it.
    pub crash_message: Option<String>,
    /// `SCHEDOP_shutdown_code`: the reason to report at the next shutdown.
    pub shutdown_code: Option<u8>,
    /// The domain's RAM (Xen's `page_list`): its frames, linked through
    /// the frame table, whose owner fields say they are this domain's. Its
    /// length is [`Domain::tot_pages`]. A PV domain keeps its own p2m; the
    /// hypervisor needs no pfn order.
    pub page_list: PageList,
    /// The most pages the domain may own (Xen's `max_pages`); the
    /// toolstack may lower it below `tot_pages`, which then only stops
    /// the domain from growing.
    pub max_pages: u64,
    /// The shared_info page (hypervisor-owned, mapped by the guest).
    pub shared_info: Mfn,
    /// Enabled `VMASST_TYPE_*` bits.
    pub vm_assist: u64,
    /// The domain's console output stream.
    pub console: GuestConsole,
    /// The vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Event channels.
    pub evtchn: EvtchnTable,
    /// The CPUs that may cache this domain's translations (Xen's
    /// `dirty_cpumask`): where its flushes go. Kept by
    /// [`crate::flush::note_loaded`].
    pub dirty_cpus: CpuMask,
    /// Held off every CPU (one pause of [`Self::pause_count`] more) while
    /// a toolstack operation waits for its vCPUs that run on other CPUs to
    /// stop and save their state (Xen's `vcpu_sleep_sync` under a pause):
    /// see `domctl`'s vCPU sync.
    pub sync_pause: bool,
    /// A domU's console ring page and the port it raises to have it drained.
    pub console_ring: Option<(Mfn, u32)>,
    /// Grant table (v1) and the grant mappings the domain holds.
    pub gnttab: GrantTable,
    /// The virtual PIT channel 2 (ports 0x42, 0x43, 0x61) of a privileged
    /// domain.
    pub pit: crate::pit::Pit,
    /// Toolstack pauses (`XEN_DOMCTL_pausedomain`; a created domain starts
    /// with one, its builder's unpause starts it). At most 255, as in Xen.
    pub pause_count: u8,
    /// The toolstack's UUID for the domain (`xen_domain_handle_t`).
    pub handle: [u8; 16],
    /// The most vCPUs the domain may have (`createdomain.max_vcpus`).
    pub max_vcpus: u32,
    /// Whether its vCPUs exist (`XEN_DOMCTL_max_vcpus`, or built at boot),
    /// so that `setvcpucontext` may give one a context.
    pub vcpus_allocated: bool,
    /// Whether [`crate::lifecycle::destroy`] has run for this domain
    /// (set once its state is [`DomainState::Dying`]).
    pub torn_down: bool,
    /// Whether a `destroydomain` call has returned 0 for this domain (its
    /// teardown done). Only then may its slot go: Xen frees a domain when
    /// the last reference goes, and the destroying call holds one until it
    /// returns, so a continued call always finds the domain it destroys.
    pub destroy_acked: bool,
    /// The PCI configuration address an unprivileged domain last wrote to
    /// port 0xcf8 (Xen latches it per domain; no device answers).
    pub pci_cf8: u32,
    /// The CMOS register index a privileged domain last wrote to port
    /// 0x70 (Xen's `cmos_idx`): its accesses to port 0x71 reach that
    /// register of the real CMOS through the hypervisor, which writes the
    /// index (NMI-disable bit clear) before each one.
    pub cmos_idx: u8,
    /// Its PIRQ numbers: how many, which it reserved, its EOI bitmap page.
    pub pirqs: crate::pirq::Pirqs,
    /// What the toolstack set while it built the domain and reads back.
    pub tools: ToolstackSettings,
}

/// Settings the toolstack makes with `domctl` that xenish keeps and
/// reports, but that change nothing on one CPU and one node (affinities),
/// or that xenish does not vary (the TSC mode: the TSC is never emulated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolstackSettings {
    /// Per vCPU: hard and soft CPU affinity (bit n = CPU n).
    pub vcpu_affinity: Vec<(u64, u64)>,
    /// NUMA node affinity (bit n = node n).
    pub node_affinity: u64,
    /// `tsc_mode` as `XEN_DOMCTL_settscinfo` set it.
    pub tsc_mode: u32,
    /// The TSC incarnation (`settscinfo`'s, plus one; 0 before).
    pub tsc_incarnation: u32,
    /// `XEN_DOMCTL_settimeoffset`: seconds added to the domain's wallclock.
    pub time_offset_s: i64,
    /// Whether the toolstack has unpaused the domain once (Xen's
    /// `creation_finished`): its CPU policy is fixed from then on.
    pub creation_finished: bool,
    /// The E820 map `XENMEM_set_memory_map` gave it (20-byte entries).
    pub memory_map: Option<Vec<u8>>,
    /// `XENMEM_claim_pages`: the size (pages) the domain claimed to grow
    /// to, 0 without a claim. What it still lacks of it is outstanding.
    pub claim_pages: u64,
}

impl Default for ToolstackSettings {
    fn default() -> Self {
        ToolstackSettings {
            vcpu_affinity: Vec::new(),
            node_affinity: u64::MAX,
            tsc_mode: 0,
            tsc_incarnation: 0,
            time_offset_s: 0,
            creation_finished: true,
            memory_map: None,
            claim_pages: 0,
        }
    }
}

impl ToolstackSettings {
    /// vCPU `vcpu`'s (hard, soft) affinity: all CPUs unless set.
    pub fn affinity(&self, vcpu: usize) -> (u64, u64) {
        self.vcpu_affinity.get(vcpu).copied().unwrap_or((u64::MAX, u64::MAX))
    }

    /// Whether vCPU `vcpu`'s hard affinity lets it run on `cpu`.
    pub fn may_run_on(&self, vcpu: usize, cpu: usize) -> bool {
        let hard = self.vcpu_affinity.get(vcpu).map_or(u64::MAX, |a| a.0);
        cpu < 64 && hard & (1 << cpu) != 0
    }
}

impl Domain {
    /// A running domain without memory or vCPUs yet: its ID, name,
    /// privilege and the hypervisor frame that is its shared_info page.
    pub fn new(id: DomId, name: &str, privileged: bool, shared_info: Mfn) -> Self {
        Domain {
            id,
            name: String::from(name),
            privileged,
            state: DomainState::Running,
            crash_message: None,
            shutdown_code: None,
            page_list: PageList::default(),
            max_pages: 0,
            shared_info,
            vm_assist: 0,
            // Xen never limits the control domain's console_io writes.
            console: if privileged { GuestConsole::unlimited(id) } else { GuestConsole::rate_limited(id) },
            vcpus: Vec::new(),
            evtchn: EvtchnTable::new(1),
            dirty_cpus: CpuMask::EMPTY,
            sync_pause: false,
            console_ring: None,
            gnttab: GrantTable::new(),
            pit: crate::pit::Pit::new(),
            pause_count: 0,
            handle: [0; 16],
            max_vcpus: 1,
            vcpus_allocated: true,
            torn_down: false,
            destroy_acked: false,
            pci_cf8: 0,
            cmos_idx: 0,
            pirqs: crate::pirq::Pirqs::new(privileged),
            tools: ToolstackSettings::default(),
        }
    }

    /// The pages the domain owns (Xen's `tot_pages`).
    pub fn tot_pages(&self) -> u64 {
        self.page_list.len()
    }

    /// Pages claimed and not yet allocated (Xen's `outstanding_pages`).
    pub fn outstanding_pages(&self) -> u64 {
        self.tools.claim_pages.saturating_sub(self.tot_pages())
    }

    /// Where vCPU `vcpu`'s `vcpu_info` is: the frame and byte offset the
    /// guest registered, else its slot in the shared_info page.
    pub fn vcpu_info(&self, vcpu: usize) -> (Mfn, usize) {
        match self.vcpus.get(vcpu) {
            Some(v) => v.info_location(self.shared_info, vcpu),
            None => legacy_vcpu_info(self.shared_info, vcpu),
        }
    }

    /// Creates vCPUs `vcpus.len()..max_vcpus`, down and uninitialised (Xen's
    /// `vcpu_create` for each) at system time `now_ns`, with room for
    /// their per-vCPU VIRQs.
    pub fn create_offline_vcpus(&mut self, fpu_size: usize, now_ns: u64) {
        for id in self.vcpus.len() as u32..self.max_vcpus {
            self.vcpus.push(Vcpu::offline(id, fpu_size, now_ns));
        }
        self.evtchn.set_nr_vcpus(self.vcpus.len());
    }

    /// How many of its vCPUs are up.
    pub fn online_vcpus(&self) -> usize {
        self.vcpus.iter().filter(|v| !v.down).count()
    }

    /// Whether the domain may map `mfn` with its own page tables: its RAM
    /// (as the frame table `ft` records it), its shared_info page, or a
    /// frame of its grant table (table or status frame).
    #[cfg(test)]
    pub fn may_map(&self, ft: &crate::mm::frame_table::FrameTable, mfn: Mfn) -> bool {
        ft.is_owned_by(mfn, self.id) || mfn == self.shared_info || self.gnttab.shared_frames().any(|m| m == mfn)
    }

    /// Whether the domain's vCPUs may run: alive and not paused.
    pub fn is_running(&self) -> bool {
        self.state == DomainState::Running && self.pause_count == 0
    }

    /// Whether the domain is alive (running or paused, not shut down).
    pub fn is_alive(&self) -> bool {
        self.state == DomainState::Running
    }

    /// Whether the domain exists for the toolstack: not yet dead (a dying
    /// domain still holds its ID).
    pub fn exists(&self) -> bool {
        !matches!(self.state, DomainState::Dead(_))
    }

    /// Whether the domain has been destroyed (dying or dead).
    pub fn is_destroyed(&self) -> bool {
        matches!(self.state, DomainState::Dying(_) | DomainState::Dead(_))
    }

    /// How it shut down, if it did (before or without being destroyed).
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        match self.state {
            DomainState::Running => None,
            DomainState::Shutdown(r) => Some(r),
            DomainState::Dying(r) | DomainState::Dead(r) => r,
        }
    }

    /// Shuts the domain down for `reason` (no effect if already down).
    pub fn shutdown(&mut self, reason: ShutdownReason) {
        if self.is_alive() {
            self.state = DomainState::Shutdown(reason);
        }
    }

    /// Crashes the domain, recording why.
    pub fn crash(&mut self, message: String) {
        if self.is_alive() {
            self.crash_message = Some(message);
            self.state = DomainState::Shutdown(ShutdownReason::Crash);
        }
    }
}
