//! Segments out whose records or fills do not cover every stub: a record taken over by
//! another swapper ([`Swapper::adopt`]) that names only some of its segment's stubs is
//! refused with nothing changed, since a fault would fill those and drop the segment's file
//! with the other stubs still standing, which nothing could then bring back.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, Word, synth};
use cowheap_segment::swap::{MemStore, OutRecord, SwapError, Swapper};
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

/// A tenant holding two roots (each with a slot and no other member) in a segment out, as a
/// build that filled stubs one at a time left it after a fault that stopped part-way: the
/// first root filled with its body if `fill_first`, the second still a stub, its body made
/// and kept. The records, the store, the tenant restored from its snapshot, the first root,
/// the second root and its kept body.
fn stopped_part_way(fill_first: bool) -> (Vec<OutRecord>, MemStore, Tenant, Value, Value, Word) {
    let base = Base::new(synth::image(300, 5));
    let mut t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let r1 = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let r2 = t
        .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    let holder = t
        .alloc_with(class, Format::Pointers, &[r1, r2], &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    let store = MemStore::new();
    let swapper = Swapper::new(store.clone());
    let out = swapper.swap_out(&mut t, &[r1, r2]).unwrap();
    assert_eq!(out.stubs, 2);
    let records = swapper.records(&mut t).unwrap();
    // The fault that stopped: r1 filled, r2's body made and kept.
    if fill_first {
        let b1 = t
            .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
            .unwrap();
        t.fill_stub(r1, b1).unwrap();
    }
    let b2 = t
        .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    let kept = t.identity_word(b2).unwrap();
    t.pin(b2).unwrap();
    let snapshot = t.snapshot();
    let t = Tenant::restore_from(&base, &snapshot).unwrap();
    let (r1, r2) = (
        Value::owned(r1.word(), t.id()),
        Value::owned(r2.word(), t.id()),
    );
    (records, store, t, r1, r2, kept)
}

/// A record of a fault that stopped part-way is taken over and its fault fills the stubs
/// left from the bodies kept.
#[test]
fn a_record_of_a_fault_that_stopped_part_way_is_finished_from_its_kept_bodies() {
    let (mut records, store, mut t, r1, r2, kept) = stopped_part_way(true);
    records[0].pending = Some(vec![kept]);
    let id = records[0].id;
    let second = Swapper::new(store);
    second.adopt(&mut t, &records).unwrap();
    second.fault_in(&mut t, id).unwrap();
    assert_eq!(t.stubs_of(id.get()), 0);
    assert_eq!(t.slot(r1, 0).unwrap().as_int(), Some(1));
    assert_eq!(t.slot(r2, 0).unwrap().as_int(), Some(2));
    assert!(second.swapped().is_empty());
}

/// A record whose kept bodies do not match the stubs it leaves standing (a stub standing
/// before the first kept body, or more bodies kept than it has stubs) is refused at
/// adoption with nothing changed: taken over, its fault could never fill them
/// ([`SwapError::Mismatch`] at every fault) and the stubs' objects were lost for good.
#[test]
fn a_record_whose_kept_bodies_do_not_fit_its_stubs_is_refused() {
    for (fill_first, bodies) in [(true, 0), (false, 1), (false, 3)] {
        let (records, store, mut t, r1, r2, kept) = stopped_part_way(fill_first);
        let id = records[0].id;
        let mut bad = records.clone();
        bad[0].pending = Some(vec![kept; bodies]);
        let second = Swapper::new(store.clone());
        let pinned = t.pinned_count();
        let r = second.adopt(&mut t, &bad);
        assert!(
            matches!(r, Err(SwapError::Mismatch { .. })),
            "{fill_first} {bodies}: {r:?}"
        );
        assert!(second.swapped().is_empty());
        assert_eq!(t.pinned_count(), pinned);
        assert_eq!(t.stub_segment(r2).unwrap(), Some(id.get()));
        let first = if fill_first { None } else { Some(id.get()) };
        assert_eq!(t.stub_segment(r1).unwrap(), first);
    }
}

/// A record whose kept bodies are no bodies a fault can fill from (a stub, or one body kept
/// for two stubs) is refused at adoption with nothing changed: taken over, its every fault
/// was refused by the fill ([`cowheap_tenants::Error::NotSwappable`]) and the stubs'
/// objects were lost for good.
#[test]
fn a_record_keeping_a_stub_or_one_body_twice_is_refused() {
    for (fill_first, stub_kept) in [(true, true), (false, false)] {
        let (records, store, mut t, _r1, r2, kept) = stopped_part_way(fill_first);
        let id = records[0].id;
        let mut bad = records.clone();
        bad[0].pending = Some(if stub_kept {
            vec![r2.word()]
        } else {
            vec![kept, kept]
        });
        let second = Swapper::new(store.clone());
        let pinned = t.pinned_count();
        let r = second.adopt(&mut t, &bad);
        assert!(
            matches!(r, Err(SwapError::Mismatch { .. })),
            "{fill_first} {stub_kept}: {r:?}"
        );
        assert!(second.swapped().is_empty());
        assert_eq!(t.pinned_count(), pinned);
        assert_eq!(t.stub_segment(r2).unwrap(), Some(id.get()));
    }
}

/// A record of a fault that stopped part-way, whose filled root the tenant has since dropped
/// and collected, is still recorded and taken over again (the tenant moves on, suspended and
/// resumed): the filled stubs are no part of the fault, which fills the rest. Before,
/// `records` refused the collected word, and the tenant could not be suspended until the
/// segment was faulted in.
#[test]
fn a_record_whose_filled_root_was_collected_is_still_recorded_and_taken_over() {
    let (mut records, store, mut t, r1, r2, kept) = stopped_part_way(true);
    records[0].pending = Some(vec![kept]);
    let id = records[0].id;
    let second = Swapper::new(store.clone());
    second.adopt(&mut t, &records).unwrap();
    let holder = t.root("holder").unwrap();
    t.set_slot(holder, 0, Value::int(0)).unwrap();
    t.collect();
    assert!(t.stub_segment(r1).is_err(), "the filled root is collected");
    let again = second.records(&mut t).unwrap();
    assert_eq!(again.len(), 1);
    let snapshot = t.snapshot();
    let mut t = Tenant::restore_from(t.base(), &snapshot).unwrap();
    let r2 = Value::owned(r2.word(), t.id());
    let third = Swapper::new(store);
    third.adopt(&mut t, &again).unwrap();
    third.fault_in(&mut t, id).unwrap();
    assert_eq!(t.stubs_of(id.get()), 0);
    assert_eq!(t.slot(r2, 0).unwrap().as_int(), Some(2));
    assert_eq!(t.pinned_count(), 0);
}
