//! Primitives that run the method they find from inside themselves (`perform:` and its
//! kin, `executeMethod:`, a `doesNotUnderstand:` that performs its message) nest in the
//! interpreter's own stack with no bytecode between, so neither the budget nor the context
//! chain bounds them: past a fixed depth such a primitive fails, and the method's own
//! bytecodes run under the budget. Before, one line of Smalltalk overflowed the thread's
//! stack and aborted the process, with every tenant in it.

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
