//! Bytecode-level tests on synthetic methods, with no image file: every bytecode family,
//! blocks (pre-closure) and closures, non-local return, the special sends, the error sends
//! and the typed stops. Each runs on the flat heap and on a tenant.

mod common;
use common::{on_both, send};

use cowheap_heap::Value;
use cowheap_vm::bytecodes::{Op, RANGES, decode, instruction_len};
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{ObjectMemory, Symbols, Vm, VmError};

/// Runs `$body` (a generic function of the interpreter, a memory and the symbols) on a flat
/// heap and on a tenant of the image `$img` makes.
fn int<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    r: i64,
    sel: &str,
    args: &[i64],
) -> Option<i64> {
    let args: Vec<Value> = args.iter().map(|&a| Value::int(a)).collect();
    send(vm, m, s, Value::int(r), sel, &args)
        .unwrap_or_else(|e| panic!("{sel}: {e}"))
        .as_int()
}

fn image(closures: bool) -> SynthImage {
    common::kernel_image(closures)
}

#[test]
fn the_range_table_covers_every_bytecode_once() {
    let mut seen = [0u8; 256];
    for &(lo, hi, len, _) in RANGES {
        assert!((1..=4).contains(&len));
        for b in lo..=hi {
            seen[usize::from(b)] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1));
    assert_eq!(decode(143, false), Op::Unknown);
    assert_eq!(decode(143, true), Op::PushClosure);
    assert_eq!(decode(126, true), Op::Unknown);
    // callPrimitive: three bytes in a closure image.
    assert_eq!(decode(139, true), Op::CallPrimitive);
    assert_eq!(decode(139, false), Op::Unknown);
    assert_eq!(instruction_len(139, true), 3);
    assert_eq!(instruction_len(139, false), 1);
    assert_eq!(instruction_len(143, true), 4);
    assert_eq!(instruction_len(126, true), 1);
}

#[test]
fn temporaries_arguments_and_arithmetic() {
    let mut img = image(false);
    // foo: a  | t |  t := a + 2. ^t - self
    img.method(
        "SmallInteger",
        "foo:",
        1,
        2,
        &[],
        &[16, 119, 176, 105, 17, 112, 177, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        assert_eq!(int(vm, m, s, 10, "foo:", &[5]), Some(-3));
    });
}

#[test]
fn receiver_variables() {
    let mut img = image(false);
    img.define_class("Pair", "Object", 2, 0);
    img.method("Pair", "sum", 0, 0, &[], &[0, 1, 176, 124], 0);
    img.method("Pair", "swap", 0, 0, &[], &[0, 1, 96, 97, 120], 0);
    // Extended push and store: 128 kind 0 (receiver variable), 130 store-pop.
    img.method(
        "Pair",
        "setFirst:",
        1,
        1,
        &[],
        &[16, 130, 0, 128, 0, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let p = common::new_instance(m, "Pair", 2);
        m.set_slot(p, 0, Value::int(3)).unwrap();
        m.set_slot(p, 1, Value::int(4)).unwrap();
        assert_eq!(send(vm, m, s, p, "sum", &[]).unwrap().as_int(), Some(7));
        let r = send(vm, m, s, p, "swap", &[]).unwrap();
        assert!(m.identical(r, p).unwrap());
        assert_eq!(m.slot(p, 0).unwrap().as_int(), Some(4));
        assert_eq!(m.slot(p, 1).unwrap().as_int(), Some(3));
        assert_eq!(
            send(vm, m, s, p, "setFirst:", &[Value::int(9)])
                .unwrap()
                .as_int(),
            Some(9)
        );
        assert_eq!(m.slot(p, 0).unwrap().as_int(), Some(9));
    });
}

#[test]
fn literals_and_literal_variables() {
    let mut img = image(false);
    let lits = [Lit::Int(40), Lit::Global("Two".into(), 2)];
    img.method("SmallInteger", "lits", 0, 0, &lits, &[32, 65, 176, 124], 0);
    // setTwo: x  Two := x (129: extended store, kind 3 = literal variable 1). ^Two
    img.method(
        "SmallInteger",
        "setTwo:",
        1,
        1,
        &lits,
        &[16, 129, 193, 135, 65, 124],
        0,
    );
    // 132 double extended: push literal constant (3), push literal variable (4).
    img.method(
        "SmallInteger",
        "ext",
        0,
        0,
        &lits,
        &[132, 96, 0, 132, 128, 1, 176, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        assert_eq!(int(vm, m, s, 0, "lits", &[]), Some(42));
        assert_eq!(int(vm, m, s, 0, "ext", &[]), Some(42));
        assert_eq!(int(vm, m, s, 0, "setTwo:", &[5]), Some(5));
        assert_eq!(int(vm, m, s, 0, "lits", &[]), Some(45));
    });
}

