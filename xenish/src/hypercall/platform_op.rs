//! `platform_op`: what the control domain's kernel asks about the machine
//! (Xen 4.17 `xen/arch/x86/platform_hypercall.c`):
//! - `XENPF_get_cpuinfo`, which Linux's `xen-pcpu` driver walks at boot to
//!   learn the physical CPUs (one here: CPU 0, online, APIC and ACPI ID 0);
//! - `XENPF_settime32/64`: the control domain sets the wallclock, which
//!   every domain's shared_info then shows (plus its own offset), as does
//!   every domain created later;
//! - `XENPF_firmware_info`: xenish keeps no BIOS data (EDD disks, MBR
//!   signatures, EDID), answering as Xen does when it has none (`-ESRCH`),
//!   no EFI (`-ENODEV`, a BIOS boot) and keyboard shift flags 0;
//! - `XENPF_enter_acpi_sleep` for S5, which Linux issues when it powers
//!   off: the PM1 control values reach the FADT's blocks when the
//!   hypervisor powers the machine off ([`crate::acpi::enter_s5`]).
//!
//! Other commands (power management, microcode, memory types, CPU
//! hotplug) answer `-ENOSYS` and are named in the log once.
//!
//! Also here, the machine-check hypercall `mca` (Xen 4.17
//! `xen/arch/x86/cpu/mcheck/mce.c do_mca`): `XEN_MC_physcpuinfo`, with
//! which Linux's `xen-mcelog` learns the physical CPUs at boot; and
//! `XEN_MC_fetch`, which finds no telemetry (xenish does not handle
//! machine checks: nothing is ever logged).
//!
//! Order of checks as in Xen: the operation is read (`-EFAULT`), its
//! interface version checked (`-EACCES`), then the caller's privilege
//! (`-EPERM`, only the hardware domain may).

use guest_abi::errno::XenError;
use guest_abi::platform::*;
use guest_abi::xen::HYPERVISOR_PLATFORM_OP;
use guest_abi::xen_mca::*;

use super::{Ctx, HcResult, Outcome};

/// `HYPERVISOR_platform_op(op)`.
pub fn platform_op(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    serve(ctx, args[0]).into()
}

fn serve(ctx: &mut Ctx, arg: u64) -> HcResult {
    let mut op: XenPlatformOp = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if op.interface_version != XENPF_INTERFACE_VERSION {
        return Err(XenError::Eacces);
    }
    ctx.privileged()?;
    match op.cmd {
        XENPF_GET_CPUINFO => {
            let mut info = op.pcpu_info();
            let nr_cpus = ctx.sched.nr_cpus();
            if info.xen_cpuid >= nr_cpus {
                info.flags = XEN_PCPU_FLAGS_INVALID;
            } else {
                (info.apic_id, info.acpi_id, info.flags) = (info.xen_cpuid, info.xen_cpuid, XEN_PCPU_FLAGS_ONLINE);
            }
            info.max_present = nr_cpus - 1;
            op.set_pcpu_info(info);
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        XENPF_SETTIME64 => {
            let t = op.settime64();
            if t.mbz != 0 {
                return Err(XenError::Einval);
            }
            settime(ctx, t.secs, t.nsecs, t.system_time);
            Ok(0)
        }
        XENPF_SETTIME32 => {
            let t = op.settime32();
            settime(ctx, u64::from(t.secs), t.nsecs, t.system_time);
            Ok(0)
        }
        XENPF_FIRMWARE_INFO => {
            let fw = op.firmware_info();
            match fw.type_ {
                XEN_FW_DISK_INFO | XEN_FW_DISK_MBR_SIGNATURE | XEN_FW_VBEDDC_INFO => Err(XenError::Esrch),
                XEN_FW_EFI_INFO => Err(XenError::Enodev),
                XEN_FW_KBD_SHIFT_FLAGS if fw.index == 0 => {
                    // No key held at boot: the flags byte after the head is 0.
                    op.set_firmware_info(fw);
                    ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
                    Ok(0)
                }
                _ => Err(XenError::Einval),
            }
        }
        XENPF_ENTER_ACPI_SLEEP => enter_acpi_sleep(op.enter_acpi_sleep()),
        cmd => Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_PLATFORM_OP, Some(cmd.into()))),
    }
}

