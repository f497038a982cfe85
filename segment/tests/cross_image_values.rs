//! What an import makes in another image must be a value that image holds. An immediate
//! of the writer's image is made as the target image has it, or refused: a Spur Character
//! (an immediate) imported into a V3 image, whose Characters are the objects of its
//! CharacterTable, is that table's Character of the same value, as `Character value:`
//! answers it there (one past 255, which a V3 image has no table entry for, is refused); a
//! SmallInteger of a 64-bit Spur image past the 31 bits of a 32-bit image, and a
//! SmallFloat64 imported into an image without immediate floats, are refused with a typed
//! error, the tenant left as it was (its snapshot byte for byte).

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, Word};
use cowheap_segment::SegmentError;
use cowheap_segment::bind::BaseNames;
use cowheap_segment::file;
use cowheap_segment::tenant;
use cowheap_tenants::Tenant;
use std::sync::{Arc, OnceLock};

/// The headless image exported as 64-bit Spur and imported again: 61-bit SmallIntegers and
/// immediate floats.
fn spur64() -> &'static (Arc<Base>, BaseNames) {
    static B: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    B.get_or_init(|| {
        let (b32, _) = common::base("headless-spur32.image");
        let options = cowheap_squeak::ExportOptions {
            kind: Some(cowheap_squeak::ImageKind::Spur64),
            allow_missing_float_class: true,
            ..Default::default()
        };
        let bytes = cowheap_squeak::export_bytes_with(b32.heap(), &options).unwrap();
        let b = Base::new(cowheap_squeak::import_bytes(&bytes).unwrap().heap);
        let n = BaseNames::of(b.heap()).unwrap();
        (b, n)
    })
}

/// A portable segment file of an Array of `values`, made in a tenant of `from`.
fn array_file(from: &(Arc<Base>, BaseNames), values: &[Value]) -> Vec<u8> {
    let (b, names) = from;
    let mut t = Tenant::fork(b);
    let array = names.global("Array").unwrap();
    let holder = common::alloc(&mut t, array, Format::Pointers, values.len(), 0);
    for (i, &v) in values.iter().enumerate() {
        t.set_slot(holder, i, v).unwrap();
    }
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    seg.make_portable(&**t.base()).unwrap();
    file::to_bytes(&seg).unwrap()
}

/// Imports the segment file `bytes` into a tenant of `into` holding one object of its own
/// already: the tenant, and the first root or the error. A refused import must leave the
/// tenant's snapshot as it was.
fn import(bytes: &[u8], into: &Arc<Base>) -> (Tenant, Result<Value, SegmentError>) {
    let mut back = file::from_bytes(bytes, Some(into.fingerprint())).unwrap();
    let mut t = Tenant::fork(into);
    let names = BaseNames::of(into.heap()).unwrap();
    let mine = common::alloc(
        &mut t,
        names.global("Array").unwrap(),
        Format::Pointers,
        1,
        0,
    );
    t.set_root("mine", mine).unwrap();
    let before = t.snapshot();
    let r = back.import_into(&mut t, &[], false).map(|i| i.roots[0]);
    if r.is_err() {
        assert!(
            t.snapshot() == before,
            "a refused import changed the tenant"
        );
    }
    (t, r)
}

#[test]
fn a_spur_character_imported_into_a_v3_image_is_its_character_object() {
    let (mini, mini_names) = common::base("mini.image");
    let f = array_file(
        common::base("headless-spur32.image"),
        &[Value::char('a'), Value::char('\u{ff}')],
    );
    let (t, r) = import(&f, mini);
    let holder = r.unwrap();
    for (i, code) in [(0, 97), (1, 255)] {
        let c = t.slot(holder, i).unwrap();
        let expected = mini_names.character(mini.heap(), code).unwrap();
        assert!(
            t.identical(c, expected).unwrap(),
            "slot {i}: {:?}, not mini.image's Character value: {code}",
            c.word()
        );
    }
    // A value the CharacterTable has no entry for is refused, not made an immediate.
    let f = array_file(
        common::base("headless-spur32.image"),
        &[Value::char('\u{100}')],
    );
    let (_, r) = import(&f, mini);
    assert!(
        matches!(r, Err(SegmentError::NotHeldByTarget(_))),
        "{:?}",
        r.map(|v| v.word())
    );
}

#[test]
fn an_integer_past_the_targets_small_integers_is_refused() {
    let (spur32, _) = common::base("headless-spur32.image");
    let (mini, _) = common::base("mini.image");
    let big = 1i64 << 40;
    let f = array_file(spur64(), &[Value::int(3), Value::int(big)]);
    for into in [spur32, mini] {
        let (t, r) = import(&f, into);
        assert!(
            matches!(r, Err(SegmentError::NotHeldByTarget(_))),
            "{:?}",
            r.map(|h| t.slot(h, 1).unwrap().word())
        );
    }
    // The extremes of 31 bits import; one past them does not.
    let max = (1i64 << 30) - 1;
    let f = array_file(spur64(), &[Value::int(max), Value::int(-max - 1)]);
    let (t, r) = import(&f, mini);
    let h = r.unwrap();
    assert_eq!(t.slot(h, 0).unwrap().as_int(), Some(max));
    assert_eq!(t.slot(h, 1).unwrap().as_int(), Some(-max - 1));
    for past in [max + 1, -max - 2] {
        let f = array_file(spur64(), &[Value::int(past)]);
        let (_, r) = import(&f, mini);
        assert!(matches!(r, Err(SegmentError::NotHeldByTarget(_))), "{past}");
    }
    // Into the 64-bit image itself, as it was.
    let f = array_file(spur64(), &[Value::int(-max - 2)]);
    let (t, r) = import(&f, &spur64().0);
    let h = r.unwrap();
    assert_eq!(t.slot(h, 0).unwrap().as_int(), Some(-max - 2));
}

#[test]
fn an_immediate_float_into_an_image_without_them_is_refused() {
    let (spur32, _) = common::base("headless-spur32.image");
    let (mini, _) = common::base("mini.image");
    let one = Value::shared(Word::small_float_bits(0x3FF0_0000_0000_0000 >> 3).unwrap());
    let f = array_file(spur64(), &[one]);
    for into in [spur32, mini] {
        let (t, r) = import(&f, into);
        assert!(
            matches!(r, Err(SegmentError::NotHeldByTarget(_))),
            "{:?}",
            r.map(|h| t.slot(h, 0).unwrap().word())
        );
    }
    let (t, r) = import(&f, &spur64().0);
    assert!(t.slot(r.unwrap(), 0).unwrap().same_word(one));
}