#[test]
fn constants_and_returns() {
    let mut img = image(false);
    for (k, b) in (113u8..=119).enumerate() {
        img.method("SmallInteger", &format!("c{k}"), 0, 0, &[], &[b, 124], 0);
    }
    for (k, b) in (120u8..=123).enumerate() {
        img.method("SmallInteger", &format!("r{k}"), 0, 0, &[], &[b], 0);
    }
    img.method(
        "SmallInteger",
        "dupPop",
        0,
        0,
        &[],
        &[118, 136, 176, 119, 135, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let sp = vm.specials().clone();
        let same = |m: &M, a: Value, b: Value| m.identical(a, b).unwrap();
        let c = |vm: &mut Vm, m: &mut M, k: usize| {
            send(vm, m, s, Value::int(7), &format!("c{k}"), &[]).unwrap()
        };
        let v = c(vm, m, 0);
        assert!(same(m, v, sp.true_));
        let v = c(vm, m, 1);
        assert!(same(m, v, sp.false_));
        let v = c(vm, m, 2);
        assert!(same(m, v, sp.nil));
        for (k, want) in [(3, -1), (4, 0), (5, 1), (6, 2)] {
            assert_eq!(c(vm, m, k).as_int(), Some(want));
        }
        let r = |vm: &mut Vm, m: &mut M, k: usize| {
            send(vm, m, s, Value::int(7), &format!("r{k}"), &[]).unwrap()
        };
        assert_eq!(r(vm, m, 0).as_int(), Some(7));
        let v = r(vm, m, 1);
        assert!(same(m, v, sp.true_));
        let v = r(vm, m, 2);
        assert!(same(m, v, sp.false_));
        let v = r(vm, m, 3);
        assert!(same(m, v, sp.nil));
        assert_eq!(int(vm, m, s, 0, "dupPop", &[]), Some(2));
    });
}

#[test]
fn jumps_short_long_forward_and_back() {
    let mut img = image(false);
    // | i sum | i := 1. sum := 0. [i <= 10] whileTrue: [sum := sum + i. i := i + 1]. ^sum
    let sum_loop = [
        118, 104, 117, 105, // i := 1. sum := 0
        16, 32, 180, 172, 10, // i <= 10 ifFalse: jump to the end
        17, 16, 176, 105, // sum := sum + i
        16, 118, 176, 104, // i := i + 1
        163, 241, // jump back to the test
        17, 124,
    ];
    img.method(
        "SmallInteger",
        "sumTo10",
        0,
        2,
        &[Lit::Int(10)],
        &sum_loop,
        0,
    );
    img.method(
        "SmallInteger",
        "max:",
        1,
        1,
        &[],
        &[112, 16, 179, 153, 112, 124, 16, 124],
        0,
    );
    img.method("SmallInteger", "skip", 0, 0, &[], &[144, 113, 118, 124], 0);
    img.method(
        "SmallInteger",
        "longTrue",
        0,
        0,
        &[],
        &[113, 168, 1, 114, 118, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        assert_eq!(int(vm, m, s, 0, "sumTo10", &[]), Some(55));
        assert_eq!(int(vm, m, s, 3, "max:", &[5]), Some(5));
        assert_eq!(int(vm, m, s, 7, "max:", &[5]), Some(7));
        assert_eq!(int(vm, m, s, 0, "skip", &[]), Some(1));
        assert_eq!(int(vm, m, s, 0, "longTrue", &[]), Some(1));
    });
}

