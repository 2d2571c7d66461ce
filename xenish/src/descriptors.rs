//! Segment descriptors a PV guest puts in its GDT or LDT: Xen's `check_descriptor`
//! for a 64-bit PV domain. Code and data segments are allowed with their
//! privilege level raised to 3 (the guest kernel runs in ring 3), not-present
//! descriptors and the empty system type are harmless; every other system
//! descriptor (TSS, LDT, interrupt and trap gates) is refused. Call gates,
//! which Xen allows after checking their target, are refused too: no PV
//! kernel we target uses them.
//!
//! The hardware GDT and LDT hold a validated copy of the running vCPU's
//! frames (see the arch layer), made again on every switch to it, so a
//! descriptor that did not pass here never reaches the CPU.

use crate::mm::PAGE_SIZE;

/// Descriptors per GDT frame.
pub const PER_FRAME: usize = PAGE_SIZE / 8;
/// Guest GDT entries (`FIRST_RESERVED_GDT_ENTRY`): 14 frames; the
/// hypervisor's reserved entries follow.
pub const MAX_ENTRIES: usize = 14 * PER_FRAME;

/// Present.
const P: u64 = 1 << 47;
/// Code or data (not a system descriptor).
const S: u64 = 1 << 44;
/// The privilege level field.
const DPL: u64 = 3 << 45;
/// The system-descriptor type field.
const TYPE: u64 = 0xf << 40;

/// The descriptor as the CPU may see it, or `None` if a 64-bit PV guest
/// may not have it.
pub fn check(desc: u64) -> Option<u64> {
    if desc & P == 0 {
        return Some(desc);
    }
    if desc & S != 0 {
        return Some(desc | DPL);
    }
    (desc & TYPE == 0).then_some(desc)
}

/// The descriptor at `index` of a GDT frame's bytes.
fn entry(frame: &[u8; PAGE_SIZE], index: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&frame[index * 8..index * 8 + 8]);
    u64::from_le_bytes(b)
}

/// Whether every descriptor of a frame passes [`check`] (Xen validates the
/// whole page when it becomes a descriptor page).
pub fn frame_ok(frame: &[u8; PAGE_SIZE]) -> bool {
    (0..PER_FRAME).all(|i| check(entry(frame, i)).is_some())
}

/// A frame's descriptors as the hardware GDT gets them: checked and fixed
/// up, anything refused made not present.
pub fn load(frame: &[u8; PAGE_SIZE], out: &mut [u64; PER_FRAME]) {
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = check(entry(frame, i)).unwrap_or(0);
    }
}

/// Xen's flat ring-3 selectors in the hypervisor's reserved GDT page
/// (`FLAT_RING3_CS32`, `FLAT_RING3_DS64`, `FLAT_RING3_CS64`): the only
/// reserved entries a guest may load.
pub const FLAT_RING3_SELECTORS: [u16; 3] = [0xe023, 0xe02b, 0xe033];

/// The descriptors behind [`FLAT_RING3_SELECTORS`], as the reserved page
/// holds them: flat 4 GiB 32-bit code, flat data, 64-bit code, all DPL 3.
pub const FLAT_RING3_DESCRIPTORS: [u64; 3] = [0x00cf_fa00_0000_ffff, 0x00cf_f200_0000_ffff, 0x00af_fa00_0000_ffff];

/// Code segment.
const CODE: u64 = 1 << 43;
/// Writable (data) or readable (code).
const WRITABLE: u64 = 1 << 41;
/// 64-bit code.
const LONG: u64 = 1 << 53;
/// 32-bit default operand size.
const BIG: u64 = 1 << 54;
/// Limit in 4 KiB units.
const GRANULAR: u64 = 1 << 55;

