//! `hash` and rehashing on Spur bases: the crate's [`Hasher`] reads Spur method headers
//! (the literal count in the low 15 bits, a primitive named by the `callPrimitive` that
//! begins the method) and runs the same modelled subset as on V3 bases, checked against the
//! image's own `hash` run by the interpreter, on `headless-spur32.image` and on its 64-bit
//! export (68021).
//!
//! - For random keys (SmallIntegers, LargeIntegers, boxed Floats, immediate Characters,
//!   Strings, Symbols, plain objects, and Points and Associations of them, nested), every
//!   hash the model computes is the one the image's `hash` answers, and the model computes
//!   none where the image's `hash` fails; for the leaves other than Strings it always
//!   computes one. The headless kernel's `identityHash` is `basicIdentityHash bitShift:
//!   18` (a LargeInteger in the 32-bit image, computed exactly); `SmallInteger>>hash` is a
//!   quick `^self` and `Character>>hash` primitive 171; SmallIntegers, LargeIntegers,
//!   Floats, Characters, Symbols, plain objects and Points and Associations of them are
//!   computed, Strings (the image's `String>>hash` loops) reported.
//! - Equality `Set`s and `Dictionary`s of random keys without Strings, Floats or negative
//!   numbers (see [`key_with`]), their elements scattered over the table, are rehashed by
//!   the model, and then the image's own `includes:`, `includesKey:` and `at:` find every
//!   key and an equal copy.
//! - A `Set` of Strings is reported (`Reason::Hash`), left for the image, rehashed by the
//!   image's own `rehash` run by the interpreter, and then found by its `includes:`.

mod common;
#[path = "common/hashed.rs"]
mod hashed;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::image_hash::Hasher;
use cowheap_segment::rehash::{self, Reason};
use cowheap_squeak::{ByteOrder, ExportOptions, ImageKind};
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm};
use hashed::{alloc, int_of, pair, permutation, scattered};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

const BUDGET: u64 = 5_000_000;

struct Image {
    base: Arc<Base>,
    names: BaseNames,
    symbols: Symbols,
    /// Largest SmallInteger plus one.
    small: i128,
}

fn of(heap: BaseHeap, small: i128) -> Image {
    let base = Base::new(heap);
    let names = BaseNames::of(base.heap()).unwrap();
    let symbols = Symbols::from_base(base.heap());
    Image {
        base,
        names,
        symbols,
        small,
    }
}

/// The headless image as read, and exported as 64-bit Spur (every Float boxed: the image
/// names no SmallFloat64 class) and read back.
fn images() -> &'static [Image; 2] {
    static I: OnceLock<[Image; 2]> = OnceLock::new();
    I.get_or_init(|| {
        let heap = cowheap_squeak::import(image("headless-spur32.image"))
            .unwrap()
            .heap;
        let options = ExportOptions {
            kind: Some(ImageKind::Spur64),
            order: Some(ByteOrder::Little),
            allow_missing_float_class: true,
            ..ExportOptions::default()
        };
        let bytes = cowheap_squeak::export_bytes_with(&heap, &options).unwrap();
        let wide = cowheap_squeak::import_bytes(&bytes).unwrap();
        assert_eq!(wide.format.version(), 68021);
        [of(heap, 1 << 30), of(wide.heap, 1 << 60)]
    })
}

#[derive(Clone, Debug)]
enum Key {
    Int(i64),
    Large(i128),
    Float(f64),
    Char(char),
    Str(Vec<u8>),
    Symbol(usize),
    Object,
    Point(Box<Key>, Box<Key>),
    Assoc(Box<Key>, Box<Key>),
}

const SYMBOLS: [&str; 6] = ["size", "at:", "printString", "new", "value", "hash"];

fn key() -> impl Strategy<Value = Key> {
    key_with(true)
}

