//! `headless-spur32.image` exported as a 64-bit Spur image (68021), little- and big-endian,
//! by the squeak crate, imported again and run: the programs of `spur.rs`, each on a tenant
//! and on the flat heap, checked by value against the 32-bit answers. What differs is what
//! 64 bits give: 61-bit SmallIntegers (20! is one), 8-byte header and literal words.
//!
//! The headless image names no SmallFloat64 class, so its 64-bit export keeps every Float
//! boxed (`allow_missing_float_class`); `immediate_floats_*` gives the base one (a copy of
//! Float, so that the image's Float methods run on immediates) and checks the immediate
//! floats the primitives answer.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, Value};
use cowheap_squeak::{ByteOrder, ExportOptions, ImageKind};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError, names};
use std::sync::Arc;

const IMAGE: &str = "headless-spur32.image";
const BUDGET: u64 = 50_000_000;

/// `heap` written as a 64-bit Spur image in `order` (every Float boxed, the base having no
/// SmallFloat64 class), and read back.
fn spur64(heap: &BaseHeap, order: ByteOrder) -> BaseHeap {
    let options = ExportOptions {
        kind: Some(ImageKind::Spur64),
        order: Some(order),
        allow_missing_float_class: true,
        ..ExportOptions::default()
    };
    let bytes = cowheap_squeak::export_bytes_with(heap, &options)
        .unwrap_or_else(|e| panic!("exporting as 64-bit Spur {order:?}: {e}"));
    let back = cowheap_squeak::import_bytes(&bytes)
        .unwrap_or_else(|e| panic!("importing the 64-bit {order:?} export: {e}"));
    assert_eq!(back.format.version(), 68021);
    assert_eq!(back.format.order(), order);
    back.heap
}

/// The headless image as 64-bit Spur in both byte orders.
fn bases() -> Vec<Arc<Base>> {
    let heap = common::import(IMAGE);
    [ByteOrder::Little, ByteOrder::Big]
        .into_iter()
        .map(|o| Base::new(spur64(&heap, o)))
        .collect()
}

/// Runs `check` on a tenant and on the flat heap of each 64-bit base.
macro_rules! on_both {
    (|$vm:ident, $m:ident, $s:ident| $body:block) => {{
        for base in bases() {
            let symbols = Symbols::from_base(base.heap());
            let $s = &symbols;
            {
                let mut t = Tenant::fork(&base);
                widen_kernel(&mut t);
                let $m = &mut t;
                let mut vm = Vm::new(&*$m).expect("a 64-bit Spur image the interpreter runs");
                let $vm = &mut vm;
                $body
            }
            {
                let mut flat = FlatHeap::from_base(base.heap());
                widen_kernel(&mut flat);
                let $m = &mut flat;
                let mut vm = Vm::new(&*$m).expect("a 64-bit Spur image the interpreter runs");
                let $vm = &mut vm;
                $body
            }
        }
    }};
}

