//! A tenant's reads borrowed for a loop: [`TenantReader`].

use crate::{Header, Result, Tenant};
use cowheap_forwarders::{DivertMarks, FilterView, MarksView};
use cowheap_heap::{Format, HeapView, ObjectSize, Value};

/// A tenant's reads, borrowed for a loop that makes many of them.
///
/// Every read of a [`Tenant`] begins inline with a test of the base object's mark and a read
/// in place, and needs the tenant's fields for it: the marks' address and length, the base's
/// words' address and length, and, for an object another tenant of its lane diverted, the
/// table's filter. A loop of [`Tenant::slot`] keeps those fields in its own frame too, beside the
/// fields of the tenant's other inline paths (a private object's first of all), so it makes
/// more tests and loads a read. A `TenantReader` holds only what a read in place needs, by
/// value: a loop that takes one before it starts keeps them in registers or in its own stack
/// frame, tests the read in place first, and loads nothing from the tenant for it (but its
/// lane, past an object's set mark). When the
/// reads miss the caches that closes a good part of what [`Tenant::slot`] adds to a flat
/// heap's read (measured in `benches/interleaved.rs`: 1.3x a flat heap's time through a
/// reader, 1.4-1.6x through [`Tenant::slot`]; see docs/ARCHITECTURE.md).
///
/// Each read answers exactly what the tenant's read of the same name answers. A base object
/// this tenant has not diverted is read in place when its shared mark is clear, or when it
/// is set (another tenant diverted it) and this tenant's lane in it is clear, or its lane is
/// set (a tenant of its lane diverted it) and this tenant's filter says it did not; anything
/// else (a private object, this tenant's copy, an object a version changed, an immediate, an
/// error) falls back to the tenant's own read, inlined. The `try_` reads answer only the
/// first case, with no call at all, and `None` for everything else, errors included.
///
/// Under [`cowheap_forwarders::MarkPolicy::Private`], or while the tenant records its reads
/// ([`Tenant::record_reads`]), no base read is made in place: each falls back to the tenant,
/// which consults its own marks or records the read.
///
/// The borrow keeps the tenant from writing while the reader lives, so what the reader reads
/// in place stays what the tenant reads: another tenant's write only diverts an object, which
/// the reader sees in the shared mark at its next read of it.
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
    /// its reads), so that every base read there goes to the tenant.
    marks: MarksView<'a>,
    /// The base's object words.
    heap: HeapView<'a>,
    /// The table's filter: a base object whose shared mark and this tenant's lane in it are
    /// set is still read in place if this tenant's filter says it did not divert it
    /// (another tenant of its lane did).
    filter: FilterView<'a>,
    tenant: &'a Tenant,
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
    /// that reads nothing in place.
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
        if entry & self.tenant.lane == 0 {
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
        let offset = self.in_place(obj)?;
        self.heap.slot_at(offset, i).map(Value::shared)
    }

    /// [`Tenant::slot`]: read in place as [`TenantReader::try_slot`] reads, by the tenant for
    /// anything else. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::slot`].
    #[inline(always)]
    pub fn slot(self, obj: Value, i: usize) -> Result<Value> {
        match self.try_slot(obj, i) {
            Some(v) => Ok(v),
            None => self.tenant.slot(obj, i),
        }
    }

    /// The class of `obj` if it is a base object this reader reads in place (as
    /// [`TenantReader::try_slot`]), read with no call; `None` for anything else. Time: O(1),
    /// two loads (more past a set mark).
    #[inline(always)]
    pub fn try_class_of(self, obj: Value) -> Option<Value> {
        let offset = self.in_place(obj)?;
        self.heap
            .class_at(offset)
            .map(|c| Value::owned(c, self.tenant.id))
    }

    /// [`Tenant::class_of`]: read in place as [`TenantReader::try_class_of`] reads, by the
    /// tenant for anything else. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::class_of`].
    #[inline(always)]
    pub fn class_of(self, obj: Value) -> Result<Value> {
        match self.try_class_of(obj) {
            Some(v) => Ok(v),
            None => self.tenant.class_of(obj),
        }
    }

    /// [`Tenant::size`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::size`].
    #[inline(always)]
    pub fn size(self, obj: Value) -> Result<ObjectSize> {
        self.read(obj, HeapView::size_at, Tenant::size)
    }

    /// [`Tenant::format`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::format`].
    #[inline(always)]
    pub fn format(self, obj: Value) -> Result<Format> {
        self.read(obj, HeapView::format_at, Tenant::format)
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
                    class: Value::owned(heap.class_at(offset)?, id),
                    size: heap.size_at(offset)?,
                    format: heap.format_at(offset)?,
                })
            },
            Tenant::header,
        )
    }

    /// [`Tenant::identity_hash`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::identity_hash`].
    #[inline(always)]
    pub fn identity_hash(self, obj: Value) -> Result<u32> {
        self.read(obj, HeapView::hash_at, Tenant::identity_hash)
    }

    /// [`Tenant::bytes`], read as [`TenantReader::slot`] reads. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::bytes`].
    #[inline(always)]
    pub fn bytes(self, obj: Value) -> Result<&'a [u8]> {
        self.read(obj, HeapView::bytes_at, Tenant::bytes)
    }

    /// One read of `obj`: `at` of its header offset in place if this reader reads it there
    /// and `at` answers, else the tenant's read `slow`. The shape of every read but `slot`
    /// and `class_of`, whose in-place halves are public as `try_` reads.
    #[inline(always)]
    fn read<T>(
        self,
        obj: Value,
        at: impl FnOnce(HeapView<'a>, u64) -> Option<T>,
        slow: impl FnOnce(&'a Tenant, Value) -> Result<T>,
    ) -> Result<T> {
        if let Some(offset) = self.in_place(obj)
            && let Some(v) = at(self.heap, offset)
        {
            return Ok(v);
        }
        slow(self.tenant, obj)
    }
}