/// The checked descriptor selector `sel` names for a vCPU whose GDT is `gdt`
/// and LDT `ldt` (as for [`selector_loadable`]), one of Xen's flat ring-3
/// descriptors for their selectors, `None` for the null selector, any other
/// entry of the reserved page or an entry past the tables.
fn descriptor(sel: u16, gdt: &impl Fn(usize) -> Option<u64>, ldt: &impl Fn(usize) -> Option<u64>) -> Option<u64> {
    const TI: u16 = 4;
    let index = usize::from(sel >> 3);
    if sel & TI != 0 {
        return ldt(index).and_then(check);
    }
    if index == 0 {
        return None;
    }
    if index < MAX_ENTRIES {
        return gdt(index).and_then(check);
    }
    let flat = FLAT_RING3_SELECTORS.iter().position(|&f| f == sel | 3)?;
    FLAT_RING3_DESCRIPTORS.get(flat).copied()
}

/// A segment's limit in bytes (the last valid offset).
fn limit(desc: u64) -> u64 {
    let raw = (desc & 0xffff) | ((desc >> 32) & 0xf_0000);
    if desc & GRANULAR != 0 {
        (raw << 12) | 0xfff
    } else {
        raw
    }
}

/// Whether `iretq` from the hypervisor to ring 3 succeeds with code
/// selector `cs`, stack selector `ss` (both with RPL 3, as Xen's `do_iret`
/// forces; any other RPL is refused) and instruction pointer `rip`, for a vCPU whose GDT is `gdt` and
/// LDT `ldt`: the checks the CPU makes on an `iret` to an outer privilege
/// level in long mode. `cs` must name a present code segment (DPL 3, as
/// every checked one is), not both 64-bit and 32-bit; `ss` a present
/// writable data segment; `rip` must be canonical for 64-bit code and
/// within the segment's limit for 32-bit (compatibility mode) code. Where
/// the CPU would fault, Xen enters the guest's failsafe callback.
pub fn iret_target_ok(
    cs: u16,
    ss: u16,
    rip: u64,
    gdt: &impl Fn(usize) -> Option<u64>,
    ldt: &impl Fn(usize) -> Option<u64>,
) -> bool {
    if cs & 3 != 3 || ss & 3 != 3 {
        return false;
    }
    // Xen's flat 64-bit code and stack selectors, what nearly every return
    // carries: their fixed descriptors pass every check below, leaving
    // only the canonical `rip` to test.
    if cs == FLAT_RING3_SELECTORS[2] && ss == FLAT_RING3_SELECTORS[1] {
        return crate::guest_access::is_canonical(rip);
    }
    descriptors_allow(cs, ss, rip, gdt, ldt)
}

/// [`iret_target_ok`]'s checks of the descriptors behind `cs` and `ss`.
fn descriptors_allow(
    cs: u16,
    ss: u16,
    rip: u64,
    gdt: &impl Fn(usize) -> Option<u64>,
    ldt: &impl Fn(usize) -> Option<u64>,
) -> bool {
    let usable = |d: u64| d & P != 0 && d & S != 0 && d & DPL == DPL;
    let (Some(code), Some(stack)) = (descriptor(cs, gdt, ldt), descriptor(ss, gdt, ldt)) else { return false };
    if !usable(code) || code & CODE == 0 || (code & LONG != 0 && code & BIG != 0) {
        return false;
    }
    if !usable(stack) || stack & CODE != 0 || stack & WRITABLE == 0 {
        return false;
    }
    if code & LONG != 0 {
        crate::guest_access::is_canonical(rip)
    } else {
        rip <= limit(code)
    }
}

/// Whether a checked descriptor (as [`check`] leaves it) can be loaded into
/// a data segment register (`%ds`, `%es`, `%fs`, `%gs`) from ring 3: a
/// present DPL-3 data segment or readable code segment. The selector's RPL
/// does not matter, as every such descriptor has DPL 3.
pub fn data_loadable(desc: u64) -> bool {
    const CODE: u64 = 1 << 43;
    const READABLE: u64 = 1 << 41;
    desc & P != 0 && desc & S != 0 && desc & DPL == DPL && (desc & CODE == 0 || desc & READABLE != 0)
}

