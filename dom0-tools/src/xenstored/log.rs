//! The daemon's log: errors always, details with `--verbose`, everything
//! to the `--trace-file` when one is given.
//!
//! Single-threaded daemon, one global sink: a `Mutex` only to make the
//! static safe. Once the daemon is in the background its stderr is
//! `/dev/null`, so the trace file is where a detached daemon's log goes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

struct Sink {
    verbose: bool,
    trace: Option<File>,
}

static SINK: Mutex<Sink> = Mutex::new(Sink { verbose: false, trace: None });

/// Sets up the log; an unopenable trace file is reported and skipped.
pub fn init(verbose: bool, trace: Option<&Path>) {
    let trace = trace.and_then(|path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| eprintln!("xenstored: could not open tracefile {}: {e}", path.display()))
            .ok()
    });
    if let Ok(mut sink) = SINK.lock() {
        sink.verbose = verbose;
        sink.trace = trace;
    }
}

fn emit(always: bool, msg: &str) {
    let Ok(mut sink) = SINK.lock() else { return };
    if always || sink.verbose {
        eprintln!("xenstored: {msg}");
    }
    if let Some(f) = sink.trace.as_mut() {
        let _ = writeln!(f, "{msg}");
    }
}

/// Something went wrong.
pub fn error(msg: &str) {
    emit(true, msg);
}

/// A message for the trace file only.
pub fn record(msg: &str) {
    let Ok(mut sink) = SINK.lock() else { return };
    if let Some(f) = sink.trace.as_mut() {
        let _ = writeln!(f, "{msg}");
    }
}

/// A detail for `--verbose`.
pub fn info(msg: &str) {
    emit(false, msg);
}
