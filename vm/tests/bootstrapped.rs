//! `bootstrapped.image` (6505, closures, no compiler): benchFib by `perform`, on a tenant
//! and on the flat heap.

mod common;

use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, Symbols, Vm, VmError};

#[test]
fn bench_fib_on_a_tenant_and_on_the_flat_heap() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    assert!(vm.specials().closures);
    for (n, want) in [(10, 177), (20, 21891)] {
        let r = vm
            .send_named(&mut t, &symbols, Value::int(n), "benchFib", &[], 50_000_000)
            .unwrap();
        assert_eq!(r.as_int(), Some(want), "{n} benchFib on a tenant");
    }
    let mut flat = FlatHeap::from_base(base.heap());
    let mut vm = Vm::new(&flat).unwrap();
    for (n, want) in [(10, 177), (20, 21891)] {
        let r = vm
            .send_named(
                &mut flat,
                &symbols,
                Value::int(n),
                "benchFib",
                &[],
                50_000_000,
            )
            .unwrap();
        assert_eq!(r.as_int(), Some(want), "{n} benchFib on the flat heap");
    }
}

#[test]
fn a_runaway_stops_at_its_budget_and_resumes_to_the_same_answer() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let err = vm
        .send_named(&mut t, &symbols, Value::int(20), "benchFib", &[], 10_000)
        .unwrap_err();
    assert!(
        matches!(err, VmError::BudgetExhausted { budget: 10_000, .. }),
        "{err}"
    );
    assert!(vm.is_suspended(&t));
    let mut rounds = 0;
    let r = loop {
        rounds += 1;
        match vm.resume(&mut t, 10_000) {
            Ok(v) => break v,
            Err(VmError::BudgetExhausted { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(r.as_int(), Some(21891));
    assert!(rounds > 10, "took {rounds} resumes");
    assert!(!vm.is_suspended(&t));
}
