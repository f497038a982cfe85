//! A store into the special objects array, or into its special selectors, is seen by the
//! interpreter at once, as a Squeak VM, which reads the array at each use, sees it: the
//! next send that is not understood sends the selector the array names now, a special
//! selector's bytecode sends the selector stored for it, in the same run as in a later
//! one; after the array is exchanged with another (a two-way become), the other's entries
//! are used at once. On a flat heap and on a tenant.

mod common;
use common::{on_both, send};

use cowheap_heap::Value;
use cowheap_vm::synth::{Lit, SynthImage};

/// `SmallInteger>>otherDnu: aMessage` and `SmallInteger>>two` (both `^2`),
/// `Object>>replaceFrom:to:with:startingAt:` (primitive 105), and three probes:
/// - `Object>>probe: specials sel: aSymbol`: `specials at: 21 put: aSymbol. ^self zork`,
///   #zork being understood by nothing;
/// - `Object>>probe: specials from: anArray`: `specials replaceFrom: 21 to: 21 with:
///   anArray startingAt: 1. ^self zork`;
/// - `Object>>probe: selectors size: aSymbol`: `selectors at: 37 put: aSymbol. ^self size`,
///   `size` sent by its special selector bytecode;
/// - `Object>>probe: a exchange: b`: `a elementsExchangeIdentityWith: b. ^self zork`
///   (primitive 128).
fn image() -> SynthImage {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("SmallInteger", "otherDnu:", 1, 1, &[], &[119, 124], 0);
    img.method("SmallInteger", "two", 0, 0, &[], &[119, 124], 0);
    img.method(
        "Object",
        "replaceFrom:to:with:startingAt:",
        4,
        4,
        &[],
        &[115, 124],
        105,
    );
    let lits = [Lit::Int(21), Lit::Sym("zork".into())];
    let code = [16, 32, 17, 193, 135, 112, 209, 124];
    img.method("Object", "probe:sel:", 2, 2, &lits, &code, 0);
    let lits = [
        Lit::Int(21),
        Lit::Sym("replaceFrom:to:with:startingAt:".into()),
        Lit::Sym("zork".into()),
    ];
    let code = [16, 32, 32, 17, 118, 131, 129, 135, 112, 210, 124];
    img.method("Object", "probe:from:", 2, 2, &lits, &code, 0);
    let code = [16, 32, 17, 193, 135, 112, 194, 124];
    img.method("Object", "probe:size:", 2, 2, &[Lit::Int(37)], &code, 0);
    img.method(
        "Object",
        "elementsExchangeIdentityWith:",
        1,
        1,
        &[],
        &[115, 124],
        128,
    );
    let lits = [
        Lit::Sym("elementsExchangeIdentityWith:".into()),
        Lit::Sym("zork".into()),
    ];
    let code = [16, 17, 224, 135, 112, 209, 124];
    img.method("Object", "probe:exchange:", 2, 2, &lits, &code, 0);
    img
}

#[test]
fn a_selector_stored_into_the_special_objects_array_is_sent_at_once() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let specials = vm.specials().array;
        let other = s.get("otherDnu:").unwrap();
        let now = send(vm, m, s, Value::int(3), "probe:sel:", &[specials, other]);
        assert_eq!(m.slot(specials, 20).unwrap().word(), other.word());
        let mut fresh = cowheap_vm::Vm::new(&*m).unwrap();
        let later = send(&mut fresh, m, s, Value::int(3), "zork", &[]).unwrap();
        assert_eq!(later.as_int(), Some(2));
        assert_eq!(
            now.map(|v| v.as_int()),
            Ok(Some(2)),
            "the send after the store sent the selector read before it"
        );
    });
}

#[test]
fn a_selector_replaced_in_the_special_objects_array_is_sent_at_once() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let specials = vm.specials().array;
        let other = s.get("otherDnu:").unwrap();
        let array = common::new_instance(m, "Array", 1);
        m.set_slot(array, 0, other).unwrap();
        let now = send(vm, m, s, Value::int(3), "probe:from:", &[specials, array]);
        assert_eq!(m.slot(specials, 20).unwrap().word(), other.word());
        assert_eq!(
            now.map(|v| v.as_int()),
            Ok(Some(2)),
            "the send after the store sent the selector read before it"
        );
    });
}

