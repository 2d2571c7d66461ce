//! Page-table validation over the frame table: what a PV guest's page-table
//! entries may hold and the references they take — Xen's
//! `get_page_from_l1e`..`l4e`, `put_page_from_l1e`..`l4e`,
//! `alloc_lN_table`/`free_lN_table`, `mod_lN_entry`, and the pin and base
//! pointer paths of `do_mmuext_op` (xen/arch/x86/mm.c, xen/arch/x86/pv/mm.h).
//!
//! Rules (Xen 4.17 semantics):
//! - A present L1 entry takes a reference on the frame it maps, and a
//!   writable type reference if it is writable; it may map frames of the
//!   page owner, or frames the hypervisor shares with it (shared_info,
//!   grant-table frames; those take a reference but never a type: they are
//!   never page tables, and outlive their domain while mapped). Refusals: disallowed flags
//!   (`-EINVAL`), a frame beyond the frame table (not RAM: `-EPERM`, Xen's
//!   "non-privileged attempt to map MMIO space"; for a privileged domain
//!   only past the machine's address width or in the MSI window, see
//!   [`io_frame_permitted`]), someone else's frame or a
//!   writable mapping of a page table (`-EBUSY`, Xen's `could_not_pin`).
//! - A present L2/L3/L4 entry takes a reference and a type reference of the
//!   next lower level on a frame of the table's owner, validating it if it
//!   had no type yet. PSE, GLOBAL, PCD and PWT are refused (`-EINVAL`: PV
//!   superpages are gone in 4.17). Linear page tables are Xen 4.17's
//!   default (`pv-linear-pt`): a read-only entry may name its own table or
//!   a validated table of the same level, one level deep; a writable one,
//!   or one naming a higher level, is `-EINVAL`.
//! - L4 slots 256..=271 belong to the hypervisor: filled from
//!   [`FrameTable::xen_l4_slots`] on validation, never written by guests.
//! - A table's entries hold their references exactly while the table has
//!   a page-table type reference: the first one validates it, the last one
//!   going devalidates it, as Xen 4.17's `_put_final_page_type` does. Xen
//!   keeps the stale type name (with `PGT_validated` clear) on a frame
//!   whose type count is zero and revalidates it on the next use; xenish
//!   drops the type to [`PageType::None`] instead, which a guest cannot
//!   tell apart. A failed validation releases what it took and leaves
//!   every count as before.
//! - Validation and devalidation are preemptible, as Xen's (`PGT_partial`
//!   and `-ERESTART`, `promote_lN_table`/`demote_lN_table`): when a
//!   batch serves a request ([`FrameTable::set_preempt_at`], the
//!   `*_preemptible` entry points: `mmuext_op`'s pins and unpins,
//!   `mmu_update`'s L2..L4 entries), every table walked
//!   is charged ([`FrameTable::tables_walked`]), and once the batch's
//!   budget is spent a table above L1 stops between two entries (after at
//!   least one: every call makes progress; one L1, 512 entries, is the
//!   unit) and records in the frame table how far it got
//!   ([`super::frame_table::Partial`]: entries `0..nr` hold their
//!   references, and entry `nr` may name a table partial itself, on which
//!   it holds a reference). The request fails with `-ERESTART`, the batch
//!   is continued at that request, and the same request resumes the work:
//!   a pin finds its table partially validated and goes on (so does any
//!   request taking that type on it, as in Xen); an unpin keeps the pin
//!   (and the table its type) until its devalidation is done, and the
//!   request again finds it pinned and partially devalidated. A partial
//!   table keeps its type with a type count of 1 and one more reference,
//!   both the partial state's, so it cannot take another type (`-EINVAL`),
//!   be mapped writable (`-EBUSY`), be written as plain memory (`-EINVAL`)
//!   or be freed; a partially devalidated one cannot be typed or pinned
//!   again before its unpin is finished (`-EINVAL`; Xen would let another
//!   request revalidate it). A failure part-way releases every reference
//!   the validation took, in earlier calls too: preemptibly, the table is
//!   parked ([`FrameTable::parked`], Xen's `old_guest_table`), partially
//!   devalidated from where it failed (adopting a table below parked
//!   itself), and the batch finishes its devalidation in bounded steps
//!   before it returns the error (Xen's second continuation form). So is
//!   the release of an entry's old value whose subtree loses its last
//!   link ([`Mmu::put_page_and_type_preemptible`], Xen's `PTF_defer`),
//!   and of an old base pointer; new base pointers validate preemptibly
//!   (`-ERESTART`, the same request again resumes).
//! - A dying domain's tables are taken apart without recursion
//!   ([`Mmu::relinquish_table`], Xen's `relinquish_memory`): one walk per
//!   table, the tables below losing their last type reference keeping
//!   their entries until the teardown reaches them ([`crate::lifecycle`]).
//! - The hypervisor adds `_PAGE_USER` to every present entry it accepts
//!   (64-bit PV kernels run in ring 3: Xen's `adjust_guest_lNe`).
//! - L1 entries with [`PTE_GNTTAB`] are grant mappings: the grant code
//!   holds their references; page-table updates may not overwrite them.

use guest_abi::errno::XenError;

use super::frame_table::{FrameTable, Owner, PageInfo, PageType, Partial, TypeRef};
use super::pagetable::{self, read_entry, write_entry, PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US};
use super::{MachineMemory, Mfn, PAGE_SIZE};
use crate::domain::{DomId, Domain};
use crate::guest_access::PTE_ADDR_MASK;

