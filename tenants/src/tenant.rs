//! A tenant: one client image on a shared base.

use crate::roots::Handles;
use crate::space::{Body, Entry, Obj, Space, State, Writable, cost};
use crate::stats::{ReadCounters, add};
use crate::{Error, Result, TenantReader, TenantStats, TenantWriter};
use cowheap_forwarders::{Base, DivertMarks, IndirectionTable, MarkFilter, MarkPolicy, MarkTarget};
use cowheap_heap::{
    Decoded, Error as HeapError, Format, HeapReader, ObjectIndex, ObjectSize, PrivateKey, TenantId,
    Value, Word,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The quota word of a tenant with no quota (no tenant holds `u64::MAX` private bytes), and
/// the snapshot's quota field for none.
pub(crate) const NO_QUOTA: u64 = u64::MAX;

/// How a tenant is set up: when forked ([`Tenant::fork_with`]), and when restored from a
/// snapshot ([`Tenant::restore_with`]), where the host's configuration wins over what the
/// snapshot says. The default has no quota and uses the base's shared marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantConfig {
    /// Most private bytes the tenant may hold (see [`Tenant::quota`]); `None` for no limit.
    pub quota: Option<u64>,
    /// Which diverted marks the read path consults.
    pub marks: MarkPolicy,
}

/// An object's class, format and size, as [`Tenant::header`] answers them together.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// The class, as [`Tenant::class_of`] answers it.
    pub class: Value,
    /// The format.
    pub format: Format,
    /// The number of pointer slots and of raw bytes.
    pub size: ObjectSize,
}

/// Where a reference leads in a tenant's view, after the table and every forwarder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// An object of the base this tenant has not diverted.
    Base(ObjectIndex),
    /// A private object (never a forwarder).
    Private(PrivateKey),
}

impl Loc {
    pub(crate) fn word(self) -> Word {
        match self {
            Loc::Base(x) => Word::base(x),
            Loc::Private(k) => Word::private(k),
        }
    }
}

/// Where a reference leads when that takes no forwarder: the first step of every read's
/// out-of-line path.
#[derive(Clone, Copy, Debug)]
enum Quick<'a> {
    /// A base object read in place: its index and header offset.
    Base(ObjectIndex, u64),
    /// A live private object: the tenant's own (through a private reference), or its copy of
    /// a base object (through the base reference and the table).
    Private(Obj<'a>),
    /// An object some version of the base changed: read through the tenant's version.
    Version(ObjectIndex),
}

/// One client image: a view of a shared [`Base`] plus the objects it has written or made.
///
/// A tenant reads the base in place. Its first write to a base object copies that object
/// into its private space (keeping its identity and identity hash), marks the base object
/// diverted, and records the copy in its indirection table; from then on every reference to
/// the object, from base objects and private ones alike, reaches the copy. References held
/// in private slots are patched to the copy when read (lazy become).
///
/// A tenant is `Send` and owned by one thread at a time. Reads take `&self` (a read may patch
/// a private slot and bump a counter, through cells); writes take `&mut self`, but for a
/// [`TenantWriter`]'s later writes, also through cells. A tenant is not `Sync`: share it
/// between threads through a [`crate::Registry`] or a mutex.
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<cowheap_tenants::Tenant>();
/// ```
///
/// Every fallible operation returns [`Error`] and changes nothing when it does.
///
/// ```
/// use cowheap_forwarders::Base;
/// use cowheap_heap::{synth, Value};
/// use cowheap_tenants::Tenant;
///
/// let base = Base::new(synth::image(1_000, 1));
/// let smalltalk = base.heap().root("Smalltalk").unwrap();
/// let mut a = Tenant::fork(&base);
/// let mut b = Tenant::fork(&base);
/// a.set_slot(smalltalk, 0, Value::int(7)).unwrap();
/// assert_eq!(a.slot(smalltalk, 0).unwrap().as_int(), Some(7));
/// assert!(b.slot(smalltalk, 0).unwrap().as_int().is_none()); // b still sees the base
/// assert_eq!(a.stats().copies, 1);
/// ```
#[derive(Debug)]
pub struct Tenant {
    pub(crate) id: TenantId,
    pub(crate) base: Arc<Base>,
    /// The base's shared marks (header offsets, lanes, committed and diverted bits), cloned:
    /// the fast read path reads an object's offset here.
    pub(crate) marks: DivertMarks,
    /// This tenant's own marks under [`MarkPolicy::Private`]; the shared bits are then ignored.
    /// Set only through [`Tenant::set_filter`], which keeps `own_marks` with it.
    pub(crate) filter: Option<MarkFilter>,
    /// [`DivertMarks::DIVERTED`] and the tenant's lane while the tenant has a filter, else 0:
    /// or-ed into a mark word, it sends every read of a tenant with its own marks past the
    /// fast path's sign test and lane test to the filter's, so those tests need no dispatch
    /// on the policy.
    own_marks: u64,
    /// This tenant's lane in the shared marks, drawn at fork ([`DivertMarks::draw_lane`]): set
    /// with the diverted bit by its diverts, and tested on a marked object before its
    /// table's filter.
    pub(crate) lane: u64,
    /// The base heap's bytes, held here so the fast read path needs nothing behind `base`.
    pub(crate) reader: HeapReader,
    pub(crate) table: IndirectionTable,
    pub(crate) space: Space,
    /// Most private bytes, [`NO_QUOTA`] for no limit: a plain word rather than an
    /// `Option<u64>`, which is 8 bytes more in every tenant.
    quota: u64,
    /// Everything else, made on the first write, allocation, root or handle: an idle tenant
    /// holds none of it and forking allocates nothing.
    pub(crate) cold: Option<Box<Cold>>,
}

/// A tenant's state that the read path never needs. Boxed, so that an idle tenant holds
/// none of it; the counters in it were once inline in the tenant, and moving them out was
/// measured at about 1.3x faster undiverted reads. Its cells are inline here, behind the
/// tenant's box: with nothing mutable inline in the [`Tenant`] itself (the base's words keep
/// their owner behind an `Arc`; the marks' atomics, the arena's cells and these are all
/// behind pointers), `&Tenant` is read-only to the compiler, which keeps the read path's
/// fields across a loop's calls rather than loading them from the tenant at every read
/// (docs/ARCHITECTURE.md, the twenty-fourth step).
#[derive(Debug, Default)]
pub(crate) struct Cold {
    pub(crate) roots: BTreeMap<String, Word>,
    pub(crate) handles: Handles,
    /// Counters bumped by writes (`lookups` and `patches` are kept in `reads`).
    pub(crate) stats: TenantStats,
    /// Counters bumped by reads, through `&self`. A read bumps one only where the tenant has
    /// a private object, a table entry or a forwarder, and so already has its cold state.
    pub(crate) reads: ReadCounters,
    /// The base objects read while [`Tenant::record_reads`] is on, and the mark policy to go
    /// back to when it is turned off.
    pub(crate) recording: Option<(RefCell<FxHashSet<u32>>, MarkPolicy)>,
    /// Writes to base objects are refused ([`Tenant::set_base_read_only`]).
    pub(crate) base_read_only: bool,
    /// The first base object a write was refused on.
    pub(crate) refused: Cell<Option<ObjectIndex>>,
    /// Host objects, by their proxies' keys ([`crate::hosts`]).
    pub(crate) hosts: BTreeMap<u32, crate::hosts::Host>,
    /// The forwarders commits left, to the objects they committed (an abort keeps them).
    pub(crate) committed: Vec<PrivateKey>,
    /// The auxiliary bits of stubs whose bodies had some (a copy's, its base object's),
    /// given back to the body a fault-in brings (a segment keeps no auxiliary bits), so
    /// that a commit afterwards writes them.
    pub(crate) stub_aux: FxHashMap<PrivateKey, u32>,
    /// What brings a swapped-out segment back ([`Tenant::set_fault_handler`]).
    pub(crate) fault: crate::stubs::FaultSlot,
    /// What reads a segment that is out without bringing it back
    /// ([`Tenant::set_segment_reader`]), and the views it made.
    pub(crate) reader: Option<crate::stubs::SegmentReader>,
    pub(crate) views: crate::stubs::Views,
}

impl Tenant {
    /// A new tenant of `base` with the default configuration. Time: O(1); allocates
    /// nothing.
    pub fn fork(base: &Arc<Base>) -> Tenant {
        Tenant::fork_with(base, TenantConfig::default())
    }

    /// A new tenant of `base`. Time: O(1); allocates nothing, but 512 bytes of filter with
    /// the private mark policy.
    pub fn fork_with(base: &Arc<Base>, config: TenantConfig) -> Tenant {
        // Relaxed: the counter only has to hand out distinct numbers.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = TenantId::new(NEXT.fetch_add(1, Ordering::Relaxed)).expect("counter starts at 1");
        let filter = match config.marks {
            MarkPolicy::Shared => None,
            MarkPolicy::Private => Some(MarkFilter::default()),
        };
        let lane = DivertMarks::draw_lane();
        Tenant {
            id,
            base: base.clone(),
            marks: base.marks().clone(),
            own_marks: if filter.is_some() {
                DivertMarks::DIVERTED | lane
            } else {
                0
            },
            lane,
            filter,
            reader: base.heap().reader(),
            table: IndirectionTable::new(),
            space: Space::default(),
            quota: config.quota.unwrap_or(NO_QUOTA),
            cold: None,
        }
    }