#[test]
fn a_special_selector_stored_is_sent_by_its_bytecode_at_once() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let selectors = m.slot(vm.specials().array, 23).unwrap();
        let two = s.get("two").unwrap();
        let before = send(vm, m, s, Value::int(3), "size", &[]).unwrap();
        assert_eq!(before.word(), vm.specials().nil.word());
        let now = send(vm, m, s, Value::int(3), "probe:size:", &[selectors, two]).unwrap();
        assert_eq!(m.slot(selectors, 36).unwrap().word(), two.word());
        assert_eq!(
            now.as_int(),
            Some(2),
            "the bytecode after the store sent the selector read before it"
        );
    });
}

/// The special objects array exchanged (two-way become) with a copy naming another
/// selector for `doesNotUnderstand:`: every reference to the array, the interpreter's
/// among them, leads to the copy, whose selector the next send not understood sends.
#[test]
fn a_special_objects_array_exchanged_is_read_at_once() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let specials = vm.specials().array;
        let n = m.size(specials).unwrap().slots;
        let copy = common::new_instance(m, "Array", n);
        for k in 0..n {
            let v = m.slot(specials, k).unwrap();
            m.set_slot(copy, k, v).unwrap();
        }
        let other = s.get("otherDnu:").unwrap();
        m.set_slot(copy, 20, other).unwrap();
        let (a, b) = (
            common::new_instance(m, "Array", 1),
            common::new_instance(m, "Array", 1),
        );
        m.set_slot(a, 0, specials).unwrap();
        m.set_slot(b, 0, copy).unwrap();
        let now = send(vm, m, s, Value::int(3), "probe:exchange:", &[a, b]);
        assert_eq!(
            m.slot(vm.specials().array, 20).unwrap().word(),
            other.word()
        );
        assert_eq!(
            now.map(|v| v.as_int()),
            Ok(Some(2)),
            "the send after the become sent the selector read before it"
        );
    });
}

/// `Object>>probe: a at: i put: v` (`a at: i put: v. ^self`) and `Object>>answerNil`
/// (`^nil`), beside the image above.
fn image_with_stores() -> SynthImage {
    let mut img = image();
    img.method(
        "Object",
        "probe:at:put:",
        3,
        3,
        &[],
        &[16, 17, 18, 193, 135, 120],
        0,
    );
    img.method("Object", "answerNil", 0, 0, &[], &[123], 0);
    img
}

/// nil, true and false are read once, as a Squeak VM reads them when it starts: an array
/// given another nil is not taken, and `^nil` answers the memory's nil still; nor is an
/// array that names nil for a class the interpreter instantiates (Float), which it would
/// then fail to make. The interpreter keeps what it read before in both cases.
#[test]
fn an_array_naming_another_nil_or_nil_for_a_class_is_not_taken() {
    on_both!(image_with_stores(), |vm, m, s| {
        let (specials, nil) = (vm.specials().array, vm.specials().nil);
        let float = vm.specials().float;
        let before = send(vm, m, s, Value::int(3), "answerNil", &[]).unwrap();
        assert_eq!(before.word(), nil.word());
        for (i, v) in [(1, Value::int(7)), (2, nil), (10, nil)] {
            let was = m.slot(specials, i as usize - 1).unwrap();
            let args = [specials, Value::int(i), v];
            send(vm, m, s, Value::int(3), "probe:at:put:", &args).unwrap();
            let after = send(vm, m, s, Value::int(3), "answerNil", &[]).unwrap();
            assert_eq!(after.word(), nil.word(), "at: {i}");
            assert_eq!(vm.specials().nil.word(), nil.word(), "at: {i}");
            assert_eq!(vm.specials().float.word(), float.word(), "at: {i}");
            assert!(vm.specials().true_.word() != nil.word(), "at: {i}");
            let args = [specials, Value::int(i), was];
            send(vm, m, s, Value::int(3), "probe:at:put:", &args).unwrap();
        }
    });
}