/// Random keys; `all`: with Strings, whose `hash` the model does not compute here,
/// negative numbers, whose bit logic with a LargeInteger it refuses (and a Point's hash
/// is such logic), and Floats (the headless kernel's `=` between a Float and a
/// LargeInteger, which a Set's `scanFor:` may ask, fails: `Integer>>asFloat` sends `size`,
/// which its LargePositiveInteger does not understand).
fn key_with(all: bool) -> impl Strategy<Value = Key> {
    let text = if all { 0..12 } else { 0..1 };
    let low = if all { -(1i64 << 30) } else { 0 };
    let large = if all {
        prop_oneof![1i128 << 61..1 << 100, -(1i128 << 100)..-(1i128 << 61)].boxed()
    } else {
        (1i128 << 61..1 << 100).boxed()
    };
    let leaf = prop_oneof![
        (low..1 << 30).prop_map(Key::Int),
        large.prop_map(Key::Large),
        any::<f64>()
            .prop_filter("finite, and not -0.0 (equal to 0.0)", |f| {
                f.is_finite() && f.to_bits() != (-0.0f64).to_bits()
            })
            .prop_map(move |f| if all { Key::Float(f) } else { Key::Object }),
        any::<char>().prop_map(Key::Char),
        proptest::collection::vec(any::<u8>(), text).prop_map(|b| if b.is_empty() {
            Key::Object
        } else {
            Key::Str(b)
        }),
        (0..SYMBOLS.len()).prop_map(Key::Symbol),
        Just(Key::Object),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Key::Point(a.into(), b.into())),
            (inner.clone(), inner).prop_map(|(a, b)| Key::Assoc(a.into(), b.into())),
        ]
    })
}

