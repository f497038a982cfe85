//! Quick-return methods (`^self`, `^nil`, `^true`, `^false`, `^-1`..`^2`, `^instVar`:
//! primitives 256-519 in the header, no bytecodes) compiled by the image's own compiler
//! through the path that copies the method with its temporary names
//! (`copyWithTempNames:` -> `copyWithTrailerBytes:` -> `endPC`), then run by a send from
//! Smalltalk and by `perform`, checked by value, on `mini.image` and
//! `Scratch-1.4.0.6.image`, each on a tenant and on the flat heap.
//!
//! `endPC` of a quick method saved with a trailer of four zero bytes reads `at: 4`, the last
//! byte of the header word: `at:` on a CompiledMethod indexes its whole body, header
//! included (`initialPC` is `4 * (literals + 1) + 1`).

mod common;

use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

const BUDGET: u64 = 100_000_000;

/// Compiles `src` into `class` through the path that copies the method with its temporary
/// names: `compile:` on Scratch, `compile:classified:notifying:` on the mini image (whose
/// `compile:` is not defined on classes).
type Compile = fn(&str, &str) -> String;

fn scratch_compile(class: &str, src: &str) -> String {
    format!("{class} compile: '{src}'")
}

fn mini_compile(class: &str, src: &str) -> String {
    format!("{class} compile: '{src}' classified: 'probes' notifying: nil")
}

/// What a quick method answers, by value.
#[derive(Clone, Copy, Debug)]
enum Want {
    Int(i64),
    Nil,
    True,
    False,
    /// The receiver itself.
    Receiver,
}

/// Each method: its class, selector, source, the primitive the compiler gives it, a
/// receiver (source) and the answer.
const METHODS: &[(&str, &str, &str, i64, &str, Want)] = &[
    (
        "Integer",
        "quickSelf",
        "quickSelf ^self",
        256,
        "7",
        Want::Receiver,
    ),
    (
        "Integer",
        "quickTrue",
        "quickTrue ^true",
        257,
        "7",
        Want::True,
    ),
    (
        "Integer",
        "quickFalse",
        "quickFalse ^false",
        258,
        "7",
        Want::False,
    ),
    ("Integer", "quickNil", "quickNil ^nil", 259, "7", Want::Nil),
    (
        "Integer",
        "quickMinusOne",
        "quickMinusOne ^-1",
        260,
        "7",
        Want::Int(-1),
    ),
    (
        "Integer",
        "quickZero",
        "quickZero ^0",
        261,
        "7",
        Want::Int(0),
    ),
    ("Integer", "quickOne", "quickOne ^1", 262, "7", Want::Int(1)),
    ("Integer", "quickTwo", "quickTwo ^2", 263, "7", Want::Int(2)),
    // Instance variables: 264 + the field index.
    ("Point", "quickX", "quickX ^x", 264, "3 @ 4", Want::Int(3)),
    ("Point", "quickY", "quickY ^y", 265, "3 @ 4", Want::Int(4)),
];

fn check<M: ObjectMemory>(m: &mut M, s: &Symbols, compile: Compile, what: &str) {
    let mut vm = Vm::new(m).unwrap();
    let eval = |vm: &mut Vm, m: &mut M, src: &str| -> Value {
        vm.evaluate(m, s, src, BUDGET)
            .unwrap_or_else(|e| panic!("{what}: {src}: {e}"))
    };
    let (nil, true_, false_) = {
        let sp = vm.specials();
        (sp.nil, sp.true_, sp.false_)
    };
    let same = |m: &M, a: Value, b: Value| m.identical(a, b).unwrap();
    for &(class, selector, src, prim, receiver, want) in METHODS {
        eval(&mut vm, m, &compile(class, src));
        let cm = format!("({class} compiledMethodAt: #{selector})");
        assert_eq!(
            eval(&mut vm, m, &format!("{cm} primitive")).as_int(),
            Some(prim),
            "{what}: {src} is a quick method"
        );
        // endPC and its first read of the header.
        assert!(eval(&mut vm, m, &format!("{cm} endPC")).as_int().is_some());
        let r = eval(&mut vm, m, receiver);
        // A send from Smalltalk, and a perform.
        let by_send = eval(&mut vm, m, &format!("({receiver}) {selector}"));
        // The selector is new to the base: the memory's own Symbol.
        let sel = eval(&mut vm, m, &format!("#{selector}"));
        let by_perform = vm
            .perform(m, r, sel, &[], BUDGET)
            .unwrap_or_else(|e| panic!("{what}: {selector}: {e}"));
        for got in [by_send, by_perform] {
            let ok = match want {
                Want::Int(i) => got.as_int() == Some(i),
                Want::Nil => same(m, got, nil),
                Want::True => same(m, got, true_),
                Want::False => same(m, got, false_),
                Want::Receiver => got.as_int() == Some(7),
            };
            assert!(
                ok,
                "{what}: {receiver} {selector} answered {got:?}, wanted {want:?}"
            );
        }
    }
    // A receiver that is an object: ^self answers that object.
    eval(&mut vm, m, &compile("Point", "quickSelf ^self"));
    // The Symbol first: the Point, an answer no root holds, is then sent before another
    // run can collect it.
    let sel = eval(&mut vm, m, "#quickSelf");
    let p = eval(&mut vm, m, "5 @ 6");
    let got = vm.perform(m, p, sel, &[], BUDGET).unwrap();
    assert!(same(m, got, p), "{what}: (5 @ 6) quickSelf");
    assert_eq!(eval(&mut vm, m, "(5 @ 6) quickSelf x").as_int(), Some(5));
    // The header's bytes, as a little-endian V3 VM answers them: 262 is the oop 0x20D.
    let bytes = eval(
        &mut vm,
        m,
        "| cm | cm := Integer compiledMethodAt: #quickOne. (cm at: 1) * 16777216 + ((cm at: 2) * 65536) + ((cm at: 3) * 256) + (cm at: 4)",
    );
    assert_eq!(bytes.as_int(), Some(0x0D02_0000), "{what}");
    // Recompiling a quick method as an ordinary one, and back, is seen by the next send.
    eval(&mut vm, m, &compile("Integer", "quickOne ^0 + 5"));
    assert_eq!(eval(&mut vm, m, "7 quickOne").as_int(), Some(5));
    eval(&mut vm, m, &compile("Integer", "quickOne ^1"));
    assert_eq!(eval(&mut vm, m, "7 quickOne").as_int(), Some(1));
    match vm.evaluate(m, s, "7 quickAbsent", BUDGET) {
        Err(VmError::DoesNotUnderstand { selector, .. }) => assert_eq!(selector, "quickAbsent"),
        other => panic!("{what}: wanted a DNU, got {other:?}"),
    }
}

fn both_memories(name: &str, compile: Compile) {
    let heap = common::import(name);
    let s = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    check(&mut flat, &s, compile, &format!("{name}, flat heap"));
    let base = cowheap_forwarders::Base::new(heap);
    let mut t = Tenant::fork(&base);
    check(&mut t, &s, compile, &format!("{name}, tenant"));
}

#[test]
fn quick_methods_compile_and_run_mini() {
    both_memories("mini.image", mini_compile);
}

#[test]
fn quick_methods_compile_and_run_scratch() {
    both_memories("Scratch-1.4.0.6.image", scratch_compile);
}
