//! Stubs: the tenant's half of swapping a segment out, reading it while it is out, and
//! faulting it back in.
//!
//! Swapping a segment out (Squeak's ImageSegment in its *active* state) leaves a **stub** in
//! the tenant for each object whose body the segment now holds: the object's key, with its
//! identity, and the segment's id. Every reference in the tenant (slots, roots, handles,
//! the indirection table) keeps naming the same key, so nothing outside the segment changes.
//! The segment crate's swap-out stubs every member, roots and the rest (Squeak's *root
//! stubs* are the roots'), so that every reference a segment's bodies hold names a key
//! that stands.
//!
//! - [`Tenant::stub`] turns a private object into a stub of a segment (its body is dropped:
//!   the caller has saved it in the segment first).
//! - **Reads by `&self` through a stub are transparent** with a segment reader
//!   ([`Tenant::set_segment_reader`]): the first one makes a read-only [`SegmentView`] of
//!   the segment (its bodies in the tenant's terms), kept in an append-only map until the
//!   tenant is taken mutably to change the segment's stubs or to collect, and every read
//!   through a stub of the segment answers from it; the segment stays out. Without a
//!   reader (or with views turned off, [`Tenant::set_stub_views`]) such a read answers
//!   [`Error::Swapped`] naming the segment. Identity needs no body: a stub is identical to
//!   itself, can be stored, pinned and compared without a view or a fault.
//! - [`Tenant::fill_stub`] gives a stub its body back: the body of an object the caller has
//!   just brought back from the segment, which then forwards to the stub (so references
//!   among the objects brought back lead to the stub's key: identity is kept).
//! - A **fault handler** ([`Tenant::set_fault_handler`]) is what brings a segment back:
//!   [`Tenant::fault_in`] calls it, a write through a stub calls it and retries, and
//!   [`Tenant::with_faults`] runs reads with it (views off), faulting in what they touch
//!   and running them again. The segment crate's swapper supplies the handler and the
//!   reader; this module knows no format.
//! - **A collection keeps a segment's stubs together**: a stub's body, in its segment,
//!   names the other members by their stubs, so the first stub of a segment reached marks
//!   them all, and a segment nothing reaches loses them all.
//!
//! Why reads by `&self` do not fault in: bringing a segment back appends its members to the
//! arenas, which may move them, while a caller may hold what an earlier read handed out (a
//! slice of the byte arena). A view lives in its own box, which the map never moves or
//! drops while the tenant is borrowed, so its borrows stay valid; a write, which takes the
//! tenant mutably, brings the segment back for real.
//!
//! Stubs cost what a forwarder costs (16 bytes), are saved in snapshots (entry kind 2), and
//! cost the read path nothing: a stub is not an object, so the inlined paths pass it to the
//! out-of-line path, which reads the view or reports it.

use crate::space::{FORWARDER_COST, Obj, Space, State, cost};
use crate::stats::sub;
use crate::tenant::Loc;
use crate::{Error, Result, Tenant};
use cowheap_heap::{Format, ObjectSize, PrivateKey, TenantId, Value, Word};
use rustc_hash::FxHashMap;
use std::cell::Cell;

/// Brings a swapped-out segment back into a tenant: given the tenant and the segment's id,
/// it must read the segment's objects in and [`Tenant::fill_stub`] each of its stubs.
pub struct FaultHandler(Box<HandlerFn>);

/// The closure a [`FaultHandler`] holds.
type HandlerFn = dyn FnMut(&mut Tenant, u64) -> Result<()> + Send;

impl FaultHandler {
    /// A handler from a closure.
    pub fn new(f: impl FnMut(&mut Tenant, u64) -> Result<()> + Send + 'static) -> FaultHandler {
        FaultHandler(Box::new(f))
    }
}

/// Where a tenant keeps its fault handler. While the handler runs it is out of the slot
/// (it is given the tenant); `set` says whether it set or cleared the tenant's handler
/// meanwhile, so that what it set is not overwritten when it is put back.
#[derive(Debug, Default)]
pub(crate) struct FaultSlot {
    handler: Option<FaultHandler>,
    set: bool,
}

