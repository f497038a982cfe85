//! Boxed Floats keep their values through every export (the other byte order, another V3
//! version, 64-bit Spur), and an export writes the version and byte order the base came
//! from unless told otherwise.

mod common;

use common::*;
use cowheap_heap::{BaseHeap, Builder, Format, ObjectIndex, Word};
use cowheap_squeak::{
    ByteOrder, ExportError, ExportOptions, ImageFormat, ImageKind, Imported, export_bytes,
    export_bytes_with, float_value, import_bytes,
};

const MINI: &str = "mini.image";
const BOOTSTRAPPED: &str = "bootstrapped.image";

fn import(name: &str) -> Imported {
    import_bytes(&image_bytes(name)).unwrap()
}

fn other(order: ByteOrder) -> ByteOrder {
    match order {
        ByteOrder::Little => ByteOrder::Big,
        ByteOrder::Big => ByteOrder::Little,
    }
}

/// Every boxed Float of `heap`: its object and its value's bits.
fn floats(heap: &BaseHeap) -> Vec<(ObjectIndex, u64)> {
    heap.indices()
        .filter_map(|x| float_value(heap, x).map(|v| (x, v.to_bits())))
        .collect()
}

fn assert_same_floats(a: &BaseHeap, b: &BaseHeap, what: &str) {
    let (fa, fb) = (floats(a), floats(b));
    assert_eq!(fa.len(), fb.len(), "{what}: Float count");
    let changed: Vec<_> = fa
        .iter()
        .zip(&fb)
        .filter(|(p, q)| p != q)
        .map(|(p, q)| (f64::from_bits(p.1), f64::from_bits(q.1)))
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: {} of {} Floats changed value, e.g. {:?}",
        changed.len(),
        fa.len(),
        changed.first()
    );
}

#[test]
fn real_images_read_their_floats() {
    for (name, count) in [
        (SCRATCH, 2_591),
        (MINI, 183),
        (BOOTSTRAPPED, 52),
        (HEADLESS, 51),
    ] {
        let im = import(name);
        let values: Vec<f64> = floats(&im.heap)
            .iter()
            .map(|f| f64::from_bits(f.1))
            .collect();
        assert_eq!(values.len(), count, "{name}");
        assert!(
            values.contains(&std::f64::consts::PI),
            "{name}: no Float reads as pi"
        );
    }
}

#[test]
fn floats_keep_their_values_in_the_other_byte_order() {
    for name in [SCRATCH, MINI, BOOTSTRAPPED, HEADLESS] {
        let original = image_bytes(name);
        let im = import_bytes(&original).unwrap();
        let flipped = im.format.with_order(other(im.format.order()));
        let bytes = export_bytes(&im.heap, flipped).unwrap();
        let back = import_bytes(&bytes).unwrap();
        assert_eq!(back.format, flipped);
        assert_same_floats(&im.heap, &back.heap, &format!("{name} as {flipped:?}"));
        assert!(
            export_bytes(&back.heap, im.format).unwrap() == original,
            "{name}: there and back is not the original file"
        );
    }
    let im = headless();
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let options = ExportOptions {
            allow_missing_float_class: true,
            ..ExportOptions::exactly(ImageFormat::spur64(order))
        };
        let back = import_bytes(&export_bytes_with(&im.heap, &options).unwrap()).unwrap();
        assert_same_floats(
            &im.heap,
            &back.heap,
            &format!("headless as 64-bit {order:?}"),
        );
    }
}

/// A base made in cowheap: nil, a Float class, one Float, a special objects array naming
/// them (and an empty compact classes array, which a V3 import needs).
fn handmade(value: f64) -> (BaseHeap, ObjectIndex) {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let float_class = b
        .add(
            nil,
            Format::Pointers,
            vec![nil, nil, Word::int(0).unwrap()],
            vec![],
        )
        .unwrap();
    let float = b
        .add(
            float_class,
            Format::Words,
            vec![],
            value.to_le_bytes().to_vec(),
        )
        .unwrap();
    let compact = b.add(nil, Format::Pointers, vec![], vec![]).unwrap();
    let mut specials = vec![nil; 29];
    specials[cowheap_squeak::SPECIAL_FLOAT] = float_class;
    specials[28] = compact;
    let special = b.add(nil, Format::Pointers, specials, vec![]).unwrap();
    b.add_root("specialObjects", special).unwrap();
    // Identity hashes V3's 12 bits hold (the builder's defaults have 22).
    for (hash, w) in (1..).zip([nil, float_class, float, compact, special]) {
        b.set_hash(w, hash).unwrap();
    }
    (b.freeze().unwrap(), float.as_base().unwrap())
}

