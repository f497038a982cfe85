//! Collection of a tenant's unreachable private objects.
//!
//! Base objects are immutable and so never refer to private objects; the only ways into the
//! private space are the tenant's roots, its pinned handles, and the indirection table (a
//! base object may refer to any object this tenant diverted). Marking starts there and
//! follows private references only, so it never reads the base: a collection costs
//! O(private objects + their slots), whatever the size of the base.
//!
//! While marking, every slot that holds a forwarder is patched to its target, so after a
//! collection no slot holds a forwarder and forwarders referred to only by slots are freed.
//! Each chain of forwarders is walked once: its links are pointed at its end as the first
//! slot holding it is patched, so the slots after it settle in a step or two.
//! A table entry that is a forwarder is kept (a base object may refer to it), pointed at
//! its chain's end, so the forwarders between are freed too.
//!
//! **Memory.** The mark needs a bit per key ever used, a worklist, the roots' words and the
//! root stubs in segment order. An entry is marked when it is pushed, so the worklist holds
//! each key at most once and never outgrows the keys. All of it is reserved fallibly: a
//! mark the allocator refuses answers [`Error::OutOfMemory`] and frees nothing (slots and
//! roots it patched stay patched, which no read can tell; the count of patches does not
//! take them in). The sweep allocates nothing (the arenas' compaction after it is skipped
//! if its memory is refused). An
//! operation that may have to undo its allocations with [`Tenant::free_unreachable`]
//! reserves the mark's memory first ([`Tenant::reserve_collection`]), so that the undo
//! itself cannot be refused.
//!
//! **Weak slots.** [`Tenant::try_collect_weak`] holds the slots of weak objects
//! ([`Format::Weak`]) past their strong ones weakly, as Squeak's collector does: such a slot
//! keeps nothing alive, and one that names a private object no strong path reaches is set
//! to nil when that object is freed. A slot that names a base object is never cleared (no
//! tenant collection frees a base object).
//!
//! **Ephemerons.** [`Tenant::try_collect_ephemerons`] holds an ephemeron's slots
//! ([`Format::Ephemeron`]) as Spur's collector does: only once its key (its first slot) is reached by some other
//! path. An ephemeron whose key nothing but ephemerons reaches is *fired*: its slots are
//! then held strongly for this collection (so its finalization can read its key and value),
//! it becomes an object of plain pointers ([`Format::Pointers`], so it fires once), and it
//! is handed to the caller as a mourner. Every other collection holds ephemerons strongly
//! ([`Tenant::try_collect_weak`], whose caller takes no mourners), and every slot in a
//! collection without a [`Weakness`] ([`Tenant::collect`], an undo's
//! [`Tenant::free_unreachable`]) is held strongly.

use crate::space::{Space, State};
use crate::stats::{add, sub};
use crate::{CollectStats, Error, Result, Tenant};
use cowheap_heap::{Decoded, Format, PrivateKey, TenantId, Value, Word};
use std::cell::Cell;

/// How a collection holds the slots of weak objects ([`Format::Weak`]): the first
/// `strong_slots` of each (a Squeak weak class's named instance variables) strongly, the
/// others weakly, and what a weak slot is set to when the object it named is freed.
///
/// ```
/// use cowheap_forwarders::Base;
/// use cowheap_heap::{synth, Format, ObjectSize, Value};
/// use cowheap_tenants::{Tenant, Weakness};
///
/// let base = Base::new(synth::image(1_000, 1));
/// let mut t = Tenant::fork(&base);
/// let class = base.heap().root("true").unwrap();
/// let nil = Value::int(0);
/// let weak = t.alloc(class, Format::Weak, ObjectSize { slots: 2, bytes: 0 }).unwrap();
/// let strong = t.alloc(class, Format::Pointers, ObjectSize { slots: 0, bytes: 0 }).unwrap();
/// let gone = t.alloc(class, Format::Pointers, ObjectSize { slots: 0, bytes: 0 }).unwrap();
/// t.set_slot(weak, 0, strong).unwrap();
/// t.set_slot(weak, 1, gone).unwrap();
/// t.set_root("weak", weak).unwrap();
/// // One named (strong) slot, then the weak ones.
/// let one = |_: &Tenant, _: Value| Some(1);
/// let out = t.try_collect_weak(&Weakness { nil, strong_slots: &one }).unwrap();
/// assert_eq!((out.freed, out.cleared), (1, 1));
/// assert!(t.identical(t.slot(weak, 0).unwrap(), strong).unwrap());
/// assert_eq!(t.slot(weak, 1).unwrap().as_int(), Some(0));
/// ```
pub struct Weakness<'a> {
    /// The value a cleared weak slot is set to (an image's nil): an immediate, a base
    /// object, or a private object of the collecting tenant (which the collection keeps).
    pub nil: Value,
    /// How many of the first slots of a weak object of class `class` are strong; the slots
    /// after them are weak. `None` (a class whose format cannot be read) holds all of the
    /// object's slots strongly.
    pub strong_slots: &'a dyn Fn(&Tenant, Value) -> Option<usize>,
}

