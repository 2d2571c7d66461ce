//! `xenish-randread`: 4 KiB random reads from a block device for a fixed
//! time, one at a time (queue depth 1), with `O_DIRECT` so that every read
//! reaches the device's driver; prints how many it did.
//!
//! `cargo xtask bench` runs it in a Linux domU against its `xvd*` disks
//! to measure a block backend's random-read IOPS (busybox's `dd` would
//! need one process per read, and the process would be what is timed).
//! Output, one line: `randread: DEVICE READS reads of 4096 bytes in MICROS us`.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::process::exit;
use std::time::{Duration, Instant};

const USAGE: &str = "Usage: xenish-randread DEVICE SECONDS

Reads 4096-byte blocks at random aligned offsets of DEVICE (opened with
O_DIRECT), one at a time, for SECONDS seconds, and prints
'randread: DEVICE N reads of 4096 bytes in T us'.";

/// The read size and alignment `O_DIRECT` needs.
const BLOCK: usize = 4096;

/// xorshift64*: enough to spread offsets, with no dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn run(device: &str, seconds: u64) -> Result<(u64, Duration), String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
        .map_err(|e| format!("{device}: {e}"))?;
    let size = std::io::Seek::seek(&mut &file, std::io::SeekFrom::End(0)).map_err(|e| format!("{device}: {e}"))?;
    let blocks = size / BLOCK as u64;
    if blocks == 0 {
        return Err(format!("{device}: smaller than one block"));
    }
    // O_DIRECT wants an aligned buffer: the aligned block inside two.
    let mut raw = vec![0u8; 2 * BLOCK];
    let skip = raw.as_ptr().align_offset(BLOCK);
    let buf = &mut raw[skip..skip + BLOCK];
    let (limit, start) = (Duration::from_secs(seconds), Instant::now());
    let (mut state, mut reads) = (0x9e37_79b9_7f4a_7c15u64, 0u64);
    while start.elapsed() < limit {
        let offset = (next(&mut state) % blocks) * BLOCK as u64;
        file.read_exact_at(buf, offset).map_err(|e| format!("{device}: read at {offset}: {e}"))?;
        reads += 1;
    }
    Ok((reads, start.elapsed()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(device), Some(Ok(seconds)), 2) = (args.first(), args.get(1).map(|s| s.parse::<u64>()), args.len()) else {
        eprintln!("{USAGE}");
        exit(2);
    };
    match run(device, seconds) {
        Ok((reads, took)) => println!("randread: {device} {reads} reads of {BLOCK} bytes in {} us", took.as_micros()),
        Err(e) => {
            eprintln!("xenish-randread: {e}");
            exit(1);
        }
    }
}
