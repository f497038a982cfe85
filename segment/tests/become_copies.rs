//! A segment's out-pointer to a copy a one-way become made the target of.
//!
//! Property checked: after `become_forward(a, b)` of two base objects, `b` copied by the
//! tenant, a reference to `b`'s copy from a segment member is the out-pointer of `b`, the
//! object it is, never of `a`, which only leads to it here (in another tenant, or the image a
//! segment is exported to, `a` is still an object of its own). Both orders of the two
//! objects' indices.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, synth};
use cowheap_segment::tenant::{OutRef, extract, tenant_roots};
use cowheap_tenants::Tenant;

#[test]
fn a_copy_a_one_way_become_forwarded_to_is_named_as_its_own_base_object() {
    let base = Base::new(synth::image(2_000, 3));
    let g = base.heap().root("Smalltalk").unwrap();
    let (p, q) = (
        base.heap().slot(g, 1).unwrap(),
        base.heap().slot(g, 2).unwrap(),
    );
    assert!(p.word().as_base().is_some() && q.word().as_base().is_some());
    for (a, b) in [(p, q), (q, p)] {
        let mut t = Tenant::fork(&base);
        // `b` copied, then `a` forwarded to it.
        t.set_identity_hash(b, 99).unwrap();
        t.become_forward(a, b).unwrap();
        let nil = t.base().heap().nil();
        let r = t.alloc_with(nil, Format::Pointers, &[b], &[]).unwrap();
        let others = tenant_roots(&t);
        let seg = extract(&t, &[r], &others).unwrap();
        let want = b.word().as_base().unwrap();
        let named: Vec<ObjectIndex> = seg
            .out
            .iter()
            .filter_map(|o| match o {
                OutRef::Base(x) => Some(*x),
                _ => None,
            })
            .collect();
        assert!(named.contains(&want), "{named:?} should name {want:?}");
        let other = a.word().as_base().unwrap();
        assert!(
            !named.contains(&other),
            "{named:?} names the forwarded {other:?}"
        );
    }
}
