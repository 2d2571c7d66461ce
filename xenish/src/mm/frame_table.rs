//! The frame table: for every machine frame up to a limit, who owns it, what
//! it is used as (its page type), and how many references hold it — the
//! bookkeeping of Xen's `struct page_info` (xen/arch/x86/mm.c `get_page`,
//! `put_page`, `get_page_type`, `put_page_type`).
//!
//! Two counts per frame, as in Xen:
//! - the **reference count** (`count_info`): how many things hold the frame
//!   at all (page-table entries mapping it, base pointers, pins, grant
//!   mappings); a frame is referenced only through its owner;
//! - the **type count** (`type_info`): how many of those references need the
//!   frame to keep its current [`PageType`]. The type changes only while the
//!   type count is zero, so a frame is never a page table and writable at
//!   once.
//!
//! Validating a page table when it gains its first page-table type
//! reference, and devalidating it when it loses its last one, is the
//! business of [`super::pt_validate`]; this module only counts, and keeps
//! the progress of a preempted (de)validation in the frame's record
//! ([`Partial`], Xen's `PGT_partial` with `nr_validated_ptes`).
//!
//! Free frames that held a dead domain's data wait on a dirty list,
//! threaded through their records, until they are scrubbed
//! ([`FrameTable::push_dirty`], [`FrameTable::take_dirty`]); such a frame
//! is no one's and cannot be assigned.
//!
//! Ownership lives here and nowhere else: a frame's owner field says whose
//! it is, and a domain's frames are linked into its [`PageList`] (Xen's
//! `d->page_list`) through two links in their records, so that a domain's
//! frames can be walked (destruction, audits) and a frame joins or leaves
//! a domain in O(1) ([`FrameTable::assign_page`],
//! [`FrameTable::release_page`]). The list's length is the domain's
//! `tot_pages`.
//!
//! Storage: one 24-byte [`PageInfo`] per frame in a slice the caller
//! provides, zeroed (all zero is "free, untyped, unreferenced, unlinked").
//! On the machine it comes from the frame allocator through the direct
//! map, sized to the top of RAM (24 bytes per 4 KiB frame, 1/170 of RAM);
//! host tests use a vector. The links are 32-bit frame numbers, so the
//! table covers at most 2^32 - 1 frames (16 TiB), more than the direct map
//! reaches.

use guest_abi::errno::XenError;

use super::Mfn;
use crate::domain::DomId;

/// What a frame is used as: Xen's `PGT_*` page types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    /// No use that constrains it (type count zero).
    None,
    /// Mapped writable somewhere, or written by the hypervisor on a guest's
    /// behalf (`PGT_writable_page`).
    Writable,
    /// A page table of level 1 (maps pages).
    L1,
    /// A page table of level 2.
    L2,
    /// A page table of level 3.
    L3,
    /// A top-level page table.
    L4,
    /// A GDT or LDT page (`PGT_seg_desc_page`).
    SegDesc,
}

impl PageType {
    /// The page-table type of level `level` (1..=4).
    pub fn table(level: u8) -> Option<PageType> {
        match level {
            1 => Some(PageType::L1),
            2 => Some(PageType::L2),
            3 => Some(PageType::L3),
            4 => Some(PageType::L4),
            _ => None,
        }
    }

    /// The level of a page-table type, `None` for the others.
    pub fn level(self) -> Option<u8> {
        match self {
            PageType::L1 => Some(1),
            PageType::L2 => Some(2),
            PageType::L3 => Some(3),
            PageType::L4 => Some(4),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            PageType::None => 0,
            PageType::Writable => 1,
            PageType::L1 => 2,
            PageType::L2 => 3,
            PageType::L3 => 4,
            PageType::L4 => 5,
            PageType::SegDesc => 6,
        }
    }

    fn from_code(code: u8) -> PageType {
        match code {
            1 => PageType::Writable,
            2 => PageType::L1,
            3 => PageType::L2,
            4 => PageType::L3,
            5 => PageType::L4,
            6 => PageType::SegDesc,
            _ => PageType::None,
        }
    }
}

/// Who a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Nobody's: free memory, or the hypervisor's own frames (its heap,
    /// tables, the M2P), which no guest may map.
    Free,
    /// The hypervisor, shared with a guest (shared_info).
    Xen,
    /// A domain's memory.
    Domain(DomId),
}

