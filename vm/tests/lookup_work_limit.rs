//! One send's method lookup does bounded work whatever the image's method dictionaries
//! hold: a chain of 3,000 classes sharing one dictionary of 100,000 nil keys (each scanned
//! whole, its size no power of two) stops past the lookup's work limit with a typed error
//! instead of reading 900 million keys, and a chain of small dictionaries still answers.

mod common;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::{Header, Tenant};
use cowheap_vm::{Collected, FlatHeap, MemResult, ObjectMemory, Symbols, Vm, VmError, WeakSlots};
use std::cell::Cell;

const BUDGET: u64 = 20_000_000;

/// A flat heap that counts its slot reads.
struct Counting {
    inner: FlatHeap,
    reads: Cell<u64>,
}

impl ObjectMemory for Counting {
    fn class_of(&self, v: Value) -> MemResult<Value> {
        self.inner.class_of(v)
    }
    fn slot(&self, obj: Value, i: usize) -> MemResult<Value> {
        self.reads.set(self.reads.get() + 1);
        self.inner.slot(obj, i)
    }
    fn set_slot(&mut self, obj: Value, i: usize, v: Value) -> MemResult<()> {
        self.inner.set_slot(obj, i, v)
    }
    fn set_slots(&mut self, obj: Value, start: usize, values: &[Value]) -> MemResult<()> {
        self.inner.set_slots(obj, start, values)
    }
    fn bytes(&self, obj: Value) -> MemResult<&[u8]> {
        self.inner.bytes(obj)
    }
    fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> MemResult<()> {
        self.inner.set_bytes(obj, offset, data)
    }
    fn size(&self, obj: Value) -> MemResult<ObjectSize> {
        self.inner.size(obj)
    }
    fn format(&self, obj: Value) -> MemResult<Format> {
        self.inner.format(obj)
    }
    fn header(&self, obj: Value) -> MemResult<Header> {
        self.inner.header(obj)
    }
    fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> MemResult<Value> {
        self.inner.alloc(class, format, size)
    }
    fn identical(&self, a: Value, b: Value) -> MemResult<bool> {
        self.inner.identical(a, b)
    }
    fn identity_hash(&self, obj: Value) -> MemResult<u32> {
        self.inner.identity_hash(obj)
    }
    fn become_forward(&mut self, a: Value, b: Value) -> MemResult<()> {
        self.inner.become_forward(a, b)
    }
    fn become_two_way(&mut self, a: Value, b: Value) -> MemResult<()> {
        self.inner.become_two_way(a, b)
    }
    fn root(&self, name: &str) -> Option<Value> {
        self.inner.root(name)
    }
    fn set_root(&mut self, name: &str, v: Value) -> MemResult<()> {
        self.inner.set_root(name, v)
    }
    fn remove_root(&mut self, name: &str) {
        self.inner.remove_root(name);
    }
    fn private_bytes(&self) -> u64 {
        self.inner.private_bytes()
    }
    fn collect(&mut self, roots: &[Value], weak: &WeakSlots) -> MemResult<Collected> {
        self.inner.collect(roots, weak)
    }
    fn enumerate_objects(&self, out: &mut Vec<Value>) -> MemResult<()> {
        self.inner.enumerate_objects(out)
    }
    fn set_class(&mut self, obj: Value, class: Value) -> MemResult<()> {
        self.inner.set_class(obj, class)
    }
    fn set_identity_hash(&mut self, obj: Value, hash: u32) -> MemResult<()> {
        self.inner.set_identity_hash(obj, hash)
    }
    fn identity_key(&self, v: Value) -> MemResult<u64> {
        self.inner.identity_key(v)
    }
    fn has_fault_handler(&self) -> bool {
        self.inner.has_fault_handler()
    }
    fn fault_in(&mut self, segment: u64) -> MemResult<()> {
        self.inner.fault_in(segment)
    }
    fn set_reads_fault(&mut self, on: bool) -> bool {
        self.inner.set_reads_fault(on)
    }
}

/// A chain of 3,000 copies of Object, each under the one before, sharing one method
/// dictionary of `n` nil keys; `fooBarBaz` sent to an instance of the last. Its lookup, the
/// lookup of `doesNotUnderstand:` and the search for the class holding that method each
/// walk the whole chain.
fn src(n: usize) -> String {
    format!(
        "| d c prev | d := MethodDictionary basicNew: {n}. \
         d instVarAt: 2 put: (Array new: {n}). prev := Object. \
         1 to: 3000 do: [:i | c := Object shallowCopy. c instVarAt: 1 put: prev; instVarAt: 2 put: d. prev := c]. \
         prev basicNew fooBarBaz"
    )
}

/// The slot reads of a run of `src`, and its result.
fn reads_of(
    heap: &cowheap_heap::BaseHeap,
    symbols: &Symbols,
    src: &str,
) -> (u64, Result<Value, VmError>) {
    let mut m = Counting {
        inner: FlatHeap::from_base(heap),
        reads: Cell::new(0),
    };
    let mut vm = Vm::new(&m).unwrap();
    let r = vm.evaluate(&mut m, symbols, src, BUDGET);
    (m.reads.get(), r)
}

#[test]
fn a_lookup_through_huge_method_dictionaries_stops_past_its_work_limit() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    // Four keys: each dictionary probed (one nil read), the send not understood.
    let (small, r) = reads_of(&heap, &symbols, &src(4));
    assert!(
        matches!(&r, Err(VmError::DoesNotUnderstand { selector, .. }) if selector == "fooBarBaz"),
        "{r:?}"
    );
    // 100,000 keys: 3 walks of 3,000 scans of 100,000 keys would read 900 million; the
    // lookup stops past its limit (a few million reads) with a typed error.
    let (huge, r) = reads_of(&heap, &symbols, &src(100_000));
    assert!(
        matches!(&r, Err(VmError::CorruptMethod { what, .. }) if what.contains("work limit")),
        "{r:?}"
    );
    assert!(
        huge.saturating_sub(small) < 20_000_000,
        "{huge} slot reads against {small} with small dictionaries"
    );
    // And on a tenant.
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.evaluate(&mut t, &symbols, &src(100_000), BUDGET);
    assert!(
        matches!(&r, Err(VmError::CorruptMethod { what, .. }) if what.contains("work limit")),
        "{r:?}"
    );
}