/// `XENPF_enter_acpi_sleep` (Xen's `acpi_enter_sleep` and `enter_state`):
/// for S5 the control domain's PM1a/PM1b control values are kept, and the
/// hypervisor writes them to the FADT's blocks when it powers the machine
/// off ([`crate::acpi::enter_s5`]), which Linux's `SCHEDOP_shutdown`
/// right after this call leads to once every domain is down. (Xen writes
/// them at once; xenish first finishes its domains and prints how each
/// ended.) S3 is `-EOPNOTSUPP` (xenish keeps no wakeup vector); unknown
/// flags are `-EINVAL`; the extended (hardware-reduced) interface and a
/// machine without a PM1a block are `-EPERM`; other states are
/// `-EINVAL`.
fn enter_acpi_sleep(sleep: XenpfEnterAcpiSleep) -> HcResult {
    if sleep.sleep_state == 3 {
        return Err(XenError::Eopnotsupp);
    }
    if sleep.flags & !XENPF_ACPI_SLEEP_EXTENDED != 0 {
        return Err(XenError::Einval);
    }
    let fadt = crate::acpi::fadt().unwrap_or_default();
    if sleep.flags & XENPF_ACPI_SLEEP_EXTENDED != 0 || fadt.pm1a_cnt == 0 {
        return Err(XenError::Eperm);
    }
    if sleep.sleep_state != 5 {
        return Err(XenError::Einval);
    }
    crate::acpi::request_s5(sleep.val_a, sleep.val_b);
    Ok(0)
}

/// `HYPERVISOR_mca(op)`: privileged; the interface version must match
/// (`-EACCES`).
pub fn mca(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    serve_mca(ctx, args[0]).into()
}

fn serve_mca(ctx: &mut Ctx, arg: u64) -> HcResult {
    ctx.privileged()?;
    let mut op: XenMc = ctx.guest().read(arg).map_err(|_| XenError::Efault)?;
    if op.interface_version != XEN_MCA_INTERFACE_VERSION {
        return Err(XenError::Eacces);
    }
    match op.cmd {
        XEN_MC_PHYSCPUINFO => {
            let mut p = op.physcpuinfo();
            let mut n = ctx.sched.nr_cpus();
            if !p.info.is_null() {
                if p.ncpus == 0 {
                    return Err(XenError::Einval);
                }
                n = n.min(p.ncpus);
                let host = |leaf, subleaf| ctx.platform.host_cpuid(leaf, subleaf);
                let info = logical_cpu(&host);
                for i in 0..n {
                    let at = p.info.element_addr(u64::from(i)).ok_or(XenError::Efault)?;
                    ctx.guest().write(at, &info).map_err(|_| XenError::Efault)?;
                }
            }
            p.ncpus = n;
            op.set_physcpuinfo(p);
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        XEN_MC_FETCH => {
            // `xen_mc_fetch.flags` gains XEN_MC_NODATA: nothing to fetch.
            let mut bytes = op.u;
            bytes[0] |= u64::from(XEN_MC_NODATA);
            op.u = bytes;
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        cmd => Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_MCA, Some(cmd.into()))),
    }
}

/// CPU 0 as Xen's `x86_mc_get_cpu_info` describes it, from its CPUID.
fn logical_cpu(host: &dyn Fn(u32, u32) -> [u32; 4]) -> McinfoLogicalCpu {
    use zerocopy::FromZeros;
    let mut c = McinfoLogicalCpu::new_zeroed();
    let [max, b, cx, d] = host(0, 0);
    let [sig, ebx1, _, _] = host(1, 0);
    let vendor: [u8; 12] = {
        let mut v = [0u8; 12];
        for (chunk, r) in v.chunks_exact_mut(4).zip([b, d, cx]) {
            chunk.copy_from_slice(&r.to_le_bytes());
        }
        v
    };
    c.mc_vendorid[..12].copy_from_slice(&vendor);
    // Xen's X86_VENDOR_INTEL (1), X86_VENDOR_AMD (2), X86_VENDOR_HYGON (16).
    c.mc_vendor = match &vendor {
        b"GenuineIntel" => 1,
        b"AuthenticAMD" => 2,
        b"HygonGenuine" => 16,
        _ => 0,
    };
    c.mc_cpuid_level = max as i32;
    let base_family = (sig >> 8) & 0xf;
    c.mc_family = if base_family == 0xf { base_family + ((sig >> 20) & 0xff) } else { base_family };
    c.mc_model = ((sig >> 4) & 0xf) | if base_family >= 6 { ((sig >> 16) & 0xf) << 4 } else { 0 };
    c.mc_step = sig & 0xf;
    (c.mc_ncores, c.mc_ncores_active, c.mc_nthreads) = (1, 1, 1);
    if host(0x8000_0000, 0)[0] >= 0x8000_0004 {
        for (i, leaf) in (0x8000_0002..=0x8000_0004).enumerate() {
            for (j, r) in host(leaf, 0).iter().enumerate() {
                let at = i * 16 + j * 4;
                c.mc_brandid[at..at + 4].copy_from_slice(&r.to_le_bytes());
            }
        }
    }
    let words = super::cpu_policy::featureset(super::cpu_policy::Policy::Host, host);
    c.mc_cpu_caps.copy_from_slice(&words[..MC_NCAPS]);
    c.mc_cache_alignment = ((ebx1 >> 8) & 0xff) * 8;
    if host(0x8000_0000, 0)[0] >= 0x8000_0006 {
        c.mc_cache_size = host(0x8000_0006, 0)[2] >> 16;
    }
    c
}

