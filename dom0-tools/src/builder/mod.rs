//! The PV domain builder, in dom0's user space: what libxl and libxc do
//! for `xl create` of a PV domU, from kernel image to a paused domain
//! with its XenStore tree, introduced to xenstored.
//!
//! - [`kernel`]: the kernel image (ELF with Xen notes or `__xen_guest`,
//!   bzImage with an ELF, XZ, gzip, zstd or LZ4 payload), untrusted input
//!   parsed without panics ([`elf`], [`notes`], [`bzimage`], [`decompress`]);
//! - the layout is the shared `pv-layout` crate's (libxc's);
//! - [`xc`]: the hypercalls, typed (libxenctrl's role);
//! - [`image`]: the initial memory written through foreign mappings;
//! - [`start_info`]: the start_info page;
//! - [`domain`]: the build sequence and its undo;
//! - [`xs_tree`]: the domain's XenStore entries as libxl writes them.
//!
//! Semantics: Xen 4.17 `tools/libs/light/libxl_create.c`, `libxl_dom.c`,
//! `tools/libs/guest/xg_dom_*.c`, `xen/common/libelf/`.

pub mod bzimage;
pub mod decompress;
pub mod domain;
pub mod elf;
pub mod image;
pub mod kernel;
pub mod notes;
pub mod start_info;
pub mod xc;
pub mod xs_tree;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

pub use domain::{build, BuiltDomain, DomainSpec};

/// Whether the builder says what it does on stderr (`xl -v`).
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns the builder's progress lines on or off.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// A progress line, with `xl -v`.
pub(crate) fn trace(what: impl FnOnce() -> String) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("xl: builder: {}", what());
    }
}

/// Why a kernel image cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// Neither ELF, bzImage nor a compressed ELF.
    NotAKernel,
    /// A malformed ELF image.
    BadElf(&'static str),
    /// Malformed note headers.
    BadNotes,
    /// Not a Xen PV kernel.
    NotXenKernel(&'static str),
    /// The kernel requires features (bits) that are not supported.
    UnsupportedRequiredFeature(u32),
    /// The FEATURES note requires a feature Xen does not know.
    UnknownRequiredFeature(String),
    /// A malformed bzImage.
    BadBzImage(&'static str),
    /// A compression this builder does not decompress.
    UnsupportedCompression(&'static str),
    /// The payload did not decompress.
    Decompress {
        /// The format.
        format: &'static str,
        /// What went wrong.
        why: String,
    },
    /// The decompressed kernel would exceed this many bytes.
    TooLarge(usize),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAKernel => f.write_str("not a kernel image (neither ELF, bzImage nor a compressed ELF)"),
            Self::BadElf(why) => write!(f, "malformed ELF image: {why}"),
            Self::BadNotes => f.write_str("malformed Xen ELF notes"),
            Self::NotXenKernel(why) => write!(f, "not a Xen PV kernel: {why}"),
            Self::UnsupportedRequiredFeature(bits) => {
                write!(f, "the kernel requires unsupported features (XENFEAT bits {bits:#x})")
            }
            Self::UnknownRequiredFeature(name) => write!(f, "the kernel requires the unknown feature {name}"),
            Self::BadBzImage(why) => write!(f, "malformed bzImage: {why}"),
            Self::UnsupportedCompression(name) => write!(f, "{name}-compressed kernels are not supported"),
            Self::Decompress { format, why } => write!(f, "cannot decompress the {format} payload: {why}"),
            Self::TooLarge(limit) => write!(f, "the decompressed kernel exceeds {limit} bytes"),
        }
    }
}

impl std::error::Error for KernelError {}

/// Why a domain could not be built. Each says what failed; the
/// hypervisor's refusals keep the operation and errno.
#[derive(Debug)]
pub enum BuildError {
    /// A file (kernel, ramdisk) could not be read.
    File {
        /// What it is ("kernel", "ramdisk").
        what: &'static str,
        /// Its path.
        path: String,
        /// The error.
        err: io::Error,
    },
    /// The kernel image is unusable.
    Kernel {
        /// Its path.
        path: String,
        /// Why.
        err: KernelError,
    },
    /// The kernel does not fit the domain (layout refused).
    Layout(pv_layout::LayoutError),
    /// The host has too little free memory.
    NotEnoughMemory {
        /// KiB the domain needs.
        need_kb: u64,
        /// KiB free.
        free_kb: u64,
    },
    /// A hypervisor or device operation failed.
    Hypervisor(io::Error),
    /// A XenStore operation failed.
    Store(String),
    /// xenconsoled did not write the console's tty in time.
    ConsoleTimeout,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { what, path, err } => write!(f, "cannot read the {what} {path}: {err}"),
            Self::Kernel { path, err } => write!(f, "kernel {path}: {err}"),
            Self::Layout(e) => write!(f, "cannot lay out the domain: {e}"),
            Self::NotEnoughMemory { need_kb, free_kb } => {
                write!(f, "not enough free memory: the domain needs {need_kb} KiB, {free_kb} KiB are free")
            }
            Self::Hypervisor(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "xenstore: {e}"),
            Self::ConsoleTimeout => f.write_str("xenconsoled did not set up the console within 10 s"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<io::Error> for BuildError {
    fn from(e: io::Error) -> Self {
        BuildError::Hypervisor(e)
    }
}

impl From<pv_layout::LayoutError> for BuildError {
    fn from(e: pv_layout::LayoutError) -> Self {
        BuildError::Layout(e)
    }
}
