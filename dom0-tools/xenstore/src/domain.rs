//! Domains as the store knows them: what the hypervisor says about them,
//! what the daemon must do for them, and what each one uses.
//!
//! Semantics: X:`tools/xenstore/xenstored_domain.c` `struct domain`,
//! `alloc_domain`, `find_or_alloc_existing_domain`, `chk_domain_generation`,
//! `domain_memory_add`, `domain_chk_quota` (Xen 4.17). A record exists for
//! every introduced domain and for every existing domain that owns nodes or
//! appears in a permission list; it remembers the global generation at its
//! creation, so that permission entries older than a domain with a reused
//! id do not apply to it.

use std::collections::BTreeMap;

use guest_abi::XenError;

use crate::connection::ConnId;

/// What `getdomaininfo` says about a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// No such domain.
    Absent,
    /// Alive and not shut down.
    Running,
    /// Shut down or crashed, not yet dying.
    Shutdown,
    /// Being destroyed (`XEN_DOMINF_dying`).
    Dying,
}

/// The hypervisor-facing side effects the store asks of the daemon.
///
/// The daemon implements this over `/dev/xen/*`; tests implement it with a
/// table of domains. Every method is called synchronously while the store
/// processes a request or a domain check, exactly where Xen's C xenstored
/// makes the corresponding library call.
pub trait Platform {
    /// `xc_domain_getinfo` for one domain.
    fn domain_state(&self, domid: u16) -> DomainState;

    /// `XS_INTRODUCE` of a domain not yet introduced: map its ring page
    /// (grant ref `GNTTAB_RESERVED_XENSTORE`, or the given `mfn`), bind an
    /// interdomain event channel to its `port`, mark the page connected and
    /// notify. On error nothing must stay mapped or bound.
    fn map_domain(&mut self, domid: u16, mfn: u64, port: u32) -> Result<(), XenError>;

    /// `XS_INTRODUCE` of an introduced domain: rebind its event channel to
    /// `port` (Xen ignores a failure here).
    fn rebind_domain(&mut self, domid: u16, port: u32);

    /// `domain_conn_reset`: zero the ring indices of `domid`'s page.
    fn reset_ring(&mut self, domid: u16);

    /// The domain's connection is gone: unbind its port, unmap its page.
    fn unmap_domain(&mut self, domid: u16);

    /// A message for the daemon's log (`CONTROL log`/`print`, warnings).
    fn log(&mut self, _msg: &str) {}
}

/// What one domain uses, for `CONTROL quota <domid>` and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainUsage {
    /// Nodes it owns.
    pub nodes: u32,
    /// Watches of its connection.
    pub watches: u32,
    /// Open transactions of its connection.
    pub transactions: u32,
    /// Replies queued but not yet taken.
    pub outstanding: u32,
    /// Bytes accounted to it.
    pub memory: u64,
}

/// One domain's record (`struct domain`).
#[derive(Debug)]
pub(crate) struct DomainRec {
    /// Global generation when the record was created.
    pub generation: u64,
    /// The ring connection, once introduced.
    pub conn: Option<ConnId>,
    /// `shutdown`: a shutdown was noticed and announced.
    pub shutdown: bool,
    /// `acc[ACC_NODES]`: nodes owned.
    pub nodes: u32,
    /// `memory`: bytes accounted.
    pub memory: u64,
}

/// All domain records, by domain id.
#[derive(Debug, Default)]
pub(crate) struct DomainTable {
    recs: BTreeMap<u32, DomainRec>,
}

impl DomainTable {
    /// The record of `domid`.
    pub fn get(&self, domid: u32) -> Option<&DomainRec> {
        self.recs.get(&domid)
    }

    /// The record of `domid`, mutable.
    pub fn get_mut(&mut self, domid: u32) -> Option<&mut DomainRec> {
        self.recs.get_mut(&domid)
    }

    /// `alloc_domain`: a fresh record stamped with `generation`.
    pub fn alloc(&mut self, domid: u32, generation: u64) -> &mut DomainRec {
        self.recs.entry(domid).or_insert(DomainRec { generation, conn: None, shutdown: false, nodes: 0, memory: 0 })
    }

    /// `find_or_alloc_existing_domain`: the record, created if the
    /// hypervisor knows the domain; `None` if it does not exist.
    pub fn find_or_alloc_existing(
        &mut self,
        domid: u32,
        generation: u64,
        platform: &dyn Platform,
    ) -> Option<&mut DomainRec> {
        if !self.recs.contains_key(&domid) {
            let exists = u16::try_from(domid).is_ok_and(|d| platform.domain_state(d) != DomainState::Absent);
            if !exists {
                return None;
            }
            self.alloc(domid, generation);
        }
        self.recs.get_mut(&domid)
    }

    /// Removes a record.
    pub fn remove(&mut self, domid: u32) -> Option<DomainRec> {
        self.recs.remove(&domid)
    }

    /// Every domain id with a record, in order.
    pub fn ids(&self) -> Vec<u32> {
        self.recs.keys().copied().collect()
    }

    /// `chk_domain_generation`: whether `domid` existed when a node of
    /// generation `gen` was written (so its permission entry applies).
    pub fn valid_at(&self, domid: u32, gen: u64) -> bool {
        self.recs.get(&domid).is_some_and(|d| d.generation <= gen)
    }

    /// `domain_memory_add`: adds (or with a negative `delta` removes)
    /// accounted bytes. With `limit`, refuses with `ENOMEM` to take the
    /// domain to or over `limit` bytes.
    pub fn memory_add(&mut self, domid: u32, delta: i64, limit: Option<u32>) -> Result<(), XenError> {
        let Some(d) = self.recs.get_mut(&domid) else {
            return Ok(());
        };
        let new = (d.memory as i64).saturating_add(delta).max(0) as u64;
        if let Some(limit) = limit {
            if delta > 0 && new >= u64::from(limit) {
                return Err(XenError::Enomem);
            }
        }
        d.memory = new;
        Ok(())
    }

    /// Adjusts the node count of `domid` by `delta`.
    pub fn nodes_add(&mut self, domid: u32, delta: i64) {
        if let Some(d) = self.recs.get_mut(&domid) {
            d.nodes = (i64::from(d.nodes) + delta).clamp(0, i64::from(u32::MAX)) as u32;
        }
    }
}
