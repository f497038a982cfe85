//! A tenant's reads borrowed for a loop: [`TenantReader`].

use crate::space::Obj;
use crate::{Header, Result, Tenant};
use cowheap_forwarders::{DivertMarks, FilterView, MarksView};
use cowheap_heap::{Format, HeapView, ObjectSize, Value, Word};

/// A tenant's reads, borrowed for a loop that makes many of them.
///
/// Every read of a [`Tenant`] begins inline with a test of the base object's mark and a read
/// in place, and needs the tenant's fields for it: the marks' address and length, the base's
/// words' address and length, and, for an object another tenant of its lane diverted, the
/// table's filter. A loop of [`Tenant::slot`] keeps those fields in its own frame too, beside the
/// fields of the tenant's other inline paths (a private object's first of all), so it makes
/// more tests and loads a read. A `TenantReader` holds only what a read in place needs, by
/// value, reads its tenant's fields inline only for a private object's reads and under the
/// tenant's own marks, and otherwise reaches its tenant through a call the
/// compiler is told is cold: a loop that takes one before it starts keeps those fields in
/// registers, tests the read in place first, and loads nothing from the tenant for it.
/// That closes most of what [`Tenant::slot`] adds to a flat heap's read (measured in
/// `benches/interleaved.rs`: 1.1-1.2x a flat heap's time through a reader, 1.9-2.5x through
/// [`Tenant::slot`], on the machine of the twenty-ninth step in docs/ARCHITECTURE.md). A
/// reader is for loops that read mostly base objects: a loop that reads mostly private
/// objects' slots reads them faster through the tenant itself (the same bench: 80.9
/// instructions a pair of private slot reads through a reader, 64.6 through
/// [`Tenant::slot`]; a copy read by a base reference 130.3 and 124.3); a private object's
/// size costs about the same either way (30 through a reader, 31 through [`Tenant::size`]).
///
/// Each read answers exactly what the tenant's read of the same name answers. A base object
/// this tenant has not diverted is read in place when its shared mark is clear, or when it
/// is set (another tenant diverted it) and this tenant's lane in it is clear, or its lane is
/// set (a tenant of its lane diverted it) and this tenant's filter says it did not. A slot
/// of a live private object of this tenant is read inline too when the word it holds is
/// settled without a table probe ([`Tenant`]'s quick settling: an immediate, a private word
/// while the space holds no forwarder, a base word this tenant did not divert), and so are
/// such an object's class, size, format, header, identity hash and bytes. A word the quick
/// settling leaves (a private word while the space holds a forwarder, after a become until
/// a collection; a base word the table's filter may hold) goes to a cold call that is passed
/// the word alone and settles it as the tenant's own inline path does (the key's record; a
/// probe of the table). Anything else (this tenant's copy through a base reference, a slot
/// to patch: a forwarder's word or a base word this tenant diverted; a private reference to
/// a forwarder or to a swapped-out segment's root stub, an object a version changed, an
/// immediate's class, an error) falls back to the tenant, out of line: to the out-of-line
/// half of its read of that name, past the inline tests the reader has made itself. The
/// `try_` reads answer only a base object read in place, with no call at all, and `None`
/// for everything else, errors included.
///
/// Under [`cowheap_forwarders::MarkPolicy::Private`], or while the tenant records its reads
/// ([`Tenant::record_reads`]), the shared marks are not the reader's to read: its `try_`
/// reads answer nothing, and its other reads test the tenant's own marks inline, as the
/// tenant does, reading in place where they allow (a recording tenant's allow nothing, so
/// each read of a base object reaches the tenant, which records it).
///
/// The borrow keeps the tenant from writing while the reader lives, but for a
/// [`TenantWriter`](crate::TenantWriter)'s later writes, which write no base object and which
/// the reader's reads of private objects see at once (through the words' cells). So what the
/// reader reads in place stays what the tenant reads: another tenant's write only diverts an
/// object, which the reader sees in the shared mark at its next read of it.
///
/// ```
/// use cowheap_forwarders::Base;
/// use cowheap_heap::{synth, ObjectIndex, Value};
/// use cowheap_tenants::Tenant;
///
/// let base = Base::new(synth::image(1_000, 1));
/// let mut t = Tenant::fork(&base);
/// let (a, b) = (Value::base(ObjectIndex::from_u32(7)), Value::base(ObjectIndex::from_u32(8)));
/// t.set_slot(b, 0, Value::int(42)).unwrap(); // b is now this tenant's copy
///
/// let r = t.reader();
/// // An undiverted base object is read in place; the copy is read by the tenant.
/// assert_eq!(r.try_slot(a, 0).map(|v| v.word()), Some(t.slot(a, 0).unwrap().word()));
/// assert!(r.try_slot(b, 0).is_none());
/// assert_eq!(r.slot(b, 0).unwrap().word(), Value::int(42).word());
/// assert_eq!(r.class_of(a).unwrap().word(), t.class_of(a).unwrap().word());
/// ```
#[derive(Clone, Copy)]
pub struct TenantReader<'a> {
    /// The shared marks, or none under the private policy (or while the tenant records
    /// its reads), so that no base read there is made in place by them.
    marks: MarksView<'a>,
    /// The base's object words.
    heap: HeapView<'a>,
    /// The table's filter: a base object whose shared mark and this tenant's lane in it are
    /// set is still read in place if this tenant's filter says it did not divert it
    /// (another tenant of its lane did).
    filter: FilterView<'a>,
    tenant: &'a Tenant,
    /// The tenant's lane in the shared marks, held by value: past a set mark every read
    /// uses it (a slot's read keeps it in the mark word, [`TenantReader::slot_in_place`];
    /// the others test it), and a load from the tenant there cost more than one from the
    /// loop's own frame (the twenty-sixth step).
    lane: u64,
    /// The tenant has its own marks (the private policy, or a recording tenant): a base
    /// read not made in place is tested against them inline, by [`Tenant::in_place`].
    own_marks: bool,
}

