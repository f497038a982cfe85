//! Segments out whose records or fills do not cover every stub: a record taken over by
//! another swapper ([`Swapper::adopt`]) that names only some of its segment's stubs is
//! refused with nothing changed, since a fault would fill those and drop the segment's file
//! with the other stubs still standing, which nothing could then bring back.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_segment::swap::{MemStore, SwapError, Swapper};
use cowheap_tenants::{Error, Tenant};
use std::sync::Arc;

/// A tenant on a small synthetic base, with a named root holding `root`, which holds a
/// byte object `leaf`.
fn two_members() -> (Arc<Base>, Tenant, Value, Value) {
    let base = Base::new(synth::image(300, 5));
    let mut t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let leaf = t.alloc_with(class, Format::Bytes, &[], b"leaf").unwrap();
    let root = t
        .alloc_with(class, Format::Pointers, &[leaf, Value::int(7)], &[])
        .unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[root], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    (base, t, root, leaf)
}

/// A record that names the root's stub but not the leaf's (the shape of a record of a
/// frame from before member stubs) is refused: adopted, its fault filled the root alone,
/// dropped the file and left the leaf a stub of a segment no swapper had out.
#[test]
fn a_record_naming_only_some_of_its_segments_stubs_is_refused() {
    let (base, mut t, root, leaf) = two_members();
    let store = MemStore::new();
    let first = Swapper::new(store.clone());
    let out = first.swap_out(&mut t, &[root]).unwrap();
    assert_eq!(out.stubs, 2);
    let whole = first.records(&mut t).unwrap();
    let mut records = whole.clone();
    records[0].members = None;
    let snapshot = t.snapshot();
    let mut t = Tenant::restore_from(&base, &snapshot).unwrap();
    let (root, leaf) = (
        Value::owned(root.word(), t.id()),
        Value::owned(leaf.word(), t.id()),
    );
    let second = Swapper::new(store.clone());
    let pinned = t.pinned_count();
    let r = second.adopt(&mut t, &records);
    assert!(matches!(r, Err(SwapError::Mismatch { .. })), "{r:?}");
    assert!(second.swapped().is_empty());
    assert_eq!(t.pinned_count(), pinned);
    assert_eq!(t.stubs_of(out.id.get()), 2);
    // The whole record is taken, and the segment comes back whole.
    second.adopt(&mut t, &whole).unwrap();
    let got = t
        .with_faults(|t| t.bytes(leaf).map(<[u8]>::to_vec))
        .unwrap();
    assert_eq!(got, b"leaf");
    assert_eq!(t.stubs_of(out.id.get()), 0);
    assert!(t.identical(t.slot(root, 0).unwrap(), leaf).unwrap());
    assert!(!matches!(t.slot(root, 1), Err(Error::Swapped { .. })));
}

/// A stub of the segment's id that its swap-out did not make (the embedder's own
/// [`Tenant::stub`]): the fault is refused with nothing changed, the segment still out on
/// its file, rather than filling the stubs it knows, dropping the file and leaving that
/// one a stub no swapper has out.
#[test]
fn a_fault_that_would_leave_a_stub_of_its_segment_fills_none() {
    let (_base, mut t, root, leaf) = two_members();
    let swapper = Swapper::new(MemStore::new());
    let out = swapper.swap_out(&mut t, &[root]).unwrap();
    let class = t.class_of(t.root("holder").unwrap()).unwrap();
    let extra = t.alloc_with(class, Format::Pointers, &[], &[]).unwrap();
    t.set_root("extra", extra).unwrap();
    t.stub(extra, out.id.get()).unwrap();
    let private = t.stats().private_objects;
    let r = swapper.fault_in(&mut t, out.id);
    assert!(matches!(r, Err(SwapError::Mismatch { .. })), "{r:?}");
    assert_eq!(t.stubs_of(out.id.get()), 3);
    assert_eq!(t.stub_segment(root).unwrap(), Some(out.id.get()));
    assert_eq!(t.stub_segment(leaf).unwrap(), Some(out.id.get()));
    assert_eq!(
        swapper.state(out.id),
        Some(cowheap_segment::tenant::SegmentState::OnFile)
    );
    t.collect();
    assert_eq!(t.stats().private_objects, private);
    // Reads by `&self` still answer from the file.
    assert_eq!(t.bytes(t.slot(root, 0).unwrap()).unwrap(), b"leaf");
}

/// A swapper that takes over records while the tenant holds stubs of a segment out through
/// another swapper is refused ([`SwapError::OtherSwapper`]) with nothing changed: adopting
/// installs its own fault handler and reader, after which that segment could be neither
/// read nor faulted in.
#[test]
fn adopting_beside_another_swappers_segment_is_refused() {
    let (_base, mut t, root, leaf) = two_members();
    let first = Swapper::new(MemStore::new());
    let out = first.swap_out(&mut t, &[root]).unwrap();
    let second = Swapper::new(MemStore::new());
    let r = second.adopt(&mut t, &[]);
    assert!(
        matches!(r, Err(SwapError::OtherSwapper { segment }) if segment == out.id),
        "{r:?}"
    );
    // The first swapper's segment still reads from its file, and comes back.
    assert_eq!(t.bytes(t.slot(root, 0).unwrap()).unwrap(), b"leaf");
    let got = t
        .with_faults(|t| t.bytes(leaf).map(<[u8]>::to_vec))
        .unwrap();
    assert_eq!(got, b"leaf");
    assert_eq!(t.stubs_of(out.id.get()), 0);
}