/// Makes the headless image's SmallInteger digit methods word-size independent, as a 64-bit
/// image's kernel is: the image was written for 31-bit SmallIntegers, and its
/// `SmallInteger>>digitLength` answers at most 4 bytes, `digitAt:` 0 past byte 4, and
/// `printOn:base:` prints into 32 characters, so a SmallInteger past 2^32 reaching its
/// LargeInteger arithmetic or a base-2 print would be wrong by the image's own code, not by
/// the interpreter's. `digitAt:` is given the limit 8 and `printOn:base:` 64 characters (a
/// literal each); `digitLength` becomes `^((self abs bitShift: -1) highBit + 8) // 8`,
/// written over its bytecodes (`SmallInteger minVal`, whose negation is no SmallInteger, is
/// left out, as the 32-bit kernel special-cases it).
fn widen_kernel<M: ObjectMemory>(m: &mut M) {
    let class = m.class_of(Value::int(1)).unwrap();
    let lit = |m: &M, meth: Value, k: usize| m.slot(meth, k + 1).unwrap();
    let digit_at = common::method_of(m, class, "digitAt:");
    assert_eq!(lit(m, digit_at, 0).as_int(), Some(4));
    m.set_slot(digit_at, 1, Value::int(8)).unwrap();
    let print_on = common::method_of(m, class, "printOn:base:");
    assert_eq!(lit(m, print_on, 7).as_int(), Some(32));
    m.set_slot(print_on, 8, Value::int(64)).unwrap();
    let high_bit = common::method_of(m, class, "highBit");
    let high_bit_sel = lit(m, high_bit, 7);
    assert_eq!(names::symbol(m, high_bit_sel).as_deref(), Some("highBit"));
    let number = m.slot(class, 0).map(|c| m.slot(c, 0).unwrap()).unwrap();
    let negated = lit(m, common::method_of(m, number, "negated"), 0);
    assert_eq!(names::symbol(m, negated).as_deref(), Some("negated"));
    let digit_length = common::method_of(m, class, "digitLength");
    // 12 literals, no temporaries: room for the three literals used.
    assert_eq!(m.slot(digit_length, 0).unwrap().as_int(), Some(12));
    m.set_slot(digit_length, 1, high_bit_sel).unwrap();
    m.set_slot(digit_length, 2, negated).unwrap();
    m.set_slot(digit_length, 3, Value::int(8)).unwrap();
    // self (self < 0 ifTrue: [negated]) bitShift: -1, highBit, + 8, // 8, return.
    let code = [
        112, 112, 117, 178, 152, 209, 116, 188, 208, 34, 176, 34, 189, 124,
    ];
    m.set_bytes(digit_length, 0, &code).unwrap();
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
fn boxed<M: ObjectMemory>(m: &M, v: Value) -> f64 {
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
fn the_export_is_read_as_64_bit_spur() {
    for base in bases() {
        let t = Tenant::fork(&base);
        let vm = Vm::new(&t).unwrap();
        let sp = vm.specials();
        assert!(sp.spur && sp.closures && sp.character_table.is_none());
        assert_eq!(sp.word_bytes, 8);
        assert_eq!((sp.min_int, sp.max_int), (-(1 << 60), (1 << 60) - 1));
        assert!(!sp.immediate_floats, "the base names no SmallFloat64");
    }
    // The 32-bit original keeps its 4-byte words and 31-bit SmallIntegers.
    let t = Tenant::fork(&common::base(IMAGE));
    let vm = Vm::new(&t).unwrap();
    assert_eq!(vm.specials().word_bytes, 4);
    assert_eq!(vm.specials().max_int, (1 << 30) - 1);
}

#[test]
fn factorials_are_small_integers_up_to_19_and_large_past_it() {
    on_both!(|vm, m, s| {
        let mut r = Value::int(1);
        let mut want: u128 = 1;
        for i in 2..=30 {
            r = send(vm, m, s, r, "*", &[Value::int(i)]);
            want *= i as u128;
            if i == 19 {
                // 19! = 121645100408832000 < 2^60: a SmallInteger of a 64-bit image (a
                // LargeInteger on 32 bits, from 13! on).
                assert_eq!(r.as_int(), Some(121_645_100_408_832_000));
                assert_eq!(print(vm, m, s, r), "121645100408832000");
            }
            if i == 20 {
                // 20! = 2432902008176640000 > 2^60: the first LargeInteger factorial.
                assert!(r.as_int().is_none(), "20! is past 2^60");
                assert_eq!(print(vm, m, s, r), "2432902008176640000");
            }
        }
        assert!(r.as_int().is_none(), "30! is past the SmallIntegers");
        let class = m.class_of(r).unwrap();
        assert_eq!(
            names::class_name(m, class).as_deref(),
            Some("LargePositiveInteger")
        );
        assert_eq!(print(vm, m, s, r), want.to_string());
        let mut q = r;
        for i in 2..=30 {
            q = send(vm, m, s, q, "//", &[Value::int(i)]);
        }
        assert_eq!(q.as_int(), Some(1));
    });
}

#[test]
fn the_small_integer_bounds_are_61_bits() {
    on_both!(|vm, m, s| {
        let max = (1i64 << 60) - 1;
        let r = send(vm, m, s, Value::int(max - 1), "+", &[Value::int(1)]);
        assert_eq!(r.as_int(), Some(max));
        let over = send(vm, m, s, Value::int(max), "+", &[Value::int(1)]);
        assert!(over.as_int().is_none(), "2^60 is a LargeInteger");
        assert_eq!(print(vm, m, s, over), (1i64 << 60).to_string());
        let min = send(vm, m, s, Value::int(-max), "-", &[Value::int(1)]);
        assert_eq!(min.as_int(), Some(-(1 << 60)));
        let under = send(vm, m, s, Value::int(-max), "-", &[Value::int(2)]);
        assert!(under.as_int().is_none(), "-2^60 - 1 is a LargeInteger");
        assert_eq!(print(vm, m, s, under), (-(1i64 << 60) - 1).to_string());
        // 2^31 and 2^40, LargeIntegers on 32 bits, are SmallIntegers here.
        let p = send(vm, m, s, Value::int(1 << 20), "*", &[Value::int(1 << 20)]);
        assert_eq!(p.as_int(), Some(1 << 40));
        let sh = send(vm, m, s, Value::int(1), "bitShift:", &[Value::int(59)]);
        assert_eq!(sh.as_int(), Some(1 << 59));
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
        assert_eq!(big.as_int(), Some(1_000_000_000_000));
        assert_eq!(print(vm, m, s, big), "1000000000000");
    });
}

#[test]
fn integers_print_in_bases() {
    on_both!(|vm, m, s| {
        assert_eq!(print(vm, m, s, Value::int(12345)), "12345");
        assert_eq!(print(vm, m, s, Value::int(-4711)), "-4711");
        let p = send(
            vm,
            m,
            s,
            Value::int(255),
            "printStringBase:",
            &[Value::int(16)],
        );
        assert_eq!(names::string(m, p).as_deref(), Some("16rFF"));
        let p = send(
            vm,
            m,
            s,
            Value::int(1 << 40),
            "printStringBase:",
            &[Value::int(2)],
        );
        assert_eq!(names::string(m, p), Some(format!("2r1{}", "0".repeat(40))));
        let max = (1i64 << 60) - 1;
        assert_eq!(print(vm, m, s, Value::int(max)), max.to_string());
    });
}

#[test]
fn division_answers_floats() {
    on_both!(|vm, m, s| {
        let q = send(vm, m, s, Value::int(3), "/", &[Value::int(4)]);
        assert_eq!(boxed(m, q), 0.75);
        let back = send(vm, m, s, q, "*", &[Value::int(4)]);
        assert_eq!(boxed(m, back), 3.0);
        let eq = send(vm, m, s, back, "=", &[Value::int(3)]);
        assert_eq!(eq.word(), vm.specials().true_.word());
        let exact = send(vm, m, s, Value::int(12), "/", &[Value::int(4)]);
        assert_eq!(exact.as_int(), Some(3));
        let t = send(vm, m, s, Value::int(22), "/", &[Value::int(7)]);
        assert_eq!(boxed(m, t), 22.0 / 7.0);
        let t = send(vm, m, s, t, "truncated", &[]);
        assert_eq!(t.as_int(), Some(3));
        // A float past 2^31 truncates to a SmallInteger of 61 bits.
        let f = send(vm, m, s, Value::int(1 << 40), "asFloat", &[]);
        assert_eq!(boxed(m, f), 2f64.powi(40));
        let f = send(vm, m, s, f, "*", &[Value::int(3)]);
        let t = send(vm, m, s, f, "truncated", &[]);
        assert_eq!(t.as_int(), Some(3 << 40));
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
        assert_eq!(send(vm, m, s, both, "size", &[]).as_int(), Some(14));
    });
}

#[test]
fn intervals_and_collections() {
    on_both!(|vm, m, s| {
        let iv = send(vm, m, s, Value::int(1), "to:", &[Value::int(100)]);
        assert_eq!(print(vm, m, s, iv), "(1 to: 100)");
        assert_eq!(send(vm, m, s, iv, "sum", &[]).as_int(), Some(5050));
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
        assert!(
            matches!(&err, VmError::DoesNotUnderstand { selector, receiver_class, .. }
                if selector == "factorial" && receiver_class == "SmallInteger"),
            "{err}"
        );
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
        // A SmallInteger here, a LargeInteger on 32 bits: the same digits.
        assert_eq!(r.as_int(), Some(5_000_050_000));
        assert_eq!(print(vm, m, s, r), "5000050000");
    });
}

/// The headless image with a SmallFloat64 class, exported as 64-bit Spur in both orders.
fn float_bases() -> Vec<Arc<Base>> {
    let heap = common::with_small_float_class(&common::import(IMAGE));
    [ByteOrder::Little, ByteOrder::Big]
        .into_iter()
        .map(|order| {
            let options = ExportOptions {
                kind: Some(ImageKind::Spur64),
                order: Some(order),
                ..ExportOptions::default()
            };
            let bytes = cowheap_squeak::export_bytes_with(&heap, &options).unwrap();
            let back = cowheap_squeak::import_bytes(&bytes).unwrap();
            assert_eq!(back.format.version(), 68021);
            assert!(back.heap.float_class().is_some());
            Base::new(back.heap)
        })
        .collect()
}

/// The name of the class of `v`.
fn class_name<M: ObjectMemory>(m: &M, v: Value) -> String {
    names::class_name(m, m.class_of(v).unwrap()).unwrap_or_default()
}

/// The double of a Float, immediate or boxed, and whether it is immediate.
fn double<M: ObjectMemory>(m: &M, v: Value) -> (f64, bool) {
    match v.as_f64() {
        Some(f) => (f, true),
        None => (boxed(m, v), false),
    }
}

#[test]
fn immediate_floats_are_answered_where_they_can_hold_the_value_and_boxed_floats_elsewhere() {
    for base in float_bases() {
        let symbols = Symbols::from_base(base.heap());
        let s = &symbols;
        let mut t = Tenant::fork(&base);
        widen_kernel(&mut t);
        let mut flat = FlatHeap::from_base(base.heap());
        widen_kernel(&mut flat);
        check_floats(&mut t, s);
        check_floats(&mut flat, s);
    }
}

fn check_floats<M: ObjectMemory>(m: &mut M, s: &Symbols) {
    let mut vm = Vm::new(&*m).unwrap();
    let vm = &mut vm;
    assert!(vm.specials().immediate_floats);
    let q = send(vm, m, s, Value::int(3), "/", &[Value::int(4)]);
    assert_eq!(q.as_f64(), Some(0.75), "3 / 4 is an immediate float");
    assert_eq!(class_name(m, q), "SmallFloat64");
    let d = send(vm, m, s, q, "*", &[Value::int(2)]);
    assert_eq!(d.as_f64(), Some(1.5));
    let q2 = send(vm, m, s, Value::int(6), "/", &[Value::int(8)]);
    let same = send(vm, m, s, q, "==", &[q2]);
    assert_eq!(
        same.word(),
        vm.specials().true_.word(),
        "equal immediates are identical"
    );
    let sum = send(vm, m, s, q, "+", &[d]);
    assert_eq!(sum.as_f64(), Some(2.25));
    let lt = send(vm, m, s, q, "<", &[d]);
    assert_eq!(lt.word(), vm.specials().true_.word());
    let t = send(vm, m, s, sum, "truncated", &[]);
    assert_eq!(t.as_int(), Some(2));
    let f = send(vm, m, s, Value::int(1 << 50), "asFloat", &[]);
    assert_eq!(f.as_f64(), Some(2f64.powi(50)));
    // 2^50 squared twice: 2^200, past an immediate's exponent, is boxed (BoxedFloat64).
    let f100 = send(vm, m, s, f, "*", &[f]);
    assert_eq!(double(m, f100), (2f64.powi(100), true));
    let f200 = send(vm, m, s, f100, "*", &[f100]);
    let (v, immediate) = double(m, f200);
    assert_eq!(v, 2f64.powi(200));
    assert!(!immediate, "2^200 is boxed");
    assert_eq!(class_name(m, f200), "Float");
    // Boxed times boxed overflows as Rust's f64 does; divided back it is immediate again.
    let f400 = send(vm, m, s, f200, "*", &[f200]);
    assert_eq!(double(m, f400), (2f64.powi(200) * 2f64.powi(200), false));
    let back = send(vm, m, s, f200, "/", &[f100]);
    assert_eq!(double(m, back), (2f64.powi(100), true));
    let mixed = send(vm, m, s, f200, ">", &[q]);
    assert_eq!(mixed.word(), vm.specials().true_.word());
    let third = send(vm, m, s, Value::int(1), "/", &[Value::int(3)]);
    assert_eq!(third.as_f64(), Some(1.0 / 3.0));
    let tiny = send(vm, m, s, third, "/", &[f200]);
    assert_eq!(double(m, tiny), ((1.0 / 3.0) / 2f64.powi(200), false));
    let neg = send(vm, m, s, q, "negated", &[]);
    assert_eq!(neg.as_f64(), Some(-0.75));
}

#[test]
fn a_compiled_method_is_indexed_past_8_byte_header_and_literal_words() {
    on_both!(|vm, m, s| {
        let class = m.class_of(Value::int(1)).unwrap();
        let method = common::method_of(m, class, "digitAt:");
        let slots = m.size(method).unwrap().slots;
        let code = m.bytes(method).unwrap().to_vec();
        let n = send(vm, m, s, method, "size", &[]);
        assert_eq!(n.as_int(), Some((slots * 8 + code.len()) as i64));
        // Byte 1 is the header oop's low byte (`header << 3 | 1`), little-endian.
        let h = m.slot(method, 0).unwrap().as_int().unwrap();
        let oop = ((h << 3) | 1) as u64;
        for i in [1, 2, 8] {
            let b = send(vm, m, s, method, "at:", &[Value::int(i)]);
            assert_eq!(
                b.as_int(),
                Some(i64::from(oop.to_le_bytes()[i as usize - 1]))
            );
        }
        // The first bytecode follows the header and literal words.
        let first = (slots * 8 + 1) as i64;
        let b = send(vm, m, s, method, "at:", &[Value::int(first)]);
        assert_eq!(b.as_int(), Some(i64::from(code[0])));
        let last = send(vm, m, s, method, "at:", &[n]);
        assert_eq!(last.as_int(), Some(i64::from(*code.last().unwrap())));
    });
}
