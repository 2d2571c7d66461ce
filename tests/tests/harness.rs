//! The harness itself, on a stand-in multiboot2 kernel instead of xenish:
//! GRUB boots what it is given, the serial log and the debug-exit status
//! come back, a hung machine is killed at the time limit, and a QEMU that
//! cannot start is told apart from a debug-exit.

use std::path::PathBuf;
use std::time::Duration;

use tests::stub::Stub;
use tests::{target_dir, Boot, Exit};

/// Writes `stub` to a file of its own and returns its path.
fn kernel(name: &str, stub: &Stub) -> PathBuf {
    let dir = target_dir().join("harness-stubs").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    stub.write(&path).unwrap();
    path
}

#[test]
fn grub_loads_the_kernel_and_modules_and_the_debug_exit_value_comes_back() {
    let k = kernel("exit1", &Stub::printing("stub: hello\n").debug_exit(1));
    let out = Boot::with_hypervisor(k.clone()).cmdline("a=b").module(k.clone(), "one").module(k, "two").run();
    out.expect_line("stub: hello").expect_exit(Exit::DebugExit(1));
    assert!(out.elapsed < Duration::from_secs(30), "a stub boot took {:.1?}\n{out}", out.elapsed);
}

#[test]
fn a_hung_machine_is_killed_at_the_time_limit() {
    let k = kernel("hang", &Stub::printing("stub: hanging\n"));
    let out = Boot::with_hypervisor(k).cpu("qemu64").timeout(Duration::from_secs(4)).run();
    out.expect_line("stub: hanging").expect_exit(Exit::TimedOut);
    // The limit is scaled by XENISH_TIMEOUT_SCALE; the kill itself is quick.
    let limit = tests::qemu::scaled(Duration::from_secs(4));
    assert!(out.elapsed < limit + Duration::from_secs(6), "the kill took {:.1?} (limit {limit:.1?})", out.elapsed);
    assert!(out.to_string().contains("TIMED OUT"), "{out}");
}

#[test]
fn until_stops_the_machine_at_the_marker() {
    let k = kernel("marker", &Stub::printing("stub: done\n"));
    let out = Boot::with_hypervisor(k).until("stub: done").timeout(Duration::from_secs(60)).run();
    out.expect_line("stub: done").expect_exit(Exit::Marker);
    assert!(out.elapsed < Duration::from_secs(30), "{out}");
}

#[test]
fn a_qemu_that_cannot_start_is_not_a_debug_exit() {
    let k = kernel("never", &Stub::printing("never printed\n").debug_exit(0));
    let out = Boot::with_hypervisor(k).cpu("no-such-cpu-model").run();
    out.expect_exit(Exit::Qemu(1)).expect_no("never printed");
    assert!(out.qemu_stderr.contains("no-such-cpu-model"), "{out}");
}