impl std::fmt::Debug for FaultHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultHandler")
    }
}

/// A read-only image of a segment that is out, for reads by `&self` through its stubs
/// ([`Tenant::set_segment_reader`]): each member's body, in the tenant's terms (its
/// references are the tenant's words: the stubs of the other members, objects outside the
/// segment, base objects), keyed by the member's stub. Made by [`Tenant::segment_view`],
/// which checks every word; held by the tenant until the segment's stubs change (a fault,
/// a swap-out) or the next collection, and never written but for lazy become's patching of
/// a forwarder it holds, as a live object's slot is patched.
///
/// A view belongs to the tenant that made it: its words are that tenant's references, and
/// its stubs are keys of that tenant, which another tenant's keys may equal. A reader that
/// answers a view another tenant made is refused as one that answers a view of another
/// segment is: the read answers [`Error::Swapped`], and no word of the view is read.
#[derive(Debug)]
pub struct SegmentView {
    segment: u64,
    /// The tenant that made it, whose references its words are.
    tenant: TenantId,
    /// The members' bodies, laid out as the tenant's own.
    space: Space,
    /// By the index of a member's stub key: the stub's key, and the body's key in `space`.
    members: FxHashMap<u32, (PrivateKey, PrivateKey)>,
}

impl SegmentView {
    /// The segment it is an image of.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// How many members it holds.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True if it holds no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The body of the member whose stub is `k`.
    fn body(&self, k: PrivateKey) -> Option<Obj<'_>> {
        match self.members.get(&k.key()) {
            Some(&(stub, body)) if stub == k => self.space.object(body),
            _ => None,
        }
    }

    /// Heap bytes held: the bodies, and the map of members, a slot (a stub's index and two
    /// keys) and its control byte per place.
    fn memory_bytes(&self) -> usize {
        self.space.memory_bytes()
            + self.members.capacity() * (size_of::<(u32, (PrivateKey, PrivateKey))>() + 1)
    }
}

/// One member of a segment that is out, as a [`SegmentReader`] gives it to
/// [`Tenant::segment_view`]: its stub, and the body it had when it was swapped out.
#[derive(Clone, Copy, Debug)]
pub struct ViewMember<'a> {
    /// The member's stub in the tenant.
    pub stub: Value,
    /// Its class.
    pub class: Value,
    /// Its format.
    pub format: Format,
    /// Its identity hash.
    pub hash: u32,
    /// Its pointer slots.
    pub slots: &'a [Value],
    /// Its raw bytes.
    pub bytes: &'a [u8],
}

/// Reads a segment that is out without bringing it back: given the tenant (by `&self`) and
/// the segment's id, a [`SegmentView`] of its members ([`Tenant::segment_view`]). What makes
/// reads through stubs transparent where the tenant is not taken mutably. The closure is
/// called in the middle of a read, so it should only read the tenant: what a shared borrow
/// also allows, a [`crate::TenantWriter`]'s writes, would change the tenant under that read.
pub struct SegmentReader(Box<ReaderFn>);

/// The closure a [`SegmentReader`] holds.
type ReaderFn = dyn Fn(&Tenant, u64) -> Result<SegmentView> + Send;

impl SegmentReader {
    /// A reader from a closure.
    pub fn new(f: impl Fn(&Tenant, u64) -> Result<SegmentView> + Send + 'static) -> SegmentReader {
        SegmentReader(Box::new(f))
    }
}

impl std::fmt::Debug for SegmentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentReader")
    }
}

/// The views a tenant holds, by segment: an append-only map, so a view handed out by
/// `&self` stays where it is until the tenant is taken mutably.
#[derive(Default)]
pub(crate) struct Views {
    map: elsa::FrozenMap<u64, Box<SegmentView>, rustc_hash::FxBuildHasher>,
    /// Bytes the views hold.
    bytes: Cell<usize>,
    /// A view is being made: a read through a stub it makes answers `Swapped`, not a
    /// second reader call.
    making: Cell<bool>,
    /// Reads through stubs answer `Swapped` (inside [`Tenant::with_faults`], whose reads
    /// bring back what they touch).
    off: Cell<bool>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Views({} bytes)", self.bytes.get())
    }
}

