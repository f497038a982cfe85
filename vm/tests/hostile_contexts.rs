//! Contexts and methods the image reads and writes as objects: returns to a sender the
//! image set that is no context, or a context that cannot take the returned value (what
//! such a failed return leaves behind: nothing changed), and `tryPrimitive:withArgs:`
//! (primitive 118), through which the image's own context simulator (the debugger's
//! `step`, `runSimulated:`) runs the primitives of the methods it simulates.

mod common;
use common::world::World;
use common::{method_of_named, on_both, send};

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_vm::image::ctx;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{ObjectMemory, Vm, VmError};

/// `SmallInteger>>redirect: d into: holder`:
/// `holder at: 1 put: thisContext. thisContext instVarAt: 1 put: d. ^2`, a return to `d`
/// from a context kept in `holder`.
fn redirect_image() -> SynthImage {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("Object", "instVarAt:put:", 2, 2, &[], &[115, 124], 74);
    let lits = [Lit::Sym("instVarAt:put:".into())];
    let code = [
        17, 118, 137, 193, 135, // holder at: 1 put: thisContext
        137, 118, 16, 240, 135, // thisContext instVarAt: 1 put: d
        119, 124, // ^2
    ];
    img.method("SmallInteger", "redirect:into:", 2, 2, &lits, &code, 0);
    img
}

/// A new object of `class` with `slots` fields, all nil.
fn object<M: ObjectMemory>(m: &mut M, class: Value, slots: usize) -> Value {
    m.alloc(class, Format::Pointers, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

/// Every field of `o`.
fn fields<M: ObjectMemory>(m: &M, o: Value) -> Vec<Value> {
    (0..m.size(o).unwrap().slots)
        .map(|i| m.slot(o, i).unwrap())
        .collect()
}

/// Sends `redirect:into:` with `d`: the run must stop with a typed error, leaving `d` as it
/// was and the returning context live, still sending to `d`.
fn check_refused_return<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &cowheap_vm::Symbols,
    d: Value,
) {
    let holder = object(m, vm.specials().array_class, 1);
    let before = fields(m, d);
    let r = send(vm, m, s, Value::int(0), "redirect:into:", &[d, holder]);
    assert!(
        matches!(r, Err(VmError::CorruptMethod { .. } | VmError::Memory(_))),
        "{r:?}"
    );
    let after = fields(m, d);
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        assert!(
            a.same_word(*b),
            "field {i} of the sender changed: {a:?} -> {b:?}"
        );
    }
    let c = m.slot(holder, 0).unwrap();
    assert!(
        m.slot(c, ctx::SENDER).unwrap().same_word(d),
        "the returning context keeps its sender"
    );
    assert!(
        m.slot(c, ctx::PC).unwrap().as_int().is_some(),
        "the returning context is not marked dead"
    );
}

/// A return to a sender that is an Array with a pc (so not dead) but no method stops the
/// run with a typed error, and writes nothing into the Array: the interpreter's registers
/// are not stored into an object it could not load as a context, and the context that
/// could not return is not marked dead.
#[test]
fn a_failed_return_to_a_non_context_leaves_it_as_it_was() {
    on_both!(redirect_image(), |vm, m, s| {
        let array = object(m, vm.specials().array_class, 12);
        m.set_slot(array, ctx::PC, Value::int(1)).unwrap();
        check_refused_return(vm, m, s, array);
    });
}

/// A return to a context whose stack is full (its stack pointer at its last field) cannot
/// push the value: it stops the run with a typed error before anything is marked dead or
/// loaded, as a failed operation leaves everything as it was.
#[test]
fn a_return_to_a_full_context_changes_nothing() {
    on_both!(redirect_image(), |vm, m, s| {
        let method = method_of_named(m, "SmallInteger", "redirect:into:");
        let full = object(m, vm.specials().method_context, ctx::TEMPS + 2);
        // The method's first bytecode (one literal: 4 * 2 + 1), its two fields in use.
        m.set_slot(full, ctx::PC, Value::int(9)).unwrap();
        m.set_slot(full, ctx::STACKP, Value::int(2)).unwrap();
        m.set_slot(full, ctx::METHOD, method).unwrap();
        m.set_slot(full, ctx::RECEIVER, Value::int(5)).unwrap();
        m.set_slot(full, ctx::TEMPS, Value::int(1)).unwrap();
        m.set_slot(full, ctx::TEMPS + 1, Value::int(2)).unwrap();
        check_refused_return(vm, m, s, full);
    });
}

