//! Grant tables version 2 and the newer grant operations on xenish and on
//! Debian's Xen 4.17 in the same QEMU: the `gntv2` test guest (status
//! frames, version switches and what blocks them, full-page, sub-page and
//! transitive grants, loops, unmap_and_replace, swap_grant_ref, the pin
//! limit, cache_flush, a transfer to a helper domain it builds) must see
//! exactly the same on both.

use std::time::Duration;

use tests::{debian, images, Boot, Exit};

/// The guest's report, without the console prefix.
fn gntv2_lines(serial: &str) -> Vec<String> {
    serial.lines().filter_map(|l| l.find("gntv2: ").map(|at| l[at..].trim_end().to_string())).collect()
}

#[test]
fn the_gntv2_guest_sees_the_same_on_xenish_and_xen() {
    let xenish = Boot::new().guest("gntv2", "gntv2").timeout(Duration::from_secs(180)).run();
    xenish.expect_no("FAILED").expect_exit(Exit::DebugExit(0));
    let a = gntv2_lines(&xenish.serial);
    assert_eq!(a.last().map(String::as_str), Some("gntv2: done"), "xenish did not finish\n{xenish}");
    for line in [
        "gntv2: set_version 2: (0, 2)",
        "gntv2: get_status_frames 1: (0, 0)",
        "gntv2: set_version 1 while mapped: (-16, 2)",
        "gntv2: the window now shows the other page: true",
        "gntv2: copied Ok(\"two grants\")",
        "gntv2: device mappings of one entry: 128, then -1",
        "gntv2: reserved entry 1 kept: true",
        "gntv2: transitive copy: 0",
        "gntv2: transitive twice: -1",
    ] {
        assert!(a.iter().any(|l| l == line), "xenish: no line {line:?}\n{xenish}");
    }
    let xen = debian::xen().unwrap_or_else(|e| panic!("{e}"));
    let on_xen = Boot::with_hypervisor(xen)
        .cpu("max,-smap")
        .cmdline(&format!("{} {}", debian::XEN_CMDLINE, debian::XEN_TEST_DOM0_MEM))
        .module(images().guest("gntv2"), "gntv2")
        .until("Hardware Dom0 ")
        .timeout(Duration::from_secs(180))
        .run();
    let b = gntv2_lines(&on_xen.serial);
    println!("{}", b.join("\n"));
    assert_eq!(a, b, "grant tables v2 differ between xenish and Xen 4.17\n{on_xen}");
}