impl Views {
    /// Heap bytes the views hold.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Forgets every view (they are made again from their segments when read).
    pub(crate) fn clear(&mut self) {
        self.map.as_mut().clear();
        self.bytes.set(0);
    }

    /// Forgets the view of `segment`.
    fn forget(&mut self, segment: u64) {
        if let Some(v) = self.map.as_mut().remove(&segment) {
            self.bytes
                .set(self.bytes.get().saturating_sub(v.memory_bytes()));
        }
    }
}

impl Tenant {
    /// Makes `root`, a private object, a stub of segment `segment`: its body is dropped
    /// (the caller has saved it in the segment) and every read through a reference to it
    /// answers from the segment's view, if the tenant has a segment reader, or
    /// [`Error::Swapped`], until the segment is faulted in. Identity and references are
    /// kept. Time: O(1).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, Value};
    /// use cowheap_tenants::{Error, Tenant};
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(g).unwrap();
    /// let a = t.alloc_with(class, Format::Pointers, &[Value::int(5)], &[]).unwrap();
    /// t.set_slot(g, 0, a).unwrap();
    /// t.stub(a, 9).unwrap();
    /// assert!(matches!(t.slot(a, 0), Err(Error::Swapped { segment: 9, .. })));
    /// assert!(t.identical(t.slot(g, 0).unwrap(), a).unwrap()); // identity needs no body
    /// let back = t.alloc_with(class, Format::Pointers, &[Value::int(5)], &[]).unwrap();
    /// t.fill_stub(a, back).unwrap();
    /// assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(5));
    /// assert!(t.identical(back, a).unwrap());
    /// ```
    ///
    /// # Errors
    /// [`Error::NotSwappable`] unless `root` leads to a live private object that is no host
    /// object's proxy (take its host object away first, [`Tenant::detach_host`], to swap a
    /// proxy out); [`Error::Swapped`] if it is a stub already; as [`Tenant::slot`] for a
    /// reference that leads nowhere. Nothing changes on error.
    pub fn stub(&mut self, root: Value, segment: u64) -> Result<()> {
        let Loc::Private(k) = self.locate(root)? else {
            return Err(Error::NotSwappable(root.word()));
        };
        let aux = self.body(k)?.aux();
        if self
            .cold
            .as_ref()
            .is_some_and(|c| c.hosts.contains_key(&k.key()))
        {
            return Err(Error::NotSwappable(root.word()));
        }
        if aux != 0 {
            // Room for the stub's bits, had before anything changes.
            self.cold_mut()
                .stub_aux
                .try_reserve(1)
                .map_err(|_| Error::OutOfMemory {
                    bytes: size_of::<(PrivateKey, u32)>() as u64,
                })?;
        }
        let w = self
            .space
            .writable(k)
            .ok_or(Error::NotSwappable(root.word()))?;
        let size = w.stub(segment);
        if aux != 0 {
            self.cold_mut().stub_aux.insert(k, aux);
        }
        sub(
            &mut self.stats_mut().private_bytes,
            cost(size) - FORWARDER_COST,
        );
        self.forget_view(segment);
        Ok(())
    }

    /// Gives stub `stub` the body of `from`, a private object just brought back from the
    /// stub's segment; `from` then forwards to `stub`, so references to it (from the objects
    /// brought back with it) lead to the stub's key. If `from` is a host object's proxy
    /// ([`crate::hosts`]), its host object goes with the body: the stub's key is the proxy
    /// from then on. [`Tenant::fill_stubs`] with one pair. Time: O(log host objects + d) in
    /// a tenant that diverted d base objects.
    ///
    /// # Errors
    /// [`Error::NotSwappable`] unless `stub` is a stub and `from` a live private object
    /// that is no base object's copy; [`Error::OutOfMemory`]; as [`Tenant::slot`] for a
    /// reference that leads nowhere. Nothing changes on error.
    pub fn fill_stub(&mut self, stub: Value, from: Value) -> Result<()> {
        self.fill_stubs(&[(stub, from)])
    }