/// PWT | PCD | PAT: cache attributes an L1 entry of a domain without I/O
/// rights may not set.
const CACHE_ATTRS: u64 = (1 << 3) | (1 << 4) | (1 << 7);
/// Software-available bits 52..62 of an L1 entry, which xenish refuses
/// (bit 62 is Xen's `_PAGE_GNTTAB`).
const HIGH_RESERVED: u64 = 0x7ff << 52;
/// `_PAGE_GNTTAB` (pte bit 62): marks an L1 entry made by a grant mapping.
pub const PTE_GNTTAB: u64 = 1 << 62;
/// Flags refused in L2..L4 entries: PWT, PCD, PSE, GLOBAL (Xen's
/// `base_disallow_mask` at those levels; 52..62 and NX are allowed).
const LN_DISALLOWED: u64 = (1 << 3) | (1 << 4) | (1 << 7) | (1 << 8);
/// Flags an entry update may change without retaking references (Xen's
/// `FASTPATH_FLAG_WHITELIST`): NX, the software bits 52..62 and 9..11,
/// GLOBAL, DIRTY, ACCESSED and USER.
const FASTPATH_FLAGS: u64 = (1 << 63) | (0x7ff << 52) | (0x7 << 9) | (1 << 8) | PTE_D | PTE_A | PTE_US;
/// First L4 slot of the hypervisor hole.
const XEN_FIRST_SLOT: usize = 256;
/// Last L4 slot of the hypervisor hole.
const XEN_LAST_SLOT: usize = 271;
/// Entries per table.
const ENTRIES: usize = 512;

/// Whether L4 slot `i` is the hypervisor's.
pub fn is_xen_l4_slot(i: usize) -> bool {
    (XEN_FIRST_SLOT..=XEN_LAST_SLOT).contains(&i)
}

/// What a domain may map with its page tables: its own frames (through the
/// frame table) and the hypervisor frames shared with it.
#[derive(Clone, Copy, Debug)]
pub struct MapRights<'d> {
    /// The domain.
    pub id: DomId,
    /// Whether it has I/O rights (cache attributes in L1 entries).
    pub privileged: bool,
    /// Its shared_info frame.
    pub shared_info: Mfn,
    /// Its grant-table frames.
    pub grant_frames: &'d [Mfn],
    /// Its grant-table status frames (version 2).
    pub status_frames: &'d [Mfn],
}

impl<'d> MapRights<'d> {
    /// The rights of `d`.
    pub fn of(d: &'d Domain) -> Self {
        MapRights {
            id: d.id,
            privileged: d.privileged,
            shared_info: d.shared_info,
            grant_frames: &d.gnttab.frames,
            status_frames: d.gnttab.status_frames(),
        }
    }

    fn shares(&self, mfn: Mfn) -> bool {
        mfn == self.shared_info || self.grant_frames.contains(&mfn) || self.status_frames.contains(&mfn)
    }
}

/// Frames of the first MiB, legacy I/O for a domain with I/O rights.
pub const LEGACY_IO_FRAMES: u64 = 0x100;

/// The MSI address window `0xfee00000..=0xfeefffff` (the local APIC's
/// page at its default base among them), as frames: what Xen's
/// `dom0_setup_permissions` takes out of the hardware domain's
/// `iomem_caps` (`MSI_ADDR_BASE_LO` .. `+ MSI_ADDR_DEST_ID_MASK`).
pub const MSI_FRAMES: core::ops::RangeInclusive<u64> = 0xfee00..=0xfeeff;

/// Whether a domain with I/O rights may map the non-RAM frame `mfn`:
/// below the machine's physical address width (`io_frames_end`), outside
/// the MSI window and not an IO-APIC's registers, as Xen 4.17's
/// `iomem_access_permitted` answers for its hardware domain. Anything else
/// is `-EPERM` there ("attempt to map MMIO space"): a frame number no bus
/// decodes, or the interrupt controllers' registers.
pub fn io_frame_permitted(mfn: Mfn, io_frames_end: u64) -> bool {
    mfn.0 < io_frames_end && !MSI_FRAMES.contains(&mfn.0) && !crate::irq::is_io_apic_frame(mfn.0)
}

/// Whether the L1 entry `pte` maps an MSI-X table or PBA frame in use
/// writable: Xen's `mmio_ro_ranges`, which `get_page_from_l1e` makes it
/// map read-only ("Forcing read-only access to MFN").
fn msix_forced_ro(pte: u64) -> bool {
    pte & (PTE_P | PTE_RW) == PTE_P | PTE_RW && crate::irq::is_msix_frame(frame_of(pte).0)
}

/// The frame an entry names.
fn frame_of(pte: u64) -> Mfn {
    Mfn::containing(pte & PTE_ADDR_MASK)
}

/// The PV MMU at work: the frame table and the memory holding the tables.
pub struct Mmu<'a> {
    /// The frame table.
    pub ft: &'a mut FrameTable,
    /// Machine memory.
    pub mem: &'a mut dyn MachineMemory,
}