const OWNER_FREE: u8 = 0;
const OWNER_XEN: u8 = 1;
const OWNER_DOMAIN: u8 = 2;
/// `PGT_pinned`.
const FLAG_PINNED: u8 = 1 << 0;
/// `PGT_validated`: the entries of a page-table frame hold their references.
const FLAG_VALIDATED: u8 = 1 << 1;
/// `PGT_partial`: a page table whose (de)validation was preempted; its
/// progress is in [`Partial`]. The flag holds one reference and the
/// frame's single type reference.
const FLAG_PARTIAL: u8 = 1 << 2;
/// With [`FLAG_PARTIAL`]: entry `nr` names a partially (de)validated table
/// itself, on which this one holds a reference but no type reference (Xen's
/// `PTF_partial_set`).
const FLAG_PARTIAL_CHILD: u8 = 1 << 3;
/// The table is being devalidated (in progress, or partially with
/// [`FLAG_PARTIAL`]) rather than validated.
const FLAG_DEVALIDATING: u8 = 1 << 4;
/// A free frame that held a dead domain's data and waits on the dirty
/// list to be scrubbed (Xen's `PGC_need_scrub`): it is no one's and
/// cannot be handed out.
const FLAG_NEED_SCRUB: u8 = 1 << 7;
/// Flag bits 5..6 hold bits 8..9 of [`Partial::nr`].
const NR_HIGH_SHIFT: u8 = 5;
const NR_HIGH_MASK: u8 = 3 << NR_HIGH_SHIFT;

/// Whose frames took a page-table or descriptor type ([`FrameTable::retyped`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retyped {
    /// Nobody's.
    #[default]
    None,
    /// Frames of this domain only.
    Owner(DomId),
    /// Frames of several domains (or of no domain).
    Several,
}

/// One frame's record (Xen's `struct page_info`), 24 bytes. All zero is a
/// free frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    count: u32,
    type_count: u32,
    /// The next frame of its owner's page list, as `mfn + 1` (0: none).
    next: u32,
    /// The previous frame of its owner's page list, as `mfn + 1` (0: none).
    prev: u32,
    owner: u16,
    /// Xen's `linear_pt_count`: > 0, linear entries this table holds;
    /// < 0, linear entries naming it.
    linear: i16,
    owner_kind: u8,
    ty: u8,
    flags: u8,
    /// Bits 0..7 of [`Partial::nr`] while [`FLAG_PARTIAL`] is set (Xen's
    /// `nr_validated_ptes`).
    nr_low: u8,
}

const _: () = assert!(core::mem::size_of::<PageInfo>() == 24);

/// The most frames a frame table can cover: page-list links are 32-bit
/// `mfn + 1`.
pub const MAX_FRAMES: u64 = u32::MAX as u64;

/// A page-list link: `mfn + 1`, 0 for none.
fn link(mfn: Mfn) -> u32 {
    u32::try_from(mfn.0.wrapping_add(1)).unwrap_or(0)
}

/// The frame a page-list link names.
fn unlink(l: u32) -> Option<Mfn> {
    l.checked_sub(1).map(|m| Mfn(u64::from(m)))
}

/// A domain's pages (Xen's `page_list_head` plus `tot_pages`): the ends of
/// a doubly-linked list threaded through the frame table's records, and
/// its length. Only [`FrameTable::assign_page`] and
/// [`FrameTable::release_page`] change it, together with the owner fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageList {
    head: u32,
    tail: u32,
    count: u64,
}

impl PageList {
    /// The number of pages on the list (the domain's `tot_pages`).
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first page.
    pub fn first(&self) -> Option<Mfn> {
        unlink(self.head)
    }
}

impl PageInfo {
    /// The frame's owner.
    pub fn owner(&self) -> Owner {
        match self.owner_kind {
            OWNER_XEN => Owner::Xen,
            OWNER_DOMAIN => Owner::Domain(self.owner),
            _ => Owner::Free,
        }
    }

    /// The reference count.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The type count.
    pub fn type_count(&self) -> u32 {
        self.type_count
    }

    /// The current page type (`None` whenever the type count is zero).
    pub fn page_type(&self) -> PageType {
        PageType::from_code(self.ty)
    }

    /// Whether the frame is pinned as a page table.
    pub fn pinned(&self) -> bool {
        self.flags & FLAG_PINNED != 0
    }

    /// Whether the frame is a validated page table.
    pub fn validated(&self) -> bool {
        self.flags & FLAG_VALIDATED != 0
    }

    /// Xen's `linear_pt_count`: the linear entries this page table holds
    /// (positive) or the linear entries naming it (negative); a table is
    /// never both.
    pub fn linear(&self) -> i16 {
        self.linear
    }

    /// The progress of a page table whose (de)validation was preempted
    /// (Xen's `PGT_partial`), `None` for every other frame.
    pub fn partial(&self) -> Option<Partial> {
        (self.flags & FLAG_PARTIAL != 0).then(|| Partial {
            nr: u16::from(self.nr_low) | u16::from((self.flags & NR_HIGH_MASK) >> NR_HIGH_SHIFT) << 8,
            child: self.flags & FLAG_PARTIAL_CHILD != 0,
            devalidating: self.flags & FLAG_DEVALIDATING != 0,
        })
    }

    /// The counting of Xen's `get_page` on this record, its owner checked
    /// by the caller ([`FrameTable::get_page`]): one more reference,
    /// `-EINVAL` on overflow.
    #[inline]
    pub(crate) fn get_ref(&mut self) -> Result<(), XenError> {
        self.count = self.count.checked_add(1).ok_or(XenError::Einval)?;
        Ok(())
    }

