//! A primitive that takes a fixed number of arguments fails when its method is sent with
//! another count, as a Squeak VM's does: its method's own bytecodes run, and the primitive
//! reads nothing of the caller's stack under the receiver.

use cowheap_heap::Value;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, Vm};

/// `SmallInteger>>run`, which pushes `below` and `top`, sends `zeroArg` (a method of no
/// argument with `primitive`, whose fallback is `fallback`) to itself, pops its answer and
/// answers what is left on top: `top` unless the send took it away.
fn run_with(primitive: u16, fallback: &[u8], below: Lit, top: Lit) -> Option<Value> {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method(
        "Object",
        "zeroArg",
        0,
        0,
        &[Lit::Sym("failed".into())],
        fallback,
        primitive,
    );
    img.method(
        "SmallInteger",
        "run",
        0,
        0,
        &[Lit::Sym("zeroArg".into()), below, top],
        &[33, 34, 112, 208, 135, 124],
        0,
    );
    let (base, symbols) = img.freeze().unwrap();
    let mut flat = FlatHeap::from_base(&base);
    let mut vm = Vm::new(&flat).unwrap();
    let r = vm.send_named(&mut flat, &symbols, Value::int(1), "run", &[], 1000);
    let kept = symbols.get("kept");
    r.ok().map(|v| match kept {
        Some(k) if k.word() == v.word() => Value::int(-1),
        _ => v,
    })
}

/// [`run_with`] 5 and 6 under the receiver: 6 unless the send took it away.
fn run_with_zero_arg_method(primitive: u16, fallback: &[u8]) -> Option<i64> {
    run_with(primitive, fallback, Lit::Int(5), Lit::Int(6)).and_then(|v| v.as_int())
}

#[test]
fn a_primitive_sent_with_the_wrong_argument_count_fails() {
    // `==` (110) with no argument: before, it compared the receiver with the 6 under it,
    // and popped the 6.
    assert_eq!(run_with_zero_arg_method(110, &[32, 124]), Some(6));
}

#[test]
fn every_fixed_arity_primitive_sent_with_no_argument_leaves_the_caller_alone() {
    // The one-argument and more primitives, each in a method of no argument whose fallback
    // answers #failed: the caller's stack keeps its 6 (before, several of these popped it
    // or read it as an argument).
    for primitive in [
        1, 18, 41, 54, 60, 61, 68, 69, 71, 72, 73, 74, 79, 80, 82, 84, 100, 105, 110, 115, 128,
        136, 160, 169, 188, 206, 210, 211, 248, 249,
    ] {
        assert_eq!(
            run_with_zero_arg_method(primitive, &[32, 124]),
            Some(6),
            "primitive {primitive}"
        );
    }
}

#[test]
fn a_fixed_arity_primitive_does_not_take_an_object_under_the_receiver_as_its_argument() {
    // Symbols under the receiver (objects, where the integers above fail type checks): the
    // caller's top, #kept, is still there (answered here as -1).
    for primitive in [
        1, 18, 41, 54, 60, 61, 68, 69, 71, 72, 73, 74, 79, 80, 82, 84, 100, 105, 110, 115, 128,
        136, 160, 169, 188, 206, 210, 211, 248, 249,
    ] {
        let r = run_with(
            primitive,
            &[32, 124],
            Lit::Sym("below".into()),
            Lit::Sym("kept".into()),
        );
        assert_eq!(
            r.and_then(|v| v.as_int()),
            Some(-1),
            "primitive {primitive}"
        );
    }
}
