//! `cargo xtask fuzz`: the hypercall fuzzer's long run.
//!
//! The fuzzer is a test of the hypervisor crate (`hypercall::fuzz`, over
//! the hypercall layer's test world); the long run is its `#[ignore]`d
//! `long_run` test, built in release mode and driven by
//! `XENISH_FUZZ_SEED` and `XENISH_FUZZ_ITERATIONS`. The test prints the
//! calls per second, the counts per hypercall and the totals, or the seed
//! and step of the first failure.

use std::process::{Command, ExitCode};

/// Runs `iterations` fuzzer steps from `seed` (the fuzzer's default if
/// none) in release mode; the exit code is the test's.
pub fn run(iterations: Option<u64>, seed: Option<String>) -> Result<ExitCode, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--release", "-p", "xenish", "--lib", "hypercall::fuzz::long_run", "--"]).args([
        "--ignored",
        "--exact",
        "--nocapture",
    ]);
    let iterations = iterations.map(|n| n.to_string()).or_else(|| std::env::var("XENISH_FUZZ_ITERATIONS").ok());
    let seed = seed.or_else(|| std::env::var("XENISH_FUZZ_SEED").ok());
    cmd.env("XENISH_FUZZ_ITERATIONS", iterations.as_deref().unwrap_or("1000000"));
    if let Some(s) = &seed {
        cmd.env("XENISH_FUZZ_SEED", s);
    }
    eprintln!(
        "xtask: fuzzing: {} hypercalls, seed {} (release build of xenish's tests)",
        iterations.as_deref().unwrap_or("1000000"),
        seed.as_deref().unwrap_or("0x5eed (default)"),
    );
    let status = cmd.status().map_err(|e| format!("cannot run cargo test: {e}"))?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
