//! vCPU operations (`vcpu.h`): VCPUOP_*, runstate, timers, vcpu_info registration.

xen_consts! {
    "vcpu.h";
    VCPUOP_INITIALISE: u32 = 0, "VCPUOP_initialise";
    VCPUOP_UP: u32 = 1, "VCPUOP_up";
    VCPUOP_DOWN: u32 = 2, "VCPUOP_down";
    VCPUOP_IS_UP: u32 = 3, "VCPUOP_is_up";
    VCPUOP_GET_RUNSTATE_INFO: u32 = 4, "VCPUOP_get_runstate_info";
    XEN_RUNSTATE_UPDATE: i64 = -9223372036854775808, "XEN_RUNSTATE_UPDATE";
    RUNSTATE_RUNNING: u32 = 0, "RUNSTATE_running";
    RUNSTATE_RUNNABLE: u32 = 1, "RUNSTATE_runnable";
    RUNSTATE_BLOCKED: u32 = 2, "RUNSTATE_blocked";
    RUNSTATE_OFFLINE: u32 = 3, "RUNSTATE_offline";
    VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5, "VCPUOP_register_runstate_memory_area";
    VCPUOP_SET_PERIODIC_TIMER: u32 = 6, "VCPUOP_set_periodic_timer";
    VCPUOP_STOP_PERIODIC_TIMER: u32 = 7, "VCPUOP_stop_periodic_timer";
    VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8, "VCPUOP_set_singleshot_timer";
    VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9, "VCPUOP_stop_singleshot_timer";
    VCPU_SSHOTTMR_FUTURE_BIT: u32 = 0, "_VCPU_SSHOTTMR_future";
    VCPU_SSHOTTMR_FUTURE: u32 = 1, "VCPU_SSHOTTMR_future";
    VCPUOP_REGISTER_VCPU_INFO: u32 = 0xa, "VCPUOP_register_vcpu_info";
    VCPUOP_SEND_NMI: u32 = 0xb, "VCPUOP_send_nmi";
    VCPUOP_GET_PHYSID: u32 = 0xc, "VCPUOP_get_physid";
    VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 0xd, "VCPUOP_register_vcpu_time_memory_area";
}

xen_struct! {
    "vcpu.h", "struct vcpu_runstate_info", 48;
    /// `struct vcpu_runstate_info` (vcpu.h).
    pub struct VcpuRunstateInfo {
        /// `state`
        state: i32 = "state",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `state_entry_time`
        state_entry_time: u64 = "state_entry_time",
        /// `time`
        time: [u64; 4] = "time",
    }
}

xen_struct! {
    "vcpu.h", "struct vcpu_register_runstate_memory_area", 8;
    /// `struct vcpu_register_runstate_memory_area` (vcpu.h).
    pub struct VcpuRegisterRunstateMemoryArea {
        /// `addr`: guest virtual address of a `vcpu_runstate_info` (C: a
        /// union of a handle, a pointer and a `uint64_t`).
        addr: u64 = "addr" union("addr.h", "addr.v", "addr.p"),
    }
}

xen_struct! {
    "vcpu.h", "struct vcpu_set_periodic_timer", 8;
    /// `struct vcpu_set_periodic_timer` (vcpu.h).
    pub struct VcpuSetPeriodicTimer {
        /// `period_ns`
        period_ns: u64 = "period_ns",
    }
}

xen_struct! {
    "vcpu.h", "struct vcpu_set_singleshot_timer", 16;
    /// `struct vcpu_set_singleshot_timer` (vcpu.h).
    pub struct VcpuSetSingleshotTimer {
        /// `timeout_abs_ns`
        timeout_abs_ns: u64 = "timeout_abs_ns",
        /// `flags`
        flags: u32 = "flags",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
    }
}

xen_struct! {
    "vcpu.h", "struct vcpu_register_vcpu_info", 16;
    /// `struct vcpu_register_vcpu_info` (vcpu.h).
    pub struct VcpuRegisterVcpuInfo {
        /// `mfn`
        mfn: u64 = "mfn",
        /// `offset`
        offset: u32 = "offset",
        /// `rsvd`
        rsvd: u32 = "rsvd",
    }
}

xen_struct! {
    "vcpu.h", "struct vcpu_get_physid", 8;
    /// `struct vcpu_get_physid` (vcpu.h).
    pub struct VcpuGetPhysid {
        /// `phys_id`
        phys_id: u64 = "phys_id",
    }
}

xen_struct! {
    "vcpu.h", "struct vcpu_register_time_memory_area", 8;
    /// `struct vcpu_register_time_memory_area` (vcpu.h).
    pub struct VcpuRegisterTimeMemoryArea {
        /// `addr`: guest virtual address of a `vcpu_time_info` (C: a union
        /// of a handle, a pointer and a `uint64_t`).
        addr: u64 = "addr" union("addr.h", "addr.v", "addr.p"),
    }
}

xen_structs!(
    VcpuRunstateInfo,
    VcpuRegisterRunstateMemoryArea,
    VcpuSetPeriodicTimer,
    VcpuSetSingleshotTimer,
    VcpuRegisterVcpuInfo,
    VcpuGetPhysid,
    VcpuRegisterTimeMemoryArea,
);
