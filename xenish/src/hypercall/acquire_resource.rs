//! `XENMEM_acquire_resource`: the machine frames of another domain's
//! resource, for a privileged caller to map (privcmd's `MMAP_RESOURCE`).
//! xenish has the kind a PV toolstack uses: the grant table's shared
//! frames, which libxc maps to seed a new domain's console and XenStore
//! entries, and (for a table on version 2) its status frames.
//!
//! Semantics and errnos: Xen 4.17 `acquire_resource` and
//! `gnttab_acquire_resource` (xen/common/memory.c, grant_table.c). A PV
//! caller gets machine frame numbers back; a frame list that is null asks
//! for the resource's size. The caller's own domain is refused (Xen's
//! `rcu_lock_remote_domain_by_id`), so are unprivileged callers. Ioreq
//! servers and vmtrace buffers belong to HVM domains: `-EOPNOTSUPP` for a
//! PV target, as Xen's `arch_acquire_resource` answers for unknown types.
//! Status frames exist only while the target's table is on version 2
//! (`-EINVAL` otherwise); the size query answers their limit regardless.

use guest_abi::errno::XenError;
use guest_abi::memory::{
    MemAcquireResource, XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
    XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS,
};

use super::memory_op::{read, write};
use super::xsm::Action;
use super::{Ctx, HcResult};
use crate::gnttab::{status_frames_for, MAX_FRAMES};

/// Frames served per round, as Xen's on-stack list (`gfn_list[32]`).
const ROUND: u32 = 32;

/// `XENMEM_acquire_resource` with `start` frames already done (the
/// extent field of the command, as Xen's continuation encodes it).
pub fn acquire_resource(ctx: &mut Ctx, arg: u64, start: u64) -> HcResult {
    let mut xmar: MemAcquireResource = read(ctx, arg)?;
    if xmar.pad != 0 {
        return Err(XenError::Einval);
    }
    // Xen's order: the domain and the policy before the arguments.
    ctx.target(xmar.domid, Action::Remote)?;
    if xmar.frame_list.addr() == 0 {
        if xmar.nr_frames != 0 || start != 0 {
            return Err(XenError::Einval);
        }
        xmar.nr_frames = max_frames(xmar.type_, xmar.id)?;
        write(ctx, arg, &xmar)?;
        return Ok(0);
    }
    let start = u32::try_from(start).map_err(|_| XenError::Einval)?;
    if start >= xmar.nr_frames {
        return Err(XenError::Einval);
    }
    let mut done = start;
    while done < xmar.nr_frames {
        let todo = ROUND.min(xmar.nr_frames - done);
        let first = xmar.frame.checked_add(u64::from(done)).ok_or(XenError::Einval)?;
        let mfns = grant_frames(ctx, &xmar, first, todo)?;
        for (i, mfn) in mfns.iter().enumerate() {
            let at = xmar.frame_list.addr().wrapping_add((u64::from(done) + i as u64) * 8);
            write(ctx, at, &mfn.0)?;
        }
        done += todo;
    }
    Ok(0)
}

/// How many frames a resource has at most (the size query).
fn max_frames(kind: u16, id: u32) -> Result<u32, XenError> {
    match (u32::from(kind), id) {
        (XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED) => Ok(MAX_FRAMES),
        (XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS) => Ok(status_frames_for(MAX_FRAMES)),
        (XENMEM_RESOURCE_GRANT_TABLE, _) => Err(XenError::Einval),
        _ => Err(XenError::Eopnotsupp),
    }
}

