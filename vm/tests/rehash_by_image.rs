//! `Vm::rehash_by_image` on both memories, without the segment crate: in `mini.image`, an
//! equality Set of Arrays made by the image, its elements moved off their places, is missed
//! by the image's `includes:`, rehashed by the image's own `rehash`, and then found; the
//! tenant and the flat heap (the oracle) agree on every answer and on the bytecodes run.

mod common;

use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ImageRehash, ObjectMemory, REHASH_ROOT, Symbols, Vm, VmError};

const BUDGET: u64 = 10_000_000;

/// (found before, the report, found after, `3 + 4` after a budget failure)
fn run<M: ObjectMemory>(m: &mut M, symbols: &Symbols) -> (usize, ImageRehash, usize, i64) {
    let mut vm = Vm::new(m).unwrap();
    let set = vm
        .evaluate(
            m,
            symbols,
            "| s | s _ Set new. 1 to: 12 do: [:i | s add: (Array with: i with: i * 5)]. s",
            BUDGET,
        )
        .unwrap();
    // Keep the Set through the runs' collections.
    m.set_root("test.set", set).unwrap();
    let nil = vm.specials().nil;
    let true_ = vm.specials().true_;
    let array = m.slot(set, 1).unwrap();
    let n = m.size(array).unwrap().slots;
    let elems: Vec<Value> = (0..n)
        .map(|i| m.slot(array, i).unwrap())
        .filter(|e| !m.identical(*e, nil).unwrap())
        .collect();
    assert_eq!(elems.len(), 12);
    let holder = vm.evaluate(m, symbols, "Array new: 12", BUDGET).unwrap();
    m.set_slots(holder, 0, &elems).unwrap();
    m.set_root("test.elements", holder).unwrap();
    // Packed from the last slot down, in reverse order.
    for i in 0..n {
        m.set_slot(array, i, nil).unwrap();
    }
    for (k, &e) in elems.iter().enumerate() {
        m.set_slot(array, n - 1 - k, e).unwrap();
    }
    let found = |vm: &mut Vm, m: &mut M| -> usize {
        (0..12)
            .filter(|&i| {
                let set = m.root("test.set").unwrap();
                let e = m.slot(m.root("test.elements").unwrap(), i).unwrap();
                let yes = vm
                    .send_named(m, symbols, set, "includes:", &[e], BUDGET)
                    .unwrap();
                m.identical(yes, true_).unwrap()
            })
            .count()
    };
    let before = found(&mut vm, m);
    // A budget too small first: a typed failure, the Set as it was, nothing suspended.
    let small = vm.rehash_by_image(m, symbols, &[set], 5).unwrap();
    assert!(
        matches!(
            small.failed[0].error,
            VmError::BudgetExhausted { budget: 5, .. }
        ),
        "{small}"
    );
    assert!(!vm.is_suspended(m));
    assert!(m.root(REHASH_ROOT).is_none());
    assert!(m.identical(m.slot(set, 1).unwrap(), array).unwrap());
    let seven = vm
        .send_named(m, symbols, Value::int(3), "+", &[Value::int(4)], BUDGET)
        .unwrap()
        .as_int()
        .unwrap();
    let report = vm.rehash_by_image(m, symbols, &[set], BUDGET).unwrap();
    let after = found(&mut vm, m);
    (before, report, after, seven)
}

#[test]
fn the_images_rehash_places_a_set_on_a_tenant_and_on_the_flat_heap_alike() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let on_flat = run(&mut flat, &symbols);
    let base = cowheap_forwarders::Base::new(heap);
    let mut t = Tenant::fork(&base);
    let on_tenant = run(&mut t, &symbols);
    eprintln!("{on_tenant:?}");
    assert_eq!(on_tenant, on_flat);
    let (before, report, after, seven) = on_tenant;
    assert_eq!(before, 3, "{before} of 12 found before");
    assert_eq!(report.rehashed, vec![0], "{report}");
    assert!(report.failed.is_empty());
    assert_eq!(after, 12);
    assert_eq!(seven, 7);
}