#[test]
fn sends_of_every_form_and_super() {
    let mut img = image(false);
    img.define_class("A", "Object", 0, 0);
    img.define_class("B", "A", 0, 0);
    img.method("A", "val", 0, 0, &[], &[118, 124], 0);
    img.method("A", "add:to:", 2, 2, &[], &[16, 17, 176, 124], 0);
    img.method("A", "inc:", 1, 1, &[], &[16, 118, 176, 124], 0);
    let sup = [Lit::Sym("val".into()), Lit::Int(10), Lit::Class("B".into())];
    // ^super val + 10, by 133 and by 132
    img.method("B", "val", 0, 0, &sup, &[112, 133, 0, 33, 176, 124], 0);
    img.method("B", "val2", 0, 0, &sup, &[112, 132, 32, 0, 33, 176, 124], 0);
    // ^self val + self val (208 and 131)
    img.method(
        "B",
        "twice",
        0,
        0,
        &sup,
        &[112, 208, 112, 131, 0, 176, 124],
        0,
    );
    let add = [Lit::Sym("add:to:".into()), Lit::Sym("inc:".into())];
    img.method("B", "useAdd", 0, 0, &add, &[112, 118, 119, 240, 124], 0);
    img.method(
        "B",
        "useAdd2",
        0,
        0,
        &add,
        &[112, 118, 119, 134, 128, 124],
        0,
    );
    img.method(
        "B",
        "useAdd3",
        0,
        0,
        &add,
        &[112, 118, 119, 132, 2, 0, 124],
        0,
    );
    img.method("B", "useInc", 0, 0, &add, &[112, 119, 225, 124], 0);
    on_both!(img, |vm, m, s| {
        let b = common::new_instance(m, "B", 0);
        let a = common::new_instance(m, "A", 0);
        let mut call =
            |m: &mut M, r: Value, sel: &str| send(vm, m, s, r, sel, &[]).unwrap().as_int();
        assert_eq!(call(m, a, "val"), Some(1));
        assert_eq!(call(m, b, "val"), Some(11));
        assert_eq!(call(m, b, "val2"), Some(11));
        assert_eq!(call(m, b, "twice"), Some(22));
        assert_eq!(call(m, b, "useAdd"), Some(3));
        assert_eq!(call(m, b, "useAdd2"), Some(3));
        assert_eq!(call(m, b, "useAdd3"), Some(3));
        assert_eq!(call(m, b, "useInc"), Some(3));
    });
}

