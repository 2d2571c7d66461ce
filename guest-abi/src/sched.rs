//! Scheduler operations (`sched.h`): SCHEDOP_* and SHUTDOWN_* codes.

use crate::arch_x86::GuestHandle;

xen_consts! {
    "sched.h";
    SCHEDOP_YIELD: u32 = 0, "SCHEDOP_yield";
    SCHEDOP_BLOCK: u32 = 1, "SCHEDOP_block";
    SCHEDOP_SHUTDOWN: u32 = 2, "SCHEDOP_shutdown";
    SCHEDOP_POLL: u32 = 3, "SCHEDOP_poll";
    SCHEDOP_REMOTE_SHUTDOWN: u32 = 4, "SCHEDOP_remote_shutdown";
    SCHEDOP_SHUTDOWN_CODE: u32 = 5, "SCHEDOP_shutdown_code";
    SCHEDOP_WATCHDOG: u32 = 6, "SCHEDOP_watchdog";
    SCHEDOP_PIN_OVERRIDE: u32 = 7, "SCHEDOP_pin_override";
    SHUTDOWN_POWEROFF: u32 = 0, "SHUTDOWN_poweroff";
    SHUTDOWN_REBOOT: u32 = 1, "SHUTDOWN_reboot";
    SHUTDOWN_SUSPEND: u32 = 2, "SHUTDOWN_suspend";
    SHUTDOWN_CRASH: u32 = 3, "SHUTDOWN_crash";
    SHUTDOWN_WATCHDOG: u32 = 4, "SHUTDOWN_watchdog";
    SHUTDOWN_SOFT_RESET: u32 = 5, "SHUTDOWN_soft_reset";
    SHUTDOWN_MAX: u32 = 5, "SHUTDOWN_MAX";
}

xen_struct! {
    "sched.h", "struct sched_shutdown", 4;
    /// `struct sched_shutdown` (sched.h).
    pub struct SchedShutdown {
        /// `reason`
        reason: u32 = "reason",
    }
}

xen_struct! {
    "sched.h", "struct sched_poll", 24;
    /// `struct sched_poll` (sched.h).
    pub struct SchedPoll {
        /// `ports`: the event channel ports to wait on.
        ports: GuestHandle<u32> = "ports" handle,
        /// `nr_ports`
        nr_ports: u32 = "nr_ports",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `timeout`
        timeout: u64 = "timeout",
    }
}

xen_struct! {
    "sched.h", "struct sched_remote_shutdown", 8;
    /// `struct sched_remote_shutdown` (sched.h).
    pub struct SchedRemoteShutdown {
        /// `domain_id`
        domain_id: u16 = "domain_id",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 2] = "",
        /// `reason`
        reason: u32 = "reason",
    }
}

xen_struct! {
    "sched.h", "struct sched_watchdog", 8;
    /// `struct sched_watchdog` (sched.h).
    pub struct SchedWatchdog {
        /// `id`
        id: u32 = "id",
        /// `timeout`
        timeout: u32 = "timeout",
    }
}

xen_struct! {
    "sched.h", "struct sched_pin_override", 4;
    /// `struct sched_pin_override` (sched.h).
    pub struct SchedPinOverride {
        /// `pcpu`
        pcpu: i32 = "pcpu",
    }
}

xen_structs!(SchedShutdown, SchedPoll, SchedRemoteShutdown, SchedWatchdog, SchedPinOverride,);