    /// The cold state, made on first use. Time: O(1).
    pub(crate) fn cold_mut(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// The write counters, to change.
    pub(crate) fn stats_mut(&mut self) -> &mut TenantStats {
        &mut self.cold_mut().stats
    }

    /// The named roots, if the tenant has any state beyond its view of the base.
    pub(crate) fn roots_map(&self) -> Option<&BTreeMap<String, Word>> {
        self.cold.as_ref().map(|c| &c.roots)
    }

    /// The pinned handles, if the tenant has any state beyond its view of the base.
    pub(crate) fn handles(&self) -> Option<&Handles> {
        self.cold.as_ref().map(|c| &c.handles)
    }

    /// Counts a read that consulted the table or followed a forwarder.
    #[inline]
    fn count_lookup(&self) {
        if let Some(c) = &self.cold {
            c.reads.lookups.bump();
        }
    }

    /// Records a read of base object `x`'s body (a slot, its class, size, hash or bytes, or
    /// the copy a first write makes) if the tenant records its reads: only a recording
    /// tenant's reads of base objects come this way, its filter sends them all here. A
    /// reference resolved to `x` ([`Tenant::locate_word`]: a collection's patch, `identical`,
    /// a forwarder settled) is no read of it.
    #[inline]
    pub(crate) fn note_read(&self, x: ObjectIndex) {
        if let Some(c) = &self.cold
            && let Some((set, _)) = &c.recording
        {
            set.borrow_mut().insert(x.as_u32());
        }
    }

    /// Gives the tenant its own marks (`Some`) or the shared ones (`None`), keeping the fast
    /// path's policy bit with them.
    fn set_filter(&mut self, filter: Option<MarkFilter>) {
        self.own_marks = if filter.is_some() {
            DivertMarks::DIVERTED | self.lane
        } else {
            0
        };
        self.filter = filter;
    }

    /// Starts (`true`) or stops recording which base objects this tenant reads, for
    /// read-write conflict checks ([`crate::commit::CommitMode::ReadWrite`]). Starting clears
    /// what was recorded. While it records, every read of a base object by this tenant leaves
    /// the fast path (other tenants are not affected). Time: O(1) to start, O(diverted
    /// objects) to stop.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if, stopping, the allocator refuses the room to mark the
    /// tenant's diverted objects again under its own policy (reserved before anything
    /// changes): the tenant goes on recording, as it was. Starting cannot fail.
    pub fn record_reads(&mut self, on: bool) -> Result<()> {
        if on {
            self.start_recording();
            return Ok(());
        }
        if self.cold.as_ref().is_none_or(|c| c.recording.is_none()) {
            return Ok(());
        }
        let mut fresh = IndirectionTable::new();
        let n = self.table.len();
        fresh.try_reserve(n).map_err(|_| Error::OutOfMemory {
            bytes: u64::try_from(n.saturating_mul(9)).unwrap_or(u64::MAX),
        })?;
        self.stop_recording_into(fresh);
        Ok(())
    }

    /// [`Tenant::record_reads`]`(true)`, which cannot fail.
    pub(crate) fn start_recording(&mut self) {
        let policy = self.marks_policy();
        self.cold_mut().recording = Some((RefCell::default(), policy));
        self.set_filter(Some(MarkFilter::full()));
    }

    /// Stops recording reads, the tenant's entries marked again under its own policy into
    /// `fresh`, an empty table: given one with room for them, this allocates nothing. Does
    /// nothing if the tenant is not recording.
    pub(crate) fn stop_recording_into(&mut self, fresh: IndirectionTable) {
        let Some((_, policy)) = self.cold.as_mut().and_then(|c| c.recording.take()) else {
            return;
        };
        self.set_filter(match policy {
            MarkPolicy::Shared => None,
            MarkPolicy::Private => Some(MarkFilter::default()),
        });
        self.remark_into(fresh);
    }

    /// While `on`, refuses every write that would change an object of the base this tenant
    /// has not copied (a first write, which copies it, or a become of it) with
    /// [`Error::BaseReadOnly`], changing nothing; the tenant may still allocate objects of its
    /// own and write them, and a copy it made before is its own too: writes and becomes of it
    /// are not refused. For runs that must not change what they read (queries, see
    /// [`crate::commit::Repository::query`], whose tenant is fresh). Time: O(1).
    pub fn set_base_read_only(&mut self, on: bool) {
        if on || self.cold.is_some() {
            self.cold_mut().base_read_only = on;
        }
    }

    /// The first base object a write was refused on since [`Tenant::set_base_read_only`]
    /// was turned on, if any.
    pub fn refused_write(&self) -> Option<ObjectIndex> {
        self.cold.as_ref()?.refused.get()
    }

    /// [`Error::BaseReadOnly`] if the tenant's base is read-only to it; records the refusal.
    pub(crate) fn may_divert(&self, x: ObjectIndex) -> Result<()> {
        match &self.cold {
            Some(c) if c.base_read_only => {
                if c.refused.get().is_none() {
                    c.refused.set(Some(x));
                }
                Err(Error::BaseReadOnly(x))
            }
            _ => Ok(()),
        }
    }

    /// Clears the reads recorded so far, if the tenant records them (after a commit: its reads
    /// are then of the version it stands on).
    pub(crate) fn restart_recording(&mut self) {
        if let Some((set, _)) = self.cold.as_mut().and_then(|c| c.recording.as_mut()) {
            set.get_mut().clear();
        }
    }

    /// The set of base objects read, borrowed, while [`Tenant::record_reads`] is on.
    pub(crate) fn recording(&self) -> Option<std::cell::Ref<'_, FxHashSet<u32>>> {
        let (set, _) = self.cold.as_ref()?.recording.as_ref()?;
        Some(set.borrow())
    }

    /// The base objects read since [`Tenant::record_reads`] was turned on, if it is on.
    pub fn reads_recorded(&self) -> Option<FxHashSet<u32>> {
        let (set, _) = self.cold.as_ref()?.recording.as_ref()?;
        Some(set.borrow().clone())
    }

    /// Marks every object of the table again, in the marks the tenant now uses (after its
    /// policy or its base's marks changed), into `fresh`, an empty table that becomes the
    /// tenant's: given one
    /// with room for every entry ([`IndirectionTable::try_reserve`]), marking them again
    /// allocates nothing, so a caller that must not fail part-way reserves it first.
    /// Time: O(diverted objects).
    pub(crate) fn remark_into(&mut self, fresh: IndirectionTable) {
        let old = std::mem::replace(&mut self.table, fresh);
        for (x, entry) in old.iter() {
            let target = match &mut self.filter {
                None => MarkTarget::Shared(&self.marks, self.lane),
                Some(f) => MarkTarget::Private(f),
            };
            if let Some(k) = self.space.key_of(entry) {
                // A fresh table takes each object once, and these come from a table.
                let _ = self.table.divert(target, x, k);
            }
        }
    }

    /// Counts a private slot patched by a read.
    #[inline]
    fn count_patch(&self) {
        if let Some(c) = &self.cold {
            c.reads.patches.bump();
        }
    }

    /// Private bytes held (the quota's measure).
    pub(crate) fn private_bytes(&self) -> u64 {
        self.cold.as_ref().map_or(0, |c| c.stats.private_bytes)
    }

    /// This tenant's id.
    pub fn id(&self) -> TenantId {
        self.id
    }

    /// This tenant's lane in the base's shared marks: one bit of
    /// [`DivertMarks::LANES`](cowheap_forwarders::DivertMarks::LANES), drawn at fork. Its
    /// diverts set it on the objects they divert; a read of an object whose mark is set but
    /// not this lane is made in place. Hidden from the docs: for tests and benches that need
    /// tenants of one lane, or of two.
    #[doc(hidden)]
    pub fn lane(&self) -> u64 {
        self.lane
    }