#[test]
fn special_sends_fast_paths_and_fallbacks() {
    let mut img = image(false);
    for k in 0..16u8 {
        img.method(
            "SmallInteger",
            &format!("op{k}:with:"),
            2,
            2,
            &[],
            &[16, 17, 176 + k, 124],
            0,
        );
    }
    img.method(
        "SmallInteger",
        "same:as:",
        2,
        2,
        &[],
        &[16, 17, 198, 124],
        0,
    );
    img.method("SmallInteger", "classOf:", 1, 1, &[], &[16, 199, 124], 0);
    img.method("SmallInteger", "at:in:", 2, 2, &[], &[17, 16, 192, 124], 0);
    img.method(
        "SmallInteger",
        "put:at:in:",
        3,
        3,
        &[],
        &[18, 17, 16, 193, 124],
        0,
    );
    img.method("SmallInteger", "sizeOf:", 1, 1, &[], &[16, 194, 124], 0);
    img.method("SmallInteger", "inc", 0, 0, &[], &[112, 118, 176, 124], 0);
    on_both!(img, |vm, m, s| {
        let sp = vm.specials().clone();
        let (t, f) = (sp.true_, sp.false_);
        let want: [(u8, Option<Value>); 14] = [
            (0, Some(Value::int(-5))),
            (1, Some(Value::int(-9))),
            (2, Some(t)),
            (3, Some(f)),
            (4, Some(t)),
            (5, Some(f)),
            (6, Some(f)),
            (7, Some(t)),
            (8, Some(Value::int(-14))),
            (10, Some(Value::int(1))),
            (12, Some(Value::int(-28))),
            (13, Some(Value::int(-4))),
            (14, Some(Value::int(0))),
            (15, Some(Value::int(-5))),
        ];
        for (k, w) in want {
            let r = send(
                vm,
                m,
                s,
                Value::int(0),
                &format!("op{k}:with:"),
                &[Value::int(-7), Value::int(2)],
            )
            .unwrap();
            let w = w.unwrap();
            assert!(m.identical(r, w).unwrap(), "op {k}: {r:?}");
        }
        // -7 / 2 is not exact: the send falls back to a lookup of #/, which nothing defines.
        let e = send(
            vm,
            m,
            s,
            Value::int(0),
            "op9:with:",
            &[Value::int(-7), Value::int(2)],
        )
        .unwrap_err();
        assert!(
            matches!(e, VmError::DoesNotUnderstand { ref selector, .. } if selector == "/"),
            "{e}"
        );
        // 31-bit SmallIntegers: the fast path and the primitive fail, the fallback answers.
        let r = send(vm, m, s, Value::int((1 << 30) - 1), "inc", &[]).unwrap();
        assert_eq!(vm.text_of(m, r).as_deref(), Some("overflow"));
        assert_eq!(
            int(vm, m, s, (1 << 30) - 2, "inc", &[]),
            Some((1 << 30) - 1)
        );
        let r = send(
            vm,
            m,
            s,
            Value::int(0),
            "same:as:",
            &[Value::int(4), Value::int(4)],
        )
        .unwrap();
        assert!(m.identical(r, t).unwrap());
        let r = send(vm, m, s, Value::int(0), "classOf:", &[Value::int(4)]).unwrap();
        assert!(m.identical(r, sp.small_integer).unwrap());
        // Array new: 3, at:put:, at:, size through the special sends and primitives 60-62, 71.
        let array_class = sp.array_class;
        let a = send(vm, m, s, array_class, "new:", &[Value::int(3)]).unwrap();
        assert_eq!(m.size(a).unwrap().slots, 3);
        send(
            vm,
            m,
            s,
            Value::int(0),
            "put:at:in:",
            &[Value::int(42), Value::int(2), a],
        )
        .unwrap();
        assert_eq!(m.slot(a, 1).unwrap().as_int(), Some(42));
        let r = send(vm, m, s, Value::int(0), "at:in:", &[Value::int(2), a]).unwrap();
        assert_eq!(r.as_int(), Some(42));
        assert_eq!(
            send(vm, m, s, Value::int(0), "sizeOf:", &[a])
                .unwrap()
                .as_int(),
            Some(3)
        );
        // Out of range: primitive 60 fails, the fallback answers nil.
        let r = send(vm, m, s, a, "at:", &[Value::int(4)]).unwrap();
        assert!(m.identical(r, sp.nil).unwrap());
    });
}

#[test]
fn block_contexts_pre_closure() {
    let mut img = image(false);
    // [self + 1] value
    img.method(
        "SmallInteger",
        "blk",
        0,
        0,
        &[],
        &[137, 117, 200, 164, 4, 112, 118, 176, 125, 201, 124],
        0,
    );
    // [:x | x + self] value: 2  (the block stores its argument in the home's temp 0)
    img.method(
        "SmallInteger",
        "blkArg",
        0,
        1,
        &[],
        &[137, 118, 200, 164, 5, 104, 16, 112, 176, 125, 119, 202, 124],
        0,
    );
    // [^2] value. ^1
    img.method(
        "SmallInteger",
        "nonLocal",
        0,
        0,
        &[],
        &[137, 117, 200, 164, 2, 119, 124, 201, 135, 118, 124],
        0,
    );
    // [:x | [^x] value] value: self. ^0 -- a block made in a block, returning from the home.
    let nested = [
        137, 118, 200, 164, 10,  // outer block, 1 arg
        104, // x into temp 0
        137, 117, 200, 164, 2, 16, 124, // inner block [^x]
        201, 125, // inner value; outer block return
        112, 202, 135, 117, 124,
    ];
    img.method("SmallInteger", "nested", 0, 1, &[], &nested, 0);
    on_both!(img, |vm, m, s| {
        assert_eq!(int(vm, m, s, 41, "blk", &[]), Some(42));
        assert_eq!(int(vm, m, s, 40, "blkArg", &[]), Some(42));
        assert_eq!(int(vm, m, s, 0, "nonLocal", &[]), Some(2));
        assert_eq!(int(vm, m, s, 7, "nested", &[]), Some(7));
    });
}