fn global(img: &Image, name: &str) -> Value {
    img.names
        .global(name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn build(t: &mut Tenant, img: &Image, k: &Key) -> Value {
    let g = |n| global(img, n);
    match k {
        Key::Int(i) => Value::int(*i),
        Key::Large(i) => {
            let class = g(if *i < 0 {
                "LargeNegativeInteger"
            } else {
                "LargePositiveInteger"
            });
            let mag = i.unsigned_abs().to_le_bytes();
            let len = 16 - mag.iter().rev().take_while(|&&b| b == 0).count();
            let v = alloc(t, class, Format::Bytes, 0, len);
            t.set_bytes(v, 0, &mag[..len]).unwrap();
            v
        }
        Key::Float(f) => {
            let v = alloc(t, g("Float"), Format::Words, 0, 8);
            t.set_bytes(v, 0, &f.to_bits().to_le_bytes()).unwrap();
            v
        }
        Key::Char(c) => Value::char(*c),
        Key::Str(b) => {
            let v = alloc(t, g("String"), Format::Bytes, 0, b.len());
            t.set_bytes(v, 0, b).unwrap();
            v
        }
        Key::Symbol(i) => img.names.symbol(SYMBOLS[*i]).unwrap(),
        Key::Object => alloc(t, g("Object"), Format::Pointers, 0, 0),
        Key::Point(a, b) | Key::Assoc(a, b) => {
            let (a, b) = (build(t, img, a), build(t, img, b));
            let class = if matches!(k, Key::Point(..)) {
                "Point"
            } else {
                "Association"
            };
            pair(t, g(class), a, b)
        }
    }
}

/// The model's hash of `k` and the image's, `None` where it has none (the model's report,
/// the image's failure).
fn both(img: &Image, k: &Key) -> (Option<i128>, Option<i128>) {
    let mut t = Tenant::fork(&img.base);
    let mut vm = Vm::new(&t).unwrap();
    let v = build(&mut t, img, k);
    let mut hasher = Hasher::new(img.base.heap(), &img.names);
    let ours = hasher.hash(&t, v).unwrap().ok().map(i128::from);
    let theirs = vm
        .send_named(&mut t, &img.symbols, v, "hash", &[], BUDGET)
        .ok()
        .and_then(|h| int_of(&t, |n| global(img, n), h));
    (ours, theirs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every hash the model computes is the image's, and it computes none the image has
    /// not.
    #[test]
    fn spur_hashes_are_the_images_own(k in key()) {
        for img in images() {
            let (ours, theirs) = both(img, &k);
            // The leaves the model always computes here.
            if matches!(k, Key::Int(_) | Key::Large(_) | Key::Float(_) | Key::Char(_) | Key::Symbol(_) | Key::Object) {
                prop_assert!(ours.is_some(), "{:?} not computed", k);
            }
            if let Some(h) = ours {
                prop_assert_eq!(Some(h), theirs, "{:?} in a {}-bit image", k, if img.small == 1 << 30 { 32 } else { 64 });
            }
        }
    }
}

/// Fixed keys of every kind: computed, and equal to the image's answer, except Strings
/// (reported: the image's `String>>hash` loops).
#[test]
fn each_kind_of_key_is_computed_as_the_image_does_or_reported() {
    use Key::*;
    let computed = [
        Int(5),
        Int(-(1 << 30)),
        Large(1 << 70),
        Large(-(1 << 70)),
        Float(1.5),
        Float(-0.0),
        Char('a'),
        Char('\u{1F600}'),
        Symbol(0),
        Object,
        Point(Object.into(), Symbol(1).into()),
        Assoc(Symbol(2).into(), Int(3).into()),
        Point(Float(2.5).into(), Large(1 << 80).into()),
    ];
    for img in images() {
        for k in &computed {
            let (ours, theirs) = both(img, k);
            assert!(ours.is_some(), "{k:?} not computed");
            assert_eq!(ours, theirs, "{k:?}");
        }
        let k = Str(b"abc".to_vec());
        let (ours, theirs) = both(img, &k);
        assert!(ours.is_none() && theirs.is_some(), "{ours:?} {theirs:?}");
    }
}

fn has_object(k: &Key) -> bool {
    match k {
        Key::Object => true,
        Key::Point(a, b) | Key::Assoc(a, b) => has_object(a) || has_object(b),
        _ => false,
    }
}

/// What the image's `=` compares of `k`, as text: numbers by value (`3 = 3.0`), an
/// Association by its key alone (`LookupKey>>=`), a plain object by identity (`n` counts
/// them).
fn eq_text(k: &Key, n: &mut usize) -> String {
    match k {
        Key::Int(i) => format!("N{i}"),
        Key::Large(i) => format!("N{i}"),
        Key::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => format!("N{}", *f as i128),
        Key::Float(f) => format!("F{f:?}"),
        Key::Char(c) => format!("C{c}"),
        Key::Str(b) => format!("T{b:?}"),
        Key::Symbol(i) => format!("S{i}"),
        Key::Object => {
            *n += 1;
            format!("O{n}")
        }
        Key::Point(a, b) => format!("P({},{})", eq_text(a, n), eq_text(b, n)),
        Key::Assoc(a, _) => format!("A({})", eq_text(a, n)),
    }
}

/// Distinct keys by the image's `=`, as a Set holds them.
fn distinct(keys: Vec<Key>) -> Vec<Key> {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    keys.into_iter()
        .filter(|k| seen.insert(eq_text(k, &mut n)))
        .collect()
}

/// The image's `true`.
fn truth(vm: &mut Vm, t: &mut Tenant, img: &Image) -> Value {
    vm.send_named(
        t,
        &img.symbols,
        Value::int(0),
        "=",
        &[Value::int(0)],
        BUDGET,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Scattered equality collections are rehashed by the model on a Spur base, and then
    /// the image's own `includes:`, `includesKey:` and `at:` find every key, itself and an
    /// equal copy.
    #[test]
    fn rehashed_spur_collections_answer_the_images_lookups(
        keys in proptest::collection::vec(key_with(false), 1..10),
        extra in 1usize..16,
        seed in any::<u64>(),
        which in 0usize..2,
    ) {
        let keys = distinct(keys);
        let img = &images()[which];
        let mut t = Tenant::fork(&img.base);
        let mut vm = Vm::new(&t).unwrap();
        let values: Vec<Value> = keys.iter().map(|k| build(&mut t, img, k)).collect();
        let n = keys.len() + extra;
        let (set, dict) = scattered(&mut t, |n| global(img, n), &values, n, &permutation(n, seed));
        let r = rehash::rehash(&mut t, &img.names, &[set, dict]).unwrap();
        prop_assert_eq!(r.collections, 2);
        // No key here needs what the model refuses (bit logic with a negative number).
        prop_assert!(r.not_rehashed.is_empty(), "{}", r);
        let set = t.pin(set).unwrap();
        let dict = t.pin(dict).unwrap();
        let pinned: Vec<_> = values.iter().map(|&v| t.pin(v).unwrap()).collect();
        for (i, (k, h)) in keys.iter().zip(&pinned).enumerate() {
            let copy = build(&mut t, img, k);
            let copy = t.pin(copy).unwrap();
            let probes = if has_object(k) { vec![h] } else { vec![h, &copy] };
            for p in probes {
                let yes = truth(&mut vm, &mut t, img);
                for (c, selector) in [(set, "includes:"), (dict, "includesKey:")] {
                    let (c, pv) = (t.pinned(c).unwrap(), t.pinned(*p).unwrap());
                    let got = vm.send_named(&mut t, &img.symbols, c, selector, &[pv], BUDGET).unwrap();
                    prop_assert!(t.identical(got, yes).unwrap(), "{:?} {}", k, selector);
                }
                let (d, pv) = (t.pinned(dict).unwrap(), t.pinned(*p).unwrap());
                let at = vm.send_named(&mut t, &img.symbols, d, "at:", &[pv], BUDGET).unwrap();
                prop_assert_eq!(at.as_int(), Some(i as i64), "{:?} at:", k);
            }
        }
    }
}

/// A Set of Strings on a Spur base: the model reports it (the image's `String>>hash` is
/// outside it) and leaves it for the image; the headless kernel has no `rehash`, so the
/// image's rehash, run by the interpreter, is a typed failure (`rehash` not understood)
/// that leaves the Set as it was.
#[test]
fn a_spur_set_of_strings_is_left_for_the_image_which_cannot_rehash_it() {
    for img in images() {
        let mut t = Tenant::fork(&img.base);
        let mut vm = Vm::new(&t).unwrap();
        let values: Vec<Value> = (0..9)
            .map(|i| build(&mut t, img, &Key::Str(format!("word{i}").into_bytes())))
            .collect();
        let n = 16;
        let (set, _) = scattered(&mut t, |n| global(img, n), &values, n, &permutation(n, 7));
        let r = rehash::rehash(&mut t, &img.names, &[set]).unwrap();
        assert_eq!(r.collections, 1, "{r}");
        assert_eq!(r.left_for_image(), vec![0], "{r}");
        assert!(matches!(r.not_rehashed[0].why, Reason::Hash(_)), "{r}");
        let array = t.slot(set, 1).unwrap();
        let before: Vec<_> = (0..n).map(|i| t.slot(array, i).unwrap().word()).collect();
        let done = vm
            .rehash_by_image(&mut t, &img.symbols, &[set], BUDGET)
            .unwrap();
        assert!(done.rehashed.is_empty(), "{done}");
        assert!(
            matches!(
                &done.failed[..],
                [f] if matches!(&f.error, cowheap_vm::VmError::DoesNotUnderstand { selector, .. } if selector == "rehash")
            ),
            "{:?}",
            done.failed
        );
        let after: Vec<_> = (0..n).map(|i| t.slot(array, i).unwrap().word()).collect();
        assert_eq!(before, after);
    }
}
