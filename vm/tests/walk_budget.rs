//! The work of a walk's primitives counts against the run's bytecode budget: a fresh list
//! of every object (`someObject`, `someInstance`, or a `nextObject`/`nextInstance` of an
//! object the kept list does not hold) and the objects a `nextInstance` scans are charged
//! one bytecode an object. A run that asks for a fresh list over and over (the `nextObject`
//! of an object made since the last list) is then stopped by its budget as a run of plain
//! sends is, and resumed it makes progress, where before each such send did O(objects)
//! work for one bytecode of the budget. A walk in order resumed slice after slice takes its
//! list again free of charge (the interpreter dropped it at the entry), so it walks on. On
//! mini.image, on a tenant and on the flat heap.

mod common;

use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

/// `Object new <sel>`, `n` times, then the count.
fn fresh_loop(sel: &str, n: usize) -> String {
    format!("| k | k := 0. 1 to: {n} do: [:i | Object new {sel}. k := k + 1]. k")
}

/// Bytecodes `src` runs to its answer from a fresh interpreter.
fn bytecodes_of<M: ObjectMemory>(m: &mut M, symbols: &Symbols, src: &str) -> u64 {
    let mut vm = Vm::new(m).unwrap();
    let v = vm.evaluate(m, symbols, src, 50_000_000).unwrap();
    assert_eq!(v.as_int(), Some(20));
    vm.stats().bytecodes
}

fn check<M: ObjectMemory>(m: &mut M, symbols: &Symbols) {
    let mut all = Vec::new();
    m.enumerate_objects(&mut all).unwrap();
    let objects = all.len() as u64;
    assert!(objects > 10_000, "{objects} objects");
    // The plain loop's bytecodes, compile included; the walking loop runs a few more
    // (the same sends, a fallback's at most), but 20 fresh lists of every object are
    // charged 20 times the object count.
    let plain = bytecodes_of(m, symbols, &fresh_loop("yourself", 20));
    let budget = plain + 5_000;
    let mut vm = Vm::new(m).unwrap();
    let mut r = vm.evaluate(m, symbols, &fresh_loop("nextObject", 20), budget);
    let mut stops = 0;
    while let Err(VmError::BudgetExhausted { .. }) = r {
        stops += 1;
        assert!(stops <= 40, "no progress after {stops} stops");
        r = vm.resume(m, budget);
    }
    assert_eq!(r.unwrap().as_int(), Some(20));
    // Every list but the first of each slice (the interpreter dropped the last one at the
    // entry) is charged: most of a budget each, so the run stops again and again.
    let slices = stops + 1;
    assert!(
        vm.stats().charged >= (20 - slices.min(20)) as u64 * objects,
        "{} charged for 20 lists of {objects} objects in {slices} slices",
        vm.stats().charged
    );
    assert!(stops >= 5, "{stops} stops");
    // A walk in order keeps its list: all of memory, one list's charge and a bytecode or
    // so an object, not a list an object.
    let walk = "| o n | n := 0. o := nil someObject. [o == 0] whileFalse: [n := n + 1. o := o nextObject]. n";
    let mut vm = Vm::new(m).unwrap();
    let n = vm.evaluate(m, symbols, walk, 50_000_000).unwrap();
    assert!(n.as_int().is_some_and(|n| n as u64 >= objects), "{n:?}");
    // The same walk in slices of half as many bytecodes as there are objects: each slice
    // resumed takes its list again free of charge and walks on, so the walk (some eight
    // bytecodes an object) ends in a few dozen slices, not one a step.
    let budget = objects / 2;
    let mut vm = Vm::new(m).unwrap();
    let mut r = vm.evaluate(m, symbols, walk, budget);
    let mut slices = 1;
    while let Err(VmError::BudgetExhausted { .. }) = r {
        slices += 1;
        assert!(
            slices <= 100,
            "{slices} slices of {budget} and the walk is not done"
        );
        r = vm.resume(m, budget);
    }
    assert!(r.unwrap().as_int().is_some_and(|n| n as u64 >= objects));
    // A walk's list taken by the entry send's own primitive is counted too.
    let sel = vm.symbol(m, symbols, "someObject").unwrap();
    let before = vm.stats().charged;
    let first = vm.perform(m, sel, sel, &[], 1_000).unwrap();
    assert!(first.is_object(), "{first:?}");
    assert!(
        vm.stats().charged >= before + objects,
        "the list was not counted"
    );
}

#[test]
fn fresh_lists_of_every_object_count_against_the_budget() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = cowheap_forwarders::Base::new(heap);
    let mut t = Tenant::fork(&base);
    check(&mut t, &symbols);
    let mut flat = FlatHeap::from_base(base.heap());
    check(&mut flat, &symbols);
}

