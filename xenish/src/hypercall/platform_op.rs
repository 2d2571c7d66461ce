//! `platform_op`: what the control domain's kernel asks about the machine
//! (Xen 4.17 `xen/arch/x86/platform_hypercall.c`): `XENPF_get_cpuinfo`,
//! which Linux's `xen-pcpu` driver walks at boot to learn the physical
//! CPUs (one here: CPU 0, online, APIC and ACPI ID 0). Other commands
//! (firmware tables, power management, microcode, memory types) answer
//! `-ENOSYS` and are named in the log once.
//!
//! Order of checks as in Xen: the operation is read (`-EFAULT`), its
//! interface version checked (`-EACCES`), then the caller's privilege
//! (`-EPERM`, only the hardware domain may).

use guest_abi::errno::XenError;
use guest_abi::platform::*;
use guest_abi::xen::HYPERVISOR_PLATFORM_OP;

use super::sysctl::NR_CPUS;
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
    if !ctx.domain.privileged {
        return Err(XenError::Eperm);
    }
    match op.cmd {
        XENPF_GET_CPUINFO => {
            let mut info = op.pcpu_info();
            if info.xen_cpuid >= NR_CPUS {
                info.flags = XEN_PCPU_FLAGS_INVALID;
            } else {
                (info.apic_id, info.acpi_id, info.flags) = (info.xen_cpuid, info.xen_cpuid, XEN_PCPU_FLAGS_ONLINE);
            }
            info.max_present = NR_CPUS - 1;
            op.set_pcpu_info(info);
            ctx.guest().write(arg, &op).map_err(|_| XenError::Efault)?;
            Ok(0)
        }
        cmd => Err(super::refusals::not_implemented(ctx.domain.id, HYPERVISOR_PLATFORM_OP, Some(cmd.into()))),
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
    fn refuses_as_xen() {
        let mut w = World::new(true);
        let mut op = cpuinfo(0);
        op.interface_version = 0x0300_0000;
        assert_eq!(call(&mut w, op).0, -13, "another interface version: EACCES");
        assert_eq!(call(&mut w, XenPlatformOp::new(XENPF_FIRMWARE_INFO)).0, -38, "not served: ENOSYS");
        assert_eq!(w.call_ret(u64::from(HYPERVISOR_PLATFORM_OP), [0x10, 0, 0, 0, 0]), -14, "bad pointer");
        w.dom.privileged = false;
        assert_eq!(call(&mut w, cpuinfo(0)).0, -1, "unprivileged: EPERM");
    }
}
