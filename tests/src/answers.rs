//! What the `usermode` test guest, booted as the control domain, must print
//! about the `physdev_op` and `vcpu_op` sub-ops it probes and about 32-bit
//! code in user mode: the same lines on xenish and on Xen 4.17 (booted in
//! the same QEMU), which is what makes them Xen's answers.

/// The lines, without the console's `(d0) ` prefix, on one CPU (see
/// [`usermode_answers`] for more).
pub const USERMODE_ANSWERS: &[&str] = &[
    "usermode: physdev set_iobitmap: 65537 ports -22, in the hypervisor's hole -22, a bitmap 0, none 0",
    "usermode: physdev irq_status_query: pirq 1 0 flags 1, pirq 65536 -22",
    "usermode: physdev eoi: pirq 1 -22; get_free_pirq(MSI) 0 pirq 207, its eoi 0",
    "usermode: physdev pirq_eoi_gmfn_v2: a bad frame -22, a page 0, again -16",
    "usermode: physdev alloc_irq_vector(9): 0 vector 9; apic_read(0x1000): -22",
    "usermode: physdev unmap_pirq(20) -22, map_pirq(type 7) -22, setup_gsi(100) -22, manage_pci_add_ext(is_extfn 2) -22",
    "usermode: physdev dbgp_op 0, free_irq_vector -38, sub-op 99 -38, IRQ_UNMASK_NOTIFY 0",
    "usermode: vcpu_op send_nmi(non-null) -22, get_physid(unmapped) -14, get_physid Ok(0), sub-op 14 -38",
    "usermode: vcpu_op initialise(unmapped) -14, runstate area unmapped 0, in the hole -14, time area at the top 0, both off 0, a period of 2^63 ns Err(Einval)",
    "usermode: vcpu_op send_nmi: without a callback 0 (0 NMIs), with one 0 (1 NMIs)",
    "usermode: I/O bitmap: without one ports 0x80/0x81 (false, false); with 0x80 clear: 0x80 only true; 0x80 past the limit refused true; reset true",
    "usermode: ok: 32-bit code mapped at 0x40000000",
    "usermode: 32-bit code: eax 0, edx 0xc0de, syscall from cs 0xe023 at rip 0x4000000e",
    "usermode: ok: an iret to 0xe023 ran 32-bit code, its syscall entered the syscall32 callback",
];

/// The `get_physid` line on more than one CPU: Xen answers
/// `VCPUOP_get_physid` only for a control-domain vCPU whose hard affinity
/// is one CPU (`is_hwdom_pinned_vcpu`); on one CPU every vCPU is, on
/// several an unpinned one is refused with `-EINVAL` before the copy.
const GET_PHYSID_UNPINNED: &str =
    "usermode: vcpu_op send_nmi(non-null) -22, get_physid(unmapped) -22, get_physid Err(Einval), sub-op 14 -38";

/// The highest PIRQ of dom0 with a vCPU per CPU on `cpus` CPUs, which
/// `get_free_pirq` hands out first: Xen's `arch_hwdom_irqs` under QEMU (24
/// GSIs, 208 dynamic vectors a CPU), `min(24 + fls(cpus) * 208,
/// max(cpus * 208, 8 * 24)) - 1` (207 on one CPU, 415 on two).
fn dom0_top_pirq(cpus: u32) -> u32 {
    let cpus = cpus.max(1);
    let fls = u32::BITS - cpus.leading_zeros();
    (24 + fls * 208).min((cpus * 208).max(8 * 24)) - 1
}

/// [`USERMODE_ANSWERS`] for a machine of `cpus` CPUs that all run guests
/// (dom0 with a vCPU on each, Xen's default).
pub fn usermode_answers(cpus: u32) -> Vec<String> {
    USERMODE_ANSWERS
        .iter()
        .map(|&line| match line {
            l if cpus > 1 && l.contains("get_physid") => GET_PHYSID_UNPINNED.to_string(),
            l if l.contains("get_free_pirq") => l.replace("pirq 207", &format!("pirq {}", dom0_top_pirq(cpus))),
            l => l.to_string(),
        })
        .collect()
}
