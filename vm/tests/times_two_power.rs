//! `timesTwoPower:` (primitive 54) scales exactly, as C's `ldexp`: a result within range is
//! not lost to an intermediate power of two that overflows or underflows.

mod common;
use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

const BUDGET: u64 = 20_000_000;

fn check<M: ObjectMemory>(m: &mut M, symbols: &Symbols) {
    let mut vm = Vm::new(m).unwrap();
    for (src, want) in [
        // 2^1024 overflows, the result does not.
        ("0.5 timesTwoPower: 1024", 2f64.powi(1023)),
        // 2^-1075 underflows to zero, the result does not.
        (
            "(1.0 timesTwoPower: 1000) timesTwoPower: -1075",
            2f64.powi(-75),
        ),
        ("3.0 timesTwoPower: 4", 48.0),
        ("1.0 timesTwoPower: -1074", f64::from_bits(1)),
    ] {
        let v = vm.evaluate(m, symbols, src, BUDGET).unwrap();
        assert_eq!(vm.float_value(m, v), Some(want), "{src}");
    }
}

#[test]
fn times_two_power_answers_results_in_range_exactly() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    check(&mut flat, &symbols);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    check(&mut t, &symbols);
}