    /// Xen's `put_page` on this record ([`FrameTable::put_page`]).
    #[inline]
    pub(crate) fn put_ref(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// The counting half of Xen's `_get_page_type` on this record, without
    /// [`FrameTable::retyped`]'s note ([`FrameTable::get_type`] makes it;
    /// a [`PageType::Writable`] type needs none): one more type reference
    /// of type `ty`, whose caller holds a reference. A frame of another
    /// type with a non-zero type count is `-EINVAL` (Xen's "Bad type");
    /// with a zero type count it takes the new type.
    #[inline]
    pub(crate) fn get_type(&mut self, ty: PageType) -> Result<TypeRef, XenError> {
        if self.type_count == 0 {
            if self.flags & (FLAG_VALIDATED | FLAG_PARTIAL) != 0 {
                // A dying domain's table whose last type reference went
                // while its entries still hold theirs (see
                // [`FrameTable::put_type_deferred`]): nothing may retype it.
                return Err(XenError::Ebusy);
            }
            self.ty = ty.code();
            self.type_count = 1;
            self.flags = 0;
            return Ok(TypeRef::New);
        }
        if self.page_type() != ty {
            return Err(XenError::Einval);
        }
        if ty.level().is_none() || self.validated() {
            self.type_count = self.type_count.checked_add(1).ok_or(XenError::Einval)?;
            return Ok(TypeRef::Held);
        }
        match self.partial().filter(|q| !q.devalidating) {
            Some(partial) => {
                (self.flags, self.nr_low) = (0, 0);
                self.count = self.count.saturating_sub(1);
                Ok(TypeRef::Resume(partial))
            }
            // A page table being validated or devalidated (a table that
            // links to itself, or one whose devalidation was preempted).
            None => Err(XenError::Einval),
        }
    }

    /// The counting half of Xen's `put_page_type` on this record
    /// ([`FrameTable::put_type`]): drops a type reference; returns the
    /// page-table level whose entries must now be released when this was
    /// the last type reference of a validated page table (which keeps its
    /// type and a type count of 1, marked as being devalidated, until
    /// [`FrameTable::end_devalidation`]).
    #[inline]
    pub(crate) fn put_type(&mut self) -> Option<u8> {
        if self.type_count == 0 {
            return None;
        }
        self.type_count -= 1;
        if self.type_count != 0 {
            return None;
        }
        match self.validated().then(|| self.page_type().level()).flatten() {
            Some(level) => {
                self.type_count = 1;
                self.flags = FLAG_DEVALIDATING;
                Some(level)
            }
            None => {
                self.ty = PageType::None.code();
                self.flags = 0;
                None
            }
        }
    }
}

/// How far a preempted validation or devalidation of a page table got
/// (Xen's `nr_validated_ptes` and `partial_flags`): entries `0..nr` hold
/// their references; with `child`, entry `nr` names a table that is itself
/// partially (de)validated, on which this one holds a reference (no type
/// reference). A partial frame keeps its type with a type count of 1 and
/// one extra reference, both held by the partial state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Entries `0..nr` hold their references (0..=512).
    pub nr: u16,
    /// Entry `nr` is a partially (de)validated table.
    pub child: bool,
    /// Whether the table was being devalidated (else validated).
    pub devalidating: bool,
}

/// What a type reference found: the frame already had the type, or it has
/// just taken it and (for a page table) must now be validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeRef {
    /// The type was already held; the count went up.
    Held,
    /// The frame changed type (its type count was zero); a page-table
    /// type must be validated, then marked with [`FrameTable::set_validated`].
    New,
    /// A partially validated page table of that type: its partial state
    /// is gone (with the reference it held; the caller holds another) and
    /// the caller, now owner of its one type reference, resumes the
    /// validation from here.
    Resume(Partial),
}

/// The architectural limit of [`FrameTable::io_frames_end`]: 52-bit
/// physical addresses.
pub const MAX_IO_FRAMES_END: u64 = 1 << (52 - 12);

/// The frame table of the machine, plus the L4 slots every guest's
/// top-level tables carry (needed when an L4 is validated).
pub struct FrameTable {
    pages: &'static mut [PageInfo],
    /// L4 slots 256..=271 (the hypervisor hole) as every guest L4 has them.
    pub xen_l4_slots: [u64; 16],
    /// Page tables (512 entries each) validated or devalidated since boot:
    /// the work hypercall budgets charge (see [`Self::tables_walked`]).
    tables_walked: u64,
    /// The last batch's budget: the [`Self::tables_walked`] count at
    /// which its preemptible requests stop and record their progress
    /// (`u64::MAX` before any batch).
    preempt_at: u64,
    /// Free frames waiting to be scrubbed before anyone gets them again,
    /// linked through their records as a domain's pages are.
    dirty: PageList,
    /// A page table whose final type put the request being served left
    /// unfinished (Xen's `current->arch.old_guest_table` as a preemptible
    /// request sets it): partially devalidated, or still holding a type
    /// reference to drop, plus one reference this slot holds. The request's
    /// caller moves it to the vCPU ([`crate::domain::Vcpu::old_guest_table`])
    /// and finishes it in later steps.
    pub parked: Option<Mfn>,
    /// Whose frames took a page-table or descriptor type since the entry
    /// began: a CPU may still hold a writable translation of such a frame
    /// from before (a guest may drop its writable mappings without a
    /// flush), so the owner's dirty CPUs flush before it runs again (Xen's
    /// `_get_page_type` flush on a type change; no flush clock filters it
    /// here yet).
    pub retyped: Retyped,
    /// The first frame past the machine's physical address width
    /// (`2^(paddr_bits - 12)`, CPUID 0x80000008): the end of the I/O
    /// memory a privileged domain may map, as Xen's hardware domain's
    /// `iomem_caps` end at `PFN_DOWN(1 << paddr_bits)`.
    pub io_frames_end: u64,
}

