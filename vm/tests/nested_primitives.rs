//! Primitives that run the method they find from inside themselves (`perform:` and its
//! kin, `executeMethod:`, a `doesNotUnderstand:` that performs its message) nest in the
//! interpreter's own stack with no bytecode between, so neither the budget nor the context
//! chain bounds them: past a fixed depth such a primitive fails, and the method's own
//! bytecodes run under the budget. Before, one line of Smalltalk overflowed the thread's
//! stack and aborted the process, with every tenant in it. And a primitive sent from
//! outside, as the entry send itself, answers on the entry context.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, Symbols, Vm};

/// An Array holding `#perform:withArguments:` and itself, performed with itself as the
/// arguments: each level finds the same method with the same arguments.
#[test]
fn perform_with_arguments_of_itself_ends_with_an_error() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let src = "| a | a := Array new: 2. a at: 1 put: #perform:withArguments:; at: 2 put: a. \
               3 perform: #perform:withArguments: withArguments: a";
    let mut flat = FlatHeap::from_base(&heap);
    let mut vm = Vm::new(&flat).unwrap();
    assert!(vm.evaluate(&mut flat, &symbols, src, 10_000_000).is_err());
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    assert!(vm.evaluate(&mut t, &symbols, src, 10_000_000).is_err());
    // The tenant and its interpreter go on.
    let three = vm.evaluate(&mut t, &symbols, "1 + 2", 10_000).unwrap();
    assert_eq!(three.as_int(), Some(3));
}

/// A `doesNotUnderstand:` whose method is the `perform:` primitive: the Message performed
/// is not understood, which makes a Message to perform, and so on.
#[test]
fn a_does_not_understand_that_performs_its_message_ends() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method(
        "SmallInteger",
        "doesNotUnderstand:",
        1,
        1,
        &[],
        &[115, 124],
        83,
    );
    img.method(
        "SmallInteger",
        "go",
        0,
        0,
        &[Lit::Sym("foo".into())],
        &[112, 208, 124],
        0,
    );
    let (heap, symbols) = img.freeze().unwrap();
    let mut flat = FlatHeap::from_base(&heap);
    let mut vm = Vm::new(&flat).unwrap();
    let nil = heap.nil().word();
    // Past the depth the primitive fails, and the method's own bytecodes answer nil.
    let r = vm.send_named(&mut flat, &symbols, Value::int(3), "go", &[], 1_000);
    assert_eq!(r.map(|v| v.word()).ok(), Some(nil));
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.send_named(&mut t, &symbols, Value::int(3), "go", &[], 1_000);
    assert_eq!(r.map(|v| v.word()).ok(), Some(nil));
}

/// A become sent from outside (the entry send itself) answers its receiver: before, it
/// made the become and then answered an error, reading the entry context as a method's.
#[test]
fn a_become_sent_from_outside_answers() {
    use cowheap_heap::{Format, ObjectSize};
    let (mut t, symbols, array, point) = common::become_bed();
    let size = |slots| ObjectSize { slots, bytes: 0 };
    let x = t.alloc(point, Format::Pointers, size(2)).unwrap();
    let y = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(y, 0, Value::int(7)).unwrap();
    let a = t.alloc(array, Format::Pointers, size(1)).unwrap();
    let b = t.alloc(array, Format::Pointers, size(1)).unwrap();
    t.set_slot(a, 0, x).unwrap();
    t.set_slot(b, 0, y).unwrap();
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.send_named(&mut t, &symbols, a, "elementsForwardIdentityTo:", &[b], 100);
    assert_eq!(
        t.slot(x, 0).unwrap().as_int(),
        Some(7),
        "the become was made"
    );
    let answer = r.expect("the become answers");
    assert!(t.identical(answer, a).unwrap(), "it answers its receiver");
}
