//! Platform operations (`platform.h`), the control domain's interface to
//! the machine's firmware and CPUs: the `xen_platform_op` envelope and the
//! operations xenish serves (`XENPF_get_cpuinfo`, `XENPF_settime32/64`,
//! `XENPF_firmware_info`, `XENPF_enter_acpi_sleep`).

xen_consts! {
    "platform.h";
    XENPF_INTERFACE_VERSION: u32 = 0x0300_0001, "XENPF_INTERFACE_VERSION";
    XENPF_SETTIME32: u32 = 17, "XENPF_settime32";
    XENPF_SETTIME64: u32 = 62, "XENPF_settime64";
    XENPF_FIRMWARE_INFO: u32 = 50, "XENPF_firmware_info";
    XENPF_GET_CPUINFO: u32 = 55, "XENPF_get_cpuinfo";
    XENPF_ENTER_ACPI_SLEEP: u32 = 51, "XENPF_enter_acpi_sleep";
    XENPF_ACPI_SLEEP_EXTENDED: u32 = 1, "XENPF_ACPI_SLEEP_EXTENDED";
    XEN_PCPU_FLAGS_ONLINE: u32 = 1, "XEN_PCPU_FLAGS_ONLINE";
    XEN_PCPU_FLAGS_INVALID: u32 = 2, "XEN_PCPU_FLAGS_INVALID";
    XEN_FW_DISK_INFO: u32 = 1, "XEN_FW_DISK_INFO";
    XEN_FW_DISK_MBR_SIGNATURE: u32 = 2, "XEN_FW_DISK_MBR_SIGNATURE";
    XEN_FW_VBEDDC_INFO: u32 = 3, "XEN_FW_VBEDDC_INFO";
    XEN_FW_EFI_INFO: u32 = 4, "XEN_FW_EFI_INFO";
    XEN_FW_KBD_SHIFT_FLAGS: u32 = 5, "XEN_FW_KBD_SHIFT_FLAGS";
}

xen_struct! {
    "platform.h", "struct xenpf_settime32", 16;
    /// `struct xenpf_settime32` (`XENPF_settime32`): the wallclock at a
    /// system time.
    pub struct XenpfSettime32 {
        /// `secs`
        secs: u32 = "secs",
        /// `nsecs`
        nsecs: u32 = "nsecs",
        /// `system_time`
        system_time: u64 = "system_time",
    }
}

xen_struct! {
    "platform.h", "struct xenpf_settime64", 24;
    /// `struct xenpf_settime64` (`XENPF_settime64`).
    pub struct XenpfSettime64 {
        /// `secs`
        secs: u64 = "secs",
        /// `nsecs`
        nsecs: u32 = "nsecs",
        /// `mbz`: must be zero.
        mbz: u32 = "mbz",
        /// `system_time`
        system_time: u64 = "system_time",
    }
}

xen_struct! {
    "platform.h", "struct xenpf_firmware_info" until "u", 8;
    /// The head of `struct xenpf_firmware_info` (`XENPF_firmware_info`):
    /// which firmware table, and which entry.
    pub struct XenpfFirmwareInfo {
        /// `type`: `XEN_FW_*`.
        type_: u32 = "type",
        /// `index`
        index: u32 = "index",
    }
}

xen_struct! {
    "platform.h", "struct xenpf_pcpuinfo", 20;
    /// `struct xenpf_pcpuinfo` (`XENPF_get_cpuinfo`): one physical CPU.
    pub struct XenpfPcpuinfo {
        /// `xen_cpuid`: IN, the CPU asked about.
        xen_cpuid: u32 = "xen_cpuid",
        /// `max_present`: OUT, the highest CPU number present.
        max_present: u32 = "max_present",
        /// `flags`: OUT, `XEN_PCPU_FLAGS_*`.
        flags: u32 = "flags",
        /// `apic_id`: OUT.
        apic_id: u32 = "apic_id",
        /// `acpi_id`: OUT.
        acpi_id: u32 = "acpi_id",
    }
}

xen_struct! {
    "platform.h", "struct xenpf_enter_acpi_sleep", 12;
    /// `struct xenpf_enter_acpi_sleep` (`XENPF_enter_acpi_sleep`): the PM1
    /// control values to write for a sleep state.
    pub struct XenpfEnterAcpiSleep {
        /// `val_a`: PM1a control (or the extended sleep type).
        val_a: u16 = "val_a",
        /// `val_b`: PM1b control.
        val_b: u16 = "val_b",
        /// `sleep_state`: the S state.
        sleep_state: u32 = "sleep_state",
        /// `flags`: `XENPF_ACPI_SLEEP_EXTENDED`.
        flags: u32 = "flags",
    }
}

xen_struct! {
    "platform.h", "struct xen_platform_op", 136;
    /// `struct xen_platform_op`: every platform operation's envelope.
    pub struct XenPlatformOp {
        /// `cmd`: `XENPF_*`.
        cmd: u32 = "cmd",
        /// `interface_version`: must be [`XENPF_INTERFACE_VERSION`].
        interface_version: u32 = "interface_version",
        /// `u`: the operation's arguments (128 bytes).
        u: [u64; 16] = "u" union("u.pcpu_info", "u.settime32", "u.settime64", "u.firmware_info", "u.enter_acpi_sleep", "u.pad"),
    }
}

xen_structs!(XenpfPcpuinfo, XenpfSettime32, XenpfSettime64, XenpfFirmwareInfo, XenpfEnterAcpiSleep, XenPlatformOp);

impl XenPlatformOp {
    /// An envelope for `cmd` with this interface version.
    pub fn new(cmd: u32) -> Self {
        XenPlatformOp { cmd, interface_version: XENPF_INTERFACE_VERSION, u: [0; 16] }
    }

    crate::wire::union_members! {
        pcpu_info / set_pcpu_info: u: [u64; 16] => XenpfPcpuinfo, "u.pcpu_info";
        settime32 / set_settime32: u: [u64; 16] => XenpfSettime32, "u.settime32";
        settime64 / set_settime64: u: [u64; 16] => XenpfSettime64, "u.settime64";
        firmware_info / set_firmware_info: u: [u64; 16] => XenpfFirmwareInfo, "u.firmware_info";
        enter_acpi_sleep / set_enter_acpi_sleep: u: [u64; 16] => XenpfEnterAcpiSleep, "u.enter_acpi_sleep";
    }
}
