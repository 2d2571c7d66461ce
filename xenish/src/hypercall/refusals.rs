//! The log of what xenish does not implement: each hypercall, or each
//! sub-operation of one (a `sysctl`, `domctl`, `memory_op`, ... command),
//! that a guest asked for and got `-ENOSYS`, named on the console the first
//! time a domain asks, so that the next gap a toolstack or kernel runs
//! into is visible. Rate limited: each (hypercall, sub-op) is reported
//! once, and at most [`MAX_REPORTED`] of them, then one line saying that
//! further ones are not.

use guest_abi::errno::XenError;
use spin::Mutex;

use crate::domain::DomId;

/// The most distinct refusals reported.
pub const MAX_REPORTED: usize = 128;

/// What has been reported.
pub struct Reported {
    seen: [(u32, u64); MAX_REPORTED],
    len: usize,
    overflowed: bool,
}

impl Reported {
    /// Nothing reported yet.
    pub const fn new() -> Self {
        Reported { seen: [(0, 0); MAX_REPORTED], len: 0, overflowed: false }
    }

    /// Whether (hypercall `nr`, sub-op `sub`) is to be reported now, and
    /// records it; `Some(false)` the first time the table is full (to say
    /// so once), `None` when there is nothing to print.
    pub fn first_time(&mut self, nr: u32, sub: u64) -> Option<bool> {
        let seen = self.seen.get(..self.len).unwrap_or(&[]);
        if seen.contains(&(nr, sub)) {
            return None;
        }
        match self.seen.get_mut(self.len) {
            Some(slot) => {
                *slot = (nr, sub);
                self.len += 1;
                Some(true)
            }
            None if !self.overflowed => {
                self.overflowed = true;
                Some(false)
            }
            None => None,
        }
    }
}

impl Default for Reported {
    fn default() -> Self {
        Self::new()
    }
}

static REPORTED: Mutex<Reported> = Mutex::new(Reported::new());

/// Xen's name of hypercall `nr` (`__HYPERVISOR_*`), for the log.
pub fn hypercall_name(nr: u32) -> &'static str {
    const NAMES: [&str; 43] = [
        "set_trap_table",
        "mmu_update",
        "set_gdt",
        "stack_switch",
        "set_callbacks",
        "fpu_taskswitch",
        "sched_op_compat",
        "platform_op",
        "set_debugreg",
        "get_debugreg",
        "update_descriptor",
        "11",
        "memory_op",
        "multicall",
        "update_va_mapping",
        "set_timer_op",
        "event_channel_op_compat",
        "xen_version",
        "console_io",
        "physdev_op_compat",
        "grant_table_op",
        "vm_assist",
        "update_va_mapping_otherdomain",
        "iret",
        "vcpu_op",
        "set_segment_base",
        "mmuext_op",
        "xsm_op",
        "nmi_op",
        "sched_op",
        "callback_op",
        "xenoprof_op",
        "event_channel_op",
        "physdev_op",
        "hvm_op",
        "sysctl",
        "domctl",
        "kexec_op",
        "tmem_op",
        "argo_op",
        "xenpmu_op",
        "dm_op",
        "hypfs_op",
    ];
    match nr {
        // __HYPERVISOR_arch_0 on x86.
        48 => "mca",
        _ => usize::try_from(nr).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("unknown"),
    }
}

/// Reports that domain `domid` asked for hypercall `nr` (sub-op `sub`, if
/// the hypercall has them) and that xenish does not implement it; returns
/// the errno to answer, `-ENOSYS`.
pub fn not_implemented(domid: DomId, nr: u32, sub: Option<u64>) -> XenError {
    let first = REPORTED.lock().first_time(nr, sub.unwrap_or(u64::MAX));
    let name = hypercall_name(nr);
    match (first, sub) {
        (Some(true), Some(sub)) => {
            crate::printk!("xenish: d{domid}: {name} (hypercall {nr}) sub-op {sub} is not implemented: -ENOSYS")
        }
        (Some(true), None) => crate::printk!("xenish: d{domid}: hypercall {nr} ({name}) is not implemented: -ENOSYS"),
        (Some(false), _) => crate::printk!("xenish: further unimplemented hypercalls are not reported"),
        (None, _) => {}
    }
    XenError::Enosys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_reported_once_and_the_table_is_bounded() {
        let mut r = Reported::new();
        assert_eq!(r.first_time(35, 18), Some(true));
        assert_eq!(r.first_time(35, 18), None, "the same one again");
        assert_eq!(r.first_time(35, 4), Some(true), "another sub-op");
        assert_eq!(r.first_time(36, 18), Some(true), "another hypercall");
        for i in 0..MAX_REPORTED as u64 {
            r.first_time(7, 100 + i);
        }
        assert_eq!(r.first_time(8, 0), None, "full: said once, then silent");
        assert_eq!(r.first_time(35, 18), None);
    }

    #[test]
    fn names_follow_xens_table() {
        assert_eq!(hypercall_name(35), "sysctl");
        assert_eq!(hypercall_name(7), "platform_op");
        assert_eq!(hypercall_name(42), "hypfs_op");
        assert_eq!(hypercall_name(48), "mca");
        assert_eq!(hypercall_name(99), "unknown");
    }
}
