//! A tenant that `free_unreachable` left with garbage naming an object it freed (an
//! unreachable object's slot or class, an unreachable forwarder's target: what the function
//! allows) still snapshots into bytes its restore accepts: such a word is saved as nil, and
//! every reachable object comes back as it was.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_tenants::{Tenant, TenantConfig};

#[test]
fn a_snapshot_after_free_unreachable_restores() {
    let base = Base::new(synth::image(1_000, 1));
    let nil = base.heap().nil();
    let mut t = Tenant::fork(&base);
    let kept = t
        .alloc_with(nil, Format::Pointers, &[Value::int(42)], &[])
        .unwrap();
    t.set_root("kept", kept).unwrap();
    // An operation made `a`, a class `c`, and garbage naming them, then undid `a` and `c`.
    let empty = ObjectSize { slots: 0, bytes: 0 };
    let a = t.alloc(nil, Format::Pointers, empty).unwrap();
    let c = t.alloc(nil, Format::Pointers, empty).unwrap();
    let by_slot = t.alloc_with(nil, Format::Pointers, &[a], &[]).unwrap();
    let by_class = t.alloc_with(c, Format::Pointers, &[], &[]).unwrap();
    let by_forwarder = t.alloc(nil, Format::Pointers, empty).unwrap();
    t.become_forward(by_forwarder, a).unwrap();
    assert_eq!(t.free_unreachable(&[a, c]).unwrap().freed, 2);
    assert!(t.slot(by_slot, 0).is_ok(), "the garbage stays");
    let objects = t.stats().private_objects;
    let back = Tenant::restore_with(&base, &t.snapshot(), &TenantConfig::default())
        .expect("the tenant's own snapshot restores");
    let r = back.root("kept").unwrap();
    assert_eq!(back.slot(r, 0).unwrap().as_int(), Some(42));
    assert_eq!(back.stats().private_objects, objects);
    let mine = |v: Value| Value::owned(v.word(), back.id());
    let slot = back.slot(mine(by_slot), 0).unwrap();
    assert!(back.identical(slot, nil).unwrap(), "the freed word is nil");
    assert!(
        back.identical(back.class_of(mine(by_class)).unwrap(), nil)
            .unwrap()
    );
}