#[test]
fn closures_copied_values_temp_vectors_and_non_local_return() {
    let mut img = image(true);
    // [:x | x + self] value: 40
    img.method(
        "SmallInteger",
        "clo",
        0,
        0,
        &[Lit::Int(40)],
        &[112, 143, 17, 0, 4, 16, 17, 176, 125, 32, 202, 124],
        0,
    );
    // | v | v := Array new: 1 (138). [v at: 1 put: self] value. ^v first (remote temps)
    let vec = [
        138, 1, 104, 16, 143, 16, 0, 5, 112, 141, 0, 0, 125, 201, 135, 140, 0, 0, 124,
    ];
    img.method("SmallInteger", "vec", 0, 1, &[], &vec, 0);
    // {1. 2} (138 with pop)
    img.method(
        "SmallInteger",
        "pair",
        0,
        0,
        &[],
        &[118, 119, 138, 130, 124],
        0,
    );
    // [^2] value. ^1
    img.method(
        "SmallInteger",
        "nonLocal",
        0,
        0,
        &[],
        &[143, 0, 0, 2, 119, 124, 201, 135, 118, 124],
        0,
    );
    // 142: pop into a remote temp.
    let pop_remote = [138, 1, 104, 112, 142, 0, 0, 140, 0, 0, 124];
    img.method("SmallInteger", "popRemote", 0, 1, &[], &pop_remote, 0);
    on_both!(img, |vm, m, s| {
        assert_eq!(int(vm, m, s, 2, "clo", &[]), Some(42));
        assert_eq!(int(vm, m, s, 9, "vec", &[]), Some(9));
        let p = send(vm, m, s, Value::int(0), "pair", &[]).unwrap();
        assert_eq!(m.size(p).unwrap().slots, 2);
        assert_eq!(m.slot(p, 0).unwrap().as_int(), Some(1));
        assert_eq!(m.slot(p, 1).unwrap().as_int(), Some(2));
        assert_eq!(int(vm, m, s, 0, "nonLocal", &[]), Some(2));
        assert_eq!(int(vm, m, s, 5, "popRemote", &[]), Some(5));
    });
}

#[test]
fn does_not_understand_sends_a_real_message() {
    let mut img = image(false);
    img.define_class("Proxy", "Object", 0, 0);
    img.method("Proxy", "doesNotUnderstand:", 1, 1, &[], &[16, 124], 0);
    on_both!(img, |vm, m, s| {
        let e = send(vm, m, s, Value::int(3), "foo", &[]).unwrap_err();
        match e {
            VmError::DoesNotUnderstand {
                selector,
                receiver_class,
                ..
            } => {
                assert_eq!(
                    (selector.as_str(), receiver_class.as_str()),
                    ("foo", "SmallInteger")
                );
            }
            e => panic!("{e}"),
        }
        let p = common::new_instance(m, "Proxy", 0);
        let msg = send(vm, m, s, p, "bar:baz:", &[Value::int(1), Value::int(2)]).unwrap();
        let message_class = vm.specials().message;
        assert!(
            m.identical(m.class_of(msg).unwrap(), message_class)
                .unwrap()
        );
        assert_eq!(
            vm.text_of(m, m.slot(msg, 0).unwrap()).as_deref(),
            Some("bar:baz:")
        );
        let args = m.slot(msg, 1).unwrap();
        assert_eq!(m.size(args).unwrap().slots, 2);
        assert_eq!(m.slot(args, 1).unwrap().as_int(), Some(2));
    });
}

#[test]
fn must_be_boolean_and_cannot_return_reach_the_image_then_stop() {
    let mut img = image(true);
    img.method("Object", "mustBeBoolean", 0, 0, &[], &[115, 124], 0);
    img.method("Object", "cannotReturn:", 1, 1, &[], &[115, 124], 0);
    img.method(
        "SmallInteger",
        "notBool",
        0,
        0,
        &[],
        &[118, 153, 118, 124, 119, 124],
        0,
    );
    // ^[^2]  -- the block outlives its home
    img.method(
        "SmallInteger",
        "escape",
        0,
        0,
        &[],
        &[143, 0, 0, 2, 119, 124, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        match send(vm, m, s, Value::int(0), "notBool", &[]) {
            Err(VmError::ImageError {
                selector,
                receiver_class,
                ..
            }) => {
                assert_eq!(
                    (selector.as_str(), receiver_class.as_str()),
                    ("mustBeBoolean", "SmallInteger")
                );
            }
            other => panic!("{other:?}"),
        }
        let blk = send(vm, m, s, Value::int(0), "escape", &[]).unwrap();
        match send(vm, m, s, blk, "value", &[]) {
            Err(VmError::ImageError {
                selector,
                receiver_class,
                ..
            }) => {
                assert_eq!(
                    (selector.as_str(), receiver_class.as_str()),
                    ("cannotReturn:", "MethodContext")
                );
            }
            other => panic!("{other:?}"),
        }
        // Still usable.
        assert_eq!(int(vm, m, s, 3, "+", &[4]), Some(7));
    });
}