impl std::fmt::Debug for TenantReader<'_> {
    /// The tenant's id and the sizes of what the reader holds, not their contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantReader")
            .field("tenant", &self.tenant.id)
            .field("marks", &self.marks)
            .field("heap", &self.heap)
            .field("filter", &self.filter)
            .finish()
    }
}

impl<'a> TenantReader<'a> {
    /// A reader of `tenant`; with `own_marks` (the tenant's `own_marks` word is set), one
    /// that reads nothing in place by the shared marks and tests the tenant's own instead.
    pub(crate) fn new(tenant: &'a Tenant, own_marks: bool) -> TenantReader<'a> {
        TenantReader {
            marks: if own_marks {
                MarksView::NONE
            } else {
                tenant.marks.view()
            },
            heap: tenant.reader.view(),
            filter: tenant.table.filter_view(),
            tenant,
            lane: tenant.lane,
            own_marks,
        }
    }

    /// The tenant this reader reads.
    pub fn tenant(self) -> &'a Tenant {
        self.tenant
    }

    /// The header offset of `obj` if it is a base object this tenant reads in place, as
    /// [`Tenant`]'s inline reads find it: one compare bounds a base reference's index (and
    /// refuses every other word), one load, one test of the sign; with the shared mark set,
    /// a test of the tenant's lane in it, and with that set too, the table's filter. What
    /// is left is the offset, which every in-place read bounds again
    /// by the words it loads (for an object a version changed, the committed bit left above
    /// it puts it past every heap, so the read goes to the tenant, which reads the version).
    #[inline(always)]
    fn in_place(self, obj: Value) -> Option<u64> {
        let wide = obj.word().base_index_wide();
        let entry = self.marks.entry_wide(wide)?;
        if entry & DivertMarks::DIVERTED == 0 {
            return Some(entry);
        }
        if entry & self.lane == 0 {
            return Some(entry & DivertMarks::IN_PLACE);
        }
        (!self.filter.may_contain_wide(wide)).then_some(entry & DivertMarks::IN_PLACE)
    }

    /// Pointer slot `i` of `obj` if `obj` is a base object this reader reads in place (its
    /// shared mark clear, or set by another tenant and this tenant's lane or filter clear),
    /// read with no call; `None` for anything else, which [`TenantReader::slot`] reads.
    /// Time: O(1), three loads (more past a set mark and lane).
    #[inline(always)]
    pub fn try_slot(self, obj: Value, i: usize) -> Option<Value> {
        let wide = obj.word().base_index_wide();
        let entry = self.marks.entry_wide(wide)?;
        self.slot_in_place(wide, entry, i).map(Value::shared)
    }

    /// Slot `i` of a base object this tenant reads in place, whose index (widened) is
    /// `wide` and whose shared mark word is `entry`; `None` if the index is out of range,
    /// this tenant may have diverted the object, or a version changed it.
    ///
    /// With the diverted bit clear, the word is the offset. With it set, the word kept to
    /// its offset, its committed bit and this tenant's lane is still the offset for an
    /// object no tenant of this lane diverted, read with no test of the lane, and else a
    /// number past every heap, which the read's bounded loads refuse as they refuse any
    /// offset out of range. Only then is the lane tested: set alone (no version changed the
    /// object), with this tenant's filter clear (another tenant of its lane diverted it),
    /// the object is still read in place. An object a version changed keeps its committed
    /// bit, and goes to the tenant, which reads the version. (The other reads test the lane
    /// first, [`TenantReader::in_place`]: the thirty-second step of docs/ARCHITECTURE.md
    /// says why.)
    #[inline(always)]
    fn slot_in_place(self, wide: u64, entry: u64, i: usize) -> Option<Word> {
        if entry & DivertMarks::DIVERTED == 0 {
            return self.heap.slot_at(entry, i);
        }
        let kept = entry & (DivertMarks::IN_PLACE | self.lane);
        if let Some(w) = self.heap.slot_at(kept, i) {
            return Some(w);
        }
        let offset = kept ^ self.lane;
        if offset <= DivertMarks::OFFSET && !self.filter.may_contain_wide(wide) {
            return self.heap.slot_at(offset, i);
        }
        None
    }