#[test]
fn a_handmade_float_is_written_in_each_versions_word_order() {
    let value = -1234.5678;
    let (heap, x) = handmade(value);
    assert_eq!(float_value(&heap, x), Some(value));
    let bits = value.to_bits();
    let (hi, lo) = ((bits >> 32) as u32, bits as u32);
    for version in [6502, 6504, 6505] {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let f = ImageFormat::new(version, order).unwrap();
            let bytes = export_bytes(&heap, f).unwrap();
            // What a VM reads: the high word first in 6502 and 6504, the double in the
            // file's byte order in 6505.
            let words = if version == 6505 && order == ByteOrder::Little {
                [lo, hi]
            } else {
                [hi, lo]
            };
            let expected: Vec<u8> = words
                .iter()
                .flat_map(|w| match order {
                    ByteOrder::Little => w.to_le_bytes(),
                    ByteOrder::Big => w.to_be_bytes(),
                })
                .collect();
            assert!(
                bytes.windows(8).any(|w| w == expected),
                "{f:?}: the Float's words are not in the version's order"
            );
            let back = import_bytes(&bytes).unwrap();
            assert_eq!(float_value(&back.heap, x), Some(value), "{f:?}");
        }
    }
}

#[test]
fn v3_export_writes_the_version_the_base_came_from() {
    let original = image_bytes(BOOTSTRAPPED);
    let im = import_bytes(&original).unwrap();
    assert_eq!(im.format.version(), 6505);
    let v3 = ExportOptions {
        kind: Some(ImageKind::V3),
        ..ExportOptions::default()
    };
    assert_eq!(v3.resolve(&im.heap).unwrap(), im.format);
    assert!(export_bytes_with(&im.heap, &v3).unwrap() == original);
    assert!(export_bytes_with(&im.heap, &ExportOptions::default()).unwrap() == original);
    // Asked for 6502 or 6504, the Floats go high word first and keep their values; written as
    // 6505 again, it is the original file.
    for version in [6502, 6504] {
        let asked = ExportOptions {
            version: Some(version),
            ..v3
        };
        let bytes = export_bytes_with(&im.heap, &asked).unwrap();
        let back = import_bytes(&bytes).unwrap();
        assert_eq!(back.format.version(), version);
        assert_same_floats(&im.heap, &back.heap, &format!("bootstrapped as {version}"));
        let again = ExportOptions {
            version: Some(6505),
            ..v3
        };
        assert!(export_bytes_with(&back.heap, &again).unwrap() == original);
    }
    // A version of another kind is refused.
    let wrong = ExportOptions {
        version: Some(6521),
        ..v3
    };
    let e = export_bytes_with(&im.heap, &wrong);
    assert!(matches!(e, Err(ExportError::Unsupported(_))), "{e:?}");
}

#[test]
fn export_defaults_to_the_byte_order_the_base_came_from() {
    for name in [SCRATCH, BOOTSTRAPPED, HEADLESS] {
        let im = import(name);
        let big = im.format.with_order(ByteOrder::Big);
        let bytes = export_bytes(&im.heap, big).unwrap();
        let back = import_bytes(&bytes).unwrap();
        let default = ExportOptions::default();
        assert_eq!(default.resolve(&back.heap).unwrap(), big, "{name}");
        assert!(
            export_bytes_with(&back.heap, &default).unwrap() == bytes,
            "{name}: the default export of a big-endian base is not the big-endian file"
        );
        let le = ExportOptions {
            order: Some(ByteOrder::Little),
            ..default
        };
        assert!(export_bytes_with(&back.heap, &le).unwrap() == image_bytes(name));
    }
    // A base not imported from an image has no format to default to, except its kind's.
    let (heap, _) = handmade(1.5);
    let e = ExportOptions::default().resolve(&heap);
    assert!(matches!(e, Err(ExportError::Unsupported(_))), "{e:?}");
    let v3 = ExportOptions {
        kind: Some(ImageKind::V3),
        ..ExportOptions::default()
    };
    assert_eq!(
        v3.resolve(&heap).unwrap(),
        ImageFormat::v3(ByteOrder::Little)
    );
}