#[test]
fn unknown_bytecodes_corrupt_methods_budgets_and_depth_are_typed_errors() {
    let mut img = image(false);
    img.method("SmallInteger", "bad", 0, 0, &[], &[126], 0);
    img.method(
        "SmallInteger",
        "closureInOld",
        0,
        0,
        &[],
        &[143, 0, 0, 0, 124],
        0,
    );
    img.method("SmallInteger", "noLiteral", 0, 0, &[], &[40, 124], 0);
    img.method("SmallInteger", "runsOff", 0, 0, &[], &[118], 0);
    img.method("SmallInteger", "forever", 0, 0, &[], &[163, 254], 0);
    // A long jump back past the first bytecode (-3 from position 2), called from another
    // method so that the failing context is not the bottom one and its pc is written back.
    img.method("SmallInteger", "backPastStart", 0, 0, &[], &[163, 253], 0);
    img.method(
        "SmallInteger",
        "callsBack",
        0,
        0,
        &[Lit::Sym("backPastStart".into())],
        &[112, 208, 124],
        0,
    );
    img.method(
        "SmallInteger",
        "down",
        0,
        0,
        &[Lit::Sym("down".into())],
        &[112, 208, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let e = send(vm, m, s, Value::int(0), "bad", &[]).unwrap_err();
        assert!(
            matches!(e, VmError::UnknownBytecode { bytecode: 126, ref chain } if chain.0 == ["SmallInteger>>bad"]),
            "{e}"
        );
        let e = send(vm, m, s, Value::int(0), "closureInOld", &[]).unwrap_err();
        assert!(
            matches!(e, VmError::UnknownBytecode { bytecode: 143, .. }),
            "{e}"
        );
        let e = send(vm, m, s, Value::int(0), "noLiteral", &[]).unwrap_err();
        assert!(matches!(e, VmError::CorruptMethod { .. }), "{e}");
        let e = send(vm, m, s, Value::int(0), "runsOff", &[]).unwrap_err();
        assert!(matches!(e, VmError::CorruptMethod { .. }), "{e}");
        let e = send(vm, m, s, Value::int(0), "callsBack", &[]).unwrap_err();
        assert!(
            matches!(e, VmError::CorruptMethod { ref chain, .. } if chain.0.len() == 2),
            "{e}"
        );
        let before = vm.stats().bytecodes;
        let e = vm
            .send_named(m, s, Value::int(0), "forever", &[], 1_000)
            .unwrap_err();
        assert!(
            matches!(e, VmError::BudgetExhausted { budget: 1_000, .. }),
            "{e}"
        );
        assert!(vm.is_suspended(m));
        let e = vm.resume(m, 500).unwrap_err();
        assert!(
            matches!(e, VmError::BudgetExhausted { budget: 500, .. }),
            "{e}"
        );
        assert_eq!(vm.stats().bytecodes - before, 1_500);
        vm.max_depth = 300;
        let e = send(vm, m, s, Value::int(0), "down", &[]).unwrap_err();
        assert!(
            matches!(e, VmError::StackOverflow { depth: 300, .. }),
            "{e}"
        );
        assert!(matches!(vm.resume(m, 10), Err(VmError::NothingToResume)));
        assert_eq!(int(vm, m, s, 3, "+", &[4]), Some(7));
    });
}

