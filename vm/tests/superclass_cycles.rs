//! A class whose superclass chain comes round (here a copy of Object made its own
//! superclass, with a large method dictionary) fails a send with a typed error after going
//! round once or twice: before, the lookup visited the class ten thousand times, each visit
//! a scan of its dictionary, in one send that the bytecode budget did not see.

mod common;

use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, Symbols, Vm, VmError};

#[test]
fn a_send_up_a_superclass_cycle_fails_typed() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let src = "| c | c := Object shallowCopy. c instVarAt: 1 put: c; \
               instVarAt: 2 put: (Array new: 100002). c basicNew foo";
    let check = |r: Result<cowheap_heap::Value, VmError>| {
        let e = r.expect_err("a send up a cycle fails");
        assert!(
            e.to_string().contains("superclass chain"),
            "another error: {e}"
        );
    };
    let mut flat = FlatHeap::from_base(&heap);
    let mut vm = Vm::new(&flat).unwrap();
    check(vm.evaluate(&mut flat, &symbols, src, 10_000_000));
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    check(vm.evaluate(&mut t, &symbols, src, 10_000_000));
}
