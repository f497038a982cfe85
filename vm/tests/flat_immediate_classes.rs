//! A one-way become of the class of SmallIntegers reaches the class the flat heap answers
//! for an immediate, as it reaches every reference (and as a Squeak VM, which takes that
//! class from the special objects array the become rewrote, answers it). Before, the flat
//! heap kept the old class for immediates, so `3 class == x` answered false there and
//! true on a tenant: the oracle disagreed with the memory it checks.

mod common;

use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

const BUDGET: u64 = 50_000_000;

const SOURCE: &str = "Array compile: 'kcFwd: b <primitive: 72> ^#failed' classified: 'probes' notifying: nil. \
    Smalltalk at: #KcX put: SmallInteger shallowCopy. \
    (Array with: SmallInteger) kcFwd: (Array with: (Smalltalk at: #KcX)). \
    ^Array with: 3 class == (Smalltalk at: #KcX) with: (3 perform: #class) == (Smalltalk at: #KcX) with: 3 + 4";

fn answers<M: ObjectMemory>(m: &mut M, s: &Symbols) -> Vec<String> {
    let mut vm = Vm::new(m).unwrap();
    let a = vm.evaluate(m, s, SOURCE, BUDGET).unwrap();
    (0..3)
        .map(|i| {
            let v = m.slot(a, i).unwrap();
            vm.print_string(m, s, v, BUDGET).unwrap()
        })
        .collect()
}

#[test]
fn a_forwarded_small_integer_class_is_the_class_of_small_integers() {
    let heap = common::import("mini.image");
    let s = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let on_flat = answers(&mut flat, &s);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let on_tenant = answers(&mut t, &s);
    assert_eq!(on_tenant, ["true", "true", "7"], "tenant");
    assert_eq!(on_flat, on_tenant, "the flat heap agrees with the tenant");
}