    /// Gives each stub of `pairs` the body of its object, as [`Tenant::fill_stub`] does,
    /// all or none: every pair is checked and the memory reserved before the first stub is
    /// filled, so a segment's members come back together or not at all (they refer to one
    /// another). Time: O(n log n + n log host objects + d log n) for n pairs in a tenant that
    /// diverted d base objects (each of its copies is checked not to be among the bodies).
    ///
    /// # Errors
    /// [`Error::NotSwappable`] unless every stub is a stub and every object a live private
    /// object that is no base object's copy, each named once; [`Error::OutOfMemory`]; as
    /// [`Tenant::slot`] for a reference that leads nowhere. Nothing changes on error.
    pub fn fill_stubs(&mut self, pairs: &[(Value, Value)]) -> Result<()> {
        let mut keys = Vec::new();
        reserve_for(&mut keys, pairs.len())?;
        for &(stub, from) in pairs {
            // The error names the argument that is not what it must be.
            let Loc::Private(ks) = self.locate(stub)? else {
                return Err(Error::NotSwappable(stub.word()));
            };
            let Loc::Private(kf) = self.locate(from)? else {
                return Err(Error::NotSwappable(from.word()));
            };
            let segment = match self.space.get(ks) {
                Some(State::Stub(segment)) => segment,
                _ => return Err(Error::NotSwappable(stub.word())),
            };
            if !matches!(self.space.get(kf), Some(State::Object(_))) {
                return Err(Error::NotSwappable(from.word()));
            }
            keys.push((ks, kf, segment, stub, from));
        }
        // A base object's copy (or the body a become gave it) is that base object here:
        // filling a stub from it would make the base object one with the stub's root. One
        // pass over the table, each entry looked up among the bodies named.
        if !self.table.is_empty() {
            let mut bodies: Vec<u32> = Vec::new();
            reserve_for(&mut bodies, keys.len())?;
            bodies.extend(keys.iter().map(|&(_, kf, ..)| kf.key()));
            bodies.sort_unstable();
            if let Some((_, entry)) = self
                .table
                .iter()
                .find(|&(_, entry)| bodies.binary_search(&entry).is_ok())
                && let Some(&(.., from)) = keys.iter().find(|&&(_, kf, ..)| kf.key() == entry)
            {
                return Err(Error::NotSwappable(from.word()));
            }
        }
        // Each stub and each object once: a second fill of either would find it changed.
        let mut named: Vec<u32> = Vec::new();
        reserve_for(&mut named, 2 * keys.len())?;
        named.extend(keys.iter().flat_map(|&(ks, kf, ..)| [ks.key(), kf.key()]));
        named.sort_unstable();
        if let Some(w) = named.windows(2).find(|w| w[0] == w[1]) {
            let dup = keys
                .iter()
                .find_map(|&(ks, kf, _, stub, from)| {
                    if ks.key() == w[0] {
                        Some(stub.word())
                    } else {
                        (kf.key() == w[0]).then_some(from.word())
                    }
                })
                .unwrap_or(Word::from_bits(0));
            return Err(Error::NotSwappable(dup));
        }
        // One forwarder word a pair: with the room reserved, no fill below can fail.
        self.space.reserve_words(keys.len())?;
        for &(ks, kf, segment, _, from) in &keys {
            if !self.space.fill(ks, kf)? {
                return Err(Error::NotSwappable(from.word()));
            }
            // The body takes back the bits its stub kept (the segment kept none).
            if let Some(aux) = self.cold.as_mut().and_then(|c| c.stub_aux.remove(&ks))
                && let Some(mut w) = self.space.writable(ks)
            {
                w.set_aux(aux);
            }
            // The view goes with the first stub filled: the stubs left may be filled from
            // bodies that writes through the filled ones change, which the view does not
            // see.
            self.forget_view(segment);
            // The stub now holds the body and `from` is a forwarder: the same charges,
            // swapped. A host object is the body's: it moves to the stub's key (a stub is
            // never a proxy, so nothing is there).
            self.move_host(kf, ks);
        }
        Ok(())
    }

