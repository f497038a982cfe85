//! Segments of tenants on later versions of their base, and rehashes of collections the
//! tenant has written:
//! - an import binds a portable out-pointer by the names of the tenant's version of its
//!   base (a global a commit gave another value), and a base object named by fingerprint
//!   and index in a later version of that base;
//! - the V3 and Spur exporters read the tenant's version (an instance of a class a commit
//!   added exports);
//! - a hashed collection whose class the tenant wrote (a private copy of `Set`,
//!   `IdentitySet`) is still a hashed collection of its kind and is rehashed;
//! - a rehash refused for the quota (a base table it would copy) leaves the collection as
//!   it was.

mod common;
#[path = "common/hashed.rs"]
mod hashed;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::rehash;
use cowheap_tenants::Tenant;
use hashed::{alloc, permutation};
use std::sync::Arc;

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

/// The Association of the global `name` in the tenant's `Smalltalk`.
fn association_of(t: &Tenant, names: &BaseNames, name: &str) -> Value {
    let smalltalk = t.base().heap().root("Smalltalk").unwrap();
    let array = t.slot(smalltalk, 1).unwrap();
    let key = names.symbol(name).unwrap();
    (0..t.size(array).unwrap().slots)
        .map(|i| t.slot(array, i).unwrap())
        .find(|&a| {
            a.word().is_ref()
                && t.format(a).unwrap() == Format::Pointers
                && t.size(a).unwrap().slots == 2
                && t.identical(t.slot(a, 0).unwrap(), key).unwrap()
        })
        .unwrap()
}

/// A portable segment naming a global's value is imported into a tenant of a later
/// version of the base, whose commit gave the global another value: the out-pointer binds
/// to the value the tenant sees, not to the one the base had before the commit.
#[test]
fn a_portable_import_binds_a_global_as_the_tenants_version_has_it() {
    use cowheap_segment::tenant::{self, OutRef};
    use cowheap_tenants::commit::{CommitRights, Repository};
    let (base, names) = mini();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    // A segment of one Array holding Transcript, named portably.
    let mut a = repo.fork();
    let transcript = names.global("Transcript").unwrap();
    let array_class = names.global("Array").unwrap();
    let holder = a
        .alloc_with(array_class, Format::Pointers, &[transcript], &[])
        .unwrap();
    let mut seg = tenant::extract(&a, &[holder], &[]).unwrap();
    seg.make_portable(base.heap()).unwrap();
    assert!(
        seg.out.contains(&OutRef::Global("Transcript".into())),
        "{:?}",
        seg.out
    );
    // Another tenant gives Transcript another value and commits.
    let mut b = repo.fork();
    let fresh = b
        .alloc_with(array_class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let assoc = association_of(&b, &names, "Transcript");
    b.set_slot(assoc, 1, fresh).unwrap();
    repo.commit(&mut b, "b").unwrap();
    // A tenant of the new version sees the new value, and so does what it imports.
    let mut c = repo.fork();
    let assoc = association_of(&c, &names, "Transcript");
    let now = c.slot(assoc, 1).unwrap();
    assert!(!c.identical(now, transcript).unwrap());
    let imported = seg.import_into(&mut c, &[], false).unwrap();
    let got = c.slot(imported.roots[0], 0).unwrap();
    assert!(
        c.identical(got, now).unwrap(),
        "bound to the global's value before the commit"
    );
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

/// A portable segment naming a base object by the base's fingerprint and its index (one
/// with no name) is imported into a tenant of a later version of that base, where the
/// object is at the same index, as its unportable form is.
#[test]
fn a_pinned_out_pointer_binds_in_a_later_version_of_its_base() {
    use cowheap_segment::tenant::{self, OutRef};
    use cowheap_tenants::commit::{CommitRights, Repository};
    let (base, names) = mini();
    let heap = base.heap();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let array_class = names.global("Array").unwrap();
    // A base Array of 32 slots: no Symbol, class, special object or global's value.
    let unnamed = heap
        .indices()
        .find(|&x| {
            heap.object(x).is_ok_and(|o| {
                o.class == array_class.word() && o.slots.len() == 32 && o.bytes.is_empty()
            })
        })
        .map(Value::base)
        .unwrap();
    let mut a = repo.fork();
    let holder = a
        .alloc_with(array_class, Format::Pointers, &[unnamed], &[])
        .unwrap();
    let mut seg = tenant::extract(&a, &[holder], &[]).unwrap();
    seg.make_portable(heap).unwrap();
    assert!(
        seg.out.iter().any(|o| matches!(o, OutRef::Pinned { .. })),
        "{:?}",
        seg.out
    );
    // Another tenant commits: a later version, the object at the same index.
    let mut b = repo.fork();
    let smalltalk = heap.root("Smalltalk").unwrap();
    let tally = b.slot(smalltalk, 0).unwrap();
    b.set_slot(smalltalk, 0, tally).unwrap();
    repo.commit(&mut b, "b").unwrap();
    let mut c = repo.fork();
    assert_ne!(c.base().fingerprint(), base.fingerprint());
    let imported = seg.clone().import_into(&mut c, &[], false).unwrap();
    let got = c.slot(imported.roots[0], 0).unwrap();
    assert!(c.identical(got, unnamed).unwrap());
}

/// A class a commit added to the base (a tenant's class, made reachable by a global and
/// committed) is a class of the tenant's version: an instance of it exports as V3 and
/// Spur words when the exporters read that version.
#[test]
fn a_segment_exports_an_instance_of_a_class_a_commit_added() {
    use cowheap_segment::export;
    use cowheap_segment::spur::WordSize;
    use cowheap_segment::spur_export;
    use cowheap_segment::tenant;
    use cowheap_segment::v3::ByteOrder;
    use cowheap_tenants::commit::{CommitRights, Repository};
    let (base, names) = mini();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    // A copy of the class Association, every slot (its format word among them), held by
    // the global Transcript, committed.
    let mut a = repo.fork();
    let association = names.global("Association").unwrap();
    let meta = a.class_of(association).unwrap();
    let n = a.size(association).unwrap().slots;
    let class = alloc(&mut a, meta, Format::Pointers, n, 0);
    for k in 0..n {
        let v = a.slot(association, k).unwrap();
        a.set_slot(class, k, v).unwrap();
    }
    let assoc = association_of(&a, &names, "Transcript");
    a.set_slot(assoc, 1, class).unwrap();
    repo.commit(&mut a, "a").unwrap();
    // A tenant of the new version: the class is a base object the heap does not have.
    let mut c = repo.fork();
    let assoc = association_of(&c, &names, "Transcript");
    let class = c.slot(assoc, 1).unwrap();
    let x = class.word().as_base().unwrap();
    assert!(base.heap().object(x).is_err());
    let instance = alloc(&mut c, class, Format::Pointers, 2, 0);
    c.set_slot(instance, 0, Value::int(3)).unwrap();
    let seg = tenant::extract(&c, &[instance], &[]).unwrap();
    let version = c.base().clone();
    let v3 = export::to_v3(&seg, &*version, ByteOrder::Little, 6502, b's').unwrap();
    assert_eq!(v3.segment.objects.len(), 2);
    let spur = spur_export::to_spur(&seg, &*version, ByteOrder::Little, WordSize::W32, b's');
    let spur = spur.unwrap();
    assert_eq!(spur.segment.objects.len(), 2);
}