impl std::fmt::Debug for Weakness<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weakness")
            .field("nil", &self.nil)
            .finish_non_exhaustive()
    }
}

/// The key no entry has: it marks a segment whose stubs are marked already.
const DONE: PrivateKey = PrivateKey::new(u32::MAX, 0);

/// Memory for a mark, reserved ahead ([`Tenant::reserve_collection`]) and given back when
/// used ([`Tenant::free_unreachable_with`]) or dropped, with the tenant's allocation count
/// when it was made. The default holds no memory and no count.
#[derive(Debug, Default)]
pub struct CollectionReserve {
    scratch: MarkScratch,
    /// The tenant it was made for, and its [`crate::TenantStats::allocations`] then: an
    /// undo in that tenant that frees every object made since takes the count back to it,
    /// so the objects made next draw the identity hashes they would have had if the undone
    /// operation had never run. (Another tenant's undo in it only uses its memory.)
    allocations: Option<(TenantId, u64)>,
}

/// The memory a mark works in, reserved ahead or as the mark goes.
#[derive(Debug, Default)]
struct MarkScratch {
    /// A bit per key index: reached.
    bits: Vec<u64>,
    /// Reached entries whose words are still to be followed.
    stack: Vec<PrivateKey>,
    /// The roots' and the handles' words, patched.
    roots: Vec<Word>,
    /// Every root stub with its segment, in segment order.
    stubs: Vec<(u64, PrivateKey)>,
}

/// Room for `additional` more elements in `v`, or [`Error::OutOfMemory`].
fn grow<T>(v: &mut Vec<T>, additional: usize) -> Result<()> {
    v.try_reserve(additional).map_err(|_| Error::OutOfMemory {
        bytes: u64::try_from(additional.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
    })
}

/// The reached bits, by key index.
pub(crate) struct Marks(Vec<u64>);

impl Marks {
    /// True if the entry at key index `i` was reached.
    fn has(&self, i: u32) -> bool {
        let i = i as usize;
        self.0.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    /// Sets the bit of key index `i`; true if it was clear.
    fn set(&mut self, i: u32) -> bool {
        let i = i as usize;
        match self.0.get_mut(i / 64) {
            Some(w) if *w >> (i % 64) & 1 == 0 => {
                *w |= 1 << (i % 64);
                true
            }
            _ => false,
        }
    }
}

/// The mark's state while it runs.
struct Marking<'w> {
    marks: Marks,
    stack: Vec<PrivateKey>,
    out: CollectStats,
    /// How weak objects are held, if weakly, with the nil word their cleared slots get.
    weak: Option<(&'w Weakness<'w>, Word)>,
    /// The weak objects reached, each with its count of strong slots: their other slots
    /// are cleared once the mark is done.
    weaklings: Vec<(PrivateKey, usize)>,
    /// Whether ephemerons are held as ephemerons (else strongly).
    fire: bool,
    /// Ephemerons reached whose keys are not reached yet: their slots wait.
    ephemerons: Vec<PrivateKey>,
    /// Ephemerons fired: their keys were reached through ephemerons alone.
    fired: Vec<PrivateKey>,
}

impl Marking<'_> {
    /// Reaches `k` if it names a live entry not reached yet: marks it and pushes it. A word
    /// that names a freed entry (which an object [`Tenant::free_unreachable`] left standing
    /// may hold) reaches nothing, not whatever reuses its index.
    fn reach(&mut self, space: &Space, k: Option<PrivateKey>) -> Result<()> {
        let Some(k) = k else { return Ok(()) };
        if !space.is_live(k) || !self.marks.set(k.key()) {
            return Ok(());
        }
        self.out.live += 1;
        grow(&mut self.stack, 1)?;
        self.stack.push(k);
        Ok(())
    }
}