#[test]
fn importers_name_the_class_of_immediate_floats() {
    // No real image here has a SmallFloat64 class.
    for name in [SCRATCH, MINI, BOOTSTRAPPED, HEADLESS] {
        assert!(import(name).heap.float_class().is_none(), "{name}");
    }
    // V3 and 32-bit Spur: the class named SmallFloat64 (whose metaclass is
    // `SmallFloat64 class`).
    let mut b = Builder::new();
    let nil = b.add_nil();
    let int = Word::int(2).unwrap();
    let meta = b
        .add(
            nil,
            Format::Pointers,
            vec![nil, nil, int, nil, nil, nil],
            vec![],
        )
        .unwrap();
    let name = b
        .add(nil, Format::Bytes, vec![], b"SmallFloat64".to_vec())
        .unwrap();
    let class = b
        .add(
            meta,
            Format::Pointers,
            vec![nil, nil, int, nil, nil, nil, name],
            vec![],
        )
        .unwrap();
    b.set_slot(meta, 5, class).unwrap();
    let compact = b.add(nil, Format::Pointers, vec![], vec![]).unwrap();
    let mut specials = vec![nil; 29];
    specials[28] = compact;
    let special = b.add(nil, Format::Pointers, specials, vec![]).unwrap();
    b.add_root("specialObjects", special).unwrap();
    for (hash, w) in (1..).zip([nil, meta, name, class, compact, special]) {
        b.set_hash(w, hash).unwrap();
    }
    let heap = b.freeze().unwrap();
    let back =
        import_bytes(&export_bytes(&heap, ImageFormat::v3(ByteOrder::Big)).unwrap()).unwrap();
    assert_eq!(back.heap.float_class().map(|v| v.word()), Some(class));
}

#[test]
fn spur64_export_fills_class_table_entry_4_and_makes_floats_immediate() {
    // The headless image given a class of immediate floats (its Float class stands in).
    let im = headless();
    let special = im.heap.root("specialObjects").unwrap().as_base().unwrap();
    let float_class = im.heap.object(special).unwrap().slots[cowheap_squeak::SPECIAL_FLOAT];
    let heap = rebuild(&im.heap, &[], Some(float_class));
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let bytes = export_bytes(&heap, ImageFormat::spur64(order)).unwrap();
        let back = import_bytes(&bytes).unwrap();
        assert_eq!(
            back.heap.float_class().map(|v| v.word()),
            Some(float_class),
            "class-table entry 4"
        );
        // Every reference to a boxed Float a SmallFloat64 can hold is that immediate now;
        // the others still refer to the boxed object.
        let (mut immediate, mut boxed) = (0, 0);
        let page = heap.object(ObjectIndex::from_u32(4)).unwrap().slots[0];
        // A context's pc counts its method's header and literal words: 8 bytes each now.
        let context = heap.object(special).unwrap().slots[10];
        for x in heap.indices() {
            let (a, b) = (heap.object(x).unwrap(), back.heap.object(x).unwrap());
            for (k, (&p, &q)) in a.slots.iter().zip(b.slots).enumerate() {
                if Word::base(x) == page && k == 4 {
                    assert_eq!((p, q), (heap.nil().word(), float_class));
                    continue;
                }
                if a.class == context && k == 1 {
                    let method = a.slots[3].as_base().unwrap();
                    let literals = heap.get_slot(method, 0).unwrap().as_int().unwrap() & 0x7FFF;
                    let moved = p.as_int().map(|pc| pc + 4 * (literals + 1));
                    assert_eq!(q.as_int(), moved, "pc of {x}");
                    continue;
                }
                let Some(v) = p.as_base().and_then(|y| float_value(&heap, y)) else {
                    assert_eq!(p, q, "object {x}");
                    continue;
                };
                match cowheap_heap::Value::shared(q).as_f64() {
                    Some(w) => {
                        assert_eq!(w.to_bits(), v.to_bits(), "object {x}");
                        immediate += 1;
                    }
                    None => {
                        assert_eq!(p, q, "object {x}: {v} stayed boxed");
                        assert!(!(v.is_finite() && v.abs() > 1e-37 && v.abs() < 1e38) || v == 0.0);
                        boxed += 1;
                    }
                }
            }
        }
        assert!(
            immediate > 0,
            "no Float became immediate ({boxed} stayed boxed)"
        );
        // 64-bit again is the same file; 32-bit cannot hold the immediates.
        assert!(export_bytes(&back.heap, ImageFormat::spur64(order)).unwrap() == bytes);
        let e = export_bytes(&back.heap, ImageFormat::spur32(order));
        assert!(
            matches!(e, Err(ExportError::Unrepresentable { .. })),
            "{e:?}"
        );
    }
}
