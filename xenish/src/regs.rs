//! The register frame saved when a guest (or the hypervisor) enters the
//! hypervisor: what every trap, interrupt and hypercall handler works on.

/// Marker in [`TrapFrame::vector`] for a `syscall` entry (not an exception).
pub const VECTOR_SYSCALL: u64 = 0x100;

/// General-purpose registers plus the hardware interrupt frame, in the order
/// the entry stubs push them (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // register names speak for themselves
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Exception vector, or [`VECTOR_SYSCALL`].
    pub vector: u64,
    /// The exception's error code (0 when it has none).
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// General register `index` in the instruction encoding's order (`rax,
    /// rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15`; only the low 4 bits
    /// count).
    pub fn gpr_mut(&mut self, index: u8) -> &mut u64 {
        match index & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        }
    }
}

/// Size of [`TrapFrame`] in bytes (the entry stubs depend on it).
pub const TRAP_FRAME_SIZE: usize = 22 * 8;
const _: () = assert!(core::mem::size_of::<TrapFrame>() == TRAP_FRAME_SIZE);

impl TrapFrame {
    /// Whether the frame was saved from ring 3 (a guest), not the hypervisor.
    pub fn from_guest(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The hypercall arguments in Xen's x86_64 convention (rdi, rsi, rdx, r10, r8).
    pub fn hypercall_args(&self) -> [u64; 5] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8]
    }
}
