//! References in Spur images as a Spur VM reads them: a reference to a forwarder names the
//! object at the end of its chain (a cycle is refused), a reference to a free chunk or a
//! class-table entry that is one names nothing and is refused, and an old base that is not
//! 8-aligned (no object could start on it) is refused. The images are written here, small
//! and little-endian, with one segment.

mod common;
use common::spur_writer::*;

use cowheap_heap::{BaseHeap, ObjectIndex, Word};
use cowheap_squeak::{ImportError, import_bytes};

/// Slot `k` of the special objects array of an imported base.
fn special_slot(heap: &BaseHeap, k: usize) -> Word {
    let s = heap
        .root("specialObjects")
        .unwrap()
        .word()
        .as_base()
        .unwrap();
    heap.get_slot(s, k).unwrap()
}

#[test]
fn the_written_images_import() {
    for ws in [4, 8] {
        let b = spur_image(ws, 0x10000, &spur_objects(ws, vec![]), SPECIAL);
        let im = import_bytes(&b).unwrap_or_else(|e| panic!("{ws}: {e}"));
        assert_eq!(im.heap.len(), 8);
        assert!(special_slot(&im.heap, 1).is_base());
    }
}

/// An old base 4 modulo 8: every object would be at an address a Spur oop cannot name (in
/// a 64-bit image, every reference would read as an immediate float). Refused, as the
/// exporter refuses such a base.
#[test]
fn an_old_base_that_is_not_8_aligned_is_refused() {
    for ws in [4, 8] {
        let b = spur_image(ws, 0x1_0004, &spur_objects(ws, vec![]), SPECIAL);
        let r = import_bytes(&b);
        assert!(
            matches!(r, Err(ImportError::BadImageHeader(_))),
            "{ws}-byte words: {:?}",
            r.map(|im| special_slot(&im.heap, 1))
        );
    }
}

/// A slot of the special objects array referring to a forwarder (class index 8, format 7)
/// to `true`, or to a chain of two: the slot is `true`.
#[test]
fn a_reference_to_a_forwarder_is_its_target() {
    for ws in [4usize, 8] {
        for chain in [1, 2, 3] {
            // Objects 8.. are the forwarders, each to the next, the last to `true`.
            let fwds = (0..chain)
                .map(|k| {
                    let next = if k + 1 == chain { TRUE } else { 9 + k };
                    sobj(8, 7, 0, vec![S::R(next)])
                })
                .collect();
            let mut objs = spur_objects(ws, fwds);
            objs[SPECIAL].slots[3] = S::R(8);
            let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
            let im = import_bytes(&b).unwrap_or_else(|e| panic!("{ws}, {chain}: {e}"));
            assert_eq!(
                special_slot(&im.heap, 3),
                im.heap.root("true").unwrap().word(),
                "{ws}-byte words, {chain} forwarders"
            );
        }
    }
}

/// A class-table entry that is a forwarder to the class: instances of that class index
/// have the class.
#[test]
fn a_class_table_entry_that_is_a_forwarder_names_its_target() {
    for ws in [4usize, 8] {
        let mut objs = spur_objects(
            ws,
            vec![sobj(8, 7, 0, vec![S::R(CLASS)]), sobj(33, 0, 9, vec![])],
        );
        objs[5].slots[33] = S::R(8);
        let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
        let im = import_bytes(&b).unwrap_or_else(|e| panic!("{ws}: {e}"));
        assert_eq!(
            im.heap.class_word(ObjectIndex::from_u32(9)).unwrap(),
            Word::base(ObjectIndex::from_u32(CLASS as u32))
        );
    }
}

/// Forwarders that forward to each other (or to themselves) end at no object: a reference
/// to one is refused, naming the cycle.
#[test]
fn a_forwarder_cycle_is_refused() {
    for ws in [4usize, 8] {
        for fwds in [
            vec![sobj(8, 7, 0, vec![S::R(8)])],
            vec![sobj(8, 7, 0, vec![S::R(9)]), sobj(8, 7, 0, vec![S::R(8)])],
            vec![
                sobj(8, 7, 0, vec![S::R(9)]),
                sobj(8, 7, 0, vec![S::R(10)]),
                sobj(8, 7, 0, vec![S::R(9)]),
            ],
        ] {
            let n = fwds.len();
            let mut objs = spur_objects(ws, fwds);
            objs[SPECIAL].slots[3] = S::R(8);
            let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
            let r = import_bytes(&b);
            assert!(
                matches!(r, Err(ImportError::ForwarderCycle { .. })),
                "{ws}-byte words, {n} forwarders: {:?}",
                r.map(|im| special_slot(&im.heap, 3))
            );
            // Unreferenced, the cycle is harmless: the VM never follows it.
            objs[SPECIAL].slots[3] = S::R(NIL);
            let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
            assert!(
                import_bytes(&b).is_ok(),
                "{ws}-byte words, {n} unreferenced"
            );
        }
    }
}

/// A slot referring to a free chunk (class index 0), directly or through a forwarder, names
/// no object: refused.
#[test]
fn a_reference_to_a_free_chunk_is_refused() {
    for ws in [4usize, 8] {
        for through_forwarder in [false, true] {
            let free = 8;
            let mut extra = vec![sobj(0, 0, 0, vec![S::W(0); 2])];
            extra.push(sobj(8, 7, 0, vec![S::R(free)]));
            let mut objs = spur_objects(ws, extra);
            objs[SPECIAL].slots[3] = S::R(if through_forwarder { 9 } else { free });
            let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
            let r = import_bytes(&b);
            assert!(
                matches!(r, Err(ImportError::DanglingOop { .. })),
                "{ws}-byte words, through a forwarder: {through_forwarder}: {:?}",
                r.map(|im| special_slot(&im.heap, 3))
            );
        }
    }
}

/// A class-table entry that is a free chunk names no class: an instance of that class
/// index is refused.
#[test]
fn a_class_table_entry_that_is_a_free_chunk_is_no_class() {
    for ws in [4usize, 8] {
        let free = 8;
        let mut objs = spur_objects(
            ws,
            vec![sobj(0, 0, 0, vec![S::W(0); 2]), sobj(33, 0, 9, vec![])],
        );
        objs[5].slots[33] = S::R(free);
        let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
        let r = import_bytes(&b);
        assert!(
            matches!(r, Err(ImportError::BadClassIndex { index: 33, .. })),
            "{ws}-byte words: {:?}",
            r.map(|im| im.heap.class_word(ObjectIndex::from_u32(9)).ok())
        );
    }
}

/// A slot holding an immediate that no Spur VM makes (a 64-bit tag of 3, 5, 6 or 7; a
/// character past 32 bits) is refused as what it is, a bad immediate, not as a reference to
/// no object.
#[test]
fn an_immediate_no_vm_makes_is_refused_as_a_bad_immediate() {
    let ws = 8;
    for w in [3u64, 5, 6, 7, (1u64 << 35) | 2] {
        let mut objs = spur_objects(ws, vec![]);
        objs[SPECIAL].slots[3] = S::W(w);
        let b = spur_image(ws, 0x1_0000, &objs, SPECIAL);
        let r = import_bytes(&b);
        assert!(
            matches!(r, Err(ImportError::BadImmediate { oop, .. }) if oop == w),
            "{ws}-byte words, {w:#x}: {:?}",
            r.map(|im| special_slot(&im.heap, 3))
        );
    }
}
