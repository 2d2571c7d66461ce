//! [`Xc`]: the hypervisor operations a toolstack issues, typed, on top of
//! `xendev::Privcmd` — what libxenctrl's `xc_domain_*`, `xc_evtchn_*` and
//! `xc_gnttab_*` calls are for xl and the domain builder.
//!
//! Domctls go through `Privcmd::domctl`; the other hypercalls take pointer
//! arguments, so their structures are bounced through a pinned
//! [`HypercallBuf`] and issued with `Privcmd::hypercall`. Those raw calls
//! are this module's only `unsafe`. Every error names the operation and
//! the errno (xendev's `DevError`), so a refusal can be reported exactly.
//! Semantics: Xen 4.17 `tools/libs/ctrl/xc_domain.c`, `xc_evtchn.c`,
//! `xen/common/memory.c` (`populate_physmap`, `acquire_resource`),
//! `xen/arch/x86/mm.c` (`do_mmuext_op`), `xen/common/grant_table.c`.

use std::io;

use guest_abi::arch_x86::VcpuGuestContext;
use guest_abi::domctl::*;
use guest_abi::event_channel::{EvtchnAllocUnbound, EVTCHNOP_ALLOC_UNBOUND};
use guest_abi::grant_table::{GnttabSetupTable, GNTTABOP_SETUP_TABLE};
use guest_abi::memory::{
    ForeignMemoryMap, MemAcquireResource, MemoryMap, MemoryReservation, XENMEM_ACQUIRE_RESOURCE,
    XENMEM_POPULATE_PHYSMAP, XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED, XENMEM_SET_MEMORY_MAP,
};
use guest_abi::xen::{
    MmuextOp, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_MEMORY_OP, HYPERVISOR_MMUEXT_OP,
    MMUEXT_PIN_L4_TABLE,
};
use guest_abi::GuestHandle;
use xendev::{DomainInfo, HypercallBuf, Mapping, Privcmd};
use zerocopy::{FromZeros, IntoBytes};

/// Frames per `populate_physmap` call (libxc batches 512 extents).
const POPULATE_BATCH: usize = 512;
/// Bytes of an E820 entry (`{u64 addr, u64 size, u32 type}`, packed).
const E820_ENTRY_SIZE: usize = 20;
/// `E820_RAM`.
const E820_RAM: u32 = 1;
/// `GNTST_okay`.
const GNTST_OKAY: i16 = 0;

/// The toolstack's handle on the hypervisor.
#[derive(Debug)]
pub struct Xc {
    privcmd: Privcmd,
}

/// An `io::Error` for a toolstack operation that the hypervisor refused,
/// carrying the errno as xendev's errors do.
fn refused(op: String, errno: i32) -> io::Error {
    io::Error::new(io::Error::from_raw_os_error(errno).kind(), xendev::DevError { op, errno })
}

impl Xc {
    /// Opens `/dev/xen/privcmd`.
    pub fn open() -> io::Result<Xc> {
        Ok(Xc { privcmd: Privcmd::open()? })
    }

    /// The underlying device.
    pub fn privcmd(&self) -> &Privcmd {
        &self.privcmd
    }

    fn domctl(&self, cmd: u32, domid: u16, fill: impl FnOnce(&mut XenDomctl)) -> io::Result<XenDomctl> {
        let mut d = XenDomctl::new(cmd, domid);
        fill(&mut d);
        self.privcmd.domctl(&mut d)?;
        Ok(d)
    }

    /// `XEN_DOMCTL_createdomain` for a PV domain with libxl's defaults
    /// (1023 event channels, Xen's default grant and maptrack frames,
    /// grant table v1); returns the new domain's ID. It is born paused.
    pub fn create_domain(&self, handle: [u8; 16], max_vcpus: u32) -> io::Result<u16> {
        let mut c = XenDomctlCreatedomain::new_zeroed();
        c.handle = handle;
        c.max_vcpus = max_vcpus;
        c.max_evtchn_port = 1023;
        (c.max_grant_frames, c.max_maptrack_frames, c.grant_opts) = (-1, -1, 1);
        // 0xffff (not DOMID_FIRST_RESERVED..): let Xen pick the next free ID.
        let d = self.domctl(XEN_DOMCTL_CREATEDOMAIN, 0xffff, |d| d.set_createdomain(c))?;
        Ok(d.domain)
    }

