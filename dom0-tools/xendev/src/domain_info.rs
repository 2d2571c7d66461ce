//! [`DomainInfo`]: a domain's state as `XEN_DOMCTL_getdomaininfo` and
//! `XEN_SYSCTL_getdomaininfolist` report it, with Xen's flag decoding.
//!
//! Semantics (Xen 4.17 `xen/common/domctl.c getdomaininfo`): `flags` holds
//! `XEN_DOMINF_*` bits and the shutdown code in bits 16..24; while no
//! shutdown code is set (`SHUTDOWN_CODE_INVALID`, ~0u) bits 16..31 are all
//! ones, so the reason is only meaningful with `shutdown()` set.

use guest_abi::domctl::{
    XenDomctlGetdomaininfo, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_HVM_GUEST, XEN_DOMINF_PAUSED,
    XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNMASK, XEN_DOMINF_SHUTDOWNSHIFT,
};
use guest_abi::sched::SHUTDOWN_CRASH;

/// One domain's state (`struct xen_domctl_getdomaininfo`, the fields a
/// toolstack uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain ID.
    pub domid: u16,
    /// `XEN_DOMINF_*` flags, shutdown code in bits 16..24.
    pub flags: u32,
    /// Frames the domain owns.
    pub tot_pages: u64,
    /// Its memory limit in frames.
    pub max_pages: u64,
    /// The frame of its shared_info page (an MFN for a PV domain).
    pub shared_info_frame: u64,
    /// Nanoseconds its vCPUs have run.
    pub cpu_time: u64,
    /// vCPUs online.
    pub nr_online_vcpus: u32,
    /// Highest vCPU ID (`XEN_INVALID_MAX_VCPU_ID` without vCPUs).
    pub max_vcpu_id: u32,
    /// XSM label.
    pub ssidref: u32,
    /// The toolstack's UUID for the domain.
    pub handle: [u8; 16],
    /// The CPU pool it runs in.
    pub cpupool: u32,
}

impl From<&XenDomctlGetdomaininfo> for DomainInfo {
    fn from(i: &XenDomctlGetdomaininfo) -> Self {
        DomainInfo {
            domid: i.domain,
            flags: i.flags,
            tot_pages: i.tot_pages,
            max_pages: i.max_pages,
            shared_info_frame: i.shared_info_frame,
            cpu_time: i.cpu_time,
            nr_online_vcpus: i.nr_online_vcpus,
            max_vcpu_id: i.max_vcpu_id,
            ssidref: i.ssidref,
            handle: i.handle,
            cpupool: i.cpupool,
        }
    }
}

impl DomainInfo {
    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// `XEN_DOMINF_dying`: being destroyed (Xen sets it at `DOMDYING_dead`).
    pub fn dying(&self) -> bool {
        self.has(XEN_DOMINF_DYING)
    }

    /// `XEN_DOMINF_shutdown`: shut down (see [`Self::shutdown_reason`]).
    pub fn shutdown(&self) -> bool {
        self.has(XEN_DOMINF_SHUTDOWN)
    }

    /// The shutdown code (`SHUTDOWN_*`); 255 while none is set.
    pub fn shutdown_reason(&self) -> u32 {
        (self.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK
    }

    /// `XEN_DOMINF_paused`: paused by the toolstack.
    pub fn paused(&self) -> bool {
        self.has(XEN_DOMINF_PAUSED)
    }

    /// `XEN_DOMINF_blocked`: every online vCPU is blocked.
    pub fn blocked(&self) -> bool {
        self.has(XEN_DOMINF_BLOCKED)
    }

    /// `XEN_DOMINF_running`: some vCPU is running.
    pub fn running(&self) -> bool {
        self.has(XEN_DOMINF_RUNNING)
    }

    /// Shut down with `SHUTDOWN_crash`.
    pub fn crashed(&self) -> bool {
        self.shutdown() && self.shutdown_reason() == SHUTDOWN_CRASH
    }

    /// `XEN_DOMINF_hvm_guest`: an HVM (not PV) domain.
    pub fn hvm_guest(&self) -> bool {
        self.has(XEN_DOMINF_HVM_GUEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn info(flags: u32) -> DomainInfo {
        let mut raw = XenDomctlGetdomaininfo::new_zeroed();
        raw.domain = 7;
        raw.flags = flags;
        raw.tot_pages = 3;
        raw.handle = [9; 16];
        DomainInfo::from(&raw)
    }

    #[test]
    fn a_running_domain_without_shutdown_code_has_the_high_bits_set() {
        // What Xen 4.17 reports for a live PV domain: running, code ~0u.
        let d = info(0xffff_0000 | XEN_DOMINF_RUNNING);
        assert!(d.running() && !d.blocked() && !d.paused() && !d.dying());
        assert!(!d.shutdown() && !d.crashed() && !d.hvm_guest());
        assert_eq!(d.shutdown_reason(), 255);
        assert_eq!((d.domid, d.tot_pages, d.handle), (7, 3, [9; 16]));
    }

    #[test]
    fn a_crashed_domain_decodes_its_reason() {
        let d = info((SHUTDOWN_CRASH << 16) | XEN_DOMINF_SHUTDOWN | XEN_DOMINF_PAUSED);
        assert!(d.shutdown() && d.crashed() && d.paused());
        assert_eq!(d.shutdown_reason(), SHUTDOWN_CRASH);
        let poweroff = info(XEN_DOMINF_SHUTDOWN);
        assert!(poweroff.shutdown() && !poweroff.crashed());
        assert_eq!(poweroff.shutdown_reason(), 0);
    }

    #[test]
    fn the_crash_code_without_the_shutdown_flag_is_not_a_crash() {
        assert!(!info(SHUTDOWN_CRASH << 16).crashed());
        assert!(info(XEN_DOMINF_DYING | XEN_DOMINF_BLOCKED).dying());
        assert!(info(XEN_DOMINF_HVM_GUEST).hvm_guest());
    }
}
