//! Machines of every size, as a new user boots them: no `dom0_mem`, so
//! dom0 gets what Xen 4.17's rule gives (`dom0_compute_nr_pages`: all the
//! memory available less a reserve of 1/16, at most 128 MiB), RAM above
//! 4 GiB included; and `dom0_mem` still decides when it is given. The
//! `hello` guest must run and power off cleanly, and report the size the
//! rule gives. Under TCG a 16 GiB machine costs only what is touched, so
//! these boots stay fast as long as the hypervisor scrubs nothing it never
//! handed out.

use tests::{Boot, Exit, Outcome};

/// Bytes in a page.
const PAGE: u64 = 4096;
/// Xen's largest default reserve, 128 MiB, in pages.
const RESERVE_MAX: u64 = (128 << 20) / PAGE;

/// The RAM ranges of the memory map xenish printed (QEMU's, through
/// SeaBIOS and GRUB): `xenish:   0x... - 0x... usable`.
fn ram_ranges(serial: &str) -> Vec<(u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("xenish:   ")?.strip_suffix(" usable"))
        .filter_map(|r| {
            let (start, end) = r.split_once(" - ")?;
            Some((hex(start)?, hex(end)?))
        })
        .collect()
}

/// Frames wholly inside the RAM ranges above the first MiB, which the
/// hypervisor never hands out: what it can use at all.
fn usable_frames(ram: &[(u64, u64)]) -> u64 {
    ram.iter().map(|&(start, end)| (end / PAGE).saturating_sub(start.max(1 << 20).div_ceil(PAGE))).sum()
}

/// Xen's default dom0 size out of `avail` pages.
fn xen_default(avail: u64) -> u64 {
    avail - (avail / 16).min(RESERVE_MAX)
}

/// The number after `key` in the line of `serial` that contains `marker`.
fn number_after(serial: &str, marker: &str, key: &str) -> Option<u64> {
    let line = serial.lines().find(|l| l.contains(marker))?;
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// dom0's size and the pages available, as the boot log reports them:
/// `xenish: d0: N of A available pages for dom0 (...)`.
fn dom0_sizing(out: &Outcome) -> (u64, u64) {
    let line = out.serial.lines().find(|l| l.contains("available pages for dom0"));
    let parsed = line.and_then(|l| {
        let mut words = l.strip_prefix("xenish: d0: ")?.split(' ');
        let nr = words.next()?.parse().ok()?;
        let avail = words.nth(1)?.parse().ok()?;
        Some((nr, avail))
    });
    parsed.unwrap_or_else(|| panic!("no dom0 sizing line\n{out}"))
}

/// Boots `hello` as dom0 on a machine of `mib` MiB with `cmdline`, and
/// checks it ran and powered off; returns the boot and the nr_pages the
/// guest found in its start_info.
fn hello(mib: u32, cmdline: &str) -> (Outcome, u64) {
    let out = Boot::new().memory_mib(mib).cmdline(cmdline).guest("hello", "hello").run();
    out.expect_line("(d0) Hello from a xenish PV guest")
        .expect_line("(d0) running on Xen ABI 4.17")
        .expect_line("xenish: d0 shut down: poweroff")
        .expect_no("xenish: PANIC")
        .expect_no("hypervisor fault")
        .expect_no("out of memory")
        .expect_exit(Exit::DebugExit(0));
    let nr_pages = number_after(&out.serial, "(d0) magic=", "nr_pages=");
    let nr_pages = nr_pages.unwrap_or_else(|| panic!("the guest did not report nr_pages\n{out}"));
    (out, nr_pages)
}

/// A boot without `dom0_mem` on `mib` MiB: dom0's size is Xen's default
/// over what is available, which is all usable RAM but what the
/// hypervisor keeps for itself (its image, heap and page tables, the frame
/// table and the M2P: about 1/128 of the memory map's span). Returns the
/// pages available and the usable frames above 4 GiB.
fn default_size_on(mib: u32) -> (u64, u64) {
    let (out, guest_pages) = hello(mib, "");
    let ram = ram_ranges(&out.serial);
    assert!(!ram.is_empty(), "no memory map in the log\n{out}");
    let usable = usable_frames(&ram);
    let span = ram.iter().map(|&(_, end)| end).max().unwrap_or(0) / PAGE;
    let (nr_pages, avail) = dom0_sizing(&out);
    let kept = span / 100 + (16 << 20) / PAGE;
    assert!(avail <= usable, "{avail} pages available of {usable} usable\n{out}");
    assert!(avail + kept >= usable, "the hypervisor kept {} of {usable} frames\n{out}", usable - avail);
    assert_eq!(nr_pages, xen_default(avail), "Xen's rule over {avail} pages\n{out}");
    assert_eq!(guest_pages, nr_pages, "what dom0 was given\n{out}");
    out.expect_line("(no dom0_mem: all but min(1/16, 128 MiB))");
    let high = usable_frames(&ram.iter().map(|&(s, e)| (s.max(4 << 30), e.max(4 << 30))).collect::<Vec<_>>());
    (avail, high)
}

#[test]
fn one_gib_without_dom0_mem_keeps_a_sixteenth_back() {
    let (avail, high) = default_size_on(1024);
    assert_eq!(high, 0);
    assert!(avail / 16 < RESERVE_MAX, "the 1/16 branch of the rule");
}

#[test]
fn four_gib_without_dom0_mem_uses_ram_above_4_gib() {
    let (avail, high) = default_size_on(4096);
    assert!(high > 0, "QEMU puts the top GiB above 4 GiB");
    let below = (4u64 << 30) / PAGE - high.min((4u64 << 30) / PAGE);
    assert!(avail > below, "dom0's memory counts RAM above 4 GiB");
    assert!(avail / 16 > RESERVE_MAX, "the 128 MiB branch of the rule");
}

#[test]
fn sixteen_gib_without_dom0_mem_gives_dom0_all_but_128_mib() {
    let (avail, high) = default_size_on(16 * 1024);
    assert!(high >= (12u64 << 30) / PAGE, "13 GiB above 4 GiB");
    assert!(avail > (15u64 << 30) / PAGE, "{avail} pages available");
}

#[test]
fn sixteen_gib_with_dom0_mem_gives_dom0_what_it_says() {
    let (out, guest_pages) = hello(16 * 1024, "dom0_mem=512M");
    let (nr_pages, _) = dom0_sizing(&out);
    assert_eq!((nr_pages, guest_pages), (131_072, 131_072), "512 MiB\n{out}");
    out.expect_line("(as dom0_mem says)");
}
