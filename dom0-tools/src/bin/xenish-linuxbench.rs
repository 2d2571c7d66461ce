//! `xenish-linuxbench`: Linux-level benchmark rows, run as `/init` of
//! Debian's Linux as dom0, and as `/init` of Debian's Linux as a domU
//! created by the toolstack, by `cargo xtask bench` (on xenish and on Xen
//! 4.17, in the same QEMU).
//!
//! Every row is timed with `CLOCK_MONOTONIC` (the kernel-boot row with
//! `CLOCK_BOOTTIME`, which starts early in the kernel's own boot), in
//! nanoseconds of QEMU's virtual clock. Under `-icount shift=0` one
//! instruction advances that clock by one nanosecond (and idle time is
//! warped over: none of these rows waits for anything), so in
//! `--deterministic` mode the numbers are instructions.
//!
//! Output, one line per row, then `linuxbench: done`, then power-off:
//! `linuxbench: ROW ns=TOTAL n=OPERATIONS`. The boot row counts the
//! kernel's idle time too (under `-icount` virtual time that passes
//! without instructions): Linux's `/proc/uptime` idle figure read 0 at
//! `/init` on both hypervisors, so it cannot be taken out. With `LINUXBENCH_DIVIDE=D` in
//! the environment (a `NAME=value` on the kernel's command line lands
//! there) the counts are divided by D (the test suite's quick run); with
//! `LINUXBENCH_ONLY=ROW[,ROW...]` only those rows run (`none`: the boot row
//! alone; `cargo xtask profile --linux` subtracts such a run's counts;
//! `kallsyms`: print the kernel's text symbols instead of any row).
//! Invoked with the single argument `--exit`, it exits at once: the
//! fork+exec row's child. Run as `/init` (process 1) it powers the machine
//! (or the domU) off at the end; run as an ordinary process it exits.

use std::ffi::CString;
use std::io::Write as _;
use std::process::exit;

/// The rows, their operation counts and what one operation is.
const ROWS: &[(&str, u64)] = &[
    ("fork_exit", 1000),
    ("fork_exec", 200),
    ("pipe_roundtrip", 10_000),
    ("ctxsw_pingpong", 10_000),
    ("touch_unmap_64m", 1),
];

/// The anonymous mapping the page-fault row touches and unmaps.
const TOUCH_BYTES: usize = 64 << 20;
const PAGE: usize = 4096;

fn now(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

fn fail(what: &str) -> ! {
    println!("linuxbench: error: {what}: {}", std::io::Error::last_os_error());
    power_off()
}

/// Powers off as `/init`; an ordinary process exits (with 1: reached
/// only after [`fail`]).
fn power_off() -> ! {
    // SAFETY: a plain system call.
    if unsafe { libc::getpid() } != 1 {
        exit(1)
    }
    // SAFETY: plain system calls; sync before the machine stops.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    exit(1)
}

/// Waits for the child `pid` to exit.
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: `status` is writable.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        fail("waitpid");
    }
}

fn fork_exit(n: u64) {
    for _ in 0..n {
        // SAFETY: the child only calls `_exit`.
        match unsafe { libc::fork() } {
            // SAFETY: leaving the child at once.
            0 => unsafe { libc::_exit(0) },
            pid if pid > 0 => reap(pid),
            _ => fail("fork"),
        }
    }
}

fn fork_exec(n: u64, me: &CString) {
    let arg = CString::new("--exit").unwrap_or_default();
    let argv = [me.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    for _ in 0..n {
        // SAFETY: the child only calls `execve` and `_exit`.
        match unsafe { libc::fork() } {
            // SAFETY: NUL-terminated arrays of valid C strings that live
            // until the exec.
            0 => unsafe {
                libc::execve(me.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127)
            },
            pid if pid > 0 => reap(pid),
            _ => fail("fork"),
        }
    }
}

fn pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        fail("pipe");
    }
    fds
}

fn write1(fd: libc::c_int) {
    let b = 0u8;
    // SAFETY: one readable byte.
    if unsafe { libc::write(fd, (&b as *const u8).cast(), 1) } != 1 {
        fail("write");
    }
}

fn read1(fd: libc::c_int) {
    let mut b = 0u8;
    // SAFETY: one writable byte.
    if unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } != 1 {
        fail("read");
    }
}

/// One process writes a byte into a pipe and reads it back: system calls
/// and the pipe, no context switch.
fn pipe_roundtrip(n: u64) {
    let [r, w] = pipe();
    for _ in 0..n {
        write1(w);
        read1(r);
    }
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(r);
        libc::close(w);
    }
}