/// Whether loading data selector `sel` succeeds for a vCPU whose GDT is
/// `gdt` and whose LDT is `ldt` (the descriptor at each index, `None` past
/// its frames or entries): the null selector, one of Xen's flat ring-3
/// selectors, or a GDT or LDT selector of a [`data_loadable`] descriptor.
/// Xen's `load_segments` enters the failsafe callback when one fails.
pub fn selector_loadable(sel: u16, gdt: &impl Fn(usize) -> Option<u64>, ldt: &impl Fn(usize) -> Option<u64>) -> bool {
    const TI: u16 = 4;
    if sel & !3 == 0 || FLAT_RING3_SELECTORS.contains(&sel) {
        return true;
    }
    let index = usize::from(sel >> 3);
    let desc = if sel & TI == 0 { (index < MAX_ENTRIES).then(|| gdt(index)).flatten() } else { ldt(index) };
    desc.and_then(check).is_some_and(data_loadable)
}

/// The descriptor at LDT `index` of a vCPU with `ents` LDT entries in the
/// frames `frames` (`None` for a page that could not be taken), read from
/// machine memory.
pub fn ldt_entry(
    frames: &[Option<crate::mm::Mfn>],
    ents: u32,
    mem: &dyn crate::mm::MachineMemory,
    index: usize,
) -> Option<u64> {
    if index >= ents as usize {
        return None;
    }
    let frame = mem.frame((*frames.get(index / PER_FRAME)?)?)?;
    Some(entry(frame, index % PER_FRAME))
}

