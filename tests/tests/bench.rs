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

/// Checks that every row of `lines` (the program's output) is a
/// well-formed `linuxbench: ROW ns=TOTAL n=N` line.
fn expect_rows(lines: &str, who: &str, out: &tests::Outcome) {
    assert!(
        lines.contains("linuxbench: start") && lines.contains(tests::linuxbench::DONE),
        "{who}: no start or done\n{out}"
    );
    assert!(!lines.contains("linuxbench: error"), "{who}: an error\n{out}");
    for row in tests::linuxbench::ROWS {
        let line = lines
            .lines()
            .find_map(|l| l.split_once(&format!("linuxbench: {row} ")).map(|(_, rest)| rest.trim_end().to_string()))
            .unwrap_or_else(|| panic!("{who}: no result for {row}\n{out}"));
        let fields: Vec<(&str, u64)> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').and_then(|(k, v)| Some((k, v.parse::<u64>().ok()?))))
            .collect();
        assert!(
            matches!(fields.as_slice(), [("ns", ns), ("n", n)] if *ns > 0 && *n > 0),
            "{who}: malformed result line {row} {line:?}\n{out}"
        );
    }
}

/// The Linux-level rows' measuring program (`xenish-linuxbench`, the
/// `/init` of dom0 and of a domU in `cargo xtask bench`), with its counts
/// divided by 100, in one boot of the dom0 image: dom0 runs it, then
/// creates a Linux domU with it as `/init` (as the bench's domU rows do),
/// which prints every row and powers itself off.
#[test]
fn linux_rows_run_and_their_output_parses_in_dom0_and_a_domu() {
    let tools = tests::dom0::tools_dir().unwrap_or_else(|e| panic!("{e}"));
    let files = tests::linuxbench::domu_files(&tools, true).unwrap_or_else(|e| panic!("{e}"));
    let script = format!(
        "{}for i in $(seq 30); do xl list {name} >/dev/null 2>&1 || break; sleep 1; done\n\
         xl list {name} >/dev/null 2>&1 || echo \"bench: domU gone\"\n",
        tests::linuxbench::domu_script(100, Some(100)),
        name = tests::linuxbench::DOMU_NAME
    );
    let image = tests::dom0::image_with("bench-linuxbench", Some(&script), &files, tests::dom0::OwnDaemons::Start)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Boot::new()
        .cpu(tests::linux::CPU)
        .memory_mib(tests::linux::QEMU_MEMORY_MIB)
        .cmdline(tests::linux::DOM0_MEM)
        .module(image.kernel, tests::dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(tests::dom0::AUTORUN_DONE)
        .timeout(std::time::Duration::from_secs(400))
        .run();
    let (domu, dom0) = tests::linuxbench::split_domu(&out.serial);
    expect_rows(&dom0, "dom0", &out);
    expect_rows(&domu, "domU", &out);
    // The domU powered itself off at the end (on_poweroff = "destroy").
    out.expect_line("bench: domU gone");
}

/// The SMP scaling rows' control domain (`cargo xtask bench --only
/// scaling`) with 200 ms loops on two CPUs (guests on both): it builds one
/// measuring domain pinned to CPU 1 (`XEN_DOMCTL_setvcpuaffinity`), then
/// two pinned one per CPU; each runs both loops (null hypercalls,
/// event-channel round trips through its own upcall) and powers off, and
/// every line parses. Counts only: how fast is the benchmark's business.
/// The run on CPU 1 alone is the regression test of a lost wake-up: the
/// kick that sends an AP to the guests was taken by its interrupt
/// handler while it halted, so a domain pinned there never ran
/// ("stuck").
#[test]
fn scaling_rows_run_and_their_output_parses() {
    let out = Boot::new()
        .smp(2)
        .accel("tcg,thread=multi")
        .cmdline("dom0_mem=64M dom0_max_vcpus=1")
        .guest("scaling", "scaling runs=1@1,2 ms=200")
        .until("scaling: done")
        .run();
    out.expect_line("(d0) scaling: start ms=200 cpus=2").expect_line("(d0) scaling: done").expect_no("FAILED");
    let lines: Vec<&str> = out.serial.lines().filter_map(|l| l.split_once("(d0) scaling: ").map(|(_, r)| r)).collect();
    for line in &lines {
        eprintln!("  {line}");
    }
    // Each domain's line: both loops counted something over a positive
    // time, on the CPU it was pinned to: 1 alone, then 0 and 1.
    let domains: Vec<&&str> = lines.iter().filter(|l| l.starts_with('d') && l.contains(" cpu=")).collect();
    assert_eq!(domains.len(), 3, "one domain, then two (none stuck)\n{out}");
    for (line, cpu) in domains.into_iter().zip(["1", "0", "1"]) {
        let field = |key: &str| line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
        for row in ["null_hypercall", "evtchn_roundtrip"] {
            let counted = field(row)
                .and_then(|v| v.split_once('/'))
                .and_then(|(ops, ns)| Some((ops.parse::<u64>().ok()?, ns.parse::<u64>().ok()?)));
            assert!(matches!(counted, Some((ops, ns)) if ops > 0 && ns > 0), "{row} in {line:?}\n{out}");
        }
        assert_eq!((field("cpu"), field("pinned")), (Some(cpu), Some("yes")), "{line:?}\n{out}");
    }
    for (n, first) in [(1, 1), (2, 0)] {
        let result = lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("result domains={n} first={first} ")))
            .unwrap_or_else(|| panic!("no result for {n} domains\n{out}"));
        let rates: Vec<u64> = result
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| ["null_hypercall", "evtchn_roundtrip"].contains(k))
            .filter_map(|(_, v)| v.parse().ok())
            .collect();
        assert!(rates.len() == 2 && rates.iter().all(|&r| r > 0), "{result:?}\n{out}");
    }
}