    /// `XEN_DOMCTL_max_vcpus`.
    pub fn max_vcpus(&self, domid: u16, max: u32) -> io::Result<()> {
        self.domctl(XEN_DOMCTL_MAX_VCPUS, domid, |d| d.set_max_vcpus(XenDomctlMaxVcpus { max })).map(drop)
    }

    /// `XEN_DOMCTL_max_mem` in KiB.
    pub fn max_mem(&self, domid: u16, max_memkb: u64) -> io::Result<()> {
        self.domctl(XEN_DOMCTL_MAX_MEM, domid, |d| d.set_max_mem(XenDomctlMaxMem { max_memkb })).map(drop)
    }

    /// `XEN_DOMCTL_pausedomain`.
    pub fn pause(&self, domid: u16) -> io::Result<()> {
        self.domctl(XEN_DOMCTL_PAUSEDOMAIN, domid, |_| {}).map(drop)
    }

    /// `XEN_DOMCTL_unpausedomain`.
    pub fn unpause(&self, domid: u16) -> io::Result<()> {
        self.domctl(XEN_DOMCTL_UNPAUSEDOMAIN, domid, |_| {}).map(drop)
    }

    /// `XEN_DOMCTL_destroydomain`, repeated while Xen asks for a
    /// continuation (`EAGAIN`, libxc's loop).
    pub fn destroy(&self, domid: u16) -> io::Result<()> {
        loop {
            match self.domctl(XEN_DOMCTL_DESTROYDOMAIN, domid, |_| {}) {
                Err(e) if xendev::errno(&e) == Some(libc::EAGAIN) => continue,
                r => return r.map(drop),
            }
        }
    }

    /// `XEN_DOMCTL_getdomaininfo` for exactly `domid`.
    pub fn domain_info(&self, domid: u16) -> io::Result<Option<DomainInfo>> {
        self.privcmd.getdomaininfo(domid)
    }

    /// Every domain.
    pub fn list_domains(&self) -> io::Result<Vec<DomainInfo>> {
        self.privcmd.list_domains()
    }

    /// `XEN_DOMCTL_setvcpucontext` of vCPU `vcpu`.
    pub fn set_vcpu_context(&self, domid: u16, vcpu: u32, ctxt: &VcpuGuestContext) -> io::Result<()> {
        let mut buf = self.privcmd.alloc_buffer(size_of::<VcpuGuestContext>())?;
        buf.write_obj(0, ctxt)?;
        let v = XenDomctlVcpucontext { vcpu, _pad0: [0; 4], ctxt: GuestHandle::new(buf.addr()) };
        self.domctl(XEN_DOMCTL_SETVCPUCONTEXT, domid, |d| d.set_vcpucontext(v)).map(drop)
    }

    /// `XEN_DOMCTL_getvcpuaffinity` (`set` false) or `setvcpuaffinity`
    /// of vCPU `vcpu`, libxc's `xc_vcpu_{get,set}affinity`: the hard and
    /// soft CPU bitmaps (bit n in byte n / 8, as many bits as the slices
    /// hold) go in for the flags `XEN_VCPUAFFINITY_*` given, and the
    /// effective ones come back in them.
    pub fn vcpu_affinity(
        &self,
        domid: u16,
        vcpu: u32,
        flags: u32,
        set: bool,
        hard: &mut [u8],
        soft: &mut [u8],
    ) -> io::Result<()> {
        use guest_abi::sysctl::XenctlBitmap;
        let mut buf = self.privcmd.alloc_buffer((hard.len() + soft.len()).max(1))?;
        buf.write(0, hard)?;
        buf.write(hard.len(), soft)?;
        let map = |off: usize, len: usize| XenctlBitmap {
            bitmap: GuestHandle::new(buf.addr() + off as u64),
            nr_bits: (len * 8) as u32,
            _pad: [0; 4],
        };
        let a = XenDomctlVcpuaffinity {
            vcpu,
            flags,
            cpumap_hard: map(0, hard.len()),
            cpumap_soft: map(hard.len(), soft.len()),
        };
        let cmd = if set { XEN_DOMCTL_SETVCPUAFFINITY } else { XEN_DOMCTL_GETVCPUAFFINITY };
        self.domctl(cmd, domid, |d| d.set_vcpuaffinity(a))?;
        buf.read(0, hard)?;
        buf.read(hard.len(), soft)
    }