/// The descriptor at guest GDT `index` of a vCPU's descriptor frames, read
/// from machine memory (`None` past the frames or if one is unreadable).
pub fn gdt_entry(frames: &[crate::mm::Mfn], mem: &dyn crate::mm::MachineMemory, index: usize) -> Option<u64> {
    let frame = mem.frame(*frames.get(index / PER_FRAME)?)?;
    Some(entry(frame, index % PER_FRAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flat_64_bit_fast_path_agrees_with_the_descriptor_checks() {
        let none = |_: usize| None;
        let (cs, ss) = (FLAT_RING3_SELECTORS[2], FLAT_RING3_SELECTORS[1]);
        for rip in
            [0, 0x1000, 0x7fff_ffff_ffff, 0x8000_0000_0000, 0xffff_8000_0000_0000, 0xffff_ffff_8000_0000, u64::MAX]
        {
            assert_eq!(
                iret_target_ok(cs, ss, rip, &none, &none),
                descriptors_allow(cs, ss, rip, &none, &none),
                "{rip:#x}"
            );
        }
    }

    #[test]
    fn follows_xens_rules_for_64_bit_pv() {
        let code64_dpl0 = 0x00af_9a00_0000_ffff;
        let code64_dpl3 = 0x00af_fa00_0000_ffff;
        assert_eq!(check(code64_dpl0), Some(code64_dpl3), "DPL raised to 3");
        assert_eq!(check(0x00cf_9200_0000_ffff), Some(0x00cf_f200_0000_ffff), "data");
        assert_eq!(check(0x1234_0000_5678), Some(0x1234_0000_5678), "not present: anything");
        assert_eq!(check(0), Some(0));
        assert_eq!(check(P), Some(P), "system type 0 (a gate's second half)");
        for (what, desc) in [
            ("64-bit TSS", 0x0000_8900_0000_0067u64),
            ("LDT", 0x0000_8200_0000_ffff),
            ("interrupt gate", 0x0000_8e00_0008_0000),
            ("call gate", 0x0000_ec00_e033_0000),
        ] {
            assert_eq!(check(desc), None, "{what}");
        }
    }

    #[test]
    fn pages_are_checked_whole_and_loaded_sanitised() {
        let mut page = [0u8; PAGE_SIZE];
        page[8..16].copy_from_slice(&0x00af_9a00_0000_ffffu64.to_le_bytes());
        assert!(frame_ok(&page));
        page[4088..4096].copy_from_slice(&0x0000_8900_0000_0067u64.to_le_bytes());
        assert!(!frame_ok(&page), "the last descriptor counts too");
        let mut out = [7u64; PER_FRAME];
        load(&page, &mut out);
        assert_eq!((out[0], out[1], out[511]), (0, 0x00af_fa00_0000_ffff, 0));
    }

    #[test]
    fn iret_targets_are_checked_as_the_cpu_would() {
        let gdt = |i: usize| match i {
            1 => Some(0x00af_9a00_0000_ffff), // 64-bit code, DPL 0: raised to 3
            2 => Some(0x00cf_9200_0000_ffff), // data
            3 => Some(0x00cf_fa00_0000_ffff), // 32-bit code, 4 GiB
            4 => Some(0x0040_fa00_0000_0fff), // 32-bit code, 4 KiB limit
            5 => Some(0x00ef_fa00_0000_ffff), // code with L and D both set
            6 => Some(0x00af_7a00_0000_ffff), // 64-bit code, not present
            7 => Some(0x00cf_f000_0000_ffff), // data, read-only
            8 => Some(0x0000_8900_0000_0067), // a TSS (refused by check)
            _ => None,
        };
        let ldt = |i: usize| (i == 0).then_some(0x00cf_fa00_0000_ffff); // 32-bit code
        let ok = |cs: u16, ss: u16, rip: u64| iret_target_ok(cs, ss, rip, &gdt, &ldt);
        assert!(ok(0xe033, 0xe02b, 0x7fff_ffff_f000), "Xen's flat 64-bit selectors");
        assert!(ok(0xe023, 0xe02b, 0xffff_ffff), "Xen's flat 32-bit code: compatibility mode");
        assert!(!ok(0xe023, 0xe02b, 0x1_0000_0000), "beyond 4 GiB in 32-bit code");
        assert!(!ok(0xe033, 0xe02b, 0x8000_0000_0000), "non-canonical in 64-bit code");
        assert!(ok(0x0b, 0x13, 0xffff_8800_0000_0000) && ok(0x1b, 0x13, 0x1000), "the guest's GDT");
        assert!(ok(0x23, 0x13, 0xfff) && !ok(0x23, 0x13, 0x1000), "a byte-granular limit");
        assert!(ok(0x07, 0x13, 0x1000), "the guest's LDT");
        for (cs, ss, what) in [
            (0x03, 0x13, "a null code selector"),
            (0x0b, 0x03, "a null stack selector"),
            (0x13, 0x13, "data as code"),
            (0x0b, 0x0b, "code as stack"),
            (0x0b, 0x3b, "a read-only stack"),
            (0x2b, 0x13, "L and D both set"),
            (0x33, 0x13, "not present"),
            (0x43, 0x13, "a system descriptor"),
            (0x4b, 0x13, "past the GDT's frames"),
            (0x0f, 0x13, "past the LDT"),
            (0xe00b, 0xe02b, "Xen's own code"),
            (0xe043, 0xe02b, "the TSS"),
            (0xe033, 0xe013, "Xen's own data as stack"),
            (0xe031, 0xe02b, "RPL 1"),
            (0xe033, 0xe029, "a stack selector with RPL 1"),
        ] {
            assert!(!ok(cs, ss, 0x1000), "{what}");
        }
    }

    #[test]
    fn data_selectors_load_as_the_cpu_would() {
        let gdt = |i: usize| match i {
            1 => Some(0x00cf_f200_0000_ffff), // data
            2 => Some(0x00cf_7200_0000_ffff), // data, not present
            3 => Some(0x00af_fa00_0000_ffff), // code, readable
            4 => Some(0x00af_f800_0000_ffff), // code, execute-only
            5 => Some(0x00cf_9200_0000_ffff), // data, DPL 0: raised to 3 by check
            _ => None,
        };
        for (sel, ok) in [
            (0, true),
            (3, true),
            (0x0b, true),
            (0x08, true),
            (0x13, false),
            (0x1b, true),
            (0x23, false),
            (0x2b, true),
            (0x33, false),
            (0x0f, false),
            (0xe02b, true),
            (0xe033, true),
            (0xe008, false),
        ] {
            assert_eq!(selector_loadable(sel, &gdt, &|_| None), ok, "selector {sel:#x}");
        }
    }
}
