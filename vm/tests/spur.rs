//! `headless-spur32.image` (32-bit Spur, 6521, no compiler): the image's own code run by
//! `perform`, each program on a tenant and on the flat heap, checked by value.
//!
//! The image is a small kernel (about 100 classes): LargeInteger arithmetic and printing,
//! Floats, Intervals, OrderedCollections, Strings with immediate characters; it has no
//! `factorial` and no Fraction.

mod common;

use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::image::{ClassFormat, MethodHeader, SpurHeaderError};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError, names};

const IMAGE: &str = "headless-spur32.image";
const BUDGET: u64 = 50_000_000;

/// Runs `check` on a tenant of the image and on its flat heap.
macro_rules! on_both {
    (|$vm:ident, $m:ident, $s:ident| $body:block) => {{
        let base = common::base(IMAGE);
        let symbols = Symbols::from_base(base.heap());
        let $s = &symbols;
        {
            let mut t = Tenant::fork(&base);
            let $m = &mut t;
            let mut vm = Vm::new(&*$m).expect("a Spur image the interpreter runs");
            let $vm = &mut vm;
            $body
        }
        {
            let mut flat = FlatHeap::from_base(base.heap());
            let $m = &mut flat;
            let mut vm = Vm::new(&*$m).expect("a Spur image the interpreter runs");
            let $vm = &mut vm;
            $body
        }
    }};
}

/// `rcvr sel args`, which must answer: [`common::answer`] within [`BUDGET`].
fn send<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    rcvr: Value,
    sel: &str,
    args: &[Value],
) -> Value {
    common::answer(vm, m, s, rcvr, sel, args, BUDGET)
}

/// The text of the String `rcvr printString` answers.
fn print<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, rcvr: Value) -> String {
    let p = send(vm, m, s, rcvr, "printString", &[]);
    names::string(m, p).expect("printString answers a String")
}

/// The double a boxed Float holds.
fn float<M: ObjectMemory>(m: &M, v: Value) -> f64 {
    assert_eq!(m.format(v).unwrap(), Format::Words, "a boxed Float");
    let b: [u8; 8] = m.bytes(v).unwrap().try_into().expect("8 bytes");
    f64::from_le_bytes(b)
}