    /// `XEN_DOMCTL_scheduler_op` getinfo for the credit schedulers
    /// (`sched_id` 5 or 6): (weight, cap).
    pub fn sched_credit_get(&self, domid: u16, sched_id: u32) -> io::Result<(u16, u16)> {
        let op = XenDomctlSchedulerOp { sched_id, cmd: XEN_DOMCTL_SCHEDOP_GETINFO, u: [0; 2] };
        let d = self.domctl(XEN_DOMCTL_SCHEDULER_OP, domid, |d| d.set_scheduler_op(op))?;
        let c = d.scheduler_op().credit();
        Ok((c.weight, c.cap))
    }

    /// `XEN_DOMCTL_scheduler_op` putinfo for the credit schedulers.
    pub fn sched_credit_set(&self, domid: u16, sched_id: u32, weight: u16, cap: u16) -> io::Result<()> {
        let mut op = XenDomctlSchedulerOp { sched_id, cmd: XEN_DOMCTL_SCHEDOP_PUTINFO, u: [0; 2] };
        op.set_credit(XenDomctlSchedCredit { weight, cap });
        self.domctl(XEN_DOMCTL_SCHEDULER_OP, domid, |d| d.set_scheduler_op(op)).map(drop)
    }

    /// Issues hypercall `op` with `args`; names it `what` on failure.
    ///
    /// # Safety
    /// As `Privcmd::hypercall`: pointer arguments point into pinned
    /// buffers of the layout `op` expects, alive for the call.
    unsafe fn raw(&self, op: u32, args: [u64; 5], what: impl FnOnce() -> String) -> io::Result<i64> {
        // SAFETY: forwarded contract.
        unsafe { self.privcmd.hypercall(op.into(), args) }.map_err(|e| match xendev::errno(&e) {
            Some(errno) => refused(what(), errno),
            None => e,
        })
    }

    /// `EVTCHNOP_alloc_unbound{dom: domid, remote_dom}`: a port of `domid`
    /// that `remote_dom` may bind.
    pub fn alloc_unbound(&self, domid: u16, remote_dom: u16) -> io::Result<u32> {
        let mut buf = self.privcmd.alloc_buffer(size_of::<EvtchnAllocUnbound>())?;
        buf.write_obj(0, &EvtchnAllocUnbound { dom: domid, remote_dom, port: 0 })?;
        let args = [EVTCHNOP_ALLOC_UNBOUND.into(), buf.addr(), 0, 0, 0];
        // SAFETY: the argument is the pinned buffer holding the struct.
        unsafe { self.raw(HYPERVISOR_EVENT_CHANNEL_OP, args, || format!("evtchn alloc_unbound dom {domid}"))? };
        Ok(buf.read_obj::<EvtchnAllocUnbound>(0)?.port)
    }

    /// `XENMEM_populate_physmap` of `pfns` (order 0) for `domid`; returns
    /// the MFNs Xen gave, in order. Fewer than asked is an `ENOMEM` error.
    pub fn populate_physmap(&self, domid: u16, pfns: &[u64]) -> io::Result<Vec<u64>> {
        let res = size_of::<MemoryReservation>();
        let mut buf = self.privcmd.alloc_buffer(res + POPULATE_BATCH * 8)?;
        let mut mfns = Vec::with_capacity(pfns.len());
        for batch in pfns.chunks(POPULATE_BATCH) {
            buf.write(res, batch.as_bytes())?;
            let r = MemoryReservation {
                extent_start: GuestHandle::new(buf.addr() + res as u64),
                nr_extents: batch.len() as u64,
                extent_order: 0,
                mem_flags: 0,
                domid,
                _pad0: [0; 6],
            };
            buf.write_obj(0, &r)?;
            let args = [XENMEM_POPULATE_PHYSMAP.into(), buf.addr(), 0, 0, 0];
            let what = || format!("memory_op populate_physmap dom {domid}");
            // SAFETY: the reservation and its extent array are in the
            // pinned buffer, which holds `nr_extents` u64s after it.
            let done = unsafe { self.raw(HYPERVISOR_MEMORY_OP, args, what)? };
            if usize::try_from(done).ok() != Some(batch.len()) {
                return Err(refused(
                    format!("memory_op populate_physmap dom {domid}: {done} of {} pages", batch.len()),
                    libc::ENOMEM,
                ));
            }
            let mut out = vec![0u64; batch.len()];
            buf.read(res, out.as_mut_bytes())?;
            mfns.extend_from_slice(&out);
        }
        Ok(mfns)
    }

