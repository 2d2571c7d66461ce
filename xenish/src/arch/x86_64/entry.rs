//! Entry stubs: exceptions and `syscall` land here, save a [`TrapFrame`] at
//! the top of the running CPU's hypervisor stack, call into Rust, and return
//! to whatever context the frame then describes with `iretq`. `syscall`
//! enters through the CPU's own stub in [`super::percpu`], which has
//! switched to that CPU's stack already. With XPTI ([`super::xpti`]) the
//! stubs switch from the CPU's root table to the vCPU's real L4 right
//! after saving the registers, and back just before `iretq` to a guest;
//! this text is in `.text.entry`, the only text the root tables map.

use core::arch::global_asm;

use crate::regs::{TrapFrame, TRAP_FRAME_SIZE, VECTOR_SYSCALL};

macro_rules! exception_stub {
    ($name:literal, $vector:literal, err) => {
        concat!(".balign 16\n", $name, ":\n", "push ", $vector, "\n", "jmp trap_common\n")
    };
    ($name:literal, $vector:literal) => {
        concat!(".balign 16\n", $name, ":\n", "push 0\n", "push ", $vector, "\n", "jmp trap_common\n")
    };
}

global_asm!(
    ".section .text.entry, \"ax\"",
    exception_stub!("exc0", 0),
    exception_stub!("exc1", 1),
    exception_stub!("exc2", 2),
    exception_stub!("exc3", 3),
    exception_stub!("exc4", 4),
    exception_stub!("exc5", 5),
    exception_stub!("exc6", 6),
    exception_stub!("exc7", 7),
    exception_stub!("exc8", 8, err),
    exception_stub!("exc9", 9),
    exception_stub!("exc10", 10, err),
    exception_stub!("exc11", 11, err),
    exception_stub!("exc12", 12, err),
    exception_stub!("exc13", 13, err),
    exception_stub!("exc14", 14, err),
    exception_stub!("exc15", 15),
    exception_stub!("exc16", 16),
    exception_stub!("exc17", 17, err),
    exception_stub!("exc18", 18),
    exception_stub!("exc19", 19),
    exception_stub!("exc20", 20),
    exception_stub!("exc21", 21, err),
    exception_stub!("exc22", 22),
    exception_stub!("exc23", 23),
    exception_stub!("exc24", 24),
    exception_stub!("exc25", 25),
    exception_stub!("exc26", 26),
    exception_stub!("exc27", 27),
    exception_stub!("exc28", 28),
    exception_stub!("exc29", 29, err),
    exception_stub!("exc30", 30, err),
    exception_stub!("exc31", 31),
    exception_stub!("irq_timer", 0xf0),
    exception_stub!("irq_event_check", 0xfc),
    exception_stub!("irq_invalidate", 0xfd),
    // Device interrupts, vectors 0x30..=0xef: one 16-byte stub each.
    r#"
.balign 16
.globl irq_device_stubs
irq_device_stubs:
.set irq_vec, 0x30
.rept 0xc0
.balign 16
push 0
push offset irq_vec
jmp trap_common
.set irq_vec, irq_vec + 1
.endr
"#,
    r#"
.balign 16
irq_spurious:
    iretq
"#,
    r#"
.macro SAVE_GPRS
    push rdi
    push rsi
    push rdx
    push rcx
    push rax
    push r8
    push r9
    push r10
    push r11
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
.endm

/* XPTI, on every entry once the registers are saved: if this CPU runs a
   guest on its root table (CpuInfo.xen_cr3 != 0), load the real L4 first
   and clear xen_cr3. r12 keeps the CR3 found (0 if none was switched) and
   r13 the xen_cr3 value, for an NMI or #MC that interrupted the exit path
   after its switch (below). Only the stack block and this text are used
   before the switch: the root table maps both. */
.macro XPTI_ENTER
    mov rax, rsp
    or rax, {stack_mask}
    sub rax, {info_size} - 1
    xor r12d, r12d
    mov r13, [rax + {xen_cr3}]
    test r13, r13
    jz 2f
    mov r12, cr3
    mov cr3, r13
    mov qword ptr [rax + {xen_cr3}], 0
2:
.endm

trap_common:
    cld
    SAVE_GPRS
    XPTI_ENTER
    mov rdi, rsp
    call {trap}
    /* Back to hypervisor context that ran on the root table (only an IST
       entry can interrupt the exit path between its CR3 switch and iretq):
       restore what it had, as Xen's restore_all_xen does. */
    test r12, r12
    jz return_via_iret
    test byte ptr [rsp + {frame_cs}], 3
    jnz return_via_iret
    mov rax, rsp
    or rax, {stack_mask}
    sub rax, {info_size} - 1
    mov [rax + {xen_cr3}], r13
    mov cr3, r12
    jmp return_via_iret

/* `syscall` from 32-bit code (MSR_CSTAR), after the CPU's stub put the
   guest rsp at the stack top (the CpuInfo's first word) and rsp there:
   the frame says FLAT_RING3_CS32, as Xen's cstar_enter does, whatever the
   guest's selector was. (`push [rsp + 8]` computes its address before
   rsp moves: it reads the slot at the stack top.) */
.balign 16
.globl cstar_common
cstar_common:
    push {ring3_ds}
    push [rsp + 8]
    push r11
    push {ring3_cs32}
    jmp syscall_common

/* `syscall` from 64-bit code (MSR_LSTAR), likewise. */
.balign 16
.globl lstar_common
lstar_common:
    push {ring3_ds}
    push [rsp + 8]
    push r11
    push {ring3_cs}
syscall_common:
    push rcx
    push 0
    push {syscall_vector}
    cld
    SAVE_GPRS
    XPTI_ENTER
    mov rdi, rsp
    call {syscall}
    jmp return_via_iret

/* Also the first entry into a guest: rdi points at a TrapFrame. Returning
   to a guest (ring 3) with XPTI: record the real L4 in xen_cr3 for the
   next entry, then load the root table prepare_exit chose (pv_cr3; 0 for
   none). From here to iretq only this text and the stack are touched. */
.globl return_via_iret
return_via_iret:
    test byte ptr [rsp + {frame_cs}], 3
    jz 3f
    mov rax, rsp
    or rax, {stack_mask}
    sub rax, {info_size} - 1
    mov rcx, [rax + {pv_cr3}]
    test rcx, rcx
    jz 3f
    mov rdx, cr3
    mov [rax + {xen_cr3}], rdx
    mov cr3, rcx
3:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r11
    pop r10
    pop r9
    pop r8
    pop rax
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    add rsp, 16
    iretq

.globl enter_frame
enter_frame:
    mov rsp, rdi
    jmp return_via_iret

    .section .rodata
    .balign 8
.globl exception_stub_table
exception_stub_table:
    .quad exc0, exc1, exc2, exc3, exc4, exc5, exc6, exc7
    .quad exc8, exc9, exc10, exc11, exc12, exc13, exc14, exc15
    .quad exc16, exc17, exc18, exc19, exc20, exc21, exc22, exc23
    .quad exc24, exc25, exc26, exc27, exc28, exc29, exc30, exc31
.globl interrupt_stub_table
interrupt_stub_table:
    .quad irq_timer, irq_spurious
.globl ipi_stub_table
ipi_stub_table:
    .quad irq_event_check, irq_invalidate
"#,
    trap = sym trap_entry,
    syscall = sym syscall_entry_rust,
    ring3_ds = const super::gdt::RING3_DS as u64,
    ring3_cs = const super::gdt::RING3_CS64 as u64,
    ring3_cs32 = const super::gdt::RING3_CS32 as u64,
    syscall_vector = const VECTOR_SYSCALL,
    stack_mask = const super::percpu::STACK_SIZE - 1,
    info_size = const super::percpu::CPU_INFO_SIZE,
    xen_cr3 = const super::percpu::CPU_INFO_XEN_CR3,
    pv_cr3 = const super::percpu::CPU_INFO_PV_CR3,
    frame_cs = const core::mem::offset_of!(TrapFrame, cs),
);