impl core::fmt::Debug for FrameTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FrameTable({} frames)", self.pages.len())
    }
}

impl FrameTable {
    /// Page tables validated or devalidated since boot, each a walk over
    /// its 512 entries: a hypercall compares it before and after its work
    /// to know what the work cost.
    pub fn tables_walked(&self) -> u64 {
        self.tables_walked
    }

    /// Counts one page table walked by validation or devalidation.
    pub fn charge_table_walk(&mut self) {
        self.tables_walked = self.tables_walked.wrapping_add(1);
    }

    /// Sets the budget of the batch about to be served: its preemptible
    /// page-table requests ([`super::pt_validate::Mmu::pin_preemptible`],
    /// `unpin_preemptible`, `mod_entry_preemptible`) record their progress
    /// and stop with `-ERESTART` once [`Self::tables_walked`] reaches `at`.
    /// Only those consult it, so it needs no reset after the batch.
    #[inline]
    pub fn set_preempt_at(&mut self, at: u64) {
        self.preempt_at = at;
    }

    /// Whether a preemptible request has used up its batch's budget.
    #[inline]
    pub fn preempt_due(&self) -> bool {
        self.tables_walked >= self.preempt_at
    }

    /// Parks page table `mfn` ([`Self::parked`]), the caller's reference
    /// going with it, and ends the batch's budget: the batch stops after
    /// this request so that the parked work is finished before the next.
    pub fn park(&mut self, mfn: Mfn) {
        self.parked = Some(mfn);
        self.preempt_at = 0;
    }

    /// A frame table over `pages` (zeroed: every frame free), one record
    /// per machine frame from 0; records past [`MAX_FRAMES`] are not used.
    pub fn new(pages: &'static mut [PageInfo], xen_l4_slots: [u64; 16]) -> Self {
        let usable = pages.len().min(MAX_FRAMES as usize);
        let (pages, _) = pages.split_at_mut(usable);
        FrameTable {
            pages,
            xen_l4_slots,
            tables_walked: 0,
            preempt_at: u64::MAX,
            dirty: PageList::default(),
            parked: None,
            retyped: Retyped::None,
            io_frames_end: MAX_IO_FRAMES_END,
        }
    }

    /// Frames the table covers.
    pub fn nr_frames(&self) -> u64 {
        self.pages.len() as u64
    }

    /// The record of `mfn`, if the table covers it.
    #[inline]
    pub fn info(&self, mfn: Mfn) -> Option<&PageInfo> {
        self.pages.get(usize::try_from(mfn.0).ok()?)
    }

    /// The record of `mfn` for writing, if the table covers it: for the
    /// page-table paths that take several counts on one frame with one
    /// lookup ([`PageInfo::get_ref`], [`PageInfo::get_type`]).
    #[inline]
    pub(crate) fn info_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo> {
        self.pages.get_mut(usize::try_from(mfn.0).ok()?)
    }

    /// The owner of `mfn` (`None` beyond the table: not RAM).
    pub fn owner(&self, mfn: Mfn) -> Option<Owner> {
        self.info(mfn).map(PageInfo::owner)
    }

    /// Whether `mfn` is domain `id`'s RAM.
    pub fn is_owned_by(&self, mfn: Mfn, id: DomId) -> bool {
        self.owner(mfn) == Some(Owner::Domain(id))
    }