    /// [`Tenant::slot`]: read in place as [`TenantReader::try_slot`] reads, by the tenant for
    /// anything else. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::slot`].
    #[inline(always)]
    pub fn slot(self, obj: Value, i: usize) -> Result<Value> {
        // A base reference in range of the marks: read in place, or else by the tenant (it
        // is no private reference, and the tenant's own marks are not this reader's).
        let wide = obj.word().base_index_wide();
        if let Some(entry) = self.marks.entry_wide(wide) {
            if let Some(w) = self.slot_in_place(wide, entry, i) {
                return Ok(Value::shared(w));
            }
            return slot_by_tenant(self.tenant, obj, i);
        }
        // A slot of a live private object of this tenant (a resolved copy, a new object), as
        // the tenant's own first inline path reads it, but settled without a probe of the
        // table or a key's record inline: a word that needs one is settled by a cold call
        // given the word alone, and a slot to patch, or a reference the tenant would refuse,
        // goes to the tenant's own inline path. A base reference goes past it.
        let t = self.tenant;
        if let Some(k) = obj.key_for(t.id) {
            if let Some(cell) = t.space.slot_of(k, i) {
                let w = cell.get();
                if let Some(v) = t.settle_quick(w) {
                    return Ok(v);
                }
                if let Some(v) = settle_by_tenant(t, w) {
                    return Ok(v);
                }
            }
            return private_slot_by_tenant(t, obj, i);
        }
        if self.own_marks
            && let Some(offset) = t.in_place(obj)
            && let Some(w) = self.heap.slot_at(offset, i)
        {
            return Ok(Value::shared(w));
        }
        slot_by_tenant(t, obj, i)
    }

    /// The class of `obj` if it is a base object this reader reads in place (as
    /// [`TenantReader::try_slot`]), read with no call; `None` for anything else. Time: O(1),
    /// two loads (more past a set mark).
    #[inline(always)]
    pub fn try_class_of(self, obj: Value) -> Option<Value> {
        let offset = self.in_place(obj)?;
        // A base's class word belongs to no tenant, as [`Tenant::class_of`] answers it.
        self.heap.class_at(offset).map(Value::shared)
    }

    /// [`Tenant::class_of`]: read in place as [`TenantReader::try_class_of`] reads, by the
    /// tenant for anything else. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::class_of`].
    #[inline(always)]
    pub fn class_of(self, obj: Value) -> Result<Value> {
        if let Some(v) = self.try_class_of(obj) {
            return Ok(v);
        }
        // A live private object of this tenant, as the tenant's own second path reads it (an
        // interpreter's contexts and new objects).
        if let Some(body) = self.tenant.own_body(obj) {
            return Ok(Value::owned(body.class(), self.tenant.id));
        }
        self.read_rest(
            obj,
            |heap, offset| heap.class_at(offset).map(Value::shared),
            Tenant::class_of_slow,
        )
    }

    /// [`Tenant::size`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::size`].
    #[inline(always)]
    pub fn size(self, obj: Value) -> Result<ObjectSize> {
        self.read(obj, HeapView::size_at, Obj::size, Tenant::size_slow)
    }

    /// [`Tenant::format`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::format`].
    #[inline(always)]
    pub fn format(self, obj: Value) -> Result<Format> {
        self.read(obj, HeapView::format_at, Obj::format, Tenant::format_slow)
    }

    /// [`Tenant::header`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::header`].
    #[inline(always)]
    pub fn header(self, obj: Value) -> Result<Header> {
        let id = self.tenant.id;
        self.read(
            obj,
            |heap, offset| {
                Some(Header {
                    class: Value::shared(heap.class_at(offset)?),
                    size: heap.size_at(offset)?,
                    format: heap.format_at(offset)?,
                })
            },
            |body| Header {
                class: Value::owned(body.class(), id),
                size: body.size(),
                format: body.format(),
            },
            Tenant::header_slow,
        )
    }