    /// The base this tenant was forked from.
    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }

    /// The counters. Time: O(1).
    pub fn stats(&self) -> TenantStats {
        match &self.cold {
            None => TenantStats::default(),
            Some(c) => TenantStats {
                lookups: c.reads.lookups.get(),
                patches: c.reads.patches.get(),
                ..c.stats
            },
        }
    }

    /// The private bytes an object of `size` is charged against the quota
    /// ([`Tenant::quota`]): 32, 8 a pointer slot, and its raw bytes with the word that
    /// places them when it has any. For a host that checks ahead what a series of
    /// operations will be charged.
    ///
    /// ```
    /// use cowheap_heap::ObjectSize;
    /// use cowheap_tenants::Tenant;
    /// assert_eq!(Tenant::charge_of(ObjectSize { slots: 2, bytes: 0 }), 48);
    /// assert_eq!(Tenant::charge_of(ObjectSize { slots: 0, bytes: 5 }), 45);
    /// ```
    pub fn charge_of(size: ObjectSize) -> u64 {
        cost(size)
    }

    /// The private bytes a forwarder or a root stub is charged against the quota: its key's
    /// record and its one word.
    pub const FORWARDER_CHARGE: u64 = crate::space::FORWARDER_COST;

    /// The quota: most private bytes this tenant may hold. Private bytes count, per object,
    /// its key's record and its header (32 bytes), 8 bytes per pointer slot, and its raw
    /// bytes with the 8-byte word that places them (when it has any); per forwarder or root
    /// stub, its key's record and its one word (16 bytes). A copy, an allocation or a become
    /// that would pass the quota fails with [`Error::QuotaExceeded`] and changes nothing. A quota of `u64::MAX` bytes limits
    /// nothing and reads back as `None`.
    pub fn quota(&self) -> Option<u64> {
        (self.quota != NO_QUOTA).then_some(self.quota)
    }

    /// Fails with [`Error::QuotaExceeded`] unless objects of `sizes`, allocated one after
    /// another, would all fit the quota; changes nothing. For a caller that allocates
    /// several objects and must make all or none (an import). Time: O(sizes).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let ten = vec![ObjectSize { slots: 4, bytes: 0 }; 10];
    /// assert!(t.check_room(&ten).is_ok());
    /// t.set_quota(Some(100));
    /// assert!(t.check_room(&ten).is_err());
    /// ```
    pub fn check_room(&self, sizes: &[ObjectSize]) -> Result<()> {
        let needed = sizes.iter().fold(0u64, |n, &s| n.saturating_add(cost(s)));
        self.check_quota(needed)
    }

    /// Sets or clears the quota. A quota below what the tenant holds stops new private bytes,
    /// it frees none.
    pub fn set_quota(&mut self, quota: Option<u64>) {
        self.quota = quota.unwrap_or(NO_QUOTA);
    }

    /// Every base object this tenant has diverted, with what stands for it here: its copy (or,
    /// after a become, the object it now leads to). In no particular order. Time: O(diverted).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// t.set_slot(g, 0, Value::int(3)).unwrap();
    /// let copies: Vec<(Value, Value)> = t.copies().collect();
    /// assert_eq!(copies.len(), 1);
    /// assert_eq!(copies[0].0.word(), g.word());
    /// assert!(t.identical(copies[0].1, g).unwrap());
    /// assert!(copies[0].1.word().is_private());
    /// ```
    pub fn copies(&self) -> impl Iterator<Item = (Value, Value)> + '_ {
        self.table.iter().filter_map(|(x, _)| {
            let now = self.locate_word(Word::base(x)).ok()?;
            Some((Value::base(x), Value::owned(now.word(), self.id)))
        })
    }

    /// [`Tenant::copies`] less the base objects a one-way become forwarded: each base object
    /// with the object that is its own here (its copy, a body a two-way become swapped in,
    /// or a stub of one), never an object it was forwarded to (that one is its own base
    /// object's, or one of [`Tenant::private_objects`]). So each object is named once, under
    /// the base object whose it is. In no particular order. Time: O(diverted).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let a = base.heap().slot(g, 1).unwrap();
    /// let mut t = Tenant::fork(&base);
    /// t.set_slot(g, 0, Value::int(3)).unwrap();
    /// t.become_forward(a, g).unwrap();
    /// assert_eq!(t.copies().count(), 2);
    /// let own: Vec<(Value, Value)> = t.own_copies().collect();
    /// assert_eq!(own.len(), 1);
    /// assert_eq!(own[0].0.word(), g.word());
    /// ```
    pub fn own_copies(&self) -> impl Iterator<Item = (Value, Value)> + '_ {
        self.table.iter().filter_map(|(x, _)| {
            let k = self.table_key(x)?;
            if matches!(self.space.get(k), Some(State::Forwarded(_)) | None) {
                return None;
            }
            let now = self.locate_word(Word::base(x)).ok()?;
            Some((Value::base(x), Value::owned(now.word(), self.id)))
        })
    }

    /// The tenant's own objects that are not copies of base objects (what it allocated, and
    /// after a two-way become the base bodies it swapped in), live and not forwarders, in key
    /// order. With the base objects (each read through the tenant, so its copy where it has
    /// one) they are every object the tenant can reach. Time: O(private keys ever used).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(g).unwrap();
    /// let a = t.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 }).unwrap();
    /// t.set_slot(g, 0, a).unwrap(); // a copy of g: not listed
    /// let own: Vec<_> = t.private_objects().collect();
    /// assert_eq!(own.len(), 1);
    /// assert!(t.identical(own[0], a).unwrap());
    /// ```
    pub fn private_objects(&self) -> impl Iterator<Item = Value> + '_ {
        let copies: std::collections::HashSet<u32> =
            self.table.iter().map(|(_, entry)| entry).collect();
        self.space
            .iter()
            .filter(move |(k, e)| e.body().is_some() && !copies.contains(&k.key()))
            .map(|(k, _)| Value::owned(Word::private(k), self.id))
    }

    /// Number of base objects this tenant has diverted.
    pub fn diverted(&self) -> usize {
        self.table.len()
    }

    /// Bytes of memory this tenant holds of its own, excluding the shared base: the tenant
    /// record, its private space and table, roots, handles, segment views, host objects'
    /// records, the forwarders commits left, the auxiliary bits its stubs keep for their
    /// bodies, the base objects it has recorded reading ([`Tenant::record_reads`]) and any
    /// private mark filter. What a host object itself holds is its embedder's, and not
    /// counted. Time: O(roots + host objects).
    pub fn memory_bytes(&self) -> usize {
        let own_marks = self.filter.as_ref().map_or(0, |f| f.memory_bytes());
        std::mem::size_of::<Tenant>()
            + self.space.memory_bytes()
            + self.table.memory_bytes()
            + self.cold.as_ref().map_or(0, |c| {
                std::mem::size_of::<Cold>()
                    + c.handles.memory_bytes()
                    + c.roots.keys().map(|k| k.len() + 48).sum::<usize>()
                    + c.views.memory_bytes()
                    + c.committed.capacity() * std::mem::size_of::<PrivateKey>()
                    + c.hosts.values().map(crate::hosts::Host::memory_bytes).sum::<usize>()
                    // A hash map's slot and its control byte, per place.
                    + c.stub_aux.capacity()
                        * (std::mem::size_of::<(PrivateKey, u32)>() + 1)
                    // A hash set's slot and its control byte, per place.
                    + c.recording.as_ref().map_or(0, |(set, _)| {
                        set.borrow().capacity() * (std::mem::size_of::<u32>() + 1)
                    })
            })
            + own_marks
    }

    // ----- resolving references ---------------------------------------------------------

    /// The word of `v`, if `v` may be used in this tenant.
    #[inline]
    pub(crate) fn own(&self, v: Value) -> Result<Word> {
        let w = v.word();
        if w.is_private() && !v.is_owned_by(self.id) {
            return Err(Error::ForeignReference {
                value: w,
                owner: v.owner(),
                tenant: self.id,
            });
        }
        // A word that is no immediate and no reference (a base tag with bits above the
        // index) would make two words for one object: refused at the edge.
        if !w.is_valid() {
            return Err(cowheap_heap::Error::InvalidWord(w).into());
        }
        Ok(w)
    }

    /// Where `v` leads, after the indirection table and every forwarder.
    #[inline]
    pub(crate) fn locate(&self, v: Value) -> Result<Loc> {
        let w = self.own(v)?;
        self.locate_word(w)
    }

    /// Where word `w` (already known to belong to this tenant) leads.
    pub(crate) fn locate_word(&self, mut w: Word) -> Result<Loc> {
        // Forwarder chains never cycle (cowheap_forwarders::state); the bound turns a broken
        // invariant into an error instead of a hang. Each entry on a chain costs at most two
        // steps (the table, then the entry), and the chain ends in one more.
        for _ in 0..2 * self.space.len() + 2 {
            match w.decode() {
                Decoded::Base(x) => {
                    // The table is consulted only where its filter says maybe (never when
                    // empty: a tenant that diverted nothing).
                    if self.diverted_here(x.as_u32()) && self.table.may_contain(x) {
                        self.count_lookup();
                        if let Some(k) = self.table_key(x) {
                            w = Word::private(k);
                            continue;
                        }
                    }
                    // Not a read of `x`'s body (a reference resolved, an identity
                    // compared, a forwarder patched): a reader of the body notes it.
                    let len = self.base.len();
                    if x.get() >= len {
                        return Err(HeapError::NoSuchObject {
                            index: x.get() as u64,
                            len: len as u64,
                        }
                        .into());
                    }
                    return Ok(Loc::Base(x));
                }
                Decoded::Private(k) => match self.space.get(k) {
                    // A root stub is where its object is (its identity); reading it
                    // answers `Error::Swapped`.
                    Some(State::Object(_) | State::Stub(_)) => return Ok(Loc::Private(k)),
                    Some(State::Forwarded(t)) => {
                        self.count_lookup();
                        w = t;
                    }
                    None => return Err(Error::Collected(w)),
                },
                _ => return Err(HeapError::NotAnObject(w).into()),
            }
        }
        Err(HeapError::Corrupt("a cycle of forwarders").into())
    }

    /// If `w` is a forwarder in this tenant's view (a diverted base object, or a private
    /// forwarder), the final word it leads to.
    pub(crate) fn forwarded(&self, w: Word) -> Result<Option<Word>> {
        let is_forwarder = match w.decode() {
            Decoded::Base(x) => self.diverted_here(x.as_u32()) && self.table.get(x).is_some(),
            Decoded::Private(k) => {
                matches!(self.space.get(k), Some(State::Forwarded(_)))
            }
            _ => false,
        };
        if is_forwarder {
            Ok(Some(self.locate_word(w)?.word()))
        } else {
            Ok(None)
        }
    }

    /// True if base object `x` may be diverted in this tenant's view: its lane in the shared
    /// mark (set only with the diverted bit), or under the private policy its own filter.
    #[inline]
    pub(crate) fn diverted_here(&self, x: u32) -> bool {
        match &self.filter {
            // An object past the heap (one a version added) has no mark: always look.
            None => self.marks.entry(x).is_none_or(|e| e & self.lane != 0),
            Some(f) => f.is_marked(x),
        }
    }

    /// [`Tenant::diverted_here`] for a caller that has read `x`'s mark word, `entry`, already.
    #[inline(always)]
    fn diverted_by(&self, entry: u64, x: u32) -> bool {
        match &self.filter {
            None => entry & self.lane != 0,
            Some(f) => f.is_marked(x),
        }
    }

    /// The header offset of `obj` if it is a base object this tenant reads in place: a base
    /// reference in range whose mark (shared, or under the private policy this tenant's own)
    /// says no diversion, or, under the shared policy, one another tenant diverted and this
    /// tenant's table filter says it did not. The inlined first step of every read's fast
    /// path: one load of the shared mark word, which holds the offset, and under the private
    /// policy one more. For an object a version changed the answer may be an offset past any
    /// heap, which every `HeapReader` read refuses: a caller reads through one, never uses
    /// the offset otherwise.
    #[inline(always)]
    pub(crate) fn in_place(&self, obj: Value) -> Option<u64> {
        // One compare tests for a base reference and bounds its index.
        let wide = obj.word().base_index_wide();
        // `own_marks` is 0 or the diverted bit and this tenant's lane, so the word or-ed with
        // it is the mark word itself wherever those bits are clear, and the same word once
        // they are cleared: one word carried on, so the `or` takes its operand from memory.
        let entry = self.marks.entry_wide(wide)? | self.own_marks;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "an index with a mark is below the base's object count, under 2^32"
        )]
        let x = ObjectIndex::from_u32(wide as u32);
        // One test, of the sign: the diverted bit, which a version's change of the object
        // sets too, or this tenant's own marks. With it clear, the word is the offset itself.
        // With it set, the object is still read in place if this tenant's lane is clear (no
        // tenant of its lane diverted it; under the private policy `own_marks` sets it), or
        // else if its filter (its table's under the shared policy, its own under the private
        // one) is clear. The answer is then the word without its diverted bit and lanes: the offset, or, for an object a
        // version changed, the offset with the committed bit above it, 2^62 or more, past
        // every heap. Every in-place read refuses that offset (each begins with a bounded
        // load of a header word), and so sends the read out of line, to the version, with no
        // test of the bit here.
        if entry & DivertMarks::DIVERTED == 0 {
            return Some(entry);
        }
        if entry & self.lane == 0 {
            return Some(entry & DivertMarks::IN_PLACE);
        }
        let clear = match &self.filter {
            None => !self.table.may_contain_wide(wide),
            Some(f) => !f.is_marked(x.as_u32()),
        };
        clear.then_some(entry & DivertMarks::IN_PLACE)
    }

    /// Where `obj` leads, if it is an object of the base read in place (one the inline path
    /// did not take: another tenant diverted it, or the read failed) or a live private object
    /// reached with at most one table lookup; `None` for everything else (forwarders,
    /// errors), which [`Tenant::locate`] works out. Counts a lookup as `locate` would. An
    /// object a version of the base changed is left to the version to read.
    #[inline(always)]
    fn quick(&self, obj: Value) -> Option<Quick<'_>> {
        let w = obj.word();
        if w.is_private() {
            return self.own_body(obj).map(Quick::Private);
        }
        let x = w.as_base()?;
        // A base reference here, in a tenant that copied anything, is most often one this
        // tenant diverted: the table first, which answers for itself (a copy here wins over
        // the base and any version of it) without the shared mark's load. Under the shared
        // policy the inline path asked the table's filter already (unless the mark was clear
        // and the read failed in place, an index out of range), so this probes the buckets
        // alone. Every caller of the out-of-line halves keeps to that: the tenant's inline
        // paths, or a `TenantReader`'s, which make the same test of the filter.
        if !self.table.is_empty()
            && let Some(i) = self.table.probe(x)
        {
            let body = self.space.object_at_index(i)?;
            self.count_lookup();
            return Some(Quick::Private(body));
        }
        // An object with no mark (one a version added) is for `locate`, which counts its
        // own lookup; a miss of a marked one is counted where the inline path would have
        // asked the table: its mark has this tenant's lane (or, under the private policy,
        // the tenant's filter says it may have diverted it).
        let entry = self.marks.entry(x.as_u32())?;
        if !self.table.is_empty() && self.diverted_by(entry, x.as_u32()) {
            self.count_lookup();
        }
        // Only a tenant with a filter can be recording its reads.
        if self.filter.is_some() {
            self.note_read(x);
        }
        if entry & DivertMarks::COMMITTED != 0 {
            return Some(Quick::Version(x));
        }
        Some(Quick::Base(x, entry & DivertMarks::OFFSET))
    }

    /// The body of `obj` if it is a live private object of this tenant named by its own key.
    #[inline(always)]
    pub(crate) fn own_body(&self, obj: Value) -> Option<Obj<'_>> {
        self.space.object(obj.key_for(self.id)?)
    }

    /// The word read from a private slot as this tenant's value, if it stands as it is: an
    /// immediate, an object of the base this tenant did not divert, or a live private object.
    /// Anything else (a forwarder, a collected object) is `None`, for [`Tenant::forwarded`].
    /// A private word is settled by the forwarder count alone while the space holds no
    /// forwarder, and its owner is known without testing its tag again.
    #[inline(always)]
    pub(crate) fn settle(&self, w: Word) -> Option<Value> {
        if let Some(v) = self.settle_quick(w) {
            return Some(v);
        }
        self.settle_past_quick(w)
    }

    /// What [`Tenant::settle_quick`] leaves of [`Tenant::settle`], for a word it answered
    /// `None`: a private word while the space holds a forwarder, settled by its key's record;
    /// a base word whose filter said "maybe", settled by a probe of the table. (A reader's
    /// cold call, which has made the quick test inline, goes straight here.)
    #[inline(always)]
    pub(crate) fn settle_past_quick(&self, w: Word) -> Option<Value> {
        if let Some(k) = w.as_private() {
            return self.space.is_object(k).then(|| Value::owned(w, self.id));
        }
        let x = w.as_base()?;
        (self.marks.entry(x.as_u32()).is_some() && self.table.probe(x).is_none())
            .then_some(Value::shared(w))
    }

    /// [`Tenant::settle`] without a probe of the table: a base word is settled here only if
    /// its mark (or, under the private policy, this tenant's own filter) says no diversion,
    /// or the table's filter says this tenant did not divert it; a private word only while
    /// the space holds no forwarder. `None` (for the caller's slower path) may also mean
    /// the word stands as it is.
    #[inline(always)]
    pub(crate) fn settle_quick(&self, w: Word) -> Option<Value> {
        if w.is_immediate() {
            return Some(Value::shared(w));
        }
        if w.is_private() {
            return (!self.space.has_forwarders()).then_some(Value::owned(w, self.id));
        }
        // What is left is a base word or a reserved one: the one compare of `in_place`
        // bounds a base word's index, and refuses every other word.
        let wide = w.base_index_wide();
        let entry = self.marks.entry_wide(wide)?;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "an index with a mark is below the base's object count, under 2^32"
        )]
        let diverted = self.diverted_by(entry, wide as u32);
        (!diverted || !self.table.may_contain_wide(wide)).then_some(Value::shared(w))
    }

    /// The body of a located private object.
    pub(crate) fn body(&self, k: PrivateKey) -> Result<Obj<'_>> {
        self.space.object(k).ok_or_else(|| self.no_body(k))
    }

    /// The body a read by `&self` finds for a located private object: its own, or a
    /// stub's from its segment's view ([`Tenant::set_segment_reader`]).
    #[inline(always)]
    pub(crate) fn read_body(&self, k: PrivateKey) -> Result<Obj<'_>> {
        match self.space.object(k) {
            Some(o) => Ok(o),
            None => self.stub_body(k),
        }
    }

    /// Why live-looking key `k` has no body: a root stub of a swapped-out segment, or a
    /// collected object.
    #[cold]
    pub(crate) fn no_body(&self, k: PrivateKey) -> Error {
        match self.space.get(k) {
            Some(State::Stub(segment)) => Error::Swapped {
                segment,
                object: Word::private(k),
            },
            _ => Error::Collected(Word::private(k)),
        }
    }

    /// The word to store for `v`: checked to belong to this tenant and to lead somewhere, and
    /// stored as where it leads now.
    #[inline(always)]
    pub(crate) fn store_word(&self, v: Value) -> Result<Word> {
        let w = v.word();
        // Immediates (small integers, characters, small floats) are stored as they are, and so
        // is a reference that leads to itself: a live object of this tenant while it has no
        // forwarder, or a base object it has not diverted.
        if w.is_immediate() || self.leads_to_itself(v) {
            return Ok(w);
        }
        self.store_word_slow(v)
    }

    #[inline(never)]
    fn store_word_slow(&self, v: Value) -> Result<Word> {
        let w = self.own(v)?;
        if w.is_ref() {
            Ok(self.locate_word(w)?.word())
        } else {
            Ok(w)
        }
    }

    /// True if `v` is a reference [`Tenant::locate`] would answer with itself, found without
    /// following anything: a live private object of this tenant while no entry is a
    /// forwarder, or an object of the heap this tenant has not diverted.
    #[inline(always)]
    fn leads_to_itself(&self, v: Value) -> bool {
        let w = v.word();
        if let Some(k) = w.as_private() {
            return v.is_owned_by(self.id) && !self.space.has_forwarders() && self.space.is_live(k);
        }
        self.base_leads_to_itself(w)
    }

    /// [`Tenant::leads_to_itself`] of a word that is no private reference: true if it is a
    /// reference to an object of the heap this tenant has not diverted.
    #[inline(always)]
    pub(crate) fn base_leads_to_itself(&self, w: Word) -> bool {
        match w.as_base() {
            Some(x) => {
                self.marks.entry(x.as_u32()).is_some()
                    && (!self.diverted_here(x.as_u32()) || !self.table.may_contain(x))
            }
            None => false,
        }
    }

    // ----- reads ------------------------------------------------------------------------

    /// This tenant's reads borrowed for a loop that makes many: see [`TenantReader`]. Time: O(1).
    ///
    /// Out of line on purpose: a reader's fields are then values the caller's loop holds,
    /// which the compiler keeps apart from the tenant's own (inlined, it merged them with the
    /// tenant's fields that the fallback reads use, and the loop ran three instructions
    /// more a read and 1.46x a flat read's time memory-bound, against 1.28x).
    #[inline(never)]
    pub fn reader(&self) -> TenantReader<'_> {
        TenantReader::new(self, self.own_marks != 0)
    }

    /// This tenant's later writes borrowed for a loop that makes many: see
    /// [`TenantWriter`]. Time: O(1).
    ///
    /// Out of line, as [`Tenant::reader`] is.
    #[inline(never)]
    pub fn writer(&self) -> TenantWriter<'_> {
        TenantWriter::new(self)
    }

    /// Pointer slot `i` of `obj`. Time: O(1).
    ///
    /// A live private object of this tenant is read through its key's record; a base object
    /// no tenant has diverted is read in place after one test of its mark. A slot of a private object that holds a forwarder (a diverted base object, a
    /// becomed object) is rewritten to the target the first time it is read, so the lookup
    /// is paid once per slot.
    #[inline(always)]
    pub fn slot(&self, obj: Value, i: usize) -> Result<Value> {
        // Two fast paths. First a slot of a live private object of this tenant that needs
        // no patching (an interpreter's contexts and new objects): its owner compare is
        // all a base read pays for it. Then an undiverted base object, read in place.
        // Anything else (a diverted object, a forwarder, an index out of range) takes the
        // out-of-line path, which also works out the precise error.
        if let Some(k) = obj.key_for(self.id)
            && let Some(cell) = self.space.slot_of(k, i)
            && let Some(v) = self.settle(cell.get())
        {
            return Ok(v);
        }
        if let Some(offset) = self.in_place(obj)
            && let Some(w) = self.reader.slot_at(offset, i)
        {
            return Ok(Value::shared(w));
        }
        self.slot_slow(obj, i)
    }

    /// The out-of-line read's first step, kept lean so that it saves few registers: a base
    /// reference to an object this tenant copied, found by one probe of its table, whose
    /// slot needs no patching. Everything else goes on to [`Tenant::slot_slower`]. Answers
    /// for any `obj`, as [`Tenant::size_slow`] does.
    #[inline(never)]
    pub(crate) fn slot_slow(&self, obj: Value, i: usize) -> Result<Value> {
        let Some(x) = obj.word().as_base() else {
            return self.slot_slower(obj, i);
        };
        // A base reference has no owner: the value is its word alone, one register less
        // to keep across the probe.
        let obj = Value::shared(obj.word());
        if let Some(index) = self.table.probe(x)
            && let Some(cell) = self.space.slot_at_index(index, i)
            && let Some(v) = self.settle_quick(cell.get())
        {
            self.count_lookup();
            return Ok(v);
        }
        self.slot_slower(obj, i)
    }

    #[inline(never)]
    fn slot_slower(&self, obj: Value, i: usize) -> Result<Value> {
        match self.quick(obj) {
            Some(Quick::Base(x, offset)) => match self.reader.slot_at(offset, i) {
                Some(w) => Ok(Value::shared(w)),
                None => Ok(Value::shared(self.base.slot_word(x, i)?)),
            },
            Some(Quick::Private(body)) => self.private_slot(body, i),
            Some(Quick::Version(x)) => Ok(Value::shared(self.base.slot_word(x, i)?)),
            None => match self.locate(obj)? {
                Loc::Base(x) => {
                    self.note_read(x);
                    Ok(Value::shared(self.base.slot_word(x, i)?))
                }
                Loc::Private(k) => self.private_slot(self.read_body(k)?, i),
            },
        }
    }

    /// Slot `i` of a private body, patched if it holds a forwarder (lazy become).
    #[inline(always)]
    fn private_slot(&self, body: Obj<'_>, i: usize) -> Result<Value> {
        let Some(cell) = body.slot(i) else {
            return Err(body.format().slot_error(i, body.size().slots).into());
        };
        let w = cell.get();
        if let Some(v) = self.settle(w) {
            return Ok(v);
        }
        match self.forwarded(w)? {
            None => Ok(Value::owned(w, self.id)),
            Some(target) => {
                cell.set(target);
                self.count_patch();
                Ok(Value::owned(target, self.id))
            }
        }
    }

    /// The raw bytes of `obj`. Time: O(1).
    ///
    /// Like every read, inlined for an undiverted base object (the mark test, then its
    /// header read in place) and for a live private object of this tenant named by its own
    /// key; anything else, and every error, is out of line.
    #[inline(always)]
    pub fn bytes(&self, obj: Value) -> Result<&[u8]> {
        if let Some(offset) = self.in_place(obj)
            && let Some(b) = self.reader.bytes_at(offset)
        {
            return Ok(b);
        }
        if let Some(body) = self.own_body(obj) {
            return Ok(body.bytes());
        }
        self.bytes_slow(obj)
    }

    /// The out-of-line half of [`Tenant::bytes`]. It answers for any `obj`, so a
    /// caller whose own inline paths did not answer ([`crate::TenantReader`]'s) calls it
    /// directly, with no second pass through the inline ones.
    #[inline(never)]
    pub(crate) fn bytes_slow(&self, obj: Value) -> Result<&[u8]> {
        self.read_slow(obj, HeapReader::bytes_at, Base::bytes, Obj::bytes)
    }

    /// The size of `obj`. Time: O(1); inlined as [`Tenant::bytes`] is.
    #[inline(always)]
    pub fn size(&self, obj: Value) -> Result<ObjectSize> {
        if let Some(offset) = self.in_place(obj)
            && let Some(size) = self.reader.size_at(offset)
        {
            return Ok(size);
        }
        // The second fast path, as `slot` has: a live private object of this tenant.
        if let Some(body) = self.own_body(obj) {
            return Ok(body.size());
        }
        self.size_slow(obj)
    }

    /// The out-of-line half of [`Tenant::size`]. It answers for any `obj`, so a
    /// caller whose own inline paths did not answer ([`crate::TenantReader`]'s) calls it
    /// directly, with no second pass through the inline ones.
    #[inline(never)]
    pub(crate) fn size_slow(&self, obj: Value) -> Result<ObjectSize> {
        self.read_slow(obj, HeapReader::size_at, Base::size, Obj::size)
    }

    /// The format of `obj`. Time: O(1); inlined as [`Tenant::bytes`] is.
    #[inline(always)]
    pub fn format(&self, obj: Value) -> Result<Format> {
        if let Some(offset) = self.in_place(obj)
            && let Some(format) = self.reader.format_at(offset)
        {
            return Ok(format);
        }
        if let Some(body) = self.own_body(obj) {
            return Ok(body.format());
        }
        self.format_slow(obj)
    }

    /// The out-of-line half of [`Tenant::format`]. It answers for any `obj`, so a
    /// caller whose own inline paths did not answer ([`crate::TenantReader`]'s) calls it
    /// directly, with no second pass through the inline ones.
    #[inline(never)]
    pub(crate) fn format_slow(&self, obj: Value) -> Result<Format> {
        self.read_slow(obj, HeapReader::format_at, Base::format, Obj::format)
    }

    /// The class, format and size of `obj` in one look-up: what [`Tenant::class_of`],
    /// [`Tenant::format`] and [`Tenant::size`] answer, found once (an interpreter's `at:` and
    /// `at:put:` ask all three). Time: O(1); inlined as [`Tenant::bytes`] is.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let nil = base.heap().nil();
    /// let a = t.alloc(nil, Format::Pointers, ObjectSize { slots: 3, bytes: 0 }).unwrap();
    /// let h = t.header(a).unwrap();
    /// assert_eq!((h.format, h.size.slots), (Format::Pointers, 3));
    /// assert!(t.identical(h.class, nil).unwrap());
    /// ```
    ///
    /// # Errors
    /// As [`Tenant::format`].
    #[inline(always)]
    pub fn header(&self, obj: Value) -> Result<Header> {
        if let Some(offset) = self.in_place(obj)
            && let Some(class) = self.reader.class_at(offset)
            && let Some(size) = self.reader.size_at(offset)
            && let Some(format) = self.reader.format_at(offset)
        {
            // A base's class word belongs to no tenant (a trusted base's private word is
            // refused by every tenant, never taken as this one's own reference).
            let class = Value::shared(class);
            return Ok(Header {
                class,
                format,
                size,
            });
        }
        if let Some(body) = self.own_body(obj) {
            return Ok(Header {
                class: Value::owned(body.class(), self.id),
                format: body.format(),
                size: body.size(),
            });
        }
        self.header_slow(obj)
    }

    /// The header of anything the inline paths did not read, found once (one table lookup
    /// for the tenant's copy of a base object, where asking `format`, `class_of` and `size`
    /// in turn would resolve it three times). Answers for any `obj`, as
    /// [`Tenant::size_slow`] does.
    #[inline(never)]
    pub(crate) fn header_slow(&self, obj: Value) -> Result<Header> {
        // A class word read from the base is no tenant's; a private object's is this one's.
        let (class, format, size) = self.read_slow(
            obj,
            |r, offset| {
                Some((
                    Value::shared(r.class_at(offset)?),
                    r.format_at(offset)?,
                    r.size_at(offset)?,
                ))
            },
            |b, x| {
                let format = b.format(x)?;
                Ok((Value::shared(b.class_word(x)?), format, b.size(x)?))
            },
            |o| (Value::owned(o.class(), self.id), o.format(), o.size()),
        )?;
        Ok(Header {
            class,
            format,
            size,
        })
    }

    /// The class of `v`: of an object, or the base's class of small integers or characters.
    /// Time: O(1); inlined as [`Tenant::bytes`] is for an undiverted base object and a live
    /// private object of this tenant (an interpreter asks on every send), out of line for
    /// immediates and everything else.
    #[inline(always)]
    pub fn class_of(&self, v: Value) -> Result<Value> {
        if let Some(offset) = self.in_place(v)
            && let Some(class) = self.reader.class_at(offset)
        {
            return Ok(Value::shared(class));
        }
        if let Some(body) = self.own_body(v) {
            return Ok(Value::owned(body.class(), self.id));
        }
        self.class_of_slow(v)
    }

    /// The out-of-line half of [`Tenant::class_of`]. It answers for any `obj`, so a
    /// caller whose own inline paths did not answer ([`crate::TenantReader`]'s) calls it
    /// directly, with no second pass through the inline ones.
    #[inline(never)]
    pub(crate) fn class_of_slow(&self, v: Value) -> Result<Value> {
        let w = self.own(v)?;
        let heap = self.base.heap();
        let immediate = match w.decode() {
            Decoded::Int(_) => Some(heap.int_class()),
            Decoded::Char(_) => Some(heap.char_class()),
            Decoded::Reserved(_) if w.is_small_float() => Some(heap.float_class()),
            _ => None,
        };
        if let Some(class) = immediate {
            return class.ok_or(Error::NoImmediateClass(w));
        }
        // A class word read from the base is no tenant's; a private object's is this one's.
        self.read_slow(
            v,
            |r, offset| r.class_at(offset).map(Value::shared),
            |b, x| b.class_word(x).map(Value::shared),
            |o| Value::owned(o.class(), self.id),
        )
    }

    /// The out-of-line read every accessor but `slot` shares: [`Tenant::quick`], else
    /// [`Tenant::locate`]; a base object is read by `at` at its header offset, with `in_base`
    /// for the precise answer or error where that finds nothing; a private one by `in_body`.
    fn read_slow<'a, T>(
        &'a self,
        obj: Value,
        at: impl FnOnce(&'a HeapReader, u64) -> Option<T>,
        in_base: impl FnOnce(&'a Base, ObjectIndex) -> std::result::Result<T, HeapError>,
        in_body: impl FnOnce(Obj<'a>) -> T,
    ) -> Result<T> {
        let body = match self.quick(obj) {
            Some(Quick::Base(x, offset)) => {
                return match at(&self.reader, offset) {
                    Some(v) => Ok(v),
                    None => Ok(in_base(&self.base, x)?),
                };
            }
            Some(Quick::Private(body)) => body,
            Some(Quick::Version(x)) => return Ok(in_base(&self.base, x)?),
            None => match self.locate(obj)? {
                Loc::Base(x) => {
                    self.note_read(x);
                    return Ok(in_base(&self.base, x)?);
                }
                Loc::Private(k) => self.read_body(k)?,
            },
        };
        Ok(in_body(body))
    }

    /// The identity hash of `obj`: a copy keeps the hash of the base object it copies.
    /// Time: O(1); inlined as [`Tenant::bytes`] is.
    #[inline(always)]
    pub fn identity_hash(&self, obj: Value) -> Result<u32> {
        if let Some(offset) = self.in_place(obj)
            && let Some(hash) = self.reader.hash_at(offset)
        {
            return Ok(hash);
        }
        // The second fast path, as `size` has: a live private object of this tenant.
        if let Some(body) = self.own_body(obj) {
            return Ok(body.hash());
        }
        self.identity_hash_slow(obj)
    }

    /// The out-of-line half of [`Tenant::identity_hash`]. It answers for any `obj`, so a
    /// caller whose own inline paths did not answer ([`crate::TenantReader`]'s) calls it
    /// directly, with no second pass through the inline ones.
    #[inline(never)]
    pub(crate) fn identity_hash_slow(&self, obj: Value) -> Result<u32> {
        self.read_slow(obj, HeapReader::hash_at, Base::hash, Obj::hash)
    }

    /// True if `a` and `b` are the same object (or equal immediates) in this tenant's view: a
    /// base reference and this tenant's copy of it are identical. Time: O(1).
    pub fn identical(&self, a: Value, b: Value) -> Result<bool> {
        let (wa, wb) = (self.own(a)?, self.own(b)?);
        match (wa.is_ref(), wb.is_ref()) {
            (true, true) => Ok(self.locate_word(wa)? == self.locate_word(wb)?),
            (false, false) => Ok(wa == wb),
            _ => Ok(false),
        }
    }

    // ----- writes -----------------------------------------------------------------------

    /// Fails with [`Error::QuotaExceeded`] if `needed` more private bytes pass the quota.
    pub(crate) fn check_quota(&self, needed: u64) -> Result<()> {
        match self.quota() {
            // Nothing needed is never refused, even by a quota lowered below what the tenant
            // holds (which stops new bytes and frees none).
            Some(quota) if needed > 0 && self.private_bytes().saturating_add(needed) > quota => {
                Err(Error::QuotaExceeded {
                    quota,
                    used: self.private_bytes(),
                    needed,
                })
            }
            _ => Ok(()),
        }
    }

    /// A private copy of base object `x`'s body, checked (its layout, its words) and
    /// allocated, but not yet in the tenant: nothing has changed. Time: O(size of `x`).
    pub(crate) fn copy_of(&self, x: ObjectIndex) -> Result<Body> {
        let view = self.base.object(x)?;
        view.format.check(view.size())?;
        self.check_in_range(&view)?;
        Body::try_copy_of(&view)
    }

    /// [`cowheap_heap::Error::InvalidWord`] if base object `view`, about to be copied, holds
    /// a base reference past the end of the base, in a slot or as its class: a heap opened
    /// without verification ([`cowheap_heap::BaseHeap::is_trusted`]) may hold one, and
    /// copied it would make a tenant whose snapshot no restore accepts. Time: O(slots) on
    /// such a heap, O(1) on any other (whose references all name objects).
    fn check_in_range(&self, view: &cowheap_heap::ObjectView<'_>) -> Result<()> {
        if !self.base.heap().is_trusted() {
            return Ok(());
        }
        let len = self.base.len();
        match std::iter::once(&view.class)
            .chain(view.slots)
            .find(|w| w.as_base().is_some_and(|x| x.get() >= len))
        {
            Some(&w) => Err(cowheap_heap::Error::InvalidWord(w).into()),
            None => Ok(()),
        }
    }

    /// Puts `body`, a copy of base object `x`, into the tenant and diverts `x` to it.
    pub(crate) fn divert_body(&mut self, x: ObjectIndex, body: Body) -> Result<PrivateKey> {
        let c = cost(body.size());
        let k = self.space.insert(Entry::Object(body))?;
        self.divert(x, k, c)?;
        add(&mut self.stats_mut().copies, 1);
        Ok(k)
    }

    /// Room in the table for `n` more diverted objects, reserved fallibly: a caller reserves
    /// before it inserts anything, so that diverting cannot fail, or allocate, afterwards.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the allocator refuses; nothing changes.
    pub(crate) fn reserve_diversions(&mut self, n: usize) -> Result<()> {
        table_room(&mut self.table, n)
    }

    /// Records that base object `x` is stood for by new entry `k`, charged `c` bytes. On
    /// error the entry is removed again; that key's generation has then moved on, which no
    /// reader can see (the key was never handed out). The error cannot happen while callers
    /// divert only objects they located in the base.
    pub(crate) fn divert(&mut self, x: ObjectIndex, k: PrivateKey, c: u64) -> Result<()> {
        let marks = match &mut self.filter {
            None => MarkTarget::Shared(&self.marks, self.lane),
            Some(f) => MarkTarget::Private(f),
        };
        if self.table.divert(marks, x, k).is_err() {
            self.space.remove(k);
            return Err(HeapError::Corrupt("a base object diverted twice").into());
        }
        add(&mut self.stats_mut().private_objects, 1);
        add(&mut self.stats_mut().private_bytes, c);
        Ok(())
    }

    /// What [`Tenant::writable`] checks, for a write of nothing (`set_slots` of no value,
    /// `set_bytes` of no byte): the object, and `check` of its format and size; no copy is
    /// made and no quota charged, since nothing changes. Time: O(1).
    fn check_empty_write(
        &mut self,
        obj: Value,
        check: impl FnOnce(Format, ObjectSize) -> Result<()>,
    ) -> Result<()> {
        match self.locate(obj)? {
            Loc::Private(k) => self.check_private_write(k, check),
            Loc::Base(x) => {
                self.note_read(x);
                let view = self.base.object(x)?;
                check(view.format, view.size())
            }
        }
    }

    /// `check` of the format and size of private object `k`, for a write to it. A write
    /// through a root stub faults its segment in first, where the tenant has a fault handler
    /// ([`Tenant::set_fault_handler`]): the stub knows its segment only, so the write is
    /// checked after, and a refused write leaves the segment in, as a read does.
    fn check_private_write(
        &mut self,
        k: PrivateKey,
        check: impl FnOnce(Format, ObjectSize) -> Result<()>,
    ) -> Result<()> {
        let b = match self.body(k) {
            Err(Error::Swapped { segment, .. }) if self.has_fault_handler() => {
                self.fault_in(segment)?;
                self.body(k)?
            }
            b => b?,
        };
        check(b.format(), b.size())
    }

    /// The writable body of `obj`, copying it first if it is a base object. `check` sees the
    /// object's format and size before anything is copied, so a refused write copies nothing.
    pub(crate) fn writable(
        &mut self,
        obj: Value,
        check: impl FnOnce(Format, ObjectSize) -> Result<()>,
    ) -> Result<Writable<'_>> {
        let k = match self.locate(obj)? {
            Loc::Private(k) => {
                self.check_private_write(k, check)?;
                k
            }
            Loc::Base(x) => {
                // The first write: base object `x` is copied straight into the arena (no
                // body is made on the way) and diverted. A size that does not fit its format
                // (a base opened without verification may hold one) is refused: such a copy
                // could not be snapshotted and restored. Nothing changes on any error.
                self.note_read(x);
                let view = self.base.object(x)?;
                check(view.format, view.size())?;
                view.format.check(view.size())?;
                self.check_in_range(&view)?;
                self.may_divert(x)?;
                let c = cost(view.size());
                self.check_quota(c)?;
                // The copy before the table's room: a copy refused for what it holds
                // (`check_copyable`) leaves the table's memory as it was, and a table that
                // cannot grow takes the copy back.
                let k = self.space.insert_copy(&view)?;
                if let Err(e) = table_room(&mut self.table, 1) {
                    self.space.remove(k);
                    return Err(e);
                }
                self.divert(x, k, c)?;
                add(&mut self.stats_mut().copies, 1);
                k
            }
        };
        if self.space.object(k).is_none() {
            return Err(self.no_body(k));
        }
        self.space
            .writable(k)
            .ok_or(Error::Collected(Word::private(k)))
    }

    /// The private object `obj` names directly, to write: its own key, or this tenant's
    /// table entry for a base object, whose index needs no generation test (the table's
    /// entries are never freed). `None` where that takes more (forwarders, errors).
    #[inline(always)]
    fn writable_of(&mut self, obj: Value) -> Option<Writable<'_>> {
        if let Some(k) = obj.key_for(self.id) {
            return self.space.writable(k);
        }
        // A private reference of another tenant is no base reference either.
        let x = obj.word().as_base()?;
        // The table's filter alone, as `private_key`.
        if !self.table.may_contain(x) {
            return None;
        }
        let i = self.table.probe(x)?;
        self.count_lookup();
        self.space.writable_at_index(i)
    }

    /// The key of this tenant's entry for base object `x`, if it diverted it: the table holds
    /// the entry's index, whose generation never moves while the entry stands for `x`. For a
    /// caller that asked the table's filter first: this probes the buckets.
    #[inline(always)]
    pub(crate) fn table_key(&self, x: ObjectIndex) -> Option<PrivateKey> {
        self.space.key_of(self.table.probe(x)?)
    }

    /// Sets pointer slot `i` of `obj` to `v`. The first write to a base object copies it.
    /// Time: O(1), or O(size of obj) for the first write.
    #[inline(always)]
    pub fn set_slot(&mut self, obj: Value, i: usize, v: Value) -> Result<()> {
        // The commonest write, a value stored as it is into a private object of this tenant
        // (an interpreter's contexts and new objects), inline: the owner compare, the key's
        // record and the slot's bounds. The other later writes (through a base reference
        // this tenant copied) are a leaf function of their own that makes no call (so it
        // saves no registers), the rest out of line.
        let w = v.word();
        if let Some(k) = obj.key_for(self.id)
            && (w.is_immediate() || self.leads_to_itself(v))
            && let Some(slot) = self.space.slot_mut_of(k, i)
        {
            *slot = w;
            return Ok(());
        }
        if self.set_slot_quick(obj, i, v) {
            return Ok(());
        }
        self.set_slot_slow(obj, i, v)
    }

    /// Writes slot `i` of `obj` if that is a later write through a base reference: a base
    /// object this tenant copied, the value an immediate or a reference that leads to
    /// itself, the slot in range. False, changing nothing, otherwise. A private reference is
    /// not tried here: [`Tenant::set_slot`]'s inlined write has made the same tests of it
    /// already. (Measured: inlining all of this path into the caller made the bench's loop
    /// slower, 124 instructions a write against 101.)
    #[inline(never)]
    fn set_slot_quick(&self, obj: Value, i: usize, v: Value) -> bool {
        let w = v.word();
        (w.is_immediate() || self.leads_to_itself(v))
            && obj
                .word()
                .as_base()
                .is_some_and(|x| self.set_copy_slot(x, i, w))
    }

    /// Writes `w`, a word stored as it is, into slot `i` of this tenant's copy of base
    /// object `x` if it has one (found by the table's filter and a probe, counted as a
    /// lookup) and the slot is in range, and answers whether it did. Through a shared borrow
    /// (the arena's words are cells): the write through a base reference of
    /// [`Tenant::set_slot`] and of a [`TenantWriter`] alike.
    #[inline(always)]
    pub(crate) fn set_copy_slot(&self, x: ObjectIndex, i: usize, w: Word) -> bool {
        // The table's filter alone, as `writable_of`.
        if self.table.may_contain(x)
            && let Some(index) = self.table.probe(x)
        {
            self.count_lookup();
            if let Some(slot) = self.space.slot_at_index(index, i) {
                slot.set(w);
                return true;
            }
        }
        false
    }

    #[inline(never)]
    fn set_slot_slow(&mut self, obj: Value, i: usize, v: Value) -> Result<()> {
        let w = self.store_word(v)?;
        if let Some(mut wr) = self.writable_of(obj)
            && let Some(slot) = wr.slot_mut(i)
        {
            *slot = w;
            return Ok(());
        }
        let mut wr = self.writable(obj, |format, size| {
            if i < size.slots {
                Ok(())
            } else {
                Err(format.slot_error(i, size.slots).into())
            }
        })?;
        if let Some(slot) = wr.slot_mut(i) {
            *slot = w;
        }
        Ok(())
    }

    /// Sets pointer slots `start..start + values.len()` of `obj` to `values`: what
    /// [`Tenant::set_slot`] does for each, with the object found once (an interpreter writing
    /// a context's registers back stores several slots of one object at a time). All or
    /// nothing: on any error (a value that cannot be stored, a slot out of range) no slot
    /// changes and no base object is copied (a root stub's segment faulted in to find the
    /// object's size stays in, as with [`Tenant::set_slot`]). No value is a write of nothing:
    /// the object and `start` are checked, and nothing is copied or charged. Time:
    /// O(values), or O(size of obj) more for the first write.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let nil = base.heap().nil();
    /// let a = t.alloc(nil, Format::Pointers, ObjectSize { slots: 4, bytes: 0 }).unwrap();
    /// t.set_slots(a, 1, &[Value::int(7), Value::int(8)]).unwrap();
    /// assert_eq!(t.slot(a, 2).unwrap().as_int(), Some(8));
    /// // Slot 4 is out of range: nothing is written.
    /// assert!(t.set_slots(a, 3, &[Value::int(1), Value::int(2)]).is_err());
    /// assert!(t.identical(t.slot(a, 3).unwrap(), nil).unwrap());
    /// ```
    ///
    /// # Errors
    /// As [`Tenant::set_slot`], for the first value or slot that fails.
    #[inline(always)]
    pub fn set_slots(&mut self, obj: Value, start: usize, values: &[Value]) -> Result<()> {
        // As `set_slot`: the common write a leaf call, the rest out of line.
        if self.set_slots_quick(obj, start, values) {
            return Ok(());
        }
        self.set_slots_slow(obj, start, values)
    }

    /// Writes `values` from slot `start` of `obj` if that is a later write of values
    /// stored as they are (as [`Tenant::set_slot`]'s quick write), the object found once.
    /// False, changing nothing, otherwise.
    #[inline(never)]
    fn set_slots_quick(&mut self, obj: Value, start: usize, values: &[Value]) -> bool {
        if values
            .iter()
            .all(|&v| v.word().is_immediate() || self.leads_to_itself(v))
            && let Some(mut wr) = self.writable_of(obj)
            && let Some(cells) = wr.slots_mut(start, values.len())
        {
            for (cell, v) in cells.iter_mut().zip(values) {
                *cell.get_mut() = v.word();
            }
            return true;
        }
        false
    }

    #[inline(never)]
    fn set_slots_slow(&mut self, obj: Value, start: usize, values: &[Value]) -> Result<()> {
        // Every value is checked before anything is written.
        let words = values
            .iter()
            .map(|&v| self.store_word(v))
            .collect::<Result<Vec<Word>>>()?;
        let end = start.saturating_add(words.len());
        let check = |format: Format, size: ObjectSize| {
            if end <= size.slots {
                Ok(())
            } else {
                let bad = start.max(size.slots);
                Err(format.slot_error(bad, size.slots).into())
            }
        };
        if words.is_empty() {
            return self.check_empty_write(obj, check);
        }
        let mut wr = self.writable(obj, check)?;
        if let Some(cells) = wr.slots_mut(start, words.len()) {
            for (cell, w) in cells.iter_mut().zip(words) {
                *cell.get_mut() = w;
            }
        }
        Ok(())
    }

    /// Makes `class` the class of `obj` (Smalltalk's `primitiveChangeClassTo:`; whether the
    /// layouts agree is the caller's to decide). The first write to a base object copies it,
    /// as any write does; identity, hash, slots and bytes are kept. Time: O(1), or O(size of
    /// obj) for the first write.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::synth;
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// let other = base.heap().nil();
    /// t.set_class(g, other).unwrap();
    /// assert!(t.identical(t.class_of(g).unwrap(), other).unwrap());
    /// assert!(!Tenant::fork(&base).identical(Tenant::fork(&base).class_of(g).unwrap(), other).unwrap());
    /// ```
    ///
    /// # Errors
    /// [`HeapError::NotAnObject`] if `class` is an immediate; as [`Tenant::set_slot`].
    pub fn set_class(&mut self, obj: Value, class: Value) -> Result<()> {
        let w = self.store_word(class)?;
        if !w.is_ref() {
            return Err(HeapError::NotAnObject(w).into());
        }
        let mut wr = self.writable(obj, |_, _| Ok(()))?;
        wr.set_class(w);
        Ok(())
    }

    /// Gives `obj` the identity hash `hash`, as Squeak's become primitives do (a one-way
    /// become gives the target the source's hash; a two-way become leaves each hash with
    /// its references, [`Tenant::become_two_way`] swapping whole bodies). The first write
    /// to a base object copies it, as any write does; identity, class, slots and bytes are
    /// kept. Time: O(1), or O(size of obj) for the first write.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::synth;
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// t.set_identity_hash(g, 77).unwrap();
    /// assert_eq!(t.identity_hash(g).unwrap(), 77);
    /// assert_ne!(Tenant::fork(&base).identity_hash(g).unwrap(), 77);
    /// ```
    ///
    /// # Errors
    /// As [`Tenant::set_class`].
    pub fn set_identity_hash(&mut self, obj: Value, hash: u32) -> Result<()> {
        let mut wr = self.writable(obj, |_, _| Ok(()))?;
        wr.set_hash(hash);
        Ok(())
    }

    /// One word for `v`'s identity in this tenant: two references are identical
    /// ([`Tenant::identical`]) exactly when their identity words are equal, whichever way they
    /// name the object (a base reference or the tenant's copy, a forwarder or its target).
    /// An immediate is its own word. Valid until the tenant's next collection, become,
    /// fill of a stub or fault-in (a body brought back forwards to its stub), commit,
    /// rebase or abort, or its first write of a base object (the word of an object
    /// the tenant has not copied is its base reference, and of one it has, the copy's
    /// reference: words taken before and after a first write of the object differ).
    /// Time: O(1).
    #[inline(always)]
    pub fn identity_word(&self, v: Value) -> Result<Word> {
        if v.word().is_immediate() || self.leads_to_itself(v) {
            return Ok(v.word());
        }
        // Where it leads now: what a store of it would store.
        self.store_word_slow(v)
    }

    /// The reference to `v`'s object that this tenant reads fastest: for a base object it
    /// copied, the copy's private reference; for a forwarder, where its chain leads now;
    /// anything else (an immediate, a base object it did not copy, a live private object, a
    /// root stub of a swapped-out segment) as it is. [`Tenant::identical`] to `v`, and read
    /// the same way, but a read through a base reference to a copy looks the copy up in the
    /// tenant's table every time, where a read through the copy's own reference does not: a
    /// caller that reads an object many times (an embedder holding a root across many
    /// reads) resolves it once. The word is [`Tenant::identity_word`]'s.
    ///
    /// The answer stays identical to `v` until an abort, which refuses a copy's reference
    /// afterwards ([`Error::Collected`]) where `v`, a base reference, still reads the base
    /// object. It stays the fastest until the next become, commit or first write of an
    /// object not yet copied: resolve again after those.
    ///
    /// ```
    /// use cowheap_tenants::Tenant;
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::Value;
    ///
    /// let base = Base::new(cowheap_heap::synth::image(1_000, 1));
    /// let obj = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// assert_eq!(t.resolve(obj).unwrap().word(), obj.word()); // not copied: itself
    /// t.set_slot(obj, 0, Value::int(7)).unwrap(); // the first write copies it
    /// let copy = t.resolve(obj).unwrap();
    /// assert!(copy.word().is_private());
    /// assert!(t.identical(copy, obj).unwrap());
    /// assert_eq!(t.slot(copy, 0).unwrap().as_int(), Some(7));
    /// ```
    ///
    /// Time: O(1) for anything but a chain of forwarders: an inlined test, and one lookup
    /// for a copy, one for each link of a chain.
    ///
    /// # Errors
    /// [`Error::ForeignReference`] for another tenant's private reference,
    /// [`Error::Collected`] for a collected object, and the heap's error for a base index
    /// out of range or a word that names no object.
    #[inline(always)]
    pub fn resolve(&self, v: Value) -> Result<Value> {
        Ok(Value::owned(self.identity_word(v)?, self.id))
    }

    /// Writes `data` into the raw bytes of `obj` from byte `offset`. The first write to a
    /// base object copies it; no data is a write of nothing (the object and `offset` are
    /// checked, nothing is copied or charged). Time: O(data), or O(size of obj) for the
    /// first write.
    pub fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> Result<()> {
        let end = offset.checked_add(data.len());
        let check = |format: Format, size: ObjectSize| match end {
            Some(end) if end <= size.bytes => Ok(()),
            _ => Err(format
                .bytes_error(offset, end.unwrap_or(usize::MAX), size.bytes)
                .into()),
        };
        if data.is_empty() {
            return self.check_empty_write(obj, check);
        }
        let mut wr = self.writable(obj, check)?;
        if let Some(dst) = wr.bytes_mut().get_mut(offset..offset + data.len()) {
            dst.copy_from_slice(data);
        }
        Ok(())
    }

    /// A new private object of `class`, its slots nil and its bytes zero. Time: O(size).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    /// let a = t.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 }).unwrap();
    /// t.set_slot(a, 1, Value::char('z')).unwrap();
    /// let first = t.slot(a, 0).unwrap();
    /// assert!(t.identical(first, base.heap().nil()).unwrap());
    /// assert_eq!(t.slot(a, 1).unwrap().as_char(), Some('z'));
    /// ```
    pub fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> Result<Value> {
        let nil = self.base.heap().nil().word();
        self.alloc_body(class, format, size, nil, None, |_, _| {})
    }

    /// A new private object of `class` holding `slots` and `bytes`. Time: O(size).
    pub fn alloc_with(
        &mut self,
        class: Value,
        format: Format,
        slots: &[Value],
        bytes: &[u8],
    ) -> Result<Value> {
        self.alloc_filled(class, format, slots, bytes, None)
    }

    /// As [`Tenant::alloc_with`], with the identity hash given rather than drawn: for objects
    /// brought in from elsewhere (a segment, another image) that must keep the hash they had,
    /// so that hashed collections holding them answer as before. Two objects may share a
    /// hash; identity is never decided by it. Time: O(size).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    /// let v = t.alloc_with_hash(class, Format::Pointers, &[Value::int(1)], &[], 0xBEEF).unwrap();
    /// assert_eq!(t.identity_hash(v).unwrap(), 0xBEEF);
    /// ```
    pub fn alloc_with_hash(
        &mut self,
        class: Value,
        format: Format,
        slots: &[Value],
        bytes: &[u8],
        hash: u32,
    ) -> Result<Value> {
        self.alloc_filled(class, format, slots, bytes, Some(hash))
    }

    fn alloc_filled(
        &mut self,
        class: Value,
        format: Format,
        slots: &[Value],
        bytes: &[u8],
        hash: Option<u32>,
    ) -> Result<Value> {
        // The words to store, gathered in memory reserved fallibly: an object of many slots
        // asks for as much here as its body will.
        let mut words = Vec::new();
        words
            .try_reserve_exact(slots.len())
            .map_err(|_| Error::OutOfMemory {
                bytes: u64::try_from(slots.len().saturating_mul(8)).unwrap_or(u64::MAX),
            })?;
        for &v in slots {
            words.push(self.store_word(v)?);
        }
        let size = ObjectSize {
            slots: slots.len(),
            bytes: bytes.len(),
        };
        self.alloc_body(class, format, size, Word::from_bits(1), hash, |s, b| {
            for (cell, &w) in s.iter_mut().zip(&words) {
                *cell.get_mut() = w;
            }
            b.copy_from_slice(bytes);
        })
    }

    fn alloc_body(
        &mut self,
        class: Value,
        format: Format,
        size: ObjectSize,
        init: Word,
        hash: Option<u32>,
        fill: impl FnOnce(&mut [Cell<Word>], &mut [u8]),
    ) -> Result<Value> {
        let class = self.store_word(class)?;
        if !class.is_ref() {
            return Err(HeapError::NotAnObject(class).into());
        }
        format.check(size)?;
        if size.slots > u32::MAX as usize || size.bytes > u32::MAX as usize {
            return Err(HeapError::TooLarge("an object of 2^32 slots or bytes").into());
        }
        let c = cost(size);
        self.check_quota(c)?;
        let made = self.cold.as_ref().map_or(0, |c| c.stats.allocations);
        let hash =
            hash.unwrap_or_else(|| cowheap_heap::draw_hash(made, self.base.heap().hash_bits()));
        let k = self
            .space
            .insert_object(class, format, hash, size, init, fill)?;
        let stats = self.stats_mut();
        add(&mut stats.allocations, 1);
        add(&mut stats.private_objects, 1);
        add(&mut stats.private_bytes, c);
        Ok(Value::owned(Word::private(k), self.id))
    }
}