/// The class named `name`, found among all objects.
fn global_class<M: ObjectMemory>(m: &M, name: &str) -> Value {
    let mut all = Vec::new();
    m.enumerate_objects(&mut all).unwrap();
    all.into_iter()
        .find(|&o| {
            m.format(o).ok() == Some(Format::Pointers)
                && names::class_name(m, o).as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("no class {name}"))
}

#[test]
fn the_image_is_read_as_spur() {
    let base = common::base(IMAGE);
    let t = Tenant::fork(&base);
    let vm = Vm::new(&t).unwrap();
    assert!(vm.specials().spur);
    assert!(vm.specials().closures);
    assert!(vm.specials().character_table.is_none());
    assert!(vm.specials().large_negative.is_some());
    let v3 = common::base("bootstrapped.image");
    let vm = Vm::new(&Tenant::fork(&v3)).unwrap();
    assert!(!vm.specials().spur);
    assert!(vm.specials().character_table.is_some());
}

#[test]
fn twenty_factorial_by_large_integer_multiplication() {
    // 2 * 3 * ... * 20, each product by the image's SmallInteger and LargeInteger code.
    let want: u64 = (1..=20).product();
    on_both!(|vm, m, s| {
        let mut r = Value::int(1);
        for i in 2..=20 {
            r = send(vm, m, s, r, "*", &[Value::int(i)]);
        }
        assert!(r.as_int().is_none(), "20! is past the SmallIntegers");
        assert_eq!(print(vm, m, s, r), want.to_string());
        // And back down by exact division.
        let mut q = r;
        for i in 2..=20 {
            q = send(vm, m, s, q, "//", &[Value::int(i)]);
        }
        assert_eq!(q.as_int(), Some(1));
    });
}

#[test]
fn large_powers_and_negative_large_integers_print() {
    let want = (1u128 << 100).to_string();
    on_both!(|vm, m, s| {
        let p = send(vm, m, s, Value::int(2), "raisedTo:", &[Value::int(100)]);
        assert_eq!(print(vm, m, s, p), want);
        let n = send(vm, m, s, p, "negated", &[]);
        assert_eq!(print(vm, m, s, n), format!("-{want}"));
        let z = send(vm, m, s, p, "+", &[n]);
        assert_eq!(z.as_int(), Some(0));
        let big = send(
            vm,
            m,
            s,
            Value::int(1_000_000),
            "*",
            &[Value::int(1_000_000)],
        );
        assert_eq!(print(vm, m, s, big), "1000000000000");
    });
}

#[test]
fn integers_print_in_bases() {
    on_both!(|vm, m, s| {
        assert_eq!(print(vm, m, s, Value::int(12345)), "12345");
        let p = send(vm, m, s, Value::int(-4711), "printString", &[]);
        assert_eq!(names::string(m, p).as_deref(), Some("-4711"));
        let p = send(
            vm,
            m,
            s,
            Value::int(255),
            "printStringBase:",
            &[Value::int(16)],
        );
        assert_eq!(names::string(m, p).as_deref(), Some("16rFF"));
        let max = (1i64 << 30) - 1;
        let p = send(vm, m, s, Value::int(max), "printString", &[]);
        assert_eq!(names::string(m, p), Some(max.to_string()));
    });
}

#[test]
fn division_answers_floats() {
    // The image has no Fraction: an inexact `/` answers a Float.
    on_both!(|vm, m, s| {
        let q = send(vm, m, s, Value::int(3), "/", &[Value::int(4)]);
        assert_eq!(float(m, q), 0.75);
        let back = send(vm, m, s, q, "*", &[Value::int(4)]);
        assert_eq!(float(m, back), 3.0);
        let eq = send(vm, m, s, back, "=", &[Value::int(3)]);
        assert_eq!(eq.word(), vm.specials().true_.word());
        let exact = send(vm, m, s, Value::int(12), "/", &[Value::int(4)]);
        assert_eq!(exact.as_int(), Some(3));
        let t = send(vm, m, s, Value::int(22), "/", &[Value::int(7)]);
        let t = send(vm, m, s, t, "truncated", &[]);
        assert_eq!(t.as_int(), Some(3));
    });
}

#[test]
fn characters_are_immediates() {
    on_both!(|vm, m, s| {
        let a = send(vm, m, s, Value::int(65), "asCharacter", &[]);
        assert_eq!(a.as_char(), Some('A'));
        let code = send(vm, m, s, Value::char('z'), "asInteger", &[]);
        assert_eq!(code.as_int(), Some(122));
        let class = m.class_of(Value::char('a')).unwrap();
        assert_eq!(names::class_name(m, class).as_deref(), Some("Character"));
        let b = send(vm, m, s, class, "value:", &[Value::int(66)]);
        assert_eq!(b.as_char(), Some('B'));
        let up = send(vm, m, s, Value::char('q'), "asUppercase", &[]);
        assert_eq!(up.as_char(), Some('Q'));
        assert_eq!(print(vm, m, s, Value::char('x')), "$x");
    });
}

#[test]
fn strings_read_and_write_immediate_characters() {
    on_both!(|vm, m, s| {
        let str = send(vm, m, s, Value::int(9081726), "printString", &[]);
        let c = send(vm, m, s, str, "at:", &[Value::int(2)]);
        assert_eq!(c.as_char(), Some('0'));
        send(vm, m, s, str, "at:put:", &[Value::int(1), Value::char('7')]);
        assert_eq!(names::string(m, str).as_deref(), Some("7081726"));
        let both = send(vm, m, s, str, ",", &[str]);
        assert_eq!(names::string(m, both).as_deref(), Some("70817267081726"));
        let i = send(
            vm,
            m,
            s,
            both,
            "indexOf:ifAbsent:",
            &[Value::char('2'), Value::int(0)],
        );
        assert_eq!(i.as_int(), Some(6));
        let n = send(vm, m, s, both, "size", &[]);
        assert_eq!(n.as_int(), Some(14));
    });
}

#[test]
fn intervals_and_collections() {
    on_both!(|vm, m, s| {
        let iv = send(vm, m, s, Value::int(1), "to:", &[Value::int(100)]);
        assert_eq!(print(vm, m, s, iv), "(1 to: 100)");
        let sum = send(vm, m, s, iv, "sum", &[]);
        assert_eq!(sum.as_int(), Some(5050));
        let arr = send(vm, m, s, iv, "asArray", &[]);
        assert_eq!(m.size(arr).unwrap().slots, 100);
        assert_eq!(m.slot(arr, 41).unwrap().as_int(), Some(42));
        let oc_class = global_class(m, "OrderedCollection");
        let oc = send(vm, m, s, oc_class, "new", &[]);
        for i in [5, 3, 9] {
            send(vm, m, s, oc, "add:", &[Value::int(i)]);
        }
        send(vm, m, s, oc, "addFirst:", &[Value::int(1)]);
        assert_eq!(send(vm, m, s, oc, "size", &[]).as_int(), Some(4));
        assert_eq!(send(vm, m, s, oc, "first", &[]).as_int(), Some(1));
        assert_eq!(send(vm, m, s, oc, "last", &[]).as_int(), Some(9));
        assert_eq!(send(vm, m, s, oc, "sum", &[]).as_int(), Some(18));
        assert_eq!(send(vm, m, s, oc, "removeFirst", &[]).as_int(), Some(1));
        let a = send(vm, m, s, oc, "asArray", &[]);
        let got: Vec<_> = (0..3).map(|i| m.slot(a, i).unwrap().as_int()).collect();
        assert_eq!(got, [Some(5), Some(3), Some(9)]);
    });
}

#[test]
fn an_unknown_selector_is_a_typed_error_naming_it_and_the_class() {
    on_both!(|vm, m, s| {
        let err = vm
            .send_named(m, s, Value::int(20), "factorial", &[], BUDGET)
            .unwrap_err();
        match err {
            VmError::DoesNotUnderstand {
                selector,
                receiver_class,
                ..
            } => {
                assert_eq!(selector, "factorial");
                assert_eq!(receiver_class, "SmallInteger");
            }
            e => panic!("{e}"),
        }
        // A metaclass renders as `X class`.
        let class = m.class_of(Value::int(1)).unwrap();
        let err = vm
            .send_named(m, s, class, "frobnicate", &[], BUDGET)
            .unwrap_err();
        assert!(
            matches!(&err, VmError::DoesNotUnderstand { receiver_class, .. } if receiver_class == "SmallInteger class"),
            "{err}"
        );
    });
}

#[test]
fn a_long_sum_stops_at_its_budget_and_resumes_to_the_same_answer() {
    on_both!(|vm, m, s| {
        let iv = send(vm, m, s, Value::int(1), "to:", &[Value::int(100_000)]);
        let err = vm.send_named(m, s, iv, "sum", &[], 20_000).unwrap_err();
        assert!(
            matches!(err, VmError::BudgetExhausted { budget: 20_000, .. }),
            "{err}"
        );
        assert!(vm.is_suspended(m));
        let mut rounds = 1;
        let r = loop {
            match vm.resume(m, 20_000) {
                Ok(v) => break v,
                Err(VmError::BudgetExhausted { .. }) => rounds += 1,
                Err(e) => panic!("{e}"),
            }
        };
        assert!(rounds > 10, "{rounds} rounds");
        assert_eq!(print(vm, m, s, r), "5000050000");
    });
}

#[test]
fn a_sista_method_is_a_typed_error() {
    on_both!(|vm, m, s| {
        // Give SmallInteger>>printOn:base: the alternate bytecode set's sign bit.
        let class = m.class_of(Value::int(1)).unwrap();
        let method = common::method_of(m, class, "printOn:base:");
        let h = m.slot(method, 0).unwrap().as_int().unwrap();
        m.set_slot(method, 0, Value::int(h - (1 << 30))).unwrap();
        let err = vm
            .send_named(m, s, Value::int(5), "printString", &[], BUDGET)
            .unwrap_err();
        assert!(
            matches!(&err, VmError::UnsupportedBytecodeSet { set, .. } if set.contains("Sista")),
            "{err}"
        );
    });
}

#[test]
fn spur_headers_and_formats_decode() {
    // numLiterals 8, no primitive, 1 temporary (Object>>printString of the image).
    let h = MethodHeader::decode_spur(0x40008, &[64, 65]).unwrap();
    assert_eq!(
        (h.literals, h.temps, h.args, h.primitive, h.large),
        (8, 1, 0, 0, false)
    );
    // A primitive, 2 arguments, a large frame.
    let raw = (2 << 24) | (3 << 18) | (1 << 17) | (1 << 16) | 5;
    let h = MethodHeader::decode_spur(raw, &[139, 0x2C, 0x01, 0]).unwrap();
    assert_eq!(
        (h.literals, h.temps, h.args, h.primitive, h.large),
        (5, 3, 2, 300, true)
    );
    assert_eq!(
        MethodHeader::decode_spur(raw, &[112, 124]),
        Err(SpurHeaderError::NoCallPrimitive)
    );
    assert_eq!(
        MethodHeader::decode_spur(raw | i64::MIN, &[139, 1, 0]),
        Err(SpurHeaderError::AlternateBytecodes)
    );
    assert_eq!(MethodHeader::literals_of(raw, true), 5);
    assert_eq!(
        ClassFormat::decode_spur(0x30006),
        ClassFormat { spec: 3, fixed: 6 }
    );
    assert_eq!(
        ClassFormat::decode_spur(0x100000),
        ClassFormat { spec: 8, fixed: 0 }
    );
    assert_eq!(
        ClassFormat::decode_spur(0xA0000),
        ClassFormat { spec: 6, fixed: 0 }
    );
    assert_eq!(ClassFormat::decode_spur(0x70000).spec, 7);
}

#[test]
fn a_32_bit_base_whose_version_says_64_bit_runs_and_an_unknown_version_is_refused() {
    // A 32-bit base labelled 68021 is read with 8-byte words and 61-bit SmallIntegers; its
    // methods' bytecodes are found from their own pc base, so it runs (never panics).
    let base = common::import(IMAGE);
    let symbols = Symbols::from_base(&base);
    let mut flat = FlatHeap::from_base(&base);
    flat.set_root("image.version", Value::int(68021)).unwrap();
    let mut vm = Vm::new(&flat).unwrap();
    assert_eq!(vm.specials().word_bytes, 8);
    assert_eq!(vm.specials().max_int, (1 << 60) - 1);
    let r = vm
        .send_named(
            &mut flat,
            &symbols,
            Value::int(1 << 20),
            "*",
            &[Value::int(1 << 20)],
            BUDGET,
        )
        .unwrap();
    assert_eq!(r.as_int(), Some(1 << 40));
    let p = vm
        .print_string(&mut flat, &symbols, Value::int(4711), BUDGET)
        .unwrap();
    assert_eq!(p, "4711");
    for version in [68020, 6520, 12345] {
        flat.set_root("image.version", Value::int(version)).unwrap();
        let err = Vm::new(&flat).unwrap_err();
        assert!(
            matches!(err, VmError::UnsupportedImage { version: v, .. } if v == version),
            "{err}"
        );
    }
}

/// A Spur class whose format is 16-bit (12) or 64-bit (9) indexable makes instances of that
/// layout, as Spur's `basicNew:` does (`DoubleByteArray`, `DoubleWordArray`), and `at:`,
/// `at:put:` and `basicSize` count their elements. The kernel image has no such class, so
/// the test makes one: a copy of `ByteArray` with the format word changed.
#[test]
fn sixteen_and_sixty_four_bit_classes_make_instances_of_their_layout() {
    on_both!(|vm, m, s| {
        let bytes = global_class(m, "ByteArray");
        for (spec, format, top) in [
            (12i64, Format::Shorts, 0xFFFFi64),
            (9, Format::DoubleWords, (1i64 << 30) - 1),
        ] {
            let meta = m.class_of(bytes).unwrap();
            let shape = m.size(bytes).unwrap();
            let class = m.alloc(meta, Format::Pointers, shape).unwrap();
            for i in 0..shape.slots {
                let v = m.slot(bytes, i).unwrap();
                m.set_slot(class, i, v).unwrap();
            }
            m.set_slot(class, 2, Value::int(spec << 16)).unwrap();
            let o = send(vm, m, s, class, "basicNew:", &[Value::int(3)]);
            assert_eq!(m.format(o).unwrap(), format, "spec {spec}");
            assert_eq!(send(vm, m, s, o, "basicSize", &[]).as_int(), Some(3));
            send(vm, m, s, o, "at:put:", &[Value::int(2), Value::int(top)]);
            assert_eq!(
                send(vm, m, s, o, "at:", &[Value::int(2)]).as_int(),
                Some(top)
            );
            assert_eq!(send(vm, m, s, o, "at:", &[Value::int(1)]).as_int(), Some(0));
        }
    });
}

/// `Behavior>>identityHash` (primitive 175, Spur's `primitiveBehaviorHash`) answers a
/// class's hash, its class index: for a class of the image and for one a tenant made (whose
/// drawn hash is where a Spur export enters it); anything that is no behavior fails it.
/// Run through `tryPrimitive:withArgs:`, as the image's simulator runs it; before, 175 was
/// no primitive and every class failed it.
#[test]
fn the_behavior_hash_is_the_class_index() {
    on_both!(|vm, m, s| {
        let array_class = m.class_of(vm.specials().array).unwrap();
        let made = {
            let meta = m.class_of(array_class).unwrap();
            let n = m.size(array_class).unwrap().slots;
            let slots: Vec<Value> = (0..n).map(|i| m.slot(array_class, i).unwrap()).collect();
            let c = m
                .alloc(
                    meta,
                    Format::Pointers,
                    cowheap_heap::ObjectSize { slots: n, bytes: 0 },
                )
                .unwrap();
            for (i, v) in slots.into_iter().enumerate() {
                m.set_slot(c, i, v).unwrap();
            }
            c
        };
        let empty = send(vm, m, s, array_class, "new:", &[Value::int(0)]);
        for class in [array_class, made] {
            let got = send(
                vm,
                m,
                s,
                class,
                "tryPrimitive:withArgs:",
                &[Value::int(175), empty],
            );
            assert_eq!(
                got.as_int(),
                Some(i64::from(m.identity_hash(class).unwrap()))
            );
        }
        // Array's hash is its class index: the index instances of Array are read with.
        assert_eq!(m.identity_hash(array_class).unwrap(), 51);
        // Failed, the image's fallback code reports it (`primitiveFailed`).
        for not_a_class in [Value::int(3), vm.specials().array] {
            let got = vm.send_named(
                m,
                s,
                not_a_class,
                "tryPrimitive:withArgs:",
                &[Value::int(175), empty],
                BUDGET,
            );
            assert!(
                matches!(&got, Err(VmError::ImageError { .. })),
                "{:?}",
                got.map(|v| v.as_int())
            );
        }
    });
}