/// A non-local return (`^` from a block) whose home's sender the image set to an object
/// that is no context is refused as the plain return is: before anything is marked dead,
/// so the home and the block stay live and the Array keeps its fields.
#[test]
fn a_failed_non_local_return_leaves_the_contexts_as_they_were() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("Object", "instVarAt:put:", 2, 2, &[], &[115, 124], 74);
    // SmallInteger>>nlr: d into: holder
    //   holder at: 1 put: thisContext. thisContext instVarAt: 1 put: d. [^2] value. ^3
    let lits = [Lit::Sym("instVarAt:put:".into())];
    let code = [
        17, 118, 137, 193, 135, // holder at: 1 put: thisContext
        137, 118, 16, 240, 135, // thisContext instVarAt: 1 put: d
        137, 117, 200, 164, 2, 119, 124, // [^2]
        201, 135, 120, // value. ^self
    ];
    img.method("SmallInteger", "nlr:into:", 2, 2, &lits, &code, 0);
    on_both!(img, |vm, m, s| {
        let array = object(m, vm.specials().array_class, 12);
        m.set_slot(array, ctx::PC, Value::int(1)).unwrap();
        let holder = object(m, vm.specials().array_class, 1);
        let before = fields(m, array);
        let r = send(vm, m, s, Value::int(0), "nlr:into:", &[array, holder]);
        assert!(
            matches!(r, Err(VmError::CorruptMethod { .. } | VmError::Memory(_))),
            "{r:?}"
        );
        let after = fields(m, array);
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            assert!(
                a.same_word(*b),
                "field {i} of the Array changed: {a:?} -> {b:?}"
            );
        }
        let home = m.slot(holder, 0).unwrap();
        assert!(m.slot(home, ctx::SENDER).unwrap().same_word(array));
        assert!(
            m.slot(home, ctx::PC).unwrap().as_int().is_some(),
            "the home is not marked dead"
        );
    });
}

/// `tryPrimitive: n withArgs: anArray` (primitive 118, `primitiveDoPrimitiveWithArgs`)
/// runs primitive `n` with the receiver and the Array's elements as its arguments and
/// answers what it answers, or fails (its fallback answers the simulator's failure token)
/// when that primitive fails. The image's context simulator runs every primitive through
/// it, so `runSimulated:` of `3 + 4` answers 7, as in Squeak (before, 118 failed, and the
/// simulation ran `Integer>>+`'s fallback arithmetic and stopped with an error).
#[test]
fn try_primitive_runs_the_primitive_and_the_simulator_with_it() {
    let mut w = World::new("Scratch-1.4.0.6.image");
    assert_eq!(w.print("3 tryPrimitive: 1 withArgs: #(4)"), "7");
    assert_eq!(w.print("#(5 6 7) tryPrimitive: 60 withArgs: #(2)"), "6");
    assert_eq!(
        w.print("(3 tryPrimitive: 1 withArgs: #(nil)) == ContextPart primitiveFailToken"),
        "true"
    );
    // A primitive that runs a method (perform:) answers what the method answers.
    assert_eq!(w.print("3 tryPrimitive: 83 withArgs: #(#+ 4)"), "7");
    // An Array holding itself as the arguments of 118 itself nests only so deep, then
    // fails.
    assert_eq!(
        w.print(
            "| a | a := Array new: 2. a at: 1 put: 118; at: 2 put: a. \
             (3 tryPrimitive: 118 withArgs: a) == ContextPart primitiveFailToken"
        ),
        "true"
    );
    assert_eq!(
        w.print("thisContext runSimulated: [3 + 4] contextAtEachStep: [:c | nil]"),
        "7"
    );
    assert_eq!(
        w.print(
            "thisContext runSimulated: [#(3 4 5) inject: 0 into: [:a :b | a + b]] \
             contextAtEachStep: [:c | nil]"
        ),
        "12"
    );
}
