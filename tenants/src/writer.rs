//! A tenant's later writes borrowed for a loop: [`TenantWriter`].

use crate::Tenant;
use crate::space::SpaceView;
use cowheap_heap::{ObjectIndex, TenantId, Value, Word};

/// A tenant's later writes, borrowed for a loop that makes many.
///
/// A write the tenant has already paid for (to one of its own private objects: a copy of a
/// base object, a new object) stores a word and changes nothing else, so it needs no
/// exclusive borrow: a private object's words are cells, and a shared borrow of the tenant
/// keeps them where they are (nothing can grow, move or free the arena while it lives). A
/// `TenantWriter` holds what such a write needs by value, the addresses and lengths of the
/// space's key records and words, and the tenant's id: a loop that takes one before it
/// starts keeps them in registers, where a loop of [`Tenant::set_slot`] loads them from the
/// tenant at every write (its `&mut` borrow lets any call in the loop, the out-of-line
/// writes included, change them).
///
/// [`TenantWriter::try_set_slot`] makes [`Tenant::set_slot`]'s write where that write needs
/// no copy, no allocation and no resolving, and answers whether it did:
///
/// - slot `i` of a live private object of this tenant, by its private reference, inline;
/// - slot `i` of this tenant's copy of a base object, by the base reference, through a call
///   to the tenant (a probe of its table, as [`Tenant::set_slot`] makes it);
///
/// and in either case only of a value stored as it is: an immediate, a live private object
/// of this tenant while its space holds no forwarder, or a base object this tenant has not
/// diverted. Anything else (a first write, which copies; a value that must be resolved
/// first; a slot out of range; a reference to a forwarder or a collected object; another
/// tenant's reference; a root stub of a swapped-out segment) changes no slot and no object
/// and answers `false`: the caller then drops the writer and writes through
/// [`Tenant::set_slot`], which makes that write (faulting a segment in, copying a base
/// object) or answers the precise error.
///
/// Measured in `benches/interleaved.rs` (docs/ARCHITECTURE.md, the thirty-fourth step): a
/// private object's later write runs at 1.0-1.2x a flat store's time through a writer,
/// 1.5-1.7x through [`Tenant::set_slot`] (30 and 31 instructions against 22). A write
/// through a base reference runs slower through a writer, 3.7-4.4x against 3.2-3.6x (a
/// probe either way; the writer's loop keeps more registers across the call): a loop that
/// writes mostly through base references is better served by the tenant itself.
///
/// What a [`TenantReader`](crate::TenantReader) taken beside it reads is what the tenant
/// reads: the writer writes no base object, and a reader reads a private object's words
/// through their cells, so it sees the writer's writes at once. A writer stays on its
/// tenant's thread, as a shared borrow of a tenant does (a tenant is not `Sync`):
///
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<cowheap_tenants::TenantWriter<'static>>();
/// ```
///
/// ```
/// use cowheap_forwarders::Base;
/// use cowheap_heap::{synth, ObjectIndex, Value};
/// use cowheap_tenants::Tenant;
///
/// let base = Base::new(synth::image(1_000, 1));
/// let mut t = Tenant::fork(&base);
/// let objects: Vec<Value> = (0..200)
///     .map(|x| Value::base(ObjectIndex::from_u32(x)))
///     .filter(|&v| t.size(v).is_ok_and(|s| s.slots > 0))
///     .collect();
/// // Write slot 0 of each object with the loop's count: a first write copies the object,
/// // through the tenant; every later one goes through a writer.
/// for round in 0..3 {
///     let mut k = 0;
///     while k < objects.len() {
///         let w = t.writer();
///         while k < objects.len() && w.try_set_slot(objects[k], 0, Value::int(round)) {
///             k += 1;
///         }
///         if k < objects.len() {
///             t.set_slot(objects[k], 0, Value::int(round)).unwrap();
///             k += 1;
///         }
///     }
/// }
/// assert!(objects.len() > 10);
/// assert_eq!(t.diverted(), objects.len());
/// assert!(objects.iter().all(|&v| t.slot(v, 0).unwrap().as_int() == Some(2)));
/// ```
#[derive(Clone, Copy)]
pub struct TenantWriter<'a> {
    space: SpaceView<'a>,
    id: TenantId,
    /// No entry of the space is a forwarder: a live private key leads to itself.
    settled: bool,
    tenant: &'a Tenant,
}

impl std::fmt::Debug for TenantWriter<'_> {
    /// The tenant's id, not the words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantWriter")
            .field("tenant", &self.id)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl<'a> TenantWriter<'a> {
    /// A writer of `tenant`.
    pub(crate) fn new(tenant: &'a Tenant) -> TenantWriter<'a> {
        TenantWriter {
            space: tenant.space.view(),
            id: tenant.id,
            settled: !tenant.space.has_forwarders(),
            tenant,
        }
    }

    /// The tenant this writer writes.
    pub fn tenant(self) -> &'a Tenant {
        self.tenant
    }

    /// Writes `v` into slot `i` of `obj` if that is a later write of a value stored as it
    /// is (see [`TenantWriter`]), and answers whether it did; `false` changes no slot and no
    /// object, and [`Tenant::set_slot`] then makes the write or answers why not. Time: O(1).
    ///
    /// Counted as [`Tenant::set_slot`] counts the same write: a write through a base
    /// reference is a lookup in [`crate::TenantStats`], refused or not once the copy is
    /// found (a slot out of range); a private one counts nothing.
    #[inline(always)]
    #[must_use = "`false` means nothing was written: write through the tenant then"]
    pub fn try_set_slot(self, obj: Value, i: usize, v: Value) -> bool {
        let w = v.word();
        if !(w.is_immediate() || self.leads_to_itself(v)) {
            return false;
        }
        if let Some(k) = obj.key_for(self.id) {
            if let Some(cell) = self.space.slot_of(k, i) {
                cell.set(w);
                return true;
            }
            return false;
        }
        obj.word()
            .as_base()
            .is_some_and(|x| set_copy_slot_by_tenant(self.tenant, x, i, w))
    }

    /// [`Tenant`]'s test of a value stored as it is, for a reference: a live private object
    /// of this tenant while no entry is a forwarder (from the writer's own fields), or an
    /// object of the heap this tenant has not diverted (from the tenant's marks and table).
    #[inline(always)]
    fn leads_to_itself(self, v: Value) -> bool {
        let w = v.word();
        if let Some(k) = w.as_private() {
            return v.is_owned_by(self.id) && self.settled && self.space.is_live(k);
        }
        self.tenant.base_leads_to_itself(w)
    }
}

/// [`Tenant::set_copy_slot`], out of line: [`TenantWriter::try_set_slot`]'s write through a
/// base reference, a probe of the table, which would crowd the writer's fields out of the
/// caller's registers inline. Not marked cold, unlike a reader's calls to its tenant: the
/// caller's loop then keeps the writer's fields in registers the call preserves, where
/// around a cold call it saved and restored seven of them at every such write (measured in
/// the thirty-fourth step of docs/ARCHITECTURE.md: 97.7 instructions a write through a base
/// reference against 87.8, for about 5% of the private write's time).
#[inline(never)]
fn set_copy_slot_by_tenant(tenant: &Tenant, x: ObjectIndex, i: usize, w: Word) -> bool {
    tenant.set_copy_slot(x, i, w)
}
