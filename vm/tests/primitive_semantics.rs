//! Primitives and the sends around them checked against a Squeak VM at their edges, on
//! tenants of real images: a closure that is not well formed, or given more arguments than
//! its caller's stack holds, fails its `value` primitive (the image's fallback code runs)
//! rather than stopping the run; `perform:` of nil is not understood (a method dictionary's
//! empty slots hold no selector); `contextAt:` and `contextAt:put:` (210, 211) of an
//! object that is no context index it as `basicAt:` does; `stringAt:` and `stringAt:put:`
//! (63, 64) of a words object answer and take characters; a Spur image's 16- and 64-bit
//! units are answered, stored and replaced by the indexing primitives.

mod common;

use common::def;

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::{ObjectMemory, Symbols, Vm, VmError};

const BUDGET: u64 = 20_000_000;

#[test]
fn value_of_a_closure_that_is_not_well_formed_fails_the_primitive() {
    // Squeak's primitiveClosureValue fails (its fallback code then runs) unless the
    // closure's numArgs is the send's count, its outer context is a context and that
    // context's method is a CompiledMethod: `BlockClosure new value` reports the error in
    // Smalltalk (SqueakJS fails on the argument count alone).
    for img in ["bootstrapped.image", "headless-spur32.image"] {
        let base = common::base(img);
        let s = Symbols::from_base(base.heap());
        let mut t = Tenant::fork(&base);
        let mut vm = Vm::new(&t).unwrap();
        let class = vm.specials().block_closure.expect("a closure image");
        let b = vm
            .send_named(&mut t, &s, class, "new", &[], BUDGET)
            .unwrap();
        let r = vm.send_named(&mut t, &s, b, "value", &[], BUDGET);
        // The image's fallback (`valueWithArguments:`) reports the argument count.
        match r {
            Err(VmError::ImageError { message, .. }) => {
                assert!(message.contains("requires"), "{img}: {message}");
            }
            r => panic!("{img}: {r:?}"),
        }
    }
}