/// Two processes pass a byte back and forth over two pipes: each round
/// trip is two context switches (one vCPU).
fn ctxsw_pingpong(n: u64) -> u64 {
    let [ar, aw] = pipe();
    let [br, bw] = pipe();
    // SAFETY: the child only does reads, writes and `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        for _ in 0..n {
            read1(ar);
            write1(bw);
        }
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) }
    }
    if pid < 0 {
        fail("fork");
    }
    // The child is created and waiting before the clock starts.
    let t0 = now(libc::CLOCK_MONOTONIC);
    for _ in 0..n {
        write1(aw);
        read1(br);
    }
    let took = now(libc::CLOCK_MONOTONIC) - t0;
    reap(pid);
    // SAFETY: closing our own descriptors.
    unsafe {
        for fd in [ar, aw, br, bw] {
            libc::close(fd);
        }
    }
    took
}

/// Maps 64 MiB of anonymous memory, writes one byte per page (a page
/// fault and a page-table update each) and unmaps it.
fn touch_unmap(n: u64) {
    for _ in 0..n {
        // SAFETY: a fresh private anonymous mapping, written only inside
        // its bounds, then unmapped.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                TOUCH_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                fail("mmap");
            }
            let base = p.cast::<u8>();
            for off in (0..TOUCH_BYTES).step_by(PAGE) {
                base.add(off).write_volatile(1);
            }
            if libc::munmap(p, TOUCH_BYTES) != 0 {
                fail("munmap");
            }
        }
    }
}

/// Prints the kernel's text symbols (`/proc/kallsyms` lines of type `t`
/// or `T`) as `linuxbench-sym: ADDR TYPE NAME`, for `cargo xtask profile
/// --linux` (Debian's `System.map` is a stub). Mounts `/proc` if need be;
/// addresses show to root only with `kptr_restrict` 0, which it sets.
fn print_kernel_text_symbols() {
    // As `/init`, nothing is mounted yet.
    let _ = std::fs::create_dir_all("/proc");
    // SAFETY: plain system call with NUL-terminated constant strings; it
    // fails harmlessly (EBUSY) where /proc is already mounted.
    unsafe {
        libc::mount(c"proc".as_ptr(), c"/proc".as_ptr(), c"proc".as_ptr(), 0, core::ptr::null());
    }
    let _ = std::fs::write("/proc/sys/kernel/kptr_restrict", "0");
    let Ok(all) = std::fs::read_to_string("/proc/kallsyms") else { fail("/proc/kallsyms") };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in all.lines() {
        let mut w = line.split_whitespace();
        if let (Some(addr), Some(kind @ ("t" | "T")), Some(name)) = (w.next(), w.next(), w.next()) {
            let _ = writeln!(out, "linuxbench-sym: {addr} {kind} {name}");
        }
    }
}

/// Nanoseconds `f` takes.
fn timed(f: impl FnOnce()) -> u64 {
    let t0 = now(libc::CLOCK_MONOTONIC);
    f();
    now(libc::CLOCK_MONOTONIC) - t0
}

fn main() {
    let boot = now(libc::CLOCK_BOOTTIME);
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--exit") {
        // SAFETY: leaving at once, as the measured exec's child.
        unsafe { libc::_exit(0) }
    }
    if std::env::var("LINUXBENCH_ONLY").as_deref() == Ok("kallsyms") {
        print_kernel_text_symbols();
        println!("linuxbench: done");
        power_off()
    }
    println!("linuxbench: start");
    println!("linuxbench: boot_to_init ns={boot} n=1");
    let divide = std::env::var("LINUXBENCH_DIVIDE").ok().and_then(|d| d.parse::<u64>().ok()).unwrap_or(1).max(1);
    let me = CString::new(args.first().map_or("/init", String::as_str)).unwrap_or_default();
    // `LINUXBENCH_ONLY=ROW[,ROW]`: only these rows (`none`: the boot row
    // alone), for `cargo xtask profile --linux`.
    let only = std::env::var("LINUXBENCH_ONLY").ok();
    let wanted = |row: &str| only.as_deref().is_none_or(|list| list.split(',').any(|r| r == row));
    for &(row, count) in ROWS.iter().filter(|(row, _)| wanted(row)) {
        let n = (count / divide).max(1);
        let took = match row {
            "fork_exit" => timed(|| fork_exit(n)),
            "fork_exec" => timed(|| fork_exec(n, &me)),
            "pipe_roundtrip" => timed(|| pipe_roundtrip(n)),
            "touch_unmap_64m" => timed(|| touch_unmap(n)),
            _ => ctxsw_pingpong(n),
        };
        println!("linuxbench: {row} ns={took} n={n}");
    }
    println!("linuxbench: done");
    // SAFETY: a plain system call.
    if unsafe { libc::getpid() } == 1 {
        power_off()
    }
}