/// Frames `first..first + count` of the target's grant table (its table
/// frames, or on version 2 its status frames), which grows to hold them
/// (up to its limit) as Xen's `gnttab_get_shared_frame_mfn` and
/// `gnttab_get_status_frame_mfn` do.
fn grant_frames(
    ctx: &mut Ctx,
    xmar: &MemAcquireResource,
    first: u64,
    count: u32,
) -> Result<alloc::vec::Vec<crate::mm::Mfn>, XenError> {
    let status = match (u32::from(xmar.type_), xmar.id) {
        (XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED) => false,
        (XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS) => true,
        (XENMEM_RESOURCE_GRANT_TABLE, _) => return Err(XenError::Einval),
        _ => return Err(XenError::Eopnotsupp),
    };
    let end = first.checked_add(u64::from(count)).ok_or(XenError::Einval)?;
    let limit = if status { status_frames_for(MAX_FRAMES) } else { MAX_FRAMES };
    let end = u32::try_from(end).ok().filter(|&e| e <= limit).ok_or(XenError::Einval)?;
    let target = ctx.peers.get_mut(xmar.domid).ok_or(XenError::Esrch)?;
    let gt = &mut target.gnttab;
    if status && gt.version != 2 {
        return Err(XenError::Einval);
    }
    // The table frames `end` status frames go with (8 per status frame).
    let need = if status { (end * (MAX_FRAMES / limit)).min(MAX_FRAMES) } else { end };
    if (gt.frames.len() as u32) < need {
        gt.grow(need, ctx.mem, ctx.frames, ctx.ft).map_err(|_| XenError::Einval)?;
    }
    let frames = if status { gt.status_frames() } else { &gt.frames[..] };
    frames.get(first as usize..end as usize).map(<[_]>::to_vec).ok_or(XenError::Einval)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{test_domain, World, BUF_VA};
    use crate::mm::Mfn;
    use guest_abi::memory::XENMEM_ACQUIRE_RESOURCE;
    use guest_abi::xen::{DOMID_SELF, HYPERVISOR_MEMORY_OP};
    use zerocopy::{FromZeros, IntoBytes};

    use super::*;

    const NR: u64 = HYPERVISOR_MEMORY_OP as u64;
    const LIST: u64 = BUF_VA + 0x100;

    fn world(privileged: bool) -> World {
        let mut w = World::new(privileged);
        w.add_peer(test_domain(1, false, 10..14, None, Mfn(15)));
        w
    }

    fn call(w: &mut World, xmar: MemAcquireResource) -> (i64, MemAcquireResource) {
        w.poke(BUF_VA, xmar.as_bytes());
        let ret = w.call_ret(NR, [u64::from(XENMEM_ACQUIRE_RESOURCE), BUF_VA, 0, 0, 0]);
        let back = w.peek(BUF_VA, core::mem::size_of::<MemAcquireResource>());
        (ret, MemAcquireResource::read_from_bytes(&back).unwrap_or_else(|_| panic!("read back")))
    }

    fn grant_table(domid: u16, frame: u64, nr_frames: u32, list: u64) -> MemAcquireResource {
        let mut x = MemAcquireResource::new_zeroed();
        (x.domid, x.type_, x.id, x.frame, x.nr_frames) =
            (domid, XENMEM_RESOURCE_GRANT_TABLE as u16, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED, frame, nr_frames);
        x.frame_list = guest_abi::GuestHandle::new(list);
        x
    }

    use zerocopy::FromBytes;

    #[test]
    fn a_size_query_answers_the_grant_table_limit() {
        let mut w = world(true);
        let (ret, out) = call(&mut w, grant_table(1, 0, 0, 0));
        assert_eq!((ret, out.nr_frames), (0, MAX_FRAMES));
        assert_eq!(call(&mut w, grant_table(1, 0, 1, 0)).0, -22, "a size query names no frames");
    }

    #[test]
    fn the_frames_are_the_targets_grant_table_grown_to_hold_them() {
        let mut w = world(true);
        assert!(w.peers[0].gnttab.frames.is_empty());
        let (ret, _) = call(&mut w, grant_table(1, 0, 2, LIST));
        assert_eq!(ret, 0);
        let frames = w.peers[0].gnttab.frames.clone();
        assert_eq!(frames.len(), 2, "grown on demand");
        let list = w.peek(LIST, 16);
        assert_eq!(list, [frames[0].0.to_le_bytes(), frames[1].0.to_le_bytes()].concat());
        assert!(w.peers[0].may_map(&w.ft, frames[0]), "the caller may then map them as the target's");
    }

    #[test]
    fn status_frames_of_a_version_2_table_grow_with_it() {
        let mut w = world(true);
        w.grow(40);
        w.pool.0.extend((24..40).map(Mfn));
        let target = &mut w.peers[0];
        target.gnttab.set_version(2, &mut w.mem, &mut w.pool, &mut w.ft).unwrap();
        let mut status = grant_table(1, 0, 1, LIST);
        status.id = XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS;
        assert_eq!(call(&mut w, status).0, 0);
        let gt = &w.peers[0].gnttab;
        assert_eq!((gt.frames.len(), gt.status.len()), (8, 1), "eight table frames per status frame");
        let first = gt.status[0];
        assert_eq!(w.peek(LIST, 8), first.0.to_le_bytes());
        status.frame = 8;
        assert_eq!(call(&mut w, status).0, -22, "beyond the status frames' limit");
    }

    #[test]
    fn what_xen_refuses_is_refused() {
        let mut w = world(true);
        assert_eq!(call(&mut w, grant_table(0, 0, 1, LIST)).0, -1, "the caller's own domain");
        assert_eq!(call(&mut w, grant_table(DOMID_SELF, 0, 1, LIST)).0, -3, "DOMID_SELF names no domain here");
        assert_eq!(call(&mut w, grant_table(7, 0, 1, LIST)).0, -3, "no such domain");
        let mut pad = grant_table(1, 0, 1, LIST);
        pad.pad = 1;
        assert_eq!(call(&mut w, pad).0, -22);
        assert_eq!(call(&mut w, grant_table(1, u64::from(MAX_FRAMES), 1, LIST)).0, -22, "beyond the limit");
        assert_eq!(call(&mut w, grant_table(1, u64::MAX, 1, LIST)).0, -22, "frame index overflow");
        let mut status = grant_table(1, 0, 1, LIST);
        status.id = XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS;
        assert_eq!(call(&mut w, status).0, -22, "status frames need grant tables v2");
        status.frame_list = guest_abi::GuestHandle::new(0);
        status.nr_frames = 0;
        let (rc, out) = call(&mut w, status);
        assert_eq!((rc, out.nr_frames), (0, 8), "their limit, though");
        let mut ioreq = grant_table(1, 0, 1, LIST);
        ioreq.type_ = 0;
        assert_eq!(call(&mut w, ioreq).0, -95, "an ioreq server is HVM's");
        assert!(w.peers[0].gnttab.frames.is_empty(), "nothing grew");
        let mut unprivileged = world(false);
        assert_eq!(call(&mut unprivileged, grant_table(1, 0, 1, LIST)).0, -1);
    }
}