#[test]
fn closure_value_with_more_arguments_than_the_stack_holds_fails() {
    // Squeak's primitiveClosureValueWithArgs fails when the arguments do not fit the
    // active context (`stackPointerIndex + arraySize < contextSize`), as
    // perform:withArguments: does; the run must not stop with a push past the end of the
    // context. The one closure of bootstrapped.image, made to take 60 arguments, is sent
    // `valueWithArguments:` from outside, whose context (a large frame's, as the sending
    // method's would be) has room for 55.
    let base = common::base("bootstrapped.image");
    let s = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let class = vm.specials().block_closure.unwrap();
    let mut all = Vec::new();
    t.enumerate_objects(&mut all).unwrap();
    let b = all
        .into_iter()
        .find(|&o| t.class_of(o).unwrap().word() == class.word())
        .expect("a closure in bootstrapped.image");
    t.set_slot(b, 2, Value::int(60)).unwrap();
    let array_class = vm.specials().array_class;
    let args = t
        .alloc(
            array_class,
            Format::Pointers,
            ObjectSize {
                slots: 60,
                bytes: 0,
            },
        )
        .unwrap();
    // The primitive fails and the image's fallback code reports an error.
    match vm.send_named(&mut t, &s, b, "valueWithArguments:", &[args], BUDGET) {
        Err(VmError::ImageError { chain, .. }) => {
            assert!(chain.0[0].ends_with(">>valueWithArguments:"), "{chain}");
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn perform_of_nil_is_not_understood() {
    // A method dictionary's empty slots hold nil: Squeak's lookup ends a probe at nil and
    // never takes it for the selector, so `perform: nil` sends doesNotUnderstand:.
    let defs = def(
        "Point",
        "doesNotUnderstand:",
        "doesNotUnderstand: aMessage ^Array with: #dnu with: aMessage selector",
    );
    let src =
        "{(1@2) perform: nil. (1@2) perform: nil with: 3. (1@2) perform: nil withArguments: #()}";
    assert_eq!(
        common::on_mini(&defs, src).unwrap(),
        "((#dnu nil ) (#dnu nil ) (#dnu nil ) )".replace('#', "")
    );
}

#[test]
fn context_at_of_a_non_context_is_basic_at() {
    // Squeak's primitiveContextAt and primitiveContextAtPut index an object that is no
    // context as stObject:at: and stObject:at:put: do (SqueakJS: objectAt and objectAtPut),
    // as primitive 212 answers its basicSize: an Array whose third element is a
    // SmallInteger is not read as a context's stack.
    let defs = def("Object", "pAt:", "pAt: i <primitive: 210> ^#failed")
        + &def(
            "Object",
            "pAt:put:",
            "pAt: i put: v <primitive: 211> ^#failed",
        );
    let src = "| a | a := Array new: 10. a at: 1 put: #first; at: 3 put: 2; at: 7 put: #seventh. \
           {a pAt: 1. a pAt: 10. a pAt: 11. a pAt: 2 put: #second. a at: 2. \
           'abc' pAt: 2. 'abc' copy pAt: 2 put: 122; yourself}";
    assert_eq!(
        common::on_mini(&defs, src).unwrap(),
        "(#first nil failed #second #second 98 'azc' )".replace('#', "")
    );
}

#[test]
fn string_at_of_a_words_object_answers_characters() {
    // Squeak's primitiveStringAt and primitiveStringAtPut (63, 64) convert for any indexable
    // object of raw units: a words object's element is answered as the Character of its
    // value, and a Character is stored as its value (SqueakJS: objectAt and objectAtPut with
    // convertChars), never an integer.
    let defs = def("Object", "sAt:", "sAt: i <primitive: 63> ^#failed")
        + &def(
            "Object",
            "sAt:put:",
            "sAt: i put: v <primitive: 64> ^#failed",
        );
    let src = "| b | b := Bitmap with: 65 with: 66. \
           {b sAt: 1. b sAt: 2 put: $z. b at: 2. b sAt: 1 put: 67. b at: 1}";
    assert_eq!(
        common::on_mini(&defs, src).unwrap(),
        "($A $z 122 failed 65 )"
    );
}

#[test]
fn basic_at_of_16_and_64_bit_units_answers_them() {
    // A Spur image's 16- and 64-bit indexable objects (DoubleByteArray, DoubleWordArray,
    // a 16-bit SoundBuffer) are indexed by their units, as a Squeak VM's `basicAt:` and
    // `basicAt:put:` do: 0 to 2^16 - 1 and 0 to 2^64 - 1, a LargePositiveInteger past the
    // SmallIntegers. `basicSize` counts the units, so `basicAt:` reaches each of them.
    let base = common::base("headless-spur32.image");
    let s = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    // Of class String, whose `replaceFrom:to:with:startingAt:` is primitive 105 (the
    // primitives read the object's own format, not its class's).
    let class = vm.specials().string;
    let size = |bytes| ObjectSize { slots: 0, bytes };
    let shorts = t.alloc(class, Format::Shorts, size(6)).unwrap();
    t.set_bytes(shorts, 0, &[1, 0, 0xFE, 0xFF, 3, 0]).unwrap();
    let longs = t.alloc(class, Format::DoubleWords, size(16)).unwrap();
    t.set_bytes(longs, 0, &[7, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    t.set_bytes(longs, 8, &[0xFF; 8]).unwrap();
    let int = Value::int;
    let answer = |r: Result<Value, VmError>| r.unwrap().as_int();
    let text = {
        let mut send =
            |r: Value, sel: &str, args: &[Value]| vm.send_named(&mut t, &s, r, sel, args, BUDGET);
        assert_eq!(answer(send(shorts, "basicSize", &[])), Some(3));
        assert_eq!(answer(send(shorts, "basicAt:", &[int(2)])), Some(0xFFFE));
        send(shorts, "basicAt:put:", &[int(3), int(0xFFFF)]).unwrap();
        assert_eq!(answer(send(shorts, "basicAt:", &[int(3)])), Some(0xFFFF));
        assert!(send(shorts, "basicAt:put:", &[int(1), int(0x1_0000)]).is_err());
        assert!(send(shorts, "basicAt:put:", &[int(1), int(-1)]).is_err());
        assert_eq!(answer(send(shorts, "basicAt:", &[int(1)])), Some(1));
        assert_eq!(answer(send(longs, "basicSize", &[])), Some(2));
        assert_eq!(answer(send(longs, "basicAt:", &[int(1)])), Some(7));
        let big = send(longs, "basicAt:", &[int(2)]).unwrap();
        let text = send(big, "printString", &[]).unwrap();
        send(longs, "basicAt:put:", &[int(1), big]).unwrap();
        send(longs, "basicAt:put:", &[int(2), int(9)]).unwrap();
        text
    };
    assert_eq!(
        cowheap_vm::names::string(&t, text).as_deref(),
        Some("18446744073709551615")
    );
    let mut want = [0xFF; 16];
    want[8..].copy_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(t.bytes(longs).unwrap(), &want);
    // replaceFrom:to:with:startingAt: copies units of the same size, one at a time from
    // the first within one object.
    let replace = "replaceFrom:to:with:startingAt:";
    vm.send_named(
        &mut t,
        &s,
        shorts,
        replace,
        &[int(2), int(3), shorts, int(1)],
        BUDGET,
    )
    .unwrap();
    vm.send_named(
        &mut t,
        &s,
        longs,
        replace,
        &[int(1), int(1), longs, int(2)],
        BUDGET,
    )
    .unwrap();
    assert_eq!(t.bytes(shorts).unwrap(), &[1, 0, 1, 0, 1, 0]);
    assert_eq!(
        t.bytes(longs).unwrap(),
        &[9, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]
    );
}
