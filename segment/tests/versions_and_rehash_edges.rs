//! Rehashes refused part-way: a rehash refused for the quota (a base table it would
//! copy) leaves the collection as it was.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::rehash;
use cowheap_tenants::Tenant;
use std::sync::Arc;

/// A new object of `class`.
fn alloc(t: &mut Tenant, class: Value, format: Format, slots: usize, bytes: usize) -> Value {
    t.alloc(class, format, ObjectSize { slots, bytes }).unwrap()
}

/// A permutation of `0..n` from `seed` (xorshift).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut slots: Vec<usize> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        slots.swap(i, (s % (i as u64 + 1)) as usize);
    }
    slots
}

fn mini() -> (Arc<Base>, BaseNames) {
    let base = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let names = BaseNames::of(base.heap()).unwrap();
    (base, names)
}

/// Symbols of mini.image.
fn symbols(names: &BaseNames) -> Vec<Value> {
    [
        "size",
        "at:",
        "value",
        "do:",
        "printString",
        "new",
        "hash",
        "class",
        "yourself",
    ]
    .iter()
    .map(|s| names.symbol(s).unwrap())
    .collect()
}

/// A rehash refused part-way through a collection leaves it as it was: a MethodDictionary
/// of the tenant whose values array is the base's, rehashed under a quota that has no room
/// for the array's copy, keeps every key.
#[test]
fn a_rehash_refused_for_the_quota_leaves_a_method_dictionary_as_it_was() {
    let (base, names) = mini();
    let mut t = Tenant::fork(&base);
    let heap = base.heap();
    // A base Array of 32 slots: the values array.
    let array_class = names.global("Array").unwrap();
    let values = heap
        .indices()
        .find(|&x| {
            heap.object(x).is_ok_and(|o| {
                o.class == array_class.word() && o.slots.len() == 32 && o.bytes.is_empty()
            })
        })
        .map(Value::base)
        .unwrap();
    let keys = symbols(&names);
    let n = 32;
    let md = alloc(
        &mut t,
        names.global("MethodDictionary").unwrap(),
        Format::Pointers,
        2 + n,
        0,
    );
    t.set_slot(md, 0, Value::int(keys.len() as i64)).unwrap();
    t.set_slot(md, 1, values).unwrap();
    let order = permutation(n, 3);
    for (&k, &at) in keys.iter().zip(&order) {
        t.set_slot(md, 2 + at, k).unwrap();
    }
    let before: Vec<u64> = (0..2 + n)
        .map(|i| t.slot(md, i).unwrap().word().bits())
        .collect();
    // No room for a copy of the values array.
    t.set_quota(Some(t.stats().private_bytes));
    let r = rehash::rehash(&mut t, &names, &[md]);
    assert!(r.is_err(), "{r:?}");
    let after: Vec<u64> = (0..2 + n)
        .map(|i| t.slot(md, i).unwrap().word().bits())
        .collect();
    assert_eq!(before, after, "a key taken out and not put back");
}