    /// `xc_domain_set_memmap_limit`: gives `domid` an E820 map of one RAM
    /// entry from 0 to `limit_kb` (`XENMEM_set_memory_map`). A PV Linux
    /// reads it at boot and keeps the pages between its initial
    /// allocation and the limit as ballooned-out room it may populate
    /// later (`xen_memory_setup`'s extra memory), which is how it grows
    /// up to `maxmem`.
    pub fn set_memmap_limit(&self, domid: u16, limit_kb: u64) -> io::Result<()> {
        let fmap = size_of::<ForeignMemoryMap>();
        let mut buf = self.privcmd.alloc_buffer(fmap + E820_ENTRY_SIZE)?;
        // e820entry {u64 addr; u64 size; u32 type}, packed: RAM from 0.
        let mut entry = [0u8; E820_ENTRY_SIZE];
        entry[8..16].copy_from_slice(&(limit_kb << 10).to_le_bytes());
        entry[16..20].copy_from_slice(&E820_RAM.to_le_bytes());
        buf.write(fmap, &entry)?;
        let map = MemoryMap { nr_entries: 1, _pad0: [0; 4], buffer: GuestHandle::new(buf.addr() + fmap as u64) };
        buf.write_obj(0, &ForeignMemoryMap { domid, _pad0: [0; 6], map })?;
        let args = [XENMEM_SET_MEMORY_MAP.into(), buf.addr(), 0, 0, 0];
        // SAFETY: the foreign map and its one E820 entry are in the pinned buffer.
        unsafe { self.raw(HYPERVISOR_MEMORY_OP, args, || format!("memory_op set_memory_map dom {domid}"))? };
        Ok(())
    }

    /// `MMUEXT_PIN_L4_TABLE` of `mfn` with `foreigndom = domid`.
    pub fn pin_l4(&self, domid: u16, mfn: u64) -> io::Result<()> {
        let mut buf = self.privcmd.alloc_buffer(size_of::<MmuextOp>() + 8)?;
        buf.write_obj(0, &MmuextOp::new(MMUEXT_PIN_L4_TABLE, mfn, 0))?;
        let done = buf.addr() + size_of::<MmuextOp>() as u64;
        let args = [buf.addr(), 1, done, domid.into(), 0];
        // SAFETY: one mmuext_op in the pinned buffer, the done count after it.
        unsafe { self.raw(HYPERVISOR_MMUEXT_OP, args, || format!("mmuext_op PIN_L4_TABLE mfn {mfn:#x} dom {domid}"))? };
        Ok(())
    }

    /// `XENMEM_acquire_resource` of `domid`'s first shared grant-table
    /// frame: its MFN (a PV caller gets MFNs back).
    pub fn acquire_grant_frame(&self, domid: u16) -> io::Result<u64> {
        let res = size_of::<MemAcquireResource>();
        let mut buf = self.privcmd.alloc_buffer(res + 8)?;
        let r = MemAcquireResource {
            domid,
            type_: XENMEM_RESOURCE_GRANT_TABLE as u16,
            id: XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
            nr_frames: 1,
            pad: 0,
            frame: 0,
            frame_list: GuestHandle::new(buf.addr() + res as u64),
        };
        buf.write_obj(0, &r)?;
        let args = [XENMEM_ACQUIRE_RESOURCE.into(), buf.addr(), 0, 0, 0];
        let what = || format!("memory_op acquire_resource grant_table frame 0 dom {domid}");
        // SAFETY: the struct and its one-entry frame list are in the buffer.
        unsafe { self.raw(HYPERVISOR_MEMORY_OP, args, what)? };
        buf.read_obj::<u64>(res)
    }

