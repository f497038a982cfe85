//! Edges of the exports and the swapper: a class of the segment keeps its instances
//! through a V3 export even when its format word names a compact index; a Spur round trip,
//! which gives the segment's classes hash 0, rehashes the identity collections keyed by
//! them; `to_v3` refuses a version it cannot write; a swapper finds a free id past a long
//! run of ids the store holds; neither a refused swap-out nor the adoption of no record
//! binds the swapper to its tenant; and both exports refuse a compiled method whose header
//! a tenant changed so that its literal count is not its slots.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_segment::SegmentError;
use cowheap_segment::bind::BaseNames;
use cowheap_segment::export;
use cowheap_segment::rehash;
use cowheap_segment::spur::{SpurSegment, WordSize};
use cowheap_segment::spur_export::{from_spur, letter_for, to_segment, to_spur};
use cowheap_segment::swap::{MemStore, SegmentId, SegmentStore, Swapper};
use cowheap_segment::tenant::{self, SRef};
use cowheap_segment::v3::{ByteOrder, ClassRef, V3Segment};
use cowheap_tenants::Tenant;
use std::sync::{Arc, OnceLock};

fn mini() -> Arc<Base> {
    static B: OnceLock<Arc<Base>> = OnceLock::new();
    B.get_or_init(|| Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap))
        .clone()
}

/// A private copy of base class `class` (every slot, its format word among them).
fn copy_of_class(t: &mut Tenant, class: Value) -> Value {
    let meta = t.class_of(class).unwrap();
    let n = t.size(class).unwrap().slots;
    let copy = t
        .alloc(meta, Format::Pointers, ObjectSize { slots: n, bytes: 0 })
        .unwrap();
    for k in 0..n {
        let v = t.slot(class, k).unwrap();
        t.set_slot(copy, k, v).unwrap();
    }
    copy
}