#[test]
fn primitives_perform_floats_copies_and_reflection() {
    let mut img = image(false);
    img.define_class("Pair", "Object", 2, 0);
    on_both!(img, |vm, m, s| {
        let plus = vm.symbol(m, s, "+").unwrap();
        let r = send(
            vm,
            m,
            s,
            Value::int(3),
            "perform:with:",
            &[plus, Value::int(4)],
        )
        .unwrap();
        assert_eq!(r.as_int(), Some(7));
        let f = send(vm, m, s, Value::int(3), "asFloat", &[]).unwrap();
        let g = send(vm, m, s, f, "*", &[Value::int(3)]).unwrap();
        assert_eq!(vm.float_value(m, g), Some(9.0));
        let h = send(vm, m, s, g, "+", &[f]).unwrap();
        assert_eq!(vm.float_value(m, h), Some(12.0));
        assert_eq!(
            send(vm, m, s, h, "truncated", &[]).unwrap().as_int(),
            Some(12)
        );
        let p = common::new_instance(m, "Pair", 2);
        m.set_slot(p, 1, Value::int(5)).unwrap();
        assert_eq!(
            send(vm, m, s, p, "instVarAt:", &[Value::int(2)])
                .unwrap()
                .as_int(),
            Some(5)
        );
        let c = send(vm, m, s, p, "shallowCopy", &[]).unwrap();
        assert!(!m.identical(c, p).unwrap());
        assert_eq!(m.slot(c, 1).unwrap().as_int(), Some(5));
        let h1 = send(vm, m, s, p, "identityHash", &[])
            .unwrap()
            .as_int()
            .unwrap();
        assert_eq!(h1, i64::from(m.identity_hash(p).unwrap()));
        let pair = m.root("class.Pair").unwrap();
        let q = send(vm, m, s, pair, "basicNew", &[]).unwrap();
        assert_eq!(m.size(q).unwrap().slots, 2);
    });
}

#[test]
fn a_non_local_return_through_an_unwind_marker_sends_about_to_return() {
    let mut img = image(true);
    common::with_unwind_recorder(&mut img);
    // unwind  ^self ensureLike: [^5. 9]
    let lits = [Lit::Int(5), Lit::Int(9), Lit::Sym("ensureLike:".into())];
    img.method(
        "SmallInteger",
        "unwind",
        0,
        0,
        &lits,
        &[112, 143, 0, 0, 4, 32, 124, 33, 125, 226, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        // The image's aboutToReturn:through: ran (it records the value) and, as this one
        // does not return from the home itself, the block went on to answer 9.
        assert_eq!(int(vm, m, s, 0, "unwind", &[]), Some(9));
        assert_eq!(int(vm, m, s, 0, "seen", &[]), Some(5));
    });
}

#[test]
fn hostile_sends_fail_typed_and_never_panic() {
    let img = image(false);
    on_both!(img, |vm, m, s| {
        // 63-bit integers from the embedder: the fast paths and primitives refuse them.
        let big = Value::int((1 << 62) - 1);
        let r = send(vm, m, s, big, "+", &[big]).unwrap();
        assert_eq!(vm.text_of(m, r).as_deref(), Some("overflow"));
        // A huge basicNew: fails in the primitive; the fallback answers nil.
        let array_class = vm.specials().array_class;
        let r = send(vm, m, s, array_class, "new:", &[Value::int(1 << 40)]).unwrap();
        assert!(m.identical(r, vm.specials().nil).unwrap());
        // at: with a non-integer, at: on an immediate.
        let r = send(vm, m, s, Value::int(3), "at:", &[Value::int(1)]).unwrap();
        assert!(m.identical(r, vm.specials().nil).unwrap());
        // A reference to no object: a memory error, not a panic.
        let bogus = Value::base(cowheap_heap::ObjectIndex::from_u32(u32::MAX));
        let e = send(vm, m, s, bogus, "size", &[]).unwrap_err();
        assert!(matches!(e, VmError::Memory(_)), "{e}");
    });
}

#[test]
fn a_context_written_through_thiscontext_is_read_back_on_return() {
    let mut img = image(false);
    // outer  | t | t := 1. self inner: thisContext. ^t
    let inner = [Lit::Sym("inner:".into())];
    img.method(
        "SmallInteger",
        "outer",
        0,
        1,
        &inner,
        &[118, 104, 112, 137, 224, 135, 16, 124],
        0,
    );
    // inner: ctx  ctx at: 1 put: 42 (its first temporary)
    img.method(
        "SmallInteger",
        "inner:",
        1,
        1,
        &[Lit::Int(42)],
        &[16, 118, 32, 193, 135, 120],
        0,
    );
    on_both!(img, |vm, m, s| {
        assert_eq!(int(vm, m, s, 0, "outer", &[]), Some(42));
    });
}