    /// `GNTTABOP_setup_table{dom: domid, nr_frames: 1}`: the MFN of the
    /// domain's first grant-table frame.
    pub fn gnttab_setup_table(&self, domid: u16) -> io::Result<u64> {
        let st = size_of::<GnttabSetupTable>();
        let mut buf = self.privcmd.alloc_buffer(st + 8)?;
        let op = GnttabSetupTable {
            dom: domid,
            _pad0: [0; 2],
            nr_frames: 1,
            status: 0,
            _pad1: [0; 6],
            frame_list: GuestHandle::new(buf.addr() + st as u64),
        };
        buf.write_obj(0, &op)?;
        let args = [GNTTABOP_SETUP_TABLE.into(), buf.addr(), 1, 0, 0];
        let what = || format!("grant_table_op setup_table dom {domid}");
        // SAFETY: one setup_table op and its one-entry frame list in the buffer.
        unsafe { self.raw(HYPERVISOR_GRANT_TABLE_OP, args, what)? };
        let back: GnttabSetupTable = buf.read_obj(0)?;
        if back.status != GNTST_OKAY {
            return Err(refused(
                format!("grant_table_op setup_table dom {domid}: status {}", xendev::gntst_name(back.status)),
                libc::EINVAL,
            ));
        }
        buf.read_obj::<u64>(st)
    }

    /// Maps `mfns` of `domid` writable into this process.
    pub fn map_foreign(&self, domid: u16, mfns: &[u64]) -> io::Result<Mapping> {
        self.privcmd.map_foreign(domid, mfns, true)
    }

    /// A pinned buffer (for callers that issue their own domctls).
    pub fn buffer(&self, len: usize) -> io::Result<HypercallBuf> {
        self.privcmd.alloc_buffer(len)
    }

    /// A `xen_version` sub-op with a `len`-byte output buffer: the
    /// hypercall's result and the buffer.
    pub fn xen_version_raw(&self, cmd: u32, len: usize) -> io::Result<(i64, Vec<u8>)> {
        let buf = self.privcmd.alloc_buffer(len.max(8))?;
        let args = [cmd.into(), buf.addr(), 0, 0, 0];
        // SAFETY: Xen writes at most the sub-op's fixed size, which the
        // caller passes as `len`, into the pinned buffer.
        let r = unsafe { self.raw(guest_abi::xen::HYPERVISOR_XEN_VERSION, args, || format!("xen_version {cmd}"))? };
        let mut out = vec![0u8; len];
        buf.read(0, &mut out)?;
        Ok((r, out))
    }

    /// `XEN_SYSCTL_sched_id`: the scheduler's ID (5 credit, 6 credit2).
    pub fn sched_id(&self) -> io::Result<u32> {
        let mut s = guest_abi::sysctl::XenSysctl::new(guest_abi::sysctl::XEN_SYSCTL_SCHED_ID);
        self.privcmd.sysctl(&mut s)?;
        Ok(s.u[0] as u32)
    }

    /// `XEN_SYSCTL_readconsole` of the whole ring (`clear` empties it):
    /// the hypervisor's log.
    pub fn read_console(&self, clear: bool) -> io::Result<Vec<u8>> {
        const LEN: usize = 64 << 10;
        let buf = self.privcmd.alloc_buffer(LEN)?;
        let mut s = guest_abi::sysctl::XenSysctl::new(guest_abi::sysctl::XEN_SYSCTL_READCONSOLE);
        // {u8 clear; u8 incremental; u16 pad; u32 index; handle buffer; u32 count}
        s.u[0] = u64::from(clear);
        s.u[1] = buf.addr();
        s.u[2] = LEN as u64;
        self.privcmd.sysctl(&mut s)?;
        let count = (s.u[2] as u32 as usize).min(LEN);
        let mut out = vec![0u8; count];
        buf.read(0, &mut out)?;
        Ok(out)
    }

    /// A `memory_op` that takes no argument and returns a count
    /// (`XENMEM_get_sharing_freed_pages`, `..._shared_pages`).
    pub fn memory_op_count(&self, cmd: u32) -> io::Result<i64> {
        // SAFETY: these sub-ops read and write no memory.
        unsafe { self.raw(HYPERVISOR_MEMORY_OP, [cmd.into(), 0, 0, 0, 0], || format!("memory_op {cmd}")) }
    }

    /// A `xen_version` sub-op that takes a NULL argument and returns a
    /// number (`XENVER_pagesize`: Xen refuses a non-NULL one).
    pub fn xen_version_number(&self, cmd: u32) -> io::Result<i64> {
        // SAFETY: with a NULL argument Xen reads and writes no memory.
        unsafe {
            self.raw(guest_abi::xen::HYPERVISOR_XEN_VERSION, [cmd.into(), 0, 0, 0, 0], || format!("xen_version {cmd}"))
        }
    }
}