impl Mmu<'_> {
    fn entry(&self, table: Mfn, i: usize) -> Result<u64, XenError> {
        pagetable::entry(self.mem, table, i).map_err(|_| XenError::Einval)
    }

    fn set_entry(&mut self, table: Mfn, i: usize, v: u64) -> Result<(), XenError> {
        pagetable::set_entry(self.mem, table, i, v).map_err(|_| XenError::Einval)
    }

    /// Xen's `get_page_from_l1e`: the references a new L1 entry `pte` of a
    /// table of `pt` takes when it maps a frame of `pg`.
    pub fn get_page_from_l1e(&mut self, pte: u64, pt: &MapRights, pg: &MapRights) -> Result<(), XenError> {
        get_l1(self.ft, pte, pt, pg)
    }

    /// Xen's `put_page_from_l1e`: releases what [`Self::get_page_from_l1e`]
    /// took (nothing for grant entries, whose references the grant holds;
    /// only the reference for shared hypervisor frames).
    pub fn put_page_from_l1e(&mut self, pte: u64) {
        put_l1(self.ft, pte);
    }

    /// Xen's `get_page_from_l2e`..`l4e`: a present entry of the
    /// level-`level` table `table` of `owner` takes a reference and a type
    /// reference of level `level - 1` on the frame it names; failing that
    /// with `-EINVAL`, it may be a read-only linear entry. With `held`, the
    /// reference is held already (the entry names a partially validated
    /// table, which validation resumes). `-ERESTART`: the table named was
    /// left partially validated, and the reference stays held.
    fn get_page_from_lne(
        &mut self,
        level: u8,
        pte: u64,
        table: Mfn,
        owner: &MapRights,
        held: bool,
        preemptible: bool,
    ) -> Result<(), XenError> {
        if pte & PTE_P == 0 {
            return Ok(());
        }
        if pte & LN_DISALLOWED != 0 {
            return Err(XenError::Einval);
        }
        let target = frame_of(pte);
        let ty = PageType::table(level - 1).ok_or(XenError::Einval)?;
        if !held {
            if let Err(e) = self.ft.get_page(target, Owner::Domain(owner.id)) {
                return match e {
                    XenError::Einval => self.get_linear(level, pte, table, owner),
                    e => Err(e),
                };
            }
        }
        match self.get_type(target, owner, ty, preemptible) {
            Ok(()) => Ok(()),
            Err(XenError::Erestart) => Err(XenError::Erestart),
            // The table named failed part-way and was parked: the
            // reference goes with it (Xen keeps it when the page is
            // `old_guest_table`), for this table to adopt.
            Err(e) if self.ft.parked == Some(target) => Err(e),
            Err(e) => {
                self.ft.put_page(target);
                match e {
                    XenError::Einval => self.get_linear(level, pte, table, owner),
                    e => Err(e),
                }
            }
        }
    }

    /// Xen's `get_lN_linear_pagetable` (`pv-linear-pt`, on by default): a
    /// read-only entry of the level-`level` table `table` naming a
    /// validated table of the same level of `owner` — the table itself
    /// (taking nothing) or another one, which takes a reference and a type
    /// reference. Only one level of linearity: a table holding linear
    /// entries cannot be named by one, nor the other way round.
    fn get_linear(&mut self, level: u8, pte: u64, table: Mfn, owner: &MapRights) -> Result<(), XenError> {
        if pte & PTE_RW != 0 {
            return Err(XenError::Einval);
        }
        let target = frame_of(pte);
        if target == table {
            return Ok(());
        }
        let ty = PageType::table(level).ok_or(XenError::Einval)?;
        self.ft.get_page(target, Owner::Domain(owner.id))?;
        if let Err(e) = self.ft.inc_linear_entries(table) {
            self.ft.put_page(target);
            return Err(e);
        }
        if let Err(e) = self.ft.inc_linear_uses(target) {
            self.ft.dec_linear_entries(table);
            self.ft.put_page(target);
            return Err(e);
        }
        if let Err(e) = self.ft.get_linear_type(target, ty) {
            self.ft.dec_linear_uses(target);
            self.ft.dec_linear_entries(table);
            self.ft.put_page(target);
            return Err(e);
        }
        Ok(())
    }

    /// Releases what entry `pte` of the level-`level` table `table` holds.
    /// `-ERESTART`: the table it names was left partially devalidated,
    /// and the entry's reference on it stays held.
    fn put_page_from_entry(&mut self, level: u8, pte: u64, table: Mfn, preemptible: bool) -> Result<(), XenError> {
        if level == 1 {
            self.put_page_from_l1e(pte);
            return Ok(());
        }
        let target = frame_of(pte);
        if pte & PTE_P == 0 || target == table {
            return Ok(());
        }
        if self.ft.page_type(target).level() == Some(level) {
            // A linear entry (a normal one names the level below).
            self.ft.dec_linear_uses(target);
            self.ft.dec_linear_entries(table);
        }
        self.put_type_preemptible(target, preemptible)?;
        self.ft.put_page(target);
        Ok(())
    }

    /// Xen's `get_page_and_type`: a reference and a type reference of `ty`
    /// on `mfn`, a frame of `owner` (`-EINVAL` if it is not one), validating
    /// it if it becomes a page table now. Nothing is held on failure.
    pub fn get_page_and_type(&mut self, mfn: Mfn, owner: &MapRights, ty: PageType) -> Result<(), XenError> {
        self.get_page_and_type_with(mfn, owner, ty, false)
    }

    /// [`Self::get_page_and_type`] preemptible by the budget
    /// ([`FrameTable::set_preempt_at`]), Xen's `get_page_and_type_from_mfn`
    /// with `PTF_preemptible`: `-ERESTART` leaves the table partially
    /// validated (the same request resumes it); a failure part-way parks
    /// the table with the reference taken here ([`FrameTable::parked`]),
    /// for the caller to finish its devalidation in bounded steps.
    pub fn get_page_and_type_preemptible(&mut self, mfn: Mfn, owner: &MapRights, ty: PageType) -> Result<(), XenError> {
        self.get_page_and_type_with(mfn, owner, ty, true)
    }

    fn get_page_and_type_with(
        &mut self,
        mfn: Mfn,
        owner: &MapRights,
        ty: PageType,
        preemptible: bool,
    ) -> Result<(), XenError> {
        self.ft.get_page(mfn, Owner::Domain(owner.id))?;
        let r = self.get_type(mfn, owner, ty, preemptible);
        if r.is_err() && self.ft.parked != Some(mfn) {
            self.ft.put_page(mfn);
        }
        r
    }

    /// Xen's `_get_page_type`: a type reference of `ty` on `mfn` (whose
    /// caller holds a reference), validating a new page table or resuming
    /// a partially validated one. `-ERESTART` (only if `preemptible`): the
    /// table is left partially validated, holding a reference and its type
    /// reference of its own; the caller holds no type reference.
    fn get_type(&mut self, mfn: Mfn, owner: &MapRights, ty: PageType, preemptible: bool) -> Result<(), XenError> {
        let resume = match self.ft.get_type(mfn, ty)? {
            TypeRef::Held => return Ok(()),
            TypeRef::New => None,
            TypeRef::Resume(partial) => Some(partial),
        };
        let Some(level) = ty.level() else { return Ok(()) };
        match self.validate(mfn, level, owner, resume, preemptible) {
            Ok(()) => {
                self.ft.set_validated(mfn);
                Ok(())
            }
            Err(XenError::Erestart) => Err(XenError::Erestart),
            // Parked part-way: it stays typed until its devalidation ends.
            Err(e) if self.ft.parked == Some(mfn) => Err(e),
            Err(e) => {
                self.ft.abandon_type(mfn);
                Err(e)
            }
        }
    }

    /// Xen's `put_page_and_type`.
    pub fn put_page_and_type(&mut self, mfn: Mfn) {
        self.put_type(mfn);
        self.ft.put_page(mfn);
    }

    /// Xen's `put_page_and_type_preemptible`, preemptible by the budget
    /// ([`FrameTable::set_preempt_at`]): if the devalidation of a table
    /// losing its last type reference stops part-way, the table is parked
    /// with the caller's reference ([`FrameTable::parked`]) and the result
    /// is `-ERESTART`; [`Self::finish_put`] goes on with it.
    pub fn put_page_and_type_preemptible(&mut self, mfn: Mfn) -> Result<(), XenError> {
        match self.put_type_preemptible(mfn, true) {
            Ok(()) => {
                self.ft.put_page(mfn);
                Ok(())
            }
            Err(e) => {
                self.ft.park(mfn);
                Err(e)
            }
        }
    }

    /// Xen's `put_old_guest_table`: goes on with the final put of a parked
    /// table (a vCPU's `old_guest_table`), preemptible by the budget: its
    /// devalidation resumes where it stopped (or starts, if the table still
    /// holds the type reference to drop), and once done the parked
    /// reference goes. `-ERESTART`: stopped again, still parked.
    pub fn finish_put(&mut self, mfn: Mfn) -> Result<(), XenError> {
        let devalidating = self.ft.info(mfn).and_then(PageInfo::partial).is_some_and(|q| q.devalidating);
        if devalidating {
            self.resume_devalidation(mfn, true)?;
        } else {
            self.put_type_preemptible(mfn, true)?;
        }
        self.ft.put_page(mfn);
        Ok(())
    }

    /// The teardown's end of a parked table (a dying domain's vCPU's
    /// `old_guest_table`): its reference goes, and a type reference it
    /// still held goes as [`FrameTable::put_type_deferred`] drops it; the
    /// page walk takes the table apart.
    pub fn drop_parked(&mut self, mfn: Mfn) {
        if !self.ft.info(mfn).and_then(PageInfo::partial).is_some_and(|q| q.devalidating) {
            self.ft.put_type_deferred(mfn);
        }
        self.ft.put_page(mfn);
    }

    /// Xen's `put_page_type`: drops a type reference, devalidating a page
    /// table that loses its last one.
    pub fn put_type(&mut self, mfn: Mfn) {
        let _ = self.put_type_preemptible(mfn, false);
    }

    /// Xen's `_put_page_type`, preemptible if `preemptible`: `-ERESTART`
    /// when the devalidation of a table losing its last type reference
    /// was preempted (the table is left partially devalidated, its type
    /// reference held by the partial state).
    fn put_type_preemptible(&mut self, mfn: Mfn, preemptible: bool) -> Result<(), XenError> {
        let Some(level) = self.ft.put_type(mfn) else { return Ok(()) };
        self.devalidate(mfn, level, None, preemptible)?;
        self.ft.end_devalidation(mfn);
        Ok(())
    }

    /// Takes up the preempted devalidation of `mfn` (the caller holds a
    /// reference on it) and finishes it, or `-ERESTART` again.
    fn resume_devalidation(&mut self, mfn: Mfn, preemptible: bool) -> Result<(), XenError> {
        let Some(level) = self.ft.page_type(mfn).level() else { return Ok(()) };
        let Some(partial) = self.ft.resume_devalidation(mfn) else { return Ok(()) };
        self.devalidate(mfn, level, Some(partial), preemptible)?;
        self.ft.end_devalidation(mfn);
        Ok(())
    }

    /// Whether preemptible work done so far must stop here.
    fn must_stop(&self, preemptible: bool, did_work: bool) -> bool {
        preemptible && did_work && self.ft.preempt_due()
    }

    /// Xen's `promote_lN_table`: takes the references of the entries of
    /// the level-`level` table `mfn` of `owner`, from the start or from
    /// where `resume` left off. On a failure, releases those taken (the
    /// earlier calls' too). If `preemptible`, a table above L1 stops once
    /// the frame table's budget is spent, after at least one entry (every
    /// call makes progress), and records its progress: `-ERESTART`. On
    /// success the accepted entries get `_PAGE_USER` and an L4 its
    /// hypervisor slots.
    fn validate(
        &mut self,
        mfn: Mfn,
        level: u8,
        owner: &MapRights,
        resume: Option<Partial>,
        preemptible: bool,
    ) -> Result<(), XenError> {
        if level == 1 {
            let start = resume.map_or(0, |p| usize::from(p.nr).min(ENTRIES));
            return self.validate_l1(mfn, owner, start);
        }
        self.mem.frame(mfn).ok_or(XenError::Einval)?;
        self.ft.charge_table_walk();
        let (start, child) = resume.map_or((0, false), |p| (usize::from(p.nr).min(ENTRIES), p.child));
        let mut did_work = false;
        let mut i = start;
        while i < ENTRIES {
            if level == 4 && is_xen_l4_slot(i) {
                i += 1;
                continue;
            }
            if self.must_stop(preemptible, did_work) {
                self.ft.set_partial(mfn, Partial { nr: i as u16, child: false, devalidating: false });
                return Err(XenError::Erestart);
            }
            let pte = self.entry(mfn, i)?;
            if pte & PTE_P == 0 && !(child && i == start) {
                // Nothing to take. With the budget not spent, no entry up
                // to the next present one could stop (`did_work` is set
                // from here on): they are skipped in one scan.
                did_work = true;
                i = match preemptible && self.ft.preempt_due() {
                    true => i + 1,
                    false => self.mem.frame(mfn).and_then(|f| next_present(f, level, i + 1, false)).unwrap_or(ENTRIES),
                };
                continue;
            }
            match self.get_page_from_lne(level, pte, mfn, owner, child && i == start, preemptible) {
                Ok(()) => {
                    did_work = true;
                    // Accepted: `_PAGE_USER`, as Xen's adjust_guest_lNe in
                    // the same pass.
                    if pte & PTE_P != 0 {
                        self.set_entry(mfn, i, pte | PTE_US)?;
                    }
                }
                Err(XenError::Erestart) => {
                    self.ft.set_partial(mfn, Partial { nr: i as u16, child: true, devalidating: false });
                    return Err(XenError::Erestart);
                }
                Err(e) => {
                    // Xen's promote_lN_table failing part-way: the
                    // table is parked, partially devalidated from entry
                    // `i` down, adopting a table named there that was
                    // parked itself; its devalidation goes on in bounded
                    // steps. Not preemptible, or nothing to undo: at once.
                    let adopt = pte & PTE_P != 0 && self.ft.parked == Some(frame_of(pte));
                    if preemptible && (adopt || i > 0) {
                        self.ft.set_partial(mfn, Partial { nr: i as u16, child: adopt, devalidating: true });
                        self.ft.park(mfn);
                        return Err(e);
                    }
                    self.release_entries(mfn, level, i);
                    return Err(e);
                }
            }
            i += 1;
        }
        if level == 4 {
            for (i, &slot) in self.ft.xen_l4_slots.iter().enumerate() {
                pagetable::set_entry(self.mem, mfn, XEN_FIRST_SLOT + i, slot).map_err(|_| XenError::Einval)?;
            }
            // A new L4, perhaps in a frame that held another: XPTI root
            // copies of what was here are stale.
            crate::xpti::l4_changed();
        }
        Ok(())
    }

    /// [`Self::validate`] of an L1 from entry `start` on, never preempted
    /// (one L1 is the budget's unit): one pass over the frame's bytes,
    /// borrowed once, in which a present entry takes its references (its
    /// frame's record looked up once) and gets `_PAGE_USER` (Xen's
    /// `alloc_l1_table` with `adjust_guest_l1e`) and an absent one costs a
    /// load and a test. A failure releases what the earlier entries took.
    fn validate_l1(&mut self, mfn: Mfn, owner: &MapRights, start: usize) -> Result<(), XenError> {
        let Mmu { ft, mem } = self;
        let frame = mem.frame_mut(mfn).ok_or(XenError::Einval)?;
        ft.charge_table_walk();
        let mut failed = None;
        for (i, bytes) in frame.chunks_exact_mut(8).enumerate().skip(start) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes);
            let mut pte = u64::from_le_bytes(raw);
            if pte & PTE_P == 0 {
                continue;
            }
            if ft.owner(frame_of(pte)).is_none() && msix_forced_ro(pte) {
                pte &= !PTE_RW;
                bytes.copy_from_slice(&pte.to_le_bytes());
            }
            if let Err(e) = get_l1(ft, pte, owner, owner) {
                failed = Some((i, e));
                break;
            }
            bytes.copy_from_slice(&(pte | PTE_US).to_le_bytes());
        }
        match failed {
            None => Ok(()),
            Some((i, e)) => {
                self.release_entries(mfn, 1, i);
                Err(e)
            }
        }
    }

    /// Releases the references of entries `0..end` of a level-`level`
    /// table at once (a failed validation's undo).
    fn release_entries(&mut self, mfn: Mfn, level: u8, end: usize) {
        let _ = self.devalidate(mfn, level, Some(Partial { nr: end as u16, child: false, devalidating: true }), false);
    }

    /// Xen's `demote_lN_table`: the entries of the level-`level` table
    /// `mfn` release what they hold, from the last down, from the end or
    /// from where `resume` left off (first finishing the devalidation of
    /// the partial table its entry `nr` names). If `preemptible`, stops
    /// once the budget is spent, after at least one entry, and records its
    /// progress: `-ERESTART`.
    fn devalidate(&mut self, mfn: Mfn, level: u8, resume: Option<Partial>, preemptible: bool) -> Result<(), XenError> {
        self.ft.charge_table_walk();
        let (end, child) = resume.map_or((ENTRIES, false), |p| (usize::from(p.nr).min(ENTRIES), p.child));
        let mut did_work = false;
        if child {
            if let Ok(target) = self.entry(mfn, end).map(frame_of) {
                if let Err(e) = self.resume_devalidation(target, preemptible) {
                    self.ft.set_partial(mfn, Partial { nr: end as u16, child: true, devalidating: true });
                    return Err(e);
                }
                self.ft.put_page(target);
                did_work = true;
            }
        }
        if level == 1 && !child {
            // One pass over the frame's bytes, borrowed once; an absent
            // entry costs a load and a test (an L1 is never preempted).
            let Mmu { ft, mem } = self;
            if let Some(entries) = mem.frame(mfn).and_then(|f| f.get(..end * 8)) {
                for bytes in entries.chunks_exact(8).rev() {
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(bytes);
                    put_l1(ft, u64::from_le_bytes(raw));
                }
            }
            return Ok(());
        }
        let mut i = end;
        while i > 0 {
            i -= 1;
            if level == 4 && is_xen_l4_slot(i) {
                continue;
            }
            if level > 1 && self.must_stop(preemptible, did_work) {
                self.ft.set_partial(mfn, Partial { nr: (i + 1) as u16, child: false, devalidating: true });
                return Err(XenError::Erestart);
            }
            let Ok(pte) = self.entry(mfn, i) else { continue };
            if pte & PTE_P == 0 {
                // Nothing held. With the budget not spent, no entry down to
                // the next present one could stop: skipped in one scan.
                did_work = true;
                if !(preemptible && self.ft.preempt_due()) {
                    i = self.mem.frame(mfn).and_then(|f| next_present(f, level, i, true)).map_or(0, |j| j + 1);
                }
                continue;
            }
            if let Err(e) = self.put_page_from_entry(level, pte, mfn, preemptible) {
                self.ft.set_partial(mfn, Partial { nr: i as u16, child: true, devalidating: true });
                return Err(e);
            }
            did_work = true;
        }
        Ok(())
    }

    /// Xen's forced invalidation of a dying domain's table (its
    /// `relinquish_memory`): `mfn` stops being a page table at once,
    /// whoever holds type references, and its entries release what they
    /// hold without devalidating the tables they name (those lose their
    /// last type reference with [`FrameTable::put_type_deferred`] and are
    /// relinquished on their own): one walk of one table, whatever lies
    /// below it. Returns whether it was a table.
    pub fn relinquish_table(&mut self, mfn: Mfn) -> bool {
        let Some((level, held)) = self.ft.relinquish_table(mfn) else { return false };
        self.ft.charge_table_walk();
        let end = usize::from(held.nr).min(ENTRIES);
        for i in 0..end + usize::from(held.child && end < ENTRIES) {
            if level == 4 && is_xen_l4_slot(i) {
                continue;
            }
            let Ok(pte) = self.entry(mfn, i) else { continue };
            let target = frame_of(pte);
            if pte & PTE_P == 0 || (level > 1 && target == mfn) {
                continue;
            }
            if i == end {
                // A partial table named here: a reference, no type reference.
                self.ft.put_page(target);
            } else if level == 1 {
                if pte & PTE_GNTTAB != 0 {
                    continue;
                }
                match self.ft.owner(target) {
                    Some(Owner::Domain(_)) if pte & PTE_RW != 0 => self.ft.put_type_deferred(target),
                    Some(Owner::Domain(_) | Owner::Xen) => {}
                    _ => continue,
                }
                self.ft.put_page(target);
            } else {
                if self.ft.page_type(target).level() == Some(level) {
                    self.ft.dec_linear_uses(target);
                    self.ft.dec_linear_entries(mfn);
                }
                self.ft.put_type_deferred(target);
                self.ft.put_page(target);
            }
        }
        true
    }

    /// Xen's `mod_lN_entry`: writes `new` into entry `slot` of `table`, a
    /// validated level-`level` table of `pt` (the caller checks that),
    /// taking the new entry's references (frames of `pg` for an L1) before
    /// releasing the old one's. With `preserve_ad` the old accessed and
    /// dirty bits stay. Returns whether the entry changed. Served by a
    /// batch ([`Self::mod_entry_preemptible`]), validating the table a
    /// new L2..L4 entry names may stop with `-ERESTART`: the
    /// entry is not written, the table named is left partially validated,
    /// and the same request resumes it. Releasing the old entry's subtree
    /// may stop too: the entry is written, and the table it named is
    /// parked ([`FrameTable::parked`]) for the batch to finish.
    #[allow(clippy::too_many_arguments)]
    pub fn mod_entry(
        &mut self,
        table: Mfn,
        level: u8,
        slot: usize,
        new: u64,
        preserve_ad: bool,
        pt: &MapRights,
        pg: &MapRights,
    ) -> Result<bool, XenError> {
        let r = self.mod_entry_with(table, level, slot, new, preserve_ad, (pt, pg), false);
        if level == 4 {
            // After the write: an XPTI root copy made before it is stale.
            crate::xpti::l4_changed();
        }
        r
    }

    /// [`Self::mod_entry`] served by a batch: preemptible by the batch's
    /// budget ([`FrameTable::set_preempt_at`]).
    #[allow(clippy::too_many_arguments)]
    pub fn mod_entry_preemptible(
        &mut self,
        table: Mfn,
        level: u8,
        slot: usize,
        new: u64,
        preserve_ad: bool,
        pt: &MapRights,
        pg: &MapRights,
    ) -> Result<bool, XenError> {
        let r = self.mod_entry_with(table, level, slot, new, preserve_ad, (pt, pg), true);
        if level == 4 {
            // After the write: an XPTI root copy made before it is stale.
            crate::xpti::l4_changed();
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn mod_entry_with(
        &mut self,
        table: Mfn,
        level: u8,
        slot: usize,
        new: u64,
        preserve_ad: bool,
        (pt, pg): (&MapRights, &MapRights),
        preemptible: bool,
    ) -> Result<bool, XenError> {
        if slot >= ENTRIES || (level == 4 && is_xen_l4_slot(slot)) {
            // Xen: "L4 update in Xen-private area".
            return Err(XenError::Einval);
        }
        // The table's bytes, borrowed once: an L1 update (and any update
        // the old entry's references serve) reads and writes through them.
        let frame = self.mem.frame_mut(table).ok_or(XenError::Einval)?;
        let old = read_entry(frame, slot);
        if level == 1 && old & PTE_P != 0 && old & PTE_GNTTAB != 0 {
            // Xen crashes a domain that implicitly unmaps a grant.
            return Err(XenError::Einval);
        }
        let mut value = if new & PTE_P != 0 { new | PTE_US } else { new };
        if level == 1 && self.ft.owner(frame_of(new)).is_none() && msix_forced_ro(new) {
            value &= !PTE_RW;
        }
        if preserve_ad {
            value |= old & (PTE_A | PTE_D);
        }
        if new & PTE_P != 0 {
            if level == 1 {
                check_l1_flags(new, pt)?;
            } else if new & LN_DISALLOWED != 0 {
                return Err(XenError::Einval);
            }
            // Same frame and flags but for Xen's FASTPATH_FLAG_WHITELIST:
            // the old entry's references serve.
            let same = old & PTE_P != 0 && (old ^ new) & !FASTPATH_FLAGS == 0;
            if same {
                write_entry(frame, slot, value);
                return Ok(value != old);
            }
            if level == 1 {
                get_l1(self.ft, new, pt, pg)?;
            }
        }
        if level == 1 {
            write_entry(frame, slot, value);
            put_l1(self.ft, old);
            return Ok(value != old);
        }
        if new & PTE_P != 0 {
            if let Err(e) = self.get_page_from_lne(level, new, table, pt, false, preemptible) {
                if e == XenError::Erestart {
                    self.ft.put_page(frame_of(new));
                }
                return Err(e);
            }
        }
        if let Err(e) = self.set_entry(table, slot, value) {
            let _ = self.put_page_from_entry(level, value, table, false);
            return Err(e);
        }
        if self.put_page_from_entry(level, old, table, preemptible).is_err() {
            // Xen's PTF_defer: the table the old entry named is left
            // partially devalidated, parked with the entry's reference;
            // the request is done and the batch finishes the put next.
            self.ft.park(frame_of(old));
        }
        Ok(value != old)
    }

    /// `MMUEXT_PIN_Ln_TABLE`: a type reference of level `level` on `mfn`, a
    /// frame of `owner`, held by the pin; pinning twice is `-EINVAL`.
    /// Served by a batch ([`Self::pin_preemptible`]), validation may stop
    /// with `-ERESTART`, leaving the table partially validated (and unpinned):
    /// the same request again resumes it (Xen's `PIN_Ln_TABLE` with
    /// `get_page_type_preemptible`).
    pub fn pin(&mut self, mfn: Mfn, level: u8, owner: &MapRights) -> Result<(), XenError> {
        self.pin_with(mfn, level, owner, false)
    }

    /// [`Self::pin`] served by a batch: preemptible by the batch's budget
    /// ([`FrameTable::set_preempt_at`]).
    pub fn pin_preemptible(&mut self, mfn: Mfn, level: u8, owner: &MapRights) -> Result<(), XenError> {
        self.pin_with(mfn, level, owner, true)
    }

    fn pin_with(&mut self, mfn: Mfn, level: u8, owner: &MapRights, preemptible: bool) -> Result<(), XenError> {
        let ty = PageType::table(level).ok_or(XenError::Einval)?;
        self.ft.get_page(mfn, Owner::Domain(owner.id))?;
        if let Err(e) = self.get_type(mfn, owner, ty, preemptible) {
            if self.ft.parked != Some(mfn) {
                self.ft.put_page(mfn);
            }
            return Err(e);
        }
        if let Err(e) = self.ft.set_pinned(mfn, true) {
            self.put_page_and_type(mfn);
            return Err(e);
        }
        Ok(())
    }

    /// `MMUEXT_UNPIN_TABLE`: drops the pin of `owner`'s frame `mfn`
    /// (`-EINVAL` if it is not a pinned frame of `owner`). Served by a
    /// batch ([`Self::unpin_preemptible`]), the devalidation of a table losing its last
    /// type reference may stop with `-ERESTART`: the table stays pinned
    /// (nothing else may pin, type or link it), partially devalidated, and
    /// the same request again resumes it. Xen parks such a table in the
    /// vCPU's `old_guest_table` and reports the request done; xenish
    /// re-executes the request instead, which a guest cannot tell apart.
    pub fn unpin(&mut self, mfn: Mfn, owner: DomId) -> Result<(), XenError> {
        self.unpin_with(mfn, owner, false)
    }

    /// [`Self::unpin`] served by a batch: preemptible by the batch's
    /// budget ([`FrameTable::set_preempt_at`]).
    pub fn unpin_preemptible(&mut self, mfn: Mfn, owner: DomId) -> Result<(), XenError> {
        self.unpin_with(mfn, owner, true)
    }

    fn unpin_with(&mut self, mfn: Mfn, owner: DomId, preemptible: bool) -> Result<(), XenError> {
        if self.ft.owner(mfn) != Some(Owner::Domain(owner)) {
            return Err(XenError::Einval);
        }
        let resuming = self.ft.info(mfn).is_some_and(|p| p.pinned() && p.partial().is_some_and(|q| q.devalidating));
        if resuming {
            self.resume_devalidation(mfn, preemptible)?;
        } else {
            self.ft.set_pinned(mfn, false)?;
            if let Err(e) = self.put_type_preemptible(mfn, preemptible) {
                let _ = self.ft.set_pinned(mfn, true);
                return Err(e);
            }
        }
        let _ = self.ft.set_pinned(mfn, false);
        self.ft.put_page(mfn);
        Ok(())
    }
}

/// Xen's `get_page_from_l1e` on the frame table alone (the body of
/// [`Mmu::get_page_from_l1e`]): the frame's record is looked up once for
/// its owner, its reference and its writable type.
#[inline]
fn get_l1(ft: &mut FrameTable, pte: u64, pt: &MapRights, pg: &MapRights) -> Result<(), XenError> {
    if pte & PTE_P == 0 {
        return Ok(());
    }
    check_l1_flags(pte, pt)?;
    let mfn = frame_of(pte);
    let io_frames_end = ft.io_frames_end;
    let Some(p) = ft.info_mut(mfn) else {
        // Not RAM: I/O memory (MMIO, ROM), which only a domain with I/O
        // rights maps (Xen's dom_io frames, iomem_access_permitted).
        return if pg.privileged && io_frame_permitted(mfn, io_frames_end) { Ok(()) } else { Err(XenError::Eperm) };
    };
    match p.owner() {
        Owner::Domain(id) if id == pg.id => {}
        // A hypervisor frame shared with the page owner (shared_info, a
        // grant-table frame) takes a reference, so it outlives every
        // mapping of it, but never a type: it is never a page table.
        Owner::Xen if pg.shares(mfn) => return p.get_ref().map_err(|_| XenError::Ebusy),
        // The first MiB, which xenish never hands out, is legacy I/O
        // (VGA, option ROMs, the BIOS), as Xen gives it to dom_io.
        Owner::Free if pg.privileged && mfn.0 < LEGACY_IO_FRAMES => return Ok(()),
        _ => return Err(XenError::Ebusy),
    }
    p.get_ref().map_err(|_| XenError::Ebusy)?;
    if pte & PTE_RW != 0 && p.get_type(PageType::Writable).is_err() {
        p.put_ref();
        return Err(XenError::Ebusy);
    }
    Ok(())
}

/// Xen's `put_page_from_l1e` on the frame table alone (the body of
/// [`Mmu::put_page_from_l1e`]), one lookup of the frame's record.
#[inline]
fn put_l1(ft: &mut FrameTable, pte: u64) {
    if pte & PTE_P == 0 || pte & PTE_GNTTAB != 0 {
        return;
    }
    let Some(p) = ft.info_mut(frame_of(pte)) else { return };
    match p.owner() {
        Owner::Domain(_) => {}
        Owner::Xen => return p.put_ref(),
        Owner::Free => return,
    }
    if pte & PTE_RW != 0 {
        let _ = p.put_type();
    }
    p.put_ref();
}

/// The first index in `from..ENTRIES` (`rev`: the last in `0..from`)
/// whose entry of `frame` is present and, in an L4, not a hypervisor slot;
/// `None` if there is none. The (de)validation loops skip the rest in one
/// scan.
fn next_present(frame: &[u8; PAGE_SIZE], level: u8, from: usize, rev: bool) -> Option<usize> {
    let wanted = |i: usize| read_entry(frame, i) & PTE_P != 0 && !(level == 4 && is_xen_l4_slot(i));
    if rev {
        (0..from.min(ENTRIES)).rev().find(|&i| wanted(i))
    } else {
        (from..ENTRIES).find(|&i| wanted(i))
    }
}

/// The L1 table and slot mapping `va` in the hierarchy under `l4`, if
/// every table on the way is a validated page table of `owner`.
pub fn find_l1(ft: &FrameTable, mem: &dyn MachineMemory, owner: DomId, l4: Mfn, va: u64) -> Option<(Mfn, usize)> {
    if !ft.is_page_table_of(l4, owner, Some(4)) {
        return None;
    }
    let mut table = l4;
    for (shift, level) in [(39u32, 3u8), (30, 2), (21, 1)] {
        let e = read_entry(mem.frame(table)?, ((va >> shift) & 511) as usize);
        if e & PTE_P == 0 {
            return None;
        }
        table = frame_of(e);
        if !ft.is_page_table_of(table, owner, Some(level)) {
            return None;
        }
    }
    Some((table, ((va >> 12) & 511) as usize))
}

/// The flag rules of an L1 entry of a table of `pt`.
fn check_l1_flags(pte: u64, pt: &MapRights) -> Result<(), XenError> {
    let disallowed = HIGH_RESERVED | if pt.privileged { 0 } else { CACHE_ATTRS };
    if pte & disallowed != 0 {
        return Err(XenError::Einval);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
