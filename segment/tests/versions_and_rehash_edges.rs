//! Rehashes of collections the tenant has written, and rehashes refused part-way:
//! - a hashed collection whose class the tenant wrote (a private copy of `Set`,
//!   `IdentitySet`) is still a hashed collection of its kind and is rehashed;
//! - a rehash refused for the quota (a base table it would copy) leaves the collection as
//!   it was.

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

/// A hashed collection of class `class` with a table of `n` slots holding `keys` at the
/// slots of `order` (not where their hashes lead).
fn scattered_set(
    t: &mut Tenant,
    names: &BaseNames,
    class: &str,
    keys: &[Value],
    n: usize,
    order: &[usize],
) -> Value {
    let g = |n: &str| names.global(n).unwrap();
    let set = alloc(t, g(class), Format::Pointers, 2, 0);
    let array = alloc(t, g("Array"), Format::Pointers, n, 0);
    t.set_slot(set, 0, Value::int(keys.len() as i64)).unwrap();
    t.set_slot(set, 1, array).unwrap();
    for (&k, &at) in keys.iter().zip(order) {
        t.set_slot(array, at, k).unwrap();
    }
    set
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

/// Every key is where Squeak's `scanFor:` finds it.
fn all_found(t: &Tenant, names: &BaseNames, set: Value, keys: &[Value]) -> bool {
    keys.iter().all(|&k| {
        rehash::lookup(t, names, set, k)
            .unwrap()
            .is_some_and(|v| t.identical(v, k).unwrap())
    })
}

/// The tenant writes the class `IdentitySet` or `Set` (a class variable, a method
/// dictionary grown by a compile: the class object is then its private copy): its
/// instances are still hashed collections of their kind, rehashed as before.
#[test]
fn a_collection_of_a_class_the_tenant_wrote_is_rehashed() {
    let (base, names) = mini();
    let keys = symbols(&names);
    let n = 16;
    let order = permutation(n, 5);
    for class in ["Set", "IdentitySet"] {
        for written in [false, true] {
            let mut t = Tenant::fork(&base);
            if written {
                // The class's superclass slot set to what it holds: a copy.
                let c = names.global(class).unwrap();
                let sup = t.slot(c, 0).unwrap();
                t.set_slot(c, 0, sup).unwrap();
            }
            let set = scattered_set(&mut t, &names, class, &keys, n, &order);
            assert_eq!(t.class_of(set).unwrap().word().is_private(), written);
            assert!(!all_found(&t, &names, set, &keys));
            let r = rehash::rehash(&mut t, &names, &[set]).unwrap();
            assert_eq!(
                (r.collections, r.rehashed.len()),
                (1, 1),
                "{class}, written: {written}: {r}"
            );
            assert!(all_found(&t, &names, set, &keys));
        }
    }
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
