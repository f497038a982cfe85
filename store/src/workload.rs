//! A small, checkable piece of work for tenants: what the demos, the node process and the
//! tests write into a tenant and read back on another node.
//!
//! [`write_mark`] sets slot 0 of the base's first pointer root to a small integer (a copy
//! of a base object) and allocates a new private bytes object holding the same number,
//! reachable from the tenant root `cowheap-store-mark`. [`read_mark`] reads both and agrees
//! only if they match.

use crate::{Result, StoreError};
use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;

/// The tenant root the mark object hangs from.
pub const MARK_ROOT: &str = "cowheap-store-mark";

/// The base object whose slot 0 carries the mark: the first root that is an object with at
/// least one pointer slot.
fn target(t: &Tenant) -> Option<Value> {
    let heap = t.base().heap();
    heap.roots().iter().find_map(|r| {
        let v = heap.root(&r.name)?;
        (t.size(v).ok()?.slots > 0 && t.slot(v, 0).is_ok()).then_some(v)
    })
}

/// Writes mark `n` into `t`: a copy-on-first-write of a base object and a new private
/// object. Time: O(1) plus the copied object's size.
///
/// All or nothing: the object is made first, then the slot and the root are written, and a
/// slot written before a refused root is put back. So a write that fails (a quota) leaves
/// the mark `t` held, which [`read_mark`] still reads (at most an object nothing reaches is
/// left, for the next collection), never a slot and an object that disagree.
///
/// # Errors
/// [`StoreError::Tenant`] if a write fails (a quota) or `n` is not a small integer (outside
/// [`Word::MIN_INT`](cowheap_heap::Word::MIN_INT)..=[`Word::MAX_INT`](cowheap_heap::Word::MAX_INT));
/// [`StoreError::NoMarkTarget`] for a base with no root object that has a pointer slot.
pub fn write_mark(t: &mut Tenant, n: i64) -> Result<()> {
    let mark = Value::try_int(n).map_err(cowheap_tenants::Error::from)?;
    let g = target(t).ok_or(StoreError::NoMarkTarget)?;
    let class = t.class_of(g)?;
    let obj = t.alloc_with(class, Format::Bytes, &[], &n.to_le_bytes())?;
    let old = t.slot(g, 0)?;
    t.set_slot(g, 0, mark)?;
    if let Err(e) = t.set_root(MARK_ROOT, obj) {
        // The slot's object is a copy now, so writing its old value back needs no room.
        let _ = t.set_slot(g, 0, old);
        return Err(e.into());
    }
    Ok(())
}

/// The mark `t` holds, if it holds one whole (the slot and the object agree).
pub fn read_mark(t: &Tenant) -> Option<i64> {
    let g = target(t)?;
    let n = t.slot(g, 0).ok()?.as_int()?;
    let obj = t.root(MARK_ROOT)?;
    let bytes: [u8; 8] = t.bytes(obj).ok()?.try_into().ok()?;
    (i64::from_le_bytes(bytes) == n).then_some(n)
}

/// `count` objects of `base` that a commit workload may change: the first pointer objects
/// (from index 1 up) with at least one slot, in index order. Fewer if the base has fewer.
/// Time: O(objects scanned).
pub fn slot_objects(base: &cowheap_forwarders::Base, count: usize) -> Vec<Value> {
    (1..base.len())
        .filter_map(|i| {
            u32::try_from(i)
                .ok()
                .map(cowheap_heap::ObjectIndex::from_u32)
        })
        .filter(|&x| {
            base.format(x).is_ok_and(|f| f == Format::Pointers)
                && base.size(x).is_ok_and(|s| s.slots > 0)
        })
        .take(count)
        .map(Value::base)
        .collect()
}