    /// The segment `v` is a stub of, if it is one. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::slot`] for a reference that leads nowhere.
    pub fn stub_segment(&self, v: Value) -> Result<Option<u64>> {
        Ok(match self.locate(v)? {
            Loc::Private(k) => match self.space.get(k) {
                Some(State::Stub(segment)) => Some(segment),
                _ => None,
            },
            Loc::Base(_) => None,
        })
    }

    /// How many stubs segment `segment` has in this tenant. Time: O(1).
    pub fn stubs_of(&self, segment: u64) -> usize {
        self.space.stubs_of(segment)
    }

    /// Every stub with its segment, in key order. Time: O(private keys ever used).
    pub fn stubs(&self) -> impl Iterator<Item = (Value, u64)> + '_ {
        self.space.iter().filter_map(move |(k, s)| match s {
            State::Stub(segment) => Some((Value::owned(Word::private(k), self.id), segment)),
            _ => None,
        })
    }

    /// Sets (or clears) what brings a swapped-out segment back ([`FaultHandler`]). A handler
    /// may call this while it runs (to clear itself after the last segment, or to hand over
    /// to another): what it sets stays. Otherwise the handler is kept after it runs, whether
    /// it succeeds, fails or panics.
    pub fn set_fault_handler(&mut self, handler: Option<FaultHandler>) {
        if handler.is_some() || self.cold.is_some() {
            let slot = &mut self.cold_mut().fault;
            slot.handler = handler;
            slot.set = true;
        }
    }

    /// True if the tenant has a fault handler.
    pub fn has_fault_handler(&self) -> bool {
        self.cold
            .as_ref()
            .is_some_and(|c| c.fault.handler.is_some())
    }

    /// Sets (or clears) what reads a segment that is out without bringing it back
    /// ([`SegmentReader`]). With one, a read by `&self` through a stub (of a root or of any
    /// other member the segment's swap-out stubbed) answers from a [`SegmentView`] of the
    /// segment, made by the reader at the first such read and kept until the segment's
    /// stubs change, the next collection or an abort; without one, it answers
    /// [`Error::Swapped`], as it does when the reader answers a view of another segment or
    /// one another tenant made ([`SegmentView`]). A read the reader itself makes through a
    /// stub of a segment with no view yet answers [`Error::Swapped`] (the reader is never
    /// called inside itself).
    /// Writes through a stub still fault the segment in ([`Tenant::set_fault_handler`]).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, Value};
    /// use cowheap_tenants::stubs::{SegmentReader, ViewMember};
    /// use cowheap_tenants::{Error, Tenant};
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    /// let a = t.alloc_with(class, Format::Pointers, &[Value::int(5)], &[]).unwrap();
    /// t.set_root("a", a).unwrap();
    /// let hash = t.identity_hash(a).unwrap();
    /// t.stub(a, 9).unwrap();
    /// assert!(matches!(t.slot(a, 0), Err(Error::Swapped { segment: 9, .. })));
    ///
    /// // A reader gives the body it had (here, made up again; a swapper reads its file).
    /// t.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, segment| {
    ///     let slots = [Value::int(5)];
    ///     let member = ViewMember { stub: a, class, format: Format::Pointers, hash, slots: &slots, bytes: &[] };
    ///     t.segment_view(segment, [member])
    /// })));
    /// let t = &t; // reads by `&self`
    /// assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(5));
    /// assert_eq!(t.identity_hash(a).unwrap(), hash);
    /// assert_eq!(t.stub_segment(a).unwrap(), Some(9)); // still out
    /// ```
    pub fn set_segment_reader(&mut self, reader: Option<SegmentReader>) {
        if reader.is_some() || self.cold.is_some() {
            let cold = self.cold_mut();
            cold.reader = reader;
            cold.views.clear();
        }
    }

    /// True if the tenant has a segment reader.
    pub fn has_segment_reader(&self) -> bool {
        self.cold.as_ref().is_some_and(|c| c.reader.is_some())
    }

    /// A view of segment `segment` holding `members`, for this tenant's reads only (see
    /// [`SegmentView`]), each checked: its stub must be a stub of `segment` here (each
    /// once), and its class and slots references this tenant can use, as
    /// [`Tenant::alloc_with`] checks them; its format must hold its slots and bytes.
    /// Members not given are not in the view (a read through their stubs answers
    /// [`Error::Swapped`]). Time: O(size of the members).
    ///
    /// # Errors
    /// [`Error::NotSwappable`] for a stub that is no stub of `segment`, or given twice; as
    /// [`Tenant::alloc_with`] for a class, a slot or a layout; [`Error::OutOfMemory`].
    pub fn segment_view<'a>(
        &self,
        segment: u64,
        members: impl IntoIterator<Item = ViewMember<'a>>,
    ) -> Result<SegmentView> {
        let mut view = SegmentView {
            segment,
            tenant: self.id,
            space: Space::default(),
            members: FxHashMap::default(),
        };
        let mut words = Vec::new();
        for m in members {
            let k = match self.locate(m.stub)? {
                Loc::Private(k) if matches!(self.space.get(k), Some(State::Stub(s)) if s == segment) => {
                    k
                }
                _ => return Err(Error::NotSwappable(m.stub.word())),
            };
            let class = self.store_word(m.class)?;
            if !class.is_ref() {
                return Err(cowheap_heap::Error::NotAnObject(class).into());
            }
            words.clear();
            for &v in m.slots {
                words.push(self.store_word(v)?);
            }
            let size = ObjectSize {
                slots: m.slots.len(),
                bytes: m.bytes.len(),
            };
            m.format.check(size)?;
            if size.slots > u32::MAX as usize || size.bytes > u32::MAX as usize {
                return Err(
                    cowheap_heap::Error::TooLarge("an object of 2^32 slots or bytes").into(),
                );
            }
            let body = view.space.insert_object(
                class,
                m.format,
                m.hash,
                size,
                Word::from_bits(1),
                |s, b| {
                    for (cell, &w) in s.iter_mut().zip(&words) {
                        *cell.get_mut() = w;
                    }
                    b.copy_from_slice(m.bytes);
                },
            )?;
            if view.members.insert(k.key(), (k, body)).is_some() {
                return Err(Error::NotSwappable(m.stub.word()));
            }
        }
        Ok(view)
    }

    /// The body a read by `&self` finds at live key `k`, which has none in the space: a
    /// stub's, from its segment's view (made by the reader at the first read), if the
    /// tenant has a reader; otherwise the error [`Tenant::no_body`] gives.
    #[cold]
    #[inline(never)]
    pub(crate) fn stub_body(&self, k: PrivateKey) -> Result<Obj<'_>> {
        let (Some(State::Stub(segment)), Some(cold)) = (self.space.get(k), self.cold.as_deref())
        else {
            return Err(self.no_body(k));
        };
        let views = &cold.views;
        let Some(reader) = cold.reader.as_ref().filter(|_| !views.off.get()) else {
            return Err(self.no_body(k));
        };
        let view = match views.map.get(&segment) {
            Some(v) => v,
            // A read the reader makes through a stub does not call it again.
            None if views.making.get() => return Err(self.no_body(k)),
            None => {
                let made = {
                    // Cleared however the reader returns, a panic included.
                    struct Making<'a>(&'a Cell<bool>);
                    impl Drop for Making<'_> {
                        fn drop(&mut self) {
                            self.0.set(false);
                        }
                    }
                    views.making.set(true);
                    let _making = Making(&views.making);
                    // A reader that cannot read the segment and says `Swapped` names the
                    // stub read through.
                    (reader.0)(self, segment).map_err(|e| match e {
                        Error::Swapped { segment, .. } => Error::Swapped {
                            segment,
                            object: Word::private(k),
                        },
                        e => e,
                    })?
                };
                // A view of another segment, or one another tenant made (its words are that
                // tenant's references), is no view of this stub's body.
                if made.segment != segment || made.tenant != self.id {
                    return Err(self.no_body(k));
                }
                views
                    .bytes
                    .set(views.bytes.get().saturating_add(made.memory_bytes()));
                views.map.insert(segment, Box::new(made))
            }
        };
        view.body(k).ok_or_else(|| self.no_body(k))
    }

    /// Forgets the view of `segment`, if there is one.
    pub(crate) fn forget_view(&mut self, segment: u64) {
        if let Some(c) = self.cold.as_mut() {
            c.views.forget(segment);
        }
    }

    /// Brings segment `segment` back through the fault handler. Time: the handler's, and
    /// O(1) besides.
    ///
    /// # Errors
    /// [`Error::Swapped`] if the tenant has no handler; the handler's error; and
    /// [`Error::Swapped`] if a stub of the segment is left when the handler returns (it must
    /// fill every stub of the segment).
    pub fn fault_in(&mut self, segment: u64) -> Result<()> {
        let Some(c) = self.cold.as_mut() else {
            return Err(Error::Swapped {
                segment,
                object: Word::from_bits(0),
            });
        };
        let Some(mut handler) = c.fault.handler.take() else {
            return Err(Error::Swapped {
                segment,
                object: Word::from_bits(0),
            });
        };
        // Whether a handler running further out (this is a fault from inside it) has set
        // or cleared the tenant's handler: kept for it, so that it does not put itself back
        // over the handler it handed over to once this fault is done.
        let outer = std::mem::replace(&mut c.fault.set, false);
        // The handler is put back however it returns, a panic included, unless it set or
        // cleared the tenant's handler itself.
        let done =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.0(self, segment)));
        let slot = &mut self.cold_mut().fault;
        if !slot.set {
            slot.handler = Some(handler);
        }
        slot.set |= outer;
        let done = done.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        done?;
        if self.space.stubs_of(segment) == 0 {
            return Ok(());
        }
        // The handler left a stub: name one (a walk of the keys, on this error only).
        let left = self
            .stubs()
            .find(|&(_, s)| s == segment)
            .map_or(Word::from_bits(0), |(v, _)| v.word());
        Err(Error::Swapped {
            segment,
            object: left,
        })
    }

    /// Runs `f`, and while it fails with [`Error::Swapped`] and the tenant has a fault
    /// handler, faults that segment in and runs `f` again: what `f` reads through stubs is
    /// brought back (a segment reader's views are not used inside: reads through a stub
    /// answer `Swapped` to `f` until its segment is back). `f` should be a read (or a
    /// write that changes nothing before it fails), since it may run more than once. At most
    /// as many faults as the tenant has stubs.
    ///
    /// # Errors
    /// `f`'s error, or [`Tenant::fault_in`]'s.
    pub fn with_faults<T>(&mut self, mut f: impl FnMut(&mut Tenant) -> Result<T>) -> Result<T> {
        // Reads through stubs answer `Swapped` here, not from a view: what `f` touches is
        // brought back.
        let was = self.set_stub_views(false);
        let mut left = self.space.stub_count();
        // Views are turned back on however `f` returns, a panic included.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loop {
                match f(self) {
                    Err(Error::Swapped { segment, .. }) if left > 0 && self.has_fault_handler() => {
                        left -= 1;
                        if let Err(e) = self.fault_in(segment) {
                            break Err(e);
                        }
                    }
                    r => break r,
                }
            }
        }));
        self.set_stub_views(was);
        r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Turns reads through stubs from their segments' views on (as they are once a reader
    /// is set, [`Tenant::set_segment_reader`]) or off: then they answer [`Error::Swapped`],
    /// for a caller that brings segments back itself (an interpreter faulting in what it
    /// reads, as [`Tenant::with_faults`] does). Answers the setting before. Time: O(1).
    pub fn set_stub_views(&mut self, on: bool) -> bool {
        match self.cold.as_mut() {
            Some(c) => !c.views.off.replace(!on),
            // No cold state: no reader, no views, and views on.
            None if on => true,
            None => !self.cold_mut().views.off.replace(true),
        }
    }
}

/// Room for `n` more items in `v`, reserved fallibly ([`Error::OutOfMemory`]).
fn reserve_for<T>(v: &mut Vec<T>, n: usize) -> Result<()> {
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
    })
}
