//! The benchmark kernel's correctness (never its timings): every operation
//! it knows either succeeds with a well-formed result line or is reported
//! missing, and it finishes.

use tests::{Boot, Exit};

const OPS: &[&str] = &[
    "null_hypercall",
    "mmu_update_1pte",
    "update_va_mapping_invlpg",
    "evtchn_roundtrip",
    "grant_copy_4k",
    "memcpy_4k",
    "pagefault_bounce",
    "syscall_roundtrip",
];

#[test]
fn bench_kernel_runs_and_its_output_parses() {
    let out = Boot::new().cmdline("dom0_mem=64M").guest("bench", "bench").run();
    out.expect_line("(d0) bench: start").expect_line("(d0) bench: done").expect_exit(Exit::DebugExit(0));
    for op in OPS {
        let line = out
            .serial
            .lines()
            .find(|l| l.starts_with(&format!("(d0) bench: {op} ")))
            .unwrap_or_else(|| panic!("no result for {op}\n{out}"));
        let rest = &line[format!("(d0) bench: {op} ").len()..];
        let ok = rest.starts_with("missing ")
            || rest.split_whitespace().map(|kv| kv.split_once('=')).all(
                |kv| matches!(kv, Some((k, v)) if ["median", "p99", "n"].contains(&k) && v.parse::<u64>().is_ok()),
            );
        assert!(ok, "malformed result line {line:?}\n{out}");
    }
    // xenish implements every operation: none may be reported missing.
    for op in OPS {
        out.expect_no(&format!("bench: {op} missing"));
    }
}

/// The Linux-level rows' measuring program (`xenish-linuxbench`, dom0's
/// `/init` in `cargo xtask bench`), with its counts divided by 100: every
/// row prints a well-formed line, and Linux powers off after it.
#[test]
fn linux_rows_run_and_their_output_parses() {
    const ROWS: &[&str] =
        &["boot_to_init", "fork_exit", "fork_exec", "pipe_roundtrip", "ctxsw_pingpong", "touch_unmap_64m"];
    let tools = tests::dom0::tools_dir().unwrap_or_else(|e| panic!("{e}"));
    let program = std::fs::read(tools.join("xenish-linuxbench")).unwrap_or_else(|e| panic!("xenish-linuxbench: {e}"));
    let cpio = tests::initramfs::Cpio::new().dir("dev").dir("proc").dir("tmp").file("init", 0o755, &program).finish();
    let initrd = tests::target_dir().join("debian").join("linuxbench-test.cpio");
    std::fs::create_dir_all(initrd.parent().expect("a parent")).expect("target/debian");
    std::fs::write(&initrd, cpio).expect("the initramfs");
    let kernel = tests::debian::linux().unwrap_or_else(|e| panic!("{e}"));
    let out = Boot::new()
        .cpu(tests::linux::CPU)
        .memory_mib(tests::linux::QEMU_MEMORY_MIB)
        .cmdline(tests::linux::DOM0_MEM)
        .module(kernel, &format!("{} LINUXBENCH_DIVIDE=100", tests::linux::KERNEL_CMDLINE))
        .module(initrd, "")
        .timeout(std::time::Duration::from_secs(300))
        .run();
    out.expect_line("linuxbench: start").expect_line("linuxbench: done").expect_no("linuxbench: error");
    for row in ROWS {
        let line = out
            .serial
            .lines()
            .find_map(|l| l.split_once(&format!("linuxbench: {row} ")).map(|(_, rest)| rest.trim_end().to_string()))
            .unwrap_or_else(|| panic!("no result for {row}\n{out}"));
        let fields: Vec<(&str, u64)> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').and_then(|(k, v)| Some((k, v.parse::<u64>().ok()?))))
            .collect();
        assert!(
            matches!(fields.as_slice(), [("ns", ns), ("n", n)] if *ns > 0 && *n > 0),
            "malformed result line {row} {line:?}\n{out}"
        );
    }
    out.expect_line("xenish:   d0 (dom0): poweroff").expect_exit(Exit::DebugExit(0));
}