    /// [`Tenant::identity_hash`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::identity_hash`].
    #[inline(always)]
    pub fn identity_hash(self, obj: Value) -> Result<u32> {
        self.read(
            obj,
            HeapView::hash_at,
            Obj::hash,
            Tenant::identity_hash_slow,
        )
    }

    /// [`Tenant::bytes`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::bytes`].
    #[inline(always)]
    pub fn bytes(self, obj: Value) -> Result<&'a [u8]> {
        self.read(obj, HeapView::bytes_at, Obj::bytes, Tenant::bytes_slow)
    }

    /// One read of `obj`: `at` of its header offset in place if this reader reads it there
    /// and `at` answers; else `own` of its body if it is a live private object of this
    /// tenant named by its own key (the tenant's own second inline path); else the tenant's
    /// read `slow`. The shape of every read but `slot` and `class_of`, whose in-place halves
    /// are public as `try_` reads.
    #[inline(always)]
    fn read<T>(
        self,
        obj: Value,
        at: impl Fn(HeapView<'a>, u64) -> Option<T>,
        own: impl FnOnce(Obj<'a>) -> T,
        slow: impl FnOnce(&'a Tenant, Value) -> Result<T>,
    ) -> Result<T> {
        if let Some(offset) = self.in_place(obj)
            && let Some(v) = at(self.heap, offset)
        {
            return Ok(v);
        }
        if let Some(body) = self.tenant.own_body(obj) {
            return Ok(own(body));
        }
        self.read_rest(obj, at, slow)
    }

    /// What a read leaves when the reader's own test did not read in place: under the
    /// tenant's own marks, their inline test and a read in place; else the out-of-line half
    /// of the tenant's read (`slow`), called out of line and marked cold. The mark matters
    /// more than the call: a call the compiler takes for a common one makes a caller's loop
    /// keep the reader's fields in its stack frame and reload them at every read, where past
    /// a cold call they stay in registers and are saved only around it (measured in the
    /// twenty-sixth step of docs/ARCHITECTURE.md).
    #[inline(always)]
    fn read_rest<T>(
        self,
        obj: Value,
        at: impl Fn(HeapView<'a>, u64) -> Option<T>,
        slow: impl FnOnce(&'a Tenant, Value) -> Result<T>,
    ) -> Result<T> {
        if self.own_marks
            && let Some(offset) = self.tenant.in_place(obj)
            && let Some(v) = at(self.heap, offset)
        {
            return Ok(v);
        }
        by_tenant(self.tenant, obj, slow)
    }
}

/// `slow(tenant, obj)`, out of line and cold: [`TenantReader::read_rest`]'s call, of the
/// tenant read's own out-of-line half (`Tenant::size_slow` for [`TenantReader::size`]).
#[cold]
#[inline(never)]
fn by_tenant<'a, T>(
    tenant: &'a Tenant,
    obj: Value,
    slow: impl FnOnce(&'a Tenant, Value) -> Result<T>,
) -> Result<T> {
    slow(tenant, obj)
}

/// [`Tenant::slot`]'s out-of-line half (`Tenant::slot_slow`), called cold:
/// [`TenantReader::slot`]'s call for everything but a private reference of this tenant (a
/// base reference, an immediate, another tenant's reference, a reserved word). The reader
/// has made the tests of the tenant's inline paths already (the read in place, and the
/// tenant's own marks), so the call goes past them.
#[cold]
#[inline(never)]
fn slot_by_tenant(tenant: &Tenant, obj: Value, i: usize) -> Result<Value> {
    tenant.slot_slow(obj, i)
}

/// The word read from a private slot settled in full, as [`Tenant::slot`]'s inline path
/// settles it, out of line and cold: a private word while the space holds a forwarder
/// (after a become, until a collection), found by its key's record; a base word whose
/// filter said "maybe", by a probe of the table. Only the word is passed, so the call
/// saves few registers and the slot is not found again; and the quick test the reader made
/// inline is not made again ([`Tenant::settle_past_quick`]).
#[cold]
#[inline(never)]
fn settle_by_tenant(tenant: &Tenant, w: Word) -> Option<Value> {
    tenant.settle_past_quick(w)
}

/// [`Tenant::slot`] of a private reference of this tenant, out of line and cold: a slot not
/// found in a live object (a reference to a forwarder, a stub or a collected object, an
/// index out of range), or one whose word neither settling answers (a forwarder's word or a
/// base word this tenant diverted, to patch; a stub's word, answered as it is), read again
/// by the tenant, which patches the slot or works out the answer or the precise error.
#[cold]
#[inline(never)]
fn private_slot_by_tenant(tenant: &Tenant, obj: Value, i: usize) -> Result<Value> {
    tenant.slot(obj, i)
}