impl Tenant {
    /// Frees every private object not reachable from this tenant's roots, pinned handles and
    /// diverted base objects. A `Value` naming a freed object is refused from then on
    /// ([`crate::Error::Collected`]).
    ///
    /// Time: O(private objects and their slots); never walks the base. The mark's memory
    /// (see [`Tenant::try_collect`]) is had as a `Vec`'s is: if the allocator refuses it,
    /// the process ends through [`std::alloc::handle_alloc_error`].
    pub fn collect(&mut self) -> CollectStats {
        match self.try_collect() {
            Ok(out) => out,
            Err(e) => {
                let bytes = match e {
                    Error::OutOfMemory { bytes } => usize::try_from(bytes).unwrap_or(usize::MAX),
                    _ => 0,
                };
                std::alloc::handle_alloc_error(
                    std::alloc::Layout::array::<u8>(bytes)
                        .unwrap_or_else(|_| std::alloc::Layout::new::<u64>()),
                )
            }
        }
    }

    /// [`Tenant::collect`], answering an allocator's refusal instead of ending the process.
    /// The mark needs a bit per key ever used, a worklist of at most one entry per key, and
    /// the roots' words ([`Tenant::reserve_collection`] reserves them ahead).
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the mark's memory cannot be had; then nothing is freed and
    /// every read answers as before.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = base.heap().root("true").unwrap();
    /// let kept = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// t.set_root("kept", kept).unwrap();
    /// t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// let out = t.try_collect().unwrap();
    /// assert_eq!((out.live, out.freed), (1, 1));
    /// ```
    pub fn try_collect(&mut self) -> Result<CollectStats> {
        self.collect_in(None, None)
    }

    /// [`Tenant::try_collect`], holding the slots of weak objects past their strong ones
    /// weakly ([`Weakness`]): such a slot keeps nothing alive, and one that names a private
    /// object the collection frees is set to `weak.nil` ([`CollectStats::cleared`] counts
    /// them). What an interpreter's collection does for Squeak's weak arrays.
    ///
    /// Time: as [`Tenant::try_collect`], plus a call of `weak.strong_slots` for each weak
    /// private object.
    ///
    /// # Errors
    /// As [`Tenant::try_collect`]; and [`Error::ForeignReference`] or
    /// [`Error::Collected`] if `weak.nil` is a reference this tenant cannot store, before
    /// anything changes.
    pub fn try_collect_weak(&mut self, weak: &Weakness<'_>) -> Result<CollectStats> {
        self.collect_in(Some(weak), None)
    }

    /// [`Tenant::try_collect_weak`], holding ephemerons as ephemerons (see the module
    /// documentation): each reached ephemeron whose key nothing but ephemerons reaches is
    /// fired, becomes an object of plain pointers, keeps its key and value alive through
    /// this collection, and is appended to `mourners` ([`CollectStats::fired`] counts
    /// them) for the caller to finalize (Squeak's mourner queue, which should keep them
    /// reachable until fetched). After them each weak object that had a slot cleared is
    /// appended too ([`CollectStats::weak_mourners`]), once, as Spur queues both.
    /// [`Tenant::try_collect_weak`], whose caller takes no mourners, holds ephemerons
    /// strongly.
    ///
    /// Time: as [`Tenant::try_collect_weak`], plus, for ephemerons whose keys are reached
    /// only through other ephemerons' values, a rescan of the waiting ephemerons each time
    /// the mark reaches more (O(ephemerons) a rescan).
    ///
    /// # Errors
    /// As [`Tenant::try_collect_weak`] (an allocator's refusal of the mourners' room
    /// included): then nothing is freed, cleared or fired, and `mourners` is as it was.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize, Value};
    /// use cowheap_tenants::{Tenant, Weakness};
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = base.heap().root("true").unwrap();
    /// let two = ObjectSize { slots: 2, bytes: 0 };
    /// let e = t.alloc(class, Format::Ephemeron, two).unwrap();
    /// let key = t.alloc(class, Format::Pointers, two).unwrap();
    /// t.set_slot(e, 0, key).unwrap();
    /// t.set_root("registry", e).unwrap();
    /// let none = |_: &Tenant, _: Value| None;
    /// let weak = Weakness { nil: Value::int(0), strong_slots: &none };
    /// let mut mourners = Vec::new();
    /// let out = t.try_collect_ephemerons(&weak, &mut mourners).unwrap();
    /// assert_eq!((out.fired, out.freed, mourners.len()), (1, 0, 1));
    /// assert!(t.identical(mourners[0], e).unwrap());
    /// assert_eq!(t.format(e).unwrap(), Format::Pointers);
    /// assert!(t.identical(t.slot(e, 0).unwrap(), key).unwrap());
    /// ```
    pub fn try_collect_ephemerons(
        &mut self,
        weak: &Weakness<'_>,
        mourners: &mut Vec<Value>,
    ) -> Result<CollectStats> {
        self.collect_in(Some(weak), Some(mourners))
    }