fn pointers(t: &mut Tenant, class: Value, slots: usize) -> Value {
    t.alloc(class, Format::Pointers, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

#[test]
fn a_v3_export_keeps_the_class_of_an_instance_of_a_copied_compact_class() {
    let mini = mini();
    let names = BaseNames::of(mini.heap()).unwrap();
    let array = names.global("Array").unwrap();
    let mut t = Tenant::fork(&mini);
    let copy = copy_of_class(&mut t, array);
    let format = t.slot(copy, 2).unwrap().as_int().unwrap();
    assert_ne!(
        (format >> 11) & 31,
        0,
        "Array is a compact class in mini.image"
    );
    let x = pointers(&mut t, copy, 2);
    t.set_slot(x, 0, Value::int(1)).unwrap();
    // An instance of the base's own Array: its compact header is kept.
    let plain = pointers(&mut t, array, 1);
    let holder = pointers(&mut t, array, 3);
    t.set_slot(holder, 0, x).unwrap();
    t.set_slot(holder, 1, copy).unwrap();
    t.set_slot(holder, 2, plain).unwrap();
    let seg = tenant::extract(&t, &[holder], &[]).unwrap();
    let at = |v: Value| seg.members.iter().position(|m| m.same_word(v)).unwrap();
    let (xi, ci) = (at(x), at(copy));
    assert_eq!(seg.objects[xi].class, SRef::Obj(ci as u32));
    let e = export::to_v3(&seg, mini.heap(), ByteOrder::Little, 6502, b's').unwrap();
    let back = V3Segment::parse(&e.segment.to_bytes().unwrap(), e.out.len()).unwrap();
    assert_eq!(back.objects[xi + 1].class, ClassRef::Obj(ci as u32 + 1));
    assert!(matches!(
        back.objects[at(plain) + 1].class,
        ClassRef::Compact(_)
    ));
}

#[test]
fn to_v3_refuses_a_version_it_cannot_write() {
    let mini = mini();
    let names = BaseNames::of(mini.heap()).unwrap();
    let mut t = Tenant::fork(&mini);
    let a = pointers(&mut t, names.global("Array").unwrap(), 1);
    let seg = tenant::extract(&t, &[a], &[]).unwrap();
    for version in [6505, 6521, 0] {
        let r = export::to_v3(&seg, mini.heap(), ByteOrder::Little, version, b's');
        assert!(
            matches!(r, Err(SegmentError::BadVersion(v)) if v == version),
            "{version}: {:?}",
            r.map(|_| ())
        );
    }
    assert!(export::to_v3(&seg, mini.heap(), ByteOrder::Big, 6504, b's').is_ok());
}

#[test]
fn a_spur_round_trip_rehashes_an_identity_set_keyed_by_a_member_class() {
    let mini = mini();
    let names = BaseNames::of(mini.heap()).unwrap();
    let g = |n: &str| names.global(n).unwrap();
    let mut t = Tenant::fork(&mini);
    let c = copy_of_class(&mut t, g("Object"));
    let inst = pointers(&mut t, c, 0);
    let h = t.identity_hash(c).unwrap() as usize;
    let size = [7usize, 11, 13]
        .into_iter()
        .find(|m| !h.is_multiple_of(*m))
        .unwrap();
    let array = pointers(&mut t, g("Array"), size);
    t.set_slot(array, h % size, c).unwrap();
    let set = pointers(&mut t, g("IdentitySet"), 2);
    t.set_slot(set, 0, Value::int(1)).unwrap();
    t.set_slot(set, 1, array).unwrap();
    let holder = pointers(&mut t, g("Array"), 2);
    t.set_slot(holder, 0, set).unwrap();
    t.set_slot(holder, 1, inst).unwrap();
    assert!(rehash::lookup(&t, &names, set, c).unwrap().is_some());
    let seg = tenant::extract(&t, &[holder], &[]).unwrap();
    let order = ByteOrder::Little;
    let e = to_spur(&seg, mini.heap(), order, WordSize::W32, letter_for(order)).unwrap();
    let back = SpurSegment::parse(&e.segment.to_bytes().unwrap(), e.out.len()).unwrap();
    let mut read = to_segment(&back, &e.out, mini.fingerprint()).unwrap();
    let mut t2 = Tenant::fork(&mini);
    let imported = read.import_into(&mut t2, &[], false).unwrap();
    let new_of = |v: Value| {
        let j = seg.members.iter().position(|m| m.same_word(v)).unwrap();
        imported.members[(e.object_of[j] - 1) as usize]
    };
    let (set2, c2) = (new_of(set), new_of(c));
    assert!(
        rehash::lookup(&t2, &names, set2, c2).unwrap().is_some(),
        "the IdentitySet no longer finds its key (class hash {h} -> {})",
        t2.identity_hash(c2).unwrap()
    );
}

/// A tenant of a synthetic base with one private object held by a root: the object.
fn held_object(base: &Arc<Base>, t: &mut Tenant) -> Value {
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let root = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let h = t.alloc_with(class, Format::Pointers, &[root], &[]).unwrap();
    t.set_root("holder", h).unwrap();
    root
}

#[test]
fn a_fresh_swapper_over_a_store_of_many_kept_files_still_swaps_out() {
    let base = Base::new(synth::image(300, 5));
    let store = MemStore::new();
    for id in 1..=5_000 {
        store.put(SegmentId::new(id), b"old").unwrap();
    }
    let s = Swapper::new(store);
    let mut t = Tenant::fork(&base);
    for _ in 0..3 {
        let root = held_object(&base, &mut t);
        let out = s.swap_out(&mut t, &[root]).unwrap();
        assert!(out.id > SegmentId::new(5_000), "{:?}", out.id);
    }
}

#[test]
fn a_refused_swap_out_does_not_bind_the_swapper() {
    let base = Base::new(synth::image(300, 5));
    let mut t1 = Tenant::fork(&base);
    let mut t2 = Tenant::fork(&base);
    let s = Swapper::new(MemStore::new());
    assert!(s.swap_out(&mut t1, &[]).is_err());
    assert!(s.records(&mut t1).unwrap().is_empty());
    let root = held_object(&base, &mut t2);
    s.swap_out(&mut t2, &[root]).unwrap();
    // Now it serves t2.
    let other = held_object(&base, &mut t1);
    assert!(s.swap_out(&mut t1, &[other]).is_err());
}

#[test]
fn adopting_no_record_does_not_bind_the_swapper() {
    let base = Base::new(synth::image(300, 5));
    let mut t1 = Tenant::fork(&base);
    let mut t2 = Tenant::fork(&base);
    let s = Swapper::new(MemStore::new());
    s.adopt(&mut t1, &[]).unwrap();
    assert!(s.swapped().is_empty(), "no segment is out");
    let root = held_object(&base, &mut t2);
    s.swap_out(&mut t2, &[root]).unwrap();
}

/// A tenant's compiled method of one slot (its header) and 12 bytes whose header says
/// `literals` literals, in a segment of its own; the base imported from `name`.
fn method_segment(name: &str, spur: bool, literals: i64) -> (Arc<Base>, tenant::TenantSegment) {
    let base = Base::new(cowheap_squeak::import(image(name)).unwrap().heap);
    let heap = base.heap();
    let method_class = heap
        .indices()
        .find(|&x| heap.object(x).unwrap().format == Format::CompiledMethod)
        .map(|x| heap.class_word(x).unwrap())
        .unwrap();
    let mut t = Tenant::fork(&base);
    let m = t
        .alloc(
            Value::shared(method_class),
            Format::CompiledMethod,
            ObjectSize {
                slots: 1,
                bytes: 12,
            },
        )
        .unwrap();
    // The literal count in bits 9-16 of a V3 header's value, bits 0-14 of a Spur one's.
    let header = if spur { literals } else { literals << 9 };
    t.set_slot(m, 0, Value::int(header)).unwrap();
    // Bytes whose words read as small integers in either format.
    t.set_bytes(m, 0, &[1, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0])
        .unwrap();
    let seg = tenant::extract(&t, &[m], &[]).unwrap();
    (base, seg)
}

/// A method whose header a tenant set to two literals while it holds none: written, a
/// reader would take its first bytes for literals. Both exports refuse it; with the header
/// its slots agree with, it is written and reads back as it was.
#[test]
fn exports_refuse_a_method_whose_header_disagrees_with_its_slots() {
    let unrepresentable = |r: Result<(), SegmentError>| matches!(r, Err(SegmentError::Unrepresentable(w)) if w.contains("literals"));
    // V3, from a V3 base.
    let (base, seg) = method_segment("mini.image", false, 2);
    let r = export::to_v3(&seg, base.heap(), ByteOrder::Little, 6502, b's');
    assert!(unrepresentable(r.map(|_| ())));
    let (base, seg) = method_segment("mini.image", false, 0);
    let e = export::to_v3(&seg, base.heap(), ByteOrder::Little, 6502, b's').unwrap();
    let back = V3Segment::parse(&e.segment.to_bytes().unwrap(), e.out.len()).unwrap();
    assert_eq!(back.objects[1].pointers.len(), 1);
    assert_eq!(back.objects[1].raw.len(), 3);
    // Spur, from a Spur base, in either word size.
    for words in [WordSize::W32, WordSize::W64] {
        let (base, seg) = method_segment("headless-spur32.image", true, 2);
        let r = to_spur(&seg, base.heap(), ByteOrder::Little, words, b's');
        assert!(unrepresentable(r.map(|_| ())), "{words:?}");
        let (base, seg) = method_segment("headless-spur32.image", true, 0);
        let e = to_spur(&seg, base.heap(), ByteOrder::Little, words, b's').unwrap();
        let (objs, _) =
            from_spur(&SpurSegment::parse(&e.segment.to_bytes().unwrap(), e.out.len()).unwrap())
                .unwrap();
        assert_eq!(objs[0].slots.len(), 1, "{words:?}");
        assert_eq!(
            objs[0].bytes,
            [1, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0],
            "{words:?}"
        );
    }
}
