//! The interpreter on the same images written in the other byte order and the other V3
//! versions: images in the wild come big- and little-endian, with floats in either word
//! order (6502/6504 against 6505). Each image is exported by the squeak crate in a variant,
//! imported again, and must answer every expression exactly as the original does.

mod common;

use common::world::World;
use cowheap_heap::{BaseHeap, Value};
use cowheap_squeak::{ByteOrder, ExportOptions, ImageKind};

/// `heap` written as a V3 image of `version` in `order`, and read back.
fn variant(heap: &BaseHeap, version: u32, order: ByteOrder) -> BaseHeap {
    let options = ExportOptions {
        kind: Some(ImageKind::V3),
        version: Some(version),
        order: Some(order),
        ..ExportOptions::default()
    };
    let bytes = cowheap_squeak::export_bytes_with(heap, &options)
        .unwrap_or_else(|e| panic!("exporting as {version} {order:?}: {e}"));
    let back = cowheap_squeak::import_bytes(&bytes)
        .unwrap_or_else(|e| panic!("importing the {version} {order:?} export: {e}"));
    assert_eq!(back.format.version(), version);
    assert_eq!(back.format.order(), order);
    back.heap
}

/// Expressions whose printStrings cover integers small and large, fractions, floats (whose
/// word order differs between versions), strings, symbols and collections.
const EXPRESSIONS: [&str; 9] = [
    "3 + 4",
    "(1 to: 10) inject: 0 into: [:a :b | a + b]",
    "100 factorial",
    "2 raisedTo: 100",
    "(2/3) + (1/7)",
    "3.5 * 2",
    "2 sqrt",
    "'hello' reversed",
    "#(3 1 2) asSortedCollection asArray",
];

#[test]
fn mini_answers_the_same_in_every_byte_order_and_float_word_order() {
    let original = common::import("mini.image");
    let mut w = World::new("mini.image");
    let answers: Vec<String> = EXPRESSIONS.iter().map(|e| w.print(e)).collect();
    // The answers are the image's own: checked here against what they must be.
    assert_eq!(answers[0], "7");
    assert_eq!(answers[1], "55");
    assert_eq!(answers[3], "1267650600228229401496703205376");
    assert_eq!(answers[5], "7.0");
    assert!(answers[6].starts_with("1.41421356"), "{}", answers[6]);
    assert_eq!(answers[7], "'olleh'");
    for (version, order) in [
        (6502, ByteOrder::Big),
        (6505, ByteOrder::Little),
        (6505, ByteOrder::Big),
    ] {
        let mut w = World::of(variant(&original, version, order), "mini.image");
        for (e, want) in EXPRESSIONS.iter().zip(&answers) {
            assert_eq!(&w.print(e), want, "{e} on mini as {version} {order:?}");
        }
    }
}

#[test]
fn a_closure_image_answers_the_same_big_endian_and_with_the_other_float_word_order() {
    let original = common::import("bootstrapped.image");
    for (version, order) in [
        (6505, ByteOrder::Little),
        (6505, ByteOrder::Big),
        (6504, ByteOrder::Big),
    ] {
        let mut w = World::of(variant(&original, version, order), "bootstrapped.image");
        let r =
            w.vm.send_named(
                &mut w.t,
                &w.s,
                Value::int(20),
                "benchFib",
                &[],
                common::world::BUDGET,
            )
            .unwrap_or_else(|e| panic!("20 benchFib as {version} {order:?}: {e}"));
        assert_eq!(r.as_int(), Some(21891), "as {version} {order:?}");
    }
}
