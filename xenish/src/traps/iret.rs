//! The `iret` hypercall, the way back from a bounce frame
//! (X:`xen/arch/x86/pv/iret.c`), and the check of the frame a return to
//! the guest is about to use.

use super::*;

/// The `iret` hypercall: restore the context saved in the `iret_context` at
/// the guest's stack pointer (`rax, r11, rcx, flags, rip, cs, rflags, rsp, ss`).
/// A CS with RPL 3 returns to guest user mode (which needs a user page
/// table); RPL 0 stays in the kernel. CS and SS are loaded with RPL 3, as
/// Xen's `do_iret` forces, so a 64-bit PV guest may return to 32-bit code
/// (compatibility mode: Xen's `FLAT_RING3_CS32`, or a 32-bit code segment
/// of its own GDT or LDT).
///
/// Where the CPU's return to the guest would fault (a selector that does
/// not load, a non-canonical `rip`, a `rip` past a 32-bit segment's limit:
/// [`crate::descriptors::iret_target_ok`]), the guest's failsafe callback
/// is entered instead, as in Xen, with the data selectors it is running
/// with (`selectors`: `ds, es, fs, gs`, read only then: every system call
/// and exception returns through here).
pub fn iret(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
    selectors: impl FnOnce() -> [u16; 4],
) -> TrapDecision {
    let f = match IretFrame::read(dom, vcpu, frame, mem) {
        Ok(f) => f,
        Err(why) => return TrapDecision::Crash(why),
    };
    let loads = f.loads(dom, vcpu, mem);
    f.load_into(frame);
    let architectural_iopl = dom.vm_assist & (1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
    if let Some(v) = dom.vcpus.get_mut(vcpu) {
        v.set_kernel_mode(!f.to_user());
        // Xen's async_exception_cleanup: an NMI handler's iret unmasks NMIs.
        v.nmi_masked = false;
        // With architectural IOPL the virtual IOPL is what the iret loads.
        if architectural_iopl {
            v.iopl = f.iopl();
        }
    }
    upcall_mask(dom, vcpu, mem, Some(f.rflags & EFLAGS_IF == 0));
    if !loads {
        let (cs, ss, rip) = (f.cs as u16 | 3, f.ss as u16 | 3, f.rip);
        let why = if is_canonical(rip) {
            format!("iret to {cs:#x}:{rip:#x} (ss {ss:#x}) faults")
        } else {
            format!("iret to a non-canonical rip {rip:#x}")
        };
        return failsafe(dom, vcpu, frame, selectors(), &why, mem);
    }
    TrapDecision::Resume
}

/// [`iret`] for the fast path, which may change only guest memory, the
/// frame and the calling vCPU's mode (the domain is shared with other
/// CPUs): carried out, returning `true`, only when it is an `iret` from
/// guest kernel mode, to kernel or to user mode, that changes nothing else
/// in the vCPU (NMIs not masked, the virtual IOPL as it was) and whose
/// return loads. A return to user mode puts the vCPU in user mode
/// ([`crate::domain::Vcpu::set_kernel_mode_running`]): the caller loads the
/// user table. Otherwise nothing is changed and `false` says: take
/// [`iret`] on the slow path (which also crashes the guest for a frame it
/// cannot read, or enters its failsafe callback for one that does not load).
pub fn iret_fast(dom: &Domain, vcpu: usize, frame: &mut TrapFrame, mem: &mut dyn MachineMemory) -> bool {
    let Some(v) = dom.vcpus.get(vcpu) else { return false };
    let Some(f) = IretFrame::read_fast(v, frame, mem) else { return false };
    let architectural_iopl = dom.vm_assist & (1 << guest_abi::xen::VMASST_TYPE_ARCHITECTURAL_IOPL) != 0;
    if !v.kernel_mode() || v.nmi_masked || (architectural_iopl && v.iopl != f.iopl()) {
        return false;
    }
    if !f.loads(dom, vcpu, mem) {
        return false;
    }
    f.load_into(frame);
    upcall_mask(dom, vcpu, mem, Some(f.rflags & EFLAGS_IF == 0));
    if f.to_user() {
        // `read` refused a return to user mode without user tables.
        v.set_kernel_mode_running(false);
    }
    true
}

/// The `iret_context` a guest's `iret` hypercall returns through.
struct IretFrame {
    rax: u64,
    r11: u64,
    rcx: u64,
    flags: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

impl IretFrame {
    /// Reads the context at the guest's stack pointer; an error (why the
    /// guest is crashed) if it cannot be read or cannot be returned to.
    fn read(dom: &Domain, vcpu: usize, frame: &TrapFrame, mem: &mut dyn MachineMemory) -> Result<IretFrame, String> {
        let Some(v) = dom.vcpus.get(vcpu) else {
            return Err(String::from("no such vCPU"));
        };
        let Some(f) = Self::fetch(v, frame, mem, false) else {
            return Err(format!("iret: unreadable frame at {:#x}", frame.rsp));
        };
        if f.to_user() && v.user_l4.is_none() {
            return Err(String::from("iret: switching to user mode with no user page tables"));
        }
        if !is_canonical(f.rsp) {
            // Xen's iretq would load it, and the guest's next stack access
            // would fault with no stack to bounce that fault to.
            return Err(format!("iret: non-canonical rsp {:#x}", f.rsp));
        }
        Ok(f)
    }

    /// [`Self::read`] for the fast path: the context, or `None` for
    /// everything `read` refuses (the same checks, without the reasons).
    #[inline(always)]
    fn read_fast(v: &Vcpu, frame: &TrapFrame, mem: &mut dyn MachineMemory) -> Option<IretFrame> {
        let f = Self::fetch(v, frame, mem, true)?;
        (!(f.to_user() && v.user_l4.is_none()) && is_canonical(f.rsp)).then_some(f)
    }

    /// The nine words at the guest's stack pointer, read through its
    /// kernel table, or `None` if they cannot be read; `direct` for the
    /// fast path, which may read through the loaded tables
    /// ([`GuestMemory::copy_from_loaded`]).
    #[inline(always)]
    fn fetch(v: &Vcpu, frame: &TrapFrame, mem: &mut dyn MachineMemory, direct: bool) -> Option<IretFrame> {
        let mut words = [0u64; 9];
        // The words as the guest wrote them (x86 is little-endian).
        let bytes = zerocopy::IntoBytes::as_mut_bytes(&mut words);
        let g = GuestMemory::new(mem, v.kernel_l4);
        if direct { g.copy_from_loaded(frame.rsp, bytes) } else { g.copy_from(frame.rsp, bytes) }.ok()?;
        let [rax, r11, rcx, flags, rip, cs, rflags, rsp, ss] = words;
        Some(IretFrame { rax, r11, rcx, flags, rip, cs, rflags, rsp, ss })
    }

    /// A CS with RPL 3 returns to guest user mode.
    fn to_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The IOPL the saved flags hold.
    fn iopl(&self) -> u8 {
        ((self.rflags & EFLAGS_IOPL) >> 12) as u8
    }

    /// Whether the CPU's return to the context would load (its CS and SS
    /// with RPL 3, as they will be loaded).
    fn loads(&self, dom: &Domain, vcpu: usize, mem: &dyn MachineMemory) -> bool {
        let Some(v) = dom.vcpus.get(vcpu) else { return false };
        let gdt = |i: usize| crate::descriptors::gdt_entry(&v.gdt_frames, mem, i);
        let ldt = |i: usize| crate::descriptors::ldt_entry(&v.ldt_frames, v.ldt_ents, mem, i);
        crate::descriptors::iret_target_ok(self.cs as u16 | 3, self.ss as u16 | 3, self.rip, &gdt, &ldt)
    }

    /// Loads the context into `frame`, as Xen's `do_iret`.
    fn load_into(&self, frame: &mut TrapFrame) {
        const VGCF_IN_SYSCALL: u64 = 1 << 8;
        frame.rax = self.rax;
        if self.flags & VGCF_IN_SYSCALL == 0 {
            frame.r11 = self.r11;
            frame.rcx = self.rcx;
        }
        frame.rip = self.rip;
        frame.rsp = self.rsp;
        (frame.cs, frame.ss) = (u64::from(self.cs as u16 | 3), u64::from(self.ss as u16 | 3));
        frame.rflags = (self.rflags & !(EFLAGS_IOPL | EFLAGS_VM | EFLAGS_NT)) | EFLAGS_IF;
    }
}

/// After a hypercall changed the calling vCPU's descriptor tables
/// (`update_descriptor`, `set_gdt`, `MMUEXT_SET_LDT`): whether the frame
/// it returns to still loads. A code or stack segment of its own that it
/// changed or dropped would make the CPU's return fault; Xen's `iretq`
/// then enters the guest's failsafe callback, and so does this.
pub fn recheck_return(
    dom: &mut Domain,
    vcpu: usize,
    frame: &mut TrapFrame,
    mem: &mut dyn MachineMemory,
    selectors: [u16; 4],
) -> TrapDecision {
    let Some(v) = dom.vcpus.get(vcpu) else { return TrapDecision::Resume };
    let loads = {
        let gdt = |i: usize| crate::descriptors::gdt_entry(&v.gdt_frames, &*mem, i);
        let ldt = |i: usize| crate::descriptors::ldt_entry(&v.ldt_frames, v.ldt_ents, &*mem, i);
        crate::descriptors::iret_target_ok(frame.cs as u16, frame.ss as u16, frame.rip, &gdt, &ldt)
    };
    if loads {
        return TrapDecision::Resume;
    }
    let why = format!(
        "the return to {:#x}:{:#x} (ss {:#x}) faults after its descriptors changed",
        frame.cs, frame.rip, frame.ss
    );
    failsafe(dom, vcpu, frame, selectors, &why, mem)
}
