//! A swapper asked to fault a segment into a tenant it does not serve refuses
//! ([`SwapError::OtherTenant`]) with that tenant as it was: no fault handler installed on
//! it, and no segment of its own (of its own swapper, whose ids may equal this one's)
//! faulted in in its place.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_segment::swap::{MemStore, SwapError, Swapper};
use cowheap_tenants::Tenant;
use std::sync::Arc;

/// A tenant of `base` with a named root holding `root`, which holds a byte object.
fn tenant(base: &Arc<Base>) -> (Tenant, Value) {
    let mut t = Tenant::fork(base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let leaf = t.alloc_with(class, Format::Bytes, &[], b"leaf").unwrap();
    let root = t
        .alloc_with(class, Format::Pointers, &[leaf, Value::int(7)], &[])
        .unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[root], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    (t, root)
}

#[test]
fn a_fault_into_a_tenant_the_swapper_does_not_serve_is_refused_and_changes_nothing() {
    let base = Base::new(synth::image(300, 5));
    let (mut a, root_a) = tenant(&base);
    let (mut b, root_b) = tenant(&base);
    let sa = Swapper::new(MemStore::new());
    let id = sa.swap_out(&mut a, &[root_a]).unwrap().id;

    // A tenant with no handler is refused, and is given none.
    let (mut c, _) = tenant(&base);
    let r = sa.fault_in(&mut c, id);
    assert!(matches!(r, Err(SwapError::OtherTenant { .. })), "{r:?}");
    assert!(!c.has_fault_handler());

    // A tenant with a segment of the same id out through its own swapper: that segment
    // stays out.
    let sb = Swapper::new(MemStore::new());
    let id_b = sb.swap_out(&mut b, &[root_b]).unwrap().id;
    assert_eq!(id_b, id);
    let r = sa.fault_in(&mut b, id);
    assert!(matches!(r, Err(SwapError::OtherTenant { .. })), "{r:?}");
    assert_eq!(b.stub_segment(root_b).unwrap(), Some(id.get()));
    assert_eq!(sb.swapped().len(), 1);

    // Each swapper still faults its own tenant's segment in.
    sa.fault_in(&mut a, id).unwrap();
    sb.fault_in(&mut b, id).unwrap();
    assert_eq!(a.stub_segment(root_a).unwrap(), None);
    assert_eq!(b.stub_segment(root_b).unwrap(), None);
}