/// Xen's `do_settime`: the wallclock at system time 0 becomes
/// `secs.nsecs - system_time`, for every domain (each with its offset).
fn settime(ctx: &mut Ctx, secs: u64, nsecs: u32, system_time: u64) {
    let ns = u128::from(secs) * 1_000_000_000 + u128::from(nsecs);
    let base = ns.saturating_sub(u128::from(system_time));
    let (sec, nsec) = ((base / 1_000_000_000) as u64, (base % 1_000_000_000) as u32);
    ctx.lifecycle.wallclock = Some((sec, nsec));
    let update = |d: &crate::domain::Domain, mem: &mut dyn crate::mm::MachineMemory| {
        let sec = sec.saturating_add_signed(d.tools.time_offset_s);
        crate::time::update_wallclock(mem, d.shared_info, sec, nsec);
    };
    update(ctx.domain, ctx.mem);
    for d in ctx.peers.iter() {
        update(d, ctx.mem);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::*;
    use zerocopy::{FromBytes, IntoBytes};

    fn call(w: &mut World, op: XenPlatformOp) -> (i64, XenpfPcpuinfo) {
        w.poke(BUF_VA, op.as_bytes());
        let ret = w.call_ret(u64::from(HYPERVISOR_PLATFORM_OP), [BUF_VA, 0, 0, 0, 0]);
        let back = XenPlatformOp::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenPlatformOp>())).unwrap();
        (ret, back.pcpu_info())
    }

    fn cpuinfo(cpu: u32) -> XenPlatformOp {
        let mut op = XenPlatformOp::new(XENPF_GET_CPUINFO);
        op.set_pcpu_info(XenpfPcpuinfo { xen_cpuid: cpu, max_present: 0, flags: 0, apic_id: 0, acpi_id: 0 });
        op
    }

    #[test]
    fn get_cpuinfo_describes_the_one_cpu() {
        let mut w = World::new(true);
        let (ret, info) = call(&mut w, cpuinfo(0));
        assert_eq!((ret, info.flags, info.max_present, info.apic_id), (0, XEN_PCPU_FLAGS_ONLINE, 0, 0));
        let (ret, info) = call(&mut w, cpuinfo(1));
        assert_eq!((ret, info.flags), (0, XEN_PCPU_FLAGS_INVALID), "absent CPUs are invalid, not errors");
    }

    #[test]
    fn settime_moves_every_domains_wallclock() {
        let mut w = World::new(true);
        w.add_peer(super::super::tests::test_domain(3, false, 10..12, None, crate::mm::Mfn(13)));
        w.peers[0].tools.time_offset_s = 100;
        let mut op = XenPlatformOp::new(XENPF_SETTIME64);
        op.set_settime64(XenpfSettime64 { secs: 1_000, nsecs: 500, mbz: 0, system_time: 2_000_000_000 });
        assert_eq!(call(&mut w, op).0, 0);
        assert_eq!(w.lifecycle.wallclock, Some((998, 500)));
        assert_eq!(&w.mem.0[8][0xc04..0xc08], &998u32.to_le_bytes(), "the caller's wc_sec");
        assert_eq!(&w.mem.0[13][0xc04..0xc08], &1098u32.to_le_bytes(), "a peer's, with its offset");
        op.set_settime64(XenpfSettime64 { secs: 1, nsecs: 0, mbz: 1, system_time: 0 });
        assert_eq!(call(&mut w, op).0, -22, "mbz set: EINVAL");
    }

    #[test]
    fn firmware_info_as_xen_without_bios_data() {
        let mut w = World::new(true);
        let fw = |w: &mut World, type_: u32, index: u32| {
            let mut op = XenPlatformOp::new(XENPF_FIRMWARE_INFO);
            op.set_firmware_info(XenpfFirmwareInfo { type_, index });
            call(w, op).0
        };
        assert_eq!(fw(&mut w, XEN_FW_DISK_INFO, 0), -3, "no EDD data: ESRCH");
        assert_eq!(fw(&mut w, XEN_FW_VBEDDC_INFO, 0), -3);
        assert_eq!(fw(&mut w, XEN_FW_EFI_INFO, 0), -19, "not EFI: ENODEV");
        assert_eq!(fw(&mut w, XEN_FW_KBD_SHIFT_FLAGS, 0), 0);
        assert_eq!(fw(&mut w, XEN_FW_KBD_SHIFT_FLAGS, 1), -22);
        assert_eq!(fw(&mut w, 99, 0), -22);
    }

    #[test]
    fn mca_describes_the_cpu_and_has_no_telemetry() {
        let mut w = World::new(true);
        let nr = u64::from(HYPERVISOR_MCA);
        let phys = |w: &mut World, ncpus: u32, info: u64| {
            let mut op = XenMc::new(XEN_MC_PHYSCPUINFO);
            let info = guest_abi::GuestHandle::from_ptr(info as *const McinfoLogicalCpu);
            op.set_physcpuinfo(XenMcPhyscpuinfo { ncpus, _pad0: 0, info });
            w.poke(BUF_VA, op.as_bytes());
            let ret = w.call_ret(nr, [BUF_VA, 0, 0, 0, 0]);
            let back = XenMc::read_from_bytes(&w.peek(BUF_VA, core::mem::size_of::<XenMc>())).unwrap();
            (ret, back.physcpuinfo().ncpus)
        };
        assert_eq!(phys(&mut w, 0, 0), (0, 1), "a null array: how many");
        assert_eq!(phys(&mut w, 4, BUF_VA + 0x1000), (0, 1));
        let c = McinfoLogicalCpu::read_from_bytes(&w.peek(BUF_VA + 0x1000, 304)).unwrap();
        assert_eq!((&c.mc_vendorid[..12], c.mc_vendor, c.mc_family), (&b"GenuineIntel"[..], 1, 6));
        assert_eq!(phys(&mut w, 0, BUF_VA + 0x1000).0, -22, "an array of none");
        let mut op = XenMc::new(XEN_MC_FETCH);
        w.poke(BUF_VA, op.as_bytes());
        assert_eq!(w.call_ret(nr, [BUF_VA, 0, 0, 0, 0]), 0);
        assert_eq!(w.peek(BUF_VA + 8, 4), XEN_MC_NODATA.to_le_bytes());
        op.interface_version = 1;
        w.poke(BUF_VA, op.as_bytes());
        assert_eq!(w.call_ret(nr, [BUF_VA, 0, 0, 0, 0]), -13, "another version: EACCES");
        w.dom.privileged = false;
        assert_eq!(w.call_ret(nr, [BUF_VA, 0, 0, 0, 0]), -1);
    }

    #[test]
    fn s5_writes_the_control_domains_pm1_values_to_the_fadts_blocks() {
        crate::acpi::set_fadt(crate::acpi::Fadt { pm1a_cnt: 0x604, pm1b_cnt: 0, reset: Some((0xcf9, 6)) });
        let mut w = World::new(true);
        let sleep = |state: u32, flags: u32| {
            let mut op = XenPlatformOp::new(XENPF_ENTER_ACPI_SLEEP);
            op.set_enter_acpi_sleep(XenpfEnterAcpiSleep { val_a: 0x2000, val_b: 0x2000, sleep_state: state, flags });
            op
        };
        assert_eq!(call(&mut w, sleep(3, 0)).0, -95, "S3: EOPNOTSUPP");
        assert_eq!(call(&mut w, sleep(5, 2)).0, -22, "unknown flags");
        assert_eq!(call(&mut w, sleep(5, XENPF_ACPI_SLEEP_EXTENDED)).0, -1, "no sleep control register");
        assert_eq!(call(&mut w, sleep(4, 0)).0, -22, "S4");
        assert!(!crate::acpi::enter_s5(), "not asked for");
        assert_eq!(call(&mut w, sleep(5, 0)).0, 0);
        assert!(crate::acpi::PORT_WRITES.with(|p| p.borrow().is_empty()), "written at the machine's power-off");
        assert!(crate::acpi::enter_s5());
        assert_eq!(crate::acpi::PORT_WRITES.with(|p| p.borrow().clone()), [(0x604, 0x2000)], "PM1a only: no PM1b");
        w.dom.privileged = false;
        assert_eq!(call(&mut w, sleep(5, 0)).0, -1);
    }

    #[test]
    fn refuses_as_xen() {
        let mut w = World::new(true);
        let mut op = cpuinfo(0);
        op.interface_version = 0x0300_0000;
        assert_eq!(call(&mut w, op).0, -13, "another interface version: EACCES");
        assert_eq!(call(&mut w, XenPlatformOp::new(60)).0, -38, "not served (core parking): ENOSYS");
        assert_eq!(w.call_ret(u64::from(HYPERVISOR_PLATFORM_OP), [0x10, 0, 0, 0, 0]), -14, "bad pointer");
        w.dom.privileged = false;
        assert_eq!(call(&mut w, cpuinfo(0)).0, -1, "unprivileged: EPERM");
    }
}