/// [`Tenant::reserve_diversions`] on the table alone (for a caller holding a view of the
/// base).
fn table_room(table: &mut IndirectionTable, n: usize) -> Result<()> {
    table.try_reserve(n).map_err(|_| Error::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(9)).unwrap_or(u64::MAX),
    })
}

/// A vector of `n` copies of `v`, its memory reserved fallibly.
///
/// # Errors
/// [`Error::OutOfMemory`] if the allocator refuses; nothing is allocated.
pub(crate) fn try_vec<T: Clone>(v: T, n: usize) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(std::mem::size_of::<T>())).unwrap_or(u64::MAX),
    })?;
    out.resize(n, v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowheap_heap::synth;

    /// Everything a read can say of `v`, with the owner of any private answer left out.
    fn observe(t: &Tenant, v: Value) -> String {
        // `header` answers what `class_of`, `format` and `size` answer.
        let whole = match (t.class_of(v), t.format(v), t.size(v)) {
            (Ok(c), Ok(f), Ok(s)) => Ok((c.word(), f, s)),
            (_, Err(e), _) | (_, _, Err(e)) | (Err(e), _, _) => Err(e.to_string()),
        };
        let header = t.header(v).map(|h| (h.class.word(), h.format, h.size));
        assert_eq!(header.map_err(|e| e.to_string()), whole, "header of {v:?}");
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            t.class_of(v).map(|c| c.word()),
            t.size(v),
            t.format(v),
            t.identity_hash(v),
            t.bytes(v),
            t.slot(v, 0).map(|w| w.word()),
            t.slot(v, 1 << 40).map(|w| w.word()),
        )
    }

    #[test]
    fn the_inlined_and_the_out_of_line_reads_of_a_base_object_agree() {
        let base = Base::new(synth::image(2_000, 3));
        let heap = base.heap();
        let fast = Tenant::fork(&base);
        let private = Tenant::fork_with(
            &base,
            TenantConfig {
                marks: MarkPolicy::Private,
                quota: None,
            },
        );
        let mut objects: Vec<Value> = heap.indices().map(Value::base).collect();
        // Past the end, and immediates: errors and immediate classes, out of line.
        objects.extend([Value::base(ObjectIndex::from_u32(2_000_000)), Value::int(3)]);
        let before: Vec<String> = objects.iter().map(|&v| observe(&fast, v)).collect();
        // Another tenant writes every base object it can: their shared marks are set, so a
        // tenant with shared marks now reads them out of line; one with private marks still
        // reads them inline.
        let mut writer = Tenant::fork(&base);
        for x in heap.indices() {
            let v = Value::base(x);
            let size = heap.size(x).unwrap();
            if size.slots > 0 {
                let w = writer.slot(v, 0).unwrap();
                let _ = writer.set_slot(v, 0, w);
            } else if size.bytes > 0 {
                let _ = writer.set_bytes(v, 0, &heap.bytes(x).unwrap()[..1]);
            }
        }
        assert!(base.marks().count() > 1_500, "most objects are diverted");
        // A tenant that diverted nothing never consults its (empty) table; one that copied an
        // object (writing back what it read, so that no observation changes) consults it only
        // where its filter's one bit in 64 says maybe; one that records its reads reads every
        // base object out of line.
        let mut copied = Tenant::fork(&base);
        let first = objects
            .iter()
            .copied()
            .find(|&v| copied.size(v).is_ok_and(|s| s.slots > 0))
            .unwrap();
        let w = copied.slot(first, 0).unwrap();
        copied.set_slot(first, 0, w).unwrap();
        let mut slow = Tenant::fork(&base);
        slow.record_reads(true).unwrap();
        let idle = Tenant::fork(&base);
        for (v, seen) in objects.iter().zip(&before) {
            assert_eq!(&observe(&slow, *v), seen, "out of line, {v:?}");
            assert_eq!(&observe(&copied, *v), seen, "one copy, {v:?}");
            assert_eq!(&observe(&private, *v), seen, "private marks, {v:?}");
            assert_eq!(&observe(&fast, *v), seen, "after the marks, {v:?}");
            assert_eq!(&observe(&idle, *v), seen, "idle, {v:?}");
        }
        assert_eq!(idle.stats().lookups, 0, "an empty table is not consulted");
        // In-range reads of objects another tenant diverted: the filter answers nearly all.
        let before = copied.stats().lookups;
        let mut reads = 0;
        for &v in &objects {
            if copied.size(v).is_ok_and(|s| s.slots > 0) {
                copied.slot(v, 0).unwrap();
                reads += 1;
            }
        }
        let lookups = copied.stats().lookups - before;
        assert!(
            reads > 1_000 && lookups * 10 < reads,
            "{lookups} lookups in {reads} reads"
        );
        let recorded = slow.reads_recorded().unwrap().len();
        assert!(recorded > 1_500, "the reads went out of line: {recorded}");
    }

    /// The slots of `v` as words (the owner of private references left out).
    fn slots(t: &Tenant, v: Value) -> Vec<Word> {
        let n = t.size(v).unwrap().slots;
        (0..n).map(|i| t.slot(v, i).unwrap().word()).collect()
    }

    #[test]
    fn set_slots_does_what_set_slot_does_for_each_or_nothing() {
        let base = Base::new(synth::image(500, 4));
        let heap = base.heap();
        let nil = heap.nil();
        let mut batch = Tenant::fork(&base);
        let mut one = Tenant::fork(&base);
        let size = ObjectSize { slots: 6, bytes: 0 };
        let a = batch.alloc(nil, Format::Pointers, size).unwrap();
        let b = one.alloc(nil, Format::Pointers, size).unwrap();
        // A base object with slots: written first through a base reference (a copy), then
        // again; and values of every kind: immediates, base objects, the tenant's own.
        let x = heap
            .indices()
            .map(Value::base)
            .find(|&v| heap.size(v.word().as_base().unwrap()).unwrap().slots >= 3)
            .unwrap();
        let cases: Vec<(Option<Value>, usize, Vec<Value>)> = vec![
            (None, 0, vec![Value::int(1), Value::int(2), Value::int(3)]),
            (None, 3, vec![x, Value::int(-5), x]),
            (Some(x), 0, vec![Value::int(7), Value::int(8)]),
            (Some(x), 1, vec![x, Value::int(9)]),
            (None, 5, vec![]),
        ];
        for (target, start, values) in cases {
            let (ta, tb) = (target.unwrap_or(a), target.unwrap_or(b));
            let own_a: Vec<Value> = values
                .iter()
                .map(|&v| if v.word() == x.word() { a } else { v })
                .collect();
            let own_b: Vec<Value> = values
                .iter()
                .map(|&v| if v.word() == x.word() { b } else { v })
                .collect();
            batch.set_slots(ta, start, &own_a).unwrap();
            for (j, &v) in own_b.iter().enumerate() {
                one.set_slot(tb, start + j, v).unwrap();
            }
            assert_eq!(slots(&batch, ta).len(), slots(&one, tb).len());
            for (wa, wb) in slots(&batch, ta).into_iter().zip(slots(&one, tb)) {
                // The two tenants' own objects are at the same keys: same words.
                assert_eq!(wa, wb, "after writing {values:?} at {start}");
            }
        }
        // Failures change nothing: a slot out of range, another tenant's object, a
        // reference past the base's end.
        let before = slots(&batch, a);
        let stranger = one.alloc(nil, Format::Pointers, size).unwrap();
        let past = Value::base(ObjectIndex::from_u32(1_000_000));
        assert!(
            batch
                .set_slots(a, 5, &[Value::int(1), Value::int(2)])
                .is_err()
        );
        assert!(batch.set_slots(a, 0, &[Value::int(1), stranger]).is_err());
        assert!(batch.set_slots(a, 0, &[Value::int(1), past]).is_err());
        assert!(batch.set_slots(a, 7, &[]).is_err());
        assert_eq!(slots(&batch, a), before);
        let copies = batch.stats().copies;
        let y = Value::base(heap.indices().nth(10).unwrap());
        let n = heap.size(y.word().as_base().unwrap()).unwrap().slots;
        assert!(batch.set_slots(y, n, &[Value::int(1)]).is_err());
        assert_eq!(
            batch.stats().copies,
            copies,
            "a refused write copies nothing"
        );
    }
}
