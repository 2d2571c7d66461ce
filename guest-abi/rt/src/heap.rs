//! The kernel's heap: a global allocator over memory the kernel hands it
//! once ([`init`]), typically a static array in its image.
//!
//! Kernels that never call [`init`] never allocate (the split-driver
//! engines of `pv-drivers`, which guest-rt links, are the users); an
//! allocation before `init`, or once the heap is full, fails, which
//! aborts the kernel through the panic handler. Only for bare-metal
//! builds: host builds keep std's allocator.

#[cfg(target_os = "none")]
use linked_list_allocator::LockedHeap;

#[cfg(target_os = "none")]
#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Gives `memory` to the heap (once; later calls are ignored).
#[cfg(target_os = "none")]
pub fn init(memory: &'static mut [u8]) {
    let mut heap = ALLOCATOR.lock();
    if heap.size() == 0 {
        // SAFETY: `memory` is exclusively borrowed for the rest of the
        // program and handed to the allocator alone.
        unsafe { heap.init(memory.as_mut_ptr(), memory.len()) };
    }
}

/// Host builds use std's allocator; nothing to do.
#[cfg(not(target_os = "none"))]
pub fn init(_memory: &'static mut [u8]) {}