    /// The collection, holding weak slots weakly if `weak` says how, and ephemerons as
    /// ephemerons if there are `mourners` to append the fired ones to.
    fn collect_in(
        &mut self,
        weak: Option<&Weakness<'_>>,
        mourners: Option<&mut Vec<Value>>,
    ) -> Result<CollectStats> {
        let weak = match weak {
            Some(w) => Some((w, self.store_word(w.nil)?)),
            None => None,
        };
        let (marks, mut out) = self.mark(MarkScratch::default(), weak, mourners)?;
        // Every occupied key index not reached, in key order; the sweep allocates nothing.
        for i in 0..u32::try_from(self.space.key_bound()).unwrap_or(u32::MAX) {
            if !marks.has(i)
                && let Some(k) = self.space.key_of(i)
                && let Some(charged) = self.space.remove(k)
            {
                out.freed += 1;
                out.freed_bytes += charged;
            }
        }
        self.after_sweep(&out);
        // A view's words are not patched here, and may name a forwarder just freed: views
        // are made again from their segments when next read.
        if let Some(c) = self.cold.as_mut() {
            c.views.clear();
        }
        add(&mut self.cold_mut().stats.collections, 1);
        Ok(out)
    }

    /// Reserves the memory a mark needs ([`Tenant::free_unreachable_with`]) with up to
    /// `extra_keys` more private entries than the tenant has now: for an operation that
    /// allocates and may have to free what it made if it fails part-way, so that the freeing
    /// is not refused by the allocator. That holds while the tenant gains no more entries
    /// than `extra_keys`, and no roots, handles or root stubs, before the freeing; past
    /// that the mark grows its memory, fallibly. The memory (a bit for every key index ever
    /// used, 8 bytes for every live entry, the roots' words) is held by the answer, and
    /// given back when it is used or dropped. Time: O(1) beyond the allocation.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the allocator refuses; nothing changes.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = base.heap().root("true").unwrap();
    /// let reserve = t.reserve_collection(1).unwrap();
    /// let made = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// assert_eq!(t.free_unreachable_with(&[made], reserve).unwrap().freed, 1);
    /// ```
    pub fn reserve_collection(&self, extra_keys: usize) -> Result<CollectionReserve> {
        // A bit for every key index, but worklist room for the live entries alone: only
        // they are pushed, each once.
        let keys = self.space.key_bound().saturating_add(extra_keys);
        let live = self.space.len().saturating_add(extra_keys);
        let roots = self
            .cold
            .as_ref()
            .map_or(0, |c| c.roots.len().saturating_add(c.handles.len()));
        let mut s = MarkScratch::default();
        grow(&mut s.bits, keys.div_ceil(64))?;
        grow(&mut s.stack, live)?;
        grow(&mut s.roots, roots)?;
        grow(&mut s.stubs, self.space.stub_count())?;
        Ok(CollectionReserve {
            scratch: s,
            allocations: Some((
                self.id(),
                self.cold.as_ref().map_or(0, |c| c.stats.allocations),
            )),
        })
    }

    /// Frees those of `objs` that are this tenant's private objects and unreachable (from
    /// its roots, pinned handles and diverted base objects), now, and nothing else: for an
    /// operation that made them and then failed part-way (a segment import, say), so that
    /// the tenant's objects, private bytes and quota are as they were before it. Anything
    /// else in `objs` (an immediate, a base reference, another tenant's reference, a
    /// forwarder or root stub, an object reachable after all, a copy of a base object) is
    /// left alone. A `Value` naming a freed object is refused from then on
    /// ([`crate::Error::Collected`]), as after [`Tenant::collect`], which unlike this frees
    /// every unreachable object. An unreachable object left standing may still hold a
    /// reference to one freed here; the mark follows keys with their generations, so such a
    /// word never keeps alive an object that reuses the index.
    ///
    /// Time: O(private objects and their slots), the marking of a collection, plus O(objs).
    /// `objs` is walked twice and never copied.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the mark's memory cannot be had (which
    /// [`Tenant::reserve_collection`], made before the objects, rules out); then nothing is
    /// freed.
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = base.heap().root("true").unwrap();
    /// let kept = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// t.set_root("kept", kept).unwrap();
    /// let before = t.stats();
    /// let made = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// t.set_slot(made, 0, kept).unwrap();
    /// let freed = t.free_unreachable(&[made, kept]).unwrap();
    /// assert_eq!(freed.freed, 1);
    /// assert!(t.slot(made, 0).is_err());
    /// assert!(t.slot(kept, 0).is_ok());
    /// assert_eq!(t.stats().private_bytes, before.private_bytes);
    /// ```
    pub fn free_unreachable<'a, I>(&mut self, objs: I) -> Result<CollectStats>
    where
        I: IntoIterator<Item = &'a Value, IntoIter: Clone>,
    {
        self.free_unreachable_with(objs, CollectionReserve::default())
    }

