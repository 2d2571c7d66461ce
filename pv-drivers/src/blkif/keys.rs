//! The XenStore keys of blkif's negotiation, and the limits this crate
//! offers and accepts.
//!
//! Backend, before InitWait: `max-ring-page-order`,
//! `multi-queue-max-queues`, `feature-max-indirect-segments`,
//! `feature-persistent`; before Connected: `sectors` (512-byte units),
//! `info`, `sector-size`, `physical-sector-size`, `feature-flush-cache`,
//! `feature-discard` with `discard-granularity`/`-alignment`. Frontend,
//! with Initialised: `ring-ref` (one page) or `ring-page-order` +
//! `ring-ref0..N-1`, `event-channel`, `protocol`, `feature-persistent`;
//! with more than one queue `multi-queue-num-queues` and the ring keys
//! under `queue-<i>/`. Semantics: X:`io/blkif.h`; L:`xen-blkfront.c
//! talk_to_blkback`, `xen-blkback/xenbus.c connect_ring`.

/// `max-ring-page-order` (back).
pub const MAX_RING_PAGE_ORDER: &str = "max-ring-page-order";
/// `multi-queue-max-queues` (back).
pub const MULTI_QUEUE_MAX_QUEUES: &str = "multi-queue-max-queues";
/// `feature-max-indirect-segments` (back; absent without INDIRECT).
pub const FEATURE_MAX_INDIRECT_SEGMENTS: &str = "feature-max-indirect-segments";
/// `feature-persistent` (both).
pub const FEATURE_PERSISTENT: &str = "feature-persistent";
/// `feature-flush-cache` (back).
pub const FEATURE_FLUSH_CACHE: &str = "feature-flush-cache";
/// `feature-barrier` (back).
pub const FEATURE_BARRIER: &str = "feature-barrier";
/// `feature-discard` (back).
pub const FEATURE_DISCARD: &str = "feature-discard";
/// `discard-granularity` (back), bytes.
pub const DISCARD_GRANULARITY: &str = "discard-granularity";
/// `discard-alignment` (back), bytes.
pub const DISCARD_ALIGNMENT: &str = "discard-alignment";
/// `discard-secure` (back).
pub const DISCARD_SECURE: &str = "discard-secure";
/// `sectors` (back): the size in 512-byte sectors.
pub const SECTORS: &str = "sectors";
/// `info` (back): `VDISK_*` bits.
pub const INFO: &str = "info";
/// `sector-size` (back): the logical sector size in bytes.
pub const SECTOR_SIZE: &str = "sector-size";
/// `physical-sector-size` (back).
pub const PHYSICAL_SECTOR_SIZE: &str = "physical-sector-size";
/// `ring-ref` (front, one page).
pub const RING_REF: &str = "ring-ref";
/// `ring-page-order` (front, several pages: then `ring-ref<i>`).
pub const RING_PAGE_ORDER: &str = "ring-page-order";
/// `event-channel` (front).
pub const EVENT_CHANNEL: &str = "event-channel";
/// `protocol` (front).
pub const PROTOCOL: &str = "protocol";
/// `multi-queue-num-queues` (front).
pub const MULTI_QUEUE_NUM_QUEUES: &str = "multi-queue-num-queues";
/// `virtual-device` (front, written by the toolstack).
pub const VIRTUAL_DEVICE: &str = "virtual-device";
/// `device-type` (both, toolstack): `disk` or `cdrom`.
pub const DEVICE_TYPE: &str = "device-type";
/// `mode` (back, toolstack): `w` or `r`.
pub const MODE: &str = "mode";
/// `params` (back, toolstack): what to serve.
pub const PARAMS: &str = "params";

/// The native x86_64 protocol name (`XEN_IO_PROTO_ABI_X86_64`).
pub const PROTOCOL_X86_64: &str = "x86_64-abi";

/// The largest ring order either end uses (`XENBUS_MAX_RING_GRANT_ORDER`).
pub const MAX_RING_ORDER: u32 = 4;
/// Indirect segments the backend accepts per request (Linux blkback's
/// `MAX_INDIRECT_SEGMENTS`).
pub const MAX_INDIRECT_SEGMENTS: u32 = 256;
/// Below this, Linux blkfront ignores indirect descriptors (one more
/// than a direct request holds).
pub const MIN_INDIRECT_SEGMENTS: u32 = 12;
/// The name of queue `i`'s directory.
pub fn queue_dir(i: u32) -> alloc::string::String {
    alloc::format!("queue-{i}")
}
