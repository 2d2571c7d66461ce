//! `cargo xtask test`: every test of the workspace — host unit tests, the
//! ABI conformance check, the QEMU system tests — in one `cargo test`, with
//! the boot images built once beforehand and a summary at the end.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode};

/// One test binary's (or doc-test run's) counts.
#[derive(Clone, Debug, Default, PartialEq)]
struct Suite {
    name: String,
    passed: u64,
    failed: u64,
    ignored: u64,
    /// How long its tests ran (`finished in ...s`), in seconds.
    secs: f64,
}

/// What the output of `cargo test` says, read line by line.
#[derive(Debug, Default)]
struct Summary {
    /// The suite cargo announced last (`Running tests/boot.rs (...)`).
    current: String,
    suites: Vec<Suite>,
    /// Names of the tests that failed, with their suite.
    failures: Vec<String>,
}

impl Summary {
    /// Reads one line of cargo's stderr.
    fn cargo_line(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Running ") {
            // "Running tests/boot.rs (target/debug/deps/boot-...)"
            let what = rest.split(" (").next().unwrap_or(rest);
            let krate = rest.rsplit('/').next().and_then(|bin| bin.rsplit_once('-')).map_or("", |(name, _)| name);
            self.current = if what.starts_with("unittests") { format!("{krate} (unit)") } else { what.to_string() };
        } else if let Some(krate) = line.strip_prefix("Doc-tests ") {
            self.current = format!("{krate} (doc)");
        }
    }

    /// Reads one line of the test binaries' stdout.
    fn test_line(&mut self, line: &str) {
        if let Some(name) = line.strip_prefix("test ").and_then(|l| l.strip_suffix(" ... FAILED")) {
            self.failures.push(format!("{name}  [{}]", self.current));
        }
        let Some(rest) = line.strip_prefix("test result: ") else { return };
        let count = |what: &str| {
            rest.split(';')
                .find_map(|part| part.trim().trim_start_matches(|c: char| !c.is_ascii_digit()).strip_suffix(what))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let secs = rest
            .split("finished in ")
            .nth(1)
            .and_then(|t| t.trim().strip_suffix('s'))
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0);
        self.suites.push(Suite {
            name: self.current.clone(),
            passed: count(" passed"),
            failed: count(" failed"),
            ignored: count(" ignored"),
            secs,
        });
    }

    fn total(&self, f: impl Fn(&Suite) -> u64) -> u64 {
        self.suites.iter().map(f).sum()
    }

    /// The closing report: suites that ran something (with how long each
    /// ran: cargo runs the test binaries one after another), the failures,
    /// and the overall `N passed, N failed` line.
    fn report(&self) -> String {
        let mut out = String::from("\nxtask: summary\n");
        let width = self.suites.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in self.suites.iter().filter(|s| s.passed + s.failed + s.ignored > 0) {
            let mut line = format!("  {:<width$}  {:>4} passed", s.name, s.passed);
            if s.failed > 0 {
                line.push_str(&format!(", {} FAILED", s.failed));
            }
            if s.ignored > 0 {
                line.push_str(&format!(", {} ignored", s.ignored));
            }
            if s.secs >= 1.0 {
                line = format!("{line:<42} {:>5.0} s", s.secs);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if !self.failures.is_empty() {
            out.push_str("failed tests:\n");
            for f in &self.failures {
                out.push_str(&format!("  {f}\n"));
            }
        }
        out.push_str(&format!("xtask: {} passed, {} failed\n", self.total(|s| s.passed), self.total(|s| s.failed)));
        out
    }
}

/// The system-test files that run in the second lane (about half the
/// suite's time; every other file runs in the first): see [`run`]. CI of
/// 2026-12-07 with two lanes (seconds): the first lane's files about
/// 2,000, the second's (netif, qos, blkif, xl, dom0_domus) 1,390; but
/// 880 s of the first's were [`ALONE`]'s boots waiting for the machine,
/// so without them `xl` (161) moved to the first.
const SECOND_LANE: [&str; 4] = ["netif", "qos", "blkif", "dom0_domus"];

/// The tests that measure CPU shares in wall-clock time (their boots take
/// every QEMU slot, `Boot::exclusive`), by file: with two lanes they run
/// after both, on their own. In a lane each waited, holding one idle
/// slot, for the other lane's longest boot (a Xen boot of minutes) to end;
/// the three cost the first lane 880 s in CI on 2026-12-07.
const ALONE: (&str, [&str; 3]) = (
    "domains",
    [
        "weights_share_the_cpu_two_to_one",
        "a_capped_domain_stays_under_its_cap",
        "the_control_domain_caps_another_at_run_time",
    ],
);

/// Runs every test of the workspace in `root` with the images in
/// `images_dir` and the toolstack's static binaries in `tools_dir`, and
/// prints its output followed by the summary.
///
/// cargo runs test binaries one after another, and a comparison test
/// boots xenish beside Xen 4.17, whose boots take two to three times as
/// long under TCG: one host CPU idles for long stretches. So by default
/// the tests run in two lanes of `cargo test` side by side (the first:
/// every package's unit and doc tests and most system-test files; the
/// second: the [`SECOND_LANE`] files), and QEMU boots take their slots
/// from one pool for the machine (`XENISH_QEMU_SLOTS_DIR`,
/// `tests::qemu::Slots`), so that at most one emulated CPU per host CPU
/// runs at once, whichever lane starts it; then the [`ALONE`] tests, which
/// the lanes skip. `XENISH_TEST_LANES=1`: one `cargo test --workspace`
/// instead. Each test binary's output is printed in one piece when it
/// ends.
pub fn run(root: &Path, images_dir: &Path, tools_dir: &Path) -> Result<ExitCode, String> {
    eprintln!("xtask: running host unit tests, ABI conformance and QEMU system tests...");
    let started = std::time::Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Built once, before the lanes start (they would wait for each other's
    // build otherwise).
    let built = Command::new(&cargo)
        .current_dir(root)
        .args(["test", "--workspace", "--no-run"])
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    if !built.success() {
        return Err("cargo test --no-run failed: the tests do not build".into());
    }
    let show = ["--".to_string(), "--show-output".to_string()];
    let two = match std::env::var("XENISH_TEST_LANES").as_deref().map(str::trim) {
        Err(_) | Ok("2") => true,
        Ok("1") => false,
        Ok(other) => return Err(format!("XENISH_TEST_LANES={other}: want 1 or 2")),
    };
    let lanes: Vec<Vec<Vec<String>>> = if two {
        let files = system_test_files(&root.join("tests").join("tests"))?;
        let (second, first): (Vec<String>, Vec<String>) =
            files.into_iter().partition(|f| SECOND_LANE.contains(&f.as_str()));
        let with_tests = |base: &[&str], files: &[String]| -> Vec<String> {
            let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            for f in files {
                args.extend(["--test".to_string(), f.clone()]);
            }
            args.extend(show.clone());
            if files.iter().any(|f| f == ALONE.0) {
                for name in ALONE.1 {
                    args.extend(["--skip".to_string(), name.to_string()]);
                }
            }
            args
        };
        eprintln!("xtask: two lanes of cargo test side by side (XENISH_TEST_LANES=1 for one)");
        vec![
            vec![
                ["test", "--workspace", "--exclude", "tests", "--no-fail-fast"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(show.clone())
                    .collect(),
                with_tests(&["test", "-p", "tests", "--no-fail-fast", "--lib"], &first),
                ["test", "-p", "tests", "--doc"].iter().map(|s| s.to_string()).chain(show.clone()).collect(),
            ],
            vec![with_tests(&["test", "-p", "tests", "--no-fail-fast"], &second)],
            // After both lanes (see below): ALONE's tests.
            vec![["test", "-p", "tests", "--test", ALONE.0, "--", "--show-output", "--exact"]
                .iter()
                .map(|s| s.to_string())
                .chain(ALONE.1.iter().map(|s| s.to_string()))
                .collect()],
        ]
    } else {
        vec![vec![["test", "--workspace", "--no-fail-fast"]
            .iter()
            .map(|s| s.to_string())
            .chain(show.clone())
            .collect()]]
    };
    let slots = two.then(|| ::tests::images::target_dir().join("qemu-slots"));
    let print = std::sync::Mutex::new(());
    // With two lanes the last "lane" (ALONE's tests) runs after the others.
    let (side_by_side, after) = lanes.split_at(if two { 2 } else { lanes.len() });
    let mut results: Vec<Result<(Summary, bool), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = side_by_side
            .iter()
            .map(|commands| {
                let (cargo, print, slots) = (&cargo, &print, slots.as_deref());
                scope.spawn(move || lane(root, cargo, commands, (images_dir, tools_dir, slots), print))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a lane's thread panicked".into()))).collect()
    });
    for commands in after {
        eprintln!("xtask: the tests that measure CPU shares, alone on the machine");
        results.push(lane(root, &cargo, commands, (images_dir, tools_dir, slots.as_deref()), &print));
    }
    let mut summary = Summary::default();
    let mut ok = true;
    for r in results {
        let (lane_summary, lane_ok) = r?;
        summary.suites.extend(lane_summary.suites);
        summary.failures.extend(lane_summary.failures);
        ok &= lane_ok;
    }
    print!("{}", summary.report());
    let took = started.elapsed().as_secs();
    println!("xtask: the tests took {} min {} s", took / 60, took % 60);
    if !ok && summary.total(|s| s.failed) == 0 {
        println!("xtask: cargo test itself failed; see its output above");
    }
    Ok(if ok && summary.total(|s| s.failed) == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The system-test files (`tests/tests/NAME.rs`), by name.
fn system_test_files(dir: &Path) -> Result<Vec<String>, String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_string))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs one lane's `cargo` commands (`commands`, each its arguments) one
/// after another, reading their output into a summary; each test binary's
/// output is printed, under `print`, when its result line arrives. Whether
/// every command succeeded comes with the summary.
fn lane(
    root: &Path,
    cargo: &str,
    commands: &[Vec<String>],
    (images_dir, tools_dir, slots): (&Path, &Path, Option<&Path>),
    print: &std::sync::Mutex<()>,
) -> Result<(Summary, bool), String> {
    let mut summary = Summary::default();
    let mut ok = true;
    for args in commands {
        // cargo's stderr (which suite runs) and the test binaries' stdout
        // (what each test did) share one pipe, so their lines arrive in the
        // order they were written and every result is counted under its own
        // suite.
        let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let writer2 = writer.try_clone().map_err(|e| format!("cannot make a pipe: {e}"))?;
        // --show-output: passing tests' output is shown too (the
        // conformance check prints what it compared; system tests print
        // their boot times).
        // The command is dropped at the end of this block: it holds the
        // pipe's write ends, and the reader below sees its end only once
        // no copy of them is left on this side.
        let mut child = {
            let mut command = Command::new(cargo);
            // Tests run in parallel within a binary (cargo's default, a
            // thread per CPU), and with two lanes two binaries at once: the
            // boots' slots (`tests::qemu::Slots`) keep QEMU to one emulated
            // CPU per host CPU across both.
            command
                .current_dir(root)
                .args(args)
                .env("XENISH_IMAGES_DIR", images_dir)
                .env("XENISH_TOOLS_DIR", tools_dir)
                .stdout(writer)
                .stderr(writer2);
            if let Some(dir) = slots {
                command.env("XENISH_QEMU_SLOTS_DIR", dir);
            }
            command.spawn().map_err(|e| format!("cannot run cargo test: {e}"))?
        };
        let mut chunk = String::new();
        let flush = |chunk: &mut String| {
            let _one = print.lock().unwrap_or_else(|p| p.into_inner());
            print!("{chunk}");
            chunk.clear();
        };
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            summary.cargo_line(&line);
            summary.test_line(&line);
            if line.contains("has been running for over") {
                // Progress, shown at once.
                let _one = print.lock().unwrap_or_else(|p| p.into_inner());
                println!("{line}");
                continue;
            }
            chunk.push_str(&line);
            chunk.push('\n');
            if line.starts_with("test result: ") {
                flush(&mut chunk);
            }
        }
        flush(&mut chunk);
        ok &= child.wait().map_err(|e| format!("waiting for cargo test: {e}"))?.success();
    }
    Ok((summary, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_up_suites_and_names_failures() {
        let mut s = Summary::default();
        s.cargo_line("     Running unittests src/lib.rs (target/debug/deps/xenish-fcecd8a18373d0dd)");
        s.test_line("test mm::frames ... ok");
        s.test_line("test result: ok. 90 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.51s");
        s.cargo_line("     Running tests/boot.rs (target/debug/deps/boot-c95136b6b585d10d)");
        s.test_line("test dom0_mem_sizes_dom0 ... FAILED");
        s.test_line("test result: FAILED. 5 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 3.2s");
        s.cargo_line("   Doc-tests guest_abi");
        s.test_line("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        assert_eq!(s.suites.len(), 3);
        assert_eq!(s.suites[0], Suite { name: "xenish (unit)".into(), passed: 90, failed: 0, ignored: 0, secs: 0.51 });
        assert_eq!(s.suites[1], Suite { name: "tests/boot.rs".into(), passed: 5, failed: 1, ignored: 2, secs: 3.2 });
        assert_eq!(s.failures, ["dom0_mem_sizes_dom0  [tests/boot.rs]"]);
        let report = s.report();
        assert!(report.ends_with("xtask: 95 passed, 1 failed\n"), "{report}");
        assert!(report.lines().any(|l| l.starts_with("  tests/boot.rs") && l.ends_with(" 3 s")), "{report}");
        assert!(report.lines().any(|l| l.starts_with("  xenish (unit)") && l.ends_with("90 passed")), "{report}");
        assert!(!report.contains("(doc)"), "suites that ran nothing are left out\n{report}");
    }

    /// The tests the lanes skip and run alone exist under those names
    /// (else the lanes would run them after all, and the last step
    /// nothing).
    #[test]
    fn the_tests_run_alone_exist() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/tests/{}.rs", ALONE.0));
        let text = std::fs::read_to_string(&file).expect("the test file");
        for name in ALONE.1 {
            assert!(text.contains(&format!("#[test]\nfn {name}() {{")), "{name} in {}", file.display());
        }
    }

    /// A lane ends when its commands do: nothing on this side keeps their
    /// output pipe open (a held write end made `cargo xtask test` wait
    /// forever after the last test).
    #[test]
    fn a_lane_ends_with_its_commands_and_counts_their_results() {
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let script = "echo '     Running tests/boot.rs (target/debug/deps/boot-0123)' >&2; \
                          echo 'test result: ok. 3 passed; 0 failed; 0 ignored; finished in 1.5s'";
            let commands = [vec!["-c".to_string(), script.to_string()]];
            let tmp = std::env::temp_dir();
            let print = std::sync::Mutex::new(());
            let _ = done.send(lane(&tmp, "sh", &commands, (&tmp, &tmp, None), &print));
        });
        let result = ended.recv_timeout(std::time::Duration::from_secs(30)).expect("the lane did not end");
        let (summary, ok) = result.expect("the lane ran");
        assert!(ok);
        assert_eq!(
            summary.suites,
            [Suite { name: "tests/boot.rs".into(), passed: 3, failed: 0, ignored: 0, secs: 1.5 }]
        );
    }
}
