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
