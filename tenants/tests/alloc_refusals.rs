//! An object made with its slots given (`Tenant::alloc_with`), refused by the allocator at
//! any of its large allocations (the words gathered to store, the arena's growth), answers
//! `OutOfMemory` and leaves the tenant as it was: its counts, its objects and its next
//! object's identity hash.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_tenants::{Error, Tenant};

#[global_allocator]
static ALLOC: cowheap_testkit::Refusing = cowheap_testkit::Refusing;

#[test]
fn an_object_of_many_slots_refused_anywhere_changes_nothing() {
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let slots: Vec<Value> = (0..20_000).map(Value::int).collect();
    let mut refusals = 0;
    for n in 0.. {
        let mut t = Tenant::fork(&base);
        let class = t.class_of(g).unwrap();
        let mine = t
            .alloc_with(class, Format::Pointers, &[Value::int(7)], &[])
            .unwrap();
        let before = t.stats();
        let (r, refused) =
            cowheap_testkit::refusing_the(n, || t.alloc_with(class, Format::Pointers, &slots, &[]));
        if !refused {
            let v = r.unwrap();
            assert_eq!(t.slot(v, 19_999).unwrap().as_int(), Some(19_999));
            break;
        }
        refusals += 1;
        assert!(
            matches!(r, Err(Error::OutOfMemory { .. })),
            "refusal {n} answered {r:?}"
        );
        assert_eq!(t.stats(), before, "refusal {n} changed the counts");
        assert_eq!(t.slot(mine, 0).unwrap().as_int(), Some(7));
        // The next object is the one the refused allocation would have been.
        let mut twin = Tenant::fork(&base);
        twin.alloc_with(class, Format::Pointers, &[Value::int(7)], &[])
            .unwrap();
        let next = |t: &mut Tenant| {
            let v = t.alloc_with(class, Format::Pointers, &[], &[]).unwrap();
            t.identity_hash(v).unwrap()
        };
        assert_eq!(next(&mut t), next(&mut twin));
    }
    // The words gathered, the arena's growth.
    assert!(refusals >= 2, "{refusals} large allocations");
}
