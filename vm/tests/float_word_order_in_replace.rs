//! `replaceFrom:to:with:startingAt:` (primitive 105) between a Float and a Bitmap copies the
//! words in the order `at:` and `at:put:` number a Float's words (word 1 the most
//! significant), whatever order the Float's bytes are kept in.

mod common;
use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

const BUDGET: u64 = 20_000_000;

fn check<M: ObjectMemory>(m: &mut M, symbols: &Symbols) {
    let mut vm = Vm::new(m).unwrap();
    let mut eval = |src: &str| {
        let v = vm.evaluate(m, symbols, src, BUDGET).unwrap();
        vm.print_string(m, symbols, v, BUDGET).unwrap()
    };
    // From a Float into a Bitmap.
    assert_eq!(
        eval(
            "| w | w := Bitmap new: 2. w replaceFrom: 1 to: 2 with: 1.0 startingAt: 1. \
             (w at: 1) = (1.0 at: 1) and: [(w at: 2) = (1.0 at: 2)]"
        ),
        "true"
    );
    assert_eq!(
        eval("| w | w := Bitmap new: 2. w replaceFrom: 1 to: 2 with: 1.0 startingAt: 1. w at: 1"),
        "1072693248"
    );
    // One word of a Float's two, from its second.
    assert_eq!(
        eval(
            "| w f | f := 1.0 + (2 raisedTo: -52). w := Bitmap new: 1. \
             w replaceFrom: 1 to: 1 with: f startingAt: 2. w at: 1"
        ),
        "1"
    );
    // From a Bitmap into a Float (through Bitmap's method, the primitive's receiver a
    // Float).
    assert_eq!(
        eval(
            "| w f | Float addSelector: #replaceFrom:to:with:startingAt: \
             withMethod: (Bitmap compiledMethodAt: #replaceFrom:to:with:startingAt:). \
             w := Bitmap new: 2. w at: 1 put: 16r40000000. f := 1.0 shallowCopy. \
             f replaceFrom: 1 to: 2 with: w startingAt: 1. f = 2.0"
        ),
        "true"
    );
    // From a Float into a Float, one word: the high word of 2.0 into 1.0's.
    assert_eq!(
        eval(
            "| f | Float addSelector: #replaceFrom:to:with:startingAt: \
             withMethod: (Bitmap compiledMethodAt: #replaceFrom:to:with:startingAt:). \
             f := (1.0 + (2 raisedTo: -52)) shallowCopy. \
             f replaceFrom: 1 to: 1 with: 2.0 startingAt: 1. f = (2.0 + (2 raisedTo: -51))"
        ),
        "true"
    );
}

#[test]
fn replacing_between_a_float_and_a_bitmap_keeps_the_word_order_of_at() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    check(&mut flat, &symbols);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    check(&mut t, &symbols);
}
