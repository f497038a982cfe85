//! Writes that add no private bytes are not refused by a quota, and a write of nothing
//! copies nothing: a two-way become of two private objects under a quota lowered below what
//! the tenant holds (which stops new bytes, and frees none) goes through; `set_slots` of no
//! value and `set_bytes` of no byte to a base object check the object and the range, copy
//! nothing and charge nothing, even under a quota of zero.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_tenants::{Error, Tenant, TenantConfig};

#[test]
fn a_two_way_become_of_private_objects_is_not_refused_by_a_lowered_quota() {
    let base = Base::new(synth::image(1_000, 1));
    let nil = base.heap().nil();
    let config = TenantConfig {
        quota: Some(10_000),
        ..Default::default()
    };
    let mut t = Tenant::fork_with(&base, config);
    let a = t
        .alloc_with(nil, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let b = t
        .alloc_with(nil, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    t.set_quota(Some(t.stats().private_bytes - 1));
    let before = t.stats().private_bytes;
    t.set_slot(a, 0, Value::int(3)).unwrap();
    t.become_two_way(a, b).unwrap();
    assert_eq!(t.stats().private_bytes, before);
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(2));
    // A new object is still refused.
    assert!(matches!(
        t.alloc_with(nil, Format::Pointers, &[], &[]),
        Err(Error::QuotaExceeded { .. })
    ));
}

#[test]
fn writing_nothing_copies_nothing_and_needs_no_quota() {
    let base = Base::new(synth::image(1_000, 1));
    let heap = base.heap();
    let g = heap.root("Smalltalk").unwrap();
    let slots = heap.size(g.word().as_base().unwrap()).unwrap().slots;
    let bytes_obj = heap
        .indices()
        .find(|&x| heap.format(x).unwrap() == Format::Bytes && heap.size(x).unwrap().bytes > 0)
        .map(Value::base)
        .unwrap();
    let n_bytes = heap
        .size(bytes_obj.word().as_base().unwrap())
        .unwrap()
        .bytes;
    let config = TenantConfig {
        quota: Some(0),
        ..Default::default()
    };
    for mut t in [Tenant::fork(&base), Tenant::fork_with(&base, config)] {
        t.set_slots(g, 0, &[]).unwrap();
        t.set_slots(g, slots, &[]).unwrap();
        t.set_bytes(bytes_obj, n_bytes, &[]).unwrap();
        assert_eq!(t.stats().copies, 0, "{:?}", t.stats());
        assert_eq!(t.stats().private_bytes, 0);
        // The range is still checked.
        assert!(matches!(
            t.set_slots(g, slots + 1, &[]),
            Err(Error::Heap(cowheap_heap::Error::SlotOutOfRange { .. }))
        ));
        assert!(t.set_bytes(bytes_obj, n_bytes + 1, &[]).is_err());
        assert_eq!(t.stats().copies, 0);
    }
}