extern "C" {
    static exception_stub_table: [u64; 32];
    static interrupt_stub_table: [u64; 2];
    static ipi_stub_table: [u64; 2];
    static irq_device_stubs: [[u8; DEVICE_STUB_SIZE]; 0xc0];
    fn enter_frame(frame: *const TrapFrame) -> !;
}

/// Addresses of the 32 exception stubs, for the IDT.
pub fn exception_stubs() -> &'static [u64; 32] {
    // SAFETY: the table is immutable data emitted above.
    unsafe { &*core::ptr::addr_of!(exception_stub_table) }
}

/// Addresses of the APIC timer and spurious-interrupt stubs.
pub fn interrupt_stubs() -> &'static [u64; 2] {
    // SAFETY: the table is immutable data emitted above.
    unsafe { &*core::ptr::addr_of!(interrupt_stub_table) }
}

/// Addresses of the event-check and TLB-shootdown IPI stubs.
pub fn ipi_stubs() -> &'static [u64; 2] {
    // SAFETY: the table is immutable data emitted above.
    unsafe { &*core::ptr::addr_of!(ipi_stub_table) }
}

/// Bytes between consecutive device-interrupt stubs.
pub const DEVICE_STUB_SIZE: usize = 16;

/// Address of the stub of device vector `0x30`; vector `v`'s is
/// [`DEVICE_STUB_SIZE`] × `(v - 0x30)` bytes further.
pub fn device_stubs() -> u64 {
    core::ptr::addr_of!(irq_device_stubs) as u64
}

extern "C" fn trap_entry(frame: &mut TrapFrame) {
    super::trap::handle(frame);
    if frame.cs & 3 == 3 {
        super::xpti::prepare_exit();
    }
}

extern "C" fn syscall_entry_rust(frame: &mut TrapFrame) {
    super::trap::handle_syscall(frame);
    if frame.cs & 3 == 3 {
        super::xpti::prepare_exit();
    }
}

/// Discards the current stack and resumes the context in `frame`, which is
/// copied to the top of the running CPU's hypervisor stack first.
pub fn resume(frame: &TrapFrame) -> ! {
    if frame.cs & 3 == 3 {
        super::xpti::prepare_exit();
    }
    let top = super::percpu::stack_top(super::percpu::cpu_index());
    // SAFETY: `top` is the top of this CPU's primary stack (its TSS rsp0),
    // which has room for a frame; nothing below it is live any more.
    unsafe {
        let slot = (top as usize - TRAP_FRAME_SIZE) as *mut TrapFrame;
        slot.write(*frame);
        enter_frame(slot)
    }
}