    /// Moves a frame that is no domain's between free and the hypervisor's
    /// ([`Owner::Free`] or [`Owner::Xen`]); only an unreferenced frame
    /// changes hands. A domain's pages change hands only through
    /// [`Self::assign_page`] and [`Self::release_page`], which keep its
    /// page list: `-EINVAL` for them.
    pub fn set_owner(&mut self, mfn: Mfn, owner: Owner) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if p.owner_kind == OWNER_DOMAIN || p.flags & FLAG_NEED_SCRUB != 0 {
            return Err(XenError::Einval);
        }
        if p.count != 0 {
            return Err(XenError::Ebusy);
        }
        (p.owner_kind, p.owner) = match owner {
            Owner::Free => (OWNER_FREE, 0),
            Owner::Xen => (OWNER_XEN, 0),
            Owner::Domain(_) => return Err(XenError::Einval),
        };
        Ok(())
    }

    /// Xen's `assign_pages` for one frame: the free, unreferenced `mfn`
    /// becomes domain `id`'s, at the end of its page list `list`.
    /// `-EINVAL` beyond the table, `-EBUSY` for a frame in use.
    pub fn assign_page(&mut self, mfn: Mfn, id: DomId, list: &mut PageList) -> Result<(), XenError> {
        let this = link(mfn);
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if this == 0 {
            return Err(XenError::Einval);
        }
        if p.owner_kind != OWNER_FREE || p.count != 0 || p.flags & FLAG_NEED_SCRUB != 0 {
            return Err(XenError::Ebusy);
        }
        (p.owner_kind, p.owner, p.next, p.prev) = (OWNER_DOMAIN, id, 0, list.tail);
        match unlink(list.tail).and_then(|t| self.info_mut(t)) {
            Some(tail) => tail.next = this,
            None => list.head = this,
        }
        list.tail = this;
        list.count += 1;
        Ok(())
    }

    /// The inverse of [`Self::assign_page`]: domain `id`'s unreferenced page
    /// `mfn` leaves its page list `list` and is free again (the caller
    /// returns it to the pool). `-EINVAL` if it is not `id`'s, `-EBUSY` if
    /// something still refers to it.
    pub fn release_page(&mut self, mfn: Mfn, id: DomId, list: &mut PageList) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if p.owner() != Owner::Domain(id) {
            return Err(XenError::Einval);
        }
        if p.count != 0 {
            return Err(XenError::Ebusy);
        }
        let (next, prev) = (p.next, p.prev);
        (p.owner_kind, p.owner, p.next, p.prev) = (OWNER_FREE, 0, 0, 0);
        match unlink(prev).and_then(|m| self.info_mut(m)) {
            Some(before) => before.next = next,
            None => list.head = next,
        }
        match unlink(next).and_then(|m| self.info_mut(m)) {
            Some(after) => after.prev = prev,
            None => list.tail = prev,
        }
        list.count = list.count.saturating_sub(1);
        Ok(())
    }

    /// Puts the free, unreferenced frame `mfn` (a dead domain's, or a
    /// hypervisor frame it was given) on the dirty list, to be scrubbed
    /// before it is handed out again ([`Self::take_dirty`]). `-EBUSY` for
    /// a frame in use or already there.
    pub fn push_dirty(&mut self, mfn: Mfn) -> Result<(), XenError> {
        let this = link(mfn);
        let tail = self.dirty.tail;
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if this == 0 || p.owner_kind != OWNER_FREE || p.count != 0 || p.flags & FLAG_NEED_SCRUB != 0 {
            return Err(XenError::Ebusy);
        }
        *p = PageInfo { flags: FLAG_NEED_SCRUB, prev: tail, ..PageInfo::default() };
        match unlink(tail).and_then(|t| self.info_mut(t)) {
            Some(t) => t.next = this,
            None => self.dirty.head = this,
        }
        self.dirty.tail = this;
        self.dirty.count += 1;
        Ok(())
    }

    /// The first frame of the dirty list, taken off it: free and clean in
    /// the frame table, for the caller to scrub and return to the pool.
    pub fn take_dirty(&mut self) -> Option<Mfn> {
        let mfn = self.dirty.first()?;
        let next = self.info(mfn).map_or(0, |p| p.next);
        if let Some(p) = self.info_mut(mfn) {
            *p = PageInfo::default();
        }
        match unlink(next).and_then(|m| self.info_mut(m)) {
            Some(n) => n.prev = 0,
            None => self.dirty.tail = 0,
        }
        self.dirty.head = next;
        self.dirty.count = self.dirty.count.saturating_sub(1);
        Some(mfn)
    }

    /// Frames waiting on the dirty list.
    pub fn dirty_frames(&self) -> u64 {
        self.dirty.len()
    }

    /// Whether `mfn` waits on the dirty list.
    pub fn needs_scrub(&self, mfn: Mfn) -> bool {
        self.info(mfn).is_some_and(|p| p.flags & FLAG_NEED_SCRUB != 0)
    }

    /// The page after `mfn` on its owner's page list.
    pub fn next_page(&self, mfn: Mfn) -> Option<Mfn> {
        self.info(mfn).and_then(|p| unlink(p.next))
    }

    /// The pages of `list`, first to last.
    pub fn pages<'t>(&'t self, list: &PageList) -> impl Iterator<Item = Mfn> + 't {
        core::iter::successors(list.first(), move |&m| self.next_page(m))
    }

    /// The page type of `mfn` (`None` for frames beyond the table).
    pub fn page_type(&self, mfn: Mfn) -> PageType {
        self.info(mfn).map_or(PageType::None, PageInfo::page_type)
    }

    /// Whether `mfn` is a validated page table of `owner`, of level `level`
    /// if given.
    #[inline]
    pub fn is_page_table_of(&self, mfn: Mfn, owner: DomId, level: Option<u8>) -> bool {
        self.info(mfn).is_some_and(|p| {
            p.owner_kind == OWNER_DOMAIN
                && p.owner == owner
                && p.validated()
                && p.page_type().level().is_some_and(|l| level.is_none_or(|want| want == l))
        })
    }

    /// The level of `mfn` if it is a validated page table of `owner`
    /// (one lookup: [`Self::page_type`] and [`Self::is_page_table_of`]).
    #[inline]
    pub fn table_level_of(&self, mfn: Mfn, owner: DomId) -> Option<u8> {
        let p = self.info(mfn)?;
        (p.owner_kind == OWNER_DOMAIN && p.owner == owner && p.validated()).then(|| p.page_type().level())?
    }

    /// Whether `mfn` is currently any page table.
    pub fn is_page_table(&self, mfn: Mfn) -> bool {
        self.page_type(mfn).level().is_some()
    }

    /// Xen's `get_page`: one more reference to `mfn`, which must belong to
    /// `owner` (`-EINVAL` otherwise, or on overflow).
    pub fn get_page(&mut self, mfn: Mfn, owner: Owner) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if p.owner() != owner || owner == Owner::Free {
            return Err(XenError::Einval);
        }
        p.get_ref()
    }

    /// Xen's `put_page`: drops a reference taken with [`Self::get_page`].
    pub fn put_page(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            p.put_ref();
        }
    }

    /// Notes that a frame of `owner` became a page table or descriptor
    /// page (see [`Self::retyped`]).
    fn note_retyped(&mut self, owner: Owner) {
        self.retyped = match (self.retyped, owner) {
            (Retyped::None, Owner::Domain(id)) => Retyped::Owner(id),
            (Retyped::Owner(a), Owner::Domain(b)) if a == b => Retyped::Owner(a),
            _ => Retyped::Several,
        };
    }

    /// Whose frames became page tables or descriptor pages since the last
    /// call, and forgets it.
    pub fn take_retyped(&mut self) -> Retyped {
        core::mem::take(&mut self.retyped)
    }

    /// The counting half of Xen's `_get_page_type`: one more type
    /// reference of type `ty` on `mfn`, whose caller holds a reference.
    /// A frame of another type with a non-zero type count is `-EINVAL`
    /// (Xen's "Bad type"); with a zero type count it takes the new type.
    pub fn get_type(&mut self, mfn: Mfn, ty: PageType) -> Result<TypeRef, XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        let r = p.get_type(ty)?;
        if r == TypeRef::New && ty != PageType::Writable {
            let owner = p.owner();
            self.note_retyped(owner);
        }
        Ok(r)
    }

    /// The type reference of a linear entry (Xen's
    /// `get_lN_linear_pagetable`): `mfn` must already be a validated page
    /// table of type `ty`; `-EINVAL` otherwise.
    pub fn get_linear_type(&mut self, mfn: Mfn, ty: PageType) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if p.type_count == 0 || p.page_type() != ty || !p.validated() {
            return Err(XenError::Einval);
        }
        p.type_count = p.type_count.checked_add(1).ok_or(XenError::Einval)?;
        Ok(())
    }

    /// Xen's `inc_linear_entries`: the table `mfn` gains a linear entry,
    /// unless it is itself named by linear entries.
    pub fn inc_linear_entries(&mut self, mfn: Mfn) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        match p.linear.checked_add(1) {
            Some(n) if n > 0 => {
                p.linear = n;
                Ok(())
            }
            _ => Err(XenError::Einval),
        }
    }

    /// Xen's `dec_linear_entries`.
    pub fn dec_linear_entries(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            if p.linear > 0 {
                p.linear -= 1;
            }
        }
    }

    /// Xen's `inc_linear_uses`: the table `mfn` is named by one more linear
    /// entry, unless it holds linear entries itself.
    pub fn inc_linear_uses(&mut self, mfn: Mfn) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        match p.linear.checked_sub(1) {
            Some(n) if n < 0 => {
                p.linear = n;
                Ok(())
            }
            _ => Err(XenError::Einval),
        }
    }

    /// Xen's `dec_linear_uses`.
    pub fn dec_linear_uses(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            if p.linear < 0 {
                p.linear += 1;
            }
        }
    }

    /// Marks a page-table frame whose entries now hold their references.
    pub fn set_validated(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            p.flags |= FLAG_VALIDATED;
        }
    }

    /// Records that the (de)validation of page table `mfn`, in progress,
    /// was preempted at `partial`: the partial state takes a reference of
    /// its own and keeps the type reference.
    pub fn set_partial(&mut self, mfn: Mfn, partial: Partial) {
        if let Some(p) = self.info_mut(mfn) {
            let nr = partial.nr.min(512);
            p.nr_low = (nr & 0xff) as u8;
            p.flags = (p.flags & FLAG_PINNED)
                | FLAG_PARTIAL
                | (((nr >> 8) as u8) << NR_HIGH_SHIFT & NR_HIGH_MASK)
                | if partial.child { FLAG_PARTIAL_CHILD } else { 0 }
                | if partial.devalidating { FLAG_DEVALIDATING } else { 0 };
            p.type_count = 1;
            p.count = p.count.saturating_add(1);
        }
    }

    /// Takes up the preempted devalidation of `mfn` (the caller holds a
    /// reference of its own): returns its progress, the partial state's
    /// reference gone; `None` if it is no partially devalidated table.
    pub fn resume_devalidation(&mut self, mfn: Mfn) -> Option<Partial> {
        let p = self.info_mut(mfn)?;
        let partial = p.partial().filter(|q| q.devalidating)?;
        (p.flags, p.nr_low) = ((p.flags & FLAG_PINNED) | FLAG_DEVALIDATING, 0);
        p.count = p.count.saturating_sub(1);
        Some(partial)
    }

    /// Undoes a [`TypeRef::New`] whose validation failed: the frame is
    /// untyped again.
    pub fn abandon_type(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            p.type_count = 0;
            p.ty = PageType::None.code();
            p.flags = 0;
        }
    }

    /// The counting half of Xen's `put_page_type`: drops a type reference.
    /// Returns the page-table level whose entries must now be released
    /// when this was the last type reference of a validated page table:
    /// the frame then keeps its type and a type count of 1, marked as being
    /// devalidated, until [`Self::end_devalidation`].
    pub fn put_type(&mut self, mfn: Mfn) -> Option<u8> {
        self.info_mut(mfn)?.put_type()
    }

    /// The end of a devalidation: the frame is untyped.
    pub fn end_devalidation(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            p.type_count = 0;
            p.ty = PageType::None.code();
            p.flags = 0;
        }
    }

    /// A dying domain's `put_page_type`: drops a type reference, but a
    /// validated (or partial) page table losing its last one keeps its
    /// type and entries, for the relinquish pass to take apart without
    /// recursion ([`crate::lifecycle`]).
    pub fn put_type_deferred(&mut self, mfn: Mfn) {
        if let Some(p) = self.info_mut(mfn) {
            p.type_count = p.type_count.saturating_sub(1);
            if p.type_count == 0 && p.flags & (FLAG_VALIDATED | FLAG_PARTIAL) == 0 {
                p.ty = PageType::None.code();
                p.flags = 0;
            }
        }
    }

    /// Xen's forced invalidation of a dying domain's page table
    /// (`relinquish_memory`): a validated or partial table stops being
    /// one, whoever still holds type references on it. Returns its level
    /// and which of its entries hold references, for the caller to release
    /// (the partial state's own references are gone). The frame keeps its
    /// type name while others hold type references, so that entries
    /// naming it are still told apart (linear or not); it is untyped once
    /// the last goes ([`Self::put_type_deferred`]).
    pub fn relinquish_table(&mut self, mfn: Mfn) -> Option<(u8, Partial)> {
        let p = self.info_mut(mfn)?;
        let level = p.page_type().level()?;
        let held = match p.partial() {
            Some(partial) => {
                p.count = p.count.saturating_sub(1);
                p.type_count = p.type_count.saturating_sub(1);
                partial
            }
            None if p.validated() => Partial { nr: 512, child: false, devalidating: false },
            None => return None,
        };
        (p.flags, p.nr_low) = (p.flags & FLAG_PINNED, 0);
        if p.type_count == 0 {
            p.ty = PageType::None.code();
        }
        Some((level, held))
    }

    /// Sets `mfn`'s pinned flag; `-EINVAL` if it already has that state.
    pub fn set_pinned(&mut self, mfn: Mfn, pinned: bool) -> Result<(), XenError> {
        let p = self.info_mut(mfn).ok_or(XenError::Einval)?;
        if p.pinned() == pinned {
            return Err(XenError::Einval);
        }
        if pinned {
            p.flags |= FLAG_PINNED;
        } else {
            p.flags &= !FLAG_PINNED;
        }
        Ok(())
    }

    /// Every frame's number and record (for consistency checks and tests).
    pub fn iter(&self) -> impl Iterator<Item = (Mfn, &PageInfo)> {
        self.pages.iter().enumerate().map(|(i, p)| (Mfn(i as u64), p))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    extern crate std;

    /// A frame table of `n` free frames for host tests (the storage is
    /// leaked: tests are short-lived processes).
    pub(crate) fn table(n: usize) -> FrameTable {
        FrameTable::new(std::vec![PageInfo::default(); n].leak(), [0; 16])
    }

    /// `ft` with its records kept and free frames added up to `n` (as if
    /// the machine had more memory).
    pub(crate) fn grown(ft: &FrameTable, n: usize) -> FrameTable {
        let mut pages = ft.pages.to_vec();
        pages.resize(n, PageInfo::default());
        let mut copy = FrameTable::new(pages.leak(), ft.xen_l4_slots);
        copy.io_frames_end = ft.io_frames_end;
        copy
    }

    #[test]
    fn references_need_the_owner() {
        let mut ft = table(4);
        let mut d3 = PageList::default();
        assert_eq!(ft.get_page(Mfn(1), Owner::Domain(0)), Err(XenError::Einval), "free frame");
        ft.assign_page(Mfn(1), 3, &mut d3).unwrap();
        assert_eq!(ft.get_page(Mfn(1), Owner::Domain(0)), Err(XenError::Einval), "someone else's");
        assert_eq!(ft.get_page(Mfn(9), Owner::Domain(3)), Err(XenError::Einval), "beyond the table");
        ft.get_page(Mfn(1), Owner::Domain(3)).unwrap();
        assert_eq!(ft.release_page(Mfn(1), 3, &mut d3), Err(XenError::Ebusy), "referenced frames stay");
        ft.put_page(Mfn(1));
        assert_eq!(ft.info(Mfn(1)).map(|p| p.count()), Some(0));
        assert_eq!(ft.set_owner(Mfn(1), Owner::Free), Err(XenError::Einval), "a domain's page leaves by its list");
        ft.release_page(Mfn(1), 3, &mut d3).unwrap();
        assert_eq!(ft.owner(Mfn(1)), Some(Owner::Free));
    }

    #[test]
    fn page_lists_link_a_domains_frames_through_the_table() {
        let mut ft = table(8);
        let (mut a, mut b) = (PageList::default(), PageList::default());
        for m in [5, 1, 6] {
            ft.assign_page(Mfn(m), 1, &mut a).unwrap();
        }
        ft.assign_page(Mfn(2), 2, &mut b).unwrap();
        assert_eq!(ft.pages(&a).collect::<std::vec::Vec<_>>(), [Mfn(5), Mfn(1), Mfn(6)], "in the order given");
        assert_eq!((a.len(), b.len()), (3, 1));
        assert_eq!(ft.assign_page(Mfn(2), 1, &mut a), Err(XenError::Ebusy), "another domain's");
        assert_eq!(ft.assign_page(Mfn(8), 1, &mut a), Err(XenError::Einval), "beyond the table");
        ft.set_owner(Mfn(3), Owner::Xen).unwrap();
        assert_eq!(ft.assign_page(Mfn(3), 1, &mut a), Err(XenError::Ebusy), "the hypervisor's");
        assert_eq!(ft.release_page(Mfn(2), 1, &mut a), Err(XenError::Einval), "not its own");
        assert_eq!(ft.set_owner(Mfn(4), Owner::Domain(1)), Err(XenError::Einval), "only through a list");
        // Out of the middle, the end and the start, and back in.
        ft.release_page(Mfn(1), 1, &mut a).unwrap();
        assert_eq!(ft.pages(&a).collect::<std::vec::Vec<_>>(), [Mfn(5), Mfn(6)]);
        ft.release_page(Mfn(6), 1, &mut a).unwrap();
        ft.assign_page(Mfn(0), 1, &mut a).unwrap();
        assert_eq!(ft.pages(&a).collect::<std::vec::Vec<_>>(), [Mfn(5), Mfn(0)], "frame 0 is linked as well");
        ft.release_page(Mfn(5), 1, &mut a).unwrap();
        ft.release_page(Mfn(0), 1, &mut a).unwrap();
        assert!(a.is_empty() && a.first().is_none());
        assert_eq!(a, PageList::default(), "an emptied list is as new");
        assert_eq!(ft.pages(&b).collect::<std::vec::Vec<_>>(), [Mfn(2)], "the other list untouched");
        for m in [0, 1, 5, 6] {
            assert_eq!(ft.info(Mfn(m)).copied(), Some(PageInfo::default()), "frame {m} as a free frame");
        }
    }

    #[test]
    fn a_type_changes_only_at_type_count_zero() {
        let mut ft = table(4);
        assert_eq!(ft.get_type(Mfn(2), PageType::Writable), Ok(TypeRef::New));
        assert_eq!(ft.get_type(Mfn(2), PageType::Writable), Ok(TypeRef::Held));
        assert_eq!(ft.get_type(Mfn(2), PageType::L1), Err(XenError::Einval));
        assert_eq!(ft.put_type(Mfn(2)), None);
        assert_eq!(ft.put_type(Mfn(2)), None, "writable frames need no devalidation");
        assert_eq!(ft.get_type(Mfn(2), PageType::L1), Ok(TypeRef::New));
        assert_eq!(ft.get_type(Mfn(2), PageType::L1), Err(XenError::Einval), "not validated yet");
        ft.set_validated(Mfn(2));
        assert_eq!(ft.get_type(Mfn(2), PageType::L1), Ok(TypeRef::Held));
        assert_eq!(ft.get_type(Mfn(2), PageType::Writable), Err(XenError::Einval));
        assert_eq!(ft.put_type(Mfn(2)), None);
        assert_eq!(ft.put_type(Mfn(2)), Some(1), "the last reference devalidates");
        assert_eq!(ft.get_type(Mfn(2), PageType::L1), Err(XenError::Einval), "being devalidated");
        assert_eq!(ft.get_type(Mfn(2), PageType::Writable), Err(XenError::Einval), "still an L1 meanwhile");
        ft.end_devalidation(Mfn(2));
        assert_eq!(ft.page_type(Mfn(2)), PageType::None);
    }
}
