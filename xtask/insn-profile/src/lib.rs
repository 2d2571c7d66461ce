//! `insn-profile`: a QEMU TCG plugin (QEMU's plugin API version 1, QEMU
//! 7.2) that counts how often each translated block of guest code runs
//! and, when QEMU exits, writes one line per block start address:
//! `VADDR INSNS EXECUTIONS` (hex address, instructions in the block,
//! times it ran). `cargo xtask profile` loads it with
//! `-plugin PATH,out=FILE` and maps the addresses to xenish's symbols.
//!
//! Counting is an inline add in the translated code (no callback per
//! block), so the machine runs at close to its usual speed. Blocks are
//! counted from their start: a block's instructions all belong to the
//! function its first instruction is in (blocks end at branches, so a
//! block spans two functions only where one falls through into another).

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The API version this plugin was written against (QEMU 7.2's).
#[no_mangle]
#[used]
pub static qemu_plugin_version: c_int = 1;

/// QEMU's opaque translation block (valid during the translation callback).
#[repr(C)]
pub struct QemuPluginTb {
    _opaque: [u8; 0],
}

/// `QEMU_PLUGIN_INLINE_ADD_U64`, the only inline operation of API v1.
const INLINE_ADD_U64: c_int = 0;

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: u64, cb: extern "C" fn(u64, *mut QemuPluginTb));
    fn qemu_plugin_register_atexit_cb(id: u64, cb: extern "C" fn(u64, *mut c_void), userdata: *mut c_void);
    fn qemu_plugin_tb_n_insns(tb: *const QemuPluginTb) -> usize;
    fn qemu_plugin_tb_vaddr(tb: *const QemuPluginTb) -> u64;
    fn qemu_plugin_register_vcpu_tb_exec_inline(tb: *mut QemuPluginTb, op: c_int, ptr: *mut c_void, imm: u64);
}

/// One translation of a block: where it starts, its instruction count and
/// the counter the translated code adds to. Never freed: QEMU may run
/// the translation until it exits (the heap allocation of a `Box` does
/// not move when the list grows). `runs` is written by QEMU's translated
/// code, hence the cell.
struct Block {
    vaddr: u64,
    insns: u64,
    runs: AtomicU64,
}

/// Every translation so far, and where to write the profile.
struct State {
    /// Boxed: the generated code holds each block's counter address, which
    /// must not move when the list grows.
    #[allow(clippy::vec_box)]
    blocks: Vec<Box<Block>>,
    out: String,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

extern "C" fn on_translate(_id: u64, tb: *mut QemuPluginTb) {
    // SAFETY: QEMU passes a valid block for the duration of this callback.
    let (vaddr, insns) = unsafe { (qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb) as u64) };
    let Ok(mut state) = STATE.lock() else { return };
    let Some(s) = state.as_mut() else { return };
    let block = Box::new(Block { vaddr, insns, runs: AtomicU64::new(0) });
    let counter = block.runs.as_ptr();
    s.blocks.push(block);
    // SAFETY: `counter` stays valid for the rest of the process (the block
    // is never dropped: `on_exit` only reads it); the translated code adds
    // 1 to it on every run of the block.
    unsafe { qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, counter.cast(), 1) };
}

extern "C" fn on_exit(_id: u64, _userdata: *mut c_void) {
    let Ok(state) = STATE.lock() else { return };
    let Some(s) = state.as_ref() else { return };
    // Retranslations of one address add up.
    let mut by_vaddr: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for b in &s.blocks {
        let runs = b.runs.load(Ordering::Relaxed);
        let e = by_vaddr.entry(b.vaddr).or_insert((b.insns, 0));
        e.1 += runs;
    }
    let Ok(file) = std::fs::File::create(&s.out) else { return };
    let mut w = std::io::BufWriter::new(file);
    for (vaddr, (insns, runs)) in by_vaddr {
        if runs > 0 {
            let _ = writeln!(w, "{vaddr:x} {insns} {runs}");
        }
    }
}

/// QEMU's entry point: reads `out=FILE` and registers the callbacks.
///
/// # Safety
/// Called by QEMU with `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: u64,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let mut out = None;
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: QEMU passes `argc` valid, NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        if let Some(path) = arg.strip_prefix("out=") {
            out = Some(path.to_string());
        }
    }
    let Some(out) = out else {
        eprintln!("insn-profile: needs out=FILE");
        return -1;
    };
    match STATE.lock() {
        Ok(mut state) => *state = Some(State { blocks: Vec::new(), out }),
        Err(_) => return -1,
    }
    // SAFETY: registering callbacks with the id QEMU gave us.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
        qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
    }
    0
}