/// `heap` rebuilt object for object (the same indices, hashes and roots) with the class
/// `Object` marked as a hidden Spur object: an object the image reaches that no walk of
/// every object answers, as a hostile Spur image's slot naming a free list would be.
fn with_object_hidden(heap: &cowheap_heap::BaseHeap) -> cowheap_heap::BaseHeap {
    use cowheap_heap::{Builder, ObjectIndex};
    use cowheap_squeak::auxbits::{Aux, SpurAux};
    // UndefinedObject's superclass.
    let undefined = heap.object(heap.nil().as_base().unwrap()).unwrap().class;
    let object = heap
        .slot(cowheap_heap::Value::shared(undefined), 0)
        .unwrap();
    let hidden = Aux::Spur(SpurAux {
        format: 0,
        flags: 0,
        pun: Some(16),
        index_in_root: false,
    })
    .encode();
    let mut b = Builder::new();
    for i in 0..heap.len() {
        let x = ObjectIndex::new(i).unwrap();
        let o = heap.object(x).unwrap();
        let w = b
            .add(o.class, o.format, o.slots.to_vec(), o.bytes.to_vec())
            .unwrap();
        b.set_hash(w, o.hash).unwrap();
        let aux = if w == object.word() { hidden } else { o.aux };
        b.set_aux(w, aux).unwrap();
    }
    b.set_nil(heap.nil().word()).unwrap();
    b.set_immediate_classes(
        heap.int_class().map(cowheap_heap::Value::word),
        heap.char_class().map(cowheap_heap::Value::word),
    );
    b.set_float_class(heap.float_class().map(cowheap_heap::Value::word));
    for r in heap.roots() {
        b.add_root(&r.name, r.value).unwrap();
    }
    b.freeze().unwrap()
}

/// `nextObject` of an object no list holds fails, after taking a fresh list to look for
/// it: that list is charged too, so a loop of such failures is stopped by its budget as a
/// loop of fresh lists that answer is (before, each failure listed every object for the
/// few bytecodes of its send).
fn check_failures<M: ObjectMemory>(m: &mut M, symbols: &Symbols) {
    let mut all = Vec::new();
    m.enumerate_objects(&mut all).unwrap();
    let objects = all.len() as u64;
    let mut vm = Vm::new(m).unwrap();
    let def = common::def("Object", "nx", "nx <primitive: 139> ^nil");
    vm.evaluate(m, symbols, &def, 50_000_000).unwrap();
    let src = "| k | k := 0. 1 to: 20 do: [:i | Object nx isNil ifTrue: [k := k + 1]]. k";
    let before = vm.stats().charged;
    let v = vm.evaluate(m, symbols, src, 50_000_000).unwrap();
    assert_eq!(v.as_int(), Some(20), "each nextObject failed");
    // The first list of the run is free (the interpreter dropped the last at the entry).
    assert!(
        vm.stats().charged - before >= 19 * objects,
        "{} charged for 20 lists of {objects} objects",
        vm.stats().charged - before
    );
}

#[test]
fn a_failed_next_object_is_charged_its_list() {
    let heap = with_object_hidden(&common::import("mini.image"));
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    check_failures(&mut flat, &symbols);
    let base = cowheap_forwarders::Base::new(heap);
    let mut t = Tenant::fork(&base);
    check_failures(&mut t, &symbols);
}

/// A walk in order that writes each Association it meets (on a tenant, the first write of
/// a base object copies it, which changes the key its list found it by) is charged its one
/// list and its steps, as on the flat heap: each `nextObject` finds its receiver where the
/// walk last answered it (before, each one after a first write took and was charged a
/// fresh list, O(objects) a step).
fn check_writing_walk<M: ObjectMemory>(m: &mut M, symbols: &Symbols) -> i64 {
    let mut all = Vec::new();
    m.enumerate_objects(&mut all).unwrap();
    let objects = all.len() as u64;
    let walk = "| o n | n := 0. o := nil someObject. [o == 0] whileFalse: [\
                (o isMemberOf: Association) ifTrue: [o value: o value. n := n + 1]. \
                o := o nextObject]. n";
    let mut vm = Vm::new(m).unwrap();
    let n = vm.evaluate(m, symbols, walk, 500_000_000).unwrap();
    let n = n.as_int().unwrap();
    assert!(n > 100, "{n} associations written");
    let charged = vm.stats().charged;
    assert!(
        charged <= 2 * objects,
        "{charged} charged for a walk of {objects} objects"
    );
    n
}

#[test]
fn a_walk_that_writes_what_it_meets_keeps_its_list() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let on_flat = check_writing_walk(&mut flat, &symbols);
    let base = cowheap_forwarders::Base::new(heap);
    let mut t = Tenant::fork(&base);
    let on_tenant = check_writing_walk(&mut t, &symbols);
    assert_eq!(on_tenant, on_flat);
}
