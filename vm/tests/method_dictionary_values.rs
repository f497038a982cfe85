//! A method dictionary's value that is no CompiledMethod is refused with a typed error when
//! a send finds it: before, an Array whose first field is a SmallInteger was taken for a
//! method, its field decoded as a header, and the primitive that header named run as the
//! method's (`#(256 0)`, quick-return-self, made `3 zork` answer 3). Squeak's objects as
//! methods (`run:with:in:`) are not supported, so no answer would be right.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, Symbols, Vm, VmError};

const BUDGET: u64 = 50_000_000;

/// Source that stores `value` for `#zork` into SmallInteger's method dictionary, then
/// evaluates `send`.
fn zork_with(value: &str, send: &str) -> String {
    format!(
        "| d | d := SmallInteger instVarAt: 2. d at: #zork put: {value}. #zork flushCache. ^{send}"
    )
}

fn refused(r: Result<Value, VmError>, what: &str) {
    match r {
        Err(VmError::CorruptMethod { what: why, .. }) => {
            assert!(
                why.contains("no CompiledMethod"),
                "{what}: another error: {why}"
            )
        }
        other => panic!("{what}: a value that is no method is refused, not {other:?}"),
    }
}

#[test]
fn a_method_dictionary_value_that_is_no_method_is_refused() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(common::import("mini.image"));
    for value in ["(Array with: 256 with: 0)", "(Array with: 0 with: 0)", "7"] {
        for send in ["3 zork", "3 perform: #zork"] {
            let src = zork_with(value, send);
            let mut flat = FlatHeap::from_base(&heap);
            let mut vm = Vm::new(&flat).unwrap();
            refused(vm.evaluate(&mut flat, &symbols, &src, BUDGET), &src);
            let mut t = Tenant::fork(&base);
            let mut vm = Vm::new(&t).unwrap();
            refused(vm.evaluate(&mut t, &symbols, &src, BUDGET), &src);
        }
    }
    // A CompiledMethod stored the same way still runs.
    let src = zork_with("(SmallInteger compiledMethodAt: #even)", "3 zork");
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.evaluate(&mut t, &symbols, &src, BUDGET).unwrap();
    assert_eq!(r.word(), vm.specials().false_.word());
}
