//! A frozen base heap together with its diverted marks.

use crate::DivertMarks;
use cowheap_heap::BaseHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The identity of a [`Base`] within a process. Invariant: never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaseId(u64);

impl BaseId {
    /// The id's number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What tenants fork from: a frozen heap and the marks of the objects tenants diverted.
///
/// The heap is never written. The marks are the only shared state tenants write: one word per
/// object, its header offset and a diverted bit set once ([`crate::marks`]). `Base` is `Send + Sync`; share it as `Arc<Base>`.
#[derive(Debug)]
pub struct Base {
    id: BaseId,
    heap: BaseHeap,
    marks: DivertMarks,
}

impl Base {
    /// Wraps a frozen heap with clear marks. Time: O(objects), to fill the marks with the
    /// heap's header offsets (8 bytes per object).
    pub fn new(heap: BaseHeap) -> Arc<Base> {
        // Relaxed: the counter only has to hand out distinct numbers.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let marks = DivertMarks::new(heap.header_offsets());
        Arc::new(Base {
            id: BaseId(NEXT.fetch_add(1, Ordering::Relaxed)),
            heap,
            marks,
        })
    }

    /// This base's id.
    pub fn id(&self) -> BaseId {
        self.id
    }

    /// The frozen heap.
    #[inline]
    pub fn heap(&self) -> &BaseHeap {
        &self.heap
    }

    /// The heap's content fingerprint ([`BaseHeap::fingerprint`]): what tenant snapshots are
    /// bound to.
    pub fn fingerprint(&self) -> cowheap_heap::Fingerprint {
        self.heap.fingerprint()
    }

    /// The shared diverted marks.
    pub fn marks(&self) -> &DivertMarks {
        &self.marks
    }

    /// Bytes of memory the heap and its marks occupy.
    pub fn memory_bytes(&self) -> usize {
        self.heap.memory_bytes() + self.marks.memory_bytes()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bases_get_distinct_ids_and_one_bit_per_object() {
        let a = Base::new(cowheap_heap::synth::image(500, 1));
        let b = Base::new(cowheap_heap::synth::image(500, 1));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.marks().memory_bytes(), a.heap().len() * 8);
        fn check<T: Send + Sync>() {}
        check::<Base>();
    }
}