    /// [`Tenant::free_unreachable`] in memory reserved by [`Tenant::reserve_collection`]
    /// before the objects were made: not refused by the allocator unless more entries (or
    /// roots, handles or root stubs) were made since than reserved for. The sweep itself
    /// allocates nothing; the arenas' compaction after it is skipped if refused.
    ///
    /// An undo: when it frees as many objects as the tenant allocated since it made the
    /// reserve (`objs` holding what the failed operation made, and none of it reachable), the
    /// tenant's allocation count ([`crate::TenantStats::allocations`]) goes back to what it
    /// was then, so the identity hashes the objects made next draw from that count, and
    /// the count itself, are those of a tenant that never ran the operation (the objects
    /// freed are counted as collected: the undo did free them). An undo that keeps any
    /// object of `objs` (reachable after all) keeps the count, so no object made next takes
    /// a kept one's hash, even where `objs` also held an older unreachable object, freed
    /// with the rest, that makes the number freed that of the objects made.
    ///
    /// # Errors
    /// As [`Tenant::free_unreachable`].
    pub fn free_unreachable_with<'a, I>(
        &mut self,
        objs: I,
        reserve: CollectionReserve,
    ) -> Result<CollectStats>
    where
        I: IntoIterator<Item = &'a Value, IntoIter: Clone>,
    {
        let id = self.id();
        // Live objects only: never a forwarder or a root stub, which stand for other objects.
        let live = |t: &Tenant, v: &Value| v.key_for(id).filter(|&k| t.space.object(k).is_some());
        let objs = objs.into_iter();
        if !objs.clone().any(|v| live(self, v).is_some()) {
            return Ok(CollectStats::default());
        }
        let CollectionReserve {
            scratch,
            allocations: before,
        } = reserve;
        let (marks, mut out) = self.mark(scratch, None, None)?;
        // Objects of `objs` found reachable, and kept: which of them were made since the
        // reserve no count tells, so any one of them keeps the allocation count.
        let mut kept = false;
        for v in objs {
            // A key given twice is freed once: the second `remove` finds nothing.
            if let Some(k) = live(self, v) {
                if marks.has(k.key()) {
                    kept = true;
                } else if let Some(charged) = self.space.remove(k) {
                    out.freed += 1;
                    out.freed_bytes += charged;
                }
            }
        }
        // Everything allocated since the reserve was freed, and nothing given kept: the
        // allocations are undone. (As many freed as were made, one of them older, and a
        // made one kept, is no undo: the count would go back under the kept one's hash.)
        let undone = before
            .filter(|&(tenant, _)| tenant == id && !kept)
            .map(|(_, a)| a)
            .filter(|&a| {
                self.cold
                    .as_ref()
                    .is_some_and(|c| c.stats.allocations.checked_sub(a) == Some(out.freed))
            });
        self.after_sweep(&out);
        if let Some(a) = undone {
            self.cold_mut().stats.allocations = a;
        }
        Ok(out)
    }

    /// Marks every private entry reachable from the roots, the pinned handles and the
    /// diverted base objects, patching each forwarder met on the way; answers the marks by
    /// key index, and the live and patched counts.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if its memory cannot be had; then the counters are as they were
    /// (patched slots and roots stay patched).
    fn mark(
        &mut self,
        mut s: MarkScratch,
        weak: Option<(&Weakness<'_>, Word)>,
        mourners: Option<&mut Vec<Value>>,
    ) -> Result<(Marks, CollectStats)> {
        let lookups = self.stats().lookups;
        let bumps = self.cold.as_ref().map_or(0, |c| c.reads.lookups.bumps());
        let marked = self.mark_in(&mut s, weak, mourners);
        let cold = self.cold_mut();
        // The mark's steps are the counter's bumps during it, not the difference of its
        // counts: a count restored near its maximum saturates, and would hide them.
        let steps = cold.reads.lookups.bumps().wrapping_sub(bumps);
        // Patching counts no lookup, whatever the forwarders' resolution did: the
        // collection's own count has them.
        cold.reads.lookups.set(lookups);
        let (marks, mut out) = marked?;
        out.steps = steps;
        let patches = cold.reads.patches.get().saturating_add(out.patched);
        cold.reads.patches.set(patches);
        Ok((marks, out))
    }

    /// The mark, in `s`'s memory.
    fn mark_in(
        &mut self,
        s: &mut MarkScratch,
        weak: Option<(&Weakness<'_>, Word)>,
        mourners: Option<&mut Vec<Value>>,
    ) -> Result<(Marks, CollectStats)> {
        let mut out = CollectStats::default();
        let bound = self.space.key_bound().div_ceil(64);
        s.bits.clear();
        grow(&mut s.bits, bound)?;
        s.bits.resize(bound, 0);
        s.stack.clear();
        s.roots.clear();
        s.stubs.clear();

        if let Some(c) = self.cold.as_mut() {
            grow(&mut s.roots, c.roots.len().saturating_add(c.handles.len()))?;
            s.roots.extend(c.roots.values().copied());
            s.roots.extend(c.handles.words_mut().map(|w| *w));
        }
        for w in &mut s.roots {
            *w = self.final_word(*w, &mut out);
        }
        if let Some(c) = self.cold.as_mut() {
            for (slot, w) in c
                .roots
                .values_mut()
                .chain(c.handles.words_mut())
                .zip(&s.roots)
            {
                *slot = *w;
            }
        }
        // The stubs of a segment live and die together: a stub's body (in its segment, or
        // in the segment's view) refers to the other members by their stubs. So the first
        // stub of a segment reached marks them all. Found in one pass over the keys, which
        // the sweep makes anyway, and sorted by segment in place.
        let stub_count = self.space.stub_count();
        if stub_count > 0 {
            grow(&mut s.stubs, stub_count)?;
            s.stubs
                .extend(self.space.iter().filter_map(|(k, st)| match st {
                    State::Stub(segment) => Some((segment, k)),
                    _ => None,
                }));
            s.stubs.sort_unstable_by_key(|&(segment, _)| segment);
        }

        let mut m = Marking {
            marks: Marks(std::mem::take(&mut s.bits)),
            stack: std::mem::take(&mut s.stack),
            out,
            weak,
            weaklings: Vec::new(),
            fire: weak.is_some() && mourners.is_some(),
            ephemerons: Vec::new(),
            fired: Vec::new(),
        };
        self.trace(&mut m, s)?;
        // The mourners' room before anything changes (every fired ephemeron, and every
        // weak object reached, which may have a slot cleared): past it, nothing allocates.
        let mut mourners = mourners;
        if let Some(list) = mourners.as_deref_mut() {
            grow(list, m.fired.len().saturating_add(m.weaklings.len()))?;
        }
        let id = self.id();
        for &e in &m.fired {
            if let Some(mut body) = self.space.writable(e) {
                body.set_format(Format::Pointers);
            }
            if let Some(list) = mourners.as_deref_mut() {
                list.push(Value::owned(Word::private(e), id));
            }
        }
        m.out.fired = u64::try_from(m.fired.len()).unwrap_or(u64::MAX);
        self.clear_weak(&mut m, mourners);
        Ok((m.marks, m.out))
    }

    /// Reaches the table's entries and the roots, then follows every reached entry's words.
    fn trace(&self, m: &mut Marking, s: &mut MarkScratch) -> Result<()> {
        // Keys with their generations: a word that names a freed object marks nothing. An
        // entry that is a forwarder is pointed at its chain's end first.
        for (_, i) in self.table.iter() {
            let k = self.space.key_of(i);
            if let Some(k) = k {
                self.shorten(k, &mut m.out);
            }
            m.reach(&self.space, k)?;
        }
        for w in &s.roots {
            m.reach(&self.space, w.as_private())?;
        }
        // A private nil is kept: cleared slots will name it.
        if let Some((_, nil)) = m.weak {
            m.reach(&self.space, nil.as_private())?;
        }
        loop {
            self.drain(m, s)?;
            if m.ephemerons.is_empty() {
                return Ok(());
            }
            // An ephemeron whose key the mark has reached holds its slots strongly now.
            let waiting = m.ephemerons.len();
            let mut i = 0;
            while let Some(&e) = m.ephemerons.get(i) {
                if self.key_reached(m, e) {
                    m.ephemerons.swap_remove(i);
                    self.reach_slots(m, e)?;
                } else {
                    i += 1;
                }
            }
            if m.ephemerons.len() < waiting {
                continue;
            }
            // Nothing reached any waiting ephemeron's key: each is reached through
            // ephemerons alone, and fires, its slots held strongly for its finalization.
            grow(&mut m.fired, waiting)?;
            let fired = std::mem::take(&mut m.ephemerons);
            for e in fired {
                self.reach_slots(m, e)?;
                m.fired.push(e);
            }
        }
    }

    /// True if the key (first slot) of ephemeron `e` is reached: an immediate or a base
    /// object (which no tenant collection frees) is; a private object is once marked.
    fn key_reached(&self, m: &Marking<'_>, e: PrivateKey) -> bool {
        let key = self.space.slot_of(e, 0).map(Cell::get);
        match key.and_then(Word::as_private) {
            Some(k) => self.space.is_live(k) && m.marks.has(k.key()),
            None => true,
        }
    }

    /// Reaches every slot of the private object `e` (settled already).
    fn reach_slots(&self, m: &mut Marking<'_>, e: PrivateKey) -> Result<()> {
        if let Some(body) = self.space.object(e) {
            for cell in body.slots() {
                m.reach(&self.space, cell.get().as_private())?;
            }
        }
        Ok(())
    }

    /// Follows every reached entry's words until the worklist is empty; an ephemeron whose
    /// key is not reached yet waits, its slots settled but not followed.
    fn drain(&self, m: &mut Marking, s: &mut MarkScratch) -> Result<()> {
        while let Some(k) = m.stack.pop() {
            let body = match self.space.get(k) {
                None => continue,
                Some(State::Forwarded(t)) => {
                    m.reach(&self.space, t.as_private())?;
                    continue;
                }
                // A stub holds nothing here (its objects are in its segment) but the other
                // stubs of its segment, which the first one reached marks. They hold nothing
                // else, so they are marked without being pushed.
                Some(State::Stub(segment)) => {
                    let from = s.stubs.partition_point(|&(g, _)| g < segment);
                    if s.stubs
                        .get(from)
                        .is_some_and(|&(g, k)| g == segment && k != DONE)
                    {
                        for &(_, other) in
                            s.stubs[from..].iter().take_while(|&&(g, _)| g == segment)
                        {
                            if m.marks.set(other.key()) {
                                m.out.live += 1;
                            }
                        }
                        s.stubs[from].1 = DONE;
                    }
                    continue;
                }
                Some(State::Object(body)) => body,
            };
            let fin = self.final_word(body.class(), &mut m.out);
            body.patch_class(fin);
            m.reach(&self.space, fin.as_private())?;
            let slots = body.slots();
            let strong = match m.weak {
                // An ephemeron's slots wait for its key (below).
                Some(_) if m.fire && body.format() == Format::Ephemeron => 0,
                Some((weak, _)) if body.format() == Format::Weak => {
                    let class = if fin.is_private() {
                        Value::owned(fin, self.id())
                    } else {
                        Value::shared(fin)
                    };
                    (weak.strong_slots)(self, class).unwrap_or(slots.len())
                }
                _ => slots.len(),
            };
            if strong < slots.len() && body.format() == Format::Weak {
                grow(&mut m.weaklings, 1)?;
                m.weaklings.push((k, strong));
            }
            // Every slot is settled; only the strong ones reach.
            for (j, cell) in slots.iter().enumerate() {
                let w = self.final_word(cell.get(), &mut m.out);
                cell.set(w);
                if j < strong {
                    m.reach(&self.space, w.as_private())?;
                }
            }
            // An ephemeron's slots reach once its key is reached (by now, or later).
            if m.fire && body.format() == Format::Ephemeron && !slots.is_empty() {
                if self.key_reached(m, k) {
                    self.reach_slots(m, k)?;
                } else {
                    grow(&mut m.ephemerons, 1)?;
                    m.ephemerons.push(k);
                }
            }
        }
        Ok(())
    }

    /// Sets to nil each weak slot, of the weak objects the mark reached, that names a
    /// private object the mark did not reach (and which the sweep will free). Slots naming
    /// immediates and base objects stand. Each weak object that had a slot cleared is
    /// appended to `mourners`, if there are mourners to take, once. Allocates nothing (the
    /// mourners' room is reserved).
    fn clear_weak(&self, m: &mut Marking<'_>, mut mourners: Option<&mut Vec<Value>>) {
        let Some((_, nil)) = m.weak else { return };
        let id = self.id();
        for &(k, strong) in &m.weaklings {
            let Some(body) = self.space.object(k) else {
                continue;
            };
            let mut any = false;
            for cell in body.slots().iter().skip(strong) {
                if let Some(named) = cell.get().as_private()
                    && !(self.space.is_live(named) && m.marks.has(named.key()))
                {
                    cell.set(nil);
                    m.out.cleared += 1;
                    any = true;
                }
            }
            if any && let Some(list) = mourners.as_deref_mut() {
                list.push(Value::owned(Word::private(k), id));
                m.out.weak_mourners += 1;
            }
        }
    }

    /// What follows freeing entries: the arenas tidied, host objects and commit records of
    /// freed entries dropped, and the tenant's statistics told.
    fn after_sweep(&mut self, out: &CollectStats) {
        self.space.tidy();
        self.drop_dead_hosts();
        let space = &self.space;
        if let Some(c) = self.cold.as_mut() {
            c.committed.retain(|&k| space.get(k).is_some());
            c.stub_aux
                .retain(|&k, _| matches!(space.get(k), Some(State::Stub(_))));
        }
        let cold = self.cold_mut();
        sub(&mut cold.stats.private_objects, out.freed);
        sub(&mut cold.stats.private_bytes, out.freed_bytes);
        add(&mut cold.stats.collected, out.freed);
    }

    /// Points the table's entry `k`, if it is a forwarder to another forwarder (a private
    /// one, or a base object this tenant diverted), straight at the chain's end, and the
    /// chain's links with it ([`Tenant::compress`]). A table entry is never freed (a base
    /// object, which no collection patches, may refer to it), so without this every
    /// `become_forward` onto the end of its chain (a class redefined again and again) would
    /// keep one more forwarder for good, and every read through the base reference would
    /// walk them all. A table entry is pointed so whatever its target: no commit leaves one
    /// (a commit refuses a base object forwarded by become and empties the table) and an
    /// abort frees them all; a forwarder a commit left, pointed at a base object and kept by
    /// an abort, is never a table entry.
    fn shorten(&self, k: PrivateKey, out: &mut CollectStats) {
        let Some(State::Forwarded(t)) = self.space.get(k) else {
            return;
        };
        if let Ok(Some(end)) = self.forwarded(t) {
            self.space.retarget(k, end);
            self.compress(t, end);
            out.patched += 1;
        }
    }

    /// `w`, or the final target if it is a forwarder (whose chain is then pointed at it,
    /// [`Tenant::compress`]).
    fn final_word(&self, w: Word, out: &mut CollectStats) -> Word {
        match self.forwarded(w) {
            Ok(Some(t)) => {
                self.compress(w, t);
                out.patched += 1;
                t
            }
            _ => w,
        }
    }

    /// Points the forwarders on the chain from `w` to its end `end` straight at `end`, so
    /// that the next word holding any part of the chain is settled in a step or two:
    /// without it every slot holding the head of a chain of `m` becomes (an object becomed
    /// onto a new one again and again) walked all `m`, and a collection of `n` such slots
    /// took O(n * m), not O(private objects and their slots). Pointed so: a base object's
    /// table entry (as [`Tenant::shorten`] points one), and any other forwarder whose
    /// target is a private word; a forwarder outside the table whose target is a base
    /// object (one a commit left, which an abort keeps, must not come to name an object the
    /// abort frees) is left as it is, and the walk goes on past it. Allocates nothing, and
    /// no read can tell.
    fn compress(&self, mut w: Word, end: Word) {
        // Each step follows one link of a chain already walked to `end`: the bound is the
        // one `locate_word` walks it within.
        for _ in 0..2 * self.space.len() + 2 {
            if w == end {
                return;
            }
            let (k, in_table) = match w.decode() {
                Decoded::Private(k) => (k, false),
                Decoded::Base(x) if self.table.may_contain(x) => match self.table_key(x) {
                    Some(k) => (k, true),
                    None => return,
                },
                _ => return,
            };
            let Some(State::Forwarded(t)) = self.space.get(k) else {
                return;
            };
            if (in_table || t.is_private()) && t != end {
                self.space.retarget(k, end);
            }
            w = t;
        }
    }
}
