//! A method dictionary whose key is not where its hash puts it (the image can build one with
//! `basicAt:put:`): the lookup probes as a Squeak VM does, stopping at the first nil, and
//! neither memory panics, debug assertions or not.

mod common;
use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, Symbols, Vm};

const BUDGET: u64 = 20_000_000;

#[test]
fn a_misplaced_method_dictionary_key_does_not_panic() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    // A copy of Object under Object, whose dictionary holds `yourself` one field past its
    // hash's, the field at its hash nil: the probe stops at that nil and misses, and the
    // lookup goes on to Object's own dictionary.
    let src = "| c d i j | d := MethodDictionary basicNew: 4. d instVarAt: 2 put: (Array new: 4). \
               i := (#yourself identityHash \\\\ 4) + 1. j := i \\\\ 4 + 1. \
               d basicAt: j put: #yourself. (d instVarAt: 2) at: j put: (Object compiledMethodAt: #yourself). \
               c := Object shallowCopy. c instVarAt: 1 put: Object; instVarAt: 2 put: d. c basicNew yourself. 42";
    let mut flat = FlatHeap::from_base(&heap);
    let mut vm = Vm::new(&flat).unwrap();
    let r = vm.evaluate(&mut flat, &symbols, src, BUDGET);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.ok().and_then(|v| v.as_int()), Some(42));
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.evaluate(&mut t, &symbols, src, BUDGET);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.ok().and_then(|v| v.as_int()), Some(42));
}
